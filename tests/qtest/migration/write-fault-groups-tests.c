/*
 * QTest testcases for the write-fault-groups migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/bootfile.h"
#include "migration/fault-util.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qemu/userfaultfd.h"
#include <sys/ioctl.h>

/* dirty bitmap syncs to run through before letting the migration end */
#define SYNCS_BEFORE_CONVERGE 6
#define TIME_BUDGET_SEC       120
#define LINK_BYTES_PER_SEC    (100 * 1000 * 1000)

static char *tmpfs;
static bool has_uffd_wp;
static bool is_x86;

typedef enum WFGPostcopy {
    WFG_PRECOPY,
    WFG_POSTCOPY,               /* switch over to postcopy-ram */
    WFG_POSTCOPY_PREEMPT,       /* ... with postcopy-preempt */
} WFGPostcopy;

/* Does this host kernel offer userfaultfd write-protection? */
static bool uffd_wp_check(void)
{
#ifdef CONFIG_LINUX
    uint64_t features;

    if (!uffd_query_features(&features) &&
        (features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        return true;
    }
#endif
    g_test_message("Skipping write-fault-groups migrations: no userfaultfd "
                   "write-protection");
    return false;
}

/*
 * Run the migration of the stock guest, which rewrites its 99 MiB
 * sequentially, without letting it converge until @syncs dirty bitmap
 * syncs have passed.
 */
static void run_until_syncs(QTestState *from, int syncs)
{
    g_autoptr(GTimer) timer = g_timer_new();

    for (;;) {
        QDict *rsp = migrate_query(from);
        const char *status = qdict_get_str(rsp, "status");
        bool done = g_str_equal(status, "completed");
        int64_t count = 0;

        g_assert(!g_str_equal(status, "failed"));
        if (qdict_haskey(rsp, "ram")) {
            count = qdict_get_int(qdict_get_qdict(rsp, "ram"),
                                  "dirty-sync-count");
        }
        qobject_unref(rsp);
        if (done || count >= syncs) {
            g_test_message("%" PRId64 " syncs after %.1f s", count,
                           g_timer_elapsed(timer, NULL));
            return;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, TIME_BUDGET_SEC);
        g_usleep(50 * 1000);
    }
}

/*
 * Wait until the destination's guest has completed @passes passes over
 * its memory (a 'B' on its serial port each).  A page postcopy should
 * have discarded but kept an older copy of lies where the guest had
 * not written yet in its pass: the page check cannot tell it from the
 * guest being behind until the guest's next pass over it leaves it one
 * behind its neighbours.
 */
static void wait_for_dest_passes(int passes)
{
    g_autofree char *path = g_strdup_printf("%s/dest_serial", tmpfs);
    g_autoptr(GTimer) timer = g_timer_new();

    for (;;) {
        g_autofree char *text = NULL;
        int n = 0;

        if (g_file_get_contents(path, &text, NULL, NULL)) {
            for (char *c = text; *c; c++) {
                n += *c == 'B';
            }
        }
        if (n >= passes) {
            return;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, TIME_BUDGET_SEC);
        g_usleep(20 * 1000);
    }
}

/*
 * @compression: through multifd's channels with this compression, NULL:
 * the main channel only.  @postcopy: switch over to postcopy once the
 * syncs have passed, instead of converging.  The capability is the
 * source's alone.
 */
static QDict *migrate_with_write_faults_opts(uint32_t group_max,
                                            const char *compression,
                                            WFGPostcopy postcopy)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .caps[MIGRATION_CAPABILITY_MULTIFD] = !!compression,
        .caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] = postcopy != WFG_PRECOPY,
        .caps[MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] =
            postcopy == WFG_POSTCOPY_PREEMPT,
    };
    QTestState *from, *to;
    QDict *wf;
    char *hmp;

    /* multifd's parameters and postcopy-preempt: before incoming starts */
    bool defer = compression || postcopy == WFG_POSTCOPY_PREEMPT;

    if (migrate_start(&from, &to, defer ? "defer" : uri, &args)) {
        return NULL;
    }
    if (compression) {
        migrate_set_parameter_str(from, "multifd-compression", compression);
        migrate_set_parameter_str(to, "multifd-compression", compression);
    }
    if (defer) {
        migrate_incoming_qmp(to, uri, NULL, "{}");
    }
    /* only the source: the destination may be a QEMU without it */
    migrate_set_capability(from, "write-fault-groups", true);
    migrate_set_parameter_int(from, "write-fault-group-max", group_max);
    /* passes of about a second, and a downtime no pass can meet */
    migrate_set_parameter_int(from, "max-bandwidth", LINK_BYTES_PER_SEC);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    run_until_syncs(from, SYNCS_BEFORE_CONVERGE);
    if (postcopy != WFG_PRECOPY) {
        /*
         * The destination discards what the faults marked dirty since
         * each page was sent, and asks for it
         */
        qtest_qmp_assert_success(from, "{ 'execute': "
                                 "'migrate-start-postcopy' }");
        wait_for_stop(from, get_src());
    } else {
        migrate_ensure_converge(from);
    }
    wait_for_migration_complete(from);

    wf = migrate_query_member(from, "write-fault-groups");
    g_test_message("group max %" PRIu32 ": %" PRId64 " faults made %"
                   PRId64 " pages writable (%" PRId64 " neighbours, %"
                   PRId64 " unchanged), %"
                   PRId64 " pages dirtied in %" PRId64 " syncs, mean group "
                   "%.2f", group_max, qdict_get_int(wf, "faults"),
                   qdict_get_int(wf, "pages-unprotected"),
                   qdict_get_int(wf, "neighbour-pages"),
                   qdict_get_int(wf, "pages-unchanged"),
                   qdict_get_int(wf, "pages-dirtied"),
                   qdict_get_int(wf, "syncs"),
                   qdict_get_double(wf, "mean-group-size"));
    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "Write fault groups:"));
    g_free(hmp);

    qtest_qmp_eventwait(to, "RESUME");
    if (postcopy != WFG_PRECOPY) {
        wait_for_migration_complete(to);
        wait_for_dest_passes(3);
    }
    wait_for_serial("dest_serial");
    /* checks every page of the destination */
    migrate_end(from, to, true);
    return wf;
}

