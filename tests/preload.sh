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
#         php     php -m, php -r and a script of arrays, strings, gzip,
#                 objects, JSON and regexes, and one of intl (ICU) and gd:
#                 PHP opens its extensions with dlopen(RTLD_DEEPBIND)
#                 (src/dlopen.c).  Skipped (77) where php is not
#                 installed, except under CI=true (intl and gd too).
#         git     bench/bench_programs.py's generated history of 41 commits
#                 built twice, without and with the preload (the commit ids
#                 must agree), then
#                 log -p --stat, blame, diff, grep, fsck, pack-objects into
#                 index-pack (2 threads each) and gc on a copy.
#         postgres  a PostgreSQL server (initdb, the postmaster and its forked
#                 backends, pgbench and psql all preloaded): pgbench's TPC-B
#                 transactions from 4 clients, then an SQL script of sorts,
#                 hash joins and aggregates, window functions, JSON, a
#                 recursive CTE, PL/pgSQL, an error caught mid-query, DELETE
#                 and VACUUM; its output and pgbench's balance invariants
#                 must be those of the same run without the preload, and the
#                 server log must show no backend that died.  As root it
#                 runs as the `postgres` user (or `nobody`).  Not installed:
#                 skipped (exit 77), except under CI=true, where it fails.
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

# not_installed WHAT HOW: a suite whose program is missing is skipped
# (exit 77), except under CI=true, where it fails.
not_installed() {
    if [[ ${CI:-} == true ]]; then
        fail "$1 is not installed"
        echo "$passed passed, $failed failed"
        exit 1
    fi
    echo "SKIP: $1 is not installed ($2)"
    exit 77
}

# outputs_differ LABEL REF TIDE: REF.out and REF.err against TIDE.out and
# TIDE.err; on a difference, fails with the diff and returns 0.
outputs_differ() {
    local s
    for s in out err; do
        if ! cmp -s "$2.$s" "$3.$s"; then
            fail "$1: std$s differs under the preload"
            diff "$2.$s" "$3.$s" | head -20 >&2
            return 0
        fi
    done
    return 1
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
    elif outputs_differ "$name" "$name.ref" "$name.tide"; then
        :
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

php)
    command -v php >/dev/null 2>&1 || not_installed php "apt-get install php-cli"
    # PHP opens every extension with dlopen(RTLD_DEEPBIND): without
    # tidemalloc's dlopen (src/dlopen.c) their malloc and free are glibc's
    # and `php -r` dies in glibc's free.
    preloaded php php -r 'echo file_get_contents("/proc/self/maps");'
    same php_modules php -m
    same php_echo php -r 'echo "hello\n";'
    cat >work.php <<'EOF'
<?php
$a = [];
for ($i = 0; $i < 300000; $i++) { $a["k" . ($i * 7919 % 100003)] = str_repeat(chr(65 + $i % 26), $i % 300); }
$t = 0; foreach ($a as $v) $t += strlen($v);
echo count($a), " ", $t, "\n";
ksort($a); echo sha1(implode(",", array_keys($a))), "\n";
$s = gzcompress(str_repeat("tidemalloc ", 1000000)); echo strlen($s), " ", strlen(gzuncompress($s)), "\n";
$objs = []; for ($i = 0; $i < 200000; $i++) { $o = new stdClass; $o->i = $i; $o->s = "s$i"; $objs[] = $o; }
usort($objs, function ($x, $y) { return strcmp($y->s, $x->s); }); echo $objs[0]->s, " ", $objs[199999]->s, "\n";
unset($objs);
$j = json_encode(array_slice($a, 0, 5000)); $b = json_decode($j, true); echo strlen($j), " ", count($b), "\n";
echo preg_replace_callback('/[0-9]+/', function ($m) { return strrev($m[0]); }, implode(" ", range(1000, 1100))), "\n";
$x = ""; for ($i = 0; $i < 100000; $i++) { $x .= dechex($i); } echo md5($x), "\n";
echo serialize(array_map(null, range(1, 5), str_split("abcde"))), "\n";
EOF
    same php_script php work.php
    # Extensions with C++ and many libraries behind them (ICU; libgd and
    # its image libraries, among them libnuma, whose constructor frees
    # what the C library allocated for it: only the default, which drops
    # RTLD_DEEPBIND, gets that one right - docs/design.md section 10).
    # (the list in a variable: grep -q closing a pipe early would SIGPIPE
    # php, and pipefail make the test false)
    mods=$(php -m 2>/dev/null)
    if grep -qx intl <<<"$mods" && grep -qx gd <<<"$mods"; then
        cat >work_ext.php <<'EOF'
