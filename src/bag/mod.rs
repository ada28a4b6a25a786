//! Bags: lazy, partitioned collections of any items, like `dask.bag`.
//!
//! A [`Bag<T>`] is a list of **partitions**. Each partition is a recipe, not data: "lines of
//! bytes 0..64 MiB of `a.txt`", "items 1000..2000 of this `Vec`", "the output of that task".
//! Operations on a bag are of two kinds:
//!
//! - **Per-partition** operations ([`map`](Bag::map), [`filter`](Bag::filter),
//!   [`flat_map`](Bag::flat_map), [`remove`](Bag::remove), [`try_map`](Bag::try_map),
//!   [`map_partitions`](Bag::map_partitions), [`words`](Bag::words), ...) only extend the
//!   recipe. They **fuse**: items flow through the whole chain one by one inside a single task
//!   per partition, without an intermediate `Vec` between steps, so a chain of ten maps is still
//!   one task per partition.
//! - **Cross-partition** operations make the task graph. A reduction ([`fold`](Bag::fold),
//!   [`count`](Bag::count), [`sum`](Bag::sum), [`mean`](Bag::mean), ...) runs one task per
//!   partition that reads, transforms and folds its partition into a small partial result, then
//!   combines partials in a **tree** of tasks, `split_every` inputs per task (8 unless
//!   [`Bag::split_every`] says otherwise). [`foldby`](Bag::foldby) and
//!   [`frequencies`](Bag::frequencies) do the same with a hash map of partials per key (their
//!   result's order is unspecified; [`frequencies_sorted`](Bag::frequencies_sorted) orders
//!   it by count, then item);
//!   [`groupby`](Bag::groupby) is a **hash shuffle** through spill files on disk.
//!
//! ```text
//!  partition 0: read ─ map ─ filter ─ fold ─┐
//!  partition 1: read ─ map ─ filter ─ fold ─┼─ combine ─┐
//!  ...                                      │           ├─ combine ─▶ result
//!  partition 9: read ─ map ─ filter ─ fold ─┘    ...  ──┘
//!        (one task per partition)           (a tree, fan-in split_every)
//! ```
//!
//! Nothing runs until a terminal call: [`compute`](Bag::compute) (collect into a `Vec`),
//! [`iter`](Bag::iter) (stream items, a few partitions at a time), [`take`](Bag::take),
//! [`to_textfiles`](Bag::to_textfiles), or `compute()` on the [`Delayed`] a reduction returns.
//! Since a partition's items only live inside its task, a word count over files much larger
//! than memory keeps only a block per thread and the running counts in memory.
//!
//! ```
//! use onebox::prelude::*;
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let bag = Bag::range(&cluster, 1_000, 4)?;                  // 0..1000 in 4 partitions
//! let odd_squares = bag.clone().filter(|x| x % 2 == 1).map(|x| x * x);
//! assert_eq!(odd_squares.count().compute()?, 500);
//! let expected: u64 = (0..1000u64).filter(|x| x % 2 == 1).map(|x| x * x).sum();
//! assert_eq!(odd_squares.sum().compute()?, expected);
//!
//! let words = Bag::from_vec(&cluster, vec!["a b", "b c", "b"], 2)?
//!     .flat_map(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>());
//! let top = words.frequencies().top_k(1, |(_, n)| *n).compute()?;
//! assert_eq!(top, vec![("b".to_string(), 3)]);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! ## Text
//!
//! [`Bag::read_text`] makes a bag of lines from a glob, a directory, a file or a list of them.
//! Large files are split into blocks at line boundaries (a block owns the lines that *start* in
//! it), `.gz` files are decompressed as they are read, and invalid UTF-8 is an error naming the
//! file and the byte offset unless [`TextOptions::lossy`] asks for replacement characters. On a
//! bag of lines, [`words`](Bag::words), [`flat_map_str`](Bag::flat_map_str) and
//! [`filter_str`](Bag::filter_str) hand out `&str` slices of the block, and
//! [`frequencies`](Bag::frequencies), [`count`](Bag::count), [`distinct`](Bag::distinct) and
//! [`to_textfiles`](Bag::to_textfiles) consume them without allocating a `String` per word:
//! `read_text(..).words().frequencies()` is a word count that allocates once per *distinct*
//! word and partition.
//!
//! ## Speed
//!
//! A word count is bound by splitting and counting, not by reading: `cat` reads a corpus from
//! the page cache at 5 to 7 GB/s on one core. So `read_text(..).words().frequencies()` is
//! built for it: a plain file's block is split into words whole (not line by line) by a
//! byte-class table that only decodes the few lead bytes a non-ASCII space can start with
//! (the result is exactly `str::split_whitespace`'s), and the counts of a partition live in a
//! table that keeps words of up to 15 bytes inline, as two machine words, so that a lookup
//! neither follows a pointer nor calls `memcmp`. What remains is the table lookup itself:
//! about two thirds of the time, waiting on memory for the rarer words.
//!
//! On a 2-core AMD EPYC (24 GiB, no GPU) that was shared with other jobs (load average 8 to
//! 14), the W3 word count of `bench/peers/` (the top 20 words of a generated 300 MB corpus
//! of 16 files) took 1.3 to 1.5 s of CPU time, against 2.0 to 2.4 s for the same count
//! written by hand on rayon (`examples/wordcount_rayon.rs`: `split_whitespace` into a
//! `HashMap<&str, u64>` per file) and 2.5 to 2.9 s for this module before the two changes
//! above, in alternating runs. In the quietest run (load average about 4, medians of 3) the
//! bag counted 632 MB/s and the rayon program 604 MB/s, against 55 MB/s for `dask.bag` on
//! its default process scheduler, 34 MB/s on threads, 42 MB/s for Python's
//! `collections.Counter`, and 7.3 GB/s for merely reading the files from the page cache.
//! `examples/wordcount.rs` is the same program as a command.
//!
//! ## Failures
//!
//! Partition tasks are labelled `bag-<operation>[<partition>]`, so a panicking closure or a
//! bad line gives an [`Error::Task`] that names the partition, e.g.
//! `task bag-count[3]#41 panicked: ...`.
//!
//! [`Error::Task`]: crate::Error::Task

