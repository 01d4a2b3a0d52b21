/*
 * Fuzz target: the spill file's header and record scanner
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A spill file is read by the destination from storage the source host
 * writes: every byte of it is untrusted.  This target decodes a header,
 * then scans the records behind it twice, once as a complete file and
 * once as a file that grows by a few bytes between scans (a destination
 * reading while the source writes), and checks that:
 *
 *  - a header that decodes re-encodes to the same bytes;
 *  - every record returned lies inside the bytes given, moves the
 *    position by its encoded size and re-encodes to the same bytes;
 *  - sequence numbers increase, blocks are defined in order, pages lie
 *    inside their block, stream records have no gap, END and ABORT are
 *    empty and last (a model kept here, apart from the scanner);
 *  - both ways of reading see the same records and the same verdict.
 *
 * Input layout:
 *   0  u8 mode     (fuzz.h, FUZZ_SPILL_*)
 *                  FIX_CHECKS: recompute the header checksum (raw mode)
 *                  and every record's checksum and padding before
 *                  parsing, so that mutations reach the checks behind;
 *                  RAW_HEADER: the header is given as its 4096 raw bytes,
 *                  otherwise as page_size and uuid, encoded here
 *   1  u8 step     the growing file gains step + 1 bytes a time
 *   2  header      raw: SPILL_HEADER_SIZE bytes;
 *                  otherwise: le32 page_size, SPILL_UUID_LEN bytes uuid
 *      records     the file from offset SPILL_HEADER_SIZE on
 */

#include "qemu/osdep.h"
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "wire-codec.h"
#include "spill-format.h"
#include "fuzz.h"

#define COMPACT_HEADER_LEN  (4 + SPILL_UUID_LEN)

typedef struct Seen {
    uint64_t pos;
    SpillRecType type;
    uint16_t block;
    uint64_t seq;
    uint64_t offset;
    uint32_t len;
} Seen;

typedef struct Outcome {
    Seen *recs;
    size_t nrecs;
    SpillScanResult last;
    uint64_t want;              /* when last is SPILL_SCAN_MORE */
    uint64_t pos;
} Outcome;

/* What the scanner must have checked, kept apart from it. */
typedef struct Model {
    uint64_t last_seq;
    uint64_t stream_end;
    uint32_t nblocks;
    uint64_t length[SPILL_MAX_BLOCKS];
} Model;

static void fix_records(uint8_t *p, size_t len)
{
    size_t pos = 0;

    while (len - pos >= SPILL_REC_HEADER_SIZE) {
        WireReader r;
        uint16_t type, block;
        uint64_t seq, offset, rsize;
        uint32_t plen;

        wire_reader_init(&r, p + pos, SPILL_REC_HEADER_SIZE);
        wire_skip(&r, 4);
        type = wire_get_le16(&r);
        block = wire_get_le16(&r);
        seq = wire_get_le64(&r);
        offset = wire_get_le64(&r);
        plen = wire_get_le32(&r);
        rsize = spill_record_size(plen);
        if (rsize > len - pos) {
            break;
        }
        spill_record_encode(p + pos, type, block, seq, offset,
                            p + pos + SPILL_REC_HEADER_SIZE, plen);
        pos += rsize;
    }
}

static void check_record(const SpillScan *s, Model *m, const uint8_t *buf,
                         uint64_t avail, uint64_t old_pos,
                         const SpillRecord *rec)
{
    uint64_t rsize = spill_record_size(rec->len);
    uint8_t *re;

    /* it lies inside the bytes given and moved the position past it */
    assert(rsize <= avail);
    assert(s->pos == old_pos + rsize);
    assert(rec->payload == buf + SPILL_REC_HEADER_SIZE);

    /* it re-encodes to the same bytes: checksum, padding, field order */
    re = g_malloc(rsize);
    spill_record_encode(re, rec->type, rec->block, rec->seq, rec->offset,
                        rec->payload, rec->len);
    assert(!memcmp(re, buf, rsize));
    g_free(re);

    assert(rec->seq > m->last_seq);
    m->last_seq = rec->seq;
    switch (rec->type) {
    case SPILL_REC_BLOCK: {
        WireReader r;

        assert(rec->len >= 9 && rec->len <= 8 + 255);
        assert(rec->block == m->nblocks && m->nblocks < SPILL_MAX_BLOCKS);
        wire_reader_init(&r, rec->payload, rec->len);
        m->length[m->nblocks] = wire_get_le64(&r);
        assert(m->length[m->nblocks]);
        assert(m->length[m->nblocks] % s->hdr.page_size == 0);
        assert(!memchr(rec->payload + 8, 0, rec->len - 8));
        assert(s->blocks[m->nblocks].length == m->length[m->nblocks]);
        assert(strlen(s->blocks[m->nblocks].idstr) == rec->len - 8);
        m->nblocks++;
        break;
    }
    case SPILL_REC_PAGE:
        assert(rec->len == s->hdr.page_size);
        assert(rec->block < m->nblocks);
        assert(rec->offset % s->hdr.page_size == 0);
        assert(rec->offset < m->length[rec->block]);
        break;
    case SPILL_REC_STATE:
        break;
    case SPILL_REC_STREAM:
        assert(rec->len);
        assert(rec->offset == m->stream_end);
        m->stream_end += rec->len;
        break;
    case SPILL_REC_END:
    case SPILL_REC_ABORT:
        assert(!rec->len);
        assert(s->ended);
        break;
    default:
        assert(!"the scanner returned an unknown record type");
    }
    assert(s->nblocks == m->nblocks);
    assert(s->stream_end == m->stream_end);
    assert(s->last_seq == m->last_seq);
}

