//! Per-block kernels: the fused expression a block task evaluates.
//!
//! A lazy array's block is a small expression tree (a *kernel*) over the outputs of the
//! tasks it depends on (its *inputs*, materialized chunks) and over generators (random
//! numbers, `arange`, constants). Evaluating a block walks the tree over **tiles** of
//! 2048 elements in the block's row-major order: each node fills a tile-sized buffer
//! from its children and applies its operation, so a chain such as `((x - m) / s).exp()` is
//! one pass over the block with a few L1-resident buffers, never a temporary array per
//! operation.
//!
//! Every operation is named by an enum ([`UnaryOp`], [`BinaryOp`], [`CmpOp`]) next to its CPU
//! implementation over slices, so that another backend (a GPU) can translate the same tree.

use std::any::Any;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::element::{Element, Float, Numeric};
use super::gpu::{GpuLeaf, translate};
use crate::error::{Error, TaskFailure};
use crate::gpu::Expr;

/// A materialized block, type-erased so that one task graph can carry blocks of any element
/// type: always an `ndarray::ArrayD<T>` in standard (row-major, contiguous) layout.
pub(crate) type Chunk = Arc<dyn Any + Send + Sync>;

/// Elements per tile.
pub(crate) const TILE: usize = 2048;

pub(crate) fn internal(msg: impl Into<String>) -> TaskFailure {
    TaskFailure::Error(Arc::new(Error::Invalid(msg.into())))
}

/// The `ArrayD<T>` inside a chunk.
pub(crate) fn chunk_array<T: Element>(c: &Chunk) -> Result<&ArrayD<T>, TaskFailure> {
    c.downcast_ref::<ArrayD<T>>().ok_or_else(|| {
        internal(format!(
            "a block of {} was expected but another element type was found",
            T::DTYPE
        ))
    })
}

/// Wraps an array as a chunk, converting it to standard layout first if needed.
pub(crate) fn to_chunk<T: Element>(a: ArrayD<T>) -> Chunk {
    if a.is_standard_layout() {
        Arc::new(a)
    } else {
        Arc::new(a.as_standard_layout().into_owned())
    }
}

/// The shortest run of elements [`Kernel::lend`] hands out: shorter lanes are copied into a
/// tile instead (one call of an operation per few elements would cost more than the copy).
pub(crate) const LEND_MIN: usize = 64;

/// The tree a block evaluates, tile by tile.
pub(crate) trait Kernel<T>: Send + Sync {
    /// How many task inputs the leaves of this tree read, in order.
    fn arity(&self) -> usize;
    /// Writes the block's elements `start..start + out.len()` (row-major) into `out`.
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure>;
    /// True when this kernel is its single input, whole and unchanged.
    fn passthrough(&self) -> bool {
        false
    }
    /// Hands the elements `start..start + len` to `f` where they lie, lane by lane along the
    /// last axis (`f(position in the range, run)`; lanes of at least [`LEND_MIN`] elements,
    /// cut only where the range starts and ends), and returns true; or calls nothing and
    /// returns false (computed values, strided or short lanes, and contiguous reads, which
    /// [`Kernel::slice`] hands out in one piece). After an error, what `f` was
    /// given is incomplete. Lets an operation read a broadcast row in place instead of
    /// copying it into every tile.
    fn lend(
        &self,
        inputs: &[Chunk],
        start: usize,
        len: usize,
        f: &mut dyn FnMut(usize, &[T]),
    ) -> Result<bool, TaskFailure> {
        let _ = (inputs, start, len, f);
        Ok(false)
    }
    /// Its elements `start..start + len` where they lie, when this kernel is a contiguous
    /// read; `None` otherwise. Lets an operation read its operand in place instead of copying
    /// it into a tile.
    fn slice<'a>(
        &'a self,
        inputs: &'a [Chunk],
        start: usize,
        len: usize,
    ) -> Result<Option<&'a [T]>, TaskFailure> {
        let _ = (inputs, start, len);
        Ok(None)
    }
    /// Pushes the memory this kernel reads from its inputs in order, as `(address, bytes)`
    /// ranges, to compute its elements `start..start + len`: for [`Ahead`]. Only contiguous
    /// reads are listed; leaves that compute their values, or re-read a row in cache, add
    /// nothing.
    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        let _ = (inputs, start, len, out);
    }
    /// True when this kernel is the transpose of its single input, a whole 2-D block (so that
    /// a consumer can read the input through a transposed view instead).
    fn transposes_input(&self) -> bool {
        false
    }
    /// A short description of the tree (for debugging and other backends).
    fn describe(&self) -> String {
        "kernel".into()
    }
    /// This node as a GPU expression, its children translated with
    /// [`translate`](super::gpu::translate) (their inputs start at task input `first`); `None`
    /// when the node has no GPU equivalent, and then the caller computes it on the CPU as a
    /// leaf. A node returns `None` before translating any child.
    fn gpu_expr(&self, first: usize, leaves: &mut Vec<GpuLeaf<T>>) -> Option<Expr> {
        let _ = (first, leaves);
        None
    }
}

