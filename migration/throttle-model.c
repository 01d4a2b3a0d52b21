/*
 * Predictive CPU throttle model for live migration
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "throttle-model.h"

/*
 * A rising dirty rate is believed at once (under-throttling is what makes
 * a migration never converge); a falling one is averaged over periods so
 * that one quiet second does not release the throttle.
 */
#define DIRTY_DECAY_WEIGHT 0.5
#define BANDWIDTH_WEIGHT 0.5

bool throttle_model_params_valid(const ThrottleModelParams *params,
                                 const char **errmsg)
{
    if (!(params->target_ratio > 0.0 && params->target_ratio <= 1.0)) {
        *errmsg = "target ratio must be greater than 0 and at most 1";
        return false;
    }
    if (params->max_pct < 1 || params->max_pct > 99) {
        *errmsg = "maximum throttle must be between 1 and 99 percent";
        return false;
    }
    return true;
}

void throttle_model_init(ThrottleModel *m, const ThrottleModelParams *params)
{
    memset(m, 0, sizeof(*m));
    m->params = *params;
    m->last.reason = THROTTLE_REASON_NO_DATA;
}

void throttle_model_seed(ThrottleModel *m, uint64_t dirty_rate,
                         uint64_t bandwidth)
{
    if (!dirty_rate || !bandwidth) {
        return;
    }
    m->dirty_rate = dirty_rate;
    m->bandwidth = bandwidth;
    m->have_estimate = true;
}

static uint64_t rate_to_u64(double rate)
{
    if (!(rate > 0.0)) {
        return 0;
    }
    return rate >= (double)UINT64_MAX ? UINT64_MAX : (uint64_t)rate;
}

/*
 * The dirty rate the guest may have: a share of the bandwidth, or more
 * when so little is left that what the guest dirties while it is sent
 * still fits the downtime (remaining / B seconds of dirtying at rate D
 * must fit B * downtime, so D <= B^2 * downtime / remaining).
 */
static double allowed_dirty_rate(const ThrottleModel *m,
                                 uint64_t remaining_bytes)
{
    double b = m->bandwidth;
    double allowed = m->params.target_ratio * b;

    if (remaining_bytes) {
        double fits = b * b * (m->params.downtime_ms / 1000.0) /
                      remaining_bytes;
        allowed = MAX(allowed, MIN(fits, b));
    }
    return allowed;
}

static ThrottleDecision decide(ThrottleModel *m, uint64_t remaining_bytes)
{
    ThrottleDecision d = { 0 };
    double allowed, need;

    if (!m->have_estimate) {
        d.reason = THROTTLE_REASON_NO_DATA;
        return m->last = d;
    }
    if (remaining_bytes &&
        remaining_bytes <= m->bandwidth * (m->params.downtime_ms / 1000.0)) {
        /* switchover is due now; changing the throttle cannot help */
        d = m->last;
        d.reason = THROTTLE_REASON_FITS_DOWNTIME;
        return m->last = d;
    }

    allowed = allowed_dirty_rate(m, remaining_bytes);
    if (m->dirty_rate <= allowed) {
        d.reason = THROTTLE_REASON_CONVERGING;
        d.predicted_dirty_rate = rate_to_u64(m->dirty_rate);
        return m->last = d;
    }

    need = 100.0 * (1.0 - allowed / m->dirty_rate);
    if (need > m->params.max_pct) {
        d.pct = m->params.max_pct;
        d.reason = THROTTLE_REASON_SATURATED;
    } else {
        d.pct = (unsigned)need;
        d.pct += d.pct < need;          /* round up: never under-throttle */
        d.pct = MAX(1, d.pct);
        d.reason = THROTTLE_REASON_THROTTLING;
    }
    d.predicted_dirty_rate = rate_to_u64(m->dirty_rate * (100 - d.pct) / 100);
    return m->last = d;
}

ThrottleDecision throttle_model_initial(ThrottleModel *m)
{
    return decide(m, 0);
}

ThrottleDecision throttle_model_update(ThrottleModel *m,
                                       const ThrottleSample *s)
{
    unsigned pct = MIN(s->throttle_pct, 99);
    double dirty, bw;

    if (!s->period_ms) {
        return m->last;
    }
    /* the rate the guest would have had without the throttle in force */
    dirty = (double)s->dirty_bytes * 1000.0 / s->period_ms;
    dirty = dirty * 100.0 / (100 - pct);
    bw = (double)s->xfer_bytes * 1000.0 / s->period_ms;

    if (!m->have_estimate || dirty >= m->dirty_rate) {
        m->dirty_rate = dirty;
    } else {
        m->dirty_rate = DIRTY_DECAY_WEIGHT * m->dirty_rate +
                        (1.0 - DIRTY_DECAY_WEIGHT) * dirty;
    }

    if (bw <= 0.0) {
        /*
         * Nothing went out (a stalled link, a paused transfer): there is
         * no basis for a new decision, so the throttle in force stays.
         */
        if (!m->have_estimate) {
            m->last.pct = pct;
        }
        m->last.reason = THROTTLE_REASON_NO_BANDWIDTH;
        return m->last;
    }
    if (!m->have_estimate) {
        m->bandwidth = bw;
    } else {
        m->bandwidth = BANDWIDTH_WEIGHT * m->bandwidth +
                       (1.0 - BANDWIDTH_WEIGHT) * bw;
    }
    m->have_estimate = true;
    return decide(m, s->remaining_bytes);
}

uint64_t throttle_model_dirty_rate(const ThrottleModel *m)
{
    return m->have_estimate ? rate_to_u64(m->dirty_rate) : 0;
}

uint64_t throttle_model_bandwidth(const ThrottleModel *m)
{
    return m->have_estimate ? rate_to_u64(m->bandwidth) : 0;
}

const char *throttle_reason_str(ThrottleReason reason)
{
    switch (reason) {
    case THROTTLE_REASON_NO_DATA:
        return "no-data";
    case THROTTLE_REASON_CONVERGING:
        return "converging";
    case THROTTLE_REASON_FITS_DOWNTIME:
        return "fits-downtime";
    case THROTTLE_REASON_THROTTLING:
        return "throttling";
    case THROTTLE_REASON_SATURATED:
        return "saturated";
    case THROTTLE_REASON_NO_BANDWIDTH:
        return "no-bandwidth";
    }
    return "unknown";
}
