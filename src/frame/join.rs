//! Joins of two frames on equal keys, two ways.
//!
//! - **Broadcast**: the right frame is computed once, whole, and joined with every left
//!   partition in that partition's task. No data moves but the right frame; it must fit in
//!   memory (as many times as tasks run at once). Right for a small lookup table.
//! - **Shuffle**: both frames are hash-shuffled on their keys into the same number of
//!   partitions (see the shuffle module), so the rows that can match land in partitions with the
//!   same index, which are then joined pairwise. Only one pair of partitions is in memory per
//!   task, so two frames bigger than memory join; it costs splitting both by key hash (and,
//!   past the shuffle's share of the memory budget, writing and reading them through
//!   temporary files). A full join needs it: unmatched right rows must appear once, not once
//!   per left partition.
//!
//! [`Frame::join`] picks broadcast when the right frame has one partition (and the join is not
//! full), shuffle otherwise; [`Frame::broadcast_join`] and [`Frame::shuffle_join`] choose.
//! Either way the rows are the ones polars would give on the concatenated frames, in no
//! particular order.

use std::sync::Arc;

use polars::prelude::*;

use super::shuffle::{MAX_SHUFFLE_PARTITIONS, shuffle};
use super::{Frame, Part, polars_err, run_query};
use crate::error::{BoxError, Error, Result};

/// How rows are matched in a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinHow {
    /// Rows with a match on both sides.
    Inner,
    /// Every left row, with the right side's columns null where nothing matched.
    Left,
    /// Every row of both sides, matched where they match (null where not); both sides' key
    /// columns are kept (the right one with the suffix `_right`), as in polars.
    Full,
    /// The left rows that have a match (each once), with the left columns only.
    Semi,
    /// The left rows that have no match, with the left columns only.
    Anti,
}

/// What a join needs in every task: the keys and how.
#[derive(Clone)]
struct Spec {
    left_on: Arc<Vec<Expr>>,
    right_on: Arc<Vec<Expr>>,
    how: JoinHow,
    left_names: Arc<Vec<PlSmallStr>>,
}

const MATCH: &str = "__onebox_match";

impl Spec {
    /// The join of two lazy frames (null keys match nothing, as in polars).
    fn apply(&self, l: LazyFrame, r: LazyFrame) -> LazyFrame {
        let jt = match self.how {
            JoinHow::Inner => JoinType::Inner,
            JoinHow::Left => JoinType::Left,
            JoinHow::Full => JoinType::Full,
            JoinHow::Semi | JoinHow::Anti => {
                // The right side's distinct keys, marked; a left join keeps every left row
                // once, marked where it matched.
                let keys: Vec<Expr> = self
                    .right_on
                    .iter()
                    .enumerate()
                    .map(|(i, e)| e.clone().alias(format!("__onebox_key_{i}")))
                    .collect();
                let key_cols: Vec<Expr> = (0..keys.len())
                    .map(|i| col(format!("__onebox_key_{i}")))
                    .collect();
                let marks = r
                    .select(keys)
                    .unique_generic(None, UniqueKeepStrategy::Any)
                    .with_column(lit(true).alias(MATCH));
                let matched = if self.how == JoinHow::Semi {
                    col(MATCH).is_not_null()
                } else {
                    col(MATCH).is_null()
                };
                return l
                    .join(
                        marks,
                        self.left_on.as_slice(),
                        &key_cols,
                        JoinArgs::new(JoinType::Left),
                    )
                    .filter(matched)
                    .select(
                        self.left_names
                            .iter()
                            .map(|n| col(n.clone()))
                            .collect::<Vec<_>>(),
                    );
            }
        };
        l.join(
            r,
            self.left_on.as_slice(),
            self.right_on.as_slice(),
            JoinArgs::new(jt),
        )
    }
}

impl Frame {
    /// Joins with `right` on equal keys (`left_on[i]` with `right_on[i]`), as `how` says. A
    /// broadcast join when `right` has one partition (and `how` is not
    /// [`Full`](JoinHow::Full)), a shuffle join otherwise (see [joins](super#joins)).
    /// Right-hand columns whose names clash get the suffix `_right`, as in polars.
    pub fn join(
        self,
        right: &Frame,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinHow,
    ) -> Result<Frame> {
        if right.parts.len() == 1 && how != JoinHow::Full {
            self.broadcast_join(right, left_on, right_on, how)
        } else {
            let n = self
                .parts
                .len()
                .max(right.parts.len())
                .min(MAX_SHUFFLE_PARTITIONS);
            self.shuffle_join(right, left_on, right_on, how, n)
        }
    }

