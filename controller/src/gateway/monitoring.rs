//! Model monitoring: business metrics and delayed ground truth attached to
//! inferences, and their aggregates per model version and time window.
//!
//! - `POST /models/NAME/metrics`: named business metrics (numbers or
//!   strings) attached to an inference UUID, or to the model (no UUID: timed
//!   now). A metric attached to an inference is timed as the inference.
//! - `POST /models/NAME/feedback`: ground truth by UUID, as JSON, JSON lines
//!   or CSV (`uuid,label`). Re-sending a UUID replaces its label.
//! - `GET /api/v1/models/NAME/metrics/aggregate`: per version and window,
//!   request counts, label coverage, accuracy/precision/recall/F1
//!   (classification) or MAE/RMSE (regression), and business metrics.
//!
//! The data lives in the events database (tables `business_metrics` and
//! `feedback`, created by its second migration), written through the event
//! log's monitoring connection. The SQL here only fetches rows;
//! [`aggregate`] is a pure function over them. The endpoint reads them with
//! [`fetch_grouped`], which counts identical rows of a window as it reads
//! (a classifier's outputs reduced to their `label`), so that a million
//! inferences aggregate in well under a second; the dashboard keeps its
//! summaries ([`summary`]).

// Handlers return ready-made error responses by value, as axum does.
#![allow(clippy::result_large_err)]

use super::events::EventLog;
use super::http::GatewayState;
use crate::spec::ModelTask;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The largest body the monitoring endpoints read (feedback comes by the
/// thousands).
const MAX_BODY: usize = 32 << 20;

// ----------------------------------------------------------------- input --

/// A business metric's value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A number.
    Num(f64),
    /// A string (counted per value).
    Text(String),
}

/// Business metrics for one inference (or, without `uuid`, the model).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricItem {
    /// The inference, if any.
    pub uuid: Option<uuid::Uuid>,
    /// The metrics, by name.
    pub metrics: Vec<(String, MetricValue)>,
}

/// A ground-truth label for one inference.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackItem {
    /// The inference.
    pub uuid: uuid::Uuid,
    /// The true label (a number, a string, a boolean, or an array for a
    /// batch prediction).
    pub label: Value,
}

fn parse_uuid(v: Option<&Value>, at: &str) -> Result<uuid::Uuid, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}`uuid`: expected a UUID string"))?;
    uuid::Uuid::parse_str(s.trim()).map_err(|_| format!("{at}`uuid`: `{s}` is not a UUID"))
}

fn at(index: Option<usize>) -> String {
    index.map_or(String::new(), |i| format!("item {i}: "))
}

/// Parses a metrics body: one `{"uuid"?, "metrics": {...}}` or an array.
pub fn parse_metrics(body: &Value) -> Result<Vec<MetricItem>, String> {
    let one = |v: &Value, index: Option<usize>| -> Result<MetricItem, String> {
        let at = at(index);
        let obj = v.as_object().ok_or_else(|| {
            format!("{at}expected an object {{\"uuid\": ..., \"metrics\": {{...}}}}")
        })?;
        if let Some(k) = obj.keys().find(|k| *k != "uuid" && *k != "metrics") {
            return Err(format!(
                "{at}unknown field `{k}` (expected `uuid`, `metrics`)"
            ));
        }
        let uuid = match obj.get("uuid") {
            None | Some(Value::Null) => None,
            u => Some(parse_uuid(u, &at)?),
        };
        let metrics = obj
            .get("metrics")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{at}`metrics`: expected an object of named values"))?;
        if metrics.is_empty() {
            return Err(format!("{at}`metrics` is empty"));
        }
        let metrics = metrics
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Number(n) => MetricValue::Num(
                        n.as_f64()
                            .ok_or_else(|| format!("{at}`metrics.{name}`: not a finite number"))?,
                    ),
                    Value::String(s) => MetricValue::Text(s.clone()),
                    _ => {
                        return Err(format!(
                            "{at}`metrics.{name}`: expected a number or a string"
                        ));
                    }
                };
                Ok((name.clone(), value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(MetricItem { uuid, metrics })
    };
    match body {
        Value::Array(items) if items.is_empty() => Err("the array is empty".into()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| one(v, Some(i)))
            .collect(),
        v => Ok(vec![one(v, None)?]),
    }
}

fn feedback_item(v: &Value, index: Option<usize>, what: &str) -> Result<FeedbackItem, String> {
    let at = index.map_or(String::new(), |i| format!("{what} {i}: "));
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}expected an object {{\"uuid\": ..., \"label\": ...}}"))?;
    if let Some(k) = obj.keys().find(|k| *k != "uuid" && *k != "label") {
        return Err(format!(
            "{at}unknown field `{k}` (expected `uuid`, `label`)"
        ));
    }
    let uuid = parse_uuid(obj.get("uuid"), &at)?;
    let label = match obj.get("label") {
        None | Some(Value::Null) => return Err(format!("{at}`label` is missing")),
        Some(Value::Object(_)) => {
            return Err(format!(
                "{at}`label`: expected a number, a string, a boolean or an array"
            ));
        }
        Some(l) => l.clone(),
    };
    Ok(FeedbackItem { uuid, label })
}

/// A CSV cell as a label: a number when it reads as one, else the text.
fn csv_label(cell: &str) -> Value {
    if let Ok(i) = cell.parse::<i64>() {
        return json!(i);
    }
    match cell.parse::<f64>() {
        Ok(f) if f.is_finite() => json!(f),
        _ => json!(cell),
    }
}

/// Splits one CSV record (RFC 4180 quotes; no newlines inside fields).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quote".into());
    }
    fields.push(field);
    Ok(fields.into_iter().map(|f| f.trim().to_string()).collect())
}

/// Parses a feedback body by its content type: JSON (one object or an
/// array), JSON lines (`application/x-ndjson`, `application/jsonl`) or CSV
/// (`text/csv`, a header naming `uuid` and `label`).
pub fn parse_feedback(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<FeedbackItem>, String> {
    let ct = content_type
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let items = if ct.contains("csv") {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or("the CSV is empty")?;
        let header = csv_fields(header).map_err(|e| format!("CSV header: {e}"))?;
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!("the CSV header must name `uuid` and `label` columns, not {header:?}")
                })
        };
        let (u, l) = (column("uuid")?, column("label")?);
        lines
            .map(|(n, line)| {
                let at = format!("CSV line {}: ", n + 1);
                let fields = csv_fields(line).map_err(|e| format!("{at}{e}"))?;
                let cell = |i: usize| {
                    fields
                        .get(i)
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| format!("{at}`{}` is missing", header[i]))
                };
                let uuid = cell(u)?;
                Ok(FeedbackItem {
                    uuid: uuid::Uuid::parse_str(uuid)
                        .map_err(|_| format!("{at}`uuid`: `{uuid}` is not a UUID"))?,
                    label: csv_label(cell(l)?),
                })
            })
            .collect::<Result<Vec<_>, String>>()?
    } else if ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-seq") {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, line)| {
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
                feedback_item(&v, Some(n + 1), "line")
            })
            .collect::<Result<Vec<_>, String>>()?
    } else {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("the body is not JSON: {e}"))?;
        match &v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| feedback_item(v, Some(i), "item"))
                .collect::<Result<Vec<_>, String>>()?,
            v => vec![feedback_item(v, None, "item")?],
        }
    };
    if items.is_empty() {
        return Err("no feedback in the body".into());
    }
    Ok(items)
}

