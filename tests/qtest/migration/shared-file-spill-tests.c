/*
 * QTest testcases for the shared-file-spill migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The source connects to a TCP forwarder (forwarder.h), which forwards
 * to the destination and can cut the connections after a given number
 * of bytes, as a broken network would.  The migration must then
 * complete through the spill file, with every page of the guest
 * checked.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/bootfile.h"
#include "migration/fault-util.h"
#include "migration/forwarder.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "qemu/bswap.h"
#include "migration/spill-format.h"
#include <sys/resource.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MiB (1024 * 1024)

static char *tmpfs;
/* The next spill_start_caps() sets up TLS; what it set up */
static bool want_tls;
/* multifd's compression, set on both sides before the incoming starts */
static const char *want_compression;
/* the source's x-spill-ack-timeout in ms, 0: its default */
static int want_ack_ms;
/* another series' capability, set up on both sides as well */
static const MigrationPartner *want_partner;
/* the records the destination read from the files, in the last run */
static int64_t dst_records;
static void *tls_data;

static void unlink_ack(const char *spill)
{
    g_autofree char *ack = g_strdup_printf("%s.ack", spill);
    g_autofree char *rp = g_strdup_printf("%s.rp", spill);
    g_autofree char *pages = g_strdup_printf("%s.pages", spill);

    unlink(ack);
    unlink(rp);
    unlink(pages);
}

/*
 * Hard links to the spill file and those of its return path, of
 * postcopy's preempt channel and of the two multifd channels, which
 * keep what the two QEMUs wrote after they removed them
 */
static const char *const kept_suffix[] = {
    "", ".rp", ".preempt", ".mfd0", ".mfd1"
};

static void keep_files(const char *spill, bool link_them)
{
    const char *const *suffix = kept_suffix;

    for (int i = 0; i < ARRAY_SIZE(kept_suffix); i++) {
        g_autofree char *path = g_strdup_printf("%s%s", spill, suffix[i]);
        g_autofree char *kept = g_strdup_printf("%s.kept", path);

        unlink(kept);
        /* only the stream's file is always there */
        if (link_them && (i == 0 || g_file_test(path, G_FILE_TEST_EXISTS))) {
            g_assert_cmpint(link(path, kept), ==, 0);
        }
    }
}

typedef struct SpillClear {
    uint8_t start[4];           /* the stream's first bytes */
    bool idstr;                 /* the RAM block's name is there */
    size_t zero_run;            /* the longest run of zero bytes */
} SpillClear;

/*
 * What the stream kept in the spill file @path shows in clear: its
 * records' payloads (spill-format.h: the length at byte 24 of a
 * record's header, the payload padded to 8 bytes) in file order, which
 * for the stream's file is stream order.
 */
static SpillClear spill_clear_text(const char *path)
{
    g_autofree gchar *data = NULL;
    g_autoptr(GByteArray) stream = g_byte_array_new();
    SpillClear c = { 0 };
    size_t size, pos = SPILL_HEADER_SIZE, run = 0;

    g_assert_true(g_file_get_contents(path, &data, &size, NULL));
    while (pos + SPILL_REC_HEADER_SIZE <= size &&
           ldl_le_p(data + pos) == SPILL_REC_MAGIC) {
        uint32_t len = ldl_le_p(data + pos + 24);

        g_assert_cmpuint(pos + SPILL_REC_HEADER_SIZE + len, <=, size);
        g_byte_array_append(stream, (uint8_t *)data + pos +
                            SPILL_REC_HEADER_SIZE, len);
        pos += SPILL_REC_HEADER_SIZE + ROUND_UP(len, 8);
    }
    g_assert_cmpuint(stream->len, >=, sizeof(c.start));
    memcpy(c.start, stream->data, sizeof(c.start));
    /* the test's memory backend's: the RAM block */
    c.idstr = !!memmem(stream->data, stream->len, "mig.mem", 7);
    for (size_t i = 0; i < stream->len; i++) {
        run = stream->data[i] ? 0 : run + 1;
        c.zero_run = MAX(c.zero_run, run);
    }
    return c;
}

/*
 * With TLS, the files hold nothing but the TLS session's records: they
 * begin with the handshake (a record of type 22, version 3.x), and
 * neither the stream's magic, nor a RAM block's name, nor a page of
 * the guest's (mostly zeros: the bootblock guest writes one byte of
 * each page) is there in clear.  Without TLS, the same look finds all
 * three in the stream's file.
 */
static void assert_kept_files(const char *spill, bool tls, bool multifd)
{
    g_autofree char *kept = g_strdup_printf("%s.kept", spill);
    SpillClear c = spill_clear_text(kept);

    g_test_message("the spill file's stream begins %02x %02x %02x %02x, "
                   "the RAM block's name %s in it, zero bytes run %zu at "
                   "most", c.start[0], c.start[1], c.start[2], c.start[3],
                   c.idstr ? "is" : "is not", c.zero_run);
    if (!tls) {
        g_assert_cmpuint(ldl_be_p(c.start), ==, 0x5145564d);   /* QEVM */
        g_assert_true(c.idstr);
        g_assert_cmpuint(c.zero_run, >=, 4000);
        return;
    }
    for (int i = 0; i < ARRAY_SIZE(kept_suffix); i++) {
        g_autofree char *path = g_strdup_printf("%s%s.kept", spill,
                                                kept_suffix[i]);

        /*
         * TLS: the destination writes ".rp" (its handshake) at once; the
         * preempt channel's file comes with postcopy, multifd's with it
         */
        if (i >= 2 && !(i >= 3 && multifd) &&
            !g_file_test(path, G_FILE_TEST_EXISTS)) {
            continue;
        }
        c = spill_clear_text(path);
        g_test_message("%s: begins %02x %02x, zero bytes run %zu at most",
                       path, c.start[0], c.start[1], c.zero_run);
        g_assert_cmpuint(c.start[0], ==, 22);
        g_assert_cmpuint(c.start[1], ==, 3);
        g_assert_false(c.idstr);
        g_assert_cmpuint(c.zero_run, <, 64);
    }
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

/* Neither the spill file nor its acknowledgements are left behind */
static void assert_spill_removed(const char *spill)
{
    g_autofree char *ack = g_strdup_printf("%s.ack", spill);
    g_autoptr(GTimer) timer = g_timer_new();

    /*
     * a failed source removes them in its cleanup, after "failed"; a
     * destination the .ack it wrote after that (cancel/late-ack: the
     * cause of this deadline's two failures in CI, not a slow cleanup)
     */
    while (g_file_test(spill, G_FILE_TEST_EXISTS) ||
           g_file_test(ack, G_FILE_TEST_EXISTS)) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 30);
        g_usleep(10 * 1000);
    }
}

static void set_spill(QTestState *who, const char *path)
{
    migrate_set_capability(who, "shared-file-spill", true);
    migrate_set_parameter_str(who, "spill-file", path);
}

/*
 * Both QEMUs with the capability and the same spill file, the source to
 * connect through a forwarder that cuts after @cut_after bytes (0:
 * never).  Returns the URI to migrate to, or NULL when skipped.
 */

static char *spill_start_caps(QTestState **from, QTestState **to,
                              const char *spill, uint64_t cut_after,
                              Forwarder **fw, const char *cap,
                              const char *cap2)
{
    /*
     * postcopy recovery needs out-of-band commands.  TCG: the guest
     * only has to write, and does so many times faster than with a
     * nested KVM.
     */
    g_autofree char *opts = want_ack_ms ?
        g_strdup_printf("-global migration.x-spill-ack-timeout=%d",
                        want_ack_ms) : NULL;
    MigrateStart args = { .hide_stderr = true, .oob = !!cap, .tcg = true,
                          .opts_source = opts };

    if (migrate_start(from, to, "defer", &args)) {
        return NULL;
    }
    set_spill(*from, spill);
    set_spill(*to, spill);
#ifdef CONFIG_GNUTLS
    if (want_tls) {
        tls_data = migrate_hook_start_tls_psk_match(*from, *to);
    }
#endif
    if (cap) {
        migrate_set_capability(*from, cap, true);
        migrate_set_capability(*to, cap, true);
    }
    if (cap2) {
        migrate_set_capability(*from, cap2, true);
        migrate_set_capability(*to, cap2, true);
    }
    if (want_compression) {
        migrate_set_parameter_str(*from, "multifd-compression",
                                  want_compression);
        migrate_set_parameter_str(*to, "multifd-compression",
                                  want_compression);
    }
    if (want_partner && want_partner->start) {
        want_partner->start(*from, *to);
    }
    migrate_incoming_qmp(*to, "tcp:127.0.0.1:0", NULL, "{}");
    *fw = forwarder_start(*to, cut_after);
    return g_strdup_printf("tcp:127.0.0.1:%d", (*fw)->port);
}

static char *spill_start(QTestState **from, QTestState **to,
                         const char *spill, uint64_t cut_after,
                         Forwarder **fw)
{
    return spill_start_caps(from, to, spill, cut_after, fw, NULL, NULL);
}

