/*
 * common-regions: pages the destination host already holds are not sent
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_MIGRATION_REGION_MIGRATE_H
#define QEMU_MIGRATION_REGION_MIGRATE_H

#include "qapi/qapi-types-migration.h"
#include "exec/cpu-common.h"

/**
 * common_regions_mig_init: register the capability's section
 */
void common_regions_mig_init(void);

/**
 * common_regions_skip_page: may the source leave a page out?
 * @rb: its block
 * @offset: its offset in @rb
 *
 * On the page's first send after the destination said it placed it:
 * true when the page still has the hash of the fingerprint, so that the
 * destination has exactly these bytes.  Later sends return false.
 *
 * Returns: true to leave the page out.
 */
bool common_regions_skip_page(RAMBlock *rb, ram_addr_t offset);

/**
 * common_regions_rp_held: take the destination's message
 * @buf: the message, untrusted
 * @len: its bytes
 * @errp: set on failure
 *
 * In the source's return-path thread.
 *
 * Returns: 0, or a negative errno value when the message is malformed
 * or names pages that were not offered.
 */
int common_regions_rp_held(const uint8_t *buf, size_t len, Error **errp);

/**
 * common_regions_populate_info: report the capability in query-migrate
 * @info: where to
 */
void common_regions_populate_info(MigrationInfo *info);

#endif
