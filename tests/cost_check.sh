#!/bin/bash
# bench/cost.py does what it says: the same library twice gives the same
# instruction counts (pairs: single-threaded, deterministic; jq: a real
# program), and --b-env reaches only the second library's runs (the thread
# cache turned off there makes pairs run far more instructions), and
# --a glibc runs without a preload (glibc's malloc: other counts), a peer
# named as make bench names it (mimalloc) is found, tidemalloc's own
# variants by name run BUILD's library with their environment, and
# cost_table.py merges the runs into one table.
#   usage: cost_check.sh SRC BUILD
set -eu
src=$1 build=$2
command -v valgrind >/dev/null || { echo "valgrind missing: skipped"; exit 77; }
lib=$build/libtidemalloc.so
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 "$src/bench/cost.py" --build "$build" --a "$lib" --b "$lib" --workloads pairs,jq \
    --names a,b --out "$out/same"
python3 "$src/bench/cost.py" --build "$build" --a "$lib" --b "$lib" --workloads pairs \
    --b-env GLIBC_TUNABLES=glibc.malloc.tcache_count=0 --names cache,nocache --out "$out/env"
python3 "$src/bench/cost.py" --build "$build" --a glibc --b "$lib" --workloads pairs \
    --names glibc,tide --out "$out/glibc"
python3 "$src/bench/cost.py" --build "$build" --a tidemalloc-huge --b tidemalloc-norelease \
    --workloads pairs --names huge,norelease --out "$out/variants"
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libmimalloc\.so\.2 '; then   # (libmimalloc2.0)
    python3 "$src/bench/cost.py" --build "$build" --a mimalloc --b "$lib" --workloads pairs \
        --names mimalloc,tide --out "$out/mimalloc"
    python3 "$src/bench/cost_table.py" "$out/glibc" "$out/mimalloc" > "$out/table.md"
else
    echo "libmimalloc.so.2 missing: the peer-name and cost_table checks skipped"
fi
python3 - "$out" "$build" <<'PY'
import json, os, sys
out = sys.argv[1]
same = {r["workload"]: r for r in json.load(open(out + "/same/cost.json"))["rows"]}
env = {r["workload"]: r for r in json.load(open(out + "/env/cost.json"))["rows"]}
bad = []
for w in ("pairs", "jq"):
    if w not in same:
        bad.append("no row for %s" % w)
    elif not 0.99 <= same[w]["ratio"] <= 1.01 or same[w]["a"] < 1e6:
        bad.append("%s: the same library twice gave ratio %.4f (%d Ir)" % (w, same[w]["ratio"], same[w]["a"]))
if "pairs" not in env or env["pairs"]["ratio"] < 1.3:
    bad.append("--b-env had no effect: %r" % env.get("pairs"))
gl = {r["workload"]: r for r in json.load(open(out + "/glibc/cost.json"))["rows"]}
if "pairs" not in gl or 0.97 <= gl["pairs"]["ratio"] <= 1.03 or gl["pairs"]["glibc"] < 1e6:
    bad.append("--a glibc ran the same allocator as b: %r" % gl.get("pairs"))
va = json.load(open(out + "/variants/cost.json"))
lib = os.path.realpath(os.path.join(sys.argv[2], "libtidemalloc.so"))
if (os.path.realpath(va["lib_a"]) != lib or os.path.realpath(va["lib_b"]) != lib or
        va["env_a"] != {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"} or
        va["b_env"] != {"TIDEMALLOC_DECAY_MS": "-1"} or not va["rows"]):
    bad.append("tidemalloc-huge, tidemalloc-norelease: %r %r %r %r" %
               (va["lib_a"], va["lib_b"], va["env_a"], va["b_env"]))
if os.path.exists(out + "/mimalloc/cost.json"):
    mi = json.load(open(out + "/mimalloc/cost.json"))
    if "libmimalloc" not in mi["lib_a"] or mi["rows"][0]["mimalloc"] == gl["pairs"]["glibc"]:
        bad.append("--a mimalloc did not preload mimalloc: %r" % mi["lib_a"])
    table = open(out + "/table.md").read()
    if "| pairs | own |" not in table or "**geomean** (1)" not in table:
        bad.append("cost_table.py: no pairs row or geomean in\n" + table)
for b in bad:
    print("FAIL:", b)
print("same: pairs %.4f, jq %.4f; cache off: pairs %.2fx the instructions"
      % (same["pairs"]["ratio"], same["jq"]["ratio"], env["pairs"]["ratio"]) if not bad else "")
sys.exit(1 if bad else 0)
PY
