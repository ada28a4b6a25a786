//! Data-parallel training: gradients against finite differences, the trainer against a plain
//! sequential loop, replica-count independence, checkpoints, errors, and the examples'
//! accuracy on the real digits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use onebox::prelude::*;
use onebox::train::models::{Classifier, Mlp, SoftmaxRegression};
use onebox::train::{
    Batch, Dataset, Optimizer, Replicas, Rng, Schedule, Table, Trainer, train_test_split,
};
use proptest::prelude::*;

#[path = "../examples/train_logreg.rs"]
#[allow(dead_code)]
mod train_logreg;
#[path = "../examples/train_mlp.rs"]
#[allow(dead_code)]
mod train_mlp;

fn cluster(threads: usize) -> Cluster {
    Cluster::builder()
        .threads(threads)
        .ignore_env()
        .build()
        .unwrap()
}

/// A random classification table: `n` samples, `d` features in [-1, 1), `c` classes.
fn random_table(n: usize, d: usize, c: usize, seed: u64) -> Table<f64, usize> {
    let mut rng = Rng::new(seed);
    let x = (0..n * d).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let y = (0..n).map(|_| rng.below(c as u64) as usize).collect();
    Table::new(x, d, y).unwrap()
}

fn random_params(n: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.uniform() * 2.0 - 1.0) * scale)
        .collect()
}

