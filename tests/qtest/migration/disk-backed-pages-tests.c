/*
 * QTest testcases for the disk-backed-pages migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The x86 bootblock guest never touches guest RAM above 100 MiB.  The
 * tests plant copies of disk blocks there and publish a map of them as
 * a guest driver would (docs/devel/migration/disk-backed-pages.rst),
 * migrate, and compare every planted page on the destination.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/bootfile.h"
#include "migration/fault-util.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "qemu/bswap.h"
#include "libqos/ahci.h"
#include "libqos/libqos-malloc.h"
#include "libqos/libqos-pc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_blk.h"
#include "standard-headers/linux/virtio_ring.h"

#define PAGE            4096
#define MiB             (1024 * 1024)
#define DISK_SIZE       (16 * MiB)
#define MAP_GPA         (101 * MiB)
#define PLANT_GPA       (102 * MiB)
#define PLANT_PAGES     1024            /* 4 MiB */
#define FIRST_FRAME     100             /* planted page i copies frame 100+i */
/* records with something to check */
#define MODIFIED_PAGE   5               /* modified flag set: in full */
/* names another frame: refused, and as late as possible */
#define WRONG_PAGE      (PLANT_PAGES - 1)
#define WRONG_FRAME     3000
#define REWRITTEN_PAGE  20              /* its frame is written meanwhile */
#define BAD_RECORDS     7               /* ignored, see map_build() */
#define NODE            "shared0"
/* a first pass of about 5 s, so that the disk write lands before it */
#define SLOW_BYTES_PER_SEC  (32 * MiB)

static char *tmpfs;
/* dest_start_with() starts QEMUs with out-of-band QMP (migrate-recover) */
static bool start_oob;
/* dest_start_with() gives both QEMUs these options as well */
static const char *both_opts;

/* The content of disk frame @f: never zero, different for every frame */
static void frame_fill(uint8_t *buf, uint64_t f)
{
    for (int i = 0; i < PAGE; i++) {
        buf[i] = (uint8_t)(f * 7 + i * 13 + 1) | 1;
    }
    memcpy(buf, &f, sizeof(f));
}

static char *disk_create(void)
{
    g_autofree uint8_t *disk = g_malloc(DISK_SIZE);
    char *path = g_strdup_printf("%s/disk-backed.img", tmpfs);

    for (uint64_t f = 0; f < DISK_SIZE / PAGE; f++) {
        frame_fill(disk + f * PAGE, f);
    }
    g_assert(g_file_set_contents(path, (char *)disk, DISK_SIZE, NULL));
    return path;
}

/* more options of the raw node, for the next disk_opts() */
static const char *raw_opts = "";

static char *disk_opts(const char *path)
{
    return g_strdup_printf("-blockdev driver=file,node-name=%s-file,"
                           "filename=%s -blockdev driver=raw,node-name=%s,"
                           "file=%s-file%s", NODE, path, NODE, NODE,
                           raw_opts);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = v >> (8 * i);
    }
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = v >> (8 * i);
    }
}

typedef enum {
    MAP_GOOD,
    MAP_SEG_ON_HEADER,
    MAP_SEG_UNALIGNED,
    MAP_SEG_OUTSIDE_RAM,
    MAP_BAD_MAGIC,
    MAP_HUGE_COUNT,
    MAP_ODD_GENERATION,
    MAP_WRONG_NEAR,             /* WRONG_PAGE names frame FIRST_FRAME */
} MapKind;

/*
 * Write the map into guest RAM: one segment of records right after the
 * header page.  Records: the planted pages (one of them modified, one
 * naming a wrong frame), then BAD_RECORDS that must be ignored.
 */
static uint64_t map_build(QTestState *who, MapKind kind)
{
    uint64_t nrec = PLANT_PAGES + BAD_RECORDS;
    g_autofree uint8_t *hdr = g_malloc0(PAGE);
    g_autofree uint8_t *recs = g_malloc0(nrec * 16);
    uint64_t seg = MAP_GPA + PAGE;
    uint8_t *r = recs;

    memcpy(hdr, "QDISKMAP", 8);
    put_le32(hdr + 8, 1);
    put_le32(hdr + 12, 1);
    put_le64(hdr + 16, kind == MAP_ODD_GENERATION ? 3 : 2);
    put_le64(hdr + 24, kind == MAP_HUGE_COUNT ? 1ull << 40 : nrec);
    put_le32(hdr + 32, PAGE);
    put_le32(hdr + 36, PAGE);
    put_le64(hdr + 64, kind == MAP_SEG_ON_HEADER ? MAP_GPA :
                       kind == MAP_SEG_UNALIGNED ? seg + 16 :
                       kind == MAP_SEG_OUTSIDE_RAM ? 8ull << 30 : seg);
    put_le64(hdr + 72, kind == MAP_HUGE_COUNT ? 1ull << 40 : nrec);
    if (kind == MAP_BAD_MAGIC) {
        hdr[0] = 'X';
    }

    for (uint64_t i = 0; i < PLANT_PAGES; i++, r += 16) {
        put_le64(r, (PLANT_GPA + i * PAGE) | (i == MODIFIED_PAGE ? 1 : 0));
        put_le64(r + 8, i != WRONG_PAGE ? FIRST_FRAME + i :
                        kind == MAP_WRONG_NEAR ? FIRST_FRAME : WRONG_FRAME);
    }
    /* a reserved flag */
    put_le64(r, (120 * MiB) | 2);
    put_le64(r + 8, 1);
    r += 16;
    /* one page twice: neither record can be trusted */
    put_le64(r, 121 * MiB);
    put_le64(r + 8, 2);
    r += 16;
    put_le64(r, 121 * MiB);
    put_le64(r + 8, 3);
    r += 16;
    /* outside guest RAM */
    put_le64(r, 8ull << 30);
    put_le64(r + 8, 4);
    r += 16;
    /* beyond the end of the disk */
    put_le64(r, 122 * MiB);
    put_le64(r + 8, DISK_SIZE / PAGE);
    r += 16;
    /* the map's own header page */
    put_le64(r, MAP_GPA);
    put_le64(r + 8, 5);
    r += 16;
    /* read-only RAM: the BIOS, just below 4 GiB */
    put_le64(r, 0xffff0000ull);
    put_le64(r + 8, 6);

    qtest_memwrite(who, MAP_GPA, hdr, PAGE);
    qtest_memwrite(who, seg, recs, nrec * 16);
    return nrec;
}

/* What migrate_end() would remove, for tests that cannot call it */
static void unlink_serials(void)
{
    for (int i = 0; i < 2; i++) {
        g_autofree char *serial = g_strdup_printf("%s/%s_serial", tmpfs,
                                                  i ? "dest" : "src");
        unlink(serial);
    }
}

/*
 * Cancel the migration and wait for its end.  With a return path the
 * end may be "failed": QEMU's migration_cancel() shuts the return path
 * down before it sets CANCELLING, and the migration thread can see the
 * error first.  Either way the source must run on, which the callers
 * check.
 */
