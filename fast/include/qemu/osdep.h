/*
 * Stand-in for QEMU's qemu/osdep.h in the fast tier
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The policy units include "qemu/osdep.h" first, as every QEMU source
 * file must.  Inside QEMU that is the real header; in the fast tier
 * (top-level meson.build) it is this file, which provides only the
 * standard C and GLib headers the units may use.  A unit that needs more
 * of QEMU than this is not a pure unit.
 */

#ifndef FAST_QEMU_OSDEP_H
#define FAST_QEMU_OSDEP_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <glib.h>

/* The few macros of QEMU's osdep.h that the units use. */
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif
#ifndef DIV_ROUND_UP
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#endif

#endif
