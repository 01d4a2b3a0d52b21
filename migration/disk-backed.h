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

/* Both sides: is disk-backed-node a raw node this QEMU has? */
bool disk_backed_check_node(Error **errp);

/*
 * Source, from ram_save_setup() with the BQL held: open the node, start
 * tracking writes to it and read the guest's map.  A map that cannot be
 * used is no error: every page then goes in full.
 */
bool disk_backed_save_setup(Error **errp);
void disk_backed_save_cleanup(void);

/*
 * Source, migration thread: may page @offset of @rb go as a reference?
 * If so, fill @rec with the reference record and return true.  The
 * first send of a page decides: later sends are always in full.
 */
bool disk_backed_save_ref(RAMBlock *rb, ram_addr_t offset, bool last_stage,
                          uint8_t *rec);
/*
 * Source, any thread with the RCU read lock held: may page @offset of
 * @rb still go as a reference?  A hint, racy against its first send.
 */
bool disk_backed_may_ref(RAMBlock *rb, ram_addr_t offset);
/* Source: a reference of @len bytes in the stream has replaced a page. */
void disk_backed_ref_sent(uint64_t len);

/*
 * Source, return-path thread: the destination refused the reference to
 * page @offset of RAM block @idstr.  Fails for a page that was not sent
 * as a reference.
 */
int disk_backed_ref_nacked(const char *idstr, uint64_t offset,
                           Error **errp);
/* Source, return-path thread: the pong to QEMU_VM_PING_DISK_REFS. */
void disk_backed_pong(void);
/*
 * Source, migration thread with bitmap_mutex and RCU held: mark the
 * refused pages of @rb dirty in @bmap; returns how many were clean.
 */
uint64_t disk_backed_take_nacks(RAMBlock *rb, unsigned long *bmap);

/*
 * Source, migration thread, before the VM is stopped for switchover
 * (precopy's completion or postcopy's start): send no more references,
 * and wait until the destination has checked every reference sent, so
 * that every refusal has arrived.
 */
int disk_backed_close_refs(QEMUFile *f, Error **errp);

/*
 * Source, postcopy's start, with the guest stopped and after the
 * discards: may the dirty page @offset of @rb go in postcopy's table of
 * references?  If so it is added to the table, which goes out in
 * MIG_CMD_DISK_REFS commands on @f, and the caller clears the page's
 * dirty bit.  disk_backed_table_sent() sends the rest.
 */
bool disk_backed_table_add(QEMUFile *f, RAMBlock *rb, ram_addr_t offset);
void disk_backed_table_flush(QEMUFile *f);
void disk_backed_table_sent(QEMUFile *f);
/* Source, return-path thread: MIG_RP_MSG_DISK_REFS_PLACED */
void disk_backed_table_placed(void);
/*
 * Source, migration thread: has the destination placed or refused every
 * page of the table (or was none sent)?  Postcopy completes only then.
 */
bool disk_backed_table_done(void);
/* Source: postcopy recovered; the dirty bitmaps say what to send */
void disk_backed_table_resumed(void);

/*
 * Destination, loadvm: MIG_CMD_DISK_REFS of @len bytes, before listen.
 */
int disk_backed_load_table(QEMUFile *f, uint16_t len, Error **errp);
/* Destination, at listen after the userfaultfd is set up: place them */
void disk_backed_table_start(MigrationIncomingState *mis);
/*
 * Destination, fault thread: the guest faulted on page @offset of @rb.
 * True when the page is the table's: it is placed from the disk, or
 * refused and sent by the source, with no request.
 */
bool disk_backed_table_fault(RAMBlock *rb, ram_addr_t offset);
/* Destination, postcopy paused: place no more of the table */
void disk_backed_table_abandon(void);
/* Destination, before the userfaultfd goes: stop the drain thread */
void disk_backed_table_stop(void);

/*
 * Destination, from migrate-incoming: open disk-backed-node for reading.
 * It is closed again at the end of the incoming migration.
 */
bool disk_backed_incoming_open(Error **errp);

/* Destination, from ram_load_setup() and ram_load_cleanup(). */
bool disk_backed_load_setup(Error **errp);
void disk_backed_load_cleanup(void);

/*
 * Destination: load the reference record @rec for page @addr of @rb at
 * @host.  A block that does not match its hash is refused: the page
 * stays pending and the source is asked for it in full.  Returns
 * -EINVAL for a malformed record.
 */
int disk_backed_load_ref(RAMBlock *rb, ram_addr_t addr, void *host,
                         const uint8_t *rec);
/*
 * Destination, the parts of disk_backed_load_ref() for a loader that
 * orders the copies of a page (shared-file-spill's spill_load_ref()):
 * check the reference record @rec for page @addr of @rb.  Returns 1
 * with *@block the verified block (valid until the next check), 0 for
 * a block that does not match or cannot be read, -EINVAL for a
 * malformed record.
 */
int disk_backed_check_ref(RAMBlock *rb, ram_addr_t addr,
                          const uint8_t *rec, uint8_t **block);
/*
 * Destination, main thread: with multifd, wait until every reference
 * loaded so far has been checked, and its refusal sent.  Before each of
 * multifd's syncs and before every PONG.  False when a refusal could
 * not be sent.
 */
bool disk_backed_refs_wait(void);
/* A verified reference was loaded */
void disk_backed_ref_loaded(void);
/* Ask the source for page @addr of @rb in full */
int disk_backed_send_nack(RAMBlock *rb, ram_addr_t addr);
/*
 * Destination, from shared-file-spill's loader with its lock held: the
 * newest copy of page @addr of @rb is a refused reference; it is
 * pending.
 */
void disk_backed_page_refused(RAMBlock *rb, ram_addr_t addr);
/*
 * Destination: page @addr of @rb arrived in full.  Called from the main
 * thread, or with multifd from its receive threads.
 */
void disk_backed_page_loaded(RAMBlock *rb, ram_addr_t addr);
/* Destination, at the end of the stream: has every page arrived? */
bool disk_backed_load_complete(Error **errp);
/*
 * Destination, at postcopy's listen, after the discards: has every page
 * whose reference was refused, and which has not arrived in full, been
 * discarded, so that it faults and is sent by postcopy?
 */
bool disk_backed_postcopy_listen(Error **errp);

void disk_backed_populate_info(MigrationInfo *info);

#endif
