/*
 * common-regions: the protocol of a region export
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * See region-proto.h for the messages.
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "region-proto.h"

static void hello_put(WireWriter *w, uint32_t page_size)
{
    wire_put_bytes(w, RXP_MAGIC, RXP_MAGIC_LEN);
    wire_put_be32(w, RXP_VERSION);
    wire_put_be32(w, page_size);
}

static bool hello_get(WireReader *r, uint32_t page_size, const char **err)
{
    uint8_t magic[RXP_MAGIC_LEN];

    wire_get_bytes(r, magic, sizeof(magic));
    if (memcmp(magic, RXP_MAGIC, RXP_MAGIC_LEN)) {
        *err = "not a region export (bad magic)";
        return false;
    }
    if (wire_get_be32(r) != RXP_VERSION) {
        *err = "unsupported region export version";
        return false;
    }
    if (wire_get_be32(r) != page_size) {
        *err = "the page sizes differ";
        return false;
    }
    return true;
}

void rxp_hello_encode(uint8_t *buf, uint32_t page_size)
{
    WireWriter w;

    wire_writer_init(&w, buf, RXP_HELLO_SIZE);
    hello_put(&w, page_size);
}

bool rxp_hello_decode(const uint8_t *buf, uint32_t page_size,
                      const char **err)
{
    WireReader r;

    wire_reader_init(&r, buf, RXP_HELLO_SIZE);
    return hello_get(&r, page_size, err);
}

void rxp_hello_reply_encode(uint8_t *buf, uint32_t page_size,
                            uint64_t pages)
{
    WireWriter w;

    wire_writer_init(&w, buf, RXP_HELLO_REPLY_SIZE);
    hello_put(&w, page_size);
    wire_put_be64(&w, pages);
}

bool rxp_hello_reply_decode(const uint8_t *buf, uint32_t page_size,
                            uint64_t *pages, const char **err)
{
    WireReader r;

    wire_reader_init(&r, buf, RXP_HELLO_REPLY_SIZE);
    if (!hello_get(&r, page_size, err)) {
        return false;
    }
    *pages = wire_get_be64(&r);
    return true;
}

void rxp_header_encode(uint8_t *buf, uint8_t op, uint32_t count)
{
    WireWriter w;

    wire_writer_init(&w, buf, RXP_HEADER_SIZE);
    wire_put_u8(&w, op);
    wire_put_u8(&w, 0);
    wire_put_be16(&w, 0);
    wire_put_be32(&w, count);
}

bool rxp_header_decode(const uint8_t *buf, uint8_t *op, uint32_t *count,
                       const char **err)
{
    WireReader r;
    uint32_t max;

    wire_reader_init(&r, buf, RXP_HEADER_SIZE);
    *op = wire_get_u8(&r);
    if (wire_get_u8(&r) || wire_get_be16(&r)) {
        *err = "reserved bytes are not zero";
        return false;
    }
    *count = wire_get_be32(&r);
    switch (*op) {
    case RXP_OP_HAVE:
        max = RXP_MAX_HAVE;
        break;
    case RXP_OP_GET:
        max = RXP_MAX_GET;
        break;
    default:
        *err = "unknown operation";
        return false;
    }
    if (*count < 1 || *count > max) {
        *err = "count out of range";
        return false;
    }
    return true;
}

bool rxp_have_bitmap_valid(const uint8_t *bitmap, uint32_t count)
{
    return !(count % 8) || !(bitmap[count / 8] >> (count % 8));
}

size_t rxp_held_encode(uint8_t *buf, const RxpHeld *m)
{
    WireWriter w;

    wire_writer_init(&w, buf, RXP_HELD_MAX_LEN);
    wire_put_u8(&w, m->kind);
    if (m->kind == RXP_HELD_DONE) {
        wire_put_be64(&w, m->pages);
    } else {
        assert(m->bytes >= 1 && m->bytes <= RXP_HELD_MAX_BYTES);
        wire_put_be16(&w, m->block);
        wire_put_be64(&w, m->first_page);
        wire_put_be16(&w, m->bytes);
        wire_put_bytes(&w, m->bitmap, m->bytes);
    }
    assert(!w.error);
    return w.pos;
}

bool rxp_held_decode(const uint8_t *buf, size_t len, RxpHeld *m,
                     const char **err)
{
    WireReader r;

    wire_reader_init(&r, buf, len);
    memset(m, 0, sizeof(*m));
    m->kind = wire_get_u8(&r);
    if (m->kind == RXP_HELD_DONE) {
        m->pages = wire_get_be64(&r);
    } else if (m->kind == RXP_HELD_PAGES) {
        m->block = wire_get_be16(&r);
        m->first_page = wire_get_be64(&r);
        m->bytes = wire_get_be16(&r);
        if (m->first_page % 8) {
            *err = "unaligned first page";
            return false;
        }
        if (m->bytes < 1 || m->bytes > RXP_HELD_MAX_BYTES) {
            *err = "bitmap size out of range";
            return false;
        }
        m->bitmap = wire_reader_ok(&r) ? buf + r.pos : NULL;
        wire_skip(&r, m->bytes);
    } else {
        *err = "unknown kind";
        return false;
    }
    if (!wire_reader_done(&r)) {
        *err = "length does not match";
        return false;
    }
    return true;
}
