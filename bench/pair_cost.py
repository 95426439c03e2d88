#!/usr/bin/env python3
"""Instructions per malloc/free pair of one size, per allocator (callgrind).

  python3 bench/pair_cost.py --build build --sizes 64,2000 \
      glibc build/libtidemalloc.so /lib/x86_64-linux-gnu/libmimalloc.so.2

Runs build/bench/pair_loop under `valgrind --tool=callgrind` with each
library preloaded (`glibc`: none) at ITERS and 2*ITERS pairs; prints
(Ir(2*ITERS) - Ir(ITERS)) / ITERS, i.e. the pair alone, start-up and
the 8 live blocks cancelling out.  Deterministic for one-thread loops.
--thread runs the loop in a second thread (the first waits in
pthread_join): the hit path of a thread other than the main one, whose
chunks come from an arena of its own in tidemalloc and glibc.
Exit status 0 unless a run failed.
"""
import argparse
import os
import re
import subprocess
import sys

COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(loop, lib, size, iters, thread=False):
    env = dict(os.environ)
    if lib != "glibc":
        env["LD_PRELOAD"] = lib
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        loop, str(size), str(iters)] + (["thread"] if thread else []), env=env, capture_output=True, text=True)
    m = COLLECTED.search(p.stderr)
    if p.returncode != 0 or not m:
        sys.exit("%s, %d bytes: run failed (%d): %s" % (lib, size, p.returncode, p.stderr[-300:]))
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--sizes", default="64,2000")
    ap.add_argument("--iters", type=int, default=100000)
    ap.add_argument("--thread", action="store_true",
                    help="run the loop in a second thread (not the main one)")
    ap.add_argument("libs", nargs="+")
    a = ap.parse_args()
    loop = os.path.join(a.build, "bench", "pair_loop")
    sizes = [int(s) for s in a.sizes.split(",")]
    print("| allocator | " + " | ".join("%d B" % s for s in sizes) + " |")
    print("| :--- | " + " | ".join("---:" for _ in sizes) + " |")
    for lib in a.libs:
        row = []
        for s in sizes:
            one = instructions(loop, lib, s, a.iters, a.thread)
            two = instructions(loop, lib, s, 2 * a.iters, a.thread)
            row.append("%d" % round((two - one) / a.iters))
        print("| %s | %s |" % (os.path.basename(lib), " | ".join(row)))


if __name__ == "__main__":
    main()
