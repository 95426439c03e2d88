"""tidemalloc stats: the heap figures of a running process."""
import json
import sys
import time

from . import common


def add_parser(sub):
    p = sub.add_parser(
        "stats", help="the heap figures of a running process that uses tidemalloc",
        description="Read the statistics channel of process PID (a read-only shared mapping the "
                    "library keeps current; nothing is stopped or signalled) and print the same "
                    "figures as `tidemalloc run`.  Only the same user or root can read it.")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("--watch", type=float, metavar="SECS",
                   help="print again every SECS seconds until the process exits (or Ctrl-C)")
    p.add_argument("--json", action="store_true",
                   help="the library's JSON (with --watch: one object per line)")
    p.set_defaults(func=stats)


def one(pid, as_json):
    d, hmap = common.read_process(pid, want_map=True)
    if as_json:
        if hmap is not None:
            d["heapmap_used_classes"] = hmap.get("used_classes")
        return json.dumps(d)
    age = max(0.0, (time.time() * 1000 - d["_refreshed_ms"]) / 1000)
    title = "tidemalloc: pid %d (figures from %.1f s ago, refresh #%d)" % (pid, age, d["_refreshes"])
    return common.format_summary(d, hmap, title)


def stats(args):
    try:
        print(one(args.pid, args.json), flush=True)
        while args.watch:
            time.sleep(args.watch)
            try:
                text = one(args.pid, args.json)
            except common.Error:
                if not common.os.path.isdir("/proc/%d" % args.pid):
                    print("tidemalloc stats: process %d has exited" % args.pid, file=sys.stderr)
                    return 0
                raise
            print(text if args.json else "\n" + text, flush=True)
    except common.Error as e:
        print("tidemalloc stats: %s" % e, file=sys.stderr)
        return 1
    return 0
