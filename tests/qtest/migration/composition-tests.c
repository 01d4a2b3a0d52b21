/*
 * QTest testcases for the composition matrix: every pair among the
 * migration-transport capabilities and upstream's features
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * composition_pairs[] is the matrix of
 * docs/devel/migration/composition.rst (scripts/check-composition.py
 * keeps the two the same).  Each pair either works, and a migration
 * of the bootblock guest with both on checks every page on the
 * destination, or is refused, and the test checks the exact error.
 * Pairs whose migration needs a capability's own setup (a shared disk
 * and its map, a spill file and a network to cut, an RDMA link) are
 * migrated by a test in that capability's file, named in the table;
 * the others are migrated here.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"

static char *tmpfs;

typedef struct CompositionPair {
    const char *ours;           /* one of our capabilities */
    const char *with;           /* a partner: a feature, or ours */
    const char *error;          /* refused with exactly this; NULL: works */
    const char *test;           /* works: the test migrating it; NULL: here */
} CompositionPair;

#define WORKS(o, w) { o, w, NULL, NULL }
#define WORKS_IN(o, w, t) { o, w, NULL, t }
#define REFUSED(o, w, e) { o, w, e, NULL }
#define CONFLICTS(o, w, c) \
    REFUSED(o, w, "Capability '" o "' conflicts with capability '" c "'")
#define NO_RDMA(w, what) REFUSED("rdma-pin-budget", w, \
                                 "RDMA and " what " can't be used together")
#define ONE_CHANNEL "Migration requires multi-channel URIs (e.g. tcp)"

