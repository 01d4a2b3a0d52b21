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
 * flushed, so the storage must keep up with the network; see
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
#include "migration.h"
#include "options.h"
#include "spill-format.h"
#include "spill.h"
#include "trace.h"

/* A destination waits this long for the file to grow before it fails */
#define SPILL_STALL_MS          (30 * 1000)
#define SPILL_POLL_NS           (10 * SCALE_MS)
/* A source without the network waits this long for the destination */
#define SPILL_ACK_TIMEOUT_MS    (30 * 1000)
/* A destination that read from the file waits this long for END */
#define SPILL_COMMIT_TIMEOUT_MS (120 * 1000)
#define SPILL_ACK_WINDOW        (64 * 1024 * 1024)
/* The acknowledgement file: magic, the migration's uuid, stream bytes */
#define SPILL_ACK_MAGIC         "QSPILLAK"
#define SPILL_ACK_SIZE          (8 + SPILL_UUID_LEN + 8)

#define TYPE_QIO_CHANNEL_SPILL "qio-channel-spill"
OBJECT_DECLARE_SIMPLE_TYPE(QIOChannelSpill, QIO_CHANNEL_SPILL)

struct QIOChannelSpill {
    QIOChannel parent;
    QIOChannel *net;
    int fd;                     /* the spill file, -1 once given up */
    bool source;
    bool net_ok;                /* the network still carries the stream */
    bool shutdown;              /* atomic; cancelled: fail, no failover */
    bool committed;             /* source: END written */
    char *path;                 /* the spill file */
    uint64_t stream_pos;        /* stream bytes written or read */
    uint64_t seq;               /* source: records written */
    uint64_t file_pos;          /* source: where the next record goes */
    uint64_t synced_pos;        /* source: file_pos at the last sync */
    uint8_t *buf;               /* a record */
    size_t buf_size;
    uint8_t uuid[SPILL_UUID_LEN];
    int ack_fd;                 /* the acknowledgement file, -1: none */
    char *ack_path;
    /* destination */
    SpillScan scan;
    uint64_t cur_off, cur_len;  /* the STREAM record in buf */
};

static struct {
    int out_fd;                 /* source, from migrate to the channel */
    char *out_path;
    uint8_t out_uuid[SPILL_UUID_LEN];
    uint8_t in_uuid[SPILL_UUID_LEN];    /* the file the destination opened */
    Stat64 file_bytes;
    Stat64 records;
    Stat64 failovers;
    Stat64 file_errors;
} sp = { .out_fd = -1 };

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
}

bool spill_prepare_outgoing(Error **errp)
{
    uint8_t hdr[SPILL_HEADER_SIZE];
    SpillHeader h = { .page_size = qemu_target_page_size() };
    const char *path;
    int fd;

    if (!spill_check_params(errp)) {
        return false;
    }
    path = migrate_spill_file();
    if (sp.out_fd >= 0) {
        /* an earlier migrate that never connected */
        close(sp.out_fd);
        sp.out_fd = -1;
    }
    spill_reset_stats();
    /* a new file, never the inode an earlier destination may still read */
    unlink(path);
    fd = qemu_create(path, O_WRONLY | O_EXCL | O_CLOEXEC, 0600, errp);
    if (fd < 0) {
        error_prepend(errp, "Parameter 'spill-file': ");
        return false;
    }
    qemu_guest_getrandom_nofail(h.uuid, sizeof(h.uuid));
    spill_header_encode(hdr, &h);
    if (qemu_write_full(fd, hdr, sizeof(hdr)) != sizeof(hdr) ||
        qemu_fdatasync(fd) < 0) {
        error_setg_errno(errp, errno, "Parameter 'spill-file': cannot write "
                         "'%s'", path);
        close(fd);
        return false;
    }
    memcpy(sp.out_uuid, h.uuid, sizeof(h.uuid));
    sp.out_fd = fd;
    g_free(sp.out_path);
    sp.out_path = g_strdup(path);
    {
        /* an acknowledgement left by an earlier migration */
        g_autofree char *ack = g_strdup_printf("%s.ack", path);

        unlink(ack);
    }
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
    stat64_add(&sp.file_bytes, size);
    stat64_add(&sp.records, 1);
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

/* Source: the stream bytes the destination acknowledges, or 0 */
static uint64_t spill_acked(QIOChannelSpill *sc)
{
    uint8_t buf[SPILL_ACK_SIZE];

    if (sc->ack_fd < 0) {
        sc->ack_fd = qemu_open_old(sc->ack_path, O_RDONLY | O_CLOEXEC);
        if (sc->ack_fd < 0) {
            return 0;
        }
    }
    if (pread(sc->ack_fd, buf, sizeof(buf), 0) != sizeof(buf) ||
        memcmp(buf, SPILL_ACK_MAGIC, 8) ||
        memcmp(buf + 8, sc->uuid, SPILL_UUID_LEN)) {
        return 0;
    }
    return ldq_le_p(buf + 8 + SPILL_UUID_LEN);
}

/*
 * Source without the network: wait until the destination has read all
 * but @window bytes of the stream written so far.
 */
static int spill_wait_acked(QIOChannelSpill *sc, uint64_t window,
                            Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint64_t acked = spill_acked(sc), last = acked;

    if (acked + window < sc->stream_pos && spill_sync(sc, errp) < 0) {
        return -1;
    }
    while (acked + window < sc->stream_pos) {
        if (qatomic_read(&sc->shutdown)) {
            error_setg(errp, "shared-file-spill: cancelled");
            return -1;
        }
        if (acked != last) {
            last = acked;
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
        acked = spill_acked(sc);
    }
    return 0;
}

bool spill_commit(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return true;
    }
    sc = QIO_CHANNEL_SPILL(ioc);
    if (!sc->source) {
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
            sc->committed = true;
        }
    } else {
        /* without the network the destination starts on this alone */
        if (sc->fd < 0 ||
            !spill_write_record(sc, SPILL_REC_END, NULL, 0, 0, 0)) {
            error_setg(errp, "shared-file-spill: cannot write the end of "
                       "the spill file");
            return false;
        }
        if (spill_sync(sc, errp) < 0) {
            return false;
        }
        sc->committed = true;
    }
    trace_spill_close(true, sc->stream_pos, sc->file_pos);
    return true;
}

