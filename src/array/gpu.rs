//! Arrays on GPUs: the same lazy [`Array`], evaluated by the cluster's GPU workers.
//!
//! A block of an array is a kernel tree over its input chunks ([`kernels`](super::kernels)).
//! Placing an array on GPUs ([`Array::on_gpus`], [`Array::on_gpu_set`]) changes nothing in
//! that description; it changes **where** the blocks are evaluated. Each block's tree is
//! *translated* into one [`gpu::Expr`](crate::gpu::Expr): the nodes the GPU has (arithmetic,
//! `pow`, `minimum`/`maximum`, `abs`, negation, `exp`, `ln`, `sqrt`, `sin`, `cos`, `tanh`,
//! `recip`, `powi`, `powf`, scalar constants) become the expression, and every subtree it does
//! not have (input chunks, random numbers, `arange`, comparisons, `where`, casts, user maps,
//! strided or broadcast reads) becomes one of its **inputs**, materialized on the CPU pool and
//! uploaded. So `((&x - &m) / &s).exp()` over a random `x` is: one CPU task generating the
//! block of `x` and broadcasting `m` and `s` to it, then one GPU task that uploads the three,
//! runs ONE fused kernel and downloads the result.
//!
//! ```
//! use onebox::prelude::*;
//! use onebox::array::Array;
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let x = Array::<f64>::random_normal(&cluster, [1_000, 300], [250, 100], 7)?;
//! let y = (&x * 2.0 + 1.0).exp().on_gpus();     // lazy: nothing ran yet
//! assert_eq!(y.gpus().len(), cluster.gpu_count());
//! match y.sum() {
//!     Ok(total) => println!("{}", total.scalar()?),                // on a GPU machine
//!     Err(e) => assert!(matches!(e, onebox::Error::NoGpu { .. })), // without one
//! }
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! ## What runs where
//!
//! | operation on a [`GpuArray`]                   | CPU pool                          | GPU worker                                   |
//! |-----------------------------------------------|-----------------------------------|----------------------------------------------|
//! | [`compute`](GpuArray::compute), [`to_host`](GpuArray::to_host) | the leaves of each block | one fused elementwise kernel per block; download |
//! | [`sum`](GpuArray::sum), [`mean`](GpuArray::mean), [`min`](GpuArray::min), [`max`](GpuArray::max) | leaves; the tree combining per-block partials | one fused reduction kernel per block |
//! | [`var`](GpuArray::var), [`std`](GpuArray::std) | the same, twice                  | pass 1: sum; pass 2: `sum((x - mean)^2)`     |
//! | [`matmul`](GpuArray::matmul), [`matmul_gpu`](GpuArray::matmul_gpu) | the leaves of both operands' blocks | their fused expressions; cuBLAS products, accumulated per output block |
//!
//! Blocks are spread over the chosen GPUs round-robin in row-major block order
//! ([`gpu_for_block`]): block `i` goes to `gpus[i % gpus.len()]`. Results come back to host
//! memory: a reduction is a 0-dimensional [`Array`] (as on the CPU: it broadcasts, and
//! [`scalar`](Array::scalar) gives its value), and [`to_host`](GpuArray::to_host) is an
//! ordinary lazy array whose block tasks run on the GPUs, so any CPU operation can follow.
//! Reductions accumulate in `f64` whatever the element type.
//!
//! ## Not (yet) on the GPU
//!
//! - Blocks do not stay resident on a GPU between operations: each GPU task uploads its
//!   inputs and downloads its result, and `var`/`std` recompute and upload their blocks twice
//!   (there is no spilling to host memory either: a block larger than the GPU's
//!   [`DeviceMemory`](crate::gpu::DeviceMemory) limit fails with a clear error).
//! - Reductions over some axes (`sum_axis`, `mean_std_axis`, ...), `argmin`/`argmax`,
//!   `nan*` reductions, `cumsum`, comparisons, `where`, `clip`, `%` and the unary operations the
//!   GPU expressions lack (`exp_m1`, `ln_1p`, `log2`, `log10`, `cbrt`, `tan`, `asin`, `acos`,
//!   `atan`, `floor`, `ceil`, `round`) are computed on the CPU (as leaves of a GPU expression,
//!   or with the CPU [`Array`] methods).
//! - A block with nothing for the GPU to do (a plain input, a random block) is computed by
//!   [`to_host`](GpuArray::to_host) on the CPU alone: a round trip through the GPU would only
//!   copy it.
//! - `var`/`std`'s second pass compiles one kernel per call (the mean is a constant of it).

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::chunks::fmt_shape;
use super::kernels::{Chunk, Kernel, chunk_array, eval_block, internal, to_chunk};
use super::{Array, Chunks, Float};
use crate::cluster::Cluster;
use crate::error::{Error, Result, TaskFailure};
use crate::gpu::{DeviceBuffer, Expr, GpuContext, GpuFloat, Reduce};
use crate::graph::Delayed;

