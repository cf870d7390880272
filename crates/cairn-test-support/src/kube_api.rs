//! An in-process Kubernetes API server for tests: an axum server on
//! 127.0.0.1 that stores objects in memory and answers server-side apply
//! (with field-ownership conflicts), get, list with label selectors,
//! watch (chunked JSON events), and delete (with UID and resourceVersion
//! preconditions) the way the real API server does, including its
//! `Status` errors (404, 409, 422). Every object gets a UID when it is
//! created and keeps it until it is deleted. Every request is recorded;
//! failures can be injected per object name.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// An object's place: collection path (`/apis/apps/v1/deployments`), namespace, name.
type Place = (String, Option<String>, String);

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Place, (Value, String)>,
    /// Container logs by pod name.
    logs: BTreeMap<String, String>,
    requests: Vec<Recorded>,
    /// Injected failures: (method, object name) → (code, reason, message).
    failures: BTreeMap<(String, String), (u16, String, String)>,
    rv: u64,
    next_ip: u32,
    /// Objects created so far, for their UIDs.
    created: u64,
}

impl Inner {
    /// A fresh UID, unique for the life of the server (as the API server's are).
    fn uid(&mut self) -> String {
        self.created += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.created)
    }
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(String, Value)>,
}

/// The fake API server; stops with the test process.
pub struct FakeApi {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    shared: Shared,
    /// The first address Services get as their cluster IP (`127.0.0.N`).
    pub service_ip_base: u8,
}

impl FakeApi {
    /// Starts a fake API server; Services get cluster IPs `127.0.0.{ip_base}`, `+1`, ...
    pub fn start(ip_base: u8) -> FakeApi {
        let (events, _) = broadcast::channel(1024);
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                next_ip: u32::from(ip_base),
                rv: 100,
                ..Default::default()
            })),
            events,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(s);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        FakeApi {
            addr,
            shared,
            service_ip_base: ip_base,
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file pointing at the server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {}
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: default
current-context: fake
users:
- name: tester
  user:
    token: test-token
",
                self.url()
            ),
        )
        .unwrap();
        path
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Requests with this method.
    pub fn requests_with(&self, method: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    /// Makes requests with `method` for objects named `name` fail.
    pub fn fail(&self, method: &str, name: &str, code: u16, reason: &str, message: &str) {
        self.shared.inner.lock().unwrap().failures.insert(
            (method.to_string(), name.to_string()),
            (code, reason.to_string(), message.to_string()),
        );
    }

    /// Stops failing requests for `name`.
    pub fn heal(&self, method: &str, name: &str) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .failures
            .remove(&(method.to_string(), name.to_string()));
    }

    /// A stored object.
    pub fn get(&self, collection: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .objects
            .get(&(
                collection.to_string(),
                namespace.map(str::to_string),
                name.to_string(),
            ))
            .map(|(v, _)| v.clone())
    }

    /// Every stored object of a collection, by `namespace/name`.
    pub fn list(&self, collection: &str) -> BTreeMap<String, Value> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((c, _, _), _)| c == collection)
            .map(|((_, ns, name), (v, _))| {
                (format!("{}/{name}", ns.as_deref().unwrap_or("")), v.clone())
            })
            .collect()
    }

    /// Changes a stored object as another client would (`kubectl edit`):
    /// `edit` mutates it; the change is owned by `manager` and watchers see it.
    pub fn edit(
        &self,
        collection: &str,
        namespace: Option<&str>,
        name: &str,
        manager: &str,
        edit: impl FnOnce(&mut Value),
    ) {
        let event = {
            let mut inner = self.shared.inner.lock().unwrap();
            inner.rv += 1;
            let rv = inner.rv;
            let key = (
                collection.to_string(),
                namespace.map(str::to_string),
                name.to_string(),
            );
            let (object, owner) = inner.objects.get_mut(&key).expect("object to edit");
            let spec = object["spec"].clone();
            edit(object);
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            // Like the API server: a change of spec is a new generation.
            if object["spec"] != spec {
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                object["metadata"]["generation"] = json!(generation);
            }
            *owner = manager.to_string();
            object.clone()
        };
        let _ = self.shared.events.send((
            collection.to_string(),
            json!({"type": "MODIFIED", "object": event}),
        ));
    }

    /// Deletes a stored object as another client would (`kubectl delete`).
    pub fn delete(&self, collection: &str, namespace: Option<&str>, name: &str) {
        let object = {
            let mut inner = self.shared.inner.lock().unwrap();
            inner.rv += 1;
            inner
                .objects
                .remove(&(
                    collection.to_string(),
                    namespace.map(str::to_string),
                    name.to_string(),
                ))
                .expect("object to delete")
                .0
        };
        let _ = self.shared.events.send((
            collection.to_string(),
            json!({"type": "DELETED", "object": object}),
        ));
    }

    /// The log a pod's container answers with.
    pub fn set_log(&self, pod: &str, text: &str) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .logs
            .insert(pod.to_string(), text.to_string());
    }

    /// Stores an object directly (pods, objects made by others), giving it
    /// a UID if it has none; returns the UID.
    pub fn put(&self, collection: &str, namespace: Option<&str>, mut object: Value) -> String {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let mut inner = self.shared.inner.lock().unwrap();
        if object["metadata"]["uid"].as_str().is_none() {
            object["metadata"]["uid"] = json!(inner.uid());
        }
        let uid = object["metadata"]["uid"].as_str().unwrap().to_string();
        inner.objects.insert(
            (collection.to_string(), namespace.map(str::to_string), name),
            (object, "other".into()),
        );
        uid
    }

    /// Waits until `f` holds, or panics after `timeout` with `what`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut f: impl FnMut(&FakeApi) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; requests: {:#?}",
            self.summary()
        );
    }

    /// `METHOD path?query` of every request, for failure messages.
    pub fn summary(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
            .collect()
    }
}

