//! The data-parallel [`Trainer`].

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::Float;
use super::checkpoint::Checkpoint;
use super::data::{Batch, Dataset};
use super::optim::{self, Optimizer, OptimizerState, Schedule, Slices};
use super::reduce::{self, Node};
use super::rng::Rng;
use crate::Cluster;
use crate::error::{Error, Result};
use crate::graph::Delayed;

/// Where the replicas run.
///
/// Today every replica is a task on the cluster's CPU pool. One replica per GPU, with the
/// gradients all-reduced by NCCL, is the planned second kind; it will be a new variant here,
/// so that a program picks GPUs by changing one argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replicas {
    /// One CPU replica per thread of the cluster's pool (the default).
    #[default]
    CpuThreads,
    /// This many CPU replicas (at least 1; more than the pool's threads is allowed).
    Cpu(usize),
}

/// What one epoch did: returned by [`Trainer::fit`] and passed to its progress callback.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// The epoch's number, from 0.
    pub epoch: u64,
    /// Mean loss per sample over the epoch (each step's loss, before its update).
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Samples processed.
    pub samples: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// `samples / seconds`.
    pub samples_per_sec: f64,
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:>3}  loss {:.5}  lr {:.4}  {} samples in {:.3} s ({:.0} samples/s)",
            self.epoch, self.loss, self.lr, self.samples, self.seconds, self.samples_per_sec
        )
    }
}

/// Configures a [`Trainer`]: made by [`Trainer::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TrainerBuilder<F> {
    cluster: Cluster,
    params: Vec<F>,
    optimizer: Optimizer,
    schedule: Schedule,
    batch_size: usize,
    micro_batch: usize,
    seed: u64,
    replicas: Replicas,
    drop_last: bool,
}

impl<F: Float> TrainerBuilder<F> {
    /// The optimizer (default: plain SGD).
    pub fn optimizer(mut self, optimizer: Optimizer) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// The learning-rate schedule (default: constant 0.01).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// A constant learning rate: shorthand for `schedule(Schedule::constant(lr))`.
    pub fn lr(self, lr: f64) -> Self {
        self.schedule(Schedule::constant(lr))
    }

    /// Samples per optimizer step, over all replicas together (default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Samples per micro-shard, the unit of work and of the fixed reduction order (default
    /// 16). A global batch of `b` samples is `ceil(b / micro_batch)` micro-shards.
    pub fn micro_batch(mut self, n: usize) -> Self {
        self.micro_batch = n;
        self
    }

    /// The seed of the per-epoch shuffles (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where and how many replicas run (default: one per CPU thread).
    pub fn replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = replicas;
        self
    }

    /// Skip each epoch's last batch when it is smaller than `batch_size` (default: keep it).
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Checks the settings and makes the trainer.
    pub fn build(self) -> Result<Trainer<F>> {
        if self.params.is_empty() {
            return Err(Error::Invalid(
                "a model needs at least one parameter".into(),
            ));
        }
        if let Some(i) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(Error::Invalid(format!(
                "parameter {i} is {}, not a finite number",
                self.params[i]
            )));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", 0, "must be at least 1"));
        }
        if self.micro_batch == 0 {
            return Err(Error::config("micro_batch", 0, "must be at least 1"));
        }
        if self.replicas == Replicas::Cpu(0) {
            return Err(Error::config("replicas", 0, "must be at least 1"));
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        let state = OptimizerState::new(&self.optimizer, self.params.len());
        Ok(Trainer {
            cluster: self.cluster,
            params: Arc::new(self.params),
            optimizer: self.optimizer,
            state,
            schedule: self.schedule,
            batch_size: self.batch_size,
            micro_batch: self.micro_batch,
            seed: self.seed,
            replicas: self.replicas,
            drop_last: self.drop_last,
            epoch: 0,
        })
    }
}

/// A data-parallel trainer: parameters, optimizer state and the epoch counter, trained on a
/// [`Cluster`]. See the [module docs](crate::train) for how a step runs and why the result does
/// not depend on the replica count.
#[derive(Clone, Debug)]
pub struct Trainer<F> {
    cluster: Cluster,
    params: Arc<Vec<F>>,
    optimizer: Optimizer,
    state: OptimizerState<F>,
    schedule: Schedule,
    batch_size: usize,
    micro_batch: usize,
    seed: u64,
    replicas: Replicas,
    drop_last: bool,
    epoch: u64,
}

impl<F: Float> Trainer<F> {
    /// Starts configuring a trainer for the initial parameters `params` on `cluster`.
    pub fn builder(cluster: &Cluster, params: Vec<F>) -> TrainerBuilder<F> {
        TrainerBuilder {
            cluster: cluster.clone(),
            params,
            optimizer: Optimizer::sgd(),
            schedule: Schedule::constant(0.01),
            batch_size: 64,
            micro_batch: 16,
            seed: 0,
            replicas: Replicas::CpuThreads,
            drop_last: false,
        }
    }

