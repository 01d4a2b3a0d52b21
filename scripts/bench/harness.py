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
the guest's pause (the source's STOP to that RESUME)."""

import os
import re
import socket
import threading
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


class Forwarder:
    """A TCP forwarder between source and destination: a broken network.

    Listens on 127.0.0.1 (an ephemeral port) and accepts any number of
    connections until it is closed or cut: a migration may open more than
    one to the same port (postcopy-preempt's preempt channel beside the
    main stream).  Each accepted connection is connected, in the order
    accepted, to the destination's port (on @dst_host, 127.0.0.1 unless
    told otherwise) and pumped both ways in two
    threads of its own; the byte counts are of all connections together.
    The first connection must come within @timeout seconds (else error).

    It caps nothing: the link's speed is the source's max-bandwidth (and
    max-postcopy-bandwidth), which QEMU accounts over all of its channels
    together (though it sends postcopy-preempt's requested pages without
    waiting for that budget).

    With @cut, once that many bytes from source to destination have
    passed, counted over all connections, it shuts down and closes every
    connection and the listening socket (the source's next writes fail,
    the destination reads the end of each stream): the network breaks at
    an exact byte of the stream (with one connection, as the byte-count
    cuts use it; with several, at the byte where their sum reaches @cut).
    cut_now() breaks it the same way whenever the harness decides.  After
    a cut a new connection is refused (the listening socket is closed;
    one accepted in the same instant is closed at once).  A connection
    that fails by itself (not cut, not closed) records the first error and
    is closed, alone; the others go on."""

    BUF = 1 << 20

    def __init__(self, dst_port, cut=None, timeout=60.0,
                 dst_host="127.0.0.1"):
        self.dst_port = dst_port
        self.dst_host = dst_host
        self.cut = cut
        self.timeout = timeout
        self.bytes = 0          # source -> destination, delivered
        self.bytes_in = 0       # source -> destination, received
        self.bytes_back = 0     # destination -> source
        self.connections = 0    # accepted and connected on
        self.t_first = self.t_cut = self.t_end = None
        self.cut_done = False
        self.error = None
        self._claimed = 0       # bytes a pump took on to send (<= cut)
        self._conns = []        # [source side, destination side] sockets
        self._active = 0
        self._closed = False
        self._lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self._thr = threading.Thread(target=self._run, daemon=True,
                                     name="forwarder")
        self._thr.start()

    def _set_error(self, msg):
        with self._lock:
            if self.error is None and not self.cut_done and \
                    not self._closed:
                self.error = msg

    def _run(self):
        """Accept connections until closed or cut."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                # short waits: a close() from another thread is noticed
                self.lsock.settimeout(0.2)
                a, _ = self.lsock.accept()
            except socket.timeout:
                if self._closed or self.cut_done:
                    return
                if not self.connections and time.monotonic() > deadline:
                    self._set_error("forwarder: timed out")
                    self._close_listener()
                    return
                continue
            except OSError as e:
                self._set_error("forwarder: %s" % e)
                return
            b = None
            try:
                a.settimeout(None)
                b = socket.create_connection((self.dst_host, self.dst_port),
                                             timeout=self.timeout)
                b.settimeout(None)
                for sk in (a, b):
                    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as e:
                self._set_error("forwarder: %s" % e)
                self._close_pair([a, b])
                continue
            with self._lock:
                refuse = self._closed or self.cut_done
                if not refuse:
                    pair = [a, b]
                    self._conns.append(pair)
                    self._active += 1
                    self.connections += 1
            if refuse:
                # accepted in the instant of a cut: the network is broken
                self._close_pair([a, b])
                return
            threading.Thread(target=self._serve, args=(pair,), daemon=True,
                             name="forwarder-%d" % self.connections).start()

    def _serve(self, pair):
        back = threading.Thread(target=self._pump_back, args=(pair,),
                                daemon=True, name="forwarder-back")
        back.start()
        self._pump(pair)
        back.join(timeout=5)
        with self._lock:
            self._active -= 1
            if not self._active:
                self.t_end = time.monotonic()

    def _pump(self, pair):
        a, b = pair
        buf = bytearray(self.BUF)
        view = memoryview(buf)
        try:
            while True:
                n = a.recv_into(buf)
                if not n:
                    self._shut(b, socket.SHUT_WR)
                    return
                with self._lock:
                    if self.cut_done:
                        return
                    if self.t_first is None:
                        self.t_first = time.monotonic()
                    self.bytes_in += n
                    k, last = n, False
                    if self.cut is not None:
                        k = min(n, self.cut - self._claimed)
                        last = k > 0 and self._claimed + k >= self.cut
                    self._claimed += k
                if k <= 0:
                    # another connection's pump reached the cut: it cuts
                    return
                b.sendall(view[:k], socket.MSG_NOSIGNAL)
                with self._lock:
                    self.bytes += k
                if last:
                    self._cut()
                    return
        except OSError as e:
            self._set_error("forwarder: %s" % e)
            self._close_pair(pair)

    def _cut(self):
        with self._lock:
            if self.cut_done:
                return False
            self.t_cut = time.monotonic()
            self.cut_done = True
        self.close()
        return True

    def cut_now(self):
        """Break every connection now, wherever the stream is (the harness
        decides when, e.g. at a postcopy switchover)."""
        if self._cut():
            self.cut = self.bytes

    def _pump_back(self, pair):
        a, b = pair
        try:
            while True:
                data = b.recv(65536)
                if not data:
                    self._shut(a, socket.SHUT_WR)
                    return
                with self._lock:
                    self.bytes_back += len(data)
                a.sendall(data, socket.MSG_NOSIGNAL)
        except OSError:
            pass

    @staticmethod
    def _shut(sk, how):
        try:
            sk.shutdown(how)
        except OSError:
            pass

    def _close_pair(self, pair):
        for sk in pair:
            if sk is not None:
                self._shut(sk, socket.SHUT_RDWR)
                try:
                    sk.close()
                except OSError:
                    pass

    def _close_listener(self):
        # shutdown wakes an accept() blocked in another thread (Linux)
        self._shut(self.lsock, socket.SHUT_RDWR)
        try:
            self.lsock.close()
        except OSError:
            pass

    def close(self):
        """Shut down and close every connection and stop listening; a
        connection attempted from now on is refused."""
        with self._lock:
            self._closed = True
            pairs = list(self._conns)
        for pair in pairs:
            self._close_pair(pair)
        self._close_listener()

    def stats(self, t0):
        """What went through, times relative to @t0 (host monotonic)."""
        rel = (lambda t: None if t is None else round(t - t0, 3))
        span = ((self.t_cut or self.t_end or time.monotonic()) -
                self.t_first) if self.t_first else None
        return {
            "cut_at": self.cut, "cut": self.cut_done,
            "bytes": self.bytes, "bytes_in": self.bytes_in,
            "bytes_back": self.bytes_back,
            "connections": self.connections,
            "first_byte_s": rel(self.t_first), "cut_s": rel(self.t_cut),
            # throughput it passed until the cut (or the end): a forwarder
            # that limited the migration would show here
            "mib_s": round(self.bytes / span / 1048576, 1)
            if span else None,
            "error": self.error,
        }


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
        con.run("dirtier -m %d -r %g -p %s%s -s 777 -l %s/dirtier.log "
                "-v %s/dirtier.ver >%s/dirtier.out 2>&1 & echo $! >%s/dirtier.pid"
                % (sc.dirty_mib, sc.dirty_rate, sc.dirty_order,
                   " -t" if sc.dirty_text else "", WL, WL, WL, WL))
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