/// Splits a request path into (collection, namespace, name).
fn parse_path(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix_len, rest) = match *segments.first()? {
        "api" => (2, &segments[2.min(segments.len())..]),
        "apis" => (3, &segments[3.min(segments.len())..]),
        _ => return None,
    };
    let prefix = format!("/{}", segments[..prefix_len].join("/"));
    match rest {
        ["namespaces"] => Some((format!("{prefix}/namespaces"), None, None)),
        ["namespaces", name] => {
            Some((format!("{prefix}/namespaces"), None, Some(name.to_string())))
        }
        ["namespaces", ns, plural] => {
            Some((format!("{prefix}/{plural}"), Some(ns.to_string()), None))
        }
        ["namespaces", ns, plural, name] => Some((
            format!("{prefix}/{plural}"),
            Some(ns.to_string()),
            Some(name.to_string()),
        )),
        [plural] => Some((format!("{prefix}/{plural}"), None, None)),
        [plural, name] => Some((format!("{prefix}/{plural}"), None, Some(name.to_string()))),
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an object's labels match a selector of `k=v`, `k!=v` and `k` terms.
fn matches(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &object["metadata"]["labels"];
    selector.split(',').all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k].as_str() == Some(v.trim_start_matches('='))
        } else {
            labels.get(term).is_some()
        }
    })
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The first path where two values differ, as `.a.b`.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if let Some(p) =
                    first_difference(v, y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))
                {
                    return Some(p);
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    s.inner.lock().unwrap().requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    if let Some(pod_path) = path.strip_suffix("/log")
        && method == Method::GET
    {
        let pod = pod_path.rsplit('/').next().unwrap_or_default().to_string();
        return match s.inner.lock().unwrap().logs.get(&pod) {
            Some(text) => (StatusCode::OK, text.clone()).into_response(),
            None => status(404, "NotFound", &format!("pods \"{pod}\" not found")),
        };
    }
    let Some((collection, namespace, name)) = parse_path(&path) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    if let Some(name) = &name
        && let Some((code, reason, message)) = s
            .inner
            .lock()
            .unwrap()
            .failures
            .get(&(method.to_string(), name.clone()))
            .cloned()
    {
        return status(code, &reason, &message);
    }
    let selector = query_param(&query, "labelSelector");
    match (method, name) {
        (Method::GET, None)
            if query_param(&query, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            let mut rx = s.events.subscribe();
            let stream = async_stream(
                move |tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>| async move {
                    while let Ok((c, event)) = rx.recv().await {
                        if c != collection {
                            continue;
                        }
                        let ns_ok = namespace.is_none()
                            || event["object"]["metadata"]["namespace"].as_str()
                                == namespace.as_deref();
                        if !ns_ok || !matches(&event["object"], selector.as_deref()) {
                            continue;
                        }
                        let mut line = event.to_string();
                        line.push('\n');
                        if tx.send(Ok(Bytes::from(line))).await.is_err() {
                            return;
                        }
                    }
                },
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(stream)
                .unwrap()
        }
        (Method::GET, None) => {
            let inner = s.inner.lock().unwrap();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|((c, ns, _), _)| {
                    *c == collection && (namespace.is_none() || *ns == namespace)
                })
                .filter(|(_, (v, _))| matches(v, selector.as_deref()))
                .map(|(_, (v, _))| v.clone())
                .collect();
            json_response(&json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": inner.rv.to_string()},
                "items": items
            }))
        }
        (Method::GET, Some(name)) => {
            let inner = s.inner.lock().unwrap();
            match inner.objects.get(&(collection, namespace, name.clone())) {
                Some((v, _)) => json_response(v),
                None => status(404, "NotFound", &format!("\"{name}\" not found")),
            }
        }
        (Method::PATCH, Some(name)) if content_type.starts_with("application/merge-patch+json") => {
            let Some(patch) = body else {
                return status(400, "BadRequest", "the body is not JSON");
            };
            let stored = {
                let mut inner = s.inner.lock().unwrap();
                inner.rv += 1;
                let rv = inner.rv;
                let key = (collection.clone(), namespace.clone(), name.clone());
                let Some((object, _)) = inner.objects.get_mut(&key) else {
                    return status(404, "NotFound", &format!("\"{name}\" not found"));
                };
                merge(object, &patch);
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                object.clone()
            };
            let _ = s.events.send((
                collection,
                json!({"type": "MODIFIED", "object": stored.clone()}),
            ));
            json_response(&stored)
        }
        (Method::PATCH, Some(name)) => {
            let Some(mut object) = body else {
                return status(400, "BadRequest", "the body is not JSON");
            };
            let manager = query_param(&query, "fieldManager").unwrap_or_default();
            let force = query_param(&query, "force").as_deref() == Some("true");
            let kind = object["kind"].as_str().unwrap_or("Object").to_string();
            if !is_dns_label(&name) {
                return status(
                    422,
                    "Invalid",
                    &format!(
                        "{kind} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
                    ),
                );
            }
            let (event, stored) = {
                let mut inner = s.inner.lock().unwrap();
                let key = (collection.clone(), namespace.clone(), name.clone());
                let existing = inner.objects.get(&key).cloned();
                if let Some((old, owner)) = &existing
                    && owner != &manager
                    && !force
                    && let Some(field) = first_difference(&object["spec"], &old["spec"], ".spec")
                {
                    return status(
                        409,
                        "Conflict",
                        &format!(
                            "Apply failed with 1 conflict: conflict with \"{owner}\": {field}"
                        ),
                    );
                }
                let mut fresh = object.clone();
                let unchanged = existing.as_ref().is_some_and(|(old, _)| {
                    let mut a = old.clone();
                    for f in [
                        "resourceVersion",
                        "uid",
                        "generation",
                        "creationTimestamp",
                        "managedFields",
                    ] {
                        a["metadata"].as_object_mut().map(|m| m.remove(f));
                    }
                    a.as_object_mut().map(|m| m.remove("status"));
                    if let Some(ip) = old["spec"].get("clusterIP") {
                        fresh["spec"]["clusterIP"] = ip.clone();
                    }
                    a == fresh
                });
                if unchanged {
                    let (old, _) = existing.clone().unwrap();
                    inner.objects.insert(key, (old.clone(), manager.clone()));
                    (None, old)
                } else {
                    inner.rv += 1;
                    let rv = inner.rv;
                    let generation = existing
                        .as_ref()
                        .and_then(|(o, _)| o["metadata"]["generation"].as_i64())
                        .unwrap_or(0)
                        + 1;
                    object["metadata"]["resourceVersion"] = json!(rv.to_string());
                    object["metadata"]["generation"] = json!(generation);
                    let uid = match existing
                        .as_ref()
                        .and_then(|(o, _)| o["metadata"]["uid"].as_str().map(str::to_string))
                    {
                        Some(uid) => uid,
                        None => inner.uid(),
                    };
                    object["metadata"]["uid"] = json!(uid);
                    object["metadata"]["managedFields"] = json!([{
                        "manager": manager, "operation": "Apply",
                        "apiVersion": object["apiVersion"].clone(), "fieldsType": "FieldsV1", "fieldsV1": {}
                    }]);
                    if kind == "Service" {
                        let ip = match existing
                            .as_ref()
                            .and_then(|(o, _)| o["spec"]["clusterIP"].as_str().map(str::to_string))
                        {
                            Some(ip) => ip,
                            None => {
                                let n = inner.next_ip;
                                inner.next_ip += 1;
                                format!("127.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
                            }
                        };
                        object["spec"]["clusterIP"] = json!(ip);
                    }
                    let kind_of_event = if existing.is_some() {
                        "MODIFIED"
                    } else {
                        "ADDED"
                    };
                    inner.objects.insert(key, (object.clone(), manager.clone()));
                    (
                        Some(json!({"type": kind_of_event, "object": object.clone()})),
                        object,
                    )
                }
            };
            if let Some(e) = event {
                let _ = s.events.send((collection, e));
            }
            json_response(&stored)
        }
        (Method::DELETE, Some(name)) => {
            let removed = {
                let mut inner = s.inner.lock().unwrap();
                let key = (collection.clone(), namespace, name.clone());
                if let Some((object, _)) = inner.objects.get(&key)
                    && let Some(message) =
                        failed_precondition(&collection, &name, object, body.as_ref())
                {
                    return status(409, "Conflict", &message);
                }
                inner.rv += 1;
                inner.objects.remove(&key)
            };
            match removed {
                Some((object, _)) => {
                    let _ = s.events.send((
                        collection,
                        json!({"type": "DELETED", "object": object.clone()}),
                    ));
                    json_response(&object)
                }
                None => status(404, "NotFound", &format!("\"{name}\" not found")),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "not supported by the fake API server",
        ),
    }
}

/// Why a delete's preconditions (`DeleteOptions.preconditions`: `uid`,
/// `resourceVersion`) do not hold for `object`, in the API server's words.
fn failed_precondition(
    collection: &str,
    name: &str,
    object: &Value,
    options: Option<&Value>,
) -> Option<String> {
    let preconditions = options?.get("preconditions")?;
    // `deployments.apps`, or `services` for the core group.
    let mut segments = collection.trim_start_matches('/').split('/');
    let resource = match (segments.next(), segments.next(), segments.nth(1)) {
        (Some("apis"), Some(group), Some(plural)) => format!("{plural}.{group}"),
        _ => collection
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let (Some(want), Some(have)) = (
            preconditions.get(field).and_then(Value::as_str),
            object["metadata"][field].as_str(),
        ) else {
            continue;
        };
        if want != have {
            return Some(format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
            ));
        }
    }
    None
}

/// A JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A streaming body fed by a task.
fn async_stream<F, Fut>(f: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Body::from_stream(stream)
}
