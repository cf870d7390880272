//! The embedded runtime: everything on this machine.
//!
//! Jobs run as supervised processes in their own process groups, with logs
//! in files, retries, timeouts, cron schedules and `dependsOn` pipelines
//! ([`jobs`]); applications run as restarted replicas on free ports behind
//! the gateway's `/apps/NAME/` proxy ([`apps`]). Compute pools hand out GPUs
//! through `CUDA_VISIBLE_DEVICES`, and project quotas are enforced when runs
//! and replicas are admitted.
//!
//! # Owners
//!
//! The runtime is composed of owners, each with its own state behind its
//! own lock and only the shared handles it needs:
//!
//! - [`Shared`](shared): the store, the data directory, the tokio handle,
//!   the server's URL, and statuses with their last plugin failure;
//! - [`Quotas`](quotas): projects, pools, GPUs and what running workloads
//!   hold (admission);
//! - [`Environments`](environments): declared environments and their users;
//! - [`Plugins`](plugins): applied Plugin specs and the plugin host;
//! - [`Jobs`](jobs): applied jobs, schedules and active runs (uses Quotas,
//!   Environments);
//! - [`Apps`](apps): application replicas, and those of process models
//!   (uses Quotas, Environments, Plugins for app frameworks);
//! - [`Models`](models): served models, drift monitors ([`drift`]),
//!   drift-triggered retraining ([`retrain`]) and promotions (uses Plugins,
//!   Apps for process replicas, Jobs to retrain; the gateway).
//!
//! Jobs tell Models of successful runs through a callback set when the
//! runtime is made (Models holds Jobs, so Jobs holds no Models).
//!
//! # Lock order
//!
//! No owner calls another owner with its own lock held: each takes its
//! lock, copies or changes what it needs, and releases it before calling
//! out. Only leaf locks are taken under an owner's lock, always in this
//! order:
//!
//! 1. an owner's state (Jobs, Apps, Models, Plugins, Quotas, Environments,
//!    Plugins' broken specs — never two of them);
//! 2. the statuses' plugin failures ([`Shared::set_status`], called with
//!    Apps' state locked when replicas become ready);
//! 3. the gateway's and the store's own locks (Models installs a process
//!    model's version with its state locked; the gateway asks Apps for a
//!    process model's replica without holding any of its own).
//!
//! Drift monitors' task and fitted-state locks are leaves too, never held
//! while another lock is taken.

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
mod tracking;

use crate::apps::Apps;
use crate::environments::Environments;
use crate::gpu::GpuInventory;
use crate::jobs::Jobs;
use crate::models::Models;
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
use std::sync::{Arc, Weak};
use tokio::runtime::Handle;

pub use cairn_runtime::RunRequest;
pub use drift::DriftError;

/// The embedded runtime. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRuntime {
    shared: Arc<Shared>,
    quotas: Arc<Quotas>,
    envs: Arc<Environments>,
    plugins: Arc<Plugins>,
    jobs: Arc<Jobs>,
    apps: Arc<Apps>,
    models: Arc<Models>,
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

impl EmbeddedRuntime {
    /// A runtime keeping its files under `data_dir` and its records in `store`.
    /// Must be created inside a tokio runtime.
    pub fn new(
        store: Arc<Store>,
        data_dir: &Path,
        gpus: GpuInventory,
    ) -> Result<Self, RuntimeError> {
        let events = EventLog::open(&data_dir.join("events.db"), EventLogConfig::default())
            .map_err(|e| RuntimeError::Start(format!("inference event log: {e}")))?;
        let keys = KeyStore::open(&data_dir.join("keys.db"))
            .map_err(|e| RuntimeError::Start(format!("access keys: {e}")))?;
        let host =
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
        let quotas = Arc::new(Quotas::new(gpus));
        let envs = Arc::new(Environments::new(shared.clone(), &data_dir.join("envs")));
        let plugins = Arc::new(Plugins::new(store, host));
        let jobs = Arc::new(Jobs::new(shared.clone(), quotas.clone(), envs.clone()));
        let apps = Arc::new(Apps::new(
            shared.clone(),
            quotas.clone(),
            envs.clone(),
            plugins.clone(),
        ));
        let models = Arc::new(Models::new(
            shared.clone(),
            plugins.clone(),
            apps.clone(),
            jobs.clone(),
            gateway,
            business,
        ));
        // A successful run's new artifacts go to the models that follow
        // its job.
        let followers = Arc::downgrade(&models);
        jobs.on_success(move |job| {
            if let Some(models) = followers.upgrade() {
                models.artifact_produced(job);
            }
        });
        shared.handle.spawn(sample_metrics(
            Arc::downgrade(&models),
            Arc::downgrade(&quotas),
        ));
        shared
            .handle
            .spawn(refresh_model_scores(Arc::downgrade(&models)));
        shared.handle.spawn(retrain::watch(
            Arc::downgrade(&models),
            models.verdicts.subscribe(),
        ));
        Ok(EmbeddedRuntime {
            shared,
            quotas,
            envs,
            plugins,
            jobs,
            apps,
            models,
        })
    }

