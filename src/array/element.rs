//! The element types an [`Array`](super::Array) can hold, and what each kind supports.
//!
//! Three traits, each adding to the one before:
//!
//! - [`Element`]: anything an array can hold and write to `.npy` (`f32`, `f64`, `i32`, `i64`,
//!   `u8`, `bool`): creation, structure, comparisons, `where`.
//! - [`Numeric`]: the numbers: arithmetic, `sum`, `prod`, `min`, `max`, `cumsum`, `matmul`.
//!   Integer arithmetic wraps on overflow and integer division by zero gives 0 (as NumPy's
//!   integer operations do, without the warning); integer division truncates (as Rust's `/`).
//! - [`Float`]: `f32` and `f64`: `exp`, `log`, `sqrt`, ..., `mean`, `var`, `std` and the
//!   NaN-ignoring reductions.

use std::fmt::Debug;

use ndarray_npy::{ReadableElement, WritableElement};

mod sealed {
    pub trait Sealed {}
}

/// A type an [`Array`](super::Array) can hold.
pub trait Element:
    Copy
    + Default
    + Send
    + Sync
    + PartialEq
    + PartialOrd
    + Debug
    + 'static
    + ReadableElement
    + WritableElement
    + sealed::Sealed
{
    /// NumPy's name for this type (`"float64"`, `"bool"`, ...).
    const DTYPE: &'static str;
    /// True for a floating-point NaN; false for every other value and type.
    fn is_nan_value(self) -> bool {
        false
    }
}

/// A numeric element: arithmetic and the reductions that add or compare.
pub trait Numeric:
    Element
    + num_traits::Zero
    + num_traits::One
    + num_traits::NumCast
    + num_traits::ToPrimitive
    + ndarray::LinalgScalar
{
    /// `a + b` (wrapping for integers).
    fn num_add(a: Self, b: Self) -> Self;
    /// `a - b` (wrapping for integers).
    fn num_sub(a: Self, b: Self) -> Self;
    /// `a * b` (wrapping for integers).
    fn num_mul(a: Self, b: Self) -> Self;
    /// `a / b` (truncating for integers, 0 when `b` is 0).
    fn num_div(a: Self, b: Self) -> Self;
    /// `a % b` (0 for integers when `b` is 0).
    fn num_rem(a: Self, b: Self) -> Self;
    /// `a` raised to the power `b` (integers: `b` below 0 gives 0, as repeated division).
    fn num_pow(a: Self, b: Self) -> Self;
    /// The absolute value (unsigned types: the value itself).
    fn num_abs(a: Self) -> Self;
    /// `-a` (wrapping for integers; unsigned types wrap around).
    fn num_neg(a: Self) -> Self;
}

/// A floating-point element (`f32`, `f64`).
pub trait Float: Numeric + num_traits::Float {}

macro_rules! float {
    ($t:ty, $name:literal) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: &'static str = $name;
            fn is_nan_value(self) -> bool {
                <$t>::is_nan(self)
            }
        }
        impl Numeric for $t {
            fn num_add(a: Self, b: Self) -> Self {
                a + b
            }
            fn num_sub(a: Self, b: Self) -> Self {
                a - b
            }
            fn num_mul(a: Self, b: Self) -> Self {
                a * b
            }
            fn num_div(a: Self, b: Self) -> Self {
                a / b
            }
            fn num_rem(a: Self, b: Self) -> Self {
                a % b
            }
            fn num_pow(a: Self, b: Self) -> Self {
                a.powf(b)
            }
            fn num_abs(a: Self) -> Self {
                a.abs()
            }
            fn num_neg(a: Self) -> Self {
                -a
            }
        }
        impl Float for $t {}
    };
}
float!(f32, "float32");
float!(f64, "float64");

macro_rules! int {
    ($t:ty, $name:literal, $abs:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: &'static str = $name;
        }
        impl Numeric for $t {
            fn num_add(a: Self, b: Self) -> Self {
                a.wrapping_add(b)
            }
            fn num_sub(a: Self, b: Self) -> Self {
                a.wrapping_sub(b)
            }
            fn num_mul(a: Self, b: Self) -> Self {
                a.wrapping_mul(b)
            }
            fn num_div(a: Self, b: Self) -> Self {
                a.checked_div(b).unwrap_or(0)
            }
            fn num_rem(a: Self, b: Self) -> Self {
                a.checked_rem(b).unwrap_or(0)
            }
            fn num_pow(a: Self, b: Self) -> Self {
                match u32::try_from(b) {
                    Ok(e) => a.wrapping_pow(e),
                    Err(_) if a == 1 => 1,
                    Err(_) => 0,
                }
            }
            fn num_abs(a: Self) -> Self {
                let f: fn(Self) -> Self = $abs;
                f(a)
            }
            fn num_neg(a: Self) -> Self {
                a.wrapping_neg()
            }
        }
    };
}
int!(i32, "int32", |a: i32| a.wrapping_abs());
int!(i64, "int64", |a: i64| a.wrapping_abs());
int!(u8, "uint8", |a: u8| a);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: &'static str = "bool";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_arithmetic_is_total() {
        assert_eq!(<i32 as Numeric>::num_div(7, 0), 0);
        assert_eq!(<i32 as Numeric>::num_div(-7, 2), -3);
        assert_eq!(<u8 as Numeric>::num_add(250, 10), 4);
        assert_eq!(<i64 as Numeric>::num_pow(2, 10), 1024);
        assert_eq!(<i64 as Numeric>::num_pow(2, -1), 0);
        assert_eq!(<i32 as Numeric>::num_abs(i32::MIN), i32::MIN);
        assert!(
            f64::NAN.is_nan() && Element::is_nan_value(f64::NAN) && !Element::is_nan_value(1i32)
        );
    }
}
