/*
 * QTest testcases for the rdma-pin-budget migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The refusals run anywhere: they fail before RDMA is touched.  The
 * migrations need an RDMA link; the host here has none, so "make
 * check-rdma" runs them in a TCG guest with Soft-RoCE
 * (scripts/guest/rdma-guest.sh), and they are skipped elsewhere.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/bootfile.h"
#include "migration/fault-util.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include <sys/resource.h>

#define MiB (1024 * 1024)
/* the stock guest has 150 MiB: the limit holds a small part of it */
#define PIN_LIMIT (8 * MiB)
#define SYNCS_BEFORE_CONVERGE 3
#define TIME_BUDGET_SEC 240

static char *tmpfs;

static uint64_t get_limit(QTestState *who)
{
    g_autoptr(QDict) rsp = qtest_qmp_assert_success_ref(who,
        "{ 'execute': 'query-migrate-parameters' }");

    return qdict_get_int(rsp, "rdma-pin-limit");
}

/* Conflicts, bad limits and transports get a clear error. */
static void test_rdma_pin_budget_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    struct rlimit rlim = { 8 * MiB, 8 * MiB };
    char *hmp;

    migrate_set_capabilities_refused(who, "Capability 'rdma-pin-budget' "
                                     "conflicts with capability "
                                     "'rdma-pin-all'",
                                     "rdma-pin-budget", "rdma-pin-all",
                                     NULL);
    migrate_qmp_refused(who, "'rdma-pin-limit' is smaller than 4 RDMA "
                        "chunks",
                        "{ 'execute': 'migrate-set-parameters', "
                        "'arguments': { 'rdma-pin-limit': %d } }",
                        3 * MiB);
    g_assert_cmpint(get_limit(who), ==, 0);

    /* HMP sets and shows it, and refuses the same values */
    hmp = qtest_hmp(who, "migrate_set_parameter rdma-pin-limit 64M");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "migrate_set_parameter rdma-pin-limit 1M");
    g_assert_nonnull(strstr(hmp, "smaller than 4 RDMA chunks"));
    g_free(hmp);
    g_assert_cmpint(get_limit(who), ==, 64 * MiB);
    hmp = qtest_hmp(who, "info migrate_parameters");
    g_assert_nonnull(strstr(hmp, "rdma-pin-limit: 67108864 bytes"));
    g_free(hmp);

    /* only RDMA registers memory */
    migrate_set_capability(who, "rdma-pin-budget", true);
    migrate_qmp_refused(who, "'rdma-pin-budget' needs an RDMA transport",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    qtest_quit(who);

    /* with guest RAM: not more than RAM, and not more than memlock */
    who = qtest_init("-machine pc -m 32M -nodefaults");
    migrate_qmp_refused(who, "'rdma-pin-limit' is larger than guest RAM",
                        "{ 'execute': 'migrate-set-parameters', "
                        "'arguments': { 'rdma-pin-limit': %d } }",
                        64 * MiB);
    migrate_set_capability(who, "rdma-pin-budget", true);
#ifdef CONFIG_RDMA
    migrate_qmp_refused(who, "needs parameter 'rdma-pin-limit'",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'rdma:127.0.0.1:29200' } }");
    migrate_set_parameter_int(who, "rdma-pin-limit", 16 * MiB);
    g_assert_cmpint(prlimit(qtest_pid(who), RLIMIT_MEMLOCK, &rlim, NULL),
                    ==, 0);
    migrate_qmp_refused(who, "is above the locked-memory limit "
                        "(RLIMIT_MEMLOCK, ulimit -l)",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'rdma:127.0.0.1:29200' } }");
#endif
    qtest_quit(who);

#ifdef CONFIG_RDMA
    /* the destination checks its limit too */
    who = qtest_init("-machine pc -m 32M -nodefaults -incoming defer");
    migrate_set_capability(who, "rdma-pin-budget", true);
    migrate_qmp_refused(who, "needs parameter 'rdma-pin-limit'",
                        "{ 'execute': 'migrate-incoming', "
                        "'arguments': { 'uri': 'rdma:127.0.0.1:29200' } }");
    qtest_quit(who);
#endif
}

