/*
 * Unit tests of the disk-backed-pages map parser and reference codec
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "migration/wire-codec.h"
#include "migration/disk-map.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

#define PAGE DISK_MAP_PAGE_SIZE
#define MiB (1024ull * 1024)
#define ROUND_UP_PAGE(x) (((x) + PAGE - 1) & ~(uint64_t)(PAGE - 1))

/* Guest RAM: [0, 640 KiB) and [1 MiB, 256 MiB); the disk: 64 MiB. */
static bool in_ram(uint64_t gpa, uint64_t len, void *opaque)
{
    uint64_t end = gpa + len;

    if (end < gpa) {
        return false;
    }
    return end <= 640 * 1024 || (gpa >= MiB && end <= 256 * MiB);
}

static const DiskMapEnv env = {
    .in_ram = in_ram,
    .disk_size = 64 * MiB,
};

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = v >> (8 * i);
    }
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = v >> (8 * i);
    }
}

#define MAP_GPA   (100 * MiB)
#define SEG0_GPA  (101 * MiB)
#define SEG1_GPA  (102 * MiB)

/* A valid header page: two segments of 300 and 200 records. */
static void good_header(uint8_t *page)
{
    memset(page, 0, PAGE);
    put_le64(page, DISK_MAP_MAGIC);
    put_le32(page + 8, DISK_MAP_VERSION);
    put_le32(page + 12, 2);
    put_le64(page + 16, 42);
    put_le64(page + 24, 500);
    put_le32(page + 32, PAGE);
    put_le32(page + 36, PAGE);
    put_le64(page + 64, SEG0_GPA);
    put_le64(page + 72, 300);
    put_le64(page + 80, SEG1_GPA);
    put_le64(page + 88, 200);
}

static void test_header_good(void **state)
{
    uint8_t page[PAGE];
    DiskMapLayout map;
    const char *err = NULL;

    good_header(page);
    assert_true(disk_map_parse_header(page, MAP_GPA, &env, &map, &err));
    assert_int_equal(map.generation, 42);
    assert_int_equal(disk_map_generation(page), 42);
    assert_int_equal(map.count, 500);
    assert_int_equal(map.nsegments, 2);
    assert_int_equal(map.seg[1].gpa, SEG1_GPA);
    assert_int_equal(map.seg[1].records, 200);
    /* the magic spells QDISKMAP in memory */
    assert_memory_equal(page, "QDISKMAP", 8);
}

typedef void (*Corrupt)(uint8_t *page);

static void assert_refused(Corrupt corrupt, uint64_t map_gpa,
                           const char *why)
{
    uint8_t page[PAGE];
    DiskMapLayout map;
    const char *err = NULL;

    good_header(page);
    if (corrupt) {
        corrupt(page);
    }
    assert_false(disk_map_parse_header(page, map_gpa, &env, &map, &err));
    assert_non_null(err);
    if (!strstr(err, why)) {
        fail_msg("refused with \"%s\", expected \"%s\"", err, why);
    }
}

static void bad_magic(uint8_t *p)       { p[0] ^= 1; }
static void bad_version(uint8_t *p)     { put_le32(p + 8, 2); }
static void bad_page_size(uint8_t *p)   { put_le32(p + 32, 512); }
static void bad_frame_size(uint8_t *p)  { put_le32(p + 36, 8192); }
static void reserved_set(uint8_t *p)    { p[63] = 1; }
static void odd_generation(uint8_t *p)  { put_le64(p + 16, 43); }
static void no_segments(uint8_t *p)     { put_le32(p + 12, 0); }
static void many_segments(uint8_t *p)
{
    put_le32(p + 12, DISK_MAP_MAX_SEGMENTS + 1);
}
static void huge_count(uint8_t *p)
{
    put_le64(p + 24, DISK_MAP_MAX_RECORDS + 1);
}
static void count_mismatch(uint8_t *p)  { put_le64(p + 24, 499); }
static void seg_unaligned(uint8_t *p)   { put_le64(p + 64, SEG0_GPA + 8); }
static void seg_empty(uint8_t *p)       { put_le64(p + 72, 0); }
static void seg_hole(uint8_t *p)        { put_le64(p + 64, 700 * 1024); }
static void seg_beyond(uint8_t *p)      { put_le64(p + 64, 256 * MiB - PAGE); }
static void seg_on_header(uint8_t *p)   { put_le64(p + 64, MAP_GPA); }
static void seg_overlap(uint8_t *p)
{
    /* segment 1 starts inside segment 0's 300 records (4800 bytes) */
    put_le64(p + 80, SEG0_GPA + PAGE);
}
static void seg_wraps(uint8_t *p)       { put_le64(p + 64, -(uint64_t)PAGE); }

