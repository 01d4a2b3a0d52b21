# SPDX-License-Identifier: GPL-2.0-or-later
"""What the generic report (report.py) and the capabilities' parts of it
(report_sections.py and the modules it registers) share: number
formatting, medians, text and Markdown tables, and the types a
capability's hooks take and return."""

import statistics
from dataclasses import dataclass, field
from typing import Callable, Optional

MB = 1e6


def num(v, fmt="%.1f", none="-"):
    return none if v is None else fmt % v


def median(xs):
    return statistics.median(xs) if xs else None


def median_of(runs, f):
    """Median of f(run) over @runs, leaving out None."""
    return median([v for v in (f(r) for r in runs) if v is not None])


def mb(v):
    return None if v is None else v / MB


def wire_bytes(r):
    """Bytes that went over the network: ram.transferred, unless the run
    says otherwise (the forwarder's count when it cut the connection, both
    attempts of a restart, 0 for a file migration)."""
    if "wire_bytes" in r:
        return r["wire_bytes"]
    return r.get("ram", {}).get("transferred")


def guest_tput(r):
    """The writer's throughput before and during the migration, or None
    where either was not measured."""
    g = r.get("guest_tput")
    if not g or g.get("before_mbps") is None or g.get("during_mbps") is None:
        return None
    return g


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


@dataclass
class Context:
    """What a capability's section is given: the runs, the summary
    (report.summarize), the scenarios in order, the run's meta, the
    outputs' file name stem and the plots' title."""
    results: list
    summary: list
    scenarios: list
    meta: dict
    name: str
    title: str


@dataclass
class Section:
    """A capability's own part of a benchmark report.

    json: keys added to the published JSON (after "runs");
    md: Markdown lines, before the generic table;
    rows, cols, lines: its table and list items printed after the
    generic table (sections in order of print_rank);
    bars_time: (summary key, label) for the time panel of the bytes and
    time plot instead of total time;
    plots: (key, file name suffix, fn(path) -> False if nothing to plot),
    written after the generic plots."""
    json: dict
    md: list
    rows: list
    cols: list
    lines: list
    print_rank: int = 0
    bars_time: Optional[tuple] = None
    plots: list = field(default_factory=list)


@dataclass
class Column:
    """A column of the generic bench table: right after the column @after,
    with the cell cell(summary entry)."""
    key: str
    header: str
    after: str
    cell: Callable[[dict], str]


@dataclass
class Capability:
    """What one capability adds to the generic report; every hook is
    optional.

    fields(ok runs) -> dict: medians added to each summary entry, right
    after its key @fields_after;
    compare(entries): adds ratios to one scenario's summary entries, once
    all of them are in;
    columns: Column entries for the bench table;
    counter_order: its query-migrate members in their documented order;
    run_lines(run) -> list: Markdown lines after a run's counters;
    section(Context) -> Section or None (None: not in this report)."""
    name: str
    fields: Optional[Callable] = None
    fields_after: str = ""
    compare: Optional[Callable] = None
    columns: tuple = ()
    counter_order: tuple = ()
    run_lines: Optional[Callable] = None
    section: Optional[Callable] = None
