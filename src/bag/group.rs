//! Grouping and selection: foldby and frequencies (partials per key, merged in a tree),
//! distinct, top_k, take, random_sample, and groupby (a hash shuffle through spill files).

use std::any::Any;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hashbrown::hash_map::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet};

use super::reduce::{Combine, tree};
use super::wordmap::WordCounts;
use super::{Bag, Flow, Halt, Part, Run, drive_str_or, halt_error};
use crate::error::{Error, Result};
use crate::graph::{Delayed, user_error};

/// `a` with every entry of `b` merged in by `combine` (`a`'s value first).
fn merge_maps<K: Hash + Eq, A>(
    a: &mut HashMap<K, A>,
    b: HashMap<K, A>,
    combine: &dyn Fn(A, A) -> A,
) {
    for (k, v) in b {
        match a.entry(k) {
            Entry::Occupied(o) => {
                o.replace_entry_with(|_, old| Some(combine(old, v)));
            }
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
}

/// A counting map of `String`s as the `HashMap<T, u64>` it is when `T` is `String`.
fn as_generic<M: 'static, T: 'static>(m: HashMap<String, M>) -> Result<HashMap<T, M>> {
    let boxed: Box<dyn Any> = Box::new(m);
    boxed
        .downcast::<HashMap<T, M>>()
        .map(|b| *b)
        .map_err(|_| Error::Invalid("a text partition in a bag of non-strings".into()))
}

/// An item with its key and position: ordered by key, then earlier first (the better is
/// greater), so that `top_k` equals a stable sort.
#[derive(Clone)]
struct Ranked<K, T> {
    key: K,
    pos: (usize, u64),
    item: T,
}

impl<K: Ord, T> PartialEq for Ranked<K, T> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Ranked<K, T> {}
impl<K: Ord, T> PartialOrd for Ranked<K, T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<K: Ord, T> Ord for Ranked<K, T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.cmp(&o.key).then_with(|| o.pos.cmp(&self.pos))
    }
}

/// The `k` best ranked items seen so far; the worst on top, to be evicted.
type TopHeap<K, T> = BinaryHeap<Reverse<Ranked<K, T>>>;

fn push_top<K: Ord, T>(heap: &mut TopHeap<K, T>, k: usize, r: Ranked<K, T>) {
    if heap.len() < k {
        heap.push(Reverse(r));
    } else if let Some(mut worst) = heap.peek_mut()
        && r > worst.0
    {
        worst.0 = r;
    }
}

/// SplitMix64: a small, good-enough generator for sampling (seeded per partition).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The most output partitions [`Bag::groupby`] makes by default (each input partition task
/// keeps one spill file open per output partition).
const MAX_SHUFFLE_PARTITIONS: usize = 64;

