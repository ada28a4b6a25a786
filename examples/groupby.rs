//! Group-by on a partitioned frame: questions in the style of the h2oai db-benchmark.
//!
//! ```text
//! cargo run --release --example groupby -- [ROWS] [PARTITIONS]
//! ```
//!
//! Generates ROWS rows (default 2,000,000) with the db-benchmark's columns `id1` (100
//! strings), `id2` (100 integers), `v1` (1..=5) and `v3` (a float in 0..100), writes them as
//! PARTITIONS Parquet files (default 8) in a temporary directory, scans them back as a frame,
//! and answers four group-by questions (the last, a median, by shuffling the rows on the key)
//! and a join with a small table in several partitions (a shuffle join). Each answer is checked against the same polars query
//! on the whole data; the times of both are printed.

use std::time::Instant;

use onebox::frame::Frame;
use onebox::frame::polars::prelude::*;
use onebox::prelude::*;

fn generate(rows: usize) -> PolarsResult<DataFrame> {
    let mut s = 42u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let ids: Vec<String> = (1..=100).map(|i| format!("id{i:03}")).collect();
    let (mut id1, mut id2, mut v1, mut v3) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for _ in 0..rows {
        let r = next();
        id1.push(ids[(r % 100) as usize].as_str());
        id2.push(((r >> 8) % 100) as i64 + 1);
        v1.push(((r >> 16) % 5) as i64 + 1);
        v3.push(((r >> 24) % 1_000_000) as f64 / 10_000.0);
    }
    df!("id1" => id1, "id2" => id2, "v1" => v1, "v3" => v3)
}

fn same(a: DataFrame, b: DataFrame, keys: &[&str]) -> PolarsResult<bool> {
    let sort = |df: DataFrame| {
        df.lazy()
            .sort(
                keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                Default::default(),
            )
            .collect()
    };
    let (a, b) = (sort(a)?, sort(b)?);
    if a.schema() != b.schema() || a.height() != b.height() {
        return Ok(false);
    }
    for (x, y) in a.columns().iter().zip(b.columns()) {
        let ok = if x.dtype().is_float() {
            let d = (x.as_materialized_series() - y.as_materialized_series())?;
            d.f64()?.iter().flatten().all(|d| d.abs() < 1e-6)
        } else {
            x.as_materialized_series()
                .equals_missing(y.as_materialized_series())
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: usize| match a.map(|a| a.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(Error::Invalid(
            "ROWS and PARTITIONS must be positive whole numbers".into(),
        )),
    };
    let rows = parse(args.next(), 2_000_000)?;
    let partitions = parse(args.next(), 8)?;
    let pe = |e: PolarsError| Error::Invalid(e.to_string());

    let cluster = Cluster::local()?;
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let data = generate(rows).map_err(pe)?;
    Frame::from_dataframe(&cluster, data.clone(), partitions)?.to_parquet(dir.path())?;
    let glob = format!("{}/*.parquet", dir.path().display());
    println!(
        "{rows} rows in {partitions} Parquet files, {} threads",
        cluster.threads()
    );

    type Question = (&'static str, Vec<&'static str>, Vec<Expr>);
    let questions: Vec<Question> = vec![
        (
            "q1: sum v1 by id1",
            vec!["id1"],
            vec![col("v1").sum().alias("v1")],
        ),
        (
            "q2: sum v1 by id1, id2",
            vec!["id1", "id2"],
            vec![col("v1").sum().alias("v1")],
        ),
        (
            "mean, std of v3 by id2",
            vec!["id2"],
            vec![
                col("v3").mean().alias("mean"),
                col("v3").std(1).alias("std"),
            ],
        ),
        (
            "median v3 by id2",
            vec!["id2"],
            vec![col("v3").median().alias("median")],
        ),
    ];
    for (name, keys, aggs) in questions {
        let start = Instant::now();
        let frame = Frame::scan_parquet(&cluster, [glob.as_str()])?;
        let got = frame.group_by(keys.clone()).agg(&aggs)?.compute()?;
        let ours = start.elapsed().as_secs_f64();

        let start = Instant::now();
        let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
        let want = data
            .clone()
            .lazy()
            .group_by(key_exprs)
            .agg(&aggs)
            .collect()
            .map_err(pe)?;
        let plain = start.elapsed().as_secs_f64();
        let agree = same(got.clone(), want, &keys).map_err(pe)?;
        println!(
            "{name:<24} {:>6} groups  frame {ours:.3} s  polars {plain:.3} s  agree: {agree}",
            got.height()
        );
        if !agree {
            return Err(Error::Invalid(format!("{name}: the answers differ")));
        }
    }

    // A join with a table in several partitions: both sides are shuffled on the key.
    let labels = df!(
        "id2" => (1..=100i64).collect::<Vec<_>>(),
        "label" => (1..=100).map(|i| format!("l{}", i % 7)).collect::<Vec<_>>(),
    )
    .map_err(pe)?;
    let start = Instant::now();
    let frame = Frame::scan_parquet(&cluster, [glob.as_str()])?;
    let right = Frame::from_dataframe(&cluster, labels.clone(), 4)?;
    let got = frame
        .join(&right, &["id2"], &["id2"], onebox::frame::JoinHow::Inner)?
        .group_by(["label"])
        .agg([col("v1").sum().alias("v1")])?
        .compute()?;
    let ours = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let want = data
        .lazy()
        .join(
            labels.lazy(),
            [col("id2")],
            [col("id2")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("label")])
        .agg([col("v1").sum().alias("v1")])
        .collect()
        .map_err(pe)?;
    let plain = start.elapsed().as_secs_f64();
    let agree = same(got.clone(), want, &["label"]).map_err(pe)?;
    println!(
        "{:<24} {:>6} groups  frame {ours:.3} s  polars {plain:.3} s  agree: {agree}",
        "join on id2, sum by label",
        got.height()
    );
    if !agree {
        return Err(Error::Invalid("the join's answers differ".into()));
    }
    Ok(())
}
