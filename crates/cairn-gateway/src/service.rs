//! The gateway: served model versions, and the prediction path every request
//! takes — access key, limits, input validation, inference, UUID, durable
//! event, metrics.

use crate::metrics::Metrics;
use crate::onnx::OnnxModel;
use crate::tensor::{self, DataType, InputError, NamedTensor};
use cairn_spec::{Durability, Lookup, ModelSpec, ResourceKey, ScopedName};
use cairn_store::events::{EventLog, InferenceEvent};
use cairn_store::keys::{KeyCheck, KeyStore};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Finds a ready replica of a process model.
pub type Upstream = Arc<dyn Fn() -> Option<SocketAddr> + Send + Sync>;

/// Told of a plugin failure while serving.
pub type PluginErrorHook = Arc<dyn Fn(&cairn_plugin_host::PluginError) + Send + Sync>;

/// How a version computes predictions.
#[derive(Clone)]
pub enum Backend {
    /// In-process ONNX, with a pool of `replicas` workers.
    Onnx {
        /// The loaded, optimized model.
        model: Arc<OnnxModel>,
        /// One permit per worker.
        workers: Arc<Semaphore>,
        /// Recent cost of one run in µs: cheap models run on the request's
        /// own thread, costly ones on the blocking pool.
        cost_us: Arc<std::sync::atomic::AtomicU64>,
    },
    /// A `runtime: wasm` model: a plugin of world `model` with a pool of
    /// `replicas` reusable instances.
    Wasm {
        /// The model and its instances.
        model: Arc<cairn_plugin_host::model::WasmModel>,
        /// One permit per instance.
        workers: Arc<Semaphore>,
        /// Told of every plugin failure (a trap, a timeout, a limit hit), so
        /// that it shows in the model's status.
        on_error: PluginErrorHook,
    },
    /// The user's server (or the function runner) behind HTTP.
    Process {
        /// Picks a ready replica.
        upstream: Upstream,
    },
}

/// One served version of a model.
#[derive(Clone)]
pub struct Version {
    /// Version number.
    pub number: i64,
    /// The commit of the spec.
    pub commit: String,
    /// SHA-256 of the artifact (empty for process models).
    pub sha256: String,
    /// How it predicts.
    pub backend: Backend,
}

/// A version taking a share of a model's traffic during a canary rollout.
pub struct Canary {
    /// The new version.
    pub version: Arc<Version>,
    /// Its share of requests, in percent.
    pub weight: AtomicU8,
}

/// A model endpoint.
pub struct Endpoint {
    /// The model.
    pub key: ResourceKey,
    /// Its spec.
    pub spec: ModelSpec,
    current: RwLock<Arc<Version>>,
    canary: RwLock<Option<Arc<Canary>>>,
    /// Requests routed so far: spreads a canary's share evenly.
    routed: AtomicU64,
    concurrency: Arc<Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Endpoint {
    fn new(key: &ResourceKey, spec: &ModelSpec, current: Arc<Version>) -> Endpoint {
        let max = spec
            .limits
            .as_ref()
            .and_then(|l| l.max_concurrency)
            .map_or(DEFAULT_MAX_CONCURRENCY, |c| c as usize);
        Endpoint {
            key: key.clone(),
            spec: spec.clone(),
            current: RwLock::new(current),
            canary: RwLock::new(None),
            routed: AtomicU64::new(0),
            concurrency: Arc::new(Semaphore::new(max)),
            waiting: Default::default(),
        }
    }

    /// The stable version: the one serving all traffic outside a canary.
    pub fn current(&self) -> Arc<Version> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The canary version and its share of traffic in percent, during a
    /// canary rollout.
    pub fn canary(&self) -> Option<(Arc<Version>, u8)> {
        let canary = self.canary.read().unwrap_or_else(|e| e.into_inner());
        canary
            .as_ref()
            .map(|c| (c.version.clone(), c.weight.load(Ordering::Relaxed)))
    }

    /// The version that serves the next request: the canary for its
    /// share of requests, spread evenly (a multiplicative hash of a
    /// request counter, so that 10 % is one request in ten, not ten in a
    /// row), the stable version otherwise.
    pub fn route(&self) -> Arc<Version> {
        {
            let canary = self.canary.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = canary.as_ref() {
                let n = self.routed.fetch_add(1, Ordering::Relaxed);
                let bucket = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
                if bucket < u64::from(c.weight.load(Ordering::Relaxed)) {
                    return c.version.clone();
                }
            }
        }
        self.current()
    }
}

/// A prediction's outcome, ready to be sent.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: ReplyBody,
    /// The inference id, when one was assigned.
    pub uuid: Option<uuid::Uuid>,
}

