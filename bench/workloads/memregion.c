/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * memregion: hold a named memory region with a seeded pattern, for
 * verifying that guest memory arrived intact after a migration.
 *
 *     memregion -n NAME -m MiB [-s SEED] [-t RUN_MiB] -d DIR
 *
 * fills -m MiB of anonymous memory with a pattern derived from SEED,
 * bytes that look random (with -t, RUN_MiB of them, then RUN_MiB of
 * words of text, and so on, for compression to tell apart),
 * writes its pid to DIR/NAME.pid and waits.  On SIGUSR1 it checksums the
 * memory it holds and writes
 *
 *     region NAME mib=M sum=<hex> expect=<hex> OK|FAIL
 *
 * to DIR/NAME.sum (written aside, then renamed).  "expect" is computed
 * from the seed alone, never from memory, so a harness can compare the
 * source's answer before migration, the destination's after, and both
 * with what the pattern must be.  SIGTERM ends it.
 *
 * Copyright (c) 2025 The migration-transport project authors
 */

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "workload.h"

/* -t: words in a run of random bytes, then as many of text; 0: no text */
static uint64_t text_run_words;

static inline uint64_t pattern(uint64_t seed, uint64_t i)
{
    /* One expensive mix per 4 KiB page, a cheap one per word. */
    uint64_t w = splitmix64(seed ^ (i >> 9)) ^ (i * 0x9e3779b97f4a7c15ULL);

    if (text_run_words && (i / text_run_words) % 2) {
        memcpy(&w, workload_text_words[splitmix64(w) & 31], 8);
    }
    return w;
}

int main(int argc, char **argv)
{
    const char *name = NULL, *dir = NULL;
    uint64_t mib = 64, seed = 1, nwords, i, expect, sum;
    char path[4096], text[512];
    sigset_t block, old;
    uint64_t *mem;
    int opt;

    while ((opt = getopt(argc, argv, "n:m:s:t:d:")) != -1) {
        switch (opt) {
        case 'n':
            name = optarg;
            break;
        case 'm':
            mib = parse_u64(optarg);
            break;
        case 's':
            seed = parse_u64(optarg);
            break;
        case 't':
            text_run_words = parse_u64(optarg) * 1024 * 1024 / 8;
            break;
        case 'd':
            dir = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (!name || !dir || !mib) {
        goto usage;
    }

    workload_signals();
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);

    nwords = mib * 1024 * 1024 / 8;
    mem = mmap(NULL, nwords * 8, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        perror("memregion: mmap");
        return 1;
    }
    expect = 0xcbf29ce484222325ULL;
    for (i = 0; i < nwords; i++) {
        mem[i] = pattern(seed, i);
        expect = mix(expect, pattern(seed, i));
    }

    snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
    snprintf(text, sizeof(text), "%d\n", (int)getpid());
    write_atomic(path, text, strlen(text));

    sigprocmask(SIG_BLOCK, &block, &old);
    while (!want_exit) {
        if (want_report) {
            want_report = 0;
            sum = 0xcbf29ce484222325ULL;
            for (i = 0; i < nwords; i++) {
                sum = mix(sum, mem[i]);
            }
            snprintf(text, sizeof(text),
                     "region %s mib=%" PRIu64 " sum=%016" PRIx64
                     " expect=%016" PRIx64 " %s\n", name, mib, sum, expect,
                     sum == expect ? "OK" : "FAIL");
            snprintf(path, sizeof(path), "%s/%s.sum", dir, name);
            write_atomic(path, text, strlen(text));
            continue;
        }
        sigsuspend(&old);
    }
    return 0;

usage:
    fprintf(stderr, "usage: memregion -n NAME -m MiB [-s SEED] [-t RUN_MiB] "
            "-d DIR\n");
    return 2;
}
