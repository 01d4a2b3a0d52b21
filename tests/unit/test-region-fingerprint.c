/*
 * Unit tests of the common-regions fingerprint format
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The hash is GLib's SHA-256 here, QEMU's crypto layer inside QEMU: the
 * two must agree, which the qtest checks on a real guest.
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "migration/region-fingerprint.h"

#define PAGE 4096

static void sha256(const void *buf, size_t len, uint8_t out[RFP_HASH_LEN],
                   void *opaque)
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    gsize n = RFP_HASH_LEN;

    g_checksum_update(c, buf, len);
    g_checksum_get_digest(c, out, &n);
    g_checksum_free(c);
    if (opaque) {
        (*(unsigned *)opaque)++;
    }
}

static bool all_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;

    return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

typedef struct Seen {
    GPtrArray *blocks;          /* of char * */
    GArray *regions;            /* of RfpRegion, pointers into the file */
} Seen;

static bool seen_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    Seen *s = opaque;

    g_ptr_array_add(s->blocks, g_strdup(b->idstr));
    return true;
}

static bool seen_region(const RfpHeader *h, const RfpBlock *b,
                        const RfpRegion *r, void *opaque)
{
    Seen *s = opaque;

    g_array_append_val(s->regions, *r);
    return true;
}

static const RfpVisitor seen_visitor = {
    .block = seen_block,
    .region = seen_region,
};

static void seen_init(Seen *s)
{
    s->blocks = g_ptr_array_new_with_free_func(g_free);
    s->regions = g_array_new(false, false, sizeof(RfpRegion));
}

static void seen_free(Seen *s)
{
    g_ptr_array_free(s->blocks, true);
    g_array_free(s->regions, true);
}

/*
 * The small file most tests mutate: 4-page regions, one block "pc.ram"
 * of 6 pages, page 1 and page 4 not zero.  The offsets below are its
 * layout, which test_layout checks.
 */
#define SMALL_LEN       247
#define OFF_VERSION     8
#define OFF_PSHIFT      12
#define OFF_RSHIFT      16
#define OFF_NBLOCKS     20
#define OFF_RESERVED    24
#define OFF_IDLEN       32
#define OFF_NAME        33
#define OFF_USED        39
#define OFF_R0          47
#define OFF_R0_MASK     55
#define OFF_R0_HASH     63
#define OFF_R0_PAGE     95
#define OFF_R1          127
#define OFF_R1_MASK     135
#define OFF_R1_HASH     143
#define OFF_R1_PAGE     175
#define OFF_END         207
#define OFF_RECORDS     215
#define OFF_TRAILER     223
#define OFF_T_REGIONS   231
#define OFF_T_PAGES     239

static uint8_t *small_mem(void)
{
    uint8_t *mem = g_malloc0(6 * PAGE);

    memset(mem + 1 * PAGE, 0x11, PAGE);
    mem[4 * PAGE + 100] = 0x44;
    return mem;
}

static GByteArray *small_file(void)
{
    RfpGeometry g = { .page_shift = 12, .region_shift = 14 };
    g_autofree uint8_t *mem = small_mem();
    GByteArray *out = g_byte_array_new();
    RfpWriter w;

    rfp_writer_init(&w, &g, 1, sha256, all_zero, NULL, out);
    rfp_writer_block(&w, "pc.ram", mem, 6 * PAGE);
    rfp_writer_finish(&w);
    assert_int_equal(w.regions, 2);
    assert_int_equal(w.pages, 2);
    assert_int_equal(w.zero_pages, 4);
    return out;
}

static void test_geometry(void **state)
{
    RfpGeometry ok[] = { { 12, 12 }, { 12, 16 }, { 12, 18 }, { 16, 22 } };
    RfpGeometry bad[] = { { 11, 12 }, { 17, 17 }, { 12, 11 }, { 12, 19 },
                          { 16, 23 } };

    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        assert_true(rfp_geometry_valid(&ok[i]));
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_false(rfp_geometry_valid(&bad[i]));
    }
    assert_int_equal(rfp_region_pages(&ok[1], 6 * PAGE, 0), 6);
    assert_int_equal(rfp_region_pages(&ok[1], 40 * PAGE, 32 * PAGE), 8);
    assert_int_equal(rfp_region_pages(&ok[1], 40 * PAGE, 16 * PAGE), 16);
}

