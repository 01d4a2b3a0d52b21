/*
 * Unit tests for the bounds-checked record codec
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "../migration/wire-codec.h"

static void test_read_big_endian(void **state)
{
    static const uint8_t buf[] = {
        0xab,
        0x01, 0x02,
        0x01, 0x02, 0x03, 0x04,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    };
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(wire_get_u8(&r), 0xab);
    assert_int_equal(wire_get_be16(&r), 0x0102);
    assert_int_equal(wire_get_be32(&r), 0x01020304);
    assert_true(wire_get_be64(&r) == 0x0102030405060708ULL);
    assert_true(wire_reader_done(&r));
}

static void test_read_little_endian(void **state)
{
    static const uint8_t buf[] = {
        0x01, 0x02,
        0x01, 0x02, 0x03, 0x04,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    };
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(wire_get_le16(&r), 0x0201);
    assert_int_equal(wire_get_le32(&r), 0x04030201);
    assert_true(wire_get_le64(&r) == 0x0807060504030201ULL);
    assert_true(wire_reader_done(&r));
}

static void test_truncated_read_latches(void **state)
{
    static const uint8_t buf[] = { 0x11, 0x22, 0x33 };
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(wire_get_be32(&r), 0);
    assert_false(wire_reader_ok(&r));
    /* the error is sticky: bytes that are there are not returned any more */
    assert_int_equal(wire_get_u8(&r), 0);
    assert_int_equal(wire_reader_remaining(&r), 0);
    assert_false(wire_reader_done(&r));
}

static void test_trailing_bytes_not_done(void **state)
{
    static const uint8_t buf[] = { 0, 0, 0, 1, 0xff };
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(wire_get_be32(&r), 1);
    assert_true(wire_reader_ok(&r));
    assert_false(wire_reader_done(&r));
    assert_int_equal(wire_reader_remaining(&r), 1);
}

static void test_get_bytes_short_zeroes_destination(void **state)
{
    static const uint8_t buf[] = { 1, 2, 3, 4 };
    uint8_t dst[8];
    WireReader r;

    memset(dst, 0x5a, sizeof(dst));
    wire_reader_init(&r, buf, sizeof(buf));
    assert_false(wire_get_bytes(&r, dst, sizeof(dst)));
    for (size_t i = 0; i < sizeof(dst); i++) {
        assert_int_equal(dst[i], 0);
    }
    assert_false(wire_reader_ok(&r));
}

static void test_span_and_skip(void **state)
{
    static const uint8_t buf[] = { 1, 2, 3, 4, 5 };
    const uint8_t *p;
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_true(wire_skip(&r, 1));
    p = wire_get_span(&r, 3);
    assert_non_null(p);
    assert_int_equal(p[0], 2);
    assert_int_equal(p[2], 4);
    assert_null(wire_get_span(&r, 2));
    assert_false(wire_skip(&r, 0));
}

static void test_huge_length_does_not_wrap(void **state)
{
    static const uint8_t buf[16];
    WireReader r;

    wire_reader_init(&r, buf, sizeof(buf));
    assert_true(wire_skip(&r, 8));
    /* pos + SIZE_MAX would wrap around to a small number */
    assert_null(wire_get_span(&r, SIZE_MAX));
    assert_false(wire_reader_ok(&r));
}

static void test_empty_and_null_reader(void **state)
{
    WireReader r;
    uint8_t b;

    wire_reader_init(&r, NULL, 100);
    assert_int_equal(wire_reader_remaining(&r), 0);
    assert_true(wire_get_bytes(&r, &b, 0));
    assert_true(wire_reader_done(&r));
    assert_int_equal(wire_get_u8(&r), 0);
    assert_false(wire_reader_ok(&r));
}

