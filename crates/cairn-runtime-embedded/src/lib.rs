//! The embedded runtime: everything on this machine.
//!
//! Jobs run as supervised processes in their own process groups, with logs
//! in files, retries, timeouts, cron schedules and `dependsOn` pipelines
//! ([`jobs`]); applications run as restarted replicas on free ports behind
//! the gateway's `/apps/NAME/` proxy ([`apps`]). Compute pools hand out GPUs
//! through `CUDA_VISIBLE_DEVICES`, and project quotas are enforced when runs
//! and replicas are admitted.

mod apps;
mod drift;
mod environments;
pub mod envs;
pub mod gpu;
mod jobs;
mod models;
mod plugins;
pub mod process;
mod quotas;
mod retrain;
mod shared;

use crate::environments::Environments;
use crate::gpu::GpuInventory;
use crate::plugins::Plugins;
use crate::quotas::Quotas;
use crate::shared::Shared;
use cairn_gateway::service::Gateway;
use cairn_plan::loader::{Resource, ResourceKey};
use cairn_plan::plan::{Action, Change, StateView};
use cairn_runtime::{ApplyContext, LogSource, LogTarget, Runtime, RuntimeError, spec_of};
use cairn_spec::{
    ApplicationSpec, ComputePoolSpec, EnvironmentSpec, GpuSelection, JobSpec, Kind, ModelSpec,
    ProjectSpec, Spec,
};
use cairn_store::events::{EventLog, EventLogConfig};
use cairn_store::keys::KeyStore;
use cairn_store::{Applied, Phase, Store};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;

pub use cairn_runtime::RunRequest;
pub use drift::DriftError;

/// The embedded runtime. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shared: Arc<Shared>,
    quotas: Arc<Quotas>,
    envs: Arc<Environments>,
    plugins: Arc<Plugins>,
    state: Mutex<State>,
    gateway: Arc<Gateway>,
    /// Drift monitors of the served models.
    drift: drift::DriftMonitors,
    verdicts: cairn_monitor::drift::DriftVerdicts,
    business: Arc<cairn_monitor::business::BusinessMetrics>,
    summaries: Arc<cairn_monitor::summary::Summaries>,
    /// Where new artifacts to promote through Git are announced (see
    /// [`EmbeddedRuntime::take_promotions`]).
    promotions: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<PromotionRequest>>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >,
}

/// A new artifact of a model to promote through Git.
#[derive(Clone, Debug)]
pub struct PromotionRequest {
    /// The model.
    pub model: ResourceKey,
    /// The artifact's digest.
    pub sha256: String,
    /// The run that produced it.
    pub run_id: i64,
    /// How to promote.
    pub promotion: cairn_spec::Promotion,
    /// The commit message.
    pub message: String,
}

#[derive(Default)]
struct State {
    jobs: HashMap<ResourceKey, jobs::JobDef>,
    apps: HashMap<ResourceKey, apps::AppDef>,
    /// Jobs created or changed by the current sync, run when it finishes.
    sync_runs: BTreeSet<ResourceKey>,
    /// Cancel switches of active runs, by run id.
    cancels: HashMap<i64, tokio::sync::watch::Sender<bool>>,
    /// Round-robin counter for application replicas.
    next_replica: usize,
    /// Served models.
    models: HashMap<ResourceKey, models::ModelDef>,
}

