/*
 * Guest-published map of RAM pages backed by shared-disk blocks
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "disk-map.h"

/*
 * Debian's libxxhash-dev, header-only: XXH3 runs at many GB/s, well
 * above any migration link, so hashing every referenced page is cheap.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t disk_map_generation(const uint8_t *page)
{
    WireReader r;

    wire_reader_init(&r, page + 16, 8);
    return wire_get_le64(&r);
}

static bool seg_overlaps(const DiskMapLayout *map, uint64_t gpa,
                         uint64_t len, uint32_t nseg)
{
    uint32_t i;

    if (wire_ranges_overlap(gpa, len, map->map_gpa, DISK_MAP_PAGE_SIZE)) {
        return true;
    }
    for (i = 0; i < nseg; i++) {
        if (wire_ranges_overlap(gpa, len, map->seg[i].gpa,
                                map->seg[i].records * DISK_MAP_RECORD_SIZE)) {
            return true;
        }
    }
    return false;
}

/*
 * Does [gpa, gpa + len) overlap the header page or a segment?  The same
 * answer as seg_overlaps(map, gpa, len, map->nsegments), by binary search
 * over the segments sorted by address, which do not overlap each other.
 */
static bool rec_in_map(const DiskMapLayout *map, uint64_t gpa, uint64_t len)
{
    uint32_t lo = 0, hi = map->nsegments;

    if (wire_ranges_overlap(gpa, len, map->map_gpa, DISK_MAP_PAGE_SIZE)) {
        return true;
    }
    /* the first segment (by address) that ends after @gpa */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const DiskMapSegment *s = &map->seg[map->by_gpa[mid]];

        if (s->gpa + s->records * DISK_MAP_RECORD_SIZE <= gpa) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == map->nsegments) {
        return false;
    }
    return wire_ranges_overlap(gpa, len, map->seg[map->by_gpa[lo]].gpa,
                               map->seg[map->by_gpa[lo]].records *
                               DISK_MAP_RECORD_SIZE);
}

bool disk_map_parse_header(const uint8_t *page, uint64_t map_gpa,
                           const DiskMapEnv *env, DiskMapLayout *out,
                           const char **err)
{
    uint64_t total = 0;
    WireReader r;
    uint32_t i;

    memset(out, 0, sizeof(*out));
    out->map_gpa = map_gpa;
    if (map_gpa & (DISK_MAP_PAGE_SIZE - 1)) {
        *err = "the map address is not 4096-aligned";
        return false;
    }
    if (!env->in_ram(map_gpa, DISK_MAP_PAGE_SIZE, env->opaque)) {
        *err = "the map header is not in guest RAM";
        return false;
    }

    wire_reader_init(&r, page, DISK_MAP_PAGE_SIZE);
    if (wire_get_le64(&r) != DISK_MAP_MAGIC) {
        *err = "bad magic";
        return false;
    }
    if (wire_get_le32(&r) != DISK_MAP_VERSION) {
        *err = "unsupported version";
        return false;
    }
    out->nsegments = wire_get_le32(&r);
    out->generation = wire_get_le64(&r);
    out->count = wire_get_le64(&r);
    if (wire_get_le32(&r) != DISK_MAP_PAGE_SIZE ||
        wire_get_le32(&r) != DISK_MAP_PAGE_SIZE) {
        *err = "page and frame size must be 4096";
        return false;
    }
    for (i = 0; i < 3; i++) {
        if (wire_get_le64(&r)) {
            *err = "reserved header fields are not zero";
            return false;
        }
    }
    if (out->generation & 1) {
        *err = "the guest is changing the map (odd generation)";
        return false;
    }
    if (out->nsegments < 1 || out->nsegments > DISK_MAP_MAX_SEGMENTS) {
        *err = "bad segment count";
        return false;
    }
    if (out->count > DISK_MAP_MAX_RECORDS) {
        *err = "too many records";
        return false;
    }

    for (i = 0; i < out->nsegments; i++) {
        uint64_t gpa = wire_get_le64(&r);
        uint64_t records = wire_get_le64(&r);

        if (gpa & (DISK_MAP_PAGE_SIZE - 1) || !records ||
            records > DISK_MAP_MAX_RECORDS) {
            *err = "a segment is unaligned, empty or too long";
            return false;
        }
        if (!env->in_ram(gpa, records * DISK_MAP_RECORD_SIZE, env->opaque)) {
            *err = "a segment is not in guest RAM";
            return false;
        }
        if (seg_overlaps(out, gpa, records * DISK_MAP_RECORD_SIZE, i)) {
            *err = "segments overlap each other or the header";
            return false;
        }
        out->seg[i].gpa = gpa;
        out->seg[i].records = records;
        total += records;
        /* insertion into the sorted order: at most 252 of them */
        {
            uint32_t j = i;

            while (j && out->seg[out->by_gpa[j - 1]].gpa > gpa) {
                out->by_gpa[j] = out->by_gpa[j - 1];
                j--;
            }
            out->by_gpa[j] = i;
        }
    }
    if (total != out->count) {
        *err = "the record count does not match the segments";
        return false;
    }
    return wire_reader_ok(&r);
}

