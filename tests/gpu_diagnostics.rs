//! Diagnostics on a real GPU: the report's GPU lanes and NVML samples, and the dashboard's
//! `/api/status` GPU figures. Every test skips, saying why, when no GPU is detected.
//!
//! On a GPU machine: `cargo test --release --test gpu_diagnostics -- --nocapture`.

use std::io::{Read, Write};
use std::time::Duration;

use onebox::diagnostics::PerformanceReport;
use onebox::hardware::Hardware;
use onebox::prelude::*;
use onebox::{BoxError, Worker};

fn gpu_cluster(dashboard: bool) -> Option<Cluster> {
    let hw = Hardware::detect();
    if hw.gpus.is_empty() {
        eprintln!(
            "skipped: no GPU detected (source: {:?}); these tests need an NVIDIA GPU",
            hw.gpu_source
        );
        return None;
    }
    let mut b = Cluster::builder().ignore_env().threads(2).gpus(1);
    if dashboard {
        b = b.dashboard("127.0.0.1:0");
    }
    Some(b.build().expect("a cluster on the GPU machine"))
}

/// GPU tasks that hold 256 MiB of device memory for a while each.
fn gpu_work(cluster: &Cluster, tasks: usize) -> Vec<usize> {
    let handles: Vec<TaskHandle<usize>> = (0..tasks)
        .map(|_| {
            cluster
                .delayed_on_gpu(|gpu| {
                    let stream = gpu.stream();
                    let buf = stream
                        .alloc_zeros::<u8>(256 << 20)
                        .map_err(|e| format!("{e:?}"))?;
                    stream.synchronize().map_err(|e| format!("{e:?}"))?;
                    std::thread::sleep(Duration::from_millis(150));
                    drop(buf);
                    Ok::<_, BoxError>(gpu.stream_index())
                })
                .label("on-gpu")
                .submit()
        })
        .collect();
    gather(handles).unwrap()
}

#[test]
fn the_report_has_gpu_lanes_and_nvml_samples() {
    let Some(cluster) = gpu_cluster(false) else {
        return;
    };
    let path = std::env::temp_dir().join(format!("onebox-gpu-report-{}.html", std::process::id()));
    let report = PerformanceReport::start(&cluster, &path).unwrap();
    let streams = cluster.plan().streams_per_gpu;
    let used = gpu_work(&cluster, 2 * streams);
    assert_eq!(used.len(), 2 * streams);
    let agg = report.finish().unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);

    assert_eq!(agg.group_stats("on-gpu").unwrap().ok, 2 * streams as u64);
    let gpu_lanes = agg
        .workers()
        .iter()
        .filter(|w| matches!(w.worker, Worker::Gpu { gpu: 0, .. }))
        .count();
    assert_eq!(gpu_lanes, streams);
    assert_eq!(html.matches("<rect class=\"task\"").count(), 2 * streams);
    assert!(html.contains("gpu 0 stream 0"));
    let total = cluster.hardware().gpus[cluster.plan().gpus[0]].memory_total;
    assert!(!agg.gpu().is_empty(), "no NVML sample");
    assert!(
        agg.gpu()
            .iter()
            .all(|s| s.gpu == 0 && s.memory_total == total)
    );
    let peak = agg.gpu().iter().map(|s| s.memory_used).max().unwrap();
    eprintln!(
        "{} NVML samples; peak device memory {} MiB of {} MiB; max utilisation {}%",
        agg.gpu().len(),
        peak >> 20,
        total >> 20,
        agg.gpu().iter().map(|s| s.utilisation).max().unwrap()
    );
    assert!(peak >= 256 << 20, "peak {peak}");
    assert!(html.contains("<h2>GPUs</h2>") && html.contains("id=\"gpu-0\""));
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_dashboard_reports_the_gpu() {
    let Some(cluster) = gpu_cluster(true) else {
        return;
    };
    gpu_work(&cluster, 2);
    std::thread::sleep(Duration::from_millis(300));
    let url = cluster.dashboard_url().unwrap();
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let response = http_get(addr, "/api/status");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["gpus"], 1);
    let gpu = &status["gpu"][0];
    assert_eq!(gpu["gpu"], 0);
    let total = cluster.hardware().gpus[cluster.plan().gpus[0]].memory_total;
    assert_eq!(gpu["memory_total"], total);
    let group = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "on-gpu")
        .unwrap();
    assert_eq!(group["ended"], 2);
    eprintln!("dashboard GPU status: {gpu}");
}
