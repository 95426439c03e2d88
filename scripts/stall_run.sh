#!/usr/bin/env bash
# stall_run.sh - run a command while stopping and continuing it at random,
# a stand-in for a loaded or paused virtual machine: every 10-90 ms the
# process is stopped (SIGSTOP) for 100-900 ms.  Timing-dependent paths
# (the decay ticks, the purge, the clock-decayed high-water marks) then
# run at moments a quiet machine never shows.  It found the CI flake of
# test_quiet_churn (1 run in 6 over the bound; docs/design.md §7):
#
#     scripts/stall_run.sh build/tests/test_quiet_mt churn
#
# Only the command's own process is stopped (not its children).  Exit
# status: the command's.
set -u
[ $# -ge 1 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }
"$@" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    sleep "0.0$((RANDOM % 9 + 1))"
    kill -STOP "$pid" 2>/dev/null || break
    sleep "0.$((RANDOM % 9 + 1))"
    kill -CONT "$pid" 2>/dev/null
done
kill -CONT "$pid" 2>/dev/null
wait "$pid"