static void cancel_migration(QTestState *from)
{
    g_autoptr(GTimer) timer = g_timer_new();

    migrate_cancel(from);
    for (;;) {
        g_autofree char *status = migrate_query_status(from);

        if (g_str_equal(status, "cancelled")) {
            return;
        }
        if (g_str_equal(status, "failed")) {
            g_autoptr(QDict) rsp = migrate_query(from);

            g_test_message("cancelled, but failed first: %s",
                           qdict_get_try_str(rsp, "error-desc") ?: "");
            return;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(10 * 1000);
    }
}

/* Plant the frames into guest RAM, as the guest's page cache would be */
static void plant(QTestState *who)
{
    g_autofree uint8_t *buf = g_malloc(PLANT_PAGES * PAGE);

    for (uint64_t i = 0; i < PLANT_PAGES; i++) {
        frame_fill(buf + i * PAGE, FIRST_FRAME + i);
    }
    qtest_bufwrite(who, PLANT_GPA, buf, PLANT_PAGES * PAGE);
}

/* Every planted page and the map arrived as they are on the source */
static void assert_same_region(QTestState *from, QTestState *to)
{
    uint64_t len = PLANT_GPA + PLANT_PAGES * PAGE - MAP_GPA;
    g_autofree uint8_t *a = migration_pmemsave(from, MAP_GPA, len);
    g_autofree uint8_t *b = migration_pmemsave(to, MAP_GPA, len);

    g_assert_nonnull(a);
    g_assert_nonnull(b);
    for (uint64_t off = 0; off < len; off += PAGE) {
        if (memcmp(a + off, b + off, PAGE)) {
            g_test_message("page at 0x%" PRIx64 " differs",
                           (uint64_t)MAP_GPA + off);
            g_assert_not_reached();
        }
    }
}

/* @p's capabilities and multifd's compression on both sides, then its own */
static void migration_partner_start(QTestState *from, QTestState *to,
                                    const MigrationPartner *p)
{
    for (int i = 0; i < ARRAY_SIZE(p->caps) && p->caps[i]; i++) {
        migrate_set_capability(from, p->caps[i], true);
        migrate_set_capability(to, p->caps[i], true);
    }
    if (p->compression) {
        migrate_set_parameter_str(from, "multifd-compression",
                                  p->compression);
        migrate_set_parameter_str(to, "multifd-compression", p->compression);
    }
    if (p->start) {
        p->start(from, to);
    }
}

/*
 * A partner of the composition matrix (composition-tests.c): TLS,
 * multifd (its two channels, compressed with zstd or not), postcopy,
 * xbzrle with a cache of 32 MiB, or a capability that only the source
 * acts on; or @partner, a capability of another series, set up as that
 * series describes it.
 */
static void *with_start(QTestState *from, QTestState *to, const char *with,
                        const MigrationPartner *partner)
{
    if (partner) {
        migration_partner_start(from, to, partner);
        return NULL;
    }
#ifdef CONFIG_GNUTLS
    if (g_str_equal(with, "tls")) {
        return migrate_hook_start_tls_psk_match(from, to);
    }
#endif
    if (g_str_has_prefix(with, "postcopy")) {
        /* switched to by run_to_postcopy() */
        migrate_set_capability(from, "postcopy-ram", true);
        migrate_set_capability(to, "postcopy-ram", true);
        if (g_str_equal(with, "postcopy-preempt")) {
            migrate_set_capability(from, "postcopy-preempt", true);
            migrate_set_capability(to, "postcopy-preempt", true);
        }
        return NULL;
    }
    if (g_str_equal(with, "xbzrle")) {
        /* the destination decodes XBZRLE pages without it */
        migrate_set_capability(from, with, true);
        migrate_set_parameter_int(from, "xbzrle-cache-size", 32 * MiB);
        return NULL;
    }
    if (g_str_has_prefix(with, "multifd")) {
        const char *compression = g_str_equal(with, "multifd") ?
                                  "none" : "zstd";

        migrate_set_capability(from, "multifd", true);
        migrate_set_capability(to, "multifd", true);
        migrate_set_parameter_str(from, "multifd-compression", compression);
        migrate_set_parameter_str(to, "multifd-compression", compression);
        return NULL;
    }
    migrate_set_capability(from, with, true);
    return NULL;
}

static void with_end(QTestState *from, QTestState *to, const char *with,
                     const MigrationPartner *partner, void *data)
{
    if (partner) {
        if (partner->end) {
            partner->end();
        }
        return;
    }
#ifdef CONFIG_GNUTLS
    if (g_str_equal(with, "tls")) {
        migrate_hook_end_tls_psk(from, to, data);
    }
#endif
}

/*
 * @dst_disk: the destination's own disk, NULL: @disk, shared.  @with or
 * @partner: a partner of the composition matrix to set up as well
 * (with_start()), or NULL; its state in *@with_data.
 * @dst_err: a file for the destination's stderr, or NULL; the source's
 * is then hidden.
 */
static QTestState *dest_start_with(QTestState **from, const char *uri,
                                   const char *disk, const char *dst_disk,
                                   bool dest_cap, bool hide_stderr,
                                   const char *with,
                                   const MigrationPartner *partner,
                                   void **with_data,
                                   const char *dst_err, const char *src_more)
{
    g_autofree char *src_disk = disk_opts(disk);
    g_autofree char *src_opts = g_strdup_printf("%s %s", src_disk,
                                                both_opts ?: "");
    g_autofree char *opts = g_strdup_printf("%s %s%s", src_opts,
                                            src_more ?: "",
                                            dst_err ? " 2>/dev/null" : "");
    g_autofree char *dst_disk_opts = disk_opts(dst_disk ?: disk);
    g_autofree char *dst_opts = g_strdup_printf("%s %s", dst_disk_opts,
                                                both_opts ?: "");
    g_autofree char *dst_redirect = g_strdup_printf("%s 2>%s", dst_opts,
                                                    dst_err ?: "/dev/null");
    MigrateStart args = {
        .opts_source = opts,
        .opts_target = dst_err ? dst_redirect : dst_opts,
        .hide_stderr = hide_stderr && !dst_err,
        /* the guest only has to write: many times faster than KVM nested */
        .tcg = true,
        .oob = start_oob,
        .boot_virtio_blk = partner && partner->boot_virtio_blk,
    };
    QTestState *to;

    if (migrate_start(from, &to, "defer", &args)) {
        return NULL;
    }
    migrate_set_capability(*from, "return-path", true);
    migrate_set_capability(*from, "disk-backed-pages", true);
    migrate_set_parameter_str(*from, "disk-backed-node", NODE);
    migrate_set_capability(to, "return-path", true);
    if (dest_cap) {
        migrate_set_capability(to, "disk-backed-pages", true);
        migrate_set_parameter_str(to, "disk-backed-node", NODE);
    }
    if (with || partner) {
        *with_data = with_start(*from, to, with, partner);
    }
    migrate_incoming_qmp(to, uri, NULL, "{}");
    return to;
}

static QTestState *dest_start(QTestState **from, const char *uri,
                              const char *disk, bool dest_cap)
{
    return dest_start_with(from, uri, disk, NULL, dest_cap, !dest_cap,
                           NULL, NULL, NULL, NULL, NULL);
}

/*
 * Migrate with a running guest; references go in the first pass only,
 * so let it converge only after that
 */
static void migrate_after_first_pass(QTestState *from, QTestState *to,
                                     const char *uri)
{
    migrate_qmp(from, to, uri, NULL, "{}");
    while (read_ram_property_int(from, "dirty-sync-count") < 2) {
        g_usleep(20 * 1000);
    }
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
}

static void run_to_completion(QTestState *from, QTestState *to,
                              const char *uri)
{
    migrate_after_first_pass(from, to, uri);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");
}

/*
 * Planted pages go as references and arrive verified; the modified
 * record, the frame written during the migration and the wrong frame
 * (refused, re-sent) go in full; bad records are ignored.
 */
static void test_disk_backed_refs(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to;
    uint64_t refs;
    char *hmp;

    to = dest_start(&from, uri, disk, true);
    if (!to) {
        return;
    }
    plant(from);
    map_build(from, MAP_GOOD);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    migrate_set_parameter_int(from, "max-bandwidth", SLOW_BYTES_PER_SEC);
    wait_for_serial("src_serial");
    /*
     * With the guest stopped the source is ready to switch over as soon
     * as the first pass has sent the references, maybe before the
     * destination has checked the last one, the refused one.
     */
    qtest_qmp_assert_success(from, "{ 'execute' : 'stop'}");

    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    /* the guest's frame changes on the shared disk: the page goes in full */
    hmp = qtest_hmp(from, "qemu-io " NODE " \"write -P 0x5a %d %d\"",
                    (FIRST_FRAME + REWRITTEN_PAGE) * PAGE, PAGE);
    g_assert_cmpstr(hmp, !=, NULL);
    g_free(hmp);
    wait_for_migration_complete(from);
    qtest_qmp_assert_success(to, "{ 'execute' : 'cont'}");
    wait_for_resume(to, get_dst());
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    refs = qdict_get_int(src, "pages-referenced");
    g_test_message("source: map %s, %" PRId64 " records, %" PRId64
                   " ignored, %" PRId64 " modified, %" PRIu64
                   " referenced, %" PRId64 " bytes saved, %" PRId64
                   " refused; destination: %" PRId64 " referenced, %"
                   PRId64 " refused, %" PRId64 " bytes read",
                   qdict_get_str(src, "map-status"),
                   qdict_get_int(src, "map-records"),
                   qdict_get_int(src, "map-ignored"),
                   qdict_get_int(src, "map-modified"), refs,
                   qdict_get_int(src, "bytes-saved"),
                   qdict_get_int(src, "references-refused"),
                   qdict_get_int(dst, "pages-referenced"),
                   qdict_get_int(dst, "references-refused"),
                   qdict_get_int(dst, "disk-bytes-read"));
    g_assert_cmpstr(qdict_get_str(src, "map-status"), ==, "ok");
    g_assert_cmpint(qdict_get_int(src, "map-records"), ==, PLANT_PAGES - 1);
    g_assert_cmpint(qdict_get_int(src, "map-ignored"), ==, BAD_RECORDS);
    g_assert_cmpint(qdict_get_int(src, "map-modified"), ==, 1);
    /* all but the modified and the rewritten one */
    g_assert_cmpint(refs, ==, PLANT_PAGES - 2);
    g_assert_cmpint(qdict_get_int(src, "references-refused"), ==, 1);
    g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 1);
    g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==, refs - 1);
    /* read in windows around the frames: about what was referenced */
    g_assert_cmpint(qdict_get_int(dst, "disk-bytes-read"), >=,
                    (refs - 1) * PAGE);
    g_assert_cmpint(qdict_get_int(dst, "disk-bytes-read"), <,
                    2 * refs * PAGE);
    g_assert_cmpint(qdict_get_int(src, "bytes-saved"), >, refs * (PAGE - 64));

    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "Disk-backed pages: \tmap ok"));
    g_free(hmp);

    assert_same_region(from, to);
    migrate_end(from, to, true);
    unlink(disk);
}

/*
 * Error paths of the destination's checks, reached with the fault
 * injector (fault-inject.c) or a disk of the destination's own.
 */

/* The RAM block of the planted pages, named in DISK_REF_NACK */
#define RAM_ID "mig.mem"
/* the return path message (4 bytes) of a DISK_REF_NACK of RAM_ID */
#define NACK_SIZE (4 + 8 + 1 + strlen(RAM_ID))

/*
 * Switch to postcopy in the first pass: @early, before it has reached
 * the planted pages, which must then all come in full, through
 * postcopy.  Otherwise as soon as the source has sent the last
 * reference, the refused one, while the destination holds its refusal
 * (the caller's fault rule).  The refusal then reaches the source
 * after the last iteration took the refusals in, while the source
 * waits for the destination to read on: only the refused pages marked
 * dirty again before postcopy's discards keep the destination from
 * running the page it refused (it fails instead, at listen).
 */