/* What a test leaves behind, once both QEMUs are gone */
static void spill_cleanup(Forwarder *fw, const char *spill)
{
#ifdef CONFIG_GNUTLS
    if (tls_data) {
        migrate_hook_end_tls_psk(NULL, NULL, g_steal_pointer(&tls_data));
    }
#endif
    want_tls = false;
    want_compression = NULL;
    want_ack_ms = 0;
    if (want_partner && want_partner->end) {
        want_partner->end();
    }
    want_partner = NULL;
    if (fw) {
        forwarder_free(fw);
    }
    unlink(spill);
    unlink_ack(spill);
    keep_files(spill, false);
}

/* Migrate slowly enough to take a few passes; return at the third */
static void migrate_to_third_pass(QTestState *from, QTestState *to,
                                  const char *uri)
{
    migrate_set_parameter_int(from, "max-bandwidth", 64 * MiB);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    while (read_ram_property_int(from, "dirty-sync-count") < 3) {
        g_usleep(20 * 1000);
    }
}

/*
 * How many whole records the spill file at @path holds so far
 * (spill-format.h): after the file's header, records of a header whose
 * length field is at byte 24, and the payload padded to 8 bytes.
 */
static int spill_file_records(const char *path)
{
    int fd = open(path, O_RDONLY);
    uint64_t pos = SPILL_HEADER_SIZE;
    uint8_t hdr[SPILL_REC_HEADER_SIZE];
    struct stat st;
    int n = 0;

    g_assert(fd >= 0);
    g_assert(fstat(fd, &st) == 0);
    while (pos + sizeof(hdr) <= st.st_size &&
           pread(fd, hdr, sizeof(hdr), pos) == sizeof(hdr) &&
           ldl_le_p(hdr) == SPILL_REC_MAGIC) {
        pos += sizeof(hdr) + ROUND_UP(ldl_le_p(hdr + 24), 8);
        if (pos > st.st_size) {
            break;              /* not all written yet */
        }
        n++;
    }
    close(fd);
    return n;
}

/*
 * A fault injected into one QEMU (see fault-inject.c): @rule without
 * its pid, armed at the start or at the cut; @call must then have
 * failed at least once.
 */
typedef struct SpillFault {
    bool dst;
    bool at_cut;
    const char *rule;
    const char *call;
    int min_hits;               /* 0: 1 */
    int file_errors;            /* files the source gives up */
    /*
     * With at_cut, instead of @rule: the destination's read of each
     * record header the spill file holds at the cut is delayed so that
     * the scan after the cut takes this long at least
     */
    int scan_ms;
} SpillFault;

/*
 * Migrate the live bootblock guest through the forwarder, cut after
 * @cut_after bytes (0: never) or, with @cut_third_pass, when the third
 * pass over RAM begins, and check every page on the destination.
 * @cap: a capability to set on both sides too, or NULL (want_partner:
 * another series'); @fault: NULL, or a fault the migration must
 * complete despite.
 */
static void do_test_spill(uint64_t cut_after, bool converge_first,
                          bool cut_third_pass, const char *cap,
                          const SpillFault *fault)
{
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *spill_ack = g_strdup_printf("%s.ack", spill);
    g_autofree char *spill_rp = g_strdup_printf("%s.rp", spill);
    g_autofree char *loaded = g_strdup_printf("%s.loaded", spill);
    g_autofree char *spill_pages = g_strdup_printf("%s.pages", spill);
    bool no_loaded = g_file_test(loaded, G_FILE_TEST_IS_DIR) ||
                     (fault && fault->rule &&
                      strstr(fault->rule, ".loaded"));
    g_autofree char *uri = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to, *faulty;
    Forwarder *fw;
    int scan_records = 0;
    bool tls = cap && g_str_has_suffix(cap, "tls");
    bool multifd = cap && g_str_has_prefix(cap, "multifd");
    /* no pages file with TLS or multifd */
    bool pages_file = !tls && !multifd;
    const char *cap2 = NULL;
    /* what the files hold in clear, looked at once all is over */
    bool keep = cut_third_pass && !fault;

    if (fault && !fault_preload(rules)) {
        return;
    }
    if (tls) {
        want_tls = true;
        /* a return path after the cut, through TLS */
        cap2 = "return-path";
    }
    if (want_partner) {
        /* as that series says: its capabilities, multifd's compression */
        want_compression = want_partner->compression;
        cap = want_partner->caps[0];
        cap2 = want_partner->caps[1];
        multifd = !g_strcmp0(cap, "multifd") || !g_strcmp0(cap2, "multifd");
        pages_file = !multifd;
    } else if (multifd) {
        /* "multifd", "multifd-zstd", "multifd-tls": 2 channels */
        want_compression = g_str_equal(cap, "multifd-zstd") ? "zstd" : NULL;
        cap = "multifd";
    } else if (tls) {
        cap = NULL;
    }
    uri = spill_start_caps(&from, &to, spill, cut_after, &fw, cap, cap2);
    fault_preload_end();
    if (!uri) {
        return;
    }
    faulty = fault && fault->dst ? to : from;
    if (fault && !fault->at_cut) {
        fault_arm(rules, "%d %s\n", qtest_pid(faulty), fault->rule);
    }
    if (converge_first) {
        migrate_ensure_converge(from);
    } else {
        /*
         * some passes, so that the cut can come in the middle; zstd
         * sends the bootblock guest's pages in a few bytes each
         */
        migrate_set_parameter_int(from, "max-bandwidth",
                                  want_compression ? 1 * MiB : 64 * MiB);
        migrate_set_parameter_int(from, "downtime-limit", 1);
    }
    wait_for_serial("src_serial");

    migrate_qmp(from, to, uri, NULL, "{}");
    if (!converge_first) {
        while (read_ram_property_int(from, "dirty-sync-count") < 3) {
            g_autofree char *status = migrate_query_status(from);

            /* not over before the cut */
            g_assert_true(g_str_equal(status, "setup") ||
                          g_str_equal(status, "active"));
            g_usleep(20 * 1000);
        }
        if (fault && fault->scan_ms) {
            /* the destination scans at least these after the cut */
            scan_records = spill_file_records(spill);
            g_assert_cmpint(scan_records, >, 0);
            g_test_message("%d records to scan, %d ms each", scan_records,
                           DIV_ROUND_UP(fault->scan_ms, scan_records));
            fault_arm(rules, "%d pread /spill 32 0 %d 0 %d\n",
                      qtest_pid(faulty),
                      DIV_ROUND_UP(fault->scan_ms, scan_records),
                      scan_records);
        } else if (fault && fault->at_cut) {
            fault_arm(rules, "%d %s\n", qtest_pid(faulty), fault->rule);
        }
        if (keep) {
            keep_files(spill, true);
        }
        if (cut_third_pass) {
            forwarder_cut(fw);
        }
        migrate_ensure_converge(from);
    }
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "shared-file-spill");
    dst = migrate_query_member(to, "shared-file-spill");
    g_test_message("cut after %" PRIu64 " of %" PRIu64 " bytes: source "
                   "wrote %" PRId64 " bytes in %" PRId64 " records, "
                   "failovers %" PRId64 ", %" PRId64 " pages through the "
                   "file; destination read %" PRId64 " bytes from the "
                   "files in %" PRId64 " records, failovers %" PRId64
                   ", loaded %" PRId64 " pages from the file, dropped %"
                   PRId64 " stale copies", cut_after, fw->forwarded,
                   qdict_get_int(src, "file-bytes"),
                   qdict_get_int(src, "records"),
                   qdict_get_int(src, "failovers"),
                   qdict_get_int(src, "pages"),
                   qdict_get_int(dst, "file-bytes"),
                   qdict_get_int(dst, "records"),
                   qdict_get_int(dst, "failovers"),
                   qdict_get_int(dst, "pages"),
                   qdict_get_int(dst, "stale-pages"));
    g_assert_cmpint(qdict_get_int(src, "file-errors"), ==,
                    fault ? fault->file_errors : 0);
    g_assert_cmpint(qdict_get_int(src, "file-bytes"), >, 0);
    if (!pages_file) {
        /*
         * TLS: the pages file would hold the guest's memory in clear;
         * multifd: a copy from it could overwrite a newer one
         */
        g_assert_cmpint(qdict_get_int(src, "pages"), ==, 0);
        g_assert_false(g_file_test(loaded, G_FILE_TEST_EXISTS));
        g_assert_false(g_file_test(spill_pages, G_FILE_TEST_EXISTS));
    } else {
        /* the pages writer took part; its pages reached the destination */
        g_assert_cmpint(qdict_get_int(src, "pages"), >, 0);
    }
    if ((!fault || !fault->file_errors) && pages_file) {
        g_assert_cmpint(qdict_get_int(dst, "pages"), >, 0);
    }
    g_assert_cmpint(qdict_get_int(dst, "pages"), <=,
                    qdict_get_int(src, "pages"));
    dst_records = qdict_get_int(dst, "records");
    /* the destination removed them before it started the guest */
    g_assert_false(g_file_test(spill, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(spill_ack, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(spill_rp, G_FILE_TEST_EXISTS));
    if (no_loaded) {
        /*
         * The source never learns how far the destination loaded the
         * pages file: its writer stays within 16 MiB of the file's start
         * (plus a batch of 64 pages), and the network sends the rest.
         */
        g_assert_cmpint(qdict_get_int(src, "pages"), <=, 16 * MiB / 4096 + 64);
    } else {
        g_assert_false(g_file_test(loaded, G_FILE_TEST_EXISTS));
    }
    if (multifd) {
        g_test_message("multifd channels failed over: source %" PRId64
                       ", destination %" PRId64,
                       qdict_get_int(src, "multifd-failovers"),
                       qdict_get_int(dst, "multifd-failovers"));
        for (int i = 0; i < 2; i++) {
            g_autofree char *mfd = g_strdup_printf("%s.mfd%d", spill, i);
            g_autofree char *mfd_ack = g_strdup_printf("%s.ack", mfd);

            g_assert_false(g_file_test(mfd, G_FILE_TEST_EXISTS));
            g_assert_false(g_file_test(mfd_ack, G_FILE_TEST_EXISTS));
        }
    }
    if (cut_after || cut_third_pass) {
        g_assert_true(fw->cut);
        g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 1);
        g_assert_cmpint(qdict_get_int(dst, "failovers"), ==, 1);
        g_assert_cmpint(qdict_get_int(dst, "file-bytes"), >, 0);
        if (multifd) {
            /* the channels go on sending pages after the cut */
            g_assert_cmpint(qdict_get_int(src, "multifd-failovers"), >=, 1);
            g_assert_cmpint(qdict_get_int(dst, "multifd-failovers"), >=, 1);
        }
    } else {
        g_assert_false(fw->cut);
        g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "failovers"), ==, 0);
        /*
         * The source closing a channel after its last packet is no
         * cut: it says so in .mfdN.end, and the destination reads none
         * of the files; when it cannot (@fault), the destination may
         * look at the file (test_spill_multifd_no_end()), and finds
         * nothing the network did not bring.
         */
        g_assert_cmpint(qdict_get_int(src, "multifd-failovers"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "multifd-failovers"), ==, 0);
        if (multifd && !fault) {
            g_assert_cmpint(qdict_get_int(dst, "records"), ==, 0);
        }
    }
    if (fault) {
        g_assert_cmpint(fault_hits(rules, qtest_pid(faulty), fault->call),
                        >=, MAX(MAX(fault->min_hits, scan_records), 1));
        fault_cleanup(rules);
    }
    if (keep) {
        assert_kept_files(spill, tls, multifd);
    }
    /* checks every page of the destination */
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

