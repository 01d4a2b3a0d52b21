/*
 * QTest testcases for the adaptive-compression migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The choice itself is unit tested (tests/unit/test-compress-choice.c);
 * these tests hold the wire: packets sent with and without compression
 * on the same channels arrive, every page checked, the choice follows
 * the link, and what is refused is refused before anything is sent.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "migration/fault-util.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"

#define CHANNELS        2
/* regions of guest RAM the stock guest leaves alone (it writes 1-100M) */
#define TEXT_ADDR       (108 * MiB)
#define NOISE_ADDR      (116 * MiB)
#define REGION_SIZE     (4 * MiB)

static char *tmpfs;

/* words, so that zstd finds what it finds in a guest's page cache */
static void fill_text(uint8_t *buf, size_t len, GRand *rand)
{
    static const char *const words[] = {
        "migration", "page", "the", "of", "dirty", "channel", "zstd",
        "guest", "memory", "and", "a", "bitmap", "to", "destination",
        "source", "packet", "in", "is", "that", "with", "QEMU", "\n",
    };
    size_t off = 0;

    while (off < len) {
        const char *w = words[g_rand_int_range(rand, 0, G_N_ELEMENTS(words))];
        size_t n = MIN(strlen(w), len - off);

        memcpy(buf + off, w, n);
        off += n;
        if (off < len) {
            buf[off++] = ' ';
        }
    }
}

static void fill_noise(uint8_t *buf, size_t len, GRand *rand)
{
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t v = g_rand_int(rand);

        memcpy(buf + i, &v, 4);
    }
}

static void check_region(QTestState *to, uint64_t addr, const uint8_t *want,
                         const char *what)
{
    g_autofree uint8_t *got = g_malloc(REGION_SIZE);

    /* in pieces: libqtest's reply parsing is quadratic in its length */
    for (size_t off = 0; off < REGION_SIZE; off += MiB) {
        qtest_bufread(to, addr + off, got + off, MiB);
    }
    for (size_t i = 0; i < REGION_SIZE; i++) {
        if (got[i] != want[i]) {
            g_test_message("%s: byte %zu is %u on the destination, %u on the "
                           "source", what, i, got[i], want[i]);
            g_assert_cmpint(got[i], ==, want[i]);
        }
    }
}

static int64_t zstd_packets(QDict *ac)
{
    return qdict_get_int(ac, "packets-zstd-1") +
           qdict_get_int(ac, "packets-zstd-3") +
           qdict_get_int(ac, "packets-zstd-6");
}

static void start_pair(QTestState **from, QTestState **to, const char *uri,
                       bool dest_cap)
{
    MigrateStart args = {
        .tcg = true,
        .caps[MIGRATION_CAPABILITY_MULTIFD] = true,
    };

    g_assert_false(migrate_start(from, to, "defer", &args));
    migrate_set_parameter_int(*from, "multifd-channels", CHANNELS);
    migrate_set_parameter_int(*to, "multifd-channels", CHANNELS);
    migrate_set_parameter_str(*from, "multifd-compression", "zstd");
    migrate_set_parameter_str(*to, "multifd-compression", "zstd");
    migrate_set_capability(*from, "adaptive-compression", true);
    if (dest_cap) {
        migrate_set_capability(*to, "adaptive-compression", true);
    }
    migrate_incoming_qmp(*to, uri, NULL, "{}");
}

/*
 * Migrate the stock guest, with a region of text and one of random
 * bytes planted, at @bandwidth bytes/s; return the source's
 * AdaptiveCompressionInfo once every page has been checked, and in
 * @limited, if not NULL, as it was before the switchover, which lifts
 * the limit.
 */
