//! Sorting a partitioned frame by range partitioning: partitions in order, each sorted.
//!
//! [`Frame::sort`] first samples the first sort column (a few hundred values per partition,
//! computed at once, as dask's `sort_values` computes its divisions) and picks `n - 1`
//! boundaries at its quantiles. A shuffle (see the shuffle module) then sends every row to
//! the range its first-key value falls in: range `j` holds the values above boundary `j - 1`
//! and up to boundary `j` (so equal values meet in one range), nulls go to the last range
//! and NaN to the end its place in polars' order says. Each output partition then sorts its
//! rows by every sort column; its rows came in the frame's order, so equal keys keep it.
//! Only one partition is in memory per task: a frame larger than memory sorts.

use std::sync::Arc;

use polars::prelude::*;

use super::shuffle::{Route, key_columns, shuffle_by};
use super::{Frame, Part};
use crate::error::{Error, Result};
use crate::graph::Delayed;

/// Sampled first-key values per partition.
const SAMPLES_PER_PARTITION: usize = 256;

/// polars' sort options for `descending`, nulls last, equal keys in their order.
fn options(descending: bool) -> SortMultipleOptions {
    SortMultipleOptions::default()
        .with_order_descending(descending)
        .with_nulls_last(true)
        .with_maintain_order(true)
}

/// Whether range partitioning on a column of this type follows polars' sort order
/// (comparisons and sorting agree on it).
fn rangeable(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric() || dtype.is_bool() || matches!(dtype, DataType::String)
}

impl Frame {
    /// Sorts by the named columns (ascending, or all descending; nulls last; rows with equal
    /// keys keep their order), range-partitioned: partition `j`'s rows all come before
    /// partition `j + 1`'s, each partition sorted, as many partitions as the frame has (at
    /// most 64). Sampling the first column's ranges computes the frame once before the sort
    /// itself does (as dask's `sort_values` does); a frame of one partition, or sorted first on
    /// a column that is not a number, a boolean or a string, is sorted in one task instead.
    pub fn sort<I, S>(self, by: I, descending: bool) -> Result<Frame>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let by: Vec<PlSmallStr> = by.into_iter().map(|s| s.as_ref().into()).collect();
        key_columns(&self.schema, &by, "sort")?;
        let first = by
            .first()
            .ok_or_else(|| Error::Invalid("sort needs at least one column".into()))?
            .clone();
        let dtype = self.schema.get(&first).cloned().unwrap_or(DataType::Null);
        let n = self.shuffle_partitions();
        if n < 2 || !rangeable(&dtype) {
            return Ok(self.sort_gathered(by, descending));
        }
        let bounds = self.boundaries(&first, &dtype, n)?;
        let route = Route::Bucket(range_of(col(first), &dtype, &bounds, descending));
        let nparts = bounds.len() + 1;
        let buckets = Arc::new(shuffle_by(&self, route, nparts, "sort-shuffle")?);
        let by = Arc::new(by);
        let parts = (0..nparts)
            .map(|j| {
                let by = by.clone();
                buckets.part(j, move |df| {
                    Ok(df.lazy().sort(by.as_slice().to_vec(), options(descending)))
                })
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, self.schema.clone()))
    }

    /// The frame sorted in one task, into one partition (all of it in memory).
    pub(super) fn sort_gathered(&self, by: Vec<PlSmallStr>, descending: bool) -> Frame {
        let part = Part::from_task(self.gathered())
            .then(move |lf| Ok(lf.sort(by.clone(), options(descending))));
        Frame::new(&self.cluster, vec![part], self.schema.clone())
    }

    /// Up to `n - 1` distinct, ascending values of `column` (no null, no NaN) at the
    /// quantiles of a sample of every partition's values.
    fn boundaries(&self, column: &PlSmallStr, dtype: &DataType, n: usize) -> Result<Series> {
        let c = column.clone();
        let float = dtype.is_float();
        let samples: Vec<Delayed<Series>> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = c.clone();
                p.then(move |lf| {
                    let mut v = col(c.clone()).drop_nulls();
                    if float {
                        v = v.clone().filter(v.is_not_nan());
                    }
                    Ok(lf.select([v.sort(SortOptions::default())]))
                })
                .task(&self.cluster, &format!("frame-sort-sample[{i}]"), |df| {
                    let s = df.columns()[0].as_materialized_series().clone();
                    let step = s.len().div_ceil(SAMPLES_PER_PARTITION).max(1);
                    Ok(s.gather_every(step, 0)?)
                })
            })
            .collect();
        let all = Delayed::join_all(&self.cluster, samples).compute()?;
        let mut pooled = Series::new_empty(column.clone(), dtype);
        for s in &all {
            pooled.append(s).map_err(super::polars_err)?;
        }
        let pooled = pooled
            .sort(SortOptions::default())
            .map_err(super::polars_err)?;
        let len = pooled.len();
        let picks: Vec<IdxSize> = (1..n).map(|k| (k * len / n) as IdxSize).collect();
        let picked = if len == 0 {
            pooled
        } else {
            pooled
                .take(&IdxCa::from_vec(PlSmallStr::EMPTY, picks))
                .map_err(super::polars_err)?
        };
        picked
            .unique_stable()
            .map_err(super::polars_err)
            .and_then(|s| s.sort(SortOptions::default()).map_err(super::polars_err))
    }
}

/// The range of a row by the value of `key` among ascending `bounds` (`bounds.len() + 1`
/// ranges, numbered in the sort's order): ascending, the count of boundaries below the value;
/// descending, the reverse. Nulls go to the last range; NaN, which polars sorts above every
/// number, to the last (ascending) or the first (descending).
fn range_of(key: Expr, dtype: &DataType, bounds: &Series, descending: bool) -> Expr {
    let last = bounds.len() as u32;
    let mut below = lit(0u32);
    for i in 0..bounds.len() {
        let b = lit(bounds.slice(i as i64, 1)).first();
        below = below + key.clone().gt(b).cast(DataType::UInt32);
    }
    let mut range = if descending { lit(last) - below } else { below };
    if dtype.is_float() {
        let nan = if descending { 0 } else { last };
        range = when(key.clone().is_nan()).then(lit(nan)).otherwise(range);
    }
    when(key.is_null()).then(lit(last)).otherwise(range)
}
