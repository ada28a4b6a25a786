//! The chunk grid: how an array's shape is cut into blocks.

use crate::error::{Error, Result};

/// How each axis of an array is cut: per axis, the list of chunk lengths (their sum is the
/// axis length). The blocks are the cartesian product of the per-axis chunks, numbered in
/// row-major order (the last axis varies fastest).
///
/// An axis of length 0 has the single chunk `[0]`, so that every array has at least one block.
///
/// ```
/// use onebox::array::Chunks;
/// let c = Chunks::regular(&[10, 4], &[4, 4])?;
/// assert_eq!(c.axis(0), Some(&[4, 4, 2][..]));      // regular chunks, a smaller last one
/// assert_eq!(c.grid(), vec![3, 1]);
/// assert_eq!(c.block_shape(2), vec![2, 4]);
/// # Ok::<(), onebox::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunks {
    axes: Vec<Vec<usize>>,
}

/// Formats a shape as NumPy does: `(3, 4)`, `(5,)`, `()`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl Chunks {
    /// Regular chunks: axis `i` is cut into pieces of `sizes[i]`, the last one smaller when the
    /// length is not a multiple. A size larger than the axis gives one chunk.
    pub fn regular(shape: &[usize], sizes: &[usize]) -> Result<Chunks> {
        if shape.len() != sizes.len() {
            return Err(Error::Invalid(format!(
                "chunk sizes {sizes:?} have {} entries but the shape {} has {} axes",
                sizes.len(),
                fmt_shape(shape),
                shape.len()
            )));
        }
        let mut axes = Vec::with_capacity(shape.len());
        for (axis, (&n, &c)) in shape.iter().zip(sizes).enumerate() {
            if c == 0 {
                return Err(Error::Invalid(format!(
                    "chunk size 0 on axis {axis} (shape {}): chunk sizes must be at least 1",
                    fmt_shape(shape)
                )));
            }
            axes.push(regular_axis(n, c));
        }
        Ok(Chunks { axes })
    }

    /// Explicit chunks: one list of chunk lengths per axis. Each list must sum to the axis
    /// length and hold no zero (an axis of length 0 is written `[0]` or `[]`).
    pub fn explicit(shape: &[usize], axes: Vec<Vec<usize>>) -> Result<Chunks> {
        if shape.len() != axes.len() {
            return Err(Error::Invalid(format!(
                "chunks {axes:?} have {} axes but the shape {} has {}",
                axes.len(),
                fmt_shape(shape),
                shape.len()
            )));
        }
        let mut out = Vec::with_capacity(axes.len());
        for (axis, (list, &n)) in axes.into_iter().zip(shape).enumerate() {
            if n == 0 && list.iter().all(|&c| c == 0) {
                out.push(vec![0]);
                continue;
            }
            if list.contains(&0) {
                return Err(Error::Invalid(format!(
                    "chunks {list:?} on axis {axis} contain a zero-length chunk"
                )));
            }
            let sum: usize = list.iter().sum();
            if sum != n {
                return Err(Error::Invalid(format!(
                    "chunks {list:?} on axis {axis} sum to {sum} but the axis has length {n} (shape {})",
                    fmt_shape(shape)
                )));
            }
            out.push(list);
        }
        Ok(Chunks { axes: out })
    }

    /// Chunks built by onebox itself, already valid.
    pub(crate) fn from_axes(axes: Vec<Vec<usize>>) -> Chunks {
        Chunks {
            axes: axes
                .into_iter()
                .map(|a| if a.is_empty() { vec![0] } else { a })
                .collect(),
        }
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.axes.len()
    }

    /// The chunk lengths of axis `i` (`None` past the last axis).
    pub fn axis(&self, i: usize) -> Option<&[usize]> {
        self.axes.get(i).map(Vec::as_slice)
    }

    /// The chunk lengths of axis `i`, which the caller knows exists.
    pub(crate) fn ax(&self, i: usize) -> &[usize] {
        &self.axes[i]
    }

    /// All axes' chunk lengths.
    pub fn axes(&self) -> &[Vec<usize>] {
        &self.axes
    }

    /// The array shape these chunks cover.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(|a| a.iter().sum()).collect()
    }

    /// Blocks per axis.
    pub fn grid(&self) -> Vec<usize> {
        self.axes.iter().map(Vec::len).collect()
    }

    /// The number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.axes.iter().map(Vec::len).product()
    }

    /// The grid position of block number `i` (row-major).
    pub fn block_index(&self, mut i: usize) -> Vec<usize> {
        let mut idx = vec![0; self.axes.len()];
        for (k, a) in self.axes.iter().enumerate().rev() {
            idx[k] = i % a.len();
            i /= a.len();
        }
        idx
    }

    /// The block number (row-major) of grid position `idx`.
    pub fn block_number(&self, idx: &[usize]) -> usize {
        idx.iter()
            .zip(&self.axes)
            .fold(0, |acc, (&i, a)| acc * a.len() + i)
    }

    /// The shape of block number `i`.
    pub fn block_shape(&self, i: usize) -> Vec<usize> {
        self.block_index(i)
            .iter()
            .zip(&self.axes)
            .map(|(&j, a)| a[j])
            .collect()
    }

    /// Where block number `i` starts in the array.
    pub fn block_offset(&self, i: usize) -> Vec<usize> {
        self.block_index(i)
            .iter()
            .zip(&self.axes)
            .map(|(&j, a)| a[..j].iter().sum())
            .collect()
    }

    /// The largest number of elements in one block.
    pub fn max_block_len(&self) -> usize {
        self.axes
            .iter()
            .map(|a| a.iter().copied().max().unwrap_or(0))
            .product()
    }
}

