# SPDX-License-Identifier: GPL-2.0-or-later
"""Tables, Markdown and plots from run results (lists of result dicts)."""

import statistics

MB = 1e6


def _num(v, fmt="%.1f", none="-"):
    return none if v is None else fmt % v


def _wire(r):
    """Bytes that went over the network: ram.transferred, unless the run
    says otherwise (the forwarder's count when it cut the connection, both
    attempts of a restart, 0 for a file migration)."""
    if "wire_bytes" in r:
        return r["wire_bytes"]
    return r.get("ram", {}).get("transferred")


def spill_counts(r):
    """A run's shared-file-spill counters on both sides, or None."""
    sides = []
    for ex in (r.get("ram", {}).get("extra", {}), r.get("dest_extra", {})):
        v = (ex or {}).get("shared-file-spill")
        sides.append(v if isinstance(v, dict) else {})
    if not any(sides):
        return None
    return {"file_bytes": sides[0].get("file-bytes"),
            "records": sides[0].get("records"),
            "dst_file_bytes": sides[1].get("file-bytes"),
            "failovers_src": sides[0].get("failovers"),
            "failovers_dst": sides[1].get("failovers"),
            "file_errors": sides[0].get("file-errors")}


def _guest(r):
    g = r.get("guest_tput")
    if not g or g.get("before_mbps") is None or g.get("during_mbps") is None:
        return None
    return g


def run_row(r, base=None):
    """One row of the demo table for one run."""
    ram = r.get("ram", {})
    ok = r["status"] == "ok"
    g = _guest(r)
    row = {
        "config": r["config"],
        "result": "ok, verified" if ok else r["status"],
        "time_s": _num(r.get("total_time_ms") / 1000, "%.2f") if ok else "-",
        "downtime_ms": _num(r.get("downtime_ms"), "%d") if ok else "-",
        "wire_mb": _num(_wire(r) / MB, "%.0f") if ok else "-",
        "vs_precopy": "-",
        "normal_pages": _num(ram.get("normal"), "%d") if ok else "-",
        "zero_pages": _num(ram.get("duplicate"), "%d") if ok else "-",
        "syncs": _num(ram.get("dirty-sync-count"), "%d") if ok else "-",
        "pc_reqs": _num(ram.get("postcopy-requests"), "%d") if ok else "-",
        "throttle": _num(r.get("throttle_max"), "%d%%") if ok else "-",
        "guest": ("%.0f/%.0f (%.0f%%)" % (g["during_mbps"], g["before_mbps"],
                                          100 * g["ratio"])) if ok and g
                 else "-",
    }
    if ok and base and base["status"] == "ok":
        row["vs_precopy"] = "%.2fx bytes, %.2fx time" % (
            _wire(r) / _wire(base), r["total_time_ms"] / base["total_time_ms"])
    return row


DEMO_COLS = [
    ("config", "config"), ("result", "result"), ("time_s", "time s"),
    ("downtime_ms", "downtime ms"), ("wire_mb", "wire MB"),
    ("vs_precopy", "vs precopy"), ("normal_pages", "normal pages"),
    ("zero_pages", "zero pages"), ("syncs", "syncs"),
    ("pc_reqs", "postcopy reqs"), ("throttle", "throttle max"),
    ("guest", "guest MB/s during/before"),
]


def text_table(rows, cols):
    widths = [max(len(h), *(len(str(r[k])) for r in rows)) for k, h in cols]
    out = ["  ".join(h.ljust(w) for (k, h), w in zip(cols, widths))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(r[k]).ljust(w) for (k, h), w in
                             zip(cols, widths)))
    return "\n".join(out)


def md_table(rows, cols):
    out = ["| " + " | ".join(h for k, h in cols) + " |",
           "|" + "|".join(" --- " for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r[k]) for k, h in cols) + " |")
    return "\n".join(out)


def notes(results, skipped):
    out = []
    for s in skipped:
        out.append("- %s: skipped, %s" % (s["config"], s["reason"]))
    for r in results:
        if r["status"] != "ok":
            extra = ""
            if "source_intact_after_cancel" in r:
                extra = ("; after migrate_cancel the source ran on with its "
                         "memory verified" if r["source_intact_after_cancel"]
                         else "; SOURCE MEMORY WRONG after migrate_cancel")
            elif "source_intact_after_failure" in r:
                extra = ("; after the cut the source ran on with its "
                         "memory verified"
                         if r["source_intact_after_failure"]
                         else "; SOURCE NOT RUNNING INTACT after the cut")
            out.append("- %s/%s%s: %s, %s%s" % (
                r["scenario"], r["config"],
                " rep %d" % r["rep"] if "rep" in r else "",
                r["status"].upper(), r.get("reason", ""), extra))
    return out


