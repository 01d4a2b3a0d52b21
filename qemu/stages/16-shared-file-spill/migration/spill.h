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

/**
 * spill_check_params: is spill-file set?
 * @errp: pointer to a NULL-initialized error object
 *
 * Both sides.
 *
 * Returns: true if it is; false with @errp set otherwise.
 */
bool spill_check_params(Error **errp);

/**
 * spill_prepare_outgoing: create the spill file
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, from migrate: create spill-file (truncated) and write its
 * header, before the connection is made.
 *
 * Returns: true on success; false with @errp set on error.
 */
bool spill_prepare_outgoing(Error **errp);

typedef enum SpillChannelKind {
    SPILL_CHANNEL_MAIN,         /* the migration stream */
    SPILL_CHANNEL_PREEMPT,      /* postcopy's preempt channel */
    SPILL_CHANNEL_MULTIFD,      /* a multifd channel */
} SpillChannelKind;

/**
 * spill_wrap_channel: the channel a migration channel is to use
 * @ioc: a channel this side has just connected or accepted
 * @kind: what @ioc is for
 * @source: true on the source
 * @errp: pointer to a NULL-initialized error object
 *
 * The one place a migration channel gets its file: the channel, a new
 * reference, that the migration is to use for @ioc.
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
 *
 * Returns: the channel, a new reference; NULL with @errp set on
 * failure.
 */
QIOChannel *spill_wrap_channel(QIOChannel *ioc, SpillChannelKind kind,
                               bool source, Error **errp);

/**
 * spill_incoming_kind: the kind of the channel just accepted
 *
 * Destination, with TLS: the kind cannot be told by the channel's first
 * bytes before the handshake.  The source connects the stream first
 * and, once its handshake is done, the multifd channels; postcopy's
 * preempt channel comes at the switchover.
 *
 * Returns: the kind of the channel just accepted.
 */
SpillChannelKind spill_incoming_kind(void);

/**
 * spill_multifd_bind: a multifd channel's id is known
 * @ioc: the channel
 * @id: its id
 * @errp: pointer to a NULL-initialized error object
 *
 * Multifd channel @id is @ioc (the source: as soon as it is connected;
 * the destination: once its first packet said @id): its spill channel,
 * if any, takes its file spill-file + ".mfdN" (the source creates it)
 * and may fail over from now on.
 *
 * Returns: true on success; false, with @errp set: the migration must
 * fail.
 */
bool spill_multifd_bind(QIOChannel *ioc, uint8_t id, Error **errp);

/**
 * spill_return_path: the channel for a channel's return path
 * @ioc: the channel, or NULL
 *
 * The destination writes its return path to spill-file + ".rp" as well
 * as to the network, and the source reads on from there once the
 * network breaks, as for the stream.
 *
 * Returns: the channel for the return path of @ioc, a new reference:
 * @ioc itself unless it is a spill channel (NULL for NULL).  NULL
 * (reported) when the destination cannot create that file.
 */
QIOChannel *spill_return_path(QIOChannel *ioc);

/**
 * spill_get_return_path: qemu_file_get_return_path() for a migration
 * @f: the migration's QEMUFile
 * @source: true for the source's return path (an input)
 *
 * Through spill_return_path() when @f's channel is a spill channel.
 *
 * Returns: the return path's QEMUFile; NULL: see spill_return_path().
 */
QEMUFile *spill_get_return_path(QEMUFile *f, bool source);

/**
 * spill_catch_up: let the destination catch up before the downtime
 * @ioc: the stream's channel
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, before it stops the guest, with the BQL free: if the network
 * is lost, wait until the destination has read the stream written so
 * far, so that the downtime does not include its catching up.
 *
 * Returns: true on success; false with @errp set, after which the
 * migration must fail.
 */
bool spill_catch_up(QIOChannel *ioc, Error **errp);

/**
 * spill_commit: end the spill file
 * @ioc: the stream's channel
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, after the last byte of the stream, with the BQL free: if the
 * network is lost, wait until the destination has read the whole stream
 * from the file; then write END, which lets a destination that reads
 * the file start the guest.
 *
 * Returns: true on success; false with @errp set, after which the
 * migration must fail (the file then ends in ABORT), unless
 * spill_committed().
 */
bool spill_commit(QIOChannel *ioc, Error **errp);

/**
 * spill_committed: may the destination run the guest?
 *
 * Source: a destination may run the guest on the file alone, whatever
 * happens next (a failed sync, a SHUT that never comes), once END is in
 * it, so the source must never run it again: the migration ends
 * COMPLETED, and what went wrong after END is reported, not acted upon.
 * Reset by the next migrate.
 *
 * Returns: true if spill_commit() has written END into the file, and
 * the destination has not said (SHUT with an error) that it failed.
 */
bool spill_committed(void);

/**
 * spill_note_shut: the return path brought the destination's SHUT
 * @error: the SHUT says the destination failed
 *
 * Source.
 */
void spill_note_shut(bool error);

/**
 * spill_incoming_commit: wait for the source's END if needed
 * @ioc: the stream's channel
 * @errp: pointer to a NULL-initialized error object
 *
 * Destination, after the stream loaded: if it came partly from the
 * file, wait for the source's END.
 *
 * Returns: true on success; false, with @errp set: do not start the
 * guest.
 */
bool spill_incoming_commit(QIOChannel *ioc, Error **errp);

/**
 * spill_outgoing_uuid: the uuid of the spill file the source wrote
 * @uuid: set to it, SPILL_UUID_LEN bytes
 *
 * The spill file's uuid goes in the configuration section: the source
 * sends the one it wrote.
 */
void spill_outgoing_uuid(uint8_t *uuid);

/**
 * spill_incoming_check_uuid: check the configuration section's uuid
 * @uuid: the uuid the source sent
 * @errp: pointer to a NULL-initialized error object
 *
 * The destination checks that the file it opened has @uuid.
 *
 * Returns: true if so; false with @errp set otherwise.
 */
bool spill_incoming_check_uuid(const uint8_t *uuid, Error **errp);

/**
 * spill_cleanup_outgoing: remove a spill file never connected
 *
 * Source, at the end of a migration.
 */
void spill_cleanup_outgoing(void);

/**
 * spill_postcopy_requested: a page is requested now
 *
 * Destination, postcopy, under page_request_mutex.
 *
 * Returns: what postcopy's own table of requested pages
 * (MigrationIncomingState.page_requested) keeps for a page requested
 * now: 1, as without the capability; once a channel failed over, when
 * the request was made, so that spill_postcopy_placed() adds up how
 * long the guest waited for the pages that came through the files.
 */
gpointer spill_postcopy_requested(void);

/**
 * spill_postcopy_placed: a page was placed
 * @requested: what the table kept for it, NULL if it was not requested
 *
 * Destination, postcopy, under page_request_mutex.
 */
void spill_postcopy_placed(gpointer requested);

/**
 * spill_init: set up the capability's state, once
 */
void spill_init(void);

/**
 * spill_populate_info: report the counters
 * @info: query-migrate's reply, to fill
 */
void spill_populate_info(MigrationInfo *info);

#endif
