/*
 * Unit tests of the RDMA pinned-memory budget scheduler
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "migration/pin-budget.h"

#define CHUNK (1024 * 1024)

static void test_limit_validation(void **state)
{
    const char *err = NULL;

    assert_true(pin_budget_limit_valid(4 * CHUNK, CHUNK, 1ull << 30,
                                       UINT64_MAX, &err));
    assert_false(pin_budget_limit_valid(4 * CHUNK - 1, CHUNK, 1ull << 30,
                                        UINT64_MAX, &err));
    assert_non_null(strstr(err, "4 RDMA chunks"));
    assert_false(pin_budget_limit_valid(2ull << 30, CHUNK, 1ull << 30,
                                        UINT64_MAX, &err));
    assert_non_null(strstr(err, "guest RAM"));
    assert_false(pin_budget_limit_valid(64 * CHUNK, CHUNK, 1ull << 30,
                                        8 * 1024 * 1024, &err));
    assert_non_null(strstr(err, "RLIMIT_MEMLOCK"));
    assert_false(pin_budget_limit_valid(UINT64_MAX, UINT64_MAX / 2,
                                        UINT64_MAX, UINT64_MAX, &err));
}

static void test_flow(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 16);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_NONE);
    assert_false(pin_budget_designate(&b, 3, CHUNK));
    /* designating twice queues once */
    assert_false(pin_budget_designate(&b, 3, CHUNK));
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 3);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_NONE);
    assert_int_equal(b.st.pinned, CHUNK);
    /* while it is being registered it is neither ready nor queued */
    assert_false(pin_budget_designate(&b, 3, CHUNK));
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_NONE);
    pin_budget_registered(&b, 3);
    assert_true(pin_budget_designate(&b, 3, CHUNK));
    pin_budget_write_posted(&b, 3);
    pin_budget_write_posted(&b, 3);
    pin_budget_write_completed(&b, 3);
    assert_int_equal(pin_budget_state(&b, 3), PIN_CHUNK_INFLIGHT);
    pin_budget_write_completed(&b, 3);
    assert_int_equal(pin_budget_state(&b, 3), PIN_CHUNK_DONE);
    /* done but registered: designating it again reuses the pinning */
    assert_true(pin_budget_designate(&b, 3, CHUNK));
    assert_int_equal(b.st.reuses, 1);
    assert_int_equal(b.st.registrations, 1);
    assert_int_equal(b.st.pinned, CHUNK);
    pin_budget_destroy(&b);
}

/* Fill the budget; the next chunk evicts the least recently done. */
static void test_evicts_lru_never_inflight(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 16);
    for (uint64_t i = 0; i < 4; i++) {
        pin_budget_designate(&b, i, CHUNK);
        assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
        pin_budget_registered(&b, c);
        pin_budget_write_posted(&b, c);
    }
    assert_int_equal(b.st.pinned, 4 * CHUNK);

    /* all four have writes in flight: the fifth must wait */
    pin_budget_designate(&b, 9, CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(b.st.stalls, 1);
    /* a selector woken again with nothing changed: the same wait */
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(b.st.stalls, 1);

    /* completed in the order 2, 0: 2 is evicted first */
    pin_budget_write_completed(&b, 2);
    pin_budget_write_completed(&b, 0);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 2);
    /* still counted until it is unregistered; 2 makes room enough */
    assert_int_equal(b.st.pinned, 4 * CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(pin_budget_state(&b, 0), PIN_CHUNK_DONE);
    pin_budget_unregistered(&b, 2);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 9);
    assert_int_equal(b.st.pinned, 4 * CHUNK);
    assert_int_equal(b.st.peak, 4 * CHUNK);
    /* 1 and 3 still have writes in flight: never evicted */
    assert_int_equal(pin_budget_state(&b, 1), PIN_CHUNK_INFLIGHT);
    assert_int_equal(pin_budget_state(&b, 3), PIN_CHUNK_INFLIGHT);
    pin_budget_destroy(&b);
}

