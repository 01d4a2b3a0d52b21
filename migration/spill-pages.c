/*
 * shared-file-spill: the pages datapath
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The source's writer thread claims dirty pages from the back of RAM
 * (ram_spill_claim()) while the migration thread sends them from the
 * front, and writes them as PAGE records to spill-file + ".pages"; the
 * destination's reader thread loads them as the file grows.  Every copy
 * of a page, by either path, carries a sequence number from spill_seq,
 * and the destination loads a copy only if it is newer than the one it
 * holds (SpillSeqTable).  See docs/devel/migration/shared-file-spill.rst,
 * "The pages datapath".
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "exec/target_page.h"
#include "qemu/cutils.h"
#include "system/ramblock.h"
#include "migration/vmstate.h"
#include "migration.h"
#include "ram.h"
#include "options.h"
#include "spill.h"
#include "disk-backed.h"
#include "spill-int.h"
#include "trace.h"

#define SPILL_PAGES_BATCH       64
/* the writer syncs the pages file each time it wrote this much */
#define SPILL_PAGES_SYNC        (64 * 1024 * 1024)
#define SPILL_PAGES_IDLE_US     1000
/* the destination reads the pages file this much at a time */
#define SPILL_READ_WINDOW       (1024 * 1024)
/*
 * The destination's reader says how far it has loaded the pages file in
 * spill-file + ".loaded" (magic, the migration's uuid, the file offset,
 * little-endian), each time it loaded SPILL_LOADED_STEP more and when it
 * has loaded all there is.  The writer stays at most SPILL_PAGES_LEAD
 * ahead of it, and once stopped waits for it with the guest running, so
 * that little is left to load with the guest paused.
 */
#define SPILL_LOADED_STEP       (1024 * 1024)
#define SPILL_PAGES_LEAD        (16 * 1024 * 1024)
/* the source waits this long for a reader that makes no progress */
#define SPILL_LOADED_WAIT_MS    1000

static QemuMutex spill_seq_lock;
static uint64_t spill_seq;      /* the last number given out */

static struct {
    int fd;                     /* source: from prepare to start */
    QemuThread thread;
    bool running;
    bool stop;                  /* atomic */
    uint64_t pos;               /* file offset of the next record */
    uint64_t synced_pos;        /* pos at the last sync */
    GArray *unsynced;           /* SpillClaims written since that sync */
    int err;                    /* the write that failed, or 0 */
    uint32_t nblocks;
    RAMBlock *blocks[SPILL_MAX_BLOCKS];
    uint8_t *buf;
    SpillPos loaded_pos;        /* the destination's reader's position */
    uint64_t loaded;            /* the last position read from it */
} spill_writer = { .fd = -1, .loaded_pos.fd = -1 };

static struct {
    int fd;
    QemuThread thread;
    bool running;
    bool stop;                  /* atomic */
    bool done;                  /* atomic: the reader thread stopped */
    bool marker;                /* the source said where the file ends */
    uint64_t pos;               /* atomic: file bytes read and applied */
    char *err;                  /* why the reader stopped early */
    QemuMutex lock;             /* the seq table and the page copies */
    SpillSeqTable seq;
    SpillScan scan;
    RAMBlock *blocks[SPILL_MAX_BLOCKS];
    uint8_t *buf;               /* a window of the file ... */
    size_t buf_size;
    uint64_t win_pos, win_len;  /* ... from win_pos on, win_len bytes */
    uint8_t *bounce;            /* a page off the network */
    SpillPos loaded_pos;        /* where the reader says how far it is */
    uint64_t published;         /* the position it said last */
} spill_reader = { .fd = -1, .loaded_pos.fd = -1 };

/* the marker: where the source's pages file ends */
typedef struct SpillMarker {
    uint64_t end;
} SpillMarker;

static SpillMarker spill_marker;

bool spill_pages_enabled(void)
{
    /*
     * Pages loaded by a reader thread cannot follow postcopy's discards
     * and atomic placement: with postcopy-ram, the spill file carries
     * the stream (and its return path) only.  With TLS, so that the
     * files hold nothing but the TLS session's ciphertext: the pages
     * file would hold the guest's memory in clear.  With multifd, whose
     * packets carry no sequence number: an older copy from the file
     * could overwrite a newer one a channel brought.
     */
    return migrate_shared_file_spill() && !migrate_postcopy_ram() &&
           !migrate_tls() && !migrate_multifd();
}

