//! `/apps`: the applications, with links to them (`/apps/NAME/`, or
//! `/projects/PROJECT/apps/NAME/` for a name several projects use).

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, of_kind, scoped_href,
    shared_names, table,
};
use crate::auth::Caller;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_api::status::Kind;
use cairn_spec::ResourceKey;

pub(super) async fn list(State(state): State<DashboardState>, caller: Caller) -> Response {
    let status =
        match tokio::task::block_in_place(|| crate::dashboard::overview::status(&state, &caller)) {
            Ok(s) => s,
            Err(e) => return error_page(Section::Apps, StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
    let runtime = state.app.controller.runtime();
    let shared = shared_names(of_kind(&status.resources, Kind::Application));
    let rows: Vec<String> = status
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Application)
        .map(|r| {
            let name = r.name.as_str();
            let project = r.project.as_deref();
            let href = format!(
                "{}/",
                scoped_href("apps", project, name, shared.contains(name))
            );
            let key = ResourceKey::from_id(&format!(
                "Application/{}/{name}",
                project.unwrap_or_default()
            ));
            let up = key.is_some_and(|k| runtime.app_upstream(&k).is_some());
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