static void test_header_refused(void **state)
{
    assert_refused(bad_magic, MAP_GPA, "magic");
    assert_refused(bad_version, MAP_GPA, "version");
    assert_refused(bad_page_size, MAP_GPA, "4096");
    assert_refused(bad_frame_size, MAP_GPA, "4096");
    assert_refused(reserved_set, MAP_GPA, "reserved");
    assert_refused(odd_generation, MAP_GPA, "odd generation");
    assert_refused(no_segments, MAP_GPA, "segment count");
    assert_refused(many_segments, MAP_GPA, "segment count");
    assert_refused(huge_count, MAP_GPA, "too many records");
    assert_refused(count_mismatch, MAP_GPA, "does not match");
    assert_refused(seg_unaligned, MAP_GPA, "unaligned");
    assert_refused(seg_empty, MAP_GPA, "empty");
    assert_refused(seg_hole, MAP_GPA, "not in guest RAM");
    assert_refused(seg_beyond, MAP_GPA, "not in guest RAM");
    assert_refused(seg_wraps, MAP_GPA, "not in guest RAM");
    assert_refused(seg_on_header, MAP_GPA, "overlap");
    assert_refused(seg_overlap, MAP_GPA, "overlap");
    assert_refused(NULL, MAP_GPA + 8, "not 4096-aligned");
    assert_refused(NULL, 300 * MiB, "not in guest RAM");
}

/*
 * Randomly corrupted header pages, half of them with a valid magic:
 * never accepted with inconsistent fields, never read out of bounds
 * (ASan checks).
 */
static void test_header_garbage(void **state)
{
    GRand *rand = g_rand_new_with_seed(7);
    uint8_t page[PAGE];

    for (int n = 0; n < 20000; n++) {
        DiskMapLayout map;
        const char *err = NULL;

        good_header(page);
        for (int k = 0; k < 4; k++) {
            page[g_rand_int_range(rand, n & 1 ? 8 : 0, 96)] =
                g_rand_int_range(rand, 0, 256);
        }
        if (disk_map_parse_header(page, MAP_GPA, &env, &map, &err)) {
            uint64_t total = 0;

            assert_true(map.nsegments >= 1 &&
                        map.nsegments <= DISK_MAP_MAX_SEGMENTS);
            for (uint32_t i = 0; i < map.nsegments; i++) {
                assert_true(in_ram(map.seg[i].gpa,
                                   map.seg[i].records * 16, NULL));
                total += map.seg[i].records;
            }
            assert_int_equal(total, map.count);
            assert_false(map.generation & 1);
        } else {
            assert_non_null(err);
        }
    }
    g_rand_free(rand);
}

static DiskMapRecState check(const DiskMapLayout *map, uint64_t addr,
                             uint64_t frame, DiskMapRecord *out)
{
    uint8_t rec[DISK_MAP_RECORD_SIZE];

    put_le64(rec, addr);
    put_le64(rec + 8, frame);
    return disk_map_check_record(&env, map, rec, out);
}