static QDict *migrate_with_write_faults_via(uint32_t group_max,
                                           const char *compression)
{
    return migrate_with_write_faults_opts(group_max, compression,
                                          WFG_PRECOPY);
}

static QDict *migrate_with_write_faults(uint32_t group_max)
{
    return migrate_with_write_faults_via(group_max, NULL);
}

/* One page per fault: every fault makes exactly its page writable. */
static void test_write_fault_groups_per_page(void)
{
    g_autoptr(QDict) wf = migrate_with_write_faults(1);

    if (!wf) {
        return;
    }
    g_assert_cmpint(qdict_get_int(wf, "faults"), >, 0);
    g_assert_cmpint(qdict_get_int(wf, "pages-unprotected"), ==,
                    qdict_get_int(wf, "faults"));
    g_assert_cmpint(qdict_get_int(wf, "neighbour-pages"), ==, 0);
    g_assert_cmpint(qdict_get_int(wf, "pages-dirtied"), <=,
                    qdict_get_int(wf, "faults"));
    g_assert_cmpfloat(qdict_get_double(wf, "mean-group-size"), ==, 1.0);
}

/*
 * Groups: the sequential writer takes at least 8x fewer faults than it
 * dirties pages (the goal against per-page tracking), and the groups
 * grew.
 */
static void test_write_fault_groups_groups(void)
{
    g_autoptr(QDict) wf = migrate_with_write_faults(64);

    if (!wf) {
        return;
    }
    g_assert_cmpint(qdict_get_int(wf, "faults"), >, 0);
    g_assert_cmpint(qdict_get_int(wf, "faults") * 8, <,
                    qdict_get_int(wf, "pages-dirtied"));
    g_assert_cmpint(qdict_get_int(wf, "neighbour-pages"), >, 0);
    g_assert_cmpfloat(qdict_get_double(wf, "mean-group-size"), >, 1.0);
}

