//! Kernels from expressions: a chain of elementwise operations becomes ONE CUDA kernel.
//!
//! An [`Expr`] describes, per element, what to compute from numbered inputs:
//! `(x0 - 3.0) * exp(x1)` is `(Expr::input(0) - 3.0.into()) * Expr::input(1).exp()`. The GPU
//! worker turns it into CUDA C++ source ([`elementwise_source`], [`reduce_source`]), compiles
//! that once per device with NVRTC, and runs it in one pass over memory: no temporary array per
//! operation. A reduction fuses its expression too: the variance's `sum((x - mean)^2)` reads `x`
//! once.
//!
//! Source generation and [`Expr::eval`] (the same arithmetic on one element, on the CPU) need
//! no GPU, so they are tested everywhere; the GPU tests compare the two.

use std::fmt::Write as _;

/// A per-element expression over inputs `x0, x1, ...` (all of one float type).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The `i`-th input's element.
    Input(usize),
    /// A constant.
    Const(f64),
    /// A function of one expression.
    Unary(Unary, Box<Expr>),
    /// A function of two expressions.
    Binary(Binary, Box<Expr>, Box<Expr>),
}

/// Functions of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Unary {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tanh,
}

/// Functions of two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// The smaller value; NaN if either is NaN (like NumPy's `minimum`).
    Min,
    /// The larger value; NaN if either is NaN (like NumPy's `maximum`).
    Max,
}

/// How a reduction combines elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduce {
    /// The sum (accumulated in f64).
    Sum,
    /// The smallest element; NaN if any is NaN.
    Min,
    /// The largest element; NaN if any is NaN.
    Max,
}

impl Expr {
    /// The `i`-th input.
    pub fn input(i: usize) -> Expr {
        Expr::Input(i)
    }
    fn unary(self, op: Unary) -> Expr {
        Expr::Unary(op, Box::new(self))
    }
    fn binary(self, op: Binary, other: Expr) -> Expr {
        Expr::Binary(op, Box::new(self), Box::new(other))
    }
    /// `|self|`.
    pub fn abs(self) -> Expr {
        self.unary(Unary::Abs)
    }
    /// `sqrt(self)`.
    pub fn sqrt(self) -> Expr {
        self.unary(Unary::Sqrt)
    }
    /// `e^self`.
    pub fn exp(self) -> Expr {
        self.unary(Unary::Exp)
    }
    /// The natural logarithm.
    pub fn ln(self) -> Expr {
        self.unary(Unary::Log)
    }
    /// `sin(self)`.
    pub fn sin(self) -> Expr {
        self.unary(Unary::Sin)
    }
    /// `cos(self)`.
    pub fn cos(self) -> Expr {
        self.unary(Unary::Cos)
    }
    /// `tanh(self)`.
    pub fn tanh(self) -> Expr {
        self.unary(Unary::Tanh)
    }
    /// `self^e`.
    pub fn pow(self, e: impl Into<Expr>) -> Expr {
        self.binary(Binary::Pow, e.into())
    }
    /// The elementwise minimum.
    pub fn min(self, other: impl Into<Expr>) -> Expr {
        self.binary(Binary::Min, other.into())
    }
    /// The elementwise maximum.
    pub fn max(self, other: impl Into<Expr>) -> Expr {
        self.binary(Binary::Max, other.into())
    }

    /// How many inputs the expression reads (one more than the largest input index).
    pub fn arity(&self) -> usize {
        match self {
            Expr::Input(i) => i + 1,
            Expr::Const(_) => 0,
            Expr::Unary(_, a) => a.arity(),
            Expr::Binary(_, a, b) => a.arity().max(b.arity()),
        }
    }