static void test_records(void **state)
{
    uint8_t page[PAGE];
    DiskMapLayout map;
    DiskMapRecord r;
    const char *err;

    good_header(page);
    assert_true(disk_map_parse_header(page, MAP_GPA, &env, &map, &err));

    assert_int_equal(check(&map, 120 * MiB, 7, &r), DISK_MAP_REC_OK);
    assert_int_equal(r.gpa, 120 * MiB);
    assert_int_equal(r.frame, 7);
    assert_int_equal(check(&map, 120 * MiB | DISK_MAP_REC_MODIFIED, 7, &r),
                     DISK_MAP_REC_IS_MODIFIED);
    assert_int_equal(r.gpa, 120 * MiB);
    assert_int_equal(check(&map, 120 * MiB | 0x2, 7, &r),
                     DISK_MAP_REC_BAD_FLAGS);
    assert_int_equal(check(&map, 120 * MiB | 0x800, 7, &r),
                     DISK_MAP_REC_BAD_FLAGS);
    assert_int_equal(check(&map, 700 * 1024, 7, &r),
                     DISK_MAP_REC_OUTSIDE_RAM);
    assert_int_equal(check(&map, 256 * MiB, 7, &r),
                     DISK_MAP_REC_OUTSIDE_RAM);
    assert_int_equal(check(&map, -(uint64_t)PAGE, 7, &r),
                     DISK_MAP_REC_OUTSIDE_RAM);
    /* the last frame of the disk, and one past it */
    assert_int_equal(check(&map, 120 * MiB, 64 * MiB / PAGE - 1, &r),
                     DISK_MAP_REC_OK);
    assert_int_equal(check(&map, 120 * MiB, 64 * MiB / PAGE, &r),
                     DISK_MAP_REC_OUTSIDE_DISK);
    assert_int_equal(check(&map, 120 * MiB, UINT64_MAX, &r),
                     DISK_MAP_REC_OUTSIDE_DISK);
    /* pages holding the map: the header and both segments' pages */
    assert_int_equal(check(&map, MAP_GPA, 1, &r), DISK_MAP_REC_IN_MAP);
    assert_int_equal(check(&map, SEG0_GPA + PAGE, 1, &r),
                     DISK_MAP_REC_IN_MAP);
    assert_int_equal(check(&map, SEG1_GPA, 1, &r), DISK_MAP_REC_IN_MAP);
    /* 300 records are 4800 bytes: the segment ends in its second page */
    assert_int_equal(check(&map, SEG0_GPA + 2 * PAGE, 1, &r),
                     DISK_MAP_REC_OK);
}

/*
 * A record on any page of any segment, or of the header page, is
 * refused as IN_MAP, and one on any other page is not, whatever the
 * segments' order in the table: random layouts of up to the most
 * segments, every page around each segment's ends checked against a
 * linear search.
 */
static void test_records_in_segments(void **state)
{
    GRand *rand = g_rand_new_with_seed(17);

    for (int round = 0; round < 200; round++) {
        uint8_t page[PAGE] = { 0 };
        uint32_t nseg = g_rand_int_range(rand, 1, DISK_MAP_MAX_SEGMENTS + 1);
        uint64_t gpa = 2 * MiB, count = 0;
        uint32_t order[DISK_MAP_MAX_SEGMENTS];
        DiskMapLayout map;
        const char *err = NULL;

        good_header(page);
        put_le32(page + 12, nseg);
        for (uint32_t i = 0; i < nseg; i++) {
            order[i] = i;
        }
        for (uint32_t i = nseg - 1; i > 0; i--) {
            uint32_t j = g_rand_int_range(rand, 0, i + 1), t = order[i];

            order[i] = order[j];
            order[j] = t;
        }
        /* segments in address order, a random gap apart, shuffled */
        for (uint32_t k = 0; k < nseg; k++) {
            uint64_t records = g_rand_int_range(rand, 1, 600);
            uint32_t i = order[k];

            gpa += PAGE * g_rand_int_range(rand, 0, 3);
            put_le64(page + 64 + 16 * i, gpa);
            put_le64(page + 72 + 16 * i, records);
            gpa += ROUND_UP_PAGE(records * DISK_MAP_RECORD_SIZE);
            count += records;
        }
        put_le64(page + 24, count);
        assert_true(disk_map_parse_header(page, MAP_GPA, &env, &map, &err));
        for (uint32_t i = 0; i < nseg; i++) {
            uint64_t len = map.seg[i].records * DISK_MAP_RECORD_SIZE;
            uint64_t probe[] = {
                map.seg[i].gpa - PAGE, map.seg[i].gpa,
                map.seg[i].gpa + len - 1, map.seg[i].gpa + len,
                map.seg[i].gpa + len + PAGE,
            };

            for (size_t p = 0; p < ARRAY_SIZE(probe); p++) {
                uint64_t at = probe[p] & ~(uint64_t)(PAGE - 1);
                bool linear = wire_ranges_overlap(at, PAGE, MAP_GPA, PAGE);
                DiskMapRecord r;

                for (uint32_t j = 0; j < nseg; j++) {
                    linear |= wire_ranges_overlap(at, PAGE, map.seg[j].gpa,
                                                  map.seg[j].records *
                                                  DISK_MAP_RECORD_SIZE);
                }
                assert_int_equal(check(&map, at, 1, &r) == DISK_MAP_REC_IN_MAP,
                                 linear);
            }
        }
    }
    g_rand_free(rand);
}

