//! The Kubernetes runtime: the same specs, run on a cluster.
//!
//! Each applied resource becomes typed objects ([`objects`], given the
//! applications' launch plans resolved by [`launch`]) that are
//! server-side applied with field manager `cairn` ([`apply`]); objects a
//! resource no longer needs, and labelled objects of specs removed from a
//! repository that loaded cleanly, are pruned. Status comes from the
//! objects' conditions ([`status`]), refreshed periodically, and a watcher
//! ([`watch`]) reverts edits made to live objects behind Git's back. Models
//! are still served through Cairn's gateway: it routes to each model's
//! Service, issues the inference UUID and records the event.

pub mod apply;
pub mod launch;
pub mod objects;
pub mod plan;
pub mod status;
pub mod watch;

/// The store's id of a run, as an annotation on its `Job`.
pub const ANNOTATION_RUN_ID: &str = "cairn.dev/run-id";

use self::apply::{Applier, ApplyError, ConflictPolicy, LiveObject};
use self::objects::{KubeObject, KubeSettings, LABEL_RUN, ObjectKind};
use cairn_gateway::service::{Backend, Gateway, Version};
use cairn_plan::loader::{Resource, ResourceKey};
use cairn_plan::plan::{Action, Change, StateView};
use cairn_runtime::RunRequest;
use cairn_runtime::{ApplyContext, LogSource, LogTarget, Runtime, RuntimeError};
use cairn_spec::{Kind, ModelSpec, Spec};
use cairn_store::events::{EventLog, EventLogConfig};
use cairn_store::keys::KeyStore;
use cairn_store::{Applied, Phase, Run, RunState, Store};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;

/// The Kubernetes runtime. Cheap to clone.
#[derive(Clone)]
pub struct KubernetesRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    applier: Applier,
    settings: KubeSettings,
    store: Arc<Store>,
    gateway: Arc<Gateway>,
    handle: Handle,
    state: Mutex<State>,
    /// Where logs read from the cluster are written for the log API.
    logs_dir: PathBuf,
}

#[derive(Default)]
struct State {
    /// The objects of every resource of the last sync, for drift repair.
    desired: BTreeMap<ResourceKey, Vec<KubeObject>>,
    /// Jobs created or changed by the current sync, run when it finishes.
    sync_runs: BTreeSet<ResourceKey>,
    /// The Service address of each model and application.
    services: HashMap<ResourceKey, SocketAddr>,
    /// The spec of each served model.
    models: HashMap<ResourceKey, (ModelSpec, String)>,
    /// The resources of the last sweep for orphans.
    swept: Option<BTreeSet<ResourceKey>>,
}

impl KubernetesRuntime {
    /// A runtime applying through `client`, keeping inference events and
    /// access keys under `data_dir`. Must be created inside a tokio runtime.
    pub fn new(
        client: kube::Client,
        settings: KubeSettings,
        policy: ConflictPolicy,
        store: Arc<Store>,
        data_dir: &Path,
    ) -> Result<Self, RuntimeError> {
        let events = EventLog::open(&data_dir.join("events.db"), EventLogConfig::default())
            .map_err(|e| RuntimeError::Start(format!("inference event log: {e}")))?;
        let keys = KeyStore::open(&data_dir.join("keys.db"))
            .map_err(|e| RuntimeError::Start(format!("access keys: {e}")))?;
        let applier = Applier::new(client, policy, store.clone()).within(&settings.namespaces);
        Ok(KubernetesRuntime {
            inner: Arc::new(Inner {
                applier,
                settings,
                store,
                gateway: Arc::new(Gateway::new(events, keys)),
                handle: Handle::current(),
                state: Mutex::new(State::default()),
                logs_dir: data_dir.join("logs"),
            }),
        })
    }

