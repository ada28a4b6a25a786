//! Data-parallel training, like PyTorch's `DistributedDataParallel` on one machine: a replica
//! per core, sharded batches, a gradient all-reduce, and the same trained model whatever the
//! replica count.
//!
//! ## The idea
//!
//! A model is a flat parameter vector (`Vec<f32>` or `Vec<f64>`) and a **gradient function**
//! `grad(params, batch, out) -> loss` that adds the summed gradient of a batch of samples to
//! `out` and returns the summed loss. The [`Trainer`] owns the parameters and the optimizer
//! state and loops over epochs:
//!
//! ```text
//!  epoch e:  order = shuffle(0..n, seed, e)          (seeded: the same order on every run)
//!  step:     global batch = next batch_size samples of `order`
//!            -> micro-shards of micro_batch samples: 0, 1, ..., m-1
//!            -> R replica tasks, each a contiguous run of micro-shards      (on the cluster)
//!            -> update, piece by piece of the parameter vector (reduce-scatter):
//!               finish the fixed tree over micro-shards 0..m on the piece, divide by the
//!               batch size, optimizer step on the piece (SGD, Adam; lr from the schedule)
//! ```
//!
//! Replicas are ordinary tasks of the cluster's scheduler (labelled `train.replica` in errors
//! and events), and so are the update pieces of a model large enough (32k parameters and up)
//! for them to pay: the trainer starts no threads of its own. While `fit` runs with more than
//! one replica the pool's other threads wait for the next step polling for work instead of
//! sleeping (OpenMP's active wait): a step lasts milliseconds, and waking a sleeping thread
//! for each one costs from microseconds up to milliseconds on a virtual machine.
//!
//! ## Why R does not change the result
//!
//! Floating-point addition is not associative, so a gradient summed as `(a + b) + c` and as
//! `a + (b + c)` can differ in the last bits; if replicas simply summed "their" samples and the
//! all-reduce added the R partial sums, every R would give a different model. Here the order
//! is fixed by the **data**, not by the replicas:
//!
//! 1. the unit of work is the *micro-shard* (`micro_batch` consecutive samples of the global
//!    batch), whose gradient the user's function computes in one call, whatever replica runs
//!    it;
//! 2. micro-shard gradients are added in one fixed binary tree over the micro-shard numbers:
//!    node `(level, k)` covers micro-shards `k 2^level .. (k+1) 2^level` and is `left + right`;
//! 3. a replica owns a contiguous run of micro-shards and computes the whole tree nodes inside
//!    its run; the update completes the same tree from those nodes, element by element (so
//!    cutting the parameters into pieces changes nothing either).
//!
//! Every addition thus has the same operands in the same order for R = 1, 2, 7 or 64, and the
//! trained parameters are identical bit for bit (given a deterministic gradient function).
//! The replica count only decides how the micro-shards are spread over the cores. The cost of
//! the guarantee is that `micro_batch` is part of the model's definition: changing it changes
//! the bits (not the mathematics).
//!
//! ## Checkpoints
//!
//! [`Trainer::save`] writes parameters, optimizer state (momentum or Adam moments, step count)
//! and the epoch counter atomically; [`Trainer::restore`] loads them. Shuffles are derived
//! from `(seed, epoch)`, so no generator state needs saving, and a resumed run gives the
//! bit-identical result of one that never stopped, even on a different replica count.
//!
//! ## Example
//!
//! Linear regression `y = 2x + 1` with a hand-written gradient:
//!
//! ```
//! use std::sync::Arc;
//! use onebox::prelude::*;
//! use onebox::train::{Optimizer, Table, Trainer};
//!
//! let cluster = Cluster::builder().threads(2).build()?;
//! let xs: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
//! let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x + 1.0).collect();
//! let data = Arc::new(Table::new(xs, 1, ys)?);
//!
//! let mut trainer = Trainer::builder(&cluster, vec![0.0f64, 0.0])   // [w, b]
//!     .optimizer(Optimizer::sgd_momentum(0.9))
//!     .lr(0.1)
//!     .batch_size(20)
//!     .seed(7)
//!     .build()?;
//! // Squared error: adds d/dw and d/db of sum (w x + b - y)^2 / 2, returns the summed loss.
//! let grad = |p: &[f64], batch: &onebox::train::Batch<'_, f64, f64>, g: &mut [f64]| {
//!     let mut loss = 0.0;
//!     for (x, y) in batch.features().iter().zip(batch.labels()) {
//!         let e = p[0] * x + p[1] - y;
//!         g[0] += e * x;
//!         g[1] += e;
//!         loss += e * e / 2.0;
//!     }
//!     Ok(loss)
//! };
//! trainer.fit(&data, grad, 100, |_stats| {})?;
//! let p = trainer.params();
//! assert!((p[0] - 2.0).abs() < 1e-3 && (p[1] - 1.0).abs() < 1e-3);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! [`models`] has two classifiers written this way (softmax regression and a two-layer
//! perceptron); `examples/train_logreg.rs` and `examples/train_mlp.rs` train them on the
//! handwritten digits that scikit-learn ships.
//!
//! ## Data
//!
//! Anything that implements [`Dataset`] (`len`, `n_features`, and `read` of the samples at
//! given indices) can be trained on; [`Table`] is the in-memory one and reads numeric CSV
//! files, gzip-compressed or not. onebox's own collections become a [`Table`] with
//! [`Table::from_arrays`] (a 2-D [`Array`](crate::array::Array) of features and a 1-D array of
//! labels) and, with the `frame` feature, `Table::from_frame` (feature columns and a label
//! column of a [`Frame`](crate::frame::Frame)), computed on the cluster first; [`Label`] says
//! which label types they produce.
//!
//! ## GPUs
//!
//! Replicas run on CPU threads. A replica per GPU, with NCCL all-reducing the gradients and
//! cuBLAS in the models, is planned as a new [`Replicas`] variant; it is not implemented yet.

mod checkpoint;
mod collections;
mod data;
mod float;
pub mod models;
mod optim;
mod reduce;
mod rng;
mod trainer;

pub use collections::Label;
pub use data::{Batch, Dataset, Table, train_test_split};
pub use float::Float;
pub use optim::{Optimizer, Schedule};
pub use rng::Rng;
pub use trainer::{EpochStats, Replicas, Trainer, TrainerBuilder};
