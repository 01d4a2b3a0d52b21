/*
 * common-regions: the fingerprint of a guest's RAM
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * VMs of one workgroup (same OS, same applications, same data) hold
 * many identical regions of memory.  A fingerprint lists, for each
 * aligned region of a guest's RAM that is not all zeros, a hash of the
 * region and of each of its pages that is not zero, so that a tool can
 * tell how much of a guest another host already holds, and a migration
 * can send what it holds as references.  The pages of one guest may be
 * served to another, so the hash is SHA-256, computed by the caller
 * (QEMU's crypto layer inside QEMU); this unit holds the file format,
 * the walk over a block's memory and the scanner of untrusted files,
 * and does not depend on the rest of QEMU.
 *
 * File layout (docs/devel/migration/common-regions.rst), big-endian:
 *
 *   header, RFP_HEADER_SIZE bytes:
 *     0  u8[8] magic         "QEMURFP\0"
 *     8  u32 version         1
 *    12  u32 page_shift      RFP_MIN_PAGE_SHIFT..RFP_MAX_PAGE_SHIFT
 *    16  u32 region_shift    page_shift..page_shift + 6: a region has
 *                            at most 64 pages
 *    20  u32 nr_blocks       1..RFP_MAX_BLOCKS
 *    24  u64 reserved        zero
 *   nr_blocks blocks, each:
 *     u8 idlen, then idlen bytes of the RAM block's idstr (1..255
 *     bytes, no NUL)
 *     u64 used_length        a multiple of the page size, not 0, at
 *                            most RFP_MAX_BLOCK_LENGTH
 *     region records in increasing offset order, each:
 *       u64 offset           of the region in the block, aligned to the
 *                            region size, below used_length
 *       u64 mask             bit i set: page i of the region is not
 *                            zero; not 0, no bit past the region's end
 *                            or the block's
 *       u8[32] region hash   SHA-256 of the concatenated SHA-256 of
 *                            every page of the region inside the block,
 *                            zero pages included
 *       u8[32] page hash     for each bit set in mask, lowest first:
 *                            SHA-256 of the page
 *     u64 RFP_BLOCK_END      (all ones) where an offset would be
 *     u64 records            region records of the block
 *   trailer:
 *     u8[8] end magic        "QRFPEND\0"
 *     u64 regions            region records of the file
 *     u64 pages              page hashes of the file
 *
 * Regions that are all zeros are left out: a destination has zero pages
 * for free.
 */

#ifndef MIGRATION_REGION_FINGERPRINT_H
#define MIGRATION_REGION_FINGERPRINT_H

#define RFP_MAGIC               "QEMURFP"       /* and its NUL */
#define RFP_END_MAGIC           "QRFPEND"       /* and its NUL */
#define RFP_MAGIC_LEN           8
#define RFP_VERSION             1
#define RFP_HEADER_SIZE         32
#define RFP_TRAILER_SIZE        24
#define RFP_HASH_LEN            32
#define RFP_MIN_PAGE_SHIFT      12
#define RFP_MAX_PAGE_SHIFT      16
#define RFP_MAX_REGION_PAGES    64
#define RFP_MAX_BLOCKS          256
#define RFP_MAX_BLOCK_LENGTH    (1ull << 48)
#define RFP_BLOCK_END           UINT64_MAX

/**
 * RfpHashFn: computes SHA-256
 * @buf: the bytes
 * @len: their number
 * @out: set to the hash
 * @opaque: the caller's
 */
typedef void RfpHashFn(const void *buf, size_t len,
                       uint8_t out[RFP_HASH_LEN], void *opaque);

/**
 * RfpZeroFn: is a buffer all zeros?
 * @buf: the bytes
 * @len: their number
 *
 * Returns: true if every byte is zero.
 */
typedef bool RfpZeroFn(const void *buf, size_t len);

typedef struct RfpGeometry {
    uint32_t page_shift;
    uint32_t region_shift;
} RfpGeometry;

/**
 * rfp_geometry_valid: can a fingerprint use this geometry?
 * @g: page and region shifts
 *
 * Returns: true when the page size is 4 KiB to 64 KiB and a region
 * holds 1 to 64 pages.
 */
bool rfp_geometry_valid(const RfpGeometry *g);

/**
 * rfp_region_pages: pages of a region inside its block
 * @g: the geometry
 * @used_length: the block's length, a multiple of the page size
 * @offset: the region's offset, aligned and below @used_length
 *
 * Returns: the region's pages, fewer than a whole region's only for
 * the last region of a block whose length is not a multiple of the
 * region size.
 */
uint32_t rfp_region_pages(const RfpGeometry *g, uint64_t used_length,
                          uint64_t offset);