impl EmbeddedRuntime {
    /// A runtime keeping its files under `data_dir` and its records in `store`.
    /// Must be created inside a tokio runtime.
    pub fn new(
        store: Arc<Store>,
        data_dir: &Path,
        gpus: GpuInventory,
    ) -> Result<Self, RuntimeError> {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let events = EventLog::open(&data_dir.join("events.db"), EventLogConfig::default())
            .map_err(|e| RuntimeError::Start(format!("inference event log: {e}")))?;
        let keys = KeyStore::open(&data_dir.join("keys.db"))
            .map_err(|e| RuntimeError::Start(format!("access keys: {e}")))?;
        let plugins =
            cairn_plugin_host::PluginHost::new(Some(&data_dir.join("plugins").join("cache")))
                .map_err(|e| RuntimeError::Start(format!("plugin host: {e}")))?;
        let gateway = Arc::new(Gateway::new(events.clone(), keys));
        let business = Arc::new(cairn_monitor::business::BusinessMetrics::start(
            events,
            gateway.metrics.plugin_events.clone(),
        ));
        gateway.set_event_tap(business.clone());
        let shared = Arc::new(Shared::new(
            store.clone(),
            data_dir.to_path_buf(),
            Handle::current(),
        ));
        let runtime = EmbeddedRuntime {
            inner: Arc::new(Inner {
                quotas: Arc::new(Quotas::new(gpus)),
                envs: Arc::new(Environments::new(shared.clone(), &data_dir.join("envs"))),
                plugins: Arc::new(Plugins::new(store, plugins)),
                shared,
                state: Mutex::new(State::default()),
                gateway,
                drift: drift::DriftMonitors::default(),
                verdicts: Default::default(),
                business,
                summaries: Default::default(),
                promotions: std::sync::OnceLock::new(),
                http,
            }),
        };
        runtime
            .inner
            .shared
            .handle
            .spawn(sample_metrics(Arc::downgrade(&runtime.inner)));
        runtime
            .inner
            .shared
            .handle
            .spawn(refresh_model_scores(Arc::downgrade(&runtime.inner)));
        runtime.inner.shared.handle.spawn(retrain::watch(
            Arc::downgrade(&runtime.inner),
            runtime.inner.verdicts.subscribe(),
        ));
        Ok(runtime)
    }

    /// The model gateway.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.inner.gateway.clone()
    }

    /// The dashboard's kept monitoring summaries.
    pub fn summaries(&self) -> Arc<cairn_monitor::summary::Summaries> {
        self.inner.summaries.clone()
    }

    /// Every drift verdict from now on (see
    /// [`cairn_monitor::drift::DriftVerdicts::subscribe`]).
    pub fn subscribe_drift(
        &self,
    ) -> tokio::sync::broadcast::Receiver<cairn_monitor::drift::DriftVerdict> {
        self.inner.verdicts.subscribe()
    }

    /// Sets the URL of the HTTP server (`http://HOST:PORT`), passed to job
    /// runs and application replicas started from now on as `CAIRN_SERVER`.
    /// Only the first call counts.
    pub fn set_server_url(&self, url: String) {
        let _ = self.inner.shared.server_url.set(url);
    }

    /// The stream of artifacts to promote through Git: a job produced a
    /// new artifact for a model whose `monitoring.drift.onDrift.promote` is
    /// set. Whoever takes it writes the pin (see
    /// [`cairn_controller::Controller::pin_model`]). Only the first call
    /// gets the stream; without a taker, promotions are logged and dropped.
    pub fn take_promotions(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<PromotionRequest>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.promotions.set(tx).ok().map(|_| rx)
    }

    /// The GPUs this machine has.
    pub fn gpus(&self) -> &GpuInventory {
        self.inner.quotas.gpus()
    }

    /// Starts a run of `job` (its upstream jobs first); returns the runs
    /// created, the requested job's last.
    pub fn run_job(&self, request: RunRequest) -> Result<Vec<cairn_store::Run>, RuntimeError> {
        self.inner.trigger(request)
    }

    /// Evaluates the drift of model `name` over its last window now.
    pub async fn evaluate_drift(
        &self,
        name: &str,
    ) -> Result<cairn_monitor::drift::DriftVerdict, DriftError> {
        let key = self
            .inner
            .state()
            .models
            .keys()
            .find(|k| k.name.as_str() == name)
            .cloned()
            .ok_or_else(|| DriftError::NoModel(name.to_string()))?;
        self.inner.evaluate_drift(&key).await
    }

    /// The WebAssembly plugin host.
    pub fn plugin_host(&self) -> cairn_plugin_host::PluginHost {
        self.inner.plugins.host().clone()
    }

    /// A ready replica of application `name` to send a request to.
    pub fn app_upstream(&self, name: &str) -> Option<SocketAddr> {
        self.inner.app_upstream(name)
    }

    /// Stops everything this runtime started (jobs are left running only if
    /// `keep_running`, so that a restart can adopt them).
    pub async fn shutdown(&self, keep_running: bool) {
        self.inner.shutdown(keep_running).await;
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn shutdown(&self, keep_running: bool) {
        self.gateway.flush().await;
        let apps: Vec<ResourceKey> = self.state().apps.keys().cloned().collect();
        for key in apps {
            self.stop_app(&key, !keep_running).await;
        }
        if !keep_running {
            let cancels: Vec<_> = self.state().cancels.values().cloned().collect();
            for c in cancels {
                let _ = c.send(true);
            }
        }
    }
}

