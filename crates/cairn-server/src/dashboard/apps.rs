//! `/apps`: the applications, with links to them (`/apps/NAME/`).

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, s, table, url_segment,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(super) async fn list(State(state): State<DashboardState>) -> Response {
    let status = match tokio::task::block_in_place(|| crate::dashboard::overview::status(&state)) {
        Ok(s) => s,
        Err(e) => return error_page(Section::Apps, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let runtime = state.app.controller.runtime();
    let rows: Vec<String> = status["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| s(r, "kind") == "Application")
        .map(|r| {
            let name = s(r, "name");
            let href = format!("/apps/{}/", url_segment(name));
            let up = runtime.app_upstream(name).is_some();
            let open = if up {
                format!("<a class=\"button\" href=\"{}\">Open</a>", escape(&href))
            } else {
                "<span class=\"muted\">no ready replica</span>".into()
            };
            format!(
                "<tr data-app=\"{name_attr}\"><td><a href=\"{href}\"><strong>{name}</strong></a>{project}</td><td>{phase}</td><td>{commit}</td><td class=\"message\">{message}</td><td>{open}</td></tr>",
                name_attr = escape(name),
                href = escape(&href),
                name = escape(name),
                project = r["project"]
                    .as_str()
                    .map(|p| format!(" <span class=\"muted\">({})</span>", escape(p)))
                    .unwrap_or_default(),
                phase = badge(s(r, "phase")),
                commit = commit(r["syncedCommit"].as_str().unwrap_or("")),
                message = escape(s(r, "message")),
            )
        })
        .collect();
    let body = format!(
        "<h1>Applications</h1>{}",
        table(
            "apps",
            &["Application", "Phase", "Synced commit", "Message", ""],
            &rows,
            "No applications are declared.",
        )
    );
    layout(Section::Apps, "Applications", &body).into_response()
}
