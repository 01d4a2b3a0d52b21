# SPDX-License-Identifier: GPL-2.0-or-later
"""One verified live migration of the benchmark guest between two QEMUs.

run_one() boots a source, starts the scenario's workloads, takes the
verifier's checksums, starts a destination with -incoming defer, sets
capabilities and parameters on both, migrates over loopback TCP while
sampling query-migrate every 100 ms, then asks the destination guest for
the same checksums and for the workload's own throughput log.  The result
says "ok" only when the migration completed AND every check passed;
otherwise status is "failed" or "unverified" with the reason.

Three variants, chosen by the configuration (configs.Config):
transport "file" migrates to a file and starts the destination only
once the source has completed, to load it (mapped-ram); cut sends the
migration through Forwarder, which breaks the network (every connection
through it) at a given byte;
with restart, the broken migration must fail with the source running and
intact, and a fresh destination then takes a migration from zero.  Every
run records the time from migrate to the destination's RESUME event and
the guest's pause (the source's STOP to that RESUME).

Migration runs those steps one method each, in order (Migration.STEPS);
progress.py follows the migration, workload.py talks to the guest's
workloads, forwarder.py is the network that breaks, vm.py the QEMUs."""

import os
import socket
import time
import traceback

from forwarder import Forwarder
from monitor import QMPError
from progress import Watch, follow, migrate_stats
from vm import VM, GuestError
from workload import (diskmap_check, diskmap_follow_line, guest_clock_offset, intact,
                      postcopy_stall, read_dirtier_log, slowdown,
                      start_diskmap, start_workload, verify)


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


def _configure(vm, caps, params):
    if caps:
        vm.qmp.cmd("migrate-set-capabilities", {"capabilities": caps})
    if params:
        vm.qmp.cmd("migrate-set-parameters", params)


def _listen(dst, exit_on_error=True):
    """migrate-incoming on an ephemeral loopback port; return the port."""
    args = {"uri": "tcp:127.0.0.1:0"}
    if not exit_on_error:
        # a failed incoming migration stays to be asked what happened
        args["exit-on-error"] = False
    dst.qmp.cmd("migrate-incoming", args)
    for _ in range(50):
        sa = dst.qmp.cmd("query-migrate").get("socket-address") or []
        if sa and sa[0].get("port"):
            return int(sa[0]["port"])
        time.sleep(0.1)
    raise QMPError("destination reported no listening port")


def _event_time(vm, name):
    """Host wall-clock time of the last QMP event @name seen on @vm."""
    evs = [e for e in vm.qmp.events if e.get("event") == name]
    if not evs:
        return None
    ts = evs[-1].get("timestamp", {})
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6


def _spill(d):
    v = (d or {}).get("shared-file-spill")
    return v if isinstance(v, dict) else None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_out(res, src, con, sc, pre, st, info, limit):
    """Cancel a migration that did not converge; the source must run on
    with its memory intact: check that too."""
    ram = info.get("ram", {})
    try:
        src.qmp.cmd("migrate_cancel")
    except QMPError:
        pass
    res["reason"] = ("timeout: not complete after %d s (%s, %d dirty syncs, "
                     "%d MB sent)" % (limit, st,
                                      ram.get("dirty-sync-count", 0),
                                      ram.get("transferred", 0) / 1e6))
    res["timeout"] = True
    deadline = time.monotonic() + 15
    while (src.qmp.cmd("query-migrate").get("status") not in
           ("cancelled", "failed", "completed") and
           time.monotonic() < deadline):
        time.sleep(0.1)
    after = verify(con, sc, "source after cancel")
    res["verify_source_after_cancel"] = after
    res["source_intact_after_cancel"] = intact(pre, after)
    return res


