/*
 * A TCP forwarder for migration qtests that can cut its connections
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * See forwarder.h.
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "migration/forwarder.h"
#include "migration/migration-util.h"
#include <poll.h>

/* Connections a forwarder carries: main, two multifd, postcopy preempt */
#define FW_CONNS 4

static bool write_all(int fd, const char *buf, ssize_t len)
{
    while (len > 0) {
        /* a peer gone is an error here, not a SIGPIPE for the test */
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= n;
    }
    return true;
}

static int forwarder_connect(Forwarder *fw)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    int dst = socket(AF_INET, SOCK_STREAM, 0);

    addr.sin_port = htons(fw->dest_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert(connect(dst, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    return dst;
}

static gpointer forwarder_run(gpointer opaque)
{
    Forwarder *fw = opaque;
    int src[FW_CONNS], dst[FW_CONNS], n = 0;
    /* each way of each connection, as the network carries it */
    bool up[FW_CONNS], down[FW_CONNS];
    bool done = false;
    char buf[64 * 1024];

    while (!done && !qatomic_read(&fw->stop)) {
        struct pollfd pfd[1 + 2 * FW_CONNS] = {
            { .fd = n < FW_CONNS ? fw->listen_fd : -1, .events = POLLIN },
        };

        for (int i = 0; i < n; i++) {
            pfd[1 + 2 * i] = (struct pollfd) { .fd = up[i] ? src[i] : -1,
                                               .events = POLLIN };
            pfd[2 + 2 * i] = (struct pollfd) { .fd = down[i] ? dst[i] : -1,
                                               .events = POLLIN };
        }
        if (poll(pfd, 1 + 2 * n, 100) < 0 && errno != EINTR) {
            break;
        }
        if (pfd[0].revents) {
            src[n] = accept(fw->listen_fd, NULL, NULL);
            g_assert(src[n] >= 0);
            dst[n] = forwarder_connect(fw);
            up[n] = down[n] = true;
            n++;
            continue;
        }
        for (int i = 0; i < n && !done; i++) {
            if (pfd[1 + 2 * i].revents) {
                ssize_t len = read(src[i], buf, sizeof(buf));
                uint64_t cut_after = qatomic_read(&fw->cut_after);

                if (len <= 0) {
                    /* the source closed it: this way ends, as TCP's */
                    shutdown(dst[i], SHUT_WR);
                    up[i] = false;
                } else if (qatomic_read(&fw->hold)) {
                    /* lost on the way: the source's write succeeded */
                } else if (cut_after && fw->forwarded + len >= cut_after) {
                    /* the network breaks: in the middle of this chunk */
                    write_all(dst[i], buf, cut_after - fw->forwarded);
                    qatomic_set(&fw->forwarded, cut_after);
                    qatomic_set(&fw->cut, true);
                    done = true;
                } else if (!write_all(dst[i], buf, len)) {
                    done = true;
                } else {
                    qatomic_set(&fw->forwarded, fw->forwarded + len);
                }
            }
            if (!done && pfd[2 + 2 * i].revents) {
                ssize_t len = read(dst[i], buf, sizeof(buf));

                if (len <= 0) {
                    shutdown(src[i], SHUT_WR);
                    down[i] = false;
                } else if (!write_all(src[i], buf, len)) {
                    done = true;
                }
            }
        }
    }
    /* a cut, or the test is over: every connection ends at once */
    for (int i = 0; i < n; i++) {
        shutdown(src[i], SHUT_RDWR);
        shutdown(dst[i], SHUT_RDWR);
        close(src[i]);
        close(dst[i]);
    }
    return NULL;
}

Forwarder *forwarder_start(QTestState *to, uint64_t cut_after)
{
    Forwarder *fw = g_new0(Forwarder, 1);
    struct sockaddr_in addr = { .sin_family = AF_INET };
    socklen_t len = sizeof(addr);
    g_autofree char *uri = migrate_get_connect_uri(to);
    const char *port;

    /* tcp:127.0.0.1:PORT */
    port = strrchr(uri, ':');
    g_assert(port);
    fw->dest_port = atoi(port + 1);
    fw->cut_after = cut_after;
    fw->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert(bind(fw->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    g_assert(listen(fw->listen_fd, FW_CONNS) == 0);
    g_assert(getsockname(fw->listen_fd, (struct sockaddr *)&addr, &len) == 0);
    fw->port = ntohs(addr.sin_port);
    fw->thread = g_thread_new("forwarder", forwarder_run, fw);
    return fw;
}

void forwarder_cut(Forwarder *fw)
{
    qatomic_set(&fw->cut_after, qatomic_read(&fw->forwarded) + 1);
}

void forwarder_cut_now(Forwarder *fw)
{
    qatomic_set(&fw->cut, true);
    qatomic_set(&fw->stop, true);
    g_thread_join(fw->thread);
    fw->thread = NULL;
}

void forwarder_free(Forwarder *fw)
{
    qatomic_set(&fw->stop, true);
    if (fw->thread) {
        g_thread_join(fw->thread);
    }
    close(fw->listen_fd);
    g_free(fw);
}
