/*
 * Pinned-memory budget for RDMA migration
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * RDMA migration registers (pins) guest RAM chunks with the adapter
 * before it writes them.  With the rdma-pin-budget capability the bytes
 * pinned at any time never exceed rdma-pin-limit: chunks with modified
 * pages are designated for transfer; a selector, running apart from the
 * designation, picks the next designated chunk only while the pinned
 * bytes plus that chunk stay within the limit, making room by
 * unregistering the least recently used chunks whose writes have all
 * completed.  A chunk with writes in flight is never unregistered.
 *
 * Chunk states:
 *
 *   IDLE --designate/select--> PINNING --registered--> PINNED
 *   PINNED --write_posted--> INFLIGHT --last write_completed--> DONE
 *   DONE --write_posted--> INFLIGHT          (designated again: reuse)
 *   DONE --select evicts--> UNPINNING --unregistered--> IDLE
 *   PINNED --release--> DONE                 (pinned ahead, not written)
 *
 * PINNING, PINNED, INFLIGHT, DONE and UNPINNING count against the
 * budget.  The scheduler is QEMU-independent and single-threaded: the
 * caller serialises the calls (in QEMU, under one lock shared by the
 * migration thread, the registration worker and the completion path).
 */

#ifndef MIGRATION_PIN_BUDGET_H
#define MIGRATION_PIN_BUDGET_H

/* The smallest limit: this many of the largest chunks. */
#define PIN_BUDGET_MIN_CHUNKS 4

typedef enum PinChunkState {
    PIN_CHUNK_IDLE,
    PIN_CHUNK_PINNING,
    PIN_CHUNK_PINNED,
    PIN_CHUNK_INFLIGHT,
    PIN_CHUNK_DONE,
    PIN_CHUNK_UNPINNING,
} PinChunkState;

typedef struct PinChunk {
    uint64_t size;
    uint32_t inflight;          /* writes posted and not completed */
    uint8_t state;              /* PinChunkState */
    bool queued;                /* designated, not yet selected */
    int64_t prev, next;         /* LRU list of DONE chunks, -1 = none */
    int64_t qnext;              /* designation FIFO, -1 = none */
} PinChunk;

typedef struct PinBudgetStats {
    uint64_t pinned;            /* bytes counted against the limit now */
    uint64_t peak;
    uint64_t registrations;
    uint64_t unregistrations;
    uint64_t reuses;            /* designated while still registered */
    uint64_t stalls;            /* waits for room (one per wait) */
} PinBudgetStats;

typedef struct PinBudget {
    uint64_t limit;
    uint64_t nchunks;
    PinChunk *chunks;
    int64_t lru_head, lru_tail; /* least recently completed first */
    int64_t q_head, q_tail;
    uint64_t unpinning;         /* bytes of chunks in UNPINNING */
    bool stalled;               /* the last selection stalled */
    PinBudgetStats st;
} PinBudget;

typedef enum PinSelect {
    PIN_SELECT_NONE,            /* nothing designated */
    PIN_SELECT_REGISTER,        /* register *chunk, then registered() */
    PIN_SELECT_EVICT,           /* unregister *chunk, then unregistered() */
    PIN_SELECT_STALL,           /* wait for a write to complete */
} PinSelect;

/**
 * pin_budget_limit_valid: check an rdma-pin-limit
 * @limit: the limit, in bytes
 * @chunk_size: the size of the largest chunk
 * @ram_size: the size of guest RAM
 * @memlock: the RLIMIT_MEMLOCK soft limit; UINT64_MAX when unlimited
 * @errmsg: on error, set to what is wrong
 *
 * The limit must be at least PIN_BUDGET_MIN_CHUNKS chunks of
 * @chunk_size, at most @ram_size and at most @memlock.
 *
 * Returns: true if @limit is valid, false otherwise.
 */
bool pin_budget_limit_valid(uint64_t limit, uint64_t chunk_size,
                            uint64_t ram_size, uint64_t memlock,
                            const char **errmsg);

/**
 * pin_budget_init: start a budget with every chunk IDLE
 * @b: the budget
 * @limit: the most bytes pinned at any time
 * @nchunks: the number of chunks
 */
void pin_budget_init(PinBudget *b, uint64_t limit, uint64_t nchunks);

/**
 * pin_budget_destroy: free what pin_budget_init() allocated
 * @b: the budget
 */
void pin_budget_destroy(PinBudget *b);

/**
 * pin_budget_designate: a chunk has pages to transfer
 * @b: the budget
 * @chunk: the chunk
 * @size: its size, in bytes
 *
 * When @chunk is not registered already and idle or done, it is queued
 * for the selector, if not queued already.
 *
 * Returns: true when it is registered already and idle or done: the
 * caller may post writes at once (it is then in use, like PINNED).
 */
bool pin_budget_designate(PinBudget *b, uint64_t chunk, uint64_t size);

/**
 * pin_budget_select: the selector
 * @b: the budget
 * @chunk: set to the chunk to do it with, for PIN_SELECT_REGISTER and
 *   PIN_SELECT_EVICT
 *
 * It evicts no more than the oldest designated chunk needs: while the
 * chunks being unregistered would make room for it, it stalls.
 *
 * Returns: what to do next.
 */
PinSelect pin_budget_select(PinBudget *b, uint64_t *chunk);

/**
 * pin_budget_registered: registration succeeded
 * @b: the budget
 * @chunk: the chunk, PINNING; it becomes PINNED
 */
void pin_budget_registered(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_register_failed: registration failed
 * @b: the budget
 * @chunk: the chunk, PINNING
 *
 * The chunk is not pinned, and no longer queued.
 */
void pin_budget_register_failed(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_unregistered: an evicted chunk was unregistered
 * @b: the budget
 * @chunk: the chunk, UNPINNING; it becomes IDLE
 */
void pin_budget_unregistered(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_write_posted: a write to a chunk was posted
 * @b: the budget
 * @chunk: the chunk, PINNED or INFLIGHT; it becomes INFLIGHT
 */
void pin_budget_write_posted(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_write_completed: a write to a chunk completed
 * @b: the budget
 * @chunk: the chunk, INFLIGHT; it becomes DONE with its last write
 */
void pin_budget_write_completed(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_release: a pinned chunk will not be written
 * @b: the budget
 * @chunk: the chunk, PINNED
 *
 * @chunk will not be written after all: it was pinned ahead of the data
 * path, which went elsewhere, or its pages turned out to be zero.  It
 * becomes DONE, and the first chunk evicted for room.
 */
void pin_budget_release(PinBudget *b, uint64_t chunk);

/**
 * pin_budget_release_unused: release the chunks pinned ahead
 * @b: the budget
 * @keep: a chunk to keep PINNED (-1: none)
 *
 * Release every PINNED chunk but @keep.  For when nothing is in flight
 * and the selector stalls: the budget is then held only by chunks
 * pinned ahead.
 *
 * Returns: how many chunks were released.
 */
uint64_t pin_budget_release_unused(PinBudget *b, int64_t keep);

/**
 * pin_budget_state: a chunk's state
 * @b: the budget
 * @chunk: the chunk
 *
 * Returns: the state of @chunk.
 */
static inline PinChunkState pin_budget_state(const PinBudget *b,
                                             uint64_t chunk)
{
    return b->chunks[chunk].state;
}

#endif
