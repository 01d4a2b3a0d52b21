/*
 * common-regions: regions of guest RAM that another VM on the
 * destination already holds (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The fingerprint command: the guest's RAM is hashed in a worker thread
 * while the guest runs, the file is laid out by region-fingerprint.c
 * and written under a temporary name, then renamed.  See
 * docs/devel/migration/common-regions.rst.
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/rcu.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-migration.h"
#include "crypto/hash.h"
#include "block/thread-pool.h"
#include "exec/target_page.h"
#include "system/ramblock.h"
#include "common-regions.h"
#include "ram.h"
#include "region-fingerprint.h"
#include "trace.h"

bool common_regions_sha256(const void *buf, size_t len,
                           uint8_t out[RFP_HASH_LEN])
{
    size_t outlen = RFP_HASH_LEN;

    if (qcrypto_hash_bytes(QCRYPTO_HASH_ALGO_SHA256, buf, len, &out, &outlen,
                           NULL) < 0) {
        memset(out, 0xff, RFP_HASH_LEN);
        return false;
    }
    return true;
}

static void fingerprint_sha256(const void *buf, size_t len,
                               uint8_t out[RFP_HASH_LEN], void *opaque)
{
    FingerprintJob *job = opaque;

    if (!common_regions_sha256(buf, len, out)) {
        job->hash_failed = true;
    }
}

static bool fingerprint_is_zero(const void *buf, size_t len)
{
    return buffer_is_zero(buf, len);
}

int fingerprint_ram(FingerprintJob *job, GByteArray *out)
{
    g_autoptr(GPtrArray) blocks = g_ptr_array_new();
    RAMBlock *block;

    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH_MIGRATABLE(block) {
            if (block->host && qatomic_read(&block->used_length)) {
                g_ptr_array_add(blocks, block);
            }
        }
        if (!blocks->len || blocks->len > RFP_MAX_BLOCKS) {
            job->error = g_strdup_printf("the guest has %u RAM blocks to "
                                         "fingerprint, the format holds 1 "
                                         "to %u", blocks->len,
                                         RFP_MAX_BLOCKS);
            return -EINVAL;
        }
        rfp_writer_init(&job->writer, &job->geo, blocks->len,
                        fingerprint_sha256, fingerprint_is_zero, job, out);
        for (guint i = 0; i < blocks->len; i++) {
            block = g_ptr_array_index(blocks, i);
            /*
             * A resize changes used_length under the BQL; the mapping
             * covers max_length, so reading one value of it is safe.
             */
            uint64_t len = qatomic_read(&block->used_length);

            rfp_writer_block(&job->writer, block->idstr, block->host, len);
            job->ram_bytes += len;
        }
        rfp_writer_finish(&job->writer);
    }
    if (job->hash_failed) {
        job->error = g_strdup("SHA-256 failed");
        return -EIO;
    }
    return 0;
}

static int fingerprint_worker(void *opaque)
{
    FingerprintJob *job = opaque;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GError) gerr = NULL;
    int ret = fingerprint_ram(job, out);

    if (ret < 0) {
        return ret;
    }
    if (!g_file_set_contents_full(job->filename, (const char *)out->data,
                                  out->len, G_FILE_SET_CONTENTS_CONSISTENT,
                                  0644, &gerr)) {
        job->error = g_strdup(gerr->message);
        return -EIO;
    }
    return 0;
}

static bool region_size_valid(uint64_t region_size, Error **errp)
{
    uint64_t page = qemu_target_page_size();

    if (!is_power_of_2(region_size) || region_size < page ||
        region_size > page * RFP_MAX_REGION_PAGES) {
        error_setg(errp, "Parameter 'region-size' must be a power of two "
                   "from the page size (%" PRIu64 ") to %u pages",
                   page, RFP_MAX_REGION_PAGES);
        return false;
    }
    return true;
}

bool fingerprint_job_init(FingerprintJob *job, uint64_t region_size,
                          Error **errp)
{
    if (!region_size_valid(region_size, errp)) {
        return false;
    }
    job->geo.page_shift = qemu_target_page_bits();
    job->geo.region_shift = ctz64(region_size);
    if (!rfp_geometry_valid(&job->geo)) {
        error_setg(errp, "A fingerprint cannot describe %zu-byte pages",
                   qemu_target_page_size());
        return false;
    }
    if (!qcrypto_hash_supports(QCRYPTO_HASH_ALGO_SHA256)) {
        error_setg(errp, "This QEMU has no SHA-256 in its crypto layer");
        return false;
    }
    return true;
}

CommonRegionsFingerprint *coroutine_fn
qmp_common_regions_fingerprint(const char *filename, bool has_region_size,
                               uint64_t region_size, Error **errp)
{
    FingerprintJob job = { .filename = filename };
    CommonRegionsFingerprint *info;
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    if (!has_region_size) {
        region_size = COMMON_REGIONS_DEFAULT_REGION_SIZE;
    }
    if (!fingerprint_job_init(&job, region_size, errp)) {
        return NULL;
    }

    trace_common_regions_fingerprint_start(filename, region_size);
    if (thread_pool_submit_co(fingerprint_worker, &job) < 0) {
        error_setg(errp, "Cannot write the fingerprint to '%s': %s",
                   filename, job.error);
        g_free(job.error);
        return NULL;
    }

    info = g_new0(CommonRegionsFingerprint, 1);
    info->regions = job.writer.regions;
    info->pages = job.writer.pages;
    info->zero_pages = job.writer.zero_pages;
    info->ram_bytes = job.ram_bytes;
    info->region_size = region_size;
    trace_common_regions_fingerprint_done(filename, info->regions,
                                          info->pages, info->ram_bytes,
                                          qemu_clock_get_ms(QEMU_CLOCK_REALTIME)
                                          - start);
    return info;
}
