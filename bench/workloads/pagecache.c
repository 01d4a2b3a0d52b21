/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * pagecache: read files (filling the guest's page cache) and checksum them.
 *
 *     pagecache [-M MiB] [-w MANIFEST | -c MANIFEST] FILE...
 *
 * reads the files in order, at most -M MiB in all, and prints the read
 * throughput.  -w writes a manifest ("<hash> <bytes> <path>" per file);
 * the guest image builder runs this on the host over the generated files.
 * -c checks every file read against such a manifest and ends with
 *
 *     pagecache OK|FAIL files=N bytes=B bad=K mbps=R
 *
 * Read after a migration, the files come from the page cache the
 * migration carried over, so a matching checksum proves those pages
 * arrived intact.  Exit status is 1 when a check fails.
 *
 * Copyright (c) 2025 The migration-transport project authors
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#define BUF_SIZE (1024 * 1024)

struct entry {
    char *path;
    uint64_t hash;
    uint64_t size;
};

static int hash_file(const char *path, uint64_t limit, uint64_t *hash,
                     uint64_t *size)
{
    static uint64_t buf[BUF_SIZE / 8];
    uint64_t h = 0xcbf29ce484222325ULL, total = 0;
    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        perror(path);
        return -1;
    }
    while (total < limit) {
        size_t want = BUF_SIZE, n, i;
        ssize_t got;

        if (limit - total < want) {
            want = limit - total;
        }
        got = read(fd, buf, want);
        if (got < 0) {
            perror(path);
            close(fd);
            return -1;
        }
        if (got == 0) {
            break;
        }
        n = got;
        /* Zero-pad a short tail to whole words. */
        memset((char *)buf + n, 0, (8 - n % 8) % 8);
        for (i = 0; i < (n + 7) / 8; i++) {
            h = mix(h, buf[i]);
        }
        total += n;
    }
    close(fd);
    *hash = mix(h, total);
    *size = total;
    return 0;
}

static struct entry *load_manifest(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    struct entry *e = NULL;
    char name[4096];
    uint64_t h, s;
    int n = 0;

    if (!f) {
        perror(path);
        exit(2);
    }
    while (fscanf(f, "%" SCNx64 " %" SCNu64 " %4095s", &h, &s, name) == 3) {
        e = realloc(e, (n + 1) * sizeof(*e));
        e[n].path = strdup(name);
        e[n].hash = h;
        e[n].size = s;
        n++;
    }
    fclose(f);
    *count = n;
    return e;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');

    return s ? s + 1 : p;
}

int main(int argc, char **argv)
{
    const char *write_path = NULL, *check_path = NULL;
    uint64_t limit = UINT64_MAX, total = 0;
    struct entry *man = NULL;
    int nman = 0, files = 0, bad = 0, opt, i;
    FILE *out = NULL;
    struct timespec t0, t1;
    double secs;

    while ((opt = getopt(argc, argv, "M:w:c:")) != -1) {
        switch (opt) {
        case 'M':
            limit = parse_u64(optarg) * 1024 * 1024;
            break;
        case 'w':
            write_path = optarg;
            break;
        case 'c':
            check_path = optarg;
            break;
        default:
            fprintf(stderr, "usage: pagecache [-M MiB] [-w MANIFEST | "
                    "-c MANIFEST] FILE...\n");
            return 2;
        }
    }
    if (check_path) {
        man = load_manifest(check_path, &nman);
    }
    if (write_path) {
        out = fopen(write_path, "w");
        if (!out) {
            perror(write_path);
            return 2;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = optind; i < argc && total < limit; i++) {
        uint64_t h, s;
        int j, found = 0;

        if (hash_file(argv[i], limit - total, &h, &s) < 0) {
            bad++;
            continue;
        }
        files++;
        total += s;
        if (out) {
            fprintf(out, "%016" PRIx64 " %" PRIu64 " %s\n", h, s,
                    base_name(argv[i]));
        }
        if (!man) {
            continue;
        }
        for (j = 0; j < nman; j++) {
            if (!strcmp(man[j].path, base_name(argv[i]))) {
                found = 1;
                /* A file cut short by -M cannot be compared. */
                if (s == man[j].size && h != man[j].hash) {
                    printf("pagecache: %s hash %016" PRIx64 " expected %016"
                           PRIx64 "\n", argv[i], h, man[j].hash);
                    bad++;
                }
                break;
            }
        }
        if (!found) {
            printf("pagecache: %s not in the manifest\n", argv[i]);
            bad++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (out) {
        fclose(out);
    }
    printf("pagecache %s files=%d bytes=%" PRIu64 " bad=%d mbps=%.1f\n",
           bad ? "FAIL" : "OK", files, total, bad,
           secs > 0 ? total / 1e6 / secs : 0.0);
    return bad ? 1 : 0;
}
