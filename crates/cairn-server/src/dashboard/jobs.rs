//! `/jobs`: recent runs; `/jobs/NAME/runs/N`: one run and its log.

use super::{
    DashboardState, Section, badge, commit, duration, error_page, escape, layout, table, time,
    url_segment,
};
use crate::auth::Caller;
use crate::contract::ToApi;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_api::runs::{Artifact, Run};
use cairn_api::status::ResourceStatus;
use cairn_runtime::{LogTarget, Runtime};
use cairn_spec::ResourceKey;
use cairn_spec::{Kind, Name};
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};

/// The most of a log a page shows (its end).
const LOG_TAIL: u64 = 256 * 1024;

#[derive(Deserialize, Default)]
pub(super) struct ProjectQuery {
    project: Option<String>,
}

fn run_link(run: &Run) -> String {
    let mut href = format!("/jobs/{}/runs/{}", url_segment(&run.job_name), run.number);
    if let Some(p) = &run.project {
        href.push_str(&format!("?project={}", url_segment(p)));
    }
    href
}

fn run_duration(run: &Run) -> String {
    let Some(started) = &run.started_at else {
        return "<span class=\"muted\">—</span>".into();
    };
    let end = run.finished_at.clone().unwrap_or_else(cairn_store::now);
    duration(started, &end).map_or_else(|| "—".into(), |d| escape(&d))
}

pub(super) async fn list(State(state): State<DashboardState>, caller: Caller) -> Response {
    let store = state.app.controller.store().clone();
    let runs: Vec<Run> = match tokio::task::block_in_place(|| store.recent_runs(100)) {
        Ok(r) => r
            .to_api()
            .into_iter()
            .filter(|r: &Run| caller.sees(r.project.as_deref()))
            .collect(),
        Err(e) => {
            return error_page(
                Section::Jobs,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            );
        }
    };
    let jobs: Vec<ResourceStatus> =
        match tokio::task::block_in_place(|| crate::dashboard::overview::status(&state, &caller)) {
            Ok(st) => st
                .resources
                .into_iter()
                .filter(|r| r.kind == cairn_api::status::Kind::Job)
                .collect(),
            Err(_) => Vec::new(),
        };
    let job_rows: Vec<String> = jobs
        .iter()
        .map(|j| {
            let name = j.name.as_str();
            format!(
                "<tr id=\"job-{anchor}\"><td><strong>{name}</strong>{project}</td><td>{phase}</td><td>{commit}</td><td class=\"message\">{message}</td></tr>",
                anchor = escape(&url_segment(name)),
                name = escape(name),
                project = j
                    .project
                    .as_ref()
                    .map(|p| format!(" <span class=\"muted\">({})</span>", escape(p)))
                    .unwrap_or_default(),
                phase = badge(j.phase.as_str()),
                commit = commit(j.synced_commit.as_deref().unwrap_or("")),
                message = escape(&j.message),
            )
        })
        .collect();
    let run_rows: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "<tr><td><a href=\"{href}\">{job} #{number}</a></td><td>{state}</td><td>{trigger}</td><td>{commit}</td><td>{created}</td><td class=\"num\">{duration}</td><td class=\"num\">{exit}</td><td class=\"message\">{message}</td></tr>",
                href = escape(&run_link(r)),
                job = escape(&r.job_name),
                number = r.number,
                state = badge(r.state.as_str()),
                trigger = escape(&r.trigger),
                commit = commit(&r.commit),
                created = time(&r.created_at),
                duration = run_duration(r),
                exit = r
                    .exit_code
                    .map_or_else(|| "<span class=\"muted\">—</span>".into(), |c| c.to_string()),
                message = escape(&r.message),
            )
        })
        .collect();
    let body = format!(
        "<h1>Jobs</h1>{}<h2>Recent runs</h2>{}",
        table(
            "jobs",
            &["Job", "Phase", "Synced commit", "Message"],
            &job_rows,
            "No jobs are declared.",
        ),
        table(
            "runs",
            &[
                "Run", "State", "Trigger", "Commit", "Created", "Duration", "Exit", "Message"
            ],
            &run_rows,
            "No runs yet.",
        ),
    );
    layout(Section::Jobs, "Jobs", &body).into_response()
}

/// The applied job called `name` (in `project` when given).
fn find_job(
    state: &DashboardState,
    name: &str,
    project: Option<&str>,
) -> Result<ResourceKey, (StatusCode, String)> {
    let applied = state
        .app
        .controller
        .store()
        .applied()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let jobs: Vec<ResourceKey> = applied
        .into_iter()
        .map(|a| a.key)
        .filter(|k| k.kind == Kind::Job && k.name.as_str() == name)
        .filter(|k| project.is_none_or(|p| k.project.as_ref().map(Name::as_str) == Some(p)))
        .collect();
    match jobs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err((StatusCode::NOT_FOUND, format!("no job `{name}` is applied"))),
        _ => Err((
            StatusCode::CONFLICT,
            format!("`{name}` is a job of several projects; add ?project="),
        )),
    }
}