def _postcopy_cut_check(res, cfg):
    """A postcopy cut run counts only if the cut did what it claims:
    the forwarder cut after the switchover; without spill, both sides
    paused and recovered; with spill, neither paused and it failed over
    once on each side, with pages through the file."""
    pc = res["postcopy_cut"]
    first = pc["first_status_s"]
    if not res["forwarder"]["cut"]:
        return "the forwarder did not cut"
    if cfg.caps.get("postcopy-preempt") and \
            res["forwarder"].get("connections", 0) < 2:
        # the preempt channel must have gone through it, and been cut
        return ("the preempt channel did not go through the forwarder "
                "(%s connection(s))" % res["forwarder"].get("connections"))
    if cfg.recover_after:
        if pc.get("src_paused_s") is None or pc.get("dst_paused_s") is None:
            return "did not pause on both sides after the cut"
        return ""
    if "postcopy-paused" in first["src"] or "postcopy-paused" in first["dst"]:
        return "paused (postcopy-paused) with shared-file-spill on"
    src, dst = (_spill(x) or {} for x in (res["ram"]["extra"],
                                          res["dest_extra"]))
    if [src.get("failovers"), dst.get("failovers")] != [1, 1]:
        return ("not through the file: failovers source %s destination %s"
                % (src.get("failovers"), dst.get("failovers")))
    return ""


