//! The HTTP API (`/api/v1/...`), the Git webhook (`/hooks/git`) and the
//! application proxy (`/apps/NAME/`).
//!
//! Jobs, models and applications are named as in [`crate::names`]: every
//! per-resource route also has its form in a project
//! (`/api/v1/projects/PROJECT/jobs/NAME/...`,
//! `/projects/PROJECT/apps/NAME/`), and the bare form answers 409 when
//! several projects use the name.

use crate::auth::layer::Resolve;
use crate::auth::rules::{Listener, Named, Routes, Rule, Table};
use crate::auth::{Caller, Role};
use crate::contract::ToApi;
use crate::hooks::{self, WebhookConfig};
use crate::names::{NamePath, resolved};
use crate::proxy::{self, ProxyClient};
use crate::runtime::AnyRuntime;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorBody;
use cairn_api::audit::AuditLog;
use cairn_api::drift::DriftVerdict;
use cairn_api::hooks::{HookAccepted, HookAnswer, HookIgnored};
use cairn_api::registry::{RollbackAnswer, RollbackRequest};
use cairn_api::runs::{
    LimitQuery, LogQuery, ProjectQuery, Run, RunList, RunQuery, StartRun, StartedRun,
};
use cairn_api::status::{LastSync, Status};
use cairn_controller::{Controller, Trigger};
use cairn_runtime::{LogTarget, Runtime};
use cairn_runtime_embedded::RunRequest;
use cairn_spec::{Kind, Lookup, ResourceKey, ScopedName};
use serde::Deserialize;
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

/// The controller's routes, with what each needs of its caller.
pub fn routes(state: AppState, listener: Listener) -> Table {
    use Named::{App, Job, Model};
    use Role::{Editor, Viewer};
    let job = |rest| ("/api/v1", "jobs", rest);
    let model = |rest| ("/api/v1", "models", rest);
    let app = |rest| ("", "apps", rest);
    Routes::new()
        .scoped(
            Method::GET,
            job("/runs"),
            Rule::Project(Job, Viewer),
            job_runs,
        )
        .scoped(
            Method::POST,
            job("/runs"),
            Rule::Project(Job, Editor),
            start_run,
        )
        .scoped(
            Method::GET,
            job("/runs/{number}"),
            Rule::Project(Job, Viewer),
            job_run,
        )
        .scoped(
            Method::GET,
            job("/runs/{number}/logs"),
            Rule::Project(Job, Viewer),
            run_logs,
        )
        .scoped(
            Method::POST,
            model("/rollback"),
            Rule::Project(Model, Editor),
            rollback_model,
        )
        .scoped(
            Method::POST,
            model("/drift/evaluate"),
            Rule::Project(Model, Editor),
            evaluate_drift,
        )
        .scoped_any(app(""), Rule::Project(App, Viewer), app_proxy)
        .scoped_any(app("/"), Rule::Project(App, Viewer), app_proxy)
        .scoped_any(app("/{*rest}"), Rule::Project(App, Viewer), app_proxy)
        .route(Method::GET, "/healthz", Rule::Public, healthz)
        .route(
            Method::GET,
            "/api/v1/openapi.json",
            Rule::Public,
            crate::openapi::openapi_json_route,
        )
        .route(Method::GET, "/api/v1/status", Rule::Signed, status)
        .route(Method::GET, "/api/v1/sync", Rule::Signed, last_sync)
        .route(Method::GET, "/api/v1/runs", Rule::Signed, recent_runs)
        .route(Method::GET, "/api/v1/audit", Rule::Signed, audit)
        .route(Method::POST, "/hooks/git", Rule::Webhook, git_hook)
        .finish(state, listener)
}

/// Finds the projects of the jobs, models and applications routes name.
pub struct Resolver {
    /// The controller (jobs, applications).
    pub controller: Arc<Controller<AnyRuntime>>,
}

impl Resolve for Resolver {
    fn project_of(&self, named: Named, wanted: &ScopedName) -> Lookup<String> {
        let project = |k: &ResourceKey| k.project.as_ref().map(|p| p.to_string());
        match named {
            Named::Job => {
                let jobs = match self.controller.store().applied_keys(Kind::Job) {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!("resolving a job's project: {e}");
                        Vec::new()
                    }
                };
                Lookup::among(wanted, jobs.iter().filter_map(|k| Some((k, project(k)?))))
            }
            Named::Model => {
                let gateway = self.controller.runtime().gateway();
                match gateway.lookup(wanted) {
                    Lookup::Found(e) => project(&e.key).map_or(Lookup::NotFound, Lookup::Found),
                    Lookup::Ambiguous(p) => Lookup::Ambiguous(p),
                    Lookup::NotFound => Lookup::NotFound,
                }
            }
            Named::App => {
                let apps = self.controller.runtime().apps_named(&wanted.name);
                Lookup::among(wanted, apps.iter().filter_map(|k| Some((k, project(k)?))))
            }
        }
    }
}