impl<T: Clone + Send + 'static> Bag<T> {
    /// A bag of `(key, accumulator)` pairs, one per distinct key: each partition folds its
    /// items into a map of accumulators (starting from clones of `init`, stepping with
    /// `binop`), then the maps are merged in a tree with `combine` (like Dask's `foldby`, the
    /// fast path for grouped reductions: only one accumulator per key and partition is kept).
    /// The result has one partition; its order is unspecified.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let sales = Bag::from_vec(&cluster, vec![("ann", 3), ("bob", 4), ("ann", 5)], 2)?;
    /// let mut totals = sales
    ///     .foldby(|(who, _)| *who, 0, |acc, (_, n)| acc + n, |a, b| a + b)
    ///     .compute()?;
    /// totals.sort();
    /// assert_eq!(totals, [("ann", 8), ("bob", 4)]);
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn foldby<K, A, KF, B, C>(&self, key: KF, init: A, binop: B, combine: C) -> Bag<(K, A)>
    where
        K: Hash + Eq + Clone + Send + 'static,
        A: Clone + Send + Sync + 'static,
        KF: Fn(&T) -> K + Send + Sync + 'static,
        B: Fn(A, T) -> A + Send + Sync + 'static,
        C: Fn(A, A) -> A + Send + Sync + 'static,
    {
        let combine = Arc::new(combine);
        let merge: Combine<HashMap<K, A>> = Arc::new(move |maps| {
            let mut maps = maps.into_iter();
            let mut acc = maps.next().unwrap_or_default();
            for m in maps {
                merge_maps(&mut acc, m, &*combine);
            }
            Ok(acc)
        });
        let merged = self.reduce_tree(
            "foldby",
            HashMap::new,
            move |m: &mut HashMap<K, A>, x: T| {
                match m.entry(key(&x)) {
                    Entry::Occupied(o) => {
                        o.replace_entry_with(|_, a| Some(binop(a, x)));
                    }
                    Entry::Vacant(e) => {
                        e.insert(binop(init.clone(), x));
                    }
                }
                Ok(())
            },
            merge,
        );
        let out = merged.map(|m| m.into_iter().collect::<Vec<_>>());
        Bag::from_delayed(&self.cluster, vec![out]).split_every(self.split_every)
    }

    /// How many times each distinct item occurs, as `(item, count)` pairs in one partition
    /// (order unspecified: see [`frequencies_sorted`](Bag::frequencies_sorted)). On a bag of
    /// lines or words the items are counted as borrowed `&str` and become `String`s once per
    /// distinct item and partition.
    pub fn frequencies(&self) -> Bag<(T, u64)>
    where
        T: Hash + Eq,
    {
        let out = self.count_map().map(|m| m.into_iter().collect::<Vec<_>>());
        Bag::from_delayed(&self.cluster, vec![out]).split_every(self.split_every)
    }

    /// [`frequencies`](Bag::frequencies) in a deterministic order: most frequent first,
    /// equal counts in ascending order of the item (like Dask's `frequencies(sort=True)`,
    /// whose order among equal counts is not defined). The sort runs in one task after the
    /// counts are merged.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let words = Bag::from_vec(&cluster, vec!["b", "a", "c", "a", "b", "d"], 3)?;
    /// let freq = words.frequencies_sorted().compute()?;
    /// assert_eq!(freq, [("a", 2), ("b", 2), ("c", 1), ("d", 1)]);
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn frequencies_sorted(&self) -> Bag<(T, u64)>
    where
        T: Hash + Ord,
    {
        let out = self
            .count_map()
            .map(|m| {
                let mut v = m.into_iter().collect::<Vec<_>>();
                v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                v
            })
            .label("bag-frequencies-sort");
        Bag::from_delayed(&self.cluster, vec![out]).split_every(self.split_every)
    }

    /// The word tables of the partitions, merged in a tree of tasks, when every partition is
    /// text (lines as `&str`): short words stay two machine words through the merges and no
    /// string is made until the end. `None` for other bags.
    fn word_tables(&self, op: &str) -> Option<Delayed<WordCounts>> {
        if self.parts.is_empty() || !self.parts.iter().all(|p| p.text.is_some()) {
            return None;
        }
        let partials = (0..self.npartitions())
            .map(|i| {
                self.part_task(i, op, |part| {
                    let mut counts = WordCounts::new();
                    drive_str_or(
                        part,
                        &mut |s| {
                            counts.add(s, 1);
                            Ok(())
                        },
                        &mut |_| Ok(()),
                    )?;
                    Ok(counts)
                })
            })
            .collect();
        let merge: Combine<WordCounts> = Arc::new(|tables: Vec<WordCounts>| {
            Ok(tables
                .into_iter()
                .reduce(WordCounts::merge)
                .unwrap_or_else(WordCounts::new))
        });
        Some(tree(&self.cluster, partials, self.split_every, op, merge))
    }

    /// The count of every distinct item, merged in a tree of tasks.
    fn count_map(&self) -> Delayed<HashMap<T, u64>>
    where
        T: Hash + Eq,
    {
        if let Some(tables) = self.word_tables("frequencies") {
            return tables
                .try_map(|counts| as_generic(counts.into_map()))
                .label("bag-frequencies-strings");
        }
        let partials = (0..self.npartitions())
            .map(|i| {
                self.part_task(i, "frequencies", |part| {
                    let mut counts: HashMap<T, u64> = HashMap::new();
                    part.drive(&mut |x| {
                        *counts.entry(x).or_insert(0) += 1;
                        Ok(())
                    })?;
                    Ok(counts)
                })
            })
            .collect();
        tree(
            &self.cluster,
            partials,
            self.split_every,
            "frequencies",
            Arc::new(|maps: Vec<HashMap<T, u64>>| {
                let mut maps = maps.into_iter();
                let mut acc = maps.next().unwrap_or_default();
                for m in maps {
                    // Merge the smaller map into the larger: counts commute.
                    let (mut big, small) = if m.len() > acc.len() {
                        (m, acc)
                    } else {
                        (acc, m)
                    };
                    merge_maps(&mut big, small, &|a, b| a + b);
                    acc = big;
                }
                Ok(acc)
            }),
        )
    }

    /// The distinct items, in one partition (order unspecified).
    pub fn distinct(&self) -> Bag<T>
    where
        T: Hash + Eq,
    {
        if let Some(tables) = self.word_tables("distinct") {
            let out = tables
                .try_map(|seen| {
                    as_generic::<u64, T>(seen.into_map()).map(|m| m.into_keys().collect::<Vec<T>>())
                })
                .label("bag-distinct-strings");
            return Bag::from_delayed(&self.cluster, vec![out]).split_every(self.split_every);
        }
        let partials = (0..self.npartitions())
            .map(|i| {
                self.part_task(i, "distinct", |part| {
                    let mut seen = HashSet::new();
                    part.drive(&mut |x| {
                        seen.insert(x);
                        Ok(())
                    })?;
                    Ok(seen)
                })
            })
            .collect();
        let merged = tree(
            &self.cluster,
            partials,
            self.split_every,
            "distinct",
            Arc::new(|sets: Vec<HashSet<T>>| {
                let mut sets = sets.into_iter();
                let mut acc = sets.next().unwrap_or_default();
                for s in sets {
                    acc.extend(s);
                }
                Ok(acc)
            }),
        );
        let out = merged.map(|s| s.into_iter().collect::<Vec<_>>());
        Bag::from_delayed(&self.cluster, vec![out]).split_every(self.split_every)
    }

    /// The `k` items with the largest `key`, largest first; among equal keys, earlier items
    /// first (exactly a stable sort by descending key, cut at `k`). Each partition keeps only
    /// its own best `k`.
    pub fn top_k<K, F>(&self, k: usize, key: F) -> Delayed<Vec<T>>
    where
        K: Ord + Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        let partials = (0..self.npartitions())
            .map(|i| {
                let key = key.clone();
                self.part_task(i, "top-k", move |part| {
                    let mut heap: TopHeap<K, T> = BinaryHeap::with_capacity(k.min(1 << 16) + 1);
                    let mut n = 0u64;
                    if k > 0 {
                        part.drive(&mut |x| {
                            let r = Ranked {
                                key: key(&x),
                                pos: (i, n),
                                item: x,
                            };
                            n += 1;
                            push_top(&mut heap, k, r);
                            Ok(())
                        })?;
                    }
                    Ok(heap)
                })
            })
            .collect();
        let merged = tree(
            &self.cluster,
            partials,
            self.split_every,
            "top-k",
            Arc::new(move |heaps: Vec<TopHeap<K, T>>| {
                let mut heaps = heaps.into_iter();
                let mut acc = heaps.next().unwrap_or_default();
                for h in heaps {
                    for Reverse(r) in h {
                        push_top(&mut acc, k, r);
                    }
                }
                Ok(acc)
            }),
        );
        merged.map(|heap| {
            // Ascending order of `Reverse` is best first.
            heap.into_sorted_vec()
                .into_iter()
                .map(|Reverse(r)| r.item)
                .collect()
        })
    }

    /// The first `n` items, in order. Runs only the partitions it needs: the first one, then
    /// more in growing waves (run side by side) while the items seen fall short; each
    /// partition stops reading once it has `n` items.
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = 0;
        let mut wave = 1;
        while out.len() < n && next < self.npartitions() {
            let end = (next + wave).min(self.npartitions());
            let tasks: Vec<Delayed<Vec<T>>> = (next..end)
                .map(|i| {
                    self.part_task(i, "take", move |part| {
                        let mut got = Vec::new();
                        part.drive(&mut |x| {
                            got.push(x);
                            if got.len() >= n {
                                Err(Halt::Enough)
                            } else {
                                Ok(())
                            }
                        })?;
                        Ok(got)
                    })
                })
                .collect();
            for items in Delayed::join_all(&self.cluster, tasks)
                .label("bag-take-wave")
                .compute()?
            {
                let room = n - out.len();
                out.extend(items.into_iter().take(room));
            }
            next = end;
            wave = (wave * 2).max(self.cluster.threads());
        }
        Ok(out)
    }

    /// Keeps each item with probability `p`, independently, deterministically for a given
    /// `seed` and partitioning (each partition draws from its own stream). Fails when `p` is
    /// not between 0 and 1.
    pub fn random_sample(self, p: f64, seed: u64) -> Result<Bag<T>> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(
                "sample probability",
                p,
                "must be between 0 and 1",
            ));
        }
        let parts = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let run = part.run.clone();
                let stream = seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
                part.then(Arc::new(move |sink: &mut dyn FnMut(T) -> Flow| {
                    let mut rng = SplitMix(stream);
                    run(&mut |x| if rng.unit() < p { sink(x) } else { Ok(()) })
                }) as Run<T>)
            })
            .collect();
        Ok(self.derive(parts))
    }

    /// Groups the items by `key`: `(key, items)` pairs, the items in their original order.
    /// A hash shuffle: each partition's task writes its items to one spill file per output
    /// partition, then each output partition's task reads its files and groups them. Only
    /// one partition (in) or one group of output partitions (out) is in memory per task; the
    /// spill files live in a temporary directory removed when the bag and its tasks are
    /// dropped. Makes as many output partitions as input ones, at most 64; see
    /// [`groupby_into`](Bag::groupby_into). For reductions per key prefer
    /// [`foldby`](Bag::foldby), which moves no items.
    ///
    /// Why at most 64: every input task keeps one spill file open per output partition,
    /// each with an 8 KiB write buffer, and the cluster runs one input task per thread, so
    /// `threads x outputs` files are open at once (against the usual limit of 1024 per
    /// process) and `inputs x outputs` spill files are made. 64 outputs keep that to 64 open
    /// files and 512 KiB of buffers per thread; output partitions as large as the input ones
    /// are rarely worth more files. [`groupby_into`](Bag::groupby_into) takes any count.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let words = Bag::from_vec(&cluster, vec!["apple".to_string(), "bean".into(), "avocado".into()], 2)?;
    /// let mut groups = words.groupby(|w| w.chars().next())?.compute()?;
    /// groups.sort();
    /// assert_eq!(groups[0], (Some('a'), vec!["apple".to_string(), "avocado".into()]));
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn groupby<K, F>(&self, key: F) -> Result<Bag<(K, Vec<T>)>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        self.groupby_into(key, self.npartitions().clamp(1, MAX_SHUFFLE_PARTITIONS))
    }

    /// [`groupby`](Bag::groupby) into `npartitions` output partitions (groups are spread by
    /// the hash of their key). Each running input task holds `npartitions` spill files open:
    /// with thousands of outputs on many threads, the process's limit of open files (see
    /// `ulimit -n`) can be reached, and the failing task's error names the spill file.
    pub fn groupby_into<K, F>(&self, key: F, npartitions: usize) -> Result<Bag<(K, Vec<T>)>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        super::check_partitions(npartitions)?;
        let spill = tempfile::Builder::new()
            .prefix("onebox-shuffle-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let dir: Arc<tempfile::TempDir> = Arc::new(spill);
        let key = Arc::new(key);
        let hasher = DefaultHashBuilder::default();
        let outs = npartitions;
        let writes: Vec<Delayed<()>> = (0..self.npartitions())
            .map(|i| {
                let (dir, key, hasher) = (dir.clone(), key.clone(), hasher.clone());
                self.part_task(i, "shuffle-write", move |part| {
                    let mut files = (0..outs)
                        .map(|j| {
                            let path = spill_path(dir.path(), i, j);
                            std::fs::File::create(&path)
                                .map(BufWriter::new)
                                .map_err(|e| user_error(Error::io(&path, e)))
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let mut frame = Vec::new();
                    part.drive(&mut |x| {
                        let j = (hasher.hash_one(key(&x)) % outs as u64) as usize;
                        frame.clear();
                        frame.extend_from_slice(&[0; 4]);
                        frame =
                            postcard::to_extend(&x, std::mem::take(&mut frame)).map_err(|e| {
                                halt_error(Error::Invalid(format!("cannot spill an item: {e}")))
                            })?;
                        let len = (frame.len() - 4) as u32;
                        frame[..4].copy_from_slice(&len.to_le_bytes());
                        files[j]
                            .write_all(&frame)
                            .map_err(|e| halt_error(Error::io(spill_path(dir.path(), i, j), e)))
                    })?;
                    for (j, f) in files.iter_mut().enumerate() {
                        f.flush()
                            .map_err(|e| user_error(Error::io(spill_path(dir.path(), i, j), e)))?;
                    }
                    Ok(())
                })
            })
            .collect();
        let deps: Vec<Arc<dyn crate::graph::node::Task>> = writes
            .iter()
            .map(|d| d.node.clone() as Arc<dyn crate::graph::node::Task>)
            .collect();
        let inputs = self.npartitions();
        let parts = (0..outs)
            .map(|j| {
                let (dir, key) = (dir.clone(), key.clone());
                let run: Run<(K, Vec<T>)> = Arc::new(move |sink| {
                    let mut groups: HashMap<K, Vec<T>> = HashMap::new();
                    for i in 0..inputs {
                        let path = spill_path(dir.path(), i, j);
                        read_spill(&path, &mut |x: T| {
                            groups.entry(key(&x)).or_default().push(x)
                        })
                        .map_err(halt_error)?;
                    }
                    for pair in groups {
                        sink(pair)?;
                    }
                    Ok(())
                });
                Part {
                    deps: deps.clone(),
                    run,
                    text: None,
                    blocks: None,
                }
            })
            .collect();
        Ok(self.derive(parts))
    }
}

fn spill_path(dir: &Path, input: usize, output: usize) -> PathBuf {
    dir.join(format!("in{input}-out{output}.bin"))
}

/// Reads the length-prefixed postcard records of a spill file.
fn read_spill<T: serde::de::DeserializeOwned>(
    path: &Path,
    each: &mut dyn FnMut(T),
) -> std::result::Result<(), Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Error::io(path, e)),
        }
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        let x = postcard::from_bytes(&buf).map_err(|e| {
            Error::Invalid(format!(
                "{}: a spilled item does not decode: {e}",
                path.display()
            ))
        })?;
        each(x);
    }
}
