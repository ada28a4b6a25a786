//! Two reference classifiers with hand-written forward and backward passes: softmax
//! (multinomial logistic) regression and a two-layer perceptron. They are what a user's
//! gradient function looks like, and they are tested against finite differences.
//!
//! Parameters are one flat vector; the layouts are documented on each model. Matrix products
//! use the single-threaded `matrixmultiply` kernels: the parallelism comes from the replicas.

use super::Float;
use super::data::{Batch, Dataset, Table};
use super::rng::Rng;
use crate::error::{Error, Result};

/// A classifier over flat parameters: what the trainer's gradient function calls.
pub trait Classifier<F: Float>: Send + Sync {
    /// Number of parameters.
    fn n_params(&self) -> usize;

    /// Adds to `grad` the gradient of the cross-entropy loss summed over `batch`, and returns
    /// that summed loss.
    fn loss_grad(&self, params: &[F], batch: &Batch<'_, F, usize>, grad: &mut [F]) -> Result<f64>;

    /// The most likely class of each row of `features` (row-major).
    fn predict(&self, params: &[F], features: &[F]) -> Result<Vec<usize>>;

    /// The fraction of `data`'s samples whose class is predicted correctly.
    fn accuracy(&self, params: &[F], data: &Table<F, usize>) -> Result<f64> {
        if data.is_empty() {
            return Err(Error::Invalid("accuracy of an empty data set".into()));
        }
        let predicted = self.predict(params, data.features())?;
        let right = predicted
            .iter()
            .zip(data.labels())
            .filter(|(p, y)| p == y)
            .count();
        Ok(right as f64 / data.len() as f64)
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} has {got} values, the model needs {want}"
        )))
    }
}

fn check_batch<F>(batch: &Batch<'_, F, usize>, n_features: usize, n_classes: usize) -> Result<()> {
    if batch.n_features() != n_features {
        return Err(Error::Invalid(format!(
            "the batch has {} features per sample, the model expects {n_features}",
            batch.n_features()
        )));
    }
    if let Some(&y) = batch.labels().iter().find(|&&y| y >= n_classes) {
        return Err(Error::Invalid(format!(
            "label {y} is not a class of a {n_classes}-class model"
        )));
    }
    Ok(())
}

/// `out[r, :] = x[r, :] W + b` for the `n` rows of `x` (`d` wide); `W` is `d x c`.
fn affine<F: Float>(x: &[F], n: usize, d: usize, w: &[F], b: &[F], c: usize, out: &mut [F]) {
    for row in out.chunks_exact_mut(c) {
        row.copy_from_slice(b);
    }
    F::gemm(
        n,
        d,
        c,
        F::ONE,
        (x, d as isize, 1),
        (w, c as isize, 1),
        F::ONE,
        (out, c as isize, 1),
    );
}

/// `grad_w += x^T dz` and `grad_b += column sums of dz`, for `x` `n x d` and `dz` `n x c`.
fn affine_backward<F: Float>(
    x: &[F],
    n: usize,
    d: usize,
    dz: &[F],
    c: usize,
    grad_w: &mut [F],
    grad_b: &mut [F],
) {
    F::gemm(
        d,
        n,
        c,
        F::ONE,
        (x, 1, d as isize),
        (dz, c as isize, 1),
        F::ONE,
        (grad_w, c as isize, 1),
    );
    for row in dz.chunks_exact(c) {
        for (g, &v) in grad_b.iter_mut().zip(row) {
            *g += v;
        }
    }
}

/// Turns logits `z` (`n x c`) into `softmax(z) - onehot(y)` in place; returns the summed
/// cross-entropy `-log softmax(z)[y]`.
fn softmax_cross_entropy<F: Float>(z: &mut [F], labels: &[usize], c: usize) -> f64 {
    let mut loss = 0.0f64;
    for (row, &y) in z.chunks_exact_mut(c).zip(labels) {
        let max = row
            .iter()
            .copied()
            .fold(row[0], |a, b| if b > a { b } else { a });
        let mut sum = F::ZERO;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let log_sum = sum.ln();
        // -log p_y = log(sum) - (z_y - max); row[y] now holds exp(z_y - max).
        loss += (log_sum - row[y].ln()).to_f64();
        for v in row.iter_mut() {
            *v = *v / sum;
        }
        row[y] -= F::ONE;
    }
    loss
}

