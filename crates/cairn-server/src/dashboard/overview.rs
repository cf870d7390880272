//! `/`: the repository, the last sync, and every resource with its phase.

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, of_kind, s, scoped_href,
    shared_names, table, time,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What `/api/v1/status` reports, as JSON.
pub(super) fn status(state: &DashboardState) -> Result<Value, String> {
    let controller = &state.app.controller;
    let store = controller.store();
    let statuses = store.statuses().map_err(|e| e.to_string())?;
    let last_sync = store.last_sync().map_err(|e| e.to_string())?;
    let (origin, diagnostics) = controller.with_latest(|l| {
        (
            serde_json::to_value(&l.origin).unwrap_or(Value::Null),
            cairn_spec::diagnostics::to_json(&l.report)["diagnostics"].clone(),
        )
    });
    let repository = controller
        .source()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .display()
        .to_string();
    Ok(json!({
        "repository": repository,
        "revision": controller.settings().rev,
        "origin": origin,
        "lastSync": last_sync,
        "diagnostics": diagnostics,
        "resources": statuses,
    }))
}

/// Where a resource's page is, if it has one; `shared`: whether several
/// projects use its name.
fn resource_link(kind: &str, project: Option<&str>, name: &str, shared: bool) -> Option<String> {
    match kind {
        "Model" => Some(scoped_href("models", project, name, shared)),
        "Application" => Some(format!("{}/", scoped_href("apps", project, name, shared))),
        "Job" => Some(format!("/jobs#job-{}", crate::dashboard::url_segment(name))),
        _ => None,
    }
}

pub(super) async fn page(State(state): State<DashboardState>) -> Response {
    let status = match tokio::task::block_in_place(|| status(&state)) {
        Ok(s) => s,
        Err(e) => return error_page(Section::Overview, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    let diagnostics = status["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sync = &status["lastSync"];

    // Summary cards.
    let count =
        |pred: &dyn Fn(&str) -> bool| resources.iter().filter(|r| pred(s(r, "phase"))).count();
    let ready = count(&|p| matches!(p, "Ready" | "Succeeded" | "Idle"));
    let failing = count(&|p| matches!(p, "Failed" | "Invalid"));
    let busy = count(&|p| matches!(p, "Progressing" | "Running"));
    let errors = diagnostics
        .iter()
        .filter(|d| s(d, "severity") == "error")
        .count();
    let origin = &status["origin"];
    let commit_line = match s(origin, "type") {
        "commit" => format!(
            "{} {} <span class=\"muted\">by {}, {}</span>",
            commit(s(origin, "id")),
            escape(s(origin, "summary")),
            escape(s(origin, "author")),
            time(s(origin, "time")),
        ),
        "" => "<span class=\"muted\">nothing loaded yet</span>".into(),
        other => format!("<span class=\"muted\">{}</span>", escape(other)),
    };
    let synced = if sync.is_null() {
        "<span class=\"muted\">not yet</span>".to_string()
    } else {
        format!(
            "{} at {} <span class=\"muted\">({} ms)</span>",
            commit(s(sync, "commit")),
            time(s(sync, "finishedAt")),
            sync["durationMs"].as_i64().unwrap_or(0)
        )
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
        repo = escape(s(&status, "repository")),
        rev = escape(s(&status, "revision")),
    );

    let shared_models = shared_names(of_kind(&resources, "Model"));
    let shared_apps = shared_names(of_kind(&resources, "Application"));
    let rows: Vec<String> = resources
        .iter()
        .map(|r| {
            let kind = s(r, "kind");
            let name = s(r, "name");
            let label = match r["project"].as_str() {
                Some(p) => format!("<span class=\"muted\">{}/</span>{}", escape(p), escape(name)),
                None => escape(name),
            };
            let shared = match kind {
                "Model" => shared_models.contains(name),
                _ => shared_apps.contains(name),
            };
            let name_cell = match resource_link(kind, r["project"].as_str(), name, shared) {
                Some(href) => format!("<a href=\"{}\">{label}</a>", escape(&href)),
                None => label,
            };
            let file = match r["file"].as_str() {
                Some(f) => format!("<div class=\"muted small\">{}</div>", escape(f)),
                None => String::new(),
            };
            format!(
                "<tr data-kind=\"{kind}\" data-name=\"{name_attr}\"><td>{kind}</td><td>{name_cell}{file}</td><td>{phase}</td><td>{commit}</td><td class=\"message\">{message}</td><td>{since}</td></tr>",
                kind = escape(kind),
                name_attr = escape(name),
                phase = badge(s(r, "phase")),
                commit = commit(r["syncedCommit"].as_str().unwrap_or("")),
                message = escape(s(r, "message")),
                since = time(s(r, "lastTransition")),
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
            let mut at = s(d, "file").to_string();
            if let Some(line) = d["line"].as_u64() {
                at.push_str(&format!(":{line}"));
                if let Some(col) = d["column"].as_u64() {
                    at.push_str(&format!(":{col}"));
                }
            }
            let hint = match d["hint"].as_str() {
                Some(h) => format!("<div class=\"muted small\">hint: {}</div>", escape(h)),
                None => String::new(),
            };
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"message\">{}{hint}</td></tr>",
                badge(s(d, "severity")),
                escape(s(d, "code")),
                escape(&at),
                escape(s(d, "message")),
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
