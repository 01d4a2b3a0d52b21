/*
 * shared-file-spill: the migration stream also through a shared file
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The source's main channel is wrapped in a QIOChannelSpill that writes
 * every byte of the migration stream both to the network and, as
 * checksummed STREAM records (spill-format.h), to the spill file on
 * storage both hosts reach.  When the network breaks, the source goes on
 * through the file alone, and nothing else in the migration notices.
 *
 * The destination's main channel is wrapped the same way: it reads the
 * network, and when the network breaks it reads on from the spill file,
 * from the same byte of the stream, waiting for the source to write it.
 * The loader sees one unbroken stream.  A file that is corrupt, that the
 * source abandoned (ABORT record) or that stops growing fails the
 * migration, and nothing of it is used.
 *
 * Without the network the source cannot tell a broken network from a
 * dead destination.  So once it has failed over, it goes on only while
 * the destination acknowledges, through a second file (spill-file
 * ".ack"), the stream bytes it has read from the spill file: it writes
 * at most SPILL_ACK_WINDOW bytes ahead of the acknowledged ones, and the
 * migration completes only once the destination has read the whole
 * stream.  Without an acknowledgement for SPILL_ACK_TIMEOUT_MS the
 * migration fails and the guest runs on at the source.
 *
 * END is the commit: the source writes it only once it has decided that
 * the migration succeeded, and a destination that read from the file
 * starts the guest only once it has read END; ABORT, or no END for
 * SPILL_COMMIT_TIMEOUT_MS, fails it.  So the two never both run the
 * guest.
 *
 * The file is written from the migration thread as the stream is
 * flushed, so the storage must keep up with the network.
 *
 * Beside it, the pages datapath (below) sends dirty pages through a
 * second file, so that the network has fewer to send; see
 * docs/devel/migration/shared-file-spill.rst.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/error-report.h"
#include "qemu/guest-random.h"
#include "qemu/iov.h"
#include "qemu/stats64.h"
#include "qemu/timer.h"
#include "qemu/coroutine.h"
#include "qemu/main-loop.h"
#include "block/aio.h"
#include "qapi/error.h"
#include "qom/object.h"
#include "io/channel.h"
#include "exec/target_page.h"
#include "system/ramblock.h"
#include "exec/ramlist.h"
#include "qemu/rcu_queue.h"
#include "qemu/rcu.h"
#include "qemu/thread.h"
#include "qemu/cutils.h"
#include "migration/vmstate.h"
#include "migration.h"
#include "qemu-file.h"
#include "ram.h"
#include "options.h"
#include "spill-format.h"
#include "spill.h"
#include "disk-backed.h"
#include "trace.h"

/* A destination waits this long for the file to grow before it fails */
#define SPILL_STALL_MS          (30 * 1000)
/* (a record that does not check out: SPILL_TORN_MS, spill-format.h) */
#define SPILL_POLL_NS           (10 * SCALE_MS)
/*
 * A reader of the stream or of the return path waits this long for the
 * file to grow: in postcopy, a vCPU waits for the page it faulted on.
 */
#define SPILL_READ_POLL_NS      (1 * SCALE_MS)
/* A source without the network waits this long for the destination */
#define SPILL_ACK_TIMEOUT_MS    (30 * 1000)
/* A destination that read from the file waits this long for END */
#define SPILL_COMMIT_TIMEOUT_MS (120 * 1000)
#define SPILL_ACK_WINDOW        (64 * 1024 * 1024)
/* The acknowledgement file: spill_pos_encode(), SPILL_ACK_MAGIC */
/* A destination waiting for the file looks this often whether it is gone */
#define SPILL_GONE_CHECK_MS     100
/* A destination scanning the spill file says so this often */
#define SPILL_SCAN_ACK_MS       100

#define TYPE_QIO_CHANNEL_SPILL "qio-channel-spill"
OBJECT_DECLARE_SIMPLE_TYPE(QIOChannelSpill, QIO_CHANNEL_SPILL)

struct QIOChannelSpill {
    QIOChannel parent;
    QIOChannel *net;
    int fd;                     /* the spill file, -1 once given up */
    /*
     * The migration stream: the source writes, the destination reads.
     * Beside it (@aux), its return path: the destination writes, the
     * source reads, through spill-file + ".rp"; and postcopy's preempt
     * channel: the source writes, the destination reads, through
     * spill-file + ".preempt".
     */
    bool writer;
    bool aux;
    bool incoming;              /* the destination's */
    const char *what;           /* for messages */
    bool net_ok;                /* atomic: the network still carries it */
    bool shutdown;              /* atomic; cancelled: fail, no failover */
    bool committed;             /* source: END written */
    char *path;                 /* the spill file */
    dev_t dev;                  /* ... and the file it was, to remove it */
    ino_t ino;
    uint64_t stream_pos;        /* stream bytes written or read */
    uint64_t seq;               /* source: records written */
    uint64_t file_pos;          /* source: where the next record goes */
    uint64_t synced_pos;        /* source: file_pos at the last sync */
    uint8_t *buf;               /* a record */
    size_t buf_size;
    uint8_t uuid[SPILL_UUID_LEN];
    int ack_fd;                 /* the acknowledgement file, -1: none */
    int64_t acked_at;           /* destination: its last acknowledgement */
    char *ack_path;
    /* destination */
    SpillScan scan;
    uint64_t cur_off, cur_len;  /* the STREAM record in buf */
};

static struct {
    int out_fd;                 /* source, from migrate to the channel */
    char *out_path;
    uint8_t out_uuid[SPILL_UUID_LEN];
    dev_t out_dev;
    ino_t out_ino;
    uint8_t in_uuid[SPILL_UUID_LEN];    /* the file the destination opened */
    Stat64 file_bytes;
    Stat64 records;
    Stat64 failovers;
    Stat64 file_errors;
    Stat64 pages;
    Stat64 stale_pages;
    /* source: END is in the file (atomic) */
    bool end_written;
    /* source: the destination said in SHUT that it failed (atomic) */
    bool shut_error;
    /* destination, postcopy */
    bool via_file;              /* atomic: a channel failed over */
    Stat64 pc_requests;
    Stat64 pc_pages;
    Stat64 pc_wait_ns;
    QemuMutex pc_lock;
    GHashTable *pc_asked;       /* host page -> when it was requested */
} sp = { .out_fd = -1 };

/*
 * The page datapath.  The source's writer thread claims dirty pages
 * from the back of RAM (ram_spill_claim()) while the migration thread
 * sends them from the front, and writes them as PAGE records to
 * spill-file + ".pages"; the destination's reader thread loads them as
 * the file grows.  Every copy of a page, by either path, carries a
 * sequence number from spill_seq, and the destination loads a copy only
 * if it is newer than the one it holds (SpillSeqTable).
 */
#define SPILL_PAGES_BATCH       64
#define SPILL_PAGES_SUFFIX      ".pages"
/* The return path's file, which the destination writes */
#define SPILL_RP_SUFFIX         ".rp"
/* The preempt channel's file, which the source writes */
#define SPILL_PREEMPT_SUFFIX    ".preempt"
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
#define SPILL_LOADED_SUFFIX     ".loaded"
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
    char *loaded_path;          /* the destination's reader's position */
    int loaded_fd;
    uint64_t loaded;            /* the last position read from it */
} pw = { .fd = -1, .loaded_fd = -1 };

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
    char *loaded_path;          /* where the reader says how far it is */
    int loaded_fd;
    uint64_t published;         /* the position it said last */
} pr = { .fd = -1, .loaded_fd = -1 };

/* the marker: where the source's pages file ends */
typedef struct SpillMarker {
    uint64_t end;
} SpillMarker;

static SpillMarker spill_marker;

bool spill_check_params(Error **errp)
{
    const char *path = migrate_spill_file();

    if (!path || !*path) {
        error_setg(errp, "Capability 'shared-file-spill' needs parameter "
                   "'spill-file'");
        return false;
    }
    return true;
}

