/*
 * Guest-published map of RAM pages backed by shared-disk blocks
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The disk-backed-pages capability sends a guest page that is a clean
 * copy of a block of a disk both hosts share as a reference: the disk
 * offset and a hash of the page.  The guest tells QEMU which pages those
 * are through a map in its own memory, at the guest-physical address of
 * the disk-backed-map parameter.  This unit parses and validates that
 * map, encodes and decodes the reference record of the stream, and
 * decides which pages qualify.  It does not depend on the rest of QEMU,
 * so that every malformed input can be unit tested.
 *
 * The layout (docs/devel/migration/disk-backed-pages.rst), all fields
 * little-endian:
 *
 * Header page, 4096 bytes at the map address (4096-aligned):
 *   0  u64 magic        DISK_MAP_MAGIC ("QDISKMAP")
 *   8  u32 version      1
 *  12  u32 nsegments    1..DISK_MAP_MAX_SEGMENTS
 *  16  u64 generation   even while the map is stable; the guest makes
 *                       it odd before changing the map and even again,
 *                       incremented, after
 *  24  u64 count        records in all segments, at most
 *                       DISK_MAP_MAX_RECORDS
 *  32  u32 page_size    4096
 *  36  u32 frame_size   4096: the disk offset of frame f is f * 4096
 *  40  24 bytes         reserved, zero
 *  64  segment table:   nsegments entries of 16 bytes:
 *                       u64 address (4096-aligned), u64 records
 * Records, 16 bytes each, in the segments in order:
 *   0  u64 page address | flags: the guest-physical address of the page
 *                       (4096-aligned) in the upper bits, flags in the
 *                       low 12: DISK_MAP_REC_MODIFIED, others reserved
 *   8  u64 frame        the disk frame the page is a copy of
 */

#ifndef MIGRATION_DISK_MAP_H
#define MIGRATION_DISK_MAP_H

#define DISK_MAP_MAGIC              0x50414d4b53494451ULL
#define DISK_MAP_VERSION            1
#define DISK_MAP_PAGE_SIZE          4096
#define DISK_MAP_HEADER_SIZE        64
#define DISK_MAP_SEGMENT_SIZE       16
#define DISK_MAP_MAX_SEGMENTS \
    ((DISK_MAP_PAGE_SIZE - DISK_MAP_HEADER_SIZE) / DISK_MAP_SEGMENT_SIZE)
#define DISK_MAP_RECORD_SIZE        16
#define DISK_MAP_MAX_RECORDS        (1ull << 24)
#define DISK_MAP_REC_MODIFIED       0x1ull
#define DISK_MAP_REC_FLAGS          0xfffull

/* The hash a reference carries: XXH3-128 of the page. */
#define DISK_REF_HASH_LEN           16
#define DISK_REF_RECORD_LEN         (8 + DISK_REF_HASH_LEN)

typedef struct DiskMapEnv {
    /* is [gpa, gpa + len) guest RAM? */
    bool (*in_ram)(uint64_t gpa, uint64_t len, void *opaque);
    void *opaque;
    uint64_t disk_size;         /* bytes */
} DiskMapEnv;

typedef struct DiskMapSegment {
    uint64_t gpa;
    uint64_t records;
} DiskMapSegment;

typedef struct DiskMapLayout {
    uint64_t map_gpa;
    uint64_t generation;
    uint64_t count;
    uint32_t nsegments;
    DiskMapSegment seg[DISK_MAP_MAX_SEGMENTS];
    /* the segments' indices by address, for disk_map_check_record() */
    uint8_t by_gpa[DISK_MAP_MAX_SEGMENTS];
} DiskMapLayout;

typedef struct DiskMapRecord {
    uint64_t gpa;
    uint64_t frame;
} DiskMapRecord;

typedef enum DiskMapRecState {
    DISK_MAP_REC_OK,
    DISK_MAP_REC_IS_MODIFIED,   /* valid, but the page is no clean copy */
    DISK_MAP_REC_BAD_FLAGS,     /* reserved flags set */
    DISK_MAP_REC_OUTSIDE_RAM,
    DISK_MAP_REC_OUTSIDE_DISK,
    DISK_MAP_REC_IN_MAP,        /* the page holds part of the map itself */
    DISK_MAP_REC__MAX,
} DiskMapRecState;

/**
 * disk_map_parse_header: parse and check a map's header page
 * @page: the header page, DISK_MAP_PAGE_SIZE bytes
 * @map_gpa: the guest-physical address it was read from
 * @env: what the guest's RAM and the disk are
 * @out: on success, filled with the map's layout
 * @err: on failure, set to why the map is refused
 *
 * Refused: a bad magic, version, size or reserved field, an odd
 * generation (the guest is changing the map), too many records, a
 * record count that does not match the segments, and segments that are
 * unaligned, outside RAM or overlap each other or the header page.
 *
 * Returns: true on success, false if the map is refused.
 */
bool disk_map_parse_header(const uint8_t *page, uint64_t map_gpa,
                           const DiskMapEnv *env, DiskMapLayout *out,
                           const char **err);

