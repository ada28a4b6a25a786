//! Reductions as trees of tasks, and `cumsum`.
//!
//! A reduction runs one task per block that computes the block (fused with the elementwise
//! chain before it) and reduces it at once to a small *partial* over the kept axes; then tasks
//! that each combine up to [`fan_in`](Array::fan_in) partials, level after level, until one
//! partial per output block is left, which a last step turns into the result. Variance and
//! standard deviation carry `(count, mean, M2)` partials, each computed from its block in two
//! passes (or one, over the first axis: see [`columns`](super::columns)) and combined with
//! Chan's parallel form of Welford's update, so they stay accurate where the naive
//! `E[x²] - E[x]²` would cancel.
//!
//! A block is reduced slab by slab: a range of its first axis is computed into a buffer that
//! stays in cache and reduced at once, so a block is never written out whole. Reducing the
//! first axis alone (`x.sum(0)`, `x.std(0)`) feeds the slabs to a column fold instead, which
//! needs no partial per slab.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Zip};

use super::chunks::fmt_shape;
use super::columns::{ColumnFold, ColumnMoments, ColumnSums};
use super::element::{Element, Float, Numeric};
use super::kernels::{Ahead, Chunk, internal, with_block};
use super::{Array, Block, Chunks, block_view, check_axes};
use crate::cluster::Cluster;
use crate::error::{Error, Result, TaskFailure};
use crate::graph::Delayed;

type BlockFn<T, S> = Arc<dyn Fn(ArrayViewD<'_, T>, &[usize], &BlockPos) -> ArrayD<S> + Send + Sync>;

/// Makes the [`ColumnFold`] of a block whose first axis is reduced, given its row length.
pub(crate) type ColumnsFn<T, S> = Arc<dyn Fn(usize) -> Box<dyn ColumnFold<T, S>> + Send + Sync>;

/// A reduction's validated axes, output chunks (reduced axes kept with length 1) and the root
/// task of each output block.
pub(crate) type Roots<S> = (Vec<usize>, Chunks, Vec<Delayed<ArrayD<S>>>);

/// Where a block sits, for index-returning reductions.
pub(crate) struct BlockPos {
    offset: Vec<usize>,
    global: Vec<usize>,
}

/// How to reduce: a block to a partial (keeping the reduced axes with length 1), or, where the
/// first axis alone is reduced and `columns` is given, fed to a column fold slab by slab; two
/// partials into one (elementwise, the left one first in the array's order); a partial to the
/// result.
pub(crate) struct Reducer<T, S, O> {
    name: &'static str,
    block: BlockFn<T, S>,
    columns: Option<ColumnsFn<T, S>>,
    merge: MergeFn<S>,
    finish: FinishFn<S, O>,
}

/// Merges a run of partials into another of the same length, element by element (the left
/// one first in the array's order): see [`by_element`].
pub(crate) type MergeFn<S> = Arc<dyn Fn(&mut [S], &[S]) + Send + Sync>;

/// The [`MergeFn`] of an element merge `f`: one loop over the two runs with `f` inlined when
/// it is a function item or a closure (not a function pointer), so that merging the partials
/// of a block's slabs costs a few instructions per element, not a call.
pub(crate) fn by_element<S, F>(f: F) -> MergeFn<S>
where
    S: Clone,
    F: Fn(S, S) -> S + Send + Sync + 'static,
{
    Arc::new(move |acc: &mut [S], p: &[S]| {
        for (x, y) in acc.iter_mut().zip(p) {
            *x = f(x.clone(), y.clone());
        }
    })
}

/// Turns a final partial into the result (or says why there is none).
pub(crate) type FinishFn<S, O> = Arc<dyn Fn(S) -> std::result::Result<O, String> + Send + Sync>;

/// Folds `v` over `axes` (keeping them with length 1): `f` folds elements into a state,
/// `merge` folds states (for the second and later axes).
fn fold_axes<T: Copy, S: Clone>(
    v: ArrayViewD<'_, T>,
    axes: &[usize],
    init: S,
    f: impl Fn(&S, &T) -> S,
    merge: impl Fn(&S, &S) -> S,
) -> ArrayD<S> {
    if axes.is_empty() {
        return v.mapv(|x| f(&init, &x));
    }
    if axes.len() == v.ndim() {
        let s = v.iter().fold(init, |s, x| f(&s, x));
        return ArrayD::from_elem(IxDyn(&vec![1; v.ndim()]), s);
    }
    let mut acc = v
        .fold_axis(Axis(axes[0]), init.clone(), |s, x| f(s, x))
        .insert_axis(Axis(axes[0]));
    for &a in &axes[1..] {
        acc = acc
            .fold_axis(Axis(a), init.clone(), |s, x| merge(s, x))
            .insert_axis(Axis(a));
    }
    acc
}

/// Sum of a contiguous slice with eight running sums (vectorizes; also more accurate than
/// one running sum).
fn sum_slice<T: Numeric>(s: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut it = s.chunks_exact(8);
    for c in &mut it {
        for k in 0..8 {
            acc[k] = T::num_add(acc[k], c[k]);
        }
    }
    let mut total = it
        .remainder()
        .iter()
        .fold(T::zero(), |a, &b| T::num_add(a, b));
    for a in acc {
        total = T::num_add(total, a);
    }
    total
}

/// Sum of squared deviations from `mean`, with eight running sums.
fn sum_sq_dev<T: Float>(s: &[T], mean: T) -> T {
    let mut acc = [T::zero(); 8];
    let mut it = s.chunks_exact(8);
    for c in &mut it {
        for k in 0..8 {
            let d = c[k] - mean;
            acc[k] = acc[k] + d * d;
        }
    }
    let mut total = it
        .remainder()
        .iter()
        .fold(T::zero(), |a, &x| a + (x - mean) * (x - mean));
    for a in acc {
        total = total + a;
    }
    total
}

fn sum_block<T: Numeric>(v: ArrayViewD<'_, T>, axes: &[usize]) -> ArrayD<T> {
    if axes.len() == v.ndim()
        && let Some(s) = v.as_slice()
    {
        return ArrayD::from_elem(IxDyn(&vec![1; v.ndim()]), sum_slice(s));
    }
    fold_axes(
        v,
        axes,
        T::zero(),
        |a, &x| T::num_add(*a, x),
        |a, b| T::num_add(*a, *b),
    )
}

/// Count, mean and sum of squared deviations: the state of `var` and `std`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Moments<T> {
    pub(super) n: T,
    pub(super) mean: T,
    pub(super) m2: T,
}