static void run_to_postcopy(QTestState *from, QTestState *to,
                            const char *uri, bool early)
{
    g_autoptr(GTimer) timer = g_timer_new();

    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    for (;;) {
        if (early) {
            if (read_ram_property_int(from, "transferred") >= 16 * MiB) {
                break;
            }
        } else {
            g_autoptr(QDict) st = migrate_query_member(from,
                                                       "disk-backed-pages");

            /* all but the modified one */
            if (qdict_get_int(st, "pages-referenced") >= PLANT_PAGES - 1) {
                break;
            }
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(1000);
    }
    migrate_postcopy_start(from, to, get_src());
    wait_for_migration_complete(from);
    wait_for_serial("dest_serial");
}

typedef struct DiskFault {
    const char *rule;           /* for the destination, without its pid */
    const char *call;           /* which it must have failed, once at least */
    const char *dst_disk;       /* the destination's own disk, or NULL */
    MapKind kind;
    bool fails;                 /* the migration must fail */
    bool cancel;                /* cancelled once a reference is refused */
    const char *error;          /* in the source's error-desc, with fails */
    const char *with;           /* with_start()'s, or NULL */
    const MigrationPartner *partner;    /* or another series' */
    const char *dst_says;       /* on the destination's stderr, with fails */
    const char *src_opts;       /* more of the source's command line */
    bool early;                 /* with postcopy: run_to_postcopy()'s */
} DiskFault;

/*
 * Migrate the live guest with the planted pages and their map.  It must
 * complete with every planted page compared, or with @f->fails, fail
 * with the source running on and the destination exiting with failure.
 * Returns the destination's disk-backed-pages statistics, or NULL.
 */
static QDict *do_test_disk_fault(const DiskFault *f)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *dst_err = g_strdup_printf("%s/dst.err", tmpfs);
    const char *never[] = { "completed", "cancelled", "postcopy-active",
                            NULL };
    bool postcopy = f->with && g_str_has_prefix(f->with, "postcopy");
    g_autoptr(GTimer) timer = g_timer_new();
    g_autoptr(QDict) src = NULL;
    QDict *dst = NULL;
    QTestState *from, *to;
    void *with_data = NULL;
    pid_t dst_pid;

    if (f->rule && !fault_preload(rules)) {
        return NULL;
    }
    to = dest_start_with(&from, uri, disk, f->dst_disk, true,
                         f->fails || f->cancel, f->with, f->partner,
                         &with_data,
                         f->dst_says ? dst_err : NULL, f->src_opts);
    fault_preload_end();
    if (!to) {
        return NULL;
    }
    dst_pid = qtest_pid(to);
    if (f->rule) {
        fault_arm(rules, "%d %s\n", dst_pid, f->rule);
    }
    plant(from);
    map_build(from, f->kind);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    /* a first pass of about 2 s, which cannot converge */
    migrate_set_parameter_int(from, "max-bandwidth", 64 * MiB);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    if (f->cancel) {
        qtest_set_expected_status(to, EXIT_FAILURE);
        migrate_qmp(from, to, uri, NULL, "{}");
        wait_for_migration_status(from, "active", NULL);
        for (;;) {
            g_autoptr(QDict) st = migrate_query_member(from,
                                                       "disk-backed-pages");

            if (qdict_get_int(st, "references-refused")) {
                break;
            }
            g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
            g_usleep(1000);
        }
        cancel_migration(from);
        qtest_wait_qemu(to);
        qtest_quit(to);
        migration_assert_guest_writes(from);
        qtest_quit(from);
        unlink_serials();
    } else if (f->fails) {
        qtest_set_expected_status(to, EXIT_FAILURE);
        migrate_qmp(from, to, uri, NULL, "{}");
        while (read_ram_property_int(from, "dirty-sync-count") < 2) {
            g_usleep(20 * 1000);
        }
        if (postcopy) {
            qtest_qmp_assert_success(from, "{ 'execute': "
                                     "'migrate-start-postcopy' }");
        } else {
            migrate_ensure_converge(from);
        }
        wait_for_migration_status(from, "failed", never);
        src = migrate_query(from);
        g_test_message("source failed with: %s",
                       qdict_get_str(src, "error-desc"));
        if (f->error) {
            g_assert_nonnull(strstr(qdict_get_str(src, "error-desc"),
                                    f->error));
        }
        qtest_wait_qemu(to);
        if (f->dst_says) {
            g_autofree char *said = NULL;

            g_assert_true(g_file_get_contents(dst_err, &said, NULL, NULL));
            g_test_message("destination said: %s", said);
            g_assert_nonnull(strstr(said, f->dst_says));
            unlink(dst_err);
        }
        qtest_quit(to);
        migration_assert_guest_writes(from);
        qtest_quit(from);
        unlink_serials();
    } else {
        if (postcopy) {
            run_to_postcopy(from, to, uri, f->early);
        } else {
            run_to_completion(from, to, uri);
        }
        src = migrate_query_member(from, "disk-backed-pages");
        dst = migrate_query_member(to, "disk-backed-pages");
        g_test_message("source: %" PRId64 " referenced, %" PRId64
                       " refused; destination: %" PRId64 " referenced, %"
                       PRId64 " refused", qdict_get_int(src,
                       "pages-referenced"),
                       qdict_get_int(src, "references-refused"),
                       qdict_get_int(dst, "pages-referenced"),
                       qdict_get_int(dst, "references-refused"));
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==,
                        qdict_get_int(src, "references-refused"));
        g_assert_cmpint(qdict_get_int(dst, "pages-referenced") +
                        qdict_get_int(dst, "references-refused"), ==,
                        qdict_get_int(src, "pages-referenced"));
        /* the refused pages came in full */
        assert_same_region(from, to);
        if (f->with || f->partner) {
            with_end(from, to, f->with, f->partner, with_data);
        }
        migrate_end(from, to, true);
    }
    if (f->rule) {
        g_assert_cmpint(fault_hits(rules, dst_pid, f->call), >, 0);
        fault_cleanup(rules);
    }
    unlink(disk);
    return dst;
}

/* The destination's every read of the disk fails with EIO */
static char *read_fails_rule(void)
{
    return g_strdup_printf("pread /disk-backed.img 0 %d 0 0 -1", EIO);
}

/*
 * The destination cannot read the disk: every reference is refused, and
 * the source sends the page in full, with @with or @partner
 * (with_start()) on as well, or neither.
 */
static void do_test_fault_read(const char *with,
                               const MigrationPartner *partner)
{
    g_autofree char *rule = read_fails_rule();
    DiskFault f = { .rule = rule, .call = "pread", .with = with,
                    .partner = partner };
    g_autoptr(QDict) dst = do_test_disk_fault(&f);

    if (dst) {
        g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), >=,
                        PLANT_PAGES - 2);
    }
}

static void test_disk_backed_fault_read(void)
{
    do_test_fault_read(NULL, NULL);
}

/*
 * The same with multifd: the refused pages come in full through its
 * channels, and its receive threads must clear them from the pending
 * pages, or the destination fails at the end of the stream.
 */
static void test_disk_backed_fault_read_multifd(void)
{
    do_test_fault_read("multifd", NULL);
}

/*
 * The same with another series' capability on as well, for that
 * series' tests: a capability that sends pages by another path must
 * clear the refused pages it sends in full from the pending pages.
 */
void migration_test_disk_backed_fault_read(const MigrationPartner *partner)
{
    do_test_fault_read(NULL, partner);
}

/*
 * The same, cancelled as soon as the first refusal reaches the source:
 * the return path still brings refusals while the source cleans up,
 * which must not touch its freed records (defect 2 of the hardening;
 * the window is too narrow for a deterministic test, so run this one
 * under an --enable-asan build too).  The source runs on.
 */
static void test_disk_backed_fault_read_cancel(void)
{
    g_autofree char *rule = read_fails_rule();
    DiskFault f = { .rule = rule, .call = "pread", .cancel = true };

    do_test_disk_fault(&f);
}

/*
 * A reference whose block does not match what was read a while ago is
 * read again (one page, 4096 bytes), and that read fails (EIO): the
 * page is refused and sent in full.  The wrong page names frame
 * FIRST_FRAME, whose window the first planted page read.
 */
static void test_disk_backed_fault_reread(void)
{
    g_autofree char *rule = g_strdup_printf("pread /disk-backed.img %d %d 0 "
                                            "0 -1", PAGE, EIO);
    DiskFault f = { .rule = rule, .call = "pread", .kind = MAP_WRONG_NEAR };
    g_autoptr(QDict) dst = do_test_disk_fault(&f);

    if (dst) {
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 1);
    }
}

/*
 * The destination's disk is smaller, its end in the middle of the
 * planted frames (a disk that shrank, or a resize the destination's
 * host has not seen): the references to frames past its end are
 * refused and the pages sent in full.
 */
static void test_disk_backed_fault_shrunk(void)
{
    const uint64_t frames = FIRST_FRAME + PLANT_PAGES / 2;
    g_autofree char *small = g_strdup_printf("%s/disk-backed-small.img",
                                             tmpfs);
    g_autofree char *disk = disk_create();
    DiskFault f = { .dst_disk = small };
    g_autoptr(QDict) dst = NULL;

    g_assert_cmpint(truncate(disk, frames * PAGE), ==, 0);
    g_assert_cmpint(rename(disk, small), ==, 0);
    dst = do_test_disk_fault(&f);
    if (dst) {
        /* the frames from @frames on, and the wrong page's */
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==,
                        FIRST_FRAME + PLANT_PAGES - 1 - frames + 1);
    }
    unlink(small);
}

/*
 * A DISK_REF_NACK is lost on the way (the destination's send of it is
 * dropped): the source never sends that page in full, and the
 * destination, with a page it could not verify still pending at the end
 * of the stream, fails instead of running it; the source runs on.
 */
static void test_disk_backed_fault_nack_lost(void)
{
    g_autofree char *rule = g_strdup_printf("sendmsg * %zu -1 0 0 -1",
                                            NACK_SIZE);
    DiskFault f = { .rule = rule, .call = "sendmsg", .fails = true,
                    .error = "Sibling indicated error",
                    .dst_says = "page(s) whose disk reference was refused "
                                "never arrived in full" };

    do_test_disk_fault(&f);
}

/*
 * The PONG that closes the references never comes (the destination's
 * send of it fails with EPIPE): the source gives up, after 5 s here
 * (60 s by default), fails and runs on.
 */
static void test_disk_backed_fault_pong_lost(void)
{
    g_autofree char *rule = g_strdup_printf("sendmsg * 8 %d 0 0 -1", EPIPE);
    DiskFault f = { .rule = rule, .call = "sendmsg", .fails = true,
                    .src_opts = "-global migration.x-disk-backed-close-timeout"
                                "=5000",
                    .error = "the destination did not check its references "
                             "within 5.0 s" };

    do_test_disk_fault(&f);
}

