#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Choose a migration destination by the memory its VMs already hold.

common-regions (docs/devel/migration/common-regions.rst): the VMs of a
workgroup hold many identical regions of memory.  QEMU writes a VM's
fingerprint (QMP common-regions-fingerprint): the SHA-256 of each region
of its RAM that is not all zeros, and of each page of it that is not zero.
This tool merges the fingerprints of the VMs on each host into the
host's index, and ranks the hosts that can run a VM by the bytes that
would be left to send: the VM's pages that are not zero and that no VM
on the host holds.

The workgroup is a directory on storage every host reaches:

    WORKGROUP/<host>/host.json       what the host offers (see HOST_KEYS)
    WORKGROUP/<host>/vms/<vm>.rfp    fingerprints of the VMs it runs
    WORKGROUP/<host>/index.rix       their merged index (merge writes it)

Subcommands:

    fingerprint --qmp SOCK FILE      ask a VM's QEMU for its fingerprint
    requirements --qmp SOCK [-o F]   what a VM needs of a host, from QMP
    host DIR --vcpus N --ram BYTES [--cpu-model M]... [--machine T]...
         [--device T]...             write DIR/host.json
    merge HOSTDIR                    write HOSTDIR/index.rix
    rank WORKGROUP --fingerprint F --requirements R [--exclude H] [--json]
                                     rank the hosts, best first

Exit status: 0, or 1 on an error; rank also exits 1 when no host can run
the VM.
"""

import argparse
import glob
import hashlib
import json
import os
import struct
import sys
import tempfile

RFP_MAGIC = b"QEMURFP\0"
RFP_END_MAGIC = b"QRFPEND\0"
RFP_VERSION = 1
RFP_MAX_BLOCKS = 256
RFP_MAX_BLOCK_LENGTH = 1 << 48
RFP_BLOCK_END = (1 << 64) - 1
HASH_LEN = 32

RIX_MAGIC = b"QEMURIX\0"
RIX_VERSION = 1

# host.json: free capacity, and what the host's QEMU can run.  A list
# that is absent or empty does not restrict.
HOST_KEYS = {
    "vcpus": "free vCPUs",
    "ram-bytes": "free RAM, bytes",
    "cpu-models": "CPU models the host can run",
    "machines": "machine types its QEMU has",
    "devices": "device types its QEMU has",
}


class FormatError(Exception):
    """A fingerprint or index that is not valid."""


class Fingerprint:
    """A parsed fingerprint: geometry, blocks, and per region its offset,
    mask, hash and page hashes."""

    def __init__(self, page_shift, region_shift):
        self.page_shift = page_shift
        self.region_shift = region_shift
        self.blocks = []        # (idstr, used_length, [regions])

    @property
    def page_size(self):
        return 1 << self.page_shift

    def regions(self):
        for _, _, regions in self.blocks:
            yield from regions


class Region:
    __slots__ = ("offset", "mask", "npages", "hash", "page_hashes")

    def __init__(self, offset, mask, npages, rhash, page_hashes):
        self.offset = offset
        self.mask = mask
        self.npages = npages
        self.hash = rhash
        self.page_hashes = page_hashes      # one per bit of mask, lowest first


def geometry_valid(page_shift, region_shift):
    return 12 <= page_shift <= 16 and \
        page_shift <= region_shift <= page_shift + 6


def parse_fingerprint(data):
    """Parse and check a fingerprint (bytes) as QEMU's rfp_scan() does.

    Raises FormatError with the same reasons."""
    pos = 0

    def take(n, what):
        nonlocal pos
        if pos + n > len(data):
            raise FormatError("truncated " + what)
        pos += n
        return data[pos - n:pos]

    def u32(what):
        return struct.unpack(">I", take(4, what))[0]

    def u64(what):
        return struct.unpack(">Q", take(8, what))[0]

    if take(8, "header") != RFP_MAGIC:
        raise FormatError("not a fingerprint (bad magic)")
    if u32("header") != RFP_VERSION:
        raise FormatError("unsupported fingerprint version")
    page_shift, region_shift, nr_blocks = u32("header"), u32("header"), \
        u32("header")
    if u64("header") != 0:
        raise FormatError("reserved header field is not zero")
    if not geometry_valid(page_shift, region_shift):
        raise FormatError("invalid page or region size")
    if not 1 <= nr_blocks <= RFP_MAX_BLOCKS:
        raise FormatError("invalid number of blocks")
    fp = Fingerprint(page_shift, region_shift)
    rsize = 1 << region_shift
    names = set()
    total_regions = total_pages = 0
    for _ in range(nr_blocks):
        idlen = take(1, "block")[0]
        if not idlen:
            raise FormatError("empty block name")
        name = take(idlen, "block")
        if b"\0" in name:
            raise FormatError("NUL in block name")
        used = u64("block")
        if not used or used > RFP_MAX_BLOCK_LENGTH or \
                used & (fp.page_size - 1):
            raise FormatError("invalid block length")
        if name in names:
            raise FormatError("two blocks with one name")
        names.add(name)
        regions = []
        nxt = 0
        while True:
            off = u64("block")
            if off == RFP_BLOCK_END:
                break
            if off & (rsize - 1):
                raise FormatError("unaligned region offset")
            if off < nxt or off >= used:
                raise FormatError("region offset out of order or range")
            nxt = off + rsize
            npages = (min(used, off + rsize) - off) >> page_shift
            mask = u64("region")
            if not mask or mask >> npages:
                raise FormatError("invalid page mask")
            rhash = take(HASH_LEN, "region")
            n = bin(mask).count("1")
            raw = take(n * HASH_LEN, "region")
            regions.append(Region(off, mask, npages, rhash,
                                  [raw[i * HASH_LEN:(i + 1) * HASH_LEN]
                                   for i in range(n)]))
        if u64("block") != len(regions):
            raise FormatError("block record count does not match")
        fp.blocks.append((name.decode("utf-8", "replace"), used, regions))
        total_regions += len(regions)
        total_pages += sum(len(r.page_hashes) for r in regions)
    if take(8, "trailer") != RFP_END_MAGIC:
        raise FormatError("bad trailer magic")
    if (u64("trailer"), u64("trailer")) != (total_regions, total_pages):
        raise FormatError("trailer counts do not match")
    if pos != len(data):
        raise FormatError("bytes after the trailer")
    return fp


def write_fingerprint(blocks, page_shift=12, region_shift=16):
    """The fingerprint QEMU writes of @blocks, a list of (idstr, bytes).

    For tests and for checking QEMU's output: the same layout as
    rfp_writer_block(), with hashlib's SHA-256."""
    psize, rsize = 1 << page_shift, 1 << region_shift
    zero = bytes(psize)
    zero_hash = hashlib.sha256(zero).digest()
    out = [RFP_MAGIC, struct.pack(">IIIIQ", RFP_VERSION, page_shift,
                                  region_shift, len(blocks), 0)]
    total_regions = total_pages = 0
    for name, mem in blocks:
        raw = name.encode()
        out += [bytes([len(raw)]), raw, struct.pack(">Q", len(mem))]
        records = 0
        for off in range(0, len(mem), rsize):
            hashes, mask, pages = [], 0, []
            for i, p in enumerate(range(off, min(len(mem), off + rsize),
                                        psize)):
                page = mem[p:p + psize]
                if page == zero:
                    hashes.append(zero_hash)
                else:
                    h = hashlib.sha256(page).digest()
                    hashes.append(h)
                    pages.append(h)
                    mask |= 1 << i
            if not mask:
                continue
            out += [struct.pack(">QQ", off, mask),
                    hashlib.sha256(b"".join(hashes)).digest()] + pages
            records += 1
            total_pages += len(pages)
        out.append(struct.pack(">QQ", RFP_BLOCK_END, records))
        total_regions += records
    out += [RFP_END_MAGIC, struct.pack(">QQ", total_regions, total_pages)]
    return b"".join(out)


