//! Drift-triggered retraining: a model's drift verdicts, with hysteresis
//! (`onDrift.consecutive` drifted evaluations in a row) and a cool-down
//! (`onDrift.cooldown` between two retrains), decide when its `retrain`
//! job runs. The decision is a pure state machine ([`Hysteresis`]); the
//! driver ([`watch`]) follows the gateway's drift verdicts and starts the
//! runs.

use crate::models::Models;
use cairn_monitor::drift::DriftVerdict;
use cairn_runtime::RunRequest;
use cairn_spec::Kind;
use cairn_spec::ResourceKey;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Default drifted evaluations in a row before a retrain.
pub const DEFAULT_CONSECUTIVE: u32 = 2;

/// Default time between two retrains of a model.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(3600);

/// Where a model stands between drift verdicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hysteresis {
    /// Drifted evaluations in a row.
    pub streak: u32,
    /// When the last retrain was started (ms since the epoch).
    pub last_retrain_ms: Option<i64>,
}

/// What to do after a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing (yet); why.
    Hold(String),
    /// Start the retraining job now.
    Retrain,
}

impl Hysteresis {
    /// Takes one verdict (`None`: the window could not be scored, which
    /// changes nothing) at `now_ms`.
    pub fn observe(
        &mut self,
        drifted: Option<bool>,
        now_ms: i64,
        consecutive: u32,
        cooldown: Duration,
    ) -> Step {
        match drifted {
            None => return Step::Hold("window not scored".into()),
            Some(false) => {
                self.streak = 0;
                return Step::Hold("no drift".into());
            }
            Some(true) => self.streak += 1,
        }
        let needed = consecutive.max(1);
        if self.streak < needed {
            return Step::Hold(format!(
                "drift {} of {needed} evaluations in a row",
                self.streak
            ));
        }
        if let Some(last) = self.last_retrain_ms {
            let since = Duration::from_millis((now_ms - last).max(0) as u64);
            if since < cooldown {
                return Step::Hold(format!(
                    "cooling down: last retrain {} ago (cooldown {})",
                    humantime::format_duration(Duration::from_secs(since.as_secs())),
                    humantime::format_duration(cooldown)
                ));
            }
        }
        self.streak = 0;
        self.last_retrain_ms = Some(now_ms);
        Step::Retrain
    }
}

/// Follows drift verdicts until the runtime goes away, starting the
/// retraining jobs they call for.
pub async fn watch(inner: Weak<Models>, mut verdicts: Receiver<DriftVerdict>) {
    let mut models: HashMap<ResourceKey, Hysteresis> = HashMap::new();
    loop {
        let verdict = match verdicts.recv().await {
            Ok(v) => v,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("drift-triggered retraining missed {n} verdicts");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.on_drift_verdict(&mut models, &verdict);
    }
}

impl Models {
    /// Applies one verdict to its model's hysteresis, and starts the
    /// model's `onDrift.retrain` job (its pipeline upstream first) with the
    /// drifted window as parameters when it says so.
    fn on_drift_verdict(
        self: &Arc<Self>,
        models: &mut HashMap<ResourceKey, Hysteresis>,
        verdict: &DriftVerdict,
    ) {
        let Some((key, on_drift)) = self.state().models.iter().find_map(|(k, m)| {
            let on_drift = m
                .spec
                .monitoring
                .as_ref()?
                .drift
                .as_ref()?
                .on_drift
                .clone()?;
            (k.name.as_str() == verdict.model
                && k.project.as_ref().map(|p| p.as_str()) == verdict.project.as_deref())
            .then(|| (k.clone(), on_drift))
        }) else {
            return;
        };
        let Some(job) = on_drift.retrain.clone() else {
            return;
        };
        let consecutive = on_drift.consecutive.unwrap_or(DEFAULT_CONSECUTIVE);
        let cooldown = on_drift.cooldown.map_or(DEFAULT_COOLDOWN, |c| c.get());
        let step = models.entry(key.clone()).or_default().observe(
            verdict.drifted,
            verdict.time_ms,
            consecutive,
            cooldown,
        );
        let score = verdict.score.map_or("-".into(), |s| format!("{s:.4}"));
        let window = format!("{} to {}", rfc3339(verdict.from_ms), rfc3339(verdict.to_ms));
        match step {
            Step::Hold(reason) => {
                if verdict.drifted == Some(true) {
                    let _ = self.shared.store.audit(
                        None,
                        Some(&key),
                        "drift",
                        &format!(
                            "score {score} > {} over {window}; {reason}",
                            verdict.threshold
                        ),
                    );
                }
            }
            Step::Retrain => {
                let job = ResourceKey {
                    kind: Kind::Job,
                    project: key.project.clone(),
                    name: job,
                };
                let mut params = serde_json::Map::new();
                params.insert("drift_from".into(), json!(rfc3339(verdict.from_ms)));
                params.insert("drift_to".into(), json!(rfc3339(verdict.to_ms)));
                params.insert("drift_score".into(), json!(verdict.score));
                let started = self.jobs.trigger(RunRequest {
                    targets: vec![job.clone()],
                    trigger: "drift".into(),
                    params: Some(params),
                    with_upstream: true,
                    actor: cairn_store::SYSTEM_ACTOR.into(),
                });
                let detail = match &started {
                    Ok(runs) => format!(
                        "score {score} > {} over {window} ({consecutive} in a row): run #{} of {}",
                        verdict.threshold,
                        runs.last().map_or(0, |r| r.number),
                        job.name
                    ),
                    Err(e) => format!("could not start {}: {e}", job.name),
                };
                tracing::info!("{key}: drift: {detail}");
                let action = if started.is_ok() {
                    "drift-retrain"
                } else {
                    "drift-retrain-failed"
                };
                let _ = self.shared.store.audit(None, Some(&key), action, &detail);
            }
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn one_noisy_window_does_not_retrain() {
        let mut h = Hysteresis::default();
        assert!(matches!(h.observe(Some(true), 0, 2, HOUR), Step::Hold(_)));
        assert!(matches!(h.observe(Some(false), 1, 2, HOUR), Step::Hold(_)));
        assert!(matches!(h.observe(Some(true), 2, 2, HOUR), Step::Hold(_)));
        // Unscored windows neither break nor extend a streak.
        assert!(matches!(h.observe(None, 3, 2, HOUR), Step::Hold(_)));
        assert_eq!(h.observe(Some(true), 4, 2, HOUR), Step::Retrain);
    }

    #[test]
    fn a_retrain_is_followed_by_a_cooldown() {
        let mut h = Hysteresis::default();
        assert_eq!(h.observe(Some(true), 0, 1, HOUR), Step::Retrain);
        let held = h.observe(Some(true), 60_000, 1, HOUR);
        assert!(
            matches!(&held, Step::Hold(m) if m.starts_with("cooling down: last retrain 1m ago")),
            "{held:?}"
        );
        assert_eq!(h.observe(Some(true), 3_600_000, 1, HOUR), Step::Retrain);
    }
}
