//! Chunked-array benchmarks: the sum of a random normal matrix, a plain sum of data already in
//! memory, and the column-wise standardisation pipeline `(x - x.mean(0)).std(0)`.
//!
//! `cargo bench --bench array` (sizes: ONEBOX_BENCH_ROWS x ONEBOX_BENCH_COLS, default
//! 20000 x 10000 as in the dask.array comparison).
//!
//! On a 2-core AMD EPYC with 24 GiB and no GPU, shared with other builds (load average 5 to
//! 9, so these are upper bounds), blocks of 2000 x 2000: random normal + sum 0.70 to 0.96 s;
//! `(x - x.mean(0)).std(0)` 2.0 s with `x` generated in both passes, 0.29 to 0.35 s with `x`
//! persisted; the sum of a persisted array 27 to 32 GiB/s.

use criterion::{Criterion, criterion_group, criterion_main};
use onebox::array::Array;

fn size() -> (usize, usize) {
    let get = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (
        get("ONEBOX_BENCH_ROWS", 20_000),
        get("ONEBOX_BENCH_COLS", 10_000),
    )
}

fn bench(c: &mut Criterion) {
    let cluster = onebox::Cluster::builder()
        .ignore_env()
        .build()
        .expect("a cluster");
    let (rows, cols) = size();
    let mut g = c.benchmark_group("array");
    g.sample_size(10);
    g.bench_function(format!("random_normal {rows}x{cols} + sum"), |b| {
        b.iter(|| {
            let x = Array::random_normal(&cluster, [rows, cols], [2_000, 2_000], 1).unwrap();
            x.sum().unwrap().scalar().unwrap()
        })
    });
    g.bench_function(
        format!("(x - x.mean(0)).std(0), x random_normal {rows}x{cols}"),
        |b| {
            b.iter(|| {
                let x = Array::random_normal(&cluster, [rows, cols], [2_000, 2_000], 1).unwrap();
                let m = x.mean_axis(&[0]).unwrap();
                (&x - &m).std_axis(&[0]).unwrap().compute().unwrap()
            })
        },
    );
    // data already in memory (persisted blocks): the bandwidth of the sum itself
    let x = Array::random_normal(&cluster, [rows, cols], [2_000, 2_000], 1)
        .unwrap()
        .persist()
        .unwrap();
    g.bench_function(
        format!("(x - x.mean(0)).std(0), x persisted {rows}x{cols}"),
        |b| {
            b.iter(|| {
                let m = x.mean_axis(&[0]).unwrap();
                (&x - &m).std_axis(&[0]).unwrap().compute().unwrap()
            })
        },
    );
    g.throughput(criterion::Throughput::Bytes((rows * cols * 8) as u64));
    g.bench_function(format!("sum of persisted {rows}x{cols}"), |b| {
        b.iter(|| x.sum().unwrap().scalar().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