/**
 * disk_map_generation: the generation of a header page
 * @page: the header page
 *
 * To re-check after reading.
 *
 * Returns: the generation field of @page.
 */
uint64_t disk_map_generation(const uint8_t *page);

/**
 * disk_map_check_record: decode and check one record
 * @env: what the guest's RAM and the disk are
 * @map: the map's layout, from disk_map_parse_header()
 * @rec: the record, DISK_MAP_RECORD_SIZE bytes
 * @out: set to the decoded record
 *
 * Bad records are to be ignored.  Runs for every record with the BQL
 * held: O(log nsegments) plus one env->in_ram() call.
 *
 * Returns: DISK_MAP_REC_OK for a record of a clean copy, otherwise why
 * not.
 */
DiskMapRecState disk_map_check_record(const DiskMapEnv *env,
                                      const DiskMapLayout *map,
                                      const uint8_t *rec,
                                      DiskMapRecord *out);

/**
 * disk_map_drop_duplicates: sort records and drop duplicates
 * @recs: the records
 * @n: how many
 *
 * Sort @recs by page address and drop every record whose page appears
 * more than once (which frame is right cannot be known).
 *
 * Returns: the number of records kept, at the start of @recs.
 */
size_t disk_map_drop_duplicates(DiskMapRecord *recs, size_t n);

/**
 * disk_map_lookup: find the record of a page
 * @recs: the records, sorted by disk_map_drop_duplicates()
 * @n: how many
 * @gpa: the page's address
 *
 * Returns: the record of @gpa in @recs, or NULL if there is none.
 */
const DiskMapRecord *disk_map_lookup(const DiskMapRecord *recs, size_t n,
                                     uint64_t gpa);

/**
 * disk_ref_nack_valid: may the destination refuse this page?
 * @recs: the RAM block's records, sorted
 * @n: how many
 * @unsent: the block's map pages not sent yet (a bit a
 *   DISK_MAP_PAGE_SIZE page, as in QEMU's bitmaps)
 * @used_length: the block's size, in bytes
 * @offset: the page's offset in the block
 *
 * Source: may the destination refuse (DISK_REF_NACK) the page at
 * @offset?  Only a page of the map that went already: any other refusal
 * comes from a broken destination, and fails the migration.
 *
 * Returns: true if the refusal is valid.
 */
bool disk_ref_nack_valid(const DiskMapRecord *recs, size_t n,
                         const unsigned long *unsent, uint64_t used_length,
                         uint64_t offset);

/*
 * The learned map: QEMU's own record of which guest page holds a copy of
 * which disk frame, kept from the guest's I/O to disk-backed-node
 * (docs/devel/migration/disk-backed-pages.rst).  An entry is the frame
 * plus one; 0 means none, so that a zeroed table is empty.
 */
#define DISK_LEARN_FORGET           UINT64_MAX

static inline uint64_t disk_learn_entry(uint64_t frame)
{
    return frame == DISK_LEARN_FORGET ? 0 : frame + 1;
}

/**
 * DiskLearnFn: a page a completed request left equal to a disk frame
 * @opaque: the walk's @opaque
 * @host: the page's address, DISK_MAP_PAGE_SIZE-aligned
 * @frame: the frame it holds a copy of, or DISK_LEARN_FORGET: the read
 *   wrote only part of the page, which now matches no frame
 */
typedef void DiskLearnFn(void *opaque, uint8_t *host, uint64_t frame);

/**
 * disk_learn_walk: what a completed guest I/O request says of its pages
 * @iov: the request's buffers, host addresses of guest memory
 * @niov: how many
 * @skip: bytes of @iov before the request's data
 * @bytes: the request's length
 * @offset: its disk offset
 * @read: a read, which wrote the buffers; otherwise a write from them
 * @fn: called for each page learned or forgotten
 * @opaque: passed to @fn
 *
 * A page (DISK_MAP_PAGE_SIZE bytes at an aligned address) that lies
 * wholly in one buffer, at a frame-aligned disk offset, holds a copy of
 * that frame once the request has completed, whichever way the data
 * went.  A page that a read wrote only in part is forgotten; a page
 * that a write read only in part is left alone.  Pages are walked in
 * the order of the request's data.
 *
 * Returns: how many pages were learned.
 */
uint64_t disk_learn_walk(const struct iovec *iov, int niov, size_t skip,
                         uint64_t bytes, uint64_t offset, bool read,
                         DiskLearnFn *fn, void *opaque);

/**
 * disk_ref_hash: the hash a reference carries
 * @page: the page, DISK_MAP_PAGE_SIZE bytes
 * @hash: set to the hash, DISK_REF_HASH_LEN bytes
 *
 * XXH3-128 of @page in its canonical (big-endian) form.
 */
void disk_ref_hash(const void *page, uint8_t *hash);

/**
 * disk_ref_encode: encode the stream's reference record
 * @buf: where to, DISK_REF_RECORD_LEN bytes
 * @offset: the disk offset
 * @hash: the hash, DISK_REF_HASH_LEN bytes
 *
 * The record is the be64 disk offset, then the hash.
 */