static QDict *migrate_adaptive(uint64_t bandwidth, QDict **limited)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree uint8_t *text = g_malloc(REGION_SIZE);
    g_autofree uint8_t *noise = g_malloc(REGION_SIZE);
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);
    QTestState *from, *to;
    QDict *ac;
    char *hmp;

    start_pair(&from, &to, uri, true);
    fill_text(text, REGION_SIZE, rand);
    fill_noise(noise, REGION_SIZE, rand);
    qtest_bufwrite(from, TEXT_ADDR, text, REGION_SIZE);
    qtest_bufwrite(from, NOISE_ADDR, noise, REGION_SIZE);
    migrate_set_parameter_int(from, "max-bandwidth", bandwidth);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    /* a second pass, of pages the guest's writes keep dirty */
    while (read_ram_property_int(from, "dirty-sync-count") < 2) {
        g_usleep(20 * 1000);
    }
    if (limited) {
        *limited = migrate_query_member(from, "adaptive-compression");
    }
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);

    ac = migrate_query_member(from, "adaptive-compression");
    g_test_message("%" PRIu64 " B/s: packets none %" PRId64 ", zstd-1 %"
                   PRId64 ", zstd-3 %" PRId64 ", zstd-6 %" PRId64 "; %"
                   PRId64 " bytes became %" PRId64 "; %" PRId64 " probes, %"
                   PRId64 " switches", bandwidth,
                   qdict_get_int(ac, "packets-none"),
                   qdict_get_int(ac, "packets-zstd-1"),
                   qdict_get_int(ac, "packets-zstd-3"),
                   qdict_get_int(ac, "packets-zstd-6"),
                   qdict_get_int(ac, "bytes-in"),
                   qdict_get_int(ac, "bytes-out"),
                   qdict_get_int(ac, "probes"),
                   qdict_get_int(ac, "switches"));
    hmp = qtest_hmp(from, "info migrate");
    g_assert_nonnull(strstr(hmp, "Adaptive compression:"));
    g_free(hmp);

    wait_for_resume(to, get_dst());
    check_region(to, TEXT_ADDR, text, "text");
    check_region(to, NOISE_ADDR, noise, "random bytes");
    wait_for_serial("dest_serial");
    /* checks every page of the stock guest on the destination */
    migrate_end(from, to, true);
    return ac;
}

/*
 * Uncapped: whatever the choice, each channel first sends a packet at
 * zstd level 1 (levels 3 and 6 only follow where level 1 comes near
 * the best), and later some without compression (the best on a
 * CPU-bound link, or a probe on any): both kinds arrive on the same
 * channels and every page is right.
 */
static void test_adaptive_uncapped(void)
{
    g_autoptr(QDict) ac = migrate_adaptive(64 * GiB, NULL);
    int64_t in = qdict_get_int(ac, "bytes-in");

    g_assert_cmpint(qdict_get_int(ac, "packets-zstd-1"), >=, CHANNELS);
    g_assert_cmpint(qdict_get_int(ac, "packets-none"), >, 0);
    g_assert_cmpint(qdict_get_int(ac, "probes"), >=, CHANNELS);
    /* at least the planted regions went through multifd */
    g_assert_cmpint(in, >=, 2 * REGION_SIZE);
    g_assert_cmpint(qdict_get_int(ac, "bytes-out"), <, in);
}

/*
 * A slow link: a byte not compressed costs tens of times what the
 * channel spends compressing it, so while the limit holds nearly every
 * packet is compressed (the switchover lifts it, and over loopback no
 * compression may then win), and the counters add up.
 */
static void test_adaptive_slow_link(void)
{
    g_autoptr(QDict) limited = NULL;
    g_autoptr(QDict) ac = migrate_adaptive(16 * MiB, &limited);
    int64_t none = qdict_get_int(limited, "packets-none");

    g_assert_cmpint(zstd_packets(limited), >=, 8 * none);
    g_assert_cmpint(qdict_get_int(limited, "bytes-out") * 4, <,
                    qdict_get_int(limited, "bytes-in"));
    g_assert_cmpint(qdict_get_int(ac, "switches"), >=, CHANNELS);
    /* a packet holds at most 128 pages */
    g_assert_cmpint(qdict_get_int(ac, "bytes-in"), <=,
                    (qdict_get_int(ac, "packets-none") + zstd_packets(ac)) *
                    128 * 4096);
}

/*
 * A destination without the capability is found out when the stream
 * starts, before any page; the source keeps running.
 */
static void test_adaptive_dest_without(void)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    QTestState *from, *to;

    start_pair(&from, &to, uri, false);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_fail(from, true);
    /* the destination refused the configuration: it never ran */
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_end(from, to, false);
}

