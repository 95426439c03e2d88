#!/usr/bin/env bash
# preload.sh - real programs under LD_PRELOAD=libtidemalloc.so.
#
#   bash preload.sh <path/to/libtidemalloc.so> <suite>
#
# suites: python  python3 (PYTHONMALLOC=malloc) running a few seconds of
#                 dicts, lists, sorting, strings, json, big integers, regexes
#                 and threads; under the preload it also calls
#                 tide_check_heap() and tide_owns() through ctypes.
#         gcc     gcc -O2 compiling a generated C file and a test source; the
#                 objects must be identical, the linked program's output too.
#         sort    sort, sort -n, sort -u, sort -k on 2M generated lines with
#                 -S 200M (big buffers, 2 threads).
#         misc    a bash pipeline, awk, perl, tar of a directory.
#
# Each program runs once without and once with the preload; stdout, stderr
# and exit status must be the same.  Before that, the suite proves the
# preload is really in effect: the program itself (cat, python3, sort, awk,
# perl, bash) reads /proc/self/maps and must find libtidemalloc.so.
# Ends with the line "N passed, N failed"; exits 1 if anything failed.
set -uo pipefail

LIB=${1:?usage: preload.sh LIB SUITE}
SUITE=${2:?usage: preload.sh LIB SUITE}
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=$(readlink -f "$LIB")
LIBNAME=$(basename "$LIB")
LIBBASE=${LIBNAME%%.so*}            # libtidemalloc

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok:   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

if [[ ! -f $LIB ]]; then
    echo "FAIL: $LIB does not exist" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tide-preload.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

need() {
    local p
    for p in "$@"; do
        if ! command -v "$p" >/dev/null 2>&1; then
            fail "required program '$p' is not installed"
            echo "$passed passed, $failed failed"
            exit 1
        fi
    done
}

# preloaded NAME CMD...: CMD (under the preload) prints its own memory map
preloaded() {
    local name=$1
    shift
    # (to a file first: grep -q closing the pipe early would SIGPIPE the writer)
    LD_PRELOAD=$LIB "$@" >"$WORK/maps.txt" 2>/dev/null
    if grep -q "/$LIBBASE" "$WORK/maps.txt"; then
        ok "preload in effect: $name maps $LIBBASE"
    else
        fail "preload NOT in effect for $name ($*)"
    fi
}

# same NAME CMD...: run CMD without and with the preload, compare everything
same() {
    local name=$1
    shift
    local t0 t1 t2 rc_ref rc_tide
    t0=$(date +%s%N)
    "$@" >"$name.ref.out" 2>"$name.ref.err"
    rc_ref=$?
    t1=$(date +%s%N)
    LD_PRELOAD=$LIB "$@" >"$name.tide.out" 2>"$name.tide.err"
    rc_tide=$?
    t2=$(date +%s%N)
    local msg
    msg=$(printf '%s (%d ms plain, %d ms preloaded, %s bytes of output)' "$name" \
        $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000)) "$(wc -c <"$name.ref.out")")
    if [[ $rc_ref != "$rc_tide" ]]; then
        fail "$name: exit status $rc_tide under the preload, $rc_ref without"
        sed 's/^/    stderr: /' "$name.tide.err" | head -20 >&2
    elif ! cmp -s "$name.ref.out" "$name.tide.out"; then
        fail "$name: stdout differs under the preload"
        diff "$name.ref.out" "$name.tide.out" | head -20 >&2
    elif ! cmp -s "$name.ref.err" "$name.tide.err"; then
        fail "$name: stderr differs under the preload"
        diff "$name.ref.err" "$name.tide.err" | head -20 >&2
    elif [[ $rc_ref != 0 ]]; then
        fail "$name: exited $rc_ref (even without the preload)"
        head -20 "$name.ref.err" >&2
    else
        ok "$msg"
    fi
    rm -f "$name.ref.out" "$name.tide.out"
}

# ---- the loader itself -------------------------------------------------------
need cat grep cmp diff
preloaded cat cat /proc/self/maps

