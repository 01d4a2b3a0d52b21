/*
 * A TCP forwarder for migration qtests that can cut its connections
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The source connects to the forwarder, which forwards every connection
 * to the destination's listening address and can cut them all after a
 * given number of bytes from the source, as a broken network would.  A
 * connection one side closes ends that way alone, as TCP's does.
 */

#ifndef TESTS_MIGRATION_FORWARDER_H
#define TESTS_MIGRATION_FORWARDER_H

#include "libqtest.h"

typedef struct Forwarder {
    int listen_fd;
    int port;                   /* where the source is to connect */
    int dest_port;
    uint64_t cut_after;         /* source -> destination bytes; 0: never */
    uint64_t forwarded;         /* atomic: source -> destination bytes */
    bool cut;                   /* atomic: the connections were cut */
    bool hold;                  /* atomic: source bytes dropped, not sent */
    bool stop;                  /* atomic: the test is over */
    GThread *thread;
} Forwarder;

/**
 * forwarder_start: start a forwarder to a destination
 * @to: the destination, listening on tcp:127.0.0.1:PORT
 * @cut_after: cut every connection once the source sent this many
 *     bytes through them all; 0: never
 *
 * Returns: the forwarder, listening on 127.0.0.1 at its port member,
 * where the source is to connect.
 */
Forwarder *forwarder_start(QTestState *to, uint64_t cut_after);

/**
 * forwarder_cut: cut the connections with the next bytes the source
 * sends
 * @fw: the forwarder
 */
void forwarder_cut(Forwarder *fw);

/**
 * forwarder_cut_now: cut the connections now, whether the source sends
 * or not
 * @fw: the forwarder
 */
void forwarder_cut_now(Forwarder *fw);

/**
 * forwarder_free: close every connection and free the forwarder
 * @fw: the forwarder
 */
void forwarder_free(Forwarder *fw);

#endif /* TESTS_MIGRATION_FORWARDER_H */