/* Destination: the pages file beside @path, of the same migration */
static int spill_open_pages(const char *path, const SpillHeader *h,
                            Error **errp)
{
    g_autofree char *pages = g_strconcat(path, SPILL_PAGES_SUFFIX, NULL);
    uint8_t hdr[SPILL_HEADER_SIZE];
    const char *why;
    SpillHeader ph;
    int fd;

    fd = qemu_open(pages, O_RDONLY | O_CLOEXEC, errp);
    if (fd < 0) {
        error_prepend(errp, "Parameter 'spill-file': ");
        return -1;
    }
    if (pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr) ||
        !spill_header_decode(hdr, &ph, &why) ||
        memcmp(ph.uuid, h->uuid, sizeof(ph.uuid)) ||
        ph.page_size != h->page_size) {
        error_setg(errp, "Parameter 'spill-file': '%s' is not the pages "
                   "file of '%s'", pages, path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Destination: the pages file of the spill file @path, header @h */
bool spill_pages_incoming_open(const char *path, const SpillHeader *h,
                               Error **errp)
{
    int fd = spill_open_pages(path, h, errp);

    if (fd < 0) {
        return false;
    }
    spill_pages_incoming_stop();        /* an earlier incoming's */
    spill_reader.fd = fd;
    spill_pos_init(&spill_reader.loaded_pos, path, SPILL_LOADED_SUFFIX,
                   SPILL_LOADED_MAGIC, 1);
    spill_scan_init(&spill_reader.scan, h);
    return true;
}

/* Destination: the source said where its pages file ends */
bool spill_pages_marker_seen(void)
{
    return spill_reader.marker;
}

/*
 * Destination: load one copy of a page if it is the newest so far:
 * @data, or zeroes for NULL; with @refused, only its sequence number (a
 * disk reference that was refused: the page is then pending).  With
 * disk-backed-pages, a page taken in full is no longer pending.
 * 1: loaded, 0: an older copy, dropped, -1: error.
 */
static int spill_apply_copy(RAMBlock *rb, uint64_t offset, void *host,
                            uint64_t seq, const void *data, bool refused,
                            Error **errp)
{
    uint64_t index = (rb->offset + offset) >> qemu_target_page_bits();
    size_t page = qemu_target_page_size();
    bool take;

    if (index >= spill_reader.seq.npages) {
        error_setg(errp, "shared-file-spill: page %" PRIu64 " of %s "
                   "outside guest RAM", offset, rb->idstr);
        return -1;
    }
    qemu_mutex_lock(&spill_reader.lock);
    take = spill_seq_take(&spill_reader.seq, index, seq);
    if (take && refused) {
        disk_backed_page_refused(rb, offset);
    } else if (take) {
        if (data) {
            memcpy(host, data, page);
        } else if (!buffer_is_zero(host, page)) {
            memset(host, 0, page);
        }
        if (migrate_disk_backed_pages()) {
            disk_backed_page_loaded(rb, offset);
        }
    }
    qemu_mutex_unlock(&spill_reader.lock);
    if (!take) {
        stat64_add(&spill_state.stale_pages, 1);
    }
    return take;
}

static int spill_apply(RAMBlock *rb, uint64_t offset, void *host,
                       uint64_t seq, const void *data, Error **errp)
{
    return spill_apply_copy(rb, offset, host, seq, data, false, errp);
}

bool spill_load_page(RAMBlock *rb, uint64_t offset, void *host, uint64_t seq,
                     const void *data, Error **errp)
{
    if (!spill_reader.seq.seq) {
        error_setg(errp, "shared-file-spill: a page before the RAM setup");
        return false;
    }
    /*
     * A reader that stopped at a bad record is judged by the end offset
     * (spill_pages_wait()): the record may be past it, of a write that
     * failed at the source, whose pages the network sends again.
     */
    return spill_apply(rb, offset, host, seq, data, errp) >= 0;
}

int spill_load_ref(RAMBlock *rb, uint64_t offset, void *host, uint64_t seq,
                   const uint8_t *rec, Error **errp)
{
    uint8_t *block = NULL;
    int ret, taken;

    if (!spill_reader.seq.seq) {
        error_setg(errp, "shared-file-spill: a page before the RAM setup");
        return -EINVAL;
    }
    ret = disk_backed_check_ref(rb, offset, rec, &block);
    if (ret < 0) {
        error_setg(errp, "shared-file-spill: a malformed disk reference");
        return ret;
    }
    /* a refused one takes its number and the pending mark in one step */
    taken = spill_apply_copy(rb, offset, host, seq, block, !ret, errp);
    if (taken < 0) {
        return -EINVAL;
    }
    if (!taken) {
        /* a newer copy came already: no use for this one, nor to refuse */
        return 0;
    }
    if (ret) {
        disk_backed_ref_loaded();
        return 0;
    }
    return disk_backed_send_nack(rb, offset);
}

uint8_t *spill_page_buffer(void)
{
    if (!spill_reader.bounce) {
        spill_reader.bounce = g_malloc(qemu_target_page_size());
    }
    return spill_reader.bounce;
}

/*
 * Destination: the record at spill_reader.scan.pos, out of a window of
 * the file read ahead (one pread for many records); rec->payload points
 * into it.
 */
static SpillScanResult spill_pages_read(SpillRecord *rec, const char **why)
{
    bool fresh = false;

    for (;;) {
        uint64_t off = spill_reader.scan.pos - spill_reader.win_pos;
        uint64_t want = 0, ask;
        SpillScanResult r;
        ssize_t n;

        if (spill_reader.scan.pos >= spill_reader.win_pos &&
            off < spill_reader.win_len) {
            r = spill_scan_next(&spill_reader.scan, spill_reader.buf + off,
                                spill_reader.win_len - off, rec, &want, why);
            if (r != SPILL_SCAN_MORE || fresh) {
                return r;
            }
        } else if (fresh) {
            return SPILL_SCAN_MORE;     /* the file ends at pos */
        }
        /* a new window from pos: what the file holds now */
        ask = MAX(SPILL_READ_WINDOW, want);
        if (spill_reader.buf_size < ask) {
            g_free(spill_reader.buf);
            spill_reader.buf = g_malloc(ask);
            spill_reader.buf_size = ask;
        }
        n = pread(spill_reader.fd, spill_reader.buf, ask,
                  spill_reader.scan.pos);
        if (n < 0) {
            spill_reader.win_len = 0;
            *why = strerror(errno);
            return SPILL_SCAN_CORRUPT;
        }
        spill_reader.win_pos = spill_reader.scan.pos;
        spill_reader.win_len = n;
        fresh = true;
    }
}

/* Destination: one record of the pages file; false: stop reading */
static bool spill_pages_record(SpillRecord *rec, Error **errp)
{
    size_t page = qemu_target_page_size();
    RAMBlock *rb;

    switch (rec->type) {
    case SPILL_REC_BLOCK: {
        g_autofree char *idstr = g_strndup((const char *)rec->payload + 8,
                                           rec->len - 8);

        rb = qemu_ram_block_by_name(idstr);
        if (!rb || migrate_ram_is_ignored(rb) ||
            rb->used_length != ldq_le_p(rec->payload)) {
            error_setg(errp, "shared-file-spill: the pages file names RAM "
                       "block '%s' of %" PRIu64 " bytes, which this side "
                       "does not migrate", idstr, ldq_le_p(rec->payload));
            return false;
        }
        spill_reader.blocks[rec->block] = rb;
        return true;
    }
    case SPILL_REC_PAGE:
        rb = spill_reader.blocks[rec->block];
        if (rec->len != page || rec->offset + page > rb->used_length) {
            error_setg(errp, "shared-file-spill: page %" PRIu64 " outside "
                       "RAM block '%s'", rec->offset, rb->idstr);
            return false;
        }
        switch (spill_apply(rb, rec->offset, rb->host + rec->offset,
                            rec->seq, rec->payload, errp)) {
        case -1:
            return false;
        case 1:
            stat64_add(&spill_state.pages, 1);
            break;
        default:
            break;          /* an older copy: dropped */
        }
        stat64_add(&spill_state.file_bytes, spill_record_size(rec->len));
        stat64_add(&spill_state.records, 1);
        return true;
    default:
        error_setg(errp, "shared-file-spill: unexpected record type %d in "
                   "the pages file", rec->type);
        return false;
    }
}

/* Destination: tell the source how far the pages file is loaded */
static void spill_pages_publish(void)
{
    if (spill_reader.published != spill_reader.scan.pos &&
        spill_pos_write(&spill_reader.loaded_pos, spill_state.in_uuid,
                        &spill_reader.scan.pos)) {
        spill_reader.published = spill_reader.scan.pos;
    }
}

static void *spill_pages_reader(void *opaque)
{
    Error *err = NULL;
    SpillTorn torn = { 0 };

    rcu_register_thread();
    while (!qatomic_read(&spill_reader.stop)) {
        SpillRecord rec;
        const char *why = NULL;
        SpillScanResult r;
        bool ok;

        r = spill_pages_read(&rec, &why);
        if (r == SPILL_SCAN_MORE) {
            spill_pages_publish();      /* all there is */
            g_usleep(1000);
            continue;
        }
        if (r != SPILL_SCAN_RECORD) {
            /*
             * Only a record that stays bad is corrupt (spill-format.h);
             * anything else here (END, ABORT) is as bad in a pages file.
             */
            spill_reader.win_len = 0; /* read it again */
            if (!spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                    qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                g_usleep(SPILL_POLL_NS / SCALE_US);
                continue;
            }
            error_setg(&err, "shared-file-spill: the pages file is corrupt "
                       "at offset %" PRIu64 ": %s", spill_reader.scan.pos,
                       why ? why : "unexpected end");
            break;
        }
        spill_torn_give_up(&torn, r, 0);
        WITH_RCU_READ_LOCK_GUARD() {
            ok = spill_pages_record(&rec, &err);
        }
        if (!ok) {
            break;
        }
        qatomic_set_u64(&spill_reader.pos, spill_reader.scan.pos);
        if (spill_reader.scan.pos - spill_reader.published >=
            SPILL_LOADED_STEP) {
            spill_pages_publish();
        }
    }
    if (err) {
        spill_reader.err = g_strdup(error_get_pretty(err));
        error_free(err);
    }
    qatomic_store_release(&spill_reader.done, true);
    rcu_unregister_thread();
    return NULL;
}

bool spill_pages_incoming_start(Error **errp)
{
    RAMBlock *rb;
    uint64_t npages = 0;

    if (spill_reader.fd < 0 || spill_reader.running) {
        return true;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH(rb) {
            npages = MAX(npages, (rb->offset + rb->max_length) >>
                         qemu_target_page_bits());
        }
    }
    qemu_mutex_init(&spill_reader.lock);
    spill_seq_init(&spill_reader.seq, npages);
    memset(spill_reader.blocks, 0, sizeof(spill_reader.blocks));
    qatomic_set(&spill_reader.stop, false);
    qatomic_set(&spill_reader.done, false);
    qatomic_set_u64(&spill_reader.pos, spill_reader.scan.pos);
    spill_reader.win_pos = 0;
    spill_reader.win_len = 0;
    spill_reader.marker = false;
    g_clear_pointer(&spill_reader.err, g_free);
    spill_reader.published = 0;
    if (!spill_pos_create(&spill_reader.loaded_pos)) {
        /* the source keeps its writer close to the start of the file */
        warn_report("shared-file-spill: cannot create '%s'",
                    spill_reader.loaded_pos.path);
    }
    spill_reader.running = true;
    qemu_thread_create(&spill_reader.thread, "mig/spill/pages",
                       spill_pages_reader, NULL, QEMU_THREAD_JOINABLE);
    return true;
}

void spill_pages_incoming_stop(void)
{
    if (spill_reader.running) {
        qatomic_set(&spill_reader.stop, true);
        qemu_thread_join(&spill_reader.thread);
        spill_reader.running = false;
    }
    if (spill_reader.seq.seq) {
        spill_seq_destroy(&spill_reader.seq);
        qemu_mutex_destroy(&spill_reader.lock);
    }
    if (spill_reader.fd >= 0) {
        close(spill_reader.fd);
        spill_reader.fd = -1;
    }
    spill_pos_close(&spill_reader.loaded_pos);
    g_clear_pointer(&spill_reader.bounce, g_free);
    g_clear_pointer(&spill_reader.buf, g_free);
    spill_reader.buf_size = 0;
    spill_reader.win_len = 0;
}

/*
 * Destination, from the stream: the source's pages file ends at @end.
 * Wait until the reader has loaded all of it.
 */
static bool spill_pages_wait(uint64_t end, Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint64_t last = qatomic_read_u64(&spill_reader.pos);

    if (!end) {
        return true;            /* the source wrote no pages */
    }
    if (!spill_reader.running) {
        error_setg(errp, "shared-file-spill: pages in the file, but no "
                   "reader");
        return false;
    }
    for (;;) {
        uint64_t pos = qatomic_read_u64(&spill_reader.pos);

        if (pos >= end) {
            break;
        }
        if (qatomic_load_acquire(&spill_reader.done)) {
            break;
        }
        if (pos != last) {
            last = pos;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        }
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since > SPILL_STALL_MS) {
            error_setg(errp, "shared-file-spill: the pages file stopped at "
                       "%" PRIu64 " of %" PRIu64 " bytes", pos, end);
            return false;
        }
        if (qemu_in_coroutine()) {
            qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, SCALE_MS);
        } else {
            g_usleep(1000);
        }
    }
    /* the reader stops at the end the source gave, not past it */
    qatomic_set(&spill_reader.stop, true);
    qemu_thread_join(&spill_reader.thread);
    spill_reader.running = false;
    if (spill_reader.err && qatomic_read_u64(&spill_reader.pos) < end) {
        error_setg(errp, "%s", spill_reader.err);
        return false;
    }
    /*
     * Past @end the reader may have loaded whole records of a write that
     * failed in its middle: their pages went dirty again at the source,
     * and newer copies followed.
     */
    if (qatomic_read_u64(&spill_reader.pos) < end) {
        error_setg(errp, "shared-file-spill: the pages file has a record "
                   "across its end (%" PRIu64 ")", end);
        return false;
    }
    trace_spill_pages_loaded(stat64_get(&spill_state.pages),
                             stat64_get(&spill_state.stale_pages), end);
    return true;
}

