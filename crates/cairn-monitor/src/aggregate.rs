//! The pure aggregation: predictions, labels and business metrics per
//! version and window → coverage, accuracy, precision/recall/F1 or
//! MAE/RMSE, and business-metric statistics.

use cairn_api::monitoring::{Averaging, BusinessMetric, Window};
use cairn_spec::ModelTask;
use cairn_store::monitoring::{MetricRow, MetricValue, PredictionRow};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

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
/// its count, set on `w`: `null` scores without pairs.
fn classification(w: &mut Window, pairs: &[((String, String), u64)]) {
    if pairs.is_empty() {
        (w.accuracy, w.precision, w.recall, w.f1) =
            (Some(None), Some(None), Some(None), Some(None));
        return;
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
    w.accuracy = Some(Some(correct / n));
    w.precision = Some(Some(precision));
    w.recall = Some(Some(recall));
    w.f1 = Some(Some(f1));
    w.averaging = Some(if binary {
        Averaging::Binary
    } else {
        Averaging::Macro
    });
}

/// Regression scores over (predicted, actual) numbers, each with its
/// count, set on `w`: `null` scores without pairs.
fn regression(w: &mut Window, pairs: &[((f64, f64), u64)]) {
    if pairs.is_empty() {
        (w.mae, w.rmse) = (Some(None), Some(None));
        return;
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
    w.mae = Some(Some(mae));
    w.rmse = Some(Some(mse.sqrt()));
}

/// The nearest-rank percentile `p` (0..=1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Business metric aggregates: numbers → count, sum, mean, p50, p95;
/// strings → count and count per value.
fn business(rows: &[&MetricRow]) -> BTreeMap<String, BusinessMetric> {
    let mut by_name: BTreeMap<&str, Vec<&MetricValue>> = BTreeMap::new();
    for r in rows {
        by_name.entry(&r.name).or_default().push(&r.value);
    }
    let mut out = BTreeMap::new();
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
        let mut m = BusinessMetric {
            count: values.len() as u64,
            ..BusinessMetric::default()
        };
        if !nums.is_empty() {
            nums.sort_by(f64::total_cmp);
            let sum: f64 = nums.iter().sum();
            m.sum = Some(sum);
            m.mean = Some(sum / nums.len() as f64);
            m.p50 = Some(percentile(&nums, 0.5));
            m.p95 = Some(percentile(&nums, 0.95));
        }
        if !texts.is_empty() {
            m.values = Some(texts.into_iter().map(|(k, n)| (k.to_string(), n)).collect());
        }
        out.insert(name.to_string(), m);
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

/// Milliseconds since the epoch as an RFC 3339 time (`None` out of
/// range).
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Aggregates per (window, version): windows of `window_ms` aligned on the
/// Unix epoch (UTC), only those with data; model-level business metrics
/// (no inference) under version `null`.
pub fn aggregate(
    task: ModelTask,
    predictions: &[PredictionRow],
    metrics: &[MetricRow],
    window_ms: i64,
) -> Vec<Window> {
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
            let mut out = Window {
                start: rfc3339(key.0),
                end: rfc3339(key.0 + window_ms),
                version: key.1.clone(),
                requests,
                errors: requests - ok_count,
                labeled,
                coverage: (ok_count > 0).then(|| labeled as f64 / ok_count as f64),
                ..Window::default()
            };
            let labeled_rows = ok.iter().filter_map(|r| Some((*r, r.label.as_ref()?)));
            out.scored = match task {
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
                    classification(&mut out, &pairs);
                    pairs.iter().map(|p| p.1).sum()
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
                    regression(&mut out, &pairs);
                    pairs.iter().map(|p| p.1).sum()
                }
            };
            out.unscorable = unscorable;
            let business_rows = mets.get(key).map(Vec::as_slice).unwrap_or(&[]);
            out.business_metrics = business(business_rows);
            out
        })
        .collect()
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