fn merge_moments<T: Float>(a: Moments<T>, b: Moments<T>) -> Moments<T> {
    if b.n == T::zero() {
        return a;
    }
    if a.n == T::zero() {
        return b;
    }
    let n = a.n + b.n;
    let delta = b.mean - a.mean;
    let wb = b.n / n;
    Moments {
        n,
        mean: a.mean + delta * wb,
        m2: a.m2 + b.m2 + delta * delta * a.n * wb,
    }
}

/// The column fold of `var` and `std` over the first axis.
fn column_moments<T: Float>() -> ColumnsFn<T, Moments<T>> {
    Arc::new(|row| Box::new(ColumnMoments::new(row)))
}

/// Block moments over `axes`, NaNs skipped when `skip_nan`: two passes over the block (the
/// sums, then the squared deviations from the block's means).
fn moments_block<T: Float>(
    v: ArrayViewD<'_, T>,
    axes: &[usize],
    skip_nan: bool,
) -> ArrayD<Moments<T>> {
    let keep = |x: T| !(skip_nan && x.is_nan_value());
    let keep_shape: Vec<usize> = (0..v.ndim())
        .map(|k| if axes.contains(&k) { 1 } else { v.shape()[k] })
        .collect();
    let moments = |n: &ArrayD<T>, mean: &ArrayD<T>, m2: &ArrayD<T>| {
        Zip::from(n)
            .and(mean)
            .and(m2)
            .map_collect(|&n, &mean, &m2| Moments { n, mean, m2 })
    };
    if axes.len() == v.ndim()
        && let Some(s) = v.as_slice()
    {
        // every axis: straight over the contiguous block
        let (n, sum) = if skip_nan {
            s.iter().fold((T::zero(), T::zero()), |(n, t), &x| {
                if keep(x) {
                    (n + T::one(), t + x)
                } else {
                    (n, t)
                }
            })
        } else {
            (T::from(s.len()).unwrap_or_else(T::nan), sum_slice(s))
        };
        let mean = if n > T::zero() { sum / n } else { T::zero() };
        let m2 = if skip_nan {
            s.iter().fold(T::zero(), |a, &x| {
                if keep(x) {
                    a + (x - mean) * (x - mean)
                } else {
                    a
                }
            })
        } else {
            sum_sq_dev(s, mean)
        };
        let one = |x: T| ArrayD::from_elem(IxDyn(&keep_shape), x);
        return moments(&one(n), &one(mean), &one(m2));
    }
    if let [a] = axes {
        // one axis: accumulate its slices into arrays of the kept shape
        let ax = Axis(*a);
        let mut n = ArrayD::<T>::zeros(IxDyn(&keep_shape)).remove_axis(ax);
        let mut sum = n.clone();
        for sub in v.axis_iter(ax) {
            if skip_nan {
                Zip::from(&mut n)
                    .and(&mut sum)
                    .and(&sub)
                    .for_each(|n, s, &x| {
                        if keep(x) {
                            *n = *n + T::one();
                            *s = *s + x;
                        }
                    });
            } else {
                Zip::from(&mut sum).and(&sub).for_each(|s, &x| *s = *s + x);
            }
        }
        if !skip_nan {
            n.fill(T::from(v.len_of(ax)).unwrap_or_else(T::nan));
        }
        let mean = Zip::from(&sum)
            .and(&n)
            .map_collect(|&s, &n| if n > T::zero() { s / n } else { T::zero() });
        let mut m2 = ArrayD::<T>::zeros(mean.raw_dim());
        for sub in v.axis_iter(ax) {
            if !skip_nan {
                Zip::from(&mut m2)
                    .and(&mean)
                    .and(&sub)
                    .for_each(|m2, &m, &x| {
                        let d = x - m;
                        *m2 = *m2 + d * d;
                    });
                continue;
            }
            Zip::from(&mut m2)
                .and(&mean)
                .and(&sub)
                .for_each(|m2, &m, &x| {
                    if keep(x) {
                        *m2 = *m2 + (x - m) * (x - m);
                    }
                });
        }
        let ins = |a: ArrayD<T>| a.insert_axis(ax);
        return moments(&ins(n), &ins(mean), &ins(m2));
    }
    let count = fold_axes(
        v.view(),
        axes,
        T::zero(),
        |c, &x| if keep(x) { *c + T::one() } else { *c },
        |a, b| *a + *b,
    );
    let sum = fold_axes(
        v.view(),
        axes,
        T::zero(),
        |c, &x| if keep(x) { *c + x } else { *c },
        |a, b| *a + *b,
    );
    let mean = Zip::from(&sum)
        .and(&count)
        .map_collect(|&s, &n| if n > T::zero() { s / n } else { T::zero() });
    let dev = Zip::from(&v).and_broadcast(&mean).map_collect(|&x, &m| {
        if keep(x) {
            (x - m) * (x - m)
        } else {
            T::zero()
        }
    });
    let m2 = fold_axes(dev.view(), axes, T::zero(), |a, &x| *a + x, |a, b| *a + *b);
    moments(&count, &mean, &m2)
}

