/*
 * Unit tests for the predictive CPU throttle model
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <setjmp.h>
#include <cmocka.h>
#include "../migration/throttle-model.h"

#define MB (1000 * 1000ULL)

static const ThrottleModelParams defaults = {
    .target_ratio = 0.5,
    .max_pct = 99,
    .downtime_ms = 300,
};

static ThrottleSample period(uint64_t dirty, uint64_t xfer, unsigned pct,
                             uint64_t remaining)
{
    ThrottleSample s = {
        .period_ms = 1000,
        .dirty_bytes = dirty,
        .xfer_bytes = xfer,
        .throttle_pct = pct,
        .remaining_bytes = remaining,
    };
    return s;
}

static ThrottleDecision update(ThrottleModel *m, uint64_t dirty,
                               uint64_t xfer, unsigned pct,
                               uint64_t remaining)
{
    ThrottleSample s = period(dirty, xfer, pct, remaining);

    return throttle_model_update(m, &s);
}

static void test_params_validation(void **state)
{
    ThrottleModelParams p = defaults;
    const char *err = NULL;

    assert_true(throttle_model_params_valid(&p, &err));
    p.target_ratio = 0;
    assert_false(throttle_model_params_valid(&p, &err));
    assert_non_null(strstr(err, "target ratio"));
    p.target_ratio = 1.01;
    assert_false(throttle_model_params_valid(&p, &err));
    p.target_ratio = 0.0 / 0.0;
    assert_false(throttle_model_params_valid(&p, &err));
    p.target_ratio = 1.0;
    assert_true(throttle_model_params_valid(&p, &err));
    p.max_pct = 0;
    assert_false(throttle_model_params_valid(&p, &err));
    assert_non_null(strstr(err, "maximum throttle"));
    p.max_pct = 100;
    assert_false(throttle_model_params_valid(&p, &err));
}

static void test_no_data_no_throttle(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    d = throttle_model_initial(&m);
    assert_int_equal(d.pct, 0);
    assert_int_equal(d.reason, THROTTLE_REASON_NO_DATA);
    /* a seed with a zero rate is no seed */
    throttle_model_seed(&m, 0, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.reason, THROTTLE_REASON_NO_DATA);
}

static void test_seed_decides_at_once(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    /* intrinsic 200 MB/s against 100 MB/s: keep under 50 -> 75% */
    throttle_model_init(&m, &defaults);
    throttle_model_seed(&m, 200 * MB, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.reason, THROTTLE_REASON_THROTTLING);
    assert_int_equal(d.pct, 75);
    assert_true(d.predicted_dirty_rate == 50 * MB);
}

static void test_slow_dirtier_not_throttled(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    throttle_model_seed(&m, 40 * MB, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.pct, 0);
    assert_int_equal(d.reason, THROTTLE_REASON_CONVERGING);
}

static void test_rounds_up(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    /* need 1 - 50/150 = 66.67% -> 67, never 66 */
    throttle_model_init(&m, &defaults);
    throttle_model_seed(&m, 150 * MB, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.pct, 67);
    assert_true(d.predicted_dirty_rate <= 50 * MB);
}

static void test_saturates_at_max(void **state)
{
    ThrottleModelParams p = defaults;
    ThrottleModel m;
    ThrottleDecision d;

    p.max_pct = 90;
    throttle_model_init(&m, &p);
    throttle_model_seed(&m, 10000 * MB, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.pct, 90);
    assert_int_equal(d.reason, THROTTLE_REASON_SATURATED);
    /* says what it will still dirty at the cap: more than the target */
    assert_true(d.predicted_dirty_rate == 1000 * MB);
}

static void test_measured_under_throttle_is_stable(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    throttle_model_seed(&m, 200 * MB, 100 * MB);
    d = throttle_model_initial(&m);
    assert_int_equal(d.pct, 75);
    /* at 75% the guest dirties 50 MB/s: the model must not back off */
    for (int i = 0; i < 5; i++) {
        d = update(&m, 50 * MB, 100 * MB, d.pct,
                                              4000 * MB);
        assert_int_equal(d.pct, 75);
    }
}

