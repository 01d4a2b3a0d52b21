#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How long the source holds the BQL to read a disk-backed map.

disk-backed-pages reads the guest's whole map in ram_save_setup(), with
the BQL held: vCPUs that exit to QEMU and QMP wait meanwhile.  This starts
a QEMU (qtest accelerator, no guest code runs) with enough RAM for
--records records, writes a map of that many records through the qtest
socket (scattered pages, up to 252 segments in reverse address order: the
worst case for the segment search), starts a migration to /dev/null and
prints the time the trace event disk_backed_map reports.  A timing, not a
test: nothing is asserted about it.

  scripts/bench/diskmap_setup.py [--records N] [--qemu PATH]

Default: the largest map the parser accepts, 2^24 records, which needs
64 GiB of guest RAM (allocated lazily: only the map's pages are touched).
"""

import argparse
import base64
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from monitor import Monitor  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PAGE = 4096
SEGMENTS = 252
MAP_GPA = 1 << 30               # header page; segments follow it
RAM_BASE = 4 << 30              # the records' pages: RAM above 4 GiB


class QTest:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("qtest: QEMU went away")
            self.buf += data
        reply, self.buf = self.buf.split(b"\n", 1)
        if not reply.startswith(b"OK"):
            raise SystemExit("qtest: %s -> %s" % (line[:40], reply))

    def write(self, gpa, data):
        for off in range(0, len(data), 1 << 22):
            chunk = data[off:off + (1 << 22)]
            self.cmd("b64write 0x%x 0x%x %s" % (
                gpa + off, len(chunk), base64.b64encode(chunk).decode()))


def build_map(nrec):
    """Header page and one bytes object per segment."""
    per = [nrec // SEGMENTS + (i < nrec % SEGMENTS) for i in range(SEGMENTS)]
    stride = ((max(per) * 16 + PAGE - 1) // PAGE + 1) * PAGE
    hdr = bytearray(PAGE)
    struct.pack_into("<8sIIQQII", hdr, 0, b"QDISKMAP", 1, SEGMENTS, 2,
                     nrec, PAGE, PAGE)
    segs = []
    n = 0
    pages = nrec * 2
    for i in range(SEGMENTS):
        # reverse address order: the table is no help to a linear search
        gpa = MAP_GPA + PAGE + (SEGMENTS - 1 - i) * stride
        struct.pack_into("<QQ", hdr, 64 + 16 * i, gpa, per[i])
        recs = bytearray(per[i] * 16)
        for j in range(per[i]):
            page = (n * 2654435761) % pages     # scattered, as a page cache
            struct.pack_into("<QQ", recs, 16 * j, RAM_BASE + page * PAGE, n)
            n += 1
        segs.append((gpa, bytes(recs)))
    return bytes(hdr), segs, RAM_BASE + pages * PAGE


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1 << 24)
    ap.add_argument("--qemu", default=os.path.join(
        TOP, "build", "qemu", "build", "qemu-system-x86_64"))
    args = ap.parse_args()
    nrec = args.records

    t = time.monotonic()
    hdr, segs, top = build_map(nrec)
    ram = max(top - (2 << 30), 1 << 30)     # q35: RAM above 4 GiB from 2 GiB
    ram = (ram + (1 << 30) - 1) & ~((1 << 30) - 1)
    print("map of %d records built in %.1f s; guest RAM %d GiB"
          % (nrec, time.monotonic() - t, ram >> 30), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(max(nrec, 1) * PAGE)     # sparse: frames 0..nrec-1
        qmp_path = os.path.join(tmp, "qmp.sock")
        qt_path = os.path.join(tmp, "qtest.sock")
        trace = os.path.join(tmp, "trace.log")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(qt_path)
        lsock.listen(1)
        # reserve=off: no swap reserved for RAM the map never touches
        cmd = [args.qemu, "-machine", "q35,memory-backend=ram0",
               "-accel", "qtest", "-object", "memory-backend-ram,id=ram0,"
               "size=%dG,reserve=off" % (ram >> 30),
               "-display", "none", "-nodefaults", "-m", "%dG" % (ram >> 30),
               "-qtest", "unix:" + qt_path, "-qtest-log", "/dev/null",
               "-qmp", "unix:%s,server=on,"
               "wait=off" % qmp_path, "-S",
               "-trace", "disk_backed_map", "-D", trace,
               "-blockdev", "driver=file,node-name=f0,filename=" + disk,
               "-blockdev", "driver=raw,node-name=shared0,file=f0"]
        proc = subprocess.Popen(cmd)
        qmp = None
        try:
            conn, _ = lsock.accept()
            qt = QTest(conn)
            qmp = Monitor(qmp_path, alive=lambda: proc.poll() is None)
            t = time.monotonic()
            qt.write(MAP_GPA, hdr)
            for gpa, recs in segs:
                qt.write(gpa, recs)
            print("map written into guest RAM in %.1f s"
                  % (time.monotonic() - t), flush=True)
            qmp.cmd("migrate-set-capabilities", {"capabilities": [
                {"capability": "return-path", "state": True},
                {"capability": "disk-backed-pages", "state": True}]})
            qmp.cmd("migrate-set-parameters", {
                "disk-backed-node": "shared0", "disk-backed-map": MAP_GPA})
            t = time.monotonic()
            qmp.cmd("migrate", {"uri": "exec:cat >/dev/null"})
            line = None
            while time.monotonic() - t < 600 and not line:
                time.sleep(0.2)
                with open(trace) as f:
                    line = next((x for x in f if "disk_backed_map" in x),
                                None)
            info = qmp.cmd("query-migrate")
            qmp.cmd("migrate_cancel")
            if not line:
                raise SystemExit("no disk_backed_map trace within 600 s")
            print(line.strip().split("disk_backed_map ", 1)[-1])
            db = info.get("disk-backed-pages", {})
            print("map status: %s, %s records valid, %s ignored"
                  % (db.get("map-status"), db.get("map-records"),
                     db.get("map-ignored")))
        finally:
            if qmp:
                qmp.close()
            proc.kill()
            proc.wait(30)


if __name__ == "__main__":
    main()
