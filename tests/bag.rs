//! Bags: every operation against the same computation on a plain `Vec`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use onebox::diagnostics::Event;
use onebox::prelude::*;
use onebox::{TextOptions, bag::TextSource};
use proptest::prelude::*;

fn cluster() -> Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| Cluster::builder().threads(2).build().unwrap())
        .clone()
}

fn bag_of(v: &[i64], parts: usize, every: usize) -> Bag<i64> {
    Bag::from_vec(&cluster(), v.to_vec(), parts)
        .unwrap()
        .split_every(every)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn seq_lines(texts: &[String]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn numbers_match_sequential(
        v in prop::collection::vec(-1000i64..1000, 0..120),
        parts in 1usize..14,
        every in 2usize..5,
    ) {
        let b = bag_of(&v, parts, every);
        prop_assert_eq!(b.npartitions(), parts);
        prop_assert_eq!(b.compute().unwrap(), v.clone());
        prop_assert_eq!(b.count().compute().unwrap(), v.len() as u64);
        prop_assert_eq!(b.sum().compute().unwrap(), v.iter().sum::<i64>());
        prop_assert_eq!(b.min().compute().unwrap(), v.iter().copied().min());
        prop_assert_eq!(b.max().compute().unwrap(), v.iter().copied().max());
        // An associative, non-commutative op: partials must be merged in order.
        prop_assert_eq!(
            b.clone().map(|x| vec![x]).reduce(|mut a, b| { a.extend(b); a }).compute().unwrap(),
            (!v.is_empty()).then(|| v.clone())
        );
        prop_assert_eq!(b.reduce(|a, b| a + b).compute().unwrap(), v.iter().copied().reduce(|a, b| a + b));
        prop_assert_eq!(
            b.fold(Vec::new(), |mut acc, x| { acc.push(x); acc }, |mut a, b| { a.extend(b); a })
                .compute().unwrap(),
            v.clone()
        );
        prop_assert_eq!(b.any(|x| *x > 900).compute().unwrap(), v.iter().any(|x| *x > 900));
        prop_assert_eq!(b.all(|x| *x > -900).compute().unwrap(), v.iter().all(|x| *x > -900));

        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let m2 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>();
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            (None, None) => true,
            _ => false,
        };
        prop_assert!(close(b.mean().compute().unwrap(), (!v.is_empty()).then_some(mean)));
        prop_assert!(close(b.var(0).compute().unwrap(), (!v.is_empty()).then(|| m2 / n)));
        prop_assert!(close(b.var(1).compute().unwrap(), (v.len() > 1).then(|| m2 / (n - 1.0))));
        prop_assert!(close(b.std(1).compute().unwrap(), (v.len() > 1).then(|| (m2 / (n - 1.0)).sqrt())));
    }

    #[test]
    fn fused_chains_match_sequential(
        v in prop::collection::vec(-50i64..50, 0..100),
        parts in 1usize..12,
    ) {
        let b = bag_of(&v, parts, 3)
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| vec![x, -x])
            .remove(|x| *x == 0)
            .map_partitions(|p| p.into_iter().rev().collect())
            .try_map(|x| if x > 10_000 { Err("too big") } else { Ok(x + 1) });
        // map_partitions reverses each partition: compare partition by partition.
        let ranges: Vec<_> = (0..parts).map(|i| (i * v.len() / parts)..((i + 1) * v.len() / parts)).collect();
        let expected: Vec<i64> = ranges.into_iter().flat_map(|r| {
            let mut p: Vec<i64> = v[r].iter().map(|x| x * 3).filter(|x| x % 2 == 0)
                .flat_map(|x| vec![x, -x]).filter(|x| *x != 0).collect();
            p.reverse();
            p.into_iter().map(|x| x + 1).collect::<Vec<_>>()
        }).collect();
        prop_assert_eq!(b.compute().unwrap(), expected.clone());
        prop_assert_eq!(b.iter().collect::<Result<Vec<_>>>().unwrap(), expected);
    }

    #[test]
    fn grouping_matches_sequential(
        v in prop::collection::vec(-30i64..30, 0..120),
        parts in 1usize..12,
        k in 0usize..8,
        n in 0usize..130,
    ) {
        let b = bag_of(&v, parts, 2);
        let mut freq: BTreeMap<i64, u64> = BTreeMap::new();
        for &x in &v { *freq.entry(x).or_default() += 1; }
        prop_assert_eq!(sorted(b.frequencies().compute().unwrap()), freq.clone().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(sorted(b.distinct().compute().unwrap()), freq.keys().copied().collect::<Vec<_>>());

        let mut by_key: BTreeMap<i64, i64> = BTreeMap::new();
        for &x in &v { *by_key.entry(x.rem_euclid(7)).or_default() += x; }
        prop_assert_eq!(
            sorted(b.foldby(|x| x.rem_euclid(7), 0i64, |a, x| a + x, |a, b| a + b).compute().unwrap()),
            by_key.into_iter().collect::<Vec<_>>()
        );

        let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for &x in &v { groups.entry(x.rem_euclid(5)).or_default().push(x); }
        let g = b.groupby(|x| x.rem_euclid(5)).unwrap();
        prop_assert_eq!(sorted(g.compute().unwrap()), groups.clone().into_iter().collect::<Vec<_>>());
        let g3 = b.groupby_into(|x| x.rem_euclid(5), 3).unwrap();
        prop_assert_eq!(g3.npartitions(), 3);
        prop_assert_eq!(sorted(g3.compute().unwrap()), groups.into_iter().collect::<Vec<_>>());

        // top_k equals a stable sort by descending key, cut at k (ties: earlier first).
        let keyed: Vec<(i64, usize)> = v.iter().copied().zip(0..).collect();
        let kb = Bag::from_vec(&cluster(), keyed.clone(), parts).unwrap();
        let mut expect = keyed.clone();
        expect.sort_by_key(|b| std::cmp::Reverse(b.0.abs()));
        expect.truncate(k);
        prop_assert_eq!(kb.top_k(k, |(x, _)| x.abs()).compute().unwrap(), expect);

        prop_assert_eq!(b.take(n).unwrap(), v[..n.min(v.len())].to_vec());
    }

    #[test]
    fn sampling_is_an_ordered_deterministic_subset(
        v in prop::collection::vec(any::<i32>(), 0..200),
        parts in 1usize..10,
        p in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let b = Bag::from_vec(&cluster(), (0..v.len()).collect::<Vec<_>>(), parts).unwrap();
        let s1 = b.clone().random_sample(p, seed).unwrap().compute().unwrap();
        let s2 = b.clone().random_sample(p, seed).unwrap().compute().unwrap();
        prop_assert_eq!(&s1, &s2);
        prop_assert!(s1.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(s1.iter().all(|&i| i < v.len()));
    }

    #[test]
    fn text_blocks_match_lines(
        texts in prop::collection::vec("([a-zé日本 \\t]{0,12}(\n|\r\n)?){0,12}", 1..4),
        block in 1u64..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = texts.iter().enumerate()
            .map(|(i, t)| write(dir.path(), &format!("f{i}.txt"), t.as_bytes()))
            .collect();
        let b = Bag::read_text_with(&cluster(), paths.clone(), TextOptions::new().block_size(block)).unwrap();
        let lines = seq_lines(&texts);
        prop_assert_eq!(b.compute().unwrap(), lines.clone());
        prop_assert_eq!(b.count().compute().unwrap(), lines.len() as u64);
        prop_assert_eq!(b.take(3).unwrap(), lines.iter().take(3).cloned().collect::<Vec<_>>());
        let words: Vec<String> = lines.iter().flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>()).collect();
        prop_assert_eq!(b.clone().words().compute().unwrap(), words.clone());
        let mut freq: BTreeMap<String, u64> = BTreeMap::new();
        for w in &words { *freq.entry(w.clone()).or_default() += 1; }
        prop_assert_eq!(sorted(b.clone().words().frequencies().compute().unwrap()), freq.clone().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(sorted(b.clone().words().distinct().compute().unwrap()), freq.keys().cloned().collect::<Vec<_>>());
        prop_assert_eq!(
            b.clone().filter_str(|l| l.contains('é')).compute().unwrap(),
            lines.iter().filter(|l| l.contains('é')).cloned().collect::<Vec<_>>()
        );
        // Grouping words by their first character (a shuffle of a text bag).
        let mut groups: BTreeMap<char, Vec<String>> = BTreeMap::new();
        for w in &words { groups.entry(w.chars().next().unwrap()).or_default().push(w.clone()); }
        let g = b.clone().words().groupby(|w| w.chars().next().unwrap_or(' ')).unwrap();
        prop_assert_eq!(sorted(g.compute().unwrap()), groups.into_iter().collect::<Vec<_>>());
        // The same through the owned path (a map loses the borrowed view).
        prop_assert_eq!(
            sorted(b.map(|l| l).words().frequencies().compute().unwrap()),
            freq.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn words_of_files_match_sequential(
        texts in prop::collection::vec(
            "([a-c]{1,3}|[a-z]{15,20}|é日|[ \t\r\n\u{0B}\u{0C}\u{85}\u{a0}\u{2000}\u{2028}\u{3000}]){0,30}",
            1..4,
        ),
        block in 1u64..60,
        top in 0usize..6,
    ) {
        // Blocks are split into words whole (not line by line): the same words, in order.
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = texts.iter().enumerate()
            .map(|(i, t)| write(dir.path(), &format!("f{i}.txt"), t.as_bytes()))
            .collect();
        let b = Bag::read_text_with(&cluster(), paths, TextOptions::new().block_size(block)).unwrap();
        let words: Vec<String> = seq_lines(&texts).iter()
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        prop_assert_eq!(b.clone().words().compute().unwrap(), words.clone());
        prop_assert_eq!(b.clone().words().count().compute().unwrap(), words.len() as u64);
        prop_assert_eq!(b.clone().words().take(top).unwrap(), words.iter().take(top).cloned().collect::<Vec<_>>());
        let mut freq: BTreeMap<String, u64> = BTreeMap::new();
        for w in &words { *freq.entry(w.clone()).or_default() += 1; }
        let mut by_count: Vec<(String, u64)> = freq.clone().into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        prop_assert_eq!(b.clone().words().frequencies_sorted().compute().unwrap(), by_count.clone());
        prop_assert_eq!(sorted(b.clone().words().frequencies().compute().unwrap()), freq.clone().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(sorted(b.clone().words().distinct().compute().unwrap()), freq.keys().cloned().collect::<Vec<_>>());
        // The lines themselves (empty ones included) count the same way.
        let mut line_freq: BTreeMap<String, u64> = BTreeMap::new();
        for l in seq_lines(&texts) { *line_freq.entry(l).or_default() += 1; }
        prop_assert_eq!(sorted(b.frequencies().compute().unwrap()), line_freq.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn sorted_frequencies_order_by_count_then_item(
        v in prop::collection::vec(0i64..12, 0..150),
        parts in 1usize..9,
        every in 2usize..5,
    ) {
        let mut freq: BTreeMap<i64, u64> = BTreeMap::new();
        for &x in &v { *freq.entry(x).or_default() += 1; }
        let mut expected: Vec<(i64, u64)> = freq.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        prop_assert_eq!(bag_of(&v, parts, every).frequencies_sorted().compute().unwrap(), expected);
    }

    #[test]
    fn string_bags_match_sequential(
        v in prop::collection::vec("\\PC{0,10}", 0..40),
        parts in 1usize..8,
    ) {
        let b = Bag::from_vec(&cluster(), v.clone(), parts).unwrap();
        let words: Vec<String> = v.iter().flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>()).collect();
        prop_assert_eq!(b.clone().words().compute().unwrap(), words.clone());
        prop_assert_eq!(b.clone().words().count().compute().unwrap(), words.len() as u64);
        let mut freq: HashMap<String, u64> = HashMap::new();
        for w in &words { *freq.entry(w.clone()).or_default() += 1; }
        prop_assert_eq!(sorted(b.words().frequencies().compute().unwrap()), sorted(freq.into_iter().collect()));
    }
}

#[test]
fn creation_helpers() {
    let c = cluster();
    assert_eq!(
        Bag::range(&c, 10, 3).unwrap().compute().unwrap(),
        (0..10).collect::<Vec<u64>>()
    );
    assert_eq!(Bag::range(&c, 0, 4).unwrap().count().compute().unwrap(), 0);
    let sized = Bag::from_vec_sized(&c, (0..10).collect::<Vec<i32>>(), 4).unwrap();
    assert_eq!(sized.npartitions(), 3);
    assert_eq!(sized.compute().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(
        Bag::from_vec_sized(&c, Vec::<i32>::new(), 4)
            .unwrap()
            .npartitions(),
        1
    );
    let it = Bag::from_iter(&c, (0..5).map(|x| x * 2), 2).unwrap();
    assert_eq!(it.compute().unwrap(), vec![0, 2, 4, 6, 8]);
    let both = Bag::concat(vec![
        Bag::from_vec(&c, vec![1, 2], 1).unwrap(),
        Bag::from_vec(&c, vec![3], 2).unwrap(),
    ])
    .unwrap();
    assert_eq!(both.npartitions(), 3);
    assert_eq!(both.compute().unwrap(), vec![1, 2, 3]);
    assert!(Bag::<i32>::concat(Vec::new()).is_err());
    let d = Bag::from_delayed(
        &c,
        vec![
            c.delayed(|| vec![1, 2]),
            c.delayed(Vec::new),
            c.value(vec![3]),
        ],
    );
    assert_eq!(d.sum().compute().unwrap(), 6);
    assert_eq!(d.compute().unwrap(), vec![1, 2, 3]);
    let none = Bag::<i64>::from_delayed(&c, Vec::new());
    assert_eq!(none.npartitions(), 0);
    assert_eq!(none.compute().unwrap(), Vec::<i64>::new());
    assert_eq!(none.sum().compute().unwrap(), 0);
    assert_eq!(none.max().compute().unwrap(), None);
    assert_eq!(none.groupby(|x| *x).unwrap().compute().unwrap(), Vec::new());
    assert_eq!(none.take(3).unwrap(), Vec::<i64>::new());
    assert!(matches!(
        Bag::from_vec(&c, vec![1], 0),
        Err(Error::Config { .. })
    ));
    let pairs = Bag::from_vec(&c, vec![(1, 'a'), (2, 'b')], 2).unwrap();
    assert_eq!(pairs.clone().keys().compute().unwrap(), vec![1, 2]);
    assert_eq!(pairs.values().compute().unwrap(), vec!['a', 'b']);
    assert!(
        Bag::from_vec(&c, vec![1.0], 1)
            .unwrap()
            .random_sample(1.5, 0)
            .is_err()
    );
}

#[test]
fn float_min_max_by_total_order() {
    let v = vec![2.5, -1.0, 7.25, 0.0];
    let b = Bag::from_vec(&cluster(), v, 3).unwrap();
    assert_eq!(b.min_by(f64::total_cmp).compute().unwrap(), Some(-1.0));
    assert_eq!(b.max_by(f64::total_cmp).compute().unwrap(), Some(7.25));
    assert_eq!(b.mean().compute().unwrap(), Some(2.1875));
}

#[test]
fn a_chain_of_ten_maps_is_one_task_per_partition() {
    let c = Cluster::builder().threads(2).build().unwrap();
    let events = c.events();
    let mut b = Bag::range(&c, 1000, 5).unwrap();
    for _ in 0..10 {
        b = b.map(|x| x + 1);
    }
    assert_eq!(b.sum().compute().unwrap(), (10..1010).sum::<u64>());
    let labels: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Task(t) => Some(t.key.group().to_string()),
            _ => None,
        })
        .collect();
    let partition_tasks = labels.iter().filter(|l| l.starts_with("bag-sum[")).count();
    assert_eq!(partition_tasks, 5, "{labels:?}");
    // 5 partials with fan-in 8: one combine task; nothing else ran.
    assert_eq!(labels.len(), 6, "{labels:?}");
}

#[test]
fn reduction_tree_fan_in() {
    let c = Cluster::builder().threads(2).build().unwrap();
    let events = c.events();
    let b = Bag::range(&c, 100, 9).unwrap().split_every(3);
    assert_eq!(b.count().compute().unwrap(), 100);
    let combines = events
        .try_iter()
        .filter(|e| matches!(e, Event::Task(t) if t.key.group() == "bag-count-combine"))
        .count();
    assert_eq!(combines, 4); // 9 -> 3 -> 1
}

#[test]
fn a_panicking_closure_names_the_partition() {
    let b = Bag::range(&cluster(), 100, 4)
        .unwrap()
        .map(|x| if x == 60 { panic!("bad item {x}") } else { x });
    let err = b.count().compute().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bag-count[2]"), "{text}");
    assert!(text.contains("bad item 60"), "{text}");
    assert!(err.as_task().unwrap().root_cause().is_panic());
    let err = b.compute().unwrap_err().to_string();
    assert!(err.contains("[2]") && err.contains("bad item 60"), "{err}");
    let mut it = b.iter();
    let first: Vec<_> = it.by_ref().take(50).collect();
    assert!(first.iter().all(|r| r.is_ok()));
    let rest: Vec<_> = it.collect();
    assert!(rest.iter().any(|r| r.is_err()));
    assert!(rest.last().unwrap().is_err());
    // try_map errors too.
    let err = Bag::range(&cluster(), 10, 2)
        .unwrap()
        .try_map(|x| {
            if x == 7 {
                Err(format!("no {x}"))
            } else {
                Ok(x)
            }
        })
        .sum()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(err.contains("bag-sum[1]") && err.contains("no 7"), "{err}");
}

#[test]
fn read_text_sources_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", b"one two\nthree\n");
    write(dir.path(), "b.txt", b"four\r\nfive six");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all("seven ünïcödé\neight\n".as_bytes()).unwrap();
    write(dir.path(), "c.txt.gz", &gz.finish().unwrap());
    let c = cluster();
    let all = vec![
        "one two",
        "three",
        "four",
        "five six",
        "seven ünïcödé",
        "eight",
    ];
    let from_dir = Bag::read_text(&c, dir.path()).unwrap();
    assert_eq!(from_dir.compute().unwrap(), all);
    let pattern = format!("{}/*.txt*", dir.path().display());
    assert_eq!(
        Bag::read_text(&c, pattern.as_str())
            .unwrap()
            .compute()
            .unwrap(),
        all
    );
    let list = vec![dir.path().join("b.txt"), dir.path().join("a.txt")];
    assert_eq!(
        Bag::read_text(&c, list).unwrap().compute().unwrap(),
        vec!["four", "five six", "one two", "three"]
    );
    let _ = TextSource::from(vec!["x"]);

    let empty = write(dir.path(), "empty", b"");
    let e = Bag::read_text(&c, &empty).unwrap();
    assert_eq!((e.npartitions(), e.count().compute().unwrap()), (1, 0));
    let no_files = tempfile::tempdir().unwrap();
    let err = Bag::read_text(&c, no_files.path()).unwrap_err().to_string();
    assert!(err.contains("no files"), "{err}");

    let missing = dir.path().join("nope.txt");
    let err = Bag::read_text(&c, &missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.txt"));
    let glob = format!("{}/*.csv", dir.path().display());
    let err = Bag::read_text(&c, glob.as_str()).unwrap_err().to_string();
    assert!(err.contains("*.csv"), "{err}");
    assert!(Bag::read_text_with(&c, dir.path(), TextOptions::new().block_size(0)).is_err());
}

#[test]
fn invalid_utf8_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"good line\nsecond line\nbad \xff here\nafter\n".to_vec();
    let p = write(dir.path(), "bad.txt", &bytes);
    let offset = bytes.iter().position(|&b| b == 0xff).unwrap();
    for block in [4, 7, 1000] {
        let b = Bag::read_text_with(&cluster(), &p, TextOptions::new().block_size(block)).unwrap();
        let err = b.count().compute().unwrap_err().to_string();
        assert!(err.contains("bad.txt"), "{err}");
        assert!(err.contains(&format!("byte {offset}")), "{err}");
        let lossy = Bag::read_text_with(
            &cluster(),
            &p,
            TextOptions::new().block_size(block).lossy(true),
        )
        .unwrap()
        .compute()
        .unwrap();
        assert_eq!(
            lossy,
            vec!["good line", "second line", "bad \u{fffd} here", "after"]
        );
    }
    // The same inside a gzip file: the offset is into the decompressed text.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    let g = write(dir.path(), "bad.txt.gz", &gz.finish().unwrap());
    let err = Bag::read_text(&cluster(), &g)
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.txt.gz") && err.contains(&format!("byte {offset}")),
        "{err}"
    );
    bytes.clear();
}

#[test]
fn to_textfiles_round_trips_and_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster();
    let b = Bag::range(&c, 25, 12).unwrap();
    let pattern = format!("{}/out/part-*.txt", dir.path().display());
    let paths = b.to_textfiles(&pattern).unwrap();
    assert_eq!(paths.len(), 12);
    assert!(paths[0].ends_with("out/part-00.txt") && paths[11].ends_with("out/part-11.txt"));
    let back = Bag::read_text(&c, format!("{}/out/*.txt", dir.path().display()))
        .unwrap()
        .map(|l| l.parse::<u64>().unwrap())
        .compute()
        .unwrap();
    assert_eq!(back, (0..25).collect::<Vec<_>>());

    // Gzip output, lines of a text bag written from borrowed &str.
    let lines = Bag::from_vec(&c, vec!["α β".to_string(), "γ".into(), "".into()], 2)
        .unwrap()
        .words();
    let gz = lines
        .to_textfiles(&format!("{}/gz/*.txt.gz", dir.path().display()))
        .unwrap();
    assert_eq!(gz.len(), 2);
    assert_eq!(
        Bag::read_text(&c, format!("{}/gz", dir.path().display()))
            .unwrap()
            .compute()
            .unwrap(),
        vec!["α", "β", "γ"]
    );

    // A directory pattern.
    let d = b
        .to_textfiles(&format!("{}/dir", dir.path().display()))
        .unwrap();
    assert!(d[3].ends_with("dir/03.part"));

    // A failing partition leaves no half-written file and no temporary file.
    let bad = Bag::range(&c, 40, 4)
        .unwrap()
        .map(|x| if x == 25 { panic!("disk full, say") } else { x });
    let err = bad
        .to_textfiles(&format!("{}/bad/*.txt", dir.path().display()))
        .unwrap_err();
    assert!(err.to_string().contains("bag-to-textfiles[2]"), "{err}");
    let names: BTreeSet<String> = std::fs::read_dir(dir.path().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains("2.txt"), "{names:?}");
    assert!(
        names.iter().all(|n| !n.starts_with(".onebox-tmp")),
        "{names:?}"
    );
    for n in &names {
        let got = std::fs::read_to_string(dir.path().join("bad").join(n)).unwrap();
        let i: u64 = n.trim_end_matches(".txt").parse().unwrap();
        let want: String = (i * 10..i * 10 + 10).map(|x| format!("{x}\n")).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn json_lines_and_pluck() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "events.jsonl",
        b"{\"user\": \"ann\", \"n\": 3}\n{\"user\": \"bob\", \"n\": 4}\n{\"user\": \"ann\"}\n",
    );
    let c = cluster();
    let users = Bag::read_text(&c, &p)
        .unwrap()
        .parse_json::<serde_json::Value>()
        .pluck("user")
        .map(|v| v.as_str().unwrap_or("").to_string())
        .frequencies()
        .compute()
        .unwrap();
    assert_eq!(
        sorted(users),
        vec![("ann".to_string(), 2), ("bob".to_string(), 1)]
    );
    let n = Bag::read_text(&c, &p)
        .unwrap()
        .parse_json::<serde_json::Value>()
        .pluck("n")
        .map(|v| v.as_i64().unwrap_or(0))
        .sum()
        .compute()
        .unwrap();
    assert_eq!(n, 7);
    let bad = write(dir.path(), "bad.jsonl", b"{\"a\": 1}\n{oops\n");
    let err = Bag::read_text(&c, &bad)
        .unwrap()
        .parse_json::<serde_json::Value>()
        .count()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid JSON") && err.contains("{oops"),
        "{err}"
    );
}

#[test]
fn take_runs_only_the_partitions_it_needs() {
    let c = Cluster::builder().threads(2).build().unwrap();
    let events = c.events();
    let b = Bag::range(&c, 1000, 10).unwrap();
    assert_eq!(b.take(5).unwrap(), vec![0, 1, 2, 3, 4]);
    let takes = events
        .try_iter()
        .filter(|e| matches!(e, Event::Task(t) if t.key.group().starts_with("bag-take[")))
        .count();
    assert_eq!(takes, 1);
    assert_eq!(b.take(5000).unwrap().len(), 1000);
}