/// Evaluates a block of `shape` into a chunk.
pub(crate) fn eval_block<T: Element>(
    kernel: &dyn Kernel<T>,
    inputs: &[Chunk],
    shape: &[usize],
) -> Result<Chunk, TaskFailure> {
    if kernel.passthrough()
        && let Some(c) = inputs.first()
    {
        return Ok(c.clone());
    }
    let n: usize = shape.iter().product();
    let mut v = vec![T::default(); n];
    let mut start = 0;
    while start < n {
        let end = (start + TILE).min(n);
        kernel.eval(inputs, start, &mut v[start..end])?;
        start = end;
    }
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| internal(e.to_string()))?;
    Ok(Arc::new(a))
}

/// Prefetches, a cache line at a time, the memory a kernel will read for the elements it
/// computes next, so that a reduction's passes over the elements in cache overlap the loads
/// of the next ones (hardware prefetchers follow a sequential read, but not across a pass that
/// reads nothing new).
#[derive(Default)]
pub(crate) struct Ahead {
    /// Byte ranges (address, length) still to prefetch, and the offset reached in the first.
    ranges: Vec<(usize, usize)>,
    at: usize,
    offset: usize,
}

/// The cache line size of the machines onebox targets.
const LINE: usize = 64;

impl Ahead {
    /// Plans the prefetch of what `kernel` reads for its elements `start..start + len`,
    /// forgetting what was left of the plan before.
    pub(crate) fn plan<T: Element>(
        &mut self,
        kernel: &dyn Kernel<T>,
        inputs: &[Chunk],
        start: usize,
        len: usize,
    ) {
        self.ranges.clear();
        (self.at, self.offset) = (0, 0);
        kernel.reads(inputs, start, len, &mut self.ranges);
    }

    /// Prefetches the next cache line of the plan (into the L2 cache), if any is left.
    #[inline]
    pub(crate) fn step(&mut self) {
        let Some(&(addr, len)) = self.ranges.get(self.at) else {
            return;
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint with no architectural effect; it never faults, whatever
        // the address (here always inside a live input block).
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T1>((addr + self.offset) as *const i8);
        }
        self.offset += LINE;
        if self.offset >= len {
            (self.at, self.offset) = (self.at + 1, 0);
        }
    }
}

thread_local! {
    /// A block-sized buffer per pool thread, reused by the blocks that reductions evaluate
    /// and drop at once (no fresh pages to fault in and zero for every block).
    static SCRATCH: std::cell::RefCell<Option<Box<dyn Any>>> = const { std::cell::RefCell::new(None) };
}

/// Evaluates the part of a block that starts at flat position `start` and has `shape` (the
/// whole block, or a range of its first axis) into this thread's scratch buffer and calls `f`
/// with a view of it (or of the input itself, for a kernel that passes its input through).
pub(crate) fn with_block<T: Element, R>(
    kernel: &dyn Kernel<T>,
    inputs: &[Chunk],
    start: usize,
    shape: &[usize],
    f: impl FnOnce(ndarray::ArrayViewD<'_, T>) -> R,
) -> Result<R, TaskFailure> {
    fn view<'a, T>(shape: &[usize], s: &'a [T]) -> Result<ndarray::ArrayViewD<'a, T>, TaskFailure> {
        ndarray::ArrayViewD::from_shape(IxDyn(shape), s).map_err(|e| internal(e.to_string()))
    }
    let n: usize = shape.iter().product();
    if kernel.passthrough()
        && let Some(c) = inputs.first()
    {
        let a = chunk_array::<T>(c)?;
        let s = a
            .as_slice()
            .and_then(|s| s.get(start..start + n))
            .ok_or_else(|| internal("a block is not in standard layout"))?;
        return Ok(f(view(shape, s)?));
    }
    let mut buf: Vec<T> = SCRATCH
        .with(|s| s.borrow_mut().take())
        .and_then(|b| b.downcast::<Vec<T>>().ok())
        .map(|b| *b)
        .unwrap_or_default();
    if buf.len() > n {
        buf.truncate(n);
    } else {
        buf.resize(n, T::default());
    }
    let mut at = 0;
    while at < n {
        let end = (at + TILE).min(n);
        kernel.eval(inputs, start + at, &mut buf[at..end])?;
        at = end;
    }
    let r = f(view(shape, &buf)?);
    SCRATCH.with(|s| *s.borrow_mut() = Some(Box::new(buf)));
    Ok(r)
}

