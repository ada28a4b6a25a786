"""W1d: `Pool.map` over many tiny items, onebox's `cluster.map` against `multiprocessing.Pool`.

Cases (peer side; `python w1d_pool_map.py CASE SIZE`):
  pool_map         multiprocessing.Pool(THREADS).map(inc, range(SIZE)), default chunksize
                   (SIZE / (4 * processes) items per chunk: almost no per-item cost)
  pool_map_chunk1  the same with chunksize=1: one pickle round trip per item, the per-item
                   reference (compared with onebox's one-task-per-item submit_map)

The pool's start and close are timed apart and left out of `seconds` (the onebox cluster's
start is left out likewise; W2 measures start-up).
"""
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402


def inc(x):
    return x + 1


def _pool_map(n, processes, chunksize):
    t0 = time.perf_counter()
    pool = multiprocessing.Pool(processes)
    t1 = time.perf_counter()
    try:
        out = pool.map(inc, range(n), chunksize=chunksize)
        t2 = time.perf_counter()
    finally:
        pool.close()
        pool.join()
    t3 = time.perf_counter()
    _peer.check(len(out) == n and all(v == i + 1 for i, v in enumerate(out)),
                f"pool_map: wrong output for {n} items")
    name = f"multiprocessing.Pool({processes}).map"
    if chunksize is not None:
        name += f", chunksize={chunksize}"
    return dict(system=name, count=n, unit="item", seconds=t2 - t1,
                phases={"pool_start": t1 - t0, "map": t2 - t1, "pool_close": t3 - t2},
                info={"start_method": multiprocessing.get_start_method()})


def case_pool_map(n, threads):
    return _pool_map(n, threads, None)


def case_pool_map_chunk1(n, threads):
    return _pool_map(n, threads, 1)


CASES = {"pool_map": case_pool_map, "pool_map_chunk1": case_pool_map_chunk1}


def plan(ctx):
    q = ctx.quick
    me = "w1d_pool_map.py"
    n = 100_000 if q else 1_000_000
    per_item = 10_000 if q else 100_000
    chunked = Case("W1d", f"Pool.map(inc, range({n:,})), chunked", "item")
    chunked.runs.append(ctx.onebox("W1d", n, "onebox cluster.map"))
    chunked.runs.append(ctx.peer(me, "pool_map", n, f"multiprocessing.Pool({ctx.threads}).map",
                                 reps=5, note="default chunksize; pool start excluded"))
    single = Case("W1d'", f"one task per item, {per_item:,} items", "item")
    single.runs.append(ctx.onebox("W1b", per_item, "onebox submit_map + gather"))
    single.runs.append(ctx.peer(me, "pool_map_chunk1", per_item,
                                f"multiprocessing.Pool({ctx.threads}).map, chunksize=1",
                                note="one pickle round trip per item"))
    return [chunked, single]


if __name__ == "__main__":
    _peer.run_case("W1d", CASES)
