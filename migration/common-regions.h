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

#include "region-fingerprint.h"

#define COMMON_REGIONS_DEFAULT_REGION_SIZE  (64 * KiB)

typedef struct FingerprintJob {
    const char *filename;
    RfpGeometry geo;
    /* results, set by the worker */
    RfpWriter writer;
    uint64_t ram_bytes;
    bool hash_failed;
    char *error;
} FingerprintJob;

/**
 * common_regions_sha256: SHA-256 of a buffer, with QEMU's crypto layer
 * @buf: the bytes
 * @len: their number
 * @out: set to the hash; all ones when the hash failed, which matches
 * no page, so that nothing is taken or left out on its account
 *
 * Returns: false when the hash failed.
 */
bool common_regions_sha256(const void *buf, size_t len,
                           uint8_t out[RFP_HASH_LEN]);

/**
 * fingerprint_job_init: check the region size and set up a job
 * @job: the job, zeroed but for its filename
 * @region_size: the region size asked for
 * @errp: set on failure
 *
 * Returns: true when the size is valid and SHA-256 is there.
 */
bool fingerprint_job_init(FingerprintJob *job, uint64_t region_size,
                          Error **errp);

/**
 * fingerprint_ram: fingerprint the guest's RAM
 * @job: the job; its writer and counters are set
 * @out: where the fingerprint goes
 *
 * In a worker thread, without the BQL: the guest keeps running.  On
 * failure @job->error says why (g_free() it).
 *
 * Returns: 0, or a negative errno value.
 */
int fingerprint_ram(FingerprintJob *job, GByteArray *out);

#endif
