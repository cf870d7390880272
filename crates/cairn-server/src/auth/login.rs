//! Signing in to the dashboard: `/login` takes an API token (from its form,
//! or from the link `cairn up` prints, `/login?token=…`, as Jupyter does)
//! and opens a session; `/logout` ends it. Signing in through the identity
//! provider is in [`super::oidc_login`].

use super::layer::{Auth, AuthMode};
use super::rules::{Routes, Rule};
use super::session;
use crate::dashboard::escape;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The routes.
pub fn routes(routes: Routes<Arc<Auth>>) -> Routes<Arc<Auth>> {
    routes
        .route(Method::GET, "/login", Rule::Public, login_page)
        .route(Method::POST, "/login", Rule::Public, login_form)
        .route(Method::POST, "/logout", Rule::Public, logout)
}

/// `/login`'s query and form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    /// An API token.
    #[serde(default)]
    pub token: Option<String>,
    /// Where to go once signed in (a path of this server).
    #[serde(default)]
    pub next: Option<String>,
}

/// `/logout`'s form.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: Option<String>,
}

/// A path of this server to go to, never another site's URL.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

/// The page, with `message` above the form.
pub fn page(status: StatusCode, next: &str, message: Option<&str>, oidc: bool) -> Response {
    let message = message
        .map(|m| format!("<p class=\"errors\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    let provider = if oidc {
        format!(
            "<p><a class=\"button\" href=\"/auth/oidc/login?next={}\">Sign in with your identity provider</a></p><p>or with a token:</p>",
            escape(&form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Cairn</title>
<link rel="stylesheet" href="/assets/dashboard.css">
</head>
<body>
<header class="top"><span class="brand"><span class="logo">▲</span> Cairn</span></header>
<main class="login">
<h1>Sign in</h1>
{message}
{provider}
<form method="post" action="/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" placeholder="cairn_tok_…" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
<p class="empty">The operator's token is in the file <code>admin-token</code> of <code>cairn up</code>'s data directory; <code>cairn tokens create</code> makes more.</p>
</main>
</body>
</html>
"#,
        next = escape(next),
    );
    (status, Html(body)).into_response()
}

/// Opens a session for `token` and goes to `next`; the page again, with
/// the reason, when the token opens nothing.
fn sign_in(auth: &Auth, token: &str, next: &str) -> Response {
    let principal = match auth.principal_of_token(token.trim()) {
        Ok(p) => p,
        Err(denied) => return page(denied.status, next, Some(&denied.message), false),
    };
    let id = match &principal {
        super::Principal::Token { id, .. } => Some(id.clone()),
        _ => None,
    };
    match auth.sessions.open(principal, id) {
        Ok((session_id, _)) => (
            [(
                header::SET_COOKIE,
                session::set_cookie(&session_id, auth.secure_cookies),
            )],
            Redirect::to(next),
        )
            .into_response(),
        Err(e) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            next,
            Some(&e.to_string()),
            false,
        ),
    }
}

/// The sign-in page, or a sign-in with `?token=`.
pub(crate) async fn login_page(
    State(auth): State<Arc<Auth>>,
    Query(q): Query<LoginForm>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if auth.mode == AuthMode::Off {
        return Redirect::to(&next).into_response();
    }
    match q.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => sign_in(&auth, token, &next),
        None => page(StatusCode::OK, &next, None, auth.oidc_enabled()),
    }
}

/// The form's sign-in.
pub(crate) async fn login_form(
    State(auth): State<Arc<Auth>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    match form.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => sign_in(&auth, token, &next),
        None => page(
            StatusCode::BAD_REQUEST,
            &next,
            Some("enter a token"),
            auth.oidc_enabled(),
        ),
    }
}

/// Ends the session (its CSRF token in the form or the header).
pub(crate) async fn logout(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Some(id) = session::cookie(&headers, session::COOKIE)
        && let Some(s) = auth.sessions.get(&id)
    {
        let presented = form.csrf.as_deref().or_else(|| {
            headers
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
        });
        if !session::csrf_matches(&s, presented) {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(cairn_api::ErrorBody::new(
                    "signing out needs the session's CSRF token",
                )),
            )
                .into_response();
        }
        auth.sessions.close(&id);
    }
    (
        [(
            header::SET_COOKIE,
            session::set_cookie("", auth.secure_cookies),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/jobs?x=1")), "/jobs?x=1");
        assert_eq!(local_path(Some("//evil.example.com/")), "/");
        assert_eq!(local_path(Some("https://evil.example.com/")), "/");
        assert_eq!(local_path(Some("/\\evil.example.com")), "/");
        assert_eq!(local_path(None), "/");
    }
}
