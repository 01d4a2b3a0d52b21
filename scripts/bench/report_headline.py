# SPDX-License-Identifier: GPL-2.0-or-later
"""The headline benchmark's part of the report (make bench-headline): this
series' best against upstream's best on the largest guest, each with the
network cut halfway, the physical lower bound of the bytes, and the goals.

The lower bound (bench/README.md, "The headline benchmark") is computed
from each verified series-best run:

    LB = 4 KiB x (P_total - P_zero - P_disk + P_ws)

P_total: the guest's RAM pages (ram.total / 4 KiB); P_zero: the pages
found zero in the first pass over RAM (ram.duplicate when the first pass
ended, i.e. at the first sample with dirty-sync-count 2); P_disk: the
pages that are clean copies of blocks of the shared disk
(disk-backed-pages' map-records: the records of the map that QEMU kept);
P_ws: the writer's working set, which the writer (at twice the link's
rate) rewrites entirely during the first pass, so that every page of it
must cross once more however the migration is scheduled in precopy."""

import configs
from reportlib import (Section, guest_tput, mb, md_table, median, median_of,
                       num, wire_bytes)

PAGE = 4096
UPSTREAM = ("upstream-best", "upstream-best+postcopy-preempt", "dirty-limit")
SERIES = "series-best"
CUTS = {"upstream-best-cut50-restart": "upstream-best",
        "upstream-best+postcopy-preempt-cut-recover":
            "upstream-best+postcopy-preempt",
        "series-best-cut50": SERIES}
CONFIGS = UPSTREAM + (SERIES, "series-best-precopy") + tuple(CUTS)


def first_pass_zero(r):
    """Zero pages found in the first pass: ram.duplicate at the first
    sample after it (dirty-sync-count 2), or None.  A published (slim)
    run has no samples: it keeps the number as "first_pass_zero"."""
    if "first_pass_zero" in r:
        return r["first_pass_zero"]
    s = next((s for s in r.get("samples", ()) if s.get("syncs", 0) >= 2 and
              "zero" in s), None)
    return s["zero"] if s else None