/// `n` cut into pieces of `c` (at least 1), the last one smaller.
pub(crate) fn regular_axis(n: usize, c: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let c = c.max(1);
    let mut v = vec![c; n / c];
    if !n.is_multiple_of(c) {
        v.push(n % c);
    }
    v
}

/// The starting offsets of a chunk list, plus the total at the end.
pub(crate) fn boundaries(chunks: &[usize]) -> Vec<usize> {
    let mut b = Vec::with_capacity(chunks.len() + 1);
    let mut s = 0;
    b.push(0);
    for &c in chunks {
        s += c;
        b.push(s);
    }
    b
}

/// What a creation function accepts as chunks: per-axis sizes (`[1000, 1000]`, `vec![...]`,
/// `&[...]`), one size for every axis (`500usize`), or explicit [`Chunks`].
pub trait IntoChunks {
    /// The chunk grid for an array of `shape`.
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks>;
}

impl IntoChunks for Chunks {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        if self.shape() != shape {
            return Err(Error::Invalid(format!(
                "chunks cover the shape {} but the array has shape {}",
                fmt_shape(&self.shape()),
                fmt_shape(shape)
            )));
        }
        Ok(self)
    }
}

impl IntoChunks for &Chunks {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        self.clone().into_chunks(shape)
    }
}

impl IntoChunks for usize {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        Chunks::regular(shape, &vec![self; shape.len()])
    }
}

impl<const N: usize> IntoChunks for [usize; N] {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        Chunks::regular(shape, &self)
    }
}

impl IntoChunks for &[usize] {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        Chunks::regular(shape, self)
    }
}

impl IntoChunks for Vec<usize> {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        Chunks::regular(shape, &self)
    }
}

impl IntoChunks for Vec<Vec<usize>> {
    fn into_chunks(self, shape: &[usize]) -> Result<Chunks> {
        Chunks::explicit(shape, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_and_explicit() {
        let c = Chunks::regular(&[5, 0, 3], &[2, 4, 10]).unwrap();
        assert_eq!(c.axes(), &[vec![2, 2, 1], vec![0], vec![3]]);
        assert_eq!(c.num_blocks(), 3);
        assert_eq!(c.block_offset(2), vec![4, 0, 0]);
        assert_eq!(c.block_number(&[2, 0, 0]), 2);
        let e = Chunks::regular(&[5], &[0]).unwrap_err().to_string();
        assert!(e.contains("chunk size 0 on axis 0"), "{e}");
        let e = Chunks::explicit(&[5], vec![vec![2, 2]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sum to 4") && e.contains("length 5"), "{e}");
        assert!(Chunks::explicit(&[4], vec![vec![4, 0]]).is_err());
        let s = Chunks::regular(&[], &[]).unwrap();
        assert_eq!(s.num_blocks(), 1);
        assert_eq!(s.block_shape(0), Vec::<usize>::new());
        assert_eq!(fmt_shape(&[3]), "(3,)");
        assert_eq!(fmt_shape(&[3, 4]), "(3, 4)");
    }
}
