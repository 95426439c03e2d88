#!/usr/bin/env bash
# deb.sh SRC_DIR - `make deb`'s script (scripts/make_deb.sh) into a scratch
# directory; then, without installing it: the package's control fields,
# md5sums and contents (dpkg-deb, dpkg -x into a temp dir), the library's
# soname and links, a program run with LD_PRELOAD of the extracted library
# (tidemalloc must serve its malloc), and find_package(tidemalloc) from a
# scratch CMake project against the extracted tree (the CMake files are
# relocatable).  The installed-package test (apt-get install) is a CI stage
# (.ci/run): it needs root.
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

deb=$(bash "$src/scripts/make_deb.sh" "$src" "$tmp/out" | tail -n 1)
[ -f "$deb" ] || fail "no package built"
echo "built $(basename "$deb")"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
lib="usr/lib/$multiarch"

# Control fields.
ctl=$(dpkg-deb -f "$deb")
echo "$ctl"
for field in Package Version Architecture Maintainer Installed-Size Depends Description; do
    grep -q "^$field: ." <<<"$ctl" || fail "control has no $field"
done
[ "$(dpkg-deb -f "$deb" Package)" = tidemalloc ] || fail "package name"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "architecture"
grep -q "^Depends:.*libc6" <<<"$ctl" || fail "Depends lacks libc6"
if [ -e "$src/tools/tidemalloc" ]; then
    grep -q "^Depends:.*python3" <<<"$ctl" || fail "Depends lacks python3 (the command is Python)"
    grep -q "^Recommends:.*python3-matplotlib" <<<"$ctl" || fail "Recommends lacks python3-matplotlib"
fi

# Contents.
# (listings go through files, not `| grep -q`: SIGPIPE under pipefail)
dpkg-deb --ctrl-tarfile "$deb" | tar -t > "$tmp/ctrl.txt"
grep -q '^\./md5sums$' "$tmp/ctrl.txt" || fail "no md5sums"
x="$tmp/x"
dpkg -x "$deb" "$x"
dpkg -e "$deb" "$x/DEBIAN"
(cd "$x" && md5sum --quiet -c DEBIAN/md5sums) || fail "md5sums do not match the files"
nfiles=$(cd "$x" && find usr -type f | wc -l)
[ "$nfiles" -eq "$(wc -l < "$x/DEBIAN/md5sums")" ] || fail "md5sums does not list every file"
for f in "$lib/libtidemalloc.so.0" "$lib/libtidemalloc.so" "$lib/libtidemalloc.a" \
         usr/include/tidemalloc.h "$lib/pkgconfig/tidemalloc.pc" \
         "$lib/cmake/tidemalloc/tidemallocConfig.cmake" "$lib/cmake/tidemalloc/tidemallocConfigVersion.cmake" \
         "$lib/cmake/tidemalloc/tidemallocTargets.cmake" usr/share/man/man3/tidemalloc.3.gz; do
    [ -e "$x/$f" ] || fail "$f missing from the package"
done
for page in "$src"/man/*.[1-8]; do
    sec=${page##*.}
    [ -e "$x/usr/share/man/man$sec/$(basename "$page").gz" ] || fail "$page not packaged"
done
if [ -e "$src/tools/tidemalloc" ]; then
    [ -x "$x/usr/bin/tidemalloc" ] || fail "the tidemalloc command is not packaged"
fi
[ -L "$x/$lib/libtidemalloc.so" ] && [ -L "$x/$lib/libtidemalloc.so.0" ] || fail "soname links are not symlinks"
soname=$(readelf -d "$x/$lib/libtidemalloc.so.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libtidemalloc.so.0 ] || fail "soname is '$soname'"
grep -q "^prefix=/usr$" "$x/$lib/pkgconfig/tidemalloc.pc" || fail "pkg-config prefix is not /usr"
grep -q "^libdir=\${prefix}/lib/$multiarch$" "$x/$lib/pkgconfig/tidemalloc.pc" || fail "pkg-config libdir is not multiarch"
zcat "$x/usr/share/man/man3/tidemalloc.3.gz" > "$tmp/man3.txt"
grep -q '^\.TH TIDEMALLOC 3' "$tmp/man3.txt" || fail "man page unreadable"

# The extracted library serves a program's malloc under LD_PRELOAD.
cat > "$tmp/owns.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "tide_owns");
    void *p = malloc(1000);
    int ok = owns && p && owns(p);
    free(p);
    puts(ok ? "malloc served by the packaged tidemalloc" : "FAIL: not tidemalloc");
    return !ok;
}
C
cc -fno-builtin "$tmp/owns.c" -o "$tmp/owns"
LD_PRELOAD="$x/$lib/libtidemalloc.so.0" "$tmp/owns"
echo hello | LD_PRELOAD="$x/$lib/libtidemalloc.so.0" sort >/dev/null || fail "sort under LD_PRELOAD"

# find_package against the extracted tree.
mkdir -p "$tmp/cm"
cat > "$tmp/cm/p.c" <<'C'
#include <stdlib.h>
#include <tidemalloc.h>
int main(void)
{
    void *p = malloc(64);
    int ok = p && tide_owns(p);
    free(p);
    return !ok;
}
C
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_packaged_tidemalloc C)
find_package(tidemalloc REQUIRED)
add_executable(p p.c)
target_compile_options(p PRIVATE -fno-builtin)
target_link_libraries(p PRIVATE tidemalloc::tidemalloc)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$x/usr" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
"$tmp/cm/b/p" || fail "find_package program against the extracted package"
echo "1 passed, 0 failed"
