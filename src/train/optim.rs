//! Optimizers (SGD with momentum, Adam/AdamW) and learning-rate schedules.

use super::Float;
use crate::error::{Error, Result};

/// How a step turns the averaged gradient into a parameter update. The learning rate comes
/// from the [`Schedule`].
///
/// The updates follow PyTorch's `torch.optim.SGD` and `torch.optim.Adam`/`AdamW`:
///
/// - **SGD**: `g = grad + weight_decay * p`; with momentum `v = momentum * v + g` and the
///   update uses `v` (or `g + momentum * v` with Nesterov); `p -= lr * update`.
/// - **Adam**: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
///   `p -= lr * m_hat / (sqrt(v_hat) + eps)` with the bias corrections `m_hat = m / (1 - b1^t)`,
///   `v_hat = v / (1 - b2^t)`, computed as PyTorch does:
///   `p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)` (here with the division
///   by the scalar `sqrt(1 - b2^t)` as a multiplication by its inverse). Weight decay is added
///   to the gradient (Adam) or, when `decoupled`, applied directly as
///   `p -= lr * weight_decay * p` (AdamW).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Optimizer {
    /// Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.
    Sgd {
        /// Momentum factor (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// Adam (or AdamW when `decoupled`).
    Adam {
        /// Decay of the first-moment average (0.9).
        beta1: f64,
        /// Decay of the second-moment average (0.999).
        beta2: f64,
        /// Added to the denominator (1e-8).
        eps: f64,
        /// Weight decay.
        weight_decay: f64,
        /// Decoupled weight decay (AdamW) instead of an L2 term in the gradient.
        decoupled: bool,
    },
}

impl Optimizer {
    /// Plain SGD.
    pub fn sgd() -> Self {
        Optimizer::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// SGD with (heavy-ball) momentum.
    pub fn sgd_momentum(momentum: f64) -> Self {
        Optimizer::Sgd {
            momentum,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults (`beta1` 0.9, `beta2` 0.999, `eps` 1e-8).
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW: Adam with decoupled weight decay `weight_decay`.
    pub fn adamw(weight_decay: f64) -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled: true,
        }
    }

    /// The same optimizer with weight decay `weight_decay`.
    #[must_use]
    pub fn with_weight_decay(mut self, decay: f64) -> Self {
        match &mut self {
            Optimizer::Sgd { weight_decay, .. } | Optimizer::Adam { weight_decay, .. } => {
                *weight_decay = decay
            }
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let check = |what: &str, x: f64, ok: bool, reason: &str| {
            if x.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::config(what, x, reason))
            }
        };
        match *self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                check(
                    "momentum",
                    momentum,
                    (0.0..1.0).contains(&momentum),
                    "must be in [0, 1)",
                )?;
                check(
                    "weight_decay",
                    weight_decay,
                    weight_decay >= 0.0,
                    "must be >= 0",
                )
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                check(
                    "beta1",
                    beta1,
                    (0.0..1.0).contains(&beta1),
                    "must be in [0, 1)",
                )?;
                check(
                    "beta2",
                    beta2,
                    (0.0..1.0).contains(&beta2),
                    "must be in [0, 1)",
                )?;
                check("eps", eps, eps > 0.0, "must be > 0")?;
                check(
                    "weight_decay",
                    weight_decay,
                    weight_decay >= 0.0,
                    "must be >= 0",
                )
            }
        }
    }

    /// A tag and the hyper-parameters, for checkpoints.
    pub(crate) fn describe(&self) -> (u8, [f64; 5]) {
        match *self {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => (
                1,
                [
                    momentum,
                    f64::from(u8::from(nesterov)),
                    weight_decay,
                    0.0,
                    0.0,
                ],
            ),
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            } => (
                2,
                [
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    f64::from(u8::from(decoupled)),
                ],
            ),
        }
    }
}

/// The learning rate of each epoch (epochs count from 0).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Schedule {
    /// The same rate throughout.
    Constant {
        /// The learning rate.
        lr: f64,
    },
    /// `lr * gamma^(epoch / every)`: multiplied by `gamma` every `every` epochs.
    Step {
        /// The initial learning rate.
        lr: f64,
        /// Epochs between decays.
        every: u64,
        /// The factor applied at each decay.
        gamma: f64,
    },
    /// Cosine annealing from `lr` at epoch 0 to `min_lr` at epoch `epochs` (and after):
    /// `min_lr + (lr - min_lr) (1 + cos(pi epoch / epochs)) / 2`.
    Cosine {
        /// The initial learning rate.
        lr: f64,
        /// The final learning rate.
        min_lr: f64,
        /// The epoch at which `min_lr` is reached.
        epochs: u64,
    },
}

