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

/**
 * wire_reader_init: start reading a buffer
 * @r: the reader
 * @buf: the buffer; NULL reads as an empty buffer
 * @len: bytes in @buf
 */
void wire_reader_init(WireReader *r, const void *buf, size_t len);

/**
 * wire_reader_ok: has every read so far fit?
 * @r: the reader
 *
 * Returns: true while no read has run past the end of the buffer.
 */
static inline bool wire_reader_ok(const WireReader *r)
{
    return !r->error;
}

/**
 * wire_reader_done: has the whole buffer been read?
 * @r: the reader
 *
 * Returns: true when every byte was consumed and no read failed.
 */
static inline bool wire_reader_done(const WireReader *r)
{
    return !r->error && r->pos == r->len;
}

/**
 * wire_reader_remaining: bytes left to read
 * @r: the reader
 *
 * Returns: the bytes not read yet, 0 after a failed read.
 */
static inline size_t wire_reader_remaining(const WireReader *r)
{
    return r->error ? 0 : r->len - r->pos;
}

/**
 * wire_get_u8: read a byte
 * @r: the reader
 *
 * Returns: the value read, or 0 when no byte remains (which latches
 * the error) or an earlier read failed.
 */
uint8_t wire_get_u8(WireReader *r);

/**
 * wire_get_be16: read a 16-bit big-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 2 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint16_t wire_get_be16(WireReader *r);

/**
 * wire_get_be32: read a 32-bit big-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 4 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint32_t wire_get_be32(WireReader *r);

/**
 * wire_get_be64: read a 64-bit big-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 8 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint64_t wire_get_be64(WireReader *r);

/**
 * wire_get_le16: read a 16-bit little-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 2 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint16_t wire_get_le16(WireReader *r);

/**
 * wire_get_le32: read a 32-bit little-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 4 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint32_t wire_get_le32(WireReader *r);

/**
 * wire_get_le64: read a 64-bit little-endian integer
 * @r: the reader
 *
 * Returns: the value read, or 0 when fewer than 8 bytes remain (which
 * latches the error) or an earlier read failed.
 */
uint64_t wire_get_le64(WireReader *r);

/**
 * wire_get_bytes: read bytes into a buffer
 * @r: the reader
 * @dst: where to copy them
 * @n: how many
 *
 * Copy @n bytes to @dst.  On a short buffer @dst is zeroed and the
 * error is latched.
 *
 * Returns: true on success, false on a short buffer or after an earlier
 * failed read.
 */
bool wire_get_bytes(WireReader *r, void *dst, size_t n);

/**
 * wire_get_span: consume bytes in place
 * @r: the reader
 * @n: how many
 *
 * Consume the next @n bytes.  When fewer than @n remain, the error is
 * latched.  A zero-length span of an empty reader may be NULL too:
 * check wire_reader_ok(), not the pointer.
 *
 * Returns: a pointer to the next @n bytes, or NULL when fewer than @n
 * remain.
 */
const uint8_t *wire_get_span(WireReader *r, size_t n);

/**
 * wire_skip: consume bytes without reading them
 * @r: the reader
 * @n: how many
 *
 * When fewer than @n remain, the error is latched.
 *
 * Returns: true while no read has run past the end of the buffer
 * (wire_reader_ok()).
 */
bool wire_skip(WireReader *r, size_t n);

/**
 * wire_writer_init: start writing into a buffer
 * @w: the writer
 * @buf: the buffer; NULL has no room
 * @cap: bytes in @buf
 */
void wire_writer_init(WireWriter *w, void *buf, size_t cap);

/**
 * wire_writer_ok: has every write so far fit?
 * @w: the writer
 *
 * Returns: true while no write has overflowed the buffer.
 */
static inline bool wire_writer_ok(const WireWriter *w)
{
    return !w->error;
}

/**
 * wire_writer_len: bytes written so far
 * @w: the writer
 *
 * Returns: the bytes written so far, zero after an overflow.
 */
static inline size_t wire_writer_len(const WireWriter *w)
{
    return w->error ? 0 : w->pos;
}

/**
 * wire_put_u8: write a byte
 * @w: the writer
 * @v: the value
 *
 * When no room remains, nothing is written and the error is latched.
 */
void wire_put_u8(WireWriter *w, uint8_t v);

/**
 * wire_put_be16: write a 16-bit big-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 2 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_be16(WireWriter *w, uint16_t v);

/**
 * wire_put_be32: write a 32-bit big-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 4 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_be32(WireWriter *w, uint32_t v);

/**
 * wire_put_be64: write a 64-bit big-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 8 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_be64(WireWriter *w, uint64_t v);

/**
 * wire_put_le16: write a 16-bit little-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 2 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_le16(WireWriter *w, uint16_t v);

/**
 * wire_put_le32: write a 32-bit little-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 4 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_le32(WireWriter *w, uint32_t v);

/**
 * wire_put_le64: write a 64-bit little-endian integer
 * @w: the writer
 * @v: the value
 *
 * When fewer than 8 bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_le64(WireWriter *w, uint64_t v);

/**
 * wire_put_bytes: write bytes from a buffer
 * @w: the writer
 * @src: the bytes
 * @n: how many
 *
 * When fewer than @n bytes of room remain, nothing is written and the
 * error is latched.
 */
void wire_put_bytes(WireWriter *w, const void *src, size_t n);

/**
 * wire_range_fits: does a range lie inside a limit?
 * @start: start of the range
 * @len: length of the range
 * @limit: end of the space
 *
 * Computed without overflow.  An empty range at @limit counts as inside.
 *
 * Returns: true when [@start, @start + @len) lies inside [0, @limit).
 */
static inline bool wire_range_fits(uint64_t start, uint64_t len,
                                   uint64_t limit)
{
    return start <= limit && len <= limit - start;
}

/**
 * wire_ranges_overlap: do two ranges share a byte?
 * @a: start of the first range
 * @alen: length of the first range
 * @b: start of the second range
 * @blen: length of the second range
 *
 * Ranges whose end would overflow are clamped to the top of the address
 * space.
 *
 * Returns: true when [@a, @a + @alen) and [@b, @b + @blen) share a byte.
 */
static inline bool wire_ranges_overlap(uint64_t a, uint64_t alen,
                                       uint64_t b, uint64_t blen)
{
    uint64_t aend = alen > UINT64_MAX - a ? UINT64_MAX : a + alen;
    uint64_t bend = blen > UINT64_MAX - b ? UINT64_MAX : b + blen;

    return alen && blen && a < bend && b < aend;
}

#endif
