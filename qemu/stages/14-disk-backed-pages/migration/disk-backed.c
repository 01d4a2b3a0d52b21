/*
 * disk-backed-pages: send clean copies of shared-disk blocks as references
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Source: at setup, read the map the guest published at disk-backed-map,
 * keep for each RAM block the pages it names (sorted, as DiskMapRecords
 * whose gpa field holds the page's offset in the block) and a bitmap of
 * the pages whose first send may still be a reference, and track the
 * writes to disk-backed-node with a dirty bitmap.  A reference is the
 * frame's disk offset and the XXH3-128 hash of the page as sent.
 *
 * Destination: read the frame through a read-only BlockBackend, and take
 * it only if it matches the hash.  Otherwise the page is pending: the
 * source hears of it over the return path (MIG_RP_MSG_DISK_REF_NACK) and
 * sends it again in full.  Before switchover the source stops sending
 * references and waits for a PONG; since the destination checks every
 * reference before it reads on, every refusal has reached the source by
 * then, and the last pass sends those pages in full.  A destination that
 * still has a pending page at the end of the stream fails the migration
 * instead of starting the guest.
 *
 * Postcopy: references go only in precopy.  Its start closes them as
 * the switchover does; a refused page is discarded on the destination
 * and comes through postcopy.
 */

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/rcu.h"
#include "qemu/stats64.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "block/thread-pool.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "block/block.h"
/* bs->file, ->options, ->filename: the image disk_backed_open_image() opens */
#include "block/block_int-common.h"
#include "block/dirty-bitmap.h"
#include "system/block-backend.h"
#include "system/address-spaces.h"
#include "system/memory.h"
#include "system/physmem.h"
#include "system/ramblock.h"
#include "system/system.h"
#include "exec/target_page.h"
#include "migration.h"
#include "migration-stats.h"
#include "options.h"
#include "qemu-file.h"
#include "ram.h"
#include "savevm.h"
#include "postcopy-ram.h"
#include "disk-backed.h"
#include "trace.h"

/*
 * The destination reads the disk in windows around the frames it is
 * asked for, and keeps the last ones: page cache pages of a file tend
 * to be sent near each other, and one read of 64 KiB costs about what
 * one of 4 KiB does.  When a miss follows the end of the last read, the
 * next read takes twice as many windows, up to DISK_BACKED_READAHEAD: a
 * file's blocks are mostly in order on the disk.  The windows are one
 * buffer, window i at i * DISK_BACKED_WINDOW, so that one read fills
 * neighbouring windows.
 */
#define DISK_BACKED_WINDOW              (64 * 1024)
#define DISK_BACKED_WINDOWS             256     /* 16 MiB */
#define DISK_BACKED_READAHEAD           16      /* 1 MiB */

typedef struct DiskBackedWindow {
    uint64_t base;              /* disk offset */
    uint64_t len;               /* 0: empty */
} DiskBackedWindow;

typedef struct DiskBackedBlock {
    struct rcu_head rcu;        /* freed after the return path's readers */
    DiskMapRecord *recs;        /* source: gpa = offset in the block */
    size_t nrecs;
    unsigned long *cand;        /* source: may still go as a reference */
    unsigned long *sent;        /* source, learned map: sent already */
    unsigned long *lref;        /* source: went as a learned reference */
    unsigned long *nacked;      /* source: refused, to mark dirty (atomic) */
    unsigned long *pending;     /* destination, atomic: not yet in full */
} DiskBackedBlock;

/*
 * The learned map of a RAM block: the entry of page i is
 * disk_learn_entry() of the frame it holds a copy of, 0 for none.  8
 * bytes a page of the block, allocated at the first request that
 * fills one of its pages while the capability is on, freed when it
 * goes off (or with the block).
 */
typedef struct DiskLearnTable {
    struct rcu_head rcu;
    uint64_t npages;
    uint64_t entry[];           /* atomic */
} DiskLearnTable;

typedef struct DiskLearnNode {
    struct rcu_head rcu;
    char name[];
} DiskLearnNode;

/*
 * Destination, with multifd: references checked by a pool of threads,
 * DISK_BACKED_BATCH at a time, while the main thread reads on.
 */
#define DISK_BACKED_BATCH       64

typedef struct DiskBackedBatch {
    size_t n;
    struct {
        RAMBlock *rb;
        ram_addr_t addr;
        void *host;
        uint64_t disk;
        uint8_t hash[DISK_REF_HASH_LEN];
    } ref[DISK_BACKED_BATCH];
} DiskBackedBatch;

static struct {
    BlockDriverState *bs;       /* source */
    BdrvDirtyBitmap *written;   /* source: disk blocks written since setup */
    BlockBackend *blk;          /* destination */
    DiskBackedWindow *win;      /* destination: DISK_BACKED_WINDOWS */
    uint8_t *win_buf;           /* destination: their data, or NULL */
    uint64_t next_base;         /* destination: the end of the last read */
    unsigned ahead;             /* destination: windows in the last read */
    uint64_t disk_size;
    bool closed;                /* source: no more references */
    bool pong;                  /* source: the destination checked all */
    uint64_t nack_count;        /* source, atomic: bits set in nacked */

    QemuMutex lock;             /* protects map_status */

    size_t pending;             /* destination, atomic: pending pages */

    char *map_status;
    Stat64 map_records;
    Stat64 map_ignored;
    Stat64 map_modified;
    Stat64 pages_referenced;
    Stat64 bytes_saved;
    Stat64 references_refused;
    Stat64 disk_bytes_read;

    int fd;                     /* destination: the disk's image, or -1 */

    ThreadPool *pool;           /* destination, multifd: checks references */
    DiskBackedBatch *batch;     /* main thread: the next batch for @pool */
    bool nack_failed;           /* atomic: a refusal could not be sent */

    /*
     * The learned map.  The observer of the guest's requests runs in
     * their AioContexts under the RCU read lock; @learn_lock orders the
     * allocation of a table against the stop.
     */
    DiskLearnNode *learn_node;  /* RCU: learning from this node, or NULL */
    QemuMutex learn_lock;
    Notifier learn_machine_done;
    Stat64 learned;             /* entries set ... */
    Stat64 forgotten;           /* ... and cleared */
    Stat64 learned_references;
    Stat64 learned_mismatches;
    int learn_fd;               /* source: the image, to compare pages */

    /*
     * Source, migration thread: the guest's map, followed while the
     * migration runs (disk_backed_follow_map()).
     */
    uint64_t map_gpa;           /* 0: none */
    uint64_t map_gen;           /* the generation last read whole */
    int64_t map_polled;         /* when its header was last read, ms */
    DiskMapLayout *live;        /* a re-read under way, or NULL */
    uint64_t live_next;         /* its next record */
    Stat64 map_rereads;
} disk_backed_state = {
    .fd = -1,
    .learn_fd = -1,
};

static int disk_backed_open_image(BlockDriverState *bs);

static void disk_backed_learn_machine_done(Notifier *n, void *data)
{
    /* the capability and the node may come from -global */
    disk_backed_learn_update();
}

static void disk_backed_init(void)
{
    qemu_mutex_init(&disk_backed_state.lock);
    qemu_mutex_init(&disk_backed_state.learn_lock);
    disk_backed_state.learn_machine_done.notify =
        disk_backed_learn_machine_done;
    qemu_add_machine_init_done_notifier(&disk_backed_state.learn_machine_done);
}

migration_init(disk_backed_init);

/* Takes ownership of @status */
static void disk_backed_set_status(char *status)
{
    WITH_QEMU_LOCK_GUARD(&disk_backed_state.lock) {
        g_free(disk_backed_state.map_status);
        disk_backed_state.map_status = status;
    }
}

