//! HTTP routes of the gateway: Cairn's prediction API, the Open Inference
//! Protocol v2 (KServe, Triton and MLServer clients), `/metrics`, and the
//! model API (versions, metrics, access keys, inference lookup).
//!
//! A model is its project and its name: every per-model route has a form
//! in its project (`/projects/PROJECT/models/NAME/...`,
//! `/api/v1/projects/PROJECT/models/NAME/...`, `PROJECT.NAME` in the Open
//! Inference Protocol's `/v2/models/...`) and a bare form that answers while
//! one project serves the name (see [`resolve_model`]).

// Handlers return ready-made error responses by value, as axum does.
#![allow(clippy::result_large_err)]

use crate::auth::rules::{Listener, Named, Routes, Rule, Table};
use crate::auth::{Caller, Role};
use crate::contract::ToApi;
use crate::monitoring;
use crate::names::{NamePath, resolved};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorBody;
use cairn_api::gateway::{PredictRequest, Prediction};
use cairn_api::inference::InferenceRecord;
use cairn_api::keys::{KeyList, NewKey, RevokedKey};
use cairn_api::metrics::LiveMetrics;
use cairn_api::oip::{
    InferRequest, InferResponse, ModelMetadata, ModelParameters, ModelReady, ServerLive,
    ServerMetadata, ServerReady, TensorMetadata,
};
use cairn_api::registry::{Canary, ModelList, Registry, RegistryVersion};
use cairn_gateway::service::{Endpoint, Gateway, PredictInput, Reply, contract_datatype};
use cairn_gateway::tensor::{self, DataType};
use cairn_spec::{ScopedName, ValueType};
use cairn_store::Store;
use serde_json::Value;
use std::sync::Arc;

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The store (model versions).
    pub store: Arc<Store>,
    /// The dashboard's kept monitoring summaries.
    pub summaries: Arc<cairn_monitor::summary::Summaries>,
}

/// The gateway's routes, with what each needs of its caller: predictions,
/// feedback, business metrics and the Open Inference Protocol answer to
/// the models' own access keys; the model API to roles in the model's
/// project.
pub fn routes(state: GatewayState, listener: Listener) -> Table {
    use Named::Model;
    use Role::{Editor, Viewer};
    // (The controller's per-model routes are in `crate::api`.)
    let bare = |rest| ("", "models", rest);
    let api = |rest| ("/api/v1", "models", rest);
    Routes::new()
        .scoped(Method::POST, bare("/predict"), Rule::Gateway, predict)
        .scoped(
            Method::POST,
            bare("/metrics"),
            Rule::Gateway,
            monitoring::post_metrics,
        )
        .scoped(
            Method::POST,
            bare("/feedback"),
            Rule::Gateway,
            monitoring::post_feedback,
        )
        .scoped(
            Method::GET,
            api("/versions"),
            Rule::Project(Model, Viewer),
            versions,
        )
        .scoped(
            Method::GET,
            api("/metrics"),
            Rule::Project(Model, Viewer),
            model_metrics,
        )
        .scoped(
            Method::GET,
            api("/drift"),
            Rule::Project(Model, Viewer),
            monitoring::get_drift,
        )
        .scoped(
            Method::GET,
            api("/metrics/aggregate"),
            Rule::Project(Model, Viewer),
            monitoring::get_aggregate,
        )
        .scoped(
            Method::GET,
            api("/keys"),
            Rule::Project(Model, Editor),
            list_keys,
        )
        .scoped(
            Method::POST,
            api("/keys"),
            Rule::Project(Model, Editor),
            create_key,
        )
        .scoped(
            Method::DELETE,
            api("/keys/{id}"),
            Rule::Project(Model, Editor),
            revoke_key,
        )
        .route(Method::GET, "/v2/health/live", Rule::Public, server_live)
        .route(Method::GET, "/v2/health/ready", Rule::Public, server_ready)
        .route(Method::GET, "/v2", Rule::Public, server_metadata)
        .route(
            Method::GET,
            "/v2/models/{name}",
            Rule::Gateway,
            model_metadata,
        )
        .route(
            Method::GET,
            "/v2/models/{name}/versions/{version}",
            Rule::Gateway,
            model_metadata_version,
        )
        .route(
            Method::GET,
            "/v2/models/{name}/ready",
            Rule::Gateway,
            model_ready,
        )
        .route(
            Method::GET,
            "/v2/models/{name}/versions/{version}/ready",
            Rule::Gateway,
            model_ready_version,
        )
        .route(
            Method::POST,
            "/v2/models/{name}/infer",
            Rule::Gateway,
            infer,
        )
        .route(
            Method::POST,
            "/v2/models/{name}/versions/{version}/infer",
            Rule::Gateway,
            infer_version,
        )
        .route(Method::GET, "/metrics", Rule::Admin, metrics)
        .route(Method::GET, "/api/v1/models", Rule::Signed, models)
        .route(
            Method::GET,
            "/api/v1/inferences/{uuid}",
            Rule::Found(Editor),
            inference,
        )
        .finish(state, listener)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(message))).into_response()
}

