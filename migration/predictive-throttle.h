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

/*
 * All of these run with the BQL held: setup and cleanup from the
 * migration thread, the period from every dirty bitmap sync, the info
 * from query-migrate.
 */
void predictive_throttle_setup(void);
void predictive_throttle_period(uint64_t period_ms, uint64_t dirty_bytes,
                                uint64_t xfer_bytes, uint64_t remaining);
void predictive_throttle_cleanup(void);
void predictive_throttle_fill_info(MigrationInfo *info);

#endif