/// `GET /healthz`: `ok` while the server answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server answers", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The served model a route names (see [`crate::gateway::resolve_model`]).
pub(crate) fn find_model(
    s: &AppState,
    wanted: &ScopedName,
) -> ApiResult<Arc<cairn_gateway::service::Endpoint>> {
    crate::gateway::resolve_model(&s.controller.runtime().gateway(), wanted)
        .map_err(|(status, message)| ApiError(status, message))
}

/// Scores the model's last window now and returns the verdict (also stored
/// and published).
#[utoipa::path(post, path = "/api/v1/models/{name}/drift/evaluate", tag = "models",
    params(("name" = String, Path, description = "The model")),
    responses(
        (status = 200, description = "The verdict", body = DriftVerdict),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The model's drift is not monitored, or several projects serve a model of that name", body = ErrorBody),
        (status = 500, description = "The evaluation failed", body = ErrorBody),
    ))]
pub(crate) async fn evaluate_drift(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<NamePath>,
) -> ApiResult<axum::Json<DriftVerdict>> {
    use cairn_runtime_embedded::DriftError;
    let endpoint = find_model(&s, &path.scoped())?;
    match s.controller.runtime().evaluate_drift(&endpoint.key).await {
        Ok(verdict) => {
            let verdict = verdict.to_api();
            let _ = s.controller.store().audit_as(
                &caller.actor(),
                None,
                Some(&endpoint.key),
                "drift-evaluate",
                &match verdict.drifted {
                    Some(true) => "drifted".to_string(),
                    Some(false) => "no drift".to_string(),
                    None => "not scored".to_string(),
                },
            );
            Ok(axum::Json(verdict))
        }
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
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ErrorBody::new(self.1))).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The last finished sync.
#[utoipa::path(get, path = "/api/v1/sync", tag = "controller",
    responses(
        (status = 200, description = "The last sync", body = LastSync),
        (status = 500, description = "The store failed", body = ErrorBody),
    ))]
pub(crate) async fn last_sync(State(s): State<AppState>) -> ApiResult<axum::Json<LastSync>> {
    Ok(axum::Json(LastSync {
        last_sync: s.controller.store().last_sync()?.map(|r| r.to_api()),
    }))
}

/// What `GET /api/v1/status` answers (the dashboard's overview too).
pub(crate) fn status_of(
    controller: &Controller<AnyRuntime>,
) -> Result<Status, cairn_store::StoreError> {
    let store = controller.store();
    let resources = store.statuses()?.to_api();
    let last_sync = store.last_sync()?.map(|r| r.to_api());
    let (origin, diagnostics, errors) = controller.with_latest(|l| {
        (
            l.origin.as_ref().map(ToApi::to_api),
            l.report.to_api(),
            l.report.errors(),
        )
    });
    let repository = controller
        .source()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .display()
        .to_string();
    Ok(Status {
        repository,
        revision: controller.settings().rev.clone(),
        origin,
        last_sync,
        errors,
        diagnostics,
        resources,
        gpus: controller.runtime().gpus().devices.to_api(),
    })
}

/// The repository, the last sync, spec diagnostics and every resource with
/// its phase.
#[utoipa::path(get, path = "/api/v1/status", tag = "controller",
    responses(
        (status = 200, description = "The status", body = Status),
        (status = 500, description = "The store failed", body = ErrorBody),
    ))]
pub(crate) async fn status(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Status>> {
    let mut status = status_of(&s.controller)?;
    visible_resources(&mut status, &caller);
    Ok(axum::Json(status))
}

/// Leaves in `status` the resources `caller` may see: those of its
/// projects, and global ones (projects, pools, plugins) for everyone signed
/// in.
pub(crate) fn visible_resources(status: &mut Status, caller: &Caller) {
    status.resources.retain(|r| {
        let project = match r.kind {
            cairn_api::status::Kind::Project => Some(r.name.as_str()),
            _ => r.project.as_deref(),
        };
        project.is_none_or(|p| caller.sees(Some(p)))
    });
}

/// The applied job a route names: its project from the route, else from
/// `?project=` (or a run request's `project`); 404 when none, 409 naming
/// the projects when a bare name is a job of several.
fn find_job(s: &AppState, path: &NamePath, project: Option<String>) -> ApiResult<ResourceKey> {
    let wanted = ScopedName {
        project: path.project.clone().or(project),
        name: path.name.clone(),
    };
    let jobs = s.controller.store().applied_keys(Kind::Job)?;
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

/// The runs of a job, newest first.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/runs", tag = "controller",
    params(("name" = String, Path, description = "The job"), RunQuery),
    responses(
        (status = 200, description = "The job's runs", body = RunList),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Several projects have a job of that name", body = ErrorBody),
    ))]