def is_error(r):
    """A failure of the harness or of the memory, as opposed to a
    migration that simply did not converge in time (a result)."""
    if r["status"] in ("ok", "skipped"):
        return False
    if r.get("timeout") and r.get("source_intact_after_cancel", False):
        return False
    return True


# A capability's own query-migrate members in their documented order
# (members not listed follow in the order QEMU gave them).
COUNTER_ORDER = {
    "disk-backed-pages": ["map-status", "map-records", "map-ignored",
                          "map-modified", "pages-referenced", "bytes-saved",
                          "references-refused", "disk-bytes-read"],
}


def counters(results):
    """Lines with each run's capability counters (query-migrate extras),
    and what diskmap published for disk-backed-pages."""
    out = []
    for r in results:
        for side, ex in (("", r.get("ram", {}).get("extra", {})),
                         ("destination ", r.get("dest_extra", {}))):
            for k, v in sorted(ex.items()):
                if isinstance(v, dict):
                    order = [m for m in COUNTER_ORDER.get(k, ()) if m in v]
                    order += [m for m in v if m not in order]
                    v = ", ".join("%s=%s" % (m, v[m]) for m in order)
                out.append("- %s/%s %scounters: %s: %s" % (
                    r["scenario"], r["config"], side, k, v))
        dm = r.get("diskmap")
        if dm:
            chk = r.get("diskmap_check")
            out.append("- %s/%s diskmap: map 0x%x, %d records in %d "
                       "segments%s" % (
                           r["scenario"], r["config"], dm["map"],
                           dm["records"], dm["segments"],
                           "; in the destination guest %d of %d pages and "
                           "%d of %d map pages had moved" % (
                               chk["moved"], chk["pages"], chk["map_moved"],
                               chk["map_pages"]) if chk else ""))
    return out


def _faults(r):
    """Write faults a write-fault-groups run took, or None."""
    wf = r.get("ram", {}).get("extra", {}).get("write-fault-groups")
    return wf.get("faults") if isinstance(wf, dict) else None


def _median(xs):
    return statistics.median(xs) if xs else None


def summarize(results, scenarios, configs):
    """Medians per (scenario, config) and ratios to precopy's medians."""
    summary = []
    for sc in scenarios:
        base = None
        for cfg in configs:
            rs = [r for r in results if r["scenario"] == sc and
                  r["config"] == cfg]
            ok = [r for r in rs if r["status"] == "ok"]
            if not rs:
                continue
            g = [_guest(r)["ratio"] for r in ok if _guest(r)]
            s = {
                "scenario": sc, "config": cfg, "runs": len(rs),
                "ok": len(ok),
                "time_s": _median([r["total_time_ms"] / 1000 for r in ok]),
                "downtime_ms": _median([r["downtime_ms"] for r in ok]),
                "wire_mb": _median([_wire(r) / MB for r in ok]),
                "time_s_range": [min(r["total_time_ms"] / 1000 for r in ok),
                                 max(r["total_time_ms"] / 1000 for r in ok)]
                if ok else None,
                "wire_mb_range": [min(_wire(r) / MB for r in ok),
                                  max(_wire(r) / MB for r in ok)]
                if ok else None,
                "normal_pages": _median([r["ram"].get("normal", 0)
                                         for r in ok]),
                "zero_pages": _median([r["ram"].get("duplicate", 0)
                                       for r in ok]),
                "throttle_max": _median([r.get("throttle_max", 0)
                                         for r in ok]),
                "throttle_s": _median([r.get("throttle_s", 0) for r in ok]),
                "guest_ratio": _median(g),
                "faults": _median([_faults(r) for r in ok
                                   if _faults(r) is not None]),
            }
            s.update(_time_parts(ok))
            if cfg == "precopy":
                base = s
            for k in ("time_s", "downtime_ms", "wire_mb", "running_s",
                      "src_total_s", "paused_ms"):
                s[k + "_ratio"] = (s[k] / base[k]
                                   if base and s[k] is not None and
                                   base[k] else None)
            summary.append(s)
        # against QEMU's nearest feature for the throttling capability
        ac = next((s for s in summary if s["scenario"] == sc and
                   s["config"] == "auto-converge" and s["ok"]), None)
        for s in summary:
            if s["scenario"] != sc:
                continue
            for k in ("time_s", "throttle_s"):
                s[k + "_vs_ac"] = (s[k] / ac[k]
                                   if ac and s[k] is not None and
                                   ac.get(k) else None)
        # write faults against per-page write-fault tracking
        pp = next((s for s in summary if s["scenario"] == sc and
                   s["config"] == "write-fault-groups-1" and
                   s.get("faults")), None)
        for s in summary:
            if s["scenario"] == sc:
                s["faults_vs_per_page"] = (
                    s["faults"] / pp["faults"]
                    if pp and s.get("faults") is not None else None)
    return summary


