#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run the project's test tiers in order and count their TAP results.

Tiers (select with --tier, default all, in this order):
  layout    the repository's own consistency (scripts/series.py --check)
            and the test runner itself (tests/scripts/test-check.py)
  fast      the QEMU-independent policy units (top-level meson.build, cmocka)
  fuzz      the libFuzzer targets of the parsers of untrusted bytes
            (tests/fuzz), FUZZ_TIME seconds each (default 40)
  build     every target of the patched tree builds (scripts/build.sh builds
            only what the tiers run), as upstream's CI would build it
  unit      QEMU's migration unit tests plus ours, built in the patched tree
  qtest     upstream's quick migration-test suite on the patched build,
            including every test group this project adds
  interop   a subset of migration-test between the patched and the unpatched
            base binaries, in both directions
  rdma      upstream's RDMA migration tests and rdma-pin-budget's inside a
            TCG guest with Soft-RoCE (scripts/guest/rdma-guest.sh; the host
            has no RDMA)
  libvirt   the libvirt series (libvirt/): libvirt's unit tests of the
            migration code it touches, virsh's options for every
            capability (tests/libvirt/unit.py); virsh migrate with each
            flag between two virtqemud daemons, the guest verified on
            the destination (tests/libvirt/e2e.py)

Every tier prints its own summary; the run ends with one line
"N passed, N failed, N skipped".  Exit status is 0 only when nothing failed
and every tier ran.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
BLD = os.path.join(BUILD, "qemu", "build")
BASE_BLD = os.path.join(BUILD, "qemu-base", "build")
FAST = os.path.join(BUILD, "fast")
FUZZ = os.path.join(BUILD, "fuzz")
FUZZ_SRC = os.path.join(TOP, "tests", "fuzz")

QEMU_UNIT_TESTS = ["test-xbzrle", "test-vmstate"]

# migration-test paths run between patched and unpatched binaries.  They
# cover the main stream (RAM, devices), the return path and multifd: with
# every new capability off, both directions must pass unchanged.
INTEROP_PATHS = [
    "/x86_64/migration/precopy/tcp/plain",
    "/x86_64/migration/precopy/tcp/plain/switchover-ack",
    "/x86_64/migration/precopy/unix/plain",
    "/x86_64/migration/precopy/file/mapped-ram",
    "/x86_64/migration/multifd/tcp/plain/zero-page/legacy",
    "/x86_64/migration/multifd/tcp/plain/zstd",
    "/x86_64/migration/multifd/tcp/tls/psk/match",
    "/x86_64/migration/precopy/tcp/tls/psk/match",
    "/x86_64/migration/postcopy/plain",
]

# Capabilities that only the source needs must leave the stream as it
# is: these paths run with the patched source and the unpatched
# destination only.
INTEROP_SOURCE_ONLY_PATHS = [
    "/x86_64/migration/write-fault-groups/groups",
    "/x86_64/migration/write-fault-groups/postcopy",
]

# glib prints "# Running <path>" as each test starts, and the slowest
# test takes under 80 s: this long without a line of output is a hang.
QTEST_STALL = int(os.environ.get("QTEST_STALL", "240"))

TAP_RE = re.compile(r"^\s*(not ok|ok)\b\s*(\d+)?\s*-?\s*(.*)$")
# glib's --tap --verbose names each test as it starts
RUNNING_RE = re.compile(r"^# Running (/\S+)")


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []
        self.notes = []         # for the tier's summary line
        self.lost = []          # (test, why): hung or crashed mid-test

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures
        self.notes += other.notes
        self.lost += other.lost


def log(msg):
    print(msg, flush=True)


FRAME_RE = re.compile(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)")
THREAD_RE = re.compile(r'^Thread \d+ .*?"([^"]*)"')


