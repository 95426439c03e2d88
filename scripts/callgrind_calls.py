#!/usr/bin/env python3
"""Calls and inclusive instructions per callee in a callgrind output file.

  scripts/callgrind_calls.py callgrind.out ['regex on the function name']

Sums, over every call site, the `calls=` counts and the inclusive cost line
that follows each (the first event, Ir), so `malloc`/`free` called from the
program give their per-call cost as incl / calls.  docs/performance.md.
"""
import collections
import re
import sys

names = {}


def name_of(s):
    m = re.match(r'\((\d+)\)(?: (.*))?', s)
    if not m:
        return s
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), s)


calls = collections.Counter()
incl = collections.Counter()
callee = None
want_cost = False
with open(sys.argv[1], errors='replace') as f:
    for line in f:
        line = line.rstrip('\n')
        if line.startswith('fn='):
            name_of(line[3:])
            callee, want_cost = None, False
        elif line.startswith('cfn='):
            callee = name_of(line[4:])
        elif line.startswith('calls='):
            calls[callee] += int(line[6:].split()[0])
            want_cost = True
        elif want_cost and line and (line[0].isdigit() or line[0] in '+-*'):
            parts = line.split()
            if len(parts) >= 2:
                incl[callee] += int(parts[1])
            want_cost = False
pat = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
for k, v in sorted(calls.items(), key=lambda kv: -kv[1]):
    if pat is None or pat.search(k):
        print(f"{v:>12} calls {incl[k]:>14} incl  {k}")
