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
 * stream.  Without an acknowledgement for 30 s (the migration object's
 * property x-spill-ack-timeout, in ms) the migration fails and the
 * guest runs on at the source.
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
 * Each multifd channel is teed the same way, to a file of its own
 * (spill-file ".mfdN"), which the destination reads on from once that
 * channel's connection breaks; multifd's own sync points keep the
 * channels in step, and the source's END waits until the destination
 * has read every file it had to.
 *
 * Beside it, the pages datapath (spill-pages.c) sends dirty pages
 * through a second file, so that the network has fewer to send; see
 * docs/devel/migration/shared-file-spill.rst.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "exec/target_page.h"
#include "io/channel-tls.h"
#include "migration.h"
#include "qemu-file.h"
#include "options.h"
#include "spill.h"
#include "spill-int.h"
#include "tls.h"
#include "trace.h"

/*
 * A reader of the stream or of the return path waits this long for the
 * file to grow: in postcopy, a vCPU waits for the page it faulted on.
 */
#define SPILL_READ_POLL_NS      (1 * SCALE_MS)
/*
 * (A source without the network waits x-spill-ack-timeout for the
 * destination.)  A destination that read from the file waits this long
 * for END.
 */
#define SPILL_COMMIT_TIMEOUT_MS (120 * 1000)
#define SPILL_ACK_WINDOW        (64 * 1024 * 1024)
/* A destination waiting for the file looks this often whether it is gone */
#define SPILL_GONE_CHECK_MS     100
/* A destination scanning the spill file says so this often */
#define SPILL_SCAN_ACK_MS       100
/*
 * A multifd channel without the network syncs its file each time it has
 * written this much; every wait for the destination syncs them all.
 */
#define SPILL_MULTIFD_SYNC      (8 * 1024 * 1024)

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
    /*
     * A multifd channel (@aux too): its file is spill-file ".mfdN" once
     * @bound (spill_multifd_bind()).  The destination cannot tell a
     * cut from the source closing the channel after its last packet:
     * it reads on from the file, and it has failed over (@from_file)
     * only once the file gave it a byte.
     */
    bool multifd;
    bool bound;
    bool from_file;
    bool tls_done;              /* beneath TLS: the handshake is */
    int sync_fd;                /* source: its file, for other threads */
    SpillPos end;               /* .mfdN.end */
    bool end_noted;             /* source: written */
    char what_buf[32];
    /*
     * Beneath a TLS session, which reads and writes one channel
     * (@duplex): the other direction, the return path's, which this
     * channel's reads (source) or writes (destination) go to; NULL: the
     * network alone.
     */
    bool duplex;
    struct QIOChannelSpill *rev;
    /*
     * May fail over.  Beneath TLS only once the handshake is done: a
     * cut during it fails the migration at once, with nothing but the
     * handshake lost.
     */
    bool armed;
    const char *what;           /* for messages */
    bool net_ok;                /* atomic: the network still carries it */
    bool shutdown;              /* atomic; cancelled: fail, no failover */
    bool committed;             /* source: END written */
    bool closed;                /* its files are */
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
    SpillPos ack;               /* the acknowledgement file */
    int64_t acked_at;           /* destination: its last acknowledgement */
    /* destination */
    SpillScan scan;
    uint64_t cur_off, cur_len;  /* the STREAM record in buf */
};

/* The spill channel @ioc is, or that its TLS session is over, or NULL */
static QIOChannelSpill *spill_of(QIOChannel *ioc)
{
    if (object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_TLS)) {
        ioc = QIO_CHANNEL_TLS(ioc)->master;
    }
    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return NULL;
    }
    return QIO_CHANNEL_SPILL(ioc);
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
    stat64_add(&spill_state.file_errors, 1);
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
    if (!sc->aux || sc->multifd) {
        stat64_add(&spill_state.file_bytes, size);
        stat64_add(&spill_state.records, 1);
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
 * Source, a multifd channel about to be shut down or closed: say how many
 * bytes it sent over the network, so that the destination, which sees
 * its connection end, can tell the close from a cut without reading the
 * file.  Not once the network broke: then the file has more.
 */
static void spill_multifd_note_end(QIOChannelSpill *sc)
{
    if (!sc->multifd || !sc->writer || !sc->bound || sc->end_noted ||
        !qatomic_read(&sc->net_ok) || sc->fd < 0) {
        return;
    }
    sc->end_noted = true;
    spill_pos_write(&sc->end, sc->uuid, &sc->stream_pos);
    spill_pos_close(&sc->end);
}

/* Source: @sc is closed, and out of multifd_out */
static void spill_multifd_forget(QIOChannelSpill *sc)
{
    bool found = false;

    if (!sc->multifd || !sc->writer) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&spill_state.multifd_lock) {
        found = g_slist_find(spill_state.multifd_out, sc);
        spill_state.multifd_out = g_slist_remove(spill_state.multifd_out, sc);
    }
    if (found) {
        object_unref(OBJECT(sc));       /* the caller holds another */
    }
}