def dump_stacks(pgid, out_lines):
    """Before a hung command is killed: every thread's stack of every
    process in its group, into the log, and one line per thread (its
    name and innermost frames) on the console, so that CI's output
    says where it hung."""
    summary = []
    try:
        pids = subprocess.run(["pgrep", "-g", str(pgid)], text=True,
                              capture_output=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            who = os.path.basename(argv[0].decode(errors="replace"))
            if b"-name" in argv:
                who += " " + argv[argv.index(b"-name") + 1].decode(
                    errors="replace").split(",")[0]
            bt = subprocess.run(["gdb", "-batch", "-p", pid, "-ex",
                                 "thread apply all bt 12"], text=True,
                                capture_output=True, timeout=60).stdout
        except (OSError, ValueError, IndexError,
                subprocess.SubprocessError):
            continue
        out_lines.append(f"# stacks of {pid} ({who}):\n")
        out_lines.extend(line + "\n" for line in bt.splitlines())
        summary.append(f"      {pid} {who}:")
        thread, frames = None, []
        for line in bt.splitlines() + ["Thread 0 end"]:
            m = THREAD_RE.match(line)
            if m or line.startswith("Thread 0 end"):
                if thread is not None:
                    summary.append(f"        {thread}: " +
                                   " < ".join(frames[:4]))
                thread, frames = (m.group(1) if m else None), []
                continue
            m = FRAME_RE.match(line)
            if m and thread is not None:
                frames.append(m.group(1))
    if summary:
        log("    stacks at the hang (in full in the log):")
        for line in summary[:60]:
            log(line)


def _read_lines(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def run_tap(name, cmd, env=None, timeout=600, cwd=None, logdir=None,
            stall=None, resume=None):
    """Run one TAP-producing command; count its results.

    A command that exits non-zero, times out, or prints no test result
    counts as one failure of its own, so a crash is never a silent pass.

    The deadline holds whether or not the command prints: its output is
    read by a thread, and the whole process group (QEMU included) is
    killed when the time is up.  With @stall, a command that prints no
    line for that many seconds is killed the same way.

    @resume, given the names of the tests that reported (or hung), returns
    the command that runs the rest, or None: after a crash or a hang the
    remaining tests still run, and only the one that failed is lost.
    """
    t = Tally()
    full_env = dict(os.environ)
    full_env.update(env or {})
    start = time.monotonic()
    deadline = start + timeout
    out_lines = []
    times = []                  # (seconds since the previous result, test)
    seen = []                   # tests that reported, or hung
    stacks = []                 # of the processes of a hung command
    last = start
    problems = []
    rc = 0
    while cmd:
        running = None
        try:
            proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, text=True,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    errors="replace",
                                    start_new_session=True)
        except OSError as e:
            out_lines.append(f"cannot run {cmd[0]}: {e}\n")
            problems.append(f"cannot run {cmd[0]}")
            rc = -1
            break
        q = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, q),
                                  daemon=True)
        reader.start()
        killed = None
        while True:
            now = time.monotonic()
            wait = deadline - now
            if stall:
                wait = min(wait, stall)
            try:
                line = q.get(timeout=max(0.1, wait))
            except queue.Empty:
                now = time.monotonic()
                killed = ("timed out after %ds" % timeout if now >= deadline
                          else "printed nothing for %ds" % stall)
                break
            if line is None:
                break
            out_lines.append(line)
            m = RUNNING_RE.match(line)
            if m:
                running = m.group(1)
            m = TAP_RE.match(line)
            if m:
                what = m.group(3).strip()
                now = time.monotonic()
                times.append((now - last, what))
                last = now
                running = None
                seen.append(what.split(" ")[0])
                if m.group(1) == "not ok":
                    if "# TODO" in what:
                        t.skipped += 1
                    else:
                        t.failed += 1
                        t.failures.append(f"{name}: {what}")
                        log(f"    FAIL {what}")
                elif "# SKIP" in what or "# skip" in what:
                    t.skipped += 1
                else:
                    t.passed += 1
            if time.monotonic() >= deadline:
                killed = "timed out after %ds" % timeout
                break
        if killed:
            if stall:
                dump_stacks(proc.pid, stacks)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rc = proc.wait()
        reader.join(timeout=5)
        if killed:
            what = f"{killed}" + (f" in {running}" if running else "")
            problems.append(what)
            log(f"    {name}: {what}")
        elif rc != 0 and running:
            problems.append(f"exited with status {rc} in {running}")
        elif rc != 0 and not t.failed:
            problems.append(f"exited with status {rc}")
        if not (killed or rc != 0) or not resume or not running:
            break
        if time.monotonic() >= deadline:
            break
        # the test that crashed or hung counts as failed; run the rest
        t.failed += 1
        t.failures.append(f"{name}: {running}: {problems[-1]}")
        t.lost.append((running, problems[-1]))
        problems.pop()
        seen.append(running)
        out_lines.append(f"# resuming after {running}\n")
        log(f"    FAIL {running}; resuming with the tests after it")
        cmd = resume(seen)
    elapsed = time.monotonic() - start
    if logdir:
        os.makedirs(logdir, exist_ok=True)
        fname = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".log"
        with open(os.path.join(logdir, fname), "w") as f:
            f.writelines(out_lines + stacks)
        if len(times) > 1:
            # what to make cheaper when CI's time runs short
            with open(os.path.join(logdir, fname[:-4] + ".times"), "w") as f:
                for secs, what in sorted(times, reverse=True):
                    f.write(f"{secs:7.1f}s {what}\n")
    if not problems and t.passed + t.failed + t.skipped == 0:
        problems.append("ran no test")
    for problem in problems:
        t.failed += 1
        t.failures.append(f"{name}: {problem}")
    if problems:
        tail = "".join(out_lines[-25:])
        log(f"    {name}: {'; '.join(problems)}; last output:\n{tail}")
    log(f"  {name}: {t.passed} passed, {t.failed} failed, "
        f"{t.skipped} skipped ({elapsed:.0f}s)")
    if len(times) > 10 and max(times)[0] >= 1:
        slow = sorted(times, reverse=True)[:5]
        log("    slowest: " + ", ".join(f"{w.split(' ')[0]} {s:.0f}s"
                                       for s, w in slow))
    return t