/*
 * Scan @len bytes of records.  With @step, the file has @step bytes at
 * first and gains @step more each time the scanner wants more.
 */
static void scan(const SpillHeader *h, const uint8_t *recs, size_t len,
                 size_t step, Outcome *o)
{
    SpillScan *s = g_new(SpillScan, 1);
    Model *m = g_new0(Model, 1);
    uint64_t have = step ? MIN(step, len) : len;

    o->recs = g_new(Seen, len / SPILL_REC_HEADER_SIZE + 1);
    o->nrecs = 0;
    spill_scan_init(s, h);
    for (;;) {
        uint64_t rel = s->pos - SPILL_HEADER_SIZE;
        uint64_t avail, want = 0;
        const char *err = NULL;
        SpillScanResult res;
        SpillRecord rec;

        assert(s->pos >= SPILL_HEADER_SIZE && rel <= have);
        avail = have - rel;
        res = spill_scan_next(s, recs + rel, avail, &rec, &want, &err);
        switch (res) {
        case SPILL_SCAN_MORE:
            assert(want > avail);
            assert(want >= SPILL_REC_HEADER_SIZE);
            assert(s->pos == SPILL_HEADER_SIZE + rel);
            if (have < len) {
                have = MIN(len, have + step);
                continue;
            }
            o->want = want;
            break;
        case SPILL_SCAN_RECORD:
            check_record(s, m, recs + rel, avail, SPILL_HEADER_SIZE + rel,
                         &rec);
            assert(rec.type != SPILL_REC_END && rec.type != SPILL_REC_ABORT);
            o->recs[o->nrecs++] = (Seen) {
                .pos = rel, .type = rec.type, .block = rec.block,
                .seq = rec.seq, .offset = rec.offset, .len = rec.len,
            };
            continue;
        case SPILL_SCAN_END:
        case SPILL_SCAN_ABORT:
            if (s->pos != SPILL_HEADER_SIZE + rel) {
                /* the END or ABORT record itself */
                check_record(s, m, recs + rel, avail,
                             SPILL_HEADER_SIZE + rel, &rec);
                assert(rec.type == (res == SPILL_SCAN_END ? SPILL_REC_END
                                                          : SPILL_REC_ABORT));
            } else {
                /* a scan after the end with nothing more */
                assert(s->ended && res == SPILL_SCAN_END && !avail);
            }
            if (have < len) {
                /* more arrives after the end: that must be refused */
                have = len;
                continue;
            }
            break;
        case SPILL_SCAN_CORRUPT:
            assert(err && *err);
            assert(s->pos == SPILL_HEADER_SIZE + rel);
            break;
        default:
            assert(!"unknown scan result");
        }
        o->last = res;
        o->pos = s->pos;
        break;
    }
    g_free(m);
    g_free(s);
}

static void scan_both(const SpillHeader *h, const uint8_t *recs, size_t len,
                      size_t step)
{
    Outcome whole, growing;
    size_t i;

    scan(h, recs, len, 0, &whole);
    scan(h, recs, len, step, &growing);

    assert(whole.nrecs == growing.nrecs);
    for (i = 0; i < whole.nrecs; i++) {
        const Seen *a = &whole.recs[i], *b = &growing.recs[i];

        assert(a->pos == b->pos && a->type == b->type &&
               a->block == b->block && a->seq == b->seq &&
               a->offset == b->offset && a->len == b->len);
    }
    assert(whole.last == growing.last);
    if (whole.last == SPILL_SCAN_MORE) {
        assert(whole.want == growing.want);
    }
    /*
     * Data after END or ABORT is refused at the record by a complete
     * file, after it by a growing one: the position may differ there.
     */
    if (whole.last != SPILL_SCAN_CORRUPT) {
        assert(whole.pos == growing.pos);
    }
    g_free(whole.recs);
    g_free(growing.recs);
}