static void disk_backed_reset_stats(const char *status)
{
    disk_backed_set_status(g_strdup(status));
    stat64_set(&disk_backed_state.map_records, 0);
    stat64_set(&disk_backed_state.map_ignored, 0);
    stat64_set(&disk_backed_state.map_modified, 0);
    stat64_set(&disk_backed_state.pages_referenced, 0);
    stat64_set(&disk_backed_state.bytes_saved, 0);
    stat64_set(&disk_backed_state.references_refused, 0);
    stat64_set(&disk_backed_state.disk_bytes_read, 0);
    stat64_set(&disk_backed_state.learned_references, 0);
    stat64_set(&disk_backed_state.learned_mismatches, 0);
    stat64_set(&disk_backed_state.map_rereads, 0);
}

static BlockDriverState *disk_backed_find_node(Error **errp)
{
    const char *name = migrate_disk_backed_node();
    BlockDriverState *bs;
    const char *format;

    if (!name || !*name) {
        error_setg(errp, "Capability 'disk-backed-pages' needs parameter "
                   "'disk-backed-node'");
        return NULL;
    }
    bs = bdrv_find_node(name);
    if (!bs) {
        error_setg(errp, "Parameter 'disk-backed-node': no block node "
                   "named '%s'", name);
        return NULL;
    }
    /*
     * The destination reads the node while it is inactive: only a raw
     * node has no metadata that could be stale then.
     */
    format = bdrv_get_format_name(bs);
    if (!format || (strcmp(format, "raw") && strcmp(format, "file") &&
                    strcmp(format, "host_device"))) {
        error_setg(errp, "Parameter 'disk-backed-node': node '%s' has "
                   "format '%s'; only raw nodes are supported", name,
                   format ?: "none");
        return NULL;
    }
    return bs;
}

bool disk_backed_check_node(Error **errp)
{
    if (qemu_target_page_size() != DISK_MAP_PAGE_SIZE) {
        error_setg(errp, "Capability 'disk-backed-pages' needs %d-byte "
                   "target pages", DISK_MAP_PAGE_SIZE);
        return false;
    }
    return disk_backed_find_node(errp) != NULL;
}

static DiskBackedBlock *disk_backed_block(RAMBlock *rb)
{
    if (!rb->disk_backed) {
        rb->disk_backed = g_new0(DiskBackedBlock, 1);
    }
    return rb->disk_backed;
}

static void disk_backed_block_free(DiskBackedBlock *b)
{
    g_free(b->recs);
    g_free(b->cand);
    g_free(b->sent);
    g_free(b->lref);
    g_free(b->nacked);
    g_free(b->pending);
    g_free(b);
}

static void disk_backed_free_blocks(void)
{
    RAMBlock *rb;

    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH(rb) {
        DiskBackedBlock *b = rb->disk_backed;

        if (b) {
            /*
             * The source's cleanup comes before its return-path thread
             * is joined: a NACK read meanwhile may be looking at @b
             * (disk_backed_ref_nacked()), so it goes after a grace
             * period.
             */
            qatomic_rcu_set(&rb->disk_backed, NULL);
            call_rcu(b, disk_backed_block_free, rcu);
        }
    }
}

/*
 * The learned map: which guest pages hold copies of which frames of
 * disk-backed-node, learned from the guest's own completed requests
 * (docs/devel/migration/disk-backed-pages.rst).
 */

/* The table of @rb, allocated unless learning has stopped meanwhile */
static DiskLearnTable *disk_backed_learn_table(RAMBlock *rb)
{
    DiskLearnTable *t;
    uint64_t npages = rb->max_length >> TARGET_PAGE_BITS;

    QEMU_LOCK_GUARD(&disk_backed_state.learn_lock);
    t = rb->disk_learned;
    if (t || !disk_backed_state.learn_node) {
        return t;
    }
    t = g_try_malloc0(sizeof(*t) + npages * sizeof(t->entry[0]));
    if (!t) {
        return NULL;
    }
    t->npages = npages;
    trace_disk_backed_learn_table(rb->idstr, npages);
    qatomic_rcu_set(&rb->disk_learned, t);
    return t;
}

/*
 * Learn that page @offset of @rb holds a copy of @frame, or forget it
 * (DISK_LEARN_FORGET).  Under the RCU read lock.
 */
static void disk_backed_learn_set(RAMBlock *rb, ram_addr_t offset,
                                  uint64_t frame)
{
    DiskLearnTable *t;
    uint64_t page, old;

    t = qatomic_rcu_read(&rb->disk_learned);
    if (!t) {
        if (frame == DISK_LEARN_FORGET) {
            return;
        }
        t = disk_backed_learn_table(rb);
        if (!t) {
            return;
        }
    }
    page = offset >> TARGET_PAGE_BITS;
    if (page >= t->npages ||
        (frame == DISK_LEARN_FORGET && !qatomic_read(&t->entry[page]))) {
        return;
    }
    old = qatomic_xchg(&t->entry[page], disk_learn_entry(frame));
    if (!old && frame != DISK_LEARN_FORGET) {
        stat64_add(&disk_backed_state.learned, 1);
    } else if (old && frame == DISK_LEARN_FORGET) {
        stat64_add(&disk_backed_state.forgotten, 1);
    }
}

/* DiskLearnFn, in the request's AioContext under the RCU read lock */
static void disk_backed_learn_page(void *opaque, uint8_t *host,
                                   uint64_t frame)
{
    ram_addr_t offset;
    RAMBlock *rb = qemu_ram_block_from_host(host, false, &offset);

    if (!rb || !qemu_ram_is_migratable(rb)) {
        return;                 /* a bounce buffer, or not migrated */
    }
    disk_backed_learn_set(rb, offset, frame);
}

/*
 * Destination: page @addr of @rb is now a verified copy of the frame at
 * disk offset @disk, or (DISK_LEARN_FORGET) arrived in full.  So the
 * next migration away from here finds it in the learned map, if
 * learning is on.
 */
static void disk_backed_learn_placed(RAMBlock *rb, ram_addr_t addr,
                                     uint64_t disk)
{
    if (!qatomic_read(&disk_backed_state.learn_node)) {
        return;
    }
    RCU_READ_LOCK_GUARD();
    disk_backed_learn_set(rb, addr, disk == DISK_LEARN_FORGET ?
                          DISK_LEARN_FORGET : disk / DISK_MAP_PAGE_SIZE);
}

/* BlockBackendIOObserver */
static void disk_backed_learn_io(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 size_t qiov_offset, bool read)
{
    DiskLearnNode *n = qatomic_rcu_read(&disk_backed_state.learn_node);

    /* by name: a reference held on the node would keep it from deletion */
    if (!n || strcmp(bdrv_get_node_name(bs), n->name)) {
        return;
    }
    disk_learn_walk(qiov->iov, qiov->niov, qiov_offset, bytes, offset, read,
                    disk_backed_learn_page, NULL);
}

static void disk_backed_learn_stop(void)
{
    DiskLearnNode *n;
    RAMBlock *rb;

    blk_set_io_observer(NULL);
    QEMU_LOCK_GUARD(&disk_backed_state.learn_lock);
    n = disk_backed_state.learn_node;
    if (!n) {
        return;
    }
    trace_disk_backed_learn_stop();
    qatomic_rcu_set(&disk_backed_state.learn_node, NULL);
    g_free_rcu(n, rcu);
    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH(rb) {
        DiskLearnTable *t = rb->disk_learned;

        if (t) {
            qatomic_rcu_set(&rb->disk_learned, NULL);
            g_free_rcu(t, rcu);
        }
    }
    stat64_set(&disk_backed_state.learned, 0);
    stat64_set(&disk_backed_state.forgotten, 0);
}

void disk_backed_learn_update(void)
{
    DiskLearnNode *n = disk_backed_state.learn_node;
    const char *name = NULL;
    BlockDriverState *bs;

    GLOBAL_STATE_CODE();
    if (migration_is_running()) {
        return;
    }
    if (migrate_disk_backed_pages() &&
        qemu_target_page_size() == DISK_MAP_PAGE_SIZE) {
        bs = disk_backed_find_node(NULL);
        name = bs ? bdrv_get_node_name(bs) : NULL;
    }
    if (n && name && !strcmp(n->name, name)) {
        return;
    }
    disk_backed_learn_stop();
    if (!name) {
        return;
    }
    n = g_malloc0(sizeof(*n) + strlen(name) + 1);
    strcpy(n->name, name);
    trace_disk_backed_learn(name);
    WITH_QEMU_LOCK_GUARD(&disk_backed_state.learn_lock) {
        qatomic_rcu_set(&disk_backed_state.learn_node, n);
    }
    blk_set_io_observer(disk_backed_learn_io);
}