// --------------------------------------------------------------- storage --

/// What a write recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Items recorded.
    pub recorded: usize,
    /// Of those, feedback that replaced an earlier label.
    pub replaced: usize,
    /// UUIDs that are not inferences of the model.
    pub unknown: Vec<uuid::Uuid>,
}

/// The time of inference `uuid` of `model`, if it is one.
fn inference_time(
    tx: &rusqlite::Transaction<'_>,
    model: &str,
    uuid: &uuid::Uuid,
) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT time_ms FROM inference_events WHERE uuid = ?1 AND model = ?2")?
        .query_row(params![&uuid.as_bytes()[..], model], |r| r.get(0))
        .optional()
}

/// Stores business metrics; those of unknown inferences are not stored.
pub fn record_metrics(
    conn: &mut Connection,
    model: &str,
    items: &[MetricItem],
    now_ms: i64,
) -> rusqlite::Result<Recorded> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Recorded::default();
    for item in items {
        let time_ms = match &item.uuid {
            None => now_ms,
            Some(u) => match inference_time(&tx, model, u)? {
                Some(t) => t,
                None => {
                    out.unknown.push(*u);
                    continue;
                }
            },
        };
        let mut insert = tx.prepare_cached(
            "INSERT INTO business_metrics (uuid, model, time_ms, name, num, text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (name, value) in &item.metrics {
            let (num, text) = match value {
                MetricValue::Num(n) => (Some(*n), None),
                MetricValue::Text(t) => (None, Some(t.as_str())),
            };
            insert.execute(params![
                item.uuid.as_ref().map(|u| u.as_bytes().to_vec()),
                model,
                time_ms,
                name,
                num,
                text
            ])?;
        }
        out.recorded += 1;
    }
    tx.commit()?;
    Ok(out)
}

/// Stores feedback, replacing earlier labels of the same inferences.
pub fn record_feedback(
    conn: &mut Connection,
    model: &str,
    items: &[FeedbackItem],
    now_ms: i64,
) -> rusqlite::Result<Recorded> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Recorded::default();
    for item in items {
        if inference_time(&tx, model, &item.uuid)?.is_none() {
            out.unknown.push(item.uuid);
            continue;
        }
        let key = &item.uuid.as_bytes()[..];
        let existed = tx
            .prepare_cached("SELECT 1 FROM feedback WHERE uuid = ?1")?
            .exists([key])?;
        tx.prepare_cached(
            "INSERT INTO feedback (uuid, model, label, received_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (uuid) DO UPDATE SET label = excluded.label, \
             received_ms = excluded.received_ms",
        )?
        .execute(params![key, model, item.label.to_string(), now_ms])?;
        out.recorded += 1;
        out.replaced += usize::from(existed);
    }
    tx.commit()?;
    Ok(out)
}

/// A prediction, with its feedback if any.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRow {
    /// The model version.
    pub version: String,
    /// The inference time.
    pub time_ms: i64,
    /// The HTTP status answered.
    pub status: u16,
    /// The model's outputs.
    pub outputs: Value,
    /// The ground truth, if received.
    pub label: Option<Value>,
    /// How many inferences the row stands for (1, or more for rows
    /// grouped by [`fetch_grouped`]).
    pub count: u64,
}

/// A business metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// The version of its inference; `None` for model-level metrics.
    pub version: Option<String>,
    /// Its time.
    pub time_ms: i64,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: MetricValue,
}

