//! The onebox side of the peer benchmarks (`bench/peers/`): one workload, one size, a few
//! repetitions, one JSON line per repetition on stdout.
//!
//! The harness (`bench/peers/run.sh`) runs this program and the same workloads on Dask,
//! multiprocessing and the other peers back to back, then reports the ratios. Every workload
//! checks its result against a closed form, so a fast wrong answer fails instead of winning.
//!
//! ```text
//! cargo run --release --example peers -- W1a 100000 --reps 5
//! cargo run --release --example peers -- --list
//! ```
//!
//! A line looks like
//! `{"workload":"W1a","case":"delayed","system":"onebox ...","size":100000,"count":100000,
//! "unit":"task","rep":1,"warmup":false,"seconds":0.05,"phases":{"build":0.01,...},"info":{}}`:
//! `seconds` is the figure the table reports, `phases` its parts (seconds), `info` facts that
//! are not times, `count` how many `unit`s the per-unit figure divides by. Warm-up
//! repetitions are printed too (`"warmup":true`) and left out of the medians by the harness.
//!
//! To add a workload: write a `fn(&Bench) -> Outcome` below and add a row to [`WORKLOADS`].
//!
//! The program allocates with mimalloc, as polars asks of the Rust programs it runs in (its
//! Python wheels, the peers', ship jemalloc): with glibc's malloc the db-benchmark group-by
//! questions ran up to a third slower (G1 q1 112 ms against 77 ms on 2 cores), polars' own
//! queries too. mimalloc is set never to purge freed memory (a benchmark has no need to hand
//! pages back to the OS, and Python polars' jemalloc keeps them too: `muzzy_decay_ms:-1`):
//! with mimalloc's default, the pages of a memory-heavy question are unmapped after each
//! repetition and fault in afresh, zeroed, in the next. On 2 cores J1 q5 took 4.7 s with the
//! default and 3.2 s purging with MADV_FREE (the polars crate's own query 2.8 and 2.35 s);
//! J1 q4 took 0.45 s purging with MADV_FREE and 0.39 s never purging (the crate 0.36, 0.35 s).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h; libmimalloc-sys names no constant for it):
/// milliseconds before freed memory is purged, -1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use onebox::prelude::*;
use serde_json::{Value, json};

#[path = "onebox_w3.rs"]
mod w3;
#[path = "onebox_w4.rs"]
mod w4;
#[cfg(feature = "frame")]
#[path = "onebox_w5.rs"]
mod w5;
#[cfg(feature = "frame")]
#[path = "onebox_w5j.rs"]
mod w5j;

type Outcome = std::result::Result<(), Box<dyn std::error::Error>>;

#[path = "onebox_w9.rs"]
mod w9;

/// One benchmark workload: its name on the command line, what it measures, and its body.
struct Workload {
    name: &'static str,
    about: &'static str,
    run: fn(&Bench) -> Outcome,
}

/// Every workload this program knows, in the order of `--list`. Word count (W3), arrays (W4),
/// dataframes (W5) and command jobs (W6) join here as their modules land.
const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1a",
        about: "SIZE independent `inc` tasks made with cluster.delayed, computed together \
                (Delayed::join_all), like dask.compute(*[delayed(inc)(i) ...])",
        run: w1a_delayed,
    },
    Workload {
        name: "W1b",
        about: "SIZE `inc` tasks started at once with cluster.submit_map, then gather, \
                like distributed's client.map + client.gather (one task per item)",
        run: w1b_submit_map,
    },
    Workload {
        name: "W1c",
        about: "SIZE delayed `inc` leaves summed by a binary tree of adds \
                (each add is zip + map: two tasks)",
        run: w1c_tree,
    },
    Workload {
        name: "W1d",
        about: "cluster.map(0..SIZE, inc), like multiprocessing.Pool.map (chunked)",
        run: w1d_map,
    },
    Workload {
        name: "W2",
        about: "Cluster::local() start + drop: cold (first cluster of a fresh process, \
                one process per repetition) and warm (another cluster in the same process); \
                SIZE is ignored",
        run: w2_startup,
    },
    Workload {
        name: "W3",
        about: "word count (top 20) of the corpus in $ONEBOX_W3_CORPUS (SIZE its MB): \
                Bag read_text + words + frequencies + top_k, and a hand-written rayon program",
        run: w3::w3_wordcount,
    },
    Workload {
        name: "W4",
        about: "chunked arrays, SIZE x SIZE/2 f64: memory bandwidth (1 GB copy), random normal \
                + sum, (x - x.mean(0)).std(0) (persisted and generated), A @ B.T of SIZE/5",
        run: w4::run,
    },
    Workload {
        name: "W5",
        about: "db-benchmark group-by q1 q2 q3 q5 q10 on a Frame of the 8 Parquet files in \
                $ONEBOX_W5_DATA (SIZE rows); needs the `frame` feature",
        run: w5_frames,
    },
    Workload {
        name: "W5J",
        about: "db-benchmark join q1 to q5 on Frames of the Parquet files in $ONEBOX_W5J_DATA \
                (SIZE left rows); needs the `frame` feature",
        run: w5_joins,
    },
    Workload {
        name: "W9",
        about: "data-parallel training: an MLP 64-SIZE-10 on the digits, a replica per thread \
                (onebox Trainer, as examples/train_mlp.rs)",
        run: w9::run,
    },
];