    /// The gateway serving the cluster's models.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.inner.gateway.clone()
    }

    /// The applier (API client and conflict policy).
    pub fn applier(&self) -> &Applier {
        &self.inner.applier
    }

    /// Starts the watchers that revert drift (for the life of the process)
    /// and the periodic status refresh (until the runtime is dropped).
    pub fn spawn_background(&self, status_every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.handle.spawn(watch::revert_drift(
            self.inner.applier.clone(),
            self.desired_lookup(),
            self.inner.store.clone(),
        ));
        self.inner.handle.spawn(async move {
            let mut tick = tokio::time::interval(status_every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.refresh().await {
                    tracing::warn!("reading status from the cluster failed: {e}");
                }
            }
        });
    }

    /// A function giving the desired object of a live one, for the watcher.
    fn desired_lookup(&self) -> watch::DesiredLookup {
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move |kind, namespace, name| {
            let inner = weak.upgrade()?;
            let state = inner.lock();
            state
                .desired
                .values()
                .flatten()
                .find(|o| o.kind() == kind && o.name() == name && o.namespace() == namespace)
                .cloned()
        })
    }

    /// The applications called `name` that have a Service, whatever their
    /// project.
    pub fn apps_named(&self, name: &str) -> Vec<ResourceKey> {
        self.inner
            .lock()
            .services
            .keys()
            .filter(|k| k.kind == Kind::Application && k.name.as_str() == name)
            .cloned()
            .collect()
    }

    /// The address of an application's Service, for the application proxy.
    pub fn app_upstream(&self, app: &ResourceKey) -> Option<SocketAddr> {
        self.inner.lock().services.get(app).copied()
    }

    /// Reads status from the cluster once (also done periodically).
    pub async fn refresh(&self) -> Result<(), ApplyError> {
        self.inner.refresh().await
    }

    /// Flushes inference events.
    pub async fn shutdown(&self) {
        self.inner.gateway.flush().await;
    }

    /// Runs an async call from the synchronous runtime interface.
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::task::block_in_place(|| self.inner.handle.block_on(f))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_status(&self, key: &ResourceKey, phase: Phase, message: &str) {
        if let Err(e) = self.store.set_status(key, phase, message, None, None) {
            tracing::warn!("could not record status of {key}: {e}");
        }
    }

    /// Routes a model's endpoint in the gateway to its Service, at the
    /// address the Service has when a request comes (a Service deleted and
    /// created again gets a new cluster IP).
    fn serve(self: &Arc<Self>, key: &ResourceKey, spec: &ModelSpec, commit: &str) {
        let number = self
            .store
            .model_version(key, commit, "", "", None)
            .map(|v| v.version)
            .unwrap_or(1);
        let weak = Arc::downgrade(self);
        let service = key.clone();
        self.gateway.install(
            key,
            spec,
            Version {
                number,
                commit: commit.to_string(),
                sha256: String::new(),
                backend: Backend::Process {
                    upstream: Arc::new(move || {
                        weak.upgrade()?.lock().services.get(&service).copied()
                    }),
                },
            },
        );
    }

    /// Reads the Deployments, run Jobs and pods Cairn manages and records
    /// each resource's status; resumes pipeline steps whose upstream runs
    /// succeeded.
    async fn refresh(&self) -> Result<(), ApplyError> {
        let keys: Vec<ResourceKey> = self.lock().desired.keys().cloned().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let managed = format!("{}=cairn", objects::LABEL_MANAGED_BY);
        for service in self.applier.list(ObjectKind::Service, &managed).await? {
            if let (Some(owner), Some(addr)) = (service.owner(), service_addr(&service.object)) {
                self.lock().services.insert(owner, addr);
            }
        }
        let deployments = self.applier.list(ObjectKind::Deployment, &managed).await?;
        let jobs = self.applier.list(ObjectKind::Job, &managed).await?;
        let mut pods: Vec<Pod> = Vec::new();
        let client = self.applier.client().clone();
        let apis: Vec<Api<Pod>> = match self.applier.namespaces() {
            [] => vec![Api::all(client)],
            namespaces => namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        };
        for api in apis {
            pods.extend(
                api.list(&ListParams::default().labels(objects::LABEL_NAME))
                    .await
                    .map_err(|e| ApplyError::Api {
                        object: "listing pods".into(),
                        message: e.to_string(),
                    })?
                    .items,
            );
        }
        let pods_of = |key: &ResourceKey| -> Vec<Pod> {
            let sel = objects::selector(key);
            pods.iter()
                .filter(|p| {
                    let labels = p.metadata.labels.clone().unwrap_or_default();
                    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
                .cloned()
                .collect()
        };
        for key in keys {
            match key.kind {
                Kind::Model | Kind::Application => {
                    let Some(d) = deployments
                        .iter()
                        .find(|d| d.owner().as_ref() == Some(&key))
                    else {
                        continue;
                    };
                    let Ok(d) = typed::<k8s_openapi::api::apps::v1::Deployment>(d) else {
                        continue;
                    };
                    let s = status::deployment_status(&d, &pods_of(&key));
                    self.set_status(&key, s.phase, &s.message);
                }
                Kind::Job => {
                    let runs: Vec<&LiveObject> = jobs
                        .iter()
                        .filter(|j| j.owner().as_ref() == Some(&key))
                        .collect();
                    let Some(latest) = runs.iter().max_by_key(|j| {
                        (
                            j.object.metadata.creation_timestamp.clone().map(|t| t.0),
                            run_number(j),
                        )
                    }) else {
                        continue;
                    };
                    let Ok(job) = typed::<k8s_openapi::api::batch::v1::Job>(latest) else {
                        continue;
                    };
                    let job_pods: Vec<Pod> = pods_of(&key)
                        .into_iter()
                        .filter(|p| {
                            p.metadata.labels.as_ref().and_then(|l| l.get("job-name"))
                                == job.metadata.name.as_ref()
                        })
                        .collect();
                    let s = status::job_status(&job, &job_pods);
                    self.set_status(&key, s.phase, &s.message);
                    for run in &runs {
                        self.record_run(run);
                    }
                    if s.phase == Phase::Idle {
                        self.resume_if_ready(&job, &jobs).await;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Records the end of a run in the store once its `Job` finished.
    fn record_run(&self, live: &LiveObject) {
        let Ok(job) = typed::<k8s_openapi::api::batch::v1::Job>(live) else {
            return;
        };
        let Some(id) = job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_RUN_ID))
            .and_then(|i| i.parse::<i64>().ok())
        else {
            return;
        };
        let s = status::job_status(&job, &[]);
        let state = match s.phase {
            Phase::Succeeded => RunState::Succeeded,
            Phase::Failed if status::skipped(&job).is_some() => RunState::Skipped,
            Phase::Failed => RunState::Failed,
            _ => return,
        };
        let (Some(owner), number) = (live.owner(), run_number(live)) else {
            return;
        };
        if let Ok(Some(run)) = self.store.run(&owner, number)
            && run.id == id
            && !run.state.is_final()
            && let Err(e) = self.store.finish_run(id, state, None, &s.message)
        {
            tracing::warn!("could not record the end of run {id}: {e}");
        }
    }

    /// Resumes a suspended pipeline step once every upstream run of the
    /// same pipeline succeeded.
    async fn resume_if_ready(&self, job: &k8s_openapi::api::batch::v1::Job, jobs: &[LiveObject]) {
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let Some(pipeline) = labels.get(objects::LABEL_PIPELINE) else {
            return;
        };
        let Some(upstream) = job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(objects::ANNOTATION_DEPENDS_ON))
        else {
            return;
        };
        let phase_of = |name: &str| {
            jobs.iter()
                .find(|j| {
                    let l = j.object.metadata.labels.clone().unwrap_or_default();
                    l.get(objects::LABEL_NAME).map(String::as_str) == Some(name)
                        && l.get(objects::LABEL_PIPELINE) == Some(pipeline)
                })
                .and_then(|j| typed::<k8s_openapi::api::batch::v1::Job>(j).ok())
                .map(|j| status::job_status(&j, &[]).phase)
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        // An upstream step failed (or was skipped): this one never runs.
        if let Some(failed) = upstream
            .split(',')
            .find(|u| phase_of(u) == Some(Phase::Failed))
        {
            let reason = format!("upstream job `{failed}` failed");
            if let Err(e) = self.applier.skip_job(&namespace, &name, &reason).await {
                tracing::warn!("could not mark {namespace}/{name} skipped: {e}");
            }
            return;
        }
        if upstream
            .split(',')
            .all(|u| phase_of(u) == Some(Phase::Succeeded))
            && let Err(e) = self.applier.resume_job(&namespace, &name).await
        {
            tracing::warn!("could not resume {namespace}/{name}: {e}");
        }
    }
}

fn run_number(j: &LiveObject) -> i64 {
    j.object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_RUN))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn typed<K: serde::de::DeserializeOwned>(o: &LiveObject) -> Result<K, serde_json::Error> {
    serde_json::to_value(&o.object).and_then(serde_json::from_value)
}

/// The address of a Service's cluster IP on port 80.
fn service_addr(o: &kube::core::DynamicObject) -> Option<SocketAddr> {
    let ip = o.data.get("spec")?.get("clusterIP")?.as_str()?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    Some(SocketAddr::new(ip, 80))
}

fn cluster_error(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cluster(e.to_string())
}

impl Runtime for KubernetesRuntime {
    fn observe(&self) -> Result<StateView, RuntimeError> {
        cairn_runtime::observe_applied(&self.inner.store)
    }

    fn apply(
        &self,
        action: &Action,
        resource: Option<&Resource>,
        ctx: &ApplyContext<'_>,
    ) -> Result<String, RuntimeError> {
        let inner = &self.inner;
        let key = &action.key;
        match (&action.change, resource) {
            (Change::Delete, _) => {
                let deleted = self
                    .block_on(inner.applier.prune_resource(key, &[], true))
                    .map_err(cluster_error)?;
                let mut state = inner.lock();
                state.desired.remove(key);
                state.services.remove(key);
                if state.models.remove(key).is_some() {
                    inner.gateway.remove(key);
                }
                Ok(if deleted.is_empty() {
                    "nothing to delete in the cluster".into()
                } else {
                    format!("deleted {}", deleted.join(", "))
                })
            }
            (Change::Create | Change::Update { .. }, Some(r)) => {
                let launches = launch::launches_for(r, ctx.checkout);
                let objects =
                    objects::objects_for(r, ctx.state, ctx.commit, &launches, &inner.settings)
                        .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
                let applied = self
                    .block_on(inner.applier.apply_all(&objects))
                    .map_err(cluster_error)?;
                let pruned = self
                    .block_on(inner.applier.prune_resource(key, &objects, false))
                    .map_err(cluster_error)?;
                let service = objects
                    .iter()
                    .zip(&applied)
                    .find(|(o, _)| o.kind() == ObjectKind::Service)
                    .and_then(|(_, a)| service_addr(a));
                {
                    let mut state = inner.lock();
                    state.desired.insert(key.clone(), objects.clone());
                    if let Some(addr) = service {
                        state.services.insert(key.clone(), addr);
                    }
                    if let Spec::Job(j) = &r.spec
                        && j.schedule.is_none()
                        && !j.trigger.as_ref().is_some_and(|t| t.manual)
                    {
                        state.sync_runs.insert(key.clone());
                    }
                }
                if let (Spec::Model(m), Some(_)) = (&r.spec, service) {
                    inner.serve(key, m, ctx.commit);
                    inner
                        .lock()
                        .models
                        .insert(key.clone(), ((**m).clone(), ctx.commit.to_string()));
                }
                let mut note = format!(
                    "applied {}",
                    objects
                        .iter()
                        .map(KubeObject::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if !pruned.is_empty() {
                    note.push_str(&format!("; pruned {}", pruned.join(", ")));
                }
                match r.spec {
                    Spec::Model(_) | Spec::Application(_) => {
                        inner.set_status(
                            key,
                            Phase::Progressing,
                            &format!("{note}; waiting for replicas"),
                        );
                    }
                    Spec::Job(ref j) => {
                        let message = match &j.schedule {
                            Some(s) => format!("{note}; runs on schedule `{}`", s.cron),
                            None => format!("{note}; runs on demand"),
                        };
                        inner.set_status(key, Phase::Idle, &message);
                    }
                    _ => {}
                }
                Ok(note)
            }
            _ => Ok(String::new()),
        }
    }

    fn finish_sync(&self, ctx: &ApplyContext<'_>) {
        let inner = &self.inner;
        // Remember every resource's objects, so that drift of unchanged ones
        // is repaired too — as applied, at the commit that applied them.
        let keys: BTreeSet<ResourceKey> = ctx.state.resources.keys().cloned().collect();
        let clean = !ctx.state.has_errors()
            && ctx.state.guard.all.is_none()
            && ctx.state.guard.broken_files.is_empty()
            && ctx.state.guard.broken_resources.is_empty();
        let missing: Vec<ResourceKey> = {
            let mut state = inner.lock();
            state.desired.retain(|k, _| keys.contains(k));
            keys.iter()
                .filter(|k| !state.desired.contains_key(*k))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let commits: HashMap<ResourceKey, String> = inner
                .store
                .applied()
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.key, a.commit))
                .collect();
            for key in missing {
                let (Some(r), Some(commit)) = (ctx.state.resources.get(&key), commits.get(&key))
                else {
                    continue;
                };
                let launches = launch::launches_for(r, ctx.checkout);
                if let Ok(objects) =
                    objects::objects_for(r, ctx.state, commit, &launches, &inner.settings)
                    && !objects.is_empty()
                {
                    // Objects applied before their UIDs were recorded are
                    // adopted once, after a start, so that they can be pruned.
                    match self.block_on(inner.applier.adopt(&key, &objects)) {
                        Ok(adopted) if !adopted.is_empty() => {
                            tracing::info!("recorded the UIDs of {}", adopted.join(", "));
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("could not adopt the objects of {key}: {e}"),
                    }
                    inner.lock().desired.insert(key, objects);
                }
            }
        }
        // Orphans can only appear when the set of resources changes (or
        // while the controller was down): sweep then, not on every sync.
        let swept = inner.lock().swept.as_ref() == Some(&keys);
        if clean && !swept {
            match self.block_on(inner.applier.prune_orphans(&keys, clean)) {
                Ok(deleted) => {
                    for d in deleted {
                        tracing::info!("pruned {d}: its spec was removed");
                        let _ = inner.store.audit(Some(ctx.commit), None, "prune", &d);
                    }
                    inner.lock().swept = Some(keys);
                }
                Err(e) => tracing::warn!("pruning failed: {e}"),
            }
        }
        let targets: Vec<ResourceKey> = std::mem::take(&mut inner.lock().sync_runs)
            .into_iter()
            .collect();
        if !targets.is_empty()
            && let Err(e) = self.run_job(RunRequest {
                targets,
                trigger: "sync".into(),
                params: None,
                with_upstream: false,
                actor: ctx.actor.to_string(),
            })
        {
            tracing::warn!("could not start jobs for commit {}: {e}", ctx.commit);
        }
    }

    fn restore(&self, applied: &[Applied], _checkout: &dyn Fn(&str) -> Option<PathBuf>) {
        // Models are served again through their Services, which outlive the controller.
        let inner = &self.inner;
        let services = match self.block_on(inner.applier.list(
            ObjectKind::Service,
            &format!("{}=cairn", objects::LABEL_MANAGED_BY),
        )) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("could not read Services from the cluster: {e}");
                return;
            }
        };
        for a in applied {
            let Some(live) = services.iter().find(|s| s.owner().as_ref() == Some(&a.key)) else {
                continue;
            };
            let Some(addr) = service_addr(&live.object) else {
                continue;
            };
            inner.lock().services.insert(a.key.clone(), addr);
            if a.key.kind == Kind::Model
                && let Some(m) = cairn_runtime::spec_of::<ModelSpec>(&a.value)
            {
                inner.serve(&a.key, &m, &a.commit);
                inner
                    .lock()
                    .models
                    .insert(a.key.clone(), (m, a.commit.clone()));
            }
        }
    }

    /// Reads the log of a run's (latest) pod or of a replica from the
    /// cluster into a file under the data directory.
    fn logs(&self, target: &LogTarget) -> Result<LogSource, RuntimeError> {
        let inner = &self.inner;
        let (key, selector, index) = match target {
            LogTarget::Run(key, number) => {
                if inner.store.run(key, *number)?.is_none() {
                    return Err(RuntimeError::NotFound(format!(
                        "{key} has no run #{number}"
                    )));
                }
                let selector = format!("{},{LABEL_RUN}={number}", objects::selector_string(key));
                (key, selector, None)
            }
            LogTarget::Replica(key, replica) => {
                (key, objects::selector_string(key), Some(*replica))
            }
        };
        let text = self
            .block_on(inner.read_log(key, &selector, index))
            .map_err(|e| match e {
                ApplyError::Api { message, .. } if message.starts_with("no pod") => {
                    RuntimeError::NotFound(message)
                }
                other => cluster_error(other),
            })?;
        std::fs::create_dir_all(&inner.logs_dir)?;
        let file = match target {
            LogTarget::Run(_, n) => format!("run-{n}"),
            LogTarget::Replica(_, r) => format!("replica-{r}"),
        };
        let path = inner.logs_dir.join(format!(
            "{}-{}-{}-{file}.log",
            objects::kind_label(key.kind),
            key.project.as_ref().map_or("", |p| p.as_str()),
            key.name
        ));
        std::fs::write(&path, text)?;
        // A snapshot read now: the log API must not wait for it to grow.
        Ok(LogSource { path, live: false })
    }
}

impl Inner {
    /// The log of the main container of a pod: for a run, of the newest
    /// pod of its Job (selected by `job_selector`); for a replica, of the
    /// `index`th pod by name.
    async fn read_log(
        &self,
        key: &ResourceKey,
        job_selector: &str,
        index: Option<i64>,
    ) -> Result<String, ApplyError> {
        let client = self.applier.client().clone();
        let api_error = |object: &str, e: kube::Error| ApplyError::Api {
            object: object.to_string(),
            message: e.to_string(),
        };
        let (namespace, pod_selector) = match index {
            None => {
                let jobs = self.applier.list(ObjectKind::Job, job_selector).await?;
                let job = jobs.first().ok_or_else(|| ApplyError::Api {
                    object: key.to_string(),
                    message: format!(
                        "no pod: the run's Job is gone from the cluster ({job_selector})"
                    ),
                })?;
                (
                    job.object.metadata.namespace.clone().unwrap_or_default(),
                    format!(
                        "job-name={}",
                        job.object.metadata.name.clone().unwrap_or_default()
                    ),
                )
            }
            Some(_) => {
                let deployments = self
                    .applier
                    .list(ObjectKind::Deployment, job_selector)
                    .await?;
                let d = deployments.first().ok_or_else(|| ApplyError::Api {
                    object: key.to_string(),
                    message: format!("no pod: {key} has no Deployment in the cluster"),
                })?;
                let labels: Vec<String> = objects::selector(key)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                (
                    d.object.metadata.namespace.clone().unwrap_or_default(),
                    labels.join(","),
                )
            }
        };
        let pods_api: Api<Pod> = Api::namespaced(client, &namespace);
        let mut pods = pods_api
            .list(&ListParams::default().labels(&pod_selector))
            .await
            .map_err(|e| api_error("listing pods", e))?
            .items;
        let pod = match index {
            None => {
                pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                pods.pop()
            }
            Some(i) => {
                pods.sort_by_key(|p| p.metadata.name.clone());
                usize::try_from(i)
                    .ok()
                    .and_then(|i| pods.into_iter().nth(i))
            }
        };
        let pod = pod.ok_or_else(|| ApplyError::Api {
            object: key.to_string(),
            message: format!("no pod of {key} in namespace {namespace} yet"),
        })?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        pods_api
            .logs(
                &name,
                &kube::api::LogParams {
                    container: Some("main".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| api_error(&format!("the log of pod {namespace}/{name}"), e))
    }
}

impl KubernetesRuntime {
    /// Starts jobs as one pipeline: a run (`Job`) of each target, after
    /// runs of its upstream jobs with `with_upstream`. Runs are made from
    /// the jobs' `CronJob` templates; steps whose upstream jobs are part of
    /// the pipeline start suspended and are resumed by the status refresh
    /// once those succeed.
    pub fn run_job(&self, request: RunRequest) -> Result<Vec<Run>, RuntimeError> {
        let inner = &self.inner;
        let applied: HashMap<ResourceKey, Applied> = inner
            .store
            .applied()?
            .into_iter()
            .map(|a| (a.key.clone(), a))
            .collect();
        let spec_of = |key: &ResourceKey| {
            applied
                .get(key)
                .and_then(|a| cairn_runtime::spec_of::<cairn_spec::JobSpec>(&a.value))
        };
        // Upstream first, each job once.
        let mut order: Vec<ResourceKey> = Vec::new();
        fn visit(
            key: &ResourceKey,
            upstream: bool,
            spec_of: &dyn Fn(&ResourceKey) -> Option<cairn_spec::JobSpec>,
            order: &mut Vec<ResourceKey>,
            depth: usize,
        ) {
            if order.contains(key) || depth > 64 {
                return;
            }
            if upstream && let Some(spec) = spec_of(key) {
                for d in &spec.depends_on {
                    let up = ResourceKey {
                        kind: Kind::Job,
                        project: key.project.clone(),
                        name: d.clone(),
                    };
                    visit(&up, upstream, spec_of, order, depth + 1);
                }
            }
            order.push(key.clone());
        }
        for t in &request.targets {
            if spec_of(t).is_none() {
                return Err(RuntimeError::NotFound(format!("{t} is not applied")));
            }
            visit(t, request.with_upstream, &spec_of, &mut order, 0);
        }
        let pipeline = uuid::Uuid::now_v7().simple().to_string()[..16].to_string();
        let mut runs = Vec::new();
        let mut jobs = Vec::new();
        for key in &order {
            let spec = spec_of(key).unwrap_or_default();
            let template = inner.lock().desired.get(key).and_then(|objects| {
                objects.iter().find_map(|o| match o {
                    KubeObject::CronJob(c) => Some((**c).clone()),
                    _ => None,
                })
            });
            let Some(template) = template else {
                return Err(RuntimeError::NotFound(format!(
                    "{key} has no CronJob in the cluster yet"
                )));
            };
            let mut params: serde_json::Map<String, serde_json::Value> = spec
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let is_target = request.targets.contains(key);
            let mut overrides = BTreeMap::new();
            if is_target && let Some(p) = &request.params {
                params.extend(p.clone());
                for (k, v) in p {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    overrides.insert(k.clone(), text);
                }
            }
            let trigger = if is_target {
                request.trigger.as_str()
            } else {
                "pipeline"
            };
            let commit = applied
                .get(key)
                .map(|a| a.commit.clone())
                .unwrap_or_default();
            let run = inner.store.create_run(
                key,
                trigger,
                &pipeline,
                &commit,
                &serde_json::Value::Object(params),
                &std::env::temp_dir(),
            )?;
            let waiting: Vec<String> = spec
                .depends_on
                .iter()
                .filter(|d| order.iter().any(|k| k.name == **d))
                .map(ToString::to_string)
                .collect();
            let mut job =
                objects::run_from_template(&template, run.number, &pipeline, &waiting, &overrides);
            job.metadata
                .annotations
                .get_or_insert_default()
                .insert(ANNOTATION_RUN_ID.into(), run.id.to_string());
            jobs.push(KubeObject::Job(Box::new(job)));
            let _ = inner.store.audit(
                Some(&commit),
                Some(key),
                "run",
                &format!("run #{} created ({trigger})", run.number),
            );
            runs.push(run);
        }
        self.block_on(inner.applier.apply_all(&jobs))
            .map_err(cluster_error)?;
        for (key, job) in order.iter().zip(&jobs) {
            inner.set_status(
                key,
                Phase::Progressing,
                &format!("{} created", job.describe()),
            );
        }
        Ok(runs)
    }
}
