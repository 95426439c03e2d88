#!/usr/bin/python3
"""test_tool.py - the tidemalloc command (tools/) against real programs.

  test_tool.py PART BUILD_DIR SOURCE_DIR

PART:
  run       `tidemalloc run` on python3 (PYTHONMALLOC=malloc) holding a known
            amount, on sort (output identical to sort without the library),
            on bench/wl_frag; text and JSON reports, exit status passed on
  children  fork/exec children write their own reports, never the parent's
  stats     `tidemalloc stats PID` on tests/obs_target (4 threads churning)
            while it holds 8, 16, 24 MiB: live bytes within bounds of what
            it says it holds, figures refreshed and changing; --watch
  fork      a fork child of obs_target gets its own channel with its own
            figures; the parent's is untouched
  security  another uid (nobody) cannot read the channel; the same user
            cannot write, grow, shrink or map it writable (seals), and the
            process keeps publishing correct figures after the attempts
  heapmap   heap maps from an at-exit report and from a live process: the
            bytes drawn in each colour equal the map's totals, the totals
            agree with the report's figures, the PNG/SVG files are made
  install   `cmake --install` to a scratch prefix: the installed command
            finds its package and the installed library, and runs
Prints "ok: ..." per check; exit status 1 if any failed.
"""
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

PART, BUILD, SRC = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
TOOL = os.path.join(BUILD, "tidemalloc")
MIB = 1024 * 1024
failed = 0
passed = 0


def check(name, cond, detail=""):
    global failed, passed
    if cond:
        passed += 1
        print("ok:   %s" % name)
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail), file=sys.stderr)
    return cond


def tool(*args, env=None, check_rc=True, **kw):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    if env:
        e.update(env)
    r = subprocess.run([TOOL] + list(args), env=e, capture_output=True, text=True, **kw)
    if check_rc and r.returncode != 0:
        print("command failed (%d): %s\nstdout: %s\nstderr: %s" % (r.returncode, " ".join(args),
              r.stdout[-3000:], r.stderr[-3000:]), file=sys.stderr)
    return r


def need_matplotlib():
    r = subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], capture_output=True)
    if r.returncode != 0:
        print("FAIL: matplotlib is missing for /usr/bin/python3: apt-get install -y python3-matplotlib",
              file=sys.stderr)
        sys.exit(1)


def finish():
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


# ---- run ------------------------------------------------------------------------
# Python frees its own objects when it shuts down, so what it keeps to the
# exit is allocated with libc's malloc through ctypes (and never freed).
PY_HOLD = r"""
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
held = 0
for i in range(60000):                      # ~68 MiB in small blocks, kept to the exit
    n = 1000 + (i % 7) * 100
    libc.memset(libc.malloc(n), 1, n)
    held += n
for i in range(20):                         # mapped chunks, kept
    libc.memset(libc.malloc(400000), 2, 400000)
    held += 400000
tmp = [bytes(5000) for i in range(20000)]   # python objects, freed
del tmp
print("python held", held)
sys.exit(int(sys.argv[1]))
"""


