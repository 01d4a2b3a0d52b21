/*
 * Unit tests of the shared-file-spill file format, freshness and split
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "migration/spill-format.h"

#define PS 512                  /* small pages keep the files small */

static const SpillHeader hdr = {
    .page_size = PS,
    .uuid = "0123456789abcdef",
};

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = v >> (8 * i);
    }
}

/* Re-seal a header after changing it, so that only the change counts. */
static void reseal(uint8_t *buf)
{
    put_le64(buf + SPILL_HEADER_SIZE - 8,
             XXH3_64bits(buf, SPILL_HEADER_SIZE - 8));
}

static void test_header(void **state)
{
    uint8_t buf[SPILL_HEADER_SIZE];
    SpillHeader h;
    const char *err = NULL;

    spill_header_encode(buf, &hdr);
    assert_memory_equal(buf, "QSPILL01", 8);
    assert_true(spill_header_decode(buf, &h, &err));
    assert_int_equal(h.page_size, PS);
    assert_memory_equal(h.uuid, hdr.uuid, SPILL_UUID_LEN);

    buf[100] = 1;
    assert_false(spill_header_decode(buf, &h, &err));
    assert_non_null(strstr(err, "checksum"));
    reseal(buf);
    assert_false(spill_header_decode(buf, &h, &err));
    assert_non_null(strstr(err, "reserved"));

    spill_header_encode(buf, &hdr);
    buf[0] = 'X';
    reseal(buf);
    assert_false(spill_header_decode(buf, &h, &err));
    assert_non_null(strstr(err, "magic"));

    spill_header_encode(buf, &hdr);
    buf[8] = 2;
    reseal(buf);
    assert_false(spill_header_decode(buf, &h, &err));
    assert_non_null(strstr(err, "version"));

    spill_header_encode(buf, &hdr);
    buf[12] = 0x10;             /* page size 528 */
    buf[13] = 0x02;
    reseal(buf);
    assert_false(spill_header_decode(buf, &h, &err));
    assert_non_null(strstr(err, "page size"));
}

/* A file being built: the bytes and where each record starts. */
typedef struct File {
    uint8_t *buf;
    uint64_t len;
    uint64_t seq;
} File;

static void file_init(File *f)
{
    f->buf = g_malloc(SPILL_HEADER_SIZE);
    spill_header_encode(f->buf, &hdr);
    f->len = SPILL_HEADER_SIZE;
    f->seq = 0;
}

static void file_add(File *f, SpillRecType type, uint16_t block,
                     uint64_t seq, uint64_t offset, const void *payload,
                     uint32_t len)
{
    uint64_t size = spill_record_size(len);

    f->buf = g_realloc(f->buf, f->len + size);
    spill_record_encode(f->buf + f->len, type, block, seq, offset, payload,
                        len);
    f->len += size;
}

static void add_block(File *f, uint16_t n, const char *idstr, uint64_t length)
{
    uint8_t p[8 + 255];

    put_le64(p, length);
    memcpy(p + 8, idstr, strlen(idstr));
    file_add(f, SPILL_REC_BLOCK, n, ++f->seq, 0, p, 8 + strlen(idstr));
}

static void add_page(File *f, uint16_t block, uint64_t offset, uint8_t fill)
{
    uint8_t p[PS];

    memset(p, fill, PS);
    file_add(f, SPILL_REC_PAGE, block, ++f->seq, offset, p, PS);
}

/* header, two blocks, three pages, a stream record, end */
static void good_file(File *f)
{
    file_init(f);
    add_block(f, 0, "pc.ram", 64 * PS);
    add_block(f, 1, "vga.vram", 8 * PS);
    add_page(f, 0, 3 * PS, 0x33);
    add_page(f, 1, 7 * PS, 0x17);
    add_page(f, 0, 63 * PS, 0x63);
    file_add(f, SPILL_REC_STREAM, 0, ++f->seq, 0, "device state!", 13);
    file_add(f, SPILL_REC_END, 0, ++f->seq, 0, NULL, 0);
}

typedef struct ScanOut {
    SpillScanResult last;
    int records;
    int pages;
    uint64_t end_pos;
    const char *err;
} ScanOut;