impl Schedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Schedule::Constant { lr }
    }

    /// Step decay: `lr * gamma^(epoch / every)`.
    pub fn step(lr: f64, every: u64, gamma: f64) -> Self {
        Schedule::Step { lr, every, gamma }
    }

    /// Cosine annealing from `lr` to `min_lr` over `epochs` epochs.
    pub fn cosine(lr: f64, min_lr: f64, epochs: u64) -> Self {
        Schedule::Cosine { lr, min_lr, epochs }
    }

    /// The learning rate for `epoch`.
    ///
    /// ```
    /// use onebox::train::Schedule;
    /// assert_eq!(Schedule::step(0.1, 10, 0.5).lr_at(25), 0.025);
    /// assert_eq!(Schedule::cosine(0.1, 0.0, 10).lr_at(10), 0.0);
    /// ```
    pub fn lr_at(&self, epoch: u64) -> f64 {
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::Step { lr, every, gamma } => {
                let decays = (epoch / every.max(1)).min(i32::MAX as u64) as i32;
                lr * gamma.powi(decays)
            }
            Schedule::Cosine { lr, min_lr, epochs } => {
                if epoch >= epochs {
                    min_lr
                } else {
                    let t = epoch as f64 / epochs as f64;
                    min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |what: &str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(Error::config(what, x, "must be a positive number"))
            }
        };
        match *self {
            Schedule::Constant { lr } => positive("lr", lr),
            Schedule::Step { lr, every, gamma } => {
                positive("lr", lr)?;
                positive("gamma", gamma)?;
                if every == 0 {
                    return Err(Error::config("every", every, "must be at least 1 epoch"));
                }
                Ok(())
            }
            Schedule::Cosine { lr, min_lr, epochs } => {
                positive("lr", lr)?;
                if !(min_lr.is_finite() && (0.0..=lr).contains(&min_lr)) {
                    return Err(Error::config("min_lr", min_lr, "must be in [0, lr]"));
                }
                if epochs == 0 {
                    return Err(Error::config("epochs", epochs, "must be at least 1"));
                }
                Ok(())
            }
        }
    }
}

/// An optimizer's state: the step count and its per-parameter buffers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OptimizerState<F> {
    /// Steps taken so far.
    pub(crate) steps: u64,
    /// SGD: the momentum buffer; Adam: the first moment.
    pub(crate) first: Vec<F>,
    /// Adam: the second moment (empty for SGD).
    pub(crate) second: Vec<F>,
}

impl<F: Float> OptimizerState<F> {
    pub(crate) fn new(optimizer: &Optimizer, n: usize) -> Self {
        let (first, second) = match optimizer {
            Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => (Vec::new(), Vec::new()),
            Optimizer::Sgd { .. } => (vec![F::ZERO; n], Vec::new()),
            Optimizer::Adam { .. } => (vec![F::ZERO; n], vec![F::ZERO; n]),
        };
        OptimizerState {
            steps: 0,
            first,
            second,
        }
    }

    /// One update of `params` with the (averaged) gradient `grad` at learning rate `lr`.
    #[cfg(test)]
    pub(crate) fn step(&mut self, optimizer: &Optimizer, lr: f64, params: &mut [F], grad: &[F]) {
        self.steps += 1;
        let slices = Slices {
            params,
            first: &mut self.first,
            second: &mut self.second,
        };
        apply(optimizer, lr, self.steps, slices, grad, F::ONE);
    }
}

/// A contiguous piece of the parameters and of the optimizer buffers that go with them (a
/// buffer the optimizer does not use is empty).
pub(crate) struct Slices<'a, F> {
    pub(crate) params: &'a mut [F],
    pub(crate) first: &'a mut [F],
    pub(crate) second: &'a mut [F],
}

