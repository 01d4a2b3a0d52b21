/*
 * Helpers shared by the benchmark guest's workload programs
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SIGUSR1 asks for a report (checksum, verification); TERM/INT to stop. */
static volatile sig_atomic_t want_report;
static volatile sig_atomic_t want_exit;

static void on_usr1(int sig)
{
    want_report = 1;
}

static void on_term(int sig)
{
    want_exit = 1;
}

static inline void workload_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static inline uint64_t parse_u64(const char *s)
{
    uint64_t v = 0;

    if (sscanf(s, "%" SCNi64, (int64_t *)&v) != 1) {
        fprintf(stderr, "not a number: %s\n", s);
        exit(2);
    }
    return v;
}

static inline uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/*
 * Words of 8 characters, for pages of text: a page of them, picked at
 * random, compresses to about a sixth with zstd.
 */
static const char workload_text_words[32][9] = {
    "migrate ", "page    ", "cache   ", "dirty   ", "shared  ", "disk    ",
    "precopy ", "postcopy", "channel ", "guest   ", "memory  ", "zstd    ",
    "the     ", "of      ", "and     ", "a       ", "to      ", "in      ",
    "is      ", "that    ", "with    ", "for     ", "bitmap  ", "source  ",
    "target  ", "packet  ", "stream  ", "link    ", "qemu    ", "kernel  ",
    "file\n   ", "block\n  ",
};

/* One step of the running checksum of a region or a file. */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/*
 * Write @len bytes of @text to @path as a whole: to a temporary file
 * first, then renamed, so a reader never sees half a result.
 */
static inline void write_atomic(const char *path, const char *text,
                                size_t len)
{
    char tmp[4096];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        perror(path);
        exit(1);
    }
    close(fd);
    rename(tmp, path);
}

#endif