/// The rows of `model` with `from_ms <= time < to_ms`.
pub fn fetch(
    conn: &Connection,
    model: &str,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<(Vec<PredictionRow>, Vec<MetricRow>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, e.time_ms, e.status, e.outputs, f.label \
         FROM inference_events e LEFT JOIN feedback f ON f.uuid = e.uuid \
         WHERE e.model = ?1 AND e.time_ms >= ?2 AND e.time_ms < ?3",
    )?;
    let predictions = stmt
        .query_map(params![model, from_ms, to_ms], |r| {
            let outputs: String = r.get(3)?;
            let label: Option<String> = r.get(4)?;
            Ok(PredictionRow {
                version: r.get(0)?,
                time_ms: r.get(1)?,
                status: u16::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                outputs: serde_json::from_str(&outputs).unwrap_or(Value::Null),
                label: label.and_then(|l| serde_json::from_str(&l).ok()),
                count: 1,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((predictions, fetch_metrics(conn, model, from_ms, to_ms)?))
}

/// The rows of `model` with `from_ms <= time < to_ms`, as [`fetch`], but
/// grouped while read for [`aggregate`] with windows of `window_ms`: each
/// prediction row stands for the inferences of one window, version, status,
/// outputs and label (its time the window's start, its `count` theirs).
/// Unless the model is a regressor, outputs that are an object with a
/// `label` are reduced to `{"label": ...}` first (all that a classifier's
/// scores read), so a classifier's rows group to a few per window.
pub fn fetch_grouped(
    conn: &Connection,
    model: &str,
    task: Option<ModelTask>,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
) -> rusqlite::Result<(Vec<PredictionRow>, Vec<MetricRow>)> {
    /// A classifier's outputs as far as its scores go.
    #[derive(serde::Deserialize)]
    struct Labeled<'a> {
        #[serde(borrow)]
        label: Option<&'a serde_json::value::RawValue>,
    }
    /// Texts by number, so that rows are counted without copying them.
    #[derive(Default)]
    struct Interned(HashMap<String, usize>);
    impl Interned {
        fn get(&mut self, text: &str) -> usize {
            if let Some(i) = self.0.get(text) {
                return *i;
            }
            let i = self.0.len();
            self.0.insert(text.to_string(), i);
            i
        }
        fn texts(self) -> Vec<String> {
            let mut texts = vec![String::new(); self.0.len()];
            for (text, i) in self.0 {
                texts[i] = text;
            }
            texts
        }
    }
    let window_ms = window_ms.max(1);
    let reduce = task != Some(ModelTask::Regression);
    // (version, window start, status, outputs: (reduced to their label?,
    // text), label).
    type Key = (usize, i64, i64, (bool, usize), Option<usize>);
    let mut groups: HashMap<Key, u64> = HashMap::new();
    let (mut versions, mut texts) = (Interned::default(), Interned::default());
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, e.time_ms, e.status, e.outputs, f.label \
         FROM inference_events e LEFT JOIN feedback f ON f.uuid = e.uuid \
         WHERE e.model = ?1 AND e.time_ms >= ?2 AND e.time_ms < ?3",
    )?;
    let mut rows = stmt.query(params![model, from_ms, to_ms])?;
    while let Some(r) = rows.next()? {
        let version = versions.get(r.get_ref(0)?.as_str().unwrap_or_default());
        let start = r.get::<_, i64>(1)?.div_euclid(window_ms) * window_ms;
        let status: i64 = r.get(2)?;
        let outputs = r.get_ref(3)?.as_str().unwrap_or_default();
        let outputs = match reduce
            .then(|| serde_json::from_str::<Labeled<'_>>(outputs).ok())
            .flatten()
            .and_then(|o| o.label)
            .filter(|l| l.get() != "null")
        {
            Some(label) => (true, texts.get(label.get())),
            None => (false, texts.get(outputs)),
        };
        let label = r.get_ref(4)?.as_str_or_null()?.map(|l| texts.get(l));
        *groups
            .entry((version, start, status, outputs, label))
            .or_default() += 1;
    }
    let (versions, texts) = (versions.texts(), texts.texts());
    let parse = |i: usize| serde_json::from_str(&texts[i]).unwrap_or(Value::Null);
    let predictions = groups
        .into_iter()
        .map(
            |((version, time_ms, status, (reduced, outputs), label), count)| PredictionRow {
                version: versions[version].clone(),
                time_ms,
                status: u16::try_from(status).unwrap_or(0),
                outputs: if reduced {
                    json!({ "label": parse(outputs) })
                } else {
                    parse(outputs)
                },
                label: label.and_then(|l| serde_json::from_str(&texts[l]).ok()),
                count,
            },
        )
        .collect();
    let metrics = fetch_metrics(conn, model, from_ms, to_ms)?;
    Ok((predictions, metrics))
}

/// The business metrics of a model in `[from_ms, to_ms)`.
fn fetch_metrics(
    conn: &Connection,
    model: &str,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<MetricRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, b.time_ms, b.name, b.num, b.text \
         FROM business_metrics b LEFT JOIN inference_events e ON e.uuid = b.uuid \
         WHERE b.model = ?1 AND b.time_ms >= ?2 AND b.time_ms < ?3",
    )?;
    let metrics = stmt
        .query_map(params![model, from_ms, to_ms], |r| {
            let num: Option<f64> = r.get(3)?;
            let text: Option<String> = r.get(4)?;
            Ok(MetricRow {
                version: r.get(0)?,
                time_ms: r.get(1)?,
                name: r.get(2)?,
                value: match num {
                    Some(n) => MetricValue::Num(n),
                    None => MetricValue::Text(text.unwrap_or_default()),
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(metrics)
}

// ----------------------------------------------------------- aggregation --

/// A prediction's rows: one for a single prediction, several for a batch.
struct Predicted {
    rows: Vec<Value>,
    batch: bool,
}

/// OIP outputs (`[{"name", "data", ...}]`) as a map name → data.
fn oip_outputs(outputs: &Value) -> Option<Map<String, Value>> {
    let tensors = outputs.as_array()?;
    let mut map = Map::new();
    for t in tensors {
        map.insert(t.get("name")?.as_str()?.to_string(), t.get("data")?.clone());
    }
    Some(map)
}

fn argmax(row: &[Value]) -> Option<Value> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in row.iter().enumerate() {
        let x = v.as_f64()?;
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| json!(i))
}

fn scalar_or_rows(v: &Value) -> Predicted {
    match v {
        Value::Array(rows) => Predicted {
            rows: rows.clone(),
            batch: true,
        },
        v => Predicted {
            rows: vec![v.clone()],
            batch: false,
        },
    }
}

/// The predicted class(es): the `label` output, else the argmax of
/// `probabilities`.
fn predicted_classes(outputs: &Value) -> Option<Predicted> {
    let (map, oip) = match outputs {
        Value::Object(m) => (m.clone(), false),
        Value::Array(_) => (oip_outputs(outputs)?, true),
        Value::Null => return None,
        v => return Some(scalar_or_rows(v)),
    };
    if let Some(label) = map.get("label") {
        return Some(scalar_or_rows(label));
    }
    let probabilities = map.get("probabilities")?.as_array()?;
    if oip {
        return None;
    }
    if probabilities.iter().all(Value::is_array) {
        let rows = probabilities
            .iter()
            .map(|r| argmax(r.as_array()?))
            .collect::<Option<Vec<_>>>()?;
        Some(Predicted { rows, batch: true })
    } else {
        Some(Predicted {
            rows: vec![argmax(probabilities)?],
            batch: false,
        })
    }
}

/// The predicted number(s): the first numeric output.
fn predicted_numbers(outputs: &Value) -> Option<Predicted> {
    let numeric = |v: &Value| -> Option<Predicted> {
        match v {
            Value::Number(_) => Some(scalar_or_rows(v)),
            Value::Array(rows) => {
                let rows = rows
                    .iter()
                    .map(|r| match r {
                        Value::Number(_) => Some(r.clone()),
                        Value::Array(a) if a.len() == 1 && a[0].is_number() => Some(a[0].clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Predicted { rows, batch: true })
            }
            _ => None,
        }
    };
    match outputs {
        Value::Object(m) => m.values().find_map(numeric),
        Value::Array(_) => match oip_outputs(outputs) {
            Some(m) => m.values().find_map(numeric),
            None => numeric(outputs),
        },
        v => numeric(v),
    }
}

/// A class label as a comparable key: integral numbers and booleans as
/// integers (`1`, `true` → "1"), other numbers and strings as written.
fn class_key(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Some((f as i64).to_string()),
            _ => Some(n.to_string()),
        },
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Pairs a prediction's rows with its label: a single prediction with a
/// scalar (or one-element array), a batch with an array of its length.
fn pair(pred: &Predicted, label: &Value) -> Option<Vec<(Value, Value)>> {
    let labels: Vec<Value> = match label {
        Value::Array(a) if pred.batch || a.len() == 1 => a.clone(),
        Value::Array(_) => return None,
        v if !pred.batch || pred.rows.len() == 1 => vec![v.clone()],
        _ => return None,
    };
    (labels.len() == pred.rows.len()).then(|| pred.rows.iter().cloned().zip(labels).collect())
}

/// Classification scores over (predicted, actual) class keys, each with
/// its count.
fn classification(pairs: &[((String, String), u64)]) -> Map<String, Value> {
    let mut out = Map::new();
    if pairs.is_empty() {
        for k in ["accuracy", "precision", "recall", "f1"] {
            out.insert(k.into(), Value::Null);
        }
        return out;
    }
    let n = pairs.iter().map(|p| p.1).sum::<u64>() as f64;
    let count = |f: &dyn Fn(&str, &str) -> bool| {
        pairs
            .iter()
            .filter(|((p, a), _)| f(p, a))
            .map(|(_, c)| c)
            .sum::<u64>() as f64
    };
    let correct = count(&|p, a| p == a);
    let classes: BTreeSet<&str> = pairs
        .iter()
        .flat_map(|((p, a), _)| [p.as_str(), a.as_str()])
        .collect();
    let binary = classes.iter().all(|c| *c == "0" || *c == "1");
    let prf = |class: &str| {
        let tp = count(&|p, a| p == class && a == class);
        let fp = count(&|p, a| p == class && a != class);
        let fn_ = count(&|p, a| p != class && a == class);
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (precision, recall, f1)
    };
    let (precision, recall, f1) = if binary {
        prf("1")
    } else {
        let k = classes.len() as f64;
        let (p, r, f) = classes
            .iter()
            .map(|c| prf(c))
            .fold((0.0, 0.0, 0.0), |s, x| (s.0 + x.0, s.1 + x.1, s.2 + x.2));
        (p / k, r / k, f / k)
    };
    out.insert("accuracy".into(), json!(correct / n));
    out.insert("precision".into(), json!(precision));
    out.insert("recall".into(), json!(recall));
    out.insert("f1".into(), json!(f1));
    out.insert(
        "averaging".into(),
        json!(if binary { "binary" } else { "macro" }),
    );
    out
}

/// Regression scores over (predicted, actual) numbers, each with its count.
fn regression(pairs: &[((f64, f64), u64)]) -> Map<String, Value> {
    let mut out = Map::new();
    if pairs.is_empty() {
        out.insert("mae".into(), Value::Null);
        out.insert("rmse".into(), Value::Null);
        return out;
    }
    let n = pairs.iter().map(|p| p.1).sum::<u64>() as f64;
    let mae = pairs
        .iter()
        .map(|((p, a), c)| (p - a).abs() * *c as f64)
        .sum::<f64>()
        / n;
    let mse = pairs
        .iter()
        .map(|((p, a), c)| (p - a) * (p - a) * *c as f64)
        .sum::<f64>()
        / n;
    out.insert("mae".into(), json!(mae));
    out.insert("rmse".into(), json!(mse.sqrt()));
    out
}

/// The nearest-rank percentile `p` (0..=1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Business metric aggregates: numbers → count, sum, mean, p50, p95;
/// strings → count and count per value.
fn business(rows: &[&MetricRow]) -> Map<String, Value> {
    let mut by_name: BTreeMap<&str, Vec<&MetricValue>> = BTreeMap::new();
    for r in rows {
        by_name.entry(&r.name).or_default().push(&r.value);
    }
    let mut out = Map::new();
    for (name, values) in by_name {
        let mut nums: Vec<f64> = values
            .iter()
            .filter_map(|v| match v {
                MetricValue::Num(n) => Some(*n),
                MetricValue::Text(_) => None,
            })
            .collect();
        let mut texts: BTreeMap<&str, u64> = BTreeMap::new();
        for v in &values {
            if let MetricValue::Text(t) = v {
                *texts.entry(t).or_default() += 1;
            }
        }
        let mut m = Map::new();
        m.insert("count".into(), json!(values.len()));
        if !nums.is_empty() {
            nums.sort_by(f64::total_cmp);
            let sum: f64 = nums.iter().sum();
            m.insert("sum".into(), json!(sum));
            m.insert("mean".into(), json!(sum / nums.len() as f64));
            m.insert("p50".into(), json!(percentile(&nums, 0.5)));
            m.insert("p95".into(), json!(percentile(&nums, 0.95)));
        }
        if !texts.is_empty() {
            m.insert("values".into(), json!(texts));
        }
        out.insert(name.to_string(), Value::Object(m));
    }
    out
}

/// The task of a model: its spec's, else classification when its outputs
/// have a `label` (or `probabilities`), else regression.
pub fn infer_task(task: Option<ModelTask>, rows: &[PredictionRow]) -> ModelTask {
    task.unwrap_or_else(|| {
        let classifier = rows.iter().any(|r| {
            let map = match &r.outputs {
                Value::Object(m) => Some(m.clone()),
                v @ Value::Array(_) => oip_outputs(v),
                _ => None,
            };
            map.is_some_and(|m| m.contains_key("label") || m.contains_key("probabilities"))
        });
        if classifier {
            ModelTask::Classification
        } else {
            ModelTask::Regression
        }
    })
}

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// Aggregates per (window, version): windows of `window_ms` aligned on the
/// Unix epoch (UTC), only those with data; model-level business metrics
/// (no inference) under version `null`.
pub fn aggregate(
    task: ModelTask,
    predictions: &[PredictionRow],
    metrics: &[MetricRow],
    window_ms: i64,
) -> Vec<Value> {
    let window_ms = window_ms.max(1);
    let start_of = |t: i64| t.div_euclid(window_ms) * window_ms;
    type Key = (i64, Option<String>);
    let mut preds: BTreeMap<Key, Vec<&PredictionRow>> = BTreeMap::new();
    for p in predictions {
        preds
            .entry((start_of(p.time_ms), Some(p.version.clone())))
            .or_default()
            .push(p);
    }
    let mut mets: BTreeMap<Key, Vec<&MetricRow>> = BTreeMap::new();
    for m in metrics {
        mets.entry((start_of(m.time_ms), m.version.clone()))
            .or_default()
            .push(m);
    }
    let keys: BTreeSet<&Key> = preds.keys().chain(mets.keys()).collect();
    keys.into_iter()
        .map(|key| {
            let rows = preds.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let requests: u64 = rows.iter().map(|r| r.count).sum();
            let ok: Vec<&&PredictionRow> = rows.iter().filter(|r| r.status < 400).collect();
            let ok_count: u64 = ok.iter().map(|r| r.count).sum();
            let labeled: u64 = ok
                .iter()
                .filter(|r| r.label.is_some())
                .map(|r| r.count)
                .sum();
            let mut unscorable = 0u64;
            let mut out = Map::new();
            out.insert("start".into(), rfc3339(key.0));
            out.insert("end".into(), rfc3339(key.0 + window_ms));
            out.insert("version".into(), json!(key.1));
            out.insert("requests".into(), json!(requests));
            out.insert("errors".into(), json!(requests - ok_count));
            out.insert("labeled".into(), json!(labeled));
            out.insert(
                "coverage".into(),
                if ok_count == 0 {
                    Value::Null
                } else {
                    json!(labeled as f64 / ok_count as f64)
                },
            );
            let labeled_rows = ok.iter().filter_map(|r| Some((*r, r.label.as_ref()?)));
            let (scored, scores) = match task {
                ModelTask::Classification => {
                    let mut pairs = Vec::new();
                    for (r, label) in labeled_rows {
                        let paired = predicted_classes(&r.outputs)
                            .and_then(|p| pair(&p, label))
                            .and_then(|ps| {
                                ps.iter()
                                    .map(|(p, a)| Some((class_key(p)?, class_key(a)?)))
                                    .collect::<Option<Vec<_>>>()
                            });
                        match paired {
                            Some(ps) => pairs.extend(ps.into_iter().map(|p| (p, r.count))),
                            None => unscorable += r.count,
                        }
                    }
                    let scored: u64 = pairs.iter().map(|p| p.1).sum();
                    (scored, classification(&pairs))
                }
                ModelTask::Regression => {
                    let mut pairs = Vec::new();
                    for (r, label) in labeled_rows {
                        let paired = predicted_numbers(&r.outputs)
                            .and_then(|p| pair(&p, label))
                            .and_then(|ps| {
                                ps.iter()
                                    .map(|(p, a)| Some((p.as_f64()?, a.as_f64()?)))
                                    .collect::<Option<Vec<_>>>()
                            });
                        match paired {
                            Some(ps) => pairs.extend(ps.into_iter().map(|p| (p, r.count))),
                            None => unscorable += r.count,
                        }
                    }
                    let scored: u64 = pairs.iter().map(|p| p.1).sum();
                    (scored, regression(&pairs))
                }
            };
            out.insert("scored".into(), json!(scored));
            out.insert("unscorable".into(), json!(unscorable));
            out.extend(scores);
            let business_rows = mets.get(key).map(Vec::as_slice).unwrap_or(&[]);
            out.insert(
                "businessMetrics".into(),
                Value::Object(business(business_rows)),
            );
            Value::Object(out)
        })
        .collect()
}

/// The scores of each version of `model` over `from_ms <= time < to_ms`
/// taken as one window (the Prometheus gauges of the current hour):
/// versions with predictions only; accuracy for classifiers, MAE for
/// regressors, each `None` without scored labels.
pub fn current_scores(
    conn: &Connection,
    model: &str,
    task: Option<ModelTask>,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<super::metrics::ModelScores>> {
    let (predictions, _) = fetch_grouped(conn, model, task, from_ms, to_ms, to_ms.max(1))?;
    let task = infer_task(task, &predictions);
    // One window: every time in [from, to) lies in [0, to) (times are after
    // the epoch), so a window of `to` aligned on the epoch holds them all.
    let windows = aggregate(task, &predictions, &[], to_ms.max(1));
    Ok(windows
        .iter()
        .filter_map(|w| {
            Some(super::metrics::ModelScores {
                model: model.to_string(),
                version: w["version"].as_str()?.to_string(),
                accuracy: w.get("accuracy").and_then(Value::as_f64),
                coverage: w["coverage"].as_f64(),
                mae: w.get("mae").and_then(Value::as_f64),
            })
        })
        .collect())
}

/// A window: `minute`, `hour`, `day` or a duration (`15m`, `6h`).
pub fn parse_window(s: &str) -> Result<i64, String> {
    let ms = match s.trim() {
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        d => humantime::parse_duration(d)
            .map_err(|e| {
                format!(
                    "`window`: `{d}`: {e} (expected minute, hour, day or a duration such as 1h)"
                )
            })?
            .as_millis()
            .try_into()
            .map_err(|_| format!("`window`: `{d}` is too long"))?,
    };
    if ms < 1000 {
        return Err(format!("`window`: `{s}` is shorter than a second"));
    }
    Ok(ms)
}

// ------------------------------------------------------------------ HTTP --

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Finds the model, checks the caller's key, reads the body and its
/// content type.
async fn authorized_body(
    s: &GatewayState,
    name: &str,
    req: Request,
) -> Result<(String, Option<String>, Vec<u8>), Response> {
    let endpoint = s.gateway.endpoint(name).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no model `{name}` is served"),
        )
    })?;
    let (parts, body) = req.into_parts();
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.gateway.authorize(&endpoint, auth).map_err(|r| {
        (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED),
            axum::Json(r.body),
        )
            .into_response()
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    })?;
    Ok((endpoint.key.name.to_string(), content_type, bytes.to_vec()))
}

/// 200 when something was recorded, 404 when everything was unknown.
fn recorded_answer(r: Recorded, count_key: &str) -> Response {
    let status = if r.recorded == 0 && !r.unknown.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let unknown: Vec<String> = r.unknown.iter().map(ToString::to_string).collect();
    let mut body = json!({count_key: r.recorded, "unknownUuids": unknown});
    if count_key == "matched" {
        body["replaced"] = json!(r.replaced);
    }
    (status, axum::Json(body)).into_response()
}

/// `POST /models/NAME/metrics`.
pub async fn post_metrics(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (model, _, bytes) = match authorized_body(&s, &name, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|v| parse_metrics(&v))
    {
        Ok(items) => items,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || {
        record_metrics(&mut events.monitor(), &model, &items, now)
    })
    .await
    {
        Ok(Ok(r)) => recorded_answer(r, "recorded"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /models/NAME/feedback`.
pub async fn post_feedback(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (model, content_type, bytes) = match authorized_body(&s, &name, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match parse_feedback(content_type.as_deref(), &bytes) {
        Ok(items) => items,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || {
        record_feedback(&mut events.monitor(), &model, &items, now)
    })
    .await
    {
        Ok(Ok(r)) => recorded_answer(r, "matched"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) fn parse_time(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    q.get(key)
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{key}`: `{v}` is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

/// `GET /api/v1/models/NAME/metrics/aggregate?from=&to=&window=`: `to`
/// defaults to now, `from` to a day before `to`, `window` to an hour.
pub async fn get_aggregate(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(endpoint) = s.gateway.endpoint(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no model `{name}` is served"),
        );
    };
    let parsed = (|| {
        let to = parse_time(&q, "to")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = parse_time(&q, "from")?.unwrap_or(to - 86_400_000);
        if from >= to {
            return Err("`from` must be before `to`".to_string());
        }
        let window = parse_window(q.get("window").map_or("hour", String::as_str))?;
        Ok((from, to, window))
    })();
    let (from, to, window) = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let task = endpoint.spec.task;
    let answer = tokio::task::spawn_blocking(move || {
        report(&events.monitor(), &name, task, from, to, window)
    })
    .await;
    match answer {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The body of `GET /api/v1/models/NAME/metrics/aggregate`: the windows of
/// `model` over `from_ms <= time < to_ms`.
pub fn report(
    conn: &Connection,
    model: &str,
    task: Option<ModelTask>,
    from: i64,
    to: i64,
    window: i64,
) -> rusqlite::Result<Value> {
    let (predictions, metrics) = fetch_grouped(conn, model, task, from, to, window)?;
    let task = infer_task(task, &predictions);
    let windows = aggregate(task, &predictions, &metrics, window);
    Ok(json!({
        "model": model,
        "task": match task {
            ModelTask::Classification => "classification",
            ModelTask::Regression => "regression",
        },
        "from": rfc3339(from),
        "to": rfc3339(to),
        "windowSeconds": window / 1000,
        "windows": windows,
    }))
}

/// A summary kept by [`summary`].
struct Summary {
    fingerprint: (i64, u64),
    computed: std::time::Instant,
    took: std::time::Duration,
    value: Value,
}

/// Summaries by model, for the dashboard.
static SUMMARIES: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Summary>>> =
    std::sync::LazyLock::new(Default::default);

/// Summaries being recomputed in the background (see [`page_summary`]).
static REFRESHING: std::sync::LazyLock<std::sync::Mutex<BTreeSet<String>>> =
    std::sync::LazyLock::new(Default::default);

/// The span of the dashboard's model page summary, in days.
pub const PAGE_DAYS: i64 = 30;

/// A summary taking longer than this is recomputed off the page's request.
const COSTLY: std::time::Duration = std::time::Duration::from_millis(50);

/// With more inference events than this in the store, a summary never
/// computed before is computed off the page's request.
const LARGE_STORE: i64 = 100_000;

/// What changes when monitoring data is written: the last inference
/// event (written by the event log's writer) and the changes made through
/// `conn`, the monitoring connection that writes feedback and business
/// metrics (cheap: an index end and a counter).
fn fingerprint(conn: &Connection) -> rusqlite::Result<(i64, u64)> {
    let last_event = conn.query_row(
        "SELECT IFNULL(MAX(rowid), 0) FROM inference_events",
        [],
        |r| r.get(0),
    )?;
    Ok((last_event, conn.total_changes()))
}

fn summary_key(conn: &Connection, model: &str, days: i64) -> String {
    format!("{}\0{model}\0{days}", conn.path().unwrap_or_default())
}

/// What the cache holds for `key`: the value, whether it is still current,
/// and how long it took to compute. A summary is current while no
/// monitoring data was written (for up to 5 minutes), and while younger
/// than 10 seconds when it was costly, so that a large store under traffic
/// is aggregated at most every 10 s per model.
fn cached(key: &str, fingerprint: (i64, u64)) -> Option<(Value, bool, std::time::Duration)> {
    let summaries = SUMMARIES.lock().unwrap_or_else(|e| e.into_inner());
    let s = summaries.get(key)?;
    let age = s.computed.elapsed();
    let unchanged = s.fingerprint == fingerprint && age < std::time::Duration::from_secs(300);
    let costly = s.took > COSTLY && age < std::time::Duration::from_secs(10);
    Some((s.value.clone(), unchanged || costly, s.took))
}

/// Computes the summary and keeps it.
fn compute_summary(
    conn: &Connection,
    model: &str,
    task: Option<ModelTask>,
    days: i64,
) -> rusqlite::Result<Value> {
    let fingerprint = fingerprint(conn)?;
    let start = std::time::Instant::now();
    let to = chrono::Utc::now().timestamp_millis() + 1;
    let value = report(
        conn,
        model,
        task,
        to - days * 86_400_000,
        to,
        36_500 * 86_400_000,
    )?;
    SUMMARIES.lock().unwrap_or_else(|e| e.into_inner()).insert(
        summary_key(conn, model, days),
        Summary {
            fingerprint,
            computed: start,
            took: start.elapsed(),
            value: value.clone(),
        },
    );
    Ok(value)
}

/// The dashboard's summary of `model` over the last `days` days, one
/// window per version ([`report`]), kept between calls on the event log's
/// monitoring connection (`conn`) and reused while current (see
/// [`cached`]). Blocks while it is computed.
pub fn summary(
    conn: &Connection,
    model: &str,
    task: Option<ModelTask>,
    days: i64,
) -> rusqlite::Result<Value> {
    let key = summary_key(conn, model, days);
    if let Some((value, true, _)) = cached(&key, fingerprint(conn)?) {
        return Ok(value);
    }
    compute_summary(conn, model, task, days)
}

/// The summary as the dashboard's model page shows it, without ever making
/// the page wait on a large store: a cheap summary is brought up to date
/// at once; a costly one (or a first one over a large store) is recomputed
/// on a background thread while the page shows the last one kept, or
/// `None` when there is none yet. Blocking: call it off the async threads.
pub fn page_summary(
    events: &EventLog,
    model: &str,
    task: Option<ModelTask>,
    days: i64,
) -> rusqlite::Result<Option<Value>> {
    // Busy for more than a moment (a summary being computed over a large
    // store): show what is kept rather than wait.
    let waited = std::time::Instant::now();
    let conn = loop {
        if let Some(conn) = events.try_monitor() {
            break conn;
        }
        if waited.elapsed() > std::time::Duration::from_millis(20) {
            return Ok(kept_summary(events, model, days));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let fingerprint = fingerprint(&conn)?;
    let key = summary_key(&conn, model, days);
    let (kept, costly) = match cached(&key, fingerprint) {
        Some((value, true, _)) => return Ok(Some(value)),
        Some((value, false, took)) => (Some(value), took > COSTLY),
        None => (None, fingerprint.0 > LARGE_STORE),
    };
    if !costly {
        return compute_summary(&conn, model, task, days).map(Some);
    }
    drop(conn);
    refresh_in_background(events, model, task, days, key);
    Ok(kept)
}

/// The summary kept for `model`, however old.
fn kept_summary(events: &EventLog, model: &str, days: i64) -> Option<Value> {
    let key = format!("{}\0{model}\0{days}", events.db_path());
    SUMMARIES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .map(|s| s.value.clone())
}

/// Computes `model`'s page summary on a background thread when none is
/// kept and the store is large, so that the first visit to its page finds
/// it ready. Called when a model starts being served; returns at once.
pub fn warm_page_summary(events: &EventLog, model: &str, task: Option<ModelTask>) {
    let events = events.clone();
    let model = model.to_string();
    let _ = std::thread::Builder::new()
        .name("cairn-summary".into())
        .spawn(move || {
            let conn = events.monitor();
            let key = summary_key(&conn, &model, PAGE_DAYS);
            let large = fingerprint(&conn).is_ok_and(|f| f.0 > LARGE_STORE);
            let kept = SUMMARIES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&key);
            drop(conn);
            if large && !kept {
                refresh_in_background(&events, &model, task, PAGE_DAYS, key);
            }
        });
}

fn refresh_in_background(
    events: &EventLog,
    model: &str,
    task: Option<ModelTask>,
    days: i64,
    key: String,
) {
    if !REFRESHING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.clone())
    {
        return;
    }
    let events = events.clone();
    let model = model.to_string();
    let spawned = std::thread::Builder::new()
        .name("cairn-summary".into())
        .spawn({
            let key = key.clone();
            move || {
                if let Err(e) = compute_summary(&events.monitor(), &model, task, days) {
                    tracing::warn!("summarizing `{model}` for the dashboard failed: {e}");
                }
                REFRESHING
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
            }
        });
    if spawned.is_err() {
        REFRESHING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::events::{EventLog, InferenceEvent};

    fn pred(version: &str, time_ms: i64, outputs: Value, label: Option<Value>) -> PredictionRow {
        PredictionRow {
            version: version.into(),
            time_ms,
            status: 200,
            outputs,
            label,
            count: 1,
        }
    }

    fn num(version: Option<&str>, time_ms: i64, name: &str, n: f64) -> MetricRow {
        MetricRow {
            version: version.map(str::to_string),
            time_ms,
            name: name.into(),
            value: MetricValue::Num(n),
        }
    }

    fn close(v: &Value, expected: f64) {
        let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
        assert!((x - expected).abs() < 1e-12, "{x} != {expected}");
    }

    #[test]
    fn binary_classification_by_hand() {
        // predicted: 1 1 0 0 1 (argmax) ; actual: 1 0 0 1 1 ; one unlabeled;
        // one failed.
        let rows = vec![
            pred("1", 0, json!({"label": 1}), Some(json!(1))),
            pred("1", 10, json!({"label": 1}), Some(json!("1"))),
            pred("1", 20, json!({"label": 0}), Some(json!(0))),
            pred("1", 30, json!({"label": 0}), Some(json!(1))),
            pred(
                "1",
                40,
                json!({"probabilities": [0.2, 0.8]}),
                Some(json!(true)),
            ),
            pred("1", 50, json!({"label": 0}), None),
            PredictionRow {
                status: 500,
                ..pred("1", 60, Value::Null, None)
            },
        ];
        // Rows 0,4: tp; row 1: fp... careful: actual of row 1 is "1" → tp.
        // So pairs (p, a): (1,1) (1,1) (0,0) (0,1) (1,1): tp 3, fp 0, fn 1.
        let out = aggregate(ModelTask::Classification, &rows, &[], 3_600_000);
        assert_eq!(out.len(), 1);
        let w = &out[0];
        assert_eq!(w["requests"], 7);
        assert_eq!(w["errors"], 1);
        assert_eq!(w["labeled"], 5);
        close(&w["coverage"], 5.0 / 6.0);
        assert_eq!(w["scored"], 5);
        close(&w["accuracy"], 4.0 / 5.0);
        close(&w["precision"], 1.0);
        close(&w["recall"], 3.0 / 4.0);
        close(&w["f1"], 2.0 * 0.75 / 1.75);
        assert_eq!(w["averaging"], "binary");
        assert_eq!(w["start"], "1970-01-01T00:00:00.000Z");
        assert_eq!(w["version"], "1");
    }

    #[test]
    fn batches_pair_row_by_row_and_multiclass_is_macro() {
        // Batch predicted [0, 1, 2], actual [0, 2, 2]; single predicted 1,
        // actual 1; a batch with a wrong-length label is unscorable.
        let rows = vec![
            pred("2", 0, json!({"label": [0, 1, 2]}), Some(json!([0, 2, 2]))),
            pred("2", 1, json!({"label": 1}), Some(json!(1))),
            pred("2", 2, json!({"label": [0, 1]}), Some(json!([0]))),
        ];
        let out = aggregate(ModelTask::Classification, &rows, &[], 60_000);
        let w = &out[0];
        assert_eq!(w["scored"], 4);
        assert_eq!(w["unscorable"], 1);
        close(&w["accuracy"], 3.0 / 4.0);
        // class 0: p 1, r 1; class 1: tp 1 fp 1 → p 1/2, r 1; class 2: tp 1,
        // fn 1 → p 1, r 1/2.
        close(&w["precision"], (1.0 + 0.5 + 1.0) / 3.0);
        close(&w["recall"], (1.0 + 1.0 + 0.5) / 3.0);
        let f1_half = 2.0 * 0.5 / 1.5;
        close(&w["f1"], (1.0 + f1_half + f1_half) / 3.0);
        assert_eq!(w["averaging"], "macro");
    }

    #[test]
    fn regression_windows_versions_and_business_metrics() {
        let rows = vec![
            pred("1", 1_000, json!({"price": 10.0}), Some(json!(12))),
            pred(
                "1",
                2_000,
                json!({"price": [[3.0], [5.0]]}),
                Some(json!([4, 1])),
            ),
            pred("2", 2_000, json!(7.5), Some(json!(7.5))),
            pred("1", 61_000, json!({"price": 1.0}), None),
        ];
        let metrics = vec![
            num(Some("1"), 1_000, "revenue", 4.0),
            num(Some("1"), 2_000, "revenue", 1.0),
            num(Some("1"), 2_000, "revenue", 10.0),
            num(Some("1"), 2_000, "revenue", 2.0),
            MetricRow {
                version: Some("1".into()),
                time_ms: 3_000,
                name: "segment".into(),
                value: MetricValue::Text("b".into()),
            },
            MetricRow {
                version: Some("1".into()),
                time_ms: 3_000,
                name: "segment".into(),
                value: MetricValue::Text("a".into()),
            },
            MetricRow {
                version: Some("1".into()),
                time_ms: 3_000,
                name: "segment".into(),
                value: MetricValue::Text("b".into()),
            },
            num(None, 5_000, "budget", 100.0),
        ];
        let out = aggregate(ModelTask::Regression, &rows, &metrics, 60_000);
        let keys: Vec<(Value, Value)> = out
            .iter()
            .map(|w| (w["start"].clone(), w["version"].clone()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (json!("1970-01-01T00:00:00.000Z"), Value::Null),
                (json!("1970-01-01T00:00:00.000Z"), json!("1")),
                (json!("1970-01-01T00:00:00.000Z"), json!("2")),
                (json!("1970-01-01T00:01:00.000Z"), json!("1")),
            ]
        );
        let model_level = &out[0];
        assert_eq!(model_level["requests"], 0);
        assert_eq!(model_level["coverage"], Value::Null);
        close(&model_level["businessMetrics"]["budget"]["sum"], 100.0);
        let v1 = &out[1];
        // errors: |10-12| = 2, |3-4| = 1, |5-1| = 4.
        assert_eq!(v1["scored"], 3);
        close(&v1["mae"], 7.0 / 3.0);
        close(&v1["rmse"], (21.0f64 / 3.0).sqrt());
        let revenue = &v1["businessMetrics"]["revenue"];
        assert_eq!(revenue["count"], 4);
        close(&revenue["sum"], 17.0);
        close(&revenue["mean"], 4.25);
        // sorted 1 2 4 10: p50 rank 2 → 2, p95 rank 4 → 10.
        close(&revenue["p50"], 2.0);
        close(&revenue["p95"], 10.0);
        assert_eq!(
            v1["businessMetrics"]["segment"],
            json!({"count": 3, "values": {"a": 1, "b": 2}})
        );
        close(&out[2]["mae"], 0.0);
        assert_eq!(out[3]["labeled"], 0);
        assert_eq!(out[3]["mae"], Value::Null);
    }

    #[test]
    fn tasks_are_inferred() {
        assert_eq!(
            infer_task(None, &[pred("1", 0, json!({"label": 1}), None)]),
            ModelTask::Classification
        );
        assert_eq!(
            infer_task(None, &[pred("1", 0, json!({"y": 1.5}), None)]),
            ModelTask::Regression
        );
        assert_eq!(
            infer_task(
                Some(ModelTask::Regression),
                &[pred("1", 0, json!({"label": 1}), None)]
            ),
            ModelTask::Regression
        );
    }

    #[test]
    fn parses_metrics() {
        let u = uuid::Uuid::now_v7();
        let items = parse_metrics(&json!({"uuid": u.to_string(), "metrics": {"r": 1.5, "s": "b"}}))
            .unwrap();
        assert_eq!(
            items,
            vec![MetricItem {
                uuid: Some(u),
                metrics: vec![
                    ("r".into(), MetricValue::Num(1.5)),
                    ("s".into(), MetricValue::Text("b".into()))
                ]
            }]
        );
        assert_eq!(
            parse_metrics(&json!([{"metrics": {"x": 1}}])).unwrap()[0].uuid,
            None
        );
        let e =
            parse_metrics(&json!([{"metrics": {"x": 1}}, {"uuid": "nope", "metrics": {"x": 1}}]))
                .unwrap_err();
        assert_eq!(e, "item 1: `uuid`: `nope` is not a UUID");
        let e = parse_metrics(&json!({"metrics": {"x": [1]}})).unwrap_err();
        assert_eq!(e, "`metrics.x`: expected a number or a string");
        assert!(parse_metrics(&json!({"uuid": u.to_string()})).is_err());
        assert!(parse_metrics(&json!({"metrics": {}})).is_err());
        assert!(parse_metrics(&json!([])).is_err());
    }

    #[test]
    fn parses_feedback_in_three_formats() {
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let expected = vec![
            FeedbackItem {
                uuid: a,
                label: json!(1),
            },
            FeedbackItem {
                uuid: b,
                label: json!("cat, dog"),
            },
        ];
        let body = json!([{"uuid": a.to_string(), "label": 1}, {"uuid": b.to_string(), "label": "cat, dog"}]);
        assert_eq!(
            parse_feedback(Some("application/json"), body.to_string().as_bytes()).unwrap(),
            expected
        );
        let ndjson = format!(
            "{{\"uuid\": \"{a}\", \"label\": 1}}\n\n{{\"uuid\": \"{b}\", \"label\": \"cat, dog\"}}\n"
        );
        assert_eq!(
            parse_feedback(Some("application/x-ndjson"), ndjson.as_bytes()).unwrap(),
            expected
        );
        let csv = format!("label,uuid\r\n1,{a}\r\n\"cat, dog\",{b}\r\n");
        assert_eq!(
            parse_feedback(Some("text/csv; charset=utf-8"), csv.as_bytes()).unwrap(),
            expected
        );
        assert_eq!(
            parse_feedback(
                Some("text/csv"),
                format!("uuid,label\n{a},0.5\n").as_bytes()
            )
            .unwrap()[0]
                .label,
            json!(0.5)
        );
        let e = parse_feedback(Some("text/csv"), b"id,label\nx,1\n").unwrap_err();
        assert!(e.contains("must name `uuid` and `label`"), "{e}");
        let e =
            parse_feedback(Some("text/csv"), format!("uuid,label\n{a},\n").as_bytes()).unwrap_err();
        assert_eq!(e, "CSV line 2: `label` is missing");
        let e = parse_feedback(
            Some("application/x-ndjson"),
            b"{\"uuid\": \"x\", \"label\": 1}",
        )
        .unwrap_err();
        assert_eq!(e, "line 1: `uuid`: `x` is not a UUID");
        let e = parse_feedback(None, format!("{{\"uuid\": \"{a}\"}}").as_bytes()).unwrap_err();
        assert_eq!(e, "`label` is missing");
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("hour").unwrap(), 3_600_000);
        assert_eq!(parse_window("15m").unwrap(), 900_000);
        assert_eq!(parse_window("day").unwrap(), 86_400_000);
        assert!(parse_window("soon").is_err());
        assert!(parse_window("10ms").is_err());
    }

    #[tokio::test]
    async fn storage_records_replaces_and_reports_unknowns() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("events.db"), Default::default()).unwrap();
        let event = |model: &str, t: i64, label: i64| InferenceEvent {
            uuid: uuid::Uuid::now_v7(),
            model: model.into(),
            version: "3".into(),
            commit: "c".into(),
            time: chrono::DateTime::from_timestamp_millis(t).unwrap(),
            latency_us: 1,
            status: 200,
            inputs: json!({}),
            outputs: json!({"label": label}),
        };
        let (e1, e2, other) = (
            event("m", 1_000, 1),
            event("m", 2_000, 0),
            event("n", 1_500, 1),
        );
        for e in [&e1, &e2, &other] {
            log.append_durable(e.clone()).await.unwrap();
        }
        let mut conn = log.monitor();
        let fb = |uuid: uuid::Uuid, label: Value| FeedbackItem { uuid, label };
        let r = record_feedback(
            &mut conn,
            "m",
            &[fb(e1.uuid, json!(0)), fb(other.uuid, json!(1))],
            9,
        )
        .unwrap();
        assert_eq!(
            (r.recorded, r.replaced, r.unknown.clone()),
            (1, 0, vec![other.uuid])
        );
        let r = record_feedback(&mut conn, "m", &[fb(e1.uuid, json!(1))], 10).unwrap();
        assert_eq!((r.recorded, r.replaced), (1, 1));
        let r = record_metrics(
            &mut conn,
            "m",
            &[
                MetricItem {
                    uuid: Some(e2.uuid),
                    metrics: vec![("revenue".into(), MetricValue::Num(3.0))],
                },
                MetricItem {
                    uuid: None,
                    metrics: vec![("seg".into(), MetricValue::Text("a".into()))],
                },
                MetricItem {
                    uuid: Some(other.uuid),
                    metrics: vec![("revenue".into(), MetricValue::Num(5.0))],
                },
            ],
            5_000,
        )
        .unwrap();
        assert_eq!((r.recorded, r.unknown), (2, vec![other.uuid]));
        let (preds, metrics) = fetch(&conn, "m", 0, 10_000).unwrap();
        assert_eq!(preds.len(), 2);
        let p1 = preds.iter().find(|p| p.time_ms == 1_000).unwrap();
        assert_eq!(p1.label, Some(json!(1)));
        assert_eq!(
            preds.iter().find(|p| p.time_ms == 2_000).unwrap().label,
            None
        );
        let mut metrics = metrics;
        metrics.sort_by_key(|m| m.time_ms);
        assert_eq!(
            metrics,
            vec![
                num(Some("3"), 2_000, "revenue", 3.0),
                MetricRow {
                    version: None,
                    time_ms: 5_000,
                    name: "seg".into(),
                    value: MetricValue::Text("a".into())
                }
            ]
        );
        assert_eq!(fetch(&conn, "m", 0, 1_500).unwrap().0.len(), 1);
        // Grouped while read, the rows aggregate as they do one by one.
        for window in [1_000, 3_600_000] {
            let (preds, metrics) = fetch(&conn, "m", 0, 10_000).unwrap();
            let (grouped, grouped_metrics) =
                fetch_grouped(&conn, "m", None, 0, 10_000, window).unwrap();
            for task in [ModelTask::Classification, ModelTask::Regression] {
                assert_eq!(
                    aggregate(task, &grouped, &grouped_metrics, window),
                    aggregate(task, &preds, &metrics, window)
                );
            }
        }
        // The gauges' scores: e1 predicted 1, labeled 1; e2 unlabeled.
        let scores = current_scores(&conn, "m", None, 0, 10_000).unwrap();
        assert_eq!(
            scores,
            vec![crate::gateway::metrics::ModelScores {
                model: "m".into(),
                version: "3".into(),
                accuracy: Some(1.0),
                coverage: Some(0.5),
                mae: None,
            }]
        );
        let scores = current_scores(&conn, "m", None, 1_500, 10_000).unwrap();
        assert_eq!((scores[0].accuracy, scores[0].coverage), (None, Some(0.0)));
    }
}
