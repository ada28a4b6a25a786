"""W6: command-line job batches: `onebox run` against GNU parallel and `xargs -P` at the same
parallelism.

Cases (`python w6_jobs.py CASE SIZE`; the onebox CLI is $ONEBOX_CLI):
  onebox_true,   parallel_true,   xargs_true     SIZE jobs of `true`: the per-job overhead
  onebox_true_tmpfs                              the same with the results tree on tmpfs
                                                 (/dev/shm): onebox without the disk
  onebox_sleep,  parallel_sleep,  xargs_sleep    SIZE jobs of `sleep 0.05`: scheduling at
                                                 the parallelism limit

onebox runs Saturn Run's two files (written to a temporary directory) with its results tree
(stdout, stderr, status per task, a summary); GNU parallel and xargs write nothing. Every
repetition checks that every job ran and exited 0.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402

COMMANDS = {"true": "true", "sleep": "sleep 0.05"}


# The results trees of the repetitions, removed when the script ends, not between
# repetitions: ext4 allocates a new inode slowly right after thousands were deleted (it skips
# recently deleted ones, reading their inode table blocks), so deleting one repetition's
# 5,000 files just before the next made each repetition slower than the one before (0.46 s
# growing to 2.6 s for 1,000 jobs on this machine's ext4, against a steady 0.40 s on tmpfs).
# A batch's results seldom follow a mass deletion; the cost of writing the tree is kept.
_KEEP = []
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _KEEP])


def _onebox(command, n, threads, where=None):
    cli = os.environ.get("ONEBOX_CLI", "onebox")
    # Each repetition's tree is kept until the process ends (see _KEEP).
    d = tempfile.mkdtemp(prefix="onebox-w6-", dir=where)
    _KEEP.append(d)
    with open(os.path.join(d, "run.yaml"), "w") as f:
        f.write("executor:\n  class_spec: LocalExecutor\nresults:\n  class_spec: LocalResults\n"
                f"  path: {d}/results/{{name}}\n")
    with open(os.path.join(d, "tasks.yaml"), "w") as f:
        f.write("tasks:\n" + "".join(f"  - command: {command}\n    name: t{i}\n" for i in range(n)))
    env = dict(os.environ, ONEBOX_STATE_DIR=os.path.join(d, "state"))
    t0 = time.perf_counter()
    p = subprocess.run([cli, "run", "run.yaml", "tasks.yaml", "--name", "w6", "-q",
                        "--max-parallel", str(threads)], cwd=d, env=env,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    _peer.check(p.returncode == 0, f"onebox run exited {p.returncode}: {p.stderr[-500:]}")
    statuses = [open(os.path.join(d, "results", "w6", f"t{i}", "status")).read().strip()
                for i in range(n)]
    _peer.check(all(s == "0" for s in statuses), "a job did not exit 0")
    return dict(system="onebox run", count=n, unit="job", seconds=seconds)


def _shell(system, argv, n):
    t0 = time.perf_counter()
    p = subprocess.run(argv, input="".join(f"{i}\n" for i in range(n)), capture_output=True,
                       text=True)
    seconds = time.perf_counter() - t0
    _peer.check(p.returncode == 0, f"{system} exited {p.returncode}: {p.stderr[-500:]}")
    return dict(system=system, count=n, unit="job", seconds=seconds)


def _parallel(command, n, threads):
    _peer.check(shutil.which("parallel") is not None, "GNU parallel is not installed")
    return _shell(f"GNU parallel -j{threads}", ["parallel", f"-j{threads}", "-N0"] + command.split(), n)


def _xargs(command, n, threads):
    return _shell(f"xargs -P{threads}", ["xargs", "-P", str(threads), "-I{}"] + command.split(), n)


def _onebox_tmpfs(command, n, threads):
    _peer.check(os.path.isdir(TMPFS), f"{TMPFS} (tmpfs) is missing")
    return _onebox(command, n, threads, TMPFS)


TMPFS = "/dev/shm"
CASES = {"onebox_true_tmpfs": lambda n, t: _onebox_tmpfs(COMMANDS["true"], n, t)}
for _kind, _cmd in COMMANDS.items():
    CASES[f"onebox_{_kind}"] = (lambda c: lambda n, t: _onebox(c, n, t))(_cmd)
    CASES[f"parallel_{_kind}"] = (lambda c: lambda n, t: _parallel(c, n, t))(_cmd)
    CASES[f"xargs_{_kind}"] = (lambda c: lambda n, t: _xargs(c, n, t))(_cmd)


def plan(ctx):
    me = "w6_jobs.py"
    cli = os.path.join(os.path.dirname(os.path.dirname(ctx.onebox_bin)), "onebox")
    n_true, n_sleep = (200, 40) if ctx.quick else (1000, 200)
    # (case title, onebox case, its row's name, jobs, the peers' kind)
    shapes = [
        (f"{n_true:,} `true` jobs, {ctx.threads} at a time, results tree in the temporary "
         "directory (ext4 here)", "onebox_true", "onebox run (Saturn Run files, results tree)",
         n_true, "true"),
        (f"{n_true:,} `true` jobs, {ctx.threads} at a time, results tree on tmpfs",
         "onebox_true_tmpfs", f"onebox run, results tree in {TMPFS}", n_true, "true"),
        (f"{n_sleep:,} `sleep 0.05` jobs, {ctx.threads} at a time", "onebox_sleep",
         "onebox run (Saturn Run files, results tree)", n_sleep, "sleep"),
    ]
    cases = []
    for title, onebox_case, system, n, kind in shapes:
        case = Case("W6", title, "job")
        ob = ctx.peer(me, onebox_case, n, system, reps=5)
        ob.argv = ["env", f"ONEBOX_CLI={cli}"] + ob.argv
        ob.onebox = True
        case.runs.append(ob)
        case.runs.append(ctx.peer(me, f"parallel_{kind}", n, f"GNU parallel -j{ctx.threads}",
                                  reps=3))
        case.runs.append(ctx.peer(me, f"xargs_{kind}", n, f"xargs -P{ctx.threads}", reps=5))
        cases.append(case)
    return cases


if __name__ == "__main__":
    _peer.run_case("W6", CASES)
