//! MLflow's tracking protocol, so that an unchanged script using the
//! `mlflow` client logs to Cairn (`MLFLOW_TRACKING_URI=http://cairn:PORT`,
//! `MLFLOW_TRACKING_TOKEN=<a Cairn API token>`).
//!
//! The routes are MLflow's (`/api/2.0/mlflow/...`, the same again under
//! `/ajax-api/2.0/mlflow/...`, the artifact service under
//! `/api/2.0/mlflow-artifacts/artifacts`), answered with the types of
//! [`cairn_api::mlflow`] and MLflow's error bodies ([`errors`]); records
//! are [`cairn_store::tracking`]'s. MLflow's client sends its token as
//! `Authorization: Bearer …`, which the authentication layer reads as any
//! API token.
//!
//! Access: an experiment belongs to a project (the first segment of its
//! name when that is a declared project, else the project of the token
//! that created it). Reading an experiment, its runs, logged models and
//! artifacts needs `viewer` in that project; writing needs `editor`;
//! experiments of no project are for operators. Every route's rule is
//! [`Rule::Found`]: the layer authenticates, the handler judges once it has
//! found the experiment. Searches answer only what the caller may see.
//! These routes are not in Cairn's OpenAPI document: MLflow documents them.

pub mod artifacts;
mod convert;
pub mod errors;
pub mod experiments;
pub mod models;
pub mod runs;

use crate::auth::rules::{Listener, Routes, Rule, Table};
use crate::auth::{Caller, Principal, Role};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api::mlflow::ServerInfo;
use cairn_store::Store;
use cairn_store::tracking::{Experiment, Run};
use errors::{ENDPOINT_NOT_FOUND, MALFORMED_REQUEST, MlError, MlResult};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest JSON body a tracking call may send (a full `log-batch` is
/// far smaller; MLflow's own limits are enforced by the store).
pub const MAX_JSON_BODY: usize = 16 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct MlflowState {
    /// Experiments, runs and logged models.
    pub store: Arc<Store>,
    /// Where artifacts are kept: `<data-dir>/tracking/artifacts`, one
    /// directory per experiment, laid out as MLflow's artifact URIs are.
    pub artifacts: PathBuf,
}

/// The MLflow protocol's version this server answers to `GET /version`.
///
/// The client reads it only to decide whether the server takes spans
/// through OTLP (3.4 and later): Cairn stores no traces, so it answers a
/// 3.x version below that and the client skips span logging quietly
/// rather than failing on every traced call.
pub const PROTOCOL_VERSION: &str = "3.0.0";

/// The MLflow routes, with what each needs of its caller.
pub fn routes(state: MlflowState, listener: Listener) -> Table {
    use Role::{Editor, Viewer};
    let read = Rule::Found(Viewer);
    let write = Rule::Found(Editor);
    let mut r = Routes::new();
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        let p = |rest: &str| format!("{prefix}{rest}");
        r = r
            .route(
                Method::POST,
                &p("/experiments/create"),
                write,
                experiments::create,
            )
            .route(Method::GET, &p("/experiments/get"), read, experiments::get)
            .route(
                Method::GET,
                &p("/experiments/get-by-name"),
                read,
                experiments::get_by_name,
            )
            // Lists what the caller may see, as `GET /api/v1/experiments`.
            .route(
                Method::POST,
                &p("/experiments/search"),
                Rule::Signed,
                experiments::search,
            )
            .route(
                Method::POST,
                &p("/experiments/delete"),
                write,
                experiments::delete,
            )
            .route(
                Method::POST,
                &p("/experiments/restore"),
                write,
                experiments::restore,
            )
            .route(
                Method::POST,
                &p("/experiments/update"),
                write,
                experiments::update,
            )
            .route(
                Method::POST,
                &p("/experiments/set-experiment-tag"),
                write,
                experiments::set_tag,
            )
            .route(Method::POST, &p("/runs/create"), write, runs::create)
            .route(Method::GET, &p("/runs/get"), read, runs::get)
            .route(Method::POST, &p("/runs/update"), write, runs::update)
            .route(Method::POST, &p("/runs/delete"), write, runs::delete)
            .route(Method::POST, &p("/runs/restore"), write, runs::restore)
            .route(Method::POST, &p("/runs/search"), read, runs::search)
            .route(
                Method::POST,
                &p("/runs/log-metric"),
                write,
                runs::log_metric,
            )
            .route(
                Method::POST,
                &p("/runs/log-parameter"),
                write,
                runs::log_param,
            )
            .route(Method::POST, &p("/runs/log-batch"), write, runs::log_batch)
            .route(Method::POST, &p("/runs/set-tag"), write, runs::set_tag)
            .route(
                Method::POST,
                &p("/runs/delete-tag"),
                write,
                runs::delete_tag,
            )
            .route(
                Method::POST,
                &p("/runs/log-inputs"),
                write,
                runs::log_inputs,
            )
            .route(Method::POST, &p("/runs/outputs"), write, runs::log_outputs)
            .route(
                Method::GET,
                &p("/metrics/get-history"),
                read,
                runs::metric_history,
            )
            .route(Method::POST, &p("/logged-models"), write, models::create)
            .route(
                Method::POST,
                &p("/logged-models/search"),
                read,
                models::search,
            )
            .route(
                Method::GET,
                &p("/logged-models/{model_id}"),
                read,
                models::get,
            )
            .route(
                Method::PATCH,
                &p("/logged-models/{model_id}"),
                write,
                models::finalize,
            )
            .any(&p("/{*rest}"), Rule::Public, endpoint_not_found);
    }
    for prefix in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        let p = |rest: &str| format!("{prefix}{rest}");
        r = r
            .route(Method::GET, &p("/artifacts"), read, artifacts::list)
            .route(
                Method::GET,
                &p("/artifacts/{*path}"),
                read,
                artifacts::download,
            )
            .route(
                Method::PUT,
                &p("/artifacts/{*path}"),
                write,
                artifacts::upload,
            );
    }
    for path in [
        "/api/3.0/mlflow/server-info",
        "/ajax-api/3.0/mlflow/server-info",
    ] {
        r = r.route(Method::GET, path, Rule::Public, server_info);
    }
    r.any("/api/3.0/mlflow/{*rest}", Rule::Public, endpoint_not_found)
        .route(Method::GET, "/version", Rule::Public, version)
        .finish(state, listener)
}