def lower_bound(r, sc):
    """LB of one verified run of scenario @sc in bytes (see the module's
    comment), or None where a term is not measured (not a series-best
    run)."""
    ram = r.get("ram", {})
    db = ram.get("extra", {}).get("disk-backed-pages")
    zero = first_pass_zero(r)
    if not isinstance(db, dict) or zero is None or not ram.get("total"):
        return None
    pages = (ram["total"] // PAGE - zero - db.get("map-records", 0) +
             sc.dirty_mib * (1 << 20) // PAGE)
    return pages * PAGE


def _storage(r):
    """Bytes written to shared storage: the spill file, or None."""
    ex = r.get("ram", {}).get("extra", {}).get("shared-file-spill")
    return ex.get("file-bytes") if isinstance(ex, dict) else None


def _guest_ratio(r):
    g = guest_tput(r)
    return g and g.get("ratio")


def _entry(runs, cfg, sc):
    rs = [r for r in runs if r["config"] == cfg]
    ok = [r for r in rs if r["status"] == "ok"]
    return {
        "config": cfg, "runs": len(rs), "ok": len(ok),
        "running_s": median_of(ok, lambda r: r.get("running_ms") and
                               r["running_ms"] / 1000),
        "paused_ms": median_of(ok, lambda r: r.get("paused_ms")),
        "downtime_ms": median_of(ok, lambda r: r.get("downtime_ms")),
        "wire_mb": median_of(ok, lambda r: mb(wire_bytes(r))),
        "storage_mb": median_of(ok, lambda r: mb(_storage(r))),
        "guest_ratio": median_of(ok, _guest_ratio),
        "throttle_max": median_of(ok, lambda r: r.get("throttle_max")),
        "throttle_s": median_of(ok, lambda r: r.get("throttle_s")),
        "lower_bound_mb": median_of(ok, lambda r: mb(lower_bound(r, sc))),
        "reasons": sorted({r.get("reason", "") for r in rs
                           if r["status"] != "ok"}),
    }


def summarize(results, scenario):
    """The headline entries, upstream's best and the goals."""
    runs = [r for r in results if r["scenario"] == "headline"]
    ents = [_entry(runs, c, scenario) for c in CONFIGS
            if any(r["config"] == c for r in runs)]
    by = {e["config"]: e for e in ents}
    ups = [e for e in ents if e["config"] in UPSTREAM and e["running_s"]]
    best = min(ups, key=lambda e: e["running_s"]) if ups else None
    lb = median([e["lower_bound_mb"] for e in ents
                 if e["lower_bound_mb"] is not None])
    for e in ents:
        e["time_vs_upstream"] = (e["running_s"] / best["running_s"]
                                 if best and e["running_s"] else None)
        e["wire_vs_lb"] = e["wire_mb"] / lb if lb and e["wire_mb"] else None
    s, cut = by.get(SERIES), by.get("series-best-cut50")
    goals = {
        "time": _goal(s and s["time_vs_upstream"], 1 / 3,
                      "series-best time to the destination running at most "
                      "1/3 of upstream's best"),
        "bytes": _goal(s and s["wire_vs_lb"], 1.1,
                       "series-best bytes on the wire within 1.1x of the "
                       "lower bound"),
        "cut": _goal(cut and s and cut["paused_ms"] and s["paused_ms"] and
                     cut["paused_ms"] / s["paused_ms"], 2.0,
                     "series-best-cut50 guest pause at most 2x the uncut "
                     "one"),
    }
    return {"entries": ents, "upstream_best": best and best["config"],
            "lower_bound_mb": lb, "goals": goals}


def _goal(value, limit, what):
    return {"what": what, "value": value, "limit": limit,
            "met": None if value is None else value <= limit}


COLS = [("config", "config"), ("ok", "ok/runs"),
        ("running", "to destination running s (x upstream's best)"),
        ("paused", "guest paused ms"), ("wire", "wire MB (x lower bound)"),
        ("storage", "to storage MB"), ("guest", "guest tput during"),
        ("throttle", "throttle max"), ("throttle_s", "throttle-s")]


def rows(h):
    out = []
    for e in h["entries"]:
        out.append({
            "config": e["config"],
            "ok": "%d/%d" % (e["ok"], e["runs"]),
            "running": num(e["running_s"], "%.1f") + (
                " (%.2f)" % e["time_vs_upstream"]
                if e["time_vs_upstream"] is not None else ""),
            "paused": num(e["paused_ms"], "%.0f"),
            "wire": num(e["wire_mb"], "%.0f") + (
                " (%.2f)" % e["wire_vs_lb"]
                if e["wire_vs_lb"] is not None else ""),
            "storage": num(e["storage_mb"], "%.0f"),
            "guest": num(e["guest_ratio"] and 100 * e["guest_ratio"],
                         "%.0f%%"),
            "throttle": num(e["throttle_max"], "%.0f%%"),
            "throttle_s": num(e["throttle_s"], "%.1f"),
        })
    return out


def lines(h):
    out = ["- upstream's best: %s (the fastest verified of %s)" % (
        h["upstream_best"] or "none verified", ", ".join(UPSTREAM)),
        "- lower bound of the bytes: %s MB (median over the verified "
        "series-best runs; definition in bench/README.md)" %
        num(h["lower_bound_mb"], "%.0f")]
    for g in h["goals"].values():
        out.append("- goal: %s: %s (%s, limit %.2f)" % (
            g["what"], {True: "met", False: "MISSED", None: "not measured"}
            [g["met"]], num(g["value"], "%.2f"), g["limit"]))
    for e in h["entries"]:
        for why in e["reasons"]:
            out.append("- %s: a run failed: %s" % (e["config"], why))
    return out


ABOUT = (
    "Every configuration once per repetition on the same 4 GiB guest "
    "(medians of the verified runs). *to destination running*: from "
    "`migrate` to the destination's `RESUME` (for a restart, both "
    "attempts); *guest paused*: the source's `STOP` to that `RESUME`; "
    "*wire MB*: bytes that reached the destination over TCP, against the "
    "lower bound; *to storage MB*: the spill file's bytes; *guest tput "
    "during*: the writer's own throughput during the migration against "
    "before; *throttle*: the highest vCPU throttle and its duration.")


def section(ctx):
    """Written when the headline scenario ran."""
    if "headline" not in ctx.scenarios:
        return None
    h = summarize(ctx.results, configs.SCENARIO_BY_NAME["headline"])
    rs, ls = rows(h), lines(h)
    md = ["## The headline: this series' best against upstream's best",
          "", ABOUT, "", md_table(rs, COLS), ""] + ls + [""]
    return Section(json={"headline": h}, md=md, rows=rs, cols=COLS,
                   lines=ls, print_rank=-1,
                   bars_time=("running_s", "time to destination running (s)"))
