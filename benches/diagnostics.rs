//! What diagnostics cost the scheduler: the `independent-tasks` workload of
//! `benches/scheduler.rs` (100 000 trivial tasks joined by one) timed with diagnostics off,
//! with an event subscriber draining every event on its own thread, and while a performance
//! report records (which also samples memory ten times a second).
//!
//! The variants run round-robin, one compute each in turn, so that whatever else loads the
//! machine hits them alike; the medians and their ratios to "off" are printed.
//!
//! `cargo bench --bench diagnostics` (`ONEBOX_BENCH_ROUNDS` rounds, 30 by default).

use std::time::{Duration, Instant};

use onebox::prelude::*;

const TASKS: u64 = 100_000;

fn cluster() -> Cluster {
    Cluster::builder()
        .ignore_env()
        .progress(false)
        .build()
        .expect("cluster")
}

fn workload(cluster: &Cluster) -> u64 {
    let parts: Vec<Delayed<u64>> = (0..TASKS).map(|i| cluster.delayed(move || i + 1)).collect();
    Delayed::join_with(cluster, parts, |v| v.iter().sum::<u64>())
        .compute()
        .expect("compute")
}

/// A subscriber that takes the queued events every 20 ms, as the diagnostics do.
struct Drain {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Drain {
    fn start(cluster: &Cluster) -> Drain {
        let rx = cluster.events();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                n += rx.try_iter().count();
            }
            n + rx.try_iter().count()
        });
        Drain { done, thread }
    }

    fn finish(self) -> usize {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().expect("drain")
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --benches` one round checks it runs.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("ONEBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 30 } else { 1 });
    let off = cluster();
    let events = cluster();
    let drain = Drain::start(&events);
    let reported = cluster();
    let path = std::env::temp_dir().join(format!("onebox-bench-{}.html", std::process::id()));
    let report = onebox::PerformanceReport::start(&reported, &path).expect("report");

    let variants: [(&str, &Cluster); 3] =
        [("off", &off), ("events", &events), ("report", &reported)];
    let expected = (1..=TASKS).sum::<u64>();
    for (_, c) in &variants {
        for _ in 0..3 {
            assert_eq!(workload(c), expected);
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, (_, c)) in variants.iter().enumerate() {
            let t = Instant::now();
            std::hint::black_box(workload(c));
            times[i].push(t.elapsed());
        }
    }

    println!(
        "independent-tasks, {TASKS} tasks, {rounds} rounds, {} threads",
        off.threads()
    );
    let base = median(&mut times[0].clone());
    for (i, (name, _)) in variants.iter().enumerate() {
        // Each round timed every variant back to back: the median of the per-round ratios is
        // less sensitive to load that changes between rounds than the ratio of the medians.
        let mut ratios: Vec<f64> = times[i]
            .iter()
            .zip(&times[0])
            .map(|(t, off)| t.as_secs_f64() / off.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let paired = ratios[ratios.len() / 2];
        let mut t = times[i].clone();
        let m = median(&mut t);
        println!(
            "  {name:<7} median {:>8.2} ms  min {:>8.2} ms  per task {:>6.0} ns  vs off {:+.1}% \
             (median of per-round ratios {:+.1}%)",
            m.as_secs_f64() * 1e3,
            t[0].as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e9 / TASKS as f64,
            100.0 * (m.as_secs_f64() / base.as_secs_f64() - 1.0),
            100.0 * (paired - 1.0)
        );
    }
    let recorded = report.finish().expect("report written");
    let _ = std::fs::remove_file(&path);
    assert!(recorded.totals().ended() >= (rounds as u64 + 3) * (TASKS + 1));
    drop(events);
    let drained = drain.finish();
    // Each task sends two events to a channel (submitted, ended).
    assert!(drained as u64 >= 2 * (rounds as u64 + 3) * (TASKS + 1));
}
