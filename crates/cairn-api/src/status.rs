//! `GET /api/v1/status` and `GET /api/v1/sync`: the repository, the last
//! sync, spec diagnostics and every resource with its phase.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The repository followed (a path or URL).
    pub repository: String,
    /// The branch or revision followed.
    pub revision: String,
    /// What the loaded specs were read from; `null` before the first load.
    pub origin: Option<Origin>,
    /// The last finished sync; `null` before the first.
    pub last_sync: Option<SyncRecord>,
    /// Errors in the loaded specs.
    pub errors: usize,
    /// Errors and warnings in the loaded specs.
    pub diagnostics: Vec<Diagnostic>,
    /// Every resource with its phase.
    pub resources: Vec<ResourceStatus>,
    /// The GPUs of this machine (none on Kubernetes).
    pub gpus: Vec<GpuDevice>,
}

/// `GET /api/v1/sync`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastSync {
    /// The last finished sync; `null` before the first.
    pub last_sync: Option<SyncRecord>,
}

/// What a snapshot of the specs was taken of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Origin {
    /// A commit.
    Commit {
        /// Full commit id.
        id: String,
        /// Author name.
        author: String,
        /// Author e-mail.
        email: String,
        /// Commit time, RFC 3339.
        time: String,
        /// First line of the message.
        summary: String,
    },
    /// The staged contents of the index.
    Index,
    /// Files on disk.
    Worktree,
}

/// A finished reconciliation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The commit synced.
    pub commit: String,
    /// When the change was noticed, RFC 3339.
    pub detected_at: String,
    /// When the sync finished, RFC 3339.
    pub finished_at: String,
    /// How long it took from the change being noticed, in milliseconds.
    pub duration_ms: i64,
    /// What the plan did.
    pub summary: PlanSummary,
    /// Errors in the specs at that commit.
    pub errors: i64,
}

/// Counts of a plan's actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanSummary {
    /// Resources created.
    pub create: usize,
    /// Resources updated.
    pub update: usize,
    /// Resources deleted.
    pub delete: usize,
    /// Deletions held back.
    pub hold: usize,
    /// Resources left as they were.
    pub unchanged: usize,
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails validation.
    Error,
    /// Worth a look; does not fail validation.
    Warning,
}

/// A problem in the specs, with 1-based lines and columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// A stable code, such as `invalid-type`.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// The file, relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Where it starts: line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Where it starts: column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Where it ends: line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_line: Option<usize>,
    /// Where it ends: column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_column: Option<usize>,
    /// How to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Other places involved, such as a first definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedLocation>,
}

/// A secondary location of a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelatedLocation {
    /// The file, relative to the repository root.
    pub file: String,
    /// Line, when known.
    pub line: Option<usize>,
    /// Column, when known.
    pub column: Option<usize>,
    /// What is there.
    pub message: String,
}

/// The kinds of resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Kind {
    /// A team's namespace, owners and quotas.
    Project,
    /// Where work runs.
    ComputePool,
    /// A table or file set, for lineage.
    Dataset,
    /// A WebAssembly component.
    Plugin,
    /// A Python environment shared by workloads.
    Environment,
    /// Batch work, pipelines and schedules.
    Job,
    /// A REST endpoint serving a model.
    Model,
    /// An interactive web application.
    Application,
}

impl Kind {
    /// The name as written in specs and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::ComputePool => "ComputePool",
            Kind::Dataset => "Dataset",
            Kind::Plugin => "Plugin",
            Kind::Environment => "Environment",
            Kind::Job => "Job",
            Kind::Model => "Model",
            Kind::Application => "Application",
        }
    }
}

/// The phase of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Phase {
    /// Being applied or started.
    Progressing,
    /// Applied and, for long-running workloads, ready.
    Ready,
    /// Applied; a job waits for its schedule or a trigger.
    Idle,
    /// A job run is in progress.
    Running,
    /// The last job run succeeded.
    Succeeded,
    /// Something failed; see the message.
    Failed,
    /// The spec failed to load; the running counterpart is left untouched.
    Invalid,
}

impl Phase {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Idle => "Idle",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
        }
    }
}

/// The status of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Its kind.
    pub kind: Kind,
    /// Its project, for project-scoped kinds.
    pub project: Option<String>,
    /// Its name.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// A human explanation.
    pub message: String,
    /// The commit it was last synced from.
    pub synced_commit: Option<String>,
    /// The file that declares it.
    pub file: Option<String>,
    /// When the phase last changed, RFC 3339.
    pub last_transition: String,
}

/// One GPU of this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GpuDevice {
    /// NVML index (PCI bus order), as in `CUDA_VISIBLE_DEVICES`.
    pub index: u32,
    /// The device's UUID (`GPU-...`).
    pub uuid: String,
    /// The product name.
    pub name: String,
    /// Total device memory in bytes.
    pub memory_total_bytes: u64,
}
