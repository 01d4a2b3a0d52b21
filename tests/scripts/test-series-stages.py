#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of scripts/series.py's stages: a step may give a new file an
earlier version (stage:), kept as the diff that turns the final file
into it, and a later step of the same series finishes the file
(overlay:).  The checks refuse a stage that nothing finishes, one that
another series finishes, a stage and an overlay of one file in one step,
a missing stage, a diff that no longer applies to the final file, a
stray file in qemu/stages, a stage without an SPDX header, and one with
two blank lines in a row (what a feature cut out of it left behind); the
export gives a step's stages, then its overlay files.  Beside them, the
check of the QAPI doc lines a glue patch adds (over 70 columns,
qapi-gen refuses them)."""

import difflib
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import series  # noqa: E402

results = []
FINAL = "/* SPDX-License-Identifier: GPL-2.0-or-later */\nint a;\nint b;\n"
EARLIER = "/* SPDX-License-Identifier: GPL-2.0-or-later */\nint a;\n"


def diff(final, stage, path="m/a.c"):
    return "".join(difflib.unified_diff(
        final.splitlines(keepends=True), stage.splitlines(keepends=True),
        f"a/{path}", f"b/{path}"))


def make(tmp, steps, stages, final=FINAL):
    """In @tmp: the final file m/a.c, the step files and the stages;
    returns the loaded steps."""
    series.TOP = tmp
    series.STAGES_DIR = os.path.join(tmp, "stages")
    os.makedirs(os.path.join(tmp, "m"), exist_ok=True)
    with open(os.path.join(tmp, "m", "a.c"), "w") as f:
        f.write(final)
    os.makedirs(os.path.join(tmp, "steps"), exist_ok=True)
    for name, manifest in steps.items():
        with open(os.path.join(tmp, "steps", name), "w") as f:
            f.write("s: x\n\nbody\n\nSigned-off-by: A <a@b>\n---\n" +
                    manifest)
    for path, text in stages.items():
        p = os.path.join(tmp, "stages", path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return [series.Step(os.path.join(tmp, "steps", n))
            for n in sorted(steps)]


def case(what, steps, stages, want_fail, final=FINAL):
    with tempfile.TemporaryDirectory() as tmp:
        loaded = make(tmp, steps, stages, final)
        problems = [p for _, p in series.stage_checks(loaded) if p]
    ok = bool(problems) == bool(want_fail) and \
        all(want_fail in p for p in problems)
    results.append((ok, what, problems))


GOOD = {
    "01-a.step": "series: one\nstage: m/a.c\n",
    "02-b.step": "series: one\noverlay: m/a.c\n",
}
STAGE = {"01-a/m/a.c.diff": diff(FINAL, EARLIER)}
case("a stage finished by a later step of its series", GOOD, STAGE, None)
case("a stage nothing finishes",
     {"01-a.step": "series: one\nstage: m/a.c\n"}, STAGE, "not finished")
case("a stage another series finishes",
     {"01-a.step": "series: one\nstage: m/a.c\n",
      "02-b.step": "series: two\noverlay: m/a.c\n"}, STAGE, "not finished")
case("a stage finished before it, not after",
     {"01-a.step": "series: one\noverlay: m/a.c\n",
      "02-b.step": "series: one\nstage: m/a.c\n"},
     {"02-b/m/a.c.diff": diff(FINAL, EARLIER)}, "not finished")
case("two stages, then the overlay",
     {"01-a.step": "series: one\nstage: m/a.c\n",
      "02-b.step": "series: one\nstage: m/a.c\n",
      "03-c.step": "series: one\noverlay: m/a.c\n"},
     {"01-a/m/a.c.diff": diff(FINAL, EARLIER),
      "02-b/m/a.c.diff": diff(FINAL, EARLIER)}, None)
case("a stage and an overlay of one file in one step",
     {"01-a.step": "series: one\nstage: m/a.c\noverlay: m/a.c\n",
      "02-b.step": "series: one\noverlay: m/a.c\n"},
     STAGE, "a stage and an overlay")
case("a missing stage", GOOD, {}, "no ")
case("a diff that no longer applies to the final file", GOOD, STAGE,
     "does not apply", final=FINAL.replace("int a;", "long a;"))
case("a stray file in qemu/stages", GOOD,
     dict(STAGE, **{"01-a/m/b.c.diff": ""}), "m/b.c")
case("a stage without an SPDX header", GOOD,
     {"01-a/m/a.c.diff": diff(FINAL, "int a;\n")}, "no SPDX header")
case("a stage with two blank lines in a row", GOOD,
     {"01-a/m/a.c.diff": diff(FINAL, FINAL.replace("int a;\n",
                                                   "int a;\n\n\n"))},
     "two blank lines: ['01-a.step: m/a.c:3']")

# what the export writes: the stage's text, then the overlay file's
with tempfile.TemporaryDirectory() as tmp:
    s = make(tmp, {"01-a.step": "series: one\nstage: m/a.c\n"
                   "overlay: m/b.c\n"}, STAGE)[0]
    with open(os.path.join(tmp, "m", "b.c"), "w") as f:
        f.write("int c;\n")
    got = series.step_files(s)
    want = [("m/a.c", EARLIER), ("m/b.c", "int c;\n")]
    results.append((got == want, "a step gives its stages' earlier "
                    "versions, then its overlay files", got))

# the QAPI doc lines a glue patch adds: qapi-gen refuses one over 70
# columns, and only a build of each patch would find it otherwise
def patch(path, *added):
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            "@@ -1,1 +1,2 @@\n #\n" + "".join(f"+{l}\n" for l in added))


def qapi_case(what, text, want):
    got = series.qapi_long_doc_lines(text)
    results.append((got == want, what, got))


LONG = "#" + " " * 5 + "x" * 65
OK70 = "#" + " " * 5 + "x" * 64
SCHEMA = "qapi/migration.json"
qapi_case("a doc line of 71 columns in a schema", patch(SCHEMA, LONG),
          [LONG])
qapi_case("a doc line of 70 columns", patch(SCHEMA, OK70), [])
qapi_case("a lone URL, however long",
          patch(SCHEMA, "# https://" + "x" * 80), [])
qapi_case("a long line outside a QAPI schema",
          patch("migration/ram.c", LONG), [])
qapi_case("a long line the patch removes",
          patch(SCHEMA).replace(" #\n", "-" + LONG + "\n"), [])
qapi_case("the schema after a C file in one patch",
          patch("migration/ram.c", LONG) + patch(SCHEMA, LONG), [LONG])

# how many places @check finds in @text
def count_case(check, what, text, want):
    got = len(check(text))
    results.append((got == want, what, got))


# a docs/devel page names the repository's own tools only as its
def doc_case(what, text, want):
    count_case(series.doc_project_refs, what, text, want)


doc_case("a make target of the repository", "Run ``make bench-x``.\n", 1)
doc_case("a benchmark file, and the repository named in the paragraph",
         "``bench/w.c`` in the migration-transport\nrepository.\n", 0)
doc_case("the repository named in another paragraph only",
         "``bench/w.c`` does it.\n\nThe migration-transport "
         "repository.\n", 1)
doc_case("an issue of the repository", 'issue "Multifd-first" plans '
         "it.\n", 1)
doc_case("QEMU's own make check", "``make check-qtest`` runs it.\n", 0)
doc_case("the README", "The figures are in README.md.\n", 1)
doc_case("a make target split over two lines", "run in a guest (``make\n"
         "check-rdma``).\n", 1)


# the series cites no patents
def patent_case(what, text, want):
    count_case(series.patent_refs, what, text, want)


patent_case("a publication number", "the method of US2015089010: x\n", 1)
patent_case("a spaced number with a slash", "see US 2015/0089010 A1\n", 1)
patent_case("the word", "as the patent describes\n", 1)
patent_case("a year and a size", "Since 2015, 4096 pages\n", 0)
patent_case("a flag name", "USERFAULTFD 1234 and EPT 2048\n", 0)

# commit messages wrap at 75 columns
BODY = "subject: x\n\n"
count_case(series.long_body_lines, "a body line of 76 columns",
           BODY + "word " * 15 + "x\n", 1)
count_case(series.long_body_lines, "a body line of 75 columns",
           BODY + "word " * 15 + "\n", 0)
count_case(series.long_body_lines, "a long line without a space",
           BODY + "https://" + "x" * 80 + "\n", 0)
count_case(series.long_body_lines, "a long subject (checked apart)",
           "x" * 80 + "\n\nbody\n", 0)

print(f"1..{len(results)}")
for i, (ok, what, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    if not ok:
        print(f"# got: {detail!r}")
sys.exit(0 if all(r[0] for r in results) else 1)
