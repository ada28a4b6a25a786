//! Hash shuffles: moving every row to the partition its key's hash picks, in memory while
//! it fits, through files beyond.
//!
//! Operations whose answer depends on all the rows with one key — a join of two big frames,
//! `unique`, an exact median per group — first put those rows together. Each input
//! partition's task hashes the key columns of its rows and splits them into one **bucket**
//! per output partition; after every input task has split its rows, output partition `j`'s
//! task stacks the buckets `j` of every input, in input order.
//!
//! ```text
//!  input 0 ─ hash, split ─┐   ┌─ buckets 0 ─ output 0
//!  input 1 ─ hash, split ─┼───┼─ buckets 1 ─ output 1
//!  input 2 ─ hash, split ─┘   └─ buckets 2 ─ output 2
//! ```
//!
//! A bucket stays in memory while the shuffle's buckets there take at most a sixteenth of
//! the cluster's memory budget (the rest is the tasks' working room); past that it
//! **spills** to a file
//! (`in<i>-out<j>.arrow`, Arrow IPC: the columns as they are in memory, no encoding to undo;
//! Parquet's dictionary encoding of unique strings took a third of a shuffle join's time).
//! One task holds one input partition or one output partition at a time besides, so a
//! shuffle of data larger than memory runs when the partitions fit. Rows with equal keys
//! (nulls equal to nulls, NaN to NaN) land in the same output partition, in the order of the
//! input partitions and of their rows there. Buckets in memory count in the cluster's
//! [managed bytes](crate::Cluster::managed_bytes). The buckets, and the temporary directory
//! of the files, go when the shuffled frame, everything made from it and their tasks are
//! dropped; they are read again if the shuffled frame is computed again. A group-by keeps its
//! partials (or rows) per bucket in the same kind of [`Store`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use polars::prelude::*;

use super::{Frame, Part, concat_frames, frame_bytes, window};
use crate::Cluster;
use crate::error::{BoxError, Error, Result};
use crate::graph::node::lock;
use crate::graph::{Delayed, user_error};

/// The most output partitions a shuffle makes by default (each input task writes that many
/// files).
pub(super) const MAX_SHUFFLE_PARTITIONS: usize = 64;

/// A shuffle keeps buckets in memory up to the cluster's memory budget over this.
const MEMORY_SHARE: u64 = 16;

/// The seed of the key hash: fixed, so every partition sends equal keys to the same bucket.
const SEED: u64 = 0x6f6e_6562_6f78_0005;

/// Where input `i`'s bucket for output `j` went.
#[derive(Clone)]
enum Stored {
    /// No rows.
    Empty,
    /// Kept in memory.
    Memory(DataFrame),
    /// Spilled to the file `in<i>-out<j>.arrow`.
    File,
}

/// The buckets of one stage, `inputs` rows of `outputs` buckets each: in memory while they take
/// at most 1/[`MEMORY_SHARE`] of the cluster's memory budget (counted in its managed bytes until
/// the store goes), in Arrow IPC files of a temporary directory beyond (made on the first
/// spill, removed with the store).
pub(super) struct Store {
    dir: OnceLock<tempfile::TempDir>,
    stored: Mutex<Vec<Vec<Stored>>>,
    held: AtomicUsize,
    limit: usize,
    managed: Arc<AtomicUsize>,
}

impl Store {
    pub(super) fn new(cluster: &Cluster, inputs: usize, outputs: usize) -> Arc<Store> {
        Arc::new(Store {
            dir: OnceLock::new(),
            stored: Mutex::new(vec![vec![Stored::Empty; outputs]; inputs]),
            held: AtomicUsize::new(0),
            limit: usize::try_from(cluster.plan().memory_limit / MEMORY_SHARE)
                .unwrap_or(usize::MAX),
            managed: cluster.inner().managed.clone(),
        })
    }

    /// Counts `bytes` more in memory if they stay within the limit.
    fn try_hold(&self, bytes: usize) -> bool {
        let fits = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok();
        if fits {
            self.managed.fetch_add(bytes, Ordering::Relaxed);
        }
        fits
    }

    fn path(&self, input: usize, output: usize) -> std::result::Result<PathBuf, BoxError> {
        let dir = match self.dir.get() {
            Some(dir) => dir,
            None => {
                let made = tempfile::Builder::new()
                    .prefix("onebox-frame-shuffle-")
                    .tempdir()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                // Another input may have made one meanwhile: then `made` is removed.
                let _ = self.dir.set(made);
                self.dir.get().ok_or("no spill directory")?
            }
        };
        Ok(dir.path().join(format!("in{input}-out{output}.arrow")))
    }