void spill_multifd_forget_all(void)
{
    GSList *left;

    WITH_QEMU_LOCK_GUARD(&spill_state.multifd_lock) {
        left = g_steal_pointer(&spill_state.multifd_out);
    }
    /* channels a failed migration never closed */
    g_slist_free_full(left, object_unref);
}

/*
 * Source: make what the multifd channels that failed over wrote visible
 * to the destination's host, from another thread than theirs: the
 * destination may wait for it (a multifd sync) to read on.
 */
static void spill_multifd_sync_all(void)
{
    QEMU_LOCK_GUARD(&spill_state.multifd_lock);
    for (GSList *l = spill_state.multifd_out; l; l = l->next) {
        QIOChannelSpill *sc = l->data;

        if (!qatomic_read(&sc->net_ok) && qemu_fdatasync(sc->sync_fd) < 0) {
            warn_report_once("shared-file-spill: cannot sync the file of "
                             "the %s: %s", sc->what, strerror(errno));
        }
    }
}

/*
 * Source: the stream bytes the destination acknowledges, or 0, and into
 * @scanned how far it has scanned the spill file to find them
 */
static uint64_t spill_acked(QIOChannelSpill *sc, uint64_t *scanned)
{
    uint64_t v[2];

    *scanned = 0;
    if (!spill_pos_read(&sc->ack, sc->uuid, v) || v[0] > sc->stream_pos) {
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
    uint32_t timeout = migrate_get_current()->spill_ack_timeout;
    uint64_t scanned, last_scanned;
    uint64_t acked = spill_acked(sc, &scanned), last = acked;

    last_scanned = scanned;
    if (acked + window < sc->stream_pos) {
        if (spill_sync(sc, errp) < 0) {
            return -1;
        }
        if (!sc->multifd) {
            spill_multifd_sync_all();
        }
    }
    while (acked + window < sc->stream_pos) {
        if (qatomic_read(&sc->shutdown) ||
            (sc->multifd && qatomic_read(&spill_state.out_shutdown))) {
            error_setg(errp, "shared-file-spill: cancelled");
            return -1;
        }
        if (acked != last || scanned != last_scanned) {
            /* reading, or still scanning a long file for its place */
            last = acked;
            last_scanned = scanned;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        }
        if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since > timeout) {
            error_setg(errp, "shared-file-spill: the network is lost and "
                       "the destination has not read the spill file for "
                       "%.1f s (%" PRIu64 " of %" PRIu64 " bytes read)",
                       timeout / 1000.0, acked, sc->stream_pos);
            return -1;
        }
        g_usleep(SPILL_POLL_NS / SCALE_US);
        acked = spill_acked(sc, &scanned);
    }
    return 0;
}

/*
 * Source, committing: wait until the destination has read every multifd
 * channel that failed over to its end.  The channels are idle: the
 * last multifd sync is done.  True if one did fail over.
 */
static bool spill_multifd_wait_acked(bool *failed_over, Error **errp)
{
    g_autoptr(GSList) chans = NULL;
    bool ok = true;

    *failed_over = false;
    WITH_QEMU_LOCK_GUARD(&spill_state.multifd_lock) {
        for (GSList *l = spill_state.multifd_out; l; l = l->next) {
            object_ref(OBJECT(l->data));
            chans = g_slist_prepend(chans, l->data);
        }
    }
    for (GSList *l = chans; l; l = l->next) {
        QIOChannelSpill *sc = l->data;

        if (!qatomic_read(&sc->net_ok)) {
            *failed_over = true;
            if (ok && spill_wait_acked(sc, 0, errp) < 0) {
                error_prepend(errp, "%s: ", sc->what);
                ok = false;
            }
        }
        object_unref(OBJECT(sc));
    }
    return ok;
}