/* Source: is the learned map kept for the node this migration uses? */
static bool disk_backed_learning(BlockDriverState *bs)
{
    DiskLearnNode *n = disk_backed_state.learn_node;

    return n && !strcmp(n->name, bdrv_get_node_name(bs));
}

/* Source: the learned map's bitmaps, for every migrated RAM block */
static void disk_backed_learn_setup(BlockDriverState *bs)
{
    RAMBlock *rb;

    if (!disk_backed_learning(bs)) {
        return;
    }
    disk_backed_state.learn_fd = disk_backed_open_image(bs);
    if (disk_backed_state.learn_fd < 0) {
        /* no page of the learned map can be compared, none goes */
        trace_disk_backed_open_image(bdrv_get_node_name(bs), errno);
        return;
    }
    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH_MIGRATABLE(rb) {
        DiskBackedBlock *b = disk_backed_block(rb);

        b->sent = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        b->lref = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        if (!b->nacked) {
            b->nacked = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        }
    }
}

/* Source: was @frame written since setup (or is it beyond the disk)? */
static bool disk_backed_frame_written(uint64_t frame)
{
    uint64_t offset = frame * DISK_MAP_PAGE_SIZE;

    /* a disk that shrank since setup: as if written */
    return offset >= bdrv_dirty_bitmap_size(disk_backed_state.written) ||
           bdrv_dirty_bitmap_get(disk_backed_state.written, offset);
}

/*
 * Source: the frame the learned map has for page @page of @rb, if the
 * page may go as a reference of it; UINT64_MAX if not.
 */
static uint64_t disk_backed_learned_frame(RAMBlock *rb, unsigned long page)
{
    DiskLearnTable *t = qatomic_rcu_read(&rb->disk_learned);
    uint64_t e;

    if (!t || page >= t->npages) {
        return UINT64_MAX;
    }
    e = qatomic_read(&t->entry[page]);
    return e ? e - 1 : UINT64_MAX;
}

/*
 * Source, a page's first send: may it go as a reference of the frame
 * the learned map has for it?  Only when the page still matches the
 * frame as read from the disk now: the learned map is a hint, since
 * the guest may have written the page (or the disk) since, unseen
 * before the migration's dirty log started.
 */
static bool disk_backed_save_learned(RAMBlock *rb, DiskBackedBlock *b,
                                     ram_addr_t offset, bool last_stage,
                                     uint8_t *rec)
{
    unsigned long page = offset >> TARGET_PAGE_BITS;
    uint64_t frame = disk_backed_learned_frame(rb, page);
    uint8_t hash[DISK_REF_HASH_LEN];
    void *host = rb->host + offset;
    DiskRefPage p = { .in_map = true };
    QEMU_UNINITIALIZED uint8_t buf[DISK_MAP_PAGE_SIZE];
    ssize_t ret;

    if (frame == UINT64_MAX || disk_backed_state.learn_fd < 0) {
        return false;
    }
    p.last_stage = last_stage || disk_backed_state.closed;
    p.frame_written = disk_backed_frame_written(frame);
    if (!disk_ref_qualifies(&p) || buffer_is_zero(host, DISK_MAP_PAGE_SIZE)) {
        return false;
    }
    ret = RETRY_ON_EINTR(pread(disk_backed_state.learn_fd, buf,
                               DISK_MAP_PAGE_SIZE,
                               frame * DISK_MAP_PAGE_SIZE));
    if (ret != DISK_MAP_PAGE_SIZE || memcmp(buf, host, DISK_MAP_PAGE_SIZE)) {
        trace_disk_backed_learned_mismatch(rb->idstr, offset, frame,
                                           ret < 0 ? -errno : ret);
        stat64_add(&disk_backed_state.learned_mismatches, 1);
        return false;
    }
    /* the destination checks the page as it is now, as for the map */
    disk_ref_hash(host, hash);
    disk_ref_encode(rec, frame * DISK_MAP_PAGE_SIZE, hash);
    set_bit_atomic(page, b->lref);
    stat64_add(&disk_backed_state.learned_references, 1);
    return true;
}

/* Source: the map */

/* Atomically set (@set) or clear bit @nr of @map; was it flipped? */
static bool disk_backed_flip_bit_atomic(unsigned long *map, unsigned long nr,
                                        bool set)
{
    unsigned long mask = BIT_MASK(nr);
    unsigned long *p = map + BIT_WORD(nr);

    if (set) {
        return !(qatomic_fetch_or(p, mask) & mask);
    }
    return qatomic_fetch_and(p, ~mask) & mask;
}

/*
 * The last guest-physical range translated while the map is read, with
 * the BQL held (so the memory map does not change under it): the
 * records of a map mostly fall in one RAM section, and translating each
 * of up to DISK_MAP_MAX_RECORDS pages anew would hold the BQL for
 * seconds (docs/devel/migration/disk-backed-pages.rst).
 */
typedef struct DiskBackedXlat {
    uint64_t start, end;        /* [start, end) translates alike; 0, 0 */
    bool ram;                   /* guest RAM (DiskMapEnv.in_ram) */
    RAMBlock *rb;               /* migrated RAM, writable: its pages */
    ram_addr_t offset;          /* of @start in @rb */
} DiskBackedXlat;

/* @c, translated anew unless it already covers @gpa */
static const DiskBackedXlat *disk_backed_xlat(DiskBackedXlat *c,
                                              uint64_t gpa)
{
    hwaddr xlat, l = gpa ? -gpa : UINT64_MAX;
    ram_addr_t offset = 0;
    MemoryRegion *mr;
    bool ram;

    if (gpa >= c->start && gpa < c->end) {
        return c;
    }
    RCU_READ_LOCK_GUARD();
    mr = address_space_translate(&address_space_memory, gpa, &xlat, &l,
                                 false, MEMTXATTRS_UNSPECIFIED);
    ram = memory_region_is_ram(mr) && !memory_region_is_ram_device(mr) && l;
    /*
     * A RAM section ends where @l says; not RAM, @l may reach the end
     * of the address space (the unassigned section), past RAM further
     * up: that answer is kept for one page only.
     */
    *c = (DiskBackedXlat) {
        .start = gpa,
        .end = gpa + (ram ? l : TARGET_PAGE_SIZE),
        .ram = ram,
    };
    if (c->end <= c->start) {
        c->end = UINT64_MAX;
    }
    /*
     * Not read-only RAM (the BIOS, option ROMs): the guest cannot have
     * read a disk block into it, and the destination must not write it.
     */
    if (!c->ram || memory_region_is_rom(mr) || mr->rom_device) {
        return c;
    }
    c->rb = qemu_ram_block_from_host((uint8_t *)memory_region_get_ram_ptr(mr)
                                     + xlat, false, &offset);
    if (c->rb && (!qemu_ram_is_migratable(c->rb) || !c->rb->bmap)) {
        c->rb = NULL;
    }
    c->offset = offset;
    return c;
}

/* DiskMapEnv.in_ram (@opaque: a DiskBackedXlat): is [gpa, +len) RAM? */
static bool disk_backed_in_ram(uint64_t gpa, uint64_t len, void *opaque)
{
    if (gpa + len < gpa) {
        return false;
    }
    while (len) {
        const DiskBackedXlat *c = disk_backed_xlat(opaque, gpa);
        uint64_t l = MIN(c->end - gpa, len);

        if (!c->ram) {
            return false;
        }
        gpa += l;
        len -= l;
    }
    return true;
}

static bool disk_backed_read_gpa(uint64_t gpa, void *buf, uint64_t len)
{
    return address_space_read(&address_space_memory, gpa,
                              MEMTXATTRS_UNSPECIFIED, buf, len) == MEMTX_OK;
}

