#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of the common-regions destination chooser
(scripts/region_chooser.py): the fingerprint format against QEMU's
writer, malformed fingerprints and indexes, the index merge, the bytes
left to send, the ranking with hosts excluded and why, the command line,
and the requirements read from a real QEMU over QMP.

QEMU's binary: $QEMU_BINARY, else build/qemu/build/qemu-system-x86_64."""

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import region_chooser as rc  # noqa: E402

PAGE = 4096
results = []


def ok(cond, what):
    results.append((bool(cond), what))


def fails_with(data, reason):
    try:
        rc.parse_fingerprint(data)
    except rc.FormatError as e:
        return reason is None or reason in str(e)
    return False


def pages(*fills):
    """Memory of one page per fill byte (0: a zero page)."""
    return b"".join(bytes([f]) * PAGE for f in fills)


def test_format():
    # the seed gen-seeds.c writes with QEMU's writer (rfp_seeds())
    mem = bytearray(10 * PAGE)
    mem[PAGE:2 * PAGE] = b"\x11" * PAGE
    mem[4 * PAGE:7 * PAGE] = b"\x22" * 3 * PAGE
    mem[9 * PAGE + 7] = 1
    mine = rc.write_fingerprint([("pc.ram", bytes(mem)),
                                 ("zero", bytes(mem[:PAGE])),
                                 ("tail", bytes(mem[8 * PAGE:]))],
                                12, 14)
    with open(os.path.join(TOP, "tests", "fuzz", "corpus",
                           "fuzz-region-fingerprint", "three-blocks"),
              "rb") as f:
        theirs = f.read()[1:]           # the mode byte
    ok(mine == theirs, "the writer's bytes are QEMU's (rfp_writer_block)")

    fp = rc.parse_fingerprint(mine)
    ok((fp.page_shift, fp.region_shift) == (12, 14), "geometry read")
    ok([(n, u, len(r)) for n, u, r in fp.blocks] ==
       [("pc.ram", 10 * PAGE, 3), ("zero", PAGE, 0), ("tail", 2 * PAGE, 1)],
       "blocks and their regions read; zero regions left out")
    r0, r1, r2 = fp.blocks[0][2]
    ok((r0.offset, r0.mask, r1.offset, r1.mask, r2.offset, r2.mask,
        r2.npages) == (0, 0x2, 4 * PAGE, 0x7, 8 * PAGE, 0x2, 2),
       "offsets, masks and the last region's pages")
    ok(r0.page_hashes == [hashlib.sha256(b"\x11" * PAGE).digest()],
       "a page hash is SHA-256 of the page")
    zh = hashlib.sha256(bytes(PAGE)).digest()
    ok(r0.hash == hashlib.sha256(zh + r0.page_hashes[0] + zh + zh).digest(),
       "a region hash is SHA-256 of its pages' hashes, zero pages too")

    # the mutations of tests/unit/test-region-fingerprint.c, same reasons
    small = rc.write_fingerprint([("pc.ram", pages(0, 0x11, 0, 0, 0x44, 0))],
                                 12, 14)
    ok(len(small) == 247, "the small file's layout")

    def mut(off, width, value):
        b = bytearray(small)
        b[off:off + width] = value.to_bytes(width, "big")
        return bytes(b)

    cases = [
        (0, 1, ord("X"), "bad magic"), (8, 4, 2, "version"),
        (12, 4, 11, "page or region size"), (16, 4, 19, "page or region"),
        (20, 4, 0, "number of blocks"), (20, 4, 257, "number of blocks"),
        (31, 1, 1, "reserved"), (32, 1, 0, "empty block name"),
        (35, 1, 0, "NUL in block name"), (39, 8, 0, "invalid block length"),
        (39, 8, 6 * PAGE + 1, "invalid block length"),
        (39, 8, 4 * PAGE, "out of order or range"),
        (47, 8, 1, "unaligned"), (127, 8, 0, "out of order or range"),
        (55, 8, 0, "invalid page mask"), (55, 8, 0x10, "invalid page mask"),
        (135, 8, 0x4, "invalid page mask"), (55, 8, 0x3, None),
        (215, 8, 3, "block record count"), (223, 1, ord("q"), "trailer"),
        (231, 8, 3, "trailer counts"), (239, 8, 1, "trailer counts"),
    ]
    ok(all(fails_with(mut(o, w, v), why) for o, w, v, why in cases),
       "each malformed field refused with QEMU's reason")
    ok(all(fails_with(small[:n], None) for n in range(len(small))),
       "every truncation refused")
    ok(fails_with(small + b"\0", "bytes after the trailer"), "extra bytes")
    dup = rc.write_fingerprint([("a", pages(7)), ("a", pages(7))], 12, 12)
    ok(fails_with(dup, "two blocks with one name"), "duplicate block names")
    full = rc.write_fingerprint([("big", bytes([0xa5]) * 64 * PAGE)], 12, 18)
    ok(rc.parse_fingerprint(full).blocks[0][2][0].mask == (1 << 64) - 1,
       "a region of 64 pages uses the whole mask")