#[derive(Parser, Debug)]
#[command(about = "onebox side of the peer benchmarks: one JSON line per repetition")]
struct Args {
    /// Workload name (see --list).
    workload: Option<String>,
    /// Problem size (tasks or items).
    size: Option<usize>,
    /// Timed repetitions.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed warm-up repetitions before them.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Threads in the cluster's pool.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Only this case of a workload of several (W5 and W5J: a question, such as q2).
    #[arg(long)]
    case: Option<String>,
    /// Lists the workloads.
    #[arg(long)]
    list: bool,
    /// Internal: the child process of the cold start-up measurement.
    #[arg(long, hide = true)]
    w2_child: bool,
}

/// What a workload gets: its parameters and a way to report repetitions.
struct Bench {
    workload: &'static str,
    size: usize,
    reps: usize,
    warmup: usize,
    threads: usize,
    /// The one case to run, when given.
    case: Option<String>,
}

/// One repetition's figures, printed as one JSON line.
struct Rep<'a> {
    case: &'a str,
    system: &'a str,
    count: usize,
    unit: &'a str,
    seconds: f64,
    /// Named parts of the work, in seconds (`build`, `compute`, ...).
    phases: Value,
    /// Facts about the repetition that are not times (graph nodes, threads).
    info: Value,
}

impl Bench {
    fn cluster(&self) -> Result<Cluster> {
        Cluster::builder().threads(self.threads).build()
    }

    /// Whether case `name` is to run (every case unless `--case` names one).
    fn runs(&self, name: &str) -> bool {
        self.case.as_deref().is_none_or(|c| c == name)
    }

    /// Runs `body` for the warm-up repetitions, then the timed ones, printing each.
    fn repeat<'a>(
        &self,
        mut body: impl FnMut() -> std::result::Result<Rep<'a>, Box<dyn std::error::Error>>,
    ) -> Outcome {
        self.alternate(1, |_| body())
    }

    /// Like [`repeat`](Bench::repeat) for `systems` ways of doing the same work, taking turns
    /// within each repetition (`body(s)` runs way `s`), so that a drift of the machine hits
    /// them alike.
    fn alternate<'a>(
        &self,
        systems: usize,
        mut body: impl FnMut(usize) -> std::result::Result<Rep<'a>, Box<dyn std::error::Error>>,
    ) -> Outcome {
        let total = self.warmup + self.reps;
        for i in 0..total {
            let warmup = i < self.warmup;
            let index = if warmup { i + 1 } else { i - self.warmup + 1 };
            for s in 0..systems {
                let rep = body(s)?;
                self.emit(&rep, index, warmup);
            }
        }
        Ok(())
    }

    fn emit(&self, rep: &Rep<'_>, index: usize, warmup: bool) {
        let line = json!({
            "workload": self.workload,
            "case": rep.case,
            "system": rep.system,
            "size": self.size,
            "count": rep.count,
            "unit": rep.unit,
            "threads": self.threads,
            "rep": index,
            "warmup": warmup,
            "seconds": rep.seconds,
            "phases": rep.phases,
            "info": rep.info,
        });
        println!("{line}");
    }
}

#[cfg(feature = "frame")]
fn w5_frames(b: &Bench) -> Outcome {
    w5::run(b)
}

#[cfg(not(feature = "frame"))]
fn w5_frames(_: &Bench) -> Outcome {
    Err("W5 needs the `frame` feature: build the peers example with default features".into())
}

#[cfg(feature = "frame")]
fn w5_joins(b: &Bench) -> Outcome {
    w5j::run(b)
}

#[cfg(not(feature = "frame"))]
fn w5_joins(_: &Bench) -> Outcome {
    Err("W5J needs the `frame` feature: build the peers example with default features".into())
}

/// The benchmarks' unit of work: as small as a task can be.
fn inc(x: u64) -> u64 {
    black_box(x) + 1
}

