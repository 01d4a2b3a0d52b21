/*
 * inflight-io-handoff: move the guest's disk requests in flight at
 * switchover to the destination instead of waiting for them
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Upstream stops the vCPUs and then waits, inside the downtime, for
 * every request in flight (bdrv_drain_all() in do_vm_stop(), then
 * bdrv_inactivate_all()).  With this capability:
 *
 * Source: the vCPUs stop without the drain; virtio-blk, which asks
 * migration_moves_inflight_io(), neither drains when its ioeventfd
 * stops nor leaves out its requests in flight from its state: it saves
 * them as it saves requests stopped on an error.  The disks stay active
 * until the end of the stream.  Then, with the guest gone to the
 * destination, the source waits for its requests, flushes, inactivates
 * its disks (which releases their image locks) and sends the settled
 * record after the stream: IO_HANDOFF_SETTLED and the number of
 * requests it moved.
 *
 * Destination: it starts the guest at the end of the stream as usual,
 * but inside a drained section of every node and with its disks not yet
 * activated: virtio-blk's restarted requests and any new request of
 * the guest wait in their BlockBackend's queue.  When the settled
 * record arrives it activates the disks and ends the drained section.
 * Every write of the source has then landed, so none lands after one
 * of the destination's.  If the record cannot be read (the connection
 * broke, the source died or has not the capability) it tries to
 * activate the disks every IO_HANDOFF_RETRY_MS: with image locking on,
 * that succeeds only once the source has let go of them.
 */

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/qapi-types-migration.h"
#include "block/block.h"
#include "block/block-global-state.h"
#include "block/block_int-common.h"
#include "hw/qdev-core.h"
#include "hw/virtio/virtio-blk.h"
#include "migration/misc.h"
#include "system/block-backend.h"
#include "system/runstate.h"
#include "migration.h"
#include "io-handoff.h"
#include "options.h"
#include "qemu-file.h"
#include "trace.h"

/* "SETTLED\0": after the stream's end, the source let go of its disks */
#define IO_HANDOFF_SETTLED      0x534554544c454400ULL
#define IO_HANDOFF_RETRY_MS     100
#define IO_HANDOFF_POLL_US      1000

static struct {
    /* source: between the stop and the device state */
    bool switchover;
    uint64_t moved;
    uint64_t settle_ms;
    /* destination */
    bool waiting;
    bool activate;
    bool failed;               /* the record could not be read */
    int64_t wait_start;
    QEMUTimer *retry;
} handoff;

bool migration_moves_inflight_io(void)
{
    return qatomic_read(&handoff.switchover);
}

void migration_inflight_io_moved(unsigned int n)
{
    handoff.moved += n;
}

bool io_handoff_check(Error **errp)
{
    BlockBackend *blk = NULL;

    while ((blk = blk_all_next(blk))) {
        DeviceState *dev = blk_get_attached_dev(blk);
        g_autofree char *id = NULL;
        VirtIOBlock *vblk;

        if (!dev || !blk_is_inserted(blk)) {
            continue;
        }
        id = blk_get_attached_dev_id(blk);
        vblk = (VirtIOBlock *)object_dynamic_cast(OBJECT(dev),
                                                  TYPE_VIRTIO_BLK);
        if (!vblk) {
            error_setg(errp, "Capability 'inflight-io-handoff' cannot move "
                       "the requests of device '%s' (%s): only virtio-blk "
                       "sends its requests in flight with its state", id,
                       object_get_typename(OBJECT(dev)));
            return false;
        }
        if (vblk->conf.iothread || vblk->conf.iothread_vq_mapping_list) {
            error_setg(errp, "Capability 'inflight-io-handoff' cannot move "
                       "the requests of device '%s': it runs in an "
                       "iothread", id);
            return false;
        }
    }
    return true;
}

void io_handoff_switchover_begin(void)
{
    handoff.moved = 0;
    handoff.settle_ms = 0;
    qatomic_set(&handoff.switchover, true);
    trace_io_handoff_switchover();
}

void io_handoff_switchover_end(void)
{
    qatomic_set(&handoff.switchover, false);
}

static bool io_handoff_busy(void)
{
    BlockDriverState *bs = NULL;

    while ((bs = bdrv_next_all_states(bs))) {
        if (qatomic_read(&bs->in_flight)) {
            return true;
        }
    }
    return false;
}

