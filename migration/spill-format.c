/*
 * shared-file-spill: the spill file format, freshness and page split
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "wire-codec.h"
#include "spill-format.h"

#define CHECK_OFFSET (SPILL_HEADER_SIZE - 8)

void spill_header_encode(uint8_t *buf, const SpillHeader *h)
{
    WireWriter w;

    memset(buf, 0, SPILL_HEADER_SIZE);
    wire_writer_init(&w, buf, SPILL_HEADER_SIZE);
    wire_put_le64(&w, SPILL_MAGIC);
    wire_put_le32(&w, SPILL_VERSION);
    wire_put_le32(&w, h->page_size);
    wire_put_bytes(&w, h->uuid, SPILL_UUID_LEN);
    wire_writer_init(&w, buf + CHECK_OFFSET, 8);
    wire_put_le64(&w, XXH3_64bits(buf, CHECK_OFFSET));
}

bool spill_header_decode(const uint8_t *buf, SpillHeader *h,
                         const char **err)
{
    WireReader r;
    uint64_t i;

    wire_reader_init(&r, buf + CHECK_OFFSET, 8);
    if (wire_get_le64(&r) != XXH3_64bits(buf, CHECK_OFFSET)) {
        *err = "the header checksum does not match";
        return false;
    }
    wire_reader_init(&r, buf, CHECK_OFFSET);
    if (wire_get_le64(&r) != SPILL_MAGIC) {
        *err = "not a spill file (bad magic)";
        return false;
    }
    if (wire_get_le32(&r) != SPILL_VERSION) {
        *err = "unsupported spill file version";
        return false;
    }
    h->page_size = wire_get_le32(&r);
    wire_get_bytes(&r, h->uuid, SPILL_UUID_LEN);
    if (h->page_size < 512 || h->page_size > 65536 ||
        (h->page_size & (h->page_size - 1))) {
        *err = "bad page size";
        return false;
    }
    for (i = 32; i < CHECK_OFFSET; i++) {
        if (buf[i]) {
            *err = "reserved header bytes are not zero";
            return false;
        }
    }
    return true;
}

static uint32_t record_check(const uint8_t *hdr, const void *payload,
                             uint32_t len)
{
    XXH3_state_t st;

    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr, 28);
    XXH3_64bits_update(&st, payload, len);
    return (uint32_t)XXH3_64bits_digest(&st);
}

void spill_record_encode(uint8_t *buf, SpillRecType type, uint16_t block,
                         uint64_t seq, uint64_t offset, const void *payload,
                         uint32_t len)
{
    uint64_t size = spill_record_size(len);
    WireWriter w;

    memset(buf + SPILL_REC_HEADER_SIZE + len, 0,
           size - SPILL_REC_HEADER_SIZE - len);
    /* the payload may change under us (guest RAM): seal the copy */
    if (len && payload != buf + SPILL_REC_HEADER_SIZE) {
        memcpy(buf + SPILL_REC_HEADER_SIZE, payload, len);
    }
    wire_writer_init(&w, buf, SPILL_REC_HEADER_SIZE);
    wire_put_le32(&w, SPILL_REC_MAGIC);
    wire_put_le16(&w, type);
    wire_put_le16(&w, block);
    wire_put_le64(&w, seq);
    wire_put_le64(&w, offset);
    wire_put_le32(&w, len);
    wire_put_le32(&w, record_check(buf, buf + SPILL_REC_HEADER_SIZE, len));
}

void spill_scan_init(SpillScan *s, const SpillHeader *hdr)
{
    memset(s, 0, sizeof(*s));
    s->hdr = *hdr;
    s->pos = SPILL_HEADER_SIZE;
}

static SpillScanResult corrupt(const char **err, const char *why)
{
    *err = why;
    return SPILL_SCAN_CORRUPT;
}

