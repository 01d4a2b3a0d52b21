#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Generate the files of the benchmark guest's shared disk.

Deterministic from the seed: COUNT files of MIB MiB each, named f000,
f001, ... in DIR.  Each 64 KiB block is either random bytes or
text-like lines, alternately, so the page cache they fill is neither
all-incompressible nor trivially compressible (multifd+zstd gets about
half of it)."""

import argparse
import os
import random

BLOCK = 64 * 1024


def text_block(rng, fileno, blockno):
    words = ["page", "cache", "migration", "dirty", "shared", "disk",
             "precopy", "postcopy", "bandwidth", "downtime", "guest", "ram"]
    out = bytearray()
    line = 0
    while len(out) < BLOCK:
        out += ("f%03d b%05d l%04d %s\n" % (
            fileno, blockno, line,
            " ".join(rng.choice(words) for _ in range(8)))).encode()
        line += 1
    return bytes(out[:BLOCK])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--mib", type=int, default=8)
    ap.add_argument("--seed", type=int, default=20250101)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    for f in range(a.count):
        rng = random.Random(a.seed * 1000 + f)
        with open(os.path.join(a.dir, "f%03d" % f), "wb") as out:
            for b in range(a.mib * 1024 * 1024 // BLOCK):
                if b % 2:
                    out.write(text_block(rng, f, b))
                else:
                    out.write(rng.randbytes(BLOCK))


if __name__ == "__main__":
    main()
