//! Structure: rechunk, slicing, concatenate, stack, transpose, reshape, boolean masks.
//!
//! Operations that move elements between blocks build one *gather* task per output block: it
//! reads the input blocks it overlaps (computed once each, however many outputs share them)
//! and copies the needed pieces. An output block that is exactly one input block reuses that
//! block's kernel instead, so it stays fused with whatever comes next.

use std::collections::BTreeMap;
use std::ops::{Range, RangeFrom, RangeFull, RangeTo};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Slice, SliceInfoElem};

use super::chunks::{IntoChunks, boundaries, fmt_shape, regular_axis};
use super::create::size_mismatch;
use super::element::Element;
use super::kernels::{Chunk, Read, Source, chunk_array, internal, standard_strides};
use super::{Array, Block, Chunks, block_view, fmt_index, then};
use crate::error::{Error, Result};
use crate::graph::Delayed;

/// One index of a [`slice`](Array::slice): a range with a step, a single index (which drops
/// the axis) or a new axis of length 1.
///
/// Ranges follow ndarray's `s![]` rules: negative bounds count from the end; a negative step
/// walks the range backwards from its last element (`Idx::range(0, None, -1)` reverses the
/// axis). Unlike NumPy, a bound outside the axis is an error, not clipped. `s![...]`
/// from ndarray converts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idx {
    /// Elements `start..end` (`end` `None`: to the end) taking every `step`-th.
    Range {
        /// First index (negative: from the end).
        start: isize,
        /// One past the last index (negative: from the end; `None`: the axis length).
        end: Option<isize>,
        /// Not 0; negative walks backwards.
        step: isize,
    },
    /// One index (negative: from the end); the axis is dropped.
    Index(isize),
    /// A new axis of length 1.
    NewAxis,
}

impl Idx {
    /// The whole axis.
    pub const ALL: Idx = Idx::Range {
        start: 0,
        end: None,
        step: 1,
    };

    /// `start..end` by `step`.
    pub fn range(start: isize, end: Option<isize>, step: isize) -> Idx {
        Idx::Range { start, end, step }
    }
}

impl From<Range<usize>> for Idx {
    fn from(r: Range<usize>) -> Idx {
        Idx::range(r.start as isize, Some(r.end as isize), 1)
    }
}
impl From<RangeFrom<usize>> for Idx {
    fn from(r: RangeFrom<usize>) -> Idx {
        Idx::range(r.start as isize, None, 1)
    }
}
impl From<RangeTo<usize>> for Idx {
    fn from(r: RangeTo<usize>) -> Idx {
        Idx::range(0, Some(r.end as isize), 1)
    }
}
impl From<RangeFull> for Idx {
    fn from(_: RangeFull) -> Idx {
        Idx::ALL
    }
}
impl From<usize> for Idx {
    fn from(i: usize) -> Idx {
        Idx::Index(i as isize)
    }
}
impl From<isize> for Idx {
    fn from(i: isize) -> Idx {
        Idx::Index(i)
    }
}
impl From<i32> for Idx {
    fn from(i: i32) -> Idx {
        Idx::Index(i as isize)
    }
}
impl From<SliceInfoElem> for Idx {
    fn from(e: SliceInfoElem) -> Idx {
        match e {
            SliceInfoElem::Slice { start, end, step } => Idx::Range { start, end, step },
            SliceInfoElem::Index(i) => Idx::Index(i),
            SliceInfoElem::NewAxis => Idx::NewAxis,
        }
    }
}

/// A run of output elements along one axis taken from one input chunk.
#[derive(Debug, Clone, Copy)]
struct Seg {
    src_chunk: usize,
    first: usize,
    step: isize,
    count: usize,
    out: usize,
}

/// Along one axis: output index `j` is input index `start + step * j`; for each output chunk,
/// its runs.
fn axis_plan(
    src_chunks: &[usize],
    start: usize,
    step: isize,
    out_chunks: &[usize],
) -> Vec<Vec<Seg>> {
    let b = boundaries(src_chunks);
    let mut j = 0usize;
    let mut plans = Vec::with_capacity(out_chunks.len());
    for &len in out_chunks {
        let mut segs: Vec<Seg> = Vec::new();
        for o in 0..len {
            let s = (start as isize + step * (j as isize)) as usize;
            let c = b.partition_point(|&x| x <= s).saturating_sub(1);
            let local = s - b[c];
            match segs.last_mut() {
                Some(last) if last.src_chunk == c => last.count += 1,
                _ => segs.push(Seg {
                    src_chunk: c,
                    first: local,
                    step,
                    count: 1,
                    out: o,
                }),
            }
            j += 1;
        }
        plans.push(segs);
    }
    plans
}

