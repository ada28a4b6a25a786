//! Frames: lazy, partitioned dataframes on polars, like `dask.dataframe`.
//!
//! A [`Frame`] is a list of **partitions**, each a polars [`DataFrame`] that does not exist
//! yet: "the rows of `2024-01.csv`", "rows 1000..2000 of this `DataFrame`", "the output of that
//! task". Operations are of two kinds:
//!
//! - **Per-partition** operations ([`select`](Frame::select),
//!   [`with_columns`](Frame::with_columns), [`filter`](Frame::filter),
//!   [`rename`](Frame::rename), [`drop`](Frame::drop), [`cast`](Frame::cast),
//!   [`map_partitions`](Frame::map_partitions)) take polars expressions and only extend each
//!   partition's polars query plan. They **fuse**: a chain of them is one polars query, run by
//!   one task per partition, so polars' optimizer sees the whole chain (a filter after a scan
//!   is pushed into the reader, unused columns are never parsed).
//! - **Cross-partition** operations make the task graph:
//!   [`group_by(..).agg(..)`](Frame::group_by) aggregates each partition into partial results
//!   (a sum and a count for a mean, ...), splits them by the hash of the keys into buckets in
//!   memory, and combines each bucket exactly in one more task (a group is whole in one
//!   bucket, so the combines run side by side, whatever the number of groups);
//!   [`value_counts`](Frame::value_counts) is such a group-by;
//!   [`sort`](Frame::sort) samples the first key's ranges, shuffles every row to its range
//!   and sorts each range: the partitions come in order;
//!   [`repartition`](Frame::repartition) stacks or cuts partitions, keeping the order;
//!   [`describe`](Frame::describe) summarizes the numeric columns.
//! - **Shuffles** move every row to the partition the hash of its key picks, in memory up
//!   to a share of the memory budget and through temporary files beyond, so that all the
//!   rows with one key meet in one task without the whole frame being in memory:
//!   [`shuffle`](Frame::shuffle) itself, [`unique`](Frame::unique),
//!   a group-by whose aggregates cannot be split into partials (a median, a quantile), and a
//!   [`join`](Frame::join) of two frames that both have several partitions (a right frame of
//!   one partition is broadcast to every left partition instead).
//!
//! ```text
//!  partition 0: scan ─ filter ─ with_columns ─ partial agg ─ split ┐ ┌─ combine bucket 0 ─▶
//!  partition 1: scan ─ filter ─ with_columns ─ partial agg ─ split ┼─┼─ combine bucket 1 ─▶
//!  partition 2: scan ─ filter ─ with_columns ─ partial agg ─ split ┘ └─ combine bucket 2 ─▶
//!          (one task per partition: one polars query)
//! ```
//!
//! Nothing runs until a terminal call: [`compute`](Frame::compute) (one `DataFrame`),
//! [`head`](Frame::head) and [`tail`](Frame::tail) (compute partitions from one end, only as
//! many as they need),
//! [`to_parquet`](Frame::to_parquet) and [`to_csv`](Frame::to_csv) (a file per partition), or
//! [`to_delayed`](Frame::to_delayed) (the partitions as tasks, to build on).
//!
//! ```
//! use onebox::prelude::*;
//! use onebox::frame::Frame;
//! use onebox::frame::polars::prelude::*;   // the polars that frames are made of
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let df = df!("shop" => ["a", "b", "a", "c"], "sales" => [1i64, 2, 3, 4])
//!     .map_err(|e| Error::Invalid(e.to_string()))?;
//! let frame = Frame::from_dataframe(&cluster, df, 3)?;          // 3 partitions
//! let totals = frame
//!     .filter(col("sales").gt(lit(1)))?                        // fused into one task
//!     .group_by(["shop"])
//!     .agg([col("sales").sum().alias("total"), len().alias("n")])?
//!     .sort(["shop"], false)?                                  // partitions in order
//!     .compute()?;
//! let total = totals.column("total").and_then(|c| c.i64().map(|c| c.to_vec()));
//! assert_eq!(total.map_err(|e| Error::Invalid(e.to_string()))?, [Some(3), Some(2), Some(4)]);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! ## Sources
//!
//! [`Frame::scan_csv`] and [`Frame::scan_parquet`] take globs, files or a mix and make a
//! partition per file. They read every file's schema first, so a missing file, a glob that
//! matches nothing, or a file whose columns (or, for Parquet, types) differ from the first
//! file's is an error naming the file before anything runs. CSV files are all read with the
//! types inferred from the first one; a value that does not parse fails that partition's task
//! with an error naming the file. [`Frame::from_dataframe`] splits a `DataFrame` into
//! row ranges; [`Frame::from_partitions`] takes the partitions as given.
//!
//! ## Shuffles
//!
//! A shuffle puts together all the rows that have one key. Each input partition's task hashes
//! the key columns of its rows and writes one Parquet bucket file per output partition into a
//! temporary directory; then output partition `j`'s task reads bucket `j` of every input, in
//! input order. Rows with equal keys (nulls equal to nulls, NaN to NaN) land in one partition,
//! in the frame's order, and a task holds one input or one output partition at a time, so a
//! shuffle of data larger than memory runs when the partitions fit. The directory is removed
//! when the shuffled frame, what was made from it and their tasks are dropped.
//!
//! ```text
//!  input 0 ─ hash, write ─┐   ┌─ read bucket 0 of each input ─ output 0
//!  input 1 ─ hash, write ─┼───┼─ read bucket 1 of each input ─ output 1
//!  input 2 ─ hash, write ─┘   └─ read bucket 2 of each input ─ output 2
//! ```
//!
//! ## Joins
//!
//! [`join`](Frame::join) matches rows two ways. **Broadcast** (when the right frame has one
//! partition): the right frame is computed once, whole, and joined with every left partition
//! in that partition's task; no other data moves, but the right frame must fit in memory.
//! **Shuffle** (otherwise, and always for a full join, whose unmatched right rows must appear
//! once): both frames are shuffled on their keys into the same number of partitions, so rows
//! that can match meet in partitions with the same index, joined pairwise; two frames bigger
//! than memory join this way. [`broadcast_join`](Frame::broadcast_join) and
//! [`shuffle_join`](Frame::shuffle_join) choose explicitly. Either way the rows are those
//! polars gives on the concatenated frames, in no particular order.
//!
//! ## Hive partitioning
//!
//! `scan_parquet(&cluster, ["sales"])` on `sales/year=2024/month=3/part-0.parquet`, ... gives
//! every row the columns `year` and `month` from its file's directories, after the file's
//! own columns: `Int64` when every value reads as an integer, `Float64` when every one reads
//! as a number, `String` otherwise, null for `__HIVE_DEFAULT_PARTITION__`. Every file must
//! name the same columns in the same order (an error names the file that does not); names
//! starting with `.` or `_` (`_SUCCESS`) are skipped.
//!
//! ## Threads
//!
//! Partition queries are the cluster's tasks: the partitions give the parallelism. polars
//! runs a query's operators on threads of its own (its executor and its pool), and the
//! task's thread waits for them. Unless `POLARS_MAX_THREADS` is already set, the first frame
//! sizes polars' threads to the cluster's thread count before polars starts them: the tasks
//! of a stage (at most that many at once, see below) share them, so the cores are busy with
//! as many threads as there are cores, not twice as many. With one polars thread for a
//! two-thread cluster the two partition queries would take turns on it (q1 and q10 of the
//! db-benchmark group-by ran 1.5 to 1.7x slower so).
//!
//! A task's thread waiting for polars' pool does not sit idle: it runs other queued tasks
//! (that is how rayon waits). Left alone it would start every ready partition of a stage, one
//! on top of the other, and hold all of them in memory. So the partition tasks of a stage are
//! chained in a window: partition `i` starts after partition `i - threads` has finished, and a
//! stage has at most as many partitions in memory as the cluster has threads.
//!
//! ## Failures
//!
//! An unknown column or an expression that does not fit the schema is an error when the
//! operation is added, before anything runs. Partition tasks are labelled
//! `frame-<operation>[<partition>]`; an error while running (a value that does not cast, a
//! malformed CSV line) fails that task and [`compute`](Frame::compute) returns an
//! [`Error::Task`] that names the task and carries polars' message, prefixed with the file the
//! partition reads and, for a CSV record that does not parse, its line (`data.csv, line 12:
//! could not parse ...`).