/*
 * The same when postcopy starts: its start closes the references, with
 * the guest still running, and gives up the same way.
 */
static void test_disk_backed_fault_pong_lost_postcopy(void)
{
    g_autofree char *rule = g_strdup_printf("sendmsg * 8 %d 0 0 -1", EPIPE);
    DiskFault f = { .rule = rule, .call = "sendmsg", .fails = true,
                    .with = "postcopy-ram",
                    .src_opts = "-global migration.x-disk-backed-close-timeout"
                                "=5000",
                    .error = "the destination did not check its references "
                             "within 5.0 s" };

    do_test_disk_fault(&f);
}

/*
 * With multifd the destination checks references in a pool of threads
 * while multifd's threads load pages.  Here every check is slowed (each
 * read of a page takes 3 ms), and as soon as all references are sent:
 *
 * @rewrite: the guest rewrites every planted page, and the new pages go
 * in full, through multifd, in the next round.  The destination must
 * wait for the checks at multifd's sync between the rounds; otherwise a
 * late check writes the disk's old copy over the new page.
 *
 * Otherwise the migration switches over at once, in its first round
 * (the guest's RAM after the planted pages is filled, and sent at
 * 32 MiB/s, so that the round lasts): the destination must wait for the
 * checks before it answers the source's ping, not only at multifd's
 * syncs, or the refusal of the last reference comes after the pong, too
 * late to be sent again, and the destination fails.
 */
static void do_test_multifd_checks(bool rewrite)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree uint8_t *buf = g_malloc(PLANT_PAGES * PAGE);
    g_autoptr(GTimer) timer = g_timer_new();
    QTestState *from, *to;
    void *with_data;
    int64_t syncs;
    pid_t dst_pid;

    if (!fault_preload(rules)) {
        return;
    }
    to = dest_start_with(&from, uri, disk, NULL, true, false, "multifd",
                         NULL, &with_data, NULL, NULL);
    fault_preload_end();
    if (!to) {
        return;
    }
    dst_pid = qtest_pid(to);
    fault_arm(rules, "%d pread /disk-backed.img %d 0 3 0 -1\n", dst_pid,
              PAGE);
    plant(from);
    map_build(from, MAP_GOOD);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    if (!rewrite) {
        /* 40 MiB to send after the planted pages, in the same round */
        for (uint64_t i = 0; i < PLANT_PAGES; i++) {
            frame_fill(buf + i * PAGE, i + 1);
        }
        for (uint64_t gpa = 108 * MiB; gpa < 148 * MiB;
             gpa += PLANT_PAGES * PAGE) {
            qtest_bufwrite(from, gpa, buf, PLANT_PAGES * PAGE);
        }
        migrate_set_parameter_int(from, "max-bandwidth", 32 * MiB);
    }
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    for (;;) {
        g_autoptr(QDict) st = migrate_query_member(from, "disk-backed-pages");

        /* all but the modified one */
        if (qdict_get_int(st, "pages-referenced") >= PLANT_PAGES - 1) {
            break;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(1000);
    }
    if (rewrite) {
        for (uint64_t i = 0; i < PLANT_PAGES; i++) {
            frame_fill(buf + i * PAGE, FIRST_FRAME + PLANT_PAGES + i);
        }
        qtest_bufwrite(from, PLANT_GPA, buf, PLANT_PAGES * PAGE);
        /* a round that sends them, before the switchover waits for checks */
        syncs = read_ram_property_int(from, "dirty-sync-count");
        while (read_ram_property_int(from, "dirty-sync-count") < syncs + 2) {
            g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
            g_usleep(1000);
        }
        migrate_ensure_converge(from);
    } else {
        /* at 32 MiB/s still: the round is not over */
        migrate_set_parameter_int(from, "downtime-limit", 30 * 1000);
    }
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");
    assert_same_region(from, to);
    if (!rewrite) {
        g_autoptr(QDict) st = migrate_query_member(to, "disk-backed-pages");

        g_assert_cmpint(qdict_get_int(st, "references-refused"), ==, 1);
    }
    with_end(from, to, "multifd", NULL, with_data);
    migrate_end(from, to, true);
    g_assert_cmpint(fault_hits(rules, dst_pid, "pread"), >, 0);
    fault_cleanup(rules);
    unlink(disk);
}

static void test_disk_backed_multifd_rewritten(void)
{
    do_test_multifd_checks(true);
}

static void test_disk_backed_multifd_refused_late(void)
{
    do_test_multifd_checks(false);
}

/*
 * The composition matrix (composition-tests.c): a live migration with
 * references, the pages behind them and the rest checked, with another
 * feature on as well: @with, one with_start() knows, or @partner,
 * another series' capability.
 */
void migration_test_disk_backed_with(const char *with,
                                     const MigrationPartner *partner)
{
    /* with postcopy, the refusal comes late, while postcopy starts */
    g_autofree char *late_nack = g_strdup_printf("sendmsg * %zu 0 500 0 1",
                                                 NACK_SIZE);
    bool postcopy = with && g_str_has_prefix(with, "postcopy");
    DiskFault f = {
        .with = with,
        .partner = partner,
        .rule = postcopy ? late_nack : NULL,
        .call = "sendmsg",
    };
    g_autoptr(QDict) dst = do_test_disk_fault(&f);

    if (dst) {
        g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), >, 0);
        if (postcopy) {
            /* ... and its page came through postcopy, checked above */
            g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 1);
        }
    }
}

/*
 * Postcopy (@with: postcopy-ram, or postcopy-preempt, whose channel the
 * refused page takes) starts before the first pass reaches the planted
 * pages: the source sends no reference in the stream after that
 * (postcopy's loader takes none), but names the planted pages in
 * postcopy's table, and the destination places them from the disk.
 * The one that names a wrong frame is refused and comes in full;
 * assert_same_region() checked them all.
 */
static void do_test_postcopy_early(const char *with)
{
    DiskFault f = { .with = with, .early = true };
    g_autoptr(QDict) dst = do_test_disk_fault(&f);

    if (dst) {
        /* all but the modified one went in the table */
        g_assert_cmpint(qdict_get_int(dst, "postcopy-references"), ==,
                        PLANT_PAGES - 2);
        g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==,
                        PLANT_PAGES - 2);
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 1);
    }
}

static void test_disk_backed_postcopy_early(void)
{
    do_test_postcopy_early("postcopy-ram");
}

static void test_disk_backed_postcopy_preempt_early(void)
{
    do_test_postcopy_early("postcopy-preempt");
}

/*
 * The same when the destination cannot read the disk: it refuses every
 * page of the table, and the source sends each at once.
 */
static void test_disk_backed_postcopy_read_fails(void)
{
    g_autofree char *rule = read_fails_rule();
    DiskFault f = { .rule = rule, .call = "pread", .with = "postcopy-ram",
                    .early = true };
    g_autoptr(QDict) dst = do_test_disk_fault(&f);

    if (dst) {
        g_assert_cmpint(qdict_get_int(dst, "postcopy-references"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==,
                        PLANT_PAGES - 1);
    }
}

/*
 * Start a migration with postcopy's table while the destination's walk
 * through it is slow (every read of 1 MiB, the walk's, takes 500 ms),
 * and switch to postcopy in the first pass, before the planted pages.
 * Returns the destination, or NULL.
 */
static QTestState *start_slow_table(QTestState **from, const char *disk,
                                    const char *uri, const char *rules,
                                    bool oob, void **with_data,
                                    pid_t *dst_pid)
{
    g_autoptr(GTimer) timer = g_timer_new();
    QTestState *to;

    if (!fault_preload(rules)) {
        return NULL;
    }
    start_oob = oob;
    to = dest_start_with(from, uri, disk, NULL, true, false,
                         "postcopy-ram", NULL, with_data, NULL, NULL);
    start_oob = false;
    fault_preload_end();
    if (!to) {
        return NULL;
    }
    *dst_pid = qtest_pid(to);
    fault_arm(rules, "%d pread /disk-backed.img %d 0 500 0 -1 mig/dst/refs\n",
              *dst_pid, 1024 * 1024);
    plant(*from);
    map_build(*from, MAP_GOOD);
    migrate_set_parameter_int(*from, "disk-backed-map", MAP_GPA);
    migrate_set_parameter_int(*from, "max-bandwidth", 64 * MiB);
    wait_for_serial("src_serial");
    migrate_qmp(*from, to, uri, NULL, "{}");
    wait_for_migration_status(*from, "active", NULL);
    while (read_ram_property_int(*from, "transferred") < 16 * MiB) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(1000);
    }
    migrate_postcopy_start(*from, to, get_src());
    return to;
}

/*
 * Postcopy's table while the destination's walk through it is slow
 * (every read of 1 MiB, the walk's, takes 500 ms): a page the guest
 * needs is placed before the walk gets there, read on its own, with no
 * request to the source (which has no dirty page to answer it with: the
 * walk would place it after all others).  And the source completes
 * only once the walk is done; otherwise the pages not yet placed would
 * read as zeros when postcopy ends.
 */
