#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The libvirt tier's unit part, as TAP.

Runs libvirt's own unit tests of the code the libvirt series touches,
from build/libvirt/build, one TAP line per test case (libvirt's test
binaries print "N) name ... OK" with VIR_TEST_DEBUG=1), then checks what
an operator sees of the series in virsh: the migrate options of every
capability in "virsh migrate --help", and virsh's own self-test of its
command tables.
"""

import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
LV_BLD = os.path.join(BUILD, "libvirt", "build")

TESTS = ["qemumigparamstest", "qemumonitorjsontest",
         "qemumigrationcookiexmltest", "virshtest"]

# virsh migrate options the series adds, one group per capability
VIRSH_OPTIONS = {
    "predictive-throttle": ["--predictive-throttle",
                            "--predictive-throttle-ratio",
                            "--predictive-throttle-prior-dirty-rate",
                            "--predictive-throttle-prior-bandwidth"],
    "write-fault-groups": ["--write-fault-groups",
                           "--write-fault-groups-max"],
    "rdma-pin-budget": ["--rdma-pin-budget", "--rdma-pin-budget-limit"],
    "shared-file-spill": ["--shared-file-spill", "--shared-file-spill-path"],
    "disk-backed-pages": ["--disk-backed-pages", "--disk-backed-pages-disk"],
    "inflight-io-handoff": ["--inflight-io-handoff"],
    "common-regions": ["--common-regions", "--common-regions-exporters"],
}
# adaptive-compression is the compression method "adaptive" of the
# existing --comp-methods; qemumigparamstest checks it.

CASE_RE = re.compile(r"^\s*(\d+)\) (.*?)\s+\.\.\. (OK|FAILED|SKIP)\s*$")

n = 0


def tap(ok, what, extra=""):
    global n
    n += 1
    print(f"{'ok' if ok else 'not ok'} {n} {what}{extra}", flush=True)


def unit(name):
    exe = os.path.join(LV_BLD, "tests", name)
    env = dict(os.environ, VIR_TEST_DEBUG="1")
    r = subprocess.run([exe], cwd=os.path.join(LV_BLD, "tests"), env=env,
                       capture_output=True, text=True, timeout=600)
    cases = 0
    for line in (r.stdout + r.stderr).splitlines():
        m = CASE_RE.match(line)
        if not m:
            continue
        cases += 1
        status = m.group(3)
        tap(status != "FAILED", f"/libvirt/{name}/{m.group(2)}",
            " # SKIP" if status == "SKIP" else "")
    # a crash or a failure outside the cases still fails
    if r.returncode != 0 or cases == 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-20:])
        print("# " + tail.replace("\n", "\n# "))
        tap(False, f"/libvirt/{name} exited with {r.returncode} "
            f"after {cases} case(s)")


def virsh(*args):
    return subprocess.run([os.path.join(LV_BLD, "tools", "virsh"),
                           "-c", "test:///default", *args],
                          capture_output=True, text=True, timeout=60)


def virsh_options():
    r = virsh("migrate", "--help")
    shown = set(re.findall(r"--[a-z0-9-]+", r.stdout))
    for cap, opts in VIRSH_OPTIONS.items():
        missing = [o for o in opts if o not in shown]
        tap(r.returncode == 0 and not missing,
            f"/libvirt/virsh/migrate-help/{cap}",
            f" # missing {' '.join(missing)}" if missing else "")
    r = virsh("self-test")
    tap(r.returncode == 0, "/libvirt/virsh/self-test")


def main():
    for name in TESTS:
        unit(name)
    virsh_options()
    print(f"1..{n}")


if __name__ == "__main__":
    sys.exit(main())