mod csv;
mod describe;
mod group;
mod hive;
mod join;
mod shuffle;
mod sort;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use polars::prelude::*;

use crate::cluster::Cluster;
use crate::error::{BoxError, Error, Result};
use crate::graph::Delayed;

pub use group::GroupBy;
pub use join::JoinHow;
/// The polars crate that frames are made of (its `prelude` has `col`, `lit`, `df!`, ...).
pub use polars;
pub use shuffle::Keep;

/// A partition's polars query, given its input rows when it has an input task.
type Plan =
    Arc<dyn Fn(Option<DataFrame>) -> std::result::Result<LazyFrame, BoxError> + Send + Sync>;

/// A partition's bytes for the cluster's [managed bytes](Cluster::managed_bytes): polars'
/// estimate of the heap its columns take (buffers shared with other frames count in full).
fn frame_bytes(df: &DataFrame) -> usize {
    df.estimated_size()
}

/// One partition: an optional input task and the query that makes the partition's rows.
#[derive(Clone)]
struct Part {
    input: Option<Delayed<DataFrame>>,
    plan: Plan,
    /// What the partition reads (a file), to name in its errors.
    context: Option<Arc<str>>,
    /// Says where in its input a failed partition went wrong (a CSV file's bad line).
    locate: Option<Locate>,
}

