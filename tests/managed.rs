//! The cluster's managed bytes: the task outputs of known size the scheduler holds count while
//! held, and the count returns exactly to zero once computes finish and the values are dropped,
//! whether the tasks succeeded or failed.

use onebox::array::Array;
use onebox::prelude::*;

/// A cluster of its own per test: the counter is the cluster's, so tests cannot disturb it.
fn cluster() -> Cluster {
    Cluster::builder().threads(2).ignore_env().build().unwrap()
}

#[test]
fn persisted_array_blocks_count_until_dropped() {
    let cluster = cluster();
    let x = Array::<f64>::ones(&cluster, [100, 50], [30, 20]).unwrap();
    assert_eq!(cluster.managed_bytes(), 0);

    // A plain compute holds blocks only while they wait for their consumer.
    let whole = x.compute().unwrap();
    assert_eq!(whole.len(), 5000);
    assert_eq!(cluster.managed_bytes(), 0);

    // Persisted blocks are held by the scheduler as long as the array lives.
    let p = x.persist().unwrap();
    assert_eq!(cluster.managed_bytes(), 5000 * 8);
    let sums = p.sum_axis(&[0]).unwrap().compute().unwrap();
    assert!(sums.iter().all(|&s| s == 100.0));
    // Reading the blocks cloned them: the persisted array still holds them.
    assert_eq!(cluster.managed_bytes(), 5000 * 8);
    let q = Array::<i32>::ones(&cluster, [7], [3])
        .unwrap()
        .persist()
        .unwrap();
    assert_eq!(cluster.managed_bytes(), 5000 * 8 + 7 * 4);
    drop(p);
    assert_eq!(cluster.managed_bytes(), 7 * 4);
    drop(q);
    assert_eq!(cluster.managed_bytes(), 0);
    drop(x);
    assert_eq!(cluster.managed_bytes(), 0);
}

#[test]
fn bag_partitions_count_while_their_handles_live() {
    let cluster = cluster();
    let items: Vec<u64> = (0..1000).collect();
    let bag = Bag::from_vec(&cluster, items.clone(), 4).unwrap();
    assert_eq!(bag.sum().compute().unwrap(), items.iter().sum::<u64>());
    assert_eq!(cluster.managed_bytes(), 0);

    let handles: Vec<TaskHandle<Vec<u64>>> =
        bag.to_delayed().into_iter().map(Delayed::submit).collect();
    wait(&handles).unwrap();
    assert_eq!(cluster.managed_bytes(), 1000 * 8);
    // A handle's result is moved out: its bytes leave the count with it.
    let mut it = handles.into_iter();
    let first = it.next().unwrap().result().unwrap();
    assert_eq!(cluster.managed_bytes(), (1000 - first.len() as u64) * 8);
    let rest: Vec<TaskHandle<Vec<u64>>> = it.collect();
    let got: Vec<u64> = gather(rest)
        .unwrap()
        .into_iter()
        .flatten()
        .chain(first)
        .collect();
    assert_eq!(got.len(), 1000);
    assert_eq!(cluster.managed_bytes(), 0);

    // A bag built from sized partitions (strings count shallowly: size_of::<String>() each).
    let words: Vec<String> = ["a", "bb", "ccc", "ünïcode"].map(String::from).to_vec();
    let parts = Bag::from_vec(&cluster, words.clone(), 2)
        .unwrap()
        .to_delayed();
    let again = Bag::from_delayed(&cluster, parts.clone());
    let held: Vec<TaskHandle<Vec<String>>> = parts.into_iter().map(Delayed::submit).collect();
    wait(&held).unwrap();
    let each = std::mem::size_of::<String>() as u64;
    assert_eq!(cluster.managed_bytes(), 4 * each);
    assert_eq!(again.count().compute().unwrap(), 4);
    assert_eq!(cluster.managed_bytes(), 4 * each);
    drop(held);
    drop(again);
    assert_eq!(cluster.managed_bytes(), 0);
}

#[test]
fn failures_leave_nothing_counted() {
    let cluster = cluster();
    // One partition's task panics; the others finish and are held by their handles.
    let bag = Bag::from_vec(&cluster, (0..100u64).collect(), 4)
        .unwrap()
        .map(|x| if x == 60 { panic!("bad item {x}") } else { x });
    let handles: Vec<TaskHandle<Vec<u64>>> =
        bag.to_delayed().into_iter().map(Delayed::submit).collect();
    assert!(wait(&handles).is_err());
    for h in &handles {
        let _ = h.wait();
    }
    let failed = handles.iter().filter(|h| h.wait().is_err()).count();
    assert_eq!(failed, 1);
    assert_eq!(cluster.managed_bytes(), 75 * 8);
    drop(handles);
    assert_eq!(cluster.managed_bytes(), 0);

    // A consumer fails after its sized inputs were stored: they are released all the same.
    let x = Array::<f64>::ones(&cluster, [40], [10]).unwrap();
    let parts = Bag::from_vec(&cluster, (0..10u64).collect(), 2)
        .unwrap()
        .to_delayed();
    let failing = Delayed::join_all(&cluster, parts).try_map(|v| {
        if v.len() == 2 {
            Err("the consumer failed")
        } else {
            Ok(0)
        }
    });
    assert!(failing.compute().is_err());
    assert!(
        x.map_blocks(|b| {
            if b.len() == 10 {
                panic!("block failed")
            }
            b.to_owned()
        })
        .compute()
        .is_err()
    );
    assert_eq!(cluster.managed_bytes(), 0);
}

#[cfg(feature = "frame")]
#[test]
fn frame_partitions_count_polars_estimate() {
    use onebox::frame::Frame;
    use polars::prelude::*;
    let cluster = cluster();
    let df = df!("k" => ["α", "β", "日本", "x"], "v" => [1.0f64, f64::NAN, 3.0, 4.0]).unwrap();
    let frame = Frame::from_dataframe(&cluster, df.clone(), 2).unwrap();
    assert_eq!(frame.clone().compute().unwrap().height(), 4);
    assert_eq!(cluster.managed_bytes(), 0);
    let handles: Vec<TaskHandle<DataFrame>> = frame
        .to_delayed()
        .into_iter()
        .map(Delayed::submit)
        .collect();
    wait(&handles).unwrap();
    let parts: Vec<DataFrame> = handles
        .iter()
        .map(|h| h.clone().result().unwrap())
        .collect();
    let want: usize = parts.iter().map(DataFrame::estimated_size).sum();
    assert!(want > 0);
    assert_eq!(cluster.managed_bytes(), want as u64);
    drop(handles);
    assert_eq!(cluster.managed_bytes(), 0);
}
