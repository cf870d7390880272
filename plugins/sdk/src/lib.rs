//! The guest SDK for Cairn plugins.
//!
//! A Cairn plugin is a WebAssembly component that implements one of the
//! worlds of the `cairn:plugin@0.1.0` WIT package (`plugins/wit/`). This
//! crate generates the bindings of those worlds and puts an idiomatic Rust
//! face on them:
//!
//! | world | module | trait | export macro |
//! |---|---|---|---|
//! | `drift-detector` | [`drift`] | [`DriftDetector`] | [`export_drift_detector!`] |
//! | `business-metric` | [`metrics`] | [`BusinessMetric`] | [`export_business_metric!`] |
//! | `app-framework` | [`apps`] | [`AppFramework`] | [`export_app_framework!`] |
//! | `model` | [`model`] | [`Model`] | [`export_model!`] |
//!
//! A plugin implements the trait of one world on a type of its own and
//! exports it with the world's macro; the component then implements exactly
//! that world:
//!
//! ```no_run
//! use cairn_plugin_sdk::{Config, DriftDetector, Result};
//! use cairn_plugin_sdk::drift::{Column, DriftReport};
//!
//! pub struct MyDetector;
//!
//! impl DriftDetector for MyDetector {
//!     fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>> { todo!() }
//!     fn score(config: &Config, state: &[u8], window: Vec<Column>, threshold: f64)
//!         -> Result<DriftReport> { todo!() }
//! }
//!
//! cairn_plugin_sdk::export_drift_detector!(MyDetector);
//! ```
//!
//! Plugin settings arrive typed (see [`Config`]); messages go to the
//! controller's log through [`log`]. Everything else — files, network,
//! clocks — is out of reach: a plugin only computes.

#![warn(missing_docs)]

/// Converts a world's generated `config` into [`Config`]; every world
/// generates its own copy of the `types` interface.
macro_rules! config_conversion {
    ($($types:ident)::+) => {
        impl From<$crate::ConfigValue> for ConfigValueWit {
            fn from(value: $crate::ConfigValue) -> Self {
                match value {
                    $crate::ConfigValue::Null => Self::Null,
                    $crate::ConfigValue::Boolean(b) => Self::Boolean(b),
                    $crate::ConfigValue::Integer(i) => Self::Integer(i),
                    $crate::ConfigValue::Number(n) => Self::Number(n),
                    $crate::ConfigValue::Text(s) => Self::Text(s),
                    $crate::ConfigValue::Json(s) => Self::Json(s),
                }
            }
        }

        use $($types)::+::ConfigValue as ConfigValueWit;

        /// Converts the host's config into the SDK's.
        pub(crate) fn config_from_wit(config: Vec<(String, ConfigValueWit)>) -> $crate::Config {
            config
                .into_iter()
                .map(|(key, value)| {
                    let value = match value {
                        ConfigValueWit::Null => $crate::ConfigValue::Null,
                        ConfigValueWit::Boolean(b) => $crate::ConfigValue::Boolean(b),
                        ConfigValueWit::Integer(i) => $crate::ConfigValue::Integer(i),
                        ConfigValueWit::Number(n) => $crate::ConfigValue::Number(n),
                        ConfigValueWit::Text(s) => $crate::ConfigValue::Text(s),
                        ConfigValueWit::Json(s) => $crate::ConfigValue::Json(s),
                    };
                    (key, value)
                })
                .collect()
        }

        /// Logs through this world's `log` import.
        #[allow(dead_code)]
        pub(crate) fn host_log(level: $crate::log::Level, message: &str) {
            use $($types)::+::Level as L;
            let level = match level {
                $crate::log::Level::Debug => L::Debug,
                $crate::log::Level::Info => L::Info,
                $crate::log::Level::Warn => L::Warn,
                $crate::log::Level::Error => L::Error,
            };
            bindings::cairn::plugin::log::log(level, message);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use config_conversion;

extern crate self as cairn_plugin_sdk;

mod config;
mod error;
pub mod log;
pub mod state;

pub use config::{Config, ConfigError, ConfigValue};
pub use error::{Error, Result};

pub mod apps;
pub mod drift;
pub mod metrics;
pub mod model;

pub use apps::AppFramework;
pub use drift::DriftDetector;
pub use metrics::BusinessMetric;
pub use model::Model;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
