//! Monitoring: business metrics and delayed labels by inference UUID
//! (`POST /models/NAME/metrics`, `POST /models/NAME/feedback`) and the
//! aggregate report (`GET /api/v1/models/NAME/metrics/aggregate`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// A business metric's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetricValue {
    /// A number (aggregated as count, sum, mean, p50 and p95).
    Number(f64),
    /// A category (counted per value).
    Text(String),
}

/// Business metrics of one prediction, or of the model as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsItem {
    /// The prediction's inference id; absent or `null`: the model's, timed
    /// now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The metrics by name (at least one).
    pub metrics: BTreeMap<String, MetricValue>,
}

/// `POST /models/NAME/metrics`: one item or an array of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetricsRequest {
    /// One item.
    One(MetricsItem),
    /// Several (at least one).
    Many(Vec<MetricsItem>),
}

/// The ground truth of one prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackItem {
    /// The prediction's inference id.
    pub uuid: String,
    /// The true label: a number, a string, a boolean, or an array for a
    /// batch prediction.
    pub label: Value,
}

/// `POST /models/NAME/feedback` as JSON: one item or an array of them
/// (JSON lines and CSV with `uuid` and `label` columns are read too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FeedbackRequest {
    /// One item.
    One(FeedbackItem),
    /// Several (at least one).
    Many(Vec<FeedbackItem>),
}

/// The answer to `POST /models/NAME/metrics`: 200 when something was
/// recorded, 404 when every UUID was unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsRecorded {
    /// Items recorded.
    pub recorded: u64,
    /// The UUIDs of no logged prediction of this model.
    pub unknown_uuids: Vec<String>,
}

/// The answer to `POST /models/NAME/feedback`: 200 when something matched,
/// 404 when every UUID was unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackMatched {
    /// Labels matched to a prediction.
    pub matched: u64,
    /// The UUIDs of no logged prediction of this model.
    pub unknown_uuids: Vec<String>,
    /// Of the matched, labels that replaced an earlier one.
    pub replaced: u64,
}

/// Query parameters of `GET /api/v1/models/NAME/metrics/aggregate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregateQuery {
    /// Start, RFC 3339 (default: a day before `to`).
    pub from: Option<String>,
    /// End, RFC 3339, excluded (default: now).
    pub to: Option<String>,
    /// `minute`, `hour` (default), `day` or a duration such as `15m`.
    pub window: Option<String>,
}

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Classes: accuracy, precision, recall, F1.
    Classification,
    /// Numbers: MAE, RMSE.
    Regression,
}

/// How precision, recall and F1 are averaged over classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Averaging {
    /// Two classes, `0` and `1`: the scores of class `1`.
    Binary,
    /// The unweighted mean of every class's scores.
    Macro,
}

/// `GET /api/v1/models/NAME/metrics/aggregate`: a model's windows over a
/// period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateReport {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub model: String,
    /// What it predicts: its spec's task, else guessed from its outputs.
    pub task: Task,
    /// Start of the period, RFC 3339.
    pub from: Option<String>,
    /// End of the period (excluded), RFC 3339.
    pub to: Option<String>,
    /// The windows' length in seconds.
    pub window_seconds: i64,
    /// The windows with data, by start then version.
    pub windows: Vec<Window>,
}

/// The aggregates of one version in one window (aligned on the Unix
/// epoch, UTC). Classifiers have `accuracy`, `precision`, `recall` and
/// `f1` (`null` until a label is scored) and `averaging`; regressors have
/// `mae` and `rmse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Start, RFC 3339.
    pub start: Option<String>,
    /// End (excluded), RFC 3339.
    pub end: Option<String>,
    /// The version; `null` for metrics posted to the model as a whole.
    pub version: Option<String>,
    /// Predictions.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Successful predictions with a label.
    pub labeled: u64,
    /// Labeled ÷ successful predictions; `null` without any.
    pub coverage: Option<f64>,
    /// Labels scored (batch rows count one each).
    pub scored: u64,
    /// Labels that could not be paired with the prediction.
    pub unscorable: u64,
    /// Correct ÷ scored (classifiers).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub accuracy: Option<Option<f64>>,
    /// Precision (classifiers).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub precision: Option<Option<f64>>,
    /// Recall (classifiers).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub recall: Option<Option<f64>>,
    /// F1 (classifiers).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub f1: Option<Option<f64>>,
    /// How precision, recall and F1 were averaged (classifiers with scored
    /// labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaging: Option<Averaging>,
    /// Mean absolute error (regressors).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub mae: Option<Option<f64>>,
    /// Root mean squared error (regressors).
    #[serde(default, deserialize_with = "crate::present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub rmse: Option<Option<f64>>,
    /// Business metrics by name.
    pub business_metrics: BTreeMap<String, BusinessMetric>,
}

/// The aggregate of one business metric: numbers as count, sum, mean and
/// percentiles; categories as a count per value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BusinessMetric {
    /// Values posted.
    pub count: u64,
    /// Sum of the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Mean of the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Median of the numbers (nearest rank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// 95th percentile of the numbers (nearest rank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    /// Count per category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, u64>>,
}