static void test_measurement_replaces_bad_seed(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    /* the seed says slow, the first period says 300 MB/s unthrottled */
    throttle_model_init(&m, &defaults);
    throttle_model_seed(&m, 10 * MB, 100 * MB);
    d = update(&m, 300 * MB, 100 * MB, 0, 4000 * MB);
    assert_int_equal(d.reason, THROTTLE_REASON_THROTTLING);
    assert_int_equal(d.pct, 84);        /* 1 - 50/300 = 83.3 */
}

static void test_zero_dirty_releases(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    d = update(&m, 0, 100 * MB, 0, 4000 * MB);
    assert_int_equal(d.pct, 0);
    assert_int_equal(d.reason, THROTTLE_REASON_CONVERGING);
    assert_true(d.predicted_dirty_rate == 0);
}

static void test_release_is_gradual(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;
    int periods = 0;

    throttle_model_init(&m, &defaults);
    d = update(&m, 400 * MB, 100 * MB, 0, 4000 * MB);
    assert_int_equal(d.pct, 88);
    /* the guest goes quiet: one quiet second must not release at once */
    d = update(&m, 0, 100 * MB, d.pct, 4000 * MB);
    assert_true(d.pct > 0);
    while (d.pct > 0 && periods < 20) {
        d = update(&m, 0, 100 * MB, d.pct,
                                              4000 * MB);
        periods++;
    }
    assert_int_equal(d.pct, 0);
    assert_true(periods < 10);
}

static void test_zero_bandwidth_keeps_decision(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    d = update(&m, 200 * MB, 100 * MB, 0, 4000 * MB);
    assert_int_equal(d.pct, 75);
    d = update(&m, 50 * MB, 0, 75, 4000 * MB);
    assert_int_equal(d.pct, 75);
    assert_int_equal(d.reason, THROTTLE_REASON_NO_BANDWIDTH);
    /* bandwidth estimate untouched by the stall */
    assert_true(throttle_model_bandwidth(&m) == 100 * MB);
}

static void test_zero_bandwidth_first_period(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    /* no estimate yet and nothing sent: leave the throttle in force */
    throttle_model_init(&m, &defaults);
    d = update(&m, 100 * MB, 0, 30, 4000 * MB);
    assert_int_equal(d.pct, 30);
    assert_int_equal(d.reason, THROTTLE_REASON_NO_BANDWIDTH);
    assert_true(throttle_model_bandwidth(&m) == 0);
}

static void test_empty_period_ignored(void **state)
{
    ThrottleModel m;
    ThrottleDecision d, e;
    ThrottleSample s = period(500 * MB, 100 * MB, 0, 4000 * MB);

    throttle_model_init(&m, &defaults);
    d = update(&m, 200 * MB, 100 * MB, 0, 4000 * MB);
    s.period_ms = 0;
    e = throttle_model_update(&m, &s);
    assert_int_equal(e.pct, d.pct);
    assert_int_equal(e.reason, d.reason);
}

static void test_little_left_needs_less(void **state)
{
    ThrottleModel m;
    ThrottleDecision far, near;

    /* 200 MB/s against 100 MB/s, 300 ms downtime */
    throttle_model_init(&m, &defaults);
    far = update(&m, 200 * MB, 100 * MB, 0,
                                            4000 * MB);
    throttle_model_init(&m, &defaults);
    /* 40 MB left: dirtying at D for 0.4 s must fit 30 MB -> D <= 75 */
    near = update(&m, 200 * MB, 100 * MB, 0,
                                             40 * MB);
    assert_int_equal(far.pct, 75);
    assert_int_equal(near.pct, 63);     /* 1 - 75/200 = 62.5 */
    assert_true(near.predicted_dirty_rate <= 75 * MB);
}

static void test_fits_downtime_keeps_throttle(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;

    throttle_model_init(&m, &defaults);
    d = update(&m, 200 * MB, 100 * MB, 0, 4000 * MB);
    assert_int_equal(d.pct, 75);
    /* 20 MB left fits 300 ms at 100 MB/s: switchover is due, no change */
    d = update(&m, 50 * MB, 100 * MB, 75, 20 * MB);
    assert_int_equal(d.reason, THROTTLE_REASON_FITS_DOWNTIME);
    assert_int_equal(d.pct, 75);
}

