# SPDX-License-Identifier: GPL-2.0-or-later
"""One verified live migration of the benchmark guest between two QEMUs.

run_one() boots a source, starts the scenario's workloads, takes the
verifier's checksums, starts a destination with -incoming defer, sets
capabilities and parameters on both, migrates over loopback TCP while
sampling query-migrate every 100 ms, then asks the destination guest for
the same checksums and for the workload's own throughput log.  The result
says "ok" only when the migration completed AND every check passed;
otherwise status is "failed" or "unverified" with the reason."""

import os
import re
import time
import traceback

from qmp import QMPError
from vm import VM, GuestError

WL = "/run/wl"
SAMPLE_S = 0.1


def _fmt_params(params, ctx):
    out = {}
    for k, v in params.items():
        if isinstance(v, str) and v[:1] == "{" and v[-1:] == "}" and \
                v[1:-1] in ctx:
            out[k] = ctx[v[1:-1]]       # a lone placeholder keeps its type
        elif isinstance(v, str):
            out[k] = v.format(**ctx)
        else:
            out[k] = v
    return out


def known_caps(vm):
    return {c["capability"] for c in vm.qmp.cmd("query-migrate-capabilities")}


def wait_file_cmd(path, tries=400):
    """Shell snippet: wait (20 s at most) for a non-empty file, print it."""
    return ("i=0; while [ ! -s %s ] && [ $i -lt %d ]; do usleep 50000; "
            "i=$((i+1)); done; cat %s" % (path, tries, path))


def start_workload(con, sc):
    """Fill the page cache, start the region holder and the dirtier."""
    out = {}
    if sc.cache_mib:
        _, txt = con.run("pagecache -M %d -c /mnt/MANIFEST /mnt/data/f*" %
                         sc.cache_mib, timeout=120)
        out["cache_fill"] = txt.strip().splitlines()[-1]
    con.run("memregion -n region0 -m %d -s 12345 -d %s >%s/region0.out 2>&1 &"
            % (sc.region_mib, WL, WL))
    con.run(wait_file_cmd("%s/region0.pid" % WL), timeout=60)
    if sc.dirty_mib:
        con.run("dirtier -m %d -r %g -p %s -s 777 -l %s/dirtier.log "
                "-v %s/dirtier.ver >%s/dirtier.out 2>&1 & echo $! >%s/dirtier.pid"
                % (sc.dirty_mib, sc.dirty_rate, sc.dirty_order, WL, WL, WL, WL))
    return out


DISKMAP_LINE = re.compile(r"^diskmap: map 0x([0-9a-f]+) records (\d+) "
                          r"segments (\d+)$", re.M)
DISKMAP_CHECK = re.compile(r"^diskmap: check (\d+) pages (\d+) moved (\d+) "
                           r"map-pages (\d+) map-moved (\d+) (OK|FAIL)$",
                           re.M)


def start_diskmap(con, sc):
    """Publish the map of the cached files for disk-backed-pages.

    Runs bench/workloads/diskmap over the files the page cache holds (the
    same -M as the fill, so the same pages) and waits for the line with
    the guest-physical address of its map, which becomes {disk_map}."""
    con.run("diskmap -M %d /mnt/data/f* >%s/diskmap.out 2>&1 & "
            "echo $! >%s/diskmap.pid" % (sc.cache_mib, WL, WL))
    _, txt = con.run(
        "i=0; while ! grep -q '^diskmap: map ' %s/diskmap.out && "
        "kill -0 $(cat %s/diskmap.pid) 2>/dev/null && [ $i -lt 1200 ]; do "
        "usleep 50000; i=$((i+1)); done; cat %s/diskmap.out" % (WL, WL, WL),
        timeout=90)
    m = DISKMAP_LINE.search(txt)
    if not m:
        raise GuestError("diskmap published no map: %r" % txt.strip()[-400:])
    return {"map": int(m.group(1), 16), "records": int(m.group(2)),
            "segments": int(m.group(3)), "output": txt.strip()}