static int cmp_rec(const void *a, const void *b)
{
    const DiskMapRecord *x = a, *y = b;

    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/*
 * Large maps are sorted another way (radix, above 4096 records): the
 * same records kept, in the same order, as a plain sort and a count of
 * the duplicates would give; addresses from a few pages to the whole
 * 64-bit range.
 */
static void test_duplicates_dropped_large(void **state)
{
    static const uint64_t spans[] = { 64 * PAGE, 1ull << 32, 1ull << 40,
                                      UINT64_MAX };
    GRand *rand = g_rand_new_with_seed(5);

    for (size_t k = 0; k < G_N_ELEMENTS(spans); k++) {
        size_t n = 20000 + k;
        g_autofree DiskMapRecord *recs = g_new(DiskMapRecord, n);
        g_autofree DiskMapRecord *ref = g_new(DiskMapRecord, n);
        size_t kept, want = 0;

        for (size_t i = 0; i < n; i++) {
            uint64_t r = ((uint64_t)g_rand_int(rand) << 32) |
                         g_rand_int(rand);

            recs[i].gpa = (r % (spans[k] / PAGE)) * PAGE;
            recs[i].frame = i;
        }
        memcpy(ref, recs, n * sizeof(*recs));
        qsort(ref, n, sizeof(*ref), cmp_rec);
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;

            while (j < n && ref[j].gpa == ref[i].gpa) {
                j++;
            }
            if (j == i + 1) {
                ref[want++] = ref[i];
            }
            i = j;
        }
        kept = disk_map_drop_duplicates(recs, n);
        assert_int_equal(kept, want);
        for (size_t i = 0; i < kept; i++) {
            assert_int_equal(recs[i].gpa, ref[i].gpa);
            assert_int_equal(recs[i].frame, ref[i].frame);
            assert_ptr_equal(disk_map_lookup(recs, kept, recs[i].gpa),
                             &recs[i]);
        }
    }
    g_rand_free(rand);
}

static void test_duplicates_dropped(void **state)
{
    DiskMapRecord recs[] = {
        { 5 * PAGE, 1 }, { 3 * PAGE, 2 }, { 5 * PAGE, 3 }, { 9 * PAGE, 4 },
        { 1 * PAGE, 5 }, { 5 * PAGE, 6 }, { 3 * PAGE, 2 },
    };
    size_t n = disk_map_drop_duplicates(recs, ARRAY_SIZE(recs));

    /* 3 and 5 appear more than once: only 1 and 9 are left, sorted */
    assert_int_equal(n, 2);
    assert_int_equal(recs[0].gpa, 1 * PAGE);
    assert_int_equal(recs[0].frame, 5);
    assert_int_equal(recs[1].gpa, 9 * PAGE);
    assert_non_null(disk_map_lookup(recs, n, 9 * PAGE));
    assert_int_equal(disk_map_lookup(recs, n, 9 * PAGE)->frame, 4);
    assert_null(disk_map_lookup(recs, n, 5 * PAGE));
    assert_null(disk_map_lookup(recs, n, 2 * PAGE));
    assert_int_equal(disk_map_drop_duplicates(recs, 0), 0);
}

