//! `describe`: summary statistics of the numeric columns, like pandas' and polars' `describe`.

use polars::prelude::*;

use super::{Frame, polars_err};
use crate::error::{Error, Result};

/// A statistic: its name and how a column's is computed.
type Statistic = (&'static str, fn(Expr) -> Expr);

/// The statistics, in order.
fn statistics() -> Vec<Statistic> {
    vec![
        ("count", |c| c.count()),
        ("null_count", |c| c.null_count()),
        ("mean", |c| c.mean()),
        ("std", |c| c.std(1)),
        ("min", |c| c.min()),
        ("25%", |c| c.quantile(lit(0.25), QuantileMethod::Nearest)),
        ("50%", |c| c.quantile(lit(0.5), QuantileMethod::Nearest)),
        ("75%", |c| c.quantile(lit(0.75), QuantileMethod::Nearest)),
        ("max", |c| c.max()),
    ]
}

impl Frame {
    /// Summary statistics of every numeric column: a `statistic` column (`count`,
    /// `null_count`, `mean`, `std` (1 degree of freedom), `min`, `25%`, `50%`, `75%`, `max`)
    /// then one `f64` column per numeric column of the frame. Exact: the percentiles are the
    /// values at those ranks (polars' `nearest` method), so the numeric columns are gathered in
    /// one task and must fit in memory. Columns that are not numeric are left out; a frame
    /// without numeric columns is an error.
    pub fn describe(&self) -> Result<DataFrame> {
        let numeric: Vec<PlSmallStr> = self
            .schema
            .iter()
            .filter(|(_, dt)| dt.is_primitive_numeric())
            .map(|(name, _)| name.clone())
            .collect();
        if numeric.is_empty() {
            return Err(Error::Invalid(format!(
                "describe: no numeric column (columns: {:?})",
                self.schema.iter_names().collect::<Vec<_>>()
            )));
        }
        let values = self
            .clone()
            .select(numeric.iter().map(|c| col(c.clone())).collect::<Vec<_>>())?
            .compute()?;
        let stats = statistics();
        let mut rows = Vec::with_capacity(stats.len());
        for (name, stat) in &stats {
            let mut exprs = vec![lit(*name).alias("statistic")];
            exprs.extend(numeric.iter().map(|c| {
                stat(col(c.clone()))
                    .cast(DataType::Float64)
                    .alias(c.clone())
            }));
            rows.push(values.clone().lazy().select(exprs));
        }
        concat(rows, UnionArgs::default())
            .and_then(|lf| lf.collect())
            .map_err(polars_err)
    }
}