def diskmap_check(con):
    """Ask diskmap (SIGUSR1) whether any page moved since it published."""
    out = "%s/diskmap.out" % WL
    _, txt = con.run(
        "n=$(grep -c '^diskmap: check' %s); kill -USR1 $(cat %s/diskmap.pid)"
        " && i=0 && while [ $(grep -c '^diskmap: check' %s) -le $n ] && "
        "[ $i -lt 1200 ]; do usleep 50000; i=$((i+1)); done; "
        "grep '^diskmap: check' %s | tail -n 1" % (out, WL, out, out),
        timeout=90)
    m = DISKMAP_CHECK.search(txt)
    if not m:
        raise GuestError("diskmap check gave no answer: %r" % txt.strip())
    return {"pages": int(m.group(2)), "moved": int(m.group(3)),
            "map_pages": int(m.group(4)), "map_moved": int(m.group(5)),
            "ok": m.group(6) == "OK", "line": m.group(0)}


def verify(con, sc, where):
    """Checksums and self-checks inside the guest; returns a dict."""
    v = {}
    con.run("rm -f %s/region0.sum; kill -USR1 $(cat %s/region0.pid)" %
            (WL, WL))
    _, txt = con.run(wait_file_cmd("%s/region0.sum" % WL), timeout=60)
    m = re.search(r"sum=([0-9a-f]+) expect=([0-9a-f]+) (OK|FAIL)", txt)
    if not m:
        raise GuestError("%s: no region checksum: %r" % (where, txt))
    v["region_sum"], v["region_expect"] = m.group(1), m.group(2)
    v["region_ok"] = m.group(3) == "OK"
    if sc.dirty_mib:
        con.run("rm -f %s/dirtier.ver; kill -USR1 $(cat %s/dirtier.pid)" %
                (WL, WL))
        _, txt = con.run(wait_file_cmd("%s/dirtier.ver" % WL), timeout=60)
        v["dirtier"] = txt.strip()
        v["dirtier_ok"] = txt.startswith("dirtier OK")
    if sc.cache_mib:
        rc, txt = con.run(
            "grep '^pgpgin ' /proc/vmstat; "
            "pagecache -M %d -c /mnt/MANIFEST /mnt/data/f*; r=$?; "
            "grep '^pgpgin ' /proc/vmstat; exit $r" % sc.cache_mib,
            timeout=120, check=False)
        ins = [int(x) for x in re.findall(r"^pgpgin (\d+)", txt, re.M)]
        lines = [ln for ln in txt.splitlines() if ln.startswith("pagecache ")]
        v["pagecache"] = lines[-1] if lines else txt.strip()[-200:]
        v["pagecache_ok"] = rc == 0 and bool(lines) and "OK" in lines[-1]
        # KiB read from the disk while checking: ~0 means the files came
        # from the page cache, i.e. from migrated memory.
        v["pagecache_disk_kib"] = ins[1] - ins[0] if len(ins) == 2 else None
    return v


def guest_clock_offset(con):
    """guest CLOCK_BOOTTIME minus host monotonic time, in seconds."""
    t0 = time.monotonic()
    _, txt = con.run("cat /proc/uptime")
    t1 = time.monotonic()
    return float(txt.split()[0]) - (t0 + t1) / 2


def read_dirtier_log(con):
    _, txt = con.run("cat %s/dirtier.log" % WL, timeout=30)
    rows = []
    for ln in txt.splitlines():
        p = ln.split()
        if len(p) == 3:
            try:
                rows.append((float(p[0]), float(p[1])))
            except ValueError:
                pass
    return rows


def slowdown(rows, offset, t_start, t_end, warm_from):
    """Guest's own MB/s before and during the migration (host times)."""
    g0, g1 = t_start + offset, t_end + offset
    before = [r for t, r in rows if warm_from + offset + 1 < t <= g0]
    # a log line at t covers (t-1, t]: count it if mostly inside the window
    during = [r for t, r in rows if g0 + 0.5 < t <= g1 + 0.5]
    b = sum(before) / len(before) if before else None
    d = sum(during) / len(during) if during else None
    return {
        "before_mbps": b,
        "during_mbps": d,
        "ratio": (d / b) if (b and d is not None) else None,
        "samples_during": len(during),
    }


