//! W5: the db-benchmark group-by questions q1, q2, q3, q5 and q10 on a [`Frame`] scanned from
//! the 8 Parquet files `w5_frames.py` made (in `$ONEBOX_W5_DATA`), a partition per file.
//!
//! Each repetition scans the files again (as every peer does), aggregates each partition and
//! combines the partial results exactly, and checks the answer against the checksums of the
//! data set's `MANIFEST.json` (groups, and each result column's sum, computed by polars when
//! the data were made). Taking turns with it, the same question as one lazy query of the polars
//! crate onebox is built on ([`POLARS_CRATE`], streaming engine, the same thread count): the
//! engine's own speed in this build, next to the Python polars of the peers. Needs the `frame`
//! feature.

use std::path::PathBuf;
use std::time::Instant;

use onebox::frame::Frame;
use onebox::frame::polars::prelude::*;
use serde_json::{Value, json};

use super::{Bench, Outcome, Rep, check};

/// An aggregation of a question: (result column, source column, "sum" | "mean" | "count").
type Aggregation = (&'static str, &'static str, &'static str);

/// The questions: name, group keys, aggregations.
const QUESTIONS: &[(&str, &[&str], &[Aggregation])] = &[
    ("q1", &["id1"], &[("v1", "v1", "sum")]),
    ("q2", &["id1", "id2"], &[("v1", "v1", "sum")]),
    ("q3", &["id3"], &[("v1", "v1", "sum"), ("v3", "v3", "mean")]),
    (
        "q5",
        &["id6"],
        &[
            ("v1", "v1", "sum"),
            ("v2", "v2", "sum"),
            ("v3", "v3", "sum"),
        ],
    ),
    (
        "q10",
        &["id1", "id2", "id3", "id4", "id5", "id6"],
        &[("v3", "v3", "sum"), ("count", "v1", "count")],
    ),
];

fn aggregation(name: &str, source: &str, how: &str) -> Expr {
    let c = col(source);
    match how {
        "sum" => c.sum(),
        "mean" => c.mean(),
        _ => c.count(),
    }
    .alias(name)
}

/// Whether the result's checksum (groups, column sums) matches the manifest's.
fn matches(df: &DataFrame, want: &Value) -> std::result::Result<bool, Box<dyn std::error::Error>> {
    if want.get("groups").and_then(Value::as_u64) != Some(df.height() as u64) {
        return Ok(false);
    }
    for (key, expected) in want.as_object().into_iter().flatten() {
        if key == "groups" {
            continue;
        }
        let column = df.column(key)?;
        let ok = if expected.is_f64() {
            let got = column.cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0);
            let want = expected.as_f64().unwrap_or(f64::NAN);
            (got - want).abs() <= 1e-9 * want.abs().max(1.0)
        } else {
            let got = column.cast(&DataType::Int64)?.i64()?.sum().unwrap_or(0);
            Some(got) == expected.as_i64()
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The system name of the polars crate's rows.
pub(super) const POLARS_CRATE: &str = "polars crate 0.55, one lazy query";

/// The case of the polars crate's rows for question `q` (the harness picks rows by case).
pub(super) fn crate_case(q: &str) -> String {
    format!("{q}:crate")
}

/// One polars scan of all the files.
pub(super) fn scan(files: &[String]) -> PolarsResult<LazyFrame> {
    let paths = files.iter().map(|f| PlRefPath::new(f.as_str())).collect();
    LazyFrame::scan_parquet_files(paths, Default::default())
}

/// A lazy query collected as onebox collects a partition's (streaming engine).
pub(super) fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// A repetition of a question (W5 or W5J: `case`) by `system`: `seconds` over the data set's rows
/// (from its `manifest`), with `info` for the notes.
pub(super) fn question_rep<'a>(
    case: &'a str,
    system: &'a str,
    manifest: &Value,
    seconds: f64,
    info: Value,
) -> Rep<'a> {
    Rep {
        case,
        system,
        count: manifest["rows"].as_u64().unwrap_or(0) as usize,
        unit: "row",
        seconds,
        phases: json!({}),
        info,
    }
}

pub(super) fn run(b: &Bench) -> Outcome {
    let dir = PathBuf::from(std::env::var("ONEBOX_W5_DATA").map_err(
        |_| "W5 needs $ONEBOX_W5_DATA (run it through `w5_frames.py with-data ROWS -- ...`)",
    )?);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json"))?)?;
    let files: Vec<String> = (0..8)
        .map(|i| dir.join(format!("part-{i}.parquet")).display().to_string())
        .collect();
    let cluster = b.cluster()?;
    for &(q, keys, aggs) in QUESTIONS.iter().filter(|(q, ..)| b.runs(q)) {
        let want = &manifest["checksums"][q];
        let crate_case = crate_case(q);
        let exprs: Vec<Expr> = aggs
            .iter()
            .map(|&(name, source, how)| aggregation(name, source, how))
            .collect();
        let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
        b.alternate(2, |s| {
            let t0 = Instant::now();
            let (df, case, system) = if s == 0 {
                let frame = Frame::scan_parquet(&cluster, &files)?;
                (
                    frame.group_by(keys).agg(&exprs)?.compute()?,
                    q,
                    "onebox Frame",
                )
            } else {
                let lf = scan(&files)?.group_by(&key_exprs).agg(&exprs);
                (collect(lf)?, crate_case.as_str(), POLARS_CRATE)
            };
            let seconds = t0.elapsed().as_secs_f64();
            check(matches(&df, want)?, || {
                format!("W5 {q} ({system}): the answer's checksum differs from {want}")
            })?;
            let info = json!({"groups": df.height(), "partitions": files.len()});
            Ok(question_rep(case, system, &manifest, seconds, info))
        })?;
    }
    Ok(())
}