    /// The model gateway.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.models.gateway.clone()
    }

    /// The dashboard's kept monitoring summaries.
    pub fn summaries(&self) -> Arc<cairn_monitor::summary::Summaries> {
        self.models.summaries.clone()
    }

    /// Every drift verdict from now on (see
    /// [`cairn_monitor::drift::DriftVerdicts::subscribe`]).
    pub fn subscribe_drift(
        &self,
    ) -> tokio::sync::broadcast::Receiver<cairn_monitor::drift::DriftVerdict> {
        self.models.verdicts.subscribe()
    }

    /// Sets the URL of the HTTP server (`http://HOST:PORT`), passed to job
    /// runs and application replicas started from now on as `CAIRN_SERVER`.
    /// Only the first call counts.
    pub fn set_server_url(&self, url: String) {
        let _ = self.shared.server_url.set(url);
    }

    /// Gives every job run and application replica started from now on a
    /// token of its own as `CAIRN_TOKEN` (`editor` in its project, revoked
    /// when it ends).
    pub fn set_workload_tokens(&self, on: bool) {
        self.shared
            .workload_tokens
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The stream of artifacts to promote through Git: a job produced a
    /// new artifact for a model whose `monitoring.drift.onDrift.promote` is
    /// set. Whoever takes it writes the pin (see
    /// [`cairn_controller::Controller::pin_model`]). Only the first call
    /// gets the stream; without a taker, promotions are logged and dropped.
    pub fn take_promotions(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<PromotionRequest>> {
        self.models.take_promotions()
    }

    /// The GPUs this machine has.
    pub fn gpus(&self) -> &GpuInventory {
        self.quotas.gpus()
    }

    /// Starts a run of `job` (its upstream jobs first); returns the runs
    /// created, the requested job's last.
    pub fn run_job(&self, request: RunRequest) -> Result<Vec<cairn_store::Run>, RuntimeError> {
        self.jobs.trigger(request)
    }

    /// Evaluates the drift of a model over its last window now.
    pub async fn evaluate_drift(
        &self,
        model: &ResourceKey,
    ) -> Result<cairn_monitor::drift::DriftVerdict, DriftError> {
        self.models.evaluate_drift(model).await
    }

    /// The WebAssembly plugin host.
    pub fn plugin_host(&self) -> cairn_plugin_host::PluginHost {
        self.plugins.host().clone()
    }

    /// The applications called `name`, whatever their project.
    pub fn apps_named(&self, name: &str) -> Vec<ResourceKey> {
        self.apps.apps_named(name)
    }

    /// A ready replica of an application to send a request to.
    pub fn app_upstream(&self, app: &ResourceKey) -> Option<SocketAddr> {
        self.apps.app_upstream(app)
    }

    /// Stops everything this runtime started (jobs are left running only if
    /// `keep_running`, so that a restart can adopt them).
    pub async fn shutdown(&self, keep_running: bool) {
        self.models.gateway.flush().await;
        self.apps.shutdown(keep_running).await;
        if !keep_running {
            self.jobs.cancel_all();
        }
    }

    /// Removes environments that no applied workload uses any more.
    fn collect_environments(&self) {
        let live: BTreeSet<ResourceKey> = self
            .jobs
            .keys()
            .into_iter()
            .chain(self.apps.keys())
            .collect();
        self.envs.collect_environments(&live);
    }
}

impl Runtime for EmbeddedRuntime {
    fn observe(&self) -> Result<StateView, RuntimeError> {
        cairn_runtime::observe_applied(&self.shared.store)
    }

    fn apply(
        &self,
        action: &Action,
        resource: Option<&Resource>,
        ctx: &ApplyContext<'_>,
    ) -> Result<String, RuntimeError> {
        let key = &action.key;
        match (&action.change, resource.map(|r| &r.spec)) {
            (Change::Delete, _) => match key.kind {
                Kind::Project => {
                    self.quotas.forget_project(&key.name);
                    Ok("forgotten".into())
                }
                Kind::ComputePool => {
                    self.quotas.forget_pool(&key.name);
                    Ok("forgotten".into())
                }
                Kind::Job => Ok(self.jobs.remove_job(key)),
                Kind::Application => {
                    self.apps.remove_app(key);
                    Ok("stopping its replicas".into())
                }
                Kind::Environment => {
                    self.envs.forget(key);
                    Ok("forgotten".into())
                }
                Kind::Model => {
                    self.models.undeploy_model(key);
                    Ok("no longer served".into())
                }
                Kind::Plugin => {
                    self.plugins.forget_plugin(key);
                    Ok("forgotten".into())
                }
                Kind::Dataset => Ok("forgotten".into()),
            },
            (Change::Create | Change::Update { .. }, Some(spec)) => {
                let updated = matches!(action.change, Change::Update { .. });
                if matches!(spec, Spec::Model(_) | Spec::Application(_)) {
                    self.plugins.note_broken_plugins(ctx.commit, ctx.state);
                }
                match spec {
                    Spec::Project(p) => {
                        self.quotas.set_project(&key.name, p);
                        Ok("recorded".into())
                    }
                    Spec::ComputePool(p) => {
                        self.quotas.register_pool(&key.name, p);
                        Ok(match p.local.as_ref().map(|l| &l.gpus) {
                            Some(GpuSelection::All) => {
                                format!(
                                    "local pool with {} GPU(s)",
                                    self.quotas.gpus().devices.len()
                                )
                            }
                            Some(GpuSelection::Devices(d)) => format!("local pool with GPUs {d:?}"),
                            _ if p.local.is_some() => "local pool".into(),
                            _ => "Kubernetes-only pool: nothing runs here".into(),
                        })
                    }
                    Spec::Job(j) => Ok(self.jobs.register_job(
                        key,
                        j,
                        ctx.commit,
                        ctx.checkout,
                        &action.file,
                        updated,
                        true,
                    )),
                    Spec::Application(a) => {
                        self.apps
                            .start_app(key, a, ctx.commit, ctx.checkout, &action.file)
                    }
                    Spec::Model(m) => {
                        self.models
                            .deploy_model(key, m, ctx.commit, ctx.checkout, &action.file)
                    }
                    Spec::Environment(e) => {
                        self.envs.record(key, e);
                        Ok(match &e.image {
                            Some(image) if !e.needs_python() => {
                                format!("image {image} (Kubernetes only)")
                            }
                            _ => "recorded; built when a workload first needs it".into(),
                        })
                    }
                    Spec::Plugin(p) => {
                        self.plugins
                            .record_plugin(key, p, &action.file, ctx.checkout);
                        if updated {
                            self.models.plugin_changed(key);
                            self.apps.restart_apps_of_framework(key, ctx);
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
        self.collect_environments();
        let targets = self.jobs.take_sync_runs();
        if targets.is_empty() {
            return;
        }
        let request = RunRequest {
            targets,
            trigger: "sync".into(),
            params: None,
            with_upstream: false,
            actor: ctx.actor.to_string(),
        };
        if let Err(e) = self.jobs.trigger(request) {
            tracing::warn!("could not start jobs for commit {}: {e}", ctx.commit);
        }
    }

    fn restore(&self, applied: &[Applied], checkout: &dyn Fn(&str) -> Option<PathBuf>) {
        // Projects and pools first: jobs and apps need them.
        for a in applied {
            match a.key.kind {
                Kind::Project => {
                    if let Some(p) = spec_of::<ProjectSpec>(&a.value) {
                        self.quotas.set_project(&a.key.name, &p);
                    }
                }
                Kind::ComputePool => {
                    if let Some(p) = spec_of::<ComputePoolSpec>(&a.value) {
                        self.quotas.register_pool(&a.key.name, &p);
                    }
                }
                Kind::Environment => {
                    if let Some(e) = spec_of::<EnvironmentSpec>(&a.value) {
                        self.envs.record(&a.key, &e);
                    }
                }
                Kind::Plugin => {
                    if let (Some(p), Some(dir)) = (
                        spec_of::<cairn_spec::PluginSpec>(&a.value),
                        checkout(&a.commit),
                    ) {
                        self.plugins.record_plugin(&a.key, &p, &a.file, &dir);
                    }
                }
                _ => {}
            }
        }
        for a in applied {
            let Some(dir) = checkout(&a.commit) else {
                self.shared.set_status(
                    &a.key,
                    Phase::Failed,
                    "the commit's files could not be checked out again",
                );
                continue;
            };
            match a.key.kind {
                Kind::Job => {
                    if let Some(j) = spec_of::<JobSpec>(&a.value) {
                        self.jobs
                            .register_job(&a.key, &j, &a.commit, &dir, &a.file, false, false);
                    }
                }
                Kind::Model => {
                    if let Some(m) = spec_of::<ModelSpec>(&a.value)
                        && let Err(e) = self
                            .models
                            .deploy_model(&a.key, &m, &a.commit, &dir, &a.file)
                    {
                        self.shared
                            .set_status(&a.key, Phase::Failed, &e.to_string());
                    }
                }
                Kind::Application => {
                    if let Some(app) = spec_of::<ApplicationSpec>(&a.value)
                        && let Err(e) = self.apps.start_app(&a.key, &app, &a.commit, &dir, &a.file)
                    {
                        self.shared
                            .set_status(&a.key, Phase::Failed, &e.to_string());
                    }
                }
                _ => {}
            }
        }
        self.jobs.resume_runs();
    }

    fn logs(&self, target: &LogTarget) -> Result<LogSource, RuntimeError> {
        match target {
            LogTarget::Run(job, number) => {
                let run =
                    self.shared.store.run(job, *number)?.ok_or_else(|| {
                        RuntimeError::NotFound(format!("{job} has no run #{number}"))
                    })?;
                Ok(LogSource {
                    path: PathBuf::from(run.log_path),
                    live: !run.state.is_final(),
                })
            }
            LogTarget::Replica(app, replica) => {
                let path = self.apps.replica_log(app, *replica);
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

/// Every 30 s (`CAIRN_MONITORING_INTERVAL`): the Prometheus gauges of model
/// scores (accuracy, label coverage, MAE) over the last hour, per model and
/// version, from the monitoring data.
async fn refresh_model_scores(models: Weak<Models>) {
    let every = std::env::var("CAIRN_MONITORING_INTERVAL")
        .ok()
        .and_then(|d| humantime::parse_duration(&d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(std::time::Duration::from_secs(30));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(gateway) = models.upgrade().map(|m| m.gateway.clone()) else {
            return;
        };
        let scores = tokio::task::spawn_blocking(move || {
            let to = chrono::Utc::now().timestamp_millis() + 1;
            let from = to - 3_600_000;
            let mut scores = Vec::new();
            for endpoint in gateway.endpoints() {
                let key = &endpoint.key;
                let conn = gateway.events.monitor();
                match cairn_monitor::summary::current_scores(
                    &conn,
                    key,
                    endpoint.spec.task,
                    from,
                    to,
                ) {
                    Ok(s) => scores.extend(s),
                    Err(e) => tracing::warn!("model scores of {key}: {e}"),
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
async fn sample_metrics(models: Weak<Models>, quotas: Weak<Quotas>) {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);
    let mut system = System::new();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (Some(models), Some(quotas)) = (models.upgrade(), quotas.upgrade()) else {
            return;
        };
        let metrics = &models.gateway.metrics;
        // The gateway's (no model), then each model replica's.
        let mut pids: Vec<(Option<ResourceKey>, usize, u32)> =
            vec![(None, 0usize, std::process::id())];
        // The GPUs held by each model's replicas (their allocator holders).
        let held: HashMap<String, Vec<u32>> = quotas.assignments().into_iter().collect();
        let mut model_gpus: HashMap<ResourceKey, BTreeSet<u32>> = HashMap::new();
        if let Ok(processes) = models.shared.store.processes() {
            for p in processes.into_iter().filter(|p| p.key.kind == Kind::Model) {
                let holder = format!("app:{}:{}:{}", p.key.id(), p.replica, p.port);
                if let Some(devices) = held.get(&holder) {
                    model_gpus.entry(p.key.clone()).or_default().extend(devices);
                }
                pids.push((Some(p.key), p.replica as usize, p.pid as u32));
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
        let mut used: HashMap<ResourceKey, (f64, u64)> = HashMap::new();
        let mut gateway = None;
        for (model, replica, pid) in pids {
            if let Some(p) = system.process(Pid::from_u32(pid)) {
                let cpu = p.cpu_usage() as f64 / 100.0;
                metrics.set_process(model.as_ref(), replica, cpu, p.memory());
                match model {
                    None => gateway = Some((cpu, p.memory())),
                    Some(model) => {
                        let u = used.entry(model).or_default();
                        u.0 += cpu;
                        u.1 += p.memory();
                    }
                }
            }
        }
        let gpus = crate::gpu::sample_usage();
        for endpoint in models.gateway.endpoints() {
            let key = &endpoint.key;
            if let Some(devices) = model_gpus.get(key) {
                let usage: Vec<_> = gpus.iter().filter(|g| devices.contains(&g.index)).collect();
                if !usage.is_empty() {
                    let utilization = usage
                        .iter()
                        .map(|g| f64::from(g.utilization_percent))
                        .sum::<f64>()
                        / usage.len() as f64;
                    let memory = usage.iter().map(|g| g.memory_used_bytes).sum();
                    metrics.set_model_gpu(key, utilization, memory);
                }
            }
            let u = match used.get(key) {
                Some(u) => Some(*u),
                None if endpoint.spec.runtime == cairn_spec::ModelRuntime::Onnx => gateway,
                None => None,
            };
            if let Some((cpu, memory)) = u {
                metrics.set_model_resources(key, cpu, memory);
            }
        }
        metrics.sample(EVERY.as_secs_f64());
        for g in gpus {
            metrics.set_gpu(g.index, g.utilization_percent, g.memory_used_bytes);
        }
    }
}
