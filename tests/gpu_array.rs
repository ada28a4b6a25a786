//! Arrays on a real GPU: every GPU operation of `GpuArray` against the CPU implementation of
//! the same `Array`, on fresh random data (a new seed per run, printed), with odd shapes and
//! chunkings. Every test skips, saying why, when no GPU is detected.
//!
//! On a GPU machine: `cargo test --release --test gpu_array -- --nocapture` (or the prebuilt
//! binary, see `scripts/gpu-check.sh`).

use ndarray::ArrayD;
use onebox::Worker;
use onebox::array::{Array, GpuElement};
use onebox::diagnostics::Event;
use onebox::hardware::Hardware;
use onebox::prelude::*;

fn gpu_cluster() -> Option<Cluster> {
    let hw = Hardware::detect();
    if hw.gpus.is_empty() {
        eprintln!(
            "skipped: no GPU detected (source: {:?}); these tests need an NVIDIA GPU",
            hw.gpu_source
        );
        return None;
    }
    Some(
        Cluster::builder()
            .ignore_env()
            .build()
            .expect("a cluster on the GPU machine"),
    )
}

/// A fresh seed per run (printed, to replay a failure).
fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("seed {s}");
    s
}

fn close(a: f64, b: f64, rel: f64, scale: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * (scale + a.abs().max(b.abs()))
}

fn assert_all_close<T: GpuElement>(gpu: &ArrayD<T>, cpu: &ArrayD<T>, rel: f64, what: &str) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}");
    for (k, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let (g, c) = (
            num_traits::ToPrimitive::to_f64(g).unwrap(),
            num_traits::ToPrimitive::to_f64(c).unwrap(),
        );
        assert!(
            close(g, c, rel, 1.0),
            "{what}: element {k}: GPU {g} != CPU {c}"
        );
    }
}

/// Normal data (never zeros), as `T`, shape `shape` cut into `chunks`.
fn data<T: GpuElement>(c: &Cluster, shape: [usize; 2], chunks: [usize; 2], seed: u64) -> Array<T>
where
    f64: num_traits::AsPrimitive<T>,
{
    (Array::random_normal(c, shape, chunks, seed).unwrap() * 2.0 + 0.5).astype::<T>()
}

/// An elementwise chain with a broadcast row, scalars, GPU functions and CPU-only nodes.
fn chain<T: GpuElement>(x: &Array<T>, y: &Array<T>, row: &Array<T>) -> Array<T> {
    let two = lit::<T>(2.0);
    let half = lit::<T>(0.5);
    let t = ((x - row) / (y.abs() + half)).tanh() * two;
    let one_half = lit::<T>(1.5);
    // every step well-conditioned (bounded derivatives), so both sides agree to rounding
    let u = (x.abs() + one_half).ln().sqrt() - y.sin() * x.cos();
    let v = (t.maximum(&u) - (x.clip(-half, half)).exp()).powi(2);
    -((v + two).recip() + x.abs().powf(1.5)) + (y * y).minimum(two)
}

fn gpu_ran(events: &crossbeam::channel::Receiver<Event>) -> usize {
    events
        .try_iter()
        .filter(|e| matches!(e, Event::Task(t) if matches!(t.worker, Worker::Gpu { .. })))
        .count()
}

fn elementwise_matches_cpu<T: GpuElement>(rel: f64)
where
    f64: num_traits::AsPrimitive<T>,
{
    let Some(c) = gpu_cluster() else { return };
    let s = seed();
    for (shape, chunks) in [
        ([1003, 517], [250, 130]),
        ([1, 1], [1, 1]),
        ([37, 3], [37, 2]),
    ] {
        let x = data::<T>(&c, shape, chunks, s);
        let y = data::<T>(&c, shape, [chunks[1].max(1), chunks[0]], s + 1);
        let row = (Array::random_normal(&c, [shape[1]], [chunks[1]], s + 2).unwrap()).astype::<T>();
        let z = chain(&x, &y, &row);
        let events = c.events();
        let gpu = z.on_gpus().compute().unwrap();
        assert!(
            gpu_ran(&events) >= z.num_blocks(),
            "every block ran on a GPU"
        );
        let cpu = z.compute().unwrap();
        assert_all_close(&gpu, &cpu, rel, &format!("chain {shape:?}/{chunks:?}"));
        // through the host array: CPU operations follow GPU blocks
        let h = z.on_gpus().to_host().unwrap();
        assert_all_close(&h.compute().unwrap(), &cpu, rel, "to_host");
        let p = z.on_gpus().persist().unwrap();
        assert_all_close(
            &(&p * two::<T>()).compute().unwrap(),
            &(&z * two::<T>()).compute().unwrap(),
            rel,
            "persist",
        );
    }
}