impl Runtime for EmbeddedRuntime {
    fn observe(&self) -> Result<StateView, RuntimeError> {
        cairn_runtime::observe_applied(&self.inner.shared.store)
    }

    fn apply(
        &self,
        action: &Action,
        resource: Option<&Resource>,
        ctx: &ApplyContext<'_>,
    ) -> Result<String, RuntimeError> {
        let inner = &self.inner;
        let key = &action.key;
        match (&action.change, resource.map(|r| &r.spec)) {
            (Change::Delete, _) => match key.kind {
                Kind::Project => {
                    inner.quotas.forget_project(&key.name);
                    Ok("forgotten".into())
                }
                Kind::ComputePool => {
                    inner.quotas.forget_pool(&key.name);
                    Ok("forgotten".into())
                }
                Kind::Job => Ok(inner.remove_job(key)),
                Kind::Application => {
                    inner.remove_app(key);
                    Ok("stopping its replicas".into())
                }
                Kind::Environment => {
                    inner.envs.forget(key);
                    Ok("forgotten".into())
                }
                Kind::Model => {
                    inner.undeploy_model(key);
                    Ok("no longer served".into())
                }
                Kind::Plugin => {
                    inner.plugins.forget_plugin(key);
                    Ok("forgotten".into())
                }
                Kind::Dataset => Ok("forgotten".into()),
            },
            (Change::Create | Change::Update { .. }, Some(spec)) => {
                let updated = matches!(action.change, Change::Update { .. });
                if matches!(spec, Spec::Model(_) | Spec::Application(_)) {
                    inner.plugins.note_broken_plugins(ctx.commit, ctx.state);
                }
                match spec {
                    Spec::Project(p) => {
                        inner.quotas.set_project(&key.name, p);
                        Ok("recorded".into())
                    }
                    Spec::ComputePool(p) => {
                        inner.quotas.register_pool(&key.name, p);
                        Ok(match p.local.as_ref().map(|l| &l.gpus) {
                            Some(GpuSelection::All) => {
                                format!(
                                    "local pool with {} GPU(s)",
                                    inner.quotas.gpus().devices.len()
                                )
                            }
                            Some(GpuSelection::Devices(d)) => format!("local pool with GPUs {d:?}"),
                            _ if p.local.is_some() => "local pool".into(),
                            _ => "Kubernetes-only pool: nothing runs here".into(),
                        })
                    }
                    Spec::Job(j) => Ok(inner.register_job(
                        key,
                        j,
                        ctx.commit,
                        ctx.checkout,
                        &action.file,
                        updated,
                        true,
                    )),
                    Spec::Application(a) => {
                        inner.start_app(key, a, ctx.commit, ctx.checkout, &action.file)
                    }
                    Spec::Model(m) => {
                        inner.deploy_model(key, m, ctx.commit, ctx.checkout, &action.file)
                    }
                    Spec::Environment(e) => {
                        inner.envs.record(key, e);
                        Ok(match &e.image {
                            Some(image) if !e.needs_python() => {
                                format!("image {image} (Kubernetes only)")
                            }
                            _ => "recorded; built when a workload first needs it".into(),
                        })
                    }
                    Spec::Plugin(p) => {
                        inner
                            .plugins
                            .record_plugin(key, p, &action.file, ctx.checkout);
                        if updated {
                            inner.plugin_changed(key);
                            inner.restart_apps_of_framework(key, ctx);
                        }
                        Ok("recorded; compiled when first used".into())
                    }
                    Spec::Dataset(_) => Ok("recorded".into()),
                }
            }
            _ => Ok(String::new()),
        }
    }

