//! Standardise a 20000 x 10000 random matrix column-wise and print summary statistics.
//!
//! `cargo run --release --example array_stats [ROWS COLS]`
//!
//! The matrix (1.6 GB of f64) is never held whole: each pass generates its blocks from the
//! seed, block by block. Pass 1 computes every column's mean and standard deviation (one task
//! per block, then trees); pass 2 standardises each block, fused with the statistics of the
//! result, and checks that every column now has mean 0 and standard deviation 1; pass 3 looks
//! at the extremes.

use std::time::Instant;

use onebox::array::Array;
use onebox::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let rows = args.next().transpose().ok().flatten().unwrap_or(20_000);
    let cols = args.next().transpose().ok().flatten().unwrap_or(10_000);
    let cluster = Cluster::local()?;
    println!(
        "{rows} x {cols} f64 ({:.2} GB) on {} threads",
        (rows * cols * 8) as f64 / 1e9,
        cluster.threads()
    );

    let start = Instant::now();
    // columns drawn from N(5, 3^2)
    let x = Array::random_normal(&cluster, [rows, cols], [2_000, 2_000], 42)? * 3.0 + 5.0;
    // one pass: a tree of (count, mean, M2) partials gives both
    let (mean, std) = x.mean_std_axis(&[0], 0)?;
    let (mean, std) = (mean.persist()?, std.persist()?);
    println!("pass 1 (column means and stds): {:.2?}", start.elapsed());

    let t = Instant::now();
    let z = (&x - &mean) / &std;
    let (z_mean, z_std) = z.mean_std_axis(&[0], 0)?;
    let (z_mean, z_std) = (z_mean.compute()?, z_std.compute()?);
    println!("pass 2 (standardise, column stats): {:.2?}", t.elapsed());

    let t = Instant::now();
    let (lo, hi) = (z.min()?.scalar()?, z.max()?.scalar()?);
    let beyond3 = z.abs().greater(3.0).astype::<i64>().sum()?.scalar()?;
    println!("pass 3 (min, max, tails): {:.2?}", t.elapsed());

    let m = mean.compute()?;
    let s = std.compute()?;
    let worst_mean = z_mean.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
    let worst_std = z_std.iter().fold(0.0f64, |a, &v| a.max((v - 1.0).abs()));
    println!("input column means: {:.4} .. {:.4}", min(&m), max(&m));
    println!("input column stds:  {:.4} .. {:.4}", min(&s), max(&s));
    println!(
        "standardised: max |column mean| = {worst_mean:.2e}, max |column std - 1| = {worst_std:.2e}"
    );
    println!(
        "standardised: min {lo:.3}, max {hi:.3}, beyond 3 sd: {:.4}% (normal: 0.27%)",
        100.0 * beyond3 as f64 / (rows * cols) as f64
    );
    println!("total: {:.2?}", start.elapsed());
    Ok(())
}

fn min(a: &ndarray::ArrayD<f64>) -> f64 {
    a.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn max(a: &ndarray::ArrayD<f64>) -> f64 {
    a.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}
