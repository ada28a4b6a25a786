//! Diagnostics tour: progress bars on the terminal, a performance report, and the live
//! dashboard.
//!
//! ```text
//! cargo run --example diagnostics -- [--report report.html] [--dashboard 127.0.0.1:8787] [--linger SECS]
//! ```
//!
//! The workload (about 2 s on 2 threads) loads 400 pieces, parses each and sums them; one
//! piece fails to parse, to show how failures appear.

use std::time::Duration;

use onebox::prelude::*;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn workload(cluster: &Cluster) -> onebox::Result<u64> {
    let parsed: Vec<Delayed<u64>> = (0..400u64)
        .map(|i| {
            cluster
                .delayed(move || {
                    std::thread::sleep(Duration::from_millis(8 + i % 5)); // "reading"
                    format!("{i}")
                })
                .label("load")
                .try_map(|text: String| text.parse::<u64>())
                .label("parse")
        })
        .collect();
    let total = Delayed::join_with(cluster, parsed, |v| v.iter().sum::<u64>())
        .label("sum")
        .compute()?;
    // A failing piece: its error names the task.
    let bad = cluster
        .delayed(|| "12x".to_string())
        .label("load")
        .try_map(|text: String| text.parse::<u64>())
        .label("parse")
        .compute();
    if let Err(e) = bad {
        eprintln!("expected failure: {e}");
    }
    Ok(total)
}

fn main() -> onebox::Result<()> {
    let mut builder = Cluster::builder();
    if let Some(addr) = arg("--dashboard") {
        builder = builder.dashboard(addr);
    }
    let cluster = builder.build()?;
    if let Some(url) = cluster.dashboard_url() {
        println!("dashboard: {url}");
    }
    let report = arg("--report").unwrap_or_else(|| "report.html".into());
    let total = cluster.performance_report(&report, || workload(&cluster))??;
    println!("sum = {total}; report written to {report}");
    if let Some(secs) = arg("--linger").and_then(|s| s.parse().ok()) {
        println!("serving the dashboard for {secs} s more");
        std::thread::sleep(Duration::from_secs(secs));
    }
    Ok(())
}