static void test_spill_no_fault(void)
{
    do_test_spill(0, false, false, NULL, NULL);
}

static void test_spill_cut_early(void)
{
    do_test_spill(1 * MiB, false, false, NULL, NULL);
}

static void test_spill_cut_middle(void)
{
    /* while the network and the pages file share the third pass */
    do_test_spill(0, false, true, NULL, NULL);
}

static void test_spill_cut_return_path(void)
{
    /* the return path reads on from the destination's file */
    do_test_spill(0, false, true, "return-path", NULL);
}

/*
 * With TLS: the spill files hold only the TLS session's ciphertext, and
 * the destination's session reads on from the file after the cut; so
 * does the source's, for the return path.
 */
static void test_spill_tls_cut(void)
{
    do_test_spill(0, false, true, "tls", NULL);
}

/*
 * Over two multifd channels without a cut: the source closes each
 * channel after its last packet, which the destination cannot tell from
 * a cut until it looked at the channel's file; it must not take it for
 * one.
 */
static void test_spill_multifd_no_fault(void)
{
    do_test_spill(0, false, false, "multifd", NULL);
}

/*
 * The same, but the source cannot write spill-file.mfd0.end (ENOSPC):
 * the destination reads channel 0's file when its connection ends, and
 * must not take the close for a cut (it fails if the failover is not
 * deferred to a byte the network did not bring).
 *
 * The destination sees that end only if its channel is still reading
 * when the source closes it.  If the destination's cleanup stops the
 * channel first, it never looks at the file, which is right, but
 * tests nothing: 5 runs of 34 here.  So up to five runs, until one
 * reads the file.
 */
static void test_spill_multifd_no_end(void)
{
    g_autofree char *rule =
        g_strdup_printf("pwrite /spill.mfd0.end 0 %d 0 0 -1", ENOSPC);
    SpillFault f = { .rule = rule, .call = "pwrite" };

    for (int run = 1; run <= 5; run++) {
        dst_records = 0;
        do_test_spill(0, false, false, "multifd", &f);
        if (dst_records > 0) {
            return;
        }
        g_test_message("run %d: the destination stopped channel 0 before "
                       "its end came, and read no file", run);
    }
    g_assert_cmpint(dst_records, >, 0);
}

/*
 * Over two multifd channels with TLS, cut in the third pass: every
 * channel reads on from its file beneath its TLS session, and none of
 * the files holds a guest page or the stream in clear.
 */
static void test_spill_multifd_tls_cut(void)
{
    do_test_spill(0, false, true, "multifd-tls", NULL);
}

static void test_spill_cut_last(void)
{
    /* converging at once: the cut falls in the last stage or just before */
    do_test_spill(60 * MiB, true, false, NULL, NULL);
}

/*
 * Error paths, reached with the fault injector (fault-inject.c).  First
 * those the migration completes despite, every page checked.
 */

/*
 * The pages file cannot be synced (fdatasync fails with EIO from its
 * third call on, after the header's and the block list's): the source
 * gives the file up, the pages written since the last sync go dirty
 * again, and the network sends them.
 */
static void test_spill_fault_pages_sync(void)
{
    g_autofree char *rule = g_strdup_printf("fdatasync /spill.pages 0 %d 0 2 "
                                            "-1", EIO);
    SpillFault f = { .rule = rule, .call = "fdatasync", .file_errors = 1 };

    do_test_spill(0, false, false, NULL, &f);
}

/*
 * The destination cannot write how far it loaded the pages file
 * (ENOSPC on spill-file.loaded): the source's pages writer stays
 * within 16 MiB of the file's start, and the network sends the rest.
 */
static void test_spill_fault_loaded(void)
{
    g_autofree char *rule = g_strdup_printf("pwrite /spill.loaded 0 %d 0 0 "
                                            "-1", ENOSPC);
    SpillFault f = { .dst = true, .rule = rule, .call = "pwrite" };

    do_test_spill(0, false, false, NULL, &f);
}

/*
 * Reading the spill file fails for a while after the cut (EIO on 50
 * record headers): the destination retries as it does a torn record,
 * and the migration completes through the file.
 */
static void test_spill_fault_read_retry(void)
{
    g_autofree char *rule = g_strdup_printf("pread /spill 32 %d 0 0 50", EIO);
    SpillFault f = { .dst = true, .at_cut = true, .rule = rule,
                     .call = "pread", .min_hits = 50 };

    do_test_spill(0, false, true, NULL, &f);
}

/*
 * The composition matrix (composition-tests.c): cut in the third pass
 * with another capability on both sides, @cap, or @partner, another
 * series'; the migration completes through the file, every page
 * checked.
 */
void migration_test_spill_with(const char *cap,
                               const MigrationPartner *partner)
{
    want_partner = partner;
    do_test_spill(0, false, true, partner ? NULL : cap, NULL);
}

static void test_spill_with(void *name)
{
    migration_test_spill_with(strrchr(name, '/') + 1, NULL);
}

/*
 * The destination's scan of the spill file after the cut is slow on
 * purpose: each record the file holds at the cut takes so long that
 * the scan takes 36 s at least, longer than the 30 s the source waits
 * for an acknowledgement.  The scan's progress, acknowledged, keeps the
 * source waiting, and the migration completes.
 */
static void test_spill_fault_slow_scan(void)
{
    SpillFault f = { .dst = true, .at_cut = true, .call = "pread",
                     .scan_ms = 36 * 1000 };

    do_test_spill(0, false, true, NULL, &f);
}

/*
 * Then those that fail the migration before the source commits: the
 * source must fail (or be cancelled) and run on, and the destination
 * must never start the guest: it exits with failure.
 */
static char *spill_fault_start(QTestState **from, QTestState **to,
                               const char *spill, const char *rules,
                               Forwarder **fw, const char *cap)
{
    g_autofree char *uri = NULL;

    if (!fault_preload(rules)) {
        return NULL;
    }
    uri = spill_start_caps(from, to, spill, 0, fw, cap, NULL);
    fault_preload_end();
    if (!uri) {
        return NULL;
    }
    qtest_set_expected_status(*to, EXIT_FAILURE);
    migrate_to_third_pass(*from, *to, uri);
    return g_steal_pointer(&uri);
}

/*
 * Wait for @who to exit by itself, for up to @secs (qtest_wait_qemu()
 * kills it after 30 s), and check its exit status
 */
static void wait_qemu_exit(QTestState *who, int secs)
{
    g_autoptr(GTimer) timer = g_timer_new();

    while (qtest_probe_child(who)) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, secs);
        g_usleep(100 * 1000);
    }
    qtest_wait_qemu(who);
}

/*
 * The migration fails (from any state: the last stage's too) and the
 * source runs the guest
 */