static void spill_reset_stats(void)
{
    stat64_set(&sp.file_bytes, 0);
    stat64_set(&sp.records, 0);
    stat64_set(&sp.failovers, 0);
    stat64_set(&sp.file_errors, 0);
    stat64_set(&sp.pages, 0);
    stat64_set(&sp.stale_pages, 0);
    stat64_set(&sp.pc_requests, 0);
    stat64_set(&sp.pc_pages, 0);
    stat64_set(&sp.pc_wait_ns, 0);
    qatomic_set(&sp.via_file, false);
    WITH_QEMU_LOCK_GUARD(&sp.pc_lock) {
        if (sp.pc_asked) {
            g_hash_table_remove_all(sp.pc_asked);
        }
    }
}

/* The file @fd is open on (ino 0: none) */
static void spill_file_id(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        *dev = 0;
        *ino = 0;
        return;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
}

/* A new file at @path with a spill header carrying @h */
static int spill_create(const char *path, const SpillHeader *h, Error **errp)
{
    uint8_t hdr[SPILL_HEADER_SIZE];
    int fd;

    /* a new file, never the inode an earlier destination may still read */
    unlink(path);
    fd = qemu_create(path, O_WRONLY | O_EXCL | O_CLOEXEC, 0600, errp);
    if (fd < 0) {
        error_prepend(errp, "Parameter 'spill-file': ");
        return -1;
    }
    spill_header_encode(hdr, h);
    if (qemu_write_full(fd, hdr, sizeof(hdr)) != sizeof(hdr) ||
        qemu_fdatasync(fd) < 0) {
        error_setg_errno(errp, errno, "Parameter 'spill-file': cannot write "
                         "'%s'", path);
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

bool spill_prepare_outgoing(Error **errp)
{
    SpillHeader h = { .page_size = qemu_target_page_size() };
    g_autofree char *pages = NULL;
    g_autofree char *ack = NULL;
    g_autofree char *rp = NULL;
    const char *path;
    int fd;

    if (!spill_check_params(errp)) {
        return false;
    }
    path = migrate_spill_file();
    /* an earlier migrate that never connected */
    spill_cleanup_outgoing();
    spill_reset_stats();
    spill_seq = 0;
    spill_marker.end = 0;
    qatomic_set(&sp.end_written, false);
    qatomic_set(&sp.shut_error, false);
    qemu_guest_getrandom_nofail(h.uuid, sizeof(h.uuid));
    fd = spill_create(path, &h, errp);
    if (fd < 0) {
        return false;
    }
    pages = g_strconcat(path, SPILL_PAGES_SUFFIX, NULL);
    pw.fd = spill_create(pages, &h, errp);
    if (pw.fd < 0) {
        close(fd);
        unlink(path);
        return false;
    }
    memcpy(sp.out_uuid, h.uuid, sizeof(h.uuid));
    sp.out_fd = fd;
    spill_file_id(fd, &sp.out_dev, &sp.out_ino);
    g_free(sp.out_path);
    sp.out_path = g_strdup(path);
    /* an acknowledgement left by an earlier migration */
    ack = g_strdup_printf("%s.ack", path);
    unlink(ack);
    rp = g_strconcat(path, SPILL_RP_SUFFIX, NULL);
    unlink(rp);
    g_free(rp);
    rp = g_strconcat(path, SPILL_PREEMPT_SUFFIX, NULL);
    unlink(rp);
    g_free(pw.loaded_path);
    pw.loaded_path = g_strconcat(path, SPILL_LOADED_SUFFIX, NULL);
    unlink(pw.loaded_path);
    pw.loaded = 0;
    trace_spill_prepare(path);
    return true;
}

static void spill_buf_reserve(QIOChannelSpill *sc, size_t size)
{
    if (sc->buf_size < size) {
        g_free(sc->buf);
        sc->buf = g_malloc(size);
        sc->buf_size = size;
    }
}

/* Source: stop writing the file; the network alone carries on */
static void spill_give_up_file(QIOChannelSpill *sc, int err)
{
    warn_report("shared-file-spill: cannot write the spill file (%s); "
                "the migration goes on over the network alone",
                strerror(err));
    stat64_add(&sp.file_errors, 1);
    close(sc->fd);
    sc->fd = -1;
}

/* 0, or the errno of a write that failed (the file is then unchanged) */
static int spill_try_write_record(QIOChannelSpill *sc, SpillRecType type,
                                  const struct iovec *iov, size_t niov,
                                  size_t iov_off, uint32_t len)
{
    uint64_t size = spill_record_size(len);
    ssize_t done;

    spill_buf_reserve(sc, size);
    /* the payload first, then the record is sealed around it */
    iov_to_buf(iov, niov, iov_off, sc->buf + SPILL_REC_HEADER_SIZE, len);
    spill_record_encode(sc->buf, type, 0, ++sc->seq, sc->stream_pos + iov_off,
                        sc->buf + SPILL_REC_HEADER_SIZE, len);
    for (done = 0; done < size;) {
        ssize_t n = pwrite(sc->fd, sc->buf + done, size - done,
                           sc->file_pos + done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : ENOSPC;
        }
        done += n;
    }
    sc->file_pos += size;
    if (!sc->aux) {
        stat64_add(&sp.file_bytes, size);
        stat64_add(&sp.records, 1);
    }
    return 0;
}

static bool spill_write_record(QIOChannelSpill *sc, SpillRecType type,
                               const struct iovec *iov, size_t niov,
                               size_t iov_off, uint32_t len)
{
    int err = spill_try_write_record(sc, type, iov, niov, iov_off, len);

    if (err) {
        spill_give_up_file(sc, err);
    }
    return !err;
}

/*
 * Source: make what was written visible to the destination's host
 * (storage shared over the network may hold it back until then).
 */
static int spill_sync(QIOChannelSpill *sc, Error **errp)
{
    if (sc->fd < 0 || sc->synced_pos == sc->file_pos) {
        return 0;
    }
    if (qemu_fdatasync(sc->fd) < 0) {
        error_setg_errno(errp, errno, "shared-file-spill: cannot sync the "
                         "spill file");
        return -1;
    }
    sc->synced_pos = sc->file_pos;
    return 0;
}

/*
 * Source: the stream bytes the destination acknowledges, or 0, and into
 * @scanned how far it has scanned the spill file to find them
 */
static uint64_t spill_acked(QIOChannelSpill *sc, uint64_t *scanned)
{
    uint8_t buf[SPILL_ACK_SIZE];
    uint64_t v[2];
    ssize_t n;

    *scanned = 0;
    if (sc->ack_fd < 0) {
        sc->ack_fd = qemu_open_old(sc->ack_path, O_RDONLY | O_CLOEXEC);
        if (sc->ack_fd < 0) {
            return 0;
        }
    }
    n = pread(sc->ack_fd, buf, sizeof(buf), 0);
    if (n < 0 || !spill_pos_decode(buf, n, SPILL_ACK_MAGIC, sc->uuid, v, 2) ||
        v[0] > sc->stream_pos) {
        /*
         * Not (yet) this migration's, or more than was ever written:
         * such an acknowledgement must never let the source commit.
         */
        return 0;
    }
    *scanned = v[1];
    return v[0];
}

/*
 * Source without the network: wait until the destination has read all
 * but @window bytes of the stream written so far.
 */
static int spill_wait_acked(QIOChannelSpill *sc, uint64_t window,
                            Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint64_t scanned, last_scanned;
    uint64_t acked = spill_acked(sc, &scanned), last = acked;

    last_scanned = scanned;
    if (acked + window < sc->stream_pos && spill_sync(sc, errp) < 0) {
        return -1;
    }
    while (acked + window < sc->stream_pos) {
        if (qatomic_read(&sc->shutdown)) {
            error_setg(errp, "shared-file-spill: cancelled");
            return -1;
        }
        if (acked != last || scanned != last_scanned) {
            /* reading, or still scanning a long file for its place */
            last = acked;
            last_scanned = scanned;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        }
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since >
            SPILL_ACK_TIMEOUT_MS) {
            error_setg(errp, "shared-file-spill: the network is lost and "
                       "the destination has not read the spill file for "
                       "%d s (%" PRIu64 " of %" PRIu64 " bytes read)",
                       SPILL_ACK_TIMEOUT_MS / 1000, acked, sc->stream_pos);
            return -1;
        }
        g_usleep(SPILL_POLL_NS / SCALE_US);
        acked = spill_acked(sc, &scanned);
    }
    return 0;
}

bool spill_catch_up(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return true;
    }
    sc = QIO_CHANNEL_SPILL(ioc);
    if (!sc->writer || sc->aux || sc->net_ok) {
        return true;
    }
    /* what is still to read then is only what the last stage sends */
    return spill_wait_acked(sc, 0, errp) == 0;
}

