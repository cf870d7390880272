//! Job runs: `/api/v1/runs`, `/api/v1/jobs/NAME/runs[/N[/logs]]`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// The state of a job run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for upstream jobs, resources or a free GPU.
    Pending,
    /// Its process runs.
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Not run because an upstream job failed, or cancelled.
    Skipped,
}

impl RunState {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Skipped
        )
    }
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Store-wide id.
    pub id: i64,
    /// The job.
    pub job_name: String,
    /// The job's project.
    pub project: Option<String>,
    /// Number of this run among the job's runs, from 1.
    pub number: i64,
    /// What started it: `manual`, `schedule`, `sync`, `pipeline`, ...
    pub trigger: String,
    /// Runs started together as one pipeline share this id.
    pub pipeline: String,
    /// Its state.
    pub state: RunState,
    /// The current or last attempt, from 1.
    pub attempt: i64,
    /// The commit the job's spec came from.
    pub commit: String,
    /// Its parameters (the spec's, with overrides).
    pub params: Map<String, Value>,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// When its process first started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Process exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why it is in its state.
    pub message: String,
    /// Its process, while running.
    pub pid: Option<i64>,
    /// GPUs it holds (`CUDA_VISIBLE_DEVICES`).
    pub gpus: Option<String>,
    /// Duration in seconds, once finished.
    pub duration_seconds: Option<f64>,
    /// The sweep it is a run of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    /// Chosen as its sweep's best (only that run feeds models and
    /// downstream jobs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub best: bool,
    /// The files it produced: only in the answer about one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
}

/// A file produced by a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Store id.
    pub id: i64,
    /// The producing run.
    pub run_id: i64,
    /// The output name.
    pub output: String,
    /// Where the file is kept.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was collected, RFC 3339.
    pub created_at: String,
}

/// `GET /api/v1/runs` and `GET /api/v1/jobs/NAME/runs`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<Run>,
}

/// `POST /api/v1/jobs/NAME/runs`: an empty body runs the job with its
/// spec's parameters, upstream jobs first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// Parameters to override.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    /// The job's project, when several projects have a job of that name.
    #[serde(default)]
    pub project: Option<String>,
    /// Run every upstream job first (default true).
    #[serde(default)]
    pub upstream: Option<bool>,
}

/// The answer to `POST /api/v1/jobs/NAME/runs` (202).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StartedRun {
    /// The run of the job asked for.
    pub run: Option<Run>,
    /// Every run started, upstream jobs first.
    pub pipeline: Vec<Run>,
}

/// Query parameters of `GET /api/v1/jobs/NAME/runs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// The job's project, when several projects have a job of that name.
    pub project: Option<String>,
    /// The most runs to answer (default 50).
    pub limit: Option<i64>,
}

/// Query parameters of the routes about one job's run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// The job's project, when several projects have a job of that name.
    pub project: Option<String>,
}

/// Query parameters of `GET /api/v1/runs` and `GET /api/v1/audit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// The most entries to answer (default 50 runs, 100 audit entries).
    pub limit: Option<i64>,
}

/// Query parameters of `GET /api/v1/jobs/NAME/runs/N/logs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The job's project, when several projects have a job of that name.
    pub project: Option<String>,
    /// Keep the answer open and stream the log until the run ends.
    pub follow: Option<bool>,
}
