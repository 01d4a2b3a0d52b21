/*
 * common-regions: pages the destination host already holds are not sent
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The source sends the fingerprint of the guest's RAM in the first
 * iteration, before any page.  The destination copies from the region
 * exports of its host the pages they hold with the same SHA-256,
 * hashing each copy again, and tells the source on the return path
 * which pages it placed; only then does the source send pages.  When it
 * would first send a placed page, it hashes the page: if it still has
 * the fingerprint's hash, the destination already has exactly these
 * bytes, and the page is not sent.  A page written later is dirty again
 * and goes as usual.  See docs/devel/migration/common-regions.rst.
 */

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/coroutine.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/rcu.h"
#include "qemu/sockets.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-types-migration.h"
#include "block/thread-pool.h"
#include "exec/target_page.h"
#include "migration/register.h"
#include "system/ramblock.h"
#include "common-regions.h"
#include "migration.h"
#include "options.h"
#include "qemu-file.h"
#include "ram.h"
#include "region-fingerprint.h"
#include "region-migrate.h"
#include "region-proto.h"
#include "trace.h"

/* The section's records */
#define CR_SETUP            0       /* nothing follows */
#define CR_FINGERPRINT      1       /* be64 length, then the fingerprint */

/* A block of the source's fingerprint, on the source */
typedef struct CrBlock {
    RAMBlock *rb;
    uint64_t npages;
    uint8_t (*hash)[RFP_HASH_LEN];  /* per page; zero pages all zeros */
    unsigned long *held;            /* placed on the destination */
} CrBlock;

typedef struct CommonRegions {
    QemuMutex lock;                 /* blocks, nr_blocks, done */
    CrBlock *blocks;
    uint32_t nr_blocks;
    bool sent;                      /* the fingerprint went */
    bool done;                      /* RXP_HELD_DONE came */
    QemuSemaphore done_sem;         /* posted when done is set */
    int64_t start_ms;
    CommonRegionsInfo info;
} CommonRegions;

static CommonRegions common_regions;

static void blocks_free(CommonRegions *cr)
{
    for (uint32_t i = 0; i < cr->nr_blocks; i++) {
        g_free(cr->blocks[i].hash);
        g_free(cr->blocks[i].held);
    }
    g_free(cr->blocks);
    cr->blocks = NULL;
    cr->nr_blocks = 0;
}

/* Source */

static bool cr_is_active(void *opaque)
{
    return migrate_common_regions();
}

static bool cr_is_active_iterate(void *opaque)
{
    return !common_regions.sent;
}

static int cr_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    CommonRegions *cr = &common_regions;

    WITH_QEMU_LOCK_GUARD(&cr->lock) {
        blocks_free(cr);
        cr->sent = false;
        cr->done = false;
    }
    while (!qemu_sem_timedwait(&cr->done_sem, 0)) {
        /* drain a post of an earlier migration */
    }
    memset(&cr->info, 0, sizeof(cr->info));
    qemu_put_byte(f, CR_SETUP);
    return 0;
}

static bool cr_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    CommonRegions *cr = opaque;
    CrBlock *cb = &cr->blocks[b->index];

    cb->rb = qemu_ram_block_by_name(b->idstr);
    cb->npages = b->used_length >> h->geo.page_shift;
    cb->hash = g_malloc0(cb->npages * RFP_HASH_LEN);
    cb->held = bitmap_new(cb->npages);
    return cb->rb != NULL;
}

static bool cr_region(const RfpHeader *h, const RfpBlock *b,
                      const RfpRegion *r, void *opaque)
{
    CommonRegions *cr = opaque;
    CrBlock *cb = &cr->blocks[b->index];
    uint64_t first = r->offset >> h->geo.page_shift;
    const uint8_t *ph = r->page_hashes;

    for (unsigned i = 0; i < r->npages; i++) {
        if (r->mask & (1ull << i)) {
            memcpy(cb->hash[first + i], ph, RFP_HASH_LEN);
            ph += RFP_HASH_LEN;
            cr->info.pages_offered++;
        }
    }
    return true;
}

/*
 * Wait for the destination's RXP_HELD_DONE: no page may go before it,
 * or a copy from an export could land after the page.
 */