<?php
$c = new Collator("de_DE"); $a = ["b", "a", "\u{e4}", "z", "\u{f6}l", "ol"]; $c->sort($a); echo implode(",", $a), "\n";
echo IntlDateFormatter::create("fr_FR", IntlDateFormatter::FULL, IntlDateFormatter::NONE, "UTC")->format(86400 * 365), "\n";
echo Normalizer::normalize("e\u{301}", Normalizer::FORM_C) === "\u{e9}" ? "nfc\n" : "no nfc\n";
echo NumberFormatter::create("de_DE", NumberFormatter::DECIMAL)->format(1234567.891), "\n";
$im = imagecreatetruecolor(200, 100);
for ($i = 0; $i < 100; $i++) imageline($im, 0, $i, 199, 99 - $i, imagecolorallocate($im, $i, 255 - $i, 2 * $i));
ob_start(); imagepng($im); $png = ob_get_clean(); imagedestroy($im);
echo strlen($png) > 100 ? "png\n" : "no png\n", md5($png), "\n";
EOF
        same php_intl_gd php work_ext.php
    elif [[ ${CI:-} == true ]]; then
        fail "php's intl and gd extensions are not installed (php-intl php-gd)"
    else
        echo "note: php's intl and gd extensions not installed: their script left out"
    fi
    if (TIDEMALLOC_DEEPBIND=0 LD_PRELOAD=$LIB php -r 'echo 1;' >/dev/null 2>&1; exit $?) 2>/dev/null; then
        echo "note: control: php ran with TIDEMALLOC_DEEPBIND=0 too (its extensions not deep-bound here?)"
    else
        ok "control: with TIDEMALLOC_DEEPBIND=0 php fails under the preload, as under every other preloaded allocator"
    fi
    ;;

postgres)
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $PGBIN && -x $PGBIN/initdb ]] ||
        not_installed "PostgreSQL (/usr/lib/postgresql/*/bin/initdb)" "apt-get install postgresql"
    need pgrep
    # The server refuses to run as root: a user of its own, in a directory
    # it may write, with its own copy of the library (the build directory
    # need not be readable by that user).
    RUN=()
    if [[ $(id -u) == 0 ]]; then
        need runuser
        pguser=postgres
        id "$pguser" >/dev/null 2>&1 || pguser=nobody
        RUN=(runuser -u "$pguser" --)
        chmod 755 "$WORK"
    fi
    cp "$LIB" "$WORK/$LIBNAME"
    chmod 755 "$WORK/$LIBNAME"
    PGLIB=$WORK/$LIBNAME
    mkdir -p "$WORK/pg"
    [[ $(id -u) == 0 ]] && chown "$pguser" "$WORK/pg"
    cat >"$WORK/pg/work.sql" <<'EOF'
SET work_mem = '64MB';
CREATE TABLE t AS
  SELECT g AS id, md5(g::text) AS h, (g::bigint * 7919) % 100003 AS k, repeat(chr(65 + g % 26), g % 200) AS pad
  FROM generate_series(1, 300000) g;
CREATE INDEX ON t (k);
ANALYZE t;
SELECT count(*), sum(k), md5(string_agg(h, ',' ORDER BY h)) FROM t;
SELECT k % 100 AS b, count(*), sum(length(pad)), min(h), max(h) FROM t GROUP BY 1 ORDER BY 1 LIMIT 5;
SELECT md5(string_agg(id::text, ',' ORDER BY pad DESC, h)) FROM t;
SET work_mem = '4MB';
SELECT md5(string_agg(id::text, ',' ORDER BY h DESC)) FROM t;
SELECT count(DISTINCT h), count(DISTINCT k) FROM t;
WITH RECURSIVE r(n, s) AS (SELECT 1, ''::text UNION ALL SELECT n + 1, s || n FROM r WHERE n < 2000)
  SELECT length(s) FROM r ORDER BY n DESC LIMIT 1;
SELECT id, k, rank() OVER (PARTITION BY k % 10 ORDER BY id DESC) FROM t WHERE id % 50000 = 0 ORDER BY id;
SELECT jsonb_path_query_array(jsonb_agg(jsonb_build_object('id', id, 'h', h) ORDER BY id), '$[*] ? (@.id < 5).h')
  FROM t WHERE id < 100;
