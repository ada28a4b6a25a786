//! Finding the line of a CSV file that polars could not read.
//!
//! polars reports what did not parse but not where. When a CSV partition fails, its file is
//! read again, once, and cut into records (a line break inside double quotes does not end a
//! record). The header and the first `k` records are parsed with the frame's schema, `k`
//! halving the range each time: the smallest `k` that fails is the bad record, whose first line
//! is reported. This runs only after a failure, and costs a few parses of the file.

use std::io::Cursor;

use polars::prelude::*;

/// Whether the header and records before byte `end` parse with `schema`.
fn parses(bytes: &[u8], end: usize, schema: &SchemaRef) -> bool {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(schema.clone()))
        .into_reader_with_file_handle(Cursor::new(&bytes[..end]))
        .finish()
        .is_ok()
}

/// The 1-based line number where the first record of `path` that does not parse with `schema`
/// starts, or `None` when every record parses (the error was elsewhere) or the file cannot be
/// read.
pub(super) fn bad_line(path: &str, schema: &SchemaRef) -> Option<usize> {
    let bytes = std::fs::read(path).ok()?;
    let records = records(&bytes);
    // `ends[k]`: the byte after record `k` (record 0 is the header).
    let ends: Vec<usize> = records
        .iter()
        .skip(1)
        .map(|r| r.0)
        .chain([bytes.len()])
        .collect();
    if parses(&bytes, bytes.len(), schema) {
        return None;
    }
    if !parses(&bytes, ends[0], schema) {
        return Some(records[0].1);
    }
    // Invariant: the records up to `lo` parse, up to `hi` do not (the last one ends the file).
    let (mut lo, mut hi) = (0, records.len() - 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if parses(&bytes, ends[mid], schema) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(records[hi].1)
}

/// Every record's first byte and 1-based line number (record 0 is the header); a line break
/// inside double quotes does not end a record.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = vec![(0, 1)];
    let mut line = 1;
    let mut quoted = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' => {
                line += 1;
                if !quoted && i + 1 < bytes.len() {
                    out.push((i + 1, line));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::records;

    #[test]
    fn records_start_on_lines_counting_quoted_breaks() {
        let lines = |b: &[u8]| records(b).iter().map(|r| r.1).collect::<Vec<_>>();
        assert_eq!(lines(b"a,b\n1,\"x\ny\"\n2,z\n"), [1, 2, 4]);
        assert_eq!(lines(b"a,b\n1,\"x\ny\"\n2,z"), [1, 2, 4]);
        assert_eq!(lines(b"a\r\n1\r\n2\r\n"), [1, 2, 3]);
        assert_eq!(records(b"a\n1\n")[1], (2, 2));
    }
}
