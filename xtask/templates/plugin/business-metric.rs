//! `{{name}}`: a Cairn business metric (world `business-metric`).
//!
//! Emits `{{snake}}_latency_ms` (the prediction's latency) and
//! `{{snake}}_ok` (1 for a successful response, else 0) for every
//! inference event; the host aggregates them per window.

use cairn_plugin_sdk::metrics::{InferenceEvent, Metric};
use cairn_plugin_sdk::{BusinessMetric, Config, Result};

/// The metric.
pub struct Example;

impl BusinessMetric for Example {
    fn compute(config: &Config, event: InferenceEvent) -> Result<Vec<Metric>> {
        config.check_keys(&[])?;
        Ok(vec![
            Metric::number("{{snake}}_latency_ms", event.latency_us as f64 / 1000.0),
            Metric::number("{{snake}}_ok", if event.status < 400 { 1.0 } else { 0.0 }),
        ])
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_business_metric!(Example);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_latency_and_success() {
        let event = InferenceEvent {
            id: "0192f0c4-0000-7000-8000-000000000000".into(),
            model: "m".into(),
            version: "1".into(),
            timestamp_ms: 0,
            latency_us: 2500,
            status: 200,
            inputs: "{}".into(),
            outputs: "{}".into(),
        };
        let m = Example::compute(&Config::default(), event).unwrap();
        assert_eq!(m[0], Metric::number("{{snake}}_latency_ms", 2.5));
        assert_eq!(m[1], Metric::number("{{snake}}_ok", 1.0));
    }
}