    /// The current parameters.
    pub fn params(&self) -> &[F] {
        &self.params
    }

    /// The parameters, consuming the trainer.
    pub fn into_params(self) -> Vec<F> {
        Arc::unwrap_or_clone(self.params)
    }

    /// Epochs completed (the next epoch's number).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.state.steps
    }

    /// The number of replicas a step is spread over (a step with fewer micro-shards uses
    /// fewer).
    pub fn replica_count(&self) -> usize {
        match self.replicas {
            Replicas::CpuThreads => self.cluster.threads().max(1),
            Replicas::Cpu(n) => n.max(1),
        }
    }

    /// Changes where the replicas run. The trained result does not depend on it.
    pub fn set_replicas(&mut self, replicas: Replicas) -> Result<()> {
        if replicas == Replicas::Cpu(0) {
            return Err(Error::config("replicas", 0, "must be at least 1"));
        }
        self.replicas = replicas;
        Ok(())
    }

    /// Trains `epochs` more epochs on `data`.
    ///
    /// `grad(params, batch, out)` is called once per micro-shard, on the cluster's pool, with
    /// `out` zeroed: it must **add** to `out` the gradient of the loss summed over the batch's
    /// samples and return that summed loss. It must be deterministic (the same inputs give the
    /// same bits) for the result to be. The trainer divides by the global batch size and
    /// applies the optimizer. `on_epoch` sees each epoch's [`EpochStats`] as it ends, on the
    /// pool thread that runs the epochs (hence `Send`).
    ///
    /// On an error (from `data`, from `grad`, a panic in `grad`, or a loss that is not finite)
    /// the trainer is left as it was before the failing epoch.
    pub fn fit<D, G>(
        &mut self,
        data: &Arc<D>,
        grad: G,
        epochs: u64,
        mut on_epoch: impl FnMut(&EpochStats) + Send,
    ) -> Result<Vec<EpochStats>>
    where
        D: Dataset<Scalar = F>,
        G: Fn(&[F], &Batch<'_, F, D::Label>, &mut [F]) -> Result<f64> + Send + Sync + 'static,
    {
        let grad = Arc::new(grad);
        // The loop runs on a pool thread: waiting there for a step's replicas means running
        // them, where a thread outside the pool would sleep and be woken twice a step.
        let cluster = self.cluster.clone();
        cluster.install(|| {
            // The other threads poll for the next step's replicas instead of sleeping.
            let _awake = (self.replica_count() > 1)
                .then(|| self.cluster.inner().spin_others())
                .flatten();
            let mut all = Vec::new();
            for _ in 0..epochs {
                let before = (self.params.clone(), self.state.clone());
                match self.run_epoch(data, &grad) {
                    Ok(stats) => {
                        on_epoch(&stats);
                        all.push(stats);
                    }
                    Err(e) => {
                        (self.params, self.state) = before;
                        return Err(e);
                    }
                }
            }
            Ok(all)
        })
    }

    /// The order in which epoch `epoch` visits the `n` samples: a shuffle seeded by the
    /// trainer's seed and the epoch number.
    pub fn epoch_order(&self, epoch: u64, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::stream(self.seed, epoch).shuffle(&mut order);
        order
    }

    fn run_epoch<D, G>(&mut self, data: &Arc<D>, grad: &Arc<G>) -> Result<EpochStats>
    where
        D: Dataset<Scalar = F>,
        G: Fn(&[F], &Batch<'_, F, D::Label>, &mut [F]) -> Result<f64> + Send + Sync + 'static,
    {
        let n = data.len();
        if n == 0 {
            return Err(Error::Invalid(
                "the training data set has no samples".into(),
            ));
        }
        let started = Instant::now();
        let order: Arc<[usize]> = self.epoch_order(self.epoch, n).into();
        let lr = self.schedule.lr_at(self.epoch);
        let (mut loss, mut samples, mut steps) = (0.0f64, 0usize, 0usize);
        let mut start = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            if len < self.batch_size && self.drop_last {
                break;
            }
            let step_loss = self.step(data, grad, &order, start..start + len, lr)?;
            loss += step_loss;
            samples += len;
            steps += 1;
            start += len;
        }
        if steps == 0 {
            return Err(Error::Invalid(format!(
                "no full batch: {n} samples, batch size {}, and drop_last is set",
                self.batch_size
            )));
        }
        let seconds = started.elapsed().as_secs_f64();
        let stats = EpochStats {
            epoch: self.epoch,
            loss: loss / samples as f64,
            lr,
            samples,
            steps,
            seconds,
            samples_per_sec: samples as f64 / seconds.max(1e-9),
        };
        self.epoch += 1;
        Ok(stats)
    }

    /// One optimizer step on the samples `order[batch]`; returns their summed loss.
    ///
    /// One task per replica computes whole nodes of the fixed reduction tree over its
    /// micro-shards. The update is then a reduce-scatter: the parameters are cut into pieces,
    /// and each piece's task finishes the tree on its elements of the replicas' nodes and
    /// applies the optimizer to them. Per element the additions are the same whatever the
    /// cut, so neither the replica count nor the piece count changes a bit of the result.
    fn step<D, G>(
        &mut self,
        data: &Arc<D>,
        grad: &Arc<G>,
        order: &Arc<[usize]>,
        batch: Range<usize>,
        lr: f64,
    ) -> Result<f64>
    where
        D: Dataset<Scalar = F>,
        G: Fn(&[F], &Batch<'_, F, D::Label>, &mut [F]) -> Result<f64> + Send + Sync + 'static,
    {
        let micro = self.micro_batch;
        let m = batch.len().div_ceil(micro);
        let r = self.replica_count().min(m);
        let tasks: Vec<Delayed<Vec<Node<F>>>> = (0..r)
            .map(|j| {
                let shards = (j * m / r)..((j + 1) * m / r);
                let (params, data, grad, order) = (
                    self.params.clone(),
                    data.clone(),
                    grad.clone(),
                    order.clone(),
                );
                let batch = batch.clone();
                self.cluster
                    .try_delayed(move || {
                        let batch = &order[batch.clone()];
                        replica(&params, &*data, &*grad, batch, micro, shards.clone())
                    })
                    .label("train.replica")
            })
            .collect();
        let parts: Vec<Node<F>> = Delayed::join_with(&self.cluster, tasks, |all| {
            all.into_iter().flatten().collect()
        })
        .label("train.gather")
        .compute()?;

        // The loss, through the same tree (this also checks that the nodes form the tree).
        let loss_parts = parts.iter().map(|n| Node {
            level: n.level,
            index: n.index,
            grad: Vec::<F>::new(),
            loss: n.loss,
        });
        let loss = reduce::finish(m, loss_parts.collect())?.loss;
        if !loss.is_finite() {
            return Err(Error::Invalid(format!(
                "the loss is {loss} at epoch {}, step {}: training diverged (a lower learning \
                 rate usually helps)",
                self.epoch, self.state.steps
            )));
        }

        self.state.steps += 1;
        let (optimizer, step) = (&self.optimizer, self.state.steps);
        let divisor = F::from_f64(batch.len() as f64);
        let update = |(range, slices): (Range<usize>, Slices<'_, F>)| -> Result<()> {
            let total = reduce::finish_range(m, &parts, range)?.grad;
            optim::apply(optimizer, lr, step, slices, &total, divisor);
            Ok(())
        };
        let n = self.params.len();
        let pieces = (n / MIN_UPDATE_PIECE).clamp(1, self.replica_count());
        let ranges: Vec<Range<usize>> = (0..pieces)
            .map(|j| (j * n / pieces)..((j + 1) * n / pieces))
            .collect();
        let params = Arc::make_mut(&mut self.params);
        let slices = split_slices(params, &mut self.state, &ranges);
        if pieces == 1 {
            // Too little work to be worth a round trip through the pool.
            slices.into_iter().try_for_each(update)?;
        } else {
            self.cluster
                .map(slices, update)?
                .into_iter()
                .collect::<Result<()>>()?;
        }
        Ok(loss)
    }

    /// Writes the parameters, the optimizer state, the epoch counter and the settings a
    /// resumed run must share to `path`, atomically (a temporary file renamed over `path`).
    /// The shuffles need no saved generator state: epoch `e`'s order is derived from the seed
    /// and `e`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.checkpoint().write(path.as_ref())
    }

    /// Loads a checkpoint written by [`save`](Trainer::save) into this trainer, which must have
    /// been built with the same parameter count, float type, optimizer, batch size,
    /// micro-batch size, seed and `drop_last` (the replica count may differ). Training on
    /// with the same data and schedule then gives bit for bit the result of a run that never
    /// stopped. Nothing changes when the file is refused.
    pub fn restore(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let saved = Checkpoint::<F>::read(path)?;
        let mine = self.checkpoint();
        let mismatch = |what: &str, saved: &dyn fmt::Debug, mine: &dyn fmt::Debug| {
            Error::Invalid(format!(
                "{}: the checkpoint was written with {what} {saved:?}, this trainer has {mine:?}",
                path.display()
            ))
        };
        if saved.params.len() != mine.params.len() {
            return Err(mismatch(
                "parameter count",
                &saved.params.len(),
                &mine.params.len(),
            ));
        }
        if saved.optimizer.0 != mine.optimizer.0
            || saved.optimizer.1.map(f64::to_bits) != mine.optimizer.1.map(f64::to_bits)
        {
            return Err(mismatch("optimizer", &saved.optimizer, &mine.optimizer));
        }
        for (what, a, b) in [
            ("seed", saved.seed, mine.seed),
            ("batch size", saved.batch_size, mine.batch_size),
            ("micro-batch size", saved.micro_batch, mine.micro_batch),
            (
                "drop_last",
                u64::from(saved.drop_last),
                u64::from(mine.drop_last),
            ),
        ] {
            if a != b {
                return Err(mismatch(what, &a, &b));
            }
        }
        let expected = OptimizerState::<F>::new(&self.optimizer, mine.params.len());
        if saved.state.first.len() != expected.first.len()
            || saved.state.second.len() != expected.second.len()
        {
            return Err(Error::Invalid(format!(
                "{}: the optimizer state has the wrong size",
                path.display()
            )));
        }
        self.params = Arc::new(saved.params);
        self.state = saved.state;
        self.epoch = saved.epoch;
        Ok(())
    }

    fn checkpoint(&self) -> Checkpoint<F> {
        Checkpoint {
            seed: self.seed,
            batch_size: self.batch_size as u64,
            micro_batch: self.micro_batch as u64,
            drop_last: self.drop_last,
            optimizer: self.optimizer.describe(),
            epoch: self.epoch,
            params: self.params.to_vec(),
            state: self.state.clone(),
        }
    }
}

