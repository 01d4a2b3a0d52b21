#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The libvirt tier's end-to-end part, as TAP: virsh migrate with each flag.

Two libvirt QEMU daemons (virtqemud of build/libvirt, each with its own
configuration, runtime, cache and state directories and its own host_uuid,
so that libvirt treats them as two hosts) run in session mode as the
unprivileged user "migvirt", created if missing.  The real guest of the
bench (build/guest: kernel, initramfs with the workloads, the shared raw
disk, read-only) is defined and started on host A with the patched QEMU,
its workloads are started (a checksummed region, a dirtier, page cache
of the shared disk's files), and it is migrated back and forth between
the two hosts with "virsh migrate --live" and one capability's flags at
a time.  After each migration the guest is verified on the destination
as the bench harness verifies it (scripts/bench/workload.py verify: the
region's checksum, the dirtier's own check, the page cache's files), and
the source must no longer run it.

For the capabilities whose counters libvirt reports (write faults,
adaptive compression's bytes, disk-backed pages, the spill file's bytes
and failovers), "virsh domjobinfo --completed" on the destination must
show them at work.

In system mode libvirt makes /dev/userfaultfd usable by QEMU in the
domain's mount namespace (qemuProcessAllowPostCopyMigration), which
write-fault-groups needs; session mode has no such namespace, so for
the duration of the test the device's group becomes migvirt's (mode
0660), and it is restored after.

One shared-file-spill migration goes through a TCP forwarder that breaks
the connection part way (the destination listens on 127.0.0.2, the
source connects to the forwarder on 127.0.0.1, the same port): it must
complete through virsh, through the file.  The refusals are checked end
to end as well: a destination whose QEMU lacks a capability (the
unpatched base build), and rdma-pin-budget over TCP; after each the
guest still runs on the source, intact.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
sys.path.insert(0, os.path.join(TOP, "scripts", "bench"))

import workload  # noqa: E402
from configs import Scenario  # noqa: E402
from forwarder import Forwarder  # noqa: E402
from vm import Console, GuestError, read_guest_env  # noqa: E402

LV_BLD = os.path.join(BUILD, "libvirt", "build")
QEMU = os.path.join(BUILD, "qemu", "build", "qemu-system-x86_64")
QEMU_BASE = os.path.join(BUILD, "qemu-base", "build", "qemu-system-x86_64")
E2E = os.path.join(BUILD, "libvirt-e2e")
USER = "migvirt"
DOMAIN = "migtest"
MEM_MIB = 512

# The workloads: small enough for TCG, busy enough that pages are re-sent
# and the page cache holds files of the shared disk.
SCENARIO = Scenario("libvirt", "page cache + region + dirtier",
                    cache_mib=64, region_mib=32, dirty_mib=32,
                    dirty_rate=20, dirty_order="seq")

n = 0
failed = 0


def log(msg):
    print("# " + msg.replace("\n", "\n# "), flush=True)


def tap(ok, what, why=""):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(f"{'ok' if ok else 'not ok'} {n} {what}"
          f"{' # ' + why if why and not ok else ''}", flush=True)
    return ok


def ensure_user():
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", USER], check=True)
        pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


class Host:
    """One virtqemud in session mode with directories of its own."""

    def __init__(self, name, port_min, uid, gid):
        self.name = name
        self.dir = os.path.join(E2E, name)
        self.uid, self.gid = uid, gid
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "mig-e2e-" + name))
        self.port_min = port_min
        self.env = dict(
            os.environ,
            HOME=os.path.join(self.dir, "home"),
            XDG_CONFIG_HOME=os.path.join(self.dir, "config"),
            XDG_RUNTIME_DIR=os.path.join(self.dir, "run"),
            XDG_CACHE_HOME=os.path.join(self.dir, "cache"),
            XDG_STATE_HOME=os.path.join(self.dir, "state"),
            LD_LIBRARY_PATH=os.path.join(LV_BLD, "src"),
            LIBVIRT_DIR_OVERRIDE="1",
            LIBVIRT_LOG_OUTPUTS="",
        )
        self.sock = os.path.join(self.dir, "run", "libvirt", "virtqemud-sock")
        self.uri = "qemu+unix:///session?socket=" + self.sock
        self.ser = os.path.join(self.dir, "serial.sock")
        self.proc = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("home", "config/libvirt", "run", "cache", "state"):
            os.makedirs(os.path.join(self.dir, d))
        with open(os.path.join(self.dir, "config", "libvirt",
                               "virtqemud.conf"), "w") as f:
            f.write('host_uuid = "%s"\n' % self.uuid)
            f.write('log_outputs = "3:file:%s/virtqemud.log"\n' % self.dir)
        with open(os.path.join(self.dir, "config", "libvirt",
                               "qemu.conf"), "w") as f:
            f.write('stdio_handler = "file"\n')
            f.write("migration_port_min = %d\n" % self.port_min)
            f.write("migration_port_max = %d\n" % (self.port_min + 15))
        subprocess.run(["chown", "-R", "%d:%d" % (self.uid, self.gid),
                        self.dir], check=True)
        self.log = open(os.path.join(self.dir, "daemon.out"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(LV_BLD, "src", "virtqemud"), "--timeout", "0"],
            env=self.env, user=self.uid, group=self.gid, extra_groups=[],
            stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("virtqemud %s did not start: %s" %
                                   (self.name, self.tail("daemon.out")))
            time.sleep(0.1)

    def tail(self, fname, nbytes=1500):
        try:
            with open(os.path.join(self.dir, fname), "rb") as f:
                return f.read()[-nbytes:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def virsh(self, *args, timeout=120, check=True):
        r = subprocess.run([os.path.join(LV_BLD, "tools", "virsh"),
                            "-q", "-c", self.uri, *args],
                           env=self.env, user=self.uid, group=self.gid,
                           extra_groups=[], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("virsh %s on %s: %s" %
                               (" ".join(args), self.name,
                                (r.stderr or r.stdout).strip()))
        return r

    def state(self):
        r = self.virsh("domstate", DOMAIN, check=False)
        return r.stdout.strip() if r.returncode == 0 else "absent"

    def qmp(self, command, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        r = self.virsh("qemu-monitor-command", DOMAIN, json.dumps(msg))
        return json.loads(r.stdout)["return"]


class UffdAccess:
    """/dev/userfaultfd usable by @gid while the test runs."""

    PATH = "/dev/userfaultfd"

    def __init__(self, gid):
        self.saved = None
        try:
            st = os.stat(self.PATH)
        except OSError:
            return
        self.saved = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
        os.chown(self.PATH, st.st_uid, gid)
        os.chmod(self.PATH, 0o660)

    def restore(self):
        if self.saved:
            uid, gid, mode = self.saved
            os.chown(self.PATH, uid, gid)
            os.chmod(self.PATH, mode)
            self.saved = None


def domain_xml(host, guest, emulator=QEMU):
    return f"""<domain type='qemu'>
  <name>{DOMAIN}</name>
  <uuid>{uuid.uuid5(uuid.NAMESPACE_URL, 'mig-e2e-domain')}</uuid>
  <memory unit='MiB'>{MEM_MIB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{guest['KERNEL']}</kernel>
    <initrd>{guest['INITRD']}</initrd>
    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{guest['DISK']}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='unix'>
      <source mode='bind' path='{host.ser}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def dest_xml(src, dst, emulator=None):
    """The migratable XML of the running domain, with the destination's
    serial socket (both hosts are this machine) and maybe its emulator."""
    xml = src.virsh("dumpxml", "--migratable", DOMAIN).stdout
    xml = xml.replace(src.ser, dst.ser)
    if emulator:
        xml = re.sub(r"<emulator>[^<]*</emulator>",
                     "<emulator>%s</emulator>" % emulator, xml)
    path = os.path.join(E2E, "dest-%s.xml" % dst.name)
    with open(path, "w") as f:
        f.write(xml)
    os.chmod(path, 0o644)
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Guest:
    """The domain, wherever it runs, and its serial agent."""

    def __init__(self, guest_env):
        self.env = guest_env
        self.con = None

    def boot(self, host):
        path = os.path.join(E2E, "domain.xml")
        with open(path, "w") as f:
            f.write(domain_xml(host, self.env))
        os.chmod(path, 0o644)
        host.virsh("create", path)
        self.attach(host)
        self.con.wait_ready(120)
        self.con.run("mkdir -p %s" % workload.WL)
        workload.start_workload(self.con, SCENARIO)
        self.diskmap = workload.start_diskmap(self.con, SCENARIO)
        time.sleep(SCENARIO.warmup_s)

    def attach(self, host):
        if self.con:
            self.con.close()
        self.con = Console(host.ser, timeout=30)

    def verify(self, where):
        v = workload.verify(self.con, SCENARIO, where)
        bad = [k for k in ("region_ok", "dirtier_ok", "pagecache_ok")
               if not v.get(k)]
        return bad, v


def migrate(guest, src, dst, flags, name, cut=None, expect_error=None,
            dest_emulator=None, bandwidth=None, check_info=None):
    """virsh migrate --live from @src to @dst with @flags; then the
    guest is checked where it must run.  @check_info, given the
    completed job's statistics and the forwarder, says why the
    capability was not at work, or None.  Returns True when it
    passed."""
    fwd = None
    if cut is not None:
        # the destination listens on 127.0.0.2:port, the source connects
        # to the forwarder on 127.0.0.1:port
        fwd = Forwarder(0, cut=cut, timeout=120, dst_host="127.0.0.2")
        fwd.dst_port = fwd.port
        extra = ["--listen-address", "127.0.0.2",
                 "--migrateuri", "tcp://127.0.0.1:%d" % fwd.port]
    else:
        extra = ["--migrateuri", "tcp://127.0.0.1:%d" % free_port()]
    if bandwidth:
        extra += ["--bandwidth", str(bandwidth)]
    xml = dest_xml(src, dst, dest_emulator)
    t0 = time.monotonic()
    r = src.virsh("migrate", "--live", "--xml", xml, *flags, *extra,
                  DOMAIN, dst.uri, timeout=300, check=False)
    secs = time.monotonic() - t0
    if fwd:
        fwd.close()
    out = (r.stderr + r.stdout).strip()
    if expect_error is not None:
        log(f"{name}: virsh migrate {' '.join(flags)}: exit {r.returncode}: "
            f"{out[-400:]}")
        ok = r.returncode != 0 and expect_error in out
        tap(ok, f"/libvirt/e2e/{name}/refused",
            "exit %d: %s" % (r.returncode, out[-300:]))
        still = src.state()
        tap(still == "running" and dst.state() == "absent",
            f"/libvirt/e2e/{name}/source-still-runs",
            f"source {still}, destination {dst.state()}")
        bad, v = guest.verify(f"{name}: source after the refusal")
        tap(not bad, f"/libvirt/e2e/{name}/source-intact",
            "failed: %s (%s)" % (bad, v))
        return ok and not bad
    log(f"{name}: virsh migrate {' '.join(flags)}: exit {r.returncode} "
        f"in {secs:.1f} s{(': ' + out[-400:]) if out else ''}")
    if fwd:
        log(f"{name}: forwarder cut after {fwd.bytes} bytes "
            f"(cut={fwd.cut_done})")
    ok = tap(r.returncode == 0, f"/libvirt/e2e/{name}/migrate",
             out[-300:] or "exit %d" % r.returncode)
    if fwd:
        tap(fwd.cut_done, f"/libvirt/e2e/{name}/network-cut",
            f"the forwarder passed {fwd.bytes} bytes and was not cut")
    if not ok:
        log("source daemon log:\n" + src.tail("virtqemud.log", 3000))
        log("destination daemon log:\n" + dst.tail("virtqemud.log", 3000))
        return False
    tap(dst.state() == "running" and src.state() == "absent",
        f"/libvirt/e2e/{name}/runs-only-on-destination",
        f"destination {dst.state()}, source {src.state()}")
    job = dst.virsh("domjobinfo", "--completed", "--rawstats", DOMAIN,
                    check=False)
    log(f"{name}: virsh domjobinfo --completed --rawstats on the "
        f"destination:\n{job.stdout.rstrip()}")
    if check_info:
        stats = dict(re.findall(r"^(\w+)\s*:\s*(\S+)", job.stdout, re.M))
        why = check_info(stats, fwd)
        tap(not why, f"/libvirt/e2e/{name}/capability-used", why or "")
    guest.attach(dst)
    try:
        guest.con.wait_ready(60)
        bad, v = guest.verify(f"{name}: destination")
    except GuestError as e:
        bad, v = ["agent"], str(e)
    log(f"{name}: verified: {v}")
    return tap(not bad, f"/libvirt/e2e/{name}/guest-verified",
               "failed: %s" % bad)


def _counter(stats, name):
    try:
        return int(stats.get(name, "0"))
    except ValueError:
        return 0


def _needs(*names):
    """A check that each of the job statistics @names is above zero."""
    def check(stats, fwd):
        zero = [n for n in names if _counter(stats, n) <= 0]
        if zero:
            return "domjobinfo reports no %s" % ", ".join(zero)
        # after a cut the file carried more than the network did
        if fwd and _counter(stats, "spill_file_bytes") <= fwd.bytes:
            return ("the spill file got %s bytes, the network %d" %
                    (stats.get("spill_file_bytes"), fwd.bytes))
        return None
    return check


# the job statistics (virsh domjobinfo --completed on the destination,
# which the source's libvirt sends in the migration cookie) that show
# the capability at work
CHECKS = {
    "write-fault-groups": _needs("write_faults"),
    "adaptive-compression": _needs("adaptive_compression_bytes_in",
                                   "adaptive_compression_bytes_out"),
    "disk-backed-pages": _needs("disk_backed_pages",
                                "disk_backed_bytes_saved"),
    "shared-file-spill": _needs("spill_file_bytes"),
    "shared-file-spill-cut": _needs("spill_file_bytes", "spill_failovers"),
}


def main():
    for path, what in ((os.path.join(LV_BLD, "src", "virtqemud"), "libvirt"),
                       (QEMU, "the patched QEMU")):
        if not os.access(path, os.X_OK):
            tap(False, "/libvirt/e2e/setup", f"{what} is not built: {path}")
            print(f"1..{n}")
            return 1
    # the bench's guest: built once, kept while its inputs do not change
    r = subprocess.run([os.path.join(TOP, "scripts", "guest",
                                     "build-guest.sh")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        tap(False, "/libvirt/e2e/setup",
            "build-guest.sh failed: " + (r.stderr or r.stdout)[-500:])
        print(f"1..{n}")
        return 1
    uid, gid = ensure_user()
    shutil.rmtree(E2E, ignore_errors=True)
    os.makedirs(E2E)
    os.chmod(E2E, 0o755)
    spill_dir = os.path.join(E2E, "shared")
    os.makedirs(spill_dir)
    os.chown(spill_dir, uid, gid)
    a = Host("a", 49152, uid, gid)
    b = Host("b", 49200, uid, gid)
    guest = Guest(read_guest_env(BUILD))
    uffd = UffdAccess(gid)
    try:
        a.start()
        b.start()
        guest.boot(a)
        tap(True, "/libvirt/e2e/boot")

        # Each capability, back and forth: A -> B, B -> A, ...
        runs = [
            ("precopy", []),
            ("predictive-throttle",
             ["--predictive-throttle", "--predictive-throttle-ratio", "40"]),
            ("write-fault-groups",
             ["--write-fault-groups", "--write-fault-groups-max", "32"]),
            ("adaptive-compression",
             ["--parallel", "--parallel-connections", "2", "--compressed",
              "--comp-methods", "adaptive"]),
            ("disk-backed-pages",
             ["--disk-backed-pages", "--disk-backed-pages-disk", "vda"]),
            ("shared-file-spill",
             ["--shared-file-spill", "--shared-file-spill-path",
              os.path.join(spill_dir, "spill0")]),
            # the shared disk is virtio-blk: its requests in flight move
            ("inflight-io-handoff", ["--inflight-io-handoff"]),
            # the source serves its own pages; the destination takes them
            ("common-regions",
             ["--common-regions", "--common-regions-exporters",
              os.path.join(spill_dir, "regions.sock")]),
        ]
        src, dst = a, b
        for name, flags in runs:
            check = CHECKS.get(name)
            if name == "disk-backed-pages":
                # the guest's map: the guest publishes it, the operator
                # does not name it; here it is set as the bench does
                src.qmp("migrate-set-parameters",
                        **{"disk-backed-map": guest.diskmap["map"]})
            if name == "common-regions":
                src.qmp("common-regions-export-start",
                        path=os.path.join(spill_dir, "regions.sock"))
            if migrate(guest, src, dst, flags, name, check_info=check):
                src, dst = dst, src
            elif src.state() != "running":
                log(f"{name}: the guest runs nowhere usable; stopping")
                break
        else:
            # the network breaks part way; the file carries the rest
            if migrate(guest, src, dst,
                       ["--shared-file-spill", "--shared-file-spill-path",
                        os.path.join(spill_dir, "spill-cut")],
                       "shared-file-spill-cut", cut=16 << 20,
                       bandwidth=32,
                       check_info=CHECKS["shared-file-spill-cut"]):
                src, dst = dst, src
            # refusals: the guest must stay where it is, intact
            if not os.access(QEMU_BASE, os.X_OK):
                tap(False, "/libvirt/e2e/dest-without-capability",
                    "the base QEMU is not built: " + QEMU_BASE)
            else:
                migrate(guest, src, dst,
                        ["--shared-file-spill", "--shared-file-spill-path",
                         os.path.join(spill_dir, "spill-base")],
                        "dest-without-capability", dest_emulator=QEMU_BASE,
                        expect_error="Migration option 'shared-file-spill' "
                                     "is not supported by QEMU binary")
            migrate(guest, src, dst,
                    ["--rdma-pin-budget", "--rdma-pin-budget-limit", "64M"],
                    "rdma-pin-budget-over-tcp",
                    expect_error="Capability 'rdma-pin-budget' needs an "
                                 "RDMA transport")
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        tap(False, "/libvirt/e2e/harness", repr(e)[-500:])
        log("host a daemon log:\n" + a.tail("virtqemud.log", 2000))
        log("host b daemon log:\n" + b.tail("virtqemud.log", 2000))
    finally:
        if guest.con:
            guest.con.close()
        for h in (a, b):
            if h.proc:
                h.virsh("destroy", DOMAIN, check=False, timeout=30)
            h.stop()
        uffd.restore()
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
