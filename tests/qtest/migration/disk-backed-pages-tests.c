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
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"

#define PAGE            4096
#define MiB             (1024 * 1024)
#define DISK_SIZE       (16 * MiB)
#define MAP_GPA         (101 * MiB)
#define PLANT_GPA       (102 * MiB)
#define PLANT_PAGES     2048            /* 8 MiB */
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

static char *disk_opts(const char *path)
{
    return g_strdup_printf("-blockdev driver=file,node-name=%s-file,"
                           "filename=%s -blockdev driver=raw,node-name=%s,"
                           "file=%s-file", NODE, path, NODE, NODE);
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
        put_le64(r + 8, i == WRONG_PAGE ? WRONG_FRAME : FIRST_FRAME + i);
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

/* Plant the frames into guest RAM, as the guest's page cache would be */
static void plant(QTestState *who)
{
    g_autofree uint8_t *buf = g_malloc(PLANT_PAGES * PAGE);

    for (uint64_t i = 0; i < PLANT_PAGES; i++) {
        frame_fill(buf + i * PAGE, FIRST_FRAME + i);
    }
    qtest_memwrite(who, PLANT_GPA, buf, PLANT_PAGES * PAGE);
}

/* Every planted page and the map arrived as they are on the source */
static void assert_same_region(QTestState *from, QTestState *to)
{
    uint64_t len = PLANT_GPA + PLANT_PAGES * PAGE - MAP_GPA;
    g_autofree uint8_t *a = g_malloc(len);
    g_autofree uint8_t *b = g_malloc(len);

    qtest_memread(from, MAP_GPA, a, len);
    qtest_memread(to, MAP_GPA, b, len);
    for (uint64_t off = 0; off < len; off += PAGE) {
        if (memcmp(a + off, b + off, PAGE)) {
            g_test_message("page at 0x%" PRIx64 " differs",
                           (uint64_t)MAP_GPA + off);
            g_assert_not_reached();
        }
    }
}

static QTestState *dest_start(QTestState **from, const char *uri,
                              const char *disk, bool dest_cap)
{
    g_autofree char *opts = disk_opts(disk);
    MigrateStart args = {
        .opts_source = opts,
        .opts_target = opts,
        .hide_stderr = !dest_cap,
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
    migrate_incoming_qmp(to, uri, NULL, "{}");
    return to;
}

static void run_to_completion(QTestState *from, QTestState *to,
                              const char *uri)
{
    migrate_qmp(from, to, uri, NULL, "{}");
    /* after a first full pass, let it converge */
    while (read_ram_property_int(from, "dirty-sync-count") < 2) {
        g_usleep(20 * 1000);
    }
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
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
    migrate_cancel(from);
    wait_for_migration_status(from, "cancelled", NULL);
    migration_assert_guest_writes(from);
    qtest_set_expected_status(to, EXIT_FAILURE);
    qtest_quit(to);
    qtest_quit(from);
    unlink(disk);
    unlink_serials();
}

static void test_disk_backed_malformed(void)
{
    do_test_bad_map(MAP_BAD_MAGIC, "refused: bad magic");
    do_test_bad_map(MAP_HUGE_COUNT, "refused: too many records");
    do_test_bad_map(MAP_ODD_GENERATION, "kept changing");
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
    g_autoptr(QDict) err = NULL;
    MigrateStart args = { .hide_stderr = true };
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
    err = qtest_qmp_assert_failure_ref(to,
        "{ 'execute': 'migrate-incoming', 'arguments': { 'uri': %s } }", uri);
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                    "Parameter 'disk-backed-node': no block node named '"
                    NODE "'");
    qobject_unref(err);

    /* a source node that is not raw */
    qtest_qmp_assert_success(from, "{ 'execute': 'blockdev-add', "
                             "'arguments': { 'driver': 'null-co', "
                             "'node-name': 'nul0' } }");
    migrate_set_capability(from, "return-path", true);
    migrate_set_capability(from, "disk-backed-pages", true);
    migrate_set_parameter_str(from, "disk-backed-node", "nul0");
    err = qtest_qmp_assert_failure_ref(from,
        "{ 'execute': 'migrate', 'arguments': { 'uri': %s } }", uri);
    g_assert_nonnull(strstr(qdict_get_str(err, "desc"),
                            "only raw nodes are supported"));
    /* nothing was started */
    rsp = migrate_query(from);
    g_assert_false(qdict_haskey(rsp, "status"));
    qobject_unref(rsp);
    qtest_quit(from);
    qtest_quit(to);
    unlink(disk);
    unlink_serials();
}

static void assert_caps_refused(QTestState *who, const char *other,
                                const char *error)
{
    g_autoptr(QDict) err = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ "
        "{ 'capability': 'return-path', 'state': true }, "
        "{ 'capability': 'disk-backed-pages', 'state': true }, "
        "{ 'capability': %s, 'state': true } ] } }", other);

    g_assert_nonnull(strstr(qdict_get_str(err, "desc"), error));
}

/* Capability conflicts, parameters, HMP, snapshots */
static void test_disk_backed_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    g_autoptr(QDict) err = NULL;
    QDict *rsp;
    char *hmp;

    err = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ "
        "{ 'capability': 'disk-backed-pages', 'state': true } ] } }");
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                    "Capability 'disk-backed-pages' requires capability "
                    "'return-path'");
    qobject_unref(err);
    err = NULL;
    assert_caps_refused(who, "multifd", "conflicts with capability "
                        "'multifd'");
    assert_caps_refused(who, "xbzrle", "conflicts with capability 'xbzrle'");
    assert_caps_refused(who, "postcopy-ram", "conflicts with capability "
                        "'postcopy-ram'");
    assert_caps_refused(who, "mapped-ram", "conflicts with capability "
                        "'mapped-ram'");
    assert_caps_refused(who, "background-snapshot", "not compatible with");

    err = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-parameters', 'arguments': "
        "{ 'disk-backed-map': 4097 } }");
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                    "Parameter 'disk-backed-map' must be aligned to 4096 "
                    "bytes, not 0x1001");
    qobject_unref(err);
    err = NULL;

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
    err = qtest_qmp_assert_failure_ref(who,
        "{ 'execute': 'migrate-set-capabilities', 'arguments': "
        "{ 'capabilities': [ "
        "{ 'capability': 'return-path', 'state': true }, "
        "{ 'capability': 'disk-backed-pages', 'state': true } ] } }");
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                    "Capability 'disk-backed-pages' must be set before "
                    "incoming starts");
    qtest_quit(who);
}

void migration_test_add_disk_backed_pages(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    migration_test_add("/migration/disk-backed-pages/refusals",
                       test_disk_backed_refusals);
    if (!env->is_x86) {
        /* the guest RAM layout above is the x86 bootblock guest's */
        return;
    }
    migration_test_add("/migration/disk-backed-pages/refs",
                       test_disk_backed_refs);
    migration_test_add("/migration/disk-backed-pages/malformed",
                       test_disk_backed_malformed);
    migration_test_add("/migration/disk-backed-pages/setup",
                       test_disk_backed_setup);
}