/// How many selected indices fall in each input chunk (the natural output chunks).
fn natural_chunks(src_chunks: &[usize], start: usize, step: isize, count: usize) -> Vec<usize> {
    let b = boundaries(src_chunks);
    let mut out: Vec<(usize, usize)> = Vec::new();
    for j in 0..count {
        let s = (start as isize + step * (j as isize)) as usize;
        let c = b.partition_point(|&x| x <= s).saturating_sub(1);
        match out.last_mut() {
            Some((lc, n)) if *lc == c => *n += 1,
            _ => out.push((c, 1)),
        }
    }
    if out.is_empty() {
        vec![0]
    } else {
        out.into_iter().map(|(_, n)| n).collect()
    }
}

impl<T: Element> Array<T> {
    /// The general gather: along axis `k`, output index `j` is input index
    /// `starts[k] + steps[k] * j`, and the output is cut into `out`.
    fn gather(&self, starts: &[usize], steps: &[isize], out: Chunks, name: &str) -> Array<T> {
        let ndim = self.ndim();
        let plans: Vec<Vec<Vec<Seg>>> = (0..ndim)
            .map(|k| axis_plan(self.chunks.ax(k), starts[k], steps[k], out.ax(k)))
            .collect();
        let mut src_tasks: BTreeMap<usize, Delayed<Chunk>> = BTreeMap::new();
        let mut blocks = Vec::with_capacity(out.num_blocks());
        for i in 0..out.num_blocks() {
            let m = out.block_index(i);
            let bshape = out.block_shape(i);
            // the cartesian product of the runs of each axis
            let mut pieces: Vec<Vec<Seg>> = vec![vec![]];
            for k in 0..ndim {
                let segs = &plans[k][m[k]];
                pieces = pieces
                    .into_iter()
                    .flat_map(|p| {
                        segs.iter().map(move |s| {
                            let mut q = p.clone();
                            q.push(*s);
                            q
                        })
                    })
                    .collect();
            }
            if bshape.contains(&0) {
                pieces.clear();
            }
            // an output block that is exactly one input block keeps its kernel
            if let [p] = pieces.as_slice() {
                let src: Vec<usize> = p.iter().map(|s| s.src_chunk).collect();
                let sn = self.chunks.block_number(&src);
                if p.iter().all(|s| s.first == 0 && s.step == 1)
                    && self.chunks.block_shape(sn) == bshape
                {
                    blocks.push(self.blocks[sn].clone());
                    continue;
                }
            }
            let mut deps: Vec<usize> = Vec::new();
            let mut plan: Vec<(usize, Vec<Seg>)> = Vec::new();
            for p in pieces {
                let src: Vec<usize> = p.iter().map(|s| s.src_chunk).collect();
                let sn = self.chunks.block_number(&src);
                let pos = match deps.iter().position(|&d| d == sn) {
                    Some(pos) => pos,
                    None => {
                        deps.push(sn);
                        deps.len() - 1
                    }
                };
                plan.push((pos, p));
            }
            let dep_shapes: Vec<Vec<usize>> =
                deps.iter().map(|&d| self.chunks.block_shape(d)).collect();
            let dep_tasks: Vec<Delayed<Chunk>> = deps
                .iter()
                .map(|&d| {
                    src_tasks
                        .entry(d)
                        .or_insert_with(|| self.block_task(d))
                        .clone()
                })
                .collect();
            let shape = bshape.clone();
            let task = Delayed::combine(&self.cluster, dep_tasks, move |inputs| {
                let mut outb = ArrayD::<T>::default(IxDyn(&shape));
                for (pos, segs) in &plan {
                    let src = block_view::<T>(&inputs[*pos], &dep_shapes[*pos])?;
                    let piece = src.slice_each_axis(|ax| {
                        let s = segs[ax.axis.index()];
                        let last = s.first as isize + s.step * (s.count as isize - 1);
                        if s.step > 0 {
                            Slice::new(s.first as isize, Some(last + 1), s.step)
                        } else {
                            Slice::new(last, Some(s.first as isize + 1), s.step)
                        }
                    });
                    outb.slice_each_axis_mut(|ax| {
                        let s = segs[ax.axis.index()];
                        Slice::from(s.out..s.out + s.count)
                    })
                    .assign(&piece);
                }
                Ok(Arc::new(outb) as Chunk)
            })
            .label(&format!("array-{name}[{}]", fmt_index(&m)));
            blocks.push(Block::of_task(task, &bshape));
        }
        let mut a = Array::from_blocks(&self.cluster, out, blocks, name);
        a.fan_in = self.fan_in;
        a
    }