/// Checks `model`'s gradient on `data` against central differences of its loss.
fn check_gradient(model: &dyn Classifier<f64>, params: &[f64], data: &Table<f64, usize>) {
    let batch = data.as_batch();
    let mut grad = vec![0.0; params.len()];
    let loss = model.loss_grad(params, &batch, &mut grad).unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    let loss_at = |p: &[f64]| {
        let mut scratch = vec![0.0; p.len()];
        model.loss_grad(p, &batch, &mut scratch).unwrap()
    };
    let h = 1e-6;
    for i in 0..params.len() {
        let (mut up, mut down) = (params.to_vec(), params.to_vec());
        up[i] += h;
        down[i] -= h;
        let numeric = (loss_at(&up) - loss_at(&down)) / (2.0 * h);
        let tolerance = 1e-6 * (1.0 + numeric.abs());
        assert!(
            (grad[i] - numeric).abs() < tolerance,
            "parameter {i}: analytic {} vs numeric {numeric}",
            grad[i]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn softmax_regression_gradient_matches_finite_differences(
        n in 1usize..12, d in 1usize..6, c in 2usize..5, seed in any::<u64>()
    ) {
        let model = SoftmaxRegression::new(d, c);
        let params = random_params(Classifier::<f64>::n_params(&model), 1.0, seed);
        check_gradient(&model, &params, &random_table(n, d, c, seed ^ 1));
    }

    #[test]
    fn mlp_gradient_matches_finite_differences(
        n in 1usize..10, d in 1usize..6, h in 1usize..8, c in 2usize..5, seed in any::<u64>()
    ) {
        let model = Mlp::new(d, h, c);
        let params = random_params(Classifier::<f64>::n_params(&model), 1.0, seed);
        check_gradient(&model, &params, &random_table(n, d, c, seed ^ 1));
    }

    #[test]
    fn any_replica_count_gives_the_bits_of_one_replica(
        n in 1usize..60, batch in 1usize..20, micro in 1usize..8, r in 2usize..9,
        drop_last in any::<bool>(), seed in any::<u64>()
    ) {
        prop_assume!(!drop_last || n >= batch);
        let data = Arc::new(random_table(n, 3, 2, seed));
        let model = Mlp::new(3, 4, 2);
        let c = cluster(2);
        let run = |replicas: usize| {
            let mut t = Trainer::builder(&c, model.init::<f64>(seed))
                .optimizer(Optimizer::adam())
                .lr(0.01)
                .batch_size(batch)
                .micro_batch(micro)
                .drop_last(drop_last)
                .seed(seed)
                .replicas(Replicas::Cpu(replicas))
                .build()
                .unwrap();
            let grad = move |p: &[f64], b: &Batch<'_, f64, usize>, g: &mut [f64]| {
                model.loss_grad(p, b, g)
            };
            let stats = t.fit(&data, grad, 2, |_| {}).unwrap();
            let bits: Vec<u64> = t.params().iter().map(|x| x.to_bits()).collect();
            (bits, stats[1].loss.to_bits())
        };
        prop_assert_eq!(run(1), run(r));
    }

    #[test]
    fn split_is_a_partition(n in 0usize..500, fraction in 0.0f64..=1.0, seed in any::<u64>()) {
        let (train, test) = train_test_split(n, fraction, seed).unwrap();
        prop_assert_eq!(test.len(), ((n as f64) * fraction).round() as usize);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(train_test_split(n, fraction, seed).unwrap(), (train, test));
    }
}

#[test]
fn gradients_add_to_what_is_there() {
    // The gradient function adds into `out`: two halves equal the whole batch.
    let data = random_table(8, 3, 3, 5);
    let model = Mlp::new(3, 4, 3);
    let params = random_params(Classifier::<f64>::n_params(&model), 0.5, 6);
    let mut whole = vec![0.0; params.len()];
    let loss = model
        .loss_grad(&params, &data.as_batch(), &mut whole)
        .unwrap();
    let (a, b) = (
        data.subset(&[0, 1, 2, 3]).unwrap(),
        data.subset(&[4, 5, 6, 7]).unwrap(),
    );
    let mut halves = vec![0.0; params.len()];
    let la = model
        .loss_grad(&params, &a.as_batch(), &mut halves)
        .unwrap();
    let lb = model
        .loss_grad(&params, &b.as_batch(), &mut halves)
        .unwrap();
    assert!((loss - la - lb).abs() < 1e-12);
    for (x, y) in whole.iter().zip(&halves) {
        assert!((x - y).abs() < 1e-12);
    }
}

#[test]
fn models_refuse_mismatched_inputs() {
    let model = SoftmaxRegression::new(3, 2);
    let data = random_table(4, 3, 2, 1);
    let mut g = vec![0.0; 8];
    assert!(
        model
            .loss_grad(&[0.0; 7], &data.as_batch(), &mut g)
            .is_err()
    );
    assert!(
        model
            .loss_grad(&[0.0; 8], &data.as_batch(), &mut g[..7])
            .is_err()
    );
    let wide = random_table(4, 4, 2, 1);
    assert!(
        model
            .loss_grad(&[0.0; 8], &wide.as_batch(), &mut g)
            .is_err()
    );
    let bad_label = Table::new(vec![0.0; 3], 3, vec![2usize]).unwrap();
    let e = model
        .loss_grad(&[0.0; 8], &bad_label.as_batch(), &mut g)
        .unwrap_err();
    assert!(e.to_string().contains("label 2"), "{e}");
    assert!(model.predict(&[0.0; 8], &[0.0; 5]).is_err());
}

/// The tree sum the trainer documents, written out plainly: node (level, k) over micro-shards.
fn tree_sum(leaves: &[(Vec<f64>, f64)], level: u32, k: usize) -> (Vec<f64>, f64) {
    if level == 0 {
        return leaves[k].clone();
    }
    let (mut g, mut l) = tree_sum(leaves, level - 1, 2 * k);
    if ((2 * k + 1) << (level - 1)) < leaves.len() {
        let (g2, l2) = tree_sum(leaves, level - 1, 2 * k + 1);
        for (a, b) in g.iter_mut().zip(&g2) {
            *a += b;
        }
        l += l2;
    }
    (g, l)
}

/// Plain sequential SGD with momentum: the same shuffles, micro-shards and tree, no tasks.
fn sequential_sgd(
    model: &Mlp,
    data: &Table<f64, usize>,
    params: &mut [f64],
    epochs: u64,
    (lr, momentum, batch, micro, seed): (f64, f64, usize, usize, u64),
) {
    let n = data.len();
    let mut velocity = vec![0.0; params.len()];
    for epoch in 0..epochs {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::stream(seed, epoch).shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let leaves: Vec<(Vec<f64>, f64)> = chunk
                .chunks(micro)
                .map(|idx| {
                    let part = data.subset(idx).unwrap();
                    let mut g = vec![0.0; params.len()];
                    let l = model.loss_grad(params, &part.as_batch(), &mut g).unwrap();
                    (g, l)
                })
                .collect();
            let levels = leaves.len().next_power_of_two().trailing_zeros();
            let (sum, _) = tree_sum(&leaves, levels, 0);
            for i in 0..params.len() {
                let g = sum[i] / chunk.len() as f64;
                velocity[i] = momentum * velocity[i] + g;
                params[i] -= lr * velocity[i];
            }
        }
    }
}

