/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * diskmap: publish the disk-backed-pages map of cached files.
 *
 *     diskmap [-M MiB] [-f SECONDS] FILE...
 *
 * maps each file read-only (at most -M MiB in all, in the order given,
 * like pagecache -M), faults every page into the page cache and locks it,
 * and builds the map that docs/devel/migration/disk-backed-pages.rst
 * specifies: one record per page that is a clean copy of a 4 KiB block
 * of the disk, giving the page's guest-physical address and the block's
 * frame (disk offset / 4096).  Then it prints
 *
 *     diskmap: map 0x<header gpa> records <n> segments <s>
 *
 * which a host passes to QEMU as the disk-backed-map parameter, and waits,
 * holding the mappings and the map locked, until SIGTERM.  On SIGUSR1 it
 * checks that every page it mapped and every page of the map is still at
 * the physical address it had, and prints
 *
 *     diskmap: check <k> pages <n> moved <m> map-pages <p> map-moved <q> OK
 *
 * (FAIL instead of OK when a page moved: the map is stale then).
 *
 * Where the numbers come from:
 *   - the disk offset of a file block: FIEMAP (FS_IOC_FIEMAP); extents
 *     that are unwritten, delayed, encoded, encrypted, inline, tails or
 *     not block-aligned are skipped, and so is a page not entirely
 *     inside one 4096-aligned extent run, and the partial last page of a
 *     file (the page cache zero-fills beyond the end of the file, the
 *     disk block need not be zero).  FIEMAP offsets are relative to the
 *     filesystem's block device: if that is a partition, its start
 *     (/sys/dev/block/M:m/start) is added.  The filesystem must sit on
 *     the shared disk itself or on a partition of it, not on a mapper;
 *   - the guest-physical address of a page: /proc/self/pagemap (present
 *     bit 63, PFN in bits 0-54).  It needs root: without CAP_SYS_ADMIN
 *     every PFN reads as 0, and diskmap stops with an error.
 *
 * The addresses must stay valid while QEMU uses the map, so everything is
 * locked (mlock: never reclaimed), transparent huge pages are refused for
 * these ranges (khugepaged would copy the pages) and
 * vm.compact_unevictable_allowed is set to 0 (compaction would move the
 * locked pages).  SIGUSR1 proves it held.
 *
 * The map is an mlocked anonymous buffer: a header page and record
 * pages.  Record pages are taken in physical order and physically
 * adjacent ones form one segment (at most 252); if the buffer is too
 * fragmented, a larger one is tried and its longest runs used.  Records
 * are sorted by address; a page named twice with different frames is
 * dropped.  The files are expected to stay unchanged (the bench disk is
 * mounted read-only), so no record is ever marked modified.
 *
 * With -f, diskmap follows the page cache instead, as a daemon would:
 * it locks nothing and faults nothing in from the disk.  Every SECONDS
 * it asks mincore() which pages of the files are cached, maps those
 * (a minor fault: they are in memory already), reads their PFNs and
 * /proc/kpageflags, and publishes the map again with a new generation
 * when it changed: a record for each cached page, marked modified when
 * the page is dirty or under writeback (it does not match its block
 * then).  The map buffer has room for every page of the files.  The
 * kernel may reclaim or move a page after it was published: QEMU
 * compares the pages of records it reads after setup with their blocks,
 * and the destination checks every reference, so a stale record costs
 * a page sent in full, never a wrong one.  It prints
 *
 *     diskmap: follow <round> records <n> modified <m> generation <g>
 *
 * each time it publishes.
 *
 * Copyright (c) 2026 The migration-transport project authors
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/fiemap.h>
#include <linux/fs.h>

#include "workload.h"

/* The map layout (migration/disk-map.h). */
#define PAGE_SIZE       4096
#define MAP_MAGIC       0x50414d4b53494451ULL   /* "QDISKMAP" */
#define MAP_VERSION     1
#define MAP_HEADER_SIZE 64
#define MAP_SEG_SIZE    16
#define MAP_MAX_SEGS    ((PAGE_SIZE - MAP_HEADER_SIZE) / MAP_SEG_SIZE)
#define MAP_REC_SIZE    16
#define MAP_MAX_RECS    (1ull << 24)
#define RECS_PER_PAGE   (PAGE_SIZE / MAP_REC_SIZE)

