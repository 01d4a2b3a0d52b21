#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of scripts/check.py's runner: a command that hangs without
printing is killed with its whole process group, one that crashes or
hangs mid-test is resumed after that test, and nothing is counted as
passed that did not pass."""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import check  # noqa: E402

# A fake migration-test: tests /a to /d; /b hangs, /c crashes; the
# arguments name the tests to skip, as -s does.
FAKE = """#!/bin/sh
for t in /a /b /c /d; do
  case " $* " in *" $t "*) continue;; esac
  echo "# Running $t"
  if [ $t = /b ]; then sleep 1000 & echo $! > "$0.pid"; wait; fi
  if [ $t = /c ]; then kill -SEGV $$; fi
  echo "ok $t"
done
"""

results = []


def ok(cond, what):
    results.append((bool(cond), what))


def main():
    check.log = lambda msg: None
    with tempfile.TemporaryDirectory() as d:
        fake = os.path.join(d, "fake.sh")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, 0o755)

        start = time.monotonic()
        t = check.run_tap("fake", [fake], timeout=60, stall=2,
                          resume=lambda seen: [fake] + seen)
        ok(time.monotonic() - start < 30, "a silent hang is cut at the stall")
        ok(t.passed == 2 and t.failed == 2, "/a and /d pass, /b and /c fail")
        ok([p for p, _ in t.lost] == ["/b", "/c"], "the lost tests are named")
        with open(fake + ".pid") as f:
            pid = int(f.read())
        alive = False
        try:
            with open(f"/proc/{pid}/stat") as f:
                # a zombie waits for its reaper: it runs no more
                alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            pass
        ok(not alive, "the hung command's children are killed too")

        t = check.run_tap("fake", [fake], timeout=60, stall=2)
        ok(t.passed == 1 and t.failed >= 1 and not t.lost,
           "without resume, the rest is not run and the hang is a failure")

        start = time.monotonic()
        t = check.run_tap("silent", ["sleep", "100"], timeout=2)
        ok(time.monotonic() - start < 20 and t.failed == 1,
           "the deadline holds for a command that prints nothing")

        t = check.run_tap("none", ["true"], timeout=10)
        ok(t.failed == 1 and t.passed == 0, "a command with no result fails")

    for i, (good, what) in enumerate(results, 1):
        print(f"{'ok' if good else 'not ok'} {i} - {what}")
    print(f"1..{len(results)}")
    return 0 if all(g for g, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