static void test_ref_codec(void **state)
{
    uint8_t buf[DISK_REF_RECORD_LEN], hash[DISK_REF_HASH_LEN], out[16];
    uint64_t off;

    for (int i = 0; i < DISK_REF_HASH_LEN; i++) {
        hash[i] = 0xa0 + i;
    }
    disk_ref_encode(buf, 12 * PAGE, hash);
    /* big-endian offset, like the rest of the RAM stream */
    assert_int_equal(buf[6], (12 * PAGE) >> 8);
    assert_true(disk_ref_decode(buf, 64 * MiB, &off, out));
    assert_int_equal(off, 12 * PAGE);
    assert_memory_equal(out, hash, DISK_REF_HASH_LEN);

    /* the last frame fits; past the disk, unaligned: refused */
    disk_ref_encode(buf, 64 * MiB - PAGE, hash);
    assert_true(disk_ref_decode(buf, 64 * MiB, &off, out));
    disk_ref_encode(buf, 64 * MiB, hash);
    assert_false(disk_ref_decode(buf, 64 * MiB, &off, out));
    disk_ref_encode(buf, UINT64_MAX & ~(uint64_t)(PAGE - 1), hash);
    assert_false(disk_ref_decode(buf, 64 * MiB, &off, out));
    disk_ref_encode(buf, 12 * PAGE + 512, hash);
    assert_false(disk_ref_decode(buf, 64 * MiB, &off, out));
}

/* The return path's refusal: round trip, and every malformed length */
static void test_nack_codec(void **state)
{
    uint8_t buf[DISK_REF_NACK_MAX_LEN + 1];
    char idstr[256], long_id[256];
    uint64_t offset;
    size_t len;

    len = disk_ref_nack_encode(buf, 0x1234000, "pc.ram");
    assert_int_equal(len, 8 + 1 + 6);
    assert_true(disk_ref_nack_decode(buf, len, &offset, idstr));
    assert_int_equal(offset, 0x1234000);
    assert_string_equal(idstr, "pc.ram");
    /* one byte short or long, or no room for the idstr's length */
    assert_false(disk_ref_nack_decode(buf, len - 1, &offset, idstr));
    assert_string_equal(idstr, "");
    assert_false(disk_ref_nack_decode(buf, len + 1, &offset, idstr));
    assert_false(disk_ref_nack_decode(buf, 8, &offset, idstr));
    assert_false(disk_ref_nack_decode(buf, 0, &offset, idstr));
    /* an empty idstr, or one with a NUL in it */
    buf[8] = 0;
    assert_false(disk_ref_nack_decode(buf, 9, &offset, idstr));
    len = disk_ref_nack_encode(buf, 0, "pc.ram");
    buf[11] = 0;
    assert_false(disk_ref_nack_decode(buf, len, &offset, idstr));
    /* the longest idstr there is */
    memset(long_id, 'r', 255);
    long_id[255] = 0;
    len = disk_ref_nack_encode(buf, 1, long_id);
    assert_int_equal(len, DISK_REF_NACK_MAX_LEN);
    assert_true(disk_ref_nack_decode(buf, len, &offset, idstr));
    assert_string_equal(idstr, long_id);
}