def _mb(v):
    return None if v is None else v / MB


def _time_parts(ok):
    """Medians of what the harness measures beyond query-migrate: time
    to the destination running, the guest's pause, and the parts of the
    file, cut and restart configurations."""
    def med(f):
        xs = [v for v in (f(r) for r in ok) if v is not None]
        return _median(xs)

    def sp(k):
        return lambda r: (spill_counts(r) or {}).get(k)

    def a1(k):
        return lambda r: r.get("attempt1", {}).get(k)

    def fw(k):
        return lambda r: r.get("forwarder", {}).get(k)

    run = [r["running_ms"] / 1000 for r in ok if "running_ms" in r]
    out = {
        "running_s": _median(run),
        "running_s_range": [min(run), max(run)] if run else None,
        "src_total_s": med(lambda r: r.get("src_total_time_ms") and
                           r["src_total_time_ms"] / 1000),
        "paused_ms": med(lambda r: r.get("paused_ms")),
        "stream_mb": med(lambda r: r.get("stream_bytes",
                                         r.get("ram", {}).get("transferred"))
                         / MB),
        "file_mb": med(lambda r: r.get("file_bytes") and
                       r["file_bytes"] / MB),
        "dst_file_mb": med(lambda r: _mb(sp("dst_file_bytes")(r))),
        "failovers_src": med(sp("failovers_src")),
        "failovers_dst": med(sp("failovers_dst")),
        "file_errors": med(sp("file_errors")),
        "dst_start_ms": med(lambda r: r.get("dst_start_ms")),
        "dst_load_ms": med(lambda r: r.get("dst_load_ms")),
        "attempt1_s": med(a1("failed_s")),
        "attempt1_wire_mb": med(lambda r: r.get("attempt1") and
                                r["attempt1"]["wire_bytes"] / MB),
        "restart_at_s": med(lambda r: r.get("restart_at_s")),
        "restart_excluded_s": med(lambda r: r.get("restart_excluded_s")),
        "cut_mb": med(lambda r: r.get("cut") and r["cut"]["bytes"] / MB),
        "cut_s": med(fw("cut_s")),
        "fwd_mib_s": med(fw("mib_s")),
        "cut_estimated": any(r.get("cut", {}).get("estimated") for r in ok),
        "cut_basis": next((r["cut"].get("basis", "") for r in ok
                           if r.get("cut")), ""),
    }
    return out


# shared-file-spill's comparisons: (config, against, what it measures)
SPILL_PAIRS = [
    ("shared-file-spill", "precopy", "overhead with no fault"),
    ("shared-file-spill", "mapped-ram", "against QEMU's file migration"),
    ("shared-file-spill-cut50", "precopy-cut50-restart",
     "network broken halfway: failover against a restart from zero"),
]
SPILL_CONFIGS = ("mapped-ram", "shared-file-spill", "shared-file-spill-cut50",
                 "precopy-cut50-restart")


def spill_comparisons(summary):
    """Per scenario, the ratios of SPILL_PAIRS (medians over medians)."""
    out = []
    for sc in dict.fromkeys(s["scenario"] for s in summary):
        by = {s["config"]: s for s in summary if s["scenario"] == sc}
        for a, b, what in SPILL_PAIRS:
            x, y = by.get(a), by.get(b)
            if not x or not y:
                continue
            c = {"scenario": sc, "config": a, "against": b, "what": what}
            for k in ("running_s", "src_total_s", "downtime_ms",
                      "paused_ms", "wire_mb", "stream_mb"):
                c[k] = (x[k] / y[k] if x.get(k) is not None and y.get(k)
                        else None)
            out.append(c)
    return out


SPILL_COLS = [
    ("scenario", "scenario"), ("config", "config"), ("okruns", "ok/runs"),
    ("running", "to destination running s (x precopy)"),
    ("src_total", "source total-time s"),
    ("down", "downtime ms (QEMU)"),
    ("paused", "guest paused ms"),
    ("wire", "network MB"), ("stream", "stream MB"),
    ("file", "file MB"), ("dst_file", "read from file MB"),
    ("failovers", "failovers src/dst"),
]


