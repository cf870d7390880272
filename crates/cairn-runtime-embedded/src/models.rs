//! Models on the embedded runtime: ONNX models loaded in-process and served
//! by the gateway's worker pool; `process` models (the user's server, or a
//! Python function behind Cairn's runner) supervised like applications and
//! reached by the gateway. Every new version is recorded (version ↔ commit ↔
//! artifact digest ↔ producing run) and replaces the old one only once it
//! is ready.

use crate::PromotionRequest;
use crate::apps::Apps;
use crate::drift::DriftMonitors;
use crate::jobs::Jobs;
use crate::plugins::Plugins;
use crate::shared::Shared;
use cairn_gateway::onnx::OnnxModel;
use cairn_gateway::service::{Backend, Gateway, Version};
use cairn_monitor::business::{BusinessMetrics, MetricBinding};
use cairn_monitor::drift::DriftVerdicts;
use cairn_monitor::rollout;
use cairn_monitor::summary::Summaries;
use cairn_plugin_host::metrics::MetricPlugin;
use cairn_plugin_host::model::WasmModel;
use cairn_runtime::RuntimeError;
use cairn_spec::ResourceKey;
use cairn_spec::{
    ApplicationSpec, Command, Kind, ModelRuntime, ModelSpec, RestartPolicy, RolloutStrategy,
};
use cairn_store::Phase;
use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// Served models, their monitoring (drift, business metrics) and what
/// follows from it (drift-triggered retraining, promotions).
pub(crate) struct Models {
    pub(crate) shared: Arc<Shared>,
    pub(crate) plugins: Arc<Plugins>,
    /// The replicas of process models.
    apps: Arc<Apps>,
    /// The jobs that produce artifacts and retrain models.
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) gateway: Arc<Gateway>,
    state: Mutex<State>,
    /// Drift monitors of the served models.
    pub(crate) drift: DriftMonitors,
    pub(crate) verdicts: DriftVerdicts,
    business: Arc<BusinessMetrics>,
    pub(crate) summaries: Arc<Summaries>,
    /// Where new artifacts to promote through Git are announced (see
    /// [`crate::EmbeddedRuntime::take_promotions`]).
    promotions: OnceLock<UnboundedSender<PromotionRequest>>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Served models.
    pub(crate) models: HashMap<ResourceKey, ModelDef>,
}

/// A model as applied.
#[derive(Clone)]
pub(crate) struct ModelDef {
    pub(crate) spec: ModelSpec,
    commit: String,
    pub(crate) checkout: PathBuf,
    file: String,
    generation: u64,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A digest of what a model's spec serves, leaving out the artifact pin
/// (`from.sha256`): versions are (artifact, spec) pairs, so that serving an
/// artifact again under the same spec — a rollback — finds its version.
fn spec_digest(spec: &ModelSpec) -> String {
    use sha2::Digest;
    let mut spec = spec.clone();
    if let Some(from) = spec.from.as_mut() {
        from.sha256 = None;
    }
    let json = serde_json::to_vec(&spec).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(json))
}

/// Where a model takes predictions: the route with its project, which
/// answers whatever other projects serve.
pub(super) fn predict_route(key: &ResourceKey) -> String {
    match &key.project {
        Some(p) => format!("/projects/{p}/models/{}/predict", key.name),
        None => format!("/models/{}/predict", key.name),
    }
}

/// The function runner shipped inside the binary.
const RUNNER: &str = include_str!("runner.py");

