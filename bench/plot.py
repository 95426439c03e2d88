#!/usr/bin/python3
"""Draws the benchmark results with matplotlib (Debian: python3-matplotlib).

    /usr/bin/python3 bench/plot.py OUT/summary.json OUT/results

reads the summary that bench/run.py writes and saves OUT/results.png and
OUT/results.svg; prints the files written, one per line.  Panels: per family
(tidemalloc's workloads, public-suite workloads, real programs) the median
time relative to glibc, then the peak RSS relative to glibc, on log axes
with glibc = 1 and a geomean group per family; and, when seed002 ran, its
RSS after the load, the drain and the idle times.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

FAMILY_TITLES = {"own": "tidemalloc's workloads", "suite": "public-suite workloads",
                 "programs": "real programs (LD_PRELOAD)"}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def ratio_panel(ax, groups, allocs, val, colors, title, better_low=True):
    """Grouped bars from 1 (glibc) to each ratio on a log2 axis."""
    n = max(1, len(allocs))
    width = 0.8 / n
    allv = [v for v in val.values() if v]
    lo = min([0.5] + allv)
    hi = max([2.0] + allv)
    lo_e, hi_e = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    for ai, a in enumerate(allocs):
        xs, hs, bs = [], [], []
        for gi, g in enumerate(groups):
            v = val.get((g, a))
            if not v:
                continue
            xs.append(gi - 0.4 + width * (ai + 0.5))
            bs.append(min(v, 1.0))
            hs.append(abs(v - 1.0) or 1e-3)
        ax.bar(xs, hs, width=width * 0.92, bottom=bs, color=colors.get(a, "#000000"),
               label=a, zorder=3)
        for gi, g in enumerate(groups):      # numbers on the geomean groups
            v = val.get((g, a))
            if v and g.startswith("geomean"):
                ax.text(gi - 0.4 + width * (ai + 0.5), v * (1.04 if v >= 1 else 0.96),
                        "%.2f" % v, ha="center", va="bottom" if v >= 1 else "top",
                        fontsize=6, rotation=90, zorder=4)
    ax.set_yscale("log", base=2)
    ax.set_ylim(2.0 ** lo_e / 1.05, 2.0 ** hi_e * 1.3)
    ticks = [2.0 ** e for e in range(lo_e, hi_e + 1)]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_yticklabels(["%g×" % t if t >= 1 else "1/%g×" % (1 / t) for t in ticks])
    ax.axhline(1.0, color="black", linewidth=1.0, zorder=2)
    ax.grid(axis="y", color="#dddddd", zorder=0)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel("vs glibc (%s is better)" % ("lower" if better_low else "higher"), fontsize=8)


def seed_panel(ax, rows, allocs, colors):
    phases = [("rss_load_kb", "after load"), ("rss_drain_kb", "after drain"),
              ("rss_1s_kb", "idle 1"), ("rss_2s_kb", "idle 2"), ("rss_5s_kb", "idle 3"),
              ("rss_trim_kb", "malloc_trim(0)")]
    d = {r["allocator"]: r for r in rows if r["workload"] == "seed002"}
    present = [a for a in allocs if a in d]
    if present:
        d0 = d[present[0]]
        labels = {"rss_1s_kb": "%g s idle" % d0.get("idle_short_s", 1),
                  "rss_2s_kb": "%g s idle" % d0.get("idle_mid_s", 2),
                  "rss_5s_kb": "%g s idle" % d0.get("idle_long_s", 5)}
        phases = [(k, labels.get(k, lab)) for k, lab in phases]
    width = 0.8 / max(1, len(present))
    for ai, a in enumerate(present):
        xs = [pi - 0.4 + width * (ai + 0.5) for pi in range(len(phases))]
        hs = [(d[a].get(k) or 0) / 1024.0 for k, _ in phases]
        ax.bar(xs, hs, width=width * 0.92, color=colors.get(a, "#000000"), label=a, zorder=3)
    live = [d[a]["live_bytes"] / 1048576.0 for a in present if d[a].get("live_bytes")]
    if live:
        ax.axhline(sorted(live)[len(live) // 2], color="black", linestyle="--", linewidth=1,
                   label="live after the drain")
    ax.set_xticks(range(len(phases)))
    ax.set_xticklabels([lab for _, lab in phases], fontsize=8)
    ax.grid(axis="y", color="#dddddd", zorder=0)
    ax.set_ylabel("RSS, MiB", fontsize=8)
    ax.set_title("seed002: RSS after the load, the drain and idle (lower is better; "
                 "malloc_trim only where exported)", fontsize=10, loc="left")


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: plot.py SUMMARY.json OUTPUT_STEM\n")
        return 2
    with open(sys.argv[1]) as f:
        s = json.load(f)
    allocs, rows, colors = s["allocators"], s["rows"], s["colors"]
    fams = [f for f in s["families"] if any(r["family"] == f for r in rows)]
    panels = []
    for key, what, low in (("tratio", "time relative to glibc", True),
                           ("mem", "peak RSS relative to glibc", True)):
        for fam in fams:
            wls = [w for w in s["workloads"] if any(r["workload"] == w and r["family"] == fam
                                                     for r in rows)]
            val = {(r["workload"], r["allocator"]): r.get(key) for r in rows
                   if r["family"] == fam}
            for a in allocs:
                val[("geomean", a)] = geomean([val.get((w, a)) for w in wls])
            panels.append(("ratio", wls + ["geomean"], val,
                           "%s: %s" % (FAMILY_TITLES.get(fam, fam), what), low))
        if len(fams) > 1:
            val = {}
            for fam in fams:
                for a in allocs:
                    val[("geomean " + fam, a)] = geomean([r.get(key) for r in rows
                                                          if r["family"] == fam
                                                          and r["allocator"] == a])
            for a in allocs:
                val[("geomean all", a)] = geomean([r.get(key) for r in rows
                                                   if r["allocator"] == a])
            panels.append(("ratio", ["geomean " + f for f in fams] + ["geomean all"], val,
                           "geomeans: %s" % what, low))
    if any(r["workload"] == "seed002" for r in rows):
        panels.append(("seed", None, None, None, None))

    ncol_w = max(len(p[1]) for p in panels if p[1]) if panels else 1
    fig_w = max(10.0, 0.12 * ncol_w * len(allocs) + 2.5)
    fig, axes = plt.subplots(len(panels), 1, figsize=(fig_w, 3.3 * len(panels) + 0.8),
                             squeeze=False)
    for ax, (kind, groups, val, title, low) in zip(axes[:, 0], panels):
        if kind == "ratio":
            ratio_panel(ax, groups, allocs, val, colors, title, low)
        else:
            seed_panel(ax, rows, allocs, colors)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 9), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(s.get("title", "tidemalloc benchmarks"), y=1.0 - 0.35 / fig.get_figheight(),
                 fontsize=12, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.8 / fig.get_figheight()))
    written = []
    for ext in ("png", "svg"):
        path = "%s.%s" % (sys.argv[2], ext)
        fig.savefig(path, dpi=110 if ext == "png" else None)
        written.append(path)
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
