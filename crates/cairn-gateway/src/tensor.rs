// tidy: long file: JSON and Open Inference Protocol tensors for every data type, and their tests (a third of it).
//! The JSON ↔ tensor boundary of the gateway.
//!
//! Two request formats reach a model:
//!
//! - Cairn's own body (the value under `"request"`): one row of named
//!   features, `{"mean_radius": 19.55, ...}`, or several rows,
//!   `{"instances": [[19.55, ...], ...]}` / `{"instances": [{...}, ...]}`
//!   (`"inputs"` is accepted for `"instances"`). [`request_to_tensor`] turns
//!   it into one `[N, F]` tensor in the order of the model's signature, and
//!   [`tensors_to_response`] turns the model's outputs back into JSON keyed
//!   by output name.
//! - The Open Inference Protocol v2 (`/v2/models/{name}/infer`), whose
//!   tensors are [`NamedTensor`]s as they are on the wire;
//!   [`parse_oip_inputs`] reads and checks a request's `"inputs"`.
//!
//! Everything here is pure: no model runtime is involved.

use cairn_spec::{Feature, ValueType};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

// ------------------------------------------------------------------ Types --

/// Element type of a tensor, named as in the Open Inference Protocol v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// 32-bit float (`FP32`).
    #[serde(rename = "FP32")]
    Fp32,
    /// 64-bit float (`FP64`).
    #[serde(rename = "FP64")]
    Fp64,
    /// 64-bit signed integer (`INT64`).
    #[serde(rename = "INT64")]
    Int64,
    /// 32-bit signed integer (`INT32`).
    #[serde(rename = "INT32")]
    Int32,
    /// Boolean (`BOOL`).
    #[serde(rename = "BOOL")]
    Bool,
    /// Text (`BYTES`).
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DataType {
    /// All data types, for messages.
    pub const ALL: [DataType; 6] = [
        DataType::Fp32,
        DataType::Fp64,
        DataType::Int64,
        DataType::Int32,
        DataType::Bool,
        DataType::Bytes,
    ];

    /// The tensor type that holds a feature of a signature: `float` → `FP32`,
    /// `int` → `INT64`, `string` → `BYTES`, `bool` → `BOOL`, and `timestamp`
    /// → `INT64` (seconds since the Unix epoch).
    pub fn from_value_type(ty: ValueType) -> DataType {
        match ty {
            ValueType::Float => DataType::Fp32,
            ValueType::Int | ValueType::Timestamp => DataType::Int64,
            ValueType::String => DataType::Bytes,
            ValueType::Bool => DataType::Bool,
        }
    }

    /// The protocol's name: `FP32`, `INT64`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Int64 => "INT64",
            DataType::Int32 => "INT32",
            DataType::Bool => "BOOL",
            DataType::Bytes => "BYTES",
        }
    }

    /// Reads a protocol name (exact, upper case).
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The elements of a tensor, flat and row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `FP32` elements.
    F32(Vec<f32>),
    /// `FP64` elements.
    F64(Vec<f64>),
    /// `INT64` elements.
    I64(Vec<i64>),
    /// `INT32` elements.
    I32(Vec<i32>),
    /// `BOOL` elements.
    Bool(Vec<bool>),
    /// `BYTES` elements (UTF-8 text).
    Bytes(Vec<String>),
}

impl TensorData {
    /// An empty buffer of a data type, with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Fp32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// The data type of the elements.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Fp32,
            TensorData::F64(_) => DataType::Fp64,
            TensorData::I64(_) => DataType::Int64,
            TensorData::I32(_) => DataType::Int32,
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as JSON (`f32` values printed as their shortest decimal
    /// form, non-finite floats as `null`).
    fn json(&self, i: usize) -> Value {
        match self {
            TensorData::F32(v) => f32_json(v[i]),
            TensorData::F64(v) => Value::from(finite(v[i])),
            TensorData::I64(v) => Value::from(v[i]),
            TensorData::I32(v) => Value::from(v[i]),
            TensorData::Bool(v) => Value::Bool(v[i]),
            TensorData::Bytes(v) => Value::String(v[i].clone()),
        }
    }
}

/// An `f32` as the JSON number with the same shortest decimal form, so that
/// `0.99f32` reads `0.99` rather than `0.9900000095367432`.
fn f32_json(x: f32) -> Value {
    if x.is_finite() {
        Value::from(shortest_f64(x))
    } else {
        Value::Null
    }
}

fn shortest_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::F32(v) => serializer.collect_seq(v.iter().map(|x| {
                if x.is_finite() {
                    Some(shortest_f64(*x))
                } else {
                    None
                }
            })),
            TensorData::F64(v) => serializer.collect_seq(v.iter().map(|x| finite(*x))),
            TensorData::I64(v) => v.serialize(serializer),
            TensorData::I32(v) => v.serialize(serializer),
            TensorData::Bool(v) => v.serialize(serializer),
            TensorData::Bytes(v) => v.serialize(serializer),
        }
    }
}