static void wait_for_fail_running(QTestState *from)
{
    const char *never[] = { "completed", "cancelled", NULL };
    g_autoptr(QDict) rsp = NULL;

    wait_for_migration_status(from, "failed", never);
    rsp = qtest_qmp_assert_success_ref(from, "{ 'execute': 'query-status' }");
    g_assert_true(qdict_get_bool(rsp, "running"));
}

/*
 * The source failed and runs on; the destination must exit with failure
 * within @secs
 */
static void spill_fault_end(QTestState *from, QTestState *to,
                            Forwarder *fw, const char *spill,
                            const char *rules, int secs)
{
    /* never started the guest: exits with failure */
    wait_qemu_exit(to, secs);
    qtest_quit(to);
    migration_assert_guest_writes(from);
    assert_spill_removed(spill);
    qtest_quit(from);
    spill_cleanup(fw, spill);
    unlink_serials();
    fault_cleanup(rules);
}

/* How a migration that a fault fails ends on the source's side */
typedef enum SpillFailEnd {
    SPILL_FAIL_FAILS,           /* it fails by itself */
    SPILL_FAIL_CANCEL,          /* cancelled once it failed over */
    SPILL_FAIL_DST_FIRST,       /* the destination exits, then cancelled */
} SpillFailEnd;

typedef struct SpillFailCase {
    bool dst;                   /* the fault is the destination's */
    const char *rule;           /* without its pid, armed before the cut */
    const char *call;
    int hits;                   /* exactly, 0: at least one */
    bool converge;              /* let it converge after the cut */
    SpillFailEnd end;
    int dst_exit_secs;          /* the destination exits within */
    const char *cap;            /* on both sides too, or NULL */
    int ack_ms;                 /* the source's x-spill-ack-timeout */
} SpillFailCase;

/*
 * Cut the network in the third pass with @c's fault armed: the migration
 * fails or is cancelled, the source runs on, and the destination exits
 * without starting the guest.
 */
static void do_test_spill_fault_fails(const SpillFailCase *c)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *uri = NULL;
    QTestState *from, *to;
    Forwarder *fw;
    pid_t pid;

    want_ack_ms = c->ack_ms;
    uri = spill_fault_start(&from, &to, spill, rules, &fw, c->cap);
    if (!uri) {
        return;
    }
    pid = qtest_pid(c->dst ? to : from);
    fault_arm(rules, "%d %s\n", pid, c->rule);
    forwarder_cut(fw);
    if (c->converge) {
        migrate_ensure_converge(from);
    }
    switch (c->end) {
    case SPILL_FAIL_FAILS:
        wait_for_fail_running(from);
        break;
    case SPILL_FAIL_CANCEL:
        for (;;) {
            g_autoptr(QDict) src = migrate_query_member(from,
                                                        "shared-file-spill");

            if (qdict_get_int(src, "failovers")) {
                break;
            }
            g_usleep(10 * 1000);
        }
        /* fall through */
    case SPILL_FAIL_DST_FIRST:
        if (c->end == SPILL_FAIL_DST_FIRST) {
            wait_qemu_exit(to, 30);
        }
        migrate_cancel(from);
        wait_for_migration_status(from, "cancelled", NULL);
        break;
    }
    if (c->hits) {
        g_assert_cmpint(fault_hits(rules, pid, c->call), ==, c->hits);
    } else {
        g_assert_cmpint(fault_hits(rules, pid, c->call), >, 0);
    }
    spill_fault_end(from, to, fw, spill, rules, c->dst_exit_secs);
}

/*
 * The source cannot sync the spill file when the network breaks
 * (fdatasync fails with EIO): it fails and runs on, and writes ABORT,
 * which the destination reads.
 */
static void test_spill_fault_failover_sync(void)
{
    g_autofree char *rule = g_strdup_printf("fdatasync /spill 0 %d 0 0 -1",
                                            EIO);
    SpillFailCase c = { .rule = rule, .call = "fdatasync",
                        .end = SPILL_FAIL_FAILS, .dst_exit_secs = 30 };

    do_test_spill_fault_fails(&c);
}

/*
 * END cannot be written (ENOSPC for its 32 bytes) after the source
 * failed over: not committed, the source fails and runs on.  It gave
 * the file up, so no ABORT follows, but it removes the file, which
 * tells the destination, waiting for END, that none will come: it
 * fails 5 s later, not after the 120 s it would wait for END.
 */
static void test_spill_fault_end_lost(void)
{
    g_autofree char *rule = g_strdup_printf("pwrite /spill 32 %d 0 0 -1",
                                            ENOSPC);
    SpillFailCase c = { .rule = rule, .call = "pwrite", .hits = 1,
                        .converge = true, .end = SPILL_FAIL_FAILS,
                        .dst_exit_secs = 25 };

    do_test_spill_fault_fails(&c);
}

/*
 * Cancelled after failing over, and ABORT cannot be written (ENOSPC):
 * the source runs on.  The destination, without END or ABORT, sees the
 * file removed and fails 5 s later, not after waiting 120 s for END.
 */
static void test_spill_fault_abort_lost(void)
{
    g_autofree char *rule = g_strdup_printf("pwrite /spill 32 %d 0 0 -1",
                                            ENOSPC);
    SpillFailCase c = { .rule = rule, .call = "pwrite", .hits = 1,
                        .end = SPILL_FAIL_CANCEL, .dst_exit_secs = 25 };

    do_test_spill_fault_fails(&c);
}

/*
 * The destination cannot write spill-file.ack (ENOSPC) after the cut:
 * the source, which sees nothing read, fails after 30 s and runs on;
 * the destination reads its ABORT.
 */
static void test_spill_fault_ack_lost(void)
{
    g_autofree char *rule = g_strdup_printf("pwrite /spill.ack 0 %d 0 0 -1",
                                            ENOSPC);
    SpillFailCase c = { .dst = true, .rule = rule, .call = "pwrite",
                        .converge = true, .end = SPILL_FAIL_FAILS,
                        .dst_exit_secs = 30 };

    do_test_spill_fault_fails(&c);
}

/*
 * multifd: the destination cannot write spill-file.mfd0.ack (ENOSPC)
 * after the cut, while it reads the stream's file and says so.  The
 * source must not commit before the destination has read the file of
 * every multifd channel that failed over: it fails after its (2 s)
 * x-spill-ack-timeout and runs on; the destination reads ABORT.
 */
static void test_spill_multifd_ack_lost(void)
{
    g_autofree char *rule =
        g_strdup_printf("pwrite /spill.mfd0.ack 0 %d 0 0 -1", ENOSPC);
    SpillFailCase c = { .dst = true, .rule = rule, .call = "pwrite",
                        .converge = true, .end = SPILL_FAIL_FAILS,
                        .dst_exit_secs = 30, .cap = "multifd",
                        .ack_ms = 2000 };

    do_test_spill_fault_fails(&c);
}

/*
 * multifd: the source cannot create spill-file.mfd0 (the sync of its
 * header fails with EIO): the migration fails at its start, with the
 * error naming the channel, and the source runs on; the destination
 * never starts the guest.
 */
static void test_spill_multifd_no_file(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) rsp = NULL;
    QTestState *from, *to;
    Forwarder *fw;

    if (!fault_preload(rules)) {
        return;
    }
    uri = spill_start_caps(&from, &to, spill, 0, &fw, "multifd", NULL);
    fault_preload_end();
    if (!uri) {
        return;
    }
    qtest_set_expected_status(to, EXIT_FAILURE);
    fault_arm(rules, "%d fdatasync /spill.mfd0 0 %d 0 0 -1\n",
              qtest_pid(from), EIO);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_fail_running(from);
    rsp = migrate_query(from);
    g_test_message("source: %s", qdict_get_str(rsp, "error-desc"));
    g_assert_nonnull(strstr(qdict_get_str(rsp, "error-desc"),
                            "multifd channel 0"));
    g_assert_cmpint(fault_hits(rules, qtest_pid(from), "fdatasync"), >, 0);
    spill_fault_end(from, to, fw, spill, rules, 30);
}

/*
 * Reading the spill file fails for good after the cut (EIO): the
 * destination gives it up after the 5 s a torn record gets, before the
 * end marker, and exits without starting the guest.  The source is
 * then cancelled (its own timeout is the corrupt test's) and runs on.
 */
static void test_spill_fault_read_error(void)
{
    g_autofree char *rule = g_strdup_printf("pread /spill 32 %d 0 0 -1", EIO);
    SpillFailCase c = { .dst = true, .rule = rule, .call = "pread",
                        .end = SPILL_FAIL_DST_FIRST, .dst_exit_secs = 30 };

    do_test_spill_fault_fails(&c);
}

/*
 * Start a migration with return-path through the forwarder and bring it
 * to its third pass; from then on the destination cannot grow
 * spill-file.rp (RLIMIT_FSIZE: EFBIG, not SIGXFSZ, which the QEMUs
 * inherit ignored), so its SHUT is lost.  Returns the URI, or NULL.
 */
