//! Chunked arrays against the same computation done sequentially with ndarray.

use ndarray::{ArrayD, Axis, IxDyn, s};
use onebox::array::{Array, Chunks, Idx};
use onebox::diagnostics::Event;
use onebox::prelude::*;
use proptest::prelude::*;

mod common;

fn cluster() -> Cluster {
    common::cluster(2)
}

/// Deterministic, varied test values (some negative, some repeated).
fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let h = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h % 2001) as f64 / 100.0 - 10.0
        })
        .collect()
}

fn nd(shape: &[usize], seed: u64) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), values(shape.iter().product(), seed)).unwrap()
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, tol: f64) -> bool {
    a.shape() == b.shape()
        && a.iter().zip(b.iter()).all(|(x, y)| {
            (x.is_nan() && y.is_nan())
                || x == y
                || (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs()))
        })
}

fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>) {
    assert!(close(a, b, 1e-9), "\n left: {a:?}\nright: {b:?}");
}

/// A shape of rank 0..=3 with axes 0..=6 long, and chunk sizes 1..=7 per axis.
fn shape_and_chunks() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (0usize..=3).prop_flat_map(|rank| {
        (
            proptest::collection::vec(0usize..=6, rank),
            proptest::collection::vec(1usize..=7, rank),
        )
    })
}

/// ndarray reduction over several axes (descending, so indices stay valid).
fn nd_reduce(
    a: &ArrayD<f64>,
    axes: &[usize],
    f: impl Fn(ndarray::ArrayViewD<f64>) -> f64,
) -> ArrayD<f64> {
    let mut keep: Vec<usize> = (0..a.ndim()).filter(|k| !axes.contains(k)).collect();
    let mut perm = keep.clone();
    perm.extend(axes);
    let p = a.view().permuted_axes(perm);
    let kept_shape: Vec<usize> = keep.iter().map(|&k| a.shape()[k]).collect();
    let red: usize = axes.iter().map(|&k| a.shape()[k]).product();
    let p = p.as_standard_layout().into_owned();
    let flat = p
        .into_shape_with_order((kept_shape.iter().product::<usize>(), red))
        .unwrap();
    let out: Vec<f64> = flat.outer_iter().map(|row| f(row.into_dyn())).collect();
    keep.clear();
    ArrayD::from_shape_vec(IxDyn(&kept_shape), out).unwrap()
}

#[test]
fn creation_matches_ndarray() {
    let c = cluster();
    let a = nd(&[5, 7], 1);
    let x = Array::from_ndarray(&c, a.clone(), [2, 3]).unwrap();
    assert_eq!(x.chunks().axes(), &[vec![2, 2, 1], vec![3, 3, 1]]);
    assert_eq!(x.compute().unwrap(), a);
    // Fortran-order input
    let f = a.t().to_owned();
    let y = Array::from_ndarray(&c, f.clone(), [4, 4]).unwrap();
    assert_eq!(y.compute().unwrap(), f);
    assert_eq!(
        Array::<i32>::zeros(&c, [3, 4], [2, 2])
            .unwrap()
            .compute()
            .unwrap(),
        ArrayD::<i32>::zeros(IxDyn(&[3, 4]))
    );
    assert_eq!(
        Array::<u8>::ones(&c, [3], [2])
            .unwrap()
            .compute()
            .unwrap()
            .as_slice()
            .unwrap(),
        &[1, 1, 1]
    );
    assert_eq!(
        Array::full(&c, [2, 2], 5usize, true)
            .unwrap()
            .compute()
            .unwrap(),
        ArrayD::from_elem(IxDyn(&[2, 2]), true)
    );
    let r = Array::<i64>::arange(&c, 3, 20, 4, 2)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(r.as_slice().unwrap(), &[3, 7, 11, 15, 19]);
    let r = Array::<f64>::arange(&c, 0.0, 1.0, 0.25, 3)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(r.as_slice().unwrap(), &[0.0, 0.25, 0.5, 0.75]);
    let r = Array::<i32>::arange(&c, 5, 0, -2, 2)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(r.as_slice().unwrap(), &[5, 3, 1]);
    assert!(Array::<i32>::arange(&c, 0, 5, 0, 2).is_err());
    let l = Array::<f64>::linspace(&c, 0.0, 1.0, 11, 4)
        .unwrap()
        .compute()
        .unwrap();
    let expect = ndarray::Array1::linspace(0.0, 1.0, 11).into_dyn();
    assert_close(&l, &expect);
    assert_eq!(l[[10]], 1.0);
    let e = Array::<f32>::eye(&c, 5, [2, 3]).unwrap().compute().unwrap();
    assert_eq!(e, ndarray::Array2::<f32>::eye(5).into_dyn());
    let g = Array::from_fn(&c, [3, 4], [2, 3], |i| (i[0] * 10 + i[1]) as i64)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(
        g,
        ndarray::Array2::from_shape_fn((3, 4), |(i, j)| (i * 10 + j) as i64).into_dyn()
    );
    // 0-d and empty arrays
    let z = Array::<f64>::full(&c, [], [], 2.5).unwrap();
    assert_eq!(z.num_blocks(), 1);
    assert_eq!(z.scalar().unwrap(), 2.5);
    let e = Array::<f64>::zeros(&c, [0, 3], [2, 2]).unwrap();
    assert_eq!(e.compute().unwrap().shape(), &[0, 3]);
    assert_eq!(e.sum().unwrap().scalar().unwrap(), 0.0);
}

#[test]
fn random_numbers_do_not_depend_on_chunks_or_threads() {
    let c1 = common::cluster(1);
    let c2 = cluster();
    let a = Array::random_normal(&c1, [37, 23], [37, 23], 9)
        .unwrap()
        .compute()
        .unwrap();
    let b = Array::random_normal(&c2, [37, 23], [5, 4], 9)
        .unwrap()
        .compute()
        .unwrap();
    let d = Array::random_normal(
        &c2,
        [37, 23],
        Chunks::explicit(&[37, 23], vec![vec![1, 36], vec![20, 3]]).unwrap(),
        9,
    )
    .unwrap()
    .compute()
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a, d);
    let e = Array::random_normal(&c2, [37, 23], [5, 4], 10)
        .unwrap()
        .compute()
        .unwrap();
    assert_ne!(a, e);
    let u = Array::random_uniform(&c2, [20_000], [3_000], 1).unwrap();
    let uc = u.compute().unwrap();
    assert!(uc.iter().all(|&x| (0.0..1.0).contains(&x)));
    let m = u.mean().unwrap().scalar().unwrap();
    assert!((m - 0.5).abs() < 0.01, "{m}");
    let n = Array::random_normal(&c2, [200, 100], [64, 64], 3).unwrap();
    let (m, s) = (
        n.mean().unwrap().scalar().unwrap(),
        n.std().unwrap().scalar().unwrap(),
    );
    assert!(m.abs() < 0.03 && (s - 1.0).abs() < 0.03, "{m} {s}");
}