    /// Stores input `i`'s buckets, one per output (an empty frame for none).
    pub(super) fn put(
        &self,
        i: usize,
        buckets: Vec<DataFrame>,
    ) -> std::result::Result<(), BoxError> {
        let mut row = Vec::with_capacity(buckets.len());
        for (j, mut bucket) in buckets.into_iter().enumerate() {
            row.push(if bucket.height() == 0 {
                Stored::Empty
            } else if self.try_hold(frame_bytes(&bucket)) {
                Stored::Memory(bucket)
            } else {
                let path = self.path(i, j)?;
                let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                IpcWriter::new(std::io::BufWriter::new(file))
                    .finish(&mut bucket)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Stored::File
            });
        }
        lock(&self.stored)[i] = row;
        Ok(())
    }

    /// Input `i`'s bucket `j`, `None` when it has no rows.
    pub(super) fn get(
        &self,
        i: usize,
        j: usize,
    ) -> std::result::Result<Option<DataFrame>, BoxError> {
        let stored = lock(&self.stored)[i][j].clone();
        Ok(match stored {
            Stored::Empty => None,
            Stored::Memory(df) => Some(df),
            Stored::File => {
                let path = self.path(i, j)?;
                let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
                let df = IpcReader::new(file)
                    .finish()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Some(df)
            }
        })
    }

    /// Bucket `j` of every input, in input order, stacked (`schema`'s empty frame for none).
    pub(super) fn read(
        &self,
        j: usize,
        schema: &SchemaRef,
    ) -> std::result::Result<DataFrame, BoxError> {
        let inputs = lock(&self.stored).len();
        let mut dfs = Vec::new();
        for i in 0..inputs {
            dfs.extend(self.get(i, j)?);
        }
        if dfs.is_empty() {
            return Ok(DataFrame::empty_with_schema(schema));
        }
        concat_frames(dfs)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.managed
            .fetch_sub(*self.held.get_mut(), Ordering::Relaxed);
    }
}

/// The buckets of one shuffle, made by `inputs` tasks for `outputs` partitions.
pub(super) struct Buckets {
    /// Complete once `written` has finished.
    store: Arc<Store>,
    schema: SchemaRef,
    /// The tasks splitting the input partitions, one each.
    writes: Vec<Delayed<()>>,
    /// A task finishing when every bucket is stored (its rows are empty).
    written: Delayed<DataFrame>,
}

impl Buckets {
    /// A task finishing when every bucket is stored.
    pub(super) fn written(&self) -> Delayed<DataFrame> {
        self.written.clone()
    }

    /// Makes the writing start once `other` has finished: two shuffles feeding one operation
    /// then hold one window of partitions in memory between them, not one each.
    pub(super) fn start_after(&self, other: &Delayed<DataFrame>) {
        for w in &self.writes {
            w.after(other);
        }
    }

    /// Output partition `j`'s rows: its buckets from every input, in input order.
    pub(super) fn read(&self, j: usize) -> std::result::Result<DataFrame, BoxError> {
        self.store.read(j, &self.schema)
    }

    /// A part made of output partition `j`, `f` turning its rows into the partition's query.
    pub(super) fn part(
        self: &Arc<Self>,
        j: usize,
        f: impl Fn(DataFrame) -> std::result::Result<LazyFrame, BoxError> + Send + Sync + 'static,
    ) -> Part {
        let me = self.clone();
        let mut part = Part::from_task(self.written.clone());
        part.plan = Arc::new(move |_| f(me.read(j)?));
        part
    }
}

/// `df`'s rows split by the hash of the `keys` columns into `n` frames (row order kept).
pub(super) fn split_by_hash(
    df: &DataFrame,
    keys: &[Expr],
    n: usize,
) -> std::result::Result<Vec<DataFrame>, BoxError> {
    let key_cols = df.clone().lazy().select(keys).collect()?;
    let state = PlSeedableRandomStateQuality::seed_from_u64(SEED);
    let mut hashes = Vec::with_capacity(df.height());
    let mut cols = key_cols.columns().iter();
    match cols.next() {
        Some(first) => first.vec_hash(state.clone(), &mut hashes)?,
        None => hashes.resize(df.height(), 0),
    }
    for c in cols {
        c.vec_hash_combine(state.clone(), &mut hashes)?;
    }
    // The high bits: foldhash mixes them best.
    let buckets = hashes
        .iter()
        .map(|h| ((u128::from(*h) * n as u128) >> 64) as usize);
    take_buckets(df, buckets, n)
}

/// `df`'s rows split by the bucket number `bucket` (an expression giving a `u32` in `0..n` for
/// every row) into `n` frames (row order kept).
fn split_by_bucket(
    df: &DataFrame,
    bucket: &Expr,
    n: usize,
) -> std::result::Result<Vec<DataFrame>, BoxError> {
    let ids = df
        .clone()
        .lazy()
        .select([bucket.clone().cast(DataType::UInt32).alias("bucket")])
        .collect()?;
    let ids = ids.column("bucket")?.u32()?.clone();
    if ids.null_count() > 0 || ids.max().is_some_and(|m| m as usize >= n) {
        return Err("a row's bucket is missing or out of range".into());
    }
    take_buckets(df, ids.into_no_null_iter().map(|b| b as usize), n)
}

