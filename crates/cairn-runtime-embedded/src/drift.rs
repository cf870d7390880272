//! Drift monitoring of served models: every `window`, the model's logged
//! inputs of the last window are scored by its drift-detector plugin against
//! the reference sample (fitted once per plugin, reference and features),
//! stored as a time series per feature, and published on the gateway's
//! drift channel.

use crate::models::Models;
use cairn_monitor::drift::{DriftVerdict, FeatureVerdict};
use cairn_plugin_host::columns::{self, Column};
use cairn_plugin_host::drift::DriftDetector;
use cairn_spec::ResourceKey;
use cairn_spec::{Drift, ModelSpec};
use cairn_store::drift::record;
use sha2::Digest;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Most predictions read for one window (the newest).
const MAX_WINDOW_EVENTS: usize = 200_000;

/// The running monitors and the fitted states.
#[derive(Default)]
pub(crate) struct DriftMonitors {
    tasks: Mutex<HashMap<ResourceKey, tokio::task::AbortHandle>>,
    /// Fitted detector states by (plugin digest, reference digest, features, config).
    fitted: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

/// Why a window could not be evaluated on demand.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// No such model is served.
    #[error("model `{0}` is not served")]
    NoModel(String),
    /// The model has no `monitoring.drift`.
    #[error("model `{0}` has no `monitoring.drift`")]
    NotMonitored(String),
    /// The evaluation's task failed.
    #[error("drift evaluation failed: {0}")]
    Internal(String),
    /// The runtime does not evaluate drift.
    #[error("{0}")]
    Unsupported(String),
}