void disk_ref_encode(uint8_t *buf, uint64_t offset, const uint8_t *hash);

/**
 * disk_ref_decode: decode the stream's reference record
 * @buf: the record, DISK_REF_RECORD_LEN bytes
 * @disk_size: the disk's size, in bytes
 * @offset: set to the disk offset
 * @hash: set to the hash, DISK_REF_HASH_LEN bytes
 *
 * Returns: true if the offset is frame-aligned and inside the disk.
 */
bool disk_ref_decode(const uint8_t *buf, uint64_t disk_size,
                     uint64_t *offset, uint8_t *hash);

typedef struct DiskRefPage {
    bool in_map;                /* a record names this page */
    bool modified;              /* its modified flag was set */
    bool dirtied;               /* written since the map was read */
    bool frame_written;         /* its disk frame written since then */
    bool last_stage;            /* the VM is stopped for switchover */
} DiskRefPage;

/**
 * disk_ref_qualifies: send this page as a reference?
 * @p: what is known of the page
 *
 * Returns: true to send the page as a reference; false: it goes in
 * full.
 */
bool disk_ref_qualifies(const DiskRefPage *p);

/*
 * The destination's refusal of a reference, on the return path
 * (MIG_RP_MSG_DISK_REF_NACK): the page's offset in its RAM block as a
 * big-endian u64, the length of the block's idstr (1 byte, 1-255) and
 * the idstr, without a NUL.
 */
#define DISK_REF_NACK_MAX_LEN       (8 + 1 + 255)

/**
 * disk_ref_nack_encode: encode a refusal
 * @buf: where to, DISK_REF_NACK_MAX_LEN bytes
 * @offset: the page's offset in its RAM block
 * @idstr: the block's idstr
 *
 * Returns: the length of the encoded refusal.
 */
size_t disk_ref_nack_encode(uint8_t *buf, uint64_t offset, const char *idstr);

/**
 * disk_ref_nack_decode: decode a refusal
 * @buf: the bytes from the return path
 * @len: how many
 * @offset: set to the page's offset in its RAM block
 * @idstr: set to the block's idstr (256 bytes, NUL-terminated)
 *
 * Returns: true on success, false for a length that does not match, an
 * empty idstr or one with a NUL in it.
 */
bool disk_ref_nack_decode(const uint8_t *buf, size_t len, uint64_t *offset,
                          char *idstr);

/*
 * Postcopy's table of references (MIG_CMD_DISK_REFS): before postcopy
 * starts, the source names the disk-backed pages it has not sent, so
 * that the destination can place them from the disk.  One command per
 * RAM block and up to DISK_REF_TABLE_MAX_ENTRIES pages: the length of
 * the block's idstr (1 byte, 1-255), the idstr without a NUL, then
 * entries of the page's offset in the block (be64) followed by its
 * reference record (disk_ref_encode()).
 */
#define DISK_REF_TABLE_ENTRY_LEN    (8 + DISK_REF_RECORD_LEN)
#define DISK_REF_TABLE_MAX_ENTRIES  1024
#define DISK_REF_TABLE_MAX_LEN      (1 + 255 + DISK_REF_TABLE_MAX_ENTRIES * \
                                     DISK_REF_TABLE_ENTRY_LEN)

/**
 * disk_ref_table_start: start a table command
 * @buf: where to, DISK_REF_TABLE_MAX_LEN bytes
 * @idstr: the RAM block's idstr
 *
 * Returns: the length of the command so far.
 */
size_t disk_ref_table_start(uint8_t *buf, const char *idstr);

/**
 * disk_ref_table_add: append an entry to a table command
 * @buf: the command
 * @len: its length so far; the entry goes at @buf + @len
 * @offset: the page's offset in its RAM block
 * @rec: its reference record (disk_ref_encode())
 *
 * Returns: the new length.
 */
size_t disk_ref_table_add(uint8_t *buf, size_t len, uint64_t offset,
                          const uint8_t *rec);

typedef struct DiskRefTable {
    char idstr[256];
    const uint8_t *entries;     /* into the command */
    size_t n;
} DiskRefTable;

/**
 * disk_ref_table_decode: decode a table command
 * @buf: the command
 * @len: its length
 * @t: set to the decoded command, whose entries point into @buf
 *
 * Returns: true on success, false for a length that does not match
 * whole entries, no entry or more than DISK_REF_TABLE_MAX_ENTRIES, an
 * empty idstr or one with a NUL in it.
 */
bool disk_ref_table_decode(const uint8_t *buf, size_t len, DiskRefTable *t);

/**
 * disk_ref_table_entry: an entry of a decoded table command
 * @t: the command
 * @i: the entry's index
 * @used_length: the RAM block's size, in bytes
 * @offset: set to the page's offset
 * @rec: set to its record (still to be checked with disk_ref_decode())
 *
 * Returns: true if entry @i exists and its offset is page-aligned and
 * inside a block of @used_length bytes.
 */
bool disk_ref_table_entry(const DiskRefTable *t, size_t i,
                          uint64_t used_length, uint64_t *offset,
                          const uint8_t **rec);

#endif
