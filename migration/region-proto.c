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
