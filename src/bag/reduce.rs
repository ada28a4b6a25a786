//! Reductions: one folding task per partition, then a tree of combine tasks.

use std::cmp::Ordering;
use std::sync::Arc;

use super::{Bag, Flow, Halt, drive_str_or};
use crate::cluster::Cluster;
use crate::error::TaskFailure;
use crate::graph::Delayed;

/// Merges a list of partial results into one (the list may be empty).
pub(crate) type Combine<R> =
    Arc<dyn Fn(Vec<R>) -> std::result::Result<R, TaskFailure> + Send + Sync>;

/// Combines `level` in a tree of tasks, `every` inputs per task, into one task's output.
pub(crate) fn tree<R: Clone + Send + 'static>(
    cluster: &Cluster,
    mut level: Vec<Delayed<R>>,
    every: usize,
    op: &str,
    combine: Combine<R>,
) -> Delayed<R> {
    let label = format!("bag-{op}-combine");
    if level.is_empty() {
        return Delayed::combine(cluster, Vec::new(), move |v| combine(v)).label(&label);
    }
    let every = every.max(2);
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(every));
        let mut items = level.into_iter().peekable();
        while items.peek().is_some() {
            let mut group: Vec<Delayed<R>> = items.by_ref().take(every).collect();
            if group.len() == 1 {
                next.extend(group.pop());
            } else {
                let c = combine.clone();
                next.push(Delayed::combine(cluster, group, move |v| c(v)).label(&label));
            }
        }
        level = next;
    }
    match level.pop() {
        Some(root) => root,
        // Unreachable: the loop leaves exactly one task.
        None => Delayed::combine(cluster, Vec::new(), move |v| combine(v)).label(&label),
    }
}

/// Numbers that [`Bag::mean`], [`Bag::var`] and [`Bag::std`] accept.
pub trait AsF64 {
    /// The value as an `f64` (rounded for large integers).
    fn as_f64(&self) -> f64;
}

macro_rules! as_f64 {
    ($($t:ty),*) => {$(
        impl AsF64 for $t {
            fn as_f64(&self) -> f64 { *self as f64 }
        }
    )*};
}
as_f64!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
);

/// Count, mean and sum of squared deviations, merged pairwise (Chan et al.), so that the
/// result does not depend on how the items were partitioned beyond rounding.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn merge(self, o: Moments) -> Moments {
        if self.n == 0 {
            return o;
        }
        if o.n == 0 {
            return self;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        Moments {
            n,
            mean: self.mean + d * o.n as f64 / n as f64,
            m2: self.m2 + o.m2 + d * d * self.n as f64 * o.n as f64 / n as f64,
        }
    }

    fn var(self, ddof: u64) -> Option<f64> {
        (self.n > ddof).then(|| self.m2 / (self.n - ddof) as f64)
    }
}