    /// The expression on one element, in f64 on the CPU: the reference the kernels are tested
    /// against.
    pub fn eval(&self, x: &[f64]) -> f64 {
        match self {
            Expr::Input(i) => x.get(*i).copied().unwrap_or(f64::NAN),
            Expr::Const(c) => *c,
            Expr::Unary(op, a) => {
                let a = a.eval(x);
                match op {
                    Unary::Neg => -a,
                    Unary::Abs => a.abs(),
                    Unary::Sqrt => a.sqrt(),
                    Unary::Exp => a.exp(),
                    Unary::Log => a.ln(),
                    Unary::Sin => a.sin(),
                    Unary::Cos => a.cos(),
                    Unary::Tanh => a.tanh(),
                }
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(x), b.eval(x));
                match op {
                    Binary::Add => a + b,
                    Binary::Sub => a - b,
                    Binary::Mul => a * b,
                    Binary::Div => a / b,
                    Binary::Pow => a.powf(b),
                    Binary::Min if a.is_nan() || b.is_nan() => f64::NAN,
                    Binary::Max if a.is_nan() || b.is_nan() => f64::NAN,
                    Binary::Min => a.min(b),
                    Binary::Max => a.max(b),
                }
            }
        }
    }

    /// The expression in CUDA C++, for element type `t` (`float` or `double`).
    fn cuda(&self, t: &str, out: &mut String) {
        match self {
            Expr::Input(i) => {
                let _ = write!(out, "x{i}");
            }
            Expr::Const(c) if c.is_nan() => {
                let _ = write!(out, "(({t})__longlong_as_double(0x7ff8000000000000ULL))");
            }
            Expr::Const(c) if c.is_infinite() => {
                let sign = if *c < 0.0 { "-" } else { "" };
                let _ = write!(
                    out,
                    "(({t})({sign}__longlong_as_double(0x7ff0000000000000ULL)))"
                );
            }
            Expr::Const(c) => {
                let _ = write!(out, "(({t}){c:?})");
            }
            Expr::Unary(op, a) => {
                let f = match op {
                    Unary::Neg => "-",
                    Unary::Abs => "fabs",
                    Unary::Sqrt => "sqrt",
                    Unary::Exp => "exp",
                    Unary::Log => "log",
                    Unary::Sin => "sin",
                    Unary::Cos => "cos",
                    Unary::Tanh => "tanh",
                };
                out.push_str(f);
                out.push('(');
                a.cuda(t, out);
                out.push(')');
            }
            Expr::Binary(op, a, b) => {
                let (pre, mid) = match op {
                    Binary::Add => ("(", " + "),
                    Binary::Sub => ("(", " - "),
                    Binary::Mul => ("(", " * "),
                    Binary::Div => ("(", " / "),
                    Binary::Pow => ("pow(", ", "),
                    Binary::Min => ("nan_min(", ", "),
                    Binary::Max => ("nan_max(", ", "),
                };
                out.push_str(pre);
                a.cuda(t, out);
                out.push_str(mid);
                b.cuda(t, out);
                out.push(')');
            }
        }
    }
}

impl From<f64> for Expr {
    fn from(c: f64) -> Expr {
        Expr::Const(c)
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<R: Into<Expr>> std::ops::$trait<R> for Expr {
            type Output = Expr;
            fn $method(self, rhs: R) -> Expr {
                self.binary(Binary::$op, rhs.into())
            }
        }
    };
}
binary_operator!(Add, add, Add);
binary_operator!(Sub, sub, Sub);
binary_operator!(Mul, mul, Mul);
binary_operator!(Div, div, Div);

impl std::ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        self.unary(Unary::Neg)
    }
}

/// Helpers every generated kernel may use: NaN-propagating min and max.
const PRELUDE: &str = r#"
template <typename T> __device__ __forceinline__ T nan_min(T a, T b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }
template <typename T> __device__ __forceinline__ T nan_max(T a, T b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }
"#;

/// A stable name for a kernel source (FNV-1a), so a compiled kernel can be found again.
fn kernel_name(prefix: &str, body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{prefix}_{hash:016x}")
}