/// A tensor as the Open Inference Protocol v2 writes it:
/// `{"name", "shape", "datatype", "data"}`, `data` flat and row-major.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedTensor {
    /// Input or output name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type; always `data.datatype()`.
    pub datatype: DataType,
    /// Elements.
    pub data: TensorData,
}

impl NamedTensor {
    /// A tensor; its data type is that of `data`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape,
            datatype: data.datatype(),
            data,
        }
    }

    /// Number of elements the shape holds.
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }
}

impl<'de> Deserialize<'de> for NamedTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_oip_tensor(&value, "tensor").map_err(serde::de::Error::custom)
    }
}

/// A request the model cannot take, naming the offending field; the gateway
/// answers it with a 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InputError {
    /// The field: a feature name, `instances[2]`, `inputs[0].data`, ...
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InputError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            field: field.into(),
            message: message.into(),
        }
    }
}

// -------------------------------------------------------- Cairn requests --

/// Cairn's own request body → one input tensor `[N, F]` of the model's input
/// type, the columns in the order of the signature's inputs (`inputs`; a
/// feature with a shape such as `[3]` takes that many columns).
///
/// - `{"feature_a": 1.0, "feature_b": 2.0, ...}`: one row; the keys must be
///   the signature's input names exactly;
/// - `{"instances": [[f1, f2, ...], ...]}`: rows of `F` values in signature
///   order (nested arrays are flattened);
/// - `{"instances": [{"feature_a": ...}, ...]}`: rows of named features;
/// - `{"inputs": [...]}`: the same as `instances`.
///
/// Without a signature (`inputs` empty) only rows of values are accepted, all
/// of the same width, which gives `F`. Values must fit both the feature's
/// type and the tensor's: a string for a `float` feature is an error naming
/// the feature.
///
/// Returns the tensor (named `input_name`), the number of rows, and whether
/// the request was a single row (so that the response is too).
pub fn request_to_tensor(
    request: &Value,
    inputs: &[Feature],
    input_name: &str,
    datatype: DataType,
) -> Result<(NamedTensor, usize, bool), InputError> {
    let Value::Object(map) = request else {
        return Err(InputError::new(
            "request",
            format!(
                "expected an object of named features or {{\"instances\": [...]}}, got {}",
                kind(request)
            ),
        ));
    };
    let columns = Columns::new(inputs);
    let mut builder = Builder {
        input_name,
        data: TensorData::with_capacity(datatype, columns.width.max(1)),
    };

    let batch_key = ["instances", "inputs"]
        .into_iter()
        .find(|key| map.contains_key(*key) && !inputs.iter().any(|f| f.name == *key));
    let Some(key) = batch_key else {
        // One row of named features.
        if inputs.is_empty() {
            return Err(InputError::new(
                "request",
                "named features need the model's signature to put them in order: \
                 declare `signature.inputs` on the model, or send \
                 {\"instances\": [[value, ...], ...]} in the model's input order",
            ));
        }
        object_row(map, "", &columns, &mut builder)?;
        let width = columns.width;
        return Ok((builder.finish(vec![1, width]), 1, true));
    };

    if let Some(other) = map.keys().find(|k| k.as_str() != key) {
        let message = if other == "instances" || other == "inputs" {
            "send rows under either `instances` or `inputs`, not both".to_string()
        } else {
            format!("unknown field; a batch request holds only `{key}`")
        };
        return Err(InputError::new(other.clone(), message));
    }
    let Value::Array(rows) = &map[key] else {
        return Err(InputError::new(
            key,
            format!("expected an array of rows, got {}", kind(&map[key])),
        ));
    };
    if rows.is_empty() {
        return Err(InputError::new(key, "expected at least one row"));
    }

    let mut width = columns.width;
    for (i, row) in rows.iter().enumerate() {
        let field = format!("{key}[{i}]");
        match row {
            Value::Array(values) => {
                let mut cells = Vec::with_capacity(width);
                flatten(values, &mut cells);
                if inputs.is_empty() && i == 0 {
                    if cells.is_empty() {
                        return Err(InputError::new(field, "expected at least one value"));
                    }
                    width = cells.len();
                }
                if cells.len() != width {
                    let names = if inputs.is_empty() {
                        "as in the first row".to_string()
                    } else {
                        format!("({})", columns.describe())
                    };
                    return Err(InputError::new(
                        field,
                        format!("expected {width} values {names}, got {}", cells.len()),
                    ));
                }
                for (j, cell) in cells.into_iter().enumerate() {
                    let feature = columns.feature_at(j);
                    let field = format!("{key}[{i}][{j}]");
                    let value = read_cell(cell, feature, &field)?;
                    builder.push(value, feature, &field)?;
                }
            }
            Value::Object(row) => {
                if inputs.is_empty() {
                    return Err(InputError::new(
                        field,
                        "rows of named features need the model's signature to put them in \
                         order: declare `signature.inputs` on the model, or send rows as \
                         arrays of values in the model's input order",
                    ));
                }
                object_row(row, &format!("{field}."), &columns, &mut builder)?;
            }
            other => {
                return Err(InputError::new(
                    field,
                    format!(
                        "expected an array of values or an object of named features, got {}",
                        kind(other)
                    ),
                ));
            }
        }
    }
    let n = rows.len();
    Ok((builder.finish(vec![n, width]), n, false))
}