/// Update number `step` (from 1) of a piece of the parameters with its piece of the averaged
/// gradient, `grad_sum / divisor` (divided here, in the update's one pass). Each element's
/// update depends only on that element, so pieces can be updated in parallel with the same
/// bits as one whole update.
///
/// The loops have no branches inside (a zero weight decay adds `0 * p`), so that they compile
/// to vector instructions.
pub(crate) fn apply<F: Float>(
    optimizer: &Optimizer,
    lr: f64,
    step: u64,
    slices: Slices<'_, F>,
    grad_sum: &[F],
    divisor: F,
) {
    let Slices {
        params,
        first,
        second,
    } = slices;
    let lr_f = F::from_f64(lr);
    match *optimizer {
        Optimizer::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => {
            let (mu, wd) = (F::from_f64(momentum), F::from_f64(weight_decay));
            if momentum == 0.0 {
                for (p, &g) in params.iter_mut().zip(grad_sum) {
                    let g = g / divisor;
                    *p -= lr_f * (g + wd * *p);
                }
            } else {
                for ((p, &g), v) in params.iter_mut().zip(grad_sum).zip(first) {
                    let g = g / divisor + wd * *p;
                    let velocity = mu * *v + g;
                    *v = velocity;
                    let update = if nesterov {
                        g + mu * velocity
                    } else {
                        velocity
                    };
                    *p -= lr_f * update;
                }
            }
        }
        Optimizer::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        } => {
            let t = step.min(i32::MAX as u64) as i32;
            // PyTorch's arrangement: the bias corrections folded into two scalars, so that an
            // element costs one square root and one division.
            let step_size = F::from_f64(lr / (1.0 - beta1.powi(t)));
            let inv_sqrt_c2 = F::from_f64(1.0 / (1.0 - beta2.powi(t)).sqrt());
            let (b1, b2) = (F::from_f64(beta1), F::from_f64(beta2));
            let (one_b1, one_b2) = (F::from_f64(1.0 - beta1), F::from_f64(1.0 - beta2));
            let eps = F::from_f64(eps);
            let wd = F::from_f64(weight_decay);
            // Decoupled decay shrinks the parameter; coupled decay adds to the gradient.
            let (shrink, l2) = if decoupled {
                (lr_f * wd, F::ZERO)
            } else {
                (F::ZERO, wd)
            };
            let moments = first.iter_mut().zip(second.iter_mut());
            for ((p, &g), (m, v)) in params.iter_mut().zip(grad_sum).zip(moments) {
                *p -= shrink * *p;
                let g = g / divisor + l2 * *p;
                *m = b1 * *m + one_b1 * g;
                *v = b2 * *v + one_b2 * g * g;
                *p -= step_size * (*m / (v.sqrt() * inv_sqrt_c2 + eps));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimising `(p - 3)^2 / 2` (gradient `p - 3`) converges with every optimizer.
    #[test]
    fn optimizers_minimise_a_quadratic() {
        for opt in [
            Optimizer::sgd(),
            Optimizer::sgd_momentum(0.9),
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.0,
            },
            Optimizer::adam(),
            Optimizer::adamw(0.0),
        ] {
            let mut p = vec![0.0f64];
            let mut state = OptimizerState::new(&opt, 1);
            for _ in 0..2000 {
                let g = [p[0] - 3.0];
                state.step(&opt, 0.05, &mut p, &g);
            }
            assert!((p[0] - 3.0).abs() < 1e-3, "{opt:?}: {}", p[0]);
        }
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let opt = Optimizer::sgd_momentum(0.5).with_weight_decay(0.1);
        let mut p = vec![1.0f64];
        let mut s = OptimizerState::new(&opt, 1);
        s.step(&opt, 0.1, &mut p, &[2.0]);
        // g = 2 + 0.1 = 2.1, v = 2.1, p = 1 - 0.21
        assert_eq!(p[0], 1.0 - 0.1 * 2.1);
        let p1 = p[0];
        s.step(&opt, 0.1, &mut p, &[1.0]);
        let g = 1.0 + 0.1 * p1;
        let v = 0.5 * 2.1 + g;
        assert_eq!(p[0], p1 - 0.1 * v);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps) ~ lr * sign(g).
        let opt = Optimizer::adam();
        let mut p = vec![0.0f64, 0.0];
        let mut s = OptimizerState::new(&opt, 2);
        s.step(&opt, 0.01, &mut p, &[5.0, -0.5]);
        assert!(
            (p[0] + 0.01).abs() < 1e-9 && (p[1] - 0.01).abs() < 1e-9,
            "{p:?}"
        );
    }

    #[test]
    fn adamw_decays_weights_without_gradient() {
        let opt = Optimizer::adamw(0.5);
        let mut p = vec![2.0f64];
        let mut s = OptimizerState::new(&opt, 1);
        s.step(&opt, 0.1, &mut p, &[0.0]);
        assert_eq!(p[0], 2.0 - 0.1 * 0.5 * 2.0);
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::constant(0.3).lr_at(100), 0.3);
        let s = Schedule::step(1.0, 2, 0.5);
        assert_eq!(
            (0..6).map(|e| s.lr_at(e)).collect::<Vec<_>>(),
            [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
        );
        let c = Schedule::cosine(1.0, 0.1, 4);
        assert_eq!(c.lr_at(0), 1.0);
        assert!((c.lr_at(2) - 0.55).abs() < 1e-12);
        assert_eq!(c.lr_at(4), 0.1);
        assert_eq!(c.lr_at(9), 0.1);
        assert!(Schedule::constant(0.0).validate().is_err());
        assert!(Schedule::constant(f64::NAN).validate().is_err());
        assert!(Schedule::step(0.1, 0, 0.5).validate().is_err());
        assert!(Schedule::cosine(0.1, 0.2, 3).validate().is_err());
        assert!(Optimizer::sgd_momentum(1.0).validate().is_err());
        assert!(
            Optimizer::adam()
                .with_weight_decay(-1.0)
                .validate()
                .is_err()
        );
    }
}
