/*
 * common-regions: the fingerprint of a guest's RAM
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * See region-fingerprint.h for the file layout.
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "region-fingerprint.h"

bool rfp_geometry_valid(const RfpGeometry *g)
{
    return g->page_shift >= RFP_MIN_PAGE_SHIFT &&
           g->page_shift <= RFP_MAX_PAGE_SHIFT &&
           g->region_shift >= g->page_shift &&
           g->region_shift - g->page_shift <= 6;
}

uint32_t rfp_region_pages(const RfpGeometry *g, uint64_t used_length,
                          uint64_t offset)
{
    uint64_t end = MIN(used_length, offset + (1ull << g->region_shift));

    return (end - offset) >> g->page_shift;
}

void rfp_region_hash(const uint8_t (*page_hashes)[RFP_HASH_LEN],
                     uint32_t npages, RfpHashFn *hash, void *opaque,
                     uint8_t out[RFP_HASH_LEN])
{
    hash(page_hashes, (size_t)npages * RFP_HASH_LEN, out, opaque);
}

/* Append @v big-endian, in @n bytes (4 or 8), with the record codec. */
static void put_be(GByteArray *out, uint64_t v, unsigned n)
{
    uint8_t b[8];
    WireWriter w;

    wire_writer_init(&w, b, n);
    if (n == 4) {
        wire_put_be32(&w, v);
    } else {
        wire_put_be64(&w, v);
    }
    g_byte_array_append(out, b, n);
}

void rfp_writer_init(RfpWriter *w, const RfpGeometry *g, uint32_t nr_blocks,
                     RfpHashFn *hash, RfpZeroFn *is_zero, void *opaque,
                     GByteArray *out)
{
    size_t psize = (size_t)1 << g->page_shift;
    g_autofree uint8_t *zero = g_malloc0(psize);

    assert(rfp_geometry_valid(g));
    assert(nr_blocks >= 1 && nr_blocks <= RFP_MAX_BLOCKS);
    *w = (RfpWriter) {
        .geo = *g,
        .out = out,
        .hash = hash,
        .is_zero = is_zero,
        .opaque = opaque,
        .nr_blocks = nr_blocks,
    };
    hash(zero, psize, w->zero_page_hash, opaque);

    g_byte_array_append(out, (const uint8_t *)RFP_MAGIC, RFP_MAGIC_LEN);
    put_be(out, RFP_VERSION, 4);
    put_be(out, g->page_shift, 4);
    put_be(out, g->region_shift, 4);
    put_be(out, nr_blocks, 4);
    put_be(out, 0, 8);
}

void rfp_writer_block(RfpWriter *w, const char *idstr, const uint8_t *mem,
                      uint64_t used_length)
{
    size_t idlen = strlen(idstr);
    size_t psize = (size_t)1 << w->geo.page_shift;
    uint64_t rsize = 1ull << w->geo.region_shift;
    uint8_t page_hashes[RFP_MAX_REGION_PAGES][RFP_HASH_LEN];
    uint8_t region_hash[RFP_HASH_LEN];
    uint64_t records = 0;
    uint8_t idlen8 = idlen;

    assert(idlen >= 1 && idlen <= 255);
    assert(used_length && used_length <= RFP_MAX_BLOCK_LENGTH &&
           !(used_length & (psize - 1)));
    assert(w->blocks_written < w->nr_blocks);

    g_byte_array_append(w->out, &idlen8, 1);
    g_byte_array_append(w->out, (const uint8_t *)idstr, idlen);
    put_be(w->out, used_length, 8);

    for (uint64_t off = 0; off < used_length; off += rsize) {
        uint32_t npages = rfp_region_pages(&w->geo, used_length, off);
        uint64_t mask = 0;

        for (uint32_t i = 0; i < npages; i++) {
            const uint8_t *page = mem + off + (uint64_t)i * psize;

            if (w->is_zero(page, psize)) {
                memcpy(page_hashes[i], w->zero_page_hash, RFP_HASH_LEN);
                w->zero_pages++;
            } else {
                w->hash(page, psize, page_hashes[i], w->opaque);
                mask |= 1ull << i;
            }
        }
        if (!mask) {
            continue;
        }
        rfp_region_hash((const uint8_t (*)[RFP_HASH_LEN])page_hashes, npages,
                        w->hash, w->opaque, region_hash);
        put_be(w->out, off, 8);
        put_be(w->out, mask, 8);
        g_byte_array_append(w->out, region_hash, RFP_HASH_LEN);
        for (uint32_t i = 0; i < npages; i++) {
            if (mask & (1ull << i)) {
                g_byte_array_append(w->out, page_hashes[i], RFP_HASH_LEN);
                w->pages++;
            }
        }
        records++;
    }
    put_be(w->out, RFP_BLOCK_END, 8);
    put_be(w->out, records, 8);
    w->regions += records;
    w->blocks_written++;
}

void rfp_writer_finish(RfpWriter *w)
{
    assert(w->blocks_written == w->nr_blocks);
    g_byte_array_append(w->out, (const uint8_t *)RFP_END_MAGIC,
                        RFP_MAGIC_LEN);
    put_be(w->out, w->regions, 8);
    put_be(w->out, w->pages, 8);
}

static bool fail(const char **err, const char *why)
{
    *err = why;
    return false;
}

