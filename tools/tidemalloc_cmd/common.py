"""Helpers shared by the subcommands: finding libtidemalloc.so, reading the
statistics channel of a running process, formatting the figures."""
import glob
import json
import os
import struct
import sys
import time

CHANNEL_NAME = "/memfd:tidemalloc-stats"
MAGIC = b"TIDESTAT"
HEADER = struct.Struct("<8sIIQQQ24x")           # magic version header_size pid size nregions
REGION = struct.Struct("<QQQQQQ16x")           # seq offset cap len time_ms count
REGION_OFF = HEADER.size
SUMMARY, HEAPMAP = 0, 1


class Error(Exception):
    """A message for the user (no traceback)."""


# ---- the library ---------------------------------------------------------------
def find_library():
    """libtidemalloc.so: $TIDEMALLOC_LIB, else beside the command (build
    tree), else the installed libdir (<libdir>/tidemalloc/python holds this
    package), else build/ of a source tree."""
    env = os.environ.get("TIDEMALLOC_LIB")
    if env:
        if not os.path.isfile(env):
            raise Error("TIDEMALLOC_LIB=%s: no such file" % env)
        return os.path.realpath(env)
    cmd_dir = os.path.dirname(os.path.realpath(sys.argv[0]))
    pkg_dir = os.path.dirname(os.path.realpath(__file__))
    libdir = os.path.dirname(os.path.dirname(os.path.dirname(pkg_dir)))
    candidates = [os.path.join(cmd_dir, "libtidemalloc.so"),
                  os.path.join(libdir, "libtidemalloc.so"),
                  os.path.join(libdir, "libtidemalloc.so.0"),
                  os.path.join(os.path.dirname(cmd_dir), "build", "libtidemalloc.so")]
    for c in candidates:
        if os.path.isfile(c):
            return os.path.realpath(c)
    raise Error("cannot find libtidemalloc.so (looked at %s); set TIDEMALLOC_LIB"
                % ", ".join(candidates))


# ---- the statistics channel -------------------------------------------------------
def open_channel(pid):
    """The channel of process pid, opened read-only: /proc/PID/fd/N whose
    link reads "/memfd:tidemalloc-stats (deleted)"."""
    fddir = "/proc/%d/fd" % pid
    if not os.path.isdir("/proc/%d" % pid):
        raise Error("no process %d" % pid)
    try:
        fds = os.listdir(fddir)
    except PermissionError:
        raise Error("permission denied reading %s: only the same user (or root) can read the "
                    "statistics of process %d" % (fddir, pid))
    found = []
    for fd in fds:
        try:
            link = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if link.startswith(CHANNEL_NAME):
            found.append(int(fd))
    for fd in sorted(found):
        try:
            f = open(os.path.join(fddir, str(fd)), "rb", buffering=0)
        except PermissionError:
            raise Error("permission denied opening the channel of process %d: only the same "
                        "user (or root) can read it" % pid)
        hdr = HEADER.unpack(os.pread(f.fileno(), HEADER.size, 0))
        if hdr[0] == MAGIC and hdr[3] == pid:
            if hdr[1] != 1:
                raise Error("process %d: channel version %d, this command reads version 1"
                            % (pid, hdr[1]))
            return f
        f.close()        # inherited from a parent that forked: not this process's
    raise Error("process %d has no tidemalloc statistics channel: it does not use tidemalloc, "
                "runs with TIDEMALLOC_STATS=0, has made fewer than 64 allocator slow-path "
                "calls, or closed the descriptor (see tidemalloc(1))" % pid)


def read_region(f, index, tries=200):
    """One region's JSON, or None if never written; a seqlock read: the
    sequence number must be even and the same before and after the copy."""
    fd = f.fileno()
    off = REGION_OFF + index * REGION.size
    for _ in range(tries):
        seq, data_off, cap, length, time_ms, count = REGION.unpack(os.pread(fd, REGION.size, off))
        if count == 0 and seq == 0:
            return None
        if seq & 1:
            time.sleep(0.001)
            continue
        data = os.pread(fd, min(length, cap), data_off)
        seq2 = REGION.unpack(os.pread(fd, REGION.size, off))[0]
        if seq2 == seq:
            d = json.loads(data.decode())
            d["_refreshed_ms"] = time_ms
            d["_refreshes"] = count
            return d
    raise Error("the channel kept changing while being read (%d tries)" % tries)


def read_process(pid, want_map=False):
    """(summary, heapmap or None) of a running process."""
    with open_channel(pid) as f:
        summary = read_region(f, SUMMARY)
        hmap = read_region(f, HEAPMAP) if want_map else None
    if summary is None:
        raise Error("process %d: the channel exists but holds no figures yet" % pid)
    return summary, hmap


def load_report(path):
    with open(path) as f:
        return json.load(f)


