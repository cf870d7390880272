//! `POST /hooks/git`: push webhooks from GitHub, GitLab, Gitea and others.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the webhook did: a sync was asked for (202), or the push was not
/// for the followed branch (200).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum HookAnswer {
    /// A sync was asked for.
    Accepted(HookAccepted),
    /// Nothing to sync.
    Ignored(HookIgnored),
}

/// A push to the followed branch: a sync was asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookAccepted {
    /// Always `true`.
    pub accepted: bool,
    /// Who sent it: `github`, `gitlab`, `gitea` or `generic`.
    pub provider: String,
    /// The commit the branch now points at, when the payload says.
    pub after: Option<String>,
}

/// Not a push to the followed branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookIgnored {
    /// Always `false`.
    pub accepted: bool,
    /// Why nothing is synced.
    pub reason: String,
}
