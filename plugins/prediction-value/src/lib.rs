//! `prediction-value`: a business metric reading each prediction's outputs.
//!
//! The response is either one row (`{"label": 1, "probabilities": [0.2,
//! 0.8]}`) or a batch (`{"label": [1, 0], "probabilities": [[...], [...]]}`),
//! optionally wrapped in `{"response": ...}`. Per event it emits:
//!
//! | metric | kind | value |
//! |---|---|---|
//! | `predicted_class` | text | the label (one-row events only) |
//! | `confidence` | number | the largest class probability (mean over a batch's rows) |
//! | `expected_value` | number | `Σ_rows Σ_c p_c · value_c`, when `values` is set |
//! | `rows` | number | rows in the event |
//!
//! Outputs that are absent are skipped. When the host aggregates a window,
//! `expected_value` adds `expected_value_total` (the sum) and `confidence`
//! adds `low_confidence_share` (the share of events below
//! `low_confidence`); other metrics keep the host's summaries.
//!
//! Settings: `label` (output name, default `label`), `probabilities`
//! (default `probabilities`), `values` (map from class index to the
//! business value of predicting it, e.g. `{"0": 0, "1": 120.5}`),
//! `low_confidence` (default `0.6`) and `prefix` (put before every metric
//! name, default none).