static ssize_t spill_writev(QIOChannel *ioc, const struct iovec *iov,
                            size_t niov, int *fds, size_t nfds, int flags,
                            Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);
    size_t total = iov_size(iov, niov);

    if (!sc->source || nfds) {
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
                        "(%s); the migration goes on through the spill file",
                        error_get_pretty(err));
            error_free(err);
            trace_spill_failover(true, sc->stream_pos);
            stat64_add(&sp.failovers, 1);
            sc->net_ok = false;
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
    memcpy(buf, SPILL_ACK_MAGIC, 8);
    memcpy(buf + 8, sc->uuid, SPILL_UUID_LEN);
    stq_le_p(buf + 8 + SPILL_UUID_LEN, sc->stream_pos);
    if (pwrite(sc->ack_fd, buf, sizeof(buf), 0) != sizeof(buf)) {
        warn_report_once("shared-file-spill: cannot write '%s'",
                         sc->ack_path);
    }
}

/* Destination: the next record of the file into sc->buf */
static SpillScanResult spill_read_record(QIOChannelSpill *sc, SpillRecord *rec,
                                         const char **why)
{
    uint64_t ask = SPILL_REC_HEADER_SIZE, want = 0;
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
        if (r != SPILL_SCAN_MORE || (uint64_t)n < ask || want <= ask) {
            /* done, or the record is not all there yet */
            return r;
        }
        ask = want;             /* the header is there: read the record */
    }
}