SELECT array_length(array_agg(id), 1), (array_agg(h ORDER BY h))[1000] FROM t;
SELECT length(regexp_replace(string_agg(h, '' ORDER BY id), '[0-9]+', '#', 'g')) FROM t WHERE id <= 20000;
SELECT count(*) / 0 FROM t;
SELECT count(*) FROM t a JOIN t b ON a.k = b.k AND a.id < b.id WHERE a.id < 20000;
CREATE TEMP TABLE tt AS SELECT * FROM t WHERE id % 3 = 0;
DELETE FROM t WHERE id % 3 = 0;
VACUUM t;
SELECT count(*), sum(length(pad)) FROM t;
SELECT count(*), sum(k) FROM tt;
DO $$ DECLARE s text := ''; BEGIN
  FOR i IN 1..20000 LOOP s := s || i::text; END LOOP;
  RAISE NOTICE 'plpgsql string of %', length(s);
END $$;
SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history),
       (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history),
       (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history),
       (SELECT count(*) FROM pgbench_history);
EOF
    # pg_run NAME PORT [preload]: a server of its own, pgbench, the script;
    # the script's output in pg/NAME.out and .err.
    pg_run() {
        local name=$1 port=$2 pre=${3:-} data=$WORK/pg/$1 env=()
        [[ -n $pre ]] && env=(env "LD_PRELOAD=$PGLIB")
        local log=$WORK/pg/$name.log
        if ! "${RUN[@]}" "${env[@]}" "$PGBIN/initdb" -D "$data" -A trust -U postgres --no-sync \
                >"$WORK/pg/$name.initdb" 2>&1; then
            fail "$name: initdb failed"
            sed 's/^/    /' "$WORK/pg/$name.initdb" | tail -20 >&2
            return 1
        fi
        if ! "${RUN[@]}" "${env[@]}" "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 \
                -o "-p $port -k $WORK/pg -c listen_addresses= -c fsync=off -c synchronous_commit=off" \
                start >/dev/null 2>&1; then
            fail "$name: the server did not start"
            sed 's/^/    /' "$log" | tail -20 >&2
            return 1
        fi
        local pm
        pm=$(head -n 1 "$data/postmaster.pid")
        if [[ -n $pre ]]; then
            if grep -q "/$LIBBASE" "/proc/$pm/maps"; then
                ok "preload in effect: the postmaster maps $LIBBASE"
            else
                fail "preload NOT in effect for the postmaster"
            fi
        fi
        local cli=("${RUN[@]}" "${env[@]}")
        local rc=0
        "${cli[@]}" "$PGBIN/pgbench" -h "$WORK/pg" -p "$port" -U postgres -i -s 2 -q postgres \
            >"$WORK/pg/$name.init" 2>&1 || rc=$?
        # Backends forked while the clients run: each must map the library.
        "${cli[@]}" "$PGBIN/pgbench" -h "$WORK/pg" -p "$port" -U postgres -c 4 -j 2 -t 300 postgres \
            >"$WORK/pg/$name.bench" 2>&1 &
        local bench=$! kids=0 mapped=0 k
        sleep 1
        # (one that has exited meanwhile - a zombie - has an empty map)
        for k in $(pgrep -P "$pm"); do
            cat "/proc/$k/maps" >"$WORK/pg/kid.maps" 2>/dev/null || continue
            [[ -s $WORK/pg/kid.maps ]] || continue
            kids=$((kids + 1))
            grep -q "/$LIBBASE" "$WORK/pg/kid.maps" && mapped=$((mapped + 1))
        done
        wait $bench || rc=$?
        if [[ -n $pre ]]; then
            if ((kids > 0 && mapped == kids)); then
                ok "preload in effect: $mapped of $kids forked server processes map $LIBBASE"
            else
                fail "preload: $mapped of $kids forked server processes map $LIBBASE"
            fi
        fi
        if [[ $rc != 0 ]] || ! grep -q "processed: 1200/1200" "$WORK/pg/$name.bench"; then
            fail "$name: pgbench failed (status $rc)"
            sed 's/^/    /' "$WORK/pg/$name.init" "$WORK/pg/$name.bench" | tail -20 >&2
        else
            ok "$name: pgbench, 4 clients, 1200 TPC-B transactions"
        fi
        "${cli[@]}" "$PGBIN/psql" -X -q -At -h "$WORK/pg" -p "$port" -U postgres -v ON_ERROR_STOP=0 \
            -f "$WORK/pg/work.sql" postgres >"$WORK/pg/$name.out" 2>"$WORK/pg/$name.err"
        "${RUN[@]}" "$PGBIN/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null 2>&1 ||
            fail "$name: the server did not stop"
        # (the logical replication launcher exits with status 1 at every
        # shutdown; a backend that dies is "server process (PID n) ...")
        if grep -E "terminated by signal|server process \(PID [0-9]+\) exited|PANIC" "$log" >&2; then
            fail "$name: a server process died (log above)"
        else
            ok "$name: no server process died (server log)"
        fi
    }
    t0=$(date +%s%N)
    pg_run ref 55431 || true
    t1=$(date +%s%N)
    pg_run tide 55432 preload || true
    t2=$(date +%s%N)
    if [[ ! -s $WORK/pg/ref.out ]]; then
        fail "postgres: the script printed nothing without the preload"
    elif outputs_differ "postgres: the script" "$WORK/pg/ref" "$WORK/pg/tide"; then
        :
    elif [[ $(grep -c "ERROR" "$WORK/pg/tide.err") != 1 ]] || ! grep -q "ERROR:  division by zero" "$WORK/pg/tide.err" ||
            ! grep -qx "t|t|t|1200" "$WORK/pg/tide.out"; then
        fail "postgres: not what the script expects (one error, division by zero; consistent balances)"
        tail -n 5 "$WORK/pg/tide.out" >&2
        tail -n 20 "$WORK/pg/tide.err" >&2
    else
        ok "$(printf 'postgres: the script (%s lines) the same under the preload, balances consistent (%d ms plain, %d ms preloaded, whole runs)' \
            "$(wc -l <"$WORK/pg/tide.out")" $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000)))"
    fi
    ;;