/* Scan the first @len bytes of @f, as a reader that has only those. */
static ScanOut scan(const File *f, uint64_t len)
{
    SpillScan s;
    SpillHeader h;
    ScanOut o = { 0 };
    const char *err = NULL;

    if (len < SPILL_HEADER_SIZE || !spill_header_decode(f->buf, &h, &err)) {
        o.last = SPILL_SCAN_CORRUPT;
        o.err = err ? err : "short header";
        return o;
    }
    spill_scan_init(&s, &h);
    for (;;) {
        SpillRecord rec;
        uint64_t want = 0;

        o.last = spill_scan_next(&s, f->buf + s.pos, len - s.pos, &rec, &want,
                                 &o.err);
        if (o.last == SPILL_SCAN_RECORD || o.last == SPILL_SCAN_END) {
            /* never a record reaching past what the reader has */
            assert_true(s.pos <= len);
        }
        if (o.last != SPILL_SCAN_RECORD) {
            if (o.last == SPILL_SCAN_MORE) {
                assert_true(want > len - s.pos);
            }
            o.end_pos = s.pos;
            return o;
        }
        o.records++;
        o.pages += rec.type == SPILL_REC_PAGE;
        if (rec.type == SPILL_REC_PAGE && rec.block == 1) {
            assert_int_equal(rec.offset, 7 * PS);
            assert_int_equal(rec.payload[0], 0x17);
            assert_string_equal(s.blocks[1].idstr, "vga.vram");
        }
    }
}

static void test_good_file(void **state)
{
    File f;
    ScanOut o;

    good_file(&f);
    o = scan(&f, f.len);
    assert_int_equal(o.last, SPILL_SCAN_END);
    assert_int_equal(o.records, 6);
    assert_int_equal(o.pages, 3);
    assert_int_equal(o.end_pos, f.len);
    g_free(f.buf);
}

/* Every prefix of the file: complete only when it is the whole file. */
static void test_truncated(void **state)
{
    File f;

    good_file(&f);
    for (uint64_t len = 0; len < f.len; len++) {
        ScanOut o = scan(&f, len);

        assert_true(o.last == SPILL_SCAN_MORE ||
                    (len < SPILL_HEADER_SIZE &&
                     o.last == SPILL_SCAN_CORRUPT));
    }
    g_free(f.buf);
}

/*
 * Every flipped bit of the file is detected: as corruption, or, when it
 * makes a length ask for more bytes than the file has, as truncation.
 * Either way the file does not reach its end record and is refused.
 */
static void test_corrupt_every_byte(void **state)
{
    File f;

    good_file(&f);
    for (uint64_t i = 0; i < f.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            ScanOut o;

            f.buf[i] ^= 1 << bit;
            o = scan(&f, f.len);
            if (o.last != SPILL_SCAN_CORRUPT && o.last != SPILL_SCAN_MORE) {
                fail_msg("flip at byte %" PRIu64 " bit %d not detected",
                         i, bit);
            }
            f.buf[i] ^= 1 << bit;
        }
    }
    g_free(f.buf);
}

/* Well-sealed records that make no sense are refused too. */
static void assert_corrupt(File *f, const char *why)
{
    ScanOut o = scan(f, f->len);

    assert_int_equal(o.last, SPILL_SCAN_CORRUPT);
    if (!strstr(o.err, why)) {
        fail_msg("refused with \"%s\", expected \"%s\"", o.err, why);
    }
    g_free(f->buf);
}

static void test_semantic_corruption(void **state)
{
    File f;

    file_init(&f);
    add_page(&f, 0, 0, 1);
    assert_corrupt(&f, "undefined block");

    file_init(&f);
    add_block(&f, 0, "pc.ram", 4 * PS);
    add_page(&f, 0, 4 * PS, 1);
    assert_corrupt(&f, "outside its block");

    file_init(&f);
    add_block(&f, 0, "pc.ram", 4 * PS);
    add_page(&f, 0, PS / 2, 1);
    assert_corrupt(&f, "outside its block");

    file_init(&f);
    add_block(&f, 1, "pc.ram", 4 * PS);
    assert_corrupt(&f, "out of order");

    file_init(&f);
    add_block(&f, 0, "pc.ram", 4 * PS + 1);
    assert_corrupt(&f, "bad block record");

    file_init(&f);
    add_block(&f, 0, "pc.ram", 4 * PS);
    add_page(&f, 0, 0, 1);
    f.seq -= 1;
    add_page(&f, 0, PS, 1);
    assert_corrupt(&f, "do not increase");

    file_init(&f);
    add_block(&f, 0, "pc.ram", 4 * PS);
    file_add(&f, SPILL_REC_PAGE, 0, ++f.seq, 0, "short", 5);
    assert_corrupt(&f, "page record length");

    file_init(&f);
    file_add(&f, 9, 0, ++f.seq, 0, NULL, 0);
    assert_corrupt(&f, "unknown or unused record type");

    /* reserved: no writer emits it */
    file_init(&f);
    file_add(&f, SPILL_REC_STATE, 0, ++f.seq, 0, "device state!", 13);
    assert_corrupt(&f, "unknown or unused record type");

    file_init(&f);
    file_add(&f, SPILL_REC_END, 0, ++f.seq, 0, NULL, 0);
    add_block(&f, 0, "pc.ram", 4 * PS);
    assert_corrupt(&f, "after the end");

    file_init(&f);
    file_add(&f, SPILL_REC_END, 0, ++f.seq, 0, "x", 1);
    assert_corrupt(&f, "end record with a payload");
}

