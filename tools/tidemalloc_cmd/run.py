"""tidemalloc run: run a program on tidemalloc and report its heap at exit."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from . import common

# flag -> (environment variable, help)
TUNABLES = [
    ("--decay-ms", "TIDEMALLOC_DECAY_MS", "ms a free page stays resident (0 at once, -1 never)"),
    ("--background", "TIDEMALLOC_BACKGROUND_THREAD", "background release thread: 0 off, 1 on, 2 auto"),
    ("--tcache-bytes", "TIDEMALLOC_TCACHE_BYTES", "byte budget of each thread cache"),
    ("--arena-max", "MALLOC_ARENA_MAX", "most arenas"),
    ("--arena-test", "MALLOC_ARENA_TEST", "arenas before arena_max applies"),
    ("--mmap-threshold", "MALLOC_MMAP_THRESHOLD_", "requests from this size get their own mapping"),
    ("--mmap-max", "MALLOC_MMAP_MAX_", "most mapped chunks"),
    ("--trim-threshold", "MALLOC_TRIM_THRESHOLD_", "top size that triggers a trim"),
    ("--top-pad", "MALLOC_TOP_PAD_", "extra bytes per heap growth"),
    ("--perturb", "MALLOC_PERTURB_", "fill byte for allocated/freed memory"),
    ("--heapmap-ms", "TIDEMALLOC_HEAPMAP_MS", "live heap map refresh period (0 = never)"),
    ("--stats", "TIDEMALLOC_STATS", "the live statistics channel: 1 on (default), 0 off"),
]


def add_parser(sub):
    p = sub.add_parser(
        "run", help="run a program on tidemalloc, report its heap when it exits",
        description="Run PROGRAM with LD_PRELOAD of libtidemalloc.so (no rebuild) and print a "
                    "short report of its heap when it exits: RSS, live, free and released bytes, "
                    "arenas, thread caches, size classes, the allocator's system calls.",
        usage="tidemalloc run [options] -- PROGRAM [ARGS...]")
    p.add_argument("--report", metavar="FILE", help="write the report to FILE instead of stderr")
    p.add_argument("--json", action="store_true", help="the report as JSON (the library's own)")
    p.add_argument("--heapmap", metavar="MAP", help="draw the heap at exit into MAP (.svg, .png, .pdf)")
    p.add_argument("--all", action="store_true",
                   help="also report the program's child processes (each writes its own report)")
    p.add_argument("--keep", metavar="DIR", help="keep the raw reports (report.PID.json) in DIR")
    for flag, env, hlp in TUNABLES:
        p.add_argument(flag, metavar="N", type=int, help="%s (%s)" % (hlp, env))
    p.add_argument("--tunables", metavar="STR", help="GLIBC_TUNABLES string, e.g. glibc.malloc.arena_max=2")
    p.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    p.set_defaults(func=run)


def run(args):
    prog = list(args.program)
    if prog and prog[0] == "--":
        prog = prog[1:]
    if not prog:
        print("tidemalloc run: no program given (tidemalloc run [options] -- PROGRAM ARGS...)",
              file=sys.stderr)
        return 2
    try:
        lib = common.find_library()
    except common.Error as e:
        print("tidemalloc run: %s" % e, file=sys.stderr)
        return 2
    if args.heapmap:
        try:
            common.need_matplotlib()
        except common.Error as e:
            print("tidemalloc run: %s" % e, file=sys.stderr)
            return 2
    workdir = args.keep or tempfile.mkdtemp(prefix="tidemalloc-run.")
    os.makedirs(workdir, exist_ok=True)
    env = dict(os.environ)
    pre = env.get("LD_PRELOAD")
    env["LD_PRELOAD"] = lib + (":" + pre if pre else "")
    env["TIDEMALLOC_REPORT"] = os.path.join(os.path.abspath(workdir), "report.%p.json")
    for flag, var, _ in TUNABLES:
        v = getattr(args, flag[2:].replace("-", "_"))
        if v is not None:
            env[var] = str(v)
    if args.tunables:
        env["GLIBC_TUNABLES"] = args.tunables
    # The program gets the terminal's signals; we wait for it.
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            child = subprocess.Popen(prog, env=env, restore_signals=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        except OSError as e:
            print("tidemalloc run: cannot run %s: %s" % (prog[0], e), file=sys.stderr)
            return 127
        rc = child.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
    status = "exit status %d" % rc if rc >= 0 else "killed by signal %d" % -rc
    path = os.path.join(workdir, "report.%d.json" % child.pid)
    out_rc = rc if rc >= 0 else 128 - rc
    try:
        if not os.path.exists(path):
            print("tidemalloc run: %s (%s) wrote no report: it was killed, or left with _exit, "
                  "or did not load libtidemalloc.so (a static or setuid program?)"
                  % (prog[0], status), file=sys.stderr)
            return out_rc
        d = common.load_report(path)
        others = common.other_reports(workdir, child.pid)
        if args.json:
            if args.all:
                text = json.dumps({"top": d, "children": [common.load_report(
                    os.path.join(workdir, "report.%d.json" % p)) for p in others]})
            else:
                text = json.dumps(d)
        else:
            title = "tidemalloc: %s (pid %d, %s)" % (" ".join(prog).replace("\n", " ")[:60], child.pid, status)
            text = common.format_summary(d, d.get("heapmap"), title)
            if others:
                if args.all:
                    for p in others:
                        c = common.load_report(os.path.join(workdir, "report.%d.json" % p))
                        text += "\n\n" + common.format_summary(c, c.get("heapmap"),
                                                               "child process %d" % p)
                else:
                    text += ("\n  children       %d child process(es) wrote their own reports "
                             "(--all shows them)" % len(others))
        if args.report:
            with open(args.report, "w") as f:
                f.write(text + "\n")
        else:
            print(text, file=sys.stderr)
        if args.heapmap:
            from . import heapmap
            heapmap.render(d["heapmap"], args.heapmap, "%s (pid %d) at exit" % (prog[0], child.pid))
    except common.Error as e:
        print("tidemalloc run: %s" % e, file=sys.stderr)
        return out_rc or 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return out_rc
