/*
 * shared-file-spill: the spill file format, freshness, the writer's walk
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * With shared-file-spill the source also writes pages to a file on
 * storage both hosts reach, so that the destination can take them from
 * there: to go faster when storage has bandwidth to spare, and to
 * complete when the network connection breaks.  This unit holds what
 * must be exactly right and is independent of QEMU:
 *
 *  - the file format: a header page and checksummed records, scanned so
 *    that a truncated or corrupt file is detected and never loaded;
 *  - the freshness rule: every page the source sends, by either path,
 *    carries a sequence number from one counter, and the destination
 *    applies a page only if its number is higher than that of the copy
 *    it has, so it ends with the newest copy whichever path it came by;
 *  - the pages writer's walk over RAM, from the back (spill_back_claim()).
 *
 * File layout (little-endian):
 *
 *   header, SPILL_HEADER_SIZE bytes:
 *     0  u64 magic          SPILL_MAGIC ("QSPILL01")
 *     8  u32 version        1
 *    12  u32 page_size
 *    16  u8  uuid[16]       the migration's; the stream carries it too
 *    32  ...                reserved, zero
 *  4088  u64 check          XXH3-64 of bytes 0..4087
 *
 *   records from SPILL_HEADER_SIZE on, each 8-aligned:
 *     0  u32 magic          SPILL_REC_MAGIC ("SPR1")
 *     4  u16 type           SpillRecType
 *     6  u16 block          block number (BLOCK defines it, PAGE uses it)
 *     8  u64 seq            sequence number, increasing along the file
 *    16  u64 offset         PAGE: byte offset of the page in its block
 *    24  u32 len            payload bytes
 *    28  u32 check          low 32 bits of XXH3-64 of bytes 0..27 and
 *                           the payload
 *    32  payload, then zero padding to a multiple of 8
 *
 *   BLOCK payload: u64 block length, then the block's idstr (1-255
 *   bytes, no NUL).  PAGE payload: page_size bytes.  STATE (3) is
 *   reserved: no writer emits it and the scanner refuses it, so that no
 *   length beyond SPILL_MAX_STREAM is ever read before its checksum.
 *   STREAM payload: 1 to SPILL_MAX_STREAM bytes of the
 *   migration stream from byte offset on; the STREAM records of a file
 *   hold the stream from byte 0 on, without gaps.  END and ABORT: no
 *   payload; nothing may follow them.
 */

#ifndef MIGRATION_SPILL_FORMAT_H
#define MIGRATION_SPILL_FORMAT_H

#define SPILL_MAGIC             0x31304c4c49505351ULL
#define SPILL_VERSION           1
#define SPILL_HEADER_SIZE       4096
#define SPILL_UUID_LEN          16
#define SPILL_REC_MAGIC         0x31525053u
#define SPILL_REC_HEADER_SIZE   32
#define SPILL_MAX_BLOCKS        256
#define SPILL_MAX_STREAM        (4u << 20)

typedef enum SpillRecType {
    SPILL_REC_BLOCK = 1,
    SPILL_REC_PAGE = 2,
    SPILL_REC_STATE = 3,        /* reserved, refused */
    SPILL_REC_END = 4,
    /* bytes of the migration stream from byte @offset on */
    SPILL_REC_STREAM = 5,
    /* the source gave up: nothing of the file may be used */
    SPILL_REC_ABORT = 6,
} SpillRecType;

typedef struct SpillHeader {
    uint32_t page_size;
    uint8_t uuid[SPILL_UUID_LEN];
} SpillHeader;

/**
 * spill_header_encode: encode a spill file's header
 * @buf: where to, SPILL_HEADER_SIZE bytes
 * @h: the header's fields
 */
void spill_header_encode(uint8_t *buf, const SpillHeader *h);

/**
 * spill_header_decode: decode and check a spill file's header
 * @buf: the header, SPILL_HEADER_SIZE bytes
 * @h: set to the header's fields
 * @err: on failure, set to what is wrong
 *
 * Returns: true for a valid header, false otherwise.
 */
bool spill_header_decode(const uint8_t *buf, SpillHeader *h,
                         const char **err);

/**
 * spill_record_size: the size of a record
 * @len: its payload bytes
 *
 * Returns: the bytes a record with @len payload bytes takes, padding
 * included.
 */
static inline uint64_t spill_record_size(uint32_t len)
{
    return SPILL_REC_HEADER_SIZE + (((uint64_t)len + 7) & ~7ull);
}