/*
 * The position files the source reads: this migration's at the exact
 * size only; anything else decodes to nothing.
 */
static void test_position_files(void **state)
{
    uint8_t buf[SPILL_ACK_SIZE], other[SPILL_UUID_LEN];
    uint64_t v[2];

    spill_pos_encode(buf, SPILL_ACK_MAGIC, hdr.uuid,
                     (uint64_t[]) { 1ull << 40, 77 }, 2);
    assert_true(spill_pos_decode(buf, sizeof(buf), SPILL_ACK_MAGIC, hdr.uuid,
                                 v, 2));
    assert_int_equal(v[0], 1ull << 40);
    assert_int_equal(v[1], 77);
    /* short, long, another magic, another migration */
    assert_false(spill_pos_decode(buf, sizeof(buf) - 1, SPILL_ACK_MAGIC,
                                  hdr.uuid, v, 2));
    assert_int_equal(v[0], 0);
    assert_false(spill_pos_decode(buf, sizeof(buf), SPILL_ACK_MAGIC,
                                  hdr.uuid, v, 1));
    assert_false(spill_pos_decode(buf, sizeof(buf), SPILL_LOADED_MAGIC,
                                  hdr.uuid, v, 2));
    memcpy(other, hdr.uuid, sizeof(other));
    other[15] ^= 0x80;
    assert_false(spill_pos_decode(buf, sizeof(buf), SPILL_ACK_MAGIC, other,
                                  v, 2));
    spill_pos_encode(buf, SPILL_LOADED_MAGIC, hdr.uuid, (uint64_t[]) { 9 },
                     1);
    assert_true(spill_pos_decode(buf, SPILL_LOADED_SIZE, SPILL_LOADED_MAGIC,
                                 hdr.uuid, v, 1));
    assert_int_equal(v[0], 9);
}

/*
 * A record header that claims a length no writer emits is refused from
 * its 32 bytes alone: no reader is asked to read (and buffer) more of
 * it before its checksum could be checked.
 */
static void test_length_cap(void **state)
{
    static const struct {
        SpillRecType type;
        uint32_t len;
    } bad[] = {
        { SPILL_REC_STATE, 1u << 30 },
        { SPILL_REC_STREAM, SPILL_MAX_STREAM + 1 },
        { SPILL_REC_STREAM, UINT32_MAX },
        { SPILL_REC_PAGE, 1u << 30 },
        { SPILL_REC_BLOCK, 1u << 30 },
        { 7, 1u << 30 },
    };
    SpillHeader h = { .page_size = PS };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint8_t rec[SPILL_REC_HEADER_SIZE];
        SpillRecord out;
        SpillScan s;
        uint64_t want = 0;
        const char *err = NULL;

        /* a valid header for a zero-length record, then a huge length */
        spill_record_encode(rec, bad[i].type, 0, 1, 0, NULL, 0);
        rec[24] = bad[i].len;
        rec[25] = bad[i].len >> 8;
        rec[26] = bad[i].len >> 16;
        rec[27] = bad[i].len >> 24;
        spill_scan_init(&s, &h);
        assert_int_equal(spill_scan_next(&s, rec, sizeof(rec), &out, &want,
                                         &err), SPILL_SCAN_CORRUPT);
        assert_int_equal(want, 0);
    }
    /* the largest a writer emits is asked for, then checked */
    {
        g_autofree uint8_t *big = g_malloc0(spill_record_size(
                                                SPILL_MAX_STREAM));
        SpillRecord out;
        SpillScan s;
        uint64_t want = 0;
        const char *err = NULL;

        spill_record_encode(big, SPILL_REC_STREAM, 0, 1, 0, big + 32,
                            SPILL_MAX_STREAM);
        spill_scan_init(&s, &h);
        assert_int_equal(spill_scan_next(&s, big, SPILL_REC_HEADER_SIZE, &out,
                                         &want, &err), SPILL_SCAN_MORE);
        assert_int_equal(want, spill_record_size(SPILL_MAX_STREAM));
        assert_int_equal(spill_scan_next(&s, big, want, &out, &want, &err),
                         SPILL_SCAN_RECORD);
    }
}