static char *spill_start_shut_lost(QTestState **from, QTestState **to,
                                   const char *spill, Forwarder **fw)
{
    g_autofree char *spill_rp = g_strdup_printf("%s.rp", spill);
    struct rlimit rl;
    struct stat st;
    char *uri;

    signal(SIGXFSZ, SIG_IGN);
    uri = spill_start_caps(from, to, spill, 0, fw, "return-path", NULL);
    signal(SIGXFSZ, SIG_DFL);
    if (!uri) {
        return NULL;
    }
    migrate_to_third_pass(*from, *to, uri);
    g_assert(stat(spill_rp, &st) == 0);
    g_assert(prlimit(qtest_pid(*to), RLIMIT_FSIZE, NULL, &rl) == 0);
    rl.rlim_cur = st.st_size;
    g_assert(prlimit(qtest_pid(*to), RLIMIT_FSIZE, &rl, NULL) == 0);
    return uri;
}

/*
 * Never both run the guest: a source whose END may have started the
 * guest on the destination ends "completed" (wait_for_migration_complete()
 * asserts on "failed") and stays stopped.
 */
static void assert_source_committed(QTestState *from)
{
    g_autoptr(QDict) rsp = NULL;

    wait_for_migration_complete(from);
    rsp = qtest_qmp_assert_success_ref(from, "{ 'execute': 'query-status' }");
    g_assert_false(qdict_get_bool(rsp, "running"));
    g_assert_cmpstr(qdict_get_str(rsp, "status"), ==, "postmigrate");
}

/*
 * Never both run the guest: the network is cut, the source commits
 * through the file (END written and synced), the destination starts
 * the guest, but its SHUT never reaches the source, since the
 * destination can no longer grow spill-file.rp (RLIMIT_FSIZE set on it
 * at the cut, as a full shared file system would).  The source waits
 * for it for 30 s, and must then end "completed" and stay stopped,
 * never fail and run the guest again beside the destination.
 */
static void test_spill_shut_lost(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *uri = NULL;
    g_autofree char *error = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) rsp = NULL;
    QTestState *from, *to;
    Forwarder *fw;

    uri = spill_start_shut_lost(&from, &to, spill, &fw);
    if (!uri) {
        return;
    }
    forwarder_cut(fw);
    migrate_ensure_converge(from);

    /* the destination has it all and runs the guest */
    qtest_qmp_eventwait(to, "RESUME");
    assert_source_committed(from);
    g_assert_true(fw->cut);
    src = migrate_query_member(from, "shared-file-spill");
    g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 1);
    rsp = migrate_query(from);
    g_assert_true(qdict_haskey(rsp, "error-desc"));
    error = g_strdup(qdict_get_str(rsp, "error-desc"));
    g_test_message("source: completed, stopped, with: %s", error);
    /* the destination still runs the guest, every page checked */
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

/* Does @path end in an END record (spill-format.h)? */
static bool spill_file_ends(const char *path)
{
    uint8_t rec[SPILL_REC_HEADER_SIZE];
    struct stat st;
    bool ends;
    int fd = open(path, O_RDONLY);

    g_assert(fd >= 0);
    g_assert(fstat(fd, &st) == 0);
    ends = st.st_size >= SPILL_HEADER_SIZE + sizeof(rec) &&
           pread(fd, rec, sizeof(rec), st.st_size - sizeof(rec)) ==
           sizeof(rec) && ldl_le_p(rec) == SPILL_REC_MAGIC &&
           lduw_le_p(rec + 4) == SPILL_REC_END;
    close(fd);
    return ends;
}

/*
 * Never both run the guest, END written while the network still works:
 * the network swallows the end of the stream (the forwarder drops what
 * the source sends, as a connection whose last bytes never arrive), so
 * the source completes its writes and puts END in the file with its
 * connection up.  Then the connections break: the destination reads the
 * rest, and END, from the file and starts the guest, and its SHUT is
 * lost (RLIMIT_FSIZE on spill-file.rp, as in shut-lost).  The source
 * must end "completed" and stopped, not fail and run the guest again.
 */
static void test_spill_end_online(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(GTimer) timer = g_timer_new();
    g_autoptr(QDict) src = NULL;
    QTestState *from, *to;
    Forwarder *fw;

    uri = spill_start_shut_lost(&from, &to, spill, &fw);
    if (!uri) {
        return;
    }
    qatomic_set(&fw->hold, true);
    migrate_ensure_converge(from);
    /* the source writes END with its connection up */
    while (!spill_file_ends(spill)) {
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(10 * 1000);
    }
    src = migrate_query_member(from, "shared-file-spill");
    g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 0);
    forwarder_cut_now(fw);

    qtest_qmp_eventwait(to, "RESUME");
    assert_source_committed(from);
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

/*
 * A cut during the TLS handshake fails the migration at once: neither
 * side may fail over before the handshake is done (the source would
 * wait for the destination's file in its main loop).  The source runs
 * on and removes its files.
 */
static void test_spill_tls_cut_handshake(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) rsp = NULL;
    QTestState *from, *to;
    Forwarder *fw;

    want_tls = true;
    /* in the client's hello */
    uri = spill_start(&from, &to, spill, 64, &fw);
    if (!uri) {
        return;
    }
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_fail_running(from);
    g_assert_true(fw->cut);
    migration_assert_guest_writes(from);
    assert_spill_removed(spill);
    /* upstream's destination reports a failed handshake, and waits on */
    rsp = qtest_qmp_assert_success_ref(to, "{ 'execute': 'query-status' }");
    g_assert_false(qdict_get_bool(rsp, "running"));
    qtest_quit(to);
    qtest_quit(from);
    spill_cleanup(fw, spill);
    unlink_serials();
}

/* A corrupt spill file is refused, not loaded; the source runs on */
static void test_spill_corrupt(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *uri = NULL;
    QTestState *from, *to;
    Forwarder *fw;
    int fd;

    /* about a second before the cut */
    uri = spill_start(&from, &to, spill, 32 * MiB, &fw);
    if (!uri) {
        return;
    }
    migrate_ensure_non_converge(from);
    migrate_set_parameter_int(from, "max-bandwidth", 32 * MiB);
    wait_for_serial("src_serial");
    qtest_set_expected_status(to, EXIT_FAILURE);

    /*
     * Garbage in the first record, once the source has written it and
     * before the destination reads the file: it must refuse it.
     */
    migrate_qmp(from, to, uri, NULL, "{}");
    for (;;) {
        struct stat st;

        g_assert(stat(spill, &st) == 0);
        if (st.st_size > 64 * 1024) {
            break;
        }
        g_usleep(1000);
    }
    g_assert_false(fw->cut);
    fd = open(spill, O_WRONLY);
    g_assert(fd >= 0);
    g_assert(pwrite(fd, "garbage!", 8, 4096 + 64) == 8);
    close(fd);

    qtest_wait_qemu(to);
    qtest_quit(to);
    /* no destination reads the file: the source gives up and runs on */
    wait_for_migration_fail(from, true);
    migration_assert_guest_writes(from);
    assert_spill_removed(spill);
    qtest_quit(from);
    spill_cleanup(fw, spill);
    unlink_serials();
}

/*
 * Cancel once the source has failed over to the file.  @late_ack: the
 * destination's first read of the file comes 1.5 s late, after the
 * source's cleanup removed the files, so that its first acknowledgement
 * creates <spill>.ack again: it must remove that one itself.
 */
static void do_test_spill_cancel(bool late_ack)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(GTimer) timer = g_timer_new();
    QTestState *from, *to;
    Forwarder *fw;
    pid_t dst_pid;

    if (late_ack && !fault_preload(rules)) {
        return;
    }
    uri = spill_start(&from, &to, spill, 1 * MiB, &fw);
    if (late_ack) {
        fault_preload_end();
    }
    if (!uri) {
        return;
    }
    dst_pid = qtest_pid(to);
    if (late_ack) {
        fault_arm(rules, "%d pread /spill 0 0 1500 3 1\n", dst_pid);
    }
    migrate_ensure_non_converge(from);
    wait_for_serial("src_serial");
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "active", NULL);
    for (;;) {
        g_autoptr(QDict) src = migrate_query_member(from,
                                                    "shared-file-spill");

        if (qdict_get_int(src, "failovers")) {
            break;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(10 * 1000);
    }
    migrate_cancel(from);
    wait_for_migration_status(from, "cancelled", NULL);
    qtest_wait_qemu(to);
    qtest_quit(to);
    migration_assert_guest_writes(from);
    assert_spill_removed(spill);
    qtest_quit(from);
    spill_cleanup(fw, spill);
    unlink_serials();
    if (late_ack) {
        g_assert_cmpint(fault_hits(rules, dst_pid, "pread"), ==, 1);
        fault_cleanup(rules);
    }
}

/*
 * Cancelled after failing over: the file ends in ABORT, and the
 * destination, which read on from it, must not start the guest; the
 * source runs on.  Never both.
 */
static void test_spill_cancel(void)
{
    do_test_spill_cancel(false);
}

static void test_spill_cancel_late_ack(void)
{
    do_test_spill_cancel(true);
}