use cairn_plugin_sdk::metrics::{InferenceEvent, Metric};
use cairn_plugin_sdk::{BusinessMetric, Config, Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;

const SETTINGS: [&str; 5] = [
    "label",
    "probabilities",
    "values",
    "low_confidence",
    "prefix",
];

/// The metric.
pub struct PredictionValue;

/// The settings, read once per call.
struct Settings {
    label: String,
    probabilities: String,
    values: Option<BTreeMap<usize, f64>>,
    low_confidence: f64,
    prefix: String,
}

impl Settings {
    fn read(config: &Config) -> Result<Self> {
        config.check_keys(&SETTINGS)?;
        let values = match config.json::<BTreeMap<String, f64>>("values")? {
            None => None,
            Some(map) => Some(
                map.into_iter()
                    .map(|(k, v)| {
                        k.parse::<usize>().map(|k| (k, v)).map_err(|_| {
                            Error::new(format!(
                                "config `values`: `{k}` is not a class index (0, 1, ...)"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Settings {
            label: config.str_or("label", "label")?.to_string(),
            probabilities: config.str_or("probabilities", "probabilities")?.to_string(),
            values,
            low_confidence: config.f64_in_or("low_confidence", 0.0, 1.0, 0.6)?,
            prefix: config.str_or("prefix", "")?.to_string(),
        })
    }

    fn name(&self, metric: &str) -> String {
        format!("{}{metric}", self.prefix)
    }
}

/// The probability rows of an output: one row (`[p0, p1]`) or a batch.
fn probability_rows(v: &Value) -> Result<Vec<Vec<f64>>> {
    let numbers =
        |row: &Value| -> Option<Vec<f64>> { row.as_array()?.iter().map(Value::as_f64).collect() };
    match v.as_array() {
        Some(rows) if rows.first().is_some_and(Value::is_array) => rows
            .iter()
            .map(|r| numbers(r).ok_or_else(|| Error::new("probabilities must be numbers")))
            .collect(),
        Some(_) => {
            Ok(vec![numbers(v).ok_or_else(|| {
                Error::new("probabilities must be numbers")
            })?])
        }
        None => Err("probabilities must be a list".into()),
    }
}

impl BusinessMetric for PredictionValue {
    fn compute(config: &Config, event: InferenceEvent) -> Result<Vec<Metric>> {
        let s = Settings::read(config)?;
        if event.status >= 400 {
            return Ok(Vec::new());
        }
        let outputs: Value = serde_json::from_str(&event.outputs)
            .map_err(|e| Error::new(format!("the event's outputs are not JSON: {e}")))?;
        let outputs = outputs.get("response").unwrap_or(&outputs);
        let mut metrics = Vec::new();
        let mut rows = None;
        if let Some(label) = outputs.get(&s.label) {
            match label {
                Value::Array(batch) => rows = Some(batch.len()),
                Value::String(text) => {
                    metrics.push(Metric::text(s.name("predicted_class"), text.clone()))
                }
                other => metrics.push(Metric::text(s.name("predicted_class"), other.to_string())),
            }
        }
        if let Some(p) = outputs.get(&s.probabilities) {
            let prob_rows = probability_rows(p)?;
            if !prob_rows.is_empty() {
                let confidence = prob_rows
                    .iter()
                    .map(|r| r.iter().copied().fold(0.0, f64::max))
                    .sum::<f64>()
                    / prob_rows.len() as f64;
                metrics.push(Metric::number(s.name("confidence"), confidence));
            }
            if let Some(values) = &s.values {
                let expected: f64 = prob_rows
                    .iter()
                    .flat_map(|r| r.iter().enumerate())
                    .map(|(c, p)| p * values.get(&c).copied().unwrap_or(0.0))
                    .sum();
                metrics.push(Metric::number(s.name("expected_value"), expected));
            }
            rows = rows.or(Some(prob_rows.len()));
        }
        metrics.push(Metric::number(s.name("rows"), rows.unwrap_or(1) as f64));
        Ok(metrics)
    }

    fn aggregate(config: &Config, name: &str, values: Vec<f64>) -> Result<Vec<Metric>> {
        let s = Settings::read(config)?;
        if name == s.name("expected_value") {
            return Ok(vec![Metric::number(
                s.name("expected_value_total"),
                values.iter().sum(),
            )]);
        }
        if name == s.name("confidence") && !values.is_empty() {
            let low = values.iter().filter(|v| **v < s.low_confidence).count();
            return Ok(vec![Metric::number(
                s.name("low_confidence_share"),
                low as f64 / values.len() as f64,
            )]);
        }
        Ok(Vec::new())
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_business_metric!(PredictionValue);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;
    use cairn_plugin_sdk::metrics::MetricValue;

    fn event(outputs: &str) -> InferenceEvent {
        InferenceEvent {
            id: "0192f0c4-0000-7000-8000-000000000000".into(),
            model: "classifier".into(),
            version: "3".into(),
            timestamp_ms: 1_764_000_000_000,
            latency_us: 800,
            status: 200,
            inputs: "{}".into(),
            outputs: outputs.into(),
        }
    }

    fn get<'a>(m: &'a [Metric], name: &str) -> &'a MetricValue {
        &m.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {m:?}"))
            .value
    }

    #[test]
    fn one_row() {
        let config = Config::new([("values", ConfigValue::Json(r#"{"1": 120.0}"#.into()))]);
        let m = PredictionValue::compute(
            &config,
            event(r#"{"label": 1, "probabilities": [0.2, 0.8]}"#),
        )
        .unwrap();
        assert_eq!(get(&m, "predicted_class"), &MetricValue::Text("1".into()));
        assert_eq!(get(&m, "confidence"), &MetricValue::Number(0.8));
        assert_eq!(get(&m, "expected_value"), &MetricValue::Number(96.0));
        assert_eq!(get(&m, "rows"), &MetricValue::Number(1.0));
    }

    #[test]
    fn batch_and_aggregates() {
        let config = Config::new([
            ("values", ConfigValue::Json(r#"{"0": 10, "1": 100}"#.into())),
            ("prefix", ConfigValue::Text("churn_".into())),
        ]);
        let m = PredictionValue::compute(
            &config,
            event(
                r#"{"response": {"label": [1, 0], "probabilities": [[0.25, 0.75], [0.5, 0.5]]}}"#,
            ),
        )
        .unwrap();
        assert!(m.iter().all(|m| m.name != "churn_predicted_class"));
        assert_eq!(get(&m, "churn_confidence"), &MetricValue::Number(0.625));
        // 0.25·10 + 0.75·100 + 0.5·10 + 0.5·100 = 132.5
        assert_eq!(get(&m, "churn_expected_value"), &MetricValue::Number(132.5));
        assert_eq!(get(&m, "churn_rows"), &MetricValue::Number(2.0));
        let a =
            PredictionValue::aggregate(&config, "churn_expected_value", vec![1.0, 2.5]).unwrap();
        assert_eq!(a, [Metric::number("churn_expected_value_total", 3.5)]);
        let a = PredictionValue::aggregate(&config, "churn_confidence", vec![0.9, 0.55, 0.7, 0.5])
            .unwrap();
        assert_eq!(a, [Metric::number("churn_low_confidence_share", 0.5)]);
        assert!(
            PredictionValue::aggregate(&config, "churn_rows", vec![1.0])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_input() {
        let e = PredictionValue::compute(&Config::default(), event("not json")).unwrap_err();
        assert!(
            e.message().starts_with("the event's outputs are not JSON"),
            "{e}"
        );
        let bad = Config::new([("values", ConfigValue::Json(r#"{"yes": 1}"#.into()))]);
        let e = PredictionValue::compute(&bad, event("{}")).unwrap_err();
        assert!(e.message().contains("not a class index"), "{e}");
        let mut failed = event("{}");
        failed.status = 500;
        assert!(
            PredictionValue::compute(&Config::default(), failed)
                .unwrap()
                .is_empty()
        );
    }
}