/* A file of STREAM records: the migration stream, teed */
static void stream_file(File *f, uint64_t total, uint32_t chunk)
{
    g_autofree uint8_t *bytes = g_malloc(total);

    for (uint64_t i = 0; i < total; i++) {
        bytes[i] = i * 7 + 3;
    }
    file_init(f);
    for (uint64_t off = 0; off < total; off += chunk) {
        uint32_t len = MIN(chunk, total - off);

        file_add(f, SPILL_REC_STREAM, 0, ++f->seq, off, bytes + off, len);
    }
}

static SpillScanResult scan_stream(const File *f, uint64_t *stream_end,
                                   const char **err)
{
    SpillScan s;
    SpillHeader h;
    SpillScanResult r;

    assert_true(spill_header_decode(f->buf, &h, err));
    spill_scan_init(&s, &h);
    do {
        SpillRecord rec;
        uint64_t want;

        r = spill_scan_next(&s, f->buf + s.pos, f->len - s.pos, &rec, &want,
                            err);
        if (r == SPILL_SCAN_RECORD) {
            assert_int_equal(rec.type, SPILL_REC_STREAM);
            /* the payload is the stream's bytes at its offset */
            assert_int_equal(rec.payload[0], (uint8_t)(rec.offset * 7 + 3));
        }
    } while (r == SPILL_SCAN_RECORD);
    *stream_end = s.stream_end;
    return r;
}

/*
 * Scan @f from @pos record by record as spill_read_record() does: each
 * read takes just the bytes of the next record, and after END one more
 * read looks past it.
 */
static SpillScanResult scan_like_reader(SpillScan *s, const File *f,
                                        const char **err)
{
    for (;;) {
        SpillRecord rec;
        uint64_t want = 0, avail = MIN(f->len - s->pos, SPILL_REC_HEADER_SIZE);
        bool was_ended = s->ended;
        SpillScanResult r = spill_scan_next(s, f->buf + s->pos, avail, &rec,
                                            &want, err);

        if (r == SPILL_SCAN_MORE && f->len - s->pos >= want &&
            want > avail) {
            r = spill_scan_next(s, f->buf + s->pos, want, &rec, &want, err);
        }
        if (r == SPILL_SCAN_END && !was_ended) {
            continue;           /* look past END */
        }
        if (r != SPILL_SCAN_RECORD) {
            return r;
        }
    }
}

/*
 * END as shared storage may show it: torn (part of it), a hole (zeros),
 * then whole.  The reader waits SPILL_TORN_MS for a bad END to become
 * whole before it calls the file corrupt; and nothing may follow END.
 */