fn reply(r: Reply) -> Response {
    let mut response = (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(r.body),
    )
        .into_response();
    if let Some(uuid) = r.uuid
        && let Ok(v) = HeaderValue::from_str(&uuid.to_string())
    {
        response.headers_mut().insert("cairn-inference-id", v);
    }
    response
}

/// The served model `wanted` names: 404 when none, 409 naming the
/// projects when a bare name is served by several.
pub fn resolve_model(
    gateway: &Gateway,
    wanted: &ScopedName,
) -> Result<Arc<Endpoint>, (StatusCode, String)> {
    resolved("model", "served", wanted, gateway.lookup(wanted), |p| {
        format!(
            "/projects/{p}/models/{name}/... (or {p}.{name} in /v2/models/)",
            name = wanted.name
        )
    })
}

/// [`resolve_model`], answering errors as JSON.
pub(crate) fn find(s: &GatewayState, wanted: &ScopedName) -> Result<Arc<Endpoint>, Response> {
    resolve_model(&s.gateway, wanted).map_err(|(status, message)| error(status, message))
}

/// A model as the Open Inference Protocol names it: `PROJECT.NAME`, or a
/// bare name one project serves.
fn find_oip(s: &GatewayState, name: &str) -> Result<Arc<Endpoint>, Response> {
    find(s, &ScopedName::parse_dotted(name))
}

/// Reads a body within the model's size limit (413 beyond).
async fn read_body(
    s: &GatewayState,
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Response> {
    let max = s.gateway.max_body(endpoint);
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this model's limit of {max} bytes"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > max)
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max as usize)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

fn auth_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Checks the caller's key and reads the request's JSON body.
async fn authorized_json(
    s: &GatewayState,
    endpoint: &Endpoint,
    req: Request,
) -> Result<Value, Response> {
    let (parts, body) = req.into_parts();
    s.gateway
        .authorize(endpoint, auth_header(&parts.headers))
        .map_err(reply)?;
    let bytes = read_body(s, endpoint, &parts.headers, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// One prediction: named features, or a batch of `instances`.
#[utoipa::path(post, path = "/models/{name}/predict", tag = "gateway",
    params(("name" = String, Path, description = "The model")),
    request_body = PredictRequest,
    responses(
        (status = 200, description = "The prediction (its id also in the `cairn-inference-id` header)", body = Prediction),
        (status = 400, description = "The input does not fit the model", body = ErrorBody),
        (status = 401, description = "The model requires an access key", body = ErrorBody),
        (status = 403, description = "The key is another model's", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 413, description = "The body is larger than the model's limit", body = ErrorBody),
        (status = 503, description = "Too many requests in flight, or no replica is ready", body = ErrorBody),
        (status = 504, description = "The model did not answer in time", body = ErrorBody),
    ))]
pub(crate) async fn predict(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    req: Request,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let value = match authorized_json(&s, &endpoint, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(request) = value.get("request").cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a body of the form {\"request\": {...}}",
        );
    };
    reply(
        s.gateway
            .predict(&endpoint, PredictInput::Cairn(request))
            .await,
    )
}

/// An inference of the Open Inference Protocol v2.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "oip",
    params(("name" = String, Path, description = "The model")),
    request_body = InferRequest,
    responses(
        (status = 200, description = "The output tensors (the inference id in the `cairn-inference-id` header too)", body = InferResponse),
        (status = 400, description = "The tensors do not fit the model", body = ErrorBody),
        (status = 401, description = "The model requires an access key", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
    ))]
