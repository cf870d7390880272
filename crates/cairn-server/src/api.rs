//! The HTTP API (`/api/v1/...`), the Git webhook (`/hooks/git`) and the
//! application proxy (`/apps/NAME/`).

use crate::hooks::{self, WebhookConfig};
use crate::proxy::{self, ProxyClient};
use crate::runtime::AnyRuntime;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cairn_controller::{Controller, Trigger};
use cairn_runtime::{LogTarget, Runtime};
use cairn_runtime_embedded::RunRequest;
use cairn_spec::ResourceKey;
use cairn_spec::{Kind, Name};
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
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sync", get(last_sync))
        .route("/api/v1/runs", get(recent_runs))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/jobs/{name}/runs", get(job_runs).post(start_run))
        .route("/api/v1/jobs/{name}/runs/{number}", get(job_run))
        .route("/api/v1/jobs/{name}/runs/{number}/logs", get(run_logs))
        .route("/api/v1/models/{name}/rollback", post(rollback_model))
        .route("/api/v1/models/{name}/drift/evaluate", post(evaluate_drift))
        .route("/hooks/git", post(git_hook))
        .route("/apps/{name}", any(app_proxy))
        .route("/apps/{name}/", any(app_proxy))
        .route("/apps/{name}/{*rest}", any(app_proxy))
        .with_state(state)
}

/// `POST /api/v1/models/NAME/drift/evaluate`: scores the model's last
/// window now and returns the verdict (also stored and published).
async fn evaluate_drift(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    use cairn_runtime_embedded::DriftError;
    match s.controller.runtime().evaluate_drift(&name).await {
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

/// Finds the applied job called `name` (in `project` when given).
fn find_job(s: &AppState, name: &str, project: Option<&str>) -> ApiResult<ResourceKey> {
    let jobs: Vec<ResourceKey> = s
        .controller
        .store()
        .applied()?
        .into_iter()
        .map(|a| a.key)
        .filter(|k| k.kind == Kind::Job && k.name.as_str() == name)
        .filter(|k| project.is_none_or(|p| k.project.as_ref().map(Name::as_str) == Some(p)))
        .collect();
    match jobs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no job `{name}` is applied"),
        )),
        many => Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "`{name}` is a job of several projects ({}); add ?project=",
                many.iter()
                    .filter_map(|k| k.project.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

async fn job_runs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let key = find_job(&s, &name, q.project.as_deref())?;
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
    Path(name): Path<String>,
    Query(q): Query<ProjectQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let request: StartRun = if body.is_empty() {
        StartRun::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?
    };
    let project = request.project.or(q.project);
    let key = find_job(&s, &name, project.as_deref())?;
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
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let request: Rollback = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid body: {e} (expected {{\"version\": N}})"),
        )
    })?;
    let Some(endpoint) = s.controller.runtime().gateway().endpoint(&name) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no model `{name}` is served"),
        ));
    };
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
        "Roll back model {name} to version {} (sha256 {})\n\nPins spec.from.sha256 to the artifact of version {}, produced by run {} and first served from commit {}.",
        target.version,
        &target.sha256[..12],
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

async fn job_run(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, i64)>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Value>> {
    let key = find_job(&s, &name, q.project.as_deref())?;
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
    Path((name, number)): Path<(String, i64)>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<Response> {
    let key = find_job(&s, &name, q.project.as_deref())?;
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
    let name = params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match s.controller.runtime().app_upstream(&name) {
        Some(upstream) => proxy::forward(&s.proxy, req, upstream, &format!("/apps/{name}")).await,
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("application `{name}` has no ready replica (see `cairn status`)\n"),
        )
            .into_response(),
    }
}
