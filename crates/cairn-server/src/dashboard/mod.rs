//! The web dashboard of `cairn up`: server-rendered HTML pages at `/`,
//! `/jobs`, `/experiments`, `/models` and `/apps`, with the assets they
//! need (a stylesheet, a small script and the uPlot chart library) bundled
//! into the binary.
//!
//! Pages are rendered from the same data as the JSON API, through the
//! types of its contract ([`cairn_api`]). Every five
//! seconds the script fetches the page again and swaps the regions marked
//! `data-live` in place; charts draw from `/api/v1/models/NAME/metrics` and
//! `/api/v1/models/NAME/metrics/aggregate` (in the model's project,
//! `/api/v1/projects/PROJECT/models/NAME/...`), and an experiment's from
//! `/api/v1/experiments/runs/RUN/metrics/KEY`.
//!
//! Links to models and applications take the bare route while one project
//! uses the name, and the project's route when several do.

mod apps;
mod experiments;
mod jobs;
mod models;
mod overview;

use crate::api::AppState;
use crate::auth::Role;
use crate::auth::rules::{Listener, Named, Routes, Rule, Table};
use crate::gateway::GatewayState;
use axum::extract::Path;
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct DashboardState {
    /// The controller's side (status, runs, logs).
    pub app: AppState,
    /// The gateway's side (models, versions, metrics).
    pub gateway: GatewayState,
}

/// The dashboard's routes, with what each needs of its caller (lists
/// show what the caller may see).
pub fn routes(app: AppState, gateway: GatewayState, listener: Listener) -> Table {
    use Named::{Job, Model};
    Routes::new()
        .route(Method::GET, "/", Rule::Signed, overview::page)
        .route(Method::GET, "/jobs", Rule::Signed, jobs::list)
        .route(
            Method::GET,
            "/jobs/{name}/runs/{number}",
            Rule::Project(Job, Role::Viewer),
            jobs::run,
        )
        .route(Method::GET, "/experiments", Rule::Signed, experiments::list)
        .route(
            Method::GET,
            "/experiments/{id}",
            Rule::Found(Role::Viewer),
            experiments::detail,
        )
        .route(Method::GET, "/models", Rule::Signed, models::list)
        .scoped(
            Method::GET,
            ("", "models", ""),
            Rule::Project(Model, Role::Viewer),
            models::detail,
        )
        .route(Method::GET, "/apps", Rule::Signed, apps::list)
        .route(Method::GET, "/assets/{file}", Rule::Public, asset)
        .finish(DashboardState { app, gateway }, listener)
}

/// Bundled assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/dashboard.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/uPlot.LICENSE"),
    ),
];

/// A short fingerprint of the assets, appended to their URLs so that a new
/// binary's assets are fetched despite the long cache lifetime.
fn asset_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (_, _, bytes) in ASSETS {
            h.update(bytes);
        }
        hex::encode(&h.finalize()[..6])
    })
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

// ------------------------------------------------------------ rendering --

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a URL inside an attribute.
/// The route of a project-scoped resource under `/{kind}/`: bare when
/// `shared` is false (no other project uses the name), else in its
/// project, `/projects/PROJECT/{kind}/NAME`.
fn scoped_href(kind: &str, project: Option<&str>, name: &str, shared: bool) -> String {
    match project.filter(|_| shared) {
        Some(p) => format!("/projects/{}/{kind}/{}", url_segment(p), url_segment(name)),
        None => format!("/{kind}/{}", url_segment(name)),
    }
}

/// The names that several projects use, among (project, name) pairs.
fn shared_names<'a>(
    resources: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashMap::<&str, std::collections::HashSet<&str>>::new();
    for (project, name) in resources {
        seen.entry(name).or_default().insert(project);
    }
    seen.into_iter()
        .filter(|(_, projects)| projects.len() > 1)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The (project, name) of the resources of `kind` in a status report.
fn of_kind(
    resources: &[cairn_api::status::ResourceStatus],
    kind: cairn_api::status::Kind,
) -> impl Iterator<Item = (&str, &str)> {
    resources
        .iter()
        .filter(move |r| r.kind == kind)
        .map(|r| (r.project.as_deref().unwrap_or_default(), r.name.as_str()))
}

fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The nav sections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Overview,
    Jobs,
    Experiments,
    Models,
    Apps,
}