/// Finds where in a partition's input the error is, when it can: `"line 12"`.
type Locate = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Part {
    /// Rows made inside the task (a slice of a `DataFrame`, a file scan).
    fn source(
        f: impl Fn() -> std::result::Result<LazyFrame, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Part {
            input: None,
            plan: Arc::new(move |_| f()),
            context: None,
            locate: None,
        }
    }

    /// The rows output by a task.
    fn from_task(input: Delayed<DataFrame>) -> Self {
        Part {
            input: Some(input.sized(frame_bytes)),
            plan: Arc::new(|df: Option<DataFrame>| {
                df.map(DataFrame::lazy)
                    .ok_or_else(|| "a frame partition lost its input".into())
            }),
            context: None,
            locate: None,
        }
    }

    /// The same partition with `f` applied to its query.
    fn then(
        &self,
        f: impl Fn(LazyFrame) -> std::result::Result<LazyFrame, BoxError> + Send + Sync + 'static,
    ) -> Self {
        let prev = self.plan.clone();
        Part {
            input: self.input.clone(),
            plan: Arc::new(move |df| f(prev(df)?)),
            context: self.context.clone(),
            locate: self.locate.clone(),
        }
    }

    /// A task computing the partition, then `finish` on its rows.
    fn task<U: Clone + Send + 'static>(
        &self,
        cluster: &Cluster,
        label: &str,
        finish: impl Fn(DataFrame) -> std::result::Result<U, BoxError> + Send + Sync + 'static,
    ) -> Delayed<U> {
        self.query_task(cluster, label, move |lf| Ok(run_query(lf)?), finish)
    }

    /// A task running `query` on the partition's plan (one query or several), then `finish`
    /// on what it returns. An error of `query` names the partition's file (and line), as
    /// polars' own would.
    fn query_task<R, U: Clone + Send + 'static>(
        &self,
        cluster: &Cluster,
        label: &str,
        query: impl Fn(LazyFrame) -> std::result::Result<R, BoxError> + Send + Sync + 'static,
        finish: impl Fn(R) -> std::result::Result<U, BoxError> + Send + Sync + 'static,
    ) -> Delayed<U> {
        let plan = self.plan.clone();
        let context = self.context.clone();
        let locate = self.locate.clone();
        let run = move |df: Option<DataFrame>| -> std::result::Result<U, BoxError> {
            let rows = plan(df).and_then(&query);
            match (rows, &context) {
                (Ok(rows), _) => finish(rows),
                (Err(e), Some(what)) => match locate.as_ref().and_then(|l| l()) {
                    Some(place) => Err(format!("{what}, {place}: {e}").into()),
                    None => Err(format!("{what}: {e}").into()),
                },
                (Err(e), None) => Err(e),
            }
        };
        match &self.input {
            Some(d) => d.clone().try_map(move |df| run(Some(df))),
            None => cluster.try_delayed(move || run(None)),
        }
        .label(label)
    }
}

/// Sets `POLARS_MAX_THREADS` to `threads` unless the user set it, before polars starts its
/// threads (the first frame's cluster decides).
fn size_polars_threads(threads: usize) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("POLARS_MAX_THREADS").is_none() {
            // SAFETY: runs once, when the first frame is made, before any frame task exists.
            // Readers through `std::env` take the same lock as `set_var`; onebox has no C code
            // calling `getenv` while a frame is being made.
            unsafe { std::env::set_var("POLARS_MAX_THREADS", threads.max(1).to_string()) };
        }
    });
}

