#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check that the composition matrix is the same in its two places.

docs/devel/migration/composition.rst's list-table and
tests/qtest/migration/composition-tests.c's composition_pairs[] must
hold the same pairs with the same verdicts, the same errors (the
document quotes each in double quotes) and the same tests; every test
a pair names must be registered by some file of tests/qtest/migration.
Prints TAP.
"""

import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(TOP, "docs", "devel", "migration", "composition.rst")
TESTS = os.path.join(TOP, "tests", "qtest", "migration")
SRC = os.path.join(TESTS, "composition-tests.c")


def doc_pairs(text):
    """{(ours, with): (verdict, test or error)} from the list-table"""
    rows, row = [], None
    for line in text.splitlines():
        m = re.match(r"^   \* - (.*)$", line)
        if m:
            row = [m.group(1)]
            rows.append(row)
            continue
        m = re.match(r"^     - (.*)$", line)
        if m and row is not None:
            row.append(m.group(1))
            continue
        m = re.match(r"^       (\S.*)$", line)
        if m and row is not None:
            row[-1] += " " + m.group(1)
            continue
        if not line.startswith("   "):
            row = None
    pairs = {}
    for r in rows[1:]:          # the header
        ours, with_, verdict, what = r
        if verdict == "works":
            m = re.fullmatch(r"``(\S+)``", what)
            key = m.group(1) if m else what
        else:
            m = re.match(r'"(.*?)"[.:]', what)
            key = m.group(1) if m else what
        pairs[(ours, with_)] = (verdict, key)
    return pairs


def c_string(s):
    """The C string literals in @s, concatenated"""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', s))


def src_pairs(text):
    body = text[text.index("composition_pairs[] = {"):]
    body = body[:body.index("\n};")] + "\n"
    consts = dict(re.findall(r'#define (\w+) (".*")', text))
    pairs = {}
    for m in re.finditer(r"\b(WORKS|WORKS_IN|REFUSED|CONFLICTS|NO_RDMA)"
                         r"\((.*?)\),\n", body, re.S):
        kind = m.group(1)
        args = [a.strip() for a in
                re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', m.group(2))]
        args = [c_string(consts.get(a, a)) for a in args]
        if kind == "WORKS":
            ours, with_ = args
            what = ("works", f"/migration/composition/{ours}/{with_}")
        elif kind == "WORKS_IN":
            ours, with_, test = args
            what = ("works", test)
        elif kind == "REFUSED":
            ours, with_, err = args
            what = ("refused", err)
        elif kind == "CONFLICTS":
            ours, with_, other = args
            what = ("refused", f"Capability '{ours}' conflicts with "
                    f"capability '{other}'")
        else:
            with_, name = args
            ours = "rdma-pin-budget"
            what = ("refused", f"RDMA and {name} can't be used together")
        pairs[(ours, with_)] = what
    return pairs


def registered():
    """Test paths registered by migration_test_add() or _add_suffix()"""
    paths = set()
    for name in os.listdir(TESTS):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(TESTS, name)) as f:
            text = f.read()
        paths |= set(re.findall(r'migration_test_add\("([^"]+)"', text))
        for prefix, arr in re.findall(
                r'migration_test_add_suffix\("([^"]+)",\s*(\w+)\[i\]', text):
            m = re.search(r"\b%s\[\] = \{(.*?)\};" % arr, text, re.S)
            for suffix in re.findall(r'"([^"]+)"', m.group(1)):
                paths.add(prefix + suffix)
        for prefix, suffix in re.findall(
                r'migration_test_add_suffix\("([^"]+)",\s*"([^"]+)"', text):
            paths.add(prefix + suffix)
    return paths


def main():
    with open(DOC) as f:
        doc = doc_pairs(f.read())
    with open(SRC) as f:
        src = src_pairs(f.read())
    tests = registered()
    n = 0
    ok = True

    def result(good, what):
        nonlocal n, ok
        n += 1
        print(f"{'ok' if good else 'not ok'} {n} - {what}")
        ok = ok and good

    result(len(src) > 0 and len(doc) > 0,
           f"{len(src)} pairs in the source, {len(doc)} in the document")
    for key in sorted(set(doc) | set(src)):
        d, s = doc.get(key), src.get(key)
        result(d == s, f"{key[0]} with {key[1]}: document {d}, source {s}")
        if s and s[0] == "works" and \
                not s[1].startswith("/migration/composition/"):
            result(s[1] in tests, f"{s[1]} is registered")
    print(f"1..{n}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
