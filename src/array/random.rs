//! Counter-based random numbers: element `i` of a random array is a function of the seed and
//! `i` alone (its flat index in the whole array), so the numbers do not depend on the chunking
//! or on which thread computes which block.
//!
//! Each element gets its own tiny generator: SplitMix64 started from a hash of `(seed, i)`
//! (two 64-bit mixes for the first draw).
//! A uniform takes one 64-bit draw; a normal takes one draw through rand_distr's ziggurat in
//! about 99% of cases and a few more in its rare slow path, all from the element's own stream.
//!
//! Since the elements are independent, the normal's common case runs over runs of elements
//! at once, a loop the compiler turns into SIMD code (AVX-512 or AVX2 where the CPU has it,
//! chosen at run time): hash, take the ziggurat layer, scale, accept, and mark each rejection
//! in a bit mask. The few elements it rejects (about 1.2%) are then found from the mask's
//! set bits (no branch per element, which mispredicted at every rejection) and drawn one by
//! one through rand_distr's sampler from the element's own stream, which replays the same
//! first draw: the numbers are exactly rand_distr's, whatever the CPU.

use std::convert::Infallible;

use rand_distr::{Distribution, StandardNormal};

use super::ziggurat::ZIG_NORM_X;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output mix (Stafford's variant 13).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of one element: a SplitMix64 stream at a hashed starting point.
struct ElementRng(u64);

impl ElementRng {
    /// Element `index`'s stream: SplitMix64's own output for counter `index` (a well-mixed
    /// value) XORed with the key is the starting state, so the first draw costs one more mix.
    fn new(key: u64, index: u64) -> Self {
        ElementRng(key ^ mix(index.wrapping_add(GOLDEN)))
    }
}

impl rand_core::TryRng for ElementRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(GOLDEN);
        Ok(mix(self.0))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// The key a seed turns into (distinct streams for distinct seeds and distributions).
pub(crate) fn key(seed: u64, stream: u64) -> u64 {
    mix(seed.wrapping_mul(GOLDEN) ^ mix(stream))
}

/// Uniform numbers in `[0, 1)` for flat indices `first..first + out.len()`.
pub(crate) fn fill_uniform(key: u64, first: u64, out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        let bits = mix(key ^ mix((first + j as u64).wrapping_add(GOLDEN)).wrapping_add(GOLDEN));
        *o = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    }
}

/// Elements per run of the normal's fast path (their output stays in L1).
const RUN: usize = 256;

/// The ziggurat's common case for flat indices `first..`: each element's first draw picks a
/// layer and a point in it; a point inside the layer's rectangle is the number, any other
/// is NaN (for [`fill_normal`] to draw again the slow way), its bit set in `rejected` (bit
/// `j % 64` of word `j / 64` for element `j`). No branch, no early exit: the loops vectorise.
#[inline(always)]
fn normal_fast_path(key: u64, first: u64, out: &mut [f64], rejected: &mut [u64]) {
    for (j, o) in out.iter_mut().enumerate() {
        let idx = first.wrapping_add(j as u64);
        // ElementRng::new then its first next_u64
        let bits = mix((key ^ mix(idx.wrapping_add(GOLDEN))).wrapping_add(GOLDEN));
        let layer = (bits & 0xff) as usize;
        // 52 random bits as a float in [2, 4), minus 3: u in [-1, 1) (as rand_distr does)
        let u = f64::from_bits((bits >> 12) | 0x4000_0000_0000_0000) - 3.0;
        let x = u * ZIG_NORM_X[layer];
        *o = if x.abs() < ZIG_NORM_X[layer + 1] {
            x
        } else {
            f64::NAN
        };
    }
    rejected.fill(0);
    for (r, word) in rejected.iter_mut().zip(out.chunks(64)) {
        *r = word
            .iter()
            .enumerate()
            .fold(0, |m, (j, x)| m | (u64::from(x.is_nan()) << j));
    }
}

/// [`normal_fast_path`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F, DQ and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,bmi2")]
unsafe fn normal_fast_path_avx512(key: u64, first: u64, out: &mut [f64], rejected: &mut [u64]) {
    normal_fast_path(key, first, out, rejected)
}

/// [`normal_fast_path`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2")]
unsafe fn normal_fast_path_avx2(key: u64, first: u64, out: &mut [f64], rejected: &mut [u64]) {
    normal_fast_path(key, first, out, rejected)
}

/// The widest version of the fast path this CPU runs.
fn fast_path() -> fn(u64, u64, &mut [f64], &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("bmi2")
        {
            // SAFETY: the CPU has the features the function is compiled for (just checked).
            return |k, f, o, r| unsafe { normal_fast_path_avx512(k, f, o, r) };
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi2")
        {
            // SAFETY: as above.
            return |k, f, o, r| unsafe { normal_fast_path_avx2(k, f, o, r) };
        }
    }
    normal_fast_path
}

/// Standard normal numbers for flat indices `first..first + out.len()`.
pub(crate) fn fill_normal(key: u64, first: u64, out: &mut [f64]) {
    let fast = fast_path();
    let mut rejected = [0u64; RUN / 64];
    let mut at = first;
    for run in out.chunks_mut(RUN) {
        fast(key, at, run, &mut rejected);
        // Rejections are rare (about 3 in a run): redraw them, found bit by bit.
        for (w, &bits) in rejected.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let j = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                run[j] =
                    StandardNormal.sample(&mut ElementRng::new(key, at.wrapping_add(j as u64)));
            }
        }
        at = at.wrapping_add(run.len() as u64);
    }
}

/// The one-by-one definition [`fill_normal`] must match.
#[cfg(test)]
fn fill_normal_reference(key: u64, first: u64, out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        let mut rng = ElementRng::new(key, first + j as u64);
        *o = StandardNormal.sample(&mut rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_draws_rand_distrs_numbers() {
        for (seed, first, n) in [
            (0u64, 0u64, 1_000_000usize),
            (3, 12_345, 1_001),
            (9, u64::MAX - 600, 600),
        ] {
            let k = key(seed, 2);
            let mut fast = vec![0.0; n];
            fill_normal(k, first, &mut fast);
            let mut slow = vec![0.0; n];
            fill_normal_reference(k, first, &mut slow);
            assert!(
                fast.iter()
                    .zip(&slow)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            // the portable build of the fast path agrees where it accepts
            let mut portable = vec![0.0; n];
            normal_fast_path(k, first, &mut portable, &mut vec![0; n.div_ceil(64)]);
            let accepted = portable.iter().filter(|x| !x.is_nan()).count();
            assert!(
                accepted as f64 > 0.98 * n as f64 && accepted < n,
                "{accepted} of {n}"
            );
            assert!(
                portable
                    .iter()
                    .zip(&slow)
                    .all(|(a, b)| a.is_nan() || a.to_bits() == b.to_bits())
            );
        }
    }

    #[test]
    fn streams_do_not_depend_on_the_split() {
        let k = key(7, 1);
        let mut whole = vec![0.0; 100];
        fill_normal(k, 0, &mut whole);
        let mut parts = vec![0.0; 100];
        fill_normal(k, 0, &mut parts[..37]);
        fill_normal(k, 37, &mut parts[37..]);
        assert_eq!(whole, parts);
        let mut u = vec![0.0; 100_000];
        fill_uniform(k, 0, &mut u);
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        fill_normal(k, 0, &mut u);
        let m = u.iter().sum::<f64>() / u.len() as f64;
        let v = u.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / u.len() as f64;
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.02, "{m} {v}");
        let mut other = vec![0.0; 100];
        fill_normal(key(8, 1), 0, &mut other);
        assert_ne!(whole, other);
    }
}
