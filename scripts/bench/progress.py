# SPDX-License-Identifier: GPL-2.0-or-later
"""Following a migration from the harness: query-migrate sampled every
100 ms (every 5 ms near a postcopy switchover that the harness cuts),
postcopy started once the first pass is done, and the counters that a
completed migration reports."""

import time

from monitor import QMPError

SAMPLE_S = 0.1


def migrate_stats(info):
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


class Watch:
    """What follow() does besides sampling the source, for a configuration
    that cuts the network at a postcopy switchover (Config.cut_on): also
    sample the destination's status, call @cut as soon as the source
    reports @cut_on (polling every 5 ms from migrate-start-postcopy until
    then), and return as soon as the source reports a status in @stop_src
    or the destination one in @stop_dst.  Keeps when each side first
    showed each status (seconds since migrate)."""

    def __init__(self, cut=None, cut_on="", stop_src=(), stop_dst=(),
                 dst_after_cut=True):
        self.cut, self.cut_on = cut, cut_on
        self.stop_src, self.stop_dst = stop_src, stop_dst
        # False: stop asking the destination once cut (a destination
        # without its pages may not answer in-band until it has them)
        self.dst_after_cut = dst_after_cut
        self.cut_s = None
        self.at_cut = None
        self.first = {"src": {}, "dst": {}}
        self.dst_info = {}

    def seen(self, side, st, t):
        self.first[side].setdefault(st, t)


def follow(src, dst, cfg, t0, limit, samples, watch=None,
           postcopy_started=None):
    """Sample the source's query-migrate every 100 ms until the migration
    ends or @limit seconds pass.  Returns (status, info, postcopy start,
    timed out).  @watch: see Watch."""
    t_start = time.monotonic()
    while True:
        now = time.monotonic()
        t = now - t0
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
            "zero": ram.get("duplicate", 0),
        })
        if watch:
            if watch.cut and watch.cut_s is None and st == watch.cut_on:
                watch.cut()
                watch.cut_s = round(time.monotonic() - t0, 3)
                watch.at_cut = {"status": st, "t": round(t, 3),
                                "transferred": ram.get("transferred", 0),
                                "remaining": ram.get("remaining", 0)}
            watch.seen("src", st, round(t, 3))
            dst_st = None
            if watch.dst_after_cut or watch.cut_s is None:
                d = dst.qmp.cmd("query-migrate")
                dst_st = d.get("status")
                watch.dst_info = d
                samples[-1]["dst_status"] = dst_st
                watch.seen("dst", dst_st, round(time.monotonic() - t0, 3))
            if st in watch.stop_src or dst_st in watch.stop_dst:
                return st, info, postcopy_started, False
        if st in ("completed", "failed", "cancelled"):
            return st, info, postcopy_started, False
        if (cfg.postcopy and postcopy_started is None and
                st == "active" and (cfg.postcopy_early or
                                    ram.get("dirty-sync-count", 0) >= 2)):
            src.qmp.cmd("migrate-start-postcopy")
            postcopy_started = round(t, 3)
        if now - t_start > limit:
            return st, info, postcopy_started, True
        if not src.alive() or (dst is not None and not dst.alive()):
            raise QMPError("a QEMU process died during migration")
        if (watch and watch.cut and watch.cut_s is None and
                postcopy_started is not None):
            time.sleep(0.005)   # the switchover is near: cut right after
        else:
            time.sleep(SAMPLE_S)