/// A value and its index, for `argmin` and `argmax`.
type Candidate<T> = Option<(T, i64)>;

/// The better of two `(value, index)` candidates: `lt(a, b)` says whether value `a` beats
/// value `b`; equal values go to the smaller index. NaN beats every number when `nan_wins`
/// (NumPy's `argmin`), loses to every number otherwise (`nanargmin`).
fn pick<T: Element>(
    a: Option<(T, i64)>,
    b: Option<(T, i64)>,
    lt: fn(T, T) -> bool,
    nan_wins: bool,
) -> Option<(T, i64)> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            let better = |x: (T, i64), y: (T, i64)| {
                if x.0.is_nan_value() != y.0.is_nan_value() {
                    x.0.is_nan_value() == nan_wins
                } else if x.0.is_nan_value() || x.0 == y.0 {
                    x.1 < y.1
                } else {
                    lt(x.0, y.0)
                }
            };
            Some(if better(b, a) { b } else { a })
        }
    }
}

impl<T: Element> Array<T> {
    /// Runs a reduction over `axes` (validated), dropping them from the result.
    pub(crate) fn reduce<S, O>(&self, axes: &[usize], r: Reducer<T, S, O>) -> Result<Array<O>>
    where
        S: Clone + Send + Sync + 'static,
        O: Element,
    {
        let (axes, out_keep, roots) =
            self.reduce_roots(axes, r.name, r.block, r.columns, r.merge)?;
        Ok(self.finish_roots(&axes, &out_keep, roots, r.name, r.finish))
    }