/// `GET /version`: see [`PROTOCOL_VERSION`].
async fn version() -> &'static str {
    PROTOCOL_VERSION
}

/// `GET /api/3.0/mlflow/server-info`: what the client may expect of this
/// server (no multipart or presigned transfers; artifacts go through it).
async fn server_info() -> axum::Json<ServerInfo> {
    axum::Json(ServerInfo {
        store_type: Some("SqlStore".into()),
        artifact_serving_enabled: true,
        ..ServerInfo::default()
    })
}

/// Any other MLflow endpoint: 404 `ENDPOINT_NOT_FOUND`, as MLflow answers
/// (the client then tries an older form of the call where it has one).
async fn endpoint_not_found(method: Method, uri: axum::http::Uri) -> MlError {
    MlError::new(
        StatusCode::NOT_FOUND,
        ENDPOINT_NOT_FOUND,
        format!(
            "{method} {} is not an MLflow endpoint this server offers",
            uri.path()
        ),
    )
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes (an empty one reads as
/// `{}`), refused as MLflow refuses it.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = MlError;

    async fn from_request(req: Request, _: &S) -> Result<Self, MlError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
            return Err(MlError::too_large("the body", MAX_JSON_BODY as u64));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| MlError::too_large("the body", MAX_JSON_BODY as u64))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(Body).map_err(|e| {
            if e.is_data() {
                MlError::invalid(format!("the request is not valid: {e}"))
            } else {
                MlError::new(
                    StatusCode::BAD_REQUEST,
                    MALFORMED_REQUEST,
                    format!("the body is not JSON: {e}"),
                )
            }
        })
    }
}

/// A query string, refused as MLflow refuses it.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = MlError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MlError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| MlError::invalid(format!("the query is not valid: {}", e.body_text())))
    }
}

/// An experiment id of the wire (a decimal string).
pub(crate) fn experiment_id(id: &str) -> MlResult<i64> {
    let id = id.trim();
    if id.is_empty() {
        return Err(MlError::invalid("name the experiment: `experiment_id`"));
    }
    id.parse()
        .map_err(|_| MlError::invalid(format!("`{id}` is not an experiment id")))
}

/// 403 unless `caller` holds `role` in `project`; things of no project
/// are for operators.
pub(crate) fn judge(caller: &Caller, project: Option<&str>, role: Role) -> MlResult<()> {
    match project {
        Some(p) => Ok(caller.require(p, role)?),
        None if caller.principal.is_admin() => Ok(()),
        None => Err(MlError::forbidden(format!(
            "{} may not do this: it belongs to no project, so it needs the `admin` role (an operator); it needs the `{role}` role in the experiment's project otherwise",
            caller.actor()
        ))),
    }
}

