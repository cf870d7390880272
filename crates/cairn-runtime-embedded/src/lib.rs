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
pub mod envs;
pub mod gpu;
mod jobs;
mod models;
mod plugins;
pub mod process;
mod retrain;

use crate::envs::EnvManager;
use crate::gpu::{GpuAllocator, GpuInventory};
use cairn_gateway::service::Gateway;
use cairn_plan::loader::{Resource, ResourceKey};
use cairn_plan::plan::{Action, Change, StateView};
use cairn_runtime::{ApplyContext, LogSource, LogTarget, Runtime, RuntimeError, spec_of};
use cairn_spec::{
    ApplicationSpec, ComputePoolSpec, Cpu, EnvironmentRef, EnvironmentSpec, GpuSelection, JobSpec,
    Kind, Memory, ModelSpec, Name, ProjectSpec, Resources, Spec,
};
use cairn_store::events::{EventLog, EventLogConfig};
use cairn_store::keys::KeyStore;
use cairn_store::{Applied, Phase, Store};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;
use tokio::sync::Notify;

pub use cairn_runtime::RunRequest;
pub use drift::DriftError;

/// The embedded runtime. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<Store>,
    data_dir: PathBuf,
    handle: Handle,
    gpus: GpuInventory,
    state: Mutex<State>,
    /// Woken whenever resources are released.
    released: Notify,
    envs: EnvManager,
    gateway: Arc<Gateway>,
    /// The WebAssembly plugin host.
    plugins: cairn_plugin_host::PluginHost,
    /// Drift monitors of the served models.
    drift: drift::DriftMonitors,
    verdicts: cairn_monitor::drift::DriftVerdicts,
    business: Arc<cairn_monitor::business::BusinessMetrics>,
    summaries: Arc<cairn_monitor::summary::Summaries>,
    /// The last plugin failure of each resource that uses plugins (its own
    /// lock: statuses are set with the state locked).
    plugin_problems: Mutex<HashMap<ResourceKey, String>>,
    /// Plugin specs of the last commit whose files have errors, with the
    /// first error: (commit, plugin → `FILE: message`).
    broken_plugins: Mutex<(String, HashMap<ResourceKey, String>)>,
    /// The URL of `cairn up`'s HTTP server, given to jobs and applications
    /// as `CAIRN_SERVER` once known.
    server_url: std::sync::OnceLock<String>,
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
    projects: HashMap<Name, ProjectSpec>,
    pools: HashMap<Name, ComputePoolSpec>,
    allocator: GpuAllocator,
    jobs: HashMap<ResourceKey, jobs::JobDef>,
    apps: HashMap<ResourceKey, apps::AppDef>,
    /// Jobs created or changed by the current sync, run when it finishes.
    sync_runs: BTreeSet<ResourceKey>,
    /// Resources held by running workloads, for quotas.
    usage: HashMap<String, Usage>,
    /// Cancel switches of active runs, by run id.
    cancels: HashMap<i64, tokio::sync::watch::Sender<bool>>,
    /// Round-robin counter for application replicas.
    next_replica: usize,
    /// Declared environments.
    environments: HashMap<ResourceKey, EnvironmentSpec>,
    /// Served models.
    models: HashMap<ResourceKey, models::ModelDef>,
    /// Applied plugins.
    plugins: HashMap<ResourceKey, plugins::PluginDef>,
    /// The environment each workload last used (by hash), for garbage collection.
    env_users: HashMap<ResourceKey, String>,
}

#[derive(Clone, Debug)]
struct Usage {
    project: Option<Name>,
    cpu: u64,
    memory: u64,
    gpus: u32,
}