/* A chunk designated while it is being unregistered is pinned again. */
static void test_designate_while_unpinning(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 8);
    for (uint64_t i = 0; i < 4; i++) {
        pin_budget_designate(&b, i, CHUNK);
        pin_budget_select(&b, &c);
        pin_budget_registered(&b, c);
        pin_budget_write_posted(&b, c);
        pin_budget_write_completed(&b, c);
    }
    pin_budget_designate(&b, 5, CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 0);
    assert_false(pin_budget_designate(&b, 0, CHUNK));
    pin_budget_unregistered(&b, 0);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 5);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 1);
    pin_budget_unregistered(&b, 1);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 0);
    pin_budget_destroy(&b);
}

static void test_register_failed(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 8);
    pin_budget_designate(&b, 1, CHUNK);
    pin_budget_select(&b, &c);
    pin_budget_register_failed(&b, 1);
    assert_int_equal(b.st.pinned, 0);
    assert_int_equal(pin_budget_state(&b, 1), PIN_CHUNK_IDLE);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_NONE);
    pin_budget_destroy(&b);
}

/* Chunks pinned ahead and not written are released, and evicted first. */
static void test_release(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 8);
    for (uint64_t i = 0; i < 4; i++) {
        assert_false(pin_budget_designate(&b, i, CHUNK));
        assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
        pin_budget_registered(&b, c);
    }
    /* 0 and 1 are written; 2 and 3 were pinned ahead */
    pin_budget_write_posted(&b, 0);
    pin_budget_write_completed(&b, 0);
    pin_budget_write_posted(&b, 1);
    /* the budget is full: the next chunk stalls while 1 is in flight */
    pin_budget_designate(&b, 6, CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 0);
    pin_budget_unregistered(&b, 0);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 6);
    pin_budget_registered(&b, 6);
    pin_budget_designate(&b, 7, CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    /* 6 is the chunk the data path waits for: kept */
    assert_int_equal(pin_budget_release_unused(&b, 6), 2);
    assert_int_equal(pin_budget_state(&b, 2), PIN_CHUNK_DONE);
    assert_int_equal(pin_budget_state(&b, 6), PIN_CHUNK_PINNED);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_true(c == 2 || c == 3);
    assert_int_equal(pin_budget_state(&b, 1), PIN_CHUNK_INFLIGHT);
    /* a released chunk designated again is reused without pinning */
    assert_true(pin_budget_designate(&b, 5 - c, CHUNK));
    assert_int_equal(b.st.reuses, 1);
    assert_true(b.st.pinned <= b.limit);
    pin_budget_destroy(&b);
}

/* The selector evicts no more than the oldest designated chunk needs. */
static void test_no_over_eviction(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 8);
    for (uint64_t i = 0; i < 4; i++) {
        pin_budget_designate(&b, i, CHUNK);
        pin_budget_select(&b, &c);
        pin_budget_registered(&b, c);
        pin_budget_write_posted(&b, c);
        pin_budget_write_completed(&b, c);
    }
    pin_budget_designate(&b, 4, CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 0);
    /* 0's unregistration will make the room: wait for it */
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(pin_budget_state(&b, 1), PIN_CHUNK_DONE);
    /* 0 is wanted again while it is being unregistered */
    assert_false(pin_budget_designate(&b, 0, CHUNK));
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    pin_budget_unregistered(&b, 0);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 4);
    pin_budget_registered(&b, 4);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 1);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    pin_budget_unregistered(&b, 1);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    assert_int_equal(c, 0);
    assert_int_equal(b.st.unregistrations, 2);
    assert_int_equal(b.unpinning, 0);
    pin_budget_destroy(&b);
}

/* A short chunk at the head needs less room than a full one. */
static void test_evicts_for_size(void **state)
{
    PinBudget b;
    uint64_t c;

    pin_budget_init(&b, 4 * CHUNK, 8);
    for (uint64_t i = 0; i < 4; i++) {
        pin_budget_designate(&b, i, CHUNK / 2);
        pin_budget_select(&b, &c);
        pin_budget_registered(&b, c);
        pin_budget_write_posted(&b, c);
        pin_budget_write_completed(&b, c);
    }
    pin_budget_designate(&b, 4, CHUNK);
    pin_budget_designate(&b, 5, 2 * CHUNK);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_REGISTER);
    pin_budget_registered(&b, c);
    /* 3 of 4 chunks pinned: 5 needs two halves evicted, not more */
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 0);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_EVICT);
    assert_int_equal(c, 1);
    assert_int_equal(pin_budget_select(&b, &c), PIN_SELECT_STALL);
    assert_int_equal(pin_budget_state(&b, 2), PIN_CHUNK_DONE);
    pin_budget_destroy(&b);
}