static bool spill_marker_needed(void *opaque)
{
    return spill_pages_enabled();
}

static bool spill_marker_pre_save(void *opaque, Error **errp)
{
    if (spill_writer.running) {
        /* its pages would be neither in the file's end nor re-sent */
        error_setg(errp, "shared-file-spill: the pages writer still runs");
        return false;
    }
    return true;
}

static bool spill_marker_post_load(void *opaque, int version_id,
                                   Error **errp)
{
    spill_reader.marker = true;
    return spill_pages_wait(spill_marker.end, errp);
}

/*
 * Sent with the devices, after the RAM's last pass: where the pages
 * file ends.  The destination starts no guest before it loaded them.
 */
static const VMStateDescription vmstate_spill_marker = {
    .name = "shared-file-spill",
    .version_id = 1,
    .minimum_version_id = 1,
    /* before any device, whose post_load may read guest RAM */
    .priority = MIG_PRI_MAX,
    .needed = spill_marker_needed,
    .pre_save_errp = spill_marker_pre_save,
    .post_load_errp = spill_marker_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(end, SpillMarker),
        VMSTATE_END_OF_LIST()
    },
};

void spill_pages_init(void)
{
    qemu_mutex_init(&spill_seq_lock);
    vmstate_register(NULL, 0, &vmstate_spill_marker, &spill_marker);
}

