//! Training data from onebox's collections: `Table::from_arrays` and `Table::from_frame`
//! against the same table built by hand, row by row.

mod common;

use std::sync::Arc;

use ndarray::{Array1, Array2};
use onebox::Array;
use onebox::train::models::{Classifier, SoftmaxRegression};
use onebox::train::{Batch, Optimizer, Table, Trainer};
use proptest::prelude::*;

/// A `rows x cols` feature matrix and class labels below `classes`, reproducible from `seed`.
fn data(rows: usize, cols: usize, classes: usize, seed: u64) -> (Array2<f64>, Array1<i64>) {
    let mut rng = common::SplitMix64(seed);
    let x = Array2::from_shape_fn((rows, cols), |_| f64::from(rng.unit_f32()));
    let y = Array1::from_shape_fn(rows, |_| rng.below(classes) as i64);
    (x, y)
}

/// The table built sequentially: features row after row, labels as class indices.
fn by_hand(x: &Array2<f64>, y: &Array1<i64>) -> Table<f64, usize> {
    let features: Vec<f64> = x.rows().into_iter().flatten().copied().collect();
    let labels: Vec<usize> = y.iter().map(|&v| v as usize).collect();
    Table::new(features, x.ncols(), labels).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn from_arrays_equals_the_table_built_by_hand(
        rows in 0usize..40,
        cols in 1usize..6,
        row_chunk in 1usize..50,
        col_chunk in 1usize..8,
        seed in any::<u64>(),
    ) {
        let cluster = common::cluster(2);
        let (x, y) = data(rows, cols, 4, seed);
        let xa = Array::from_ndarray(&cluster, x.clone(), [row_chunk, col_chunk]).unwrap();
        let ya = Array::from_ndarray(&cluster, y.clone(), [row_chunk]).unwrap();
        let table: Table<f64, usize> = Table::from_arrays(&xa, &ya).unwrap();
        prop_assert_eq!(table, by_hand(&x, &y));
    }
}

#[test]
fn from_arrays_reads_a_transposed_array_row_by_row() {
    let cluster = common::cluster(2);
    let (x, y) = data(5, 3, 2, 1);
    let xt = Array::from_ndarray(&cluster, x.t().to_owned(), [2, 2])
        .unwrap()
        .t();
    let ya = Array::from_ndarray(&cluster, y.clone(), [2]).unwrap();
    let table: Table<f64, usize> = Table::from_arrays(&xt, &ya).unwrap();
    assert_eq!(table, by_hand(&x, &y));
}

#[test]
fn regression_targets_come_from_float_arrays() {
    let cluster = common::cluster(2);
    let x = Array::from_ndarray(&cluster, ndarray::array![[1.0f32], [2.0], [3.0]], [2, 1]).unwrap();
    let y = Array::from_ndarray(&cluster, ndarray::array![0.5f32, -1.5, 2.25], [2]).unwrap();
    let table: Table<f32, f32> = Table::from_arrays(&x, &y).unwrap();
    assert_eq!(table.labels(), &[0.5, -1.5, 2.25]);
    assert_eq!(table.features(), &[1.0, 2.0, 3.0]);
}

#[test]
fn bad_arrays_are_errors_that_say_why() {
    let cluster = common::cluster(2);
    let x = Array::from_ndarray(&cluster, Array2::<f64>::zeros((4, 2)), [2, 2]).unwrap();
    let short = Array::from_ndarray(&cluster, ndarray::array![0i64, 1, 0], [2]).unwrap();
    let err = Table::<f64, usize>::from_arrays(&x, &short)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("4 rows") && err.contains("3 elements"),
        "{err}"
    );

    let flat = Array::from_ndarray(&cluster, ndarray::array![0.0f64, 1.0], [2]).unwrap();
    let err = Table::<f64, usize>::from_arrays(&flat, &short)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2-D features") && err.contains("[2]"), "{err}");

    let negative = Array::from_ndarray(&cluster, ndarray::array![0i64, 1, -1, 0], [2]).unwrap();
    let err = Table::<f64, usize>::from_arrays(&x, &negative)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2") && err.contains("-1"), "{err}");

    let fractional =
        Array::from_ndarray(&cluster, ndarray::array![0.0f64, 1.5, 1.0, 0.0], [2]).unwrap();
    let err = Table::<f64, usize>::from_arrays(&x, &fractional)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 1") && err.contains("1.5"), "{err}");

    let nan =
        Array::from_ndarray(&cluster, ndarray::array![0.0f64, 1.0, f64::NAN, 0.0], [2]).unwrap();
    let err = Table::<f64, usize>::from_arrays(&x, &nan)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2") && err.contains("NaN"), "{err}");
}