SpillScanResult spill_scan_next(SpillScan *s, const uint8_t *buf,
                                uint64_t avail, SpillRecord *rec,
                                uint64_t *want, const char **err)
{
    uint32_t magic, check;
    uint64_t size;
    WireReader r;

    if (s->ended) {
        return avail ? corrupt(err, "data after the end record")
                     : SPILL_SCAN_END;
    }
    if (avail < SPILL_REC_HEADER_SIZE) {
        *want = SPILL_REC_HEADER_SIZE;
        return SPILL_SCAN_MORE;
    }
    wire_reader_init(&r, buf, SPILL_REC_HEADER_SIZE);
    magic = wire_get_le32(&r);
    rec->type = wire_get_le16(&r);
    rec->block = wire_get_le16(&r);
    rec->seq = wire_get_le64(&r);
    rec->offset = wire_get_le64(&r);
    rec->len = wire_get_le32(&r);
    check = wire_get_le32(&r);
    if (magic != SPILL_REC_MAGIC) {
        return corrupt(err, "bad record magic");
    }

    /* the length must be plausible before it decides what to read */
    switch (rec->type) {
    case SPILL_REC_BLOCK:
        if (rec->len < 9 || rec->len > 8 + 255) {
            return corrupt(err, "bad block record length");
        }
        break;
    case SPILL_REC_PAGE:
        if (rec->len != s->hdr.page_size) {
            return corrupt(err, "bad page record length");
        }
        break;
    case SPILL_REC_STREAM:
        if (!rec->len || rec->len > SPILL_MAX_STREAM) {
            return corrupt(err, "bad stream record length");
        }
        break;
    case SPILL_REC_END:
    case SPILL_REC_ABORT:
        if (rec->len) {
            return corrupt(err, "end record with a payload");
        }
        break;
    default:
        /* SPILL_REC_STATE included: no writer emits it */
        return corrupt(err, "unknown or unused record type");
    }
    size = spill_record_size(rec->len);
    if (avail < size) {
        *want = size;
        return SPILL_SCAN_MORE;
    }
    rec->payload = buf + SPILL_REC_HEADER_SIZE;
    if (check != record_check(buf, rec->payload, rec->len)) {
        return corrupt(err, "record checksum does not match");
    }
    for (uint64_t i = SPILL_REC_HEADER_SIZE + rec->len; i < size; i++) {
        if (buf[i]) {
            return corrupt(err, "record padding is not zero");
        }
    }
    if (rec->seq <= s->last_seq) {
        return corrupt(err, "sequence numbers do not increase");
    }

    switch (rec->type) {
    case SPILL_REC_BLOCK: {
        SpillBlock *b;
        uint32_t n = rec->len - 8;

        if (rec->block != s->nblocks || s->nblocks >= SPILL_MAX_BLOCKS) {
            return corrupt(err, "blocks out of order or too many");
        }
        wire_reader_init(&r, rec->payload, rec->len);
        b = &s->blocks[s->nblocks];
        b->length = wire_get_le64(&r);
        wire_get_bytes(&r, b->idstr, n);
        b->idstr[n] = 0;
        if (strlen(b->idstr) != n || !b->length ||
            b->length % s->hdr.page_size) {
            return corrupt(err, "bad block record");
        }
        s->nblocks++;
        break;
    }
    case SPILL_REC_PAGE:
        if (rec->block >= s->nblocks) {
            return corrupt(err, "page of an undefined block");
        }
        if (rec->offset % s->hdr.page_size ||
            rec->offset >= s->blocks[rec->block].length) {
            return corrupt(err, "page offset outside its block");
        }
        break;
    case SPILL_REC_STREAM:
        if (rec->offset != s->stream_end) {
            return corrupt(err, "a gap or overlap in the stream records");
        }
        s->stream_end += rec->len;
        break;
    case SPILL_REC_END:
    case SPILL_REC_ABORT:
        if (avail > size) {
            return corrupt(err, "data after the end record");
        }
        s->ended = true;
        break;
    default:
        break;
    }
    s->last_seq = rec->seq;
    s->pos += size;
    switch (rec->type) {
    case SPILL_REC_END:
        return SPILL_SCAN_END;
    case SPILL_REC_ABORT:
        return SPILL_SCAN_ABORT;
    default:
        return SPILL_SCAN_RECORD;
    }
}