/*
 * Through multifd's channels, zstd-compressed: the faults track what the
 * guest writes as well, and every page arrives.
 */
static void test_write_fault_groups_multifd(void)
{
#ifdef CONFIG_ZSTD
    g_autoptr(QDict) wf = migrate_with_write_faults_via(64, "zstd");
#else
    g_autoptr(QDict) wf = migrate_with_write_faults_via(64, "none");
#endif

    if (!wf) {
        return;
    }
    g_assert_cmpint(qdict_get_int(wf, "faults"), >, 0);
    g_assert_cmpint(qdict_get_int(wf, "faults") * 8, <,
                    qdict_get_int(wf, "pages-dirtied"));
    /* multifd's channels send from guest memory: nothing is measured */
    g_assert_cmpint(qdict_get_int(wf, "pages-unchanged"), ==, 0);
}

/* A region of guest RAM the stock guest leaves alone (it writes 1-100M) */
#define QUIET_ADDR  (108 * 1024 * 1024)
#define QUIET_PAGES 8192
#define QUIET_GROUP 64

static void wait_syncs_after(QTestState *from, int more)
{
    g_autoptr(QDict) ram = migrate_query_member(from, "ram");

    run_until_syncs(from, qdict_get_int(ram, "dirty-sync-count") + more);
}

/*
 * Measured re-sends: group neighbours that were not written are not
 * sent again, and the destination still holds every byte written.
 * The test writes a 32 MiB region the guest leaves alone, with qtest:
 * three times in full and in order, which grows its groups and sends
 * every page of it, then one byte in every QUIET_GROUP pages, each of
 * which makes a group of unwritten neighbours writable.  The guest's
 * own writes leave some pages of their groups unchanged too: the
 * count over as many syncs just before is subtracted.
 */
static void test_write_fault_groups_unchanged(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree uint8_t *want = g_malloc(QUIET_PAGES * 4096);
    g_autofree uint8_t *got = g_malloc(QUIET_PAGES * 4096);
    MigrateStart args = { };
    QTestState *from, *to;
    int64_t unchanged, before, sparse = QUIET_PAGES / QUIET_GROUP;
    double mean;
    QDict *wf;

    if (migrate_start(&from, &to, uri, &args)) {
        return;
    }
    migrate_set_capability(from, "write-fault-groups", true);
    migrate_set_parameter_int(from, "write-fault-group-max", QUIET_GROUP);
    migrate_set_parameter_int(from, "max-bandwidth", LINK_BYTES_PER_SEC);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    run_until_syncs(from, 2);

    for (int round = 1; round <= 3; round++) {
        memset(want, round, QUIET_PAGES * 4096);
        qtest_memset(from, QUIET_ADDR, round, QUIET_PAGES * 4096);
        /* taken at the first, sent before the second */
        wait_syncs_after(from, 2);
    }
    wf = migrate_query_member(from, "write-fault-groups");
    before = qdict_get_int(wf, "pages-unchanged");
    qobject_unref(wf);
    wait_syncs_after(from, 2);
    wf = migrate_query_member(from, "write-fault-groups");
    unchanged = qdict_get_int(wf, "pages-unchanged");
    before = unchanged - before;
    mean = qdict_get_double(wf, "mean-group-size");
    qobject_unref(wf);

    for (int64_t i = 0; i < sparse; i++) {
        want[i * QUIET_GROUP * 4096 + 7] = 0x80 + i;
        qtest_writeb(from, QUIET_ADDR + i * QUIET_GROUP * 4096 + 7,
                     0x80 + i);
    }
    wait_syncs_after(from, 2);
    wf = migrate_query_member(from, "write-fault-groups");
    unchanged = qdict_get_int(wf, "pages-unchanged") - unchanged;
    g_test_message("%" PRId64 " single-byte writes: %" PRId64 " group "
                   "pages found unchanged (%" PRId64 " in as many syncs "
                   "before), mean group %.2f (%.2f before)", sparse,
                   unchanged, before, qdict_get_double(wf, "mean-group-size"),
                   mean);
    /*
     * The groups grew to at least 16 pages in the three rounds; each
     * write left the other pages of its group unchanged
     */
    g_assert_cmpint(unchanged - before, >=, sparse * 15);
    /*
     * ... and the controller heard of it: the 16 regions where nearly
     * all group pages were unwritten halved their groups (from 64, a
     * drop of about 6.8 in the mean over the guest's 75 regions)
     */
    g_assert_cmpfloat(qdict_get_double(wf, "mean-group-size"), <=,
                      mean - 3);
    qobject_unref(wf);

    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    /* in pieces: libqtest's reply parsing is quadratic in its length */
    for (size_t off = 0; off < QUIET_PAGES * 4096; off += 1024 * 1024) {
        qtest_bufread(to, QUIET_ADDR + off, got + off, 1024 * 1024);
    }
    for (size_t i = 0; i < QUIET_PAGES * 4096; i++) {
        if (got[i] != want[i]) {
            g_test_message("byte %zu of the region: %u on the destination, "
                           "%u written", i, got[i], want[i]);
            g_assert_cmpint(got[i], ==, want[i]);
        }
    }
    wait_for_serial("dest_serial");
    migrate_end(from, to, true);
}