static bool scan_header(WireReader *r, RfpHeader *hdr, const char **err)
{
    uint8_t magic[RFP_MAGIC_LEN];

    wire_get_bytes(r, magic, sizeof(magic));
    if (!wire_reader_ok(r)) {
        return fail(err, "truncated header");
    }
    if (memcmp(magic, RFP_MAGIC, RFP_MAGIC_LEN)) {
        return fail(err, "not a fingerprint (bad magic)");
    }
    if (wire_get_be32(r) != RFP_VERSION) {
        return fail(err, "unsupported fingerprint version");
    }
    hdr->geo.page_shift = wire_get_be32(r);
    hdr->geo.region_shift = wire_get_be32(r);
    hdr->nr_blocks = wire_get_be32(r);
    if (wire_get_be64(r) != 0) {
        return fail(err, "reserved header field is not zero");
    }
    if (!wire_reader_ok(r)) {
        return fail(err, "truncated header");
    }
    if (!rfp_geometry_valid(&hdr->geo)) {
        return fail(err, "invalid page or region size");
    }
    if (hdr->nr_blocks < 1 || hdr->nr_blocks > RFP_MAX_BLOCKS) {
        return fail(err, "invalid number of blocks");
    }
    return true;
}

static bool scan_block_header(WireReader *r, const RfpHeader *hdr,
                              RfpBlock *b, const char **err)
{
    uint8_t idlen = wire_get_u8(r);

    if (!wire_reader_ok(r)) {
        return fail(err, "truncated block");
    }
    if (!idlen) {
        return fail(err, "empty block name");
    }
    if (!wire_get_bytes(r, b->idstr, idlen)) {
        return fail(err, "truncated block");
    }
    b->idstr[idlen] = '\0';
    if (memchr(b->idstr, '\0', idlen)) {
        return fail(err, "NUL in block name");
    }
    b->used_length = wire_get_be64(r);
    if (!wire_reader_ok(r)) {
        return fail(err, "truncated block");
    }
    if (!b->used_length || b->used_length > RFP_MAX_BLOCK_LENGTH ||
        b->used_length & ((1ull << hdr->geo.page_shift) - 1)) {
        return fail(err, "invalid block length");
    }
    return true;
}

bool rfp_scan(const uint8_t *buf, size_t len, RfpHeader *hdr,
              const RfpVisitor *v, void *opaque, RfpTotals *totals,
              const char **err)
{
    WireReader r;
    RfpTotals seen = { 0 };
    RfpTotals trailer;
    g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash,
                                                        g_str_equal,
                                                        g_free, NULL);
    uint8_t magic[RFP_MAGIC_LEN];

    wire_reader_init(&r, buf, len);
    if (!scan_header(&r, hdr, err)) {
        return false;
    }

    for (uint32_t bi = 0; bi < hdr->nr_blocks; bi++) {
        RfpBlock b = { .index = bi };
        uint64_t rmask = (1ull << hdr->geo.region_shift) - 1;
        uint64_t records = 0;
        uint64_t next = 0;          /* lowest offset the next record may use */

        if (!scan_block_header(&r, hdr, &b, err)) {
            return false;
        }
        if (!g_hash_table_add(names, g_strdup(b.idstr))) {
            return fail(err, "two blocks with one name");
        }
        if (v && v->block && !v->block(hdr, &b, opaque)) {
            return fail(err, "stopped");
        }
        for (;;) {
            RfpRegion reg;
            uint64_t valid;
            unsigned n;

            reg.offset = wire_get_be64(&r);
            if (!wire_reader_ok(&r)) {
                return fail(err, "truncated block");
            }
            if (reg.offset == RFP_BLOCK_END) {
                break;
            }
            if (reg.offset & rmask) {
                return fail(err, "unaligned region offset");
            }
            if (reg.offset < next || reg.offset >= b.used_length) {
                return fail(err, "region offset out of order or range");
            }
            next = reg.offset + rmask + 1;
            reg.npages = rfp_region_pages(&hdr->geo, b.used_length,
                                          reg.offset);
            reg.mask = wire_get_be64(&r);
            valid = reg.npages == 64 ? UINT64_MAX
                                     : (1ull << reg.npages) - 1;
            if (!wire_reader_ok(&r)) {
                return fail(err, "truncated region");
            }
            if (!reg.mask || (reg.mask & ~valid)) {
                return fail(err, "invalid page mask");
            }
            n = __builtin_popcountll(reg.mask);
            reg.hash = r.buf + r.pos;
            if (!wire_skip(&r, RFP_HASH_LEN)) {
                return fail(err, "truncated region");
            }
            reg.page_hashes = r.buf + r.pos;
            if (!wire_skip(&r, (size_t)n * RFP_HASH_LEN)) {
                return fail(err, "truncated region");
            }
            records++;
            seen.regions++;
            seen.pages += n;
            if (v && v->region && !v->region(hdr, &b, &reg, opaque)) {
                return fail(err, "stopped");
            }
        }
        if (wire_get_be64(&r) != records || !wire_reader_ok(&r)) {
            return fail(err, "block record count does not match");
        }
    }

    if (!wire_get_bytes(&r, magic, sizeof(magic))) {
        return fail(err, "truncated trailer");
    }
    if (memcmp(magic, RFP_END_MAGIC, RFP_MAGIC_LEN)) {
        return fail(err, "bad trailer magic");
    }
    trailer.regions = wire_get_be64(&r);
    trailer.pages = wire_get_be64(&r);
    if (!wire_reader_ok(&r)) {
        return fail(err, "truncated trailer");
    }
    if (trailer.regions != seen.regions || trailer.pages != seen.pages) {
        return fail(err, "trailer counts do not match");
    }
    if (!wire_reader_done(&r)) {
        return fail(err, "bytes after the trailer");
    }
    if (totals) {
        *totals = seen;
    }
    return true;
}