    /// The same array cut into new chunks (per-axis sizes, one size, or explicit
    /// [`Chunks`]). Blocks that do not change keep their (lazy) kernels.
    pub fn rechunk(&self, chunks: impl IntoChunks) -> Result<Array<T>> {
        self.check()?;
        let chunks = chunks.into_chunks(&self.shape)?;
        if chunks == self.chunks {
            return Ok(self.clone());
        }
        let n = self.ndim();
        Ok(self.gather(&vec![0; n], &vec![1; n], chunks, "rechunk"))
    }

    /// Rechunks only the axes where `chunks` differs (used to align operands).
    pub(crate) fn rechunk_axes(&self, axes: &[Option<Vec<usize>>]) -> Array<T> {
        let new: Vec<Vec<usize>> = (0..self.ndim())
            .map(|k| match &axes[k] {
                Some(c) => c.clone(),
                None => self.chunks.ax(k).to_vec(),
            })
            .collect();
        let new = Chunks::from_axes(new);
        if new == self.chunks {
            return self.clone();
        }
        let n = self.ndim();
        self.gather(&vec![0; n], &vec![1; n], new, "rechunk")
    }

    /// Selects with ranges, steps, single indices and new axes, like `x[1:5:2, 3, None]`.
    /// Axes not named are taken whole. The output's chunks follow the input's.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// use onebox::array::{Array, Idx};
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let x = Array::<i64>::arange(&cluster, 0, 20, 1, 6)?.reshape(&[4, 5])?;
    /// let y = x.slice(&[Idx::range(1, None, 2), Idx::Index(-1), Idx::NewAxis])?;
    /// assert_eq!(y.shape(), &[2, 1]);
    /// assert_eq!(y.compute()?.into_raw_vec_and_offset().0, vec![9, 19]);
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn slice(&self, index: &[Idx]) -> Result<Array<T>> {
        self.check()?;
        let used = index.iter().filter(|i| !matches!(i, Idx::NewAxis)).count();
        if used > self.ndim() {
            return Err(Error::Invalid(format!(
                "too many indices ({used}) for an array of shape {} ({} axes)",
                fmt_shape(&self.shape),
                self.ndim()
            )));
        }
        let n = self.ndim();
        let mut starts = vec![0; n];
        let mut steps = vec![1isize; n];
        let mut out_axes: Vec<Vec<usize>> = self.chunks.axes().to_vec();
        // final layout: per output axis, Some(source axis) or None (new axis)
        let mut layout: Vec<Option<usize>> = Vec::new();
        let mut axis = 0;
        for ix in index
            .iter()
            .copied()
            .chain(std::iter::repeat_n(Idx::ALL, n - used))
        {
            match ix {
                Idx::NewAxis => layout.push(None),
                Idx::Index(i) => {
                    let len = self.shape[axis] as isize;
                    let r = if i < 0 { i + len } else { i };
                    if r < 0 || r >= len {
                        return Err(Error::Invalid(format!(
                            "index {i} is out of bounds for axis {axis} with size {len} (shape {})",
                            fmt_shape(&self.shape)
                        )));
                    }
                    starts[axis] = r as usize;
                    out_axes[axis] = vec![1];
                    axis += 1;
                }
                Idx::Range { start, end, step } => {
                    let len = self.shape[axis] as isize;
                    let fix = |v: isize| if v < 0 { v + len } else { v };
                    let (s, e) = (fix(start), fix(end.unwrap_or(len)));
                    if step == 0 || s < 0 || e > len || s > e {
                        return Err(Error::Invalid(format!(
                            "slice {start}..{} step {step} is out of range for axis {axis} with size {len} (shape {})",
                            end.map_or(String::new(), |e| e.to_string()),
                            fmt_shape(&self.shape)
                        )));
                    }
                    let count = ((e - s) as usize).div_ceil(step.unsigned_abs());
                    let first = if step > 0 { s } else { e - 1 };
                    starts[axis] = if count == 0 { 0 } else { first as usize };
                    steps[axis] = step;
                    out_axes[axis] =
                        natural_chunks(self.chunks.ax(axis), starts[axis], step, count);
                    layout.push(Some(axis));
                    axis += 1;
                }
            }
        }
        let g = self.gather(
            &starts,
            &steps,
            Chunks::from_axes(out_axes.clone()),
            "slice",
        );
        let final_axes: Vec<Vec<usize>> = layout
            .iter()
            .map(|l| match l {
                Some(k) => out_axes[*k].clone(),
                None => vec![1],
            })
            .collect();
        Ok(g.relabel(Chunks::from_axes(final_axes), "slice"))
    }