/// `df`'s rows in `n` frames, row `i` in frame `buckets[i]` (row order kept).
fn take_buckets(
    df: &DataFrame,
    buckets: impl Iterator<Item = usize>,
    n: usize,
) -> std::result::Result<Vec<DataFrame>, BoxError> {
    let mut idx: Vec<Vec<IdxSize>> = vec![Vec::new(); n];
    for (row, b) in buckets.enumerate() {
        idx[b].push(row as IdxSize);
    }
    // One chunk per column first (a Parquet file's row groups are chunks): polars gathers
    // from a string column of several chunks by copying every string into new buffers, from
    // one chunk by copying 16-byte views.
    let mut df = df.clone();
    df.rechunk_mut();
    Ok(idx
        .into_iter()
        .map(|ix| df.take(&IdxCa::from_vec(PlSmallStr::EMPTY, ix)))
        .collect::<PolarsResult<_>>()?)
}

/// How a shuffle picks each row's output partition.
pub(super) enum Route {
    /// By the hash of these key expressions.
    Hash(Vec<Expr>),
    /// By this expression's value, the partition number itself.
    Bucket(Expr),
}

/// Shuffles `frame` into `n` partitions by the hash of `keys` (expressions over its columns:
/// two frames shuffled by keys of the same types agree on where every key goes).
pub(super) fn shuffle(frame: &Frame, keys: Vec<Expr>, n: usize, what: &str) -> Result<Buckets> {
    shuffle_by(frame, Route::Hash(keys), n, what)
}

/// Shuffles `frame` into `n` partitions as `route` says.
pub(super) fn shuffle_by(frame: &Frame, route: Route, n: usize, what: &str) -> Result<Buckets> {
    let route = Arc::new(route);
    let store = Store::new(&frame.cluster, frame.parts.len(), n);
    let writes: Vec<Delayed<()>> = frame
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (route, store) = (route.clone(), store.clone());
            p.task(
                &frame.cluster,
                &format!("frame-{what}-write[{i}]"),
                move |df| {
                    let buckets = match &*route {
                        Route::Hash(keys) => split_by_hash(&df, keys, n)?,
                        Route::Bucket(bucket) => split_by_bucket(&df, bucket, n)?,
                    };
                    drop(df);
                    store.put(i, buckets)
                },
            )
        })
        .collect();
    window(&frame.cluster, &writes);
    let written = Delayed::combine(&frame.cluster, writes.clone(), |_| Ok(DataFrame::empty()))
        .label(&format!("frame-{what}-written"));
    Ok(Buckets {
        store,
        schema: frame.schema.clone(),
        writes,
        written,
    })
}

/// Names as column expressions, each checked against `schema`.
pub(super) fn key_columns(schema: &Schema, names: &[PlSmallStr], op: &str) -> Result<Vec<Expr>> {
    names
        .iter()
        .map(|k| {
            if schema.contains(k) {
                Ok(col(k.clone()))
            } else {
                Err(Error::Invalid(format!(
                    "{op}: no column {k:?} (columns: {:?})",
                    schema.iter_names().collect::<Vec<_>>()
                )))
            }
        })
        .collect()
}

fn names<I, S>(columns: I) -> Vec<PlSmallStr>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    columns.into_iter().map(|s| s.as_ref().into()).collect()
}

/// Which row of a set of duplicates [`Frame::unique`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first in the frame's order (partition order, then row order).
    First,
    /// The last in the frame's order.
    Last,
    /// Any one of them (the cheapest).
    Any,
    /// None: rows that have duplicates are all dropped.
    None,
}

impl Frame {
    /// The default number of output partitions of a shuffle of this frame: as many as it has,
    /// at most [`MAX_SHUFFLE_PARTITIONS`].
    pub(super) fn shuffle_partitions(&self) -> usize {
        self.parts.len().clamp(1, MAX_SHUFFLE_PARTITIONS)
    }

