//! `/experiments`: the experiments the caller may see; `/experiments/ID`:
//! an experiment's runs, filtered and ordered with MLflow's syntax
//! (`?filter=…&orderBy=…`), a chart of a metric's history over the selected
//! runs (`?runs=ID,ID&metric=KEY`, kept up to date by the script), and a
//! parallel-coordinates view of each sweep, drawn here as SVG.

use super::{
    DashboardState, Section, commit, duration, error_page, escape, layout, number, scoped_href,
    table, time, url_segment,
};
use crate::auth::{Caller, Denied, Role};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api::experiments::TrackedRun;
use cairn_store::Store;
use cairn_store::tracking::{self, RunQuery, TrackingError, ViewType};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The most runs a page lists.
const PAGE_RUNS: usize = 1000;
/// The most sweeps drawn.
const SWEEPS_SHOWN: usize = 5;
/// Runs selected for the chart when the query names none.
const DEFAULT_SELECTED: usize = 5;
/// The most parameter axes of a sweep's view.
const MAX_AXES: usize = 12;
/// The tag naming a sweep (on its parent run).
const SWEEP_TAG: &str = "cairn.sweep";

/// The experiment page's query.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageQuery {
    /// MLflow's filter syntax.
    filter: Option<String>,
    /// MLflow's order-by keys, comma-separated.
    order_by: Option<String>,
    /// The runs selected for the chart, comma-separated.
    runs: Option<String>,
    /// The metric charted.
    metric: Option<String>,
}

fn ms_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The experiment page of `run`, with it selected and in view.
pub(super) fn run_href(experiment: i64, run: &str) -> String {
    format!(
        "/experiments/{experiment}?runs={r}#run-{r}",
        r = url_segment(run)
    )
}

/// A link to the tracked run of job run `job_run` (the store's id): its
/// experiment and name, to its row of the experiment page.
pub(super) fn tracked_run_link(store: &Store, job_run: i64) -> Option<String> {
    let t = store.tracking();
    let run = t.run_of_job_run(job_run).ok()??;
    let e = t.experiment(run.info.experiment_id).ok()?;
    Some(format!(
        "<a class=\"tracked\" href=\"{}\">{} · {}</a>",
        escape(&run_href(e.id, &run.info.id)),
        escape(&e.name),
        escape(&run.info.name)
    ))
}

fn dash() -> String {
    "<span class=\"muted\">—</span>".into()
}

pub(super) async fn list(State(state): State<DashboardState>, caller: Caller) -> Response {
    let store = state.app.controller.store();
    let found = tokio::task::block_in_place(|| {
        let t = store.tracking();
        let page = t.search_experiments(
            "",
            ViewType::ActiveOnly,
            tracking::limits::SEARCH_PAGE,
            &[],
            None,
        )?;
        Ok::<_, TrackingError>((page.items, t.run_counts()?))
    });
    let (experiments, counts) = match found {
        Ok(f) => f,
        Err(e) => {
            return error_page(
                Section::Experiments,
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            );
        }
    };
    let mut shown: Vec<(tracking::Experiment, i64, Option<i64>)> = experiments
        .into_iter()
        .filter(|e| caller.sees(e.project.as_deref()))
        .map(|e| {
            let (runs, last) = counts.get(&e.id).copied().unwrap_or((0, None));
            (e, runs, last)
        })
        .collect();
    // Most recently run first; never-run ones by name.
    shown.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.name.cmp(&b.0.name)));
    let rows: Vec<String> = shown
        .iter()
        .map(|(e, runs, last)| {
            format!(
                "<tr data-experiment=\"{id}\"><td><a href=\"/experiments/{id}\"><strong>{name}</strong></a></td><td>{project}</td><td>{job}</td><td class=\"num\">{runs}</td><td>{last}</td></tr>",
                id = e.id,
                name = escape(&e.name),
                project = e.project.as_deref().map_or_else(dash, escape),
                job = e.job.as_deref().map_or_else(dash, |j| format!(
                    "<a href=\"/jobs#job-{}\">{}</a>",
                    escape(&url_segment(j)),
                    escape(j)
                )),
                last = last.map_or_else(dash, |ms| time(&ms_time(ms))),
            )
        })
        .collect();
    let body = format!(
        "<h1>Experiments</h1>{}",
        table(
            "experiments",
            &["Experiment", "Project", "Job", "Runs", "Last run"],
            &rows,
            "No experiments yet: a job's runs are tracked in one, and MLflow clients create them (MLFLOW_TRACKING_URI is this server).",
        )
    );
    layout(Section::Experiments, "Experiments", &body).into_response()
}