static void test_disk_backed_postcopy_fault(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree uint8_t *want = g_malloc(PAGE);
    g_autofree uint8_t *got = g_malloc(PAGE);
    g_autoptr(GTimer) timer = g_timer_new();
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    g_autofree char *status = NULL;
    /* the last planted page is the last in the disk's order */
    uint64_t i = PLANT_PAGES - 2;
    QTestState *from, *to;
    void *with_data;
    pid_t dst_pid;
    int64_t placed;
    g_autofree char *said = NULL;
    char *hmp;

    to = start_slow_table(&from, disk, uri, rules, false, &with_data,
                          &dst_pid);
    if (!to) {
        return;
    }

    /* faults on a page of the table, in the destination's main thread */
    qtest_memread(to, PLANT_GPA + i * PAGE, got, PAGE);
    dst = migrate_query_member(to, "disk-backed-pages");
    placed = qdict_get_int(dst, "postcopy-references");
    status = migrate_query_status(from);
    g_test_message("page %" PRIu64 " read after %.2f s, with %" PRId64
                   " pages placed; the source is %s", i,
                   g_timer_elapsed(timer, NULL), placed, status);
    frame_fill(want, FIRST_FRAME + i);
    g_assert_cmpmem(got, PAGE, want, PAGE);
    g_assert_cmpint(placed, <, PLANT_PAGES / 2);
    g_assert_cmpstr(status, ==, "postcopy-active");

    wait_for_migration_complete(from);
    wait_for_serial("dest_serial");
    qobject_unref(dst);
    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_assert_cmpint(qdict_get_int(src, "postcopy-references"), ==,
                    PLANT_PAGES - 1);
    g_assert_cmpint(qdict_get_int(dst, "postcopy-references"), ==,
                    PLANT_PAGES - 2);
    g_assert_cmpint(qdict_get_int(src, "references-refused"), ==, 1);
    hmp = qtest_hmp(to, "info migrate");
    said = g_strdup_printf("Postcopy's table: \t%d pages", PLANT_PAGES - 2);
    g_assert_nonnull(strstr(hmp, said));
    g_free(hmp);
    assert_same_region(from, to);
    migrate_end(from, to, true);
    g_assert_cmpint(fault_hits(rules, dst_pid, "pread"), >, 0);
    fault_cleanup(rules);
    unlink(disk);
}

/*
 * Postcopy pauses (migrate-pause) while the walk through the table is
 * slow, and recovers: the destination must place no page of the table
 * after the pause, since the source, recovering, sends every page the
 * destination has not received; a page placed twice fails the
 * migration.  Every planted page is compared.
 */
static void test_disk_backed_postcopy_recover(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *again = g_strdup_printf("unix:%s/migsocket-recover",
                                             tmpfs);
    const char *paused_only[] = { "failed", "active", "completed", NULL };
    g_autoptr(QDict) paused = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to;
    void *with_data;
    pid_t dst_pid;

    to = start_slow_table(&from, disk, uri, rules, true, &with_data,
                          &dst_pid);
    if (!to) {
        return;
    }
    wait_for_migration_status(from, "postcopy-active", NULL);
    migrate_pause(from);
    wait_for_migration_status(to, "postcopy-paused", paused_only);
    wait_for_migration_status(from, "postcopy-paused", paused_only);
    paused = migrate_query_member(to, "disk-backed-pages");
    /* past the walk's read in flight at the pause */
    g_usleep(1000 * 1000);
    migrate_recover(to, again);
    migrate_qmp(from, to, again, NULL, "{'resume': true}");
    wait_for_migration_complete(from);
    wait_for_serial("dest_serial");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_test_message("%" PRId64 " pages of the table placed at the pause, %"
                   PRId64 " at the end",
                   qdict_get_int(paused, "postcopy-references"),
                   qdict_get_int(dst, "postcopy-references"));
    g_assert_cmpint(qdict_get_int(paused, "postcopy-references"), <,
                    PLANT_PAGES - 2);
    g_assert_cmpint(qdict_get_int(dst, "postcopy-references"), ==,
                    qdict_get_int(paused, "postcopy-references"));
    assert_same_region(from, to);
    migrate_end(from, to, true);
    unlink(again + strlen("unix:"));
    g_assert_cmpint(fault_hits(rules, dst_pid, "pread"), >, 0);
    fault_cleanup(rules);
    unlink(disk);
}

static void test_disk_backed_with(void *name)
{
    migration_test_disk_backed_with(strrchr(name, '/') + 1, NULL);
}

/* A malformed map is refused whole: no reference, every page arrives */
static void do_test_bad_map(MapKind kind, const char *status)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    QTestState *from, *to;

    to = dest_start(&from, uri, disk, true);
    if (!to) {
        return;
    }
    plant(from);
    map_build(from, kind);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    migrate_ensure_non_converge(from);
    wait_for_serial("src_serial");
    run_to_completion(from, to, uri);

    src = migrate_query_member(from, "disk-backed-pages");
    g_test_message("map-status: %s", qdict_get_str(src, "map-status"));
    g_assert_nonnull(strstr(qdict_get_str(src, "map-status"), status));
    g_assert_cmpint(qdict_get_int(src, "pages-referenced"), ==, 0);
    g_assert_cmpint(qdict_get_int(src, "map-records"), ==, 0);
    assert_same_region(from, to);
    migrate_end(from, to, true);
    unlink(disk);
}

/*
 * A malformed map is refused at setup, and the migration goes on without
 * references: seen in query-migrate, then cancelled, the source running
 * on.  Cheaper than a whole migration for each.
 */
static void do_test_bad_map_status(MapKind kind, const char *status)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    QTestState *from, *to;

    to = dest_start(&from, uri, disk, true);
    if (!to) {
        return;
    }
    map_build(from, kind);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    migrate_ensure_non_converge(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    for (;;) {
        g_autoptr(QDict) src = migrate_query_member(from,
                                                    "disk-backed-pages");
        const char *st = qdict_get_str(src, "map-status");

        if (strcmp(st, "none")) {
            g_test_message("map-status: %s", st);
            g_assert_nonnull(strstr(st, status));
            g_assert_cmpint(qdict_get_int(src, "map-records"), ==, 0);
            break;
        }
        g_usleep(10 * 1000);
    }
    cancel_migration(from);
    migration_assert_guest_writes(from);
    qtest_set_expected_status(to, EXIT_FAILURE);
    qtest_quit(to);
    qtest_quit(from);
    unlink(disk);
    unlink_serials();
}

static void test_disk_backed_malformed(void)
{
    /* one whole migration: no reference, every page arrives */
    do_test_bad_map(MAP_BAD_MAGIC, "refused: bad magic");
    do_test_bad_map_status(MAP_HUGE_COUNT, "refused: too many records");
    do_test_bad_map_status(MAP_ODD_GENERATION, "kept changing");
    do_test_bad_map_status(MAP_SEG_ON_HEADER, "overlap each other or the "
                           "header");
    do_test_bad_map_status(MAP_SEG_UNALIGNED, "unaligned");
    do_test_bad_map_status(MAP_SEG_OUTSIDE_RAM, "not in guest RAM");
}

/*
 * Setup failures: a destination without the capability fails the
 * migration with the source running; a destination without the node
 * refuses migrate-incoming; a source whose node is no raw node refuses
 * to migrate.
 */
static void test_disk_backed_setup(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = { .hide_stderr = true, .tcg = true };
    QDict *rsp;
    QTestState *from, *to;

    /* destination without the capability */
    to = dest_start(&from, uri, disk, false);
    if (!to) {
        return;
    }
    wait_for_serial("src_serial");
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_qmp(from, to, uri, NULL, "{}");
    /* the source may go active before the refusal reaches it */
    wait_for_migration_fail(from, true);
    qtest_wait_qemu(to);
    qtest_quit(to);
    migration_assert_guest_writes(from);
    qtest_quit(from);

    /* destination without the node */
    if (migrate_start(&from, &to, "defer", &args)) {
        return;
    }
    migrate_set_capability(to, "return-path", true);
    migrate_set_capability(to, "disk-backed-pages", true);
    migrate_set_parameter_str(to, "disk-backed-node", NODE);
    migrate_qmp_refused(to, "Parameter 'disk-backed-node': no block node "
                        "named '" NODE "'",
                        "{ 'execute': 'migrate-incoming', "
                        "'arguments': { 'uri': %s } }", uri);

    /* a source node that is not raw */
    qtest_qmp_assert_success(from, "{ 'execute': 'blockdev-add', "
                             "'arguments': { 'driver': 'null-co', "
                             "'node-name': 'nul0' } }");
    migrate_set_capability(from, "return-path", true);
    migrate_set_capability(from, "disk-backed-pages", true);
    migrate_set_parameter_str(from, "disk-backed-node", "nul0");
    migrate_qmp_refused(from, "only raw nodes are supported",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': %s } }", uri);
    /* nothing was started */
    rsp = migrate_query(from);
    g_assert_false(qdict_haskey(rsp, "status"));
    qobject_unref(rsp);
    qtest_quit(from);
    qtest_quit(to);
    unlink(disk);
    unlink_serials();
}

/* Capability conflicts, parameters, HMP, snapshots */
static void test_disk_backed_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    QDict *rsp;
    char *hmp;

    migrate_set_capabilities_refused(who, "Capability 'disk-backed-pages' "
                                     "requires capability 'return-path'",
                                     "disk-backed-pages", NULL);
    migrate_set_capabilities_refused(who, "Capability 'disk-backed-pages' "
                                     "conflicts with capability "
                                     "'mapped-ram'",
                                     "return-path", "disk-backed-pages",
                                     "mapped-ram", NULL);
    migrate_set_capabilities_refused(who, "not compatible with",
                                     "return-path", "disk-backed-pages",
                                     "background-snapshot", NULL);

    migrate_qmp_refused(who, "Parameter 'disk-backed-map' must be aligned "
                        "to 4096 bytes, not 0x1001",
                        "{ 'execute': 'migrate-set-parameters', "
                        "'arguments': { 'disk-backed-map': 4097 } }");

    /* HMP sets and shows both parameters */
    hmp = qtest_hmp(who, "migrate_set_parameter disk-backed-node disk0");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "migrate_set_parameter disk-backed-map 0x6500000");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "info migrate_parameters");
    g_assert_nonnull(strstr(hmp, "disk-backed-node: 'disk0'"));
    g_assert_nonnull(strstr(hmp, "disk-backed-map: 0x6500000"));
    g_free(hmp);
    rsp = qtest_qmp_assert_success_ref(who,
        "{ 'execute': 'query-migrate-parameters' }");
    g_assert_cmpstr(qdict_get_str(rsp, "disk-backed-node"), ==, "disk0");
    g_assert_cmpint(qdict_get_int(rsp, "disk-backed-map"), ==, 0x6500000);
    qobject_unref(rsp);

    /* snapshots have no destination to check references */
    migrate_set_capability(who, "return-path", true);
    migrate_set_capability(who, "disk-backed-pages", true);
    hmp = qtest_hmp(who, "savevm snap0");
    g_assert_nonnull(strstr(hmp, "not compatible with disk-backed-pages"));
    g_free(hmp);
    qtest_quit(who);

    /* set on the destination after migrate-incoming: too late */
    who = qtest_init("-machine none -incoming defer");
    migrate_incoming_qmp(who, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_capabilities_refused(who, "Capability 'disk-backed-pages' "
                                     "must be set before incoming starts",
                                     "return-path", "disk-backed-pages",
                                     NULL);
    qtest_quit(who);
}