    /// The partial tree of a reduction: per output block (over the kept axes, reduced axes
    /// kept with length 1), the task holding its combined partial.
    pub(crate) fn reduce_roots<S>(
        &self,
        axes: &[usize],
        name: &'static str,
        block_fn: BlockFn<T, S>,
        columns: Option<ColumnsFn<T, S>>,
        merge: MergeFn<S>,
    ) -> Result<Roots<S>>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.check()?;
        let axes = check_axes(axes, self.shape(), name)?;
        let cluster = self.cluster().clone();
        let chunks = self.chunks();
        let mut keep_axes: Vec<Vec<usize>> = chunks.axes().to_vec();
        for &a in &axes {
            keep_axes[a] = vec![1];
        }
        let out_keep = Chunks::from_axes(keep_axes);
        let mut groups: Vec<Vec<Delayed<ArrayD<S>>>> = vec![Vec::new(); out_keep.num_blocks()];
        for (i, b) in self.blocks().iter().enumerate() {
            let mut m = chunks.block_index(i);
            for &a in &axes {
                m[a] = 0;
            }
            let shape = chunks.block_shape(i);
            let pos = BlockPos {
                offset: chunks.block_offset(i),
                global: self.shape().to_vec(),
            };
            let kernel = b.kernel.clone();
            let f = block_fn.clone();
            let slab_merge = merge.clone();
            let axes2 = axes.clone();
            let columns = columns.clone();
            let task = Delayed::combine(&cluster, b.deps.clone(), move |inputs| match &columns {
                Some(make) if axes2 == [0] && shape.len() >= 2 => {
                    fold_columns(&*kernel, &inputs, &shape, make)
                }
                _ => partial_of_block(&*kernel, &inputs, &shape, &axes2, &pos, &f, &*slab_merge),
            })
            .label(&format!(
                "array-{name}-partial[{}]",
                super::fmt_index(&chunks.block_index(i))
            ));
            groups[out_keep.block_number(&m)].push(task);
        }
        let fan_in = self.fan_in();
        let roots = groups
            .into_iter()
            .map(|g| {
                let merge = merge.clone();
                tree(&cluster, g, fan_in, name, move |mut a, b| {
                    if a.shape() != b.shape() {
                        return Err(internal("reduction partials of different shapes"));
                    }
                    merge_into(&mut a, &b, &*merge);
                    Ok(a)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((axes, out_keep, roots))
    }

    /// The array of `finish(partial)` for each root of a reduction tree.
    pub(crate) fn finish_roots<S, O>(
        &self,
        axes: &[usize],
        out_keep: &Chunks,
        roots: Vec<Delayed<ArrayD<S>>>,
        name: &'static str,
        finish: FinishFn<S, O>,
    ) -> Array<O>
    where
        S: Clone + Send + Sync + 'static,
        O: Element,
    {
        let cluster = self.cluster();
        let blocks = roots
            .into_iter()
            .enumerate()
            .map(|(o, root)| {
                let finish = finish.clone();
                let shape = out_keep.block_shape(o);
                let done = Delayed::combine(cluster, vec![root], move |mut v| {
                    let p = v
                        .pop()
                        .ok_or_else(|| internal("a reduction lost its input"))?;
                    let data = p
                        .iter()
                        .map(|s| finish(s.clone()))
                        .collect::<std::result::Result<Vec<O>, String>>()
                        .map_err(|e| crate::graph::user_error(Error::Invalid(e)))?;
                    let out = ArrayD::from_shape_vec(p.raw_dim(), data)
                        .map_err(|e| internal(e.to_string()))?;
                    if out.shape() != shape.as_slice() {
                        return Err(internal("a reduction produced a block of the wrong shape"));
                    }
                    Ok(Arc::new(out.as_standard_layout().into_owned()) as Chunk)
                })
                .label(&format!(
                    "array-{name}-agg[{}]",
                    super::fmt_index(&out_keep.block_index(o))
                ));
                Block::of_task(done, &out_keep.block_shape(o))
            })
            .collect();
        let dropped: Vec<Vec<usize>> = out_keep
            .axes()
            .iter()
            .enumerate()
            .filter(|(k, _)| !axes.contains(k))
            .map(|(_, a)| a.clone())
            .collect();
        Array::from_blocks(cluster, Chunks::from_axes(dropped), blocks, name)
            .with_fan_in(self.fan_in())
    }

    fn all_axes(&self) -> Vec<usize> {
        (0..self.ndim()).collect()
    }

    fn nonempty(&self, axes: &[usize], what: &str) -> Result<()> {
        if let Some(&a) = axes
            .iter()
            .find(|&&a| a < self.ndim() && self.shape()[a] == 0)
        {
            return Err(Error::Invalid(format!(
                "{what}: axis {a} of shape {} is empty, and {what} of nothing has no value",
                fmt_shape(self.shape())
            )));
        }
        Ok(())
    }
}

/// Elements per slab: a slab of a block (a range of its first axis) is evaluated and reduced
/// while it is in the L2 cache.
const SLAB: usize = 1 << 16;

/// Rows per slab of a block whose rows (everything after the first axis) hold `row` elements:
/// at least one.
fn slab_rows(row: usize) -> usize {
    (SLAB / row.max(1)).max(1)
}

/// The partial of one block, computed slab by slab: a slab is a range of the block's first
/// axis (contiguous in its row-major order), evaluated into a cache-sized buffer and reduced
/// at once; slab partials are merged (first axis reduced) or stacked (first axis kept).
fn partial_of_block<T: Element, S: Clone>(
    kernel: &dyn super::kernels::Kernel<T>,
    inputs: &[Chunk],
    shape: &[usize],
    axes: &[usize],
    pos: &BlockPos,
    f: &BlockFn<T, S>,
    merge: &dyn Fn(&mut [S], &[S]),
) -> std::result::Result<ArrayD<S>, TaskFailure> {
    let row: usize = shape.iter().skip(1).product();
    let rows = slab_rows(row);
    if shape.is_empty() || row == 0 || rows >= shape[0] {
        return with_block(kernel, inputs, 0, shape, |v| f(v, axes, pos));
    }
    let reduce0 = axes.contains(&0);
    let mut acc: Option<ArrayD<S>> = None;
    let mut parts: Vec<ArrayD<S>> = Vec::new();
    let mut r0 = 0;
    while r0 < shape[0] {
        let r1 = (r0 + rows).min(shape[0]);
        let mut sshape = shape.to_vec();
        sshape[0] = r1 - r0;
        let mut offset = pos.offset.clone();
        offset[0] += r0;
        let spos = BlockPos {
            offset,
            global: pos.global.clone(),
        };
        let p = with_block(kernel, inputs, r0 * row, &sshape, |v| f(v, axes, &spos))?;
        if reduce0 {
            match &mut acc {
                None => acc = Some(p),
                Some(a) => {
                    if a.shape() != p.shape() {
                        return Err(internal("slab partials of different shapes"));
                    }
                    merge_into(a, &p, merge);
                }
            }
        } else {
            parts.push(p);
        }
        r0 = r1;
    }
    if reduce0 {
        return acc.ok_or_else(|| internal("a block without slabs"));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| internal(e.to_string()))
}

/// The partial of a block whose first axis is reduced: its rows computed a slab at a time
/// and fed to a column fold, the memory of the next slab prefetched meanwhile.
fn fold_columns<T: Element, S: Clone>(
    kernel: &dyn super::kernels::Kernel<T>,
    inputs: &[Chunk],
    shape: &[usize],
    make: &ColumnsFn<T, S>,
) -> std::result::Result<ArrayD<S>, TaskFailure> {
    let row: usize = shape[1..].iter().product();
    let mut fold = make(row);
    if row > 0 {
        let slab = slab_rows(row);
        // rows read in place and in order stream on the hardware prefetcher alone
        let plan = !(kernel.passthrough() && fold.streams_rows());
        let mut ahead = Ahead::default();
        let mut r0 = 0;
        while r0 < shape[0] {
            let r1 = (r0 + slab).min(shape[0]);
            let r2 = (r1 + slab).min(shape[0]);
            if plan {
                ahead.plan(kernel, inputs, r1 * row, (r2 - r1) * row);
            }
            with_block(kernel, inputs, r0 * row, &[r1 - r0, row], |v| {
                v.as_slice().map(|rows| fold.add_rows(r0, rows, &mut ahead))
            })?
            .ok_or_else(|| internal("a slab of rows is not contiguous"))?;
            r0 = r1;
        }
    }
    let mut keep = shape.to_vec();
    keep[0] = 1;
    ArrayD::from_shape_vec(IxDyn(&keep), fold.finish()).map_err(|e| internal(e.to_string()))
}

/// Merges `p` into `acc` (same shape) element by element, over their elements in row-major
/// order.
fn merge_into<S: Clone>(acc: &mut ArrayD<S>, p: &ArrayD<S>, merge: &dyn Fn(&mut [S], &[S])) {
    if !acc.is_standard_layout() {
        *acc = acc.as_standard_layout().into_owned();
    }
    let p = p.as_standard_layout();
    if let (Some(a), Some(b)) = (acc.as_slice_mut(), p.as_slice()) {
        merge(a, b);
    }
}

/// Combines `items` with `merge`, `fan_in` at a time, until one is left.
fn tree<S, F>(
    cluster: &Cluster,
    mut items: Vec<Delayed<S>>,
    fan_in: usize,
    name: &str,
    merge: F,
) -> Result<Delayed<S>>
where
    S: Clone + Send + 'static,
    F: Fn(S, S) -> std::result::Result<S, TaskFailure> + Send + Sync + Clone + 'static,
{
    let fan_in = fan_in.max(2);
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(fan_in));
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let group: Vec<Delayed<S>> = it.by_ref().take(fan_in).collect();
            if group.len() == 1 {
                next.extend(group);
                continue;
            }
            let m = merge.clone();
            next.push(
                Delayed::combine(cluster, group, move |vals| {
                    let mut it = vals.into_iter();
                    let first = it
                        .next()
                        .ok_or_else(|| internal("an empty reduction group"))?;
                    it.try_fold(first, &m)
                })
                .label(&format!("array-{name}-combine")),
            );
        }
        items = next;
    }
    items
        .pop()
        .ok_or_else(|| Error::Invalid(format!("{name}: nothing to reduce")))
}

