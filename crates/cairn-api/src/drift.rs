//! Drift: `GET /api/v1/models/NAME/drift` (the verdicts over a period) and
//! `POST /api/v1/models/NAME/drift/evaluate` (one now).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/models/NAME/drift`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DriftSeries {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub name: String,
    /// Whether its spec monitors drift.
    pub monitored: bool,
    /// The drift-detector plugin.
    pub plugin: Option<String>,
    /// The spec's threshold.
    pub threshold: Option<f64>,
    /// Start of the period, ms since the epoch.
    pub from: i64,
    /// End of the period (excluded), ms since the epoch.
    pub to: i64,
    /// The verdicts, oldest first.
    pub verdicts: Vec<DriftVerdict>,
}

/// One evaluation of a model's drift monitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftVerdict {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub model: String,
    /// The drift-detector plugin.
    pub plugin: String,
    /// When the evaluation ran, ms since the epoch.
    pub time_ms: i64,
    /// Start of the window scored, ms since the epoch.
    pub from_ms: i64,
    /// End of the window scored (excluded).
    pub to_ms: i64,
    /// Rows (predicted instances) in the window.
    pub rows: u64,
    /// The overall score, when scored.
    pub score: Option<f64>,
    /// Whether the window drifted, when scored.
    pub drifted: Option<bool>,
    /// The spec's threshold.
    pub threshold: f64,
    /// Per-feature results.
    pub features: Vec<FeatureVerdict>,
    /// Why the window was not scored (no rows, a plugin error).
    pub error: Option<String>,
}

/// One feature's drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureVerdict {
    /// The feature.
    pub feature: String,
    /// The detector's statistic.
    pub score: f64,
    /// Its p-value, if the test has one.
    pub p_value: Option<f64>,
    /// Whether the feature drifted.
    pub drifted: bool,
}

/// Query parameters of `GET /api/v1/models/NAME/drift`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftQuery {
    /// Start, RFC 3339 (default: a day before `to`).
    pub from: Option<String>,
    /// End, RFC 3339, excluded (default: now).
    pub to: Option<String>,
}
