#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Real-guest live-migration demo and benchmark.

    migbench.py demo  [--scenario mixed] [--configs a,b,...]
    migbench.py bench [--reps 3] [--scenarios a,b] [--configs a,b]
                      [--publish bench/results]

Both boot Debian's kernel with busybox and the workload programs (the
guest that scripts/guest/build-guest.sh builds), migrate it between two
patched QEMUs over loopback with max-bandwidth emulating a link, verify
the memory on the destination, and report.  Configurations and scenarios
are in configs.py.  Work directories and full results go to build/bench/.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs  # noqa: E402
import report  # noqa: E402
import report_postcopy  # noqa: E402
import report_spill  # noqa: E402
try:
    # QEMU's python package from the prepared tree (monitor.py): only the
    # commands that run QEMU need it, not report and list
    import engine
    from vm import VM, probe_accel, read_guest_env
except ImportError as e:
    engine = None
    NO_ENGINE = str(e)

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
QEMU_DEFAULT = os.path.join(BUILD, "qemu", "build", "qemu-system-x86_64")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def _sigterm(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def qemu_version(qemu):
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True,
                             text=True, timeout=10).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def binary_id(qemu):
    """mtime and SHA-256 of the binary: the tree may be rebuilt between
    runs, and a result must say which build it measured."""
    h = hashlib.sha256()
    with open(qemu, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"mtime": datetime.datetime.fromtimestamp(
        os.stat(qemu).st_mtime).isoformat(timespec="seconds"),
        "sha256": h.hexdigest()}


def binary_caps(qemu, guest, workdir):
    """Capabilities this binary lists (asks a QEMU with no guest running)."""
    vm = VM(qemu, workdir, "caps", guest, extra=["-S"])
    try:
        return sorted(engine.known_caps(vm))
    finally:
        vm.kill()


def select_configs(names, caps):
    """Split the configuration list into (to run, skipped with a reason)."""
    chosen = configs.CONFIGS
    if names:
        unknown = [n for n in names if n not in configs.BY_NAME]
        if unknown:
            sys.exit("unknown configuration(s): %s (known: %s)" % (
                ", ".join(unknown), ", ".join(configs.BY_NAME)))
        chosen = [configs.BY_NAME[n] for n in names]
    run, skipped = [], []
    for c in chosen:
        missing = [k for k in c.caps if k not in caps]
        if missing:
            skipped.append({"config": c.name, "reason":
                            "this QEMU does not know capability %s" %
                            ", ".join(missing)})
        elif c.needs:
            skipped.append({"config": c.name, "reason": c.note or
                            "needs %s" % c.needs})
        else:
            run.append(c)
    # precopy first: the ratios are against it, and a configuration with
    # a cut (Config.cut) breaks the network at a share of what precopy
    # sent in the same scenario, measured before it in each repetition
    run = [configs.BY_NAME["precopy"]] + [c for c in run
                                          if c.name != "precopy"]
    return run, skipped


def cut_point(cfg, sc, results):
    """Where a configuration with a cut breaks the network: cfg.cut of the
    median ram.transferred of this scenario's verified cfg.cut_base runs
    (precopy unless said otherwise) so far in this run; without one, of a
    fixed estimate from the scenario (the guest's non-zero memory: its
    kernel and programs, ~64 MiB, plus the page cache, the region and the
    dirtier's working set), said so in "basis"."""
    sent = sorted(r["ram"]["transferred"] for r in results
                  if r["scenario"] == sc.name and
                  r["config"] == cfg.cut_base and r["status"] == "ok")
    if sent:
        base = statistics.median(sent)
        basis = ("median ram.transferred of %d verified %s run%s of "
                 "%s in this run" % (len(sent), cfg.cut_base,
                                     "s" if len(sent) > 1 else "", sc.name))
    else:
        base = (64 + sc.cache_mib + sc.region_mib + sc.dirty_mib) << 20
        basis = ("FIXED ESTIMATE (no verified %s run of %s yet): "
                 "64 MiB + page cache + region + dirtier working set" %
                 (cfg.cut_base, sc.name))
    return {"fraction": cfg.cut, "base_bytes": int(base),
            "bytes": int(cfg.cut * base), "basis": basis,
            "estimated": not sent}