def test_index():
    a = rc.parse_fingerprint(rc.write_fingerprint(
        [("pc.ram", pages(1, 2, 3, 4, 0, 5, 0, 0))], 12, 14))
    b = rc.parse_fingerprint(rc.write_fingerprint(
        [("pc.ram", pages(1, 2, 3, 4, 9, 9, 9, 9))], 12, 14))
    idx = rc.Index(12, 14)
    idx.add(a)
    idx.add(b)
    ok(len(idx.regions) == 3 and len(idx.pages) == 6,
       "merge: union of region and page hashes, duplicates once")
    back = rc.Index.decode(idx.encode())
    ok(back.regions == idx.regions and back.pages == idx.pages,
       "an index decodes to what was encoded")
    enc = idx.encode()
    bad = [enc[:-1], b"X" + enc[1:], enc[:40] + enc[72:104] + enc[40:72] +
           enc[104:], enc[:12] + b"\0\0\0\x0b" + enc[16:]]
    refused = 0
    for data in bad:
        try:
            rc.Index.decode(data)
        except rc.FormatError:
            refused += 1
    ok(refused == len(bad), "truncated, bad magic, unsorted, bad geometry "
       "indexes refused")
    try:
        idx.add(rc.parse_fingerprint(rc.write_fingerprint(
            [("x", pages(1))], 12, 13)))
        ok(False, "a fingerprint of another geometry refused by the index")
    except rc.FormatError as e:
        ok("another geometry" in str(e),
           "a fingerprint of another geometry refused by the index")

    # the VM: region 0 held whole by a (1,2,3,4), region 1 = (9, 5, 7, 0):
    # 9 held by b, 5 by a, 7 by nobody
    vm = rc.parse_fingerprint(rc.write_fingerprint(
        [("pc.ram", pages(1, 2, 3, 4, 9, 5, 7, 0))], 12, 14))
    ok(rc.bytes_left(vm, idx) == (1 * PAGE, 6 * PAGE, 7 * PAGE),
       "bytes left: held regions, then held pages, zero pages free")
    ok(rc.bytes_left(vm, None) == (7 * PAGE, 0, 7 * PAGE),
       "bytes left on a host that holds nothing")


def make_workgroup(top):
    def host(name, fps, **kw):
        d = os.path.join(top, name)
        args = ["host", d, "--vcpus", str(kw.get("vcpus", 8)),
                "--ram", str(kw.get("ram", 8 << 30))]
        for m in kw.get("cpu_models", []):
            args += ["--cpu-model", m]
        for m in kw.get("devices", []):
            args += ["--device", m]
        ok(rc.main(args) == 0, "host %s written" % name)
        for i, mem in enumerate(fps):
            with open(os.path.join(d, "vms", "vm%d.rfp" % i), "wb") as f:
                f.write(rc.write_fingerprint([("pc.ram", mem)], 12, 14))
        return d

    host("full", [pages(1, 2, 3, 4, 5, 6, 7, 8)])
    host("half", [pages(1, 2, 3, 4, 0, 0, 0, 0), pages(42)])
    host("empty", [])
    host("small", [pages(1, 2, 3, 4, 5, 6, 7, 8)], ram=32 << 20)
    host("busy", [pages(1, 2, 3, 4, 5, 6, 7, 8)], vcpus=1)
    host("old", [pages(1, 2, 3, 4, 5, 6, 7, 8)], cpu_models=["qemu64"])
    host("nodev", [pages(1, 2, 3, 4, 5, 6, 7, 8)], devices=["e1000"])
    host("source", [pages(1, 2, 3, 4, 5, 6, 7, 8)])
    os.makedirs(os.path.join(top, "broken"))
    with open(os.path.join(top, "broken", "host.json"), "w") as f:
        f.write("{")


