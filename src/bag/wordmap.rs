//! A counting hash map for text items, tuned for word counts.
//!
//! A word count spends most of its time looking words up: hashing them, then comparing the
//! word with the key found in the table, which in a `HashMap<String, u64>` means following
//! the key's pointer to the heap and calling `memcmp`. Most words are short, so this map
//! keeps every key of up to 15 bytes *inside* the table, as two zero-padded `u64`s and a
//! length: a lookup hashes those two words and compares them with the slot's, touching no
//! other memory, and a slot takes 24 bytes (a `String` key and its count take 32, plus the
//! heap). Longer keys live in an ordinary map. The short-key hash is seeded per map from the
//! randomly seeded default hasher.

use std::hash::BuildHasher;

use hashbrown::HashMap;
use hashbrown::hash_table::{Entry, HashTable};

/// Keys of up to this many bytes are stored inline (the 16th byte holds the length).
const INLINE: usize = 15;

/// A short key and its count: the key's bytes zero-padded to 16, read as two little-endian
/// words, with the length in the top byte of `hi`.
#[derive(Clone)]
struct Slot {
    lo: u64,
    hi: u64,
    count: u64,
}

/// Up to 8 bytes as a little-endian word, zero-padded.
#[inline]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_le_bytes(a)
    } else if n >= 4 {
        // The first four and the last four bytes (overlapping when n < 8).
        let mut f = [0u8; 4];
        f.copy_from_slice(&b[..4]);
        let mut l = [0u8; 4];
        l.copy_from_slice(&b[n - 4..]);
        let first = u32::from_le_bytes(f) as u64;
        let last = (u32::from_le_bytes(l) as u64) >> (8 * (8 - n));
        first | (last << 32)
    } else if n > 0 {
        // The first, middle and last bytes (the same byte twice or thrice when n < 3), the
        // repeats masked off: no loop and no branch on n, whose value a text of words of
        // random lengths makes unpredictable.
        let v = b[0] as u64 | (b[n / 2] as u64) << 8 | (b[n - 1] as u64) << 16;
        v & ((1 << (8 * n)) - 1)
    } else {
        0
    }
}

/// A key of at most [`INLINE`] bytes as two zero-padded words, its length in the top byte.
#[inline]
fn split16(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    let len = (n as u64) << 56;
    if n <= 8 {
        (load_le(b), len)
    } else {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[n - 8..]);
        // The last 8 bytes hold bytes 8..n in their top n - 8 bytes.
        let hi = u64::from_le_bytes(a) >> (8 * (16 - n));
        (load_le(&b[..8]), hi | len)
    }
}

/// The bytes of a short key back from its two words.
fn join16(lo: u64, hi: u64) -> Vec<u8> {
    let len = (hi >> 56) as usize;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&lo.to_le_bytes());
    bytes[8..].copy_from_slice(&hi.to_le_bytes());
    bytes[..len.min(INLINE)].to_vec()
}

/// The high and low halves of the 128-bit product, xored: a fast, well-mixing step.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Counts of text items.
#[derive(Clone)]
pub(crate) struct WordCounts {
    short: HashTable<Slot>,
    long: HashMap<String, u64>,
    seeds: (u64, u64),
}

impl WordCounts {
    pub(crate) fn new() -> Self {
        let long = HashMap::new();
        // Seeds drawn from the randomly seeded default hasher, so that the short-key hash
        // is not predictable from outside the process either.
        let random = long.hasher();
        let seeds = (random.hash_one(1_u64), random.hash_one(2_u64));
        WordCounts {
            short: HashTable::new(),
            long,
            seeds,
        }
    }

    /// Adds `n` to the count of `word`.
    #[inline]
    pub(crate) fn add(&mut self, word: &str, n: u64) {
        let b = word.as_bytes();
        if b.len() > INLINE {
            *self.long.entry_ref(word).or_insert(0) += n;
            return;
        }
        let (lo, hi) = split16(b);
        self.add_short(lo, hi, n);
    }