#ifdef CONFIG_RDMA
/* The address of an RDMA link, from QEMU's helper; false if none. */
static bool rdma_link(char *addr, size_t len)
{
    FILE *pipe = popen("IP_FAMILY=ipv4 scripts/rdma-migration-helper.sh "
                       "detect 2>/dev/null", "r");
    bool ok;

    if (!pipe) {
        return false;
    }
    ok = fgets(addr, len, pipe) != NULL;
    ok = pclose(pipe) == 0 && ok;
    g_strchomp(addr);
    return ok && addr[0];
}

static bool rdma_start(QTestState **from, QTestState **to, char **uri,
                       MigrateStart *args)
{
    char addr[128] = "";

    if (!rdma_link(addr, sizeof(addr))) {
        g_test_skip("No RDMA link (scripts/rdma-migration-helper.sh setup; "
                    "make check-rdma runs this in a guest that has one)");
        return false;
    }
    /* 29200, like upstream's rdma tests, plus one: never both at once */
    *uri = g_strdup_printf("rdma:%s:29201", addr);
    return !migrate_start(from, to, "defer", args);
}

static void wait_for_syncs(QTestState *from, int syncs)
{
    g_autoptr(GTimer) timer = g_timer_new();

    for (;;) {
        g_autoptr(QDict) rsp = migrate_query_not_failed(from);
        int64_t count = 0;

        if (g_str_equal(qdict_get_str(rsp, "status"), "completed")) {
            return;
        }
        if (qdict_haskey(rsp, "ram")) {
            count = qdict_get_int(qdict_get_qdict(rsp, "ram"),
                                  "dirty-sync-count");
        }
        if (count >= syncs) {
            return;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, TIME_BUDGET_SEC);
        g_usleep(100 * 1000);
    }
}

/* The migration fails, from any state on the way (switchover's too) */
static void wait_for_failed(QTestState *from)
{
    g_autoptr(GTimer) timer = g_timer_new();

    for (;;) {
        g_autofree char *state = migrate_query_status(from);

        g_assert_cmpstr(state, !=, "completed");
        if (g_str_equal(state, "failed")) {
            break;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, TIME_BUDGET_SEC);
        g_usleep(100 * 1000);
    }
}

static void log_budget(const char *side, QDict *pb)
{
    g_test_message("%s: peak %" PRId64 " of %" PRId64 " bytes, pinned %"
                   PRId64 ", %" PRId64 " registrations, %" PRId64
                   " unregistrations, %" PRId64 " reuses, %" PRId64
                   " stalls", side, qdict_get_int(pb, "peak"),
                   qdict_get_int(pb, "limit"), qdict_get_int(pb, "pinned"),
                   qdict_get_int(pb, "registrations"),
                   qdict_get_int(pb, "unregistrations"),
                   qdict_get_int(pb, "reuses"), qdict_get_int(pb, "stalls"));
}

/*
 * A live migration of the stock guest, 150 MiB rewritten all the time,
 * through passes of the whole RAM with 8 MiB pinned at most: both sides
 * stay within the limit, chunks are unregistered and registered again,
 * and the destination's every page is checked.  @with: a capability of
 * the composition matrix on the source too.
 */
static void do_test_rdma_pin_budget_limit(const char *with)
{
    MigrateStart args = { .caps[MIGRATION_CAPABILITY_RDMA_PIN_BUDGET] = true };
    g_autofree char *uri = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to;
    char *hmp;

    if (!rdma_start(&from, &to, &uri, &args)) {
        return;
    }
    migrate_set_parameter_int(from, "rdma-pin-limit", PIN_LIMIT);
    migrate_set_parameter_int(to, "rdma-pin-limit", PIN_LIMIT);
    if (with) {
        migrate_set_capability(from, with, true);
    }
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");

    /* passes, then let it end */
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_syncs(from, SYNCS_BEFORE_CONVERGE);
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "rdma-pin-budget");
    dst = migrate_query_member(to, "rdma-pin-budget");
    log_budget("source", src);
    log_budget("destination", dst);
    g_assert_cmpint(qdict_get_int(src, "limit"), ==, PIN_LIMIT);
    g_assert_cmpint(qdict_get_int(src, "peak"), >, 0);
    g_assert_cmpint(qdict_get_int(src, "peak"), <=, PIN_LIMIT);
    g_assert_cmpint(qdict_get_int(src, "pinned"), <=, PIN_LIMIT);
    g_assert_cmpint(qdict_get_int(dst, "peak"), >, 0);
    g_assert_cmpint(qdict_get_int(dst, "peak"), <=, PIN_LIMIT);
    /* guest RAM is many times the limit: chunks had to make room */
    g_assert_cmpint(qdict_get_int(src, "unregistrations"), >, 0);
    g_assert_cmpint(qdict_get_int(dst, "unregistrations"), >, 0);
    g_assert_cmpint(qdict_get_int(src, "registrations"), >=,
                    150 * MiB / (1 * MiB) / 2);
    /* the destination registers only what the source asks for */
    g_assert_cmpint(qdict_get_int(dst, "registrations"), <=,
                    qdict_get_int(src, "registrations"));
    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "RDMA pin budget:"));
    g_free(hmp);

    /* checks every page of the destination */
    migrate_end(from, to, true);
}

