/*
 * Predictive CPU throttle for live migration (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_PREDICTIVE_THROTTLE_H
#define MIGRATION_PREDICTIVE_THROTTLE_H

#include "qapi/qapi-types-migration.h"

/**
 * predictive_throttle_setup: start the throttle for a migration
 *
 * Seed the model and apply its initial decision.  Runs from the
 * migration thread with the BQL held.
 */
void predictive_throttle_setup(void);

/**
 * predictive_throttle_period: a dirty bitmap sync period ended
 * @period_ms: the period's length, in ms
 * @dirty_bytes: bytes newly dirtied in the period
 * @xfer_bytes: bytes sent in the period
 * @remaining: dirty bytes left at the end
 *
 * Fold in the period and apply the model's decision.  Runs from every
 * dirty bitmap sync with the BQL held.
 */
void predictive_throttle_period(uint64_t period_ms, uint64_t dirty_bytes,
                                uint64_t xfer_bytes, uint64_t remaining);

/**
 * predictive_throttle_cleanup: stop the throttle
 *
 * The model's estimates are kept to seed the next migration.  Runs from
 * the migration thread with the BQL held.
 */
void predictive_throttle_cleanup(void);

/**
 * predictive_throttle_populate_info: report the throttle
 * @info: query-migrate's reply, to fill
 *
 * Runs from query-migrate with the BQL held.
 */
void predictive_throttle_populate_info(MigrationInfo *info);

#endif
