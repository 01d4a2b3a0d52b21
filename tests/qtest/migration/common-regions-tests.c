/*
 * QTest testcases for common-regions: the fingerprint of guest RAM
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The bootblock guest writes [1, 100) MiB; the test plants known pages
 * above that, takes the fingerprint while the guest runs, and reads the
 * file with the format's own scanner, checking each hash against GLib's
 * SHA-256 (QEMU computes it with its crypto layer).
 *
 * The region export is tested with the test as its client, speaking
 * the protocol through the same encoders as QEMU.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "migration/bootfile.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "migration/region-fingerprint.h"
#include "migration/region-proto.h"
#include "qobject/qdict.h"
#include <sys/socket.h>
#include <sys/un.h>

#define PAGE            4096
#define RAM_SIZE        (150 * MiB)
/*
 * The guest leaves [100, 150) MiB alone, but q35's TSEG takes the top
 * 16 MiB and SeaBIOS the 256 KiB below
 */
#define QUIET_START     (100 * MiB)
#define QUIET_END       (128 * MiB)
#define FULL_GPA        (120 * MiB)         /* 16 distinct pages */
#define ONE_GPA         (124 * MiB)         /* page 3 of its region */
#define ONE_PAGE        3

static char *tmpfs;

static void sha256(const void *buf, size_t len, uint8_t out[RFP_HASH_LEN],
                   void *opaque)
{
    g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
    gsize n = RFP_HASH_LEN;

    g_checksum_update(c, buf, len);
    g_checksum_get_digest(c, out, &n);
}

static void plant(QTestState *who)
{
    uint8_t page[PAGE];

    for (int i = 0; i < 16; i++) {
        memset(page, 0x40 + i, PAGE);
        qtest_memwrite(who, FULL_GPA + i * PAGE, page, PAGE);
    }
    memset(page, 0, PAGE);
    page[5] = 0x77;
    qtest_memwrite(who, ONE_GPA + ONE_PAGE * PAGE, page, PAGE);
}

typedef struct Quiet {
    bool in_ram;                /* inside the guest RAM block */
    GArray *regions;            /* RfpRegion in [QUIET_START, QUIET_END) */
    uint64_t ram_blocks;
} Quiet;

static bool quiet_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    Quiet *q = opaque;

    q->in_ram = b->used_length == RAM_SIZE;
    q->ram_blocks += q->in_ram;
    return true;
}

static bool quiet_region(const RfpHeader *h, const RfpBlock *b,
                         const RfpRegion *r, void *opaque)
{
    Quiet *q = opaque;

    if (q->in_ram && r->offset >= QUIET_START && r->offset < QUIET_END) {
        g_array_append_val(q->regions, *r);
    }
    return true;
}

/*
 * Take a fingerprint of @who with regions of @region_size bytes into
 * @path, check the reply against the file, and return the regions of
 * the quiet range; the file stays in *@file.
 */
static GArray *fingerprint(QTestState *who, const char *path,
                           uint64_t region_size, gchar **file)
{
    static const RfpVisitor v = {
        .block = quiet_block,
        .region = quiet_region,
    };
    Quiet q = { .regions = g_array_new(false, false, sizeof(RfpRegion)) };
    g_autoptr(GError) gerr = NULL;
    const char *err = NULL;
    QDict *rsp, *ret;
    RfpHeader h;
    RfpTotals t;
    gsize len;

    rsp = qtest_qmp(who, "{ 'execute': 'common-regions-fingerprint', "
                    "'arguments': { 'filename': %s, 'region-size': %" PRIu64
                    " } }", path, region_size);
    g_assert(qdict_haskey(rsp, "return"));
    ret = qdict_get_qdict(rsp, "return");
    g_assert(g_file_get_contents(path, file, &len, &gerr));
    if (!rfp_scan((uint8_t *)*file, len, &h, &v, &q, &t, &err)) {
        g_test_message("the fingerprint is not valid: %s", err);
        g_assert_not_reached();
    }
    g_assert_cmpint(h.geo.page_shift, ==, 12);
    g_assert_cmpint(1ull << h.geo.region_shift, ==, region_size);
    g_assert_cmpint(q.ram_blocks, ==, 1);
    g_assert_cmpint(qdict_get_int(ret, "region-size"), ==, region_size);
    g_assert_cmpint(qdict_get_int(ret, "regions"), ==, t.regions);
    g_assert_cmpint(qdict_get_int(ret, "pages"), ==, t.pages);
    g_assert_cmpint(qdict_get_int(ret, "ram-bytes"), >=, RAM_SIZE);
    g_assert_cmpint(qdict_get_int(ret, "pages") +
                    qdict_get_int(ret, "zero-pages"), ==,
                    qdict_get_int(ret, "ram-bytes") / PAGE);
    qobject_unref(rsp);
    return q.regions;
}

