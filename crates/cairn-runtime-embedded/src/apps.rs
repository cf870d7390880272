//! Applications on the embedded runtime: replicas on free ports, restarted
//! by their policy, health-checked, replaced without downtime when the spec
//! changes, and adopted after a controller restart.

use crate::environments::Environments;
use crate::plugins::Plugins;
use crate::process::{self, ProcessHandle, ProcessSpec};
use crate::quotas::{Admission, Quotas};
use crate::shared::Shared;
use cairn_runtime::RuntimeError;
use cairn_runtime::frameworks::LaunchPlan;
use cairn_spec::ResourceKey;
use cairn_spec::{ApplicationSpec, RestartPolicy};
use cairn_store::{Phase, ProcessRecord};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    axum::body::Body,
>;

/// Running applications (and the replicas of process models).
pub(crate) struct Apps {
    shared: Arc<Shared>,
    quotas: Arc<Quotas>,
    envs: Arc<Environments>,
    plugins: Arc<Plugins>,
    state: Mutex<State>,
    /// Asks replicas whether they are ready.
    http: HttpClient,
}

#[derive(Default)]
struct State {
    apps: HashMap<ResourceKey, AppDef>,
    /// Round-robin counter for application replicas.
    next_replica: usize,
}

/// An application as applied.
struct AppDef {
    generation: u64,
    replicas: Vec<Replica>,
    /// Replicas of the previous generation, serving until the new ones are ready.
    draining: Vec<Replica>,
}

