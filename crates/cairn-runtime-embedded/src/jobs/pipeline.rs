//! A pipeline's runs, executed as a graph: each job's runs start once the
//! runs of the jobs it depends on (in this pipeline) have succeeded, so
//! independent jobs run in parallel; a run whose upstream failed is
//! skipped. A sweep's runs go in parallel up to `maxParallel` (admission
//! still waits for quotas and GPUs), may stop early by `patience`, and
//! end by choosing the best run by the objective: only that run feeds
//! models and downstream jobs.

use super::{Jobs, append_log};
use crate::tracking;
use cairn_spec::{Name, ResourceKey};
use cairn_store::{Phase, Run, RunState};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

impl Jobs {
    /// Executes a pipeline's runs; `adopted` are runs whose process
    /// survived a controller restart.
    pub(super) async fn execute_pipeline(self: Arc<Self>, runs: Vec<Run>, adopted: HashSet<i64>) {
        let mut groups: Vec<(ResourceKey, Vec<Run>)> = Vec::new();
        for run in runs {
            match groups.iter_mut().find(|(k, _)| *k == run.job) {
                Some((_, g)) => g.push(run),
                None => groups.push((run.job.clone(), vec![run])),
            }
        }
        let outcomes: HashMap<Name, watch::Sender<Option<RunState>>> = groups
            .iter()
            .map(|(k, _)| (k.name.clone(), watch::channel(None).0))
            .collect();
        let adopted = Arc::new(adopted);
        let mut tasks = JoinSet::new();
        for (key, group) in groups {
            let deps: Vec<(Name, watch::Receiver<Option<RunState>>)> = self
                .state()
                .jobs
                .get(&key)
                .map(|d| d.spec.depends_on.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| outcomes.get(&d).map(|tx| (d, tx.subscribe())))
                .collect();
            let done = outcomes[&key.name].clone();
            let inner = self.clone();
            let adopted = adopted.clone();
            tasks.spawn(async move {
                let mut failed = None;
                for (name, mut rx) in deps {
                    let state = rx
                        .wait_for(Option::is_some)
                        .await
                        .map_or(RunState::Skipped, |s| s.unwrap_or(RunState::Skipped));
                    if state != RunState::Succeeded {
                        failed = Some(name);
                        break;
                    }
                }
                let outcome = match failed {
                    Some(up) => {
                        let message = format!("skipped: upstream job `{up}` did not succeed");
                        for run in &group {
                            tracking::finish(&inner.shared.store, run.id, RunState::Skipped);
                            let _ = inner.shared.store.finish_run(
                                run.id,
                                RunState::Skipped,
                                None,
                                &message,
                            );
                        }
                        RunState::Skipped
                    }
                    None => inner.execute_group(key, group, &adopted).await,
                };
                let _ = done.send(Some(outcome));
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// One job's runs in a pipeline: a single run, or a sweep's.
    async fn execute_group(
        self: &Arc<Self>,
        key: ResourceKey,
        mut runs: Vec<Run>,
        adopted: &HashSet<i64>,
    ) -> RunState {
        let sweep_id = runs.first().and_then(|r| r.sweep.clone());
        let Some(sweep_id) = sweep_id else {
            let mut last = RunState::Skipped;
            for run in runs {
                let adopt = adopted.contains(&run.id);
                last = self.execute_run(run, adopt).await;
            }
            return last;
        };
        let sweep = self
            .state()
            .jobs
            .get(&key)
            .and_then(|d| d.spec.sweep.clone());
        let Some(sweep) = sweep else {
            for run in &runs {
                let _ = self.shared.store.finish_run(
                    run.id,
                    RunState::Skipped,
                    None,
                    "skipped: the job no longer declares a sweep",
                );
            }
            return RunState::Skipped;
        };
        let objective = sweep.objective.clone();
        let total = self
            .shared
            .store
            .sweep_runs(&sweep_id)
            .map_or(runs.len(), |all| all.len());
        runs.sort_by_key(|r| r.id);
        let permits = Arc::new(Semaphore::new(sweep.max_parallel.max(1) as usize));
        let scores: Arc<Mutex<Vec<Option<f64>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for run in runs {
            let inner = self.clone();
            let permits = permits.clone();
            let scores = scores.clone();
            let stop = stop.clone();
            let adopt = adopted.contains(&run.id);
            let metric = objective.metric.clone();
            let patience = sweep.patience;
            let goal = objective.goal;
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                if stop.load(Ordering::SeqCst) && !adopt {
                    let message = format!(
                        "skipped: the sweep stopped early, {} run(s) in a row did not improve `{metric}`",
                        patience.unwrap_or(0)
                    );
                    append_log(&run.log_path, &format!("=== {message}"));
                    tracking::finish(&inner.shared.store, run.id, RunState::Skipped);
                    let _ = inner
                        .shared
                        .store
                        .finish_run(run.id, RunState::Skipped, None, &message);
                    return;
                }
                let state = inner.execute_run(run.clone(), adopt).await;
                let score = if state == RunState::Succeeded {
                    inner
                        .shared
                        .store
                        .tracking()
                        .job_run_metric(run.id, &metric)
                        .ok()
                        .flatten()
                } else {
                    None
                };
                let mut s = scores.lock().unwrap_or_else(|e| e.into_inner());
                s.push(score);
                if cairn_runtime::sweep::exhausted(goal, patience, &s) {
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
        while set.join_next().await.is_some() {}
        self.choose_best(&key, &sweep_id, &objective, total)
    }

    /// Picks a finished sweep's best run, lets it feed models and
    /// downstream jobs, and ends the sweep's MLflow run.
    fn choose_best(
        self: &Arc<Self>,
        key: &ResourceKey,
        sweep_id: &str,
        objective: &cairn_spec::Objective,
        total: usize,
    ) -> RunState {
        let store = &self.shared.store;
        let runs = store.sweep_runs(sweep_id).unwrap_or_default();
        let succeeded: Vec<&Run> = runs
            .iter()
            .filter(|r| r.state == RunState::Succeeded)
            .collect();
        let scores: Vec<Option<f64>> = succeeded
            .iter()
            .map(|r| {
                store
                    .tracking()
                    .job_run_metric(r.id, &objective.metric)
                    .ok()
                    .flatten()
            })
            .collect();
        let parent = self.state().sweep_parents.remove(sweep_id);
        let best = cairn_runtime::sweep::best(objective.goal, &scores);
        let (state, message) = match best {
            Some(i) => {
                let run = succeeded[i];
                let score = scores[i].expect("the best has a score");
                if let Err(e) = store.set_sweep_best(run.id) {
                    tracing::warn!("{key}: choosing the sweep's best run: {e}");
                }
                if let Some(parent) = &parent {
                    let child = store
                        .tracking()
                        .run_of_job_run(run.id)
                        .ok()
                        .flatten()
                        .map(|r| r.info.id)
                        .unwrap_or_default();
                    if let Err(e) = tracking::finish_sweep(
                        store,
                        parent,
                        &objective.metric,
                        Some((&child, score)),
                    ) {
                        tracing::warn!("{key}: tracking the sweep: {e}");
                    }
                }
                (
                    RunState::Succeeded,
                    format!(
                        "sweep of {total} run(s): {} succeeded, best run #{} ({} = {score})",
                        succeeded.len(),
                        run.number,
                        objective.metric
                    ),
                )
            }
            None => {
                if let Some(parent) = &parent {
                    let _ = tracking::finish_sweep(store, parent, &objective.metric, None);
                }
                let why = if succeeded.is_empty() {
                    "no run succeeded".to_string()
                } else {
                    format!(
                        "no successful run logged the objective metric `{}`",
                        objective.metric
                    )
                };
                (
                    RunState::Failed,
                    format!("sweep of {total} run(s) failed: {why}"),
                )
            }
        };
        let phase = if state == RunState::Succeeded {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        self.shared.set_status(key, phase, &message);
        let commit = runs.first().map(|r| r.commit.clone());
        let _ = store.audit(commit.as_deref(), Some(key), "sweep", &message);
        tracing::info!("{key}: {message}");
        if state == RunState::Succeeded
            && let Some(succeeded) = self.succeeded.get()
        {
            succeeded(key);
        }
        state
    }
}
