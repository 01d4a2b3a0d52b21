/*
 * Fuzz target: the bounds-checked WireReader, against a model
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Every parser of untrusted bytes in the series reads through
 * WireReader.  This target runs a little program of reads over a buffer
 * and checks each against a model kept here: the value read, the
 * position, the error that latches on the first short read and makes
 * every later read return zero, remaining() and done().  Each read is
 * mirrored by the matching put into a WireWriter of the same capacity,
 * which must fail exactly where the reader does and, where it does not,
 * hold the bytes read.  wire_range_fits() and wire_ranges_overlap() are
 * checked against 128-bit arithmetic on values read from the buffer.
 *
 * Input layout:
 *   0  u8 head      low 7 bits: the program's length; bit 7: the reader
 *                   gets a NULL buffer (which reads as empty)
 *   1  program      one op a byte (op % FUZZ_WIRE__MAX); bytes, span and skip
 *                   take the next byte as their length, 255 meaning
 *                   SIZE_MAX for span and skip
 *      the rest     the buffer read
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "fuzz.h"

typedef struct Model {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    bool error;
} Model;

static void check_state(const Model *m, const WireReader *r,
                        const WireWriter *w)
{
    assert(r->error == m->error);
    assert(wire_reader_ok(r) == !m->error);
    assert(wire_reader_remaining(r) == (m->error ? 0 : m->len - m->pos));
    assert(wire_reader_done(r) == (!m->error && m->pos == m->len));
    if (!m->error) {
        assert(r->pos == m->pos);
    }
    /* the writer has the reader's capacity and took the same sizes */
    assert(wire_writer_ok(w) == !m->error);
    assert(wire_writer_len(w) == (m->error ? 0 : m->pos));
}

/* The model's read of @n bytes: their offset, or -1 on a short read. */
static ssize_t model_take(Model *m, size_t n)
{
    size_t at = m->pos;

    if (m->error || n > m->len - m->pos) {
        m->error = true;
        return -1;
    }
    m->pos += n;
    return at;
}

static uint64_t model_int(Model *m, size_t n, bool be)
{
    ssize_t at = model_take(m, n);
    uint64_t v = 0;
    size_t i;

    if (at < 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        v |= (uint64_t)m->buf[at + i] << (8 * (be ? n - 1 - i : i));
    }
    return v;
}

static uint64_t read_int(WireReader *r, WireWriter *w, Model *m, int op)
{
    uint64_t v, want;

    switch (op) {
    case FUZZ_WIRE_U8:
        v = wire_get_u8(r);
        want = model_int(m, 1, true);
        wire_put_u8(w, v);
        break;
    case FUZZ_WIRE_BE16:
        v = wire_get_be16(r);
        want = model_int(m, 2, true);
        wire_put_be16(w, v);
        break;
    case FUZZ_WIRE_BE32:
        v = wire_get_be32(r);
        want = model_int(m, 4, true);
        wire_put_be32(w, v);
        break;
    case FUZZ_WIRE_BE64:
        v = wire_get_be64(r);
        want = model_int(m, 8, true);
        wire_put_be64(w, v);
        break;
    case FUZZ_WIRE_LE16:
        v = wire_get_le16(r);
        want = model_int(m, 2, false);
        wire_put_le16(w, v);
        break;
    case FUZZ_WIRE_LE32:
        v = wire_get_le32(r);
        want = model_int(m, 4, false);
        wire_put_le32(w, v);
        break;
    default:
        v = wire_get_le64(r);
        want = model_int(m, 8, false);
        wire_put_le64(w, v);
        break;
    }
    assert(v == want);
    return v;
}

static void check_fits(uint64_t start, uint64_t len, uint64_t limit)
{
    unsigned __int128 end = (unsigned __int128)start + len;

    assert(wire_range_fits(start, len, limit) ==
           (start <= limit && end <= limit));
}