/* Capability conflicts and setup errors */
static void test_spill_refusals(void)
{
    QTestState *who = qtest_init("-machine none");
    char *hmp;

    migrate_set_capabilities_refused(who, "Capability 'shared-file-spill' "
                                     "conflicts with capability "
                                     "'mapped-ram'",
                                     "mapped-ram", "shared-file-spill",
                                     NULL);
    migrate_set_capabilities_refused(who, "Capability 'shared-file-spill' "
                                     "conflicts with capability "
                                     "'zero-copy-send'",
                                     "multifd", "zero-copy-send",
                                     "shared-file-spill", NULL);

    /* no spill-file */
    migrate_set_capability(who, "shared-file-spill", true);
    migrate_qmp_refused(who, "Capability 'shared-file-spill' needs "
                        "parameter 'spill-file'",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");

    /* an unwritable spill path: refused, nothing started */
    migrate_set_parameter_str(who, "spill-file", "/nonexistent/dir/spill");
    migrate_qmp_refused(who, "Parameter 'spill-file': ",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    migrate_qmp_refused(who, "'shared-file-spill' needs a socket",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'file:/tmp/x' } }");

    hmp = qtest_hmp(who, "migrate_set_parameter spill-file /tmp/spill");
    g_assert_cmpstr(hmp, ==, "");
    g_free(hmp);
    hmp = qtest_hmp(who, "info migrate_parameters");
    g_assert_nonnull(strstr(hmp, "spill-file: '/tmp/spill'"));
    g_free(hmp);
    qtest_quit(who);

    /* a newer copy from the file would break an xbzrle delta's base */
    who = qtest_init("-machine none");
    migrate_set_capabilities_refused(who, "Capability 'shared-file-spill' "
                                     "conflicts with capability 'xbzrle'",
                                     "xbzrle", "shared-file-spill", NULL);
    qtest_quit(who);

    /* set on the destination after migrate-incoming: too late */
    who = qtest_init("-machine none -incoming defer");
    migrate_incoming_qmp(who, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_capabilities_refused(who, "Capability 'shared-file-spill' "
                                     "must be set before incoming starts",
                                     "shared-file-spill", NULL);
    qtest_quit(who);

    /* without the configuration section nothing checks the other side */
    who = qtest_init("-machine none "
                     "-global migration.send-configuration=off");
    migrate_set_capability(who, "shared-file-spill", true);
    migrate_set_parameter_str(who, "spill-file", "/tmp/spill");
    migrate_qmp_refused(who, "Capability 'shared-file-spill' needs "
                        "property 'send-configuration'",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    qtest_quit(who);
}

/*
 * The storage fills up during the migration (RLIMIT_FSIZE on both
 * QEMUs: writes past 32 MiB fail with EFBIG): the source gives up both
 * files, the pages of the failed write go dirty again, and the network
 * alone completes the migration, every page checked.
 */
static void test_spill_file_full(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    struct rlimit old, rl;
    QTestState *from, *to;
    Forwarder *fw;

    g_assert(getrlimit(RLIMIT_FSIZE, &old) == 0);
    rl = old;
    rl.rlim_cur = 32 * MiB;
    /* the QEMUs inherit both: EFBIG instead of SIGXFSZ */
    signal(SIGXFSZ, SIG_IGN);
    g_assert(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    uri = spill_start(&from, &to, spill, 0, &fw);
    g_assert(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    if (!uri) {
        return;
    }
    migrate_to_third_pass(from, to, uri);
    migrate_ensure_converge(from);
    wait_for_migration_complete(from);
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "shared-file-spill");
    dst = migrate_query_member(to, "shared-file-spill");
    g_test_message("file full at 32 MiB: source wrote %" PRId64 " bytes, "
                   "%" PRId64 " pages through the file, file errors %"
                   PRId64 "; destination loaded %" PRId64 " pages from "
                   "the file", qdict_get_int(src, "file-bytes"),
                   qdict_get_int(src, "pages"),
                   qdict_get_int(src, "file-errors"),
                   qdict_get_int(dst, "pages"));
    /* the stream's file and the pages file */
    g_assert_cmpint(qdict_get_int(src, "file-errors"), ==, 2);
    g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 0);
    g_assert_cmpint(qdict_get_int(src, "pages"), >, 0);
    g_assert_cmpint(qdict_get_int(src, "pages"), <, 32 * MiB / 4096);
    g_assert_false(fw->cut);
    /* checks every page of the destination */
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

/*
 * The destination refuses the stream at its start (@dst_spill NULL: it
 * lacks the capability).  The source fails over, hears nothing, gives
 * up (after 2 s, not the default 30), runs on and removes its files.
 */
static void do_test_refused(const char *dst_spill, const char *cap,
                            const char *dst_cap, const char *dst_error)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    MigrateStart args = {
        .hide_stderr = true,
        .tcg = true,
        .opts_source = "-global migration.x-spill-ack-timeout=2000",
    };
    g_autofree char *uri = NULL;
    g_autoptr(QDict) rsp = NULL;
    g_autoptr(GTimer) timer = g_timer_new();
    QTestState *from, *to;

    if (migrate_start(&from, &to, "defer", &args)) {
        return;
    }
    set_spill(from, spill);
    if (dst_spill) {
        set_spill(to, dst_spill);
    }
    if (cap) {
        migrate_set_capability(from, cap, true);
        migrate_set_capability(to, cap, true);
    }
    if (dst_cap) {
        migrate_set_capability(to, dst_cap, true);
    }
    /* stay, to say why */
    migrate_incoming_qmp(to, "tcp:127.0.0.1:0", NULL,
                         "{ 'exit-on-error': false }");
    uri = migrate_get_connect_uri(to);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    for (;;) {
        g_autofree char *status = migrate_query_status(to);

        if (!strcmp(status, "failed")) {
            break;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(10 * 1000);
    }
    rsp = migrate_query(to);
    g_test_message("destination: %s", qdict_haskey(rsp, "error-desc") ?
                   qdict_get_str(rsp, "error-desc") : "(no error-desc)");
    if (dst_error) {
        g_assert_nonnull(strstr(qdict_get_str(rsp, "error-desc"),
                                dst_error));
    }
    qtest_quit(to);
    wait_for_migration_fail(from, true);
    qobject_unref(rsp);
    rsp = migrate_query(from);
    g_test_message("source: %s", qdict_get_str(rsp, "error-desc"));
    /* x-spill-ack-timeout took effect */
    g_assert_nonnull(strstr(qdict_get_str(rsp, "error-desc"),
                            "has not read the spill file for 2.0 s"));
    migration_assert_guest_writes(from);
    assert_spill_removed(spill);
    qtest_quit(from);
    spill_cleanup(NULL, spill);
    unlink_serials();
}

/* Set on the source only: the destination refuses the stream */
static void test_spill_one_side(void)
{
    do_test_refused(NULL, NULL, NULL, "Capability 'shared-file-spill' is on at "
                    "the source but not here");
}

/*
 * Write a well-formed spill file header of another migration (another
 * uuid) to @path and, with @pages, to its pages file.
 */
static void write_stale(const char *path, bool pages)
{
    g_autofree char *pages_path = g_strdup_printf("%s.pages", path);
    uint8_t hdr[4096] = { 0 };

    /* spill-format.h: magic, version, page size, uuid; check at 4088 */
    stq_le_p(hdr, 0x31304c4c49505351ULL);
    stl_le_p(hdr + 8, 1);
    stl_le_p(hdr + 12, 4096);
    memset(hdr + 16, 0x5a, 16);
    stq_le_p(hdr + 4088, XXH3_64bits(hdr, 4088));
    g_assert(g_file_set_contents(path, (char *)hdr, sizeof(hdr), NULL));
    if (pages) {
        g_assert(g_file_set_contents(pages_path, (char *)hdr, sizeof(hdr),
                                     NULL));
    }
}

/*
 * A spill file and pages file that are not the ones the source writes,
 * but well formed: those of another migration, as a stale copy on the
 * destination's host would have.  The destination refuses them (the
 * uuid in the configuration section) before it loads a page.
 */
static void test_spill_stale(void)
{
    g_autofree char *stale = g_strdup_printf("%s/spill-stale", tmpfs);
    g_autofree char *stale_pages = g_strdup_printf("%s.pages", stale);

    write_stale(stale, true);
    do_test_refused(stale, NULL, NULL,
                    "is not the spill file the source writes");
    /* not the source's file: nobody removed it */
    g_assert_true(g_file_test(stale, G_FILE_TEST_EXISTS));
    unlink(stale);
    unlink(stale_pages);
}

/*
 * A spill file without its pages file: the destination refuses the
 * connection (the reason goes to its log only), and the source fails
 * and runs on.
 */
static void test_spill_no_pages(void)
{
    g_autofree char *stale = g_strdup_printf("%s/spill-stale", tmpfs);

    write_stale(stale, false);
    do_test_refused(stale, NULL, NULL, NULL);
    unlink(stale);
}

/*
 * Postcopy (@preempt: with postcopy-preempt) through a forwarder: a
 * migration of the live guest that does not converge, switched to
 * postcopy after its second pass, with a postcopy phase of a few
 * seconds (16 MiB/s), the guest faulting.  Returns the URI migrated to,
 * or NULL when skipped.
 */
static char *spill_switch_over(QTestState **from, QTestState **to,
                               const char *spill, Forwarder **fw,
                               bool preempt, bool tls)
{
    char *uri;

    want_tls = tls;
    uri = spill_start_caps(from, to, spill, 0, fw, "postcopy-ram",
                                 preempt ? "postcopy-preempt" : NULL);

    if (!uri) {
        return NULL;
    }
    migrate_ensure_non_converge(*from);
    migrate_set_parameter_int(*from, "max-postcopy-bandwidth", 16 * MiB);
    wait_for_serial("src_serial");
    migrate_qmp(*from, *to, uri, NULL, "{}");
    while (read_ram_property_int(*from, "dirty-sync-count") < 2) {
        g_usleep(20 * 1000);
    }
    qtest_qmp_assert_success(*from,
                             "{ 'execute': 'migrate-start-postcopy' }");
    return uri;
}

/*
 * Postcopy: switch over, then cut the network once the source has sent
 * @after more bytes (0: at once; UINT64_MAX: never).  The destination
 * already runs the guest; it must go on asking for the pages it faults
 * on, through the return path's file, and get them through the spill
 * file, until it has them all.  Every page is checked.  @preempt: with
 * postcopy-preempt, whose channel has a file of its own.
 */
static void do_test_spill_postcopy(uint64_t after, bool preempt, bool tls)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *spill_rp = g_strdup_printf("%s.rp", spill);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) dst = NULL;
    QTestState *from, *to;
    uint64_t at_switchover;
    Forwarder *fw;

    uri = spill_switch_over(&from, &to, spill, &fw, preempt, tls);
    if (!uri) {
        return;
    }
    wait_for_migration_status(from, "postcopy-active", NULL);
    at_switchover = qatomic_read(&fw->forwarded);
    if (tls) {
        /* the preempt channel is up: what the files hold is looked at */
        keep_files(spill, true);
    }
    if (after != UINT64_MAX) {
        g_autoptr(GTimer) timer = g_timer_new();

        while (qatomic_read(&fw->forwarded) < at_switchover + after) {
            g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
            g_usleep(1000);
        }
        forwarder_cut(fw);
    }

    wait_for_migration_complete(from);
    wait_for_migration_complete(to);
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "shared-file-spill");
    dst = migrate_query_member(to, "shared-file-spill");
    g_test_message("postcopy, %s %" PRIu64 " bytes after switchover (at %"
                   PRIu64 "): source wrote %" PRId64 " bytes; destination "
                   "read %" PRId64 " bytes from the file, requested %" PRId64
                   " pages through it, placed %" PRId64 " pages after the "
                   "cut, waited %" PRId64 " ms for them",
                   after == UINT64_MAX ? "no cut" : "cut",
                   after == UINT64_MAX ? 0 : after, at_switchover,
                   qdict_get_int(src, "file-bytes"),
                   qdict_get_int(dst, "file-bytes"),
                   qdict_get_int(dst, "postcopy-requests"),
                   qdict_get_int(dst, "postcopy-pages"),
                   qdict_get_int(dst, "postcopy-wait-ms"));
    g_assert_cmpint(qdict_get_int(src, "file-errors"), ==, 0);
    /* no pages file with postcopy */
    g_assert_cmpint(qdict_get_int(src, "pages"), ==, 0);
    if (after == UINT64_MAX) {
        /* the network carried it all */
        g_assert_false(fw->cut);
        g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "failovers"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "file-bytes"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "postcopy-pages"), ==, 0);
        g_assert_cmpint(qdict_get_int(dst, "postcopy-requests"), ==, 0);
    } else {
        g_assert_true(fw->cut);
        g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 1);
        g_assert_cmpint(qdict_get_int(dst, "failovers"), ==, 1);
        g_assert_cmpint(qdict_get_int(dst, "file-bytes"), >, 0);
        /* pages came through the file after the cut, some asked for */
        g_assert_cmpint(qdict_get_int(dst, "postcopy-pages"), >, 0);
        g_assert_cmpint(qdict_get_int(dst, "postcopy-requests"), >, 0);
        /*
         * each waited for two files to be polled at least: the times
         * postcopy's page_requested kept for them came through
         */
        g_assert_cmpint(qdict_get_int(dst, "postcopy-wait-ms"), >, 0);
    }
    /* the destination removed the files once the source committed */
    g_assert_false(g_file_test(spill, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(spill_rp, G_FILE_TEST_EXISTS));
    if (tls) {
        assert_kept_files(spill, true, false);
    }
    /* checks every page of the destination */
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

static void test_spill_postcopy_no_fault(void)
{
    do_test_spill_postcopy(UINT64_MAX, false, false);
}

static void test_spill_postcopy_cut_switchover(void)
{
    do_test_spill_postcopy(0, false, false);
}

static void test_spill_postcopy_preempt_cut(void)
{
    /* requested pages go by the preempt channel: cut while they do */
    do_test_spill_postcopy(4 * MiB, true, false);
}

/*
 * The same with TLS over each channel: the destination's sessions read
 * on from the files, and the source's reads the return path's
 */
static void test_spill_postcopy_preempt_tls_cut(void)
{
    do_test_spill_postcopy(4 * MiB, true, true);
}

static void test_spill_postcopy_cut_middle(void)
{
    /* about a second of postcopy at 16 MiB/s */
    do_test_spill_postcopy(16 * MiB, false, false);
}

/*
 * Postcopy, and the spill file goes bad under the destination (another
 * migration's header) before the network breaks: the destination cannot
 * fail over and pauses, as postcopy does without the capability; the
 * operator pauses the source, which cannot tell, and recovers over the
 * network once it is back.  Nothing is lost: every page is checked.
 */
static void test_spill_postcopy_file_lost(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *recover = g_strdup_printf("unix:%s/migsocket-recover",
                                               tmpfs);
    g_autofree char *uri = NULL;
    g_autoptr(QDict) src = NULL;
    g_autoptr(GTimer) timer = g_timer_new();
    QTestState *from, *to;
    Forwarder *fw;
    int fd;

    uri = spill_switch_over(&from, &to, spill, &fw, false, false);
    if (!uri) {
        return;
    }
    /* the guest runs on the destination */
    qtest_qmp_eventwait(to, "RESUME");
    wait_for_migration_status(to, "postcopy-active", NULL);

    fd = open(spill, O_WRONLY);
    g_assert(fd >= 0);
    g_assert(pwrite(fd, "garbage!", 8, 0) == 8);
    close(fd);
    forwarder_cut(fw);

    wait_for_migration_status(to, "postcopy-paused", NULL);
    /* the source failed over (it cannot tell), then the operator pauses it */
    for (;;) {
        g_autoptr(QDict) fo = migrate_query_member(from, "shared-file-spill");

        if (qdict_get_int(fo, "failovers")) {
            break;
        }
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 60);
        g_usleep(10 * 1000);
    }
    migrate_pause(from);
    wait_for_migration_status(from, "postcopy-paused", NULL);
    /* the failed source gave the files up */
    assert_spill_removed(spill);

    /* the network is back: today's recovery, over the network alone */
    migrate_recover(to, recover);
    migrate_qmp(from, to, recover, NULL, "{'resume': true}");
    wait_for_migration_complete(from);
    wait_for_migration_complete(to);
    wait_for_serial("dest_serial");

    src = migrate_query_member(from, "shared-file-spill");
    g_assert_true(fw->cut);
    g_assert_cmpint(qdict_get_int(src, "failovers"), ==, 1);
    /* checks every page of the destination */
    migrate_end(from, to, true);
    spill_cleanup(fw, spill);
}

