//! Frames: every operation against the same polars query on the whole data, on partitionings
//! with empty partitions, one partition and many, with nulls, NaN and unicode strings.
#![cfg(feature = "frame")]

use onebox::frame::{Frame, JoinHow, Keep};
use onebox::prelude::*;
use polars::prelude::*;

fn cluster() -> Cluster {
    Cluster::builder().threads(2).ignore_env().build().unwrap()
}

/// `n` rows: a unicode string key with nulls, a small integer key with nulls, floats with NaN
/// and nulls, integers.
fn data(n: usize) -> DataFrame {
    let names = ["α", "βeta", "日本", "x", "émile", "🦀"];
    let mut s = 12345u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as usize
    };
    let mut k = Vec::new();
    let mut g = Vec::new();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let r = next();
        k.push(if r % 11 == 0 {
            None
        } else {
            Some(names[r % names.len()])
        });
        g.push(if r % 13 == 0 {
            None
        } else {
            Some((r % 4) as i64)
        });
        x.push(match r % 17 {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some((r % 1000) as f64 / 7.0 - 50.0),
        });
        y.push(i as i64 * 3 - 100);
    }
    df!("k" => k, "g" => g, "x" => x, "y" => y).unwrap()
}

/// `df` cut into partitions in several ways: one, a few, more than its rows (empty ones), and
/// explicit empty partitions between non-empty ones.
fn partitionings(c: &Cluster, df: &DataFrame) -> Vec<Frame> {
    let mut out = vec![
        Frame::from_dataframe(c, df.clone(), 1).unwrap(),
        Frame::from_dataframe(c, df.clone(), 3).unwrap(),
        Frame::from_dataframe(c, df.clone(), df.height() + 5).unwrap(),
    ];
    let h = df.height();
    let parts = vec![
        df.clear(),
        df.slice(0, h / 3),
        df.clear(),
        df.slice((h / 3) as i64, h - h / 3),
        df.clear(),
    ];
    out.push(Frame::from_partitions(c, parts).unwrap());
    out
}

/// Equal names, types and values; floats within a relative 1e-9, NaN equal to NaN.
fn assert_same(got: &DataFrame, want: &DataFrame) {
    assert_eq!(got.schema(), want.schema(), "schemas differ");
    assert_eq!(
        got.height(),
        want.height(),
        "heights differ:\n{got}\n{want}"
    );
    for (a, b) in got.columns().iter().zip(want.columns()) {
        let (a, b) = (a.as_materialized_series(), b.as_materialized_series());
        if a.dtype().is_float() {
            let a = a.cast(&DataType::Float64).unwrap();
            let b = b.cast(&DataType::Float64).unwrap();
            for (i, (u, v)) in a
                .f64()
                .unwrap()
                .iter()
                .zip(b.f64().unwrap().iter())
                .enumerate()
            {
                let ok = match (u, v) {
                    (None, None) => true,
                    (Some(u), Some(v)) if u.is_nan() || v.is_nan() => u.is_nan() && v.is_nan(),
                    (Some(u), Some(v)) => (u - v).abs() <= 1e-9 * (1.0 + u.abs().max(v.abs())),
                    _ => false,
                };
                assert!(ok, "column {} row {i}: {u:?} vs {v:?}", a.name());
            }
        } else {
            assert!(
                a.equals_missing(b),
                "column {} differs:\n{a}\n{b}",
                a.name()
            );
        }
    }
}

fn sorted(df: DataFrame, by: &[&str]) -> DataFrame {
    df.lazy()
        .sort(
            by.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            SortMultipleOptions::default()
                .with_nulls_last(true)
                .with_maintain_order(true),
        )
        .collect()
        .unwrap()
}

#[test]
fn per_partition_operations_match_polars() {
    let c = cluster();
    let df = data(120);
    let want = df
        .clone()
        .lazy()
        .filter(col("x").gt(lit(-20.0)).or(col("k").is_null()))
        .with_columns([
            (col("y") * lit(2)).alias("y2"),
            (col("x") - col("y").cast(DataType::Float64)).alias("ax"),
        ])
        .rename(["k"], ["key"], true)
        .drop(by_name(["g"], true, false))
        .with_columns([col("y").cast(DataType::Float32)])
        .select([col("key"), col("x"), col("y"), col("y2"), col("ax")])
        .collect()
        .unwrap();
    for f in partitionings(&c, &df) {
        let got = f
            .filter(col("x").gt(lit(-20.0)).or(col("k").is_null()))
            .unwrap()
            .with_columns([
                (col("y") * lit(2)).alias("y2"),
                (col("x") - col("y").cast(DataType::Float64)).alias("ax"),
            ])
            .unwrap()
            .rename(["k"], ["key"])
            .unwrap()
            .drop(["g"])
            .unwrap()
            .cast([("y", DataType::Float32)])
            .unwrap()
            .select([col("key"), col("x"), col("y"), col("y2"), col("ax")])
            .unwrap();
        assert_eq!(got.schema().as_ref(), want.schema().as_ref());
        assert_same(&got.compute().unwrap(), &want);
    }
}

