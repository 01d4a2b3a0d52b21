#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of scripts/series.py's stages: a step may give a new file an
earlier version (stage:) that a later step of the same series finishes
(overlay:).  The checks refuse a stage that nothing finishes, one that
another series finishes, a stage and an overlay of one file in one step,
a missing stage file, a stray file in qemu/stages, and a stage without
an SPDX header; the export copies a step's stages before its overlay
files."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import series  # noqa: E402

results = []
SPDX = "/* SPDX-License-Identifier: GPL-2.0-or-later */\n"


def make(tmp, steps, files):
    """Step files in @tmp/steps, stage files in @tmp/stages; returns the
    loaded steps."""
    os.makedirs(os.path.join(tmp, "steps"), exist_ok=True)
    for name, manifest in steps.items():
        with open(os.path.join(tmp, "steps", name), "w") as f:
            f.write("s: x\n\nbody\n\nSigned-off-by: A <a@b>\n---\n" +
                    manifest)
    for path, text in files.items():
        p = os.path.join(tmp, "stages", path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return [series.Step(os.path.join(tmp, "steps", n))
            for n in sorted(steps)]


def case(what, steps, files, want_fail):
    with tempfile.TemporaryDirectory() as tmp:
        series.STAGES_DIR = os.path.join(tmp, "stages")
        loaded = make(tmp, steps, files)
        problems = [p for _, p in series.stage_checks(loaded) if p]
    ok = bool(problems) == bool(want_fail) and \
        all(want_fail in p for p in problems)
    results.append((ok, what, problems))


GOOD = {
    "01-a.step": "series: one\nstage: m/a.c\n",
    "02-b.step": "series: one\noverlay: m/a.c\n",
}
case("a stage finished by a later step of its series", GOOD,
     {"01-a/m/a.c": SPDX}, None)
case("a stage nothing finishes",
     {"01-a.step": "series: one\nstage: m/a.c\n"},
     {"01-a/m/a.c": SPDX}, "not finished")
case("a stage another series finishes",
     {"01-a.step": "series: one\nstage: m/a.c\n",
      "02-b.step": "series: two\noverlay: m/a.c\n"},
     {"01-a/m/a.c": SPDX}, "not finished")
case("a stage finished before it, not after",
     {"01-a.step": "series: one\noverlay: m/a.c\n",
      "02-b.step": "series: one\nstage: m/a.c\n"},
     {"02-b/m/a.c": SPDX}, "not finished")
case("two stages, then the overlay",
     {"01-a.step": "series: one\nstage: m/a.c\n",
      "02-b.step": "series: one\nstage: m/a.c\n",
      "03-c.step": "series: one\noverlay: m/a.c\n"},
     {"01-a/m/a.c": SPDX, "02-b/m/a.c": SPDX}, None)
case("a stage and an overlay of one file in one step",
     {"01-a.step": "series: one\nstage: m/a.c\noverlay: m/a.c\n",
      "02-b.step": "series: one\noverlay: m/a.c\n"},
     {"01-a/m/a.c": SPDX}, "a stage and an overlay")
case("a missing stage file", GOOD, {}, "no ")
case("a stray file in qemu/stages", GOOD,
     {"01-a/m/a.c": SPDX, "01-a/m/b.c": SPDX}, "m/b.c")
case("a stage without an SPDX header", GOOD,
     {"01-a/m/a.c": "int x;\n"}, "no SPDX header")

# the export's order: stages, then overlay files
with tempfile.TemporaryDirectory() as tmp:
    series.STAGES_DIR = os.path.join(tmp, "stages")
    s = make(tmp, {"01-a.step": "series: one\nstage: m/a.c\n"
                   "overlay: m/b.c\n"}, {"01-a/m/a.c": SPDX})[0]
    got = [(p, os.path.relpath(src, series.TOP) if src.startswith(series.TOP)
            else os.path.relpath(src, tmp)) for p, src in series.step_files(s)]
    want = [("m/a.c", "stages/01-a/m/a.c"), ("m/b.c", "m/b.c")]
    results.append((got == want, "a step's stages come from qemu/stages, "
                    "its overlay files from the repository", got))

print(f"1..{len(results)}")
for i, (ok, what, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    if not ok:
        print(f"# got: {detail!r}")
sys.exit(0 if all(r[0] for r in results) else 1)