/// The outcome of asking for resources.
pub(crate) enum Admission {
    /// Granted, with these GPUs.
    Granted(Vec<u32>),
    /// Not now; why.
    Wait(String),
    /// Never here; why.
    Never(String),
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
        let runtime = EmbeddedRuntime {
            inner: Arc::new(Inner {
                store,
                data_dir: data_dir.to_path_buf(),
                handle: Handle::current(),
                gpus,
                state: Mutex::new(State::default()),
                released: Notify::new(),
                envs: EnvManager::new(&data_dir.join("envs")),
                gateway,
                plugins,
                drift: drift::DriftMonitors::default(),
                verdicts: Default::default(),
                business,
                summaries: Default::default(),
                plugin_problems: Mutex::new(HashMap::new()),
                broken_plugins: Mutex::new((String::new(), HashMap::new())),
                server_url: std::sync::OnceLock::new(),
                promotions: std::sync::OnceLock::new(),
                http,
            }),
        };
        runtime
            .inner
            .handle
            .spawn(sample_metrics(Arc::downgrade(&runtime.inner)));
        runtime
            .inner
            .handle
            .spawn(refresh_model_scores(Arc::downgrade(&runtime.inner)));
        runtime.inner.handle.spawn(retrain::watch(
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
        let _ = self.inner.server_url.set(url);
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
        &self.inner.gpus
    }

    /// Starts a run of `job` (its upstream jobs first); returns the runs
    /// created, the requested job's last.
    pub fn run_job(&self, request: RunRequest) -> Result<Vec<cairn_store::Run>, RuntimeError> {
        self.inner.trigger(request)
    }

    /// Evaluates the drift of a model over its last window now.
    pub async fn evaluate_drift(
        &self,
        model: &ResourceKey,
    ) -> Result<cairn_monitor::drift::DriftVerdict, DriftError> {
        self.inner.evaluate_drift(model).await
    }

    /// The WebAssembly plugin host.
    pub fn plugin_host(&self) -> cairn_plugin_host::PluginHost {
        self.inner.plugins.clone()
    }

    /// The applications called `name`, whatever their project.
    pub fn apps_named(&self, name: &str) -> Vec<ResourceKey> {
        self.inner.apps_named(name)
    }

    /// A ready replica of an application to send a request to.
    pub fn app_upstream(&self, app: &ResourceKey) -> Option<SocketAddr> {
        self.inner.app_upstream(app)
    }

    /// Stops everything this runtime started (jobs are left running only if
    /// `keep_running`, so that a restart can adopt them).
    pub async fn shutdown(&self, keep_running: bool) {
        self.inner.shutdown(keep_running).await;
    }
}

impl Inner {
    fn plugin_problems(&self) -> std::sync::MutexGuard<'_, HashMap<ResourceKey, String>> {
        self.plugin_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Environment from a project: its `env` and its secrets.
    fn project_env(&self, project: Option<&Name>) -> Result<Vec<(String, String)>, String> {
        let state = self.state();
        let Some(p) = project.and_then(|p| state.projects.get(p)) else {
            return Ok(Vec::new());
        };
        let mut env: Vec<(String, String)> =
            p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for s in &p.secrets {
            match std::env::var(&s.from_env) {
                Ok(v) => env.push((s.name.clone(), v)),
                Err(_) => {
                    return Err(format!(
                        "secret `{}` needs the controller's environment variable `{}`, which is not set",
                        s.name, s.from_env
                    ));
                }
            }
        }
        Ok(env)
    }

    fn pool_of(&self, project: Option<&Name>, pool: Option<&Name>) -> Option<Name> {
        pool.cloned().or_else(|| {
            let state = self.state();
            state.projects.get(project?)?.default_pool.clone()
        })
    }

    /// Asks for resources for `holder`.
    fn admit(
        &self,
        holder: &str,
        project: Option<&Name>,
        pool: Option<&Name>,
        res: Option<&Resources>,
    ) -> Admission {
        let cpu = res.and_then(|r| r.cpu).map_or(0, Cpu::millis);
        let memory = res.and_then(|r| r.memory).map_or(0, Memory::bytes);
        let gpus = res.and_then(|r| r.gpus).unwrap_or(0);
        let pool_name = self.pool_of(project, pool);
        let mut state = self.state();
        if let Some(pool_name) = &pool_name {
            match state.pools.get(pool_name) {
                None => return Admission::Never(format!("pool `{pool_name}` is not declared")),
                Some(p) if p.local.is_none() => {
                    return Admission::Never(format!(
                        "pool `{pool_name}` has no `local` part; it runs on Kubernetes only"
                    ));
                }
                Some(_) => {}
            }
        } else if gpus > 0 {
            return Admission::Never("asks for GPUs but names no pool".into());
        }
        if let Some(q) = project
            .and_then(|p| state.projects.get(p))
            .and_then(|p| p.quotas.clone())
        {
            let used = state
                .usage
                .values()
                .filter(|u| u.project.as_ref() == project)
                .fold((0u64, 0u64, 0u32), |a, u| {
                    (a.0 + u.cpu, a.1 + u.memory, a.2 + u.gpus)
                });
            let over = |what: &str, used: u64, want: u64, limit: u64| {
                (used + want > limit).then(|| format!("waiting for project quota: {what} in use {used}, asking {want}, quota {limit}"))
            };
            let checks = [
                q.cpu
                    .and_then(|l| over("cpu (millicores)", used.0, cpu, l.millis())),
                q.memory
                    .and_then(|l| over("memory (bytes)", used.1, memory, l.bytes())),
                q.gpus
                    .and_then(|l| over("GPUs", used.2 as u64, gpus as u64, l as u64)),
            ];
            if let Some(reason) = checks.into_iter().flatten().next() {
                return Admission::Wait(reason);
            }
        }
        let devices = if gpus > 0 {
            let pool_name = pool_name.expect("checked above");
            let total = state.allocator.free(pool_name.as_str()).len() as u32
                + state
                    .allocator
                    .assignments()
                    .iter()
                    .filter(|(_, d)| {
                        d.iter()
                            .any(|i| self.pool_devices(&state, &pool_name).contains(i))
                    })
                    .map(|(_, d)| d.len() as u32)
                    .sum::<u32>();
            if gpus > total {
                return Admission::Never(format!(
                    "asks for {gpus} GPU(s) but pool `{pool_name}` has {total}"
                ));
            }
            match state
                .allocator
                .try_allocate(pool_name.as_str(), holder, gpus)
            {
                Some(d) => d,
                None => {
                    return Admission::Wait(format!(
                        "waiting for {gpus} free GPU(s) in pool `{pool_name}` (free: {:?})",
                        state.allocator.free(pool_name.as_str())
                    ));
                }
            }
        } else {
            Vec::new()
        };
        state.usage.insert(
            holder.to_string(),
            Usage {
                project: project.cloned(),
                cpu,
                memory,
                gpus,
            },
        );
        Admission::Granted(devices)
    }