static void test_torn_end(void **state)
{
    const char *err = NULL;
    SpillTorn torn = { 0 };
    uint64_t end_at;
    SpillScan s;
    File f;

    stream_file(&f, 10000, 4096);
    end_at = f.len;
    file_add(&f, SPILL_REC_END, 0, ++f.seq, 0, NULL, 0);

    /* torn: 16 of END's 32 bytes are there; more is to come */
    {
        File part = { .buf = f.buf, .len = end_at + 16 };

        spill_scan_init(&s, &hdr);
        assert_int_equal(scan_like_reader(&s, &part, &err), SPILL_SCAN_MORE);
    }

    /* a hole: END's bytes read as zeros, a bad record for 5 s */
    {
        File hole = { .buf = g_memdup2(f.buf, f.len), .len = f.len };

        memset(hole.buf + end_at, 0, SPILL_REC_HEADER_SIZE);
        spill_scan_init(&s, &hdr);
        assert_int_equal(scan_like_reader(&s, &hole, &err),
                         SPILL_SCAN_CORRUPT);
        assert_int_equal(s.pos, end_at);
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT, 1000));
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT, 3000));
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                        1000 + SPILL_TORN_MS));
        /* ... then whole: END, and the rule starts afresh */
        assert_int_equal(scan_like_reader(&s, &f, &err), SPILL_SCAN_END);
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_END, 5500));
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT, 9000));
        assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                        9000 + SPILL_TORN_MS));
        /* bad for longer than SPILL_TORN_MS: corrupt for good */
        assert_true(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                       9001 + SPILL_TORN_MS));
        g_free(hole.buf);
    }

    /* a clock that starts at 0 still counts */
    torn = (SpillTorn) { 0 };
    assert_false(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT, 0));
    assert_true(spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                   SPILL_TORN_MS + 1));

    /* anything after END, even one record's worth of zeros: corrupt */
    f.buf = g_realloc(f.buf, f.len + 8);
    memset(f.buf + f.len, 0, 8);
    f.len += 8;
    spill_scan_init(&s, &hdr);
    err = NULL;
    assert_int_equal(scan_like_reader(&s, &f, &err), SPILL_SCAN_CORRUPT);
    assert_non_null(strstr(err, "after the end"));
    g_free(f.buf);
}

static void test_stream_records(void **state)
{
    uint64_t end;
    const char *err = NULL;
    File f;

    /* complete: every byte, then END */
    stream_file(&f, 100000, 4096);
    file_add(&f, SPILL_REC_END, 0, ++f.seq, 0, NULL, 0);
    assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_END);
    assert_int_equal(end, 100000);
    g_free(f.buf);

    /* still being written: the reader needs more */
    stream_file(&f, 100000, 4096);
    assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_MORE);
    assert_int_equal(end, 100000);
    g_free(f.buf);

    /* the source gave up */
    stream_file(&f, 10000, 4096);
    file_add(&f, SPILL_REC_ABORT, 0, ++f.seq, 0, NULL, 0);
    assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_ABORT);
    g_free(f.buf);

    /* a gap: bytes 4096-8191 missing */
    stream_file(&f, 4096, 4096);
    {
        uint8_t b[4096] = { 0 };

        b[0] = (uint8_t)(8192 * 7 + 3);
        file_add(&f, SPILL_REC_STREAM, 0, ++f.seq, 8192, b, sizeof(b));
    }
    assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_CORRUPT);
    assert_non_null(strstr(err, "gap"));
    g_free(f.buf);

    /* empty and oversized records */
    file_init(&f);
    file_add(&f, SPILL_REC_STREAM, 0, ++f.seq, 0, NULL, 0);
    assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_CORRUPT);
    assert_non_null(strstr(err, "stream record length"));
    g_free(f.buf);

    /* one flipped payload bit anywhere: refused */
    stream_file(&f, 9000, 3000);
    file_add(&f, SPILL_REC_END, 0, ++f.seq, 0, NULL, 0);
    for (uint64_t i = SPILL_HEADER_SIZE + SPILL_REC_HEADER_SIZE; i < f.len;
         i += 997) {
        f.buf[i] ^= 0x10;
        assert_int_equal(scan_stream(&f, &end, &err), SPILL_SCAN_CORRUPT);
        f.buf[i] ^= 0x10;
    }
    g_free(f.buf);
}

/*
 * Copies of 64 pages arrive by two paths in random order, the network
 * usually first: whatever the order, the destination keeps the newest
 * copy of each page, and drops every older one.
 */
static void test_freshness(void **state)
{
    enum { PAGES = 64, COPIES = 2000 };
    GRand *rand = g_rand_new_with_seed(11);
    uint64_t seq_of[COPIES], page_of[COPIES], newest[PAGES] = { 0 };
    uint64_t held[PAGES] = { 0 };
    bool used[COPIES] = { 0 };
    SpillSeqTable t;

    spill_seq_init(&t, PAGES);
    for (int i = 0; i < COPIES; i++) {
        seq_of[i] = i + 1;
        page_of[i] = g_rand_int_range(rand, 0, PAGES);
        newest[page_of[i]] = seq_of[i];
    }
    /* deliver in a random order: pick a random undelivered copy */
    for (int n = 0; n < COPIES; n++) {
        int i;

        do {
            i = g_rand_int_range(rand, 0, COPIES);
        } while (used[i]);
        used[i] = true;
        if (spill_seq_take(&t, page_of[i], seq_of[i])) {
            assert_true(seq_of[i] > held[page_of[i]]);
            held[page_of[i]] = seq_of[i];
        } else {
            assert_true(seq_of[i] <= held[page_of[i]]);
        }
        /* the same copy again, by the other path: dropped */
        assert_false(spill_seq_take(&t, page_of[i], seq_of[i]));
    }
    for (int p = 0; p < PAGES; p++) {
        assert_int_equal(held[p], newest[p]);
    }
    assert_false(spill_seq_take(&t, PAGES, 99999));
    assert_false(spill_seq_take(&t, 0, 0));
    spill_seq_destroy(&t);
    g_rand_free(rand);
}