/// The columns of the input tensor: each signature feature takes
/// `product(shape)` of them.
struct Columns<'a> {
    features: &'a [Feature],
    /// Index of the feature of each column.
    owner: Vec<usize>,
    width: usize,
}

impl<'a> Columns<'a> {
    fn new(features: &'a [Feature]) -> Columns<'a> {
        let mut owner = Vec::new();
        for (i, f) in features.iter().enumerate() {
            owner.extend(std::iter::repeat_n(i, feature_width(f)));
        }
        let width = owner.len();
        Columns {
            features,
            owner,
            width,
        }
    }

    fn feature_at(&self, column: usize) -> Option<&'a Feature> {
        self.owner.get(column).map(|&i| &self.features[i])
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .features
            .iter()
            .map(|f| match feature_width(f) {
                1 if f.shape.is_empty() => f.name.clone(),
                w => format!("{} ×{w}", f.name),
            })
            .collect();
        names.join(", ")
    }
}

fn feature_width(f: &Feature) -> usize {
    f.shape.iter().map(|&d| d as usize).product()
}

/// One row of named features, appended to `builder` in signature order.
fn object_row(
    row: &Map<String, Value>,
    prefix: &str,
    columns: &Columns<'_>,
    builder: &mut Builder<'_>,
) -> Result<(), InputError> {
    let features = columns.features;
    for key in row.keys() {
        if !features.iter().any(|f| &f.name == key) {
            let mut message = "unknown feature".to_string();
            if let Some(near) = features
                .iter()
                .map(|f| (strsim::levenshtein(&f.name, key), &f.name))
                .filter(|(d, _)| *d <= 3)
                .min()
            {
                message.push_str(&format!(" (did you mean `{}`?)", near.1));
            }
            message.push_str(&format!("; the model takes: {}", names(features)));
            return Err(InputError::new(format!("{prefix}{key}"), message));
        }
    }
    for feature in features {
        let field = format!("{prefix}{}", feature.name);
        let Some(value) = row.get(&feature.name) else {
            return Err(InputError::new(
                field,
                format!("missing feature; the model takes: {}", names(features)),
            ));
        };
        let width = feature_width(feature);
        if feature.shape.is_empty() {
            let cell = read_cell(value, Some(feature), &field)?;
            builder.push(cell, Some(feature), &field)?;
        } else {
            let Value::Array(values) = value else {
                return Err(InputError::new(
                    field,
                    format!(
                        "expected an array of shape {:?}, got {}",
                        feature.shape,
                        kind(value)
                    ),
                ));
            };
            let mut cells = Vec::with_capacity(width);
            flatten(values, &mut cells);
            if cells.len() != width {
                return Err(InputError::new(
                    field,
                    format!(
                        "expected {width} values (shape {:?}), got {}",
                        feature.shape,
                        cells.len()
                    ),
                ));
            }
            for (j, cell) in cells.into_iter().enumerate() {
                let field = format!("{field}[{j}]");
                let cell = read_cell(cell, Some(feature), &field)?;
                builder.push(cell, Some(feature), &field)?;
            }
        }
    }
    Ok(())
}

fn names(features: &[Feature]) -> String {
    let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
    names.join(", ")
}

/// Appends the leaves of nested arrays to `out`.
fn flatten<'v>(values: &'v [Value], out: &mut Vec<&'v Value>) {
    for v in values {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}

/// A JSON value checked against its feature's type.
enum Cell<'v> {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(&'v str),
}

fn read_cell<'v>(
    value: &'v Value,
    feature: Option<&Feature>,
    field: &str,
) -> Result<Cell<'v>, InputError> {
    let wrong = |expected: &str| {
        let what = match feature {
            Some(f) => format!(
                "expected {expected} (feature `{}` is {}), got {}",
                f.name,
                type_name(f.ty),
                kind(value)
            ),
            None => format!("expected {expected}, got {}", kind(value)),
        };
        InputError::new(field, what)
    };
    let Some(feature) = feature else {
        return match value {
            Value::Number(n) => Ok(number_cell(n)),
            Value::Bool(b) => Ok(Cell::Bool(*b)),
            Value::String(s) => Ok(Cell::Str(s)),
            _ => Err(wrong("a number, a boolean or a string")),
        };
    };
    match (feature.ty, value) {
        (ValueType::Float, Value::Number(n)) => Ok(number_cell(n)),
        (ValueType::Float, _) => Err(wrong("a number")),
        (ValueType::Int, Value::Number(n)) => {
            integer(n).map(Cell::Int).ok_or_else(|| wrong("an integer"))
        }
        (ValueType::Int, _) => Err(wrong("an integer")),
        (ValueType::Bool, Value::Bool(b)) => Ok(Cell::Bool(*b)),
        (ValueType::Bool, _) => Err(wrong("true or false")),
        (ValueType::String, Value::String(s)) => Ok(Cell::Str(s)),
        (ValueType::String, _) => Err(wrong("a string")),
        (ValueType::Timestamp, Value::Number(n)) => integer(n)
            .map(Cell::Int)
            .ok_or_else(|| wrong("seconds since the Unix epoch or an RFC 3339 date")),
        (ValueType::Timestamp, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Cell::Int(t.timestamp()))
            .map_err(|e| InputError::new(field, format!("not an RFC 3339 timestamp: {e}"))),
        (ValueType::Timestamp, _) => Err(wrong("seconds since the Unix epoch or an RFC 3339 date")),
    }
}