/// The end of a log file, and whether it was cut.
fn read_tail(path: &std::path::Path) -> std::io::Result<(String, bool)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let cut = len > LOG_TAIL;
    if cut {
        f.seek(SeekFrom::Start(len - LOG_TAIL))?;
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok((String::from_utf8_lossy(&buf).into_owned(), cut))
}

pub(super) async fn run(
    State(state): State<DashboardState>,
    Path((name, number)): Path<(String, i64)>,
    Query(q): Query<ProjectQuery>,
) -> Response {
    let found = tokio::task::block_in_place(|| {
        let key = find_job(&state, &name, q.project.as_deref())?;
        let store = state.app.controller.store();
        let run = store
            .run(&key, number)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("{key} has no run #{number}")))?;
        let artifacts = store.artifacts(run.id).unwrap_or_default();
        let tracked = super::experiments::tracked_run_link(store, run.id);
        let log = state
            .app
            .controller
            .runtime()
            .logs(&LogTarget::Run(key.clone(), number))
            .ok()
            .and_then(|l| read_tail(&l.path).ok());
        let (run, artifacts): (Run, Vec<Artifact>) = (run.to_api(), artifacts.to_api());
        Ok((run, artifacts, log, tracked))
    });
    let (run, artifacts, log, tracked) = match found {
        Ok(f) => f,
        Err((status, message)) => return error_page(Section::Jobs, status, &message),
    };
    let title = format!("{name} #{number}");
    let params = if run.params.is_empty() {
        String::new()
    } else {
        format!(
            "<dt>Parameters</dt><dd><code>{}</code></dd>",
            escape(&serde_json::Value::Object(run.params.clone()).to_string())
        )
    };
    let facts = format!(
        r#"<dl class="facts" id="run-facts" data-live>
<dt>State</dt><dd>{state}</dd>
<dt>Trigger</dt><dd>{trigger}</dd>
<dt>Commit</dt><dd>{commit}</dd>
<dt>Attempt</dt><dd>{attempt}</dd>
<dt>Created</dt><dd>{created}</dd>
<dt>Started</dt><dd>{started}</dd>
<dt>Finished</dt><dd>{finished}</dd>
<dt>Duration</dt><dd>{duration}</dd>
<dt>Exit code</dt><dd>{exit}</dd>
<dt>Message</dt><dd>{message}</dd>
{tracked}{params}</dl>"#,
        state = badge(run.state.as_str()),
        trigger = escape(&run.trigger),
        commit = commit(&run.commit),
        attempt = run.attempt,
        created = time(&run.created_at),
        started = time(run.started_at.as_deref().unwrap_or("")),
        finished = time(run.finished_at.as_deref().unwrap_or("")),
        duration = run_duration(&run),
        exit = run.exit_code.map_or_else(|| "—".into(), |c| c.to_string()),
        message = escape(&run.message),
        tracked = tracked.map_or_else(String::new, |link| format!(
            "<dt>Tracked run</dt><dd>{link}</dd>\n"
        )),
    );
    let artifact_rows: Vec<String> = artifacts
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td><code class=\"hash\">{}</code></td></tr>",
                escape(&a.output),
                a.size,
                escape(&a.sha256),
            )
        })
        .collect();
    let artifacts_section = if artifact_rows.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Artifacts</h2>{}",
            table(
                "artifacts",
                &["Output", "Bytes", "SHA-256"],
                &artifact_rows,
                ""
            )
        )
    };
    let log_html = match log {
        Some((text, cut)) => format!(
            "{}<pre class=\"log\" id=\"log\" data-live data-follow>{}</pre>",
            if cut {
                "<p class=\"muted small\">Showing the end of the log.</p>"
            } else {
                ""
            },
            escape(&text)
        ),
        None => "<p class=\"empty\" id=\"log\" data-live>No log.</p>".into(),
    };
    let mut raw = format!("/api/v1/jobs/{}/runs/{number}/logs", url_segment(&name));
    if let Some(p) = &q.project {
        raw.push_str(&format!("?project={}", url_segment(p)));
    }
    let body = format!(
        "<p class=\"crumbs\"><a href=\"/jobs\">Jobs</a> / {name}</p><h1>{title}</h1>{facts}{artifacts_section}<h2>Log <a class=\"small\" href=\"{raw}\">raw</a></h2>{log_html}",
        name = escape(&name),
        title = escape(&title),
        raw = escape(&raw),
    );
    layout(Section::Jobs, &title, &body).into_response()
}