DiskMapRecState disk_map_check_record(const DiskMapEnv *env,
                                      const DiskMapLayout *map,
                                      const uint8_t *rec,
                                      DiskMapRecord *out)
{
    WireReader r;
    uint64_t addr, frame;

    wire_reader_init(&r, rec, DISK_MAP_RECORD_SIZE);
    addr = wire_get_le64(&r);
    frame = wire_get_le64(&r);
    out->gpa = addr & ~DISK_MAP_REC_FLAGS;
    out->frame = frame;

    if (addr & DISK_MAP_REC_FLAGS & ~DISK_MAP_REC_MODIFIED) {
        return DISK_MAP_REC_BAD_FLAGS;
    }
    if (!env->in_ram(out->gpa, DISK_MAP_PAGE_SIZE, env->opaque)) {
        return DISK_MAP_REC_OUTSIDE_RAM;
    }
    if (frame >= env->disk_size / DISK_MAP_PAGE_SIZE) {
        return DISK_MAP_REC_OUTSIDE_DISK;
    }
    if (rec_in_map(map, out->gpa, DISK_MAP_PAGE_SIZE)) {
        return DISK_MAP_REC_IN_MAP;
    }
    if (addr & DISK_MAP_REC_MODIFIED) {
        return DISK_MAP_REC_IS_MODIFIED;
    }
    return DISK_MAP_REC_OK;
}