/// The body of a reply, as the HTTP contract has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ReplyBody {
    /// A prediction of Cairn's API.
    Prediction(Box<cairn_api::gateway::Prediction>),
    /// An inference of the Open Inference Protocol.
    Inference(Box<cairn_api::oip::InferResponse>),
    /// A failure.
    Error(cairn_api::ErrorBody),
}

impl Reply {
    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: ReplyBody::Error(cairn_api::ErrorBody::new(message)),
            uuid: None,
        }
    }
}

/// What a backend answered.
enum Answer {
    /// Cairn's API: the model's response.
    Cairn(Value),
    /// The Open Inference Protocol: the output tensors and the request's id.
    Oip(Vec<NamedTensor>, Option<String>),
}

/// A tensor as the contract writes it.
fn contract_tensor(t: &NamedTensor) -> cairn_api::oip::Tensor {
    cairn_api::oip::Tensor {
        name: t.name.clone(),
        shape: t.shape.iter().map(|d| *d as u64).collect(),
        datatype: contract_datatype(t.datatype),
        data: match serde_json::to_value(&t.data) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        },
    }
}

/// An element type as the contract names it.
pub fn contract_datatype(t: DataType) -> cairn_api::oip::Datatype {
    use cairn_api::oip::Datatype as D;
    match t {
        DataType::Fp32 => D::Fp32,
        DataType::Fp64 => D::Fp64,
        DataType::Int64 => D::Int64,
        DataType::Int32 => D::Int32,
        DataType::Bool => D::Bool,
        DataType::Bytes => D::Bytes,
    }
}

/// Default limits when a model sets none.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONCURRENCY: usize = 256;
const DEFAULT_MAX_QUEUE: usize = 1024;
/// Runs cheaper than this (moving average) stay on the async worker.
const INLINE_RUN_US: u64 = 200;

/// Holds a place in a model's queue; gives it back however the wait ends
/// (the client may go away while waiting).
struct QueuePlace<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Counts a request in flight; one abandoned by its client is counted as
/// finished with status 499 when dropped.
struct InFlight<'a> {
    metrics: &'a Metrics,
    model: &'a ResourceKey,
    version: String,
    started: Instant,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let latency = self.started.elapsed().as_micros() as u64;
            self.metrics
                .finished(self.model, &self.version, 499, latency);
        }
    }
}

/// Takes logged inferences off the request path (the business-metric
/// queue): `offer` must not wait.
pub trait EventTap: Send + Sync {
    /// Whether `model`'s inferences are wanted.
    fn wants(&self, model: &ResourceKey) -> bool;
    /// Takes a logged inference without waiting.
    fn offer(&self, event: InferenceEvent);
}

/// The served endpoints by model (project and name), with the models of
/// each name for lookups by a bare name.
#[derive(Default)]
struct Endpoints {
    by_key: HashMap<ResourceKey, Arc<Endpoint>>,
    by_name: HashMap<String, Vec<ResourceKey>>,
}

impl Endpoints {
    fn insert(&mut self, endpoint: Endpoint) {
        let key = endpoint.key.clone();
        let keys = self.by_name.entry(key.name.to_string()).or_default();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        self.by_key.insert(key, Arc::new(endpoint));
    }

    fn remove(&mut self, key: &ResourceKey) {
        self.by_key.remove(key);
        if let Some(keys) = self.by_name.get_mut(key.name.as_str()) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_name.remove(key.name.as_str());
            }
        }
    }

    fn lookup(&self, wanted: &ScopedName) -> Lookup<Arc<Endpoint>> {
        let keys = self
            .by_name
            .get(&wanted.name)
            .map_or(&[][..], Vec::as_slice);
        Lookup::among(
            wanted,
            keys.iter()
                .filter_map(|k| Some((k, self.by_key.get(k)?.clone()))),
        )
    }
}

/// The model gateway.
pub struct Gateway {
    endpoints: RwLock<Endpoints>,
    /// The durable inference event log.
    pub events: EventLog,
    /// Access keys.
    pub keys: KeyStore,
    /// Technical metrics.
    pub metrics: Metrics,
    tap: RwLock<Option<Arc<dyn EventTap>>>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >,
}

