/*
 * bench-compress-runs: how much a choice per run of pages inside a multifd
 * packet could gain over adaptive-compression's choice per packet.
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 *     bench-compress-runs [-r REPS] [--tap] [FILE...]
 *
 * Without a file it makes 16 MiB of pages as the benchmark guest's disk
 * files are made (scripts/guest/gen-files.py): 64 KiB of random bytes,
 * then 64 KiB of text-like lines, and so on.  The data is cut into
 * packets of 128 pages of 4 KiB, as multifd sends them.  For each zstd
 * level adaptive-compression can choose (1, 3, 6), three ways of
 * compressing a packet are timed on one thread:
 *
 *   packet      one zstd frame per packet: what multifd-zstd and
 *               adaptive-compression send (zstd itself stores a block of
 *               128 KiB that does not compress as a raw block)
 *   runs        each page classified by a sample of 256 of its bytes;
 *               each stretch of compressible pages one frame, each
 *               stretch of the others sent as they are, with a header of
 *               8 bytes per stretch: a choice per run, found cheaply
 *   runs-ideal  the same with each page classified by compressing it
 *               alone (that classification is not timed): about the
 *               most a choice per run can gain
 *
 * Each is run on the pages in file order (the generated files alternate
 * 64 KiB of text and of random bytes, so stretches of 16 pages) and on
 * the same pages shuffled one by one (a guest's page cache need not keep
 * a file's pages together).  The output is a Markdown table: the
 * thread's speed (the fastest of REPS runs: the others lost time to the
 * host's other threads), the bytes out per byte in, and the time two
 * channels would take per GiB of pages on a link of 128 and 256 MiB/s,
 * bounded by the slower of their CPU and the link.  That bound gives
 * each channel a CPU of its own, which a migration sharing its host
 * with the guest and the destination does not have.
 *
 * A second table times each level on text alone and on random bytes
 * alone, in packets of one kind each, and the last one what the best
 * choice for each packet would take, against every fixed choice, where
 * the two kinds come in runs of whole packets, half of each.
 *
 * Before it times anything it decodes what each way produced and
 * compares it with the pages, so that the bytes it counts are an
 * encoding that works.  With --tap it prints that check as TAP and no
 * table (make check runs it so on 1 MiB).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define PAGE 4096
#define PACKET_PAGES 128
#define PACKET (PAGE * PACKET_PAGES)
#define STRETCH_HEADER 8
#define CHANNELS 2
#define BLOCK (64 * 1024)

enum { WAY_PACKET, WAY_RUNS, WAY_IDEAL, WAYS };
static const char *const way_name[WAYS] = { "packet", "runs", "runs-ideal" };
static const int levels[] = { 1, 3, 6 };
#define LEVELS (int)(sizeof(levels) / sizeof(levels[0]))

static ZSTD_CCtx *cctx;
static ZSTD_DCtx *dctx;
static uint8_t *out;
static size_t out_size;
static uint8_t *back;           /* a packet decoded again */

static void die(const char *what)
{
    fprintf(stderr, "bench-compress-runs: %s\n", what);
    exit(1);
}

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* xorshift64*: the same data on every run */
static uint64_t rng_state = 20261207;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/*
 * gen-files.py's blocks: random bytes, then text-like lines, by turns;
 * with @only 0 random bytes alone, with 1 text alone
 */
static void make_pages(uint8_t *data, size_t len, int only)
{
    static const char *const words[] = {
        "page", "cache", "migration", "dirty", "shared", "disk", "precopy",
        "postcopy", "bandwidth", "downtime", "guest", "ram",
    };

    for (size_t b = 0; b * BLOCK < len; b++) {
        uint8_t *p = data + b * BLOCK;

        if (only < 0 ? b % 2 == 0 : only == 0) {
            for (size_t i = 0; i < BLOCK; i += 8) {
                uint64_t r = rng();

                memcpy(p + i, &r, 8);
            }
            continue;
        }
        for (size_t i = 0, line = 0; i < BLOCK; line++) {
            char buf[160];
            int n = snprintf(buf, sizeof(buf), "f%03d b%05zu l%04zu", 0,
                             b, line);

            for (int w = 0; w < 8; w++) {
                n += snprintf(buf + n, sizeof(buf) - n, " %s",
                              words[rng() % 12]);
            }
            buf[n++] = '\n';
            for (int k = 0; k < n && i < BLOCK; k++) {
                p[i++] = buf[k];
            }
        }
    }
}