fn argmax_rows<F: Float>(z: &[F], c: usize) -> Vec<usize> {
    z.chunks_exact(c)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Multinomial logistic regression: `p = softmax(x W + b)`.
///
/// Parameters: `W` (`n_features x n_classes`, row-major), then `b` (`n_classes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxRegression {
    /// Features per sample.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
}

impl SoftmaxRegression {
    /// A model for `n_features` features and `n_classes` classes.
    pub fn new(n_features: usize, n_classes: usize) -> Self {
        SoftmaxRegression {
            n_features,
            n_classes,
        }
    }

    /// Initial parameters: all zero (the loss is convex; zero is a fine start).
    pub fn init<F: Float>(&self) -> Vec<F> {
        vec![F::ZERO; Classifier::<F>::n_params(self)]
    }

    fn logits<F: Float>(&self, params: &[F], x: &[F], n: usize) -> Vec<F> {
        let (d, c) = (self.n_features, self.n_classes);
        let (w, b) = params.split_at(d * c);
        let mut z = vec![F::ZERO; n * c];
        affine(x, n, d, w, b, c, &mut z);
        z
    }
}

impl<F: Float> Classifier<F> for SoftmaxRegression {
    fn n_params(&self) -> usize {
        (self.n_features + 1) * self.n_classes
    }

    fn loss_grad(&self, params: &[F], batch: &Batch<'_, F, usize>, grad: &mut [F]) -> Result<f64> {
        let p = Classifier::<F>::n_params(self);
        check_len("the parameter vector", params.len(), p)?;
        check_len("the gradient vector", grad.len(), p)?;
        check_batch(batch, self.n_features, self.n_classes)?;
        let (n, d, c) = (batch.len(), self.n_features, self.n_classes);
        let mut z = self.logits(params, batch.features(), n);
        let loss = softmax_cross_entropy(&mut z, batch.labels(), c);
        let (gw, gb) = grad.split_at_mut(d * c);
        affine_backward(batch.features(), n, d, &z, c, gw, gb);
        Ok(loss)
    }

    fn predict(&self, params: &[F], features: &[F]) -> Result<Vec<usize>> {
        check_len(
            "the parameter vector",
            params.len(),
            Classifier::<F>::n_params(self),
        )?;
        let n = features.len() / self.n_features.max(1);
        check_len("the feature matrix", features.len(), n * self.n_features)?;
        Ok(argmax_rows(
            &self.logits(params, features, n),
            self.n_classes,
        ))
    }
}

/// A two-layer perceptron: `h = relu(x W1 + b1)`, `p = softmax(h W2 + b2)`.
///
/// Parameters: `W1` (`n_features x hidden`), `b1` (`hidden`), `W2` (`hidden x n_classes`),
/// `b2` (`n_classes`), each row-major, one after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mlp {
    /// Features per sample.
    pub n_features: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Number of classes.
    pub n_classes: usize,
}

impl Mlp {
    /// A perceptron with `hidden` ReLU units.
    pub fn new(n_features: usize, hidden: usize, n_classes: usize) -> Self {
        Mlp {
            n_features,
            hidden,
            n_classes,
        }
    }

