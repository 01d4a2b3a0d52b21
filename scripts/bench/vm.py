# SPDX-License-Identifier: GPL-2.0-or-later
"""Start and stop a guest QEMU, talk to its QMP and its serial agent.

The guest's /init (scripts/guest/init) serves a line protocol on ttyS0:
the host sends "Q<n>Z <command>", the guest answers "@@BEGIN Q<n>Z",
the output, then "@@END Q<n>Z <status>".

QMP is QEMU's own client (monitor.py: qemu.qmp from the prepared tree).
The process is started here, not with qemu.machine.QEMUMachine, which
does not fit without overriding its private _launch and _base_args:
it starts QEMU in the harness's own session and process group (a Ctrl-C
or SIGHUP of the terminal would reach both QEMUs mid-migration, before
the harness records and cleans up) and without PR_SET_PDEATHSIG (a
killed harness would leave them running); it adds its own monitor
chardev on a socket pair and "-vga none" to the command line; and when
"quit" does not end a QEMU (a destination stuck in postcopy) it kills
it, logs a warning on stderr and raises AbnormalShutdown, where the
harness kills quietly and goes on.  VM keeps the run's exact command
line (nice, -nodefaults, TCG or KVM, the serial agent's socket, the QMP
socket and the log in the run directory) and quit-then-SIGKILL with
short deadlines."""

import os
import re
import select
import socket
import subprocess
import time

from monitor import Monitor, QMPError


def _die_with_parent():
    """In the child: get SIGKILL if the harness dies without cleaning up."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class GuestError(Exception):
    """The guest did not answer, or a command in it failed."""


def read_guest_env(build, name="guest"):
    """What scripts/guest/build-guest.sh wrote for the guest @name
    (build/<name>/guest.env)."""
    env = {}
    path = os.path.join(build, name, "guest.env")
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


class Console:
    """Client of the guest agent on a serial chardev socket."""

    def __init__(self, path, timeout=30.0):
        self.path = path
        self._buf = b""
        self._n = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                return
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise GuestError("cannot connect to %s: %s" % (path, e))
                time.sleep(0.05)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], min(left, 0.5))
        if r:
            data = self.sock.recv(65536)
            if not data:
                raise GuestError("serial console closed (%s)" % self.path)
            self._buf += data.replace(b"\r", b"")
        return True

    def _send(self, cmd):
        self._n += 1
        tag = "Q%dZ" % self._n
        if "\n" in cmd:
            raise ValueError("one-line commands only")
        self.sock.sendall(("%s %s\n" % (tag, cmd)).encode())
        return tag

    def _wait_end(self, tag, deadline):
        end = re.compile(rb"@@BEGIN %s\n(.*?)@@END %s (\d+)\n" %
                         (tag.encode(), tag.encode()), re.S)
        while True:
            m = end.search(self._buf)
            if m:
                self._buf = self._buf[m.end():]
                return int(m.group(2)), m.group(1).decode(errors="replace")
            if not self._fill(deadline):
                return None

    def wait_ready(self, timeout):
        """Ping until the agent answers (it drops partial lines)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tag = self._send("true")
            if self._wait_end(tag, min(deadline, time.monotonic() + 1.0)):
                return
        raise GuestError("guest agent did not answer within %.0f s" % timeout)

    def run(self, cmd, timeout=30.0, check=True):
        """Run a shell command in the guest; return (status, output)."""
        tag = self._send(cmd)
        res = self._wait_end(tag, time.monotonic() + timeout)
        if res is None:
            raise GuestError("guest command timed out after %.0f s: %s" %
                             (timeout, cmd))
        if check and res[0] != 0:
            raise GuestError("guest command failed (%d): %s\n%s" %
                             (res[0], cmd, res[1]))
        return res


class VM:
    """One qemu-system-x86_64 process with QMP and a serial agent."""

    def __init__(self, qemu, workdir, name, guest, accel="tcg", mem_mib=512,
                 incoming=False, extra=(), qmp_oob=False, vcpus=1,
                 disk_readonly=False):
        self.name = name
        self.workdir = workdir
        self.qmp_path = os.path.join(workdir, name + ".qmp")
        self.ser_path = os.path.join(workdir, name + ".ser")
        self.log_path = os.path.join(workdir, name + ".log")
        self.qmp = None
        self.console = None
        for p in (self.qmp_path, self.ser_path):
            if os.path.exists(p):
                os.unlink(p)
        args = [
            "nice", "-n", "10", qemu,
            "-name", name, "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot",
            "-accel", accel, "-m", str(mem_mib), "-smp", str(vcpus),
            "-kernel", guest["KERNEL"], "-initrd", guest["INITRD"],
            "-append", "console=ttyS0 quiet loglevel=1 panic=-1",
            "-blockdev", "driver=raw,node-name=shared0,file.driver=file,"
                         "file.filename=%s%s" % (guest["DISK"],
                                                 ",read-only=on"
                                                 if disk_readonly else ""),
            "-device", "virtio-blk-pci,drive=shared0",
            "-chardev", "socket,id=ser0,path=%s,server=on,wait=off" %
                        self.ser_path,
            "-serial", "chardev:ser0",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
        ]
        if incoming:
            args += ["-incoming", "defer"]
        args += list(extra)
        self.args = args
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent)
        try:
            self.qmp = Monitor(self.qmp_path, timeout=30, alive=self.alive,
                               oob=qmp_oob)
        except QMPError as e:
            tail = self.log_tail(500).strip()
            self.kill()
            raise QMPError("%s: %s%s" % (name, e, (" [log: %s]" % tail)
                                         if tail else ""))

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def open_console(self, timeout=30.0):
        if not self.console:
            self.console = Console(self.ser_path, timeout)
        return self.console

    def kill(self):
        """Stop the process whatever state it is in; idempotent."""
        if self.console:
            self.console.close()
            self.console = None
        if self.qmp:
            if self.alive():
                try:
                    self.qmp.cmd("quit", timeout=3)
                except (QMPError, OSError):
                    pass
            self.qmp.close()
            self.qmp = None
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        for p in (self.qmp_path, self.ser_path):
            if os.path.exists(p):
                os.unlink(p)


def probe_accel(qemu, guest, workdir, log=print):
    """Return (accel, reason).  KVM only if it is real and boots the guest."""
    forced = os.environ.get("MIGBENCH_ACCEL")
    if forced in ("tcg", "kvm"):
        return forced, "forced by MIGBENCH_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        flags = ""
    if os.path.exists("/sys/module/kvm_pvm"):
        return "tcg", "/dev/kvm is kvm_pvm (software nested), cannot boot " \
                      "a stock kernel"
    if not re.search(r"\b(vmx|svm)\b", flags):
        return "tcg", "host CPU shows no vmx/svm"
    log("probing KVM: booting the guest with -accel kvm (30 s limit)")
    vm = None
    try:
        vm = VM(qemu, workdir, "kvmprobe", guest, accel="kvm")
        vm.open_console().wait_ready(30)
        return "kvm", "KVM booted the guest"
    except (QMPError, GuestError, OSError) as e:
        return "tcg", "KVM boot test failed: %s" % e
    finally:
        if vm:
            vm.kill()