#[test]
fn npy_round_trip() {
    let c = cluster();
    let dir = std::env::temp_dir().join(format!("onebox-array-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = nd(&[6, 5, 3], 4);
    let x = Array::from_ndarray(&c, a.clone(), [4, 2, 2]).unwrap();
    let p = dir.join("x.npy");
    x.to_npy(&p).unwrap();
    assert_eq!(ndarray_npy::read_npy::<_, ArrayD<f64>>(&p).unwrap(), a);
    let y = Array::<f64>::from_npy(&c, &p, [3, 3, 3]).unwrap();
    assert_eq!(y.compute().unwrap(), a);
    // bool and a lazy expression, and a 0-d array
    let b = x.greater(0.0);
    b.to_npy(dir.join("b.npy")).unwrap();
    assert_eq!(
        Array::<bool>::from_npy(&c, dir.join("b.npy"), 2usize)
            .unwrap()
            .compute()
            .unwrap(),
        a.mapv(|v| v > 0.0)
    );
    x.sum().unwrap().to_npy(dir.join("s.npy")).unwrap();
    let s: ArrayD<f64> = ndarray_npy::read_npy(dir.join("s.npy")).unwrap();
    assert!((s[[]] - a.sum()).abs() < 1e-9);
    // wrong type and missing file
    let e = Array::<i32>::from_npy(&c, &p, 2usize)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.npy") && e.contains("int32"), "{e}");
    let e = Array::<f64>::from_npy(&c, dir.join("missing.npy"), 2usize).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // Fortran order, 0-d, empty, truncated
    let f = a.clone().reversed_axes();
    assert!(f.t().is_standard_layout());
    ndarray_npy::write_npy(dir.join("f.npy"), &f).unwrap();
    assert_eq!(
        Array::<f64>::from_npy(&c, dir.join("f.npy"), [2, 2, 2])
            .unwrap()
            .compute()
            .unwrap(),
        f
    );
    ndarray_npy::write_npy(dir.join("z.npy"), &ndarray::arr0(7i64)).unwrap();
    assert_eq!(
        Array::<i64>::from_npy(&c, dir.join("z.npy"), Vec::<usize>::new())
            .unwrap()
            .scalar()
            .unwrap(),
        7
    );
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 3]));
    ndarray_npy::write_npy(dir.join("e.npy"), &empty).unwrap();
    let e = Array::<f32>::from_npy(&c, dir.join("e.npy"), [2, 2]).unwrap();
    assert_eq!(e.compute().unwrap(), empty);
    Array::<f32>::zeros(&c, [0, 3], [1, 1])
        .unwrap()
        .to_npy(dir.join("e2.npy"))
        .unwrap();
    assert_eq!(
        ndarray_npy::read_npy::<_, ArrayD<f32>>(dir.join("e2.npy")).unwrap(),
        empty
    );
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(dir.join("cut.npy"), &bytes[..bytes.len() - 8]).unwrap();
    let e = Array::<f64>::from_npy(&c, dir.join("cut.npy"), 2usize)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.npy") && e.contains("bytes"), "{e}");
    std::fs::write(dir.join("junk.npy"), b"not numpy").unwrap();
    let e = Array::<f64>::from_npy(&c, dir.join("junk.npy"), 2usize)
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.npy") && e.contains("not a .npy"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn elementwise_chain_is_one_task_per_block() {
    let c = cluster();
    let events = c.events();
    let x = Array::random_normal(&c, [40, 30], [10, 10], 1).unwrap();
    let y = ((&x * 2.0 + 1.0).exp() - &x).sqrt().clip(0.0, 5.0);
    let r = y.compute().unwrap();
    let xs = x.compute().unwrap();
    assert_close(
        &r,
        &xs.mapv(|v| ((v * 2.0 + 1.0).exp() - v).sqrt().clamp(0.0, 5.0)),
    );
    let labels: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Task(t) => Some(t.key.group().to_string()),
            _ => None,
        })
        .collect();
    // the first compute: 12 block tasks and the join; the second: 12 more and its join
    let blocks: Vec<&String> = labels.iter().filter(|l| l.starts_with("array-")).collect();
    assert_eq!(blocks.len(), 24, "{labels:?}");
    assert!(labels.iter().any(|l| l == "array-clip[3,2]"), "{labels:?}");
}

#[test]
fn broadcasting_and_alignment() {
    let c = cluster();
    let a = nd(&[4, 5], 1);
    let row = nd(&[5], 2);
    let col = nd(&[4, 1], 3);
    let x = Array::from_ndarray(&c, a.clone(), [3, 2]).unwrap();
    let r = Array::from_ndarray(&c, row.clone(), [4]).unwrap();
    let k = Array::from_ndarray(&c, col.clone(), [1, 1]).unwrap();
    assert_close(&(&x - &r).compute().unwrap(), &(&a - &row));
    assert_close(&(&r * &x).compute().unwrap(), &(&row * &a));
    assert_close(&(&x / &k).compute().unwrap(), &(&a / &col));
    assert_close(&(&k + &r).compute().unwrap(), &(&col + &row));
    // mismatched chunkings of the same shape
    let y = Array::from_ndarray(&c, a.clone(), [1, 4]).unwrap();
    let z = &x + &y;
    assert_eq!(z.chunks(), x.chunks());
    assert_close(&z.compute().unwrap(), &(&a + &a));
    // scalars on the left
    assert_close(&(1.0 - &x).compute().unwrap(), &a.mapv(|v| 1.0 - v));
    assert_close(
        &(2.0 / x.abs().powf(0.5)).compute().unwrap(),
        &a.mapv(|v| 2.0 / v.abs().powf(0.5)),
    );
    // shapes that cannot broadcast
    let bad = Array::from_ndarray(&c, nd(&[3], 1), [2]).unwrap();
    let e = (&x + &bad).compute().unwrap_err().to_string();
    assert!(e.contains("(4, 5)") && e.contains("(3,)"), "{e}");
    let chained = (&x + &bad) * 2.0;
    assert!(chained.check().is_err());
    assert!(chained.sum().is_err());
}

#[test]
fn broadcast_rows_long_enough_to_read_in_place() {
    // Rows of 64 elements and more are read where they lie by the operation (lanes cut by
    // the 2048-element tiles mid-row); shorter ones are copied: both against ndarray.
    let c = cluster();
    let a = nd(&[37, 150], 11);
    let row = nd(&[150], 12);
    for (xc, rc) in [
        ([10, 100], 100),
        ([37, 150], 150),
        ([16, 70], 40),
        ([5, 150], 64),
    ] {
        let x = Array::from_ndarray(&c, a.clone(), xc).unwrap();
        let r = Array::from_ndarray(&c, row.clone(), [rc]).unwrap();
        assert_close(&(&x - &r).compute().unwrap(), &(&a - &row));
        assert_close(&(&x * &r).compute().unwrap(), &(&a * &row));
        assert_close(&((&x + 1.0) / &r).compute().unwrap(), &((&a + 1.0) / &row));
        let centred = &x - &x.mean_axis(&[0]).unwrap();
        let mean = a.mean_axis(Axis(0)).unwrap();
        assert_close(
            &centred.std_axis(&[0]).unwrap().compute().unwrap(),
            &(&a - &mean).std_axis(Axis(0), 0.0),
        );
    }
    // three axes, the row broadcast over two of them
    let b = nd(&[3, 7, 100], 13);
    let x = Array::from_ndarray(&c, b.clone(), [2, 7, 100]).unwrap();
    let r = Array::from_ndarray(&c, row.slice(s![..100]).to_owned().into_dyn(), [100]).unwrap();
    let expected = &b - &row.slice(s![..100]);
    assert_close(&(&x - &r).compute().unwrap(), &expected);
    assert_close(
        &(&x - &r).sum_axis(&[0, 1]).unwrap().compute().unwrap(),
        &expected.sum_axis(Axis(0)).sum_axis(Axis(0)),
    );
}

