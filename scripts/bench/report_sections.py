# SPDX-License-Identifier: GPL-2.0-or-later
"""What each capability adds to the generic report (report.py): one
reportlib.Capability per capability in CAPABILITIES, which the generic
report iterates in this order (summary fields and comparisons, bench
table columns, counter order, lines after a run's counters, sections).
Adding a capability's figures to the report is adding an entry here
(and, for a section of its own, a module like report_spill.py), not
changing report.py.  The order of CAPABILITIES is the order of the
published JSON's keys and of the Markdown sections."""

import report_headline
import report_postcopy
import report_spill
from reportlib import Capability, Column, median_of, num


# predictive-throttle: against auto-converge, QEMU's nearest feature

def vs_auto_converge(entries):
    ac = next((s for s in entries if s["config"] == "auto-converge" and
               s["ok"]), None)
    for s in entries:
        for k in ("time_s", "throttle_s"):
            s[k + "_vs_ac"] = (s[k] / ac[k]
                               if ac and s[k] is not None and
                               ac.get(k) else None)


def throttle_s_cell(s):
    if s.get("throttle_s") is None:
        return "-"
    return ("%.1f" % s["throttle_s"]) + (
        " (%.2f)" % s["throttle_s_vs_ac"]
        if s.get("throttle_s_vs_ac") is not None else "")


# write-fault-groups: write faults, against per-page write-fault tracking
# (write-fault-groups-1)

def faults(r):
    """Write faults a write-fault-groups run took, or None."""
    wf = r.get("ram", {}).get("extra", {}).get("write-fault-groups")
    return wf.get("faults") if isinstance(wf, dict) else None


def vs_per_page(entries):
    pp = next((s for s in entries if s["config"] == "write-fault-groups-1"
               and s.get("faults")), None)
    for s in entries:
        s["faults_vs_per_page"] = (
            s["faults"] / pp["faults"]
            if pp and s.get("faults") is not None else None)


def faults_cell(s):
    if s.get("faults") is None:
        return "-"
    return ("%d" % s["faults"]) + (
        " (%.3f)" % s["faults_vs_per_page"]
        if s.get("faults_vs_per_page") is not None else "")


# disk-backed-pages: what diskmap published, and whether a page moved

def diskmap_lines(r):
    dm = r.get("diskmap")
    if not dm:
        return []
    chk = r.get("diskmap_check")
    follow = r.get("diskmap_follow")
    return ["- %s/%s diskmap: map 0x%x, %d records in %d segments%s%s" % (
        r["scenario"], r["config"], dm["map"], dm["records"],
        dm["segments"],
        "; in the destination guest %d of %d pages and %d of %d map pages "
        "had moved" % (chk["moved"], chk["pages"], chk["map_moved"],
                       chk["map_pages"]) if chk else "",
        "; as a daemon, before the migration: %s" % follow
        if follow else "")]


# inflight-io-handoff: the guest's own pause (the source's STOP to the
# destination's RESUME), which the source's downtime does not measure
# once the source settles its disks after the stream

def pause_cell(s):
    if s.get("paused_ms") is None:
        return "-"
    r = s.get("paused_ms_ratio")
    return ("%.0f" % s["paused_ms"]) + (" (%.2f)" % r if r is not None
                                        else "")


CAPABILITIES = [
    Capability(
        "predictive-throttle", compare=vs_auto_converge,
        columns=(Column("throttle_s", "throttle-s (x auto-converge)",
                        "throttle", throttle_s_cell),
                 Column("time_ac", "time x auto-converge", "throttle_s",
                        lambda s: num(s.get("time_s_vs_ac"), "%.2f")))),
    Capability(
        "write-fault-groups",
        fields=lambda ok: {"faults": median_of(ok, faults)},
        fields_after="guest_ratio", compare=vs_per_page,
        columns=(Column("faults", "write faults (x per-page)", "guest",
                        faults_cell),)),
    Capability(
        "disk-backed-pages",
        counter_order=("map-status", "map-records", "map-ignored",
                       "map-modified", "pages-referenced", "bytes-saved",
                       "references-refused", "disk-bytes-read"),
        run_lines=diskmap_lines),
    Capability(
        "shared-file-spill", fields=report_spill.fields,
        fields_after="file_mb", section=report_spill.section),
    Capability(
        "shared-file-spill (postcopy)", section=report_postcopy.section),
    Capability("headline", section=report_headline.section),
    Capability(
        "inflight-io-handoff",
        counter_order=("requests-moved", "settle-time", "waiting"),
        columns=(Column("pause", "guest pause ms (x precopy)", "down",
                        pause_cell),)),
]

# A capability's own query-migrate members in their documented order
# (members not listed follow in the order QEMU gave them).
COUNTER_ORDER = {c.name: list(c.counter_order) for c in CAPABILITIES
                 if c.counter_order}
