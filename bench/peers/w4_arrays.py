"""W4: chunked arrays: onebox against NumPy and dask.array on a SIZE x SIZE/2 float64 normal
array (20000 x 10000, 1.6 GB, at full size).

Cases (`python w4_arrays.py CASE SIZE`); each runs every sub-case with its own warm-up and
repetitions and tags its lines with it ("case"):
  numpy   bandwidth (np.copyto 1 GB -> 1 GB, 1 thread), bandwidth2 (two threads x 0.5 GB),
          a (default_rng(0).standard_normal + x.sum()), b ((x - x.mean(0)).std(0), x in
          memory), b_lazy (the same, generation included), c (A @ B.T, m = SIZE/5, B a
          separate array so that BLAS runs gemm, not syrk)
  dask    a, b_lazy (lazy, generation included), b (x persisted first), c; chunks of
          2000 x 2000, threaded scheduler with THREADS workers

BLAS is limited with threadpoolctl: to THREADS threads for NumPy, to 1 thread per task for
dask (THREADS tasks at once). Every repetition checks its answer: the sum against the spread
of a sum of normals, each column's std against 1, a sample of the product's entries against
dot products.
"""
import gc
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402

BLOCK = 2000
GB = 1e9


def _shape(size):
    rows = max(size, 2)
    return rows, max(rows // 2, 1)


def _reps(args, name, body, system, unit, info=None):
    """Warm-up (at full size: memory returned to the host is slow to touch again) and timed
    repetitions of `body() -> (seconds, info)`, as JSON line dicts."""
    for i in range(args.warmup + args.reps):
        warm = i < args.warmup
        gc.collect()
        seconds, extra = body()
        yield dict(case=name, system=system, count=1, unit=unit, seconds=seconds,
                   rep=(i + 1) if warm else (i - args.warmup + 1), warmup=warm, phases={},
                   info={**(info or {}), **extra})


def _check_sum(total, rows, cols):
    spread = (rows * cols) ** 0.5
    _peer.check(abs(float(total)) < 6 * spread,
                f"W4a: the sum of {rows}x{cols} normals is {total}, beyond 6 x {spread}")


def _check_std(std, rows):
    import numpy as np
    tol = 8 / (2 * rows) ** 0.5
    std = np.asarray(std)
    _peer.check(bool(np.all(np.abs(std - 1) <= tol)), f"W4b: a column's std is not within "
                f"{tol:.3f} of 1 (min {std.min()}, max {std.max()})")


def _check_product(y, a, b):
    import numpy as np
    m = a.shape[0]
    for s in range(64):
        i, j = (s * 7919) % m, (s * 104729 + 13) % m
        want = float(np.dot(a[i], b[j]))
        _peer.check(abs(float(y[i, j]) - want) <= 1e-9 * m ** 0.5 * 10,
                    f"W4c: entry ({i}, {j}) is {y[i, j]}, a dot gives {want}")


def _bandwidth(args, n):
    import numpy as np
    src = np.arange(n, dtype=np.float64)
    dst = np.empty(n)
    dst.fill(1.0)  # touch every page first

    def one():
        seconds, _ = _peer.timed(lambda: np.copyto(dst, src))
        _peer.check(dst[-1] == n - 1, "W4 bandwidth: the copy is wrong")
        return seconds, {"GB/s read+write": round(2 * n * 8 / seconds / GB, 2)}

    yield from _reps(args, "bandwidth", one, "np.copyto 1 GB (1 thread)", "copy")

    def two():
        h = n // 2
        ts = [threading.Thread(target=np.copyto, args=(dst[k * h:(k + 1) * h if k == 0 else n],
                                                      src[k * h:(k + 1) * h if k == 0 else n]))
              for k in range(2)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        seconds = time.perf_counter() - t0
        _peer.check(dst[-1] == n - 1, "W4 bandwidth: the copy is wrong")
        return seconds, {"GB/s read+write": round(2 * n * 8 / seconds / GB, 2)}

    yield from _reps(args, "bandwidth2", two, "np.copyto 1 GB, two threads x 0.5 GB", "copy")


@_peer.own_loop
def case_numpy(args):
    import numpy as np
    from threadpoolctl import threadpool_limits
    rows, cols = _shape(args.size)
    nbytes = rows * cols * 8
    yield from _bandwidth(args, min(max(rows * cols, 1 << 20), 1_000_000_000 // 8))
    gc.collect()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        def a():
            t0 = time.perf_counter()
            x = np.random.default_rng(0).standard_normal((rows, cols))
            total = x.sum()
            seconds = time.perf_counter() - t0
            _check_sum(total, rows, cols)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2)}
        yield from _reps(args, "a", a, "numpy (generation on 1 thread)", "array")

        def b_lazy():
            t0 = time.perf_counter()
            x = np.random.default_rng(0).standard_normal((rows, cols))
            std = (x - x.mean(axis=0)).std(axis=0)
            seconds = time.perf_counter() - t0
            _check_std(std, rows)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2)}
        yield from _reps(args, "b_lazy", b_lazy, "numpy, generation included", "array")

        x = np.random.default_rng(0).standard_normal((rows, cols))

        def b():
            seconds, std = _peer.timed(lambda: (x - x.mean(axis=0)).std(axis=0))
            _check_std(std, rows)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2)}
        yield from _reps(args, "b", b, "numpy, x in memory", "array")
        del x
        gc.collect()

        m = max(rows // 5, 1)
        am = np.random.default_rng(1).standard_normal((m, m))
        bm = np.random.default_rng(2).standard_normal((m, m))

        def c():
            seconds, y = _peer.timed(lambda: am @ bm.T)
            _check_product(y, am, bm)
            return seconds, {"GFLOP/s": round(2 * m ** 3 / seconds / 1e9, 2)}
        yield from _reps(args, "c", c, f"numpy A @ B.T (OpenBLAS, {args.threads} threads)",
                         "matmul")


@_peer.own_loop
def case_dask(args):
    import dask
    import dask.array as da
    import numpy as np
    from threadpoolctl import threadpool_limits
    rows, cols = _shape(args.size)
    nbytes = rows * cols * 8
    chunks = (min(BLOCK, rows), min(BLOCK, cols))
    dask.config.set(scheduler="threads", num_workers=args.threads)
    sched = f"dask.array threaded ({args.threads})"

    def mk():
        return da.random.default_rng(0).standard_normal((rows, cols), chunks=chunks)

    with threadpool_limits(limits=1, user_api="blas"):
        def a():
            seconds, total = _peer.timed(lambda: mk().sum().compute())
            _check_sum(total, rows, cols)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2)}
        yield from _reps(args, "a", a, sched, "array")

        def b_lazy():
            seconds, std = _peer.timed(
                lambda: (lambda x: (x - x.mean(axis=0)).std(axis=0))(mk()).compute())
            _check_std(std, rows)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2)}
        yield from _reps(args, "b_lazy", b_lazy, sched + ", generation included", "array")

        t0 = time.perf_counter()
        xp = mk().persist()
        persist = time.perf_counter() - t0

        def b():
            seconds, std = _peer.timed(lambda: (xp - xp.mean(axis=0)).std(axis=0).compute())
            _check_std(std, rows)
            return seconds, {"GB/s of array": round(nbytes / seconds / GB, 2),
                             "persist s": round(persist, 2)}
        yield from _reps(args, "b", b, sched + ", x persisted", "array")
        del xp
        gc.collect()

        m = max(rows // 5, 1)
        mc = (min(BLOCK, m), min(BLOCK, m))
        am = da.random.default_rng(1).standard_normal((m, m), chunks=mc).persist()
        bm = da.random.default_rng(2).standard_normal((m, m), chunks=mc).persist()
        an, bn = np.asarray(am), np.asarray(bm)

        def c():
            seconds, y = _peer.timed(lambda: (am @ bm.T).compute())
            _check_product(y, an, bn)
            return seconds, {"GFLOP/s": round(2 * m ** 3 / seconds / 1e9, 2)}
        yield from _reps(args, "c", c, sched + ", BLAS 1 thread per task", "matmul")


CASES = {"numpy": case_numpy, "dask": case_dask}

TITLES = {
    "bandwidth": ("W4 bandwidth", "memory bandwidth: copy 1 GB of f64 into 1 GB (touched)"),
    "bandwidth2": ("W4 bandwidth", "the same copy, two threads x 0.5 GB"),
    "a": ("W4a", "random normal {rows:,} x {cols:,} f64, then sum (generation included)"),
    "b": ("W4b", "(x - x.mean(0)).std(0), x ({rows:,} x {cols:,}) in memory"),
    "b_lazy": ("W4b'", "(x - x.mean(0)).std(0), generation of x included"),
    "c": ("W4c", "A @ B.T, {m:,}^3 f64 (gemm)"),
}


def plan(ctx):
    me = "w4_arrays.py"
    size = 4_000 if ctx.quick else 20_000
    rows, cols = _shape(size)
    fmt = dict(rows=rows, cols=cols, m=max(rows // 5, 1))
    # a repetition of every sub-case in one command: give it room
    timeout = max(ctx.timeout, 900)
    cases = []
    for sub in ("bandwidth", "bandwidth2", "a", "b", "b_lazy", "c"):
        wl, title = TITLES[sub]
        case = Case(wl, title.format(**fmt), "array" if sub not in ("bandwidth", "bandwidth2",
                                                                     "c") else
                    ("matmul" if sub == "c" else "copy"))
        ob = ctx.onebox("W4", size, f"onebox ({ctx.threads} threads)", reps=5, timeout=timeout, select=sub)
        case.runs.append(ob)
        case.runs.append(ctx.peer(me, "numpy", size,
                                  f"NumPy (BLAS limited to {ctx.threads} threads)", reps=5, timeout=timeout,
                                  select=sub))
        if sub not in ("bandwidth", "bandwidth2"):
            case.runs.append(ctx.peer(me, "dask", size,
                                      f"dask.array threaded ({ctx.threads}), BLAS 1 thread/task",
                                      reps=5, timeout=timeout,
                                      select=sub))
        cases.append(case)
    return cases


if __name__ == "__main__":
    _peer.run_case("W4", CASES, modules=("numpy", "dask", "threadpoolctl"))
