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

/*
 * Check an rdma-pin-limit: at least PIN_BUDGET_MIN_CHUNKS chunks of
 * @chunk_size, at most @ram_size and at most @memlock (the
 * RLIMIT_MEMLOCK soft limit; UINT64_MAX when unlimited).  On error
 * return false and set *@errmsg.
 */
bool pin_budget_limit_valid(uint64_t limit, uint64_t chunk_size,
                            uint64_t ram_size, uint64_t memlock,
                            const char **errmsg);

void pin_budget_init(PinBudget *b, uint64_t limit, uint64_t nchunks);
void pin_budget_destroy(PinBudget *b);

/*
 * @chunk of @size bytes has pages to transfer.  Returns true when it is
 * registered already and idle or done: the caller may post writes at
 * once (it is then in use, like PINNED).  Otherwise it is queued for
 * the selector, if not queued already.
 */
bool pin_budget_designate(PinBudget *b, uint64_t chunk, uint64_t size);

/*
 * The selector: what to do next, and the chunk to do it with.  It
 * evicts no more than the oldest designated chunk needs: while the
 * chunks being unregistered would make room for it, it stalls.
 */
PinSelect pin_budget_select(PinBudget *b, uint64_t *chunk);

void pin_budget_registered(PinBudget *b, uint64_t chunk);
/* Registration failed: the chunk is not pinned, and no longer queued. */
void pin_budget_register_failed(PinBudget *b, uint64_t chunk);
void pin_budget_unregistered(PinBudget *b, uint64_t chunk);
void pin_budget_write_posted(PinBudget *b, uint64_t chunk);
void pin_budget_write_completed(PinBudget *b, uint64_t chunk);

/*
 * A PINNED @chunk will not be written after all: it was pinned ahead
 * of the data path, which went elsewhere, or its pages turned out to
 * be zero.  It becomes DONE, and the first chunk evicted for room.
 */
void pin_budget_release(PinBudget *b, uint64_t chunk);

/*
 * Release every PINNED chunk but @keep (-1: none); returns how many.
 * For when nothing is in flight and the selector stalls: the budget is
 * then held only by chunks pinned ahead.
 */
uint64_t pin_budget_release_unused(PinBudget *b, int64_t keep);

static inline PinChunkState pin_budget_state(const PinBudget *b,
                                             uint64_t chunk)
{
    return b->chunks[chunk].state;
}

#endif
