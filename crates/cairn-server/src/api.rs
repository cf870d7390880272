//! The HTTP API (`/api/v1/...`), the Git webhook (`/hooks/git`) and the
//! application proxy (`/apps/NAME/`).
//!
//! Jobs, models and applications are named as in [`crate::names`]: every
//! per-resource route also has its form in a project
//! (`/api/v1/projects/PROJECT/jobs/NAME/...`,
//! `/projects/PROJECT/apps/NAME/`), and the bare form answers 409 when
//! several projects use the name.

use crate::hooks::{self, WebhookConfig};
use crate::names::{NamePath, resolved, scoped_paths};
use crate::proxy::{self, ProxyClient};
use crate::runtime::AnyRuntime;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use cairn_controller::{Controller, Trigger};
use cairn_runtime::{LogTarget, Runtime};
use cairn_runtime_embedded::RunRequest;
use cairn_spec::{Kind, Lookup, ResourceKey, ScopedName};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The controller.
    pub controller: Arc<Controller<AnyRuntime>>,
    /// Webhook verification.
    pub hooks: WebhookConfig,
    /// Where to ask for a reconciliation.
    pub trigger: mpsc::Sender<Trigger>,
    /// The repository is remote (webhooks fetch first).
    pub remote: bool,
    /// Client for the application proxy.
    pub proxy: ProxyClient,
}

/// The router of `cairn up`.
pub fn router(state: AppState) -> Router {
    let per_resource: [(&str, &str, &str, MethodRouter<AppState>); 8] = [
        ("/api/v1", "jobs", "/runs", get(job_runs).post(start_run)),
        ("/api/v1", "jobs", "/runs/{number}", get(job_run)),
        ("/api/v1", "jobs", "/runs/{number}/logs", get(run_logs)),
        ("/api/v1", "models", "/rollback", post(rollback_model)),
        ("/api/v1", "models", "/drift/evaluate", post(evaluate_drift)),
        ("", "apps", "", any(app_proxy)),
        ("", "apps", "/", any(app_proxy)),
        ("", "apps", "/{*rest}", any(app_proxy)),
    ];
    per_resource
        .into_iter()
        .fold(Router::new(), |router, (prefix, kind, rest, handler)| {
            let [bare, scoped] = scoped_paths(prefix, kind, rest);
            router.route(&bare, handler.clone()).route(&scoped, handler)
        })
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sync", get(last_sync))
        .route("/api/v1/runs", get(recent_runs))
        .route("/api/v1/audit", get(audit))
        .route("/hooks/git", post(git_hook))
        .with_state(state)
}

/// The served model a route names (see [`crate::gateway::resolve_model`]).
fn find_model(
    s: &AppState,
    wanted: &ScopedName,
) -> ApiResult<Arc<cairn_gateway::service::Endpoint>> {
    crate::gateway::resolve_model(&s.controller.runtime().gateway(), wanted)
        .map_err(|(status, message)| ApiError(status, message))
}

/// `POST /api/v1/[projects/PROJECT/]models/NAME/drift/evaluate`: scores
/// the model's last window now and returns the verdict (also stored and
/// published).
async fn evaluate_drift(
    State(s): State<AppState>,
    Path(path): Path<NamePath>,
) -> ApiResult<Response> {
    use cairn_runtime_embedded::DriftError;
    let endpoint = find_model(&s, &path.scoped())?;
    match s.controller.runtime().evaluate_drift(&endpoint.key).await {
        Ok(verdict) => Ok(axum::Json(verdict).into_response()),
        Err(e @ DriftError::NoModel(_)) => Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ (DriftError::NotMonitored(_) | DriftError::Unsupported(_))) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ DriftError::Internal(_)) => {
            Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

/// An API error: a status and a message, as JSON.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize, Default)]
struct ProjectQuery {
    project: Option<String>,
    limit: Option<i64>,
    follow: Option<bool>,
}

async fn last_sync(State(s): State<AppState>) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(
        json!({ "lastSync": s.controller.store().last_sync()? }),
    ))
}

async fn status(State(s): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let store = s.controller.store();
    let statuses = store.statuses()?;
    let last_sync = store.last_sync()?;
    let (origin, diagnostics, errors) = s.controller.with_latest(|l| {
        let d = cairn_spec::diagnostics::to_json(&l.report);
        (
            serde_json::to_value(&l.origin).unwrap_or(Value::Null),
            d["diagnostics"].clone(),
            l.report.errors(),
        )
    });
    Ok(axum::Json(json!({
        "repository": s.controller.source().lock().unwrap_or_else(|e| e.into_inner()).display(),
        "revision": s.controller.settings().rev,
        "origin": origin,
        "lastSync": last_sync,
        "errors": errors,
        "diagnostics": diagnostics,
        "resources": statuses,
        "gpus": s.controller.runtime().gpus().devices,
    })))
}