fn number_cell(n: &serde_json::Number) -> Cell<'static> {
    match n.as_i64() {
        Some(i) => Cell::Int(i),
        None => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// An integral JSON number (`3` or `3.0`).
fn integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let x = n.as_f64()?;
        (x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64).then_some(x as i64)
    })
}

fn type_name(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Float => "a float",
        ValueType::Int => "an int",
        ValueType::String => "a string",
        ValueType::Bool => "a bool",
        ValueType::Timestamp => "a timestamp",
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Fills the tensor's buffer, converting cells to its data type.
struct Builder<'a> {
    input_name: &'a str,
    data: TensorData,
}

impl Builder<'_> {
    fn push(
        &mut self,
        cell: Cell<'_>,
        feature: Option<&Feature>,
        field: &str,
    ) -> Result<(), InputError> {
        let datatype = self.data.datatype();
        let mismatch = |what: &str| {
            let source = match feature {
                Some(f) => format!("feature `{}` ({})", f.name, type_name(f.ty)),
                None => what.to_string(),
            };
            InputError::new(
                field,
                format!(
                    "{source} cannot be fed to the model's {datatype} input `{}`",
                    self.input_name
                ),
            )
        };
        match (&mut self.data, cell) {
            (TensorData::F32(v), Cell::Float(x)) => v.push(x as f32),
            (TensorData::F32(v), Cell::Int(i)) => v.push(i as f32),
            (TensorData::F32(v), Cell::Bool(b)) => v.push(f32::from(u8::from(b))),
            (TensorData::F64(v), Cell::Float(x)) => v.push(x),
            (TensorData::F64(v), Cell::Int(i)) => v.push(i as f64),
            (TensorData::F64(v), Cell::Bool(b)) => v.push(f64::from(u8::from(b))),
            (TensorData::I64(v), Cell::Int(i)) => v.push(i),
            (TensorData::I64(v), Cell::Bool(b)) => v.push(i64::from(b)),
            (TensorData::I32(v), Cell::Int(i)) => match i32::try_from(i) {
                Ok(i) => v.push(i),
                Err(_) => {
                    return Err(InputError::new(
                        field,
                        format!(
                            "{i} does not fit the model's INT32 input `{}`",
                            self.input_name
                        ),
                    ));
                }
            },
            (TensorData::I32(v), Cell::Bool(b)) => v.push(i32::from(b)),
            (TensorData::I64(_) | TensorData::I32(_), Cell::Float(x)) => {
                return Err(InputError::new(
                    field,
                    format!(
                        "expected an integer for the model's {datatype} input `{}`, got {x}",
                        self.input_name
                    ),
                ));
            }
            (TensorData::Bool(v), Cell::Bool(b)) => v.push(b),
            (TensorData::Bool(v), Cell::Int(i @ (0 | 1))) => v.push(i == 1),
            (TensorData::Bool(_), _) => {
                return Err(InputError::new(
                    field,
                    format!(
                        "expected true or false for the model's BOOL input `{}`",
                        self.input_name
                    ),
                ));
            }
            (TensorData::Bytes(v), Cell::Str(s)) => v.push(s.to_string()),
            (TensorData::Bytes(_), _) => return Err(mismatch("a non-string value")),
            (_, Cell::Str(_)) => return Err(mismatch("a string")),
        }
        Ok(())
    }

    fn finish(self, shape: Vec<usize>) -> NamedTensor {
        NamedTensor::new(self.input_name, shape, self.data)
    }
}

// ------------------------------------------------------- Cairn responses --

/// Model outputs → Cairn's response, keyed by output name. For a single row
/// each output is that row's value: a scalar for a per-row shape `[]`, an
/// array for `[k]`, nested arrays beyond (`{"label": 0, "probabilities":
/// [0.99, 0.01]}`); for N rows each output is an array of N such values
/// (`{"label": [0, 1], "probabilities": [[..], [..]]}`). An output without a
/// batch axis (a scalar, or a single request whose output does not have one
/// row) is returned whole.
pub fn tensors_to_response(outputs: &[NamedTensor], single: bool) -> Value {
    let mut map = Map::with_capacity(outputs.len());
    for t in outputs {
        let value = if single && t.shape.first() == Some(&1) {
            nested(&t.shape[1..], &t.data, 0).0
        } else {
            nested(&t.shape, &t.data, 0).0
        };
        map.insert(t.name.clone(), value);
    }
    Value::Object(map)
}

