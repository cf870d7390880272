//! Feature columns for drift detectors: read from a reference CSV file, and
//! gathered from logged prediction requests.

pub use crate::bindings::drift::exports::cairn::plugin::drift::{Column, ColumnValues};
use serde_json::Value;

/// Errors reading a reference sample.
#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    /// The CSV could not be parsed.
    #[error("reference CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The CSV has no header or no rows.
    #[error("reference CSV: {0}")]
    Empty(&'static str),
    /// A requested feature is not a column.
    #[error("feature `{0}` is not a column of the reference CSV (columns: {1})")]
    MissingFeature(String, String),
}

/// Reads a CSV with a header into columns: a column whose non-empty cells
/// all parse as numbers is numeric (empty cells are NaN), any other is
/// categorical.
pub fn from_csv(text: &[u8]) -> Result<Vec<Column>, ColumnsError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    if header.is_empty() {
        return Err(ColumnsError::Empty("no header"));
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for record in reader.records() {
        let record = record?;
        for (i, column) in cells.iter_mut().enumerate() {
            column.push(record.get(i).unwrap_or("").to_string());
        }
    }
    if cells[0].is_empty() {
        return Err(ColumnsError::Empty("no rows"));
    }
    Ok(header
        .into_iter()
        .zip(cells)
        .map(|(name, cells)| {
            let numeric = cells
                .iter()
                .all(|c| c.is_empty() || c.parse::<f64>().is_ok());
            let values = if numeric {
                ColumnValues::Numeric(
                    cells
                        .iter()
                        .map(|c| c.parse().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                ColumnValues::Categorical(cells)
            };
            Column { name, values }
        })
        .collect())
}

/// Keeps the columns named in `features` (all when empty), in that order.
pub fn select(columns: Vec<Column>, features: &[String]) -> Result<Vec<Column>, ColumnsError> {
    if features.is_empty() {
        return Ok(columns);
    }
    let names = || {
        columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    features
        .iter()
        .map(|f| {
            columns
                .iter()
                .find(|c| &c.name == f)
                .cloned()
                .ok_or_else(|| ColumnsError::MissingFeature(f.clone(), names()))
        })
        .collect()
}

/// The rows of one logged request, as maps from feature name to value.
/// Requests are `{"f": v, ...}` (one row), or `{"instances": ROWS}` /
/// `{"inputs": ROWS}` where a row is `{"f": v, ...}` or `[v, ...]` in the
/// order of `positional` (the signature's inputs).
fn rows_of<'a>(request: &'a Value, positional: &'a [String]) -> Vec<Vec<(&'a str, &'a Value)>> {
    let Some(map) = request.as_object() else {
        return Vec::new();
    };
    let rows = match map.get("instances").or_else(|| map.get("inputs")) {
        Some(Value::Array(rows)) => rows.iter().collect(),
        _ => vec![request],
    };
    rows.into_iter()
        .filter_map(|row| match row {
            Value::Object(m) => Some(m.iter().map(|(k, v)| (k.as_str(), v)).collect()),
            Value::Array(values) => Some(
                positional
                    .iter()
                    .map(String::as_str)
                    .zip(values.iter())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Gathers a window of logged requests into columns shaped like `like`
/// (the same names and kinds, in order). A missing or mistyped value is
/// NaN (numeric) or empty (categorical).
pub fn from_requests<'a>(
    requests: impl IntoIterator<Item = &'a Value>,
    positional: &[String],
    like: &[Column],
) -> Vec<Column> {
    let mut out: Vec<Column> = like
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            values: match c.values {
                ColumnValues::Numeric(_) => ColumnValues::Numeric(Vec::new()),
                ColumnValues::Categorical(_) => ColumnValues::Categorical(Vec::new()),
            },
        })
        .collect();
    for request in requests {
        for row in rows_of(request, positional) {
            for column in &mut out {
                let value = row.iter().find(|(k, _)| *k == column.name).map(|(_, v)| *v);
                match &mut column.values {
                    ColumnValues::Numeric(v) => v.push(
                        value
                            .and_then(|x| {
                                x.as_f64()
                                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                            })
                            .unwrap_or(f64::NAN),
                    ),
                    ColumnValues::Categorical(v) => v.push(match value {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    }),
                }
            }
        }
    }
    out
}

/// The number of rows of a set of columns.
pub fn rows(columns: &[Column]) -> usize {
    columns.first().map_or(0, |c| match &c.values {
        ColumnValues::Numeric(v) => v.len(),
        ColumnValues::Categorical(v) => v.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_columns_are_typed() {
        let cols = from_csv(b"a,b,c\n1,x,\n2.5,y,3\n").unwrap();
        assert_eq!(cols.len(), 3);
        assert!(matches!(&cols[0].values, ColumnValues::Numeric(v) if v == &[1.0, 2.5]));
        assert!(matches!(&cols[1].values, ColumnValues::Categorical(v) if v == &["x", "y"]));
        assert!(
            matches!(&cols[2].values, ColumnValues::Numeric(v) if v[0].is_nan() && v[1] == 3.0)
        );
        assert!(from_csv(b"a,b\n").is_err());
        let err = select(cols, &["zz".into()]).unwrap_err().to_string();
        assert!(err.contains("`zz`") && err.contains("a, b, c"), "{err}");
    }

    #[test]
    fn requests_of_every_shape_become_rows() {
        let like = from_csv(b"x,color\n1,red\n").unwrap();
        let positional = vec!["x".to_string(), "color".to_string()];
        let requests = [
            json!({"x": 1.5, "color": "blue"}),
            json!({"instances": [[2, "red"], [3, "green"]]}),
            json!({"inputs": [{"x": "4", "color": "red"}]}),
            json!({"color": 7}),
        ];
        let cols = from_requests(requests.iter(), &positional, &like);
        let ColumnValues::Numeric(x) = &cols[0].values else {
            panic!()
        };
        assert_eq!(&x[..4], &[1.5, 2.0, 3.0, 4.0]);
        assert!(x[4].is_nan());
        let ColumnValues::Categorical(c) = &cols[1].values else {
            panic!()
        };
        assert_eq!(c, &["blue", "red", "green", "red", "7"]);
        assert_eq!(rows(&cols), 5);
    }
}
