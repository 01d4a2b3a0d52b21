/*
 * Adaptive group size for write-fault dirty tracking
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * With write-fault-groups, guest RAM is write-protected during migration
 * and one write fault makes a whole group of neighbouring pages writable,
 * marking all of them for re-send.  Large groups take fewer faults when
 * the guest writes memory in runs; small groups re-send fewer pages that
 * were not written.  This controller picks the group size per region of
 * FAULT_GROUP_REGION_PAGES pages.
 *
 * The fault thread calls fault_groups_fault() for every write fault: it
 * returns the group to make writable and counts, per region, the faults
 * and the "run faults", those in the group right next to the region's
 * previous fault.  A guest writing a region in order would still take
 * a fault per page until the next sync, so the fault thread itself grows
 * a region's groups one step after FAULT_GROUP_FAST_RUN run faults in a
 * row: the first pass over a 512-page region takes about 50 faults.  At
 * every bitmap sync the migration thread calls fault_groups_sync() per
 * region, which takes the counts and adjusts:
 *
 *  - FAULT_GROUP_GROW_HEAT periods with mostly run faults (idle periods
 *    in between do not count against it): the guest writes in runs, the
 *    groups grow at least one step, and at once to a sixteenth of the
 *    pages the runs covered (up to the maximum);
 *  - several faults and none of them in runs: scattered writes, the
 *    groups halve;
 *  - when the caller can tell how many of the group pages were really
 *    written and more than FAULT_GROUP_CLEAN_PCT percent were not, the
 *    groups halve;
 *  - no fault for FAULT_GROUP_IDLE_STEP periods in a row: one step back.
 *
 * Concurrency: the fault thread reads a region's order and updates its
 * counters with atomics; only the fault thread touches last_group and
 * streak (the sync only restarts them); both threads write order, with
 * atomics, and the last write wins: a lost step is a heuristic's miss,
 * never a correctness problem, since the caller records exactly the
 * group it makes writable.  Only the sync writes heat and idle.  The
 * code is QEMU-independent so that it can be unit tested on its own.
 */

#ifndef MIGRATION_FAULT_GROUP_H
#define MIGRATION_FAULT_GROUP_H

#define FAULT_GROUP_REGION_SHIFT 9
#define FAULT_GROUP_REGION_PAGES (1u << FAULT_GROUP_REGION_SHIFT)
#define FAULT_GROUP_GROW_HEAT 1
#define FAULT_GROUP_IDLE_STEP 4
#define FAULT_GROUP_CLEAN_PCT 25
#define FAULT_GROUP_FAST_RUN 8
/* for fault_groups_sync(): the writes to group pages were not measured */
#define FAULT_GROUP_WRITTEN_UNKNOWN UINT32_MAX

typedef struct FaultGroupRegion {
    uint32_t faults;            /* fault thread: atomic inc; sync: xchg */
    uint32_t run_faults;
    uint64_t last_group;        /* fault thread only: last group + 1 */
    uint8_t order;              /* group = 1 << order pages */
    uint8_t streak;             /* fault thread only: run faults in a row */
    uint8_t heat;               /* sync only: periods of runs */
    uint8_t idle;               /* sync only: periods without faults */
} FaultGroupRegion;

typedef struct FaultGroupStats {
    uint32_t faults;
    uint32_t run_faults;
} FaultGroupStats;

typedef struct FaultGroups {
    uint64_t npages;
    uint64_t nregions;
    unsigned max_order;
    FaultGroupRegion *regions;
} FaultGroups;

/**
 * fault_groups_max_valid: check a write-fault-group-max value
 * @max_pages: the value, in pages
 * @errmsg: on error, set to what is wrong
 *
 * The value must be a power of two from 1 to FAULT_GROUP_REGION_PAGES.
 *
 * Returns: true if @max_pages is valid, false otherwise.
 */
bool fault_groups_max_valid(uint64_t max_pages, const char **errmsg);

/**
 * fault_groups_init: start tracking pages
 * @g: the controller
 * @npages: the pages to track
 * @max_pages: the largest group size, in pages
 *
 * Track @npages pages, all starting with single-page groups.
 */
void fault_groups_init(FaultGroups *g, uint64_t npages, uint64_t max_pages);

/**
 * fault_groups_destroy: free what fault_groups_init() allocated
 * @g: the controller
 */
void fault_groups_destroy(FaultGroups *g);

/**
 * fault_groups_fault: a write fault
 * @g: the controller
 * @page: the page that faulted
 * @first: set to the first page of the group to make writable
 * @count: set to the number of pages of that group
 *
 * Fault thread: a write fault at @page.  The group to make writable,
 * [*first, *first + *count), is aligned to its size and clipped to the
 * tracked pages (*count is 0 for a page outside them).
 */
void fault_groups_fault(FaultGroups *g, uint64_t page, uint64_t *first,
                        uint64_t *count);

/**
 * fault_groups_sync: close a region's period
 * @g: the controller
 * @region: the region
 * @unprotected: the region's group pages made writable in the period
 * @written: how many of those are known to be written, or
 *   FAULT_GROUP_WRITTEN_UNKNOWN
 *
 * Migration thread, at a bitmap sync: close the period of @region and
 * adapt its group size.
 *
 * Returns: the period's fault counts.
 */
