//! Elementwise operations: arithmetic with arrays and scalars under NumPy's broadcasting
//! rules, unary math, comparisons, `where`, `clip`, casts and user closures. All of them fuse:
//! the result's blocks are new kernels over the operands' kernels, evaluated in one pass.
//!
//! Operands are aligned first. Shapes broadcast as in NumPy (align the trailing axes; an axis
//! of length 1 stretches). Where operands of the full shape disagree on an axis's chunks, the
//! later ones are rechunked to the first one's. An operand that is broadcast (a smaller shape)
//! is computed block by block and read with stride 0 along the stretched axes.

use std::ops::{Add, BitAnd, BitOr, BitXor, Div, Mul, Neg, Not, Rem, Sub};
use std::sync::Arc;

use num_traits::AsPrimitive;

use super::chunks::fmt_shape;
use super::element::{Element, Float, Numeric};
use super::kernels::{
    BinaryOp, CmpOp, Fill, InPlaceOp, Kernel, LogicOp, Map1, MapInPlace, Read, Source, UnaryOp,
    Where3, Zip2, apply_unary, binary_fn, cmp_fn, logic_fn, standard_strides,
};
use super::{Array, Block, Chunks};
use crate::cluster::Cluster;

/// One operand of an elementwise operation: an array or a scalar.
#[derive(Debug, Clone)]
pub enum Operand<T: Element> {
    /// An array (broadcast as needed).
    Array(Array<T>),
    /// A scalar (broadcast everywhere).
    Scalar(T),
}

impl<T: Element> From<&Array<T>> for Operand<T> {
    fn from(a: &Array<T>) -> Self {
        Operand::Array(a.clone())
    }
}
impl<T: Element> From<Array<T>> for Operand<T> {
    fn from(a: Array<T>) -> Self {
        Operand::Array(a)
    }
}
impl<T: Element> From<T> for Operand<T> {
    fn from(v: T) -> Self {
        Operand::Scalar(v)
    }
}

impl<T: Element> Operand<T> {
    fn shape_chunks(&self) -> Option<(&[usize], &Chunks)> {
        match self {
            Operand::Array(a) => Some((a.shape(), a.chunks())),
            Operand::Scalar(_) => None,
        }
    }
    fn error(&self) -> Option<String> {
        match self {
            Operand::Array(a) => a.err_msg().map(|e| e.to_string()),
            Operand::Scalar(_) => None,
        }
    }
    fn fan_in(&self) -> Option<usize> {
        match self {
            Operand::Array(a) => Some(a.fan_in()),
            Operand::Scalar(_) => None,
        }
    }
}

/// The broadcast shape and chunks of the operands, or why they do not broadcast.
fn align(ops: &[Option<(&[usize], &Chunks)>]) -> Result<(Vec<usize>, Chunks), String> {
    let present: Vec<(&[usize], &Chunks)> = ops.iter().flatten().copied().collect();
    let n = present.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let mut shape = vec![1usize; n];
    let mut chunks: Vec<Option<Vec<usize>>> = vec![None; n];
    for (s, c) in &present {
        let pad = n - s.len();
        for (k, &d) in s.iter().enumerate() {
            let j = k + pad;
            if d == shape[j] {
                if chunks[j].is_none() && d != 1 {
                    chunks[j] = Some(c.ax(k).to_vec());
                }
            } else if shape[j] == 1 {
                shape[j] = d;
                chunks[j] = Some(c.ax(k).to_vec());
            } else if d != 1 {
                let shapes: Vec<String> = present.iter().map(|(s, _)| fmt_shape(s)).collect();
                return Err(format!(
                    "operands could not be broadcast together with shapes {} (axis {j} of the result: {} vs {d})",
                    shapes.join(" "),
                    shape[j]
                ));
            }
        }
    }
    let axes = chunks
        .into_iter()
        .zip(&shape)
        .map(|(c, &d)| c.unwrap_or_else(|| vec![d]))
        .collect();
    Ok((shape, Chunks::from_axes(axes)))
}