fn two<T: GpuElement>() -> T {
    lit::<T>(2.0)
}

fn lit<T: GpuElement>(v: f32) -> T {
    <T as From<f32>>::from(v)
}

#[test]
fn elementwise_chains_f64_match_the_cpu() {
    elementwise_matches_cpu::<f64>(1e-10);
}

#[test]
fn elementwise_chains_f32_match_the_cpu() {
    elementwise_matches_cpu::<f32>(1e-4);
}

fn reductions_match_cpu<T: GpuElement>(rel: f64)
where
    f64: num_traits::AsPrimitive<T>,
{
    let Some(c) = gpu_cluster() else { return };
    let s = seed();
    for (shape, chunks) in [
        ([2001, 333], [500, 100]),
        ([1, 1], [1, 1]),
        ([7, 13], [3, 5]),
    ] {
        let x = data::<T>(&c, shape, chunks, s);
        let z = (&x * lit::<T>(3.0)).exp().ln() + x.tanh(); // fused on the GPU
        for (name, a) in [("x", &x), ("z", &z)] {
            let g = a.on_gpus();
            let scale = a.abs().sum().unwrap().scalar().unwrap();
            let scale = num_traits::ToPrimitive::to_f64(&scale).unwrap();
            let n = a.len() as f64;
            let pairs: Vec<(&str, T, T, f64)> = vec![
                (
                    "sum",
                    g.sum().unwrap().scalar().unwrap(),
                    a.sum().unwrap().scalar().unwrap(),
                    scale,
                ),
                (
                    "mean",
                    g.mean().unwrap().scalar().unwrap(),
                    a.mean().unwrap().scalar().unwrap(),
                    scale / n,
                ),
                (
                    "min",
                    g.min().unwrap().scalar().unwrap(),
                    a.min().unwrap().scalar().unwrap(),
                    1.0,
                ),
                (
                    "max",
                    g.max().unwrap().scalar().unwrap(),
                    a.max().unwrap().scalar().unwrap(),
                    1.0,
                ),
                (
                    "var",
                    g.var(0).unwrap().scalar().unwrap(),
                    a.var().unwrap().scalar().unwrap(),
                    1.0,
                ),
                (
                    "std",
                    g.std(0).unwrap().scalar().unwrap(),
                    a.std().unwrap().scalar().unwrap(),
                    1.0,
                ),
                (
                    "var ddof 1",
                    g.var(1).unwrap().scalar().unwrap(),
                    a.var_with(&[0, 1], 1).unwrap().scalar().unwrap(),
                    1.0,
                ),
            ];
            for (what, gv, cv, scale) in pairs {
                let (gv, cv) = (
                    num_traits::ToPrimitive::to_f64(&gv).unwrap(),
                    num_traits::ToPrimitive::to_f64(&cv).unwrap(),
                );
                assert!(
                    close(gv, cv, rel, scale),
                    "{name} {shape:?}/{chunks:?} {what}: GPU {gv} != CPU {cv}"
                );
            }
        }
    }
}

#[test]
fn reductions_f64_match_the_cpu() {
    reductions_match_cpu::<f64>(1e-9);
}

#[test]
fn reductions_f32_match_the_cpu() {
    reductions_match_cpu::<f32>(1e-4);
}

