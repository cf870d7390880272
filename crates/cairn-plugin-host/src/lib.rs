//! WebAssembly plugins: components of the `cairn:plugin` WIT package
//! (`plugins/wit/`) run by a bounded wasmtime host.
//!
//! - [`host`]: the engine, the per-call bounds (memory, epoch deadline,
//!   fuel, output size) and the mapping of traps to [`PluginError`];
//! - [`cache`]: compiled components cached on disk by SHA-256;
//! - [`builtin`]: the plugins bundled into the binary;
//! - [`drift`], [`metrics`], [`apps`], [`model`]: one typed wrapper per world;
//! - [`columns`]: feature columns from CSV files and logged requests.

pub mod apps;
mod bindings;
pub mod builtin;
pub mod cache;
pub mod columns;
pub mod drift;
pub mod host;
pub mod metrics;
pub mod model;

pub use host::{Plugin, PluginError, PluginHost, PluginSource};

/// A plugin's `config` as the WIT `config` type.
pub type Config = Vec<(String, ConfigValue)>;
pub use bindings::drift::cairn::plugin::types::ConfigValue;

/// Converts a spec's `config` map into the WIT `config` list (key order).
pub fn config_of(map: &std::collections::BTreeMap<String, serde_json::Value>) -> Config {
    use serde_json::Value;
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => ConfigValue::Null,
                Value::Bool(b) => ConfigValue::Boolean(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => ConfigValue::Integer(i),
                    None => ConfigValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => ConfigValue::Text(s.clone()),
                other => ConfigValue::Json(other.to_string()),
            };
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_types_and_key_order() {
        let map: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_str(r#"{"b": 1, "a": 0.5, "c": "x", "d": [1], "e": null, "f": true}"#)
                .unwrap();
        let c = config_of(&map);
        let keys: Vec<_> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"]);
        assert!(matches!(c[0].1, ConfigValue::Number(x) if x == 0.5));
        assert!(matches!(c[1].1, ConfigValue::Integer(1)));
        assert!(matches!(&c[2].1, ConfigValue::Text(s) if s == "x"));
        assert!(matches!(&c[3].1, ConfigValue::Json(s) if s == "[1]"));
        assert!(matches!(c[4].1, ConfigValue::Null));
        assert!(matches!(c[5].1, ConfigValue::Boolean(true)));
    }
}
