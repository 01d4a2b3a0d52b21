#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""make bench-common: common-regions against precopy and multifd-zstd.

Three real guests (build/guest: the same kernel and initramfs) boot
under TCG; each reads the same files of the shared disk into its page
cache and writes private random data.  Guest A is migrated; B and C run
on the "host" wg, with region exports on.  The workgroup directory holds
wg (B and C's fingerprints), an empty host, and a host with too little
RAM; scripts/region_chooser.py ranks them for A, and A is migrated:

  - precopy, and multifd-zstd (upstream's nearest: it also sends fewer
    bytes), to a destination with no export;
  - common-regions, to the host the chooser put first, taking pages from
    B's and C's exports.

Each migration runs at --bandwidth MiB/s; the destination stays paused
(-S) and its RAM is compared byte for byte with the source's (both
saved with pmemsave): "verified".  The source then resumes for the next
run.  Results: bench/results/common-regions.{json,md}.
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "scripts"))
import region_chooser as rc  # noqa: E402
from vm import VM, read_guest_env  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
QEMU = os.path.join(BUILD, "qemu", "build", "qemu-system-x86_64")
MiB = 1 << 20


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def setup_guest(vm, files, private_mib, seed):
    con = vm.open_console(60)
    con.wait_ready(180)
    con.run("cat %s > /dev/null" % " ".join("/mnt/data/f%03d" % i
                                            for i in range(files)),
            timeout=300)
    con.run("dd if=/dev/urandom of=/tmp/private bs=1M count=%d 2>/dev/null"
            " && echo %d > /tmp/seed" % (private_mib, seed), timeout=300)


def ram_digest(vm, mem_mib, path):
    vm.qmp.cmd("pmemsave", {"val": 0, "size": mem_mib * MiB,
                            "filename": path}, timeout=120)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    os.unlink(path)
    return h.hexdigest()


def wait_done(vm, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = vm.qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.1)
    raise RuntimeError("migration did not end")


def migrate(src, guest, workdir, cfg, bandwidth, mem_mib, exporters):
    """One migration of @src; returns the result's dict."""
    dst = VM(QEMU, workdir, "dst", guest, mem_mib=mem_mib, incoming=True,
             extra=["-S"], disk_readonly=True)
    try:
        caps = {"multifd": cfg == "multifd-zstd",
                "return-path": cfg == "common-regions",
                "common-regions": cfg == "common-regions"}
        for vm in (src, dst):
            vm.qmp.cmd("migrate-set-capabilities", {"capabilities": [
                {"capability": k, "state": v} for k, v in caps.items()]})
            params = {"max-bandwidth": bandwidth * MiB,
                      "downtime-limit": 300}
            if cfg == "multifd-zstd":
                params.update({"multifd-channels": 2,
                               "multifd-compression": "zstd"})
            vm.qmp.cmd("migrate-set-parameters", params)
        if cfg == "common-regions":
            dst.qmp.cmd("migrate-set-parameters",
                        {"common-regions-exporters": ",".join(exporters)})
        uri = "unix:%s/mig.sock" % workdir
        dst.qmp.cmd("migrate-incoming", {"uri": uri})
        t0 = time.monotonic()
        src.qmp.cmd("migrate", {"uri": uri})
        info = wait_done(src)
        secs = time.monotonic() - t0
        dinfo = wait_done(dst, 60)
        r = {"config": cfg, "status": info["status"], "seconds": secs,
             "wire_bytes": info["ram"]["transferred"],
             "downtime_ms": info.get("downtime", 0)}
        if cfg == "common-regions":
            r["source"] = info.get("common-regions")
            r["destination"] = dinfo.get("common-regions")
        if info["status"] == "completed":
            a = ram_digest(src, mem_mib, os.path.join(workdir, "src.ram"))
            b = ram_digest(dst, mem_mib, os.path.join(workdir, "dst.ram"))
            r["verified"] = a == b
        else:
            r["verified"] = False
        return r
    finally:
        dst.kill()
        if src.qmp.cmd("query-status")["status"] != "running":
            src.qmp.cmd("cont")


