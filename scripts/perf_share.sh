#!/bin/bash
# perf_share.sh LIB CMD [ARGS...] - where a program's CPU time goes,
# natively: samples (perf record -e cpu-clock, the software clock, which
# works without hardware counters) in the allocator LIB (preloaded), in the
# rest of user space, and in the kernel, and the ratio allocator / rest of
# user space.  The ratio compares two builds of the library on the same
# program robustly on a loaded machine (both shares come from one run),
# where CPU-time medians drown in the noise; it counts cache misses, which
# callgrind does not.  Stdin is passed through (perl count.pl < words.txt).
#   scripts/perf_share.sh build/libtidemalloc.so build/bench/wl_small
# Exit status: the program's.
set -u
lib=$1; shift
out=$(mktemp /tmp/perf_share.XXXXXX)
LD_PRELOAD=$lib perf record -q -e cpu-clock -F 10000 -o "$out" "$@" >/dev/null
rc=$?
name=$(basename "$lib")
perf report -i "$out" --sort dso --stdio 2>/dev/null |
    awk -v n="$name" '/%/ { v = $1; sub("%", "", v);
                            if (index($2, n) == 1) a += v; else if ($2 ~ /kernel/) k += v; else o += v }
                      END { printf "allocator %.1f%%  other user %.1f%%  kernel %.1f%%  allocator/other %.3f\n",
                            a, o, k, (o > 0 ? a / o : 0) }'
rm -f "$out"
exit $rc
