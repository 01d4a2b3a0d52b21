/*
 * Fuzz target: the guest-published disk map and the DISK_REF record
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The map of disk-backed-pages is written by the guest, the DISK_REF
 * record comes from the source host: both are untrusted.  This target
 * lays the input out as guest memory, parses the map's header page,
 * reads its records as disk-backed.c does, drops duplicates, looks each
 * page up, and decodes a DISK_REF record, checking that:
 *
 *  - an accepted header describes aligned segments in RAM that overlap
 *    neither each other nor the header page, and add up to the count;
 *  - an accepted record names a page in RAM, outside the map, with a
 *    frame on the disk and no reserved flag;
 *  - duplicates are dropped, the rest sorted, and lookups find exactly
 *    the pages named once;
 *  - a DISK_REF that decodes is aligned, on the disk and re-encodes to
 *    the same bytes, and one that does not is not;
 *  - a DISK_REF_NACK (the data, up to 512 bytes, as the return path
 *    reads it) decodes exactly when its length and idstr are sound, and
 *    re-encodes to the same bytes;
 *  - postcopy's table of references (MIG_CMD_DISK_REFS; the data, up
 *    to DISK_REF_TABLE_MAX_LEN bytes, as loadvm reads a command) decodes
 *    exactly when its idstr is sound and it holds whole entries, 1 to
 *    DISK_REF_TABLE_MAX_ENTRIES, and re-encodes to the same bytes; an
 *    entry is taken only with an aligned page inside its block;
 *  - the learned map's walk over a request's buffers (the data, read as
 *    up to 8 buffers of a length each, 64-byte granules apart, with
 *    the request's skip, length and disk offset from the disk size
 *    field) learns exactly the whole, aligned pages of one buffer at a
 *    frame-aligned disk offset, with that frame, in the request's
 *    order, and on a read forgets the others it touches.
 *
 * Guest memory (fuzz.h, FUZZ_DISK_MAP_*): RAM is [0, RAM_SIZE) but for a
 * hole at HOLE_GPA.  The header page is at MAP_GPA, the input's data at
 * DATA_GPA; the rest of RAM reads as zeros.
 *
 * Input layout:
 *   0  u8 mode       FIX_HEADER: set the magic, version, sizes and
 *                    reserved fields right and the generation even, so
 *                    that mutations reach the segments and records;
 *                    MISALIGN: the map at an unaligned address
 *   1  le64 disk     the disk's size in bytes
 *   9  le16 hlen     bytes of the header page given (at most 4096; the
 *                    rest of the page is zero)
 *  11  hlen bytes    the header page
 *      the rest      guest memory at DATA_GPA; its first
 *                    DISK_REF_RECORD_LEN bytes are also the DISK_REF
 *                    record decoded, up to 512 the DISK_REF_NACK,
 *                    and up to DISK_REF_TABLE_MAX_LEN the table
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "disk-map.h"
#include "fuzz.h"

#define PREFIX_LEN          11

/* Records read from the segments, at most: the rest of RAM is zeros. */
#define MAX_READ            512

typedef struct Guest {
    const uint8_t *page;
    const uint8_t *data;
    size_t dlen;
} Guest;

static bool in_ram(uint64_t gpa, uint64_t len, void *opaque)
{
    return wire_range_fits(gpa, len, FUZZ_DISK_MAP_RAM_SIZE) &&
           !wire_ranges_overlap(gpa, len, FUZZ_DISK_MAP_HOLE_GPA,
                                FUZZ_DISK_MAP_HOLE_LEN);
}

static void guest_read(const Guest *g, uint64_t gpa, uint8_t *buf,
                       size_t len)
{
    size_t i;

    for (i = 0; i < len; i++, gpa++) {
        if (gpa - FUZZ_DISK_MAP_MAP_GPA < DISK_MAP_PAGE_SIZE) {
            buf[i] = g->page[gpa - FUZZ_DISK_MAP_MAP_GPA];
        } else if (gpa - FUZZ_DISK_MAP_DATA_GPA < g->dlen) {
            buf[i] = g->data[gpa - FUZZ_DISK_MAP_DATA_GPA];
        } else {
            buf[i] = 0;
        }
    }
}

static void put_le(uint8_t *page, size_t offset, uint64_t v, size_t n)
{
    WireWriter w;

    wire_writer_init(&w, page + offset, n);
    while (n--) {
        wire_put_u8(&w, v);
        v >>= 8;
    }
}

static void fix_header(uint8_t *page)
{
    put_le(page, 0, DISK_MAP_MAGIC, 8);
    put_le(page, 8, DISK_MAP_VERSION, 4);
    page[16] &= ~1;             /* an even generation */
    put_le(page, 32, DISK_MAP_PAGE_SIZE, 4);
    put_le(page, 36, DISK_MAP_PAGE_SIZE, 4);
    memset(page + 40, 0, DISK_MAP_HEADER_SIZE - 40);
}