/* Source: a new pages file beside the spill file @path, header @h */
bool spill_pages_prepare(const char *path, const SpillHeader *h,
                         Error **errp)
{
    g_autofree char *pages = g_strconcat(path, SPILL_PAGES_SUFFIX, NULL);

    spill_seq = 0;
    spill_marker.end = 0;
    spill_writer.fd = spill_create(pages, h, errp);
    if (spill_writer.fd < 0) {
        return false;
    }
    spill_pos_init(&spill_writer.loaded_pos, path, SPILL_LOADED_SUFFIX,
                   SPILL_LOADED_MAGIC, 1);
    spill_writer.loaded = 0;
    return true;
}

/* Source: the pages file, once the writer stopped */
void spill_pages_cleanup_outgoing(void)
{
    assert(!spill_writer.running);
    if (spill_writer.fd >= 0) {
        close(spill_writer.fd);
        spill_writer.fd = -1;
    }
    g_clear_pointer(&spill_writer.buf, g_free);
}

uint64_t spill_next_seq(void)
{
    uint64_t seq;

    /* a lock, not a 64-bit atomic, which not every host has */
    qemu_mutex_lock(&spill_seq_lock);
    seq = ++spill_seq;
    qemu_mutex_unlock(&spill_seq_lock);
    return seq;
}

