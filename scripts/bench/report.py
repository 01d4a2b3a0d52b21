# SPDX-License-Identifier: GPL-2.0-or-later
"""The generic report from run results (lists of result dicts): the demo
and bench tables, notes, counters, the summary of a benchmark and its
JSON, Markdown and text, as guestperf splits its report and plots.

What a capability adds (its summary fields and comparisons, columns,
counter order, a section of its own) is registered in report_sections.py,
which this module iterates; the plots are in plot.py; formatting and the
hooks' types in reportlib.py."""

import json
import os

import plot
from report_headline import first_pass_zero
from report_sections import CAPABILITIES, COUNTER_ORDER
from reportlib import (Context, MB, guest_tput, md_table, median, median_of,
                       num, text_table, wire_bytes)

__all__ = ["run_row", "DEMO_COLS", "text_table", "md_table", "notes",
           "is_error", "counters", "summarize", "bench_cols", "bench_rows",
           "write_outputs"]


_wire = wire_bytes
_guest = guest_tput


def run_row(r, base=None):
    """One row of the demo table for one run."""
    ram = r.get("ram", {})
    ok = r["status"] == "ok"
    g = _guest(r)
    row = {
        "config": r["config"],
        "result": "ok, verified" if ok else r["status"],
        "time_s": num(r.get("total_time_ms") / 1000, "%.2f") if ok else "-",
        "downtime_ms": num(r.get("downtime_ms"), "%d") if ok else "-",
        "wire_mb": num(_wire(r) / MB, "%.0f") if ok else "-",
        "vs_precopy": "-",
        "normal_pages": num(ram.get("normal"), "%d") if ok else "-",
        "zero_pages": num(ram.get("duplicate"), "%d") if ok else "-",
        "syncs": num(ram.get("dirty-sync-count"), "%d") if ok else "-",
        "pc_reqs": num(ram.get("postcopy-requests"), "%d") if ok else "-",
        "throttle": num(r.get("throttle_max"), "%d%%") if ok else "-",
        "guest": "%.0f/%.0f (%.0f%%)" % (
            g["during_mbps"], g["before_mbps"], 100 * g["ratio"])
        if ok and g else "-",
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


def counters(results):
    """Lines with each run's capability counters (query-migrate extras),
    and what each capability adds after them (report_sections)."""
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
        for cap in CAPABILITIES:
            if cap.run_lines:
                out += cap.run_lines(r)
    return out


def _insert_after(d, anchor, items):
    """@d with @items right after its key @anchor (at the end without)."""
    if anchor not in d:
        return dict(d, **items)
    out = {}
    for k, v in d.items():
        out[k] = v
        if k == anchor:
            out.update(items)
    return out


def _entry(sc, cfg, rs):
    """One summary entry: medians of the verified runs of @rs, with
    what the capabilities add (fields)."""
    ok = [r for r in rs if r["status"] == "ok"]
    g = [_guest(r)["ratio"] for r in ok if _guest(r)]
    s = {
        "scenario": sc, "config": cfg, "runs": len(rs),
        "ok": len(ok),
        "time_s": median([r["total_time_ms"] / 1000 for r in ok]),
        "downtime_ms": median([r["downtime_ms"] for r in ok]),
        "wire_mb": median([_wire(r) / MB for r in ok]),
        "time_s_range": [min(r["total_time_ms"] / 1000 for r in ok),
                         max(r["total_time_ms"] / 1000 for r in ok)]
        if ok else None,
        "wire_mb_range": [min(_wire(r) / MB for r in ok),
                          max(_wire(r) / MB for r in ok)]
        if ok else None,
        "normal_pages": median([r["ram"].get("normal", 0) for r in ok]),
        "zero_pages": median([r["ram"].get("duplicate", 0) for r in ok]),
        "throttle_max": median([r.get("throttle_max", 0) for r in ok]),
        "throttle_s": median([r.get("throttle_s", 0) for r in ok]),
        "guest_ratio": median(g),
    }
    s.update(_time_parts(ok))
    for cap in CAPABILITIES:
        if cap.fields:
            s = _insert_after(s, cap.fields_after, cap.fields(ok))
    return s


def summarize(results, scenarios, configs):
    """Medians per (scenario, config) and ratios to precopy's medians,
    then each capability's comparisons within the scenario."""
    summary = []
    for sc in scenarios:
        base = None
        entries = []
        for cfg in configs:
            rs = [r for r in results if r["scenario"] == sc and
                  r["config"] == cfg]
            if not rs:
                continue
            s = _entry(sc, cfg, rs)
            if cfg == "precopy":
                base = s
            for k in ("time_s", "downtime_ms", "wire_mb", "running_s",
                      "src_total_s", "paused_ms"):
                s[k + "_ratio"] = (s[k] / base[k]
                                   if base and s[k] is not None and
                                   base[k] else None)
            entries.append(s)
        for cap in CAPABILITIES:
            if cap.compare:
                cap.compare(entries)
        summary += entries
    return summary


def _time_parts(ok):
    """Medians of what the harness measures beyond query-migrate: time
    to the destination running, the guest's pause, and the parts of the
    file, cut and restart configurations."""
    def med(f):
        return median_of(ok, f)

    def a1(k):
        return lambda r: r.get("attempt1", {}).get(k)

    def fw(k):
        return lambda r: r.get("forwarder", {}).get(k)

    run = [r["running_ms"] / 1000 for r in ok if "running_ms" in r]
    out = {
        "running_s": median(run),
        "running_s_range": [min(run), max(run)] if run else None,
        "src_total_s": med(lambda r: r.get("src_total_time_ms") and
                           r["src_total_time_ms"] / 1000),
        "paused_ms": med(lambda r: r.get("paused_ms")),
        "stream_mb": med(lambda r: r.get("stream_bytes",
                                         r.get("ram", {}).get("transferred"))
                         / MB),
        "file_mb": med(lambda r: r.get("file_bytes") and
                       r["file_bytes"] / MB),
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


# the generic columns; a capability's (report_sections) go after the
# column they name
BENCH_COLS = [
    ("scenario", "scenario"), ("config", "config"), ("okruns", "ok/runs"),
    ("time", "time s (x precopy)"), ("down", "downtime ms (x precopy)"),
    ("wire", "wire MB (x precopy)"), ("throttle", "throttle max"),
    ("guest", "guest tput during"),
]


def bench_cols():
    cols = list(BENCH_COLS)
    for cap in CAPABILITIES:
        for c in cap.columns:
            i = next((i for i, (k, _) in enumerate(cols) if k == c.after),
                     len(cols) - 1)
            cols.insert(i + 1, (c.key, c.header))
    return cols


def bench_rows(summary):
    rows = []
    for s in summary:
        def cell(k, fmt):
            if s[k] is None:
                return "-"
            r = s.get(k + "_ratio")
            return (fmt % s[k]) + (" (%.2f)" % r if r is not None else "")
        row = {
            "scenario": s["scenario"], "config": s["config"],
            "okruns": "%d/%d" % (s["ok"], s["runs"]),
            "time": cell("time_s", "%.2f"),
            "down": cell("downtime_ms", "%.0f"),
            "wire": cell("wire_mb", "%.0f"),
            "throttle": num(s["throttle_max"], "%.0f%%"),
            "guest": num(s["guest_ratio"] and 100 * s["guest_ratio"],
                         "%.0f%%"),
        }
        for cap in CAPABILITIES:
            for c in cap.columns:
                row[c.key] = c.cell(s)
        rows.append(row)
    return rows


def _title(meta):
    return "%s, %s, %d MiB guest, %g MiB/s link" % (
        meta["accel"].upper(),
        meta["qemu"].replace("QEMU emulator version ", "QEMU "),
        meta["mem_mib"], meta["max_bandwidth_mib_s"])


def _markdown(full, name, title, rows, nt, sections):
    """The bench Markdown: the header, each capability's section, the
    generic table, the scenarios, notes, counters and plots."""
    meta, results = full["meta"], full["runs"]
    md = ["# Live-migration benchmark (%s)" % name, "",
          "%s; %s repetitions; guest kernel %s, %d vCPU%s; run %s, %.0f "
          "min." % (
              title, meta.get("reps"), meta["kernel_package"],
              meta.get("vcpus", 1), "s" if meta.get("vcpus", 1) > 1 else "",
              meta["date"],
              meta.get("wall_s", 0) / 60), "",
          "Medians of verified runs; in parentheses the ratio to plain "
          "precopy's median in the same run (the figure that counts: "
          "absolute times on a shared 2-core TCG machine are noise). "
          "\"guest tput during\" is the dirtier's own throughput during the "
          "migration as a share of its throughput just before.", "",
          "Accelerator: %s (%s)." % (meta["accel"].upper(),
                                     meta["accel_reason"]), ""]
    if meta.get("qemu_binary"):
        md += ["QEMU binary: %s, built %s, sha256 %s." % (
            meta["qemu_path"], meta["qemu_binary"]["mtime"],
            meta["qemu_binary"]["sha256"][:16]), ""]
    for sec in sections:
        md += sec.md
    md += [md_table(rows, bench_cols()), "", "Scenarios:", ""]
    md += ["- `%s`: %s" % (s, full["scenarios"][s]["description"])
           for s in full["scenarios"]]
    if nt:
        md += ["", "Notes:", ""] + nt
    firsts = {}
    for r in results:
        if r["status"] == "ok":
            firsts.setdefault((r["scenario"], r["config"]), r)
    ct = counters(list(firsts.values()))
    if ct:
        md += ["", "Capability counters (query-migrate, first verified run "
               "of each):", ""] + ct
    md += ["", "![bytes and time](%s-bytes-time.png)" % name, "",
           "![transfer progress](%s-progress.png)" % name, ""]
    return md


def _write(d, name, slim, md, ctx, sections, log):
    """The JSON, Markdown and plots in directory @d."""
    os.makedirs(d, exist_ok=True)
    p = {
        "json": os.path.join(d, name + ".json"),
        "md": os.path.join(d, name + ".md"),
        "bars": os.path.join(d, name + "-bytes-time.png"),
        "progress": os.path.join(d, name + "-progress.png"),
    }
    extra = [(key, fn) for sec in sections for key, _, fn in sec.plots]
    for sec in sections:
        for key, suffix, _ in sec.plots:
            p[key] = os.path.join(d, name + suffix)
    with open(p["json"], "w") as f:
        json.dump(slim, f, indent=1)
    with open(p["md"], "w") as f:
        f.write("\n".join(md))
    bars_time = next((sec.bars_time for sec in sections if sec.bars_time),
                     None)
    try:
        if bars_time:
            plot.plot(ctx.results, ctx.summary, p["bars"], p["progress"],
                      ctx.title, time_key=bars_time[0],
                      time_label=bars_time[1])
        else:
            plot.plot(ctx.results, ctx.summary, p["bars"], p["progress"],
                      ctx.title)
        for key, fn in extra:
            if not fn(p[key]):
                del p[key]
    except ImportError as e:
        log("no plot: %s (install python3-matplotlib)" % e)
        for k in ["bars", "progress"] + [key for key, _ in extra]:
            p.pop(k, None)
    log("wrote %s" % ", ".join(p.values()))


def _slim_run(r):
    """A run without its timelines, but with what the headline's lower
    bound needs of them, so that a published JSON re-renders alike."""
    slim = {k: v for k, v in r.items()
            if k not in ("samples", "guest_tput_log", "traceback")}
    zero = first_pass_zero(r)
    if zero is not None:
        slim["first_pass_zero"] = zero
    return slim


def write_outputs(full, outdirs, name, log=print):
    """JSON (runs without timelines), Markdown and PNGs in each outdir;
    the tables on stdout."""
    meta, results = full["meta"], full["runs"]
    scen = list(full["scenarios"])
    cfgs = full.get("configs") or list(dict.fromkeys(
        r["config"] for r in results))
    summary = summarize(results, scen, cfgs)
    slim = {k: v for k, v in full.items() if k != "runs"}
    slim["summary"] = summary
    slim["runs"] = [_slim_run(r) for r in results]
    title = _title(meta)
    rows = bench_rows(summary)
    nt = notes(results, full["skipped"])
    # the capabilities' own sections that this run has
    ctx = Context(results, summary, scen, meta, name, title)
    sections = [sec for sec in (cap.section(ctx) for cap in CAPABILITIES
                                if cap.section) if sec]
    for sec in sections:
        slim.update(sec.json)
    md = _markdown(full, name, title, rows, nt, sections)
    for d in outdirs:
        _write(d, name, slim, md, ctx, sections, log)
    print()
    print(text_table(rows, bench_cols()))
    print()
    for sec in sorted(sections, key=lambda sec: sec.print_rank):
        print(text_table(sec.rows, sec.cols))
        print()
        for ln in sec.lines:
            print(ln)
        print()
    for n in nt:
        print(n)