/*
 * A multifd packet's header: MultiFDPacket_t (320 bytes) and the
 * offsets of its 128 pages; next_packet_size, the size of the payload
 * that follows, is at byte 20.
 */
#define PACKET_HEADER_LEN (320 + 128 * 8)
#define NEXT_PACKET_SIZE_OFF 20

/*
 * Packets whose header claims 4 GiB of payload: the destination fails
 * the migration with an error, and the source keeps running.  @match:
 * which packets of channel 0 (the fault injector's match field), "":
 * all of them, and the first with pages is a compressed one (each
 * level is tried first), which must fit the 1 MiB receive buffer;
 * without that check the destination read past it.
 */
static void do_test_adaptive_malformed(const char *match)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    QTestState *from, *to;

    if (!fault_preload(rules)) {
        g_test_skip("no fault injector");
        return;
    }
    start_pair(&from, &to, uri, true);
    fault_preload_end();
    /*
     * every packet header of channel 0, spoilt on the way out: a sync
     * packet's payload size is not read, the first one with pages fails
     */
    fault_arm(rules, "%d sendmsg-head * %d %d 0 0 -1 mig/src/send_0%s\n",
              qtest_pid(from), PACKET_HEADER_LEN, NEXT_PACKET_SIZE_OFF,
              match);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_fail(from, true);
    g_assert_cmpint(fault_hits(rules, qtest_pid(from), "sendmsg-head"), >,
                    0);
    fault_cleanup(rules);
    /* exits with the error, not on an assertion or a corrupt heap */
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_end(from, to, false);
}

static void test_adaptive_malformed(void)
{
    do_test_adaptive_malformed("");
}

/*
 * Only the packets sent without compression (flags word 0: NOCOMP, not
 * a sync), the first of which is a probe after 16 packets: one must
 * carry exactly its pages' bytes.
 */
static void test_adaptive_malformed_raw(void)
{
    do_test_adaptive_malformed(" 8=0");
}

static void test_adaptive_refusals(void)
{
    QTestState *who = qtest_init("-machine none -nodefaults");

    migrate_set_capabilities_refused(who, "Capability "
                                     "'adaptive-compression' requires "
                                     "capability 'multifd'",
                                     "adaptive-compression", NULL);
    migrate_set_capability(who, "multifd", true);
    migrate_set_capability(who, "adaptive-compression", true);
    /* multifd's default compression is none */
    migrate_qmp_refused(who, "Capability 'adaptive-compression' needs "
                        "parameter 'multifd-compression' set to 'zstd'",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    qtest_quit(who);

    /* and a destination, before it listens */
    who = qtest_init("-machine none -nodefaults -incoming defer");
    migrate_set_capability(who, "multifd", true);
    migrate_set_capability(who, "adaptive-compression", true);
    migrate_qmp_refused(who, "Capability 'adaptive-compression' needs "
                        "parameter 'multifd-compression' set to 'zstd'",
                        "{ 'execute': 'migrate-incoming', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:0' } }");
    qtest_quit(who);

    /* the channels are set up, or not, for raw packets: too late now */
    who = qtest_init("-machine none -nodefaults -incoming defer");
    migrate_set_capability(who, "multifd", true);
    migrate_incoming_qmp(who, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_capabilities_refused(who, "Capability "
                                     "'adaptive-compression' must be set "
                                     "before incoming starts",
                                     "adaptive-compression", NULL);
    qtest_quit(who);
}

void migration_test_add_adaptive_compression(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    migration_test_add("/migration/adaptive-compression/refusals",
                       test_adaptive_refusals);
#ifdef CONFIG_ZSTD
    if (!env->has_tcg || !env->is_x86) {
        /* the region checks read the x86 guest's memory; TCG for speed */
        return;
    }
    migration_test_add("/migration/adaptive-compression/uncapped",
                       test_adaptive_uncapped);
    migration_test_add("/migration/adaptive-compression/slow-link",
                       test_adaptive_slow_link);
    migration_test_add("/migration/adaptive-compression/dest-without",
                       test_adaptive_dest_without);
    migration_test_add("/migration/adaptive-compression/malformed",
                       test_adaptive_malformed);
    migration_test_add("/migration/adaptive-compression/malformed-raw",
                       test_adaptive_malformed_raw);
#endif
}
