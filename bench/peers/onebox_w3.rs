//! W3: word count over the generated corpus that `w3_wordcount.py` makes (its directory in
//! `$ONEBOX_W3_CORPUS`, the exact top 20 in its `MANIFEST.json`), two ways, alternating
//! repetition by repetition:
//!
//! - `bag`: `Bag::read_text(dir).words().frequencies().top_k(20, ..)` on a cluster of
//!   `--threads` threads;
//! - `rayon`: the same work written by hand on rayon (a pool of `--threads` threads): one
//!   task per file reads it whole, counts its words into a hash map of `&str` slices of the
//!   file, turns that into owned keys, and the maps are merged pairwise; then the top 20.
//!
//! Both split words with `str::split_whitespace`, validate UTF-8, and must give exactly the
//! manifest's list (ordered by count, then word).

use std::cmp::Reverse;
use std::path::PathBuf;
use std::time::Instant;

use onebox::prelude::*;
use serde_json::json;

use super::{Bench, Outcome, Rep, check};

const TOP: usize = 20;

type Top = Vec<(String, u64)>;

/// The corpus: its directory, its files (sorted), their bytes, and its exact top 20.
struct Corpus {
    dir: PathBuf,
    files: Vec<PathBuf>,
    bytes: u64,
    top: Top,
}

fn corpus() -> std::result::Result<Corpus, Box<dyn std::error::Error>> {
    let dir = std::env::var_os("ONEBOX_W3_CORPUS").ok_or(
        "W3 needs $ONEBOX_W3_CORPUS (run it through `w3_wordcount.py with-corpus SIZE -- ...`)",
    )?;
    let dir = PathBuf::from(dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json"))?)?;
    let top = manifest["top"]
        .as_array()
        .ok_or("MANIFEST.json has no top list")?
        .iter()
        .map(|p| match (p[0].as_str(), p[1].as_u64()) {
            (Some(w), Some(n)) => Ok((w.to_string(), n)),
            _ => Err(format!("bad MANIFEST.json entry {p}")),
        })
        .collect::<std::result::Result<Top, _>>()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut bytes = 0;
    for f in &files {
        bytes += std::fs::metadata(f)?.len();
    }
    Ok(Corpus {
        dir,
        files,
        bytes,
        top,
    })
}

fn bag_top(cluster: &Cluster, files: &[PathBuf]) -> Result<Top> {
    let paths: Vec<PathBuf> = files.to_vec();
    Bag::read_text(cluster, paths)?
        .words()
        .frequencies()
        .top_k(TOP, |(w, n)| (*n, Reverse(w.clone())))
        .compute()
}

#[path = "../../examples/wordcount_rayon.rs"]
mod wordcount_rayon;

fn rayon_top(pool: &rayon::ThreadPool, files: &[PathBuf]) -> std::result::Result<Top, String> {
    pool.install(|| wordcount_rayon::top_words(files, TOP))
}

pub(super) fn w3_wordcount(b: &Bench) -> Outcome {
    let Corpus {
        dir,
        files,
        bytes,
        top: expected,
    } = corpus()?;
    let mb = bytes as f64 / 1e6;
    let cluster = b.cluster()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(b.threads)
        .build()?;
    let ways = [("bag", "onebox Bag"), ("rayon", "hand-written rayon")];
    b.alternate(ways.len(), |s| {
        let (case, system) = ways[s];
        let t0 = Instant::now();
        let top = if case == "bag" {
            bag_top(&cluster, &files)?
        } else {
            rayon_top(&pool, &files)?
        };
        let seconds = t0.elapsed().as_secs_f64();
        check(top == expected, || {
            format!("W3 {case}: top {TOP} of {} differs: {top:?}", dir.display())
        })?;
        Ok(Rep {
            case,
            system,
            count: mb.round() as usize,
            unit: "MB",
            seconds,
            phases: json!({}),
            info: json!({"files": files.len()}),
        })
    })
}
