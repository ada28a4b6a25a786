//! W4, chunked arrays: onebox's side of the comparison with NumPy and dask.array.
//!
//! One command runs every case, each with its warm-up and repetitions, and tags its JSON
//! lines with the case (the harness picks them with `select`):
//!
//! - `bandwidth`: copying 1 GB of f64 into another 1 GB (less below SIZE 15812) (both touched first), on one thread
//!   (`copy_from_slice`) and on two cluster tasks (`bandwidth2`, half each): the machine's
//!   memory bandwidth, counted as (bytes read + bytes written) / time;
//! - `a`: `random_normal(rows x cols).sum()`, lazy, generation included;
//! - `b`: `(x - x.mean(0)).std(0)` with `x` persisted (in memory, not timed);
//! - `b_lazy`: the same, `x` generated inside the computation (twice: once per pass);
//! - `c`: `A @ B.T` for two persisted `m x m` arrays (`m = size / 5`), `B` a separate array.
//!
//! SIZE is the number of rows; the arrays have `SIZE / 2` columns and blocks of
//! 2000 x 2000 (at most the array), like the dask.array side. Every case checks its answer:
//! the sum against the spread of a sum of normals, each column's std against 1, and a sample
//! of the product's entries against dot products computed sequentially.

use std::time::Instant;

use onebox::array::Array;
use onebox::prelude::*;
use serde_json::json;

use super::{Bench, Outcome, Rep, check};

const GB: f64 = 1e9;

/// The block edge of every W4 array (dask.array's side uses the same).
const BLOCK: usize = 2_000;

/// The W4 workload: every case, one after the other (see the module docs).
pub(super) fn run(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let rows = b.size.max(2);
    let cols = (rows / 2).max(1);
    let chunks = [BLOCK.min(rows), BLOCK.min(cols)];
    let bytes = (rows * cols * 8) as f64;
    bandwidth(b, &cluster)?;

    // (a) generation + sum, lazy: no array is ever materialised.
    b.repeat(|| {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let x = Array::random_normal(&cluster, [rows, cols], chunks, 0)?;
        let total = x.sum()?.scalar()?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        // a sum of n standard normals has standard deviation sqrt(n): 6 of them is a bug
        let spread = ((rows * cols) as f64).sqrt();
        check(total.is_finite() && total.abs() < 6.0 * spread, || {
            format!("W4a: the sum of {rows}x{cols} normals is {total}, beyond 6 x {spread}")
        })?;
        Ok(Rep {
            case: "a",
            system: "onebox random_normal + sum",
            count: 1,
            unit: "array",
            seconds,
            phases: json!({}),
            info: json!({"GB/s of array": round2(bytes / seconds / GB), "cpu s": round2(cpu)}),
        })
    })?;

    // (b') the standardisation with x generated inside it.
    b.repeat(|| {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let x = Array::random_normal(&cluster, [rows, cols], chunks, 0)?;
        let std = (&x - &x.mean_axis(&[0])?).std_axis(&[0])?.compute()?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        check_std(&std.iter().copied().collect::<Vec<_>>(), rows)?;
        Ok(Rep {
            case: "b_lazy",
            system: "onebox (x - x.mean(0)).std(0), x generated",
            count: 1,
            unit: "array",
            seconds,
            phases: json!({}),
            info: json!({"GB/s of array": round2(bytes / seconds / GB), "cpu s": round2(cpu)}),
        })
    })?;

    // (b) the standardisation of an array in memory.
    let t0 = Instant::now();
    let x = Array::random_normal(&cluster, [rows, cols], chunks, 0)?.persist()?;
    let persist = t0.elapsed().as_secs_f64();
    b.repeat(|| {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let std = (&x - &x.mean_axis(&[0])?).std_axis(&[0])?.compute()?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        check_std(&std.iter().copied().collect::<Vec<_>>(), rows)?;
        Ok(Rep {
            case: "b",
            system: "onebox (x - x.mean(0)).std(0), x persisted",
            count: 1,
            unit: "array",
            seconds,
            phases: json!({}),
            info: json!({
                "GB/s of array": round2(bytes / seconds / GB),
                "persist s": round2(persist),
                "cpu s": round2(cpu),
            }),
        })
    })?;
    drop(x);

    matmul(b, &cluster, (rows / 5).max(1))
}

/// CPU seconds this process has used (every thread, user + system): with the wall time,
/// it tells a slow run from a starved one on a loaded machine.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given; a zeroed rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Every column of a standard normal sample of `rows` rows has a std near 1 (its standard
/// error is about `1 / sqrt(2 rows)`; 8 of them is a bug).
fn check_std(std: &[f64], rows: usize) -> Outcome {
    let tol = 8.0 / (2.0 * rows as f64).sqrt();
    let bad = std
        .iter()
        .find(|s| (*s - 1.0).abs().is_nan() || (*s - 1.0).abs() > tol);
    check(bad.is_none(), || {
        format!("W4b: a column's std is {bad:?}, not within {tol:.3} of 1")
    })?;
    let mean = std.iter().sum::<f64>() / std.len().max(1) as f64;
    check((mean - 1.0).abs() <= tol, || {
        format!("W4b: the stds average {mean}, not 1")
    })
}