/// The operand's block for each output block.
fn operand_blocks<U: Element>(op: &Operand<U>, shape: &[usize], out: &Chunks) -> Vec<Block<U>> {
    let x = match op {
        Operand::Scalar(v) => {
            let k: Arc<dyn Kernel<U>> = Arc::new(Fill(*v));
            return (0..out.num_blocks())
                .map(|_| Block {
                    deps: vec![],
                    kernel: k.clone(),
                })
                .collect();
        }
        Operand::Array(a) => a,
    };
    let n = shape.len();
    let pad = n - x.ndim();
    let target: Vec<Option<Vec<usize>>> = (0..x.ndim())
        .map(|k| {
            (x.shape()[k] == shape[k + pad] && shape[k + pad] != 1)
                .then(|| out.ax(k + pad).to_vec())
        })
        .collect();
    let x = x.rechunk_axes(&target);
    if x.shape() == shape {
        return x.blocks().to_vec();
    }
    let tasks = x.block_tasks();
    (0..out.num_blocks())
        .map(|i| {
            let m = out.block_index(i);
            let s: Vec<usize> = (0..x.ndim())
                .map(|k| if x.shape()[k] == 1 { 0 } else { m[k + pad] })
                .collect();
            let sn = x.chunks().block_number(&s);
            let xs = standard_strides(&x.chunks().block_shape(sn));
            let strides = (0..n)
                .map(|j| {
                    if j < pad || (x.shape()[j - pad] == 1 && shape[j] != 1) {
                        0
                    } else {
                        xs[j - pad]
                    }
                })
                .collect();
            Block {
                deps: vec![tasks[sn].clone()],
                kernel: Arc::new(Read::<U>::new(
                    Source::Input,
                    0,
                    strides,
                    out.block_shape(i),
                )) as Arc<dyn Kernel<U>>,
            }
        })
        .collect()
}

/// The array combining two operands block by block with `make` (`cluster`: the one of the
/// array operand).
pub(crate) fn zip_with<A: Element, B: Element, U: Element>(
    cluster: &Cluster,
    a: &Operand<A>,
    b: &Operand<B>,
    name: &str,
    make: impl Fn(Arc<dyn Kernel<A>>, Arc<dyn Kernel<B>>) -> Arc<dyn Kernel<U>>,
) -> Array<U> {
    if let Some(e) = a.error().or_else(|| b.error()) {
        return Array::failed(cluster, e);
    }
    let (shape, out) = match align(&[a.shape_chunks(), b.shape_chunks()]) {
        Ok(x) => x,
        Err(e) => return Array::failed(cluster, format!("{name}: {e}")),
    };
    let ba = operand_blocks(a, &shape, &out);
    let bb = operand_blocks(b, &shape, &out);
    let blocks = ba
        .into_iter()
        .zip(bb)
        .map(|(x, y)| Block {
            deps: x.deps.into_iter().chain(y.deps).collect(),
            kernel: make(x.kernel, y.kernel),
        })
        .collect();
    let fan_in = a.fan_in().or(b.fan_in()).unwrap_or(super::DEFAULT_FAN_IN);
    Array::from_blocks(cluster, out, blocks, name).with_fan_in(fan_in)
}

impl<T: Element> Array<T> {
    /// A new array of the same chunks whose block kernels are `f(kernel)`.
    pub(crate) fn map_kernel<U: Element>(
        &self,
        name: &str,
        f: impl Fn(Arc<dyn Kernel<T>>) -> Arc<dyn Kernel<U>>,
    ) -> Array<U> {
        if let Some(e) = self.err_msg() {
            return Array::failed(self.cluster(), e.to_string());
        }
        let blocks = self
            .blocks()
            .iter()
            .map(|b| Block {
                deps: b.deps.clone(),
                kernel: f(b.kernel.clone()),
            })
            .collect();
        Array::from_blocks(self.cluster(), self.chunks().clone(), blocks, name)
            .with_fan_in(self.fan_in())
    }

