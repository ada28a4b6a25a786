//! First-axis reductions: the common `x.sum(0)`, `x.mean(0)`, `x.std(0)`, in one pass.
//!
//! A block whose first axis is reduced (every other axis kept) is a stack of rows, and its
//! partial is one accumulator per column. A [`ColumnFold`] takes the block in slabs of whole
//! rows, each computed (fused with the elementwise chain before it) into a buffer that stays
//! in cache while the fold reads it (or read where it lies, for a block in memory), and folds
//! each slab into the accumulators at once. While it does, an [`Ahead`] prefetches the memory
//! the next slab will be computed from, so the block streams from memory with the arithmetic
//! overlapping its loads: no partial per slab, and no second pass.
//!
//! Sums add each row into the accumulators. Moments (count, mean and sum of squared
//! deviations, for `var` and `std`) need the mean before the deviations, which one pass
//! cannot know; [`ColumnMoments`] instead sums the deviations `d = x - k` and their squares
//! from a *shift* `k`, the first row of each group of [`GROUP`] rows, and turns every group
//! into `(n, k + Σd/n, Σd² - (Σd)²/n)`, merged into the block's moments with Chan's update.
//! Because the shift is one of the group's own values, `(mean - k)²` is at most the group's
//! sum of squared deviations `M2`, so `Σd² ≤ (n + 1)·M2` and the subtraction cancels at most
//! `log2(GROUP + 1)` bits: the "shifted data" algorithm of Chan, Golub and LeVeque (1983),
//! about as accurate as two passes, in one. The deviations are summed strip by strip (eight
//! columns, a cache line of f64, held in registers down the slab's rows), so a slab is read
//! once from cache and the accumulators once per slab.

use super::element::{Float, Numeric};
use super::kernels::Ahead;
use super::reduce::Moments;

/// A first-axis reduction of a block of rows of a fixed length.
pub(crate) trait ColumnFold<T, S>: Send {
    /// Folds in whole rows of the block (row-major), `first` the index of the first of them.
    /// Slabs arrive in order, from row 0, without gaps. The fold calls `ahead.step()` about
    /// once per cache line it reads.
    fn add_rows(&mut self, first: usize, rows: &[T], ahead: &mut Ahead);
    /// The partial: one value per column, for the rows added.
    fn finish(self: Box<Self>) -> Vec<S>;
    /// True when the fold reads each slab's rows front to back: rows read where they lie
    /// then stream from memory on the hardware prefetcher alone, and planned prefetches
    /// would only cost.
    fn streams_rows(&self) -> bool {
        false
    }
}

/// Column sums.
pub(crate) struct ColumnSums<T> {
    acc: Vec<T>,
}

impl<T: Numeric> ColumnSums<T> {
    pub(crate) fn new(row: usize) -> Self {
        ColumnSums {
            acc: vec![T::zero(); row],
        }
    }
}

/// Elements of f64 in a cache line: the width of a strip, and the stride of prefetch steps.
const STRIP: usize = 8;

impl<T: Numeric> ColumnFold<T, T> for ColumnSums<T> {
    fn add_rows(&mut self, _first: usize, rows: &[T], ahead: &mut Ahead) {
        for r in rows.chunks_exact(self.acc.len()) {
            let mut acc = self.acc.chunks_exact_mut(STRIP);
            let mut xs = r.chunks_exact(STRIP);
            for (a, x) in (&mut acc).zip(&mut xs) {
                for k in 0..STRIP {
                    a[k] = T::num_add(a[k], x[k]);
                }
                ahead.step();
            }
            for (a, &x) in acc.into_remainder().iter_mut().zip(xs.remainder()) {
                *a = T::num_add(*a, x);
            }
        }
    }

    fn finish(self: Box<Self>) -> Vec<T> {
        self.acc
    }

    fn streams_rows(&self) -> bool {
        true
    }
}