mod group;
mod reduce;
mod split;
mod text;
mod wordmap;

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::error::{BoxError, Error, Result, TaskFailure};
use crate::graph::node::{Node, Task};
use crate::graph::{Delayed, TaskHandle, user_error};

pub use reduce::AsF64;
pub use text::{TextOptions, TextSource};

/// Why a partition stopped early: enough items were seen, or something failed.
pub(crate) enum Halt {
    Enough,
    Failed(TaskFailure),
}

/// What a step of a partition's pipeline returns for each item.
pub(crate) type Flow = std::result::Result<(), Halt>;

/// Pushes a partition's items, one by one, into a sink.
type Run<T> = Arc<dyn Fn(&mut dyn FnMut(T) -> Flow) -> Flow + Send + Sync>;

/// Pushes a bag of lines' items as borrowed `&str` (no `String` per item).
type TextRun = Arc<dyn Fn(&mut dyn FnMut(&str) -> Flow) -> Flow + Send + Sync>;

fn halt_error<E: Into<BoxError>>(e: E) -> Halt {
    Halt::Failed(user_error(e))
}

/// One partition: the tasks it reads, and its fused pipeline.
pub(crate) struct Part<T> {
    /// Tasks whose outputs `run` reads (empty for data made inside the task).
    deps: Vec<Arc<dyn Task>>,
    /// Produces the items.
    run: Run<T>,
    /// For a bag of `String`s only: the same items as `&str`, without allocating.
    text: Option<TextRun>,
    /// For a bag of lines read from a file only: the text of whole lines, a block at a time
    /// (the lines are what `str::lines` makes of it). Lets [`Bag::words`] split a block
    /// at once instead of line by line.
    blocks: Option<TextRun>,
}

impl<T> Clone for Part<T> {
    fn clone(&self) -> Self {
        Part {
            deps: self.deps.clone(),
            run: self.run.clone(),
            text: self.text.clone(),
            blocks: self.blocks.clone(),
        }
    }
}

