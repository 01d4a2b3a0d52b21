/*
 * QTest testcases for the predictive-throttle migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"

/*
 * The paced guest dirties one page per PACE_TICKS ticks of the 3.58 MHz
 * ACPI PM timer: about 40 MB/s of its 99 MiB working set.  Over a
 * 20 MB/s link with 300 ms of downtime (6 MB) that never converges by
 * itself: every pass finds the whole working set dirty again.
 */
#define PACE_TICKS          358
#define LINK_BYTES_PER_SEC  (20 * 1000 * 1000)
#define DOWNTIME_MS         300
#define TIME_BUDGET_SEC     60

static char *tmpfs;

static void set_link(QTestState *who)
{
    migrate_set_parameter_int(who, "max-bandwidth", LINK_BYTES_PER_SEC);
    migrate_set_parameter_int(who, "downtime-limit", DOWNTIME_MS);
}

/* Wait for the migration to complete, or give up after @seconds. */
static bool wait_complete_within(QTestState *who, int seconds)
{
    g_autoptr(GTimer) timer = g_timer_new();

    while (g_timer_elapsed(timer, NULL) < seconds) {
        g_autofree char *status = migrate_query_status(who);

        if (g_str_equal(status, "completed")) {
            return true;
        }
        g_assert(!g_str_equal(status, "failed"));
        g_usleep(100 * 1000);
    }
    return false;
}

/*
 * With the capability the paced guest converges within the time budget
 * and every page arrives; the throttle was computed, applied and
 * released at the end.  @multifd: through multifd's channels (the
 * throttle is the source's alone, and measures what they send).
 */
static void do_test_predictive_throttle_converge(bool multifd)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .paced_dirty_ticks = PACE_TICKS,
        .caps[MIGRATION_CAPABILITY_PREDICTIVE_THROTTLE] = true,
        .caps[MIGRATION_CAPABILITY_MULTIFD] = multifd,
    };
    QTestState *from, *to;
    g_autoptr(QDict) pt = NULL;
    char *hmp;

    if (migrate_start(&from, &to, multifd ? "defer" : uri, &args)) {
        return;
    }
    if (multifd) {
        migrate_set_parameter_int(from, "multifd-channels", 2);
        migrate_set_parameter_int(to, "multifd-channels", 2);
        migrate_incoming_qmp(to, uri, NULL, "{}");
    }
    set_link(from);
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    g_assert(wait_complete_within(from, TIME_BUDGET_SEC));

    pt = migrate_query_member(from, "predictive-throttle");
    g_test_message("predictive throttle: %" PRId64 " decisions, "
                   "%" PRId64 " ms throttled, unthrottled dirty rate "
                   "%" PRId64 " B/s, bandwidth %" PRId64 " B/s",
                   qdict_get_int(pt, "decisions"),
                   qdict_get_int(pt, "throttle-time"),
                   qdict_get_int(pt, "estimated-dirty-rate"),
                   qdict_get_int(pt, "estimated-bandwidth"));
    g_assert_cmpint(qdict_get_int(pt, "decisions"), >=, 2);
    if (!multifd) {
        g_assert_cmpint(qdict_get_int(pt, "throttle-time"), >, 0);
        /* the guest was measured dirtying faster than the link */
        g_assert_cmpint(qdict_get_int(pt, "estimated-dirty-rate"), >,
                        qdict_get_int(pt, "estimated-bandwidth"));
    }
    /*
     * With multifd the channels carried more than max-bandwidth here
     * (about 30 MB/s against 20): the guest may converge without being
     * throttled, so only the model's decisions are asserted.
     */
    /* released with the migration */
    g_assert_cmpint(qdict_get_int(pt, "percentage"), ==, 0);
    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "Predictive throttle:"));
    g_free(hmp);

    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");
    migrate_end(from, to, true);
}

static void test_predictive_throttle_converge(void)
{
    do_test_predictive_throttle_converge(false);
}

static void test_predictive_throttle_multifd(void)
{
    do_test_predictive_throttle_converge(true);
}

/*
 * The same guest and link without any throttle does not converge in
 * the same time budget: the capability, not the setup, made the
 * difference above.
 */
static void test_predictive_throttle_baseline(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .paced_dirty_ticks = PACE_TICKS,
        .hide_stderr = true,
    };
    QTestState *from, *to;

    if (migrate_start(&from, &to, uri, &args)) {
        return;
    }
    set_link(from);
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    g_assert_false(wait_complete_within(from, TIME_BUDGET_SEC));
    g_assert_cmpint(get_migration_pass(from), >=, 3);

    /* the destination fails when the source cancels */
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_cancel(from);
    wait_for_migration_status(from, "cancelled", NULL);
    migrate_end(from, to, false);
}