/*
 * Postcopy: the faults track the guest's writes until the switchover,
 * and the bitmap postcopy takes then, with the guest stopped, says
 * which pages the destination must discard and ask for.  A page that
 * bitmap missed stays stale on the destination, which the page check
 * finds.  @preempt: with postcopy-preempt.
 */
static void do_test_write_fault_groups_postcopy(WFGPostcopy postcopy)
{
    g_autoptr(QDict) wf = migrate_with_write_faults_opts(64, NULL, postcopy);

    if (!wf) {
        return;
    }
    g_assert_cmpint(qdict_get_int(wf, "faults"), >, 0);
    g_assert_cmpint(qdict_get_int(wf, "syncs"), >=, SYNCS_BEFORE_CONVERGE);
}

static void test_write_fault_groups_postcopy(void)
{
    do_test_write_fault_groups_postcopy(WFG_POSTCOPY);
}

static void test_write_fault_groups_postcopy_preempt(void)
{
    do_test_write_fault_groups_postcopy(WFG_POSTCOPY_PREEMPT);
}

/*
 * A cancelled migration leaves the source running with its RAM writable
 * and intact: its guest goes on writing, and a second migration without
 * the capability delivers every page.
 */
static void test_write_fault_groups_cancel(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .caps[MIGRATION_CAPABILITY_WRITE_FAULT_GROUPS] = true,
        .hide_stderr = true,
    };
    QTestState *from, *to, *to2;
    g_autoptr(QDict) wf = NULL;
    g_autofree char *status = NULL;

    if (migrate_start(&from, &to, uri, &args)) {
        return;
    }
    migrate_set_parameter_int(from, "max-bandwidth", LINK_BYTES_PER_SEC);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    run_until_syncs(from, 3);
    status = migrate_query_status(from);
    g_assert_cmpstr(status, ==, "active");
    wf = migrate_query_member(from, "write-fault-groups");
    g_assert_cmpint(qdict_get_int(wf, "faults"), >, 0);

    migrate_cancel(from);
    qtest_set_expected_status(to, EXIT_FAILURE);
    qtest_wait_qemu(to);
    qtest_quit(to);
    wait_for_migration_status(from, "cancelled", NULL);
    migration_assert_guest_writes(from);

    migrate_set_capability(from, "write-fault-groups", false);
    args = (MigrateStart) {
        .only_target = true,
    };
    if (migrate_start(&from, &to2, "defer", &args)) {
        return;
    }
    migrate_incoming_qmp(to2, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_ensure_converge(from);
    migrate_qmp(from, to2, NULL, NULL, "{}");
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to2, "RESUME");
    migrate_end(from, to2, true);
}

/*
 * Error paths, reached with the fault injector (fault-inject.c): one
 * UFFDIO_WRITEPROTECT fails (EIO) in the thread @thread, once @skip
 * have passed, and armed once @syncs dirty bitmap syncs have passed
 * (0: before the migration starts).  The migration must fail with
 * @error, the source run on with its RAM writable (its guest goes on
 * writing), and a second migration with the capability complete, every
 * page checked: nothing of the first is left behind.
 */
