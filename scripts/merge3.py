#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Three-way merge of one file, for a series step taken without the
steps that came before it in the full series.

  merge3.py BASE OURS THEIRS OUT

BASE is the file before the step in the full series, THEIRS the file
after it, OURS the file in the tree being built, which lacks what the
steps left out added.  The two changes are both applied: OURS' (lines
of the steps left out are missing) and THEIRS' (the step's own lines).
git merges them too, but calls it a conflict whenever the two touch
neighbouring lines, which is the rule here: capabilities add their
lines at the end of the same lists.

Lines are aligned by git's histogram diff on their text without the
punctuation that ends them (a comma, closing brackets), so that a list
item still aligns where it ends the list in one version and not in the
other.  Where OURS made a line end a list and THEIRS adds items after
it, that line gets a comma back.

A change of both sides to the same line cannot be merged this way:
merge() raises Conflict, and the caller stops."""

import os
import re
import subprocess
import sys
import tempfile

TAIL = re.compile(r"^(.*?\S)([ \t]*(?:,|[\]\)\}][ \t\]\)\},;]*))?([ \t]*\n?)$",
                  re.S)


class Conflict(Exception):
    pass


def split(line):
    """(text, ending punctuation, line end) of a line."""
    m = TAIL.match(line)
    if not m:
        return line.rstrip("\n"), "", "\n" if line.endswith("\n") else ""
    return m.group(1), m.group(2) or "", m.group(3)


def closes(tail):
    t = tail.strip()
    return t != "," and any(c in t for c in "])}")


def hunks(a, b):
    """(a start, a count, b start, b count), 0-based, of a histogram diff
    of the lines' text without their ending punctuation."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, lines in (("a", a), ("b", b)):
            paths.append(os.path.join(d, name))
            with open(paths[-1], "w") as f:
                f.write("".join(split(l)[0] + "\n" for l in lines))
        out = subprocess.run(["git", "diff", "--no-index", "--histogram",
                              "-U0", *paths], capture_output=True,
                             text=True).stdout
    res = []
    for m in re.finditer(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@",
                         out, re.M):
        a1, ac = int(m.group(1)), int(m.group(2) or 1)
        b1, bc = int(m.group(3)), int(m.group(4) or 1)
        res.append((a1 if ac == 0 else a1 - 1, ac,
                    b1 if bc == 0 else b1 - 1, bc))
    return res


def edits(base, side):
    """-> (base lines deleted, {base position: lines inserted before it},
    {base line kept: its text in side}, [base lines side replaced])"""
    deleted, inserted, kept, replaced = set(), {}, {}, []
    ai = bi = 0
    for a0, ac, b0, bc in hunks(base, side) + [(len(base), 0, len(side), 0)]:
        if ac and bc:
            replaced.append(range(a0, a0 + ac))
        while ai < a0:
            kept[ai] = side[bi]
            ai += 1
            bi += 1
        deleted.update(range(a0, a0 + ac))
        if bc:
            inserted.setdefault(a0 + ac, []).extend(side[b0:b0 + bc])
        ai, bi = a0 + ac, b0 + bc
    return deleted, inserted, kept, replaced


def merge(base, ours, theirs):
    od, oi, okept, orepl = edits(base, ours)
    td, ti, tkept, trepl = edits(base, theirs)
    # a line one side rewrites and the other rewrites or removes
    for lines, other in ((orepl, td), (trepl, od)):
        for r in lines:
            both = [i for i in r if i in other]
            if both:
                raise Conflict(f"line {both[0] + 1} changed on both sides: "
                               f"{base[both[0]].strip()!r}")
    for i in td & set(okept):
        if okept[i] != base[i]:
            raise Conflict(f"line {i + 1} changed on both sides: "
                           f"{base[i].strip()!r}")
    out = []            # (line, what ours appended to end a list, base)
    for i in range(len(base) + 1):
        out.extend((l, None, None) for l in oi.get(i, []))
        out.extend((l, None, None) for l in ti.get(i, []))
        if i < len(base) and i not in od and i not in td:
            b, o, t = base[i], okept[i], tkept[i]
            if o != b and t != b and o != t:
                raise Conflict(f"line {i + 1} changed on both sides: "
                               f"{b.strip()!r}")
            out.append((t if o == b else o, ended_by(b, o), b))
    res = []
    for k, (line, extra, b) in enumerate(out):
        if extra:
            # THEIRS' items after it end the list the same way
            for later, _, _ in out[k + 1:]:
                t2 = squash(split(later)[1])
                if t2 == extra:
                    line = b
                    break
                if t2 != "," and not later.lstrip().startswith(
                        ("/*", "*", "#")):
                    break
        res.append(line)
    return res


def squash(s):
    return "".join(s.split())


def ended_by(b, o):
    """What @o, the line @b of the base in OURS, appends to end a list
    that @b continued with a comma, or None."""
    if o == b or split(o)[0] != split(b)[0]:
        return None
    bt, ot = squash(split(b)[1]), squash(split(o)[1])
    if not bt.endswith(",") or not closes(ot) or not ot.startswith(bt[:-1]):
        return None
    return ot[len(bt) - 1:] or None


def merge_files(base, ours, theirs, out):
    def lines(p):
        with open(p) as f:
            return f.read().splitlines(keepends=True)
    text = "".join(merge(lines(base), lines(ours), lines(theirs)))
    with open(out, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        merge_files(*sys.argv[1:])
    except Conflict as e:
        print(f"merge3: {sys.argv[4]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
