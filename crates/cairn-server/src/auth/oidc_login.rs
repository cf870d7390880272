//! Signing in through the identity provider: `/auth/oidc/login` sends the
//! browser to the provider (authorization code with PKCE, see
//! [`crate::oidc`]); `/auth/oidc/callback` takes it back, verifies who it
//! is and opens a session. The provider's groups claim maps to roles
//! through `Project.spec.access`; the operator's admin groups make
//! operators.

use super::layer::Auth;
use super::rules::{Routes, Rule};
use super::{Principal, login, session};
use crate::oidc::{Oidc, OidcIdentity, PENDING_LOGIN_MAX_AGE, PendingLogin};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Sign-in through one OpenID Connect provider.
pub struct OidcLogin {
    /// The provider's client.
    pub client: Oidc,
    /// Groups whose members are operators.
    pub admin_groups: Vec<String>,
    /// Logins under way, by state: the login and where to go after.
    pending: Mutex<HashMap<String, (PendingLogin, String)>>,
}

impl OidcLogin {
    /// Sign-in through `client`; members of `admin_groups` are operators.
    pub fn new(client: Oidc, admin_groups: Vec<String>) -> OidcLogin {
        OidcLogin {
            client,
            admin_groups,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Whom an identity of the provider speaks for.
    pub fn principal(&self, identity: &OidcIdentity) -> Principal {
        let mut names = vec![identity.subject.clone()];
        names.extend(identity.email.clone());
        Principal::User {
            name: identity
                .email
                .clone()
                .unwrap_or_else(|| identity.subject.clone()),
            names,
            admin: identity
                .groups
                .iter()
                .any(|g| self.admin_groups.contains(g)),
            groups: identity.groups.clone(),
        }
    }
}

/// The routes.
pub fn routes(routes: Routes<Arc<Auth>>) -> Routes<Arc<Auth>> {
    routes
        .route(Method::GET, "/auth/oidc/login", Rule::Public, start)
        .route(Method::GET, "/auth/oidc/callback", Rule::Public, callback)
}

/// `/auth/oidc/login`'s query.
#[derive(Debug, Deserialize)]
pub struct Start {
    /// Where to go once signed in.
    #[serde(default)]
    pub next: Option<String>,
}

/// `/auth/oidc/callback`'s query.
#[derive(Debug, Deserialize)]
pub struct Callback {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// The state sent at the start.
    #[serde(default)]
    pub state: Option<String>,
    /// The provider's error, when it refused.
    #[serde(default)]
    pub error: Option<String>,
}

fn not_configured() -> Response {
    login::page(
        StatusCode::NOT_FOUND,
        "/",
        Some("no identity provider is configured (cairn up --oidc-issuer)"),
        false,
    )
}

/// Sends the browser to the provider.
pub(crate) async fn start(State(auth): State<Arc<Auth>>, Query(q): Query<Start>) -> Response {
    let Some(oidc) = &auth.oidc else {
        return not_configured();
    };
    let (url, pending) = oidc.client.begin();
    let next = login::local_path(q.next.as_deref());
    let mut map = oidc.pending.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, (p, _)| !p.is_expired(PENDING_LOGIN_MAX_AGE));
    map.insert(pending.state().to_string(), (pending, next));
    Redirect::to(&url).into_response()
}

/// Takes the browser back from the provider and opens a session.
pub(crate) async fn callback(State(auth): State<Arc<Auth>>, Query(q): Query<Callback>) -> Response {
    let Some(oidc) = &auth.oidc else {
        return not_configured();
    };
    let refuse = |message: &str| login::page(StatusCode::UNAUTHORIZED, "/", Some(message), true);
    if let Some(error) = &q.error {
        return refuse(&format!("the identity provider refused: {error}"));
    }
    let (Some(code), Some(state)) = (&q.code, &q.state) else {
        return refuse("the identity provider's answer has no code or state");
    };
    let pending = oidc
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(state);
    let Some((pending, next)) = pending else {
        return refuse("this sign-in is unknown or was already used: start again");
    };
    let identity = match oidc.client.finish(pending, code, state).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("sign-in through the identity provider failed: {e}");
            return refuse(&format!("sign-in failed: {e}"));
        }
    };
    let principal = oidc.principal(&identity);
    let _ = auth.store.audit_as(
        &principal.subject(),
        None,
        None,
        "sign-in",
        &format!(
            "through the identity provider (groups: {})",
            identity.groups.join(", ")
        ),
    );
    match auth.sessions.open(principal, None) {
        Ok((id, _)) => (
            [(
                header::SET_COOKIE,
                session::set_cookie(&id, auth.secure_cookies),
            )],
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => login::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/",
            Some(&e.to_string()),
            true,
        ),
    }
}