static void do_test_write_fault_groups_fault(const char *thread, int skip,
                                             int syncs, const char *error)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    MigrateStart args = {
        .caps[MIGRATION_CAPABILITY_WRITE_FAULT_GROUPS] = true,
        /* (the framework names threads: -name debug-threads=on) */
        .hide_stderr = true,
    };
    const char *never[] = { "completed", "cancelled", NULL };
    g_autoptr(QDict) rsp = NULL;
    QTestState *from, *to, *to2;
    int rc;

    if (!fault_preload(rules)) {
        return;
    }
    rc = migrate_start(&from, &to, uri, &args);
    fault_preload_end();
    if (rc) {
        return;
    }
    migrate_set_parameter_int(from, "max-bandwidth", LINK_BYTES_PER_SEC);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    qtest_set_expected_status(to, EXIT_FAILURE);
    if (!syncs) {
        fault_arm(rules, "%d ioctl anon_inode:[userfaultfd] %lu %d 0 %d 1 "
                  "%s\n", qtest_pid(from), (unsigned long)UFFDIO_WRITEPROTECT,
                  EIO, skip, thread);
    }
    migrate_qmp(from, to, uri, NULL, "{}");
    if (syncs) {
        run_until_syncs(from, syncs);
        fault_arm(rules, "%d ioctl anon_inode:[userfaultfd] %lu %d 0 %d 1 "
                  "%s\n", qtest_pid(from), (unsigned long)UFFDIO_WRITEPROTECT,
                  EIO, skip, thread);
    }
    wait_for_migration_status(from, "failed", never);
    g_assert_cmpint(fault_hits(rules, qtest_pid(from), "ioctl"), ==, 1);
    rsp = migrate_query(from);
    g_test_message("failed with: %s", qdict_get_str(rsp, "error-desc"));
    g_assert_nonnull(strstr(qdict_get_str(rsp, "error-desc"), error));
    qtest_wait_qemu(to);
    qtest_quit(to);
    migration_assert_guest_writes(from);
    fault_cleanup(rules);

    args = (MigrateStart) {
        .only_target = true,
    };
    if (migrate_start(&from, &to2, "defer", &args)) {
        return;
    }
    migrate_incoming_qmp(to2, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_qmp(from, to2, NULL, NULL, "{}");
    run_until_syncs(from, 2);
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    qobject_unref(rsp);
    rsp = migrate_query_member(from, "write-fault-groups");
    g_assert_cmpint(qdict_get_int(rsp, "faults"), >, 0);
    qtest_qmp_eventwait(to2, "RESUME");
    migrate_end(from, to2, true);
}

/*
 * Write-protecting the second RAM block fails at the start: the first,
 * protected already, is made writable again on the way out (the fail:
 * path of write_fault_groups_start()).
 */
static void test_write_fault_groups_fault_start(void)
{
    do_test_write_fault_groups_fault("mig/src/main", 1, 0,
                                     "could not write-protect RAM block");
}

/*
 * Re-protecting the groups written since the last sync fails: those
 * pages would no longer fault, so the migration fails at the next sync.
 */
static void test_write_fault_groups_fault_reprotect(void)
{
    do_test_write_fault_groups_fault("mig/src/main", 0, 2,
                                     "a userfaultfd operation failed");
}

/*
 * Making a group writable fails in the fault thread: it abandons the
 * tracking (unregisters all of guest RAM, which wakes the writer), and
 * the migration fails at the next sync.
 */
static void test_write_fault_groups_fault_abandon(void)
{
    do_test_write_fault_groups_fault("mig/wfault", 0, 2,
                                     "a userfaultfd operation failed");
}

static void assert_param_refused(QTestState *who, int64_t value)
{
    migrate_qmp_refused(who, "'write-fault-group-max' must be a power of "
                        "two from 1 to 512",
                        "{ 'execute': 'migrate-set-parameters', 'arguments': "
                        "{ 'write-fault-group-max': %" PRId64 " } }", value);
}

