/*
 * QTest testcases for the inflight-io-handoff migration capability
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The bootblock guest boots from virtio-blk; the test drives a second
 * virtio-blk device with libqos, from the source and then from the
 * destination, on a disk both share.  On the source, blkdebug holds a
 * write and a read in flight for as long as the test wants (break and
 * resume), across the switchover: upstream's drain would wait for them
 * inside the downtime, forever here.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "migration/migration-qmp.h"
#include "migration/migration-util.h"
#include "qobject/qdict.h"
#include "libqos/libqos-malloc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_blk.h"
#include "standard-headers/linux/virtio_ring.h"

#define PAGE            4096
#define DISK_SIZE       (16 * MiB)
#define NODE            "hdisk"
/* its BlockBackend's device: qemu-io on a node would drain it */
#define VBLK            "/machine/peripheral/vblk/virtio-backend"
/* guest RAM the stock guest leaves alone (it writes 1-100M) */
#define VIRTIO_RAM      (112 * MiB)     /* [112, 116) MiB: rings, headers */
#define VIRTIO_RAM_END  (116 * MiB)
#define W_GPA           (108 * MiB)     /* the first write's data */
#define W2_GPA          (108 * MiB + PAGE)      /* the later one's */
#define R_GPA           (108 * MiB + 2 * PAGE)  /* the read's buffer */
#define W_DISK          (1 * MiB)
#define R_DISK          (2 * MiB)
#define W_BYTE          0xaa
#define W2_BYTE         0xbb
#define R_BYTE          0x5c
#define BLK_DEVFN       QPCI_DEVFN(5, 0)
#define MAX_HEADS       256
/* how long the destination must hold a request the source still has */
#define HELD_MS         1000

static char *tmpfs;

typedef struct HandoffBlk {
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *dev;
    QVirtQueue *vq;
    /* what the destination's side needs to kick the same queue */
    QPCIBus *to_bus;
    QVirtioPCIDevice *to_dev;
    unsigned int done[MAX_HEADS];
    uint64_t status[MAX_HEADS];
} HandoffBlk;

static void blk_init(HandoffBlk *b, QTestState *qts)
{
    uint64_t features;

    memset(b, 0, sizeof(*b));
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

/*
 * The queue lives on in the destination's RAM: map the same device's
 * BAR there (the allocator gives it the same address) to kick it.
 */
static void blk_follow(HandoffBlk *b, QTestState *to)
{
    b->to_bus = qpci_new_pc(to, NULL);
    b->to_dev = virtio_pci_new(b->to_bus,
                               &(QPCIAddress) { .devfn = BLK_DEVFN });
    g_assert_nonnull(b->to_dev);
    qvirtio_pci_device_enable(b->to_dev);
}

static void blk_free(HandoffBlk *b)
{
    if (b->to_dev) {
        qvirtio_pci_device_disable(b->to_dev);
        g_free(b->to_dev);
        qpci_free_pc(b->to_bus);
    }
    qvirtio_pci_device_disable(b->dev);
    g_free(b->vq);
    g_free(b->dev);
    qpci_free_pc(b->bus);
    alloc_destroy(&b->alloc);
}

/*
 * Queue a read (or write, @out) of @len bytes at disk offset @disk into
 * (from) guest RAM at @gpa, on @qts, without waiting: returns its head.
 */
static uint32_t blk_submit(HandoffBlk *b, QTestState *qts, bool out,
                           uint64_t disk, uint64_t gpa, uint32_t len)
{
    struct virtio_blk_outhdr hdr = {
        .type = cpu_to_le32(out ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN),
        .sector = cpu_to_le64(disk / 512),
    };
    uint64_t req = guest_alloc(&b->alloc, sizeof(hdr) + 1);
    QVirtioDevice *vdev = b->to_dev && qts != b->bus->qts ?
                          &b->to_dev->vdev : &b->dev->vdev;
    uint32_t head;

    qtest_memwrite(qts, req, &hdr, sizeof(hdr));
    qtest_writeb(qts, req + sizeof(hdr), 0xff);
    head = qvirtqueue_add(qts, b->vq, req, sizeof(hdr), false, true);
    qvirtqueue_add(qts, b->vq, gpa, len, !out, true);
    qvirtqueue_add(qts, b->vq, req + sizeof(hdr), 1, true, false);
    qvirtqueue_kick(qts, vdev, b->vq, head);
    g_assert_cmpint(head, <, MAX_HEADS);
    b->status[head] = req + sizeof(hdr);
    return head;
}

/* Whether @head completed on @qts within @ms; counts every completion */
static bool blk_wait(HandoffBlk *b, QTestState *qts, uint32_t head, int ms)
{
    g_autoptr(GTimer) timer = g_timer_new();
    uint32_t idx, len;

    for (;;) {
        while (qvirtqueue_get_buf(qts, b->vq, &idx, &len)) {
            g_assert_cmpint(idx, <, MAX_HEADS);
            b->done[idx]++;
        }
        if (b->done[head]) {
            g_assert_cmpint(qtest_readb(qts, b->status[head]), ==,
                            VIRTIO_BLK_S_OK);
            return true;
        }
        if (g_timer_elapsed(timer, NULL) * 1000 >= ms) {
            return false;
        }
        g_usleep(1000);
    }
}

static char *disk_create(uint8_t r_byte)
{
    char *disk = g_strdup_printf("%s/handoff.img", tmpfs);
    g_autofree uint8_t *buf = g_malloc(PAGE);
    int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0600);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, DISK_SIZE), ==, 0);
    memset(buf, r_byte, PAGE);
    g_assert_cmpint(pwrite(fd, buf, PAGE, R_DISK), ==, PAGE);
    close(fd);
    return disk;
}

