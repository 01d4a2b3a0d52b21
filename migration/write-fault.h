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

/**
 * write_fault_groups_check: can this host and this VM's RAM be tracked?
 * @errp: pointer to a NULL-initialized error object
 *
 * Called when the capability is set and again at setup.
 *
 * Returns: true if they can; false with @errp set otherwise.
 */
bool write_fault_groups_check(Error **errp);

/**
 * write_fault_groups_start: start tracking
 * @measure: record the pages sent and measure re-sends
 * @errp: pointer to a NULL-initialized error object
 *
 * Migration setup, with the BQL and the ramlist lock held, after the
 * migration bitmaps were allocated: write-protect guest RAM and start
 * the fault thread.  With @measure, the pages sent are recorded
 * (write_fault_groups_page_*()) and re-sends are measured: only when
 * every page goes out through the migration thread's copy, not by
 * multifd, xbzrle or another writer.
 *
 * Returns: true on success; false with @errp set on failure, when
 * nothing is left protected.
 */
bool write_fault_groups_start(bool measure, Error **errp);

/**
 * write_fault_groups_sync: a dirty bitmap sync
 * @last_stage: true when the VM is stopped for switchover
 * @errp: pointer to a NULL-initialized error object
 *
 * With the bitmap mutex held: re-protect the groups made writable since
 * the last sync, then merge them into the RAMBlocks' migration bitmaps.
 * With @last_stage the sync waits for the fault thread to finish the
 * faults it is handling.
 *
 * Returns: the number of pages that became dirty in the migration
 * bitmaps; 0 with @errp set if the tracking failed, when nothing can be
 * trusted.
 */
uint64_t write_fault_groups_sync(bool last_stage, Error **errp);

/**
 * write_fault_groups_stop: stop tracking
 *
 * Remove the protection and stop the fault thread.  Idempotent.
 */
void write_fault_groups_stop(void);

/**
 * write_fault_groups_active: is tracking on?
 *
 * Returns: true from a successful write_fault_groups_start() until
 * write_fault_groups_stop().
 */
bool write_fault_groups_active(void);

/**
 * write_fault_groups_page_forget: a page is about to be sent
 * @rb: the page's RAM block
 * @offset: the page's offset in @rb
 *
 * Migration thread, sending the page at @offset of @rb: first forget
 * what was sent of it (it may go some way that is not recorded); then
 * call write_fault_groups_page_zero() if it goes as a page of zeros, or
 * write_fault_groups_page_copy() if it goes in full.
 */
void write_fault_groups_page_forget(RAMBlock *rb, ram_addr_t offset);

/**
 * write_fault_groups_page_zero: a page goes as a page of zeros
 * @rb: the page's RAM block
 * @offset: the page's offset in @rb
 *
 * Migration thread, after write_fault_groups_page_forget().
 */
void write_fault_groups_page_zero(RAMBlock *rb, ram_addr_t offset);

/**
 * write_fault_groups_page_copy: a page goes in full
 * @rb: the page's RAM block
 * @offset: the page's offset in @rb
 * @page: the page's bytes
 *
 * Migration thread, after write_fault_groups_page_forget().  Send the
 * page from the buffer returned, whose bytes are recorded, and send it
 * at once, not asynchronously.
 *
 * Returns: the buffer to send the page from (@page itself when
 * re-sends are not measured).
 */
uint8_t *write_fault_groups_page_copy(RAMBlock *rb, ram_addr_t offset,
                                      uint8_t *page);

/**
 * write_fault_groups_populate_info: report the counters
 * @info: query-migrate's reply, to fill
 *
 * query-migrate: the counters of the current or last migration.
 */
void write_fault_groups_populate_info(MigrationInfo *info);

#endif