/*
 * Random bytes show most of the 256 values in a sample of 256 (about
 * 162 distinct); text and code show far fewer.
 */
static bool page_looks_random(const uint8_t *p)
{
    uint64_t seen[4] = { 0 };

    for (int s = 0; s < 4; s++) {
        const uint8_t *q = p + s * (PAGE / 4);

        for (int i = 0; i < 64; i++) {
            seen[q[i] >> 6] |= 1ull << (q[i] & 63);
        }
    }
    return __builtin_popcountll(seen[0]) + __builtin_popcountll(seen[1]) +
           __builtin_popcountll(seen[2]) + __builtin_popcountll(seen[3]) > 128;
}

static size_t frame(uint8_t *dst, size_t cap, const uint8_t *in, size_t len,
                    int level)
{
    size_t n = ZSTD_compressCCtx(cctx, dst, cap, in, len, level);

    if (ZSTD_isError(n)) {
        die(ZSTD_getErrorName(n));
    }
    return n;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

/*
 * One packet into out[]: a frame, or stretches each with a header of
 * its pages (the top bit: sent as they are) and its bytes.  @cls: the
 * pages' classes for runs-ideal, or NULL.  Returns the bytes.
 */
static size_t encode(int way, const uint8_t *pkt, int level, const bool *cls)
{
    bool mine[PACKET_PAGES];
    size_t n = 0;

    if (way == WAY_PACKET) {
        return frame(out, out_size, pkt, PACKET, level);
    }
    if (!cls) {
        for (int i = 0; i < PACKET_PAGES; i++) {
            mine[i] = page_looks_random(pkt + i * PAGE);
        }
        cls = mine;
    }
    for (int i = 0; i < PACKET_PAGES;) {
        int e = i + 1;
        size_t len = 0, at = n + STRETCH_HEADER;

        while (e < PACKET_PAGES && cls[e] == cls[i]) {
            e++;
        }
        if (cls[i]) {
            len = (size_t)(e - i) * PAGE;
            memcpy(out + at, pkt + i * PAGE, len);
        } else {
            len = frame(out + at, out_size - at, pkt + i * PAGE,
                        (size_t)(e - i) * PAGE, level);
        }
        put32(out + n, (uint32_t)(e - i) | (cls[i] ? 0x80000000u : 0));
        put32(out + n + 4, (uint32_t)len);
        n = at + len;
        i = e;
    }
    return n;
}

/* out[0, n) decoded again must be @pkt */
static bool decodes_to(int way, size_t n, const uint8_t *pkt)
{
    size_t pos = 0, pages = 0;

    if (way == WAY_PACKET) {
        size_t d = ZSTD_decompressDCtx(dctx, back, PACKET, out, n);

        return !ZSTD_isError(d) && d == PACKET && !memcmp(back, pkt, PACKET);
    }
    while (pos < n) {
        uint32_t count = get32(out + pos) & 0x7fffffffu;
        bool raw = get32(out + pos) >> 31;
        size_t len = get32(out + pos + 4), want = (size_t)count * PAGE;

        pos += STRETCH_HEADER;
        if (pos + len > n || pages + count > PACKET_PAGES) {
            return false;
        }
        if (raw) {
            if (len != want) {
                return false;
            }
            memcpy(back + pages * PAGE, out + pos, len);
        } else {
            size_t d = ZSTD_decompressDCtx(dctx, back + pages * PAGE, want,
                                           out + pos, len);

            if (ZSTD_isError(d) || d != want) {
                return false;
            }
        }
        pos += len;
        pages += count;
    }
    return pages == PACKET_PAGES && !memcmp(back, pkt, PACKET);
}

/* Every way at every level decodes to the pages: how many do not */
static unsigned check(const uint8_t *data, size_t packets, const bool *ideal)
{
    unsigned bad = 0;

    for (int l = 0; l < LEVELS; l++) {
        for (int w = 0; w < WAYS; w++) {
            for (size_t p = 0; p < packets; p++) {
                const uint8_t *pkt = data + p * PACKET;
                const bool *cls = w == WAY_IDEAL ?
                    ideal + p * PACKET_PAGES : NULL;

                bad += !decodes_to(w, encode(w, pkt, levels[l], cls), pkt);
            }
        }
    }
    return bad;
}

/* seconds: the slower of @cpu_s and @bytes sent at @mib_s MiB/s */
static double bound(double cpu_s, double bytes, double mib_s)
{
    double link_s = bytes / (mib_s * 1024 * 1024);

    return cpu_s > link_s ? cpu_s : link_s;
}

/*
 * The fastest of @reps passes of @way at @level over @packets packets
 * of @data: its speed in bytes/s on one thread, and its bytes out per
 * byte in in @ratio.
 */
static double timed(int way, const uint8_t *data, size_t packets,
                    int level, const bool *ideal, int reps, double *ratio)
{
    double fastest = 0;
    size_t bytes = 0;

    for (int r = 0; r < reps; r++) {
        double t0 = now(), t;

        bytes = 0;
        for (size_t p = 0; p < packets; p++) {
            bytes += encode(way, data + p * PACKET, level,
                            way == WAY_IDEAL ?
                            ideal + p * PACKET_PAGES : NULL);
        }
        t = now() - t0;
        fastest = r && fastest < t ? fastest : t;
    }
    *ratio = (double)bytes / (packets * PACKET);
    return packets * PACKET / fastest;
}

static void measure(const char *layout, const uint8_t *data, size_t packets,
                    const bool *ideal, int reps)
{
    double gib = 1024.0 * 1024 * 1024;

    for (int l = 0; l < LEVELS; l++) {
        for (int w = 0; w < WAYS; w++) {
            double ratio;
            double speed = timed(w, data, packets, levels[l], ideal, reps,
                                 &ratio);
            double cpu = gib / (speed * CHANNELS);

            printf("| %s | %d | %s | %.0f | %.3f | %.2f | %.2f |\n",
                   layout, levels[l], way_name[w], speed / 1e6, ratio,
                   bound(cpu, gib * ratio, 128), bound(cpu, gib * ratio, 256));
        }
    }
}

/*
 * Text alone and random bytes alone, in packets of one kind each: each
 * level's speed and ratio on each, and what the best choice for each
 * packet would gain over every fixed choice where the two kinds come in
 * runs of whole packets, half of each.
 */
static void measure_kinds(int reps)
{
    static const char *const kind_name[2] = { "random", "text" };
    static const int link[2] = { 128, 256 };
    size_t packets = 16, in = packets * PACKET;
    double gib = 1024.0 * 1024 * 1024;
    double t[2][LEVELS + 1][2];     /* s/GiB: kind, none + levels, link */
    uint8_t *data = malloc(in);

    if (!data) {
        die("out of memory");
    }
    printf("\nEach kind alone, %zu packets of it:\n\n", packets);
    printf("| pages | level | MB/s, one thread | out/in "
           "| s/GiB, 2 channels, 128 MiB/s | s/GiB, 2 channels, 256 MiB/s |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < 2; k++) {
        make_pages(data, in, k);
        for (int j = 0; j < 2; j++) {
            t[k][0][j] = bound(0, gib, link[j]);
        }
        for (int l = 0; l < LEVELS; l++) {
            double ratio;
            double speed = timed(WAY_PACKET, data, packets, levels[l], NULL,
                                 reps, &ratio);

            for (int j = 0; j < 2; j++) {
                t[k][l + 1][j] = bound(gib / (speed * CHANNELS), gib * ratio,
                                       link[j]);
            }
            printf("| %s | %d | %.0f | %.3f | %.2f | %.2f |\n", kind_name[k],
                   levels[l], speed / 1e6, ratio, t[k][l + 1][0],
                   t[k][l + 1][1]);
        }
    }
    free(data);

    printf("\nHalf text, half random, in runs of whole packets: "
           "s/GiB, 2 channels\n\n");
    printf("| link | none | level 1 | level 3 | level 6 "
           "| the best for each packet |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (int j = 0; j < 2; j++) {
        double best[2] = { t[0][0][j], t[1][0][j] };

        printf("| %d MiB/s |", link[j]);
        for (int l = 0; l <= LEVELS; l++) {
            printf(" %.2f |", (t[0][l][j] + t[1][l][j]) / 2);
            for (int k = 0; k < 2; k++) {
                best[k] = best[k] < t[k][l][j] ? best[k] : t[k][l][j];
            }
        }
        printf(" %.2f |\n", (best[0] + best[1]) / 2);
    }
}

static uint8_t *read_files(char **names, int count, size_t *len)
{
    size_t cap = 0;
    uint8_t *data = NULL;

    *len = 0;
    for (int i = 0; i < count; i++) {
        FILE *f = fopen(names[i], "rb");
        size_t n;

        if (!f) {
            fprintf(stderr, "bench-compress-runs: %s: %s\n", names[i],
                    strerror(errno));
            exit(1);
        }
        do {
            if (*len + PACKET > cap) {
                cap = cap ? cap * 2 : 16 * PACKET;
                data = realloc(data, cap);
                if (!data) {
                    die("out of memory");
                }
            }
            n = fread(data + *len, 1, PACKET, f);
            *len += n;
        } while (n == PACKET);
        fclose(f);
    }
    return data;
}

int main(int argc, char **argv)
{
    int reps = 5, i = 1;
    bool tap = false;
    size_t len, packets, pages;
    uint8_t *data, *shuffled;
    bool *ideal, *ideal_shuffled;
    size_t *order;
    unsigned misclassified = 0, bad;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--tap")) {
            tap = true;
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            break;
        }
    }
    if (reps < 1 || (i < argc && argv[i][0] == '-')) {
        fprintf(stderr, "usage: bench-compress-runs [-r REPS] [--tap] "
                "[FILE...]\n");
        return 2;
    }
    if (i < argc) {
        data = read_files(argv + i, argc - i, &len);
    } else {
        len = (tap ? 1 : 16) * 1024 * 1024;
        data = malloc(len);
        if (!data) {
            die("out of memory");
        }
        make_pages(data, len, -1);
    }
    packets = len / PACKET;
    pages = packets * PACKET_PAGES;
    if (!packets) {
        die("less than one packet of data");
    }

    cctx = ZSTD_createCCtx();
    dctx = ZSTD_createDCtx();
    out_size = ZSTD_compressBound(PACKET) + PACKET_PAGES * STRETCH_HEADER;
    out = malloc(out_size);
    back = malloc(PACKET);
    ideal = malloc(pages * sizeof(*ideal));
    ideal_shuffled = malloc(pages * sizeof(*ideal));
    shuffled = malloc(packets * PACKET);
    order = malloc(pages * sizeof(*order));
    if (!cctx || !dctx || !out || !back || !ideal || !ideal_shuffled ||
        !shuffled || !order) {
        die("out of memory");
    }

    /* a page is random for the ideal choice when level 1 cannot shrink it */
    for (size_t k = 0; k < pages; k++) {
        ideal[k] = frame(out, out_size, data + k * PAGE, PAGE, 1) >= PAGE;
        misclassified += ideal[k] != page_looks_random(data + k * PAGE);
    }

    /* the same pages in an order of their own (the same on every run) */
    for (size_t k = 0; k < pages; k++) {
        order[k] = k;
    }
    for (size_t k = pages - 1; k > 0; k--) {
        size_t j = rng() % (k + 1), t = order[k];

        order[k] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < pages; k++) {
        memcpy(shuffled + k * PAGE, data + order[k] * PAGE, PAGE);
        ideal_shuffled[k] = ideal[order[k]];
    }

    bad = check(data, packets, ideal) +
          check(shuffled, packets, ideal_shuffled);
    if (tap) {
        printf("1..2\n%s 1 - every way at every level decodes to its pages"
               " (%u packets did not)\n", bad ? "not ok" : "ok", bad);
        printf("%s 2 - the sample classifies the pages as level 1 does"
               " (%u of %zu pages differ)\n",
               misclassified * 100 > pages ? "not ok" : "ok",
               misclassified, pages);
        return bad || misclassified * 100 > pages;
    }
    if (bad) {
        fprintf(stderr, "bench-compress-runs: %u packets do not decode to "
                "their pages\n", bad);
        return 1;
    }

    printf("%zu pages (%zu packets of %d pages), zstd %s, fastest of %d; "
           "the sample classifies %zu of them as level 1 does\n\n", pages,
           packets, PACKET_PAGES, ZSTD_versionString(), reps,
           pages - misclassified);
    printf("| pages | level | way | MB/s, one thread | out/in "
           "| s/GiB, 2 channels, 128 MiB/s | s/GiB, 2 channels, 256 MiB/s |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    measure("file order", data, packets, ideal, reps);
    measure("shuffled", shuffled, packets, ideal_shuffled, reps);
    printf("| either | - | none | - | 1.000 | %.2f | %.2f |\n",
           1024.0 / 128, 1024.0 / 256);
    measure_kinds(reps);
    return 0;
}