case $SUITE in
python)
    need python3
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0
    preloaded python3 python3 -c 'import sys; sys.stdout.write(open("/proc/self/maps").read())'
    cat >work.py <<'EOF'
import collections, hashlib, json, os, random, re, sys, threading

rng = random.Random(12345)
digest = hashlib.sha256()

def out(*args):
    s = " ".join(str(a) for a in args)
    print(s)
    digest.update(s.encode())

# dicts: grow, shrink, regrow
d = {}
for i in range(300000):
    d["k%d" % rng.randrange(10**6)] = [i, str(i) * 3, (i, i * i)]
out("dict", len(d))
keys = sorted(d)
out("first", keys[:3], "last", keys[-3:])
for k in keys[::2]:
    del d[k]
out("after del", len(d), sum(v[0] for v in d.values()))
d2 = {k: v[1] for k, v in d.items() if v[0] % 3}
out("comprehension", len(d2))

# lists and sorting
L = [rng.random() for _ in range(400000)]
L.sort()
out("sorted floats", round(L[0], 9), round(L[-1], 9), round(sum(L), 3))
words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randrange(1, 12)))
         for _ in range(200000)]
c = collections.Counter(words)
out("common", c.most_common(5))
s = ",".join(words)
out("joined", len(s), hashlib.md5(s.encode()).hexdigest())
out("sorted words", sorted(set(words))[:5], len(set(words)))
tuples = sorted(((w[::-1], len(w), i) for i, w in enumerate(words)), reverse=True)
out("tuples", tuples[:3])

# strings
text = " ".join(words[:60000])
out("regex", len(re.findall(r"\b[a-c]+\b", text)))
out("replace", hashlib.sha1(text.replace("ab", "XYZ").upper().encode()).hexdigest())
parts = text.split(" ")
out("split", len(parts), len("".join(reversed(parts))))

# json
obj = [{"id": i, "name": words[i], "vals": list(range(i % 50)), "nested": {"x": i / 3, "s": str(i)}}
       for i in range(60000)]
js = json.dumps(obj, sort_keys=True)
back = json.loads(js)
out("json", len(js), back == obj, hashlib.sha1(js.encode()).hexdigest())

# big integers
f = 1
for i in range(2, 12000):
    f *= i
out("factorial bits", f.bit_length(), hex(f)[:24], f % (10**9 + 7))
out("pow", pow(3, 10**5, 10**40 + 7))
fib = [0, 1]
for i in range(5000):
    fib.append(fib[-1] + fib[-2])
out("fib", fib[-1] % 10**20, fib[-1].bit_length())

# threads (allocating under the GIL from several OS threads)
res = [None] * 4
def work(t):
    r = random.Random(t)
    acc = []
    for j in range(40000):
        acc.append(str(r.random()) * (j % 3 + 1))
    res[t] = hashlib.sha1("".join(acc).encode()).hexdigest()
ths = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in ths: t.start()
for t in ths: t.join()
out("threads", res)

# many small objects freed in bulk
class Node:
    __slots__ = ("v", "next")
    def __init__(self, v, n):
        self.v = v; self.next = n
head = None
for i in range(300000):
    head = Node(i, head)
total = 0
while head is not None:
    total += head.v
    head = head.next
out("linked list", total)

out("digest", digest.hexdigest())

# Under the preload: ask tidemalloc itself (results go to a side file, so
# stdout stays comparable).
side = os.environ.get("TIDE_SIDE_FILE")
if side and "LD_PRELOAD" in os.environ:
    import ctypes
    lib = ctypes.CDLL(None)
    lib.tide_owns.argtypes = [ctypes.c_void_p]
    lib.tide_check_heap.restype = ctypes.c_long
    big = [str(i) * 50 for i in range(1000)]
    owned = sum(1 for x in big if lib.tide_owns(id(x)))
    chunks = lib.tide_check_heap()
    with open(side, "w") as fh:
        fh.write("owned %d of %d\nchunks %d\n" % (owned, len(big), chunks))
