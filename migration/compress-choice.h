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
 *   time(a) = (cpu(a)^4 + link(a)^4)^(1/4)
 *
 * where compress(a) is the channel thread's measured compression time
 * per input byte with arm a (0 without compression), ratio(a) the
 * measured output bytes per input byte (1 without compression), write
 * the channel's time per byte written to its socket, and link the time
 * per byte that the migration's bandwidth limit gives this channel (0
 * when the limit is off).  A channel compresses and then writes, so
 * those two add up; the limit is applied to compressed bytes by the
 * migration thread, in parallel, so it is the other bound.  On a fast
 * link with a busy CPU "none" wins; on a slow link the level whose
 * ratio and speed keep the link full wins; on incompressible data
 * "none" wins because the ratio is 1 at a CPU cost.
 *
 * time(a) is the larger bound, and a part of the smaller one: the two
 * do not overlap fully.  The limiter meters bytes per window of
 * BUFFER_DELAY ms and what a window leaves unused is lost, while a
 * channel's compression time varies from packet to packet with the
 * data and with the host's other threads, so a level whose mean time is
 * just under the link's is behind it in part of the windows.  Where one
 * bound is well under the other it hardly counts (at half of it, 1.5%);
 * where they are equal, time(a) is 1.19 times either.  So a slower
 * level that saves a few percent of the bytes does not replace a faster
 * one with CPU time to spare.
 *
 * write is the median, weighted by bytes, of the channel's last
 * COMPRESS_CHOICE_WRITES writes.  Weighted by bytes, because a small
 * packet that fits in the socket's buffer returns at once whatever the
 * peer's pace.  A median, because the two things that slow a write look
 * different: a slow link or peer slows every write, while a host whose
 * CPUs are all busy stalls some writes for a scheduler slice (the
 * receiving thread waits for a CPU) and lets the others through at
 * memory speed.  Compressing helps against the first and makes the
 * second worse (it takes more CPU, here and at the destination), so the
 * stalls must not count as link time.  A mean of them did: one stall of
 * 10 ms among 512 KiB writes of 0.1 ms weighs as much as a hundred of
 * them, and the channel compressed.
 *
 * Compression times and ratios are exponential moving averages.  An arm
 * is tried once (a probe) before it is compared.  Data changes, so every
 * arm that is not the current best is probed again, once the packets
 * since have cost the best COMPRESS_CHOICE_PROBE_COST percent more than
 * the probe did: an arm 50% slower than the best comes back after 50
 * packets, one ten times as slow after 900, one close to the best after
 * COMPRESS_CHOICE_PROBE_MIN (up to COMPRESS_CHOICE_PROBE_MAX).  So the
 * probes cost about COMPRESS_CHOICE_PROBE_COST percent each arm, and
 * come soon where they cost little: on a slow link, where level 1 on
 * random data loses less than half against no compression, it is probed
 * often enough to notice text coming back.  A probe of a level while
 * another level is the best is paired (compress_choice_paired()): the
 * channel compresses the same pages with the best level too, and the
 * probed level is estimated by its ratio and time relative to the best's
 * on those pages, applied to the best's averages.  Pages differ from
 * packet to packet, and a probe on pages that compress well made its
 * level look better than it is against the best's average over other
 * pages.  The best changes only for an arm predicted at least
 * COMPRESS_CHOICE_HYSTERESIS percent faster, so that measurements
 * disturbed by the other threads of a busy host do not flip it back and
 * forth.  A level is tried, or probed, only while the level below it is
 * the best or within COMPRESS_CHOICE_NEAR percent of it: a higher level
 * compresses better but more slowly, so it wins only where the link
 * bounds the time, and there the level below is near the best too.
 * Where level 1 loses by far (a busy CPU, random data), the slower
 * levels, whose probes cost the most, are not tried at all.
 *
 * The code does not depend on the rest of QEMU, so that it can be unit
 * tested on its own; one CompressChoice belongs to one channel thread.
 */

