#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check the step manifests and export the upstream-style patch series.

The series is described by qemu/steps/*.step, taken in file-name order.  A
step file is one commit of the series: its message (subject, blank line,
body, Signed-off-by), then a line "---" and the manifest, one item a line:

    glue: <patch file in qemu/patches>      (a change to QEMU's own files)
    overlay: <path>                         (a new file of this repository)

  series.py --check [--tap]   every glue patch and overlay file belongs to
                              exactly one step, in an order consistent with
                              qemu/series; messages and headers are sound
  series.py --export          replay base + steps as one commit each in
                              build/series-tree, write git format-patch
                              --cover-letter output to build/series/ and run
                              the base tree's scripts/checkpatch.pl on it;
                              then the libvirt series (libvirt/series, as
                              applied in build/libvirt) to
                              build/series-libvirt/, checked with libvirt's
                              syntax-check; exit non-zero on any error
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
SRC = os.path.join(BUILD, "qemu")
QEMU_DIR = os.path.join(TOP, "qemu")
STEPS_DIR = os.path.join(QEMU_DIR, "steps")
PATCHES_DIR = os.path.join(QEMU_DIR, "patches")
SERIES_TREE = os.path.join(BUILD, "series-tree")
OUT = os.path.join(BUILD, "series")
LV_SRC = os.path.join(BUILD, "libvirt")
LV_OUT = os.path.join(BUILD, "series-libvirt")
# syntax-check rules that fail on the untouched libvirt 11.3.0 tarball
# tree (its po/POTFILES lists files this build does not generate), so
# they cannot judge the series
LV_SYNTAX_SKIP = {"po_check"}

AUTHOR = os.environ.get(
    "SERIES_AUTHOR", "Migration Transport Developers <mig-transport@invalid>")
SERIES_DATE = "2026-01-01T00:00:00+00:00"
SPDX_EXT = (".c", ".h", ".py", ".sh", ".build", ".rst", ".json", ".txt")


class Step:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path) as f:
            text = f.read()
        if "\n---\n" not in text:
            raise ValueError(f"{self.name}: no '---' line before the manifest")
        msg, manifest = text.split("\n---\n", 1)
        self.message = msg.strip() + "\n"
        self.subject = self.message.splitlines()[0]
        self.glue = []
        self.overlay = []
        for n, line in enumerate(manifest.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            kind, _, item = line.partition(":")
            item = item.strip()
            if kind == "glue":
                self.glue.append(item)
            elif kind == "overlay":
                self.overlay.append(item)
            else:
                raise ValueError(f"{self.name}: manifest line {n}: "
                                 f"unknown item '{kind}'")


def load_steps():
    if not os.path.isdir(STEPS_DIR):
        return []
    return [Step(os.path.join(STEPS_DIR, f))
            for f in sorted(os.listdir(STEPS_DIR)) if f.endswith(".step")]


def glue_series():
    with open(os.path.join(QEMU_DIR, "series")) as f:
        return [l.split("#", 1)[0].strip() for l in f
                if l.split("#", 1)[0].strip()]


def overlay_files():
    out = subprocess.run([os.path.join(TOP, "scripts", "overlay.sh"), "list"],
                         check=True, text=True, capture_output=True).stdout
    return [l for l in out.splitlines() if l]


def repeated(items):
    """The items that occur more than once, sorted."""
    return sorted({i for i in items if items.count(i) > 1})


def checks():
    """Yield (description, problem or None)."""
    try:
        steps = load_steps()
    except ValueError as e:
        yield "step files parse", str(e)
        return
    yield "at least one step", None if steps else "qemu/steps has no .step"
    series = glue_series()
    on_disk = sorted(f for f in os.listdir(PATCHES_DIR)
                     if f.endswith(".patch")) if os.path.isdir(PATCHES_DIR) else []
    missing = [p for p in series if p not in on_disk]
    yield "qemu/series names only existing patches", \
        f"missing: {missing}" if missing else None
    stray = [p for p in on_disk if p not in series]
    yield "every patch in qemu/patches is in qemu/series", \
        f"not listed: {stray}" if stray else None

    glue_in_steps = [g for s in steps for g in s.glue]
    dup = repeated(glue_in_steps)
    yield "no glue patch is in two steps", f"{dup}" if dup else None
    yield "steps take glue patches in qemu/series order", \
        None if glue_in_steps == series else \
        f"steps: {glue_in_steps}\n  series: {series}"

    files = overlay_files()
    ov_in_steps = [o for s in steps for o in s.overlay]
    dup = repeated(ov_in_steps)
    yield "no overlay file is in two steps", f"{dup}" if dup else None
    unlisted = [f for f in files if f not in ov_in_steps]
    yield "every overlay file is in a step", \
        f"not in any step: {unlisted}" if unlisted else None
    gone = [o for o in ov_in_steps if o not in files]
    yield "every step's overlay file exists", \
        f"missing: {gone}" if gone else None

    bad = []
    for s in steps:
        if len(s.subject) > 76 or not re.match(r"^[\w/.,+-]+(: | )", s.subject):
            bad.append(f"{s.name}: subject '{s.subject}'")
        lines = s.message.splitlines()
        if len(lines) < 3 or lines[1] != "":
            bad.append(f"{s.name}: needs a blank line and a body")
        if not any(l.startswith("Signed-off-by: ") for l in lines):
            bad.append(f"{s.name}: no Signed-off-by")
    yield "step messages are QEMU-style", "; ".join(bad) if bad else None

    nospdx = []
    for f in files:
        if f.endswith(SPDX_EXT):
            with open(os.path.join(TOP, f), errors="replace") as fh:
                if "SPDX-License-Identifier:" not in fh.read(2048):
                    nospdx.append(f)
    yield "overlay files carry an SPDX header", \
        f"{nospdx}" if nospdx else None

    # The MAINTAINERS stanza of this repository is what the glue adds.
    stanza = []
    mpath = os.path.join(TOP, "MAINTAINERS")
    if os.path.exists(mpath):
        with open(mpath) as f:
            stanza = [l.rstrip("\n") for l in f
                      if l.strip() and not l.startswith("#")]
    added = set()
    for p in series:
        path = os.path.join(PATCHES_DIR, p)
        if not os.path.exists(path):
            continue
        cur = None
        with open(path, errors="replace") as f:
            for l in f:
                if l.startswith("+++ "):
                    cur = l[4:].strip()
                elif cur == "b/MAINTAINERS" and l.startswith("+"):
                    added.add(l[1:].rstrip("\n"))
    lost = [l for l in stanza if l not in added]
    extra = sorted(l for l in added - set(stanza) if l.strip())
    yield "MAINTAINERS stanza is what the glue adds", \
        f"not in any glue patch: {lost}" if not stanza or lost else \
        f"added by the glue, not in MAINTAINERS: {extra}" if extra else None

    if os.path.isdir(os.path.join(SRC, ".git")):
        copied = [f for f in files if subprocess.run(
            ["git", "-C", SRC, "cat-file", "-e", f"base:{f}"],
            capture_output=True).returncode == 0]
        yield "no overlay file is a copy of a QEMU file", \
            f"exist in the base: {copied}" if copied else None


def do_check(tap):
    results = list(checks())
    failed = 0
    if tap:
        print(f"1..{len(results)}")
    for i, (desc, problem) in enumerate(results, 1):
        if problem:
            failed += 1
        if tap:
            print(f"{'not ok' if problem else 'ok'} {i} - {desc}")
            if problem:
                print("# " + problem.replace("\n", "\n# "))
        elif problem:
            print(f"FAIL {desc}: {problem}")
    if not tap:
        print(f"layout: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def git(*args, cwd=SERIES_TREE, **kw):
    env = dict(os.environ)
    name, email = re.match(r"(.*) <(.*)>", AUTHOR).groups()
    env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
               GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email,
               GIT_AUTHOR_DATE=SERIES_DATE, GIT_COMMITTER_DATE=SERIES_DATE)
    return subprocess.run(["git", "-C", cwd, *args], check=True, text=True,
                          env=env, **kw)


def do_export():
    if do_check(tap=False):
        return 1
    if not os.path.isdir(os.path.join(SRC, ".git")):
        print("series: run 'make prepare' first", file=sys.stderr)
        return 1
    if not os.path.isdir(SERIES_TREE):
        git("worktree", "prune", cwd=SRC)
        git("worktree", "add", "-q", "--detach", SERIES_TREE, "base", cwd=SRC)
    git("checkout", "-q", "--detach", "base")
    git("reset", "-q", "--hard", "base")
    git("clean", "-q", "-fdx")
    for s in load_steps():
        for g in s.glue:
            git("apply", "--index", os.path.join(PATCHES_DIR, g))
        for o in s.overlay:
            dst = os.path.join(SERIES_TREE, o)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(TOP, o), dst)
            git("add", "-f", "--", o)
        git("commit", "-q", "-F", "-", input=s.message)
    shutil.rmtree(OUT, ignore_errors=True)
    git("format-patch", "-q", "--cover-letter", "--zero-commit",
        "--no-signature", "-o", OUT, "base..HEAD")
    fill_cover_letter(OUT, os.path.join(QEMU_DIR, "cover-letter.txt"))
    rc = run_checkpatch()
    return export_libvirt() or rc


def export_libvirt():
    """The libvirt series as build/libvirt carries it (scripts/libvirt.sh
    prepare applies libvirt/series with git am on the tarball), with its
    cover letter, and libvirt's syntax-check on that tree."""
    if not os.path.isdir(os.path.join(LV_SRC, ".git")):
        print("series: run 'scripts/libvirt.sh prepare' first",
              file=sys.stderr)
        return 1
    shutil.rmtree(LV_OUT, ignore_errors=True)
    git("format-patch", "-q", "--cover-letter", "--zero-commit",
        "--no-signature", "-o", LV_OUT, "base..HEAD", cwd=LV_SRC)
    fill_cover_letter(LV_OUT, os.path.join(TOP, "libvirt", "cover-letter.txt"))
    patches = [f for f in os.listdir(LV_OUT) if not f.startswith("0000-")]
    bld = os.path.join(LV_SRC, "build")
    if not os.path.exists(os.path.join(bld, "build.ninja")):
        print("series: libvirt is not configured; run 'make libvirt' for "
              "its syntax-check", file=sys.stderr)
        return 1
    listed = subprocess.run(["meson", "test", "-C", bld, "--list",
                             "--suite", "syntax-check"], text=True,
                            capture_output=True, check=True).stdout
    rules = [line.split(" / ")[-1].strip() for line in listed.splitlines()
             if " / " in line]
    rules = [r for r in rules if r not in LV_SYNTAX_SKIP]
    r = subprocess.run(["meson", "test", "-C", bld, "--no-rebuild",
                        "--suite", "syntax-check", *rules], text=True,
                       capture_output=True)
    failed = re.findall(r"syntax-check / (\S+)\s+FAIL", r.stdout)
    for rule in failed:
        out = subprocess.run(["make", "-s", "-C",
                              os.path.join(bld, "build-aux"), "sc_" + rule],
                             text=True, capture_output=True)
        print(f"  syntax-check {rule}:\n    " +
              (out.stdout + out.stderr).strip().replace("\n", "\n    "))
    print(f"series: {len(patches)} libvirt patches in {LV_OUT}; "
          f"syntax-check: {len(rules) - len(failed)} of {len(rules)} rules "
          f"pass ({', '.join(sorted(LV_SYNTAX_SKIP))} skipped)")
    return 1 if failed or r.returncode else 0


def fill_cover_letter(out, source):
    cover = os.path.join(out, "0000-cover-letter.patch")
    with open(source) as f:
        subject, _, blurb = f.read().partition("\n\n")
    with open(cover) as f:
        text = f.read()
    text = text.replace("*** SUBJECT HERE ***", subject.strip())
    text = text.replace("*** BLURB HERE ***", blurb.strip())
    with open(cover, "w") as f:
        f.write(text)


def run_checkpatch():
    patches = sorted(f for f in os.listdir(OUT)
                     if f.endswith(".patch") and not f.startswith("0000-"))
    errors = warnings = 0
    for p in patches:
        r = subprocess.run(["perl", os.path.join(SRC, "scripts",
                                                 "checkpatch.pl"),
                            "--no-tree", os.path.join(OUT, p)],
                           cwd=SRC, text=True, capture_output=True)
        m = re.search(r"total: (\d+) errors, (\d+) warnings", r.stdout)
        e, w = (int(m.group(1)), int(m.group(2))) if m else (1, 0)
        errors += e
        warnings += w
        print(f"  {p}: {e} errors, {w} warnings")
        if e or w or not m:
            print("    " + r.stdout.strip().replace("\n", "\n    "))
    print(f"series: {len(patches)} patches in {OUT}; checkpatch: "
          f"{errors} errors, {warnings} warnings")
    return 1 if errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--export", action="store_true")
    ap.add_argument("--tap", action="store_true")
    a = ap.parse_args()
    return do_check(a.tap) if a.check else do_export()


if __name__ == "__main__":
    sys.exit(main())
