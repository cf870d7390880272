//! `/models`: every model with its serving version; `/models/NAME` (or, in
//! its project, `/projects/PROJECT/models/NAME`): its versions, traffic and
//! latency charts, accuracy over time and business metrics.

use super::{
    DashboardState, Section, badge, commit, error_page, escape, layout, number, scoped_href,
    shared_names, table, time,
};
use crate::auth::Caller;
use crate::contract::ToApi;
use crate::names::NamePath;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_api::monitoring::{AggregateReport, Task, Window};
use cairn_api::registry::ServedModel;
use cairn_api::status::{Kind, Phase};
use cairn_gateway::service::Endpoint;

/// A row of the models page: a served model, a declared one, or both.
struct ModelRow {
    /// The model.
    name: String,
    /// Its project.
    project: Option<String>,
    /// What the gateway serves, when it does.
    served: Option<ServedModel>,
    /// Its phase, when declared.
    phase: Option<Phase>,
    /// Its status message, when declared.
    message: String,
}

/// Every model: declared (with its phase) and served (with its version).
fn models(state: &DashboardState, caller: &Caller) -> Vec<ModelRow> {
    let mut out: Vec<ModelRow> = state
        .gateway
        .gateway
        .endpoints()
        .iter()
        .filter(|e| caller.sees(e.key.project.as_ref().map(|p| p.as_str())))
        .map(|e| {
            let served = e.to_api();
            ModelRow {
                name: served.name.clone(),
                project: served.project.clone(),
                served: Some(served),
                phase: None,
                message: String::new(),
            }
        })
        .collect();
    if let Ok(status) = crate::dashboard::overview::status(state, caller) {
        for r in status
            .resources
            .into_iter()
            .filter(|r| r.kind == Kind::Model)
        {
            match out
                .iter_mut()
                .find(|m| m.name == r.name && m.project == r.project)
            {
                Some(m) => {
                    m.phase = Some(r.phase);
                    m.message = r.message;
                }
                None => out.push(ModelRow {
                    name: r.name,
                    project: r.project,
                    served: None,
                    phase: Some(r.phase),
                    message: r.message,
                }),
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.project).cmp(&(&b.name, &b.project)));
    out
}

fn dash() -> String {
    "<span class=\"muted\">—</span>".into()
}

pub(super) async fn list(State(state): State<DashboardState>, caller: Caller) -> Response {
    let models = tokio::task::block_in_place(|| models(&state, &caller));
    let shared = shared_names(
        models
            .iter()
            .map(|m| (m.project.as_deref().unwrap_or_default(), m.name.as_str())),
    );
    let rows: Vec<String> = models
        .iter()
        .map(|m| {
            let name = m.name.as_str();
            let link = if m.served.is_some() {
                let href = scoped_href(
                    "models",
                    m.project.as_deref(),
                    name,
                    shared.contains(name),
                );
                format!(
                    "<a href=\"{}\"><strong>{}</strong></a>",
                    escape(&href),
                    escape(name)
                )
            } else {
                format!("<strong>{}</strong>", escape(name))
            };
            let served = m.served.as_ref();
            let sha = served.map_or("", |s| s.sha256.as_str());
            format!(
                "<tr data-model=\"{name_attr}\"><td>{link}{project}</td><td>{phase}</td><td>{runtime}</td><td class=\"num\">{version}</td><td>{commit}</td><td><code class=\"hash\" title=\"{sha_full}\">{sha}</code></td><td class=\"num\">{replicas}</td><td>{auth}</td><td class=\"message\">{message}</td></tr>",
                name_attr = escape(name),
                project = m
                    .project
                    .as_ref()
                    .map(|p| format!(" <span class=\"muted\">({})</span>", escape(p)))
                    .unwrap_or_default(),
                phase = badge(m.phase.map_or("", Phase::as_str)),
                runtime = escape(served.map_or("", |s| s.runtime.as_str())),
                version = served.map_or_else(dash, |s| format!("v{}", s.version)),
                commit = commit(served.map_or("", |s| s.commit.as_str())),
                sha_full = escape(sha),
                sha = escape(&sha.chars().take(12).collect::<String>()),
                replicas = served.map_or_else(dash, |s| s.replicas.to_string()),
                auth = if served.is_some_and(|s| s.auth_required) {
                    "key"
                } else {
                    ""
                },
                message = escape(&m.message),
            )
        })
        .collect();
    let body = format!(
        "<h1>Models</h1>{}",
        table(
            "models",
            &[
                "Model", "Phase", "Runtime", "Version", "Commit", "SHA-256", "Replicas", "Auth",
                "Message"
            ],
            &rows,
            "No models are declared.",
        )
    );
    layout(Section::Models, "Models", &body).into_response()
}

/// Business metrics and quality per version over the last `days` days (one
/// window), as kept between renders: `None` while a large store's first
/// summary is being computed (see
/// [`cairn_monitor::summary::Summaries::page_summary`]).
async fn summary(
    state: &DashboardState,
    endpoint: &Endpoint,
    days: i64,
) -> Option<AggregateReport> {
    let events = state.gateway.gateway.events.clone();
    let summaries = state.gateway.summaries.clone();
    let model = endpoint.key.clone();
    let task = endpoint.spec.task;
    tokio::task::spawn_blocking(move || summaries.page_summary(&events, &model, task, days))
        .await
        .ok()?
        .ok()?
}

/// Stands in for a table while its data is summarized in the background;
/// the page's live refresh replaces it.
fn pending() -> String {
    "<p class=\"placeholder\" data-pending>Summarizing the stored events… this section fills in shortly.</p>".into()
}

/// The quality of each version (requests, coverage, accuracy or error).
fn quality_table(summary: &AggregateReport) -> String {
    let regression = summary.task == Task::Regression;
    let mut windows: Vec<(&str, &Window)> = summary
        .windows
        .iter()
        .filter_map(|w| Some((w.version.as_deref()?, w)))
        .collect();
    windows.sort_by_key(|(v, _)| std::cmp::Reverse(v.parse::<i64>().unwrap_or(0)));
    type Score = fn(&Window) -> Option<Option<f64>>;
    let metrics: &[(Score, &str)] = if regression {
        &[(|w| w.mae, "MAE"), (|w| w.rmse, "RMSE")]
    } else {
        &[
            (|w| w.accuracy, "Accuracy"),
            (|w| w.precision, "Precision"),
            (|w| w.recall, "Recall"),
            (|w| w.f1, "F1"),
        ]
    };
    let rows: Vec<String> = windows
        .iter()
        .map(|(version, w)| {
            let cells: String = metrics
                .iter()
                .map(|(score, _)| format!("<td class=\"num\">{}</td>", number(score(w).flatten())))
                .collect();
            format!(
                "<tr><td>v{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{cells}</tr>",
                escape(version),
                w.requests,
                w.errors,
                w.labeled,
                match w.coverage {
                    Some(c) => format!("{:.1}%", c * 100.0),
                    None => dash(),
                },
            )
        })
        .collect();
    let mut headers = vec!["Version", "Requests", "Errors", "Labeled", "Coverage"];
    headers.extend(metrics.iter().map(|(_, h)| *h));
    table(
        "quality",
        &headers,
        &rows,
        "No predictions in the last 30 days.",
    )
}

/// Business metrics per version (and for the model as a whole).
fn business_table(summary: &AggregateReport) -> String {
    let mut rows = Vec::new();
    for w in &summary.windows {
        let version = match &w.version {
            Some(v) => format!("v{}", escape(v)),
            None => "<span class=\"muted\">model</span>".into(),
        };
        for (name, m) in &w.business_metrics {
            let values = match &m.values {
                Some(counts) => counts
                    .iter()
                    .map(|(k, n)| format!("{}: {n}", escape(k)))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => String::new(),
            };
            rows.push(format!(
                "<tr><td>{version}</td><td><strong>{}</strong></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{values}</td></tr>",
                escape(name),
                m.count,
                number(m.sum),
                number(m.mean),
                number(m.p50),
                number(m.p95),
            ));
        }
    }
    table(
        "business",
        &[
            "Version", "Metric", "Count", "Sum", "Mean", "p50", "p95", "Values",
        ],
        &rows,
        "No business metrics were posted in the last 30 days (POST /projects/PROJECT/models/NAME/metrics).",
    )
}

pub(super) async fn detail(
    State(state): State<DashboardState>,
    Path(path): Path<NamePath>,
) -> Response {
    let endpoint = match crate::gateway::resolve_model(&state.gateway.gateway, &path.scoped()) {
        Ok(e) => e,
        Err((status, message)) => return error_page(Section::Models, status, &message),
    };
    let name = endpoint.key.name.to_string();
    let (predict, api) = match &endpoint.key.project {
        Some(p) => (
            format!("/projects/{p}/models/{name}/predict"),
            format!("/api/v1/projects/{p}/models/{name}"),
        ),
        None => (
            format!("/models/{name}/predict"),
            format!("/api/v1/models/{name}"),
        ),
    };
    let current = endpoint.current();
    let versions = match tokio::task::block_in_place(|| {
        let store = &state.gateway.store;
        store.model_versions(&endpoint.key).map(|versions| {
            versions
                .into_iter()
                .map(|v| {
                    let tracked = v
                        .run_id
                        .and_then(|id| super::experiments::tracked_run_link(store, id));
                    (v, tracked)
                })
                .collect::<Vec<_>>()
        })
    }) {
        Ok(v) => v,
        Err(e) => {
            return error_page(
                Section::Models,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            );
        }
    };
    let summary = summary(&state, &endpoint, cairn_monitor::summary::PAGE_DAYS).await;
    let regression = endpoint.spec.task == Some(cairn_spec::ModelTask::Regression);
    let version_rows: Vec<String> = versions
        .iter()
        .map(|(v, tracked)| {
            let number = v.version;
            let serving = if number == current.number {
                " <span class=\"badge ok\">serving</span>"
            } else {
                ""
            };
            let run = match (tracked, v.run_id) {
                (Some(link), _) => link.clone(),
                (None, Some(id)) => format!("run {id}"),
                (None, None) => dash(),
            };
            format!(
                "<tr><td>v{number}{serving}</td><td>{}</td><td><code class=\"hash\">{}</code></td><td>{run}</td><td>{}</td></tr>",
                commit(&v.commit),
                escape(&v.sha256),
                time(&v.created_at),
            )
        })
        .collect();
    let facts = format!(
        r#"<dl class="facts" id="model-facts" data-live>
<dt>Serving</dt><dd>v{version} from {commit}</dd>
<dt>Runtime</dt><dd>{runtime}</dd>
<dt>Replicas</dt><dd>{replicas}</dd>
<dt>Project</dt><dd>{project}</dd>
<dt>Predict</dt><dd><code>POST {predict}</code></dd>
</dl>"#,
        version = current.number,
        commit = commit(&current.commit),
        runtime = escape(endpoint.spec.runtime.to_api().as_str()),
        replicas = endpoint.spec.replicas,
        project = escape(endpoint.key.project.as_ref().map_or("—", |p| p.as_str())),
        predict = escape(&predict),
    );
    let chart = |id: &str, title: &str, unit: &str| {
        format!(
            "<figure class=\"panel\"><figcaption>{title} <span class=\"muted\">{unit}</span></figcaption><div class=\"chart\" id=\"chart-{id}\" data-points=\"0\"><p class=\"placeholder\">Waiting for data…</p></div></figure>"
        )
    };
    let body = format!(
        r#"<p class="crumbs"><a href="/models">Models</a> / {name}</p>
<h1>{name}</h1>
{facts}
<section id="model-page" data-model="{name}" data-api="{api}">
<h2>Traffic <span class="muted small">last hour, 10-second intervals</span></h2>
<div class="charts">{throughput}{latency}{errors}</div>
<h2>Resources <span class="muted small">last hour, 10-second samples</span></h2>
<div class="charts">{resources}</div>
<h2>Quality
<select id="quality-range" aria-label="Range">
<option value="1h:1m">last hour, 1-minute windows</option>
<option value="6h:5m" selected>last 6 hours, 5-minute windows</option>
<option value="24h:1h">last 24 hours, hourly</option>
<option value="7d:1d">last 7 days, daily</option>
</select></h2>
<div class="charts wide">{accuracy}</div>
<h3>By version <span class="muted small">last 30 days</span></h3>
<div id="quality-by-version" data-live>{quality}</div>
{drift}
<h2>Business metrics <span class="muted small">last 30 days</span></h2>
<div id="business-by-version" data-live>{business}</div>
</section>
<h2>Versions</h2>
{versions}"#,
        name = escape(&name),
        api = escape(&api),
        throughput = chart("throughput", "Throughput", "requests/s"),
        latency = chart("latency", "Latency", "p50 · p95 · p99, ms"),
        errors = chart("errors", "Errors", "per 10 s"),
        resources = chart(
            "resources",
            "CPU and memory",
            "of its processes (ONNX: the gateway's); GPU when it holds GPUs"
        ),
        accuracy = chart(
            "accuracy",
            if regression {
                "Error and label coverage"
            } else {
                "Accuracy and label coverage"
            },
            "per version"
        ),
        quality = summary.as_ref().map_or_else(pending, quality_table),
        business = summary.as_ref().map_or_else(pending, business_table),
        drift = match endpoint
            .spec
            .monitoring
            .as_ref()
            .and_then(|m| m.drift.as_ref())
        {
            Some(d) => format!(
                "<h2>Drift <span class=\"muted small\">plugin {}, every {}, threshold {}; last 7 days</span></h2>\n<div class=\"charts wide\">{}</div>",
                escape(d.plugin.as_str()),
                escape(&d.window.to_string()),
                d.threshold,
                chart("drift", "Drift score", "overall and per feature"),
            ),
            None => String::new(),
        },
        versions = table(
            "versions",
            &["Version", "Commit", "SHA-256", "Produced by", "Created"],
            &version_rows,
            "No versions recorded.",
        ),
    );
    layout(Section::Models, &name, &body).into_response()
}