static void test_huge_values(void **state)
{
    ThrottleModel m;
    ThrottleDecision d;
    ThrottleSample s = period(UINT64_MAX, UINT64_MAX / 2, 250, UINT64_MAX);

    throttle_model_init(&m, &defaults);
    s.period_ms = 1;
    d = throttle_model_update(&m, &s);
    assert_true(d.pct <= 99);
    assert_true(throttle_model_dirty_rate(&m) == UINT64_MAX);
    throttle_model_init(&m, &defaults);
    s = period(UINT64_MAX, 1, 0, UINT64_MAX);
    d = throttle_model_update(&m, &s);
    assert_int_equal(d.reason, THROTTLE_REASON_SATURATED);
    assert_int_equal(d.pct, 99);
}

/*
 * Randomised: whatever the inputs, the throttle stays in [0, max_pct],
 * and below the cap the predicted rate honours the target.
 */
static void test_random_inputs_bounded(void **state)
{
    GRand *rand = g_rand_new_with_seed(1234);
    ThrottleModelParams p = defaults;
    ThrottleModel m;

    for (int run = 0; run < 200; run++) {
        p.target_ratio = g_rand_double_range(rand, 0.05, 1.0);
        p.max_pct = g_rand_int_range(rand, 1, 100);
        throttle_model_init(&m, &p);
        for (int i = 0; i < 50; i++) {
            ThrottleSample s = {
                .period_ms = g_rand_int_range(rand, 0, 3000),
                .dirty_bytes = (uint64_t)g_rand_int(rand) *
                               g_rand_int_range(rand, 0, 1000),
                .xfer_bytes = (uint64_t)g_rand_int(rand) *
                              g_rand_int_range(rand, 0, 100),
                .throttle_pct = m.last.pct,
                .remaining_bytes = (uint64_t)g_rand_int(rand) * 16,
            };
            ThrottleDecision d = throttle_model_update(&m, &s);

            assert_true(d.pct <= p.max_pct);
            if (d.reason == THROTTLE_REASON_THROTTLING) {
                double target = p.target_ratio * m.bandwidth;
                double fits = s.remaining_bytes ?
                    m.bandwidth * m.bandwidth * 0.3 / s.remaining_bytes : 0;

                assert_true(d.predicted_dirty_rate <=
                            MAX(target, MIN(fits, m.bandwidth)) * 1.0001 + 1);
            }
        }
    }
    g_rand_free(rand);
}

/*
 * A simulated precopy migration, pass by pass as QEMU syncs its bitmap:
 * each pass sends what was dirty at the last sync at the link rate; the
 * guest meanwhile re-dirties its working set at the intrinsic rate d0
 * slowed by the throttle; the policy sees each pass at the sync that
 * ends it.  Returns the seconds until the remaining data fits the
 * downtime (or -1 after 600 s) and the throttle-seconds the guest lost.
 */
typedef unsigned (*Policy)(void *opaque, uint64_t dirty, uint64_t xfer,
                           uint64_t period_ms, unsigned pct,
                           uint64_t remaining);

typedef struct SimCase {
    double ram, ws, d0, bw, downtime;
} SimCase;

static double simulate(const SimCase *c, Policy policy, void *opaque,
                       double *throttle_secs)
{
    double remaining = c->ram, t = 0;
    unsigned pct = 0;

    *throttle_secs = 0;
    while (t < 600) {
        double secs = MAX(remaining / c->bw, 0.001);
        double dirtied = MIN(c->ws, c->d0 * (100 - pct) / 100 * secs);

        t += secs;
        *throttle_secs += secs * pct / 100.0;
        if (remaining <= c->bw * c->downtime) {
            return t;
        }
        pct = policy(opaque, dirtied, remaining, secs * 1000, pct, dirtied);
        remaining = dirtied;
    }
    return -1;
}