/*
 * The learned map: the test drives a virtio-blk device on the shared
 * node itself, through libqos, as a guest driver would, with its rings
 * and request headers in guest RAM the bootblock never touches.
 */
#define LEARN_GPA       (108 * MiB)
#define LEARN_PAGES     64
#define LEARN_FRAME     2000            /* page i reads frame 2000 + i */
#define LEARN_REQ_PAGES 16              /* pages a read request */
#define VIRTIO_RAM      (112 * MiB)     /* [112, 116) MiB: rings, headers */
#define VIRTIO_RAM_END  (116 * MiB)
#define BLK_DEVFN       QPCI_DEVFN(5, 0)
/* pages of the learned map that must go in full */
#define LEARN_REWRITTEN 3               /* the guest writes it after */
#define LEARN_REREAD    7               /* then reads another frame in */
#define LEARN_REREAD_FRAME 3000
#define LEARN_PARTIAL   9               /* then a sector lands in it */
#define LEARN_DISK_OLD  11              /* its frame rewritten before */
#define LEARN_WRITTEN   13              /* written out to another frame */
#define LEARN_WRITTEN_FRAME 3100
#define LEARN_DISK_LIVE 15              /* its frame rewritten during */

typedef struct LearnBlk {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *dev;
    QVirtQueue *vq;
} LearnBlk;

static void learn_blk_init(LearnBlk *b, QTestState *qts)
{
    uint64_t features;

    b->qts = qts;
    alloc_init(&b->alloc, 0, VIRTIO_RAM, VIRTIO_RAM_END, PAGE);
    b->bus = qpci_new_pc(qts, &b->alloc);
    b->dev = virtio_pci_new(b->bus, &(QPCIAddress) { .devfn = BLK_DEVFN });
    g_assert_nonnull(b->dev);
    qvirtio_pci_device_enable(b->dev);
    qvirtio_start_device(&b->dev->vdev);
    features = qvirtio_get_features(&b->dev->vdev);
    features &= ~(QVIRTIO_F_BAD_FEATURE |
                  (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
                  (1ull << VIRTIO_RING_F_EVENT_IDX) |
                  (1ull << VIRTIO_BLK_F_SCSI));
    qvirtio_set_features(&b->dev->vdev, features);
    b->vq = qvirtqueue_setup(&b->dev->vdev, &b->alloc, 0);
    qvirtio_set_driver_ok(&b->dev->vdev);
}

static void learn_blk_free(LearnBlk *b)
{
    qvirtqueue_cleanup(b->dev->vdev.bus, b->vq, &b->alloc);
    qvirtio_pci_device_disable(b->dev);
    g_free(b->dev);
    qpci_free_pc(b->bus);
    alloc_destroy(&b->alloc);
}

/*
 * Read (or write, @out) @len bytes at disk offset @disk into (from)
 * guest RAM at @gpa, in one descriptor, and wait for it: the guest's
 * interrupt is not used, the used ring is polled.
 */
static void learn_blk_rw(LearnBlk *b, bool out, uint64_t disk,
                         uint64_t gpa, uint32_t len)
{
    struct virtio_blk_outhdr hdr = {
        .type = cpu_to_le32(out ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN),
        .sector = cpu_to_le64(disk / 512),
    };
    uint64_t req = guest_alloc(&b->alloc, sizeof(hdr) + 1);
    g_autoptr(GTimer) timer = g_timer_new();
    uint32_t head, idx, used_len;

    qtest_memwrite(b->qts, req, &hdr, sizeof(hdr));
    qtest_writeb(b->qts, req + sizeof(hdr), 0xff);
    head = qvirtqueue_add(b->qts, b->vq, req, sizeof(hdr), false, true);
    qvirtqueue_add(b->qts, b->vq, gpa, len, !out, true);
    qvirtqueue_add(b->qts, b->vq, req + sizeof(hdr), 1, true, false);
    qvirtqueue_kick(b->qts, &b->dev->vdev, b->vq, head);
    while (!qvirtqueue_get_buf(b->qts, b->vq, &idx, &used_len)) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 30);
        g_usleep(1000);
    }
    g_assert_cmpint(idx, ==, head);
    g_assert_cmpint(qtest_readb(b->qts, req + sizeof(hdr)), ==,
                    VIRTIO_BLK_S_OK);
    guest_free(&b->alloc, req);
}

static uint64_t learned_member(QTestState *who, const char *member)
{
    g_autoptr(QDict) dp = migrate_query_member(who, "disk-backed-pages");

    return qdict_get_int(dp, member);
}

/* Both sides with a virtio-blk device on the shared node */
static QTestState *learn_start(QTestState **from, const char *uri,
                               const char *disk, const char *with,
                               void **with_data)
{
    QTestState *to;

    both_opts = "-device virtio-blk-pci,drive=" NODE ",addr=5.0,share-rw=on";
    to = dest_start_with(from, uri, disk, NULL, true, false,
                         g_strcmp0(with, "again") ? with : NULL, NULL,
                         with_data, NULL, NULL);
    both_opts = NULL;
    return to;
}

/*
 * With learning on in @from: the guest reads LEARN_PAGES frames into its
 * pages, then changes them in the ways LEARN_* name, all but the frame
 * written during the migration.
 */
static void learn_prepare(QTestState *from)
{
    LearnBlk blk;
    char *hmp;

    /* SeaBIOS drives the device while it looks for a boot disk */
    wait_for_serial("src_serial");
    /* the capability is on (dest_start()): the source learns from now */
    learn_blk_init(&blk, from);
    for (int i = 0; i < LEARN_PAGES; i += LEARN_REQ_PAGES) {
        learn_blk_rw(&blk, false, (uint64_t)(LEARN_FRAME + i) * PAGE,
                     LEARN_GPA + i * PAGE, LEARN_REQ_PAGES * PAGE);
    }
    g_assert_cmpint(learned_member(from, "learned-pages"), ==, LEARN_PAGES);
    /* the guest writes into a page it read */
    qtest_writeb(from, LEARN_GPA + LEARN_REWRITTEN * PAGE + 100, 0x5a);
    /* a page read over by another frame: learned anew */
    learn_blk_rw(&blk, false, (uint64_t)LEARN_REREAD_FRAME * PAGE,
                 LEARN_GPA + LEARN_REREAD * PAGE, PAGE);
    /* one sector read into the middle of a page: forgotten */
    learn_blk_rw(&blk, false, (uint64_t)LEARN_REREAD_FRAME * PAGE + 512,
                 LEARN_GPA + LEARN_PARTIAL * PAGE + 1024, 512);
    g_assert_cmpint(learned_member(from, "learned-pages"), ==,
                    LEARN_PAGES - 1);
    /* a page written out to another frame: learned as a copy of it */
    learn_blk_rw(&blk, true, (uint64_t)LEARN_WRITTEN_FRAME * PAGE,
                 LEARN_GPA + LEARN_WRITTEN * PAGE, PAGE);
    learn_blk_free(&blk);
    /* the disk changes under a learned page, unseen by the source */
    hmp = qtest_hmp(from, "qemu-io " NODE " \"write -P 0x33 %d %d\"",
                    (LEARN_FRAME + LEARN_DISK_OLD) * PAGE, PAGE);
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
}

/*
 * Migrate @from, the destination of a first migration, on to a third
 * QEMU: the pages it placed from the disk there go as references again,
 * from its learned map, although nothing was read meanwhile.
 */
static void migrate_on(QTestState *from, const char *disk)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket2", tmpfs);
    g_autofree char *opts = disk_opts(disk);
    g_autofree char *dst_opts = g_strdup_printf(
        "%s -device virtio-blk-pci,drive=" NODE ",addr=5.0,share-rw=on",
        opts);
    MigrateStart args = {
        .opts_target = dst_opts,
        .tcg = true,
        .only_target = true,
    };
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    g_autofree uint8_t *a = NULL;
    g_autofree uint8_t *b = NULL;
    QTestState *to;

    g_assert_cmpint(migrate_start(&from, &to, "defer", &args), ==, 0);
    migrate_set_capability(to, "return-path", true);
    migrate_set_capability(to, "disk-backed-pages", true);
    migrate_set_parameter_str(to, "disk-backed-node", NODE);
    migrate_incoming_qmp(to, uri, NULL, "{}");
    migrate_after_first_pass(from, to, uri);
    /* (its serial file is the second QEMU's too: migrate_end() checks) */
    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_test_message("second migration: %" PRId64 " referenced, %" PRId64
                   " learned, %" PRId64 " mismatched; %" PRId64 " refused",
                   qdict_get_int(src, "pages-referenced"),
                   qdict_get_int(src, "learned-references"),
                   qdict_get_int(src, "learned-mismatches"),
                   qdict_get_int(dst, "references-refused"));
    g_assert_cmpint(qdict_get_int(src, "learned-references"), ==,
                    LEARN_PAGES - 4);
    g_assert_cmpint(qdict_get_int(src, "learned-mismatches"), ==, 0);
    g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 0);
    g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==,
                    LEARN_PAGES - 4);
    a = migration_pmemsave(from, LEARN_GPA, LEARN_PAGES * PAGE);
    b = migration_pmemsave(to, LEARN_GPA, LEARN_PAGES * PAGE);
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_cmpmem(a, LEARN_PAGES * PAGE, b, LEARN_PAGES * PAGE);
    migrate_end(from, to, true);
}

