//! Every job run is an MLflow run: started in the job's experiment when
//! the job run is created (parameters, commit, job, user and datasets
//! recorded), handed to the process as `MLFLOW_RUN_ID` with the tracking
//! URI and the run's own token, and ended with the job run's outcome. A
//! declared metrics output (`experiment.metrics`) becomes final metrics.
//! Tracking never fails a run: what cannot be recorded is logged.

use cairn_spec::{JobSpec, ResourceKey};
use cairn_store::tracking::{
    self, DatasetInput, KeyValue, Metric, NewRun, RunStatus, TrackingError,
};
use cairn_store::{Run, RunState, Store};
use serde_json::Value;
use std::path::Path;

/// MLflow's tag naming a run's parent (a sweep's runs are its children).
pub const PARENT_TAG: &str = "mlflow.parentRunId";

/// The experiment of `job`: `PROJECT/NAME`, the name being the spec's
/// `experiment.name` or the job's own.
pub fn experiment_name(key: &ResourceKey, spec: &JobSpec) -> String {
    let name = spec
        .experiment
        .as_ref()
        .and_then(|e| e.name.as_ref())
        .map_or(key.name.as_str(), |n| n.as_str());
    match &key.project {
        Some(p) => format!("{p}/{name}"),
        None => name.to_string(),
    }
}

/// A parameter's value as MLflow records it (strings as they are).
pub fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Starts the MLflow run of job run `run`; its id.
pub fn start(
    store: &Store,
    key: &ResourceKey,
    spec: &JobSpec,
    run: &Run,
    actor: &str,
    parent: Option<&str>,
) -> Result<String, TrackingError> {
    let t = store.tracking();
    let experiment = t.job_experiment(
        key.project.as_ref().map(|p| p.as_str()),
        key.name.as_str(),
        Some(&experiment_name(key, spec)),
    )?;
    let mut tags = vec![
        KeyValue::new("mlflow.user", actor),
        KeyValue::new("mlflow.source.type", "JOB"),
        KeyValue::new("mlflow.source.name", key.qualified_name()),
        KeyValue::new("mlflow.source.git.commit", &run.commit),
        KeyValue::new("cairn.job", key.name.as_str()),
        KeyValue::new("cairn.jobRun", run.number.to_string()),
        KeyValue::new("cairn.trigger", &run.trigger),
        KeyValue::new("cairn.pipeline", &run.pipeline),
    ];
    if let Some(p) = &key.project {
        tags.push(KeyValue::new("cairn.project", p.as_str()));
    }
    if let Some(parent) = parent {
        tags.push(KeyValue::new(PARENT_TAG, parent));
    }
    let created = t.create_run(&NewRun {
        experiment_id: experiment.id,
        name: Some(format!("{}-{}", key.name, run.number)),
        user: actor.to_string(),
        start_ms: None,
        tags,
        job_run: Some(run.id),
    })?;
    let id = created.info.id;
    let params: Vec<KeyValue> = match &run.params {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), param_text(v)))
            .collect(),
        _ => Vec::new(),
    };
    t.log_batch(&id, &[], &params, &[])?;
    let datasets: Vec<DatasetInput> = spec
        .lineage
        .reads
        .iter()
        .map(|d| DatasetInput {
            dataset: tracking::Dataset {
                name: d.to_string(),
                digest: run.commit.chars().take(12).collect(),
                source_type: "cairn".into(),
                source: format!("{{\"dataset\": \"{}\", \"commit\": \"{}\"}}", d, run.commit),
                schema: None,
                profile: None,
            },
            tags: vec![KeyValue::new("mlflow.data.context", "declared")],
        })
        .collect();
    if !datasets.is_empty() {
        t.log_inputs(&id, &datasets)?;
    }
    t.update_run(&id, Some(RunStatus::Scheduled), None, None)?;
    Ok(id)
}

/// Starts the parent run of a sweep.
pub fn start_sweep(
    store: &Store,
    key: &ResourceKey,
    spec: &JobSpec,
    sweep: &str,
    commit: &str,
    actor: &str,
    runs: usize,
) -> Result<String, TrackingError> {
    let t = store.tracking();
    let experiment = t.job_experiment(
        key.project.as_ref().map(|p| p.as_str()),
        key.name.as_str(),
        Some(&experiment_name(key, spec)),
    )?;
    let objective = spec.sweep.as_ref().map(|s| &s.objective);
    let mut tags = vec![
        KeyValue::new("mlflow.user", actor),
        KeyValue::new("mlflow.source.type", "JOB"),
        KeyValue::new("mlflow.source.name", key.qualified_name()),
        KeyValue::new("mlflow.source.git.commit", commit),
        KeyValue::new("cairn.job", key.name.as_str()),
        KeyValue::new("cairn.sweep", sweep),
        KeyValue::new("cairn.sweep.runs", runs.to_string()),
    ];
    if let Some(o) = objective {
        tags.push(KeyValue::new("cairn.sweep.objective", &o.metric));
        tags.push(KeyValue::new(
            "cairn.sweep.goal",
            match o.goal {
                cairn_spec::Goal::Maximize => "maximize",
                cairn_spec::Goal::Minimize => "minimize",
            },
        ));
    }
    let parent = t.create_run(&NewRun {
        experiment_id: experiment.id,
        name: Some(format!(
            "{}-sweep-{}",
            key.name,
            &sweep[sweep.len().saturating_sub(8)..]
        )),
        user: actor.to_string(),
        start_ms: None,
        tags,
        job_run: None,
    })?;
    Ok(parent.info.id)
}

