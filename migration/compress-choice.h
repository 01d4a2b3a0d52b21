/*
 * Per-channel choice of compression for multifd packets
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * With adaptive-compression each multifd channel picks, per packet, one
 * of COMPRESS_CHOICE_ARMS ways to send it: no compression, or zstd at
 * one of a few levels.  The goal is the most guest pages delivered per
 * second, so the choice weighs, per input byte:
 *
 *   cpu(a)  = compress(a) + ratio(a) * write
 *   link(a) = ratio(a) * link
 *   time(a) = max(cpu(a), link(a))
 *
 * where compress(a) is the channel thread's measured compression time
 * per input byte with arm a (0 without compression), ratio(a) the
 * measured output bytes per input byte (1 without compression), write
 * the channel's measured time per byte written to its socket (weighted
 * by bytes: a small packet that fits in the socket's buffer returns at
 * once whatever the peer's pace), and link
 * the time per byte that the migration's bandwidth limit gives this
 * channel (0 when the limit is off).  A channel compresses and then
 * writes, so those two add up; the limit is applied to compressed
 * bytes by the migration thread, in parallel, so it is the other bound.
 * On a fast link with a busy CPU "none" wins; on a slow link the level
 * whose ratio and speed keep the link full wins; on incompressible
 * data "none" wins because the ratio is 1 at a CPU cost.
 *
 * The measurements are exponential moving averages.  An arm never
 * measured is tried first (one packet each).  Data changes, so every
 * arm that is not the current best is probed again after an interval
 * that starts at COMPRESS_CHOICE_PROBE_MIN packets, doubles each time
 * the probe confirms that the arm loses (up to COMPRESS_CHOICE_PROBE_MAX,
 * so that a slow level costs little on a link where it never wins), and
 * returns to the minimum when the arm comes within COMPRESS_CHOICE_NEAR
 * percent of the best.  The best changes only for an arm predicted at
 * least COMPRESS_CHOICE_HYSTERESIS percent faster, so that measurements
 * disturbed by the other threads of a busy host do not flip it back and
 * forth.
 *
 * The code does not depend on the rest of QEMU, so that it can be unit
 * tested on its own; one CompressChoice belongs to one channel thread.
 */

#ifndef MIGRATION_COMPRESS_CHOICE_H
#define MIGRATION_COMPRESS_CHOICE_H

#define COMPRESS_CHOICE_ARMS 4
#define COMPRESS_CHOICE_NONE 0
#define COMPRESS_CHOICE_PROBE_MIN 16
#define COMPRESS_CHOICE_PROBE_MAX 4096
#define COMPRESS_CHOICE_NEAR 80
/* weight of a new measurement in the moving averages, in percent */
#define COMPRESS_CHOICE_ALPHA 30
/* another arm becomes the best when it is this many percent faster */
#define COMPRESS_CHOICE_HYSTERESIS 10

/* the zstd level of each arm; 0 for COMPRESS_CHOICE_NONE */
extern const int compress_choice_level[COMPRESS_CHOICE_ARMS];

typedef struct CompressArm {
    double compress_ns;     /* per input byte; 0 for NONE */
    double ratio;           /* output bytes per input byte */
    bool measured;
    uint64_t next_probe;    /* packet number of the next probe */
    uint32_t interval;      /* current probe interval, in packets */
    /* totals, for the counters */
    uint64_t packets;
    uint64_t bytes_in;
    uint64_t bytes_out;
} CompressArm;

typedef struct CompressChoice {
    CompressArm arm[COMPRESS_CHOICE_ARMS];
    double write_ns;        /* per byte written to the socket */
    double write_ns_sum;    /* decaying sums of write time and bytes */
    double write_bytes_sum;
    bool write_measured;
    uint64_t packet;        /* packets chosen so far */
    uint64_t probes;        /* of which probes */
    uint64_t switches;      /* best arm changes */
    int best;               /* current best arm */
    int probing;            /* arm of the probe in flight, or -1 */
    double link_ns;         /* as given to the last pick */
} CompressChoice;

/**
 * compress_choice_init: start a channel's choice
 * @c: the channel's state
 *
 * No arm is measured yet but COMPRESS_CHOICE_NONE, which has nothing to
 * learn (no CPU, ratio 1) and is the best to begin with.
 */
void compress_choice_init(CompressChoice *c);

/**
 * compress_choice_cost: predicted time of an arm
 * @c: the channel's state
 * @arm: the arm
 * @link_ns: time per output byte the limit gives this channel (0: no
 *   limit)
 *
 * Returns: the predicted time per input byte of @arm, in ns.
 */
double compress_choice_cost(const CompressChoice *c, int arm, double link_ns);

/**
 * compress_choice_pick: choose the arm of the next packet
 * @c: the channel's state
 * @link_ns: time per output byte the limit gives this channel (0: no
 *   limit)
 * @probe: set to whether the packet is a probe (an arm other than the
 *   predicted best, sent to measure it)
 *
 * Returns: the arm of the next packet.
 */
int compress_choice_pick(CompressChoice *c, double link_ns, bool *probe);

/**
 * compress_choice_compressed: a packet was compressed
 * @c: the channel's state
 * @arm: the arm the packet was sent with
 * @in: input bytes
 * @out: output bytes that @in became
 * @ns: CPU time the compression took
 */
void compress_choice_compressed(CompressChoice *c, int arm, uint64_t in,
                                uint64_t out, uint64_t ns);

/**
 * compress_choice_written: bytes were written to the channel's socket
 * @c: the channel's state
 * @bytes: bytes written
 * @ns: time the write took
 *
 * The time per byte is a moving average weighted by bytes (decaying
 * sums of both).
 */
void compress_choice_written(CompressChoice *c, uint64_t bytes, uint64_t ns);

#endif