/*
 * Rates from an earlier migration (passed as parameters) decide the
 * throttle before anything is measured: 400 MB/s unthrottled against
 * 100 MB/s at a target of 50% needs 88%.
 */
static void test_predictive_throttle_seeded(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .paced_dirty_ticks = PACE_TICKS,
        .caps[MIGRATION_CAPABILITY_PREDICTIVE_THROTTLE] = true,
        .hide_stderr = true,
    };
    QTestState *from, *to;
    g_autoptr(QDict) pt = NULL;
    QDict *rsp;

    if (migrate_start(&from, &to, uri, &args)) {
        return;
    }
    /* slow enough that the first pass is still running when we look */
    migrate_set_parameter_int(from, "max-bandwidth", 1000 * 1000);
    migrate_set_parameter_int(from, "throttle-prior-dirty-rate",
                              400 * 1000 * 1000);
    migrate_set_parameter_int(from, "throttle-prior-bandwidth",
                              100 * 1000 * 1000);
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);

    pt = migrate_query_member(from, "predictive-throttle");
    g_assert_cmpint(get_migration_pass(from), <=, 1);
    g_assert_cmpstr(qdict_get_str(pt, "state"), ==, "throttling");
    g_assert_cmpint(qdict_get_int(pt, "percentage"), ==, 88);
    g_assert_cmpint(read_migrate_property_int(from, "cpu-throttle-percentage"),
                    ==, 88);

    /* the destination fails when the source cancels */
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_cancel(from);
    wait_for_migration_status(from, "cancelled", NULL);
    /* a cancelled migration releases the throttle */
    rsp = migrate_query(from);
    g_assert_false(qdict_haskey(rsp, "cpu-throttle-percentage"));
    qobject_unref(rsp);
    migrate_end(from, to, false);
}

static int64_t get_parameter_int(QTestState *who, const char *name)
{
    QDict *rsp = qtest_qmp_assert_success_ref(who,
        "{ 'execute': 'query-migrate-parameters' }");
    int64_t value = qdict_get_int(rsp, name);

    qobject_unref(rsp);
    return value;
}

/*
 * Without seeding parameters, the rates an earlier migration attempt in
 * the same process measured decide the next attempt's first throttle:
 * after a cancelled migration, a second one to a new destination is
 * throttled before it has measured anything.
 */
static void test_predictive_throttle_history(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = {
        .paced_dirty_ticks = PACE_TICKS,
        .caps[MIGRATION_CAPABILITY_PREDICTIVE_THROTTLE] = true,
        .hide_stderr = true,
    };
    QTestState *from, *to, *to2;
    g_autoptr(QDict) pt = NULL;
    g_autoptr(GTimer) timer = g_timer_new();
    bool measured = false;

    if (migrate_start(&from, &to, uri, &args)) {
        return;
    }
    set_link(from);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");

    /* run until the model has measured the guest */
    while (!measured && g_timer_elapsed(timer, NULL) < TIME_BUDGET_SEC) {
        QDict *rsp = migrate_query(from);

        /* reported once the migration is active */
        if (qdict_haskey(rsp, "predictive-throttle")) {
            QDict *cur = qdict_get_qdict(rsp, "predictive-throttle");

            measured = qdict_get_int(cur, "estimated-dirty-rate") > 0 &&
                       qdict_get_int(cur, "estimated-bandwidth") > 0;
        }
        qobject_unref(rsp);
        g_usleep(100 * 1000);
    }
    g_assert(measured);

    migrate_cancel(from);
    qtest_set_expected_status(to, EXIT_FAILURE);
    qtest_wait_qemu(to);
    qtest_quit(to);
    wait_for_migration_status(from, "cancelled", NULL);

    args = (MigrateStart) {
        .only_target = true,
        .paced_dirty_ticks = PACE_TICKS,
        .hide_stderr = true,
    };
    if (migrate_start(&from, &to2, "defer", &args)) {
        return;
    }
    migrate_incoming_qmp(to2, "tcp:127.0.0.1:0", NULL, "{}");
    /* slow enough that the first pass is still running when we look */
    migrate_set_parameter_int(from, "max-bandwidth", 1000 * 1000);
    g_assert_cmpint(get_parameter_int(from, "throttle-prior-dirty-rate"),
                    ==, 0);
    migrate_qmp(from, to2, NULL, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);

    pt = migrate_query_member(from, "predictive-throttle");
    g_assert_cmpint(get_migration_pass(from), <=, 1);
    g_assert_cmpint(qdict_get_int(pt, "decisions"), ==, 1);
    g_assert_cmpstr(qdict_get_str(pt, "state"), ==, "throttling");
    g_assert_cmpint(qdict_get_int(pt, "percentage"), >, 0);

    qtest_set_expected_status(to2, EXIT_FAILURE);
    migrate_cancel(from);
    wait_for_migration_status(from, "cancelled", NULL);
    migrate_end(from, to2, false);
}

