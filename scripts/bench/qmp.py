# SPDX-License-Identifier: GPL-2.0-or-later
"""A small synchronous QMP client (standard library only) with a deadline
on every wait.  Asynchronous events are kept in .events."""

import json
import select
import socket
import time


class QMPError(Exception):
    """QMP returned an error, or the connection failed or timed out."""


class QMP:
    """@oob: negotiate out-of-band execution (cmd(..., oob=True)): a
    command such as migrate-recover runs even while the main thread is
    blocked, e.g. by a vCPU waiting for a postcopy page."""

    def __init__(self, path, timeout=30.0, alive=None, oob=False):
        self.path = path
        self.events = []
        self._buf = b""
        self._id = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if alive and not alive():
                    raise QMPError("QEMU exited before QMP came up")
                if time.monotonic() > deadline:
                    raise QMPError("cannot connect to QMP at %s: %s" % (path, e))
                time.sleep(0.05)
        # QEMU broadcasts events to a QMP monitor from its start, until the
        # connection's OPENED event has switched it to capabilities
        # negotiation: a client that connects just as the guest starts can
        # read RESUME before the greeting.  Keep such events.
        while True:
            greeting = self._read_msg(deadline)
            if "event" in greeting and len(self.events) < 100:
                self.events.append(greeting)
                continue
            break
        if "QMP" not in greeting:
            raise QMPError("no QMP greeting: %r" % greeting)
        if oob:
            if "oob" not in greeting["QMP"].get("capabilities", []):
                raise QMPError("this QMP monitor cannot run commands "
                               "out of band")
            self.cmd("qmp_capabilities", {"enable": ["oob"]},
                     timeout=timeout)
        else:
            self.cmd("qmp_capabilities", timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_msg(self, deadline):
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError("QMP timeout on %s" % self.path)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            data = self.sock.recv(65536)
            if not data:
                raise QMPError("QMP connection closed (%s)" % self.path)
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def wait_event(self, pred, timeout):
        """The first event (kept or arriving within @timeout s) for which
        @pred(event) is true, or None; reads without sending a command."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if pred(e):
                    return e
            seen = len(self.events)
            try:
                msg = self._read_msg(deadline)
            except QMPError as e:
                if "timeout" in str(e):
                    return None
                raise
            if "event" in msg:
                self.events.append(msg)

    def cmd(self, name, args=None, timeout=10.0, oob=False):
        """Run one command; return its "return" value or raise QMPError.
        @oob: out of band (the monitor must have been opened with oob)."""
        self._id += 1
        msg = {"exec-oob" if oob else "execute": name, "id": self._id}
        if args:
            msg["arguments"] = args
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as e:
            raise QMPError("QMP send failed (%s): %s" % (self.path, e))
        deadline = time.monotonic() + timeout
        while True:
            resp = self._read_msg(deadline)
            if "event" in resp:
                self.events.append(resp)
                continue
            if resp.get("id") != self._id:
                continue
            if "error" in resp:
                raise QMPError("%s: %s" % (name, resp["error"].get("desc")))
            return resp.get("return")
