/*
 * Bounds-checked encoding and decoding of migration records
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Every record type the migration-transport capabilities put on the wire
 * or read from guest memory and shared files goes through these helpers.
 * A reader never reads past its buffer: the first short read latches an
 * error, every later read returns zero, and the caller checks once at the
 * end with wire_reader_ok().  This keeps the parsers of untrusted input
 * (guest-published maps, streams from another host, spill files) short
 * and free of per-field length arithmetic.
 *
 * The code is QEMU-independent so that it can be unit tested on its own.
 */

#ifndef MIGRATION_WIRE_CODEC_H
#define MIGRATION_WIRE_CODEC_H

typedef struct WireReader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    bool error;
} WireReader;

typedef struct WireWriter {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    bool error;
} WireWriter;

void wire_reader_init(WireReader *r, const void *buf, size_t len);

/* True while no read has run past the end of the buffer. */
static inline bool wire_reader_ok(const WireReader *r)
{
    return !r->error;
}

/* True when every byte was consumed and no read failed. */
static inline bool wire_reader_done(const WireReader *r)
{
    return !r->error && r->pos == r->len;
}

static inline size_t wire_reader_remaining(const WireReader *r)
{
    return r->error ? 0 : r->len - r->pos;
}

uint8_t wire_get_u8(WireReader *r);
uint16_t wire_get_be16(WireReader *r);
uint32_t wire_get_be32(WireReader *r);
uint64_t wire_get_be64(WireReader *r);
uint16_t wire_get_le16(WireReader *r);
uint32_t wire_get_le32(WireReader *r);
uint64_t wire_get_le64(WireReader *r);

/*
 * Copy @n bytes to @dst.  On a short buffer @dst is zeroed, the error is
 * latched and false is returned.
 */
bool wire_get_bytes(WireReader *r, void *dst, size_t n);

/*
 * Return a pointer to the next @n bytes and consume them, or NULL (and
 * latch the error) when fewer than @n remain.  A zero-length span of an
 * empty reader may be NULL too: check wire_reader_ok(), not the pointer.
 */
const uint8_t *wire_get_span(WireReader *r, size_t n);

bool wire_skip(WireReader *r, size_t n);

void wire_writer_init(WireWriter *w, void *buf, size_t cap);

static inline bool wire_writer_ok(const WireWriter *w)
{
    return !w->error;
}

/* Bytes written so far (zero after an overflow). */
static inline size_t wire_writer_len(const WireWriter *w)
{
    return w->error ? 0 : w->pos;
}

void wire_put_u8(WireWriter *w, uint8_t v);
void wire_put_be16(WireWriter *w, uint16_t v);
void wire_put_be32(WireWriter *w, uint32_t v);
void wire_put_be64(WireWriter *w, uint64_t v);
void wire_put_le16(WireWriter *w, uint16_t v);
void wire_put_le32(WireWriter *w, uint32_t v);
void wire_put_le64(WireWriter *w, uint64_t v);
void wire_put_bytes(WireWriter *w, const void *src, size_t n);

/*
 * True when [@start, @start + @len) lies inside [0, @limit), computed
 * without overflow.  An empty range at @limit counts as inside.
 */
static inline bool wire_range_fits(uint64_t start, uint64_t len,
                                   uint64_t limit)
{
    return start <= limit && len <= limit - start;
}

/*
 * True when [@a, @a + @alen) and [@b, @b + @blen) share a byte.  Ranges
 * whose end would overflow are clamped to the top of the address space.
 */
static inline bool wire_ranges_overlap(uint64_t a, uint64_t alen,
                                       uint64_t b, uint64_t blen)
{
    uint64_t aend = alen > UINT64_MAX - a ? UINT64_MAX : a + alen;
    uint64_t bend = blen > UINT64_MAX - b ? UINT64_MAX : b + blen;

    return alen && blen && a < bend && b < aend;
}

#endif