#[test]
fn comparisons_where_logic_and_integers() {
    let c = cluster();
    let a = nd(&[6, 4], 5);
    let x = Array::from_ndarray(&c, a.clone(), [4, 3]).unwrap();
    let pos = x.greater(0.0);
    assert_eq!(pos.compute().unwrap(), a.mapv(|v| v > 0.0));
    let w = Array::where_(&pos, &x, 0.0);
    assert_eq!(
        w.compute().unwrap(),
        a.mapv(|v| if v > 0.0 { v } else { 0.0 })
    );
    let both = &pos & &x.less(5.0);
    assert_eq!(both.compute().unwrap(), a.mapv(|v| v > 0.0 && v < 5.0));
    assert_eq!(
        (!&pos | x.equal(0.0)).compute().unwrap(),
        a.mapv(|v| v <= 0.0)
    );
    assert_eq!(
        pos.any().unwrap().scalar().unwrap(),
        a.iter().any(|&v| v > 0.0)
    );
    assert_eq!(
        pos.all_axis(&[1]).unwrap().compute().unwrap(),
        a.map_axis(Axis(1), |r| r.iter().all(|&v| v > 0.0))
    );
    let i = x.astype::<i64>();
    assert_eq!(i.compute().unwrap(), a.mapv(|v| v as i64));
    let q = (&i * 3 - 7) / 2 % 5;
    assert_eq!(q.compute().unwrap(), a.mapv(|v| (v as i64 * 3 - 7) / 2 % 5));
    assert_eq!((&i / 0).compute().unwrap(), a.mapv(|_| 0i64));
    let u = Array::<u8>::full(&c, [3], [2], 250).unwrap();
    assert_eq!((&u + 10).compute().unwrap().as_slice().unwrap(), &[4, 4, 4]);
    assert_eq!(
        x.maximum(1.0).minimum(3.0).compute().unwrap(),
        a.mapv(|v| v.clamp(1.0, 3.0))
    );
    let m = x.map(|v| v.round() as i32);
    assert_eq!(m.compute().unwrap(), a.mapv(|v| v.round() as i32));
    assert_eq!(
        x.ln().is_nan().compute().unwrap(),
        a.mapv(|v| v.ln().is_nan())
    );
}

#[test]
fn reductions_and_tree_fan_in() {
    let c = cluster();
    let a = nd(&[9, 8, 3], 6);
    let x = Array::from_ndarray(&c, a.clone(), [2, 3, 2])
        .unwrap()
        .with_fan_in(2);
    assert!((x.sum().unwrap().scalar().unwrap() - a.sum()).abs() < 1e-9);
    assert_close(
        &x.sum_axis(&[0, 2]).unwrap().compute().unwrap(),
        &a.sum_axis(Axis(2)).sum_axis(Axis(0)),
    );
    assert_close(
        &x.mean_axis(&[1]).unwrap().compute().unwrap(),
        &a.mean_axis(Axis(1)).unwrap(),
    );
    assert_close(
        &x.var_with(&[0], 1).unwrap().compute().unwrap(),
        &a.var_axis(Axis(0), 1.0),
    );
    assert_close(
        &x.std_axis(&[2]).unwrap().compute().unwrap(),
        &a.std_axis(Axis(2), 0.0),
    );
    assert_eq!(x.argmax().unwrap().scalar().unwrap() as usize, {
        let m = a.iter().cloned().fold(f64::MIN, f64::max);
        a.iter().position(|&v| v == m).unwrap()
    });
    // NaN handling
    let mut b = a.clone();
    b[[1, 1, 1]] = f64::NAN;
    b[[5, 0, 2]] = f64::NAN;
    let y = Array::from_ndarray(&c, b.clone(), [4, 4, 1]).unwrap();
    assert!(y.sum().unwrap().scalar().unwrap().is_nan());
    assert!(y.max().unwrap().scalar().unwrap().is_nan());
    assert_eq!(
        y.argmin().unwrap().scalar().unwrap(),
        (8 * 3 + 3 + 1) as i64
    );
    let finite: Vec<f64> = b.iter().cloned().filter(|v| !v.is_nan()).collect();
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    assert!((y.nanmean().unwrap().scalar().unwrap() - mean).abs() < 1e-9);
    assert!((y.nansum().unwrap().scalar().unwrap() - finite.iter().sum::<f64>()).abs() < 1e-9);
    let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    assert!((y.nanvar().unwrap().scalar().unwrap() - var).abs() < 1e-9);
    assert!((y.nanstd().unwrap().scalar().unwrap() - var.sqrt()).abs() < 1e-9);
    assert_eq!(
        y.nanmin().unwrap().scalar().unwrap(),
        finite.iter().cloned().fold(f64::MAX, f64::min)
    );
    assert_eq!(
        y.nanmax().unwrap().scalar().unwrap(),
        finite.iter().cloned().fold(f64::MIN, f64::max)
    );
    let fmin = finite.iter().cloned().fold(f64::MAX, f64::min);
    let fmax = finite.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(
        y.nanargmin().unwrap().scalar().unwrap() as usize,
        b.iter().position(|&v| v == fmin).unwrap()
    );
    assert_eq!(
        y.nanargmax().unwrap().scalar().unwrap() as usize,
        b.iter().position(|&v| v == fmax).unwrap()
    );
    let by_axis = b.map_axis(Axis(1), |l| {
        let m = l
            .iter()
            .cloned()
            .filter(|v| !v.is_nan())
            .fold(f64::MAX, f64::min);
        l.iter().position(|&v| v == m).unwrap() as i64
    });
    assert_eq!(y.nanargmin_axis(1).unwrap().compute().unwrap(), by_axis);
    assert_eq!(
        y.argmax().unwrap().scalar().unwrap(),
        (8 * 3 + 3 + 1) as i64
    );
    // all-NaN slice
    let all_nan = Array::<f64>::full(&c, [2, 2], [1, 1], f64::NAN).unwrap();
    assert!(all_nan.nanmean().unwrap().scalar().unwrap().is_nan());
    assert!(all_nan.nanmax().unwrap().scalar().unwrap().is_nan());
    let e = all_nan
        .nanargmin()
        .unwrap()
        .scalar()
        .unwrap_err()
        .to_string();
    assert!(e.contains("all-NaN"), "{e}");
    // integers
    let i = Array::<i64>::arange(&c, 1, 11, 1, 3).unwrap();
    assert_eq!(i.sum().unwrap().scalar().unwrap(), 55);
    assert_eq!(i.prod().unwrap().scalar().unwrap(), 3_628_800);
    assert_eq!(i.min().unwrap().scalar().unwrap(), 1);
    assert_eq!(i.argmax().unwrap().scalar().unwrap(), 9);
    // bad axes and empty reductions
    let e = x.sum_axis(&[3]).unwrap_err().to_string();
    assert!(e.contains("axis 3") && e.contains("(9, 8, 3)"), "{e}");
    assert!(x.sum_axis(&[1, 1]).is_err());
    let empty = Array::<f64>::zeros(&c, [0, 4], [2, 2]).unwrap();
    let e = empty.max().unwrap_err().to_string();
    assert!(e.contains("axis 0") && e.contains("empty"), "{e}");
    assert!(empty.mean().unwrap().scalar().unwrap().is_nan());
    assert_eq!(
        empty.sum_axis(&[0]).unwrap().compute().unwrap(),
        ArrayD::<f64>::zeros(IxDyn(&[4]))
    );
    assert_eq!(
        empty.sum_axis(&[1]).unwrap().compute().unwrap().shape(),
        &[0]
    );
}