class Migration:
    """One run: its configuration, its QEMUs and forwarders, what it has
    measured so far (res, the result) and the state the steps pass on.

    Each step returns True to go on, or False when the run ends there
    (res says how: skipped, failed, timed out); an exception ends it as
    a failure (run_one)."""

    STEPS = ("boot_source", "start_workloads", "prepare", "migrate",
             "after_cut", "restart", "source_completed", "record_source",
             "load_file", "destination_running", "verify_destination",
             "judge")

    def __init__(self, qemu, guest, accel, cfg, sc, workdir, defaults, cut):
        self.qemu, self.guest, self.accel = qemu, guest, accel
        self.cfg, self.sc, self.workdir = cfg, sc, workdir
        self.defaults, self.cut = defaults, cut
        self.res = {
            "config": cfg.name, "scenario": sc.name, "accel": accel,
            "status": "failed", "verified": False, "reason": "",
            "caps": cfg.caps, "params": {}, "postcopy": cfg.postcopy,
            "workdir": workdir,
        }
        # The shared disk: a raw format node over a file node (vm.py).
        self.ctx = {"workdir": workdir, "disk_node": "shared0"}
        self.src = self.dst = self.fwd = self.fwd2 = None
        self.vms = []
        self.watch = self.pc = None
        # Harness time between the attempts of a restart (checking the
        # source): not part of the migration's time.
        self.excluded = 0.0
        self.t_wall0 = time.monotonic()

    def run(self):
        for step in self.STEPS:
            if not getattr(self, step)():
                return

    def close(self):
        """Stop the forwarders and every QEMU, whatever state they are in."""
        if self.fwd:
            self.fwd.close()
        if self.fwd2:
            self.fwd2.close()
        for vm in self.vms:
            vm.kill()

    def start_vm(self, name, **kw):
        if self.sc.slow_disk_ms:
            kw["extra"] = list(kw.get("extra", ())) + [
                "-blockdev", "driver=null-co,node-name=slow0,size=1073741824,"
                "read-zeroes=on,latency-ns=%d" % (self.sc.slow_disk_ms *
                                                  1000000),
                "-device", "virtio-blk-pci,drive=slow0"]
        vm = VM(self.qemu, self.workdir, name, self.guest, accel=self.accel,
                mem_mib=self.sc.mem_mib or self.defaults["mem_mib"],
                vcpus=self.sc.vcpus, **kw)
        self.vms.append(vm)
        return vm

    def timed_out(self, st, info):
        _timed_out(self.res, self.src, self.con, self.sc, self.pre, st, info,
                   self.limit)
        return False

    def boot_source(self):
        cfg, res = self.cfg, self.res
        self.src = self.start_vm("src")
        self.con = self.src.open_console()
        self.con.wait_ready(self.defaults["boot_timeout"])
        res["boot_s"] = round(time.monotonic() - self.t_wall0, 2)

        missing = [c for c in cfg.caps if c not in known_caps(self.src)]
        if missing:
            res["status"] = "skipped"
            res["reason"] = "binary lacks capability %s" % ", ".join(missing)
            return False

        if cfg.hook.startswith("diskmap") and not self.sc.cache_mib:
            res["status"] = "skipped"
            res["reason"] = "%s needs a scenario with page cache" % cfg.name
            return False
        if cfg.cut and not (self.cut and self.cut.get("bytes")):
            raise ValueError("%s needs a cut byte count" % cfg.name)
        return True

    def start_workloads(self):
        """The workloads, the parameters that name what they published,
        the source's checks, the scenario's warm-up."""
        cfg, sc, res, ctx = self.cfg, self.sc, self.res, self.ctx
        if cfg.learn:
            # the source learns from the reads that fill the page cache
            _configure(self.src, [{"capability": k, "state": v}
                                  for k, v in cfg.caps.items()],
                       _fmt_params(cfg.params, ctx))
        if cfg.hook == "diskmap-follow":
            # the daemon: started before the fill, it follows the cache
            res["diskmap"] = start_diskmap(self.con, sc, follow_s=1)
            ctx["disk_map"] = res["diskmap"]["map"]
        res.update(start_workload(self.con, sc))
        if cfg.hook == "diskmap":
            res["diskmap"] = start_diskmap(self.con, sc)
            ctx["disk_map"] = res["diskmap"]["map"]
        self.params = _fmt_params(cfg.params, ctx)
        self.src_params = dict(self.params,
                               **_fmt_params(cfg.src_params, ctx))
        res["params"] = self.src_params
        self.pre = verify(self.con, sc, "source")
        res["verify_source"] = self.pre
        self.t_warm = time.monotonic()
        left = sc.warmup_s - (time.monotonic() - self.t_warm)
        if left > 0:
            time.sleep(left)
        if cfg.hook == "diskmap-follow":
            res["diskmap_follow"] = diskmap_follow_line(self.con)
        return True

    def prepare(self):
        """The destination (unless it loads a file later), capabilities
        and parameters on both sides, the link's speed, the URI."""
        cfg, res, src = self.cfg, self.res, self.src
        self.caps = [{"capability": k, "state": v}
                     for k, v in cfg.caps.items()]
        bandwidth = cfg.max_bandwidth or self.defaults["max_bandwidth"]
        res["max_bandwidth"] = bandwidth
        if cfg.transport == "file":
            # QEMU's file migration: no destination until the file is
            # complete.
            self.path = os.path.join(self.workdir, "mapped.bin")
            self.uri = "file:" + self.path
        else:
            # a postcopy recovery: migrate-recover out of band, and the
            # destination's MIGRATION events (its main thread, hence
            # in-band QMP, may be stuck behind a vCPU waiting for a page)
            self.dst = self.start_vm("dst", incoming=True,
                                     qmp_oob=bool(cfg.recover_after))
            if cfg.dest:
                _configure(self.dst, self.caps, self.params)
            if cfg.recover_after:
                _configure(self.dst,
                           [{"capability": "events", "state": True}], None)
        _configure(src, self.caps, self.src_params)
        src.qmp.cmd("migrate-set-parameters", {
            "max-bandwidth": bandwidth,
            "downtime-limit": self.defaults["downtime_limit"]})
        if cfg.postcopy_link:
            src.qmp.cmd("migrate-set-parameters",
                        {"max-postcopy-bandwidth": bandwidth})
            res["max_postcopy_bandwidth"] = bandwidth
        if self.dst is not None:
            port = _listen(self.dst,
                           exit_on_error=not (cfg.cut or cfg.cut_on))
            self.uri = "tcp:127.0.0.1:%d" % port
            if cfg.cut:
                res["cut"] = dict(self.cut)
                self.fwd = Forwarder(port, cut=int(self.cut["bytes"]))
                self.uri = "tcp:127.0.0.1:%d" % self.fwd.port
            elif cfg.cut_on:
                # the harness cuts it (Watch), at the switchover
                self.fwd = Forwarder(port)
                self.uri = "tcp:127.0.0.1:%d" % self.fwd.port
        return True

    def migrate(self):
        """migrate, followed to its end (or to a pause after a cut)."""
        cfg, sc, res = self.cfg, self.sc, self.res
        self.offset = guest_clock_offset(self.con) if sc.dirty_mib else 0.0
        self.samples = []
        res["samples"] = self.samples
        self.limit = sc.migrate_timeout or self.defaults["migrate_timeout"]
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        if cfg.cut_on:
            # stop at a pause: expected without spill (then recover),
            # a failure with it
            self.watch = Watch(cut=self.fwd.cut_now, cut_on=cfg.cut_on,
                               stop_src=("postcopy-paused",),
                               stop_dst=("postcopy-paused", "failed"),
                               dst_after_cut=not cfg.recover_after)
        self.src.qmp.cmd("migrate", {"uri": self.uri})
        st, info, self.postcopy_started, timed_out = follow(
            self.src, self.dst, cfg, self.t0, self.limit, self.samples,
            watch=self.watch)
        if self.fwd:
            res["forwarder"] = self.fwd.stats(self.t0)
        if timed_out:
            return self.timed_out(st, info)
        self.st, self.info = st, info
        return True

    def after_cut(self):
        """A cut at the postcopy switchover: recover without spill; with
        it, any pause or failure ends the run."""
        cfg, res, watch = self.cfg, self.res, self.watch
        if not watch:
            return True
        self.pc = res["postcopy_cut"] = {"cut_s": watch.cut_s,
                                         "at_cut": watch.at_cut}
        if watch.cut_s is None:
            res["reason"] = ("the source never reported %s: no cut "
                             "(%s)" % (cfg.cut_on, self.st))
            return False
        if cfg.recover_after:
            r = self.recover()
            if r is None:
                return False
            st, info, timed_out = r
            if timed_out:
                return self.timed_out(st, info)
            self.st, self.info = st, info
        elif self.st != "completed":
            d = watch.dst_info
            paused = ("postcopy-paused" in watch.first["src"] or
                      "postcopy-paused" in watch.first["dst"])
            res["reason"] = (
                "after the cut with shared-file-spill the migration "
                "%s: source %s (%s), destination %s (%s)" % (
                    "paused" if paused else "did not complete",
                    self.st, self.info.get("error-desc", ""),
                    d.get("status"), d.get("error-desc", "")))
            res["paused_with_spill"] = paused
            return False
        return True

    def recover(self):
        """Postcopy cut without spill: both sides must pause (the source's
        query-migrate, the destination's MIGRATION event: its in-band QMP
        may be stuck); cfg.recover_after seconds after the cut (the
        network is back) migrate-recover on the destination (out of band)
        to a new port, through a new forwarder (no cut), and migrate with
        resume on the source; follow to the end.  Returns (status, info,
        timed out), or None with res["reason"]."""
        src, dst, watch, t0 = self.src, self.dst, self.watch, self.t0
        pc, res, st = self.pc, self.res, self.st

        def dst_event(status):
            return lambda e: (e.get("event") == "MIGRATION" and
                              e.get("data", {}).get("status") == status)

        def ev_s(e):
            ts = e.get("timestamp", {})
            return round(ts.get("seconds", 0) +
                         ts.get("microseconds", 0) / 1e6 - self.t0_wall, 3)

        deadline = time.monotonic() + 30
        while st != "postcopy-paused":
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            watch.seen("src", st, round(time.monotonic() - t0, 3))
            if st in ("failed", "completed", "cancelled") or \
                    time.monotonic() > deadline:
                res["reason"] = ("after the cut the source is %s (%s), not "
                                 "postcopy-paused" % (
                                     st, info.get("error-desc", "")))
                return None
            time.sleep(0.02)
        pc["src_paused_s"] = watch.first["src"].get("postcopy-paused")
        e = dst.qmp.wait_event(
            lambda e: dst_event("postcopy-paused")(e) or
            dst_event("failed")(e) or dst_event("completed")(e),
            max(1.0, deadline - time.monotonic()))
        if e is None or e["data"]["status"] != "postcopy-paused":
            res["reason"] = ("after the cut the source paused, the "
                             "destination %s" % (
                                 "reported no MIGRATION event in 30 s"
                                 if e is None else
                                 "went %s" % e["data"]["status"]))
            return None
        pc["dst_paused_s"] = ev_s(e)
        watch.seen("dst", "postcopy-paused", pc["dst_paused_s"])
        # the network comes back
        left = t0 + watch.cut_s + self.cfg.recover_after - time.monotonic()
        if left > 0:
            time.sleep(left)
        port = _free_port()
        pc["recover_s"] = round(time.monotonic() - t0, 3)
        dst.qmp.cmd("migrate-recover", {"uri": "tcp:127.0.0.1:%d" % port},
                    oob=True)
        self.fwd2 = Forwarder(port)
        pc["resume_s"] = round(time.monotonic() - t0, 3)
        src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % self.fwd2.port,
                                "resume": True})
        # the destination is asked again once the source completed
        w2 = Watch(dst_after_cut=False)
        w2.cut_s = watch.cut_s
        w2.first = watch.first
        st, info, _, timed_out = follow(
            src, dst, self.cfg, t0, self.limit, self.samples, watch=w2,
            postcopy_started=self.postcopy_started)
        pc["forwarder2"] = self.fwd2.stats(t0)
        # back to postcopy-active after the recovery: the source's first
        # sample in that state after resume
        pc["resumed_active_s"] = next(
            (x["t"] for x in self.samples if x["t"] >= pc["resume_s"] and
             x["status"] == "postcopy-active"), None)
        return st, info, timed_out

    def restart(self):
        """precopy-cut50-restart: the cut must have failed the first
        migration with the source running intact; then a fresh
        destination and a migration from zero."""
        res, src, fwd, t0 = self.res, self.src, self.fwd, self.t0
        if not self.cfg.restart:
            return True
        fwd.close()
        res["forwarder"] = fwd.stats(t0)
        a1 = {"status": self.st, "error": self.info.get("error-desc", ""),
              "failed_s": round(time.monotonic() - t0, 3),
              "transferred": max(s["transferred"] for s in self.samples),
              "wire_bytes": fwd.bytes}
        res["attempt1"] = a1
        a1["dest_status"] = (self.dst.qmp.cmd("query-migrate").get("status")
                             if self.dst.alive() else "exited")
        if self.st != "failed":
            res["reason"] = ("the cut did not break the first migration "
                             "(%s, forwarder cut %s)" % (
                                 self.st, res["forwarder"]["cut"]))
            return False
        # Today's only option: the guest runs on at the source; check
        # that, then a fresh destination and a migration from zero.
        t_x = time.monotonic()
        status = src.qmp.cmd("query-status").get("status")
        after = verify(self.con, self.sc, "source after the cut")
        res["verify_source_after_failure"] = after
        res["source_running_after_failure"] = status == "running"
        res["source_intact_after_failure"] = (
            status == "running" and intact(self.pre, after))
        self.dst.kill()
        self.vms.remove(self.dst)
        if not res["source_intact_after_failure"]:
            res["reason"] = ("after the cut the source is not running "
                             "with its memory intact (%s)" % status)
            return False
        self.excluded = time.monotonic() - t_x
        res["restart_excluded_s"] = round(self.excluded, 3)
        self.dst = self.start_vm("dst2", incoming=True)
        if self.cfg.dest:
            _configure(self.dst, self.caps, self.params)
        port = _listen(self.dst)
        res["restart_at_s"] = round(time.monotonic() - t0 - self.excluded, 3)
        src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % port})
        # sample times go on from the first migrate, less the check
        self.st, self.info, self.postcopy_started, timed_out = follow(
            src, self.dst, self.cfg, t0 + self.excluded, self.limit,
            self.samples)
        if timed_out:
            return self.timed_out(self.st, self.info)
        return True

    def source_completed(self):
        """The source must have completed; after a postcopy cut, the
        destination too."""
        res, dst = self.res, self.dst
        self.t_end = time.monotonic()
        res["postcopy_started_s"] = self.postcopy_started
        if self.st != "completed":
            res["reason"] = "migration %s: %s" % (
                self.st, self.info.get("error-desc", ""))
            if dst is not None and dst.alive():
                d = dst.qmp.cmd("query-migrate")
                res["reason"] += " (destination: %s %s)" % (
                    d.get("status"), d.get("error-desc", ""))
            return False
        if not self.watch:
            return True
        # the destination completes once it has every page (and, with
        # shared-file-spill, once the source committed the file)
        pc = self.pc
        deadline = time.monotonic() + 30
        while True:
            d = dst.qmp.cmd("query-migrate")
            if d.get("status") == "completed":
                break
            if d.get("status") in ("failed", "cancelled") or \
                    time.monotonic() > deadline:
                res["reason"] = ("source completed, destination %s: %s"
                                 % (d.get("status"),
                                    d.get("error-desc", "")))
                return False
            time.sleep(0.02)
        pc["dst_completed_s"] = round(time.monotonic() - self.t0, 3)
        if self.cfg.recover_after:
            # the destination's MIGRATION events, read since
            ev = [e for e in dst.qmp.events
                  if e.get("event") == "MIGRATION" and
                  e["data"].get("status") == "postcopy-active"]
            if ev:
                ts = ev[-1]["timestamp"]
                pc["dst_resumed_active_s"] = round(
                    ts["seconds"] + ts["microseconds"] / 1e6 - self.t0_wall,
                    3)
        pc["first_status_s"] = self.watch.first
        pc["src_complete_s"] = self.info.get("total-time", 0) / 1000
        pc["cut_to_complete_s"] = round(
            pc["src_complete_s"] - self.watch.cut_s, 3)
        return True

    def record_source(self):
        """What the source's last query-migrate says."""
        res, info, samples = self.res, self.info, self.samples
        res["total_time_ms"] = info.get("total-time")
        res["src_total_time_ms"] = info.get("total-time")
        res["downtime_ms"] = info.get("downtime")
        res["setup_time_ms"] = info.get("setup-time")
        res["throttle_max"] = max(s["throttle"] for s in samples)
        # guest CPU time the throttle took, per vCPU: the 100 ms samples'
        # throttle integrated over the migration
        res["throttle_s"] = round(sum(
            (b["t"] - a["t"]) * a["throttle"] / 100.0
            for a, b in zip(samples, samples[1:])), 3)
        res["ram"] = migrate_stats(info)
        if self.fwd:
            res["forwarder"] = self.fwd.stats(self.t0)
        return True

    def load_file(self):
        """The source has completed (its guest paused): now the
        destination, which loads the file."""
        res = self.res
        if self.cfg.transport != "file":
            return True
        t_d = time.monotonic()
        dst = self.dst = self.start_vm("dst", incoming=True)
        if self.cfg.dest:
            _configure(dst, self.caps, self.params)
        t_in = time.monotonic()
        res["dst_start_ms"] = round((t_in - t_d) * 1000)
        dst.qmp.cmd("migrate-incoming", {"uri": self.uri})
        deadline = t_in + self.limit
        while True:
            d = dst.qmp.cmd("query-migrate")
            if d.get("status") == "completed":
                break
            if d.get("status") in ("failed", "cancelled"):
                res["reason"] = "destination load %s: %s" % (
                    d.get("status"), d.get("error-desc", ""))
                return False
            if not dst.alive():
                raise QMPError("destination exited loading the file")
            if time.monotonic() > deadline:
                raise QMPError("destination did not load the file "
                               "within %d s" % self.limit)
            time.sleep(0.02)
        res["dst_load_ms"] = round((time.monotonic() - t_in) * 1000)
        if dst.qmp.cmd("query-status").get("status") != "running":
            dst.qmp.cmd("cont")
            res["dst_cont"] = True
        fst = os.stat(self.path)
        res["file_size"] = fst.st_size
        res["file_allocated"] = fst.st_blocks * 512
        return True

    def destination_running(self):
        """The destination must be running the guest now: when it started
        to, the guest's pause, the bytes that went where."""
        cfg, res, src, dst = self.cfg, self.res, self.src, self.dst
        deadline = time.monotonic() + 30
        while True:
            if dst.qmp.cmd("query-status").get("status") == "running":
                break
            if time.monotonic() > deadline:
                raise QMPError("destination not running 30 s after "
                               "completion")
            time.sleep(0.02)
        t_seen = time.monotonic()
        # Time to the destination running: from migrate to its RESUME
        # event (QEMU's timestamp, host wall clock); the guest's pause:
        # the source's STOP to the destination's RESUME.
        t_resume = _event_time(dst, "RESUME")
        self.t_stop = t_stop = _event_time(src, "STOP")
        if t_resume is not None:
            res["running_ms"] = round(
                (t_resume - self.t0_wall - self.excluded) * 1000)
        else:
            res["running_ms"] = round(
                (t_seen - self.t0 - self.excluded) * 1000)
            res["running_by"] = "poll"
        if t_resume is not None and t_stop is not None:
            res["paused_ms"] = round((t_resume - t_stop) * 1000)
        if cfg.postcopy and t_stop is not None:
            # the source's STOP (the switchover), since migrate
            res["stop_s"] = round(t_stop - self.t0_wall, 3)
        if cfg.transport == "file" or cfg.restart:
            # the source's total-time is only a part of these
            res["total_time_ms"] = res["running_ms"]
        stream = res["ram"].get("transferred", 0)
        if cfg.transport == "file":
            res["wire_bytes"] = 0
            res["file_bytes"] = stream
        elif cfg.restart:
            res["wire_bytes"] = res["attempt1"]["wire_bytes"] + stream
            res["stream_bytes"] = res["attempt1"]["transferred"] + stream
        elif self.fwd:
            res["wire_bytes"] = self.fwd.bytes
            if res.get("postcopy_cut", {}).get("forwarder2"):
                # and after the recovery
                res["wire_bytes"] += res["postcopy_cut"]["forwarder2"][
                    "bytes"]
        sp = _spill(res["ram"]["extra"])
        if sp:
            res["file_bytes"] = sp.get("file-bytes")

        # A capability's destination-side counters (query-migrate there).
        res["dest_extra"] = {
            k: v for k, v in migrate_stats(
                dst.qmp.cmd("query-migrate"))["extra"].items()
            if isinstance(v, dict)}
        return True

    def verify_destination(self):
        """The destination guest's checks, the diskmap hook's check, the
        dirtier's throughput (and stall, in postcopy)."""
        cfg, sc, res = self.cfg, self.sc, self.res
        res["status"] = "unverified"
        dcon = self.dst.open_console()
        self.post = verify(dcon, sc, "destination")
        res["verify_dest"] = self.post
        if cfg.hook == "diskmap":
            # the destination's copy of the guest: did any page move
            # between publishing the map and the switchover?
            res["diskmap_check"] = diskmap_check(dcon)
        if sc.dirty_mib:
            rows = read_dirtier_log(dcon)
            res["guest_tput"] = slowdown(rows, self.offset, self.t0,
                                         self.t_end, self.t_warm)
            res["guest_tput_log"] = rows
            if cfg.postcopy and self.t_stop is not None:
                self.postcopy_stall(dcon)
        return True

    def postcopy_stall(self, dcon):
        """The stall: guest time stands still from the source's STOP to
        the destination's RESUME, so measure the destination's offset
        too."""
        res, t0, offset = self.res, self.t0, self.offset
        off_dst = guest_clock_offset(dcon)
        g_switch = self.t_stop - self.t0_wall + t0 + offset
        src_done = self.info.get("total-time", 0) / 1000
        g_done = t0 + src_done + off_dst
        # the window ends at the first line 1 s after completion
        left = t0 + src_done + 2.3 - time.monotonic()
        if left > 0:
            time.sleep(left)
        rows3 = read_dirtier_log(dcon, pages=True)
        res["guest_log_pages"] = [r[2] for r in rows3]
        res["guest_stall"] = postcopy_stall(
            rows3, res["guest_tput"]["before_mbps"], offset, off_dst,
            g_switch, g_done, t0)
        if res["guest_stall"]:
            res["guest_stall"]["g_switch"] = round(g_switch, 3)
            res["guest_stall"]["g_done"] = round(g_done, 3)
        res["guest_clock"] = {
            "offset_src": round(offset, 3),
            "offset_dst": round(off_dst, 3),
            # the guest's clock stood still this long minus the
            # guest's pause: ~0 if it stops exactly when paused
            "stood_still_minus_paused_s": round(
                offset - off_dst - res.get("paused_ms", 0) / 1000,
                3) if "paused_ms" in res else None}

    def judge(self):
        """ok only if the memory is the source's, and a cut did what its
        configuration claims."""
        cfg, sc, res, pre, post = self.cfg, self.sc, self.res, self.pre, \
            self.post
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
            return False
        if cfg.cut_on:
            why = _postcopy_cut_check(res, cfg)
            if why:
                res["status"] = "failed"
                res["reason"] = "completed and verified, but " + why
                return False
        if cfg.cut and not cfg.restart:
            # it must have completed through the file
            fo = [(_spill(x) or {}).get("failovers")
                  for x in (res["ram"]["extra"], res["dest_extra"])]
            if not res["forwarder"]["cut"] or fo != [1, 1]:
                res["status"] = "failed"
                res["reason"] = ("completed and verified, but not through "
                                 "the file: forwarder cut %s, failovers "
                                 "source %s destination %s" % (
                                     res["forwarder"]["cut"], fo[0], fo[1]))
                return False
            # with multifd, its channels went through their files too
            mfo = [(_spill(x) or {}).get("multifd-failovers") or 0
                   for x in (res["ram"]["extra"], res["dest_extra"])]
            if cfg.caps.get("multifd") and min(mfo) < 1:
                res["status"] = "failed"
                res["reason"] = ("completed and verified, but no multifd "
                                 "channel went through its file: multifd "
                                 "failovers source %s destination %s" % (
                                     mfo[0], mfo[1]))
                return False
        res["status"] = "ok"
        res["verified"] = True
        return True


def run_one(qemu, guest, accel, cfg, sc, workdir, defaults, log=print,
            cut=None):
    """Migrate once; never raises for a failed migration: see result.

    @cut: for a configuration with cfg.cut, {"bytes": n, ...}: where the
    forwarder breaks the connection (migbench computes it from the
    precopy runs of the same scenario); stored with the result."""
    os.makedirs(workdir, exist_ok=True)
    m = Migration(qemu, guest, accel, cfg, sc, workdir, defaults, cut)
    res = m.res
    try:
        m.run()
        return res
    except Exception as e:  # record it as a failed run, never as a result
        res["reason"] = "%s: %s" % (type(e).__name__, e)
        if not isinstance(e, (QMPError, GuestError, OSError)):
            res["traceback"] = traceback.format_exc()
        for vm in m.vms:
            if not vm.alive():
                res["reason"] += " [%s exited: %s]" % (
                    vm.name, vm.log_tail(300).strip())
        return res
    finally:
        m.close()
        res["wall_s"] = round(time.monotonic() - m.t_wall0, 2)
