/*
 * A fault injector for migration qtests: see fault-inject.c
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_MIGRATION_FAULT_INJECT_H
#define TESTS_MIGRATION_FAULT_INJECT_H

/*
 * The libibverbs calls it wraps, for a QEMU linked with rdma-core (the
 * RDMA guest's), declared here so that it builds where rdma-core is not
 * installed.  The libc calls it wraps are declared by libc's headers.
 */
struct ibv_pd;
struct ibv_mr;

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
                          int access);
int ibv_dereg_mr(struct ibv_mr *mr);

#endif