/*
 * Pages the guest read from the shared disk by DMA, with no map of the
 * guest's, go as references and arrive verified; the pages the guest
 * or the disk changed since, or that a later partial read touched, go
 * in full, and the page read over by another frame goes as that one.
 * The source compares each page with its frame before it sends a
 * reference: the destination refuses none.  Without that comparison
 * the rewritten pages go as references and are refused.
 */
static void do_test_learned(const char *with)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    void *with_data = NULL;
    uint8_t *want;
    QTestState *from, *to;
    char *hmp;

    to = learn_start(&from, uri, disk, with, &with_data);
    if (!to) {
        return;
    }
    learn_prepare(from);

    migrate_set_parameter_int(from, "max-bandwidth", SLOW_BYTES_PER_SEC);
    qtest_qmp_assert_success(from, "{ 'execute' : 'stop'}");
    want = migration_pmemsave(from, LEARN_GPA, LEARN_PAGES * PAGE);

    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    /* written while the migration tracks the disk: in full, not compared */
    hmp = qtest_hmp(from, "qemu-io " NODE " \"write -P 0x44 %d %d\"",
                    (LEARN_FRAME + LEARN_DISK_LIVE) * PAGE, PAGE);
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    wait_for_migration_complete(from);
    qtest_qmp_assert_success(to, "{ 'execute' : 'cont'}");
    wait_for_resume(to, get_dst());
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_test_message("source: %" PRId64 " learned, %" PRId64 " referenced, %"
                   PRId64 " mismatched, %" PRId64 " refused; destination: %"
                   PRId64 " referenced, %" PRId64 " refused",
                   qdict_get_int(src, "learned-pages"),
                   qdict_get_int(src, "learned-references"),
                   qdict_get_int(src, "learned-mismatches"),
                   qdict_get_int(src, "references-refused"),
                   qdict_get_int(dst, "pages-referenced"),
                   qdict_get_int(dst, "references-refused"));
    g_assert_cmpstr(qdict_get_str(src, "map-status"), ==, "none");
    /* all but the rewritten, partial, and both disk-rewritten pages */
    g_assert_cmpint(qdict_get_int(src, "learned-references"), ==,
                    LEARN_PAGES - 4);
    g_assert_cmpint(qdict_get_int(src, "pages-referenced"), ==,
                    LEARN_PAGES - 4);
    g_assert_cmpint(qdict_get_int(src, "learned-mismatches"), ==, 2);
    g_assert_cmpint(qdict_get_int(src, "references-refused"), ==, 0);
    g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==,
                    LEARN_PAGES - 4);
    g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 0);
    /* the destination learned what it placed, for the next migration */
    g_assert_cmpint(qdict_get_int(dst, "learned-pages"), ==, LEARN_PAGES - 4);

    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "Learned map: \t\tpages=63, referenced=60, "
                            "mismatched=2"));
    g_free(hmp);

    /* every page as it was on the source, the re-read one that frame's */
    {
        g_autofree uint8_t *got = migration_pmemsave(to, LEARN_GPA,
                                                     LEARN_PAGES * PAGE);
        g_autofree uint8_t *frame = g_malloc(PAGE);

        g_assert_nonnull(got);
        g_assert_cmpmem(got, LEARN_PAGES * PAGE, want, LEARN_PAGES * PAGE);
        frame_fill(frame, LEARN_REREAD_FRAME);
        g_assert_cmpmem(got + LEARN_REREAD * PAGE, PAGE, frame, PAGE);
        frame_fill(frame, LEARN_FRAME + LEARN_WRITTEN);
        g_assert_cmpmem(got + LEARN_WRITTEN * PAGE, PAGE, frame, PAGE);
    }
    g_free(want);
    if (with && g_strcmp0(with, "again")) {
        with_end(from, to, with, NULL, with_data);
    }
    if (g_strcmp0(with, "again")) {
        migrate_end(from, to, true);
    } else {
        qtest_quit(from);
        migrate_on(to, disk);
    }
    unlink(disk);
}

static void test_disk_backed_learned(void)
{
    do_test_learned(NULL);
}

/* Then on to a third QEMU, from the second's learned map */
static void test_disk_backed_learned_again(void)
{
    do_test_learned("again");
}

/* The same with multifd's channels carrying the pages in full */
static void test_disk_backed_learned_multifd(void)
{
    do_test_learned("multifd");
}

/*
 * The learned map with postcopy, switched to before the first pass
 * reaches the learned pages: they go in postcopy's table of references,
 * not compared on the source (the guest is stopped then); the
 * destination refuses the two that changed, which come in full.
 */
static void test_disk_backed_learned_postcopy(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    g_autofree uint8_t *a = NULL;
    g_autofree uint8_t *b = NULL;
    void *with_data = NULL;
    QTestState *from, *to;

    to = learn_start(&from, uri, disk, "postcopy-ram", &with_data);
    if (!to) {
        return;
    }
    learn_prepare(from);
    migrate_set_parameter_int(from, "max-bandwidth", 64 * MiB);

    run_to_postcopy(from, to, uri, true);
    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_test_message("source: %" PRId64 " in the table, %" PRId64
                   " learned; destination: %" PRId64 " placed, %" PRId64
                   " refused", qdict_get_int(src, "postcopy-references"),
                   qdict_get_int(src, "learned-references"),
                   qdict_get_int(dst, "postcopy-references"),
                   qdict_get_int(dst, "references-refused"));
    /* all but the page a sector was read into */
    g_assert_cmpint(qdict_get_int(src, "postcopy-references"), ==,
                    LEARN_PAGES - 1);
    g_assert_cmpint(qdict_get_int(src, "learned-references"), ==,
                    LEARN_PAGES - 1);
    g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 2);
    g_assert_cmpint(qdict_get_int(dst, "postcopy-references"), ==,
                    LEARN_PAGES - 3);
    g_assert_cmpint(qdict_get_int(dst, "learned-pages"), ==, LEARN_PAGES - 3);
    a = migration_pmemsave(from, LEARN_GPA, LEARN_PAGES * PAGE);
    b = migration_pmemsave(to, LEARN_GPA, LEARN_PAGES * PAGE);
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_cmpmem(a, LEARN_PAGES * PAGE, b, LEARN_PAGES * PAGE);
    with_end(from, to, "postcopy-ram", NULL, with_data);
    migrate_end(from, to, true);
    unlink(disk);
}

/*
 * The same hook serves AHCI: its DMA reads, through dma-helpers, are
 * learned too.  No migration: the pages it learns are counted.
 */
static void test_disk_backed_learned_ahci(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *opts = disk_opts(disk);
    AHCIQState *ahci = g_new0(AHCIQState, 1);
    QTestState *who;
    uint8_t port;

    ahci->parent = qtest_pc_boot("-M q35 -m 150M %s "
                                 "-device ide-hd,drive=" NODE " "
                                 "-global migration.x-return-path=on "
                                 "-global migration.x-disk-backed-pages=on "
                                 "-global migration.disk-backed-node=" NODE,
                                 opts);
    who = ahci->parent->qts;
    ahci->dev = get_ahci_device(who, &ahci->fingerprint);
    ahci_pci_enable(ahci);
    ahci_hba_enable(ahci);
    port = ahci_port_select(ahci);
    ahci_port_clear(ahci, port);
    ahci_guest_io(ahci, port, CMD_READ_DMA_EXT, LEARN_GPA, 8 * PAGE,
                  (uint64_t)LEARN_FRAME * PAGE / 512);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 8);
    /* a sector into the middle of a learned page forgets it */
    ahci_guest_io(ahci, port, CMD_READ_DMA_EXT, LEARN_GPA + PAGE + 512, 512,
                  (uint64_t)LEARN_FRAME * PAGE / 512);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 7);
    ahci_clean_mem(ahci);
    free_ahci_device(ahci->dev);
    qtest_shutdown(ahci->parent);
    g_free(ahci);
    unlink(disk);
}

/*
 * A raw node with an offset: the source cannot read the image file to
 * compare learned pages with their frames, so none goes as a
 * reference; the migration goes on with every page in full.
 */
static void test_disk_backed_learned_no_image(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    g_autofree uint8_t *a = NULL;
    g_autofree uint8_t *b = NULL;
    QTestState *from, *to;

    raw_opts = ",offset=0";
    to = learn_start(&from, uri, disk, NULL, NULL);
    raw_opts = "";
    if (!to) {
        return;
    }
    learn_prepare(from);
    migrate_after_first_pass(from, to, uri);
    src = migrate_query_member(from, "disk-backed-pages");
    g_assert_cmpint(qdict_get_int(src, "learned-pages"), ==, LEARN_PAGES - 1);
    g_assert_cmpint(qdict_get_int(src, "learned-references"), ==, 0);
    g_assert_cmpint(qdict_get_int(src, "learned-mismatches"), ==, 0);
    g_assert_cmpint(qdict_get_int(src, "pages-referenced"), ==, 0);
    a = migration_pmemsave(from, LEARN_GPA, LEARN_PAGES * PAGE);
    b = migration_pmemsave(to, LEARN_GPA, LEARN_PAGES * PAGE);
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_cmpmem(a, LEARN_PAGES * PAGE, b, LEARN_PAGES * PAGE);
    migrate_end(from, to, true);
    unlink(disk);
}