/* docs/devel/migration/composition.rst: keep them the same */
static const CompositionPair composition_pairs[] = {
    WORKS_IN("predictive-throttle", "multifd",
             "/migration/predictive-throttle/multifd"),
    WORKS("predictive-throttle", "multifd-zstd"),
    WORKS("predictive-throttle", "postcopy-ram"),
    WORKS("predictive-throttle", "postcopy-preempt"),
    WORKS("predictive-throttle", "tls"),
    WORKS("predictive-throttle", "xbzrle"),
    WORKS("predictive-throttle", "mapped-ram"),
    CONFLICTS("predictive-throttle", "auto-converge", "auto-converge"),

    WORKS("write-fault-groups", "multifd"),
    WORKS_IN("write-fault-groups", "multifd-zstd",
             "/migration/write-fault-groups/multifd"),
    WORKS_IN("write-fault-groups", "postcopy-ram",
             "/migration/write-fault-groups/postcopy"),
    WORKS_IN("write-fault-groups", "postcopy-preempt",
             "/migration/write-fault-groups/postcopy-preempt"),
    WORKS("write-fault-groups", "tls"),
    WORKS("write-fault-groups", "xbzrle"),
    WORKS("write-fault-groups", "mapped-ram"),
    WORKS("write-fault-groups", "auto-converge"),
    WORKS("write-fault-groups", "predictive-throttle"),

    REFUSED("rdma-pin-budget", "multifd", ONE_CHANNEL),
    REFUSED("rdma-pin-budget", "multifd-zstd", ONE_CHANNEL),
    NO_RDMA("postcopy-ram", "postcopy-ram"),
    REFUSED("rdma-pin-budget", "postcopy-preempt", ONE_CHANNEL),
    REFUSED("rdma-pin-budget", "tls",
            "Capability 'rdma-pin-budget' cannot be used with TLS: the "
            "RDMA transport does not encrypt"),
    NO_RDMA("xbzrle", "XBZRLE"),
    REFUSED("rdma-pin-budget", "mapped-ram",
            "Migration requires seekable transport (e.g. file)"),
    WORKS_IN("rdma-pin-budget", "auto-converge",
             "/migration/rdma-pin-budget/with/auto-converge"),
    WORKS_IN("rdma-pin-budget", "predictive-throttle",
             "/migration/rdma-pin-budget/with/predictive-throttle"),
    NO_RDMA("write-fault-groups", "write-fault-groups"),
    NO_RDMA("disk-backed-pages", "disk-backed-pages"),
    NO_RDMA("shared-file-spill", "shared-file-spill"),
    REFUSED("rdma-pin-budget", "adaptive-compression", ONE_CHANNEL),
    NO_RDMA("inflight-io-handoff", "inflight-io-handoff"),
    NO_RDMA("common-regions", "common-regions"),

    WORKS_IN("disk-backed-pages", "multifd",
             "/migration/disk-backed-pages/with/multifd"),
    WORKS_IN("disk-backed-pages", "multifd-zstd",
             "/migration/disk-backed-pages/with/multifd-zstd"),
    WORKS_IN("disk-backed-pages", "postcopy-ram",
             "/migration/disk-backed-pages/with/postcopy-ram"),
    WORKS_IN("disk-backed-pages", "postcopy-preempt",
             "/migration/disk-backed-pages/with/postcopy-preempt"),
    WORKS_IN("disk-backed-pages", "tls",
             "/migration/disk-backed-pages/with/tls"),
    WORKS_IN("disk-backed-pages", "xbzrle",
             "/migration/disk-backed-pages/with/xbzrle"),
    CONFLICTS("disk-backed-pages", "mapped-ram", "mapped-ram"),
    WORKS_IN("disk-backed-pages", "auto-converge",
             "/migration/disk-backed-pages/with/auto-converge"),
    WORKS_IN("disk-backed-pages", "predictive-throttle",
             "/migration/disk-backed-pages/with/predictive-throttle"),
    WORKS_IN("disk-backed-pages", "write-fault-groups",
             "/migration/disk-backed-pages/with/write-fault-groups"),
    WORKS_IN("disk-backed-pages", "shared-file-spill",
             "/migration/disk-backed-pages/with/shared-file-spill"),

    WORKS_IN("shared-file-spill", "multifd",
             "/migration/shared-file-spill/with/multifd"),
    WORKS_IN("shared-file-spill", "multifd-zstd",
             "/migration/shared-file-spill/with/multifd-zstd"),
    WORKS_IN("shared-file-spill", "postcopy-ram",
             "/migration/shared-file-spill/postcopy/cut/switchover"),
    WORKS_IN("shared-file-spill", "postcopy-preempt",
             "/migration/shared-file-spill/postcopy/preempt/cut"),
    WORKS_IN("shared-file-spill", "tls",
             "/migration/shared-file-spill/tls/cut"),
    CONFLICTS("shared-file-spill", "xbzrle", "xbzrle"),
    CONFLICTS("shared-file-spill", "mapped-ram", "mapped-ram"),
    WORKS_IN("shared-file-spill", "auto-converge",
             "/migration/shared-file-spill/with/auto-converge"),
    WORKS_IN("shared-file-spill", "predictive-throttle",
             "/migration/shared-file-spill/with/predictive-throttle"),
    WORKS_IN("shared-file-spill", "write-fault-groups",
             "/migration/shared-file-spill/with/write-fault-groups"),

    REFUSED("adaptive-compression", "multifd",
            "Capability 'adaptive-compression' needs parameter "
            "'multifd-compression' set to 'zstd'"),
    WORKS_IN("adaptive-compression", "multifd-zstd",
             "/migration/adaptive-compression/uncapped"),
    WORKS("adaptive-compression", "postcopy-ram"),
    WORKS("adaptive-compression", "postcopy-preempt"),
    WORKS("adaptive-compression", "tls"),
    REFUSED("adaptive-compression", "xbzrle",
            "Multifd is not compatible with xbzrle"),
    CONFLICTS("adaptive-compression", "mapped-ram", "mapped-ram"),
    WORKS("adaptive-compression", "auto-converge"),
    WORKS("adaptive-compression", "predictive-throttle"),
    WORKS("adaptive-compression", "write-fault-groups"),
    WORKS_IN("adaptive-compression", "disk-backed-pages",
             "/migration/disk-backed-pages/with/adaptive-compression"),
    WORKS_IN("adaptive-compression", "shared-file-spill",
             "/migration/shared-file-spill/with/adaptive-compression"),

    WORKS_IN("inflight-io-handoff", "multifd",
             "/migration/inflight-io-handoff/multifd"),
    WORKS("inflight-io-handoff", "multifd-zstd"),
    CONFLICTS("inflight-io-handoff", "postcopy-ram", "postcopy-ram"),
    CONFLICTS("inflight-io-handoff", "postcopy-preempt", "postcopy-ram"),
    WORKS("inflight-io-handoff", "tls"),
    WORKS("inflight-io-handoff", "xbzrle"),
    CONFLICTS("inflight-io-handoff", "mapped-ram", "mapped-ram"),
    WORKS("inflight-io-handoff", "auto-converge"),
    WORKS("inflight-io-handoff", "predictive-throttle"),
    WORKS("inflight-io-handoff", "write-fault-groups"),
    WORKS_IN("inflight-io-handoff", "disk-backed-pages",
             "/migration/disk-backed-pages/with/inflight-io-handoff"),
    CONFLICTS("inflight-io-handoff", "shared-file-spill",
              "shared-file-spill"),
    WORKS("inflight-io-handoff", "adaptive-compression"),

    WORKS_IN("common-regions", "multifd",
             "/migration/common-regions/multifd"),
    WORKS("common-regions", "multifd-zstd"),
    CONFLICTS("common-regions", "postcopy-ram", "postcopy-ram"),
    CONFLICTS("common-regions", "postcopy-preempt", "postcopy-ram"),
    WORKS("common-regions", "tls"),
    WORKS("common-regions", "xbzrle"),
    CONFLICTS("common-regions", "mapped-ram", "mapped-ram"),
    WORKS("common-regions", "auto-converge"),
    WORKS("common-regions", "predictive-throttle"),
    WORKS("common-regions", "write-fault-groups"),
    WORKS_IN("common-regions", "disk-backed-pages",
             "/migration/disk-backed-pages/with/common-regions"),
    CONFLICTS("common-regions", "shared-file-spill", "shared-file-spill"),
    WORKS("common-regions", "adaptive-compression"),
    WORKS("common-regions", "inflight-io-handoff"),
};

