/*
 * Per-channel choice of compression for multifd packets
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * See compress-choice.h for the model.
 */

#include "qemu/osdep.h"
#include <math.h>
#include "compress-choice.h"

const int compress_choice_level[COMPRESS_CHOICE_ARMS] = { 0, 1, 3, 6 };

void compress_choice_init(CompressChoice *c)
{
    memset(c, 0, sizeof(*c));
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        c->arm[a].interval = COMPRESS_CHOICE_PROBE_MIN;
        c->arm[a].next_probe = COMPRESS_CHOICE_PROBE_MIN;
        c->arm[a].rel_to = -1;
    }
    /* no compression costs no CPU and keeps every byte: nothing to learn */
    c->arm[COMPRESS_CHOICE_NONE].ratio = 1.0;
    c->arm[COMPRESS_CHOICE_NONE].measured = true;
    c->best = COMPRESS_CHOICE_NONE;
    c->probing = -1;
}

/*
 * An arm other than the best is estimated from the best's averages and
 * its own ratio and time to the best's on the same pages (its paired
 * probes); otherwise, and for the best, from its own averages.
 */
static void compress_choice_estimate(const CompressChoice *c, int arm,
                                     double *ratio, double *ns)
{
    const CompressArm *m = &c->arm[arm];
    const CompressArm *b = &c->arm[c->best];

    if (arm != c->best && m->rel_to == c->best) {
        *ratio = MIN(1.0, m->rel_ratio * b->ratio);
        *ns = m->rel_ns * b->compress_ns;
    } else {
        *ratio = m->ratio;
        *ns = m->compress_ns;
    }
}

double compress_choice_cost(const CompressChoice *c, int arm, double link_ns)
{
    double ratio, ns, cpu, link;

    compress_choice_estimate(c, arm, &ratio, &ns);
    cpu = ns + ratio * c->write_ns;
    link = ratio * link_ns;

    /* max(cpu, link), but for the part of each hidden behind the other */
    return sqrt(sqrt(cpu * cpu * cpu * cpu + link * link * link * link));
}

static int compress_choice_best(const CompressChoice *c, double link_ns)
{
    int best = COMPRESS_CHOICE_NONE;
    double best_cost = compress_choice_cost(c, best, link_ns);

    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        double cost = compress_choice_cost(c, a, link_ns);

        if (c->arm[a].measured && cost < best_cost) {
            best = a;
            best_cost = cost;
        }
    }
    return best;
}

/*
 * Whether @arm is worth a probe while @best is the best: a level only
 * when the level below it is the best or near it.  A higher level
 * compresses better but more slowly, so it can win only where the
 * link, not the CPU, bounds the time, and there the level below is
 * near the best too.  Where the level below loses by far, a higher
 * one loses by more, and its probes are the costliest of all.
 */
static bool compress_choice_worth(const CompressChoice *c, int arm, int best)
{
    int below = arm - 1;

    if (below <= COMPRESS_CHOICE_NONE || below == best) {
        return true;
    }
    return c->arm[below].measured &&
           compress_choice_cost(c, below, c->link_ns) * COMPRESS_CHOICE_NEAR <=
           compress_choice_cost(c, best, c->link_ns) * 100;
}

int compress_choice_pick(CompressChoice *c, double link_ns, bool *probe)
{
    uint64_t n = c->packet++;
    int best, due = -1;

    c->link_ns = link_ns;
    c->probing = -1;
    *probe = false;

    best = compress_choice_best(c, link_ns);
    /* an arm never measured is tried once, when it is worth it */
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        if (!c->arm[a].measured && compress_choice_worth(c, a, best)) {
            c->probing = a;
            c->probes++;
            *probe = true;
            return a;
        }
    }

    if (best != c->best &&
        compress_choice_cost(c, best, link_ns) * 100 >
        compress_choice_cost(c, c->best, link_ns) *
        (100 - COMPRESS_CHOICE_HYSTERESIS)) {
        best = c->best;         /* not faster enough to switch */
    }
    if (best != c->best) {
        /* what followed the old best keeps its last estimate */
        for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
            CompressArm *m = &c->arm[a];

            if (m->rel_to == c->best) {
                compress_choice_estimate(c, a, &m->ratio, &m->compress_ns);
                m->rel_to = -1;
            }
        }
        c->switches++;
        c->best = best;
    }

    /* the arm whose probe is most overdue, if any */
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        if (a != best && c->arm[a].next_probe <= n &&
            compress_choice_worth(c, a, best) &&
            (due < 0 || c->arm[a].next_probe < c->arm[due].next_probe)) {
            due = a;
        }
    }
    if (due >= 0) {
        c->probing = due;
        c->probes++;
        *probe = true;
        return due;
    }
    return best;
}

