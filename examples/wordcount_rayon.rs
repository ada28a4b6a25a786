//! Word count written by hand on rayon, to measure the bag version against: the same input
//! (every file directly inside DIR), the same output as `examples/wordcount.rs`.
//!
//! ```text
//! cargo run --release --example wordcount_rayon -- DIR [TOP]
//! ```
//!
//! One rayon task per file: read it whole, count its words into a hash map of `&str` slices
//! of the file, turn that into owned keys, and merge the maps pairwise. The peer benchmarks
//! (`bench/peers/onebox_w3.rs`) run [`top_words`] as their hand-written rayon reference.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hashbrown::HashMap;
use rayon::prelude::*;

type Counts = HashMap<String, u64>;

fn count_file(path: &Path) -> Result<Counts, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        format!(
            "{}: invalid UTF-8 at byte {}",
            path.display(),
            e.valid_up_to()
        )
    })?;
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_insert(0) += 1;
    }
    Ok(counts.into_iter().map(|(w, n)| (w.to_owned(), n)).collect())
}

fn merge(mut a: Counts, mut b: Counts) -> Counts {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (w, n) in b {
        *a.entry(w).or_insert(0) += n;
    }
    a
}

/// The `top` most frequent words of `files`, most frequent first, equal counts in word order;
/// the work runs on the current rayon pool.
pub fn top_words(files: &[PathBuf], top: usize) -> Result<Vec<(String, u64)>, String> {
    let counts = files
        .par_iter()
        .map(|p| count_file(p))
        .try_reduce(Counts::new, |a, b| Ok(merge(a, b)))?;
    let mut words: Vec<(String, u64)> = counts.into_iter().collect();
    words.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(top);
    Ok(words)
}

#[allow(dead_code)] // the peer benchmarks include this file for `top_words`
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: wordcount_rayon DIR [TOP]");
        std::process::exit(2);
    };
    let top: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let start = Instant::now();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            eprintln!("{dir}: {e}");
            std::process::exit(1);
        }
    };
    files.sort();
    let bytes: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let words = match top_words(&files, top) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    for (word, count) in &words {
        println!("{count:>10} {word}");
    }
    println!(
        "read {:.1} MB in {secs:.3} s: {:.1} MB/s ({} threads, {} files)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        rayon::current_num_threads(),
        files.len(),
    );
}
