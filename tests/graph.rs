//! The scheduler against plain sequential evaluation: DAGs, failures, panics, retries,
//! cancellation, futures, nested computes, events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use onebox::diagnostics::{Event, TaskOutcome};
use onebox::prelude::*;
use onebox::{Error, TaskFailure};

mod common;
use common::{cluster, random_dag};

fn node_value(i: usize, inputs: &[u64]) -> u64 {
    inputs
        .iter()
        .fold(i as u64 + 1, |acc, &x| acc.wrapping_mul(31).wrapping_add(x))
}

#[test]
fn random_dag_of_100k_tasks_equals_sequential_evaluation() {
    let n = 100_000;
    let deps = random_dag(n, 7);
    let mut expected = vec![0u64; n];
    for i in 0..n {
        let inputs: Vec<u64> = deps[i].iter().map(|&d| expected[d]).collect();
        expected[i] = node_value(i, &inputs);
    }

    let c = cluster(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut nodes: Vec<Delayed<u64>> = Vec::with_capacity(n);
    for (i, d) in deps.iter().enumerate() {
        let inputs: Vec<Delayed<u64>> = d.iter().map(|&j| nodes[j].clone()).collect();
        let runs = runs.clone();
        let node = Delayed::join_with(&c, inputs, move |xs| {
            runs.fetch_add(1, Ordering::Relaxed);
            node_value(i, &xs)
        });
        nodes.push(node);
    }
    // Every node is an output: each must be computed exactly once however many share it.
    let all = Delayed::join_all(&c, nodes).compute().unwrap();
    assert_eq!(all, expected);
    assert_eq!(runs.load(Ordering::Relaxed), n);
}

#[test]
fn shared_input_runs_once_and_values_are_not_mixed_up() {
    let c = cluster(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let base = c.delayed(move || {
        r.fetch_add(1, Ordering::SeqCst);
        vec![1, 2, 3]
    });
    let sum = base.clone().map(|v| v.iter().sum::<i32>());
    let len = base.clone().map(|v| v.len() as i32);
    let both = sum.zip(len).compute().unwrap();
    assert_eq!(both, (6, 3));
    // computing the shared input again does not rerun it
    assert_eq!(base.compute().unwrap(), vec![1, 2, 3]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_becomes_an_error_naming_the_task_and_the_cluster_keeps_working() {
    let c = cluster(2);
    let bad = c
        .delayed(|| -> i32 { panic!("row 17 is broken") })
        .label("parse");
    let key = bad.key();
    let downstream = bad.map(|x| x + 1).label("plus-one");
    let err = downstream.compute().unwrap_err();
    let task_err = err.as_task().expect("a task error");
    assert_eq!(task_err.key().label(), Some("plus-one"));
    assert!(matches!(task_err.failure(), TaskFailure::InputFailed(_)));
    let root = task_err.root_cause();
    assert_eq!(root.key(), &key);
    assert!(root.is_panic());
    let text = err.to_string();
    assert!(
        text.contains("parse#") && text.contains("row 17 is broken"),
        "{text}"
    );
    // the pool survived
    assert_eq!(c.delayed(|| 5).compute().unwrap(), 5);
}

#[test]
fn dependents_of_a_failed_task_do_not_run_and_other_failures_stay_reachable() {
    let c = cluster(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let bad1 = c
        .try_delayed(|| Err::<i32, _>("disk full"))
        .label("write-a");
    let bad2 = c.try_delayed(|| Err::<i32, _>("no space")).label("write-b");
    let r = ran.clone();
    let after = bad1.zip(bad2).map(move |(a, b)| {
        r.fetch_add(1, Ordering::SeqCst);
        a + b
    });
    let err = after.compute().unwrap_err();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a dependent of a failed task ran"
    );
    let e = err.as_task().unwrap();
    let first = e.root_cause().key().label().unwrap().to_string();
    assert!(first == "write-a" || first == "write-b");
    let others: Vec<_> = e
        .also_failed()
        .iter()
        .map(|o| o.key().label().unwrap().to_string())
        .collect();
    // both inputs ran (they are independent); the one not reported first is attached
    assert_eq!(others.len(), 1, "{others:?}");
    assert_ne!(others[0], first);
}

#[test]
fn retries_rerun_a_failing_task_until_it_succeeds() {
    let c = cluster(2);
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let flaky = c
        .try_delayed(move || {
            if a.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("transient")
            } else {
                Ok(42)
            }
        })
        .retries(2);
    assert_eq!(flaky.compute().unwrap(), 42);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let always = c.delayed(|| -> i32 { panic!("always") }).retries(3);
    let err = always.compute().unwrap_err();
    assert_eq!(err.as_task().unwrap().attempts(), 4);
}

#[test]
fn retries_see_their_input_again() {
    let c = cluster(1);
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let input = c.delayed(|| vec![1u8, 2, 3]);
    let out = input
        .map(move |v| {
            if a.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first try fails");
            }
            v.len()
        })
        .retries(1);
    assert_eq!(out.compute().unwrap(), 3);
}

#[test]
fn cancelling_a_queued_task_fails_it_and_its_dependents() {
    let c = cluster(1);
    let (gate_tx, gate_rx) = crossbeam::channel::bounded::<()>(0);
    // occupy the single thread
    let blocker = c.submit(move || {
        let _ = gate_rx.recv();
        1
    });
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let victim = c.submit(move || {
        r.fetch_add(1, Ordering::SeqCst);
        2
    });
    let downstream = victim.clone().map(|x| x * 10);
    assert!(victim.cancel());
    gate_tx.send(()).unwrap();
    assert_eq!(blocker.result().unwrap(), 1);
    let err = victim.result().unwrap_err();
    assert!(err.as_task().unwrap().is_cancelled());
    let err = downstream.result().unwrap_err();
    assert!(err.as_task().unwrap().root_cause().is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // a finished task cannot be cancelled
    let done = c.submit(|| 3);
    done.wait().unwrap();
    assert!(!done.cancel());
}

#[test]
fn futures_gather_and_as_completed_return_every_result() {
    let c = cluster(2);
    let handles = c.submit_map(0..200u64, |x| x * 3);
    let gathered = gather(handles.clone()).unwrap();
    assert_eq!(gathered, (0..200u64).map(|x| x * 3).collect::<Vec<_>>());
    let mut seen: Vec<(usize, u64)> = as_completed(handles)
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..200u64).map(|x| (x as usize, x * 3)).collect::<Vec<_>>()
    );
}

#[test]
fn as_completed_yields_in_completion_order() {
    let c = cluster(2);
    let (tx, rx) = crossbeam::channel::bounded::<()>(0);
    let slow = c.submit(move || {
        let _ = rx.recv();
        "slow"
    });
    let fast = c.submit(|| "fast");
    let mut it = as_completed(vec![slow, fast]);
    assert_eq!(it.next().map(|(i, r)| (i, r.unwrap())), Some((1, "fast")));
    tx.send(()).unwrap();
    assert_eq!(it.next().map(|(i, r)| (i, r.unwrap())), Some((0, "slow")));
    assert!(it.next().is_none());
}

#[test]
fn a_handle_feeds_lazy_graphs_and_wait_reports_the_first_error() {
    let c = cluster(2);
    let h = c.submit(|| 20);
    let lazy = h
        .clone()
        .into_delayed()
        .zip(c.value(22))
        .map(|(a, b)| a + b);
    assert_eq!(lazy.compute().unwrap(), 42);
    let good = c.submit(|| 1);
    let bad = c.submit(|| -> i32 { panic!("nope") });
    let err = wait(&[good, bad]).unwrap_err();
    assert!(err.to_string().contains("nope"));
}

#[test]
fn a_task_may_compute_a_graph_inside_without_deadlocking_the_pool() {
    let c = cluster(1);
    let inner = c.clone();
    let outer = c.delayed(move || {
        let parts: Vec<Delayed<u64>> = (0..10u64).map(|i| inner.delayed(move || i * i)).collect();
        Delayed::join_all(&inner, parts)
            .compute()
            .unwrap()
            .iter()
            .sum::<u64>()
    });
    assert_eq!(outer.compute().unwrap(), 285);
}

#[test]
fn gpu_tasks_fail_at_once_when_the_cluster_has_no_gpu() {
    let c = Cluster::builder()
        .threads(1)
        .gpus(0)
        .ignore_env()
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    let err = c.delayed_on_gpu(|_gpu| Ok(1)).compute().unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "it waited");
    let root = err.as_task().unwrap().root_cause();
    let TaskFailure::Error(cause) = root.failure() else {
        panic!("{err}")
    };
    let cause = cause.downcast_ref::<Error>().expect("an onebox error");
    assert!(
        matches!(cause, Error::NoGpu { available: 0, .. }),
        "{cause}"
    );
    assert!(err.to_string().contains("GPU"), "{err}");
}

