"""W5: dataframe group-by, the h2oai db-benchmark's G1 data set (N rows, K = 100 groups,
no NAs, unsorted) and its questions q1, q2, q3, q5 and q10, on onebox's Frame against polars
(lazy, one process), duckdb, pandas and dask.dataframe at the same thread count.

Commands (`python w5_frames.py CASE SIZE`; SIZE is the number of rows):
  polars, duckdb, pandas, dask    every question on that system (one JSON line per question
                                  and repetition; "case" names the question)
  with-data SIZE -- COMMAND...    makes the data if needed, then runs COMMAND (onebox's side)
                                  with $ONEBOX_W5_DATA naming its directory

The data follow db-benchmark's groupby-datagen.R distributions with numpy's generator (the
values differ from the R-made file, the distributions match): id1, id2 = "id001".."id100";
id3 = "id0000000001".."id{N/K}"; id4, id5 in 1..K; id6 in 1..N/K; v1 in 1..5; v2 in 1..15; v3 a
float in [0, 100) rounded to 6 places. They are written once, as 8 Parquet files, into
$ONEBOX_BENCH_CACHE (default: the temporary directory's `onebox-bench-cache`), with a
MANIFEST.json holding each question's checksum (groups, and the sum of each result column)
computed by polars at generation. Every system's answer must match it (integers exactly,
floats to 1e-9 relative) or the run fails.

Every system reads the same 8 Parquet files for every question (polars `scan_parquet`, duckdb
`read_parquet`, dask `read_parquet`, onebox `Frame::scan_parquet`), except pandas, which has
no lazy scan: it loads the files once, untimed, and answers in memory.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
import _tables  # noqa: E402

K = 100
PARTS = 8
SEED = 108
QUESTIONS = ["q1", "q2", "q3", "q5", "q10"]
KEYS = {"q1": ["id1"], "q2": ["id1", "id2"], "q3": ["id3"], "q5": ["id6"],
        "q10": ["id1", "id2", "id3", "id4", "id5", "id6"]}
# (result column, source column, aggregation)
AGGS = {"q1": [("v1", "v1", "sum")],
        "q2": [("v1", "v1", "sum")],
        "q3": [("v1", "v1", "sum"), ("v3", "v3", "mean")],
        "q5": [("v1", "v1", "sum"), ("v2", "v2", "sum"), ("v3", "v3", "sum")],
        "q10": [("v3", "v3", "sum"), ("count", "v1", "count")]}
DESC = {"q1": "sum v1 by id1", "q2": "sum v1 by id1:id2", "q3": "sum v1, mean v3 by id3",
        "q5": "sum v1:v3 by id6", "q10": "sum v3, count by id1:id6"}


def data_dir(rows):
    return _tables.cache_dir(f"w5-G1-{rows}-{K}")


def files_of(d):
    return sorted(glob.glob(os.path.join(d, "part-*.parquet")))


def checksum(q, df):
    """{"groups": rows, column: sum} of a polars result with the standard column names."""
    out = {"groups": df.height}
    for name, _src, _agg in AGGS[q]:
        v = df[name].sum()
        out[name] = float(v) if df[name].dtype.is_float() else int(v)
    return out


def polars_query(q, lf):
    import polars as pl
    aggs = []
    for name, src, agg in AGGS[q]:
        e = pl.col(src)
        e = {"sum": e.sum(), "mean": e.mean(), "count": e.count()}[agg]
        aggs.append(e.alias(name))
    return lf.group_by(KEYS[q]).agg(aggs)


def generate(d, rows):
    import numpy as np
    import polars as pl
    os.makedirs(d, exist_ok=True)
    for f in files_of(d):
        os.remove(f)
    rng = np.random.default_rng(SEED)
    nk = max(rows // K, 1)
    lk = np.array([f"id{i:03d}" for i in range(1, K + 1)])
    lnk = np.array([f"id{i:010d}" for i in range(1, nk + 1)])
    df = pl.DataFrame({
        "id1": lk[rng.integers(0, K, rows)], "id2": lk[rng.integers(0, K, rows)],
        "id3": lnk[rng.integers(0, nk, rows)],
        "id4": rng.integers(1, K + 1, rows), "id5": rng.integers(1, K + 1, rows),
        "id6": rng.integers(1, nk + 1, rows),
        "v1": rng.integers(1, 6, rows), "v2": rng.integers(1, 16, rows),
        "v3": np.round(rng.uniform(0, 100, rows), 6),
    })
    step = -(-rows // PARTS)
    for i in range(PARTS):
        df.slice(i * step, step).write_parquet(os.path.join(d, f"part-{i}.parquet"))
    sums = {q: checksum(q, polars_query(q, df.lazy()).collect()) for q in QUESTIONS}
    manifest = {"rows": rows, "k": K, "seed": SEED, "files": PARTS, "checksums": sums}
    with open(os.path.join(d, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def ensure_data(rows):
    return _tables.ensure(data_dir(rows), rows, lambda d: len(files_of(d)) == PARTS, generate)


def _questions(args, system, answer):
    """Warm-up and timed repetitions of every question; `answer(q, d)` returns a polars
    frame."""
    yield from _tables.questions(args, "W5", system, ensure_data, answer, checksum,
                                 lambda got: {"groups": got["groups"]})


@_peer.own_loop
def case_polars(args):
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl

    def answer(q, d):
        return polars_query(q, pl.scan_parquet(files_of(d))).collect()
    yield from _questions(args, f"polars lazy, {args.threads} threads", answer)


@_peer.own_loop
def case_duckdb(args):
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads TO {args.threads}")

    def answer(q, d):
        src = "read_parquet([" + ", ".join(f"'{f}'" for f in files_of(d)) + "])"
        sel = ", ".join(f"{agg}({s}) AS {name}" for name, s, agg in AGGS[q])
        keys = ", ".join(KEYS[q])
        return con.sql(f"SELECT {keys}, {sel} FROM {src} GROUP BY {keys}").pl()
    yield from _questions(args, f"duckdb, {args.threads} threads", answer)


@_peer.own_loop
def case_pandas(args):
    import pandas as pd
    import polars as pl
    d, _ = ensure_data(args.size)
    x = pd.concat([pd.read_parquet(f) for f in files_of(d)], ignore_index=True)

    def answer(q, _d):
        spec = {name: (src, agg) for name, src, agg in AGGS[q]}
        res = x.groupby(KEYS[q], as_index=False, sort=False, dropna=False).agg(**spec)
        return pl.from_pandas(res)
    yield from _questions(args, "pandas (in memory, 1 thread)", answer)


@_peer.own_loop
def case_dask(args):
    import dask
    import dask.dataframe as dd
    import polars as pl

    def answer(q, d):
        x = dd.read_parquet(files_of(d))
        spec = {name: (src, agg) for name, src, agg in AGGS[q]}
        res = x.groupby(KEYS[q], dropna=False).agg(**spec).reset_index()
        return pl.from_pandas(res.compute(scheduler="threads", num_workers=args.threads))
    with dask.config.set({"dataframe.convert-string": True}):
        yield from _questions(args, f"dask.dataframe threads ({args.threads})", answer)


CASES = {"polars": case_polars, "duckdb": case_duckdb, "pandas": case_pandas, "dask": case_dask}


def with_data(argv):
    """`with-data SIZE -- COMMAND...`: makes the data, then runs COMMAND with
    $ONEBOX_W5_DATA naming its directory."""
    return _tables.with_data(argv, ensure_data, "ONEBOX_W5_DATA")


# Commands of this script that are not a measured case (the harness's tests know them).
RUNNERS = {"with-data": with_data}


def plan(ctx):
    return _tables.plan(ctx, "w5_frames.py", "W5", QUESTIONS,
                        lambda q, rows: f"db-benchmark G1 {q} ({DESC[q]}), {rows:,} rows in "
                                        f"{PARTS} Parquet files")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in RUNNERS:
        sys.exit(RUNNERS[sys.argv[1]](sys.argv[2:]))
    _peer.run_case("W5", CASES, modules=("polars", "duckdb", "pandas", "dask"))
