/*
 * Fuzz target: the common-regions fingerprint file
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A fingerprint comes from another VM of the workgroup, possibly from
 * another host's directory: it is untrusted.  This target scans the
 * input as rfp_scan() does for the chooser's index and QEMU's tools,
 * and checks that in an accepted file:
 *
 *  - the geometry is valid and the block names differ and hold no NUL;
 *  - each block's regions are aligned, inside the block, in increasing
 *    order, with a mask that is not 0 and has no bit past the region's
 *    pages, and hashes that lie inside the input, one per bit;
 *  - the counts the visitor saw are the trailer's, and the last region
 *    record ends where the trailer starts;
 *  - a scan that a visitor stops at the k-th region fails with
 *    "stopped" after exactly k calls.
 *
 * Input layout:
 *   0  u8 mode         FUZZ_RFP_FIX_HEADER: write the magic, version and
 *                      reserved field right, so that mutations reach the
 *                      blocks; FUZZ_RFP_FIX_TRAILER: write the trailer's
 *                      magic right, and its counts from a first scan
 *   1  the rest        the file
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "region-fingerprint.h"
#include "fuzz.h"

typedef struct Check {
    const uint8_t *buf;
    size_t len;
    uint32_t blocks;
    uint64_t regions;
    uint64_t pages;
    uint64_t next;
    uint64_t stop_at;
    size_t end;                 /* where the last region record ended */
    GHashTable *names;
} Check;

static bool check_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    Check *c = opaque;
    size_t n = strlen(b->idstr);

    assert(b->index == c->blocks);
    assert(n >= 1 && n <= 255);
    assert(b->used_length && b->used_length <= RFP_MAX_BLOCK_LENGTH);
    assert(!(b->used_length & ((1ull << h->geo.page_shift) - 1)));
    assert(!g_hash_table_contains(c->names, b->idstr));
    g_hash_table_add(c->names, g_strdup(b->idstr));
    c->blocks++;
    c->next = 0;
    return true;
}

static bool check_region(const RfpHeader *h, const RfpBlock *b,
                         const RfpRegion *r, void *opaque)
{
    Check *c = opaque;
    uint64_t rsize = 1ull << h->geo.region_shift;
    unsigned n = __builtin_popcountll(r->mask);
    uint64_t valid;

    assert(!(r->offset & (rsize - 1)));
    assert(r->offset >= c->next && r->offset < b->used_length);
    c->next = r->offset + rsize;
    assert(r->npages >= 1 && r->npages <= RFP_MAX_REGION_PAGES);
    assert(r->npages == MIN(rsize, b->used_length - r->offset) >>
                        h->geo.page_shift);
    valid = r->npages == 64 ? UINT64_MAX : (1ull << r->npages) - 1;
    assert(r->mask && !(r->mask & ~valid));
    assert(r->hash >= c->buf && r->hash + RFP_HASH_LEN <= c->buf + c->len);
    assert(r->page_hashes == r->hash + RFP_HASH_LEN);
    assert(r->page_hashes + (size_t)n * RFP_HASH_LEN <= c->buf + c->len);
    c->end = r->page_hashes + (size_t)n * RFP_HASH_LEN - c->buf;
    c->regions++;
    c->pages += n;
    return !c->stop_at || c->regions < c->stop_at;
}

static const RfpVisitor checker = {
    .block = check_block,
    .region = check_region,
};

static bool scan(const uint8_t *buf, size_t len, uint64_t stop_at,
                 Check *c, RfpTotals *t, const char **err)
{
    RfpHeader h;

    *c = (Check) {
        .buf = buf, .len = len, .stop_at = stop_at,
        .names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    return rfp_scan(buf, len, &h, &checker, c, t, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree uint8_t *buf = NULL;
    const char *err = NULL;
    RfpTotals t;
    size_t len;
    Check c;
    bool ok;

    if (size < 1) {
        return 0;
    }
    len = size - 1;
    buf = g_memdup2(data + 1, len);
    if ((data[0] & FUZZ_RFP_FIX_HEADER) && len >= RFP_HEADER_SIZE) {
        WireWriter w;

        wire_writer_init(&w, buf, RFP_HEADER_SIZE);
        wire_put_bytes(&w, RFP_MAGIC, RFP_MAGIC_LEN);
        wire_put_be32(&w, RFP_VERSION);
        memset(buf + 24, 0, 8);
    }
    if ((data[0] & FUZZ_RFP_FIX_TRAILER) && len >= RFP_HEADER_SIZE +
                                                   RFP_TRAILER_SIZE) {
        WireWriter w;

        /* counts from a scan that reaches the trailer, if one does */
        scan(buf, len, 0, &c, NULL, &err);
        g_hash_table_destroy(c.names);
        wire_writer_init(&w, buf + len - RFP_TRAILER_SIZE, RFP_TRAILER_SIZE);
        wire_put_bytes(&w, RFP_END_MAGIC, RFP_MAGIC_LEN);
        wire_put_be64(&w, c.regions);
        wire_put_be64(&w, c.pages);
    }

    ok = scan(buf, len, 0, &c, &t, &err);
    g_hash_table_destroy(c.names);
    if (!ok) {
        assert(err && strcmp(err, "stopped"));
        return 0;
    }
    assert(c.blocks >= 1 && c.blocks <= RFP_MAX_BLOCKS);
    assert(t.regions == c.regions && t.pages == c.pages);
    if (c.regions) {
        /* each block's end marker and count, then the trailer */
        assert(c.end + 16 + RFP_TRAILER_SIZE <= len);
    }

    if (c.regions) {
        uint64_t k = 1 + (data[0] >> 2) % c.regions;
        Check s;

        assert(!scan(buf, len, k, &s, NULL, &err));
        g_hash_table_destroy(s.names);
        assert(!strcmp(err, "stopped") && s.regions == k);
    }
    return 0;
}
