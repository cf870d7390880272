//! Parsing business metrics and feedback bodies: JSON, JSON lines or CSV.

use cairn_store::monitoring::{FeedbackItem, MetricItem, MetricValue};
use serde_json::{Value, json};

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
