//! A first look: the detected hardware, a small task graph, futures, and a Pool-style map.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use onebox::prelude::*;

fn main() -> Result<()> {
    let t = Instant::now();
    let cluster = Cluster::local()?;
    println!("started a cluster in {:.2?}\n", t.elapsed());
    println!("{}\n", cluster.hardware());

    // A task graph: two "loads", a shared intermediate, a combine. Nothing runs until compute.
    let a = cluster
        .delayed(|| (1..=1_000u64).collect::<Vec<_>>())
        .label("load-a");
    let b = cluster
        .delayed(|| (1..=2_000u64).collect::<Vec<_>>())
        .label("load-b");
    let total = a
        .zip(b)
        .map(|(a, b)| a.iter().sum::<u64>() + b.iter().sum::<u64>())
        .label("sum");
    println!("graph: sum of both loads = {}", total.compute()?);

    // Futures: start tasks now, collect them as they finish.
    let handles: Vec<TaskHandle<u64>> = (0..8u64)
        .map(|i| cluster.submit(move || (0..=i * 1_000_000).sum()))
        .collect();
    let firsts: Vec<usize> = as_completed(handles).map(|(i, _)| i).take(3).collect();
    println!("futures: the first three to finish were tasks {firsts:?}");

    // A failing task is an error that names it; the cluster keeps working.
    let err = cluster
        .delayed(|| -> u32 { panic!("bad row 17") })
        .label("parse")
        .compute()
        .unwrap_err();
    println!("errors: {err}");

    // multiprocessing.Pool.map, on threads: ten million items, a few tasks per thread.
    let t = Instant::now();
    let squares = cluster.map(0..10_000_000u64, |x| x * x)?;
    println!(
        "map: {} squares in {:.2?}, the last is {}",
        squares.len(),
        t.elapsed(),
        squares[squares.len() - 1]
    );
    Ok(())
}