def meson_tests(builddir):
    path = os.path.join(builddir, "meson-info", "intro-tests.json")
    with open(path) as f:
        return json.load(f)


def sh(cmd, **kw):
    log("  $ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def tier_layout(logdir):
    t = run_tap("layout", [sys.executable,
                           os.path.join(TOP, "scripts", "series.py"),
                           "--check", "--tap"], logdir=logdir)
    # the runner itself: hangs, crashes and deadlines
    t.add(run_tap("layout/check-runner",
                  [sys.executable,
                   os.path.join(TOP, "tests", "scripts", "test-check.py")],
                  timeout=120, logdir=logdir))
    # the headline benchmark's lower bound and goals
    t.add(run_tap("layout/report-headline",
                  [sys.executable,
                   os.path.join(TOP, "tests", "scripts",
                                "test-report-headline.py")],
                  logdir=logdir))
    # the three-way merge that replays each series alone
    t.add(run_tap("layout/merge3",
                  [sys.executable,
                   os.path.join(TOP, "tests", "scripts", "test-merge3.py")],
                  logdir=logdir))
    # the stages of new files that grow over several patches
    t.add(run_tap("layout/series-stages",
                  [sys.executable,
                   os.path.join(TOP, "tests", "scripts",
                                "test-series-stages.py")],
                  logdir=logdir))
    # docs/devel/migration/composition.rst against its qtest group
    t.add(run_tap("layout/composition",
                  [sys.executable,
                   os.path.join(TOP, "scripts", "check-composition.py")],
                  logdir=logdir))
    return t


def tier_fast(logdir):
    if not os.path.exists(os.path.join(FAST, "build.ninja")):
        sh(["meson", "setup", FAST, TOP], stdout=subprocess.DEVNULL)
    sh(["meson", "compile", "-C", FAST], stdout=subprocess.DEVNULL)
    total = Tally()
    for test in meson_tests(FAST):
        env = dict(test.get("env") or {})
        total.add(run_tap("fast/" + test["name"], test["cmd"], env=env,
                          timeout=test.get("timeout") or 60, logdir=logdir))
    return total


FUZZ_DONE_RE = re.compile(r"^Done (\d+) runs in (\d+) second")
FUZZ_STAT_RE = re.compile(r"^stat::number_of_executed_units:\s*(\d+)")
FUZZ_ARTIFACT_RE = re.compile(r"Test unit written to (\S+)")


def run_fuzzer(name, exe, corpus, seconds, artifacts, logdir):
    """Run one libFuzzer target for @seconds on @corpus; one pass or fail.

    A crash, sanitizer report, leak, timeout or out-of-memory makes
    libFuzzer exit non-zero and write the input to @artifacts.
    """
    t = Tally()
    cmd = [exe, f"-max_total_time={seconds}", "-rss_limit_mb=2048",
           "-timeout=10", "-max_len=8192", "-print_final_stats=1",
           f"-artifact_prefix={os.path.join(artifacts, name)}-", corpus]
    start = time.monotonic()
    out_lines, runs, stat_runs, artifact = [], None, None, None
    try:
        proc = subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, errors="replace")
        try:
            out, _ = proc.communicate(timeout=seconds + 120)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            rc = None
        out_lines = out.splitlines(keepends=True)
    except OSError as e:
        rc = -1
        out_lines.append(f"cannot run {exe}: {e}\n")
    elapsed = time.monotonic() - start
    for line in out_lines:
        m = FUZZ_DONE_RE.match(line)
        if m:
            runs = int(m.group(1))
        m = FUZZ_STAT_RE.match(line)
        if m:
            stat_runs = int(m.group(1))
        m = FUZZ_ARTIFACT_RE.search(line)
        if m:
            artifact = m.group(1)
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, f"fuzz_{name}.log"), "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.writelines(out_lines)
    if rc is None:
        problem = f"did not stop after {seconds + 120}s"
    elif rc != 0:
        problem = f"exited with status {rc}"
    elif runs is None:
        problem = "printed no run count"
    else:
        problem = None
    if problem:
        if artifact:
            problem += f"; reproducer {artifact}"
        t.failed = 1
        t.failures.append(f"fuzz/{name}: {problem}")
        tail = "".join(out_lines[-25:])
        log(f"    FAIL fuzz/{name}: {problem}; last output:\n{tail}")
        t.notes.append(f"{name} failed")
    else:
        t.passed = 1
        t.notes.append(f"{name} {runs} runs")
    if runs is None:
        runs = stat_runs if stat_runs is not None else "?"
    log(f"  fuzz/{name}: {'FAIL' if problem else 'ok'}, "
        f"{runs} runs in {elapsed:.0f}s")
    return t


