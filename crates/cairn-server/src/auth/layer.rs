//! The authentication layer: finds the caller of every request and holds
//! it to its route's [`Rule`].
//!
//! The caller is an API token (`Authorization: Bearer cairn_tok_…`) or a
//! dashboard session (its cookie; with its CSRF token on anything but GET,
//! HEAD and OPTIONS). Anonymous callers get 401 (pages redirect to
//! `/login`); callers without the role get 403. With authentication off
//! (`--auth none`) everyone is [`Principal::Anonymous`], an operator.

use super::access::Access;
use super::rules::{Named, Rule, RuleIndex};
use super::session::{self, Sessions};
use super::{Caller, Denied, Principal, Role};
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_api::ErrorBody;
use cairn_spec::{Lookup, ScopedName};
use cairn_store::Store;
use cairn_store::tokens::{TokenKind, TokenRefusal};
use std::sync::{Arc, RwLock};

/// Finds the project of a resource a route names.
pub trait Resolve: Send + Sync {
    /// The project(s) of `wanted`, a resource of kind `named`.
    fn project_of(&self, named: Named, wanted: &ScopedName) -> Lookup<String>;
}

/// Whether callers must authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens or sessions (the default).
    Required,
    /// Everyone is an operator (`--auth none`, for throwaway local use).
    Off,
}

/// What the layer needs.
pub struct Auth {
    /// Whether callers must authenticate.
    pub mode: AuthMode,
    /// Tokens.
    pub store: Arc<Store>,
    /// The projects' access rules, as last applied.
    pub access: RwLock<Arc<Access>>,
    /// Dashboard sessions.
    pub sessions: Sessions,
    /// The rules of every route, indexed.
    pub rules: RuleIndex,
    /// The rules of every route, as registered.
    pub table: Vec<super::rules::RouteRule>,
    /// The projects of named resources.
    pub resolver: Arc<dyn Resolve>,
    /// Whether cookies are marked `Secure` (the server is reached over HTTPS).
    pub secure_cookies: bool,
    /// Sign-in through an identity provider, when configured.
    pub oidc: Option<super::oidc_login::OidcLogin>,
}

impl Auth {
    /// Whether people may sign in through an OpenID Connect provider.
    pub fn oidc_enabled(&self) -> bool {
        self.oidc.is_some()
    }

    /// The access rules now.
    pub fn access(&self) -> Arc<Access> {
        self.access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the access rules from the applied projects.
    pub fn refresh_access(&self) -> Result<(), cairn_store::StoreError> {
        let applied = self.store.applied()?;
        let access = Access::from_applied(applied.iter().map(|a| (&a.key, &a.value)));
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        Ok(())
    }

    /// The principal a token secret speaks for.
    pub fn principal_of_token(&self, secret: &str) -> Result<Principal, Denied> {
        let now = chrono::Utc::now().timestamp_millis();
        let grant = self.store.check_token(secret, now).map_err(|e| {
            Denied::unauthenticated(match e {
                TokenRefusal::Malformed => e.to_string(),
                _ => format!("{e}: ask for a new one (`cairn tokens create`)"),
            })
        })?;
        Ok(Principal::Token {
            workload: grant.kind == TokenKind::Workload,
            role: Role::parse(&grant.role).unwrap_or(Role::Viewer),
            id: grant.id,
            name: grant.name,
            project: grant.project,
        })
    }

    /// Who `headers` speak for, if anyone (and a session's CSRF token); a
    /// session must show its CSRF token on a state-changing `method`.
    pub fn identify(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(Principal, Option<String>), Denied> {
        if self.mode == AuthMode::Off {
            return Ok((Principal::Anonymous, None));
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default();
            let Some(secret) = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
            else {
                return Err(Denied::unauthenticated(
                    "send the token as `Authorization: Bearer TOKEN`",
                ));
            };
            return Ok((self.principal_of_token(secret.trim())?, None));
        }
        let Some(id) = session::cookie(headers, session::COOKIE) else {
            return Err(Denied::unauthenticated(
                "sign in: send an API token as `Authorization: Bearer TOKEN` (the operator's is in the data directory's `admin-token`; `cairn tokens create` makes more), or open /login",
            ));
        };
        let Some(s) = self.sessions.get(&id) else {
            return Err(Denied::unauthenticated(
                "the session has ended: sign in again at /login",
            ));
        };
        if let Some(token) = &s.token
            && !self.store.token_is_live(token)
        {
            self.sessions.close(&id);
            return Err(Denied::unauthenticated(
                "the token this session was opened with is no longer valid: sign in again at /login",
            ));
        }
        if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let presented = headers
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if !session::csrf_matches(&s, presented) {
                return Err(Denied {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "a request signed in by cookie must repeat the session's CSRF token in `{}`",
                        session::CSRF_HEADER
                    ),
                });
            }
        }
        Ok((s.principal, Some(s.csrf)))
    }
}

/// Whether an unauthenticated `GET` of `path` is a person's browser, sent
/// to sign in rather than answered 401.
fn is_page(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && !path.starts_with("/api/")
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The `?project=` of a query string.
fn query_project(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "project")
        .map(|(_, v)| v.into_owned())
}

/// The layer (`axum::middleware::from_fn_with_state` on the routes, after
/// they matched).
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    matched: Option<MatchedPath>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let path = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let method = req.method().clone();
    let Some(rule) = auth.rules.rule(path, &method) else {
        tracing::error!("no access rule for {method} {path}: refused");
        return Denied {
            status: StatusCode::FORBIDDEN,
            message: format!("{method} {path} has no access rule"),
        }
        .into_response();
    };
    if matches!(rule, Rule::Public | Rule::Gateway | Rule::Webhook) {
        return next.run(req).await;
    }
    let (principal, csrf) = match auth.identify(&method, req.headers()) {
        Ok(p) => p,
        Err(denied) => {
            if denied.status == StatusCode::UNAUTHORIZED
                && is_page(&method, req.uri().path(), req.headers())
            {
                let next = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                return Redirect::to(&format!("/login?next={next}")).into_response();
            }
            return denied.into_response();
        }
    };
    let caller = Caller {
        principal,
        access: auth.access(),
        csrf,
    };
    match rule {
        Rule::Admin if !caller.principal.is_admin() => {
            return Denied {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{} may not do this: it needs the `admin` role (an operator)",
                    caller.actor()
                ),
            }
            .into_response();
        }
        Rule::Project(named, role) => {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            let project = param("project").or_else(|| query_project(req.uri().query()));
            let Some(name) = param("name") else {
                tracing::error!("{method} {path}: a project rule on a route without a name");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let wanted = ScopedName { project, name };
            match auth.resolver.project_of(named, &wanted) {
                Lookup::Found(project) => {
                    if let Err(denied) = caller.require(&project, role) {
                        return denied.into_response();
                    }
                }
                Lookup::Ambiguous(projects) => {
                    return (
                        StatusCode::CONFLICT,
                        axum::Json(ErrorBody::new(format!(
                            "`{}` names a resource of several projects ({}): name the project, as in /projects/{}/…",
                            wanted.name,
                            projects.join(", "),
                            projects[0]
                        ))),
                    )
                        .into_response();
                }
                // The handler answers 404 (with the caller authenticated).
                Lookup::NotFound => {}
            }
        }
        _ => {}
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_of_a_query() {
        assert_eq!(
            query_project(Some("a=1&project=lab")).as_deref(),
            Some("lab")
        );
        assert_eq!(query_project(Some("projects=lab")), None);
        assert_eq!(query_project(Some("project=a%20b")).as_deref(), Some("a b"));
        assert_eq!(query_project(None), None);
    }
}