impl Gateway {
    /// A gateway writing events to `events` and checking keys in `keys`.
    pub fn new(events: EventLog, keys: KeyStore) -> Self {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let metrics = Metrics::new();
        Gateway {
            endpoints: RwLock::new(Endpoints::default()),
            tap: RwLock::new(None),
            events,
            keys,
            metrics,
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build(connector),
        }
    }

    /// Serves `version` for the model, replacing the previous version
    /// atomically: requests in flight finish on the old one. A canary in
    /// progress is dropped.
    pub fn install(&self, key: &ResourceKey, spec: &ModelSpec, version: Version) {
        let mut endpoints = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        match endpoints.by_key.get(key) {
            Some(e) if e.spec == *spec => {
                *e.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(version);
                *e.canary.write().unwrap_or_else(|e| e.into_inner()) = None;
            }
            _ => endpoints.insert(Endpoint::new(key, spec, Arc::new(version))),
        }
    }

    /// Starts a canary: `version` takes `weight` percent of the model's
    /// requests beside the stable version, under `spec` (the new spec).
    /// Returns false when the model is not served (nothing to compare with).
    pub fn start_canary(
        &self,
        key: &ResourceKey,
        spec: &ModelSpec,
        version: Version,
        weight: u8,
    ) -> bool {
        let mut endpoints = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        let Some(old) = endpoints.by_key.get(key) else {
            return false;
        };
        let canary = Some(Arc::new(Canary {
            version: Arc::new(version),
            weight: AtomicU8::new(weight.min(100)),
        }));
        if old.spec == *spec {
            *old.canary.write().unwrap_or_else(|e| e.into_inner()) = canary;
        } else {
            let endpoint = Endpoint::new(key, spec, old.current());
            *endpoint.canary.write().unwrap_or_else(|e| e.into_inner()) = canary;
            endpoints.insert(endpoint);
        }
        true
    }