/// A subtree of a block's kernel that a GPU expression reads as one input: evaluated on the
/// CPU from the block's task inputs `inputs`.
pub(crate) struct GpuLeaf<T> {
    pub(crate) kernel: Arc<dyn Kernel<T>>,
    pub(crate) inputs: Range<usize>,
}

/// Translates `kernel` (whose task inputs start at `first`) into a GPU expression, appending
/// the subtrees with no GPU equivalent to `leaves`: input `i` of the expression is
/// `leaves[i]`. Never fails: at worst the whole tree is one leaf.
pub(crate) fn translate<T: 'static>(
    kernel: &Arc<dyn Kernel<T>>,
    first: usize,
    leaves: &mut Vec<GpuLeaf<T>>,
) -> Expr {
    if let Some(e) = kernel.gpu_expr(first, leaves) {
        return e;
    }
    leaves.push(GpuLeaf {
        kernel: kernel.clone(),
        inputs: first..first + kernel.arity(),
    });
    Expr::Input(leaves.len() - 1)
}

/// The element types arrays can have on a GPU: `f32` and `f64`.
pub trait GpuElement: Float + GpuFloat + From<f32> {}
impl GpuElement for f32 {}
impl GpuElement for f64 {}

/// The GPU (an entry of `gpus`) that block `block` of an array placed on `gpus` runs on:
/// round-robin in row-major block order. `None` when `gpus` is empty.
pub fn gpu_for_block(block: usize, gpus: &[usize]) -> Option<usize> {
    if gpus.is_empty() {
        return None;
    }
    Some(gpus[block % gpus.len()])
}

/// An [`Array`] placed on GPUs: its blocks are evaluated by GPU workers. Made by
/// [`Array::on_gpus`] or [`Array::on_gpu_set`]; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct GpuArray<T: GpuElement> {
    array: Array<T>,
    gpus: Arc<[usize]>,
}

impl<T: GpuElement> Array<T> {
    /// This array, evaluated on all the cluster's GPUs (blocks spread round-robin). Lazy:
    /// without a GPU, the error ([`Error::NoGpu`]) comes from the first computation.
    pub fn on_gpus(&self) -> GpuArray<T> {
        let gpus: Vec<usize> = (0..self.cluster().gpu_count()).collect();
        GpuArray {
            array: self.clone(),
            gpus: gpus.into(),
        }
    }

    /// This array, evaluated on the cluster's GPUs `gpus` (indices into the cluster's GPUs;
    /// blocks spread round-robin over them in this order). Lazy: an index the cluster does not
    /// have gives [`Error::NoGpu`] at the first computation.
    pub fn on_gpu_set(&self, gpus: &[usize]) -> GpuArray<T> {
        GpuArray {
            array: self.clone(),
            gpus: gpus.into(),
        }
    }
}

/// One block ready for a GPU: its expression, and the CPU task materializing its leaves.
struct Prepared<T> {
    expr: Expr,
    leaves: Delayed<Vec<Chunk>>,
    shape: Vec<usize>,
    /// True when the expression is its only leaf, unchanged.
    identity: bool,
    _t: std::marker::PhantomData<T>,
}

fn gpu_failure(e: Error) -> TaskFailure {
    TaskFailure::Error(Arc::new(e))
}

/// Uploads the leaves of a block.
fn upload<T: GpuElement>(
    gpu: &GpuContext,
    leaves: &[Chunk],
) -> Result<Vec<DeviceBuffer<T>>, TaskFailure> {
    leaves
        .iter()
        .map(|c| {
            let a = chunk_array::<T>(c)?;
            let s = a
                .as_slice()
                .ok_or_else(|| internal("a block is not in standard layout"))?;
            gpu.upload(s).map_err(gpu_failure)
        })
        .collect()
}

impl<T: GpuElement> GpuArray<T> {
    /// The array, as described (lazy, CPU placement).
    pub fn array(&self) -> &Array<T> {
        &self.array
    }

    /// The cluster GPUs the blocks are spread over, in order.
    pub fn gpus(&self) -> &[usize] {
        &self.gpus
    }