pub(crate) async fn infer(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    infer_any(s, name, None, req).await
}

/// An inference of one version (the one served).
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "oip",
    params(
        ("name" = String, Path, description = "The model"),
        ("version" = String, Path, description = "The version served"),
    ),
    request_body = InferRequest,
    responses(
        (status = 200, description = "The output tensors", body = InferResponse),
        (status = 400, description = "The tensors do not fit the model", body = ErrorBody),
        (status = 404, description = "No such model, or another version is served", body = ErrorBody),
    ))]
pub(crate) async fn infer_version(
    State(s): State<GatewayState>,
    Path((name, version)): Path<(String, String)>,
    req: Request,
) -> Response {
    infer_any(s, name, Some(version), req).await
}

async fn infer_any(
    s: GatewayState,
    name: String,
    version: Option<String>,
    req: Request,
) -> Response {
    let endpoint = match find_oip(&s, &name) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if let Some(v) = &version
        && *v != endpoint.current().number.to_string()
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("model `{name}` does not serve version {v}"),
        );
    }
    let value = match authorized_json(&s, &endpoint, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let inputs = match tensor::parse_oip_inputs(&value) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid input: {e}")),
    };
    let id = value.get("id").and_then(Value::as_str).map(str::to_string);
    reply(
        s.gateway
            .predict(&endpoint, PredictInput::Oip { id, inputs })
            .await,
    )
}

/// Whether the server answers.
#[utoipa::path(get, path = "/v2/health/live", tag = "oip",
    responses((status = 200, description = "The server answers", body = ServerLive)))]
pub(crate) async fn server_live() -> axum::Json<ServerLive> {
    axum::Json(ServerLive { live: true })
}

/// Whether the server takes predictions.
#[utoipa::path(get, path = "/v2/health/ready", tag = "oip",
    responses((status = 200, description = "The server is ready", body = ServerReady)))]
pub(crate) async fn server_ready(State(s): State<GatewayState>) -> axum::Json<ServerReady> {
    axum::Json(ServerReady {
        ready: true,
        models: s.gateway.endpoints().len(),
    })
}

/// The server's name and version.
#[utoipa::path(get, path = "/v2", tag = "oip",
    responses((status = 200, description = "The server's metadata", body = ServerMetadata)))]
pub(crate) async fn server_metadata() -> axum::Json<ServerMetadata> {
    axum::Json(ServerMetadata {
        name: "cairn".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: Vec::new(),
    })
}

/// A tensor's metadata: `-1` for a variable dimension.
fn tensor_metadata(name: &str, dt: DataType, shape: &[Option<usize>]) -> TensorMetadata {
    TensorMetadata {
        name: name.to_string(),
        datatype: contract_datatype(dt),
        shape: shape.iter().map(|d| d.map_or(-1, |d| d as i64)).collect(),
    }
}

