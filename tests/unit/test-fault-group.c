/*
 * Unit tests for the write-fault group-size controller
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "../migration/fault-group.h"

#define RP FAULT_GROUP_REGION_PAGES

static void test_max_validation(void **state)
{
    const char *err = NULL;

    assert_true(fault_groups_max_valid(1, &err));
    assert_true(fault_groups_max_valid(16, &err));
    assert_true(fault_groups_max_valid(RP, &err));
    assert_false(fault_groups_max_valid(0, &err));
    assert_non_null(strstr(err, "power of two"));
    assert_false(fault_groups_max_valid(12, &err));
    assert_false(fault_groups_max_valid(RP * 2, &err));
    assert_false(fault_groups_max_valid(UINT64_MAX, &err));
}

/* Run faults in region 0 for @periods periods, each a run of @n pages. */
static void run_periods(FaultGroups *g, int periods, uint64_t n)
{
    uint64_t first, count;

    for (int p = 0; p < periods; p++) {
        for (uint64_t page = 0; page < n; page += count) {
            fault_groups_fault(g, page, &first, &count);
            assert_true(count > 0);
        }
        fault_groups_sync(g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    }
}

static void test_starts_per_page(void **state)
{
    FaultGroups g;
    uint64_t first, count;

    fault_groups_init(&g, 4 * RP, 64);
    fault_groups_fault(&g, 77, &first, &count);
    assert_int_equal(first, 77);
    assert_int_equal(count, 1);
    assert_true(fault_groups_mean_size(&g) == 1.0);
    fault_groups_destroy(&g);
}

static void test_runs_grow_to_max(void **state)
{
    FaultGroups g;

    /* a short run: one step */
    fault_groups_init(&g, 4 * RP, 16);
    run_periods(&g, FAULT_GROUP_GROW_HEAT, 8);
    assert_int_equal(fault_groups_size(&g, 0), 2);
    fault_groups_destroy(&g);

    /* the whole region in one run: a sixteenth of it at once, capped */
    fault_groups_init(&g, 4 * RP, 16);
    run_periods(&g, FAULT_GROUP_GROW_HEAT, RP);
    assert_int_equal(fault_groups_size(&g, 0), 16);
    run_periods(&g, 10, RP);
    assert_int_equal(fault_groups_size(&g, 0), 16);
    /* other regions were not touched */
    assert_int_equal(fault_groups_size(&g, 1), 1);
    fault_groups_destroy(&g);

    fault_groups_destroy(&g);
}

/*
 * A region written in order grows its groups during the period, before
 * any sync: its first pass takes at least 8x fewer faults than pages.
 */
static void test_runs_grow_within_period(void **state)
{
    FaultGroups g;
    uint64_t first, count, faults = 0, page = 0;

    fault_groups_init(&g, 4 * RP, RP);
    while (page < RP) {
        fault_groups_fault(&g, page, &first, &count);
        /* a grown group may start before the page, never after it */
        assert_true(first <= page && page < first + count);
        page = first + count;
        faults++;
    }
    assert_true(faults * 8 <= RP);
    assert_true(fault_groups_size(&g, 0) >= RP / 16);
    /* scattered faults in the next region do not grow it */
    for (page = RP; page < 2 * RP; page += 7) {
        fault_groups_fault(&g, page, &first, &count);
    }
    assert_int_equal(fault_groups_size(&g, 1), 1);
    /* and the sync keeps what the run earned */
    fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    assert_true(fault_groups_size(&g, 0) >= RP / 16);
    fault_groups_destroy(&g);
}

static void test_span_aligned_and_clipped(void **state)
{
    FaultGroups g;
    uint64_t first, count;

    /* 2.5 regions: the last group of the last region is cut short */
    fault_groups_init(&g, 2 * RP + RP / 2 + 3, RP);
    g.regions[2].order = 9;
    fault_groups_fault(&g, 2 * RP + 100, &first, &count);
    assert_int_equal(first, 2 * RP);
    assert_int_equal(count, RP / 2 + 3);
    g.regions[1].order = 4;
    fault_groups_fault(&g, RP + 37, &first, &count);
    assert_int_equal(first, RP + 32);
    assert_int_equal(count, 16);
    /* outside the tracked pages: nothing */
    fault_groups_fault(&g, 3 * RP, &first, &count);
    assert_int_equal(count, 0);
    fault_groups_destroy(&g);
}

static void test_order_above_max_is_capped(void **state)
{
    FaultGroups g;
    uint64_t first, count;

    /* a torn or stale order can never make a group larger than max */
    fault_groups_init(&g, RP, 8);
    g.regions[0].order = 7;
    fault_groups_fault(&g, 100, &first, &count);
    assert_int_equal(count, 8);
    assert_int_equal(first, 96);
    fault_groups_destroy(&g);
}

static void test_single_faults_do_not_grow(void **state)
{
    FaultGroups g;
    uint64_t first, count;

    fault_groups_init(&g, RP, 64);
    for (int p = 0; p < 20; p++) {
        fault_groups_fault(&g, 200, &first, &count);
        fault_groups_sync(&g, 0, 1, FAULT_GROUP_WRITTEN_UNKNOWN);
    }
    assert_int_equal(fault_groups_size(&g, 0), 1);
    fault_groups_destroy(&g);
}

static void test_scattered_faults_shrink(void **state)
{
    FaultGroups g;
    uint64_t first, count;
    FaultGroupStats st;

    fault_groups_init(&g, RP, 64);
    g.regions[0].order = 3;
    /* groups 1, 5, 9, ...: never next to each other */
    for (uint64_t page = 8; page < RP; page += 32) {
        fault_groups_fault(&g, page, &first, &count);
    }
    st = fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    assert_int_equal(st.faults, RP / 32);
    assert_int_equal(st.run_faults, 0);
    assert_int_equal(fault_groups_size(&g, 0), 4);
    fault_groups_destroy(&g);
}

static void test_descending_runs_count(void **state)
{
    FaultGroups g;
    uint64_t first, count;
    FaultGroupStats st;

    fault_groups_init(&g, RP, 64);
    for (uint64_t page = RP; page-- > RP - 6;) {
        fault_groups_fault(&g, page, &first, &count);
    }
    st = fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    assert_int_equal(st.faults, 6);
    assert_int_equal(st.run_faults, 5);
    /* the counters were taken */
    st = fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    assert_int_equal(st.faults, 0);
    fault_groups_destroy(&g);
}

static void test_clean_pages_shrink(void **state)
{
    FaultGroups g;

    fault_groups_init(&g, RP, 64);
    g.regions[0].order = 4;
    run_periods(&g, 0, 0);
    /* a run of faults, but only half of the group pages were written */
    for (uint64_t page = 0; page < 64; page += 16) {
        uint64_t first, count;

        fault_groups_fault(&g, page, &first, &count);
    }
    fault_groups_sync(&g, 0, 64, 32);
    assert_int_equal(fault_groups_size(&g, 0), 8);
    fault_groups_destroy(&g);
}

static void test_idle_steps_back(void **state)
{
    FaultGroups g;

    fault_groups_init(&g, RP, 64);
    g.regions[0].order = 2;
    for (int p = 0; p < FAULT_GROUP_IDLE_STEP - 1; p++) {
        fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    }
    assert_int_equal(fault_groups_size(&g, 0), 4);
    fault_groups_sync(&g, 0, 0, FAULT_GROUP_WRITTEN_UNKNOWN);
    assert_int_equal(fault_groups_size(&g, 0), 2);
    fault_groups_destroy(&g);
}

static void test_bad_region_ignored(void **state)
{
    FaultGroups g;
    FaultGroupStats st;

    fault_groups_init(&g, RP, 64);
    st = fault_groups_sync(&g, 5, 10, 10);
    assert_int_equal(st.faults, 0);
    fault_groups_destroy(&g);
}

/*
 * A simulated migration of a guest with 64 regions: each period between
 * two syncs the workload writes, the controller groups the faults, and
 * every page made writable is re-sent.  Per-page tracking takes a fault
 * per written page and re-sends exactly those.
 */
typedef struct SimResult {
    uint64_t faults;
    uint64_t written;
    uint64_t resent;
    uint64_t late_faults;       /* in the second half of the periods */
    uint64_t late_written;
} SimResult;

#define SIM_PERIODS 40

typedef void (*Workload)(GRand *rand, int period, bool *wr, uint64_t n);

static SimResult simulate(uint64_t max, Workload w, bool measure_written)
{
    const uint64_t npages = 64 * RP;
    FaultGroups g;
    GRand *rand = g_rand_new_with_seed(42);
    bool *wr = g_new0(bool, npages);
    bool *open = g_new0(bool, npages);
    SimResult res = { 0 };

    fault_groups_init(&g, npages, max);
    for (int period = 0; period < SIM_PERIODS; period++) {
        bool late = period >= SIM_PERIODS / 2;

        memset(wr, 0, npages);
        memset(open, 0, npages);
        w(rand, period, wr, npages);
        for (uint64_t p = 0; p < npages; p++) {
            uint64_t first, count;

            if (!wr[p] || open[p]) {
                continue;
            }
            fault_groups_fault(&g, p, &first, &count);
            res.faults++;
            res.late_faults += late;
            for (uint64_t i = first; i < first + count; i++) {
                open[i] = true;
            }
        }
        for (uint64_t r = 0; r < g.nregions; r++) {
            uint32_t unprot = 0, written = 0;

            for (uint64_t i = r * RP; i < (r + 1) * RP; i++) {
                unprot += open[i];
                written += wr[i];
            }
            res.resent += unprot;
            res.written += written;
            res.late_written += late ? written : 0;
            fault_groups_sync(&g, r, unprot, measure_written ?
                              written : FAULT_GROUP_WRITTEN_UNKNOWN);
        }
    }
    fault_groups_destroy(&g);
    g_free(wr);
    g_free(open);
    g_rand_free(rand);
    return res;
}

/*
 * A 48 MiB working set rewritten in order, 16 MiB per period, each
 * period going on where the last one stopped.
 */
static void seq_writer(GRand *rand, int period, bool *wr, uint64_t n)
{
    const uint64_t ws = 12288, base = 1000, per_period = 4096;
    uint64_t start = period * per_period;

    for (uint64_t i = 0; i < per_period; i++) {
        wr[base + (start + i) % ws] = true;
    }
}

/* 300 scattered pages each period */
static void rand_writer(GRand *rand, int period, bool *wr, uint64_t n)
{
    for (int i = 0; i < 300; i++) {
        wr[g_rand_int_range(rand, 0, n)] = true;
    }
}

static void test_simulated_sequential(void **state)
{
    SimResult per_page = simulate(1, seq_writer, false);
    SimResult grouped = simulate(16, seq_writer, false);

    print_message("# sequential: per-page %" PRIu64 " faults; groups of up "
                  "to 16: %" PRIu64 " faults, %" PRIu64 " re-sent for %"
                  PRIu64 " written\n", per_page.faults, grouped.faults,
                  grouped.resent, grouped.written);
    print_message("# sequential, second half: %" PRIu64 " faults for %"
                  PRIu64 " written\n", grouped.late_faults,
                  grouped.late_written);
    assert_true(per_page.faults == per_page.written);
    assert_true(per_page.resent == per_page.written);
    /*
     * The goal of write-fault-groups: at least 8x fewer faults than
     * per-page tracking with at most 10% extra pages.  The groups grow
     * during the first write of each region already, so this holds over
     * the whole run; once grown, about the 16x that groups of 16 allow.
     */
    assert_true(grouped.faults * 8 <= per_page.faults);
    assert_true(grouped.late_faults * 8 <= grouped.late_written);
    assert_true(grouped.resent * 10 <= grouped.written * 11);
}

static void test_simulated_random(void **state)
{
    SimResult per_page = simulate(1, rand_writer, false);
    SimResult grouped = simulate(16, rand_writer, false);

    print_message("# random: per-page %" PRIu64 " faults; groups of up to "
                  "16: %" PRIu64 " faults, %" PRIu64 " re-sent for %" PRIu64
                  " written\n", per_page.faults, grouped.faults,
                  grouped.resent, grouped.written);
    /* scattered writes keep single pages: no clean pages re-sent */
    assert_true(grouped.resent * 100 <= grouped.written * 102);
}

/* The digest is keyed, never 0, and sees every bit of the page */
static void test_digest(void **state)
{
    enum { PAGE = 4096 };
    g_autofree uint8_t *page = g_malloc0(PAGE);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_int64_hash,
                                                  g_int64_equal);
    g_autofree uint64_t *all = g_new(uint64_t, PAGE * 8 + 1);
    uint64_t d0 = fault_groups_digest(1, page, PAGE);

    assert_true(d0 != 0);
    assert_true(d0 == fault_groups_digest(1, page, PAGE));
    assert_true(d0 != fault_groups_digest(2, page, PAGE));
    /* the length counts, and a tail shorter than a word is read */
    assert_true(fault_groups_digest(1, page, 8) !=
                fault_groups_digest(1, page, 9));
    page[PAGE - 1] = 1;
    assert_true(fault_groups_digest(1, page, PAGE - 1) !=
                fault_groups_digest(1, page, PAGE));
    page[PAGE - 1] = 0;

    /* every single-bit change of a page gives its own digest */
    all[0] = d0;
    g_hash_table_add(seen, &all[0]);
    for (size_t bit = 0; bit < PAGE * 8; bit++) {
        page[bit / 8] ^= 1u << (bit % 8);
        all[bit + 1] = fault_groups_digest(1, page, PAGE);
        page[bit / 8] ^= 1u << (bit % 8);
        assert_false(g_hash_table_contains(seen, &all[bit + 1]));
        g_hash_table_add(seen, &all[bit + 1]);
    }
}

