//! What a browser may not do to the server: the checks in front of every
//! route, against cross-site request forgery and DNS rebinding.
//!
//! - `Host` must name this server ([`Hosts`]): a page on another name that
//!   resolves to 127.0.0.1 (DNS rebinding) gets 403, and so cannot read
//!   the answers.
//! - A state-changing request (any method but GET, HEAD and OPTIONS) that
//!   carries an `Origin` must come from this server's own origin or one the
//!   operator named (`--cors-origin`); `Origin: null` never passes.
//! - A state-changing request with a body must say it is one of the types
//!   its route reads ([`accepted_types`]): JSON for the API, CSV and JSON
//!   lines too for feedback, the form encoding for webhooks, anything for
//!   MLflow's artifact uploads (a `PUT`, which no page may send cross-site
//!   without a CORS preflight). A "simple" cross-site `text/plain` POST is
//!   refused with 415.
//!
//! Applications behind `/apps/` get the `Host` check only: what their
//! requests carry is theirs to judge. CORS answers (preflights, and the
//! `Access-Control-Allow-Origin` header) come from `tower-http` for the
//! named origins only; with none named, no cross-origin page may read
//! anything.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The names `Host` may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hosts {
    /// Any name: a server on every interface, unless names were given.
    Any,
    /// These names (lowercase, without a port).
    Only(Vec<String>),
}

impl Hosts {
    /// The default for a server listening on `listen`, plus `named`: on a
    /// loopback or a specific address, `localhost`, the loopback addresses
    /// and that address; on every interface (`0.0.0.0`, `::`), any name
    /// unless some are named.
    pub fn for_listen(listen: SocketAddr, named: &[String]) -> Hosts {
        let named: Vec<String> = named
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if listen.ip().is_unspecified() && named.is_empty() {
            return Hosts::Any;
        }
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        names.extend(named);
        names.sort();
        names.dedup();
        Hosts::Only(names)
    }

    fn allows(&self, host: &str) -> bool {
        match self {
            Hosts::Any => true,
            Hosts::Only(names) => names.iter().any(|n| n == host),
        }
    }
}

/// The checks' settings.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The names `Host` may carry.
    pub hosts: Hosts,
    /// Origins other than this server's that may make state-changing
    /// requests (and read answers, through CORS): `https://ui.example.com`.
    pub origins: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 403 or 415.
    pub status: StatusCode,
    /// What to tell the caller.
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Refusal {
        Refusal { status, message }
    }
}

/// Any media type, for a route that stores what it is sent (MLflow's
/// artifact uploads carry the type the client guesses from the file's
/// name), with the origin check kept.
pub const ANY: &[&str] = &["*/*"];

/// The media types a state-changing request to `path` may carry (`None`:
/// any, and no origin check, for applications behind the proxy; [`ANY`]:
/// any, with the origin check).
pub fn accepted_types(path: &str) -> Option<&'static [&'static str]> {
    const JSON: &[&str] = &["application/json"];
    const FEEDBACK: &[&str] = &["application/json", "text/csv", "application/x-ndjson"];
    const HOOKS: &[&str] = &["application/json", "application/x-www-form-urlencoded"];
    const FORM: &[&str] = &["application/x-www-form-urlencoded"];
    if path.starts_with("/apps/") || is_scoped_app(path) {
        None
    } else if path.starts_with("/api/2.0/mlflow-artifacts/")
        || path.starts_with("/ajax-api/2.0/mlflow-artifacts/")
    {
        Some(ANY)
    } else if path == "/hooks/git" {
        Some(HOOKS)
    } else if path == "/login" || path == "/logout" {
        Some(FORM)
    } else if path.ends_with("/feedback") {
        Some(FEEDBACK)
    } else {
        Some(JSON)
    }
}

/// `/projects/PROJECT/apps/...`.
fn is_scoped_app(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').splitn(4, '/');
    parts.next() == Some("projects") && parts.nth(1) == Some("apps")
}

/// The name in a `Host` value: lowercase, without the port or the brackets
/// of an IPv6 address.
fn host_name(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    if value.parse::<IpAddr>().is_ok() {
        return value;
    }
    match value.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => value,
    }
}

/// Checks a request's head (see the module docs).
pub fn check(
    guard: &Guard,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let path = uri.path();
    // HTTP/2 names the host in the request's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if !guard.hosts.allows(&host_name(host)) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "this server does not answer to the host name `{}`; its operator can allow it with `cairn up --allowed-host`",
                host_name(host)
            ),
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").trim_end_matches('/');
        let own = ["http", "https"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")));
        let named = guard
            .origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if !own && !named && accepted_types(path).is_some() {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request from `{origin}` refused; its operator can allow the origin with `cairn up --cors-origin`"
                ),
            ));
        }
    }
    let Some(accepted) = accepted_types(path) else {
        return Ok(());
    };
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return Ok(());
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if accepted == ANY || accepted.contains(&media.as_str()) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "`{}` bodies are not read here; send {}",
                if media.is_empty() { "untyped" } else { &media },
                accepted.join(", ")
            ),
        ))
    }
}

