//! Chunked n-dimensional arrays, like `dask.array`, on the cluster.
//!
//! An [`Array<T>`] is a large n-dimensional array cut into a grid of **blocks** by its
//! [`Chunks`] (per axis, the list of chunk lengths). It is **lazy**: creating one, adding two,
//! taking a logarithm or slicing builds a description and computes nothing. Each block is a
//! small expression over the tasks it depends on: a chain of elementwise operations
//! (`(&x - &m) / &s`, `.exp()`, comparisons, `where`) **fuses** into one pass over each block,
//! tile by tile, without a temporary array per operation ([`kernels`] has the details).
//! Work that crosses blocks is an explicit graph of tasks on the cluster's one scheduler:
//! reductions are trees of partial results (fan-in 8 by default, see
//! [`with_fan_in`](Array::with_fan_in)), `matmul` multiplies block pairs and sums them in
//! trees, `rechunk` and slicing assemble new blocks from old ones.
//!
//! ```
//! use onebox::prelude::*;
//! use onebox::array::Array;
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let x = Array::random_normal(&cluster, [1_000, 300], [250, 100], 42)?;
//! // column-wise standardisation, one pass per block once the means and stds are known
//! let z = (&x - &x.mean_axis(&[0])?) / &x.std_axis(&[0])?;
//! let means = z.mean_axis(&[0])?.compute()?;            // one task per block, then a tree
//! assert!(means.iter().all(|m| m.abs() < 1e-9));
//! let whole = x.compute()?;                              // the same numbers, in one ndarray
//! assert!((x.sum()?.scalar()? - whole.sum()).abs() < 1e-9);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! ## At a glance
//!
//! | NumPy / dask.array                        | onebox                                                  |
//! |-------------------------------------------|---------------------------------------------------------|
//! | `da.from_array(a, chunks=(1000, 1000))`   | [`Array::from_ndarray`]`(&cluster, a, [1000, 1000])`    |
//! | `da.zeros`, `ones`, `full`, `arange`, `linspace`, `eye` | [`Array::zeros`], [`ones`](Array::ones), [`full`](Array::full), [`arange`](Array::arange), [`linspace`](Array::linspace), [`eye`](Array::eye) |
//! | `da.random.default_rng(42).normal(...)`   | [`Array::random_normal`]`(&cluster, shape, chunks, 42)` |
//! | `da.fromfunction(f, shape)`               | [`Array::from_fn`]                                      |
//! | `np.load` / `np.save`                     | [`Array::from_npy`] / [`to_npy`](Array::to_npy)         |
//! | `x + y`, `x * 2`, `-x`, `np.exp(x)`, ...  | `&x + &y`, `&x * 2.0`, `-&x`, `x.exp()`, ...            |
//! | `x > 0`, `np.where(c, x, 0)`, `np.clip`   | `x.greater(0.0)`, [`Array::where_`]`(&c, &x, 0.0)`, `x.clip(lo, hi)` |
//! | `x.map_blocks(f)`                         | [`x.map_blocks(f)`](Array::map_blocks), or per element [`x.map(f)`](Array::map) |
//! | `x.sum()`, `x.mean(axis=0)`, `x.std(0)`   | `x.sum()?`, `x.mean_axis(&[0])?`, `x.std_axis(&[0])?`   |
//! | `x.argmin()`, `np.nanmax(x)`, `np.nanargmin(x, 1)`, `x.cumsum(1)` | `x.argmin()?`, `x.nanmax()?`, `x.nanargmin_axis(1)?`, `x.cumsum(1)?` |
//! | `x @ y`, `x.T`, `da.tensordot`, `da.linalg.tsqr` | `x.matmul(&y)?`, `x.t()`, `x.tensordot(&y, (1, 0))?`, `x.tsqr()?` |
//! | `x[1:9:2, 3, None]`, `x[mask]`            | `x.slice(&[Idx::range(1, Some(9), 2), Idx::Index(3), Idx::NewAxis])?`, `x.mask(&m)?` |
//! | `x.rechunk`, `reshape`, `da.concatenate`, `da.stack` | [`rechunk`](Array::rechunk), [`reshape`](Array::reshape), [`Array::concatenate`], [`Array::stack`] |
//! | CuPy / `dask.array` with `cupy` chunks    | [`x.on_gpus()`](Array::on_gpus)`.compute()?`, `.sum()?`, `.matmul(&y)?` |
//! | `x.blocks[i, j]`, `x.persist()`, `x.compute()` | [`x.block(&[i, j])`](Array::block), [`persist`](Array::persist), [`compute`](Array::compute) (an `ndarray`), [`scalar`](Array::scalar) |
//!
//! Reductions over every axis give a 0-dimensional array (it broadcasts, and
//! [`scalar`](Array::scalar) computes its value); `*_axis` reductions drop the reduced axes
//! (add one back with [`expand_dims`](Array::expand_dims) to broadcast against the input).
//!
//! ## Memory
//!
//! A block's task only materializes its own block, and a reduction does not even do that:
//! `random_normal(..).sum()` runs one task per block that generates and sums the block in
//! cache-sized slabs of rows, so an array far larger than memory is reduced with a few hundred
//! kilobytes per pool thread (the test `tests/array_memory.rs` sums 192 MB under a 64 MB
//! budget with a peak resident size of about 7 MB).
//!
//! Arrays whose blocks are task outputs (reductions such as the means above, `rechunk`,
//! slicing, `reshape`, `matmul`, `map_blocks`, `persist`) keep their computed blocks while the
//! array is alive, like a persisted dask array: a second `compute` reuses them. Within one
//! expression (`x.rechunk(c)?.sum()?`) the intermediate array is dropped at once and each
//! block is freed as soon as its consumer has read it. Arrays of fused kernels (creation and
//! elementwise operations) hold nothing and are recomputed by each consumer: cheap for
//! generators; call [`persist`](Array::persist) to keep an expensive intermediate.
//!
//! ## On GPUs
//!
//! [`x.on_gpus()`](Array::on_gpus) (or [`on_gpu_set`](Array::on_gpu_set)) places the same lazy
//! array on the cluster's GPU workers: each block's chain of elementwise operations becomes ONE
//! fused CUDA kernel, reductions (`sum`, `mean`, `min`, `max`, `var`, `std`) run per block on
//! the GPUs and combine in the usual tree, and `matmul` multiplies blocks with cuBLAS.
//! [`gpu`] says what runs where, and what is not on the GPU yet.
//!
//! ## Errors
//!
//! Creation, reductions and structural operations check shapes and axes at once and return a
//! [`Result`]. Arithmetic operators cannot return one: an operator on arrays whose shapes do not
//! broadcast gives an array that carries the error, and every later use of it (`compute`, a
//! reduction, [`check`](Array::check)) returns it, naming both shapes.
//!
//! Element types are [`Element`] (`f32`, `f64`, `i32`, `i64`, `u8`, `bool`), [`Numeric`] and
//! [`Float`].

