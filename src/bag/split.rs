//! Splitting text at whitespace, exactly as `str::split_whitespace` does, but faster on
//! mostly-ASCII text: 64 bytes at a time become a bit mask of their ASCII whitespace, only the
//! lead bytes of the few non-ASCII whitespace characters are decoded, and words are the runs
//! between the mask's edges.

use super::Flow;

/// What a byte of UTF-8 text can be, for splitting at whitespace.
const WORD: u8 = 0;
/// ASCII whitespace: `\t`, `\n`, vertical tab, form feed, `\r`, space.
const SPACE: u8 = 1;
/// The first byte of a character that may be whitespace: decode it to tell.
const MAYBE: u8 = 2;

/// The class of every byte. The non-ASCII whitespace characters (`char::is_whitespace`) are
/// U+0085 and U+00A0 (lead byte `C2`), U+1680 (`E1`), U+2000 to U+200A, U+2028, U+2029,
/// U+202F, U+205F (`E2`) and U+3000 (`E3`); every other byte is part of a word.
static CLASS: [u8; 256] = {
    let mut t = [WORD; 256];
    t[b'\t' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[0x0B] = SPACE;
    t[0x0C] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b' ' as usize] = SPACE;
    t[0xC2] = MAYBE;
    t[0xE1] = MAYBE;
    t[0xE2] = MAYBE;
    t[0xE3] = MAYBE;
    t
};

/// The length in bytes of the whitespace character starting at `i`, or 0 when the character
/// there is not whitespace. `i` is a character boundary of `text`.
#[inline]
fn space_len(text: &str, i: usize) -> usize {
    match text.get(i..).and_then(|rest| rest.chars().next()) {
        Some(c) if c.is_whitespace() => c.len_utf8(),
        _ => 0,
    }
}

/// Bytes a block of the scan covers: one bit each in a `u64`.
const BLOCK: usize = 64;

/// Two masks of a block: bit `k` set where byte `k` is ASCII whitespace, and where byte `k`
/// is not ASCII.
#[inline]
fn block_masks(b: &[u8; BLOCK]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 (every x86-64 has it): sixteen bytes a compare.
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut space = 0u64;
        let mut high = 0u64;
        for q in 0..BLOCK / 16 {
            // SAFETY: SSE2 is part of x86-64; the load reads 16 bytes of the 64-byte array.
            let (s, h) = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(16 * q).cast::<__m128i>());
                // `\t` to `\r` (9 to 13) shifted to -128..-124, the only bytes below -123
                let t = _mm_add_epi8(v, _mm_set1_epi8((0x80u8 - 9) as i8));
                let ctrl = _mm_cmplt_epi8(t, _mm_set1_epi8(-123));
                let blank = _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8));
                (
                    _mm_movemask_epi8(_mm_or_si128(ctrl, blank)) as u16,
                    _mm_movemask_epi8(v) as u16,
                )
            };
            space |= u64::from(s) << (16 * q);
            high |= u64::from(h) << (16 * q);
        }
        (space, high)
    }
    #[cfg(not(target_arch = "x86_64"))]
    block_masks_by_byte(b)
}

/// [`block_masks`] a byte at a time (where there is no SIMD path, and to check the SIMD path).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn block_masks_by_byte(b: &[u8; BLOCK]) -> (u64, u64) {
    let mut space = 0u64;
    let mut high = 0u64;
    for (k, &x) in b.iter().enumerate() {
        space |= u64::from(CLASS[x as usize] == SPACE) << k;
        high |= u64::from(x >= 0x80) << k;
    }
    (space, high)
}

