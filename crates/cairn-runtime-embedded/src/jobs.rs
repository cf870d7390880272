//! Jobs on the embedded runtime: definitions, cron schedules, pipelines of
//! runs in `dependsOn` order, and the execution of one run (admission,
//! process, timeout, retries, outputs).

use crate::environments::Environments;
use crate::gpu::cuda_visible_devices;
use crate::process::{self, ExitOutcome, ProcessHandle, ProcessSpec};
use crate::quotas::{Admission, Quotas};
use crate::shared::Shared;
use crate::tracking;

mod pipeline;
use cairn_runtime::RunRequest;
use cairn_runtime::RuntimeError;
use cairn_spec::ResourceKey;
use cairn_spec::{Command, JobSpec};
use cairn_store::{Phase, Run, RunState};
use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::task::AbortHandle;

/// The longest a job run's own token works.
const WORKLOAD_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// What is told of a job whose run succeeded.
type OnSuccess = Box<dyn Fn(&ResourceKey) + Send + Sync>;

/// Applied jobs and their active runs.
pub(crate) struct Jobs {
    shared: Arc<Shared>,
    quotas: Arc<Quotas>,
    envs: Arc<Environments>,
    state: Mutex<State>,
    /// Told of each job whose run succeeded (it has new artifacts).
    succeeded: OnceLock<OnSuccess>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<ResourceKey, JobDef>,
    /// Jobs created or changed by the current sync, run when it finishes.
    sync_runs: BTreeSet<ResourceKey>,
    /// Cancel switches of active runs, by run id.
    cancels: HashMap<i64, tokio::sync::watch::Sender<bool>>,
    /// The MLflow parent run of each sweep in flight, by sweep id.
    sweep_parents: HashMap<String, String>,
}

/// A job as applied.
struct JobDef {
    pub spec: JobSpec,
    pub commit: String,
    pub checkout: PathBuf,
    schedule: Option<AbortHandle>,
}

/// How long a process gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