/// Calls `f(index_of_lane_start, offset_in_tile, count)` for each run of a row-major walk
/// over `shape` from flat position `start` for `len` elements, a run never crossing the
/// last axis.
pub(crate) fn for_each_lane(
    shape: &[usize],
    start: usize,
    len: usize,
    mut f: impl FnMut(&[usize], usize, usize),
) {
    if shape.is_empty() {
        if len > 0 {
            f(&[], 0, len.min(1));
        }
        return;
    }
    let last = shape.len() - 1;
    let mut idx = vec![0; shape.len()];
    let mut rest = start;
    for k in (0..shape.len()).rev() {
        if shape[k] == 0 {
            return;
        }
        idx[k] = rest % shape[k];
        rest /= shape[k];
    }
    let mut done = 0;
    while done < len {
        let count = (shape[last] - idx[last]).min(len - done);
        f(&idx, done, count);
        done += count;
        idx[last] += count;
        let mut k = last;
        while idx[k] == shape[k] && k > 0 {
            idx[k] = 0;
            k -= 1;
            idx[k] += 1;
        }
    }
}

/// Row-major strides of `shape`.
pub(crate) fn standard_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1].max(1);
    }
    s
}

/// Where a [`Read`] leaf takes its elements from.
pub(crate) enum Source<T> {
    /// The kernel's task input 0.
    Input,
    /// An array held by the graph itself (`Array::from_ndarray`).
    Owned(Arc<ArrayD<T>>),
}

/// A leaf reading a strided window of a contiguous array: the identity, a region of a
/// larger array, a broadcast (stride 0) or a transposition (permuted strides).
pub(crate) struct Read<T> {
    source: Source<T>,
    base: usize,
    strides: Vec<usize>,
    shape: Vec<usize>,
    contiguous: bool,
    whole: bool,
}

impl<T: Element> Read<T> {
    pub(crate) fn new(
        source: Source<T>,
        base: usize,
        strides: Vec<usize>,
        shape: Vec<usize>,
    ) -> Self {
        let contiguous = strides
            .iter()
            .zip(standard_strides(&shape))
            .zip(&shape)
            .all(|((&a, b), &n)| a == b || n <= 1);
        let whole = contiguous && base == 0 && matches!(source, Source::Input);
        Read {
            source,
            base,
            strides,
            shape,
            contiguous,
            whole,
        }
    }

    /// The whole of input 0, of `shape`.
    pub(crate) fn input(shape: &[usize]) -> Self {
        Self::new(Source::Input, 0, standard_strides(shape), shape.to_vec())
    }

    /// The elements this read takes from, in standard layout.
    fn data<'a>(&'a self, inputs: &'a [Chunk]) -> Result<&'a [T], TaskFailure> {
        let src: &ArrayD<T> = match &self.source {
            Source::Input => chunk_array(
                inputs
                    .first()
                    .ok_or_else(|| internal("missing block input"))?,
            )?,
            Source::Owned(a) => a,
        };
        src.as_slice()
            .ok_or_else(|| internal("a block is not in standard layout"))
    }

    /// Where the element at index `idx` of this read lies in its data.
    fn offset(&self, idx: &[usize]) -> usize {
        self.base
            + idx
                .iter()
                .zip(&self.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
    }
}

impl<T: Element> Kernel<T> for Read<T> {
    fn describe(&self) -> String {
        match self.source {
            Source::Input => format!("read(input, strides={:?})", self.strides),
            Source::Owned(_) => "read(ndarray)".into(),
        }
    }
    fn arity(&self) -> usize {
        match self.source {
            Source::Input => 1,
            Source::Owned(_) => 0,
        }
    }

    fn passthrough(&self) -> bool {
        self.whole
    }

    fn transposes_input(&self) -> bool {
        matches!(self.source, Source::Input)
            && self.base == 0
            && self.shape.len() == 2
            && self.strides == [1, self.shape[0]]
    }

    fn lend(
        &self,
        inputs: &[Chunk],
        start: usize,
        len: usize,
        f: &mut dyn FnMut(usize, &[T]),
    ) -> Result<bool, TaskFailure> {
        // Lanes of a broadcast read (some stride 0), which re-reads rows in cache; a
        // contiguous read is one piece, handed out by `slice`.
        let broadcast = self.strides.contains(&0);
        let long_lanes = self.shape.last().is_some_and(|&n| n >= LEND_MIN);
        if self.contiguous || !broadcast || self.strides.last() != Some(&1) || !long_lanes {
            return Ok(false);
        }
        let data = self.data(inputs)?;
        let mut bad = false;
        for_each_lane(&self.shape, start, len, |idx, o, count| {
            let off = self.offset(idx);
            match data.get(off..off + count) {
                Some(run) if !bad => f(o, run),
                _ => bad = true,
            }
        });
        if bad {
            return Err(internal("a block read went out of bounds"));
        }
        Ok(true)
    }

