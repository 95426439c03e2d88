#!/usr/bin/env python3
"""Instruction counts of the benchmark suite under two builds of a library
(python3 standard library and valgrind only).

The cost of a compile-time option (the hardening checks, TIDE_CHECKS) is a
few per cent: below the noise of wall-clock time on a shared machine, so it
is measured in instructions.  Every workload of `make bench` runs once under
`valgrind --tool=callgrind --trace-children=yes` with each library preloaded,
in quick mode, and the total instructions of all its processes are compared.
Callgrind does not replace malloc (unlike memcheck): the preloaded library
serves every call.

  python3 bench/cost.py --build build --a /tmp/boff/libtidemalloc.so \
      --b build/libtidemalloc.so --names off,on --out build/cost

prints a table (Ir of a, Ir of b, b/a) per workload, the geomean per family
and over all, and writes OUT/cost.md and OUT/cost.json.  Threaded workloads
vary a little from run to run (valgrind serializes threads, and the
schedule changes who frees what): --reps N takes the median of N runs.
redis is left out (its figure is a client's time; the server idles in
epoll between requests).  Exit status 0 unless a run failed.
"""
import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_programs  # noqa: E402
from run import (WORKLOADS, WL_CMD, WL_FAMILY, PEERS, ALLOC_ENV, KNOWN_ALLOCATORS,  # noqa: E402
                 base_allocator, find_lib, ldconfig_paths)

COLLECTED = re.compile(r"Collected : (\d+)")


def callgrind(argv, env, cwd, stdin, tmp):
    """Total instructions of argv and all its children; None on failure."""
    vg = ["valgrind", "--tool=callgrind", "--trace-children=yes",
          "--callgrind-out-file=" + os.path.join(tmp, "cg.%p"),
          "--log-file=" + os.path.join(tmp, "vg.%p")]
    inp = open(stdin) if stdin else subprocess.DEVNULL
    try:
        p = subprocess.run(vg + argv, env=env, cwd=cwd, stdin=inp, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=3600)
    finally:
        if stdin:
            inp.close()
    if p.returncode != 0:
        return None, "exit status %d: %s" % (p.returncode, p.stderr.strip()[-300:])
    total = 0
    for f in os.listdir(tmp):
        if f.startswith("vg."):
            with open(os.path.join(tmp, f)) as fh:
                m = COLLECTED.search(fh.read())
            if m:
                total += int(m.group(1))
    return total, ""


ANNOTATED = re.compile(r"\s*([\d,]+)\s+\([^)]*\)\s+\S+?:(\S+)")