def spill_rows(summary):
    rows = []
    for s in summary:
        if s["config"] != "precopy" and s["config"] not in SPILL_CONFIGS:
            continue
        fo = "-"
        if s.get("failovers_src") is not None or \
                s.get("failovers_dst") is not None:
            fo = "%s/%s" % (_num(s.get("failovers_src"), "%g"),
                            _num(s.get("failovers_dst"), "%g"))
        rows.append({
            "scenario": s["scenario"], "config": s["config"],
            "okruns": "%d/%d" % (s["ok"], s["runs"]),
            "running": "-" if s.get("running_s") is None else
            ("%.2f" % s["running_s"]) +
            (" (%.2f)" % s["running_s_ratio"]
             if s.get("running_s_ratio") is not None else ""),
            "src_total": _num(s.get("src_total_s"), "%.2f"),
            "down": _num(s.get("downtime_ms"), "%.0f"),
            "paused": _num(s.get("paused_ms"), "%.0f"),
            "wire": _num(s.get("wire_mb"), "%.0f"),
            "stream": _num(s.get("stream_mb"), "%.0f"),
            "file": _num(s.get("file_mb"), "%.0f"),
            "dst_file": _num(s.get("dst_file_mb"), "%.0f"),
            "failovers": fo,
        })
    return rows


def spill_lines(summary, comparisons, max_bw_mib_s):
    """The ratios and the parts of each configuration, as Markdown list
    items."""
    out = []
    for c in comparisons:
        parts = ["time to destination running x%.2f" % c["running_s"]
                 if c["running_s"] is not None else
                 "time to destination running: no verified run"]
        if c["src_total_s"] is not None and c["against"] == "precopy":
            parts.append("source total-time x%.2f" % c["src_total_s"])
        if c["paused_ms"] is not None:
            parts.append("guest paused x%.2f" % c["paused_ms"])
        if c["wire_mb"] is not None:
            parts.append("network bytes x%.2f" % c["wire_mb"])
        line = "- %s: %s vs %s (%s): %s" % (
            c["scenario"], c["config"], c["against"], c["what"],
            ", ".join(parts))
        if c["against"] == "precopy" and c["running_s"] is not None:
            over = [v for v in (c["running_s"], c["src_total_s"])
                    if v is not None]
            worst = max(over) - 1
            if worst <= 0:
                # the file carries pages beside the capped link: a speed-up,
                # which says nothing of the tee's own cost
                line += ("; no time overhead: it took x%.2f of precopy's "
                         "time at most, the file carrying pages beside the "
                         "capped link (goal: at most +5%%)" % (1 + worst))
            else:
                line += ("; overhead %+.1f%% (the larger of the two): %s "
                         "the goal of at most 5%%" % (
                             100 * worst,
                             "within" if worst <= 0.05 else "NOT within"))
        out.append(line)
    for s in summary:
        if s["config"] == "mapped-ram" and s["ok"]:
            out.append("- %s/mapped-ram parts: source total-time %s s, "
                       "destination QEMU started in %s ms, loaded the file "
                       "in %s ms (medians)" % (
                           s["scenario"], _num(s["src_total_s"], "%.2f"),
                           _num(s["dst_start_ms"], "%.0f"),
                           _num(s["dst_load_ms"], "%.0f")))
        if s["config"] in ("shared-file-spill-cut50",
                           "precopy-cut50-restart") and s.get("cut_mb"):
            out.append("- %s/%s: the forwarder cut after %.0f MB (%s), "
                       "%.2f s after migrate; it passed %s MiB/s until "
                       "then (link cap %g MiB/s)" % (
                           s["scenario"], s["config"], s["cut_mb"],
                           "FIXED ESTIMATE, no verified run to take it from"
                           if s["cut_estimated"] else
                           "half the %s" % (s["cut_basis"] or
                                            "median precopy stream so far"),
                           s["cut_s"] or 0, _num(s["fwd_mib_s"], "%.0f"),
                           max_bw_mib_s))
        if s["config"] == "precopy-cut50-restart" and s["ok"]:
            out.append("- %s/precopy-cut50-restart parts: the first "
                       "migration failed %.2f s after migrate with %.0f MB "
                       "through; the source ran on, verified; the second "
                       "migrate %.2f s after the first (not counting %.1f s "
                       "of the harness checking the source in between); "
                       "destination running at %.2f s (medians)" % (
                           s["scenario"], s["attempt1_s"] or 0,
                           s["attempt1_wire_mb"] or 0,
                           s["restart_at_s"] or 0,
                           s["restart_excluded_s"] or 0,
                           s["running_s"] or 0))
    return out