    fn slice<'a>(
        &'a self,
        inputs: &'a [Chunk],
        start: usize,
        len: usize,
    ) -> Result<Option<&'a [T]>, TaskFailure> {
        if !self.contiguous {
            return Ok(None);
        }
        let from = self.base + start;
        let data = self.data(inputs)?;
        data.get(from..from + len)
            .map(Some)
            .ok_or_else(|| internal("a block read went out of bounds"))
    }

    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        if let Ok(Some(s)) = self.slice(inputs, start, len) {
            out.push((s.as_ptr() as usize, std::mem::size_of_val(s)));
        }
    }

    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        let data = self.data(inputs)?;
        let oob = || internal("a block read went out of bounds");
        if self.contiguous {
            let from = self.base + start;
            let s = data.get(from..from + out.len()).ok_or_else(oob)?;
            out.copy_from_slice(s);
            return Ok(());
        }
        let last_stride = self.strides.last().copied().unwrap_or(0);
        let mut bad = false;
        for_each_lane(&self.shape, start, out.len(), |idx, o, count| {
            let off = self.offset(idx);
            let dst = &mut out[o..o + count];
            match last_stride {
                1 => match data.get(off..off + count) {
                    Some(s) => dst.copy_from_slice(s),
                    None => bad = true,
                },
                0 => match data.get(off) {
                    Some(&v) => dst.fill(v),
                    None => bad = true,
                },
                s => {
                    if off + (count.saturating_sub(1)) * s >= data.len() {
                        bad = true;
                        return;
                    }
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = data[off + j * s];
                    }
                }
            }
        });
        if bad { Err(oob()) } else { Ok(()) }
    }
}

/// A constant.
pub(crate) struct Fill<T>(pub(crate) T);

impl<T: Element> Kernel<T> for Fill<T> {
    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
    fn arity(&self) -> usize {
        0
    }
    fn eval(&self, _: &[Chunk], _: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        out.fill(self.0);
        Ok(())
    }
    fn gpu_expr(&self, _: usize, _: &mut Vec<GpuLeaf<T>>) -> Option<Expr> {
        let v: &dyn Any = &self.0;
        v.downcast_ref::<f64>()
            .copied()
            .or_else(|| v.downcast_ref::<f32>().map(|&x| f64::from(x)))
            .map(Expr::Const)
    }
}

/// A generator of runs of consecutive global flat indices: `f(first_flat_index, out)`.
pub(crate) type FlatFn<T> = Arc<dyn Fn(u64, &mut [T]) + Send + Sync>;

/// A leaf computed from each element's flat index in the whole array (random numbers,
/// `arange`, `linspace`): the same values whatever the chunking.
pub(crate) struct FlatGen<T> {
    pub(crate) offset: Vec<usize>,
    pub(crate) shape: Vec<usize>,
    pub(crate) global_strides: Vec<usize>,
    pub(crate) f: FlatFn<T>,
}

impl<T: Element> Kernel<T> for FlatGen<T> {
    fn describe(&self) -> String {
        "generate".into()
    }
    fn arity(&self) -> usize {
        0
    }
    fn eval(&self, _: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        for_each_lane(&self.shape, start, out.len(), |idx, o, count| {
            let g: usize = idx
                .iter()
                .zip(&self.offset)
                .zip(&self.global_strides)
                .map(|((i, off), s)| (i + off) * s)
                .sum();
            (self.f)(g as u64, &mut out[o..o + count]);
        });
        Ok(())
    }
}

/// A function of the global multi-index.
pub(crate) type IndexFn<T> = Arc<dyn Fn(&[usize]) -> T + Send + Sync>;

/// A leaf computed from each element's index in the whole array (`from_fn`, `eye`).
pub(crate) struct IndexGen<T> {
    pub(crate) offset: Vec<usize>,
    pub(crate) shape: Vec<usize>,
    pub(crate) f: IndexFn<T>,
}

impl<T: Element> Kernel<T> for IndexGen<T> {
    fn arity(&self) -> usize {
        0
    }
    fn eval(&self, _: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        let mut g = vec![0; self.shape.len()];
        for_each_lane(&self.shape, start, out.len(), |idx, o, count| {
            for (k, (i, off)) in idx.iter().zip(&self.offset).enumerate() {
                g[k] = i + off;
            }
            for d in &mut out[o..o + count] {
                *d = (self.f)(&g);
                if let Some(l) = g.last_mut() {
                    *l += 1;
                }
            }
        });
        Ok(())
    }
}