void io_handoff_settle(QEMUFile *f)
{
    int64_t start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    int ret;

    assert(bql_locked());
    /*
     * The guest runs on the destination: this is not downtime.  Wait
     * with the BQL released, so that the main loop completes the
     * requests and serves the monitor meanwhile; then drain what is
     * left, if anything.
     */
    while (io_handoff_busy()) {
        bql_unlock();
        g_usleep(IO_HANDOFF_POLL_US);
        bql_lock();
    }
    bdrv_drain_all();
    ret = bdrv_flush_all();
    if (!migration_block_inactivate()) {
        /* the destination holds its requests until this process exits */
        error_report("inflight-io-handoff: the disks could not be "
                     "inactivated; the destination holds its disk requests "
                     "until this process exits");
        return;
    }
    qemu_put_be64(f, IO_HANDOFF_SETTLED);
    qemu_put_be32(f, handoff.moved);
    qemu_fflush(f);
    handoff.settle_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - start;
    trace_io_handoff_settled(handoff.moved, ret, handoff.settle_ms,
                             qemu_file_get_error(f));
}

static void io_handoff_finish(MigrationIncomingState *mis)
{
    timer_free(handoff.retry);
    handoff.retry = NULL;
    handoff.settle_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                        handoff.wait_start;
    handoff.waiting = false;
    bdrv_drain_all_end();
    trace_io_handoff_released(handoff.settle_ms, handoff.failed);
    migration_incoming_state_destroy();
}

/* Activate the disks, or try again later; then let the requests go */
static void io_handoff_release(void *opaque)
{
    MigrationIncomingState *mis = opaque;
    Error *local_err = NULL;

    if (handoff.activate) {
        bdrv_activate_all(&local_err);
        if (local_err) {
            if (!handoff.retry) {
                error_report_err(error_copy(local_err));
                error_report("inflight-io-handoff: the guest's disk "
                             "requests are held until the disks can be "
                             "activated");
                handoff.retry = timer_new_ms(QEMU_CLOCK_REALTIME,
                                             io_handoff_release, mis);
            }
            error_free(local_err);
            timer_mod(handoff.retry, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                      IO_HANDOFF_RETRY_MS);
            return;
        }
    }
    io_handoff_finish(mis);
}

static void coroutine_fn io_handoff_wait_co(void *opaque)
{
    MigrationIncomingState *mis = opaque;
    QEMUFile *f = mis->from_src_file;
    uint64_t magic = qemu_get_be64(f);
    uint32_t moved = qemu_get_be32(f);

    if (qemu_file_get_error(f) || magic != IO_HANDOFF_SETTLED) {
        handoff.failed = true;
        error_report("inflight-io-handoff: no report that the source's "
                     "requests have settled (%s); the disks are activated "
                     "once the image locks allow it",
                     qemu_file_get_error(f) ? "the stream ended" :
                     "malformed report");
        /* no disk, no lock: nothing proves the source let go */
        handoff.activate = true;
    }
    trace_io_handoff_report(magic == IO_HANDOFF_SETTLED, moved);
    aio_bh_schedule_oneshot(qemu_get_aio_context(), io_handoff_release, mis);
}

void io_handoff_incoming_hold(void)
{
    assert(!handoff.waiting);
    handoff.waiting = true;
    handoff.failed = false;
    handoff.settle_ms = 0;
    handoff.wait_start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    /* the guest's requests wait in their BlockBackends' queues */
    bdrv_drain_all_begin();
    trace_io_handoff_hold(handoff.moved);
}

void io_handoff_incoming_wait(MigrationIncomingState *mis, bool activate)
{
    Coroutine *co = qemu_coroutine_create(io_handoff_wait_co, mis);

    handoff.activate = activate;
    qemu_coroutine_enter(co);
}

void io_handoff_populate_info(MigrationInfo *info)
{
    info->inflight_io_handoff = g_new0(InflightIoHandoffInfo, 1);
    info->inflight_io_handoff->requests_moved = handoff.moved;
    info->inflight_io_handoff->settle_time = handoff.waiting ?
        qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - handoff.wait_start :
        handoff.settle_ms;
    info->inflight_io_handoff->waiting = handoff.waiting;
}
