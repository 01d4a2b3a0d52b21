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

/**
 * spill_reset_stats: zero the statistics of a new migration
 */
void spill_reset_stats(void);

/* spill-channel.c */

/**
 * spill_multifd_forget_all: drop what the last migration left in
 * multifd_out
 */
void spill_multifd_forget_all(void);

/* spill-file.c */

/**
 * spill_multifd_path: the file of a multifd channel
 * @path: the spill file
 * @id: the channel's id
 *
 * Returns: the file of multifd channel @id beside the spill file @path,
 * to be freed with g_free().
 */
char *spill_multifd_path(const char *path, unsigned id);

/**
 * spill_unlink_multifd: unlink the multifd channels' files
 * @path: the spill file
 *
 * Unlink the multifd channels' files beside the spill file @path.
 */
void spill_unlink_multifd(const char *path);

/**
 * spill_file_id: the file a descriptor is open on
 * @fd: the descriptor
 * @dev: set to the file's device
 * @ino: set to the file's inode (0: none)
 */
void spill_file_id(int fd, dev_t *dev, ino_t *ino);

/**
 * spill_create: create a spill file
 * @path: where
 * @h: what its spill header carries
 * @errp: pointer to a NULL-initialized error object
 *
 * A new file at @path with a spill header carrying @h.
 *
 * Returns: the file's descriptor; -1 with @errp set on error.
 */
int spill_create(const char *path, const SpillHeader *h, Error **errp);

/**
 * spill_remove: remove a migration's files
 * @path: the spill file
 * @dev: the device of the file this migration created
 * @ino: its inode (0: none, nothing is removed)
 * @with_rp: remove the return path's file too
 *
 * Remove the spill file, its preempt, multifd and acknowledgement
 * files and, @with_rp, its return path's file, if @path is still the
 * file @dev/@ino (and not one a later migration created).
 */
void spill_remove(const char *path, dev_t dev, ino_t ino, bool with_rp);

/**
 * spill_pwrite_all: write all of a buffer at a position
 * @fd: the file
 * @buf: the bytes
 * @len: how many
 * @pos: where in the file
 *
 * Returns: 0 on success, otherwise an errno value (ENOSPC for a write
 * that wrote nothing).
 */
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

/**
 * spill_pos_init: name a position file, not opened yet
 * @p: the position file
 * @path: the spill file
 * @suffix: the position file's suffix, after @path
 * @magic: its magic
 * @nvals: its number of values, at most SPILL_POS_MAX
 */
void spill_pos_init(SpillPos *p, const char *path, const char *suffix,
                    const char *magic, int nvals);

/**
 * spill_pos_create: the writer creates the file, empty
 * @p: the position file
 *
 * Returns: true on success, false when it cannot be created.
 */
bool spill_pos_create(SpillPos *p);

/**
 * spill_pos_write: the writer says where it is
 * @p: the position file, created if need be
 * @uuid: the migration's uuid
 * @v: the values
 *
 * Returns: true on success, false when not written.
 */
bool spill_pos_write(SpillPos *p, const uint8_t *uuid, const uint64_t *v);

/**
 * spill_pos_read: the reader reads where the writer is
 * @p: the position file
 * @uuid: the migration's uuid
 * @v: set to what the writer said last
 *
 * Returns: true on success; false: nothing yet, or not for the
 * migration @uuid.
 */
bool spill_pos_read(SpillPos *p, const uint8_t *uuid, uint64_t *v);

/**
 * spill_pos_close: close a position file, if open
 * @p: the position file
 */
void spill_pos_close(SpillPos *p);

/**
 * spill_pos_remove: the writer removes its position file, if the file
 * at its name is still the one it writes (not a later migration's)
 * @p: the position file
 *
 * For a writer whose reader is gone: the source that abandoned the
 * migration removed the files beside the spill file already, and a
 * position file the destination wrote after that would stay.
 */
void spill_pos_remove(SpillPos *p);

/**
 * spill_pos_free: close a position file and free its name
 * @p: the position file
 */
void spill_pos_free(SpillPos *p);

#endif
