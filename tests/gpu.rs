//! GPU workers on a real GPU. Every test skips, saying why, when no GPU is detected.
//!
//! On a GPU machine: `cargo test --release --test gpu -- --nocapture` (or the prebuilt binary,
//! see `scripts/gpu-check.sh`).

use std::collections::HashSet;

use onebox::diagnostics::Event;
use onebox::hardware::Hardware;
use onebox::prelude::*;
use onebox::{BoxError, Worker};

mod common;

fn gpu_cluster() -> Option<Cluster> {
    let hw = Hardware::detect();
    if hw.gpus.is_empty() {
        eprintln!(
            "skipped: no GPU detected (source: {:?}); these tests need an NVIDIA GPU",
            hw.gpu_source
        );
        return None;
    }
    let t = std::time::Instant::now();
    let cluster = Cluster::builder()
        .ignore_env()
        .build()
        .expect("a cluster on the GPU machine");
    eprintln!(
        "cluster with {} GPU(s) started in {:.2?}",
        cluster.gpu_count(),
        t.elapsed()
    );
    Some(cluster)
}

/// Fresh, non-trivial data in [-1, 1).
fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::SplitMix64(seed);
    (0..n).map(|_| rng.unit_f32()).collect()
}

#[test]
fn detection_reports_real_gpus() {
    let hw = Hardware::detect();
    if hw.gpus.is_empty() {
        eprintln!("skipped: no GPU detected");
        return;
    }
    println!("{hw}");
    for g in &hw.gpus {
        assert!(!g.name.is_empty());
        assert!(
            g.uuid.starts_with("GPU-") && g.uuid.len() == 40,
            "{}",
            g.uuid
        );
        assert!(g.memory_total > 1 << 30);
        assert!(g.memory_free.is_none_or(|f| f <= g.memory_total));
        assert!(g.compute_capability >= (7, 0), "{:?}", g.compute_capability);
        assert!(!g.pci_bus_id.is_empty());
    }
}

#[test]
fn a_gpu_task_round_trips_data_through_device_memory_on_its_stream() {
    let Some(cluster) = gpu_cluster() else { return };
    let data = random_f32(1 << 22, 11);
    let expected = data.clone();
    let back = cluster
        .delayed_on_gpu(move |gpu| {
            let stream = gpu.stream();
            let on_device = stream.clone_htod(&data).map_err(|e| format!("{e:?}"))?;
            let mut out = vec![f32::NAN; data.len()]; // poisoned: a copy that did nothing fails
            stream
                .memcpy_dtoh(&on_device, &mut out)
                .map_err(|e| format!("{e:?}"))?;
            stream.synchronize().map_err(|e| format!("{e:?}"))?;
            Ok::<_, BoxError>(out)
        })
        .compute()
        .unwrap();
    assert_eq!(back, expected);
}

#[test]
fn the_worker_found_its_device_by_uuid() {
    let Some(cluster) = gpu_cluster() else { return };
    let pairs = cluster
        .delayed_on_gpu(|gpu| {
            let uuid = gpu.context().uuid().map_err(|e| format!("{e:?}"))?;
            let uuid = uuid.bytes.map(|b| b as u8);
            let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
            Ok::<_, BoxError>((
                gpu.info()
                    .uuid
                    .replace('-', "")
                    .trim_start_matches("GPU")
                    .to_string(),
                hex,
            ))
        })
        .compute()
        .unwrap();
    assert_eq!(pairs.0, pairs.1);
}

#[test]
fn tasks_are_spread_over_the_streams_and_events_name_them() {
    let Some(cluster) = gpu_cluster() else { return };
    let events = cluster.events();
    let streams = cluster.plan().streams_per_gpu;
    let handles: Vec<TaskHandle<usize>> = (0..4 * streams)
        .map(|_| cluster.submit_on_gpu(|gpu| Ok(gpu.stream_index())))
        .collect();
    let used: HashSet<usize> = gather(handles).unwrap().into_iter().collect();
    assert_eq!(used.len(), streams);
    let gpu_events = events
        .try_iter()
        .filter(|e| matches!(e, Event::Task(t) if matches!(t.worker, Worker::Gpu { gpu: 0, .. })))
        .count();
    assert_eq!(gpu_events, 4 * streams);
}

#[test]
fn a_panicking_gpu_task_is_an_error_and_the_worker_keeps_working() {
    let Some(cluster) = gpu_cluster() else { return };
    let err = cluster
        .delayed_on_gpu(|_| -> Result<u8, BoxError> { panic!("kernel blew up") })
        .compute()
        .unwrap_err();
    assert!(err.to_string().contains("kernel blew up"));
    assert_eq!(
        cluster
            .delayed_on_gpu(|gpu| Ok(gpu.index()))
            .compute()
            .unwrap(),
        0
    );
}

#[test]
fn pinning_a_missing_gpu_fails_at_once() {
    let Some(cluster) = gpu_cluster() else { return };
    let missing = cluster.gpu_count() + 3;
    let err = cluster
        .delayed_on_gpu(|_| Ok(1))
        .on_gpu(missing)
        .compute()
        .unwrap_err();
    assert!(err.to_string().contains(&format!("GPU {missing}")), "{err}");
}

#[test]
fn cuda_visible_devices_selects_by_index_and_uuid() {
    let hw = Hardware::detect();
    let Some(first) = hw.gpus.first() else {
        eprintln!("skipped: no GPU detected");
        return;
    };
    let count = |visible: &str| -> usize {
        // ONEBOX_BIN lets prebuilt test binaries run on another machine (scripts/gpu-check.sh).
        let bin = std::env::var("ONEBOX_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_onebox").to_string());
        let out = std::process::Command::new(bin)
            .args(["info", "--json"])
            .env("CUDA_VISIBLE_DEVICES", visible)
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["hardware"]["gpus"].as_array().unwrap().len()
    };
    assert_eq!(count("0"), 1);
    assert_eq!(count(&first.uuid), 1);
    assert_eq!(count(&first.uuid[..12]), 1);
    assert_eq!(count(""), 0);
    assert_eq!(count("99"), 0);
}