/// A model's OIP metadata, named as it was asked for.
fn metadata(name: &str, endpoint: &Endpoint) -> ModelMetadata {
    let version = endpoint.current();
    let feature = |f: &cairn_spec::Feature| {
        let dt = match f.ty {
            ValueType::Float => DataType::Fp32,
            ValueType::Int => DataType::Int64,
            ValueType::Bool => DataType::Bool,
            ValueType::String | ValueType::Timestamp => DataType::Bytes,
        };
        let mut shape: Vec<Option<usize>> = vec![None];
        shape.extend(f.shape.iter().map(|d| Some(*d as usize)));
        tensor_metadata(&f.name, dt, &shape)
    };
    let (platform, inputs, outputs) = match &version.backend {
        cairn_gateway::service::Backend::Onnx { model, .. } => {
            let (name, dt, shape) = model.input();
            let inputs = vec![tensor_metadata(name, dt, &shape)];
            let outputs: Vec<TensorMetadata> = model
                .outputs()
                .into_iter()
                .map(|(n, dt, shape)| tensor_metadata(&n, dt, &shape))
                .collect();
            ("onnx", inputs, outputs)
        }
        cairn_gateway::service::Backend::Process { .. }
        | cairn_gateway::service::Backend::Wasm { .. } => {
            let sig = endpoint.spec.signature.clone().unwrap_or_default();
            let platform = match &version.backend {
                cairn_gateway::service::Backend::Wasm { .. } => "wasm",
                _ => "process",
            };
            (
                platform,
                sig.inputs.iter().map(feature).collect(),
                sig.outputs.iter().map(feature).collect(),
            )
        }
    };
    ModelMetadata {
        name: name.to_string(),
        versions: vec![version.number.to_string()],
        platform: platform.to_string(),
        inputs,
        outputs,
        parameters: ModelParameters {
            commit: version.commit.clone(),
            sha256: version.sha256.clone(),
        },
    }
}

/// A model's inputs, outputs and version. A model of a project whose name
/// other projects use too is `PROJECT.NAME`.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "oip",
    params(("name" = String, Path, description = "The model (`NAME` or `PROJECT.NAME`)")),
    responses(
        (status = 200, description = "The model's metadata", body = ModelMetadata),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn model_metadata(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
) -> Response {
    match find_oip(&s, &name) {
        Ok(e) => axum::Json(metadata(&name, &e)).into_response(),
        Err(r) => r,
    }
}

/// A version's inputs and outputs (the one served).
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "oip",
    params(
        ("name" = String, Path, description = "The model"),
        ("version" = String, Path, description = "The version served"),
    ),
    responses(
        (status = 200, description = "The version's metadata", body = ModelMetadata),
        (status = 404, description = "No such model, or another version is served", body = ErrorBody),
    ))]
pub(crate) async fn model_metadata_version(
    State(s): State<GatewayState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match find_oip(&s, &name) {
        Ok(e) if e.current().number.to_string() == version => {
            axum::Json(metadata(&name, &e)).into_response()
        }
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            format!("model `{name}` does not serve version {version}"),
        ),
        Err(r) => r,
    }
}

/// Whether a model takes predictions.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "oip",
    params(("name" = String, Path, description = "The model (`NAME` or `PROJECT.NAME`)")),
    responses(
        (status = 200, description = "Whether it is ready", body = ModelReady),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn model_ready(
    State(s): State<GatewayState>,
    Path(name): Path<String>,
) -> Response {
    match find_oip(&s, &name) {
        Ok(e) => axum::Json(ModelReady {
            ready: is_ready(&e),
            name,
        })
        .into_response(),
        Err(r) => r,
    }
}

/// Whether a version takes predictions (the one served).
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "oip",
    params(
        ("name" = String, Path, description = "The model"),
        ("version" = String, Path, description = "The version served"),
    ),
    responses(
        (status = 200, description = "Whether it is ready", body = ModelReady),
        (status = 404, description = "No such model, or another version is served", body = ErrorBody),
    ))]
pub(crate) async fn model_ready_version(
    State(s): State<GatewayState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match find_oip(&s, &name) {
        Ok(e) if e.current().number.to_string() == version => axum::Json(ModelReady {
            ready: is_ready(&e),
            name,
        })
        .into_response(),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            format!("model `{name}` does not serve version {version}"),
        ),
        Err(r) => r,
    }
}

fn is_ready(e: &Endpoint) -> bool {
    match &e.current().backend {
        cairn_gateway::service::Backend::Onnx { .. }
        | cairn_gateway::service::Backend::Wasm { .. } => true,
        cairn_gateway::service::Backend::Process { upstream } => upstream().is_some(),
    }
}