/// A slice function of one tile.
pub(crate) type MapFn<A, U> = Arc<dyn Fn(&[A], &mut [U]) + Send + Sync>;

/// One child, one slice function (unary math, casts, user maps).
pub(crate) struct Map1<A, U> {
    pub(crate) child: Arc<dyn Kernel<A>>,
    pub(crate) f: MapFn<A, U>,
}

impl<A: Element, U: Element> Kernel<U> for Map1<A, U> {
    fn describe(&self) -> String {
        format!("map({})", self.child.describe())
    }
    fn arity(&self) -> usize {
        self.child.arity()
    }
    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        self.child.reads(inputs, start, len, out);
    }
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [U]) -> Result<(), TaskFailure> {
        with_scratch(out.len(), |buf: &mut [A]| {
            self.child.eval(inputs, start, buf)?;
            (self.f)(buf, out);
            Ok(())
        })
    }
}

/// An in-place slice function of one tile.
pub(crate) type InPlaceFn<T> = Arc<dyn Fn(&mut [T]) + Send + Sync>;

/// One child, transformed in place (same element type: no buffer at all).
pub(crate) struct MapInPlace<T> {
    pub(crate) child: Arc<dyn Kernel<T>>,
    pub(crate) f: InPlaceFn<T>,
    /// What `f` computes, for backends that translate the tree.
    pub(crate) op: InPlaceOp,
}

/// What a [`MapInPlace`] computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum InPlaceOp {
    /// A float [`UnaryOp`].
    Unary(UnaryOp),
    /// The absolute value.
    Abs,
    /// The negation.
    Neg,
    /// Something else (no GPU equivalent).
    Other,
}

/// A float unary operation as a GPU expression of `x`, where the GPU has it.
pub(crate) fn unary_expr(op: UnaryOp, x: Expr) -> Option<Expr> {
    Some(match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Ln => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Recip => Expr::Const(1.0) / x,
        UnaryOp::Powi(n) => x.pow(f64::from(n)),
        UnaryOp::Powf(p) => x.pow(p),
        _ => return None,
    })
}

impl<T: Element> Kernel<T> for MapInPlace<T> {
    fn describe(&self) -> String {
        format!("map({})", self.child.describe())
    }
    fn arity(&self) -> usize {
        self.child.arity()
    }
    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        self.child.reads(inputs, start, len, out);
    }
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        self.child.eval(inputs, start, out)?;
        (self.f)(out);
        Ok(())
    }
    fn gpu_expr(&self, first: usize, leaves: &mut Vec<GpuLeaf<T>>) -> Option<Expr> {
        let op: fn(Expr) -> Option<Expr> = match self.op {
            InPlaceOp::Unary(u) => {
                // checked before the child is translated
                unary_expr(u, Expr::Const(1.0))?;
                return unary_expr(u, translate(&self.child, first, leaves));
            }
            InPlaceOp::Abs => |x| Some(x.abs()),
            InPlaceOp::Neg => |x| Some(-x),
            InPlaceOp::Other => return None,
        };
        op(translate(&self.child, first, leaves))
    }
}

/// A slice function of two tiles.
pub(crate) type ZipFn<A, B, U> = Arc<dyn Fn(&[A], &[B], &mut [U]) + Send + Sync>;

/// Two children (binary arithmetic, comparisons, logic).
pub(crate) struct Zip2<A, B, U> {
    pub(crate) a: Arc<dyn Kernel<A>>,
    pub(crate) b: Arc<dyn Kernel<B>>,
    pub(crate) f: ZipFn<A, B, U>,
}

impl<A: Element, B: Element, U: Element> Kernel<U> for Zip2<A, B, U> {
    fn describe(&self) -> String {
        format!("zip({}, {})", self.a.describe(), self.b.describe())
    }
    fn arity(&self) -> usize {
        self.a.arity() + self.b.arity()
    }
    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        reads_of_two(&*self.a, &*self.b, inputs, start, len, out);
    }
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [U]) -> Result<(), TaskFailure> {
        let (ia, ib) = split(inputs, self.a.arity())?;
        with_scratch(out.len(), |x: &mut [A]| {
            with_scratch(out.len(), |y: &mut [B]| {
                self.a.eval(ia, start, x)?;
                self.b.eval(ib, start, y)?;
                (self.f)(x, y, out);
                Ok(())
            })
        })
    }
}

