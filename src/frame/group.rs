//! `group_by(..).agg(..)`: partial aggregates per partition, combined exactly per bucket of keys.
//!
//! Every aggregate is split into partial columns that can be re-aggregated: a sum into a sum
//! of sums, a mean into a sum and a count, a variance into a count, a mean and a sum of squared
//! deviations (merged with Chan's formula), a count of distinct values into the list of each
//! partition's distinct values (merged by union). Each partition's partials are split by the
//! hash of the keys into as many buckets as the frame has partitions (at most 64), kept like a
//! shuffle's (in memory up to a share of the memory budget, in files beyond: the shuffle
//! module's `Store`). The buckets are the result's partitions: partition `j` stacks bucket `j`
//! of every partition, combines its groups (whole there) and turns the partial columns into
//! the asked-for outputs, inside the task that consumes it (so a stage holds no more combined
//! buckets than it runs at once). A group-by with many groups (as many as rows, at worst) so
//! combines on every thread, in pieces that fit the caches, instead of in one task over every
//! partial, and within the memory budget.
//!
//! When partials would not be fewer than the rows (nearly every key distinct: see
//! `partials_pay`), a partition sends its rows instead, split the same way, and a bucket of
//! rows only is aggregated once, with the asked-for aggregates themselves (rows beside
//! partials are first aggregated into partials). The first partitions decide from a sample of
//! their rows; later ones follow them, and then run their partials fused with their scan.
//!
//! An aggregate that has no such partials (a median, a quantile, a list of the values) needs
//! every value of a group in one place: the rows are then hash-shuffled on the keys (see the
//! shuffle module) and polars aggregates each output partition, whose groups are whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use polars::prelude::*;

use super::shuffle::{Store, shuffle, split_by_hash};
use super::{Frame, Part, concat_frames, polars_err, run_query, window};
use crate::error::{BoxError, Error, Result};
use crate::graph::{Delayed, user_error};

/// A frame grouped by key columns, waiting for [`agg`](GroupBy::agg). Made by
/// [`Frame::group_by`].
pub struct GroupBy {
    frame: Frame,
    keys: Vec<PlSmallStr>,
}

impl Frame {
    /// Groups the rows by the named key columns (nulls form a group, as in polars). The
    /// aggregates go to [`GroupBy::agg`].
    pub fn group_by<I, S>(self, keys: I) -> GroupBy
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        GroupBy {
            frame: self,
            keys: keys.into_iter().map(|k| k.as_ref().into()).collect(),
        }
    }
}

/// One aggregate, split: what each partition computes, how partials merge, the final value.
struct Split {
    partial: Vec<Expr>,
    combine: Vec<Expr>,
    finish: Expr,
}

/// Strips `alias` wrappers (the output name comes from polars' own schema).
fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(inner, _) => unalias(inner),
        other => other,
    }
}

fn agg(a: AggExpr) -> Expr {
    Expr::Agg(a)
}

/// `col(p)` where the partition had rows for the mean in `p` (count column `n`), else 0.
fn where_some(n: &str, p: &str) -> Expr {
    when(col(n).gt(lit(0))).then(col(p)).otherwise(lit(0.0))
}