    /// Sets the canary's share of traffic; false when there is no canary.
    pub fn set_canary_weight(&self, key: &ResourceKey, weight: u8) -> bool {
        let Some(endpoint) = self.endpoint(key) else {
            return false;
        };
        let canary = endpoint.canary.read().unwrap_or_else(|e| e.into_inner());
        match canary.as_ref() {
            Some(c) => {
                c.weight.store(weight.min(100), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Ends a canary: promoted, it becomes the stable version; otherwise it
    /// stops taking traffic. Returns the canary version.
    pub fn finish_canary(&self, key: &ResourceKey, promote: bool) -> Option<Arc<Version>> {
        let endpoint = self.endpoint(key)?;
        let canary = endpoint
            .canary
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        if promote {
            *endpoint.current.write().unwrap_or_else(|e| e.into_inner()) = canary.version.clone();
        }
        Some(canary.version.clone())
    }

    /// Offers every logged inference of the models `tap` wants to it
    /// (business-metric plugins, off the request path).
    pub fn set_event_tap(&self, tap: Arc<dyn EventTap>) {
        *self.tap.write().unwrap_or_else(|e| e.into_inner()) = Some(tap);
    }

    /// Stops serving a model.
    pub fn remove(&self, key: &ResourceKey) {
        self.endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The endpoint of a model.
    pub fn endpoint(&self, key: &ResourceKey) -> Option<Arc<Endpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(key)
            .cloned()
    }

    /// The endpoint a name designates: `PROJECT/NAME`, or a bare name that
    /// one project serves (a bare name several projects serve is
    /// ambiguous).
    pub fn lookup(&self, wanted: &ScopedName) -> Lookup<Arc<Endpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(wanted)
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut v: Vec<_> = self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Checks the caller's access key when the model requires one.
    pub fn authorize(&self, endpoint: &Endpoint, authorization: Option<&str>) -> Result<(), Reply> {
        if !endpoint.spec.auth.as_ref().is_some_and(|a| a.required) {
            return Ok(());
        }
        let Some(secret) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Err(Reply::error(
                401,
                "this model requires an access key: `Authorization: Bearer KEY`",
            ));
        };
        match self.keys.check(&endpoint.key, secret) {
            Ok(KeyCheck::Valid) => Ok(()),
            Ok(KeyCheck::WrongModel) => Err(Reply::error(403, "this key is for another model")),
            Ok(KeyCheck::Revoked) => Err(Reply::error(401, "this key was revoked")),
            Ok(KeyCheck::Unknown) => Err(Reply::error(401, "unknown access key")),
            Err(e) => Err(Reply::error(500, e.to_string())),
        }
    }

    /// The body size limit of a model.
    pub fn max_body(&self, endpoint: &Endpoint) -> u64 {
        endpoint
            .spec
            .limits
            .as_ref()
            .and_then(|l| l.max_body_size)
            .map_or(DEFAULT_MAX_BODY, |m| m.bytes())
    }

    /// One prediction: `request` is the value of `{"request": ...}` (Cairn's
    /// API) or, with `oip`, the parsed OIP v2 input tensors.
    pub async fn predict(&self, endpoint: &Arc<Endpoint>, input: PredictInput) -> Reply {
        let limits = endpoint.spec.limits.clone().unwrap_or_default();
        // Concurrency limit, then a bounded queue, then 503.
        let permit = match endpoint.concurrency.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let max_queue = limits.max_queue.map_or(DEFAULT_MAX_QUEUE, |q| q as usize);
                let waiting = endpoint
                    .waiting
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let place = QueuePlace(&endpoint.waiting);
                if waiting >= max_queue {
                    drop(place);
                    self.metrics.rejected(
                        &endpoint.key,
                        &endpoint.current().number.to_string(),
                        503,
                    );
                    return Reply::error(
                        503,
                        "too many requests in flight for this model; retry later",
                    );
                }
                let p = endpoint.concurrency.clone().acquire_owned().await;
                drop(place);
                match p {
                    Ok(p) => p,
                    Err(_) => return Reply::error(503, "model is shutting down"),
                }
            }
        };
        let version = endpoint.route();
        let key = &endpoint.key;
        let name = key.name.as_str();
        let version_label = version.number.to_string();
        self.metrics.started(key, &version_label);
        let started = Instant::now();
        let mut in_flight = InFlight {
            metrics: &self.metrics,
            model: key,
            version: version_label.clone(),
            started,
            done: false,
        };
        let uuid = uuid::Uuid::now_v7();
        let timeout = limits.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get());
        let inputs_for_log = input.to_log();
        let result =
            match tokio::time::timeout(timeout, self.infer(endpoint, &version, input)).await {
                Ok(r) => r,
                Err(_) => Err((
                    504,
                    format!(
                        "the model did not answer within {}",
                        humantime::format_duration(timeout)
                    ),
                )),
            };
        drop(permit);
        let latency_us = started.elapsed().as_micros() as u64;
        let (status, outputs, body) = match result {
            Ok(Answer::Oip(tensors, id)) => {
                let body = ReplyBody::Inference(Box::new(cairn_api::oip::InferResponse {
                    model_name: name.to_string(),
                    model_version: version_label.clone(),
                    id: id.unwrap_or_else(|| uuid.to_string()),
                    parameters: cairn_api::oip::InferParameters {
                        cairn_inference_id: uuid.to_string(),
                    },
                    outputs: tensors.iter().map(contract_tensor).collect(),
                }));
                let outputs = serde_json::to_value(&tensors).unwrap_or(Value::Null);
                (200u16, outputs, body)
            }
            Ok(Answer::Cairn(response)) => {
                let body = ReplyBody::Prediction(Box::new(cairn_api::gateway::Prediction {
                    response: response.clone(),
                    uuid: uuid.to_string(),
                    model: cairn_api::gateway::PredictedBy {
                        project: key.project.as_ref().map(|p| p.to_string()),
                        name: name.to_string(),
                        version: version_label.clone(),
                        commit: version.commit.clone(),
                    },
                }));
                (200u16, response, body)
            }
            Err((status, message)) => (
                status,
                Value::Null,
                ReplyBody::Error(cairn_api::ErrorBody {
                    error: message,
                    uuid: Some(uuid.to_string()),
                }),
            ),
        };
        in_flight.done = true;
        self.metrics
            .finished(key, &version_label, status, latency_us);
        let event = InferenceEvent {
            uuid,
            model: key.clone(),
            version: version_label,
            commit: version.commit.clone(),
            time: chrono::Utc::now(),
            latency_us,
            status,
            inputs: inputs_for_log,
            outputs,
        };
        let tap = self
            .tap
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|t| t.wants(key));
        let offered = tap.as_ref().map(|_| event.clone());
        let logged = match endpoint.spec.durability {
            Durability::Sync => self.events.append_durable(event).await,
            Durability::Async => self.events.append(event),
        };
        if let Err(e) = logged {
            tracing::error!("inference event {uuid} not recorded: {e}");
            return Reply::error(500, format!("the inference could not be recorded: {e}"));
        }
        if let (Some(tap), Some(event)) = (tap, offered) {
            tap.offer(event);
        }
        Reply {
            status,
            body,
            uuid: Some(uuid),
        }
    }

    /// Runs the version's backend.
    async fn infer(
        &self,
        endpoint: &Endpoint,
        version: &Version,
        input: PredictInput,
    ) -> Result<Answer, (u16, String)> {
        let spec = &endpoint.spec;
        match (&version.backend, input) {
            (
                Backend::Onnx {
                    model,
                    workers,
                    cost_us,
                },
                input,
            ) => {
                let (name, datatype, _) = model.input();
                let (tensor, single, oip) = match input {
                    PredictInput::Cairn(request) => {
                        let features = spec.signature.as_ref().map(|s| s.inputs.as_slice()).unwrap_or(&[]);
                        let (t, _rows, single) =
                            tensor::request_to_tensor(&request, features, name, datatype).map_err(bad_input)?;
                        (t, single, None)
                    }
                    PredictInput::Oip { id, inputs } => {
                        let mut t = inputs.into_iter().next().ok_or((400, "`inputs` is empty".to_string()))?;
                        t.name = name.to_string();
                        (t, false, Some(id))
                    }
                };
                let _worker = workers.acquire().await.map_err(|_| (503, "model is shutting down".to_string()))?;
                use std::sync::atomic::Ordering::Relaxed;
                let started = Instant::now();
                let outputs = if cost_us.load(Relaxed) < INLINE_RUN_US {
                    // A few microseconds: a hop to another thread would cost more.
                    model.run(&tensor)
                } else {
                    let model = model.clone();
                    tokio::task::spawn_blocking(move || model.run(&tensor))
                        .await
                        .map_err(|e| (500, e.to_string()))?
                }
                .map_err(|e| (400, e.to_string()))?;
                let took = started.elapsed().as_micros() as u64;
                let previous = cost_us.load(Relaxed);
                cost_us.store((previous * 7 + took) / 8, Relaxed);
                Ok(match oip {
                    Some(id) => Answer::Oip(outputs, id),
                    None => Answer::Cairn(tensor::tensors_to_response(&outputs, single)),
                })
            }
            (
                Backend::Wasm {
                    model,
                    workers,
                    on_error,
                },
                input,
            ) => {
                use crate::wasm::{from_wit, to_wit};
                let (tensors, single, oip) = match input {
                    PredictInput::Cairn(request) => {
                        let features = spec.signature.as_ref().map(|s| s.inputs.as_slice()).unwrap_or(&[]);
                        let datatype = wasm_input_type(features);
                        let (t, _rows, single) =
                            tensor::request_to_tensor(&request, features, "input", datatype).map_err(bad_input)?;
                        (vec![t], single, None)
                    }
                    PredictInput::Oip { id, inputs } => (inputs, false, Some(id)),
                };
                let inputs: Vec<_> = tensors.into_iter().map(to_wit).collect();
                let _worker = workers.acquire().await.map_err(|_| (503, "model is shutting down".to_string()))?;
                let model = model.clone();
                let result = tokio::task::spawn_blocking(move || model.predict(&inputs))
                    .await
                    .map_err(|e| (500, e.to_string()))?;
                let outputs = match result {
                    Ok(o) => o,
                    Err(cairn_plugin_host::PluginError::Failed(message)) => {
                        return Err((400, format!("the model refused the input: {message}")));
                    }
                    Err(e) => {
                        on_error(&e);
                        return Err((500, format!("plugin error: {e}")));
                    }
                };
                let outputs = outputs
                    .into_iter()
                    .map(from_wit)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| (500, format!("plugin error: {e}")))?;
                Ok(match oip {
                    Some(id) => Answer::Oip(outputs, id),
                    None => Answer::Cairn(tensor::tensors_to_response(&outputs, single)),
                })
            }
            (Backend::Process { upstream }, PredictInput::Cairn(request)) => {
                if let Some(sig) = &spec.signature {
                    check_named_features(&request, &sig.inputs)?;
                }
                let addr = upstream().ok_or((503, "no replica of this model is ready".to_string()))?;
                let body = serde_json::to_string(&cairn_api::gateway::PredictRequest { request })
                    .map_err(|e| (500, e.to_string()))?;
                let req = hyper::Request::post(format!("http://{addr}/predict"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .map_err(|e| (500, e.to_string()))?;
                let response = self.http.request(req).await.map_err(|e| (502, format!("replica did not answer: {e}")))?;
                let status = response.status().as_u16();
                use http_body_util::BodyExt;
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| (502, format!("replica answer broke off: {e}")))?
                    .to_bytes();
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|_| (502, "the replica did not answer JSON".to_string()))?;
                if status >= 400 {
                    let message = value.get("error").and_then(Value::as_str).unwrap_or("model error").to_string();
                    return Err((if status >= 500 { 500 } else { status }, message));
                }
                Ok(Answer::Cairn(value.get("response").cloned().unwrap_or(value)))
            }
            (Backend::Process { .. }, PredictInput::Oip { .. }) => Err((
                400,
                "the Open Inference Protocol is served for `onnx` models; use POST /projects/PROJECT/models/NAME/predict".into(),
            )),
        }
    }

    /// Gives the events, monitoring rows and access keys stored before they
    /// named their model's project to the served `models` whose name one
    /// project uses (see [`EventLog::adopt_unattributed`]). Blocking.
    pub fn adopt_unattributed(&self, models: &[ResourceKey]) {
        match self.events.adopt_unattributed(models) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "{n} stored row(s) from before projects were recorded adopted by their model's project"
            ),
            Err(e) => tracing::warn!("rows from before projects were recorded not adopted: {e}"),
        }
        match self.keys.adopt_unattributed(models) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "{n} access key(s) from before projects were recorded adopted by their model's project"
            ),
            Err(e) => {
                tracing::warn!("access keys from before projects were recorded not adopted: {e}")
            }
        }
    }

    /// Writes every queued event (graceful shutdown).
    pub async fn flush(&self) {
        if let Err(e) = self.events.flush().await {
            tracing::error!("flushing inference events failed: {e}");
        }
    }
}

