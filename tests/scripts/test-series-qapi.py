#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of scripts/series.py's check of the QAPI doc lines a glue
patch adds: qapi-gen refuses one over 70 columns, so a patch that adds
one does not build on its own, and only a build of each patch would
find it otherwise."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import series  # noqa: E402

results = []


def patch(path, *added):
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            "@@ -1,1 +1,2 @@\n #\n" + "".join(f"+{l}\n" for l in added))


def case(what, text, want):
    got = series.qapi_long_doc_lines(text)
    results.append((got == want, what, got))


LONG = "#     beside it, which the destination loads at switchover.  Every copy"
OK70 = "#" + " " * 5 + "x" * 64
assert len(LONG) == 71 and len(OK70) == 70
case("a doc line of 71 columns in a schema", patch("qapi/migration.json", LONG),
     [LONG])
case("a doc line of 70 columns", patch("qapi/migration.json", OK70), [])
case("a lone URL, however long", patch("qapi/migration.json",
                                       "# https://" + "x" * 80), [])
case("a long line outside a QAPI schema", patch("migration/ram.c", LONG), [])
case("a long line the patch removes",
     patch("qapi/migration.json").replace(" #\n", "-" + LONG + "\n"), [])
case("the schema after a C file in one patch",
     patch("migration/ram.c", LONG) + patch("qapi/migration.json", LONG),
     [LONG])

print(f"1..{len(results)}")
for i, (ok, what, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    if not ok:
        print(f"# got: {detail!r}")
sys.exit(0 if all(r[0] for r in results) else 1)