    fn finish_sync(&self, ctx: &ApplyContext<'_>) {
        self.inner.collect_environments();
        let targets: Vec<ResourceKey> = std::mem::take(&mut self.inner.state().sync_runs)
            .into_iter()
            .collect();
        if targets.is_empty() {
            return;
        }
        let request = RunRequest {
            targets,
            trigger: "sync".into(),
            params: None,
            with_upstream: false,
        };
        if let Err(e) = self.inner.trigger(request) {
            tracing::warn!("could not start jobs for commit {}: {e}", ctx.commit);
        }
    }

    fn restore(&self, applied: &[Applied], checkout: &dyn Fn(&str) -> Option<PathBuf>) {
        let inner = &self.inner;
        // Projects and pools first: jobs and apps need them.
        for a in applied {
            match a.key.kind {
                Kind::Project => {
                    if let Some(p) = spec_of::<ProjectSpec>(&a.value) {
                        inner.quotas.set_project(&a.key.name, &p);
                    }
                }
                Kind::ComputePool => {
                    if let Some(p) = spec_of::<ComputePoolSpec>(&a.value) {
                        inner.quotas.register_pool(&a.key.name, &p);
                    }
                }
                Kind::Environment => {
                    if let Some(e) = spec_of::<EnvironmentSpec>(&a.value) {
                        inner.envs.record(&a.key, &e);
                    }
                }
                Kind::Plugin => {
                    if let (Some(p), Some(dir)) = (
                        spec_of::<cairn_spec::PluginSpec>(&a.value),
                        checkout(&a.commit),
                    ) {
                        inner.plugins.record_plugin(&a.key, &p, &a.file, &dir);
                    }
                }
                _ => {}
            }
        }
        for a in applied {
            let Some(dir) = checkout(&a.commit) else {
                inner.shared.set_status(
                    &a.key,
                    Phase::Failed,
                    "the commit's files could not be checked out again",
                );
                continue;
            };
            match a.key.kind {
                Kind::Job => {
                    if let Some(j) = spec_of::<JobSpec>(&a.value) {
                        inner.register_job(&a.key, &j, &a.commit, &dir, &a.file, false, false);
                    }
                }
                Kind::Model => {
                    if let Some(m) = spec_of::<ModelSpec>(&a.value)
                        && let Err(e) = inner.deploy_model(&a.key, &m, &a.commit, &dir, &a.file)
                    {
                        inner
                            .shared
                            .set_status(&a.key, Phase::Failed, &e.to_string());
                    }
                }
                Kind::Application => {
                    if let Some(app) = spec_of::<ApplicationSpec>(&a.value)
                        && let Err(e) = inner.start_app(&a.key, &app, &a.commit, &dir, &a.file)
                    {
                        inner
                            .shared
                            .set_status(&a.key, Phase::Failed, &e.to_string());
                    }
                }
                _ => {}
            }
        }
        inner.resume_runs();
    }

    fn logs(&self, target: &LogTarget) -> Result<LogSource, RuntimeError> {
        match target {
            LogTarget::Run(job, number) => {
                let run =
                    self.inner.shared.store.run(job, *number)?.ok_or_else(|| {
                        RuntimeError::NotFound(format!("{job} has no run #{number}"))
                    })?;
                Ok(LogSource {
                    path: PathBuf::from(run.log_path),
                    live: !run.state.is_final(),
                })
            }
            LogTarget::Replica(app, replica) => {
                let path = self.inner.replica_log(app, *replica);
                if !path.exists() {
                    return Err(RuntimeError::NotFound(format!(
                        "{app} has no replica {replica}"
                    )));
                }
                Ok(LogSource { path, live: true })
            }
        }
    }
}

impl Inner {
    /// Removes environments that no applied workload uses any more.
    fn collect_environments(&self) {
        let live: BTreeSet<ResourceKey> = {
            let state = self.state();
            state
                .jobs
                .keys()
                .chain(state.apps.keys())
                .cloned()
                .collect()
        };
        self.envs.collect_environments(&live);
    }
}