fn split(i: usize, e: &Expr) -> Result<Split> {
    let p = |k: usize| format!("__onebox_{i}_{k}");
    let (p0, p1, p2) = (p(0), p(1), p(2));
    let same = |e: &Expr, combine: Expr| Split {
        partial: vec![e.clone().alias(p0.as_str())],
        combine: vec![combine.alias(p0.as_str())],
        finish: col(p0.as_str()),
    };
    let x = |input: &Arc<Expr>| (**input).clone().cast(DataType::Float64);
    Ok(match unalias(e) {
        Expr::Len => same(&len(), col(p0.as_str()).sum()),
        e @ Expr::Agg(a) => match a {
            AggExpr::Sum(_) | AggExpr::Count { .. } => same(e, col(p0.as_str()).sum()),
            AggExpr::Min { propagate_nans, .. } => same(
                e,
                agg(AggExpr::Min {
                    input: Arc::new(col(p0.as_str())),
                    propagate_nans: *propagate_nans,
                }),
            ),
            AggExpr::Max { propagate_nans, .. } => same(
                e,
                agg(AggExpr::Max {
                    input: Arc::new(col(p0.as_str())),
                    propagate_nans: *propagate_nans,
                }),
            ),
            AggExpr::First(_) => same(e, col(p0.as_str()).first()),
            AggExpr::Last(_) => same(e, col(p0.as_str()).last()),
            AggExpr::FirstNonNull(_) => {
                same(e, agg(AggExpr::FirstNonNull(Arc::new(col(p0.as_str())))))
            }
            AggExpr::LastNonNull(_) => {
                same(e, agg(AggExpr::LastNonNull(Arc::new(col(p0.as_str())))))
            }
            AggExpr::NUnique(input) => Split {
                // Each partition's distinct values per group, as a list; merged by union.
                partial: vec![(**input).clone().unique().alias(p0.as_str())],
                combine: vec![
                    col(p0.as_str())
                        .explode(ExplodeOptions {
                            empty_as_null: false,
                            keep_nulls: true,
                        })
                        .unique()
                        .alias(p0.as_str()),
                ],
                finish: col(p0.as_str()).list().len(),
            },
            AggExpr::Mean(input) => Split {
                partial: vec![
                    x(input).sum().alias(p0.as_str()),
                    (**input).clone().count().alias(p1.as_str()),
                ],
                combine: vec![
                    col(p0.as_str()).sum().alias(p0.as_str()),
                    col(p1.as_str()).sum().alias(p1.as_str()),
                ],
                finish: when(col(p1.as_str()).gt(lit(0)))
                    .then(col(p0.as_str()) / col(p1.as_str()).cast(DataType::Float64))
                    .otherwise(lit(NULL)),
            },
            AggExpr::Var(input, ddof) | AggExpr::Std(input, ddof) => {
                let std = matches!(a, AggExpr::Std(..));
                // Partials: n (non-null values), their mean, and m2 = Σ (x - mean)².
                let partial = vec![
                    (**input).clone().count().alias(p0.as_str()),
                    x(input).mean().alias(p1.as_str()),
                    (x(input) - x(input).mean()).pow(2).sum().alias(p2.as_str()),
                ];
                // Chan et al.: N = Σ n, M = Σ n·m / N, M2 = Σ m2 + Σ n·(m - M)².
                let n = || col(p0.as_str()).cast(DataType::Float64);
                let m = || where_some(&p0, &p1);
                let total_n = n().sum();
                let mean = (n() * m()).sum() / total_n.clone();
                let combine = vec![
                    col(p0.as_str()).sum().alias(p0.as_str()),
                    when(total_n.clone().gt(lit(0.0)))
                        .then(mean.clone())
                        .otherwise(lit(NULL))
                        .alias(p1.as_str()),
                    (where_some(&p0, &p2).sum() + (n() * (m() - mean).pow(2)).sum())
                        .alias(p2.as_str()),
                ];
                let dof = n() - lit(*ddof as f64);
                let var = when(dof.clone().gt(lit(0.0)))
                    .then(col(p2.as_str()) / dof)
                    .otherwise(lit(NULL));
                Split {
                    partial,
                    combine,
                    finish: if std { var.sqrt() } else { var },
                }
            }
            _ => return Err(unsupported(e)),
        },
        _ => return Err(unsupported(e)),
    })
}

/// The aggregate has no exact partials (the group-by shuffles instead).
fn unsupported(e: &Expr) -> Error {
    Error::Invalid(format!("group_by: {e:?} cannot be combined from partials"))
}