bool spill_catch_up(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc = spill_of(ioc);

    if (!sc || !sc->writer || sc->aux || sc->net_ok) {
        return true;
    }
    /* what is still to read then is only what the last stage sends */
    return spill_wait_acked(sc, 0, errp) == 0;
}

bool spill_committed(void)
{
    return qatomic_read(&spill_state.end_written) &&
           !qatomic_read(&spill_state.shut_error);
}

void spill_note_shut(bool error)
{
    if (error) {
        qatomic_set(&spill_state.shut_error, true);
    }
}

bool spill_commit(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc = spill_of(ioc);
    bool multifd_file;

    if (!sc || !sc->writer || sc->aux) {
        return true;
    }
    if (!sc->net_ok && spill_wait_acked(sc, 0, errp) < 0) {
        return false;
    }
    if (!spill_multifd_wait_acked(&multifd_file, errp)) {
        return false;
    }
    if (sc->net_ok && !multifd_file) {
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
            qatomic_set(&spill_state.end_written, true);
            trace_spill_committed(sc->stream_pos, sc->file_pos);
        }
    } else {
        /*
         * Without the network (the stream's, or a multifd channel's)
         * the destination starts on this alone
         */
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
        qatomic_set(&spill_state.end_written, true);
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
        stat64_add(&spill_state.failovers, 1);
    } else if (sc->multifd) {
        stat64_add(&spill_state.multifd_failovers, 1);
    }
    if (sc->incoming) {
        qatomic_set(&spill_state.via_file, true);
    }
    qatomic_set(&sc->net_ok, false);
}