/* Postcopy's table of references (MIG_CMD_DISK_REFS) */
static void test_table_codec(void **state)
{
    static uint8_t buf[DISK_REF_TABLE_MAX_LEN + DISK_REF_TABLE_ENTRY_LEN];
    uint8_t rec[DISK_REF_RECORD_LEN], hash[DISK_REF_HASH_LEN];
    const uint8_t *got;
    DiskRefTable t;
    uint64_t offset, disk;
    char long_id[256];
    size_t len;

    assert_true(DISK_REF_TABLE_MAX_LEN <= UINT16_MAX);
    memset(hash, 0xa5, sizeof(hash));
    len = disk_ref_table_start(buf, "pc.ram");
    assert_int_equal(len, 7);
    /* no entry */
    assert_false(disk_ref_table_decode(buf, len, &t));
    for (uint64_t i = 0; i < 3; i++) {
        disk_ref_encode(rec, (100 + i) * DISK_MAP_PAGE_SIZE, hash);
        len = disk_ref_table_add(buf, len, i * 2 * DISK_MAP_PAGE_SIZE, rec);
    }
    assert_int_equal(len, 7 + 3 * DISK_REF_TABLE_ENTRY_LEN);
    assert_true(disk_ref_table_decode(buf, len, &t));
    assert_string_equal(t.idstr, "pc.ram");
    assert_int_equal(t.n, 3);
    for (size_t i = 0; i < 3; i++) {
        uint8_t h[DISK_REF_HASH_LEN];

        assert_true(disk_ref_table_entry(&t, i, 1 << 20, &offset, &got));
        assert_int_equal(offset, i * 2 * DISK_MAP_PAGE_SIZE);
        assert_true(disk_ref_decode(got, UINT64_MAX, &disk, h));
        assert_int_equal(disk, (100 + i) * DISK_MAP_PAGE_SIZE);
        assert_memory_equal(h, hash, sizeof(h));
    }
    /* past the entries, or a page past the end of the block */
    assert_false(disk_ref_table_entry(&t, 3, 1 << 20, &offset, &got));
    assert_false(disk_ref_table_entry(&t, 2, 4 * DISK_MAP_PAGE_SIZE,
                                      &offset, &got));
    assert_true(disk_ref_table_entry(&t, 2, 5 * DISK_MAP_PAGE_SIZE,
                                     &offset, &got));
    /* a part of an entry */
    assert_false(disk_ref_table_decode(buf, len - 1, &t));
    assert_false(disk_ref_table_decode(buf, len + 1, &t));
    /* an unaligned page */
    buf[7 + DISK_REF_TABLE_ENTRY_LEN + 7] |= 1;
    assert_true(disk_ref_table_decode(buf, len, &t));
    assert_false(disk_ref_table_entry(&t, 1, 1 << 20, &offset, &got));
    /* an empty idstr, or one with a NUL in it */
    buf[0] = 0;
    assert_false(disk_ref_table_decode(buf, len, &t));
    assert_string_equal(t.idstr, "");
    buf[0] = 6;
    buf[3] = 0;
    assert_false(disk_ref_table_decode(buf, len, &t));
    assert_false(disk_ref_table_decode(buf, 0, &t));
    /* the most entries, with the longest idstr; one more is refused */
    memset(long_id, 'r', 255);
    long_id[255] = 0;
    len = disk_ref_table_start(buf, long_id);
    for (size_t i = 0; i <= DISK_REF_TABLE_MAX_ENTRIES; i++) {
        len = disk_ref_table_add(buf, len, i * DISK_MAP_PAGE_SIZE, rec);
    }
    assert_false(disk_ref_table_decode(buf, len, &t));
    len -= DISK_REF_TABLE_ENTRY_LEN;
    assert_int_equal(len, DISK_REF_TABLE_MAX_LEN);
    assert_true(disk_ref_table_decode(buf, len, &t));
    assert_int_equal(t.n, DISK_REF_TABLE_MAX_ENTRIES);
    assert_string_equal(t.idstr, long_id);
}

/* Which refusals the source takes from the destination */
static void test_nack_valid(void **state)
{
    /* pages 2, 3 and 70 of a 72-page block are in the map */
    DiskMapRecord recs[] = {
        { .gpa = 2 * PAGE, .frame = 9 },
        { .gpa = 3 * PAGE, .frame = 10 },
        { .gpa = 70 * PAGE, .frame = 11 },
    };
    /* 72 bits, as longs of 32 or 64 bits */
    unsigned long unsent[128 / 32] = { 0 };
    uint64_t used = 72 * PAGE;
    const unsigned bits = 8 * sizeof(unsigned long);

    /* page 3 and 70 not sent yet */
    unsent[0] |= 1ul << 3;
    unsent[70 / bits] |= 1ul << (70 % bits);
    assert_true(disk_ref_nack_valid(recs, 3, unsent, used, 2 * PAGE));
    /* not sent yet: it cannot have been refused */
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, 3 * PAGE));
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, 70 * PAGE));
    unsent[70 / bits] = 0;
    assert_true(disk_ref_nack_valid(recs, 3, unsent, used, 70 * PAGE));
    /* not in the map, not page-aligned, past the block's used length */
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, 4 * PAGE));
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, 0));
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, 2 * PAGE + 8));
    assert_false(disk_ref_nack_valid(recs, 3, unsent, 70 * PAGE,
                                     70 * PAGE));
    assert_false(disk_ref_nack_valid(recs, 3, unsent, used, UINT64_MAX));
    /* an empty map */
    assert_false(disk_ref_nack_valid(recs, 0, unsent, used, 2 * PAGE));
}