static const CompositionPair *composition_pair(const char *path)
{
    for (int i = 0; i < ARRAY_SIZE(composition_pairs); i++) {
        const CompositionPair *pair = &composition_pairs[i];
        g_autofree char *p = g_strdup_printf("/migration/composition/%s/%s",
                                             pair->ours, pair->with);

        if (g_str_equal(p, path)) {
            return pair;
        }
    }
    g_assert_not_reached();
}

/* How a partner is set up, for a migration or a refusal */
typedef struct Partner {
    const char *name;
    const char *caps[2];        /* set on both sides */
    const char *compression;    /* multifd's */
    bool tls;
    bool postcopy;
    bool file;                  /* mapped-ram: to a file and back */
    bool virtio_blk;            /* the guest boots from virtio-blk */
} Partner;

static const Partner partners[] = {
    { .name = "multifd", .caps = { "multifd" }, .compression = "none" },
    { .name = "multifd-zstd", .caps = { "multifd" }, .compression = "zstd" },
    { .name = "postcopy-ram", .postcopy = true },
    { .name = "postcopy-preempt", .caps = { "postcopy-preempt" },
      .postcopy = true },
    { .name = "tls", .tls = true },
    { .name = "xbzrle", .caps = { "xbzrle" } },
    { .name = "mapped-ram", .caps = { "mapped-ram" }, .file = true },
    { .name = "auto-converge", .caps = { "auto-converge" } },
    { .name = "predictive-throttle", .caps = { "predictive-throttle" } },
    { .name = "write-fault-groups", .caps = { "write-fault-groups" } },
    { .name = "rdma-pin-budget", .caps = { "rdma-pin-budget" } },
    { .name = "disk-backed-pages", .caps = { "disk-backed-pages",
                                             "return-path" } },
    { .name = "shared-file-spill", .caps = { "shared-file-spill" } },
    { .name = "adaptive-compression",
      .caps = { "multifd", "adaptive-compression" }, .compression = "zstd" },
    /* which moves the requests of virtio-blk only */
    { .name = "inflight-io-handoff", .caps = { "inflight-io-handoff" },
      .virtio_blk = true },
    { .name = "common-regions", .caps = { "common-regions", "return-path" } },
};

