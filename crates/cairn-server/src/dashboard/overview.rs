//! `/`: the repository, the last sync, and every resource with its phase.

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, of_kind, scoped_href,
    shared_names, table, time,
};
use crate::auth::Caller;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_api::status::{Kind, Origin, Phase, Severity, Status};

/// What `/api/v1/status` reports to `caller`.
pub(super) fn status(state: &DashboardState, caller: &Caller) -> Result<Status, String> {
    let mut status = crate::api::status_of(&state.app.controller).map_err(|e| e.to_string())?;
    crate::api::visible_resources(&mut status, caller);
    Ok(status)
}

/// Where a resource's page is, if it has one; `shared`: whether several
/// projects use its name.
fn resource_link(kind: Kind, project: Option<&str>, name: &str, shared: bool) -> Option<String> {
    match kind {
        Kind::Model => Some(scoped_href("models", project, name, shared)),
        Kind::Application => Some(format!("{}/", scoped_href("apps", project, name, shared))),
        Kind::Job => Some(format!("/jobs#job-{}", crate::dashboard::url_segment(name))),
        _ => None,
    }
}

pub(super) async fn page(State(state): State<DashboardState>, caller: Caller) -> Response {
    let status = match tokio::task::block_in_place(|| status(&state, &caller)) {
        Ok(s) => s,
        Err(e) => return error_page(Section::Overview, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let resources = &status.resources;
    let diagnostics = &status.diagnostics;

    // Summary cards.
    let count = |pred: &dyn Fn(Phase) -> bool| resources.iter().filter(|r| pred(r.phase)).count();
    let ready = count(&|p| matches!(p, Phase::Ready | Phase::Succeeded | Phase::Idle));
    let failing = count(&|p| matches!(p, Phase::Failed | Phase::Invalid));
    let busy = count(&|p| matches!(p, Phase::Progressing | Phase::Running));
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let commit_line = match &status.origin {
        Some(Origin::Commit {
            id,
            author,
            time: at,
            summary,
            ..
        }) => format!(
            "{} {} <span class=\"muted\">by {}, {}</span>",
            commit(id),
            escape(summary),
            escape(author),
            time(at),
        ),
        None => "<span class=\"muted\">nothing loaded yet</span>".into(),
        Some(Origin::Index) => "<span class=\"muted\">index</span>".into(),
        Some(Origin::Worktree) => "<span class=\"muted\">worktree</span>".into(),
    };
    let synced = match &status.last_sync {
        None => "<span class=\"muted\">not yet</span>".to_string(),
        Some(sync) => format!(
            "{} at {} <span class=\"muted\">({} ms)</span>",
            commit(&sync.commit),
            time(&sync.finished_at),
            sync.duration_ms
        ),
    };
    let cards = format!(
        r#"<div class="cards" id="cards" data-live>
<div class="card"><div class="label">Resources</div><div class="value">{total}</div></div>
<div class="card"><div class="label">Healthy</div><div class="value ok">{ready}</div></div>
<div class="card"><div class="label">In progress</div><div class="value {busy_class}">{busy}</div></div>
<div class="card"><div class="label">Failing</div><div class="value {fail_class}">{failing}</div></div>
<div class="card"><div class="label">Spec errors</div><div class="value {err_class}">{errors}</div></div>
</div>"#,
        total = resources.len(),
        busy_class = if busy > 0 { "busy" } else { "" },
        fail_class = if failing > 0 { "bad" } else { "" },
        err_class = if errors > 0 { "bad" } else { "" },
    );
    let repo = format!(
        r#"<dl class="facts" id="repo" data-live>
<dt>Repository</dt><dd><code>{repo}</code></dd>
<dt>Revision</dt><dd><code>{rev}</code></dd>
<dt>Loaded</dt><dd>{commit_line}</dd>
<dt>Last sync</dt><dd>{synced}</dd>
</dl>"#,
        repo = escape(&status.repository),
        rev = escape(&status.revision),
    );

    let shared_models = shared_names(of_kind(resources, Kind::Model));
    let shared_apps = shared_names(of_kind(resources, Kind::Application));
    let rows: Vec<String> = resources
        .iter()
        .map(|r| {
            let name = r.name.as_str();
            let label = match &r.project {
                Some(p) => format!("<span class=\"muted\">{}/</span>{}", escape(p), escape(name)),
                None => escape(name),
            };
            let shared = match r.kind {
                Kind::Model => shared_models.contains(name),
                _ => shared_apps.contains(name),
            };
            let name_cell = match resource_link(r.kind, r.project.as_deref(), name, shared) {
                Some(href) => format!("<a href=\"{}\">{label}</a>", escape(&href)),
                None => label,
            };
            let file = match &r.file {
                Some(f) => format!("<div class=\"muted small\">{}</div>", escape(f)),
                None => String::new(),
            };
            format!(
                "<tr data-kind=\"{kind}\" data-name=\"{name_attr}\"><td>{kind}</td><td>{name_cell}{file}</td><td>{phase}</td><td>{commit}</td><td class=\"message\">{message}</td><td>{since}</td></tr>",
                kind = escape(r.kind.as_str()),
                name_attr = escape(name),
                phase = badge(r.phase.as_str()),
                commit = commit(r.synced_commit.as_deref().unwrap_or("")),
                message = escape(&r.message),
                since = time(&r.last_transition),
            )
        })
        .collect();
    let resources_table = table(
        "resources",
        &["Kind", "Name", "Phase", "Synced commit", "Message", "Since"],
        &rows,
        "No resources yet: commit specs to the repository.",
    );

    let diag_rows: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            let mut at = d.file.clone().unwrap_or_default();
            if let Some(line) = d.line {
                at.push_str(&format!(":{line}"));
                if let Some(col) = d.column {
                    at.push_str(&format!(":{col}"));
                }
            }
            let hint = match &d.hint {
                Some(h) => format!("<div class=\"muted small\">hint: {}</div>", escape(h)),
                None => String::new(),
            };
            let severity = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"message\">{}{hint}</td></tr>",
                badge(severity),
                escape(&d.code),
                escape(&at),
                escape(&d.message),
            )
        })
        .collect();
    let diagnostics_section = if diag_rows.is_empty() {
        "<div id=\"problems\" data-live></div>".to_string()
    } else {
        format!(
            "<div id=\"problems\" data-live><h2>Spec problems</h2>{}</div>",
            table(
                "diagnostics",
                &["Severity", "Code", "Where", "Message"],
                &diag_rows,
                ""
            )
        )
    };

    let body = format!(
        "<h1>Overview</h1>{repo}{cards}{diagnostics_section}<h2>Resources</h2>{resources_table}"
    );
    layout(Section::Overview, "Overview", &body).into_response()
}