pub(crate) async fn job_runs(
    State(s): State<AppState>,
    Path(path): Path<NamePath>,
    Query(q): Query<RunQuery>,
) -> ApiResult<axum::Json<RunList>> {
    let key = find_job(&s, &path, q.project)?;
    let runs = s.controller.store().runs(&key, q.limit.unwrap_or(50))?;
    Ok(axum::Json(RunList {
        runs: runs.to_api(),
    }))
}

/// The recent runs of every job, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "controller",
    params(LimitQuery),
    responses(
        (status = 200, description = "Recent runs", body = RunList),
        (status = 500, description = "The store failed", body = ErrorBody),
    ))]
pub(crate) async fn recent_runs(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<LimitQuery>,
) -> ApiResult<axum::Json<RunList>> {
    let runs: Vec<Run> = s
        .controller
        .store()
        .recent_runs(q.limit.unwrap_or(50))?
        .to_api();
    Ok(axum::Json(RunList {
        runs: runs
            .into_iter()
            .filter(|r| caller.sees(r.project.as_deref()))
            .collect(),
    }))
}

/// What the controller did, and why: newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "controller",
    params(LimitQuery),
    responses(
        (status = 200, description = "The audit log", body = AuditLog),
        (status = 500, description = "The store failed", body = ErrorBody),
    ))]
pub(crate) async fn audit(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<LimitQuery>,
) -> ApiResult<axum::Json<AuditLog>> {
    let entries = s.controller.store().audit_log(q.limit.unwrap_or(100))?;
    Ok(axum::Json(AuditLog {
        entries: entries
            .iter()
            .filter(|e| {
                let key = e.resource.as_deref().and_then(ResourceKey::from_id);
                let project = key.as_ref().map(|k| match (k.kind, &k.project) {
                    (Kind::Project, _) => k.name.as_str(),
                    (_, Some(p)) => p.as_str(),
                    (_, None) => "",
                });
                match project {
                    Some("") => true,
                    p => caller.sees(p),
                }
            })
            .map(ToApi::to_api)
            .collect(),
    }))
}

/// Runs a job now, its upstream jobs first unless told otherwise.
#[utoipa::path(post, path = "/api/v1/jobs/{name}/runs", tag = "controller",
    params(("name" = String, Path, description = "The job"), ProjectQuery),
    request_body(content = Option<StartRun>, description = "Parameters to override; may be empty"),
    responses(
        (status = 202, description = "The runs started", body = StartedRun),
        (status = 400, description = "The body is not a run request", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job cannot run now, or several projects have a job of that name", body = ErrorBody),
    ))]
pub(crate) async fn start_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<NamePath>,
    Query(q): Query<ProjectQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<StartedRun>)> {
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
            actor: caller.actor(),
        })
        .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    let pipeline: Vec<Run> = runs.to_api();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(StartedRun {
            run: pipeline.last().cloned(),
            pipeline,
        }),
    ))
}

/// A rollback's promotion as the spec's.
/// Pins `model` to the artifact `sha256` through Git (a commit on the
/// followed branch, or a branch for review) and, when the followed branch
/// moved, asks for a sync: rollbacks and promotions of runs alike.
pub(crate) async fn pin_and_sync(
    s: &AppState,
    model: &cairn_spec::ResourceKey,
    sha256: &str,
    message: String,
    promotion: cairn_spec::Promotion,
) -> ApiResult<cairn_controller::Pinned> {
    let controller = s.controller.clone();
    let key = model.clone();
    let sha = sha256.to_string();
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
    Ok(pinned)
}

pub(crate) fn promotion(p: cairn_api::registry::Promotion) -> cairn_spec::Promotion {
    use cairn_api::registry::Promotion as P;
    match p {
        P::Commit => cairn_spec::Promotion::Commit,
        P::PullRequest => cairn_spec::Promotion::PullRequest,
        P::Auto => cairn_spec::Promotion::Auto,
    }
}

/// Rolls a model back to an earlier version through Git: a commit that
/// pins the model to that version's artifact digest, then a sync.
#[utoipa::path(post, path = "/api/v1/models/{name}/rollback", tag = "models",
    params(("name" = String, Path, description = "The model")),
    request_body = RollbackRequest,
    responses(
        (status = 202, description = "The pin was committed", body = RollbackAnswer),
        (status = 400, description = "The body is not a rollback request", body = ErrorBody),
        (status = 404, description = "No such model or version", body = ErrorBody),
        (status = 409, description = "Git refused the pin", body = ErrorBody),
        (status = 422, description = "The version cannot be pinned", body = ErrorBody),
    ))]
