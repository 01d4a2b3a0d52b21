#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check a guest's disk-backed-pages map against its RAM and the disk.

    diskmap_check.py check DUMP --map GPA --disk IMAGE
    diskmap_check.py guest [--mib 160] [--qemu PATH] [--keep]

check: DUMP is guest RAM as QMP pmemsave writes it from address 0 (file
offset = guest-physical address) or an ELF core from dump-guest-memory
(its PT_LOAD segments give the addresses).  The map at GPA is parsed
exactly as docs/devel/migration/disk-backed-pages.rst specifies: the
header and segment checks that refuse the whole map, then each record,
ignored (and counted by reason) for reserved flags, a page outside RAM,
a frame beyond the disk, a page holding part of the map, or a page named
more than once.  Every other record with its modified flag clear must
name a page whose 4096 bytes equal those of the raw IMAGE at frame *
4096.  Prints the counts; exit status 1 when the map is refused or any
page mismatches.

guest: proves diskmap (bench/workloads/diskmap.c) right end to end.
Boots the benchmark guest as the harness does (TCG unless
MIGBENCH_ACCEL=kvm), fills the page cache with --mib MiB of the disk's
files, runs diskmap through the harness's hook, forces memory
compaction and page cache reclaim in the guest, asks diskmap whether any
page moved, stops the guest, saves its RAM with pmemsave and checks it
as above.  The dump goes to build/bench/ and is deleted unless --keep.
"""

import argparse
import mmap
import os
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PAGE = 4096
MAGIC = 0x50414d4b53494451          # "QDISKMAP"
VERSION = 1
HEADER_SIZE = 64
SEG_SIZE = 16
MAX_SEGS = (PAGE - HEADER_SIZE) // SEG_SIZE     # 252
REC_SIZE = 16
MAX_RECS = 1 << 24
REC_MODIFIED = 0x1
REC_FLAGS = 0xfff


class MapRefused(Exception):
    """The whole map is refused, as QEMU would refuse it."""


class GuestRAM:
    """Guest-physical memory from a pmemsave file or an ELF core."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.mm = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        # (gpa, length, file offset) of each piece of RAM
        self.ranges = [(0, len(self.mm), 0)]
        if self.mm[:4] == b"\x7fELF":
            self.ranges = self._elf_loads()
            self.kind = "ELF core, %d PT_LOAD segments" % len(self.ranges)
        else:
            self.kind = "raw pmemsave, %d MiB from address 0" % (
                len(self.mm) >> 20)

    def _elf_loads(self):
        if self.mm[4] != 2 or self.mm[5] != 1:
            raise SystemExit("only little-endian ELF64 cores are supported")
        phoff, = struct.unpack_from("<Q", self.mm, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", self.mm, 0x36)
        out = []
        for i in range(phnum):
            p_type, _, p_offset, _, p_paddr, p_filesz, _, _ = \
                struct.unpack_from("<IIQQQQQQ", self.mm, phoff + i * phentsize)
            if p_type == 1 and p_filesz:            # PT_LOAD
                out.append((p_paddr, p_filesz, p_offset))
        return out

    def _find(self, gpa, length):
        for base, size, off in self.ranges:
            if base <= gpa and gpa + length <= base + size:
                return off + gpa - base
        return None

    def in_ram(self, gpa, length):
        return self._find(gpa, length) is not None

    def read(self, gpa, length):
        off = self._find(gpa, length)
        if off is None:
            raise MapRefused("0x%x+%d is not in the dump" % (gpa, length))
        return self.mm[off:off + length]


def overlaps(a, alen, b, blen):
    return a < b + blen and b < a + alen


def parse_header(ram, map_gpa):
    """Header and segments, refused exactly where QEMU refuses them."""
    if map_gpa % PAGE:
        raise MapRefused("the map address is not 4096-aligned")
    if not ram.in_ram(map_gpa, PAGE):
        raise MapRefused("the map header is not in guest RAM")
    page = ram.read(map_gpa, PAGE)
    (magic, version, nseg, generation, count, page_size,
     frame_size) = struct.unpack_from("<QIIQQII", page, 0)
    reserved = struct.unpack_from("<QQQ", page, 40)
    if magic != MAGIC:
        raise MapRefused("bad magic 0x%x" % magic)
    if version != VERSION:
        raise MapRefused("unsupported version %d" % version)
    if page_size != PAGE or frame_size != PAGE:
        raise MapRefused("page and frame size must be 4096 (%d, %d)" %
                         (page_size, frame_size))
    if any(reserved):
        raise MapRefused("reserved header fields are not zero")
    if generation & 1:
        raise MapRefused("odd generation %d: the guest is changing the map" %
                         generation)
    if not 1 <= nseg <= MAX_SEGS:
        raise MapRefused("bad segment count %d" % nseg)
    if count > MAX_RECS:
        raise MapRefused("too many records (%d)" % count)
    segs = []
    for i in range(nseg):
        gpa, records = struct.unpack_from("<QQ", page,
                                          HEADER_SIZE + i * SEG_SIZE)
        length = records * REC_SIZE
        if gpa % PAGE or not records or records > MAX_RECS:
            raise MapRefused("segment %d is unaligned, empty or too long" % i)
        if not ram.in_ram(gpa, length):
            raise MapRefused("segment %d is not in guest RAM" % i)
        if overlaps(gpa, length, map_gpa, PAGE) or \
                any(overlaps(gpa, length, g, n * REC_SIZE) for g, n in segs):
            raise MapRefused("segment %d overlaps another or the header" % i)
        segs.append((gpa, records))
    if sum(n for _, n in segs) != count:
        raise MapRefused("the record count %d does not match the segments "
                         "(%d)" % (count, sum(n for _, n in segs)))
    return generation, count, segs


def check(ram, map_gpa, disk_path, log=print):
    """Check every record; returns the counts (a dict)."""
    generation, count, segs = parse_header(ram, map_gpa)
    disk_size = os.path.getsize(disk_path)
    in_map = [(map_gpa, PAGE)] + [(g, n * REC_SIZE) for g, n in segs]
    c = {"records": count, "segments": len(segs), "generation": generation,
         "matched": 0, "matched_zero": 0, "mismatched": 0, "modified": 0,
         "ignored": 0, "ignored_flags": 0, "ignored_outside_ram": 0,
         "ignored_outside_disk": 0, "ignored_in_map": 0,
         "ignored_duplicate": 0}
    recs = []
    for gpa, n in segs:
        data = ram.read(gpa, n * REC_SIZE)
        for i in range(n):
            addr, frame = struct.unpack_from("<QQ", data, i * REC_SIZE)
            page = addr & ~REC_FLAGS
            if addr & REC_FLAGS & ~REC_MODIFIED:
                why = "flags"
            elif not ram.in_ram(page, PAGE):
                why = "outside_ram"
            elif frame >= disk_size // PAGE:
                why = "outside_disk"
            elif any(overlaps(page, PAGE, b, blen) for b, blen in in_map):
                why = "in_map"
            else:
                recs.append((page, frame, bool(addr & REC_MODIFIED)))
                continue
            c["ignored_" + why] += 1
    # a page named more than once: which frame is right cannot be known
    seen = {}
    for page, _, _ in recs:
        seen[page] = seen.get(page, 0) + 1
    zero = bytes(PAGE)
    shown = 0
    with open(disk_path, "rb") as f:
        disk = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for page, frame, modified in recs:
            if seen[page] > 1:
                c["ignored_duplicate"] += 1
            elif modified:
                c["modified"] += 1
            elif ram.read(page, PAGE) == disk[frame * PAGE:(frame + 1) * PAGE]:
                c["matched"] += 1
                c["matched_zero"] += disk[frame * PAGE:
                                          (frame + 1) * PAGE] == zero
            else:
                c["mismatched"] += 1
                if shown < 10:
                    log("mismatch: page 0x%x frame %d (disk offset 0x%x)" %
                        (page, frame, frame * PAGE))
                    shown += 1
        disk.close()
    c["ignored"] = sum(v for k, v in c.items() if k.startswith("ignored_"))
    return c


def summary(c):
    return ("records %d in %d segments (generation %d): matched %d (%d of "
            "them zero pages), mismatched %d, modified %d, ignored %d "
            "(flags %d, outside RAM %d, outside disk %d, in the map %d, "
            "duplicate %d)" % (
                c["records"], c["segments"], c["generation"], c["matched"],
                c["matched_zero"], c["mismatched"], c["modified"],
                c["ignored"], c["ignored_flags"], c["ignored_outside_ram"],
                c["ignored_outside_disk"], c["ignored_in_map"],
                c["ignored_duplicate"]))


def cmd_check(args):
    ram = GuestRAM(args.dump)
    print("dump: %s" % ram.kind)
    try:
        c = check(ram, int(args.map, 0), args.disk)
    except MapRefused as e:
        print("map 0x%x REFUSED: %s" % (int(args.map, 0), e))
        return 1
    print(summary(c))
    ok = c["mismatched"] == 0 and c["matched"] > 0
    print("diskmap_check: %s" % ("OK" if ok else "FAIL"))
    return 0 if ok else 1


def cmd_guest(args):
    import configs
    import workload
    from vm import VM, read_guest_env

    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    build = os.environ.get("BUILD", os.path.join(top, "build"))
    guest = read_guest_env(build)
    os.makedirs(os.path.join(build, "bench"), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="diskmap-", dir=os.path.join(build,
                                                                   "bench"))
    accel = os.environ.get("MIGBENCH_ACCEL", "tcg")
    mem_mib = configs.DEFAULTS["mem_mib"]
    sc = configs.Scenario("diskmap-check", "", cache_mib=args.mib)
    dump = os.path.join(workdir, "ram.bin")
    vm = None
    try:
        vm = VM(args.qemu, workdir, "guest", guest, accel=accel,
                mem_mib=mem_mib)
        con = vm.open_console()
        con.wait_ready(configs.DEFAULTS["boot_timeout"])
        _, txt = con.run("pagecache -M %d -c /mnt/MANIFEST /mnt/data/f*" %
                         args.mib, timeout=120)
        print(txt.strip().splitlines()[-1])
        t = time.monotonic()
        dm = workload.start_diskmap(con, sc)
        print("%s (%.1f s)" % (dm["output"].replace("\n", "; "),
                               time.monotonic() - t))
        # What could move or drop the pages: compaction, reclaim.
        con.run("echo 1 >/proc/sys/vm/compact_memory; sync; "
                "echo 3 >/proc/sys/vm/drop_caches", timeout=120)
        chk = workload.diskmap_check(con)
        print(chk["line"])
        vm.qmp.cmd("stop")
        vm.qmp.cmd("pmemsave", {"val": 0, "size": mem_mib << 20,
                                "filename": dump}, timeout=300)
        vm.qmp.cmd("cont")
        ram = GuestRAM(dump)
        print("dump: %s" % ram.kind)
        try:
            c = check(ram, dm["map"], guest["DISK"])
        except MapRefused as e:
            print("map 0x%x REFUSED: %s" % (dm["map"], e))
            return 1
        print(summary(c))
        ok = (c["mismatched"] == 0 and c["matched"] == dm["records"] and
              chk["ok"])
        print("diskmap_check: %s" % ("OK" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        if vm:
            vm.kill()
        if not args.keep:
            if os.path.exists(dump):
                os.unlink(dump)
            for name in os.listdir(workdir):
                os.unlink(os.path.join(workdir, name))
            os.rmdir(workdir)
        else:
            print("kept %s" % workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check a RAM dump")
    c.add_argument("dump", help="pmemsave output (from address 0) or ELF core")
    c.add_argument("--map", required=True, help="map address (0x...)")
    c.add_argument("--disk", required=True, help="the raw disk image")
    g = sub.add_parser("guest", help="boot the bench guest and check diskmap")
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    g.add_argument("--qemu", default=os.path.join(
        os.environ.get("BUILD", os.path.join(top, "build")), "qemu", "build",
        "qemu-system-x86_64"))
    g.add_argument("--mib", type=int, default=160,
                   help="MiB of files to cache and map (default 160)")
    g.add_argument("--keep", action="store_true",
                   help="keep the RAM dump and the QEMU log")
    args = ap.parse_args()
    return cmd_check(args) if args.cmd == "check" else cmd_guest(args)


if __name__ == "__main__":
    sys.exit(main())