FaultGroupStats fault_groups_sync(FaultGroups *g, uint64_t region,
                                  uint32_t unprotected, uint32_t written);

/**
 * fault_groups_size: a region's group size
 * @g: the controller
 * @region: the region
 *
 * Returns: the current group size of @region, in pages.
 */
static inline unsigned fault_groups_size(const FaultGroups *g,
                                         uint64_t region)
{
    return 1u << g->regions[region].order;
}

/**
 * fault_groups_mean_size: mean group size
 * @g: the controller
 *
 * Returns: the mean group size over all regions, in pages.
 */
double fault_groups_mean_size(const FaultGroups *g);

/*
 * Measured re-sends.  A group makes its neighbours writable whether or
 * not the guest writes them; at the next sync, the pages of the group
 * that still hold what was last sent need not be sent again.  This
 * records, per page, a keyed 64-bit digest of the bytes last sent (0
 * when they are unknown: the page went some way that did not record
 * them), and compares it with the page's bytes at the sync.
 *
 * The digest must be of the very bytes that went out, not of the page
 * read again later: a page written after it was read and restored to
 * those bytes before the sync would otherwise compare equal while the
 * destination holds the intermediate copy.  The key is random per
 * migration, so a guest cannot aim for a collision; an accidental one
 * has a chance of about 2^-64 per compared page.
 */
typedef struct FaultGroupsSent {
    uint64_t key;
    uint64_t npages;
    uint64_t zero;              /* digest of a page of zeros */
    uint64_t *digest;           /* per page; 0: unknown */
} FaultGroupsSent;

/**
 * fault_groups_digest: a keyed digest
 * @key: the key
 * @buf: the bytes
 * @len: how many
 *
 * Returns: a keyed digest of @len bytes, never 0.
 */
uint64_t fault_groups_digest(uint64_t key, const void *buf, size_t len);

/**
 * fault_groups_sent_init: start recording what was sent
 * @s: the record
 * @npages: the pages to record, none of them known yet
 * @key: the digest's key, random per migration
 * @page_size: bytes in a page
 */
void fault_groups_sent_init(FaultGroupsSent *s, uint64_t npages,
                            uint64_t key, size_t page_size);

/**
 * fault_groups_sent_destroy: free what fault_groups_sent_init() allocated
 * @s: the record
 */
void fault_groups_sent_destroy(FaultGroupsSent *s);

/**
 * fault_groups_sent_record: a page went out in full
 * @s: the record
 * @page: the page
 * @bytes: the bytes that went out
 * @len: how many
 *
 * @page went out as these @len bytes.
 */
void fault_groups_sent_record(FaultGroupsSent *s, uint64_t page,
                              const void *bytes, size_t len);

/**
 * fault_groups_sent_zero: a page went out as zeros
 * @s: the record
 * @page: the page
 *
 * @page went out as a page of zeros.
 */
void fault_groups_sent_zero(FaultGroupsSent *s, uint64_t page);

/**
 * fault_groups_sent_forget: a page went out unrecorded
 * @s: the record
 * @page: the page
 *
 * @page went out some way that does not record its bytes.
 */
void fault_groups_sent_forget(FaultGroupsSent *s, uint64_t page);

/**
 * fault_groups_sent_unchanged: does a page hold what was last sent?
 * @s: the record
 * @page: the page
 * @now: the page's bytes now
 * @len: how many
 *
 * Returns: true if @page holds, as @now, exactly what was last sent of
 * it: the destination has it and it need not be sent again.  False
 * when the bytes differ or were not recorded.
 */
bool fault_groups_sent_unchanged(const FaultGroupsSent *s, uint64_t page,
                                 const void *now, size_t len);

/*
 * Writers that userfaultfd cannot see.  KVM writes some guest pages
 * through kernel mappings of their page frames (kvm_vcpu_map(), the
 * gfn_to_pfn caches), not through the host page table, and reports them
 * with mark_page_dirty(), which only KVM's dirty log records: with
 * nested virtualization, the nested guest's virtual-APIC page and
 * posted-interrupt descriptor (VMX) and its VMCB (SVM); with KVM's Xen
 * emulation, the shared info and vCPU info pages.  The KVM dirty log is
 * off while write faults track the guest, so those writes would be
 * lost.  TCG writes guest memory through QEMU's own mapping, which
 * faults.
 */
typedef struct FaultGroupsHost {
    bool kvm;                   /* the accelerator is KVM */
    const char *nested_feature; /* "vmx"/"svm" a vCPU offers, or NULL */
    int nested_cpu;             /* ... on this vCPU */
    bool xen_emulation;         /* KVM emulates Xen */
} FaultGroupsHost;

/**
 * fault_groups_untracked_writer: can write faults see every write?
 * @host: the accelerator and the features it offers
 *
 * Returns: NULL if write faults see every write to guest memory on
 * @host; otherwise why not, for the error that refuses the capability
 * (to be freed with g_free()).
 */
char *fault_groups_untracked_writer(const FaultGroupsHost *host);

#endif