def read_dirtier_log(con, pages=False):
    """The dirtier's log: (guest time, MB/s) rows, with @pages (guest
    time, MB/s, pages written in total)."""
    _, txt = con.run("cat %s/dirtier.log" % WL, timeout=30)
    rows = []
    for ln in txt.splitlines():
        p = ln.split()
        if len(p) == 3:
            try:
                if pages:
                    rows.append((float(p[0]), float(p[1]), int(p[2])))
                else:
                    rows.append((float(p[0]), float(p[1])))
            except ValueError:
                pass
    return rows


def postcopy_stall(rows, before_mbps, off_src, off_dst, g_switch, g_done,
                   t0):
    """The guest's stall in a postcopy migration, from the dirtier's own
    log (guest CLOCK_BOOTTIME, which stands still while the guest is
    paused for the switchover and runs on while a vCPU waits for a page).

    @rows: (guest s, MB/s, pages in total) per log line; @g_switch: guest
    time at the switchover (the source's STOP); @g_done: guest time when
    the source completed.  The window runs from the last line at or before
    the switchover to the first line at least 1 s after the completion.
    In each interval between two lines the dirtier wrote MB; at its speed
    before the migration (@before_mbps) that takes MB/before_mbps seconds;
    the rest of the interval it made no progress.  Returns the longest
    such interval's no-progress time (a stall; the log's 1 s lines cannot
    split stalls closer than that), the sum over the window (the progress
    lost, in seconds of the dirtier's work), the throughput in the window
    as a share of before, and the host times (since migrate, @t0) of the
    longest stall's end.  Guest times before the switchover map to host
    times with @off_src, after it with @off_dst (guest minus host
    monotonic, measured on each side)."""
    if not rows or not before_mbps:
        return None
    i0 = max((i for i, r in enumerate(rows) if r[0] <= g_switch),
             default=None)
    i1 = next((i for i, r in enumerate(rows) if r[0] >= g_done + 1.0),
              None)
    if i0 is None or i1 is None or i1 <= i0:
        return {"error": "the dirtier's log does not cover the window "
                "(lines %d, switchover at guest %.3f, completion at "
                "guest %.3f)" % (len(rows), g_switch, g_done)}
    mb_page = 4096 / 1e6
    worst = (0.0, None)
    for a, b in zip(rows[i0:i1], rows[i0 + 1:i1 + 1]):
        dur = b[0] - a[0]
        stall = dur - (b[2] - a[2]) * mb_page / before_mbps
        if stall > worst[0]:
            worst = (stall, b[0])
    dur = rows[i1][0] - rows[i0][0]
    mb = (rows[i1][2] - rows[i0][2]) * mb_page

    def host(g):
        return round(g - (off_src if g <= g_switch else off_dst) - t0, 3)

    return {
        "window_guest_s": round(dur, 3),
        "window_host_s": [host(rows[i0][0]), host(rows[i1][0])],
        "window_lines": i1 - i0,
        "mb": round(mb, 2),
        "before_mbps": before_mbps,
        "tput_ratio": round(mb / (before_mbps * dur), 4),
        "lost_s": round(dur - mb / before_mbps, 3),
        "longest_stall_s": round(worst[0], 3),
        "longest_stall_end_s": host(worst[1]) if worst[1] else None,
        "max_gap_s": round(max(b[0] - a[0] for a, b in
                               zip(rows[i0:i1], rows[i0 + 1:i1 + 1])), 3),
    }


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


