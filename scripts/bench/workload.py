# SPDX-License-Identifier: GPL-2.0-or-later
"""The workloads inside the guest, through its serial agent (vm.Console):
start them, take their checksums and self-checks (before migrating on
the source, after it on the destination), and read the dirtier's own
throughput log (the guest's speed, its stall in postcopy)."""

import re
import time

from vm import GuestError

WL = "/run/wl"


def wait_file_cmd(path, tries=400):
    """Shell snippet: wait (20 s at most) for a non-empty file, print it."""
    return ("i=0; while [ ! -s %s ] && [ $i -lt %d ]; do usleep 50000; "
            "i=$((i+1)); done; cat %s" % (path, tries, path))


def cache_timeout(sc):
    """Seconds to allow for reading, mapping or checking the page cache:
    120, or more for a cache larger than 960 MiB (TCG reads about
    10 MB/s at worst on a loaded 2-core host)."""
    return max(120, sc.cache_mib // 8)


def start_workload(con, sc):
    """Fill the page cache, start the region holder and the dirtier."""
    out = {}
    if sc.cache_mib:
        _, txt = con.run("pagecache -M %d -c /mnt/MANIFEST /mnt/data/f*" %
                         sc.cache_mib, timeout=cache_timeout(sc))
        out["cache_fill"] = txt.strip().splitlines()[-1]
    con.run("memregion -n region0 -m %d -s 12345%s -d %s >%s/region0.out "
            "2>&1 &" % (sc.region_mib, " -t %d" % sc.region_text_run_mib
                        if sc.region_text_run_mib else "", WL, WL))
    con.run(wait_file_cmd("%s/region0.pid" % WL), timeout=60)
    if sc.slow_disk_jobs:
        # one request at a time each, at random 4 KiB blocks of the 1 GiB
        # disk, a read then a write; their count is in slowio.<j>
        con.run("for j in $(seq %d); do (n=0; while :; do "
                "b=$((RANDOM * 8)); "
                "dd if=/dev/vdb of=/dev/null bs=4096 count=1 skip=$b "
                "iflag=direct 2>/dev/null; "
                "dd if=/dev/zero of=/dev/vdb bs=4096 count=1 seek=$b "
                "oflag=direct 2>/dev/null; n=$((n + 2)); "
                "echo $n >%s/slowio.$j; done) & done" %
                (sc.slow_disk_jobs, WL))
    if sc.dirty_mib:
        con.run("dirtier -m %d -r %g -p %s%s -s 777 -l %s/dirtier.log "
                "-v %s/dirtier.ver >%s/dirtier.out 2>&1 & "
                "echo $! >%s/dirtier.pid"
                % (sc.dirty_mib, sc.dirty_rate, sc.dirty_order,
                   " -t" if sc.dirty_text else "", WL, WL, WL, WL))
    return out


DISKMAP_LINE = re.compile(r"^diskmap: map 0x([0-9a-f]+) records (\d+) "
                          r"segments (\d+)$", re.M)
DISKMAP_CHECK = re.compile(r"^diskmap: check (\d+) pages (\d+) moved (\d+) "
                           r"map-pages (\d+) map-moved (\d+) (OK|FAIL)$",
                           re.M)


def start_diskmap(con, sc, follow_s=0):
    """Publish the map of the cached files for disk-backed-pages.

    Runs bench/workloads/diskmap over the files the page cache holds (the
    same -M as the fill, so the same pages) and waits for the line with
    the guest-physical address of its map, which becomes {disk_map}.
    With @follow_s, diskmap follows the page cache as a daemon (-f),
    publishing again every @follow_s seconds when it changed."""
    con.run("diskmap -M %d%s /mnt/data/f* >%s/diskmap.out 2>&1 & "
            "echo $! >%s/diskmap.pid" % (
                sc.cache_mib, " -f %d" % follow_s if follow_s else "",
                WL, WL))
    wait = cache_timeout(sc)
    _, txt = con.run(
        "i=0; while ! grep -q '^diskmap: map ' %s/diskmap.out && "
        "kill -0 $(cat %s/diskmap.pid) 2>/dev/null && [ $i -lt %d ]; do "
        "usleep 50000; i=$((i+1)); done; cat %s/diskmap.out" % (
            WL, WL, wait * 20, WL),
        timeout=wait + 30)
    m = DISKMAP_LINE.search(txt)
    if not m:
        raise GuestError("diskmap published no map: %r" % txt.strip()[-400:])
    return {"map": int(m.group(1), 16), "records": int(m.group(2)),
            "segments": int(m.group(3)), "output": txt.strip()}


def diskmap_follow_line(con):
    """diskmap -f's last publication: "follow <round> records <n> ..."."""
    _, txt = con.run("grep '^diskmap: follow ' %s/diskmap.out | tail -n 1"
                     % WL)
    return txt.strip()


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
    if sc.slow_disk_jobs:
        # the loops go on: their requests complete (none hangs or fails)
        _, txt = con.run("sleep 1; cat %s/slowio.* 2>/dev/null; sleep 2; "
                         "echo -; cat %s/slowio.* 2>/dev/null" % (WL, WL),
                         timeout=30)
        before, _, after = txt.partition("-")
        n0 = sum(int(x) for x in re.findall(r"^\d+$", before, re.M))
        n1 = sum(int(x) for x in re.findall(r"^\d+$", after, re.M))
        v["slowio"] = [n0, n1]
        v["slowio_ok"] = n1 > n0
    if sc.cache_mib:
        rc, txt = con.run(
            "grep '^pgpgin ' /proc/vmstat; "
            "pagecache -M %d -c /mnt/MANIFEST /mnt/data/f*; r=$?; "
            "grep '^pgpgin ' /proc/vmstat; exit $r" % sc.cache_mib,
            timeout=cache_timeout(sc), check=False)
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


def intact(pre, after):
    """Whether the checks @after match the source's before migrating."""
    return (after["region_ok"] and after["region_sum"] == pre["region_sum"]
            and after.get("dirtier_ok", True) and
            after.get("pagecache_ok", True) and
            after.get("slowio_ok", True))