#[test]
fn trainer_equals_a_sequential_loop_for_any_replica_count() {
    let data = random_table(203, 5, 3, 11);
    let model = Mlp::new(5, 7, 3);
    let init: Vec<f64> = model.init(3);
    let (lr, momentum, batch, micro, seed) = (0.05, 0.9, 40, 6, 99);
    let mut expected = init.clone();
    sequential_sgd(
        &model,
        &data,
        &mut expected,
        3,
        (lr, momentum, batch, micro, seed),
    );

    let data = Arc::new(data);
    let c = cluster(2);
    for replicas in [
        Replicas::Cpu(1),
        Replicas::Cpu(2),
        Replicas::Cpu(7),
        Replicas::CpuThreads,
    ] {
        let mut trainer = Trainer::builder(&c, init.clone())
            .optimizer(Optimizer::sgd_momentum(momentum))
            .lr(lr)
            .batch_size(batch)
            .micro_batch(micro)
            .seed(seed)
            .replicas(replicas)
            .build()
            .unwrap();
        let grad =
            move |p: &[f64], b: &Batch<'_, f64, usize>, g: &mut [f64]| model.loss_grad(p, b, g);
        let stats = trainer.fit(&data, grad, 3, |_| {}).unwrap();
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[0].samples, 203);
        assert_eq!(stats[0].steps, 6);
        assert!(stats[2].loss < stats[0].loss);
        assert_eq!(trainer.epoch(), 3);
        assert_eq!(trainer.steps(), 18);
        let bits: Vec<u64> = trainer.params().iter().map(|x| x.to_bits()).collect();
        let want: Vec<u64> = expected.iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, want, "{replicas:?}");
    }
}

#[test]
fn a_different_summation_order_changes_the_bits() {
    // What the fixed tree protects against: a left fold over the same micro-shard gradients
    // gives other bits, so the equality above is not an accident of the data.
    let data = random_table(64, 5, 3, 2);
    let model = Mlp::new(5, 7, 3);
    let params: Vec<f64> = model.init(1);
    let leaves: Vec<Vec<f64>> = (0..16)
        .map(|k| {
            let idx: Vec<usize> = (k * 4..k * 4 + 4).collect();
            let mut g = vec![0.0; params.len()];
            model
                .loss_grad(&params, &data.subset(&idx).unwrap().as_batch(), &mut g)
                .unwrap();
            g
        })
        .collect();
    let tree = tree_sum(
        &leaves.iter().map(|g| (g.clone(), 0.0)).collect::<Vec<_>>(),
        4,
        0,
    )
    .0;
    let mut fold = vec![0.0; params.len()];
    for g in &leaves {
        for (a, b) in fold.iter_mut().zip(g) {
            *a += b;
        }
    }
    assert!(
        tree.iter()
            .zip(&fold)
            .any(|(a, b)| a.to_bits() != b.to_bits())
    );
}

fn digits_trainer(c: &Cluster, replicas: Replicas, epochs: u64) -> (Trainer<f32>, Mlp) {
    let model = Mlp::new(64, 32, 10);
    let trainer = Trainer::builder(c, model.init(5))
        .optimizer(Optimizer::adamw(1e-3))
        .schedule(Schedule::cosine(5e-3, 1e-4, epochs))
        .batch_size(100)
        .micro_batch(16)
        .seed(8)
        .replicas(replicas)
        .build()
        .unwrap();
    (trainer, model)
}