    /// The cluster GPU that block `block` (row-major) runs on; `None` when no GPU was chosen.
    pub fn gpu_of_block(&self, block: usize) -> Option<usize> {
        gpu_for_block(block, &self.gpus)
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    /// A new lazy array from this one's (`f(array)`, such as more elementwise operations),
    /// placed on the same GPUs.
    pub fn then(&self, f: impl FnOnce(&Array<T>) -> Array<T>) -> GpuArray<T> {
        GpuArray {
            array: f(&self.array),
            gpus: self.gpus.clone(),
        }
    }

    /// Checks the array and the placement: every chosen GPU exists in the cluster.
    fn check(&self, what: &str) -> Result<()> {
        self.array.check()?;
        let available = self.array.cluster().gpu_count();
        let missing = if self.gpus.is_empty() {
            Some("any".to_string())
        } else {
            self.gpus
                .iter()
                .find(|&&g| g >= available)
                .map(ToString::to_string)
        };
        match missing {
            Some(requested) => Err(Error::NoGpu {
                what: format!("{what} of array `{}`", self.array.name()),
                requested,
                available,
            }),
            None => Ok(()),
        }
    }

    fn cluster(&self) -> &Cluster {
        self.array.cluster()
    }

    fn gpu(&self, block: usize) -> Result<usize> {
        self.gpu_of_block(block)
            .ok_or_else(|| Error::Invalid("no GPU was chosen".into()))
    }

    /// Translates block `i` and makes the CPU task that materializes its leaves.
    fn prepare(&self, i: usize) -> Prepared<T> {
        let b = &self.array.blocks()[i];
        let mut leaves = Vec::new();
        let mut expr = translate(&b.kernel, 0, &mut leaves);
        if leaves.is_empty() {
            // a tree of constants: the GPU needs an input to know the length
            leaves.push(GpuLeaf {
                kernel: b.kernel.clone(),
                inputs: 0..b.kernel.arity(),
            });
            expr = Expr::Input(0);
        }
        let identity = expr == Expr::Input(0);
        let shape = self.array.chunks().block_shape(i);
        let s = shape.clone();
        let task = Delayed::combine(self.cluster(), b.deps.clone(), move |inputs| {
            leaves
                .iter()
                .map(|l| {
                    let ins = inputs.get(l.inputs.clone()).ok_or_else(|| {
                        internal("a block has fewer inputs than its kernel reads")
                    })?;
                    eval_block(&*l.kernel, ins, &s)
                })
                .collect::<Result<Vec<Chunk>, TaskFailure>>()
        })
        .label(&format!("{}-leaves", self.array.block_label(i)));
        Prepared {
            expr,
            leaves: task,
            shape,
            identity,
            _t: std::marker::PhantomData,
        }
    }

    /// The task computing block `i` on its GPU (on the CPU when the GPU has nothing to do).
    fn block_task(&self, i: usize) -> Result<Delayed<Chunk>> {
        let gpu = self.gpu(i)?;
        let p = self.prepare(i);
        let label = self.array.block_label(i);
        if p.identity {
            return Ok(p
                .leaves
                .try_map(|mut v: Vec<Chunk>| {
                    v.pop()
                        .ok_or_else(|| Error::Invalid("a block lost its input".into()))
                })
                .label(&label));
        }
        let (expr, shape) = (p.expr, p.shape);
        Ok(
            Delayed::combine_on_gpu(self.cluster(), vec![p.leaves], gpu, move |g, mut v| {
                let leaves = v
                    .pop()
                    .ok_or_else(|| internal("a GPU task lost its input"))?;
                let n: usize = shape.iter().product();
                let host = if n == 0 {
                    Vec::new()
                } else {
                    let bufs = upload::<T>(g, &leaves)?;
                    let refs: Vec<&DeviceBuffer<T>> = bufs.iter().collect();
                    let out = g.elementwise(&expr, &refs).map_err(gpu_failure)?;
                    g.download(&out).map_err(gpu_failure)?
                };
                let a = ArrayD::from_shape_vec(IxDyn(&shape), host)
                    .map_err(|e| internal(e.to_string()))?;
                Ok(to_chunk(a))
            })
            .label(&label),
        )
    }

    /// The array on the host, lazily: an ordinary [`Array`] whose block tasks run on the GPUs
    /// (one fused kernel per block), so CPU operations can follow.
    pub fn to_host(&self) -> Result<Array<T>> {
        self.check("to_host")?;
        let tasks = (0..self.array.num_blocks())
            .map(|i| self.block_task(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Array::from_tasks(
            self.cluster(),
            self.array.chunks().clone(),
            tasks,
            &format!("gpu-{}", self.array.name()),
        )
        .with_fan_in(self.array.fan_in()))
    }

    /// Computes the array on the GPUs into one `ndarray` on the host.
    pub fn compute(&self) -> Result<ArrayD<T>> {
        self.check("compute")?;
        self.to_host()?.compute()
    }

    /// Computes every block on the GPUs now; returns the host array holding them.
    pub fn persist(&self) -> Result<Array<T>> {
        self.check("persist")?;
        self.to_host()?.persist()
    }

    /// One GPU reduction per block of `expr_of(block expression)` with `op`, then a CPU tree
    /// of the partials (in `f64`). `extra` feeds a value computed earlier (the mean) to
    /// `expr_of`.
    fn reduce_tree(
        &self,
        op: Reduce,
        name: &str,
        extra: Option<Delayed<f64>>,
        expr_of: fn(Expr, f64) -> Expr,
    ) -> Result<Delayed<f64>> {
        let cluster = self.cluster().clone();
        let mut parts = Vec::with_capacity(self.array.num_blocks());
        for i in 0..self.array.num_blocks() {
            let gpu = self.gpu(i)?;
            let p = self.prepare(i);
            let n: usize = p.shape.iter().product();
            let base = p.expr;
            let label = format!("{}-{name}", self.array.block_label(i));
            let run = move |g: &GpuContext, leaves: Vec<Chunk>, x: f64| {
                if n == 0 {
                    return Ok(crate::gpu::kernels::combine_partials(op, &[]));
                }
                let bufs = upload::<T>(g, &leaves)?;
                let refs: Vec<&DeviceBuffer<T>> = bufs.iter().collect();
                g.reduce(op, &expr_of(base.clone(), x), &refs)
                    .map_err(gpu_failure)
            };
            let lost = || internal("a GPU task lost its input");
            let part = match &extra {
                Some(m) => {
                    let input = p.leaves.zip(m.clone());
                    Delayed::combine_on_gpu(&cluster, vec![input], gpu, move |g, mut v| {
                        let (leaves, x) = v.pop().ok_or_else(lost)?;
                        run(g, leaves, x)
                    })
                }
                None => Delayed::combine_on_gpu(&cluster, vec![p.leaves], gpu, move |g, mut v| {
                    run(g, v.pop().ok_or_else(lost)?, 0.0)
                }),
            };
            parts.push(part.label(&label));
        }
        let fan_in = self.array.fan_in();
        if parts.is_empty() {
            return Ok(cluster.value(crate::gpu::kernels::combine_partials(op, &[])));
        }
        while parts.len() > 1 {
            let mut next = Vec::with_capacity(parts.len().div_ceil(fan_in));
            let mut it = parts.into_iter().peekable();
            while it.peek().is_some() {
                let group: Vec<Delayed<f64>> = it.by_ref().take(fan_in).collect();
                next.push(
                    Delayed::combine(&cluster, group, move |v| {
                        Ok(crate::gpu::kernels::combine_partials(op, &v))
                    })
                    .label(&format!("array-gpu-{name}-tree")),
                );
            }
            parts = next;
        }
        parts
            .pop()
            .ok_or_else(|| Error::Invalid("an empty reduction".into()))
    }

    /// A 0-dimensional array holding `value` (converted to `T`).
    fn scalar_array(&self, value: Delayed<f64>, name: &str) -> Array<T> {
        let task = value.map(|v| {
            to_chunk(ArrayD::from_elem(
                IxDyn(&[]),
                <T as num_traits::NumCast>::from(v).unwrap_or_else(T::nan),
            ))
        });
        Array::from_tasks(self.cluster(), Chunks::from_axes(vec![]), vec![task], name)
            .with_fan_in(self.array.fan_in())
    }

    /// The sum of all elements, reduced on the GPUs (accumulated in `f64`): a 0-dimensional
    /// array.
    pub fn sum(&self) -> Result<Array<T>> {
        self.check("sum")?;
        let s = self.reduce_tree(Reduce::Sum, "sum", None, |e, _| e)?;
        Ok(self.scalar_array(s, "gpu-sum"))
    }

    /// The mean of all elements (NaN for an empty array), reduced on the GPUs.
    pub fn mean(&self) -> Result<Array<T>> {
        self.check("mean")?;
        let n = self.array.len() as f64;
        let s = self.reduce_tree(Reduce::Sum, "mean", None, |e, _| e)?;
        Ok(self.scalar_array(s.map(move |s| s / n), "gpu-mean"))
    }

    fn extreme(&self, op: Reduce, name: &str) -> Result<Array<T>> {
        self.check(name)?;
        if self.array.is_empty() {
            return Err(Error::Invalid(format!(
                "{name}: the array of shape {} is empty, and {name} of nothing has no value",
                fmt_shape(self.array.shape())
            )));
        }
        let s = self.reduce_tree(op, name, None, |e, _| e)?;
        Ok(self.scalar_array(s, &format!("gpu-{name}")))
    }

    /// The smallest element (NaN if any is NaN), reduced on the GPUs. An empty array is an
    /// error.
    pub fn min(&self) -> Result<Array<T>> {
        self.extreme(Reduce::Min, "min")
    }

    /// The largest element (NaN if any is NaN), reduced on the GPUs. An empty array is an
    /// error.
    pub fn max(&self) -> Result<Array<T>> {
        self.extreme(Reduce::Max, "max")
    }

    fn moments(&self, ddof: usize, sqrt: bool, name: &str) -> Result<Array<T>> {
        self.check(name)?;
        let n = self.array.len() as f64;
        let mean = self
            .reduce_tree(Reduce::Sum, name, None, |e, _| e)?
            .map(move |s| s / n);
        let m2 = self.reduce_tree(Reduce::Sum, name, Some(mean), |e, m| (e - m).pow(2.0))?;
        let d = n - ddof as f64;
        let v = m2.map(move |m2| {
            let var = if d > 0.0 { m2 / d } else { f64::NAN };
            if sqrt { var.sqrt() } else { var }
        });
        Ok(self.scalar_array(v, &format!("gpu-{name}")))
    }

    /// The variance of all elements with `ddof` delta degrees of freedom (divides by
    /// `n - ddof`; NaN when that is not positive): two passes on the GPUs, the mean, then the
    /// sum of squared deviations from it.
    pub fn var(&self, ddof: usize) -> Result<Array<T>> {
        self.moments(ddof, false, "var")
    }

    /// The standard deviation of all elements with `ddof` delta degrees of freedom (see
    /// [`var`](GpuArray::var)).
    pub fn std(&self, ddof: usize) -> Result<Array<T>> {
        self.moments(ddof, true, "std")
    }

    /// The matrix product `self (m x k) @ other (k x n)` of two 2-D arrays: for each output
    /// block, the products of its row of `self`'s blocks and column of `other`'s blocks by
    /// cuBLAS on the output block's GPU, accumulated there, then downloaded. `self`'s blocks
    /// are computed as by [`to_host`](GpuArray::to_host), `other`'s by its CPU block tasks.
    pub fn matmul(&self, other: &Array<T>) -> Result<Array<T>> {
        self.matmul_impl(other, None)
    }

    /// Like [`matmul`](GpuArray::matmul), with `other`'s blocks computed on its GPUs too (each
    /// block's fused expression there, then downloaded for the product's task).
    pub fn matmul_gpu(&self, other: &GpuArray<T>) -> Result<Array<T>> {
        other.check("matmul")?;
        self.matmul_impl(&other.array, Some(&other.gpus))
    }

    fn matmul_impl(&self, other: &Array<T>, other_gpus: Option<&Arc<[usize]>>) -> Result<Array<T>> {
        self.check("matmul")?;
        other.check()?;
        let a = &self.array;
        if a.ndim() != 2 || other.ndim() != 2 {
            return Err(Error::Invalid(format!(
                "matmul needs two 2-D arrays, got shapes {} and {}",
                fmt_shape(a.shape()),
                fmt_shape(other.shape())
            )));
        }
        let (k, k2) = (a.shape()[1], other.shape()[0]);
        if k != k2 {
            return Err(Error::Invalid(format!(
                "matmul: shapes {} and {} are not aligned: {k} (axis 1) != {k2} (axis 0)",
                fmt_shape(a.shape()),
                fmt_shape(other.shape())
            )));
        }
        let b = other.rechunk_axes(&[Some(a.chunks().ax(1).to_vec()), None]);
        let a_tasks = (0..a.num_blocks())
            .map(|i| self.block_task(i))
            .collect::<Result<Vec<_>>>()?;
        let b_tasks = match other_gpus {
            Some(gpus) => {
                let g = GpuArray {
                    array: b.clone(),
                    gpus: gpus.clone(),
                };
                (0..b.num_blocks())
                    .map(|i| g.block_task(i))
                    .collect::<Result<Vec<_>>>()?
            }
            None => b.block_tasks(),
        };
        let (gi, gl) = (a.chunks().ax(0).len(), a.chunks().ax(1).len());
        let gj = b.chunks().ax(1).len();
        let out = Chunks::from_axes(vec![a.chunks().ax(0).to_vec(), b.chunks().ax(1).to_vec()]);
        let mut tasks = Vec::with_capacity(gi * gj);
        for i in 0..gi {
            for j in 0..gj {
                let o = i * gj + j;
                let gpu = self.gpu(o)?;
                let out_shape = out.block_shape(o);
                let dims: Vec<(usize, usize, usize)> = (0..gl)
                    .map(|l| {
                        let sa = a.chunks().block_shape(i * gl + l);
                        (sa[0], sa[1], out_shape[1])
                    })
                    .collect();
                let mut items: Vec<Delayed<Chunk>> =
                    (0..gl).map(|l| a_tasks[i * gl + l].clone()).collect();
                items.extend((0..gl).map(|l| b_tasks[l * gj + j].clone()));
                let label = format!("array-gpu-matmul[{i},{j}]");
                tasks.push(
                    Delayed::combine_on_gpu(self.cluster(), items, gpu, move |g, v| {
                        let (m, n) = (out_shape[0], out_shape[1]);
                        if m * n == 0 {
                            return Ok(to_chunk(ArrayD::<T>::zeros(IxDyn(&[m, n]))));
                        }
                        let (xs, ys) = v.split_at(dims.len());
                        let mut acc: Option<DeviceBuffer<T>> = None;
                        for ((x, y), &d) in xs.iter().zip(ys).zip(&dims) {
                            if d.1 == 0 {
                                continue;
                            }
                            let bx = upload::<T>(g, std::slice::from_ref(x))?;
                            let by = upload::<T>(g, std::slice::from_ref(y))?;
                            let p = g.matmul(&bx[0], &by[0], d).map_err(gpu_failure)?;
                            acc = Some(match acc {
                                None => p,
                                Some(s) => g
                                    .elementwise(&(Expr::input(0) + Expr::input(1)), &[&s, &p])
                                    .map_err(gpu_failure)?,
                            });
                        }
                        let host = match acc {
                            Some(s) => g.download(&s).map_err(gpu_failure)?,
                            None => vec![T::zero(); m * n],
                        };
                        let arr = ArrayD::from_shape_vec(IxDyn(&[m, n]), host)
                            .map_err(|e| internal(e.to_string()))?;
                        Ok(to_chunk(arr))
                    })
                    .label(&label),
                );
            }
        }
        Ok(Array::from_tasks(self.cluster(), out, tasks, "gpu-matmul").with_fan_in(a.fan_in()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::kernels::UnaryOp;
    use proptest::prelude::*;

    fn cluster() -> Cluster {
        Cluster::builder().threads(2).build().unwrap()
    }

    /// Checks, block by block, that the GPU expression over the CPU-evaluated leaves gives
    /// what the CPU kernel gives; returns the number of leaves of each block.
    fn check_translation<T: GpuElement>(a: &Array<T>, tol: f64) -> Vec<usize> {
        let mut counts = vec![];
        for (i, b) in a.blocks().iter().enumerate() {
            let shape = a.chunks().block_shape(i);
            let inputs = Delayed::join_all(a.cluster(), b.deps.clone())
                .compute()
                .unwrap();
            let want = eval_block(&*b.kernel, &inputs, &shape).unwrap();
            let want = chunk_array::<T>(&want).unwrap().clone();
            let mut leaves = vec![];
            let expr = translate(&b.kernel, 0, &mut leaves);
            assert_eq!(expr.arity(), leaves.len(), "every leaf is read: {expr:?}");
            let vals: Vec<ArrayD<T>> = leaves
                .iter()
                .map(|l| {
                    let c = eval_block(&*l.kernel, &inputs[l.inputs.clone()], &shape).unwrap();
                    chunk_array::<T>(&c).unwrap().clone()
                })
                .collect();
            let mut x = vec![0.0; vals.len()];
            for (k, w) in want.iter().enumerate() {
                for (j, v) in vals.iter().enumerate() {
                    x[j] = num_traits::ToPrimitive::to_f64(&v.as_slice().unwrap()[k]).unwrap();
                }
                let got = expr.eval(&x);
                let w = num_traits::ToPrimitive::to_f64(w).unwrap();
                assert!(
                    (got.is_nan() && w.is_nan()) || (got - w).abs() <= tol * (1.0 + w.abs()),
                    "block {i} element {k}: expression {got} != kernel {w} ({expr:?})"
                );
            }
            counts.push(leaves.len());
        }
        counts
    }

    #[test]
    fn a_standardise_chain_is_one_expression_over_its_three_operands() {
        let c = cluster();
        let x = Array::random_normal(&c, [7, 5], [3, 2], 1).unwrap() * 3.0 + 5.0;
        let m = x.mean_axis(&[0]).unwrap();
        let s = x.std_axis(&[0]).unwrap();
        let z = ((&x - &m) / &s).exp();
        let b = &z.blocks()[0];
        let mut leaves = vec![];
        let e = translate(&b.kernel, 0, &mut leaves);
        // x (random, scaled: generated on the CPU but its * 3 + 5 are GPU nodes), m, s
        assert_eq!(leaves.len(), 3, "{e:?}");
        let (x0, x1, x2) = (Expr::input(0), Expr::input(1), Expr::input(2));
        assert_eq!(e, (((x0 * 3.0 + 5.0) - x1) / x2).exp());
        assert_eq!(check_translation(&z, 1e-12), vec![3; z.num_blocks()]);
    }

    #[test]
    fn untranslatable_nodes_become_leaves_and_constants_stay_constants() {
        let c = cluster();
        let x = Array::random_uniform(&c, [6, 4], [4, 3], 2).unwrap();
        // % and clip have no GPU equivalent: computed on the CPU, read as inputs
        let y = (&x % 0.3).clip(0.05, 0.25) * 2.0 + &x.cbrt();
        let b = &y.blocks()[0];
        let mut leaves = vec![];
        let e = translate(&b.kernel, 0, &mut leaves);
        assert_eq!(leaves.len(), 2, "{e:?}");
        assert_eq!(e, Expr::input(0) * 2.0 + Expr::input(1));
        check_translation(&y, 1e-12);
        // a tree of constants only: no leaf (prepare then reads the whole tree as one)
        let f = Array::<f64>::full(&c, [3], 2, 1.5).unwrap() * 2.0;
        let mut leaves = vec![];
        assert_eq!(
            translate(&f.blocks()[0].kernel, 0, &mut leaves),
            Expr::Const(1.5) * 2.0
        );
        assert!(leaves.is_empty());
        let p = f.on_gpus().prepare(0);
        assert_eq!(p.expr, Expr::input(0));
        assert!(p.identity);
    }

    #[test]
    fn f32_chains_translate_too() {
        let c = cluster();
        let x = Array::random_normal(&c, [9, 4], [4, 4], 3)
            .unwrap()
            .astype::<f32>();
        let y = (-(&x * 0.5f32)).abs().sqrt() + x.tanh().powi(3) - x.sin().maximum(x.cos());
        let counts = check_translation(&y, 1e-6);
        assert!(counts.iter().all(|&n| n <= 5), "{counts:?}");
    }

    #[derive(Debug, Clone)]
    enum Step {
        AddOther,
        SubScalar(f64),
        MulOther,
        DivScalar(f64),
        Neg,
        Abs,
        Unary(UnaryOp),
        MaxOther,
        MinScalar(f64),
        PowAbs,
        AddRow,
        Rem,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::AddOther),
            (-3.0..3.0f64).prop_map(Step::SubScalar),
            Just(Step::MulOther),
            (0.5..4.0f64).prop_map(Step::DivScalar),
            Just(Step::Neg),
            Just(Step::Abs),
            prop_oneof![
                Just(UnaryOp::Tanh),
                Just(UnaryOp::Sin),
                Just(UnaryOp::Cos),
                Just(UnaryOp::Powi(2)),
                Just(UnaryOp::Powi(-1)),
                Just(UnaryOp::Powf(1.5)),
                Just(UnaryOp::Exp),
                Just(UnaryOp::Ln),
                Just(UnaryOp::Sqrt),
                Just(UnaryOp::Recip),
                Just(UnaryOp::Floor),
            ]
            .prop_map(Step::Unary),
            Just(Step::MaxOther),
            (-1.0..1.0f64).prop_map(Step::MinScalar),
            Just(Step::PowAbs),
            Just(Step::AddRow),
            Just(Step::Rem),
        ]
    }

    fn apply(z: Array<f64>, s: &Step, y: &Array<f64>, row: &Array<f64>) -> Array<f64> {
        match s {
            Step::AddOther => z + y,
            Step::SubScalar(v) => z - *v,
            Step::MulOther => z * y,
            Step::DivScalar(v) => z / *v,
            Step::Neg => -z,
            Step::Abs => z.abs(),
            // keep every value finite: bounded arguments for exp, positive ones for ln/sqrt/pow
            Step::Unary(UnaryOp::Exp) => z.tanh().exp(),
            Step::Unary(op @ (UnaryOp::Ln | UnaryOp::Sqrt | UnaryOp::Powf(_))) => {
                (z.abs() + 0.5).unary(*op)
            }
            Step::Unary(op @ (UnaryOp::Recip | UnaryOp::Powi(-1))) => (z.abs() + 0.5).unary(*op),
            Step::Unary(op) => z.unary(*op).tanh(),
            Step::MaxOther => z.maximum(y),
            Step::MinScalar(v) => z.minimum(*v),
            Step::PowAbs => (z.abs() + 0.5).pow(y.abs()),
            Step::AddRow => z + row,
            Step::Rem => z % 0.7,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_trees_translate_to_what_the_cpu_kernel_computes(
            steps in proptest::collection::vec(step(), 1..8),
            (r, c) in (1usize..9, 1usize..7),
            (cr, cc) in (1usize..5, 1usize..4),
            seed in 0u64..1000,
        ) {
            let cl = cluster();
            let x = Array::random_normal(&cl, [r, c], [cr, cc], seed).unwrap();
            let y = Array::random_uniform(&cl, [r, c], [cc, cr], seed + 1).unwrap() - 0.5;
            let row = Array::random_normal(&cl, [c], [cc], seed + 2).unwrap();
            let z = steps.iter().fold(x, |z, s| apply(z, s, &y, &row));
            check_translation(&z, 1e-9);
        }
    }

    #[test]
    fn blocks_go_round_robin_over_the_chosen_gpus() {
        let gpus = [2, 0, 5];
        let got: Vec<usize> = (0..7).filter_map(|i| gpu_for_block(i, &gpus)).collect();
        assert_eq!(got, vec![2, 0, 5, 2, 0, 5, 2]);
        assert_eq!(gpu_for_block(3, &[]), None);
        let c = cluster();
        let x = Array::<f64>::zeros(&c, [4, 4], [2, 2]).unwrap();
        let g = x.on_gpu_set(&[1, 3]);
        assert_eq!(g.gpus(), &[1, 3]);
        assert_eq!(
            (0..4).filter_map(|i| g.gpu_of_block(i)).collect::<Vec<_>>(),
            vec![1, 3, 1, 3]
        );
        assert_eq!(x.on_gpus().gpus().len(), c.gpu_count());
    }

    #[test]
    fn missing_gpus_are_a_clear_error_at_compute_not_a_hang() {
        let c = cluster();
        let x = Array::random_normal(&c, [10, 3], [4, 3], 9).unwrap();
        let absent = c.gpu_count(); // one past the last GPU, on any machine
        let g = (&x * 2.0).on_gpu_set(&[absent]);
        let errs = [
            g.compute().map(|_| ()),
            g.sum().map(|_| ()),
            g.mean().map(|_| ()),
            g.min().map(|_| ()),
            g.var(0).map(|_| ()),
            g.std(1).map(|_| ()),
            g.matmul(&x.t()).map(|_| ()),
            g.to_host().map(|_| ()),
            g.persist().map(|_| ()),
        ];
        for e in errs {
            match e {
                Err(Error::NoGpu {
                    requested,
                    available,
                    ..
                }) => {
                    assert_eq!(requested, absent.to_string());
                    assert_eq!(available, absent);
                }
                other => panic!("expected NoGpu, got {other:?}"),
            }
        }
        let none = x.on_gpu_set(&[]);
        let e = none.sum().unwrap_err();
        assert!(matches!(e, Error::NoGpu { .. }), "{e}");
        if c.gpu_count() == 0 {
            let e = x.on_gpus().compute().unwrap_err().to_string();
            assert!(e.contains("no NVIDIA driver or device was found"), "{e}");
        }
    }

    #[test]
    fn shape_errors_come_before_any_gpu_work() {
        let c = cluster();
        let x = Array::random_normal(&c, [4, 3], [2, 2], 1).unwrap();
        let y = Array::random_normal(&c, [4, 3], [2, 2], 2).unwrap();
        let empty = Array::<f64>::zeros(&c, [0, 3], [1, 3]).unwrap();
        assert_eq!(
            empty.num_blocks(),
            1,
            "an empty array still has a (0-row) block"
        );
        let gpus: Vec<usize> = (0..c.gpu_count()).collect();
        if gpus.is_empty() {
            return; // the placement check comes first; covered above
        }
        let e = x.on_gpu_set(&gpus).matmul(&y).unwrap_err().to_string();
        assert!(e.contains("not aligned"), "{e}");
        assert!(empty.on_gpu_set(&gpus).min().is_err());
    }
}
