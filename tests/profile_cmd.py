#!/usr/bin/python3
"""profile_cmd.py TOOLS_DIR LIB TEST_PROFILE WORKDIR - the `tidemalloc profile`
command (tools/tidemalloc_cmd/profile.py) end to end:

 1. on test_profile --keep (keep_big holds 64 MiB in 4 KiB blocks, three
    other functions 16 MiB together): the top site printed is keep_big,
    its estimate within 25% of 64 MiB (seed fixed; ~128 samples, relative
    standard deviation ~9%), and the symbolised collapsed file names it;
 2. on python3 with PYTHONMALLOC=malloc, a script that keeps 100000 bytes
    objects of ~1 KB and asks for a report itself (ctypes, tide_profile_dump):
    the estimate is within 25% of the bytes the script measures, the stacks
    are deep (the unwinder walks python's frames without frame pointers),
    and symbolising finds _PyEval_EvalFrameDefault in them; the command's
    own at-exit report is written and the exit status is python's;
 3. a program that never allocates still gets a (empty) profile;
 4. the exit status of the program is passed on.
"""
import os
import re
import subprocess
import sys

tools, lib, prog, work = sys.argv[1:5]
cmd = [sys.executable, os.path.join(tools, "tidemalloc_cmd", "profile.py"), "--lib", lib]
os.makedirs(work, exist_ok=True)
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


# 1. the known top site
prefix = os.path.join(work, "known")
r = subprocess.run(cmd + ["--seed", "12345", "-o", prefix, "--", prog, "--keep"],
                   capture_output=True, text=True)
print(r.stderr)
check(r.returncode == 0, "test_profile --keep exits 0 under the command")
m = re.search(r"^\s+1\s+(\d+)\s.*%\s+(\S+)\s", r.stderr, re.M)
check(m is not None and m.group(2) == "keep_big",
      "top site is keep_big (got %s)" % (m.group(2) if m else None))
if m:
    ratio = int(m.group(1)) / (64 << 20)
    check(0.75 < ratio < 1.25, "keep_big estimate / 64 MiB = %.3f, within 25%%" % ratio)
with open(prefix + ".collapsed") as f:
    text = f.read()
check(re.search(r"(^|;)main;keep_big \d+$", text, re.M) is not None,
      "symbolised collapsed stacks have main;keep_big")
check(os.path.exists(prefix + ".raw.collapsed") and os.path.exists(prefix + ".txt"),
      "raw collapsed stacks and text report kept")

# 1b. a program run by a shell that exits after it: every process writes its
# own profile and the command merges them (the child's keep_big is not
# overwritten by the parent's empty profile)
prefix = os.path.join(work, "children")
r = subprocess.run(cmd + ["--seed", "12345", "-o", prefix, "--", "/bin/sh", "-c",
                          '"$0" --keep; /bin/true', prog], capture_output=True, text=True)
print(r.stderr)
check(r.returncode == 0, "sh -c 'test_profile --keep; true' exits 0 under the command")
check(re.search(r"tidemalloc profile: \d+ processes", r.stderr) is not None,
      "several processes reported")
m = re.search(r"^\s+1\s+(\d+)\s.*%\s+(\S+)\s", r.stderr, re.M)
check(m is not None and m.group(2) == "keep_big",
      "child's top site keep_big survives the parent's exit (got %s)" % (m.group(2) if m else None))

# 2. python3
live = os.path.join(work, "py-live")
script = (
    "import ctypes, sys\n"
    "keep = [bytes(1000) + str(i).encode() for i in range(100000)]\n"
    "true = sum(sys.getsizeof(b) for b in keep)\n"
    "rc = ctypes.CDLL(None).tide_profile_dump(%r.encode())\n"
    "print('TRUE', true, 'RC', rc)\n"
    "sys.exit(7)\n" % live)
prefix = os.path.join(work, "py")
env = dict(os.environ, PYTHONMALLOC="malloc")
r = subprocess.run(cmd + ["-o", prefix, "--", "/usr/bin/python3", "-c", script],
                   capture_output=True, text=True, env=env)
print(r.stdout, r.stderr)
check(r.returncode == 7, "python's exit status (7) passed on (got %d)" % r.returncode)
m = re.search(r"TRUE (\d+) RC (-?\d+)", r.stdout)
check(m is not None and m.group(2) == "0", "tide_profile_dump from python returned 0")
check(os.path.exists(prefix + ".collapsed"), "at-exit report of python written")
if m and os.path.exists(live + ".collapsed"):
    sys.path.insert(0, os.path.join(tools, "tidemalloc_cmd"))
    import importlib.util
    spec = importlib.util.spec_from_file_location("tm_profile", os.path.join(tools, "tidemalloc_cmd", "profile.py"))
    prof = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prof)
    stacks = prof.read_collapsed(live + ".collapsed")
    total = sum(v for _, v in stacks)
    truth = int(m.group(1))
    check(0.75 < total / truth < 1.25,
          "python live estimate %d / true %d = %.3f, within 25%%" % (total, truth, total / truth))
    deepest = max(len(f) for f, _ in stacks)
    check(deepest >= 8, "python stacks are deep (deepest: %d frames)" % deepest)
    prof.report(live, 5)
    with open(live + ".collapsed") as f:
        text = f.read()
    check("_PyEval_EvalFrameDefault" in text, "symbolised python stacks show _PyEval_EvalFrameDefault")

# 3. a program that never calls malloc still gets its (empty) profile
prefix = os.path.join(work, "true")
r = subprocess.run(cmd + ["-o", prefix, "--", "/bin/true"], capture_output=True, text=True)
check(r.returncode == 0 and os.path.exists(prefix + ".collapsed"),
      "/bin/true: exit 0 and a profile written (rc %d)" % r.returncode)

# 4. exit status of a failing program
r = subprocess.run(cmd + ["-o", os.path.join(work, "sh"), "--", "/bin/sh", "-c", "exit 3"],
                   capture_output=True, text=True)
check(r.returncode == 3, "exit status 3 passed on (got %d)" % r.returncode)

print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)