/*
 * Random interleavings of the data path (designate, post, complete),
 * the registration worker (select, registered, unregistered) and
 * failures, with chunks of different sizes: the pinned bytes never
 * exceed the limit, no chunk with writes in flight is unregistered,
 * and every designated chunk is transferred in the end.
 */
typedef struct Model {
    uint32_t inflight;
    bool wanted;                /* designated, waiting to be written */
    bool evicting;
} Model;

static void random_interleavings(uint64_t limit_chunks, guint32 seed)
{
    enum { N = 64 };
    GRand *rand = g_rand_new_with_seed(seed);
    Model m[N] = { 0 };
    uint64_t size[N], transfers = 0, wanted = 0;
    PinBudget b;

    for (int i = 0; i < N; i++) {
        size[i] = CHUNK / (1 + (i % 3));     /* RDMA chunks may be short */
    }
    pin_budget_init(&b, limit_chunks * CHUNK, N);

    for (int step = 0; step < 200000 || wanted; step++) {
        int i = g_rand_int_range(rand, 0, N);
        uint64_t c;

        switch (step < 200000 ? g_rand_int_range(rand, 0, 6) : 1 + step % 5) {
        case 0:
            if (!m[i].wanted) {
                m[i].wanted = true;
                wanted++;
                if (pin_budget_designate(&b, i, size[i])) {
                    pin_budget_write_posted(&b, i);
                    m[i].inflight++;
                    m[i].wanted = false;
                    wanted--;
                    transfers++;
                }
            }
            break;
        case 1:
        case 2:
            switch (pin_budget_select(&b, &c)) {
            case PIN_SELECT_REGISTER:
                assert_true(m[c].wanted);
                if (g_rand_int_range(rand, 0, 50) == 0) {
                    pin_budget_register_failed(&b, c);
                    /* the data path designates it again */
                    pin_budget_designate(&b, c, size[c]);
                    break;
                }
                pin_budget_registered(&b, c);
                if (g_rand_int_range(rand, 0, 20) == 0) {
                    /* pinned ahead, not written: released, wanted again */
                    pin_budget_release(&b, c);
                    assert_true(pin_budget_designate(&b, c, size[c]));
                }
                pin_budget_write_posted(&b, c);
                m[c].inflight++;
                m[c].wanted = false;
                wanted--;
                transfers++;
                break;
            case PIN_SELECT_EVICT:
                assert_int_equal(m[c].inflight, 0);
                assert_int_equal(pin_budget_state(&b, c),
                                 PIN_CHUNK_UNPINNING);
                m[c].evicting = true;
                break;
            default:
                break;
            }
            break;
        case 3:
            for (int k = 0; k < N; k++) {
                if (m[k].evicting) {
                    pin_budget_unregistered(&b, k);
                    m[k].evicting = false;
                    break;
                }
            }
            break;
        default:
            if (m[i].inflight) {
                m[i].inflight--;
                pin_budget_write_completed(&b, i);
            }
            break;
        }
        assert_true(b.st.pinned <= b.limit);
    }
    assert_true(b.st.peak <= b.limit);
    assert_true(transfers > 1000);
    assert_true(b.st.unregistrations > 100);
    print_message("# limit %" PRIu64 " chunks: %" PRIu64 " transfers, %"
                  PRIu64 " registrations, %" PRIu64 " reuses, %" PRIu64
                  " stalls, peak %" PRIu64 " of %" PRIu64 " bytes\n",
                  limit_chunks, transfers, b.st.registrations, b.st.reuses,
                  b.st.stalls, b.st.peak, b.limit);
    pin_budget_destroy(&b);
    g_rand_free(rand);
}

static void test_random_interleavings(void **state)
{
    random_interleavings(PIN_BUDGET_MIN_CHUNKS, 1);
    random_interleavings(16, 2);
    random_interleavings(5, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_validation),
        cmocka_unit_test(test_flow),
        cmocka_unit_test(test_evicts_lru_never_inflight),
        cmocka_unit_test(test_designate_while_unpinning),
        cmocka_unit_test(test_register_failed),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_no_over_eviction),
        cmocka_unit_test(test_evicts_for_size),
        cmocka_unit_test(test_random_interleavings),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("pin-budget", tests, NULL, NULL);
}