static int cr_wait_done(QEMUFile *f)
{
    MigrationState *s = migrate_get_current();
    CommonRegions *cr = &common_regions;

    while (!qatomic_read(&cr->done)) {
        qemu_sem_timedwait(&cr->done_sem, 100);
        if (qemu_file_get_error(f) || migrate_has_error(s) ||
            migration_has_failed(s) ||
            s->state == MIGRATION_STATUS_CANCELLING) {
            return -EIO;
        }
    }
    return 0;
}

/* The first iteration: the fingerprint, then the wait.  Without the BQL. */
static int cr_save_iterate(QEMUFile *f, void *opaque)
{
    CommonRegions *cr = &common_regions;
    FingerprintJob job = { 0 };
    g_autoptr(GByteArray) out = g_byte_array_new();
    const char *err = NULL;
    RfpHeader hdr;
    int ret;

    cr->start_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    if (!fingerprint_job_init(&job, COMMON_REGIONS_DEFAULT_REGION_SIZE,
                              NULL)) {
        return -EINVAL;
    }
    ret = fingerprint_ram(&job, out);
    if (ret < 0) {
        error_report("common-regions: %s", job.error);
        g_free(job.error);
        return ret;
    }
    WITH_QEMU_LOCK_GUARD(&cr->lock) {
        RCU_READ_LOCK_GUARD();          /* qemu_ram_block_by_name() */

        cr->nr_blocks = job.writer.nr_blocks;
        cr->blocks = g_new0(CrBlock, cr->nr_blocks);
        if (!rfp_scan(out->data, out->len, &hdr,
                      &(RfpVisitor) { cr_block, cr_region }, cr, NULL,
                      &err)) {
            error_report("common-regions: the fingerprint: %s", err);
            return -EINVAL;
        }
    }
    qemu_put_byte(f, CR_FINGERPRINT);
    qemu_put_be64(f, out->len);
    qemu_put_buffer(f, out->data, out->len);
    cr->sent = true;
    trace_common_regions_sent(out->len, cr->info.pages_offered);
    /* the destination answers only once it has the whole fingerprint */
    ret = qemu_fflush(f);
    if (ret < 0) {
        return ret;
    }
    ret = cr_wait_done(f);
    if (ret < 0) {
        return ret;
    }
    cr->info.setup_time = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                          cr->start_ms;
    trace_common_regions_done(cr->info.pages_held, cr->info.setup_time);
    return 1;
}

static void cr_save_cleanup(void *opaque)
{
    CommonRegions *cr = &common_regions;

    WITH_QEMU_LOCK_GUARD(&cr->lock) {
        blocks_free(cr);
    }
}

int common_regions_rp_held(const uint8_t *buf, size_t len, Error **errp)
{
    CommonRegions *cr = &common_regions;
    const char *err = NULL;
    RxpHeld m;
    CrBlock *cb;

    if (!rxp_held_decode(buf, len, &m, &err)) {
        error_setg(errp, "common-regions: malformed message of %zu bytes: "
                   "%s", len, err);
        return -EINVAL;
    }
    QEMU_LOCK_GUARD(&cr->lock);
    if (!cr->sent || cr->done) {
        error_setg(errp, "common-regions: unexpected message from the "
                   "destination");
        return -EINVAL;
    }
    if (m.kind == RXP_HELD_DONE) {
        qatomic_set(&cr->done, true);
        qemu_sem_post(&cr->done_sem);
        return 0;
    }
    if (m.block >= cr->nr_blocks) {
        error_setg(errp, "common-regions: no block %u", m.block);
        return -EINVAL;
    }
    cb = &cr->blocks[m.block];
    if (m.first_page >= cb->npages ||
        (uint64_t)m.bytes * 8 > cb->npages - m.first_page + 7) {
        error_setg(errp, "common-regions: pages %" PRIu64 "+%u are past the "
                   "end of block %s", m.first_page, m.bytes * 8,
                   cb->rb->idstr);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < m.bytes * 8u; i++) {
        if (m.bitmap[i / 8] & (1u << (i % 8))) {
            uint64_t page = m.first_page + i;

            /* a zero page or one past the end was not offered */
            if (page >= cb->npages || buffer_is_zero(cb->hash[page],
                                                     RFP_HASH_LEN)) {
                error_setg(errp, "common-regions: page %" PRIu64 " of %s "
                           "was not offered", page, cb->rb->idstr);
                return -EINVAL;
            }
            if (!test_and_set_bit(page, cb->held)) {
                cr->info.pages_held++;
            }
        }
    }
    return 0;
}