static bool decode_header(uint8_t mode, const uint8_t **p, size_t *left,
                          SpillHeader *h)
{
    uint8_t buf[SPILL_HEADER_SIZE], re[SPILL_HEADER_SIZE];
    const char *err = NULL;
    bool ok;

    if (mode & FUZZ_SPILL_RAW_HEADER) {
        WireWriter w;

        if (*left < SPILL_HEADER_SIZE) {
            return false;
        }
        memcpy(buf, *p, SPILL_HEADER_SIZE);
        *p += SPILL_HEADER_SIZE;
        *left -= SPILL_HEADER_SIZE;
        if (mode & FUZZ_SPILL_FIX_CHECKS) {
            wire_writer_init(&w, buf + SPILL_HEADER_SIZE - 8, 8);
            wire_put_le64(&w, XXH3_64bits(buf, SPILL_HEADER_SIZE - 8));
        }
        ok = spill_header_decode(buf, h, &err);
        if (ok) {
            spill_header_encode(re, h);
            assert(!memcmp(re, buf, SPILL_HEADER_SIZE));
        }
    } else {
        WireReader r;
        SpillHeader in;
        bool valid;

        if (*left < COMPACT_HEADER_LEN) {
            return false;
        }
        wire_reader_init(&r, *p, COMPACT_HEADER_LEN);
        in.page_size = wire_get_le32(&r);
        wire_get_bytes(&r, in.uuid, SPILL_UUID_LEN);
        assert(wire_reader_done(&r));
        *p += COMPACT_HEADER_LEN;
        *left -= COMPACT_HEADER_LEN;
        spill_header_encode(buf, &in);
        ok = spill_header_decode(buf, h, &err);
        valid = in.page_size >= 512 && in.page_size <= 65536 &&
                !(in.page_size & (in.page_size - 1));
        assert(ok == valid);
        if (ok) {
            assert(h->page_size == in.page_size);
            assert(!memcmp(h->uuid, in.uuid, SPILL_UUID_LEN));
        }
    }
    assert(ok || (err && *err));
    return ok;
}

/*
 * The position files (.ack, .loaded) the destination writes: the input
 * read as one, against the uuid in its own bytes 8-23 and another one.
 * It decodes only at the exact size with the magic and uuid, and then
 * re-encodes to the same bytes.
 */
static void check_pos(const uint8_t *data, size_t size)
{
    static const char *const magics[] = { SPILL_ACK_MAGIC,
                                          SPILL_LOADED_MAGIC,
                                          SPILL_END_MAGIC };
    uint8_t uuid[SPILL_UUID_LEN] = { 0 }, re[SPILL_POS_SIZE(2)];

    memcpy(uuid, data + MIN(size, 8), MIN(size - MIN(size, 8),
                                          SPILL_UUID_LEN));
    for (unsigned k = 0; k < ARRAY_SIZE(magics); k++) {
        for (unsigned n = 1; n <= 2; n++) {
            uint64_t v[2] = { 1, 1 };
            bool ok = spill_pos_decode(data, size, magics[k], uuid, v, n);
            bool want = size == SPILL_POS_SIZE(n) &&
                        !memcmp(data, magics[k], 8) &&
                        !memcmp(data + 8, uuid, SPILL_UUID_LEN);

            assert(ok == want);
            if (ok) {
                spill_pos_encode(re, magics[k], uuid, v, n);
                assert(!memcmp(re, data, size));
            } else {
                assert(!v[0] && (n == 1 ? v[1] == 1 : !v[1]));
            }
            uuid[0] ^= 1;
            assert(!spill_pos_decode(data, size, magics[k], uuid, v, n));
            uuid[0] ^= 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data + 2;
    size_t left = size - 2;
    uint8_t mode, step, *recs;
    SpillHeader h;

    check_pos(data, size);
    if (size < 2) {
        return 0;
    }
    mode = data[0];
    step = data[1];
    if (!decode_header(mode, &p, &left, &h)) {
        return 0;
    }
    /* a copy: the input is read-only, and this also bounds the reads */
    recs = g_malloc(left + 1);
    memcpy(recs, p, left);
    if (mode & FUZZ_SPILL_FIX_CHECKS) {
        fix_records(recs, left);
    }
    scan_both(&h, recs, left, (size_t)step + 1);
    g_free(recs);
    return 0;
}