#[test]
fn variance_is_stable_far_from_zero() {
    let c = cluster();
    // values 1e9 + small noise: E[x^2] - E[x]^2 would lose every digit
    let x = Array::random_uniform(&c, [100_000], [7_000], 5).unwrap() + 1e9;
    let v = x.var().unwrap().scalar().unwrap();
    assert!((v - 1.0 / 12.0).abs() < 2e-3, "{v}");
}

#[test]
fn linear_algebra() {
    let c = cluster();
    let a = nd(&[7, 5], 1);
    let b = nd(&[5, 6], 2);
    let x = Array::from_ndarray(&c, a.clone(), [3, 2]).unwrap();
    let y = Array::from_ndarray(&c, b.clone(), [3, 4]).unwrap();
    let a2 = a.clone().into_dimensionality::<ndarray::Ix2>().unwrap();
    let b2 = b.clone().into_dimensionality::<ndarray::Ix2>().unwrap();
    assert_close(
        &x.matmul(&y).unwrap().compute().unwrap(),
        &a2.dot(&b2).into_dyn(),
    );
    assert_close(&x.t().compute().unwrap(), &a2.t().to_owned().into_dyn());
    assert_close(
        &x.tensordot(&x, (0, 0)).unwrap().compute().unwrap(),
        &a2.t().dot(&a2).into_dyn(),
    );
    assert_close(
        &x.tensordot(&y, (1, 0)).unwrap().compute().unwrap(),
        &a2.dot(&b2).into_dyn(),
    );
    assert_close(
        &y.tensordot(&y, (1, 1)).unwrap().compute().unwrap(),
        &b2.dot(&b2.t()).into_dyn(),
    );
    let v = Array::from_ndarray(&c, nd(&[5], 3), [2]).unwrap();
    let vv = nd(&[5], 3).into_dimensionality::<ndarray::Ix1>().unwrap();
    assert_close(
        &x.dot(&v).unwrap().compute().unwrap(),
        &a2.dot(&vv).into_dyn(),
    );
    assert!((v.dot(&v).unwrap().scalar().unwrap() - vv.dot(&vv)).abs() < 1e-9);
    let e = x.matmul(&x).unwrap_err().to_string();
    assert!(e.contains("(7, 5)") && e.contains("not aligned"), "{e}");
    let i = Array::<i32>::eye(&c, 4, [3, 3]).unwrap();
    let m = Array::from_fn(&c, [4, 4], [2, 2], |i| (i[0] * 4 + i[1]) as i32).unwrap();
    assert_eq!(
        i.matmul(&m).unwrap().compute().unwrap(),
        m.compute().unwrap()
    );
    let p = x.permute_axes(&[1, 0]).unwrap();
    assert_eq!(p.shape(), &[5, 7]);
    assert!(x.permute_axes(&[0, 0]).is_err());
}