def split_by_scenario(run, scen, skipped):
    """Drop the configurations limited to other scenarios (Config.scenarios)
    from @run for each of @scen, noting each once in @skipped.  Returns
    {scenario: [configs]}."""
    out = {}
    for sname in scen:
        sc = configs.SCENARIO_BY_NAME[sname]
        out[sname] = [c for c in run
                      if (not c.scenarios or sname in c.scenarios) and
                      (sc.precopy or c.name != "precopy")]
    for c in run:
        left = [s for s in scen if c.scenarios and s not in c.scenarios]
        if left:
            skipped.append({"config": c.name, "reason":
                            "not run in %s (only in %s)" % (
                                ", ".join(left), ", ".join(c.scenarios))})
    return out


def setup(args, kind):
    qemu = os.path.abspath(args.qemu)
    if not os.access(qemu, os.X_OK):
        sys.exit("no QEMU binary at %s (run make build)" % qemu)
    if engine is None:
        sys.exit(NO_ENGINE)
    guest = read_guest_env(BUILD)
    os.makedirs(os.path.join(BUILD, "bench"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = tempfile.mkdtemp(prefix="%s-%s-" % (kind, stamp),
                               dir=os.path.join(BUILD, "bench"))
    # Unix socket paths are limited to 107 bytes: run directories are
    # short ("run001") and the socket names too ("src.qmp").
    if len(os.path.join(workdir, "run000", "kvmprobe.qmp")) > 107:
        sys.exit("build path too long for unix sockets: %s" % workdir)
    defaults = dict(configs.DEFAULTS)
    if args.bandwidth:
        defaults["max_bandwidth"] = int(args.bandwidth * 1024 * 1024)
    accel, why = probe_accel(qemu, guest, workdir, log)
    log("accelerator: %s (%s)" % (accel.upper(), why))
    caps = binary_caps(qemu, guest, workdir)
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(),
        "qemu": qemu_version(qemu), "qemu_path": qemu,
        "qemu_binary": binary_id(qemu),
        "accel": accel, "accel_reason": why,
        "kernel_package": guest.get("KPKG"), "busybox": guest.get("BUSYBOX"),
        "mem_mib": defaults["mem_mib"],
        "max_bandwidth_mib_s": defaults["max_bandwidth"] / 1024 / 1024,
        "downtime_limit_ms": defaults["downtime_limit"],
        "workdir": workdir,
    }
    return qemu, guest, workdir, defaults, accel, caps, meta


def one(qemu, guest, accel, cfg, sc, workdir, defaults, label,
        results=()):
    t = time.monotonic()
    if sc.guest != "guest":
        guest = read_guest_env(BUILD, sc.guest)
    cut = cut_point(cfg, sc, results) if cfg.cut else None
    if cut:
        log("%s: the forwarder cuts after %.0f MB (%g of %.0f MB, %s)" % (
            label, cut["bytes"] / 1e6, cut["fraction"],
            cut["base_bytes"] / 1e6, cut["basis"]))
    r = engine.run_one(qemu, guest, accel, cfg, sc, workdir, defaults,
                       cut=cut)
    if r["status"] == "ok":
        g = report._guest(r)
        sp = report_spill.spill_counts(r)
        log("%s: ok, verified: %.2f s, downtime %d ms, %.0f MB on the wire"
            "%s%s%s (%.0f s wall)" % (
                label, r["total_time_ms"] / 1000, r["downtime_ms"],
                report._wire(r) / 1e6,
                ", %.2f s to the destination running" % (
                    r["running_ms"] / 1000) if "running_ms" in r else "",
                ", spill file %.0f MB, failovers %s/%s" % (
                    (sp["file_bytes"] or 0) / 1e6, sp["failovers_src"],
                    sp["failovers_dst"]) if sp else "",
                ", guest %.0f%% of its speed" % (100 * g["ratio"]) if g
                else "", time.monotonic() - t))
        st = r.get("guest_stall")
        if st and "lost_s" in st:
            pc = r.get("postcopy_cut") or {}
            log("%s: postcopy: %sguest longest stall %.2f s, progress lost "
                "%.2f s in %.1f guest s from the switchover%s" % (
                    label, "cut %.3f s after STOP, completed %.2f s after "
                    "the cut; " % (pc["cut_s"] - r["stop_s"],
                                   pc["cut_to_complete_s"])
                    if pc.get("cut_to_complete_s") is not None and
                    r.get("stop_s") is not None else "",
                    st["longest_stall_s"], st["lost_s"],
                    st["window_guest_s"],
                    "; destination postcopy-requests %s, postcopy-pages %s, "
                    "postcopy-wait-ms %s" % (
                        sp.get("postcopy-requests"), sp.get("postcopy-pages"),
                        sp.get("postcopy-wait-ms"))
                    if (sp := report_postcopy.pc_counts(r)) else ""))
    else:
        extra = ""
        if "source_intact_after_cancel" in r:
            extra = (" (source still running, memory verified)"
                     if r["source_intact_after_cancel"]
                     else " (SOURCE MEMORY WRONG after cancel)")
        elif "source_intact_after_failure" in r:
            extra = (" (source still running, memory verified)"
                     if r["source_intact_after_failure"]
                     else " (SOURCE NOT RUNNING INTACT after the cut)")
        log("%s: %s: %s%s" % (label, r["status"].upper(), r["reason"], extra))
    # Keep the QEMU logs of failed runs only (MIGBENCH_KEEP=1: all).
    if r["status"] == "ok" and not os.environ.get("MIGBENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    return r


def cmd_demo(args):
    qemu, guest, workdir, defaults, accel, caps, meta = setup(args, "demo")
    sc = configs.SCENARIO_BY_NAME[args.scenario]
    if args.configs == "all":
        names = None
    elif args.configs:
        names = args.configs.split(",")
    else:
        names = configs.DEMO_CONFIGS
    run, skipped = select_configs(names, caps)
    run = split_by_scenario(run, [sc.name], skipped)[sc.name]
    for s in skipped:
        log("skipping %s: %s" % (s["config"], s["reason"]))
    log("scenario %s: %s; %d MiB guest, link %g MiB/s, %s" % (
        sc.name, sc.description, defaults["mem_mib"],
        meta["max_bandwidth_mib_s"], accel.upper()))
    t0 = time.monotonic()
    results = []
    for cfg in run:
        r = one(qemu, guest, accel, cfg, sc,
                os.path.join(workdir, "run%03d" % (len(results) + 1)),
                defaults, "%s/%s" % (sc.name, cfg.name), results)
        results.append(r)
    base = next((r for r in results if r["config"] == "precopy"), None)
    rows = [report.run_row(r, base) for r in results]
    out = {"meta": meta, "scenario": sc.__dict__, "skipped": skipped,
           "results": results, "wall_s": round(time.monotonic() - t0, 1)}
    with open(os.path.join(workdir, "demo.json"), "w") as f:
        json.dump(out, f, indent=1)
    print()
    print("Live migration of a real Linux guest: %s, %d MiB RAM, %s, "
          "link capped at %g MiB/s (max-bandwidth), loopback TCP" % (
              meta["kernel_package"], defaults["mem_mib"], accel.upper(),
              meta["max_bandwidth_mib_s"]))
    print("Workload: %s" % sc.description)
    print()
    print(report.text_table(rows, report.DEMO_COLS))
    print()
    for n in report.notes(results, skipped) + report.counters(results):
        print(n)
    nok = sum(r["status"] == "ok" for r in results)
    print("%d of %d migrations completed and verified (memory region, "
          "dirtier pages, page-cache files checked in the destination "
          "guest); %.0f s. Details: %s/demo.json" % (
              nok, len(results), time.monotonic() - t0, workdir))
    return 1 if any(report.is_error(r) for r in results) else 0


def cmd_bench(args):
    qemu, guest, workdir, defaults, accel, caps, meta = setup(args, "bench")
    scen = args.scenarios.split(",") if args.scenarios else \
        [s.name for s in configs.SCENARIOS if s.default]
    for s in scen:
        if s not in configs.SCENARIO_BY_NAME:
            sys.exit("unknown scenario %s (known: %s)" % (
                s, ", ".join(configs.SCENARIO_BY_NAME)))
    run, skipped = select_configs(
        args.configs.split(",") if args.configs else None, caps)
    per_scen = split_by_scenario(run, scen, skipped)
    for s in skipped:
        log("skipping %s: %s" % (s["config"], s["reason"]))
    mems = {configs.SCENARIO_BY_NAME[s].mem_mib or defaults["mem_mib"]
            for s in scen}
    if len(mems) == 1:
        meta["mem_mib"] = mems.pop()
    cpus = {configs.SCENARIO_BY_NAME[s].vcpus for s in scen}
    if len(cpus) == 1:
        meta["vcpus"] = cpus.pop()
    total = args.reps * sum(len(v) for v in per_scen.values())
    log("bench: %d scenarios x up to %d configurations x %d repetitions "
        "= %d migrations" % (len(scen), len(run), args.reps, total))
    t0 = time.monotonic()
    results = []
    n = 0
    # Repetition outermost: each configuration is measured next to
    # precopy under the same machine conditions.
    for rep in range(1, args.reps + 1):
        for sname in scen:
            sc = configs.SCENARIO_BY_NAME[sname]
            for cfg in per_scen[sname]:
                n += 1
                r = one(qemu, guest, accel, cfg, sc,
                        os.path.join(workdir, "run%03d" % n), defaults,
                        "[%d/%d] %s/%s rep %d" % (n, total, sname, cfg.name,
                                                  rep), results)
                r["rep"] = rep
                results.append(r)
    wall = time.monotonic() - t0
    meta["wall_s"] = round(wall, 1)
    meta["reps"] = args.reps
    full = {"meta": meta,
            "scenarios": {s: configs.SCENARIO_BY_NAME[s].__dict__
                          for s in scen},
            "configs": [c.name for c in run],
            "skipped": skipped, "runs": results}
    with open(os.path.join(workdir, "results-full.json"), "w") as f:
        json.dump(full, f, indent=1)
    report.write_outputs(
        full, [workdir] + ([args.publish] if args.publish else []),
        args.name, log)
    nok = sum(r["status"] == "ok" for r in results)
    log("%d of %d migrations verified; %.1f min; full results: %s" % (
        nok, len(results), wall / 60,
        os.path.join(workdir, "results-full.json")))
    # Not converging in time is a result; a harness or memory failure is not.
    return 1 if any(report.is_error(r) for r in results) else 0


def cmd_report(args):
    with open(args.results) as f:
        full = json.load(f)
    outdirs = [os.path.dirname(os.path.abspath(args.results))]
    if args.publish:
        outdirs.append(args.publish)
    report.write_outputs(full, outdirs, args.name, log)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qemu", default=QEMU_DEFAULT)
    ap.add_argument("--bandwidth", type=float,
                    help="max-bandwidth in MiB/s (default %d)" %
                    (configs.DEFAULTS["max_bandwidth"] >> 20))
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo")
    d.add_argument("--scenario", default="mixed",
                   choices=list(configs.SCENARIO_BY_NAME))
    d.add_argument("--configs", help="comma-separated, or 'all' "
                   "(default: precopy, multifd-zstd, each capability "
                   "once and one cut)")
    b = sub.add_parser("bench")
    b.add_argument("--reps", type=int, default=3)
    b.add_argument("--scenarios", help="comma-separated (default: all)")
    b.add_argument("--configs", help="comma-separated (default: all)")
    b.add_argument("--name", default="bench",
                   help="file name stem of the outputs")
    b.add_argument("--publish", help="also write JSON/MD/PNG here")
    r = sub.add_parser("report", help="rewrite JSON/MD/PNG from a "
                       "results-full.json")
    r.add_argument("results")
    r.add_argument("--name", default="bench")
    r.add_argument("--publish")
    sub.add_parser("list")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    if args.cmd == "list":
        for c in configs.CONFIGS:
            print("config   %-20s %s caps=%s params=%s%s%s%s%s" % (
                c.name, c.kind, c.caps, c.params,
                " source-params=%s" % c.src_params if c.src_params else "",
                " hook=%s" % c.hook if c.hook else "",
                " (only %s)" % ",".join(c.scenarios) if c.scenarios else "",
                " (needs %s)" % c.needs if c.needs else ""))
        for s in configs.SCENARIOS:
            print("scenario %-20s %s" % (s.name, s.description))
        return 0
    try:
        if args.cmd == "report":
            return cmd_report(args)
        return cmd_demo(args) if args.cmd == "demo" else cmd_bench(args)
    except KeyboardInterrupt:
        log("interrupted; QEMU processes stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