/**
 * rfp_region_hash: the hash of a region from its pages' hashes
 * @page_hashes: the hash of each page of the region, zero pages too
 * @npages: their number, 1..RFP_MAX_REGION_PAGES
 * @hash: the hash function
 * @opaque: passed to @hash
 * @out: set to the region's hash
 *
 * A receiver that has verified each page of a region therefore verifies
 * the region without hashing its bytes twice.
 */
void rfp_region_hash(const uint8_t (*page_hashes)[RFP_HASH_LEN],
                     uint32_t npages, RfpHashFn *hash, void *opaque,
                     uint8_t out[RFP_HASH_LEN]);

/*
 * Writing a fingerprint: rfp_writer_init(), then for each block
 * rfp_writer_block() (which walks the block's memory), then
 * rfp_writer_finish().  The file grows in @out.
 */
typedef struct RfpWriter {
    RfpGeometry geo;
    GByteArray *out;
    RfpHashFn *hash;
    RfpZeroFn *is_zero;
    void *opaque;
    uint32_t nr_blocks;
    uint32_t blocks_written;
    uint64_t regions;
    uint64_t pages;
    uint64_t zero_pages;
    uint8_t zero_page_hash[RFP_HASH_LEN];
} RfpWriter;

/**
 * rfp_writer_init: start a fingerprint
 * @w: the writer
 * @g: the geometry; rfp_geometry_valid() must accept it
 * @nr_blocks: the blocks that will be written, 1..RFP_MAX_BLOCKS
 * @hash: SHA-256
 * @is_zero: the zero test
 * @opaque: passed to @hash
 * @out: where the file goes; appended to
 */
void rfp_writer_init(RfpWriter *w, const RfpGeometry *g, uint32_t nr_blocks,
                     RfpHashFn *hash, RfpZeroFn *is_zero, void *opaque,
                     GByteArray *out);

/**
 * rfp_writer_block: fingerprint one RAM block
 * @w: the writer
 * @idstr: the block's name, 1..255 bytes
 * @mem: its memory, @used_length bytes; the guest may be writing it
 * @used_length: a multiple of the page size, 1..RFP_MAX_BLOCK_LENGTH
 *
 * A page the guest changes while it is read gets the hash of whatever
 * was read: a receiver verifies every page it takes, so such a hash
 * only matches nothing.
 */
void rfp_writer_block(RfpWriter *w, const char *idstr, const uint8_t *mem,
                      uint64_t used_length);

/**
 * rfp_writer_finish: end a fingerprint
 * @w: the writer, after exactly nr_blocks blocks
 */
void rfp_writer_finish(RfpWriter *w);

typedef struct RfpHeader {
    RfpGeometry geo;
    uint32_t nr_blocks;
} RfpHeader;

typedef struct RfpBlock {
    uint32_t index;
    char idstr[256];
    uint64_t used_length;
} RfpBlock;

typedef struct RfpRegion {
    uint64_t offset;
    uint64_t mask;
    uint32_t npages;                    /* pages of the region in the block */
    const uint8_t *hash;                /* RFP_HASH_LEN bytes */
    const uint8_t *page_hashes;         /* popcount(mask) * RFP_HASH_LEN */
} RfpRegion;

typedef struct RfpVisitor {
    /* Called for each block before its regions; false stops the scan. */
    bool (*block)(const RfpHeader *h, const RfpBlock *b, void *opaque);
    /* Called for each region record; false stops the scan. */
    bool (*region)(const RfpHeader *h, const RfpBlock *b,
                   const RfpRegion *r, void *opaque);
} RfpVisitor;

typedef struct RfpTotals {
    uint64_t regions;
    uint64_t pages;
} RfpTotals;

/**
 * rfp_scan: check a fingerprint and visit its records
 * @buf: the whole file, untrusted
 * @len: its bytes
 * @hdr: set to the header's fields
 * @v: the callbacks, or NULL to check only; either may be NULL
 * @opaque: passed to @v's callbacks
 * @totals: if not NULL, set to the trailer's counts
 * @err: on failure, set to what is wrong (a static string)
 *
 * Every field is checked against the rules of the layout above, block
 * names must differ, and the counts of each block and of the trailer
 * must match the records, which must end exactly at @len.  The
 * callbacks may see records of a file that then turns out to be
 * invalid: a caller that keeps what it saw must drop it on failure.
 *
 * Returns: true for a valid fingerprint, false when it is not valid or
 * a callback stopped the scan (then @err is "stopped").
 */
bool rfp_scan(const uint8_t *buf, size_t len, RfpHeader *hdr,
              const RfpVisitor *v, void *opaque, RfpTotals *totals,
              const char **err);

#endif
