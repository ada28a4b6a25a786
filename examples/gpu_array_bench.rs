//! The standardise pipeline of `examples/array_stats.rs` on the GPUs against the CPU path, in
//! the same run. Prints one JSON line per pass and backend, then one comparing the results.
//!
//! `cargo run --release --example gpu_array_bench [ROWS COLS [f32|f64]]` (default 20000 x
//! 10000 f64). Without a GPU it runs the CPU path and says that the GPU path was skipped.
//!
//! The CPU path is `array_stats`'s: column means and standard deviations (`mean_std_axis`, one
//! pass), the standardised matrix's column statistics, then its minimum and maximum. The GPU
//! path computes the same numbers with what the GPUs have: column sums as a cuBLAS product
//! `ones(1 x rows) @ x` (blocks of `x`, and of `(x - mean)^2`, evaluated by fused kernels on the
//! GPUs), and min/max as GPU reductions. In both, the random matrix itself is generated block
//! by block on the CPU pool, never held whole.

use std::time::Instant;

use ndarray::ArrayD;
use num_traits::AsPrimitive;
use onebox::array::{Array, GpuElement};
use onebox::prelude::*;

fn line(backend: &str, dtype: &str, pass: &str, seconds: f64) {
    println!(
        "{{\"bench\":\"standardise\",\"backend\":\"{backend}\",\"dtype\":\"{dtype}\",\"pass\":\"{pass}\",\"seconds\":{seconds:.4}}}"
    );
}

fn max_abs_diff<T: GpuElement>(a: &ArrayD<T>, b: &ArrayD<T>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64().unwrap_or(f64::NAN) - y.to_f64().unwrap_or(f64::NAN)).abs())
        .fold(0.0, f64::max)
}

fn run<T: GpuElement>(cluster: &Cluster, rows: usize, cols: usize) -> Result<()>
where
    f64: AsPrimitive<T>,
{
    let dtype = std::any::type_name::<T>();
    let chunks = [2_000.min(rows.max(1)), 2_000.min(cols.max(1))];
    // columns drawn from N(5, 3^2)
    let x = (Array::random_normal(cluster, [rows, cols], chunks, 42)? * 3.0 + 5.0).astype::<T>();
    let n = <T as From<f32>>::from(rows as f32);

    // ---- CPU
    let t = Instant::now();
    let (mean, std) = x.mean_std_axis(&[0], 0)?;
    let (mean, std) = (mean.persist()?, std.persist()?);
    line("cpu", dtype, "column stats", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let z = (&x - &mean) / &std;
    let (z_mean, z_std) = z.mean_std_axis(&[0], 0)?;
    let (z_mean, z_std) = (z_mean.compute()?, z_std.compute()?);
    line(
        "cpu",
        dtype,
        "standardise + column stats",
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    let (lo, hi) = (z.min()?.scalar()?, z.max()?.scalar()?);
    line("cpu", dtype, "min + max", t.elapsed().as_secs_f64());

    if cluster.gpu_count() == 0 {
        println!(
            "{{\"bench\":\"standardise\",\"backend\":\"gpu\",\"skipped\":\"no GPU detected\"}}"
        );
        return Ok(());
    }

    // ---- GPU: column sums as ones(1 x rows) @ block, on the GPUs
    let ones = Array::<T>::ones(cluster, [1, rows], [1, chunks[0]])?.on_gpus();
    let col_mean = |a: &Array<T>| -> Result<Array<T>> { Ok(ones.matmul_gpu(&a.on_gpus())? / n) };
    let t = Instant::now();
    let g_mean = col_mean(&x)?.persist()?;
    let g_std = col_mean(&(&x - &g_mean).powi(2))?.sqrt().persist()?;
    line("gpu", dtype, "column stats", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let gz = (&x - &g_mean) / &g_std;
    let gz_mean = col_mean(&gz)?.persist()?;
    let gz_std = col_mean(&(&gz - &gz_mean).powi(2))?.sqrt().compute()?;
    let gz_mean = gz_mean.compute()?;
    line(
        "gpu",
        dtype,
        "standardise + column stats",
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    let (g_lo, g_hi) = (gz.on_gpus().min()?.scalar()?, gz.on_gpus().max()?.scalar()?);
    line("gpu", dtype, "min + max", t.elapsed().as_secs_f64());

    let d_mean = max_abs_diff(
        &g_mean
            .compute()?
            .into_shape_with_order(vec![cols])
            .map_err(|e| Error::Invalid(e.to_string()))?
            .into_dyn(),
        &mean.compute()?,
    );
    let d_std = max_abs_diff(
        &g_std
            .compute()?
            .into_shape_with_order(vec![cols])
            .map_err(|e| Error::Invalid(e.to_string()))?
            .into_dyn(),
        &std.compute()?,
    );
    let worst = |a: &ArrayD<T>, target: f64| {
        a.iter()
            .map(|v| (v.to_f64().unwrap_or(f64::NAN) - target).abs())
            .fold(0.0, f64::max)
    };
    println!(
        "{{\"bench\":\"standardise\",\"check\":true,\"dtype\":\"{dtype}\",\"max_abs_diff_column_mean\":{d_mean:.3e},\"max_abs_diff_column_std\":{d_std:.3e},\"cpu_worst_z_mean\":{:.3e},\"gpu_worst_z_mean\":{:.3e},\"cpu_worst_z_std_minus_1\":{:.3e},\"gpu_worst_z_std_minus_1\":{:.3e},\"cpu_min\":{:.6},\"gpu_min\":{:.6},\"cpu_max\":{:.6},\"gpu_max\":{:.6}}}",
        worst(&z_mean, 0.0),
        worst(&gz_mean, 0.0),
        worst(&z_std, 1.0),
        worst(&gz_std, 1.0),
        lo.to_f64().unwrap_or(f64::NAN),
        g_lo.to_f64().unwrap_or(f64::NAN),
        hi.to_f64().unwrap_or(f64::NAN),
        g_hi.to_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let cols = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let cluster = Cluster::local()?;
    let gpus: Vec<String> = cluster
        .plan()
        .gpus
        .iter()
        .filter_map(|&g| cluster.hardware().gpus.get(g))
        .map(|g| format!("\"{}\"", g.name))
        .collect();
    println!(
        "{{\"bench\":\"standardise\",\"rows\":{rows},\"cols\":{cols},\"threads\":{},\"gpus\":[{}]}}",
        cluster.threads(),
        gpus.join(",")
    );
    match args.get(2).map(String::as_str) {
        Some("f32") => run::<f32>(&cluster, rows, cols),
        _ => run::<f64>(&cluster, rows, cols),
    }
}