BENCH_COLS = [
    ("scenario", "scenario"), ("config", "config"), ("okruns", "ok/runs"),
    ("time", "time s (x precopy)"), ("down", "downtime ms (x precopy)"),
    ("wire", "wire MB (x precopy)"), ("throttle", "throttle max"),
    ("throttle_s", "throttle-s (x auto-converge)"),
    ("time_ac", "time x auto-converge"),
    ("guest", "guest tput during"),
    ("faults", "write faults (x per-page)"),
]


def bench_rows(summary):
    rows = []
    for s in summary:
        def cell(k, fmt):
            if s[k] is None:
                return "-"
            r = s.get(k + "_ratio")
            return (fmt % s[k]) + (" (%.2f)" % r if r is not None else "")
        rows.append({
            "scenario": s["scenario"], "config": s["config"],
            "okruns": "%d/%d" % (s["ok"], s["runs"]),
            "time": cell("time_s", "%.2f"),
            "down": cell("downtime_ms", "%.0f"),
            "wire": cell("wire_mb", "%.0f"),
            "throttle": _num(s["throttle_max"], "%.0f%%"),
            "throttle_s": "-" if s.get("throttle_s") is None else
            ("%.1f" % s["throttle_s"]) +
            (" (%.2f)" % s["throttle_s_vs_ac"]
             if s.get("throttle_s_vs_ac") is not None else ""),
            "time_ac": _num(s.get("time_s_vs_ac"), "%.2f"),
            "guest": _num(s["guest_ratio"] and 100 * s["guest_ratio"],
                          "%.0f%%"),
            "faults": "-" if s.get("faults") is None else
            ("%d" % s["faults"]) +
            (" (%.3f)" % s["faults_vs_per_page"]
             if s.get("faults_vs_per_page") is not None else ""),
        })
    return rows


def plot(results, summary, path_bars, path_progress, title,
         time_key="time_s", time_label="total time (s)"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(s["scenario"] for s in summary))
    cfgs = list(dict.fromkeys(s["config"] for s in summary))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(cfgs))
    for ax, key, label in ((axes[0], "wire_mb", "bytes on the wire (MB)"),
                           (axes[1], time_key, time_label)):
        for i, c in enumerate(cfgs):
            xs, ys, lo, hi = [], [], [], []
            for j, sc in enumerate(scen):
                s = next((s for s in summary if s["scenario"] == sc and
                          s["config"] == c), None)
                if s and s[key] is not None:
                    rng = s[key + "_range"]
                    xs.append(j + i * width)
                    ys.append(s[key])
                    lo.append(s[key] - rng[0])
                    hi.append(rng[1] - s[key])
                elif s:
                    ax.text(j + i * width, 0, " no verified run", rotation=90,
                            ha="center", va="bottom", fontsize=7)
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=c)
        ax.set_xticks([j + width * (len(cfgs) - 1) / 2
                       for j in range(len(scen))])
        ax.set_xticklabels(scen)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title + " (median, bars: min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path_bars, dpi=90)
    plt.close(fig)

    ncol = min(3, len(scen))
    nrow = (len(scen) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(7, 4.6 * ncol),
                                                  3.6 * nrow + 0.6),
                             squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(scen):]:
        ax.set_visible(False)
    for ax, sc in zip(flat, scen):
        for c in cfgs:
            r = next((r for r in results if r["scenario"] == sc and
                      r["config"] == c and r["status"] == "ok" and
                      r.get("samples")), None)
            if not r:
                continue
            t = [s["t"] for s in r["samples"]]
            b = [s["transferred"] / MB for s in r["samples"]]
            ax.plot(t, b, label=c)
            if r.get("postcopy_started_s") is not None:
                ax.axvline(r["postcopy_started_s"], ls=":", lw=0.8)
            cut_s = r.get("forwarder", {}).get("cut_s")
            if cut_s is not None:
                ax.axvline(cut_s, ls="--", lw=0.8,
                           color=ax.lines[-1].get_color())
        ax.set_title(sc)
        ax.set_xlabel("seconds since migrate")
        ax.set_ylabel("MB transferred")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("transfer progress, first verified run (dotted: "
                 "postcopy starts, dashed: the network is cut)\n" + title,
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path_progress, dpi=90)
    plt.close(fig)


