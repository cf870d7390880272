//! The `business-metric` world: metrics computed from each inference event,
//! off the request path, and optional summaries of a window.

/// Bindings generated from `plugins/wit` for the `business-metric` world.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/business-metric",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_business_metric_world",
        runtime_path: "::cairn_plugin_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::exports::cairn::plugin::metrics::{InferenceEvent, Metric, MetricValue};

use crate::{Config, Result};

crate::config_conversion!(bindings::cairn::plugin::types);

/// A business metric.
pub trait BusinessMetric {
    /// Metrics for one prediction (may be empty). They are attached to the
    /// event's inference UUID.
    fn compute(config: &Config, event: InferenceEvent) -> Result<Vec<Metric>>;

    /// Summaries of one metric's numeric values over a window, e.g.
    /// `revenue_total`. The default returns none, which keeps the host's
    /// own summaries (sum, mean, percentiles).
    fn aggregate(config: &Config, name: &str, values: Vec<f64>) -> Result<Vec<Metric>> {
        let _ = (config, name, values);
        Ok(Vec::new())
    }
}

impl Metric {
    /// A numeric metric.
    pub fn number(name: impl Into<String>, value: f64) -> Self {
        Metric {
            name: name.into(),
            value: MetricValue::Number(value),
        }
    }

    /// A text metric (counted per value).
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value: MetricValue::Text(value.into()),
        }
    }
}

#[doc(hidden)]
pub fn __compute<T: BusinessMetric>(
    config: Vec<(String, ConfigValueWit)>,
    event: InferenceEvent,
) -> std::result::Result<Vec<Metric>, String> {
    T::compute(&config_from_wit(config), event).map_err(String::from)
}

#[doc(hidden)]
pub fn __aggregate<T: BusinessMetric>(
    config: Vec<(String, ConfigValueWit)>,
    name: String,
    values: Vec<f64>,
) -> std::result::Result<Vec<Metric>, String> {
    T::aggregate(&config_from_wit(config), &name, values).map_err(String::from)
}

/// Exports a [`BusinessMetric`] as the component's `metrics` interface.
///
/// ```ignore
/// cairn_plugin_sdk::export_business_metric!(MyMetric);
/// ```
#[macro_export]
macro_rules! export_business_metric {
    ($metric:ty) => {
        const _: () = {
            struct __CairnMetricsExport;
            impl $crate::metrics::bindings::exports::cairn::plugin::metrics::Guest
                for __CairnMetricsExport
            {
                fn compute(
                    config: $crate::metrics::bindings::cairn::plugin::types::Config,
                    event: $crate::metrics::InferenceEvent,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::metrics::Metric>, ::std::string::String>
                {
                    $crate::metrics::__compute::<$metric>(config, event)
                }
                fn aggregate(
                    config: $crate::metrics::bindings::cairn::plugin::types::Config,
                    name: ::std::string::String,
                    values: ::std::vec::Vec<f64>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::metrics::Metric>, ::std::string::String>
                {
                    $crate::metrics::__aggregate::<$metric>(config, name, values)
                }
            }
            $crate::metrics::bindings::__export_business_metric_world!(__CairnMetricsExport with_types_in $crate::metrics::bindings);
        };
    };
}
