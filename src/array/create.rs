//! Making arrays: from an `ndarray`, constants, ranges, random numbers, a function of the
//! index, `.npy` files; and writing them back.

use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use ndarray::{ArrayD, Dimension};
use ndarray_npy::npy::header::{Header, Layout};

use super::chunks::{IntoChunks, fmt_shape};
use super::element::{Element, Float, Numeric};
use super::kernels::{
    Fill, FlatFn, FlatGen, IndexFn, IndexGen, Kernel, Read, Source, for_each_lane, standard_strides,
};
use super::random;
use super::{Array, Block, Chunks, block_view};
use crate::cluster::Cluster;
use crate::error::{Error, Result, TaskFailure};

impl<T: Element> Array<T> {
    /// An array whose block at `offset` of `shape` is computed by `make(offset, shape)`.
    pub(crate) fn generated(
        cluster: &Cluster,
        shape: &[usize],
        chunks: impl IntoChunks,
        name: &str,
        make: impl Fn(Vec<usize>, Vec<usize>) -> Arc<dyn Kernel<T>>,
    ) -> Result<Self> {
        let chunks = chunks.into_chunks(shape)?;
        let blocks = (0..chunks.num_blocks())
            .map(|i| Block {
                deps: vec![],
                kernel: make(chunks.block_offset(i), chunks.block_shape(i)),
            })
            .collect();
        Ok(Array::from_blocks(cluster, chunks, blocks, name))
    }

    /// An array from a flat-index generator.
    pub(crate) fn flat_generated(
        cluster: &Cluster,
        shape: &[usize],
        chunks: impl IntoChunks,
        name: &str,
        f: FlatFn<T>,
    ) -> Result<Self> {
        let global_strides = standard_strides(shape);
        Self::generated(cluster, shape, chunks, name, |offset, bshape| {
            Arc::new(FlatGen {
                offset,
                shape: bshape,
                global_strides: global_strides.clone(),
                f: f.clone(),
            })
        })
    }