/* XXH3-128 of exactly one page, in canonical big-endian form */
static void test_ref_hash(void **state)
{
    static uint8_t page[2 * PAGE];
    uint8_t h1[DISK_REF_HASH_LEN], h2[DISK_REF_HASH_LEN];
    XXH128_hash_t x;

    for (size_t i = 0; i < sizeof(page); i++) {
        page[i] = (uint8_t)(i * 131 + 7);
    }
    disk_ref_hash(page, h1);
    x = XXH3_128bits(page, PAGE);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(h1[i], (uint8_t)(x.high64 >> (56 - 8 * i)));
        assert_int_equal(h1[8 + i], (uint8_t)(x.low64 >> (56 - 8 * i)));
    }

    /* bytes past the page do not count; any bit of the page does */
    page[PAGE] ^= 1;
    disk_ref_hash(page, h2);
    assert_memory_equal(h1, h2, DISK_REF_HASH_LEN);
    for (size_t bit = 0; bit < PAGE * 8; bit += 4093) {
        page[bit / 8] ^= 1 << (bit % 8);
        disk_ref_hash(page, h2);
        assert_memory_not_equal(h1, h2, DISK_REF_HASH_LEN);
        page[bit / 8] ^= 1 << (bit % 8);
    }
    disk_ref_hash(page, h2);
    assert_memory_equal(h1, h2, DISK_REF_HASH_LEN);
}

static void test_qualifies(void **state)
{
    DiskRefPage p = { .in_map = true };

    assert_true(disk_ref_qualifies(&p));
    for (int bit = 0; bit < 5; bit++) {
        DiskRefPage q = {
            .in_map = bit != 0,
            .modified = bit == 1,
            .dirtied = bit == 2,
            .frame_written = bit == 3,
            .last_stage = bit == 4,
        };

        assert_false(disk_ref_qualifies(&q));
    }
}

/* The learned map: what a completed request says of its pages */

typedef struct LearnLog {
    int n;
    uintptr_t host[64];
    uint64_t frame[64];
} LearnLog;

static void learn_log(void *opaque, uint8_t *host, uint64_t frame)
{
    LearnLog *l = opaque;

    assert_true(l->n < 64);
    l->host[l->n] = (uintptr_t)host;
    l->frame[l->n++] = frame;
}

#define LEARN_BASE ((uintptr_t)0x10000000)

static void test_learn_whole_pages(void **state)
{
    /* 3 pages in one buffer, then 2 in another, at disk offset 5 frames */
    struct iovec iov[2] = {
        { (void *)LEARN_BASE, 3 * PAGE },
        { (void *)(LEARN_BASE + 8 * PAGE), 2 * PAGE },
    };
    LearnLog l = { 0 };

    assert_int_equal(disk_learn_walk(iov, 2, 0, 5 * PAGE, 5 * PAGE, true,
                                     learn_log, &l), 5);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l.host[i], LEARN_BASE + i * PAGE);
        assert_int_equal(l.frame[i], 5 + i);
    }
    assert_int_equal(l.host[3], LEARN_BASE + 8 * PAGE);
    assert_int_equal(l.frame[3], 8);
    assert_int_equal(l.frame[4], 9);

    /* a write says the same of its pages */
    l.n = 0;
    assert_int_equal(disk_learn_walk(iov, 2, 0, 5 * PAGE, 0, false,
                                     learn_log, &l), 5);
    assert_int_equal(l.frame[4], 4);
}

static void test_learn_skip_and_length(void **state)
{
    struct iovec iov[2] = {
        { (void *)LEARN_BASE, 2 * PAGE },
        { (void *)(LEARN_BASE + 4 * PAGE), 4 * PAGE },
    };
    LearnLog l = { 0 };

    /* the request's data starts in the second buffer, and is 2 pages */
    assert_int_equal(disk_learn_walk(iov, 2, 2 * PAGE + PAGE, 2 * PAGE,
                                     7 * PAGE, true, learn_log, &l), 2);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.host[0], LEARN_BASE + 5 * PAGE);
    assert_int_equal(l.frame[0], 7);
    assert_int_equal(l.host[1], LEARN_BASE + 6 * PAGE);
    assert_int_equal(l.frame[1], 8);

    /* nothing left to walk */
    l.n = 0;
    assert_int_equal(disk_learn_walk(iov, 2, 6 * PAGE, PAGE, 0, true,
                                     learn_log, &l), 0);
    assert_int_equal(l.n, 0);
}

