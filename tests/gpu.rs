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

// ---- kernels, reductions and cuBLAS against the CPU -------------------------------------

use onebox::gpu::{Expr, GpuFloat, Reduce};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

/// Runs `expr` on the GPU over `inputs` (type T) and compares with `Expr::eval` per element.
fn check_elementwise<T: GpuFloat + Into<f64> + Copy>(
    cluster: &Cluster,
    expr: Expr,
    inputs: Vec<Vec<T>>,
    rel: f64,
) {
    let e = expr.clone();
    let host = inputs.clone();
    let got: Vec<T> = cluster
        .delayed_on_gpu(move |gpu| {
            let bufs = host
                .iter()
                .map(|v| gpu.upload(v))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<_> = bufs.iter().collect();
            let out = gpu.elementwise(&e, &refs)?;
            Ok(gpu.download(&out)?)
        })
        .compute()
        .unwrap();
    assert_eq!(got.len(), inputs[0].len());
    for (i, g) in got.iter().enumerate() {
        let xs: Vec<f64> = inputs.iter().map(|v| v[i].into()).collect();
        let want = expr.eval(&xs);
        let g: f64 = (*g).into();
        assert!(
            close(g, want, rel),
            "element {i}: gpu {g} cpu {want} for {expr:?} at {xs:?}"
        );
    }
}

#[test]
fn fused_elementwise_chains_match_the_cpu_in_f32_and_f64() {
    let Some(cluster) = gpu_cluster() else { return };
    let n = 1_000_003; // not a multiple of the block size
    let a = random_f32(n, 1);
    let b: Vec<f32> = random_f32(n, 2).iter().map(|x| x.abs() + 0.5).collect();
    let expr = ((Expr::input(0) - 0.25) / Expr::input(1).sqrt())
        .exp()
        .min(3.0)
        + Expr::input(0).sin().abs();
    check_elementwise(&cluster, expr.clone(), vec![a.clone(), b.clone()], 1e-5);
    let a64: Vec<f64> = a.iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = b.iter().map(|&x| x as f64).collect();
    check_elementwise(&cluster, expr, vec![a64, b64], 1e-12);
    // NaN propagates through min/max like NumPy's minimum/maximum
    check_elementwise(
        &cluster,
        Expr::input(0).max(0.0),
        vec![vec![f64::NAN, -1.0, 2.0]],
        0.0,
    );
}

#[test]
fn reductions_match_the_cpu_including_nan_and_empty_inputs() {
    let Some(cluster) = gpu_cluster() else { return };
    let n = 4_000_037;
    let x = random_f32(n, 3);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let got = cluster
        .delayed_on_gpu(move |gpu| {
            let d = gpu.upload(&x)?;
            let sum = gpu.reduce(Reduce::Sum, &Expr::input(0), &[&d])?;
            let m = sum / d.len() as f64;
            let var =
                gpu.reduce(Reduce::Sum, &(Expr::input(0) - m).pow(2.0), &[&d])? / d.len() as f64;
            let lo = gpu.reduce(Reduce::Min, &Expr::input(0), &[&d])?;
            let hi = gpu.reduce(Reduce::Max, &Expr::input(0), &[&d])?;
            let with_nan = gpu.upload(&[1.0f32, f32::NAN, 3.0])?;
            let nan_max = gpu.reduce(Reduce::Max, &Expr::input(0), &[&with_nan])?;
            let empty = gpu.upload::<f32>(&[])?;
            let empty_sum = gpu.reduce(Reduce::Sum, &Expr::input(0), &[&empty])?;
            Ok(vec![m, var, lo, hi, nan_max, empty_sum])
        })
        .compute();
    let got = got.unwrap();
    assert!(close(got[0], mean, 1e-9), "mean {} vs {mean}", got[0]);
    assert!(close(got[1], var, 1e-9), "var {} vs {var}", got[1]);
    assert_eq!((got[2], got[3]), (lo, hi));
    assert!(got[4].is_nan());
    assert_eq!(got[5], 0.0);
}

/// The row-major product on the CPU, in f64.
fn matmul_cpu(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += aip * b[p * n + j];
            }
        }
    }
    c
}

#[test]
fn cublas_matmul_matches_the_cpu_on_odd_shapes() {
    let Some(cluster) = gpu_cluster() else { return };
    for &(m, k, n) in &[(129, 257, 65), (1, 1000, 1), (300, 1, 200)] {
        let a = random_f32(m * k, 5);
        let b = random_f32(k * n, 6);
        let want = matmul_cpu(
            &a.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &b.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            (m, k, n),
        );
        let (a2, b2) = (a.clone(), b.clone());
        let got32: Vec<f32> = cluster
            .delayed_on_gpu(move |gpu| {
                let (da, db) = (gpu.upload(&a2)?, gpu.upload(&b2)?);
                Ok(gpu.download(&gpu.matmul(&da, &db, (m, k, n))?)?)
            })
            .compute()
            .unwrap();
        let (a64, b64): (Vec<f64>, Vec<f64>) = (
            a.iter().map(|&v| v as f64).collect(),
            b.iter().map(|&v| v as f64).collect(),
        );
        let got64: Vec<f64> = cluster
            .delayed_on_gpu(move |gpu| {
                let (da, db) = (gpu.upload(&a64)?, gpu.upload(&b64)?);
                Ok(gpu.download(&gpu.matmul(&da, &db, (m, k, n))?)?)
            })
            .compute()
            .unwrap();
        let scale = (k as f64).sqrt();
        for i in 0..m * n {
            assert!(
                (got32[i] as f64 - want[i]).abs() <= 1e-4 * scale,
                "f32 {m}x{k}x{n} [{i}]: {} vs {}",
                got32[i],
                want[i]
            );
            assert!(
                (got64[i] - want[i]).abs() <= 1e-10 * scale,
                "f64 {m}x{k}x{n} [{i}]: {} vs {}",
                got64[i],
                want[i]
            );
        }
    }
}

#[test]
fn the_gpu_memory_limit_refuses_an_allocation_with_a_clear_error() {
    let Some(cluster) = gpu_cluster() else { return };
    let limit = cluster.plan().gpu_memory_limits[0];
    let too_big = (limit / 4 + 1) as usize; // f32 elements: one byte past the limit
    let err = cluster
        .delayed_on_gpu(move |gpu| Ok(gpu.alloc_zeros::<f32>(too_big)?.len()))
        .compute()
        .unwrap_err();
    assert!(err.to_string().contains("memory limit"), "{err}");
    let ok = cluster
        .delayed_on_gpu(|gpu| Ok(gpu.alloc_zeros::<f32>(1 << 20)?.len()))
        .compute()
        .unwrap();
    assert_eq!(ok, 1 << 20);
}