static void disk_check(const char *disk, uint64_t off, uint8_t byte)
{
    g_autofree uint8_t *got = g_malloc(PAGE);
    g_autofree uint8_t *want = g_malloc(PAGE);
    int fd = open(disk, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, got, PAGE, off), ==, PAGE);
    close(fd);
    memset(want, byte, PAGE);
    g_assert_cmpmem(got, PAGE, want, PAGE);
}

static void hmp_ok(QTestState *who, const char *cmd)
{
    g_autofree char *out = qtest_hmp(who, "%s", cmd);

    g_assert_cmpstr(out, ==, "");
}

static int64_t handoff_member(QTestState *who, const char *member)
{
    g_autoptr(QDict) ih = migrate_query_member(who, "inflight-io-handoff");

    return qdict_get_int(ih, member);
}

static bool handoff_waiting(QTestState *who)
{
    g_autoptr(QDict) ih = migrate_query_member(who, "inflight-io-handoff");

    return qdict_get_bool(ih, "waiting");
}

/*
 * Both sides on the disk: the source through blkdebug, which holds
 * requests at the test's breakpoints, the destination straight; image
 * locking off, so that only the capability orders the writes.
 */
static void start_pair(QTestState **from, QTestState **to, const char *disk,
                       const char *uri, bool multifd)
{
    g_autofree char *src = g_strdup_printf(
        "-blockdev driver=file,node-name=f,filename=%s,locking=off "
        "-blockdev driver=blkdebug,node-name=dbg,image=f "
        "-blockdev driver=raw,node-name=" NODE ",file=dbg "
        "-device virtio-blk-pci,id=vblk,drive=" NODE ",addr=5.0", disk);
    g_autofree char *dst = g_strdup_printf(
        "-blockdev driver=file,node-name=f,filename=%s,locking=off "
        "-blockdev driver=raw,node-name=" NODE ",file=f "
        "-device virtio-blk-pci,id=vblk,drive=" NODE ",addr=5.0", disk);
    MigrateStart args = {
        .tcg = true,
        .boot_virtio_blk = true,
        .opts_source = src,
        .opts_target = dst,
        .caps[MIGRATION_CAPABILITY_INFLIGHT_IO_HANDOFF] = true,
        .caps[MIGRATION_CAPABILITY_MULTIFD] = multifd,
    };

    g_assert_false(migrate_start(from, to, "defer", &args));
    migrate_incoming_qmp(*to, uri, NULL, "{}");
}

/*
 * A write and a read held in flight on the source across the
 * switchover: the destination runs the guest at once, but holds both
 * requests (and the guest's) while the source still has them; once the
 * source's write has landed, the destination issues both again and each
 * completes exactly once there.  A write the guest issues after that
 * completion is the one the disk keeps.  Without the hold the
 * destination completes the write at once, and the source's copy lands
 * after the later write.
 */