/* The pages writer's walk over a model of RAM: blocks of pages */
#define BACK_BLOCKS 3

typedef struct BackModel {
    int nblocks;
    uint64_t npages[BACK_BLOCKS];
    bool *dirty[BACK_BLOCKS];
    bool *zero[BACK_BLOCKS];
    uint8_t *taken_by[BACK_BLOCKS];     /* 0: nobody, 1: network, 2: file */
    int looked;                         /* leave calls */
} BackModel;

static int bm_nblocks(void *opaque)
{
    return ((BackModel *)opaque)->nblocks;
}

static uint64_t bm_npages(void *opaque, int block)
{
    return ((BackModel *)opaque)->npages[block];
}

static uint64_t bm_last_dirty(void *opaque, int block, uint64_t below)
{
    BackModel *m = opaque;

    for (uint64_t p = below; p-- > 0;) {
        if (m->dirty[block][p]) {
            return p;
        }
    }
    return below;
}

static bool bm_leave(void *opaque, int block, uint64_t page)
{
    BackModel *m = opaque;

    m->looked++;
    return m->zero[block][page];
}

static bool bm_take(void *opaque, int block, uint64_t page)
{
    BackModel *m = opaque;
    bool was = m->dirty[block][page];

    m->dirty[block][page] = false;
    return was;
}

static const SpillBackOps bm_ops = {
    .nblocks = bm_nblocks,
    .npages = bm_npages,
    .last_dirty = bm_last_dirty,
    .leave = bm_leave,
    .take = bm_take,
};

static void bm_init(BackModel *m, const uint64_t *npages, GRand *rand)
{
    memset(m, 0, sizeof(*m));
    m->nblocks = BACK_BLOCKS;
    for (int b = 0; b < BACK_BLOCKS; b++) {
        m->npages[b] = npages[b];
        m->dirty[b] = g_new0(bool, npages[b] + 1);
        m->zero[b] = g_new0(bool, npages[b] + 1);
        m->taken_by[b] = g_new0(uint8_t, npages[b] + 1);
        for (uint64_t p = 0; p < npages[b]; p++) {
            m->dirty[b][p] = g_rand_int_range(rand, 0, 4) != 0;
            m->zero[b][p] = g_rand_int_range(rand, 0, 5) == 0;
        }
    }
}

static void bm_free(BackModel *m)
{
    for (int b = 0; b < BACK_BLOCKS; b++) {
        g_free(m->dirty[b]);
        g_free(m->zero[b]);
        g_free(m->taken_by[b]);
    }
}

/* The network's walk: from the front, every dirty page, zero or not */
static int net_take(BackModel *m, int *nb, uint64_t *np, int max)
{
    int n = 0;

    while (n < max && *nb < m->nblocks) {
        if (*np >= m->npages[*nb]) {
            (*nb)++;
            *np = 0;
            continue;
        }
        if (bm_take(m, *nb, *np)) {
            g_assert(!m->taken_by[*nb][*np]);
            m->taken_by[*nb][*np] = 1;
            n++;
        }
        (*np)++;
    }
    return n;
}

/*
 * The network from the front and the writer from the back, at random
 * speeds: each dirty page is taken once; the writer takes no zero page;
 * the network's pages all come before the writer's (they meet once).
 */
