//! GPU throughput on the first GPU: device copy, a fused elementwise chain, a fused reduction,
//! a cuBLAS matmul, and K=1 against K=4 streams. Prints one JSON line per figure.
//!
//! `cargo run --release --example gpu_bench [GiB]` (default 4 GiB of f32). Needs a GPU.

use std::time::Instant;

use onebox::gpu::{Expr, GpuContext, Reduce};
use onebox::prelude::*;

fn timed<T>(gpu: &GpuContext, reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?; // warm-up: kernel compile, first touch
    gpu.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let out = f()?;
        gpu.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
        drop(out);
    }
    Ok(best)
}

fn report(name: &str, seconds: f64, extra: &str) {
    println!("{{\"bench\":\"{name}\",\"seconds\":{seconds:.6}{extra}}}");
}

fn main() -> Result<()> {
    let gib: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4.0);
    let n = (gib * (1u64 << 30) as f64 / 4.0) as usize;
    let cluster = Cluster::local()?;
    if cluster.gpu_count() == 0 {
        eprintln!("gpu_bench: no GPU detected, nothing to measure");
        return Ok(());
    }
    let name = cluster.hardware().gpus[cluster.plan().gpus[0]].name.clone();
    println!("{{\"gpu\":\"{name}\",\"elements\":{n}}}");

    cluster
        .delayed_on_gpu(move |gpu| {
            let bytes = (n * 4) as f64;
            let ones = gpu.upload(&vec![1.0f32; 1 << 20])?;
            let mut x = gpu.alloc_zeros::<f32>(n)?;
            // fill x with non-trivial values: x[i] = 1 + sin(i-ish) via a chain over a tiled source
            for start in (0..n).step_by(1 << 20) {
                let len = (1 << 20).min(n - start);
                let tile =
                    gpu.elementwise(&(Expr::input(0) * (start as f64 * 1e-6)).sin(), &[&ones])?;
                let src = tile.as_slice().slice(0..len);
                let mut dst = x.as_slice_mut().slice_mut(start..start + len);
                gpu.stream()
                    .memcpy_dtod(&src, &mut dst)
                    .map_err(|e| format!("{e:?}"))?;
            }
            let mut y = gpu.alloc_zeros::<f32>(n)?;
            let copy = timed(gpu, 5, || gpu.copy(&x, &mut y))?;
            report(
                "device-copy",
                copy,
                &format!(",\"GBps\":{:.1}", 2.0 * bytes / copy / 1e9),
            );
            let chain = (Expr::input(0) * 2.0 + 1.0).abs().sqrt();
            let ew = timed(gpu, 5, || gpu.elementwise(&chain, &[&x]))?;
            report(
                "elementwise",
                ew,
                &format!(
                    ",\"GBps\":{:.1},\"fraction_of_copy\":{:.3}",
                    2.0 * bytes / ew / 1e9,
                    copy / ew
                ),
            );
            drop(y);
            let sum = timed(gpu, 5, || gpu.reduce(Reduce::Sum, &Expr::input(0), &[&x]))?;
            report(
                "sum",
                sum,
                &format!(
                    ",\"GBps\":{:.1},\"fraction_of_copy\":{:.3}",
                    bytes / sum / 1e9,
                    (bytes / sum) / (2.0 * bytes / copy)
                ),
            );
            drop(x);

            let d = 8192usize;
            let a = gpu.elementwise(&Expr::input(0).cos(), &[&gpu.alloc_zeros::<f32>(d * d)?])?;
            let b = gpu.elementwise(&(Expr::input(0) + 0.5), &[&gpu.alloc_zeros::<f32>(d * d)?])?;
            let mm = timed(gpu, 3, || gpu.matmul(&a, &b, (d, d, d)))?;
            report(
                "matmul-8192-f32",
                mm,
                &format!(",\"TFLOPs\":{:.1}", 2.0 * (d as f64).powi(3) / mm / 1e12),
            );
            Ok(())
        })
        .compute()?;

    // Streams: 32 independent tasks (upload, chain, reduce) with 1 and with 4 streams.
    for streams in [1usize, 4] {
        let c = Cluster::builder().streams_per_gpu(streams).build()?;
        let host: std::sync::Arc<Vec<f32>> =
            std::sync::Arc::new((0..(1 << 24)).map(|i| (i % 977) as f32).collect());
        c.delayed_on_gpu(|gpu| Ok(gpu.index())).compute()?; // open the context first
        let t = Instant::now();
        let handles: Vec<TaskHandle<f64>> = (0..32)
            .map(|_| {
                let host = host.clone();
                c.submit_on_gpu(move |gpu| {
                    let x = gpu.upload(&host)?;
                    Ok(gpu.reduce(Reduce::Sum, &(Expr::input(0) * 0.5).sqrt(), &[&x])?)
                })
            })
            .collect();
        gather(handles)?;
        report(
            &format!("32-tasks-{streams}-streams"),
            t.elapsed().as_secs_f64(),
            "",
        );
    }
    Ok(())
}