    /// [`join`](Frame::join) by broadcasting `right`: it is computed once, whole, and joined
    /// with every left partition; the result has the left frame's partitions. A full join
    /// cannot be broadcast (use [`shuffle_join`](Frame::shuffle_join)).
    pub fn broadcast_join(
        self,
        right: &Frame,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinHow,
    ) -> Result<Frame> {
        if how == JoinHow::Full {
            return Err(Error::Invalid(
                "a full join cannot broadcast the right frame (its unmatched rows would appear \
                 once per left partition); use shuffle_join"
                    .into(),
            ));
        }
        let (spec, schema) = self.join_spec(right, left_on, right_on, how)?;
        let small = right.gathered();
        let parts = self
            .tasks("join-left", Ok)
            .into_iter()
            .enumerate()
            .map(|(i, left)| {
                let spec = spec.clone();
                let joined = left
                    .zip(small.clone())
                    .try_map(move |(a, b)| run_query(spec.apply(a.lazy(), b.lazy())));
                Part::from_task(joined.label(&format!("frame-join[{i}]")))
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, schema))
    }

    /// [`join`](Frame::join) by shuffling both frames on their keys into `npartitions`
    /// partitions, joined pairwise; the result has `npartitions` partitions.
    pub fn shuffle_join(
        self,
        right: &Frame,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinHow,
        npartitions: usize,
    ) -> Result<Frame> {
        if npartitions == 0 {
            return Err(Error::config(
                "npartitions",
                0,
                "a frame needs at least one partition",
            ));
        }
        let (spec, schema) = self.join_spec(right, left_on, right_on, how)?;
        // Keys of different types are hashed as one type, so equal keys meet.
        let mut lh = Vec::new();
        let mut rh = Vec::new();
        for (l, r) in left_on.iter().zip(right_on) {
            let (ld, rd) = (self.schema.try_get(l), right.schema.try_get(r));
            let (ld, rd) = (ld.map_err(polars_err)?, rd.map_err(polars_err)?);
            let common = if ld == rd {
                None
            } else if ld.is_primitive_numeric() && rd.is_primitive_numeric() {
                Some(DataType::Float64)
            } else {
                Some(DataType::String)
            };
            let cast = |name: &str| match &common {
                Some(dt) => col(name).cast(dt.clone()),
                None => col(name),
            };
            lh.push(cast(l));
            rh.push(cast(r));
        }
        let lb = Arc::new(shuffle(&self, lh, npartitions, "join-left")?);
        let rb = Arc::new(shuffle(right, rh, npartitions, "join-right")?);
        rb.start_after(&lb.written());
        let both = lb.written().zip(rb.written()).map(|_| DataFrame::empty());
        let parts = (0..npartitions)
            .map(|j| {
                let (spec, lb, rb) = (spec.clone(), lb.clone(), rb.clone());
                let mut part = Part::from_task(both.clone());
                part.plan = Arc::new(move |_| -> std::result::Result<LazyFrame, BoxError> {
                    Ok(spec.apply(lb.read(j)?.lazy(), rb.read(j)?.lazy()))
                });
                part
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, schema))
    }

    /// Checks the keys and computes the join's schema (an error names what does not fit).
    fn join_spec(
        &self,
        right: &Frame,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinHow,
    ) -> Result<(Spec, SchemaRef)> {
        if left_on.is_empty() || left_on.len() != right_on.len() {
            return Err(Error::Invalid(format!(
                "join: {} left keys and {} right keys; give the same number, at least one",
                left_on.len(),
                right_on.len()
            )));
        }
        for (side, keys, schema) in [
            ("left", left_on, &self.schema),
            ("right", right_on, &right.schema),
        ] {
            for k in keys {
                if !schema.contains(k) {
                    return Err(Error::Invalid(format!(
                        "join: the {side} frame has no column {k:?} (columns: {:?})",
                        schema.iter_names().collect::<Vec<_>>()
                    )));
                }
            }
        }
        let spec = Spec {
            left_on: Arc::new(left_on.iter().map(|c| col(*c)).collect()),
            right_on: Arc::new(right_on.iter().map(|c| col(*c)).collect()),
            how,
            left_names: Arc::new(self.schema.iter_names().cloned().collect()),
        };
        let schema = spec
            .apply(
                DataFrame::empty_with_schema(&self.schema).lazy(),
                DataFrame::empty_with_schema(&right.schema).lazy(),
            )
            .collect_schema()
            .map_err(polars_err)?;
        Ok((spec, schema))
    }
}