def _intact(pre, after):
    return (after["region_ok"] and after["region_sum"] == pre["region_sum"]
            and after.get("dirtier_ok", True) and
            after.get("pagecache_ok", True))


def _spill(d):
    v = (d or {}).get("shared-file-spill")
    return v if isinstance(v, dict) else None


class Watch:
    """What _follow does besides sampling the source, for a configuration
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


def _follow(src, dst, cfg, t0, limit, samples, watch=None,
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
    res["source_intact_after_cancel"] = _intact(pre, after)
    return res


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recover(res, src, dst, cfg, watch, t0, t0_wall, limit, samples, st,
             postcopy_started):
    """Postcopy cut without spill: both sides must pause (the source's
    query-migrate, the destination's MIGRATION event: its in-band QMP may
    be stuck); cfg.recover_after seconds after the cut (the network is
    back) migrate-recover on the destination (out of band) to a new port,
    through a new forwarder (no cut), and migrate with resume on the
    source; follow to the end.  Returns (status, info, timed out,
    forwarder), or None with res["reason"]."""
    pc = res["postcopy_cut"]

    def dst_event(status):
        return lambda e: (e.get("event") == "MIGRATION" and
                          e.get("data", {}).get("status") == status)

    def ev_s(e):
        ts = e.get("timestamp", {})
        return round(ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
                     - t0_wall, 3)

    deadline = time.monotonic() + 30
    while st != "postcopy-paused":
        info = src.qmp.cmd("query-migrate")
        st = info.get("status")
        watch.seen("src", st, round(time.monotonic() - t0, 3))
        if st in ("failed", "completed", "cancelled") or \
                time.monotonic() > deadline:
            res["reason"] = ("after the cut the source is %s (%s), not "
                             "postcopy-paused" % (st,
                                                  info.get("error-desc", "")))
            return None
        time.sleep(0.02)
    pc["src_paused_s"] = watch.first["src"].get("postcopy-paused")
    e = dst.qmp.wait_event(
        lambda e: dst_event("postcopy-paused")(e) or
        dst_event("failed")(e) or dst_event("completed")(e),
        max(1.0, deadline - time.monotonic()))
    if e is None or e["data"]["status"] != "postcopy-paused":
        res["reason"] = ("after the cut the source paused, the destination "
                         "%s" % ("reported no MIGRATION event in 30 s"
                                 if e is None else
                                 "went %s" % e["data"]["status"]))
        return None
    pc["dst_paused_s"] = ev_s(e)
    watch.seen("dst", "postcopy-paused", pc["dst_paused_s"])
    # the network comes back
    left = t0 + watch.cut_s + cfg.recover_after - time.monotonic()
    if left > 0:
        time.sleep(left)
    port = _free_port()
    pc["recover_s"] = round(time.monotonic() - t0, 3)
    dst.qmp.cmd("migrate-recover", {"uri": "tcp:127.0.0.1:%d" % port},
                oob=True)
    fwd2 = Forwarder(port)
    res["_fwd2"] = fwd2
    pc["resume_s"] = round(time.monotonic() - t0, 3)
    src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % fwd2.port,
                            "resume": True})
    # the destination is asked again once the source completed
    w2 = Watch(dst_after_cut=False)
    w2.cut_s = watch.cut_s
    w2.first = watch.first
    st, info, _, timed_out = _follow(src, dst, cfg, t0, limit, samples,
                                     watch=w2,
                                     postcopy_started=postcopy_started)
    pc["forwarder2"] = fwd2.stats(t0)
    # back to postcopy-active after the recovery: the source's first
    # sample in that state after resume
    pc["resumed_active_s"] = next(
        (x["t"] for x in samples if x["t"] >= pc["resume_s"] and
         x["status"] == "postcopy-active"), None)
    return st, info, timed_out, fwd2


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


def run_one(qemu, guest, accel, cfg, sc, workdir, defaults, log=print,
            cut=None):
    """Migrate once; never raises for a failed migration: see result.

    @cut: for a configuration with cfg.cut, {"bytes": n, ...}: where the
    forwarder breaks the connection (migbench computes it from the
    precopy runs of the same scenario); stored with the result."""
    os.makedirs(workdir, exist_ok=True)
    res = {
        "config": cfg.name, "scenario": sc.name, "accel": accel,
        "status": "failed", "verified": False, "reason": "",
        "caps": cfg.caps, "params": {}, "postcopy": cfg.postcopy,
        "workdir": workdir,
    }
    # The shared disk: a raw format node over a file node (vm.py).
    ctx = {"workdir": workdir, "disk_node": "shared0"}
    src = dst = fwd = None
    vms = []
    t_wall0 = time.monotonic()
    try:
        src = VM(qemu, workdir, "src", guest, accel=accel,
                 mem_mib=defaults["mem_mib"])
        vms.append(src)
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
        if cfg.cut and not (cut and cut.get("bytes")):
            raise ValueError("%s needs a cut byte count" % cfg.name)

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

        caps = [{"capability": k, "state": v} for k, v in cfg.caps.items()]
        bandwidth = cfg.max_bandwidth or defaults["max_bandwidth"]
        res["max_bandwidth"] = bandwidth
        if cfg.transport == "file":
            # QEMU's file migration: no destination until the file is
            # complete.
            path = os.path.join(workdir, "mapped.bin")
            uri = "file:" + path
        else:
            # a postcopy recovery: migrate-recover out of band, and the
            # destination's MIGRATION events (its main thread, hence
            # in-band QMP, may be stuck behind a vCPU waiting for a page)
            dst = VM(qemu, workdir, "dst", guest, accel=accel,
                     mem_mib=defaults["mem_mib"], incoming=True,
                     qmp_oob=bool(cfg.recover_after))
            vms.append(dst)
            if cfg.dest:
                _configure(dst, caps, params)
            if cfg.recover_after:
                _configure(dst, [{"capability": "events", "state": True}],
                           None)
        _configure(src, caps, src_params)
        src.qmp.cmd("migrate-set-parameters", {
            "max-bandwidth": bandwidth,
            "downtime-limit": defaults["downtime_limit"]})
        if cfg.postcopy_link:
            src.qmp.cmd("migrate-set-parameters",
                        {"max-postcopy-bandwidth": bandwidth})
            res["max_postcopy_bandwidth"] = bandwidth
        if dst is not None:
            port = _listen(dst, exit_on_error=not (cfg.cut or cfg.cut_on))
            uri = "tcp:127.0.0.1:%d" % port
            if cfg.cut:
                res["cut"] = dict(cut)
                fwd = Forwarder(port, cut=int(cut["bytes"]))
                uri = "tcp:127.0.0.1:%d" % fwd.port
            elif cfg.cut_on:
                # the harness cuts it (Watch), at the switchover
                fwd = Forwarder(port)
                uri = "tcp:127.0.0.1:%d" % fwd.port

        offset = guest_clock_offset(con) if sc.dirty_mib else 0.0
        samples = []
        res["samples"] = samples
        limit = sc.migrate_timeout or defaults["migrate_timeout"]
        t0 = time.monotonic()
        t0_wall = time.time()
        watch = None
        if cfg.cut_on:
            # stop at a pause: expected without spill (then recover),
            # a failure with it
            watch = Watch(cut=fwd.cut_now, cut_on=cfg.cut_on,
                          stop_src=("postcopy-paused",),
                          stop_dst=("postcopy-paused", "failed"),
                          dst_after_cut=not cfg.recover_after)
        src.qmp.cmd("migrate", {"uri": uri})
        st, info, postcopy_started, timed_out = _follow(
            src, dst, cfg, t0, limit, samples, watch=watch)
        if fwd:
            res["forwarder"] = fwd.stats(t0)
        if timed_out:
            return _timed_out(res, src, con, sc, pre, st, info, limit)
        pc = None
        if watch:
            pc = res["postcopy_cut"] = {"cut_s": watch.cut_s,
                                        "at_cut": watch.at_cut}
            if watch.cut_s is None:
                res["reason"] = ("the source never reported %s: no cut "
                                 "(%s)" % (cfg.cut_on, st))
                return res
            if cfg.recover_after:
                r = _recover(res, src, dst, cfg, watch, t0, t0_wall, limit,
                             samples, st, postcopy_started)
                if r is None:
                    return res
                st, info, timed_out, fwd2 = r
                if timed_out:
                    return _timed_out(res, src, con, sc, pre, st, info,
                                      limit)
            elif st != "completed":
                # with spill: any pause or failure ends the run, as is
                d = watch.dst_info
                paused = ("postcopy-paused" in watch.first["src"] or
                          "postcopy-paused" in watch.first["dst"])
                res["reason"] = (
                    "after the cut with shared-file-spill the migration "
                    "%s: source %s (%s), destination %s (%s)" % (
                        "paused" if paused else "did not complete",
                        st, info.get("error-desc", ""), d.get("status"),
                        d.get("error-desc", "")))
                res["paused_with_spill"] = paused
                return res

        # Harness time between the attempts of a restart (checking the
        # source): not part of the migration's time.
        excluded = 0.0
        if cfg.restart:
            fwd.close()
            res["forwarder"] = fwd.stats(t0)
            a1 = {"status": st, "error": info.get("error-desc", ""),
                  "failed_s": round(time.monotonic() - t0, 3),
                  "transferred": max(s["transferred"] for s in samples),
                  "wire_bytes": fwd.bytes}
            res["attempt1"] = a1
            a1["dest_status"] = (dst.qmp.cmd("query-migrate").get("status")
                                 if dst.alive() else "exited")
            if st != "failed":
                res["reason"] = ("the cut did not break the first migration "
                                 "(%s, forwarder cut %s)" % (
                                     st, res["forwarder"]["cut"]))
                return res
            # Today's only option: the guest runs on at the source; check
            # that, then a fresh destination and a migration from zero.
            t_x = time.monotonic()
            status = src.qmp.cmd("query-status").get("status")
            after = verify(con, sc, "source after the cut")
            res["verify_source_after_failure"] = after
            res["source_running_after_failure"] = status == "running"
            res["source_intact_after_failure"] = (
                status == "running" and _intact(pre, after))
            dst.kill()
            vms.remove(dst)
            if not res["source_intact_after_failure"]:
                res["reason"] = ("after the cut the source is not running "
                                 "with its memory intact (%s)" % status)
                return res
            excluded = time.monotonic() - t_x
            res["restart_excluded_s"] = round(excluded, 3)
            dst = VM(qemu, workdir, "dst2", guest, accel=accel,
                     mem_mib=defaults["mem_mib"], incoming=True)
            vms.append(dst)
            if cfg.dest:
                _configure(dst, caps, params)
            port = _listen(dst)
            res["restart_at_s"] = round(time.monotonic() - t0 - excluded, 3)
            src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % port})
            # sample times go on from the first migrate, less the check
            st, info, postcopy_started, timed_out = _follow(
                src, dst, cfg, t0 + excluded, limit, samples)
            if timed_out:
                return _timed_out(res, src, con, sc, pre, st, info, limit)
        t_end = time.monotonic()
        res["postcopy_started_s"] = postcopy_started
        if st != "completed":
            res["reason"] = "migration %s: %s" % (st, info.get("error-desc", ""))
            if dst is not None and dst.alive():
                d = dst.qmp.cmd("query-migrate")
                res["reason"] += " (destination: %s %s)" % (
                    d.get("status"), d.get("error-desc", ""))
            return res

        if watch:
            # the destination completes once it has every page (and, with
            # shared-file-spill, once the source committed the file)
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
                    return res
                time.sleep(0.02)
            pc["dst_completed_s"] = round(time.monotonic() - t0, 3)
            if cfg.recover_after:
                # the destination's MIGRATION events, read since
                ev = [e for e in dst.qmp.events
                      if e.get("event") == "MIGRATION" and
                      e["data"].get("status") == "postcopy-active"]
                if ev:
                    ts = ev[-1]["timestamp"]
                    pc["dst_resumed_active_s"] = round(
                        ts["seconds"] + ts["microseconds"] / 1e6 - t0_wall,
                        3)
            pc["first_status_s"] = watch.first
            pc["src_complete_s"] = info.get("total-time", 0) / 1000
            pc["cut_to_complete_s"] = round(
                pc["src_complete_s"] - watch.cut_s, 3)
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
        res["ram"] = _migrate_stats(info)
        if fwd:
            res["forwarder"] = fwd.stats(t0)

        if cfg.transport == "file":
            # The source has completed (its guest paused): now the
            # destination, which loads the file.
            t_d = time.monotonic()
            dst = VM(qemu, workdir, "dst", guest, accel=accel,
                     mem_mib=defaults["mem_mib"], incoming=True)
            vms.append(dst)
            if cfg.dest:
                _configure(dst, caps, params)
            t_in = time.monotonic()
            res["dst_start_ms"] = round((t_in - t_d) * 1000)
            dst.qmp.cmd("migrate-incoming", {"uri": uri})
            deadline = t_in + limit
            while True:
                d = dst.qmp.cmd("query-migrate")
                if d.get("status") == "completed":
                    break
                if d.get("status") in ("failed", "cancelled"):
                    res["reason"] = "destination load %s: %s" % (
                        d.get("status"), d.get("error-desc", ""))
                    return res
                if not dst.alive():
                    raise QMPError("destination exited loading the file")
                if time.monotonic() > deadline:
                    raise QMPError("destination did not load the file "
                                   "within %d s" % limit)
                time.sleep(0.02)
            res["dst_load_ms"] = round((time.monotonic() - t_in) * 1000)
            if dst.qmp.cmd("query-status").get("status") != "running":
                dst.qmp.cmd("cont")
                res["dst_cont"] = True
            fst = os.stat(path)
            res["file_size"] = fst.st_size
            res["file_allocated"] = fst.st_blocks * 512

        # The destination must be running the guest now.
        deadline = time.monotonic() + 30
        while True:
            if dst.qmp.cmd("query-status").get("status") == "running":
                break
            if time.monotonic() > deadline:
                raise QMPError("destination not running 30 s after completion")
            time.sleep(0.02)
        t_seen = time.monotonic()
        # Time to the destination running: from migrate to its RESUME
        # event (QEMU's timestamp, host wall clock); the guest's pause:
        # the source's STOP to the destination's RESUME.
        t_resume = _event_time(dst, "RESUME")
        t_stop = _event_time(src, "STOP")
        if t_resume is not None:
            res["running_ms"] = round((t_resume - t0_wall - excluded) * 1000)
        else:
            res["running_ms"] = round((t_seen - t0 - excluded) * 1000)
            res["running_by"] = "poll"
        if t_resume is not None and t_stop is not None:
            res["paused_ms"] = round((t_resume - t_stop) * 1000)
        if cfg.postcopy and t_stop is not None:
            # the source's STOP (the switchover), since migrate
            res["stop_s"] = round(t_stop - t0_wall, 3)
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
        elif fwd:
            res["wire_bytes"] = fwd.bytes
            if res.get("postcopy_cut", {}).get("forwarder2"):
                # and after the recovery
                res["wire_bytes"] += res["postcopy_cut"]["forwarder2"][
                    "bytes"]
        sp = _spill(res["ram"]["extra"])
        if sp:
            res["file_bytes"] = sp.get("file-bytes")

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
            if cfg.postcopy and t_stop is not None:
                # the stall: guest time stands still from the source's
                # STOP to the destination's RESUME, so measure the
                # destination's offset too
                off_dst = guest_clock_offset(dcon)
                g_switch = t_stop - t0_wall + t0 + offset
                src_done = info.get("total-time", 0) / 1000
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
        if cfg.cut_on:
            why = _postcopy_cut_check(res, cfg)
            if why:
                res["status"] = "failed"
                res["reason"] = "completed and verified, but " + why
                return res
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
                return res
            # with multifd, its channels went through their files too
            mfo = [(_spill(x) or {}).get("multifd-failovers") or 0
                   for x in (res["ram"]["extra"], res["dest_extra"])]
            if cfg.caps.get("multifd") and min(mfo) < 1:
                res["status"] = "failed"
                res["reason"] = ("completed and verified, but no multifd "
                                 "channel went through its file: multifd "
                                 "failovers source %s destination %s" % (
                                     mfo[0], mfo[1]))
                return res
        res["status"] = "ok"
        res["verified"] = True
        return res
    except Exception as e:  # record it as a failed run, never as a result
        res["reason"] = "%s: %s" % (type(e).__name__, e)
        if not isinstance(e, (QMPError, GuestError, OSError)):
            res["traceback"] = traceback.format_exc()
        for vm in vms:
            if not vm.alive():
                res["reason"] += " [%s exited: %s]" % (
                    vm.name, vm.log_tail(300).strip())
        return res
    finally:
        if fwd:
            fwd.close()
        if res.get("_fwd2"):
            res.pop("_fwd2").close()
        for vm in vms:
            vm.kill()
        res["wall_s"] = round(time.monotonic() - t_wall0, 2)
