//! Linear algebra: blocked matrix products and transposes.
//!
//! `a.matmul(&b)` aligns `b`'s row chunks to `a`'s column chunks, computes each input block
//! once, and multiplies block pairs with ndarray's `general_mat_mul` (matrixmultiply for
//! floats, with its AVX-512, AVX2 or SSE kernel chosen at run time), accumulating the products
//! of an output block into one buffer. An output block is one task when there are enough
//! output blocks to keep every thread busy; otherwise its products are split into a few tasks
//! whose sums are added in a tree of fan-in [`fan_in`](super::Array::fan_in). A transposed
//! operand (`b.t()`) is read through a transposed view of its blocks, not copied. Only the
//! blocks in flight and the result are held.
//!
//! `tsqr` factorizes tall-and-skinny matrices (many rows, few columns) in two levels of
//! Householder QRs, the algorithm of `dask.array.linalg.tsqr`.

use std::sync::Arc;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Ix2, Zip, s};

use super::chunks::fmt_shape;
use super::element::{Float, Numeric};
use super::kernels::{Chunk, internal, to_chunk};
use super::{Array, Block, Chunks, block_view};
use crate::error::{Error, Result, TaskFailure};
use crate::graph::Delayed;

impl<T: Numeric> Array<T> {
    /// The matrix product of two 2-D arrays (`a @ b`).
    ///
    /// ```
    /// use onebox::prelude::*;
    /// use onebox::array::Array;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let a = Array::<f64>::from_fn(&cluster, [3, 4], [2, 3], |i| (i[0] + i[1]) as f64)?;
    /// let b = Array::<f64>::eye(&cluster, 4, [3, 3])?;
    /// assert_eq!(a.matmul(&b)?.compute()?, a.compute()?);
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn matmul(&self, other: &Array<T>) -> Result<Array<T>> {
        self.check()?;
        other.check()?;
        if self.ndim() != 2 || other.ndim() != 2 {
            return Err(Error::Invalid(format!(
                "matmul needs two 2-D arrays, got shapes {} and {}",
                fmt_shape(self.shape()),
                fmt_shape(other.shape())
            )));
        }
        let (m, k) = (self.shape()[0], self.shape()[1]);
        let (k2, n) = (other.shape()[0], other.shape()[1]);
        if k != k2 {
            return Err(Error::Invalid(format!(
                "matmul: shapes {} and {} are not aligned: {k} (axis 1) != {k2} (axis 0)",
                fmt_shape(self.shape()),
                fmt_shape(other.shape())
            )));
        }
        let b = other.rechunk_axes(&[Some(self.chunks().ax(1).to_vec()), None]);
        let a_ops = self.matmul_operands();
        let b_ops = b.matmul_operands();
        let (gi, gl) = (self.chunks().ax(0).len(), self.chunks().ax(1).len());
        let gj = b.chunks().ax(1).len();
        let out = Chunks::from_axes(vec![
            self.chunks().ax(0).to_vec(),
            b.chunks().ax(1).to_vec(),
        ]);
        let cluster = self.cluster().clone();
        // Each output block accumulates its products in one buffer, in as few tasks as keep
        // every thread busy: the inner (l) blocks are cut into `groups` runs, one task each,
        // summed in a tree when there is more than one.
        let want = (2 * cluster.threads()).div_ceil((gi * gj).max(1));
        let groups = want.clamp(1, gl.max(1));
        let mut blocks = Vec::with_capacity(gi * gj);
        for i in 0..gi {
            for j in 0..gj {
                let out_shape = out.block_shape(i * gj + j);
                let products: Vec<Delayed<ArrayD<T>>> = (0..groups)
                    .map(|g| (g * gl / groups, (g + 1) * gl / groups))
                    .filter(|(l0, l1)| l1 > l0)
                    .map(|(l0, l1)| {
                        let mut deps = Vec::with_capacity(2 * (l1 - l0));
                        let mut shapes = Vec::with_capacity(2 * (l1 - l0));
                        for l in l0..l1 {
                            let (ta, sa) = &a_ops[i * gl + l];
                            let (tb, sb) = &b_ops[l * gj + j];
                            deps.push(ta.clone());
                            deps.push(tb.clone());
                            shapes.push((*sa, *sb));
                        }
                        let shape = [out_shape[0], out_shape[1]];
                        Delayed::combine(&cluster, deps, move |inputs| {
                            let mut c = Array2::<T>::zeros(shape);
                            for (k, (sa, sb)) in shapes.iter().enumerate() {
                                let x = sa.view(&inputs[2 * k])?;
                                let y = sb.view(&inputs[2 * k + 1])?;
                                general_mat_mul(T::one(), &x, &y, T::one(), &mut c);
                            }
                            Ok(c.into_dyn())
                        })
                        .label(&format!("array-matmul-block[{i},{j},{l0}..{l1}]"))
                    })
                    .collect();
                let sum = tree_sum(&cluster, products, self.fan_in());
                let sum = match sum {
                    Some(s) => s,
                    None => {
                        let shape = out_shape.clone();
                        cluster.delayed(move || ArrayD::from_elem(shape.clone(), T::zero()))
                    }
                };
                let task = sum
                    .map(to_chunk::<T>)
                    .label(&format!("array-matmul[{i},{j}]"));
                blocks.push(Block::of_task(task, &out_shape));
            }
        }
        let _ = (m, n);
        Ok(Array::from_blocks(&cluster, out, blocks, "matmul").with_fan_in(self.fan_in()))
    }