/// A wrong result is an error, so that it cannot pass for a fast one.
fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { Err(what().into()) }
}

/// `1 + 2 + ... + n`: what summing `inc(i)` for `i` in `0..n` gives.
fn triangle(n: u64) -> u64 {
    n * (n + 1) / 2
}

fn w1a_delayed(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let n = b.size;
    b.repeat(|| {
        let t0 = Instant::now();
        let tasks: Vec<Delayed<u64>> = (0..n as u64)
            .map(|i| cluster.delayed(move || inc(i)))
            .collect();
        let all = Delayed::join_all(&cluster, tasks);
        let t1 = Instant::now();
        let out = all.compute()?;
        let t2 = Instant::now();
        check(
            out.len() == n && out.iter().enumerate().all(|(i, &v)| v == i as u64 + 1),
            || format!("W1a: wrong output for {n} tasks"),
        )?;
        let (build, compute) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        Ok(Rep {
            case: "delayed",
            system: "onebox Delayed + join_all",
            count: n,
            unit: "task",
            seconds: compute,
            phases: json!({"build": build, "compute": compute, "build+compute": build + compute}),
            info: json!({}),
        })
    })
}

fn w1b_submit_map(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let n = b.size;
    b.repeat(|| {
        let t0 = Instant::now();
        let handles = cluster.submit_map(0..n as u64, inc);
        let out = gather(handles)?;
        let seconds = t0.elapsed().as_secs_f64();
        check(
            out.len() == n && out.iter().enumerate().all(|(i, &v)| v == i as u64 + 1),
            || format!("W1b: wrong output for {n} tasks"),
        )?;
        Ok(Rep {
            case: "submit_map",
            system: "onebox submit_map + gather",
            count: n,
            unit: "task",
            seconds,
            phases: json!({}),
            info: json!({}),
        })
    })
}

/// The tree of W1c: `n` leaves, pairs added level by level (an odd one out moves up).
/// Returns the root and how many tasks the graph has.
fn build_tree(cluster: &Cluster, n: usize) -> (Option<Delayed<u64>>, usize) {
    let mut level: Vec<Delayed<u64>> = (0..n as u64)
        .map(|i| cluster.delayed(move || inc(i)))
        .collect();
    let mut tasks = level.len();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => {
                    next.push(a.zip(b).map(|(x, y)| x + y));
                    tasks += 2;
                }
                None => next.push(a),
            }
        }
        level = next;
    }
    (level.pop(), tasks)
}

fn w1c_tree(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let n = b.size;
    b.repeat(|| {
        let t0 = Instant::now();
        let (root, tasks) = build_tree(&cluster, n);
        let t1 = Instant::now();
        let sum = match root {
            Some(root) => root.compute()?,
            None => 0,
        };
        let t2 = Instant::now();
        check(sum == triangle(n as u64), || {
            format!("W1c: tree of {n} leaves summed to {sum}")
        })?;
        let (build, compute) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        // Per "task" as Dask counts them (leaves + adds), so that per-task figures compare;
        // onebox ran `tasks` graph nodes for it.
        let logical = (2 * n).saturating_sub(1);
        Ok(Rep {
            case: "tree",
            system: "onebox Delayed zip+map tree",
            count: logical,
            unit: "task",
            seconds: compute,
            phases: json!({"build": build, "compute": compute, "build+compute": build + compute}),
            info: json!({"graph_nodes": tasks}),
        })
    })
}

fn w1d_map(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let n = b.size;
    b.repeat(|| {
        let t0 = Instant::now();
        let out = cluster.map(0..n as u64, inc)?;
        let seconds = t0.elapsed().as_secs_f64();
        check(
            out.len() == n && out.iter().enumerate().all(|(i, &v)| v == i as u64 + 1),
            || format!("W1d: wrong output for {n} items"),
        )?;
        Ok(Rep {
            case: "map",
            system: "onebox cluster.map",
            count: n,
            unit: "item",
            seconds,
            phases: json!({}),
            info: json!({}),
        })
    })
}

/// Starts a cluster sized for the machine, runs one task on it, drops it: the start-up cost.
fn start_and_drop() -> std::result::Result<(f64, f64, usize), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let cluster = Cluster::local()?;
    let t1 = Instant::now();
    let threads = cluster.threads();
    check(cluster.delayed(|| inc(41)).compute()? == 42, || {
        "W2: the new cluster computed a wrong value".into()
    })?;
    let t2 = Instant::now();
    drop(cluster);
    let t3 = Instant::now();
    Ok(((t1 - t0).as_secs_f64(), (t3 - t2).as_secs_f64(), threads))
}