/* The RAM block and offset of guest page @gpa, if it is migrated RAM */
static RAMBlock *disk_backed_gpa_to_block(DiskBackedXlat *xlat, uint64_t gpa,
                                          ram_addr_t *offset)
{
    const DiskBackedXlat *c = disk_backed_xlat(xlat, gpa);

    if (!c->rb || c->end - gpa < DISK_MAP_PAGE_SIZE) {
        return NULL;
    }
    *offset = c->offset + (gpa - c->start);
    if (!QEMU_IS_ALIGNED(*offset, DISK_MAP_PAGE_SIZE) ||
        *offset + DISK_MAP_PAGE_SIZE > c->rb->used_length) {
        return NULL;
    }
    return c->rb;
}

/*
 * Read the map and record its valid records per RAM block.  Returns the
 * status for query-migrate: "ok", or why the map is not used.
 */
static char *disk_backed_read_map(uint64_t map_gpa)
{
    /* the translation of the last RAM section, kept while the map is read */
    DiskBackedXlat xlat = { 0 };
    DiskMapEnv env = {
        .in_ram = disk_backed_in_ram,
        .opaque = &xlat,
        .disk_size = disk_backed_state.disk_size,
    };
    g_autofree uint8_t *page = g_malloc(DISK_MAP_PAGE_SIZE);
    g_autofree uint8_t *recs = NULL;
    g_autofree DiskMapLayout *map = g_new0(DiskMapLayout, 1);
    uint64_t ignored = 0, modified = 0, valid = 0;
    const char *err;
    int64_t start = g_get_monotonic_time();
    RAMBlock *rb;
    int tries;

    for (tries = 0; tries < 3; tries++) {
        uint64_t done = 0;

        if (!disk_backed_read_gpa(map_gpa, page, DISK_MAP_PAGE_SIZE)) {
            return g_strdup("refused: map address not readable");
        }
        if (!disk_map_parse_header(page, map_gpa, &env, map, &err)) {
            if (disk_map_generation(page) & 1) {
                continue;       /* the guest is changing it: read again */
            }
            return g_strdup_printf("refused: %s", err);
        }
        if (map->count > ram_bytes_total() / DISK_MAP_PAGE_SIZE) {
            /* bounds what a guest can make QEMU read and allocate */
            return g_strdup_printf("refused: %" PRIu64 " records for %"
                                   PRIu64 " pages of RAM", map->count,
                                   ram_bytes_total() / DISK_MAP_PAGE_SIZE);
        }
        g_free(recs);
        recs = g_try_malloc(map->count * DISK_MAP_RECORD_SIZE);
        if (!recs && map->count) {
            return g_strdup("refused: no memory for the map");
        }
        for (uint32_t i = 0; i < map->nsegments; i++) {
            uint64_t len = map->seg[i].records * DISK_MAP_RECORD_SIZE;

            if (!disk_backed_read_gpa(map->seg[i].gpa, recs + done, len)) {
                return g_strdup("refused: segment not readable");
            }
            done += len;
        }
        if (!disk_backed_read_gpa(map_gpa, page, DISK_MAP_PAGE_SIZE)) {
            return g_strdup("refused: map address not readable");
        }
        if (disk_map_generation(page) == map->generation) {
            break;
        }
    }
    if (tries == 3) {
        return g_strdup("refused: the map kept changing while read");
    }

    /* Sort the records into their RAM blocks */
    for (uint64_t i = 0; i < map->count; i++) {
        DiskMapRecord r;
        DiskBackedBlock *b;
        ram_addr_t offset;

        switch (disk_map_check_record(&env, map,
                                      recs + i * DISK_MAP_RECORD_SIZE, &r)) {
        case DISK_MAP_REC_OK:
            break;
        case DISK_MAP_REC_IS_MODIFIED:
            modified++;
            continue;
        default:
            ignored++;
            continue;
        }
        rb = disk_backed_gpa_to_block(&xlat, r.gpa, &offset);
        if (!rb) {
            ignored++;
            continue;
        }
        b = disk_backed_block(rb);
        if (!(b->nrecs & (b->nrecs + 1))) {
            /* at 0, 1, 3, 7, ... records: double */
            DiskMapRecord *more = g_try_renew(DiskMapRecord, b->recs,
                                              2 * b->nrecs + 2);

            if (!more) {
                return g_strdup("refused: no memory for the map");
            }
            b->recs = more;
        }
        b->recs[b->nrecs].gpa = offset;
        b->recs[b->nrecs].frame = r.frame;
        b->nrecs++;
    }

    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH_MIGRATABLE(rb) {
        DiskBackedBlock *b = rb->disk_backed;
        size_t kept;

        if (!b || !b->nrecs) {
            continue;
        }
        /* a page named twice, maybe through aliases: which frame is it? */
        kept = disk_map_drop_duplicates(b->recs, b->nrecs);
        ignored += b->nrecs - kept;
        b->nrecs = kept;
        b->cand = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        b->nacked = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        for (size_t i = 0; i < kept; i++) {
            set_bit(b->recs[i].gpa >> TARGET_PAGE_BITS, b->cand);
        }
        valid += kept;
    }
    stat64_set(&disk_backed_state.map_records, valid);
    stat64_set(&disk_backed_state.map_ignored, ignored);
    stat64_set(&disk_backed_state.map_modified, modified);
    trace_disk_backed_map(map_gpa, map->count, valid, ignored, modified,
                          g_get_monotonic_time() - start);
    disk_backed_state.map_gen = map->generation;
    return g_strdup("ok");
}

/*
 * Source: the guest's map, followed.  The migration thread reads the
 * header again every DISK_BACKED_MAP_POLL_MS; when the generation is
 * even and not the one last read whole, it reads the records again,
 * DISK_BACKED_MAP_CHUNK at a time (one chunk a call, without the BQL),
 * into the learned map: a valid record sets its page's entry, a record
 * marked modified forgets it, and either takes the page from what the
 * map read at setup names.  So pages the guest caches, and flags it
 * sets, after setup count, as candidates the source compares with
 * their frames like every learned page.  A map that changes while it
 * is read is read again at the next poll; what was taken meanwhile is
 * only a candidate.
 */
#define DISK_BACKED_MAP_POLL_MS 200
#define DISK_BACKED_MAP_CHUNK   65536   /* records, 1 MiB */

/* Take @n records at @recs of the live map into the learned map */
static void disk_backed_follow_records(DiskMapEnv *env, const uint8_t *recs,
                                       uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        DiskMapRecState st;
        DiskMapRecord r;
        DiskBackedBlock *b;
        ram_addr_t offset;
        RAMBlock *rb;

        st = disk_map_check_record(env, disk_backed_state.live,
                                   recs + i * DISK_MAP_RECORD_SIZE, &r);
        if (st != DISK_MAP_REC_OK && st != DISK_MAP_REC_IS_MODIFIED) {
            continue;
        }
        rb = disk_backed_gpa_to_block(env->opaque, r.gpa, &offset);
        b = rb ? rb->disk_backed : NULL;
        if (!b || !b->sent) {
            continue;
        }
        if (b->cand && test_bit(offset >> TARGET_PAGE_BITS, b->cand)) {
            const DiskMapRecord *old = disk_map_lookup(b->recs, b->nrecs,
                                                       offset);

            if (st == DISK_MAP_REC_OK && old && old->frame == r.frame) {
                continue;       /* as read at setup: the guest's still */
            }
            /* the newer record wins over the one read at setup */
            clear_bit(offset >> TARGET_PAGE_BITS, b->cand);
        }
        disk_backed_learn_set(rb, offset, st == DISK_MAP_REC_OK ?
                              r.frame : DISK_LEARN_FORGET);
    }
}

