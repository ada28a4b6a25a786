//! Pool-style map against sequential iteration.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use onebox::prelude::*;
use proptest::prelude::*;

mod common;
use common::cluster;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn map_equals_sequential(items in proptest::collection::vec(any::<i64>(), 0..5000), threads in 1usize..5) {
        let c = cluster(threads);
        let expected: Vec<i64> = items.iter().map(|x| x.wrapping_mul(3) ^ 5).collect();
        prop_assert_eq!(c.map(items.clone(), |x| x.wrapping_mul(3) ^ 5).unwrap(), expected);
    }

    #[test]
    fn map_of_strings_keeps_order(items in proptest::collection::vec(".{0,8}", 0..300)) {
        let c = cluster(2);
        let expected: Vec<String> = items.iter().map(|s| s.to_uppercase()).collect();
        prop_assert_eq!(c.map(items, |s: String| s.to_uppercase()).unwrap(), expected);
    }
}

#[test]
fn map_may_borrow_from_the_caller() {
    let c = cluster(2);
    let table: Vec<u64> = (0..100).map(|i| i * i).collect();
    let out = c.map(0..100usize, |i| table[i] + 1).unwrap();
    assert_eq!(out, (0..100u64).map(|i| i * i + 1).collect::<Vec<_>>());
}

/// Counts drops, to prove that a failed map drops every item and result exactly once.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_item_fails_the_map_names_its_chunk_and_leaks_nothing() {
    let c = cluster(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let n = 10_000;
    let items: Vec<(usize, Counted)> = (0..n).map(|i| (i, Counted(drops.clone()))).collect();
    let out_drops = Arc::new(AtomicUsize::new(0));
    let od = out_drops.clone();
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let err = c
        .map(items, move |(i, _c)| {
            if i == 7777 {
                panic!("item {i} is bad");
            }
            m.fetch_add(1, Ordering::SeqCst);
            Counted(od.clone())
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("item 7777 is bad") && text.contains("map["),
        "{text}"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        n,
        "every input dropped exactly once"
    );
    assert_eq!(
        out_drops.load(Ordering::SeqCst),
        made.load(Ordering::SeqCst),
        "every result dropped"
    );
    // the cluster still works
    assert_eq!(c.map(vec![1, 2, 3], |x| x * 2).unwrap(), vec![2, 4, 6]);
}

#[test]
fn empty_and_single_item_maps() {
    let c = cluster(3);
    assert!(c.map(Vec::<u8>::new(), |x| x).unwrap().is_empty());
    assert_eq!(c.map([9], |x| x + 1).unwrap(), vec![10]);
}

#[test]
fn starmap_spreads_tuples_into_arguments() {
    let c = cluster(2);
    let out = c
        .starmap(
            (0..50).map(|i| (i, i * 2, "x")),
            |a: i32, b: i32, s: &str| format!("{s}{}", a + b),
        )
        .unwrap();
    assert_eq!(
        out,
        (0..50).map(|i| format!("x{}", 3 * i)).collect::<Vec<_>>()
    );
}

#[test]
fn imap_unordered_returns_every_result_once() {
    let c = cluster(2);
    let mut out: Vec<u64> = c
        .imap_unordered(0..10_000u64, |x| x + 1)
        .map(|r| r.unwrap())
        .collect();
    out.sort();
    assert_eq!(out, (1..=10_000u64).collect::<Vec<_>>());
    let results: Vec<Result<u64>> = c
        .imap_unordered(0..100u64, |x| if x == 50 { panic!("fifty") } else { x })
        .collect();
    assert!(
        results
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.to_string().contains("fifty")))
    );
}

#[test]
fn chunks_run_on_several_threads_at_once() {
    // Items 0 and 4 are in different chunks; each waits (up to 5 s) for the other to start.
    // Both see each other only if the map runs its chunks at the same time.
    let c = cluster(2);
    let started = AtomicUsize::new(0);
    let met = c
        .map(0..8u32, |x| {
            if x % 4 != 0 {
                return true;
            }
            started.fetch_add(1, Ordering::SeqCst);
            let t = std::time::Instant::now();
            while started.load(Ordering::SeqCst) < 2
                && t.elapsed() < std::time::Duration::from_secs(5)
            {
                std::thread::yield_now();
            }
            started.load(Ordering::SeqCst) == 2
        })
        .unwrap();
    assert!(
        met.iter().all(|&m| m),
        "chunks ran one after the other: {met:?}"
    );
}
