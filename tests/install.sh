#!/usr/bin/env bash
# install.sh SRC_DIR BUILD_DIR - `cmake --install` into a scratch prefix, then
# build a program with the installed pkg-config file, the header and the
# shared library, and one statically against libtidemalloc.a; run both.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A private build so the shared build dir's install prefix is untouched.
cmake -S "$src" -B "$tmp/b" -DCMAKE_INSTALL_PREFIX="$tmp/prefix" -DTIDE_BUILD_TESTS=OFF \
      -DTIDE_BUILD_BENCH=OFF >/dev/null
cmake --build "$tmp/b" -j 2 --target tidemalloc tidemalloc_static >/dev/null
cmake --install "$tmp/b" >/dev/null
pc="$tmp/prefix/lib/pkgconfig/tidemalloc.pc"
[ -f "$pc" ] || { echo "FAIL: no pkg-config file"; exit 1; }
for f in include/tidemalloc.h lib/libtidemalloc.so lib/libtidemalloc.a; do
    [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
cat > "$tmp/p.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <tidemalloc.h>
int main(void)
{
    void *p = malloc(100), *q = tide_malloc(200);
    int ok = p && q && tide_owns(p) && tide_owns(q) && tide_check_heap() > 0;
    free(p);
    tide_free(q);
    puts(ok ? "installed tidemalloc works" : "FAIL");
    return !ok;
}
C
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
if command -v pkg-config >/dev/null; then
    flags=$(pkg-config --cflags --libs tidemalloc)
else   # read the file by hand: same information
    prefix="$tmp/prefix"
    flags="-I$prefix/include -L$prefix/lib -ltidemalloc"
fi
grep -q "^prefix=$tmp/prefix\$" "$pc" || { echo "FAIL: pkg-config prefix is not the install prefix"; cat "$pc"; exit 1; }
cc -fno-builtin "$tmp/p.c" -o "$tmp/p" $flags -Wl,-rpath,"$tmp/prefix/lib"
"$tmp/p"
cc -fno-builtin -static "$tmp/p.c" -o "$tmp/ps" -I"$tmp/prefix/include" "$tmp/prefix/lib/libtidemalloc.a" -lpthread
"$tmp/ps"
echo "1 passed, 0 failed"
