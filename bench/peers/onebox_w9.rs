//! W9: data-parallel training of a two-layer perceptron on the digits, onebox's trainer
//! (`examples/train_mlp.rs`) against the same model in PyTorch (`w9_train.py`).
//!
//! SIZE is the hidden layer's width; the rest is fixed so that both sides do the same work:
//! 64 inputs, SIZE ReLU units, 10 classes, batches of [`BATCH`] samples (micro-shards of
//! [`MICRO`] on onebox's side), AdamW with a cosine schedule, [`EPOCHS`] epochs over the 1,437
//! training digits. The time is the training loop alone (data loaded before); the count is
//! the samples processed. Each repetition checks the held-out accuracy, so that a fast model
//! that learnt nothing fails instead of winning.

#[path = "../../examples/train_mlp.rs"]
mod train_mlp;

use std::time::Instant;

use onebox::train::Replicas;
use serde_json::json;

use super::{Bench, Outcome, Rep, check};

/// Samples per optimizer step, on both sides.
pub const BATCH: usize = 256;
/// Samples per micro-shard (the unit of onebox's fixed reduction order).
pub const MICRO: usize = 32;
/// Epochs per repetition.
pub const EPOCHS: u64 = 10;
/// The held-out accuracy every repetition must reach.
pub const MIN_ACCURACY: f64 = 0.90;

/// One training run per repetition, a replica per thread of the cluster.
pub fn run(b: &Bench) -> Outcome {
    let cluster = b.cluster()?;
    let settings = train_mlp::Settings {
        epochs: EPOCHS,
        replicas: Replicas::Cpu(b.threads),
        hidden: b.size,
        batch: BATCH,
        micro: MICRO,
    };
    b.repeat(|| {
        let t0 = Instant::now();
        let outcome = train_mlp::train(&cluster, &settings, |_| {})?;
        let total = t0.elapsed().as_secs_f64();
        let seconds: f64 = outcome.stats.iter().map(|e| e.seconds).sum();
        let samples: usize = outcome.stats.iter().map(|e| e.samples).sum();
        let steps: usize = outcome.stats.iter().map(|e| e.steps).sum();
        check(outcome.params.iter().all(|p| p.is_finite()), || {
            "W9: the trained parameters are not all finite".into()
        })?;
        check(outcome.accuracy >= MIN_ACCURACY, || {
            format!(
                "W9: held-out accuracy {:.3} below {MIN_ACCURACY} (hidden {})",
                outcome.accuracy, b.size
            )
        })?;
        Ok(Rep {
            case: "mlp",
            system: "onebox Trainer",
            count: samples,
            unit: "sample",
            seconds,
            phases: json!({"fit": seconds, "load+fit+test": total,
                           "step": seconds / steps.max(1) as f64}),
            info: json!({"accuracy": outcome.accuracy, "steps": steps,
                         "replicas": b.threads, "batch": BATCH, "micro": MICRO}),
        })
    })
}
