//! Training data from onebox's own collections: a chunked [`Array`] of features with an array
//! of labels, or a [`Frame`](crate::frame::Frame) with feature columns and a label column.
//!
//! Both become a [`Table`], the in-memory [`Dataset`](super::Dataset) the trainer shuffles
//! and shards: the collection is computed on the cluster (its blocks or partitions in
//! parallel), then laid out row by row, so a training step reads its samples from memory,
//! never recomputing a block. The data must therefore fit in memory, as with `X.compute()`
//! before `fit` in Dask-ML.
//!
//! Labels are converted by [`Label`]: a class index (`usize`) must be a non-negative whole
//! number, a regression target (`f32`, `f64`) any number. A value that does not convert, a
//! null in a frame, or shapes that do not match is an error naming the row or column.
//!
//! ```
//! use onebox::prelude::*;
//! use onebox::train::{Dataset, Table};
//! use onebox::Array;
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let x = Array::from_ndarray(&cluster, ndarray::array![[0.0f32, 1.0], [2.0, 3.0], [4.0, 5.0]], [2, 2])?;
//! let y = Array::from_ndarray(&cluster, ndarray::array![1i64, 0, 1], [2])?;
//! let table: Table<f32, usize> = Table::from_arrays(&x, &y)?;
//! assert_eq!((table.len(), table.n_features()), (3, 2));
//! assert_eq!(table.labels(), &[1, 0, 1]);
//! # Ok::<(), onebox::Error>(())
//! ```

use num_traits::ToPrimitive;

use super::{Float, Table};
use crate::array::{Array, Element};
use crate::error::{Error, Result};

/// A label type the adapters can produce from a number: a class index or a target value.
pub trait Label: Copy + Send + Sync + 'static {
    /// The label for `value`, or `None` when `value` is not one (a negative or fractional
    /// class index, NaN as a class).
    fn from_f64(value: f64) -> Option<Self>;
    /// What a label of this type must be, for error messages.
    const WHAT: &'static str;
}

impl Label for usize {
    fn from_f64(value: f64) -> Option<Self> {
        (value >= 0.0 && value.fract() == 0.0 && value <= usize::MAX as f64)
            .then_some(value as usize)
    }
    const WHAT: &'static str = "a class index (a whole number from 0)";
}

impl Label for f32 {
    fn from_f64(value: f64) -> Option<Self> {
        Some(value as f32)
    }
    const WHAT: &'static str = "a number";
}

impl Label for f64 {
    fn from_f64(value: f64) -> Option<Self> {
        Some(value)
    }
    const WHAT: &'static str = "a number";
}

/// Converts `values` to labels; the error names the first row that does not convert.
fn labels_from<L: Label>(
    values: impl Iterator<Item = Option<f64>>,
    source: &str,
) -> Result<Vec<L>> {
    values
        .enumerate()
        .map(|(row, v)| {
            v.and_then(L::from_f64).ok_or_else(|| {
                let shown = v.map_or("null".to_owned(), |v| v.to_string());
                Error::Invalid(format!(
                    "{source}, row {row}: the label {shown} is not {}",
                    L::WHAT
                ))
            })
        })
        .collect()
}

impl<F: Float + Element, L: Label> Table<F, L> {
    /// A table from a 2-D array of features (a row per sample) and a 1-D array of labels
    /// with as many elements as the features have rows. Both are computed on their cluster.
    pub fn from_arrays<Y: Element + ToPrimitive>(
        features: &Array<F>,
        labels: &Array<Y>,
    ) -> Result<Self> {
        if features.ndim() != 2 || labels.ndim() != 1 {
            return Err(Error::Invalid(format!(
                "training data needs 2-D features and 1-D labels; got features of shape {:?} \
                 and labels of shape {:?}",
                features.shape(),
                labels.shape()
            )));
        }
        let (rows, cols) = (features.shape()[0], features.shape()[1]);
        if labels.shape()[0] != rows {
            return Err(Error::Invalid(format!(
                "the features have {rows} rows but the labels {} elements",
                labels.shape()[0]
            )));
        }
        let x = features.compute()?;
        let y = labels.compute()?;
        // Row-major order whatever the computed array's memory layout.
        let x: Vec<F> = x.iter().copied().collect();
        let y = labels_from(y.iter().map(ToPrimitive::to_f64), "the label array")?;
        Table::new(x, cols, y)
    }
}

#[cfg(feature = "frame")]
mod frame {
    use polars::prelude::{Column, DataFrame, DataType};

    use super::{Label, labels_from};
    use crate::error::{Error, Result};
    use crate::frame::Frame;
    use crate::train::{Float, Table};

    /// The column `name` as `f64` values (nulls as `None`), or an error naming it.
    fn numbers(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
        let column: &Column = df.column(name).map_err(|_| {
            let names: Vec<String> = df
                .get_column_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            Error::Invalid(format!(
                "the frame has no column {name:?}; its columns: {}",
                names.join(", ")
            ))
        })?;
        let dtype = column.dtype().clone();
        if !(dtype.is_primitive_numeric() || dtype == DataType::Boolean) {
            return Err(Error::Invalid(format!(
                "column {name:?} is of type {dtype}, not numeric: encode it as numbers first"
            )));
        }
        let cast = column
            .cast(&DataType::Float64)
            .map_err(|e| Error::Invalid(format!("column {name:?}: {e}")))?;
        let values = cast
            .f64()
            .map_err(|e| Error::Invalid(format!("column {name:?}: {e}")))?;
        Ok(values.iter().collect())
    }

    impl<F: Float, L: Label> Table<F, L> {
        /// A table from a frame's `features` columns (numeric or boolean, no nulls) and its
        /// `label` column. The frame is computed on its cluster, its partitions in parallel.
        pub fn from_frame(frame: Frame, features: &[&str], label: &str) -> Result<Self> {
            if features.is_empty() {
                return Err(Error::Invalid(
                    "training data needs at least one feature column".into(),
                ));
            }
            let df = frame.compute()?;
            let rows = df.height();
            let mut x = vec![F::ZERO; rows * features.len()];
            for (j, name) in features.iter().enumerate() {
                for (row, v) in numbers(&df, name)?.into_iter().enumerate() {
                    x[row * features.len() + j] = F::from_f64(v.ok_or_else(|| {
                        Error::Invalid(format!("column {name:?}, row {row}: a null feature"))
                    })?);
                }
            }
            let y = labels_from(
                numbers(&df, label)?.into_iter(),
                &format!("column {label:?}"),
            )?;
            Table::new(x, features.len(), y)
        }
    }
}