impl Jobs {
    /// Jobs admitted by `quotas`, in environments from `envs`.
    pub fn new(shared: Arc<Shared>, quotas: Arc<Quotas>, envs: Arc<Environments>) -> Self {
        Jobs {
            shared,
            quotas,
            envs,
            state: Mutex::new(State::default()),
            succeeded: OnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what is told of each job whose run succeeded (called without
    /// any lock of the jobs held). Only the first call counts.
    pub fn on_success(&self, succeeded: impl Fn(&ResourceKey) + Send + Sync + 'static) {
        let _ = self.succeeded.set(Box::new(succeeded));
    }

    /// The applied jobs.
    pub fn keys(&self) -> Vec<ResourceKey> {
        self.state().jobs.keys().cloned().collect()
    }

    /// The jobs the current sync queued to run, forgotten.
    pub fn take_sync_runs(&self) -> Vec<ResourceKey> {
        std::mem::take(&mut self.state().sync_runs)
            .into_iter()
            .collect()
    }

    /// Cancels every active run.
    pub fn cancel_all(&self) {
        let cancels: Vec<_> = self.state().cancels.values().cloned().collect();
        for c in cancels {
            let _ = c.send(true);
        }
    }

    /// Registers (or replaces) a job; arms its schedule; on sync, queues a
    /// run when the job runs on sync.
    #[allow(clippy::too_many_arguments)]
    pub fn register_job(
        self: &Arc<Self>,
        key: &ResourceKey,
        spec: &JobSpec,
        commit: &str,
        checkout: &Path,
        file: &str,
        _updated: bool,
        syncing: bool,
    ) -> String {
        let mut state = self.state();
        if let Some(old) = state.jobs.remove(key)
            && let Some(s) = old.schedule
        {
            s.abort();
        }
        let schedule = spec
            .schedule
            .as_ref()
            .map(|_| self.arm_schedule(key.clone()));
        let runs_on_sync =
            spec.schedule.is_none() && !spec.trigger.as_ref().is_some_and(|t| t.manual);
        state.jobs.insert(
            key.clone(),
            JobDef {
                spec: spec.clone(),
                commit: commit.to_string(),
                checkout: checkout.to_path_buf(),
                schedule,
            },
        );
        if syncing && runs_on_sync {
            state.sync_runs.insert(key.clone());
        }
        drop(state);
        let _ = file;
        if !syncing && self.shared.store.runs(key, 1).is_ok_and(|r| !r.is_empty()) {
            // Restored after a restart: the recorded status (its last run's
            // outcome) stands.
            return "restored".into();
        }
        match (&spec.schedule, runs_on_sync) {
            (Some(s), _) => {
                let message = format!("scheduled `{}` ({})", s.cron, s.timezone);
                self.idle_unless_running(key, &message);
                message
            }
            (None, true) if syncing => "runs now (on sync)".into(),
            _ => {
                self.idle_unless_running(key, "waiting for a manual run");
                "waiting for a manual run".into()
            }
        }
    }

    fn idle_unless_running(&self, key: &ResourceKey, message: &str) {
        let running = self
            .shared
            .store
            .runs(key, 1)
            .ok()
            .and_then(|r| r.into_iter().next())
            .is_some_and(|r| !r.state.is_final());
        if !running {
            self.shared.set_status(key, Phase::Idle, message);
        }
    }

    /// Forgets a job: disarms its schedule and stops its active runs.
    pub fn remove_job(&self, key: &ResourceKey) -> String {
        let mut state = self.state();
        if let Some(def) = state.jobs.remove(key)
            && let Some(s) = def.schedule
        {
            s.abort();
        }
        state.sync_runs.remove(key);
        drop(state);
        let mut stopped = 0;
        if let Ok(runs) = self.shared.store.runs(key, 50) {
            for run in runs.iter().filter(|r| !r.state.is_final()) {
                if let Some(c) = self.state().cancels.get(&run.id) {
                    let _ = c.send(true);
                    stopped += 1;
                }
            }
        }
        if stopped > 0 {
            format!("stopping {stopped} active run(s)")
        } else {
            "removed".into()
        }
    }

    /// A task that starts the job at each time of its cron schedule.
    fn arm_schedule(self: &Arc<Self>, key: ResourceKey) -> AbortHandle {
        let inner = self.clone();
        self.shared
            .handle
            .spawn(async move {
                loop {
                    let Some((cron, tz, forbid_concurrent)) =
                        inner.state().jobs.get(&key).and_then(|j| {
                            j.spec.schedule.as_ref().map(|s| {
                                (s.cron.cron().clone(), s.timezone.tz(), s.forbid_concurrent)
                            })
                        })
                    else {
                        return;
                    };
                    let now = chrono::Utc::now().with_timezone(&tz);
                    let Ok(next) = cron.find_next_occurrence(&now, false) else {
                        tracing::warn!("{key}: its schedule never fires again");
                        return;
                    };
                    let wait = (next.with_timezone(&chrono::Utc) - chrono::Utc::now())
                        .to_std()
                        .unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    let busy = inner
                        .shared
                        .store
                        .runs(&key, 1)
                        .ok()
                        .and_then(|r| r.into_iter().next())
                        .is_some_and(|r| !r.state.is_final());
                    if busy && forbid_concurrent {
                        let _ = inner.shared.store.audit(
                            None,
                            Some(&key),
                            "skip",
                            "schedule fired while a run was active",
                        );
                        continue;
                    }
                    let request = RunRequest {
                        targets: vec![key.clone()],
                        trigger: "schedule".into(),
                        params: None,
                        with_upstream: false,
                        actor: cairn_store::SYSTEM_ACTOR.into(),
                    };
                    if let Err(e) = inner.trigger(request) {
                        tracing::warn!("{key}: scheduled run not started: {e}");
                    }
                    // Never fire twice for the same instant.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .abort_handle()
    }

    /// Creates the runs of a request in pipeline order and executes them in
    /// the background.
    pub fn trigger(self: &Arc<Self>, request: RunRequest) -> Result<Vec<Run>, RuntimeError> {
        let order = {
            let state = self.state();
            for t in &request.targets {
                if !state.jobs.contains_key(t) {
                    return Err(RuntimeError::NotFound(format!("{t} is not applied")));
                }
            }
            let mut order = Vec::new();
            let mut seen = HashSet::new();
            for t in &request.targets {
                self.visit(&state.jobs, t, &request, &mut seen, &mut order, 0);
            }
            order
        };
        let pipeline = uuid::Uuid::now_v7().to_string();
        let targets: HashSet<&ResourceKey> = request.targets.iter().collect();
        let mut runs = Vec::new();
        for key in &order {
            let (commit, spec) = {
                let state = self.state();
                let def = &state.jobs[key];
                (def.commit.clone(), def.spec.clone())
            };
            let mut params = spec.params.clone();
            if targets.contains(key)
                && let Some(overrides) = &request.params
            {
                params.extend(overrides.clone());
            }
            let trigger = if targets.contains(key) {
                request.trigger.clone()
            } else {
                "pipeline".to_string()
            };
            // A job with a sweep runs as one run per parameter set, as a
            // target or upstream of one.
            let (sets, sweep) = match &spec.sweep {
                Some(sweep) => (
                    cairn_runtime::sweep::expand(sweep, &params),
                    Some(format!("{pipeline}/{}", key.name)),
                ),
                _ => (vec![params], None),
            };
            let parent = sweep.as_ref().and_then(|id| {
                tracking::start_sweep(
                    &self.shared.store,
                    key,
                    &spec,
                    id,
                    &commit,
                    &request.actor,
                    sets.len(),
                )
                .map_err(|e| tracing::warn!("tracking the sweep of {key}: {e}"))
                .ok()
            });
            let log_dir = self.shared.resource_dir("logs", key);
            std::fs::create_dir_all(&log_dir)?;
            for set in sets {
                let params: serde_json::Map<String, Value> = set.into_iter().collect();
                let run = self.shared.store.create_run(
                    key,
                    &trigger,
                    &pipeline,
                    &commit,
                    &Value::Object(params),
                    &log_dir,
                )?;
                if let Some(id) = &sweep {
                    self.shared.store.set_run_sweep(run.id, id)?;
                }
                if let Err(e) = tracking::start(
                    &self.shared.store,
                    key,
                    &spec,
                    &run,
                    &request.actor,
                    parent.as_deref(),
                ) {
                    tracing::warn!("tracking {key} run #{}: {e}", run.number);
                }
                let _ = self.shared.store.audit_as(
                    &request.actor,
                    Some(&commit),
                    Some(key),
                    "run",
                    &match &sweep {
                        Some(_) => format!("run #{} created ({trigger}, sweep)", run.number),
                        None => format!("run #{} created ({trigger})", run.number),
                    },
                );
                runs.push(match &sweep {
                    Some(_) => self.shared.store.run_by_id(run.id)?.unwrap_or(run),
                    None => run,
                });
            }
            if let (Some(parent), Some(id)) = (&parent, &sweep) {
                self.state()
                    .sweep_parents
                    .insert(id.clone(), parent.clone());
            }
        }
        let inner = self.clone();
        let pipeline_runs = runs.clone();
        self.shared
            .handle
            .spawn(async move { inner.execute_pipeline(pipeline_runs, HashSet::new()).await });
        Ok(runs)
    }

    /// Depth-first, upstream first.
    fn visit(
        &self,
        jobs: &HashMap<ResourceKey, JobDef>,
        key: &ResourceKey,
        request: &RunRequest,
        seen: &mut HashSet<ResourceKey>,
        order: &mut Vec<ResourceKey>,
        depth: usize,
    ) {
        if depth > jobs.len() || !seen.insert(key.clone()) {
            return;
        }
        if let Some(def) = jobs.get(key) {
            for dep in &def.spec.depends_on {
                let up = ResourceKey {
                    kind: key.kind,
                    project: key.project.clone(),
                    name: dep.clone(),
                };
                let needed = request.with_upstream
                    || self.shared.store.last_success(&up).ok().flatten().is_none();
                if needed && jobs.contains_key(&up) {
                    self.visit(jobs, &up, request, seen, order, depth + 1);
                }
            }
        }
        order.push(key.clone());
    }

    /// Runs one job run to its end, with retries.
    pub(super) async fn execute_run(self: &Arc<Self>, run: Run, adopt: bool) -> RunState {
        let key = run.job.clone();
        let Some((spec, checkout)) = self
            .state()
            .jobs
            .get(&key)
            .map(|d| (d.spec.clone(), d.checkout.clone()))
        else {
            let _ = self.shared.store.finish_run(
                run.id,
                RunState::Skipped,
                None,
                "skipped: the job was removed",
            );
            return RunState::Skipped;
        };
        // The environment is built (or found) before anything is admitted.
        let environment = {
            if !adopt {
                let _ = self.shared.store.run_state(
                    run.id,
                    RunState::Pending,
                    "preparing its environment",
                );
            }
            match self
                .envs
                .prepare_environment(&key, spec.environment.as_ref(), &checkout)
                .await
            {
                Ok(vars) => vars,
                Err(e) => {
                    let message = format!("environment: {e}");
                    append_log(&run.log_path, &format!("=== {message}"));
                    let _ = self
                        .shared
                        .store
                        .finish_run(run.id, RunState::Failed, None, &message);
                    self.shared.set_status(
                        &key,
                        Phase::Failed,
                        &format!("run #{}: {message}", run.number),
                    );
                    return RunState::Failed;
                }
            }
        };
        let (cancel_tx, mut cancel) = tokio::sync::watch::channel(false);
        self.state().cancels.insert(run.id, cancel_tx);
        let holder = format!("run:{}", run.id);
        let run_dir = self
            .shared
            .resource_dir("runs", &key)
            .join(run.number.to_string());
        let out_dir = run_dir.join("out");
        let exit_file = run_dir.join("exit");

        let mut attempt = run.attempt.max(1);
        let mut adopted = if adopt {
            run.pid.zip(run.start_ticks).and_then(|(pid, ticks)| {
                process::adopt(pid as u32, ticks as u64, Some(exit_file.clone()))
            })
        } else {
            None
        };
        // A process that ended while the controller was down left its exit status.
        let mut finished_while_away = if adopt && adopted.is_none() {
            Some(process::read_exit_file(&exit_file).unwrap_or(ExitOutcome::Unknown))
        } else {
            None
        };
        let result = loop {
            let outcome = match finished_while_away.take() {
                Some(o) => o,
                None => {
                    // Admission: quotas and GPUs.
                    let gpus = loop {
                        match self.quotas.admit(
                            &holder,
                            key.project.as_ref(),
                            spec.pool.as_ref(),
                            spec.resources.as_ref(),
                        ) {
                            Admission::Granted(g) => break Ok(g),
                            Admission::Never(reason) => break Err(reason),
                            Admission::Wait(reason) => {
                                let _ =
                                    self.shared
                                        .store
                                        .run_state(run.id, RunState::Pending, &reason);
                                self.shared.set_status(
                                    &key,
                                    Phase::Running,
                                    &format!("run #{}: {reason}", run.number),
                                );
                                let released = self.quotas.released.notified();
                                tokio::select! {
                                    _ = released => {}
                                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    _ = cancel.changed() => break Err("cancelled while waiting for resources".into()),
                                }
                            }
                        }
                    };
                    let gpus = match gpus {
                        Ok(g) => g,
                        Err(reason) => break (RunState::Failed, None, reason),
                    };
                    let mut handle = match adopted.take() {
                        Some(h) => h,
                        None => match self.start_attempt(
                            &run,
                            &spec,
                            &checkout,
                            &out_dir,
                            &exit_file,
                            attempt,
                            &gpus,
                            &environment,
                        ) {
                            Ok(h) => h,
                            Err(e) => {
                                self.quotas.release(&holder);
                                break (RunState::Failed, None, e);
                            }
                        },
                    };
                    self.shared.set_status(
                        &key,
                        Phase::Running,
                        &format!("run #{} attempt {attempt} running", run.number),
                    );
                    let waited = tokio::select! {
                        o = handle.wait() => Ok(o),
                        _ = sleep_opt(spec.timeout.map(|t| t.get())) => Err(true),
                        _ = cancel.changed() => Err(false),
                    };
                    match waited {
                        Ok(o) => {
                            self.quotas.release(&holder);
                            o
                        }
                        Err(timed_out) => {
                            let o = handle.terminate(KILL_GRACE).await;
                            self.quotas.release(&holder);
                            if !timed_out {
                                let message =
                                    format!("cancelled; its process group was stopped ({o})");
                                append_log(&run.log_path, &format!("=== {message}"));
                                break (RunState::Skipped, None, message);
                            }
                            let message = format!(
                                "attempt {attempt} timed out after {}; its process group was killed ({o})",
                                spec.timeout.expect("timeout set")
                            );
                            append_log(&run.log_path, &format!("=== {message}"));
                            if attempt <= spec.retries as i64 {
                                attempt += 1;
                                self.backoff(&run, attempt, &message).await;
                                continue;
                            }
                            break (RunState::Failed, None, message);
                        }
                    }
                }
            };
            let code = match outcome {
                ExitOutcome::Exited(c) => Some(c as i64),
                _ => None,
            };
            if outcome.success() {
                match self.collect_outputs(&run, &spec, &out_dir) {
                    Ok(n) => {
                        let note = if n > 0 {
                            format!(", {n} output(s) kept")
                        } else {
                            String::new()
                        };
                        break (
                            RunState::Succeeded,
                            code,
                            format!("succeeded on attempt {attempt}{note}"),
                        );
                    }
                    Err(e) => break (RunState::Failed, code, e),
                }
            }
            let message = format!("attempt {attempt} failed: {outcome}");
            append_log(&run.log_path, &format!("=== {message}"));
            if attempt <= spec.retries as i64 {
                attempt += 1;
                self.backoff(&run, attempt, &message).await;
                continue;
            }
            let total = spec.retries + 1;
            break (
                RunState::Failed,
                code,
                format!(
                    "failed after {total} attempt{}: {outcome}",
                    if total == 1 { "" } else { "s" }
                ),
            );
        };
        let (state, code, mut message) = result;
        self.state().cancels.remove(&run.id);
        if state == RunState::Succeeded
            && let Some(output) = spec.experiment.as_ref().and_then(|e| e.metrics.as_ref())
            && let Some(o) = spec.outputs.iter().find(|o| o.name == *output)
        {
            match tracking::final_metrics(
                &self.shared.store,
                run.id,
                &out_dir.join(o.path.as_str()),
            ) {
                Ok(n) => message.push_str(&format!(", {n} metric(s) from `{output}`")),
                Err(e) => {
                    append_log(&run.log_path, &format!("=== metrics from `{output}`: {e}"));
                    message.push_str(&format!("; metrics from `{output}` not recorded: {e}"));
                }
            }
        }
        tracking::finish(&self.shared.store, run.id, state);
        let _ = self.shared.store.finish_run(run.id, state, code, &message);
        self.shared
            .end_workload(&format!("run #{} ({})", run.number, run.id));
        let phase = match state {
            RunState::Succeeded => Phase::Succeeded,
            RunState::Failed => Phase::Failed,
            _ => Phase::Idle,
        };
        self.shared
            .set_status(&key, phase, &format!("run #{}: {message}", run.number));
        // A sweep's run feeds nothing until the sweep chooses its best.
        if state == RunState::Succeeded
            && run.sweep.is_none()
            && let Some(succeeded) = self.succeeded.get()
        {
            succeeded(&key);
        }
        let _ = self.shared.store.audit(
            Some(&run.commit),
            Some(&key),
            "run",
            &format!("run #{} {message}", run.number),
        );
        tracing::info!("{key} run #{}: {message}", run.number);
        state
    }

    async fn backoff(&self, run: &Run, next_attempt: i64, why: &str) {
        let delay =
            Duration::from_millis((500u64 << (next_attempt - 2).clamp(0, 7) as u32).min(60_000));
        let message = format!(
            "{why}; retrying in {:.1}s (attempt {next_attempt})",
            delay.as_secs_f64()
        );
        let _ = self
            .shared
            .store
            .run_state(run.id, RunState::Running, &message);
        tokio::time::sleep(delay).await;
    }

    /// Starts one attempt's process.
    #[allow(clippy::too_many_arguments)]
    fn start_attempt(
        &self,
        run: &Run,
        spec: &JobSpec,
        checkout: &Path,
        out_dir: &Path,
        exit_file: &Path,
        attempt: i64,
        gpus: &[u32],
        environment: &[(String, String)],
    ) -> Result<ProcessHandle, String> {
        let key = &run.job;
        std::fs::create_dir_all(out_dir)
            .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
        let _ = std::fs::remove_file(exit_file);
        let cwd = match &spec.workdir {
            Some(w) => checkout.join(w.as_str()),
            None => checkout.to_path_buf(),
        };
        // `CAIRN_SERVER` first: the project's or the spec's `env` may set another.
        let mut env: Vec<(String, String)> = self.shared.server_env().into_iter().collect();
        env.extend(self.quotas.project_env(key.project.as_ref())?);
        env.extend(environment.iter().cloned());
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.push(("CAIRN_JOB".into(), key.name.to_string()));
        env.push((
            "CAIRN_PROJECT".into(),
            key.project
                .as_ref()
                .map_or(String::new(), |p| p.to_string()),
        ));
        // Lives as long as the run, and no longer than its timeout.
        let ttl = spec
            .timeout
            .map_or(WORKLOAD_TOKEN_TTL, |t| t.get() + Duration::from_secs(60))
            .min(WORKLOAD_TOKEN_TTL);
        let token =
            self.shared
                .workload_token(key, &format!("run #{} ({})", run.number, run.id), ttl);
        env.extend(tracking::env(
            &self.shared.store,
            run.id,
            self.shared.server_url.get().map(String::as_str),
            token.as_ref().map(|(_, secret)| secret.as_str()),
        ));
        env.extend(token);
        env.push(("CAIRN_RUN".into(), run.number.to_string()));
        env.push(("CAIRN_RUN_ID".into(), run.id.to_string()));
        env.push(("CAIRN_ATTEMPT".into(), attempt.to_string()));
        env.push(("CAIRN_COMMIT".into(), run.commit.clone()));
        env.push((
            "CAIRN_OUTPUT_DIR".into(),
            out_dir.to_string_lossy().into_owned(),
        ));
        env.extend(crate::gpu::cuda_env(gpus));
        for (i, dep) in spec.depends_on.iter().enumerate() {
            let up = ResourceKey {
                kind: key.kind,
                project: key.project.clone(),
                name: dep.clone(),
            };
            if let Ok(Some(last)) = self.shared.store.last_success(&up) {
                let dir = self
                    .shared
                    .resource_dir("runs", &up)
                    .join(last.number.to_string())
                    .join("out");
                let dir = dir.to_string_lossy().into_owned();
                if i == 0 {
                    env.push(("CAIRN_INPUT_DIR".into(), dir.clone()));
                }
                env.push((format!("CAIRN_INPUT_{}", env_name(dep.as_str())), dir));
            }
        }
        if let Value::Object(params) = &run.params {
            for (k, v) in params {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                env.push((format!("CAIRN_PARAM_{}", env_name(k)), text));
            }
        }
        let (program, args) = match &spec.command {
            Command::Args(a) if !a.is_empty() => {
                (a[0].clone(), cairn_runtime::expand_args(&a[1..], &env))
            }
            Command::Shell(s) => ("sh".to_string(), vec!["-c".to_string(), s.clone()]),
            _ => return Err("the command is empty".into()),
        };
        append_log(
            &run.log_path,
            &format!(
                "=== run #{} attempt {attempt}/{} of {key} at commit {} ({}): {} {}{}",
                run.number,
                spec.retries + 1,
                &run.commit[..run.commit.len().min(12)],
                cairn_store::now(),
                program,
                args.join(" "),
                if gpus.is_empty() {
                    String::new()
                } else {
                    format!(" [GPUs {}]", cuda_visible_devices(gpus))
                }
            ),
        );
        let handle = process::spawn(&ProcessSpec {
            program: program.clone(),
            args,
            cwd,
            env,
            clear_env: false,
            log_path: PathBuf::from(&run.log_path),
            exit_file: Some(exit_file.to_path_buf()),
        })
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
        tracking::running(
            &self.shared.store,
            run.id,
            self.envs.digest_of(key).as_deref(),
        );
        let gpus_text = (!gpus.is_empty()).then(|| cuda_visible_devices(gpus));
        let _ = self.shared.store.run_started(
            run.id,
            attempt,
            handle.pid() as i64,
            handle.start_ticks() as i64,
            gpus_text.as_deref(),
        );
        Ok(handle)
    }

    /// Records declared outputs as artifacts; a missing one fails the run.
    fn collect_outputs(&self, run: &Run, spec: &JobSpec, out_dir: &Path) -> Result<usize, String> {
        for output in &spec.outputs {
            let path = out_dir.join(output.path.as_str());
            let bytes = std::fs::read(&path).map_err(|_| {
                format!(
                    "declared output `{}` ({}) was not written to $CAIRN_OUTPUT_DIR",
                    output.name, output.path
                )
            })?;
            let digest = hex::encode(sha2::Sha256::digest(&bytes));
            self.shared
                .store
                .add_artifact(
                    run,
                    output.name.as_str(),
                    &path.to_string_lossy(),
                    &digest,
                    bytes.len() as i64,
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(spec.outputs.len())
    }

    /// After a restart: adopt runs whose process still runs, settle the
    /// others, and finish their pipelines.
    pub fn resume_runs(self: &Arc<Self>) {
        let Ok(unfinished) = self.shared.store.unfinished_runs() else {
            return;
        };
        let mut pipelines: BTreeMap<String, Vec<Run>> = BTreeMap::new();
        for run in unfinished {
            pipelines.entry(run.pipeline.clone()).or_default().push(run);
        }
        for (_, runs) in pipelines {
            let adopted: HashSet<i64> = runs
                .iter()
                .filter(|r| r.state == RunState::Running)
                .map(|r| r.id)
                .collect();
            for r in &runs {
                if adopted.contains(&r.id) {
                    tracing::info!(
                        "{} run #{}: adopting process {:?} after restart",
                        r.job,
                        r.number,
                        r.pid
                    );
                }
            }
            let inner = self.clone();
            self.shared
                .handle
                .spawn(async move { inner.execute_pipeline(runs, adopted).await });
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// `my-param` → `MY_PARAM`.
pub(crate) fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

fn append_log(path: &str, line: &str) {
    if let Some(dir) = Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