static void do_test_ordered(bool multifd)
{
    g_autofree char *disk = disk_create(R_BYTE);
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree uint8_t *buf = g_malloc(PAGE);
    g_autofree uint8_t *want = g_malloc(PAGE);
    QTestState *from, *to;
    uint32_t w, r, w2;
    HandoffBlk b;
    char *hmp;

    start_pair(&from, &to, disk, uri, multifd);
    /* SeaBIOS probes virtio-blk: leave it the device until it booted */
    wait_for_serial("src_serial");
    blk_init(&b, from);
    memset(buf, W_BYTE, PAGE);
    qtest_memwrite(from, W_GPA, buf, PAGE);
    memset(buf, W2_BYTE, PAGE);
    qtest_memwrite(from, W2_GPA, buf, PAGE);

    migrate_set_parameter_int(from, "max-bandwidth", 64 * MiB);
    migrate_set_parameter_int(from, "downtime-limit", 1);
    migrate_qmp(from, to, uri, NULL, "{}");
    while (read_ram_property_int(from, "dirty-sync-count") < 2) {
        g_usleep(20 * 1000);
    }

    /* in flight on the source until resumed */
    hmp_ok(from, "qemu-io -d " VBLK " \"break write_aio w\"");
    hmp_ok(from, "qemu-io -d " VBLK " \"break read_aio r\"");
    w = blk_submit(&b, from, true, W_DISK, W_GPA, PAGE);
    r = blk_submit(&b, from, false, R_DISK, R_GPA, PAGE);
    g_assert_false(blk_wait(&b, from, w, 200));
    g_assert_false(blk_wait(&b, from, r, 0));

    migrate_ensure_converge(from);
    wait_for_resume(to, get_dst());
    blk_follow(&b, to);

    /* the guest runs there, its requests held: the source has them */
    g_assert_false(blk_wait(&b, to, w, HELD_MS));
    g_assert_false(blk_wait(&b, to, r, 0));
    g_assert_true(handoff_waiting(to));
    g_assert_cmpint(handoff_member(to, "requests-moved"), ==, 2);
    hmp = qtest_hmp(to, "info migrate");
    g_assert_nonnull(strstr(hmp, "In-flight I/O handoff: \trequests "
                            "moved=2"));
    g_assert_nonnull(strstr(hmp, "disk requests held"));
    g_free(hmp);
    /* the source waits for them after the stream's end, not stopped */
    g_assert_cmpint(handoff_member(from, "requests-moved"), ==, 2);
    {
        g_autofree char *status = migrate_query_status(from);

        g_assert_cmpstr(status, !=, "completed");
    }

    hmp_ok(from, "qemu-io -d " VBLK " \"resume w\"");
    hmp_ok(from, "qemu-io -d " VBLK " \"resume r\"");
    g_assert_true(blk_wait(&b, to, w, 30 * 1000));
    g_assert_true(blk_wait(&b, to, r, 30 * 1000));
    /* read again on the destination */
    qtest_memread(to, R_GPA, buf, PAGE);
    memset(want, R_BYTE, PAGE);
    g_assert_cmpmem(buf, PAGE, want, PAGE);

    /* then a later write of the same block: the one the disk keeps */
    w2 = blk_submit(&b, to, true, W_DISK, W2_GPA, PAGE);
    g_assert_true(blk_wait(&b, to, w2, 30 * 1000));
    wait_for_migration_complete(from);

    g_test_message("source: %" PRId64 " requests moved, settled %" PRId64
                   " ms after the stream; destination held them %" PRId64
                   " ms", handoff_member(from, "requests-moved"),
                   handoff_member(from, "settle-time"),
                   handoff_member(to, "settle-time"));
    g_assert_false(handoff_waiting(to));
    g_assert_cmpint(handoff_member(to, "settle-time"), >=, HELD_MS);
    g_assert_cmpint(handoff_member(from, "settle-time"), >=, HELD_MS);
    /* each exactly once: nothing more in the used ring */
    g_assert_false(blk_wait(&b, to, MAX_HEADS - 1, 100));
    g_assert_cmpint(b.done[w], ==, 1);
    g_assert_cmpint(b.done[r], ==, 1);
    g_assert_cmpint(b.done[w2], ==, 1);
    /* struct vring_used: flags, then idx */
    g_assert_cmpint(qtest_readw(to, b.vq->used + 2), ==, 3);

    wait_for_serial("dest_serial");
    blk_free(&b);
    migrate_end(from, to, true);
    disk_check(disk, W_DISK, W2_BYTE);
    unlink(disk);
}