fn w2_startup(b: &Bench) -> Outcome {
    // Cold: a fresh process per repetition, timed inside it (process start and exit are
    // reported as a phase).
    let exe = std::env::current_exe()?;
    b.repeat(|| {
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .args(["W2", "1", "--w2-child"])
            .output()?;
        let process = t0.elapsed().as_secs_f64();
        check(out.status.success(), || {
            format!(
                "W2: the child process failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let child: Value = serde_json::from_slice(&out.stdout)?;
        let field = |k: &str| {
            child
                .get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("W2: the child process printed no {k:?}: {child}"))
        };
        let (start, stop) = (field("start")?, field("drop")?);
        Ok(Rep {
            case: "cold",
            system: "onebox Cluster::local()",
            count: 1,
            unit: "cluster",
            seconds: start + stop,
            phases: json!({"start": start, "drop": stop, "process": process}),
            info: json!({"threads": child.get("threads")}),
        })
    })?;
    // Warm: more clusters in this process.
    b.repeat(|| {
        let (start, stop, threads) = start_and_drop()?;
        Ok(Rep {
            case: "warm",
            system: "onebox Cluster::local()",
            count: 1,
            unit: "cluster",
            seconds: start + stop,
            phases: json!({"start": start, "drop": stop}),
            info: json!({"threads": threads}),
        })
    })
}

fn w2_child() -> Outcome {
    let (start, stop, threads) = start_and_drop()?;
    println!(
        "{}",
        json!({"start": start, "drop": stop, "threads": threads})
    );
    Ok(())
}

fn main() -> Outcome {
    // SAFETY: sets an option before any other thread exists; mimalloc reads it when purging.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args = Args::parse();
    if args.w2_child {
        return w2_child();
    }
    if args.list || args.workload.is_none() {
        for w in WORKLOADS {
            println!("{:5} {}", w.name, w.about);
        }
        return Ok(());
    }
    let name = args.workload.unwrap_or_default();
    let Some(workload) = WORKLOADS
        .iter()
        .find(|w| w.name.eq_ignore_ascii_case(&name))
    else {
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        return Err(format!("unknown workload {name:?}; known: {}", names.join(", ")).into());
    };
    let Some(size) = args.size else {
        return Err(format!("workload {} needs a SIZE", workload.name).into());
    };
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let bench = Bench {
        workload: workload.name,
        size,
        reps: args.reps,
        warmup: args.warmup,
        threads: args.threads,
        case: args.case,
    };
    (workload.run)(&bench)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(workload: &'static str, size: usize) -> Bench {
        Bench {
            workload,
            size,
            reps: 1,
            warmup: 0,
            case: None,
            threads: 2,
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), WORKLOADS.len());
    }

    #[test]
    fn tree_sums_like_a_loop_for_small_sizes() {
        let cluster = Cluster::builder().threads(2).build().unwrap();
        for n in 0..40usize {
            let (root, nodes) = build_tree(&cluster, n);
            let expect: u64 = (0..n as u64).map(inc).sum();
            let got = root.map(|r| r.compute().unwrap()).unwrap_or(0);
            assert_eq!(got, expect, "n = {n}");
            assert_eq!(nodes, n + 2 * n.saturating_sub(1), "n = {n}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn tree_sums_like_a_loop(n in 0usize..5000) {
            let cluster = Cluster::builder().threads(2).build().unwrap();
            let (root, _) = build_tree(&cluster, n);
            let got = root.map(|r| r.compute().unwrap()).unwrap_or(0);
            proptest::prop_assert_eq!(got, (0..n as u64).map(inc).sum::<u64>());
        }
    }

    #[test]
    fn task_workloads_check_their_results() {
        for (name, size) in [("W1a", 0), ("W1a", 1), ("W1a", 1000)] {
            w1a_delayed(&bench(name, size)).unwrap();
        }
        for size in [0, 1, 1000] {
            w1b_submit_map(&bench("W1b", size)).unwrap();
            w1c_tree(&bench("W1c", size)).unwrap();
            w1d_map(&bench("W1d", size)).unwrap();
        }
    }

    #[test]
    fn a_cluster_starts_computes_and_stops() {
        let (start, stop, threads) = start_and_drop().unwrap();
        assert!(start >= 0.0 && stop >= 0.0);
        assert!(threads >= 1);
    }

    #[test]
    fn check_turns_a_wrong_result_into_an_error() {
        assert!(check(false, || "wrong".into()).is_err());
        assert!(check(true, || "wrong".into()).is_ok());
    }
}