static void test_learn_partial_pages(void **state)
{
    /* a 512-byte read into the middle of a page: forgotten */
    struct iovec mid = { (void *)(LEARN_BASE + 512), 512 };
    /* 2 pages of data starting 1 KiB into a page: 3 pages touched */
    struct iovec off = { (void *)(LEARN_BASE + 1024), 2 * PAGE };
    LearnLog l = { 0 };

    assert_int_equal(disk_learn_walk(&mid, 1, 0, 512, 0, true,
                                     learn_log, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.host[0], LEARN_BASE);
    assert_true(l.frame[0] == DISK_LEARN_FORGET);

    l.n = 0;
    assert_int_equal(disk_learn_walk(&off, 1, 0, 2 * PAGE, 0, true,
                                     learn_log, &l), 0);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l.host[i], LEARN_BASE + i * PAGE);
        assert_true(l.frame[i] == DISK_LEARN_FORGET);
    }

    /* a write only reads the pages: they are left alone */
    l.n = 0;
    assert_int_equal(disk_learn_walk(&off, 1, 0, 2 * PAGE, 0, false,
                                     learn_log, &l), 0);
    assert_int_equal(l.n, 0);
}

static void test_learn_unaligned_disk(void **state)
{
    /* whole pages, but at a disk offset inside a frame: forgotten */
    struct iovec iov = { (void *)LEARN_BASE, 2 * PAGE };
    LearnLog l = { 0 };

    assert_int_equal(disk_learn_walk(&iov, 1, 0, 2 * PAGE, PAGE + 512, true,
                                     learn_log, &l), 0);
    assert_int_equal(l.n, 2);
    assert_true(l.frame[0] == DISK_LEARN_FORGET);
    assert_true(l.frame[1] == DISK_LEARN_FORGET);
}

static void test_learn_page_across_buffers(void **state)
{
    /* one page in two buffers (sectors of a scatter list): forgotten */
    struct iovec iov[2] = {
        { (void *)LEARN_BASE, PAGE / 2 },
        { (void *)(LEARN_BASE + PAGE / 2), PAGE / 2 + PAGE },
    };
    LearnLog l = { 0 };

    assert_int_equal(disk_learn_walk(iov, 2, 0, 2 * PAGE, 0, true,
                                     learn_log, &l), 1);
    assert_int_equal(l.n, 3);
    assert_true(l.frame[0] == DISK_LEARN_FORGET);
    assert_true(l.frame[1] == DISK_LEARN_FORGET);
    assert_int_equal(l.host[2], LEARN_BASE + PAGE);
    assert_int_equal(l.frame[2], 1);
}

static void test_learn_entry(void **state)
{
    assert_int_equal(disk_learn_entry(0), 1);
    assert_int_equal(disk_learn_entry(41), 42);
    assert_int_equal(disk_learn_entry(DISK_LEARN_FORGET), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_good),
        cmocka_unit_test(test_header_refused),
        cmocka_unit_test(test_header_garbage),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_records_in_segments),
        cmocka_unit_test(test_duplicates_dropped),
        cmocka_unit_test(test_duplicates_dropped_large),
        cmocka_unit_test(test_ref_codec),
        cmocka_unit_test(test_nack_codec),
        cmocka_unit_test(test_table_codec),
        cmocka_unit_test(test_nack_valid),
        cmocka_unit_test(test_ref_hash),
        cmocka_unit_test(test_qualifies),
        cmocka_unit_test(test_learn_whole_pages),
        cmocka_unit_test(test_learn_skip_and_length),
        cmocka_unit_test(test_learn_partial_pages),
        cmocka_unit_test(test_learn_unaligned_disk),
        cmocka_unit_test(test_learn_page_across_buffers),
        cmocka_unit_test(test_learn_entry),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("disk-map", tests, NULL, NULL);
}