static void test_handoff_ordered(void)
{
    do_test_ordered(false);
}

/* The same with the pages through multifd's channels */
static void test_handoff_multifd(void)
{
    do_test_ordered(true);
}

/* Devices that cannot move their requests, and when it is too late */
static void test_handoff_refusals(void)
{
    QTestState *who;

    /* a drive without a medium does no I/O: not counted */
    who = qtest_init("-machine q35 -nodefaults -device ide-cd,id=cd0,bus=ide.0 "
                     "-blockdev driver=null-co,node-name=n0 "
                     "-device ide-hd,drive=n0,id=disk0,bus=ide.1");
    migrate_set_capability(who, "inflight-io-handoff", true);
    migrate_qmp_refused(who, "Capability 'inflight-io-handoff' cannot move "
                        "the requests of device 'disk0' (ide-hd): only "
                        "virtio-blk sends its requests in flight with its "
                        "state",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    qtest_quit(who);

    who = qtest_init("-machine q35 -nodefaults -object iothread,id=io0 "
                     "-blockdev driver=null-co,node-name=n0 "
                     "-device virtio-blk-pci,drive=n0,id=vd0,iothread=io0");
    migrate_set_capability(who, "inflight-io-handoff", true);
    migrate_qmp_refused(who, "/machine/peripheral/vd0/virtio-backend': it "
                        "runs in an iothread",
                        "{ 'execute': 'migrate', "
                        "'arguments': { 'uri': 'tcp:127.0.0.1:1' } }");
    qtest_quit(who);

    /* the end of the stream is read otherwise: too late once listening */
    who = qtest_init("-machine none -nodefaults -incoming defer");
    migrate_incoming_qmp(who, "tcp:127.0.0.1:0", NULL, "{}");
    migrate_set_capabilities_refused(who, "Capability "
                                     "'inflight-io-handoff' must be set "
                                     "before incoming starts",
                                     "inflight-io-handoff", NULL);
    qtest_quit(who);
}

/*
 * The capability on one side only (@on_source: the source's): the
 * configuration section refuses it before any page, whichever side
 * lacks it (a source without it would drain and send no report), and
 * the source runs on.
 */
static void do_test_one_side(bool on_source)
{
    g_autofree char *disk = disk_create(R_BYTE);
    g_autofree char *uri = g_strdup_printf("unix:%s/migsocket", tmpfs);
    g_autofree char *opts = g_strdup_printf(
        "-blockdev driver=file,node-name=f,filename=%s,locking=off "
        "-device virtio-blk-pci,drive=f,addr=5.0", disk);
    g_autofree char *dst_opts = g_strdup_printf("%s 2>/dev/null", opts);
    MigrateStart args = {
        .tcg = true,
        .boot_virtio_blk = true,
        .opts_source = opts,
        .opts_target = dst_opts,
    };
    QTestState *from, *to;

    g_assert_false(migrate_start(&from, &to, "defer", &args));
    migrate_set_capability(on_source ? from : to, "inflight-io-handoff",
                           true);
    migrate_incoming_qmp(to, uri, NULL, "{}");
    wait_for_serial("src_serial");
    migrate_qmp(from, to, uri, NULL, "{}");
    wait_for_migration_fail(from, true);
    qtest_set_expected_status(to, EXIT_FAILURE);
    migrate_end(from, to, false);
    unlink(disk);
}

static void test_handoff_dest_without(void)
{
    do_test_one_side(true);
}

static void test_handoff_source_without(void)
{
    do_test_one_side(false);
}

void migration_test_add_inflight_io_handoff(MigrationTestEnv *env)
{
    tmpfs = env->tmpfs;

    migration_test_add("/migration/inflight-io-handoff/refusals",
                       test_handoff_refusals);
    if (!env->has_tcg || !env->is_x86) {
        /* libqos drives the x86 guest's PCI bus; TCG for speed */
        return;
    }
    migration_test_add("/migration/inflight-io-handoff/ordered",
                       test_handoff_ordered);
    migration_test_add("/migration/inflight-io-handoff/multifd",
                       test_handoff_multifd);
    migration_test_add("/migration/inflight-io-handoff/dest-without",
                       test_handoff_dest_without);
    migration_test_add("/migration/inflight-io-handoff/source-without",
                       test_handoff_source_without);
}