# shared-file-spill in postcopy (make bench-spill-postcopy): the guest's
# stall when the network breaks at the switchover.
PC_CONFIGS = ("postcopy-ram", "postcopy-ram-link", "postcopy-spill",
              "postcopy-cut-recover", "postcopy-spill-cut",
              "postcopy-preempt-link", "postcopy-preempt-spill-cut")
# the section is written when one of these ran
PC_CUT_CONFIGS = PC_CONFIGS[1:]
# the ones that cut the network at the switchover (a timeline each)
PC_CUT_AT_SWITCHOVER = ("postcopy-cut-recover", "postcopy-spill-cut",
                        "postcopy-preempt-spill-cut")
# (config, against, what it measures)
PC_PAIRS = [
    ("postcopy-spill-cut", "postcopy-cut-recover",
     "network cut at switchover: through the files against a recovery "
     "5 s later"),
    ("postcopy-spill-cut", "postcopy-ram-link",
     "network cut at switchover against no cut, postcopy at the link's "
     "speed in both"),
    ("postcopy-spill-cut", "postcopy-ram",
     "against QEMU's default postcopy, uncapped, no cut"),
    ("postcopy-spill", "postcopy-ram-link", "spill's overhead with no cut"),
    ("postcopy-preempt-spill-cut", "postcopy-cut-recover",
     "network cut at switchover, with postcopy-preempt: through the files "
     "against a recovery 5 s later (without preempt)"),
    ("postcopy-preempt-spill-cut", "postcopy-preempt-link",
     "network cut at switchover against no cut, postcopy-preempt at the "
     "link's speed in both"),
    ("postcopy-preempt-spill-cut", "postcopy-spill-cut",
     "network cut at switchover through the files, with the preempt "
     "channel against without"),
    ("postcopy-preempt-link", "postcopy-ram-link",
     "postcopy-preempt's own effect, no cut, at the link's speed"),
]


def pc_counts(r):
    """The destination's shared-file-spill postcopy counters, or None."""
    v = (r.get("dest_extra") or {}).get("shared-file-spill")
    if not isinstance(v, dict):
        return None
    return {k: v.get(k) for k in ("postcopy-requests", "postcopy-pages",
                                  "postcopy-wait-ms", "failovers",
                                  "file-bytes")}


def pc_parts(r):
    """One postcopy run's figures for the postcopy table (None: not
    measured)."""
    st = r.get("guest_stall") or {}
    pc = r.get("postcopy_cut") or {}
    src_done = (r.get("src_total_time_ms") or 0) / 1000 or None
    stop = r.get("stop_s")
    cut = pc.get("cut_s")
    out = {
        "total_s": src_done,
        "switch_to_complete_s": src_done - stop
        if src_done is not None and stop is not None else None,
        "cut_to_complete_s": pc.get("cut_to_complete_s"),
        "cut_after_stop_s": cut - stop
        if cut is not None and stop is not None else None,
        "cut_mb": (r.get("forwarder") or {}).get("bytes", 0) / MB
        if cut is not None else None,
        "fwd_connections": (r.get("forwarder") or {}).get("connections")
        if cut is not None else None,
        "paused_ms": r.get("paused_ms"),
        "longest_stall_s": st.get("longest_stall_s"),
        "lost_s": st.get("lost_s"),
        "tput_ratio": st.get("tput_ratio"),
        "window_guest_s": st.get("window_guest_s"),
        "clock_check_s": (r.get("guest_clock") or {}).get(
            "stood_still_minus_paused_s"),
        "src_paused_after_cut_s": pc.get("src_paused_s") - cut
        if pc.get("src_paused_s") is not None else None,
        "dst_paused_after_cut_s": pc.get("dst_paused_s") - cut
        if pc.get("dst_paused_s") is not None else None,
        "recover_after_cut_s": pc.get("recover_s") - cut
        if pc.get("recover_s") is not None else None,
        "resumed_active_after_cut_s": pc.get("resumed_active_s") - cut
        if pc.get("resumed_active_s") is not None else None,
        "dst_resumed_active_after_cut_s": pc.get("dst_resumed_active_s") -
        cut if pc.get("dst_resumed_active_s") is not None else None,
        "dst_completed_after_cut_s": pc.get("dst_completed_s") - cut
        if pc.get("dst_completed_s") is not None and cut is not None
        else None,
    }
    c = pc_counts(r) or {}
    sp = spill_counts(r) or {}
    out.update({
        "pc_requests": c.get("postcopy-requests"),
        "pc_pages": c.get("postcopy-pages"),
        "pc_wait_ms": c.get("postcopy-wait-ms"),
        "dst_file_mb": _mb(c.get("file-bytes")),
        "src_file_mb": _mb(sp.get("file_bytes")),
        "failovers_src": sp.get("failovers_src"),
        "failovers_dst": sp.get("failovers_dst"),
    })
    return out


