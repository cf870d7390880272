//! `/api/v1/experiments`: experiments and their runs as Cairn shows them
//! (with the job run, commit, artifacts and model versions of each),
//! metric histories, comparisons, and the promotion of a run's artifact to
//! a model through Git. Every answer holds only what the caller may see.

use crate::api::{ApiError, ApiResult, AppState, find_model, pin_and_sync, promotion};
use crate::auth::rules::{Listener, Routes, Rule, Table};
use crate::auth::{Caller, Role};
use crate::contract::ToApi;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use cairn_api::ErrorBody;
use cairn_api::experiments::{
    CompareQuery, Comparison, Experiment, ExperimentList, JobRunLink, MetricHistory, MetricPoint,
    MetricRow, ParamRow, ProducedVersion, PromoteAnswer, PromoteRequest, RunArtifact, RunListQuery,
    TrackedRun, TrackedRunList,
};
use cairn_spec::ScopedName;
use cairn_store::Store;
use cairn_store::tracking::{self, RunQuery, TrackingError, ViewType};
use std::collections::BTreeSet;

/// The routes, with what each needs of its caller.
pub fn routes(state: AppState, listener: Listener) -> Table {
    Routes::new()
        .route(
            Method::GET,
            "/api/v1/experiments",
            Rule::Signed,
            list_experiments,
        )
        .route(
            Method::GET,
            "/api/v1/experiments/{id}",
            Rule::Found(Role::Viewer),
            get_experiment,
        )
        .route(
            Method::GET,
            "/api/v1/experiments/{id}/runs",
            Rule::Found(Role::Viewer),
            list_runs,
        )
        .route(
            Method::GET,
            "/api/v1/experiments/runs/{run}",
            Rule::Found(Role::Viewer),
            get_run,
        )
        .route(
            Method::GET,
            "/api/v1/experiments/runs/{run}/metrics/{key}",
            Rule::Found(Role::Viewer),
            metric_history,
        )
        .route(
            Method::GET,
            "/api/v1/experiments/compare",
            Rule::Found(Role::Viewer),
            compare,
        )
        .route(
            Method::POST,
            "/api/v1/experiments/runs/{run}/promote",
            Rule::Found(Role::Editor),
            promote,
        )
        .finish(state, listener)
}

fn tracking_error(e: TrackingError) -> ApiError {
    match e {
        TrackingError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        TrackingError::Invalid(m) | TrackingError::AlreadyExists(m) => {
            ApiError(StatusCode::BAD_REQUEST, m)
        }
        TrackingError::Store(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn experiment(e: tracking::Experiment) -> Experiment {
    Experiment {
        id: e.id.to_string(),
        name: e.name,
        project: e.project,
        job: e.job,
        lifecycle: e.lifecycle.as_str().into(),
        created_at: time(e.created_ms),
        updated_at: time(e.updated_ms),
        tags: e.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// A run as Cairn shows it: with its job run, artifacts and model versions.
pub(crate) fn tracked_run(store: &Store, run: tracking::Run, experiment: &str) -> TrackedRun {
    let job_run = run
        .info
        .job_run
        .and_then(|id| store.run_by_id(id).ok().flatten());
    let model_versions = run
        .info
        .job_run
        .and_then(|id| store.versions_of_run(id).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(key, version, state)| ProducedVersion {
            model: key.name.to_string(),
            project: key.project.map(|p| p.to_string()),
            version,
            state,
        })
        .collect();
    TrackedRun {
        commit: run.tag("mlflow.source.git.commit").map(str::to_string),
        parent: run.tag("mlflow.parentRunId").map(str::to_string),
        id: run.info.id,
        experiment_id: run.info.experiment_id.to_string(),
        experiment: experiment.to_string(),
        name: run.info.name,
        status: run.info.status.as_str().into(),
        user: run.info.user,
        started_at: run.info.start_ms.map(time),
        ended_at: run.info.end_ms.map(time),
        params: run.params.into_iter().map(|p| (p.key, p.value)).collect(),
        metrics: run
            .metrics
            .into_iter()
            .map(|m| (m.key, finite(m.value)))
            .collect(),
        tags: run.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        datasets: run
            .inputs
            .iter()
            .map(|d| format!("{}@{}", d.dataset.name, d.dataset.digest))
            .collect(),
        job_run: job_run.map(|r| JobRunLink {
            artifacts: store
                .artifacts(r.id)
                .unwrap_or_default()
                .into_iter()
                .map(|a| RunArtifact {
                    output: a.output,
                    sha256: a.sha256,
                    size: a.size,
                })
                .collect(),
            job: r.job_name,
            project: r.project,
            number: r.number,
            state: r.state.to_api().as_str().into(),
            sweep: r.sweep,
            best: r.best,
        }),
        model_versions,
    }
}

/// A run the caller may see (404 when it may not know of it either).
fn visible_run(
    store: &Store,
    caller: &Caller,
    id: &str,
    role: Role,
) -> ApiResult<(tracking::Run, tracking::Experiment)> {
    let t = store.tracking();
    let run = t.run(id).map_err(tracking_error)?;
    let e = t
        .experiment(run.info.experiment_id)
        .map_err(tracking_error)?;
    require(caller, &e, role)?;
    Ok((run, e))
}

fn require(caller: &Caller, e: &tracking::Experiment, role: Role) -> ApiResult<()> {
    match &e.project {
        Some(p) => caller
            .require(p, role)
            .map_err(|d| ApiError(d.status, d.message)),
        None if caller.principal.is_admin() => Ok(()),
        None => Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "experiment `{}` belongs to no project: only operators may use it",
                e.name
            ),
        )),
    }
}

/// The experiments the caller may see.
#[utoipa::path(get, path = "/api/v1/experiments", tag = "experiments",
    responses(
        (status = 200, description = "Experiments, newest first", body = ExperimentList),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn list_experiments(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<ExperimentList>> {
    let store = s.controller.store();
    let page = store
        .tracking()
        .search_experiments(
            "",
            ViewType::ActiveOnly,
            tracking::limits::SEARCH_PAGE,
            &[],
            None,
        )
        .map_err(tracking_error)?;
    Ok(axum::Json(ExperimentList {
        experiments: page
            .items
            .into_iter()
            .filter(|e| caller.sees(e.project.as_deref()))
            .map(experiment)
            .collect(),
    }))
}

fn experiment_id(id: &str) -> ApiResult<i64> {
    id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not an experiment id (a number)"),
        )
    })
}

/// An experiment.
#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments",
    params(("id" = String, Path, description = "The experiment's id")),
    responses(
        (status = 200, description = "The experiment", body = Experiment),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 403, description = "Not the caller's", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ))]
