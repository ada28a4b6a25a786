//! A `.npy` file three times the memory budget is written band by band and read back block by
//! block: the peak resident memory of this process stays under the budget. (Its own test
//! binary, so that no other test's allocations count.)

use onebox::array::Array;

mod common;
use common::peak_rss;

#[test]
fn npy_files_three_times_the_budget_stream_through() {
    if peak_rss().is_none() {
        eprintln!("no /proc/self/status: peak memory cannot be measured here");
        return;
    }
    let budget: u64 = 64_000_000;
    let cluster = onebox::Cluster::builder()
        .threads(2)
        .memory_limit("64MB")
        .ignore_env()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("onebox-array-memory-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.npy");
    // 4000 x 6000 f64 = 192 MB
    let shape = [4_000, 6_000];
    let chunks = [250, 1_000];
    let x = Array::random_uniform(&cluster, shape, chunks, 5).unwrap();
    x.to_npy(&path).unwrap();
    let written = peak_rss().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len >= 3 * budget, "{len}");
    let y = Array::<f64>::from_npy(&cluster, &path, chunks).unwrap();
    let from_file = y.sum().unwrap().scalar().unwrap();
    let generated = x.sum().unwrap().scalar().unwrap();
    let peak = peak_rss().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!(
        "peak RSS after writing: {:.1} MB, after reading: {:.1} MB, budget {:.0} MB",
        written as f64 / 1e6,
        peak as f64 / 1e6,
        budget as f64 / 1e6
    );
    assert!(
        peak < budget,
        "peak RSS {peak} bytes is over the budget {budget}"
    );
    // the same numbers, reduced in the same order
    assert_eq!(from_file, generated);
    let n = (shape[0] * shape[1]) as f64;
    assert!((from_file / n - 0.5).abs() < 1e-3, "{}", from_file / n);
}