void disk_backed_follow_map(void)
{
    DiskBackedXlat xlat = { 0 };
    DiskMapEnv env = {
        .in_ram = disk_backed_in_ram,
        .opaque = &xlat,
        .disk_size = disk_backed_state.disk_size,
    };
    DiskMapLayout *map = disk_backed_state.live;
    QEMU_UNINITIALIZED uint8_t hdr[DISK_MAP_PAGE_SIZE];
    g_autofree uint8_t *buf = NULL;
    uint64_t gpa = disk_backed_state.map_gpa, left, base = 0;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    const char *err;

    if (!gpa || disk_backed_state.learn_fd < 0 || disk_backed_state.closed) {
        return;
    }
    if (!map && now - disk_backed_state.map_polled < DISK_BACKED_MAP_POLL_MS) {
        return;
    }
    RCU_READ_LOCK_GUARD();
    if (!map) {
        disk_backed_state.map_polled = now;
        /* RAM only: no device is read without the BQL */
        if (!disk_backed_in_ram(gpa, DISK_MAP_PAGE_SIZE, &xlat) ||
            !disk_backed_read_gpa(gpa, hdr, DISK_MAP_PAGE_SIZE) ||
            disk_map_generation(hdr) == disk_backed_state.map_gen) {
            return;
        }
        map = g_new0(DiskMapLayout, 1);
        if (!disk_map_parse_header(hdr, gpa, &env, map, &err) ||
            map->count > ram_bytes_total() / DISK_MAP_PAGE_SIZE) {
            /* odd (changing), or malformed: the next poll sees */
            g_free(map);
            return;
        }
        disk_backed_state.live = map;
        disk_backed_state.live_next = 0;
    }

    /* the next chunk, in the segments' order */
    left = MIN(DISK_BACKED_MAP_CHUNK, map->count - disk_backed_state.live_next);
    buf = g_malloc(left * DISK_MAP_RECORD_SIZE);
    for (uint32_t i = 0; i < map->nsegments && left; i++) {
        uint64_t first = disk_backed_state.live_next, n;

        if (first >= base + map->seg[i].records) {
            base += map->seg[i].records;
            continue;
        }
        n = MIN(left, base + map->seg[i].records - first);
        if (!disk_backed_read_gpa(map->seg[i].gpa +
                                  (first - base) * DISK_MAP_RECORD_SIZE,
                                  buf, n * DISK_MAP_RECORD_SIZE)) {
            break;
        }
        disk_backed_follow_records(&env, buf, n);
        disk_backed_state.live_next += n;
        left -= n;
        base += map->seg[i].records;
    }
    if (left && disk_backed_state.live_next < map->count) {
        /* a segment no longer readable: at the next poll again */
        disk_backed_state.live = NULL;
        g_free(map);
        return;
    }
    if (disk_backed_state.live_next < map->count) {
        return;                 /* more at the next call */
    }
    disk_backed_state.live = NULL;
    /* whole only if the generation did not change meanwhile */
    if (disk_backed_read_gpa(gpa, hdr, DISK_MAP_PAGE_SIZE) &&
        disk_map_generation(hdr) == map->generation) {
        disk_backed_state.map_gen = map->generation;
    }
    stat64_add(&disk_backed_state.map_rereads, 1);
    trace_disk_backed_map_reread(gpa, map->generation, map->count,
                                 disk_backed_state.map_gen ==
                                 map->generation);
    g_free(map);
}

bool disk_backed_save_setup(Error **errp)
{
    uint64_t map_gpa = migrate_disk_backed_map();
    BlockDriverState *bs;

    disk_backed_save_cleanup();
    disk_backed_reset_stats("none");
    qatomic_set(&disk_backed_state.nack_count, 0);
    qatomic_set(&disk_backed_state.pong, false);
    disk_backed_state.closed = false;

    if (!disk_backed_check_node(errp)) {
        return false;
    }
    bs = disk_backed_find_node(errp);
    bdrv_ref(bs);
    disk_backed_state.bs = bs;
    disk_backed_state.written = bdrv_create_dirty_bitmap(bs, DISK_MAP_PAGE_SIZE,
                                                         NULL, errp);
    if (!disk_backed_state.written) {
        error_prepend(errp, "disk-backed-pages: cannot track writes to "
                      "node '%s': ", bdrv_get_node_name(bs));
        return false;
    }
    disk_backed_state.disk_size =
        bdrv_dirty_bitmap_size(disk_backed_state.written);
    disk_backed_state.map_gpa = map_gpa;
    disk_backed_state.map_gen = UINT64_MAX;     /* none read yet */
    disk_backed_state.map_polled = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    if (map_gpa) {
        disk_backed_set_status(disk_backed_read_map(map_gpa));
    }
    disk_backed_learn_setup(bs);
    return true;
}

void disk_backed_save_cleanup(void)
{
    if (disk_backed_state.written) {
        bdrv_release_dirty_bitmap(disk_backed_state.written);
        disk_backed_state.written = NULL;
    }
    if (disk_backed_state.bs) {
        bdrv_unref(disk_backed_state.bs);
        disk_backed_state.bs = NULL;
    }
    if (disk_backed_state.learn_fd >= 0) {
        close(disk_backed_state.learn_fd);
        disk_backed_state.learn_fd = -1;
    }
    g_free(disk_backed_state.live);
    disk_backed_state.live = NULL;
    disk_backed_state.map_gpa = 0;
    disk_backed_free_blocks();
}

bool disk_backed_save_ref(RAMBlock *rb, ram_addr_t offset, bool last_stage,
                          uint8_t *rec)
{
    DiskBackedBlock *b = rb->disk_backed;
    unsigned long page = offset >> TARGET_PAGE_BITS;
    const DiskMapRecord *r = NULL;
    uint8_t hash[DISK_REF_HASH_LEN];
    void *host = rb->host + offset;
    DiskRefPage p = { .in_map = true };
    bool first;

    if (!b) {
        return false;
    }
    /* the learned map's pages go as references on their first send only */
    first = b->sent && !test_and_set_bit(page, b->sent);
    if (b->cand && test_and_clear_bit(page, b->cand)) {
        r = disk_map_lookup(b->recs, b->nrecs, offset);
    }
    if (!r) {
        /* the guest's map wins; otherwise the learned map */
        return first && disk_backed_save_learned(rb, b, offset, last_stage,
                                                 rec);
    }
    p.last_stage = last_stage || disk_backed_state.closed;
    p.frame_written = disk_backed_frame_written(r->frame);
    if (!disk_ref_qualifies(&p)) {
        trace_disk_backed_save_full(rb->idstr, offset, p.frame_written);
        /* marked modified, or its frame written: maybe learned since */
        return first && disk_backed_save_learned(rb, b, offset, last_stage,
                                                 rec);
    }
    if (buffer_is_zero(host, DISK_MAP_PAGE_SIZE)) {
        return false;           /* a zero page record is smaller */
    }
    disk_ref_hash(host, hash);
    disk_ref_encode(rec, r->frame * DISK_MAP_PAGE_SIZE, hash);
    return true;
}

bool disk_backed_may_ref(RAMBlock *rb, ram_addr_t offset)
{
    DiskBackedBlock *b = qatomic_rcu_read(&rb->disk_backed);

    unsigned long page = offset >> TARGET_PAGE_BITS;

    /* racy against disk_backed_save_ref(): either answer is safe */
    if (!b) {
        return false;
    }
    if (b->cand && test_bit(page, b->cand)) {
        return true;
    }
    return b->sent && !test_bit(page, b->sent) &&
           disk_backed_learned_frame(rb, page) != UINT64_MAX;
}

void disk_backed_ref_sent(uint64_t len)
{
    stat64_add(&disk_backed_state.pages_referenced, 1);
    stat64_add(&disk_backed_state.bytes_saved, DISK_MAP_PAGE_SIZE - len);
}

