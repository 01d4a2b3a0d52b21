# SPDX-License-Identifier: GPL-2.0-or-later
"""Tables, Markdown and plots from run results (lists of result dicts)."""

import statistics

MB = 1e6


def _num(v, fmt="%.1f", none="-"):
    return none if v is None else fmt % v


def _wire(r):
    return r.get("ram", {}).get("transferred")


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
            if cfg == "precopy":
                base = s
            for k in ("time_s", "downtime_ms", "wire_mb"):
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


def plot(results, summary, path_bars, path_progress, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(s["scenario"] for s in summary))
    cfgs = list(dict.fromkeys(s["config"] for s in summary))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(cfgs))
    for ax, key, label in ((axes[0], "wire_mb", "bytes on the wire (MB)"),
                           (axes[1], "time_s", "total time (s)")):
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
        ax.set_title(sc)
        ax.set_xlabel("seconds since migrate")
        ax.set_ylabel("MB transferred")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("transfer progress, first verified run (dotted: "
                 "postcopy starts)\n" + title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path_progress, dpi=90)
    plt.close(fig)