static ssize_t spill_read_file(QIOChannelSpill *sc, const struct iovec *iov,
                               size_t niov, Error **errp)
{
    int64_t since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    for (;;) {
        SpillRecord rec;
        const char *why = NULL;

        if (sc->stream_pos >= sc->cur_off &&
            sc->stream_pos < sc->cur_off + sc->cur_len) {
            size_t n = iov_from_buf(iov, niov, 0, sc->buf +
                                    SPILL_REC_HEADER_SIZE + sc->stream_pos -
                                    sc->cur_off,
                                    sc->cur_off + sc->cur_len -
                                    sc->stream_pos);

            sc->stream_pos += n;
            stat64_add(&sp.file_bytes, n);
            spill_ack(sc);
            return n;
        }
        sc->cur_len = 0;
        switch (spill_read_record(sc, &rec, &why)) {
        case SPILL_SCAN_RECORD:
            if (rec.type != SPILL_REC_STREAM) {
                error_setg(errp, "shared-file-spill: unexpected record type "
                           "%d in the spill file", rec.type);
                return -1;
            }
            stat64_add(&sp.records, 1);
            sc->cur_off = rec.offset;
            sc->cur_len = rec.len;
            since = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
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
            error_setg(errp, "shared-file-spill: the spill file is corrupt "
                       "at offset %" PRIu64 ": %s; nothing more of it is "
                       "used", sc->scan.pos, why);
            return -1;
        case SPILL_SCAN_MORE:
            if (qatomic_read(&sc->shutdown)) {
                error_setg(errp, "shared-file-spill: cancelled");
                return -1;
            }
            if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - since >
                SPILL_STALL_MS) {
                error_setg(errp, "shared-file-spill: the spill file did not "
                           "grow for %d s", SPILL_STALL_MS / 1000);
                return -1;
            }
            /* the source has not written it yet */
            if (qemu_in_coroutine()) {
                qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, SPILL_POLL_NS);
            } else {
                g_usleep(SPILL_POLL_NS / SCALE_US);
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

    if (sc->source) {
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
            sc->fd < 0) {
            error_propagate(errp, err);
            return n;
        }
        error_free(err);
        if (!spill_same_file(sc)) {
            error_setg(errp, "shared-file-spill: the network connection "
                       "broke, and the spill file is no longer this "
                       "migration's");
            return -1;
        }
        warn_report("shared-file-spill: the network connection broke after "
                    "%" PRIu64 " bytes; reading on from the spill file",
                    sc->stream_pos);
        trace_spill_failover(false, sc->stream_pos);
        stat64_add(&sp.failovers, 1);
        sc->net_ok = false;
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
    if (!qio_channel_has_feature(sc->net, QIO_CHANNEL_FEATURE_SHUTDOWN)) {
        return 0;
    }
    return qio_channel_shutdown(sc->net, how, errp);
}

/*
 * Remove the spill file and its acknowledgement file, if @path is still
 * the file @fd is open on (and not one a later migration created).
 */
static void spill_remove(const char *path, int fd)
{
    g_autofree char *ack = g_strdup_printf("%s.ack", path);
    struct stat a, b;

    if (fstat(fd, &a) < 0 || stat(path, &b) < 0 ||
        a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        return;
    }
    unlink(ack);
    unlink(path);
    trace_spill_remove(path);
}

static int spill_close(QIOChannel *ioc, Error **errp)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(ioc);

    if (sc->ack_fd >= 0) {
        close(sc->ack_fd);
        sc->ack_fd = -1;
    }
    if (sc->fd >= 0) {
        if (sc->source && !sc->committed) {
            /* use nothing of it */
            spill_write_record(sc, SPILL_REC_ABORT, NULL, 0, 0, 0);
            trace_spill_close(false, sc->stream_pos, sc->file_pos);
            /*
             * A destination reading it holds it open and reads ABORT
             * (or loses it): it fails either way.  Committed, the file
             * is the destination's to remove, which may still need END.
             */
            if (sc->fd >= 0) {
                spill_remove(sc->path, sc->fd);
            }
        }
        if (sc->fd >= 0) {
            close(sc->fd);
            sc->fd = -1;
        }
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

static QIOChannelSpill *spill_new(QIOChannel *net, int fd, bool source)
{
    QIOChannelSpill *sc = QIO_CHANNEL_SPILL(object_new(TYPE_QIO_CHANNEL_SPILL));

    object_ref(OBJECT(net));
    sc->net = net;
    sc->fd = fd;
    sc->source = source;
    sc->net_ok = true;
    sc->ack_fd = -1;
    sc->path = g_strdup(source && sp.out_path ? sp.out_path :
                        migrate_spill_file());
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

QIOChannel *spill_wrap_incoming(QIOChannel *net, Error **errp)
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
    QIOChannelSpill *sc;

    if (!object_dynamic_cast(OBJECT(ioc), TYPE_QIO_CHANNEL_SPILL)) {
        return true;
    }
    sc = QIO_CHANNEL_SPILL(ioc);
    if (sc->source) {
        return true;
    }
    if (sc->net_ok) {
        /* the network brought it all: nobody needs the file any more */
        spill_remove(sc->path, sc->fd);
        return true;
    }
    spill_ack(sc);
    for (;;) {
        SpillRecord rec;
        const char *why = NULL;

        switch (spill_read_record(sc, &rec, &why)) {
        case SPILL_SCAN_END:
            spill_remove(sc->path, sc->fd);
            return true;
        case SPILL_SCAN_RECORD:
            continue;           /* bytes past the stream's end: unused */
        case SPILL_SCAN_ABORT:
            error_setg(errp, "shared-file-spill: the source abandoned the "
                       "migration after sending all of it");
            return false;
        case SPILL_SCAN_CORRUPT:
            error_setg(errp, "shared-file-spill: the spill file is corrupt "
                       "at offset %" PRIu64 ": %s", sc->scan.pos, why);
            return false;
        case SPILL_SCAN_MORE:
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

bool spill_incoming_check_uuid(const uint8_t *uuid, Error **errp)
{
    if (memcmp(uuid, sp.in_uuid, SPILL_UUID_LEN)) {
        error_setg(errp, "shared-file-spill: '%s' is not the spill file the "
                   "source writes (another migration's, or a stale copy)",
                   migrate_spill_file());
        return false;
    }
    return true;
}

void spill_cleanup_outgoing(void)
{
    if (sp.out_fd >= 0) {
        /* created, but the connection failed before it was used */
        spill_remove(sp.out_path, sp.out_fd);
        close(sp.out_fd);
        sp.out_fd = -1;
    }
}

void spill_populate_info(MigrationInfo *info)
{
    SharedFileSpillInfo *p = g_new0(SharedFileSpillInfo, 1);

    p->file_bytes = stat64_get(&sp.file_bytes);
    p->records = stat64_get(&sp.records);
    p->failovers = stat64_get(&sp.failovers);
    p->file_errors = stat64_get(&sp.file_errors);
    info->shared_file_spill = p;
}
