#!/usr/bin/env python3
"""tidemalloc benchmark runner (python3 standard library only).

Runs every workload (BUILD/bench/wl_*) under every allocator, interleaved
(repetition 1: every workload under every allocator, then repetition 2, ...),
checks each run (exit status, the workload's own data checks, and that the
library serving malloc - the RESULT line's alloc_lib - is the one we meant to
preload), and writes OUT/results.md, OUT/results.csv and OUT/summary.json;
bench/plot.py (matplotlib, run with /usr/bin/python3 when it is there) draws
OUT/results.png and OUT/results.svg from the summary.

Three families: `own` (tidemalloc's workloads), `suite` (workloads modelled
on public allocator benchmarks: larson, xmalloc-test, rptest, glibc's
bench-malloc-simple/-thread, alloc-test, cache-scratch/-thrash, mstress,
cfrac-, espresso- and mleak-like churn) and `programs` (real programs under
LD_PRELOAD, bench_programs.py).

  python3 bench/run.py --build build --out bench/results          # full
  python3 bench/run.py --build build --quick --out build/bench-quick
  python3 bench/run.py --build build --quick --reps 1 --syscalls \
      --allocators glibc,tidemalloc,tidemalloc-norelease --out /tmp/bq

tidemalloc-norelease (only when asked for) is BUILD/libtidemalloc.so with
TIDEMALLOC_DECAY_MS=-1; --syscalls adds one strace run per workload and
tidemalloc variant (OUT/syscalls.csv), outside the timed repetitions.
jemalloc-bg, tcmalloc-release and mimalloc-purge are the peers' own
libraries with the settings that make them return memory soonest
(PEER_VARIANTS below); they run by default beside the peers' defaults.
glibc-huge, jemalloc-thp, mimalloc-large and tidemalloc-huge (only when
asked for; `--allocators ...,huge` names all four) run each allocator at
its transparent huge page setting (HUGE_VARIANTS below).

Exit status: 0 if every run passed its checks, 1 otherwise (after the report).
Timings never fail a run; a missing peer allocator is skipped with a notice.
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_programs  # noqa: E402  (bench/bench_programs.py)

# name, figure of merit: "time" (lower is better) or "thr" (ops/s, higher is
# better), family, one-line description.  Families: "own" = tidemalloc's own
# workloads, "suite" = modelled on public allocator benchmarks, "programs" =
# real programs (bench_programs.py).
WORKLOADS = [
    ("small", "time", "own", "1 thread, 16-1024 B churn (LIFO + random order)"),
    ("pairs", "time", "own", "1 thread, malloc/free pairs + 8-block LIFO bursts, 16-1024 B (hot path)"),
    ("realloc", "time", "own", "realloc growth: string builders, vectors, up to 8 MiB"),
    ("large", "time", "own", "64 KiB-32 MiB blocks, every page touched, random free order"),
    ("prodcons", "thr", "own", "2 producers -> 2 consumers, 16-512 B, cross-thread free"),
    ("frag", "time", "own", "long-lived objects pinned among short-lived ones"),
    ("swing", "time", "own", "1 thread, 20 rounds: ~50 MiB of 16 B-16 KiB built, then all freed"),
    ("seed002", "thr", "own", "seed-002 NoSQL server: load (req/s), then drain and idle"),
    ("cxx", "time", "own", "1 thread, C++ containers (map, unordered_map, vector of unique_ptr, "
     "list of shared_ptr) built and dropped"),
    ("larson", "thr", "suite", "larson server: 2 threads, 8-1000 B, thread generations free "
     "their predecessors' blocks"),
    ("larson_sized", "thr", "suite", "larson with the allocator's sized free "
     "(free_sized/sdallocx/tc_free_sized/mi_free_size; glibc: free)"),
    ("xmalloc", "time", "suite", "xmalloc-test: 1 producer -> 1 consumer, batches of 4096, 8-1024 B"),
    ("rptest", "time", "suite", "rptest: 2 threads, 8-16000 B linear falloff, scattered slots, "
     "batches freed cross-thread"),
    ("glibc_simple", "time", "suite", "glibc bench-malloc-simple: 1 thread, 16-512 B, "
     "25-1600 blocks allocated then freed"),
    ("glibc_thread", "time", "suite", "glibc bench-malloc-thread: 2 threads, 1024-slot working "
     "sets, 4 B-32 KiB ~1/size"),
    ("alloc_test", "time", "suite", "alloc-test: 2 threads, random slots, heavy-tailed 8 B-64 KiB"),
    ("cache_scratch", "time", "suite", "cache-scratch: passive false sharing (blocks freed by "
     "another thread reused)"),
    ("cache_thrash", "time", "suite", "cache-thrash: active false sharing of 8 B blocks"),
    ("mstress", "time", "suite", "mimalloc stress: 2 fresh threads per round, blocks exchanged "
     "through a shared array"),
    ("cfrac", "time", "suite", "cfrac-like: 1 thread, immutable bignums, 16-200 B short-lived"),
    ("espresso", "time", "suite", "espresso-like: 1 thread, cube bit vectors and realloc'd covers"),
    ("mleak", "time", "suite", "mleak-like: 2 threads of churn, 1 % of blocks leaked"),
] + [(n, "time", "programs", d) for n, d, _, _ in bench_programs.PROGRAMS]
WL_KIND = {w: k for w, k, _, _ in WORKLOADS}
WL_FAMILY = {w: f for w, _, f, _ in WORKLOADS}
FAMILIES = [("own", "tidemalloc's workloads"),
            ("suite", "workloads modelled on public benchmark suites"),
            ("programs", "real programs under LD_PRELOAD")]
# workload -> (binary BUILD/bench/wl_<binary>, extra arguments), where the
# name is not the binary's
WL_CMD = {"larson_sized": ("larson", ["--sized"]),
          "cache_scratch": ("cache", ["--mode", "scratch"]),
          "cache_thrash": ("cache", ["--mode", "thrash"])}
PROBE_SO = "libbench_probe.so"

# name, soname, Debian package
PEERS = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
]
# Peers at their best memory-return settings: variant -> (peer whose library
# it preloads, extra environment of the child).  Each setting was checked
# against the library Debian 12 ships (strings / MIMALLOC_VERBOSE=1):
#  jemalloc 5.3  background_thread:true - purging by jemalloc's own threads,
#                so dirty pages decay (dirty_decay_ms, default 10 s; muzzy 0
#                = straight to MADV_DONTNEED) even when the program makes no
#                malloc/free call; without it decay only advances inside
#                allocator calls.
#  gperftools 2.10  TCMALLOC_AGGRESSIVE_DECOMMIT=true (free spans of the page
#                heap are released at once) and TCMALLOC_RELEASE_RATE=10 (the
#                highest rate of the incremental release).
#  mimalloc 2.0.9  MIMALLOC_DECOMMIT_DELAY=0 (free pages of a segment are
#                decommitted at once instead of after 25 ms, within a later
#                call) and MIMALLOC_SEGMENT_DECOMMIT_DELAY=0 (the same for
#                free segments, 500 ms by default).  2.0.x has no purge_delay
#                (2.1's name); decommit_delay is what 2.0.9 reads.
PEER_VARIANTS = {
    "jemalloc-bg": ("jemalloc", {"MALLOC_CONF": "background_thread:true"}),
    "tcmalloc-release": ("tcmalloc", {"TCMALLOC_AGGRESSIVE_DECOMMIT": "true",
                                      "TCMALLOC_RELEASE_RATE": "10"}),
    "mimalloc-purge": ("mimalloc", {"MIMALLOC_DECOMMIT_DELAY": "0",
                                    "MIMALLOC_SEGMENT_DECOMMIT_DELAY": "0"}),
}
# Every allocator at its huge page setting (--allocators ...,huge or the
# names): heaps backed by 2 MiB transparent huge pages where the system's
# THP mode is `madvise` (as on Debian), which saves page faults and TLB
# misses at the price of RSS granularity.  A huge page figure of
# tidemalloc's is compared with these, not with the peers' defaults.
# tcmalloc-minimal 2.10 has no such setting.
HUGE_VARIANTS = {
    "glibc-huge": ("glibc", {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
    "jemalloc-thp": ("jemalloc", {"MALLOC_CONF": "thp:always,metadata_thp:always"}),
    "mimalloc-large": ("mimalloc", {"MIMALLOC_LARGE_OS_PAGES": "1"}),
    "tidemalloc-huge": ("tidemalloc", {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
}
ALL_ALLOCATORS = ["glibc", "jemalloc", "jemalloc-bg", "tcmalloc", "tcmalloc-release",
                  "mimalloc", "mimalloc-purge", "tidemalloc"]
# Not run by default; select with --allocators ...,tidemalloc-norelease
# (`huge` stands for every HUGE_VARIANTS name).
OPTIONAL_ALLOCATORS = ["tidemalloc-norelease"] + list(HUGE_VARIANTS)
KNOWN_ALLOCATORS = ALL_ALLOCATORS + OPTIONAL_ALLOCATORS
# Allocators that preload BUILD/libtidemalloc.so, and the extra environment
# each one's child gets (tidemalloc-norelease: page release turned off).
TIDE_VARIANTS = ("tidemalloc", "tidemalloc-norelease", "tidemalloc-huge")
ALLOC_ENV = {"tidemalloc-norelease": {"TIDEMALLOC_DECAY_MS": "-1"}}
ALLOC_ENV.update({v: env for v, (_, env) in PEER_VARIANTS.items()})
ALLOC_ENV.update({v: env for v, (_, env) in HUGE_VARIANTS.items()})


def base_allocator(name):
    """The allocator a variant runs (glibc, jemalloc, ..., tidemalloc)."""
    if name in HUGE_VARIANTS:
        return HUGE_VARIANTS[name][0]
    if name in TIDE_VARIANTS:
        return "tidemalloc"
    return PEER_VARIANTS.get(name, (name,))[0]


# (variant with memory return on, the same allocator without it)
RELEASE_PAIRS = [("jemalloc-bg", "jemalloc"), ("tcmalloc-release", "tcmalloc"),
                 ("mimalloc-purge", "mimalloc")]
COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "jemalloc-bg": "#9ecae1",
          "tcmalloc": "#2ca02c", "tcmalloc-release": "#98df8a",
          "mimalloc": "#9467bd", "mimalloc-purge": "#c5b0d5", "tidemalloc": "#d62728",
          "tidemalloc-norelease": "#ff7f0e", "glibc-huge": "#bcbcbc", "jemalloc-thp": "#08519c",
          "mimalloc-large": "#54278f", "tidemalloc-huge": "#67000d"}
# --syscalls: the memory-management system calls counted under strace.
# exit is traced too (strace -C: the summary plus the calls themselves), only
# to recognise glibc's own madvise(MADV_DONTNEED) of a thread's stack, which
# a thread issues right before its exit system call: that one is not the
# allocator's.
SYSCALLS = ["madvise", "munmap", "mmap", "brk", "mremap"]
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64",
            "/lib64", "/usr/local/lib", "/usr/lib", "/lib"]
ENV_OF_INTEREST = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_", "MALLOC_CONF", "TCMALLOC_",
                   "MIMALLOC_", "TIDEMALLOC_", "BENCH_QUICK")


# ---------------------------------------------------------------- helpers --
def ldconfig_paths():
    """soname -> path, from `ldconfig -p` (x86-64 / native entries first)."""
    out = {}
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            text = subprocess.run([exe, "-p"], capture_output=True, text=True,
                                  timeout=20).stdout
            break
        except (OSError, subprocess.SubprocessError):
            text = ""
    for line in text.splitlines():
        line = line.strip()
        if "=>" not in line:
            continue
        left, path = line.rsplit("=>", 1)
        soname = left.split()[0]
        out.setdefault(soname, path.strip())
    return out


def find_lib(soname, cache):
    if soname in cache and os.path.exists(cache[soname]):
        return cache[soname]
    for d in LIB_DIRS:
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p
    return None


def same_object(a, b):
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def parse_result(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            kv = {}
            for tok in line.split()[1:]:
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    kv[k] = v
            return kv
    return None


def num(v):
    try:
        x = float(v)
        return x if math.isfinite(x) else None
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def read_file(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def machine_info(args, allocs, build):
    cpu = "unknown"
    for line in read_file("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "unknown"
    for line in read_file("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = "unknown"
    thp = read_file("/sys/kernel/mm/transparent_hugepage/enabled").strip() or "unknown"
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    info = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("command", " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv)),
        ("mode", "%s, %d repetition(s), interleaved" % ("quick" if args.quick else "full", args.reps)),
        ("nproc", str(ncpu)),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", platform.release()),
        ("glibc", glibc),
        ("transparent hugepages", thp),
        ("seed002 idle mode", args.idle or "quiet (the workload's default)"),
    ]
    for name, lib in allocs:
        desc = lib or "(no preload)"
        if ALLOC_ENV.get(name):
            desc += " with " + " ".join("%s=%s" % kv for kv in sorted(ALLOC_ENV[name].items()))
        ver = None
        if base_allocator(name) == "glibc":
            ver = glibc
        else:
            base = base_allocator(name)
            pkg = {p[0]: p[2] for p in PEERS}.get(base)
            if pkg:
                try:
                    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                         capture_output=True, text=True, timeout=10).stdout.strip()
                except (OSError, subprocess.SubprocessError):
                    ver = None
                if ver:
                    ver = "%s %s" % (pkg, ver)
            elif name in TIDE_VARIANTS:
                src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                try:
                    rev = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                                         capture_output=True, text=True, timeout=10).stdout.strip()
                except (OSError, subprocess.SubprocessError):
                    rev = ""
                ver = "git %s" % rev if rev else None
        info.append(("allocator %s" % name, desc + (" (%s)" % ver if ver else "")))
    env = ["%s=%s" % (k, v) for k, v in sorted(os.environ.items())
           if k.startswith(ENV_OF_INTEREST)]
    info.append(("allocator environment", " ".join(env) if env else "none set"))
    return info


# --------------------------------------------------------------- running --
def run_one(exe, name, lib, quick, timeout, strace=None, extra_args=()):
    """Runs one workload under allocator `name` (preloading `lib`, plus the
    allocator's ALLOC_ENV) and checks it.  strace = (strace argv prefix,
    output file) runs it under strace instead; the preload and the
    allocator's variables then go to the traced program only (strace -E), not
    to strace itself."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("BENCH_QUICK", None)
    child = {}
    if lib:
        child["LD_PRELOAD"] = lib
    child.update(ALLOC_ENV.get(name, {}))
    cmd = [exe] + (["--quick"] if quick else []) + list(extra_args)
    if strace:
        prefix, out_file = strace
        sets = []
        for k, v in sorted(child.items()):
            sets += ["-E", "%s=%s" % (k, v)]
        cmd = list(prefix) + ["-o", out_file] + sets + ["--"] + cmd
    else:
        env.update(child)
    rec = {"status": "ok", "error": "", "exit_code": ""}
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        rec.update(status="timeout", error="no result after %d s" % timeout,
                   wall_s="%.3f" % (time.monotonic() - t0))
        rec["stderr"] = (e.stderr or b"")[-2000:] if isinstance(e.stderr, bytes) else (e.stderr or "")
        return rec
    except OSError as e:
        rec.update(status="error", error="cannot run %s: %s" % (exe, e), wall_s="0")
        return rec
    rec["wall_s"] = "%.3f" % (time.monotonic() - t0)
    rec["exit_code"] = str(p.returncode)
    rec["stderr"] = p.stderr.strip()
    res = parse_result(p.stdout)
    if p.returncode != 0:
        if p.returncode < 0:
            why = "killed by signal %d" % -p.returncode
        else:
            why = "exit status %d" % p.returncode
        msg = p.stderr.strip().splitlines()
        rec.update(status="fail", error=why + (": " + msg[-1] if msg else ""))
        return rec
    if res is None:
        rec.update(status="fail", error="no RESULT line on stdout")
        return rec
    rec.update(res)
    got = res.get("alloc_lib", "unknown")
    if lib:
        ok = same_object(got, lib)
    else:
        ok = os.path.basename(got).startswith("libc.so")
    if not ok:
        rec.update(status="mismatch",
                   error="malloc served by %s, expected %s" % (got, lib or "libc.so.6"))
    return rec