def test_rank():
    top = tempfile.mkdtemp(prefix="region-chooser-")
    try:
        make_workgroup(top)
        vmfile = os.path.join(top, "vm.rfp")
        with open(vmfile, "wb") as f:
            f.write(rc.write_fingerprint(
                [("pc.ram", pages(1, 2, 3, 4, 5, 6, 7, 8, 0, 0))], 12, 14))
        req = {"vcpus": 2, "ram-bytes": 64 << 20, "cpu-model": "max",
               "machine": "pc-q35-10.2", "devices": ["virtio-blk-pci"]}
        reqfile = os.path.join(top, "req.json")
        with open(reqfile, "w") as f:
            json.dump(req, f)
        fp = rc.parse_fingerprint(open(vmfile, "rb").read())
        cands, excl = rc.rank(top, fp, req, exclude=["source"])
        ok([c["host"] for c in cands] == ["full", "half", "empty"],
           "ranked by bytes left: full, half, empty")
        ok([c["bytes-left"] for c in cands] == [0, 4 * PAGE, 8 * PAGE],
           "bytes left of each candidate")
        reasons = {e["host"]: e["reason"] for e in excl}
        ok(reasons.get("small") == "needs 64 MiB of RAM, 32 MiB free" and
           reasons.get("busy") == "needs 2 vCPUs, 1 free" and
           reasons.get("old") == "no cpu model max" and
           reasons.get("nodev") == "no device virtio-blk-pci" and
           reasons.get("source") == "excluded (the source)" and
           reasons.get("broken", "").startswith("no valid host.json"),
           "hosts that cannot run the VM excluded, with the reason: %s" %
           reasons)
        ok(os.path.exists(os.path.join(top, "full", "index.rix")),
           "the index is written by the first ranking")

        # a new fingerprint on "empty" makes its index stale: merged again;
        # a malformed one is left out with a warning
        time.sleep(0.01)
        with open(os.path.join(top, "empty", "vms", "new.rfp"), "wb") as f:
            f.write(rc.write_fingerprint([("pc.ram", pages(1, 2, 3, 4, 5, 6,
                                                          7, 8))], 12, 14))
        with open(os.path.join(top, "half", "vms", "bad.rfp"), "wb") as f:
            f.write(b"QEMURFP\0garbage")
        warnings = []
        cands, _ = rc.rank(top, fp, req, exclude=["source"],
                           warn=warnings.append)
        ok([c["host"] for c in cands] == ["empty", "full", "half"],
           "a stale index is merged again (ties: most free RAM, then name)")
        ok(any("bad.rfp: left out" in w for w in warnings),
           "a malformed fingerprint is left out, with a warning: %s" %
           warnings)

        # the command line
        out = io.StringIO()
        with redirect_stdout(out):
            rcode = rc.main(["rank", top, "--fingerprint", vmfile,
                             "--requirements", reqfile, "--exclude",
                             "source", "--json"])
        got = json.loads(out.getvalue())
        ok(rcode == 0 and got["candidates"][0]["bytes-left"] == 0 and
           len(got["excluded"]) == 6, "rank --json")
        out = io.StringIO()
        with redirect_stdout(out):
            rc.main(["rank", top, "--fingerprint", vmfile,
                     "--requirements", reqfile])
        ok(out.getvalue().splitlines()[0].startswith("1. ") and
           "cannot run the VM: needs 2 vCPUs, 1 free" in out.getvalue(),
           "rank prints the ranking, then the hosts excluded")
        req["vcpus"] = 64
        with open(reqfile, "w") as f:
            json.dump(req, f)
        with redirect_stdout(io.StringIO()):
            ok(rc.main(["rank", top, "--fingerprint", vmfile,
                        "--requirements", reqfile]) == 1,
               "rank fails when no host can run the VM")
        with open(vmfile, "r+b") as f:
            f.seek(8)
            f.write(b"\0\0\0\x02")
        err = io.StringIO()
        with redirect_stderr(err):
            ok(rc.main(["rank", top, "--fingerprint", vmfile,
                        "--requirements", reqfile]) == 1 and
               "unsupported fingerprint version" in err.getvalue(),
               "rank refuses a malformed fingerprint, with the reason")
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            ok(rc.main(["merge", os.path.join(top, "half")]) == 0 and
               "bad.rfp: left out" in err.getvalue(), "merge a host")
    finally:
        shutil.rmtree(top)


def test_qmp():
    qemu = os.environ.get("QEMU_BINARY") or os.path.join(
        TOP, "build", "qemu", "build", "qemu-system-x86_64")
    if not os.access(qemu, os.X_OK):
        ok(False, "requirements over QMP: no QEMU at %s" % qemu)
        return
    top = tempfile.mkdtemp(prefix="region-chooser-qmp-")
    sock = os.path.join(top, "qmp.sock")
    proc = subprocess.Popen(
        [qemu, "-M", "q35", "-accel", "tcg", "-smp", "2", "-m", "64M",
         "-cpu", "qemu64", "-nodefaults", "-display", "none", "-S",
         "-device", "virtio-rng-pci,id=rng0", "-device", "pci-testdev",
         "-qmp", "unix:%s,server=on,wait=off" % sock],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        out = io.StringIO()
        with redirect_stdout(out):
            rcode = rc.main(["requirements", "--qmp", sock])
        req = json.loads(out.getvalue())
        ok(rcode == 0 and req == {
            "vcpus": 2, "ram-bytes": 64 << 20, "machine": "pc-q35-10.2",
            "cpu-model": "qemu64",
            "devices": ["pci-testdev", "virtio-rng-pci"]},
           "requirements read over QMP: %s" % req)
        fpfile = os.path.join(top, "vm.rfp")
        with redirect_stdout(io.StringIO()):
            rcode = rc.main(["fingerprint", "--qmp", sock, "--region-size",
                             "16384", fpfile])
        fp = rc.parse_fingerprint(open(fpfile, "rb").read())
        ok(rcode == 0 and fp.region_shift == 14 and
           any(name == "pc.ram" for name, _, _ in fp.blocks),
           "QEMU's fingerprint, asked for over QMP, parses")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(top)


def main():
    test_format()
    test_index()
    test_rank()
    test_qmp()
    for i, (good, what) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if good else "not ok", i, what))
    print("1..%d" % len(results))
    return 0 if all(g for g, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