/// The parameter list `const T* __restrict__ in0, ...` and the loads `const T x0 = in0[i];`.
fn inputs(t: &str, arity: usize) -> (String, String) {
    let params = (0..arity)
        .map(|i| format!(", const {t}* __restrict__ in{i}"))
        .collect();
    let loads = (0..arity)
        .map(|i| format!("    const {t} x{i} = in{i}[i];\n"))
        .collect();
    (params, loads)
}

/// A kernel `name(u64 n, T* out, const T* in0..)` writing `out[i] = expr(in0[i], ..)`: a
/// grid-stride loop in which each thread handles four independent elements per step, to keep
/// enough loads in flight. Returns the kernel's name and its source.
pub fn elementwise_source(expr: &Expr, t: &str) -> (String, String) {
    let mut e = String::new();
    expr.cuda(t, &mut e);
    let (params, loads) = inputs(t, expr.arity());
    let body = format!(
        "(const unsigned long long n, {t}* __restrict__ out{params}) {{\n\
         auto value = [&](unsigned long long i) {{\n{loads}    return ({t})({e});\n  }};\n\
         const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;\n\
         unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;\n\
         for (; i + 3 * stride < n; i += 4 * stride) {{\n\
           const {t} v0 = value(i), v1 = value(i + stride), v2 = value(i + 2 * stride), v3 = value(i + 3 * stride);\n\
           out[i] = v0; out[i + stride] = v1; out[i + 2 * stride] = v2; out[i + 3 * stride] = v3;\n\
         }}\n\
         for (; i < n; i += stride) out[i] = value(i);\n}}\n"
    );
    let name = kernel_name("onebox_map", &body);
    (
        name.clone(),
        format!("{PRELUDE}extern \"C\" __global__ void {name}{body}"),
    )
}

/// A kernel `name(u64 n, double* partial, const T* in0..)` that reduces `expr` over all
/// elements with `op`, leaving one partial result per block (accumulated in double); the host
/// combines the partials in block order, so the result does not depend on timing. Each thread
/// reads four elements per step, independently, to keep enough loads in flight.
pub fn reduce_source(expr: &Expr, op: Reduce, t: &str) -> (String, String) {
    let mut e = String::new();
    expr.cuda(t, &mut e);
    let (params, loads) = inputs(t, expr.arity());
    let (identity, combine) = match op {
        Reduce::Sum => ("0.0", "a + b"),
        Reduce::Min => (
            "__longlong_as_double(0x7ff0000000000000ULL)",
            "nan_min(a, b)",
        ),
        Reduce::Max => (
            "-__longlong_as_double(0x7ff0000000000000ULL)",
            "nan_max(a, b)",
        ),
    };
    let body = format!(
        "(const unsigned long long n, double* __restrict__ partial{params}) {{\n\
         auto combine = [](double a, double b) {{ return {combine}; }};\n\
         auto value = [&](unsigned long long i) {{\n{loads}    return (double)({e});\n  }};\n\
         const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;\n\
         unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;\n\
         double acc = {identity};\n\
         for (; i + 3 * stride < n; i += 4 * stride) {{\n\
           const double v0 = value(i), v1 = value(i + stride), v2 = value(i + 2 * stride), v3 = value(i + 3 * stride);\n\
           acc = combine(acc, combine(combine(v0, v1), combine(v2, v3)));\n\
         }}\n\
         for (; i < n; i += stride) acc = combine(acc, value(i));\n\
         for (int off = 16; off > 0; off >>= 1) acc = combine(acc, __shfl_down_sync(0xffffffffu, acc, off));\n\
         __shared__ double warp_acc[32];\n\
         const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;\n\
         if (lane == 0) warp_acc[warp] = acc;\n\
         __syncthreads();\n\
         if (warp == 0) {{\n\
           acc = lane < (int)(blockDim.x >> 5) ? warp_acc[lane] : {identity};\n\
           for (int off = 16; off > 0; off >>= 1) acc = combine(acc, __shfl_down_sync(0xffffffffu, acc, off));\n\
           if (lane == 0) partial[blockIdx.x] = acc;\n\
         }}\n}}\n"
    );
    let name = kernel_name("onebox_reduce", &body);
    (
        name.clone(),
        format!("{PRELUDE}extern \"C\" __global__ void {name}{body}"),
    )
}

