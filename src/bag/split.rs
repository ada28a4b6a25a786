//! Splitting text at whitespace, exactly as `str::split_whitespace` does, but faster on
//! mostly-ASCII text: bytes are classified by a table, and only the lead bytes of the few
//! non-ASCII whitespace characters are decoded.

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

/// Calls `emit` with each word of `text`, in order: the same pieces as
/// `text.split_whitespace()`. Stops at the first error `emit` returns.
#[inline]
pub(crate) fn for_each_word(text: &str, emit: &mut dyn FnMut(&str) -> Flow) -> Flow {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    loop {
        // Skip whitespace.
        let start = loop {
            if i >= n {
                return Ok(());
            }
            match CLASS[bytes[i] as usize] {
                SPACE => i += 1,
                MAYBE => match space_len(text, i) {
                    0 => break i,
                    len => i += len,
                },
                _ => break i,
            }
        };
        // The word runs to the next whitespace.
        let end = loop {
            if i >= n {
                break n;
            }
            match CLASS[bytes[i] as usize] {
                WORD => i += 1,
                SPACE => break i,
                _ => match space_len(text, i) {
                    // A non-whitespace character: step over its lead byte (its
                    // continuation bytes are WORD).
                    0 => i += 1,
                    _ => break i,
                },
            }
        };
        // `start` and `end` are character boundaries: each is 0, `n`, or the first byte of
        // a character, so this never fails.
        if let Some(word) = text.get(start..end) {
            emit(word)?;
        }
    }
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
        fn any_text_splits_like_split_whitespace(text in "\\PC{0,40}") {
            prop_assert_eq!(words(&text), expected(&text));
        }

        #[test]
        fn spacey_text_splits_like_split_whitespace(
            text in "([a-zé日\u{a9}\u{200b}\u{3001}]|[ \t\r\n\u{0B}\u{0C}\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}]){0,40}",
        ) {
            prop_assert_eq!(words(&text), expected(&text));
        }
    }
}
