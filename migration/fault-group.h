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

/*
 * Check a write-fault-group-max value: a power of two from 1 to
 * FAULT_GROUP_REGION_PAGES.  On error return false and set *@errmsg.
 */
bool fault_groups_max_valid(uint64_t max_pages, const char **errmsg);

/* Track @npages pages, all starting with single-page groups. */
void fault_groups_init(FaultGroups *g, uint64_t npages, uint64_t max_pages);
void fault_groups_destroy(FaultGroups *g);

/*
 * Fault thread: a write fault at @page.  Returns the group to make
 * writable, [*first, *first + *count), aligned to its size and clipped to
 * the tracked pages (*count is 0 for a page outside them).
 */
void fault_groups_fault(FaultGroups *g, uint64_t page, uint64_t *first,
                        uint64_t *count);

/*
 * Migration thread, at a bitmap sync: close the period of @region, with
 * @written of its group pages known to be written (or
 * FAULT_GROUP_WRITTEN_UNKNOWN) out of @unprotected, and adapt its group
 * size.  Returns the period's fault counts.
 */
FaultGroupStats fault_groups_sync(FaultGroups *g, uint64_t region,
                                  uint32_t unprotected, uint32_t written);

static inline unsigned fault_groups_size(const FaultGroups *g,
                                         uint64_t region)
{
    return 1u << g->regions[region].order;
}

/* Mean group size over all regions, in pages. */
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

/* A keyed digest of @len bytes, never 0 */
uint64_t fault_groups_digest(uint64_t key, const void *buf, size_t len);

void fault_groups_sent_init(FaultGroupsSent *s, uint64_t npages,
                            uint64_t key, size_t page_size);
void fault_groups_sent_destroy(FaultGroupsSent *s);

/* @page went out as these @len bytes / as a page of zeros */
void fault_groups_sent_record(FaultGroupsSent *s, uint64_t page,
                              const void *bytes, size_t len);
void fault_groups_sent_zero(FaultGroupsSent *s, uint64_t page);

/* @page went out some way that does not record its bytes */
void fault_groups_sent_forget(FaultGroupsSent *s, uint64_t page);

/*
 * True if @page holds, as @now, exactly what was last sent of it: the
 * destination has it and it need not be sent again.  False when the
 * bytes differ or were not recorded.
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

/*
 * NULL if write faults see every write to guest memory on @host;
 * otherwise why not, for the error that refuses the capability (to be
 * freed with g_free()).
 */
char *fault_groups_untracked_writer(const FaultGroupsHost *host);

#endif