impl<T: 'static> Part<T> {
    fn new(run: Run<T>) -> Self {
        Part {
            deps: Vec::new(),
            run,
            text: None,
            blocks: None,
        }
    }

    /// A new pipeline on the same sources.
    fn then<U>(&self, run: Run<U>) -> Part<U> {
        Part {
            deps: self.deps.clone(),
            run,
            text: None,
            blocks: None,
        }
    }

    /// Feeds every item to `sink`; stopping early with [`Halt::Enough`] is a success.
    fn drive(&self, sink: &mut dyn FnMut(T) -> Flow) -> std::result::Result<(), TaskFailure> {
        match (self.run)(sink) {
            Ok(()) | Err(Halt::Enough) => Ok(()),
            Err(Halt::Failed(f)) => Err(f),
        }
    }

    /// The items as a `Vec`.
    fn collect(&self) -> std::result::Result<Vec<T>, TaskFailure> {
        let mut out = Vec::new();
        self.drive(&mut |x| {
            out.push(x);
            Ok(())
        })?;
        Ok(out)
    }
}

impl Part<String> {
    /// A partition of lines known as `&str`; the `String` pipeline is derived from it.
    fn from_text(deps: Vec<Arc<dyn Task>>, text: TextRun) -> Self {
        let t = text.clone();
        Part {
            deps,
            run: Arc::new(move |sink| t(&mut |s| sink(s.to_owned()))),
            text: Some(text),
            blocks: None,
        }
    }

    /// A partition of the lines of blocks of text: `blocks` hands out whole lines, several
    /// at a time; the lines are what `str::lines` makes of each piece.
    fn from_blocks(deps: Vec<Arc<dyn Task>>, blocks: TextRun) -> Self {
        let b = blocks.clone();
        let lines: TextRun = Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
            b(&mut |block| {
                for line in block.lines() {
                    sink(line)?;
                }
                Ok(())
            })
        });
        Part {
            blocks: Some(blocks),
            ..Part::from_text(deps, lines)
        }
    }
}

/// Feeds a partition's items as `&str` when it has them borrowed, else as `&T`.
pub(crate) fn drive_str_or<T: 'static>(
    part: &Part<T>,
    on_str: &mut dyn FnMut(&str) -> Flow,
    on_item: &mut dyn FnMut(T) -> Flow,
) -> std::result::Result<(), TaskFailure> {
    let r = match &part.text {
        Some(text) => text(on_str),
        None => (part.run)(on_item),
    };
    match r {
        Ok(()) | Err(Halt::Enough) => Ok(()),
        Err(Halt::Failed(f)) => Err(f),
    }
}

/// A partition's bytes for the cluster's [managed bytes](Cluster::managed_bytes): a *shallow*
/// size, `len x size_of::<T>()`. What items own on the heap (a `String`'s text, a `Vec`'s
/// elements) is not followed, so a bag of strings counts 24 bytes an item.
#[allow(clippy::ptr_arg)] // the size function of a `Delayed<Vec<T>>` takes a `&Vec<T>`
fn partition_bytes<T>(items: &Vec<T>) -> usize {
    items.len() * std::mem::size_of::<T>()
}

/// A lazy, partitioned collection of items. See the [module docs](self).
///
/// Cloning a bag is cheap (it shares its partitions' recipes); per-partition operations take
/// the bag by value and return a new one, terminal operations borrow it.
pub struct Bag<T> {
    cluster: Cluster,
    parts: Vec<Part<T>>,
    split_every: usize,
}

impl<T> Clone for Bag<T> {
    fn clone(&self) -> Self {
        Bag {
            cluster: self.cluster.clone(),
            parts: self.parts.clone(),
            split_every: self.split_every,
        }
    }
}

impl<T> std::fmt::Debug for Bag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bag")
            .field("npartitions", &self.parts.len())
            .field("split_every", &self.split_every)
            .finish_non_exhaustive()
    }
}

/// Fan-in of reduction trees unless [`Bag::split_every`] says otherwise (Dask's default too).
const DEFAULT_SPLIT_EVERY: usize = 8;

/// `n` items cut into `parts` contiguous, balanced ranges (earlier ones one longer).
fn balanced(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .collect()
}

fn check_partitions(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::config(
            "npartitions",
            0,
            "a bag needs at least one partition",
        ));
    }
    Ok(())
}

