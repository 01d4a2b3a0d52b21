# SPDX-License-Identifier: GPL-2.0-or-later
"""shared-file-spill in postcopy's part of the report (make
bench-spill-postcopy): the guest's stall when the network breaks at the
switchover, with a recovery or through the spill files, in its own
section with a plot of the guest's throughput."""

import plot
import report_spill
from reportlib import MB, Section, md_table, median, mb, num


# its configurations, in the order of its table and plot
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
    sp = report_spill.spill_counts(r) or {}
    out.update({
        "pc_requests": c.get("postcopy-requests"),
        "pc_pages": c.get("postcopy-pages"),
        "pc_wait_ms": c.get("postcopy-wait-ms"),
        "dst_file_mb": mb(c.get("file-bytes")),
        "src_file_mb": mb(sp.get("file_bytes")),
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
                s[k] = median(xs)
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
            fo = "%s/%s" % (num(s["failovers_src"], "%g"),
                            num(s["failovers_dst"], "%g"))
        tc = s.get("cut_to_complete_s")
        rows.append({
            "scenario": s["scenario"], "config": s["config"],
            "okruns": "%d/%d" % (s["ok"], s["runs"]),
            "total": num(s["total_s"], "%.2f"),
            "to_complete": ("%.2f" % tc) if tc is not None else
            "(%s)" % num(s.get("switch_to_complete_s"), "%.2f"),
            "paused": num(s["paused_ms"], "%.0f"),
            "stall": num(s["longest_stall_s"], "%.2f"),
            "lost": num(s["lost_s"], "%.2f"),
            "tput": num(s["tput_ratio"] and 100 * s["tput_ratio"],
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
                             num(s[k], "%.2f") for k in (
                                 "src_paused_after_cut_s",
                                 "dst_paused_after_cut_s",
                                 "recover_after_cut_s",
                                 "resumed_active_after_cut_s",
                                 "dst_resumed_active_after_cut_s")))
            line += ("; source completed at %s, destination at %s" % (
                num(s["cut_to_complete_s"], "%.2f"),
                num(s["dst_completed_after_cut_s"], "%.2f")))
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


# the section's text: how the runs go, then what each column means
ABOUT = (
    "Postcopy switches over once the first pass over RAM is done "
    "(the source stops the guest, the destination runs it). "
    "*postcopy-cut-recover*, *postcopy-spill-cut* and "
    "*postcopy-preempt-spill-cut*: the "
    "forwarder cuts the connection as soon as the source reports "
    "`postcopy-active` (polled every 5 ms from "
    "`migrate-start-postcopy`); with `postcopy-preempt` the "
    "source opens a second connection, the preempt channel, as "
    "it starts postcopy: the forwarder passes both and cuts both "
    "(a run counts only if both went through it). *-link*: "
    "`max-postcopy-bandwidth` set to the link's `max-bandwidth` "
    "(which QEMU accounts over both channels). Without spill "
    "both sides pause "
    "(`postcopy-paused`); 5 s after the cut the harness runs "
    "`migrate-recover` on the destination (a new port, through a "
    "new forwarder without a cut) and `migrate` with `resume` on "
    "the source. With spill nothing is done: it must complete "
    "through the files, one failover on each side, neither side "
    "paused.")
COLUMNS = (
    "*total s*: the source's `total-time` (from `migrate`, across "
    "a recovery). *cut (switchover) to completion s*: from the "
    "cut to the source's completion; in parentheses, for the "
    "runs without a cut, from the source's `STOP` (the "
    "switchover) to its completion. *guest paused ms*: the "
    "source's `STOP` to the destination's `RESUME`. The stall is "
    "measured inside the guest, from the dirtier's log (one line "
    "a second: guest time, pages written), in guest time, which "
    "stands still while the guest is paused and runs on while "
    "its vCPU waits for a page: over the window from the last "
    "line before the switchover to the first line 1 s after the "
    "source completed, each interval between two lines less the "
    "time the pages written in it take at the dirtier's speed "
    "before the migration is time without progress. *longest "
    "stall s*: the largest of those (the 1 s lines cannot tell "
    "apart stalls in the same second); *progress lost s*: their "
    "sum over the window (seconds of the dirtier's work); *guest "
    "tput in window*: pages written in the window against its "
    "speed before. *dst spill*: the destination's "
    "`shared-file-spill` `postcopy-requests` (pages asked for "
    "through the return path's file), `postcopy-pages` (placed "
    "after the cut), `postcopy-wait-ms` (request to placement) "
    "and `file-bytes` (read from the spill file). Every run's "
    "memory is verified on the destination (region checksum, "
    "every dirtier page's generation, the page-cache files); "
    "*verified/runs* counts the runs that passed.")


def section(ctx):
    """Written when one of PC_CUT_CONFIGS ran."""
    if not any(s["config"] in PC_CUT_CONFIGS for s in ctx.summary):
        return None
    pcs = pc_summary(ctx.results, ctx.scenarios)
    comps = pc_comparisons(pcs)
    rows = pc_rows(pcs)
    lines = pc_lines(pcs, comps)
    md = (["## shared-file-spill in postcopy: the guest's stall after "
           "a network cut", "", ABOUT, "", COLUMNS, "",
           md_table(rows, PC_COLS), ""] + lines +
          ["", "![guest throughput around the switchover]"
           "(%s-guest.png)" % ctx.name, "",
           "## Every counter, as in the other benchmarks", ""])
    return Section(
        json={"postcopy_summary": pcs, "postcopy_comparisons": comps},
        md=md, rows=rows, cols=PC_COLS, lines=lines, print_rank=0,
        plots=[("guest", "-guest.png",
                lambda path: plot.plot_guest(ctx.results, path, ctx.title,
                                             PC_CONFIGS))])