def run_program(st, name, lib, libc, probe, timeout, probe_file):
    """One run of a real program (bench_programs.py) under allocator `name`:
    LD_PRELOAD is the allocator (glibc: libc.so.6 itself, which puts glibc's
    malloc ahead of a malloc the program links, e.g. redis-server's jemalloc)
    followed by libbench_probe.so; every process the probe saw must have been
    served by that library."""
    preload = "%s %s" % (lib or libc, probe)
    status, error, el, extra = bench_programs.run(st, preload, ALLOC_ENV.get(name, {}),
                                                  timeout, probe_file)
    rec = {"status": status, "error": error, "exit_code": "",
           "wall_s": "" if el is None else "%.3f" % el}
    if el is not None:
        rec["time_s"] = "%.6f" % el
    rec.update({k: str(v) for k, v in extra.items()})
    procs = bench_programs.read_probe(probe_file)
    if status != "ok":
        return rec
    if not procs:
        rec.update(status="fail", error="the probe saw no process (%s empty)" % probe_file)
        return rec
    want = lib or libc
    for pid, p in sorted(procs.items()):
        got = p.get("lib", "unknown")
        if not same_object(got, want):
            rec.update(status="mismatch", error="process %s (%s): malloc served by %s, expected %s"
                       % (pid, p.get("exe", "?"), got, want))
            return rec
    rec["alloc_lib"] = want
    rec["processes"] = str(len(procs))
    ended = [p for p in procs.values() if p.get("hwm", -1) >= 0]
    if ended:
        big = max(ended, key=lambda p: p["hwm"])
        rec["peak_rss_kb"] = str(big["hwm"])
        rec["final_rss_kb"] = str(big["rss"])
    return rec