static bool capability_enabled(QTestState *who, const char *name)
{
    QDict *rsp = qtest_qmp(who, "{ 'execute': 'query-migrate-capabilities' }");
    QList *caps = qdict_get_qlist(rsp, "return");
    const QListEntry *e;
    bool found = false, enabled = false;

    QLIST_FOREACH_ENTRY(caps, e) {
        QDict *cap = qobject_to(QDict, qlist_entry_obj(e));

        if (g_str_equal(qdict_get_str(cap, "capability"), name)) {
            found = true;
            enabled = qdict_get_bool(cap, "state");
        }
    }
    g_assert(found);
    qobject_unref(rsp);
    return enabled;
}

/* Conflicting capabilities and bad parameter values get a clear error. */
static void test_predictive_throttle_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    char *hmp;

    migrate_set_capabilities_refused(who, "Capability 'predictive-throttle' "
                                     "conflicts with capability "
                                     "'auto-converge'",
                                     "predictive-throttle", "auto-converge",
                                     NULL);
    migrate_set_capabilities_refused(who, "Capability 'predictive-throttle' "
                                     "conflicts with capability "
                                     "'dirty-limit'",
                                     "predictive-throttle", "dirty-limit",
                                     NULL);
    migrate_set_capabilities_refused(who, "Background-snapshot is not "
                                     "compatible with predictive-throttle",
                                     "predictive-throttle",
                                     "background-snapshot", NULL);
    migrate_qmp_refused(who, "throttle-target-ratio",
                        "{ 'execute': 'migrate-set-parameters', "
                        "'arguments': { 'throttle-target-ratio': 0 } }");
    migrate_qmp_refused(who, "throttle-target-ratio",
                        "{ 'execute': 'migrate-set-parameters', "
                        "'arguments': { 'throttle-target-ratio': 101 } }");
    /* the refusals changed nothing */
    g_assert_cmpint(get_parameter_int(who, "throttle-target-ratio"), ==, 50);
    g_assert_false(capability_enabled(who, "predictive-throttle"));

    /* HMP sets and shows the parameters, and refuses the same values */
    hmp = qtest_hmp(who, "migrate_set_parameter throttle-target-ratio 40");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "migrate_set_parameter throttle-target-ratio 0");
    g_assert_nonnull(strstr(hmp, "throttle-target-ratio"));
    g_free(hmp);
    hmp = qtest_hmp(who, "migrate_set_parameter throttle-prior-bandwidth 1G");
    g_free(hmp);
    g_assert_cmpint(get_parameter_int(who, "throttle-target-ratio"), ==, 40);
    g_assert_cmpint(get_parameter_int(who, "throttle-prior-bandwidth"), ==,
                    1024 * 1024 * 1024);
    hmp = qtest_hmp(who, "info migrate_parameters");
    g_assert_nonnull(strstr(hmp, "throttle-target-ratio: 40%"));
    g_assert_nonnull(strstr(hmp, "throttle-prior-bandwidth: 1073741824"));
    g_free(hmp);
    qtest_quit(who);
}

void migration_test_add_predictive_throttle(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    migration_test_add("/migration/predictive-throttle/refusals",
                       test_predictive_throttle_refusals);

    if (!env->is_x86) {
        /* the paced guest is x86 only */
        return;
    }
    migration_test_add("/migration/predictive-throttle/seeded",
                       test_predictive_throttle_seeded);
    migration_test_add("/migration/predictive-throttle/history",
                       test_predictive_throttle_history);
    migration_test_add("/migration/predictive-throttle/converge",
                       test_predictive_throttle_converge);
    migration_test_add("/migration/predictive-throttle/baseline",
                       test_predictive_throttle_baseline);
    migration_test_add("/migration/predictive-throttle/multifd",
                       test_predictive_throttle_multifd);
}