static void test_write_round_trip(void **state)
{
    uint8_t buf[32];
    static const uint8_t tag[3] = { 't', 'a', 'g' };
    uint8_t back[3];
    WireWriter w;
    WireReader r;

    wire_writer_init(&w, buf, sizeof(buf));
    wire_put_u8(&w, 0x7f);
    wire_put_be16(&w, 0xbeef);
    wire_put_be32(&w, 0xdeadbeef);
    wire_put_be64(&w, 0x0123456789abcdefULL);
    wire_put_le16(&w, 0xbeef);
    wire_put_le32(&w, 0xdeadbeef);
    wire_put_bytes(&w, tag, sizeof(tag));
    assert_true(wire_writer_ok(&w));
    assert_int_equal(wire_writer_len(&w), 1 + 2 + 4 + 8 + 2 + 4 + 3);
    /* byte order on the wire, not just symmetry */
    assert_int_equal(buf[1], 0xbe);
    assert_int_equal(buf[15], 0xef);

    wire_reader_init(&r, buf, wire_writer_len(&w));
    assert_int_equal(wire_get_u8(&r), 0x7f);
    assert_int_equal(wire_get_be16(&r), 0xbeef);
    assert_int_equal(wire_get_be32(&r), 0xdeadbeef);
    assert_true(wire_get_be64(&r) == 0x0123456789abcdefULL);
    assert_int_equal(wire_get_le16(&r), 0xbeef);
    assert_int_equal(wire_get_le32(&r), 0xdeadbeef);
    assert_true(wire_get_bytes(&r, back, sizeof(back)));
    assert_memory_equal(back, tag, sizeof(tag));
    assert_true(wire_reader_done(&r));
}

static void test_le64_write(void **state)
{
    uint8_t buf[8];
    WireWriter w;

    wire_writer_init(&w, buf, sizeof(buf));
    wire_put_le64(&w, 0x0807060504030201ULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(buf[i], i + 1);
    }
}

static void test_writer_overflow_latches(void **state)
{
    uint8_t buf[6];
    WireWriter w;

    memset(buf, 0xcc, sizeof(buf));
    wire_writer_init(&w, buf, sizeof(buf));
    wire_put_be32(&w, 1);
    wire_put_be32(&w, 2);
    assert_false(wire_writer_ok(&w));
    assert_int_equal(wire_writer_len(&w), 0);
    /* a field that did not fit leaves the bytes after the last good one */
    assert_int_equal(buf[4], 0xcc);
    assert_int_equal(buf[5], 0xcc);
    wire_put_u8(&w, 3);
    assert_int_equal(buf[4], 0xcc);
}

static void test_range_fits(void **state)
{
    assert_true(wire_range_fits(0, 0, 0));
    assert_true(wire_range_fits(0, 4096, 4096));
    assert_true(wire_range_fits(4096, 0, 4096));
    assert_false(wire_range_fits(4096, 1, 4096));
    assert_false(wire_range_fits(4097, 0, 4096));
    assert_false(wire_range_fits(1, UINT64_MAX, UINT64_MAX));
    assert_true(wire_range_fits(UINT64_MAX - 1, 1, UINT64_MAX));
    assert_false(wire_range_fits(UINT64_MAX - 4095, 4096, UINT64_MAX - 1));
}

static void test_ranges_overlap(void **state)
{
    assert_true(wire_ranges_overlap(0, 10, 5, 10));
    assert_true(wire_ranges_overlap(5, 10, 0, 10));
    assert_false(wire_ranges_overlap(0, 10, 10, 10));
    assert_false(wire_ranges_overlap(10, 10, 0, 10));
    assert_false(wire_ranges_overlap(0, 0, 0, 10));
    assert_true(wire_ranges_overlap(0, 100, 40, 1));
    assert_true(wire_ranges_overlap(UINT64_MAX - 10, 100, UINT64_MAX - 1, 1));
    assert_false(wire_ranges_overlap(UINT64_MAX - 10, 5, 0, UINT64_MAX - 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_big_endian),
        cmocka_unit_test(test_read_little_endian),
        cmocka_unit_test(test_truncated_read_latches),
        cmocka_unit_test(test_trailing_bytes_not_done),
        cmocka_unit_test(test_get_bytes_short_zeroes_destination),
        cmocka_unit_test(test_span_and_skip),
        cmocka_unit_test(test_huge_length_does_not_wrap),
        cmocka_unit_test(test_empty_and_null_reader),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_le64_write),
        cmocka_unit_test(test_writer_overflow_latches),
        cmocka_unit_test(test_range_fits),
        cmocka_unit_test(test_ranges_overlap),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("wire-codec", tests, NULL, NULL);
}
