/*
 * Fault injection for migration qtests: see fault-inject.c
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_MIGRATION_FAULT_UTIL_H
#define TESTS_MIGRATION_FAULT_UTIL_H

#include "libqtest.h"

/*
 * Before migrate_start(): the QEMUs started until fault_preload_end()
 * preload the injector and read their rules from @rules (a path).
 * False where the injector is not built (not Linux: the test is then
 * skipped); on Linux a missing injector fails the test.
 */
bool fault_preload(const char *rules);
void fault_preload_end(void);

/*
 * Replace the rules, one a line:
 * "<pid> <call> <path-suffix> <arg> <errno> <delay-ms> <skip> <count>
 * [<thread>]";
 * the QEMUs read them within a few milliseconds.
 */
void G_GNUC_PRINTF(2, 3) fault_arm(const char *rules, const char *fmt, ...);

/* How many calls of @call in process @pid the rules failed or delayed */
int fault_hits(const char *rules, pid_t pid, const char *call);

/* Remove the rules and the record of hits */
void fault_cleanup(const char *rules);

#endif