bool spill_committed(void)
{
    return qatomic_read(&sp.end_written) && !qatomic_read(&sp.shut_error);
}

void spill_note_shut(bool error)
{
    if (error) {
        qatomic_set(&sp.shut_error, true);
    }
}

bool spill_commit(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return true;
    }
    sc = QIO_CHANNEL_SPILL(ioc);
    if (!sc->writer || sc->aux) {
        return true;
    }
    if (!sc->net_ok && spill_wait_acked(sc, 0, errp) < 0) {
        return false;
    }
    if (sc->net_ok) {
        /*
         * A destination that took the whole stream from the network may
         * have removed the file already: END is then of no use to anyone,
         * and failing to write it is no error.
         */
        if (sc->fd >= 0 &&
            !spill_try_write_record(sc, SPILL_REC_END, NULL, 0, 0, 0)) {
            /*
             * Committed all the same: a destination whose connection
             * broke after the source's last write may read the rest, and
             * END, from the file.
             */
            sc->committed = true;
            qatomic_set(&sp.end_written, true);
            trace_spill_committed(sc->stream_pos, sc->file_pos);
        }
    } else {
        /* without the network the destination starts on this alone */
        if (sc->fd < 0 ||
            !spill_write_record(sc, SPILL_REC_END, NULL, 0, 0, 0)) {
            error_setg(errp, "shared-file-spill: cannot write the end of "
                       "the spill file");
            return false;
        }
        /*
         * END is in the file: a destination may read it (from a cache,
         * or once the storage catches up) and start the guest, even if
         * the sync below fails.  From here on the source must never run
         * the guest again (spill_committed()); nothing may follow END.
         */
        sc->committed = true;
        qatomic_set(&sp.end_written, true);
        trace_spill_committed(sc->stream_pos, sc->file_pos);
        if (spill_sync(sc, errp) < 0) {
            return false;
        }
    }
    trace_spill_close(true, sc->stream_pos, sc->file_pos);
    return true;
}

/* The network is lost for @sc: the file alone from now on */
static void spill_failed_over(QIOChannelSpill *sc)
{
    trace_spill_failover(!sc->incoming, sc->what, sc->stream_pos);
    if (!sc->aux) {
        stat64_add(&sp.failovers, 1);
    }
    if (sc->incoming) {
        qatomic_set(&sp.via_file, true);
    }
    qatomic_set(&sc->net_ok, false);
}

static ssize_t spill_writev(QIOChannel *ioc, const struct iovec *iov,
                            size_t niov, int *fds, size_t nfds, int flags,
                            Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);
    size_t total = iov_size(iov, niov);

    if (!sc->writer || nfds) {
        error_setg(errp, "shared-file-spill: unexpected write");
        return -1;
    }
    if (qatomic_read(&sc->shutdown)) {
        error_setg(errp, "shared-file-spill: cancelled");
        return -1;
    }
    for (size_t off = 0; sc->fd >= 0 && off < total;
         off += SPILL_MAX_STREAM) {
        spill_write_record(sc, SPILL_REC_STREAM, iov, niov, off,
                           MIN(total - off, SPILL_MAX_STREAM));
    }
    if (sc->net_ok) {
        Error *err = NULL;

        if (qio_channel_writev_all(sc->net, iov, niov, &err) < 0) {
            if (sc->fd < 0 || qatomic_read(&sc->shutdown)) {
                error_propagate(errp, err);
                return -1;
            }
            warn_report("shared-file-spill: the network connection broke "
                        "(%s); the %s goes on through the spill file",
                        error_get_pretty(err), sc->what);
            error_free(err);
            spill_failed_over(sc);
            /* a half-broken connection: make the destination fail over */
            if (qio_channel_has_feature(sc->net,
                                        QIO_CHANNEL_FEATURE_SHUTDOWN)) {
                qio_channel_shutdown(sc->net, QIO_CHANNEL_SHUTDOWN_BOTH,
                                     NULL);
            }
            /* the destination reads on from here */
            if (spill_sync(sc, errp) < 0) {
                return -1;
            }
        }
    } else if (sc->fd < 0) {
        error_setg(errp, "shared-file-spill: both the network and the spill "
                   "file failed");
        return -1;
    }
    sc->stream_pos += total;
    if (sc->aux) {
        /*
         * Page requests and the pages asked for are few and urgent: the
         * other side must see them now.
         */
        if (!sc->net_ok && sc->fd >= 0 && spill_sync(sc, errp) < 0) {
            return -1;
        }
        return total;
    }
    /* not with the BQL held: spill_commit() waits for the rest */
    if (!sc->net_ok && !bql_locked() &&
        spill_wait_acked(sc, SPILL_ACK_WINDOW, errp) < 0) {
        return -1;
    }
    return total;
}

/* Destination: tell the source how far the stream has been read */
static void spill_ack(QIOChannelSpill *sc)
{
    uint8_t buf[SPILL_ACK_SIZE];

    if (sc->ack_fd < 0) {
        sc->ack_fd = qemu_create(sc->ack_path, O_WRONLY | O_TRUNC | O_CLOEXEC,
                                 0600, NULL);
        if (sc->ack_fd < 0) {
            return;             /* the source will give up */
        }
    }
    spill_pos_encode(buf, SPILL_ACK_MAGIC, sc->uuid,
                     (uint64_t[]) { sc->stream_pos, sc->scan.pos }, 2);
    sc->acked_at = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    if (pwrite(sc->ack_fd, buf, sizeof(buf), 0) != sizeof(buf)) {
        warn_report_once("shared-file-spill: cannot write '%s'",
                         sc->ack_path);
    }
}

/*
 * Open the file of a channel beside the stream, which the other side
 * writes.  1: open, 0: not there yet, -1: not this migration's.
 */
static int spill_aux_open(QIOChannelSpill *sc, Error **errp)
{
    uint8_t hdr[SPILL_HEADER_SIZE];
    const char *why;
    SpillHeader h;
    int fd;

    fd = qemu_open_old(sc->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr)) {
        close(fd);              /* its header is still being written */
        return 0;
    }
    if (!spill_header_decode(hdr, &h, &why) ||
        memcmp(h.uuid, sc->uuid, sizeof(h.uuid))) {
        close(fd);
        error_setg(errp, "shared-file-spill: '%s' is not the %s file of "
                   "this migration", sc->path, sc->what);
        return -1;
    }
    sc->fd = fd;
    spill_file_id(fd, &sc->dev, &sc->ino);
    spill_scan_init(&sc->scan, &h);
    trace_spill_aux_open(sc->path);
    return 1;
}

/* The next record of the file into sc->buf */
static SpillScanResult spill_read_record(QIOChannelSpill *sc, SpillRecord *rec,
                                         const char **why)
{
    uint64_t ask = SPILL_REC_HEADER_SIZE, want = 0;
    bool was_ended = sc->scan.ended;
    SpillScanResult r;

    for (;;) {
        ssize_t n;

        spill_buf_reserve(sc, ask);
        n = pread(sc->fd, sc->buf, ask, sc->scan.pos);
        if (n < 0) {
            *why = strerror(errno);
            return SPILL_SCAN_CORRUPT;
        }
        r = spill_scan_next(&sc->scan, sc->buf, n, rec, &want, why);
        if (r == SPILL_SCAN_END && !was_ended) {
            /*
             * Nothing may follow END: look past it, and the scanner
             * refuses a file with anything there.
             */
            was_ended = true;
            ask = SPILL_REC_HEADER_SIZE;
            continue;
        }
        if (r != SPILL_SCAN_MORE || (uint64_t)n < ask || want <= ask) {
            /* done, or the record is not all there yet */
            return r;
        }
        ask = want;             /* the header is there: read the record */
    }
}