static void check_layout(const DiskMapEnv *env, const uint8_t *page,
                         const DiskMapLayout *map)
{
    uint64_t total = 0;
    uint32_t i, j;

    assert(map->nsegments >= 1 && map->nsegments <= DISK_MAP_MAX_SEGMENTS);
    assert(map->count <= DISK_MAP_MAX_RECORDS);
    assert(!(map->generation & 1));
    assert(map->generation == disk_map_generation(page));
    assert(!(map->map_gpa & (DISK_MAP_PAGE_SIZE - 1)));
    for (i = 0; i < map->nsegments; i++) {
        const DiskMapSegment *s = &map->seg[i];
        uint64_t len = s->records * DISK_MAP_RECORD_SIZE;

        assert(!(s->gpa & (DISK_MAP_PAGE_SIZE - 1)));
        assert(s->records && s->records <= DISK_MAP_MAX_RECORDS);
        assert(in_ram(s->gpa, len, NULL));
        assert(!wire_ranges_overlap(s->gpa, len, map->map_gpa,
                                    DISK_MAP_PAGE_SIZE));
        for (j = 0; j < i; j++) {
            assert(!wire_ranges_overlap(s->gpa, len, map->seg[j].gpa,
                                        map->seg[j].records *
                                        DISK_MAP_RECORD_SIZE));
        }
        total += s->records;
    }
    assert(total == map->count);
}