/// Task `i` of `tasks` starts after task `i - threads` has finished: at most as many of them
/// run, or wait on polars, at once as the cluster has threads.
fn window<U: Clone + Send + 'static>(cluster: &Cluster, tasks: &[Delayed<U>]) {
    let k = cluster.threads().max(1);
    for i in k..tasks.len() {
        tasks[i].after(&tasks[i - k]);
    }
}

/// Runs a partition's query on polars' streaming engine, which polars falls back from where
/// it lacks an operation. On the db-benchmark group-by questions it ran the partition
/// queries up to twice as fast as the in-memory engine (q3: 690 -> 350 ms on 2 cores).
fn run_query(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // One sink (the plans here never hold several), so one frame: `unwrap_single` cannot
    // panic (and a task's panic would be its error, not the process's).
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

fn polars_err(e: PolarsError) -> Error {
    Error::Invalid(e.to_string())
}

/// Stacks partitions vertically (their schemas must agree). Each partition's columns stay
/// chunks of the result's, as polars' own multi-file scans leave them: no row is copied
/// (copying every row into one buffer took a quarter of a 9-million-row join's time).
fn concat_frames(mut dfs: Vec<DataFrame>) -> std::result::Result<DataFrame, BoxError> {
    if dfs.is_empty() {
        return Ok(DataFrame::empty());
    }
    let mut out = dfs.remove(0);
    for df in &dfs {
        out.vstack_mut(df)?;
    }
    Ok(out)
}

/// A lazy, partitioned dataframe. See the [module docs](self).
#[derive(Clone)]
pub struct Frame {
    cluster: Cluster,
    parts: Vec<Part>,
    schema: SchemaRef,
}

impl Frame {
    fn new(cluster: &Cluster, parts: Vec<Part>, schema: SchemaRef) -> Self {
        size_polars_threads(cluster.threads());
        Frame {
            cluster: cluster.clone(),
            parts,
            schema,
        }
    }

    /// `df` split into `npartitions` ranges of consecutive rows (as equal as they can be; some
    /// are empty when `df` has fewer rows than partitions).
    pub fn from_dataframe(cluster: &Cluster, df: DataFrame, npartitions: usize) -> Result<Frame> {
        if npartitions == 0 {
            return Err(Error::config(
                "npartitions",
                0,
                "a frame needs at least one partition",
            ));
        }
        let schema = df.schema().clone();
        let n = df.height();
        let parts = (0..npartitions)
            .map(|i| {
                let (start, end) = (n * i / npartitions, n * (i + 1) / npartitions);
                let slice = df.slice(start as i64, end - start);
                Part::source(move || Ok(slice.clone().lazy()))
            })
            .collect();
        Ok(Frame::new(cluster, parts, schema))
    }

    /// A frame whose partitions are `dfs`, in order. Their schemas (names, order, types) must
    /// agree; there must be at least one.
    pub fn from_partitions(cluster: &Cluster, dfs: Vec<DataFrame>) -> Result<Frame> {
        let first = dfs.first().ok_or_else(|| {
            Error::config("partitions", "[]", "a frame needs at least one partition")
        })?;
        let schema = first.schema().clone();
        for (i, df) in dfs.iter().enumerate() {
            if df.schema() != &schema {
                return Err(Error::Invalid(format!(
                    "partition {i} has schema {:?}, partition 0 has {:?}",
                    df.schema(),
                    schema
                )));
            }
        }
        let parts = dfs
            .into_iter()
            .map(|df| Part::source(move || Ok(df.clone().lazy())))
            .collect();
        Ok(Frame::new(cluster, parts, schema))
    }

    /// A frame of the CSV files (with a header line) that `paths` name: globs, files,
    /// directories (every `.csv` file below, hive `name=value` directories becoming columns:
    /// see [hive partitioning](self#hive-partitioning)), or a mix; a partition per file, in
    /// the order given (a glob's or a directory's files sorted).
    pub fn scan_csv<I, P>(cluster: &Cluster, paths: I) -> Result<Frame>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let mut frame = Frame::scan(
            cluster,
            paths,
            "csv",
            |path, schema| {
                LazyCsvReader::new(PlRefPath::new(path))
                    .with_schema(schema)
                    .finish()
            },
            &|_| Ok(vec![None]),
        )?;
        let schema = frame.schema.clone();
        for part in &mut frame.parts {
            if let Some(file) = part.context.clone() {
                let schema = schema.clone();
                part.locate = Some(Arc::new(move || {
                    csv::bad_line(&file, &schema).map(|line| format!("line {line}"))
                }));
            }
        }
        Ok(frame)
    }

    /// A frame of the Parquet files that `paths` name: globs, files, directories (every
    /// `.parquet` file below, hive `name=value` directories becoming columns: see
    /// [hive partitioning](self#hive-partitioning)), or a mix; a partition per file, in the
    /// order given (a glob's or a directory's files sorted), or per run of whole row groups
    /// of up to 256 MiB (compressed) for a bigger file: see
    /// [`scan_parquet_blocks`](Frame::scan_parquet_blocks).
    pub fn scan_parquet<I, P>(cluster: &Cluster, paths: I) -> Result<Frame>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        Frame::scan_parquet_blocks(cluster, paths, DEFAULT_BLOCK_BYTES)
    }

    /// [`scan_parquet`](Frame::scan_parquet) with partitions of up to `block_bytes` of
    /// compressed data: a file is split into runs of whole row groups (a row group is never
    /// split; one bigger than `block_bytes` is a partition of its own), each read by its own
    /// task, in the file's order (like dask's `read_parquet(blocksize=...)`).
    pub fn scan_parquet_blocks<I, P>(
        cluster: &Cluster,
        paths: I,
        block_bytes: usize,
    ) -> Result<Frame>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        Frame::scan(
            cluster,
            paths,
            "parquet",
            |path, _| {
                // hive columns come from `hive` (for CSV too), not from polars' own parsing
                let args = ScanArgsParquet {
                    hive_options: HiveOptions::new_disabled(),
                    ..ScanArgsParquet::default()
                };
                LazyFrame::scan_parquet(PlRefPath::new(path), args)
            },
            &|file| row_group_runs(file, block_bytes),
        )
    }

    fn scan<I, P>(
        cluster: &Cluster,
        paths: I,
        what: &str,
        open: fn(&str, Option<SchemaRef>) -> PolarsResult<LazyFrame>,
        runs: &dyn Fn(&str) -> Result<Vec<Run>>,
    ) -> Result<Frame>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        size_polars_threads(cluster.threads());
        let files = expand(paths, what)?;
        let hive = hive::Columns::of(&files)?;
        let mut schema: Option<(String, SchemaRef)> = None;
        let mut parts = Vec::with_capacity(files.len());
        for (i, file) in files.into_iter().enumerate() {
            let s = open(&file, None)
                .and_then(|mut lf| lf.collect_schema())
                .map_err(|e| Error::Invalid(format!("{file}: cannot read as {what}: {e}")))?;
            let expected = match &schema {
                None => {
                    schema = Some((file.clone(), s.clone()));
                    s
                }
                Some((first, expected)) => {
                    if let Some(why) = schema_difference(expected, &s, what == "csv") {
                        return Err(Error::Invalid(format!(
                            "{file}: its schema differs from {first}'s: {why}"
                        )));
                    }
                    expected.clone()
                }
            };
            let context: Option<Arc<str>> = Some(Arc::from(file.as_str()));
            let values = Arc::new(hive.values(i));
            let file = Arc::new(file);
            for run in runs(&file)? {
                let (file, expected, values) = (file.clone(), expected.clone(), values.clone());
                let mut part = Part::source(move || {
                    let lf = open(&file, Some(expected.clone()))?;
                    let lf = match run {
                        Some((first, rows)) => lf.slice(first, rows),
                        None => lf,
                    };
                    Ok(lf.with_columns(values.as_slice()))
                });
                part.context = context.clone();
                parts.push(part);
            }
        }
        let (first, schema) = schema.ok_or_else(|| Error::Invalid("no files to scan".into()))?;
        let schema = hive.extend(&schema, &first)?;
        Ok(Frame::new(cluster, parts, schema))
    }

    /// How many partitions the frame has.
    pub fn npartitions(&self) -> usize {
        self.parts.len()
    }

    /// The columns and their types, as polars resolves them (without running anything).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The cluster the frame's tasks run on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Applies a lazy polars step to every partition, checking it against the schema first
    /// (an unknown column or a bad expression is an error here, before anything runs).
    fn per_partition(
        self,
        step: impl Fn(LazyFrame) -> LazyFrame + Send + Sync + Clone + 'static,
    ) -> Result<Frame> {
        let schema = step(DataFrame::empty_with_schema(&self.schema).lazy())
            .collect_schema()
            .map_err(polars_err)?;
        let parts = self
            .parts
            .iter()
            .map(|p| {
                let step = step.clone();
                p.then(move |lf| Ok(step(lf)))
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, schema))
    }

    /// The columns that `exprs` compute, per partition (like polars' `select`).
    pub fn select<E: AsRef<[Expr]>>(self, exprs: E) -> Result<Frame> {
        let exprs = exprs.as_ref().to_vec();
        self.per_partition(move |lf| lf.select(&exprs))
    }

    /// Adds or replaces the columns that `exprs` compute, per partition.
    pub fn with_columns<E: AsRef<[Expr]>>(self, exprs: E) -> Result<Frame> {
        let exprs = exprs.as_ref().to_vec();
        self.per_partition(move |lf| lf.with_columns(&exprs))
    }

    /// Keeps the rows where `predicate` is true (null counts as false).
    pub fn filter(self, predicate: Expr) -> Result<Frame> {
        self.per_partition(move |lf| lf.filter(predicate.clone()))
    }

    /// Renames column `existing[i]` to `new[i]`; every `existing` column must exist.
    pub fn rename<const N: usize>(self, existing: [&str; N], new: [&str; N]) -> Result<Frame> {
        let existing: Vec<String> = existing.iter().map(|s| s.to_string()).collect();
        let new: Vec<String> = new.iter().map(|s| s.to_string()).collect();
        self.per_partition(move |lf| lf.rename(&existing, &new, true))
    }

    /// Removes the named columns; every one must exist.
    pub fn drop<I, S>(self, columns: I) -> Result<Frame>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<PlSmallStr> = columns.into_iter().map(|s| s.as_ref().into()).collect();
        for name in &names {
            if !self.schema.contains(name) {
                return Err(Error::Invalid(format!(
                    "drop: no column {name:?} (columns: {:?})",
                    self.schema.iter_names().collect::<Vec<_>>()
                )));
            }
        }
        self.per_partition(move |lf| lf.drop(by_name(names.clone(), true, false)))
    }

    /// Casts the named columns to the given types (strictly: a value that does not convert is
    /// an error, not a null).
    pub fn cast<I, S>(self, dtypes: I) -> Result<Frame>
    where
        I: IntoIterator<Item = (S, DataType)>,
        S: AsRef<str>,
    {
        let exprs: Vec<Expr> = dtypes
            .into_iter()
            .map(|(name, dtype)| col(name.as_ref()).strict_cast(dtype))
            .collect();
        self.with_columns(exprs)
    }

    /// Applies `f` to every partition's `DataFrame`, in that partition's task. `f` must give
    /// every partition the same schema; it is called on an empty frame first to learn it.
    pub fn map_partitions<F>(self, f: F) -> Result<Frame>
    where
        F: Fn(DataFrame) -> PolarsResult<DataFrame> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let schema = f(DataFrame::empty_with_schema(&self.schema))
            .map_err(polars_err)?
            .schema()
            .clone();
        let parts = self
            .parts
            .iter()
            .map(|p| {
                let f = f.clone();
                p.then(move |lf| Ok(f(run_query(lf)?)?.lazy()))
            })
            .collect();
        Ok(Frame::new(&self.cluster, parts, schema))
    }

    /// The partitions as tasks, in order (nothing runs until they are computed). Partition
    /// `i` starts after partition `i - threads` has finished (see [threads](self#threads)),
    /// so computing one of them also computes those before it by that step.
    pub fn to_delayed(&self) -> Vec<Delayed<DataFrame>> {
        self.tasks("partition", Ok)
            .into_iter()
            .map(|d| d.sized(frame_bytes))
            .collect()
    }

    /// A task per partition computing it then `finish`, labelled `frame-<what>[i]`, at most
    /// as many running at once as the cluster has threads: task `i` starts after task
    /// `i - threads` has finished. A worker thread waiting for polars' pool runs other queued
    /// tasks meanwhile (that is how rayon waits); without this window it would start every
    /// ready partition of the stage, and all of them would be in memory at once.
    fn tasks<U: Clone + Send + 'static>(
        &self,
        what: &str,
        finish: impl Fn(DataFrame) -> std::result::Result<U, BoxError> + Clone + Send + Sync + 'static,
    ) -> Vec<Delayed<U>> {
        let tasks: Vec<Delayed<U>> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| p.task(&self.cluster, &format!("frame-{what}[{i}]"), finish.clone()))
            .collect();
        window(&self.cluster, &tasks);
        tasks
    }

    /// Runs every partition's query on the cluster and stacks the results in partition order.
    pub fn compute(self) -> Result<DataFrame> {
        let parts = self.to_delayed();
        let df = Delayed::combine(&self.cluster, parts, |dfs| {
            concat_frames(dfs).map_err(crate::graph::user_error)
        })
        .label("frame-concat")
        .compute()?;
        if df.width() == 0 {
            return Ok(DataFrame::empty_with_schema(&self.schema));
        }
        Ok(df)
    }

    /// The first `n` rows, computing partitions in order and only as many as needed.
    pub fn head(&self, n: usize) -> Result<DataFrame> {
        let mut out = DataFrame::empty_with_schema(&self.schema);
        for (i, p) in self.parts.iter().enumerate() {
            if out.height() >= n {
                break;
            }
            let want = (n - out.height()) as IdxSize;
            let df = p
                .then(move |lf| Ok(lf.limit(want)))
                .task(&self.cluster, &format!("frame-head[{i}]"), Ok)
                .compute()?;
            out.vstack_mut(&df).map_err(polars_err)?;
        }
        out.rechunk_mut();
        Ok(out)
    }

    /// The last `n` rows, computing partitions from the last one back, only as many as needed.
    pub fn tail(&self, n: usize) -> Result<DataFrame> {
        let mut pieces = Vec::new();
        let mut have = 0;
        for (i, p) in self.parts.iter().enumerate().rev() {
            if have >= n {
                break;
            }
            let want = (n - have) as IdxSize;
            let df = p
                .then(move |lf| Ok(lf.tail(want)))
                .task(&self.cluster, &format!("frame-tail[{i}]"), Ok)
                .compute()?;
            have += df.height();
            pieces.push(df);
        }
        let mut out = DataFrame::empty_with_schema(&self.schema);
        for df in pieces.iter().rev() {
            out.vstack_mut(df).map_err(polars_err)?;
        }
        out.rechunk_mut();
        Ok(out)
    }

    /// The frame as one partition, a task stacking all of them.
    fn gathered(&self) -> Delayed<DataFrame> {
        Delayed::combine(&self.cluster, self.to_delayed(), |dfs| {
            concat_frames(dfs).map_err(crate::graph::user_error)
        })
        .label("frame-gather")
    }

    /// Writes every partition to `dir/part-NNNNN.parquet` (the directory is created), each
    /// written to a temporary name then renamed, so a file that exists is complete. Returns the
    /// paths in partition order.
    pub fn to_parquet(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        write_parts(self, dir.as_ref(), "parquet", |file, df| {
            ParquetWriter::new(file).finish(df).map(|_| ())
        })
    }

    /// Writes every partition to `dir/part-NNNNN.csv` with a header line, like
    /// [`to_parquet`](Frame::to_parquet) (atomically, one file per partition).
    pub fn to_csv(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        write_parts(self, dir.as_ref(), "csv", |file, df| {
            CsvWriter::new(file).finish(df)
        })
    }
}