static const Partner *partner(const char *name)
{
    for (int i = 0; i < ARRAY_SIZE(partners); i++) {
        if (g_str_equal(partners[i].name, name)) {
            return &partners[i];
        }
    }
    g_assert_not_reached();
}

static MigrationCapability cap_index(const char *name)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (g_str_equal(MigrationCapability_str(i), name)) {
            return i;
        }
    }
    g_assert_not_reached();
}

static void set_caps(const Partner *p, bool *caps)
{
    for (int i = 0; i < ARRAY_SIZE(p->caps) && p->caps[i]; i++) {
        caps[cap_index(p->caps[i])] = true;
    }
}

/*
 * Refused: the pair's capabilities set one by one until one is refused;
 * if none is, what the transport needs, then migrate, which must be.
 */
static void test_refused(void *name)
{
    const CompositionPair *pair = composition_pair(name);
    const Partner *ours = partner(pair->ours), *with = partner(pair->with);
    bool rdma = g_str_equal(pair->ours, "rdma-pin-budget");
    bool caps[MIGRATION_CAPABILITY__MAX] = { false };
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autoptr(QDict) rsp = NULL;
    QTestState *who;
    QDict *err;

    set_caps(ours, caps);
    set_caps(with, caps);
    if (with->postcopy) {
        caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] = true;
    }
    who = qtest_init("-machine none -nodefaults");
    /* one by one: the check looks at all that are set */
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (caps[i]) {
            qobject_unref(rsp);
            rsp = qtest_qmp(who, "{ 'execute': 'migrate-set-capabilities', "
                            "'arguments': { 'capabilities': [ "
                            "{ 'capability': %s, 'state': true } ] } }",
                            MigrationCapability_str(i));
            if (qdict_haskey(rsp, "error")) {
                break;
            }
        }
    }
    if (!qdict_haskey(rsp, "error")) {
        /* refused when the migration starts */
        if (caps[MIGRATION_CAPABILITY_SHARED_FILE_SPILL]) {
            migrate_set_parameter_str(who, "spill-file", spill);
        }
        if (with->tls) {
            migrate_set_parameter_str(who, "tls-creds", "tlscredspsk0");
        }
        qobject_unref(rsp);
        rsp = qtest_qmp(who, "{ 'execute': 'migrate', 'arguments': "
                        "{ 'uri': %s } }", rdma ? "rdma:127.0.0.1:29202" :
                        "tcp:127.0.0.1:1");
    }
    g_assert_true(qdict_haskey(rsp, "error"));
    err = qdict_get_qdict(rsp, "error");
    g_test_message("%s with %s: %s", pair->ours, pair->with,
                   qdict_get_str(err, "desc"));
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==, pair->error);
    qtest_quit(who);
    unlink(spill);
}

/* The source-side capability took part */
static void assert_took_part(QTestState *from, const char *ours)
{
    g_autoptr(QDict) info = NULL;

    if (g_str_equal(ours, "write-fault-groups")) {
        info = migrate_query_member(from, "write-fault-groups");
        g_test_message("%" PRId64 " write faults in %" PRId64 " syncs",
                       qdict_get_int(info, "faults"),
                       qdict_get_int(info, "syncs"));
        g_assert_cmpint(qdict_get_int(info, "faults"), >, 0);
    } else if (g_str_equal(ours, "predictive-throttle")) {
        info = migrate_query_member(from, "predictive-throttle");
        g_assert_cmpint(qdict_get_int(info, "decisions"), >, 0);
    } else if (g_str_equal(ours, "adaptive-compression")) {
        info = migrate_query_member(from, "adaptive-compression");
        g_assert_cmpint(qdict_get_int(info, "probes"), >, 0);
    } else if (g_str_equal(ours, "inflight-io-handoff")) {
        /* nothing in flight: the report after the stream all the same */
        info = migrate_query_member(from, "inflight-io-handoff");
        g_assert_cmpint(qdict_get_int(info, "requests-moved"), ==, 0);
        g_assert_false(qdict_get_bool(info, "waiting"));
    } else if (g_str_equal(ours, "common-regions")) {
        /* no export: the fingerprint went, nothing was held */
        info = migrate_query_member(from, "common-regions");
        g_assert_cmpint(qdict_get_int(info, "pages-offered"), >, 0);
        g_assert_cmpint(qdict_get_int(info, "pages-held"), ==, 0);
    }
}