impl MlflowState {
    /// The experiment `id`, if the caller holds `role` in its project.
    pub(crate) fn experiment(&self, caller: &Caller, id: i64, role: Role) -> MlResult<Experiment> {
        let experiment = self.store.tracking().experiment(id)?;
        judge(caller, experiment.project.as_deref(), role)?;
        Ok(experiment)
    }

    /// The run a request names, if the caller holds `role` in its
    /// experiment's project.
    pub(crate) fn run(&self, caller: &Caller, id: Option<&str>, role: Role) -> MlResult<Run> {
        let id = id.ok_or_else(|| MlError::invalid("name the run: `run_id`"))?;
        let run = self.store.tracking().run(id)?;
        self.experiment(caller, run.info.experiment_id, role)?;
        Ok(run)
    }

    /// The experiments of `ids` (wire ids) the caller may read: an unknown
    /// one is left out, as MLflow finds nothing in it; one the caller may
    /// not read is refused.
    pub(crate) fn readable(&self, caller: &Caller, ids: &[String]) -> MlResult<Vec<i64>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.experiment(caller, experiment_id(id)?, Role::Viewer) {
                Ok(e) => out.push(e.id),
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The project a new experiment called `name` belongs to: the name's
/// first segment when that is a declared project (or the caller's token's
/// own), else the project of the caller's token.
pub(crate) fn project_for(caller: &Caller, name: &str) -> MlResult<String> {
    let token_project = match &caller.principal {
        Principal::Token {
            project: Some(p), ..
        } => Some(p.as_str()),
        _ => None,
    };
    if let Some((first, _)) = name.split_once('/')
        && (caller.access.projects().any(|p| p == first) || token_project == Some(first))
    {
        return Ok(first.to_string());
    }
    token_project.map(str::to_string).ok_or_else(|| {
        MlError::invalid(format!(
            "name the project of experiment `{name}`: call it PROJECT/NAME, with PROJECT a declared project"
        ))
    })
}

/// The page size asked for, or `default`; 400 unless positive.
pub(crate) fn page_size(asked: Option<i64>, default: usize) -> MlResult<usize> {
    match asked {
        None | Some(0) => Ok(default),
        Some(n) if n > 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => Err(MlError::invalid(format!(
            "`max_results` must be positive, not {n}"
        ))),
    }
}

/// `{}`, MLflow's answer to the calls that return nothing.
pub(crate) fn empty() -> Response {
    axum::Json(cairn_api::mlflow::Empty {}).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::access::Access;

    fn token(project: Option<&str>, role: Role) -> Caller {
        Caller {
            principal: Principal::Token {
                id: "tok_1".into(),
                name: "t".into(),
                project: project.map(str::to_string),
                role,
                workload: false,
            },
            access: Arc::new(Access::new([("lab", &cairn_spec::ProjectSpec::default())])),
            csrf: None,
        }
    }

    #[test]
    fn a_new_experiment_goes_to_the_project_its_name_or_token_says() {
        let admin = token(None, Role::Admin);
        assert_eq!(project_for(&admin, "lab/probe").unwrap(), "lab");
        assert!(project_for(&admin, "probe").is_err());
        assert!(project_for(&admin, "nowhere/probe").is_err());
        let scoped = token(Some("team"), Role::Editor);
        assert_eq!(project_for(&scoped, "probe").unwrap(), "team");
        assert_eq!(project_for(&scoped, "team/probe").unwrap(), "team");
        assert_eq!(project_for(&scoped, "lab/probe").unwrap(), "lab");
        assert_eq!(project_for(&scoped, "x/probe").unwrap(), "team");
    }

    #[test]
    fn things_of_no_project_are_for_operators() {
        assert!(judge(&token(None, Role::Admin), None, Role::Viewer).is_ok());
        let editor = token(Some("lab"), Role::Editor);
        assert!(judge(&editor, None, Role::Viewer).is_err());
        assert!(judge(&editor, Some("lab"), Role::Editor).is_ok());
        let e = judge(&editor, Some("other"), Role::Viewer).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.body.error_code, errors::PERMISSION_DENIED);
        assert!(judge(&token(Some("lab"), Role::Viewer), Some("lab"), Role::Editor).is_err());
    }

    #[test]
    fn ids_and_page_sizes_are_checked() {
        assert_eq!(experiment_id("12").unwrap(), 12);
        assert!(experiment_id("x").is_err());
        assert!(experiment_id("").is_err());
        assert_eq!(page_size(None, 7).unwrap(), 7);
        assert_eq!(page_size(Some(3), 7).unwrap(), 3);
        assert!(page_size(Some(-1), 7).is_err());
    }
}