macro_rules! all_axes_too {
    ($($(#[$doc:meta])* $all:ident => $axis:ident;)*) => {$(
        $(#[$doc])*
        /// Over every axis: a 0-dimensional array (get the number with
        /// [`scalar`](Array::scalar)).
        pub fn $all(&self) -> Result<Array<T>> {
            self.$axis(&self.all_axes())
        }
    )*};
}

impl<T: Numeric> Array<T> {
    /// The sum over `axes` (dropped from the result).
    pub fn sum_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce(
            axes,
            Reducer {
                name: "sum",
                block: Arc::new(|v, axes, _| sum_block(v, axes)),
                columns: Some(Arc::new(|row| Box::new(ColumnSums::new(row)))),
                merge: by_element(T::num_add),
                finish: Arc::new(Ok),
            },
        )
    }

    /// The product over `axes`.
    pub fn prod_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce(
            axes,
            Reducer {
                name: "prod",
                block: Arc::new(|v, axes, _| {
                    fold_axes(
                        v,
                        axes,
                        T::one(),
                        |a, &x| T::num_mul(*a, x),
                        |a, b| T::num_mul(*a, *b),
                    )
                }),
                columns: None,
                merge: by_element(T::num_mul),
                finish: Arc::new(Ok),
            },
        )
    }

    /// The minimum over `axes`; NaN if any element is (`np.min`). An empty axis is an error.
    pub fn min_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.extreme(axes, "min", false)
    }

    /// The maximum over `axes`; NaN if any element is (`np.max`).
    pub fn max_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.extreme(axes, "max", false)
    }

    fn extreme(&self, axes: &[usize], name: &'static str, skip_nan: bool) -> Result<Array<T>> {
        self.nonempty(axes, name)?;
        let is_max = name.ends_with("max");
        let merge: fn(Option<T>, Option<T>) -> Option<T> = match (is_max, skip_nan) {
            (false, false) => |a, b| opt(a, b, super::kernels::nan_min),
            (true, false) => |a, b| opt(a, b, super::kernels::nan_max),
            (false, true) => |a, b| opt(a, b, skip_min),
            (true, true) => |a, b| opt(a, b, skip_max),
        };
        self.reduce(
            axes,
            Reducer {
                name,
                block: Arc::new(move |v, axes, _| {
                    if axes.len() == v.ndim()
                        && let Some(s) = v.as_slice()
                    {
                        let e = extreme_slice(s, is_max, skip_nan);
                        return ArrayD::from_elem(IxDyn(&vec![1; v.ndim()]), e);
                    }
                    fold_axes(
                        v,
                        axes,
                        None,
                        |a, &x| merge(*a, Some(x)),
                        |a, b| merge(*a, *b),
                    )
                }),
                columns: None,
                merge: by_element(merge),
                finish: Arc::new(|s: Option<T>| Ok(s.unwrap_or_default())),
            },
        )
    }

    /// The flat index (row-major, over the whole array) of the first minimum; the first NaN if
    /// any (`np.argmin`).
    pub fn argmin(&self) -> Result<Array<i64>> {
        self.arg(None, "argmin")
    }

    /// The flat index of the first maximum; the first NaN if any (`np.argmax`).
    pub fn argmax(&self) -> Result<Array<i64>> {
        self.arg(None, "argmax")
    }

    /// The index along `axis` of the first minimum (`np.argmin(x, axis)`).
    pub fn argmin_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg(Some(axis), "argmin")
    }

    /// The index along `axis` of the first maximum (`np.argmax(x, axis)`).
    pub fn argmax_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg(Some(axis), "argmax")
    }

    fn arg(&self, axis: Option<usize>, name: &'static str) -> Result<Array<i64>> {
        let axes = match axis {
            Some(a) => vec![a],
            None => self.all_axes(),
        };
        check_axes(&axes, self.shape(), name)?;
        self.nonempty(&axes, name)?;
        let skip_nan = name.starts_with("nan");
        let merge: fn(Candidate<T>, Candidate<T>) -> Candidate<T> =
            match (name.ends_with("min"), skip_nan) {
                (true, false) => |a, b| pick(a, b, |x, y| x < y, true),
                (false, false) => |a, b| pick(a, b, |x, y| x > y, true),
                (true, true) => |a, b| pick(a, b, |x, y| x < y, false),
                (false, true) => |a, b| pick(a, b, |x, y| x > y, false),
            };
        let flat = axis.is_none();
        self.reduce(
            &axes,
            Reducer {
                name,
                block: Arc::new(move |v, axes, pos| {
                    if flat {
                        let shape = v.shape().to_vec();
                        let mut best: Option<(T, i64)> = None;
                        for (local, &x) in v.iter().enumerate() {
                            best = merge(best, Some((x, local as i64)));
                        }
                        // local flat index to global flat index
                        let best = best.map(|(x, local)| {
                            let mut rest = local as usize;
                            let mut idx = vec![0; shape.len()];
                            for k in (0..shape.len()).rev() {
                                idx[k] = rest % shape[k].max(1);
                                rest /= shape[k].max(1);
                            }
                            let g = idx
                                .iter()
                                .zip(&pos.offset)
                                .zip(&pos.global)
                                .fold(0usize, |acc, ((i, o), n)| acc * n + i + o);
                            (x, g as i64)
                        });
                        ArrayD::from_elem(IxDyn(&vec![1; shape.len()]), best)
                    } else {
                        let a = axes[0];
                        let off = pos.offset[a] as i64;
                        v.map_axis(Axis(a), |lane| {
                            lane.iter()
                                .enumerate()
                                .fold(None, |b, (j, &x)| merge(b, Some((x, j as i64 + off))))
                        })
                        .insert_axis(Axis(a))
                    }
                }),
                columns: None,
                merge: by_element(merge),
                finish: Arc::new(move |s: Option<(T, i64)>| match s {
                    Some((x, _)) if skip_nan && x.is_nan_value() => {
                        Err(format!("{name}: an all-NaN slice has no index"))
                    }
                    s => Ok(s.map_or(0, |(_, i)| i)),
                }),
            },
        )
    }

    /// The cumulative sum along `axis` (`np.cumsum(x, axis)`): each block is summed on its
    /// own, and a chain of small tasks carries the running totals from block to block.
    pub fn cumsum(&self, axis: usize) -> Result<Array<T>> {
        self.check()?;
        check_axes(&[axis], self.shape(), "cumsum")?;
        let cluster = self.cluster().clone();
        let chunks = self.chunks().clone();
        let grid = chunks.grid();
        let mut out_tasks: Vec<Option<Delayed<Chunk>>> = vec![None; chunks.num_blocks()];
        for i in 0..chunks.num_blocks() {
            let m = chunks.block_index(i);
            if m[axis] != 0 {
                continue;
            }
            // walk this line of blocks along `axis`, carrying the totals
            let mut carry: Option<Delayed<ArrayD<T>>> = None;
            for j in 0..grid[axis] {
                let mut mj = m.clone();
                mj[axis] = j;
                let n = chunks.block_number(&mj);
                let shape = chunks.block_shape(n);
                let local = {
                    let shape = shape.clone();
                    super::then(&cluster, self.block_task(n), move |c| {
                        let mut a = block_view::<T>(&c, &shape)?.to_owned();
                        a.accumulate_axis_inplace(Axis(axis), |&prev, cur| {
                            *cur = T::num_add(*cur, prev)
                        });
                        Ok(a)
                    })
                    .label(&format!("array-cumsum-local[{}]", super::fmt_index(&mj)))
                };
                let last = shape[axis];
                let total = local.clone().map(move |a: ArrayD<T>| {
                    if last == 0 {
                        let mut s = a.shape().to_vec();
                        s[axis] = 1;
                        ArrayD::from_elem(IxDyn(&s), T::zero())
                    } else {
                        a.index_axis(Axis(axis), last - 1)
                            .insert_axis(Axis(axis))
                            .to_owned()
                    }
                });
                let out = match &carry {
                    None => local.map(|a| Arc::new(a) as Chunk),
                    Some(c) => local.zip(c.clone()).map(move |(mut a, c)| {
                        Zip::from(&mut a)
                            .and_broadcast(&c)
                            .for_each(|x, &y| *x = T::num_add(*x, y));
                        Arc::new(a) as Chunk
                    }),
                };
                carry = Some(match carry {
                    None => total,
                    Some(c) => c.zip(total).map(|(mut c, t)| {
                        Zip::from(&mut c)
                            .and(&t)
                            .for_each(|x, &y| *x = T::num_add(*x, y));
                        c
                    }),
                });
                out_tasks[n] = Some(out.label(&format!("array-cumsum[{}]", super::fmt_index(&mj))));
            }
        }
        let tasks = out_tasks
            .into_iter()
            .map(|t| {
                t.ok_or_else(|| Error::Invalid("internal error: cumsum missed a block".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Array::from_tasks(&cluster, chunks, tasks, "cumsum").with_fan_in(self.fan_in()))
    }

    all_axes_too! {
        /// The sum of all elements.
        sum => sum_axis;
        /// The product of all elements.
        prod => prod_axis;
        /// The minimum of all elements.
        min => min_axis;
        /// The maximum of all elements.
        max => max_axis;
    }
}

fn opt<T>(a: Option<T>, b: Option<T>, f: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The minimum or maximum of a slice in one pass; NaN if any element is NaN (unless
/// `skip_nan`); `None` for no element. The common case (no NaN) is a branch-free loop.
fn extreme_slice<T: Element>(s: &[T], is_max: bool, skip_nan: bool) -> Option<T> {
    let &first = s.first()?;
    let mut best = first;
    let mut nan = false;
    if is_max {
        for &x in s {
            nan |= x.is_nan_value();
            best = if x > best { x } else { best };
        }
    } else {
        for &x in s {
            nan |= x.is_nan_value();
            best = if x < best { x } else { best };
        }
    }
    if !nan {
        return Some(best);
    }
    let pick = if is_max { skip_max } else { skip_min };
    if skip_nan {
        // NaN first would have stuck: start again from the first non-NaN
        return Some(s.iter().copied().reduce(pick).unwrap_or(first));
    }
    s.iter().copied().find(|x| x.is_nan_value())
}

fn skip_min<T: Element>(a: T, b: T) -> T {
    if a.is_nan_value() || b < a { b } else { a }
}

fn skip_max<T: Element>(a: T, b: T) -> T {
    if a.is_nan_value() || b > a { b } else { a }
}

impl<T: Float> Array<T> {
    /// The mean over `axes` (NaN over an empty axis).
    pub fn mean_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        let axes_v = check_axes(axes, self.shape(), "mean")?;
        let n: usize = axes_v.iter().map(|&a| self.shape()[a]).product();
        let n = T::from(n).unwrap_or_else(T::nan);
        let s = self.sum_axis(axes)?;
        Ok((s / n).relabel_name("mean"))
    }

    /// The variance over `axes` with `ddof` delta degrees of freedom (divides by `n - ddof`;
    /// NaN when that is not positive).
    pub fn var_with(&self, axes: &[usize], ddof: usize) -> Result<Array<T>> {
        self.moments(axes, ddof, false, false, "var")
    }

    /// The standard deviation over `axes` with `ddof` delta degrees of freedom.
    pub fn std_with(&self, axes: &[usize], ddof: usize) -> Result<Array<T>> {
        self.moments(axes, ddof, false, true, "std")
    }

    /// The variance over `axes` (`ddof` 0, as NumPy).
    pub fn var_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.var_with(axes, 0)
    }

    /// The standard deviation over `axes` (`ddof` 0, as NumPy).
    pub fn std_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.std_with(axes, 0)
    }

    /// The mean and the standard deviation (with `ddof`) over `axes`, from one pass over the
    /// data: one tree of `(count, mean, M2)` partials serves both.
    pub fn mean_std_axis(&self, axes: &[usize], ddof: usize) -> Result<(Array<T>, Array<T>)> {
        let ddof = T::from(ddof).unwrap_or_else(T::zero);
        let (axes, out_keep, roots) = self.reduce_roots(
            axes,
            "moments",
            Arc::new(|v, axes, _| moments_block(v, axes, false)),
            Some(column_moments()),
            by_element(merge_moments),
        )?;
        let mean = self.finish_roots(
            &axes,
            &out_keep,
            roots.clone(),
            "mean",
            Arc::new(|m: Moments<T>| Ok(if m.n > T::zero() { m.mean } else { T::nan() })),
        );
        let std = self.finish_roots(
            &axes,
            &out_keep,
            roots,
            "std",
            Arc::new(move |m: Moments<T>| {
                let d = m.n - ddof;
                Ok(if d > T::zero() {
                    (m.m2 / d).sqrt()
                } else {
                    T::nan()
                })
            }),
        );
        Ok((mean, std))
    }

    /// The mean over `axes`, ignoring NaNs (NaN where all are NaN).
    pub fn nanmean_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.moments(axes, 0, true, false, "nanmean")
            .map(|m| m.relabel_name("nanmean"))
    }

    /// The variance over `axes`, ignoring NaNs.
    pub fn nanvar_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.moments(axes, 0, true, false, "nanvar")
    }

    /// The standard deviation over `axes`, ignoring NaNs.
    pub fn nanstd_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.moments(axes, 0, true, true, "nanstd")
    }

    /// The sum over `axes`, NaNs counted as 0.
    pub fn nansum_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce(
            axes,
            Reducer {
                name: "nansum",
                block: Arc::new(|v, axes, _| {
                    fold_axes(
                        v,
                        axes,
                        T::zero(),
                        |a, &x| if x.is_nan_value() { *a } else { *a + x },
                        |a, b| *a + *b,
                    )
                }),
                columns: None,
                merge: by_element(|a, b| a + b),
                finish: Arc::new(Ok),
            },
        )
    }

    /// The product over `axes`, NaNs counted as 1.
    pub fn nanprod_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.reduce(
            axes,
            Reducer {
                name: "nanprod",
                block: Arc::new(|v, axes, _| {
                    fold_axes(
                        v,
                        axes,
                        T::one(),
                        |a, &x| if x.is_nan_value() { *a } else { *a * x },
                        |a, b| *a * *b,
                    )
                }),
                columns: None,
                merge: by_element(|a, b| a * b),
                finish: Arc::new(Ok),
            },
        )
    }

    /// The flat index of the first minimum, ignoring NaNs (`np.nanargmin`); an all-NaN array
    /// is an error when computed.
    pub fn nanargmin(&self) -> Result<Array<i64>> {
        self.arg(None, "nanargmin")
    }

    /// The flat index of the first maximum, ignoring NaNs (`np.nanargmax`).
    pub fn nanargmax(&self) -> Result<Array<i64>> {
        self.arg(None, "nanargmax")
    }

    /// The index along `axis` of the first minimum, ignoring NaNs; an all-NaN slice is an
    /// error when computed.
    pub fn nanargmin_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg(Some(axis), "nanargmin")
    }

    /// The index along `axis` of the first maximum, ignoring NaNs.
    pub fn nanargmax_axis(&self, axis: usize) -> Result<Array<i64>> {
        self.arg(Some(axis), "nanargmax")
    }

    /// The minimum over `axes`, ignoring NaNs (NaN where all are NaN).
    pub fn nanmin_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.extreme(axes, "nanmin", true)
    }

    /// The maximum over `axes`, ignoring NaNs (NaN where all are NaN).
    pub fn nanmax_axis(&self, axes: &[usize]) -> Result<Array<T>> {
        self.extreme(axes, "nanmax", true)
    }

    fn moments(
        &self,
        axes: &[usize],
        ddof: usize,
        skip_nan: bool,
        sqrt: bool,
        name: &'static str,
    ) -> Result<Array<T>> {
        let ddof = T::from(ddof).unwrap_or_else(T::zero);
        let mean_only = name == "nanmean";
        self.reduce(
            axes,
            Reducer {
                name,
                block: Arc::new(move |v, axes, _| moments_block(v, axes, skip_nan)),
                columns: (!skip_nan).then(|| column_moments()),
                merge: by_element(merge_moments),
                finish: Arc::new(move |m: Moments<T>| {
                    if mean_only {
                        return Ok(if m.n > T::zero() { m.mean } else { T::nan() });
                    }
                    let d = m.n - ddof;
                    let var = if d > T::zero() { m.m2 / d } else { T::nan() };
                    Ok(if sqrt { var.sqrt() } else { var })
                }),
            },
        )
    }

    all_axes_too! {
        /// The mean of all elements.
        mean => mean_axis;
        /// The variance of all elements.
        var => var_axis;
        /// The standard deviation of all elements.
        std => std_axis;
        /// The mean of all non-NaN elements.
        nanmean => nanmean_axis;
        /// The variance of all non-NaN elements.
        nanvar => nanvar_axis;
        /// The standard deviation of all non-NaN elements.
        nanstd => nanstd_axis;
        /// The sum of all non-NaN elements.
        nansum => nansum_axis;
        /// The product of all non-NaN elements.
        nanprod => nanprod_axis;
        /// The minimum of all non-NaN elements.
        nanmin => nanmin_axis;
        /// The maximum of all non-NaN elements.
        nanmax => nanmax_axis;
    }
}