static int cmp_rec(const void *a, const void *b)
{
    const DiskMapRecord *x = a, *y = b;

    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static void check_records(const DiskMapEnv *env, const Guest *g,
                          const DiskMapLayout *map)
{
    DiskMapRecord *ok = g_new(DiskMapRecord, MAX_READ);
    DiskMapRecord *all = g_new(DiskMapRecord, MAX_READ);
    size_t nok = 0, kept, nread = 0, i;
    uint32_t s;

    for (s = 0; s < map->nsegments && nread < MAX_READ; s++) {
        uint64_t k;

        for (k = 0; k < map->seg[s].records && nread < MAX_READ; k++) {
            uint8_t raw[DISK_MAP_RECORD_SIZE];
            DiskMapRecState st;
            DiskMapRecord rec;
            uint64_t addr, frame;
            WireReader r;

            guest_read(g, map->seg[s].gpa + k * DISK_MAP_RECORD_SIZE, raw,
                       sizeof(raw));
            nread++;
            st = disk_map_check_record(env, map, raw, &rec);
            wire_reader_init(&r, raw, sizeof(raw));
            addr = wire_get_le64(&r);
            frame = wire_get_le64(&r);
            assert(st < DISK_MAP_REC__MAX);
            assert(rec.gpa == (addr & ~DISK_MAP_REC_FLAGS));
            assert(rec.frame == frame);
            if (st != DISK_MAP_REC_OK && st != DISK_MAP_REC_IS_MODIFIED) {
                continue;
            }
            assert(!(addr & DISK_MAP_REC_FLAGS & ~DISK_MAP_REC_MODIFIED));
            assert(in_ram(rec.gpa, DISK_MAP_PAGE_SIZE, NULL));
            assert(frame < env->disk_size / DISK_MAP_PAGE_SIZE);
            assert(!wire_ranges_overlap(rec.gpa, DISK_MAP_PAGE_SIZE,
                                        map->map_gpa, DISK_MAP_PAGE_SIZE));
            for (i = 0; i < map->nsegments; i++) {
                assert(!wire_ranges_overlap(rec.gpa, DISK_MAP_PAGE_SIZE,
                                            map->seg[i].gpa,
                                            map->seg[i].records *
                                            DISK_MAP_RECORD_SIZE));
            }
            assert((st == DISK_MAP_REC_IS_MODIFIED) ==
                   !!(addr & DISK_MAP_REC_MODIFIED));
            if (st == DISK_MAP_REC_OK) {
                ok[nok++] = rec;
            }
        }
    }

    memcpy(all, ok, nok * sizeof(*ok));
    qsort(all, nok, sizeof(*all), cmp_rec);
    kept = disk_map_drop_duplicates(ok, nok);
    assert(kept <= nok);
    for (i = 1; i < kept; i++) {
        assert(ok[i - 1].gpa < ok[i].gpa);
    }
    /* every page named once is found with its frame, no other one */
    for (i = 0; i < nok; i++) {
        bool once = (i == 0 || all[i - 1].gpa != all[i].gpa) &&
                    (i + 1 == nok || all[i + 1].gpa != all[i].gpa);
        const DiskMapRecord *found = disk_map_lookup(ok, kept, all[i].gpa);

        if (once) {
            assert(found && found->frame == all[i].frame);
        } else {
            assert(!found);
        }
    }
    assert(!disk_map_lookup(ok, kept, FUZZ_DISK_MAP_HOLE_GPA));
    g_free(ok);
    g_free(all);
}

static void check_ref(const uint8_t *buf, uint64_t disk_size)
{
    uint8_t hash[DISK_REF_HASH_LEN], re[DISK_REF_RECORD_LEN];
    uint64_t offset;
    bool ok, want;

    ok = disk_ref_decode(buf, disk_size, &offset, hash);
    want = !(offset & (DISK_MAP_PAGE_SIZE - 1)) &&
           (unsigned __int128)offset + DISK_MAP_PAGE_SIZE <= disk_size;
    assert(ok == want);
    disk_ref_encode(re, offset, hash);
    assert(!memcmp(re, buf, DISK_REF_RECORD_LEN));
}

/*
 * The return path's DISK_REF_NACK, from the destination: decodes only
 * with the exact length and an idstr of 1-255 bytes without a NUL, and
 * then re-encodes to the same bytes.
 */
static void check_nack(const uint8_t *buf, size_t len)
{
    uint8_t re[DISK_REF_NACK_MAX_LEN];
    char idstr[256];
    uint64_t offset;
    bool ok, want;

    ok = disk_ref_nack_decode(buf, len, &offset, idstr);
    want = len >= 9 && buf[8] && len == 9u + buf[8] &&
           !memchr(buf + 9, 0, buf[8]);
    assert(ok == want);
    if (ok) {
        assert(strlen(idstr) == buf[8]);
        assert(disk_ref_nack_encode(re, offset, idstr) == len);
        assert(!memcmp(re, buf, len));
    } else {
        assert(!idstr[0]);
    }
}

/*
 * Postcopy's table of references, from the source: decodes only with
 * whole entries and a sound idstr, re-encodes to the same bytes, and
 * takes only entries whose page is aligned and inside the block.
 */
static void check_table(const uint8_t *buf, size_t len)
{
    static uint8_t re[DISK_REF_TABLE_MAX_LEN];
    DiskRefTable t;
    size_t rest = len > 1 ? len - 1 - MIN(buf[0], len - 1) : 0;
    bool ok, want;

    ok = disk_ref_table_decode(buf, len, &t);
    want = len >= 1 && buf[0] && len >= 1u + buf[0] &&
           !memchr(buf + 1, 0, buf[0]) && rest &&
           !(rest % DISK_REF_TABLE_ENTRY_LEN) &&
           rest / DISK_REF_TABLE_ENTRY_LEN <= DISK_REF_TABLE_MAX_ENTRIES;
    assert(ok == want);
    if (!ok) {
        assert(!t.n);
        return;
    }
    assert(t.n == rest / DISK_REF_TABLE_ENTRY_LEN);
    size_t relen = disk_ref_table_start(re, t.idstr);
    for (size_t i = 0; i < t.n; i++) {
        const uint8_t *rec;
        uint64_t offset;
        /* a block of 64 MiB */
        bool in = disk_ref_table_entry(&t, i, 64 << 20, &offset, &rec);

        assert(rec);
        assert(in == (!(offset & (DISK_MAP_PAGE_SIZE - 1)) &&
                      offset < (64 << 20)));
        relen = disk_ref_table_add(re, relen, offset, rec);
    }
    assert(relen == len);
    assert(!memcmp(re, buf, len));
}

/* The learned map's walk, against a byte-by-byte model */

#define LEARN_MAX_IOV   8
#define LEARN_BASE      ((uintptr_t)1 << 40)

typedef struct LearnCheck {
    const struct iovec *iov;
    int niov;
    size_t skip;
    uint64_t bytes, offset;
    bool read;
    uintptr_t last;             /* the last page seen, 0: none */
    uint64_t learned;
} LearnCheck;

/*
 * The model: where in the request's data (and so on the disk) does
 * byte @host land, and in which buffer?  -1 if it is not the request's.
 */
static int64_t learn_pos(const LearnCheck *c, uintptr_t host, int *buf)
{
    uint64_t pos = 0;
    size_t skip = c->skip;

    for (int i = 0; i < c->niov; i++) {
        uintptr_t b = (uintptr_t)c->iov[i].iov_base;
        size_t len = c->iov[i].iov_len;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        b += skip;
        len -= skip;
        skip = 0;
        len = MIN(len, c->bytes - pos);
        if (host >= b && host - b < len) {
            *buf = i;
            return pos + (host - b);
        }
        pos += len;
        if (pos == c->bytes) {
            break;
        }
    }
    return -1;
}

static void learn_cb(void *opaque, uint8_t *host, uint64_t frame)
{
    LearnCheck *c = opaque;
    uintptr_t page = (uintptr_t)host;
    int64_t first, pos;
    bool whole;
    int buf0 = -1, buf = -2;

    assert(!(page & (DISK_MAP_PAGE_SIZE - 1)));
    assert(page >= c->last);
    first = learn_pos(c, page, &buf0);
    /* a buffer's bytes are contiguous in the request: its ends suffice */
    pos = learn_pos(c, page + DISK_MAP_PAGE_SIZE - 1, &buf);
    whole = first >= 0 && pos >= 0 && buf == buf0 &&
            pos == first + DISK_MAP_PAGE_SIZE - 1;
    if (frame != DISK_LEARN_FORGET) {
        assert(whole);
        assert(!((c->offset + first) & (DISK_MAP_PAGE_SIZE - 1)));
        assert(frame == (c->offset + first) / DISK_MAP_PAGE_SIZE);
        c->learned++;
    } else {
        assert(c->read);
        assert(!whole || ((c->offset + first) & (DISK_MAP_PAGE_SIZE - 1)));
    }
    c->last = page;
}

/*
 * @data: le16 skip, le32 bytes, then up to LEARN_MAX_IOV of (le16 gap,
 * le16 len), both in 64-byte granules: buffer i starts @gap granules
 * after the end of buffer i - 1.
 */
static void check_learn(uint64_t word, const uint8_t *data, size_t len)
{
    struct iovec iov[LEARN_MAX_IOV];
    uintptr_t at = LEARN_BASE;
    LearnCheck c = { .iov = iov, .offset = word >> 8 << 9 | (word & 0xff),
                     .read = word & 0x100 };
    uint64_t total = 0, learned;
    WireReader r;

    wire_reader_init(&r, data, MIN(len, 6 + 4 * LEARN_MAX_IOV));
    c.skip = wire_get_le16(&r);
    c.bytes = wire_get_le32(&r) % (256 * DISK_MAP_PAGE_SIZE);
    while (c.niov < LEARN_MAX_IOV && wire_reader_remaining(&r) >= 4) {
        /* in granules of 64 bytes, so that pages align often enough */
        at += (uintptr_t)wire_get_le16(&r) << 6;
        iov[c.niov].iov_base = (void *)at;
        iov[c.niov].iov_len = (size_t)wire_get_le16(&r) << 6;
        at += iov[c.niov].iov_len;
        total += iov[c.niov++].iov_len;
    }
    c.bytes = MIN(c.bytes, total > c.skip ? total - c.skip : 0);
    c.offset &= (1ull << 50) - 1;
    learned = disk_learn_walk(iov, c.niov, c.skip, c.bytes, c.offset,
                              c.read, learn_cb, &c);
    assert(learned == c.learned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t page[DISK_MAP_PAGE_SIZE] = { 0 };
    uint8_t ref[DISK_REF_RECORD_LEN] = { 0 };
    DiskMapEnv env = { .in_ram = in_ram };
    DiskMapLayout *map;
    const char *err = NULL;
    uint64_t map_gpa = FUZZ_DISK_MAP_MAP_GPA;
    WireReader r;
    uint8_t mode;
    size_t hlen;
    Guest g;

    if (size < PREFIX_LEN) {
        return 0;
    }
    wire_reader_init(&r, data, size);
    mode = wire_get_u8(&r);
    env.disk_size = wire_get_le64(&r);
    hlen = wire_get_le16(&r);
    hlen = MIN(hlen, DISK_MAP_PAGE_SIZE);
    hlen = MIN(hlen, wire_reader_remaining(&r));
    wire_get_bytes(&r, page, hlen);
    g.page = page;
    g.dlen = wire_reader_remaining(&r);
    g.data = wire_get_span(&r, g.dlen);
    assert(wire_reader_done(&r));

    memcpy(ref, g.data, MIN(g.dlen, sizeof(ref)));
    check_ref(ref, env.disk_size);
    check_ref(ref, UINT64_MAX);
    /* the data is also a NACK, as long as the return path allows */
    check_nack(g.data, MIN(g.dlen, 512));
    check_table(g.data, MIN(g.dlen, DISK_REF_TABLE_MAX_LEN));

    if (mode & FUZZ_DISK_MAP_FIX_HEADER) {
        fix_header(page);
    }
    if (mode & FUZZ_DISK_MAP_MISALIGN) {
        map_gpa += 8;
    }
    map = g_new(DiskMapLayout, 1);
    if (disk_map_parse_header(page, map_gpa, &env, map, &err)) {
        assert(!(mode & FUZZ_DISK_MAP_MISALIGN));
        check_layout(&env, page, map);
        check_records(&env, &g, map);
    } else {
        assert(err && *err);
    }
    g_free(map);
    check_learn(env.disk_size, g.data, g.dlen);
    return 0;
}
