/*
 * common-regions: the protocol of a region export
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A QEMU that exports its regions serves the pages of its guest by
 * hash, on a unix socket, to a migration destination on the same host.
 * This unit encodes and checks the messages, and does not depend on the
 * rest of QEMU.  All integers are big-endian.
 *
 *   hello, client to server, RXP_HELLO_SIZE bytes:
 *     0  u8[8] magic         "QCRXHELO"
 *     8  u32 version         1
 *    12  u32 page_size       the client's; the server's must be the same
 *   hello reply, RXP_HELLO_REPLY_SIZE bytes: the hello, then
 *    16  u64 pages           pages the export indexed
 *
 *   request, client to server: a header, RXP_HEADER_SIZE bytes:
 *     0  u8 op               RXP_OP_HAVE or RXP_OP_GET
 *     1  u8[3]               zero
 *     4  u32 count           1..RXP_MAX_HAVE (HAVE), 1..RXP_MAX_GET (GET)
 *   then count page hashes of RFP_HASH_LEN bytes (SHA-256).
 *
 *   reply, server to client: the request's header, then
 *     HAVE: (count + 7) / 8 bytes, bit i (of byte i / 8, lowest bit
 *           first) set when hash i is in the export's index;
 *     GET:  for each hash, a status byte, RXP_GOT followed by the page
 *           (page_size bytes), whose SHA-256 the server checked just
 *           before, or RXP_UNKNOWN, or RXP_CHANGED when the page the
 *           index named no longer has that hash.
 *
 * A server closes a connection that breaks any rule; a client drops a
 * reply that does, and checks each page's hash again itself.
 *
 * The capability common-regions also uses this unit for the message a
 * migration destination sends its source on the return path, at most
 * RXP_HELD_MAX_LEN bytes:
 *     0  u8 kind             RXP_HELD_PAGES or RXP_HELD_DONE
 *   RXP_HELD_PAGES: the pages the destination placed and verified
 *     1  u16 block           the block's index in the source's fingerprint
 *     3  u64 first_page      a multiple of 8
 *    11  u16 bytes           1..RXP_HELD_MAX_BYTES
 *    13  bytes of bitmap     bit i (lowest first): page first_page + i
 *   RXP_HELD_DONE: nothing more will come
 *     1  u64 pages           pages placed in all
 */

#ifndef MIGRATION_REGION_PROTO_H
#define MIGRATION_REGION_PROTO_H

#define RXP_MAGIC               "QCRXHELO"
#define RXP_MAGIC_LEN           8
#define RXP_VERSION             1
#define RXP_HELLO_SIZE          16
#define RXP_HELLO_REPLY_SIZE    24
#define RXP_HEADER_SIZE         8
#define RXP_HASH_LEN            32
#define RXP_MAX_HAVE            65536
#define RXP_MAX_GET             64

enum {
    RXP_OP_HAVE = 1,
    RXP_OP_GET = 2,
};

enum {
    RXP_GOT = 0,
    RXP_UNKNOWN = 1,
    RXP_CHANGED = 2,
};

/**
 * rxp_hello_encode: encode the client's hello
 * @buf: where to, RXP_HELLO_SIZE bytes
 * @page_size: the client's page size
 */
void rxp_hello_encode(uint8_t *buf, uint32_t page_size);

/**
 * rxp_hello_decode: check a client's hello
 * @buf: RXP_HELLO_SIZE bytes
 * @page_size: the server's page size
 * @err: on failure, set to what is wrong
 *
 * Returns: true when the magic, the version and the page size are
 * right.
 */
bool rxp_hello_decode(const uint8_t *buf, uint32_t page_size,
                      const char **err);

/**
 * rxp_hello_reply_encode: encode the server's reply to a hello
 * @buf: where to, RXP_HELLO_REPLY_SIZE bytes
 * @page_size: the server's page size
 * @pages: the pages it indexed
 */
void rxp_hello_reply_encode(uint8_t *buf, uint32_t page_size,
                            uint64_t pages);

/**
 * rxp_hello_reply_decode: check the server's reply to a hello
 * @buf: RXP_HELLO_REPLY_SIZE bytes
 * @page_size: the client's page size
 * @pages: set to the pages the export indexed
 * @err: on failure, set to what is wrong
 *
 * Returns: true when the reply is valid for this client.
 */