/*
 * The destination cannot say how far it has loaded the pages file (a
 * directory is in the way): it warns, the source's writer stays close
 * to the file's start, and the migration completes with every page
 * checked.
 */
static void test_spill_no_loaded_file(void)
{
    g_autofree char *loaded = g_strdup_printf("%s/spill.loaded", tmpfs);

    g_assert(mkdir(loaded, 0700) == 0);
    do_test_spill(0, false, false, NULL, NULL);
    g_assert(rmdir(loaded) == 0);
}

/*
 * The destination cannot create the return path's file (a directory is
 * in the way): it refuses the stream when the return path opens, rather
 * than let a source without the network wait for requests that never
 * come.  The source fails over, hears nothing, gives up and runs on.
 */
static void test_spill_no_rp_file(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *rp = g_strdup_printf("%s.rp", spill);

    g_assert(mkdir(rp, 0700) == 0);
    do_test_refused(spill, "return-path", NULL, "CMD_OPEN_RETURN_PATH failed");
    g_assert(rmdir(rp) == 0);
}

/*
 * A migrate that comes while the last, failed, migration still stops
 * its pages writer: that one is FAILED (so a new migrate is accepted)
 * before its thread has joined the writer, here held 1 s in each write
 * to slow storage.  The new migrate must be refused, not take the files
 * and the writer from under that thread; once the writer stopped, a
 * migrate is accepted again.  The destination refuses the stream (it
 * lacks the capability), and the source gives up after 1 s.
 */