void spill_pos_encode(uint8_t *buf, const char *magic, const uint8_t *uuid,
                      const uint64_t *values, unsigned n)
{
    WireWriter w;

    wire_writer_init(&w, buf, SPILL_POS_SIZE(n));
    wire_put_bytes(&w, magic, 8);
    wire_put_bytes(&w, uuid, SPILL_UUID_LEN);
    for (unsigned i = 0; i < n; i++) {
        wire_put_le64(&w, values[i]);
    }
}

bool spill_pos_decode(const uint8_t *buf, size_t len, const char *magic,
                      const uint8_t *uuid, uint64_t *values, unsigned n)
{
    WireReader r;

    memset(values, 0, n * sizeof(*values));
    if (len != SPILL_POS_SIZE(n) || memcmp(buf, magic, 8) ||
        memcmp(buf + 8, uuid, SPILL_UUID_LEN)) {
        return false;
    }
    wire_reader_init(&r, buf + 8 + SPILL_UUID_LEN, 8 * n);
    for (unsigned i = 0; i < n; i++) {
        values[i] = wire_get_le64(&r);
    }
    return wire_reader_done(&r);
}

bool spill_torn_give_up(SpillTorn *t, SpillScanResult r, int64_t now_ms)
{
    if (r != SPILL_SCAN_CORRUPT) {
        t->bad = false;
        return false;
    }
    if (!t->bad) {
        t->bad = true;
        t->bad_since = now_ms;
        return false;
    }
    return now_ms - t->bad_since > SPILL_TORN_MS;
}

void spill_seq_init(SpillSeqTable *t, uint64_t npages)
{
    t->npages = npages;
    t->seq = g_new0(uint64_t, MAX(npages, 1));
}

void spill_seq_destroy(SpillSeqTable *t)
{
    g_free(t->seq);
    t->seq = NULL;
    t->npages = 0;
}

bool spill_seq_take(SpillSeqTable *t, uint64_t page, uint64_t seq)
{
    if (page >= t->npages || !seq || seq <= t->seq[page]) {
        return false;
    }
    t->seq[page] = seq;
    return true;
}

void spill_back_init(SpillBack *b)
{
    b->block = -1;
    b->below = 0;
    b->round_over = false;
    b->round_sync = 0;
}

int spill_back_claim(SpillBack *b, const SpillBackOps *ops, void *opaque,
                     uint64_t sync, int max, int scan_max, int *blocks,
                     uint64_t *pages)
{
    int n = 0, scanned = 0;

    if (b->round_over) {
        if (sync == b->round_sync) {
            return 0;           /* nothing new before the next sync */
        }
        b->round_over = false;
    }
    while (n < max && scanned < scan_max) {
        uint64_t page;

        if (b->block < 0) {
            /* a new round, from the end of the last block */
            b->block = ops->nblocks(opaque) - 1;
            if (b->block < 0) {
                break;
            }
            b->below = ops->npages(opaque, b->block);
        }
        page = b->below ? ops->last_dirty(opaque, b->block, b->below) : 0;
        if (!b->below || page >= b->below) {
            /* nothing more in this block: the one before it */
            if (--b->block < 0) {
                b->round_over = true;
                b->round_sync = sync;
                break;
            }
            b->below = ops->npages(opaque, b->block);
            continue;
        }
        b->below = page;
        scanned++;
        if (ops->leave(opaque, b->block, page)) {
            continue;
        }
        if (ops->take(opaque, b->block, page)) {
            blocks[n] = b->block;
            pages[n] = page;
            n++;
        }
    }
    return n;
}