def functions(tmp):
    """Instructions per function (self cost, all files and processes)."""
    per = {}
    for f in os.listdir(tmp):
        if not f.startswith("cg."):
            continue
        out = subprocess.run(["callgrind_annotate", "--threshold=100", os.path.join(tmp, f)],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = ANNOTATED.match(line)
            if m:
                per[m.group(2)] = per.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return per


def resolve(spec, build):
    """A library argument: any allocator or variant by the name `make
    bench` gives it - glibc (no preload), a peer (jemalloc, ...), a peer
    variant (tcmalloc-release, mimalloc-large, ...: its Debian library and
    that variant's environment), tidemalloc and its variants (BUILD's
    library; tidemalloc-huge, tidemalloc-norelease), glibc-huge - else a
    path."""
    env = dict(ALLOC_ENV.get(spec, {}))
    base = base_allocator(spec) if spec in KNOWN_ALLOCATORS else spec
    if base == "glibc":
        return "", env
    if base == "tidemalloc":
        return os.path.abspath(os.path.join(build, "libtidemalloc.so")), env
    soname = {name: so for name, so, _ in PEERS}.get(base)
    if soname is None:
        return os.path.abspath(spec), {}
    lib = find_lib(soname, ldconfig_paths())
    if lib is None:
        sys.exit("%s: %s not found (Debian package %s)"
                 % (spec, soname, {n: p for n, _, p in PEERS}[base]))
    return lib, dict(env)


def described(lib, env):
    return (lib or "(no preload)") + "".join(" %s=%s" % kv for kv in sorted(env.items()))


def one(job):
    w, _, lib, build, st, extra_env, want_functions = job
    tmp = tempfile.mkdtemp(prefix="tidecost.")
    try:
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env.update(extra_env)
        if st is None:
            binary, extra = WL_CMD.get(w, (w, []))
            argv = [os.path.join(build, "bench", "wl_" + binary), "--quick"] + extra
            if lib:
                env["LD_PRELOAD"] = lib
            n, err = callgrind(argv, env, tmp, None, tmp)
        else:
            env.update(st.get("env", {}))
            if lib:
                env["LD_PRELOAD"] = lib
            n, err = callgrind(st["argv"], env, st["dir"], st.get("stdin"), tmp)
        return n, err, (functions(tmp) if want_functions and n is not None else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--a", required=True, help="library a (the reference): a path, or an allocator "
                    "as make bench names it (glibc: no preload; jemalloc, mimalloc-purge, "
                    "tidemalloc-huge, ...)")
    ap.add_argument("--b", required=True, help="library b (as --a)")
    ap.add_argument("--names", default="a,b", help="names of a and b for the table")
    ap.add_argument("--out", default="build/cost")
    ap.add_argument("--b-env", action="append", default=[], metavar="VAR=VALUE",
                    help="environment of b's runs only (a and b may then be the same library: "
                         "the cost of a setting); repeatable")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--workloads", help="comma-separated subset")
    ap.add_argument("--functions", type=int, default=0, metavar="N",
                    help="also print the N functions that add most to the geomean: per "
                         "function, the sum over workloads of (b - a) / a's total "
                         "(callgrind_annotate self cost, first repetition)")
    args = ap.parse_args()
    # (absolute: the programs run in their own directories, and a relative
    # --out, the default, named their inputs relative to the wrong one)
    args.out = os.path.abspath(args.out)
    na, nb = args.names.split(",")
    names = [w for w, _, _, _ in WORKLOADS if w != "redis"]
    if args.workloads:
        names = [w for w in names if w in args.workloads.split(",")]
    os.makedirs(args.out, exist_ok=True)
    progs = {}
    for w in names:
        if WL_FAMILY[w] == "programs":
            if bench_programs.missing(w):
                print("skipped %s: %s" % (w, bench_programs.missing(w)), file=sys.stderr)
                continue
            progs[w] = bench_programs.prepare(w, os.path.join(args.out, "programs", w), True)
    names = [w for w in names if WL_FAMILY[w] != "programs" or w in progs]
    b_env = dict(kv.split("=", 1) for kv in args.b_env)
    (lib_a, env_a), (lib_b, env_b) = resolve(args.a, args.build), resolve(args.b, args.build)
    env_b.update(b_env)
    jobs = []
    for r in range(args.reps):
        for w in names:
            for side, lib, env in (("a", lib_a, env_a), ("b", lib_b, env_b)):
                jobs.append((w, side, lib, os.path.abspath(args.build), progs.get(w), env,
                             args.functions > 0 and r == 0))
    with ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(one, jobs))
    ir = {}
    failed = False
    funcs = {}
    for (w, side, lib, _, _, _, _), (n, err, per) in zip(jobs, results):
        if n is None:
            print("FAIL %s under %s: %s" % (w, lib, err), file=sys.stderr)
            failed = True
            continue
        ir.setdefault(w, {}).setdefault(side, []).append(n)
        if per is not None:
            funcs.setdefault(w, {})[side] = (n, per)
    la, lb = "a", "b"
    rows = []
    for w in names:
        if w in ir and la in ir[w] and lb in ir[w]:
            a, b = statistics.median(ir[w][la]), statistics.median(ir[w][lb])
            rows.append({"workload": w, "family": WL_FAMILY[w], na: a, nb: b, "ratio": b / a})
    lines = ["| workload | family | %s Ir | %s Ir | %s / %s |" % (na, nb, nb, na),
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %d | %d | %.3f |" % (r["workload"], r["family"], r[na], r[nb],
                                                     r["ratio"]))
    fams = {}
    for r in rows:
        fams.setdefault(r["family"], []).append(r["ratio"])
    for f, xs in fams.items():
        lines.append("| **geomean %s** (%d) | | | | **%.3f** |" % (f, len(xs), geomean(xs)))
    allg = geomean([r["ratio"] for r in rows])
    lines.append("| **geomean all** (%d) | | | | **%.3f** |" % (len(rows), allg))
    if args.functions:
        # A function's share of workload w's ratio is (b_f - a_f) / a_total;
        # summed over the workloads it approximates its share of the
        # geomean's log (times the number of workloads).
        share, fa, fb = {}, {}, {}
        for w, sides in funcs.items():
            if "a" not in sides or "b" not in sides:
                continue
            (ta, pa), (_, pb) = sides["a"], sides["b"]
            for f in set(pa) | set(pb):
                share[f] = share.get(f, 0.0) + (pb.get(f, 0) - pa.get(f, 0)) / ta
                fa[f] = fa.get(f, 0) + pa.get(f, 0)
                fb[f] = fb.get(f, 0) + pb.get(f, 0)
        nw = max(1, len(funcs))
        lines += ["", "| function | %s Ir (all workloads) | %s Ir | share of the geomean |" % (na, nb),
                  "|---|---:|---:|---:|"]
        for f in sorted(share, key=lambda k: -share[k])[:args.functions]:
            lines.append("| %s | %d | %d | %+.4f |" % (f, fa[f], fb[f], share[f] / nw))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(args.out, "cost.md"), "w") as f:
        f.write("Instructions (callgrind, quick mode, median of %d): %s = %s, %s = %s\n\n"
                % (args.reps, na, described(lib_a, env_a), nb, described(lib_b, env_b)) + text)
    with open(os.path.join(args.out, "cost.json"), "w") as f:
        json.dump({"a": args.a, "b": args.b, "lib_a": lib_a, "lib_b": lib_b, "env_a": env_a,
                   "b_env": env_b, "names": [na, nb], "reps": args.reps,
                   "rows": rows, "geomean": allg}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
