#!/usr/bin/env python3
"""CPU time of two libraries over the benchmark's workloads, interleaved.

  python3 scripts/cpu_geomean.py --build build --reps 7 \
      /tmp/nochecks/libtidemalloc.so build/libtidemalloc.so

For every workload of bench/run.py (full mode; the real programs too,
redis aside), each repetition runs it once under A and once under B
(LD_PRELOAD), alternating which goes first, and takes the child's user +
system time from wait4(): on a shared machine CPU time is far less noisy
than wall time, and interleaving spreads the load evenly over both.
Ratio per workload: median CPU(B) / median CPU(A); for the throughput
workloads (larson, prodcons, seed002: fixed time or fixed requests) the
inverse ratio of their ops per CPU second.  Prints a table with each
library's spread ((max-min)/median) and the geomean by family and over
all.  Exit status 0 unless a run failed.
"""
import argparse
import math
import os
import re
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from run import WORKLOADS, WL_CMD, WL_FAMILY  # noqa: E402
import bench_programs  # noqa: E402

OPS = re.compile(r" ops=([0-9.]+)")


def run_once(argv, env_extra, stdin, lib, out):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["LD_PRELOAD"] = lib
    pid = os.fork()
    if pid == 0:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if stdin:
            os.dup2(os.open(stdin, os.O_RDONLY), 0)
        os.execve(argv[0], argv, env)
    _, status, ru = os.wait4(pid, 0)
    if status != 0:
        with open(out) as f:
            sys.exit("%s under %s failed (status %d): %s" % (argv[0], lib, status, f.read()[-300:]))
    t = ru.ru_utime + ru.ru_stime
    with open(out) as f:
        m = OPS.search(f.read())
    return t, (float(m.group(1)) / t if m and t > 0 else 0.0)


def spread(v):
    med = statistics.median(v)
    return (max(v) - min(v)) / med if med > 0 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated workloads")
    ap.add_argument("a")
    ap.add_argument("b")
    a = ap.parse_args()
    names = [w for w, _, _, _ in WORKLOADS if w != "redis"]
    if a.only:
        names = [w for w in names if w in a.only.split(",")]
    kind = {w: k for w, k, _, _ in WORKLOADS}
    work = tempfile.mkdtemp(prefix="cpu_geomean")
    out = os.path.join(work, "out")
    rows, ratios = [], {}
    for w in names:
        if WL_FAMILY[w] == "programs":
            if bench_programs.missing(w):
                print("%s: skipped (%s)" % (w, bench_programs.missing(w)))
                continue
            st = bench_programs.prepare(w, os.path.join(work, w), False)
            argv, env, stdin = st["argv"], st.get("env"), st.get("stdin")
        else:
            binary, extra = WL_CMD.get(w, (w, []))
            argv, env, stdin = [os.path.join(a.build, "bench", "wl_" + binary)] + extra, None, None
        cpu = {a.a: [], a.b: []}
        opc = {a.a: [], a.b: []}
        for r in range(a.reps):
            for lib in ((a.a, a.b) if r % 2 == 0 else (a.b, a.a)):
                t, o = run_once(argv, env, stdin, lib, out)
                cpu[lib].append(t)
                opc[lib].append(o)
        if kind[w] == "thr":
            ratio = statistics.median(opc[a.a]) / statistics.median(opc[a.b])
            sa, sb = spread(opc[a.a]), spread(opc[a.b])
        else:
            ratio = statistics.median(cpu[a.b]) / statistics.median(cpu[a.a])
            sa, sb = spread(cpu[a.a]), spread(cpu[a.b])
        ratios[w] = ratio
        rows.append((w, WL_FAMILY[w], statistics.median(cpu[a.a]), statistics.median(cpu[a.b]), ratio, sa, sb))
        print("%-14s %-8s A %.3f s  B %.3f s  B/A %.3f  (spreads %.0f %% / %.0f %%)" %
              (w, WL_FAMILY[w], rows[-1][2], rows[-1][3], ratio, 100 * sa, 100 * sb), flush=True)
    print()
    print("| workload | family | CPU A | CPU B | B / A | spread A | spread B |")
    print("| :--- | :--- | ---: | ---: | ---: | ---: | ---: |")
    for w, fam, ca, cb, r, sa, sb in rows:
        print("| %s | %s | %.3f s | %.3f s | %.3f | %.0f %% | %.0f %% |" % (w, fam, ca, cb, r, 100 * sa, 100 * sb))
    for fam in ("own", "suite", "programs", None):
        v = [r for w, r in ratios.items() if fam is None or WL_FAMILY[w] == fam]
        if v:
            print("| **geomean %s** (%d) | | | | **%.3f** | | |" %
                  (fam or "all", len(v), math.exp(sum(math.log(x) for x in v) / len(v))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
