"""What the dataframe workloads (W5 group-by, W5J joins) share: a data set made once into the
cache with a MANIFEST.json of the expected answers, a runner handing its directory to
onebox's side, every question timed and checked on a peer, and a plan of one case per
question with onebox and the four peers side by side."""
import json
import math
import os
import subprocess
import tempfile
import time

import _peer
from _plan import Case

# The peers of a dataframe workload: (case name in the workload's script, system label).
PEERS = (("polars", "polars lazy ({t} threads)"), ("duckdb", "duckdb ({t} threads)"),
         ("pandas", "pandas (in memory, 1 thread)"), ("dask", "dask.dataframe threads ({t})"))


def cache_dir(name):
    """`name` under $ONEBOX_BENCH_CACHE (default: the temporary directory's
    `onebox-bench-cache`)."""
    root = os.environ.get("ONEBOX_BENCH_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                  "onebox-bench-cache")
    return os.path.join(root, name)


def ensure(d, rows, complete, generate):
    """The data set in `d` and its manifest: made by `generate(d, rows)` unless the manifest
    says `rows` and `complete(d)` finds every file."""
    try:
        with open(os.path.join(d, "MANIFEST.json")) as f:
            manifest = json.load(f)
        if manifest.get("rows") == rows and complete(d):
            return d, manifest
    except (OSError, ValueError):
        pass
    return d, generate(d, rows)


def same(got, want):
    """Whether a checksum matches the manifest's: integers exactly, floats to 1e-9
    relative."""
    for k, w in want.items():
        g = got.get(k)
        if g is None:
            return False
        if isinstance(w, float):
            if not math.isclose(float(g), w, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif int(g) != w:
            return False
    return True


def questions(args, workload, system, data, answer, checksum, info):
    """Warm-up and timed repetitions of every question of `data(rows)`'s manifest:
    `answer(q, d)` returns a polars frame, `checksum(q, frame)` what the manifest holds,
    `info(checksum)` the row's notes."""
    d, manifest = data(args.size)
    for q, want in manifest["checksums"].items():
        for i in range(args.warmup + args.reps):
            warm = i < args.warmup
            t0 = time.perf_counter()
            res = answer(q, d)
            seconds = time.perf_counter() - t0
            got = checksum(q, res)
            _peer.check(same(got, want), f"{workload} {q} on {system}: {got} != {want}")
            yield dict(case=q, system=system, count=args.size, unit="row", seconds=seconds,
                       rep=(i + 1) if warm else (i - args.warmup + 1), warmup=warm,
                       phases={}, info=info(got))


def with_data(argv, data, env):
    """`with-data SIZE -- COMMAND...`: makes the data set of SIZE rows, then runs COMMAND
    with `env` naming its directory."""
    rows = int(argv[0])
    cmd = argv[argv.index("--") + 1:]
    d, _ = data(rows)
    return subprocess.run(cmd, env=dict(os.environ, **{env: d})).returncode


def plan(ctx, script, workload, names, title):
    """One case per question in `names`: onebox's side (through `script with-data`), then
    every peer; `title(q, rows)` names the case."""
    rows = 1_000_000 if ctx.quick else 10_000_000
    cases = []
    for q in names:
        case = Case(workload, title(q, rows), "row")
        # onebox's binary runs the question both ways, taking turns: onebox's Frame, and the
        # polars crate it is built on as one lazy query (case "q:crate"); a row each.
        for select, system in ((q, f"onebox Frame ({ctx.threads} threads)"),
                               (f"{q}:crate", f"polars crate 0.55, one lazy query "
                                              f"({ctx.threads} threads)")):
            ob = ctx.onebox(workload, rows, system, reps=5, timeout=900, select=select)
            ob.argv = [ctx.python, os.path.join(_peer.HERE, script), "with-data", str(rows),
                       "--"] + ob.argv + ["--case", q]
            ob.onebox = select == q
            case.runs.append(ob)
        for name, system in PEERS:
            case.runs.append(ctx.peer(script, name, rows, system.format(t=ctx.threads),
                                      reps=5 if name != "dask" else 3, timeout=900, select=q))
        cases.append(case)
    return cases
