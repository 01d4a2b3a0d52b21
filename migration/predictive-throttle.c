/*
 * Predictive CPU throttle for live migration (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Wires the throttle model (throttle-model.c) to the migration: seeds it
 * at setup, feeds it every dirty bitmap sync period, applies its
 * decision with cpu_throttle_set(), and reports what it did.  See
 * docs/devel/migration/predictive-throttle.rst.
 */

#include "qemu/osdep.h"
#include "qemu/timer.h"
#include "system/cpu-throttle.h"
#include "migration.h"
#include "options.h"
#include "predictive-throttle.h"
#include "throttle-model.h"
#include "trace.h"

typedef struct PredictiveThrottle {
    ThrottleModel model;
    unsigned pct;               /* throttle in force */
    int64_t pct_since_ms;       /* when it was set */
    double throttle_time_ms;    /* guest CPU time taken, per vCPU */
    uint64_t decisions;
    uint64_t saturated;
    uint64_t measured_dirty_rate;
} PredictiveThrottle;

/* Protected by the BQL. */
static PredictiveThrottle predictive_throttle;

/* Rates of the last migration in this process, to seed the next one. */
static uint64_t history_dirty_rate;
static uint64_t history_bandwidth;

static void account_throttle_time(void)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    predictive_throttle.throttle_time_ms +=
        (now - predictive_throttle.pct_since_ms) *
        predictive_throttle.pct / 100.0;
    predictive_throttle.pct_since_ms = now;
}

static void apply(ThrottleDecision d, uint64_t dirty_rate)
{
    account_throttle_time();
    predictive_throttle.decisions++;
    if (d.reason == THROTTLE_REASON_SATURATED) {
        predictive_throttle.saturated++;
    }
    trace_predictive_throttle_decide(
        dirty_rate, throttle_model_dirty_rate(&predictive_throttle.model),
        throttle_model_bandwidth(&predictive_throttle.model),
        d.predicted_dirty_rate, d.pct, throttle_reason_str(d.reason));
    if (d.pct == predictive_throttle.pct) {
        return;
    }
    predictive_throttle.pct = d.pct;
    if (d.pct) {
        cpu_throttle_set(d.pct);
    } else {
        /* stopping the throttle stops the sync timer too: keep that */
        cpu_throttle_stop();
        cpu_throttle_dirty_sync_timer(true);
    }
}

void predictive_throttle_setup(void)
{
    ThrottleModelParams params = {
        .target_ratio = migrate_throttle_target_ratio() / 100.0,
        .max_pct = MAX(1, migrate_max_cpu_throttle()),
        .downtime_ms = migrate_downtime_limit(),
    };
    uint64_t dirty_rate = migrate_throttle_prior_dirty_rate();
    uint64_t bandwidth = migrate_throttle_prior_bandwidth();
    const char *source = "parameters";

    if (!dirty_rate || !bandwidth) {
        dirty_rate = history_dirty_rate;
        bandwidth = history_bandwidth;
        source = "earlier migration";
    }

    memset(&predictive_throttle, 0, sizeof(predictive_throttle));
    predictive_throttle.pct_since_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    throttle_model_init(&predictive_throttle.model, &params);
    if (dirty_rate && bandwidth) {
        trace_predictive_throttle_seed(dirty_rate, bandwidth, source);
        throttle_model_seed(&predictive_throttle.model, dirty_rate, bandwidth);
    }
    apply(throttle_model_initial(&predictive_throttle.model), 0);
    /* re-measure every few seconds even while one pass takes long */
    cpu_throttle_dirty_sync_timer(true);
}

void predictive_throttle_period(uint64_t period_ms, uint64_t dirty_bytes,
                                uint64_t xfer_bytes, uint64_t remaining)
{
    ThrottleSample s = {
        .period_ms = period_ms,
        .dirty_bytes = dirty_bytes,
        .xfer_bytes = xfer_bytes,
        .throttle_pct = predictive_throttle.pct,
        .remaining_bytes = remaining,
    };

    if (!period_ms) {
        return;
    }
    predictive_throttle.measured_dirty_rate = dirty_bytes * 1000 / period_ms;
    apply(throttle_model_update(&predictive_throttle.model, &s),
          predictive_throttle.measured_dirty_rate);
}

void predictive_throttle_cleanup(void)
{
    uint64_t dirty_rate = throttle_model_dirty_rate(&predictive_throttle.model);
    uint64_t bandwidth = throttle_model_bandwidth(&predictive_throttle.model);

    account_throttle_time();
    predictive_throttle.pct = 0;
    cpu_throttle_stop();
    if (dirty_rate && bandwidth) {
        history_dirty_rate = dirty_rate;
        history_bandwidth = bandwidth;
    }
    trace_predictive_throttle_cleanup(
        (uint64_t)predictive_throttle.throttle_time_ms,
        predictive_throttle.decisions, predictive_throttle.saturated);
}

static PredictiveThrottleState state_of(ThrottleReason reason)
{
    switch (reason) {
    case THROTTLE_REASON_NO_DATA:
        return PREDICTIVE_THROTTLE_STATE_NO_DATA;
    case THROTTLE_REASON_CONVERGING:
        return PREDICTIVE_THROTTLE_STATE_CONVERGING;
    case THROTTLE_REASON_FITS_DOWNTIME:
        return PREDICTIVE_THROTTLE_STATE_FITS_DOWNTIME;
    case THROTTLE_REASON_THROTTLING:
        return PREDICTIVE_THROTTLE_STATE_THROTTLING;
    case THROTTLE_REASON_SATURATED:
        return PREDICTIVE_THROTTLE_STATE_SATURATED;
    case THROTTLE_REASON_NO_BANDWIDTH:
        return PREDICTIVE_THROTTLE_STATE_NO_BANDWIDTH;
    }
    g_assert_not_reached();
}

void predictive_throttle_populate_info(MigrationInfo *info)
{
    PredictiveThrottleInfo *pi = g_new0(PredictiveThrottleInfo, 1);
    double running = 0;

    if (predictive_throttle.pct) {
        running = (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                   predictive_throttle.pct_since_ms) *
                  predictive_throttle.pct / 100.0;
    }
    pi->state = state_of(predictive_throttle.model.last.reason);
    pi->percentage = predictive_throttle.pct;
    pi->throttle_time = predictive_throttle.throttle_time_ms + running;
    pi->decisions = predictive_throttle.decisions;
    pi->saturated_decisions = predictive_throttle.saturated;
    pi->predicted_dirty_rate =
        predictive_throttle.model.last.predicted_dirty_rate;
    pi->measured_dirty_rate = predictive_throttle.measured_dirty_rate;
    pi->estimated_dirty_rate =
        throttle_model_dirty_rate(&predictive_throttle.model);
    pi->estimated_bandwidth =
        throttle_model_bandwidth(&predictive_throttle.model);
    info->predictive_throttle = pi;
}
