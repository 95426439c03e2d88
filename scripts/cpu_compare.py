#!/usr/bin/env python3
"""Interleaved runs of one workload under several allocators: CPU time.

  scripts/cpu_compare.py "build/bench/wl_prodcons --quick" 5 old.so new.so glibc

Each repetition runs the workload once under every library in turn
(LD_PRELOAD; `glibc` = none) and takes the child's user + sys time from
wait4().  On a shared machine CPU time is far less noisy than wall time.
Prints the median CPU seconds (relative to the first library) and the
median ops per CPU second (the RESULT line's ops / CPU time).
"""
import os
import re
import statistics
import sys
import tempfile

args = sys.argv[1].split()
reps = int(sys.argv[2])
libs = sys.argv[3:]
cpu = {lib: [] for lib in libs}
opc = {lib: [] for lib in libs}
out = tempfile.NamedTemporaryFile(prefix='cpu_compare', delete=False).name
for _ in range(reps):
    for lib in libs:
        env = dict(os.environ)
        if lib != 'glibc':
            env['LD_PRELOAD'] = lib
        pid = os.fork()
        if pid == 0:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.execve(args[0], args, env)
        _, status, ru = os.wait4(pid, 0)
        if status != 0:
            sys.exit(f"{lib}: workload failed (status {status})")
        t = ru.ru_utime + ru.ru_stime
        cpu[lib].append(t)
        with open(out) as f:
            m = re.search(r' ops=([0-9.]+)', f.read())
        opc[lib].append(float(m.group(1)) / t if m and t > 0 else 0.0)
os.unlink(out)
base = statistics.median(cpu[libs[0]])
for lib in libs:
    c = statistics.median(cpu[lib])
    print(f"{os.path.basename(lib):28s} cpu med {c:.3f}s (x{c / base:.2f} of first) "
          f"[{min(cpu[lib]):.3f}-{max(cpu[lib]):.3f}]  ops/cpu-s med {statistics.median(opc[lib]) / 1e6:.1f}M")