    /// Applies `f` to every element (fused with the operations around it).
    pub fn map<U, F>(&self, f: F) -> Array<U>
    where
        U: Element,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.map_kernel("map", move |k| {
            let f = f.clone();
            Arc::new(Map1 {
                child: k,
                f: Arc::new(move |a: &[T], o: &mut [U]| {
                    for (o, &a) in o.iter_mut().zip(a) {
                        *o = f(a);
                    }
                }),
            })
        })
    }

    /// Converts every element with `as` (`x.astype(np.float32)`).
    pub fn astype<U>(&self) -> Array<U>
    where
        U: Element,
        T: AsPrimitive<U>,
    {
        self.map_kernel("astype", |k| {
            Arc::new(Map1 {
                child: k,
                f: Arc::new(|a: &[T], o: &mut [U]| {
                    for (o, &a) in o.iter_mut().zip(a) {
                        *o = a.as_();
                    }
                }),
            })
        })
    }

    /// Elementwise comparison with an array or a scalar, giving a `bool` array.
    pub fn compare(&self, op: CmpOp, other: impl Into<Operand<T>>) -> Array<bool> {
        let f = cmp_fn::<T>(op);
        zip_with(
            self.cluster(),
            &Operand::from(self),
            &other.into(),
            cmp_name(op),
            move |a, b| {
                Arc::new(Zip2 {
                    a,
                    b,
                    f: Arc::new(f),
                })
            },
        )
    }

    /// `self == other`, elementwise.
    pub fn equal(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Eq, other)
    }
    /// `self != other`, elementwise.
    pub fn not_equal(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Ne, other)
    }
    /// `self < other`, elementwise.
    pub fn less(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Lt, other)
    }
    /// `self <= other`, elementwise.
    pub fn less_equal(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Le, other)
    }
    /// `self > other`, elementwise.
    pub fn greater(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Gt, other)
    }
    /// `self >= other`, elementwise.
    pub fn greater_equal(&self, other: impl Into<Operand<T>>) -> Array<bool> {
        self.compare(CmpOp::Ge, other)
    }

    /// `a` where `cond` is true, else `b` (`np.where`); the three broadcast together.
    pub fn where_(
        cond: &Array<bool>,
        a: impl Into<Operand<T>>,
        b: impl Into<Operand<T>>,
    ) -> Array<T> {
        let (a, b) = (a.into(), b.into());
        let c = Operand::from(cond);
        let cluster = cond.cluster();
        if let Some(e) = c.error().or_else(|| a.error()).or_else(|| b.error()) {
            return Array::failed(cluster, e);
        }
        let (shape, out) = match align(&[c.shape_chunks(), a.shape_chunks(), b.shape_chunks()]) {
            Ok(x) => x,
            Err(e) => return Array::failed(cluster, format!("where: {e}")),
        };
        let bc = operand_blocks(&c, &shape, &out);
        let ba = operand_blocks(&a, &shape, &out);
        let bb = operand_blocks(&b, &shape, &out);
        let blocks = bc
            .into_iter()
            .zip(ba)
            .zip(bb)
            .map(|((c, x), y)| Block {
                deps: c.deps.into_iter().chain(x.deps).chain(y.deps).collect(),
                kernel: Arc::new(Where3 {
                    cond: c.kernel,
                    a: x.kernel,
                    b: y.kernel,
                }) as Arc<dyn Kernel<T>>,
            })
            .collect();
        Array::from_blocks(cluster, out, blocks, "where").with_fan_in(cond.fan_in())
    }
}

fn cmp_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "eq",
        CmpOp::Ne => "ne",
        CmpOp::Lt => "lt",
        CmpOp::Le => "le",
        CmpOp::Gt => "gt",
        CmpOp::Ge => "ge",
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Rem => "rem",
        BinaryOp::Pow => "pow",
        BinaryOp::Max => "maximum",
        BinaryOp::Min => "minimum",
    }
}

/// `a op b` for two operands, fused.
pub(crate) fn binary<T: Numeric>(
    cluster: &Cluster,
    a: &Operand<T>,
    b: &Operand<T>,
    op: BinaryOp,
) -> Array<T> {
    let f = binary_fn::<T>(op);
    zip_with(cluster, a, b, binary_name(op), move |a, b| {
        Arc::new(super::kernels::Binary { a, b, op, f })
    })
}

impl<T: Numeric> Array<T> {
    /// `self op other`, elementwise, with an array or a scalar.
    pub fn binary(&self, op: BinaryOp, other: impl Into<Operand<T>>) -> Array<T> {
        binary(self.cluster(), &Operand::from(self), &other.into(), op)
    }

    /// `self ^ other`, elementwise (`np.power`).
    pub fn pow(&self, other: impl Into<Operand<T>>) -> Array<T> {
        self.binary(BinaryOp::Pow, other)
    }

    /// The larger of `self` and `other`, elementwise; NaN if either is (`np.maximum`).
    pub fn maximum(&self, other: impl Into<Operand<T>>) -> Array<T> {
        self.binary(BinaryOp::Max, other)
    }

    /// The smaller of `self` and `other`, elementwise; NaN if either is (`np.minimum`).
    pub fn minimum(&self, other: impl Into<Operand<T>>) -> Array<T> {
        self.binary(BinaryOp::Min, other)
    }