PC_KEYS = ("total_s", "switch_to_complete_s", "cut_to_complete_s",
           "cut_after_stop_s", "cut_mb", "fwd_connections", "paused_ms",
           "longest_stall_s", "lost_s", "tput_ratio", "window_guest_s",
           "clock_check_s",
           "src_paused_after_cut_s", "dst_paused_after_cut_s",
           "recover_after_cut_s", "resumed_active_after_cut_s",
           "dst_resumed_active_after_cut_s",
           "dst_completed_after_cut_s", "pc_requests", "pc_pages",
           "pc_wait_ms", "dst_file_mb", "src_file_mb", "failovers_src",
           "failovers_dst")


def pc_summary(results, scenarios):
    """Medians of pc_parts per (scenario, config) over verified runs,
    with each figure's min and max."""
    out = []
    for sc in scenarios:
        for cfg in PC_CONFIGS:
            rs = [r for r in results if r["scenario"] == sc and
                  r["config"] == cfg]
            if not rs:
                continue
            ok = [r for r in rs if r["status"] == "ok"]
            parts = [pc_parts(r) for r in ok]
            s = {"scenario": sc, "config": cfg, "runs": len(rs),
                 "ok": len(ok), "range": {}}
            for k in PC_KEYS:
                xs = [p[k] for p in parts if p[k] is not None]
                s[k] = _median(xs)
                s["range"][k] = [min(xs), max(xs)] if xs else None
            s["stall_measured"] = sum(p["longest_stall_s"] is not None
                                      for p in parts)
            out.append(s)
    return out


def pc_comparisons(pcs):
    """PC_PAIRS per scenario: ratios (and differences) of medians.  The
    no-cut side's switchover-to-completion stands for cut-to-completion."""
    out = []
    for sc in dict.fromkeys(s["scenario"] for s in pcs):
        by = {s["config"]: s for s in pcs if s["scenario"] == sc}
        for a, b, what in PC_PAIRS:
            x, y = by.get(a), by.get(b)
            if not x or not y or not x["ok"] or not y["ok"]:
                continue
            c = {"scenario": sc, "config": a, "against": b, "what": what}

            for k, xv, yv in (
                    ("total_s", x["total_s"], y["total_s"]),
                    ("to_complete_s", x["switch_to_complete_s"],
                     y["switch_to_complete_s"]),
                    ("longest_stall_s", x["longest_stall_s"],
                     y["longest_stall_s"]),
                    ("lost_s", x["lost_s"], y["lost_s"])):
                c[k] = (xv / yv if xv is not None and yv and yv > 0.05
                        else None)
                c[k + "_diff"] = (xv - yv if xv is not None and
                                  yv is not None else None)
            out.append(c)
    return out


PC_COLS = [
    ("scenario", "scenario"), ("config", "config"),
    ("okruns", "verified/runs"),
    ("total", "total s"),
    ("to_complete", "cut (switchover) to completion s"),
    ("paused", "guest paused ms"),
    ("stall", "longest stall s"),
    ("lost", "progress lost s"),
    ("tput", "guest tput in window"),
    ("spill", "dst spill: requests / pages / wait ms / read MB"),
    ("failovers", "failovers src/dst"),
]


def pc_rows(pcs):
    rows = []
    for s in pcs:
        fo = "-"
        if s.get("failovers_src") is not None:
            fo = "%s/%s" % (_num(s["failovers_src"], "%g"),
                            _num(s["failovers_dst"], "%g"))
        tc = s.get("cut_to_complete_s")
        rows.append({
            "scenario": s["scenario"], "config": s["config"],
            "okruns": "%d/%d" % (s["ok"], s["runs"]),
            "total": _num(s["total_s"], "%.2f"),
            "to_complete": ("%.2f" % tc) if tc is not None else
            "(%s)" % _num(s.get("switch_to_complete_s"), "%.2f"),
            "paused": _num(s["paused_ms"], "%.0f"),
            "stall": _num(s["longest_stall_s"], "%.2f"),
            "lost": _num(s["lost_s"], "%.2f"),
            "tput": _num(s["tput_ratio"] and 100 * s["tput_ratio"],
                         "%.0f%%"),
            "spill": "-" if s.get("pc_requests") is None else
            "%g / %g / %g / %.0f" % (s["pc_requests"], s["pc_pages"],
                                     s["pc_wait_ms"],
                                     s.get("dst_file_mb") or 0),
            "failovers": fo,
        })
    return rows