static void test_rdma_pin_budget_limit(void)
{
    do_test_rdma_pin_budget_limit(NULL);
}

/* The composition matrix (composition-tests.c) */
void migration_test_rdma_pin_budget_with(const char *with)
{
    do_test_rdma_pin_budget_limit(with);
}

static void test_rdma_pin_budget_with(void *name)
{
    migration_test_rdma_pin_budget_with(strrchr(name, '/') + 1);
}

/*
 * A source without the capability registers as much as it likes; a
 * destination with it refuses to go over its limit, the migration
 * fails, and the source guest runs on.
 */
static void test_rdma_pin_budget_dest_refuses(void)
{
    MigrateStart args = { .hide_stderr = true };
    g_autofree char *uri = NULL;
    g_autoptr(QDict) st = NULL;
    QTestState *from, *to;
    uint8_t first;
    g_autoptr(GTimer) timer = g_timer_new();

    if (!rdma_start(&from, &to, &uri, &args)) {
        return;
    }
    migrate_set_capability(to, "rdma-pin-budget", true);
    migrate_set_parameter_int(to, "rdma-pin-limit", PIN_LIMIT);
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    migrate_ensure_converge(from);
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_qmp(from, to, uri, NULL, "{}");
    /* the failure may come at switchover: any state on the way is fine */
    wait_for_failed(from);
    qtest_wait_qemu(to);
    qtest_quit(to);

    st = qtest_qmp_assert_success_ref(from, "{ 'execute': 'query-status' }");
    g_assert_cmpstr(qdict_get_str(st, "status"), ==, "running");
    /* the source guest goes on writing its memory */
    g_timer_start(timer);
    first = qtest_readb(from, X86_TEST_MEM_START);
    while (qtest_readb(from, X86_TEST_MEM_START) == first) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 10);
        g_usleep(10 * 1000);
    }

    /* and its memory is intact: a plain migration delivers every page */
    args = (MigrateStart) { .only_target = true };
    if (migrate_start(&from, &to, "defer", &args)) {
        return;
    }
    migrate_incoming_qmp(to, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_qmp(from, to, NULL, NULL, "{}");
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    migrate_end(from, to, true);
}

/*
 * Error paths that Soft-RoCE does not produce, reached with the fault
 * injector (fault-inject.c): @rule, for the source or (@dst) the
 * destination, without its pid, armed once the migration is active.
 * The migration must fail, the destination exit with failure, and the
 * source run on, its guest writing.  (RDMA reports the cause on stderr;
 * error-desc says only "Channel error".)  With @dst_says, the
 * destination's stderr must hold it.
 */