static int spill_pages_block(RAMBlock *rb)
{
    for (uint32_t i = 0; i < spill_writer.nblocks; i++) {
        if (spill_writer.blocks[i] == rb) {
            return i;
        }
    }
    return -1;
}

/* Source: BLOCK records for every block the migration sends */
static int spill_pages_write_blocks(void)
{
    RAMBlock *rb;
    int err;

    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH_NOT_IGNORED(rb) {
            size_t idlen = strlen(rb->idstr);
            uint8_t payload[8 + sizeof(rb->idstr)];
            uint32_t len = 8 + idlen;

            if (spill_writer.nblocks == SPILL_MAX_BLOCKS) {
                return E2BIG;
            }
            stq_le_p(payload, rb->used_length);
            memcpy(payload + 8, rb->idstr, idlen);
            spill_record_encode(spill_writer.buf, SPILL_REC_BLOCK,
                                spill_writer.nblocks, spill_next_seq(), 0,
                                payload, len);
            err = spill_pwrite_all(spill_writer.fd, spill_writer.buf,
                                   spill_record_size(len), spill_writer.pos);
            if (err) {
                return err;
            }
            spill_writer.pos += spill_record_size(len);
            spill_writer.blocks[spill_writer.nblocks++] = rb;
        }
    }
    return 0;
}

