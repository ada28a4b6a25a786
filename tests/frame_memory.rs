//! Bounded memory: a shuffle join of two frames, each three times the memory budget, then a
//! group-by of the result, and a group-by of one side in which every key is distinct, finish
//! with the process's peak resident memory growing by less than the budget (partitions stream
//! from Parquet files; shuffle and group-by buckets beyond a sixteenth of the budget spill to
//! disk).
//!
//! Its own test binary, because the peak (`VmHWM`) is process-wide.
#![cfg(feature = "frame")]

use std::path::Path;

use onebox::frame::{Frame, JoinHow};
use polars::prelude::*;

mod common;
use common::{SplitMix64, peak_rss};

#[test]
fn a_join_and_group_by_of_frames_three_times_the_budget() {
    let Some(_) = peak_rss() else {
        eprintln!("skipped: /proc/self/status has no VmHWM on this system");
        return;
    };
    const BUDGET: u64 = 48_000_000;
    // Three i64/f64 columns: 24 bytes a row; each side three times the budget.
    const ROWS: u64 = 3 * BUDGET / 24;
    const FILES: u64 = 64;
    const GROUPS: i64 = 97;
    let dir = tempfile::tempdir().unwrap();
    let (left_dir, right_dir) = (dir.path().join("left"), dir.path().join("right"));
    let cluster = onebox::Cluster::builder()
        .threads(2)
        .memory_limit(BUDGET.to_string())
        .ignore_env()
        .build()
        .unwrap();
    // A small run first: its peak includes the code pages of polars' readers, writers and
    // kernels, paged in from the test binary on first use, which are not data.
    let small = tempfile::tempdir().unwrap();
    let (small_left, small_right) = (small.path().join("left"), small.path().join("right"));
    write_sides(&small_left, &small_right, 1000, 4, GROUPS);
    let (_, _, files) = run(&cluster, &small_left, &small_right, GROUPS);
    assert_eq!(
        files, 0,
        "the small shuffles spilled though they fit in memory"
    );
    let want = write_sides(&left_dir, &right_dir, ROWS, FILES, GROUPS);
    let spills = shuffle_dirs();
    let before = peak_rss().unwrap();
    let (n, sum, files) = run(&cluster, &left_dir, &right_dir, GROUPS);
    // A group-by in which every key is distinct (the rows, not partials, go to the buckets),
    // written to files.
    let distinct_dir = dir.path().join("distinct");
    distinct_to_parquet(&cluster, &left_dir, &distinct_dir);
    let grew = peak_rss().unwrap().saturating_sub(before);
    let left_sum = sums_by_group(&distinct_dir, GROUPS);
    eprintln!(
        "peak resident memory grew by {} MB (budget {} MB)",
        grew / 1_000_000,
        BUDGET / 1_000_000
    );
    assert_eq!(n, want.n);
    assert_eq!(sum, want.sum);
    assert_eq!(left_sum, want.left_sum);
    assert!(grew < BUDGET, "peak grew by {grew} bytes, budget {BUDGET}");
    // The shuffles spilled bucket files, and they were removed with the frames.
    assert!(files > 0, "the shuffles wrote no bucket files");
    assert_eq!(
        shuffle_dirs(),
        spills,
        "a shuffle directory was left behind"
    );
}

/// The left side grouped by `id` (all distinct: six million groups, three times the budget),
/// written to Parquet files under `out`.
fn distinct_to_parquet(cluster: &onebox::Cluster, left_dir: &Path, out: &Path) {
    let left = Frame::scan_parquet(cluster, [format!("{}/*.parquet", left_dir.display())]).unwrap();
    left.group_by(["id"])
        .agg([col("v").sum().alias("v")])
        .unwrap()
        .to_parquet(out)
        .unwrap();
}

/// Per group `id % groups`, the sum of `v` of the Parquet files under `dir` (read by polars).
fn sums_by_group(dir: &Path, groups: i64) -> Vec<i64> {
    let got = LazyFrame::scan_parquet(
        PlRefPath::new(format!("{}/*.parquet", dir.display())),
        Default::default(),
    )
    .unwrap()
    .group_by([(col("id") % lit(groups)).alias("g")])
    .agg([col("v").sum()])
    .sort(["g"], Default::default())
    .collect()
    .unwrap();
    let c = got.column("v").unwrap().cast(&DataType::Int64).unwrap();
    c.i64().unwrap().into_no_null_iter().collect()
}

