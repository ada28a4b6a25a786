"""W2: cluster start-up, onebox's `Cluster::local()` against Dask's `LocalCluster()`.

Cases (peer side; `python w2_startup.py CASE 0`):
  processes   LocalCluster() with its defaults (worker processes; 2 x 1 thread here)
  threads     LocalCluster(processes=False) (one in-process worker)

Each repetition runs a fresh interpreter that imports distributed (timed apart, left out),
then constructs and closes a first cluster ("cold") and a second one ("warm").  The lines
carry "case": "cold" or "warm"; `seconds` is construct + close.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import distributed
from distributed import LocalCluster
t1 = time.perf_counter()
processes = sys.argv[1] == "True"
out = {"import": t1 - t0}
for phase in ("cold", "warm"):
    a = time.perf_counter()
    cluster = LocalCluster(processes=processes)
    b = time.perf_counter()
    info = {"n_workers": len(cluster.workers),
            "nthreads": sum(w.nthreads for w in cluster.scheduler.workers.values())}
    cluster.close()
    c = time.perf_counter()
    out[phase] = {"construct": b - a, "close": c - b, **info}
print("JSON" + json.dumps(out))
"""


def _startup(args, processes):
    name = "distributed LocalCluster()" if processes else \
        "distributed LocalCluster(processes=False)"
    for i in range(args.warmup + args.reps):
        warm_up = i < args.warmup
        rep = (i + 1) if warm_up else (i - args.warmup + 1)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CHILD, str(processes)],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        lines = [line for line in p.stdout.splitlines() if line.startswith("JSON")]
        _peer.check(p.returncode == 0 and lines,
                    f"child interpreter failed (rc={p.returncode}): {p.stderr[-800:]}")
        d = json.loads(lines[0][4:])
        for phase in ("cold", "warm"):
            ph = d[phase]
            phases = {"construct": ph["construct"], "close": ph["close"]}
            if phase == "cold":
                phases.update({"import": d["import"], "process": wall})
            yield dict(case=phase, system=name, count=1, unit="cluster", rep=rep,
                       warmup=warm_up, seconds=ph["construct"] + ph["close"], phases=phases,
                       info={"n_workers": ph["n_workers"], "nthreads": ph["nthreads"]})


@_peer.own_loop
def case_processes(args):
    return _startup(args, True)


@_peer.own_loop
def case_threads(args):
    return _startup(args, False)


CASES = {"processes": case_processes, "threads": case_threads}


def plan(ctx):
    me = "w2_startup.py"
    cases = []
    for phase, title in (("cold", "cluster start + stop, first in a fresh process"),
                         ("warm", "cluster start + stop, another in the same process")):
        c = Case(f"W2 {phase}", title, "cluster")
        c.runs.append(ctx.onebox("W2", 0, "onebox Cluster::local()", select=phase,
                                 note="sized from the hardware: 2 threads"))
        c.runs.append(ctx.peer(me, "processes", 0, "distributed LocalCluster()", reps=5,
                               select=phase,
                               note="defaults: worker processes, dashboard on; "
                                    "import of distributed excluded"))
        c.runs.append(ctx.peer(me, "threads", 0, "distributed LocalCluster(processes=False)",
                               reps=5, select=phase, note="import of distributed excluded"))
        cases.append(c)
    return cases


if __name__ == "__main__":
    _peer.run_case("W2", CASES, modules=("dask", "distributed"))