mod chunks;
mod columns;
mod create;
mod element;
mod elementwise;
pub mod gpu;
pub mod kernels;
mod linalg;
mod random;
mod reduce;
mod structure;
mod ziggurat;

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Slice};

pub use chunks::{Chunks, IntoChunks};
pub use element::{Element, Float, Numeric};
pub use elementwise::Operand;
pub use gpu::{GpuArray, GpuElement, gpu_for_block};
pub use structure::Idx;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::graph::Delayed;
use chunks::fmt_shape;
use kernels::{Chunk, Kernel, Read, chunk_array, eval_block, internal, to_chunk};

/// The default number of partial results a reduction task combines.
pub const DEFAULT_FAN_IN: usize = 8;

/// The bytes of a block's elements (`len x size_of::<T>()`), for the cluster's managed bytes;
/// 0 for a chunk that is not an array of `T`.
fn chunk_bytes<T: Element>(chunk: &Chunk) -> usize {
    chunk
        .downcast_ref::<ArrayD<T>>()
        .map_or(0, |a| a.len() * std::mem::size_of::<T>())
}

/// One block: the tasks it reads and the kernel that computes it from them.
pub(crate) struct Block<T> {
    pub(crate) deps: Vec<Delayed<Chunk>>,
    pub(crate) kernel: Arc<dyn Kernel<T>>,
}