def _migrate_stats(info):
    ram = info.get("ram", {})
    keep = ("transferred", "total", "duplicate", "normal", "normal-bytes",
            "dirty-sync-count", "postcopy-requests", "multifd-bytes",
            "precopy-bytes", "postcopy-bytes", "downtime-bytes",
            "pages-per-second", "mbps", "dirty-pages-rate")
    out = {k: ram[k] for k in keep if k in ram}
    # Whatever else query-migrate reports (a capability's own counters).
    out["extra"] = {k: v for k, v in info.items()
                    if k not in ("ram", "status", "total-time", "downtime",
                                 "expected-downtime", "setup-time",
                                 "cpu-throttle-percentage", "blocked-reasons",
                                 "socket-address")}
    out["extra_ram"] = {k: v for k, v in ram.items() if k not in keep and
                        k not in ("remaining", "dirty-sync-missed-zero-copy",
                                  "skipped", "postcopy-vcpu-blocktime")}
    return out


def run_one(qemu, guest, accel, cfg, sc, workdir, defaults, log=print):
    """Migrate once; never raises for a failed migration: see result."""
    os.makedirs(workdir, exist_ok=True)
    res = {
        "config": cfg.name, "scenario": sc.name, "accel": accel,
        "status": "failed", "verified": False, "reason": "",
        "caps": cfg.caps, "params": {}, "postcopy": cfg.postcopy,
        "workdir": workdir,
    }
    # The shared disk: a raw format node over a file node (vm.py).
    ctx = {"workdir": workdir, "disk_node": "shared0"}
    src = dst = None
    t_wall0 = time.monotonic()
    try:
        src = VM(qemu, workdir, "src", guest, accel=accel,
                 mem_mib=defaults["mem_mib"])
        con = src.open_console()
        con.wait_ready(defaults["boot_timeout"])
        res["boot_s"] = round(time.monotonic() - t_wall0, 2)

        missing = [c for c in cfg.caps if c not in known_caps(src)]
        if missing:
            res["status"] = "skipped"
            res["reason"] = "binary lacks capability %s" % ", ".join(missing)
            return res

        if cfg.hook == "diskmap" and not sc.cache_mib:
            res["status"] = "skipped"
            res["reason"] = "%s needs a scenario with page cache" % cfg.name
            return res

        res.update(start_workload(con, sc))
        if cfg.hook == "diskmap":
            res["diskmap"] = start_diskmap(con, sc)
            ctx["disk_map"] = res["diskmap"]["map"]
        params = _fmt_params(cfg.params, ctx)
        src_params = dict(params, **_fmt_params(cfg.src_params, ctx))
        res["params"] = src_params
        pre = verify(con, sc, "source")
        res["verify_source"] = pre
        t_warm = time.monotonic()
        left = sc.warmup_s - (time.monotonic() - t_warm)
        if left > 0:
            time.sleep(left)

        dst = VM(qemu, workdir, "dst", guest, accel=accel,
                 mem_mib=defaults["mem_mib"], incoming=True)
        caps = [{"capability": k, "state": v} for k, v in cfg.caps.items()]
        for vm in (src, dst) if cfg.dest else (src,):
            if caps:
                vm.qmp.cmd("migrate-set-capabilities", {"capabilities": caps})
            p = src_params if vm is src else params
            if p:
                vm.qmp.cmd("migrate-set-parameters", p)
        src.qmp.cmd("migrate-set-parameters", {
            "max-bandwidth": defaults["max_bandwidth"],
            "downtime-limit": defaults["downtime_limit"]})
        dst.qmp.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
        port = None
        for _ in range(50):
            sa = dst.qmp.cmd("query-migrate").get("socket-address") or []
            if sa and sa[0].get("port"):
                port = int(sa[0]["port"])
                break
            time.sleep(0.1)
        if not port:
            raise QMPError("destination reported no listening port")

        offset = guest_clock_offset(con) if sc.dirty_mib else 0.0
        samples = []
        t0 = time.monotonic()
        src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % port})
        postcopy_started = None
        info = {}
        limit = sc.migrate_timeout or defaults["migrate_timeout"]
        while True:
            t = time.monotonic() - t0
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            ram = info.get("ram", {})
            samples.append({
                "t": round(t, 3), "status": st,
                "transferred": ram.get("transferred", 0),
                "remaining": ram.get("remaining", 0),
                "dirty_rate": ram.get("dirty-pages-rate", 0),
                "syncs": ram.get("dirty-sync-count", 0),
                "throttle": info.get("cpu-throttle-percentage", 0),
            })
            if st in ("completed", "failed", "cancelled"):
                break
            if (cfg.postcopy and postcopy_started is None and
                    st == "active" and ram.get("dirty-sync-count", 0) >= 2):
                src.qmp.cmd("migrate-start-postcopy")
                postcopy_started = round(t, 3)
            if t > limit:
                try:
                    src.qmp.cmd("migrate_cancel")
                except QMPError:
                    pass
                res["reason"] = ("timeout: not complete after %d s (%s, "
                                 "%d dirty syncs, %d MB sent)" % (
                                     limit, st, ram.get("dirty-sync-count", 0),
                                     ram.get("transferred", 0) / 1e6))
                res["timeout"] = True
                res["samples"] = samples
                # A cancelled migration must leave the source running with
                # its memory intact: check that too.
                deadline = time.monotonic() + 15
                while (src.qmp.cmd("query-migrate").get("status") not in
                       ("cancelled", "failed", "completed") and
                       time.monotonic() < deadline):
                    time.sleep(0.1)
                after = verify(con, sc, "source after cancel")
                res["verify_source_after_cancel"] = after
                res["source_intact_after_cancel"] = (
                    after["region_ok"] and
                    after["region_sum"] == pre["region_sum"] and
                    after.get("dirtier_ok", True) and
                    after.get("pagecache_ok", True))
                return res
            if not src.alive() or not dst.alive():
                raise QMPError("a QEMU process died during migration")
            time.sleep(SAMPLE_S)
        t_end = time.monotonic()
        res["samples"] = samples
        res["postcopy_started_s"] = postcopy_started
        if st != "completed":
            res["reason"] = "migration %s: %s" % (st, info.get("error-desc", ""))
            return res

        res["total_time_ms"] = info.get("total-time")
        res["downtime_ms"] = info.get("downtime")
        res["setup_time_ms"] = info.get("setup-time")
        res["throttle_max"] = max(s["throttle"] for s in samples)
        # guest CPU time the throttle took, per vCPU: the 100 ms samples'
        # throttle integrated over the migration
        res["throttle_s"] = round(sum(
            (b["t"] - a["t"]) * a["throttle"] / 100.0
            for a, b in zip(samples, samples[1:])), 3)
        res["ram"] = _migrate_stats(info)

        # The destination must be running the guest now.
        deadline = time.monotonic() + 30
        while True:
            if dst.qmp.cmd("query-status").get("status") == "running":
                break
            if time.monotonic() > deadline:
                raise QMPError("destination not running 30 s after completion")
            time.sleep(0.1)

        # A capability's destination-side counters (query-migrate there).
        res["dest_extra"] = {
            k: v for k, v in _migrate_stats(
                dst.qmp.cmd("query-migrate"))["extra"].items()
            if isinstance(v, dict)}

        res["status"] = "unverified"
        dcon = dst.open_console()
        post = verify(dcon, sc, "destination")
        res["verify_dest"] = post
        if cfg.hook == "diskmap":
            # the destination's copy of the guest: did any page move
            # between publishing the map and the switchover?
            res["diskmap_check"] = diskmap_check(dcon)
        if sc.dirty_mib:
            rows = read_dirtier_log(dcon)
            res["guest_tput"] = slowdown(rows, offset, t0, t_end, t_warm)
            res["guest_tput_log"] = rows
        problems = []
        if not post["region_ok"] or post["region_sum"] != pre["region_sum"]:
            problems.append("region checksum %s (source %s, expected %s)" % (
                post["region_sum"], pre["region_sum"], post["region_expect"]))
        if sc.dirty_mib and not post.get("dirtier_ok"):
            problems.append(post.get("dirtier", "dirtier check missing"))
        if sc.cache_mib and not post.get("pagecache_ok"):
            problems.append(post.get("pagecache", "page cache check missing"))
        if problems:
            res["reason"] = "; ".join(problems)
            return res
        res["status"] = "ok"
        res["verified"] = True
        return res
    except Exception as e:  # record it as a failed run, never as a result
        res["reason"] = "%s: %s" % (type(e).__name__, e)
        if not isinstance(e, (QMPError, GuestError, OSError)):
            res["traceback"] = traceback.format_exc()
        for vm in (src, dst):
            if vm and not vm.alive():
                res["reason"] += " [%s exited: %s]" % (
                    vm.name, vm.log_tail(300).strip())
        return res
    finally:
        for vm in (src, dst):
            if vm:
                vm.kill()
        res["wall_s"] = round(time.monotonic() - t_wall0, 2)