/// Rows per shift in [`ColumnMoments`]: each group's first row is the shift of its
/// deviations, and the group is merged into the block's moments when it is complete.
pub(crate) const GROUP: usize = 32;

/// Column moments in one pass, by shifted sums merged group by group (see the module docs).
pub(crate) struct ColumnMoments<T> {
    /// The current group's shift (its first row), and its sums of deviations from the shift
    /// and of their squares.
    shift: Vec<T>,
    sum: Vec<T>,
    sum_sq: Vec<T>,
    /// The moments of the groups merged so far: rows `0..` the current group's first.
    mean: Vec<T>,
    m2: Vec<T>,
    /// Rows added.
    rows: usize,
}

impl<T: Float> ColumnMoments<T> {
    pub(crate) fn new(row: usize) -> Self {
        let zeros = || vec![T::zero(); row];
        ColumnMoments {
            shift: zeros(),
            sum: zeros(),
            sum_sq: zeros(),
            mean: zeros(),
            m2: zeros(),
            rows: 0,
        }
    }

    /// Folds rows `first..` (`rows`, row-major) into the columns `c..c + W`: their shift and
    /// sums held in registers down the rows, between group boundaries.
    #[inline]
    fn strip<const W: usize>(&mut self, c: usize, first: usize, rows: &[T], ahead: &mut Ahead) {
        let row = self.shift.len();
        let n = rows.len() / row;
        let load = |v: &[T]| -> [T; W] { std::array::from_fn(|j| v[c + j]) };
        let (mut k, mut s, mut s2) = (load(&self.shift), load(&self.sum), load(&self.sum_sq));
        let mut i = 0;
        while i < n {
            let at = first + i;
            if at.is_multiple_of(GROUP) {
                if at > 0 {
                    self.merge(c, at - GROUP, GROUP, k, s, s2);
                }
                k = std::array::from_fn(|j| rows[i * row + c + j]);
                (s, s2) = ([T::zero(); W], [T::zero(); W]);
                i += 1;
                continue;
            }
            let end = n.min(i + GROUP - at % GROUP);
            for r in rows[i * row..end * row].chunks_exact(row) {
                let x = &r[c..c + W];
                for j in 0..W {
                    let d = x[j] - k[j];
                    s[j] = s[j] + d;
                    s2[j] = s2[j] + d * d;
                }
                if W == STRIP {
                    ahead.step();
                }
            }
            i = end;
        }
        self.shift[c..c + W].copy_from_slice(&k);
        self.sum[c..c + W].copy_from_slice(&s);
        self.sum_sq[c..c + W].copy_from_slice(&s2);
    }

    /// Merges a group of `n` rows after `before` rows, shifted by `k` with sums `s` and `s2`,
    /// into the moments of columns `c..` (Chan's update).
    fn merge<const W: usize>(
        &mut self,
        c: usize,
        before: usize,
        n: usize,
        k: [T; W],
        s: [T; W],
        s2: [T; W],
    ) {
        let (before, n) = (
            T::from(before).unwrap_or_else(T::nan),
            T::from(n).unwrap_or_else(T::nan),
        );
        let (inv_n, wb) = (T::one() / n, n / (before + n));
        let wa = before * wb;
        for j in 0..W {
            let (mean, m2) = (&mut self.mean[c + j], &mut self.m2[c + j]);
            let group_mean = k[j] + s[j] * inv_n;
            // rounding can take it just below zero; NaN stays NaN
            let group_m2 = s2[j] - s[j] * s[j] * inv_n;
            let group_m2 = if group_m2 < T::zero() {
                T::zero()
            } else {
                group_m2
            };
            let delta = group_mean - *mean;
            *mean = *mean + delta * wb;
            *m2 = *m2 + group_m2 + delta * delta * wa;
        }
    }
}

