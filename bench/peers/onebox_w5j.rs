//! W5J: the db-benchmark join questions q1 to q5 on [`Frame`]s scanned from the Parquet files
//! `w5j_joins.py` made (in `$ONEBOX_W5J_DATA`), a partition per file: the left table `x` in 8
//! files, `small` and `medium` in one each (so [`Frame::join`] broadcasts them), `big` in 8
//! (so the join of `x` and `big` is a shuffle join).
//!
//! Each repetition scans the files again (as every peer does), computes the whole joined
//! frame, and checks it against the checksums of the data set's `MANIFEST.json` (rows, sum of
//! v1, sum of v2, computed by polars when the data were made). Taking turns with it, the same
//! join as one lazy query of the polars crate (as in W5). Needs the `frame` feature.

use std::path::{Path, PathBuf};
use std::time::Instant;

use onebox::frame::polars::prelude::*;
use onebox::frame::{Frame, JoinHow};
use serde_json::{Value, json};

use super::w5::{POLARS_CRATE, collect, crate_case, question_rep, scan};
use super::{Bench, Outcome, check};

/// The questions: name, right table, key, how.
const QUESTIONS: &[(&str, &str, &str, JoinHow)] = &[
    ("q1", "small", "id1", JoinHow::Inner),
    ("q2", "medium", "id2", JoinHow::Inner),
    ("q3", "medium", "id2", JoinHow::Left),
    ("q4", "medium", "id5", JoinHow::Inner),
    ("q5", "big", "id3", JoinHow::Inner),
];

/// The Parquet files of `table`, sorted.
fn files(dir: &Path, table: &str) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{table}-")) && n.ends_with(".parquet"))
        })
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    Ok(out)
}

/// Whether the result's rows and sums of v1 and v2 match the manifest's.
fn matches(df: &DataFrame, want: &Value) -> std::result::Result<bool, Box<dyn std::error::Error>> {
    if want.get("rows").and_then(Value::as_u64) != Some(df.height() as u64) {
        return Ok(false);
    }
    for c in ["v1", "v2"] {
        let got = df
            .column(c)?
            .cast(&DataType::Float64)?
            .f64()?
            .sum()
            .unwrap_or(0.0);
        let want = want.get(c).and_then(Value::as_f64).unwrap_or(f64::NAN);
        if (got - want).abs() > 1e-9 * want.abs().max(1.0) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(super) fn run(b: &Bench) -> Outcome {
    let dir = PathBuf::from(std::env::var("ONEBOX_W5J_DATA").map_err(
        |_| "W5J needs $ONEBOX_W5J_DATA (run it through `w5j_joins.py with-data ROWS -- ...`)",
    )?);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json"))?)?;
    let x_files = files(&dir, "x")?;
    let cluster = b.cluster()?;
    for &(q, table, key, how) in QUESTIONS.iter().filter(|(q, ..)| b.runs(q)) {
        let want = &manifest["checksums"][q];
        let crate_case = crate_case(q);
        let right_files = files(&dir, table)?;
        let join_type = match how {
            JoinHow::Left => JoinType::Left,
            _ => JoinType::Inner,
        };
        b.alternate(2, |s| {
            let t0 = Instant::now();
            let (df, case, system) = if s == 0 {
                let x = Frame::scan_parquet(&cluster, &x_files)?;
                let right = Frame::scan_parquet(&cluster, &right_files)?;
                (
                    x.join(&right, &[key], &[key], how)?.compute()?,
                    q,
                    "onebox Frame",
                )
            } else {
                let on = [col(key)];
                let args = JoinArgs::new(join_type.clone());
                let lf = scan(&x_files)?.join(scan(&right_files)?, &on, &on, args);
                (collect(lf)?, crate_case.as_str(), POLARS_CRATE)
            };
            let seconds = t0.elapsed().as_secs_f64();
            check(matches(&df, want)?, || {
                format!("W5J {q} ({system}): the answer's checksum differs from {want}")
            })?;
            let info = json!({"rows out": df.height(), "right partitions": right_files.len()});
            Ok(question_rep(case, system, &manifest, seconds, info))
        })?;
    }
    Ok(())
}