#[test]
fn reductions_of_empty_and_nan_arrays() {
    let Some(c) = gpu_cluster() else { return };
    let e = Array::<f64>::zeros(&c, [0, 4], [1, 4]).unwrap();
    assert_eq!(e.on_gpus().sum().unwrap().scalar().unwrap(), 0.0);
    assert!(e.on_gpus().mean().unwrap().scalar().unwrap().is_nan());
    assert!(e.on_gpus().min().is_err());
    let x = Array::random_normal(&c, [50, 4], [7, 3], seed()).unwrap();
    let with_nan = x.ln(); // about half NaN
    assert!(with_nan.on_gpus().max().unwrap().scalar().unwrap().is_nan());
    assert!(with_nan.on_gpus().sum().unwrap().scalar().unwrap().is_nan());
}

fn matmul_matches_cpu<T: GpuElement>(rel: f64)
where
    f64: num_traits::AsPrimitive<T>,
{
    let Some(c) = gpu_cluster() else { return };
    let s = seed();
    for ((m, k, n), ca, cb) in [
        ((301, 157, 89), [100, 50], [60, 40]),
        ((1, 1, 1), [1, 1], [1, 1]),
        ((64, 513, 7), [64, 128], [128, 7]),
    ] {
        let a = data::<T>(&c, [m, k], ca, s);
        let b = data::<T>(&c, [k, n], cb, s + 7);
        let a2 = a.abs().sqrt(); // a fused expression feeds the product
        let gpu = a2.on_gpus().matmul(&b).unwrap().compute().unwrap();
        let cpu = a2.matmul(&b).unwrap().compute().unwrap();
        assert_eq!(gpu.shape(), &[m, n]);
        check_product(&gpu, &cpu, &a2, &b, rel);
        // the right operand fused on the GPUs too
        let b2 = (&b * lit::<T>(0.5)).tanh();
        let both = a2
            .on_gpus()
            .matmul_gpu(&b2.on_gpus())
            .unwrap()
            .compute()
            .unwrap();
        check_product(
            &both,
            &a2.matmul(&b2).unwrap().compute().unwrap(),
            &a2,
            &b2,
            rel,
        );
    }
}

/// Compares products within `rel` of the sum of the magnitudes of the terms of each element
/// (the scale of a dot product's rounding error).
fn check_product<T: GpuElement>(
    gpu: &ArrayD<T>,
    cpu: &ArrayD<T>,
    a: &Array<T>,
    b: &Array<T>,
    rel: f64,
) {
    assert_eq!(gpu.shape(), cpu.shape());
    let mag = a.abs().matmul(&b.abs()).unwrap().compute().unwrap();
    for ((g, c), s) in gpu.iter().zip(cpu).zip(&mag) {
        let (g, c, s) = (
            num_traits::ToPrimitive::to_f64(g).unwrap(),
            num_traits::ToPrimitive::to_f64(c).unwrap(),
            num_traits::ToPrimitive::to_f64(s).unwrap(),
        );
        assert!(
            close(g, c, rel, s),
            "matmul: GPU {g} != CPU {c} (scale {s})"
        );
    }
}

#[test]
fn matmul_f64_matches_the_cpu() {
    matmul_matches_cpu::<f64>(1e-12);
}

#[test]
fn matmul_f32_matches_the_cpu() {
    matmul_matches_cpu::<f32>(1e-4);
}

#[test]
fn every_chosen_gpu_gets_blocks_and_gives_the_same_numbers() {
    let Some(c) = gpu_cluster() else { return };
    let x = data::<f64>(&c, [400, 300], [100, 100], seed());
    let z = (&x * 1.5).exp();
    let cpu = z.compute().unwrap();
    for g in 0..c.gpu_count() {
        let events = c.events();
        assert_all_close(
            &z.on_gpu_set(&[g]).compute().unwrap(),
            &cpu,
            1e-12,
            "one GPU",
        );
        let on_g = events
            .try_iter()
            .filter(|e| matches!(e, Event::Task(t) if matches!(t.worker, Worker::Gpu { gpu, .. } if gpu == g)))
            .count();
        assert!(on_g >= z.num_blocks(), "GPU {g} ran {on_g} tasks");
    }
}