pub(crate) async fn rollback_model(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<NamePath>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<RollbackAnswer>)> {
    let request: RollbackRequest = serde_json::from_slice(&body).map_err(|e| {
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
    ) + &format!("\n\nRequested-by: {}", caller.actor());
    let promotion = request
        .promote
        .map_or(cairn_spec::Promotion::Commit, promotion);
    let pinned = pin_and_sync(&s, &endpoint.key, &target.sha256, message, promotion).await?;
    let _ = s.controller.store().audit_as(
        &caller.actor(),
        Some(&pinned.commit),
        Some(&endpoint.key),
        "rollback",
        &format!(
            "to version {} by commit {}",
            target.version,
            &pinned.commit[..12]
        ),
    );
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RollbackAnswer {
            pinned: pinned.to_api(),
            version: target.version,
        }),
    ))
}

/// A run of a job, as `/api/v1/[projects/{project}/]jobs/{name}/runs/{number}`
/// names it.
#[derive(Deserialize)]
pub(crate) struct RunPath {
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

/// One run of a job, with the files it produced.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/runs/{number}", tag = "controller",
    params(
        ("name" = String, Path, description = "The job"),
        ("number" = i64, Path, description = "The run's number"),
        ProjectQuery,
    ),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 404, description = "No such job or run", body = ErrorBody),
        (status = 409, description = "Several projects have a job of that name", body = ErrorBody),
    ))]
pub(crate) async fn job_run(
    State(s): State<AppState>,
    Path(path): Path<RunPath>,
    Query(q): Query<ProjectQuery>,
) -> ApiResult<axum::Json<Run>> {
    let number = path.number;
    let key = find_job(&s, &path.job(), q.project)?;
    let run =
        s.controller.store().run(&key, number)?.ok_or_else(|| {
            ApiError(StatusCode::NOT_FOUND, format!("{key} has no run #{number}"))
        })?;
    let artifacts = s.controller.store().artifacts(run.id)?;
    Ok(axum::Json(Run {
        artifacts: Some(artifacts.to_api()),
        ..run.to_api()
    }))
}

/// A run's log as text; with `follow`, streamed until the run ends.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/runs/{number}/logs", tag = "controller",
    params(
        ("name" = String, Path, description = "The job"),
        ("number" = i64, Path, description = "The run's number"),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 404, description = "No such job, run or log", body = ErrorBody),
        (status = 409, description = "Several projects have a job of that name", body = ErrorBody),
    ))]
pub(crate) async fn run_logs(
    State(s): State<AppState>,
    Path(path): Path<RunPath>,
    Query(q): Query<LogQuery>,
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

/// A push webhook (GitHub, GitLab, Gitea, Forgejo, Gogs or GitHub-style):
/// checks its signature and asks for a sync when it is a push to the
/// followed branch.
#[utoipa::path(post, path = "/hooks/git", tag = "hooks",
    request_body(content = Object, description = "The provider's push payload (JSON, or form-encoded `payload=`)"),
    responses(
        (status = 200, description = "Not a push to the followed branch", body = HookAnswer),
        (status = 202, description = "A sync was asked for", body = HookAnswer),
        (status = 400, description = "The payload could not be read", body = ErrorBody),
        (status = 401, description = "The signature is missing or wrong", body = ErrorBody),
        (status = 502, description = "Fetching the remote repository failed", body = ErrorBody),
    ))]
pub(crate) async fn git_hook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = match hooks::verify_and_parse(&s.hooks, &headers, &body) {
        Ok(e) => e,
        Err(e) => return ApiError(e.status(), e.to_string()).into_response(),
    };
    let watched = &s.controller.settings().rev;
    let ignored = |reason: String| {
        (
            StatusCode::OK,
            axum::Json(HookAnswer::Ignored(HookIgnored {
                accepted: false,
                reason,
            })),
        )
            .into_response()
    };
    match event.branch() {
        None => return ignored("not a branch push".into()),
        Some(b) if b != watched && event.git_ref.as_deref() != Some(watched.as_str()) => {
            return ignored(format!("branch `{b}` is not watched (`{watched}` is)"));
        }
        Some(_) => {}
    }
    let detected_at = cairn_store::now();
    if s.remote
        && let Err(e) = s.controller.fetch().await
    {
        return ApiError(StatusCode::BAD_GATEWAY, format!("fetch failed: {e}")).into_response();
    }
    let _ = s.trigger.send(Trigger::Changed { detected_at }).await;
    (
        StatusCode::ACCEPTED,
        axum::Json(HookAnswer::Accepted(HookAccepted {
            accepted: true,
            provider: event.provider.to_string(),
            after: event.after,
        })),
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