impl<T: Clone + Send + 'static> Bag<T> {
    /// Per-partition partials made by `step`, tree-combined with `combine`.
    pub(crate) fn reduce_tree<R, I, S>(
        &self,
        op: &str,
        init: I,
        step: S,
        combine: Combine<R>,
    ) -> Delayed<R>
    where
        R: Clone + Send + 'static,
        I: Fn() -> R + Send + Sync + 'static,
        S: Fn(&mut R, T) -> Flow + Send + Sync + 'static,
    {
        let (init, step) = (Arc::new(init), Arc::new(step));
        let partials = (0..self.npartitions())
            .map(|i| {
                let (init, step) = (init.clone(), step.clone());
                self.part_task(i, op, move |part| {
                    let mut acc = init();
                    part.drive(&mut |x| step(&mut acc, x))?;
                    Ok(acc)
                })
            })
            .collect();
        tree(&self.cluster, partials, self.split_every, op, combine)
    }

    /// Folds each partition from a clone of `init` with `op`, then merges the partial results
    /// with `combine` in a tree (like Dask's `fold(binop, combine, initial)`). `combine` must be
    /// associative; items and partials are combined in partition order. An empty bag gives
    /// `init`.
    pub fn fold<A, F, C>(&self, init: A, op: F, combine: C) -> Delayed<A>
    where
        A: Clone + Send + Sync + 'static,
        F: Fn(A, T) -> A + Send + Sync + 'static,
        C: Fn(A, A) -> A + Send + Sync + 'static,
    {
        let start = init.clone();
        let combine = Arc::new(combine);
        let fold_all: Combine<Option<A>> =
            Arc::new(move |parts| Ok(parts.into_iter().flatten().reduce(|a, b| combine(a, b))));
        self.reduce_tree(
            "fold",
            move || Some(start.clone()),
            move |acc, x| {
                *acc = acc.take().map(|a| op(a, x));
                Ok(())
            },
            fold_all,
        )
        .map(move |r| r.unwrap_or_else(|| init.clone()))
    }

    /// Merges all items with `op` (associative), in order; `None` for an empty bag.
    pub fn reduce<F>(&self, op: F) -> Delayed<Option<T>>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let op2 = op.clone();
        self.reduce_tree(
            "reduce",
            || None,
            move |acc: &mut Option<T>, x| {
                *acc = Some(match acc.take() {
                    Some(a) => op(a, x),
                    None => x,
                });
                Ok(())
            },
            Arc::new(move |parts: Vec<Option<T>>| {
                Ok(parts.into_iter().flatten().reduce(|a, b| op2(a, b)))
            }),
        )
    }

    /// How many items the bag has.
    pub fn count(&self) -> Delayed<u64> {
        let partials = (0..self.npartitions())
            .map(|i| {
                self.part_task(i, "count", |part| {
                    let n = std::cell::Cell::new(0u64);
                    drive_str_or(
                        part,
                        &mut |_| {
                            n.set(n.get() + 1);
                            Ok(())
                        },
                        &mut |_| {
                            n.set(n.get() + 1);
                            Ok(())
                        },
                    )?;
                    Ok(n.get())
                })
            })
            .collect();
        tree(
            &self.cluster,
            partials,
            self.split_every,
            "count",
            Arc::new(|v: Vec<u64>| Ok(v.into_iter().sum())),
        )
    }

    /// The sum of the items (`T::sum` of nothing, e.g. 0, for an empty bag).
    pub fn sum(&self) -> Delayed<T>
    where
        T: std::iter::Sum<T>,
    {
        self.reduce_tree(
            "sum",
            || std::iter::empty::<T>().sum(),
            |acc: &mut T, x| {
                let a = std::mem::replace(acc, std::iter::empty::<T>().sum());
                *acc = [a, x].into_iter().sum();
                Ok(())
            },
            Arc::new(|v: Vec<T>| Ok(v.into_iter().sum())),
        )
    }

    /// The smallest item by `cmp` (the first of equal ones); `None` for an empty bag.
    pub fn min_by<F>(&self, cmp: F) -> Delayed<Option<T>>
    where
        F: Fn(&T, &T) -> Ordering + Send + Sync + 'static,
    {
        self.reduce(move |a, b| if cmp(&b, &a) == Ordering::Less { b } else { a })
    }

    /// The largest item by `cmp` (the last of equal ones, as `Iterator::max_by`); `None` for
    /// an empty bag.
    pub fn max_by<F>(&self, cmp: F) -> Delayed<Option<T>>
    where
        F: Fn(&T, &T) -> Ordering + Send + Sync + 'static,
    {
        self.reduce(move |a, b| if cmp(&b, &a) == Ordering::Less { a } else { b })
    }

    /// The smallest item; `None` for an empty bag. For floats use
    /// [`min_by`](Bag::min_by) with `f64::total_cmp`.
    pub fn min(&self) -> Delayed<Option<T>>
    where
        T: Ord,
    {
        self.min_by(T::cmp)
    }

    /// The largest item; `None` for an empty bag.
    pub fn max(&self) -> Delayed<Option<T>>
    where
        T: Ord,
    {
        self.max_by(T::cmp)
    }

    fn moments(&self) -> Delayed<Moments>
    where
        T: AsF64,
    {
        self.reduce_tree(
            "moments",
            Moments::default,
            |m: &mut Moments, x: T| {
                m.push(x.as_f64());
                Ok(())
            },
            Arc::new(|v: Vec<Moments>| Ok(v.into_iter().fold(Moments::default(), Moments::merge))),
        )
    }

    /// The arithmetic mean; `None` for an empty bag.
    pub fn mean(&self) -> Delayed<Option<f64>>
    where
        T: AsF64,
    {
        self.moments().map(|m| (m.n > 0).then_some(m.mean))
    }

    /// The variance with `ddof` delta degrees of freedom (0: population, 1: sample), like
    /// Dask's `var(ddof)`; `None` when the bag has at most `ddof` items.
    pub fn var(&self, ddof: u64) -> Delayed<Option<f64>>
    where
        T: AsF64,
    {
        self.moments().map(move |m| m.var(ddof))
    }

    /// The standard deviation (square root of [`var`](Bag::var)).
    pub fn std(&self, ddof: u64) -> Delayed<Option<f64>>
    where
        T: AsF64,
    {
        self.moments().map(move |m| m.var(ddof).map(f64::sqrt))
    }

    /// True when `pred` holds for some item (false for an empty bag). Each partition stops
    /// reading at its first match.
    pub fn any<F>(&self, pred: F) -> Delayed<bool>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.reduce_tree(
            "any",
            || false,
            move |found: &mut bool, x| {
                if pred(&x) {
                    *found = true;
                    return Err(Halt::Enough);
                }
                Ok(())
            },
            Arc::new(|v: Vec<bool>| Ok(v.into_iter().any(|b| b))),
        )
    }

    /// True when `pred` holds for every item (true for an empty bag). Each partition stops
    /// reading at its first counter-example.
    pub fn all<F>(&self, pred: F) -> Delayed<bool>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.reduce_tree(
            "all",
            || true,
            move |ok: &mut bool, x| {
                if !pred(&x) {
                    *ok = false;
                    return Err(Halt::Enough);
                }
                Ok(())
            },
            Arc::new(|v: Vec<bool>| Ok(v.into_iter().all(|b| b))),
        )
    }
}