static ssize_t spill_writev(QIOChannel *ioc, const struct iovec *iov,
                            size_t niov, int *fds, size_t nfds, int flags,
                            Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);
    size_t total = iov_size(iov, niov);

    if (sc->duplex && !sc->writer) {
        /* the destination's TLS session: its return path, or handshake */
        return sc->rev ? spill_writev(QIO_CHANNEL(sc->rev), iov, niov, fds,
                                      nfds, flags, errp) :
                         qio_channel_writev_full(sc->net, iov, niov, fds,
                                                 nfds, flags, errp);
    }
    if (!sc->writer || nfds) {
        error_setg(errp, "shared-file-spill: unexpected write");
        return -1;
    }
    if (qatomic_read(&sc->shutdown)) {
        error_setg(errp, "shared-file-spill: cancelled");
        return -1;
    }
    if (!sc->aux && qatomic_xchg(&spill_state.multifd_unsynced, false)) {
        /*
         * The stream goes on after a multifd sync (its flush marker, the
         * end of a pass): the destination waits there for what the
         * channels sent, which must be visible to it
         */
        spill_multifd_sync_all();
    }
    for (size_t off = 0; sc->fd >= 0 && off < total;
         off += SPILL_MAX_STREAM) {
        spill_write_record(sc, SPILL_REC_STREAM, iov, niov, off,
                           MIN(total - off, SPILL_MAX_STREAM));
    }
    if (sc->net_ok) {
        Error *err = NULL;

        if (qio_channel_writev_all(sc->net, iov, niov, &err) < 0) {
            if (sc->fd < 0 || qatomic_read(&sc->shutdown) ||
                !qatomic_read(&sc->armed)) {
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
         * other side must see them now.  A multifd channel's are many:
         * see SPILL_MULTIFD_SYNC.
         */
        if (!sc->net_ok && sc->fd >= 0 &&
            (!sc->multifd ||
             sc->file_pos - sc->synced_pos >= SPILL_MULTIFD_SYNC) &&
            spill_sync(sc, errp) < 0) {
            return -1;
        }
        if (sc->multifd && !sc->net_ok && sc->file_pos != sc->synced_pos) {
            qatomic_set(&spill_state.multifd_unsynced, true);
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

/* Destination: a channel read something, from the network or a file */
static void spill_note_read(void)
{
    qatomic_set(&spill_state.in_read_at,
                qemu_clock_get_ms(QEMU_CLOCK_REALTIME));
}

/* Destination: tell the source how far the stream has been read */
static void spill_ack(QIOChannelSpill *sc)
{
    sc->acked_at = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    spill_pos_write(&sc->ack, sc->uuid,
                    (uint64_t[]) { sc->stream_pos, sc->scan.pos });
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
            if (!sc->aux || sc->multifd) {
                stat64_add(&spill_state.file_bytes, n);
                spill_ack(sc);
            }
            if (sc->multifd && !sc->from_file) {
                /* not the source's close: the file goes on after it */
                sc->from_file = true;
                qatomic_set(&spill_state.in_multifd_via_file, true);
                warn_report("shared-file-spill: the network connection of "
                            "the %s broke after %" PRIu64 " bytes; reading "
                            "on from its file", sc->what, sc->stream_pos - n);
                spill_failed_over(sc);
            }
            spill_note_read();
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
            spill_note_read();
            if (!sc->aux || sc->multifd) {
                stat64_add(&spill_state.records, 1);
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
                if (sc->multifd) {
                    return 0;   /* as in SPILL_SCAN_MORE */
                }
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
            /* the source removed the files; an ack written since stays */
            spill_pos_remove(&sc->ack);
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
                qatomic_read(&spill_state.end_written)) {
                committed = true;
                since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
            }
            if (sc->incoming && (!sc->aux || sc->multifd) && sc->fd >= 0 &&
                spill_gone(sc, &gone, qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                spill_pos_remove(&sc->ack);
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
            /*
             * A multifd channel may be silent while the stream goes on;
             * but when nothing was read of the migration for that long,
             * the destination's main thread may wait for this channel
             * (a multifd sync) and read nothing else: the source is gone.
             */
            if (sc->multifd &&
                qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                MAX(since, qatomic_read(&spill_state.in_read_at)) >
                SPILL_STALL_MS) {
                error_setg(errp, "shared-file-spill: nothing of the "
                           "migration was read for %d s while the %s "
                           "waited for its file", SPILL_STALL_MS / 1000,
                           sc->what);
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

    if (sc->rev && sc->writer) {
        /* the source's TLS session: the return path */
        return spill_readv(QIO_CHANNEL(sc->rev), iov, niov, fds, nfds, flags,
                           errp);
    }
    if (sc->writer && sc->duplex) {
        /* no file: the network alone */
        return qio_channel_readv_full(sc->net, iov, niov, fds, nfds, flags,
                                      errp);
    }
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
            spill_note_read();
            return n;
        }
        if (n == QIO_CHANNEL_ERR_BLOCK || qatomic_read(&sc->shutdown) ||
            (sc->fd < 0 && !sc->aux) || !qatomic_read(&sc->armed)) {
            error_propagate(errp, err);
            return n;
        }
        error_free(err);
        if (sc->multifd) {
            uint64_t end;

            if (spill_pos_read(&sc->end, sc->uuid, &end) &&
                end == sc->stream_pos) {
                /* the source closed it, and we have all it sent */
                trace_spill_multifd_end(sc->what, sc->stream_pos);
                return 0;
            }
            /*
             * A cut, or the source closed the channel after its last
             * packet without saying so yet: the file tells
             * (spill_read_file()).
             */
            trace_spill_multifd_eof(sc->what, sc->stream_pos);
            qatomic_set(&sc->net_ok, false);
            return spill_read_file(sc, iov, niov, errp);
        }
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
    if (sc->rev) {
        qatomic_set(&sc->rev->shutdown, true);
    }
    if (sc->writer && !sc->aux) {
        /* cancelled: also stops the wait for the multifd channels */
        qatomic_set(&spill_state.out_shutdown, true);
    }
    spill_multifd_note_end(sc);
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

/*
 * Done with the files: also for a channel nobody closed, such as one
 * whose TLS handshake failed
 */
static void spill_close_files(QIOChannelSpill *sc)
{
    if (sc->closed) {
        return;
    }
    spill_multifd_note_end(sc);
    spill_multifd_forget(sc);
    sc->closed = true;
    spill_pos_close(&sc->ack);
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
    if (sc->rev) {
        spill_close_files(sc->rev);     /* over the same @net */
    }
}

static int spill_close(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);

    spill_close_files(sc);
    return qio_channel_close(sc->net, errp);
}

static void spill_set_delay(QIOChannel *ioc, bool enabled)
{
    qio_channel_set_delay(QIO_CHANNEL_SPILL(ioc)->net, enabled);
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

    if (sc->sync_fd >= 0) {
        close(sc->sync_fd);
    }
    spill_pos_free(&sc->end);
    if (sc->incoming && !sc->aux && !sc->tls_done) {
        /* a stream's channel whose handshake failed */
        qatomic_set(&spill_state.in_main, false);
    }

    spill_close_files(sc);
    spill_pos_free(&sc->ack);
    if (sc->rev) {
        object_unref(OBJECT(sc->rev));
    }
    object_unref(OBJECT(sc->net));
    g_free(sc->path);
    g_free(sc->buf);
}

static void spill_class_init(ObjectClass *klass, const void *data)
{
    QIOChannelClass *ioc_klass = QIO_CHANNEL_CLASS(klass);

    ioc_klass->io_writev = spill_writev;
    ioc_klass->io_readv = spill_readv;
    ioc_klass->io_set_blocking = spill_set_blocking;
    ioc_klass->io_set_delay = spill_set_delay;
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
    sc->sync_fd = -1;
    sc->end.fd = -1;            /* a multifd channel's, once bound */
    sc->writer = writer;
    sc->incoming = !writer;
    sc->what = "migration stream";
    sc->net_ok = true;
    sc->armed = true;
    sc->path = g_strdup(writer && spill_state.out_path ? spill_state.out_path :
                        migrate_spill_file());
    spill_file_id(fd, &sc->dev, &sc->ino);
    spill_pos_init(&sc->ack, sc->path, SPILL_ACK_SUFFIX, SPILL_ACK_MAGIC, 2);
    /* forwarded to @net where it can; the wait loops see it anyway */
    qio_channel_set_feature(QIO_CHANNEL(sc), QIO_CHANNEL_FEATURE_SHUTDOWN);
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill");
    return sc;
}

static QIOChannel *spill_wrap_outgoing(QIOChannel *net)
{
    QIOChannelSpill *sc = spill_new(net, spill_state.out_fd, true);

    spill_state.out_fd = -1;
    memcpy(sc->uuid, spill_state.out_uuid, sizeof(sc->uuid));
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

/*
 * The return path beside @main, a stream's channel: the destination
 * creates spill-file + ".rp" and writes it; the source opens it once it
 * needs it (spill_aux_open()).  NULL (reported) when the destination
 * cannot create the file.
 */
static QIOChannelSpill *spill_new_rp(QIOChannelSpill *main)
{
    g_autofree char *path = g_strconcat(main->path, SPILL_RP_SUFFIX, NULL);
    QIOChannelSpill *sc;
    Error *err = NULL;
    int fd = -1;

    if (!main->writer) {
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
    sc = spill_new_aux(main->net, fd, !main->writer, !main->writer,
                       g_steal_pointer(&path), main->uuid, "return path");
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill-return-path");
    return sc;
}

QIOChannel *spill_return_path(QIOChannel *ioc)
{
    QIOChannelSpill *main, *sc;

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
    sc = spill_new_rp(main);
    return sc ? QIO_CHANNEL(sc) : NULL;
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

static QIOChannel *spill_wrap_preempt(QIOChannel *net, bool source,
                                      Error **errp)
{
    const char *path = source ? spill_state.out_path : migrate_spill_file();
    g_autofree char *file = g_strconcat(path, SPILL_PREEMPT_SUFFIX, NULL);
    QIOChannelSpill *sc;
    int fd = -1;

    if (source) {
        SpillHeader h = { .page_size = qemu_target_page_size() };

        memcpy(h.uuid, spill_state.out_uuid, sizeof(h.uuid));
        fd = spill_create(file, &h, errp);
        if (fd < 0) {
            /* pages it carried would be lost with the network */
            error_prepend(errp, "shared-file-spill: the preempt channel: ");
            return NULL;
        }
    }
    /* the destination opens it once it needs it (spill_aux_open()) */
    sc = spill_new_aux(net, fd, source, !source, g_steal_pointer(&file),
                       source ? spill_state.out_uuid : spill_state.in_uuid,
                       "postcopy preempt channel");
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill-preempt");
    return QIO_CHANNEL(sc);
}

/*
 * A multifd channel over @net: its file comes with its id
 * (spill_multifd_bind()); until then it may not fail over.
 */
static QIOChannel *spill_wrap_multifd(QIOChannel *net, bool source)
{
    QIOChannelSpill *sc = spill_new(net, -1, source);

    sc->aux = true;
    sc->multifd = true;
    sc->what = "multifd channel";
    sc->armed = false;
    memcpy(sc->uuid, source ? spill_state.out_uuid : spill_state.in_uuid,
           sizeof(sc->uuid));
    if (!source) {
        qatomic_inc(&spill_state.in_multifd);
    }
    qio_channel_set_name(QIO_CHANNEL(sc), "migration-spill-multifd");
    return QIO_CHANNEL(sc);
}

bool spill_multifd_bind(QIOChannel *ioc, uint8_t id, Error **errp)
{
    QIOChannelSpill *sc = spill_of(ioc);
    g_autofree char *path = NULL;

    if (!migrate_shared_file_spill()) {
        return true;
    }
    if (!sc || !sc->multifd || sc->bound) {
        error_setg(errp, "shared-file-spill: multifd channel %u is not over "
                   "a spill channel of its own", id);
        return false;
    }
    path = spill_multifd_path(sc->path, id);
    if (sc->writer) {
        SpillHeader h = { .page_size = qemu_target_page_size() };

        memcpy(h.uuid, sc->uuid, sizeof(h.uuid));
        sc->fd = spill_create(path, &h, errp);
        if (sc->fd < 0) {
            /* its bytes would be lost with the network */
            error_prepend(errp, "shared-file-spill: multifd channel %u: ",
                          id);
            return false;
        }
        spill_file_id(sc->fd, &sc->dev, &sc->ino);
        sc->file_pos = SPILL_HEADER_SIZE;
        sc->synced_pos = sc->file_pos;
        /* open until the channel goes, even if its writer gives it up */
        sc->sync_fd = dup(sc->fd);
        if (sc->sync_fd < 0) {
            error_setg_errno(errp, errno, "shared-file-spill: multifd "
                             "channel %u", id);
            close(sc->fd);
            sc->fd = -1;
            return false;
        }
    }
    /* the destination opens it once it needs it (spill_aux_open()) */
    spill_pos_init(&sc->ack, path, SPILL_ACK_SUFFIX, SPILL_ACK_MAGIC, 2);
    spill_pos_init(&sc->end, path, SPILL_END_SUFFIX, SPILL_END_MAGIC, 1);
    g_free(sc->path);
    sc->path = g_steal_pointer(&path);
    snprintf(sc->what_buf, sizeof(sc->what_buf), "multifd channel %u", id);
    sc->what = sc->what_buf;
    sc->bound = true;
    if (sc->writer) {
        WITH_QEMU_LOCK_GUARD(&spill_state.multifd_lock) {
            spill_state.multifd_out = g_slist_prepend(spill_state.multifd_out,
                                                      object_ref(sc));
        }
    }
    trace_spill_aux(sc->path, sc->what, sc->writer);
    if (!sc->duplex || sc->tls_done) {
        qatomic_set(&sc->armed, true);
    }
    return true;
}

SpillChannelKind spill_incoming_kind(void)
{
    MigrationIncomingState *mis = migration_incoming_get_current();

    if (!mis->from_src_file && !qatomic_read(&spill_state.in_main)) {
        return SPILL_CHANNEL_MAIN;
    }
    if (migrate_multifd() &&
        qatomic_read(&spill_state.in_multifd) < migrate_multifd_channels()) {
        return SPILL_CHANNEL_MULTIFD;
    }
    return SPILL_CHANNEL_PREEMPT;
}

static QIOChannel *spill_wrap_incoming(QIOChannel *net, Error **errp)
{
    const char *path = migrate_spill_file();
    uint8_t hdr[SPILL_HEADER_SIZE];
    QIOChannelSpill *sc;
    const char *why;
    SpillHeader h;
    int fd;

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
    if (!spill_pages_incoming_open(path, &h, errp)) {
        close(fd);
        return NULL;
    }
    sc = spill_new(net, fd, false);
    memcpy(sc->uuid, h.uuid, sizeof(sc->uuid));
    memcpy(spill_state.in_uuid, h.uuid, sizeof(spill_state.in_uuid));
    /* the multifd channels come next (spill_incoming_kind()) */
    qatomic_set(&spill_state.in_main, true);
    qatomic_set(&spill_state.in_multifd, 0);
    spill_note_read();
    spill_scan_init(&sc->scan, &h);
    trace_spill_incoming(path);
    return QIO_CHANNEL(sc);
}

/* A postcopy recovery's channels go over the network alone */
static bool spill_in_recovery(bool source)
{
    int state = source ? migrate_get_current()->state :
                         migration_incoming_get_current()->state;

    return state == MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP ||
           state == MIGRATION_STATUS_POSTCOPY_PAUSED ||
           state == MIGRATION_STATUS_POSTCOPY_RECOVER;
}

/*
 * @tioc's TLS handshake is done, over the spill channel of @kind
 * spill_wrap_channel() gave it: from now on that may fail over.
 */
static QIOChannel *spill_tls_done(QIOChannel *tioc, SpillChannelKind kind,
                                  Error **errp)
{
    static const char *const what[] = {
        [SPILL_CHANNEL_MAIN] = "migration stream",
        [SPILL_CHANNEL_PREEMPT] = "postcopy preempt channel",
        [SPILL_CHANNEL_MULTIFD] = "multifd channel",
    };
    QIOChannelSpill *sc = spill_of(tioc);

    if (!sc || sc->aux != (kind != SPILL_CHANNEL_MAIN) ||
        sc->multifd != (kind == SPILL_CHANNEL_MULTIFD)) {
        error_setg(errp, "shared-file-spill: the TLS session of the %s is "
                   "not over its spill channel", what[kind]);
        return NULL;
    }
    sc->tls_done = true;
    if (sc->incoming && !sc->aux) {
        /* the next channel is multifd's (spill_incoming_kind()) */
        qatomic_set(&spill_state.in_main, false);
    }
    /*
     * Before the threads that use it start; a multifd channel once it
     * is bound, too
     */
    if (!sc->multifd || sc->bound) {
        qatomic_set(&sc->armed, true);
    }
    if (sc->rev) {
        qatomic_set(&sc->rev->armed, true);
    }
    trace_spill_tls_done(sc->what, sc->stream_pos);
    object_ref(OBJECT(tioc));
    return tioc;
}

QIOChannel *spill_wrap_channel(QIOChannel *ioc, SpillChannelKind kind,
                               bool source, Error **errp)
{
    QIOChannelSpill *sc;
    QIOChannel *chan;

    if (!migrate_shared_file_spill() || spill_in_recovery(source)) {
        object_ref(OBJECT(ioc));
        return ioc;
    }
    if (object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_TLS)) {
        return spill_tls_done(ioc, kind, errp);
    }
    switch (kind) {
    case SPILL_CHANNEL_MAIN:
        chan = source ? spill_wrap_outgoing(ioc) :
                        spill_wrap_incoming(ioc, errp);
        break;
    case SPILL_CHANNEL_PREEMPT:
        chan = spill_wrap_preempt(ioc, source, errp);
        break;
    case SPILL_CHANNEL_MULTIFD:
        chan = spill_wrap_multifd(ioc, source);
        break;
    default:
        g_assert_not_reached();
    }
    if (!chan || !migrate_channel_requires_tls_upgrade(ioc)) {
        return chan;
    }
    /*
     * A TLS session goes over it, so that the files hold only its
     * ciphertext, and reads and writes this one channel: the stream's
     * return path goes through it too.  Failover waits for the end of
     * the handshake (spill_tls_done()).
     */
    sc = QIO_CHANNEL_SPILL(chan);
    sc->duplex = true;
    sc->armed = false;
    if (kind == SPILL_CHANNEL_MAIN && !(sc->writer && sc->fd < 0)) {
        sc->rev = spill_new_rp(sc);
        if (!sc->rev) {
            error_setg(errp, "shared-file-spill: cannot create the return "
                       "path's file");
            object_unref(OBJECT(chan));
            return NULL;
        }
        sc->rev->armed = false;
    }
    /*
     * The other way of the preempt and multifd channels carries the
     * handshake alone, which is over before they may fail over: the
     * network alone.
     */
    return chan;
}

bool spill_incoming_commit(QIOChannel *ioc, Error **errp)
{
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    SpillTorn torn = { 0 };
    SpillGone gone = { 0 };
    QIOChannelSpill *sc = spill_of(ioc);

    if (!sc || sc->writer || sc->aux) {
        return true;
    }
    if (spill_pages_enabled() && !spill_pages_marker_seen()) {
        error_setg(errp, "shared-file-spill: the source did not say where "
                   "its pages file ends");
        return false;
    }
    if (sc->net_ok && !qatomic_read(&spill_state.in_multifd_via_file)) {
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
            spill_pos_remove(&sc->ack);
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
            /* the multifd channels need not wait for anything now */
            spill_note_read();
            if (spill_gone(sc, &gone, qemu_clock_get_ms(QEMU_CLOCK_REALTIME))) {
                spill_pos_remove(&sc->ack);
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
