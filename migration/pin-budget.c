/*
 * Pinned-memory budget for RDMA migration
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "pin-budget.h"

bool pin_budget_limit_valid(uint64_t limit, uint64_t chunk_size,
                            uint64_t ram_size, uint64_t memlock,
                            const char **errmsg)
{
    if (chunk_size > UINT64_MAX / PIN_BUDGET_MIN_CHUNKS ||
        limit < chunk_size * PIN_BUDGET_MIN_CHUNKS) {
        *errmsg = "is smaller than 4 RDMA chunks";
        return false;
    }
    if (limit > ram_size) {
        *errmsg = "is larger than guest RAM";
        return false;
    }
    if (limit > memlock) {
        *errmsg = "is above the locked-memory limit (RLIMIT_MEMLOCK, "
                  "ulimit -l)";
        return false;
    }
    return true;
}

void pin_budget_init(PinBudget *b, uint64_t limit, uint64_t nchunks)
{
    uint64_t i;

    memset(b, 0, sizeof(*b));
    b->limit = limit;
    b->nchunks = nchunks;
    b->chunks = g_new0(PinChunk, MAX(nchunks, 1));
    for (i = 0; i < nchunks; i++) {
        b->chunks[i].prev = b->chunks[i].next = b->chunks[i].qnext = -1;
    }
    b->lru_head = b->lru_tail = -1;
    b->q_head = b->q_tail = -1;
}

void pin_budget_destroy(PinBudget *b)
{
    g_free(b->chunks);
    b->chunks = NULL;
    b->nchunks = 0;
}

static void lru_remove(PinBudget *b, int64_t i)
{
    PinChunk *c = &b->chunks[i];

    if (c->prev >= 0) {
        b->chunks[c->prev].next = c->next;
    } else {
        b->lru_head = c->next;
    }
    if (c->next >= 0) {
        b->chunks[c->next].prev = c->prev;
    } else {
        b->lru_tail = c->prev;
    }
    c->prev = c->next = -1;
}

static void lru_append(PinBudget *b, int64_t i)
{
    PinChunk *c = &b->chunks[i];

    c->prev = b->lru_tail;
    c->next = -1;
    if (b->lru_tail >= 0) {
        b->chunks[b->lru_tail].next = i;
    } else {
        b->lru_head = i;
    }
    b->lru_tail = i;
}

static void lru_prepend(PinBudget *b, int64_t i)
{
    PinChunk *c = &b->chunks[i];

    c->prev = -1;
    c->next = b->lru_head;
    if (b->lru_head >= 0) {
        b->chunks[b->lru_head].prev = i;
    } else {
        b->lru_tail = i;
    }
    b->lru_head = i;
}

static void pin(PinBudget *b, PinChunk *c)
{
    b->st.pinned += c->size;
    b->st.peak = MAX(b->st.peak, b->st.pinned);
}

bool pin_budget_designate(PinBudget *b, uint64_t chunk, uint64_t size)
{
    PinChunk *c;

    assert(chunk < b->nchunks);
    c = &b->chunks[chunk];
    switch (c->state) {
    case PIN_CHUNK_PINNED:
    case PIN_CHUNK_INFLIGHT:
        return true;
    case PIN_CHUNK_DONE:
        lru_remove(b, chunk);
        c->state = PIN_CHUNK_PINNED;
        b->st.reuses++;
        return true;
    case PIN_CHUNK_PINNING:
        return false;
    case PIN_CHUNK_IDLE:
        c->size = size;
        /* fall through */
    case PIN_CHUNK_UNPINNING:
        if (!c->queued) {
            c->queued = true;
            c->qnext = -1;
            if (b->q_tail >= 0) {
                b->chunks[b->q_tail].qnext = chunk;
            } else {
                b->q_head = chunk;
            }
            b->q_tail = chunk;
        }
        return false;
    }
    g_assert_not_reached();
}

static bool fits(const PinBudget *b, uint64_t pinned, uint64_t size)
{
    return pinned <= b->limit && size <= b->limit - pinned;
}

PinSelect pin_budget_select(PinBudget *b, uint64_t *chunk)
{
    PinChunk *c;

    if (b->q_head < 0) {
        b->stalled = false;
        return PIN_SELECT_NONE;
    }
    c = &b->chunks[b->q_head];
    if (c->state == PIN_CHUNK_IDLE && fits(b, b->st.pinned, c->size)) {
        *chunk = b->q_head;
        b->q_head = c->qnext;
        if (b->q_head < 0) {
            b->q_tail = -1;
        }
        c->queued = false;
        c->qnext = -1;
        c->state = PIN_CHUNK_PINNING;
        pin(b, c);
        b->st.registrations++;
        b->stalled = false;
        return PIN_SELECT_REGISTER;
    }
    /*
     * Evict only what the head still needs: when the chunks being
     * unregistered make room enough (or the head is one of them), wait.
     */
    if (!fits(b, b->st.pinned - b->unpinning, c->size) && b->lru_head >= 0) {
        *chunk = b->lru_head;
        lru_remove(b, b->lru_head);
        b->chunks[*chunk].state = PIN_CHUNK_UNPINNING;
        b->unpinning += b->chunks[*chunk].size;
        b->stalled = false;
        return PIN_SELECT_EVICT;
    }
    /* a selector woken again and again while it waits stalls once */
    if (!b->stalled) {
        b->st.stalls++;
        b->stalled = true;
    }
    return PIN_SELECT_STALL;
}

void pin_budget_registered(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_PINNING);
    c->state = PIN_CHUNK_PINNED;
}

void pin_budget_register_failed(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_PINNING);
    c->state = PIN_CHUNK_IDLE;
    b->st.pinned -= c->size;
}

void pin_budget_unregistered(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_UNPINNING);
    c->state = PIN_CHUNK_IDLE;
    b->st.pinned -= c->size;
    b->unpinning -= c->size;
    b->st.unregistrations++;
}

void pin_budget_write_posted(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_PINNED || c->state == PIN_CHUNK_INFLIGHT);
    c->state = PIN_CHUNK_INFLIGHT;
    c->inflight++;
}

void pin_budget_write_completed(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_INFLIGHT && c->inflight);
    if (!--c->inflight) {
        c->state = PIN_CHUNK_DONE;
        lru_append(b, chunk);
    }
}

void pin_budget_release(PinBudget *b, uint64_t chunk)
{
    PinChunk *c = &b->chunks[chunk];

    assert(c->state == PIN_CHUNK_PINNED);
    c->state = PIN_CHUNK_DONE;
    lru_prepend(b, chunk);
}

uint64_t pin_budget_release_unused(PinBudget *b, int64_t keep)
{
    uint64_t i, n = 0;

    for (i = 0; i < b->nchunks; i++) {
        if (b->chunks[i].state == PIN_CHUNK_PINNED && (int64_t)i != keep) {
            pin_budget_release(b, i);
            n++;
        }
    }
    return n;
}
