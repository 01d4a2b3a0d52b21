/*
 * shared-file-spill: the migration stream also through a shared file
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_SPILL_H
#define MIGRATION_SPILL_H

#include "io/channel.h"
#include "qapi/qapi-types-migration.h"

/* Both sides: is spill-file set? */
bool spill_check_params(Error **errp);

/*
 * Source, from migrate: create spill-file (truncated) and write its
 * header, before the connection is made.
 */
bool spill_prepare_outgoing(Error **errp);

typedef enum SpillChannelKind {
    SPILL_CHANNEL_MAIN,         /* the migration stream */
    SPILL_CHANNEL_PREEMPT,      /* postcopy's preempt channel */
    SPILL_CHANNEL_MULTIFD,      /* a multifd channel */
} SpillChannelKind;

/*
 * The one place a migration channel gets its file: @ioc, a channel of
 * @kind that this side (@source: the source) has just connected or
 * accepted, as the migration is to use it, a new reference.
 *
 * With shared-file-spill, outside a postcopy recovery (which goes over
 * the network alone), that is a spill channel over @ioc:
 *   - the stream: the source writes every byte to @ioc and, as STREAM
 *     records, to the spill file, and goes on through the file alone
 *     when @ioc breaks; the destination reads @ioc, then the file from
 *     the same stream offset.  The destination fails (NULL and @errp)
 *     when the spill file is not there or not a spill file.
 *   - the preempt channel: the same through spill-file + ".preempt";
 *     the source fails when it cannot create that file.
 *   - a multifd channel: the same through spill-file + ".mfdN", once
 *     spill_multifd_bind() has told it its id N; until then a cut fails
 *     the migration.
 * Otherwise it is @ioc itself.  The return path is not a channel of its
 * own: see spill_get_return_path().
 *
 * With TLS, call it twice: with the socket, before the TLS upgrade, so
 * that the files hold the session's ciphertext (the spill channel then
 * carries both directions, the return path's through spill-file +
 * ".rp"); and with the TLS channel once its handshake is done, which
 * lets the spill channel fail over from then on and returns @ioc.
 */
QIOChannel *spill_wrap_channel(QIOChannel *ioc, SpillChannelKind kind,
                               bool source, Error **errp);

/*
 * Destination, with TLS: the kind of the channel just accepted, which
 * cannot be told by its first bytes before the handshake.  The source
 * connects the stream first and, once its handshake is done, the
 * multifd channels; postcopy's preempt channel comes at the switchover.
 */
SpillChannelKind spill_incoming_kind(void);

/*
 * Multifd channel @id is @ioc (the source: as soon as it is connected;
 * the destination: once its first packet said @id): its spill channel,
 * if any, takes its file spill-file + ".mfdN" (the source creates it)
 * and may fail over from now on.  False, with @errp: the migration must
 * fail.
 */
bool spill_multifd_bind(QIOChannel *ioc, uint8_t id, Error **errp);

/*
 * The channel for the return path of @ioc, a new reference: @ioc itself
 * unless it is a spill channel (NULL: NULL).  The destination writes
 * its return path to spill-file + ".rp" as well as to the network, and
 * the source reads on from there once the network breaks, as for the
 * stream.  NULL (reported) when the destination cannot create that
 * file.
 */
QIOChannel *spill_return_path(QIOChannel *ioc);

/*
 * qemu_file_get_return_path() for the migration's QEMUFile @f, through
 * spill_return_path() when @f's channel is a spill channel; @source:
 * the source's (an input).  NULL: see spill_return_path().
 */
QEMUFile *spill_get_return_path(QEMUFile *f, bool source);

/*
 * Source, before it stops the guest, with the BQL free: if the network
 * is lost, wait until the destination has read the stream written so
 * far, so that the downtime does not include its catching up.  After a
 * false return the migration must fail.
 */
bool spill_catch_up(QIOChannel *ioc, Error **errp);

/*
 * Source, after the last byte of the stream, with the BQL free: if the
 * network is lost, wait until the destination has read the whole stream
 * from the file; then write END, which lets a destination that reads
 * the file start the guest.  After a false return the migration must
 * fail (the file then ends in ABORT), unless spill_committed().
 */
bool spill_commit(QIOChannel *ioc, Error **errp);

