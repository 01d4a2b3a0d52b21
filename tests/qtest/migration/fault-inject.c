/*
 * A fault injector for migration qtests, preloaded into QEMU
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Error paths that a healthy host never takes (a failed fdatasync, a
 * full file system for one small write, a userfaultfd ioctl refused, a
 * disk read error, an RDMA registration refused) are reached by
 * preloading this library into a QEMU started by a test
 * (LD_PRELOAD) and naming the faults in the file that
 * QTEST_FAULT_INJECT names.  Nothing in QEMU knows about it.
 *
 * The file holds one rule a line ('#' starts a comment):
 *
 *   <pid> <call> <path-suffix> <arg> <errno> <delay-ms> <skip> <count>
 *   [<thread>]
 *
 * pid:    the process the rule is for (0: any);
 * call:   pread, pwrite, preadv, pwritev, fdatasync, ioctl, sendmsg,
 *         sendmsg-head, ibv_reg_mr, ibv_dereg_mr, ibv_post_send;
 * path-suffix: the end of the name /proc/self/fd gives the call's file
 *         descriptor ("*": any; an anonymous inode such as a userfaultfd
 *         is "anon_inode:[userfaultfd]");
 * arg:    the size of a pread, pwrite or sendmsg, the size of the first
 *         buffer of a sendmsg-head, the ioctl request, the length of a
 *         memory region, or the type of an RDMA migration control
 *         message (0: any);
 * errno:  the error the call fails with (0: the call is only delayed;
 *         -1: a sendmsg is dropped, as if it had been sent); for
 *         ibv_post_send, the byte offset in the control message of a
 *         32-bit word set to all ones: the message goes out corrupt, as
 *         a faulty or hostile peer would send it; for sendmsg-head (a
 *         sendmsg seen again, for its first buffer: a multifd packet's
 *         header, say), the same in that buffer;
 * delay:  milliseconds to sleep before the call or its failure;
 * skip:   matching calls that pass before the first failure;
 * count:  matching calls that fail, then the rule is spent (-1: no end);
 * thread: the name of the calling thread (QEMU names its threads with
 *         -name debug-threads=on, as migration tests do), "*" or nothing:
 *         any;
 * match:  for sendmsg-head only, optional: "<offset>=<hex>", the call
 *         matches only if the big-endian 32-bit word at that byte offset
 *         of its first buffer has that value (a multifd packet's flags,
 *         say).
 *
 * The file is read again when it changes (at most every 5 ms): a test
 * arms a fault at the moment it chooses by replacing the file.  Each
 * call that a rule failed or delayed adds a line to "<file>.hits", so
 * that the test can check that the error path was really taken.
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include <dlfcn.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "fault-inject.h"
#ifdef CONFIG_RDMA
#include "qemu/bswap.h"
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
/* a macro choosing between it and ibv_reg_mr_iova2(): the function here */
#undef ibv_reg_mr
#endif

#define FI_MAX_RULES 16
#define FI_RECHECK_NS (5 * 1000 * 1000)

typedef struct FiRule {
    long pid;
    char call[32];
    char suffix[128];
    unsigned long arg;
    int err;
    long delay_ms;
    long skip;
    long count;
    char thread[16];
    /* match: the word at word_off must be word_val (word_off < 0: any) */
    long word_off;
    unsigned int word_val;
} FiRule;

static pthread_mutex_t fi_lock = PTHREAD_MUTEX_INITIALIZER;
static FiRule fi_rules[FI_MAX_RULES];
static int fi_nrules;
static struct timespec fi_checked;
static struct stat fi_seen;

static int64_t fi_ns(const struct timespec *ts)
{
    return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* with fi_lock held */
static void fi_reload(const char *path)
{
    struct timespec now;
    struct stat st;
    char line[512];
    FILE *f;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    if (fi_checked.tv_sec && fi_ns(&now) - fi_ns(&fi_checked) <
        FI_RECHECK_NS) {
        return;
    }
    fi_checked = now;
    if (stat(path, &st) < 0) {
        memset(&st, 0, sizeof(st));
    }
    if (st.st_ino == fi_seen.st_ino && st.st_size == fi_seen.st_size &&
        st.st_mtim.tv_sec == fi_seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == fi_seen.st_mtim.tv_nsec) {
        return;
    }
    fi_seen = st;
    fi_nrules = 0;
    f = fopen(path, "re");
    if (!f) {
        return;
    }
    while (fi_nrules < FI_MAX_RULES && fgets(line, sizeof(line), f)) {
        FiRule *r = &fi_rules[fi_nrules];

        int n;

        strcpy(r->thread, "*");
        r->word_off = -1;
        n = sscanf(line, "%ld %31s %127s %lu %d %ld %ld %ld %15s %ld=%x",
                   &r->pid, r->call, r->suffix, &r->arg, &r->err,
                   &r->delay_ms, &r->skip, &r->count, r->thread,
                   &r->word_off, &r->word_val);
        if (n < 11) {
            r->word_off = -1;
        }
        if (n >= 8 && r->call[0] != '#') {
            fi_nrules++;
        }
    }
    fclose(f);
}

/*
 * No GLib calls: this library is preloaded into the shell that starts
 * QEMU, too.
 */
static void fi_hit(const char *path, const char *call, const char *name,
                   int err)
{
    char hits[PATH_MAX], line[512];
    int fd, n;

    snprintf(hits, sizeof(hits), "%s.hits", path);
    n = snprintf(line, sizeof(line), "%d %s %s %d\n", getpid(), call, name,
                 err);
    fd = open(hits, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, MIN(n, sizeof(line) - 1)) < 0) {
            /* the test then finds the fault missing */
        }
        close(fd);
    }
}