#[test]
fn training_on_an_array_equals_training_on_the_same_table() {
    let cluster = common::cluster(2);
    let (x, y) = data(60, 4, 3, 9);
    let xa = Array::from_ndarray(&cluster, x.clone(), [7, 3]).unwrap();
    let ya = Array::from_ndarray(&cluster, y.clone(), [11]).unwrap();
    let model = SoftmaxRegression::new(4, 3);
    let fit = |data: Table<f64, usize>| {
        let mut trainer = Trainer::builder(&cluster, model.init::<f64>())
            .optimizer(Optimizer::adam())
            .lr(0.05)
            .batch_size(16)
            .seed(5)
            .build()
            .unwrap();
        let grad =
            move |p: &[f64], b: &Batch<'_, f64, usize>, g: &mut [f64]| model.loss_grad(p, b, g);
        trainer.fit(&Arc::new(data), grad, 3, |_| {}).unwrap();
        trainer.into_params()
    };
    let from_array = fit(Table::from_arrays(&xa, &ya).unwrap());
    assert_eq!(from_array, fit(by_hand(&x, &y)));
}

#[cfg(feature = "frame")]
mod frame {
    use polars::prelude::*;

    use super::*;
    use onebox::frame::Frame;
    use onebox::train::Dataset;

    fn frame_of(df: DataFrame, partitions: usize) -> Frame {
        Frame::from_dataframe(&common::cluster(2), df, partitions).unwrap()
    }

    #[test]
    fn from_frame_equals_the_table_built_by_hand() {
        let df = df!(
            "a" => [1.0f64, 2.0, 3.0, 4.0, 5.0],
            "b" => [10i32, 20, 30, 40, 50],
            "flag" => [true, false, true, false, true],
            "name" => ["x", "ü", "z", "日本", ""],
            "class" => [2i64, 0, 1, 1, 0],
        )
        .unwrap();
        // More partitions than rows: some are empty.
        for partitions in [1, 2, 7] {
            let table: Table<f32, usize> = Table::from_frame(
                frame_of(df.clone(), partitions),
                &["b", "a", "flag"],
                "class",
            )
            .unwrap();
            let expect = Table::new(
                vec![
                    10.0f32, 1.0, 1.0, 20.0, 2.0, 0.0, 30.0, 3.0, 1.0, 40.0, 4.0, 0.0, 50.0, 5.0,
                    1.0,
                ],
                3,
                vec![2usize, 0, 1, 1, 0],
            )
            .unwrap();
            assert_eq!(table, expect, "{partitions} partitions");
            assert_eq!(table.len(), 5);
        }
    }

    #[test]
    fn bad_frames_are_errors_that_name_the_column() {
        let df = df!(
            "a" => [Some(1.0f64), None, Some(3.0)],
            "s" => ["x", "y", "z"],
            "y" => [Some(0i64), Some(1), None],
            "ok" => [0i64, 1, 1],
        )
        .unwrap();
        let err = |features: &[&str], label: &str| {
            Table::<f64, usize>::from_frame(frame_of(df.clone(), 2), features, label)
                .unwrap_err()
                .to_string()
        };
        let e = err(&["a"], "ok");
        assert!(
            e.contains("\"a\"") && e.contains("row 1") && e.contains("null"),
            "{e}"
        );
        let e = err(&["s"], "ok");
        assert!(e.contains("\"s\"") && e.contains("not numeric"), "{e}");
        let e = err(&["missing"], "ok");
        assert!(e.contains("no column \"missing\""), "{e}");
        let e = err(&["ok"], "y");
        assert!(
            e.contains("\"y\"") && e.contains("row 2") && e.contains("null"),
            "{e}"
        );
        let e = err(&[], "ok");
        assert!(e.contains("at least one feature"), "{e}");
    }
}
