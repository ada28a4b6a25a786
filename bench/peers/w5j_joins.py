"""W5J: dataframe joins, the h2oai db-benchmark's J1 data set (N rows on the left, no NAs,
unsorted) and its five join questions, on onebox's Frame against polars (lazy, one process),
duckdb, pandas and dask.dataframe at the same thread count.

Commands (`python w5j_joins.py CASE SIZE`; SIZE is the left table's number of rows):
  polars, duckdb, pandas, dask    every question on that system (one JSON line per question
                                  and repetition; "case" names the question)
  with-data SIZE -- COMMAND...    makes the data if needed, then runs COMMAND (onebox's side)
                                  with $ONEBOX_W5J_DATA naming its directory

The data follow db-benchmark's join-datagen.R with numpy's generator (the values differ from
the R-made files, the distributions match). Keys are split 0.9 / 0.1 / 0.1 into common,
left-only and right-only ones at three scales (N/1e6, N/1e3 and N keys); the left table `x`
draws id1, id2, id3 from the common and left-only keys (every key at least once), the right
tables from the common and right-only ones (at least 10 keys a scale, for small N):
`small` (N/1e6 rows: id1 unique), `medium`
(N/1e3 rows: id1, id2 unique) and `big` (N rows: id1, id2, id3 unique). id4, id5, id6 are
"id" followed by id1, id2, id3; v1 (left) and v2 (right) are floats in [0, 100) rounded to 6
places. `x` and `big` are written as 8 Parquet files each, `small` and `medium` as one, into
$ONEBOX_BENCH_CACHE (default: the temporary directory's `onebox-bench-cache`), with a
MANIFEST.json holding each answer's checksum (rows, sum of v1, sum of v2) computed by polars at
generation; every system's answer must match it.

The questions (db-benchmark's): q1 small inner on int (id1), q2 medium inner on int (id2),
q3 medium left on int (id2), q4 medium inner on factor (id5), q5 big inner on int (id3).
Every system reads the Parquet files for every question, except pandas, which loads them
once, untimed, and answers in memory.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
import _tables  # noqa: E402

PARTS = 8
SEED = 108
QUESTIONS = ["q1", "q2", "q3", "q4", "q5"]
# question: (right table, key, how)
SPEC = {"q1": ("small", "id1", "inner"), "q2": ("medium", "id2", "inner"),
        "q3": ("medium", "id2", "left"), "q4": ("medium", "id5", "inner"),
        "q5": ("big", "id3", "inner")}
DESC = {"q1": "small inner on int", "q2": "medium inner on int", "q3": "medium left on int",
        "q4": "medium inner on factor", "q5": "big inner on int"}


def data_dir(rows):
    return _tables.cache_dir(f"w5j-J1-{rows}")


def files(d, table):
    """The Parquet files of `table` ("x", "small", "medium" or "big"), sorted."""
    return sorted(glob.glob(os.path.join(d, f"{table}-*.parquet")))


def checksum(_q, df):
    """{"rows": rows, "v1": sum, "v2": sum} of a polars join result."""
    return {"rows": df.height, "v1": float(df["v1"].sum()), "v2": float(df["v2"].sum())}


def polars_join(q, x, right):
    _t, key, how = SPEC[q]
    return x.join(right, on=key, how=how)


def generate(d, rows):
    import numpy as np
    import polars as pl
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "*.parquet")):
        os.remove(f)
    rng = np.random.default_rng(SEED)

    def split_xlr(n):
        key = rng.permutation(np.arange(1, int(n * 1.1) + 1))
        return key[:int(n * 0.9)], key[int(n * 0.9):n], key[n:int(n * 1.1)]

    def sample_all(keys, size):
        extra = rng.choice(keys, size=max(size - len(keys), 0), replace=True)
        return rng.permutation(np.concatenate([keys, extra]))

    # at least 10 keys per scale (db-benchmark's smallest, N = 1e7), so smaller runs work
    n = [max(rows // s, 10) for s in (1_000_000, 1_000, 1)]
    keys = [split_xlr(k) for k in n]
    lhs = [np.concatenate([k[0], k[1]]) for k in keys]
    rhs = [np.concatenate([k[0], k[2]]) for k in keys]

    def table(ids, v):
        cols = {f"id{i + 1}": a for i, a in enumerate(ids)}
        df = pl.DataFrame(cols)
        df = df.with_columns([(pl.lit("id") + pl.col(f"id{i + 1}").cast(pl.String))
                             .alias(f"id{i + 4}") for i in range(len(ids))])
        return df.with_columns(pl.Series(v, np.round(rng.uniform(0, 100, df.height), 6)))

    x = table([sample_all(lhs[i], rows) for i in range(3)], "v1")
    small = table([sample_all(rhs[0], n[0])], "v2")
    medium = table([sample_all(rhs[0], n[1]), sample_all(rhs[1], n[1])], "v2")
    big = table([sample_all(rhs[i], n[2]) for i in range(3)], "v2")
    for name, df in (("x", x), ("big", big)):
        step = -(-df.height // PARTS)
        for i in range(PARTS):
            df.slice(i * step, step).write_parquet(os.path.join(d, f"{name}-{i}.parquet"))
    small.write_parquet(os.path.join(d, "small-0.parquet"))
    medium.write_parquet(os.path.join(d, "medium-0.parquet"))
    tables = {"small": small, "medium": medium, "big": big}
    sums = {q: checksum(q, polars_join(q, x.lazy(), tables[SPEC[q][0]].lazy()).collect())
            for q in QUESTIONS}
    manifest = {"rows": rows, "seed": SEED, "files": PARTS, "checksums": sums}
    with open(os.path.join(d, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def ensure_data(rows):
    return _tables.ensure(data_dir(rows), rows, lambda d: len(files(d, "x")) == PARTS, generate)


def _questions(args, system, answer):
    """Warm-up and timed repetitions of every question; `answer(q, d)` returns a polars
    frame."""
    yield from _tables.questions(args, "W5J", system, ensure_data, answer, checksum,
                                 lambda got: {"rows out": got["rows"]})


@_peer.own_loop
def case_polars(args):
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl

    def answer(q, d):
        right = pl.scan_parquet(files(d, SPEC[q][0]))
        return polars_join(q, pl.scan_parquet(files(d, "x")), right).collect()
    yield from _questions(args, f"polars lazy, {args.threads} threads", answer)


@_peer.own_loop
def case_duckdb(args):
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads TO {args.threads}")

    def answer(q, d):
        table, key, how = SPEC[q]
        src = lambda t: "read_parquet([" + ", ".join(f"'{f}'" for f in files(d, t)) + "])"  # noqa: E731
        join = "INNER JOIN" if how == "inner" else "LEFT JOIN"
        return con.sql(f"SELECT x.*, r.v2 FROM {src('x')} AS x {join} {src(table)} AS r "
                       f"USING ({key})").pl()
    yield from _questions(args, f"duckdb, {args.threads} threads", answer)


@_peer.own_loop
def case_pandas(args):
    import pandas as pd
    import polars as pl
    d, _ = ensure_data(args.size)
    load = lambda t: pd.concat([pd.read_parquet(f) for f in files(d, t)], ignore_index=True)  # noqa: E731
    tables = {t: load(t) for t in ("x", "small", "medium", "big")}

    def answer(q, _d):
        table, key, how = SPEC[q]
        res = tables["x"].merge(tables[table], on=key, how=how, sort=False)
        return pl.from_pandas(res[["v1", "v2"]])
    yield from _questions(args, "pandas (in memory, 1 thread)", answer)


@_peer.own_loop
def case_dask(args):
    import dask
    import dask.dataframe as dd
    import polars as pl

    def answer(q, d):
        table, key, how = SPEC[q]
        x = dd.read_parquet(files(d, "x"))
        res = x.merge(dd.read_parquet(files(d, table)), on=key, how=how)
        out = res.compute(scheduler="threads", num_workers=args.threads)
        return pl.from_pandas(out[["v1", "v2"]])
    with dask.config.set({"dataframe.convert-string": True}):
        yield from _questions(args, f"dask.dataframe threads ({args.threads})", answer)


CASES = {"polars": case_polars, "duckdb": case_duckdb, "pandas": case_pandas, "dask": case_dask}


def with_data(argv):
    """`with-data SIZE -- COMMAND...`: makes the data, then runs COMMAND with
    $ONEBOX_W5J_DATA naming its directory."""
    return _tables.with_data(argv, ensure_data, "ONEBOX_W5J_DATA")


# Commands of this script that are not a measured case (the harness's tests know them).
RUNNERS = {"with-data": with_data}


def plan(ctx):
    return _tables.plan(ctx, "w5j_joins.py", "W5J", QUESTIONS,
                        lambda q, rows: f"db-benchmark J1 {q} ({DESC[q]}), {rows:,} left rows "
                                        f"in {PARTS} Parquet files")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in RUNNERS:
        sys.exit(RUNNERS[sys.argv[1]](sys.argv[2:]))
    _peer.run_case("W5J", CASES, modules=("polars", "duckdb", "pandas", "dask"))
