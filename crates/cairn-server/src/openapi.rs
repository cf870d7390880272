//! The OpenAPI 3.1 document of the server's routes, generated from the
//! handlers' annotations and the contract's types (`specs/openapi.json`,
//! written by `cargo xtask schemas`; served at `/api/v1/openapi.json`).

use crate::{api, gateway, monitoring};
use utoipa::OpenApi;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn",
        description = "The HTTP API of `cairn up`: the controller (`/api/v1`), the model gateway (Cairn's prediction API and the Open Inference Protocol v2), monitoring, the model registry and Git webhooks. Every failure answers `{\"error\": \"...\"}`.",
    ),
    paths(
        api::status,
        api::last_sync,
        api::recent_runs,
        api::audit,
        api::job_runs,
        api::start_run,
        api::job_run,
        api::run_logs,
        gateway::models,
        gateway::versions,
        api::rollback_model,
        gateway::model_metrics,
        monitoring::get_aggregate,
        monitoring::get_drift,
        api::evaluate_drift,
        gateway::list_keys,
        gateway::create_key,
        gateway::revoke_key,
        gateway::inference,
        gateway::predict,
        monitoring::post_metrics,
        monitoring::post_feedback,
        gateway::server_live,
        gateway::server_ready,
        gateway::server_metadata,
        gateway::model_metadata,
        gateway::model_metadata_version,
        gateway::model_ready,
        gateway::model_ready_version,
        gateway::infer,
        gateway::infer_version,
        api::git_hook,
        api::healthz,
        gateway::metrics,
        openapi_json_route,
    ),
    tags(
        (name = "controller", description = "The repository, syncs, resources, job runs and the audit log."),
        (name = "models", description = "Served models: the registry, live metrics, monitoring reports, drift, access keys and logged inferences."),
        (name = "gateway", description = "Cairn's prediction API, business metrics and delayed labels."),
        (name = "oip", description = "The Open Inference Protocol v2, for KServe, Triton and MLServer clients."),
        (name = "hooks", description = "Git push webhooks."),
        (name = "operations", description = "Health and Prometheus metrics."),
    ),
)]
pub struct ApiDoc;

/// The document as JSON, as `specs/openapi.json` holds it.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
        + "\n"
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(crate) async fn openapi_json_route() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
        .into_response()
}