static void do_test_rdma_pin_budget_fault(bool dst, const char *rule,
                                          const char *call,
                                          const char *dst_says)
{
    g_autofree char *dst_err = g_strdup_printf("%s/dst.err", tmpfs);
    g_autofree char *opts_target = g_strdup_printf("2>%s", dst_err);
    MigrateStart args = {
        .caps[MIGRATION_CAPABILITY_RDMA_PIN_BUDGET] = true,
        .hide_stderr = !dst_says,
        .opts_source = dst_says ? "2>/dev/null" : NULL,
        .opts_target = dst_says ? opts_target : NULL,
    };
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) rsp = NULL;
    QTestState *from, *to;
    pid_t pid;
    bool started;

    if (!fault_preload(rules)) {
        return;
    }
    started = rdma_start(&from, &to, &uri, &args);
    fault_preload_end();
    if (!started) {
        return;
    }
    pid = qtest_pid(dst ? to : from);
    migrate_set_parameter_int(from, "rdma-pin-limit", PIN_LIMIT);
    migrate_set_parameter_int(to, "rdma-pin-limit", PIN_LIMIT);
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    migrate_set_parameter_int(from, "downtime-limit", 1);
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    fault_arm(rules, "%d %s\n", pid, rule);
    wait_for_failed(from);
    g_assert_cmpint(fault_hits(rules, pid, call), ==, 1);
    rsp = migrate_query(from);
    g_test_message("source failed with: %s",
                   qdict_get_str(rsp, "error-desc"));
    qtest_wait_qemu(to);
    qtest_quit(to);
    if (dst_says) {
        g_autofree char *said = NULL;

        g_assert_true(g_file_get_contents(dst_err, &said, NULL, NULL));
        g_test_message("destination said: %s", said);
        g_assert_nonnull(strstr(said, dst_says));
        unlink(dst_err);
    }
    qobject_unref(rsp);
    rsp = qtest_qmp_assert_success_ref(from, "{ 'execute': 'query-status' }");
    g_assert_true(qdict_get_bool(rsp, "running"));
    migration_assert_guest_writes(from);
    qtest_quit(from);
    fault_cleanup(rules);
}

/* The source's budget worker cannot register a chunk (ENOMEM) */
static void test_rdma_pin_budget_fault_reg(void)
{
    g_autofree char *rule = g_strdup_printf("ibv_reg_mr * 0 %d 0 4 1 "
                                            "mig/rdma-pin", ENOMEM);

    do_test_rdma_pin_budget_fault(false, rule, "ibv_reg_mr", NULL);
}

/*
 * The source's budget worker cannot unregister a chunk to make room
 * (EINVAL): the chunk stays pinned and counted, and the budget could
 * not be kept, so the migration stops.
 */
static void test_rdma_pin_budget_fault_dereg(void)
{
    g_autofree char *rule = g_strdup_printf("ibv_dereg_mr * 0 %d 0 0 1 "
                                            "mig/rdma-pin", EINVAL);

    do_test_rdma_pin_budget_fault(false, rule, "ibv_dereg_mr", NULL);
}

/*
 * The destination cannot unregister a chunk the source asks it to
 * unregister (EINVAL): it fails the migration.
 */
static void test_rdma_pin_budget_fault_dest_dereg(void)
{
    g_autofree char *rule = g_strdup_printf("ibv_dereg_mr * 0 %d 0 0 1",
                                            EINVAL);

    do_test_rdma_pin_budget_fault(true, rule, "ibv_dereg_mr", NULL);
}

/*
 * The destination's unregister handler checks what the source names: a
 * block index past its blocks (the word at byte 24 of the message,
 * RDMARegister's current_index, set to all ones by the fault injector)
 * fails the migration instead of indexing past the block array.
 */
static void test_rdma_pin_budget_fault_unreg_block(void)
{
    /* 10: RDMA_CONTROL_UNREGISTER_REQUEST */
    const char *rule = "ibv_post_send * 10 24 0 0 1";

    do_test_rdma_pin_budget_fault(false, rule, "ibv_post_send",
                                  "'unregister' bad block index 4294967295");
}

/*
 * ... and a chunk it has not registered (the high word of the chunk
 * number, at byte 16, set to all ones) instead of unregistering from
 * past the chunk array.
 */
static void test_rdma_pin_budget_fault_unreg_chunk(void)
{
    const char *rule = "ibv_post_send * 10 16 0 0 1";

    do_test_rdma_pin_budget_fault(false, rule, "ibv_post_send",
                                  "which is not registered");
}

/*
 * The same migration of the stopped stock guest with dynamic
 * registration, rdma-pin-all, and budgets of 1/16, 1/4 and all of
 * guest RAM: each keeps to its limit, only the smaller budgets
 * unregister, and every page arrives.  The figures (total time,
 * throughput, registrations) are logged as "rdma-bench" lines for
 * "make bench-rdma".
 */
typedef struct Config {
    const char *name;
    bool pin_all;
    uint64_t limit;             /* 0: no budget */
} Config;

