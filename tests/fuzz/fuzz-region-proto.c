/*
 * Fuzz target: the messages of a common-regions export
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The server reads hellos and request headers from any local process
 * that connects; the client reads the server's replies.  This target
 * decodes the input as each of them and checks that:
 *
 *  - a hello or hello reply decodes exactly when it re-encodes to the
 *    same bytes (for the page size it carries);
 *  - a header decodes exactly when its operation is known, its reserved
 *    bytes zero and its count within the operation's bounds, and then
 *    re-encodes to the same bytes;
 *  - a HAVE bitmap is valid exactly when no bit past the count is set
 *    (the count from the input's first 3 bytes, 1..4096), and
 *    every bit below it reads as set in the input;
 *  - the return-path message of the capability (the whole input)
 *    decodes exactly when it re-encodes to the same bytes.
 *
 * Input layout: the bytes, read from offset 0 by each decoder in turn
 * (zero padded to the message's size).
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "region-proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t buf[RXP_HELLO_REPLY_SIZE] = { 0 };
    uint8_t again[RXP_HELLO_REPLY_SIZE];
    const char *err = NULL;
    uint32_t page_size, count;
    uint64_t pages;
    uint8_t op;
    bool ok;

    memcpy(buf, data, MIN(size, sizeof(buf)));
    page_size = (uint32_t)buf[12] << 24 | buf[13] << 16 | buf[14] << 8 |
                buf[15];

    ok = rxp_hello_decode(buf, page_size, &err);
    rxp_hello_encode(again, page_size);
    assert(ok == !memcmp(buf, again, RXP_HELLO_SIZE));
    assert(ok || err);

    ok = rxp_hello_reply_decode(buf, page_size, &pages, &err);
    if (ok) {
        rxp_hello_reply_encode(again, page_size, pages);
        assert(!memcmp(buf, again, RXP_HELLO_REPLY_SIZE));
    } else {
        rxp_hello_reply_encode(again, page_size, 0);
        assert(memcmp(buf, again, RXP_HELLO_SIZE));
    }

    ok = rxp_header_decode(buf, &op, &count, &err);
    if (ok) {
        assert(op == RXP_OP_HAVE || op == RXP_OP_GET);
        assert(count >= 1 &&
               count <= (op == RXP_OP_HAVE ? RXP_MAX_HAVE : RXP_MAX_GET));
        rxp_header_encode(again, op, count);
        assert(!memcmp(buf, again, RXP_HEADER_SIZE));
    } else {
        assert(err);
        assert(buf[1] || buf[2] || buf[3] ||
               (buf[0] != RXP_OP_HAVE && buf[0] != RXP_OP_GET) ||
               !memcmp(buf + 4, "\0\0\0\0", 4) ||
               (buf[0] == RXP_OP_HAVE &&
                ((uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 |
                 buf[7]) > RXP_MAX_HAVE) ||
               (buf[0] == RXP_OP_GET &&
                ((uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 |
                 buf[7]) > RXP_MAX_GET));
    }

    if (size > 3) {
        uint32_t n = 1 + (((uint32_t)data[0] << 16 | data[1] << 8 | data[2])
                          % 4096);
        g_autofree uint8_t *bm = g_malloc0(rxp_have_reply_size(n));
        bool past = false;

        memcpy(bm, data + 3, MIN(size - 3, rxp_have_reply_size(n)));
        for (uint32_t i = n; i < rxp_have_reply_size(n) * 8; i++) {
            past |= rxp_have_bit(bm, i);
        }
        assert(rxp_have_bitmap_valid(bm, n) == !past);
        for (uint32_t i = 0; i < n; i++) {
            assert(rxp_have_bit(bm, i) == !!(bm[i / 8] & (1u << (i % 8))));
        }
    }
    {
        uint8_t held[RXP_HELD_MAX_LEN];
        RxpHeld m;

        if (rxp_held_decode(data, size, &m, &err)) {
            assert(m.kind == RXP_HELD_PAGES || m.kind == RXP_HELD_DONE);
            assert(rxp_held_encode(held, &m) == size);
            assert(!memcmp(held, data, size));
        }
    }
    return 0;
}