int disk_backed_ref_nacked(const char *idstr, uint64_t offset, Error **errp)
{
    DiskBackedBlock *b;
    RAMBlock *rb;

    RCU_READ_LOCK_GUARD();
    rb = qemu_ram_block_by_name(idstr);
    /* under the RCU read lock: the cleanup may free it meanwhile */
    b = rb ? qatomic_rcu_read(&rb->disk_backed) : NULL;
    if (!b || !b->nacked || offset >= rb->used_length ||
        !QEMU_IS_ALIGNED(offset, TARGET_PAGE_SIZE) ||
        !((b->lref && test_bit(offset >> TARGET_PAGE_BITS, b->lref)) ||
          (b->cand && disk_ref_nack_valid(b->recs, b->nrecs, b->cand,
                                          rb->used_length, offset)))) {
        error_setg(errp, "disk-backed-pages: the destination refused page "
                   "0x%" PRIx64 " of RAM block '%s', which was not sent as "
                   "a reference", offset, idstr);
        return -EINVAL;
    }
    trace_disk_backed_nack(idstr, offset);
    stat64_add(&disk_backed_state.references_refused, 1);
    if (disk_backed_flip_bit_atomic(b->nacked, offset >> TARGET_PAGE_BITS,
                                    true)) {
        qatomic_inc(&disk_backed_state.nack_count);
    }
    return 0;
}

uint64_t disk_backed_take_nacks(RAMBlock *rb, unsigned long *bmap)
{
    DiskBackedBlock *b = rb->disk_backed;
    unsigned long npages, page;
    uint64_t dirtied = 0;

    if (!qatomic_read(&disk_backed_state.nack_count) || !b || !b->nacked) {
        return 0;
    }
    npages = rb->used_length >> TARGET_PAGE_BITS;
    for (page = find_first_bit(b->nacked, npages); page < npages;
         page = find_next_bit(b->nacked, npages, page + 1)) {
        if (!disk_backed_flip_bit_atomic(b->nacked, page, false)) {
            continue;
        }
        qatomic_dec(&disk_backed_state.nack_count);
        if (!test_and_set_bit(page, bmap)) {
            dirtied++;
        }
    }
    return dirtied;
}

void disk_backed_pong(void)
{
    qatomic_set(&disk_backed_state.pong, true);
}

int disk_backed_close_refs(QEMUFile *f, Error **errp)
{
    MigrationState *s = migrate_get_current();
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    /* how long to wait for the destination to check its references */
    uint32_t timeout = s->disk_backed_close_timeout;

    disk_backed_state.closed = true;
    if (!stat64_get(&disk_backed_state.pages_referenced)) {
        return 0;               /* nothing to refuse */
    }
    qatomic_set(&disk_backed_state.pong, false);
    qemu_savevm_send_ping(f, QEMU_VM_PING_DISK_REFS);
    if (qemu_fflush(f) < 0) {
        error_setg(errp, "disk-backed-pages: cannot send the last ping");
        return -EIO;
    }
    while (!qatomic_read(&disk_backed_state.pong)) {
        g_usleep(2 * 1000);
        if (migrate_has_error(s) || qemu_file_get_error(f) ||
            !migration_is_running()) {
            error_setg(errp, "disk-backed-pages: the migration stopped "
                       "while the destination checked its references");
            return -EIO;
        }
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - start > timeout) {
            error_setg(errp, "disk-backed-pages: the destination did not "
                       "check its references within %.1f s",
                       timeout / 1000.0);
            return -ETIMEDOUT;
        }
    }
    /* the return-path thread saw every NACK before the PONG */
    smp_mb_acquire();
    trace_disk_backed_close_refs(qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - start,
                                 qatomic_read(&disk_backed_state.nack_count));
    return 0;
}

/* Destination */

static void disk_backed_blk_unref_bh(void *opaque)
{
    blk_unref(opaque);
}

/* Drop the BlockBackend; callable in coroutine context as well */
static void disk_backed_blk_close(void)
{
    if (disk_backed_state.blk) {
        /* detaching takes the graph lock, which no coroutine may take */
        aio_bh_schedule_oneshot(qemu_get_aio_context(),
                                disk_backed_blk_unref_bh,
                                disk_backed_state.blk);
        disk_backed_state.blk = NULL;
    }
    qemu_vfree(disk_backed_state.win_buf);
    disk_backed_state.win_buf = NULL;
    g_free(disk_backed_state.win);
    disk_backed_state.win = NULL;
    if (disk_backed_state.fd >= 0) {
        close(disk_backed_state.fd);
        disk_backed_state.fd = -1;
    }
}

/*
 * Open the image behind @bs read-only, for the threads that read it
 * without the BQL.  Only a file, or a raw node without an offset or a
 * size on one; otherwise -1, and the BQL's holder reads the disk through
 * the block layer.
 */
static int disk_backed_open_image(BlockDriverState *bs)
{
    const char *format;

    GLOBAL_STATE_CODE();
    GRAPH_RDLOCK_GUARD_MAINLOOP();

    format = bdrv_get_format_name(bs);
    if (format && !strcmp(format, "raw")) {
        if (qdict_haskey(bs->options, "offset") ||
            qdict_haskey(bs->options, "size") || !bs->file) {
            return -1;
        }
        bs = bs->file->bs;
        format = bdrv_get_format_name(bs);
    }
    if (!format || (strcmp(format, "file") && strcmp(format, "host_device"))) {
        return -1;
    }
    return qemu_open_old(bs->filename, O_RDONLY);
}

bool disk_backed_incoming_open(Error **errp)
{
    BlockDriverState *bs;
    BlockBackend *blk;
    int64_t size;

    GLOBAL_STATE_CODE();
    disk_backed_blk_close();
    if (!disk_backed_check_node(errp)) {
        return false;
    }
    bs = disk_backed_find_node(errp);
    /*
     * Read-only, sharing everything: the guest's own device owns the
     * node, which stays inactive until the guest starts here.
     */
    blk = blk_new(bdrv_get_aio_context(bs), BLK_PERM_CONSISTENT_READ,
                  BLK_PERM_ALL);
    if (blk_insert_bs(blk, bs, errp) < 0) {
        error_prepend(errp, "disk-backed-pages: cannot read node '%s': ",
                      bdrv_get_node_name(bs));
        blk_unref(blk);
        return false;
    }
    blk_set_allow_aio_context_change(blk, true);
    size = blk_getlength(blk);
    if (size < 0) {
        error_setg_errno(errp, -size, "disk-backed-pages: cannot get the "
                         "size of node '%s'", bdrv_get_node_name(bs));
        blk_unref(blk);
        return false;
    }
    disk_backed_state.disk_size = size;
    disk_backed_state.blk = blk;
    disk_backed_state.fd = disk_backed_open_image(bs);
    if (disk_backed_state.fd < 0) {
        trace_disk_backed_open_image(bdrv_get_node_name(bs), errno);
    }
    disk_backed_state.win = g_new0(DiskBackedWindow, DISK_BACKED_WINDOWS);
    disk_backed_state.next_base = UINT64_MAX;
    disk_backed_state.ahead = 0;
    return true;
}

bool disk_backed_load_setup(Error **errp)
{
    RAMBlock *rb;

    disk_backed_reset_stats("none");
    qatomic_set(&disk_backed_state.pending, 0);
    if (!disk_backed_state.blk) {
        error_setg(errp, "disk-backed-pages: node '%s' is not open; set the "
                   "capability before migrate-incoming",
                   migrate_disk_backed_node());
        return false;
    }
    /*
     * Allocated here, before the first reference, so that multifd's
     * receive threads never see one being allocated.
     */
    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH(rb) {
        DiskBackedBlock *b = disk_backed_block(rb);

        if (!b->pending) {
            b->pending = bitmap_new(rb->max_length >> TARGET_PAGE_BITS);
        }
    }
    /*
     * With multifd the references are checked in parallel, as its pages
     * are loaded; see "With multifd" in disk-backed-pages.rst for why
     * waiting for them at each of multifd's syncs keeps them in order.
     * The pool reads the image file (disk_backed_open_image()); when it
     * cannot, the main thread checks them through the block layer.
     */
    qatomic_set(&disk_backed_state.nack_failed, false);
    if (migrate_multifd() && disk_backed_state.fd >= 0) {
        disk_backed_state.pool = thread_pool_new();
        thread_pool_set_max_threads(disk_backed_state.pool,
                                    migrate_multifd_channels());
    }
    return true;
}

