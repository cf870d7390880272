//! `/apps`: the applications, with links to them (`/apps/NAME/`).

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, table, url_segment,
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
    let rows: Vec<String> = status
        .resources
        .iter()
        .filter(|r| r.kind == cairn_api::status::Kind::Application)
        .map(|r| {
            let name = r.name.as_str();
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
                project = r
                    .project
                    .as_ref()
                    .map(|p| format!(" <span class=\"muted\">({})</span>", escape(p)))
                    .unwrap_or_default(),
                phase = badge(r.phase.as_str()),
                commit = commit(r.synced_commit.as_deref().unwrap_or("")),
                message = escape(&r.message),
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
