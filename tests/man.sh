#!/usr/bin/env bash
# man.sh SRC_DIR - every man page in man/ renders with man(1) without a
# warning (groff's and man-db's), as `man --warnings -l` shows it.
set -euo pipefail
n=0
for page in "$1"/man/*.[1-8]; do
    warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
    [ -z "$warn" ] || { echo "FAIL: $page:"; echo "$warn"; exit 1; }
    lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
    [ "$lines" -gt 20 ] || { echo "FAIL: $page renders to $lines lines"; exit 1; }
    echo "$page: $lines lines, no warnings"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no man pages"; exit 1; }
echo "1 passed, 0 failed"