#[test]
fn map_partitions_and_head() {
    let c = cluster();
    let df = data(50);
    for f in partitionings(&c, &df) {
        let doubled = f
            .clone()
            .map_partitions(|d| d.lazy().with_columns([col("y") * lit(2)]).collect())
            .unwrap();
        let want = df
            .clone()
            .lazy()
            .with_columns([col("y") * lit(2)])
            .collect()
            .unwrap();
        assert_same(&doubled.compute().unwrap(), &want);
        for n in [0, 1, 7, 50, 80] {
            assert_same(&f.head(n).unwrap(), &df.head(Some(n)));
            assert_same(&f.tail(n).unwrap(), &df.tail(Some(n)));
        }
    }
}

#[test]
fn head_computes_only_the_partitions_it_needs() {
    let c = cluster();
    let df = data(30);
    let f = Frame::from_dataframe(&c, df.clone(), 3)
        .unwrap()
        .map_partitions(|d| {
            // The last partition (rows 20..30) fails: head(15) must not compute it.
            let y = d.column("y")?.i64()?;
            if !y.is_empty() && y.get(0) == Some(20 * 3 - 100) {
                polars_bail!(ComputeError: "the third partition was computed");
            }
            Ok(d)
        })
        .unwrap();
    assert_same(&f.head(15).unwrap(), &df.head(Some(15)));
    let err = f.head(25).unwrap_err().to_string();
    assert!(err.contains("third partition"), "{err}");
}

#[test]
fn group_by_matches_polars() {
    let c = cluster();
    let df = data(300);
    let aggs = [
        col("y").sum().alias("sum_y"),
        col("x").sum().alias("sum_x"),
        len().alias("n"),
        col("x").count().alias("count_x"),
        col("x").mean().alias("mean_x"),
        col("y").mean(),
        col("x").min().alias("min_x"),
        col("x").max().alias("max_x"),
        col("k").min().alias("min_k"),
        col("y").first().alias("first_y"),
        col("x").last().alias("last_x"),
        col("y").var(1).alias("var_y"),
        col("x").std(1).alias("std_x"),
        (col("y") * lit(2) + col("x")).var(0).alias("var0"),
        col("y").std(1).alias("std_y"),
        col("x").n_unique().alias("nu_x"),
        col("k").n_unique().alias("nu_k"),
        (col("y") % lit(5)).n_unique().alias("nu_y5"),
    ];
    for keys in [vec!["k"], vec!["k", "g"]] {
        let want = df
            .clone()
            .lazy()
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(&aggs)
            .collect()
            .unwrap();
        let want = sorted(want, &keys);
        for f in partitionings(&c, &df) {
            let got = f
                .group_by(keys.clone())
                .agg(&aggs)
                .unwrap()
                .compute()
                .unwrap();
            assert_same(&sorted(got, &keys), &want);
        }
    }
}

#[test]
fn group_by_tree_of_many_partitions() {
    // 70 partitions: more than one level of combine tasks.
    let c = cluster();
    let df = data(500);
    let aggs = [col("x").mean(), col("y").var(1), len()];
    let want = sorted(
        df.clone()
            .lazy()
            .group_by([col("g")])
            .agg(&aggs)
            .collect()
            .unwrap(),
        &["g"],
    );
    let got = Frame::from_dataframe(&c, df, 70)
        .unwrap()
        .group_by(["g"])
        .agg(&aggs)
        .unwrap()
        .compute()
        .unwrap();
    assert_same(&sorted(got, &["g"]), &want);
}

