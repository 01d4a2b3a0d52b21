/*
 * Predictive CPU throttle model for live migration
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Decides how much to throttle the guest's vCPUs so that the rate at which
 * it dirties memory stays under a share of the rate at which migration
 * transfers it, from the measured dirty rate, the measured transfer rate
 * and the rates seen by earlier migrations of the same VM.
 *
 * A throttle of p lets the vCPUs run (1 - p) of the time, so a dirty rate
 * measured under throttle p corresponds to an unthrottled ("intrinsic")
 * rate D0 = D / (1 - p).  To keep the throttled rate under
 * target_ratio * bandwidth the model needs
 *
 *     D0 * (1 - p) <= target_ratio * B   <=>   p >= 1 - target_ratio * B / D0
 *
 * and applies the smallest such p at once, clamped to max_pct, instead
 * of stepping up after repeated bad rounds.  It releases the throttle
 * when the remaining data fits in the downtime limit or the guest no
 * longer dirties faster than the target.
 *
 * The code is QEMU-independent so that it can be unit tested on its own.
 */

#ifndef MIGRATION_THROTTLE_MODEL_H
#define MIGRATION_THROTTLE_MODEL_H

typedef struct ThrottleModelParams {
    /* share of the bandwidth the throttled dirty rate may use, (0, 1] */
    double target_ratio;
    /* highest throttle percentage the model may apply, 1..99 */
    unsigned max_pct;
    /* allowed downtime: remaining data that fits needs no throttle */
    uint64_t downtime_ms;
} ThrottleModelParams;

/* What one bitmap-sync period measured. */
typedef struct ThrottleSample {
    uint64_t period_ms;
    uint64_t dirty_bytes;       /* newly dirtied in the period */
    uint64_t xfer_bytes;        /* sent in the period */
    unsigned throttle_pct;      /* throttle in force during the period */
    uint64_t remaining_bytes;   /* dirty data left at the end */
} ThrottleSample;

typedef enum ThrottleReason {
    THROTTLE_REASON_NO_DATA,        /* nothing measured or seeded yet */
    THROTTLE_REASON_CONVERGING,     /* dirty rate already under target */
    THROTTLE_REASON_FITS_DOWNTIME,  /* remaining data fits the downtime */
    THROTTLE_REASON_THROTTLING,     /* throttle computed and applied */
    THROTTLE_REASON_SATURATED,      /* needs more than max_pct */
    THROTTLE_REASON_NO_BANDWIDTH,   /* nothing sent: decision kept */
} ThrottleReason;

typedef struct ThrottleDecision {
    unsigned pct;               /* 0 = no throttle, else 1..max_pct */
    ThrottleReason reason;
    /* dirty rate expected at pct, bytes per second */
    uint64_t predicted_dirty_rate;
} ThrottleDecision;

typedef struct ThrottleModel {
    ThrottleModelParams params;
    bool have_estimate;
    double dirty_rate;          /* unthrottled estimate, bytes/s */
    double bandwidth;           /* estimate, bytes/s */
    ThrottleDecision last;
} ThrottleModel;

/**
 * throttle_model_params_valid: check the model's parameters
 * @params: the parameters
 * @errmsg: on error, set to a static description of what is wrong
 *
 * Returns: true if @params are valid, false otherwise.
 */
bool throttle_model_params_valid(const ThrottleModelParams *params,
                                 const char **errmsg);

/**
 * throttle_model_init: start a model with no estimates
 * @m: the model
 * @params: its parameters, copied
 */
void throttle_model_init(ThrottleModel *m, const ThrottleModelParams *params);

/**
 * throttle_model_seed: seed the estimates
 * @m: the model
 * @dirty_rate: unthrottled dirty rate, bytes per second
 * @bandwidth: transfer rate, bytes per second
 *
 * Seed the estimates from an earlier migration of the same VM (or from
 * management): its unthrottled dirty rate and its transfer rate.  Zero
 * rates are ignored.
 */
void throttle_model_seed(ThrottleModel *m, uint64_t dirty_rate,
                         uint64_t bandwidth);

/**
 * throttle_model_initial: decide before anything is measured
 * @m: the model
 *
 * For the start of a migration.  Without a seed, no throttle.
 *
 * Returns: the decision the estimates support before anything is
 * measured.
 */
ThrottleDecision throttle_model_initial(ThrottleModel *m);

/**
 * throttle_model_update: account for a period
 * @m: the model
 * @s: what the period measured
 *
 * Fold in one measured period and decide the throttle for the next.
 *
 * Returns: the decision for the next period.
 */
ThrottleDecision throttle_model_update(ThrottleModel *m,
                                       const ThrottleSample *s);

/**
 * throttle_model_dirty_rate: current dirty rate estimate
 * @m: the model
 *
 * To remember for the next migration.
 *
 * Returns: the unthrottled dirty rate estimate in bytes per second, 0
 * without an estimate.
 */
uint64_t throttle_model_dirty_rate(const ThrottleModel *m);

/**
 * throttle_model_bandwidth: current transfer rate estimate
 * @m: the model
 *
 * To remember for the next migration.
 *
 * Returns: the transfer rate estimate in bytes per second, 0 without an
 * estimate.
 */
uint64_t throttle_model_bandwidth(const ThrottleModel *m);

/**
 * throttle_reason_str: name of a reason
 * @reason: the reason
 *
 * Returns: a static string naming @reason, such as "throttling".
 */
const char *throttle_reason_str(ThrottleReason reason);

#endif