static int cmp_gpa(const void *a, const void *b)
{
    const DiskMapRecord *x = a, *y = b;

    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/*
 * Sort @recs by gpa in O(n): least significant digit first, 11 bits a
 * pass, over the bits in which the addresses differ (3 passes for the
 * pages of up to 512 GiB of RAM).  The source sorts up to 2^24 records
 * with the BQL held: 0.6 s here, where qsort() takes 1.9 s.  False if
 * it cannot have the memory for a second array: then use qsort().
 */
#define RADIX_BITS 11

static bool radix_sort(DiskMapRecord *recs, size_t n)
{
    g_autofree size_t *count = NULL;
    g_autofree DiskMapRecord *tmp = NULL;
    DiskMapRecord *from = recs, *to;
    uint64_t bits = 0;
    unsigned lo, hi, shift;

    for (size_t i = 0; i < n; i++) {
        bits |= recs[i].gpa;
    }
    if (!bits) {
        return true;            /* all equal */
    }
    tmp = g_try_new(DiskMapRecord, n);
    if (!tmp) {
        return false;
    }
    count = g_new(size_t, 1u << RADIX_BITS);
    to = tmp;
    lo = __builtin_ctzll(bits);     /* host-utils.h is no pure unit's */
    hi = 64 - __builtin_clzll(bits);
    for (shift = lo; shift < hi; shift += RADIX_BITS) {
        size_t sum = 0;
        DiskMapRecord *t;

        memset(count, 0, sizeof(size_t) << RADIX_BITS);
        for (size_t i = 0; i < n; i++) {
            count[(from[i].gpa >> shift) & ((1u << RADIX_BITS) - 1)]++;
        }
        for (size_t d = 0; d < (1u << RADIX_BITS); d++) {
            size_t c = count[d];

            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            to[count[(from[i].gpa >> shift) & ((1u << RADIX_BITS) - 1)]++] =
                from[i];
        }
        t = from;
        from = to;
        to = t;
    }
    if (from != recs) {
        memcpy(recs, from, n * sizeof(*recs));
    }
    return true;
}

size_t disk_map_drop_duplicates(DiskMapRecord *recs, size_t n)
{
    size_t i = 0, kept = 0;

    /* small maps: not worth a second array */
    if (n < 4096 || !radix_sort(recs, n)) {
        qsort(recs, n, sizeof(*recs), cmp_gpa);
    }
    while (i < n) {
        size_t j = i + 1;

        while (j < n && recs[j].gpa == recs[i].gpa) {
            j++;
        }
        if (j == i + 1) {
            recs[kept++] = recs[i];
        }
        i = j;
    }
    return kept;
}

const DiskMapRecord *disk_map_lookup(const DiskMapRecord *recs, size_t n,
                                     uint64_t gpa)
{
    DiskMapRecord key = { .gpa = gpa };

    return bsearch(&key, recs, n, sizeof(*recs), cmp_gpa);
}

bool disk_ref_nack_valid(const DiskMapRecord *recs, size_t n,
                         const unsigned long *unsent, uint64_t used_length,
                         uint64_t offset)
{
    const unsigned bits = 8 * sizeof(unsigned long);
    uint64_t page = offset / DISK_MAP_PAGE_SIZE;

    return offset % DISK_MAP_PAGE_SIZE == 0 && offset < used_length &&
           disk_map_lookup(recs, n, offset) &&
           !((unsent[page / bits] >> (page % bits)) & 1);
}

void disk_ref_encode(uint8_t *buf, uint64_t offset, const uint8_t *hash)
{
    WireWriter w;

    wire_writer_init(&w, buf, DISK_REF_RECORD_LEN);
    wire_put_be64(&w, offset);
    wire_put_bytes(&w, hash, DISK_REF_HASH_LEN);
}

void disk_ref_hash(const void *page, uint8_t *hash)
{
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, XXH3_128bits(page, DISK_MAP_PAGE_SIZE));
    memcpy(hash, c.digest, DISK_REF_HASH_LEN);
}

bool disk_ref_decode(const uint8_t *buf, uint64_t disk_size,
                     uint64_t *offset, uint8_t *hash)
{
    WireReader r;

    wire_reader_init(&r, buf, DISK_REF_RECORD_LEN);
    *offset = wire_get_be64(&r);
    wire_get_bytes(&r, hash, DISK_REF_HASH_LEN);
    return wire_reader_done(&r) &&
           !(*offset & (DISK_MAP_PAGE_SIZE - 1)) &&
           wire_range_fits(*offset, DISK_MAP_PAGE_SIZE, disk_size);
}

bool disk_ref_qualifies(const DiskRefPage *p)
{
    return p->in_map && !p->modified && !p->dirtied && !p->frame_written &&
           !p->last_stage;
}

size_t disk_ref_nack_encode(uint8_t *buf, uint64_t offset, const char *idstr)
{
    size_t len = strnlen(idstr, 255);
    WireWriter w;

    wire_writer_init(&w, buf, DISK_REF_NACK_MAX_LEN);
    wire_put_be64(&w, offset);
    wire_put_u8(&w, len);
    wire_put_bytes(&w, idstr, len);
    return wire_writer_len(&w);
}

bool disk_ref_nack_decode(const uint8_t *buf, size_t len, uint64_t *offset,
                          char *idstr)
{
    WireReader r;
    uint8_t n;

    wire_reader_init(&r, buf, len);
    *offset = wire_get_be64(&r);
    n = wire_get_u8(&r);
    if (!n || !wire_get_bytes(&r, idstr, n) || !wire_reader_done(&r) ||
        memchr(idstr, 0, n)) {
        idstr[0] = 0;
        return false;
    }
    idstr[n] = 0;
    return true;
}

size_t disk_ref_table_start(uint8_t *buf, const char *idstr)
{
    size_t len = strnlen(idstr, 255);

    buf[0] = len;
    memcpy(buf + 1, idstr, len);
    return 1 + len;
}

