//! A counting hash map for text items, tuned for word counts.
//!
//! A word count spends most of its time looking words up: hashing them, then comparing the
//! word with the key found in the table, which in a `HashMap<String, u64>` means following
//! the key's pointer to the heap and calling `memcmp`. Most words are short, so this map
//! keeps every key of up to 16 bytes *inside* the table, as two zero-padded `u64`s and a
//! length: a lookup hashes those two words and compares them with the slot's, touching no
//! other memory. Longer keys live on the heap and are hashed and compared as usual. The
//! hashes are seeded per map from the crate's randomly seeded default hasher.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::{DefaultHashBuilder, HashMap};

/// Keys of up to this many bytes are stored inline.
const INLINE: usize = 16;

#[derive(Clone)]
enum Key {
    /// The bytes, zero-padded to 16, read as two little-endian words; and the length.
    Short {
        lo: u64,
        hi: u64,
        len: u8,
    },
    Long(Box<str>),
}

struct Slot {
    hash: u64,
    key: Key,
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
    } else {
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as u64) << (8 * i);
        }
        v
    }
}

/// A key of at most [`INLINE`] bytes as two zero-padded words.
#[inline]
fn split16(b: &[u8]) -> (u64, u64) {
    if b.len() <= 8 {
        (load_le(b), 0)
    } else {
        let n = b.len();
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[n - 8..]);
        // The last 8 bytes hold bytes 8..n in their top n - 8 bytes.
        let hi = u64::from_le_bytes(a) >> (8 * (16 - n));
        (load_le(&b[..8]), hi)
    }
}

/// The bytes of a short key back from its two words.
fn join16(lo: u64, hi: u64, len: u8) -> Vec<u8> {
    let mut bytes = [0u8; INLINE];
    bytes[..8].copy_from_slice(&lo.to_le_bytes());
    bytes[8..].copy_from_slice(&hi.to_le_bytes());
    bytes[..len as usize].to_vec()
}

/// The high and low halves of the 128-bit product, xored: a fast, well-mixing step.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Counts of text items.
pub(crate) struct WordCounts {
    table: HashTable<Slot>,
    seeds: (u64, u64),
    long: DefaultHashBuilder,
}

impl WordCounts {
    pub(crate) fn new() -> Self {
        let long = DefaultHashBuilder::default();
        // Odd seeds drawn from the randomly seeded hasher, so that the short-key hash is
        // not predictable from outside the process either.
        let seeds = (
            long.hash_one(0x5eed_u64) | 1,
            long.hash_one(0x5eed_1_u64) | 1,
        );
        WordCounts {
            table: HashTable::new(),
            seeds,
            long,
        }
    }

    /// Adds `n` to the count of `word`.
    #[inline]
    pub(crate) fn add(&mut self, word: &str, n: u64) {
        let b = word.as_bytes();
        if b.len() <= INLINE {
            let (lo, hi) = split16(b);
            let len = b.len() as u8;
            let hash = fold_mul(lo ^ self.seeds.0, hi ^ self.seeds.1 ^ u64::from(len) << 56);
            let found = self.table.entry(
                hash,
                |s| matches!(s.key, Key::Short { lo: l, hi: h, len: n } if l == lo && h == hi && n == len),
                |s| s.hash,
            );
            match found {
                Entry::Occupied(mut o) => o.get_mut().count += n,
                Entry::Vacant(v) => {
                    v.insert(Slot {
                        hash,
                        key: Key::Short { lo, hi, len },
                        count: n,
                    });
                }
            }
        } else {
            let hash = self.long.hash_one(word);
            let found = self.table.entry(
                hash,
                |s| matches!(&s.key, Key::Long(k) if **k == *word),
                |s| s.hash,
            );
            match found {
                Entry::Occupied(mut o) => o.get_mut().count += n,
                Entry::Vacant(v) => {
                    v.insert(Slot {
                        hash,
                        key: Key::Long(word.into()),
                        count: n,
                    });
                }
            }
        }
    }

    /// The counts as a map of owned strings.
    pub(crate) fn into_map(self) -> HashMap<String, u64> {
        let mut out = HashMap::with_capacity(self.table.len());
        for slot in self.table {
            let word = match slot.key {
                Key::Short { lo, hi, len } => {
                    // The bytes came from a `&str` whole, so they are valid UTF-8.
                    match String::from_utf8(join16(lo, hi, len)) {
                        Ok(s) => s,
                        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    }
                }
                Key::Long(s) => s.into_string(),
            };
            out.insert(word, slot.count);
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

    proptest! {
        #[test]
        fn counts_like_a_hash_map(words in prop::collection::vec("\\PC{0,20}|[ab\\x00]{0,18}", 0..60)) {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            prop_assert_eq!(count(&words), expected(&words));
        }
    }
}