/// Same-type binary operation, written into the output tile in place.
pub(crate) struct Binary<T> {
    pub(crate) a: Arc<dyn Kernel<T>>,
    pub(crate) b: Arc<dyn Kernel<T>>,
    pub(crate) op: BinaryOp,
    pub(crate) f: BinaryFns<T>,
}

impl<T: Element> Kernel<T> for Binary<T> {
    fn arity(&self) -> usize {
        self.a.arity() + self.b.arity()
    }
    fn describe(&self) -> String {
        format!(
            "{:?}({}, {})",
            self.op,
            self.a.describe(),
            self.b.describe()
        )
    }
    fn gpu_expr(&self, first: usize, leaves: &mut Vec<GpuLeaf<T>>) -> Option<Expr> {
        let f: fn(Expr, Expr) -> Expr = match self.op {
            BinaryOp::Add => |a, b| a + b,
            BinaryOp::Sub => |a, b| a - b,
            BinaryOp::Mul => |a, b| a * b,
            BinaryOp::Div => |a, b| a / b,
            BinaryOp::Pow => Expr::pow,
            BinaryOp::Max => Expr::max,
            BinaryOp::Min => Expr::min,
            BinaryOp::Rem => return None,
        };
        let a = translate(&self.a, first, leaves);
        let b = translate(&self.b, first + self.a.arity(), leaves);
        Some(f(a, b))
    }
    fn reads(&self, inputs: &[Chunk], start: usize, len: usize, out: &mut Vec<(usize, usize)>) {
        reads_of_two(&*self.a, &*self.b, inputs, start, len, out);
    }
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        let (ia, ib) = split(inputs, self.a.arity())?;
        let n = out.len();
        // The left operand where it lies (a contiguous read), into the output ...
        if let Some(a) = self.a.slice(ia, start, n)? {
            let into = self.f.into;
            return runs_of(&*self.b, ib, start, n, &mut |o, run| {
                into(&mut out[o..o + run.len()], &a[o..o + run.len()], run)
            });
        }
        // ... or computed into the output first.
        self.a.eval(ia, start, out)?;
        let in_place = self.f.in_place;
        runs_of(&*self.b, ib, start, n, &mut |o, run| {
            in_place(&mut out[o..o + run.len()], run)
        })
    }
}

/// [`Kernel::reads`] of a node with two children, `a`'s inputs first.
fn reads_of_two<A: Element, B: Element>(
    a: &dyn Kernel<A>,
    b: &dyn Kernel<B>,
    inputs: &[Chunk],
    start: usize,
    len: usize,
    out: &mut Vec<(usize, usize)>,
) {
    if let Ok((ia, ib)) = split(inputs, a.arity()) {
        a.reads(ia, start, len, out);
        b.reads(ib, start, len, out);
    }
}

/// Hands `kernel`'s elements `start..start + n` to `f(position in the range, run)`: where they
/// lie when it can ([`Kernel::lend`], [`Kernel::slice`]), otherwise computed into a tile.
fn runs_of<T: Element>(
    kernel: &dyn Kernel<T>,
    inputs: &[Chunk],
    start: usize,
    n: usize,
    f: &mut dyn FnMut(usize, &[T]),
) -> Result<(), TaskFailure> {
    if kernel.lend(inputs, start, n, f)? {
        return Ok(());
    }
    if let Some(s) = kernel.slice(inputs, start, n)? {
        f(0, s);
        return Ok(());
    }
    with_scratch(n, |y: &mut [T]| {
        kernel.eval(inputs, start, y)?;
        f(0, y);
        Ok(())
    })
}

/// `where(cond, a, b)`.
pub(crate) struct Where3<T> {
    pub(crate) cond: Arc<dyn Kernel<bool>>,
    pub(crate) a: Arc<dyn Kernel<T>>,
    pub(crate) b: Arc<dyn Kernel<T>>,
}

impl<T: Element> Kernel<T> for Where3<T> {
    fn describe(&self) -> String {
        format!(
            "where({}, {}, {})",
            self.cond.describe(),
            self.a.describe(),
            self.b.describe()
        )
    }
    fn arity(&self) -> usize {
        self.cond.arity() + self.a.arity() + self.b.arity()
    }
    fn eval(&self, inputs: &[Chunk], start: usize, out: &mut [T]) -> Result<(), TaskFailure> {
        let (ic, rest) = split(inputs, self.cond.arity())?;
        let (ia, ib) = split(rest, self.a.arity())?;
        with_scratch(out.len(), |c: &mut [bool]| {
            self.cond.eval(ic, start, c)?;
            self.a.eval(ia, start, out)?;
            with_scratch(out.len(), |y: &mut [T]| {
                self.b.eval(ib, start, y)?;
                for ((o, &c), &y) in out.iter_mut().zip(c.iter()).zip(y.iter()) {
                    if !c {
                        *o = y;
                    }
                }
                Ok(())
            })
        })
    }
}