/// Every 30 s (`CAIRN_MONITORING_INTERVAL`): the Prometheus gauges of model
/// scores (accuracy, label coverage, MAE) over the last hour, per model and
/// version, from the monitoring data.
async fn refresh_model_scores(inner: std::sync::Weak<Inner>) {
    let every = std::env::var("CAIRN_MONITORING_INTERVAL")
        .ok()
        .and_then(|d| humantime::parse_duration(&d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(std::time::Duration::from_secs(30));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(gateway) = inner.upgrade().map(|i| i.gateway.clone()) else {
            return;
        };
        let scores = tokio::task::spawn_blocking(move || {
            let to = chrono::Utc::now().timestamp_millis() + 1;
            let from = to - 3_600_000;
            let mut scores = Vec::new();
            let mut seen = BTreeSet::new();
            for endpoint in gateway.endpoints() {
                let name = endpoint.key.name.to_string();
                if !seen.insert(name.clone()) {
                    continue;
                }
                let conn = gateway.events.monitor();
                match cairn_monitor::summary::current_scores(
                    &conn,
                    &name,
                    endpoint.spec.task,
                    from,
                    to,
                ) {
                    Ok(s) => scores.extend(s),
                    Err(e) => tracing::warn!("model scores of `{name}`: {e}"),
                }
            }
            gateway.metrics.set_model_scores(&scores);
        })
        .await;
        if let Err(e) = scores {
            tracing::warn!("model scores: {e}");
        }
    }
}

/// Every 10 s: closes the metrics interval and samples CPU, memory and GPUs
/// of the gateway and of model replicas.
async fn sample_metrics(inner: std::sync::Weak<Inner>) {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);
    let mut system = System::new();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let metrics = &inner.gateway.metrics;
        let mut pids = vec![("gateway".to_string(), 0usize, std::process::id())];
        // The GPUs held by each model's replicas (their allocator holders).
        let held: HashMap<String, Vec<u32>> = inner.quotas.assignments().into_iter().collect();
        let mut model_gpus: HashMap<String, BTreeSet<u32>> = HashMap::new();
        if let Ok(processes) = inner.shared.store.processes() {
            for p in processes.into_iter().filter(|p| p.key.kind == Kind::Model) {
                let holder = format!("app:{}:{}:{}", p.key.id(), p.replica, p.port);
                if let Some(devices) = held.get(&holder) {
                    model_gpus
                        .entry(p.key.name.to_string())
                        .or_default()
                        .extend(devices);
                }
                pids.push((p.key.name.to_string(), p.replica as usize, p.pid as u32));
            }
        }
        let list: Vec<Pid> = pids.iter().map(|(_, _, pid)| Pid::from_u32(*pid)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&list),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        // Per model: its replicas' CPU and memory summed; in-process (ONNX)
        // models are the gateway's.
        let mut used: HashMap<String, (f64, u64)> = HashMap::new();
        let mut gateway = None;
        for (i, (name, replica, pid)) in pids.into_iter().enumerate() {
            if let Some(p) = system.process(Pid::from_u32(pid)) {
                let cpu = p.cpu_usage() as f64 / 100.0;
                metrics.set_process(&name, replica, cpu, p.memory());
                if i == 0 {
                    gateway = Some((cpu, p.memory()));
                } else {
                    let u = used.entry(name).or_default();
                    u.0 += cpu;
                    u.1 += p.memory();
                }
            }
        }
        let gpus = crate::gpu::sample_usage();
        for endpoint in inner.gateway.endpoints() {
            let name = endpoint.key.name.to_string();
            if let Some(devices) = model_gpus.get(&name) {
                let usage: Vec<_> = gpus.iter().filter(|g| devices.contains(&g.index)).collect();
                if !usage.is_empty() {
                    let utilization = usage
                        .iter()
                        .map(|g| f64::from(g.utilization_percent))
                        .sum::<f64>()
                        / usage.len() as f64;
                    let memory = usage.iter().map(|g| g.memory_used_bytes).sum();
                    metrics.set_model_gpu(&name, utilization, memory);
                }
            }
            let u = match used.get(&name) {
                Some(u) => Some(*u),
                None if endpoint.spec.runtime == cairn_spec::ModelRuntime::Onnx => gateway,
                None => None,
            };
            if let Some((cpu, memory)) = u {
                metrics.set_model_resources(&name, cpu, memory);
            }
        }
        metrics.sample(EVERY.as_secs_f64());
        for g in gpus {
            metrics.set_gpu(g.index, g.utilization_percent, g.memory_used_bytes);
        }
    }
}
