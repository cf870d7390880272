//! Served models and the model registry: `GET /api/v1/models`,
//! `GET /api/v1/models/NAME/versions`, `POST /api/v1/models/NAME/rollback`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a model is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelRuntime {
    /// In-process ONNX inference.
    Onnx,
    /// A WebAssembly plugin of world `model`.
    Wasm,
    /// The user's own server process, or a Python function.
    Process,
}

impl ModelRuntime {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelRuntime::Onnx => "onnx",
            ModelRuntime::Wasm => "wasm",
            ModelRuntime::Process => "process",
        }
    }
}

/// A model the gateway serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedModel {
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: Option<String>,
    /// How it is executed.
    pub runtime: ModelRuntime,
    /// The version serving (the stable one during a canary).
    pub version: i64,
    /// The commit of its spec.
    pub commit: String,
    /// SHA-256 of its artifact (empty for process models).
    pub sha256: String,
    /// Replicas (process models).
    pub replicas: u32,
    /// Whether predictions need an access key.
    pub auth_required: bool,
}

/// `GET /api/v1/models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// The served models.
    pub models: Vec<ServedModel>,
}

/// `GET /api/v1/models/NAME/versions`: every version of a served model with
/// its lineage, rollout history and share of traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub name: String,
    /// The stable version.
    pub current: i64,
    /// The canary, during a rollout.
    pub canary: Option<Canary>,
    /// Every version, oldest first.
    pub versions: Vec<RegistryVersion>,
}

/// A canary version and its share of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Canary {
    /// The canary version.
    pub version: i64,
    /// Its share of traffic, in percent.
    pub weight: u8,
}

/// One version of a model in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryVersion {
    /// Number, from 1.
    pub version: i64,
    /// The commit of the model's spec.
    pub commit: String,
    /// SHA-256 of the served artifact (empty for process models).
    pub sha256: String,
    /// The job run that produced the artifact, if any.
    pub run_id: Option<i64>,
    /// That job run's MLflow run id.
    pub tracked_run: Option<String>,
    /// The experiment of that run.
    pub experiment: Option<String>,
    /// When the version was first served, RFC 3339.
    pub created_at: String,
    /// `serving`, `canary`, `retired` or `rolled-back`.
    pub state: String,
    /// Its share of traffic now, in percent.
    pub traffic: u8,
    /// The datasets the model was trained on (its spec's lineage).
    pub datasets: Vec<String>,
    /// The steps and decisions of its canary rollout.
    pub rollout: Vec<RolloutStep>,
}

/// One step or decision of a canary rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RolloutStep {
    /// The canary version.
    pub version: i64,
    /// When, RFC 3339.
    pub at: String,
    /// The canary's share of traffic, in percent, after the decision.
    pub weight: i64,
    /// `start`, `advance`, `promote` or `rollback`.
    pub decision: String,
    /// What the analysis found.
    pub detail: String,
}

/// How a change reaches the followed branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Promotion {
    /// A commit on the followed branch.
    Commit,
    /// A branch ready for a pull request.
    PullRequest,
    /// Deploy at once and record the commit.
    Auto,
}

/// `POST /api/v1/models/NAME/rollback`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to serve again.
    pub version: i64,
    /// `commit` (default) or `pull-request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promotion>,
}

/// The answer to a rollback (202): the pin written to Git.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RollbackAnswer {
    /// Where the pin was written.
    pub pinned: Pinned,
    /// The version pinned.
    pub version: i64,
}

/// Where a pin of a model's artifact was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pinned {
    /// The new commit.
    pub commit: String,
    /// The branch it is on: the followed branch, or a branch for review.
    pub branch: String,
    /// The spec file changed, relative to the repository root.
    pub file: String,
    /// Whether the followed branch moved (so the change will be served).
    pub on_followed_branch: bool,
}