void disk_backed_load_cleanup(void)
{
    if (disk_backed_state.pool) {
        disk_backed_refs_wait();
        thread_pool_free(disk_backed_state.pool);
        disk_backed_state.pool = NULL;
    }
    disk_backed_blk_close();
    disk_backed_free_blocks();
}

/*
 * The main thread sets a page pending, the thread that loads the page
 * in full clears it: with multifd, one of its receive threads.  A page
 * is sent in full only in a later round than its reference, after a
 * multifd sync (docs/devel/migration/disk-backed-pages.rst, "With
 * multifd"), so the set always comes first.
 */
static void disk_backed_set_pending(RAMBlock *rb, ram_addr_t addr,
                                    bool pending)
{
    DiskBackedBlock *b = rb->disk_backed;
    unsigned long page = addr >> TARGET_PAGE_BITS;
    unsigned long *word, mask = BIT_MASK(page);

    if (!b || !b->pending) {
        /* not there at setup: disk_backed_load_ref() takes no reference */
        return;
    }
    word = &b->pending[BIT_WORD(page)];
    if (pending) {
        if (!(qatomic_fetch_or(word, mask) & mask)) {
            qatomic_inc(&disk_backed_state.pending);
        }
    } else if (qatomic_fetch_and(word, ~mask) & mask) {
        qatomic_dec(&disk_backed_state.pending);
    }
}

static uint8_t *disk_backed_win_data(DiskBackedWindow *w)
{
    return disk_backed_state.win_buf +
           (w - disk_backed_state.win) * DISK_BACKED_WINDOW;
}

/*
 * Destination: read the window at disk offset @base, and after it as
 * many as the read ahead asks for, in one read.
 */
static int disk_backed_read_windows(uint64_t base)
{
    unsigned first = (base / DISK_BACKED_WINDOW) % DISK_BACKED_WINDOWS;
    unsigned n;
    uint64_t len;
    int ret;

    if (!disk_backed_state.win_buf) {
        disk_backed_state.win_buf =
            qemu_blockalign(blk_bs(disk_backed_state.blk),
                            DISK_BACKED_WINDOW * DISK_BACKED_WINDOWS);
    }
    disk_backed_state.ahead = base == disk_backed_state.next_base ?
                              MIN(disk_backed_state.ahead * 2,
                                  DISK_BACKED_READAHEAD) : 1;
    /* within the disk, and within the buffer (no wrap) */
    n = MIN(disk_backed_state.ahead, DISK_BACKED_WINDOWS - first);
    len = MIN((uint64_t)n * DISK_BACKED_WINDOW,
              disk_backed_state.disk_size - base);
    n = DIV_ROUND_UP(len, DISK_BACKED_WINDOW);
    for (unsigned i = 0; i < n; i++) {
        disk_backed_state.win[first + i].len = 0;
    }
    ret = blk_pread(disk_backed_state.blk, base, len,
                    disk_backed_state.win_buf +
                    (uint64_t)first * DISK_BACKED_WINDOW, 0);
    if (ret < 0) {
        disk_backed_state.next_base = UINT64_MAX;
        return ret;
    }
    for (unsigned i = 0; i < n; i++) {
        DiskBackedWindow *w = &disk_backed_state.win[first + i];

        w->base = base + (uint64_t)i * DISK_BACKED_WINDOW;
        w->len = MIN(DISK_BACKED_WINDOW, disk_backed_state.disk_size - w->base);
    }
    stat64_add(&disk_backed_state.disk_bytes_read, len);
    trace_disk_backed_read_windows(base, len);
    disk_backed_state.next_base = base + len;
    return 0;
}

/*
 * Destination: decode the reference record @rec for page @addr of @rb
 * into its disk @offset and @hash; false, with an error reported, for a
 * RAM block that takes none or a malformed record.
 */
static bool disk_backed_decode_ref(RAMBlock *rb, ram_addr_t addr,
                                   const uint8_t *rec, uint64_t *offset,
                                   uint8_t *hash)
{
    if (!rb->disk_backed || !rb->disk_backed->pending) {
        error_report("disk-backed-pages: a reference arrived for RAM block "
                     "'%s', which was not there at setup", rb->idstr);
        return false;
    }
    if (!disk_ref_decode(rec, UINT64_MAX, offset, hash)) {
        error_report("disk-backed-pages: malformed reference to disk "
                     "offset 0x%" PRIx64 " for page 0x%" PRIx64 " of '%s'",
                     *offset, (uint64_t)addr, rb->idstr);
        return false;
    }
    return true;
}

int disk_backed_check_ref(RAMBlock *rb, ram_addr_t addr,
                          const uint8_t *rec, uint8_t **block)
{
    uint8_t hash[DISK_REF_HASH_LEN], got[DISK_REF_HASH_LEN];
    DiskBackedWindow *w;
    uint64_t offset, base;
    uint8_t *buf = NULL;
    bool fresh = false;
    int ret;

    if (!disk_backed_state.blk) {
        error_report("disk-backed-pages: a reference arrived, but no "
                     "disk-backed-node is open");
        return -EINVAL;
    }
    if (!disk_backed_decode_ref(rb, addr, rec, &offset, hash)) {
        return -EINVAL;
    }
    base = QEMU_ALIGN_DOWN(offset, DISK_BACKED_WINDOW);
    w = &disk_backed_state.win[(base / DISK_BACKED_WINDOW) %
                               DISK_BACKED_WINDOWS];
    if (offset >= disk_backed_state.disk_size ||
        disk_backed_state.disk_size - offset < DISK_MAP_PAGE_SIZE) {
        /* the disk is smaller here: refused like a block that differs */
        ret = -ERANGE;
    } else if (w->len && w->base == base) {
        ret = 0;
    } else {
        ret = disk_backed_read_windows(base);
        fresh = ret >= 0;
    }
    if (ret >= 0) {
        buf = disk_backed_win_data(w) + (offset - base);
        disk_ref_hash(buf, got);
        if (memcmp(got, hash, DISK_REF_HASH_LEN) && !fresh) {
            /* read a while ago: the frame may have changed since */
            ret = blk_pread(disk_backed_state.blk, offset,
                            DISK_MAP_PAGE_SIZE, buf, 0);
            if (ret >= 0) {
                stat64_add(&disk_backed_state.disk_bytes_read,
                           DISK_MAP_PAGE_SIZE);
                disk_ref_hash(buf, got);
            } else {
                w->len = 0;
            }
        }
    }
    if (ret >= 0 && !memcmp(got, hash, DISK_REF_HASH_LEN)) {
        *block = buf;
        return 1;
    }
    trace_disk_backed_load_refused(rb->idstr, addr, offset, ret);
    stat64_add(&disk_backed_state.references_refused, 1);
    return 0;
}

int disk_backed_send_nack(RAMBlock *rb, ram_addr_t addr)
{
    MigrationIncomingState *mis = migration_incoming_get_current();

    if (!mis->to_src_file) {
        error_report("disk-backed-pages: a reference was refused and there "
                     "is no return path to ask for the page");
        return -EINVAL;
    }
    migrate_send_rp_disk_ref_nack(mis, rb->idstr, addr);
    return 0;
}