/// The shuffle directories in the temporary directory.
fn shuffle_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("onebox-frame-shuffle-"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// The join of the two sides, grouped by `id % groups`: the count and sum of `v + w`, and the
/// number of bucket files the shuffles spilled.
fn run(
    cluster: &onebox::Cluster,
    left_dir: &Path,
    right_dir: &Path,
    groups: i64,
) -> (Vec<i64>, Vec<i64>, usize) {
    let left = Frame::scan_parquet(cluster, [format!("{}/*.parquet", left_dir.display())]).unwrap();
    let right =
        Frame::scan_parquet(cluster, [format!("{}/*.parquet", right_dir.display())]).unwrap();
    let joined = left.join(&right, &["id"], &["id"], JoinHow::Inner).unwrap();
    // Both sides have several partitions: the join shuffles them (into temporary files past
    // a sixteenth of the budget each).
    let got = joined
        .clone()
        .with_columns([
            (col("id") % lit(groups)).alias("g"),
            (col("v") + col("w")).alias("s"),
        ])
        .unwrap()
        .group_by(["g"])
        .agg([len().alias("n"), col("s").sum().alias("sum")])
        .unwrap()
        .sort(["g"], false)
        .unwrap()
        .compute()
        .unwrap();
    let files: usize = shuffle_dirs()
        .iter()
        .map(|d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0))
        .sum();
    drop(joined);
    let column = |name: &str| -> Vec<i64> {
        let c = got.column(name).unwrap().cast(&DataType::Int64).unwrap();
        c.i64().unwrap().into_no_null_iter().collect()
    };
    (column("n"), column("sum"), files)
}

/// The expected answers: per group `id % groups`, the count and the sum of left `v` + right
/// `w` of the join, and the sum of left `v` alone.
struct Answers {
    n: Vec<i64>,
    sum: Vec<i64>,
    left_sum: Vec<i64>,
}

/// Writes `rows` rows to each side in `files` Parquet files. Left: ids 0..rows in order;
/// right: the same ids in another order, every third missing.
fn write_sides(left_dir: &Path, right_dir: &Path, rows: u64, files: u64, groups: i64) -> Answers {
    std::fs::create_dir_all(left_dir).unwrap();
    std::fs::create_dir_all(right_dir).unwrap();
    let mut rng = SplitMix64(7);
    let mut want_n = vec![0i64; groups as usize];
    let mut want_sum = vec![0i64; groups as usize];
    let mut left_sum = vec![0i64; groups as usize];
    let per_file = rows / files;
    for f in 0..files {
        let ids: Vec<i64> = ((f * per_file) as i64..((f + 1) * per_file) as i64).collect();
        let v: Vec<i64> = ids.iter().map(|_| rng.below(1000) as i64).collect();
        let mut left = df!(
            "id" => &ids,
            "v" => &v,
            "x" => ids.iter().map(|i| *i as f64 * 0.5).collect::<Vec<_>>(),
        )
        .unwrap();
        let file = std::fs::File::create(left_dir.join(format!("{f:03}.parquet"))).unwrap();
        ParquetWriter::new(file).finish(&mut left).unwrap();
        // The right side's file f holds ids from the mirrored left file, every third dropped.
        let g = files - 1 - f;
        let rids: Vec<i64> = ((g * per_file) as i64..((g + 1) * per_file) as i64)
            .rev()
            .filter(|i| i % 3 != 0)
            .collect();
        let w: Vec<i64> = rids.iter().map(|i| i % 10).collect();
        let mut right = df!(
            "id" => &rids,
            "w" => &w,
            "y" => rids.iter().map(|i| *i as f64).collect::<Vec<_>>(),
        )
        .unwrap();
        let file = std::fs::File::create(right_dir.join(format!("{f:03}.parquet"))).unwrap();
        ParquetWriter::new(file).finish(&mut right).unwrap();
        for (id, v) in ids.iter().zip(&v) {
            left_sum[(id % groups) as usize] += v;
            if id % 3 != 0 {
                want_n[(id % groups) as usize] += 1;
                want_sum[(id % groups) as usize] += v + id % 10;
            }
        }
    }
    Answers {
        n: want_n,
        sum: want_sum,
        left_sum,
    }
}
