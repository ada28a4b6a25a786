//! Counter-based random numbers: element `i` of a random array is a function of the seed and
//! `i` alone (its flat index in the whole array), so the numbers do not depend on the chunking
//! or on which thread computes which block.
//!
//! Each element gets its own tiny generator: SplitMix64 started from a hash of `(seed, i)`
//! (two 64-bit mixes for the first draw).
//! A uniform takes one 64-bit draw; a normal takes one draw through rand_distr's ziggurat in
//! about 99% of cases and a few more in its rare slow path, all from the element's own stream.

use std::convert::Infallible;

use rand_distr::{Distribution, StandardNormal};

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

/// Standard normal numbers for flat indices `first..first + out.len()`.
pub(crate) fn fill_normal(key: u64, first: u64, out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        let mut rng = ElementRng::new(key, first + j as u64);
        *o = StandardNormal.sample(&mut rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