# ---- formatting -----------------------------------------------------------------
def size(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024


def class_label(c):
    if c["bin"] < 0:
        return "mapped chunks"
    if c["from"] == c["to"]:
        return "%d B" % c["from"]
    return "%d-%d B" % (c["from"], c["to"])


def format_summary(d, hmap=None, title=None):
    """The text report: the same for `run` (at exit) and `stats` (live)."""
    if d.get("overflow"):
        return "tidemalloc: pid %d: the figures did not fit the report buffer" % d["pid"]
    if d.get("file_limit"):
        return ("tidemalloc: pid %d: no figures: the report did not fit the file-size limit "
                "(RLIMIT_FSIZE, ulimit -f)" % d["pid"])
    if d.get("busy"):
        return ("tidemalloc: pid %d: no figures: at exit a refresh of the statistics was still "
                "running after 5 s (exit from a signal handler?)" % d["pid"])
    t = d["totals"]
    out = []
    out.append(title or "tidemalloc: pid %d" % d["pid"])
    out.append("  RSS            peak %s, now %s" % (size(d["rss"]["peak"]), size(d["rss"]["current"])))
    out.append("  live           %s in use (heap chunks in use + mapped chunks; thread caches count as in use)"
               % size(t["in_use"]))
    out.append("  free resident  %s (free chunks, top and fast bins whose pages are still in RAM)"
               % size(t["free_resident"]))
    out.append("  released       %s (free, pages given back to the system)" % size(t["released"]))
    out.append("  heaps          %s in %d heap(s) of %d arena(s), peak %s; mapped chunks %s in %d (peak %s)"
               % (size(t["system"]), t["heaps"], t["arenas"], size(t["max_system"]),
                  size(t["mmapped"]), t["mmapped_chunks"], size(t["max_mmapped"])))
    tc = d["tcache"]
    out.append("  thread caches  %d cache(s)%s" % (
        tc["caches"], (", %s" % size(tc["bytes"])) if tc["known"] else " (bytes not known in this build)"))
    out.append("  arenas")
    out.append("    %3s %10s %10s %10s %10s %10s %10s %6s" %
               ("#", "system", "in use", "free res.", "released", "top", "fast bins", "heaps"))
    for a in d["arenas"]:
        out.append("    %3d %10s %10s %10s %10s %10s %10s %6d" % (
            a["index"], size(a["system"]), size(a["in_use"]), size(a["free_resident"]),
            size(a["released"]), size(a["top"]), size(a["fast"]), a["heaps"]))
    if d.get("arenas_omitted"):
        out.append("    ... and %d more arenas (in the totals)" % d["arenas_omitted"])
    used = (hmap or {}).get("used_classes")
    if used:
        age = ""
        if hmap and "_refreshed_ms" in hmap:
            age = ", %.1f s ago" % max(0.0, (time.time() * 1000 - hmap["_refreshed_ms"]) / 1000)
        out.append("  size classes holding most memory in use (chunk sizes%s)" % age)
        for c in used[:8]:
            out.append("    %-18s %9d chunks %10s" % (class_label(c), c["count"], size(c["bytes"])))
    free = d.get("free_classes") or []
    if free:
        out.append("  free chunks by size class (bins and fast bins; top not included)")
        for c in free[:5]:
            out.append("    %-18s %9d chunks %10s" % (class_label(c), c["count"], size(c["bytes"])))
    s = d["syscalls"]
    out.append("  system calls   mmap %d, munmap %d, mprotect %d, mremap %d, madvise %d, brk %d"
               % (s["mmap"], s["munmap"], s["mprotect"], s["mremap"], s["madvise"], s["brk"])
               + (", process_madvise %d" % s["process_madvise"] if s.get("process_madvise") else ""))
    if s.get("released_ranges"):
        out.append("  page releases  %d ranges given back (MADV_DONTNEED)" % s["released_ranges"])
    t = d.get("thp")
    if t and (t["mode"] == "always" or t["huge_heaps"]):
        if t["marking"]:
            what = "released ranges kept off huge pages: %d marks%s" % (
                t["marks"], ", %d of whole heaps" % t["whole_marks"] if t["whole_marks"] else "")
        else:
            what = "released ranges not marked (TIDEMALLOC_THP=0, or no huge pages on the heap)"
        out.append("  huge pages     THP %s (%s)%s; %s"
                   % (t["mode"], size(t["unit"]), ", heaps advised huge" if t["huge_heaps"] else "", what))
    p = d["params"]
    out.append("  settings       decay_ms %d, background thread %s (%s), arena_max %s"
               % (p["decay_ms"], {0: "off", 1: "on", 2: "auto"}.get(p["background"], p["background"]),
                  "running" if p["background_running"] else "not running",
                  p["arena_max"] or "auto"))
    return "\n".join(out)


def need_matplotlib():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        return matplotlib
    except ImportError as e:
        raise Error("matplotlib is needed to draw the heap map (%s); on Debian: "
                    "apt-get install python3-matplotlib (and run the command with /usr/bin/python3)"
                    % e)


def other_reports(directory, top_pid):
    return sorted(int(p.split(".")[-2]) for p in glob.glob(os.path.join(directory, "report.*.json"))
                  if int(p.split(".")[-2]) != top_pid)