EOF
    TIDE_SIDE_FILE=$WORK/side.txt same python_workload python3 work.py
    if [[ -f side.txt ]] && grep -q "^owned 1000 of 1000" side.txt && grep -q "^chunks [0-9]" side.txt; then
        ok "python under the preload: tide_owns() true for its objects, tide_check_heap() passed ($(tr '\n' ' ' <side.txt))"
    else
        fail "python under the preload: tide_owns/tide_check_heap via ctypes: $(cat side.txt 2>/dev/null || echo 'no result')"
    fi
    ;;

gcc)
    need gcc nm python3
    # A generated translation unit that keeps the optimiser busy.
    python3 - >gen.c <<'EOF'
import random
r = random.Random(7)
print("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>")
print("struct rec { int a; long b; double c; char name[24]; };")
N = 300
for i in range(N):
    k = r.randrange(3, 9)
    print("static long f%d(long x, const struct rec *r) {" % i)
    print("  long acc = %d; char buf[64];" % r.randrange(100))
    print("  for (int i = 0; i < %d; i++) {" % r.randrange(5, 40))
    print("    switch ((x + i) %% %d) {" % k)
    for j in range(k):
        print("    case %d: acc += (x * %d) ^ (acc >> %d); break;" % (j, r.randrange(1, 99), r.randrange(1, 7)))
    print("    }")
    print("    acc += r[i %% 4].a * %d + (long)(r[i %% 4].c * %d);" % (r.randrange(9), r.randrange(9)))
    print("  }")
    print("  snprintf(buf, sizeof buf, \"%%ld-%d\", acc); acc += (long)strlen(buf);" % i)
    if i:
        print("  if (x > 0) acc += f%d(x - 1, r) %% 1000;" % r.randrange(i))
    print("  return acc;\n}")
print("int main(void) {\n  struct rec r[4]; long t = 0;")
print("  for (int i = 0; i < 4; i++) { r[i].a = i * 3 + 1; r[i].b = i; r[i].c = i / 3.0; snprintf(r[i].name, sizeof r[i].name, \"n%d\", i); }")
for i in range(N):
    print("  t = t * 31 + f%d(%d, r);" % (i, r.randrange(3)))
print("  printf(\"%ld\\n\", t);\n  return 0;\n}")
EOF
    # objcmp TAG DESCRIPTION GCC-ARGS...: compile without and with the
    # preload (-o is appended), compare exit status, diagnostics and objects.
    objcmp() {
        local tag=$1 name=$2 rc1 rc2
        shift 2
        gcc "$@" -o "$tag.ref.o" 2>"$tag.ref.err"
        rc1=$?
        LD_PRELOAD=$LIB gcc "$@" -o "$tag.tide.o" 2>"$tag.tide.err"
        rc2=$?
        if [[ $rc1 != 0 || $rc2 != 0 ]]; then
            fail "$name: gcc exited $rc2 under the preload, $rc1 without"
            head -20 "$tag.tide.err" >&2
        elif ! cmp -s "$tag.ref.err" "$tag.tide.err"; then
            fail "$name: gcc diagnostics differ under the preload"
            diff "$tag.ref.err" "$tag.tide.err" | head -20 >&2
        elif ! cmp -s "$tag.ref.o" "$tag.tide.o"; then
            fail "$name: object file differs under the preload"
            diff <(nm "$tag.ref.o") <(nm "$tag.tide.o") | head -10 >&2
        else
            ok "$name: identical object file and diagnostics under the preload"
        fi
    }
    objcmp gen "gcc -O2 generated.c ($(wc -l <gen.c) lines)" -O2 -g0 -c gen.c
    # A real source of the test suite, with warnings on.
    inc=$(cd "$HERE/../include" && pwd)
    objcmp tt "gcc -O2 -Wall -Wextra test_threads.c" -O2 -g0 -Wall -Wextra -I"$HERE" -I"$inc" \
        -c "$HERE/test_threads.c"
    # Link under the preload and run the program (also under the preload).
    LD_PRELOAD=$LIB gcc -O2 gen.c -o gen.tide 2>/dev/null
    gcc -O2 gen.c -o gen.ref 2>/dev/null
    same gen_program_run ./gen.tide
    if [[ -x gen.ref ]] && [[ "$(./gen.ref)" == "$(LD_PRELOAD=$LIB ./gen.tide)" ]]; then
        ok "program linked under the preload prints the same as one linked without"
    else
        fail "program linked under the preload behaves differently"
    fi
    ;;