#define PM_PRESENT      (1ull << 63)
#define PM_PFN_MASK     ((1ull << 55) - 1)

/* Extents whose bytes are not plainly at fe_physical on the device. */
#define FIEMAP_BAD_FLAGS (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | \
                          FIEMAP_EXTENT_ENCODED | \
                          FIEMAP_EXTENT_DATA_ENCRYPTED | \
                          FIEMAP_EXTENT_NOT_ALIGNED | \
                          FIEMAP_EXTENT_DATA_INLINE | \
                          FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN)
#define FIEMAP_BATCH    128

struct extent {
    uint64_t logical, physical, length;
};

/* One mapped file: its pages and the PFN each had when published. */
struct file_map {
    const char *va;
    size_t pages;
    uint64_t *pfn;              /* 0: not present */
    const char *path;           /* -f: to read its extents again */
    uint64_t size;              /* -f: the file's size when mapped */
};

struct rec {
    uint64_t gpa;               /* | MAP_REC_MODIFIED */
    uint64_t frame;
};

#define MAP_REC_MODIFIED 1ull

/* /proc/kpageflags: the page is dirty, or being written back */
#define KPF_DIRTY       (1ull << 4)
#define KPF_WRITEBACK   (1ull << 8)

/* The map buffer: a pool of locked pages, some of them used. */
struct pool {
    char *base;
    size_t pages;
    uint64_t *pfn;
};

static int pagemap_fd = -1;
static int kpageflags_fd = -1;
/* -f: the period; otherwise 0 */
static unsigned follow_s;
/* -f leaves dirty pages alone: no FIEMAP_FLAG_SYNC, which writes them */
static unsigned fiemap_flags = FIEMAP_FLAG_SYNC;

static void die(const char *why)
{
    fprintf(stderr, "diskmap: error: %s\n", why);
    exit(1);
}