impl<T: Clone + Send + 'static> Bag<T> {
    fn with_parts(cluster: &Cluster, parts: Vec<Part<T>>) -> Self {
        Bag {
            cluster: cluster.clone(),
            parts,
            split_every: DEFAULT_SPLIT_EVERY,
        }
    }

    fn derive<U>(&self, parts: Vec<Part<U>>) -> Bag<U> {
        Bag {
            cluster: self.cluster.clone(),
            parts,
            split_every: self.split_every,
        }
    }

    /// A bag of `items` cut into `npartitions` contiguous partitions of balanced sizes (some
    /// are empty when there are more partitions than items). Fails when `npartitions` is 0.
    pub fn from_vec(cluster: &Cluster, items: Vec<T>, npartitions: usize) -> Result<Bag<T>>
    where
        T: Sync,
    {
        check_partitions(npartitions)?;
        let ranges = balanced(items.len(), npartitions);
        Ok(Self::from_ranges(cluster, items, ranges))
    }

    /// A bag of `items` in partitions of `partition_size` items (the last one shorter; one
    /// empty partition when `items` is empty). Fails when `partition_size` is 0.
    pub fn from_vec_sized(cluster: &Cluster, items: Vec<T>, partition_size: usize) -> Result<Bag<T>>
    where
        T: Sync,
    {
        if partition_size == 0 {
            return Err(Error::config(
                "partition_size",
                0,
                "a partition holds at least one item",
            ));
        }
        let n = items.len();
        let ranges = if n == 0 {
            std::iter::once(0..0).collect()
        } else {
            (0..n)
                .step_by(partition_size)
                .map(|s| s..(s + partition_size).min(n))
                .collect()
        };
        Ok(Self::from_ranges(cluster, items, ranges))
    }

    /// A bag of the items of `iter` in `npartitions` partitions (the items are collected first).
    pub fn from_iter<I>(cluster: &Cluster, iter: I, npartitions: usize) -> Result<Bag<T>>
    where
        I: IntoIterator<Item = T>,
        T: Sync,
    {
        Self::from_vec(cluster, iter.into_iter().collect(), npartitions)
    }

    fn from_ranges(cluster: &Cluster, items: Vec<T>, ranges: Vec<std::ops::Range<usize>>) -> Self
    where
        T: Sync,
    {
        let mut rest = items;
        let mut chunks = Vec::with_capacity(ranges.len());
        for r in ranges.iter().rev() {
            chunks.push(Arc::new(rest.split_off(r.start)));
        }
        chunks.reverse();
        let parts = chunks
            .into_iter()
            .map(|chunk| {
                Part::new(Arc::new(move |sink: &mut dyn FnMut(T) -> Flow| {
                    for x in chunk.iter() {
                        sink(x.clone())?;
                    }
                    Ok(())
                }))
            })
            .collect();
        Self::with_parts(cluster, parts)
    }

    /// A bag with one partition per task: each `Delayed` computes a partition's items.
    pub fn from_delayed(cluster: &Cluster, partitions: Vec<Delayed<Vec<T>>>) -> Bag<T> {
        let parts = partitions
            .into_iter()
            .map(|d| {
                let node: Arc<Node<Vec<T>>> = d.sized(partition_bytes::<T>).node;
                let dep: Arc<dyn Task> = node.clone();
                Part {
                    deps: vec![dep],
                    run: Arc::new(move |sink: &mut dyn FnMut(T) -> Flow| {
                        let items = node
                            .clone()
                            .output(false)
                            .map_err(|e| Halt::Failed(TaskFailure::InputFailed(e)))?;
                        for x in items {
                            sink(x)?;
                        }
                        Ok(())
                    }),
                    text: None,
                    blocks: None,
                }
            })
            .collect();
        Self::with_parts(cluster, parts)
    }

    /// The partitions of all `bags`, one after the other. Fails on an empty list.
    pub fn concat(bags: impl IntoIterator<Item = Bag<T>>) -> Result<Bag<T>> {
        let mut bags = bags.into_iter();
        let mut first = bags
            .next()
            .ok_or_else(|| Error::Invalid("Bag::concat needs at least one bag".into()))?;
        for b in bags {
            first.parts.extend(b.parts);
        }
        Ok(first)
    }

    /// The cluster this bag runs on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// How many partitions (and so partition tasks) this bag has.
    pub fn npartitions(&self) -> usize {
        self.parts.len()
    }

    /// The fan-in of reduction trees (like Dask's `split_every`): how many partial results
    /// one combine task merges. Values below 2 are raised to 2.
    #[must_use]
    pub fn split_every(mut self, fan_in: usize) -> Self {
        self.split_every = fan_in.max(2);
        self
    }

    fn lazy<U, F>(self, make: F) -> Bag<U>
    where
        F: Fn(Run<T>) -> Run<U>,
    {
        let parts = self
            .parts
            .iter()
            .map(|p| p.then(make(p.run.clone())))
            .collect();
        self.derive(parts)
    }

    /// Applies `f` to every item.
    pub fn map<U, F>(self, f: F) -> Bag<U>
    where
        U: Clone + Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.lazy(|run| {
            let f = f.clone();
            Arc::new(move |sink: &mut dyn FnMut(U) -> Flow| run(&mut |x| sink(f(x))))
        })
    }

    /// Applies a fallible `f` to every item; an error fails the partition's task (and the
    /// compute), naming the partition.
    pub fn try_map<U, E, F>(self, f: F) -> Bag<U>
    where
        U: Clone + Send + 'static,
        E: Into<BoxError>,
        F: Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.lazy(|run| {
            let f = f.clone();
            Arc::new(move |sink: &mut dyn FnMut(U) -> Flow| {
                run(&mut |x| sink(f(x).map_err(halt_error)?))
            })
        })
    }

    /// Keeps the items for which `keep` is true.
    pub fn filter<F>(self, keep: F) -> Bag<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let keep = Arc::new(keep);
        self.lazy(|run| {
            let keep = keep.clone();
            Arc::new(move |sink: &mut dyn FnMut(T) -> Flow| {
                run(&mut |x| if keep(&x) { sink(x) } else { Ok(()) })
            })
        })
    }

    /// Drops the items for which `drop_it` is true (the opposite of [`filter`](Bag::filter)).
    pub fn remove<F>(self, drop_it: F) -> Bag<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.filter(move |x| !drop_it(x))
    }

    /// Replaces every item by the items `f` returns for it.
    pub fn flat_map<U, I, F>(self, f: F) -> Bag<U>
    where
        U: Clone + Send + 'static,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.lazy(|run| {
            let f = f.clone();
            Arc::new(move |sink: &mut dyn FnMut(U) -> Flow| {
                run(&mut |x| {
                    for y in f(x) {
                        sink(y)?;
                    }
                    Ok(())
                })
            })
        })
    }

    /// Applies `f` to each whole partition (as a `Vec`). The partition is materialized, so
    /// prefer the item-wise operations when they do the job.
    pub fn map_partitions<U, F>(self, f: F) -> Bag<U>
    where
        U: Clone + Send + 'static,
        F: Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.lazy(|run| {
            let f = f.clone();
            Arc::new(move |sink: &mut dyn FnMut(U) -> Flow| {
                let mut items = Vec::new();
                match run(&mut |x| {
                    items.push(x);
                    Ok(())
                }) {
                    Ok(()) | Err(Halt::Enough) => {}
                    Err(e) => return Err(e),
                }
                for y in f(items) {
                    sink(y)?;
                }
                Ok(())
            })
        })
    }

    /// Pairs each item with `f` of it: `(f(&x), x)` (to key items for
    /// [`foldby`](Bag::foldby)-style work).
    pub fn key_by<K, F>(self, f: F) -> Bag<(K, T)>
    where
        K: Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.map(move |x| (f(&x), x))
    }

    /// One task per partition applying `finish` to the partition's fused pipeline.
    pub(crate) fn part_task<R, F>(&self, i: usize, op: &str, mut finish: F) -> Delayed<R>
    where
        R: Clone + Send + 'static,
        F: FnMut(&Part<T>) -> std::result::Result<R, TaskFailure> + Send + 'static,
    {
        let part = self.parts[i].clone();
        let deps = part.deps.clone();
        let node = Node::new(self.cluster.inner(), deps, move |_| finish(&part));
        Delayed::from_node(node).label(&format!("bag-{op}[{i}]"))
    }

    /// One task per partition, each collecting its items (the bag's partitions as tasks).
    pub fn to_delayed(&self) -> Vec<Delayed<Vec<T>>> {
        (0..self.parts.len())
            .map(|i| {
                self.part_task(i, "partition", |p| p.collect())
                    .sized(partition_bytes::<T>)
            })
            .collect()
    }

    /// Runs the bag and collects its items, in partition order. The whole result is in
    /// memory: for a large bag prefer a reduction, [`iter`](Bag::iter) or
    /// [`to_textfiles`](Bag::to_textfiles).
    pub fn compute(&self) -> Result<Vec<T>> {
        let parts = self.to_delayed();
        let all = Delayed::combine(&self.cluster, parts, |vs: Vec<Vec<T>>| {
            Ok(vs.into_iter().flatten().collect::<Vec<T>>())
        })
        .label("bag-collect");
        all.compute()
    }

    /// Streams the items in partition order, running a few partitions ahead (as many as the
    /// cluster has threads) so that only those are in memory. After an error the iterator
    /// yields it and ends.
    pub fn iter(&self) -> BagIter<T> {
        BagIter {
            pending: self.to_delayed().into_iter(),
            running: std::collections::VecDeque::new(),
            current: Vec::new().into_iter(),
            ahead: self.cluster.threads().max(1) + 1,
            failed: false,
        }
    }
}