#[test]
fn events_report_each_task_once_with_its_outcome() {
    let c = cluster(2);
    let events = c.events();
    let ok = c.delayed(|| 1).label("good");
    let bad = c.delayed(|| -> i32 { panic!("x") }).label("bad");
    let _ = ok.compute();
    let _ = bad.compute();
    let finished: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Task(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 2);
    let good = finished
        .iter()
        .find(|t| t.key.label() == Some("good"))
        .unwrap();
    assert_eq!(good.outcome, TaskOutcome::Ok);
    assert!(good.end >= good.start);
    let bad = finished
        .iter()
        .find(|t| t.key.label() == Some("bad"))
        .unwrap();
    assert!(matches!(&bad.outcome, TaskOutcome::Failed(m) if m.contains('x')));
}

#[test]
fn several_clusters_live_side_by_side() {
    let a = cluster(1);
    let b = cluster(2);
    let x = a.delayed(|| 1);
    let y = b.delayed(|| 2);
    assert_eq!(x.compute().unwrap() + y.compute().unwrap(), 3);
    assert_eq!(
        Cluster::global().unwrap().delayed(|| 7).compute().unwrap(),
        7
    );
}

#[test]
fn a_long_chain_moves_its_value_and_a_long_failing_chain_does_not_overflow() {
    let c = cluster(2);
    let mut d = c.delayed(|| vec![0u8; 1 << 20]);
    for _ in 0..1000 {
        d = d.map(|mut v| {
            v[0] = v[0].wrapping_add(1);
            v
        });
    }
    assert_eq!(d.compute().unwrap()[0], 1000u32 as u8);

    let mut d = c.delayed(|| -> u64 { panic!("at the root") });
    for _ in 0..200_000 {
        d = d.map(|x| x + 1);
    }
    assert!(
        d.compute()
            .unwrap_err()
            .as_task()
            .unwrap()
            .root_cause()
            .is_panic()
    );
}
