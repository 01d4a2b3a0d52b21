# SPDX-License-Identifier: GPL-2.0-or-later
"""QMP for the harness: QEMU's own client (python/qemu/qmp, from the
prepared tree: build/qemu after scripts/prepare.sh), through its
synchronous wrapper qemu.qmp.legacy.QEMUMonitorProtocol.

Monitor adds what the harness's call sites need and the wrapper does not
give: a deadline on every command (cmd(name, args, timeout=...)),
exec-oob (cmd(..., oob=True)), connecting to a QEMU that is still
creating its socket, and every event received kept in order (.events,
wait_event()).  Errors are qemu.qmp.QMPError with the command's name."""

import asyncio
import os
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
QEMU_PYTHON = os.path.join(os.environ.get("BUILD", os.path.join(TOP, "build")),
                           "qemu", "python")

# As tests/migration-stress/guestperf does: the tree's python/ directory.
sys.path.insert(0, QEMU_PYTHON)    # the tree's copy before any installed
try:
    from qemu.qmp import ConnectError, ExecuteError, QMPError, Runstate
    from qemu.qmp.legacy import QEMUMonitorProtocol
except ImportError as e:
    raise ImportError(
        "QEMU's python package (qemu.qmp) is not in %s: run "
        "scripts/prepare.sh to prepare the QEMU tree (%s)" %
        (QEMU_PYTHON, e)) from e

__all__ = ["Monitor", "QMPError"]


class Monitor(QEMUMonitorProtocol):
    """A QMP connection to the monitor on the unix socket @path.

    Connects (retrying until @timeout s, or until @alive() says QEMU
    exited) and negotiates capabilities.  qemu.qmp enables out-of-band
    execution whenever the monitor offers it; @oob: fail unless it does
    (migrate-recover must run even while the main thread is blocked,
    e.g. by a vCPU waiting for a postcopy page)."""

    def __init__(self, path, timeout=30.0, alive=None, oob=False):
        super().__init__(path, nickname=os.path.basename(path))
        self.path = path
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sync(self._qmp.connect(path),
                           max(0.001, deadline - time.monotonic()))
                break
            except ConnectError as e:
                # No socket yet, or QEMU sent an event before the greeting
                # (it broadcasts events to a monitor until the connection's
                # OPENED event switched it to negotiation, so a client that
                # connects just as the guest starts can read RESUME first):
                # connect again, for a fresh greeting.
                if alive and not alive():
                    raise QMPError("QEMU exited before QMP came up") from e
                if time.monotonic() > deadline:
                    raise QMPError("cannot connect to QMP at %s: %s" %
                                   (path, e.exc)) from e
                time.sleep(0.05)
            except asyncio.TimeoutError as e:
                raise QMPError("QMP timeout on %s" % path) from e
        greeting = self._get_greeting()
        if oob and "oob" not in greeting["QMP"].get("capabilities", []):
            self.close()
            raise QMPError("this QMP monitor cannot run commands out of band")

    def close(self):
        try:
            super().close()
        except (QMPError, OSError, EOFError):
            pass    # QEMU hung up first (quit): nothing left to close

    @property
    def events(self):
        """Every event received so far, oldest first (dicts)."""
        self._sync(asyncio.sleep(0))     # let the reader take what came
        self._qmp.events.clear()         # the history keeps them
        return [dict(e) for e in self._qmp.events.history]

    def wait_event(self, pred, timeout):
        """The first event (received or arriving within @timeout s) for
        which @pred(event) is true, or None.  Raises QMPError once the
        connection is closed (QEMU exited) with no such event."""
        deadline = time.monotonic() + timeout
        while True:
            e = next((e for e in self.events if pred(e)), None)
            left = deadline - time.monotonic()
            if e is not None or left <= 0:
                return e
            if self._qmp.runstate != Runstate.RUNNING:
                raise QMPError("QMP connection closed (%s)" % self.path)
            try:
                self.pull_event(wait=float(min(left, 0.5)))
            except asyncio.TimeoutError:
                pass

    def cmd(self, name, args=None, timeout=10.0, oob=False):
        """Run one command; return its "return" value or raise QMPError.
        @oob: out of band (exec-oob)."""
        try:
            return self._sync(self._qmp.execute(name, args, oob=oob),
                              timeout)
        except ExecuteError as e:
            raise QMPError("%s: %s" % (name, e)) from e
        except asyncio.TimeoutError as e:
            raise QMPError("QMP timeout on %s" % self.path) from e
        except (QMPError, OSError, EOFError) as e:
            raise QMPError("QMP connection closed (%s)" % self.path) from e