    /// A new axis of length 1 at position `axis` (`np.expand_dims`); no data moves.
    pub fn expand_dims(&self, axis: usize) -> Result<Array<T>> {
        self.check()?;
        if axis > self.ndim() {
            return Err(Error::Invalid(format!(
                "expand_dims: axis {axis} is out of bounds for the result of {} axes (input shape {})",
                self.ndim() + 1,
                fmt_shape(&self.shape)
            )));
        }
        let mut axes = self.chunks.axes().to_vec();
        axes.insert(axis, vec![1]);
        Ok(self.relabel(Chunks::from_axes(axes), &self.name))
    }

    /// Removes axis `axis`, which must have length 1; no data moves.
    pub fn squeeze(&self, axis: usize) -> Result<Array<T>> {
        self.check()?;
        if axis >= self.ndim() || self.shape[axis] != 1 {
            return Err(Error::Invalid(format!(
                "squeeze: axis {axis} of shape {} is not an axis of length 1",
                fmt_shape(&self.shape)
            )));
        }
        let mut axes = self.chunks.axes().to_vec();
        axes.remove(axis);
        Ok(self.relabel(Chunks::from_axes(axes), &self.name))
    }

    /// Permutes the axes: axis `k` of the result is axis `perm[k]` of this array.
    pub fn permute_axes(&self, perm: &[usize]) -> Result<Array<T>> {
        self.check()?;
        let n = self.ndim();
        let mut seen = vec![false; n];
        if perm.len() != n
            || perm
                .iter()
                .any(|&p| p >= n || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::Invalid(format!(
                "axes {perm:?} are not a permutation of the {n} axes of an array of shape {}",
                fmt_shape(&self.shape)
            )));
        }
        let out = Chunks::from_axes(perm.iter().map(|&p| self.chunks.ax(p).to_vec()).collect());
        let blocks = (0..out.num_blocks())
            .map(|i| {
                let m = out.block_index(i);
                let mut s = vec![0; n];
                for k in 0..n {
                    s[perm[k]] = m[k];
                }
                let sn = self.chunks.block_number(&s);
                let src_strides = standard_strides(&self.chunks.block_shape(sn));
                let strides = perm.iter().map(|&p| src_strides[p]).collect();
                Block {
                    deps: vec![self.block_task(sn)],
                    kernel: Arc::new(Read::<T>::new(
                        Source::Input,
                        0,
                        strides,
                        out.block_shape(i),
                    )) as Arc<dyn super::kernels::Kernel<T>>,
                }
            })
            .collect();
        let mut a = Array::from_blocks(&self.cluster, out, blocks, "transpose");
        a.fan_in = self.fan_in;
        Ok(a)
    }

    /// The axes reversed (`x.T`); for a matrix, its transpose.
    pub fn t(&self) -> Array<T> {
        let perm: Vec<usize> = (0..self.ndim()).rev().collect();
        self.permute_axes(&perm)
            .unwrap_or_else(|e| Array::failed(&self.cluster, e.to_string()))
    }

    /// Cut along axis 0 into bands of whole rows (every other axis whole), of about `target`
    /// elements each: a band is a contiguous range of the row-major order.
    fn bands(&self, target: usize) -> Array<T> {
        if self.ndim() == 0 {
            return self.clone();
        }
        let row: usize = self.shape[1..].iter().product();
        let rows = target
            .checked_div(row)
            .map_or(self.shape[0].max(1), |r| r.max(1));
        let mut axes = vec![regular_axis(self.shape[0], rows)];
        axes.extend(self.shape[1..].iter().map(|&n| vec![n]));
        self.rechunk_axes(&axes.into_iter().map(Some).collect::<Vec<_>>())
    }

    /// The same elements in row-major order, with a new shape of the same size. The result
    /// is cut along its first axis into blocks about as large as this array's largest one.
    pub fn reshape(&self, shape: &[usize]) -> Result<Array<T>> {
        self.check()?;
        if shape.iter().product::<usize>() != self.len() {
            return Err(size_mismatch(&self.shape, shape));
        }
        if shape == self.shape.as_slice() {
            return Ok(self.clone());
        }
        let target = self.chunks.max_block_len().max(1);
        let mk_out = |shape: &[usize]| -> Chunks {
            if shape.is_empty() {
                return Chunks::from_axes(vec![]);
            }
            let row: usize = shape[1..].iter().product();
            let rows = target
                .checked_div(row)
                .map_or(shape[0].max(1), |r| r.max(1));
            let mut axes = vec![regular_axis(shape[0], rows)];
            axes.extend(shape[1..].iter().map(|&n| vec![n]));
            Chunks::from_axes(axes)
        };
        let out = mk_out(shape);
        if self.is_empty() {
            return Array::full(&self.cluster, shape, out, T::default());
        }
        let src = self.bands(target);
        // Each band, and each output block, is a contiguous range of the row-major order.
        let src_ranges: Vec<usize> = {
            let mut v = vec![0];
            for i in 0..src.num_blocks() {
                let n: usize = src.chunks.block_shape(i).iter().product();
                v.push(v[i] + n);
            }
            v
        };
        let mut src_tasks: BTreeMap<usize, Delayed<Chunk>> = BTreeMap::new();
        let mut blocks = Vec::new();
        let mut g0 = 0usize;
        for i in 0..out.num_blocks() {
            let bshape = out.block_shape(i);
            let n: usize = bshape.iter().product();
            let g1 = g0 + n;
            let first = src_ranges.partition_point(|&x| x <= g0).saturating_sub(1);
            let mut pieces = Vec::new();
            let mut deps = Vec::new();
            let mut b = first;
            while b < src.num_blocks() && src_ranges[b] < g1 {
                let lo = g0.max(src_ranges[b]);
                let hi = g1.min(src_ranges[b + 1]);
                if hi > lo {
                    pieces.push((deps.len(), lo - src_ranges[b], hi - lo, lo - g0));
                    deps.push(
                        src_tasks
                            .entry(b)
                            .or_insert_with(|| src.block_task(b))
                            .clone(),
                    );
                }
                b += 1;
            }
            let shape = bshape.clone();
            let task = Delayed::combine(&self.cluster, deps, move |inputs| {
                let mut v = vec![T::default(); n];
                for &(pos, from, len, to) in &pieces {
                    let a = chunk_array::<T>(&inputs[pos])?;
                    let s = a
                        .as_slice()
                        .and_then(|s| s.get(from..from + len))
                        .ok_or_else(|| internal("reshape: a band is smaller than expected"))?;
                    v[to..to + len].copy_from_slice(s);
                }
                let a = ArrayD::from_shape_vec(IxDyn(&shape), v)
                    .map_err(|e| internal(e.to_string()))?;
                Ok(Arc::new(a) as Chunk)
            })
            .label(&format!("array-reshape[{i}]"));
            blocks.push(Block::of_task(task, &bshape));
            g0 = g1;
        }
        let mut a = Array::from_blocks(&self.cluster, out, blocks, "reshape");
        a.fan_in = self.fan_in;
        Ok(a)
    }

    /// The elements where `mask` is true, in row-major order, as a 1-D array (`x[mask]`).
    /// `mask` must have this array's shape. The output's length is not known in advance: this
    /// computes the mask's counts per block now (one pass over the mask), the selection stays
    /// lazy.
    pub fn mask(&self, mask: &Array<bool>) -> Result<Array<T>> {
        self.check()?;
        mask.check()?;
        if mask.shape() != self.shape() {
            return Err(Error::Invalid(format!(
                "boolean mask of shape {} does not match the array's shape {}",
                fmt_shape(mask.shape()),
                fmt_shape(&self.shape)
            )));
        }
        let n = self.len();
        let flat = self.reshape(&[n])?;
        let m = mask.reshape(&[n])?.rechunk(flat.chunks().clone())?;
        let counts: Vec<usize> = Delayed::join_all(
            &self.cluster,
            m.block_tasks()
                .into_iter()
                .map(|t| {
                    then(&self.cluster, t, |c| {
                        chunk_array::<bool>(&c).map(|a| a.iter().filter(|&&b| b).count())
                    })
                })
                .collect(),
        )
        .compute()?;
        let mut sizes = Vec::new();
        let mut blocks = Vec::new();
        for (i, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let task = Delayed::combine(
                &self.cluster,
                vec![flat.block_task(i), m.block_task(i)],
                move |inputs| {
                    let x = chunk_array::<T>(&inputs[0])?;
                    let k = chunk_array::<bool>(&inputs[1])?;
                    let v: Vec<T> = x
                        .iter()
                        .zip(k)
                        .filter(|(_, k)| **k)
                        .map(|(x, _)| *x)
                        .collect();
                    if v.len() != count {
                        return Err(internal("mask: the mask changed between passes"));
                    }
                    Ok(Arc::new(
                        ArrayD::from_shape_vec(IxDyn(&[count]), v)
                            .map_err(|e| internal(e.to_string()))?,
                    ) as Chunk)
                },
            )
            .label(&format!("array-mask[{i}]"));
            sizes.push(count);
            blocks.push(Block::of_task(task, &[count]));
        }
        if blocks.is_empty() {
            return Array::full(&self.cluster, [0], [1], T::default());
        }
        let mut a = Array::from_blocks(
            &self.cluster,
            Chunks::from_axes(vec![sizes]),
            blocks,
            "mask",
        );
        a.fan_in = self.fan_in;
        Ok(a)
    }

    /// Joins arrays along an existing axis (`np.concatenate`). Every other axis must have the
    /// same length; their chunks are aligned to the first array's.
    pub fn concatenate(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("concatenate needs at least one array".into()))?;
        for a in arrays {
            a.check()?;
        }
        let n = first.ndim();
        if axis >= n {
            return Err(Error::Invalid(format!(
                "concatenate: axis {axis} is out of bounds for arrays of shape {} ({n} axes)",
                fmt_shape(first.shape())
            )));
        }
        for a in arrays {
            let ok = a.ndim() == n && (0..n).all(|k| k == axis || a.shape[k] == first.shape[k]);
            if !ok {
                return Err(Error::Invalid(format!(
                    "concatenate along axis {axis}: shapes {} and {} differ on another axis",
                    fmt_shape(first.shape()),
                    fmt_shape(a.shape())
                )));
            }
        }
        let target: Vec<Option<Vec<usize>>> = (0..n)
            .map(|k| (k != axis).then(|| first.chunks.ax(k).to_vec()))
            .collect();
        let parts: Vec<Array<T>> = arrays
            .iter()
            .filter(|a| a.shape[axis] > 0)
            .map(|a| a.rechunk_axes(&target))
            .collect();
        if parts.is_empty() {
            return Ok(first.clone());
        }
        let mut axes = first.chunks.axes().to_vec();
        axes[axis] = parts
            .iter()
            .flat_map(|p| p.chunks.ax(axis).to_vec())
            .collect();
        let out = Chunks::from_axes(axes);
        // which part and which of its blocks along `axis`
        let owner: Vec<(usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, a)| (0..a.chunks.ax(axis).len()).map(move |j| (p, j)))
            .collect();
        let blocks = (0..out.num_blocks())
            .map(|i| {
                let mut m = out.block_index(i);
                let (p, j) = owner[m[axis]];
                m[axis] = j;
                parts[p].blocks[parts[p].chunks.block_number(&m)].clone()
            })
            .collect();
        let mut a = Array::from_blocks(&first.cluster, out, blocks, "concatenate");
        a.fan_in = first.fan_in;
        Ok(a)
    }

    /// Stacks arrays of one shape along a new axis (`np.stack`).
    pub fn stack(arrays: &[Array<T>], axis: usize) -> Result<Array<T>> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("stack needs at least one array".into()))?;
        for a in arrays {
            if a.shape() != first.shape() {
                return Err(Error::Invalid(format!(
                    "stack: all arrays must have one shape, got {} and {}",
                    fmt_shape(first.shape()),
                    fmt_shape(a.shape())
                )));
            }
        }
        let expanded = arrays
            .iter()
            .map(|a| a.expand_dims(axis))
            .collect::<Result<Vec<_>>>()?;
        Array::concatenate(&expanded, axis).map(|a| a.relabel(a.chunks.clone(), "stack"))
    }
}