def pc_lines(pcs, comps):
    """Ratios and each configuration's timeline, as Markdown list items."""
    out = []
    for c in comps:
        parts = []
        for k, label in (("longest_stall_s", "longest stall"),
                         ("lost_s", "progress lost"),
                         ("to_complete_s", "switchover to completion"),
                         ("total_s", "total time")):
            d = c.get(k + "_diff")
            if d is None:
                continue
            parts.append("%s %s (%+.2f s)" % (
                label, "x%.2f" % c[k] if c[k] is not None else
                "x- (base under 0.05 s)", d))
        out.append("- %s: %s vs %s (%s): %s" % (
            c["scenario"], c["config"], c["against"], c["what"],
            ", ".join(parts)))
    for s in pcs:
        if not s["ok"]:
            continue
        if s["config"] in PC_CUT_AT_SWITCHOVER:
            line = ("- %s/%s timeline (medians, s after the cut): the cut "
                    "%.3f s after the source's STOP, %.0f MB through the "
                    "forwarder by then" % (
                        s["scenario"], s["config"],
                        s["cut_after_stop_s"] or 0, s["cut_mb"] or 0))
            if (s.get("fwd_connections") or 0) > 1:
                line += " over %g connections (all cut)" % (
                    s["fwd_connections"])
            if s["config"] == "postcopy-cut-recover":
                line += ("; source postcopy-paused at %s, destination at "
                         "%s; migrate-recover at %s; postcopy-active again "
                         "at %s on the source (100 ms samples), %s on the "
                         "destination" % tuple(
                             _num(s[k], "%.2f") for k in (
                                 "src_paused_after_cut_s",
                                 "dst_paused_after_cut_s",
                                 "recover_after_cut_s",
                                 "resumed_active_after_cut_s",
                                 "dst_resumed_active_after_cut_s")))
            line += ("; source completed at %s, destination at %s" % (
                _num(s["cut_to_complete_s"], "%.2f"),
                _num(s["dst_completed_after_cut_s"], "%.2f")))
            out.append(line)
        if s["stall_measured"] < s["ok"]:
            out.append("- %s/%s: the stall could not be measured in %d of "
                       "%d verified runs (no dirtier log covering the "
                       "window)" % (s["scenario"], s["config"],
                                    s["ok"] - s["stall_measured"], s["ok"]))
        if s.get("clock_check_s") is not None and \
                abs(s["clock_check_s"]) > 0.2:
            out.append("- %s/%s: the guest's clock stood still %.2f s "
                       "longer than the guest was paused (median): the "
                       "stall figures are off by up to that" % (
                           s["scenario"], s["config"], s["clock_check_s"]))
    return out


def plot_guest(results, path, title):
    """The dirtier's throughput per log line around the switchover, first
    verified run of each postcopy configuration, in guest seconds since
    the switchover (the guest's clock stands still while it is paused)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(r["scenario"] for r in results
                              if r.get("guest_stall")))
    if not scen:
        return False
    fig, axes = plt.subplots(len(scen), 1, figsize=(10, 3.8 * len(scen)),
                             squeeze=False)
    for ax, sc in zip([a[0] for a in axes], scen):
        for c in PC_CONFIGS:
            r = next((r for r in results if r["scenario"] == sc and
                      r["config"] == c and r["status"] == "ok" and
                      r.get("guest_tput_log") and
                      (r.get("guest_stall") or {}).get("g_switch")), None)
            if not r:
                continue
            g0 = r["guest_stall"]["g_switch"]
            log = [(t - g0, v) for t, v in r["guest_tput_log"]
                   if -8 <= t - g0 <= 20]
            if not log:
                continue
            ax.step([t for t, v in log], [v for t, v in log], where="pre",
                    label=c)
        ax.axvline(0, ls=":", lw=0.8, color="k")
        ax.set_title("%s (dotted: switchover, where the cut is)" % sc)
        ax.set_xlabel("guest seconds since the switchover (each step: one "
                      "log line, the MB/s since the previous one)")
        ax.set_ylabel("dirtier MB/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("the guest's own throughput, first verified run\n" + title,
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