impl<T> Clone for Block<T> {
    fn clone(&self) -> Self {
        Block {
            deps: self.deps.clone(),
            kernel: self.kernel.clone(),
        }
    }
}

impl<T: Element> Block<T> {
    /// A block that is the (computed) output of `task`, of `shape`.
    pub(crate) fn of_task(task: Delayed<Chunk>, shape: &[usize]) -> Self {
        Block {
            deps: vec![task.sized(chunk_bytes::<T>)],
            kernel: Arc::new(Read::<T>::input(shape)),
        }
    }
}

/// A lazy n-dimensional array of `T`, cut into blocks computed by tasks on a [`Cluster`].
/// See the [module docs](self).
pub struct Array<T: Element> {
    cluster: Cluster,
    shape: Vec<usize>,
    chunks: Chunks,
    blocks: Arc<Vec<Block<T>>>,
    name: Arc<str>,
    fan_in: usize,
    error: Option<Arc<str>>,
}

impl<T: Element> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            cluster: self.cluster.clone(),
            shape: self.shape.clone(),
            chunks: self.chunks.clone(),
            blocks: self.blocks.clone(),
            name: self.name.clone(),
            fan_in: self.fan_in,
            error: self.error.clone(),
        }
    }
}

impl<T: Element> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => write!(f, "Array<{}>(error: {e})", T::DTYPE),
            None => write!(
                f,
                "Array<{}>(shape={}, chunks={:?}, blocks={}, name={}, kernel={})",
                T::DTYPE,
                fmt_shape(&self.shape),
                self.chunks.axes(),
                self.blocks.len(),
                self.name,
                self.blocks
                    .first()
                    .map_or_else(String::new, |b| b.kernel.describe())
            ),
        }
    }
}

impl<T: Element> Array<T> {
    /// An array from its blocks (row-major over the grid of `chunks`).
    pub(crate) fn from_blocks(
        cluster: &Cluster,
        chunks: Chunks,
        blocks: Vec<Block<T>>,
        name: &str,
    ) -> Self {
        Array {
            cluster: cluster.clone(),
            shape: chunks.shape(),
            chunks,
            blocks: Arc::new(blocks),
            name: Arc::from(name),
            fan_in: DEFAULT_FAN_IN,
            error: None,
        }
    }

