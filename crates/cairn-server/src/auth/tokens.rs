//! `/api/v1/whoami` and the API tokens of `/api/v1/tokens[/ID]`: an owner
//! of a project makes, lists and revokes its tokens; operators, all of them.

use super::layer::Auth;
use super::rules::{Routes, Rule};
use super::{Caller, Denied, Role};
use crate::contract::ToApi;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorBody;
use cairn_api::auth::{
    CreateToken, NewToken, ProjectAccess, RevokedToken, TokenInfo, TokenList, WhoAmI,
};
use cairn_store::tokens::{self, TokenKind};
use std::sync::Arc;

/// The routes.
pub fn routes(routes: Routes<Arc<Auth>>) -> Routes<Arc<Auth>> {
    routes
        .route(Method::GET, "/api/v1/whoami", Rule::Signed, whoami)
        .route(Method::GET, "/api/v1/tokens", Rule::Signed, list_tokens)
        .route(
            Method::POST,
            "/api/v1/tokens",
            Rule::Found(Role::Owner),
            create_token,
        )
        .route(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Rule::Found(Role::Owner),
            revoke_token,
        )
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}

/// The caller, as the server sees it.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    ))]
pub(crate) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let groups = match &caller.principal {
        super::Principal::User { groups, .. } => groups.clone(),
        _ => Vec::new(),
    };
    Json(WhoAmI {
        subject: caller.actor(),
        admin: caller.principal.is_admin(),
        projects: caller
            .access
            .roles_of(&caller.principal)
            .into_iter()
            .map(|(project, role)| ProjectAccess {
                project,
                role: role.to_string(),
            })
            .collect(),
        groups,
        csrf_token: caller.csrf.clone(),
    })
}

/// The tokens of the projects the caller owns (every token, for an
/// operator); workloads' own tokens are left out.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses(
        (status = 200, description = "The tokens, oldest first", body = TokenList),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    ))]
pub(crate) async fn list_tokens(State(auth): State<Arc<Auth>>, caller: Caller) -> Response {
    let all = match auth
        .store
        .list_tokens(None, &[TokenKind::Admin, TokenKind::Api])
    {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let tokens: Vec<TokenInfo> = all
        .into_iter()
        .filter(|t| match &t.project {
            _ if caller.principal.is_admin() => true,
            Some(p) => caller.can(p, Role::Owner),
            None => false,
        })
        .map(|t| t.to_api())
        .collect();
    Json(TokenList { tokens }).into_response()
}

/// Makes a token; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token", body = NewToken),
        (status = 400, description = "The request is not a valid token request", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller does not own the project (or is not an operator, for an admin token)", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
    ))]
pub(crate) async fn create_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    let request: CreateToken = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let Some(role) = Role::parse(&request.role) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "`{}` is not a role: use viewer, editor, owner or admin",
                request.role
            ),
        );
    };
    if request.name.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "name the token (what it is for)");
    }
    let project = match (role, &request.project) {
        (Role::Admin, Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "an admin token acts in every project: leave `project` out",
            );
        }
        (Role::Admin, None) => {
            if !caller.principal.is_admin() {
                return Denied {
                    status: StatusCode::FORBIDDEN,
                    message: format!("{} may not make admin tokens", caller.actor()),
                }
                .into_response();
            }
            None
        }
        (_, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "name the project the token acts in (`project`)",
            );
        }
        (_, Some(p)) => {
            if !caller.access.projects().any(|known| known == p) {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no project `{p}` is applied"),
                );
            }
            if let Err(denied) = caller.require(p, Role::Owner) {
                return denied.into_response();
            }
            Some(p.to_string())
        }
    };
    let expires_at = match &request.expires_in {
        None => None,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(chrono::Utc::now().timestamp() + d.as_secs() as i64),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`{text}` is not a duration (for example `90d` or `12h`)"),
                );
            }
        },
    };
    let new = tokens::NewToken {
        name: request.name.trim().to_string(),
        kind: TokenKind::Api,
        project: project.clone(),
        role: role.to_string(),
        created_by: caller.actor(),
        expires_at,
    };
    match auth.store.create_token(&new) {
        Ok((secret, info)) => {
            let _ = auth.store.audit_as(
                &caller.actor(),
                None,
                None,
                "token-create",
                &format!(
                    "token {} `{}`: {role} in {}",
                    info.id,
                    info.name,
                    project.as_deref().unwrap_or("every project")
                ),
            );
            (
                StatusCode::CREATED,
                Json(NewToken {
                    token: secret,
                    info: info.to_api(),
                }),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "The token's id (`tok_…`)")),
    responses(
        (status = 200, description = "Revoked", body = RevokedToken),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller does not own the token's project", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub(crate) async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let info = match auth.store.token(&id) {
        Ok(Some(t)) if t.kind != TokenKind::Workload => t,
        Ok(_) => return error(StatusCode::NOT_FOUND, format!("no token `{id}`")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let allowed = match &info.project {
        _ if caller.principal.is_admin() => true,
        Some(p) => caller.can(p, Role::Owner),
        None => false,
    };
    if !allowed {
        return Denied {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{} may not revoke {id}: it needs the `owner` role in {}",
                caller.actor(),
                info.project
                    .as_deref()
                    .unwrap_or("every project (an operator)")
            ),
        }
        .into_response();
    }
    match auth.store.revoke_token(&id) {
        Ok(_) => {
            let _ = auth.store.audit_as(
                &caller.actor(),
                None,
                None,
                "token-revoke",
                &format!("token {id} `{}`", info.name),
            );
            Json(RevokedToken { revoked: id }).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