impl Array<bool> {
    /// True where any element over `axes` is true.
    pub fn any_axis(&self, axes: &[usize]) -> Result<Array<bool>> {
        self.reduce(
            axes,
            Reducer {
                name: "any",
                block: Arc::new(|v, axes, _| {
                    fold_axes(v, axes, false, |a, &x| *a || x, |a, b| *a || *b)
                }),
                columns: None,
                merge: by_element(|a, b| a || b),
                finish: Arc::new(Ok),
            },
        )
    }

    /// True where every element over `axes` is true.
    pub fn all_axis(&self, axes: &[usize]) -> Result<Array<bool>> {
        self.reduce(
            axes,
            Reducer {
                name: "all",
                block: Arc::new(|v, axes, _| {
                    fold_axes(v, axes, true, |a, &x| *a && x, |a, b| *a && *b)
                }),
                columns: None,
                merge: by_element(|a, b| a && b),
                finish: Arc::new(Ok),
            },
        )
    }

    /// True if any element is true (a 0-dimensional array).
    pub fn any(&self) -> Result<Array<bool>> {
        self.any_axis(&(0..self.ndim()).collect::<Vec<_>>())
    }

    /// True if every element is true (a 0-dimensional array).
    pub fn all(&self) -> Result<Array<bool>> {
        self.all_axis(&(0..self.ndim()).collect::<Vec<_>>())
    }
}

impl<T: Element> Array<T> {
    /// The same array under another name (its tasks' labels).
    pub(crate) fn relabel_name(self, name: &str) -> Array<T> {
        let chunks = self.chunks().clone();
        self.relabel(chunks, name)
    }
}