impl<T: Float> ColumnFold<T, Moments<T>> for ColumnMoments<T> {
    fn add_rows(&mut self, first: usize, rows: &[T], ahead: &mut Ahead) {
        let row = self.shift.len();
        let mut c = 0;
        while c + STRIP <= row {
            self.strip::<STRIP>(c, first, rows, ahead);
            c += STRIP;
        }
        while c < row {
            self.strip::<1>(c, first, rows, ahead);
            c += 1;
        }
        self.rows = first + rows.len() / row.max(1);
    }

    fn finish(mut self: Box<Self>) -> Vec<Moments<T>> {
        if self.rows > 0 {
            // the last group, complete or not
            let first = (self.rows - 1) / GROUP * GROUP;
            for c in 0..self.shift.len() {
                let (k, s, s2) = ([self.shift[c]], [self.sum[c]], [self.sum_sq[c]]);
                self.merge(c, first, self.rows - first, k, s, s2);
            }
        }
        let n = T::from(self.rows).unwrap_or_else(T::nan);
        self.mean
            .iter()
            .zip(&self.m2)
            .map(|(&mean, &m2)| Moments { n, mean, m2 })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-pass moments of each column of `rows`, the reference.
    fn two_pass(data: &[f64], row: usize) -> Vec<(f64, f64)> {
        let n = (data.len() / row) as f64;
        (0..row)
            .map(|c| {
                let col: Vec<f64> = data.iter().skip(c).step_by(row).copied().collect();
                let mean = col.iter().sum::<f64>() / n;
                (mean, col.iter().map(|x| (x - mean) * (x - mean)).sum())
            })
            .collect()
    }

    /// Feeds `data` (rows of `row`) to a fold in batches of `batch` rows.
    fn fed<S>(
        mut fold: Box<dyn ColumnFold<f64, S>>,
        data: &[f64],
        row: usize,
        batch: usize,
    ) -> Vec<S> {
        for (i, r) in data.chunks(batch * row).enumerate() {
            fold.add_rows(i * batch, r, &mut Ahead::default());
        }
        fold.finish()
    }

    /// Rows of 11 columns (a strip of eight and three left over): an offset far from zero,
    /// an outlier in a group's first row, a constant, and waves.
    fn columns_of(rows: usize) -> Vec<f64> {
        let mut data = Vec::new();
        for r in 0..rows {
            let x = r as f64;
            let outlier = if r == GROUP { 1e6 } else { (x * 0.37).sin() };
            data.extend([1e6 + (x * 1.3).cos(), outlier, 7.25]);
            data.extend((3..11).map(|c| (x * c as f64).sin() * c as f64 - 3.0));
        }
        data
    }

    #[test]
    fn moments_match_two_passes_however_the_rows_are_batched() {
        for rows in [1, 2, 31, 32, 33, 64, 100] {
            let data = columns_of(rows);
            for batch in [1, 2, 3, 5, 32, 40, rows] {
                let got = fed(Box::new(ColumnMoments::new(11)), &data, 11, batch);
                for (c, (m, (mean, m2))) in got.iter().zip(two_pass(&data, 11)).enumerate() {
                    let at = format!("{rows} rows in batches of {batch}, column {c}");
                    assert_eq!(m.n, rows as f64, "{at}");
                    assert!(
                        (m.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0),
                        "{at}: mean {} vs {mean}",
                        m.mean
                    );
                    assert!(
                        (m.m2 - m2).abs() <= 1e-9 * m2.max(1e-3),
                        "{at}: M2 {} vs {m2}",
                        m.m2
                    );
                }
                assert_eq!(got[2].m2, 0.0, "a constant column has no spread");
            }
        }
    }

    #[test]
    fn sums_add_each_column() {
        for rows in [1, 7, 40] {
            let data = columns_of(rows);
            for batch in [1, 3, rows] {
                let got = fed(Box::new(ColumnSums::new(11)), &data, 11, batch);
                let want: Vec<f64> = (0..11)
                    .map(|c| data.iter().skip(c).step_by(11).sum())
                    .collect();
                assert_eq!(got, want, "{rows} rows in batches of {batch}");
            }
        }
    }
}
