#!/usr/bin/env bash
# make_deb.sh SRC_DIR OUT_DIR - build the Debian package of tidemalloc.
#
# A private build (OUT_DIR/deb-build) configured for Debian's layout (prefix
# /usr, multiarch libdir) is installed with `cmake --install --strip` into a
# staging tree, and dpkg-deb packs that tree: whatever the install rules put
# there (library with its soname links, static library, header, pkg-config
# and CMake package files, man pages, and the `tidemalloc` command under
# bin/ and lib/<multiarch>/tidemalloc/ when the tree has it).  Man pages are
# gzipped as in every Debian package; DEBIAN/ holds control, md5sums and an
# ldconfig trigger.  Depends is computed with dpkg-shlibdeps from the
# library's NEEDED entries (stated libc6 and libgcc-s1 if that fails), plus
# python3 when a Python command is installed (python3-matplotlib is
# recommended: the command draws with it).  Writes
# OUT_DIR/tidemalloc_<version>-1_<arch>.deb and prints its path.
set -euo pipefail
src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
build="$out/deb-build"
stage="$out/deb-stage"

arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
version=$(sed -n 's/^project(tidemalloc VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$version" ] || { echo "make_deb.sh: no version in CMakeLists.txt" >&2; exit 1; }
debver="$version-1"

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DCMAKE_INSTALL_LIBDIR="lib/$multiarch" -DTIDE_BUILD_TESTS=OFF -DTIDE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
rm -rf "$stage"
DESTDIR="$stage" cmake --install "$build" --strip >/dev/null

# Debian conventions: static archives without debug information (--strip
# only strips the shared object), man pages gzipped (-n: reproducible).
find "$stage" -name '*.a' -exec strip --strip-debug {} +
if [ -d "$stage/usr/share/man" ]; then
    find "$stage/usr/share/man" -type f -name '*.[1-8]' -exec gzip -9nf {} +
fi
docdir="$stage/usr/share/doc/tidemalloc"
mkdir -p "$docdir"
cp "$src/README.md" "$docdir/README.md"

# Depends.
lib=$(find "$stage/usr/lib/$multiarch" -maxdepth 1 -type f -name 'libtidemalloc.so.*' | head -n 1)
[ -n "$lib" ] || { echo "make_deb.sh: no libtidemalloc.so.* staged" >&2; exit 1; }
depends=""
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
mkdir -p "$tmpd/debian"
printf 'Source: tidemalloc\n\nPackage: tidemalloc\nArchitecture: any\n' > "$tmpd/debian/control"
if shl=$(cd "$tmpd" && dpkg-shlibdeps -O -e"$lib" 2>/dev/null); then
    depends=$(printf '%s\n' "$shl" | sed -n 's/^shlibs:Depends=//p')
fi
[ -n "$depends" ] || depends="libc6 (>= 2.34), libgcc-s1"
recommends=""
if grep -qls '^#!.*python3' "$stage/usr/bin/"* 2>/dev/null; then
    depends="$depends, python3"
    recommends="python3-matplotlib"
fi

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
{
    echo "Package: tidemalloc"
    echo "Version: $debver"
    echo "Architecture: $arch"
    echo "Maintainer: tidemalloc developers <tidemalloc@localhost>"
    echo "Installed-Size: $size"
    echo "Depends: $depends"
    [ -z "$recommends" ] || echo "Recommends: $recommends"
    echo "Section: libs"
    echo "Priority: optional"
    echo "Multi-Arch: no"
    echo "Description: ptmalloc-style malloc replacement that gives memory back"
    echo " tidemalloc replaces the C library's malloc (link it, or LD_PRELOAD"
    echo " libtidemalloc.so): per-thread caches, arenas, page release of free"
    echo " memory after a decay time, statistics and allocation-site profiling."
    echo " This package holds the shared and static library, the header, the"
    echo " pkg-config and CMake package files, the man pages and, when built,"
    echo " the tidemalloc command."
} > "$stage/DEBIAN/control"
echo "activate-noawait ldconfig" > "$stage/DEBIAN/triggers"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    xargs md5sum > DEBIAN/md5sums)

deb="$out/tidemalloc_${debver}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
