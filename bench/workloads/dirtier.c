/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * dirtier: a guest workload that dirties a working set at a given rate.
 *
 * It keeps an anonymous working set of -m MiB and rewrites whole pages of
 * it, sequentially or at random, at -r MB/s (0: as fast as it can).  Every
 * second it appends one line to the log file (-l):
 *
 *     <CLOCK_BOOTTIME seconds> <MB/s written in that second> <pages total>
 *
 * so a harness can read back the guest's own throughput before, during
 * and after a migration.  Each page carries its index, a generation number
 * and a pattern derived from both; a separate table remembers every page's
 * generation.  With -t the pattern is words of text (a page of them
 * compresses to about a sixth with zstd), not bytes that look random.
 * On SIGUSR1 the program checks every page against the table
 * and writes "dirtier OK ..." or "dirtier FAIL ..." to the verify file
 * (-v), atomically (written aside, then renamed).  SIGTERM ends it.
 *
 * Copyright (c) 2025 The migration-transport project authors
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#define PAGE_SIZE 4096
#define PAGE_WORDS (PAGE_SIZE / 8)
#define TICK_NS 10000000LL

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* -t: words of 8 characters instead of random-looking ones */
static int text_mode;

static uint64_t page_word(uint64_t base, int j)
{
    uint64_t w;

    if (!text_mode) {
        return base ^ ((uint64_t)j * 0x9e3779b97f4a7c15ULL);
    }
    memcpy(&w, workload_text_words[splitmix64(base + j) & 31], 8);
    return w;
}

static void write_page(uint64_t *p, uint64_t idx, uint64_t gen, uint64_t seed)
{
    uint64_t base = splitmix64(seed ^ (idx << 20) ^ gen);
    int j;

    p[0] = idx;
    p[1] = gen;
    for (j = 2; j < PAGE_WORDS; j++) {
        p[j] = page_word(base, j);
    }
}

static int check_page(const uint64_t *p, uint64_t idx, uint64_t gen,
                      uint64_t seed)
{
    uint64_t base = splitmix64(seed ^ (idx << 20) ^ gen);
    int j;

    if (p[0] != idx || p[1] != gen) {
        return 0;
    }
    for (j = 2; j < PAGE_WORDS; j++) {
        if (p[j] != page_word(base, j)) {
            return 0;
        }
    }
    return 1;
}

static void verify(const char *path, uint64_t *ws, const uint32_t *gens,
                   uint64_t npages, uint64_t seed)
{
    char line[256];
    uint64_t i, bad = 0, first_bad = 0;
    int len;

    for (i = 0; i < npages; i++) {
        if (!check_page(ws + i * PAGE_WORDS, i, gens[i], seed)) {
            if (!bad) {
                first_bad = i;
            }
            bad++;
        }
    }
    len = snprintf(line, sizeof(line),
                   "dirtier %s pages=%" PRIu64 " bad=%" PRIu64
                   " first_bad=%" PRIu64 "\n",
                   bad ? "FAIL" : "OK", npages, bad, first_bad);
    write_atomic(path, line, len);
}

static void usage(void)
{
    fprintf(stderr, "usage: dirtier -m MiB [-r MB/s] [-p seq|rand] [-t] "
            "[-s seed] -l LOG -v VERIFYFILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t mib = 64, seed = 1, npages, cur = 0, rng, total = 0;
    uint64_t sec_pages = 0;
    double rate = 0, budget = 0, per_tick;
    const char *log_path = NULL, *verify_path = NULL;
    int random_order = 0, opt, log_fd;
    int64_t next_tick, next_report, sec_start;
    uint64_t *ws;
    uint32_t *gens;
    uint64_t i;

    while ((opt = getopt(argc, argv, "m:r:p:ts:l:v:")) != -1) {
        switch (opt) {
        case 'm':
            mib = parse_u64(optarg);
            break;
        case 'r':
            rate = strtod(optarg, NULL);
            break;
        case 'p':
            if (!strcmp(optarg, "rand")) {
                random_order = 1;
            } else if (strcmp(optarg, "seq")) {
                usage();
            }
            break;
        case 't':
            text_mode = 1;
            break;
        case 's':
            seed = parse_u64(optarg);
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'v':
            verify_path = optarg;
            break;
        default:
            usage();
        }
    }
    if (!log_path || !verify_path || !mib) {
        usage();
    }

    workload_signals();

    npages = mib * 1024 * 1024 / PAGE_SIZE;
    ws = mmap(NULL, npages * PAGE_SIZE, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    gens = calloc(npages, sizeof(*gens));
    if (ws == MAP_FAILED || !gens) {
        perror("dirtier: allocating the working set");
        return 1;
    }
    for (i = 0; i < npages; i++) {
        gens[i] = 1;
        write_page(ws + i * PAGE_WORDS, i, 1, seed);
    }
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd < 0) {
        perror("dirtier: log file");
        return 1;
    }

    rng = splitmix64(seed) | 1;
    per_tick = rate * 1e6 / PAGE_SIZE * TICK_NS / 1e9;
    sec_start = now_ns();
    next_tick = sec_start + TICK_NS;
    next_report = sec_start + 1000000000LL;

    while (!want_exit) {
        int64_t t;
        uint64_t n;

        if (want_report) {
            want_report = 0;
            verify(verify_path, ws, gens, npages, seed);
        }
        if (rate > 0) {
            budget += per_tick;
            /* Do not catch up in a burst after a stall (e.g. downtime). */
            if (budget > per_tick * 10) {
                budget = per_tick * 10;
            }
            n = (uint64_t)budget;
            budget -= n;
        } else {
            n = 256;
        }
        for (i = 0; i < n; i++) {
            uint64_t idx;

            if (random_order) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                idx = rng % npages;
            } else {
                idx = cur++;
                if (cur == npages) {
                    cur = 0;
                }
            }
            gens[idx]++;
            write_page(ws + idx * PAGE_WORDS, idx, gens[idx], seed);
        }
        total += n;
        sec_pages += n;

        t = now_ns();
        if (t >= next_report) {
            char line[128];
            double secs = (t - sec_start) / 1e9;
            int len = snprintf(line, sizeof(line), "%.3f %.2f %" PRIu64 "\n",
                               t / 1e9, sec_pages * (double)PAGE_SIZE /
                               1e6 / secs, total);

            if (write(log_fd, line, len) != len) {
                perror("dirtier: log write");
            }
            sec_pages = 0;
            sec_start = t;
            next_report = t + 1000000000LL;
        }
        if (rate > 0) {
            struct timespec ts;

            if (next_tick < t - 10 * TICK_NS) {
                next_tick = t;
            }
            next_tick += TICK_NS;
            ts.tv_sec = next_tick / 1000000000LL;
            ts.tv_nsec = next_tick % 1000000000LL;
            while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts,
                                   NULL) == EINTR && !want_exit &&
                   !want_report) {
                /* a signal: go round to handle it */
            }
        }
    }
    return 0;
}
