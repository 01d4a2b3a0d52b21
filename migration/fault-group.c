/*
 * Adaptive group size for write-fault dirty tracking
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "fault-group.h"

bool fault_groups_max_valid(uint64_t max_pages, const char **errmsg)
{
    if (max_pages < 1 || max_pages > FAULT_GROUP_REGION_PAGES ||
        (max_pages & (max_pages - 1))) {
        *errmsg = "must be a power of two from 1 to 512 pages";
        return false;
    }
    return true;
}

void fault_groups_init(FaultGroups *g, uint64_t npages, uint64_t max_pages)
{
    g->npages = npages;
    g->nregions = DIV_ROUND_UP(npages, FAULT_GROUP_REGION_PAGES);
    g->max_order = 0;
    while ((2ull << g->max_order) <= max_pages &&
           g->max_order < FAULT_GROUP_REGION_SHIFT) {
        g->max_order++;
    }
    g->regions = g_new0(FaultGroupRegion, MAX(g->nregions, 1));
}

void fault_groups_destroy(FaultGroups *g)
{
    g_free(g->regions);
    g->regions = NULL;
    g->nregions = 0;
}

void fault_groups_fault(FaultGroups *g, uint64_t page, uint64_t *first,
                        uint64_t *count)
{
    FaultGroupRegion *r;
    uint64_t size, group;
    unsigned order;

    if (page >= g->npages) {
        *first = page;
        *count = 0;
        return;
    }
    r = &g->regions[page >> FAULT_GROUP_REGION_SHIFT];
    order = MIN(qatomic_read(&r->order), g->max_order);
    group = page >> order;

    /* a run: the group right after (or before) the previous fault's */
    if (r->last_group && (r->last_group == group ||
                          r->last_group == group + 2)) {
        qatomic_inc(&r->run_faults);
        if (++r->streak >= FAULT_GROUP_FAST_RUN && order < g->max_order) {
            /* a long run in this period already: grow now */
            r->streak = 0;
            order++;
            qatomic_set(&r->order, order);
            group = page >> order;
        }
    } else {
        r->streak = 0;
    }
    size = 1ull << order;
    *first = group << order;
    *count = MIN(size, g->npages - *first);
    r->last_group = group + 1;
    qatomic_inc(&r->faults);
}

static void step(FaultGroupRegion *r, unsigned max_order, int dir)
{
    unsigned order = r->order;

    r->heat = 0;
    r->idle = 0;
    if (dir < 0 && order) {
        order--;
    } else if (dir > 0 && order < max_order) {
        order++;
    }
    qatomic_set(&r->order, order);
}

/*
 * Grow at least one step, and at once to a sixteenth of the pages the
 * runs covered: long runs then take few faults from the next period on,
 * while a run that starts or ends inside a group re-sends at most about
 * one sixteenth of it unwritten.
 */
static void grow(FaultGroupRegion *r, unsigned max_order, uint64_t run_pages)
{
    unsigned order = r->order + 1;

    while (order < max_order && (2ull << order) <= run_pages / 16) {
        order++;
    }
    r->heat = 0;
    r->idle = 0;
    qatomic_set(&r->order, MIN(order, max_order));
}

FaultGroupStats fault_groups_sync(FaultGroups *g, uint64_t region,
                                  uint32_t unprotected, uint32_t written)
{
    FaultGroupStats st = { 0 };
    FaultGroupRegion *r;

    if (region >= g->nregions) {
        return st;
    }
    r = &g->regions[region];
    st.faults = qatomic_xchg(&r->faults, 0);
    st.run_faults = qatomic_xchg(&r->run_faults, 0);
    /* group numbers change with the size: start the runs afresh */
    r->last_group = 0;
    r->streak = 0;

    if (!st.faults) {
        if (++r->idle >= FAULT_GROUP_IDLE_STEP) {
            step(r, g->max_order, -1);
        }
        return st;
    }
    r->idle = 0;
    if (written != FAULT_GROUP_WRITTEN_UNKNOWN && unprotected &&
               written < unprotected &&
               (uint64_t)(unprotected - written) * 100 >
               (uint64_t)unprotected * FAULT_GROUP_CLEAN_PCT) {
        step(r, g->max_order, -1);
    } else if (st.faults >= 2 && st.run_faults * 2 >= st.faults) {
        if (++r->heat >= FAULT_GROUP_GROW_HEAT) {
            grow(r, g->max_order, (uint64_t)(st.run_faults + 1) << r->order);
        }
    } else if (st.faults >= 2 && !st.run_faults) {
        step(r, g->max_order, -1);
    } else {
        r->heat = 0;
    }
    return st;
}