static void test_spill_retry_while_stopping(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);
    g_autofree char *rules = g_strdup_printf("%s/faults", tmpfs);
    MigrateStart args = {
        .hide_stderr = true,
        .tcg = true,
        .opts_source = "-global migration.x-spill-ack-timeout=1000",
    };
    const char *never[] = { "completed", "cancelled", NULL };
    g_autofree char *uri = NULL;
    g_autoptr(GTimer) timer = NULL;
    QTestState *from, *to;
    QDict *err;

    if (!fault_preload(rules)) {
        return;
    }
    if (migrate_start(&from, &to, "defer", &args)) {
        fault_preload_end();
        return;
    }
    fault_preload_end();
    fault_arm(rules, "%d pwrite /spill.pages 0 0 1000 0 -1\n",
              qtest_pid(from));
    set_spill(from, spill);
    migrate_incoming_qmp(to, "tcp:127.0.0.1:0", NULL,
                         "{ 'exit-on-error': false }");
    uri = migrate_get_connect_uri(to);
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_status(from, "failed", never);

    migrate_qmp_refused(from, "still stopping its pages writer",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': %s } }", uri);
    g_assert_cmpint(fault_hits(rules, qtest_pid(from), "pwrite"), >, 0);

    /*
     * The writer stops within one held write: then a migrate is taken
     * (to a port nobody listens on: it fails to connect)
     */
    timer = g_timer_new();
    for (;;) {
        g_autoptr(QDict) rsp = qtest_qmp(from,
                                         "{ 'execute': 'migrate', "
                                         "  'arguments': { 'uri': "
                                         "'tcp:127.0.0.1:1' } }");

        if (!qdict_haskey(rsp, "error")) {
            break;
        }
        err = qdict_get_qdict(rsp, "error");
        g_assert_nonnull(strstr(qdict_get_str(err, "desc"),
                                "still stopping its pages writer"));
        g_assert_cmpfloat(g_timer_elapsed(timer, NULL), <, 30);
        g_usleep(100 * 1000);
    }
    g_test_message("migrate taken again after %.1f s",
                   g_timer_elapsed(timer, NULL));
    wait_for_migration_status(from, "failed", never);
    migration_assert_guest_writes(from);
    /* it refused the stream and stayed ('exit-on-error': false) */
    wait_for_migration_status(to, "failed", never);
    qtest_quit(to);
    qtest_quit(from);
    spill_cleanup(NULL, spill);
    fault_cleanup(rules);
    unlink_serials();
}

/*
 * postcopy-ram on the destination only: the source's pages carry
 * sequence numbers the destination would not read.  Refused at the
 * start, in the configuration section.
 */
static void test_spill_postcopy_one_side(void)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);

    do_test_refused(spill, NULL, "postcopy-ram",
                    "the source writes a pages file and this side would not "
                    "read it");
}

/* shared-file-spill beside disk-backed-pages: both sides, one file */
static void spill_partner_start(QTestState *from, QTestState *to)
{
    g_autofree char *spill = g_strdup_printf("%s/spill", tmpfs);

    set_spill(from, spill);
    set_spill(to, spill);
}

static void spill_partner_end(void)
{
    static const char *const files[] = {
        "", ".ack", ".rp", ".pages", ".loaded", ".preempt",
    };

    for (int i = 0; i < ARRAY_SIZE(files); i++) {
        g_autofree char *f = g_strdup_printf("%s/spill%s", tmpfs, files[i]);

        unlink(f);
    }
}

static const MigrationPartner spill_partner = {
    .name = "shared-file-spill",
    .caps = { "shared-file-spill" },
    .start = spill_partner_start,
    .end = spill_partner_end,
};

/*
 * disk-backed-pages with shared-file-spill, registered with that
 * capability's tests (disk-backed-pages-tests.c)
 */
static void test_disk_backed_with_spill(void)
{
    migration_test_disk_backed_with(NULL, &spill_partner);
}

static void test_disk_backed_fault_read_spill(void)
{
    migration_test_disk_backed_fault_read(&spill_partner);
}

void migration_test_add_shared_file_spill(MigrationTestEnv *env)
{
    static const char *const with[] = {
        "auto-converge", "multifd", "multifd-zstd",
    };

    tmpfs = env->tmpfs;

    migration_test_add("/migration/shared-file-spill/refusals",
                       test_spill_refusals);
    if (!env->is_x86) {
        return;
    }
    migration_test_add("/migration/shared-file-spill/no-fault",
                       test_spill_no_fault);
    migration_test_add("/migration/disk-backed-pages/with/shared-file-spill",
                       test_disk_backed_with_spill);
    migration_test_add("/migration/disk-backed-pages/fault/read-spill",
                       test_disk_backed_fault_read_spill);
    migration_test_add("/migration/shared-file-spill/cut/early",
                       test_spill_cut_early);
    migration_test_add("/migration/shared-file-spill/cut/middle",
                       test_spill_cut_middle);
    migration_test_add("/migration/shared-file-spill/cut/last",
                       test_spill_cut_last);
    migration_test_add("/migration/shared-file-spill/cut/return-path",
                       test_spill_cut_return_path);
    migration_test_add("/migration/shared-file-spill/cut/end-online",
                       test_spill_end_online);
    migration_test_add("/migration/shared-file-spill/cut/shut-lost",
                       test_spill_shut_lost);
    migration_test_add("/migration/shared-file-spill/multifd/no-fault",
                       test_spill_multifd_no_fault);
    migration_test_add("/migration/shared-file-spill/multifd/no-end",
                       test_spill_multifd_no_end);
    migration_test_add("/migration/shared-file-spill/multifd/ack-lost",
                       test_spill_multifd_ack_lost);
    migration_test_add("/migration/shared-file-spill/multifd/no-file",
                       test_spill_multifd_no_file);
#ifdef CONFIG_GNUTLS
    migration_test_add("/migration/shared-file-spill/multifd/tls/cut",
                       test_spill_multifd_tls_cut);
    migration_test_add("/migration/shared-file-spill/tls/cut",
                       test_spill_tls_cut);
    migration_test_add("/migration/shared-file-spill/tls/cut-handshake",
                       test_spill_tls_cut_handshake);
#endif
    for (int i = 0; i < ARRAY_SIZE(with); i++) {
        migration_test_add_suffix("/migration/shared-file-spill/with/",
                                  with[i], test_spill_with);
    }
    migration_test_add("/migration/shared-file-spill/fault/pages-sync",
                       test_spill_fault_pages_sync);
    migration_test_add("/migration/shared-file-spill/fault/loaded",
                       test_spill_fault_loaded);
    migration_test_add("/migration/shared-file-spill/fault/read-retry",
                       test_spill_fault_read_retry);
    migration_test_add("/migration/shared-file-spill/fault/slow-scan",
                       test_spill_fault_slow_scan);
    migration_test_add("/migration/shared-file-spill/fault/failover-sync",
                       test_spill_fault_failover_sync);
    migration_test_add("/migration/shared-file-spill/fault/end-lost",
                       test_spill_fault_end_lost);
    migration_test_add("/migration/shared-file-spill/fault/abort-lost",
                       test_spill_fault_abort_lost);
    migration_test_add("/migration/shared-file-spill/fault/ack-lost",
                       test_spill_fault_ack_lost);
    migration_test_add("/migration/shared-file-spill/fault/read-error",
                       test_spill_fault_read_error);
    migration_test_add("/migration/shared-file-spill/corrupt",
                       test_spill_corrupt);
    migration_test_add("/migration/shared-file-spill/cancel",
                       test_spill_cancel);
    migration_test_add("/migration/shared-file-spill/cancel/late-ack",
                       test_spill_cancel_late_ack);
    migration_test_add("/migration/shared-file-spill/one-side",
                       test_spill_one_side);
    migration_test_add("/migration/shared-file-spill/stale",
                       test_spill_stale);
    migration_test_add("/migration/shared-file-spill/no-pages",
                       test_spill_no_pages);
    migration_test_add("/migration/shared-file-spill/retry-while-stopping",
                       test_spill_retry_while_stopping);
    migration_test_add("/migration/shared-file-spill/no-rp-file",
                       test_spill_no_rp_file);
    migration_test_add("/migration/shared-file-spill/no-loaded-file",
                       test_spill_no_loaded_file);
    migration_test_add("/migration/shared-file-spill/file-full",
                       test_spill_file_full);
    if (!env->has_uffd) {
        return;
    }
    migration_test_add("/migration/shared-file-spill/postcopy/one-side",
                       test_spill_postcopy_one_side);
    migration_test_add("/migration/shared-file-spill/postcopy/no-fault",
                       test_spill_postcopy_no_fault);
    migration_test_add("/migration/shared-file-spill/postcopy/cut/switchover",
                       test_spill_postcopy_cut_switchover);
    migration_test_add("/migration/shared-file-spill/postcopy/cut/middle",
                       test_spill_postcopy_cut_middle);
    migration_test_add("/migration/shared-file-spill/postcopy/preempt/cut",
                       test_spill_postcopy_preempt_cut);
#ifdef CONFIG_GNUTLS
    migration_test_add("/migration/shared-file-spill/postcopy/preempt/tls/cut",
                       test_spill_postcopy_preempt_tls_cut);
#endif
    migration_test_add("/migration/shared-file-spill/postcopy/file-lost",
                       test_spill_postcopy_file_lost);
}