static int64_t get_group_max(QTestState *who)
{
    QDict *rsp = qtest_qmp_assert_success_ref(who,
        "{ 'execute': 'query-migrate-parameters' }");
    int64_t value = qdict_get_int(rsp, "write-fault-group-max");

    qobject_unref(rsp);
    return value;
}

/* Conflicts, bad group sizes and untrackable RAM get a clear error. */
static void test_write_fault_groups_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    char *hmp;

    migrate_set_capabilities_refused(who, "Background-snapshot is not "
                                     "compatible with write-fault-groups",
                                     "write-fault-groups",
                                     "background-snapshot", NULL);
    migrate_set_capabilities_refused(who, "Capability 'write-fault-groups' "
                                     "conflicts with capability "
                                     "'dirty-limit'",
                                     "write-fault-groups", "dirty-limit",
                                     NULL);
    migrate_set_capabilities_refused(who, "Capability 'write-fault-groups' "
                                     "conflicts with capability "
                                     "'rdma-pin-all'",
                                     "write-fault-groups", "rdma-pin-all",
                                     NULL);
    assert_param_refused(who, 0);
    assert_param_refused(who, 3);
    assert_param_refused(who, 1024);
    g_assert_cmpint(get_group_max(who), ==, 64);

    /* HMP sets and shows the parameter, and refuses the same values */
    hmp = qtest_hmp(who, "migrate_set_parameter write-fault-group-max 16");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "migrate_set_parameter write-fault-group-max 48");
    g_assert_nonnull(strstr(hmp, "power of two"));
    g_free(hmp);
    g_assert_cmpint(get_group_max(who), ==, 16);
    hmp = qtest_hmp(who, "info migrate_parameters");
    g_assert_nonnull(strstr(hmp, "write-fault-group-max: 16 pages"));
    g_free(hmp);

    if (!has_uffd_wp) {
        migrate_set_capabilities_refused(who, "needs userfaultfd "
                                         "write-protection",
                                         "write-fault-groups", NULL);
        qtest_quit(who);
        return;
    }

    /* without guest RAM there is nothing it cannot track */
    migrate_set_capability(who, "write-fault-groups", true);
    qtest_quit(who);

    if (!is_x86) {
        return;
    }
    /* shared RAM could be written through another mapping: refused */
    who = qtest_init("-machine pc,memory-backend=mem0 -m 64M -object "
                     "memory-backend-memfd,id=mem0,size=64M,share=on");
    migrate_set_capabilities_refused(who, "RAM block 'mem0': it is shared",
                                     "write-fault-groups", NULL);
    qtest_quit(who);
}

void migration_test_add_write_fault_groups(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;
    has_uffd_wp = uffd_wp_check();
    is_x86 = env->is_x86;

    migration_test_add("/migration/write-fault-groups/refusals",
                       test_write_fault_groups_refusals);

    if (!has_uffd_wp || !env->is_x86) {
        /* the page checks below read the x86 guest's test memory */
        return;
    }
    migration_test_add("/migration/write-fault-groups/per-page",
                       test_write_fault_groups_per_page);
    migration_test_add("/migration/write-fault-groups/groups",
                       test_write_fault_groups_groups);
    migration_test_add("/migration/write-fault-groups/unchanged",
                       test_write_fault_groups_unchanged);
    migration_test_add("/migration/write-fault-groups/cancel",
                       test_write_fault_groups_cancel);
    migration_test_add("/migration/write-fault-groups/multifd",
                       test_write_fault_groups_multifd);
    if (env->has_uffd) {
        migration_test_add("/migration/write-fault-groups/postcopy",
                           test_write_fault_groups_postcopy);
        migration_test_add("/migration/write-fault-groups/postcopy-preempt",
                           test_write_fault_groups_postcopy_preempt);
    }
    migration_test_add("/migration/write-fault-groups/fault/start",
                       test_write_fault_groups_fault_start);
    migration_test_add("/migration/write-fault-groups/fault/reprotect",
                       test_write_fault_groups_fault_reprotect);
    migration_test_add("/migration/write-fault-groups/fault/abandon",
                       test_write_fault_groups_fault_abandon);
}