#ifndef MIGRATION_COMPRESS_CHOICE_H
#define MIGRATION_COMPRESS_CHOICE_H

#define COMPRESS_CHOICE_ARMS 4
#define COMPRESS_CHOICE_NONE 0
/* packets between two probes of an arm, at least and at most */
#define COMPRESS_CHOICE_PROBE_MIN 16
#define COMPRESS_CHOICE_PROBE_MAX 4096
/* an arm's probes cost the best about this many percent */
#define COMPRESS_CHOICE_PROBE_COST 1
/* an arm this many percent as fast as the best is near it */
#define COMPRESS_CHOICE_NEAR 80
/* weight of a new measurement in the moving averages, in percent */
#define COMPRESS_CHOICE_ALPHA 30
/* another arm becomes the best when it is this many percent faster */
#define COMPRESS_CHOICE_HYSTERESIS 10
/* writes in the median of the time per byte written */
#define COMPRESS_CHOICE_WRITES 16

/* the zstd level of each arm; 0 for COMPRESS_CHOICE_NONE */
extern const int compress_choice_level[COMPRESS_CHOICE_ARMS];

typedef struct CompressArm {
    double compress_ns;     /* per input byte; 0 for NONE */
    double ratio;           /* output bytes per input byte */
    bool measured;
    /*
     * Averages of this arm's ratio and time per byte over the best's on
     * the same pages, from its paired probes, while rel_to (-1: none)
     * is the best
     */
    double rel_ratio;
    double rel_ns;
    int rel_to;
    uint64_t next_probe;    /* packet number of the next probe */
    uint32_t interval;      /* current probe interval, in packets */
    /* totals, for the counters */
    uint64_t packets;
    uint64_t bytes_in;
    uint64_t bytes_out;
} CompressArm;

typedef struct CompressWrite {
    double ns;              /* per byte */
    uint64_t bytes;
} CompressWrite;

typedef struct CompressChoice {
    CompressArm arm[COMPRESS_CHOICE_ARMS];
    double write_ns;        /* per byte written to the socket */
    /* the last writes, a ring; write_ns is their weighted median */
    CompressWrite write[COMPRESS_CHOICE_WRITES];
    unsigned writes;        /* writes seen so far */
    bool write_measured;
    uint64_t packet;        /* packets chosen so far */
    uint64_t probes;        /* of which probes */
    uint64_t switches;      /* best arm changes */
    int best;               /* current best arm */
    int probing;            /* arm of the probe in flight, or -1 */
    double link_ns;         /* as given to the last pick */
    /* the best arm on the probe's pages (0: not measured) */
    double pair_ratio;
    double pair_ns;
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
 * compress_choice_paired: the arm to compress a probe's pages with first
 * @c: the channel's state
 *
 * Called after compress_choice_pick() returned a probe.  Compressing the
 * same pages with the best arm as well, and discarding that, compares
 * the two on the same data: a probe that happens on more (or less)
 * compressible pages than the best's recent ones does not make its arm
 * look better (or worse) than it is.
 *
 * Returns: the best arm, or -1 when there is nothing to compare (the
 * probe or the best is COMPRESS_CHOICE_NONE).
 */
int compress_choice_paired(const CompressChoice *c);

/**
 * compress_choice_paired_sample: the best arm on the probe's pages
 * @c: the channel's state
 * @in: input bytes
 * @out: output bytes that @in became
 * @ns: time the compression took
 *
 * Call before compress_choice_compressed() for the probe itself.
 */
void compress_choice_paired_sample(CompressChoice *c, uint64_t in,
                                   uint64_t out, uint64_t ns);

/**
 * compress_choice_written: bytes were written to the channel's socket
 * @c: the channel's state
 * @bytes: bytes written
 * @ns: time the write took
 *
 * The channel's time per byte written becomes the median, weighted by
 * bytes, of its last COMPRESS_CHOICE_WRITES writes.
 */
void compress_choice_written(CompressChoice *c, uint64_t bytes, uint64_t ns);

#endif
