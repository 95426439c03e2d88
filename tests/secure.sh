#!/bin/bash
# secure.sh SECURE_TARGET: a set-user-ID program reads none of tidemalloc's
# environment (src/tunables.c, secure mode).  A set-user-ID root copy of
# secure_target, run by `nobody` with TIDEMALLOC_REPORT naming a root-owned
# 0600 file and TIDEMALLOC_PROFILE naming an output prefix, must leave the
# file as it was and write no profile; the same copy run by root (no change
# of uid: not secure) writes its report, so the variable is read where it
# should be.  Needs root, setpriv and a file system that honours the
# set-user-ID bit: otherwise exit 77 (SKIP), saying why.
set -u
target=$1
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a set-user-ID root copy, run as nobody)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: no setpriv"; exit 77; }
id nobody >/dev/null 2>&1 || { echo "SKIP: no user nobody"; exit 77; }
group=nogroup
getent group nogroup >/dev/null || group=nobody
d=$(mktemp -d /tmp/tide-secure.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
chmod 755 "$d"
cp "$target" "$d/prog" && chown root:root "$d/prog" && chmod 4755 "$d/prog" || exit 1
echo "root's secret" > "$d/victim"
chmod 600 "$d/victim"
out=$(setpriv --reuid=nobody --regid="$group" --clear-groups \
      env TIDEMALLOC_REPORT="$d/victim" TIDEMALLOC_PROFILE="rate:1,out:$d/prof.%p" "$d/prog" 2>&1)
echo "set-user-ID run: $out"
case "$out" in
    *"euid 0"*) ;;
    *) echo "SKIP: the set-user-ID bit had no effect here (a nosuid mount?)"; exit 77 ;;
esac
fail=0
if [ "$(cat "$d/victim")" != "root's secret" ]; then
    echo "FAIL: the set-user-ID program wrote over a root-owned file named by TIDEMALLOC_REPORT:"
    head -c 200 "$d/victim"; echo
    fail=1
fi
if ls "$d"/prof.* >/dev/null 2>&1; then
    echo "FAIL: the set-user-ID program wrote a profile where TIDEMALLOC_PROFILE said: $(ls "$d"/prof.*)"
    fail=1
fi
# Control: root running the same copy is not in secure mode.
TIDEMALLOC_REPORT="$d/report.json" "$d/prog" >/dev/null 2>&1
if [ ! -s "$d/report.json" ]; then
    echo "FAIL: run by root, the program wrote no report (the check above proves nothing)"
    fail=1
fi
[ $fail = 0 ] && echo "PASS: secure mode ignores TIDEMALLOC_REPORT and TIDEMALLOC_PROFILE; root's run writes its report"
exit $fail