/**
 * spill_record_encode: encode a record
 * @buf: where to, spill_record_size(@len) bytes
 * @type: the record's type
 * @block: its block number
 * @seq: its sequence number
 * @offset: its offset
 * @payload: its payload
 * @len: payload bytes
 *
 * @payload is copied once, and the checksum covers the copy: it may be
 * memory that changes meanwhile, or already @buf + SPILL_REC_HEADER_SIZE.
 */
void spill_record_encode(uint8_t *buf, SpillRecType type, uint16_t block,
                         uint64_t seq, uint64_t offset, const void *payload,
                         uint32_t len);

typedef struct SpillRecord {
    SpillRecType type;
    uint16_t block;
    uint64_t seq;
    uint64_t offset;
    uint32_t len;
    const uint8_t *payload;
} SpillRecord;

typedef struct SpillBlock {
    uint64_t length;
    char idstr[256];
} SpillBlock;

/*
 * Reading a spill file record by record.  The scanner checks every
 * record against what came before: known block numbers, page-aligned
 * offsets inside their block, increasing sequence numbers, nothing
 * after END.
 */
typedef struct SpillScan {
    SpillHeader hdr;
    uint64_t pos;               /* file offset of the next record */
    uint64_t last_seq;
    uint64_t stream_end;        /* stream bytes the STREAM records hold */
    bool ended;
    uint32_t nblocks;
    SpillBlock blocks[SPILL_MAX_BLOCKS];
} SpillScan;

typedef enum SpillScanResult {
    SPILL_SCAN_RECORD,          /* *rec is valid; pos moved past it */
    SPILL_SCAN_MORE,            /* need @want bytes from pos */
    SPILL_SCAN_END,             /* the END record was read */
    SPILL_SCAN_ABORT,           /* the ABORT record was read; stop */
    SPILL_SCAN_CORRUPT,         /* *err says why; stop */
} SpillScanResult;

/**
 * spill_scan_init: start scanning a spill file
 * @s: the scanner
 * @hdr: the file's header
 *
 * The scan starts at the first record, after the header.
 */
void spill_scan_init(SpillScan *s, const SpillHeader *hdr);

/**
 * spill_scan_next: scan the next record
 * @s: the scanner
 * @buf: the file from s->pos on
 * @avail: bytes in @buf
 * @rec: set to the record read
 * @want: for SPILL_SCAN_MORE, set to the bytes the record needs
 * @err: for SPILL_SCAN_CORRUPT, set to why
 *
 * Scan the record at s->pos.  At the end of a file that is complete,
 * SPILL_SCAN_MORE means the file is truncated.
 *
 * Returns: what was found.
 */
SpillScanResult spill_scan_next(SpillScan *s, const uint8_t *buf,
                                uint64_t avail, SpillRecord *rec,
                                uint64_t *want, const char **err);

/*
 * The position files one side writes beside the spill file, for the
 * other to read: one fixed record rewritten in place, magic, the
 * migration's uuid, then little-endian u64 values.
 *   spill-file.ack     SPILL_ACK_MAGIC: stream bytes read, bytes of the
 *                      spill file scanned to find them (destination)
 *   spill-file.loaded  SPILL_LOADED_MAGIC: bytes of the pages file loaded
 *                      (destination)
 *   spill-file.mfdN.end  SPILL_END_MAGIC: the bytes a multifd channel sent
 *                      over the network before the source closed it
 *                      (source)
 */
#define SPILL_ACK_MAGIC         "QSPILLAK"
#define SPILL_LOADED_MAGIC      "QSPILLLD"
#define SPILL_END_MAGIC         "QSPILLEN"
#define SPILL_POS_SIZE(n)       (8 + SPILL_UUID_LEN + 8 * (n))
#define SPILL_ACK_SIZE          SPILL_POS_SIZE(2)
#define SPILL_LOADED_SIZE       SPILL_POS_SIZE(1)

/**
 * spill_pos_encode: encode a position file's record
 * @buf: where to, SPILL_POS_SIZE(@n) bytes
 * @magic: the file's magic, 8 bytes
 * @uuid: the migration's uuid
 * @values: the values
 * @n: how many
 */
void spill_pos_encode(uint8_t *buf, const char *magic, const uint8_t *uuid,
                      const uint64_t *values, unsigned n);