    /// Adds `n` to the count of the short key `(lo, hi)`.
    #[inline]
    fn add_short(&mut self, lo: u64, hi: u64, n: u64) {
        let seeds = self.seeds;
        let hash = |lo: u64, hi: u64| fold_mul(lo ^ seeds.0, hi ^ seeds.1);
        match self.short.entry(
            hash(lo, hi),
            |s| s.lo == lo && s.hi == hi,
            |s| hash(s.lo, s.hi),
        ) {
            Entry::Occupied(mut o) => o.get_mut().count += n,
            Entry::Vacant(v) => {
                v.insert(Slot { lo, hi, count: n });
            }
        }
    }

    /// The counts of both tables, summed (the larger table takes in the smaller).
    pub(crate) fn merge(self, other: WordCounts) -> WordCounts {
        let size = |c: &WordCounts| c.short.len() + c.long.len();
        let (mut big, small) = if size(&other) > size(&self) {
            (other, self)
        } else {
            (self, other)
        };
        for s in small.short {
            big.add_short(s.lo, s.hi, s.count);
        }
        for (w, n) in small.long {
            *big.long.entry(w).or_insert(0) += n;
        }
        big
    }

    /// The counts as a map of owned strings.
    pub(crate) fn into_map(self) -> HashMap<String, u64> {
        let mut out = HashMap::with_capacity(self.short.len() + self.long.len());
        for s in self.short {
            // The bytes came from a `&str` whole, so they are valid UTF-8.
            let word = match String::from_utf8(join16(s.lo, s.hi)) {
                Ok(w) => w,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            out.insert(word, s.count);
        }
        for (w, n) in self.long {
            out.insert(w, n);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn count(words: &[&str]) -> HashMap<String, u64> {
        let mut m = WordCounts::new();
        for w in words {
            m.add(w, 1);
        }
        m.into_map()
    }

    fn expected(words: &[&str]) -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for w in words {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn keys_of_every_length_round_trip_and_stay_apart() {
        let long = "abcdefghijklmnopqrstuvwxyz";
        let mut words: Vec<&str> = (0..=long.len()).map(|n| &long[..n]).collect();
        // Prefixes and zero bytes must not collide with shorter keys.
        words.extend(["a\0", "\0", "\0\0", "ab\0\0\0\0\0\0", "日本語", "é"]);
        let twice: Vec<&str> = words.iter().chain(words.iter()).copied().collect();
        let m = count(&twice);
        assert_eq!(m, expected(&twice));
        assert!(m.values().all(|&n| n == 2));
    }

    #[test]
    fn counts_stay_right_as_the_table_grows() {
        // Enough distinct keys to grow the table several times, short and long, each
        // counted a different number of times, interleaved.
        let keys: Vec<String> = (0..3000)
            .map(|i| format!("w{i}").repeat(1 + i % 3))
            .collect();
        let mut words = Vec::new();
        for round in 0..4 {
            let counted = keys.iter().enumerate().filter(|(i, _)| i % 4 >= round);
            words.extend(counted.map(|(_, k)| k.as_str()));
        }
        assert_eq!(count(&words), expected(&words));
        let (a, b) = words.split_at(words.len() / 3);
        let table = |words: &[&str]| {
            let mut m = WordCounts::new();
            for w in words {
                m.add(w, 1);
            }
            m
        };
        assert_eq!(table(a).merge(table(b)).into_map(), expected(&words));
    }

    proptest! {
        #[test]
        fn counts_like_a_hash_map(words in prop::collection::vec("\\PC{0,20}|[ab\\x00]{0,18}", 0..60)) {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            prop_assert_eq!(count(&words), expected(&words));
        }

        #[test]
        fn merged_tables_count_both(
            a in prop::collection::vec("\\PC{0,20}|[ab]{0,18}", 0..40),
            b in prop::collection::vec("\\PC{0,20}|[ab]{0,18}", 0..40),
        ) {
            let table = |words: &[String]| {
                let mut m = WordCounts::new();
                for w in words {
                    m.add(w, 1);
                }
                m
            };
            let both: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
            prop_assert_eq!(table(&a).merge(table(&b)).into_map(), expected(&both));
        }
    }
}
