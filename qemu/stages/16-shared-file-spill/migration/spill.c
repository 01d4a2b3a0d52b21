/*
 * shared-file-spill: setup, statistics and QMP
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The capability's code is split as multifd's is (spill-int.h); this
 * file creates the files of an outgoing migration, removes them when it
 * failed, checks that the destination reads this migration's files, and
 * keeps the statistics query-migrate shows.
 */

#include "qemu/osdep.h"
#include "qemu/guest-random.h"
#include "qapi/error.h"
#include "exec/target_page.h"
#include "migration.h"
#include "options.h"
#include "spill.h"
#include "spill-int.h"
#include "trace.h"

SpillState spill_state = { .out_fd = -1 };

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

void spill_reset_stats(void)
{
    stat64_set(&spill_state.file_bytes, 0);
    stat64_set(&spill_state.records, 0);
    stat64_set(&spill_state.failovers, 0);
    stat64_set(&spill_state.multifd_failovers, 0);
    stat64_set(&spill_state.file_errors, 0);
    stat64_set(&spill_state.pc_requests, 0);
    stat64_set(&spill_state.pc_pages, 0);
    stat64_set(&spill_state.pc_wait_ns, 0);
    qatomic_set(&spill_state.via_file, false);
    qatomic_set(&spill_state.in_multifd_via_file, false);
}

bool spill_prepare_outgoing(Error **errp)
{
    SpillHeader h = { .page_size = qemu_target_page_size() };
    static const char *const left[] = {
        /* what an earlier migration's destination wrote */
        SPILL_ACK_SUFFIX, SPILL_RP_SUFFIX,
        /* the preempt channel's file is created when it connects */
        SPILL_PREEMPT_SUFFIX,
    };
    const char *path;
    int fd;

    if (!spill_check_params(errp)) {
        return false;
    }
    path = migrate_spill_file();
    /* an earlier migrate that never connected */
    spill_cleanup_outgoing();
    spill_reset_stats();
    spill_multifd_forget_all();
    qatomic_set(&spill_state.multifd_unsynced, false);
    qatomic_set(&spill_state.end_written, false);
    qatomic_set(&spill_state.shut_error, false);
    qatomic_set(&spill_state.out_shutdown, false);
    qemu_guest_getrandom_nofail(h.uuid, sizeof(h.uuid));
    for (size_t i = 0; i < ARRAY_SIZE(left); i++) {
        g_autofree char *file = g_strconcat(path, left[i], NULL);

        unlink(file);
    }
    /* each multifd channel's file is created when it connects */
    spill_unlink_multifd(path);
    fd = spill_create(path, &h, errp);
    if (fd < 0) {
        return false;
    }
    memcpy(spill_state.out_uuid, h.uuid, sizeof(h.uuid));
    spill_state.out_fd = fd;
    spill_file_id(fd, &spill_state.out_dev, &spill_state.out_ino);
    g_free(spill_state.out_path);
    spill_state.out_path = g_strdup(path);
    trace_spill_prepare(path);
    return true;
}

/* Now, in us; never 1, page_requested's value for a request untimed */
static uintptr_t spill_now_us(void)
{
    return MAX(2, (uintptr_t)qemu_clock_get_us(QEMU_CLOCK_REALTIME));
}

gpointer spill_postcopy_requested(void)
{
    if (!migrate_shared_file_spill() || !qatomic_read(&spill_state.via_file)) {
        return (gpointer)1;
    }
    stat64_add(&spill_state.pc_requests, 1);
    return (gpointer)spill_now_us();
}

void spill_postcopy_placed(gpointer requested)
{
    uintptr_t at = (uintptr_t)requested;

    if (!migrate_shared_file_spill() || !qatomic_read(&spill_state.via_file)) {
        return;
    }
    stat64_add(&spill_state.pc_pages, 1);
    if (at > 1) {
        /* unsigned: right across a wrap of a 32-bit uintptr_t too */
        stat64_add(&spill_state.pc_wait_ns,
                   (uint64_t)(spill_now_us() - at) * SCALE_US);
    }
}

void spill_init(void)
{
    qemu_mutex_init(&spill_state.multifd_lock);
}

void spill_outgoing_uuid(uint8_t *uuid)
{
    memcpy(uuid, spill_state.out_uuid, SPILL_UUID_LEN);
}

bool spill_incoming_check_uuid(const uint8_t *uuid, Error **errp)
{
    /* loaded before the configuration's check of the capabilities */
    if (!migrate_shared_file_spill()) {
        error_setg(errp, "Capability 'shared-file-spill' is on at the "
                   "source but not here");
        return false;
    }
    if (memcmp(uuid, spill_state.in_uuid, SPILL_UUID_LEN)) {
        error_setg(errp, "shared-file-spill: '%s' is not the spill file the "
                   "source writes (another migration's, or a stale copy)",
                   migrate_spill_file());
        return false;
    }
    return true;
}

void spill_cleanup_outgoing(void)
{
    if (spill_state.out_fd >= 0) {
        /* created, but the connection failed before it was used */
        spill_remove(spill_state.out_path, spill_state.out_dev,
                     spill_state.out_ino, true);
        close(spill_state.out_fd);
        spill_state.out_fd = -1;
    }
}

void spill_populate_info(MigrationInfo *info)
{
    SharedFileSpillInfo *p = g_new0(SharedFileSpillInfo, 1);

    p->file_bytes = stat64_get(&spill_state.file_bytes);
    p->records = stat64_get(&spill_state.records);
    p->failovers = stat64_get(&spill_state.failovers);
    p->multifd_failovers = stat64_get(&spill_state.multifd_failovers);
    p->file_errors = stat64_get(&spill_state.file_errors);
    p->postcopy_requests = stat64_get(&spill_state.pc_requests);
    p->postcopy_pages = stat64_get(&spill_state.pc_pages);
    p->postcopy_wait_ms = stat64_get(&spill_state.pc_wait_ns) / SCALE_MS;
    info->shared_file_spill = p;
}
