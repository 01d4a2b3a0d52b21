/*
 * What the fuzz targets and their seed generator share
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The layouts of the inputs are described in each target's header.
 */

#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

/* fuzz-spill-format: the mode byte */
#define FUZZ_SPILL_FIX_CHECKS       0x1
#define FUZZ_SPILL_RAW_HEADER       0x2

/* fuzz-disk-map: the mode byte, and the guest memory of the input */
#define FUZZ_DISK_MAP_FIX_HEADER    0x1
#define FUZZ_DISK_MAP_MISALIGN      0x2
#define FUZZ_DISK_MAP_RAM_SIZE      (1ull << 30)
#define FUZZ_DISK_MAP_HOLE_GPA      0x20000000ull
#define FUZZ_DISK_MAP_HOLE_LEN      0x100000ull
#define FUZZ_DISK_MAP_MAP_GPA       0x1000ull
#define FUZZ_DISK_MAP_DATA_GPA      0x100000ull

/* fuzz-region-fingerprint: the mode byte */
#define FUZZ_RFP_FIX_HEADER         0x1
#define FUZZ_RFP_FIX_TRAILER        0x2

/* fuzz-wire-codec: the head byte */
#define FUZZ_WIRE_NULL_BUFFER       0x80
#define FUZZ_WIRE_PROG_LEN          0x7f

enum {
    FUZZ_WIRE_U8, FUZZ_WIRE_BE16, FUZZ_WIRE_BE32, FUZZ_WIRE_BE64,
    FUZZ_WIRE_LE16, FUZZ_WIRE_LE32, FUZZ_WIRE_LE64,
    FUZZ_WIRE_BYTES, FUZZ_WIRE_SPAN, FUZZ_WIRE_SKIP,
    FUZZ_WIRE_FITS, FUZZ_WIRE_OVERLAP,
    FUZZ_WIRE__MAX,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
