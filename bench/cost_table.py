#!/usr/bin/env python3
"""One table of instructions per workload from several bench/cost.py runs
that share their b side (tidemalloc) and differ in a (glibc and the peers):
each allocator relative to glibc, and tidemalloc against the best peer.

  for p in glibc jemalloc tcmalloc mimalloc; do
      python3 bench/cost.py --build build --a $p --b build/libtidemalloc.so \\
          --names $p,tidemalloc --jobs 1 --out /tmp/cost-$p
  done
  python3 bench/cost_table.py /tmp/cost-glibc /tmp/cost-jemalloc \\
      /tmp/cost-tcmalloc /tmp/cost-mimalloc > bench/results/instructions.md

The first directory must be the glibc run.  tidemalloc's count per workload
is the median over the runs (threaded workloads vary a little).
"""
import json
import math
import os
import statistics
import sys


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main():
    dirs = sys.argv[1:]
    if len(dirs) < 2:
        sys.exit(__doc__)
    runs = [json.load(open(os.path.join(d, "cost.json"))) for d in dirs]
    peers = [r["names"][0] for r in runs]
    if peers[0] != "glibc":
        sys.exit("the first run must be against glibc (--names glibc,...)")
    count, tide, family, order = {}, {}, {}, []
    for r in runs:
        a, b = r["names"]
        for row in r["rows"]:
            w = row["workload"]
            if w not in order:
                order.append(w)
            family[w] = row["family"]
            count.setdefault(w, {})[a] = row[a]
            tide.setdefault(w, []).append(row[b])
    order = [w for w in order if all(p in count[w] for p in peers)]
    others = peers[1:]
    print("# Instructions per workload: tidemalloc against glibc and the peers\n")
    print("Total instructions (callgrind, all processes of the run, quick mode) of "
          "every `make bench` workload but redis, counted by `bench/cost.py`, one run "
          "per peer; the table by `bench/cost_table.py` (commands in its header).\n")
    for r in runs:
        lib = r.get("lib_a", "" if r["a"] == "glibc" else r["a"])
        print("- %s: %s%s" % (r["names"][0], lib or "(no preload)",
                              "".join(" %s=%s" % kv for kv in sorted(r.get("env_a", {}).items()))))
    print("- tidemalloc: %s\n" % runs[0].get("lib_b", runs[0]["b"]))
    print("The peers as given to cost.py (defaults unless a run named a release setting: "
          "make bench's jemalloc-bg, tcmalloc-release and mimalloc-purge are accepted).\n")
    print("Each cell: the allocator's instructions relative to glibc's (glibc's own in "
          "millions); below 1 = fewer than glibc. tidemalloc's count is the median of its "
          "%d runs. Instructions are user-space work only: callgrind counts neither the "
          "kernel's side of `madvise`, `munmap` and page faults (memory given back and "
          "faulted in again: tidemalloc gives back more than the peers at "
          "their defaults, so this leaves out part of its cost) nor "
          "cache misses and lock waits, which decide the threaded workloads' time.\n"
          % len(runs))
    print("| workload | family | glibc (M) | " + " | ".join(others)
          + " | tidemalloc | tidemalloc / best peer |")
    print("| :--- | :--- | ---: | " + " | ".join("---:" for _ in others) + " | ---: | ---: |")
    rel = {p: [] for p in others + ["tidemalloc"]}
    vs_best = []
    for w in order:
        g = count[w]["glibc"]
        t = statistics.median(tide[w])
        best = min(count[w][p] for p in others)
        for p in others:
            rel[p].append(count[w][p] / g)
        rel["tidemalloc"].append(t / g)
        vs_best.append(t / best)
        print("| %s | %s | %.0f | %s | **%.2f** | %.2f |"
              % (w, family[w], g / 1e6, " | ".join("%.2f" % (count[w][p] / g) for p in others),
                 t / g, t / best))
    print("| **geomean** (%d) | | | %s | **%.2f** | %.2f |"
          % (len(order), " | ".join("%.2f" % geomean(rel[p]) for p in others),
             geomean(rel["tidemalloc"]), geomean(vs_best)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