static bool fi_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);

    return !strcmp(suffix, "*") || (n >= s && !strcmp(name + n - s, suffix));
}

/* Does the rule's match hold for the buffer @head of @len bytes? */
static bool fi_word_matches(const FiRule *r, const uint8_t *head, size_t len)
{
    if (r->word_off < 0) {
        return true;
    }
    if (!head || r->word_off + 4 > len) {
        return false;
    }
    return ((uint32_t)head[r->word_off] << 24 |
            (uint32_t)head[r->word_off + 1] << 16 |
            (uint32_t)head[r->word_off + 2] << 8 |
            head[r->word_off + 3]) == r->word_val;
}

/*
 * The errno a call on @fd (-1: none) fails with, 0 to let it through;
 * sleeps first when a rule says so.  @head, @len: the call's first
 * buffer, for a rule's match (NULL: none).
 */
static int fi_check_buf(const char *call, int fd, unsigned long arg,
                        const void *head, size_t len)
{
    const char *path = getenv("QTEST_FAULT_INJECT");
    char name[256] = "", thread[16] = "";
    int saved_errno = errno;
    long delay_ms = 0;
    int err = 0;
    bool hit = false;

    if (!path) {
        return 0;
    }
    pthread_mutex_lock(&fi_lock);
    fi_reload(path);
    for (int i = 0; i < fi_nrules; i++) {
        FiRule *r = &fi_rules[i];

        if ((r->pid && r->pid != getpid()) || strcmp(r->call, call) ||
            (r->arg && r->arg != arg) || !r->count ||
            !fi_word_matches(r, head, len)) {
            continue;
        }
        if (fd >= 0 && !name[0]) {
            char link[64];
            ssize_t n;

            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
            n = readlink(link, name, sizeof(name) - 1);
            name[n > 0 ? n : 0] = '\0';
        }
        if (!fi_suffix(name, r->suffix)) {
            continue;
        }
        if (strcmp(r->thread, "*")) {
            if (!thread[0]) {
                prctl(PR_GET_NAME, thread);
            }
            if (strcmp(thread, r->thread)) {
                continue;
            }
        }
        if (r->skip > 0) {
            r->skip--;
            continue;
        }
        if (r->count > 0) {
            r->count--;
        }
        err = r->err;
        delay_ms = r->delay_ms;
        hit = true;
        break;
    }
    pthread_mutex_unlock(&fi_lock);
    if (hit) {
        fi_hit(path, call, name[0] ? name : "-", err);
        if (delay_ms) {
            struct timespec ts = { delay_ms / 1000, delay_ms % 1000 * 1000000 };

            while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
                /* sleep the rest */
            }
        }
    }
    /* a call let through sees the errno it had */
    errno = saved_errno;
    return err;
}

static int fi_check(const char *call, int fd, unsigned long arg)
{
    return fi_check_buf(call, fd, arg, NULL, 0);
}

/* The next definition of @name (libc's, libibverbs'), looked up once */
static void *fi_next(const char *name, void **cache)
{
    void *fn = qatomic_read(cache);

    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        qatomic_set(cache, fn);
    }
    return fn;
}

typedef ssize_t PreadFn(int, void *, size_t, off_t);
typedef ssize_t PwriteFn(int, const void *, size_t, off_t);
typedef ssize_t PreadvFn(int, const struct iovec *, int, off_t);
typedef ssize_t SendmsgFn(int, const struct msghdr *, int);
typedef int FdatasyncFn(int);
typedef int IoctlFn(int, unsigned long, ...);
typedef struct ibv_mr *IbvRegMrFn(struct ibv_pd *, void *, size_t, int);
typedef int IbvDeregMrFn(struct ibv_mr *);

#define FI_FAIL(call, fd, arg)                                            \
    do {                                                                  \
        int fi_err_ = fi_check(call, fd, arg);                            \
        if (fi_err_) {                                                    \
            errno = fi_err_;                                              \
            return -1;                                                    \
        }                                                                 \
    } while (0)

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
    static void *next;
    PreadFn *fn = fi_next("pread64", &next);

    FI_FAIL("pread", fd, count);
    return fn(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
    static void *next;
    PwriteFn *fn = fi_next("pwrite64", &next);

    FI_FAIL("pwrite", fd, count);
    return fn(fd, buf, count, offset);
}