#[test]
fn structure() {
    let c = cluster();
    let a = nd(&[6, 7], 1);
    let x = Array::from_ndarray(&c, a.clone(), [4, 3]).unwrap();
    let r = x.rechunk([5, 2]).unwrap();
    assert_eq!(r.chunks().axes(), &[vec![5, 1], vec![2, 2, 2, 1]]);
    assert_eq!(r.compute().unwrap(), a);
    let sl = x
        .slice(&[Idx::range(1, Some(6), 2), Idx::range(0, None, -3)])
        .unwrap();
    assert_eq!(
        sl.compute().unwrap(),
        a.slice(s![1..6;2, ..;-3]).to_owned().into_dyn()
    );
    let sl = x
        .slice(&[Idx::Index(-1), Idx::NewAxis, (2..5).into()])
        .unwrap();
    assert_eq!(
        sl.compute().unwrap(),
        a.slice(s![-1, ndarray::NewAxis, 2..5])
            .to_owned()
            .into_dyn()
    );
    let e = x.slice(&[(0..8).into()]).unwrap_err().to_string();
    assert!(e.contains("axis 0") && e.contains("size 6"), "{e}");
    assert!(x.slice(&[Idx::Index(6)]).is_err());
    assert!(x.slice(&[Idx::ALL, Idx::ALL, Idx::ALL]).is_err());
    let cat = Array::concatenate(&[x.clone(), x.slice(&[(0..2).into()]).unwrap()], 0).unwrap();
    assert_eq!(
        cat.compute().unwrap(),
        ndarray::concatenate(Axis(0), &[a.view(), a.slice(s![0..2, ..]).into_dyn()]).unwrap()
    );
    let st = Array::stack(&[x.clone(), x.clone() * 2.0], 1).unwrap();
    assert_eq!(
        st.compute().unwrap(),
        ndarray::stack(Axis(1), &[a.view(), (&a * 2.0).view()]).unwrap()
    );
    let e = Array::concatenate(&[x.clone(), x.t()], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(6, 7)") && e.contains("(7, 6)"), "{e}");
    let rs = x.reshape(&[3, 14]).unwrap();
    assert_eq!(
        rs.compute().unwrap(),
        a.clone().into_shape_with_order(IxDyn(&[3, 14])).unwrap()
    );
    assert!(x.reshape(&[5, 5]).is_err());
    let m = x.mask(&x.greater(1.0)).unwrap();
    let expect: Vec<f64> = a.iter().cloned().filter(|&v| v > 1.0).collect();
    assert_eq!(m.compute().unwrap().as_slice().unwrap(), expect.as_slice());
    let none = x.mask(&x.greater(1e9)).unwrap();
    assert_eq!(none.shape(), &[0]);
    let cs = x.cumsum(1).unwrap();
    let mut expect = a.clone();
    expect.accumulate_axis_inplace(Axis(1), |&p, c| *c += p);
    assert_close(&cs.compute().unwrap(), &expect);
    assert_eq!(
        x.block(&[1, 2]).unwrap().compute().unwrap(),
        a.slice(s![4..6, 6..7]).to_owned().into_dyn()
    );
    assert!(x.block(&[2, 0]).is_err());
    assert_eq!(
        x.compute_block(&[0, 1]).unwrap(),
        a.slice(s![0..4, 3..6]).to_owned().into_dyn()
    );
    let e = Array::<f64>::zeros(&c, [3], [0]).unwrap_err().to_string();
    assert!(e.contains("chunk size 0"), "{e}");
}

#[test]
fn map_blocks_and_failures_name_the_block() {
    let c = cluster();
    let x = Array::from_ndarray(&c, nd(&[4, 4], 1), [2, 2]).unwrap();
    let y = x.map_blocks(|b| b.mapv(|v| v * 2.0));
    assert_close(&y.compute().unwrap(), &nd(&[4, 4], 1).mapv(|v| v * 2.0));
    let bad = x.map_blocks(|b| b.sum_axis(Axis(0)));
    let e = bad.compute().unwrap_err().to_string();
    assert!(
        e.contains("array-map_blocks[") && e.contains("(2, 2)"),
        "{e}"
    );
    let p = x.map_blocks(|b| {
        if b[[0, 0]] > 1e9 {
            b.to_owned()
        } else {
            panic!("bad block")
        }
    });
    let e = p.sum().unwrap().scalar().unwrap_err();
    assert!(
        e.as_task()
            .unwrap()
            .root_cause()
            .key()
            .group()
            .starts_with("array-map_blocks["),
        "{e}"
    );
    // persist keeps the blocks
    let z = (&x * 3.0).persist().unwrap();
    assert_close(&z.compute().unwrap(), &nd(&[4, 4], 1).mapv(|v| v * 3.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_roundtrip_and_elementwise((shape, ch) in shape_and_chunks(), seed in 0u64..1000) {
        let c = cluster();
        let a = nd(&shape, seed);
        let b = nd(&shape, seed + 1);
        let x = Array::from_ndarray(&c, a.clone(), ch.clone()).unwrap();
        let ch2: Vec<usize> = ch.iter().map(|&k| k % 3 + 1).collect();
        let y = Array::from_ndarray(&c, b.clone(), ch2).unwrap();
        prop_assert_eq!(x.compute().unwrap(), a.clone());
        let z = ((&x * &y - 1.5) / (&y.abs() + 1.0)).exp().ln();
        let expect = ((&a * &b - 1.5) / (b.mapv(f64::abs) + 1.0)).mapv(|v| v.exp().ln());
        prop_assert!(close(&z.compute().unwrap(), &expect, 1e-9));
    }

    #[test]
    fn prop_reductions((shape, ch) in shape_and_chunks(), seed in 0u64..1000, mask in proptest::collection::vec(any::<bool>(), 3), fan in 2usize..5) {
        let c = cluster();
        let a = nd(&shape, seed);
        let axes: Vec<usize> = (0..shape.len()).filter(|&k| mask[k]).collect();
        let x = Array::from_ndarray(&c, a.clone(), ch).unwrap().with_fan_in(fan);
        let sum = nd_reduce(&a, &axes, |v| v.sum());
        prop_assert!(close(&x.sum_axis(&axes).unwrap().compute().unwrap(), &sum, 1e-9));
        let n: usize = axes.iter().map(|&k| shape[k]).product();
        let mean = nd_reduce(&a, &axes, |v| v.sum() / n as f64);
        prop_assert!(close(&x.mean_axis(&axes).unwrap().compute().unwrap(), &mean, 1e-9));
        let var = nd_reduce(&a, &axes, |v| {
            let m = v.sum() / n as f64;
            v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64
        });
        prop_assert!(close(&x.var_axis(&axes).unwrap().compute().unwrap(), &var, 1e-9));
        prop_assert!(close(&x.std_axis(&axes).unwrap().compute().unwrap(), &var.mapv(f64::sqrt), 1e-9));
        let (m2, s2) = x.mean_std_axis(&axes, 0).unwrap();
        prop_assert!(close(&m2.compute().unwrap(), &mean, 1e-9));
        prop_assert!(close(&s2.compute().unwrap(), &var.mapv(f64::sqrt), 1e-9));
        // NaN-skipping versions on an array with NaNs where values are below -8
        let nan_a = a.mapv(|v| if v < -8.0 { f64::NAN } else { v });
        let xn = Array::from_ndarray(&c, nan_a.clone(), x.chunks().clone()).unwrap();
        let nmean = nd_reduce(&nan_a, &axes, |v| {
            let f: Vec<f64> = v.iter().cloned().filter(|x| !x.is_nan()).collect();
            if f.is_empty() { f64::NAN } else { f.iter().sum::<f64>() / f.len() as f64 }
        });
        prop_assert!(close(&xn.nanmean_axis(&axes).unwrap().compute().unwrap(), &nmean, 1e-9));
        let nvar = nd_reduce(&nan_a, &axes, |v| {
            let f: Vec<f64> = v.iter().cloned().filter(|x| !x.is_nan()).collect();
            if f.is_empty() { return f64::NAN; }
            let m = f.iter().sum::<f64>() / f.len() as f64;
            f.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / f.len() as f64
        });
        prop_assert!(close(&xn.nanvar_axis(&axes).unwrap().compute().unwrap(), &nvar, 1e-9));
        let nsum = nd_reduce(&nan_a, &axes, |v| v.iter().cloned().filter(|x| !x.is_nan()).sum());
        prop_assert!(close(&xn.nansum_axis(&axes).unwrap().compute().unwrap(), &nsum, 1e-9));
        let prod = nd_reduce(&a, &axes, |v| v.iter().map(|x| x / 10.0).product());
        prop_assert!(close(&(&x / 10.0).prod_axis(&axes).unwrap().compute().unwrap(), &prod, 1e-9));
        if n > 0 {
            let max = nd_reduce(&a, &axes, |v| v.iter().cloned().fold(f64::MIN, f64::max));
            prop_assert_eq!(x.max_axis(&axes).unwrap().compute().unwrap(), max);
            let min = nd_reduce(&a, &axes, |v| v.iter().cloned().fold(f64::MAX, f64::min));
            prop_assert_eq!(x.min_axis(&axes).unwrap().compute().unwrap(), min);
        } else {
            prop_assert!(x.max_axis(&axes).is_err());
        }
        let pos = x.greater(0.0);
        let any = nd_reduce(&a.mapv(|v| (v > 0.0) as u8 as f64), &axes, |v| v.iter().any(|&x| x > 0.0) as u8 as f64);
        prop_assert_eq!(pos.any_axis(&axes).unwrap().compute().unwrap().mapv(|b| b as u8 as f64), any);
        let all = nd_reduce(&a.mapv(|v| (v > 0.0) as u8 as f64), &axes, |v| v.iter().all(|&x| x > 0.0) as u8 as f64);
        prop_assert_eq!(pos.all_axis(&axes).unwrap().compute().unwrap().mapv(|b| b as u8 as f64), all);
    }

    #[test]
    fn prop_arg_and_cumsum((shape, ch) in shape_and_chunks(), seed in 0u64..1000, axis in 0usize..3) {
        prop_assume!(!shape.is_empty());
        let axis = axis % shape.len();
        let c = cluster();
        // few distinct values, so ties are common
        let a = nd(&shape, seed).mapv(|v| (v / 5.0).round());
        let x = Array::from_ndarray(&c, a.clone(), ch).unwrap().with_fan_in(2);
        if !a.is_empty() {
            let m = a.iter().cloned().fold(f64::MAX, f64::min);
            prop_assert_eq!(x.argmin().unwrap().scalar().unwrap() as usize, a.iter().position(|&v| v == m).unwrap());
        }
        if shape[axis] > 0 {
            let expect = a.map_axis(Axis(axis), |lane| {
                let m = lane.iter().cloned().fold(f64::MIN, f64::max);
                lane.iter().position(|&v| v == m).unwrap() as i64
            });
            prop_assert_eq!(x.argmax_axis(axis).unwrap().compute().unwrap(), expect);
        }
        let mut cs = a.clone();
        cs.accumulate_axis_inplace(Axis(axis), |&p, c| *c += p);
        prop_assert!(close(&x.cumsum(axis).unwrap().compute().unwrap(), &cs, 1e-9));
    }

    #[test]
    fn prop_broadcast((shape, ch) in shape_and_chunks(), seed in 0u64..1000, keep in proptest::collection::vec(any::<bool>(), 3), drop_lead in 0usize..3) {
        let c = cluster();
        let a = nd(&shape, seed);
        // the other operand: some axes set to 1, some leading axes dropped
        let drop_lead = drop_lead.min(shape.len());
        let bshape: Vec<usize> = shape.iter().enumerate().skip(drop_lead).map(|(k, &n)| if keep[k] { n } else { 1 }).collect();
        let b = nd(&bshape, seed + 7);
        let x = Array::from_ndarray(&c, a.clone(), ch.clone()).unwrap();
        let y = Array::from_ndarray(&c, b.clone(), 2usize).unwrap();
        prop_assert!(close(&(&x - &y).compute().unwrap(), &(&a - &b), 0.0));
        prop_assert!(close(&(&y * &x).compute().unwrap(), &(&b * &a), 0.0));
        prop_assert_eq!(Array::where_(&y.greater(0.0), &x, -1.0).compute().unwrap(),
            ndarray::Zip::from(&a).and_broadcast(&b).map_collect(|&x, &y| if y > 0.0 { x } else { -1.0 }));
    }

    #[test]
    fn prop_structure((shape, ch) in shape_and_chunks(), seed in 0u64..1000, new in proptest::collection::vec(1usize..=5, 3), cut in proptest::collection::vec((0usize..=6, 0usize..=6, 1isize..=3, any::<bool>()), 3)) {
        let c = cluster();
        let a = nd(&shape, seed);
        let x = Array::from_ndarray(&c, a.clone(), ch).unwrap();
        let r = x.rechunk(new[..shape.len()].to_vec()).unwrap();
        prop_assert_eq!(r.compute().unwrap(), a.clone());
        // slices with steps (positive and negative) within bounds
        let mut idx = Vec::new();
        let mut elems = Vec::new();
        for (k, &n) in shape.iter().enumerate() {
            let (p, q, step, neg) = cut[k];
            let (lo, hi) = (p.min(q).min(n), p.max(q).min(n));
            let step = if neg { -step } else { step };
            idx.push(Idx::range(lo as isize, Some(hi as isize), step));
            elems.push(ndarray::SliceInfoElem::Slice { start: lo as isize, end: Some(hi as isize), step });
        }
        let got = x.slice(&idx).unwrap().compute().unwrap();
        let info = ndarray::SliceInfo::<_, IxDyn, IxDyn>::try_from(elems).unwrap();
        prop_assert_eq!(got, a.slice(info).to_owned());
        // reshape to 1-D and back
        let n = a.len();
        let flat = x.reshape(&[n]).unwrap();
        let fc = flat.compute().unwrap();
        let expect_flat: Vec<f64> = a.iter().cloned().collect();
        prop_assert_eq!(fc.as_slice().unwrap(), expect_flat.as_slice());
        prop_assert_eq!(flat.reshape(&shape).unwrap().compute().unwrap(), a.clone());
        // transpose
        let t = x.t().compute().unwrap();
        prop_assert_eq!(t, a.t().to_owned());
        // mask
        let m = x.mask(&x.less(0.0)).unwrap().compute().unwrap();
        let expect: Vec<f64> = a.iter().cloned().filter(|&v| v < 0.0).collect();
        prop_assert_eq!(m.as_slice().unwrap(), expect.as_slice());
    }

    #[test]
    fn prop_tsqr(n in 1usize..5, extra in 0usize..40, rows in 1usize..12, seed in 0u64..100) {
        let c = cluster();
        let m = n + extra;
        let a = nd(&[m, n], seed).into_dimensionality::<ndarray::Ix2>().unwrap();
        let (q, r) = Array::from_ndarray(&c, a.clone(), [rows, n]).unwrap().tsqr().unwrap();
        let q = q.compute().unwrap().into_dimensionality::<ndarray::Ix2>().unwrap();
        let r = r.compute().unwrap().into_dimensionality::<ndarray::Ix2>().unwrap();
        prop_assert!(close(&q.dot(&r).into_dyn(), &a.into_dyn(), 1e-9));
        prop_assert!(close(&q.t().dot(&q).into_dyn(), &ndarray::Array2::<f64>::eye(n).into_dyn(), 1e-9));
    }

    #[test]
    fn prop_matmul(m in 0usize..7, k in 0usize..7, n in 0usize..7, c1 in 1usize..5, c2 in 1usize..5, c3 in 1usize..5, seed in 0u64..100) {
        let c = cluster();
        let a = nd(&[m, k], seed).into_dimensionality::<ndarray::Ix2>().unwrap();
        let b = nd(&[k, n], seed + 1).into_dimensionality::<ndarray::Ix2>().unwrap();
        let x = Array::from_ndarray(&c, a.clone(), [c1, c2]).unwrap();
        let y = Array::from_ndarray(&c, b.clone(), [c3, c1]).unwrap();
        prop_assert!(close(&x.matmul(&y).unwrap().compute().unwrap(), &a.dot(&b).into_dyn(), 1e-9));
        // `b` given as the transpose of a computed array: its blocks are read through a
        // transposed view when their chunks line up (c2), rechunked otherwise (c3)
        for zc in [c2, c3] {
            let z = Array::from_ndarray(&c, b.t().to_owned(), [c1, zc]).unwrap().persist().unwrap();
            prop_assert!(close(&x.matmul(&z.t()).unwrap().compute().unwrap(), &a.dot(&b).into_dyn(), 1e-9));
        }
    }

    #[test]
    fn prop_integer_matmul_with_a_transposed_operand(m in 0usize..5, k in 0usize..30, c1 in 1usize..4, c2 in 1usize..8, seed in 0i64..50) {
        let c = cluster();
        let a = ndarray::Array2::from_shape_fn((m, k), |(i, j)| (i as i64 * 7 + j as i64 * 3 + seed) % 11 - 5);
        let b = ndarray::Array2::from_shape_fn((m, k), |(i, j)| (i as i64 * 5 + j as i64 + seed) % 13 - 6);
        let x = Array::from_ndarray(&c, a.clone(), [c1, c2]).unwrap().persist().unwrap();
        let y = Array::from_ndarray(&c, b.clone(), [c1, c2]).unwrap().persist().unwrap();
        prop_assert_eq!(x.matmul(&y.t()).unwrap().compute().unwrap(), a.dot(&b.t()).into_dyn());
    }
}

#[test]
fn binary_operations_read_their_operands_where_they_lie() {
    // every operation, with each operand read in place (a block, a window of one, a
    // broadcast row) or computed, on either side, against ndarray
    use onebox::array::kernels::BinaryOp;
    let c = cluster();
    let (a, b) = (nd(&[40, 90], 31), nd(&[40, 90], 32).mapv(|v| v + 0.5));
    let big = nd(&[50, 100], 33);
    let row = nd(&[90], 34).mapv(|v| v + 0.25);
    let x = Array::from_ndarray(&c, a.clone(), [40, 90]).unwrap();
    let y = Array::from_ndarray(&c, b.clone(), [40, 90]).unwrap();
    let window = Array::from_ndarray(&c, big.clone(), [50, 100])
        .unwrap()
        .slice(&[Idx::range(5, Some(45), 1), Idx::range(7, Some(97), 1)])
        .unwrap();
    let aw = big.slice(s![5..45, 7..97]).to_owned().into_dyn();
    let r = Array::from_ndarray(&c, row.clone(), [90]).unwrap();
    let computed = &y * 1.5;
    let bc = &b * 1.5;
    let rb = row.broadcast((40, 90)).unwrap().to_owned().into_dyn();
    type Case = (BinaryOp, fn(f64, f64) -> f64);
    type Operands<'a> = (
        &'a Array<f64>,
        &'a ArrayD<f64>,
        &'a Array<f64>,
        &'a ArrayD<f64>,
    );
    let ops: [Case; 8] = [
        (BinaryOp::Add, |p, q| p + q),
        (BinaryOp::Sub, |p, q| p - q),
        (BinaryOp::Mul, |p, q| p * q),
        (BinaryOp::Div, |p, q| p / q),
        (BinaryOp::Rem, |p, q| p % q),
        (BinaryOp::Pow, f64::powf),
        (BinaryOp::Max, f64::max),
        (BinaryOp::Min, f64::min),
    ];
    let pairs: [Operands; 6] = [
        (&x, &a, &y, &b),
        (&x, &a, &r, &rb),
        (&r, &rb, &x, &a),
        (&window, &aw, &y, &b),
        (&computed, &bc, &x, &a),
        (&x, &a, &computed, &bc),
    ];
    for (op, f) in ops {
        for (k, (p, pa, q, qa)) in pairs.iter().enumerate() {
            let got = p.binary(op, *q).compute().unwrap();
            let want = ndarray::Zip::from(*pa)
                .and(*qa)
                .map_collect(|&u, &v| f(u, v));
            assert!(close(&got, &want, 1e-12), "{op:?}, operands {k}");
        }
    }
}

#[test]
fn first_axis_reductions_in_one_pass() {
    // columns that break a careless one-pass variance: far from zero, an outlier in the first
    // row of a group, a constant, a NaN, an infinity; 500 rows in blocks of 200 (several
    // slabs and groups of rows each), read in place and computed
    let c = cluster();
    let (rows, cols) = (500, 203);
    let mut a = nd(&[rows, cols], 21);
    for r in 0..rows {
        a[[r, 0]] += 1e6;
        a[[r, 2]] = 7.25;
    }
    a[[32, 1]] = 1e7;
    a[[400, 3]] = f64::NAN;
    a[[17, 4]] = f64::INFINITY;
    let row = nd(&[cols], 22);
    let x = Array::from_ndarray(&c, a.clone(), [200, 100]).unwrap();
    let r = Array::from_ndarray(&c, row.clone(), [cols]).unwrap();
    for (y, want) in [(x.clone(), a.clone()), (&x * 2.0 - &r, &a * 2.0 - &row)] {
        let var = want.var_axis(Axis(0), 0.0);
        assert_close(
            &y.sum_axis(&[0]).unwrap().compute().unwrap(),
            &want.sum_axis(Axis(0)),
        );
        assert_close(
            &y.mean_axis(&[0]).unwrap().compute().unwrap(),
            &want.mean_axis(Axis(0)).unwrap(),
        );
        assert_close(&y.var_axis(&[0]).unwrap().compute().unwrap(), &var);
        assert_close(
            &y.std_with(&[0], 1).unwrap().compute().unwrap(),
            &want.std_axis(Axis(0), 1.0),
        );
        let got = y.var_axis(&[0]).unwrap().compute().unwrap();
        assert_eq!(got[2], 0.0, "a constant column has no spread");
        assert!(
            got[3].is_nan() && got[4].is_nan(),
            "NaN and infinity give NaN, as in NumPy"
        );
    }
    // reads that are not one run: transposed, and a window of rows and columns
    let t = x.t();
    let at = a.t().to_owned();
    assert_close(
        &t.var_axis(&[0]).unwrap().compute().unwrap(),
        &at.var_axis(Axis(0), 0.0),
    );
    let w = x
        .slice(&[Idx::range(3, Some(480), 1), Idx::range(5, Some(190), 1)])
        .unwrap();
    let aw = a.slice(s![3..480, 5..190]).to_owned().into_dyn();
    assert_close(
        &w.std_axis(&[0]).unwrap().compute().unwrap(),
        &aw.std_axis(Axis(0), 0.0),
    );
    assert_close(
        &w.sum_axis(&[0]).unwrap().compute().unwrap(),
        &aw.sum_axis(Axis(0)),
    );
    // f32, three axes reduced over the first, and integer sums
    let a32 = nd(&[70, 3, 45], 23).mapv(|v| v as f32);
    let x32 = Array::from_ndarray(&c, a32.clone(), [33, 2, 45]).unwrap();
    let got = x32.std_axis(&[0]).unwrap().compute().unwrap();
    let want = a32.std_axis(Axis(0), 0.0);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(g, w)| (g - w).abs() <= 1e-5 * w.abs().max(1.0)),
        "{got:?} vs {want:?}"
    );
    let ai = nd(&[90, 130], 24).mapv(|v| (v * 1e8) as i32);
    let xi = Array::from_ndarray(&c, ai.clone(), [40, 130]).unwrap();
    let wrapping = ai.fold_axis(Axis(0), 0i32, |s, &v| s.wrapping_add(v));
    assert_eq!(xi.sum_axis(&[0]).unwrap().compute().unwrap(), wrapping);
}

