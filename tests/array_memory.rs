//! An array three times the memory budget is generated and reduced block by block: the peak
//! resident memory of this process stays under the budget. (Its own test binary, so that no
//! other test's allocations count.)

use onebox::array::Array;

mod common;
use common::peak_rss;

#[test]
fn sum_of_an_array_three_times_the_budget_stays_under_it() {
    let Some(before) = peak_rss() else {
        eprintln!("no /proc/self/status: peak memory cannot be measured here");
        return;
    };
    let budget: u64 = 64_000_000;
    let cluster = onebox::Cluster::builder()
        .threads(2)
        .memory_limit("64MB")
        .ignore_env()
        .build()
        .unwrap();
    assert_eq!(cluster.plan().memory_limit, budget);
    // 4000 x 6000 f64 = 192 MB, in 4 MB blocks
    let shape = [4_000, 6_000];
    let bytes = (shape[0] * shape[1] * 8) as u64;
    assert_eq!(bytes, 3 * budget);
    let x = Array::random_normal(&cluster, shape, [500, 1_000], 11).unwrap();
    let total = x.sum().unwrap().scalar().unwrap();
    let peak = peak_rss().unwrap();
    eprintln!(
        "peak RSS: {:.1} MB (before: {:.1} MB), budget {:.0} MB",
        peak as f64 / 1e6,
        before as f64 / 1e6,
        budget as f64 / 1e6
    );
    assert!(
        peak < budget,
        "peak RSS {peak} bytes is over the budget {budget} (it was {before} before)"
    );
    // The same numbers cut differently give the same sum (up to rounding), and the sum of
    // 24 million standard normals is within a few standard deviations (sqrt(n)) of 0.
    let y = Array::random_normal(&cluster, shape, [1_000, 600], 11).unwrap();
    let again = y.sum().unwrap().scalar().unwrap();
    assert!(
        (total - again).abs() < 1e-6 * (shape[0] * shape[1]) as f64,
        "{total} vs {again}"
    );
    let sd = ((shape[0] * shape[1]) as f64).sqrt();
    assert!(total.abs() < 5.0 * sd, "{total} (sd {sd})");
    assert!(peak_rss().unwrap() < budget);
}