pub(crate) async fn get_experiment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Experiment>> {
    let e = s
        .controller
        .store()
        .tracking()
        .experiment(experiment_id(&id)?)
        .map_err(tracking_error)?;
    require(&caller, &e, Role::Viewer)?;
    Ok(axum::Json(experiment(e)))
}

/// Runs of an experiment, filtered and ordered with MLflow's syntax.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/runs", tag = "experiments",
    params(("id" = String, Path, description = "The experiment's id"), RunListQuery),
    responses(
        (status = 200, description = "Its runs", body = TrackedRunList),
        (status = 400, description = "A bad filter, order or page token", body = ErrorBody),
        (status = 403, description = "Not the caller's", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ))]
pub(crate) async fn list_runs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RunListQuery>,
) -> ApiResult<axum::Json<TrackedRunList>> {
    let store = s.controller.store();
    let t = store.tracking();
    let e = t.experiment(experiment_id(&id)?).map_err(tracking_error)?;
    require(&caller, &e, Role::Viewer)?;
    let view = match q.view.as_deref() {
        None | Some("active") => ViewType::ActiveOnly,
        Some("deleted") => ViewType::DeletedOnly,
        Some("all") => ViewType::All,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`view` is active, deleted or all, not `{other}`"),
            ));
        }
    };
    let page = t
        .search_runs(&RunQuery {
            experiment_ids: vec![e.id],
            filter: q.filter.unwrap_or_default(),
            view,
            max_results: q.max_results.unwrap_or(100),
            order_by: q
                .order_by
                .map(|o| {
                    o.split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            page_token: q.page_token,
        })
        .map_err(tracking_error)?;
    Ok(axum::Json(TrackedRunList {
        runs: page
            .items
            .into_iter()
            .map(|r| tracked_run(store, r, &e.name))
            .collect(),
        experiment: experiment(e),
        next_page_token: page.next_page_token,
    }))
}

/// A tracked run, with its job run, artifacts and model versions.
#[utoipa::path(get, path = "/api/v1/experiments/runs/{run}", tag = "experiments",
    params(("run" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = TrackedRun),
        (status = 403, description = "Not the caller's", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn get_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(run): Path<String>,
) -> ApiResult<axum::Json<TrackedRun>> {
    let store = s.controller.store();
    let (run, e) = visible_run(store, &caller, &run, Role::Viewer)?;
    Ok(axum::Json(tracked_run(store, run, &e.name)))
}

/// Every point of a metric in a run.
#[utoipa::path(get, path = "/api/v1/experiments/runs/{run}/metrics/{key}", tag = "experiments",
    params(
        ("run" = String, Path, description = "The run's id"),
        ("key" = String, Path, description = "The metric"),
    ),
    responses(
        (status = 200, description = "The metric's history", body = MetricHistory),
        (status = 403, description = "Not the caller's", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn metric_history(
    State(s): State<AppState>,
    caller: Caller,
    Path((run, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<MetricHistory>> {
    let store = s.controller.store();
    visible_run(store, &caller, &run, Role::Viewer)?;
    let mut points = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .tracking()
            .metric_history(&run, &key, tracking::limits::HISTORY_PAGE, token.as_deref())
            .map_err(tracking_error)?;
        points.extend(page.items.into_iter().map(|m| MetricPoint {
            step: m.step,
            timestamp: time(m.timestamp_ms),
            value: finite(m.value),
        }));
        match page.next_page_token {
            Some(next) if points.len() < 1_000_000 => token = Some(next),
            _ => break,
        }
    }
    Ok(axum::Json(MetricHistory { run, key, points }))
}

/// Runs side by side: their parameters and latest metrics, row by row.
#[utoipa::path(get, path = "/api/v1/experiments/compare", tag = "experiments",
    params(CompareQuery),
    responses(
        (status = 200, description = "The comparison", body = Comparison),
        (status = 400, description = "Fewer than 2 or more than 20 runs", body = ErrorBody),
        (status = 403, description = "A run is not the caller's", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn compare(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<CompareQuery>,
) -> ApiResult<axum::Json<Comparison>> {
    let ids: Vec<&str> = q
        .runs
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if !(2..=20).contains(&ids.len()) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("compare 2 to 20 runs (`?runs=ID,ID`); {} given", ids.len()),
        ));
    }
    let store = s.controller.store();
    let mut runs = Vec::new();
    for id in ids {
        let (run, e) = visible_run(store, &caller, id, Role::Viewer)?;
        runs.push(tracked_run(store, run, &e.name));
    }
    Ok(axum::Json(comparison(runs)))
}

/// The rows of a comparison.
pub(crate) fn comparison(runs: Vec<TrackedRun>) -> Comparison {
    let param_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    let metric_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let params = param_keys
        .into_iter()
        .map(|k| {
            let values: Vec<Option<String>> =
                runs.iter().map(|r| r.params.get(k).cloned()).collect();
            ParamRow {
                key: k.clone(),
                differs: values.windows(2).any(|w| w[0] != w[1]),
                values,
            }
        })
        .collect();
    let metrics = metric_keys
        .into_iter()
        .map(|k| {
            let values: Vec<Option<f64>> = runs
                .iter()
                .map(|r| r.metrics.get(k).copied().flatten())
                .collect();
            MetricRow {
                key: k.clone(),
                differs: values.windows(2).any(|w| w[0] != w[1]),
                values,
            }
        })
        .collect();
    Comparison {
        runs,
        params,
        metrics,
    }
}

/// Promotes a run: pins the model's `from` to the artifact the run
/// produced, by a commit on the followed branch or on a branch for review.
#[utoipa::path(post, path = "/api/v1/experiments/runs/{run}/promote", tag = "experiments",
    params(("run" = String, Path, description = "The run's id")),
    request_body = PromoteRequest,
    responses(
        (status = 202, description = "The pin was committed", body = PromoteAnswer),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 403, description = "Not the caller's", body = ErrorBody),
        (status = 404, description = "No such run or model", body = ErrorBody),
        (status = 409, description = "The branch moved", body = ErrorBody),
        (status = 422, description = "The run did not produce the model's artifact", body = ErrorBody),
    ))]
pub(crate) async fn promote(
    State(s): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<PromoteAnswer>)> {
    let request: PromoteRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid body: {e} (expected {{\"model\": \"NAME\"}})"),
        )
    })?;
    let store = s.controller.store();
    let (run, e) = visible_run(store, &caller, &run_id, Role::Viewer)?;
    let wanted = ScopedName::parse(&request.model);
    let endpoint = find_model(&s, &wanted)?;
    let key = endpoint.key.clone();
    if let Some(p) = &key.project {
        caller
            .require(p.as_str(), Role::Editor)
            .map_err(|d| ApiError(d.status, d.message))?;
    } else if !caller.principal.is_admin() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only operators may promote to a model of no project".into(),
        ));
    }
    let unpromotable = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    let job_run = run
        .info
        .job_run
        .and_then(|id| store.run_by_id(id).ok().flatten())
        .ok_or_else(|| {
            unpromotable(format!(
                "run {run_id} was not started by a job: promotion pins a job output's artifact; log the model as a declared output of the job"
            ))
        })?;
    let applied = store
        .applied()?
        .into_iter()
        .find(|a| a.key == key)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("model `{}` is not applied", key.name),
            )
        })?;
    let from_job = applied
        .value
        .pointer("/spec/from/job")
        .and_then(|v| v.as_str());
    let from_output = applied
        .value
        .pointer("/spec/from/output")
        .and_then(|v| v.as_str());
    let (Some(from_job), Some(from_output)) = (from_job, from_output) else {
        return Err(unpromotable(format!(
            "model `{}` is not served from a job's output (`spec.from`): nothing to pin",
            key.name
        )));
    };
    if from_job != job_run.job_name
        || key.project.as_ref().map(|p| p.to_string()) != job_run.project
    {
        return Err(unpromotable(format!(
            "model `{}` takes job `{from_job}`'s output `{from_output}`; run {run_id} is a run of job `{}`",
            key.name, job_run.job_name
        )));
    }
    let artifact = store
        .artifacts(job_run.id)?
        .into_iter()
        .find(|a| a.output == from_output)
        .ok_or_else(|| {
            unpromotable(format!(
                "run {run_id} (job `{}` run #{}, {}) produced no output `{from_output}`",
                job_run.job_name,
                job_run.number,
                job_run.state.to_api().as_str()
            ))
        })?;
    let message = format!(
        "Promote run {} of experiment {} to model {}\n\nPins spec.from.sha256 of model {} to sha256 {}, output `{from_output}` of job `{}` run #{} (MLflow run {}).",
        run.info.name,
        e.name,
        key.name,
        key.qualified_name(),
        &artifact.sha256[..12],
        job_run.job_name,
        job_run.number,
        run.info.id,
    ) + &format!("\n\nRequested-by: {}", caller.actor());
    let mode = request
        .promote
        .map_or(cairn_spec::Promotion::Commit, promotion);
    let pinned = pin_and_sync(&s, &key, &artifact.sha256, message, mode).await?;
    let _ = store.audit_as(
        &caller.actor(),
        Some(&pinned.commit),
        Some(&key),
        "promote",
        &format!(
            "run {} ({}) by commit {}",
            run.info.id,
            e.name,
            &pinned.commit[..12]
        ),
    );
    let _ = store.tracking().log_batch(
        &run.info.id,
        &[],
        &[],
        &[tracking::KeyValue::new(
            "cairn.promoted",
            format!("{}@{}", key.qualified_name(), &pinned.commit[..12]),
        )],
    );
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(PromoteAnswer {
            pinned: pinned.to_api(),
            run: run.info.id,
            sha256: artifact.sha256,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(id: &str, params: &[(&str, &str)], metrics: &[(&str, f64)]) -> TrackedRun {
        TrackedRun {
            id: id.into(),
            experiment_id: "1".into(),
            experiment: "lab/train".into(),
            name: id.into(),
            status: "FINISHED".into(),
            user: "u".into(),
            started_at: None,
            ended_at: None,
            commit: None,
            parent: None,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            metrics: metrics
                .iter()
                .map(|(k, v)| (k.to_string(), Some(*v)))
                .collect(),
            tags: BTreeMap::new(),
            datasets: Vec::new(),
            job_run: None,
            model_versions: Vec::new(),
        }
    }

    #[test]
    fn a_comparison_marks_what_differs() {
        let c = comparison(vec![
            run("a", &[("C", "1"), ("solver", "lbfgs")], &[("acc", 0.9)]),
            run(
                "b",
                &[("C", "10"), ("solver", "lbfgs")],
                &[("acc", 0.9), ("loss", 0.2)],
            ),
        ]);
        let row = |k: &str| c.params.iter().find(|r| r.key == k).unwrap();
        assert!(row("C").differs);
        assert!(!row("solver").differs);
        let acc = c.metrics.iter().find(|r| r.key == "acc").unwrap();
        assert!(!acc.differs);
        let loss = c.metrics.iter().find(|r| r.key == "loss").unwrap();
        assert_eq!(loss.values, vec![None, Some(0.2)]);
        assert!(loss.differs);
    }
}
