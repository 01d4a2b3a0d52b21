/*
 * shared-file-spill: what its source files share
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Private to migration/spill*.c, as multifd.h is to multifd*.c:
 *
 *   spill.c          setup, teardown, statistics and QMP
 *   spill-file.c     the files: create, identify, remove, positions
 *   spill-channel.c  QIOChannelSpill: the stream, its return path,
 *                    postcopy's preempt channel and the multifd channels
 *                    teed to files, failover and commit
 *   spill-pages.c    the pages datapath: the source's writer thread and
 *                    the destination's reader thread
 */

#ifndef MIGRATION_SPILL_INT_H
#define MIGRATION_SPILL_INT_H

#include "qemu/stats64.h"
#include "qemu/thread.h"
#include "spill-format.h"

/*
 * The files beside the spill file (spill-file + suffix).  Each of the
 * position files holds spill_pos_encode()'s layout.
 */
/* destination: stream bytes read (SPILL_ACK_MAGIC) */
#define SPILL_ACK_SUFFIX        ".ack"
/* source: the pages datapath's PAGE records */
#define SPILL_PAGES_SUFFIX      ".pages"
/* destination: bytes of the pages file loaded (SPILL_LOADED_MAGIC) */
#define SPILL_LOADED_SUFFIX     ".loaded"
/* destination: the return path */
#define SPILL_RP_SUFFIX         ".rp"
/* source: postcopy's preempt channel */
#define SPILL_PREEMPT_SUFFIX    ".preempt"
/*
 * source: multifd channel N, spill-file ".mfdN"; the destination says
 * how far it read it in ".mfdN.ack" (as SPILL_ACK_SUFFIX), and the
 * source how much it sent over the network before it closed the
 * channel in ".mfdN.end" (SPILL_END_MAGIC)
 */
#define SPILL_MULTIFD_SUFFIX    ".mfd"
#define SPILL_END_SUFFIX        ".end"

/* A destination waits this long for a file to grow before it fails */
#define SPILL_STALL_MS          (30 * 1000)
/* (a record that does not check out: SPILL_TORN_MS, spill-format.h) */
#define SPILL_POLL_NS           (10 * SCALE_MS)

typedef struct SpillState {
    int out_fd;                 /* source, from migrate to the channel */
    char *out_path;
    uint8_t out_uuid[SPILL_UUID_LEN];
    dev_t out_dev;
    ino_t out_ino;
    uint8_t in_uuid[SPILL_UUID_LEN];    /* the file the destination opened */
    Stat64 file_bytes;
    Stat64 records;
    Stat64 failovers;
    Stat64 multifd_failovers;
    Stat64 file_errors;
    Stat64 pages;
    Stat64 stale_pages;
    /* source: END is in the file (atomic) */
    bool end_written;
    /* source: the destination said in SHUT that it failed (atomic) */
    bool shut_error;
    /* destination, postcopy */
    bool via_file;              /* atomic: a channel failed over */
    /* destination: a multifd channel brought bytes from its file */
    bool in_multifd_via_file;   /* atomic */
    /* destination: when a channel last read anything (atomic, ms) */
    int64_t in_read_at;
    /* destination, TLS: the stream's channel is accepted, multifd's */
    bool in_main;
    int in_multifd;
    /* source: the stream's channel was shut down: cancelled (atomic) */
    bool out_shutdown;
    /*
     * source: the multifd channels' spill channels (a reference each,
     * until closed), for the commit and the syncs
     */
    QemuMutex multifd_lock;
    GSList *multifd_out;
    /* source: a multifd channel without the network has unsynced bytes */
    bool multifd_unsynced;      /* atomic */
    Stat64 pc_requests;
    Stat64 pc_pages;
    Stat64 pc_wait_ns;
} SpillState;

extern SpillState spill_state;

/* spill.c */
void spill_reset_stats(void);

/* spill-channel.c: drop what the last migration left in multifd_out */
void spill_multifd_forget_all(void);

/* spill-file.c */
char *spill_multifd_path(const char *path, unsigned id);
void spill_unlink_multifd(const char *path);
void spill_file_id(int fd, dev_t *dev, ino_t *ino);
int spill_create(const char *path, const SpillHeader *h, Error **errp);
void spill_remove(const char *path, dev_t dev, ino_t ino, bool with_rp);
int spill_pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t pos);

/*
 * A position file (spill_pos_encode()): one side says in it how far it
 * is, the other side reads that.  Each side opens it when it first
 * needs it, the reader once it exists.
 */
#define SPILL_POS_MAX           2       /* values */

typedef struct SpillPos {
    char *path;
    const char *magic;
    int nvals;
    int fd;                     /* -1: not open */
} SpillPos;

void spill_pos_init(SpillPos *p, const char *path, const char *suffix,
                    const char *magic, int nvals);
bool spill_pos_create(SpillPos *p);
bool spill_pos_write(SpillPos *p, const uint8_t *uuid, const uint64_t *v);
bool spill_pos_read(SpillPos *p, const uint8_t *uuid, uint64_t *v);
void spill_pos_close(SpillPos *p);
void spill_pos_free(SpillPos *p);

/* spill-pages.c */
void spill_pages_init(void);
bool spill_pages_prepare(const char *path, const SpillHeader *h,
                         Error **errp);
void spill_pages_cleanup_outgoing(void);
bool spill_pages_incoming_open(const char *path, const SpillHeader *h,
                               Error **errp);
bool spill_pages_marker_seen(void);

#endif
