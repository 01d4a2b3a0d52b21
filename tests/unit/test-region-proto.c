/*
 * Unit tests of the common-regions export protocol
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "migration/region-proto.h"

static void test_hello(void **state)
{
    uint8_t b[RXP_HELLO_REPLY_SIZE];
    const char *err = NULL;
    uint64_t pages = 0;

    rxp_hello_encode(b, 4096);
    assert_memory_equal(b, "QCRXHELO\0\0\0\1\0\0\x10\0", RXP_HELLO_SIZE);
    assert_true(rxp_hello_decode(b, 4096, &err));
    assert_false(rxp_hello_decode(b, 65536, &err));
    assert_string_equal(err, "the page sizes differ");
    b[11] = 2;
    assert_false(rxp_hello_decode(b, 4096, &err));
    assert_string_equal(err, "unsupported region export version");
    b[11] = 1;
    b[0] = 'q';
    assert_false(rxp_hello_decode(b, 4096, &err));
    assert_string_equal(err, "not a region export (bad magic)");

    rxp_hello_reply_encode(b, 4096, 0x123456789ull);
    assert_true(rxp_hello_reply_decode(b, 4096, &pages, &err));
    assert_int_equal(pages, 0x123456789ull);
    assert_false(rxp_hello_reply_decode(b, 8192, &pages, &err));
}

static void test_header(void **state)
{
    static const struct {
        uint8_t op;
        uint32_t count;
        const char *err;
    } cases[] = {
        { RXP_OP_HAVE, 1, NULL },
        { RXP_OP_HAVE, RXP_MAX_HAVE, NULL },
        { RXP_OP_GET, RXP_MAX_GET, NULL },
        { RXP_OP_HAVE, 0, "count out of range" },
        { RXP_OP_HAVE, RXP_MAX_HAVE + 1, "count out of range" },
        { RXP_OP_GET, RXP_MAX_GET + 1, "count out of range" },
        { RXP_OP_GET, UINT32_MAX, "count out of range" },
        { 0, 1, "unknown operation" },
        { 3, 1, "unknown operation" },
    };
    uint8_t b[RXP_HEADER_SIZE];
    const char *err;
    uint32_t count;
    uint8_t op;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        rxp_header_encode(b, cases[i].op, cases[i].count);
        err = NULL;
        assert_int_equal(rxp_header_decode(b, &op, &count, &err),
                         !cases[i].err);
        if (cases[i].err) {
            assert_string_equal(err, cases[i].err);
        } else {
            assert_int_equal(op, cases[i].op);
            assert_int_equal(count, cases[i].count);
        }
    }
    for (int i = 1; i < 4; i++) {
        rxp_header_encode(b, RXP_OP_GET, 1);
        b[i] = 1;
        assert_false(rxp_header_decode(b, &op, &count, &err));
        assert_string_equal(err, "reserved bytes are not zero");
    }
}

static void test_bitmap(void **state)
{
    uint8_t bm[3] = { 0 };

    assert_int_equal(rxp_have_reply_size(1), 1);
    assert_int_equal(rxp_have_reply_size(8), 1);
    assert_int_equal(rxp_have_reply_size(17), 3);
    rxp_have_set(bm, 0);
    rxp_have_set(bm, 9);
    rxp_have_set(bm, 16);
    assert_true(rxp_have_bit(bm, 0) && rxp_have_bit(bm, 9) &&
                rxp_have_bit(bm, 16));
    assert_false(rxp_have_bit(bm, 1) || rxp_have_bit(bm, 8));
    assert_true(rxp_have_bitmap_valid(bm, 17));
    assert_true(rxp_have_bitmap_valid(bm, 16));   /* bm[2] not read */
    assert_false(rxp_have_bitmap_valid(bm, 9));   /* bit 9 is past 9 */
    bm[1] = 0x80;
    assert_false(rxp_have_bitmap_valid(bm, 15));
    assert_true(rxp_have_bitmap_valid(bm, 16));
    assert_true(rxp_status_valid(RXP_GOT) && rxp_status_valid(RXP_CHANGED));
    assert_false(rxp_status_valid(3));
}

static void test_held(void **state)
{
    uint8_t bm[RXP_HELD_MAX_BYTES], buf[RXP_HELD_MAX_LEN + 1];
    RxpHeld m = {
        .kind = RXP_HELD_PAGES, .block = 3, .first_page = 4096,
        .bytes = RXP_HELD_MAX_BYTES, .bitmap = bm,
    };
    RxpHeld d;
    const char *err = NULL;
    size_t len;

    for (size_t i = 0; i < sizeof(bm); i++) {
        bm[i] = i;
    }
    len = rxp_held_encode(buf, &m);
    assert_int_equal(len, RXP_HELD_MAX_LEN);
    assert_true(rxp_held_decode(buf, len, &d, &err));
    assert_int_equal(d.block, 3);
    assert_int_equal(d.first_page, 4096);
    assert_int_equal(d.bytes, RXP_HELD_MAX_BYTES);
    assert_memory_equal(d.bitmap, bm, sizeof(bm));
    assert_false(rxp_held_decode(buf, len - 1, &d, &err));
    assert_string_equal(err, "length does not match");
    assert_false(rxp_held_decode(buf, len + 1, &d, &err));
    buf[10] = 1;                            /* first page 4097 */
    assert_false(rxp_held_decode(buf, len, &d, &err));
    assert_string_equal(err, "unaligned first page");
    buf[10] = 0;
    buf[11] = buf[12] = 0;                  /* no bitmap */
    assert_false(rxp_held_decode(buf, len, &d, &err));
    assert_string_equal(err, "bitmap size out of range");
    buf[11] = 0x10;
    assert_false(rxp_held_decode(buf, len, &d, &err));
    buf[0] = 9;
    assert_false(rxp_held_decode(buf, len, &d, &err));
    assert_string_equal(err, "unknown kind");

    m = (RxpHeld) { .kind = RXP_HELD_DONE, .pages = 77 };
    len = rxp_held_encode(buf, &m);
    assert_int_equal(len, 9);
    assert_true(rxp_held_decode(buf, len, &d, &err));
    assert_int_equal(d.pages, 77);
    assert_false(rxp_held_decode(buf, 0, &d, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_bitmap),
        cmocka_unit_test(test_held),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("region-proto", tests, NULL, NULL);
}
