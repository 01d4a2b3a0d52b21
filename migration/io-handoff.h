/*
 * inflight-io-handoff: move the guest's disk requests in flight at
 * switchover to the destination instead of waiting for them
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef MIGRATION_IO_HANDOFF_H
#define MIGRATION_IO_HANDOFF_H

#include "qapi/qapi-types-migration.h"
#include "migration.h"

/**
 * io_handoff_check: whether every block device can move its requests
 * @errp: set to the first device that cannot, and why
 *
 * Only virtio-blk without an iothread sends its requests in flight
 * with its state.  Devices without a medium are not counted.
 *
 * Returns: true if the capability can work with these devices
 */
bool io_handoff_check(Error **errp);

/**
 * io_handoff_switchover_begin: from the vCPUs' stop to the device state,
 * devices neither wait for their requests nor leave them out
 */
void io_handoff_switchover_begin(void);

/**
 * io_handoff_switchover_end: after the device state, or on a failure
 */
void io_handoff_switchover_end(void);

/**
 * io_handoff_settle: after the stream's end, wait for the requests,
 * flush and inactivate the disks, and tell the destination
 * @f: the migration stream
 *
 * Called with the BQL held.  If the disks cannot be inactivated, no
 * record is sent and the destination holds its requests until the
 * image locks allow it to activate its disks.
 */
void io_handoff_settle(QEMUFile *f);

/**
 * io_handoff_incoming_hold: before the destination's guest starts,
 * hold every disk request in a drained section
 */
void io_handoff_incoming_hold(void);

/**
 * io_handoff_incoming_wait: read the source's record, then activate the
 * disks (if @activate), release the requests and destroy @mis
 * @mis: the incoming migration, whose from_src_file holds the record
 * @activate: whether the disks are activated (the guest runs)
 */
void io_handoff_incoming_wait(MigrationIncomingState *mis, bool activate);

/**
 * io_handoff_populate_info: report the counters
 * @info: query-migrate's reply, to fill
 */
void io_handoff_populate_info(MigrationInfo *info);

#endif