    /// Per block of this 2-D array, what a matrix product reads: the task computing the
    /// block, or, for a block that is the transpose of another task's block (`x.t()`), that
    /// task, read through a transposed view (no transposed copy is made).
    fn matmul_operands(&self) -> Vec<(Delayed<Chunk>, BlockOperand)> {
        self.blocks()
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let shape = self.chunks().block_shape(i);
                let (rows, cols) = (shape[0], shape[1]);
                if b.kernel.transposes_input() && b.deps.len() == 1 {
                    (
                        b.deps[0].clone(),
                        BlockOperand {
                            rows,
                            cols,
                            transposed: true,
                        },
                    )
                } else {
                    (
                        self.block_task(i),
                        BlockOperand {
                            rows,
                            cols,
                            transposed: false,
                        },
                    )
                }
            })
            .collect()
    }

    /// The dot product: the matrix product for 2-D arrays, the matrix-vector and
    /// vector-matrix products when one side is 1-D, the inner product (0-D) of two vectors.
    pub fn dot(&self, other: &Array<T>) -> Result<Array<T>> {
        match (self.ndim(), other.ndim()) {
            (2, 2) => self.matmul(other),
            (2, 1) => self.matmul(&other.expand_dims(1)?)?.squeeze(1),
            (1, 2) => self.expand_dims(0)?.matmul(other)?.squeeze(0),
            (1, 1) => self
                .expand_dims(0)?
                .matmul(&other.expand_dims(1)?)?
                .squeeze(1)?
                .squeeze(0),
            _ => Err(Error::Invalid(format!(
                "dot supports 1-D and 2-D arrays, got shapes {} and {}",
                fmt_shape(self.shape()),
                fmt_shape(other.shape())
            ))),
        }
    }

    /// Contracts axis `axes.0` of this 2-D array with axis `axes.1` of another 2-D array
    /// (`np.tensordot(a, b, axes=([i], [j]))`): the result has this array's other axis, then
    /// the other array's.
    pub fn tensordot(&self, other: &Array<T>, axes: (usize, usize)) -> Result<Array<T>> {
        if self.ndim() != 2 || other.ndim() != 2 || axes.0 > 1 || axes.1 > 1 {
            return Err(Error::Invalid(format!(
                "tensordot supports two 2-D arrays and axes 0 or 1, got shapes {} and {} with axes {axes:?}",
                fmt_shape(self.shape()),
                fmt_shape(other.shape())
            )));
        }
        let a = if axes.0 == 1 { self.clone() } else { self.t() };
        let b = if axes.1 == 0 {
            other.clone()
        } else {
            other.t()
        };
        a.matmul(&b)
    }
}

