#!/usr/bin/env python3
"""Check that tidemalloc's sources only include and call downwards.

Layers, top to bottom (docs/design.md section 1).  A file may include a
header of its own layer or of a lower one, and may reference (call, or
name a variable of) a symbol defined in its own layer or a lower one.

  usage: check_layers.py SRC_DIR [LIBTIDEMALLOC.a]
         check_layers.py --self-test

Includes are read from the sources.  References are read with `nm` from
the objects of the static library: each object's undefined symbols are
matched with the object that defines them.  Exit status 1 on any
violation, each printed as one line.
"""
import os
import re
import subprocess
import sys

LAYERS = [
    ("api", ["api.c", "stats.c", "check.c", "dlopen.c", "cxx.c", "family.h"]),
    ("control", ["control.c", "control.h", "tunables.c", "tunables.h", "prof.c", "prof.h",
                 "observe.c", "observe.h"]),
    ("tcache", ["tcache.c", "tcache.h"]),
    ("harden", ["harden.c", "harden.h"]),
    ("arena", ["arena.c", "arena.h"]),
    ("engine", ["engine.c", "engine.h"]),
    ("sysmem", ["sysmem.c", "sysmem.h"]),
    ("bins", ["bins.c", "bins.h"]),
    ("release", ["release.c", "release.h"]),
    ("heap", ["heap.c", "heap.h", "owner.c", "owner.h", "meta.c", "meta.h", "thp.c", "thp.h"]),
    ("os", ["os.c", "os.h"]),
    ("base", ["base.h", "config.h", "chunk.h", "internal.h", "params.h",
              "lock.h", "lock.c", "error.c", "globals.c"]),
]
RANK = {f: i for i, (_, files) in enumerate(LAYERS) for f in files}
NAME = {f: name for name, files in LAYERS for f in files}


def layer_of(path):
    base = os.path.basename(path)
    if base.endswith(".o"):
        base = base[:-2]
    if base.endswith(".c.o"):
        base = base[:-2]
    return base


def check_includes(src):
    bad = []
    for f in sorted(os.listdir(src)):
        if not f.endswith((".c", ".h")):
            continue
        if f not in RANK:
            bad.append(f"{f}: not assigned to a layer (scripts/check_layers.py LAYERS)")
            continue
        for n, line in enumerate(open(os.path.join(src, f)), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            inc = os.path.basename(m.group(1))
            if inc == "tidemalloc.h":     # the public header: data types and numbers only
                continue
            if inc not in RANK:
                bad.append(f"{f}:{n}: includes {inc}, which is not assigned to a layer")
            elif RANK[inc] < RANK[f]:
                bad.append(f"{f}:{n}: includes {inc} ({NAME[inc]}), a layer above {NAME[f]}")
    return bad


def check_symbols(lib):
    out = subprocess.run(["nm", "-A", lib], check=True, capture_output=True, text=True).stdout
    defined, undefined = {}, []
    for line in out.splitlines():
        # "lib.a:member.c.o:  U sym" or "lib.a:member.c.o:0000 T sym"
        m = re.match(r"[^:]+:([^:]+):\s*(?:[0-9a-f]+\s+)?([A-Za-z])\s+(\S+)$", line)
        if not m:
            continue
        obj, kind, sym = m.groups()
        src = obj[:-2] if obj.endswith(".o") else obj
        if kind == "U":
            undefined.append((src, sym))
        elif kind.isupper() or kind in "bdrt":
            defined.setdefault(sym, src)
    bad = []
    for src, sym in undefined:
        owner = defined.get(sym)
        if owner is None or owner == src:
            continue                       # libc / system, or itself
        if src not in RANK or owner not in RANK:
            bad.append(f"{src}: references {sym} of {owner}; one of them has no layer")
        elif RANK[owner] < RANK[src]:
            bad.append(f"{src}: references {sym}, defined in {owner} ({NAME[owner]}), "
                       f"a layer above {NAME[src]}")
    return bad


def self_test():
    """The checker must flag an upward include (else it proves nothing)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "heap.c"), "w").write('#include "heap.h"\n#include "bins.h"\n')
        open(os.path.join(d, "bins.c"), "w").write('#include "bins.h"\n#include "heap.h"\n')
        bad = check_includes(d)
    ok = len(bad) == 1 and "heap.c:2: includes bins.h" in bad[0]
    print("check_layers self-test:", "ok" if ok else f"FAILED {bad}")
    return ok


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return 0 if self_test() else 1
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    bad = check_includes(sys.argv[1])
    checked = "includes"
    if len(sys.argv) > 2:
        bad += check_symbols(sys.argv[2])
        checked += " and symbol references"
    for b in bad:
        print("layer violation:", b)
    print(f"check_layers: {checked} checked, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