/// Memory bandwidth: 1 GB copied into 1 GB, on one thread and on two cluster tasks.
fn bandwidth(b: &Bench, cluster: &Cluster) -> Outcome {
    // 1 GB at full size; less for small (smoke) sizes.
    let n = (b.size * b.size / 2).clamp(1 << 20, 1_000_000_000 / 8);
    let src: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut dst = vec![0.0f64; n];
    dst.iter_mut().for_each(|d| *d = 1.0); // touch every page before timing
    b.repeat(|| {
        let t0 = Instant::now();
        dst.copy_from_slice(&src);
        let seconds = t0.elapsed().as_secs_f64();
        check(
            dst[n - 1] == (n - 1) as f64 && dst[n / 3] == (n / 3) as f64,
            || "W4 bandwidth: the copy is wrong".into(),
        )?;
        Ok(Rep {
            case: "bandwidth",
            system: "Rust copy_from_slice 1 GB (1 thread)",
            count: 1,
            unit: "copy",
            seconds,
            phases: json!({}),
            info: json!({"GB/s read+write": round2(2.0 * n as f64 * 8.0 / seconds / GB)}),
        })
    })?;
    drop(dst);
    // Two tasks, each copying its half of the source into its own (touched) half.
    let src = std::sync::Arc::new(src);
    let h = n / 2;
    let mut halves: Vec<Vec<f64>> = vec![vec![1.0; h], vec![1.0; n - h]];
    b.repeat(|| {
        let tasks: Vec<Delayed<Vec<f64>>> = halves
            .drain(..)
            .enumerate()
            .map(|(k, mut d)| {
                let src = src.clone();
                let mut slot = Some(std::mem::take(&mut d));
                cluster.delayed(move || {
                    let mut d = slot.take().unwrap_or_default();
                    let from = k * h;
                    let len = d.len();
                    d.copy_from_slice(&src[from..from + len]);
                    d
                })
            })
            .collect();
        let t0 = Instant::now();
        halves = Delayed::join_all(cluster, tasks).compute()?;
        let seconds = t0.elapsed().as_secs_f64();
        check(
            halves.len() == 2 && halves[1].last() == Some(&((n - 1) as f64)),
            || "W4 bandwidth: the two-task copy is wrong".into(),
        )?;
        Ok(Rep {
            case: "bandwidth2",
            system: "Rust copy_from_slice 1 GB, two cluster tasks x 0.5 GB",
            count: 1,
            unit: "copy",
            seconds,
            phases: json!({}),
            info: json!({"GB/s read+write": round2(2.0 * n as f64 * 8.0 / seconds / GB)}),
        })
    })
}

/// (c): `A @ B.T`, both `m x m`, persisted; 64 entries checked against sequential dots.
fn matmul(b: &Bench, cluster: &Cluster, m: usize) -> Outcome {
    let chunks = [BLOCK.min(m), BLOCK.min(m)];
    let a = Array::random_normal(cluster, [m, m], chunks, 1)?.persist()?;
    let bm = Array::random_normal(cluster, [m, m], chunks, 2)?.persist()?;
    let (av, bv) = (a.compute()?, bm.compute()?);
    let flop = 2.0 * (m as f64).powi(3);
    b.repeat(|| {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let y = a.matmul(&bm.t())?.compute()?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        for s in 0..64usize {
            let (i, j) = ((s * 7919) % m, (s * 104_729 + 13) % m);
            let want: f64 = (0..m).map(|k| av[[i, k]] * bv[[j, k]]).sum();
            let got = y[[i, j]];
            check(
                (got - want).abs() <= 1e-9 * (m as f64).sqrt() * 10.0,
                || format!("W4c: entry ({i}, {j}) is {got}, a sequential dot gives {want}"),
            )?;
        }
        Ok(Rep {
            case: "c",
            system: "onebox A.matmul(&B.t())",
            count: 1,
            unit: "matmul",
            seconds,
            phases: json!({}),
            info: json!({"GFLOP/s": round2(flop / seconds / 1e9), "cpu s": round2(cpu)}),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w4_checks_its_answers_at_a_small_size() {
        let b = Bench {
            workload: "W4",
            size: 500,
            reps: 1,
            warmup: 0,
            threads: 2,
            case: None,
        };
        run(&b).unwrap();
    }

    #[test]
    fn a_wrong_std_fails_the_check() {
        assert!(check_std(&[1.0, 1.01], 20_000).is_ok());
        assert!(check_std(&[1.0, 1.5], 20_000).is_err());
        assert!(check_std(&[f64::NAN], 20_000).is_err());
    }
}
