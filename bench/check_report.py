"""CTest bench_quick_report: checks what `run.py --quick` wrote (python3
standard library only).  Every workload of run.py's list that ran must have
a result under glibc and under tidemalloc (and under each of their variants
that ran, e.g. glibc-huge), every run must have passed
(status ok), results.md must have the per-family tables and geomeans, and
summary.json must carry a time ratio for each (workload, allocator) pair.
Real programs that are not installed are allowed to be missing only when
results.md says so (the skip notice with its apt-get line).

    python3 bench/check_report.py OUT_DIR
"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def main():
    out = sys.argv[1]
    md = open(os.path.join(out, "results.md")).read()
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    summ = json.load(open(os.path.join(out, "summary.json")))
    bad = []
    for r in rows:
        if r["status"] != "ok":
            bad.append("%s under %s: %s %s" % (r["workload"], r["allocator"], r["status"],
                                              r["error"]))
    ran = {(r["workload"], r["allocator"]) for r in rows}
    ratio = {(r["workload"], r["allocator"]) for r in summ["rows"] if r.get("tratio")}
    # glibc and tidemalloc always; a variant of theirs that ran (with the
    # environment of its own: tidemalloc-huge, ...) likewise everywhere -
    # they need no package that could be missing.
    must = ["glibc", "tidemalloc"] + [a for a in summ["allocators"]
                                      if a in run.TIDE_VARIANTS or run.base_allocator(a) == "glibc"]
    for w, _, fam, _ in run.WORKLOADS:
        if fam == "programs" and ("program %s skipped" % w) in md:
            continue
        for a in dict.fromkeys(must):
            if (w, a) not in ran:
                bad.append("%s: no run under %s" % (w, a))
            elif (w, a) not in ratio:
                bad.append("%s: no time ratio for %s in summary.json" % (w, a))
    for fam, _ in run.FAMILIES:
        for text in ("### %s (" % fam, "**geomean %s**" % fam):
            if text not in md:
                bad.append("results.md lacks %r" % text)
    for text in ("**geomean, all", "## Peak RSS relative to glibc",
                 "## Final RSS relative to glibc"):
        if text not in md:
            bad.append("results.md lacks %r" % text)
    for b in bad:
        print("FAIL: " + b)
    print("%d runs, %d workloads checked: %s" % (len(rows), len(run.WORKLOADS),
                                                 "FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