static void compare_one(const Config *c)
{
    MigrateStart args = {
        .caps[MIGRATION_CAPABILITY_RDMA_PIN_ALL] = c->pin_all,
        .caps[MIGRATION_CAPABILITY_RDMA_PIN_BUDGET] = c->limit != 0,
    };
    g_autofree char *uri = NULL;
    g_autoptr(QDict) rsp = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to;
    QDict *ram;
    int64_t time_ms, bytes;

    if (!rdma_start(&from, &to, &uri, &args)) {
        return;
    }
    if (c->limit) {
        migrate_set_parameter_int(from, "rdma-pin-limit", c->limit);
        migrate_set_parameter_int(to, "rdma-pin-limit", c->limit);
    }
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    qtest_qmp_assert_success(from, "{ 'execute': 'stop' }");
    migrate_ensure_converge(from);
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_complete(from);

    rsp = migrate_query(from);
    ram = qdict_get_qdict(rsp, "ram");
    time_ms = qdict_get_int(rsp, "total-time");
    bytes = qdict_get_int(ram, "transferred");
    if (c->limit) {
        src = migrate_query_member(from, "rdma-pin-budget");
        dst = migrate_query_member(to, "rdma-pin-budget");
        g_assert_cmpint(qdict_get_int(src, "peak"), <=, c->limit);
        g_assert_cmpint(qdict_get_int(dst, "peak"), <=, c->limit);
        if (c->limit >= 150 * MiB) {
            g_assert_cmpint(qdict_get_int(src, "unregistrations"), ==, 0);
        } else {
            g_assert_cmpint(qdict_get_int(src, "unregistrations"), >, 0);
        }
    }
    g_test_message("rdma-bench config=%s limit=%" PRIu64 " time_ms=%" PRId64
                   " bytes=%" PRId64 " mbps=%.1f src_peak=%" PRId64
                   " dst_peak=%" PRId64 " registrations=%" PRId64
                   " unregistrations=%" PRId64 " stalls=%" PRId64,
                   c->name, c->limit, time_ms, bytes,
                   qdict_get_double(ram, "mbps"),
                   src ? qdict_get_int(src, "peak") : -1,
                   dst ? qdict_get_int(dst, "peak") : -1,
                   src ? qdict_get_int(src, "registrations") : -1,
                   src ? qdict_get_int(src, "unregistrations") : -1,
                   src ? qdict_get_int(src, "stalls") : -1);

    qtest_qmp_assert_success(to, "{ 'execute' : 'cont'}");
    wait_for_resume(to, get_dst());
    wait_for_serial("dest_serial");
    migrate_end(from, to, true);
}

static void test_rdma_pin_budget_compare(void)
{
    static const Config configs[] = {
        { "dynamic", false, 0 },
        { "pin-all", true, 0 },
        { "budget-1/16", false, 150 * MiB / 16 / MiB * MiB },
        { "budget-1/4", false, 150 * MiB / 4 / MiB * MiB },
        { "budget-all", false, 150 * MiB },
    };

    for (int i = 0; i < ARRAY_SIZE(configs); i++) {
        compare_one(&configs[i]);
    }
}
#endif

void migration_test_add_rdma_pin_budget(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;
    migration_test_add("/migration/rdma-pin-budget/refusals",
                       test_rdma_pin_budget_refusals);
#ifdef CONFIG_RDMA
    if (!env->is_x86) {
        /* the checks read the x86 guest's test memory */
        return;
    }
    migration_test_add("/migration/rdma-pin-budget/limit",
                       test_rdma_pin_budget_limit);
    migration_test_add("/migration/rdma-pin-budget/dest-refuses",
                       test_rdma_pin_budget_dest_refuses);
    migration_test_add("/migration/rdma-pin-budget/compare",
                       test_rdma_pin_budget_compare);
    migration_test_add("/migration/rdma-pin-budget/fault/reg",
                       test_rdma_pin_budget_fault_reg);
    migration_test_add("/migration/rdma-pin-budget/fault/dereg",
                       test_rdma_pin_budget_fault_dereg);
    migration_test_add("/migration/rdma-pin-budget/fault/dest-dereg",
                       test_rdma_pin_budget_fault_dest_dereg);
    migration_test_add_suffix("/migration/rdma-pin-budget/with/",
                              "auto-converge", test_rdma_pin_budget_with);
    migration_test_add("/migration/rdma-pin-budget/fault/unreg-block",
                       test_rdma_pin_budget_fault_unreg_block);
    migration_test_add("/migration/rdma-pin-budget/fault/unreg-chunk",
                       test_rdma_pin_budget_fault_unreg_chunk);
#endif
}