static void check_overlap(uint64_t a, uint64_t alen, uint64_t b,
                          uint64_t blen)
{
    unsigned __int128 aend = (unsigned __int128)a + alen;
    unsigned __int128 bend = (unsigned __int128)b + blen;

    /* the top byte of the address space is left out, as documented */
    aend = MIN(aend, (unsigned __int128)UINT64_MAX);
    bend = MIN(bend, (unsigned __int128)UINT64_MAX);
    assert(wire_ranges_overlap(a, alen, b, blen) ==
           (alen && blen && a < bend && b < aend));
    assert(wire_ranges_overlap(a, alen, b, blen) ==
           wire_ranges_overlap(b, blen, a, alen));
}

static void run_op(WireReader *r, WireWriter *w, Model *m, int op, size_t n)
{
    static const uint8_t zero[256];
    uint8_t dst[256];
    const uint8_t *p;
    uint64_t v[4];
    ssize_t at;
    bool ok;
    int i;

    switch (op) {
    case FUZZ_WIRE_BYTES:
        memset(dst, 0xa5, sizeof(dst));
        ok = wire_get_bytes(r, dst, n);
        at = model_take(m, n);
        assert(ok == (at >= 0));
        /* a short read zeroes the destination, and no byte beyond */
        assert(!memcmp(dst, at >= 0 && m->buf ? m->buf + at : zero, n));
        assert(n == sizeof(dst) || dst[n] == 0xa5);
        wire_put_bytes(w, dst, n);
        break;
    case FUZZ_WIRE_SPAN:
        p = wire_get_span(r, n);
        at = model_take(m, n);
        if (at < 0) {
            assert(!p);
            wire_put_bytes(w, zero, n);
        } else {
            /* NULL only for an empty span of a NULL buffer */
            assert(p == (m->buf ? m->buf + at : NULL));
            wire_put_bytes(w, p, n);
        }
        break;
    case FUZZ_WIRE_SKIP:
        ok = wire_skip(r, n);
        at = model_take(m, n);
        assert(ok == (at >= 0));
        wire_put_bytes(w, at >= 0 && m->buf ? m->buf + at : zero, n);
        break;
    case FUZZ_WIRE_FITS:
    case FUZZ_WIRE_OVERLAP:
        for (i = 0; i < (op == FUZZ_WIRE_FITS ? 3 : 4); i++) {
            v[i] = read_int(r, w, m, FUZZ_WIRE_LE64);
        }
        if (m->error) {
            break;
        }
        if (op == FUZZ_WIRE_FITS) {
            check_fits(v[0], v[1], v[2]);
        } else {
            check_overlap(v[0], v[1], v[2], v[3]);
        }
        break;
    default:
        read_int(r, w, m, op);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *prog, *buf;
    size_t plen, i;
    uint8_t *out;
    WireReader r;
    WireWriter w;
    Model m;

    if (size < 1) {
        return 0;
    }
    plen = MIN(data[0] & FUZZ_WIRE_PROG_LEN, size - 1);
    prog = data + 1;
    buf = prog + plen;
    m = (Model) {
        .buf = data[0] & FUZZ_WIRE_NULL_BUFFER ? NULL : buf,
        .len = data[0] & FUZZ_WIRE_NULL_BUFFER ? 0 : size - 1 - plen,
    };
    wire_reader_init(&r, m.buf, size - 1 - plen);
    out = g_malloc(m.len + 1);
    wire_writer_init(&w, out, m.len);
    check_state(&m, &r, &w);

    for (i = 0; i < plen; i++) {
        int op = prog[i] % FUZZ_WIRE__MAX;
        size_t n = 0;

        if (op == FUZZ_WIRE_BYTES || op == FUZZ_WIRE_SPAN ||
            op == FUZZ_WIRE_SKIP) {
            n = i + 1 < plen ? prog[++i] : 0;
            if (n == 255 && op != FUZZ_WIRE_BYTES) {
                n = SIZE_MAX;
            }
        }
        run_op(&r, &w, &m, op, n);
        check_state(&m, &r, &w);
    }
    /* what was read went to the writer unchanged */
    if (!m.error && m.pos) {
        assert(!memcmp(out, m.buf, m.pos));
    }
    g_free(out);
    return 0;
}