/// Runs `write` on every partition to `dir/part-NNNNN.EXT`, through a temporary name renamed
/// when complete; returns the paths in partition order.
fn write_parts(
    frame: &Frame,
    dir: &Path,
    ext: &'static str,
    write: fn(&mut std::fs::File, &mut DataFrame) -> PolarsResult<()>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tasks: Vec<Delayed<PathBuf>> = frame
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dir = dir.to_path_buf();
            p.task(
                &frame.cluster,
                &format!("frame-to-{ext}[{i}]"),
                move |mut df| {
                    let path = dir.join(format!("part-{i:05}.{ext}"));
                    let tmp = dir.join(format!(".part-{i:05}.{ext}.tmp"));
                    let written = (|| -> std::result::Result<(), BoxError> {
                        let mut file =
                            std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                        write(&mut file, &mut df).map_err(|e| format!("{}: {e}", tmp.display()))?;
                        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
                        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
                        Ok(())
                    })();
                    if written.is_err() {
                        // Best effort: the error that matters is the one returned.
                        let _ = std::fs::remove_file(&tmp);
                    }
                    written.map(|()| path)
                },
            )
        })
        .collect();
    window(&frame.cluster, &tasks);
    Delayed::join_all(&frame.cluster, tasks).compute()
}

/// Globs and file names, expanded: a glob must match something, a file must exist.
/// The default most compressed bytes of a Parquet file's partition.
const DEFAULT_BLOCK_BYTES: usize = 256 << 20;