impl DriftMonitors {
    fn lock_tasks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ResourceKey, tokio::task::AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Models {
    /// (Re)starts the drift monitor of a model, or stops it when the spec
    /// has none.
    pub fn schedule_drift(self: &Arc<Self>, key: &ResourceKey, spec: &ModelSpec) {
        if let Some(old) = self.drift.lock_tasks().remove(key) {
            old.abort();
        }
        let Some(drift) = spec.monitoring.as_ref().and_then(|m| m.drift.clone()) else {
            return;
        };
        let period = drift.window.get().max(std::time::Duration::from_secs(1));
        let weak = Arc::downgrade(self);
        let key2 = key.clone();
        let task = self.shared.handle.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.evaluate_drift(&key2).await {
                    tracing::warn!("{key2}: drift: {e}");
                }
            }
        });
        self.drift
            .lock_tasks()
            .insert(key.clone(), task.abort_handle());
    }

    /// Stops a model's drift monitor.
    pub fn stop_drift(&self, key: &ResourceKey) {
        if let Some(old) = self.drift.lock_tasks().remove(key) {
            old.abort();
        }
    }

    /// Evaluates the last window of a model now: stores, publishes and
    /// returns the verdict. A plugin failure is a verdict with an `error`,
    /// also shown in the model's status.
    pub(crate) async fn evaluate_drift(
        self: &Arc<Self>,
        key: &ResourceKey,
    ) -> Result<DriftVerdict, DriftError> {
        let def = self
            .state()
            .models
            .get(key)
            .cloned()
            .ok_or_else(|| DriftError::NoModel(key.qualified_name()))?;
        let drift = def
            .spec
            .monitoring
            .as_ref()
            .and_then(|m| m.drift.clone())
            .ok_or_else(|| DriftError::NotMonitored(key.qualified_name()))?;
        let inner = self.clone();
        let key = key.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now().timestamp_millis();
            let window_ms = i64::try_from(drift.window.get().as_millis()).unwrap_or(i64::MAX);
            let mut verdict = DriftVerdict {
                project: key.project.as_ref().map(|p| p.to_string()),
                model: key.name.to_string(),
                plugin: drift.plugin.to_string(),
                time_ms: now,
                from_ms: now.saturating_sub(window_ms),
                to_ms: now + 1,
                rows: 0,
                score: None,
                drifted: None,
                threshold: drift.threshold,
                features: Vec::new(),
                error: None,
            };
            if let Err(problem) =
                inner.score_window(&key, &def.spec, &drift, &def.checkout, &mut verdict)
            {
                inner
                    .shared
                    .report_plugin_problem(&key, &format!("drift: {problem}"));
                verdict.error = Some(problem);
            }
            if let Err(e) = record(&mut inner.gateway.events.monitor(), &verdict) {
                tracing::warn!("{key}: drift verdict not stored: {e}");
            }
            verdict
        })
        .await
        .map_err(|e| DriftError::Internal(e.to_string()))?;
        self.verdicts.publish(verdict.clone());
        Ok(verdict)
    }

    /// Fills `verdict` with the score of its window; errs with a message
    /// naming the plugin's spec file for plugin failures.
    fn score_window(
        &self,
        key: &ResourceKey,
        spec: &ModelSpec,
        drift: &Drift,
        checkout: &Path,
        verdict: &mut DriftVerdict,
    ) -> Result<(), String> {
        let resolved = self
            .plugins
            .resolve_plugin(key.project.as_ref(), &drift.plugin)?;
        let detector =
            DriftDetector::new(resolved.plugin.clone()).map_err(|e| resolved.problem(e))?;
        let config = cairn_plugin_host::config_of(&resolved.def.spec.config);
        let reference_path = checkout.join(drift.reference.as_str());
        let reference_bytes = std::fs::read(&reference_path)
            .map_err(|e| format!("cannot read the reference {}: {e}", drift.reference))?;
        let all =
            columns::from_csv(&reference_bytes).map_err(|e| format!("{}: {e}", drift.reference))?;
        let header: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
        let signature: Vec<String> = spec
            .signature
            .as_ref()
            .map(|s| s.inputs.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default();
        let features: Vec<String> = if !drift.features.is_empty() {
            drift.features.clone()
        } else if !signature.is_empty() {
            signature
                .iter()
                .filter(|f| header.contains(f))
                .cloned()
                .collect()
        } else {
            header.clone()
        };
        let reference =
            columns::select(all, &features).map_err(|e| format!("{}: {e}", drift.reference))?;
        let fit_key = format!(
            "{}/{}/{}/{}",
            resolved.plugin.sha256,
            hex::encode(sha2::Sha256::digest(&reference_bytes)),
            features.join(","),
            serde_json::to_string(&resolved.def.spec.config).unwrap_or_default()
        );
        let cached = self
            .drift
            .fitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fit_key)
            .cloned();
        let state = match cached {
            Some(s) => s,
            None => {
                let s = Arc::new(
                    detector
                        .fit(&config, &reference)
                        .map_err(|e| resolved.problem(format!("fit: {e}")))?,
                );
                self.drift
                    .fitted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(fit_key, s.clone());
                s
            }
        };
        let events = self
            .gateway
            .events
            .query(key, verdict.from_ms, verdict.to_ms, MAX_WINDOW_EVENTS)
            .map_err(|e| e.to_string())?;
        let positional = if signature.is_empty() {
            header
        } else {
            signature
        };
        let requests = events
            .iter()
            .filter(|e| e.status == 200 && e.inputs.get("truncated").is_none())
            .map(|e| &e.inputs);
        let window: Vec<Column> = columns::from_requests(requests, &positional, &reference);
        verdict.rows = columns::rows(&window) as u64;
        if verdict.rows == 0 {
            verdict.error = Some("no predictions in the window".into());
            return Ok(());
        }
        let report = detector
            .score(&config, &state, &window, drift.threshold)
            .map_err(|e| resolved.problem(format!("score: {e}")))?;
        verdict.score = Some(report.score);
        verdict.drifted = Some(report.drifted);
        verdict.features = report
            .features
            .into_iter()
            .map(|f| FeatureVerdict {
                feature: f.feature,
                score: f.score,
                p_value: f.p_value,
                drifted: f.drifted,
            })
            .collect();
        Ok(())
    }
}