/*
 * Source: make what the pages file holds visible to the destination's
 * host.  On failure the pages written since the last sync go dirty
 * again, and the file's end is the last sync's: they may never reach
 * the destination's host.
 */
static int spill_pages_sync(void)
{
    if (qemu_fdatasync(spill_writer.fd) < 0) {
        int err = errno;

        ram_spill_unclaim((SpillClaim *)spill_writer.unsynced->data,
                          spill_writer.unsynced->len);
        g_array_set_size(spill_writer.unsynced, 0);
        spill_writer.pos = spill_writer.synced_pos;
        return err;
    }
    g_array_set_size(spill_writer.unsynced, 0);
    spill_writer.synced_pos = spill_writer.pos;
    return 0;
}

/* Source: how far the destination's reader has loaded the pages file */
static uint64_t spill_pages_loaded(void)
{
    uint64_t loaded;

    if (spill_pos_read(&spill_writer.loaded_pos, spill_state.out_uuid,
                       &loaded)) {
        /* it only holds the writer back: no more than was written */
        spill_writer.loaded = MAX(spill_writer.loaded,
                                  MIN(loaded, spill_writer.pos));
    }
    return spill_writer.loaded;
}

/*
 * Source, the writer stopped: let the destination's reader load the rest
 * of the file while the guest still runs, as long as it makes progress.
 * What it has not loaded then it loads with the guest paused.
 */
static void spill_pages_wait_loaded(uint64_t end)
{
    MigrationState *s = migrate_get_current();
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint64_t last = spill_pages_loaded();

    while (last < end &&
           qatomic_read(&s->state) == MIGRATION_STATUS_ACTIVE &&
           qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since <
           SPILL_LOADED_WAIT_MS) {
        g_usleep(SPILL_PAGES_IDLE_US);
        if (spill_pages_loaded() != last) {
            last = spill_writer.loaded;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        }
    }
    trace_spill_pages_loaded_wait(last, end);
}

