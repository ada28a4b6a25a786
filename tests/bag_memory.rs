//! Bounded memory: a word count over a corpus four times the cluster's memory budget finishes
//! with the process's peak resident memory growing by less than the budget.
//!
//! Its own test binary, because the peak (`VmHWM`) is process-wide.

use std::io::Write;

use onebox::prelude::*;

mod common;
use common::status_bytes;

#[test]
fn word_count_streams_a_corpus_four_times_the_budget() {
    if status_bytes("VmHWM:").is_none() {
        eprintln!("skipped: /proc/self/status has no VmHWM on this system");
        return;
    }
    const BUDGET: u64 = 32_000_000;
    const CORPUS: u64 = 4 * BUDGET;
    const FILES: u64 = 4;
    const VOCAB: usize = 2_000;

    // A deterministic corpus, written a little at a time, with its true counts.
    let dir = tempfile::tempdir().unwrap();
    let vocab: Vec<String> = (0..VOCAB)
        .map(|i| {
            if i % 3 == 0 {
                format!("mot{i}é")
            } else {
                format!("w{i}")
            }
        })
        .collect();
    let mut expected = vec![0u64; VOCAB];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for f in 0..FILES {
        let file = std::fs::File::create(dir.path().join(format!("part{f}.txt"))).unwrap();
        let mut out = std::io::BufWriter::new(file);
        let mut written = 0u64;
        let mut line = String::new();
        while written < CORPUS / FILES {
            line.clear();
            for k in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Skewed: small indices are far more frequent.
                let i = ((state % VOCAB as u64) * (state >> 40 & 0xff) / 256) as usize;
                expected[i] += 1;
                if k > 0 {
                    line.push(' ');
                }
                line.push_str(&vocab[i]);
            }
            line.push('\n');
            out.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
        }
        out.flush().unwrap();
    }

    let cluster = Cluster::builder()
        .threads(2)
        .memory_limit(BUDGET.to_string())
        .build()
        .unwrap();
    // Start the peak afresh (Linux >= 4.0); else it still includes the small writer above.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_bytes("VmRSS:").unwrap();

    let lines = Bag::read_text(&cluster, dir.path()).unwrap();
    assert!(lines.npartitions() as u64 >= CORPUS / (BUDGET / 8));
    let counts = lines.words().frequencies().compute().unwrap();

    let peak = status_bytes("VmHWM:").unwrap();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "corpus {} MB, budget {} MB, rss before {} MB, peak {} MB, growth {} MB",
        CORPUS / 1_000_000,
        BUDGET / 1_000_000,
        before / 1_000_000,
        peak / 1_000_000,
        growth / 1_000_000
    );
    assert!(
        growth < BUDGET,
        "peak RSS grew by {growth} bytes, over the {BUDGET}-byte budget"
    );

    let mut got = vec![0u64; VOCAB];
    for (word, n) in counts {
        let i = vocab.iter().position(|w| *w == word).unwrap();
        got[i] = n;
    }
    assert_eq!(got, expected);
}