    /// An array from an `ndarray` of any dimension, cut into `chunks`. The array is moved into
    /// the graph (no copy); each block task copies its region out of it.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// use onebox::array::Array;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let a = ndarray::Array::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as i64);
    /// let x = Array::from_ndarray(&cluster, a.clone(), [3, 2])?;
    /// assert_eq!(x.chunks().axes(), &[vec![3, 1], vec![2, 2, 1]]);
    /// assert_eq!(x.compute()?, a.into_dyn());
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn from_ndarray<D: Dimension>(
        cluster: &Cluster,
        array: ndarray::Array<T, D>,
        chunks: impl IntoChunks,
    ) -> Result<Self> {
        let array = array.into_dyn();
        let array = if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        };
        let shape = array.shape().to_vec();
        let strides = standard_strides(&shape);
        let src = Arc::new(array);
        Self::generated(cluster, &shape, chunks, "from_ndarray", |offset, bshape| {
            let base = offset.iter().zip(&strides).map(|(o, s)| o * s).sum();
            Arc::new(Read::new(
                Source::Owned(src.clone()),
                base,
                strides.clone(),
                bshape,
            ))
        })
    }

    /// An array of `shape` filled with `value`.
    pub fn full(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
        value: T,
    ) -> Result<Self> {
        Self::generated(cluster, shape.as_ref(), chunks, "full", |_, _| {
            Arc::new(Fill(value))
        })
    }

    /// An array whose element at index `[i, j, ...]` is `f(&[i, j, ...])` (`np.fromfunction`).
    /// `f` runs inside the block tasks, once per element.
    pub fn from_fn<F>(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
        f: F,
    ) -> Result<Self>
    where
        F: Fn(&[usize]) -> T + Send + Sync + 'static,
    {
        let f: IndexFn<T> = Arc::new(f);
        Self::generated(
            cluster,
            shape.as_ref(),
            chunks,
            "from_fn",
            |offset, shape| {
                Arc::new(IndexGen {
                    offset,
                    shape,
                    f: f.clone(),
                })
            },
        )
    }

    /// Reads a `.npy` file (NumPy's format, versions 1 to 3, of this element type) cut into
    /// `chunks`. A file in C order is read lazily, like a generator: each block task reads its
    /// own region of the file when it runs (one positioned read per contiguous run) and keeps
    /// nothing, so a file larger than memory can be reduced block by block. A Fortran-order
    /// file is read whole, once.
    pub fn from_npy(
        cluster: &Cluster,
        path: impl AsRef<Path>,
        chunks: impl IntoChunks,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let header = Header::from_reader(&mut file).map_err(|e| match e {
            ndarray_npy::npy::header::ReadHeaderError::Io(io) => Error::io(&path, io),
            other => Error::Invalid(format!("{}: not a .npy file: {other}", path.display())),
        })?;
        let data_start = file.stream_position().map_err(|e| Error::io(&path, e))?;
        let shape = header.shape.clone();
        let fortran = header.layout.is_fortran();
        let n: usize = shape.iter().product();
        let size = std::mem::size_of::<T>() as u64;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        // Check the element type (and that the data is all there) on the first element.
        let probe = if n > 0 { 1 } else { 0 };
        T::read_to_end_exact_vec(
            io::Read::take(&mut file, probe * size),
            &header.type_descriptor,
            probe as usize,
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "{}: cannot read as a .npy array of {}: {e}",
                path.display(),
                T::DTYPE
            ))
        })?;
        if fortran {
            drop(file);
            let a: ArrayD<T> = ndarray_npy::read_npy(&path).map_err(|e| match e {
                ndarray_npy::ReadNpyError::Io(io) => Error::io(&path, io),
                other => Error::Invalid(format!("{}: {other}", path.display())),
            })?;
            return Self::from_ndarray(cluster, a, chunks);
        }
        if file_len < data_start + n as u64 * size {
            return Err(Error::Invalid(format!(
                "{}: the header says shape {} of {} but the file holds only {} bytes of data",
                path.display(),
                fmt_shape(&shape),
                T::DTYPE,
                file_len.saturating_sub(data_start)
            )));
        }
        let chunks = chunks.into_chunks(&shape)?;
        let source = Arc::new(NpySource {
            path,
            data_start,
            header,
            strides: standard_strides(&shape),
        });
        Self::generated(cluster, &shape, chunks, "from_npy", |offset, bshape| {
            Arc::new(NpyRead::<T> {
                source: source.clone(),
                offset,
                shape: bshape,
                _t: std::marker::PhantomData,
            })
        })
    }

    /// Writes the array to a `.npy` file in bands of whole rows, each about the size of one
    /// block, one band after the other: only the band being written and the blocks it is cut
    /// from are in memory.
    pub fn to_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        self.check()?;
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::io(path, e);
        let header = Header {
            type_descriptor: T::type_descriptor(),
            layout: Layout::Standard,
            shape: self.shape.clone(),
        };
        let mut bytes = Vec::new();
        header
            .write(&mut bytes)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        // Bands along axis 0, each spanning every other axis whole, are contiguous in the file.
        let band = if self.ndim() == 0 {
            self.clone()
        } else {
            // bands of whole rows, about as large as one block
            let row: usize = self.shape.iter().skip(1).product();
            let rows = self
                .chunks
                .max_block_len()
                .checked_div(row)
                .map_or(self.shape[0], |r| r.max(1));
            let mut axes = vec![super::chunks::regular_axis(self.shape[0], rows)];
            axes.extend(self.shape.iter().skip(1).map(|&n| vec![n]));
            self.rechunk(Chunks::from_axes(axes))?
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut w = BufWriter::new(file);
        w.write_all(&bytes).map_err(io)?;
        // The band tasks are taken out and the banded array dropped, so that each band is
        // freed once written.
        let shapes: Vec<Vec<usize>> = (0..band.num_blocks())
            .map(|i| band.chunks.block_shape(i))
            .collect();
        let tasks = band.block_tasks();
        drop(band);
        for (task, shape) in tasks.into_iter().zip(shapes) {
            let chunk = task.compute()?;
            let view = block_view::<T>(&chunk, &shape)
                .map_err(|_| Error::Invalid("internal error: block size".into()))?;
            let slice = view
                .as_slice()
                .ok_or_else(|| Error::Invalid("internal error: block layout".into()))?;
            T::write_slice(slice, &mut w).map_err(|e| match e {
                ndarray_npy::WriteDataError::Io(e) => io(e),
                other => Error::Invalid(format!("{}: {other}", path.display())),
            })?;
        }
        w.flush().map_err(io)
    }
}

impl<T: Numeric> Array<T> {
    /// An array of zeros.
    pub fn zeros(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
    ) -> Result<Self> {
        Self::full(cluster, shape, chunks, T::zero())
    }

    /// An array of ones.
    pub fn ones(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
    ) -> Result<Self> {
        Self::full(cluster, shape, chunks, T::one())
    }

    /// `start, start + step, ...` up to but excluding `stop` (`np.arange`), in chunks of
    /// `chunk` elements.
    pub fn arange(cluster: &Cluster, start: T, stop: T, step: T, chunk: usize) -> Result<Self> {
        let (s0, s1, st) = (
            start.to_f64().unwrap_or(f64::NAN),
            stop.to_f64().unwrap_or(f64::NAN),
            step.to_f64().unwrap_or(f64::NAN),
        );
        if !(st != 0.0 && st.is_finite() && s0.is_finite() && s1.is_finite()) {
            return Err(Error::Invalid(format!(
                "arange({start:?}, {stop:?}, {step:?}): the step must be non-zero and the bounds finite"
            )));
        }
        let n = ((s1 - s0) / st).ceil().max(0.0) as usize;
        Self::flat_generated(
            cluster,
            &[n],
            [chunk],
            "arange",
            Arc::new(move |first, out: &mut [T]| {
                for (j, o) in out.iter_mut().enumerate() {
                    let i: T = num_traits::NumCast::from(first + j as u64).unwrap_or_else(T::zero);
                    *o = T::num_add(start, T::num_mul(i, step));
                }
            }),
        )
    }