    /// Every element limited to `lo..=hi` (`np.clip`).
    pub fn clip(&self, lo: T, hi: T) -> Array<T> {
        self.map_kernel("clip", move |k| {
            Arc::new(MapInPlace {
                child: k,
                f: Arc::new(move |xs: &mut [T]| {
                    for x in xs {
                        if *x < lo {
                            *x = lo;
                        } else if *x > hi {
                            *x = hi;
                        }
                    }
                }),
                op: InPlaceOp::Other,
            })
        })
    }

    /// The absolute value, elementwise.
    pub fn abs(&self) -> Array<T> {
        self.map_kernel("abs", |k| {
            Arc::new(MapInPlace {
                child: k,
                f: Arc::new(|xs: &mut [T]| xs.iter_mut().for_each(|x| *x = T::num_abs(*x))),
                op: InPlaceOp::Abs,
            })
        })
    }
}

macro_rules! float_unary {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl<T: Float> Array<T> {
            /// Applies a [`UnaryOp`] elementwise (fused).
            pub fn unary(&self, op: UnaryOp) -> Array<T> {
                self.map_kernel(unary_name(op), move |k| {
                    Arc::new(MapInPlace { child: k, f: Arc::new(move |xs: &mut [T]| apply_unary(op, xs)), op: InPlaceOp::Unary(op) })
                })
            }
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Array<T> {
                    self.unary($op)
                }
            )*
            /// `x^n` for an integer `n`, elementwise.
            pub fn powi(&self, n: i32) -> Array<T> {
                self.unary(UnaryOp::Powi(n))
            }
            /// `x^p` for a float `p`, elementwise.
            pub fn powf(&self, p: f64) -> Array<T> {
                self.unary(UnaryOp::Powf(p))
            }
            /// True where the element is NaN.
            pub fn is_nan(&self) -> Array<bool> {
                self.map(|x| num_traits::Float::is_nan(x))
            }
            /// True where the element is neither infinite nor NaN.
            pub fn is_finite(&self) -> Array<bool> {
                self.map(|x| x.is_finite())
            }
        }
    };
}

float_unary! {
    /// `e^x`, elementwise.
    exp => UnaryOp::Exp;
    /// `e^x - 1`, elementwise.
    exp_m1 => UnaryOp::ExpM1;
    /// The natural logarithm, elementwise (`np.log`).
    ln => UnaryOp::Ln;
    /// `ln(1 + x)`, elementwise.
    ln_1p => UnaryOp::Ln1p;
    /// The base-2 logarithm, elementwise.
    log2 => UnaryOp::Log2;
    /// The base-10 logarithm, elementwise.
    log10 => UnaryOp::Log10;
    /// The square root, elementwise.
    sqrt => UnaryOp::Sqrt;
    /// The cube root, elementwise.
    cbrt => UnaryOp::Cbrt;
    /// The sine, elementwise.
    sin => UnaryOp::Sin;
    /// The cosine, elementwise.
    cos => UnaryOp::Cos;
    /// The tangent, elementwise.
    tan => UnaryOp::Tan;
    /// The hyperbolic tangent, elementwise.
    tanh => UnaryOp::Tanh;
    /// The arc sine, elementwise.
    asin => UnaryOp::Asin;
    /// The arc cosine, elementwise.
    acos => UnaryOp::Acos;
    /// The arc tangent, elementwise.
    atan => UnaryOp::Atan;
    /// Rounds down, elementwise.
    floor => UnaryOp::Floor;
    /// Rounds up, elementwise.
    ceil => UnaryOp::Ceil;
    /// Rounds to the nearest integer (halves away from zero), elementwise.
    round => UnaryOp::Round;
    /// `1 / x`, elementwise.
    recip => UnaryOp::Recip;
}

fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Exp => "exp",
        UnaryOp::Ln => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Powi(_) | UnaryOp::Powf(_) => "pow",
        _ => "unary",
    }
}

impl Array<bool> {
    /// Elementwise logic with another `bool` array or a `bool`.
    pub fn logic(&self, op: LogicOp, other: impl Into<Operand<bool>>) -> Array<bool> {
        let f = logic_fn(op);
        zip_with(
            self.cluster(),
            &Operand::from(self),
            &other.into(),
            "logic",
            move |a, b| {
                Arc::new(Zip2 {
                    a,
                    b,
                    f: Arc::new(move |x: &[bool], y: &[bool], o: &mut [bool]| {
                        o.copy_from_slice(x);
                        f(o, y);
                    }),
                })
            },
        )
    }
}

