/*
 * disk-backed-pages: send clean copies of shared-disk blocks as references
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The QEMU side of the disk-backed-pages capability; the map parser,
 * the reference record and the policy are in disk-map.c.  See
 * docs/devel/migration/disk-backed-pages.rst.
 */

#ifndef MIGRATION_DISK_BACKED_H
#define MIGRATION_DISK_BACKED_H

#include "system/ramblock.h"
#include "qapi/qapi-types-migration.h"
#include "disk-map.h"

/**
 * disk_backed_check_node: is disk-backed-node usable?
 * @errp: pointer to a NULL-initialized error object
 *
 * Both sides: is disk-backed-node a raw node this QEMU has?
 *
 * Returns: true if it is; false with @errp set otherwise.
 */
bool disk_backed_check_node(Error **errp);

/**
 * disk_backed_learn_update: start or stop the learned map
 *
 * Main loop, after the capabilities or parameters changed, and when
 * the machine is ready: learn from the guest's requests to
 * disk-backed-node while the capability is on, and forget everything
 * learned when it goes off.  Nothing changes during a migration.
 */
void disk_backed_learn_update(void);

/**
 * disk_backed_save_setup: set up the source
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, from ram_save_setup() with the BQL held: open the node, start
 * tracking writes to it and read the guest's map.  A map that cannot be
 * used is no error: every page then goes in full.
 *
 * Returns: true on success; false with @errp set on error.
 */
bool disk_backed_save_setup(Error **errp);

/**
 * disk_backed_save_cleanup: release what disk_backed_save_setup() took
 */
void disk_backed_save_cleanup(void);

/**
 * disk_backed_save_ref: may a page go as a reference?
 * @rb: the page's RAM block
 * @offset: the page's offset in @rb
 * @last_stage: true when the VM is stopped for switchover
 * @rec: set to the reference record, DISK_REF_RECORD_LEN bytes
 *
 * Source, migration thread.  The first send of a page decides: later
 * sends are always in full.
 *
 * Returns: true if page @offset of @rb goes as a reference, @rec then
 * filled.
 */
bool disk_backed_save_ref(RAMBlock *rb, ram_addr_t offset, bool last_stage,
                          uint8_t *rec);

/**
 * disk_backed_follow_map: follow the guest's map
 *
 * Source, migration thread, without the BQL, at each iteration: when
 * the map's generation has changed since it was last read, read its
 * records again, a bounded chunk a call, into the learned map.
 */
void disk_backed_follow_map(void);

/**
 * disk_backed_may_ref: may a page still go as a reference?
 * @rb: the page's RAM block
 * @offset: the page's offset in @rb
 *
 * Source, any thread with the RCU read lock held.  A hint, racy against
 * the page's first send.
 *
 * Returns: true if page @offset of @rb may still go as a reference.
 */
bool disk_backed_may_ref(RAMBlock *rb, ram_addr_t offset);

/**
 * disk_backed_ref_sent: a reference replaced a page
 * @len: the reference's bytes in the stream
 *
 * Source: a reference of @len bytes in the stream has replaced a page.
 */
void disk_backed_ref_sent(uint64_t len);

/**
 * disk_backed_ref_nacked: the destination refused a reference
 * @idstr: the RAM block's idstr
 * @offset: the page's offset in the block
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, return-path thread: the destination refused the reference to
 * page @offset of RAM block @idstr.
 *
 * Returns: 0 on success; -EINVAL with @errp set for a page that was
 * not sent as a reference.
 */
int disk_backed_ref_nacked(const char *idstr, uint64_t offset,
                           Error **errp);

/**
 * disk_backed_pong: the pong to QEMU_VM_PING_DISK_REFS arrived
 *
 * Source, return-path thread.
 */
void disk_backed_pong(void);

/**
 * disk_backed_take_nacks: mark the refused pages dirty
 * @rb: the RAM block
 * @bmap: its migration bitmap
 *
 * Source, migration thread with bitmap_mutex and RCU held: mark the
 * refused pages of @rb dirty in @bmap.
 *
 * Returns: how many of them were clean.
 */
uint64_t disk_backed_take_nacks(RAMBlock *rb, unsigned long *bmap);

/**
 * disk_backed_close_refs: send no more references
 * @f: the migration stream
 * @errp: pointer to a NULL-initialized error object
 *
 * Source, migration thread, before the VM is stopped for switchover
 * (precopy's completion or postcopy's start): send no more references,
 * and wait until the destination has checked every reference sent, so
 * that every refusal has arrived.
 *
 * Returns: 0 on success; a negative errno with @errp set on failure.
 */