#[test]
fn reductions_of_blocks_larger_than_a_slab() {
    // blocks of 120 000 elements are reduced in slabs of rows: both axes, with positions
    let c = cluster();
    let a = nd(&[300, 500], 8).mapv(|v| (v * 3.0).round());
    let x = Array::from_ndarray(&c, a.clone(), [300, 400]).unwrap();
    let lazy = &x * 1.0;
    for y in [x.clone(), lazy, x.persist().unwrap()] {
        assert_close(
            &y.sum_axis(&[0]).unwrap().compute().unwrap(),
            &a.sum_axis(Axis(0)),
        );
        assert_close(
            &y.sum_axis(&[1]).unwrap().compute().unwrap(),
            &a.sum_axis(Axis(1)),
        );
        let (m, s) = y.mean_std_axis(&[0], 0).unwrap();
        assert_close(&m.compute().unwrap(), &a.mean_axis(Axis(0)).unwrap());
        assert_close(&s.compute().unwrap(), &a.std_axis(Axis(0), 0.0));
        assert_close(
            &y.var_axis(&[1]).unwrap().compute().unwrap(),
            &a.var_axis(Axis(1), 0.0),
        );
        assert!((y.std().unwrap().scalar().unwrap() - a.std(0.0)).abs() < 1e-9);
        let min = a.iter().cloned().fold(f64::MAX, f64::min);
        assert_eq!(y.min().unwrap().scalar().unwrap(), min);
        assert_eq!(
            y.argmin().unwrap().scalar().unwrap() as usize,
            a.iter().position(|&v| v == min).unwrap()
        );
        let am0 = a.map_axis(Axis(0), |l| {
            let m = l.iter().cloned().fold(f64::MIN, f64::max);
            l.iter().position(|&v| v == m).unwrap() as i64
        });
        assert_eq!(y.argmax_axis(0).unwrap().compute().unwrap(), am0);
        let am1 = a.map_axis(Axis(1), |l| {
            let m = l.iter().cloned().fold(f64::MAX, f64::min);
            l.iter().position(|&v| v == m).unwrap() as i64
        });
        assert_eq!(y.argmin_axis(1).unwrap().compute().unwrap(), am1);
        assert_eq!(
            y.max_axis(&[1]).unwrap().compute().unwrap(),
            a.map_axis(Axis(1), |l| l.iter().cloned().fold(f64::MIN, f64::max))
        );
    }
}

