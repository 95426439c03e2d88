"""tidemalloc heapmap: draw the heap of a process, or of an at-exit report."""
import json
import os
import sys

from . import common

# state index (library's order) -> (name, label, colour)
STATES = [
    ("inuse", "pages with chunks in use", "#d62728"),
    ("free", "free, resident", "#ffbf00"),
    ("released", "released", "#d9d9d9"),
    ("top", "top (free, resident)", "#1f77b4"),
    ("mapped", "mapped chunk", "#9467bd"),
]
MIB = 1024.0 * 1024.0


def add_parser(sub):
    p = sub.add_parser(
        "heapmap", help="draw the heap: every heap and mapped chunk, pages by state",
        description="Draw every heap (brk and mmap segments of the main arena, sub-heaps of the "
                    "others) and every mapped chunk along the address space, pages coloured as in "
                    "use / free resident / released / top / mapped chunk, with totals.  SOURCE is "
                    "the PID of a running process (its map is rebuilt by the background thread at "
                    "most every TIDEMALLOC_HEAPMAP_MS, default 5 s, while it allocates) or a JSON "
                    "report from `tidemalloc run --keep DIR` / TIDEMALLOC_REPORT.")
    p.add_argument("source", metavar="PID|REPORT.json")
    p.add_argument("-o", "--output", required=True, metavar="MAP", help="output file: .svg, .png or .pdf")
    p.add_argument("--data", metavar="FILE",
                   help="also write what was drawn (bytes per colour, rectangles) as JSON")
    p.set_defaults(func=heapmap)


def layout(hmap):
    """Rows to draw: one per heap (address order), then the mapped chunks
    packed into rows.  Returns (rows, drawn) where a row is
    (label, length, {state: [(x, w), ...]}) in bytes, and drawn the bytes of
    each state drawn."""
    segs = sorted(hmap["segments"], key=lambda s: s["start"])
    heaps = [s for s in segs if s["kind"] != "mapped"]
    mapped = [s for s in segs if s["kind"] == "mapped"]
    drawn = {name: 0 for name, _, _ in STATES}
    rows = []
    for s in heaps:
        bars = {}
        for off, length, st in s["runs"]:
            bars.setdefault(st, []).append((off, length))
            drawn[STATES[st][0]] += length
        kind = {"brk": "brk segment", "sub": "sub-heap"}[s["kind"]]
        rows.append(("arena %d %s\n0x%x, %s" % (s["arena"], kind, s["start"], common.size(s["size"])),
                     s["size"], bars))
    if mapped:
        # Mapped chunks lie all over the address space: pack them side by side
        # (address order) with a small gap, into rows as long as the longest heap.
        width = max([r[1] for r in rows] + [max(s["size"] for s in mapped)])
        gap = max(width // 400, 4096)
        x, bars, n, first = 0, {}, 0, None
        for s in mapped:
            if x and x + s["size"] > width:
                rows.append(("mapped chunks\nfrom 0x%x (%d)" % (first, n), x - gap, bars))
                x, bars, n = 0, {}, 0
            if n == 0:
                first = s["start"]
            for off, length, st in s["runs"]:
                bars.setdefault(st, []).append((x + off, length))
                drawn[STATES[st][0]] += length
            x += s["size"] + gap
            n += 1
        rows.append(("mapped chunks\nfrom 0x%x (%d)" % (first, n), x - gap, bars))
    return rows, drawn


def render(hmap, output, title, data_path=None):
    mpl = common.need_matplotlib()
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    rows, drawn = layout(hmap)
    totals = hmap["totals"]
    height = max(2.5, 0.55 * len(rows) + 1.8)
    fig, ax = plt.subplots(figsize=(11, height))
    for y, (label, length, bars) in enumerate(rows):
        ax.broken_barh([(0, length / MIB)], (y - 0.4, 0.8), facecolors="none", edgecolors="#555555",
                       linewidth=0.5)
        for st, spans in sorted(bars.items()):
            ax.broken_barh([(a / MIB, w / MIB) for a, w in spans], (y - 0.4, 0.8),
                           facecolors=STATES[st][2], linewidth=0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("offset in the heap (MiB); mapped chunks side by side")
    ax.set_xlim(left=0)
    note = " (map cut at %d runs: totals complete, drawing partial)" % hmap["runs"] if hmap.get("truncated") else ""
    ax.set_title("%s%s" % (title, note), fontsize=10)
    handles = [Patch(facecolor=c, edgecolor="#555555", linewidth=0.5,
                     label="%s: %s" % (lab, common.size(totals[name])))
               for name, lab, c in STATES]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    fig.savefig(output, dpi=110)
    plt.close(fig)
    data = {"output": output, "rows": len(rows), "drawn": drawn, "totals": totals,
            "truncated": bool(hmap.get("truncated")), "matplotlib": mpl.__version__,
            "rects": sum(len(v) for r in rows for v in r[2].values())}
    if data_path:
        with open(data_path, "w") as f:
            json.dump(data, f, indent=1)
    return data


def heapmap(args):
    try:
        common.need_matplotlib()
        if args.source.isdigit():
            pid = int(args.source)
            summary, hmap = common.read_process(pid, want_map=True)
            if hmap is None:
                raise common.Error(
                    "process %d has no heap map yet: it is rebuilt by the background thread "
                    "(a process with one thread has none unless TIDEMALLOC_BACKGROUND_THREAD=1) at "
                    "most every TIDEMALLOC_HEAPMAP_MS (now %d ms) after allocator activity"
                    % (pid, summary["params"]["heapmap_ms"]))
            import time
            age = max(0.0, time.time() - hmap["_refreshed_ms"] / 1000.0)
            title = "pid %d, heap map of %.1f s ago" % (pid, age)
        else:
            d = common.load_report(args.source)
            hmap = d.get("heapmap")
            if hmap is None:
                raise common.Error("%s holds no heap map" % args.source)
            title = "pid %d at exit (%s)" % (d["pid"], os.path.basename(args.source))
        data = render(hmap, args.output, title, args.data)
    except (common.Error, OSError, ValueError) as e:
        print("tidemalloc heapmap: %s" % e, file=sys.stderr)
        return 1
    t = data["totals"]
    print("%s: %s" % (args.output, ", ".join("%s %s" % (lab, common.size(t[n])) for n, lab, _ in STATES)))
    return 0
