/*
 * Dirty page tracking by write faults in groups (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * With the write-fault-groups capability the source tracks the pages the
 * guest writes with userfaultfd write-protection instead of the
 * accelerator's dirty log.  See docs/devel/migration/write-fault-groups.rst
 * for the design and the ordering argument.
 */

#ifndef MIGRATION_WRITE_FAULT_H
#define MIGRATION_WRITE_FAULT_H

#include "exec/cpu-common.h"
#include "qapi/qapi-types-migration.h"

/*
 * Can this host and this VM's RAM be tracked?  Called when the
 * capability is set and again at setup.  On failure set @errp.
 */
bool write_fault_groups_check(Error **errp);

/*
 * Migration setup, with the BQL and the ramlist lock held, after the
 * migration bitmaps were allocated: write-protect guest RAM and start
 * the fault thread.  With @measure, the pages sent are recorded
 * (write_fault_groups_page_*()) and re-sends are measured: only when
 * every page goes out through the migration thread's copy, not by
 * multifd, xbzrle or another writer.  On failure nothing is left
 * protected.
 */
bool write_fault_groups_start(bool measure, Error **errp);

/*
 * A dirty bitmap sync, with the bitmap mutex held: re-protect the
 * groups made writable since the last sync, then merge them into the
 * RAMBlocks' migration bitmaps.  @last_stage is true when the VM is
 * stopped for switchover; the sync then waits for the fault thread to
 * finish the faults it is handling.  Returns the number of pages that
 * became dirty in the migration bitmaps.  Returns 0 and sets @errp if
 * the tracking failed; nothing can be trusted then.
 */
uint64_t write_fault_groups_sync(bool last_stage, Error **errp);

/* Remove the protection and stop the fault thread.  Idempotent. */
void write_fault_groups_stop(void);

bool write_fault_groups_active(void);

/*
 * Migration thread, sending the page at @offset of @rb: first forget
 * what was sent of it (it may go some way that is not recorded); then,
 * if it goes as a page of zeros, say so; if it goes in full, send it
 * from the buffer write_fault_groups_page_copy() returns (@page itself
 * when re-sends are not measured), whose bytes are recorded, and send
 * it at once, not asynchronously.
 */
void write_fault_groups_page_forget(RAMBlock *rb, ram_addr_t offset);
void write_fault_groups_page_zero(RAMBlock *rb, ram_addr_t offset);
uint8_t *write_fault_groups_page_copy(RAMBlock *rb, ram_addr_t offset,
                                      uint8_t *page);

/* query-migrate: the counters of the current or last migration. */
void write_fault_groups_fill_info(MigrationInfo *info);

#endif