#[test]
fn tall_skinny_qr() {
    let c = cluster();
    let a = nd(&[50, 4], 3)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let x = Array::from_ndarray(&c, a.clone(), [12, 2]).unwrap();
    let (q, r) = x.tsqr().unwrap();
    let (q, r) = (
        q.compute()
            .unwrap()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap(),
        r.compute()
            .unwrap()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap(),
    );
    assert_eq!(q.dim(), (50, 4));
    assert_eq!(r.dim(), (4, 4));
    assert_close(&q.dot(&r).into_dyn(), &a.clone().into_dyn());
    assert_close(
        &q.t().dot(&q).into_dyn(),
        &ndarray::Array2::<f64>::eye(4).into_dyn(),
    );
    for i in 0..4 {
        assert!(r[[i, i]] >= 0.0);
        for j in 0..i {
            assert_eq!(r[[i, j]], 0.0);
        }
    }
    // the same factorization whatever the row blocks
    let (q2, r2) = Array::from_ndarray(&c, a.clone(), [25, 4])
        .unwrap()
        .tsqr()
        .unwrap();
    assert_close(&r2.compute().unwrap(), &r.into_dyn());
    assert_close(&q2.compute().unwrap(), &q.into_dyn());
    // row blocks shorter than the columns are merged
    let (q3, r3) = Array::from_ndarray(&c, a.clone(), [3, 4])
        .unwrap()
        .tsqr()
        .unwrap();
    assert_eq!(q3.chunks().axes()[0][0], 6);
    assert_close(&r3.compute().unwrap(), &r2.compute().unwrap());
    assert_close(&q3.compute().unwrap(), &q2.compute().unwrap());
    let wide = Array::from_ndarray(&c, a.t().to_owned(), [2, 2]).unwrap();
    let e = wide.tsqr().unwrap_err().to_string();
    assert!(e.contains("(4, 50)") && e.contains("tall"), "{e}");
}

