//! The `drift-detector` world: fit a reference sample once, then score
//! windows of recent model inputs against it.

/// Bindings generated from `plugins/wit` for the `drift-detector` world.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/drift-detector",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_drift_detector_world",
        runtime_path: "::cairn_plugin_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::exports::cairn::plugin::drift::{
    Column, ColumnValues, DriftReport, FeatureScore,
};

use crate::{Config, Result};

crate::config_conversion!(bindings::cairn::plugin::types);

/// A drift detector.
///
/// The host calls [`fit`](DriftDetector::fit) once per reference sample and
/// keeps the returned bytes; every window is then scored with
/// [`score`](DriftDetector::score) against those bytes (see
/// [`crate::state`] to encode them).
pub trait DriftDetector {
    /// Learns what scoring needs from the reference columns (bin edges,
    /// sorted values, category frequencies) and returns it as opaque state.
    fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>>;

    /// Scores a window against the fitted state. `threshold` is the spec's
    /// `monitoring.drift.threshold`; say in the plugin's docs what it bounds.
    fn score(
        config: &Config,
        state: &[u8],
        window: Vec<Column>,
        threshold: f64,
    ) -> Result<DriftReport>;
}

impl Column {
    /// A numeric column.
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Numeric(values),
        }
    }

    /// A categorical column.
    pub fn categorical(name: impl Into<String>, values: Vec<String>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Categorical(values),
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match &self.values {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Categorical(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How per-feature scores become the window's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The largest feature score (the default of Cairn's detectors).
    Max,
    /// The mean feature score.
    Mean,
}

impl Aggregate {
    /// Reads the `aggregate` setting (`max` or `mean`, default `max`).
    pub fn from_config(config: &Config) -> Result<Self> {
        Ok(
            match config.choice_or("aggregate", &["max", "mean"], "max")? {
                "mean" => Aggregate::Mean,
                _ => Aggregate::Max,
            },
        )
    }
}

impl DriftReport {
    /// A report over `features`: the overall score is their `aggregate`
    /// score, and the window drifted when any feature drifted.
    pub fn from_features(features: Vec<FeatureScore>, aggregate: Aggregate) -> Self {
        let scores = features.iter().map(|f| f.score).filter(|s| !s.is_nan());
        let score = match aggregate {
            Aggregate::Max => scores.fold(0.0, f64::max),
            Aggregate::Mean => {
                let (sum, n) = scores.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
                if n == 0 { 0.0 } else { sum / n as f64 }
            }
        };
        let drifted = features.iter().any(|f| f.drifted);
        DriftReport {
            features,
            score,
            drifted,
        }
    }
}

#[doc(hidden)]
pub fn __fit<T: DriftDetector>(
    config: Vec<(String, ConfigValueWit)>,
    reference: Vec<Column>,
) -> std::result::Result<Vec<u8>, String> {
    T::fit(&config_from_wit(config), reference).map_err(String::from)
}

#[doc(hidden)]
pub fn __score<T: DriftDetector>(
    config: Vec<(String, ConfigValueWit)>,
    state: Vec<u8>,
    window: Vec<Column>,
    threshold: f64,
) -> std::result::Result<DriftReport, String> {
    T::score(&config_from_wit(config), &state, window, threshold).map_err(String::from)
}

/// Exports a [`DriftDetector`] as the component's `drift` interface.
///
/// ```ignore
/// cairn_plugin_sdk::export_drift_detector!(MyDetector);
/// ```
#[macro_export]
macro_rules! export_drift_detector {
    ($detector:ty) => {
        const _: () = {
            struct __CairnDriftExport;
            impl $crate::drift::bindings::exports::cairn::plugin::drift::Guest for __CairnDriftExport {
                fn fit(
                    config: $crate::drift::bindings::cairn::plugin::types::Config,
                    reference: ::std::vec::Vec<$crate::drift::Column>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    $crate::drift::__fit::<$detector>(config, reference)
                }
                fn score(
                    config: $crate::drift::bindings::cairn::plugin::types::Config,
                    state: ::std::vec::Vec<u8>,
                    window: ::std::vec::Vec<$crate::drift::Column>,
                    threshold: f64,
                ) -> ::std::result::Result<$crate::drift::DriftReport, ::std::string::String> {
                    $crate::drift::__score::<$detector>(config, state, window, threshold)
                }
            }
            $crate::drift::bindings::__export_drift_detector_world!(__CairnDriftExport with_types_in $crate::drift::bindings);
        };
    };
}