/// The applied job a route names: its project from the route, else from
/// `?project=` (or a run request's `project`); 404 when none, 409 naming
/// the projects when a bare name is a job of several.
fn find_job(s: &AppState, path: &NamePath, project: Option<String>) -> ApiResult<ResourceKey> {
    let wanted = ScopedName {
        project: path.project.clone().or(project),
        name: path.name.clone(),
    };
    let jobs: Vec<ResourceKey> = s
        .controller
        .store()
        .applied()?
        .into_iter()
        .map(|a| a.key)
        .filter(|k| k.kind == Kind::Job)
        .collect();
    let lookup = Lookup::among(&wanted, jobs.iter().map(|k| (k, k.clone())));
    resolved("job", "applied", &wanted, lookup, |p| {
        format!(
            "/api/v1/projects/{p}/jobs/{}/runs (or ?project={p})",
            wanted.name
        )
    })
    .map_err(|(status, message)| ApiError(status, message))
}

/// The application a route names: `Ok(None)` when there is none (its
/// proxy answers 503, as for one with no ready replica), 409 naming the
/// projects when a bare name is an application of several.
fn find_app(s: &AppState, path: &NamePath) -> Result<Option<ResourceKey>, ApiError> {
    let wanted = path.scoped();
    let apps = s.controller.runtime().apps_named(&wanted.name);
    let lookup = Lookup::among(&wanted, apps.iter().map(|k| (k, k.clone())));
    match lookup {
        Lookup::NotFound => Ok(None),
        lookup => resolved("application", "running", &wanted, lookup, |p| {
            format!("/projects/{p}/apps/{}/", wanted.name)
        })
        .map(Some)
        .map_err(|(status, message)| ApiError(status, message)),
    }
}

async fn job_runs(
    State(s): State<AppState>,
    Path(path): Path<NamePath>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let key = find_job(&s, &path, q.project)?;
    let runs = s.controller.store().runs(&key, q.limit.unwrap_or(50))?;
    Ok(axum::Json(json!({ "runs": runs })))
}

async fn recent_runs(
    State(s): State<AppState>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let runs = s.controller.store().recent_runs(q.limit.unwrap_or(50))?;
    Ok(axum::Json(json!({ "runs": runs })))
}

async fn audit(
    State(s): State<AppState>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let entries = s.controller.store().audit_log(q.limit.unwrap_or(100))?;
    Ok(axum::Json(json!({ "entries": entries })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartRun {
    #[serde(default)]
    params: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    project: Option<String>,
    /// Run every upstream job too (default true).
    #[serde(default)]
    upstream: Option<bool>,
}

async fn start_run(
    State(s): State<AppState>,
    Path(path): Path<NamePath>,
    Query(q): Query<ProjectQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let request: StartRun = if body.is_empty() {
        StartRun::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?
    };
    let key = find_job(&s, &path, request.project.or(q.project))?;
    let runs = s
        .controller
        .runtime()
        .run_job(RunRequest {
            targets: vec![key],
            trigger: "manual".into(),
            params: request.params,
            with_upstream: request.upstream.unwrap_or(true),
        })
        .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    let run = runs.last().cloned();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "run": run, "pipeline": runs })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// The version to serve again.
    version: i64,
    /// `commit` (default) or `pull-request`.
    #[serde(default)]
    promote: Option<cairn_spec::Promotion>,
}

/// Rolls a model back to an earlier version through Git: a commit that
/// pins the model to that version's artifact digest, then a sync.
async fn rollback_model(
    State(s): State<AppState>,
    Path(path): Path<NamePath>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let request: Rollback = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid body: {e} (expected {{\"version\": N}})"),
        )
    })?;
    let endpoint = find_model(&s, &path.scoped())?;
    let name = endpoint.key.name.to_string();
    let versions = s.controller.store().model_versions(&endpoint.key)?;
    let Some(target) = versions.iter().find(|v| v.version == request.version) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "model `{name}` has no version {} (versions: {})",
                request.version,
                versions
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if target.sha256.is_empty() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "version {} has no artifact digest to pin (a process model)",
                target.version
            ),
        ));
    }
    let message = format!(
        "Roll back model {name} to version {} (sha256 {})\n\nPins spec.from.sha256 of model {} to the artifact of version {}, produced by run {} and first served from commit {}.",
        target.version,
        &target.sha256[..12],
        endpoint.key.qualified_name(),
        target.version,
        target.run_id.map_or("-".into(), |r| r.to_string()),
        &target.commit[..target.commit.len().min(12)],
    );
    let controller = s.controller.clone();
    let key = endpoint.key.clone();
    let sha = target.sha256.clone();
    let promotion = request.promote.unwrap_or(cairn_spec::Promotion::Commit);
    let pinned =
        tokio::task::spawn_blocking(move || controller.pin_model(&key, &sha, &message, promotion))
            .await?
            .map_err(|e| match e {
                cairn_controller::PinError::Unknown(m) => ApiError(StatusCode::NOT_FOUND, m),
                cairn_controller::PinError::Unsupported(m) => {
                    ApiError(StatusCode::UNPROCESSABLE_ENTITY, m)
                }
                cairn_controller::PinError::Writeback(
                    w @ cairn_source::writeback::WritebackError::NotPinnable(_),
                ) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, w.to_string()),
                other => ApiError(StatusCode::CONFLICT, other.to_string()),
            })?;
    if pinned.on_followed_branch {
        let _ = s
            .trigger
            .send(Trigger::Changed {
                detected_at: cairn_store::now(),
            })
            .await;
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "pinned": pinned, "version": target.version })),
    ))
}