impl GroupBy {
    /// Computes `aggs` per group: one polars aggregate each (`col("x").sum()`,
    /// `col("x").mean().alias("m")`, `len()`, `col("x").median()`, ... of any per-row
    /// expression). The key columns then the aggregates, named and typed as polars would name
    /// and type them, groups in no particular order (sort it to compare). When every aggregate
    /// is one of len, count, sum, mean, min, max, first, last, first/last non-null, n_unique,
    /// var and std, the partials are combined per bucket of keys, one partition per bucket;
    /// otherwise (median, quantile, ...) the rows are shuffled on the keys. Either way the
    /// result has as many partitions as the frame (at most 64).
    pub fn agg<E: AsRef<[Expr]>>(self, aggs: E) -> Result<Frame> {
        let aggs = aggs.as_ref().to_vec();
        let GroupBy { frame, keys } = self;
        if keys.is_empty() {
            return Err(Error::Invalid(
                "group_by needs at least one key column".into(),
            ));
        }
        // What polars itself would output: names and types, checked against the schema.
        let out_schema = DataFrame::empty_with_schema(&frame.schema)
            .lazy()
            .group_by(keys.iter().map(|k| col(k.clone())).collect::<Vec<_>>())
            .agg(&aggs)
            .collect_schema()
            .map_err(polars_err)?;
        let key_exprs: Vec<Expr> = keys.iter().map(|k| col(k.clone())).collect();
        let splits = match aggs
            .iter()
            .enumerate()
            .map(|(i, e)| split(i, e))
            .collect::<Result<Vec<_>>>()
        {
            Ok(splits) => splits,
            // Not splittable (a median, a quantile, ...): bring each group's rows together.
            Err(_) => return shuffled_agg(&frame, key_exprs, aggs, out_schema),
        };
        let partial: Vec<Expr> = splits.iter().flat_map(|s| s.partial.clone()).collect();
        let combine: Arc<Vec<Expr>> =
            Arc::new(splits.iter().flat_map(|s| s.combine.clone()).collect());
        let mut finish: Vec<Expr> = key_exprs.clone();
        for (s, (name, dtype)) in splits.iter().zip(out_schema.iter().skip(keys.len())) {
            finish.push(s.finish.clone().cast(dtype.clone()).alias(name.clone()));
        }

        if frame.parts.is_empty() {
            return Err(Error::Invalid("a frame with no partitions".into()));
        }
        let cluster = frame.cluster.clone();
        let buckets = frame.shuffle_partitions();
        let key_exprs = Arc::new(key_exprs);
        let needed = read_columns(key_exprs.iter().chain(&aggs));
        // The schemas of a partition's projected rows and of its partials, for buckets that
        // got none.
        let empty = || DataFrame::empty_with_schema(&frame.schema).lazy();
        let raw_schema = match needed.as_ref() {
            Some(columns) => empty().select(columns.as_slice()).collect_schema(),
            None => Ok(frame.schema.clone()),
        }
        .map_err(polars_err)?;
        let partial_schema = empty()
            .group_by(key_exprs.as_slice())
            .agg(&partial)
            .collect_schema()
            .map_err(polars_err)?;
        // Whether partials pay, once a partition has found out (the first partitions sample
        // their rows; the later ones follow them).
        let verdict = Arc::new(AtomicU8::new(UNKNOWN));
        // Per partition: its partial aggregates (or its rows, when partials would not be
        // fewer: see `partials_pay`), split by the hash of the keys into `store`; the task's
        // output says which it stored (true: rows).
        let store = Store::new(&cluster, frame.parts.len(), buckets);
        let splits: Vec<Delayed<bool>> = frame
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (k, a, needed) = (key_exprs.clone(), partial.clone(), needed.clone());
                let verdict = verdict.clone();
                let query = move |lf: LazyFrame| -> std::result::Result<_, crate::error::BoxError> {
                    let partials = |lf: LazyFrame| run_query(lf.group_by(k.as_slice()).agg(&a));
                    let known = verdict.load(Ordering::Relaxed);
                    if known == PARTIALS_PAY {
                        // fused with the partition's query: polars reads only what it needs
                        return Ok((false, partials(lf)?));
                    }
                    let rows = run_query(match needed.as_ref() {
                        Some(columns) => lf.select(columns.as_slice()),
                        None => lf,
                    })?;
                    if known == ROWS_PAY {
                        return Ok((true, rows));
                    }
                    if partials_pay(&rows, &k)? {
                        verdict.store(PARTIALS_PAY, Ordering::Relaxed);
                        return Ok((false, partials(rows.lazy())?));
                    }
                    verdict.store(ROWS_PAY, Ordering::Relaxed);
                    Ok((true, rows))
                };
                let (keys, store) = (key_exprs.clone(), store.clone());
                p.query_task(
                    &cluster,
                    &format!("frame-agg[{i}]"),
                    query,
                    move |(raw, df)| {
                        store.put(i, split_by_hash(&df, &keys, buckets)?)?;
                        Ok(raw)
                    },
                )
            })
            .collect();
        window(&cluster, &splits);
        // When every partition is stored: which stored rows (true) and which partials, as a
        // frame of one column (the partitions below take it as their input).
        let stored = Delayed::combine(&cluster, splits, |raw| {
            DataFrame::new(raw.len(), vec![Column::new("raw".into(), raw)]).map_err(user_error)
        })
        .label("frame-agg-stored");
        // Per bucket: its share of every partition, combined; every group is whole in one
        // bucket. Rows (from partitions whose partials would not pay) are aggregated with the
        // asked-for aggregates when every piece is rows, else into partials first. A bucket is
        // combined inside the task that consumes its partition (as a shuffle's output is
        // read), so a stage of many buckets holds no more of them than it runs at once.
        let finish = Arc::new(finish);
        let aggs = Arc::new(aggs);
        let parts = (0..buckets)
            .map(|j| {
                let (k, a, c, f) = (
                    key_exprs.clone(),
                    aggs.clone(),
                    combine.clone(),
                    finish.clone(),
                );
                let (partial, store) = (partial.clone(), store.clone());
                let (raw_schema, partial_schema) = (raw_schema.clone(), partial_schema.clone());
                let bucket = move |raw: &[bool]| -> std::result::Result<DataFrame, BoxError> {
                    if raw.iter().all(|&r| r) {
                        let rows = store.read(j, &raw_schema)?;
                        return Ok(run_query(
                            rows.lazy().group_by(k.as_slice()).agg(a.as_slice()),
                        )?);
                    }
                    let mut dfs = Vec::with_capacity(raw.len());
                    for (i, &r) in raw.iter().enumerate() {
                        let Some(piece) = store.get(i, j)? else {
                            continue;
                        };
                        dfs.push(if r {
                            run_query(piece.lazy().group_by(k.as_slice()).agg(&partial))?
                        } else {
                            piece
                        });
                    }
                    if dfs.is_empty() {
                        dfs.push(DataFrame::empty_with_schema(&partial_schema));
                    }
                    Ok(run_query(
                        concat_frames(dfs)?
                            .lazy()
                            .group_by(k.as_slice())
                            .agg(c.as_slice())
                            .select(f.as_slice()),
                    )?)
                };
                let mut part = Part::from_task(stored.clone());
                part.plan = Arc::new(move |flags: Option<DataFrame>| {
                    let flags = flags.ok_or("a group-by bucket without its input")?;
                    let raw: Vec<bool> = flags.column("raw")?.bool()?.iter().flatten().collect();
                    Ok(bucket(&raw)?.lazy())
                });
                part
            })
            .collect();
        Ok(Frame::new(&cluster, parts, out_schema))
    }
}

