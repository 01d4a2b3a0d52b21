/*
 * Bounds-checked encoding and decoding of migration records
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "wire-codec.h"

void wire_reader_init(WireReader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->error = false;
}

const uint8_t *wire_get_span(WireReader *r, size_t n)
{
    const uint8_t *p;

    if (r->error || n > r->len - r->pos) {
        r->error = true;
        return NULL;
    }
    p = r->buf ? r->buf + r->pos : NULL;
    r->pos += n;
    return p;
}

bool wire_skip(WireReader *r, size_t n)
{
    wire_get_span(r, n);
    return !r->error;
}

bool wire_get_bytes(WireReader *r, void *dst, size_t n)
{
    const uint8_t *p = wire_get_span(r, n);

    if (r->error) {
        memset(dst, 0, n);
        return false;
    }
    if (n) {
        memcpy(dst, p, n);
    }
    return true;
}

static uint64_t get_be(WireReader *r, size_t n)
{
    const uint8_t *p = wire_get_span(r, n);
    uint64_t v = 0;
    size_t i;

    for (i = 0; p && i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get_le(WireReader *r, size_t n)
{
    const uint8_t *p = wire_get_span(r, n);
    uint64_t v = 0;
    size_t i;

    for (i = 0; p && i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

uint8_t wire_get_u8(WireReader *r)
{
    return get_be(r, 1);
}

uint16_t wire_get_be16(WireReader *r)
{
    return get_be(r, 2);
}

uint32_t wire_get_be32(WireReader *r)
{
    return get_be(r, 4);
}

uint64_t wire_get_be64(WireReader *r)
{
    return get_be(r, 8);
}

uint16_t wire_get_le16(WireReader *r)
{
    return get_le(r, 2);
}

uint32_t wire_get_le32(WireReader *r)
{
    return get_le(r, 4);
}

uint64_t wire_get_le64(WireReader *r)
{
    return get_le(r, 8);
}

void wire_writer_init(WireWriter *w, void *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->pos = 0;
    w->error = false;
}

static uint8_t *put_span(WireWriter *w, size_t n)
{
    uint8_t *p;

    if (w->error || n > w->cap - w->pos) {
        w->error = true;
        return NULL;
    }
    p = w->buf ? w->buf + w->pos : NULL;
    w->pos += n;
    return p;
}

static void put_be(WireWriter *w, uint64_t v, size_t n)
{
    uint8_t *p = put_span(w, n);
    size_t i;

    for (i = 0; p && i < n; i++) {
        p[i] = v >> (8 * (n - 1 - i));
    }
}

static void put_le(WireWriter *w, uint64_t v, size_t n)
{
    uint8_t *p = put_span(w, n);
    size_t i;

    for (i = 0; p && i < n; i++) {
        p[i] = v >> (8 * i);
    }
}

void wire_put_u8(WireWriter *w, uint8_t v)
{
    put_be(w, v, 1);
}

void wire_put_be16(WireWriter *w, uint16_t v)
{
    put_be(w, v, 2);
}

void wire_put_be32(WireWriter *w, uint32_t v)
{
    put_be(w, v, 4);
}

void wire_put_be64(WireWriter *w, uint64_t v)
{
    put_be(w, v, 8);
}

void wire_put_le16(WireWriter *w, uint16_t v)
{
    put_le(w, v, 2);
}

void wire_put_le32(WireWriter *w, uint32_t v)
{
    put_le(w, v, 4);
}

void wire_put_le64(WireWriter *w, uint64_t v)
{
    put_le(w, v, 8);
}

void wire_put_bytes(WireWriter *w, const void *src, size_t n)
{
    uint8_t *p = put_span(w, n);

    if (p && n) {
        memcpy(p, src, n);
    }
}