/// Calls `emit` with each word of `text`, in order: the same pieces as
/// `text.split_whitespace()`. Stops at the first error `emit` returns.
///
/// The text is scanned 64 bytes at a time: a block's whitespace becomes a bit mask (SIMD
/// compares on x86-64), the lead bytes of possible non-ASCII whitespace are decoded one by one
/// (a block of ASCII has none), and the words' starts and ends are the mask's edges, visited
/// with `trailing_zeros`: no branch per byte, one per word edge.
pub(crate) fn for_each_word(text: &str, emit: &mut dyn FnMut(&str) -> Flow) -> Flow {
    let bytes = text.as_bytes();
    let n = bytes.len();
    // Where the word being read started, when inside one.
    let mut word: Option<usize> = None;
    // Whether the byte before the block is whitespace (before the text: as if it were).
    let mut after_space = true;
    // Bytes of the next block known to be whitespace: the rest of a character cut by the edge.
    let mut carry = 0u64;
    let mut base = 0;
    while base < n {
        let block: [u8; BLOCK] = match bytes[base..].first_chunk::<BLOCK>() {
            Some(b) => *b,
            None => {
                // The last, short block, padded with spaces (they end its last word at `n`).
                let mut b = [b' '; BLOCK];
                b[..n - base].copy_from_slice(&bytes[base..]);
                b
            }
        };
        let (mut space, high) = block_masks(&block);
        space |= std::mem::take(&mut carry);
        let mut maybe = high;
        while maybe != 0 {
            let k = maybe.trailing_zeros() as usize;
            maybe &= maybe - 1;
            if CLASS[block[k] as usize] == MAYBE {
                let len = space_len(text, base + k);
                let bits = ((1u128 << len) - 1) << k;
                space |= bits as u64;
                carry = (bits >> BLOCK) as u64;
            }
        }
        let word_before = !(space << 1 | u64::from(after_space));
        let mut edges = (!space & !word_before) | (space & word_before);
        after_space = space >> (BLOCK - 1) == 1;
        while edges != 0 {
            let at = base + edges.trailing_zeros() as usize;
            edges &= edges - 1;
            match word.take() {
                None => word = Some(at),
                Some(start) => {
                    // Both ends are character boundaries (the edges of whitespace
                    // characters), so this never fails.
                    if let Some(w) = text.get(start..at) {
                        emit(w)?;
                    }
                }
            }
        }
        base += BLOCK;
    }
    if let Some(w) = word.and_then(|start| text.get(start..)) {
        emit(w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(text, &mut |w| {
            out.push(w.to_string());
            Ok(())
        })
        .unwrap_or_else(|_| panic!("emit never stops"));
        out
    }

    fn expected(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn splits_like_split_whitespace() {
        for text in [
            "",
            " ",
            "a",
            "  a  b\tc\r\nd\x0Be\x0Cf ",
            "é日本 x",
            "a\u{85}b\u{a0}c\u{1680}d\u{2000}e\u{200a}f\u{2028}g\u{2029}h\u{202f}i\u{205f}j\u{3000}k",
            // Non-whitespace characters with the same lead bytes.
            "\u{a9}\u{1681}\u{200b}\u{2030}\u{3001}",
            "\u{3000}",
            "x\u{3000}",
            "\u{2000}\u{2001}y",
        ] {
            assert_eq!(words(text), expected(text), "{text:?}");
        }
    }

    #[test]
    fn stops_when_emit_stops() {
        let mut seen = 0;
        let r = for_each_word("a b c", &mut |_| {
            seen += 1;
            if seen == 2 {
                Err(super::super::Halt::Enough)
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
        assert_eq!(seen, 2);
    }

    proptest! {
        #[test]
        fn block_masks_agree_with_the_bytes(b in proptest::array::uniform32(any::<u8>()), c in proptest::array::uniform32(any::<u8>())) {
            let mut block = [0u8; BLOCK];
            block[..32].copy_from_slice(&b);
            block[32..].copy_from_slice(&c);
            prop_assert_eq!(block_masks(&block), block_masks_by_byte(&block));
        }

        #[test]
        fn any_text_splits_like_split_whitespace(text in "\\PC{0,200}") {
            prop_assert_eq!(words(&text), expected(&text));
        }

        #[test]
        fn spacey_text_splits_like_split_whitespace(
            text in "([a-zé日\u{a9}\u{200b}\u{3001}]|[ \t\r\n\u{0B}\u{0C}\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}]){0,200}",
        ) {
            prop_assert_eq!(words(&text), expected(&text));
        }
    }
}