def write_report(res, path_md):
    runs = res["runs"]
    by = {}
    for r in runs:
        by.setdefault(r["config"], []).append(r)

    def med(cfg, key):
        return statistics.median(r[key] for r in by[cfg])

    pre_b, pre_t = med("precopy", "wire_bytes"), med("precopy", "seconds")
    lines = ["# common-regions: pages the destination host holds are not "
             "sent", "",
             "`make bench-common`, %s; 3 guests of %d MiB under TCG, each "
             "with the same %d MiB of files in page cache and %d MiB of "
             "its own random data; %d MiB/s; medians of %d runs." %
             (res["date"], res["mem_mib"], res["files"] * 8,
              res["private_mib"], res["bandwidth"], res["reps"]), "",
             "## What the chooser chose", "", "```"]
    lines += res["chooser"].rstrip("\n").splitlines()
    lines += ["```", "",
              "## Migrations of guest A", "",
              "| config | destination | bytes on the wire | x precopy | "
              "time | x precopy | verified |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for cfg in ("precopy", "multifd-zstd", "common-regions"):
        b, t = med(cfg, "wire_bytes"), med(cfg, "seconds")
        ok = sum(r["verified"] for r in by[cfg])
        lines.append("| %s | %s | %.1f MiB | %.2fx | %.2f s | %.2fx | "
                     "%d/%d |" % (cfg, res["chosen"] if cfg ==
                                  "common-regions" else "empty", b / MiB,
                                  b / pre_b, t, t / pre_t, ok, len(by[cfg])))
    cr = by["common-regions"][0]
    held = res["bytes_held_predicted"]
    saved = pre_b - med("common-regions", "wire_bytes")
    lines += ["",
              "The chooser predicted that %s holds %.1f MiB of A's %.1f MiB "
              "that are not zero (the shared share).  common-regions sent "
              "%.1f MiB less than precopy: %.0f%% of the shared share "
              "(goal: at least 50%%)." %
              (res["chosen"], held / MiB, res["bytes_total"] / MiB,
               saved / MiB, 100.0 * saved / held if held else 0.0), "",
              "First run's counters: source %s; destination %s." %
              (json.dumps(cr["source"]), json.dumps(cr["destination"])),
              ""]
    with open(path_md, "w") as f:
        f.write("\n".join(lines))


class _Kw:
    """The chooser's QMP calls (keyword arguments) on the harness's
    monitor, which QEMU's socket serves to one client at a time."""

    def __init__(self, mon):
        self.mon = mon

    def cmd(self, name, **kw):
        return self.mon.cmd(name, kw or None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mem", type=int, default=512, help="MiB per guest")
    ap.add_argument("--files", type=int, default=16,
                    help="8 MiB files read into page cache")
    ap.add_argument("--private", type=int, default=48,
                    help="MiB of random data per guest")
    ap.add_argument("--bandwidth", type=int, default=128, help="MiB/s")
    ap.add_argument("--out", default=os.path.join(TOP, "bench", "results"))
    a = ap.parse_args()

    guest = read_guest_env(BUILD)
    workdir = tempfile.mkdtemp(prefix="bench-common-", dir="/tmp")
    wg = os.path.join(workdir, "workgroup")
    vms = {}
    try:
        for i, name in enumerate(("a", "b", "c")):
            # three guests share the disk, read-only
            vms[name] = VM(QEMU, workdir, name, guest, mem_mib=a.mem,
                           disk_readonly=True)
            log("guest %s: booting, %d MiB of files, %d MiB private" %
                (name, a.files * 8, a.private))
            setup_guest(vms[name], a.files, a.private, i)

        # the workgroup: wg runs B and C, empty runs nothing, small is full
        for host, ram in (("wg", 8 << 30), ("empty", 8 << 30),
                          ("small", 256 * MiB)):
            rc.main(["host", os.path.join(wg, host), "--vcpus", "8",
                     "--ram", str(ram)])
        exporters = []
        for name in ("b", "c"):
            fp = os.path.join(wg, "wg", "vms", name + ".rfp")
            vms[name].qmp.cmd("common-regions-fingerprint", {"filename": fp},
                              timeout=120)
            sock = os.path.join(workdir, name + "-export.sock")
            vms[name].qmp.cmd("common-regions-export-start", {"path": sock},
                              timeout=120)
            exporters.append(sock)
        afp = os.path.join(workdir, "a.rfp")
        vms["a"].qmp.cmd("common-regions-fingerprint", {"filename": afp},
                         timeout=120)
        req = os.path.join(workdir, "a.json")
        reqs = rc.requirements(_Kw(vms["a"].qmp))
        with open(req, "w") as f:
            json.dump(reqs, f)
        with open(afp, "rb") as f:
            fp = rc.parse_fingerprint(f.read())
        cands, excl = rc.rank(wg, fp, reqs)
        chooser = subprocess.run(
            [sys.executable, os.path.join(TOP, "scripts", "region_chooser.py"),
             "rank", wg, "--fingerprint", afp, "--requirements", req],
            capture_output=True, text=True).stdout
        log("chooser:\n" + chooser)
        chosen = cands[0]["host"]

        runs = []
        for rep in range(a.reps):
            for cfg in ("precopy", "multifd-zstd", "common-regions"):
                r = migrate(vms["a"], guest, workdir, cfg, a.bandwidth, a.mem,
                            exporters if chosen == "wg" else [])
                log("rep %d %s: %s, %.1f MiB, %.2f s, verified %s" %
                    (rep + 1, cfg, r["status"], r["wire_bytes"] / MiB,
                     r["seconds"], r["verified"]))
                runs.append(r)
        res = {"date": time.strftime("%Y-%m-%d"), "reps": a.reps,
               "mem_mib": a.mem, "files": a.files, "private_mib": a.private,
               "bandwidth": a.bandwidth, "chooser": chooser,
               "chosen": chosen, "candidates": cands, "excluded": excl,
               "bytes_held_predicted": cands[0]["bytes-held"],
               "bytes_total": cands[0]["bytes-total"], "runs": runs}
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "common-regions.json"), "w") as f:
            json.dump(res, f, indent=1)
        write_report(res, os.path.join(a.out, "common-regions.md"))
        log("results in %s/common-regions.{json,md}" % a.out)
        return 0 if all(r["verified"] for r in runs) else 1
    finally:
        for vm in vms.values():
            vm.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