static void die_errno(const char *what)
{
    fprintf(stderr, "diskmap: error: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* PFNs of @n pages from @va (0 for a page not present). */
static void read_pfns(const void *va, size_t n, uint64_t *pfn)
{
    off_t off = (uintptr_t)va / PAGE_SIZE * sizeof(uint64_t);
    size_t i;

    if (pread(pagemap_fd, pfn, n * sizeof(uint64_t), off) !=
        (ssize_t)(n * sizeof(uint64_t))) {
        die_errno("/proc/self/pagemap");
    }
    for (i = 0; i < n; i++) {
        if (!(pfn[i] & PM_PRESENT)) {
            pfn[i] = 0;
            continue;
        }
        pfn[i] &= PM_PFN_MASK;
        if (!pfn[i]) {
            /* PFN 0 is never RAM Linux hands out: hidden from non-root. */
            die("/proc/self/pagemap shows no page frames (run as root)");
        }
    }
}

/*
 * The file's extents that hold its bytes plainly on the device, sorted by
 * logical offset, neighbours that continue each other merged.
 */
static struct extent *file_extents(int fd, const char *path, size_t *count)
{
    size_t sz = sizeof(struct fiemap) +
                FIEMAP_BATCH * sizeof(struct fiemap_extent);
    struct fiemap *fm = malloc(sz);
    struct extent *ext = NULL;
    uint64_t start = 0;
    size_t n = 0;
    int last = 0;

    if (!fm) {
        die("out of memory");
    }
    while (!last) {
        unsigned i;

        memset(fm, 0, sz);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_flags = fiemap_flags;
        fm->fm_extent_count = FIEMAP_BATCH;
        if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
            fprintf(stderr, "diskmap: %s: FIEMAP: %s\n", path,
                    strerror(errno));
            break;
        }
        if (!fm->fm_mapped_extents) {
            break;
        }
        for (i = 0; i < fm->fm_mapped_extents; i++) {
            const struct fiemap_extent *fe = &fm->fm_extents[i];
            struct extent *prev = n ? &ext[n - 1] : NULL;

            last |= !!(fe->fe_flags & FIEMAP_EXTENT_LAST);
            start = fe->fe_logical + fe->fe_length;
            if (fe->fe_flags & FIEMAP_BAD_FLAGS) {
                continue;
            }
            if (prev && prev->logical + prev->length == fe->fe_logical &&
                prev->physical + prev->length == fe->fe_physical) {
                prev->length += fe->fe_length;
                continue;
            }
            ext = realloc(ext, (n + 1) * sizeof(*ext));
            if (!ext) {
                die("out of memory");
            }
            ext[n].logical = fe->fe_logical;
            ext[n].physical = fe->fe_physical;
            ext[n].length = fe->fe_length;
            n++;
        }
    }
    free(fm);
    *count = n;
    return ext;
}

/* Byte offset of the block device @dev on its disk (0 for a whole disk). */
static uint64_t device_start(dev_t dev)
{
    char path[128];
    unsigned long long sectors;
    FILE *f;

    snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/start",
             major(dev), minor(dev));
    f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    if (fscanf(f, "%llu", &sectors) != 1) {
        sectors = 0;
    }
    fclose(f);
    return sectors * 512;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;

    if (x->gpa != y->gpa) {
        return x->gpa < y->gpa ? -1 : 1;
    }
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/*
 * Sort by address; keep one of identical records, drop every record of a
 * page named with different frames.  Returns the count kept.
 */
static size_t drop_duplicates(struct rec *r, size_t n, size_t *dropped)
{
    size_t i = 0, kept = 0;

    qsort(r, n, sizeof(*r), cmp_rec);
    *dropped = 0;
    while (i < n) {
        size_t j = i + 1;
        int conflict = 0;

        while (j < n && r[j].gpa == r[i].gpa) {
            conflict |= r[j].frame != r[i].frame;
            j++;
        }
        if (conflict) {
            *dropped += j - i;
        } else {
            r[kept++] = r[i];
        }
        i = j;
    }
    return kept;
}

static struct pool pool_alloc(size_t pages)
{
    struct pool p = { .pages = pages };

    p.base = mmap(NULL, pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p.base == MAP_FAILED) {
        die_errno("mmap of the map buffer");
    }
    madvise(p.base, pages * PAGE_SIZE, MADV_NOHUGEPAGE);
    if (mlock(p.base, pages * PAGE_SIZE) < 0) {
        die_errno("mlock of the map buffer");
    }
    memset(p.base, 0, pages * PAGE_SIZE);
    p.pfn = calloc(pages, sizeof(uint64_t));
    if (!p.pfn) {
        die("out of memory");
    }
    read_pfns(p.base, pages, p.pfn);
    return p;
}

static void pool_free(struct pool *p)
{
    munmap(p->base, p->pages * PAGE_SIZE);
    free(p->pfn);
}

static const struct pool *sort_pool;

static int cmp_page_pfn(const void *a, const void *b)
{
    uint64_t x = sort_pool->pfn[*(const size_t *)a];
    uint64_t y = sort_pool->pfn[*(const size_t *)b];

    return x < y ? -1 : x > y;
}

/* A run of physically consecutive pool pages: order[first .. first+len). */
struct run {
    size_t first, len;
};

static int cmp_run_len(const void *a, const void *b)
{
    const struct run *x = a, *y = b;

    return x->len < y->len ? 1 : x->len > y->len ? -1 :
           x->first < y->first ? -1 : x->first > y->first;
}

static int cmp_run_first(const void *a, const void *b)
{
    const struct run *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}


/*
 * Lay the map out in @p: its longest physical runs until they hold @need
 * record pages (the segments, returned in physical order in @runs), and
 * a page outside them for the header (*@header, a pool index).  @order
 * gets the pool's pages sorted by PFN.  Returns the number of segments,
 * or 0 when more than MAP_MAX_SEGS would be needed.
 */
static size_t layout(const struct pool *p, size_t need, size_t *order,
                     struct run *runs, size_t *header)
{
    struct run *all = calloc(p->pages, sizeof(*all));
    char *used = calloc(p->pages, 1);
    size_t i, j, nall = 0, nruns = 0, have = 0;

    if (!all || !used) {
        die("out of memory");
    }
    for (i = 0; i < p->pages; i++) {
        order[i] = i;
    }
    sort_pool = p;
    qsort(order, p->pages, sizeof(*order), cmp_page_pfn);
    for (i = 0; i < p->pages; i++) {
        if (i && p->pfn[order[i]] == p->pfn[order[i - 1]] + 1) {
            all[nall - 1].len++;
        } else {
            all[nall].first = i;
            all[nall++].len = 1;
        }
    }
    qsort(all, nall, sizeof(*all), cmp_run_len);
    for (i = 0; i < nall && have < need; i++) {
        size_t take = all[i].len < need - have ? all[i].len : need - have;

        if (nruns == MAP_MAX_SEGS) {
            nruns = 0;
            goto out;
        }
        runs[nruns].first = all[i].first;
        runs[nruns++].len = take;
        for (j = 0; j < take; j++) {
            used[all[i].first + j] = 1;
        }
        have += take;
    }
    /* The pool has at least need + 1 pages: one is left for the header. */
    i = 0;
    while (used[i]) {
        i++;
    }
    *header = order[i];
    qsort(runs, nruns, sizeof(*runs), cmp_run_first);
out:
    free(all);
    free(used);
    return nruns;
}

static void put_le32(char *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static void put_le64(char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

/* The published map: its header and record pages, to check they stay. */
struct map_page {
    const char *va;
    uint64_t pfn;
};
static struct map_page *map_pages;
static size_t map_npages;

/* The map's buffer, laid out by map_alloc() */
static char *map_hdr;
static size_t map_nruns;
static struct run map_runs[MAP_MAX_SEGS];
static size_t *map_order;
static struct pool map_pool;
static uint64_t map_generation;

/*
 * Lay out a map with room for @cap records in locked memory; returns the
 * guest-physical address of its header page.
 */
static uint64_t map_alloc(size_t cap)
{
    size_t need = (cap + RECS_PER_PAGE - 1) / RECS_PER_PAGE;
    size_t size = need + 1, ntried = 0, header, s, i;
    struct pool tried[4], p;
    size_t *order = NULL;

    /*
     * A larger pool when the last one was too fragmented; the failed
     * pools stay allocated meanwhile, so that the next gets other pages.
     */
    for (;;) {
        p = pool_alloc(size);
        order = realloc(order, size * sizeof(*order));
        if (!order) {
            die("out of memory");
        }
        map_nruns = layout(&p, need, order, map_runs, &header);
        if (map_nruns) {
            break;
        }
        if (ntried == sizeof(tried) / sizeof(tried[0])) {
            die("guest memory too fragmented: the map needs more than "
                "252 segments");
        }
        tried[ntried++] = p;
        size *= 4;
    }
    while (ntried) {
        pool_free(&tried[--ntried]);
    }

    map_pages = calloc(need + 1, sizeof(*map_pages));
    if (!map_pages) {
        die("out of memory");
    }
    map_hdr = p.base + header * PAGE_SIZE;
    map_pages[map_npages].va = map_hdr;
    map_pages[map_npages++].pfn = p.pfn[header];
    for (s = 0; s < map_nruns; s++) {
        for (i = 0; i < map_runs[s].len; i++) {
            size_t pg = order[map_runs[s].first + i];

            map_pages[map_npages].va = p.base + pg * PAGE_SIZE;
            map_pages[map_npages++].pfn = p.pfn[pg];
        }
    }
    map_order = order;
    map_pool = p;
    return p.pfn[header] * PAGE_SIZE;
}

/*
 * Publish @n records (sorted, no duplicates, 1 to the room map_alloc()
 * made) under a new generation: odd while they are written, then even.
 * Returns the number of segments used.
 */
static size_t map_publish(const struct rec *r, size_t n)
{
    size_t s, i, k = 0, nsegs = 0;

    put_le64(map_hdr + 0, MAP_MAGIC);
    put_le32(map_hdr + 8, MAP_VERSION);
    put_le64(map_hdr + 16, ++map_generation);
    put_le32(map_hdr + 32, PAGE_SIZE);
    put_le32(map_hdr + 36, PAGE_SIZE);
    __sync_synchronize();

    for (s = 0; s < map_nruns && k < n; s++) {
        size_t nrec = map_runs[s].len * RECS_PER_PAGE;
        char *seg = map_hdr + MAP_HEADER_SIZE + s * MAP_SEG_SIZE;

        if (nrec > n - k) {
            nrec = n - k;   /* the last segment used is partial */
        }
        put_le64(seg, map_pool.pfn[map_order[map_runs[s].first]] *
                      PAGE_SIZE);
        put_le64(seg + 8, nrec);
        for (i = 0; i < nrec; i++, k++) {
            char *rec = map_pool.base +
                        map_order[map_runs[s].first + i / RECS_PER_PAGE] *
                        PAGE_SIZE + i % RECS_PER_PAGE * MAP_REC_SIZE;

            put_le64(rec, r[k].gpa);
            put_le64(rec + 8, r[k].frame);
        }
        nsegs++;
    }
    put_le32(map_hdr + 12, nsegs);
    put_le64(map_hdr + 24, n);

    /* Stable: even generation. */
    __sync_synchronize();
    put_le64(map_hdr + 16, ++map_generation);
    __sync_synchronize();
    return nsegs;
}

/* What the files gave. */
static struct file_map *files;
static size_t nfiles;
static struct rec *recs;
static size_t nrecs, recs_cap;
static size_t st_pages, st_absent, st_unmapped;
static dev_t disk_dev;
static uint64_t disk_start;

/* -f: is the page at @pfn dirty or under writeback? */
static int pfn_dirty(uint64_t pfn)
{
    uint64_t flags;

    if (kpageflags_fd < 0 ||
        pread(kpageflags_fd, &flags, sizeof(flags), pfn * sizeof(flags)) !=
        sizeof(flags)) {
        return 0;
    }
    return !!(flags & (KPF_DIRTY | KPF_WRITEBACK));
}

/*
 * Add a record for each page of @fm present in fm->pfn that is a copy of
 * a 4 KiB disk block of file @fd, @size bytes long; with -f, marked
 * modified when the page is dirty.  Returns the modified ones.
 */
static size_t file_records(struct file_map *fm, int fd, uint64_t size)
{
    struct extent *ext;
    size_t next, e = 0, pg, whole, modified = 0;

    ext = file_extents(fd, fm->path, &next);
    /* Pages entirely inside the file: beyond its end the page is zeroed. */
    whole = size / PAGE_SIZE;
    for (pg = 0; pg < fm->pages; pg++) {
        uint64_t lo = (uint64_t)pg * PAGE_SIZE, phys;
        int dirty;

        st_pages++;
        if (!fm->pfn[pg]) {
            st_absent++;
            continue;
        }
        while (e < next && ext[e].logical + ext[e].length <= lo) {
            e++;
        }
        if (pg >= whole || e == next || ext[e].logical > lo ||
            ext[e].logical + ext[e].length < lo + PAGE_SIZE) {
            st_unmapped++;
            continue;
        }
        phys = disk_start + ext[e].physical + (lo - ext[e].logical);
        if (phys % PAGE_SIZE) {
            st_unmapped++;
            continue;
        }
        if (nrecs == recs_cap) {
            /* doubling: -f fills the array again every period */
            recs_cap = recs_cap ? 2 * recs_cap : 4096;
            recs = realloc(recs, recs_cap * sizeof(*recs));
            if (!recs) {
                die("out of memory");
            }
        }
        dirty = follow_s && pfn_dirty(fm->pfn[pg]);
        modified += dirty;
        recs[nrecs].gpa = fm->pfn[pg] * PAGE_SIZE |
                          (dirty ? MAP_REC_MODIFIED : 0);
        recs[nrecs++].frame = phys / PAGE_SIZE;
    }
    free(ext);
    return modified;
}

/*
 * Map the first @limit bytes of @path; without -f, fault them in, lock
 * them and add their records.  Returns the bytes mapped.
 */
static uint64_t map_file(const char *path, uint64_t limit)
{
    struct file_map *fm;
    struct stat st;
    uint64_t len;
    int fd;

    fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "diskmap: %s: skipped (%s)\n", path,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    if (!nfiles) {
        disk_dev = st.st_dev;
        disk_start = device_start(st.st_dev);
    } else if (st.st_dev != disk_dev) {
        die("the files are on more than one device");
    }
    len = (uint64_t)st.st_size < limit ? (uint64_t)st.st_size : limit;
    if (!len) {
        close(fd);
        return 0;
    }

    files = realloc(files, (nfiles + 1) * sizeof(*files));
    if (!files) {
        die("out of memory");
    }
    fm = &files[nfiles++];
    fm->path = path;
    fm->size = st.st_size;
    fm->pages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
    fm->va = mmap(NULL, len, PROT_READ,
                  MAP_SHARED | (follow_s ? 0 : MAP_POPULATE), fd, 0);
    if (fm->va == MAP_FAILED) {
        die_errno(path);
    }
    madvise((void *)fm->va, len, MADV_NOHUGEPAGE);
    fm->pfn = calloc(fm->pages, sizeof(uint64_t));
    if (!fm->pfn) {
        die("out of memory");
    }
    if (follow_s) {
        close(fd);
        return len;     /* scan() takes what is cached, each round */
    }
    /* Faults in every page that MAP_POPULATE may have left out. */
    if (mlock(fm->va, len) < 0) {
        die_errno("mlock");
    }
    read_pfns(fm->va, fm->pages, fm->pfn);
    file_records(fm, fd, st.st_size);
    close(fd);
    return len;
}

/*
 * -f: the records of the files' pages cached now.  A cached page that
 * this process has not mapped yet is touched, which maps it without I/O
 * (unless the kernel dropped it meanwhile); pages not cached are left
 * alone.  Returns the modified ones.
 */
static size_t scan(void)
{
    size_t f, pg, modified = 0;

    nrecs = 0;
    st_pages = st_absent = st_unmapped = 0;
    for (f = 0; f < nfiles; f++) {
        struct file_map *fm = &files[f];
        unsigned char *vec = malloc(fm->pages);
        int fd;

        if (!vec) {
            die("out of memory");
        }
        if (mincore((void *)fm->va, fm->pages * PAGE_SIZE, vec) < 0) {
            die_errno("mincore");
        }
        read_pfns(fm->va, fm->pages, fm->pfn);
        for (pg = 0; pg < fm->pages; pg++) {
            if ((vec[pg] & 1) && !fm->pfn[pg]) {
                (void)*(volatile const char *)(fm->va + pg * PAGE_SIZE);
            }
        }
        free(vec);
        read_pfns(fm->va, fm->pages, fm->pfn);
        fd = open(fm->path, O_RDONLY);
        if (fd < 0) {
            continue;   /* deleted meanwhile: its pages are not copies */
        }
        modified += file_records(fm, fd, fm->size);
        close(fd);
    }
    return modified;
}

/* -f: publish the map again, each follow_s seconds, when it changed */
static void follow(void)
{
    struct rec *last = NULL;
    size_t nlast = 0, round = 0, dropped;

    while (!want_exit) {
        size_t modified;

        sleep(follow_s);
        if (want_exit) {
            break;
        }
        modified = scan();
        nrecs = drop_duplicates(recs, nrecs, &dropped);
        round++;
        if (!nrecs || (nrecs == nlast &&
                       !memcmp(recs, last, nrecs * sizeof(*recs)))) {
            continue;
        }
        map_publish(recs, nrecs);
        printf("diskmap: follow %zu records %zu modified %zu generation %"
               PRIu64 "\n", round, nrecs, modified, map_generation);
        free(last);
        last = malloc(nrecs * sizeof(*recs));
        if (!last) {
            die("out of memory");
        }
        memcpy(last, recs, nrecs * sizeof(*recs));
        nlast = nrecs;
    }
    free(last);
}

/* Is every page still where it was when the map was published? */
static void check(void)
{
    static unsigned round;
    size_t f, i, pages = 0, moved = 0, map_moved = 0;

    for (f = 0; f < nfiles; f++) {
        uint64_t *now = calloc(files[f].pages, sizeof(uint64_t));

        if (!now) {
            die("out of memory");
        }
        read_pfns(files[f].va, files[f].pages, now);
        for (i = 0; i < files[f].pages; i++) {
            if (files[f].pfn[i]) {
                pages++;
                moved += now[i] != files[f].pfn[i];
            }
        }
        free(now);
    }
    for (i = 0; i < map_npages; i++) {
        uint64_t now;

        read_pfns(map_pages[i].va, 1, &now);
        map_moved += now != map_pages[i].pfn;
    }
    printf("diskmap: check %u pages %zu moved %zu map-pages %zu "
           "map-moved %zu %s\n", ++round, pages, moved, map_npages,
           map_moved, moved || map_moved ? "FAIL" : "OK");
}

/*
 * Compaction moves even locked pages unless vm.compact_unevictable_allowed
 * is 0 (no such file: no compaction).
 */
static void pin_locked_pages(void)
{
    int fd = open("/proc/sys/vm/compact_unevictable_allowed", O_WRONLY);

    if (fd < 0 && errno == ENOENT) {
        return;
    }
    if (fd < 0 || write(fd, "0\n", 2) != 2) {
        fprintf(stderr, "diskmap: warning: cannot set "
                "vm.compact_unevictable_allowed to 0 (%s): locked pages "
                "may move\n", strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
}

int main(int argc, char **argv)
{
    uint64_t limit = UINT64_MAX, total = 0, map_gpa;
    size_t dropped, nsegs;
    sigset_t block, old;
    int opt, i;

    while ((opt = getopt(argc, argv, "M:f:")) != -1) {
        switch (opt) {
        case 'M':
            limit = parse_u64(optarg) * 1024 * 1024;
            break;
        case 'f':
            follow_s = parse_u64(optarg);
            fiemap_flags = 0;
            if (!follow_s) {
                goto usage;
            }
            break;
        default:
            goto usage;
        }
    }
    if (optind >= argc) {
        goto usage;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    workload_signals();
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);

    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    if (pagemap_fd < 0) {
        die_errno("/proc/self/pagemap");
    }
    pin_locked_pages();
    for (i = optind; i < argc && total < limit; i++) {
        total += map_file(argv[i], limit - total);
    }
    if (follow_s) {
        size_t cap = 0, f;

        kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
        if (kpageflags_fd < 0) {
            die_errno("/proc/kpageflags");
        }
        for (f = 0; f < nfiles; f++) {
            cap += files[f].pages;
        }
        if (!cap || cap > MAP_MAX_RECS) {
            die("the files have no page, or more than 2^24");
        }
        map_gpa = map_alloc(cap);
        scan();
        nrecs = drop_duplicates(recs, nrecs, &dropped);
        nsegs = nrecs ? map_publish(recs, nrecs) : 0;
        printf("diskmap: files %zu pages %zu absent %zu unmapped %zu "
               "duplicates %zu device-start %" PRIu64 "\n", nfiles,
               st_pages, st_absent, st_unmapped, dropped, disk_start);
        printf("diskmap: map 0x%" PRIx64 " records %zu segments %zu\n",
               map_gpa, nrecs, nsegs);
        follow();
        return 0;
    }
    nrecs = drop_duplicates(recs, nrecs, &dropped);
    if (!nrecs) {
        die("no page is a copy of a 4 KiB disk block");
    }
    if (nrecs > MAP_MAX_RECS) {
        die("more than 2^24 records");
    }
    map_gpa = map_alloc(nrecs);
    nsegs = map_publish(recs, nrecs);
    printf("diskmap: files %zu pages %zu absent %zu unmapped %zu "
           "duplicates %zu device-start %" PRIu64 "\n", nfiles, st_pages,
           st_absent, st_unmapped, dropped, disk_start);
    printf("diskmap: map 0x%" PRIx64 " records %zu segments %zu\n",
           map_gpa, nrecs, nsegs);

    sigprocmask(SIG_BLOCK, &block, &old);
    while (!want_exit) {
        if (want_report) {
            want_report = 0;
            check();
            continue;
        }
        sigsuspend(&old);
    }
    return 0;

usage:
    fprintf(stderr, "usage: diskmap [-M MiB] [-f SECONDS] FILE...\n");
    return 2;
}
