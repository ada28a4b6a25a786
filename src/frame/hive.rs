//! Hive partitioning: columns whose values are in the files' paths.
//!
//! A data set written as `sales/year=2024/month=3/part-0.parquet` keeps the columns `year` and
//! `month` in its directory names, not in the files. Every directory component of the form
//! `name=value` (the file name excepted) names such a column; every file of a scan must have
//! the same names in the same order. A column is `Int64` when every file's value reads as
//! one, else `Float64` when every value reads as a number, else `String`; the value
//! `__HIVE_DEFAULT_PARTITION__` (Hive's and Spark's mark for null) is null, and `%XX` escapes
//! are decoded. Each partition's query appends its file's values as literal columns, after
//! the file's own columns.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};

/// Hive's and Spark's directory value for a null.
const NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The hive columns of a scan's files: their names and types, and each file's values.
pub(super) struct Columns {
    names: Vec<String>,
    dtypes: Vec<DataType>,
    /// `values[file][column]`, `None` for null.
    values: Vec<Vec<Option<String>>>,
}

/// The `name=value` directory components of `file`, in order.
fn pairs(file: &str) -> Vec<(String, Option<String>)> {
    let path = Path::new(file);
    let dirs = path.parent().map(|p| p.components()).into_iter().flatten();
    dirs.filter_map(|c| {
        let c = c.as_os_str().to_str()?;
        let (name, value) = c.split_once('=')?;
        (!name.is_empty()).then(|| {
            let value = (value != NULL).then(|| decode(value));
            (decode(name), value)
        })
    })
    .collect()
}

/// `s` with its `%XX` escapes decoded (an escape that does not decode is kept as it is).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The narrowest type every non-null value reads as.
fn infer(values: impl Iterator<Item = Option<String>> + Clone) -> DataType {
    let present = || values.clone().flatten();
    if present().all(|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if present().all(|v| v.parse::<f64>().is_ok()) {
        DataType::Float64
    } else {
        DataType::String
    }
}

impl Columns {
    /// The hive columns of `files` (none when no file's path has a `name=value` directory).
    pub(super) fn of(files: &[String]) -> Result<Columns> {
        let all: Vec<Vec<(String, Option<String>)>> = files.iter().map(|f| pairs(f)).collect();
        let names: Vec<String> = all
            .first()
            .map(|p| p.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        for (file, p) in files.iter().zip(&all) {
            let these: Vec<&String> = p.iter().map(|(n, _)| n).collect();
            if these != names.iter().collect::<Vec<_>>() {
                return Err(Error::Invalid(format!(
                    "{file}: its hive partition columns {these:?} differ from {:?}'s {names:?}",
                    files[0]
                )));
            }
        }
        let values: Vec<Vec<Option<String>>> = all
            .into_iter()
            .map(|p| p.into_iter().map(|(_, v)| v).collect())
            .collect();
        let dtypes = (0..names.len())
            .map(|c| infer(values.iter().map(move |v| v[c].clone())))
            .collect();
        Ok(Columns {
            names,
            dtypes,
            values,
        })
    }

    /// `schema` (the files' own, the first of them `first`) with the hive columns after it.
    pub(super) fn extend(&self, schema: &SchemaRef, first: &str) -> Result<SchemaRef> {
        if self.names.is_empty() {
            return Ok(schema.clone());
        }
        let mut out = schema.as_ref().clone();
        for (name, dtype) in self.names.iter().zip(&self.dtypes) {
            if out.contains(name) {
                return Err(Error::Invalid(format!(
                    "{first}: column {name:?} is both in the file and in its hive path"
                )));
            }
            out.with_column(name.as_str().into(), dtype.clone());
        }
        Ok(Arc::new(out))
    }

    /// File `i`'s values as literal columns of the hive columns' types.
    pub(super) fn values(&self, i: usize) -> Vec<Expr> {
        self.names
            .iter()
            .zip(&self.dtypes)
            .zip(&self.values[i])
            .map(|((name, dtype), value)| {
                let v = match value {
                    Some(v) => lit(v.clone()),
                    None => Expr::Literal(LiteralValue::untyped_null()),
                };
                v.cast(dtype.clone()).alias(name.as_str())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_values_and_types_from_the_directories() {
        let files = [
            "/d/year=2024/city=S%C3%A3o%20Paulo/part-0.parquet".to_string(),
            "/d/year=2025/city=__HIVE_DEFAULT_PARTITION__/x=1/part-0.parquet".to_string(),
        ];
        assert_eq!(
            pairs(&files[0]),
            [
                ("year".to_string(), Some("2024".to_string())),
                ("city".to_string(), Some("São Paulo".to_string()))
            ]
        );
        // different names: an error naming the file
        let err = Columns::of(&files).err().unwrap().to_string();
        assert!(err.contains("x=1"), "{err}");
        let files = &files[..1];
        let c = Columns::of(files).unwrap();
        assert_eq!(c.dtypes, [DataType::Int64, DataType::String]);
        assert_eq!(decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(
            infer(["1.5", "2"].iter().map(|s| Some(s.to_string()))),
            DataType::Float64
        );
        assert_eq!(
            infer([None, Some("7".to_string())].into_iter()),
            DataType::Int64
        );
        let none = Columns::of(&["/d/plain.parquet".to_string()]).unwrap();
        assert!(none.names.is_empty());
    }
}