static void check_page_hash(const uint8_t *hash, uint8_t fill, int byte5)
{
    uint8_t page[PAGE], want[RFP_HASH_LEN];

    memset(page, fill, PAGE);
    if (byte5 >= 0) {
        page[5] = byte5;
    }
    sha256(page, PAGE, want, NULL);
    g_assert(!memcmp(hash, want, RFP_HASH_LEN));
}

/* The guest running: its counter at start_address still moves. */
static void check_running(QTestState *who)
{
    QDict *rsp;
    uint8_t a, b;

    qtest_memread(who, X86_TEST_MEM_START, &a, 1);
    do {
        g_usleep(10 * 1000);
        qtest_memread(who, X86_TEST_MEM_START, &b, 1);
    } while (a == b);
    rsp = qtest_qmp_assert_success_ref(who, "{ 'execute': 'query-status' }");
    g_assert(qdict_get_bool(rsp, "running"));
    qobject_unref(rsp);
}

static void test_fingerprint(void)
{
    g_autofree char *path = g_strdup_printf("%s/guest.rfp", tmpfs);
    MigrateStart args = { .only_source = true };
    uint8_t ph[16][RFP_HASH_LEN], want[RFP_HASH_LEN];
    static uint8_t zero[PAGE];
    g_autofree gchar *file = NULL, *file4k = NULL;
    g_autoptr(GArray) regions = NULL, regions4k = NULL;
    QTestState *from, *to = NULL;
    RfpRegion *r;

    g_assert_false(migrate_start(&from, &to, "defer", &args));
    wait_for_serial("src_serial");
    plant(from);

    regions = fingerprint(from, path, 64 * KiB, &file);
    g_assert_cmpint(regions->len, ==, 2);
    r = &g_array_index(regions, RfpRegion, 0);
    g_assert_cmpint(r->offset, ==, FULL_GPA);
    g_assert_cmpint(r->mask, ==, 0xffff);
    for (int i = 0; i < 16; i++) {
        check_page_hash(r->page_hashes + i * RFP_HASH_LEN, 0x40 + i, -1);
        memcpy(ph[i], r->page_hashes + i * RFP_HASH_LEN, RFP_HASH_LEN);
    }
    rfp_region_hash((const uint8_t (*)[RFP_HASH_LEN])ph, 16, sha256, NULL,
                    want);
    g_assert(!memcmp(r->hash, want, RFP_HASH_LEN));

    r = &g_array_index(regions, RfpRegion, 1);
    g_assert_cmpint(r->offset, ==, ONE_GPA);
    g_assert_cmpint(r->mask, ==, 1 << ONE_PAGE);
    check_page_hash(r->page_hashes, 0, 0x77);
    /* the zero pages of a region count in its hash */
    memset(zero, 0, PAGE);
    for (int i = 0; i < 16; i++) {
        sha256(zero, PAGE, ph[i], NULL);
    }
    memcpy(ph[ONE_PAGE], r->page_hashes, RFP_HASH_LEN);
    rfp_region_hash((const uint8_t (*)[RFP_HASH_LEN])ph, 16, sha256, NULL,
                    want);
    g_assert(!memcmp(r->hash, want, RFP_HASH_LEN));
    check_running(from);

    /* one page per region: 17 regions, each page's hash its region's */
    regions4k = fingerprint(from, path, PAGE, &file4k);
    g_assert_cmpint(regions4k->len, ==, 17);
    for (guint i = 0; i < regions4k->len; i++) {
        r = &g_array_index(regions4k, RfpRegion, i);
        g_assert_cmpint(r->mask, ==, 1);
        rfp_region_hash((const uint8_t (*)[RFP_HASH_LEN])r->page_hashes, 1,
                        sha256, NULL, want);
        g_assert(!memcmp(r->hash, want, RFP_HASH_LEN));
    }
    check_running(from);

    qtest_quit(from);
    unlink(path);
}

