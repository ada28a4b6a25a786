//! Scheduler overhead: independent trivial tasks, a random DAG, cluster start-up, and
//! `Cluster::map` against a plain rayon `par_iter` on a pool of the same size.
//!
//! `independent-tasks` also runs with diagnostics on: `-events` with a subscriber taking the
//! queued events every 20 ms on its own thread, `-report` while a performance report records the run.
//!
//! `cargo bench --bench scheduler`. Figures per task are the measured time divided by the
//! number of tasks (criterion reports throughput in elements per second).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use onebox::prelude::*;
use rayon::prelude::*;

#[path = "../tests/common/mod.rs"]
mod common;

fn cluster() -> Cluster {
    Cluster::builder().ignore_env().build().expect("cluster")
}

fn independent_tasks(c: &mut Criterion) {
    let cluster = cluster();
    let mut g = c.benchmark_group("independent-tasks");
    g.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("delayed-{n}"), |b| {
            b.iter(|| {
                let parts: Vec<Delayed<u64>> =
                    (0..n).map(|i| cluster.delayed(move || i + 1)).collect();
                Delayed::join_all(&cluster, parts)
                    .compute()
                    .expect("compute")
            })
        });
    }
    // Diagnostics on, each on a cluster of its own (a subscription lasts as long as it).
    let n = 100_000u64;
    let delayed = |cluster: &Cluster| {
        let parts: Vec<Delayed<u64>> = (0..n).map(|i| cluster.delayed(move || i + 1)).collect();
        Delayed::join_all(cluster, parts)
            .compute()
            .expect("compute")
    };
    g.throughput(Throughput::Elements(n));
    {
        // A subscriber taking the queued events every 20 ms, as the diagnostics do.
        let on = self::cluster();
        let events = on.events();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let drain = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                events.try_iter().count();
            }
        });
        g.bench_function(format!("delayed-{n}-events"), |b| b.iter(|| delayed(&on)));
        done.store(true, std::sync::atomic::Ordering::Release);
        drain.join().expect("drain");
    }
    {
        let on = self::cluster();
        let path = std::env::temp_dir().join(format!("onebox-bench-{}.html", std::process::id()));
        let report = onebox::PerformanceReport::start(&on, &path).expect("report");
        g.bench_function(format!("delayed-{n}-report"), |b| b.iter(|| delayed(&on)));
        report.finish().expect("report written");
        let _ = std::fs::remove_file(&path);
    }
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("submit-gather-100000", |b| {
        b.iter(|| {
            gather(
                (0..100_000u64)
                    .map(|i| cluster.submit(move || i + 1))
                    .collect::<Vec<_>>(),
            )
            .expect("gather")
        })
    });
    g.finish();
}

fn random_dag(c: &mut Criterion) {
    let cluster = cluster();
    let n = 100_000usize;
    let deps = common::random_dag(n, 7);
    let mut g = c.benchmark_group("random-dag");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("100000-nodes", |b| {
        b.iter(|| {
            let mut nodes: Vec<Delayed<u64>> = Vec::with_capacity(n);
            for (i, d) in deps.iter().enumerate() {
                let inputs = d.iter().map(|&j| nodes[j].clone()).collect();
                nodes.push(Delayed::join_with(&cluster, inputs, move |xs| {
                    xs.iter().sum::<u64>() + i as u64
                }));
            }
            Delayed::join_all(&cluster, nodes)
                .compute()
                .expect("compute")
        })
    });
    g.finish();
}

fn startup(c: &mut Criterion) {
    c.bench_function("cluster-start-and-drop", |b| b.iter(|| drop(cluster())));
}

fn map_vs_rayon(c: &mut Criterion) {
    let cluster = cluster();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cluster.threads())
        .build()
        .expect("pool");
    let n = 10_000_000u64;
    let mut g = c.benchmark_group("map-10M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("onebox-map", |b| {
        b.iter_batched(
            || (0..n).collect::<Vec<u64>>(),
            |v| cluster.map(v, |x| x.wrapping_mul(x) ^ 3).expect("map"),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("rayon-par-iter", |b| {
        b.iter_batched(
            || (0..n).collect::<Vec<u64>>(),
            |v| {
                pool.install(|| {
                    v.into_par_iter()
                        .map(|x| x.wrapping_mul(x) ^ 3)
                        .collect::<Vec<u64>>()
                })
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    independent_tasks,
    random_dag,
    startup,
    map_vs_rayon
);
criterion_main!(benches);
