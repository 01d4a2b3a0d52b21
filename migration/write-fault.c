/*
 * Dirty page tracking by write faults in groups (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Guest RAM is write-protected with userfaultfd.  A fault thread takes
 * the write faults: it asks the group-size controller (fault-group.c)
 * for the group of the faulting page, makes the group writable, and
 * then records it in a per-block bitmap.  At each dirty bitmap sync the
 * migration thread takes the recorded groups, write-protects them again
 * and only then merges them into the migration bitmap, so a write to a
 * page after it was merged faults again and is recorded for the next
 * sync.  The fault thread never takes the BQL nor the bitmap mutex.
 *
 * Measured re-sends: a group makes neighbours writable that the guest
 * may not write.  Unless the pages go by multifd or xbzrle (which send
 * from guest memory or from their own cache, later than the migration
 * thread could record them), every page is sent from a copy whose
 * digest is recorded (fault-group.h, FaultGroupsSent); at the sync, a
 * taken page that is not the faulting one and still matches its digest
 * is left out of the migration bitmap, and the controller learns how
 * many of the group pages were really written.  The page is compared
 * after it is write-protected again, so a write after the comparison
 * faults and is seen at the next sync.
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/error-report.h"
#include "qemu/memalign.h"
#include "qemu/event_notifier.h"
#include "qemu/rcu.h"
#include "qemu/stats64.h"
#include "qemu/thread.h"
#include "qemu/userfaultfd.h"
#include "qapi/error.h"
#include "exec/target_page.h"
#include "hw/core/cpu.h"
#include "hw/xen/xen.h"
#include "qom/object.h"
#include "system/kvm.h"
#include "migration/misc.h"
#include "system/memory.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include "migration.h"
#include "options.h"
#include "ram.h"
#include "fault-group.h"
#include "write-fault.h"
#include "trace.h"

/* Counters of the current or last migration, for query-migrate. */
static struct {
    Stat64 faults;
    Stat64 pages_unprotected;
    Stat64 neighbour_pages;
    Stat64 pages_unchanged;
    Stat64 pages_dirtied;
    Stat64 syncs;
    Stat64 mean_group_milli;
} wfg_stats;

#ifdef CONFIG_LINUX

#include <poll.h>

#define WFG_BATCH 64

typedef struct WFGBlock {
    RAMBlock *rb;
    uint8_t *host;
    uint64_t used;          /* bytes write-protected */
    uint64_t npages;        /* host pages */
    unsigned long *dirty;   /* fault thread: atomic set; sync: xchg */
    unsigned long *taken;   /* sync only */
    unsigned long *faulted; /* the faulting pages, as dirty */
    unsigned long *ftaken;  /* sync only: faulted, taken */
    unsigned long *written; /* sync only: taken and to be sent */
    FaultGroups groups;
    FaultGroupsSent sent;   /* per target page; migration thread */
} WFGBlock;

static struct {
    bool active;
    int uffd;
    unsigned host_shift;    /* host page size, log2 */
    unsigned tp_per_hp;     /* target pages per host page */
    WFGBlock *blocks;
    unsigned nblocks;
    QemuThread thread;
    EventNotifier quit;
    int inflight;           /* faults being handled by the fault thread */
    bool failed;
    bool abandoned;         /* fault thread: memory unregistered on error */
    bool measure;           /* re-sends are measured */
    uint8_t *copy;          /* the page being sent, when measured */
} write_fault_state;

static bool wfg_block_check(RAMBlock *rb, int fd, Error **errp)
{
    uint64_t ioctls = 0;

    if (qemu_ram_is_shared(rb)) {
        error_setg(errp, "Capability 'write-fault-groups' cannot track RAM "
                   "block '%s': it is shared, and writes through other "
                   "mappings of it would not fault", rb->idstr);
        return false;
    }
    if (rb->page_size != qemu_real_host_page_size()) {
        error_setg(errp, "Capability 'write-fault-groups' cannot track RAM "
                   "block '%s': its page size %zu is not the host page "
                   "size (huge pages are not supported)", rb->idstr,
                   rb->page_size);
        return false;
    }
    if (fd >= 0 &&
        (uffd_register_memory(fd, rb->host, rb->max_length,
                              UFFDIO_REGISTER_MODE_WP, &ioctls) ||
         !(ioctls & BIT_ULL(_UFFDIO_WRITEPROTECT)))) {
        error_setg(errp, "Capability 'write-fault-groups' cannot track RAM "
                   "block '%s': its memory backend does not support "
                   "userfaultfd write-protection", rb->idstr);
        return false;
    }
    return true;
}

