#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of scripts/merge3.py, the three-way merge with which
series.py replays one series without the series before it: the step's
own lines are added, the lines of series left out stay out, lists are
closed once, and a line both sides change is refused."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import merge3  # noqa: E402

results = []


def L(text):
    return [l + "\n" for l in text.split("|")]


def case(what, base, ours, theirs, want):
    try:
        got = merge3.merge(L(base), L(ours), L(theirs))
    except merge3.Conflict as e:
        got = f"Conflict: {e}"
    ok = got == (L(want) if want is not None else got) and \
        (want is not None or isinstance(got, str))
    results.append((ok, what, got, want))


# A left out series added B after A; the step adds C after B.
case("an addition next to a left-out one",
     "x|A|B|y", "x|A|y", "x|A|B|C|y", "x|A|C|y")
# The list's last item moves: ours ends it at A, theirs at C.
case("a C list ends once",
     "f(|  A,|  B);|g", "f(|  A);|g", "f(|  A,|  B,|  C);|g",
     "f(|  A,|  C);|g")
case("a QAPI enum ends once",
     "  'data': [ 'a',|  'b' ] }", "  'data': [ 'a' ] }",
     "  'data': [ 'a',|  'b',|  'c' ] }", "  'data': [ 'a',|  'c' ] }")
case("a member whose own brackets end the struct",
     "  'a': 'x',|  'c': [ 'str' ],|  'b': 'y'} }",
     "  'a': 'x',|  'c': [ 'str' ]} }",
     "  'a': 'x',|  'c': [ 'str' ],|  'b': 'y',|  'd': 'z'} }",
     "  'a': 'x',|  'c': [ 'str' ],|  'd': 'z'} }")
case("a comment between items does not stop the list",
     "s(|  A,|  B);", "s(|  A);", "s(|  A,|  B,|  /* why */|  C);",
     "s(|  A,|  /* why */|  C);")
# Repeated lines ('}') align by the unique lines around them.
case("functions appended after a left-out one",
     "int a(void)|{|}||int b(void)|{|}|",
     "int a(void)|{|}|",
     "int a(void)|{|}||int b(void)|{|}||int c(void)|{|}|",
     "int a(void)|{|}||int c(void)|{|}|")
case("both sides add at one place: ours first",
     "x|y", "x|O|y", "x|T|y", "x|O|T|y")
case("an unrelated change of ours is kept",
     "p|q|r|s", "p|Q|r|s", "p|q|r|T|s", "p|Q|r|T|s")
case("a line both sides change is refused",
     "p|q|r", "p|Q1|r", "p|Q2|r", None)
case("a line ours changed and theirs deleted is refused",
     "p|q|r", "p|Q|r", "p|r", None)
case("nothing to do",
     "a|b", "a|b", "a|b", "a|b")

print(f"1..{len(results)}")
failed = 0
for i, (ok, what, got, want) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    if not ok:
        failed += 1
        print(f"# got:  {got!r}\n# want: {want!r}")
sys.exit(1 if failed else 0)