/* The region export's client, in the test */

static int rx_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void rx_write(int fd, const void *buf, size_t len)
{
    g_assert_cmpint(qemu_write_full(fd, buf, len), ==, len);
}

/* Read @len bytes; false at the end of the stream. */
static bool rx_read(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        g_assert_cmpint(n, >=, 0);
        if (n == 0) {
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

static int rx_open(const char *path)
{
    uint8_t msg[RXP_HELLO_REPLY_SIZE];
    const char *err = NULL;
    uint64_t pages;
    int fd = rx_connect(path);

    g_assert_cmpint(fd, >=, 0);
    rxp_hello_encode(msg, PAGE);
    rx_write(fd, msg, RXP_HELLO_SIZE);
    g_assert(rx_read(fd, msg, RXP_HELLO_REPLY_SIZE));
    g_assert(rxp_hello_reply_decode(msg, PAGE, &pages, &err));
    g_assert_cmpint(pages, >=, 17);
    return fd;
}

static void rx_request(int fd, uint8_t op, const uint8_t (*hashes)[32],
                       uint32_t n)
{
    uint8_t hdr[RXP_HEADER_SIZE], rhdr[RXP_HEADER_SIZE];

    rxp_header_encode(hdr, op, n);
    rx_write(fd, hdr, sizeof(hdr));
    rx_write(fd, hashes, n * RFP_HASH_LEN);
    g_assert(rx_read(fd, rhdr, sizeof(rhdr)));
    g_assert(!memcmp(hdr, rhdr, sizeof(hdr)));
}

static void fill_hash(uint8_t out[RFP_HASH_LEN], uint8_t fill)
{
    uint8_t page[PAGE];

    memset(page, fill, PAGE);
    sha256(page, PAGE, out, NULL);
}

/* GET one hash: its status, and the page in @page if RXP_GOT. */
static uint8_t rx_get(int fd, const uint8_t hash[RFP_HASH_LEN],
                      uint8_t *page)
{
    uint8_t st;

    rx_request(fd, RXP_OP_GET, (const uint8_t (*)[32])hash, 1);
    g_assert(rx_read(fd, &st, 1));
    if (st == RXP_GOT) {
        g_assert(rx_read(fd, page, PAGE));
    }
    return st;
}

/* A counter of the export, -1 when it is not running */
static int64_t export_stat(QTestState *who, const char *name)
{
    QDict *rsp = qtest_qmp_assert_success_ref(
        who, "{ 'execute': 'query-common-regions-export' }");
    int64_t v = qdict_haskey(rsp, name) ? qdict_get_int(rsp, name) : -1;

    g_assert(qdict_get_bool(rsp, "active") == (v >= 0));
    qobject_unref(rsp);
    return v;
}

static void test_export(void)
{
    g_autofree char *path = g_strdup_printf("%s/export.sock", tmpfs);
    MigrateStart args = { .only_source = true };
    uint8_t h[4][RFP_HASH_LEN], page[PAGE], want[PAGE], bm[1];
    uint8_t bad[RXP_HELLO_SIZE];
    QTestState *from, *to = NULL;
    int fd, fd2;

    g_assert_false(migrate_start(&from, &to, "defer", &args));
    wait_for_serial("src_serial");
    plant(from);
    qtest_qmp_assert_success(from, "{ 'execute': "
                             "'common-regions-export-start', "
                             "'arguments': { 'path': %s } }", path);
    migrate_qmp_refused(from, "A region export is running already",
                        "{ 'execute': 'common-regions-export-start', "
                        "'arguments': { 'path': %s } }", path);
    g_assert_cmpint(export_stat(from, "pages"), >=, 17);

    /* which hashes it holds: planted pages, not others, not zero pages */
    fd = rx_open(path);
    fill_hash(h[0], 0x40);
    fill_hash(h[1], 0x99);
    fill_hash(h[2], 0);
    fill_hash(h[3], 0x4f);
    rx_request(fd, RXP_OP_HAVE, (const uint8_t (*)[32])h, 4);
    g_assert(rx_read(fd, bm, 1));
    g_assert_cmphex(bm[0], ==, 0x9);

    /* a page it holds, and one it does not */
    g_assert_cmpint(rx_get(fd, h[0], page), ==, RXP_GOT);
    memset(want, 0x40, PAGE);
    g_assert(!memcmp(page, want, PAGE));
    g_assert_cmpint(rx_get(fd, h[1], page), ==, RXP_UNKNOWN);

    /* the exporting guest writes the page: it is not served any more */
    want[100] = 1;
    qtest_memwrite(from, FULL_GPA, want, PAGE);
    g_assert_cmpint(rx_get(fd, h[0], page), ==, RXP_CHANGED);

    /* clients that break the protocol are cut off, the others go on */
    fd2 = rx_connect(path);
    memset(bad, 'x', sizeof(bad));
    rx_write(fd2, bad, sizeof(bad));
    g_assert_false(rx_read(fd2, bad, 1));
    close(fd2);
    fd2 = rx_open(path);
    rxp_header_encode(bad, RXP_OP_GET, RXP_MAX_GET + 1);
    rx_write(fd2, bad, RXP_HEADER_SIZE);
    g_assert_false(rx_read(fd2, bad, 1));
    close(fd2);
    fd2 = rx_connect(path);
    rxp_hello_encode(bad, 2 * PAGE);
    rx_write(fd2, bad, RXP_HELLO_SIZE);
    g_assert_false(rx_read(fd2, bad, 1));
    close(fd2);
    g_assert_cmpint(rx_get(fd, h[3], page), ==, RXP_GOT);

    g_assert_cmpint(export_stat(from, "connections"), ==, 4);
    g_assert_cmpint(export_stat(from, "hashes-asked"), ==, 4 + 4);
    g_assert_cmpint(export_stat(from, "pages-served"), ==, 2);
    g_assert_cmpint(export_stat(from, "pages-changed"), ==, 1);
    g_assert_cmpint(export_stat(from, "pages-unknown"), ==, 1);
    g_assert_cmpint(export_stat(from, "protocol-errors"), ==, 3);

    /* stop: the connection ends, the socket goes, the guest runs on */
    qtest_qmp_assert_success(from, "{ 'execute': "
                             "'common-regions-export-stop' }");
    g_assert_false(rx_read(fd, page, 1));
    close(fd);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_cmpint(rx_connect(path), <, 0);
    g_assert_cmpint(export_stat(from, "pages"), ==, -1);
    migrate_qmp_refused(from, "No region export is running",
                        "{ 'execute': 'common-regions-export-stop' }");
    check_running(from);
    qtest_quit(from);
}

/* The capability */

static uint64_t cr_stat(QTestState *who, const char *name)
{
    QDict *cr = migrate_query_member(who, "common-regions");
    uint64_t v;

    g_assert(cr);
    v = qdict_get_int(cr, name);
    qobject_unref(cr);
    return v;
}

typedef enum CrExporter {
    CR_SELF,            /* the source exports its own pages */
    /*
     * Another QEMU, which holds every page the guest may have in
     * [1, 100) MiB (byte 0 from 1 to 255), so that the destination copies
     * them all and the guest changes most of them before they are sent;
     * and whose first 8 planted pages change once it has exported them.
     */
    CR_OTHER,
    CR_NONE,            /* the socket named is not there */
    /* the test's own export of the planted pages (FakeExport) */
    CR_FAKE_WRONG,      /* serves bytes that do not have the hash */
    CR_FAKE_LATE,       /* the source's page changes while it serves */
    CR_FAKE_GONE,       /* hangs up at the first GET */
} CrExporter;

/*
 * An export in the test, for what a real one does not do on demand:
 * serve wrong bytes, hang up, or hold its first GET until the test has
 * changed the source's page.  One connection, the planted pages.
 */
typedef struct FakeExport {
    CrExporter how;
    int lfd;
    GThread *thread;
    GHashTable *pages;          /* SHA-256 -> page */
    GMutex lock;
    GCond cond;
    bool in_get;                /* the first GET came (CR_FAKE_LATE) */
    bool release;               /* the test let it go on */
} FakeExport;

static void fake_add(FakeExport *fe, uint8_t fill, int byte5)
{
    uint8_t *page = g_malloc(PAGE), *hash = g_malloc(RFP_HASH_LEN);

    memset(page, fill, PAGE);
    if (byte5 >= 0) {
        page[5] = byte5;
    }
    sha256(page, PAGE, hash, NULL);
    g_hash_table_insert(fe->pages, hash, page);
}

static guint hash_hash(gconstpointer k)
{
    return *(const guint *)k;
}

static gboolean hash_equal(gconstpointer a, gconstpointer b)
{
    return !memcmp(a, b, RFP_HASH_LEN);
}

static bool fake_io(int fd, void *buf, size_t len, bool write)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = write ? send(fd, p, len, MSG_NOSIGNAL)
                          : read(fd, p, len);

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

static gpointer fake_thread(gpointer opaque)
{
    FakeExport *fe = opaque;
    g_autofree uint8_t *hashes = g_malloc(RXP_MAX_HAVE * RFP_HASH_LEN);
    uint8_t msg[RXP_HELLO_REPLY_SIZE], page[PAGE];
    const char *err;
    uint32_t count;
    uint8_t op;
    int fd = accept(fe->lfd, NULL, NULL);

    if (fd < 0 || !fake_io(fd, msg, RXP_HELLO_SIZE, false)) {
        goto out;
    }
    g_assert(rxp_hello_decode(msg, PAGE, &err));
    rxp_hello_reply_encode(msg, PAGE, g_hash_table_size(fe->pages));
    g_assert(fake_io(fd, msg, RXP_HELLO_REPLY_SIZE, true));
    while (fake_io(fd, msg, RXP_HEADER_SIZE, false)) {
        g_assert(rxp_header_decode(msg, &op, &count, &err));
        g_assert(fake_io(fd, hashes, count * RFP_HASH_LEN, false));
        if (op == RXP_OP_HAVE) {
            g_autofree uint8_t *bm = g_malloc0(rxp_have_reply_size(count));

            for (uint32_t i = 0; i < count; i++) {
                if (g_hash_table_contains(fe->pages,
                                          hashes + i * RFP_HASH_LEN)) {
                    rxp_have_set(bm, i);
                }
            }
            g_assert(fake_io(fd, msg, RXP_HEADER_SIZE, true));
            g_assert(fake_io(fd, bm, rxp_have_reply_size(count), true));
            continue;
        }
        if (fe->how == CR_FAKE_GONE) {
            break;
        }
        if (fe->how == CR_FAKE_LATE) {
            g_mutex_lock(&fe->lock);
            fe->in_get = true;
            g_cond_broadcast(&fe->cond);
            while (!fe->release) {
                g_cond_wait(&fe->cond, &fe->lock);
            }
            g_mutex_unlock(&fe->lock);
        }
        if (!fake_io(fd, msg, RXP_HEADER_SIZE, true)) {
            break;
        }
        for (uint32_t i = 0; i < count; i++) {
            uint8_t *p = g_hash_table_lookup(fe->pages,
                                             hashes + i * RFP_HASH_LEN);
            uint8_t st = p ? RXP_GOT : RXP_UNKNOWN;

            g_assert(fake_io(fd, &st, 1, true));
            if (p) {
                memcpy(page, p, PAGE);
                if (fe->how == CR_FAKE_WRONG) {
                    page[PAGE - 1] ^= 1;
                }
                g_assert(fake_io(fd, page, PAGE, true));
            }
        }
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static FakeExport *fake_start(CrExporter how, const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    FakeExport *fe = g_new0(FakeExport, 1);

    fe->how = how;
    fe->pages = g_hash_table_new_full(hash_hash, hash_equal, g_free, g_free);
    for (int i = 0; i < 16; i++) {
        fake_add(fe, 0x40 + i, -1);
    }
    fake_add(fe, 0, 0x77);
    g_mutex_init(&fe->lock);
    g_cond_init(&fe->cond);
    fe->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    unlink(path);
    g_assert_cmpint(bind(fe->lfd, (struct sockaddr *)&sun, sizeof(sun)),
                    ==, 0);
    g_assert_cmpint(listen(fe->lfd, 1), ==, 0);
    fe->thread = g_thread_new("fake-export", fake_thread, fe);
    return fe;
}

/* CR_FAKE_LATE: wait for the destination's first GET. */
static void fake_wait_get(FakeExport *fe)
{
    g_mutex_lock(&fe->lock);
    while (!fe->in_get) {
        g_cond_wait(&fe->cond, &fe->lock);
    }
    g_mutex_unlock(&fe->lock);
}

static void fake_release(FakeExport *fe)
{
    g_mutex_lock(&fe->lock);
    fe->release = true;
    g_cond_broadcast(&fe->cond);
    g_mutex_unlock(&fe->lock);
}

static void fake_stop(FakeExport *fe)
{
    fake_release(fe);
    shutdown(fe->lfd, SHUT_RDWR);
    g_thread_join(fe->thread);
    close(fe->lfd);
    g_hash_table_destroy(fe->pages);
    g_mutex_clear(&fe->lock);
    g_cond_clear(&fe->cond);
    g_free(fe);
}

#define GUEST_PAGES_GPA (104 * MiB)     /* on the other exporter */

/* CR_FAKE_LATE: the source's last full page once the export has it */
#define LATE_FILL       0x33

static void check_planted(QTestState *who, bool late)
{
    uint8_t page[PAGE], want[PAGE];

    for (int i = 0; i < 16; i++) {
        memset(want, late && i == 15 ? LATE_FILL : 0x40 + i, PAGE);
        qtest_memread(who, FULL_GPA + i * PAGE, page, PAGE);
        g_assert(!memcmp(page, want, PAGE));
    }
    memset(want, 0, PAGE);
    want[5] = 0x77;
    qtest_memread(who, ONE_GPA + ONE_PAGE * PAGE, page, PAGE);
    g_assert(!memcmp(page, want, PAGE));
}

static void do_test_migrate(CrExporter how, bool multifd)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *sock = g_strdup_printf("%s/cr-export.sock", tmpfs);
    MigrateStart args = { .tcg = true };
    QTestState *from, *to, *exporter = NULL;
    FakeExport *fe = NULL;
    uint64_t held, skipped, changed, refused, exporters;

    args.caps[MIGRATION_CAPABILITY_RETURN_PATH] = true;
    args.caps[MIGRATION_CAPABILITY_COMMON_REGIONS] = true;
    args.caps[MIGRATION_CAPABILITY_MULTIFD] = multifd;
    g_assert_false(migrate_start(&from, &to, "defer", &args));
    migrate_set_parameter_str(to, "common-regions-exporters", sock);
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    plant(from);
    if (how == CR_SELF) {
        exporter = from;
    } else if (how == CR_OTHER) {
        uint8_t page[PAGE] = { 0 };

        exporter = qtest_init("-machine q35 -nodefaults -m 150M");
        plant(exporter);
        for (int v = 1; v < 256; v++) {
            page[0] = v;
            qtest_memwrite(exporter, GUEST_PAGES_GPA + (v - 1) * PAGE, page,
                           PAGE);
        }
    }
    if (how >= CR_FAKE_WRONG) {
        fe = fake_start(how, sock);
    }
    if (exporter) {
        uint8_t page[PAGE];

        qtest_qmp_assert_success(exporter, "{ 'execute': "
                                 "'common-regions-export-start', "
                                 "'arguments': { 'path': %s } }", sock);
        if (how == CR_OTHER) {
            /* after the index: the export has the hashes, not the pages */
            memset(page, 0x66, PAGE);
            for (int i = 0; i < 8; i++) {
                qtest_memwrite(exporter, FULL_GPA + i * PAGE, page, PAGE);
            }
        }
    }

    migrate_ensure_converge(from);
    migrate_qmp(from, to, uri, NULL, "{}");
    if (how == CR_FAKE_LATE) {
        uint8_t page[PAGE];

        /*
         * The source has its fingerprint and waits for the destination,
         * which has asked for the pages: the last one changes now, after
         * the hash the destination checks, before the source's send.
         */
        fake_wait_get(fe);
        memset(page, LATE_FILL, PAGE);
        qtest_memwrite(from, FULL_GPA + 15 * PAGE, page, PAGE);
        fake_release(fe);
    }
    wait_for_migration_complete(from);
    wait_for_migration_complete(to);

    held = cr_stat(to, "pages-held");
    skipped = cr_stat(from, "pages-skipped");
    changed = cr_stat(from, "pages-changed");
    refused = cr_stat(to, "pages-refused");
    exporters = cr_stat(to, "exporters");
    g_test_message("offered %" PRIu64 ", held %" PRIu64 ", refused %"
                   PRIu64 ", skipped %" PRIu64 ", changed %" PRIu64,
                   cr_stat(from, "pages-offered"), held, refused, skipped,
                   changed);
    g_assert_cmpint(cr_stat(from, "pages-offered"), >=, 17);
    g_assert_cmpint(cr_stat(from, "pages-held"), ==, held);
    g_assert_cmpint(cr_stat(from, "bytes-saved"), ==, skipped * PAGE);
    check_planted(to, how == CR_FAKE_LATE);
    if (exporter && exporter != from) {
        qtest_quit(exporter);
    }
    if (fe) {
        fake_stop(fe);
    }
    /* the guest's pages, held and changed or not, are the source's */
    migrate_end(from, to, true);
    unlink(sock);

    /* each held page was sent in full, or not sent because unchanged */
    g_assert_cmpint(skipped + changed, ==, held);
    switch (how) {
    case CR_SELF:
        /* the planted pages, unchanged, were not sent */
        g_assert_cmpint(skipped, >=, 17);
        g_assert_cmpint(exporters, ==, 1);
        break;
    case CR_OTHER:
        /* 8 pages changed on the export: refused, then sent */
        g_assert_cmpint(refused, ==, 8);
        /* all the guest's pages but zero ones, and 9 planted */
        g_assert_cmpint(held, >=, 9 + 20000);
        /*
         * the guest wrote most of them since setup: sent in full, which
         * migrate_end() verified (check_guests_ram(): a stale copy fails)
         */
        g_assert_cmpint(changed, >, 1000);
        g_assert_cmpint(skipped, >=, 9);
        break;
    case CR_NONE:
        g_assert_cmpint(exporters, ==, 0);
        g_assert_cmpint(held, ==, 0);
        break;
    case CR_FAKE_WRONG:
        /* no page placed: every one failed its hash */
        g_assert_cmpint(refused, ==, 17);
        g_assert_cmpint(held, ==, 0);
        break;
    case CR_FAKE_LATE:
        g_assert_cmpint(held, ==, 17);
        g_assert_cmpint(changed, ==, 1);
        g_assert_cmpint(skipped, ==, 16);
        break;
    case CR_FAKE_GONE:
        g_assert_cmpint(exporters, ==, 1);
        g_assert_cmpint(held, ==, 0);
        break;
    }
}

static void test_migrate_self(void)
{
    do_test_migrate(CR_SELF, false);
}

static void test_migrate_multifd(void)
{
    do_test_migrate(CR_SELF, true);
}

static void test_migrate_other(void)
{
    do_test_migrate(CR_OTHER, false);
}

static void test_migrate_no_exporter(void)
{
    do_test_migrate(CR_NONE, false);
}

/* An export whose bytes do not have the hash: nothing is placed */
static void test_migrate_wrong_bytes(void)
{
    do_test_migrate(CR_FAKE_WRONG, false);
}

/* A page the guest writes between the fingerprint and its send */
static void test_migrate_changed_at_source(void)
{
    do_test_migrate(CR_FAKE_LATE, false);
}

/* An export that hangs up in the middle */
static void test_migrate_exporter_gone(void)
{
    do_test_migrate(CR_FAKE_GONE, false);
}

static void test_fingerprint_refusals(void)
{
    g_autofree char *path = g_strdup_printf("%s/nodir/guest.rfp", tmpfs);
    QTestState *who = qtest_init("-machine q35 -nodefaults -m 32M");
    static const uint64_t bad[] = { 0, 512, 3 * PAGE, 512 * KiB };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        migrate_qmp_refused(who, "Parameter 'region-size' must be a power "
                            "of two from the page size (4096) to 64 pages",
                            "{ 'execute': 'common-regions-fingerprint', "
                            "'arguments': { 'filename': 'x', "
                            "'region-size': %" PRIu64 " } }", bad[i]);
    }
    migrate_qmp_refused(who, "Cannot write the fingerprint to",
                        "{ 'execute': 'common-regions-fingerprint', "
                        "'arguments': { 'filename': %s } }", path);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    qtest_quit(who);
}

/* Rules of the capability, and when it is too late to set it */
static void test_migrate_refusals(void)
{
    QTestState *who = qtest_init("-machine none -nodefaults");

    migrate_set_capabilities_refused(who, "Capability 'common-regions' "
                                     "requires capability 'return-path'",
                                     "common-regions", NULL);
    qtest_quit(who);

    who = qtest_init("-machine none -nodefaults -incoming defer");
    migrate_incoming_qmp(who, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_capabilities_refused(who, "Capability 'common-regions' "
                                     "must be set before incoming starts",
                                     "return-path", "common-regions", NULL);
    qtest_quit(who);
}

/*
 * The capability on one side only (@on_source: the source's): the
 * configuration section refuses it before any page, and the source
 * runs on.
 */
static void do_test_one_side(bool on_source)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    MigrateStart args = { .tcg = true, .hide_stderr = true };
    QTestState *from, *to, *who;

    args.caps[MIGRATION_CAPABILITY_RETURN_PATH] = true;
    g_assert_false(migrate_start(&from, &to, "defer", &args));
    who = on_source ? from : to;
    qtest_qmp_assert_success(who, "{ 'execute': 'migrate-set-capabilities', "
                             "'arguments': { 'capabilities': [ "
                             "{ 'capability': 'common-regions', "
                             "'state': true } ] } }");
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_fail(from, true);
    qtest_set_expected_status(to, EXIT_FAILURE);
    check_running(from);
    migrate_end(from, to, false);
}

static void test_migrate_source_only(void)
{
    do_test_one_side(true);
}

static void test_migrate_dest_only(void)
{
    do_test_one_side(false);
}

void migration_test_add_common_regions(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    if (!env->is_x86) {
        /* the test knows the x86 guest's RAM */
        return;
    }
    migration_test_add("/migration/common-regions/fingerprint/refusals",
                       test_fingerprint_refusals);
    migration_test_add("/migration/common-regions/fingerprint/guest",
                       test_fingerprint);
    migration_test_add("/migration/common-regions/export",
                       test_export);
    migration_test_add("/migration/common-regions/refusals",
                       test_migrate_refusals);
    migration_test_add("/migration/common-regions/source-only",
                       test_migrate_source_only);
    migration_test_add("/migration/common-regions/dest-only",
                       test_migrate_dest_only);
    migration_test_add("/migration/common-regions/self",
                       test_migrate_self);
    migration_test_add("/migration/common-regions/multifd",
                       test_migrate_multifd);
    migration_test_add("/migration/common-regions/other",
                       test_migrate_other);
    migration_test_add("/migration/common-regions/no-exporter",
                       test_migrate_no_exporter);
    migration_test_add("/migration/common-regions/wrong-bytes",
                       test_migrate_wrong_bytes);
    migration_test_add("/migration/common-regions/changed-at-source",
                       test_migrate_changed_at_source);
    migration_test_add("/migration/common-regions/exporter-gone",
                       test_migrate_exporter_gone);
}