    /// Initial parameters from `seed`: `W1` uniform in `±sqrt(6 / n_features)` (He), `W2`
    /// uniform in `±sqrt(6 / (hidden + n_classes))` (Glorot), biases zero.
    pub fn init<F: Float>(&self, seed: u64) -> Vec<F> {
        let (d, h, c) = (self.n_features, self.hidden, self.n_classes);
        let mut rng = Rng::new(seed);
        let mut uniform = |limit: f64| F::from_f64((rng.uniform() * 2.0 - 1.0) * limit);
        let mut params = Vec::with_capacity(Classifier::<F>::n_params(self));
        let l1 = (6.0 / d.max(1) as f64).sqrt();
        params.extend((0..d * h).map(|_| uniform(l1)));
        params.extend((0..h).map(|_| F::ZERO));
        let l2 = (6.0 / (h + c).max(1) as f64).sqrt();
        params.extend((0..h * c).map(|_| uniform(l2)));
        params.extend((0..c).map(|_| F::ZERO));
        params
    }

    /// The parameter vector cut into `W1`, `b1`, `W2`, `b2`.
    fn split<'a, T>(&self, params: &'a [T]) -> (&'a [T], &'a [T], &'a [T], &'a [T]) {
        let (d, h, c) = (self.n_features, self.hidden, self.n_classes);
        let (w1, rest) = params.split_at(d * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(h * c);
        (w1, b1, w2, b2)
    }

    /// Hidden activations (`n x hidden`) and logits (`n x n_classes`).
    fn forward<F: Float>(&self, params: &[F], x: &[F], n: usize) -> (Vec<F>, Vec<F>) {
        let (d, h, c) = (self.n_features, self.hidden, self.n_classes);
        let (w1, b1, w2, b2) = self.split(params);
        let mut hidden = vec![F::ZERO; n * h];
        affine(x, n, d, w1, b1, h, &mut hidden);
        // An unconditional store of a select: compiles to vector blends, not branches.
        for v in &mut hidden {
            *v = if *v < F::ZERO { F::ZERO } else { *v };
        }
        let mut z = vec![F::ZERO; n * c];
        affine(&hidden, n, h, w2, b2, c, &mut z);
        (hidden, z)
    }
}

impl<F: Float> Classifier<F> for Mlp {
    fn n_params(&self) -> usize {
        (self.n_features + 1) * self.hidden + (self.hidden + 1) * self.n_classes
    }

    fn loss_grad(&self, params: &[F], batch: &Batch<'_, F, usize>, grad: &mut [F]) -> Result<f64> {
        let p = Classifier::<F>::n_params(self);
        check_len("the parameter vector", params.len(), p)?;
        check_len("the gradient vector", grad.len(), p)?;
        check_batch(batch, self.n_features, self.n_classes)?;
        let (n, d, h, c) = (batch.len(), self.n_features, self.hidden, self.n_classes);
        let (hidden, mut dz) = self.forward(params, batch.features(), n);
        let loss = softmax_cross_entropy(&mut dz, batch.labels(), c);
        let (_, _, w2, _) = self.split(params);
        let (gw1, rest) = grad.split_at_mut(d * h);
        let (gb1, rest) = rest.split_at_mut(h);
        let (gw2, gb2) = rest.split_at_mut(h * c);
        affine_backward(&hidden, n, h, &dz, c, gw2, gb2);
        // dH = dZ W2^T, then through the ReLU.
        let mut dh = vec![F::ZERO; n * h];
        F::gemm(
            n,
            c,
            h,
            F::ONE,
            (&dz, c as isize, 1),
            (w2, 1, c as isize),
            F::ZERO,
            (&mut dh, h as isize, 1),
        );
        for (g, &a) in dh.iter_mut().zip(&hidden) {
            *g = if a <= F::ZERO { F::ZERO } else { *g };
        }
        affine_backward(batch.features(), n, d, &dh, h, gw1, gb1);
        Ok(loss)
    }

    fn predict(&self, params: &[F], features: &[F]) -> Result<Vec<usize>> {
        check_len(
            "the parameter vector",
            params.len(),
            Classifier::<F>::n_params(self),
        )?;
        let n = features.len() / self.n_features.max(1);
        check_len("the feature matrix", features.len(), n * self.n_features)?;
        Ok(argmax_rows(
            &self.forward(params, features, n).1,
            self.n_classes,
        ))
    }
}