/**
 * spill_pos_decode: decode a position file's record
 * @buf: the bytes read from the position file
 * @len: how many
 * @magic: the file's magic, 8 bytes
 * @uuid: this migration's uuid
 * @values: set to the values, zeros on failure
 * @n: how many
 *
 * Returns: true on success; false unless the bytes are
 * SPILL_POS_SIZE(@n) bytes with @magic and @uuid, this migration's.
 */
bool spill_pos_decode(const uint8_t *buf, size_t len, const char *magic,
                      const uint8_t *uuid, uint64_t *values, unsigned n);

/*
 * Shared storage may show a record before all of it: a hole reads as
 * zeros, a torn write as part of it, and a write may appear before one
 * that came earlier.  So a reader takes SPILL_SCAN_CORRUPT as final only
 * once the same place has stayed bad for SPILL_TORN_MS; every reader of a
 * spill file (stream, pages, the destination waiting for END) keeps this
 * one rule.
 */
#define SPILL_TORN_MS           (5 * 1000)

typedef struct SpillTorn {
    bool bad;                   /* the last scan was CORRUPT */
    int64_t bad_since;          /* ms: since when */
} SpillTorn;

/**
 * spill_torn_give_up: is a bad record final?
 * @t: the reader's state
 * @r: what the reader's scan gave
 * @now_ms: when, in ms
 *
 * Returns: true: give up, the file is corrupt for good; false: read
 * again (or go on, if @r was not CORRUPT).
 */
bool spill_torn_give_up(SpillTorn *t, SpillScanResult r, int64_t now_ms);

/*
 * Freshness: the sequence number of the copy of each page the
 * destination holds (0: none yet).  Sequence numbers start at 1.
 */
typedef struct SpillSeqTable {
    uint64_t npages;
    uint64_t *seq;
} SpillSeqTable;

/**
 * spill_seq_init: start a table with no copy of any page
 * @t: the table
 * @npages: the pages
 */
void spill_seq_init(SpillSeqTable *t, uint64_t npages);

/**
 * spill_seq_destroy: free what spill_seq_init() allocated
 * @t: the table
 */
void spill_seq_destroy(SpillSeqTable *t);

/**
 * spill_seq_take: a copy of a page arrived
 * @t: the table
 * @page: the page
 * @seq: the copy's sequence number
 *
 * Returns: true, having recorded it, when the copy is newer than the
 * copy held: the caller then loads it.  False for an older or repeated
 * copy, which must be dropped.
 */
bool spill_seq_take(SpillSeqTable *t, uint64_t page, uint64_t seq);

/*
 * The file's share of a pass over RAM.  The pages writer walks the dirty
 * pages from the end of the last block towards the start of the first,
 * while the network walks from the front; each takes a page by clearing
 * its dirty bit, so the two meet where their speeds make them meet and
 * no page is taken twice.  Zero pages are left to the network, which
 * sends them in a few bytes.  Once the walk has reached the front, the
 * round is over until the next bitmap sync makes pages dirty again.
 */
typedef struct SpillBackOps {
    int (*nblocks)(void *opaque);
    uint64_t (*npages)(void *opaque, int block);
    /* the last dirty page of @block below page @below, or @below */
    uint64_t (*last_dirty)(void *opaque, int block, uint64_t below);
    /*
     * a page the network sends for less, which the file leaves to it: a
     * zero page, or one that may go as a disk reference
     */
    bool (*leave)(void *opaque, int block, uint64_t page);
    /* clear the page's dirty bit; false when it was clean */
    bool (*take)(void *opaque, int block, uint64_t page);
} SpillBackOps;

typedef struct SpillBack {
    int block;                  /* the block walked, -1: a new round */
    uint64_t below;             /* its pages below this are still to see */
    bool round_over;
    uint64_t round_sync;        /* the sync count when it was over */
} SpillBack;

/**
 * spill_back_init: start a new walk
 * @b: the walk
 *
 * Also after the blocks changed.
 */
void spill_back_init(SpillBack *b);

/**
 * spill_back_claim: take pages from the back
 * @b: the walk
 * @ops: how to see and take the pages
 * @opaque: for @ops
 * @sync: the number of bitmap syncs whose dirty bits are merged so far
 * @max: the most pages to take
 * @scan_max: the most pages to look at
 * @blocks: set to the block numbers of the pages taken
 * @pages: set to the page numbers of the pages taken
 *
 * Returns: the number of pages taken.
 */
int spill_back_claim(SpillBack *b, const SpillBackOps *ops, void *opaque,
                     uint64_t sync, int max, int scan_max, int *blocks,
                     uint64_t *pages);

#endif
