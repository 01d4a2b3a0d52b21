/*
 * shared-file-spill: its files
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Every file of a migration starts with a spill header (spill-format.h)
 * carrying the migration's uuid, so that no side reads another
 * migration's file, and is removed only while it is still the file
 * (device and inode) this migration created.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "migration.h"
#include "options.h"
#include "spill-int.h"
#include "trace.h"

/* The file of multifd channel @id beside the spill file @path */
char *spill_multifd_path(const char *path, unsigned id)
{
    return g_strdup_printf("%s" SPILL_MULTIFD_SUFFIX "%u", path, id);
}

/* Unlink the multifd channels' files beside the spill file @path */
void spill_unlink_multifd(const char *path)
{
    static const char *const suffix[] = {
        "", SPILL_ACK_SUFFIX, SPILL_END_SUFFIX,
    };

    for (int i = 0; migrate_multifd() && i < migrate_multifd_channels();
         i++) {
        g_autofree char *mfd = spill_multifd_path(path, i);

        for (int j = 0; j < ARRAY_SIZE(suffix); j++) {
            g_autofree char *file = g_strconcat(mfd, suffix[j], NULL);

            unlink(file);
        }
    }
}

/* The file @fd is open on (ino 0: none) */
void spill_file_id(int fd, dev_t *dev, ino_t *ino)
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
int spill_create(const char *path, const SpillHeader *h, Error **errp)
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

/*
 * Remove the spill file, its preempt, multifd and acknowledgement
 * files and, @with_rp, its return path's file, if @path is still the
 * file @dev/@ino (and not one a later migration created).
 */
void spill_remove(const char *path, dev_t dev, ino_t ino, bool with_rp)
{
    g_autofree char *ack = g_strconcat(path, SPILL_ACK_SUFFIX, NULL);
    g_autofree char *rp = g_strconcat(path, SPILL_RP_SUFFIX, NULL);
    g_autofree char *preempt = g_strconcat(path, SPILL_PREEMPT_SUFFIX, NULL);
    struct stat b;

    if (!ino || stat(path, &b) < 0 || b.st_dev != dev || b.st_ino != ino) {
        return;
    }
    unlink(ack);
    if (with_rp) {
        unlink(rp);
    }
    unlink(preempt);
    spill_unlink_multifd(path);
    unlink(path);
    trace_spill_remove(path);
}

int spill_pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t pos)
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

void spill_pos_init(SpillPos *p, const char *path, const char *suffix,
                    const char *magic, int nvals)
{
    assert(nvals <= SPILL_POS_MAX);
    if (p->path) {
        spill_pos_free(p);      /* an earlier migration's */
    }
    p->path = g_strconcat(path, suffix, NULL);
    p->fd = -1;
    p->magic = magic;
    p->nvals = nvals;
}

/* The writer: the file, empty; false: it cannot be created */
bool spill_pos_create(SpillPos *p)
{
    spill_pos_close(p);
    p->fd = qemu_create(p->path, O_WRONLY | O_TRUNC | O_CLOEXEC, 0600, NULL);
    return p->fd >= 0;
}

/* The writer: say @v (created if need be); false: not written */
bool spill_pos_write(SpillPos *p, const uint8_t *uuid, const uint64_t *v)
{
    uint8_t buf[SPILL_POS_SIZE(SPILL_POS_MAX)];
    size_t size = SPILL_POS_SIZE(p->nvals);

    if (p->fd < 0 && !spill_pos_create(p)) {
        return false;           /* the other side will give up waiting */
    }
    spill_pos_encode(buf, p->magic, uuid, v, p->nvals);
    if (pwrite(p->fd, buf, size, 0) != size) {
        warn_report_once("shared-file-spill: cannot write '%s'", p->path);
        return false;
    }
    return true;
}

/*
 * The reader: into @v what the writer said last; false: nothing yet, or
 * not for the migration @uuid.
 */
bool spill_pos_read(SpillPos *p, const uint8_t *uuid, uint64_t *v)
{
    uint8_t buf[SPILL_POS_SIZE(SPILL_POS_MAX)];
    ssize_t n;

    if (p->fd < 0) {
        p->fd = qemu_open_old(p->path, O_RDONLY | O_CLOEXEC);
        if (p->fd < 0) {
            return false;
        }
    }
    n = pread(p->fd, buf, SPILL_POS_SIZE(p->nvals), 0);
    return n >= 0 && spill_pos_decode(buf, n, p->magic, uuid, v, p->nvals);
}

void spill_pos_close(SpillPos *p)
{
    if (p->fd >= 0) {
        close(p->fd);
    }
    p->fd = -1;
}

void spill_pos_remove(SpillPos *p)
{
    struct stat mine, now;

    if (p->fd >= 0 && fstat(p->fd, &mine) == 0 &&
        stat(p->path, &now) == 0 && mine.st_dev == now.st_dev &&
        mine.st_ino == now.st_ino) {
        unlink(p->path);
    }
}

void spill_pos_free(SpillPos *p)
{
    spill_pos_close(p);
    g_clear_pointer(&p->path, g_free);
}