/*
 * Works, migrated here: a live migration of the bootblock guest with
 * both on, two passes at a pace the guest's writes keep dirty, then
 * the switchover (precopy's, or postcopy's), every page checked on the
 * destination; the capability's statistics show that it took part.
 * mapped-ram goes to a file and back.
 */
static void test_works(void *name)
{
    const CompositionPair *pair = composition_pair(name);
    const Partner *ours = partner(pair->ours), *with = partner(pair->with);
    const char *compression = with->compression ?: ours->compression;
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *file = g_strdup_printf("%s/%s", tmpfs,
                                            FILE_TEST_FILENAME);
    g_autofree char *file_uri = g_strdup_printf("file:%s", file);
    /* a few seconds with TCG, many more with a nested KVM */
    MigrateStart args = { .tcg = true };
    QTestState *from, *to;
    G_GNUC_UNUSED void *tls = NULL;

    set_caps(ours, args.caps);
    set_caps(with, args.caps);
    /* which moves the requests of virtio-blk only */
    args.boot_virtio_blk = args.caps[MIGRATION_CAPABILITY_INFLIGHT_IO_HANDOFF];
    if (with->postcopy) {
        args.caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] = true;
    }
#ifndef CONFIG_GNUTLS
    if (with->tls) {
        g_test_skip("TLS needs GnuTLS");
        return;
    }
#endif
#ifndef CONFIG_ZSTD
    if (compression && g_str_equal(compression, "zstd")) {
        g_test_skip("zstd is not built in");
        return;
    }
#endif
    if (migrate_start(&from, &to, "defer", &args)) {
        return;
    }
    if (compression) {
        migrate_set_parameter_str(from, "multifd-compression", compression);
        migrate_set_parameter_str(to, "multifd-compression", compression);
    }
#ifdef CONFIG_GNUTLS
    if (with->tls) {
        tls = migrate_hook_start_tls_psk_match(from, to);
    }
#endif
    if (args.caps[MIGRATION_CAPABILITY_XBZRLE]) {
        migrate_set_parameter_int(from, "xbzrle-cache-size", 32 * MiB);
    }
    wait_for_serial("src_serial");

    if (with->file) {
        /* live, and done once the dirty pages fit a downtime of 30 s */
        migrate_ensure_converge(from);
        migrate_qmp(from, to, file_uri, NULL, "{}");
        wait_for_migration_complete(from);
        assert_took_part(from, pair->ours);
        migrate_incoming_qmp(to, file_uri, NULL, "{}");
        wait_for_migration_complete(to);
        qtest_qmp_assert_success(to, "{ 'execute' : 'cont'}");
    } else {
        migrate_incoming_qmp(to, uri, NULL, "{}");
        /* passes of about 2 s that the guest's writes keep dirty */
        migrate_set_parameter_int(from, "max-bandwidth", 64 * MiB);
        migrate_set_parameter_int(from, "downtime-limit", 1);
        migrate_qmp(from, to, uri, NULL, "{}");
        while (read_ram_property_int(from, "dirty-sync-count") < 2) {
            g_usleep(20 * 1000);
        }
        if (with->postcopy) {
            /* waits for RESUME */
            migrate_postcopy_start(from, to, get_src());
        } else {
            migrate_ensure_converge(from);
        }
        wait_for_migration_complete(from);
        assert_took_part(from, pair->ours);
    }
    if (!with->postcopy) {
        wait_for_resume(to, get_dst());
    }
    wait_for_serial("dest_serial");
