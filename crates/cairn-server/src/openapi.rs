//! The OpenAPI 3.1 document of the server's routes, generated from the
//! handlers' annotations and the contract's types (`specs/openapi.json`,
//! written by `cargo xtask schemas`; served at `/api/v1/openapi.json`).

use crate::{api, gateway, monitoring};
use utoipa::OpenApi;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::openapi::{ObjectBuilder, Required, Type};

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
        crate::auth::tokens::whoami,
        crate::auth::tokens::list_tokens,
        crate::auth::tokens::create_token,
        crate::auth::tokens::revoke_token,
        crate::app::route_table,
        crate::experiments::list_experiments,
        crate::experiments::get_experiment,
        crate::experiments::list_runs,
        crate::experiments::get_run,
        crate::experiments::metric_history,
        crate::experiments::compare,
        crate::experiments::promote,
    ),
    tags(
        (name = "controller", description = "The repository, syncs, resources, job runs and the audit log."),
        (name = "models", description = "Served models: the registry, live metrics, monitoring reports, drift, access keys and logged inferences."),
        (name = "gateway", description = "Cairn's prediction API, business metrics and delayed labels."),
        (name = "oip", description = "The Open Inference Protocol v2, for KServe, Triton and MLServer clients."),
        (name = "hooks", description = "Git push webhooks."),
        (name = "operations", description = "Health and Prometheus metrics."),
        (name = "access", description = "Who the caller is, API tokens, and what each route needs."),
        (name = "experiments", description = "Tracked runs (every job run is one; MLflow's client logs them through `/api/2.0/mlflow`, MLflow's own REST protocol, not described here): experiments, runs, metric histories, comparisons and promotion of a run's artifact through Git."),
    ),
)]
pub struct ApiDoc;

/// The document: the handlers' routes, and each per-model and per-job
/// route again in its project's form (see [`crate::names`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let scoped: Vec<(String, PathItem)> = doc
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| Some((in_project(path)?, project_item(item))))
        .collect();
    doc.paths.paths.extend(scoped);
    secure(&mut doc);
    doc
}

/// Routes anyone may call; those tagged `gateway` and `oip` answer to the
/// models' own access keys, and `hooks` to its shared secret.
const OPEN: &[&str] = &[
    "/healthz",
    "/api/v1/openapi.json",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
];

/// Declares how each operation is authenticated: an API token
/// (`Authorization: Bearer cairn_tok_…`, or a dashboard session) for the
/// API, with its 401 and 403 answers; a model's access key for the
/// gateway; nothing for health, the document and webhooks.
fn secure(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "modelKey",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let tags = op.tags.clone().unwrap_or_default();
            let keyed = tags.iter().any(|t| t == "gateway" || t == "oip");
            if OPEN.contains(&path.as_str()) || tags.iter().any(|t| t == "hooks") {
                op.security = Some(vec![SecurityRequirement::default()]);
            } else if keyed {
                // Open unless the model's spec requires a key.
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("modelKey", Vec::<String>::new()),
                ]);
            } else {
                op.security = Some(vec![SecurityRequirement::new(
                    "token",
                    Vec::<String>::new(),
                )]);
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| {
                    RefOr::T(error("No valid token or session (see `cairn tokens`)"))
                });
                responses.entry("403".into()).or_insert_with(|| {
                    RefOr::T(error(
                        "The caller lacks the role this route needs in the resource's project",
                    ))
                });
            }
        }
    }
}

/// The form in a project of a per-model or per-job route
/// (`/api/v1/models/{name}/keys` → `/api/v1/projects/{project}/models/{name}/keys`).
fn in_project(path: &str) -> Option<String> {
    ["/api/v1", ""].iter().find_map(|prefix| {
        let rest = path.strip_prefix(prefix)?;
        ["/models/{name}", "/jobs/{name}"]
            .iter()
            .any(|kind| rest.starts_with(kind))
            .then(|| format!("{prefix}/projects/{{project}}{rest}"))
    })
}

/// `item` with a `project` path parameter first in each operation, whose
/// id gets `_in_project` (operation ids are unique in a document).
fn project_item(item: &PathItem) -> PathItem {
    let project = ParameterBuilder::new()
        .name("project")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The project"))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    let mut item = item.clone();
    for op in [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
    {
        op.parameters
            .get_or_insert_with(Vec::new)
            .insert(0, project.clone());
        if let Some(id) = &mut op.operation_id {
            id.push_str("_in_project");
        }
    }
    item
}

/// The document as JSON, as `specs/openapi.json` holds it.
pub fn openapi_json() -> String {
    openapi()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_resource_routes_have_their_project_form() {
        assert_eq!(
            in_project("/api/v1/models/{name}/keys/{id}").as_deref(),
            Some("/api/v1/projects/{project}/models/{name}/keys/{id}")
        );
        assert_eq!(
            in_project("/models/{name}/predict").as_deref(),
            Some("/projects/{project}/models/{name}/predict")
        );
        assert_eq!(in_project("/api/v1/models"), None);
        assert_eq!(in_project("/v2/models/{name}"), None);
        let doc = openapi();
        let scoped = &doc.paths.paths["/api/v1/projects/{project}/jobs/{name}/runs"];
        let post = scoped.post.as_ref().unwrap();
        assert_eq!(post.operation_id.as_deref(), Some("start_run_in_project"));
        assert_eq!(post.parameters.as_ref().unwrap()[0].name, "project");
    }
}