/*
 * Destination: does the spill file's path no longer name the file held
 * open?  A source removes the file only when it gives the migration up
 * before END (spill_close()); committed, it leaves the file to the
 * destination.
 */
static bool spill_removed(QIOChannelSpill *sc)
{
    struct stat st;

    if (stat(sc->path, &st) < 0) {
        return errno == ENOENT;
    }
    return sc->ino && (st.st_dev != sc->dev || st.st_ino != sc->ino);
}

typedef struct SpillGone {
    int64_t checked_at;
    int64_t since;              /* removed since, or 0 */
} SpillGone;

/*
 * Destination, waiting for the file to grow: has its path named another
 * file, or none, for SPILL_TORN_MS?  Then no END can come: a committed
 * source's END is in the file held open, and is read well within that
 * time even if a cleanup or a later migration replaced the path.  Looks
 * at the path every SPILL_GONE_CHECK_MS at most.
 */
static bool spill_gone(QIOChannelSpill *sc, SpillGone *g, int64_t now)
{
    if (now - g->checked_at >= SPILL_GONE_CHECK_MS) {
        g->checked_at = now;
        if (!spill_removed(sc)) {
            g->since = 0;
        } else if (!g->since) {
            g->since = now;
            trace_spill_gone(sc->path);
        }
    }
    return g->since && now - g->since > SPILL_TORN_MS;
}

static ssize_t spill_read_file(QIOChannelSpill *sc, const struct iovec *iov,
                               size_t niov, Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    SpillTorn torn = { 0 };
    SpillGone gone = { 0 };
    bool committed = false;

    for (;;) {
        SpillRecord rec;
        SpillScanResult res;
        const char *why = NULL;

        if (sc->stream_pos >= sc->cur_off &&
            sc->stream_pos < sc->cur_off + sc->cur_len) {
            size_t n = iov_from_buf(iov, niov, 0, sc->buf +
                                    SPILL_REC_HEADER_SIZE + sc->stream_pos -
                                    sc->cur_off,
                                    sc->cur_off + sc->cur_len -
                                    sc->stream_pos);

            sc->stream_pos += n;
            if (!sc->aux) {
                stat64_add(&sp.file_bytes, n);
                spill_ack(sc);
            }
            return n;
        }
        sc->cur_len = 0;
        if (sc->fd < 0) {
            /* beside the stream: the other side may not have created it */
            int opened = spill_aux_open(sc, errp);

            if (opened < 0) {
                return -1;
            }
            res = opened ? spill_read_record(sc, &rec, &why) :
                           SPILL_SCAN_MORE;
        } else {
            res = spill_read_record(sc, &rec, &why);
        }
        switch (res) {
        case SPILL_SCAN_RECORD:
            if (rec.type != SPILL_REC_STREAM) {
                error_setg(errp, "shared-file-spill: unexpected record type "
                           "%d in the spill file", rec.type);
                return -1;
            }
            sc->cur_off = rec.offset;
            sc->cur_len = rec.len;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
            spill_torn_give_up(&torn, res, since);
            if (!sc->aux) {
                stat64_add(&sp.records, 1);
                /*
                 * Scanning a long file up to where the network stopped
                 * takes time, which the source must not take for a dead
                 * destination.
                 */
                if (since - sc->acked_at >= SPILL_SCAN_ACK_MS) {
                    trace_spill_scan_ack(sc->scan.pos, sc->stream_pos);
                    spill_ack(sc);
                }
            }
            if (qatomic_read(&sc->shutdown)) {
                error_setg(errp, "shared-file-spill: cancelled");
                return -1;
            }
            if (qemu_in_coroutine() && !(rec.seq % 64)) {
                /* scanning a long file: let the main loop run */
                aio_co_schedule(qemu_get_current_aio_context(),
                                qemu_coroutine_self());
                qemu_coroutine_yield();
            }
            continue;
        case SPILL_SCAN_END:
            if (sc->stream_pos < sc->scan.stream_end) {
                error_setg(errp, "shared-file-spill: the spill file ends "
                           "before the stream does");
                return -1;
            }
            return 0;
        case SPILL_SCAN_ABORT:
            error_setg(errp, "shared-file-spill: the source abandoned the "
                       "migration");
            return -1;
        case SPILL_SCAN_CORRUPT:
            /* only a record that stays bad is corrupt (spill-format.h) */
            if (spill_torn_give_up(&torn, res,
                                   qemu_clock_get_ms(QEMU_CLOCK_REALTIME)) ||
                qatomic_read(&sc->shutdown)) {
                error_setg(errp, "shared-file-spill: the spill file is "
                           "corrupt at offset %" PRIu64 ": %s; nothing more "
                           "of it is used", sc->scan.pos, why);
                return -1;
            }
            /* fall through */
        case SPILL_SCAN_MORE:
            if (qatomic_read(&sc->shutdown)) {
                if (sc->aux) {
                    /* shut down to end its thread, as a socket would be */
                    return 0;
                }
                error_setg(errp, "shared-file-spill: cancelled");
                return -1;
            }
            /*
             * A channel beside the stream may be silent for long; but one
             * whose file never appears (the other side could not create
             * it) is lost with the network, and once the source has
             * committed, the destination's SHUT comes soon or never.
             */
            if (!committed && !sc->incoming &&
                qatomic_read(&sp.end_written)) {
                committed = true;
                since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
            }
            if (sc->incoming && !sc->aux && sc->fd >= 0 &&
                spill_gone(sc, &gone, qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                error_setg(errp, "shared-file-spill: the source removed the "
                           "spill file before its end: it gave the "
                           "migration up");
                return -1;
            }
            if ((!sc->aux || sc->fd < 0 || committed) &&
                qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since >
                SPILL_STALL_MS) {
                error_setg(errp, "shared-file-spill: the file of the %s did "
                           "not grow for %d s", sc->what,
                           SPILL_STALL_MS / 1000);
                return -1;
            }
            /* the other side has not written it yet */
            if (qemu_in_coroutine()) {
                qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, SPILL_READ_POLL_NS);
            } else {
                g_usleep(SPILL_READ_POLL_NS / SCALE_US);
            }
            continue;
        }
    }
}

/* Destination: is the file still the one whose header we read? */
static bool spill_same_file(QIOChannelSpill *sc)
{
    uint8_t hdr[SPILL_HEADER_SIZE];
    const char *why;
    SpillHeader h;

    return pread(sc->fd, hdr, sizeof(hdr), 0) == sizeof(hdr) &&
           spill_header_decode(hdr, &h, &why) &&
           !memcmp(h.uuid, sc->uuid, sizeof(h.uuid));
}

static ssize_t spill_readv(QIOChannel *ioc, const struct iovec *iov,
                           size_t niov, int **fds, size_t *nfds, int flags,
                           Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);

    if (sc->writer) {
        error_setg(errp, "shared-file-spill: unexpected read");
        return -1;
    }
    if (sc->net_ok) {
        Error *err = NULL;
        ssize_t n = qio_channel_readv_full(sc->net, iov, niov, fds, nfds,
                                           flags, &err);

        if (n > 0) {
            sc->stream_pos += n;
            return n;
        }
        if (n == QIO_CHANNEL_ERR_BLOCK || qatomic_read(&sc->shutdown) ||
            (sc->fd < 0 && !sc->aux)) {
            error_propagate(errp, err);
            return n;
        }
        error_free(err);
        if (sc->fd >= 0 && !spill_same_file(sc)) {
            error_setg(errp, "shared-file-spill: the network connection "
                       "broke, and the spill file is no longer this "
                       "migration's");
            return -1;
        }
        warn_report("shared-file-spill: the network connection broke after "
                    "%" PRIu64 " bytes of the %s; reading on from the spill "
                    "file", sc->stream_pos, sc->what);
        spill_failed_over(sc);
    }
    return spill_read_file(sc, iov, niov, errp);
}

static int spill_set_blocking(QIOChannel *ioc, bool enabled, Error **errp)
{
    return qio_channel_set_blocking(QIO_CHANNEL_SPILL(ioc)->net, enabled,
                                    errp) ? 0 : -1;
}