#[derive(Clone)]
struct Replica {
    /// The generation (one `start_app`) the replica belongs to.
    generation: u64,
    port: u16,
    ready: Arc<AtomicBool>,
    /// Retired: gets no new requests while the ones it has finish.
    retiring: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    done: Arc<tokio::sync::Notify>,
    finished: Arc<AtomicBool>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Called once a new generation of replicas is ready (or [`READY_TIMEOUT`]
/// passed), with that generation, before the previous one is retired; a
/// process model switches its served version to the new replicas there.
/// False: the deployment was replaced meanwhile, and the previous replicas
/// are left to its successor.
pub(crate) type OnReady = Box<dyn FnOnce(u64) -> bool + Send>;

/// How long new replicas get to become ready before old ones are stopped anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a retired replica keeps running, without new requests, so that
/// the requests it already has can finish before it is stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

impl Apps {
    /// Applications admitted by `quotas`, in environments from `envs`, with
    /// app-framework plugins from `plugins`.
    pub fn new(
        shared: Arc<Shared>,
        quotas: Arc<Quotas>,
        envs: Arc<Environments>,
        plugins: Arc<Plugins>,
    ) -> Self {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Apps {
            shared,
            quotas,
            envs,
            plugins,
            state: Mutex::new(State::default()),
            http,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resources with replicas (applications and process models).
    pub fn keys(&self) -> Vec<ResourceKey> {
        self.state().apps.keys().cloned().collect()
    }

    /// Stops every replica (killing them unless `keep_running`, so that a
    /// restart can adopt them).
    pub async fn shutdown(&self, keep_running: bool) {
        for key in self.keys() {
            self.stop_app(&key, !keep_running).await;
        }
    }

    /// Starts (or replaces) an application's replicas.
    pub fn start_app(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ApplicationSpec,
        commit: &str,
        checkout: &Path,
        _file: &str,
    ) -> Result<String, RuntimeError> {
        self.start_replicas(key, spec, commit, checkout, None)
            .map(|(note, _)| note)
    }

    /// Starts (or replaces) a resource's replicas; returns a note and the
    /// new replicas' generation.
    pub fn start_replicas(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &ApplicationSpec,
        commit: &str,
        checkout: &Path,
        on_ready: Option<OnReady>,
    ) -> Result<(String, u64), RuntimeError> {
        let dir = checkout.join(spec.path.as_str());
        let prefix = format!("/apps/{}", key.name);
        // Resolve once up front so that a bad framework is reported now.
        let plan = Arc::new(self.launch_plan(key, spec, &dir, &prefix)?);
        plan.launch(spec, &dir, &prefix, 0)
            .map_err(RuntimeError::Start)?;
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let adoptable: Vec<ProcessRecord> = self
            .shared
            .store
            .processes()?
            .into_iter()
            .filter(|p| p.key == *key && p.commit == commit)
            .collect();
        let mut replicas = Vec::new();
        for index in 0..spec.replicas as i64 {
            let adopted = adoptable.iter().find(|p| p.replica == index).and_then(|p| {
                process::adopt(p.pid as u32, p.start_ticks as u64, None).map(|h| (h, p.port as u16))
            });
            let port = match &adopted {
                Some((_, port)) => *port,
                None => free_port()?,
            };
            let (stop, stop_rx) = watch::channel(false);
            let replica = Replica {
                generation,
                port,
                ready: Arc::new(AtomicBool::new(false)),
                retiring: Arc::new(AtomicBool::new(false)),
                stop,
                done: Arc::new(tokio::sync::Notify::new()),
                finished: Arc::new(AtomicBool::new(false)),
            };
            let inner = self.clone();
            let task = ReplicaTask {
                key: key.clone(),
                spec: spec.clone(),
                commit: commit.to_string(),
                dir: dir.clone(),
                checkout: checkout.to_path_buf(),
                index,
                replica: replica.clone(),
                adopted: adopted.map(|(h, _)| h),
                plan: plan.clone(),
            };
            self.shared
                .handle
                .spawn(async move { inner.supervise(task, stop_rx).await });
            replicas.push(replica);
        }
        let mut state = self.state();
        let previous = state.apps.remove(key);
        let mut draining = Vec::new();
        if let Some(old) = previous {
            draining.extend(old.replicas);
            draining.extend(old.draining);
        }
        let has_draining = !draining.is_empty();
        state.apps.insert(
            key.clone(),
            AppDef {
                generation,
                replicas: replicas.clone(),
                draining,
            },
        );
        drop(state);
        self.shared.set_status(
            key,
            Phase::Progressing,
            &format!("starting {} replica(s)", spec.replicas),
        );
        // Watch readiness; retire the previous generation once the new one serves.
        let inner = self.clone();
        let key2 = key.clone();
        let total = spec.replicas;
        self.shared.handle.spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                let ready = replicas
                    .iter()
                    .filter(|r| r.ready.load(Ordering::Relaxed))
                    .count();
                if ready == replicas.len() || started.elapsed() > READY_TIMEOUT {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Checked and reported under the lock, so that a removal (which
            // takes the app out of the state first) cannot be undone here.
            let old = {
                let state = inner.state();
                let Some(app) = state.apps.get(&key2).filter(|a| a.generation == generation) else {
                    return; // replaced or removed meanwhile
                };
                let ready = replicas
                    .iter()
                    .filter(|r| r.ready.load(Ordering::Relaxed))
                    .count();
                if ready as u32 == total {
                    inner.shared.set_status(
                        &key2,
                        Phase::Ready,
                        &format!(
                            "{ready}/{total} replica(s) ready at {}",
                            if key2.kind == cairn_spec::Kind::Model {
                                super::models::predict_route(&key2)
                            } else {
                                app_route(&key2)
                            }
                        ),
                    );
                }
                // Retire the previous generation: no new requests go to it,
                // the ones it has get DRAIN_GRACE to finish, then it is
                // stopped. It stays listed meanwhile, so that a shutdown
                // still stops it.
                app.draining.clone()
            };
            if let Some(on_ready) = on_ready
                && !on_ready(generation)
            {
                return;
            }
            if old.is_empty() {
                return;
            }
            for r in &old {
                r.retiring.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(DRAIN_GRACE).await;
            for r in &old {
                let _ = r.stop.send(true);
            }
            if let Some(a) = inner.state().apps.get_mut(&key2) {
                a.draining
                    .retain(|d| !old.iter().any(|o| Arc::ptr_eq(&o.ready, &d.ready)));
            }
        });
        let note = if has_draining {
            format!("rolling out {} new replica(s)", spec.replicas)
        } else {
            format!("starting {} replica(s)", spec.replicas)
        };
        Ok((note, generation))
    }

    /// Stops every replica of an application.
    async fn stop_app(&self, key: &ResourceKey, kill: bool) {
        let app = self.state().apps.remove(key);
        self.stop_replicas(key, app, kill).await;
    }

    /// Takes an application out of service now (no more requests, no more
    /// status updates) and stops its replicas in the background.
    pub fn remove_app(self: &Arc<Self>, key: &ResourceKey) {
        let app = self.state().apps.remove(key);
        let inner = self.clone();
        let key = key.clone();
        self.shared
            .handle
            .spawn(async move { inner.stop_replicas(&key, app, true).await });
    }

    async fn stop_replicas(&self, key: &ResourceKey, app: Option<AppDef>, kill: bool) {
        let Some(app) = app else {
            return;
        };
        let all: Vec<Replica> = app.replicas.into_iter().chain(app.draining).collect();
        if !kill {
            return; // leave them running for the next controller to adopt
        }
        for r in &all {
            let _ = r.stop.send(true);
        }
        for r in &all {
            if !r.finished.load(Ordering::Relaxed) {
                let _ = tokio::time::timeout(Duration::from_secs(10), r.done.notified()).await;
            }
        }
        let _ = self.shared.store.remove_processes(key, None);
    }

    /// The applications called `name`, whatever their project.
    pub fn apps_named(&self, name: &str) -> Vec<ResourceKey> {
        self.state()
            .apps
            .keys()
            .filter(|k| k.kind == cairn_spec::Kind::Application && k.name.as_str() == name)
            .cloned()
            .collect()
    }

    /// A ready replica of an application, round-robin.
    pub fn app_upstream(&self, app: &ResourceKey) -> Option<SocketAddr> {
        let mut state = self.state();
        let ready: Vec<u16> = state
            .apps
            .get(app)
            .into_iter()
            .flat_map(|a| a.replicas.iter().chain(a.draining.iter()))
            .filter(|r| r.ready.load(Ordering::Relaxed) && !r.retiring.load(Ordering::Relaxed))
            .map(|r| r.port)
            .collect();
        if ready.is_empty() {
            return None;
        }
        state.next_replica = state.next_replica.wrapping_add(1);
        let port = ready[state.next_replica % ready.len()];
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// A ready replica of exactly this resource (a process model) and
    /// generation, round-robin: a model version is answered only by its own
    /// replicas (retiring ones included, while they drain).
    pub fn upstream_of(&self, key: &ResourceKey, generation: u64) -> Option<SocketAddr> {
        let mut state = self.state();
        let ready: Vec<u16> = state
            .apps
            .get(key)
            .into_iter()
            .flat_map(|a| a.replicas.iter().chain(a.draining.iter()))
            .filter(|r| r.generation == generation && r.ready.load(Ordering::Relaxed))
            .map(|r| r.port)
            .collect();
        if ready.is_empty() {
            return None;
        }
        state.next_replica = state.next_replica.wrapping_add(1);
        let port = ready[state.next_replica % ready.len()];
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn replica_log(&self, key: &ResourceKey, replica: i64) -> PathBuf {
        self.shared
            .resource_dir("logs", key)
            .join(format!("replica-{replica}.log"))
    }

    /// Keeps one replica running until told to stop.
    async fn supervise(self: Arc<Self>, task: ReplicaTask, mut stop: watch::Receiver<bool>) {
        let ReplicaTask {
            key,
            spec,
            commit,
            dir,
            checkout,
            index,
            replica,
            mut adopted,
            plan,
        } = task;
        let holder = format!("app:{}:{index}:{}", key.id(), replica.port);
        let environment = match self
            .envs
            .prepare_environment(&key, spec.environment.as_ref(), &checkout)
            .await
        {
            Ok(vars) => vars,
            Err(e) => {
                self.shared
                    .set_status(&key, Phase::Failed, &format!("environment: {e}"));
                replica.finished.store(true, Ordering::Relaxed);
                replica.done.notify_waiters();
                return;
            }
        };
        let prefix = format!("/apps/{}", key.name);
        let log = self.replica_log(&key, index);
        let mut failures = 0u32;
        'life: loop {
            let mut handle = match adopted.take() {
                Some(h) => {
                    tracing::info!(
                        "{key} replica {index}: adopted process {} on port {}",
                        h.pid(),
                        replica.port
                    );
                    h
                }
                None => {
                    match self.quotas.admit(
                        &holder,
                        key.project.as_ref(),
                        spec.pool.as_ref(),
                        spec.resources.as_ref(),
                    ) {
                        Admission::Granted(gpus) => match self.spawn_replica(
                            &key,
                            &spec,
                            &plan,
                            &commit,
                            &dir,
                            index,
                            &replica,
                            &prefix,
                            &log,
                            &gpus,
                            &environment,
                        ) {
                            Ok(h) => h,
                            Err(e) => {
                                self.quotas.release(&holder);
                                self.shared.set_status(&key, Phase::Failed, &e);
                                break 'life;
                            }
                        },
                        Admission::Never(reason) => {
                            self.shared.set_status(&key, Phase::Failed, &reason);
                            break 'life;
                        }
                        Admission::Wait(reason) => {
                            self.shared.set_status(
                                &key,
                                Phase::Progressing,
                                &format!("replica {index}: {reason}"),
                            );
                            tokio::select! {
                                _ = self.quotas.released.notified() => {}
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.changed() => break 'life,
                            }
                            continue 'life;
                        }
                    }
                }
            };
            let health = plan
                .launch(&spec, &dir, &prefix, replica.port)
                .map(|l| l.health_path)
                .unwrap_or_else(|_| "/".into());
            let exited = loop {
                tokio::select! {
                    outcome = handle.wait() => break Some(outcome),
                    _ = stop.changed() => {
                        handle.terminate(Duration::from_secs(5)).await;
                        break None;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if !replica.ready.load(Ordering::Relaxed) && self.healthy(replica.port, &health).await {
                            replica.ready.store(true, Ordering::Relaxed);
                            failures = 0;
                            tracing::info!("{key} replica {index} ready on port {}", replica.port);
                        }
                    }
                }
            };
            replica.ready.store(false, Ordering::Relaxed);
            self.quotas.release(&holder);
            let Some(outcome) = exited else {
                break 'life;
            };
            let restart = match spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !outcome.success(),
                RestartPolicy::Never => false,
            };
            if !restart {
                self.shared.set_status(
                    &key,
                    Phase::Failed,
                    &format!("replica {index} exited ({outcome}); restart policy says no"),
                );
                break 'life;
            }
            failures += 1;
            let delay = Duration::from_millis((250u64 << failures.min(7)).min(30_000));
            self.shared.set_status(
                &key,
                Phase::Progressing,
                &format!(
                    "replica {index} exited ({outcome}); restarting in {:.1}s",
                    delay.as_secs_f64()
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => break 'life,
            }
        }
        let _ = self.shared.store.remove_processes(&key, Some(index));
        self.shared
            .end_workload(&replica_owner(&key, index, replica.port));
        replica.finished.store(true, Ordering::Relaxed);
        replica.done.notify_waiters();
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_replica(
        &self,
        key: &ResourceKey,
        spec: &ApplicationSpec,
        plan: &LaunchPlan,
        commit: &str,
        dir: &Path,
        index: i64,
        replica: &Replica,
        prefix: &str,
        log: &Path,
        gpus: &[u32],
        environment: &[(String, String)],
    ) -> Result<ProcessHandle, String> {
        let launch = plan.launch(spec, dir, prefix, replica.port)?;
        // `CAIRN_SERVER` first: the project's or the spec's `env` may set another.
        let mut env: Vec<(String, String)> = self.shared.server_env().into_iter().collect();
        env.extend(self.quotas.project_env(key.project.as_ref())?);
        env.extend(environment.iter().cloned());
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(launch.env);
        env.extend(self.shared.workload_token(
            key,
            &replica_owner(key, index, replica.port),
            REPLICA_TOKEN_TTL,
        ));
        env.push(("PORT".into(), replica.port.to_string()));
        env.push(("CAIRN_APP".into(), key.name.to_string()));
        env.push(("CAIRN_APP_PREFIX".into(), prefix.to_string()));
        env.push(("CAIRN_REPLICA".into(), index.to_string()));
        env.push(("CAIRN_COMMIT".into(), commit.to_string()));
        env.extend(crate::gpu::cuda_env(gpus));
        let handle = process::spawn(&ProcessSpec {
            program: launch.argv[0].clone(),
            args: cairn_runtime::expand_args(&launch.argv[1..], &env),
            cwd: dir.to_path_buf(),
            env,
            clear_env: false,
            log_path: log.to_path_buf(),
            exit_file: None,
        })
        .map_err(|e| format!("replica {index} could not start `{}`: {e}", launch.argv[0]))?;
        let _ = self.shared.store.set_process(&ProcessRecord {
            key: key.clone(),
            replica: index,
            pid: handle.pid() as i64,
            start_ticks: handle.start_ticks() as i64,
            port: replica.port as i64,
            commit: commit.to_string(),
        });
        Ok(handle)
    }

    /// Whether `GET http://127.0.0.1:PORT/PATH` answers 2xx.
    async fn healthy(&self, port: u16, path: &str) -> bool {
        let Ok(uri) = format!("http://127.0.0.1:{port}{path}").parse::<hyper::Uri>() else {
            return false;
        };
        let request = hyper::Request::get(uri)
            .body(axum::body::Body::empty())
            .expect("valid request");
        match tokio::time::timeout(Duration::from_secs(2), self.http.request(request)).await {
            Ok(Ok(response)) => response.status().is_success(),
            _ => false,
        }
    }
}

struct ReplicaTask {
    key: ResourceKey,
    spec: ApplicationSpec,
    commit: String,
    dir: PathBuf,
    checkout: PathBuf,
    index: i64,
    replica: Replica,
    adopted: Option<ProcessHandle>,
    plan: Arc<LaunchPlan>,
}

impl Apps {
    /// An app-framework Plugin changed: the running applications of that
    /// framework are launched again with its new answer.
    pub fn restart_apps_of_framework(
        self: &Arc<Self>,
        plugin: &ResourceKey,
        ctx: &cairn_runtime::ApplyContext<'_>,
    ) {
        for r in ctx.state.resources.values() {
            let cairn_spec::Spec::Application(spec) = &r.spec else {
                continue;
            };
            if r.key.project != plugin.project
                || spec.framework != plugin.name.as_str()
                || !self.state().apps.contains_key(&r.key)
            {
                continue;
            }
            tracing::info!(
                "{}: framework plugin {plugin} changed; launching again",
                r.key
            );
            if let Err(e) = self.start_app(&r.key, spec, ctx.commit, ctx.checkout, &r.file) {
                self.shared
                    .set_status(&r.key, Phase::Failed, &e.to_string());
            }
        }
    }

    /// How the application's replicas are launched: `command` natively, any
    /// other framework through its plugin — a Plugin of that name in the
    /// project, or the built-in one (`flask`, `shiny`, `streamlit`).
    fn launch_plan(
        &self,
        key: &ResourceKey,
        spec: &ApplicationSpec,
        dir: &Path,
        prefix: &str,
    ) -> Result<LaunchPlan, RuntimeError> {
        use cairn_plugin_host::apps::{App, FrameworkPlugin, app_files};
        if spec.framework == "command" {
            return Ok(LaunchPlan::Native);
        }
        let name: cairn_spec::Name = spec
            .framework
            .parse()
            .map_err(|e| RuntimeError::Start(format!("framework `{}`: {e}", spec.framework)))?;
        let declared = self.plugins.declared(&ResourceKey {
            kind: cairn_spec::Kind::Plugin,
            project: key.project.clone(),
            name: name.clone(),
        });
        let (plugin, config, describe) = if declared {
            let r = self
                .plugins
                .resolve_plugin(key.project.as_ref(), &name)
                .map_err(RuntimeError::Start)?;
            let config = cairn_plugin_host::config_of(&r.def.spec.config);
            let describe = format!("plugin `{name}` ({})", r.def.file);
            (r.plugin, config, describe)
        } else if cairn_spec::BUILTIN_FRAMEWORKS.contains(&spec.framework.as_str()) {
            let plugin = self
                .plugins
                .host()
                .load(
                    &spec.framework,
                    &cairn_plugin_host::PluginSource::Builtin(spec.framework.clone()),
                    None,
                    &Default::default(),
                )
                .map_err(|e| RuntimeError::Start(format!("built-in plugin `{name}`: {e}")))?;
            (plugin, Vec::new(), format!("built-in plugin `{name}`"))
        } else {
            return Err(RuntimeError::NotFound(format!(
                "framework `{name}` is neither built in nor a declared app-framework Plugin"
            )));
        };
        let framework = FrameworkPlugin::new(plugin)
            .map_err(|e| RuntimeError::Start(format!("{describe}: {e}")))?;
        let command = match &spec.command {
            cairn_spec::Command::Empty => Vec::new(),
            cairn_spec::Command::Args(a) => a.clone(),
            cairn_spec::Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        };
        let app = App {
            name: key.name.to_string(),
            path: spec.path.to_string(),
            files: app_files(dir).unwrap_or_default(),
            url_prefix: prefix.to_string(),
            command,
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let launch = framework
            .launch(&config, &app)
            .map_err(|e| RuntimeError::Start(format!("{describe}: {e}")))?;
        if let Some(port) = launch.port {
            return Err(RuntimeError::Start(format!(
                "{describe}: asks for the fixed port {port}; Cairn gives each replica its own port as `$(PORT)`"
            )));
        }
        Ok(LaunchPlan::Plugin {
            command: launch.command,
            env: launch.env,
            health_path: launch.health_path,
        })
    }
}

/// A port that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Where an application is reached: the route with its project, which
/// answers whatever other projects run.
fn app_route(key: &ResourceKey) -> String {
    match &key.project {
        Some(p) => format!("/projects/{p}/apps/{}/", key.name),
        None => format!("/apps/{}/", key.name),
    }
}

/// The longest a replica's own token works (it is revoked when the replica
/// stops; a replica restarted after that gets a new one).
const REPLICA_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a replica's token names its workload.
fn replica_owner(key: &ResourceKey, index: i64, port: u16) -> String {
    format!("replica {index} (port {port}) of {}", key.id())
}