static void ewma(double *avg, double sample, bool first)
{
    if (first) {
        *avg = sample;
    } else {
        *avg += (sample - *avg) * COMPRESS_CHOICE_ALPHA / 100.0;
    }
}

void compress_choice_compressed(CompressChoice *c, int arm, uint64_t in,
                                uint64_t out, uint64_t ns)
{
    CompressArm *m = &c->arm[arm];
    double paired_ns = 0;

    m->packets++;
    m->bytes_in += in;
    m->bytes_out += out;
    if (!in) {
        return;
    }
    if (arm != COMPRESS_CHOICE_NONE) {
        bool first = !m->measured;

        ewma(&m->compress_ns, (double)ns / in, first);
        ewma(&m->ratio, (double)out / in, first);
        m->measured = true;
    }
    if (arm == c->probing && c->pair_ratio > 0 && c->pair_ns > 0 && out) {
        bool first = m->rel_to != c->best;

        ewma(&m->rel_ratio, (double)out / in / c->pair_ratio, first);
        ewma(&m->rel_ns, (double)ns / in / c->pair_ns, first);
        m->rel_to = c->best;
        paired_ns = c->pair_ns;
    }
    c->pair_ratio = 0;

    if (arm == c->probing) {
        double cost = compress_choice_cost(c, arm, c->link_ns);
        int best = compress_choice_best(c, c->link_ns);
        double best_cost = compress_choice_cost(c, best, c->link_ns);
        /* what the probe cost more than the best, pairing included */
        double loss = best_cost > 0 ?
                      (cost + paired_ns - best_cost) / best_cost : 0;

        /*
         * Probe again after as many packets as make this probe's loss
         * against the best COMPRESS_CHOICE_PROBE_COST percent of their
         * time: an arm that loses little comes back soon, one that
         * loses much rarely
         */
        m->interval = MIN(MAX(loss * 100 / COMPRESS_CHOICE_PROBE_COST,
                              COMPRESS_CHOICE_PROBE_MIN),
                          COMPRESS_CHOICE_PROBE_MAX);
        m->next_probe = c->packet + m->interval;
        c->probing = -1;
    }
}

int compress_choice_paired(const CompressChoice *c)
{
    if (c->probing > COMPRESS_CHOICE_NONE && c->best > COMPRESS_CHOICE_NONE &&
        c->arm[c->best].measured) {
        return c->best;
    }
    return -1;
}

void compress_choice_paired_sample(CompressChoice *c, uint64_t in,
                                   uint64_t out, uint64_t ns)
{
    if (in && out) {
        c->pair_ratio = (double)out / in;
        c->pair_ns = (double)ns / in;
    }
}

static int compress_write_cmp(const void *a, const void *b)
{
    const CompressWrite *x = a, *y = b;

    return x->ns < y->ns ? -1 : x->ns > y->ns;
}

void compress_choice_written(CompressChoice *c, uint64_t bytes, uint64_t ns)
{
    CompressWrite sorted[COMPRESS_CHOICE_WRITES];
    unsigned n;
    uint64_t total = 0, below = 0;

    if (!bytes) {
        return;
    }
    c->write[c->writes++ % COMPRESS_CHOICE_WRITES] = (CompressWrite) {
        .ns = (double)ns / bytes,
        .bytes = bytes,
    };
    n = MIN(c->writes, COMPRESS_CHOICE_WRITES);
    memcpy(sorted, c->write, n * sizeof(sorted[0]));
    qsort(sorted, n, sizeof(sorted[0]), compress_write_cmp);
    for (unsigned i = 0; i < n; i++) {
        total += sorted[i].bytes;
    }
    /* the time per byte at which half of the bytes were written */
    for (unsigned i = 0; i < n; i++) {
        below += sorted[i].bytes;
        if (below * 2 >= total) {
            c->write_ns = sorted[i].ns;
            break;
        }
    }
    c->write_measured = true;
}