static void *spill_pages_thread(void *opaque)
{
    size_t page = qemu_target_page_size();
    SpillClaim claims[SPILL_PAGES_BATCH];
    int err;

    rcu_register_thread();
    err = spill_pages_write_blocks();
    if (!err) {
        err = spill_pages_sync();
    }
    while (!err && !qatomic_read(&spill_writer.stop)) {
        uint64_t size = 0;
        int n, i;

        if (spill_writer.pos > MAX(spill_writer.loaded, SPILL_HEADER_SIZE) +
                               SPILL_PAGES_LEAD &&
            spill_writer.pos > MAX(spill_pages_loaded(), SPILL_HEADER_SIZE) +
                               SPILL_PAGES_LEAD) {
            /* the destination's reader is behind: the network's turn */
            g_usleep(SPILL_PAGES_IDLE_US);
            continue;
        }

        WITH_RCU_READ_LOCK_GUARD() {
            n = ram_spill_claim(claims, SPILL_PAGES_BATCH);
            for (i = 0; i < n; i++) {
                int b = spill_pages_block(claims[i].block);

                if (b < 0) {
                    /* a block that came after the start: the network's */
                    break;
                }
                /* the page is read here, after its number was taken */
                spill_record_encode(spill_writer.buf + size, SPILL_REC_PAGE, b,
                                    claims[i].seq, claims[i].offset,
                                    claims[i].block->host + claims[i].offset,
                                    page);
                size += spill_record_size(page);
            }
        }
        if (i < n) {
            ram_spill_unclaim(claims + i, n - i);
            n = i;
        }
        if (!n) {
            /* nothing to claim from the back now */
            g_usleep(SPILL_PAGES_IDLE_US);
            continue;
        }
        /* no RCU read lock across I/O */
        err = spill_pwrite_all(spill_writer.fd, spill_writer.buf, size,
                               spill_writer.pos);
        if (err) {
            /* the network sends them, and those not synced yet */
            ram_spill_unclaim(claims, n);
            ram_spill_unclaim((SpillClaim *)spill_writer.unsynced->data,
                              spill_writer.unsynced->len);
            g_array_set_size(spill_writer.unsynced, 0);
            spill_writer.pos = spill_writer.synced_pos;
            break;
        }
        g_array_append_vals(spill_writer.unsynced, claims, n);
        spill_writer.pos += size;
        stat64_add(&spill_state.file_bytes, size);
        stat64_add(&spill_state.records, n);
        stat64_add(&spill_state.pages, n);
        trace_spill_pages_write(n, spill_writer.pos);
        if (spill_writer.pos - spill_writer.synced_pos >= SPILL_PAGES_SYNC &&
            !qatomic_read(&spill_writer.stop)) {
            /* a little at a time, not all of it at the switchover */
            err = spill_pages_sync();
        }
    }
    if (err) {
        warn_report("shared-file-spill: cannot write the pages file (%s); "
                    "the network sends the pages", strerror(err));
        stat64_add(&spill_state.file_errors, 1);
        spill_writer.err = err;
        /* the file ends where the destination's host surely sees it */
        spill_writer.pos = spill_writer.synced_pos;
    }
    rcu_unregister_thread();
    return NULL;
}

/*
 * Has the writer not stopped yet?  Any thread may ask: a migration's
 * state is FAILED before its thread stopped the writer, and a new
 * migrate may come in between.
 */
bool spill_pages_running(void)
{
    return qatomic_load_acquire(&spill_writer.running);
}

void spill_pages_start(void)
{
    if (spill_writer.fd < 0 || spill_writer.running) {
        return;
    }
    spill_writer.pos = SPILL_HEADER_SIZE;
    spill_writer.synced_pos = SPILL_HEADER_SIZE;
    spill_writer.err = 0;
    spill_writer.nblocks = 0;
    if (!spill_writer.unsynced) {
        spill_writer.unsynced = g_array_new(false, false, sizeof(SpillClaim));
    }
    g_array_set_size(spill_writer.unsynced, 0);
    qatomic_set(&spill_writer.stop, false);
    if (!spill_writer.buf) {
        spill_writer.buf = g_malloc(SPILL_PAGES_BATCH *
                                    spill_record_size(qemu_target_page_size()) +
                                    spill_record_size(8 + 256));
    }
    qatomic_set(&spill_writer.running, true);
    qemu_thread_create(&spill_writer.thread, "mig/spill/pages",
                       spill_pages_thread, NULL, QEMU_THREAD_JOINABLE);
}

void spill_pages_stop(bool sync)
{
    if (!spill_writer.running) {
        return;
    }
    qatomic_set(&spill_writer.stop, true);
    qemu_thread_join(&spill_writer.thread);
    /*
     * The pages in the file are no longer dirty at the source.  Those the
     * destination's host may not see (a failed sync) go dirty again, and
     * the last pass sends them.  Without @sync the migration is over.
     */
    if (sync && !spill_writer.err) {
        int err = spill_pages_sync();

        if (err) {
            warn_report("shared-file-spill: cannot sync the pages file "
                        "(%s); the network sends its last pages",
                        strerror(err));
            stat64_add(&spill_state.file_errors, 1);
        }
    }
    spill_marker.end = spill_writer.pos;
    trace_spill_pages_stop(stat64_get(&spill_state.pages), spill_marker.end);
    close(spill_writer.fd);
    spill_writer.fd = -1;
    if (sync) {
        spill_pages_wait_loaded(spill_marker.end);
    }
    spill_pos_close(&spill_writer.loaded_pos);
    /* last: spill_pages_running() says that all of the above is done */
    qatomic_store_release(&spill_writer.running, false);
}