/*
 * What was sent of a page: unknown until recorded; unchanged only with
 * the very bytes recorded; forgotten when the page goes another way.
 */
static void test_sent_pages(void **state)
{
    enum { PAGE = 4096 };
    g_autofree uint8_t *a = g_malloc0(PAGE);
    g_autofree uint8_t *b = g_malloc0(PAGE);
    FaultGroupsSent s;

    memset(a, 0xa5, PAGE);
    memcpy(b, a, PAGE);
    fault_groups_sent_init(&s, 4, 0x1234, PAGE);
    assert_false(fault_groups_sent_unchanged(&s, 0, a, PAGE));

    fault_groups_sent_record(&s, 0, a, PAGE);
    assert_true(fault_groups_sent_unchanged(&s, 0, b, PAGE));
    b[100] ^= 1;
    assert_false(fault_groups_sent_unchanged(&s, 0, b, PAGE));

    /* a write and a restore: the last bytes sent are what counts */
    fault_groups_sent_record(&s, 0, b, PAGE);
    assert_false(fault_groups_sent_unchanged(&s, 0, a, PAGE));
    assert_true(fault_groups_sent_unchanged(&s, 0, b, PAGE));

    fault_groups_sent_forget(&s, 0);
    assert_false(fault_groups_sent_unchanged(&s, 0, b, PAGE));

    memset(b, 0, PAGE);
    fault_groups_sent_zero(&s, 3);
    assert_true(fault_groups_sent_unchanged(&s, 3, b, PAGE));
    assert_false(fault_groups_sent_unchanged(&s, 3, a, PAGE));

    /* pages past the end: recording them does nothing */
    fault_groups_sent_record(&s, 4, b, PAGE);
    fault_groups_sent_zero(&s, 4);
    assert_false(fault_groups_sent_unchanged(&s, 4, b, PAGE));
    fault_groups_sent_destroy(&s);
}