class Index:
    """The merged index of a host: the region and page hashes its VMs
    hold, for one geometry."""

    def __init__(self, page_shift, region_shift):
        self.page_shift = page_shift
        self.region_shift = region_shift
        self.regions = set()
        self.pages = set()

    def add(self, fp):
        if (fp.page_shift, fp.region_shift) != (self.page_shift,
                                                self.region_shift):
            raise FormatError("fingerprint of another geometry (pages of "
                              "%d, regions of %d bytes)" %
                              (fp.page_size, 1 << fp.region_shift))
        for r in fp.regions():
            self.regions.add(r.hash)
            self.pages.update(r.page_hashes)

    def encode(self):
        head = RIX_MAGIC + struct.pack(">IIIIQQ", RIX_VERSION,
                                       self.page_shift, self.region_shift, 0,
                                       len(self.regions), len(self.pages))
        return head + b"".join(sorted(self.regions)) + \
            b"".join(sorted(self.pages))

    @classmethod
    def decode(cls, data):
        if len(data) < 40 or data[:8] != RIX_MAGIC:
            raise FormatError("not a region index")
        version, ps, rs, res, nr, np_ = struct.unpack(">IIIIQQ", data[8:40])
        if version != RIX_VERSION or res:
            raise FormatError("unsupported region index version")
        if not geometry_valid(ps, rs):
            raise FormatError("invalid page or region size")
        if len(data) != 40 + (nr + np_) * HASH_LEN:
            raise FormatError("region index length does not match")
        idx = cls(ps, rs)
        hashes = [data[i:i + HASH_LEN] for i in range(40, len(data), HASH_LEN)]
        if hashes[:nr] != sorted(set(hashes[:nr])) or \
                hashes[nr:] != sorted(set(hashes[nr:])):
            raise FormatError("region index hashes not sorted and unique")
        idx.regions = set(hashes[:nr])
        idx.pages = set(hashes[nr:])
        return idx


