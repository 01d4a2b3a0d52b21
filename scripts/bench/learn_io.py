#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The cost of disk-backed-pages' learned map on the guest's disk reads.

    learn_io.py [--rounds 8] [--mib 160] [--qemu PATH] [--json FILE]

Boots the bench guest once and reads --mib MiB of the shared disk's
files with a cold page cache (drop_caches before each read, the guest's
pagecache program measuring), alternately with learning off and on
(disk-backed-pages and disk-backed-node set or cleared with QMP), --rounds
times each, and prints every read's throughput, the medians and their
ratio, and how many pages the map learned.  A first read, not counted,
warms the host's page cache of the image.  The goal of issue #19: reads
with learning on within 2% of off.  One guest, alternating, so that the
guest's and the host's state drift alike for both."""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import configs                                          # noqa: E402
from vm import VM, read_guest_env                       # noqa: E402

MBPS = re.compile(r"mbps=([0-9.]+)")


def learning(vm, on):
    vm.qmp.cmd("migrate-set-capabilities", {"capabilities": [
        {"capability": "return-path", "state": True},
        {"capability": "disk-backed-pages", "state": on}]})
    if on:
        vm.qmp.cmd("migrate-set-parameters", {"disk-backed-node": "shared0"})


def learned_pages(vm):
    info = vm.qmp.cmd("query-migrate")
    return (info.get("disk-backed-pages") or {}).get("learned-pages", 0)


def main():
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    build = os.environ.get("BUILD", os.path.join(top, "build"))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--mib", type=int, default=160)
    ap.add_argument("--qemu", default=os.path.join(
        build, "qemu", "build", "qemu-system-x86_64"))
    ap.add_argument("--json", help="write the results here as well")
    args = ap.parse_args()

    guest = read_guest_env(build)
    os.makedirs(os.path.join(build, "bench"), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="learn-io-",
                               dir=os.path.join(build, "bench"))
    mbps = {False: [], True: []}
    learned = []
    vm = VM(args.qemu, workdir, "guest", guest,
            accel=os.environ.get("MIGBENCH_ACCEL", "tcg"),
            mem_mib=configs.DEFAULTS["mem_mib"])
    try:
        con = vm.open_console()
        con.wait_ready(configs.DEFAULTS["boot_timeout"])
        # a first read warms the host's cache of the image: not counted
        con.run("pagecache -M %d /mnt/data/f*" % args.mib, timeout=300)
        for i in range(2 * args.rounds):
            on = bool(i % 2) != bool(i // 2 % 2)    # off on on off off on ...
            learning(vm, on)
            _, txt = con.run("sync; echo 3 >/proc/sys/vm/drop_caches; "
                             "pagecache -M %d /mnt/data/f*" % args.mib,
                             timeout=300)
            m = MBPS.search(txt)
            if not m:
                raise RuntimeError("pagecache printed no mbps: %r" % txt)
            mbps[on].append(float(m.group(1)))
            if on:
                learned.append(learned_pages(vm))
            print("round %2d learning %-3s %7.1f MB/s%s" % (
                i // 2 + 1, "on" if on else "off", mbps[on][-1],
                " (%d pages learned)" % learned[-1] if on else ""),
                flush=True)
    finally:
        vm.kill()
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)

    off, on = statistics.median(mbps[False]), statistics.median(mbps[True])
    res = {"rounds": args.rounds, "mib": args.mib, "mbps_off": mbps[False],
           "mbps_on": mbps[True], "median_off": off, "median_on": on,
           "ratio": round(on / off, 4), "learned_pages": learned}
    print("median: off %.1f MB/s, on %.1f MB/s: on/off %.3f (goal >= 0.98)"
          % (off, on, on / off))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