size_t disk_ref_table_add(uint8_t *buf, size_t len, uint64_t offset,
                          const uint8_t *rec)
{
    WireWriter w;

    wire_writer_init(&w, buf + len, DISK_REF_TABLE_ENTRY_LEN);
    wire_put_be64(&w, offset);
    wire_put_bytes(&w, rec, DISK_REF_RECORD_LEN);
    return len + wire_writer_len(&w);
}

bool disk_ref_table_decode(const uint8_t *buf, size_t len, DiskRefTable *t)
{
    WireReader r;
    size_t rest;
    uint8_t n;

    t->idstr[0] = 0;
    t->entries = NULL;
    t->n = 0;
    wire_reader_init(&r, buf, len);
    n = wire_get_u8(&r);
    if (!n || !wire_get_bytes(&r, t->idstr, n) || memchr(t->idstr, 0, n)) {
        t->idstr[0] = 0;
        return false;
    }
    t->idstr[n] = 0;
    rest = wire_reader_remaining(&r);
    if (!rest || rest % DISK_REF_TABLE_ENTRY_LEN ||
        rest / DISK_REF_TABLE_ENTRY_LEN > DISK_REF_TABLE_MAX_ENTRIES) {
        return false;
    }
    t->n = rest / DISK_REF_TABLE_ENTRY_LEN;
    t->entries = wire_get_span(&r, rest);
    return wire_reader_done(&r);
}

bool disk_ref_table_entry(const DiskRefTable *t, size_t i,
                          uint64_t used_length, uint64_t *offset,
                          const uint8_t **rec)
{
    WireReader r;

    if (i >= t->n) {
        return false;
    }
    wire_reader_init(&r, t->entries + i * DISK_REF_TABLE_ENTRY_LEN,
                     DISK_REF_TABLE_ENTRY_LEN);
    *offset = wire_get_be64(&r);
    *rec = wire_get_span(&r, DISK_REF_RECORD_LEN);
    return wire_reader_done(&r) &&
           !(*offset & (DISK_MAP_PAGE_SIZE - 1)) &&
           wire_range_fits(*offset, DISK_MAP_PAGE_SIZE, used_length);
}

/*
 * The part [start, end) of the page at @page that one buffer covers, at
 * disk offset @disk for @start: learned if it is the whole page and the
 * disk offset is frame-aligned, forgotten if a read wrote part of it.
 */
static uint64_t disk_learn_page(uintptr_t page, uintptr_t start,
                                uintptr_t end, uint64_t disk, bool read,
                                DiskLearnFn *fn, void *opaque)
{
    bool whole = start == page && end - page == DISK_MAP_PAGE_SIZE;

    if (whole && !(disk & (DISK_MAP_PAGE_SIZE - 1))) {
        fn(opaque, (uint8_t *)page, disk / DISK_MAP_PAGE_SIZE);
        return 1;
    }
    if (read) {
        fn(opaque, (uint8_t *)page, DISK_LEARN_FORGET);
    }
    return 0;
}

uint64_t disk_learn_walk(const struct iovec *iov, int niov, size_t skip,
                         uint64_t bytes, uint64_t offset, bool read,
                         DiskLearnFn *fn, void *opaque)
{
    const uintptr_t mask = DISK_MAP_PAGE_SIZE - 1;
    uint64_t learned = 0;

    for (int i = 0; i < niov && bytes; i++) {
        uintptr_t start, end;
        size_t len = iov[i].iov_len;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        start = (uintptr_t)iov[i].iov_base + skip;
        len = MIN(len - skip, bytes);
        skip = 0;
        end = start + len;
        /* each page the buffer touches, from the one holding @start */
        for (uintptr_t page = start & ~mask; page < end;
             page += DISK_MAP_PAGE_SIZE) {
            uintptr_t s = MAX(page, start), e = MIN(page + mask + 1, end);

            learned += disk_learn_page(page, s, e, offset + (s - start),
                                       read, fn, opaque);
        }
        offset += len;
        bytes -= len;
    }
    return learned;
}