/* Learning stops with the capability, and forgets what it learned */
static void test_disk_backed_learned_off(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *opts = disk_opts(disk);
    char *args = g_strdup_printf("-machine q35 -m 150M %s -device "
                                 "virtio-blk-pci,drive=" NODE ",addr=5.0",
                                 opts);
    QTestState *who = qtest_init(args);
    LearnBlk blk;

    migrate_set_capability(who, "return-path", true);
    migrate_set_capability(who, "disk-backed-pages", true);
    migrate_set_parameter_str(who, "disk-backed-node", NODE);
    learn_blk_init(&blk, who);
    learn_blk_rw(&blk, false, (uint64_t)LEARN_FRAME * PAGE, LEARN_GPA,
                 4 * PAGE);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 4);
    migrate_set_capability(who, "disk-backed-pages", false);
    migrate_set_capability(who, "disk-backed-pages", true);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 0);
    /* another node: nothing is learned from this one */
    migrate_set_parameter_str(who, "disk-backed-node", NODE "-file");
    learn_blk_rw(&blk, false, (uint64_t)LEARN_FRAME * PAGE, LEARN_GPA,
                 4 * PAGE);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 0);
    migrate_set_parameter_str(who, "disk-backed-node", NODE);
    learn_blk_rw(&blk, false, (uint64_t)LEARN_FRAME * PAGE, LEARN_GPA,
                 4 * PAGE);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 4);
    learn_blk_free(&blk);
    qtest_quit(who);

    /* from the command line: learning from the start */
    g_free(args);
    args = g_strdup_printf("-machine q35 -m 150M %s -device virtio-blk-pci,"
                           "drive=" NODE ",addr=5.0 "
                           "-global migration.x-return-path=on "
                           "-global migration.x-disk-backed-pages=on "
                           "-global migration.disk-backed-node=" NODE, opts);
    who = qtest_init(args);
    learn_blk_init(&blk, who);
    learn_blk_rw(&blk, false, (uint64_t)LEARN_FRAME * PAGE, LEARN_GPA,
                 2 * PAGE);
    g_assert_cmpint(learned_member(who, "learned-pages"), ==, 2);
    learn_blk_free(&blk);
    qtest_quit(who);
    g_free(args);
    unlink(disk);
}

/*
 * The live map: the source reads the map again when its generation
 * changes.  At setup the map has only the first half of the planted
 * pages; once the migration runs, the guest adds the second half and
 * marks one page of the first half modified.  The added pages go as
 * references of the learned map, compared on the source (the one that
 * names a wrong frame goes in full, not refused); the page marked
 * later goes in full.  Without the re-read the second half goes in
 * full; without the comparison the wrong frame is refused.
 */
#define LIVE_HALF           (PLANT_PAGES / 2)
#define LIVE_MODIFIED_PAGE  30          /* marked modified after setup */

static void map_set_count(QTestState *who, uint64_t generation,
                          uint64_t count)
{
    qtest_writeq(who, MAP_GPA + 16, generation);
    qtest_writeq(who, MAP_GPA + 24, count);
    qtest_writeq(who, MAP_GPA + 72, count);
}

static void test_disk_backed_live_map(void)
{
    g_autofree char *disk = disk_create();
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    uint64_t rec = MAP_GPA + PAGE + LIVE_MODIFIED_PAGE * 16;
    QTestState *from, *to;

    to = dest_start(&from, uri, disk, true);
    if (!to) {
        return;
    }
    plant(from);
    map_build(from, MAP_GOOD);
    /* at setup, the first half only */
    map_set_count(from, 2, LIVE_HALF);
    migrate_set_parameter_int(from, "disk-backed-map", MAP_GPA);
    migrate_set_parameter_int(from, "max-bandwidth", SLOW_BYTES_PER_SEC);
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{ 'execute' : 'stop'}");

    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    /* as the guest would: odd generation, changes, even again */
    map_set_count(from, 3, LIVE_HALF);
    map_set_count(from, 3, PLANT_PAGES + BAD_RECORDS);
    qtest_writeq(from, rec, qtest_readq(from, rec) | 1);
    map_set_count(from, 4, PLANT_PAGES + BAD_RECORDS);
    wait_for_migration_complete(from);
    qtest_qmp_assert_success(to, "{ 'execute' : 'cont'}");
    wait_for_resume(to, get_dst());
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "disk-backed-pages");
    dst = migrate_query_member(to, "disk-backed-pages");
    g_test_message("source: %" PRId64 " records at setup, %" PRId64
                   " re-reads, %" PRId64 " referenced, %" PRId64
                   " of them learned, %" PRId64 " mismatched, %" PRId64
                   " refused",
                   qdict_get_int(src, "map-records"),
                   qdict_get_int(src, "map-rereads"),
                   qdict_get_int(src, "pages-referenced"),
                   qdict_get_int(src, "learned-references"),
                   qdict_get_int(src, "learned-mismatches"),
                   qdict_get_int(src, "references-refused"));
    /* the first half but its modified page */
    g_assert_cmpint(qdict_get_int(src, "map-records"), ==, LIVE_HALF - 1);
    g_assert_cmpint(qdict_get_int(src, "map-rereads"), >=, 1);
    /* the second half but the wrong frame */
    g_assert_cmpint(qdict_get_int(src, "learned-references"), ==,
                    LIVE_HALF - 1);
    g_assert_cmpint(qdict_get_int(src, "learned-mismatches"), ==, 1);
    /* and the first half but the two modified pages */
    g_assert_cmpint(qdict_get_int(src, "pages-referenced"), ==,
                    LIVE_HALF - 2 + LIVE_HALF - 1);
    g_assert_cmpint(qdict_get_int(src, "references-refused"), ==, 0);
    g_assert_cmpint(qdict_get_int(dst, "references-refused"), ==, 0);
    g_assert_cmpint(qdict_get_int(dst, "pages-referenced"), ==,
                    LIVE_HALF - 2 + LIVE_HALF - 1);

    assert_same_region(from, to);
    migrate_end(from, to, true);
    unlink(disk);
}

void migration_test_add_disk_backed_pages(MigrationTestEnv *env)
{
    static const char *const with[] = {
#ifdef CONFIG_GNUTLS
        "tls",
#endif
        "auto-converge", "multifd", "xbzrle",
#ifdef CONFIG_ZSTD
        "multifd-zstd",
#endif
    };

    tmpfs = env->tmpfs;

    migration_test_add("/migration/disk-backed-pages/refusals",
                       test_disk_backed_refusals);
    if (!env->is_x86) {
        /* the guest RAM layout above is the x86 bootblock guest's */
        return;
    }
    migration_test_add("/migration/disk-backed-pages/refs",
                       test_disk_backed_refs);
    migration_test_add("/migration/disk-backed-pages/learned",
                       test_disk_backed_learned);
    migration_test_add("/migration/disk-backed-pages/learned/off",
                       test_disk_backed_learned_off);
    migration_test_add("/migration/disk-backed-pages/learned/multifd",
                       test_disk_backed_learned_multifd);
    migration_test_add("/migration/disk-backed-pages/learned/ahci",
                       test_disk_backed_learned_ahci);
    migration_test_add("/migration/disk-backed-pages/learned/again",
                       test_disk_backed_learned_again);
    migration_test_add("/migration/disk-backed-pages/learned/no-image",
                       test_disk_backed_learned_no_image);
    migration_test_add("/migration/disk-backed-pages/live-map",
                       test_disk_backed_live_map);
    migration_test_add("/migration/disk-backed-pages/malformed",
                       test_disk_backed_malformed);
    migration_test_add("/migration/disk-backed-pages/setup",
                       test_disk_backed_setup);
    migration_test_add("/migration/disk-backed-pages/fault/read",
                       test_disk_backed_fault_read);
    migration_test_add("/migration/disk-backed-pages/fault/read-multifd",
                       test_disk_backed_fault_read_multifd);
    migration_test_add("/migration/disk-backed-pages/fault/read-cancel",
                       test_disk_backed_fault_read_cancel);
    migration_test_add("/migration/disk-backed-pages/fault/reread",
                       test_disk_backed_fault_reread);
    migration_test_add("/migration/disk-backed-pages/fault/shrunk",
                       test_disk_backed_fault_shrunk);
    migration_test_add("/migration/disk-backed-pages/fault/nack-lost",
                       test_disk_backed_fault_nack_lost);
    migration_test_add("/migration/disk-backed-pages/fault/pong-lost",
                       test_disk_backed_fault_pong_lost);
    for (int i = 0; i < ARRAY_SIZE(with); i++) {
        migration_test_add_suffix("/migration/disk-backed-pages/with/",
                                  with[i], test_disk_backed_with);
    }
    if (env->has_uffd) {
        migration_test_add_suffix("/migration/disk-backed-pages/with/",
                                  "postcopy-ram", test_disk_backed_with);
        migration_test_add_suffix("/migration/disk-backed-pages/with/",
                                  "postcopy-preempt", test_disk_backed_with);
        migration_test_add("/migration/disk-backed-pages/postcopy/early",
                           test_disk_backed_postcopy_early);
        migration_test_add("/migration/disk-backed-pages/postcopy/pong-lost",
                           test_disk_backed_fault_pong_lost_postcopy);
        migration_test_add("/migration/disk-backed-pages/multifd/rewritten",
                           test_disk_backed_multifd_rewritten);
        migration_test_add("/migration/disk-backed-pages/multifd/refused-late",
                           test_disk_backed_multifd_refused_late);
        migration_test_add(
            "/migration/disk-backed-pages/postcopy/preempt/early",
            test_disk_backed_postcopy_preempt_early);
        migration_test_add("/migration/disk-backed-pages/postcopy/read-fails",
                           test_disk_backed_postcopy_read_fails);
        migration_test_add("/migration/disk-backed-pages/postcopy/fault",
                           test_disk_backed_postcopy_fault);
        migration_test_add("/migration/disk-backed-pages/postcopy/recover",
                           test_disk_backed_postcopy_recover);
        migration_test_add("/migration/disk-backed-pages/postcopy/learned",
                           test_disk_backed_learned_postcopy);
    }
}