def tier_fuzz(logdir):
    """Each target FUZZ_TIME seconds (default 40) on a fresh copy of its
    seed corpus, which must never grow in the repository.  With
    FUZZ_KEEP_CORPUS=1 (make fuzz) the corpus is kept in
    build/fuzz-corpus/ from one run to the next instead."""
    seconds = int(os.environ.get("FUZZ_TIME", "40"))
    keep = os.environ.get("FUZZ_KEEP_CORPUS") == "1"
    if not os.path.exists(os.path.join(FUZZ, "build.ninja")):
        shutil.rmtree(FUZZ, ignore_errors=True)
        sh(["meson", "setup", FUZZ, TOP], stdout=subprocess.DEVNULL,
           env=dict(os.environ, CC="clang"))
    sh(["meson", "compile", "-C", FUZZ, "fuzz"], stdout=subprocess.DEVNULL)
    artifacts = os.path.join(logdir, "fuzz-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    total = Tally()
    targets = sorted(f[:-2] for f in os.listdir(FUZZ_SRC)
                     if f.startswith("fuzz-") and f.endswith(".c"))
    for name in targets:
        seeds = os.path.join(FUZZ_SRC, "corpus", name)
        corpus = os.path.join(BUILD, "fuzz-corpus" if keep else "fuzz-work",
                              name)
        if not keep:
            shutil.rmtree(corpus, ignore_errors=True)
        os.makedirs(corpus, exist_ok=True)
        if os.path.isdir(seeds):
            for f in os.listdir(seeds):
                if not os.path.exists(os.path.join(corpus, f)):
                    shutil.copy(os.path.join(seeds, f), corpus)
        total.add(run_fuzzer(name, os.path.join(FUZZ, "tests", "fuzz", name),
                             corpus, seconds, artifacts, logdir))
    return total


def tier_build(logdir):
    """One test: ninja builds every target of the patched tree."""
    t = Tally()
    path = os.path.join(logdir, "build-all.log")
    log(f"  $ ninja -C {BLD}")
    with open(path, "w") as out:
        r = subprocess.run(["ninja", "-C", BLD], stdout=out,
                           stderr=subprocess.STDOUT)
    if r.returncode == 0:
        t.passed += 1
        log("    ok build/all")
    else:
        t.failed += 1
        t.failures.append(f"build/all: ninja failed, see {path}")
        log(f"    FAIL build/all: ninja failed, see {path}")
    return t


def our_unit_tests():
    d = os.path.join(TOP, "tests", "unit")
    if not os.path.isdir(d):
        return []
    return sorted(f[:-2] for f in os.listdir(d)
                  if f.startswith("test-") and f.endswith(".c"))


def tier_unit(logdir):
    total = Tally()
    tests = {t["name"]: t for t in meson_tests(BLD)}
    for name in QEMU_UNIT_TESTS + our_unit_tests():
        test = tests.get(name)
        if not test:
            total.failed += 1
            total.failures.append(f"unit/{name}: not registered in {BLD}")
            log(f"    FAIL unit/{name}: not registered in the QEMU build")
            continue
        total.add(run_tap("unit/" + name, test["cmd"],
                          env=test.get("env") or {},
                          cwd=test.get("workdir") or BLD,
                          timeout=(test.get("timeout") or 30) * 4,
                          logdir=logdir))
    # the common-regions destination chooser, which asks QEMU over QMP
    total.add(run_tap("unit/region-chooser",
                      [sys.executable,
                       os.path.join(TOP, "tests", "scripts",
                                    "test-region-chooser.py")],
                      env={"QEMU_BINARY": os.path.join(BLD,
                                                       "qemu-system-x86_64")},
                      timeout=120, logdir=logdir))
    return total


def qtest_env():
    for t in meson_tests(BLD):
        if t["name"] == "qtest-x86_64/migration-test":
            env = dict(t.get("env") or {})
            break
    else:
        raise SystemExit("migration-test is not registered in " + BLD)
    # meson gives paths relative to the build directory; make them absolute
    # and drop helpers this project does not build.
    for k, v in list(env.items()):
        if k.startswith("QTEST_") and v.startswith("./"):
            path = os.path.join(BLD, v[2:])
            if os.path.exists(path):
                env[k] = path
            else:
                del env[k]
    env["QTEST_QEMU_BINARY"] = os.path.join(BLD, "qemu-system-x86_64")
    env.setdefault("PYTHON", os.path.join(BLD, "pyvenv", "bin", "python3"))
    return env


def migration_test_cmd(paths=None):
    """Quick mode runs upstream's smoke set; named paths need --full,
    which registers every test so that -p can pick any of them."""
    cmd = [os.path.join(BLD, "tests", "qtest", "migration-test"),
           "--tap", "--verbose", "-k"]
    if paths:
        cmd.append("--full")
    for p in paths or []:
        cmd += ["-p", p]
    return cmd


def tier_qtest(logdir):
    # Quick mode (no --full): upstream's smoke set plus our groups.
    # A test that hangs is killed after QTEST_STALL seconds without a
    # line of output, and the rest of the suite still runs.
    cmd = migration_test_cmd()

    def rest(seen):
        return cmd + [a for p in seen for a in ("-s", p)]
    t = run_tap("qtest/migration-test", cmd, env=qtest_env(), cwd=BLD,
                timeout=45 * 60, stall=QTEST_STALL, resume=rest,
                logdir=logdir)
    # A test that hung or crashed runs once more on its own.  Passing
    # then does not hide it: the tier's summary names it, with what
    # happened the first time, and its first log stays.
    for path, why in t.lost:
        again = run_tap("qtest/again" + path, migration_test_cmd([path]),
                        env=qtest_env(), cwd=BLD, timeout=10 * 60,
                        stall=QTEST_STALL, logdir=logdir)
        if again.passed and not again.failed:
            t.failed -= 1
            t.passed += 1
            t.failures = [f for f in t.failures
                          if not f.startswith(f"qtest/migration-test: "
                                              f"{path}: ")]
            t.notes.append(f"FLAKY {path}: {why} the first time, "
                           "passed alone")
        else:
            t.notes.append(f"{path}: {why}, and failed again alone")
    return t


def tier_interop(logdir):
    """Each path in its own process: glib's -p matches prefixes, and a
    second -p in the same process does not run cleanly."""
    base = os.path.join(BASE_BLD, "qemu-system-x86_64")
    total = Tally()
    for label, var in (("patched-to-base", "QTEST_QEMU_BINARY_DST"),
                       ("base-to-patched", "QTEST_QEMU_BINARY_SRC")):
        env = qtest_env()
        env[var] = base
        paths = INTEROP_PATHS
        if var == "QTEST_QEMU_BINARY_DST":
            paths = paths + INTEROP_SOURCE_ONLY_PATHS
        for path in paths:
            total.add(run_tap(f"interop/{label}{path}",
                              migration_test_cmd([path]), env=env, cwd=BLD,
                              timeout=10 * 60, stall=QTEST_STALL,
                              logdir=logdir))
    return total


def tier_rdma(logdir):
    """The RDMA migration tests, in a TCG guest with Soft-RoCE (the host
    has no RDMA).  A skip there means the guest's rxe link did not come
    up: it counts as a failure, not as a skip."""
    t = run_tap("rdma/guest", [os.path.join(TOP, "scripts", "guest",
                                            "rdma-guest.sh")],
                timeout=16 * 60, logdir=logdir)
    if t.skipped:
        t.failed += t.skipped
        t.failures.append(f"rdma/guest: {t.skipped} test(s) skipped "
                          "inside the Soft-RoCE guest")
        t.skipped = 0
    return t


def tier_libvirt(logdir):
    t = run_tap("libvirt/unit",
                [sys.executable,
                 os.path.join(TOP, "tests", "libvirt", "unit.py")],
                timeout=15 * 60, logdir=logdir)
    # two virtqemud "hosts", the real guest, virsh migrate with each flag
    t.add(run_tap("libvirt/e2e",
                  [sys.executable,
                   os.path.join(TOP, "tests", "libvirt", "e2e.py")],
                  timeout=20 * 60, stall=5 * 60, logdir=logdir))
    return t


TIERS = [("layout", tier_layout), ("fast", tier_fast), ("fuzz", tier_fuzz),
         ("build", tier_build), ("unit", tier_unit),
         ("qtest", tier_qtest), ("interop", tier_interop),
         ("rdma", tier_rdma), ("libvirt", tier_libvirt)]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tier", action="append",
                    choices=[n for n, _ in TIERS],
                    help="run only this tier (repeatable)")
    args = ap.parse_args()
    wanted = args.tier or [n for n, _ in TIERS]
    logdir = os.path.join(BUILD, "check-logs")
    grand = Tally()
    start = time.monotonic()
    for name, fn in TIERS:
        if name not in wanted:
            continue
        log(f"== tier {name}")
        t0 = time.monotonic()
        try:
            t = fn(logdir)
        except (subprocess.CalledProcessError, SystemExit, OSError) as e:
            t = Tally()
            t.failed = 1
            t.failures.append(f"{name}: could not run: {e}")
            log(f"  tier {name} could not run: {e}")
        notes = "; " + ", ".join(t.notes) if t.notes else ""
        log(f"== tier {name}: {t.passed} passed, {t.failed} failed, "
            f"{t.skipped} skipped ({time.monotonic() - t0:.0f}s){notes}")
        grand.add(t)
    log(f"== all tiers done in {time.monotonic() - start:.0f}s; "
        f"logs in {logdir}")
    if os.environ.get("MIG_CI_START"):
        total = time.time() - int(os.environ["MIG_CI_START"])
        log(f"== whole CI run so far: {total:.0f}s ({total / 60:.1f} min)")
    for f in grand.failures:
        log(f"  failed: {f}")
    print(f"{grand.passed} passed, {grand.failed} failed, "
          f"{grand.skipped} skipped")
    return 1 if grand.failed else 0


if __name__ == "__main__":
    sys.exit(main())