ssize_t preadv64(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    static void *next;
    PreadvFn *fn = fi_next("preadv64", &next);

    FI_FAIL("preadv", fd, 0);
    return fn(fd, iov, iovcnt, offset);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    static void *next;
    PreadvFn *fn = fi_next("pwritev64", &next);

    FI_FAIL("pwritev", fd, 0);
    return fn(fd, iov, iovcnt, offset);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static void *next;
    SendmsgFn *fn = fi_next("sendmsg", &next);
    size_t len = 0;
    int err;

    for (size_t i = 0; i < msg->msg_iovlen; i++) {
        len += msg->msg_iov[i].iov_len;
    }
    err = fi_check("sendmsg", fd, len);
    if (err < 0) {
        return len;             /* lost on the way */
    }
    if (err) {
        errno = err;
        return -1;
    }
    if (msg->msg_iovlen) {
        size_t head = msg->msg_iov[0].iov_len;
        int off = fi_check_buf("sendmsg-head", fd, head,
                               msg->msg_iov[0].iov_base, head);

        if (off > 0 && off + 4 <= head) {
            /* the same message, its first buffer with one word spoilt */
            struct iovec *iov = malloc(msg->msg_iovlen * sizeof(*iov));
            uint8_t *buf = malloc(head);
            struct msghdr bad = *msg;
            ssize_t ret = -1;

            if (iov && buf) {
                memcpy(iov, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
                memcpy(buf, iov[0].iov_base, head);
                memset(buf + off, 0xff, 4);
                iov[0].iov_base = buf;
                bad.msg_iov = iov;
                ret = fn(fd, &bad, flags);
            } else {
                errno = ENOMEM;
            }
            free(buf);
            free(iov);
            return ret;
        }
    }
    return fn(fd, msg, flags);
}

int fdatasync(int fd)
{
    static void *next;
    FdatasyncFn *fn = fi_next("fdatasync", &next);

    FI_FAIL("fdatasync", fd, 0);
    return fn(fd);
}

int ioctl(int fd, unsigned long request, ...)
{
    static void *next;
    IoctlFn *fn = fi_next("ioctl", &next);
    va_list ap;
    void *argp;

    va_start(ap, request);
    argp = va_arg(ap, void *);
    va_end(ap);
    FI_FAIL("ioctl", fd, request);
    return fn(fd, request, argp);
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
                          int access)
{
    static void *next;
    IbvRegMrFn *fn = fi_next("ibv_reg_mr", &next);
    int err = fi_check("ibv_reg_mr", -1, length);

    if (err) {
        errno = err;
        return NULL;
    }
    return fn(pd, addr, length, access);
}

int ibv_dereg_mr(struct ibv_mr *mr)
{
    static void *next;
    IbvDeregMrFn *fn = fi_next("ibv_dereg_mr", &next);
    int err = fi_check("ibv_dereg_mr", -1, 0);

    /* verbs return the error itself */
    return err ? err : fn(mr);
}

#ifdef CONFIG_RDMA
typedef int RdmaCreateQpFn(struct rdma_cm_id *, struct ibv_pd *,
                           struct ibv_qp_init_attr *);
typedef int IbvPostSendFn(struct ibv_qp *, struct ibv_send_wr *,
                          struct ibv_send_wr **);

static IbvPostSendFn *fi_post_send_next;

/*
 * ibv_post_send() is inline: it calls the provider through the device
 * context's ops, so rdma_create_qp() below puts this in between.  A
 * migration control message starts with a header of big-endian 32-bit
 * words: length, type, repeat, padding (rdma.c's RDMAControlHeader).
 */
static int fi_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
                        struct ibv_send_wr **bad_wr)
{
    for (struct ibv_send_wr *w = wr; w; w = w->next) {
        uint8_t *msg;
        int off;

        if (w->opcode != IBV_WR_SEND || w->num_sge < 1 ||
            w->sg_list[0].length < 8) {
            continue;
        }
        msg = (uint8_t *)(uintptr_t)w->sg_list[0].addr;
        off = fi_check("ibv_post_send", -1, ldl_be_p(msg + 4));
        if (off > 0 && off <= w->sg_list[0].length - 4) {
            stl_be_p(msg + off, UINT32_MAX);
        }
    }
    return fi_post_send_next(qp, wr, bad_wr);
}

int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
                   struct ibv_qp_init_attr *attr)
{
    static void *next;
    RdmaCreateQpFn *fn = fi_next("rdma_create_qp", &next);
    int ret = fn(id, pd, attr);
    struct ibv_context *ctx;

    if (ret || !getenv("QTEST_FAULT_INJECT")) {
        return ret;
    }
    /* one context per device: shared by every queue pair on it */
    ctx = id->qp->context;
    pthread_mutex_lock(&fi_lock);
    if (ctx->ops.post_send != fi_post_send) {
        fi_post_send_next = ctx->ops.post_send;
        ctx->ops.post_send = fi_post_send;
    }
    pthread_mutex_unlock(&fi_lock);
    return ret;
}
#endif