/// A run of a job, as `/api/v1/[projects/{project}/]jobs/{name}/runs/{number}`
/// names it.
#[derive(Deserialize)]
struct RunPath {
    project: Option<String>,
    name: String,
    number: i64,
}

impl RunPath {
    fn job(&self) -> NamePath {
        NamePath {
            project: self.project.clone(),
            name: self.name.clone(),
        }
    }
}

async fn job_run(
    State(s): State<AppState>,
    Path(path): Path<RunPath>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let number = path.number;
    let key = find_job(&s, &path.job(), q.project)?;
    let run =
        s.controller.store().run(&key, number)?.ok_or_else(|| {
            ApiError(StatusCode::NOT_FOUND, format!("{key} has no run #{number}"))
        })?;
    let artifacts = s.controller.store().artifacts(run.id)?;
    let mut value = serde_json::to_value(&run)?;
    value["artifacts"] = serde_json::to_value(artifacts)?;
    Ok(axum::Json(value))
}

async fn run_logs(
    State(s): State<AppState>,
    Path(path): Path<RunPath>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<Response> {
    let number = path.number;
    let key = find_job(&s, &path.job(), q.project)?;
    let source = s
        .controller
        .runtime()
        .logs(&LogTarget::Run(key.clone(), number))
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    let follow = q.follow.unwrap_or(false);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let store = s.controller.store().clone();
    tokio::spawn(async move {
        let mut offset = 0u64;
        loop {
            // Read what is there.
            if let Ok(mut f) = tokio::fs::File::open(&source.path).await
                && f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
            {
                let mut buf = Vec::new();
                if f.read_to_end(&mut buf).await.is_ok() && !buf.is_empty() {
                    offset += buf.len() as u64;
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return;
                    }
                }
            }
            if !follow || !source.live {
                return;
            }
            let finished = store
                .run(&key, number)
                .ok()
                .flatten()
                .is_none_or(|r| r.state.is_final());
            if finished {
                // One more read for the last lines, then stop.
                if let Ok(mut f) = tokio::fs::File::open(&source.path).await
                    && f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                {
                    let mut buf = Vec::new();
                    if f.read_to_end(&mut buf).await.is_ok() && !buf.is_empty() {
                        let _ = tx.send(Ok(Bytes::from(buf))).await;
                    }
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

async fn git_hook(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let event = match hooks::verify_and_parse(&s.hooks, &headers, &body) {
        Ok(e) => e,
        Err(e) => return (e.status(), axum::Json(json!({"error": e.to_string()}))).into_response(),
    };
    let watched = &s.controller.settings().rev;
    match event.branch() {
        None => {
            return (
                StatusCode::OK,
                axum::Json(json!({"accepted": false, "reason": "not a branch push"})),
            )
                .into_response();
        }
        Some(b) if b != watched && event.git_ref.as_deref() != Some(watched.as_str()) => {
            return (
                StatusCode::OK,
                axum::Json(json!({"accepted": false, "reason": format!("branch `{b}` is not watched (`{watched}` is)")})),
            )
                .into_response();
        }
        Some(_) => {}
    }
    let detected_at = cairn_store::now();
    if s.remote
        && let Err(e) = s.controller.fetch().await
    {
        return (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"error": format!("fetch failed: {e}")})),
        )
            .into_response();
    }
    let _ = s.trigger.send(Trigger::Changed { detected_at }).await;
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({"accepted": true, "provider": event.provider.to_string(), "after": event.after}),
        ),
    )
        .into_response()
}

async fn app_proxy(
    State(s): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
) -> Response {
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let path = NamePath {
        project: param("project"),
        name: param("name").unwrap_or_default(),
    };
    let app = match find_app(&s, &path) {
        Ok(app) => app,
        Err(e) => return e.into_response(),
    };
    // Mounted where the request came in: the bare prefix or the project's.
    let prefix = match &path.project {
        Some(p) => format!("/projects/{p}/apps/{}", path.name),
        None => format!("/apps/{}", path.name),
    };
    match app.and_then(|a| s.controller.runtime().app_upstream(&a)) {
        Some(upstream) => proxy::forward(&s.proxy, req, upstream, &prefix).await,
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "application `{}` has no ready replica (see `cairn status`)\n",
                path.scoped()
            ),
        )
            .into_response(),
    }
}