/// `/metrics`: OpenMetrics to clients that ask for it (Prometheus does),
/// the Prometheus text format 0.0.4 to the others (`curl`, `promtool check
/// metrics`, older scrapers).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics: OpenMetrics when asked for (`Accept: application/openmetrics-text`), else the text format 0.0.4", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(s): State<GatewayState>, headers: HeaderMap) -> Response {
    let text = s.gateway.metrics.render();
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        return (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        openmetrics_to_text(&text),
    )
        .into_response()
}

/// OpenMetrics text → Prometheus text 0.0.4: a counter family is named as
/// its samples are (`_total`), and `# UNIT` and `# EOF` go.
fn openmetrics_to_text(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let counter = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(counter.as_deref().unwrap_or(line).trim_end());
        out.push('\n');
    }
    out
}

/// The models the gateway serves.
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, description = "The served models", body = ModelList)))]
pub(crate) async fn models(State(s): State<GatewayState>, caller: Caller) -> axum::Json<ModelList> {
    axum::Json(ModelList {
        models: s
            .gateway
            .endpoints()
            .iter()
            .filter(|e| caller.sees(e.key.project.as_ref().map(|p| p.as_str())))
            .map(|e| e.to_api())
            .collect(),
    })
}

/// Every version of a served model: commit, artifact digest, producing run,
/// training datasets, rollout history and share of traffic.
#[utoipa::path(get, path = "/api/v1/models/{name}/versions", tag = "models",
    params(("name" = String, Path, description = "The model")),
    responses(
        (status = 200, description = "The model's registry", body = Registry),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn versions(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match registry(&s, &endpoint) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The model registry's view of a served model: every version with its
/// commit, artifact digest, producing run, training datasets, rollout
/// history and current share of traffic.
pub fn registry(
    s: &GatewayState,
    endpoint: &Endpoint,
) -> Result<Registry, cairn_store::StoreError> {
    let current = endpoint.current();
    let canary = endpoint.canary();
    let steps = s.store.rollout_steps(&endpoint.key)?;
    let datasets: Vec<String> = endpoint
        .spec
        .lineage
        .trained_on
        .iter()
        .map(|d| d.to_string())
        .collect();
    let versions: Vec<RegistryVersion> = s
        .store
        .model_versions(&endpoint.key)?
        .into_iter()
        .map(|v| {
            let traffic = match &canary {
                Some((c, w)) if c.number == v.version => *w,
                Some((_, w)) if current.number == v.version => 100 - *w,
                None if current.number == v.version => 100,
                _ => 0,
            };
            let tracked = v
                .run_id
                .and_then(|id| s.store.tracking().run_of_job_run(id).ok().flatten());
            let experiment = tracked.as_ref().and_then(|r| {
                s.store
                    .tracking()
                    .experiment(r.info.experiment_id)
                    .ok()
                    .map(|e| e.name)
            });
            RegistryVersion {
                version: v.version,
                commit: v.commit,
                sha256: v.sha256,
                run_id: v.run_id,
                tracked_run: tracked.map(|r| r.info.id),
                experiment,
                created_at: v.created_at,
                state: v.state,
                traffic,
                datasets: datasets.clone(),
                rollout: steps
                    .iter()
                    .filter(|st| st.version == v.version)
                    .map(ToApi::to_api)
                    .collect(),
            }
        })
        .collect();
    Ok(Registry {
        project: endpoint.key.project.as_ref().map(|p| p.to_string()),
        name: endpoint.key.name.to_string(),
        current: current.number,
        canary: canary.as_ref().map(|(c, w)| Canary {
            version: c.number,
            weight: *w,
        }),
        versions,
    })
}

/// A model's traffic, latency and resources over the last hour, in
/// 10-second intervals.
#[utoipa::path(get, path = "/api/v1/models/{name}/metrics", tag = "models",
    params(("name" = String, Path, description = "The model")),
    responses(
        (status = 200, description = "The model's time series", body = LiveMetrics),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn model_metrics(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let key = &endpoint.key;
    axum::Json(LiveMetrics {
        project: key.project.as_ref().map(|p| p.to_string()),
        name: key.name.to_string(),
        series: s.gateway.metrics.series(key),
    })
    .into_response()
}

/// Creates an access key for a model; the secret is shown only once.
#[utoipa::path(post, path = "/api/v1/models/{name}/keys", tag = "models",
    params(("name" = String, Path, description = "The model")),
    responses(
        (status = 201, description = "The new key", body = NewKey),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn create_key(
    State(s): State<GatewayState>,
    caller: Caller,
    Path(path): Path<NamePath>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match s.gateway.keys.create(&endpoint.key) {
        Ok((secret, info)) => {
            let _ = s.store.audit_as(
                &caller.actor(),
                None,
                Some(&endpoint.key),
                "key-create",
                &format!("access key {}", info.id),
            );
            (
                StatusCode::CREATED,
                axum::Json(NewKey {
                    key: secret,
                    info: info.to_api(),
                    note: "the key is shown only once".into(),
                }),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A model's access keys (not their secrets), revoked ones included.
#[utoipa::path(get, path = "/api/v1/models/{name}/keys", tag = "models",
    params(("name" = String, Path, description = "The model")),
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ))]
pub(crate) async fn list_keys(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match s.gateway.keys.list(&endpoint.key) {
        Ok(keys) => axum::Json(KeyList {
            keys: keys.to_api(),
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A key of a model, as `/api/v1/[projects/{project}/]models/{name}/keys/{id}`
/// names it.
#[derive(serde::Deserialize)]
pub(crate) struct KeyPath {
    project: Option<String>,
    name: String,
    id: String,
}

/// Revokes a key.
#[utoipa::path(delete, path = "/api/v1/models/{name}/keys/{id}", tag = "models",
    params(
        ("name" = String, Path, description = "The model"),
        ("id" = String, Path, description = "The key's id (`key_...`)"),
    ),
    responses(
        (status = 200, description = "The key was revoked", body = RevokedKey),
        (status = 404, description = "The model has no such key", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub(crate) async fn revoke_key(
    State(s): State<GatewayState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
) -> Response {
    let wanted = ScopedName {
        project: path.project,
        name: path.name,
    };
    let endpoint = match find(&s, &wanted) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let id = path.id;
    match s.gateway.keys.revoke(&endpoint.key, &id) {
        Ok(true) => {
            let _ = s.store.audit_as(
                &caller.actor(),
                None,
                Some(&endpoint.key),
                "key-revoke",
                &format!("access key {id}"),
            );
            axum::Json(RevokedKey { revoked: id }).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!(
                "model `{}` has no key `{id}`",
                endpoint.key.qualified_name()
            ),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// One logged prediction, by its inference id.
#[utoipa::path(get, path = "/api/v1/inferences/{uuid}", tag = "models",
    params(("uuid" = String, Path, description = "The inference id")),
    responses(
        (status = 200, description = "The prediction", body = InferenceRecord),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "No valid token or session", body = ErrorBody),
        (status = 403, description = "The caller is not an editor of the model's project (inputs and outputs are data)", body = ErrorBody),
        (status = 404, description = "No such inference", body = ErrorBody),
    ))]
pub(crate) async fn inference(
    State(s): State<GatewayState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, format!("`{id}` is not a UUID"));
    };
    match s.gateway.events.get(uuid) {
        Ok(Some(e)) => {
            let record = e.to_api();
            let allowed = match &record.project {
                Some(p) => caller.can(p, Role::Editor),
                None => caller.principal.is_admin(),
            };
            if !allowed {
                return crate::auth::Denied::forbidden(
                    &caller.principal,
                    record.project.as_deref().unwrap_or("(none)"),
                    Role::Editor,
                )
                .into_response();
            }
            axum::Json(record).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no inference {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