/// Parameters per update piece, at the least: below this, updating on the calling thread is
/// cheaper than a task round trip (about 16k elements take ~10 us to reduce and update).
const MIN_UPDATE_PIECE: usize = 16 * 1024;

/// Cuts the parameters and the optimizer buffers into the pieces `ranges` (which tile
/// `0..params.len()` in order).
fn split_slices<'a, F: Float>(
    params: &'a mut [F],
    state: &'a mut OptimizerState<F>,
    ranges: &[Range<usize>],
) -> Vec<(Range<usize>, Slices<'a, F>)> {
    fn cut<'a, F>(mut rest: &'a mut [F], ranges: &[Range<usize>]) -> Vec<&'a mut [F]> {
        let used = !rest.is_empty();
        ranges
            .iter()
            .map(|r| {
                if !used {
                    return &mut [][..];
                }
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
                rest = tail;
                head
            })
            .collect()
    }
    let params = cut(params, ranges);
    let first = cut(&mut state.first, ranges);
    let second = cut(&mut state.second, ranges);
    ranges
        .iter()
        .cloned()
        .zip(params.into_iter().zip(first.into_iter().zip(second)))
        .map(|(range, (params, (first, second)))| {
            (
                range,
                Slices {
                    params,
                    first,
                    second,
                },
            )
        })
        .collect()
}