bool rxp_hello_reply_decode(const uint8_t *buf, uint32_t page_size,
                            uint64_t *pages, const char **err);

/**
 * rxp_header_encode: encode a request's or reply's header
 * @buf: where to, RXP_HEADER_SIZE bytes
 * @op: RXP_OP_HAVE or RXP_OP_GET
 * @count: the hashes it carries
 */
void rxp_header_encode(uint8_t *buf, uint8_t op, uint32_t count);

/**
 * rxp_header_decode: check a request's or reply's header
 * @buf: RXP_HEADER_SIZE bytes
 * @op: set to its operation
 * @count: set to its count
 * @err: on failure, set to what is wrong
 *
 * Returns: true for a known operation, reserved bytes zero and a count
 * within the operation's bounds.
 */
bool rxp_header_decode(const uint8_t *buf, uint8_t *op, uint32_t *count,
                       const char **err);

/**
 * rxp_have_reply_size: bytes of a HAVE reply after its header
 * @count: hashes asked about
 *
 * Returns: the bytes of the bitmap.
 */
static inline size_t rxp_have_reply_size(uint32_t count)
{
    return ((size_t)count + 7) / 8;
}

/**
 * rxp_have_bit: read one answer of a HAVE reply
 * @bitmap: the reply's bitmap
 * @i: the hash's index in the request
 *
 * Returns: true when the export holds hash @i.
 */
static inline bool rxp_have_bit(const uint8_t *bitmap, uint32_t i)
{
    return bitmap[i / 8] & (1u << (i % 8));
}

/**
 * rxp_have_set: set one answer of a HAVE reply
 * @bitmap: the reply's bitmap, zeroed before the first call
 * @i: the hash's index in the request
 */
static inline void rxp_have_set(uint8_t *bitmap, uint32_t i)
{
    bitmap[i / 8] |= 1u << (i % 8);
}

/**
 * rxp_have_bitmap_valid: check a HAVE reply's bitmap
 * @bitmap: rxp_have_reply_size(@count) bytes
 * @count: hashes asked about
 *
 * Returns: true when no bit past @count is set.
 */
bool rxp_have_bitmap_valid(const uint8_t *bitmap, uint32_t count);

/**
 * rxp_status_valid: check a GET reply's status byte
 * @status: the byte
 *
 * Returns: true for RXP_GOT, RXP_UNKNOWN and RXP_CHANGED.
 */
static inline bool rxp_status_valid(uint8_t status)
{
    return status <= RXP_CHANGED;
}

#define RXP_HELD_PAGES          1
#define RXP_HELD_DONE           2
#define RXP_HELD_MAX_LEN        512
#define RXP_HELD_HEADER_SIZE    13
#define RXP_HELD_MAX_BYTES      (RXP_HELD_MAX_LEN - RXP_HELD_HEADER_SIZE)

typedef struct RxpHeld {
    uint8_t kind;
    uint16_t block;
    uint64_t first_page;
    uint16_t bytes;
    const uint8_t *bitmap;      /* into the decoded buffer */
    uint64_t pages;             /* RXP_HELD_DONE */
} RxpHeld;

/**
 * rxp_held_encode: encode a return-path message of common-regions
 * @buf: where to, RXP_HELD_MAX_LEN bytes
 * @m: the message; for RXP_HELD_PAGES, @m->bytes bytes at @m->bitmap
 *
 * Returns: the message's length.
 */
size_t rxp_held_encode(uint8_t *buf, const RxpHeld *m);

/**
 * rxp_held_decode: check a return-path message of common-regions
 * @buf: the message, untrusted
 * @len: its bytes
 * @m: set to its fields; @m->bitmap points into @buf
 * @err: on failure, set to what is wrong
 *
 * Returns: true for a known kind with the exact length, an aligned
 * first page and a bitmap of 1 to RXP_HELD_MAX_BYTES bytes.
 */
bool rxp_held_decode(const uint8_t *buf, size_t len, RxpHeld *m,
                     const char **err);

#endif
