"""W1: scheduler overhead on tasks that do nothing (`inc`), onebox against Dask.

Cases (peer side; `python w1_scheduler.py CASE SIZE`):
  delayed     dask.compute(*[delayed(inc)(i) for i in range(SIZE)]), threaded scheduler
  raw         the same SIZE tasks as a raw graph dict through dask.threaded.get
              (bypasses the Delayed layer: Dask's best case for independent tasks)
  tree        SIZE delayed inc leaves summed by a binary tree of delayed adds (2*SIZE-1 tasks)
  client_map  distributed LocalCluster(processes=False, 1 worker x THREADS threads):
              client.map(inc, range(SIZE)) + client.gather, on a fresh cluster each repetition
  client_map_inf
              the same with distributed.scheduler.worker-saturation = inf (no root-task
              queuing: distributed's best case for this, see the README)

The graph build (making the Delayed objects or the dict) is timed apart and left out of
`seconds`, as on the onebox side; it is in the notes.  Dask's `dask.compute(*list)` grows
faster than linearly with the number of Delayed objects (about 0.4 ms/task at 5k, 0.7 at
10k, 1.2 at 20k on the 2-core machine), so `delayed` runs shrunk and is compared per task
with onebox at the same size.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def build_tree(n_leaves):
    """The tree of W1c: n inc leaves, pairs added level by level (an odd one out moves up)."""
    from dask import delayed
    level = [delayed(inc)(i) for i in range(n_leaves)]
    while len(level) > 1:
        nxt = [delayed(add)(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0] if level else None


def case_delayed(n, threads):
    import dask
    from dask import delayed
    t0 = time.perf_counter()
    tasks = [delayed(inc)(i) for i in range(n)]
    t1 = time.perf_counter()
    out = dask.compute(*tasks, scheduler="threads", num_workers=threads)
    t2 = time.perf_counter()
    _peer.check(len(out) == n and all(v == i + 1 for i, v in enumerate(out)),
                f"delayed: wrong output for {n} tasks")
    return dict(system="dask threaded", count=n, unit="task", seconds=t2 - t1,
                phases={"build": t1 - t0, "compute": t2 - t1, "build+compute": t2 - t0},
                info={})


def case_raw(n, threads):
    import dask.threaded
    t0 = time.perf_counter()
    dsk = {("inc", i): (inc, i) for i in range(n)}
    keys = list(dsk)
    t1 = time.perf_counter()
    out = dask.threaded.get(dsk, keys, num_workers=threads)
    t2 = time.perf_counter()
    _peer.check(len(out) == n and all(v == i + 1 for i, v in enumerate(out)),
                f"raw: wrong output for {n} tasks")
    return dict(system="dask.threaded.get (raw dict)", count=n, unit="task", seconds=t2 - t1,
                phases={"build": t1 - t0, "compute": t2 - t1, "build+compute": t2 - t0},
                info={})


def case_tree(n, threads):
    t0 = time.perf_counter()
    root = build_tree(n)
    t1 = time.perf_counter()
    val = root.compute(scheduler="threads", num_workers=threads) if root is not None else 0
    t2 = time.perf_counter()
    _peer.check(val == n * (n + 1) // 2, f"tree: {n} leaves summed to {val}")
    return dict(system="dask threaded", count=max(0, 2 * n - 1), unit="task", seconds=t2 - t1,
                phases={"build": t1 - t0, "compute": t2 - t1, "build+compute": t2 - t0},
                info={})


def _client_map(n, threads, saturation):
    import dask
    from distributed import Client, LocalCluster
    settings = {} if saturation is None else {"distributed.scheduler.worker-saturation": saturation}
    with dask.config.set(settings):
        t0 = time.perf_counter()
        cluster = LocalCluster(processes=False, n_workers=1, threads_per_worker=threads,
                               dashboard_address=":0")
        client = Client(cluster)
        t1 = time.perf_counter()
        try:
            res = client.gather(client.map(inc, range(n)))
            t2 = time.perf_counter()
        finally:
            client.close()
            cluster.close()
    _peer.check(len(res) == n and all(v == i + 1 for i, v in enumerate(res)),
                f"client_map: wrong output for {n} tasks")
    name = "distributed LocalCluster(processes=False)"
    if saturation is not None:
        name += f", worker-saturation={saturation}"
    return dict(system=name, count=n, unit="task", seconds=t2 - t1,
                phases={"cluster_start": t1 - t0, "map_gather": t2 - t1}, info={})


def case_client_map(n, threads):
    return _client_map(n, threads, None)


def case_client_map_inf(n, threads):
    return _client_map(n, threads, "inf")


CASES = {"delayed": case_delayed, "raw": case_raw, "tree": case_tree,
         "client_map": case_client_map, "client_map_inf": case_client_map_inf}


def plan(ctx):
    """W1a/W1b/W1c cases; sizes shrink for Dask where the full size is impractical."""
    q = ctx.quick
    me = "w1_scheduler.py"
    big = 10_000 if q else 100_000
    dask_sizes = [1_000] if q else [5_000, 10_000]
    w1a = Case("W1a", "independent delayed `inc` tasks, computed together", "task")
    for n in sorted(set(dask_sizes + [big])):
        w1a.runs.append(ctx.onebox("W1a", n, "onebox Delayed + join_all"))
    for n in dask_sizes:
        w1a.runs.append(ctx.peer(me, "delayed", n, "dask threaded, dask.compute(*delayed)",
                                 warmup_size=min(n, 1_000),
                                 note=f"shrunk from {big:,}: superlinear in Dask"))
    w1a.runs.append(ctx.peer(me, "raw", big, "dask.threaded.get on a raw graph dict",
                             warmup_size=big // 10,
                             note="bypasses Dask's Delayed layer"))

    map_n = 500 if q else 5_000
    w1b = Case("W1b", "one task per item, started at once and gathered (client.map)", "task")
    for n in sorted({map_n, big}):
        w1b.runs.append(ctx.onebox("W1b", n, "onebox submit_map + gather"))
    w1b.runs.append(ctx.peer(me, "client_map", map_n,
                             "distributed LocalCluster(processes=False)",
                             warmup_size=min(map_n, 500),
                             note=f"shrunk from {big:,}: about 2 ms/task; cluster start excluded"))
    w1b.runs.append(ctx.peer(me, "client_map_inf", map_n,
                             "distributed, worker-saturation=inf",
                             warmup_size=min(map_n, 500),
                             note="distributed's best setting for this; cluster start excluded"))

    w1c = Case("W1c", f"{big:,} delayed `inc` leaves + binary tree of adds "
                      f"({2 * big - 1:,} tasks as Dask counts them)", "task")
    w1c.runs.append(ctx.onebox("W1c", big, "onebox Delayed zip+map tree",
                               note="each add is zip + map: 2 graph nodes"))
    w1c.runs.append(ctx.peer(me, "tree", big, "dask threaded", warmup_size=big // 10,
                             timeout=max(ctx.timeout, 600)))
    return [w1a, w1b, w1c]


if __name__ == "__main__":
    _peer.run_case("W1", CASES, modules=("dask", "distributed"))
