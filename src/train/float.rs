//! The two floating-point types a model's parameters may use.

use std::fmt::{Debug, Display};
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// `f32` or `f64`: the element type of parameters, gradients, optimizer state and features.
///
/// The trait is sealed; it exists so that the trainer, the optimizers and the reference models
/// are written once for both widths.
pub trait Float:
    sealed::Sealed
    + Copy
    + Default
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// The size in bytes (4 or 8), as written in checkpoints.
    const BYTES: usize;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// The nearest value to `x`.
    fn from_f64(x: f64) -> Self;
    /// The value as an `f64` (exact).
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Parses a decimal number.
    fn parse_text(text: &str) -> Option<Self>;
    /// Appends the little-endian bytes of the value.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads a value from its `BYTES` little-endian bytes.
    fn read_le(bytes: &[u8]) -> Option<Self>;

    /// `C = alpha * A B + beta * C` for row-major or strided matrices (`A` is `m x k`, `B` is
    /// `k x n`, `C` is `m x n`; `rs*`/`cs*` are row and column strides), single-threaded, with
    /// the `matrixmultiply` kernels.
    ///
    /// # Panics
    ///
    /// When a stride pattern reaches past the end of its slice.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (&[Self], isize, isize),
        b: (&[Self], isize, isize),
        beta: Self,
        c: (&mut [Self], isize, isize),
    );
}

/// Checks that a `rows x cols` matrix with strides `rs`, `cs` (non-negative) fits in `len`.
fn fits(rows: usize, cols: usize, rs: isize, cs: isize, len: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    if rs < 0 || cs < 0 {
        return false;
    }
    let last = (rows - 1).checked_mul(rs as usize).and_then(|r| {
        (cols - 1)
            .checked_mul(cs as usize)
            .and_then(|c| r.checked_add(c))
    });
    matches!(last, Some(l) if l < len)
}

macro_rules! impl_float {
    ($t:ty, $bytes:expr, $gemm:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const BYTES: usize = $bytes;
            const NAME: &'static str = stringify!($t);

            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn parse_text(text: &str) -> Option<Self> {
                text.trim().parse::<$t>().ok()
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(bytes.try_into().ok()?))
            }

            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: (&[Self], isize, isize),
                b: (&[Self], isize, isize),
                beta: Self,
                c: (&mut [Self], isize, isize),
            ) {
                assert!(
                    fits(m, k, a.1, a.2, a.0.len())
                        && fits(k, n, b.1, b.2, b.0.len())
                        && fits(m, n, c.1, c.2, c.0.len()),
                    "gemm: a matrix does not fit in its slice"
                );
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the assertion above checked that every element the kernel reads
                // (A, B) or writes (C) lies inside its slice; `c` is borrowed mutably, so it
                // does not alias `a` or `b`.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        alpha,
                        a.0.as_ptr(),
                        a.1,
                        a.2,
                        b.0.as_ptr(),
                        b.1,
                        b.2,
                        beta,
                        c.0.as_mut_ptr(),
                        c.1,
                        c.2,
                    );
                }
            }
        }
    };
}

impl_float!(f32, 4, matrixmultiply::sgemm);
impl_float!(f64, 8, matrixmultiply::dgemm);