/// How a matrix product reads one block of an operand: a `rows x cols` block, stored as is or
/// as its transpose (a `cols x rows` block read through a transposed view).
#[derive(Clone, Copy)]
struct BlockOperand {
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl BlockOperand {
    fn view<'a, T: Numeric>(&self, c: &'a Chunk) -> Result<ArrayView2<'a, T>, TaskFailure> {
        let stored = if self.transposed {
            [self.cols, self.rows]
        } else {
            [self.rows, self.cols]
        };
        let v = block_view::<T>(c, &stored)?
            .into_dimensionality::<Ix2>()
            .map_err(|e| internal(e.to_string()))?;
        Ok(if self.transposed {
            v.reversed_axes()
        } else {
            v
        })
    }
}

/// Sums arrays of one shape in a tree of `fan_in`; `None` for no arrays.
fn tree_sum<T: Numeric>(
    cluster: &crate::Cluster,
    mut items: Vec<Delayed<ArrayD<T>>>,
    fan_in: usize,
) -> Option<Delayed<ArrayD<T>>> {
    while items.len() > 1 {
        let mut next = Vec::new();
        let mut it = items.into_iter().peekable();
        while it.peek().is_some() {
            let group: Vec<_> = it.by_ref().take(fan_in.max(2)).collect();
            if group.len() == 1 {
                next.extend(group);
                continue;
            }
            next.push(
                Delayed::combine(cluster, group, |vals| {
                    let mut it = vals.into_iter();
                    let mut acc = it.next().ok_or_else(|| internal("empty sum"))?;
                    for x in it {
                        if x.shape() != acc.shape() {
                            return Err(internal("matmul partial products of different shapes"));
                        }
                        Zip::from(&mut acc)
                            .and(&x)
                            .for_each(|a, &b| *a = T::num_add(*a, b));
                    }
                    Ok(acc)
                })
                .label("array-matmul-sum"),
            );
        }
        items = next;
    }
    items.pop()
}

/// Householder QR of an `m x n` matrix with `m >= n`: `(Q, R)` with `Q` `m x n` with
/// orthonormal columns, `R` `n x n` upper triangular with a non-negative diagonal.
fn householder_qr<T: Float>(a: ArrayView2<'_, T>) -> (Array2<T>, Array2<T>) {
    let (m, n) = a.dim();
    let mut r = a.to_owned();
    let mut reflectors: Vec<Option<Array1<T>>> = Vec::with_capacity(n);
    let two = T::one() + T::one();
    for k in 0..n.min(m) {
        let x = r.slice(s![k.., k]);
        let norm = x.dot(&x).sqrt();
        if norm == T::zero() {
            reflectors.push(None);
            continue;
        }
        let alpha = if x[0] > T::zero() { -norm } else { norm };
        let mut v = x.to_owned();
        v[0] = v[0] - alpha;
        let vnorm = v.dot(&v).sqrt();
        if vnorm == T::zero() {
            reflectors.push(None);
            continue;
        }
        v.mapv_inplace(|e| e / vnorm);
        for j in k..n {
            let mut col = r.slice_mut(s![k.., j]);
            let d = two * v.dot(&col);
            col.zip_mut_with(&v, |c, &vi| *c = *c - d * vi);
        }
        reflectors.push(Some(v));
    }
    let mut q = Array2::<T>::zeros((m, n));
    for i in 0..n.min(m) {
        q[[i, i]] = T::one();
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        if let Some(v) = v {
            for j in 0..n {
                let mut col = q.slice_mut(s![k.., j]);
                let d = two * v.dot(&col);
                col.zip_mut_with(v, |c, &vi| *c = *c - d * vi);
            }
        }
    }
    let mut rr = Array2::<T>::zeros((n, n));
    for i in 0..n.min(m) {
        for j in i..n {
            rr[[i, j]] = r[[i, j]];
        }
    }
    // a unique factorization: R's diagonal non-negative
    for i in 0..n.min(m) {
        if rr[[i, i]] < T::zero() {
            rr.row_mut(i).mapv_inplace(|e| -e);
            q.column_mut(i).mapv_inplace(|e| -e);
        }
    }
    (q, rr)
}

