//! Who is calling, and what they may do.
//!
//! Every request is authenticated by [`layer::authenticate`]: an API token
//! (`Authorization: Bearer cairn_tok_…`, [`cairn_store::tokens`]) or a
//! dashboard session cookie ([`session`]; state-changing requests also
//! carry its CSRF token). What each route needs is declared next to it, in
//! one table of (route, verb) → [`rules::Rule`]; a route cannot be
//! registered without a rule. Roles in projects come from
//! `Project.spec.access` in Git, as applied ([`access`]): a project whose
//! spec fails to load keeps the rules last applied. Operators (the admin
//! token, an `admin` token, an identity provider's admin group) hold every
//! role everywhere.

pub mod access;
pub mod layer;
pub mod login;
pub mod oidc_login;
pub mod rules;
pub mod session;
pub mod tokens;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use cairn_api::ErrorBody;
use cairn_spec::ProjectRole;
use std::sync::Arc;

/// A role, weakest first; each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and acts: runs, rollbacks, drift evaluations, model keys,
    /// inference inputs and outputs.
    Editor,
    /// Also manages the project's API tokens.
    Owner,
    /// An operator: every role in every project, and the server itself.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `editor`, `owner` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

impl From<ProjectRole> for Role {
    fn from(r: ProjectRole) -> Role {
        match r {
            ProjectRole::Viewer => Role::Viewer,
            ProjectRole::Editor => Role::Editor,
            ProjectRole::Owner => Role::Owner,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a request speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (`--auth none`): every role everywhere.
    Anonymous,
    /// A token: its id, and the role it carries in one project (or
    /// everywhere, for `admin`).
    Token {
        /// `tok_…`.
        id: String,
        /// What it is for.
        name: String,
        /// Its project; none for an admin token.
        project: Option<String>,
        /// Its role.
        role: Role,
        /// A workload's own token.
        workload: bool,
    },
    /// A person signed in through the identity provider.
    User {
        /// Their e-mail address, or else their subject.
        name: String,
        /// Every name `Project.spec.access` may list them by (e-mail, subject).
        names: Vec<String>,
        /// Their groups.
        groups: Vec<String>,
        /// In one of the operator's admin groups.
        admin: bool,
    },
}

impl Principal {
    /// How the audit log names the caller.
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Token {
                id, workload: true, ..
            } => format!("workload:{id}"),
            Principal::Token { id, .. } => format!("token:{id}"),
            Principal::User { name, .. } => format!("user:{name}"),
        }
    }

    /// Whether the caller is an operator.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::Token { role, .. } => *role == Role::Admin,
            Principal::User { admin, .. } => *admin,
        }
    }
}

/// The caller of a request and the access rules it was judged by, as the
/// authentication layer left them for the handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Whom the request speaks for.
    pub principal: Principal,
    /// The access rules of the projects, as applied.
    pub access: Arc<access::Access>,
    /// The session's CSRF token, when the caller came with a session cookie.
    pub csrf: Option<String>,
}

impl Caller {
    /// The caller's role in `project`, if any.
    pub fn role_in(&self, project: &str) -> Option<Role> {
        self.access.role_of(&self.principal, project)
    }

    /// Whether the caller holds at least `role` in `project`.
    pub fn can(&self, project: &str, role: Role) -> bool {
        self.role_in(project).is_some_and(|r| r >= role)
    }

    /// Whether the caller may see what belongs to `project` (none: things
    /// of no project, for operators only).
    pub fn sees(&self, project: Option<&str>) -> bool {
        match project {
            Some(p) => self.can(p, Role::Viewer),
            None => self.principal.is_admin(),
        }
    }

    /// 403 unless the caller holds `role` in `project`.
    pub fn require(&self, project: &str, role: Role) -> Result<(), Denied> {
        if self.can(project, role) {
            Ok(())
        } else {
            Err(Denied::forbidden(&self.principal, project, role))
        }
    }

    /// The audit log's name for the caller.
    pub fn actor(&self) -> String {
        self.principal.subject()
    }
}

/// A refusal: 401 (who are you?) or 403 (not you), with a message.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied {
    /// 401 or 403.
    pub status: StatusCode,
    /// What to tell the caller.
    pub message: String,
}

impl Denied {
    /// 401 with `message`.
    pub fn unauthenticated(message: impl Into<String>) -> Denied {
        Denied {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403: `principal` lacks `role` in `project`.
    pub fn forbidden(principal: &Principal, project: &str, role: Role) -> Denied {
        Denied {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{} may not do this: it needs the `{role}` role in project `{project}`",
                principal.subject()
            ),
        }
    }
}

impl axum::response::IntoResponse for Denied {
    fn into_response(self) -> axum::response::Response {
        let mut response = (self.status, axum::Json(ErrorBody::new(self.message))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"cairn\""),
            );
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = (StatusCode, axum::Json<ErrorBody>);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(ErrorBody::new(
                    "this route is not behind the authentication layer",
                )),
            )
        })
    }
}