double fault_groups_mean_size(const FaultGroups *g)
{
    double sum = 0;
    uint64_t i;

    if (!g->nregions) {
        return 1;
    }
    for (i = 0; i < g->nregions; i++) {
        sum += 1ull << g->regions[i].order;
    }
    return sum / g->nregions;
}

char *fault_groups_untracked_writer(const FaultGroupsHost *host)
{
    if (!host->kvm) {
        return NULL;
    }
    if (host->nested_feature) {
        return g_strdup_printf("vCPU %d offers nested virtualization "
                               "(CPU feature '%s'), whose pages KVM writes "
                               "without a write fault; turn the feature "
                               "off (-cpu ...,%s=off) to use it",
                               host->nested_cpu, host->nested_feature,
                               host->nested_feature);
    }
    if (host->xen_emulation) {
        return g_strdup("KVM emulates Xen, whose shared pages KVM writes "
                        "without a write fault");
    }
    return NULL;
}

/*
 * The digest: four lanes of xxHash64's round over 8-byte words, keyed
 * by the seed, folded and avalanched as xxHash64 does.  Only this host
 * compares digests, so the byte order does not matter.
 */
#define FG_P1 0x9E3779B185EBCA87ull
#define FG_P2 0xC2B2AE3D27D4EB4Full
#define FG_P3 0x165667B19E3779F9ull
#define FG_P4 0x85EBCA77C2B2AE63ull
#define FG_P5 0x27D4EB2F165667C5ull

static inline uint64_t fg_rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t fg_round(uint64_t acc, uint64_t in)
{
    return fg_rotl(acc + in * FG_P2, 31) * FG_P1;
}

static inline uint64_t fg_merge(uint64_t h, uint64_t v)
{
    return (h ^ fg_round(0, v)) * FG_P1 + FG_P4;
}

uint64_t fault_groups_digest(uint64_t key, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t v1 = key + FG_P1 + FG_P2, v2 = key + FG_P2, v3 = key;
    uint64_t v4 = key - FG_P1, h, w[4];
    size_t i = 0;

    for (; i + 32 <= len; i += 32) {
        memcpy(w, p + i, 32);
        v1 = fg_round(v1, w[0]);
        v2 = fg_round(v2, w[1]);
        v3 = fg_round(v3, w[2]);
        v4 = fg_round(v4, w[3]);
    }
    h = fg_rotl(v1, 1) + fg_rotl(v2, 7) + fg_rotl(v3, 12) + fg_rotl(v4, 18);
    h = fg_merge(fg_merge(fg_merge(fg_merge(h, v1), v2), v3), v4);
    h += len;
    for (; i + 8 <= len; i += 8) {
        memcpy(w, p + i, 8);
        h = fg_rotl(h ^ fg_round(0, w[0]), 27) * FG_P1 + FG_P4;
    }
    for (; i < len; i++) {
        h = fg_rotl(h ^ (p[i] * FG_P5), 11) * FG_P1;
    }
    h ^= h >> 33;
    h *= FG_P2;
    h ^= h >> 29;
    h *= FG_P3;
    h ^= h >> 32;
    return h ? h : 1;
}

void fault_groups_sent_init(FaultGroupsSent *s, uint64_t npages,
                            uint64_t key, size_t page_size)
{
    g_autofree uint8_t *zeros = g_malloc0(page_size);

    s->key = key;
    s->npages = npages;
    s->zero = fault_groups_digest(key, zeros, page_size);
    s->digest = g_new0(uint64_t, MAX(npages, 1));
}

void fault_groups_sent_destroy(FaultGroupsSent *s)
{
    g_free(s->digest);
    s->digest = NULL;
    s->npages = 0;
}

void fault_groups_sent_record(FaultGroupsSent *s, uint64_t page,
                              const void *bytes, size_t len)
{
    if (page < s->npages) {
        s->digest[page] = fault_groups_digest(s->key, bytes, len);
    }
}

void fault_groups_sent_zero(FaultGroupsSent *s, uint64_t page)
{
    if (page < s->npages) {
        s->digest[page] = s->zero;
    }
}

void fault_groups_sent_forget(FaultGroupsSent *s, uint64_t page)
{
    if (page < s->npages) {
        s->digest[page] = 0;
    }
}

bool fault_groups_sent_unchanged(const FaultGroupsSent *s, uint64_t page,
                                 const void *now, size_t len)
{
    return page < s->npages && s->digest[page] &&
           s->digest[page] == fault_groups_digest(s->key, now, len);
}