    /// An array whose blocks are the outputs of `tasks` (one per block, row-major).
    pub(crate) fn from_tasks(
        cluster: &Cluster,
        chunks: Chunks,
        tasks: Vec<Delayed<Chunk>>,
        name: &str,
    ) -> Self {
        let blocks = tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| Block::of_task(t, &chunks.block_shape(i)))
            .collect();
        Self::from_blocks(cluster, chunks, blocks, name)
    }

    /// An array that only carries an error, reported by every later use.
    pub(crate) fn failed(cluster: &Cluster, msg: impl Into<String>) -> Self {
        Array {
            cluster: cluster.clone(),
            shape: vec![],
            chunks: Chunks::from_axes(vec![]),
            blocks: Arc::new(Vec::new()),
            name: Arc::from("error"),
            fan_in: DEFAULT_FAN_IN,
            error: Some(Arc::from(msg.into())),
        }
    }

    /// The same blocks with new metadata (same grid size and row-major order).
    pub(crate) fn relabel(&self, chunks: Chunks, name: &str) -> Self {
        let mut a = self.clone();
        a.shape = chunks.shape();
        a.chunks = chunks;
        a.name = Arc::from(name);
        a
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How the array is cut into blocks.
    pub fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    /// The number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The cluster that computes this array.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The name of the operation that made this array (its tasks are labelled
    /// `array-NAME[i,j]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// NumPy's name for the element type.
    pub fn dtype(&self) -> &'static str {
        T::DTYPE
    }

    /// Reductions on this array (and arrays made from it) combine `n` partial results per task
    /// (at least 2; dask's `split_every`).
    #[must_use]
    pub fn with_fan_in(mut self, n: usize) -> Self {
        self.fan_in = n.max(2);
        self
    }

    /// The number of partial results a reduction task combines.
    pub fn fan_in(&self) -> usize {
        self.fan_in
    }

    /// Returns the error this array carries (from an operator on shapes that do not
    /// broadcast), if any.
    pub fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(Error::Invalid(e.to_string())),
            None => Ok(()),
        }
    }

    pub(crate) fn err_msg(&self) -> Option<&Arc<str>> {
        self.error.as_ref()
    }

    pub(crate) fn blocks(&self) -> &[Block<T>] {
        &self.blocks
    }

    /// The task label of block `i`.
    pub(crate) fn block_label(&self, i: usize) -> String {
        let idx = self.chunks.block_index(i);
        let idx: Vec<String> = idx.iter().map(ToString::to_string).collect();
        format!("array-{}[{}]", self.name, idx.join(","))
    }

    /// The task computing block `i` (a new task per call, except for a block that is already
    /// one task's output).
    pub(crate) fn block_task(&self, i: usize) -> Delayed<Chunk> {
        let b = &self.blocks[i];
        if b.kernel.passthrough() && b.deps.len() == 1 {
            return b.deps[0].clone();
        }
        let kernel = b.kernel.clone();
        let shape = self.chunks.block_shape(i);
        Delayed::combine(&self.cluster, b.deps.clone(), move |inputs| {
            eval_block(&*kernel, &inputs, &shape)
        })
        .label(&self.block_label(i))
        .sized(chunk_bytes::<T>)
    }

    /// One task per block.
    pub(crate) fn block_tasks(&self) -> Vec<Delayed<Chunk>> {
        (0..self.blocks.len()).map(|i| self.block_task(i)).collect()
    }

    /// Computes the array into one `ndarray` (the whole result must fit in memory).
    pub fn compute(&self) -> Result<ArrayD<T>> {
        self.check()?;
        let chunks = Delayed::join_all(&self.cluster, self.block_tasks()).compute()?;
        let mut out = ArrayD::<T>::default(IxDyn(&self.shape));
        for (i, c) in chunks.iter().enumerate() {
            let shape = self.chunks.block_shape(i);
            let offset = self.chunks.block_offset(i);
            let view = block_view::<T>(c, &shape).map_err(|_| internal_error(&self.name))?;
            out.slice_each_axis_mut(|ax| {
                let k = ax.axis.index();
                Slice::from(offset[k]..offset[k] + shape[k])
            })
            .assign(&view);
        }
        Ok(out)
    }

    /// Computes a one-element array (such as a reduction over all axes) into its value.
    pub fn scalar(&self) -> Result<T> {
        let a = self.compute()?;
        if a.len() != 1 {
            return Err(Error::Invalid(format!(
                "scalar() needs an array with exactly one element, this one has shape {}",
                fmt_shape(&self.shape)
            )));
        }
        a.iter()
            .next()
            .copied()
            .ok_or_else(|| Error::Invalid("empty array".into()))
    }

    /// Computes every block now and returns an array holding them, so that later
    /// operations start from the computed blocks instead of recomputing them.
    pub fn persist(&self) -> Result<Array<T>> {
        self.check()?;
        let chunks = Delayed::join_all(&self.cluster, self.block_tasks()).compute()?;
        let tasks = chunks.into_iter().map(|c| self.cluster.value(c)).collect();
        Ok(Array::from_tasks(
            &self.cluster,
            self.chunks.clone(),
            tasks,
            &self.name,
        ))
    }

    /// The block at grid position `index`, as an array of its own (lazy, like
    /// `x.blocks[i, j]` in dask).
    pub fn block(&self, index: &[usize]) -> Result<Array<T>> {
        self.check()?;
        let grid = self.chunks.grid();
        if index.len() != grid.len() || index.iter().zip(&grid).any(|(i, g)| i >= g) {
            return Err(Error::Invalid(format!(
                "block index {index:?} is outside the block grid {} of an array of shape {}",
                fmt_shape(&grid),
                fmt_shape(&self.shape)
            )));
        }
        let i = self.chunks.block_number(index);
        let shape = self.chunks.block_shape(i);
        let chunks = Chunks::from_axes(shape.iter().map(|&n| vec![n]).collect());
        Ok(Array::from_blocks(
            &self.cluster,
            chunks,
            vec![self.blocks[i].clone()],
            &self.name,
        )
        .with_fan_in(self.fan_in))
    }

    /// Computes block `index` into an `ndarray`.
    pub fn compute_block(&self, index: &[usize]) -> Result<ArrayD<T>> {
        self.block(index)?.compute()
    }

    /// Applies `f` to every block (as an `ndarray` view) and returns the array of its results:
    /// one task per block, labelled `array-map_blocks[i,j]`. `f` must return an array of the
    /// block's shape; the task fails otherwise, naming the block and both shapes.
    pub fn map_blocks<U, F>(&self, f: F) -> Array<U>
    where
        U: Element,
        F: Fn(ArrayViewD<'_, T>) -> ArrayD<U> + Send + Sync + 'static,
    {
        if let Some(e) = &self.error {
            return Array::failed(&self.cluster, e.to_string());
        }
        let f = Arc::new(f);
        let tasks = (0..self.blocks.len())
            .map(|i| {
                let f = f.clone();
                let shape = self.chunks.block_shape(i);
                let index = self.chunks.block_index(i);
                then(&self.cluster, self.block_task(i), move |c| {
                        let v = block_view::<T>(&c, &shape)?;
                        let out = f(v);
                        if out.shape() != shape.as_slice() {
                            return Err(internal(format!(
                                "map_blocks: the function returned shape {} for block {index:?} of shape {}",
                                fmt_shape(out.shape()),
                                fmt_shape(&shape)
                            )));
                        }
                        Ok(to_chunk(out))
                })
                .label(&format!("array-map_blocks[{}]", fmt_index(&self.chunks.block_index(i))))
            })
            .collect();
        Array::from_tasks(&self.cluster, self.chunks.clone(), tasks, "map_blocks")
            .with_fan_in(self.fan_in)
    }
}

