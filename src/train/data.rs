//! Data sets the trainer reads from: the [`Dataset`] trait, the in-memory [`Table`], and the
//! [`Batch`] view a gradient function receives.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::Float;
use super::rng::Rng;
use crate::error::{Error, Result};

/// Any indexable set of samples: `len()` samples, each `n_features()` features and a label.
///
/// The trainer asks for the samples of one micro-shard at a time, by index, from several tasks
/// at once (hence `Send + Sync`), and hands the gathered rows to the gradient function as a
/// [`Batch`]. [`Table`] keeps everything in memory; a data set read lazily from files or a
/// database implements [`read`](Dataset::read) with its own I/O and reports failures as
/// errors. Adapters for onebox's chunked arrays and data frames are planned to implement this
/// trait as well (feature columns plus a label column).
pub trait Dataset: Send + Sync + 'static {
    /// The feature type (the model's float type).
    type Scalar: Float;
    /// The label type: a class index (`usize`), a regression target (`f32`/`f64`), ...
    type Label: Copy + Send + Sync + 'static;

    /// How many samples there are.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per sample.
    fn n_features(&self) -> usize;

    /// Appends the features (row after row, `n_features()` per row) and the labels of the
    /// samples `indices`, in that order, to `features` and `labels`.
    fn read(
        &self,
        indices: &[usize],
        features: &mut Vec<Self::Scalar>,
        labels: &mut Vec<Self::Label>,
    ) -> Result<()>;
}

/// The samples of one micro-shard, as the gradient function sees them: a row-major
/// `len() x n_features()` feature matrix, the labels, and the samples' indices in the data set.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, F, L> {
    pub(crate) features: &'a [F],
    pub(crate) labels: &'a [L],
    pub(crate) indices: &'a [usize],
    pub(crate) n_features: usize,
}

impl<'a, F, L> Batch<'a, F, L> {
    /// A batch over `features` (row-major, `n_features` per row) and one label per row.
    pub fn new(features: &'a [F], n_features: usize, labels: &'a [L]) -> Result<Self> {
        if features.len() != labels.len() * n_features {
            return Err(Error::Invalid(format!(
                "a batch of {} labels with {n_features} features per row needs {} feature \
                 values, got {}",
                labels.len(),
                labels.len() * n_features,
                features.len()
            )));
        }
        Ok(Batch {
            features,
            labels,
            indices: &[],
            n_features,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per sample.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The feature matrix, row-major.
    pub fn features(&self) -> &'a [F] {
        self.features
    }

    /// Sample `i`'s features.
    pub fn row(&self, i: usize) -> &'a [F] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// The labels, one per row.
    pub fn labels(&self) -> &'a [L] {
        self.labels
    }

    /// The rows' indices in the data set (empty for a batch made with [`Batch::new`]).
    pub fn indices(&self) -> &'a [usize] {
        self.indices
    }
}

/// An in-memory data set: a row-major feature matrix and one label per row.
///
/// ```
/// use onebox::train::{Dataset, Table};
/// let t = Table::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 2, vec![0usize, 1, 0])?;
/// assert_eq!((t.len(), t.n_features()), (3, 2));
/// let (mut x, mut y) = (Vec::new(), Vec::new());
/// t.read(&[2, 0], &mut x, &mut y)?;
/// assert_eq!((x, y), (vec![5.0, 6.0, 1.0, 2.0], vec![0, 0]));
/// # Ok::<(), onebox::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Table<F, L> {
    features: Vec<F>,
    labels: Vec<L>,
    n_features: usize,
}