static int spill_shutdown(QIOChannel *ioc, QIOChannelShutdown how,
                          Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);

    qatomic_set(&sc->shutdown, true);
    /*
     * The flag stops the file; a connection that broke already (this
     * channel's or one sharing its socket) fails shutdown(2) with
     * ENOTCONN, which changes nothing.
     */
    if (qio_channel_has_feature(sc->net, QIO_CHANNEL_FEATURE_SHUTDOWN)) {
        qio_channel_shutdown(sc->net, how, NULL);
    }
    return 0;
}

/*
 * Remove the spill file, its pages, preempt and acknowledgement files
 * and, @with_rp, its return path's file, if @path is still the file
 * @dev/@ino (and not one a later migration created).
 */
static void spill_remove(const char *path, dev_t dev, ino_t ino,
                         bool with_rp)
{
    g_autofree char *ack = g_strdup_printf("%s.ack", path);
    g_autofree char *pages = g_strconcat(path, SPILL_PAGES_SUFFIX, NULL);
    g_autofree char *rp = g_strconcat(path, SPILL_RP_SUFFIX, NULL);
    g_autofree char *preempt = g_strconcat(path, SPILL_PREEMPT_SUFFIX, NULL);
    g_autofree char *loaded = g_strconcat(path, SPILL_LOADED_SUFFIX, NULL);
    struct stat b;

    if (!ino || stat(path, &b) < 0 || b.st_dev != dev || b.st_ino != ino) {
        return;
    }
    unlink(ack);
    unlink(pages);
    if (with_rp) {
        unlink(rp);
    }
    unlink(preempt);
    unlink(loaded);
    unlink(path);
    trace_spill_remove(path);
}

/*
 * Source, its return path read: remove the return path's file.  The
 * destination leaves it, since the source may need the SHUT in it after
 * the destination is done; removed only if it is this migration's.
 */
static void spill_remove_rp(QIOChannelSpill *sc)
{
    Error *err = NULL;
    struct stat b;

    if (sc->fd < 0 && spill_aux_open(sc, &err) <= 0) {
        error_free(err);
        return;
    }
    if (stat(sc->path, &b) == 0 && b.st_dev == sc->dev &&
        b.st_ino == sc->ino) {
        unlink(sc->path);
    }
}

static int spill_close(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);

    if (sc->ack_fd >= 0) {
        close(sc->ack_fd);
        sc->ack_fd = -1;
    }
    if (sc->fd >= 0) {
        if (sc->writer && !sc->aux && !sc->committed) {
            /* use nothing of it */
            spill_write_record(sc, SPILL_REC_ABORT, NULL, 0, 0, 0);
            trace_spill_close(false, sc->stream_pos, sc->file_pos);
            /*
             * A destination reading it holds it open and reads ABORT
             * (or loses it): it fails either way.  Committed, the file
             * is the destination's to remove, which may still need END.
             */
        }
        if (sc->fd >= 0) {
            close(sc->fd);
            sc->fd = -1;
        }
    }
    if (sc->writer && !sc->aux && !sc->committed) {
        /* also after the source gave the file up (no space left...) */
        spill_remove(sc->path, sc->dev, sc->ino, true);
    }
    if (sc->aux && !sc->writer && !sc->incoming) {
        spill_remove_rp(sc);
    }
    return qio_channel_close(sc->net, errp);
}

static GSource *spill_create_watch(QIOChannel *ioc, GIOCondition condition)
{
    return qio_channel_create_watch(QIO_CHANNEL_SPILL(ioc)->net, condition);
}

static void spill_set_aio_fd_handler(QIOChannel *ioc, AioContext *read_ctx,
                                     IOHandler *io_read,
                                     AioContext *write_ctx,
                                     IOHandler *io_write, void *opaque)
{
    QIOChannel *net = QIO_CHANNEL_SPILL(ioc)->net;

    /* the handlers restart this channel's coroutines: keep opaque */
    QIO_CHANNEL_GET_CLASS(net)->io_set_aio_fd_handler(net, read_ctx, io_read,
                                                      write_ctx, io_write,
                                                      opaque);
}

static void spill_finalize(Object *obj)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(obj);

    if (sc->fd >= 0) {
        close(sc->fd);
    }
    if (sc->ack_fd >= 0) {
        close(sc->ack_fd);
    }
    object_unref(OBJECT(sc->net));
    g_free(sc->path);
    g_free(sc->ack_path);
    g_free(sc->buf);
}

static void spill_class_init(ObjectClass *klass, const void *data)
{
    QIOChannelClass *ioc_klass = QIO_CHANNEL_CLASS(klass);

    ioc_klass->io_writev = spill_writev;
    ioc_klass->io_readv = spill_readv;
    ioc_klass->io_set_blocking = spill_set_blocking;
    ioc_klass->io_shutdown = spill_shutdown;
    ioc_klass->io_close = spill_close;
    ioc_klass->io_create_watch = spill_create_watch;
    ioc_klass->io_set_aio_fd_handler = spill_set_aio_fd_handler;
}

static const TypeInfo spill_info = {
    .parent = TYPE_QIO_CHANNEL,
    .name = TYPE_QIO_CHANNEL_SPILL,
    .instance_size = sizeof(QIOChannelSpill),
    .instance_finalize = spill_finalize,
    .class_init = spill_class_init,
};

static void spill_register_types(void)
{
    type_register_static(&spill_info);
}

type_init(spill_register_types);

static QIOChannelSpill *spill_new(QIOChannel *net, int fd, bool writer)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(object_new(TYPE_QIO_CHANNEL_SPILL));

    object_ref(OBJECT(net));
    sc->net = net;
    sc->fd = fd;
    sc->writer = writer;
    sc->incoming = !writer;
    sc->what = "migration stream";
    sc->net_ok = true;
    sc->ack_fd = -1;
    sc->path = g_strdup(writer && sp.out_path ? sp.out_path :
                        migrate_spill_file());
    spill_file_id(fd, &sc->dev, &sc->ino);
    sc->ack_path = g_strdup_printf("%s.ack", sc->path);
    /* forwarded to @net where it can; the wait loops see it anyway */
    qio_channel_set_feature(QIO_CHANNEL(sc), QIO_CHANNEL_FEATURE_SHUTDOWN);
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill");
    return sc;
}

QIOChannel *spill_wrap_outgoing(QIOChannel *net)
{
    QIOChannelSpill *sc = spill_new(net, sp.out_fd, true);

    sp.out_fd = -1;
    memcpy(sc->uuid, sp.out_uuid, sizeof(sc->uuid));
    sc->file_pos = SPILL_HEADER_SIZE;
    sc->synced_pos = sc->file_pos;      /* the header was synced */
    if (sc->fd < 0) {
        warn_report("shared-file-spill: no spill file; the network alone "
                    "carries the migration");
    }
    return QIO_CHANNEL(sc);
}

/* A channel beside the stream, over @net and the file @path (taken) */
static QIOChannelSpill *spill_new_aux(QIOChannel *net, int fd, bool writer,
                                      bool incoming, char *path,
                                      const uint8_t *uuid, const char *what)
{
    QIOChannelSpill *sc = spill_new(net, fd, writer);

    sc->aux = true;
    sc->incoming = incoming;
    sc->what = what;
    g_free(sc->path);
    sc->path = path;
    spill_file_id(fd, &sc->dev, &sc->ino);
    memcpy(sc->uuid, uuid, sizeof(sc->uuid));
    sc->file_pos = SPILL_HEADER_SIZE;
    sc->synced_pos = sc->file_pos;
    trace_spill_aux(sc->path, what, writer);
    return sc;
}