    fn pool_devices(&self, state: &State, pool: &Name) -> Vec<u32> {
        match state
            .pools
            .get(pool)
            .and_then(|p| p.local.as_ref())
            .map(|l| &l.gpus)
        {
            Some(GpuSelection::All) => self.gpus.indices(),
            Some(GpuSelection::Devices(d)) => d.clone(),
            _ => Vec::new(),
        }
    }

    /// Gives back what `holder` was granted.
    fn release(&self, holder: &str) {
        let mut state = self.state();
        state.usage.remove(holder);
        state.allocator.release(holder);
        drop(state);
        self.released.notify_waiters();
    }

    fn set_status(&self, key: &ResourceKey, phase: Phase, message: &str) {
        // A plugin failure stays visible until the resource is deployed again.
        let problem = self.plugin_problems().get(key).cloned();
        let message = match problem {
            Some(p) if !message.contains(&p) => plugins::with_problem(message, &p),
            _ => message.to_string(),
        };
        if let Err(e) = self.store.set_status(key, phase, &message, None, None) {
            tracing::warn!("could not record status of {key}: {e}");
        }
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
        match (&action.change, resource.map(|r| &r.spec)) {
            (Change::Delete, _) => match key.kind {
                Kind::Project => {
                    inner.state().projects.remove(&key.name);
                    Ok("forgotten".into())
                }
                Kind::ComputePool => {
                    inner.state().pools.remove(&key.name);
                    inner
                        .state()
                        .allocator
                        .set_pool(key.name.as_str(), Vec::new());
                    Ok("forgotten".into())
                }
                Kind::Job => Ok(inner.remove_job(key)),
                Kind::Application => {
                    inner.remove_app(key);
                    Ok("stopping its replicas".into())
                }
                Kind::Environment => {
                    inner.state().environments.remove(key);
                    Ok("forgotten".into())
                }
                Kind::Model => {
                    inner.undeploy_model(key);
                    Ok("no longer served".into())
                }
                Kind::Plugin => {
                    inner.forget_plugin(key);
                    Ok("forgotten".into())
                }
                Kind::Dataset => Ok("forgotten".into()),
            },
            (Change::Create | Change::Update { .. }, Some(spec)) => {
                let updated = matches!(action.change, Change::Update { .. });
                if matches!(spec, Spec::Model(_) | Spec::Application(_)) {
                    inner.note_broken_plugins(ctx.commit, ctx.state);
                }
                match spec {
                    Spec::Project(p) => {
                        inner.state().projects.insert(key.name.clone(), p.clone());
                        Ok("recorded".into())
                    }
                    Spec::ComputePool(p) => {
                        inner.register_pool(&key.name, p);
                        Ok(match p.local.as_ref().map(|l| &l.gpus) {
                            Some(GpuSelection::All) => {
                                format!("local pool with {} GPU(s)", inner.gpus.devices.len())
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
                        inner.state().environments.insert(key.clone(), e.clone());
                        Ok(match &e.image {
                            Some(image) if !e.needs_python() => {
                                format!("image {image} (Kubernetes only)")
                            }
                            _ => "recorded; built when a workload first needs it".into(),
                        })
                    }
                    Spec::Plugin(p) => {
                        inner.record_plugin(key, p, &action.file, ctx.checkout);
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
                        inner.state().projects.insert(a.key.name.clone(), p);
                    }
                }
                Kind::ComputePool => {
                    if let Some(p) = spec_of::<ComputePoolSpec>(&a.value) {
                        inner.register_pool(&a.key.name, &p);
                    }
                }
                Kind::Environment => {
                    if let Some(e) = spec_of::<EnvironmentSpec>(&a.value) {
                        inner.state().environments.insert(a.key.clone(), e);
                    }
                }
                Kind::Plugin => {
                    if let (Some(p), Some(dir)) = (
                        spec_of::<cairn_spec::PluginSpec>(&a.value),
                        checkout(&a.commit),
                    ) {
                        inner.record_plugin(&a.key, &p, &a.file, &dir);
                    }
                }
                _ => {}
            }
        }
        for a in applied {
            let Some(dir) = checkout(&a.commit) else {
                inner.set_status(
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
                        inner.set_status(&a.key, Phase::Failed, &e.to_string());
                    }
                }
                Kind::Application => {
                    if let Some(app) = spec_of::<ApplicationSpec>(&a.value)
                        && let Err(e) = inner.start_app(&a.key, &app, &a.commit, &dir, &a.file)
                    {
                        inner.set_status(&a.key, Phase::Failed, &e.to_string());
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
                    self.inner.store.run(job, *number)?.ok_or_else(|| {
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
    /// The variables that give a workload its environment, building the
    /// environment first if needed.
    pub(crate) async fn prepare_environment(
        &self,
        key: &ResourceKey,
        environment: Option<&EnvironmentRef>,
        checkout: &Path,
    ) -> Result<Vec<(String, String)>, String> {
        let spec = match environment {
            None => return Ok(Vec::new()),
            Some(EnvironmentRef::Inline(e)) => (**e).clone(),
            Some(EnvironmentRef::Named(name)) => {
                let env_key = ResourceKey {
                    kind: Kind::Environment,
                    project: key.project.clone(),
                    name: name.clone(),
                };
                self.state()
                    .environments
                    .get(&env_key)
                    .cloned()
                    .ok_or_else(|| format!("environment `{name}` is not applied"))?
            }
        };
        let mut vars = Vec::new();
        if spec.needs_python() {
            let progress = |line: &str| {
                tracing::info!("{key}: {line}");
                self.set_status(key, Phase::Progressing, line);
            };
            let built = self
                .envs
                .ensure(&spec, checkout, &progress)
                .await
                .map_err(|e| e.to_string())?;
            self.state()
                .env_users
                .insert(key.clone(), built.hash.clone());
            vars.extend(built.activate());
        }
        vars.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(vars)
    }

    /// Removes environments that no applied workload uses any more.
    fn collect_environments(&self) {
        let keep: BTreeSet<String> = {
            let mut state = self.state();
            let live: BTreeSet<ResourceKey> = state
                .jobs
                .keys()
                .chain(state.apps.keys())
                .cloned()
                .collect();
            state.env_users.retain(|k, _| live.contains(k));
            state.env_users.values().cloned().collect()
        };
        let grace = std::env::var("CAIRN_ENV_GC_GRACE")
            .ok()
            .and_then(|g| humantime::parse_duration(&g).ok())
            .unwrap_or(std::time::Duration::from_secs(3600));
        for hash in self.envs.collect_garbage(&keep, grace) {
            tracing::info!("removed unused environment {hash}");
        }
    }

    fn register_pool(&self, name: &Name, pool: &ComputePoolSpec) {
        let mut state = self.state();
        state.pools.insert(name.clone(), pool.clone());
        let devices = self.pool_devices(&state, name);
        state.allocator.set_pool(name.as_str(), devices);
    }

    /// Directory for a resource's files under the data directory.
    fn resource_dir(&self, area: &str, key: &ResourceKey) -> PathBuf {
        self.data_dir
            .join(area)
            .join(key.project.as_ref().map_or("_", Name::as_str))
            .join(key.name.as_str())
    }
}

impl Inner {
    /// `CAIRN_SERVER` for a workload's environment, when the URL is known.
    fn server_env(&self) -> Option<(String, String)> {
        self.server_url
            .get()
            .map(|url| ("CAIRN_SERVER".to_string(), url.clone()))
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
        // The gateway's (no model), then each model replica's.
        let mut pids: Vec<(Option<ResourceKey>, usize, u32)> =
            vec![(None, 0usize, std::process::id())];
        // The GPUs held by each model's replicas (their allocator holders).
        let held: HashMap<String, Vec<u32>> =
            inner.state().allocator.assignments().into_iter().collect();
        let mut model_gpus: HashMap<ResourceKey, BTreeSet<u32>> = HashMap::new();
        if let Ok(processes) = inner.store.processes() {
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
        for endpoint in inner.gateway.endpoints() {
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
