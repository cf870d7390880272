//! `/api/2.0/mlflow/experiments/...`.

use super::errors::MlResult;
use super::{Body, MlflowState, Params, convert, empty, experiment_id, judge, page_size};
use crate::auth::{Caller, Role};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use cairn_api::mlflow::{
    CreateExperiment, ExperimentAnswer, ExperimentByName, ExperimentCreated, ExperimentPage,
    ExperimentRef, SearchExperiments, SetExperimentTag, UpdateExperiment,
};
use cairn_store::tracking::{Lifecycle, ViewType};

/// MLflow's default page of experiments.
const DEFAULT_PAGE: usize = 1000;

/// `POST experiments/create`: in the project of its name (`PROJECT/NAME`)
/// or of the caller's token; needs `editor` there. The artifact location
/// asked for is ignored: Cairn keeps artifacts itself.
pub async fn create(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<CreateExperiment>,
) -> MlResult<Json<ExperimentCreated>> {
    let project = super::project_for(&caller, &body.name)?;
    caller.require(&project, Role::Editor)?;
    let tags = convert::to_pairs(&body.tags);
    let experiment =
        s.store
            .tracking()
            .create_experiment(&body.name, Some(&project), None, &tags)?;
    Ok(Json(ExperimentCreated {
        experiment_id: experiment.id.to_string(),
    }))
}

/// `GET experiments/get?experiment_id=`.
pub async fn get(
    State(s): State<MlflowState>,
    caller: Caller,
    Params(q): Params<ExperimentRef>,
) -> MlResult<Json<ExperimentAnswer>> {
    let experiment = s.experiment(&caller, experiment_id(&q.experiment_id)?, Role::Viewer)?;
    Ok(Json(ExperimentAnswer {
        experiment: convert::experiment(&experiment),
    }))
}

/// `GET experiments/get-by-name?experiment_name=`.
pub async fn get_by_name(
    State(s): State<MlflowState>,
    caller: Caller,
    Params(q): Params<ExperimentByName>,
) -> MlResult<Json<ExperimentAnswer>> {
    if q.experiment_name.is_empty() {
        return Err(super::MlError::invalid(
            "name the experiment: `experiment_name`",
        ));
    }
    let experiment = s.store.tracking().experiment_by_name(&q.experiment_name)?;
    judge(&caller, experiment.project.as_deref(), Role::Viewer)?;
    Ok(Json(ExperimentAnswer {
        experiment: convert::experiment(&experiment),
    }))
}

/// `POST experiments/search`: the experiments the caller may see.
///
/// The store pages over every experiment and this keeps the visible ones,
/// so a page may hold fewer than `max_results` while a next page exists.
pub async fn search(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<SearchExperiments>,
) -> MlResult<Json<ExperimentPage>> {
    let view = view_type(body.view_type.as_deref())?;
    let page = s.store.tracking().search_experiments(
        body.filter.as_deref().unwrap_or_default(),
        view,
        page_size(body.max_results, DEFAULT_PAGE)?,
        &body.order_by,
        body.page_token.as_deref().filter(|t| !t.is_empty()),
    )?;
    Ok(Json(ExperimentPage {
        experiments: page
            .items
            .iter()
            .filter(|e| caller.sees(e.project.as_deref()))
            .map(convert::experiment)
            .collect(),
        next_page_token: page.next_page_token,
    }))
}

/// A view type of the wire (`ACTIVE_ONLY` when absent).
pub(crate) fn view_type(asked: Option<&str>) -> MlResult<ViewType> {
    match asked {
        None => Ok(ViewType::ActiveOnly),
        Some(v) => ViewType::parse(v).ok_or_else(|| {
            super::MlError::invalid(format!(
                "`{v}` is not a view type: ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))
        }),
    }
}

/// `POST experiments/delete`: marks it deleted (with its runs).
pub async fn delete(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<ExperimentRef>,
) -> MlResult<Response> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    s.store
        .tracking()
        .set_experiment_lifecycle(experiment.id, Lifecycle::Deleted)?;
    Ok(empty())
}

/// `POST experiments/restore`.
pub async fn restore(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<ExperimentRef>,
) -> MlResult<Response> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    s.store
        .tracking()
        .set_experiment_lifecycle(experiment.id, Lifecycle::Active)?;
    Ok(empty())
}

/// `POST experiments/update`: a new name (which may not move it to
/// another project).
pub async fn update(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<UpdateExperiment>,
) -> MlResult<Response> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    if body.new_name.is_empty() {
        return Err(super::MlError::invalid("name the experiment: `new_name`"));
    }
    if let Some(project) = &experiment.project
        && let Some((first, _)) = body.new_name.split_once('/')
        && first != project
        && caller.access.projects().any(|p| p == first)
    {
        return Err(super::MlError::invalid(format!(
            "`{}` would name an experiment of project `{first}`; experiment {} stays in project `{project}`",
            body.new_name, experiment.id
        )));
    }
    s.store
        .tracking()
        .rename_experiment(experiment.id, &body.new_name)?;
    Ok(empty())
}

/// `POST experiments/set-experiment-tag`.
pub async fn set_tag(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<SetExperimentTag>,
) -> MlResult<Response> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    s.store
        .tracking()
        .set_experiment_tag(experiment.id, &body.key, &body.value)?;
    Ok(empty())
}