/// One replica's share of a step: the whole tree nodes over its micro-shards `shards` of the
/// global batch `batch` (sample indices), each leaf computed by `grad`.
fn replica<F, D, G>(
    params: &[F],
    data: &D,
    grad: &G,
    batch: &[usize],
    micro: usize,
    shards: Range<usize>,
) -> Result<Vec<Node<F>>>
where
    F: Float,
    D: Dataset<Scalar = F> + ?Sized,
    G: Fn(&[F], &Batch<'_, F, D::Label>, &mut [F]) -> Result<f64> + ?Sized,
{
    let m = batch.len().div_ceil(micro);
    let n_features = data.n_features();
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    let mut leaf = |level: u32, k: usize| -> Result<Option<Node<F>>> {
        if level > 0 {
            return Ok(None);
        }
        let indices = &batch[k * micro..((k + 1) * micro).min(batch.len())];
        features.clear();
        labels.clear();
        data.read(indices, &mut features, &mut labels)?;
        if labels.len() != indices.len() || features.len() != indices.len() * n_features {
            return Err(Error::Invalid(format!(
                "Dataset::read gave {} labels and {} feature values for {} samples of {} \
                 features",
                labels.len(),
                features.len(),
                indices.len(),
                n_features
            )));
        }
        let view = Batch {
            features: &features,
            labels: &labels,
            indices,
            n_features,
        };
        let mut out = vec![F::ZERO; params.len()];
        let loss = grad(params, &view, &mut out)?;
        Ok(Some(Node {
            level: 0,
            index: k,
            grad: out,
            loss,
        }))
    };
    reduce::cover(shards)
        .into_iter()
        .map(|(level, index)| reduce::node_sum(level, index, m, &mut leaf))
        .collect()
}