/// What a prediction request carries.
pub enum PredictInput {
    /// `{"request": VALUE}`.
    Cairn(Value),
    /// Open Inference Protocol v2 tensors.
    Oip {
        /// The request's `id`.
        id: Option<String>,
        /// Its input tensors.
        inputs: Vec<NamedTensor>,
    },
}

impl PredictInput {
    fn to_log(&self) -> Value {
        match self {
            PredictInput::Cairn(v) => v.clone(),
            PredictInput::Oip { inputs, .. } => serde_json::to_value(inputs).unwrap_or(Value::Null),
        }
    }
}

fn bad_input(e: InputError) -> (u16, String) {
    (400, format!("invalid input: {e}"))
}

/// The input tensor type of a wasm model: the signature's type when all its
/// inputs share one, else 32-bit floats.
fn wasm_input_type(features: &[cairn_spec::Feature]) -> DataType {
    let mut types = features.iter().map(|f| DataType::from_value_type(f.ty));
    match types.next() {
        Some(first) if types.all(|t| t == first) => first,
        _ => DataType::Fp32,
    }
}

/// For process models: named features must match the signature.
fn check_named_features(
    request: &Value,
    inputs: &[cairn_spec::Feature],
) -> Result<(), (u16, String)> {
    let Some(map) = request.as_object() else {
        return Ok(());
    };
    if map.contains_key("instances") || map.contains_key("inputs") {
        return Ok(());
    }
    for f in inputs {
        if !map.contains_key(&f.name) {
            return Err((400, format!("invalid input: `{}`: missing", f.name)));
        }
    }
    for k in map.keys() {
        if !inputs.iter().any(|f| &f.name == k) {
            return Err((
                400,
                format!("invalid input: `{k}`: not an input of this model"),
            ));
        }
    }
    Ok(())
}

/// The OIP v2 datatype of a signature type, for metadata.
pub fn oip_datatype(t: DataType) -> &'static str {
    match t {
        DataType::Fp32 => "FP32",
        DataType::Fp64 => "FP64",
        DataType::Int64 => "INT64",
        DataType::Int32 => "INT32",
        DataType::Bool => "BOOL",
        DataType::Bytes => "BYTES",
    }
}