thread_local! {
    /// Tile-sized buffers per thread, for the nodes that evaluate a child beside their output:
    /// taken and given back around each use, so no node allocates or clears one per tile.
    static TILES: std::cell::RefCell<Vec<Box<dyn Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of `n` elements of unspecified content (the caller's child
/// overwrites it), taken from this thread's [`TILES`] and given back after.
fn with_scratch<T: Element, R>(n: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf: Box<Vec<T>> = TILES
        .with(|t| {
            let mut t = t.borrow_mut();
            let at = t.iter().rposition(|b| b.is::<Vec<T>>())?;
            t.swap_remove(at).downcast::<Vec<T>>().ok()
        })
        .unwrap_or_default();
    if buf.len() < n {
        buf.resize(n, T::default());
    }
    let r = f(&mut buf[..n]);
    TILES.with(|t| t.borrow_mut().push(buf));
    r
}

fn split(inputs: &[Chunk], n: usize) -> Result<(&[Chunk], &[Chunk]), TaskFailure> {
    if n > inputs.len() {
        return Err(internal("a block has fewer inputs than its kernel reads"));
    }
    Ok(inputs.split_at(n))
}

/// Elementwise unary operations of floating-point arrays.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum UnaryOp {
    /// `e^x`
    Exp,
    /// `e^x - 1`, accurate near 0
    ExpM1,
    /// natural logarithm
    Ln,
    /// `ln(1 + x)`, accurate near 0
    Ln1p,
    /// base-2 logarithm
    Log2,
    /// base-10 logarithm
    Log10,
    /// square root
    Sqrt,
    /// cube root
    Cbrt,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// hyperbolic tangent
    Tanh,
    /// arc sine
    Asin,
    /// arc cosine
    Acos,
    /// arc tangent
    Atan,
    /// largest integer not above
    Floor,
    /// smallest integer not below
    Ceil,
    /// nearest integer, halves away from zero
    Round,
    /// `1 / x`
    Recip,
    /// `x^n` for an integer `n`
    Powi(i32),
    /// `x^p` for a float `p`
    Powf(f64),
}

/// Applies a float unary operation to a tile in place.
pub(crate) fn apply_unary<T: Float>(op: UnaryOp, xs: &mut [T]) {
    let f: fn(T) -> T = match op {
        UnaryOp::Exp => T::exp,
        UnaryOp::ExpM1 => T::exp_m1,
        UnaryOp::Ln => T::ln,
        UnaryOp::Ln1p => T::ln_1p,
        UnaryOp::Log2 => T::log2,
        UnaryOp::Log10 => T::log10,
        UnaryOp::Sqrt => T::sqrt,
        UnaryOp::Cbrt => T::cbrt,
        UnaryOp::Sin => T::sin,
        UnaryOp::Cos => T::cos,
        UnaryOp::Tan => T::tan,
        UnaryOp::Tanh => T::tanh,
        UnaryOp::Asin => T::asin,
        UnaryOp::Acos => T::acos,
        UnaryOp::Atan => T::atan,
        UnaryOp::Floor => T::floor,
        UnaryOp::Ceil => T::ceil,
        UnaryOp::Round => T::round,
        UnaryOp::Recip => T::recip,
        UnaryOp::Powi(n) => {
            for x in xs.iter_mut() {
                *x = x.powi(n);
            }
            return;
        }
        UnaryOp::Powf(p) => {
            let p = T::from(p).unwrap_or_else(T::nan);
            for x in xs.iter_mut() {
                *x = x.powf(p);
            }
            return;
        }
    };
    for x in xs.iter_mut() {
        *x = f(*x);
    }
}

/// Elementwise binary operations of numeric arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a % b`
    Rem,
    /// `a ^ b`
    Pow,
    /// the larger (NaN if either is NaN, as `np.maximum`)
    Max,
    /// the smaller (NaN if either is NaN, as `np.minimum`)
    Min,
}

/// The CPU implementation of a binary operation: `a[i] = a[i] op b[i]`.
pub(crate) fn binary_fn<T: Numeric>(op: BinaryOp) -> BinaryFns<T> {
    /// Both forms of one element function: in place, and into a third slice.
    macro_rules! forms {
        ($f:expr) => {
            BinaryFns {
                in_place: |a, b| a.iter_mut().zip(b).for_each(|(x, &y)| *x = $f(*x, y)),
                into: |o, a, b| {
                    o.iter_mut()
                        .zip(a)
                        .zip(b)
                        .for_each(|((o, &x), &y)| *o = $f(x, y))
                },
            }
        };
    }
    match op {
        BinaryOp::Add => forms!(T::num_add),
        BinaryOp::Sub => forms!(T::num_sub),
        BinaryOp::Mul => forms!(T::num_mul),
        BinaryOp::Div => forms!(T::num_div),
        BinaryOp::Rem => forms!(T::num_rem),
        BinaryOp::Pow => forms!(T::num_pow),
        BinaryOp::Max => forms!(nan_max),
        BinaryOp::Min => forms!(nan_min),
    }
}

