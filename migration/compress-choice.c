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
#include "compress-choice.h"

const int compress_choice_level[COMPRESS_CHOICE_ARMS] = { 0, 1, 3, 6 };

void compress_choice_init(CompressChoice *c)
{
    memset(c, 0, sizeof(*c));
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        c->arm[a].interval = COMPRESS_CHOICE_PROBE_MIN;
        c->arm[a].next_probe = COMPRESS_CHOICE_PROBE_MIN;
    }
    /* no compression costs no CPU and keeps every byte: nothing to learn */
    c->arm[COMPRESS_CHOICE_NONE].ratio = 1.0;
    c->arm[COMPRESS_CHOICE_NONE].measured = true;
    c->best = COMPRESS_CHOICE_NONE;
    c->probing = -1;
}

double compress_choice_cost(const CompressChoice *c, int arm, double link_ns)
{
    const CompressArm *m = &c->arm[arm];
    double cpu = m->compress_ns + m->ratio * c->write_ns;
    double link = m->ratio * link_ns;

    return cpu > link ? cpu : link;
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

int compress_choice_pick(CompressChoice *c, double link_ns, bool *probe)
{
    uint64_t n = c->packet++;
    int best, due = -1;

    c->link_ns = link_ns;
    c->probing = -1;
    *probe = false;

    /* an arm never measured is tried once before anything is compared */
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        if (!c->arm[a].measured) {
            c->probing = a;
            c->probes++;
            *probe = true;
            return a;
        }
    }

    best = compress_choice_best(c, link_ns);
    if (best != c->best &&
        compress_choice_cost(c, best, link_ns) * 100 >
        compress_choice_cost(c, c->best, link_ns) *
        (100 - COMPRESS_CHOICE_HYSTERESIS)) {
        best = c->best;         /* not faster enough to switch */
    }
    if (best != c->best) {
        c->switches++;
        c->best = best;
    }

    /* the arm whose probe is most overdue, if any */
    for (int a = 0; a < COMPRESS_CHOICE_ARMS; a++) {
        if (a != best && c->arm[a].next_probe <= n &&
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

    if (arm == c->probing) {
        double cost = compress_choice_cost(c, arm, c->link_ns);
        int best = compress_choice_best(c, c->link_ns);
        double best_cost = compress_choice_cost(c, best, c->link_ns);

        /* close to the best (or the best now): keep an eye on it */
        if (best == arm ||
            cost * COMPRESS_CHOICE_NEAR <= best_cost * 100) {
            m->interval = COMPRESS_CHOICE_PROBE_MIN;
        } else if (m->interval < COMPRESS_CHOICE_PROBE_MAX) {
            m->interval *= 2;
        }
        m->next_probe = c->packet + m->interval;
        c->probing = -1;
    }
}

void compress_choice_written(CompressChoice *c, uint64_t bytes, uint64_t ns)
{
    double keep = 1.0 - COMPRESS_CHOICE_ALPHA / 100.0;

    if (!bytes) {
        return;
    }
    /*
     * Weighted by bytes: a small packet that fits in the socket's buffer
     * returns at once whatever the peer's pace, a large one waits for it
     */
    c->write_ns_sum = c->write_ns_sum * keep + ns;
    c->write_bytes_sum = c->write_bytes_sum * keep + bytes;
    c->write_ns = c->write_ns_sum / c->write_bytes_sum;
    c->write_measured = true;
}