/// The rows of a file one partition reads: `Some((first row, rows))`, or `None` for all.
type Run = Option<(i64, IdxSize)>;

/// A Parquet file's partitions: runs of whole row groups of up to `bytes` compressed bytes
/// each (a bigger row group is a run of its own); `[None]`, the whole file, when one run
/// holds it.
fn row_group_runs(file: &str, bytes: usize) -> Result<Vec<Run>> {
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let metadata = ParquetReader::new(f)
        .get_metadata()
        .map_err(|e| Error::Invalid(format!("{file}: cannot read as parquet: {e}")))?
        .clone();
    let mut runs = Vec::new();
    let (mut first, mut rows, mut size) = (0usize, 0usize, 0usize);
    for rg in &metadata.row_groups {
        if rows > 0 && size + rg.compressed_size() > bytes {
            runs.push((first, rows));
            first += rows;
            (rows, size) = (0, 0);
        }
        rows += rg.num_rows();
        size += rg.compressed_size();
    }
    if rows > 0 {
        runs.push((first, rows));
    }
    if runs.len() <= 1 {
        return Ok(vec![None]);
    }
    Ok(runs
        .into_iter()
        .map(|(first, rows)| Some((first as i64, rows as IdxSize)))
        .collect())
}

/// The files `paths` name, in order: a glob's matches (sorted), a directory's files ending in
/// `.{ext}` at any depth (sorted: a hive-partitioned data set), or a file.
fn expand<I, P>(paths: I, ext: &str) -> Result<Vec<String>>
where
    I: IntoIterator<Item = P>,
    P: AsRef<str>,
{
    let mut files = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.contains(['*', '?', '[']) {
            let mut matched: Vec<PathBuf> = glob::glob(p)
                .map_err(|e| Error::Invalid(format!("bad glob {p:?}: {e}")))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Invalid(format!("{p}: {e}")))?;
            if matched.is_empty() {
                return Err(Error::Invalid(format!("{p}: the glob matches no file")));
            }
            matched.sort();
            for m in matched {
                files.push(m.to_string_lossy().into_owned());
            }
        } else if std::fs::metadata(p).map_err(|e| Error::io(p, e))?.is_dir() {
            let mut found = Vec::new();
            files_below(Path::new(p), ext, &mut found)?;
            if found.is_empty() {
                return Err(Error::Invalid(format!(
                    "{p}: the directory holds no .{ext} file"
                )));
            }
            found.sort();
            files.extend(found.into_iter().map(|f| f.to_string_lossy().into_owned()));
        } else {
            files.push(p.to_string());
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid("no files to scan".into()));
    }
    Ok(files)
}

/// Every file below `dir` (at any depth) whose name ends in `.{ext}`, skipping names that
/// start with `.` or `_` (hidden files, `_SUCCESS` markers).
fn files_below(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(['.', '_']) {
            continue;
        }
        if path.is_dir() {
            files_below(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// Why `got` is not `expected`, or `None` when they agree. With `names_only` (CSV, whose
/// types are inferred per file), only the column names and their order count.
fn schema_difference(expected: &Schema, got: &Schema, names_only: bool) -> Option<String> {
    for (name, dtype) in expected.iter() {
        match got.get(name) {
            None => return Some(format!("column {name:?} is missing")),
            Some(d) if d != dtype && !names_only => {
                return Some(format!("column {name:?} is {d}, expected {dtype}"));
            }
            _ => {}
        }
    }
    for name in got.iter_names() {
        if !expected.contains(name) {
            return Some(format!("extra column {name:?}"));
        }
    }
    if expected.iter_names().ne(got.iter_names()) {
        return Some("the columns are in a different order".into());
    }
    None
}
