"""What every peer script shares: its command line, the repeat loop, and the JSON lines.

A peer script is run as

    python wN_name.py CASE SIZE [--reps N] [--warmup N] [--warmup-size N] [--threads N]

and prints one JSON line per repetition, in the same shape as the onebox program
(`onebox_bench.rs`):

    {"workload": "W1a", "case": "delayed", "system": "dask threaded", "size": 5000,
     "count": 5000, "unit": "task", "rep": 1, "warmup": false, "seconds": 2.2,
     "phases": {"build": 0.17, "compute": 2.2}, "info": {}}

plus one line {"versions": {...}} naming the peer's packages.  Warm-up repetitions are
printed with "warmup": true and left out of the medians by the harness.  A script checks
each result against a closed form and raises on a wrong one (the harness then reports the
run as failed).

Each module keeps its heavy imports (dask, distributed) inside functions, so that the
harness can import it to read its `plan()` without paying for them.
"""
import argparse
import gc
import json
import os
import sys
import time


def emit(**fields):
    """Prints one JSON line and flushes it, so that a run cut off by its timeout keeps the
    repetitions it finished."""
    print(json.dumps(fields, default=str), flush=True)


def versions(*modules):
    """{module: version} for the given modules (imports them)."""
    out = {}
    for name in modules:
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as e:  # a missing peer is reported, not fatal here
            out[name] = f"n/a ({type(e).__name__})"
    return out


def parse_args(argv, cases):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", choices=sorted(cases))
    p.add_argument("size", type=int)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--warmup-size", type=int, default=None,
                   help="size of the warm-up repetitions (default: SIZE)")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def run_case(workload, cases, argv=None, modules=()):
    """Entry point of a peer script: `cases` maps a case name to a function
    `fn(size, threads) -> dict(system=..., count=..., unit=..., seconds=...,
    phases={...}, info={...})` that does one repetition (or to a generator function
    `fn(args)` that yields such dicts with their own "rep"/"warmup", and possibly their
    own "case", for cases that need their own loop)."""
    args = parse_args(sys.argv[1:] if argv is None else argv, cases)
    if modules:
        emit(versions=versions(*modules))
    fn = cases[args.case]
    if getattr(fn, "own_loop", False):
        for rec in fn(args):
            emit(**{"workload": workload, "case": args.case, "size": args.size,
                    "threads": args.threads, **rec})
        return
    warm_size = args.warmup_size if args.warmup_size is not None else args.size
    total = args.warmup + args.reps
    for i in range(total):
        warm = i < args.warmup
        gc.collect()
        rec = fn(warm_size if warm else args.size, args.threads)
        emit(workload=workload, case=args.case, size=warm_size if warm else args.size,
             threads=args.threads, rep=(i + 1) if warm else (i - args.warmup + 1),
             warmup=warm, **rec)


def own_loop(fn):
    """Marks a case function that runs its own repetitions (see run_case)."""
    fn.own_loop = True
    return fn


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, res


def check(ok, message):
    """A wrong result is an error, so that it cannot pass for a fast one."""
    if not ok:
        raise AssertionError(message)


HERE = os.path.dirname(os.path.abspath(__file__))