/*
 * Source: has spill_commit() written END into the file, and has the
 * destination not said (SHUT with an error) that it failed?  A
 * destination may then run the guest on the file alone, whatever
 * happens next (a failed sync, a SHUT that never comes), so the source
 * must never run it again: the migration ends COMPLETED, and what went
 * wrong after END is reported, not acted upon.  Reset by the next
 * migrate.
 */
bool spill_committed(void);

/* Source: the return path brought the destination's SHUT */
void spill_note_shut(bool error);

/*
 * Destination, after the stream loaded: if it came partly from the
 * file, wait for the source's END; false: do not start the guest.
 */
bool spill_incoming_commit(QIOChannel *ioc, Error **errp);

/*
 * The spill file's uuid goes in the configuration section: the source
 * sends the one it wrote, the destination checks that the file it
 * opened has it, and that both sides agree on spill_pages_enabled()
 * (@pages, the source's).
 */
void spill_outgoing_uuid(uint8_t *uuid);
bool spill_incoming_check_uuid(const uint8_t *uuid, bool pages, Error **errp);

/* Source, at the end of a migration: a spill file never connected */
void spill_cleanup_outgoing(void);

/*
 * The page datapath (docs/devel/migration/shared-file-spill.rst).
 *
 * Source: every copy of a page sent, by either path, takes a number
 * from spill_next_seq() after its dirty bit was cleared and before the
 * page is read.  The pages writer runs from the end of the RAM setup
 * until spill_pages_stop(), which must come before the last pass over
 * RAM (the pages of a failed write or sync are dirty again then).  Its
 * one owner is the migration thread: ram_save_setup() starts it there,
 * migration_completion() stops it with @sync before it stops the
 * guest, and the thread's end stops it without once the migration
 * failed or was cancelled; the cleanups after the thread only check
 * that it is stopped (spill_pages_running()).
 */
typedef struct SpillClaim {
    RAMBlock *block;
    uint64_t offset;
    uint64_t seq;
} SpillClaim;

/* Is the pages datapath on (not with postcopy-ram, TLS or multifd)? */
bool spill_pages_enabled(void);
uint64_t spill_next_seq(void);
void spill_pages_start(void);
/* @sync: the migration goes on; false: it is over, nothing is synced */
void spill_pages_stop(bool sync);
bool spill_pages_running(void);

/*
 * In ram.c: claim up to @max dirty, non-zero pages for the pages file,
 * from the back of RAM (their dirty bits cleared, numbers taken), or
 * give claimed pages back to the network (dirty again).  The caller
 * holds the RCU read lock.
 */
int ram_spill_claim(SpillClaim *claims, int max);
void ram_spill_unclaim(const SpillClaim *claims, int n);

/*
 * Destination: the reader starts once RAM is set up; a page off the
 * network is loaded with spill_load_page() (@data NULL: a zero page),
 * read first into spill_page_buffer().
 */
bool spill_pages_incoming_start(Error **errp);
void spill_pages_incoming_stop(void);
bool spill_load_page(RAMBlock *rb, uint64_t offset, void *host, uint64_t seq,
                     const void *data, Error **errp);
uint8_t *spill_page_buffer(void);
/*
 * Destination, disk-backed-pages: the reference record @rec with
 * sequence number @seq for page @offset of @rb, loaded if it is the
 * newest copy so far and its block is verified; if it is the newest and
 * refused, the page is pending and the source asked for it in full.  An
 * older copy is dropped.  Returns 0, or -EINVAL with @errp.
 */
int spill_load_ref(RAMBlock *rb, uint64_t offset, void *host, uint64_t seq,
                   const uint8_t *rec, Error **errp);

/*
 * Destination, postcopy, under page_request_mutex: what postcopy's own
 * table of requested pages (MigrationIncomingState.page_requested)
 * keeps for a page requested now: 1, as without the capability; once
 * a channel failed over, when the request was made, so that
 * spill_postcopy_placed() adds up how long the guest waited for the
 * pages that came through the files.
 */
gpointer spill_postcopy_requested(void);

/*
 * ... a page was placed; @requested: what the table kept for it, NULL
 * if it was not requested
 */
void spill_postcopy_placed(gpointer requested);

/* Registers the section that tells where the pages file ends */
void spill_init(void);

void spill_populate_info(MigrationInfo *info);

#endif