impl Models {
    /// Models served by `gateway`, with plugins from `plugins`, process
    /// replicas run by `apps`, and artifacts and retraining from `jobs`.
    pub fn new(
        shared: Arc<Shared>,
        plugins: Arc<Plugins>,
        apps: Arc<Apps>,
        jobs: Arc<Jobs>,
        gateway: Arc<Gateway>,
        business: Arc<BusinessMetrics>,
    ) -> Self {
        Models {
            shared,
            plugins,
            apps,
            jobs,
            gateway,
            state: Mutex::new(State::default()),
            drift: DriftMonitors::default(),
            verdicts: Default::default(),
            business,
            summaries: Default::default(),
            promotions: OnceLock::new(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream of artifacts to promote (see
    /// [`crate::EmbeddedRuntime::take_promotions`]); only the first call
    /// gets it.
    pub fn take_promotions(&self) -> Option<UnboundedReceiver<PromotionRequest>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.promotions.set(tx).ok().map(|_| rx)
    }

    /// Serves (or re-serves) a model.
    pub fn deploy_model(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        checkout: &Path,
        file: &str,
    ) -> Result<String, RuntimeError> {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let previous = self.state().models.insert(
            key.clone(),
            ModelDef {
                spec: spec.clone(),
                commit: commit.to_string(),
                checkout: checkout.to_path_buf(),
                file: file.to_string(),
                generation,
            },
        );
        // A model that stops being a process model stops its replicas.
        if previous.is_some_and(|p| p.spec.runtime == ModelRuntime::Process)
            && spec.runtime != ModelRuntime::Process
        {
            self.apps.remove_app(key);
        }
        self.shared.clear_plugin_problem(key);
        self.attach_monitoring(key, spec);
        match spec.runtime {
            ModelRuntime::Onnx => self.deploy_onnx(key, spec, commit, checkout, generation),
            ModelRuntime::Process => self.deploy_process(key, spec, commit, checkout, generation),
            ModelRuntime::Wasm => self.deploy_wasm(key, spec, commit, checkout, generation),
        }
    }

    /// Starts a model's drift monitor and business-metric plugins (their
    /// failures show in the model's status).
    fn attach_monitoring(self: &Arc<Self>, key: &ResourceKey, spec: &ModelSpec) {
        self.schedule_drift(key, spec);
        let names: Vec<_> = spec
            .monitoring
            .as_ref()
            .map(|m| m.metrics.clone())
            .unwrap_or_default();
        if names.is_empty() {
            self.business.set(key, Vec::new());
            return;
        }
        // Resolved before the model serves, so that no prediction misses
        // its metrics (components compile once; later loads hit the cache).
        let mut bindings = Vec::new();
        for name in &names {
            let bound = self
                .plugins
                .resolve_plugin(key.project.as_ref(), name)
                .and_then(|r| {
                    let plugin = MetricPlugin::new(r.plugin.clone()).map_err(|e| r.problem(e))?;
                    let weak = Arc::downgrade(self);
                    let (user, r2) = (key.clone(), r.clone());
                    Ok(MetricBinding {
                        plugin,
                        config: cairn_plugin_host::config_of(&r.def.spec.config),
                        on_error: Arc::new(move |problem: String| {
                            if let Some(inner) = weak.upgrade() {
                                inner
                                    .shared
                                    .report_plugin_problem(&user, &r2.problem(problem));
                            }
                        }),
                    })
                });
            match bound {
                Ok(b) => bindings.push(b),
                Err(problem) => self.shared.report_plugin_problem(key, &problem),
            }
        }
        self.business.set(key, bindings);
    }

    /// A Plugin spec changed: the models that use it are deployed again.
    pub fn plugin_changed(self: &Arc<Self>, plugin: &ResourceKey) {
        let users: Vec<(ResourceKey, ModelDef)> = self
            .state()
            .models
            .iter()
            .filter(|(k, m)| {
                k.project == plugin.project
                    && (m.spec.plugin.as_ref() == Some(&plugin.name)
                        || m.spec.monitoring.as_ref().is_some_and(|mo| {
                            mo.metrics.contains(&plugin.name)
                                || mo.drift.as_ref().is_some_and(|d| d.plugin == plugin.name)
                        }))
            })
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (key, def) in users {
            tracing::info!("{key}: plugin {plugin} changed; deploying again");
            self.redeploy(&key, &def);
        }
    }

    fn deploy_wasm(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        checkout: &Path,
        generation: u64,
    ) -> Result<String, RuntimeError> {
        let Some(plugin_name) = spec.plugin.clone() else {
            return Err(RuntimeError::NotFound(
                "a `wasm` model needs `plugin`".into(),
            ));
        };
        let (artifact, run_id) = match (&spec.artifact, &spec.from) {
            (Some(a), _) => (Some(checkout.join(a.as_str())), None),
            (None, Some(from)) => match self.job_artifact(key, from)? {
                Ok((path, run)) => (Some(path), Some(run)),
                Err(message) => {
                    self.shared.set_status(key, Phase::Idle, &message);
                    return Ok(message);
                }
            },
            (None, None) => (None, None),
        };
        self.shared.set_status(
            key,
            Phase::Progressing,
            &format!("loading plugin `{plugin_name}`"),
        );
        let inner = self.clone();
        let key = key.clone();
        let spec = spec.clone();
        let commit = commit.to_string();
        self.shared.handle.spawn(async move {
            let loader = inner.clone();
            let (project, replicas) = (key.project.clone(), spec.replicas.max(1) as usize);
            let loaded = tokio::task::spawn_blocking(move || {
                let resolved = loader
                    .plugins
                    .resolve_plugin(project.as_ref(), &plugin_name)?;
                let bytes = match &artifact {
                    Some(path) => std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                    None => Vec::new(),
                };
                let sha256 = if artifact.is_some() {
                    hex::encode(sha2::Sha256::digest(&bytes))
                } else {
                    resolved.plugin.sha256.clone()
                };
                let config = cairn_plugin_host::config_of(&resolved.def.spec.config);
                let model = WasmModel::new(resolved.plugin.clone(), config, bytes, replicas)
                    .map_err(|e| resolved.problem(e))?;
                Ok::<_, String>((model, resolved, sha256))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            if inner.state().models.get(&key).map(|m| m.generation) != Some(generation) {
                return;
            }
            match loaded {
                Ok((model, resolved, sha256)) => {
                    let Some(version) = inner.record_version(&key, &spec, &commit, &sha256, run_id)
                    else {
                        return;
                    };
                    let weak = Arc::downgrade(&inner);
                    let user = key.clone();
                    let served = Version {
                        number: version,
                        commit: commit.clone(),
                        sha256: sha256.clone(),
                        backend: Backend::Wasm {
                            model: Arc::new(model),
                            workers: Arc::new(Semaphore::new(replicas)),
                            on_error: Arc::new(move |e| {
                                if let Some(inner) = weak.upgrade() {
                                    inner
                                        .shared
                                        .report_plugin_problem(&user, &resolved.problem(e));
                                }
                            }),
                        },
                    };
                    inner.serve_version(
                        &key,
                        &spec,
                        served,
                        &commit,
                        &format!("{replicas} plugin instance(s)"),
                    );
                }
                Err(e) => {
                    tracing::warn!("{key}: {e}");
                    inner.shared.set_status(&key, Phase::Failed, &e);
                }
            }
        });
        Ok("loading".into())
    }

    /// The artifact a model takes from a job: the one pinned by
    /// `from.sha256`, else the latest successful run's; `Err` says what the
    /// model waits for.
    fn job_artifact(
        &self,
        key: &ResourceKey,
        from: &cairn_spec::JobArtifactRef,
    ) -> Result<Result<(PathBuf, i64), String>, RuntimeError> {
        let job = ResourceKey {
            kind: Kind::Job,
            project: key.project.clone(),
            name: from.job.clone(),
        };
        let found = match &from.sha256 {
            Some(sha) => {
                self.shared
                    .store
                    .artifact_by_sha256(&job, from.output.as_str(), sha.as_str())?
            }
            None => self
                .shared
                .store
                .latest_artifact(&job, from.output.as_str())?,
        };
        Ok(match found {
            Some(a) => Ok((PathBuf::from(a.path), a.run_id)),
            None => Err(match &from.sha256 {
                Some(sha) => format!(
                    "no successful run of job `{}` produced output `{}` with sha256 {sha}",
                    from.job, from.output
                ),
                None => format!(
                    "waiting for a successful run of job `{}` to produce output `{}`",
                    from.job, from.output
                ),
            }),
        })
    }

    fn deploy_onnx(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        checkout: &Path,
        generation: u64,
    ) -> Result<String, RuntimeError> {
        let (path, run_id) = match (&spec.artifact, &spec.from) {
            (Some(a), _) => (checkout.join(a.as_str()), None),
            (None, Some(from)) => match self.job_artifact(key, from)? {
                Ok((path, run)) => (path, Some(run)),
                Err(message) => {
                    self.shared.set_status(key, Phase::Idle, &message);
                    return Ok(message);
                }
            },
            (None, None) => return Err(RuntimeError::NotFound("the model has no artifact".into())),
        };
        self.shared.set_status(
            key,
            Phase::Progressing,
            &format!("loading {}", path.display()),
        );
        let inner = self.clone();
        let key = key.clone();
        let spec = spec.clone();
        let commit = commit.to_string();
        self.shared.handle.spawn(async move {
            let loaded = tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                OnnxModel::load(&bytes).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            // A newer deployment of this model wins.
            if inner.state().models.get(&key).map(|m| m.generation) != Some(generation) {
                return;
            }
            match loaded {
                Ok(model) => {
                    let sha256 = model.sha256().to_string();
                    let Some(version) = inner.record_version(&key, &spec, &commit, &sha256, run_id)
                    else {
                        return;
                    };
                    let workers = spec.replicas.max(1) as usize;
                    let served = Version {
                        number: version,
                        commit: commit.clone(),
                        sha256: sha256.clone(),
                        backend: Backend::Onnx {
                            model: Arc::new(model),
                            workers: Arc::new(Semaphore::new(workers)),
                            cost_us: Default::default(),
                        },
                    };
                    inner.serve_version(
                        &key,
                        &spec,
                        served,
                        &commit,
                        &format!("{workers} worker(s)"),
                    );
                }
                Err(e) => {
                    let message = format!("could not load the model: {e}");
                    tracing::warn!("{key}: {message}");
                    inner.shared.set_status(&key, Phase::Failed, &message);
                }
            }
        });
        Ok("loading".into())
    }

    /// Puts a loaded version in service: at once, or — when the model
    /// declares a canary rollout and another version is serving — as a
    /// canary driven by [`rollout::run`]. An artifact whose canary was
    /// rolled back is not rolled out again.
    fn serve_version(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        version: Version,
        commit: &str,
        capacity: &str,
    ) {
        let number = version.number;
        let sha256 = version.sha256.clone();
        let short = &sha256[..sha256.len().min(12)];
        let stable = self.gateway.endpoint(key).map(|e| e.current());
        let canary = spec
            .rollout
            .as_ref()
            .filter(|r| r.strategy == RolloutStrategy::Canary);
        match (canary, stable) {
            (Some(rollout), Some(stable)) if stable.sha256 != sha256 => {
                if let Ok(Some(bad)) = self.shared.store.rolled_back(key, &sha256) {
                    let message = format!(
                        "serving version {} — the canary of version {bad} (sha256 {short}) was rolled back; commit another artifact to roll out again",
                        stable.number
                    );
                    self.shared.set_status(key, Phase::Failed, &message);
                    return;
                }
                let steps = rollout::steps(rollout);
                if !self.gateway.start_canary(key, spec, version, steps[0]) {
                    return;
                }
                let message = format!(
                    "canary: version {number} (sha256 {short}) takes {}% of traffic beside version {}",
                    steps[0], stable.number
                );
                tracing::info!("{key}: {message}");
                self.shared.set_status(key, Phase::Progressing, &message);
                let inner = self.clone();
                let key = key.clone();
                let rollout = rollout.clone();
                let commit = commit.to_string();
                self.shared.handle.spawn(async move {
                    let outcome = rollout::run(
                        inner.gateway.clone(),
                        inner.shared.store.clone(),
                        key.clone(),
                        rollout,
                        stable.number,
                        number,
                        commit,
                    )
                    .await;
                    let (phase, message) = match outcome {
                        rollout::Outcome::Promoted => (
                            Phase::Ready,
                            format!("serving version {number} (canary promoted) at {}", predict_route(&key)),
                        ),
                        rollout::Outcome::RolledBack(reason) => (
                            Phase::Failed,
                            format!(
                                "canary of version {number} rolled back ({reason}); serving version {}",
                                stable.number
                            ),
                        ),
                        rollout::Outcome::Superseded => return,
                    };
                    tracing::info!("{key}: {message}");
                    inner.shared.set_status(&key, phase, &message);
                });
            }
            _ => {
                self.gateway.install(key, spec, version);
                self.summaries
                    .warm_page_summary(&self.gateway.events, key, spec.task);
                let _ = self.shared.store.set_version_state(key, number, "serving");
                let message = format!(
                    "serving version {number} (sha256 {short}) at {} with {capacity}",
                    predict_route(key)
                );
                tracing::info!("{key}: {message}");
                self.shared.set_status(key, Phase::Ready, &message);
                let _ = self
                    .shared
                    .store
                    .audit(Some(commit), Some(key), "serve", &message);
            }
        }
    }

    fn deploy_process(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        checkout: &Path,
        generation: u64,
    ) -> Result<String, RuntimeError> {
        let command = match (&spec.function, &spec.command) {
            (Some(function), _) => {
                let runner = self.shared.data_dir.join("runner.py");
                if std::fs::read_to_string(&runner).ok().as_deref() != Some(RUNNER) {
                    std::fs::write(&runner, RUNNER)?;
                }
                Command::Args(vec![
                    "python3".into(),
                    runner.display().to_string(),
                    function.clone(),
                ])
            }
            (None, command) => command.clone(),
        };
        let app = ApplicationSpec {
            description: spec.description.clone(),
            framework: "command".into(),
            path: spec
                .workdir
                .clone()
                .unwrap_or_else(|| ".".parse().expect("valid path")),
            command,
            env: spec.env.clone(),
            environment: spec.environment.clone(),
            replicas: spec.replicas,
            resources: spec.resources.clone(),
            pool: spec.pool.clone(),
            health_path: Some("/healthz".into()),
            restart: RestartPolicy::Always,
        };
        let version = self
            .shared
            .store
            .model_version(key, commit, "", &spec_digest(spec), None)?
            .version;
        // A model already served keeps its version, answered by its own
        // replicas, until the new replicas are ready; a new one is served
        // at once (503 until a replica is ready).
        let serving = self.gateway.endpoint(key).is_some();
        let on_ready = serving.then(|| {
            let inner = self.clone();
            let key = key.clone();
            let spec = spec.clone();
            let commit = commit.to_string();
            Box::new(move |replicas: u64| {
                inner.serve_process(&key, &spec, &commit, version, generation, replicas)
            }) as crate::apps::OnReady
        });
        let (note, replicas) = self
            .apps
            .start_replicas(key, &app, commit, checkout, on_ready)?;
        if !serving {
            self.serve_process(key, spec, commit, version, generation, replicas);
        }
        Ok(format!("version {version}: {note}"))
    }

    /// Serves `version` of a process model with the replicas of generation
    /// `replicas`, unless a newer deployment of the model replaced this one
    /// (`generation`); returns whether it did.
    fn serve_process(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        version: i64,
        generation: u64,
        replicas: u64,
    ) -> bool {
        // Checked and installed under the lock, so that an undeployment
        // (which forgets the model first) cannot be undone here.
        let state = self.state();
        if state.models.get(key).map(|m| m.generation) != Some(generation) {
            return false;
        }
        let apps = self.apps.clone();
        let upstream_key = key.clone();
        self.gateway.install(
            key,
            spec,
            Version {
                number: version,
                commit: commit.to_string(),
                sha256: String::new(),
                backend: Backend::Process {
                    upstream: Arc::new(move || apps.upstream_of(&upstream_key, replicas)),
                },
            },
        );
        drop(state);
        true
    }

    /// Stops serving a model.
    pub fn undeploy_model(self: &Arc<Self>, key: &ResourceKey) {
        let def = self.state().models.remove(key);
        self.gateway.remove(key);
        self.stop_drift(key);
        self.business.set(key, Vec::new());
        if def.is_some_and(|d| d.spec.runtime == ModelRuntime::Process) {
            self.apps.remove_app(key);
        }
    }

    /// A job run succeeded: models serving its outputs get the new
    /// artifact — at once when they follow the job's latest output, through
    /// a Git promotion when their drift settings ask for one
    /// (`onDrift.promote`), and not at all when they are pinned to a digest
    /// otherwise.
    pub fn artifact_produced(self: &Arc<Self>, job: &ResourceKey) {
        let users: Vec<(ResourceKey, ModelDef)> = self
            .state()
            .models
            .iter()
            .filter(|(k, m)| {
                k.project == job.project && m.spec.from.as_ref().is_some_and(|f| f.job == job.name)
            })
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (key, def) in users {
            let Some(from) = def.spec.from.as_ref() else {
                continue;
            };
            let on_drift = def
                .spec
                .monitoring
                .as_ref()
                .and_then(|m| m.drift.as_ref())
                .and_then(|d| d.on_drift.as_ref());
            if let Some(on_drift) = on_drift {
                // `redeploy: true` without `promote` promotes by a commit;
                // neither keeps serving what is served.
                let promotion = on_drift
                    .promote
                    .or(on_drift.redeploy.then_some(cairn_spec::Promotion::Commit));
                if let Some(promotion) = promotion {
                    self.request_promotion(
                        &key,
                        job,
                        from.output.as_str(),
                        from.sha256.as_ref(),
                        promotion,
                    );
                }
                continue;
            }
            if from.sha256.is_some() {
                continue;
            }
            tracing::info!("{key}: new artifact from {job}; rolling out");
            self.redeploy(&key, &def);
        }
    }

    /// The version number of `sha256` under `spec` (recorded when new); on
    /// a store failure the model's status says so and `None` is returned.
    fn record_version(
        &self,
        key: &ResourceKey,
        spec: &ModelSpec,
        commit: &str,
        sha256: &str,
        run_id: Option<i64>,
    ) -> Option<i64> {
        match self
            .shared
            .store
            .model_version(key, commit, sha256, &spec_digest(spec), run_id)
        {
            Ok(v) => Some(v.version),
            Err(e) => {
                self.shared.set_status(key, Phase::Failed, &e.to_string());
                None
            }
        }
    }

    /// Deploys a model again as last applied; a failure goes to its status.
    fn redeploy(self: &Arc<Self>, key: &ResourceKey, def: &ModelDef) {
        if let Err(e) = self.deploy_model(key, &def.spec, &def.commit, &def.checkout, &def.file) {
            self.shared.set_status(key, Phase::Failed, &e.to_string());
        }
    }

    fn request_promotion(
        self: &Arc<Self>,
        key: &ResourceKey,
        job: &ResourceKey,
        output: &str,
        pinned: Option<&cairn_spec::Sha256>,
        promotion: cairn_spec::Promotion,
    ) {
        let artifact = match self.shared.store.latest_artifact(job, output) {
            Ok(Some(a)) => a,
            _ => return,
        };
        if pinned.is_some_and(|p| p.as_str() == artifact.sha256) {
            return;
        }
        let run = self.shared.store.run_by_id(artifact.run_id).ok().flatten();
        let why = run
            .as_ref()
            .filter(|r| r.trigger == "drift")
            .map(|r| format!("\n\nRetrained after drift was detected ({}).", r.params))
            .unwrap_or_default();
        let message = format!(
            "Promote model {} to artifact sha256 {}\n\nPins spec.from.sha256 of model {} to the output `{output}` of run #{} of job {}.{why}",
            key.name,
            &artifact.sha256[..12],
            key.qualified_name(),
            run.as_ref().map_or(artifact.run_id, |r| r.number),
            job.name,
        );
        let request = PromotionRequest {
            model: key.clone(),
            sha256: artifact.sha256.clone(),
            run_id: artifact.run_id,
            promotion,
            message,
        };
        match self.promotions.get() {
            Some(tx) if tx.send(request).is_ok() => {
                tracing::info!(
                    "{key}: promoting artifact {} through Git",
                    &artifact.sha256[..12]
                );
            }
            _ => tracing::warn!(
                "{key}: a new artifact ({}) awaits promotion, but nothing writes to Git here",
                &artifact.sha256[..12]
            ),
        }
    }
}