    /// The same rows in `npartitions` partitions chosen by the hash of the `keys` columns: all
    /// the rows with one key (nulls equal, NaN equal) end up in one partition, in the frame's
    /// order. A hash shuffle (see [shuffles](super#shuffles)): the buckets past its share of
    /// the memory budget go to temporary files, and one partition is in memory per task.
    pub fn shuffle<I, S>(self, keys: I, npartitions: usize) -> Result<Frame>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = names(keys);
        if keys.is_empty() {
            return Err(Error::Invalid(
                "shuffle needs at least one key column".into(),
            ));
        }
        check_npartitions(npartitions)?;
        let exprs = key_columns(&self.schema, &keys, "shuffle")?;
        let buckets = Arc::new(shuffle(&self, exprs, npartitions, "shuffle")?);
        let parts = (0..npartitions)
            .map(|j| buckets.part(j, |df| Ok(df.lazy())))
            .collect();
        Ok(Frame::new(&self.cluster, parts, self.schema.clone()))
    }

    /// The same rows, in order, in `npartitions` partitions. Fewer partitions: neighbouring
    /// partitions are stacked. More: every partition is cut into equal runs of rows (the
    /// partitions' sizes are not known before they run, so uneven partitions stay uneven).
    pub fn repartition(self, npartitions: usize) -> Result<Frame> {
        check_npartitions(npartitions)?;
        let m = self.parts.len();
        let cluster = self.cluster.clone();
        let mut inputs = self.tasks("repartition", Ok).into_iter();
        let parts = if npartitions <= m {
            (0..npartitions)
                .map(|j| {
                    let size = m * (j + 1) / npartitions - m * j / npartitions;
                    let group: Vec<Delayed<DataFrame>> = inputs.by_ref().take(size).collect();
                    let schema = self.schema.clone();
                    Part::from_task(
                        Delayed::combine(&cluster, group, move |dfs| {
                            let dfs: Vec<DataFrame> =
                                dfs.into_iter().filter(|d| d.height() > 0).collect();
                            if dfs.is_empty() {
                                return Ok(DataFrame::empty_with_schema(&schema));
                            }
                            concat_frames(dfs).map_err(user_error)
                        })
                        .label(&format!("frame-repartition-concat[{j}]")),
                    )
                })
                .collect()
        } else {
            let mut parts = Vec::with_capacity(npartitions);
            for (i, whole) in inputs.enumerate() {
                let pieces = npartitions * (i + 1) / m - npartitions * i / m;
                for k in 0..pieces {
                    parts.push(Part::from_task(whole.clone()).then(move |lf| {
                        let df = lf.collect()?;
                        let h = df.height();
                        let (start, end) = (h * k / pieces, h * (k + 1) / pieces);
                        Ok(df.slice(start as i64, end - start).lazy())
                    }));
                }
            }
            parts
        };
        Ok(Frame::new(&cluster, parts, self.schema.clone()))
    }

    /// The rows without duplicates among the `subset` columns (all columns when `None`),
    /// keeping one row of each set of duplicates as `keep` says. Shuffles on those columns, so
    /// the result has the partitions of the shuffle; rows in no particular order.
    pub fn unique(self, subset: Option<&[&str]>, keep: Keep) -> Result<Frame> {
        let subset: Vec<PlSmallStr> = match subset {
            Some(cols) => names(cols.iter()),
            None => self.schema.iter_names().cloned().collect(),
        };
        if subset.is_empty() {
            return Err(Error::Invalid("unique needs at least one column".into()));
        }
        let exprs = key_columns(&self.schema, &subset, "unique")?;
        let strategy = match keep {
            Keep::First => UniqueKeepStrategy::First,
            Keep::Last => UniqueKeepStrategy::Last,
            Keep::Any => UniqueKeepStrategy::Any,
            Keep::None => UniqueKeepStrategy::None,
        };
        let n = self.shuffle_partitions();
        let buckets = Arc::new(shuffle(&self, exprs.clone(), n, "unique")?);
        let parts = (0..n)
            .map(|j| {
                let exprs = exprs.clone();
                buckets.part(j, move |df| {
                    Ok(df
                        .lazy()
                        .unique_stable_generic(Some(exprs.clone()), strategy))
                })
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, self.schema.clone()))
    }

    /// Same as [`unique`](Frame::unique) (the pandas name).
    pub fn drop_duplicates(self, subset: Option<&[&str]>, keep: Keep) -> Result<Frame> {
        self.unique(subset, keep)
    }

    /// How many times each value of `column` occurs: one partition with `column` and `count`
    /// (as polars' `value_counts`), the most frequent first when `sort` (ties in no particular
    /// order). An exact group-by: partial counts per partition, summed.
    pub fn value_counts(self, column: &str, sort: bool) -> Result<Frame> {
        if !self.schema.contains(column) {
            return Err(Error::Invalid(format!(
                "value_counts: no column {column:?} (columns: {:?})",
                self.schema.iter_names().collect::<Vec<_>>()
            )));
        }
        let counts = self.group_by([column]).agg([len().alias("count")])?;
        Ok(if sort {
            counts.sort_gathered(vec!["count".into()], true)
        } else {
            counts
        })
    }
}

fn check_npartitions(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::config(
            "npartitions",
            0,
            "a frame needs at least one partition",
        ));
    }
    Ok(())
}