bool common_regions_skip_page(RAMBlock *rb, ram_addr_t offset)
{
    CommonRegions *cr = &common_regions;
    uint64_t page = offset >> qemu_target_page_bits();
    uint8_t now[RFP_HASH_LEN];
    CrBlock *cb = NULL;

    if (!qatomic_read(&cr->done)) {
        return false;
    }
    for (uint32_t i = 0; i < cr->nr_blocks; i++) {
        if (cr->blocks[i].rb == rb) {
            cb = &cr->blocks[i];
            break;
        }
    }
    /* the first send only: after that the page goes as usual */
    if (!cb || page >= cb->npages || !test_and_clear_bit(page, cb->held)) {
        return false;
    }
    common_regions_sha256(rb->host + offset, qemu_target_page_size(), now);
    if (memcmp(now, cb->hash[page], RFP_HASH_LEN)) {
        cr->info.pages_changed++;
        trace_common_regions_changed(rb->idstr, offset);
        return false;
    }
    cr->info.pages_skipped++;
    cr->info.bytes_saved += qemu_target_page_size();
    return true;
}

/* Destination */

typedef struct CrWant {
    const uint8_t *hash;            /* into the fingerprint */
    uint32_t block;                 /* index in the fingerprint */
    uint64_t page;
} CrWant;

typedef struct CrDest {
    RAMBlock **rb;                  /* per fingerprint block, or NULL */
    unsigned long **placed;
    uint64_t *npages;
    uint32_t nr_blocks;
    GArray *want;                   /* CrWant, sorted by hash */
} CrDest;

static bool dest_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    CrDest *d = opaque;
    RAMBlock *rb = qemu_ram_block_by_name(b->idstr);

    d->npages[b->index] = b->used_length >> h->geo.page_shift;
    d->placed[b->index] = bitmap_new(d->npages[b->index]);
    /* a block this side has not, or not of that size, is left alone */
    if (rb && qatomic_read(&rb->used_length) == b->used_length) {
        d->rb[b->index] = rb;
    }
    return true;
}

static bool dest_region(const RfpHeader *h, const RfpBlock *b,
                        const RfpRegion *r, void *opaque)
{
    CrDest *d = opaque;
    const uint8_t *ph = r->page_hashes;

    for (unsigned i = 0; i < r->npages; i++) {
        if (r->mask & (1ull << i)) {
            CrWant w = {
                .hash = ph,
                .block = b->index,
                .page = (r->offset >> h->geo.page_shift) + i,
            };

            ph += RFP_HASH_LEN;
            if (d->rb[b->index]) {
                g_array_append_val(d->want, w);
            }
        }
    }
    return true;
}

static gint want_cmp(gconstpointer a, gconstpointer b)
{
    return memcmp(((const CrWant *)a)->hash, ((const CrWant *)b)->hash,
                  RFP_HASH_LEN);
}

/*
 * Plain socket I/O, not a QIOChannel: a blocking QIOChannel waits again
 * on EAGAIN, which would defeat the receive timeout that keeps an export
 * that stops answering from stalling the migration.
 */
