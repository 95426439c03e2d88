#!/usr/bin/python3
"""tidemalloc profile: where does a program's live memory come from?

    tidemalloc profile [--lib PATH] [-o PREFIX] [--rate BYTES] [--top N]
                       [--seed N] [--no-symbolize] -- PROGRAM ARGS...

Runs PROGRAM on libtidemalloc.so (LD_PRELOAD) with allocation-site
profiling on (TIDEMALLOC_PROFILE, see tidemalloc(3)).  When the program
exits, the library writes the live sampled allocations; this command then
symbolises the frames (addr2line, else the ELF symbol tables read here),
prints the top allocation sites and writes

    PREFIX.collapsed      collapsed stacks with function names, root first,
                          "main;f;g BYTES" (flamegraph.pl, speedscope, ...)
    PREFIX.raw.collapsed  the library's own output: module+0xoffset frames
    PREFIX.txt            the library's text report (unsymbolised)

PREFIX defaults to ./tidemalloc-prof.PID.  The byte figures are estimates:
one allocation per RATE bytes (512 KiB) is sampled, at random, and each
live sample of s bytes counts s / (1 - exp(-s/RATE)) bytes, an unbiased
estimate of the live bytes of its stack.  Exit status: the program's.

Part of the `tidemalloc` command (tools/tidemalloc_cmd/, add_parser), and
runnable on its own:  /usr/bin/python3 profile.py [--lib PATH] -- PROGRAM
"""
import argparse
import bisect
import re
import os
import shutil
import struct
import subprocess
import tempfile
import sys

DEFAULT_TOP = 20


# ---- the library ---------------------------------------------------------
def find_library(explicit=None):
    """Path of libtidemalloc.so: --lib, $TIDEMALLOC_LIB, beside this file
    (installed: LIBDIR/tidemalloc/python/tidemalloc_cmd/ -> LIBDIR; source
    tree: tools/tidemalloc_cmd/ -> build/), else the dynamic linker's cache."""
    if explicit:
        return os.path.abspath(explicit) if os.path.exists(explicit) else None
    env = os.environ.get("TIDEMALLOC_LIB")
    if env and os.path.exists(env):
        return os.path.abspath(env)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    libdir = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    candidates += [os.path.join(libdir, n) for n in ("libtidemalloc.so.0", "libtidemalloc.so")]
    src = os.path.dirname(os.path.dirname(here))
    candidates += [os.path.join(src, "build", n) for n in ("libtidemalloc.so.0", "libtidemalloc.so")]
    for c in candidates:
        if os.path.exists(c):
            return c
    try:
        out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "libtidemalloc.so" in line and "=>" in line:
                return line.split("=>")[1].strip()
    except OSError:
        pass
    return None