static void test_back_meets_front(void **state)
{
    static const uint64_t sizes[][BACK_BLOCKS] = {
        { 1, 1, 1 }, { 100, 0, 37 }, { 4096, 17, 1000 }, { 0, 0, 5 },
    };
    GRand *rand = g_rand_new_with_seed(7);

    for (int t = 0; t < 200; t++) {
        const uint64_t *npages = sizes[t % G_N_ELEMENTS(sizes)];
        BackModel m;
        SpillBack back;
        int nb = 0, blocks[16];
        uint64_t np = 0, pages[16], dirty = 0, taken = 0;
        bool net_done = false;
        int last_net_b = -1, first_file_b = BACK_BLOCKS;
        uint64_t last_net_p = 0, first_file_p = 0;

        bm_init(&m, npages, rand);
        for (int b = 0; b < BACK_BLOCKS; b++) {
            for (uint64_t p = 0; p < npages[b]; p++) {
                dirty += m.dirty[b][p];
            }
        }
        spill_back_init(&back);
        while (!net_done) {
            int k = spill_back_claim(&back, &bm_ops, &m, 1,
                                     g_rand_int_range(rand, 1, 16), 64,
                                     blocks, pages);

            for (int i = 0; i < k; i++) {
                g_assert(!m.zero[blocks[i]][pages[i]]);
                g_assert(!m.taken_by[blocks[i]][pages[i]]);
                m.taken_by[blocks[i]][pages[i]] = 2;
                taken++;
            }
            taken += net_take(&m, &nb, &np, g_rand_int_range(rand, 0, 40));
            net_done = nb >= m.nblocks;
        }
        assert_int_equal(taken, dirty);
        for (int b = 0; b < BACK_BLOCKS; b++) {
            for (uint64_t p = 0; p < npages[b]; p++) {
                if (m.taken_by[b][p] == 1 && !m.zero[b][p]) {
                    last_net_b = b;
                    last_net_p = p;
                }
                if (m.taken_by[b][p] == 2 && first_file_b == BACK_BLOCKS) {
                    first_file_b = b;
                    first_file_p = p;
                }
                assert_int_equal(m.dirty[b][p], false);
            }
        }
        /* the non-zero pages: a prefix to the network, the rest to the file */
        assert_true(last_net_b < first_file_b ||
                    (last_net_b == first_file_b &&
                     last_net_p < first_file_p));
        bm_free(&m);
    }
    g_rand_free(rand);
}

/*
 * Alone, the writer takes every dirty non-zero page once, from the
 * back; then the round is over until the sync count changes, and a new
 * round starts from the end again.  A call looks at @scan_max pages at
 * most.
 */
static void test_back_rounds(void **state)
{
    static const uint64_t npages[BACK_BLOCKS] = { 300, 5, 200 };
    GRand *rand = g_rand_new_with_seed(11);
    BackModel m;
    SpillBack back;
    int blocks[8];
    uint64_t pages[8], want = 0, got = 0;
    int prev_b = BACK_BLOCKS;
    uint64_t prev_p = 0;

    bm_init(&m, npages, rand);
    for (int b = 0; b < BACK_BLOCKS; b++) {
        for (uint64_t p = 0; p < npages[b]; p++) {
            want += m.dirty[b][p] && !m.zero[b][p];
        }
    }
    spill_back_init(&back);
    for (;;) {
        int k;

        m.looked = 0;
        k = spill_back_claim(&back, &bm_ops, &m, 1, 8, 10, blocks, pages);
        assert_true(m.looked <= 10);
        if (!k && back.round_over) {
            break;
        }
        for (int i = 0; i < k; i++) {
            /* strictly from the back */
            assert_true(blocks[i] < prev_b ||
                        (blocks[i] == prev_b && pages[i] < prev_p));
            prev_b = blocks[i];
            prev_p = pages[i];
            got++;
        }
    }
    assert_int_equal(got, want);
    /* the same sync: nothing, and nothing looked at */
    m.dirty[2][199] = true;
    m.zero[2][199] = false;
    m.looked = 0;
    assert_int_equal(spill_back_claim(&back, &bm_ops, &m, 1, 8, 10, blocks,
                                      pages), 0);
    assert_int_equal(m.looked, 0);
    /* a new sync: a new round, from the end */
    assert_int_equal(spill_back_claim(&back, &bm_ops, &m, 2, 8, 10, blocks,
                                      pages), 1);
    assert_int_equal(blocks[0], 2);
    assert_int_equal(pages[0], 199);
    bm_free(&m);
    g_rand_free(rand);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt_every_byte),
        cmocka_unit_test(test_semantic_corruption),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_torn_end),
        cmocka_unit_test(test_position_files),
        cmocka_unit_test(test_stream_records),
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_back_meets_front),
        cmocka_unit_test(test_back_rounds),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("spill-format", tests, NULL, NULL);
}