/// The elements from `offset` on, nested per `shape`; returns the value and
/// the offset after it. Elements missing from `data` become `null`.
fn nested(shape: &[usize], data: &TensorData, offset: usize) -> (Value, usize) {
    match shape.split_first() {
        None => {
            let v = if offset < data.len() {
                data.json(offset)
            } else {
                Value::Null
            };
            (v, offset + 1)
        }
        Some((&n, rest)) => {
            let mut items = Vec::with_capacity(n);
            let mut at = offset;
            for _ in 0..n {
                let (v, next) = nested(rest, data, at);
                items.push(v);
                at = next;
            }
            (Value::Array(items), at)
        }
    }
}

// ----------------------------------------------------------- OIP v2 body --

/// Reads the `"inputs"` of an Open Inference Protocol v2 infer request:
/// each a `{"name", "shape", "datatype", "data"}` whose data (flat or nested,
/// row-major) holds exactly `product(shape)` elements of a known datatype.
pub fn parse_oip_inputs(body: &Value) -> Result<Vec<NamedTensor>, InputError> {
    let Value::Object(map) = body else {
        return Err(InputError::new(
            "body",
            format!("expected an object with `inputs`, got {}", kind(body)),
        ));
    };
    let Some(inputs) = map.get("inputs") else {
        return Err(InputError::new("inputs", "missing field"));
    };
    let Value::Array(inputs) = inputs else {
        return Err(InputError::new(
            "inputs",
            format!("expected an array of tensors, got {}", kind(inputs)),
        ));
    };
    if inputs.is_empty() {
        return Err(InputError::new("inputs", "expected at least one tensor"));
    }
    let tensors = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| parse_oip_tensor(t, &format!("inputs[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|u| u.name == t.name) {
            return Err(InputError::new(
                format!("inputs[{i}].name"),
                format!("input `{}` appears twice", t.name),
            ));
        }
    }
    Ok(tensors)
}