def atomic_write(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".",
                               prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def merge_host(hostdir, geometry=None, warn=None):
    """Merge HOSTDIR/vms/*.rfp into an Index and write HOSTDIR/index.rix.

    A fingerprint that is not valid, or of another geometry than the
    first valid one (or @geometry), is left out, with a call to @warn.
    Returns the index, None when no fingerprint is valid."""
    idx = None
    for path in sorted(glob.glob(os.path.join(hostdir, "vms", "*.rfp"))):
        try:
            with open(path, "rb") as f:
                fp = parse_fingerprint(f.read())
            if idx is None:
                idx = Index(*(geometry or (fp.page_shift, fp.region_shift)))
            idx.add(fp)
        except (FormatError, OSError) as e:
            if warn:
                warn("%s: left out: %s" % (path, e))
    if idx is not None:
        atomic_write(os.path.join(hostdir, "index.rix"), idx.encode())
    return idx


def load_index(hostdir, geometry, warn=None):
    """The host's index: index.rix when it is newer than every
    fingerprint, merged again otherwise."""
    rix = os.path.join(hostdir, "index.rix")
    fps = glob.glob(os.path.join(hostdir, "vms", "*.rfp"))
    try:
        if os.path.getmtime(rix) >= max([os.path.getmtime(p) for p in fps],
                                        default=0):
            with open(rix, "rb") as f:
                idx = Index.decode(f.read())
            if (idx.page_shift, idx.region_shift) == geometry:
                return idx
    except (OSError, FormatError) as e:
        if warn and os.path.exists(rix):
            warn("%s: merged again: %s" % (rix, e))
    return merge_host(hostdir, geometry, warn)


def bytes_left(fp, idx):
    """(bytes left to send, bytes the host holds, bytes not zero) of the
    VM's fingerprint against a host's index (None: it holds nothing).

    A region whose hash the host holds costs nothing; otherwise each page
    that is not zero costs a page unless the host holds its hash.  Zero
    pages cost nothing here: the stream sends them as flags."""
    held = total = 0
    for r in fp.regions():
        n = len(r.page_hashes)
        total += n
        if idx is None:
            continue
        if r.hash in idx.regions:
            held += n
        else:
            held += sum(1 for h in r.page_hashes if h in idx.pages)
    return (total - held) * fp.page_size, held * fp.page_size, \
        total * fp.page_size


def check_host(req, host):
    """Why a host cannot run a VM needing @req, or None."""
    if req.get("vcpus", 0) > host.get("vcpus", 0):
        return "needs %d vCPUs, %d free" % (req["vcpus"], host.get("vcpus", 0))
    if req.get("ram-bytes", 0) > host.get("ram-bytes", 0):
        return "needs %d MiB of RAM, %d MiB free" % (
            req["ram-bytes"] >> 20, host.get("ram-bytes", 0) >> 20)
    for key, what in (("cpu-models", "cpu-model"), ("machines", "machine")):
        if host.get(key) and req.get(what) and req[what] not in host[key]:
            return "no %s %s" % (what.replace("-", " "), req[what])
    if host.get("devices"):
        missing = sorted(set(req.get("devices", [])) - set(host["devices"]))
        if missing:
            return "no device %s" % ", ".join(missing)
    return None


def rank(workgroup, fp, req, exclude=(), warn=None):
    """Rank the hosts of @workgroup for the VM of fingerprint @fp and
    requirements @req.  Returns (candidates, excluded): candidates are
    dicts with host, bytes-left, bytes-held, bytes-total, best first
    (fewest bytes left, then most free RAM, then name); excluded are
    dicts with host and reason."""
    candidates, excluded = [], []
    for hostdir in sorted(glob.glob(os.path.join(workgroup, "*", ""))):
        name = os.path.basename(os.path.dirname(hostdir))
        if name in exclude:
            excluded.append({"host": name, "reason": "excluded (the source)"})
            continue
        try:
            with open(os.path.join(hostdir, "host.json")) as f:
                host = json.load(f)
            if not isinstance(host, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            excluded.append({"host": name,
                             "reason": "no valid host.json: %s" % e})
            continue
        why = check_host(req, host)
        if why:
            excluded.append({"host": name, "reason": why})
            continue
        idx = load_index(hostdir, (fp.page_shift, fp.region_shift), warn)
        left, held, total = bytes_left(fp, idx)
        candidates.append({"host": name, "bytes-left": left,
                           "bytes-held": held, "bytes-total": total,
                           "free-ram-bytes": host.get("ram-bytes", 0)})
    candidates.sort(key=lambda c: (c["bytes-left"], -c["free-ram-bytes"],
                                   c["host"]))
    return candidates, excluded


def qmp_connect(sock):
    qemu_python = os.environ.get("QEMU_PYTHON") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "qemu",
        "python")
    sys.path.insert(0, qemu_python)
    from qemu.qmp.legacy import QEMUMonitorProtocol
    mon = QEMUMonitorProtocol(sock)
    mon.connect()
    return mon


def qom_type(mon, path):
    return mon.cmd("qom-get", path=path, property="type")


def requirements(mon):
    """What the VM behind QMP @mon needs of a host."""
    cpus = mon.cmd("query-cpus-fast")
    mem = mon.cmd("query-memory-size-summary")
    req = {"vcpus": len(cpus),
           "ram-bytes": mem["base-memory"] + mem.get("plugged-memory", 0),
           "machine": qom_type(mon, "/machine").removesuffix("-machine")}
    if cpus:
        cpu_type = qom_type(mon, cpus[0]["qom-path"])
        req["cpu-model"] = cpu_type.rsplit("-", 2)[0] \
            if cpu_type.endswith("-cpu") else cpu_type
    devices = set()
    for parent in ("/machine/peripheral", "/machine/peripheral-anon"):
        for child in mon.cmd("qom-list", path=parent):
            if child["type"].startswith("child<"):
                devices.add(child["type"][6:-1])
    req["devices"] = sorted(devices)
    return req


def human(n):
    return "%.1f MiB" % (n / (1 << 20))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fingerprint")
    p.add_argument("--qmp", required=True)
    p.add_argument("--region-size", type=int)
    p.add_argument("file")
    p = sub.add_parser("requirements")
    p.add_argument("--qmp", required=True)
    p.add_argument("-o", "--output")
    p = sub.add_parser("host")
    p.add_argument("dir")
    p.add_argument("--vcpus", type=int, required=True)
    p.add_argument("--ram", type=int, required=True, help="bytes")
    p.add_argument("--cpu-model", action="append", default=[])
    p.add_argument("--machine", action="append", default=[])
    p.add_argument("--device", action="append", default=[])
    p = sub.add_parser("merge")
    p.add_argument("hostdir")
    p = sub.add_parser("rank")
    p.add_argument("workgroup")
    p.add_argument("--fingerprint", required=True)
    p.add_argument("--requirements", required=True)
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    def warn(msg):
        print("region_chooser: " + msg, file=sys.stderr)

    try:
        if a.cmd == "fingerprint":
            mon = qmp_connect(a.qmp)
            args = {"filename": os.path.abspath(a.file)}
            if a.region_size:
                args["region-size"] = a.region_size
            print(json.dumps(mon.cmd("common-regions-fingerprint", **args)))
            mon.close()
        elif a.cmd == "requirements":
            mon = qmp_connect(a.qmp)
            text = json.dumps(requirements(mon), indent=1) + "\n"
            mon.close()
            if a.output:
                atomic_write(a.output, text.encode())
            else:
                sys.stdout.write(text)
        elif a.cmd == "host":
            os.makedirs(os.path.join(a.dir, "vms"), exist_ok=True)
            host = {"vcpus": a.vcpus, "ram-bytes": a.ram,
                    "cpu-models": a.cpu_model, "machines": a.machine,
                    "devices": a.device}
            atomic_write(os.path.join(a.dir, "host.json"),
                         (json.dumps(host, indent=1) + "\n").encode())
        elif a.cmd == "merge":
            idx = merge_host(a.hostdir, warn=warn)
            if idx is None:
                warn("%s: no valid fingerprint" % a.hostdir)
                return 1
            print("%d region hashes, %d page hashes" %
                  (len(idx.regions), len(idx.pages)))
        elif a.cmd == "rank":
            with open(a.fingerprint, "rb") as f:
                fp = parse_fingerprint(f.read())
            with open(a.requirements) as f:
                req = json.load(f)
            cands, excl = rank(a.workgroup, fp, req, a.exclude, warn)
            if a.json:
                print(json.dumps({"candidates": cands, "excluded": excl},
                                 indent=1))
            else:
                for i, c in enumerate(cands, 1):
                    print("%d. %s: %s left to send, %s held of %s" %
                          (i, c["host"], human(c["bytes-left"]),
                           human(c["bytes-held"]), human(c["bytes-total"])))
                for e in excl:
                    print("-  %s: cannot run the VM: %s" %
                          (e["host"], e["reason"]))
            return 0 if cands else 1
    except FormatError as e:
        warn("%s: %s" % (getattr(a, "fingerprint", ""), e))
        return 1
    except (OSError, ValueError) as e:
        warn(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
