#!/usr/bin/env bash
# install.sh SRC_DIR BUILD_DIR - `cmake --install` into a scratch prefix, then
# build a program with the installed pkg-config file, the header and the
# shared library, and one statically against libtidemalloc.a; run both.
# Then scratch CMake projects against the prefix: find_package(tidemalloc)
# with tidemalloc::tidemalloc and tidemalloc::tidemalloc_static, and
# pkg_check_modules(tidemalloc); build and run them.  The man pages must be
# installed under share/man/manN.
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
for f in lib/cmake/tidemalloc/tidemallocConfig.cmake lib/cmake/tidemalloc/tidemallocConfigVersion.cmake \
         lib/cmake/tidemalloc/tidemallocTargets.cmake share/man/man3/tidemalloc.3; do
    [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
for page in "$src"/man/*.[1-8]; do
    sec=${page##*.}
    [ -e "$tmp/prefix/share/man/man$sec/$(basename "$page")" ] || { echo "FAIL: $page not installed"; exit 1; }
done

# find_package: the shared and the static target.
mkdir -p "$tmp/cm"
cp "$tmp/p.c" "$tmp/cm/p.c"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_tidemalloc C)
find_package(tidemalloc 0.1 REQUIRED)
add_executable(p_shared p.c)
target_compile_options(p_shared PRIVATE -fno-builtin)
target_link_libraries(p_shared PRIVATE tidemalloc::tidemalloc)
add_executable(p_static p.c)
target_compile_options(p_static PRIVATE -fno-builtin)
target_link_libraries(p_static PRIVATE tidemalloc::tidemalloc_static)
get_target_property(kind tidemalloc::tidemalloc TYPE)
if(NOT kind STREQUAL "SHARED_LIBRARY")
  message(FATAL_ERROR "tidemalloc::tidemalloc is ${kind}")
endif()
message(STATUS "found tidemalloc ${tidemalloc_VERSION}")
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
"$tmp/cm/b/p_shared"
"$tmp/cm/b/p_static"
# The shared one really loads the installed library.
ldd "$tmp/cm/b/p_shared" > "$tmp/ldd.txt"   # (not piped into grep -q: SIGPIPE under pipefail)
grep -q "$tmp/prefix/lib/libtidemalloc.so" "$tmp/ldd.txt" ||
    { echo "FAIL: p_shared does not load the installed library"; cat "$tmp/ldd.txt"; exit 1; }
# A version the package does not satisfy is refused.
sed -i 's/find_package(tidemalloc 0.1 REQUIRED)/find_package(tidemalloc 1.0 REQUIRED)/' "$tmp/cm/CMakeLists.txt"
if cmake -S "$tmp/cm" -B "$tmp/cm/b2" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null 2>&1; then
    echo "FAIL: find_package(tidemalloc 1.0) accepted version 0.1"; exit 1
fi

# pkg-config from CMake.
if command -v pkg-config >/dev/null; then
    mkdir -p "$tmp/pc"
    cp "$tmp/p.c" "$tmp/pc/p.c"
    cat > "$tmp/pc/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_tidemalloc_pc C)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TM REQUIRED IMPORTED_TARGET tidemalloc)
add_executable(p_pc p.c)
target_compile_options(p_pc PRIVATE -fno-builtin)
target_link_libraries(p_pc PRIVATE PkgConfig::TM)
set_target_properties(p_pc PROPERTIES BUILD_RPATH "${TM_LIBRARY_DIRS}")
CM
    cmake -S "$tmp/pc" -B "$tmp/pc/b" >/dev/null
    cmake --build "$tmp/pc/b" >/dev/null
    "$tmp/pc/b/p_pc"
fi
echo "1 passed, 0 failed"