/// A whole page: the head, the top nav and `body`.
fn layout(section: Section, title: &str, body: &str) -> Html<String> {
    let v = asset_version();
    let nav = [
        (Section::Overview, "/", "Overview"),
        (Section::Jobs, "/jobs", "Jobs"),
        (Section::Experiments, "/experiments", "Experiments"),
        (Section::Models, "/models", "Models"),
        (Section::Apps, "/apps", "Applications"),
    ]
    .iter()
    .map(|(s, href, label)| {
        let current = if *s == section {
            " aria-current=\"page\" class=\"current\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    })
    .collect::<String>();
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Cairn</title>
<link rel="stylesheet" href="/assets/uPlot.min.css?v={v}">
<link rel="stylesheet" href="/assets/dashboard.css?v={v}">
<script src="/assets/dashboard.js?v={v}"></script>
<script src="/assets/uPlot.iife.min.js?v={v}" defer></script>
</head>
<body>
<header class="top">
<a class="brand" href="/"><span class="logo">▲</span> Cairn</a>
<nav>{nav}</nav>
<span class="live" id="live" title="The page refreshes every 5 seconds">live</span>
<span class="who" id="who"></span>
</header>
<div id="errors" class="errors"></div>
<main>
{body}
</main>
<footer>cairn {version} · <a href="/api/v1/status">API</a> · <a href="/metrics">metrics</a></footer>
</body>
</html>
"#,
        title = escape(title),
        version = env!("CARGO_PKG_VERSION"),
    ))
}

/// An error page (the dashboard's own failures, such as a store error).
fn error_page(section: Section, status: StatusCode, message: &str) -> Response {
    (
        status,
        layout(
            section,
            "Error",
            &format!(
                "<h1>{}</h1><p class=\"empty\">{}</p>",
                status.canonical_reason().unwrap_or("Error"),
                escape(message)
            ),
        ),
    )
        .into_response()
}

/// A colored badge for a phase or a run state.
fn badge(text: &str) -> String {
    let class = match text.to_ascii_lowercase().as_str() {
        "ready" | "succeeded" => "ok",
        "failed" | "invalid" | "error" => "bad",
        "progressing" | "running" | "pending" => "busy",
        _ => "idle",
    };
    format!(
        "<span class=\"badge {class}\">{}</span>",
        escape(if text.is_empty() { "—" } else { text })
    )
}

/// A commit id, shortened, with the full id as a tooltip.
fn commit(id: &str) -> String {
    if id.is_empty() {
        return "<span class=\"muted\">—</span>".into();
    }
    let short: String = id.chars().take(10).collect();
    format!(
        "<code class=\"commit\" title=\"{}\">{}</code>",
        escape(id),
        escape(&short)
    )
}

/// An RFC 3339 time, shown in the viewer's time zone by the script (UTC
/// until then).
fn time(t: &str) -> String {
    if t.is_empty() {
        return "<span class=\"muted\">—</span>".into();
    }
    let shown = chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string());
    format!("<time datetime=\"{}\">{}</time>", escape(t), escape(&shown))
}

/// The seconds between two RFC 3339 times, as `1m 5s`.
fn duration(from: &str, to: &str) -> Option<String> {
    let a = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    let ms = (b - a).num_milliseconds().max(0);
    Some(if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    })
}

/// A number for a table cell: to 4 digits (integers as they are), `—`
/// when there is none.
fn number(v: Option<f64>) -> String {
    match v {
        Some(f) if f.abs() >= 1000.0 => format!("{f:.1}"),
        Some(f) => format!("{f:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

/// A table with a header row; `rows` are already rendered `<tr>`s. An
/// empty table shows `empty` instead.
fn table(id: &str, headers: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<div id=\"{id}\" data-live><p class=\"empty\">{empty}</p></div>");
    }
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", escape(h)))
        .collect();
    format!(
        "<div id=\"{id}\" data-live class=\"table-wrap\"><table><thead><tr>{head}</tr></thead><tbody>{}</tbody></table></div>",
        rows.concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_segment("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn links_name_the_project_of_a_shared_name() {
        use cairn_api::status::{Kind, Phase, ResourceStatus};
        let resource = |kind, project: &str, name: &str| ResourceStatus {
            kind,
            project: Some(project.to_string()),
            name: name.to_string(),
            phase: Phase::Ready,
            message: String::new(),
            synced_commit: None,
            file: None,
            last_transition: String::new(),
        };
        let resources = [
            resource(Kind::Model, "alpha", "clf"),
            resource(Kind::Model, "beta", "clf"),
            resource(Kind::Model, "alpha", "solo"),
            resource(Kind::Application, "beta", "solo"),
        ];
        let shared = shared_names(of_kind(&resources, Kind::Model));
        assert_eq!(shared.into_iter().collect::<Vec<_>>(), ["clf"]);
        assert_eq!(
            scoped_href("models", Some("beta"), "clf", true),
            "/projects/beta/models/clf"
        );
        assert_eq!(
            scoped_href("models", Some("alpha"), "solo", false),
            "/models/solo"
        );
    }

    #[test]
    fn formats_cells() {
        assert_eq!(number(Some(3.0)), "3");
        assert_eq!(number(Some(0.5)), "0.5");
        assert_eq!(number(Some(5.0 / 9.0)), "0.5556");
        assert!(number(None).contains("muted"));
        assert_eq!(
            duration("2024-01-01T00:00:00Z", "2024-01-01T00:01:05Z").as_deref(),
            Some("1m 5s")
        );
        assert!(badge("Ready").contains("ok"));
        assert!(badge("<x>").contains("&lt;x&gt;"));
    }

    #[test]
    fn every_asset_is_served() {
        for (name, _, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name}");
        }
        assert_eq!(asset_version().len(), 12);
    }
}