/* Pool thread: check a batch of references, as disk_backed_load_ref() */
static int disk_backed_check_batch(void *opaque)
{
    DiskBackedBatch *bt = opaque;
    QEMU_UNINITIALIZED uint8_t page[DISK_MAP_PAGE_SIZE];
    uint8_t got[DISK_REF_HASH_LEN];

    for (size_t i = 0; i < bt->n; i++) {
        RAMBlock *rb = bt->ref[i].rb;
        ram_addr_t addr = bt->ref[i].addr;
        uint64_t disk = bt->ref[i].disk;
        ssize_t n = -ERANGE;

        if (disk < disk_backed_state.disk_size &&
            disk_backed_state.disk_size - disk >= sizeof(page)) {
            n = RETRY_ON_EINTR(pread(disk_backed_state.fd, page,
                                     sizeof(page), disk));
        }
        if (n == sizeof(page)) {
            stat64_add(&disk_backed_state.disk_bytes_read, n);
            disk_ref_hash(page, got);
            if (!memcmp(got, bt->ref[i].hash, DISK_REF_HASH_LEN)) {
                memcpy(bt->ref[i].host, page, sizeof(page));
                disk_backed_set_pending(rb, addr, false);
                disk_backed_ref_loaded();
                disk_backed_learn_placed(rb, addr, disk);
                continue;
            }
        }
        trace_disk_backed_load_refused(rb->idstr, addr, disk,
                                       n < 0 ? -errno : 0);
        stat64_add(&disk_backed_state.references_refused, 1);
        /* before the refusal: the page in full comes after it */
        disk_backed_set_pending(rb, addr, true);
        if (disk_backed_send_nack(rb, addr) < 0) {
            qatomic_set(&disk_backed_state.nack_failed, true);
        }
    }
    return 0;
}

static void disk_backed_submit_batch(void)
{
    if (disk_backed_state.batch && disk_backed_state.batch->n) {
        thread_pool_submit(disk_backed_state.pool, disk_backed_check_batch,
                           disk_backed_state.batch, g_free);
        disk_backed_state.batch = NULL;
    }
}

/* Main thread, with multifd: queue a reference for the pool */
static int disk_backed_queue_ref(RAMBlock *rb, ram_addr_t addr, void *host,
                                 const uint8_t *rec)
{
    uint8_t hash[DISK_REF_HASH_LEN];
    uint64_t offset;
    size_t i;

    if (!disk_backed_decode_ref(rb, addr, rec, &offset, hash)) {
        return -EINVAL;
    }
    if (!disk_backed_state.batch) {
        disk_backed_state.batch = g_new(DiskBackedBatch, 1);
        disk_backed_state.batch->n = 0;
    }
    i = disk_backed_state.batch->n++;
    disk_backed_state.batch->ref[i].rb = rb;
    disk_backed_state.batch->ref[i].addr = addr;
    disk_backed_state.batch->ref[i].host = host;
    disk_backed_state.batch->ref[i].disk = offset;
    memcpy(disk_backed_state.batch->ref[i].hash, hash, DISK_REF_HASH_LEN);
    if (disk_backed_state.batch->n == DISK_BACKED_BATCH) {
        disk_backed_submit_batch();
    }
    return 0;
}

bool disk_backed_refs_wait(void)
{
    if (!disk_backed_state.pool) {
        return true;
    }
    disk_backed_submit_batch();
    thread_pool_wait(disk_backed_state.pool);
    return !qatomic_read(&disk_backed_state.nack_failed);
}

int disk_backed_load_ref(RAMBlock *rb, ram_addr_t addr, void *host,
                         const uint8_t *rec)
{
    uint8_t *block;
    int ret;

    if (disk_backed_state.pool) {
        return disk_backed_queue_ref(rb, addr, host, rec);
    }
    ret = disk_backed_check_ref(rb, addr, rec, &block);

    if (ret > 0) {
        uint64_t disk = ldq_be_p(rec);  /* decoded by the check */

        memcpy(host, block, DISK_MAP_PAGE_SIZE);
        disk_backed_set_pending(rb, addr, false);
        disk_backed_ref_loaded();
        disk_backed_learn_placed(rb, addr, disk);
        return 0;
    }
    if (ret < 0) {
        return ret;
    }
    /* Not this page: leave it alone, and ask for it in full */
    disk_backed_set_pending(rb, addr, true);
    return disk_backed_send_nack(rb, addr);
}

void disk_backed_ref_loaded(void)
{
    stat64_add(&disk_backed_state.pages_referenced, 1);
}

void disk_backed_page_refused(RAMBlock *rb, ram_addr_t addr)
{
    disk_backed_set_pending(rb, addr, true);
}

void disk_backed_page_loaded(RAMBlock *rb, ram_addr_t addr)
{
    if (qatomic_read(&disk_backed_state.pending)) {
        disk_backed_set_pending(rb, addr, false);
    }
    /* a page that went as a reference before may have changed since */
    if (qatomic_rcu_read(&rb->disk_learned)) {
        disk_backed_learn_placed(rb, addr, DISK_LEARN_FORGET);
    }
}

bool disk_backed_load_complete(Error **errp)
{
    size_t pending;

    if (!disk_backed_refs_wait()) {
        error_setg(errp, "disk-backed-pages: a refusal could not be sent");
        return false;
    }
    pending = qatomic_read(&disk_backed_state.pending);

    if (pending) {
        error_setg(errp, "disk-backed-pages: %zu page(s) whose disk "
                   "reference was refused never arrived in full", pending);
        return false;
    }
    return true;
}

bool disk_backed_postcopy_listen(Error **errp)
{
    size_t pending;

    if (!disk_backed_refs_wait()) {
        error_setg(errp, "disk-backed-pages: a refusal could not be sent");
        return false;
    }
    pending = qatomic_read(&disk_backed_state.pending);
    RAMBlock *rb;

    if (!pending) {
        return true;
    }
    /*
     * Every refusal reached the source before it stopped the guest, and
     * it marked the page dirty before its last bitmap sync; so the page
     * was discarded, which cleared its bit in receivedmap: the guest
     * faults on it and postcopy sends it.  A pending page that is still
     * "received" would run as it is, with whatever memory holds there.
     */
    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH_NOT_IGNORED(rb) {
        DiskBackedBlock *b = rb->disk_backed;
        unsigned long npages, page;

        if (!b || !b->pending) {
            continue;
        }
        npages = rb->used_length >> TARGET_PAGE_BITS;
        for (page = find_first_bit(b->pending, npages); page < npages;
             page = find_next_bit(b->pending, npages, page + 1)) {
            ram_addr_t addr = (ram_addr_t)page << TARGET_PAGE_BITS;

            if (ramblock_recv_bitmap_test_byte_offset(rb, addr)) {
                error_setg(errp, "disk-backed-pages: page 0x%" PRIx64
                           " of RAM block '%s', whose reference was "
                           "refused, was not discarded for postcopy",
                           (uint64_t)addr, rb->idstr);
                return false;
            }
            /* postcopy's now: it places the page, or the guest waits */
            disk_backed_set_pending(rb, addr, false);
        }
    }
    trace_disk_backed_postcopy_listen(pending);
    return true;
}

void disk_backed_populate_info(MigrationInfo *info)
{
    DiskBackedPagesInfo *p = g_new0(DiskBackedPagesInfo, 1);
    uint64_t learned, forgotten;

    WITH_QEMU_LOCK_GUARD(&disk_backed_state.lock) {
        p->map_status = g_strdup(disk_backed_state.map_status ?
                                 disk_backed_state.map_status : "none");
    }
    p->map_records = stat64_get(&disk_backed_state.map_records);
    p->map_ignored = stat64_get(&disk_backed_state.map_ignored);
    p->map_modified = stat64_get(&disk_backed_state.map_modified);
    p->pages_referenced = stat64_get(&disk_backed_state.pages_referenced);
    p->bytes_saved = stat64_get(&disk_backed_state.bytes_saved);
    p->references_refused = stat64_get(&disk_backed_state.references_refused);
    p->disk_bytes_read = stat64_get(&disk_backed_state.disk_bytes_read);
    learned = stat64_get(&disk_backed_state.learned);
    forgotten = stat64_get(&disk_backed_state.forgotten);
    /* the two are read apart: a page may be learned in between */
    p->learned_pages = learned > forgotten ? learned - forgotten : 0;
    p->learned_references = stat64_get(&disk_backed_state.learned_references);
    p->learned_mismatches = stat64_get(&disk_backed_state.learned_mismatches);
    p->map_rereads = stat64_get(&disk_backed_state.map_rereads);
    /* the source's part, filled before an incoming migration's */
    qapi_free_DiskBackedPagesInfo(info->disk_backed_pages);
    info->disk_backed_pages = p;
}
