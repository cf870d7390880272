//! `GET /api/v1/audit`: what the controller did, and why.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// When, RFC 3339.
    pub at: String,
    /// The commit that caused it.
    pub commit: Option<String>,
    /// The resource (`Kind/project/name`).
    pub resource: Option<String>,
    /// What happened: `create`, `update`, `delete`, `hold`, `run`, ...
    pub action: String,
    /// Details.
    pub detail: String,
    /// Who did it: the commit's author and committer for what Git asked,
    /// the caller (`user:alice@example.com`, `token:tok_1a2b3c4d`) for what
    /// the API was asked, `cairn` for the controller's own decisions.
    #[serde(default)]
    pub actor: String,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}
