/*
 * Fault injection for migration qtests: see fault-inject.c
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "migration/fault-util.h"

bool fault_preload(const char *rules)
{
    g_autofree char *so = g_test_build_filename(G_TEST_BUILT,
                                                "qtest-fault-inject.so",
                                                NULL);
    g_autofree char *abs = g_canonicalize_filename(so, NULL);

    if (!g_file_test(abs, G_FILE_TEST_EXISTS)) {
#ifdef CONFIG_LINUX
        /* meson builds it on Linux: a test must not pass without it */
        g_test_message("%s is missing", abs);
        g_assert_not_reached();
#endif
        g_test_skip("the fault injector is built on Linux only");
        return false;
    }
    fault_cleanup(rules);
    g_assert_true(g_file_set_contents(rules, "", 0, NULL));
    g_setenv("LD_PRELOAD", abs, true);
    /* an --enable-asan QEMU then loads libasan after this library */
    g_setenv("ASAN_OPTIONS", "verify_asan_link_order=0", true);
    g_setenv("QTEST_FAULT_INJECT", rules, true);
    return true;
}

void fault_preload_end(void)
{
    g_unsetenv("LD_PRELOAD");
    g_unsetenv("ASAN_OPTIONS");
    g_unsetenv("QTEST_FAULT_INJECT");
}

void fault_arm(const char *rules, const char *fmt, ...)
{
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* a new file (rename): the injector sees it change at once */
    g_assert_true(g_file_set_contents(rules, text, -1, NULL));
    /* it looks at most every 5 ms */
    g_usleep(20 * 1000);
}

int fault_hits(const char *rules, pid_t pid, const char *call)
{
    g_autofree char *path = g_strdup_printf("%s.hits", rules);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    int hits = 0;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit(lines[i], " ", 3);

        if (g_strv_length(f) == 3 && atoi(f[0]) == pid &&
            !strcmp(f[1], call)) {
            hits++;
        }
    }
    return hits;
}

void fault_cleanup(const char *rules)
{
    g_autofree char *path = g_strdup_printf("%s.hits", rules);

    unlink(rules);
    unlink(path);
}