/// A binary operation over slices: `a op= b`, and `out = a op b`.
#[derive(Clone, Copy)]
pub(crate) struct BinaryFns<T> {
    pub(crate) in_place: fn(&mut [T], &[T]),
    pub(crate) into: fn(&mut [T], &[T], &[T]),
}

/// The larger, NaN winning.
pub(crate) fn nan_max<T: Element>(x: T, y: T) -> T {
    if x.is_nan_value() || !(y.is_nan_value() || y > x) {
        x
    } else {
        y
    }
}

/// The smaller, NaN winning.
pub(crate) fn nan_min<T: Element>(x: T, y: T) -> T {
    if x.is_nan_value() || !(y.is_nan_value() || y < x) {
        x
    } else {
        y
    }
}

/// Elementwise comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The CPU implementation of a comparison.
pub(crate) fn cmp_fn<T: Element>(op: CmpOp) -> fn(&[T], &[T], &mut [bool]) {
    match op {
        CmpOp::Eq => |a, b, o| zip3(a, b, o, |x, y| x == y),
        CmpOp::Ne => |a, b, o| zip3(a, b, o, |x, y| x != y),
        CmpOp::Lt => |a, b, o| zip3(a, b, o, |x, y| x < y),
        CmpOp::Le => |a, b, o| zip3(a, b, o, |x, y| x <= y),
        CmpOp::Gt => |a, b, o| zip3(a, b, o, |x, y| x > y),
        CmpOp::Ge => |a, b, o| zip3(a, b, o, |x, y| x >= y),
    }
}

fn zip3<T: Copy>(a: &[T], b: &[T], o: &mut [bool], f: impl Fn(T, T) -> bool) {
    for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// Logical operations of boolean arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    /// `a & b`
    And,
    /// `a | b`
    Or,
    /// `a ^ b`
    Xor,
}

/// The CPU implementation of a logical operation.
pub(crate) fn logic_fn(op: LogicOp) -> fn(&mut [bool], &[bool]) {
    match op {
        LogicOp::And => |a, b| a.iter_mut().zip(b).for_each(|(x, &y)| *x &= y),
        LogicOp::Or => |a, b| a.iter_mut().zip(b).for_each(|(x, &y)| *x |= y),
        LogicOp::Xor => |a, b| a.iter_mut().zip(b).for_each(|(x, &y)| *x ^= y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_cover_the_range() {
        let mut seen = vec![];
        for_each_lane(&[2, 3], 2, 3, |idx, o, c| seen.push((idx.to_vec(), o, c)));
        assert_eq!(seen, vec![(vec![0, 2], 0, 1), (vec![1, 0], 1, 2)]);
        let mut n = 0;
        for_each_lane(&[], 0, 1, |_, _, c| n += c);
        assert_eq!(n, 1);
    }

    #[test]
    fn broadcast_and_transpose_reads() {
        let src: Chunk =
            Arc::new(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1, 2, 3, 4, 5, 6]).unwrap());
        // transpose: shape (3, 2), strides (1, 3)
        let t = Read::<i32>::new(Source::Input, 0, vec![1, 3], vec![3, 2]);
        let b = eval_block(&t, std::slice::from_ref(&src), &[3, 2]).unwrap();
        assert_eq!(
            chunk_array::<i32>(&b).unwrap().as_slice().unwrap(),
            &[1, 4, 2, 5, 3, 6]
        );
        // broadcast row 1 over 2 rows
        let r = Read::<i32>::new(Source::Input, 3, vec![0, 1], vec![2, 3]);
        let b = eval_block(&r, &[src], &[2, 3]).unwrap();
        assert_eq!(
            chunk_array::<i32>(&b).unwrap().as_slice().unwrap(),
            &[4, 5, 6, 4, 5, 6]
        );
        assert!(nan_max(1.0, f64::NAN).is_nan_value());
        assert!(nan_min(f64::NAN, 1.0).is_nan_value());
        assert_eq!(nan_max(1, 2), 2);
        assert!(nan_max(f64::NAN, 1.0).is_nan() && nan_min(1.0, f64::NAN).is_nan());
        assert_eq!(nan_min(3, 2), 2);
    }
}
