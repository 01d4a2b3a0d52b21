#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TAP tests of the headline benchmark's report (scripts/bench/
report_headline.py): the lower bound of the bytes from a run's counters,
upstream's best as the fastest verified upstream configuration, and the
goals, met or missed, never met for want of a measure."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts", "bench"))
import configs  # noqa: E402
import report  # noqa: E402
import report_headline as rh  # noqa: E402
from reportlib import Context  # noqa: E402

MiB = 1 << 20
SC = configs.SCENARIO_BY_NAME["headline"]
results = []


def ok(cond, what):
    results.append((bool(cond), what))


def run(config, running_s, wire_mb, paused_ms, status="ok", db=None,
        zero=None, total_mib=4096):
    r = {"scenario": "headline", "config": config, "status": status,
         "running_ms": running_s * 1000, "paused_ms": paused_ms,
         "downtime_ms": paused_ms, "wire_bytes": wire_mb * 1e6,
         "ram": {"total": total_mib * MiB, "transferred": wire_mb * 1e6,
                 "extra": {}},
         "samples": [{"t": 0.1, "syncs": 1, "zero": 5},
                     {"t": 9.0, "syncs": 1, "zero": (zero or 0) - 1},
                     {"t": 9.1, "syncs": 2, "zero": zero or 0},
                     {"t": 9.2, "syncs": 3, "zero": (zero or 0) + 99}]}
    if status != "ok":
        r["reason"] = "timeout: not complete"
    if db is not None:
        r["ram"]["extra"]["disk-backed-pages"] = {"map-records": db}
    return r


def main():
    # LB = 4 KiB x (P_total - P_zero - P_disk + P_ws), P_zero at the
    # first sample of the second pass
    r = run("series-best", 10, 1000, 100, db=600000, zero=200000)
    pages = 4096 * MiB // 4096 - 200000 - 600000 + 512 * MiB // 4096
    ok(rh.lower_bound(r, SC) == pages * 4096,
       "lower bound from total, first-pass zero pages, map records, "
       "working set")
    ok(rh.lower_bound(run("upstream-best", 10, 1000, 100, zero=1), SC)
       is None, "no lower bound without disk-backed-pages' counters")
    r2 = run("series-best", 10, 1000, 100, db=1)
    r2["samples"] = [s for s in r2["samples"] if s["syncs"] < 2]
    ok(rh.lower_bound(r2, SC) is None,
       "no lower bound from a run whose first pass did not end")

    # a published run has no samples but keeps the first pass's zeros
    slim = report._slim_run(r)
    ok("samples" not in slim and slim["first_pass_zero"] == 200000 and
       rh.lower_bound(slim, SC) == pages * 4096,
       "the lower bound from a published (slim) run")

    lb_mb = pages * 4096 / 1e6
    runs = [run("upstream-best", 90, 3000, 300),
            run("upstream-best", 100, 3100, 300),
            run("upstream-best", 110, 3200, 300),
            run("upstream-best+postcopy-preempt", 60, 2500, 50),
            run("upstream-best+postcopy-preempt", 500, 2500, 50,
                status="failed"),
            run("series-best", 19, lb_mb * 1.05, 100, db=600000,
                zero=200000),
            run("series-best-cut50", 25, 500, 250, db=600000,
                zero=200000)]
    h = rh.summarize(runs, SC)
    by = {e["config"]: e for e in h["entries"]}
    ok(h["upstream_best"] == "upstream-best+postcopy-preempt",
       "upstream's best: the fastest median of the verified runs")
    ok(by["upstream-best+postcopy-preempt"]["ok"] == 1 and
       by["upstream-best+postcopy-preempt"]["runs"] == 2,
       "a failed run is counted, not measured")
    ok(by["upstream-best"]["running_s"] == 100, "medians")
    ok(abs(by["series-best"]["time_vs_upstream"] - 19 / 60) < 1e-9,
       "time against upstream's best")
    g = h["goals"]
    ok(g["time"]["met"] is True, "time goal met at 0.32")
    ok(g["bytes"]["met"] is True and abs(g["bytes"]["value"] - 1.05) < 1e-6,
       "bytes goal met at 1.05x the lower bound")
    ok(g["cut"]["met"] is False and g["cut"]["value"] == 2.5,
       "cut goal missed: pause 2.5x the uncut one")
    ok(any("MISSED" in ln for ln in rh.lines(h)), "a missed goal says so")

    slow = [run("upstream-best", 50, 3000, 300),
            run("series-best", 19, 1000, 100, db=600000, zero=200000)]
    h = rh.summarize(slow, SC)
    ok(h["goals"]["time"]["met"] is False, "time goal missed at 0.38")
    ok(h["goals"]["cut"]["met"] is None,
       "no cut run: the goal is not measured, not met")
    ok(any("not measured" in ln for ln in rh.lines(h)),
       "an unmeasured goal says so")

    ctx = Context(runs, [], ["mixed"], {}, "bench", "")
    ok(rh.section(ctx) is None, "no headline section without the scenario")
    ctx = Context(runs, [], ["headline"], {}, "headline", "")
    sec = rh.section(ctx)
    ok(sec is not None and "headline" in sec.json and
       len(sec.rows) == 4, "the section: one row a configuration that ran")

    # make bench runs no headline unless named; precopy, which cannot
    # converge there, does not run in it; its configurations run nowhere
    # else
    import migbench
    ok("headline" not in [s.name for s in configs.SCENARIOS if s.default],
       "the headline scenario only when named")
    skipped = []
    per = migbench.split_by_scenario(
        [configs.BY_NAME["precopy"], configs.BY_NAME["upstream-best"]],
        ["headline", "mixed"], skipped)
    ok([c.name for c in per["headline"]] == ["upstream-best"] and
       [c.name for c in per["mixed"]] == ["precopy"],
       "precopy not in the headline, upstream-best only there")
    ok(all(c.scenarios == ("headline",) for c in configs.HEADLINE_CONFIGS),
       "every headline configuration only in the headline")

    for i, (good, what) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if good else "not ok", i, what))
    print("1..%d" % len(results))
    return 0 if all(g for g, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