/// Ends a sweep's parent run: the best child and its score, or failed.
pub fn finish_sweep(
    store: &Store,
    parent: &str,
    metric: &str,
    best: Option<(&str, f64)>,
) -> Result<(), TrackingError> {
    let t = store.tracking();
    match best {
        Some((child, score)) => {
            t.log_batch(
                parent,
                &[Metric {
                    key: metric.to_string(),
                    value: score,
                    timestamp_ms: tracking::now_ms(),
                    step: 0,
                }],
                &[],
                &[KeyValue::new("cairn.sweep.best", child)],
            )?;
            t.update_run(parent, Some(RunStatus::Finished), None, None)?;
        }
        None => {
            t.update_run(parent, Some(RunStatus::Failed), None, None)?;
        }
    }
    Ok(())
}

/// The variables that make the process's MLflow client log to its run.
pub fn env(
    store: &Store,
    job_run: i64,
    server: Option<&str>,
    token: Option<&str>,
) -> Vec<(String, String)> {
    let Ok(Some(run)) = store.tracking().run_of_job_run(job_run) else {
        return Vec::new();
    };
    let mut env = vec![("MLFLOW_RUN_ID".to_string(), run.info.id.clone())];
    if let Ok(e) = store.tracking().experiment(run.info.experiment_id) {
        env.push(("MLFLOW_EXPERIMENT_NAME".into(), e.name));
        env.push(("MLFLOW_EXPERIMENT_ID".into(), e.id.to_string()));
    }
    if let Some(url) = server {
        env.push(("MLFLOW_TRACKING_URI".into(), url.to_string()));
    }
    if let Some(token) = token {
        env.push(("MLFLOW_TRACKING_TOKEN".into(), token.to_string()));
    }
    env
}

/// The job run's process started: its MLflow run is running.
pub fn running(store: &Store, job_run: i64, environment: Option<&str>) {
    let t = store.tracking();
    let Ok(Some(run)) = t.run_of_job_run(job_run) else {
        return;
    };
    let tags: Vec<KeyValue> = environment
        .map(|e| KeyValue::new("cairn.environment", e))
        .into_iter()
        .collect();
    let result = t
        .update_run(&run.info.id, Some(RunStatus::Running), None, None)
        .and_then(|_| t.log_batch(&run.info.id, &[], &[], &tags));
    if let Err(e) = result {
        tracing::warn!("tracking job run {job_run}: {e}");
    }
}

/// The job run ended in `state`: so does its MLflow run.
pub fn finish(store: &Store, job_run: i64, state: RunState) {
    let t = store.tracking();
    let Ok(Some(run)) = t.run_of_job_run(job_run) else {
        return;
    };
    let status = match state {
        RunState::Succeeded => RunStatus::Finished,
        RunState::Failed => RunStatus::Failed,
        _ => RunStatus::Killed,
    };
    if let Err(e) = t.update_run(&run.info.id, Some(status), Some(tracking::now_ms()), None) {
        tracing::warn!("tracking job run {job_run}: {e}");
    }
}

/// Logs the numbers of a JSON object file as final metrics of the job
/// run's MLflow run (nested objects as `outer.inner`); how many.
pub fn final_metrics(store: &Store, job_run: i64, path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let Value::Object(map) = value else {
        return Err(format!("{} is not a JSON object", path.display()));
    };
    let now = tracking::now_ms();
    let mut metrics = Vec::new();
    flatten("", &map, &mut |key, v| {
        metrics.push(Metric {
            key,
            value: v,
            timestamp_ms: now,
            step: 0,
        })
    });
    let t = store.tracking();
    let run = t
        .run_of_job_run(job_run)
        .map_err(|e| e.to_string())?
        .ok_or("the job run has no tracking run")?;
    for chunk in metrics.chunks(tracking::limits::METRICS_PER_BATCH) {
        t.log_batch(&run.info.id, chunk, &[], &[])
            .map_err(|e| e.to_string())?;
    }
    Ok(metrics.len())
}

fn flatten(prefix: &str, map: &serde_json::Map<String, Value>, out: &mut impl FnMut(String, f64)) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out(key, f);
                }
            }
            Value::Bool(b) => out(key, f64::from(u8::from(*b))),
            Value::Object(inner) => flatten(&key, inner, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_numbers_become_metrics() {
        let map: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"accuracy": 0.9, "n": 10, "name": "x", "cv": {"f1": 0.8}, "ok": true, "list": [1]}"#,
        )
        .unwrap();
        let mut got = Vec::new();
        flatten("", &map, &mut |k, v| got.push((k, v)));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("accuracy".to_string(), 0.9),
                ("cv.f1".to_string(), 0.8),
                ("n".to_string(), 10.0),
                ("ok".to_string(), 1.0)
            ]
        );
    }
}