#ifdef CONFIG_GNUTLS
    if (with->tls) {
        migrate_hook_end_tls_psk(from, to, tls);
    }
#endif
    /* checks every page of the destination */
    migrate_end(from, to, true);
    unlink(file);
}

/*
 * The "with" tests of one capability, run with a capability of another
 * group.  They are registered here, under the first capability's path,
 * so that each group's own file knows only its own capability.
 *
 * with_partner(): a partner of another series that both sides act on,
 * described as partners[] has it, in *@mp; NULL for one that only the
 * source acts on, which the test sets up by its name.
 */
static const MigrationPartner *with_partner(const char *name,
                                            MigrationPartner *mp)
{
    static const char *const both_sides[] = {
        "common-regions", "inflight-io-handoff", "adaptive-compression",
    };
    const Partner *p = partner(name);

    for (int i = 0; i < ARRAY_SIZE(both_sides); i++) {
        if (g_str_equal(both_sides[i], name)) {
            *mp = (MigrationPartner) {
                .name = p->name,
                .caps = { p->caps[0], p->caps[1] },
                .compression = p->compression,
                .boot_virtio_blk = p->virtio_blk,
            };
            return mp;
        }
    }
    return NULL;
}

static void test_disk_backed_with(void *name)
{
    const char *with = strrchr(name, '/') + 1;
    MigrationPartner mp;

    /* disk-backed-pages' planted references, beside the other one */
    migration_test_disk_backed_with(with, with_partner(with, &mp));
}

static void test_spill_with(void *name)
{
    const char *with = strrchr(name, '/') + 1;
    MigrationPartner mp;

    /* shared-file-spill's channels tee the other one's stream; cut */
    migration_test_spill_with(with, with_partner(with, &mp));
}

#ifdef CONFIG_RDMA
static void test_rdma_pin_budget_with(void *name)
{
    migration_test_rdma_pin_budget_with(strrchr(name, '/') + 1);
}
#endif

static void add_with_tests(MigrationTestEnv *env)
{
    static const char *const disk_backed_with[] = {
        "predictive-throttle", "write-fault-groups", "common-regions",
    };
    static const char *const spill_with[] = {
        "predictive-throttle", "write-fault-groups",
    };

    if (!env->is_x86) {
        /* the planted pages are in the x86 guest's RAM */
        return;
    }
    for (int i = 0; i < ARRAY_SIZE(disk_backed_with); i++) {
        migration_test_add_suffix("/migration/disk-backed-pages/with/",
                                  disk_backed_with[i], test_disk_backed_with);
    }
    for (int i = 0; i < ARRAY_SIZE(spill_with); i++) {
        migration_test_add_suffix("/migration/shared-file-spill/with/",
                                  spill_with[i], test_spill_with);
    }
#ifdef CONFIG_RDMA
    migration_test_add_suffix("/migration/rdma-pin-budget/with/",
                              "predictive-throttle", test_rdma_pin_budget_with);
#endif
    if (!env->has_tcg) {
        return;
    }
    /* libqos drives the guest's PCI bus; TCG for speed */
    migration_test_add_suffix("/migration/disk-backed-pages/with/",
                              "inflight-io-handoff", test_disk_backed_with);
#ifdef CONFIG_ZSTD
    migration_test_add_suffix("/migration/disk-backed-pages/with/",
                              "adaptive-compression", test_disk_backed_with);
    migration_test_add_suffix("/migration/shared-file-spill/with/",
                              "adaptive-compression", test_spill_with);
#endif
}

void migration_test_add_composition(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    add_with_tests(env);

    for (int i = 0; i < ARRAY_SIZE(composition_pairs); i++) {
        const CompositionPair *pair = &composition_pairs[i];
        g_autofree char *path = g_strdup_printf("/migration/composition/%s/",
                                                pair->ours);

        if (pair->error) {
            migration_test_add_suffix(path, pair->with, test_refused);
        } else if (!pair->test && env->has_tcg) {
            migration_test_add_suffix(path, pair->with, test_works);
        }
        /* else: the named test migrates it */
    }
}