/// Combines a reduction's per-block partials on the host, in block order.
pub fn combine_partials(op: Reduce, partials: &[f64]) -> f64 {
    let nan_aware = |f: fn(f64, f64) -> f64| {
        move |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                f(a, b)
            }
        }
    };
    match op {
        Reduce::Sum => partials.iter().sum(),
        Reduce::Min => partials
            .iter()
            .copied()
            .fold(f64::INFINITY, nan_aware(f64::min)),
        Reduce::Max => partials
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, nan_aware(f64::max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standardise() -> Expr {
        (Expr::input(0) - Expr::input(1)) / Expr::input(2).sqrt()
    }

    #[test]
    fn eval_is_plain_arithmetic() {
        assert_eq!(standardise().eval(&[5.0, 1.0, 4.0]), 2.0);
        assert_eq!((-Expr::input(0)).abs().eval(&[-3.0]), 3.0);
        assert!(Expr::input(0).min(1.0).eval(&[f64::NAN]).is_nan());
        assert_eq!(Expr::input(0).max(Expr::input(1)).eval(&[2.0, 7.0]), 7.0);
        assert_eq!(Expr::input(0).pow(2.0).eval(&[3.0]), 9.0);
    }

    #[test]
    fn arity_counts_inputs() {
        assert_eq!(standardise().arity(), 3);
        assert_eq!(Expr::Const(1.0).arity(), 0);
    }

    #[test]
    fn elementwise_source_is_one_fused_kernel() {
        let (name, src) = elementwise_source(&standardise(), "float");
        assert!(src.contains(&format!("__global__ void {name}(")));
        assert!(
            src.contains("return (float)(((x0 - x1) / sqrt(x2)));"),
            "{src}"
        );
        for i in 0..3 {
            assert!(src.contains(&format!("const float* __restrict__ in{i}")));
        }
        assert_eq!(
            src.matches("return (float)").count(),
            1,
            "one expression, evaluated in one pass"
        );
        // the same expression gives the same kernel; another type another one
        assert_eq!(elementwise_source(&standardise(), "float").0, name);
        assert_ne!(elementwise_source(&standardise(), "double").0, name);
    }

    #[test]
    fn constants_keep_full_precision_and_special_values() {
        let (_, src) = elementwise_source(&(Expr::input(0) * 0.1), "double");
        assert!(src.contains("((double)0.1)"), "{src}");
        let (_, src) = elementwise_source(&(Expr::input(0) + f64::NAN), "double");
        assert!(src.contains("0x7ff8000000000000ULL"));
        let (_, src) = elementwise_source(&Expr::input(0).max(f64::NEG_INFINITY), "float");
        assert!(src.contains("-__longlong_as_double(0x7ff0000000000000ULL)"));
    }

    #[test]
    fn reductions_combine_partials_like_the_kernel() {
        let (name, src) = reduce_source(&(Expr::input(0) - 2.0).pow(2.0), Reduce::Sum, "float");
        assert!(
            src.contains(&name)
                && src.contains("__shfl_down_sync")
                && src.contains("partial[blockIdx.x]")
        );
        assert_eq!(combine_partials(Reduce::Sum, &[1.0, 2.5]), 3.5);
        assert_eq!(combine_partials(Reduce::Min, &[3.0, -1.0]), -1.0);
        assert!(combine_partials(Reduce::Max, &[3.0, f64::NAN]).is_nan());
        assert_eq!(combine_partials(Reduce::Max, &[]), f64::NEG_INFINITY);
    }
}