/*
 * Write faults must see every write: with KVM, nested virtualization and
 * Xen emulation have KVM write guest pages without one, so the
 * capability is refused there, naming the cause; TCG and plain KVM are
 * fine.
 */
static void test_untracked_writers(void **state)
{
    static const struct {
        FaultGroupsHost host;
        const char *refused;    /* a word of the reason, or NULL */
    } cases[] = {
        { { .kvm = false }, NULL },
        { { .kvm = true }, NULL },
        /* TCG's nested SVM writes through QEMU's own mapping */
        { { .kvm = false, .nested_feature = "svm" }, NULL },
        { { .kvm = false, .xen_emulation = true }, NULL },
        { { .kvm = true, .nested_feature = "vmx", .nested_cpu = 1 },
          "vCPU 1 offers nested virtualization (CPU feature 'vmx')" },
        { { .kvm = true, .nested_feature = "svm" }, "svm=off" },
        { { .kvm = true, .xen_emulation = true }, "emulates Xen" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *why = fault_groups_untracked_writer(&cases[i].host);

        if (!cases[i].refused) {
            assert_null(why);
        } else {
            assert_non_null(why);
            assert_non_null(strstr(why, cases[i].refused));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_validation),
        cmocka_unit_test(test_starts_per_page),
        cmocka_unit_test(test_runs_grow_to_max),
        cmocka_unit_test(test_runs_grow_within_period),
        cmocka_unit_test(test_span_aligned_and_clipped),
        cmocka_unit_test(test_order_above_max_is_capped),
        cmocka_unit_test(test_single_faults_do_not_grow),
        cmocka_unit_test(test_scattered_faults_shrink),
        cmocka_unit_test(test_descending_runs_count),
        cmocka_unit_test(test_clean_pages_shrink),
        cmocka_unit_test(test_idle_steps_back),
        cmocka_unit_test(test_bad_region_ignored),
        cmocka_unit_test(test_simulated_sequential),
        cmocka_unit_test(test_simulated_random),
        cmocka_unit_test(test_untracked_writers),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_sent_pages),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("fault-group", tests, NULL, NULL);
}
