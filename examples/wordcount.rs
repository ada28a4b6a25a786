//! Word count with a bag: the 20 most frequent words of a directory of text files.
//!
//! ```text
//! cargo run --release --example wordcount -- DIR [TOP]
//! ```
//!
//! Prints one `count word` line per word (most frequent first, ties by word), then a line
//! with the bytes read and the throughput. `examples/wordcount_rayon.rs` is the same program
//! written by hand on rayon, with the same output, to compare against.

use std::cmp::Reverse;
use std::time::Instant;

use onebox::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: wordcount DIR [TOP]");
        std::process::exit(2);
    };
    let top: usize = match args.next().map(|a| a.parse()) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("TOP must be a whole number");
            std::process::exit(2);
        }
    };
    let cluster = Cluster::local()?;
    let start = Instant::now();
    let lines = Bag::read_text(&cluster, dir.as_str())?;
    let partitions = lines.npartitions();
    let words = lines
        .words()
        .frequencies()
        .top_k(top, |(w, n)| (*n, Reverse(w.clone())))
        .compute()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir)?;
    for (word, count) in &words {
        println!("{count:>10} {word}");
    }
    println!(
        "read {:.1} MB in {secs:.3} s: {:.1} MB/s ({} threads, {partitions} partitions)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        cluster.threads(),
    );
    Ok(())
}

/// The bytes of the files directly inside `dir` (what was read).
fn dir_bytes(dir: &str) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let meta = std::fs::metadata(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
