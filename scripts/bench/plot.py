# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark's plots (matplotlib, imported when plotting: a report
without it still writes its JSON and Markdown)."""

from reportlib import MB


def plot(results, summary, path_bars, path_progress, title,
         time_key="time_s", time_label="total time (s)"):
    """Bytes on the wire and time (@time_key of the summary) per scenario
    and configuration (medians, min-max bars); the transfer progress of
    the first verified run of each."""
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


def plot_guest(results, path, title, configs):
    """The dirtier's throughput per log line around the switchover, first
    verified run of each postcopy configuration in @configs (in that
    order), in guest seconds since the switchover (the guest's clock
    stands still while it is paused).  False if no run has a stall."""
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
        for c in configs:
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