QIOChannel *spill_return_path(QIOChannel *ioc)
{
    QIOChannelSpill *main, *sc;
    g_autofree char *path = NULL;
    Error *err = NULL;
    int fd = -1;

    if (!ioc) {
        return NULL;
    }

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        object_ref(OBJECT(ioc));
        return ioc;
    }
    main = QIO_CHANNEL_SPILL(ioc);
    if (main->aux || (main->writer && main->fd < 0)) {
        /* no spill file to fail over to: the network alone */
        object_ref(OBJECT(main->net));
        return main->net;
    }
    path = g_strconcat(main->path, SPILL_RP_SUFFIX, NULL);
    if (!main->writer) {
        /* destination: write it */
        SpillHeader h = { .page_size = qemu_target_page_size() };

        memcpy(h.uuid, main->uuid, sizeof(h.uuid));
        fd = spill_create(path, &h, &err);
        if (fd < 0) {
            /*
             * A return path the network alone carries would leave a source
             * without the network waiting for it: refuse the migration.
             */
            error_report_err(err);
            return NULL;
        }
    }
    /* the source opens it once it needs it (spill_aux_open()) */
    sc = spill_new_aux(main->net, fd, !main->writer, !main->writer,
                       g_steal_pointer(&path), main->uuid, "return path");
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill-return-path");
    return QIO_CHANNEL(sc);
}

QEMUFile *spill_get_return_path(QEMUFile *f, bool source)
{
    QIOChannel *ioc = qemu_file_get_ioc(f);
    QEMUFile *rp;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return qemu_file_get_return_path(f);
    }
    ioc = spill_return_path(ioc);
    if (!ioc) {
        return NULL;
    }
    rp = source ? qemu_file_new_input(ioc) : qemu_file_new_output(ioc);
    object_unref(OBJECT(ioc));
    return rp;
}

QIOChannel *spill_wrap_preempt(QIOChannel *net, bool source, Error **errp)
{
    const char *path = source ? sp.out_path : migrate_spill_file();
    g_autofree char *file = g_strconcat(path, SPILL_PREEMPT_SUFFIX, NULL);
    QIOChannelSpill *sc;
    int fd = -1;

    if (source) {
        SpillHeader h = { .page_size = qemu_target_page_size() };

        memcpy(h.uuid, sp.out_uuid, sizeof(h.uuid));
        fd = spill_create(file, &h, errp);
        if (fd < 0) {
            /* pages it carried would be lost with the network */
            error_prepend(errp, "shared-file-spill: the preempt channel: ");
            return NULL;
        }
    }
    /* the destination opens it once it needs it (spill_aux_open()) */
    sc = spill_new_aux(net, fd, source, !source, g_steal_pointer(&file),
                       source ? sp.out_uuid : sp.in_uuid,
                       "postcopy preempt channel");
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill-preempt");
    return QIO_CHANNEL(sc);
}

