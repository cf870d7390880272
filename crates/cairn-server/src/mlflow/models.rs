//! `/api/2.0/mlflow/logged-models...`: MLflow 3's logged models.

use super::errors::{MlError, MlResult};
use super::{Body, MlflowState, convert, experiment_id, page_size};
use crate::auth::{Caller, Role};
use axum::Json;
use axum::extract::{Path, State};
use cairn_api::mlflow::{
    CreateLoggedModel, FinalizeLoggedModel, LoggedModelAnswer, LoggedModelPage, SearchLoggedModels,
};
use cairn_store::tracking::LoggedModel;

/// MLflow's default page of logged models.
const DEFAULT_PAGE: usize = 100;

impl MlflowState {
    /// The logged model `id`, if the caller holds `role` in its
    /// experiment's project.
    pub(crate) fn logged_model(
        &self,
        caller: &Caller,
        id: &str,
        role: Role,
    ) -> MlResult<LoggedModel> {
        let model = self.store.tracking().logged_model(id)?;
        self.experiment(caller, model.experiment_id, role)?;
        Ok(model)
    }
}

/// `POST logged-models`: needs `editor` in the experiment's project (and
/// the source run, when named, must be of that experiment).
pub async fn create(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<CreateLoggedModel>,
) -> MlResult<Json<LoggedModelAnswer>> {
    let experiment = s.experiment(&caller, experiment_id(&body.experiment_id)?, Role::Editor)?;
    let source_run = body.source_run_id.as_deref().filter(|r| !r.is_empty());
    if let Some(run) = source_run {
        let run = s.store.tracking().run(run)?;
        if run.info.experiment_id != experiment.id {
            return Err(MlError::invalid(format!(
                "run {} is of experiment {}, not {}",
                run.info.id, run.info.experiment_id, experiment.id
            )));
        }
    }
    let model = s.store.tracking().create_logged_model(
        experiment.id,
        &body.name,
        body.model_type.as_deref().unwrap_or_default(),
        source_run,
        &convert::to_pairs(&body.params),
        &convert::to_pairs(&body.tags),
    )?;
    Ok(Json(LoggedModelAnswer {
        model: convert::logged_model(&model),
    }))
}

/// `GET logged-models/{model_id}`.
pub async fn get(
    State(s): State<MlflowState>,
    caller: Caller,
    Path(model_id): Path<String>,
) -> MlResult<Json<LoggedModelAnswer>> {
    let model = s.logged_model(&caller, &model_id, Role::Viewer)?;
    Ok(Json(LoggedModelAnswer {
        model: convert::logged_model(&model),
    }))
}

/// `PATCH logged-models/{model_id}`: its files are uploaded (or failed to).
pub async fn finalize(
    State(s): State<MlflowState>,
    caller: Caller,
    Path(model_id): Path<String>,
    Body(body): Body<FinalizeLoggedModel>,
) -> MlResult<Json<LoggedModelAnswer>> {
    let model = s.logged_model(&caller, &model_id, Role::Editor)?;
    if body.status.is_empty() {
        return Err(MlError::invalid("name the model's new `status`"));
    }
    let model = s
        .store
        .tracking()
        .finalize_logged_model(&model.id, &body.status)?;
    Ok(Json(LoggedModelAnswer {
        model: convert::logged_model(&model),
    }))
}

/// `POST logged-models/search`: in the experiments named, each of which
/// the caller must be able to read. Orderings are not applied: models
/// come in the store's order.
pub async fn search(
    State(s): State<MlflowState>,
    caller: Caller,
    Body(body): Body<SearchLoggedModels>,
) -> MlResult<Json<LoggedModelPage>> {
    let experiment_ids = s.readable(&caller, &body.experiment_ids)?;
    if experiment_ids.is_empty() {
        return Ok(Json(LoggedModelPage::default()));
    }
    let page = s.store.tracking().search_logged_models(
        &experiment_ids,
        body.filter.as_deref().unwrap_or_default(),
        page_size(body.max_results, DEFAULT_PAGE)?,
        body.page_token.as_deref().filter(|t| !t.is_empty()),
    )?;
    Ok(Json(LoggedModelPage {
        models: page.items.iter().map(convert::logged_model).collect(),
        next_page_token: page.next_page_token,
    }))
}