#[test]
fn group_by_rejects_unknown_keys() {
    let c = cluster();
    let f = Frame::from_dataframe(&c, data(10), 2).unwrap();
    let err = f.group_by(["nope"]).agg([len()]).err().unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn joins_and_sort_match_polars() {
    let c = cluster();
    let df = data(150);
    let labels = df!(
        "k" => [Some("α"), Some("日本"), Some("🦀"), None, Some("nobody")],
        "label" => ["alpha", "nihon", "crab", "null key", "unused"],
    )
    .unwrap();
    let all = ["k", "g", "x", "y", "label"];
    for (how, jt) in [
        (JoinHow::Inner, JoinType::Inner),
        (JoinHow::Left, JoinType::Left),
        (JoinHow::Full, JoinType::Full),
    ] {
        let want = df
            .clone()
            .lazy()
            .join(
                labels.clone().lazy(),
                [col("k")],
                [col("k")],
                JoinArgs::new(jt),
            )
            .collect()
            .unwrap();
        for f in partitionings(&c, &df) {
            for right in partitionings(&c, &labels) {
                let got = f
                    .clone()
                    .join(&right, &["k"], &["k"], how)
                    .unwrap()
                    .compute()
                    .unwrap();
                let by: &[&str] = if how == JoinHow::Full {
                    &["k", "g", "x", "y", "k_right", "label"]
                } else {
                    &all
                };
                assert_same(&sorted(got, by), &sorted(want.clone(), by));
            }
        }
    }
    let want = sorted(df.clone(), &["k", "y"]);
    for f in partitionings(&c, &df) {
        assert_same(
            &f.sort(["k", "y"], false).unwrap().compute().unwrap(),
            &want,
        );
    }
}

/// A sort by range partitioning gives polars' sort of the whole frame (so its partitions come
/// in order): strings, integers, floats with NaN, nulls, ascending and descending, equal keys
/// in their original order, on every partitioning.
#[test]
fn sorts_range_partitioned_like_polars() {
    let c = cluster();
    let df = data(300);
    for (by, descending) in [
        (vec!["k", "y"], false),
        (vec!["k"], true),
        (vec!["x"], false),
        (vec!["x", "y"], true),
        (vec!["g"], false),
        (vec!["y"], true),
    ] {
        let want = df
            .clone()
            .lazy()
            .sort(
                by.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                SortMultipleOptions::default()
                    .with_order_descending(descending)
                    .with_nulls_last(true)
                    .with_maintain_order(true),
            )
            .collect()
            .unwrap();
        for f in partitionings(&c, &df) {
            let n = f.npartitions();
            let s = f.sort(by.clone(), descending).unwrap();
            // as many ranges as distinct boundaries were found, at most the frame's partitions
            assert!(s.npartitions() <= n.clamp(1, 64), "{by:?}");
            if n == 3 && by == ["y"] {
                // unique keys: three ranges
                assert_eq!(s.npartitions(), 3);
            }
            assert_same(&s.compute().unwrap(), &want);
        }
    }
    let err = Frame::from_dataframe(&c, df, 3)
        .unwrap()
        .sort(["nope"], false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn parquet_round_trip_and_csv_scan() {
    let c = cluster();
    let df = data(90);
    let dir = tempfile::tempdir().unwrap();
    let f = Frame::from_dataframe(&c, df.clone(), 4).unwrap();
    let files = f.to_parquet(dir.path().join("out")).unwrap();
    assert_eq!(files.len(), 4);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let glob = format!("{}/out/*.parquet", dir.path().display());
    let back = Frame::scan_parquet(&c, [glob.as_str()]).unwrap();
    assert_eq!(back.npartitions(), 4);
    assert_same(&back.compute().unwrap(), &df);

    // CSV: three files, one of them only a header.
    let mut names = Vec::new();
    for (i, (start, len)) in [(0i64, 40usize), (40, 0), (40, 50)].into_iter().enumerate() {
        let path = dir.path().join(format!("p{i}.csv"));
        let mut part = df.slice(start, len).select(["g", "y"]).unwrap();
        let mut file = std::fs::File::create(&path).unwrap();
        CsvWriter::new(&mut file).finish(&mut part).unwrap();
        names.push(path.to_string_lossy().into_owned());
    }
    let csv = Frame::scan_csv(&c, &names).unwrap();
    let written = csv.to_csv(dir.path().join("csv-out")).unwrap();
    assert_eq!(written.len(), 3);
    let again: Vec<String> = written
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_same(
        &Frame::scan_csv(&c, &again).unwrap().compute().unwrap(),
        &df.select(["g", "y"]).unwrap(),
    );
    let want = df.select(["g", "y"]).unwrap();
    let got = csv.filter(col("y").gt(lit(0))).unwrap().compute().unwrap();
    let want = want.lazy().filter(col("y").gt(lit(0))).collect().unwrap();
    assert_same(&got, &want);
}

#[test]
fn bad_input_names_the_file_or_column() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir
        .path()
        .join("missing.csv")
        .to_string_lossy()
        .into_owned();
    let err = Frame::scan_csv(&c, [missing.as_str()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
    let glob = format!("{}/*.parquet", dir.path().display());
    let err = Frame::scan_parquet(&c, [glob.as_str()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("matches no file"), "{err}");

    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    let d = dir.path().join("d.csv");
    std::fs::write(&a, "id,v\n1,2\n").unwrap();
    std::fs::write(&b, "id,v\n1,x\n").unwrap();
    std::fs::write(&d, "id\n1\n").unwrap();
    let (a, b, d) = (
        a.to_string_lossy(),
        b.to_string_lossy(),
        d.to_string_lossy(),
    );
    // b.csv's "v" does not parse as the integers a.csv has: its task fails, naming it.
    let f = Frame::scan_csv(&c, [&*a, &*b]).unwrap();
    let err = f.compute().unwrap_err().to_string();
    assert!(err.contains("b.csv"), "{err}");
    let err = Frame::scan_csv(&c, [&*a, &*d]).err().unwrap().to_string();
    assert!(err.contains("d.csv") && err.contains("missing"), "{err}");

    // Parquet files whose column types differ: an error naming the second file and column.
    let p1 = dir.path().join("p1.parquet");
    let p2 = dir.path().join("p2.parquet");
    let mut one = df!("id" => [1i64, 2], "v" => [1.5f64, 2.5]).unwrap();
    let mut two = df!("id" => [3i64], "v" => ["three"]).unwrap();
    ParquetWriter::new(std::fs::File::create(&p1).unwrap())
        .finish(&mut one)
        .unwrap();
    ParquetWriter::new(std::fs::File::create(&p2).unwrap())
        .finish(&mut two)
        .unwrap();
    let glob = format!("{}/p*.parquet", dir.path().display());
    let err = Frame::scan_parquet(&c, [glob.as_str()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("p2.parquet") && err.contains("\"v\""), "{err}");

    let f = Frame::scan_csv(&c, [&*a]).unwrap();
    let err = f.clone().select([col("nope")]).err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");
    let err = f.clone().drop(["nope"]).err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");
    let err = f.filter(col("nope").gt(lit(1))).err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn rows() -> impl Strategy<Value = Vec<(Option<i32>, Option<i64>, Option<f64>)>> {
        proptest::collection::vec(
            (
                proptest::option::of(0..4i32),
                proptest::option::of(-1000..1000i64),
                proptest::option::of(prop_oneof![Just(f64::NAN), (-100.0..100.0f64),]),
            ),
            0..60,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any cut of any rows into partitions (empty ones included) gives polars' answer.
        #[test]
        fn any_partitioning_agrees(rows in rows(), cuts in proptest::collection::vec(0..70usize, 0..6)) {
            let c = cluster();
            let df = df!(
                "k" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                "v" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                "x" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )
            .unwrap();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.min(&df.height()).to_owned()).collect();
            bounds.push(0);
            bounds.push(df.height());
            bounds.sort();
            let parts: Vec<DataFrame> = bounds
                .windows(2)
                .map(|w| df.slice(w[0] as i64, w[1] - w[0]))
                .collect();
            let f = Frame::from_partitions(&c, parts).unwrap();

            let aggs = [
                col("v").sum(),
                col("x").mean().alias("mean_x"),
                col("v").min().alias("min_v"),
                col("x").max().alias("max_x"),
                col("v").n_unique().alias("nu_v"),
                col("x").var(1).alias("var_x"),
                len(),
                col("v").first().alias("first_v"),
            ];
            let want = sorted(df.clone().lazy().group_by([col("k")]).agg(&aggs).collect().unwrap(), &["k"]);
            let got = f.clone().group_by(["k"]).agg(&aggs).unwrap().compute().unwrap();
            assert_same(&sorted(got, &["k"]), &want);

            let want = df.clone().lazy().filter(col("v").gt(lit(0))).select([col("x"), col("k")]).collect().unwrap();
            let got = f.filter(col("v").gt(lit(0))).unwrap().select([col("x"), col("k")]).unwrap().compute().unwrap();
            assert_same(&got, &want);
        }
    }
}

#[test]
fn a_chain_of_operations_is_one_task_per_partition() {
    let c = cluster();
    let events = c.events();
    let f = Frame::from_dataframe(&c, data(40), 4)
        .unwrap()
        .filter(col("y").gt(lit(0)))
        .unwrap()
        .with_columns([(col("y") + lit(1)).alias("z")])
        .unwrap()
        .map_partitions(Ok)
        .unwrap()
        .select([col("k"), col("z")])
        .unwrap()
        .rename(["z"], ["w"])
        .unwrap();
    let agg = f.group_by(["k"]).agg([col("w").sum()]).unwrap();
    agg.compute().unwrap();
    let labels: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            onebox::diagnostics::Event::Task(t) => Some(t.key.group().to_string()),
            _ => None,
        })
        .collect();
    let per_partition = labels
        .iter()
        .filter(|l| l.starts_with("frame-agg["))
        .count();
    assert_eq!(per_partition, 4, "{labels:?}");
    // 4 partition tasks, one saying they are stored, a task per result partition (each
    // combining its bucket), one stacking them.
    let count = |prefix: &str| labels.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("frame-agg-stored"), 1, "{labels:?}");
    assert_eq!(count("frame-partition["), 4, "{labels:?}");
    assert_eq!(labels.len(), 10, "{labels:?}");
}

/// The left rows whose keys (none null) are among the right rows' keys (`semi`), or not
/// (`!semi`): a semi or anti join, computed row by row.
fn semi_anti_reference(
    left: &DataFrame,
    right: &DataFrame,
    left_on: &[&str],
    right_on: &[&str],
    semi: bool,
) -> DataFrame {
    let key = |df: &DataFrame, cols: &[&str], row: usize| -> Option<String> {
        let mut parts = Vec::new();
        for c in cols {
            let v = df.column(c).unwrap().get(row).unwrap();
            if v.is_null() {
                return None;
            }
            parts.push(format!("{v}"));
        }
        Some(parts.join("\u{1}"))
    };
    let set: std::collections::HashSet<String> = (0..right.height())
        .filter_map(|r| key(right, right_on, r))
        .collect();
    let keep: Vec<bool> = (0..left.height())
        .map(|r| key(left, left_on, r).is_some_and(|k| set.contains(&k)) == semi)
        .collect();
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    left.filter(&mask).unwrap()
}

/// Every join kind, by broadcast and by shuffle into 1, 3 and 8 partitions, on one key and on
/// two, against polars (inner, left, full) or a row-by-row reference (semi, anti).
#[test]
fn every_join_kind_by_broadcast_and_shuffle() {
    every_join_kind_on(cluster());
}

/// The same with a memory budget so small that the shuffles keep a few buckets in memory and
/// spill the rest to files.
#[test]
fn every_join_kind_with_shuffles_spilling() {
    let c = Cluster::builder()
        .threads(2)
        .memory_limit("16KB")
        .ignore_env()
        .build()
        .unwrap();
    every_join_kind_on(c);
}

fn every_join_kind_on(c: Cluster) {
    let df = data(90);
    let mut right = data(40)
        .lazy()
        .select([
            col("k"),
            col("g"),
            (col("y") * lit(7)).alias("r"),
            col("x").alias("rx"),
        ])
        .collect()
        .unwrap();
    // A key only on the right, a repeated key, and nulls.
    let extra = df!(
        "k" => [Some("nobody"), Some("α"), None],
        "g" => [Some(9i64), Some(1), None],
        "r" => [1i64, 2, 3],
        "rx" => [Some(f64::NAN), None, Some(0.5)],
    )
    .unwrap();
    right.vstack_mut(&extra).unwrap();
    let lefts = [
        Frame::from_dataframe(&c, df.clone(), 1).unwrap(),
        Frame::from_dataframe(&c, df.clone(), 4).unwrap(),
        Frame::from_partitions(
            &c,
            vec![df.clear(), df.slice(0, 50), df.clear(), df.slice(50, 40)],
        )
        .unwrap(),
    ];
    let rights = [
        Frame::from_dataframe(&c, right.clone(), 1).unwrap(),
        Frame::from_dataframe(&c, right.clone(), 5).unwrap(),
    ];
    for keys in [vec!["k"], vec!["k", "g"]] {
        for how in [
            JoinHow::Inner,
            JoinHow::Left,
            JoinHow::Full,
            JoinHow::Semi,
            JoinHow::Anti,
        ] {
            let want = match how {
                JoinHow::Semi | JoinHow::Anti => {
                    semi_anti_reference(&df, &right, &keys, &keys, how == JoinHow::Semi)
                }
                _ => {
                    let jt = match how {
                        JoinHow::Inner => JoinType::Inner,
                        JoinHow::Left => JoinType::Left,
                        _ => JoinType::Full,
                    };
                    let on: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
                    df.clone()
                        .lazy()
                        .join(right.clone().lazy(), &on, &on, JoinArgs::new(jt))
                        .collect()
                        .unwrap()
                }
            };
            let names: Vec<String> = want
                .get_column_names()
                .iter()
                .map(|s| s.to_string())
                .collect();
            let by: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            let want = sorted(want, &by);
            for l in &lefts {
                for r in &rights {
                    let mut results = vec![];
                    for n in [1, 3, 8] {
                        results.push(l.clone().shuffle_join(r, &keys, &keys, how, n).unwrap());
                    }
                    results.push(l.clone().join(r, &keys, &keys, how).unwrap());
                    if how != JoinHow::Full {
                        results.push(l.clone().broadcast_join(r, &keys, &keys, how).unwrap());
                    }
                    for f in results {
                        assert_eq!(f.schema().as_ref(), want.schema().as_ref(), "{how:?}");
                        let got = sorted(f.compute().unwrap(), &by);
                        assert_same(&got, &want);
                    }
                }
            }
        }
    }
    // A full join cannot be broadcast; keys must exist.
    let err = lefts[0]
        .clone()
        .broadcast_join(&rights[0], &["k"], &["k"], JoinHow::Full)
        .err()
        .unwrap();
    assert!(err.to_string().contains("full join"), "{err}");
    let err = lefts[0]
        .clone()
        .shuffle_join(&rights[0], &["k"], &["nope"], JoinHow::Inner, 2)
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// Keys of different types on the two sides (i32 and i64) still meet in a shuffle.
#[test]
fn shuffle_join_on_keys_of_different_types() {
    let c = cluster();
    let left =
        df!("id" => (0..50i32).collect::<Vec<_>>(), "a" => (0..50i64).collect::<Vec<_>>()).unwrap();
    let right = df!("id" => (25..75i64).collect::<Vec<_>>(), "b" => (0..50i64).collect::<Vec<_>>())
        .unwrap();
    let want = left
        .clone()
        .lazy()
        .join(
            right.clone().lazy(),
            [col("id")],
            [col("id")],
            JoinArgs::new(JoinType::Inner),
        )
        .collect();
    let l = Frame::from_dataframe(&c, left, 3).unwrap();
    let r = Frame::from_dataframe(&c, right, 4).unwrap();
    let got = l.shuffle_join(&r, &["id"], &["id"], JoinHow::Inner, 5);
    match (want, got) {
        (Ok(want), Ok(got)) => {
            let got = got.compute().unwrap();
            assert_same(&sorted(got, &["a"]), &sorted(want, &["a"]));
        }
        // polars refuses to join these types: so does the frame, before running anything.
        (Err(_), Err(_)) => {}
        (want, got) => panic!(
            "polars: {:?}, frame: {:?}",
            want.map(|_| ()),
            got.map(|_| ())
        ),
    }
}

#[test]
fn group_by_median_and_quantile_shuffle_and_match_polars() {
    let c = cluster();
    let df = data(200);
    let aggs = [
        col("x").median().alias("med_x"),
        col("y")
            .quantile(lit(0.3), QuantileMethod::Linear)
            .alias("q30_y"),
        col("y")
            .quantile(lit(0.9), QuantileMethod::Nearest)
            .alias("q90_y"),
        col("x").sum().alias("sum_x"),
        len().alias("n"),
    ];
    for keys in [vec!["k"], vec!["k", "g"]] {
        let want = df
            .clone()
            .lazy()
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(&aggs)
            .collect()
            .unwrap();
        let want = sorted(want, &keys);
        for f in partitionings(&c, &df) {
            let got = f.group_by(keys.clone()).agg(&aggs).unwrap();
            assert_eq!(got.schema().as_ref(), want.schema().as_ref());
            assert_same(&sorted(got.compute().unwrap(), &keys), &want);
        }
    }
}

#[test]
fn unique_and_value_counts_match_polars() {
    let c = cluster();
    // Few distinct rows: many duplicates, some with NaN and nulls.
    let base = data(300)
        .lazy()
        .select([
            col("k"),
            col("g"),
            (col("y") % lit(3)).alias("y3"),
            // Few distinct floats, NaN kept.
            when(col("x").is_nan())
                .then(lit(f64::NAN))
                .otherwise((col("x") / lit(20.0)).cast(DataType::Int64))
                .cast(DataType::Float64)
                .alias("xr"),
        ])
        .with_row_index("row", None)
        .collect()
        .unwrap();
    let all = ["row", "k", "g", "y3", "xr"];
    for (subset, keep) in [
        (Some(vec!["k"]), Keep::First),
        (Some(vec!["k", "g"]), Keep::Last),
        (Some(vec!["k", "g", "y3"]), Keep::None),
        (Some(vec!["xr"]), Keep::First),
    ] {
        let strategy = match keep {
            Keep::First => UniqueKeepStrategy::First,
            Keep::Last => UniqueKeepStrategy::Last,
            Keep::None => UniqueKeepStrategy::None,
            Keep::Any => UniqueKeepStrategy::Any,
        };
        let cols: Vec<Expr> = subset.iter().flatten().map(|c| col(*c)).collect();
        let want = base
            .clone()
            .lazy()
            .unique_stable_generic(Some(cols), strategy)
            .collect()
            .unwrap();
        let want = sorted(want, &all);
        for f in partitionings(&c, &base) {
            let got = f
                .unique(subset.as_deref(), keep)
                .unwrap()
                .compute()
                .unwrap();
            assert_same(&sorted(got, &all), &want);
        }
    }
    // Whole rows, without the row number: Any keeps one of each.
    let rows = base.drop("row").unwrap();
    let want = sorted(
        rows.clone()
            .lazy()
            .unique_generic(None, UniqueKeepStrategy::Any)
            .collect()
            .unwrap(),
        &["k", "g", "y3", "xr"],
    );
    for f in partitionings(&c, &rows) {
        let got = f
            .drop_duplicates(None, Keep::Any)
            .unwrap()
            .compute()
            .unwrap();
        assert_same(&sorted(got, &["k", "g", "y3", "xr"]), &want);
    }
    for column in ["k", "xr", "g"] {
        let want = rows
            .column(column)
            .unwrap()
            .as_materialized_series()
            .value_counts(true, false, "count".into(), false)
            .unwrap();
        for f in partitionings(&c, &rows) {
            let got = f
                .clone()
                .value_counts(column, true)
                .unwrap()
                .compute()
                .unwrap();
            // Most frequent first; ties in any order.
            let counts = got.column("count").unwrap().idx().unwrap().to_vec();
            assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{got}");
            assert_same(
                &sorted(got, &[column, "count"]),
                &sorted(want.clone(), &[column, "count"]),
            );
        }
    }
    let err = Frame::from_dataframe(&c, rows, 2)
        .unwrap()
        .value_counts("nope", false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn shuffle_puts_each_key_in_one_partition() {
    let c = cluster();
    let df = data(250);
    for f in partitionings(&c, &df) {
        for n in [1, 4, 9] {
            let s = f.clone().shuffle(["k", "g"], n).unwrap();
            assert_eq!(s.npartitions(), n);
            let parts: Vec<DataFrame> = s
                .to_delayed()
                .into_iter()
                .map(|d| d.compute().unwrap())
                .collect();
            let mut seen = std::collections::HashMap::new();
            for (i, p) in parts.iter().enumerate() {
                for r in 0..p.height() {
                    let key = format!("{:?}", p.get_row(r).unwrap().0[..2].to_vec());
                    assert_eq!(*seen.entry(key).or_insert(i), i, "a key in two partitions");
                }
            }
            let all = ["k", "g", "x", "y"];
            assert_same(
                &sorted(s.compute().unwrap(), &all),
                &sorted(df.clone(), &all),
            );
        }
    }
    assert!(
        Frame::from_dataframe(&c, df.clone(), 2)
            .unwrap()
            .shuffle(["nope"], 2)
            .is_err()
    );
}

#[test]
fn repartition_keeps_the_rows_in_order() {
    let c = cluster();
    let df = data(103);
    for f in partitionings(&c, &df) {
        for n in [1, 2, 5, 17, 400] {
            let r = f.clone().repartition(n).unwrap();
            assert_eq!(r.npartitions(), n);
            assert_same(&r.compute().unwrap(), &df);
        }
    }
    // More partitions from even ones: sizes differ by at most one row per input partition.
    let r = Frame::from_dataframe(&c, df.clone(), 2)
        .unwrap()
        .repartition(6)
        .unwrap();
    let sizes: Vec<usize> = r
        .to_delayed()
        .into_iter()
        .map(|d| d.compute().unwrap().height())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 103);
    assert!(sizes.iter().all(|s| (16..=18).contains(s)), "{sizes:?}");
}

#[test]
fn a_malformed_csv_line_is_named_with_its_file() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    let bad = dir.path().join("bad.csv");
    let mut text = String::from("id,name,v\n");
    for i in 0..2000 {
        text.push_str(&format!("{i},\"n{i}\",{}\n", i as f64 / 4.0));
    }
    std::fs::write(&good, &text).unwrap();
    // A quoted field with a line break (one record, two lines) before the bad value.
    let mut text = String::from("id,name,v\n");
    for i in 0..1500 {
        if i == 10 {
            text.push_str("10,\"two\nlines\",1.0\n");
        } else if i == 1234 {
            text.push_str("1234,\"ok\",not-a-number\n");
        } else {
            text.push_str(&format!("{i},\"日本{i}\",{}\n", i as f64));
        }
    }
    std::fs::write(&bad, &text).unwrap();
    let files = [good.to_string_lossy(), bad.to_string_lossy()];
    let f = Frame::scan_csv(&c, [&*files[0], &*files[1]]).unwrap();
    let err = f.clone().compute().unwrap_err().to_string();
    // Header on line 1, row i on line i + 2, plus one line for the quoted break before it:
    // row 1234 is on line 1237.
    assert!(err.contains("bad.csv, line 1237"), "{err}");
    assert!(!err.contains("good.csv"), "{err}");
    // A row with too many fields.
    let mut text = String::from("id,name,v\n");
    for i in 0..30 {
        let extra = if i == 17 { ",surplus" } else { "" };
        text.push_str(&format!("{i},a,1.5{extra}\n"));
    }
    std::fs::write(&bad, &text).unwrap();
    let f = Frame::scan_csv(&c, [&*files[0], &*files[1]]).unwrap();
    let err = f.compute().unwrap_err().to_string();
    assert!(err.contains("bad.csv, line 19"), "{err}");
    // The line is found after operations on the partition too.
    std::fs::write(&bad, "id,name,v\n1,a,2.5\n2,b,2.5\n3,c,oops\n").unwrap();
    let f = Frame::scan_csv(&c, [&*files[0], &*files[1]]).unwrap();
    let err = f
        .filter(col("id").gt(lit(1)))
        .unwrap()
        .group_by(["name"])
        .agg([col("v").sum()])
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.csv, line 4"), "{err}");
}

#[test]
fn describe_matches_polars_and_plain_statistics() {
    let c = cluster();
    let df = data(157);
    let stats = [
        "count",
        "null_count",
        "mean",
        "std",
        "min",
        "25%",
        "50%",
        "75%",
        "max",
    ];
    let stat = |name: &str, e: Expr| -> Expr {
        match name {
            "count" => e.count(),
            "null_count" => e.null_count(),
            "mean" => e.mean(),
            "std" => e.std(1),
            "min" => e.min(),
            "25%" => e.quantile(lit(0.25), QuantileMethod::Nearest),
            "50%" => e.quantile(lit(0.5), QuantileMethod::Nearest),
            "75%" => e.quantile(lit(0.75), QuantileMethod::Nearest),
            _ => e.max(),
        }
        .cast(DataType::Float64)
    };
    let want = concat(
        stats
            .iter()
            .map(|s| {
                df.clone().lazy().select([
                    lit(*s).alias("statistic"),
                    stat(s, col("g")).alias("g"),
                    stat(s, col("x")).alias("x"),
                    stat(s, col("y")).alias("y"),
                ])
            })
            .collect::<Vec<_>>(),
        UnionArgs::default(),
    )
    .unwrap()
    .collect()
    .unwrap();
    // Plain checks on "y" (integers 3i - 100, no nulls) and "g" (nulls).
    let y = want.column("y").unwrap().f64().unwrap().to_vec();
    let n = 157.0;
    assert_eq!(y[0], Some(n));
    assert_eq!(y[1], Some(0.0));
    assert_eq!(y[2], Some(3.0 * (n - 1.0) / 2.0 - 100.0));
    assert_eq!(y[4], Some(-100.0));
    assert_eq!(y[8], Some(3.0 * (n - 1.0) - 100.0));
    let g_nulls = df.column("g").unwrap().null_count() as f64;
    assert!(g_nulls > 0.0);
    assert_eq!(
        want.column("g").unwrap().f64().unwrap().get(1),
        Some(g_nulls)
    );
    for f in partitionings(&c, &df) {
        assert_same(&f.describe().unwrap(), &want);
    }
    let strings = Frame::from_dataframe(&c, df.select(["k"]).unwrap(), 2).unwrap();
    assert!(strings.describe().is_err());
}

/// A worker waiting for polars' pool runs other queued tasks meanwhile; the frame's window
/// keeps a stage to as many partitions in flight as the cluster has threads.
#[test]
fn a_stage_has_at_most_threads_partitions_in_flight() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let c = cluster();
    let n = 100_000i64;
    let df =
        df!("a" => (0..n).collect::<Vec<_>>(), "b" => (0..n).map(|i| i % 1000).collect::<Vec<_>>())
            .unwrap();
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (now2, max2) = (now.clone(), max.clone());
    let f = Frame::from_dataframe(&c, df, 30)
        .unwrap()
        .map_partitions(move |df| {
            max2.fetch_max(now2.fetch_add(1, SeqCst) + 1, SeqCst);
            // polars kernels that use its pool: the task's thread waits for them.
            let sorted = df.sort(["b"], SortMultipleOptions::default());
            let grouped = df
                .lazy()
                .group_by([col("b")])
                .agg([col("a").sum()])
                .collect();
            now2.fetch_sub(1, SeqCst);
            grouped?;
            sorted
        })
        .unwrap();
    let got = f
        .group_by(["b"])
        .agg([col("a").sum()])
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(got.height(), 1000);
    let seen = max.load(SeqCst);
    assert!(
        (1..=2).contains(&seen),
        "{seen} partitions in flight on 2 threads"
    );
}

/// A hive-partitioned directory scans as one frame whose path columns (`year=..`, `city=..`)
/// come after the files' own, typed from their values (null for Hive's default partition);
/// files whose paths name different columns are an error naming the file.
#[test]
fn scans_hive_partitioned_directories() {
    let c = cluster();
    let root = tempfile::tempdir().unwrap();
    let df = data(60);
    let dirs = [
        ("year=2024", "city=Lisboa"),
        ("year=2024", "city=S%C3%A3o%20Paulo"),
        ("year=2025", "city=__HIVE_DEFAULT_PARTITION__"),
    ];
    let mut want = Vec::new();
    for (i, (y, city)) in dirs.iter().enumerate() {
        let d = root.path().join(y).join(city);
        std::fs::create_dir_all(&d).unwrap();
        let mut part = df.slice(i as i64 * 20, 20);
        let file = std::fs::File::create(d.join("part-0.parquet")).unwrap();
        ParquetWriter::new(file).finish(&mut part).unwrap();
        let (year, city) = (
            [2024i64, 2024, 2025][i],
            [Some("Lisboa"), Some("São Paulo"), None][i],
        );
        want.push(
            part.lazy()
                .with_columns([
                    lit(year).cast(DataType::Int64).alias("year"),
                    lit(city.unwrap_or_default())
                        .cast(DataType::String)
                        .alias("city"),
                ])
                .collect()
                .unwrap(),
        );
    }
    // the default partition's city is null
    let n = want[2].height();
    want[2]
        .with_column(Column::full_null("city".into(), n, &DataType::String))
        .unwrap();
    let mut all = want[0].clone();
    for w in &want[1..] {
        all.vstack_mut(w).unwrap();
    }
    std::fs::write(root.path().join("_SUCCESS"), "").unwrap();
    let f = Frame::scan_parquet(&c, [root.path().to_str().unwrap()]).unwrap();
    assert_eq!(f.npartitions(), 3);
    let sorted_by = ["y"];
    assert_same(
        &sorted(f.clone().compute().unwrap(), &sorted_by),
        &sorted(all.clone(), &sorted_by),
    );
    let y2024 = f
        .filter(col("year").eq(lit(2024i64)))
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(y2024.height(), 40);
    // a file whose path names other columns
    let odd = root.path().join("year=2026");
    std::fs::create_dir_all(&odd).unwrap();
    let file = std::fs::File::create(odd.join("part-0.parquet")).unwrap();
    ParquetWriter::new(file)
        .finish(&mut df.slice(0, 5))
        .unwrap();
    let err = Frame::scan_parquet(&c, [root.path().to_str().unwrap()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("year=2026"), "{err}");
}

/// A Parquet file of several row groups splits into a partition per run of whole row groups
/// when its blocks are small, and stays one partition by default; either way the rows are
/// the file's, in order.
#[test]
fn splits_big_parquet_files_by_row_groups() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let mut df = data(100);
    let path = dir.path().join("big.parquet");
    let file = std::fs::File::create(&path).unwrap();
    ParquetWriter::new(file)
        .with_row_group_size(Some(25))
        .finish(&mut df)
        .unwrap();
    let p = path.to_str().unwrap();
    let whole = Frame::scan_parquet(&c, [p]).unwrap();
    assert_eq!(whole.npartitions(), 1);
    let split = Frame::scan_parquet_blocks(&c, [p], 1).unwrap();
    assert_eq!(split.npartitions(), 4);
    assert_same(&split.clone().compute().unwrap(), &df);
    assert_same(&whole.compute().unwrap(), &df);
    // a query on the split file equals polars' on the whole
    let got = split
        .group_by(["g"])
        .agg([col("y").sum(), len().alias("n")])
        .unwrap()
        .compute()
        .unwrap();
    let want = df
        .clone()
        .lazy()
        .group_by([col("g")])
        .agg([col("y").sum(), len().alias("n")])
        .collect()
        .unwrap();
    assert_same(&sorted(got, &["g"]), &sorted(want, &["g"]));
    // blocks bigger than the file: one partition
    let runs = Frame::scan_parquet_blocks(&c, [p], 1 << 30).unwrap();
    assert_eq!(runs.npartitions(), 1);
}

/// A group-by whose keys are (nearly) all distinct sends a big partition's rows, not its
/// partials, to the combine (partials would not be fewer); small partitions keep partials, so
/// a bucket may mix both. Either way the answer is polars' on the whole frame.
#[test]
fn groups_with_distinct_keys_like_polars() {
    let c = cluster();
    let n = 40_000usize;
    let id: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % n as i64).collect();
    let g: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let v: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 11 {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some((i % 97) as f64 / 3.0),
        })
        .collect();
    let df = df!("id" => id, "g" => g, "v" => v).unwrap();
    let aggs = [
        col("v").sum().alias("sum"),
        col("v").mean().alias("mean"),
        col("v").count().alias("count"),
        col("v").std(1).alias("std"),
        col("v").n_unique().alias("distinct"),
        len().alias("n"),
    ];
    let frames = [
        Frame::from_dataframe(&c, df.clone(), 2).unwrap(),
        Frame::from_partitions(
            &c,
            vec![
                df.slice(0, 30_000),
                df.slice(30_000, 100),
                df.slice(30_100, n),
            ],
        )
        .unwrap(),
        Frame::from_partitions(&c, vec![df.slice(0, 100), df.slice(100, n)]).unwrap(),
    ];
    for keys in [vec!["id"], vec!["id", "g"], vec!["g"]] {
        let want = df
            .clone()
            .lazy()
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(aggs.clone())
            .collect()
            .unwrap();
        for f in &frames {
            let got = f
                .clone()
                .group_by(keys.clone())
                .agg(aggs.clone())
                .unwrap()
                .compute()
                .unwrap();
            assert_same(&sorted(got, &keys), &sorted(want.clone(), &keys));
        }
    }
}