def part_run():
    tmp = tempfile.mkdtemp(prefix="tool-run.")
    try:
        env = {"PYTHONMALLOC": "malloc"}
        rep = os.path.join(tmp, "py.json")
        r = tool("run", "--json", "--report", rep, "--", "/usr/bin/python3", "-c", PY_HOLD, "3",
                 env=env, check_rc=False)
        check("run: the program's exit status is passed on (3)", r.returncode == 3, r.stderr[-2000:])
        held = int(r.stdout.split()[-1])
        d = json.load(open(rep))
        t = d["totals"]
        print("      python held %.1f MiB; report: in use %.1f MiB, mapped %.1f MiB in %d, peak RSS %.1f MiB, "
              "syscalls %s" % (held / MIB, t["in_use"] / MIB, t["mmapped"] / MIB, t["mmapped_chunks"],
                               d["rss"]["peak"] / MIB, d["syscalls"]))
        check("run python: live bytes >= what python holds at exit", t["in_use"] >= held,
              "%d < %d" % (t["in_use"], held))
        check("run python: live bytes <= 1.5 x held + 16 MiB (the interpreter's own)",
              t["in_use"] <= 1.5 * held + 16 * MIB, "%d vs %d" % (t["in_use"], held))
        check("run python: the 20 blocks of 400 KB are mapped chunks", t["mmapped_chunks"] >= 20
              and t["mmapped"] >= 20 * 400000, str(t))
        check("run python: peak RSS >= live bytes, final RSS <= peak",
              d["rss"]["peak"] >= t["in_use"] and d["rss"]["current"] <= d["rss"]["peak"], str(d["rss"]))
        s = d["syscalls"]
        check("run python: the allocator's system calls are counted (brk and mmap > 0, munmap for "
              "the freed temporaries' trim or none)", s["brk"] > 0 and s["mmap"] >= 20, str(s))
        check("run python: report is the top process's", d["pid"] > 0 and "heapmap" in d)
        # text form
        r = tool("run", "--", "/usr/bin/python3", "-c", PY_HOLD, "0", env=env)
        for needle in ("RSS", "live", "free resident", "released", "arenas", "thread caches",
                       "size classes holding most memory", "system calls"):
            check("run python: text report shows '%s'" % needle, needle in r.stderr, r.stderr[-1500:])
        print("\n".join("      | " + l for l in r.stderr.splitlines()[:12]))

        # sort: same output as without the library
        data = os.path.join(tmp, "lines")
        with open(data, "w") as f:
            for i in range(300000):
                f.write("%d line %x\n" % ((i * 7919) % 300007, i * 2654435761 % (1 << 32)))
        out1, out2, rep = os.path.join(tmp, "o1"), os.path.join(tmp, "o2"), os.path.join(tmp, "sort.json")
        subprocess.run(["sort", "-S", "64M", "--parallel=2", "-n", data, "-o", out1], check=True)
        r = tool("run", "--json", "--report", rep, "--", "sort", "-S", "64M", "--parallel=2", "-n", data,
                 "-o", out2)
        check("run sort: exit 0", r.returncode == 0, r.stderr[-1000:])
        check("run sort: output identical to sort without tidemalloc",
              open(out1, "rb").read() == open(out2, "rb").read())
        d = json.load(open(rep))
        check("run sort: peak RSS >= 8 MiB (its 64 MiB buffer is touched as it fills)",
              d["rss"]["peak"] >= 8 * MIB, str(d["rss"]))
        check("run sort: the sort buffer was a mapped chunk or heap growth (mmap+brk calls > 0)",
              d["syscalls"]["mmap"] + d["syscalls"]["brk"] > 0, str(d["syscalls"]))

        # a program of the benchmark suite
        wl = os.path.join(BUILD, "bench", "wl_frag")
        rep = os.path.join(tmp, "frag.json")
        r = tool("run", "--json", "--report", rep, "--decay-ms", "0", "--", wl, "--quick")
        check("run wl_frag --quick: exit 0", r.returncode == 0, r.stderr[-1000:])
        d = json.load(open(rep))
        check("run wl_frag: --decay-ms 0 reached the library", d["params"]["decay_ms"] == 0, str(d["params"]))
        check("run wl_frag: madvise calls counted (decay 0 releases at once)", d["syscalls"]["madvise"] > 0,
              str(d["syscalls"]))
        check("run wl_frag: ranges given back counted, at most one per madvise, up to 1024 per "
              "process_madvise", 0 < d["syscalls"]["released_ranges"] <=
              d["syscalls"]["madvise"] + 1024 * d["syscalls"]["process_madvise"], str(d["syscalls"]))
        check("run wl_frag: peak system bytes >= final", d["totals"]["max_system"] >= d["totals"]["system"])
        r = tool("run", "--", "/bin/sh", "-c", "kill -9 $$", check_rc=False)
        check("run: a killed program gives 128+9 and says why there is no report",
              r.returncode == 137 and "wrote no report" in r.stderr, "%d %s" % (r.returncode, r.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


PY_FORK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
keep = [libc.malloc(2000) for i in range(21000)]     # parent: ~40 MiB kept to the exit
pid = os.fork()
if pid == 0:
    child = [libc.malloc(3000) for i in range(1000)]  # child: ~3 MiB, then a normal exit
    print("child", os.getpid(), flush=True)
    sys.exit(0)
os.waitpid(pid, 0)
print("parent", os.getpid(), flush=True)
"""


def part_children():
    tmp = tempfile.mkdtemp(prefix="tool-children.")
    try:
        env = {"PYTHONMALLOC": "malloc"}
        r = tool("run", "--keep", tmp, "--json", "--report", os.path.join(tmp, "out.json"), "--",
                 "/usr/bin/python3", "-c", PY_FORK, env=env)
        pids = dict(l.split() for l in r.stdout.split("\n") if l)
        parent, child = int(pids["parent"]), int(pids["child"])
        reps = sorted(f for f in os.listdir(tmp) if f.startswith("report."))
        check("children: fork child wrote its own report, beside the parent's",
              "report.%d.json" % parent in reps and "report.%d.json" % child in reps, str(reps))
        top = json.load(open(os.path.join(tmp, "out.json")))
        kid = json.load(open(os.path.join(tmp, "report.%d.json" % child)))
        check("children: the command reports the top process", top["pid"] == parent, str(top["pid"]))
        check("children: the parent's report is the parent's (its 40 MiB live, not the child's figures)",
              top["totals"]["in_use"] >= 40 * MIB and kid["pid"] == child, "%d" % top["totals"]["in_use"])
        # exec: a shell that runs python3 (a child process exec'ing another program)
        tmp2 = os.path.join(tmp, "exec")
        # (bash: dash leaves with _exit, which runs no destructor)
        r = tool("run", "--keep", tmp2, "--all", "--", "/bin/bash", "-c",
                 "/usr/bin/python3 -c 'x=[bytes(100) for i in range(1000)]'; echo done", env=env)
        reps = sorted(f for f in os.listdir(tmp2) if f.startswith("report."))
        check("children: bash and the python3 it ran wrote one report each", len(reps) == 2, str(reps))
        check("children: --all shows the child's report too", "child process" in r.stderr, r.stderr[-800:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


# ---- the running target -----------------------------------------------------------
class Target:
    """obs_target under LD_PRELOAD, driven line by line."""

    def __init__(self, phases, env=None):
        e = dict(os.environ)
        e["LD_PRELOAD"] = os.path.join(BUILD, "libtidemalloc.so")
        e.pop("TIDEMALLOC_REPORT", None)
        if env:
            e.update(env)
        self.p = subprocess.Popen([os.path.join(BUILD, "obs_target"), str(phases)], env=e,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.p.pid

    def line(self, timeout=60):
        # Lines are read from the descriptor into our own buffer: select()
        # on the buffered file object missed a line that arrived together
        # with the previous one (it sat in Python's buffer, not in the
        # pipe), and waited out the timeout.
        buf = getattr(self, "_buf", b"")
        deadline = time.time() + timeout
        while b"\n" not in buf:
            left = deadline - time.time()
            r, _, _ = select.select([self.p.stdout.fileno()], [], [], max(left, 0))
            if not r:
                raise RuntimeError("obs_target said nothing for %d s" % timeout)
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
        line, _, self._buf = buf.partition(b"\n")
        return line.decode().split()

    def say(self, s):
        self.p.stdin.write(s + "\n")
        self.p.stdin.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def close(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        return self.p.wait(60)


def channel_fds(pid):
    """The descriptors of pid that are a tidemalloc statistics channel."""
    out = []
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, f)).startswith("/memfd:tidemalloc-stats"):
                out.append(f)
        except OSError:
            pass
    return out


def _nogroup():
    import grp
    for g in ("nogroup", "nobody"):
        try:
            return str(grp.getgrnam(g).gr_gid)
        except KeyError:
            pass
    return "65534"


NOGROUP = _nogroup()


def stats_json(pid, as_user=None):
    cmd = [TOOL, "stats", str(pid), "--json"]
    if as_user:
        cmd = ["setpriv", "--reuid=" + as_user, "--regid=" + NOGROUP, "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r, (json.loads(r.stdout) if r.returncode == 0 else None)


def wait_fresh(pid, after_ms, timeout=10):
    """Stats refreshed after `after_ms` (wall clock ms)."""
    end = time.time() + timeout
    while time.time() < end:
        r, d = stats_json(pid)
        if d and d["_refreshed_ms"] > after_ms:
            return d
        time.sleep(0.2)
    return d


def part_stats():
    with Target(3) as t:
        seen = []
        for k in (1, 2, 3):
            words = t.line()
            held = int(words[1])
            d = wait_fresh(t.pid, time.time() * 1000 + 50)
            live = d["totals"]["in_use"]
            print("      phase %d: obs_target holds %.1f MiB; stats: live %.1f MiB, system %.1f MiB, "
                  "mapped %.1f MiB, arenas %d, caches %d, refresh #%d, bg thread %s" % (
                      k, held / MIB, live / MIB, d["totals"]["system"] / MIB, d["totals"]["mmapped"] / MIB,
                      d["totals"]["arenas"], d["tcache"]["caches"], d["_refreshes"],
                      d["params"]["background_running"]))
            check("stats phase %d: the figures are the target's (pid)" % k, d["pid"] == t.pid)
            check("stats phase %d: live >= held - churn in flight (4 blocks of < 64 KiB)" % k,
                  live >= held - 4 * 64 * 1024, "%d < %d" % (live, held))
            check("stats phase %d: live <= held x 1.25 + 8 MiB" % k, live <= held * 1.25 + 8 * MIB,
                  "%d vs %d" % (live, held))
            check("stats phase %d: RSS >= live" % k, d["rss"]["current"] >= live * 0.9, str(d["rss"]))
            seen.append((live, d["_refreshes"]))
            if k == 2:
                r = tool("stats", str(t.pid))
                check("stats text: shows the arenas table and system calls",
                      "arenas" in r.stdout and "system calls" in r.stdout, r.stdout[-1500:])
                print("\n".join("      | " + l for l in r.stdout.splitlines()[:10]))
                # (the background thread refreshes at most once a second, and
                # at most 1 % of its CPU time: a few refreshes in 5 s)
                p = subprocess.Popen([TOOL, "stats", str(t.pid), "--watch", "0.5", "--json"],
                                     stdout=subprocess.PIPE, text=True)
                time.sleep(5.2)
                p.terminate()
                lines = [json.loads(l) for l in p.communicate()[0].splitlines() if l.strip()]
                check("stats --watch 0.5: ~10 samples in 5 s, refreshes advancing",
                      len(lines) >= 6 and lines[-1]["_refreshes"] > lines[0]["_refreshes"],
                      str([l["_refreshes"] for l in lines]))
            t.say("next")
        check("stats: live bytes grow with the phases (8, 16, 24 MiB)",
              seen[0][0] < seen[1][0] < seen[2][0], str(seen))
        check("stats: the refresh count advances", seen[0][1] < seen[1][1] < seen[2][1], str(seen))
        check("stats: obs_target exits 0", t.close() == 0)
        r, _ = stats_json(t.pid)
        check("stats of an exited process fails with a message", r.returncode != 0 and "no process" in r.stderr,
              r.stderr)
    with Target(1, env={"TIDEMALLOC_STATS": "0"}) as t:      # opt-out
        t.line()
        time.sleep(1.5)
        r, _ = stats_json(t.pid)
        check("TIDEMALLOC_STATS=0: no channel, and stats says so",
              r.returncode != 0 and "no tidemalloc statistics channel" in r.stderr, r.stderr)
        t.say("next")
        check("TIDEMALLOC_STATS=0: obs_target exits 0", t.close() == 0)
    finish()


def part_fork():
    with Target(1) as t:
        t.line()
        before = wait_fresh(t.pid, time.time() * 1000)
        t.say("fork")
        w = t.line()
        check("fork: the child reports", w[0] == "child", str(w))
        child, held = int(w[1]), int(w[3])
        r, d = stats_json(child)
        check("fork: the child has its own channel", d is not None, r.stderr)
        if d:
            check("fork: the child's channel is the child's (pid)", d["pid"] == child, str(d["pid"]))
            check("fork: the child's live bytes: its 24 MiB, not the parent's ~8 MiB + 24",
                  held <= d["totals"]["in_use"] <= held + 8 * MIB + 8 * MIB,
                  "%d vs %d" % (d["totals"]["in_use"], held))
        fds = channel_fds(child)
        check("fork: the child holds exactly one channel descriptor (the parent's was closed)",
              len(fds) == 1, str(fds))
        r, p = stats_json(t.pid)
        check("fork: the parent's channel is still the parent's", p and p["pid"] == t.pid, r.stderr)
        check("fork: the parent's figures did not take the child's 24 MiB",
              p and p["totals"]["in_use"] < before["totals"]["in_use"] + 16 * MIB,
              "%s vs %s" % (p and p["totals"]["in_use"], before["totals"]["in_use"]))
        t.say("exit")
        w = t.line()
        check("fork: the child exited 0", w == ["child-exited", "0"], str(w))
        t.line()
        t.say("next")
        check("fork: obs_target exits 0", t.close() == 0)
    finish()


def part_security():
    import mmap
    with Target(1) as t:
        held = int(t.line()[1])
        d0 = wait_fresh(t.pid, time.time() * 1000)
        fds = channel_fds(t.pid)
        check("security: one channel descriptor, found by its name", len(fds) == 1, str(fds))
        path = "/proc/%d/fd/%s" % (t.pid, fds[0])
        # writes by the same user
        fd = os.open(path, os.O_RDWR)

        def refused(op):
            """op() raised PermissionError (the seals said no)."""
            try:
                op()
                return False
            except PermissionError:
                return True

        def map_shared_and_write():
            m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            m[0:8] = b"BADMAGIC"
            m.close()
        check("security: write() to the channel is refused (sealed)",
              refused(lambda: os.pwrite(fd, b"X" * 64, 0)))
        check("security: shrinking the channel is refused (the process's stores cannot fault)",
              refused(lambda: os.ftruncate(fd, 0)))
        check("security: a writable shared mapping of the channel is refused",
              refused(map_shared_and_write))
        try:
            m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
            m[0:8] = b"BADMAGIC"          # a private copy: must not reach the process's pages
            m.close()
        except OSError:
            pass
        os.close(fd)
        with open(path, "rb") as f:
            magic = f.read(8)
        check("security: the channel's contents are untouched after the attempts", magic == b"TIDESTAT", magic)
        d1 = wait_fresh(t.pid, time.time() * 1000)
        check("security: the process keeps publishing correct figures",
              d1 and d1["_refreshes"] > d0["_refreshes"] and d1["totals"]["in_use"] >= held - 4 * 65536,
              str(d1 and d1["totals"]))
        # another uid
        if os.geteuid() != 0:
            print("SKIP: reading as another uid needs root to switch to 'nobody' (CI runs as root)")
            t.say("next")
            t.close()
            print("%d passed, %d failed" % (passed, failed))
            sys.exit(1 if failed else 77)
        r, d = stats_json(t.pid, as_user="nobody")
        check("security: user nobody cannot read root's process's channel",
              r.returncode != 0 and d is None and "permission denied" in r.stderr, r.stdout + r.stderr)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=" + NOGROUP, "--clear-groups",
                            "/usr/bin/python3", "-c", "open(%r,'rb').read(8)" % path],
                           capture_output=True, text=True)
        check("security: nobody cannot open /proc/PID/fd/N of the channel directly",
              r.returncode != 0 and "PermissionError" in r.stderr, r.stderr[-500:])
        # and the same user can (nobody's own process)
        e = dict(os.environ, LD_PRELOAD=os.path.join(BUILD, "libtidemalloc.so"))
        p = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=" + NOGROUP, "--clear-groups",
                              os.path.join(BUILD, "obs_target"), "1"], env=e, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        w = p.stdout.readline().split()
        npid = int(w[3])
        time.sleep(1.5)
        r, d = stats_json(npid, as_user="nobody")
        check("security: nobody can read the channel of nobody's own process", d is not None and d["pid"] == npid,
              r.stderr)
        r, d = stats_json(npid)
        check("security: root can read any process's channel", d is not None and d["pid"] == npid, r.stderr)
        p.stdin.close()
        p.wait(60)
        t.say("next")
        check("security: obs_target exits 0", t.close() == 0)
    finish()


# ---- heapmap ------------------------------------------------------------------------
def check_map_data(label, data, hmap):
    for state in ("inuse", "free", "released", "top", "mapped"):
        check("%s: bytes drawn as %s = the map's total" % (label, state),
              data["drawn"][state] == hmap["totals"][state],
              "%d vs %d" % (data["drawn"][state], hmap["totals"][state]))
    tot = hmap["totals"]
    check("%s: heap pages add up to the arenas' system bytes" % label,
          tot["inuse"] + tot["free"] + tot["released"] + tot["top"] == hmap["arena_system"],
          "%s vs %d" % (tot, hmap["arena_system"]))
    check("%s: released pages = the arenas' released bytes" % label,
          tot["released"] == hmap["arena_released"], "%d vs %d" % (tot["released"], hmap["arena_released"]))
    check("%s: mapped chunks found = the mapped bytes" % label, tot["mapped"] == hmap["mmapped"],
          "%d vs %d" % (tot["mapped"], hmap["mmapped"]))
    check("%s: not truncated" % label, not data["truncated"])


# A mapped chunk whose mapping the kernel merged with a foreign anonymous
# mapping right below it (an earlier heap map, reading /proc/self/maps,
# missed it: CI, 653366a), and a memalign'd mapped chunk with a lead.
PY_MERGED = r"""
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.mallopt(-3, 131072)                    # M_MMAP_THRESHOLD: 400000 B mapped, always
for i in range(20):                         # until the pages below a chunk are free
    p = libc.malloc(400000)
    ctypes.memset(p, 2, 400000)
    want = ((p - 16) & ~4095) - 8192
    q = libc.mmap(want, 8192, 3, 0x22 | 0x100000, -1, 0)  # MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE
    if q == want:
        break
ctypes.memset(q, 1, 8192)
merged = any(int(l.split("-")[0], 16) <= q and p < int(l.split()[0].split("-")[1], 16)
             for l in open("/proc/self/maps"))
m = ctypes.c_void_p()
libc.posix_memalign(ctypes.byref(m), 1 << 16, 300000)
print("foreign mapping at", hex(q), "chunk", hex(p), "one mapping:", merged, "memalign", hex(m.value))
"""


def part_heapmap():
    need_matplotlib()
    tmp = tempfile.mkdtemp(prefix="tool-heapmap.")
    try:
        r = tool("run", "--keep", tmp, "--", "/usr/bin/python3", "-c", PY_MERGED, env={"PYTHONMALLOC": "malloc"})
        check("heapmap (merged): the kernel merged the foreign mapping with the chunk's",
              "one mapping: True" in r.stdout, r.stdout + r.stderr)
        rep = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("report.")][0]
        d = json.load(open(rep))
        hm = d["heapmap"]
        check("heapmap (merged): every mapped chunk drawn (merged mapping, memalign lead)",
              hm["totals"]["mapped"] == hm["mmapped"] == d["totals"]["mmapped"] and
              d["totals"]["mmapped_chunks"] >= 2,
              "%d vs %d vs %d" % (hm["totals"]["mapped"], hm["mmapped"], d["totals"]["mmapped"]))
        os.unlink(rep)
        png = os.path.join(tmp, "run.png")
        r = tool("run", "--keep", tmp, "--heapmap", png, "--decay-ms", "200", "--", "/usr/bin/python3", "-c",
                 PY_HOLD + "", "0", env={"PYTHONMALLOC": "malloc"})
        check("heapmap: run --heapmap made a PNG", os.path.isfile(png) and
              open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n")
        rep = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("report.")][0]
        d = json.load(open(rep))
        svg, data = os.path.join(tmp, "map.svg"), os.path.join(tmp, "data.json")
        r = tool("heapmap", rep, "-o", svg, "--data", data)
        check("heapmap REPORT -o map.svg: an SVG", r.returncode == 0 and "<svg" in open(svg).read(2000))
        dd = json.load(open(data))
        hm = d["heapmap"]
        print("      report map: %s; %d runs in %d segments; drawn %s" % (
            hm["totals"], hm["runs"], hm["nsegments"], dd["drawn"]))
        check_map_data("heapmap (report)", dd, hm)
        t = d["totals"]
        check("heapmap (report): the map's released bytes = the report's released bytes",
              hm["totals"]["released"] == t["released"], "%d vs %d" % (hm["totals"]["released"], t["released"]))
        check("heapmap (report): the map's mapped bytes = the report's mapped bytes",
              hm["totals"]["mapped"] == t["mmapped"], "%d vs %d" % (hm["totals"]["mapped"], t["mmapped"]))
        check("heapmap (report): pages with chunks in use hold the live heap bytes",
              hm["totals"]["inuse"] + hm["totals"]["mapped"] >= t["in_use"] - t["fast"],
              "%d vs %d" % (hm["totals"]["inuse"] + hm["totals"]["mapped"], t["in_use"]))
        check("heapmap (report): free resident + top pages <= free resident bytes - fast bins",
              hm["totals"]["free"] + hm["totals"]["top"] <= t["free_resident"],
              "%d vs %d" % (hm["totals"]["free"] + hm["totals"]["top"], t["free_resident"]))
        # live
        with Target(2, env={"TIDEMALLOC_HEAPMAP_MS": "500"}) as tg:
            tg.line()
            tg.say("next")
            tg.line()
            time.sleep(2.5)
            live_png, live_data = os.path.join(tmp, "live.png"), os.path.join(tmp, "live.json")
            r = tool("heapmap", str(tg.pid), "-o", live_png, "--data", live_data)
            check("heapmap PID: a PNG of the live process", r.returncode == 0 and os.path.isfile(live_png),
                  r.stderr)
            ld = json.load(open(live_data))
            with open("/proc/%d/fd/%s" % (tg.pid, channel_fds(tg.pid)[0]), "rb") as f:
                sys.path.insert(0, BUILD)
                from tidemalloc_cmd import common
                hm = common.read_region(f, common.HEAPMAP)
            print("      live map: %s; drawn %s" % (hm["totals"], ld["drawn"]))
            check("heapmap (live): several arenas (4 threads)", len({s["arena"] for s in hm["segments"]}) >= 2,
                  str({s["arena"] for s in hm["segments"]}))
            for state in ("inuse", "free", "released", "top", "mapped"):
                check("heapmap (live): drawn %s = total (same refresh or a newer one)" % state,
                      ld["drawn"][state] == ld["totals"][state])
            check("heapmap (live): pages add up to the arenas' system bytes",
                  sum(hm["totals"][s] for s in ("inuse", "free", "released", "top")) == hm["arena_system"])
            check("heapmap (live): mapped chunks >= 8 MiB in use pages (16 MiB held in 2-64 KiB blocks)",
                  hm["totals"]["inuse"] + hm["totals"]["mapped"] >= 15 * MIB, str(hm["totals"]))
            tg.say("next")
            check("heapmap: obs_target exits 0", tg.close() == 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


def part_install():
    tmp = tempfile.mkdtemp(prefix="tool-install.")
    try:
        b, prefix = os.path.join(tmp, "b"), os.path.join(tmp, "prefix")
        subprocess.run(["cmake", "-S", SRC, "-B", b, "-DCMAKE_INSTALL_PREFIX=" + prefix, "-DTIDE_BUILD_TESTS=OFF",
                        "-DTIDE_BUILD_BENCH=OFF"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", b, "-j", "2", "--target", "tidemalloc", "tidemalloc_static"],
                       check=True, capture_output=True)
        subprocess.run(["cmake", "--install", b], check=True, capture_output=True)
        cmd = os.path.join(prefix, "bin", "tidemalloc")
        libdirs = [d for d in os.listdir(prefix) if d.startswith("lib")]
        pkg = [os.path.join(dp) for dp, dn, fn in os.walk(prefix) if dp.endswith("tidemalloc/python/tidemalloc_cmd")]
        check("install: bin/tidemalloc and <libdir>/tidemalloc/python/tidemalloc_cmd installed",
              os.access(cmd, os.X_OK) and len(pkg) == 1, str(pkg))
        check("install: the man page tidemalloc(1)", os.path.isfile(os.path.join(prefix, "share", "man", "man1",
                                                                                   "tidemalloc.1")))
        e = dict(os.environ)
        e.pop("TIDEMALLOC_LIB", None)
        rep = os.path.join(tmp, "r.json")
        r = subprocess.run([cmd, "run", "--json", "--report", rep, "--", "/bin/bash", "-c", "echo hi"],
                           env=e, capture_output=True, text=True, cwd=tmp)
        check("install: the installed command runs a program on the installed library",
              r.returncode == 0 and r.stdout == "hi\n" and json.load(open(rep))["pid"] > 0, r.stderr)
        r = subprocess.run([cmd, "--help"], capture_output=True, text=True)
        for sub in ("run", "stats", "heapmap"):
            check("install: subcommand %s listed" % sub, sub in r.stdout, r.stdout)
        print("      installed under %s: %s" % (prefix, ", ".join(sorted(libdirs))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


PARTS = {"run": part_run, "children": part_children, "stats": part_stats, "fork": part_fork,
         "security": part_security, "heapmap": part_heapmap, "install": part_install}
if __name__ == "__main__":
    if not os.access(TOOL, os.X_OK):
        print("FAIL: %s missing (built by cmake into the build tree)" % TOOL)
        sys.exit(1)
    PARTS[PART]()