#[test]
fn replica_counts_one_two_and_seven_give_identical_parameters_on_digits() {
    let (train, _) = train_mlp::load_digits().unwrap();
    let train = Arc::new(train);
    let c = cluster(2);
    let mut results = Vec::new();
    for r in [1, 2, 7] {
        let (mut trainer, model) = digits_trainer(&c, Replicas::Cpu(r), 2);
        let grad =
            move |p: &[f32], b: &Batch<'_, f32, usize>, g: &mut [f32]| model.loss_grad(p, b, g);
        trainer.fit(&train, grad, 2, |_| {}).unwrap();
        results.push(
            trainer
                .params()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let (train, _) = train_mlp::load_digits().unwrap();
    let train = Arc::new(train.subset(&(0..500).collect::<Vec<_>>()).unwrap());
    let c = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.ckpt");
    let grad_of = |model: Mlp| {
        move |p: &[f32], b: &Batch<'_, f32, usize>, g: &mut [f32]| model.loss_grad(p, b, g)
    };

    let (mut whole, model) = digits_trainer(&c, Replicas::Cpu(2), 4);
    let whole_stats = whole.fit(&train, grad_of(model), 4, |_| {}).unwrap();

    let (mut first, model) = digits_trainer(&c, Replicas::Cpu(2), 4);
    first.fit(&train, grad_of(model), 2, |_| {}).unwrap();
    first.save(&path).unwrap();
    drop(first);
    // A fresh trainer (other replica count, other initial parameters) continues from the file.
    let (mut second, model) = digits_trainer(&c, Replicas::Cpu(3), 4);
    second.fit(&train, grad_of(model), 1, |_| {}).unwrap();
    second.restore(&path).unwrap();
    assert_eq!(second.epoch(), 2);
    let rest = second.fit(&train, grad_of(model), 2, |_| {}).unwrap();
    assert_eq!(rest[1].epoch, 3);
    assert_eq!(rest[1].loss.to_bits(), whole_stats[3].loss.to_bits());
    let a: Vec<u32> = whole.params().iter().map(|x| x.to_bits()).collect();
    let b: Vec<u32> = second.params().iter().map(|x| x.to_bits()).collect();
    assert_eq!(a, b);
    assert_eq!(whole.steps(), second.steps());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn restore_refuses_other_settings_and_damaged_files() {
    let c = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ckpt");
    let make = |seed: u64, opt: Optimizer, n: usize| {
        Trainer::builder(&c, vec![0.5f64; n])
            .optimizer(opt)
            .seed(seed)
            .build()
            .unwrap()
    };
    make(1, Optimizer::adam(), 4).save(&path).unwrap();
    let mut other_seed = make(2, Optimizer::adam(), 4);
    let e = other_seed.restore(&path).unwrap_err();
    assert!(e.to_string().contains("seed"), "{e}");
    let e = make(1, Optimizer::sgd(), 4).restore(&path).unwrap_err();
    assert!(e.to_string().contains("optimizer"), "{e}");
    let e = make(1, Optimizer::adam(), 5).restore(&path).unwrap_err();
    assert!(e.to_string().contains("parameter count"), "{e}");
    let mut f32_trainer = Trainer::builder(&c, vec![0.5f32; 4])
        .optimizer(Optimizer::adam())
        .seed(1)
        .build()
        .unwrap();
    assert!(f32_trainer.restore(&path).is_err());

    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, &bytes).unwrap();
    let mut t = make(1, Optimizer::adam(), 4);
    let e = t.restore(&path).unwrap_err();
    assert!(
        e.to_string().contains("not a usable onebox checkpoint"),
        "{e}"
    );
    assert_eq!(t.params(), &[0.5; 4]); // unchanged
    let e = t.restore(dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let e = t.save(dir.path().join("no/such/dir/x")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

fn mean_grad(p: &[f64], b: &Batch<'_, f64, f64>, g: &mut [f64]) -> Result<f64> {
    // Loss (p - y)^2 / 2 per sample: the optimum is the mean label.
    let mut loss = 0.0;
    for y in b.labels() {
        g[0] += p[0] - y;
        loss += (p[0] - y) * (p[0] - y) / 2.0;
    }
    Ok(loss)
}

fn labels_table(labels: Vec<f64>) -> Arc<Table<f64, f64>> {
    let n = labels.len();
    Arc::new(Table::new(vec![0.0; n], 1, labels).unwrap())
}

#[test]
fn batches_micro_shards_and_epochs_edge_cases() {
    let c = cluster(2);
    // One sample; batch larger than the data; micro-batch larger than the batch; micro 1.
    for (n, batch, micro) in [(1, 1, 1), (1, 64, 16), (10, 3, 5), (10, 4, 1), (17, 17, 17)] {
        let data = labels_table((0..n).map(|i| i as f64).collect());
        let mut t = Trainer::builder(&c, vec![0.0f64])
            .schedule(Schedule::cosine(0.5, 0.0, 200))
            .batch_size(batch)
            .micro_batch(micro)
            .replicas(Replicas::Cpu(3))
            .build()
            .unwrap();
        let stats = t.fit(&data, mean_grad, 200, |_| {}).unwrap();
        assert_eq!(stats[0].samples, n);
        assert_eq!(stats[0].steps, n.div_ceil(batch));
        let mean = (n - 1) as f64 / 2.0;
        assert!(
            (t.params()[0] - mean).abs() < 0.3,
            "{n} {batch} {micro}: {}",
            t.params()[0]
        );
    }
    // drop_last skips the short batch.
    let data = labels_table(vec![1.0; 10]);
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .batch_size(4)
        .drop_last(true)
        .build()
        .unwrap();
    let stats = t.fit(&data, mean_grad, 1, |_| {}).unwrap();
    assert_eq!((stats[0].samples, stats[0].steps), (8, 2));
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .batch_size(11)
        .drop_last(true)
        .build()
        .unwrap();
    assert!(t.fit(&data, mean_grad, 1, |_| {}).is_err());
    // No epochs: nothing happens.
    assert!(t.fit(&data, mean_grad, 0, |_| {}).unwrap().is_empty());
    assert_eq!(t.epoch(), 0);
}

#[test]
fn every_epoch_visits_every_sample_once_in_a_seeded_order() {
    let c = cluster(2);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let data = labels_table(vec![0.0; 37]);
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .batch_size(8)
        .micro_batch(3)
        .seed(4)
        .build()
        .unwrap();
    let s = seen.clone();
    let grad = move |p: &[f64], b: &Batch<'_, f64, f64>, g: &mut [f64]| {
        s.lock().unwrap().extend_from_slice(b.indices());
        mean_grad(p, b, g)
    };
    t.fit(&data, grad, 2, |_| {}).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 74);
    let mut second = seen.split_off(37);
    let mut first = seen;
    assert_ne!(first, second, "epochs are shuffled differently");
    first.sort_unstable();
    second.sort_unstable();
    assert_eq!(first, (0..37).collect::<Vec<_>>());
    assert_eq!(second, first);
    // The documented order: epoch e's shuffle of the seed.
    let order = t.epoch_order(0, 37);
    let mut expected: Vec<usize> = (0..37).collect();
    Rng::stream(4, 0).shuffle(&mut expected);
    assert_eq!(order, expected);
}

#[test]
fn failures_leave_the_trainer_as_it_was() {
    let c = cluster(2);
    let data = labels_table((0..20).map(f64::from).collect());
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .lr(0.1)
        .batch_size(5)
        .micro_batch(2)
        .build()
        .unwrap();
    t.fit(&data, mean_grad, 1, |_| {}).unwrap();
    let before = t.params().to_vec();

    // An error from the gradient function, after some steps of the epoch succeeded.
    let calls = Arc::new(AtomicUsize::new(0));
    let k = calls.clone();
    let failing = move |p: &[f64], b: &Batch<'_, f64, f64>, g: &mut [f64]| {
        if k.fetch_add(1, Ordering::SeqCst) == 6 {
            return Err(Error::Invalid("sensor 3 unreadable".into()));
        }
        mean_grad(p, b, g)
    };
    let e = t.fit(&data, failing, 1, |_| {}).unwrap_err();
    assert!(e.to_string().contains("sensor 3 unreadable"), "{e}");
    assert!(e.to_string().contains("train.replica"), "{e}");
    assert_eq!(t.params(), before.as_slice());
    assert_eq!(t.epoch(), 1);

    // A panic becomes an error naming the replica task.
    let panicking = |_: &[f64], _: &Batch<'_, f64, f64>, _: &mut [f64]| -> Result<f64> {
        panic!("index out of bounds in my model")
    };
    let e = t.fit(&data, panicking, 1, |_| {}).unwrap_err();
    assert!(
        e.to_string().contains("index out of bounds in my model"),
        "{e}"
    );
    assert_eq!(t.params(), before.as_slice());

    // A loss that is not finite stops training.
    let nan = |_: &[f64], _: &Batch<'_, f64, f64>, _: &mut [f64]| Ok(f64::NAN);
    let e = t.fit(&data, nan, 1, |_| {}).unwrap_err();
    assert!(e.to_string().contains("diverged"), "{e}");
    assert_eq!(t.params(), before.as_slice());

    // The cluster still works, and so does the trainer.
    t.fit(&data, mean_grad, 1, |_| {}).unwrap();
    assert_eq!(t.epoch(), 2);
}

/// A data set whose reads fail for one sample, or return the wrong number of rows.
struct Flaky {
    broken: usize,
    short: bool,
}

impl Dataset for Flaky {
    type Scalar = f64;
    type Label = f64;
    fn len(&self) -> usize {
        10
    }
    fn n_features(&self) -> usize {
        1
    }
    fn read(&self, idx: &[usize], x: &mut Vec<f64>, y: &mut Vec<f64>) -> Result<()> {
        if idx.contains(&self.broken) {
            return Err(Error::Invalid(format!("row {} is corrupt", self.broken)));
        }
        let keep = if self.short { idx.len() - 1 } else { idx.len() };
        x.extend(std::iter::repeat_n(0.0, keep));
        y.extend(std::iter::repeat_n(1.0, keep));
        Ok(())
    }
}

#[test]
fn dataset_errors_and_wrong_reads_are_reported() {
    let c = cluster(2);
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .batch_size(4)
        .build()
        .unwrap();
    let e = t
        .fit(
            &Arc::new(Flaky {
                broken: 7,
                short: false,
            }),
            mean_grad,
            1,
            |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("row 7 is corrupt"), "{e}");
    let e = t
        .fit(
            &Arc::new(Flaky {
                broken: 99,
                short: true,
            }),
            mean_grad,
            1,
            |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("Dataset::read gave"), "{e}");
    let e = t
        .fit(&labels_table(vec![]), mean_grad, 1, |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("no samples"), "{e}");
}

#[test]
fn builder_refuses_bad_settings() {
    let c = cluster(1);
    let b = || Trainer::builder(&c, vec![0.0f32; 3]);
    assert!(Trainer::builder(&c, Vec::<f32>::new()).build().is_err());
    assert!(Trainer::builder(&c, vec![f32::NAN]).build().is_err());
    assert!(b().batch_size(0).build().is_err());
    assert!(b().micro_batch(0).build().is_err());
    assert!(b().replicas(Replicas::Cpu(0)).build().is_err());
    assert!(b().lr(-1.0).build().is_err());
    assert!(b().optimizer(Optimizer::sgd_momentum(1.5)).build().is_err());
    assert!(b().schedule(Schedule::step(0.1, 0, 0.5)).build().is_err());
    let mut t = b().build().unwrap();
    assert_eq!(t.replica_count(), 1);
    assert!(t.set_replicas(Replicas::Cpu(0)).is_err());
    t.set_replicas(Replicas::Cpu(4)).unwrap();
    assert_eq!(t.replica_count(), 4);
}

#[test]
fn read_csv_reads_plain_and_gzip_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("t.csv");
    std::fs::write(&plain, "a,b,label\n1,2.5,0\n-3,4e1,2\n\n").unwrap();
    let t = Table::<f64, usize>::read_csv(&plain, true).unwrap();
    assert_eq!(t.features(), &[1.0, 2.5, -3.0, 40.0]);
    assert_eq!(t.labels(), &[0, 2]);
    assert_eq!(t.n_features(), 2);

    let digits = Table::<f32, usize>::read_csv(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz"),
        false,
    )
    .unwrap();
    assert_eq!((digits.len(), digits.n_features()), (1797, 64));
    assert_eq!(
        &digits.features()[..8],
        &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(&digits.labels()[..3], &[0, 1, 2]);
    assert!(digits.labels().iter().all(|&y| y < 10));

    for (text, needle) in [
        ("1,2,0\n1,x,1\n", "t.csv:2: column 2"),
        ("1,2,0\n1,2\n", "t.csv:2: 2 columns"),
        ("1,2,-1\n", "not a class index"),
        ("5\n", "at least one feature"),
    ] {
        std::fs::write(&plain, text).unwrap();
        let e = Table::<f64, usize>::read_csv(&plain, false).unwrap_err();
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    let e = Table::<f64, usize>::read_csv(dir.path().join("none.csv"), false).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    // Unicode in a bad field is reported as it is.
    std::fs::write(&plain, "1,é,0\n").unwrap();
    let e = Table::<f64, usize>::read_csv(&plain, false).unwrap_err();
    assert!(e.to_string().contains("\"é\""), "{e}");
}

#[test]
fn table_checks_shapes_and_reads_by_index() {
    assert!(Table::new(vec![1.0f32; 5], 2, vec![0usize; 3]).is_err());
    let t = Table::new(vec![1.0f32, 2.0, 3.0, 4.0], 2, vec![7usize, 8]).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    assert!(t.read(&[0, 2], &mut x, &mut y).is_err());
    let s = t.subset(&[1, 1, 0]).unwrap();
    assert_eq!(s.features(), &[3.0, 4.0, 3.0, 4.0, 1.0, 2.0]);
    assert_eq!(s.labels(), &[8, 8, 7]);
    assert!(t.subset(&[]).unwrap().is_empty());
    let b = Batch::new(&[1.0f32, 2.0, 3.0], 3, &[1usize]).unwrap();
    assert_eq!((b.len(), b.row(0)), (1, &[1.0f32, 2.0, 3.0][..]));
    assert!(Batch::new(&[1.0f32, 2.0], 3, &[1usize]).is_err());
}

#[test]
fn the_logistic_regression_example_reaches_95_percent_for_any_replica_count() {
    let c = cluster(2);
    let one = train_logreg::train(&c, 30, Replicas::Cpu(1), |_| {}).unwrap();
    assert!(one.accuracy >= 0.95, "accuracy {}", one.accuracy);
    assert_eq!(one.test_samples, 359);
    let three = train_logreg::train(&c, 30, Replicas::Cpu(3), |_| {}).unwrap();
    assert_eq!(one.params, three.params);
    assert_eq!(one.accuracy, three.accuracy);
}

#[test]
fn the_mlp_example_reaches_96_percent() {
    let c = cluster(2);
    let mut losses = Vec::new();
    let out =
        train_mlp::train(&c, &train_mlp::Settings::default(), |e| losses.push(e.loss)).unwrap();
    assert!(out.accuracy >= 0.96, "accuracy {}", out.accuracy);
    assert!(losses[losses.len() - 1] < losses[0] / 5.0, "{losses:?}");
}

#[test]
fn replicas_run_at_the_same_time_on_the_pool() {
    // Each gradient call waits (up to 10 s) for another call to be running at the same time:
    // with two replicas on two threads, every step sees two at once.
    let c = cluster(2);
    let active = Arc::new(AtomicUsize::new(0));
    let arrivals = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    let (a, n, o) = (active.clone(), arrivals.clone(), overlapped.clone());
    let grad = move |p: &[f64], b: &Batch<'_, f64, f64>, g: &mut [f64]| {
        // A call overlaps another if one was running when it arrived, or if one arrives
        // while it is still running; both counters only grow while it runs, so no overlap
        // is missed.
        let me = n.fetch_add(1, Ordering::SeqCst);
        let others = a.fetch_add(1, Ordering::SeqCst);
        let start = std::time::Instant::now();
        let mut overlap = others > 0;
        while !overlap && start.elapsed().as_secs() < 10 {
            std::thread::yield_now();
            overlap = n.load(Ordering::SeqCst) > me + 1;
        }
        if overlap {
            o.fetch_add(1, Ordering::SeqCst);
        }
        a.fetch_sub(1, Ordering::SeqCst);
        mean_grad(p, b, g)
    };
    let mut t = Trainer::builder(&c, vec![0.0f64])
        .batch_size(8)
        .micro_batch(4)
        .replicas(Replicas::Cpu(2))
        .build()
        .unwrap();
    t.fit(&labels_table(vec![1.0; 32]), grad, 1, |_| {})
        .unwrap();
    assert_eq!(overlapped.load(Ordering::SeqCst), 8, "4 steps x 2 replicas");
}

/// Loss `sum_i (p_i - y w_i)^2 / 2` per sample, for fixed weights `w`: a cheap model with
/// many parameters, so that the update is cut into several pieces.
fn wide_grad(
    w: Arc<Vec<f64>>,
) -> impl Fn(&[f64], &Batch<'_, f64, f64>, &mut [f64]) -> Result<f64> + Send + Sync + 'static {
    move |p, b, g| {
        let mut loss = 0.0;
        for &y in b.labels() {
            for i in 0..p.len() {
                let e = p[i] - y * w[i];
                g[i] += e;
                loss += e * e / 2.0;
            }
        }
        Ok(loss)
    }
}

#[test]
fn a_wide_model_updated_in_pieces_equals_a_sequential_adam_loop() {
    let n_params = 100_000;
    let w = Arc::new(random_params(n_params, 1.0, 4));
    let labels: Vec<f64> = random_params(23, 2.0, 5);
    let data = labels_table(labels.clone());
    let (lr, batch, micro, seed, epochs) = (0.01, 8, 3, 17, 2);
    let (b1, b2, eps, wd) = (0.9f64, 0.999f64, 1e-8, 0.01);

    // The plain loop: same shuffles, micro-shards and tree; AdamW written out.
    let grad = wide_grad(w.clone());
    let mut p = vec![0.25f64; n_params];
    let (mut m1, mut m2) = (vec![0.0; n_params], vec![0.0; n_params]);
    let mut t = 0;
    for epoch in 0..epochs {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        Rng::stream(seed, epoch).shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let leaves: Vec<(Vec<f64>, f64)> = chunk
                .chunks(micro)
                .map(|idx| {
                    let ys: Vec<f64> = idx.iter().map(|&i| labels[i]).collect();
                    let xs = vec![0.0; ys.len()];
                    let b = Batch::new(&xs, 1, &ys).unwrap();
                    let mut g = vec![0.0; n_params];
                    let l = grad(&p, &b, &mut g).unwrap();
                    (g, l)
                })
                .collect();
            let levels = leaves.len().next_power_of_two().trailing_zeros();
            let (sum, _) = tree_sum(&leaves, levels, 0);
            t += 1;
            let step_size = lr / (1.0 - b1.powi(t));
            let inv_sqrt_c2 = 1.0 / (1.0 - b2.powi(t)).sqrt();
            for i in 0..n_params {
                let g = sum[i] / chunk.len() as f64;
                p[i] -= (lr * wd) * p[i];
                m1[i] = b1 * m1[i] + (1.0 - b1) * g;
                m2[i] = b2 * m2[i] + (1.0 - b2) * g * g;
                p[i] -= step_size * (m1[i] / (m2[i].sqrt() * inv_sqrt_c2 + eps));
            }
        }
    }

    let c = cluster(2);
    for r in [1, 2, 7] {
        let mut trainer = Trainer::builder(&c, vec![0.25f64; n_params])
            .optimizer(Optimizer::adamw(wd))
            .lr(lr)
            .batch_size(batch)
            .micro_batch(micro)
            .seed(seed)
            .replicas(Replicas::Cpu(r))
            .build()
            .unwrap();
        trainer
            .fit(&data, wide_grad(w.clone()), epochs, |_| {})
            .unwrap();
        let same = trainer
            .params()
            .iter()
            .zip(&p)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "R = {r}");
    }
}