    /// The `n x n` identity matrix.
    pub fn eye(cluster: &Cluster, n: usize, chunks: impl IntoChunks) -> Result<Self> {
        Self::from_fn(cluster, [n, n], chunks, |i| {
            if i[0] == i[1] { T::one() } else { T::zero() }
        })
        .map(|a| a.relabel(a.chunks.clone(), "eye"))
    }
}

impl<T: Float> Array<T> {
    /// `num` evenly spaced numbers from `start` to `stop` included (`np.linspace`), in chunks
    /// of `chunk` elements.
    pub fn linspace(
        cluster: &Cluster,
        start: T,
        stop: T,
        num: usize,
        chunk: usize,
    ) -> Result<Self> {
        let step = if num > 1 {
            (stop - start) / T::from(num - 1).unwrap_or_else(T::one)
        } else {
            T::zero()
        };
        Self::flat_generated(
            cluster,
            &[num],
            [chunk],
            "linspace",
            Arc::new(move |first, out: &mut [T]| {
                for (j, o) in out.iter_mut().enumerate() {
                    let i = first as usize + j;
                    *o = if i + 1 == num && num > 1 {
                        stop
                    } else {
                        start + T::from(i).unwrap_or_else(T::zero) * step
                    };
                }
            }),
        )
    }
}

impl Array<f64> {
    /// Uniform random numbers in `[0, 1)`. Element `i` (its row-major index in the whole
    /// array) depends only on `seed` and `i`: the same numbers whatever the chunking and the
    /// number of threads.
    pub fn random_uniform(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
        seed: u64,
    ) -> Result<Self> {
        let key = random::key(seed, 1);
        Self::flat_generated(
            cluster,
            shape.as_ref(),
            chunks,
            "random_uniform",
            Arc::new(move |first, out: &mut [f64]| random::fill_uniform(key, first, out)),
        )
    }

    /// Standard normal random numbers (mean 0, standard deviation 1; scale and shift them with
    /// `* s + m`, which fuses). Like [`random_uniform`](Array::random_uniform), independent of
    /// chunking and threads.
    pub fn random_normal(
        cluster: &Cluster,
        shape: impl AsRef<[usize]>,
        chunks: impl IntoChunks,
        seed: u64,
    ) -> Result<Self> {
        let key = random::key(seed, 2);
        Self::flat_generated(
            cluster,
            shape.as_ref(),
            chunks,
            "random_normal",
            Arc::new(move |first, out: &mut [f64]| random::fill_normal(key, first, out)),
        )
    }
}

/// A C-order `.npy` file: where its data starts and how to decode it.
struct NpySource {
    path: std::path::PathBuf,
    data_start: u64,
    header: Header,
    strides: Vec<usize>,
}

/// A leaf reading its block's elements from a `.npy` file when evaluated (nothing is held
/// between evaluations): one positioned read per run of consecutive elements of a tile.
struct NpyRead<T> {
    source: Arc<NpySource>,
    offset: Vec<usize>,
    shape: Vec<usize>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> Kernel<T> for NpyRead<T> {
    fn arity(&self) -> usize {
        0
    }

    fn describe(&self) -> String {
        format!("read({})", self.source.path.display())
    }

    fn eval(
        &self,
        _: &[super::kernels::Chunk],
        start: usize,
        out: &mut [T],
    ) -> std::result::Result<(), TaskFailure> {
        let src = &self.source;
        let fail = |e: Error| crate::graph::user_error(e);
        // runs of consecutive flat indices of the file: (first, length, position in `out`)
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for_each_lane(&self.shape, start, out.len(), |idx, o, count| {
            let flat: usize = idx
                .iter()
                .zip(&self.offset)
                .zip(&src.strides)
                .map(|((i, off), s)| (i + off) * s)
                .sum();
            match runs.last_mut() {
                Some((first, len, _)) if *first + *len == flat => *len += count,
                _ => runs.push((flat, count, o)),
            }
        });
        let size = std::mem::size_of::<T>();
        let mut file = std::fs::File::open(&src.path).map_err(|e| fail(Error::io(&src.path, e)))?;
        let mut bytes = Vec::new();
        for (first, len, at) in runs {
            bytes.resize(len * size, 0);
            file.seek(io::SeekFrom::Start(src.data_start + (first * size) as u64))
                .and_then(|_| io::Read::read_exact(&mut file, &mut bytes))
                .map_err(|e| fail(Error::io(&src.path, e)))?;
            let part = T::read_to_end_exact_vec(&bytes[..], &src.header.type_descriptor, len)
                .map_err(|e| fail(Error::Invalid(format!("{}: {e}", src.path.display()))))?;
            out[at..at + len].copy_from_slice(&part);
        }
        Ok(())
    }
}

/// Checks that a shape and a total agree (used by `reshape`).
pub(crate) fn size_mismatch(from: &[usize], to: &[usize]) -> Error {
    Error::Invalid(format!(
        "cannot reshape an array of shape {} ({} elements) into shape {} ({} elements)",
        fmt_shape(from),
        from.iter().product::<usize>(),
        fmt_shape(to),
        to.iter().product::<usize>()
    ))
}