type Qr<T> = Arc<(Array2<T>, Array2<T>)>;

impl<T: Float> Array<T> {
    /// The QR factorization of a tall-and-skinny 2-D array (`dask.array.linalg.tsqr`):
    /// `(Q, R)` with `Q` of this array's shape and orthonormal columns, and `R` square upper
    /// triangular with a non-negative diagonal, so that `Q R` is this array.
    ///
    /// Each block of rows is factorized on its own, the stacked `R`s once more, and each
    /// block's `Q` is corrected with its part of the second `Q`: two levels of tasks. The
    /// columns are taken as one chunk; every block of rows needs at least as many rows as
    /// there are columns.
    pub fn tsqr(&self) -> Result<(Array<T>, Array<T>)> {
        self.check()?;
        if self.ndim() != 2 {
            return Err(Error::Invalid(format!(
                "tsqr needs a 2-D array, got shape {}",
                fmt_shape(self.shape())
            )));
        }
        let n = self.shape()[1];
        let m = self.shape()[0];
        if m < n || n == 0 {
            return Err(Error::Invalid(format!(
                "tsqr needs a tall matrix with at least one column (rows >= columns), got shape {}",
                fmt_shape(self.shape())
            )));
        }
        // row blocks shorter than `n` are merged with the next ones (the last with the previous)
        let mut row_chunks: Vec<usize> = Vec::new();
        let mut pending = 0;
        for &r in self.chunks().ax(0) {
            pending += r;
            if pending >= n {
                row_chunks.push(pending);
                pending = 0;
            }
        }
        if pending > 0 {
            match row_chunks.last_mut() {
                Some(last) => *last += pending,
                None => row_chunks.push(pending),
            }
        }
        let a = self.rechunk_axes(&[Some(row_chunks), Some(vec![n])]);
        let cluster = a.cluster().clone();
        let rows = a.chunks().ax(0).to_vec();
        let to2 = |c: &Chunk,
                   shape: &[usize]|
         -> std::result::Result<Array2<T>, crate::error::TaskFailure> {
            block_view::<T>(c, shape)?
                .into_dimensionality::<Ix2>()
                .map(|v| v.to_owned())
                .map_err(|e| internal(e.to_string()))
        };
        let local: Vec<Delayed<Qr<T>>> = (0..rows.len())
            .map(|i| {
                let shape = a.chunks().block_shape(i);
                super::then(&cluster, a.block_task(i), move |c| {
                    let m = to2(&c, &shape)?;
                    Ok(Arc::new(householder_qr(m.view())))
                })
                .label(&format!("array-tsqr-local[{i}]"))
            })
            .collect();
        let rs: Vec<Delayed<Array2<T>>> = local
            .iter()
            .map(|q| q.clone().map(|q| q.1.clone()))
            .collect();
        let second: Delayed<Qr<T>> = Delayed::combine(&cluster, rs, move |rs| {
            let views: Vec<_> = rs.iter().map(|r| r.view()).collect();
            let stacked = ndarray::concatenate(ndarray::Axis(0), &views)
                .map_err(|e| internal(e.to_string()))?;
            Ok(Arc::new(householder_qr(stacked.view())))
        })
        .label("array-tsqr-stacked");
        let q_tasks: Vec<Delayed<Chunk>> = local
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                l.zip(second.clone())
                    .map(move |(l, s)| {
                        let part = s.0.slice(s![i * n..(i + 1) * n, ..]);
                        Arc::new(l.0.dot(&part).into_dyn()) as Chunk
                    })
                    .label(&format!("array-tsqr-q[{i}]"))
            })
            .collect();
        let r_task = second
            .map(|s| Arc::new(s.1.clone().into_dyn()) as Chunk)
            .label("array-tsqr-r");
        let q = Array::from_tasks(&cluster, a.chunks().clone(), q_tasks, "tsqr-q")
            .with_fan_in(self.fan_in());
        let r = Array::from_tasks(
            &cluster,
            Chunks::from_axes(vec![vec![n], vec![n]]),
            vec![r_task],
            "tsqr-r",
        )
        .with_fan_in(self.fan_in());
        Ok((q, r))
    }
}