impl Bag<u64> {
    /// The numbers `0..n` in `npartitions` balanced partitions; each partition's numbers are
    /// made inside its task (nothing is stored).
    pub fn range(cluster: &Cluster, n: u64, npartitions: usize) -> Result<Bag<u64>> {
        check_partitions(npartitions)?;
        let parts = npartitions as u64;
        let parts = (0..parts)
            .map(|i| {
                let (lo, hi) = (
                    (i as u128 * n as u128 / parts as u128) as u64,
                    ((i + 1) as u128 * n as u128 / parts as u128) as u64,
                );
                Part::new(Arc::new(move |sink: &mut dyn FnMut(u64) -> Flow| {
                    for x in lo..hi {
                        sink(x)?;
                    }
                    Ok(())
                }) as Run<u64>)
            })
            .collect();
        Ok(Bag::with_parts(cluster, parts))
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Bag<(K, V)> {
    /// The first element of each pair.
    pub fn keys(self) -> Bag<K> {
        self.map(|(k, _)| k)
    }

    /// The second element of each pair.
    pub fn values(self) -> Bag<V> {
        self.map(|(_, v)| v)
    }
}

impl Bag<serde_json::Value> {
    /// The field `key` of each JSON object (`Null` where an item is not an object or lacks
    /// the field), like Dask's `pluck`.
    pub fn pluck(self, key: &str) -> Bag<serde_json::Value> {
        let key = key.to_owned();
        self.map(move |v| match v {
            serde_json::Value::Object(mut m) => m.remove(&key).unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        })
    }
}

/// Iterator over a bag's items, from [`Bag::iter`].
pub struct BagIter<T: Clone + Send + 'static> {
    pending: std::vec::IntoIter<Delayed<Vec<T>>>,
    running: std::collections::VecDeque<TaskHandle<Vec<T>>>,
    current: std::vec::IntoIter<T>,
    ahead: usize,
    failed: bool,
}

impl<T: Clone + Send + 'static> std::fmt::Debug for BagIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BagIter")
            .field(
                "partitions_left",
                &(self.pending.len() + self.running.len()),
            )
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Drop for BagIter<T> {
    /// Cancels the partitions started ahead that have not begun running.
    fn drop(&mut self) {
        for h in self.running.drain(..) {
            h.cancel();
        }
    }
}

impl<T: Clone + Send + 'static> Iterator for BagIter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(x) = self.current.next() {
                return Some(Ok(x));
            }
            if self.failed {
                return None;
            }
            while self.running.len() < self.ahead {
                match self.pending.next() {
                    Some(d) => self.running.push_back(d.submit()),
                    None => break,
                }
            }
            let handle = self.running.pop_front()?;
            match handle.result() {
                Ok(items) => self.current = items.into_iter(),
                Err(e) => {
                    self.failed = true;
                    for h in self.running.drain(..) {
                        h.cancel();
                    }
                    return Some(Err(e));
                }
            }
        }
    }
}
