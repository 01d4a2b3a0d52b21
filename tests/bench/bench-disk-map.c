/*
 * The disk-backed map's worst case: how long the source takes, with the
 * BQL held in ram_save_setup(), to check the largest map the parser
 * accepts (DISK_MAP_MAX_RECORDS records in DISK_MAP_MAX_SEGMENTS
 * segments).  Prints a timing; asserts nothing about it.
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "disk-map.h"

#define PAGE DISK_MAP_PAGE_SIZE

static bool all_ram(uint64_t gpa, uint64_t len, void *opaque)
{
    return gpa + len >= gpa;
}

/* Little-endian fields through the unit's own writer */
static void put_le64(uint8_t *p, uint64_t v)
{
    WireWriter w;

    wire_writer_init(&w, p, 8);
    wire_put_le64(&w, v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    WireWriter w;

    wire_writer_init(&w, p, 4);
    wire_put_le32(&w, v);
}

int main(int argc, char **argv)
{
    uint64_t nrec = argc > 1 ? strtoull(argv[1], NULL, 0) :
                    DISK_MAP_MAX_RECORDS;
    uint32_t nseg = DISK_MAP_MAX_SEGMENTS;
    uint64_t per_seg = nrec / nseg, rest = nrec % nseg;
    /* records describe RAM above 64 GiB; segments sit below it */
    uint64_t seg_gpa = 1ull << 30, rec_gpa = 64ull << 30;
    DiskMapEnv env = { .in_ram = all_ram, .disk_size = 1ull << 40 };
    g_autofree uint8_t *hdr = g_malloc0(PAGE);
    g_autofree uint8_t *recs = g_malloc(nrec * DISK_MAP_RECORD_SIZE);
    g_autofree DiskMapLayout *map = g_new0(DiskMapLayout, 1);
    uint64_t ok = 0, gpa = seg_gpa;
    const char *err = NULL;
    int64_t t0, t1;

    memcpy(hdr, "QDISKMAP", 8);
    put_le32(hdr + 8, DISK_MAP_VERSION);
    put_le32(hdr + 12, nseg);
    put_le64(hdr + 16, 2);
    put_le64(hdr + 24, nrec);
    put_le32(hdr + 32, PAGE);
    put_le32(hdr + 36, PAGE);
    /* segments in descending address order, a page apart: no help */
    for (uint32_t i = 0; i < nseg; i++) {
        uint64_t n = per_seg + (i < rest);
        uint64_t at = seg_gpa + (uint64_t)(nseg - 1 - i) *
                      DIV_ROUND_UP((per_seg + 1) * DISK_MAP_RECORD_SIZE,
                                   PAGE) * PAGE * 2;

        put_le64(hdr + 64 + 16 * i, at);
        put_le64(hdr + 72 + 16 * i, n);
        gpa = MAX(gpa, at);
    }
    g_assert(gpa < rec_gpa);
    for (uint64_t i = 0; i < nrec; i++) {
        /* scattered pages, as a page cache is */
        uint64_t page = (i * 2654435761u) % (nrec * 4);

        put_le64(recs + i * 16, rec_gpa + page * PAGE);
        put_le64(recs + i * 16 + 8, i);
    }
    if (!disk_map_parse_header(hdr, 0, &env, map, &err)) {
        fprintf(stderr, "map refused: %s\n", err);
        return 1;
    }
    t0 = g_get_monotonic_time();
    for (uint64_t i = 0; i < nrec; i++) {
        DiskMapRecord r;

        ok += disk_map_check_record(&env, map, recs + i * 16, &r) ==
              DISK_MAP_REC_OK;
    }
    t1 = g_get_monotonic_time();
    printf("disk map: %" PRIu64 " records in %u segments checked in "
           "%.3f s (%.1f ns a record), %" PRIu64 " valid\n", nrec, nseg,
           (t1 - t0) / 1e6, (t1 - t0) * 1e3 / nrec, ok);

    /* then sorted, duplicates dropped, as the source keeps them */
    {
        g_autofree DiskMapRecord *sorted = g_new(DiskMapRecord, nrec);
        size_t kept;

        for (uint64_t i = 0; i < nrec; i++) {
            disk_map_check_record(&env, map, recs + i * 16, &sorted[i]);
        }
        t0 = g_get_monotonic_time();
        kept = disk_map_drop_duplicates(sorted, nrec);
        t1 = g_get_monotonic_time();
        printf("disk map: %" PRIu64 " records sorted in %.3f s, %zu kept\n",
               nrec, (t1 - t0) / 1e6, kept);
        if (kept != nrec) {
            return 1;
        }
    }
    return ok == nrec ? 0 : 1;
}
