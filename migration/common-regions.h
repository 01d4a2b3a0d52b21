/*
 * common-regions: regions of guest RAM that another VM on the
 * destination already holds (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * See docs/devel/migration/common-regions.rst.
 */

#ifndef QEMU_MIGRATION_COMMON_REGIONS_H
#define QEMU_MIGRATION_COMMON_REGIONS_H

#define COMMON_REGIONS_DEFAULT_REGION_SIZE  (64 * KiB)

#endif
