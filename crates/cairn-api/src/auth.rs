//! Identity and access: `/api/v1/whoami` and the API tokens of
//! `/api/v1/tokens[/ID]`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// The operator's token, made on first start.
    Admin,
    /// A token someone made (`cairn tokens create`).
    Api,
    /// A workload's own token, revoked when the workload ends.
    Workload,
}

/// A token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// `tok_` and 8 hex digits.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// The project it acts in (none: every project, for `admin`).
    pub project: Option<String>,
    /// The role it carries: `viewer`, `editor`, `owner` or `admin`.
    pub role: String,
    /// The secret's beginning (`cairn_tok_` and the id's digits), for people.
    pub prefix: String,
    /// Who made it.
    pub created_by: String,
    /// When, RFC 3339.
    pub created_at: String,
    /// When it stops working, RFC 3339, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, RFC 3339, if it was.
    pub revoked_at: Option<String>,
    /// When it was last used, RFC 3339 (written about once a minute).
    pub last_used_at: Option<String>,
}

/// `GET /api/v1/tokens`: the tokens the caller may manage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Oldest first, revoked ones included.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateToken {
    /// What it is for (shown in listings and the audit log).
    pub name: String,
    /// The project it acts in; leave out only for an `admin` token.
    #[serde(default)]
    pub project: Option<String>,
    /// `viewer`, `editor`, `owner`, or `admin` (operators only, no project).
    pub role: String,
    /// How long it works (`90d`, `12h`); leave out for a token that never
    /// expires.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// The answer to `POST /api/v1/tokens` (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    /// The secret, to send as `Authorization: Bearer TOKEN`; shown only once.
    pub token: String,
    /// The token.
    pub info: TokenInfo,
}

/// The answer to `DELETE /api/v1/tokens/ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedToken {
    /// The id of the token revoked.
    pub revoked: String,
}

/// `GET /api/v1/whoami`: the caller as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// Who: `admin`, `token:tok_1a2b3c4d`, `user:alice@example.com`,
    /// `workload:…`, or `anonymous` when authentication is off.
    pub subject: String,
    /// Whether the caller is an operator (every role everywhere).
    pub admin: bool,
    /// The caller's role in each project where it has one.
    pub projects: Vec<ProjectAccess>,
    /// Groups of the identity provider, for people signed in with it.
    pub groups: Vec<String>,
    /// For a caller signed in by a session cookie: the token its
    /// state-changing requests repeat in `X-CSRF-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// A caller's role in a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectAccess {
    /// The project.
    pub project: String,
    /// `viewer`, `editor` or `owner`.
    pub role: String,
}

/// `GET /api/v1/routes`: every route and what it needs of its caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteTable {
    /// One entry per (route, method).
    pub routes: Vec<RouteAccess>,
}

/// What one route needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteAccess {
    /// The route, as registered (`/api/v1/jobs/{name}/runs`).
    pub path: String,
    /// Its method, or `*` for every method (applications).
    pub method: String,
    /// `public`, `gateway` (the model's access keys), `webhook` (its shared
    /// secret), `signed` (anyone signed in; answers hold what they may
    /// see), `admin`, `project` (a role in the project of the named
    /// resource) or `found` (a role in the project of what the handler
    /// finds).
    pub rule: String,
    /// The role, for `project` and `found`.
    pub role: Option<String>,
    /// The kind of the named resource, for `project`: `job`, `model`, `app`.
    pub resource: Option<String>,
}
