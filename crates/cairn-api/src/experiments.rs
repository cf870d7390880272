//! Experiments: `/api/v1/experiments[/…]` — tracked runs listed, compared
//! and promoted. (MLflow's own protocol is in [`crate::mlflow`].)

use crate::registry::{Pinned, Promotion};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// An experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// Its id (MLflow's `experiment_id`).
    pub id: String,
    /// Its name: `PROJECT/NAME`.
    pub name: String,
    /// Its project.
    pub project: Option<String>,
    /// The job it tracks, if it was made for one.
    pub job: Option<String>,
    /// `active` or `deleted`.
    pub lifecycle: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Experiments the caller may see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExperimentList {
    /// Newest first.
    pub experiments: Vec<Experiment>,
}

/// The job run a tracked run records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRunLink {
    /// The job.
    pub job: String,
    /// Its project.
    pub project: Option<String>,
    /// The run's number.
    pub number: i64,
    /// The run's state.
    pub state: String,
    /// Its sweep, if it is a sweep's run.
    pub sweep: Option<String>,
    /// Chosen as its sweep's best.
    pub best: bool,
    /// The files it produced.
    pub artifacts: Vec<RunArtifact>,
}

/// A declared output of a job run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunArtifact {
    /// The output's name.
    pub output: String,
    /// Its digest.
    pub sha256: String,
    /// Its size.
    pub size: i64,
}

/// A model version a run produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProducedVersion {
    /// The model.
    pub model: String,
    /// Its project.
    pub project: Option<String>,
    /// The version.
    pub version: i64,
    /// `stable`, `canary`, `retired`…
    pub state: String,
}

/// One point of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// The training step.
    pub step: i64,
    /// When, RFC 3339.
    pub timestamp: String,
    /// The value (`null`: not a number).
    pub value: Option<f64>,
}

/// A tracked run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackedRun {
    /// MLflow's run id (32 hexadecimal digits).
    pub id: String,
    /// Its experiment's id.
    pub experiment_id: String,
    /// Its experiment's name.
    pub experiment: String,
    /// Its name.
    pub name: String,
    /// `RUNNING`, `SCHEDULED`, `FINISHED`, `FAILED` or `KILLED`.
    pub status: String,
    /// Who started it.
    pub user: String,
    /// Started, RFC 3339.
    pub started_at: Option<String>,
    /// Ended, RFC 3339.
    pub ended_at: Option<String>,
    /// The commit it ran (`mlflow.source.git.commit`).
    pub commit: Option<String>,
    /// Its parent run (a sweep's).
    pub parent: Option<String>,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// The latest value of each metric (`null`: not a number).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The datasets it read: `NAME@DIGEST`.
    pub datasets: Vec<String>,
    /// The job run it records.
    pub job_run: Option<JobRunLink>,
    /// Model versions served from its artifacts.
    pub model_versions: Vec<ProducedVersion>,
}

/// Runs of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackedRunList {
    /// The experiment.
    pub experiment: Experiment,
    /// The runs, in the order asked.
    pub runs: Vec<TrackedRun>,
    /// Where the next page starts.
    pub next_page_token: Option<String>,
}

/// How runs are listed: MLflow's filter and order-by syntax.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// `metrics.accuracy > 0.9 and params.C = '1.0'`.
    pub filter: Option<String>,
    /// `metrics.accuracy DESC` (comma-separated keys).
    pub order_by: Option<String>,
    /// At most this many (default 100).
    pub max_results: Option<usize>,
    /// A page token from an earlier answer.
    pub page_token: Option<String>,
    /// Deleted runs too (`all`) or only (`deleted`).
    pub view: Option<String>,
}

/// A metric's history in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricHistory {
    /// The run.
    pub run: String,
    /// The metric.
    pub key: String,
    /// Oldest first.
    pub points: Vec<MetricPoint>,
}

/// Runs side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Comparison {
    /// The runs, in the order asked.
    pub runs: Vec<TrackedRun>,
    /// One row per parameter any run has.
    pub params: Vec<ParamRow>,
    /// One row per metric any run has.
    pub metrics: Vec<MetricRow>,
}

/// A parameter across runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamRow {
    /// The parameter.
    pub key: String,
    /// Its value in each run (`null`: not logged).
    pub values: Vec<Option<String>>,
    /// Whether the runs disagree.
    pub differs: bool,
}

/// A metric across runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricRow {
    /// The metric.
    pub key: String,
    /// Its latest value in each run (`null`: not logged, or not a number).
    pub values: Vec<Option<f64>>,
    /// Whether the runs disagree.
    pub differs: bool,
}

/// Which runs to compare.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// Run ids, comma-separated (2 to 20).
    pub runs: String,
}

/// Promote a run: pin a model to the artifact it produced, through Git.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The model (`NAME` or `PROJECT/NAME`), whose `from` names the run's job.
    pub model: String,
    /// `commit` (default) or `pull-request` (a branch for review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promotion>,
}

/// The answer to a promotion (202): the pin written to Git.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromoteAnswer {
    /// Where the pin was written.
    pub pinned: Pinned,
    /// The run promoted.
    pub run: String,
    /// The artifact pinned.
    pub sha256: String,
}