/// Why a page is not shown.
enum Refusal {
    /// The caller may not see it.
    Denied(Denied),
    /// Anything else: a status and a message.
    Failed(StatusCode, String),
}

impl From<TrackingError> for Refusal {
    fn from(e: TrackingError) -> Self {
        match e {
            TrackingError::NotFound(m) => Refusal::Failed(StatusCode::NOT_FOUND, m),
            TrackingError::Invalid(m) | TrackingError::AlreadyExists(m) => {
                Refusal::Failed(StatusCode::BAD_REQUEST, m)
            }
            TrackingError::Store(e) => {
                Refusal::Failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// A sweep among the listed runs: its parent run and its runs (indices
/// into the listed runs).
struct Sweep {
    parent: tracking::Run,
    runs: Vec<usize>,
}

impl Sweep {
    fn objective(&self) -> Option<&str> {
        self.parent.tag("cairn.sweep.objective")
    }

    fn maximize(&self) -> bool {
        self.parent.tag("cairn.sweep.goal") != Some("minimize")
    }
}

/// What the experiment page shows.
struct Loaded {
    experiment: tracking::Experiment,
    /// The runs listed (sweep parents aside), in the order asked.
    runs: Vec<TrackedRun>,
    /// The sweeps of those runs, newest first.
    sweeps: Vec<Sweep>,
    /// More runs match than are listed.
    more: bool,
    /// Why the filter or order was refused.
    error: Option<String>,
}

/// The caller's right to see `e` (as the experiments API judges it).
fn require(caller: &Caller, e: &tracking::Experiment) -> Result<(), Denied> {
    match &e.project {
        Some(p) => caller.require(p, Role::Viewer),
        None if caller.principal.is_admin() => Ok(()),
        None => Err(Denied {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "experiment `{}` belongs to no project: only operators may see it",
                e.name
            ),
        }),
    }
}

fn load(store: &Store, caller: &Caller, id: i64, q: &PageQuery) -> Result<Loaded, Refusal> {
    let t = store.tracking();
    let experiment = t.experiment(id)?;
    require(caller, &experiment).map_err(Refusal::Denied)?;
    let query = RunQuery {
        experiment_ids: vec![id],
        filter: q.filter.clone().unwrap_or_default(),
        view: ViewType::ActiveOnly,
        max_results: PAGE_RUNS,
        order_by: q
            .order_by
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        page_token: None,
    };
    let (found, more, error) = match t.search_runs(&query) {
        Ok(page) => (page.items, page.next_page_token.is_some(), None),
        Err(TrackingError::Invalid(m)) => (Vec::new(), false, Some(m)),
        Err(e) => return Err(e.into()),
    };
    let runs: Vec<TrackedRun> = found
        .into_iter()
        .filter(|r| !(r.tag(SWEEP_TAG).is_some() && r.info.job_run.is_none()))
        .map(|r| crate::experiments::tracked_run(store, r, &experiment.name))
        .collect();
    let mut sweeps: Vec<Sweep> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(parent) = run
            .parent
            .as_deref()
            .filter(|_| run.job_run.as_ref().is_some_and(|j| j.sweep.is_some()))
        else {
            continue;
        };
        match sweeps.iter_mut().find(|s| s.parent.info.id == parent) {
            Some(s) => s.runs.push(i),
            None => {
                if let Ok(p) = t.run(parent)
                    && p.tag(SWEEP_TAG).is_some()
                {
                    sweeps.push(Sweep {
                        parent: p,
                        runs: vec![i],
                    });
                }
            }
        }
    }
    sweeps.sort_by_key(|s| std::cmp::Reverse(s.parent.info.start_ms));
    sweeps.truncate(SWEEPS_SHOWN);
    Ok(Loaded {
        experiment,
        runs,
        sweeps,
        more,
        error,
    })
}

pub(super) async fn detail(
    State(state): State<DashboardState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Ok(number) = id.parse::<i64>() else {
        return error_page(
            Section::Experiments,
            StatusCode::BAD_REQUEST,
            &format!("`{id}` is not an experiment id (a number)"),
        );
    };
    let store = state.app.controller.store();
    match tokio::task::block_in_place(|| load(store, &caller, number, &q)) {
        Ok(loaded) => page(loaded, &q),
        // A browser gets a page; other clients the API's error body.
        Err(Refusal::Denied(d)) if wants_html(&headers) => {
            error_page(Section::Experiments, d.status, &d.message)
        }
        Err(Refusal::Denied(d)) => d.into_response(),
        Err(Refusal::Failed(status, message)) => error_page(Section::Experiments, status, &message),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The page's URL with `changes` made to its query.
fn href(id: i64, q: &PageQuery, changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(&str, Option<&str>)> = vec![
        ("filter", q.filter.as_deref()),
        ("orderBy", q.order_by.as_deref()),
        ("runs", q.runs.as_deref()),
        ("metric", q.metric.as_deref()),
    ];
    for (key, value) in changes {
        if let Some(p) = pairs.iter_mut().find(|(k, _)| k == key) {
            p.1 = *value;
        }
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty() || k == "runs") {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        format!("/experiments/{id}")
    } else {
        format!("/experiments/{id}?{query}")
    }
}

/// `entity.`KEY`` as MLflow's order-by syntax quotes it.
fn quoted_key(entity: &str, key: &str) -> String {
    format!("{entity}.`{}`", key.replace('`', "``"))
}

/// A column header that orders the runs by `key` (ascending first, or
/// descending first when `descending`), showing the current order.
fn sort_header(id: i64, q: &PageQuery, label: &str, key: &str, descending: bool) -> String {
    let current = q.order_by.as_deref().unwrap_or_default().trim();
    let (asc, desc) = (format!("{key} ASC"), format!("{key} DESC"));
    let (next, arrow) = if current == asc {
        (desc, " ▲")
    } else if current == desc {
        (asc, " ▼")
    } else if descending {
        (desc, "")
    } else {
        (asc, "")
    };
    format!(
        "<th><a class=\"sort\" href=\"{}\" title=\"Order by {}\">{}{arrow}</a></th>",
        escape(&href(id, q, &[("orderBy", Some(&next))])),
        escape(key),
        escape(label),
    )
}

fn status_badge(status: &str) -> String {
    let class = match status {
        "FINISHED" => "ok",
        "FAILED" | "KILLED" => "bad",
        "RUNNING" | "SCHEDULED" => "busy",
        _ => "idle",
    };
    format!(
        "<span class=\"badge {class}\">{}</span>",
        escape(&status.to_ascii_lowercase())
    )
}

/// The job run's page.
fn job_run_href(job: &str, project: Option<&str>, number: i64) -> String {
    let mut href = format!("/jobs/{}/runs/{number}", url_segment(job));
    if let Some(p) = project {
        let _ = write!(href, "?project={}", url_segment(p));
    }
    href
}

/// A run's row of the runs table.
fn run_row(
    run: &TrackedRun,
    params: &[&String],
    metrics: &[&String],
    selected: &BTreeSet<&str>,
) -> String {
    let best = run.job_run.as_ref().is_some_and(|j| j.best);
    let job = match &run.job_run {
        Some(j) => format!(
            "<a href=\"{}\">{} #{}</a>",
            escape(&job_run_href(&j.job, j.project.as_deref(), j.number)),
            escape(&j.job),
            j.number
        ),
        None => dash(),
    };
    let models = if run.model_versions.is_empty() {
        dash()
    } else {
        run.model_versions
            .iter()
            .map(|v| {
                format!(
                    "<a href=\"{}\">{} v{}</a>",
                    escape(&scoped_href("models", v.project.as_deref(), &v.model, true)),
                    escape(&v.model),
                    v.version
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut cells = String::new();
    for k in params {
        let _ = write!(
            cells,
            "<td>{}</td>",
            run.params.get(*k).map_or_else(dash, |v| escape(v))
        );
    }
    for k in metrics {
        let _ = write!(
            cells,
            "<td class=\"num\">{}</td>",
            number(run.metrics.get(*k).copied().flatten())
        );
    }
    let ended = run.ended_at.clone().unwrap_or_else(cairn_store::now);
    let took = run
        .started_at
        .as_deref()
        .and_then(|s| duration(s, &ended))
        .map_or_else(dash, |d| escape(&d));
    format!(
        "<tr id=\"run-{id}\" data-run=\"{id}\"{class}><td><input type=\"checkbox\" class=\"run-select\" value=\"{id}\" data-name=\"{name}\" aria-label=\"Select {name}\"{checked}></td><td><strong>{name}</strong>{best}</td><td>{status}</td><td>{started}</td><td class=\"num\">{took}</td>{cells}<td>{job}</td><td>{commit}</td><td>{models}</td></tr>",
        id = escape(&run.id),
        class = if best { " class=\"best\"" } else { "" },
        name = escape(&run.name),
        checked = if selected.contains(run.id.as_str()) {
            " checked"
        } else {
            ""
        },
        best = if best {
            " <span class=\"badge ok\" title=\"The sweep's best run\">best</span>"
        } else {
            ""
        },
        status = status_badge(&run.status),
        started = time(run.started_at.as_deref().unwrap_or("")),
        commit = commit(run.commit.as_deref().unwrap_or("")),
    )
}

fn page(loaded: Loaded, q: &PageQuery) -> Response {
    let Loaded {
        experiment: e,
        runs,
        sweeps,
        more,
        error,
    } = loaded;
    let id = e.id;
    let params: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.params.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let metrics: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.metrics.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let selected: BTreeSet<&str> = match &q.runs {
        Some(list) => list.split(',').map(str::trim).collect(),
        None => runs
            .iter()
            .take(DEFAULT_SELECTED)
            .map(|r| r.id.as_str())
            .collect(),
    };
    let metric = q
        .metric
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| {
            sweeps
                .first()
                .and_then(|s| s.objective())
                .map(str::to_string)
        })
        .or_else(|| metrics.first().map(|m| m.to_string()))
        .unwrap_or_default();

    let mut head = String::from("<th><span class=\"sr-only\">Select</span></th>");
    head.push_str(&sort_header(id, q, "Run", "attributes.run_name", false));
    head.push_str(&sort_header(id, q, "Status", "attributes.status", false));
    head.push_str(&sort_header(
        id,
        q,
        "Started",
        "attributes.start_time",
        true,
    ));
    head.push_str("<th>Duration</th>");
    for k in &params {
        head.push_str(&sort_header(id, q, k, &quoted_key("params", k), false));
    }
    for k in &metrics {
        head.push_str(&sort_header(id, q, k, &quoted_key("metrics", k), true));
    }
    head.push_str("<th>Job run</th><th>Commit</th><th>Model versions</th>");
    let rows: String = runs
        .iter()
        .map(|r| run_row(r, &params, &metrics, &selected))
        .collect();
    let runs_table = if runs.is_empty() {
        format!(
            "<div id=\"runs\" data-live><p class=\"empty\">{}</p></div>",
            if error.is_some() {
                "No runs: the filter was refused."
            } else if q.filter.as_deref().is_some_and(|f| !f.trim().is_empty()) {
                "No runs match the filter."
            } else {
                "No runs yet."
            }
        )
    } else {
        format!(
            "<div id=\"runs\" data-live class=\"table-wrap\"><table class=\"runs\"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}</div>",
            more = if more {
                format!(
                    "<p class=\"muted small\">Showing the first {PAGE_RUNS} runs; narrow them with a filter.</p>"
                )
            } else {
                String::new()
            },
        )
    };

    let hidden = |name: &str, value: Option<&str>| match value {
        Some(v) => format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(v)
        ),
        None => String::new(),
    };
    let selection = selected.iter().copied().collect::<Vec<_>>().join(",");
    let form = format!(
        r#"<form class="filter" id="run-filter" method="get" action="/experiments/{id}">
<input type="search" name="filter" value="{filter}" placeholder="metrics.accuracy &gt; 0.9 and params.C = '1'" aria-label="Filter (MLflow's syntax)">
{order}<input type="hidden" name="runs" id="selected-runs" value="{selection}"><input type="hidden" name="metric" id="selected-metric" value="{metric}">
<button type="submit">Filter</button> <a href="/experiments/{id}">clear</a>
</form>{error}"#,
        filter = escape(q.filter.as_deref().unwrap_or_default()),
        order = hidden("orderBy", q.order_by.as_deref()),
        selection = escape(&selection),
        metric = escape(&metric),
        error = error.as_deref().map_or_else(String::new, |m| format!(
            "<p class=\"filter-error\" id=\"filter-error\" role=\"alert\">{}</p>",
            escape(m)
        )),
    );

    let mut options: Vec<&str> = metrics.iter().map(|m| m.as_str()).collect();
    if !metric.is_empty() && !options.contains(&metric.as_str()) {
        options.insert(0, &metric);
    }
    let options: String = options
        .iter()
        .map(|m| {
            format!(
                "<option value=\"{v}\"{sel}>{v}</option>",
                v = escape(m),
                sel = if *m == metric { " selected" } else { "" }
            )
        })
        .collect();
    let chart = format!(
        r#"<h2>Metric history <select id="metric-select" aria-label="Metric">{options}</select> <span class="muted small">of the selected runs, by step</span></h2>
<div class="charts wide"><figure class="panel"><div class="chart" id="chart-history" data-points="0" data-series="0"><p class="placeholder">Select runs and a metric.</p></div></figure></div>"#
    );

    let sweep_views: String = sweeps
        .iter()
        .map(|s| sweep_view(s, &runs, &selected))
        .collect();
    let sweeps_html = if sweeps.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Sweeps <span class=\"muted small\">one line per run, one axis per parameter and the objective</span></h2><div id=\"sweeps\" data-live>{sweep_views}</div>"
        )
    };

    let facts = format!(
        r#"<dl class="facts" id="experiment-facts">
<dt>Project</dt><dd>{project}</dd>
<dt>Job</dt><dd>{job}</dd>
<dt>Id</dt><dd><code>{id}</code></dd>
<dt>Created</dt><dd>{created}</dd>
<dt>Runs shown</dt><dd>{count}</dd>
</dl>"#,
        project = e.project.as_deref().map_or_else(dash, escape),
        job = e.job.as_deref().map_or_else(dash, escape),
        created = time(&ms_time(e.created_ms)),
        count = runs.len(),
    );
    let body = format!(
        "<p class=\"crumbs\"><a href=\"/experiments\">Experiments</a> / {name}</p><h1>{name}</h1>{facts}<section id=\"experiment-page\" data-experiment=\"{id}\"><h2>Runs</h2>{form}{runs_table}{chart}{sweeps_html}</section>",
        name = escape(&e.name),
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, layout(Section::Experiments, &e.name, &body)).into_response()
}

// ------------------------------------------------ parallel coordinates --

/// Where values lie on an axis.
enum Scale {
    /// Numbers, from `lo` to `hi` (logarithmic when `log`).
    Numeric { lo: f64, hi: f64, log: bool },
    /// Values in this order.
    Category(Vec<String>),
}

impl Scale {
    /// The scale of `values` (numbers when every one is a finite number).
    fn of(values: &[&str]) -> Scale {
        let numbers: Option<Vec<f64>> = values
            .iter()
            .map(|v| v.trim().parse::<f64>().ok().filter(|f| f.is_finite()))
            .collect();
        match numbers {
            Some(ns) if !ns.is_empty() => {
                let lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = ns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Scale::Numeric {
                    lo,
                    hi,
                    log: lo > 0.0 && hi / lo >= 20.0,
                }
            }
            _ => {
                let set: BTreeSet<&str> = values.iter().copied().collect();
                Scale::Category(set.into_iter().map(str::to_string).collect())
            }
        }
    }

    /// Where `v` lies, from 0 (bottom) to 1 (top).
    fn place(&self, v: &str) -> Option<f64> {
        match self {
            Scale::Numeric { lo, hi, log } => {
                let x: f64 = v.trim().parse().ok().filter(|f: &f64| f.is_finite())?;
                if hi <= lo {
                    return Some(0.5);
                }
                Some(if *log {
                    (x.ln() - lo.ln()) / (hi.ln() - lo.ln())
                } else {
                    (x - lo) / (hi - lo)
                })
            }
            Scale::Category(values) => {
                let i = values.iter().position(|c| c == v)?;
                Some(if values.len() < 2 {
                    0.5
                } else {
                    i as f64 / (values.len() - 1) as f64
                })
            }
        }
    }

    /// Labels and where they go.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Numeric { lo, hi, .. } if hi <= lo => vec![(0.5, short(*lo))],
            Scale::Numeric { lo, hi, .. } => vec![(0.0, short(*lo)), (1.0, short(*hi))],
            Scale::Category(values) => values
                .iter()
                .map(|v| (self.place(v).unwrap_or(0.5), v.clone()))
                .collect(),
        }
    }
}

fn short(v: f64) -> String {
    number(Some(v))
}

/// A color from orange (0, worse) to blue (1, better).
fn shade(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(232.0, 47.0),
        mix(113.0, 111.0),
        mix(10.0, 222.0)
    )
}

/// A sweep's figure: its facts and its parallel-coordinates SVG.
fn sweep_view(sweep: &Sweep, runs: &[TrackedRun], selected: &BTreeSet<&str>) -> String {
    let members: Vec<&TrackedRun> = sweep.runs.iter().map(|&i| &runs[i]).collect();
    let objective = sweep.objective().unwrap_or_default();
    let best = sweep
        .parent
        .tag("cairn.sweep.best")
        .and_then(|b| members.iter().find(|r| r.id == b))
        .map_or_else(dash, |r| {
            format!("<a href=\"#run-{}\">{}</a>", escape(&r.id), escape(&r.name))
        });
    let caption = format!(
        "Sweep <code>{sweep}</code> · {n} runs shown · objective <strong>{objective}</strong> ({goal}) · best {best}",
        sweep = escape(sweep.parent.tag(SWEEP_TAG).unwrap_or_default()),
        n = members.len(),
        objective = escape(if objective.is_empty() {
            "—"
        } else {
            objective
        }),
        goal = if sweep.maximize() {
            "maximize"
        } else {
            "minimize"
        },
    );
    format!(
        "<figure class=\"panel sweep\" data-sweep=\"{}\"><figcaption>{caption}</figcaption>{}</figure>",
        escape(sweep.parent.tag(SWEEP_TAG).unwrap_or_default()),
        parallel_coordinates(&members, objective, sweep.maximize(), selected)
    )
}

/// One vertical axis per parameter that differs among `runs` (every one,
/// if none differs) and one for the objective metric; one polyline per run,
/// colored by its objective (blue: better).
fn parallel_coordinates(
    runs: &[&TrackedRun],
    objective: &str,
    maximize: bool,
    selected: &BTreeSet<&str>,
) -> String {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    let differs = |k: &&String| {
        let values: BTreeSet<Option<&String>> = runs.iter().map(|r| r.params.get(*k)).collect();
        values.len() > 1
    };
    let mut params: Vec<&String> = keys.iter().copied().filter(differs).collect();
    if params.is_empty() {
        params = keys.into_iter().collect();
    }
    params.truncate(MAX_AXES);
    let objective_of = |r: &TrackedRun| {
        r.metrics
            .get(objective)
            .copied()
            .flatten()
            .map(|v| v.to_string())
    };
    // Each axis: its label and each run's value.
    let mut axes: Vec<(String, Vec<Option<String>>)> = params
        .iter()
        .map(|k| {
            (
                k.to_string(),
                runs.iter().map(|r| r.params.get(*k).cloned()).collect(),
            )
        })
        .collect();
    if !objective.is_empty() {
        axes.push((
            objective.to_string(),
            runs.iter().map(|r| objective_of(r)).collect(),
        ));
    }
    if axes.is_empty() {
        return "<p class=\"empty\">Nothing to draw: the runs have no parameters.</p>".into();
    }
    let scales: Vec<Scale> = axes
        .iter()
        .map(|(_, values)| {
            let present: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
            Scale::of(&present)
        })
        .collect();

    const GAP: f64 = 150.0;
    const LEFT: f64 = 60.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 224.0;
    let height = 262.0;
    let width = LEFT * 2.0 + GAP * (axes.len().max(2) - 1) as f64;
    let x = |i: usize| {
        if axes.len() == 1 {
            width / 2.0
        } else {
            LEFT + GAP * i as f64
        }
    };
    let y = |t: f64| BOTTOM - t * (BOTTOM - TOP);
    // Below the axis: a value the run lacks.
    let missing_y = BOTTOM + 22.0;

    let mut svg = format!(
        "<svg class=\"pcoords\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"Parallel coordinates of {} runs\">",
        runs.len()
    );
    // The lines first, so the axes and labels stay readable over them.
    let objective_axis = (!objective.is_empty()).then(|| axes.len() - 1);
    for (n, run) in runs.iter().enumerate() {
        let points: Vec<String> = axes
            .iter()
            .zip(&scales)
            .enumerate()
            .map(|(i, ((_, values), scale))| {
                let yy = values[n]
                    .as_deref()
                    .and_then(|v| scale.place(v))
                    .map_or(missing_y, y);
                format!("{:.1},{:.1}", x(i), yy)
            })
            .collect();
        let quality = objective_axis
            .and_then(|i| axes[i].1[n].as_deref().and_then(|v| scales[i].place(v)))
            .map(|t| if maximize { t } else { 1.0 - t });
        let best = run.job_run.as_ref().is_some_and(|j| j.best);
        let mut class = String::from("pc-run");
        if best {
            class.push_str(" best");
        }
        if selected.contains(run.id.as_str()) {
            class.push_str(" selected");
        }
        let _ = write!(
            svg,
            "<polyline class=\"{class}\" data-run=\"{id}\" points=\"{points}\" fill=\"none\" stroke=\"{stroke}\"><title>{name}: {summary}</title></polyline>",
            id = escape(&run.id),
            points = points.join(" "),
            stroke = quality.map_or_else(|| "#9aa4af".to_string(), shade),
            name = escape(&run.name),
            summary = escape(
                &axes
                    .iter()
                    .map(|(label, values)| format!(
                        "{label}={}",
                        values[n].as_deref().unwrap_or("—")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for (i, ((label, values), scale)) in axes.iter().zip(&scales).enumerate() {
        let xi = x(i);
        let _ = write!(
            svg,
            "<line class=\"pc-axis\" x1=\"{xi:.1}\" y1=\"{TOP:.1}\" x2=\"{xi:.1}\" y2=\"{BOTTOM:.1}\" stroke=\"#57606a\"/><text class=\"pc-label\" x=\"{xi:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP - 14.0,
            escape(label),
        );
        for (t, text) in scale.ticks() {
            let _ = write!(
                svg,
                "<text class=\"pc-tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                xi + 6.0,
                y(t) + 4.0,
                escape(&text)
            );
        }
        if values.iter().any(Option::is_none) {
            let _ = write!(
                svg,
                "<text class=\"pc-tick\" x=\"{:.1}\" y=\"{:.1}\">n/a</text>",
                xi + 6.0,
                missing_y + 4.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::experiments::JobRunLink;
    use std::collections::BTreeMap;

    fn run(id: &str, c: &str, accuracy: Option<f64>, best: bool) -> TrackedRun {
        TrackedRun {
            id: id.into(),
            experiment_id: "1".into(),
            experiment: "lab/tune".into(),
            name: format!("<{id}>"),
            status: "FINISHED".into(),
            user: "u".into(),
            started_at: Some("2024-01-01T00:00:00Z".into()),
            ended_at: Some("2024-01-01T00:00:02Z".into()),
            commit: Some("0123456789abcdef".into()),
            parent: Some("p".into()),
            params: BTreeMap::from([
                ("C".to_string(), c.to_string()),
                ("solver".to_string(), "lbfgs".to_string()),
            ]),
            metrics: BTreeMap::from([("accuracy".to_string(), accuracy)]),
            tags: BTreeMap::new(),
            datasets: Vec::new(),
            job_run: Some(JobRunLink {
                job: "tune".into(),
                project: Some("lab".into()),
                number: 3,
                state: "succeeded".into(),
                sweep: Some("s".into()),
                best,
                artifacts: Vec::new(),
            }),
            model_versions: Vec::new(),
        }
    }

    #[test]
    fn one_polyline_per_run_and_an_axis_per_varying_param() {
        let runs = [
            run("a", "0.5", Some(0.9), false),
            run("b", "2", Some(1.0), true),
            run("c", "16", None, false),
        ];
        let refs: Vec<&TrackedRun> = runs.iter().collect();
        let selected = BTreeSet::from(["a"]);
        let svg = parallel_coordinates(&refs, "accuracy", true, &selected);
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
        // C varies (an axis), solver does not; accuracy is the objective.
        assert_eq!(svg.matches("class=\"pc-axis\"").count(), 2, "{svg}");
        assert!(svg.contains(">C</text>") && !svg.contains(">solver</text>"));
        assert!(svg.contains("class=\"pc-run best\""), "{svg}");
        assert!(svg.contains("class=\"pc-run selected\""), "{svg}");
        // Names are escaped; a missing objective sits below its axis.
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"), "{svg}");
        assert!(svg.contains(">n/a</text>"), "{svg}");
        // The best run is the bluest.
        assert!(svg.contains("stroke=\"#2f6fde\""), "{svg}");
    }

    #[test]
    fn scales_place_numbers_and_categories() {
        let s = Scale::of(&["1", "10", "100"]);
        assert!(matches!(s, Scale::Numeric { log: true, .. }));
        assert!((s.place("10").unwrap() - 0.5).abs() < 1e-9);
        let s = Scale::of(&["b", "a", "c"]);
        assert_eq!(s.place("a"), Some(0.0));
        assert_eq!(s.place("c"), Some(1.0));
        assert_eq!(s.place("zzz"), None);
        let s = Scale::of(&["3", "3"]);
        assert_eq!(s.place("3"), Some(0.5));
    }

    #[test]
    fn links_keep_the_query_and_order_by_quoted_keys() {
        let q = PageQuery {
            filter: Some("metrics.accuracy > 0.5".into()),
            order_by: Some("params.`C` ASC".into()),
            runs: Some("a,b".into()),
            metric: None,
        };
        let header = sort_header(7, &q, "C", &quoted_key("params", "C"), false);
        assert!(header.contains("▲"), "{header}");
        assert!(
            header.contains(
                "/experiments/7?filter=metrics.accuracy+%3E+0.5&amp;orderBy=params.%60C%60+DESC&amp;runs=a%2Cb"
            ),
            "{header}"
        );
        assert_eq!(quoted_key("metrics", "a`b"), "metrics.`a``b`");
        let row = run_row(
            &run("x", "1", Some(0.5), true),
            &[&"C".to_string()],
            &[&"accuracy".to_string()],
            &BTreeSet::from(["x"]),
        );
        assert!(
            row.contains(" checked") && row.contains(">best</span>"),
            "{row}"
        );
        assert!(
            row.contains("<a href=\"/jobs/tune/runs/3?project=lab\">tune #3</a>"),
            "{row}"
        );
        assert!(row.contains("&lt;x&gt;") && row.contains("2.0 s"), "{row}");
    }
}