int disk_backed_close_refs(QEMUFile *f, Error **errp);

/**
 * disk_backed_incoming_open: open disk-backed-node for reading
 * @errp: pointer to a NULL-initialized error object
 *
 * Destination, from migrate-incoming.  The node is closed again at the
 * end of the incoming migration.
 *
 * Returns: true on success; false with @errp set on error.
 */
bool disk_backed_incoming_open(Error **errp);

/**
 * disk_backed_load_setup: set up the destination
 * @errp: pointer to a NULL-initialized error object
 *
 * Destination, from ram_load_setup().
 *
 * Returns: true on success; false with @errp set on error.
 */
bool disk_backed_load_setup(Error **errp);

/**
 * disk_backed_load_cleanup: clean up the destination
 *
 * Destination, from ram_load_cleanup().
 */
void disk_backed_load_cleanup(void);

/**
 * disk_backed_load_ref: load a reference record
 * @rb: the page's RAM block
 * @addr: the page's offset in @rb
 * @host: where the page goes
 * @rec: the reference record
 *
 * Destination: load the reference record @rec for page @addr of @rb at
 * @host.  A block that does not match its hash is refused: the page
 * stays pending and the source is asked for it in full.
 *
 * Returns: 0 on success; -EINVAL for a malformed record, or when the
 * source cannot be asked for the page.
 */
int disk_backed_load_ref(RAMBlock *rb, ram_addr_t addr, void *host,
                         const uint8_t *rec);
/**
 * disk_backed_check_ref: check a reference record
 * @rb: the page's RAM block
 * @addr: the page's offset in @rb
 * @rec: the reference record
 * @block: set to the verified block (valid until the next check)
 *
 * Destination, the parts of disk_backed_load_ref() for a loader that
 * orders the copies of a page itself, one that takes pages from more
 * than one path: check the reference record @rec for page @addr of @rb.
 *
 * Returns: 1 with *@block the verified block, 0 for a block that does
 * not match or cannot be read, -EINVAL for a malformed record or when
 * no disk-backed-node is open.
 */
int disk_backed_check_ref(RAMBlock *rb, ram_addr_t addr,
                          const uint8_t *rec, uint8_t **block);

/**
 * disk_backed_refs_wait: wait for the references to be checked
 *
 * Destination, main thread: with multifd, wait until every reference
 * loaded so far has been checked, and its refusal sent.  Before each of
 * multifd's syncs and before every PONG.
 *
 * Returns: false when a refusal could not be sent, true otherwise.
 */
bool disk_backed_refs_wait(void);

/**
 * disk_backed_ref_loaded: a verified reference was loaded
 */
void disk_backed_ref_loaded(void);

/**
 * disk_backed_send_nack: ask the source for a page in full
 * @rb: the page's RAM block
 * @addr: the page's offset in @rb
 *
 * Returns: 0 on success, -EINVAL when there is no return path.
 */
int disk_backed_send_nack(RAMBlock *rb, ram_addr_t addr);

/**
 * disk_backed_page_refused: the newest copy of a page was refused
 * @rb: the page's RAM block
 * @addr: the page's offset in @rb
 *
 * Destination, from a loader that orders the copies of a page itself,
 * with its lock held: the newest copy of page @addr of @rb is a
 * refused reference; it is pending.
 */
void disk_backed_page_refused(RAMBlock *rb, ram_addr_t addr);

/**
 * disk_backed_page_loaded: a page arrived in full
 * @rb: the page's RAM block
 * @addr: the page's offset in @rb
 *
 * Destination: called from the main thread, or with multifd from its
 * receive threads.
 */
void disk_backed_page_loaded(RAMBlock *rb, ram_addr_t addr);

/**
 * disk_backed_load_complete: has every page arrived?
 * @errp: pointer to a NULL-initialized error object
 *
 * Destination, at the end of the stream.
 *
 * Returns: true if every page arrived; false with @errp set otherwise.
 */
bool disk_backed_load_complete(Error **errp);

/**
 * disk_backed_postcopy_listen: are the refused pages discarded?
 * @errp: pointer to a NULL-initialized error object
 *
 * Destination, at postcopy's listen, after the discards: has every page
 * whose reference was refused, and which has not arrived in full, been
 * discarded, so that it faults and is sent by postcopy?
 *
 * Returns: true if so; false with @errp set otherwise.
 */
bool disk_backed_postcopy_listen(Error **errp);

/**
 * disk_backed_populate_info: report the counters
 * @info: query-migrate's reply, to fill
 */
void disk_backed_populate_info(MigrationInfo *info);

#endif