git)
    need git python3 sort sha1sum cut cp
    export WORK GIT_CONFIG_NOSYSTEM=1 HOME=$WORK LC_ALL=C GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org \
        GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
    # The alias's shell is git's child: it prints git's own map.
    preloaded git git -c 'alias.maps=!cat /proc/$PPID/maps' maps
    # history REPO [LIB]: bench/bench_programs.py's generated history (120
    # files of 120 lines in 16 directories, 40 commits, then packed), every
    # git command under LD_PRELOAD=LIB if given.  Its dates are fixed, so
    # the commit ids depend on the content alone.
    history() {
        python3 - "$HERE/../bench" "$WORK" "$1" "${2:-}" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import bench_programs
bench_programs.git_history(sys.argv[3], sys.argv[2], 120, 120, 40, preload=sys.argv[4] or None)
PYEOF
    }
    if history "$WORK/repo_ref" && history "$WORK/repo" "$LIB" &&
            [[ $(git -C "$WORK/repo_ref" log --format=%H | sha1sum) == $(git -C "$WORK/repo" log --format=%H | sha1sum) ]] &&
            [[ $(git -C "$WORK/repo" rev-list --count HEAD) == 41 ]]; then
        ok "git: the 41 commits made under the preload have the ids of those made without"
    else
        fail "git: the history made under the preload differs (or could not be made)"
    fi
    cd "$WORK/repo" || exit 1
    same git_log_p git log -p --stat
    same git_blame git blame -s d01/f0001.txt
    same git_diff  git diff --stat --summary HEAD~40 HEAD
    same git_grep  git grep -c -e heap -e arena HEAD~20
    same git_fsck  git fsck --full --strict --no-progress
    # pack-objects and index-pack with 2 threads each: the pack's bytes
    # depend on the threads' timing, the objects it holds do not.
    same git_pack  bash -c 'set -e; git -c pack.threads=2 pack-objects --all --revs --stdout -q </dev/null >"$WORK/all.pack"; git index-pack --threads=2 -o "$WORK/all.idx" "$WORK/all.pack" >/dev/null; git show-index <"$WORK/all.idx" | cut -d" " -f2 | sort'
    same git_gc    bash -c 'set -e; rm -rf "$WORK/gc"; cp -r "$WORK/repo" "$WORK/gc"; cd "$WORK/gc"; git gc -q; git fsck --full --no-progress; git count-objects -v | grep -E "^(count|in-pack|packs):"; git rev-list --all --objects | sort | sha1sum'
    ;;

*)
    fail "unknown suite $SUITE"
    ;;
esac

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