static bool io_all(int fd, void *buf, size_t len, bool write)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = write ? send(fd, p, len, MSG_NOSIGNAL)
                          : recv(fd, p, len, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

/* Connect to an export and say hello.  Returns the socket, or -1. */
static int export_open(const char *path)
{
    struct timeval tv = { .tv_sec = 10 };
    uint8_t msg[RXP_HELLO_REPLY_SIZE];
    size_t psize = qemu_target_page_size();
    const char *err = NULL;
    uint64_t pages;
    int fd = unix_connect(path, NULL);

    if (fd < 0) {
        trace_common_regions_export_failed(path, "cannot connect");
        return -1;
    }
    /* an export that stops answering costs its pages, not the migration */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    rxp_hello_encode(msg, psize);
    if (!io_all(fd, msg, RXP_HELLO_SIZE, true) ||
        !io_all(fd, msg, RXP_HELLO_REPLY_SIZE, false) ||
        !rxp_hello_reply_decode(msg, psize, &pages, &err)) {
        trace_common_regions_export_failed(path, err ? err : "no hello");
        close(fd);
        return -1;
    }
    return fd;
}

/* Send a request and read its reply's header, which must be the same. */
static bool export_request(int fd, uint8_t op, const uint8_t *hashes,
                           uint32_t count)
{
    uint8_t hdr[RXP_HEADER_SIZE], rhdr[RXP_HEADER_SIZE];

    rxp_header_encode(hdr, op, count);
    return io_all(fd, hdr, sizeof(hdr), true) &&
           io_all(fd, (void *)hashes, (size_t)count * RFP_HASH_LEN, true) &&
           io_all(fd, rhdr, sizeof(rhdr), false) &&
           !memcmp(hdr, rhdr, sizeof(hdr));
}

/* A run of d->want with one hash: its pages are placed together */
typedef struct CrRun {
    uint32_t from, to;
    bool placed;
} CrRun;

static void place(CrDest *d, CrRun *run, const uint8_t *page)
{
    size_t psize = qemu_target_page_size();

    for (uint32_t k = run->from; k < run->to; k++) {
        CrWant *w = &g_array_index(d->want, CrWant, k);

        memcpy(d->rb[w->block]->host + (w->page << qemu_target_page_bits()),
               page, psize);
        set_bit(w->page, d->placed[w->block]);
        common_regions.info.pages_held++;
    }
    run->placed = true;
}

/* The hashes of @n runs of @runs from @i on, into @hashes */
static void run_hashes(CrDest *d, GPtrArray *runs, guint i, uint32_t n,
                       uint8_t *hashes)
{
    for (uint32_t j = 0; j < n; j++) {
        CrRun *run = g_ptr_array_index(runs, i + j);

        memcpy(hashes + j * RFP_HASH_LEN,
               g_array_index(d->want, CrWant, run->from).hash, RFP_HASH_LEN);
    }
}

/*
 * Take from the export on @fd the pages of the runs not placed yet.
 * Returns false when the export failed.
 */
static bool export_take(CrDest *d, int fd, GArray *all)
{
    size_t psize = qemu_target_page_size();
    g_autofree uint8_t *hashes = g_malloc(RXP_MAX_HAVE * RFP_HASH_LEN);
    g_autofree uint8_t *bm = g_malloc(rxp_have_reply_size(RXP_MAX_HAVE));
    g_autofree uint8_t *page = g_malloc(psize);
    g_autoptr(GPtrArray) runs = g_ptr_array_new();
    g_autoptr(GPtrArray) held = g_ptr_array_new();

    for (guint i = 0; i < all->len; i++) {
        if (!g_array_index(all, CrRun, i).placed) {
            g_ptr_array_add(runs, &g_array_index(all, CrRun, i));
        }
    }
    /* which of the hashes still wanted it holds */
    for (guint i = 0; i < runs->len; i += RXP_MAX_HAVE) {
        uint32_t n = MIN(runs->len - i, RXP_MAX_HAVE);

        run_hashes(d, runs, i, n, hashes);
        if (!export_request(fd, RXP_OP_HAVE, hashes, n) ||
            !io_all(fd, bm, rxp_have_reply_size(n), false) ||
            !rxp_have_bitmap_valid(bm, n)) {
            return false;
        }
        for (uint32_t j = 0; j < n; j++) {
            if (rxp_have_bit(bm, j)) {
                g_ptr_array_add(held, g_ptr_array_index(runs, i + j));
            }
        }
    }
    /* their pages, each checked */
    for (guint i = 0; i < held->len; i += RXP_MAX_GET) {
        uint32_t n = MIN(held->len - i, RXP_MAX_GET);

        run_hashes(d, held, i, n, hashes);
        if (!export_request(fd, RXP_OP_GET, hashes, n)) {
            return false;
        }
        for (uint32_t j = 0; j < n; j++) {
            CrRun *run = g_ptr_array_index(held, i + j);
            uint8_t st, now[RFP_HASH_LEN];

            if (!io_all(fd, &st, 1, false) || !rxp_status_valid(st)) {
                return false;
            }
            if (st != RXP_GOT) {
                common_regions.info.pages_refused += run->to - run->from;
                continue;
            }
            if (!io_all(fd, page, psize, false)) {
                return false;
            }
            common_regions_sha256(page, psize, now);
            if (memcmp(now, hashes + j * RFP_HASH_LEN, RFP_HASH_LEN)) {
                /* never placed: the source sends the page */
                common_regions.info.pages_refused += run->to - run->from;
                trace_common_regions_mismatch(run->to - run->from);
                continue;
            }
            place(d, run, page);
        }
    }
    return true;
}

typedef struct CrLoadJob {
    const uint8_t *buf;
    size_t len;
    CrDest d;
    char *error;
} CrLoadJob;

/* In a worker thread when the load runs in a coroutine */
static int cr_load_worker(void *opaque)
{
    CrLoadJob *job = opaque;
    CrDest *d = &job->d;
    const char *exporters = migrate_common_regions_exporters();
    g_auto(GStrv) paths = g_strsplit(exporters ? exporters : "", ",", -1);
    g_autoptr(GArray) runs = g_array_new(false, false, sizeof(CrRun));
    static const RfpVisitor visitor = { dest_block, dest_region };
    const char *err = NULL;
    RfpHeader hdr;

    /* the block count first, for the per-block arrays */
    if (!rfp_scan(job->buf, job->len, &hdr, NULL, NULL, NULL, &err)) {
        job->error = g_strdup_printf("the source's fingerprint is not "
                                     "valid: %s", err);
        return -EINVAL;
    }
    if (hdr.geo.page_shift != qemu_target_page_bits()) {
        job->error = g_strdup("the source's fingerprint has another page "
                              "size");
        return -EINVAL;
    }
    d->nr_blocks = hdr.nr_blocks;
    d->rb = g_new0(RAMBlock *, d->nr_blocks);
    d->placed = g_new0(unsigned long *, d->nr_blocks);
    d->npages = g_new0(uint64_t, d->nr_blocks);
    d->want = g_array_new(false, false, sizeof(CrWant));
    WITH_RCU_READ_LOCK_GUARD() {
        rfp_scan(job->buf, job->len, &hdr, &visitor, d, NULL, &err);
    }
    common_regions.info.pages_offered = d->want->len;
    g_array_sort(d->want, want_cmp);
    /* runs of pages with one hash, asked for once */
    for (guint i = 0; i < d->want->len; i++) {
        CrRun *last = runs->len ? &g_array_index(runs, CrRun, runs->len - 1)
                                : NULL;

        if (last && !want_cmp(&g_array_index(d->want, CrWant, last->from),
                              &g_array_index(d->want, CrWant, i))) {
            last->to = i + 1;
        } else {
            CrRun run = { .from = i, .to = i + 1 };

            g_array_append_val(runs, run);
        }
    }

    for (int e = 0; paths[e] && runs->len; e++) {
        int fd;

        if (!*paths[e]) {
            continue;
        }
        fd = export_open(paths[e]);
        if (fd < 0) {
            continue;
        }
        common_regions.info.exporters++;
        if (!export_take(d, fd, runs)) {
            trace_common_regions_export_failed(paths[e], "broke off");
        }
        close(fd);
    }
    return 0;
}

static void cr_send_held(MigrationIncomingState *mis, CrDest *d)
{
    uint8_t buf[RXP_HELD_MAX_LEN];
    RxpHeld m = { .kind = RXP_HELD_PAGES };

    for (uint32_t b = 0; b < d->nr_blocks; b++) {
        uint64_t nbytes = DIV_ROUND_UP(d->npages[b], 8);

        if (!d->rb[b]) {
            continue;
        }
        /* the bitmap as bytes, lowest page first, skipping empty chunks */
        for (uint64_t off = 0; off < nbytes; off += RXP_HELD_MAX_BYTES) {
            uint8_t chunk[RXP_HELD_MAX_BYTES];
            uint16_t n = MIN(nbytes - off, RXP_HELD_MAX_BYTES);

            for (uint16_t i = 0; i < n; i++) {
                uint64_t first = (off + i) * 8;

                chunk[i] = 0;
                for (int bit = 0; bit < 8; bit++) {
                    if (first + bit < d->npages[b] &&
                        test_bit(first + bit, d->placed[b])) {
                        chunk[i] |= 1u << bit;
                    }
                }
            }
            if (buffer_is_zero(chunk, n)) {
                continue;
            }
            m.block = b;
            m.first_page = off * 8;
            m.bytes = n;
            m.bitmap = chunk;
            migrate_send_rp_common_regions(mis, buf, rxp_held_encode(buf,
                                                                     &m));
        }
    }
    m = (RxpHeld) { .kind = RXP_HELD_DONE,
                    .pages = common_regions.info.pages_held };
    migrate_send_rp_common_regions(mis, buf, rxp_held_encode(buf, &m));
}

static void cr_dest_free(CrDest *d)
{
    for (uint32_t b = 0; b < d->nr_blocks; b++) {
        g_free(d->placed[b]);
    }
    g_free(d->placed);
    g_free(d->rb);
    g_free(d->npages);
    if (d->want) {
        g_array_free(d->want, true);
    }
}

static int cr_load_state(QEMUFile *f, void *opaque, int version_id)
{
    MigrationIncomingState *mis = migration_incoming_get_current();
    CrLoadJob job = { 0 };
    g_autofree uint8_t *buf = NULL;
    uint64_t len, limit;
    int64_t start;
    int ret;

    switch (qemu_get_byte(f)) {
    case CR_SETUP:
        memset(&common_regions.info, 0, sizeof(common_regions.info));
        return qemu_file_get_error(f);
    case CR_FINGERPRINT:
        break;
    default:
        error_report("common-regions: unknown record");
        return -EINVAL;
    }
    /* 32 bytes per page and 48 per region at most, and the headers */
    limit = (ram_bytes_total() >> qemu_target_page_bits()) *
            (RFP_HASH_LEN + 48 + 8) + 256 * 300 + 1 * MiB;
    len = qemu_get_be64(f);
    if (len > limit) {
        error_report("common-regions: a fingerprint of %" PRIu64 " bytes "
                     "for %" PRIu64 " bytes of RAM", len, ram_bytes_total());
        return -EINVAL;
    }
    buf = g_malloc(len);
    if (qemu_get_buffer(f, buf, len) != len) {
        return qemu_file_get_error(f) ?: -EIO;
    }
    start = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    job.buf = buf;
    job.len = len;
    if (qemu_in_coroutine()) {
        ret = thread_pool_submit_co(cr_load_worker, &job);
    } else {
        ret = cr_load_worker(&job);
    }
    if (ret < 0) {
        error_report("common-regions: %s", job.error);
        g_free(job.error);
        cr_dest_free(&job.d);
        return ret;
    }
    common_regions.info.setup_time = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) -
                                     start;
    trace_common_regions_placed(common_regions.info.pages_held,
                                common_regions.info.pages_refused,
                                common_regions.info.exporters,
                                common_regions.info.setup_time);
    cr_send_held(mis, &job.d);
    cr_dest_free(&job.d);
    return 0;
}

static SaveVMHandlers savevm_common_regions_handlers = {
    .save_setup = cr_save_setup,
    .save_live_iterate = cr_save_iterate,
    .save_cleanup = cr_save_cleanup,
    .is_active = cr_is_active,
    .is_active_iterate = cr_is_active_iterate,
    .load_state = cr_load_state,
};

void common_regions_mig_init(void)
{
    qemu_mutex_init(&common_regions.lock);
    qemu_sem_init(&common_regions.done_sem, 0);
    register_savevm_live("common-regions", 0, 1,
                         &savevm_common_regions_handlers, NULL);
}

void common_regions_populate_info(MigrationInfo *info)
{
    info->common_regions = g_memdup2(&common_regions.info,
                                     sizeof(common_regions.info));
}