/// One OIP v2 tensor; `at` names it in errors.
fn parse_oip_tensor(value: &Value, at: &str) -> Result<NamedTensor, InputError> {
    let Value::Object(map) = value else {
        return Err(InputError::new(
            at,
            format!("expected a tensor object, got {}", kind(value)),
        ));
    };
    let field = |name: &str| format!("{at}.{name}");
    let get = |name: &str| {
        map.get(name)
            .ok_or_else(|| InputError::new(field(name), "missing field"))
    };

    let name = match get("name")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => {
            return Err(InputError::new(
                field("name"),
                format!("expected a non-empty string, got {}", kind(other)),
            ));
        }
    };

    let Value::Array(dims) = get("shape")? else {
        return Err(InputError::new(
            field("shape"),
            "expected an array of dimensions",
        ));
    };
    let shape = dims
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| {
                    InputError::new(
                        format!("{at}.shape[{i}]"),
                        format!("expected a non-negative integer, got {d}"),
                    )
                })
        })
        .collect::<Result<Vec<usize>, _>>()?;

    let datatype = match get("datatype")? {
        Value::String(s) => DataType::parse(s).ok_or_else(|| {
            let known: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
            InputError::new(
                field("datatype"),
                format!(
                    "unsupported datatype `{s}`; expected one of {}",
                    known.join(", ")
                ),
            )
        })?,
        other => {
            return Err(InputError::new(
                field("datatype"),
                format!("expected a string, got {}", kind(other)),
            ));
        }
    };

    let data_field = field("data");
    let cells: Vec<&Value> = match get("data")? {
        Value::Array(values) => {
            let mut cells = Vec::with_capacity(values.len());
            flatten(values, &mut cells);
            cells
        }
        other => {
            return Err(InputError::new(
                data_field,
                format!("expected an array, got {}", kind(other)),
            ));
        }
    };
    let expected = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| InputError::new(field("shape"), "too many elements"))?;
    if cells.len() != expected {
        return Err(InputError::new(
            data_field,
            format!(
                "shape {shape:?} holds {expected} elements, but data has {}",
                cells.len()
            ),
        ));
    }

    let bad = |j: usize, v: &Value, expected: &str| {
        InputError::new(
            format!("{at}.data[{j}]"),
            format!("expected {expected} for {datatype}, got {}", kind(v)),
        )
    };
    let data = match datatype {
        DataType::Fp32 | DataType::Fp64 => {
            let values = cells
                .iter()
                .enumerate()
                .map(|(j, v)| v.as_f64().ok_or_else(|| bad(j, v, "a number")))
                .collect::<Result<Vec<f64>, _>>()?;
            if datatype == DataType::Fp32 {
                TensorData::F32(values.into_iter().map(|x| x as f32).collect())
            } else {
                TensorData::F64(values)
            }
        }
        DataType::Int64 => TensorData::I64(
            cells
                .iter()
                .enumerate()
                .map(|(j, v)| match v {
                    Value::Number(n) => integer(n).ok_or_else(|| bad(j, v, "an integer")),
                    _ => Err(bad(j, v, "an integer")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int32 => TensorData::I32(
            cells
                .iter()
                .enumerate()
                .map(|(j, v)| match v {
                    Value::Number(n) => integer(n)
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(|| bad(j, v, "a 32-bit integer")),
                    _ => Err(bad(j, v, "a 32-bit integer")),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bool => TensorData::Bool(
            cells
                .iter()
                .enumerate()
                .map(|(j, v)| v.as_bool().ok_or_else(|| bad(j, v, "true or false")))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => TensorData::Bytes(
            cells
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(j, v, "a string"))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(NamedTensor {
        name,
        shape,
        datatype,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature(name: &str, ty: ValueType) -> Feature {
        Feature {
            name: name.to_string(),
            ty,
            shape: vec![],
        }
    }

    fn signature() -> Vec<Feature> {
        [
            "mean_radius",
            "mean_texture",
            "mean_smoothness",
            "worst_concavity",
        ]
        .into_iter()
        .map(|n| feature(n, ValueType::Float))
        .collect()
    }

    fn to_tensor(request: Value) -> Result<(NamedTensor, usize, bool), InputError> {
        request_to_tensor(&request, &signature(), "input", DataType::Fp32)
    }

    fn err(request: Value) -> InputError {
        to_tensor(request).expect_err("request should be rejected")
    }

    #[test]
    fn data_types_use_the_protocol_names() {
        for d in DataType::ALL {
            let json = serde_json::to_value(d).unwrap();
            assert_eq!(json, Value::String(d.as_str().to_string()));
            assert_eq!(serde_json::from_value::<DataType>(json).unwrap(), d);
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::from_value_type(ValueType::Float), DataType::Fp32);
        assert_eq!(DataType::from_value_type(ValueType::Int), DataType::Int64);
        assert_eq!(
            DataType::from_value_type(ValueType::String),
            DataType::Bytes
        );
        assert_eq!(DataType::from_value_type(ValueType::Bool), DataType::Bool);
        assert_eq!(
            DataType::from_value_type(ValueType::Timestamp),
            DataType::Int64
        );
    }

    #[test]
    fn one_row_of_named_features_follows_signature_order() {
        let (t, n, single) = to_tensor(json!({
            "worst_concavity": 0.4251,
            "mean_radius": 19.55,
            "mean_smoothness": 0.0926,
            "mean_texture": 28
        }))
        .unwrap();
        assert_eq!((n, single), (1, true));
        assert_eq!(t.name, "input");
        assert_eq!(t.shape, vec![1, 4]);
        assert_eq!(t.datatype, DataType::Fp32);
        assert_eq!(t.data, TensorData::F32(vec![19.55, 28.0, 0.0926, 0.4251]));
    }

    #[test]
    fn missing_feature_is_named() {
        let e = err(json!({"mean_radius": 1.0, "mean_texture": 2.0, "mean_smoothness": 3.0}));
        assert_eq!(e.field, "worst_concavity");
        assert!(e.message.contains("missing"), "{e}");
        assert!(e.to_string().starts_with("`worst_concavity`: "), "{e}");
    }

    #[test]
    fn unknown_feature_is_named_with_a_suggestion() {
        let e = err(json!({
            "mean_radus": 1.0, "mean_texture": 2.0, "mean_smoothness": 3.0, "worst_concavity": 4.0
        }));
        assert_eq!(e.field, "mean_radus");
        assert!(e.message.contains("unknown feature"), "{e}");
        assert!(e.message.contains("did you mean `mean_radius`"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err(json!({
            "mean_radius": "big", "mean_texture": 2.0, "mean_smoothness": 3.0, "worst_concavity": 4.0
        }));
        assert_eq!(e.field, "mean_radius");
        assert!(e.message.contains("expected a number"), "{e}");
        assert!(e.message.contains("got a string"), "{e}");
        let e = err(json!({
            "mean_radius": null, "mean_texture": 2.0, "mean_smoothness": 3.0, "worst_concavity": 4.0
        }));
        assert_eq!(e.field, "mean_radius");
    }

    #[test]
    fn instances_of_arrays() {
        let (t, n, single) = to_tensor(json!({"instances": [
            [19.55, 28.77, 0.0926, 0.4251],
            [11.13, 16.62, 0.08151, 0.0458]
        ]}))
        .unwrap();
        assert_eq!((n, single), (2, false));
        assert_eq!(t.shape, vec![2, 4]);
        assert_eq!(
            t.data,
            TensorData::F32(vec![
                19.55, 28.77, 0.0926, 0.4251, 11.13, 16.62, 0.08151, 0.0458
            ])
        );
    }

    #[test]
    fn a_single_instance_is_still_a_batch() {
        let (t, n, single) = to_tensor(json!({"instances": [[1, 2, 3, 4]]})).unwrap();
        assert_eq!((n, single), (1, false));
        assert_eq!(t.shape, vec![1, 4]);
    }

    #[test]
    fn inputs_is_the_same_as_instances() {
        let a = to_tensor(json!({"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]})).unwrap();
        let b = to_tensor(json!({"inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]})).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn instances_of_objects() {
        let (t, n, single) = to_tensor(json!({"instances": [
            {"mean_radius": 1, "mean_texture": 2, "mean_smoothness": 3, "worst_concavity": 4},
            {"worst_concavity": 8, "mean_smoothness": 7, "mean_texture": 6, "mean_radius": 5}
        ]}))
        .unwrap();
        assert_eq!((n, single), (2, false));
        assert_eq!(
            t.data,
            TensorData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        );
    }

    #[test]
    fn object_rows_name_row_and_feature() {
        let e = err(json!({"instances": [
            {"mean_radius": 1, "mean_texture": 2, "mean_smoothness": 3, "worst_concavity": 4},
            {"mean_radius": 1, "mean_texture": 2, "mean_smoothness": 3}
        ]}));
        assert_eq!(e.field, "instances[1].worst_concavity");
        let e = err(json!({"inputs": [
            {"mean_radius": 1, "mean_texture": 2, "mean_smoothness": 3, "worst_concavity": 4, "x": 1}
        ]}));
        assert_eq!(e.field, "inputs[0].x");
    }

    #[test]
    fn wrong_row_length_names_the_row() {
        let e = err(json!({"instances": [[1, 2, 3, 4], [1, 2, 3]]}));
        assert_eq!(e.field, "instances[1]");
        assert!(e.message.contains("expected 4 values"), "{e}");
        assert!(e.message.contains("mean_radius, mean_texture"), "{e}");
        assert!(e.message.contains("got 3"), "{e}");
    }

    #[test]
    fn wrong_type_in_a_row_names_cell_and_feature() {
        let e = err(json!({"instances": [[1, "x", 3, 4]]}));
        assert_eq!(e.field, "instances[0][1]");
        assert!(e.message.contains("mean_texture"), "{e}");
    }

    #[test]
    fn malformed_batches_are_rejected() {
        assert_eq!(err(json!({"instances": []})).field, "instances");
        assert_eq!(err(json!({"instances": {"a": 1}})).field, "instances");
        assert_eq!(err(json!({"instances": [1, 2]})).field, "instances[0]");
        assert_eq!(
            err(json!({"instances": [[1, 2, 3, 4]], "extra": 1})).field,
            "extra"
        );
        let e = err(json!({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}));
        assert!(e.message.contains("not both"), "{e}");
        assert_eq!(err(json!([1, 2, 3, 4])).field, "request");
        assert_eq!(err(json!("hello")).field, "request");
    }

    #[test]
    fn without_a_signature_the_first_row_gives_the_width() {
        let (t, n, _) = request_to_tensor(
            &json!({"instances": [[1, 2, 3], [4, 5, 6]]}),
            &[],
            "x",
            DataType::Fp64,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, TensorData::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));

        let e = request_to_tensor(
            &json!({"inputs": [[1, 2, 3], [4, 5]]}),
            &[],
            "x",
            DataType::Fp32,
        )
        .unwrap_err();
        assert_eq!(e.field, "inputs[1]");
        assert!(e.message.contains("expected 3 values"), "{e}");
    }

    #[test]
    fn without_a_signature_named_features_need_one() {
        let e = request_to_tensor(&json!({"a": 1.0}), &[], "x", DataType::Fp32).unwrap_err();
        assert_eq!(e.field, "request");
        assert!(e.message.contains("signature"), "{e}");
        let e = request_to_tensor(
            &json!({"instances": [{"a": 1.0}]}),
            &[],
            "x",
            DataType::Fp32,
        )
        .unwrap_err();
        assert_eq!(e.field, "instances[0]");
        assert!(e.message.contains("signature"), "{e}");
    }

    #[test]
    fn values_are_converted_to_the_input_type() {
        let sig = vec![
            feature("n", ValueType::Int),
            feature("flag", ValueType::Bool),
            feature("at", ValueType::Timestamp),
        ];
        let (t, _, _) = request_to_tensor(
            &json!({"n": 3, "flag": true, "at": "1970-01-01T00:01:00Z"}),
            &sig,
            "x",
            DataType::Int64,
        )
        .unwrap();
        assert_eq!(t.data, TensorData::I64(vec![3, 1, 60]));

        let e = request_to_tensor(
            &json!({"n": 3.5, "flag": true, "at": 0}),
            &sig,
            "x",
            DataType::Int64,
        )
        .unwrap_err();
        assert_eq!(e.field, "n");
        assert!(e.message.contains("integer"), "{e}");

        let e = request_to_tensor(&json!({"instances": [[1.5, 2]]}), &[], "x", DataType::Int32)
            .unwrap_err();
        assert_eq!(e.field, "instances[0][0]");

        let words = vec![feature("text", ValueType::String)];
        let e = request_to_tensor(&json!({"text": "hi"}), &words, "x", DataType::Fp32).unwrap_err();
        assert_eq!(e.field, "text");
        assert!(e.message.contains("cannot be fed"), "{e}");
        let (t, _, _) =
            request_to_tensor(&json!({"text": "hi"}), &words, "x", DataType::Bytes).unwrap();
        assert_eq!(t.data, TensorData::Bytes(vec!["hi".into()]));
    }

    #[test]
    fn features_with_a_shape_take_several_columns() {
        let sig = vec![
            feature("a", ValueType::Float),
            Feature {
                name: "v".into(),
                ty: ValueType::Float,
                shape: vec![2],
            },
        ];
        let (t, _, _) =
            request_to_tensor(&json!({"a": 1, "v": [2, 3]}), &sig, "x", DataType::Fp32).unwrap();
        assert_eq!(t.shape, vec![1, 3]);
        assert_eq!(t.data, TensorData::F32(vec![1.0, 2.0, 3.0]));
        let (t, _, _) = request_to_tensor(
            &json!({"instances": [[1, [2, 3]]]}),
            &sig,
            "x",
            DataType::Fp32,
        )
        .unwrap();
        assert_eq!(t.data, TensorData::F32(vec![1.0, 2.0, 3.0]));
        let e =
            request_to_tensor(&json!({"a": 1, "v": [2]}), &sig, "x", DataType::Fp32).unwrap_err();
        assert_eq!(e.field, "v");
    }

    fn outputs(n: usize) -> Vec<NamedTensor> {
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
        let probs: Vec<f32> = (0..n)
            .flat_map(|i| [0.99 - i as f32 * 0.5, 0.01 + i as f32 * 0.5])
            .collect();
        vec![
            NamedTensor::new("label", vec![n], TensorData::I64(labels)),
            NamedTensor::new("probabilities", vec![n, 2], TensorData::F32(probs)),
        ]
    }

    #[test]
    fn a_single_row_response_has_per_row_values() {
        let response = tensors_to_response(&outputs(1), true);
        assert_eq!(response, json!({"label": 0, "probabilities": [0.99, 0.01]}));
        assert_eq!(
            response.to_string(),
            r#"{"label":0,"probabilities":[0.99,0.01]}"#
        );
    }

    #[test]
    fn a_batch_response_has_arrays_of_rows() {
        let response = tensors_to_response(&outputs(2), false);
        assert_eq!(
            response,
            json!({"label": [0, 1], "probabilities": [[0.99, 0.01], [0.49, 0.51]]})
        );
        let one = tensors_to_response(&outputs(1), false);
        assert_eq!(one, json!({"label": [0], "probabilities": [[0.99, 0.01]]}));
    }

    #[test]
    fn oip_inputs_are_parsed_and_checked() {
        let body = json!({"inputs": [
            {"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, 3, 4]},
            {"name": "ids", "shape": [2], "datatype": "INT64", "data": [[7], [8]]},
            {"name": "flags", "shape": [1], "datatype": "BOOL", "data": [true]},
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"], "parameters": {}}
        ]});
        let tensors = parse_oip_inputs(&body).unwrap();
        assert_eq!(tensors.len(), 4);
        assert_eq!(tensors[0].shape, vec![2, 2]);
        assert_eq!(tensors[0].data, TensorData::F32(vec![1.0, 2.5, 3.0, 4.0]));
        assert_eq!(tensors[1].data, TensorData::I64(vec![7, 8]));
        assert_eq!(tensors[2].data, TensorData::Bool(vec![true]));
        assert_eq!(tensors[3].data, TensorData::Bytes(vec!["hi".into()]));

        let one = |t: Value| parse_oip_inputs(&json!({"inputs": [t]})).unwrap_err();
        let e = one(json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}));
        assert_eq!(e.field, "inputs[0].data");
        assert!(e.message.contains("4 elements"), "{e}");
        let e = one(json!({"name": "x", "shape": [1], "datatype": "FP16", "data": [1]}));
        assert_eq!(e.field, "inputs[0].datatype");
        let e = one(json!({"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 1.5]}));
        assert_eq!(e.field, "inputs[0].data[1]");
        let e = one(json!({"name": "x", "shape": [-1], "datatype": "INT64", "data": [1]}));
        assert_eq!(e.field, "inputs[0].shape[0]");
        let e = one(json!({"shape": [1], "datatype": "INT64", "data": [1]}));
        assert_eq!(e.field, "inputs[0].name");
        assert_eq!(parse_oip_inputs(&json!({})).unwrap_err().field, "inputs");
        assert_eq!(
            parse_oip_inputs(&json!({"inputs": []})).unwrap_err().field,
            "inputs"
        );
    }

    #[test]
    fn named_tensors_round_trip_as_oip_json() {
        let t = NamedTensor::new(
            "probabilities",
            vec![1, 2],
            TensorData::F32(vec![0.99, 0.01]),
        );
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(
            text,
            r#"{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.99,0.01]}"#
        );
        assert_eq!(serde_json::from_str::<NamedTensor>(&text).unwrap(), t);
        assert_eq!(
            serde_json::to_value(&t).unwrap()["data"],
            json!([0.99, 0.01])
        );
    }
}