/// A computed block viewed with `shape`.
pub(crate) fn block_view<'a, T: Element>(
    c: &'a Chunk,
    shape: &[usize],
) -> Result<ArrayViewD<'a, T>, crate::error::TaskFailure> {
    let a = chunk_array::<T>(c)?;
    let s = a
        .as_slice()
        .ok_or_else(|| internal("a block is not in standard layout"))?;
    ArrayViewD::from_shape(IxDyn(shape), s).map_err(|e| internal(e.to_string()))
}

/// A task applying `f` to one block's output.
pub(crate) fn then<U, F>(cluster: &Cluster, d: Delayed<Chunk>, mut f: F) -> Delayed<U>
where
    U: Clone + Send + 'static,
    F: FnMut(Chunk) -> std::result::Result<U, crate::error::TaskFailure> + Send + 'static,
{
    Delayed::combine(cluster, vec![d], move |mut v| {
        let c = v.pop().ok_or_else(|| internal("a task lost its input"))?;
        f(c)
    })
}

fn internal_error(name: &str) -> Error {
    Error::Invalid(format!(
        "internal error: a block of `{name}` has the wrong size"
    ))
}

pub(crate) fn fmt_index(idx: &[usize]) -> String {
    idx.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Validates a list of axes against `ndim`: each below `ndim`, none twice. Sorted.
pub(crate) fn check_axes(axes: &[usize], shape: &[usize], what: &str) -> Result<Vec<usize>> {
    let mut v = axes.to_vec();
    for &a in axes {
        if a >= shape.len() {
            return Err(Error::Invalid(format!(
                "{what}: axis {a} is out of bounds for an array of shape {} ({} axes)",
                fmt_shape(shape),
                shape.len()
            )));
        }
    }
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Invalid(format!(
            "{what}: axes {axes:?} name an axis twice"
        )));
    }
    Ok(v)
}
