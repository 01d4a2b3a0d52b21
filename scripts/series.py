#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check the step manifests and export the upstream-style patch series.

The series is described by qemu/steps/*.step, taken in file-name order.  A
step file is one commit of the series: its message (subject, blank line,
body, Signed-off-by), then a line "---" and the manifest, one item a line:

    series: <name>                          (the series it belongs to)
    glue: <patch file in qemu/patches>      (a change to QEMU's own files)
    overlay: <path>                         (a new file of this repository)
    stage: <path>                           (an earlier version of one)

A new file too large for one patch grows over several: a step that
names it in a stage line gives it an earlier version, and a later step
of the same series names it in its overlay line, which gives it its
final content.  The earlier version is kept as the diff that turns the
final file into it, qemu/stages/<step file's name without .step>/<path>
.diff, so that it is not a second copy of the code and a change to the
final file that it no longer fits is found at once (series.py --check).
Each stage must build with the steps before it (series.py --build
--each).

Each series has a cover letter in qemu/covers/<name>.txt: its subject,
a blank line, "Based-on: <series>" lines for the series it needs, and
the text.

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
                              syntax-check; exit non-zero on any error;
                              then each series alone (below)
  series.py --export --lone-only   only that
  series.py --build               build each series alone too
  series.py --build --only NAME   that series only
  series.py --build --each [--only NAME]   build every patch of each
                                  series, not only its last

One series per capability: each is exported alone to
build/series-lone/NN-<name>/, replayed on the base with only the series
it is based on (build/lone-tree).  A glue patch that does not apply
there as it is (its context holds lines of series left out) is merged
three ways by scripts/merge3.py; a change that cannot be merged stops
the export.  --build builds each series' tree in build/lone-build
(scripts/build.sh --lone: qemu-system-x86_64, migration-test, the
fault injector and the unit tests the tree has).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import merge3  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
SRC = os.path.join(BUILD, "qemu")
QEMU_DIR = os.path.join(TOP, "qemu")
STEPS_DIR = os.path.join(QEMU_DIR, "steps")
STAGES_DIR = os.path.join(QEMU_DIR, "stages")
PATCHES_DIR = os.path.join(QEMU_DIR, "patches")
SERIES_TREE = os.path.join(BUILD, "series-tree")
OUT = os.path.join(BUILD, "series")
COVERS_DIR = os.path.join(QEMU_DIR, "covers")
LONE_TREE = os.path.join(BUILD, "lone-tree")
LONE_OUT = os.path.join(BUILD, "series-lone")
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
        self.series = None
        self.glue = []
        self.overlay = []
        self.stage = []
        for n, line in enumerate(manifest.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            kind, _, item = line.partition(":")
            item = item.strip()
            if kind == "series":
                if self.series:
                    raise ValueError(f"{self.name}: two series lines")
                self.series = item
            elif kind == "glue":
                self.glue.append(item)
            elif kind == "overlay":
                self.overlay.append(item)
            elif kind == "stage":
                self.stage.append(item)
            else:
                raise ValueError(f"{self.name}: manifest line {n}: "
                                 f"unknown item '{kind}'")


def stage_path(step, path):
    """The diff from @path's final content to the version @step gives it."""
    return os.path.join(STAGES_DIR, step.name[:-len(".step")], path + ".diff")


def stage_text(step, path):
    """The version of @path that @step gives it: the final file with the
    stage's diff applied.  Raises RuntimeError if the diff does not
    apply."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(TOP, path), dst)
        r = subprocess.run(["git", "apply", "--whitespace=nowarn",
                            stage_path(step, path)], cwd=tmp, text=True,
                           capture_output=True)
        if r.returncode:
            raise RuntimeError(f"{step.name}: the stage of {path} does not "
                               f"apply to it: {r.stderr.strip()}")
        with open(dst) as f:
            return f.read()


def step_files(step):
    """(path in QEMU's tree, its content) for @step's new files: its
    stages, then its overlay files."""
    out = [(p, stage_text(step, p)) for p in step.stage]
    for p in step.overlay:
        with open(os.path.join(TOP, p)) as f:
            out.append((p, f.read()))
    return out


def copy_step_files(step, tree):
    for path, text in step_files(step):
        dst = os.path.join(tree, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        git("add", "-f", "--", path, cwd=tree)


def load_steps():
    if not os.path.isdir(STEPS_DIR):
        return []
    return [Step(os.path.join(STEPS_DIR, f))
            for f in sorted(os.listdir(STEPS_DIR)) if f.endswith(".step")]


def glue_series():
    with open(os.path.join(QEMU_DIR, "series")) as f:
        return [l.split("#", 1)[0].strip() for l in f
                if l.split("#", 1)[0].strip()]


class Cover:
    """qemu/covers/<name>.txt: subject, blank line, Based-on lines, text."""

    def __init__(self, name):
        self.name = name
        with open(os.path.join(COVERS_DIR, name + ".txt")) as f:
            text = f.read()
        self.subject, _, self.blurb = text.partition("\n\n")
        self.based_on = re.findall(r"^Based-on: (\S+)$", self.blurb, re.M)


def series_order(steps):
    """The series' names, in the order of their first step."""
    names = []
    for s in steps:
        if s.series not in names:
            names.append(s.series)
    return names


def series_needs(name, covers):
    """The series @name is based on, with theirs, in a valid order."""
    out = []

    def visit(n, depth=0):
        for d in covers[n].based_on:
            if depth > len(covers):
                raise ValueError(f"{name}: Based-on goes round in a circle")
            visit(d, depth + 1)
            if d not in out:
                out.append(d)
    visit(name)
    return out


def overlay_files():
    out = subprocess.run([os.path.join(TOP, "scripts", "overlay.sh"), "list"],
                         check=True, text=True, capture_output=True).stdout
    return [l for l in out.splitlines() if l]


def repeated(items):
    """The items that occur more than once, sorted."""
    return sorted({i for i in items if items.count(i) > 1})


def qapi_long_doc_lines(patch_text):
    """The doc lines a patch adds to a QAPI schema that qapi-gen refuses:
    over 70 columns (scripts/qapi/parser.py), a lone URL aside.  Only
    building the patch finds them otherwise."""
    out, cur = [], None
    for line in patch_text.splitlines():
        if line.startswith("+++ "):
            cur = line[4:].strip()
        elif cur and cur.startswith("b/qapi/") and cur.endswith(".json") \
                and line.startswith("+#") and len(line) - 1 > 70 \
                and not re.match(r"\+# *(https?|ftp)://[^ ]*$", line):
            out.append(line[1:])
    return out


# What only the repository carrying the series has: its make targets,
# benchmark files, README and issues.  A docs/devel page that goes to
# QEMU names them only with the repository it means.
PROJECT_REF = re.compile(r"``make (bench|demo|fuzz|series|"
                         r"check-(fast|qemu|rdma|libvirt))|bench/|"
                         r"README\.md|[Ii]ssue \"|issue #\d")
PROJECT_NAMED = "migration-transport repository"

# A patent publication number (US2015089010, US 2015/0089010 A1,
# EP 1234567) or the word itself: the series describes what the code
# does and cites no patents.
PATENT_REF = re.compile(r"\b(US|EP|WO|JP|CN) ?\d{4}/?\d{3,}|\b[Pp]atent")


def patent_refs(text):
    """The lines of @text that cite a patent."""
    return [line.strip()[:100] for line in text.splitlines()
            if PATENT_REF.search(line)]


def long_body_lines(message):
    """The body lines of a commit @message over 75 columns, as Linux's
    checkpatch counts them; a line without a space (a URL, a path)
    cannot be wrapped and is left alone."""
    return [line for line in message.splitlines()[2:]
            if len(line) > 75 and " " in line.strip()]


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def doc_project_refs(rst_text):
    """The paragraphs of a docs/devel page that name the repository's
    own tools (PROJECT_REF) without saying they are in that repository:
    upstream's tree has none of them."""
    out = []
    for para in re.split(r"\n\s*\n", rst_text):
        text = " ".join(para.split())
        if PROJECT_REF.search(text) and PROJECT_NAMED not in text:
            out.append(text[:100])
    return out


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

    nameless = [s.name for s in steps if not s.series]
    yield "every step names its series", \
        f"no series line: {nameless}" if nameless else None
    names = series_order(steps)
    nocover = [n for n in names
               if not os.path.exists(os.path.join(COVERS_DIR, n + ".txt"))]
    yield "every series has a cover letter in qemu/covers", \
        f"missing: {nocover}" if nocover else None
    if not nocover and not nameless:
        covers = {n: Cover(n) for n in names}
        bad = [f"{n}: Based-on {d}" for n in names
               for d in covers[n].based_on
               if d not in names or names.index(d) >= names.index(n)]
        # series are in the order of their first step
        yield "each series is based only on series before it", \
            "; ".join(bad) if bad else None
    stray = sorted(f[:-4] for f in os.listdir(COVERS_DIR)
                   if f.endswith(".txt") and f[:-4] not in names) \
        if os.path.isdir(COVERS_DIR) else []
    yield "every cover letter in qemu/covers is a series'", \
        f"no step names: {stray}" if stray else None

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

    yield from stage_checks(steps)

    long_doc = []
    for p in series:
        path = os.path.join(PATCHES_DIR, p)
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                long_doc += [f"{p}: {l}" for l in
                             qapi_long_doc_lines(f.read())]
    yield "no glue patch adds a QAPI doc line over 70 columns", \
        "; ".join(long_doc) if long_doc else None

    project = []
    for f in files:
        if f.startswith("docs/devel/") and f.endswith(".rst"):
            with open(os.path.join(TOP, f), errors="replace") as fh:
                project += [f"{f}: {p}" for p in doc_project_refs(fh.read())]
    yield "docs/devel pages name the repository's own tools as its", \
        "; ".join(project) if project else None

    cited = []
    texts = [(s.name, s.message) for s in steps]
    texts += [(f, read_text(os.path.join(TOP, f)))
              for f in files if f.startswith("docs/")]
    for d in (COVERS_DIR, QEMU_DIR):
        texts += [(f, read_text(os.path.join(d, f)))
                  for f in sorted(os.listdir(d)) if f.endswith(".txt")]
    for name, text in texts:
        cited += [f"{name}: {line}" for line in patent_refs(text)]
    yield "messages, cover letters and docs cite no patents", \
        "; ".join(cited) if cited else None

    bad = []
    for s in steps:
        if len(s.subject) > 76 or not re.match(r"^[\w/.,+-]+(: | )", s.subject):
            bad.append(f"{s.name}: subject '{s.subject}'")
        lines = s.message.splitlines()
        if len(lines) < 3 or lines[1] != "":
            bad.append(f"{s.name}: needs a blank line and a body")
        if not any(l.startswith("Signed-off-by: ") for l in lines):
            bad.append(f"{s.name}: no Signed-off-by")
        bad += [f"{s.name}: a line of {len(l)} columns"
                for l in long_body_lines(s.message)]
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


def stage_checks(steps):
    """A stage is an earlier version of an overlay file that a later
    step of the same series finishes, kept as a diff that still applies
    to the final file; every file in qemu/stages is one."""
    bad, seen, broken, nospdx, blank = [], set(), [], [], []
    for i, s in enumerate(steps):
        for p in s.stage:
            seen.add(os.path.relpath(stage_path(s, p), STAGES_DIR))
            later = [t for t in steps[i + 1:] if p in t.overlay]
            if not later or later[0].series != s.series:
                bad.append(f"{s.name}: stage {p} is not finished by an "
                           f"overlay line of a later step of {s.series}")
            if not os.path.exists(stage_path(s, p)):
                bad.append(f"{s.name}: no "
                           f"{os.path.relpath(stage_path(s, p), TOP)}")
                continue
            try:
                text = stage_text(s, p)
            except (RuntimeError, OSError) as e:
                broken.append(str(e))
                continue
            if p.endswith(SPDX_EXT) and \
                    "SPDX-License-Identifier:" not in text[:2048]:
                nospdx.append(f"{s.name}: {p}")
            if "\n\n\n" in text:
                # what a feature cut out of the file left behind
                line = text[:text.index("\n\n\n")].count("\n") + 2
                blank.append(f"{s.name}: {p}:{line}")
        if set(s.stage) & set(s.overlay):
            bad.append(f"{s.name}: a stage and an overlay of one file")
    yield "every stage is finished later in its series", \
        "; ".join(bad) if bad else None
    yield "every stage's diff applies to the final file", \
        "; ".join(broken) if broken else None
    yield "stages carry an SPDX header", \
        f"no SPDX header: {nospdx}" if nospdx else None
    yield "no stage has two blank lines in a row", \
        f"two blank lines: {blank}" if blank else None
    stray = []
    if os.path.isdir(STAGES_DIR):
        for root, _, names in os.walk(STAGES_DIR):
            for n in names:
                rel = os.path.relpath(os.path.join(root, n), STAGES_DIR)
                if rel not in seen:
                    stray.append(rel)
    yield "every file in qemu/stages is a step's stage", \
        f"no step names: {sorted(stray)}" if stray else None


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
    kw.setdefault("check", True)
    return subprocess.run(["git", "-C", cwd, *args], text=True, env=env,
                          **kw)


def do_export(lone_only=False, build=False, only=None):
    if do_check(tap=False):
        return 1
    if not os.path.isdir(os.path.join(SRC, ".git")):
        print("series: run 'make prepare' first", file=sys.stderr)
        return 1
    if lone_only:
        return export_lone(build, only)
    if not os.path.isdir(SERIES_TREE):
        git("worktree", "prune", cwd=SRC)
        git("worktree", "add", "-q", "--detach", SERIES_TREE, "base", cwd=SRC)
    git("checkout", "-q", "--detach", "base")
    git("reset", "-q", "--hard", "base")
    git("clean", "-q", "-fdx")
    for s in load_steps():
        for g in s.glue:
            git("apply", "--index", os.path.join(PATCHES_DIR, g))
        copy_step_files(s, SERIES_TREE)
        git("commit", "-q", "-F", "-", input=s.message)
    shutil.rmtree(OUT, ignore_errors=True)
    git("format-patch", "-q", "--cover-letter", "--zero-commit",
        "--no-signature", "-o", OUT, "base..HEAD")
    fill_cover_letter(OUT, os.path.join(QEMU_DIR, "cover-letter.txt"))
    rc = run_checkpatch()
    rc |= export_lone(build)
    return export_libvirt() or rc


def apply_glue_3way(patch, tree):
    """Apply a glue patch to @tree; where its context holds lines of a
    series left out, merge the file three ways (scripts/merge3.py)."""
    r = git("apply", "--index", "--3way", patch, cwd=tree,
            capture_output=True, check=False)
    if r.returncode == 0:
        return 0
    conflicted = git("diff", "--name-only", "--diff-filter=U", cwd=tree,
                     capture_output=True).stdout.split()
    if not conflicted:
        raise RuntimeError(f"{os.path.basename(patch)} does not apply:\n"
                           + r.stderr)
    for f in conflicted:
        stages = [git("show", f":{n}:{f}", cwd=tree, capture_output=True)
                  .stdout.splitlines(keepends=True) for n in (1, 2, 3)]
        try:
            text = "".join(merge3.merge(*stages))
        except merge3.Conflict as e:
            raise RuntimeError(f"{os.path.basename(patch)}: {f}: {e}")
        with open(os.path.join(tree, f), "w") as fh:
            fh.write(text)
        git("add", "--", f, cwd=tree)
    return len(conflicted)


def replay_lone(name, steps, covers):
    """build/lone-tree := base + the series @name is based on + @name.
    Returns (the commit @name's own patches follow, files merged)."""
    if not os.path.isdir(LONE_TREE):
        git("worktree", "prune", cwd=SRC)
        git("worktree", "add", "-q", "--detach", LONE_TREE, "base", cwd=SRC)
    git("checkout", "-q", "--detach", "-f", "base", cwd=LONE_TREE)
    git("reset", "-q", "--hard", "base", cwd=LONE_TREE)
    git("clean", "-q", "-fdx", cwd=LONE_TREE)
    start, merged = None, 0
    for group in series_needs(name, covers) + [name]:
        if group == name:
            start = git("rev-parse", "HEAD", cwd=LONE_TREE,
                        capture_output=True).stdout.strip()
        for s in steps:
            if s.series != group:
                continue
            for g in s.glue:
                merged += apply_glue_3way(os.path.join(PATCHES_DIR, g),
                                          LONE_TREE)
            copy_step_files(s, LONE_TREE)
            git("commit", "-q", "-F", "-", input=s.message, cwd=LONE_TREE)
    return start, merged


def check_same_lines():
    """The series that is based on all the others, replayed alone, ends
    with every file the glue changes holding the lines that the full
    series gives it, in an order that may differ (series are replayed
    one after another, not step by step)."""
    files = git("diff", "--name-only", "base", "HEAD", cwd=SRC,
                capture_output=True).stdout.split()
    differ = []
    for f in files:
        a, b = (git("show", f"{rev}:{f}", cwd=tree, capture_output=True,
                    check=False).stdout.splitlines()
                for tree, rev in ((SRC, "HEAD"), (LONE_TREE, "HEAD")))
        if sorted(a) != sorted(b):
            differ.append(f)
    print("series: every series replayed one after another gives the "
          "full series' lines: " +
          (f"NO, they differ in {differ}" if differ else "yes"))
    return 1 if differ else 0


def export_lone(build, only=None):
    """Each series alone, to build/series-lone/NN-<name>/."""
    steps = load_steps()
    names = series_order(steps)
    covers = {n: Cover(n) for n in names}
    if only and only not in names:
        print(f"series: no series {only}; there are {', '.join(names)}")
        return 1
    if not only:
        shutil.rmtree(LONE_OUT, ignore_errors=True)
    rc = 0
    for i, name in enumerate(names):
        if only and name != only:
            continue
        try:
            start, merged = replay_lone(name, steps, covers)
        except RuntimeError as e:
            print(f"series {name}: {e}")
            rc = 1
            continue
        out = os.path.join(LONE_OUT, f"{i:02d}-{name}")
        shutil.rmtree(out, ignore_errors=True)
        git("format-patch", "-q", "--cover-letter", "--zero-commit",
            "--no-signature", "-o", out, f"{start}..HEAD", cwd=LONE_TREE)
        fill_cover_letter(out, os.path.join(COVERS_DIR, name + ".txt"))
        needs = series_needs(name, covers)
        print(f"series {name}: {len(os.listdir(out)) - 1} patches on "
              f"base{''.join(' + ' + n for n in needs)}, "
              f"{merged} file(s) merged three ways")
        rc |= run_checkpatch(out)
        if len(needs) == len(names) - 1:
            rc |= check_same_lines()
        if build == "each":
            rc |= build_each(name, start, out)
        elif build:
            rc |= build_lone(name, out, "builds alone")
    return rc


def build_lone(name, out, what, log_name="ninja.log"):
    """Build build/lone-tree as it is checked out; 0 when it builds."""
    r = subprocess.run([os.path.join(TOP, "scripts", "build.sh"), "--lone"],
                       text=True)
    log = os.path.join(BUILD, "logs", "lone-tree-ninja.log")
    if os.path.exists(log):
        shutil.copyfile(log, os.path.join(out, log_name))
    print(f"series {name}: {what}: "
          f"{'yes' if r.returncode == 0 else 'NO'} "
          f"(ninja's output in {out}/{log_name})")
    return r.returncode


def build_each(name, start, out):
    """Build every patch of series @name in turn (build/lone-tree from
    @start on), so that a bisection never lands on one that does not."""
    head = git("rev-parse", "HEAD", cwd=LONE_TREE,
               capture_output=True).stdout.strip()
    commits = git("rev-list", "--reverse", f"{start}..HEAD", cwd=LONE_TREE,
                  capture_output=True).stdout.split()
    rc = 0
    for n, c in enumerate(commits, 1):
        git("checkout", "-q", "--detach", c, cwd=LONE_TREE)
        rc |= build_lone(name, out, f"patch {n} of {len(commits)} builds",
                         f"ninja-{n:04d}.log")
    git("checkout", "-q", "--detach", head, cwd=LONE_TREE)
    return rc


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


def run_checkpatch(out=OUT):
    patches = sorted(f for f in os.listdir(out)
                     if f.endswith(".patch") and not f.startswith("0000-"))
    errors = warnings = 0
    for p in patches:
        r = subprocess.run(["perl", os.path.join(SRC, "scripts",
                                                 "checkpatch.pl"),
                            "--no-tree", os.path.join(out, p)],
                           cwd=SRC, text=True, capture_output=True)
        m = re.search(r"total: (\d+) errors, (\d+) warnings", r.stdout)
        e, w = (int(m.group(1)), int(m.group(2))) if m else (1, 0)
        errors += e
        warnings += w
        print(f"  {p}: {e} errors, {w} warnings")
        if e or w or not m:
            print("    " + r.stdout.strip().replace("\n", "\n    "))
    print(f"series: {len(patches)} patches in {out}; checkpatch: "
          f"{errors} errors, {warnings} warnings")
    return 1 if errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--export", action="store_true")
    g.add_argument("--build", action="store_true")
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("--lone-only", action="store_true")
    ap.add_argument("--only", metavar="SERIES",
                    help="with --build or --lone-only: that series only")
    ap.add_argument("--each", action="store_true",
                    help="with --build: build every patch, not the last")
    a = ap.parse_args()
    if a.check:
        return do_check(a.tap)
    build = "each" if a.build and a.each else a.build
    return do_export(a.lone_only or a.build or bool(a.only), build, a.only)


if __name__ == "__main__":
    sys.exit(main())
