//! `/api/2.0/mlflow/runs/...` and `metrics/get-history`.

use super::errors::{MlError, MlResult};
use super::{Body, MlflowState, Params, convert, empty, experiment_id, page_size};
use crate::auth::{Caller, Role};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use cairn_api::mlflow::{
    CreateRun, DeleteTag, LogBatch, LogInputs, LogMetric, LogOutputs, MetricHistory,
    MetricHistoryQuery, RunAnswer, RunInfoAnswer, RunKeyValue, RunPage, RunRef, SearchRuns,
    UpdateRun,
};
use cairn_store::tracking::{
    KeyValue, Lifecycle, Metric, ModelOutput, NewRun, RunQuery, RunStatus,
};

/// MLflow's default page of runs.
const DEFAULT_PAGE: usize = 1000;

/// `POST runs/create`: needs `editor` in the experiment's project.
///
/// The run's `user_id` is the authenticated caller (`token:ID`,
/// `user:EMAIL`), not the `user_id` the client sends; the client's
/// `mlflow.user` tag is kept as sent.
pub async fn create(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<CreateRun>,
) -> MlResult<Json<RunAnswer>> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    let run = s.store.tracking().create_run(&NewRun {
        experiment_id: experiment.id,
        name: body.run_name.filter(|n| !n.is_empty()),
        user: caller.actor(),
        start_ms: body.start_time,
        tags: convert::to_pairs(&body.tags),
        job_run: None,
    })?;
    Ok(Json(RunAnswer {
        run: convert::run(&run),
    }))
}

/// `GET runs/get?run_id=` (or `run_uuid=`).
pub async fn get(
    State(s): State<MlflowState>,
    caller: Caller,
    Params(q): Params<RunRef>,
) -> MlResult<Json<RunAnswer>> {
    let run = s.run(&caller, q.run(), Role::Viewer)?;
    Ok(Json(RunAnswer {
        run: convert::run(&run),
    }))
}

/// `POST runs/update`: status, end time, name.
pub async fn update(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<UpdateRun>,
) -> MlResult<Json<RunInfoAnswer>> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let status = body
        .status
        .as_deref()
        .map(|v| {
            RunStatus::parse(v).ok_or_else(|| {
                MlError::invalid(format!(
                    "`{v}` is not a run status: RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                ))
            })
        })
        .transpose()?;
    let info = s.store.tracking().update_run(
        &run.info.id,
        status,
        body.end_time,
        body.run_name.as_deref().filter(|n| !n.is_empty()),
    )?;
    Ok(Json(RunInfoAnswer {
        run_info: convert::run_info(&info),
    }))
}

/// `POST runs/delete`: marks it deleted.
pub async fn delete(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<RunRef>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    s.store
        .tracking()
        .set_run_lifecycle(&run.info.id, Lifecycle::Deleted)?;
    Ok(empty())
}

/// `POST runs/restore`.
pub async fn restore(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<RunRef>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    s.store
        .tracking()
        .set_run_lifecycle(&run.info.id, Lifecycle::Active)?;
    Ok(empty())
}

/// `POST runs/search`: in the experiments named, each of which the caller
/// must be able to read (an unknown one holds nothing).
pub async fn search(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<SearchRuns>,
) -> MlResult<Json<RunPage>> {
    let experiment_ids = s.readable(&caller, &body.experiment_ids)?;
    if experiment_ids.is_empty() {
        return Ok(Json(RunPage::default()));
    }
    let page = s.store.tracking().search_runs(&RunQuery {
        experiment_ids,
        filter: body.filter.unwrap_or_default(),
        view: super::experiments::view_type(body.run_view_type.as_deref())?,
        max_results: page_size(body.max_results, DEFAULT_PAGE)?,
        order_by: body.order_by,
        page_token: body.page_token.filter(|t| !t.is_empty()),
    })?;
    Ok(Json(RunPage {
        runs: page.items.iter().map(convert::run).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// `POST runs/log-metric` (its dataset and model are not kept).
pub async fn log_metric(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<LogMetric>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let metric = Metric {
        key: body.key,
        value: body.value,
        timestamp_ms: body.timestamp,
        step: body.step,
    };
    s.store
        .tracking()
        .log_batch(&run.info.id, &[metric], &[], &[])?;
    Ok(empty())
}

/// `POST runs/log-parameter`.
pub async fn log_param(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<RunKeyValue>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let param = KeyValue::new(body.key, body.value);
    s.store
        .tracking()
        .log_batch(&run.info.id, &[], &[param], &[])?;
    Ok(empty())
}

/// `POST runs/set-tag`.
pub async fn set_tag(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<RunKeyValue>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let tag = KeyValue::new(body.key, body.value);
    s.store
        .tracking()
        .log_batch(&run.info.id, &[], &[], &[tag])?;
    Ok(empty())
}

/// `POST runs/delete-tag`.
pub async fn delete_tag(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<DeleteTag>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    s.store.tracking().delete_run_tag(&run.info.id, &body.key)?;
    Ok(empty())
}

/// `POST runs/log-batch`: stored whole or not at all.
pub async fn log_batch(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<LogBatch>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let metrics: Vec<Metric> = body.metrics.iter().map(convert::to_metric).collect();
    s.store.tracking().log_batch(
        &run.info.id,
        &metrics,
        &convert::to_pairs(&body.params),
        &convert::to_pairs(&body.tags),
    )?;
    Ok(empty())
}

/// `POST runs/log-inputs`: datasets (the logged models a run read are not
/// kept).
pub async fn log_inputs(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<LogInputs>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    if !body.datasets.is_empty() {
        let datasets: Vec<_> = body
            .datasets
            .iter()
            .map(convert::to_dataset_input)
            .collect();
        s.store.tracking().log_inputs(&run.info.id, &datasets)?;
    }
    Ok(empty())
}

/// `POST runs/outputs`: the logged models a run produced.
pub async fn log_outputs(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<LogOutputs>,
) -> MlResult<Response> {
    let run = s.run(&caller, body.run(), Role::Editor)?;
    let models: Vec<ModelOutput> = body
        .models
        .iter()
        .map(|m| ModelOutput {
            model_id: m.model_id.clone(),
            step: m.step,
        })
        .collect();
    s.store.tracking().log_outputs(&run.info.id, &models)?;
    Ok(empty())
}

/// `GET metrics/get-history?run_id=&metric_key=`: a page of one metric's
/// points.
pub async fn metric_history(
    State(s): State<MlflowState>,
    caller: Caller,
    Params(q): Params<MetricHistoryQuery>,
) -> MlResult<Json<MetricHistory>> {
    let run = s.run(&caller, q.run(), Role::Viewer)?;
    if q.metric_key.is_empty() {
        return Err(MlError::invalid("name the metric: `metric_key`"));
    }
    let page = s.store.tracking().metric_history(
        &run.info.id,
        &q.metric_key,
        page_size(q.max_results, cairn_store::tracking::limits::HISTORY_PAGE)?,
        q.page_token.as_deref().filter(|t| !t.is_empty()),
    )?;
    Ok(Json(MetricHistory {
        metrics: page.items.iter().map(convert::metric).collect(),
        next_page_token: page.next_page_token,
    }))
}