#[test]
fn other_element_types() {
    let c = cluster();
    let a32 = nd(&[7, 6], 2).mapv(|v| v as f32);
    let x = Array::from_ndarray(&c, a32.clone(), [3, 4]).unwrap();
    let m = x.mean_axis(&[0]).unwrap().compute().unwrap();
    let expect = a32.mean_axis(Axis(0)).unwrap();
    assert!(
        m.iter()
            .zip(expect.iter())
            .all(|(a, b)| (a - b).abs() < 1e-4)
    );
    let z = ((&x - &x.mean_axis(&[0]).unwrap()) / &x.std_axis(&[0]).unwrap())
        .compute()
        .unwrap();
    assert!(z.mean_axis(Axis(0)).unwrap().iter().all(|v| v.abs() < 1e-5));
    assert_eq!(x.astype::<f64>().compute().unwrap(), a32.mapv(f64::from));
    let i = Array::from_ndarray(&c, a32.mapv(|v| v as i32), [2, 5]).unwrap();
    let ie = a32.mapv(|v| v as i32);
    assert_eq!(i.sum().unwrap().scalar().unwrap(), ie.sum());
    assert_eq!(
        i.max_axis(&[1]).unwrap().compute().unwrap(),
        ie.map_axis(Axis(1), |r| *r.iter().max().unwrap())
    );
    assert_eq!((-&i).abs().compute().unwrap(), ie.mapv(i32::abs));
    assert_eq!(i.cumsum(0).unwrap().compute().unwrap(), {
        let mut e = ie.clone();
        e.accumulate_axis_inplace(Axis(0), |&p, c| *c += p);
        e
    });
    let u = Array::from_ndarray(&c, ie.mapv(|v| v.unsigned_abs() as u8), [4, 4]).unwrap();
    assert_eq!(
        u.max().unwrap().scalar().unwrap(),
        ie.iter().map(|v| v.unsigned_abs() as u8).max().unwrap()
    );
    assert_eq!(
        u.greater(3u8)
            .astype::<i64>()
            .sum()
            .unwrap()
            .scalar()
            .unwrap(),
        ie.iter().filter(|v| v.unsigned_abs() > 3).count() as i64
    );
    let b = Array::from_ndarray(&c, ie.mapv(|v| v > 0), [3, 3]).unwrap();
    assert_eq!(
        b.astype::<u8>().sum().unwrap().scalar().unwrap() as usize,
        ie.iter().filter(|&&v| v > 0).count()
    );
    assert_eq!(b.t().compute().unwrap(), ie.mapv(|v| v > 0).t().to_owned());
}