/// The columns `exprs` read, as column expressions (the only ones a partition query needs to
/// keep), or `None` when one of them selects columns otherwise than by name (a selector).
fn read_columns<'a>(exprs: impl Iterator<Item = &'a Expr>) -> Option<Vec<Expr>> {
    let mut names: Vec<PlSmallStr> = Vec::new();
    for e in exprs {
        for node in e {
            match node {
                Expr::Column(name) if !names.contains(name) => names.push(name.clone()),
                Expr::Selector(_) => return None,
                _ => {}
            }
        }
    }
    Some(names.into_iter().map(col).collect())
}

/// What [`partials_pay`] found on a partition, shared by the partitions of a group-by.
const UNKNOWN: u8 = 0;
const PARTIALS_PAY: u8 = 1;
const ROWS_PAY: u8 = 2;

/// Rows sampled to estimate how many groups a partition has.
const SAMPLE: usize = 4096;

/// Whether aggregating a partition's rows `df` by `keys` into partials would at least halve
/// them, so that partials are worth computing before the combine. Estimated from the
/// duplicate keys among [`SAMPLE`] evenly spread rows: `d` duplicates among `s` rows suggest
/// about `G = s² / 2d` groups (the birthday estimate), of which `n` rows hit
/// `G (1 - e^(-n/G))`. When every key is distinct (the db-benchmark's q10) the partials would
/// be as many as the rows and the combine would repeat the aggregation, so the rows go to the
/// combine as they are and are aggregated once there. A small partition, or keys with many
/// repeats (skewed keys), keeps the partials.
fn partials_pay(df: &DataFrame, keys: &[Expr]) -> PolarsResult<bool> {
    let n = df.height();
    if n < 4 * SAMPLE {
        return Ok(true);
    }
    let step = n / SAMPLE;
    let rows: Vec<IdxSize> = (0..SAMPLE).map(|i| (i * step) as IdxSize).collect();
    let sample = df
        .take(&IdxCa::from_vec(PlSmallStr::EMPTY, rows))?
        .lazy()
        .select(keys)
        .collect()?;
    let s = sample.height();
    let distinct = sample
        .lazy()
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?
        .height();
    let dup = s.saturating_sub(distinct);
    if dup == 0 {
        return Ok(false);
    }
    let groups = (s * s) as f64 / (2.0 * dup as f64);
    let partials = groups * (1.0 - (-(n as f64) / groups).exp());
    Ok(partials <= 0.5 * n as f64)
}

/// `group_by(keys).agg(aggs)` by shuffling the rows on the keys, then aggregating every
/// output partition with polars: every group is whole in one partition, so any aggregate is
/// exact. One partition per shuffle bucket.
fn shuffled_agg(
    frame: &Frame,
    keys: Vec<Expr>,
    aggs: Vec<Expr>,
    schema: SchemaRef,
) -> Result<Frame> {
    let n = frame.shuffle_partitions();
    let buckets = Arc::new(shuffle(frame, keys.clone(), n, "agg-shuffle")?);
    let (keys, aggs) = (Arc::new(keys), Arc::new(aggs));
    let parts = (0..n)
        .map(|j| {
            let (keys, aggs) = (keys.clone(), aggs.clone());
            buckets.part(j, move |df| {
                Ok(df.lazy().group_by(keys.as_slice()).agg(aggs.as_slice()))
            })
        })
        .collect();
    Ok(Frame::new(&frame.cluster, parts, schema))
}