/* The writer's output, field by field, with independently computed hashes. */
static void test_layout(void **state)
{
    g_autoptr(GByteArray) f = small_file();
    g_autofree uint8_t *mem = small_mem();
    uint8_t zero[PAGE] = { 0 };
    uint8_t ph[4][RFP_HASH_LEN];
    uint8_t want[RFP_HASH_LEN];
    const uint8_t *d;

    assert_int_equal(f->len, SMALL_LEN);
    d = f->data;
    assert_memory_equal(d, "QEMURFP\0", 8);
    assert_int_equal(d[OFF_VERSION + 3], 1);
    assert_int_equal(d[OFF_PSHIFT + 3], 12);
    assert_int_equal(d[OFF_RSHIFT + 3], 14);
    assert_int_equal(d[OFF_NBLOCKS + 3], 1);
    assert_int_equal(d[OFF_IDLEN], 6);
    assert_memory_equal(d + OFF_NAME, "pc.ram", 6);
    assert_int_equal(d[OFF_USED + 6], 0x60);       /* 6 * 4096 = 0x6000 */
    assert_int_equal(d[OFF_R0_MASK + 7], 0x2);
    assert_int_equal(d[OFF_R1 + 6], 0x40);         /* offset 0x4000 */
    assert_int_equal(d[OFF_R1_MASK + 7], 0x1);
    assert_memory_equal(d + OFF_END, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    assert_int_equal(d[OFF_RECORDS + 7], 2);
    assert_memory_equal(d + OFF_TRAILER, "QRFPEND\0", 8);
    assert_int_equal(d[OFF_T_REGIONS + 7], 2);
    assert_int_equal(d[OFF_T_PAGES + 7], 2);

    /* region 0: the hash of page 1, and of its four pages' hashes */
    sha256(zero, PAGE, ph[0], NULL);
    sha256(mem + PAGE, PAGE, ph[1], NULL);
    memcpy(ph[2], ph[0], RFP_HASH_LEN);
    memcpy(ph[3], ph[0], RFP_HASH_LEN);
    assert_memory_equal(d + OFF_R0_PAGE, ph[1], RFP_HASH_LEN);
    sha256(ph, sizeof(ph), want, NULL);
    assert_memory_equal(d + OFF_R0_HASH, want, RFP_HASH_LEN);

    /* region 1 has two pages in the block: page 4, then zero page 5 */
    sha256(mem + 4 * PAGE, PAGE, ph[0], NULL);
    sha256(zero, PAGE, ph[1], NULL);
    assert_memory_equal(d + OFF_R1_PAGE, ph[0], RFP_HASH_LEN);
    sha256(ph, 2 * RFP_HASH_LEN, want, NULL);
    assert_memory_equal(d + OFF_R1_HASH, want, RFP_HASH_LEN);
}

static void test_scan_round_trip(void **state)
{
    RfpGeometry g = { .page_shift = 12, .region_shift = 16 };
    size_t len0 = 40 * PAGE, len1 = 16 * PAGE;
    g_autofree uint8_t *m0 = g_malloc0(len0);
    g_autofree uint8_t *m1 = g_malloc0(len1);
    g_autoptr(GByteArray) out = g_byte_array_new();
    unsigned hashes = 0;
    RfpHeader h;
    RfpTotals t;
    RfpWriter w;
    const char *err = NULL;
    Seen s;

    /* block 0: region 0 zero, region 1 full, region 2 (8 pages) one page */
    for (size_t i = 16; i < 32; i++) {
        memset(m0 + i * PAGE, i, PAGE);
    }
    m0[39 * PAGE] = 1;
    /* block 1: all zero, so no region at all */

    rfp_writer_init(&w, &g, 2, sha256, all_zero, &hashes, out);
    rfp_writer_block(&w, "pc.ram", m0, len0);
    rfp_writer_block(&w, "vga.vram", m1, len1);
    rfp_writer_finish(&w);
    /* the zero page once, 17 pages, 2 regions: zero pages are not hashed */
    assert_int_equal(hashes, 1 + 17 + 2);

    seen_init(&s);
    assert_true(rfp_scan(out->data, out->len, &h, &seen_visitor, &s, &t,
                         &err));
    assert_int_equal(h.geo.page_shift, 12);
    assert_int_equal(h.geo.region_shift, 16);
    assert_int_equal(h.nr_blocks, 2);
    assert_int_equal(t.regions, 2);
    assert_int_equal(t.pages, 17);
    assert_int_equal(s.blocks->len, 2);
    assert_string_equal(g_ptr_array_index(s.blocks, 1), "vga.vram");
    assert_int_equal(s.regions->len, 2);
    {
        RfpRegion *r0 = &g_array_index(s.regions, RfpRegion, 0);
        RfpRegion *r1 = &g_array_index(s.regions, RfpRegion, 1);
        uint8_t want[RFP_HASH_LEN];

        assert_int_equal(r0->offset, 16 * PAGE);
        assert_int_equal(r0->mask, 0xffff);
        assert_int_equal(r0->npages, 16);
        for (unsigned i = 0; i < 16; i++) {
            sha256(m0 + (16 + i) * PAGE, PAGE, want, NULL);
            assert_memory_equal(r0->page_hashes + i * RFP_HASH_LEN, want,
                                RFP_HASH_LEN);
        }
        rfp_region_hash((const uint8_t (*)[RFP_HASH_LEN])r0->page_hashes, 16,
                        sha256, NULL, want);
        assert_memory_equal(r0->hash, want, RFP_HASH_LEN);
        assert_int_equal(r1->offset, 32 * PAGE);
        assert_int_equal(r1->mask, 0x80);
        assert_int_equal(r1->npages, 8);
    }
    seen_free(&s);
    assert_null(err);
}

/* A region of 64 pages uses every bit of the mask. */
static void test_full_mask(void **state)
{
    RfpGeometry g = { .page_shift = 12, .region_shift = 18 };
    g_autofree uint8_t *mem = g_malloc(64 * PAGE);
    g_autoptr(GByteArray) out = g_byte_array_new();
    RfpWriter w;
    RfpHeader h;
    RfpTotals t;
    const char *err;

    memset(mem, 0xa5, 64 * PAGE);
    rfp_writer_init(&w, &g, 1, sha256, all_zero, NULL, out);
    rfp_writer_block(&w, "big", mem, 64 * PAGE);
    rfp_writer_finish(&w);
    assert_true(rfp_scan(out->data, out->len, &h, NULL, NULL, &t, &err));
    assert_int_equal(t.pages, 64);
    assert_memory_equal(out->data + 32 + 1 + 3 + 8 + 8,
                        "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) {
        p[i] = v;
    }
}

typedef struct Mutation {
    size_t off;
    int width;                  /* 1, 4 or 8 bytes */
    uint64_t value;
    const char *err;            /* NULL: any error */
} Mutation;

static void test_malformed(void **state)
{
    static const Mutation muts[] = {
        { 0, 1, 'X', "bad magic" },
        { OFF_VERSION, 4, 2, "version" },
        { OFF_PSHIFT, 4, 11, "page or region size" },
        { OFF_PSHIFT, 4, 17, "page or region size" },
        { OFF_RSHIFT, 4, 11, "page or region size" },
        { OFF_RSHIFT, 4, 19, "page or region size" },
        { OFF_NBLOCKS, 4, 0, "number of blocks" },
        { OFF_NBLOCKS, 4, RFP_MAX_BLOCKS + 1, "number of blocks" },
        { OFF_NBLOCKS, 4, 2, NULL },
        { OFF_RESERVED + 7, 1, 1, "reserved" },
        { OFF_IDLEN, 1, 0, "empty block name" },
        { OFF_NAME + 2, 1, 0, "NUL in block name" },
        { OFF_USED, 8, 0, "invalid block length" },
        { OFF_USED, 8, 6 * PAGE + 1, "invalid block length" },
        { OFF_USED, 8, RFP_MAX_BLOCK_LENGTH + PAGE, "invalid block length" },
        { OFF_USED, 8, 4 * PAGE, "out of order or range" },
        { OFF_R0, 8, 1, "unaligned" },
        { OFF_R0, 8, 4 * PAGE, "out of order or range" },
        { OFF_R1, 8, 0, "out of order or range" },
        { OFF_R1, 8, 8 * PAGE, "out of order or range" },
        { OFF_R0_MASK, 8, 0, "invalid page mask" },
        { OFF_R0_MASK, 8, 0x10, "invalid page mask" },
        { OFF_R1_MASK, 8, 0x4, "invalid page mask" },
        { OFF_R1_MASK, 8, 1ull << 63, "invalid page mask" },
        { OFF_R0_MASK, 8, 0x3, NULL },
        { OFF_END, 1, 0, NULL },
        { OFF_RECORDS, 8, 3, "block record count" },
        { OFF_RECORDS, 8, 1, "block record count" },
        { OFF_TRAILER, 1, 'q', "bad trailer magic" },
        { OFF_T_REGIONS, 8, 3, "trailer counts" },
        { OFF_T_PAGES, 8, 1, "trailer counts" },
    };
    g_autoptr(GByteArray) f = small_file();
    RfpHeader h;
    const char *err = NULL;

    assert_true(rfp_scan(f->data, f->len, &h, NULL, NULL, NULL, &err));

    for (size_t i = 0; i < ARRAY_SIZE(muts); i++) {
        g_autofree uint8_t *b = g_memdup2(f->data, f->len);
        const Mutation *m = &muts[i];

        if (m->width == 1) {
            b[m->off] = m->value;
        } else if (m->width == 4) {
            uint8_t v[8];

            put64(v, m->value);
            memcpy(b + m->off, v + 4, 4);
        } else {
            put64(b + m->off, m->value);
        }
        err = NULL;
        if (rfp_scan(b, f->len, &h, NULL, NULL, NULL, &err)) {
            fail_msg("mutation %zu was accepted", i);
        }
        assert_non_null(err);
        if (m->err && !strstr(err, m->err)) {
            fail_msg("mutation %zu: \"%s\", expected \"%s\"", i, err, m->err);
        }
    }

    /* every truncation, and one byte more */
    for (size_t n = 0; n < f->len; n++) {
        assert_false(rfp_scan(n ? f->data : NULL, n, &h, NULL, NULL, NULL,
                              &err));
    }
    g_byte_array_append(f, (const uint8_t *)"", 1);
    assert_false(rfp_scan(f->data, f->len, &h, NULL, NULL, NULL, &err));
    assert_string_equal(err, "bytes after the trailer");
}

static void test_duplicate_names(void **state)
{
    RfpGeometry g = { .page_shift = 12, .region_shift = 12 };
    uint8_t page[PAGE];
    g_autoptr(GByteArray) out = g_byte_array_new();
    RfpWriter w;
    RfpHeader h;
    const char *err;

    memset(page, 7, sizeof(page));
    rfp_writer_init(&w, &g, 2, sha256, all_zero, NULL, out);
    rfp_writer_block(&w, "a", page, PAGE);
    rfp_writer_block(&w, "a", page, PAGE);
    rfp_writer_finish(&w);
    assert_false(rfp_scan(out->data, out->len, &h, NULL, NULL, NULL, &err));
    assert_string_equal(err, "two blocks with one name");
}

static bool stop_at_second(const RfpHeader *h, const RfpBlock *b,
                           const RfpRegion *r, void *opaque)
{
    return ++*(int *)opaque < 2;
}

static void test_visitor_stops(void **state)
{
    g_autoptr(GByteArray) f = small_file();
    RfpVisitor v = { .region = stop_at_second };
    RfpHeader h;
    const char *err;
    int calls = 0;

    assert_false(rfp_scan(f->data, f->len, &h, &v, &calls, NULL, &err));
    assert_string_equal(err, "stopped");
    assert_int_equal(calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_scan_round_trip),
        cmocka_unit_test(test_full_mask),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_visitor_stops),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("region-fingerprint", tests, NULL,
                                       NULL);
}