impl<F: Float, L: Copy + Send + Sync + 'static> Table<F, L> {
    /// A table from a row-major feature matrix with `n_features` columns and one label per row.
    pub fn new(features: Vec<F>, n_features: usize, labels: Vec<L>) -> Result<Self> {
        Batch::new(&features, n_features, &labels)?;
        Ok(Table {
            features,
            labels,
            n_features,
        })
    }

    /// The feature matrix, row-major.
    pub fn features(&self) -> &[F] {
        &self.features
    }

    /// The labels.
    pub fn labels(&self) -> &[L] {
        &self.labels
    }

    /// All rows as one [`Batch`] (to evaluate a model on the whole table).
    pub fn as_batch(&self) -> Batch<'_, F, L> {
        Batch {
            features: &self.features,
            labels: &self.labels,
            indices: &[],
            n_features: self.n_features,
        }
    }

    /// A new table with the rows `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        self.read(indices, &mut features, &mut labels)?;
        Table::new(features, self.n_features, labels)
    }

    /// Applies `f` to every feature value (scaling, centring).
    pub fn map_features(mut self, f: impl Fn(F) -> F) -> Self {
        for x in &mut self.features {
            *x = f(*x);
        }
        self
    }
}

impl<F: Float> Table<F, usize> {
    /// Reads a numeric CSV file (gzip-compressed when the name ends in `.gz`) whose last column
    /// is a class index (a non-negative integer) and whose other columns are features. With
    /// `header`, the first line is skipped. Every row must have the same number of columns.
    pub fn read_csv(path: impl AsRef<Path>, header: bool) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let (mut features, mut labels, mut n_features) = (Vec::new(), Vec::new(), None);
        for (number, line) in BufReader::new(reader).lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if (header && number == 0) || line.trim().is_empty() {
                continue;
            }
            let at = || format!("{}:{}", path.display(), number + 1);
            let fields: Vec<&str> = line.split(',').collect();
            let n = fields.len() - 1;
            if n == 0 {
                return Err(Error::Invalid(format!(
                    "{}: a row needs at least one feature and a label",
                    at()
                )));
            }
            match n_features {
                None => n_features = Some(n),
                Some(m) if m != n => {
                    return Err(Error::Invalid(format!(
                        "{}: {} columns, but the first row had {}",
                        at(),
                        n + 1,
                        m + 1
                    )));
                }
                Some(_) => {}
            }
            for (column, field) in fields[..n].iter().enumerate() {
                features.push(F::parse_text(field).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: column {} is {field:?}, not a number",
                        at(),
                        column + 1
                    ))
                })?);
            }
            let label = fields[n];
            labels.push(label.trim().parse::<usize>().map_err(|_| {
                Error::Invalid(format!(
                    "{}: the label (last column) is {label:?}, not a class index",
                    at()
                ))
            })?);
        }
        Table::new(features, n_features.unwrap_or(0), labels)
    }
}

impl<F: Float, L: Copy + Send + Sync + 'static> Dataset for Table<F, L> {
    type Scalar = F;
    type Label = L;

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn read(&self, indices: &[usize], features: &mut Vec<F>, labels: &mut Vec<L>) -> Result<()> {
        features.reserve(indices.len() * self.n_features);
        labels.reserve(indices.len());
        for &i in indices {
            if i >= self.labels.len() {
                return Err(Error::Invalid(format!(
                    "sample {i} asked of a table of {} samples",
                    self.labels.len()
                )));
            }
            features.extend_from_slice(&self.features[i * self.n_features..][..self.n_features]);
            labels.push(self.labels[i]);
        }
        Ok(())
    }
}

/// Splits the sample indices `0..n` at random into a training and a test set, with
/// `round(n * test_fraction)` test samples. The same seed gives the same split.
///
/// ```
/// let (train, test) = onebox::train::train_test_split(10, 0.2, 42)?;
/// assert_eq!((train.len(), test.len()), (8, 2));
/// # Ok::<(), onebox::Error>(())
/// ```
pub fn train_test_split(
    n: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(Error::config(
            "test_fraction",
            test_fraction,
            "must be between 0 and 1",
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    let n_test = ((n as f64) * test_fraction).round() as usize;
    let train = order.split_off(n_test.min(n));
    Ok((train, order))
}