# ------------------------------------------------------------- syscalls --
def strace_prefix(notices):
    """The strace argv prefix for --syscalls, or None (with a notice) when
    strace is missing or cannot trace here.  --seccomp-bpf (strace >= 5.3)
    stops the program only at the traced calls, so futex-heavy workloads are
    not slowed down by every other system call."""
    exe = shutil.which("strace")
    if not exe:
        notices.append("--syscalls: strace not found (apt-get install strace); "
                       "system-call counts skipped.")
        return None
    base = [exe, "-f", "-C", "-e", "trace=" + ",".join(SYSCALLS + ["exit"])]
    probe = None
    for prefix in (base[:2] + ["--seccomp-bpf"] + base[2:], base):
        try:
            probe = subprocess.run(prefix + ["-o", os.devnull, "--", "true"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            notices.append("--syscalls: cannot run strace (%s); system-call counts skipped." % e)
            return None
        if probe.returncode == 0:
            return prefix
    msg = probe.stderr.strip().splitlines() if probe else []
    notices.append("--syscalls: strace cannot trace here (%s); system-call counts skipped."
                   % (msg[-1] if msg else "exit status %d" % probe.returncode))
    return None


def strace_stack_madvises(text):
    """Number of madvise calls that a thread made as its last traced call
    before its exit system call: glibc releasing the thread's stack when the
    thread ends (one per thread), not the allocator.  Reads the per-call part
    of strace -f -C output ("PID call(...) = ret", "PID <... call resumed>")."""
    last = {}
    n = 0
    for line in text.splitlines():
        if line.startswith("% time"):
            break                        # the summary table follows
        toks = line.split(None, 1)
        if not toks:
            continue
        if toks[0].isdigit() and len(toks) > 1:
            tid, rest = toks[0], toks[1]
        else:
            tid, rest = "-", line.strip()
        if rest.startswith("+++") or rest.startswith("---"):
            continue
        if rest.startswith("<... "):
            call = rest[5:].split(None, 1)[0]
        else:
            call = rest.split("(", 1)[0]
        if call == "exit":
            if last.get(tid) == "madvise":
                n += 1
            last[tid] = None
        else:
            last[tid] = call
    return n


def parse_strace_summary(text):
    """strace -c/-C table -> {syscall: (calls, errors)}.  The numeric columns
    are right-aligned under their headers, so each field is cut at the column
    ends of the header line (the errors column is blank when there were
    none).  The "total" row is left out."""
    lines = text.splitlines()
    out = {}
    hdr = None
    for i, line in enumerate(lines):
        if line.startswith("% time") and "calls" in line and "syscall" in line:
            hdr = i
            break
    if hdr is None:
        return out
    h = lines[hdr]
    c_end = h.index("calls") + len("calls")
    e_end = h.index("errors") + len("errors") if "errors" in h else c_end
    c_start = h.index("usecs/call") + len("usecs/call") if "usecs/call" in h else 0
    for line in lines[hdr + 1:]:
        if not line.strip() or line.lstrip().startswith("-"):
            continue
        name = line[e_end:].strip()
        if not name or name == "total":
            continue
        calls = line[c_start:c_end].strip()
        errs = line[c_end:e_end].strip()
        try:
            out[name] = (int(calls), int(errs) if errs else 0)
        except ValueError:
            toks = line.split()        # fall back: ... calls [errors] syscall
            try:
                out[toks[-1]] = (int(toks[3]), int(toks[4]) if len(toks) > 5 else 0)
            except (IndexError, ValueError):
                pass
    return out


def ops_basis(rec):
    """(count, unit) that the syscall counts are divided by: the RESULT line's
    ops (malloc+free+realloc calls), except for seed002, whose ops are
    requests: there its allocs= (malloc calls of the load phase)."""
    if rec.get("unit") == "requests" or rec.get("workload") == "seed002":
        n = num(rec.get("allocs"))
        if n:
            return n, "allocs"
        return num(rec.get("ops")), "requests"
    return num(rec.get("ops")), "ops"


# -------------------------------------------------------------- analysis --
def summarize(records, allocs, workloads):
    """(workload, allocator) -> dict of medians, plus speed ratios vs glibc."""
    S = {}
    for wl in workloads:
        for a in allocs:
            rs = [r for r in records if r["workload"] == wl and r["allocator"] == a
                  and r["status"] == "ok"]
            if not rs:
                continue
            d = {"n": len(rs)}
            for key in ("time_s", "ops_per_s", "peak_rss_kb", "final_rss_kb", "live_bytes",
                        "rss_over_live", "rss_load_kb", "live_load_bytes", "rss_drain_kb",
                        "rss_1s_kb", "rss_2s_kb", "rss_5s_kb", "rss_trim_kb", "ratio_drain",
                        "ratio_1s", "ratio_2s", "ratio_5s", "ratio_trim", "peak_live_bytes",
                        "idle_short_s", "idle_mid_s", "idle_long_s", "idle_allocs"):
                d[key] = median([num(r.get(key)) for r in rs])
            metric = "time_s" if WL_KIND[wl] == "time" else "ops_per_s"
            vals = [num(r.get(metric)) for r in rs]
            vals = [v for v in vals if v is not None]
            d["metric"] = median(vals)
            d["spread"] = ((max(vals) - min(vals)) / d["metric"]
                           if len(vals) > 1 and d["metric"] else None)
            modes = sorted({r.get("idle") for r in rs if r.get("idle")})
            d["idle"] = "/".join(modes) if modes else None
            S[(wl, a)] = d
    for wl in workloads:
        g = S.get((wl, "glibc"))
        for a in allocs:
            d = S.get((wl, a))
            if not d:
                continue
            d["speed"] = None
            d["mem"] = None
            if g and g["metric"] and d["metric"]:
                if WL_KIND[wl] == "time":
                    d["speed"] = g["metric"] / d["metric"]
                else:
                    d["speed"] = d["metric"] / g["metric"]
            if g and g["peak_rss_kb"] and d["peak_rss_kb"]:
                d["mem"] = d["peak_rss_kb"] / g["peak_rss_kb"]
            # time relative to glibc (lower is better): time / glibc time;
            # for throughput workloads glibc ops/s / ops/s
            d["tratio"] = 1.0 / d["speed"] if d["speed"] else None
            d["fmem"] = (d["final_rss_kb"] / g["final_rss_kb"]
                         if g and g["final_rss_kb"] and d["final_rss_kb"] else None)
    return S


def checksum_errors(records):
    """Workloads that print a checksum of their result (cfrac, espresso) must
    print the same one under every allocator: a differing one is a failure."""
    errs = []
    seen = {}
    for r in records:
        if r["status"] == "ok" and r.get("checksum"):
            seen.setdefault(r["workload"], {}).setdefault(r["checksum"], []).append(
                "%s rep %d" % (r["allocator"], r["rep"]))
    for wl, sums in sorted(seen.items()):
        if len(sums) > 1:
            errs.append("%s: results differ between runs: %s" % (wl, "; ".join(
                "%s in %s" % (c, ", ".join(v)) for c, v in sorted(sums.items()))))
    return errs


def fmt_metric(wl, v):
    if v is None:
        return "-"
    if WL_KIND[wl] == "time":
        return "%.3f s" % v
    if v >= 1e6:
        return "%.2f M/s" % (v / 1e6)
    if v >= 1e3:
        return "%.1f k/s" % (v / 1e3)
    return "%.0f /s" % v


def mib(kb):
    return "-" if kb is None else "%.1f" % (kb / 1024.0)


def fx(v, nd=2):
    return "-" if v is None else ("%.*f×" % (nd, v))


def md_table(header, rows, align=None):
    align = align or (["l"] + ["r"] * (len(header) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def norelease_section(S, allocs, workloads):
    """tidemalloc against the same build with page release turned off."""
    a, b = "tidemalloc", "tidemalloc-norelease"
    if a not in allocs or b not in allocs:
        return []
    L = ["## tidemalloc vs tidemalloc-norelease (cost of page release)", ""]
    L.append("Same `libtidemalloc.so`; `tidemalloc-norelease` runs with "
             "`TIDEMALLOC_DECAY_MS=-1` (free pages are never given back to the OS). "
             "*time ratio* = tidemalloc time / norelease time (throughput workloads: "
             "norelease ops/s / tidemalloc ops/s), so 1.03× means page release costs "
             "3 % of the time; below 1× it is noise or release made it faster. "
             "Only the decay-driven release is off: trimming the top of a heap (brk / "
             "shrinking a thread heap, governed by M_TRIM_THRESHOLD as in glibc) still "
             "happens in both. "
             "*spread* is (max-min)/median over the repetitions: a ratio within the "
             "spread is not a measured difference.")
    L.append("")
    rows = []
    ratios = []
    for wl in workloads:
        da, db = S.get((wl, a)), S.get((wl, b))
        if not da or not db or not da["metric"] or not db["metric"]:
            rows.append([wl, "-", "-", "-", "-", "-", "-", "-"])
            continue
        if WL_KIND[wl] == "time":
            r = da["metric"] / db["metric"]
        else:
            r = db["metric"] / da["metric"]
        ratios.append(r)
        sp = [x for x in (da.get("spread"), db.get("spread")) if x is not None]
        rows.append([wl, fmt_metric(wl, da["metric"]), fmt_metric(wl, db["metric"]),
                     "**%.3f×**" % r, "yes" if r <= 1.03 else "**no**",
                     "%.1f %%" % (100 * max(sp)) if sp else "- (1 run)",
                     "%s / %s" % (mib(da["peak_rss_kb"]), mib(db["peak_rss_kb"])),
                     "%s / %s" % (mib(da["final_rss_kb"]), mib(db["final_rss_kb"]))])
    g = geomean(ratios)
    rows.append(["**geomean**", "", "", "**%s**" % ("-" if g is None else "%.3f×" % g),
                 "-" if g is None else ("yes" if g <= 1.03 else "**no**"), "", "", ""])
    L.append(md_table(["workload", "tidemalloc", "norelease", "time ratio (tide / norelease)",
                       "within 3 %", "spread", "peak RSS MiB (tide / norel.)",
                       "final RSS MiB (tide / norel.)"], rows))
    L.append("")
    return L


def variants_section(S, allocs, workloads):
    """Each peer at its memory-return setting against its default: what the
    setting costs in speed, and what it gives in memory."""
    pairs = [(v, b) for v, b in RELEASE_PAIRS if v in allocs and b in allocs]
    if not pairs:
        return []
    L = ["## Peers at their memory-return settings vs their defaults", ""]
    L.append("Same library, extra environment: %s. *speed* = variant throughput / default "
             "throughput (time workloads: default time / variant time), so 0.90× means the "
             "setting costs 10 %% of the speed; *spread* is the larger (max-min)/median of the "
             "two: a ratio within it is not a measured difference. *peak* = variant VmHWM / "
             "default VmHWM."
             % "; ".join("`%s` = %s + %s" % (v, b, " ".join(
                 "%s=%s" % kv for kv in sorted(ALLOC_ENV[v].items()))) for v, b in pairs))
    L.append("")
    rows = []
    gms = {v: [] for v, _ in pairs}
    for wl in workloads:
        row = [wl]
        for v, b in pairs:
            dv, db = S.get((wl, v)), S.get((wl, b))
            if not dv or not db or not dv["metric"] or not db["metric"]:
                row.append("-")
                continue
            r = (db["metric"] / dv["metric"] if WL_KIND[wl] == "time"
                 else dv["metric"] / db["metric"])
            gms[v].append(r)
            sp = [x for x in (dv.get("spread"), db.get("spread")) if x is not None]
            pk = (dv["peak_rss_kb"] / db["peak_rss_kb"]
                  if dv["peak_rss_kb"] and db["peak_rss_kb"] else None)
            row.append("%.2f× (%s); peak %s" % (r, "%.0f %%" % (100 * max(sp)) if sp else "1 run",
                                              fx(pk)))
        rows.append(row)
    rows.append(["**geomean speed**"] + ["**%s**" % fx(geomean(gms[v])) for v, _ in pairs])
    L.append(md_table(["workload"] + ["%s vs %s: speed (spread); peak" % (v, b) for v, b in pairs],
                      rows))
    L.append("")
    return L


def syscalls_section(sysrecs):
    """--syscalls: memory-management system calls per workload under strace."""
    if not sysrecs:
        return []
    L = ["## System calls under strace (--syscalls)", ""]
    L.append("One extra run of each workload under `strace -f -C -e trace=%s,exit` "
             "(not counted in the timings above). *per 1M ops* divides by that run's own "
             "RESULT `ops` (malloc + free + realloc calls); for `seed002`, whose ops are "
             "requests, by its `allocs` (malloc calls of the load phase) while the counts "
             "cover the whole run (load, drain, idle, malloc_trim). *thread exit*: madvise "
             "calls a thread made right before its exit system call - glibc dropping the "
             "thread's stack, one per finished thread, not the allocator; *allocator* "
             "excludes them. Counts include the loader's and libc's start-up mmaps. larson "
             "runs for a fixed time, so its ops differ from run to run." % ",".join(SYSCALLS))
    L.append("")
    rows = []
    ncol = 7 + len(SYSCALLS)
    for r in sysrecs:
        if r["status"] != "ok":
            rows.append([r["workload"], r["allocator"], "%s: %s" % (r["status"], r["error"])]
                        + [""] * (ncol - 3))
            continue
        n, unit = r["basis"], r["basis_unit"]
        cells = []
        for sc in SYSCALLS:
            c = r["calls"].get(sc, (0, 0))
            cells.append("%d%s" % (c[0], " (%d err)" % c[1] if c[1] else ""))
        mad = r["calls"].get("madvise", (0, 0))[0]
        st = r.get("stack_madvise", 0)
        per = "-" if not n else ("%.1f" % (mad / n * 1e6))
        per_own = "-" if not n else ("%.1f" % ((mad - st) / n * 1e6))
        rows.append([r["workload"], r["allocator"],
                     "-" if not n else "%d %s" % (n, unit),
                     cells[0], per, str(st), "**%s**" % per_own] + cells[1:] +
                    [str(sum(r["calls"].get(sc, (0, 0))[0] for sc in SYSCALLS))])
    L.append(md_table(["workload", "allocator", "ops counted", "madvise", "madvise per 1M ops",
                       "of which at thread exit", "allocator madvise per 1M ops"]
                      + SYSCALLS[1:] + ["total"],
                      rows, ["l", "l"] + ["r"] * (ncol - 2)))
    L.append("")
    return L


def family_tables(S, allocs, workloads):
    """The headline tables: per family, the median time of each allocator
    relative to glibc's (with the spread), then peak and final RSS relative
    to glibc; a geomean row per family and one over all workloads."""
    L = ["## Time relative to glibc (lower is better), by family", ""]
    L.append("Each cell: median over the repetitions of the allocator's time divided by "
             "glibc's median time (throughput workloads: glibc ops/s / ops/s), and in "
             "brackets the spread of that allocator's runs, (max-min)/median: a difference "
             "smaller than the spreads is not a measured difference. <1 = faster than glibc. "
             "The glibc column gives glibc's own median (time, or ops/s).")
    L.append("")
    present = [(f, d) for f, d in FAMILIES if any(WL_FAMILY[w] == f for w in workloads)]
    overall = {a: [] for a in allocs}
    for fam, fdesc in present:
        wls = [w for w in workloads if WL_FAMILY[w] == fam]
        rows = []
        for wl in wls:
            row = [wl]
            for a in allocs:
                d = S.get((wl, a))
                if not d:
                    row.append("-")
                elif a == "glibc":
                    row.append("%s%s" % (fmt_metric(wl, d["metric"]), spread_s(d)))
                else:
                    row.append("%s%s" % (fx(d.get("tratio")), spread_s(d)))
            rows.append(row)
        gm = ["**geomean %s**" % fam]
        for a in allocs:
            vals = [S[(wl, a)].get("tratio") for wl in wls if (wl, a) in S]
            overall[a] += vals
            gm.append("**%s**" % fx(geomean(vals)))
        rows.append(gm)
        L.append("### %s (%s)" % (fam, fdesc))
        L.append("")
        L.append(md_table(["workload"] + allocs, rows))
        L.append("")
    if len(present) > 1:
        L.append(md_table(["all families"] + allocs,
                          [["**geomean, all %d workloads**" % len(workloads)]
                           + ["**%s**" % fx(geomean(overall[a])) for a in allocs]]))
        L.append("")
    for key, title, what in (("mem", "Peak RSS", "VmHWM (real programs: the largest VmHWM "
                              "among the program's processes)"),
                             ("fmem", "Final RSS", "VmRSS when the workload prints its result "
                              "(real programs: at the exit of the process with the largest "
                              "peak)")):
        L.append("## %s relative to glibc (lower is better)" % title)
        L.append("")
        L.append("%s of the allocator / the same under glibc, medians; the glibc column "
                 "gives glibc's MiB." % what)
        L.append("")
        rows = []
        allv = {a: [] for a in allocs}
        for fam, _ in present:
            wls = [w for w in workloads if WL_FAMILY[w] == fam]
            for wl in wls:
                row = [wl]
                for a in allocs:
                    d = S.get((wl, a))
                    if not d:
                        row.append("-")
                    elif a == "glibc":
                        row.append(mib(d["peak_rss_kb" if key == "mem" else "final_rss_kb"]))
                    else:
                        row.append(fx(d.get(key)))
                rows.append(row)
            gm = ["**geomean %s**" % fam]
            for a in allocs:
                vals = [S[(wl, a)].get(key) for wl in wls if (wl, a) in S]
                allv[a] += vals
                gm.append("**%s**" % fx(geomean(vals)))
            rows.append(gm)
        if len(present) > 1:
            rows.append(["**geomean, all**"] + ["**%s**" % fx(geomean(allv[a])) for a in allocs])
        L.append(md_table(["workload"] + allocs, rows))
        L.append("")
    return L


def spread_s(d):
    sp = d.get("spread")
    return "" if sp is None else " (%.0f %%)" % (100 * sp)


def build_markdown(S, records, allocs, workloads, info, errors, notices, sysrecs=None):
    L = ["# tidemalloc benchmark results", ""]
    for k, v in info:
        L.append("- **%s**: %s" % (k, v.replace("|", "\\|")))
    L.append("")
    for n in notices:
        L.append("> %s" % n)
    if notices:
        L.append("")

    # 1. by family: time, peak RSS and final RSS relative to glibc
    L += family_tables(S, allocs, workloads)
    if "frag" in workloads:
        row = ["frag: RSS / live bytes at the end"]
        for a in allocs:
            d = S.get(("frag", a))
            row.append("-" if not d else fx(d.get("rss_over_live")))
        L.append(md_table(["fragmentation"] + allocs, [row]))
        L.append("")

    L += norelease_section(S, allocs, workloads)
    L += variants_section(S, allocs, workloads)
    L += syscalls_section(sysrecs)

    # 3. seed002
    if "seed002" in workloads and any(("seed002", a) in S for a in allocs):
        g = next((S[("seed002", a)] for a in allocs if ("seed002", a) in S), {})
        times = [g.get("idle_short_s"), g.get("idle_mid_s"), g.get("idle_long_s")]
        labs = ["%g s" % t if t is not None else "?" for t in times]
        modes = sorted({S[("seed002", a)].get("idle") or "?" for a in allocs
                        if ("seed002", a) in S})
        L.append("## seed002: does freed memory go back to the OS?")
        L.append("")
        L.append("After the load phase the server frees all but ~5 %% of its blocks (survivors "
                 "spread over the whole address range), then idles: idle mode **%s** "
                 "(quiet: no thread calls the allocator at all; cache: each worker does ~10 "
                 "small malloc/free pairs per second, thread-cache hits; tick: a 256 B and a "
                 "64 KiB malloc/free every 10 ms). RSS is VmRSS in MiB, in brackets divided "
                 "by *live*, the bytes the program still has allocated; idle times are counted "
                 "from the last free of the drain (%s, %s, %s). *load* is the load phase: "
                 "its time and requests/s (in brackets: relative to glibc), so a setting that "
                 "returns memory sooner shows what it costs. malloc_trim(0) (after the idle "
                 "time) only where the allocator exports it."
                 % ("/".join(modes), labs[0], labs[1], labs[2]))
        L.append("")

        def rl(kb, live):
            if kb is None:
                return "-"
            return "%s (%s)" % (mib(kb), fx(kb * 1024.0 / live, 1) if live else "-")
        rows = []
        for a in allocs:
            d = S.get(("seed002", a))
            if not d:
                continue
            live = d["live_bytes"]
            trim = rl(d["rss_trim_kb"], live) if d["rss_trim_kb"] is not None else "n/a"
            rows.append([a, "-" if d["time_s"] is None else "%.2f s" % d["time_s"],
                         "%s (%s)" % (fmt_metric("seed002", d["metric"]), fx(d.get("speed"))),
                         mib(d["peak_rss_kb"]),
                         mib(d["live_load_bytes"] / 1024.0) if d["live_load_bytes"] else "-",
                         mib(live / 1024.0) if live else "-",
                         rl(d["rss_drain_kb"], live), rl(d["rss_1s_kb"], live),
                         rl(d["rss_2s_kb"], live), "**%s**" % rl(d["rss_5s_kb"], live), trim])
        L.append(md_table(["allocator", "load time", "load req/s", "peak RSS",
                           "live after load", "live after drain", "RSS after drain",
                           "RSS after %s idle" % labs[0], "RSS after %s idle" % labs[1],
                           "RSS after %s idle" % labs[2], "RSS after malloc_trim(0)"], rows))
        L.append("")

    # 4. details
    L.append("## All medians")
    L.append("")
    rows = []
    for wl in workloads:
        for a in allocs:
            d = S.get((wl, a))
            if not d:
                continue
            rows.append([wl, a, d["n"], fmt_metric(wl, d["metric"]),
                         "-" if d.get("spread") is None else "%.1f %%" % (100 * d["spread"]),
                         fx(d.get("speed")), mib(d["peak_rss_kb"]), mib(d["final_rss_kb"])])
    L.append(md_table(["workload", "allocator", "runs", "median", "spread (max-min)/median",
                       "speed vs glibc (higher = faster)", "peak RSS MiB", "final RSS MiB"],
                      rows, ["l", "l", "r", "r", "r", "r", "r", "r"]))
    L.append("")
    L.append("Workloads:")
    L.append("")
    for w, k, fam, desc in WORKLOADS:
        if w in workloads:
            L.append("- `%s` (%s, %s): %s" % (w, fam, "time" if k == "time" else "throughput",
                                             desc))
    L.append("")
    if errors:
        L.append("## FAILURES")
        L.append("")
        for e in errors:
            L.append("- %s" % e)
        L.append("")
    else:
        L.append("All %d runs passed their checks (data verification, exit status, "
                 "allocator identity)." % len(records))
        L.append("")
    return "\n".join(L)


# ------------------------------------------------------------------ plot --
def write_summary(path, S, allocs, workloads, title):
    """OUT/summary.json: what bench/plot.py draws (medians and ratios)."""
    rows = []
    for wl in workloads:
        for a in allocs:
            d = S.get((wl, a))
            if not d:
                continue
            row = {"workload": wl, "family": WL_FAMILY[wl], "allocator": a}
            for k in ("tratio", "mem", "fmem", "spread", "metric", "peak_rss_kb", "final_rss_kb",
                      "live_bytes", "live_load_bytes", "rss_load_kb", "rss_drain_kb", "rss_1s_kb",
                      "rss_2s_kb", "rss_5s_kb", "rss_trim_kb", "idle_short_s", "idle_mid_s",
                      "idle_long_s"):
                if d.get(k) is not None:
                    row[k] = d[k]
            rows.append(row)
    with open(path, "w") as f:
        json.dump({"title": title, "allocators": allocs, "workloads": workloads,
                   "families": [f for f, _ in FAMILIES], "colors": COLORS, "rows": rows},
                  f, indent=1)


def run_plot(summary, out_dir, notices):
    """bench/plot.py with /usr/bin/python3 (Debian's, where python3-matplotlib
    lives) when present, else the python3 on PATH.  A missing matplotlib is a
    notice, never a failure."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.py")
    py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else shutil.which("python3")
    if not py:
        notices.append("plot: no python3 to run bench/plot.py")
        return []
    try:
        p = subprocess.run([py, script, summary, os.path.join(out_dir, "results")],
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        notices.append("plot: cannot run %s %s: %s" % (py, script, e))
        return []
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["exit status %d" % p.returncode])[-1]
        notices.append("plot: %s %s failed (%s); apt-get install python3-matplotlib"
                       % (py, script, msg))
        return []
    return [os.path.basename(x) for x in p.stdout.split()]


# ------------------------------------------------------------------ main --
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="CMake build directory (default: build)")
    ap.add_argument("--out", default=None, help="output directory (default: BUILD/bench-results)")
    ap.add_argument("--quick", action="store_true", help="scaled-down workloads")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--only", default="", help="comma-separated workloads, e.g. small,seed002")
    ap.add_argument("--allocators", default=",".join(ALL_ALLOCATORS),
                    help="comma-separated subset of " + ",".join(KNOWN_ALLOCATORS)
                    + " (default: " + ",".join(ALL_ALLOCATORS) + "; tidemalloc-norelease"
                    " = libtidemalloc.so with TIDEMALLOC_DECAY_MS=-1, page release off; "
                    + "; ".join("%s = %s with %s" % (v, b, " ".join(
                        "%s=%s" % kv for kv in sorted(env.items())))
                        for v, (b, env) in PEER_VARIANTS.items()) + ")")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="also run NAME, preloading the library PATH (e.g. another build of "
                         "tidemalloc: --lib tidemalloc-nochecks=/tmp/off/libtidemalloc.so); "
                         "repeatable")
    ap.add_argument("--idle", choices=("quiet", "cache", "tick"), default=None,
                    help="seed002's idle phase (default: the workload's own, quiet)")
    ap.add_argument("--syscalls", action="store_true",
                    help="after the timed runs, run every workload once more under strace "
                         "(tidemalloc variants only) and count madvise/munmap/mmap/brk/mremap "
                         "-> results.md and syscalls.csv")
    ap.add_argument("--no-programs", action="store_true",
                    help="leave out the real programs (python, gcc, sqlite, perl, jq, redis, git)")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds per run (default 120 quick, 900 full)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    out_dir = os.path.abspath(args.out or os.path.join(build, "bench-results"))
    timeout = args.timeout or (120 if args.quick else 900)
    if args.reps < 1:
        ap.error("--reps must be >= 1")

    names = [w for w, _, _, _ in WORKLOADS]
    workloads = [w.strip() for w in args.only.split(",") if w.strip()] or names
    for w in workloads:
        if w not in names:
            ap.error("unknown workload %r (known: %s)" % (w, ",".join(names)))
    wanted = [a.strip() for a in args.allocators.split(",") if a.strip()]
    if "huge" in wanted:
        wanted = [a for a in wanted if a != "huge"] + list(HUGE_VARIANTS)
    extra_libs = []
    for spec in args.lib:
        name, _, path = spec.partition("=")
        if not name or not path or name in KNOWN_ALLOCATORS or not os.path.exists(path):
            ap.error("--lib %r: want NAME=PATH, a new name and an existing library" % spec)
        extra_libs.append((name, os.path.abspath(path)))
        COLORS.setdefault(name, "#%06x" % (0x17becf + 0x1a2b3c * len(extra_libs) & 0xffffff))
    for a in wanted:
        if a not in KNOWN_ALLOCATORS:
            ap.error("unknown allocator %r (known: %s)" % (a, ",".join(KNOWN_ALLOCATORS)))

    notices = []
    cache = ldconfig_paths()
    allocs = []  # (name, lib path or None)
    missing_pkgs = []
    for a in KNOWN_ALLOCATORS:
        if a not in wanted:
            continue
        if base_allocator(a) == "glibc":
            allocs.append((a, None))
        elif a in TIDE_VARIANTS:
            lib = os.path.join(build, "libtidemalloc.so")
            if os.path.exists(lib):
                allocs.append((a, lib))
            else:
                notices.append("%s: %s not found - build the library first "
                               "(cmake --build %s); skipped." % (a, lib, args.build))
        else:
            base = base_allocator(a)
            soname, pkg = {p[0]: (p[1], p[2]) for p in PEERS}[base]
            lib = find_lib(soname, cache)
            if lib:
                allocs.append((a, lib))
            else:
                notices.append("%s: %s not found; skipped." % (a, soname))
                if pkg not in missing_pkgs:
                    missing_pkgs.append(pkg)
    allocs.extend(extra_libs)
    strace = None
    if args.syscalls:
        strace = strace_prefix(notices)
        if strace and not any(a in TIDE_VARIANTS for a, _ in allocs):
            notices.append("--syscalls: no tidemalloc variant selected; nothing to trace.")
            strace = None
    if missing_pkgs:
        notices.append("to install the missing peer allocators (Debian/Ubuntu): "
                       "apt-get install %s" % " ".join(p for _, _, p in PEERS))
    for n in notices:
        print("NOTE: " + n, file=sys.stderr)
    if not allocs:
        print("error: no allocator to run", file=sys.stderr)
        return 1

    errors = []
    exes = {}
    wl_args = {w: [] for w in workloads}
    programs = {}
    probe = os.path.join(build, "bench", PROBE_SO)
    libc = find_lib("libc.so.6", cache) or "libc.so.6"
    if args.no_programs:
        workloads = [w for w in workloads if WL_FAMILY[w] != "programs"]
    for w in list(workloads):
        if WL_FAMILY[w] == "programs":
            why = bench_programs.missing(w)
            if why:
                notices.append("program %s skipped: not installed (%s)" % (w, why))
                workloads.remove(w)
            elif not os.path.exists(probe):
                errors.append("%s missing (build the project first)" % probe)
            continue
        binary, extra = WL_CMD.get(w, (w, []))
        exe = os.path.join(build, "bench", "wl_" + binary)
        if not os.access(exe, os.X_OK):
            errors.append("workload binary %s missing (build the project first)" % exe)
        exes[w] = exe
        wl_args[w] = list(extra)
    if args.idle and "seed002" in wl_args:
        wl_args["seed002"] = ["--idle", args.idle]
    if errors:
        for e in errors:
            print("error: " + e, file=sys.stderr)
        return 1

    os.makedirs(out_dir, exist_ok=True)
    prog_dir = os.path.join(out_dir, "programs")
    for w in workloads:
        if WL_FAMILY[w] == "programs":
            programs[w] = bench_programs.prepare(w, os.path.join(prog_dir, w), args.quick)
    info = machine_info(args, allocs, build)
    print("tidemalloc bench: %s mode, %d rep(s), workloads %s, allocators %s"
          % ("quick" if args.quick else "full", args.reps, ",".join(workloads),
             ",".join(a for a, _ in allocs)), flush=True)
    records = []
    t_start = time.monotonic()
    for rep in range(1, args.reps + 1):
        for w in workloads:
            for a, lib in allocs:
                if w in programs:
                    rec = run_program(programs[w], a, lib, libc, probe, timeout,
                                      os.path.join(prog_dir, w, "probe-%s.txt" % a))
                else:
                    rec = run_one(exes[w], a, lib, args.quick, timeout, extra_args=wl_args[w])
                rec.update(rep=rep, workload=w, allocator=a)
                records.append(rec)
                if rec["status"] == "ok":
                    m = num(rec.get("time_s" if WL_KIND[w] == "time" else "ops_per_s"))
                    extra = ""
                    if w == "seed002":
                        extra = "  RSS idle (%s) %s/%s/%s MiB = %s/%s/%s× live" % (
                            rec.get("idle", "?"), mib(num(rec.get("rss_1s_kb"))),
                            mib(num(rec.get("rss_2s_kb"))), mib(num(rec.get("rss_5s_kb"))),
                            rec.get("ratio_1s", "?"), rec.get("ratio_2s", "?"),
                            rec.get("ratio_5s", "?"))
                    elif w == "frag":
                        extra = "  RSS/live %s×" % rec.get("rss_over_live", "?")
                    if w in ("larson_sized",):
                        extra = "  sized free: %s" % rec.get("sized_free", "?")
                    line = "%-11s peak RSS %s MiB%s" % (fmt_metric(w, m),
                                                         mib(num(rec.get("peak_rss_kb"))), extra)
                else:
                    line = "%s: %s" % (rec["status"].upper(), rec["error"])
                    errors.append("rep %d, %s under %s: %s: %s"
                                  % (rep, w, a, rec["status"], rec["error"]))
                    if rec.get("stderr"):
                        print(rec["stderr"][-1500:], file=sys.stderr)
                print("[rep %d/%d] %-13s %-20s %s" % (rep, args.reps, w, a, line), flush=True)
    elapsed = time.monotonic() - t_start
    info.append(("suite wall time", "%.1f s" % elapsed))
    errors += checksum_errors(records)

    # --syscalls: one more run per workload and tidemalloc variant, under
    # strace; kept apart from `records`, so they never enter the medians.
    sysrecs = []
    if strace:
        trace_dir = os.path.join(out_dir, "strace")
        os.makedirs(trace_dir, exist_ok=True)
        t_sys = time.monotonic()
        for w in workloads:
            for a, lib in allocs:
                if a not in TIDE_VARIANTS or w in programs:
                    continue
                tf = os.path.join(trace_dir, "%s-%s.txt" % (w, a))
                try:
                    os.unlink(tf)
                except OSError:
                    pass
                rec = run_one(exes[w], a, lib, args.quick, timeout * 3, strace=(strace, tf),
                              extra_args=wl_args[w])
                rec.update(workload=w, allocator=a, trace_file=tf)
                text = read_file(tf)
                rec["calls"] = parse_strace_summary(text)
                rec["stack_madvise"] = strace_stack_madvises(text)
                rec["basis"], rec["basis_unit"] = ops_basis(rec)
                if rec["status"] == "ok" and not rec["calls"] and not os.path.exists(tf):
                    rec.update(status="fail", error="strace wrote no summary to " + tf)
                sysrecs.append(rec)
                if rec["status"] == "ok":
                    mad = rec["calls"].get("madvise", (0, 0))[0]
                    per = ("%.1f per 1M %s" % (mad / rec["basis"] * 1e6, rec["basis_unit"])
                           if rec["basis"] else "-")
                    line = "madvise %d (%s; %d at thread exit)  %s" % (
                        mad, per, rec["stack_madvise"], "  ".join(
                        "%s %d" % (sc, rec["calls"].get(sc, (0, 0))[0]) for sc in SYSCALLS[1:]))
                else:
                    line = "%s: %s" % (rec["status"].upper(), rec["error"])
                    errors.append("strace run, %s under %s: %s: %s"
                                  % (w, a, rec["status"], rec["error"]))
                    if rec.get("stderr"):
                        print(rec["stderr"][-1500:], file=sys.stderr)
                print("[strace]    %-9s %-20s %s" % (w, a, line), flush=True)
        info.append(("strace runs (--syscalls)", "%.1f s, %s"
                     % (time.monotonic() - t_sys, " ".join(shlex.quote(x) for x in strace))))
        with open(os.path.join(out_dir, "syscalls.csv"), "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["workload", "allocator", "status", "error", "ops", "basis", "basis_unit",
                         "time_s_under_strace"] + SYSCALLS
                        + ["%s_errors" % sc for sc in SYSCALLS]
                        + ["madvise_per_1m", "madvise_thread_exit", "madvise_other_per_1m"])
            for r in sysrecs:
                mad = r["calls"].get("madvise", (0, 0))[0]
                ok = r["status"] == "ok" and r["basis"]
                wr.writerow([r["workload"], r["allocator"], r["status"], r["error"],
                             r.get("ops", ""),
                             "" if r["basis"] is None else "%d" % r["basis"], r["basis_unit"],
                             r.get("time_s", "")]
                            + [r["calls"].get(sc, (0, 0))[0] if r["status"] == "ok" else ""
                               for sc in SYSCALLS]
                            + [r["calls"].get(sc, (0, 0))[1] if r["status"] == "ok" else ""
                               for sc in SYSCALLS]
                            + ["%.2f" % (mad / r["basis"] * 1e6) if ok else "",
                               r["stack_madvise"] if r["status"] == "ok" else "",
                               "%.2f" % ((mad - r["stack_madvise"]) / r["basis"] * 1e6)
                               if ok else ""])

    # CSV: one row per run
    fixed = ["rep", "workload", "allocator", "status", "error", "exit_code", "wall_s", "alloc_lib",
             "time_s", "ops", "ops_per_s", "peak_rss_kb", "final_rss_kb"]
    extra_keys = sorted({k for r in records for k in r} - set(fixed) - {"name", "stderr"})
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(fixed + extra_keys)
        for r in records:
            wr.writerow([r.get(k, "") for k in fixed + extra_keys])

    names_run = [a for a, _ in allocs]
    S = summarize(records, names_run, workloads)
    title = "tidemalloc benchmarks (%s mode, median of %d, %s)" % (
        "quick" if args.quick else "full", args.reps, datetime.date.today().isoformat())
    summary = os.path.join(out_dir, "summary.json")
    write_summary(summary, S, names_run, workloads, title)
    n_before = len(notices)
    plots = run_plot(summary, out_dir, notices)
    for n in notices[n_before:]:
        print("NOTE: " + n, file=sys.stderr)
    md = build_markdown(S, records, names_run, workloads, info, errors, notices, sysrecs)
    if "results.png" in plots:
        md = md.replace("\n## ", "\n![benchmark results](results.png)\n\n## ", 1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md + "\n")

    print()
    print(md)
    print("Wrote %s/results.md, results.csv, summary.json%s%s (suite took %.1f s)"
          % (out_dir, "".join(", " + p for p in plots), ", syscalls.csv" if sysrecs else "",
             elapsed))
    if errors:
        print("\n%d run(s) FAILED their checks:" % len(errors), file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