/// The middleware: refuses what [`check`] refuses, with a JSON error.
pub async fn layer(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match check(&guard, request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(
                "refused {} {}: {}",
                request.method(),
                request.uri().path(),
                refusal.message
            );
            (
                refusal.status,
                axum::Json(cairn_api::ErrorBody::new(refusal.message)),
            )
                .into_response()
        }
    }
}

/// The CORS answers for the named origins; `None` when none are named.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let values: Vec<header::HeaderValue> = origins
        .iter()
        .filter_map(|o| header::HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, hosts: &[&str], origins: &[&str]) -> Guard {
        let named: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        Guard {
            hosts: Hosts::for_listen(listen.parse().unwrap(), &named),
            origins: origins.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn status(g: &Guard, method: Method, path: &str, h: &[(&str, &str)]) -> u16 {
        match check(g, &method, &path.parse().unwrap(), &headers(h)) {
            Ok(()) => 200,
            Err(r) => r.status.as_u16(),
        }
    }

    #[test]
    fn host_names_are_this_servers_only() {
        let local = guard("127.0.0.1:8080", &[], &[]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
        ] {
            assert_eq!(
                status(&local, Method::GET, "/api/v1/status", &[("host", host)]),
                200,
                "{host}"
            );
        }
        assert_eq!(
            status(
                &local,
                Method::GET,
                "/api/v1/status",
                &[("host", "rebind.attacker.example:8080")]
            ),
            403
        );
        assert_eq!(status(&local, Method::GET, "/api/v1/status", &[]), 403);
        let named = guard("127.0.0.1:8080", &["cairn.internal"], &[]);
        assert_eq!(
            status(&named, Method::GET, "/", &[("host", "cairn.internal")]),
            200
        );
        // On every interface, any name, unless names are given.
        assert_eq!(
            Hosts::for_listen("0.0.0.0:80".parse().unwrap(), &[]),
            Hosts::Any
        );
        let pinned = guard("0.0.0.0:80", &["cairn.example.com"], &[]);
        assert_eq!(
            status(&pinned, Method::GET, "/", &[("host", "cairn.example.com")]),
            200
        );
        assert_eq!(
            status(&pinned, Method::GET, "/", &[("host", "10.0.0.7")]),
            403
        );
    }

    #[test]
    fn cross_site_writes_are_refused() {
        let g = guard("127.0.0.1:8080", &[], &["https://ui.example.com"]);
        let host = ("host", "127.0.0.1:8080");
        let json = ("content-type", "application/json");
        let some = ("content-length", "2");
        let run = "/api/v1/jobs/train/runs";
        // The CLI and curl: no Origin.
        assert_eq!(status(&g, Method::POST, run, &[host, json, some]), 200);
        // The dashboard: its own origin.
        assert_eq!(
            status(
                &g,
                Method::POST,
                run,
                &[host, json, some, ("origin", "http://127.0.0.1:8080")]
            ),
            200
        );
        // Another site, even with JSON; `null`; a named origin passes.
        for (origin, want) in [
            ("https://evil.example", 403),
            ("null", 403),
            ("http://127.0.0.1:9999", 403),
            ("https://ui.example.com", 200),
        ] {
            assert_eq!(
                status(
                    &g,
                    Method::POST,
                    run,
                    &[host, json, some, ("origin", origin)]
                ),
                want,
                "{origin}"
            );
        }
        // Reads are not writes.
        assert_eq!(
            status(
                &g,
                Method::GET,
                run,
                &[host, ("origin", "https://evil.example")]
            ),
            200
        );
    }

    #[test]
    fn bodies_must_be_what_the_route_reads() {
        let g = guard("127.0.0.1:8080", &[], &[]);
        let host = ("host", "127.0.0.1:8080");
        let some = ("content-length", "10");
        let typed = |t| [host, some, ("content-type", t)];
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/models/clf/predict",
                &typed("text/plain")
            ),
            415
        );
        assert_eq!(
            status(&g, Method::POST, "/models/clf/predict", &[host, some]),
            415
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/models/clf/predict",
                &typed("application/json; charset=utf-8")
            ),
            200
        );
        assert_eq!(
            status(&g, Method::POST, "/models/clf/feedback", &typed("text/csv")),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/projects/p/models/clf/feedback",
                &typed("application/x-ndjson")
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/hooks/git",
                &typed("application/x-www-form-urlencoded")
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/api/v1/models/clf/keys",
                &typed("text/plain")
            ),
            415
        );
        // MLflow's artifact uploads carry the type guessed from the file name.
        assert_eq!(
            status(
                &g,
                Method::PUT,
                "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/a.png",
                &typed("image/png")
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/api/2.0/mlflow/runs/log-batch",
                &typed("text/plain")
            ),
            415
        );
        // No body, no type needed; applications judge their own requests.
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/api/v1/models/clf/drift/evaluate",
                &[host]
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/apps/shiny/upload",
                &typed("multipart/form-data")
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::POST,
                "/projects/p/apps/a/x",
                &[host, some, ("origin", "https://x.example")]
            ),
            200
        );
    }
}