# ---- ELF symbols (fallback when addr2line has no answer) --------------------
class ElfSymbols:
    """Function symbols of an ELF file (.symtab, else .dynsym), by address."""

    def __init__(self, path):
        self.starts, self.ends, self.names = [], [], []
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return   # 64-bit little-endian only (x86-64)
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        syms = []
        for want in (2, 11):   # SHT_SYMTAB, SHT_DYNSYM
            for s in secs:
                if s[1] != want:
                    continue
                strtab = secs[s[6]]
                str_off = strtab[4]
                off, size, entsize = s[4], s[5], s[9] or 24
                for k in range(size // entsize):
                    name, info, _other, shndx, value, ssize = struct.unpack_from(
                        "<IBBHQQ", data, off + k * entsize)
                    if (info & 0xF) not in (2, 10) or shndx == 0 or value == 0:
                        continue   # functions (and ifuncs) defined here
                    end = data.index(b"\0", str_off + name)
                    syms.append((value, ssize, data[str_off + name:end].decode("utf-8", "replace")))
            if syms:
                break
        syms.sort()
        for value, ssize, name in syms:
            self.starts.append(value)
            self.ends.append(value + max(ssize, 1))
            self.names.append(name)

    def lookup(self, addr):
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ends[i]:
            return self.names[i]
        return None


# ---- symbolisation ------------------------------------------------------------
class Symbolizer:
    def __init__(self, enabled=True):
        self.enabled = enabled
        self.cache = {}          # (module, off) -> (function, location)
        self.elf = {}
        self.addr2line = shutil.which("addr2line") if enabled else None

    def resolve(self, frames):
        """Symbolise every distinct module+0xoff frame in `frames`."""
        todo = {}
        for fr in frames:
            if fr in self.cache:
                continue
            mod, off = split_frame(fr)
            if off is None:
                self.cache[fr] = (fr, "")
                continue
            todo.setdefault(mod, []).append((fr, off))
        for mod, items in todo.items():
            results = {}
            if self.enabled and self.addr2line and os.path.exists(mod):
                results = self._addr2line(mod, items)
            for fr, off in items:
                func, loc = results.get(fr, (None, None))
                # Without debug information addr2line names the nearest
                # symbol before the address, often wrong for a static
                # function: the symbol tables, with sizes, decide then.
                if self.enabled and not loc and os.path.exists(mod):
                    if mod not in self.elf:
                        self.elf[mod] = ElfSymbols(mod)
                    func = self.elf[mod].lookup(off)
                if not func:
                    func = "%s+0x%x" % (os.path.basename(mod), off)
                self.cache[fr] = (func, loc or os.path.basename(mod))

    def _addr2line(self, mod, items):
        out = {}
        for start in range(0, len(items), 400):
            chunk = items[start:start + 400]
            try:
                res = subprocess.run([self.addr2line, "-f", "-C", "-e", mod] +
                                     ["0x%x" % off for _, off in chunk],
                                     capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                return out
            lines = res.stdout.splitlines()
            if len(lines) != 2 * len(chunk):
                return out
            for k, (fr, _) in enumerate(chunk):
                func, loc = lines[2 * k], lines[2 * k + 1]
                if func == "??":
                    func = None
                if loc.startswith("??"):
                    loc = None
                else:
                    loc = loc.split(" (discriminator")[0]
                    loc = os.path.basename(loc.split(":")[0]) + ":" + loc.split(":")[-1]
                out[fr] = (func, loc)
        return out

    def function(self, fr):
        return self.cache[fr][0]

    def location(self, fr):
        return self.cache[fr][1]


def split_frame(fr):
    """'module+0xoff' -> (module, off); (fr, None) if it has no offset."""
    i = fr.rfind("+0x")
    if i < 0:
        return fr, None
    try:
        return fr[:i], int(fr[i + 3:], 16)
    except ValueError:
        return fr, None


def read_collapsed(path):
    """[(frames root-first, bytes)] from a collapsed-stack file."""
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, value = line.rpartition(" ")
            stacks.append((stack.split(";") if stack else [], int(value)))
    return stacks


def summarize(stacks, sym, top):
    """Top sites by innermost frame's function: [(bytes, function, example frames)]."""
    sites = {}
    for frames, value in stacks:
        leaf = frames[-1] if frames else "[no stack]"
        key = sym.function(leaf) if frames else leaf
        entry = sites.setdefault(key, [0, None, 0])
        entry[0] += value
        if value > entry[2]:
            entry[1], entry[2] = frames, value
    ranked = sorted(((v[0], k, v[1]) for k, v in sites.items()), key=lambda t: -t[0])
    return ranked[:top]


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def report(prefix, top=DEFAULT_TOP, symbolize=True, out=sys.stdout):
    """Symbolise PREFIX.collapsed (keeping the raw file), print the top sites."""
    raw = prefix + ".raw.collapsed"
    os.replace(prefix + ".collapsed", raw)
    stacks = read_collapsed(raw)
    sym = Symbolizer(symbolize)
    sym.resolve({fr for frames, _ in stacks for fr in frames})
    with open(prefix + ".collapsed", "w") as f:
        for frames, value in stacks:
            names = [sym.function(fr).replace(";", ":").replace(" ", "_") for fr in frames]
            f.write("%s %d\n" % (";".join(names) or "[no stack]", value))
    total = sum(v for _, v in stacks)
    print("tidemalloc profile: estimated live bytes: %s (%d bytes) in %d stacks"
          % (human(total), total, len(stacks)), file=out)
    print("top allocation sites (function that called malloc; estimated live bytes):", file=out)
    for rank, (value, func, frames) in enumerate(summarize(stacks, sym, top), 1):
        pct = 100.0 * value / total if total else 0.0
        where = sym.location(frames[-1]) if frames else ""
        print("%3d %12d %10s %5.1f%%  %s  (%s)" % (rank, value, human(value), pct, func, where), file=out)
        chain = [sym.function(fr) for fr in reversed(frames[:-1])][:4]
        if chain:
            print("                                    <- " + " <- ".join(chain), file=out)
    print("collapsed stacks: %s.collapsed (raw: %s)" % (prefix, raw), file=out)
    return stacks


def merge_processes(procdir, prefix, top_pid):
    """Concatenate the per-process files p.PID.collapsed / p.PID.txt of a run
    into PREFIX.collapsed / PREFIX.txt (frames are module+0xoffset, valid
    across processes).  Returns [(pid, bytes)], the program first."""
    procs = []
    with open(prefix + ".collapsed", "w") as out, open(prefix + ".txt", "w") as txt:
        for name in sorted(os.listdir(procdir)):
            m = re.match(r"p\.(\d+)\.collapsed$", name)
            if not m:
                continue
            pid = int(m.group(1))
            total = 0
            with open(os.path.join(procdir, name)) as f:
                for line in f:
                    out.write(line)
                    try:
                        total += int(line.rsplit(" ", 1)[1])
                    except (IndexError, ValueError):
                        pass
            tpath = os.path.join(procdir, "p.%d.txt" % pid)
            if os.path.exists(tpath):
                with open(tpath) as f:
                    txt.write("# pid %d\n" % pid + f.read())
            procs.append((pid, total))
    if not procs:
        os.unlink(prefix + ".collapsed")
        os.unlink(prefix + ".txt")
    procs.sort(key=lambda pb: (pb[0] != top_pid, pb[0]))
    return procs


# ---- the command ----------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--lib", help="libtidemalloc.so to preload (default: found beside the command)")
    p.add_argument("-o", "--output", metavar="PREFIX",
                   help="write PREFIX.collapsed, PREFIX.raw.collapsed, PREFIX.txt "
                        "(default ./tidemalloc-prof.PID)")
    p.add_argument("--rate", type=int, metavar="BYTES",
                   help="mean bytes allocated between samples (default 524288)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N",
                   help="sites to print (default %d)" % DEFAULT_TOP)
    p.add_argument("--seed", type=int, metavar="N", help="seed of the sampling (reproducible runs)")
    p.add_argument("--no-symbolize", action="store_true", help="leave frames as module+0xoffset")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "profile", help="allocation-site heap profile of a program (live bytes by call stack)",
        description="Run PROGRAM on tidemalloc with allocation-site profiling and report, "
                    "at exit, the estimated live bytes by call site (top sites and "
                    "collapsed stacks for flame graphs).")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args):
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("tidemalloc profile: no program given (profile [options] -- PROGRAM ARGS)", file=sys.stderr)
        return 2
    lib = find_library(args.lib)
    if not lib:
        print("tidemalloc profile: libtidemalloc.so not found (use --lib PATH)", file=sys.stderr)
        return 2
    opts = []
    if args.rate:
        opts.append("rate:%d" % args.rate)
    if args.seed:
        opts.append("seed:%d" % args.seed)
    opts.append("top:%d" % max(args.top, 1))
    prefix = os.path.abspath(args.output) if args.output else None
    # Every process of the run (the program's children too: gcc runs cc1
    # and as) writes its own PROCPREFIX.PID.collapsed at exit; they are
    # merged below, so a child never overwrites its parent's profile.
    procdir = tempfile.mkdtemp(prefix="tidemalloc-prof.")
    out_opt = os.path.join(procdir, "p.%p")
    opts.append("out:" + out_opt)
    if prefix is not None and "," in prefix:
        print("tidemalloc profile: the output prefix may not contain ','", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["TIDEMALLOC_PROFILE"] = ",".join(opts)
    env["LD_PRELOAD"] = lib + ((" " + env["LD_PRELOAD"]) if env.get("LD_PRELOAD") else "")
    try:
        proc = subprocess.Popen(cmd, env=env)
    except OSError as e:
        shutil.rmtree(procdir, ignore_errors=True)
        print("tidemalloc profile: cannot run %s: %s" % (cmd[0], e), file=sys.stderr)
        return 127
    rc = proc.wait()
    if prefix is None:
        prefix = os.path.abspath("tidemalloc-prof.%d" % proc.pid)
    procs = merge_processes(procdir, prefix, proc.pid)
    shutil.rmtree(procdir, ignore_errors=True)
    if not procs:
        print("tidemalloc profile: no profile written (did the program exit "
              "through exit(), on libtidemalloc?)", file=sys.stderr)
        return rc if rc else 1
    if len(procs) > 1:
        print("tidemalloc profile: %d processes; live bytes at their exits: %s"
              % (len(procs), ", ".join("pid %d%s %s" % (pid, " (the program)" if pid == proc.pid
                                                        else "", human(b)) for pid, b in procs)),
              file=sys.stderr)
    report(prefix, args.top, not args.no_symbolize, out=sys.stderr)
    return rc if rc >= 0 else 128 - rc


def main(argv=None):
    p = argparse.ArgumentParser(prog="tidemalloc profile", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