static unsigned policy_model(void *opaque, uint64_t dirty, uint64_t xfer,
                             uint64_t period_ms, unsigned pct,
                             uint64_t remaining)
{
    ThrottleSample s = {
        .period_ms = period_ms, .dirty_bytes = dirty, .xfer_bytes = xfer,
        .throttle_pct = pct, .remaining_bytes = remaining,
    };

    return throttle_model_update(opaque, &s).pct;
}

static unsigned policy_none(void *opaque, uint64_t dirty, uint64_t xfer,
                            uint64_t period_ms, unsigned pct,
                            uint64_t remaining)
{
    return 0;
}

/*
 * QEMU's auto-converge with its defaults (ram.c): a period is bad when it
 * dirtied more than half of what it sent; after two bad periods start at
 * 20%, then add 10% per further pair.
 */
static unsigned policy_auto_converge(void *opaque, uint64_t dirty,
                                     uint64_t xfer, uint64_t period_ms,
                                     unsigned pct, uint64_t remaining)
{
    int *bad = opaque;

    if (dirty > xfer / 2 && ++*bad >= 2) {
        *bad = 0;
        return pct ? MIN(pct + 10, 99) : 20;
    }
    return pct;
}

static void test_simulated_convergence(void **state)
{
    static const SimCase cases[] = {
        /* 4 GB guest, 1 GB hot, 400 MB/s over 100 MB/s, 300 ms */
        { 4000 * MB, 1000 * MB, 400 * MB, 100 * MB, 0.3 },
        /* 2x the link */
        { 4000 * MB, 500 * MB, 200 * MB, 100 * MB, 0.3 },
        /* 0.5x the link: converges alone, must not be throttled much */
        { 4000 * MB, 500 * MB, 50 * MB, 100 * MB, 0.3 },
    };

    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        ThrottleModel m;
        double secs_model, secs_ac, secs_none;
        double t_model, t_ac, t_none;
        int bad = 0;

        throttle_model_init(&m, &defaults);
        t_model = simulate(&cases[i], policy_model, &m, &secs_model);
        t_ac = simulate(&cases[i], policy_auto_converge, &bad, &secs_ac);
        t_none = simulate(&cases[i], policy_none, NULL, &secs_none);
        double first_pass = cases[i].ram / cases[i].bw;

        print_message("# case %d: model %.1f s (%.1f throttle-s), "
                      "auto-converge %.1f s (%.1f throttle-s), "
                      "none %.1f s\n", i, t_model, secs_model, t_ac,
                      secs_ac, t_none);
        assert_true(t_model > 0);
        if (cases[i].d0 <= cases[i].bw * defaults.target_ratio) {
            /* converges by itself: no throttle at all */
            assert_true(t_none > 0);
            assert_true(secs_model == 0);
            continue;
        }
        assert_true(t_none < 0);
        assert_true(t_ac > 0);
        /*
         * After the first pass, which no throttle shortens, the model
         * converges in at most half of auto-converge's time and takes
         * less guest CPU doing so.
         */
        assert_true((t_model - first_pass) * 2 <= t_ac - first_pass);
        assert_true(secs_model < secs_ac);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_validation),
        cmocka_unit_test(test_no_data_no_throttle),
        cmocka_unit_test(test_seed_decides_at_once),
        cmocka_unit_test(test_slow_dirtier_not_throttled),
        cmocka_unit_test(test_rounds_up),
        cmocka_unit_test(test_saturates_at_max),
        cmocka_unit_test(test_measured_under_throttle_is_stable),
        cmocka_unit_test(test_measurement_replaces_bad_seed),
        cmocka_unit_test(test_zero_dirty_releases),
        cmocka_unit_test(test_release_is_gradual),
        cmocka_unit_test(test_zero_bandwidth_keeps_decision),
        cmocka_unit_test(test_zero_bandwidth_first_period),
        cmocka_unit_test(test_empty_period_ignored),
        cmocka_unit_test(test_little_left_needs_less),
        cmocka_unit_test(test_fits_downtime_keeps_throttle),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_random_inputs_bounded),
        cmocka_unit_test(test_simulated_convergence),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("throttle-model", tests, NULL, NULL);
}