bool spill_pages_enabled(void)
{
    /*
     * Pages loaded by a reader thread cannot follow postcopy's discards
     * and atomic placement: with postcopy-ram, the spill file carries
     * the stream (and its return path) only.
     */
    return migrate_shared_file_spill() && !migrate_postcopy_ram();
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

    if (index >= pr.seq.npages) {
        error_setg(errp, "shared-file-spill: page %" PRIu64 " of %s "
                   "outside guest RAM", offset, rb->idstr);
        return -1;
    }
    qemu_mutex_lock(&pr.lock);
    take = spill_seq_take(&pr.seq, index, seq);
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
    qemu_mutex_unlock(&pr.lock);
    if (!take) {
        stat64_add(&sp.stale_pages, 1);
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
    if (!pr.seq.seq) {
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

    if (!pr.seq.seq) {
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
    if (!pr.bounce) {
        pr.bounce = g_malloc(qemu_target_page_size());
    }
    return pr.bounce;
}

/* Destination: the record at pr.scan.pos into pr.buf */
/*
 * Destination: the record at pr.scan.pos, out of a window of the file
 * read ahead (one pread for many records); rec->payload points into it.
 */
static SpillScanResult spill_pages_read(SpillRecord *rec, const char **why)
{
    bool fresh = false;

    for (;;) {
        uint64_t off = pr.scan.pos - pr.win_pos, want = 0, ask;
        SpillScanResult r;
        ssize_t n;

        if (pr.scan.pos >= pr.win_pos && off < pr.win_len) {
            r = spill_scan_next(&pr.scan, pr.buf + off, pr.win_len - off,
                                rec, &want, why);
            if (r != SPILL_SCAN_MORE || fresh) {
                return r;
            }
        } else if (fresh) {
            return SPILL_SCAN_MORE;     /* the file ends at pos */
        }
        /* a new window from pos: what the file holds now */
        ask = MAX(SPILL_READ_WINDOW, want);
        if (pr.buf_size < ask) {
            g_free(pr.buf);
            pr.buf = g_malloc(ask);
            pr.buf_size = ask;
        }
        n = pread(pr.fd, pr.buf, ask, pr.scan.pos);
        if (n < 0) {
            pr.win_len = 0;
            *why = strerror(errno);
            return SPILL_SCAN_CORRUPT;
        }
        pr.win_pos = pr.scan.pos;
        pr.win_len = n;
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
        pr.blocks[rec->block] = rb;
        return true;
    }
    case SPILL_REC_PAGE:
        rb = pr.blocks[rec->block];
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
            stat64_add(&sp.pages, 1);
            break;
        default:
            break;          /* an older copy: dropped */
        }
        stat64_add(&sp.file_bytes, spill_record_size(rec->len));
        stat64_add(&sp.records, 1);
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
    uint8_t buf[SPILL_LOADED_SIZE];

    if (pr.loaded_fd < 0 || pr.published == pr.scan.pos) {
        return;
    }
    spill_pos_encode(buf, SPILL_LOADED_MAGIC, sp.in_uuid, &pr.scan.pos, 1);
    if (pwrite(pr.loaded_fd, buf, sizeof(buf), 0) == sizeof(buf)) {
        pr.published = pr.scan.pos;
    }
}

static void *spill_pages_reader(void *opaque)
{
    Error *err = NULL;
    SpillTorn torn = { 0 };

    rcu_register_thread();
    while (!qatomic_read(&pr.stop)) {
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
            pr.win_len = 0;     /* read it again */
            if (!spill_torn_give_up(&torn, SPILL_SCAN_CORRUPT,
                                    qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                g_usleep(SPILL_POLL_NS / SCALE_US);
                continue;
            }
            error_setg(&err, "shared-file-spill: the pages file is corrupt "
                       "at offset %" PRIu64 ": %s", pr.scan.pos,
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
        qatomic_set_u64(&pr.pos, pr.scan.pos);
        if (pr.scan.pos - pr.published >= SPILL_LOADED_STEP) {
            spill_pages_publish();
        }
    }
    if (err) {
        pr.err = g_strdup(error_get_pretty(err));
        error_free(err);
    }
    qatomic_store_release(&pr.done, true);
    rcu_unregister_thread();
    return NULL;
}

bool spill_pages_incoming_start(Error **errp)
{
    RAMBlock *rb;
    uint64_t npages = 0;

    if (pr.fd < 0 || pr.running) {
        return true;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH(rb) {
            npages = MAX(npages, (rb->offset + rb->max_length) >>
                         qemu_target_page_bits());
        }
    }
    qemu_mutex_init(&pr.lock);
    spill_seq_init(&pr.seq, npages);
    memset(pr.blocks, 0, sizeof(pr.blocks));
    qatomic_set(&pr.stop, false);
    qatomic_set(&pr.done, false);
    qatomic_set_u64(&pr.pos, pr.scan.pos);
    pr.win_pos = 0;
    pr.win_len = 0;
    pr.marker = false;
    g_clear_pointer(&pr.err, g_free);
    pr.published = 0;
    pr.loaded_fd = qemu_create(pr.loaded_path, O_WRONLY | O_TRUNC | O_CLOEXEC,
                               0600, NULL);
    if (pr.loaded_fd < 0) {
        /* the source keeps its writer close to the start of the file */
        warn_report("shared-file-spill: cannot create '%s'",
                    pr.loaded_path);
    }
    pr.running = true;
    qemu_thread_create(&pr.thread, "mig/spill/pages", spill_pages_reader,
                       NULL, QEMU_THREAD_JOINABLE);
    return true;
}

void spill_pages_incoming_stop(void)
{
    if (pr.running) {
        qatomic_set(&pr.stop, true);
        qemu_thread_join(&pr.thread);
        pr.running = false;
    }
    if (pr.seq.seq) {
        spill_seq_destroy(&pr.seq);
        qemu_mutex_destroy(&pr.lock);
    }
    if (pr.fd >= 0) {
        close(pr.fd);
        pr.fd = -1;
    }
    if (pr.loaded_fd >= 0) {
        close(pr.loaded_fd);
        pr.loaded_fd = -1;
    }
    g_clear_pointer(&pr.bounce, g_free);
    g_clear_pointer(&pr.buf, g_free);
    pr.buf_size = 0;
    pr.win_len = 0;
}

/*
 * Destination, from the stream: the source's pages file ends at @end.
 * Wait until the reader has loaded all of it.
 */
static bool spill_pages_wait(uint64_t end, Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint64_t last = qatomic_read_u64(&pr.pos);

    if (!end) {
        return true;            /* the source wrote no pages */
    }
    if (!pr.running) {
        error_setg(errp, "shared-file-spill: pages in the file, but no "
                   "reader");
        return false;
    }
    for (;;) {
        uint64_t pos = qatomic_read_u64(&pr.pos);

        if (pos >= end) {
            break;
        }
        if (qatomic_load_acquire(&pr.done)) {
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
    qatomic_set(&pr.stop, true);
    qemu_thread_join(&pr.thread);
    pr.running = false;
    if (pr.err && qatomic_read_u64(&pr.pos) < end) {
        error_setg(errp, "%s", pr.err);
        return false;
    }
    /*
     * Past @end the reader may have loaded whole records of a write that
     * failed in its middle: their pages went dirty again at the source,
     * and newer copies followed.
     */
    if (qatomic_read_u64(&pr.pos) < end) {
        error_setg(errp, "shared-file-spill: the pages file has a record "
                   "across its end (%" PRIu64 ")", end);
        return false;
    }
    trace_spill_pages_loaded(stat64_get(&sp.pages),
                             stat64_get(&sp.stale_pages), end);
    return true;
}

static bool spill_marker_needed(void *opaque)
{
    return spill_pages_enabled();
}

static bool spill_marker_pre_save(void *opaque, Error **errp)
{
    if (pw.running) {
        /* its pages would be neither in the file's end nor re-sent */
        error_setg(errp, "shared-file-spill: the pages writer still runs");
        return false;
    }
    return true;
}

static bool spill_marker_post_load(void *opaque, int version_id,
                                   Error **errp)
{
    pr.marker = true;
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

void spill_postcopy_requested(void *host)
{
    if (!migrate_shared_file_spill() || !qatomic_read(&sp.via_file)) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&sp.pc_lock) {
        int64_t *since;

        if (!sp.pc_asked) {
            sp.pc_asked = g_hash_table_new_full(NULL, NULL, NULL, g_free);
        }
        if (g_hash_table_contains(sp.pc_asked, host)) {
            return;             /* the fault of another vCPU */
        }
        since = g_new(int64_t, 1);
        *since = get_clock();
        g_hash_table_insert(sp.pc_asked, host, since);
    }
    stat64_add(&sp.pc_requests, 1);
}

void spill_postcopy_placed(void *host)
{
    int64_t *since;

    if (!migrate_shared_file_spill() || !qatomic_read(&sp.via_file)) {
        return;
    }
    stat64_add(&sp.pc_pages, 1);
    WITH_QEMU_LOCK_GUARD(&sp.pc_lock) {
        since = sp.pc_asked ? g_hash_table_lookup(sp.pc_asked, host) : NULL;
        if (since) {
            stat64_add(&sp.pc_wait_ns, get_clock() - *since);
            g_hash_table_remove(sp.pc_asked, host);
        }
    }
}

void spill_init(void)
{
    qemu_mutex_init(&spill_seq_lock);
    qemu_mutex_init(&sp.pc_lock);
    vmstate_register(NULL, 0, &vmstate_spill_marker, &spill_marker);
}

QIOChannel *spill_wrap_incoming(QIOChannel *net, Error **errp)
{
    const char *path = migrate_spill_file();
    uint8_t hdr[SPILL_HEADER_SIZE];
    QIOChannelSpill *sc;
    const char *why;
    SpillHeader h;
    int fd, pr_fd;

    if (!spill_check_params(errp)) {
        return NULL;
    }
    if (!migrate_get_current()->send_configuration) {
        /* which checks both sides and binds the spill file */
        error_setg(errp, "Capability 'shared-file-spill' needs property "
                   "'send-configuration'");
        return NULL;
    }
    spill_reset_stats();
    /* the source wrote the header before it connected */
    fd = qemu_open(path, O_RDONLY | O_CLOEXEC, errp);
    if (fd < 0) {
        error_prepend(errp, "Parameter 'spill-file': ");
        return NULL;
    }
    if (pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr) ||
        !spill_header_decode(hdr, &h, &why)) {
        error_setg(errp, "Parameter 'spill-file': '%s' is no spill file "
                   "of this migration", path);
        close(fd);
        return NULL;
    }
    if (h.page_size != qemu_target_page_size()) {
        error_setg(errp, "Parameter 'spill-file': '%s' has %u-byte pages, "
                   "not %zu", path, h.page_size, qemu_target_page_size());
        close(fd);
        return NULL;
    }
    pr_fd = spill_open_pages(path, &h, errp);
    if (pr_fd < 0) {
        close(fd);
        return NULL;
    }
    spill_pages_incoming_stop();        /* an earlier incoming's */
    pr.fd = pr_fd;
    g_free(pr.loaded_path);
    pr.loaded_path = g_strconcat(path, SPILL_LOADED_SUFFIX, NULL);
    spill_scan_init(&pr.scan, &h);
    sc = spill_new(net, fd, false);
    memcpy(sc->uuid, h.uuid, sizeof(sc->uuid));
    memcpy(sp.in_uuid, h.uuid, sizeof(sp.in_uuid));
    spill_scan_init(&sc->scan, &h);
    trace_spill_incoming(path);
    return QIO_CHANNEL(sc);
}

bool spill_incoming_commit(QIOChannel *ioc, Error **errp)
{
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    SpillTorn torn = { 0 };
    SpillGone gone = { 0 };
    QIOChannelSpill *sc;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return true;
    }
    sc = QIO_CHANNEL_SPILL(ioc);
    if (sc->writer || sc->aux) {
        return true;
    }
    if (spill_pages_enabled() && !pr.marker) {
        error_setg(errp, "shared-file-spill: the source did not say where "
                   "its pages file ends");
        return false;
    }
    if (sc->net_ok) {
        /* the network brought it all: nobody needs the file any more */
        spill_remove(sc->path, sc->dev, sc->ino, false);
        return true;
    }
    spill_ack(sc);
    for (;;) {
        SpillRecord rec;
        const char *why = NULL;
        SpillScanResult res = spill_read_record(sc, &rec, &why);

        /* as for the stream's records: a torn END may soon be whole */
        if (spill_torn_give_up(&torn, res,
                               qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
            error_setg(errp, "shared-file-spill: the spill file is corrupt "
                       "at offset %" PRIu64 ": %s", sc->scan.pos, why);
            return false;
        }
        switch (res) {
        case SPILL_SCAN_END:
            spill_remove(sc->path, sc->dev, sc->ino, false);
            return true;
        case SPILL_SCAN_RECORD:
            continue;           /* bytes past the stream's end: unused */
        case SPILL_SCAN_ABORT:
            error_setg(errp, "shared-file-spill: the source abandoned the "
                       "migration after sending all of it");
            return false;
        case SPILL_SCAN_CORRUPT:
            /*
             * Failing now could lose a guest whose source has completed
             * and gone: read it again.
             */
            trace_spill_torn(sc->scan.pos, why);
            /* fall through */
        case SPILL_SCAN_MORE:
            if (spill_gone(sc, &gone, qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                error_setg(errp, "shared-file-spill: the source removed the "
                           "spill file before END: it gave the migration up");
                return false;
            }
            if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - start >
                SPILL_COMMIT_TIMEOUT_MS) {
                error_setg(errp, "shared-file-spill: the source did not "
                           "confirm the migration within %d s",
                           SPILL_COMMIT_TIMEOUT_MS / 1000);
                return false;
            }
            if (qemu_in_coroutine()) {
                qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, SPILL_POLL_NS);
            } else {
                g_usleep(SPILL_POLL_NS / SCALE_US);
            }
            continue;
        }
    }
}

void spill_outgoing_uuid(uint8_t *uuid)
{
    memcpy(uuid, sp.out_uuid, SPILL_UUID_LEN);
}

bool spill_incoming_check_uuid(const uint8_t *uuid, bool pages, Error **errp)
{
    /* loaded before the configuration's check of the capabilities */
    if (!migrate_shared_file_spill()) {
        error_setg(errp, "Capability 'shared-file-spill' is on at the "
                   "source but not here");
        return false;
    }
    if (memcmp(uuid, sp.in_uuid, SPILL_UUID_LEN)) {
        error_setg(errp, "shared-file-spill: '%s' is not the spill file the "
                   "source writes (another migration's, or a stale copy)",
                   migrate_spill_file());
        return false;
    }
    if (pages != spill_pages_enabled()) {
        error_setg(errp, "shared-file-spill: capability 'postcopy-ram' is "
                   "%s at the source but not here", pages ? "off" : "on");
        return false;
    }
    return true;
}

void spill_cleanup_outgoing(void)
{
    spill_pages_stop(false);
    if (sp.out_fd >= 0) {
        /* created, but the connection failed before it was used */
        spill_remove(sp.out_path, sp.out_dev, sp.out_ino, true);
        close(sp.out_fd);
        sp.out_fd = -1;
    }
    if (pw.fd >= 0) {
        close(pw.fd);
        pw.fd = -1;
    }
    g_clear_pointer(&pw.buf, g_free);
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

static int spill_pwrite_all(int fd, const uint8_t *buf, size_t len,
                            uint64_t pos)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, pos);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? errno : ENOSPC;
        }
        buf += n;
        len -= n;
        pos += n;
    }
    return 0;
}

static int spill_pages_block(RAMBlock *rb)
{
    for (uint32_t i = 0; i < pw.nblocks; i++) {
        if (pw.blocks[i] == rb) {
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

            if (pw.nblocks == SPILL_MAX_BLOCKS) {
                return E2BIG;
            }
            stq_le_p(payload, rb->used_length);
            memcpy(payload + 8, rb->idstr, idlen);
            spill_record_encode(pw.buf, SPILL_REC_BLOCK, pw.nblocks,
                                spill_next_seq(), 0, payload, len);
            err = spill_pwrite_all(pw.fd, pw.buf, spill_record_size(len),
                                   pw.pos);
            if (err) {
                return err;
            }
            pw.pos += spill_record_size(len);
            pw.blocks[pw.nblocks++] = rb;
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
    if (qemu_fdatasync(pw.fd) < 0) {
        int err = errno;

        ram_spill_unclaim((SpillClaim *)pw.unsynced->data,
                          pw.unsynced->len);
        g_array_set_size(pw.unsynced, 0);
        pw.pos = pw.synced_pos;
        return err;
    }
    g_array_set_size(pw.unsynced, 0);
    pw.synced_pos = pw.pos;
    return 0;
}

/* Source: how far the destination's reader has loaded the pages file */
static uint64_t spill_pages_loaded(void)
{
    uint8_t buf[SPILL_LOADED_SIZE];
    uint64_t loaded;
    ssize_t n;

    if (pw.loaded_fd < 0) {
        pw.loaded_fd = qemu_open_old(pw.loaded_path, O_RDONLY | O_CLOEXEC);
        if (pw.loaded_fd < 0) {
            return pw.loaded;
        }
    }
    n = pread(pw.loaded_fd, buf, sizeof(buf), 0);
    if (n >= 0 && spill_pos_decode(buf, n, SPILL_LOADED_MAGIC, sp.out_uuid,
                                   &loaded, 1)) {
        /* it only holds the writer back: no more than was written */
        pw.loaded = MAX(pw.loaded, MIN(loaded, pw.pos));
    }
    return pw.loaded;
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
            last = pw.loaded;
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
    while (!err && !qatomic_read(&pw.stop)) {
        uint64_t size = 0;
        int n, i;

        if (pw.pos > MAX(pw.loaded, SPILL_HEADER_SIZE) + SPILL_PAGES_LEAD &&
            pw.pos > MAX(spill_pages_loaded(), SPILL_HEADER_SIZE) +
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
                spill_record_encode(pw.buf + size, SPILL_REC_PAGE, b,
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
        err = spill_pwrite_all(pw.fd, pw.buf, size, pw.pos);
        if (err) {
            /* the network sends them, and those not synced yet */
            ram_spill_unclaim(claims, n);
            ram_spill_unclaim((SpillClaim *)pw.unsynced->data,
                              pw.unsynced->len);
            g_array_set_size(pw.unsynced, 0);
            pw.pos = pw.synced_pos;
            break;
        }
        g_array_append_vals(pw.unsynced, claims, n);
        pw.pos += size;
        stat64_add(&sp.file_bytes, size);
        stat64_add(&sp.records, n);
        stat64_add(&sp.pages, n);
        trace_spill_pages_write(n, pw.pos);
        if (pw.pos - pw.synced_pos >= SPILL_PAGES_SYNC &&
            !qatomic_read(&pw.stop)) {
            /* a little at a time, not all of it at the switchover */
            err = spill_pages_sync();
        }
    }
    if (err) {
        warn_report("shared-file-spill: cannot write the pages file (%s); "
                    "the network sends the pages", strerror(err));
        stat64_add(&sp.file_errors, 1);
        pw.err = err;
        /* the file ends where the destination's host surely sees it */
        pw.pos = pw.synced_pos;
    }
    rcu_unregister_thread();
    return NULL;
}

void spill_pages_start(void)
{
    if (pw.fd < 0 || pw.running) {
        return;
    }
    pw.pos = SPILL_HEADER_SIZE;
    pw.synced_pos = SPILL_HEADER_SIZE;
    pw.err = 0;
    pw.nblocks = 0;
    if (!pw.unsynced) {
        pw.unsynced = g_array_new(false, false, sizeof(SpillClaim));
    }
    g_array_set_size(pw.unsynced, 0);
    qatomic_set(&pw.stop, false);
    if (!pw.buf) {
        pw.buf = g_malloc(SPILL_PAGES_BATCH *
                          spill_record_size(qemu_target_page_size()) +
                          spill_record_size(8 + 256));
    }
    pw.running = true;
    qemu_thread_create(&pw.thread, "mig/spill/pages", spill_pages_thread,
                       NULL, QEMU_THREAD_JOINABLE);
}

void spill_pages_stop(bool sync)
{
    if (!pw.running) {
        return;
    }
    qatomic_set(&pw.stop, true);
    qemu_thread_join(&pw.thread);
    pw.running = false;
    /*
     * The pages in the file are no longer dirty at the source.  Those the
     * destination's host may not see (a failed sync) go dirty again, and
     * the last pass sends them.  Without @sync the migration is over.
     */
    if (sync && !pw.err) {
        int err = spill_pages_sync();

        if (err) {
            warn_report("shared-file-spill: cannot sync the pages file "
                        "(%s); the network sends its last pages",
                        strerror(err));
            stat64_add(&sp.file_errors, 1);
        }
    }
    spill_marker.end = pw.pos;
    trace_spill_pages_stop(stat64_get(&sp.pages), spill_marker.end);
    close(pw.fd);
    pw.fd = -1;
    if (sync) {
        spill_pages_wait_loaded(spill_marker.end);
    }
    if (pw.loaded_fd >= 0) {
        close(pw.loaded_fd);
        pw.loaded_fd = -1;
    }
}

void spill_populate_info(MigrationInfo *info)
{
    SharedFileSpillInfo *p = g_new0(SharedFileSpillInfo, 1);

    p->file_bytes = stat64_get(&sp.file_bytes);
    p->records = stat64_get(&sp.records);
    p->failovers = stat64_get(&sp.failovers);
    p->file_errors = stat64_get(&sp.file_errors);
    p->pages = stat64_get(&sp.pages);
    p->stale_pages = stat64_get(&sp.stale_pages);
    p->postcopy_requests = stat64_get(&sp.pc_requests);
    p->postcopy_pages = stat64_get(&sp.pc_pages);
    p->postcopy_wait_ms = stat64_get(&sp.pc_wait_ns) / SCALE_MS;
    info->shared_file_spill = p;
}