/* What fault_groups_untracked_writer() needs to know of this VM */
static void wfg_host(FaultGroupsHost *host)
{
    static const char *const nested[] = { "vmx", "svm" };
    CPUState *cpu;

    *host = (FaultGroupsHost) {
        .kvm = kvm_enabled(),
        .xen_emulation = xen_mode == XEN_EMULATE,
    };
    CPU_FOREACH(cpu) {
        for (size_t i = 0; i < ARRAY_SIZE(nested); i++) {
            /* the feature as KVM gives it, after filtering */
            if (object_property_find(OBJECT(cpu), nested[i]) &&
                object_property_get_bool(OBJECT(cpu), nested[i], NULL)) {
                host->nested_feature = nested[i];
                host->nested_cpu = cpu->cpu_index;
                return;
            }
        }
    }
}

bool write_fault_groups_check(Error **errp)
{
    g_autofree char *untracked = NULL;
    FaultGroupsHost host;
    uint64_t features = 0;
    RAMBlock *rb;
    bool ok = true;
    int fd;

    wfg_host(&host);
    untracked = fault_groups_untracked_writer(&host);
    if (untracked) {
        error_setg(errp, "Capability 'write-fault-groups' cannot be used: "
                   "%s", untracked);
        return false;
    }

    if (qemu_real_host_page_size() < TARGET_PAGE_SIZE) {
        error_setg(errp, "Capability 'write-fault-groups' needs host pages "
                   "at least as large as target pages");
        return false;
    }
    if (!write_fault_state.active && ram_block_discard_is_disabled()) {
        error_setg(errp, "Capability 'write-fault-groups' cannot be used "
                   "while RAM discards are disabled, as VFIO devices do: "
                   "their DMA into guest RAM would not be seen");
        return false;
    }
    if (uffd_query_features(&features) ||
        !(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        error_setg(errp, "Capability 'write-fault-groups' needs userfaultfd "
                   "write-protection, which this host kernel does not "
                   "offer (or /dev/userfaultfd is not accessible)");
        return false;
    }
    fd = uffd_create_fd(UFFD_FEATURE_PAGEFAULT_FLAG_WP, false);
    if (fd < 0) {
        error_setg(errp, "Capability 'write-fault-groups' could not open "
                   "a userfaultfd");
        return false;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        RAMBLOCK_FOREACH_NOT_IGNORED(rb) {
            if (!wfg_block_check(rb, fd, errp)) {
                ok = false;
                break;
            }
        }
    }
    uffd_close_fd(fd);
    return ok;
}

/*
 * Fault thread, after a failed userfaultfd operation: nothing tracked
 * can be trusted any more, and a writer may wait for a fault that will
 * never be resolved.  Unregister all of guest RAM, which removes the
 * protection and wakes every waiting writer; the migration fails at its
 * next sync.
 */
static void wfg_abandon(void)
{
    unsigned i;

    qatomic_set(&write_fault_state.failed, true);
    if (write_fault_state.abandoned) {
        return;
    }
    qatomic_set(&write_fault_state.abandoned, true);
    for (i = 0; i < write_fault_state.nblocks; i++) {
        uffd_unregister_memory(write_fault_state.uffd,
                               write_fault_state.blocks[i].host,
                               write_fault_state.blocks[i].rb->max_length);
    }
}

static void wfg_fault(const struct uffd_msg *msg)
{
    uint8_t *addr = (uint8_t *)(uintptr_t)msg->arg.pagefault.address;
    uint64_t page, first, count;
    WFGBlock *b = NULL;
    unsigned i;

    for (i = 0; i < write_fault_state.nblocks; i++) {
        if (addr >= write_fault_state.blocks[i].host &&
            addr < write_fault_state.blocks[i].host +
                   write_fault_state.blocks[i].used) {
            b = &write_fault_state.blocks[i];
            break;
        }
    }
    if (!b) {
        /* not ours to track (cannot happen): just let the writer go */
        if (uffd_change_protection(write_fault_state.uffd,
                                   (void *)QEMU_ALIGN_PTR_DOWN(addr,
                                                qemu_real_host_page_size()),
                                   qemu_real_host_page_size(), false, false)) {
            wfg_abandon();
        }
        return;
    }

    page = (addr - b->host) >> write_fault_state.host_shift;
    fault_groups_fault(&b->groups, page, &first, &count);

    /*
     * Make the group writable first and record it after: a sync that
     * takes the records in between does not re-protect the group, and
     * the record made here is taken by a later sync.  The last sync
     * waits for inflight to drop to zero.
     */
    if (uffd_change_protection(write_fault_state.uffd,
                               b->host +
                               (first << write_fault_state.host_shift),
                               count << write_fault_state.host_shift,
                               false, false)) {
        wfg_abandon();
        return;
    }
    set_bit_atomic(page, b->faulted);
    bitmap_set_atomic(b->dirty, first, count);
    stat64_add(&wfg_stats.faults, 1);
    stat64_add(&wfg_stats.pages_unprotected,
               count * write_fault_state.tp_per_hp);
    stat64_add(&wfg_stats.neighbour_pages,
               (count - 1) * write_fault_state.tp_per_hp);
    trace_write_fault_groups_fault(b->rb->idstr, page, first, count);
}

static void *wfg_fault_thread(void *opaque)
{
    struct uffd_msg msgs[WFG_BATCH];
    struct pollfd pfd[2] = {
        { .fd = write_fault_state.uffd, .events = POLLIN },
        { .fd = event_notifier_get_fd(&write_fault_state.quit),
          .events = POLLIN },
    };
    int n, i;

    for (;;) {
        if (poll(pfd, ARRAY_SIZE(pfd), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_report("write-fault-groups: poll failed: %s",
                         strerror(errno));
            wfg_abandon();
            break;
        }
        if (pfd[1].revents) {
            break;
        }
        if (!(pfd[0].revents & POLLIN)) {
            continue;
        }

        qatomic_inc(&write_fault_state.inflight);
        n = uffd_read_events(write_fault_state.uffd, msgs, WFG_BATCH);
        if (n < 0) {
            wfg_abandon();
        }
        for (i = 0; i < n; i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
                (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
                wfg_fault(&msgs[i]);
            }
        }
        qatomic_dec(&write_fault_state.inflight);
        if (n < 0) {
            break;
        }
    }
    return NULL;
}

static void wfg_release(unsigned nblocks)
{
    unsigned i;

    for (i = 0; i < nblocks; i++) {
        WFGBlock *b = &write_fault_state.blocks[i];

        if (!write_fault_state.abandoned) {
            uffd_unregister_memory(write_fault_state.uffd, b->host,
                                   b->rb->max_length);
        }
        memory_region_unref(b->rb->mr);
        g_free(b->dirty);
        g_free(b->taken);
        g_free(b->faulted);
        g_free(b->ftaken);
        g_free(b->written);
        fault_groups_destroy(&b->groups);
        fault_groups_sent_destroy(&b->sent);
    }
    g_free(write_fault_state.blocks);
    write_fault_state.blocks = NULL;
    qemu_vfree(write_fault_state.copy);
    write_fault_state.copy = NULL;
    write_fault_state.nblocks = 0;
    uffd_close_fd(write_fault_state.uffd);
    write_fault_state.uffd = -1;
}

bool write_fault_groups_start(bool measure, Error **errp)
{
    uint64_t features = 0, want = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
    uint64_t max_pages, total = 0, key;
    bool unpopulated;
    unsigned n = 0, i;
    uint64_t off;
    RAMBlock *rb;

    assert(!write_fault_state.active);
    if (!write_fault_groups_check(errp)) {
        return false;
    }

    memset(&wfg_stats, 0, sizeof(wfg_stats));
    write_fault_state.host_shift = ctz64(qemu_real_host_page_size());
    write_fault_state.tp_per_hp = qemu_real_host_page_size() /
                                  TARGET_PAGE_SIZE;
    max_pages = MAX(migrate_write_fault_group_max() /
                    write_fault_state.tp_per_hp, 1);
    qatomic_set(&write_fault_state.inflight, 0);
    qatomic_set(&write_fault_state.failed, false);
    write_fault_state.abandoned = false;
    write_fault_state.measure = measure;
    /* random per migration: the guest cannot aim at a digest collision */
    key = (uint64_t)g_random_int() << 32 | g_random_int();

    /*
     * Discarding a page (balloon, virtio-mem) drops its write protection:
     * a later write would not fault.  No discards while tracking.
     */
    if (ram_block_discard_disable(true)) {
        error_setg(errp, "Capability 'write-fault-groups' cannot be used "
                   "with a device that discards guest RAM (virtio-mem)");
        return false;
    }

    /*
     * Write-protecting an unpopulated page needs UFFD_FEATURE_WP_UNPOPULATED
     * (Linux 6.4); without it, read every page in first, as
     * background-snapshot does, so that none is skipped.
     */
    uffd_query_features(&features);
    unpopulated = features & UFFD_FEATURE_WP_UNPOPULATED;
    if (unpopulated) {
        want |= UFFD_FEATURE_WP_UNPOPULATED;
    } else {
        ram_write_tracking_prepare();
    }
    write_fault_state.uffd = uffd_create_fd(want, true);
    if (write_fault_state.uffd < 0) {
        error_setg(errp, "write-fault-groups: could not open a userfaultfd");
        ram_block_discard_disable(false);
        return false;
    }
    if (event_notifier_init(&write_fault_state.quit, false) < 0) {
        error_setg(errp, "write-fault-groups: could not create an eventfd");
        uffd_close_fd(write_fault_state.uffd);
        ram_block_discard_disable(false);
        return false;
    }
    /* DMA into guest RAM does not fault: have it marked dirty instead */
    qatomic_set(&global_dirty_software, true);

    RCU_READ_LOCK_GUARD();
    RAMBLOCK_FOREACH_NOT_IGNORED(rb) {
        n++;
    }
    write_fault_state.blocks = g_new0(WFGBlock, MAX(n, 1));
    RAMBLOCK_FOREACH_NOT_IGNORED(rb) {
        WFGBlock *b = &write_fault_state.blocks[write_fault_state.nblocks];

        if (!unpopulated && (rb->mr->readonly || rb->mr->rom_device)) {
            /* ram_write_tracking_prepare() leaves these out */
            for (off = 0; off < rb->used_length; off += rb->page_size) {
                /* volatile: the read itself populates the page */
                (void)*(volatile uint8_t *)(rb->host + off);
            }
        }
        if (uffd_register_memory(write_fault_state.uffd, rb->host,
                                 rb->max_length, UFFDIO_REGISTER_MODE_WP,
                                 NULL)) {
            error_setg(errp, "write-fault-groups: could not register RAM "
                       "block '%s' with userfaultfd", rb->idstr);
            goto fail;
        }
        memory_region_ref(rb->mr);
        b->rb = rb;
        b->host = rb->host;
        b->used = rb->used_length;
        b->npages = rb->used_length >> write_fault_state.host_shift;
        b->dirty = bitmap_new(b->npages);
        b->taken = bitmap_new(b->npages);
        b->faulted = bitmap_new(b->npages);
        b->ftaken = bitmap_new(b->npages);
        b->written = bitmap_new(b->npages);
        fault_groups_init(&b->groups, b->npages, max_pages);
        if (measure) {
            fault_groups_sent_init(&b->sent,
                                   b->npages * write_fault_state.tp_per_hp,
                                   key, TARGET_PAGE_SIZE);
        }
        write_fault_state.nblocks++;
        if (uffd_change_protection(write_fault_state.uffd, b->host, b->used,
                                   true, false)) {
            error_setg(errp, "write-fault-groups: could not write-protect "
                       "RAM block '%s'", rb->idstr);
            goto fail;
        }
        total += b->npages;
    }

    if (measure) {
        write_fault_state.copy = qemu_memalign(TARGET_PAGE_SIZE,
                                               TARGET_PAGE_SIZE);
    }
    qemu_thread_create(&write_fault_state.thread, "mig/wfault",
                       wfg_fault_thread, NULL, QEMU_THREAD_JOINABLE);
    write_fault_state.active = true;
    trace_write_fault_groups_start(write_fault_state.nblocks, total, max_pages,
                                   unpopulated, measure);
    return true;

fail:
    for (i = 0; i < write_fault_state.nblocks; i++) {
        uffd_change_protection(write_fault_state.uffd,
                               write_fault_state.blocks[i].host,
                               write_fault_state.blocks[i].used, false, false);
    }
    wfg_release(write_fault_state.nblocks);
    event_notifier_cleanup(&write_fault_state.quit);
    qatomic_set(&global_dirty_software, false);
    ram_block_discard_disable(false);
    return false;
}

/*
 * Whether host page @page of @b, taken at a sync and write-protected
 * again, must be sent: not if every target page of it still holds what
 * was last sent of it.
 */
static bool wfg_page_written(WFGBlock *b, uint64_t page)
{
    uint64_t tp = page * write_fault_state.tp_per_hp;
    uint8_t *host = b->host + (page << write_fault_state.host_shift);
    unsigned k;

    if (!write_fault_state.measure || test_bit(page, b->ftaken)) {
        return true;
    }
    for (k = 0; k < write_fault_state.tp_per_hp; k++) {
        if (!fault_groups_sent_unchanged(&b->sent, tp + k,
                                         host + k * TARGET_PAGE_SIZE,
                                         TARGET_PAGE_SIZE)) {
            return true;
        }
    }
    return false;
}

static uint64_t wfg_sync_block(WFGBlock *b)
{
    long words = BITS_TO_LONGS(b->npages), w;
    uint64_t taken = 0, newly = 0, unchanged = 0, region, first, end;
    unsigned long *bmap = b->rb->bmap;
    unsigned k;

    for (w = 0; w < words; w++) {
        b->taken[w] = qatomic_read(&b->dirty[w]) ?
                      qatomic_xchg(&b->dirty[w], 0) : 0;
        /*
         * After the groups: a faulting page whose bit comes late is taken
         * at the next sync, where it is at worst sent once more.
         */
        b->ftaken[w] = qatomic_read(&b->faulted[w]) ?
                       qatomic_xchg(&b->faulted[w], 0) : 0;
    }

    /* Re-protect every group taken before any of it reaches the bitmap. */
    first = find_first_bit(b->taken, b->npages);
    while (first < b->npages) {
        uint8_t *start = b->host + (first << write_fault_state.host_shift);

        end = find_next_zero_bit(b->taken, b->npages, first);
        if (uffd_change_protection(write_fault_state.uffd, start,
                                   (end - first) <<
                                   write_fault_state.host_shift,
                                   true, false)) {
            qatomic_set(&write_fault_state.failed, true);
        }
        taken += end - first;
        first = find_next_bit(b->taken, b->npages, end);
    }

    bitmap_zero(b->written, b->npages);
    for (first = find_first_bit(b->taken, b->npages); first < b->npages;
         first = find_next_bit(b->taken, b->npages, first + 1)) {
        if (!wfg_page_written(b, first)) {
            unchanged++;
            continue;
        }
        set_bit(first, b->written);
        for (k = 0; k < write_fault_state.tp_per_hp; k++) {
            if (!test_and_set_bit(first * write_fault_state.tp_per_hp + k,
                                  bmap)) {
                newly++;
            }
        }
    }

    for (region = 0; region < b->groups.nregions; region++) {
        uint64_t start = region * FAULT_GROUP_REGION_PAGES;
        uint64_t len = MIN(FAULT_GROUP_REGION_PAGES, b->npages - start);
        uint32_t unprotected = bitmap_count_one_with_offset(b->taken, start,
                                                            len);

        fault_groups_sync(&b->groups, region, unprotected,
                          write_fault_state.measure ?
                          bitmap_count_one_with_offset(b->written, start,
                                                       len) :
                          FAULT_GROUP_WRITTEN_UNKNOWN);
    }
    stat64_add(&wfg_stats.pages_unchanged,
               unchanged * write_fault_state.tp_per_hp);
    trace_write_fault_groups_sync_block(b->rb->idstr, taken, newly, unchanged,
            (uint64_t)(fault_groups_mean_size(&b->groups) * 1000));
    return newly;
}

uint64_t write_fault_groups_sync(bool last_stage, Error **errp)
{
    uint64_t newly = 0, regions = 0;
    double groups = 0;
    unsigned i;

    if (!write_fault_state.active) {
        return 0;
    }
    if (last_stage || !runstate_is_running()) {
        /*
         * The vCPUs are stopped: let the fault thread record the faults
         * it resolved.  Not only in the last stage: postcopy takes the
         * bitmap whose pages the destination discards with the guest
         * stopped, in a sync that is not the last.
         */
        while (qatomic_read(&write_fault_state.inflight)) {
            g_usleep(10);
        }
    }
    if (qatomic_read(&write_fault_state.failed)) {
        error_setg(errp, "write-fault-groups: a userfaultfd operation "
                   "failed, dirty pages can no longer be tracked");
        return 0;
    }

    for (i = 0; i < write_fault_state.nblocks; i++) {
        WFGBlock *b = &write_fault_state.blocks[i];

        newly += wfg_sync_block(b);
        groups += fault_groups_mean_size(&b->groups) * b->groups.nregions;
        regions += b->groups.nregions;
    }
    stat64_add(&wfg_stats.pages_dirtied, newly);
    stat64_add(&wfg_stats.syncs, 1);
    stat64_set(&wfg_stats.mean_group_milli,
               regions ? (uint64_t)(groups * 1000 / regions) : 1000);
    trace_write_fault_groups_sync(last_stage, newly,
                                  stat64_get(&wfg_stats.faults));
    return newly;
}

static WFGBlock *wfg_measured_block(RAMBlock *rb, ram_addr_t offset)
{
    unsigned i;

    if (!write_fault_state.active || !write_fault_state.measure) {
        return NULL;
    }
    for (i = 0; i < write_fault_state.nblocks; i++) {
        if (write_fault_state.blocks[i].rb == rb) {
            return offset < write_fault_state.blocks[i].used ?
                   &write_fault_state.blocks[i] : NULL;
        }
    }
    return NULL;
}

void write_fault_groups_page_forget(RAMBlock *rb, ram_addr_t offset)
{
    WFGBlock *b = wfg_measured_block(rb, offset);

    if (b) {
        fault_groups_sent_forget(&b->sent, offset >> TARGET_PAGE_BITS);
    }
}

void write_fault_groups_page_zero(RAMBlock *rb, ram_addr_t offset)
{
    WFGBlock *b = wfg_measured_block(rb, offset);

    if (b && !migration_in_postcopy()) {
        fault_groups_sent_zero(&b->sent, offset >> TARGET_PAGE_BITS);
    }
}

uint8_t *write_fault_groups_page_copy(RAMBlock *rb, ram_addr_t offset,
                                      uint8_t *page)
{
    WFGBlock *b = wfg_measured_block(rb, offset);

    if (!b || migration_in_postcopy()) {
        return page;
    }
    memcpy(write_fault_state.copy, page, TARGET_PAGE_SIZE);
    fault_groups_sent_record(&b->sent, offset >> TARGET_PAGE_BITS,
                             write_fault_state.copy, TARGET_PAGE_SIZE);
    return write_fault_state.copy;
}

void write_fault_groups_stop(void)
{
    unsigned i;

    if (!write_fault_state.active) {
        return;
    }
    /* Make everything writable (and wake any waiting writer) first. */
    for (i = 0; i < write_fault_state.nblocks &&
                !qatomic_read(&write_fault_state.abandoned); i++) {
        uffd_change_protection(write_fault_state.uffd,
                               write_fault_state.blocks[i].host,
                               write_fault_state.blocks[i].used, false, false);
    }
    event_notifier_set(&write_fault_state.quit);
    qemu_thread_join(&write_fault_state.thread);
    event_notifier_cleanup(&write_fault_state.quit);
    qatomic_set(&global_dirty_software, false);
    ram_block_discard_disable(false);
    trace_write_fault_groups_stop(stat64_get(&wfg_stats.faults),
                                  stat64_get(&wfg_stats.pages_unprotected));
    wfg_release(write_fault_state.nblocks);
    write_fault_state.active = false;
}

bool write_fault_groups_active(void)
{
    return write_fault_state.active;
}

#else /* !CONFIG_LINUX */

bool write_fault_groups_check(Error **errp)
{
    error_setg(errp, "Capability 'write-fault-groups' needs Linux "
               "userfaultfd write-protection");
    return false;
}

bool write_fault_groups_start(bool measure, Error **errp)
{
    return write_fault_groups_check(errp);
}

uint64_t write_fault_groups_sync(bool last_stage, Error **errp)
{
    return 0;
}

void write_fault_groups_page_forget(RAMBlock *rb, ram_addr_t offset)
{
}

void write_fault_groups_page_zero(RAMBlock *rb, ram_addr_t offset)
{
}

uint8_t *write_fault_groups_page_copy(RAMBlock *rb, ram_addr_t offset,
                                      uint8_t *page)
{
    return page;
}

void write_fault_groups_stop(void)
{
}

bool write_fault_groups_active(void)
{
    return false;
}

#endif /* CONFIG_LINUX */

void write_fault_groups_populate_info(MigrationInfo *info)
{
    WriteFaultGroupsInfo *w = g_new0(WriteFaultGroupsInfo, 1);

    w->faults = stat64_get(&wfg_stats.faults);
    w->pages_unprotected = stat64_get(&wfg_stats.pages_unprotected);
    w->neighbour_pages = stat64_get(&wfg_stats.neighbour_pages);
    w->pages_unchanged = stat64_get(&wfg_stats.pages_unchanged);
    w->pages_dirtied = stat64_get(&wfg_stats.pages_dirtied);
    w->syncs = stat64_get(&wfg_stats.syncs);
    w->mean_group_size = stat64_get(&wfg_stats.mean_group_milli) / 1000.0;
    info->write_fault_groups = w;
}