sort)
    need sort python3 sha256sum
    python3 - >lines.txt <<'EOF'
import random, sys
r = random.Random(99)
syll = ["ka", "lo", "mi", "tu", "ne", "ra", "so", "vi", "de", "pu"]
w = sys.stdout.write
for i in range(2000000):
    n = r.randrange(10**9)
    word = "".join(r.choice(syll) for _ in range(r.randrange(1, 5)))
    w("%d %s %d\n" % (n % 100000, word, r.randrange(1000)))
EOF
    preloaded sort sort /proc/self/maps
    export LC_ALL=C
    same sort_plain     sort -S 200M --parallel=2 lines.txt
    same sort_numeric   sort -n -S 200M --parallel=2 lines.txt
    same sort_unique    sort -u -S 200M lines.txt
    same sort_keys      sort -k2,2 -k3,3nr -S 200M --parallel=2 lines.txt
    same sort_small_buf sort -S 4M -T "$WORK" lines.txt
    ;;

misc)
    need bash awk perl tar seq sort uniq head
    preloaded bash bash -c 'cat /proc/$$/maps'
    preloaded awk awk '{ print }' /proc/self/maps
    preloaded perl perl -ne 'print' /proc/self/maps
    same bash_pipeline bash -c 'seq 1 300000 | awk "{ print (\$1 * 7919) % 1000 }" | sort -n | uniq -c | sort -k1,1nr -k2,2n | head -20; x=""; for i in $(seq 1 3000); do x="$x$i,"; done; echo ${#x}; declare -A h; for i in $(seq 1 5000); do h[k$((i % 777))]+="$i "; done; echo ${#h[@]}'
    same awk_arrays awk 'BEGIN { srand(1); for (i = 0; i < 300000; i++) { k = int(rand() * 50000); a[k] = a[k] "x"; c[k]++ } n = 0; for (k in a) { n++; t += length(a[k]) } print n, t; s = ""; for (i = 0; i < 20000; i++) s = s sprintf("%d;", i); print length(s); m = split(s, parts, ";"); print m }'
    same perl_script perl -e 'my %h; for my $i (1..300000) { $h{"k" . ($i * 7919 % 100003)} .= chr(65 + $i % 26) } my @k = sort { length($h{$b}) <=> length($h{$a}) || $a cmp $b } keys %h; print scalar(@k), " $k[0] $k[-1]\n"; my $s = join(",", map { $_ * 3 } 1..200000); my @m = ($s =~ /(\d*7\d*)/g); print scalar(@m), " ", length($s), "\n"; my @big = map { [ $_, "x" x ($_ % 100) ] } 1..100000; print scalar(grep { length($_->[1]) > 50 } @big), "\n";'
    mkdir -p tree/a/b tree/c
    for i in $(seq 1 300); do
        printf '%s\n' "file $i $(seq 1 $((i * 3)) | tr '\n' ' ')" >"tree/a/b/f$i.txt"
        head -c $((i * 37)) /dev/zero | tr '\0' 'z' >"tree/c/g$i"
    done
    same tar_create bash -c 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - tree | sha256sum'
    LD_PRELOAD=$LIB tar -cf tree.tar tree
    mkdir -p unpack
    if LD_PRELOAD=$LIB tar -xf tree.tar -C unpack && diff -r tree unpack/tree >/dev/null; then
        ok "tar round trip under the preload"
    else
        fail "tar round trip under the preload"
    fi
    same tar_list bash -c 'tar -tf tree.tar | LC_ALL=C sort'
    ;;

*)
    fail "unknown suite $SUITE"
    ;;
esac

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