macro_rules! ops {
    ($($trait:ident $method:ident $op:expr;)*) => {$(
        impl<T: Numeric> $trait<&Array<T>> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: &Array<T>) -> Array<T> {
                binary(self.cluster(), &Operand::from(self), &Operand::from(rhs), $op)
            }
        }
        impl<T: Numeric> $trait<Array<T>> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: Array<T>) -> Array<T> {
                let c = self.cluster().clone();
                binary(&c, &Operand::Array(self), &Operand::Array(rhs), $op)
            }
        }
        impl<T: Numeric> $trait<&Array<T>> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: &Array<T>) -> Array<T> {
                binary(rhs.cluster(), &Operand::Array(self), &Operand::from(rhs), $op)
            }
        }
        impl<T: Numeric> $trait<Array<T>> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: Array<T>) -> Array<T> {
                binary(self.cluster(), &Operand::from(self), &Operand::Array(rhs), $op)
            }
        }
        impl<T: Numeric> $trait<T> for &Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                binary(self.cluster(), &Operand::from(self), &Operand::Scalar(rhs), $op)
            }
        }
        impl<T: Numeric> $trait<T> for Array<T> {
            type Output = Array<T>;
            fn $method(self, rhs: T) -> Array<T> {
                let c = self.cluster().clone();
                binary(&c, &Operand::Array(self), &Operand::Scalar(rhs), $op)
            }
        }
        scalar_lhs!($trait $method $op; f32 f64 i32 i64 u8);
    )*};
}

macro_rules! scalar_lhs {
    ($trait:ident $method:ident $op:expr; $($t:ty)*) => {$(
        impl $trait<&Array<$t>> for $t {
            type Output = Array<$t>;
            fn $method(self, rhs: &Array<$t>) -> Array<$t> {
                binary(rhs.cluster(), &Operand::Scalar(self), &Operand::from(rhs), $op)
            }
        }
        impl $trait<Array<$t>> for $t {
            type Output = Array<$t>;
            fn $method(self, rhs: Array<$t>) -> Array<$t> {
                let c = rhs.cluster().clone();
                binary(&c, &Operand::Scalar(self), &Operand::Array(rhs), $op)
            }
        }
    )*};
}

ops! {
    Add add BinaryOp::Add;
    Sub sub BinaryOp::Sub;
    Mul mul BinaryOp::Mul;
    Div div BinaryOp::Div;
    Rem rem BinaryOp::Rem;
}

impl<T: Numeric> Neg for &Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        self.map_kernel("neg", |k| {
            Arc::new(MapInPlace {
                child: k,
                f: Arc::new(|xs: &mut [T]| xs.iter_mut().for_each(|x| *x = T::num_neg(*x))),
                op: InPlaceOp::Neg,
            })
        })
    }
}
impl<T: Numeric> Neg for Array<T> {
    type Output = Array<T>;
    fn neg(self) -> Array<T> {
        -&self
    }
}

impl Not for &Array<bool> {
    type Output = Array<bool>;
    fn not(self) -> Array<bool> {
        self.map_kernel("not", |k| {
            Arc::new(MapInPlace {
                child: k,
                f: Arc::new(|xs: &mut [bool]| xs.iter_mut().for_each(|x| *x = !*x)),
                op: InPlaceOp::Other,
            })
        })
    }
}
impl Not for Array<bool> {
    type Output = Array<bool>;
    fn not(self) -> Array<bool> {
        !&self
    }
}

macro_rules! logic_ops {
    ($($trait:ident $method:ident $op:expr;)*) => {$(
        impl $trait<&Array<bool>> for &Array<bool> {
            type Output = Array<bool>;
            fn $method(self, rhs: &Array<bool>) -> Array<bool> {
                self.logic($op, rhs)
            }
        }
        impl $trait<Array<bool>> for Array<bool> {
            type Output = Array<bool>;
            fn $method(self, rhs: Array<bool>) -> Array<bool> {
                self.logic($op, rhs)
            }
        }
    )*};
}

logic_ops! {
    BitAnd bitand LogicOp::And;
    BitOr bitor LogicOp::Or;
    BitXor bitxor LogicOp::Xor;
}
