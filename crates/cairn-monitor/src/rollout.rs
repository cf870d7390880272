//! Canary rollouts: a new version takes a growing share of a model's
//! traffic (`rollout.steps`, each held for `rollout.interval`), and is
//! rolled back as soon as its error rate, p99 latency or — once labels
//! arrive — accuracy regresses beyond `rollout.analysis`. The decision at
//! each step is a pure function of the two versions' statistics
//! ([`analyze`]); the driver ([`run`]) reads those statistics from the
//! event store, moves the traffic and records every step.

use crate::summary::report;
use cairn_gateway::service::Gateway;
use cairn_spec::ResourceKey;
use cairn_spec::{ModelTask, Rollout, RolloutAnalysis};
use cairn_store::Store;
use cairn_store::events::EventLog;
use cairn_store::monitoring::request_outcomes;
use std::sync::Arc;
use std::time::Duration;

/// Labels needed on each side before accuracy is compared.
pub const MIN_LABELS: u64 = 20;

/// Default time at each step.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// What one version did over a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionStats {
    /// Requests answered.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// 99th percentile latency of its answers, in µs.
    pub p99_us: Option<u64>,
    /// Answers with a delayed label.
    pub labeled: u64,
    /// Accuracy over the labeled answers (classifiers).
    pub accuracy: Option<f64>,
}

impl VersionStats {
    /// Errors over requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

/// The outcome of a step's analysis.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Healthy: move to this share of traffic.
    Advance(u8),
    /// Healthy at the last step: the canary becomes the stable version.
    Promote,
    /// Regressed: the stable version takes all traffic back.
    Rollback(String),
}

/// The steps of a rollout, ending at 100 (default: 10, 50, 100).
pub fn steps(rollout: &Rollout) -> Vec<u8> {
    let mut steps: Vec<u8> = rollout.steps.iter().map(|s| (*s).min(100)).collect();
    if steps.is_empty() {
        steps = vec![10, 50, 100];
    }
    if steps.last() != Some(&100) {
        steps.push(100);
    }
    steps
}

/// Decides what follows step `step` (an index into [`steps`]) given what
/// the canary and the stable version did during it.
pub fn analyze(
    rollout: &Rollout,
    step: usize,
    canary: &VersionStats,
    stable: &VersionStats,
) -> Decision {
    let analysis = rollout.analysis.clone().unwrap_or_default();
    if let Some(reason) = regression(&analysis, canary, stable) {
        return Decision::Rollback(reason);
    }
    let steps = steps(rollout);
    match steps.get(step + 1) {
        Some(&next) if next < 100 => Decision::Advance(next),
        _ => Decision::Promote,
    }
}

fn regression(
    analysis: &RolloutAnalysis,
    canary: &VersionStats,
    stable: &VersionStats,
) -> Option<String> {
    if let (Some(max), Some(rate)) = (analysis.max_error_rate, canary.error_rate())
        && rate > max
    {
        return Some(format!(
            "error rate {rate:.3} > {max} ({} of {} requests)",
            canary.errors, canary.requests
        ));
    }
    if let (Some(max), Some(p99)) = (analysis.max_latency_p99, canary.p99_us)
        && p99 as u128 > max.get().as_micros()
    {
        return Some(format!(
            "p99 latency {:.1} ms > {}",
            p99 as f64 / 1000.0,
            humantime::format_duration(max.get())
        ));
    }
    if let (Some(max), Some(c), Some(s)) =
        (analysis.max_accuracy_drop, canary.accuracy, stable.accuracy)
        && canary.labeled >= MIN_LABELS
        && stable.labeled >= MIN_LABELS
        && s - c > max
    {
        return Some(format!(
            "accuracy {c:.3} vs {s:.3} for the stable version (drop {:.3} > {max}; {} and {} labels)",
            s - c,
            canary.labeled,
            stable.labeled
        ));
    }
    None
}

/// Reads what `version` of `model` did between `from_ms` and `to_ms`.
pub fn version_stats(
    events: &EventLog,
    model: &ResourceKey,
    task: Option<ModelTask>,
    version: i64,
    from_ms: i64,
    to_ms: i64,
) -> cairn_store::SqlResult<VersionStats> {
    let conn = events.monitor();
    let version_s = version.to_string();
    let mut latencies: Vec<u64> = Vec::new();
    let mut stats = VersionStats::default();
    for (status, latency_us) in request_outcomes(&conn, model, &version_s, from_ms, to_ms)? {
        stats.requests += 1;
        if status >= 500 {
            stats.errors += 1;
        } else {
            latencies.push(latency_us);
        }
    }
    latencies.sort_unstable();
    if !latencies.is_empty() {
        let i = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1;
        stats.p99_us = Some(latencies[i]);
    }
    if task != Some(ModelTask::Regression) {
        let r = report(&conn, model, task, from_ms, to_ms, (to_ms - from_ms).max(1))?;
        for w in &r.windows {
            if w.version.as_deref() == Some(version_s.as_str()) {
                stats.labeled += w.labeled;
                stats.accuracy = w.accuracy.flatten().or(stats.accuracy);
            }
        }
    }
    Ok(stats)
}

/// What a finished rollout came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The canary serves all traffic.
    Promoted,
    /// The stable version serves all traffic again.
    RolledBack(String),
    /// A newer deployment replaced the canary before the end.
    Superseded,
}

/// Drives a canary already started at the first step's share (see
/// [`Gateway::start_canary`]) to its end: waits `interval` at each step,
/// analyzes, moves the traffic, and records every decision in the
/// rollout history and the audit log.
pub async fn run(
    gateway: Arc<Gateway>,
    store: Arc<Store>,
    key: ResourceKey,
    rollout: Rollout,
    stable: i64,
    canary: i64,
    commit: String,
) -> Outcome {
    let steps = steps(&rollout);
    let interval = rollout.interval.map_or(DEFAULT_INTERVAL, |i| i.get());
    let task = gateway.endpoint(&key).and_then(|e| e.spec.task);
    let record = |weight: u8, decision: &str, detail: &str| {
        let _ = store.record_rollout_step(&key, canary, weight, decision, detail);
        let _ = store.audit(
            Some(&commit),
            Some(&key),
            &format!("rollout-{decision}"),
            &format!("v{canary} at {weight}%: {detail}"),
        );
    };
    let _ = store.set_version_state(&key, canary, "canary");
    record(
        steps[0],
        "start",
        &format!("canary v{canary} beside v{stable}"),
    );
    let mut step = 0;
    loop {
        let from = chrono::Utc::now().timestamp_millis();
        tokio::time::sleep(interval).await;
        // Still our canary?
        let current = gateway.endpoint(&key).and_then(|e| e.canary());
        if current.is_none_or(|(v, _)| v.number != canary) {
            record(0, "superseded", "a newer deployment replaced the canary");
            return Outcome::Superseded;
        }
        let to = chrono::Utc::now().timestamp_millis() + 1;
        let events = gateway.events.clone();
        let n = key.clone();
        let stats = tokio::task::spawn_blocking(move || {
            let c = version_stats(&events, &n, task, canary, from, to)?;
            let s = version_stats(&events, &n, task, stable, from, to)?;
            Ok::<_, cairn_store::SqlError>((c, s))
        })
        .await;
        let (c, s) = match stats {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!("{key}: rollout analysis could not read events: {e}");
                continue;
            }
            Err(_) => continue,
        };
        let seen = format!(
            "canary {} requests, {} errors, p99 {}, accuracy {}; stable {} requests, accuracy {}",
            c.requests,
            c.errors,
            c.p99_us
                .map_or("-".into(), |p| format!("{:.1} ms", p as f64 / 1000.0)),
            c.accuracy.map_or("-".into(), |a| format!("{a:.3}")),
            s.requests,
            s.accuracy.map_or("-".into(), |a| format!("{a:.3}")),
        );
        match analyze(&rollout, step, &c, &s) {
            Decision::Advance(weight) => {
                gateway.set_canary_weight(&key, weight);
                record(weight, "advance", &seen);
                step += 1;
            }
            Decision::Promote => {
                gateway.finish_canary(&key, true);
                let _ = store.set_version_state(&key, canary, "serving");
                record(100, "promote", &seen);
                return Outcome::Promoted;
            }
            Decision::Rollback(reason) => {
                gateway.finish_canary(&key, false);
                let _ = store.set_version_state(&key, canary, "rolled-back");
                record(0, "rollback", &format!("{reason}; {seen}"));
                return Outcome::RolledBack(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_spec::{Duration as SpecDuration, RolloutStrategy};

    fn canary(analysis: RolloutAnalysis) -> Rollout {
        Rollout {
            strategy: RolloutStrategy::Canary,
            steps: vec![10, 50],
            interval: None,
            analysis: Some(analysis),
        }
    }

    fn healthy() -> VersionStats {
        VersionStats {
            requests: 100,
            errors: 0,
            p99_us: Some(2_000),
            labeled: 50,
            accuracy: Some(0.9),
        }
    }

    #[test]
    fn steps_end_at_100() {
        assert_eq!(steps(&canary(Default::default())), vec![10, 50, 100]);
    }

    #[test]
    fn healthy_canaries_advance_then_promote() {
        let r = canary(RolloutAnalysis {
            max_error_rate: Some(0.05),
            ..Default::default()
        });
        assert_eq!(
            analyze(&r, 0, &healthy(), &healthy()),
            Decision::Advance(50)
        );
        assert_eq!(analyze(&r, 1, &healthy(), &healthy()), Decision::Promote);
    }

    #[test]
    fn regressions_roll_back() {
        let r = canary(RolloutAnalysis {
            max_error_rate: Some(0.05),
            max_latency_p99: Some("10ms".parse::<SpecDuration>().unwrap()),
            max_accuracy_drop: Some(0.05),
        });
        let errors = VersionStats {
            errors: 10,
            ..healthy()
        };
        assert!(matches!(
            analyze(&r, 0, &errors, &healthy()),
            Decision::Rollback(m) if m.starts_with("error rate 0.100 > 0.05")
        ));
        let slow = VersionStats {
            p99_us: Some(25_000),
            ..healthy()
        };
        assert!(matches!(
            analyze(&r, 0, &slow, &healthy()),
            Decision::Rollback(m) if m.starts_with("p99 latency 25.0 ms")
        ));
        let wrong = VersionStats {
            accuracy: Some(0.5),
            ..healthy()
        };
        assert!(matches!(
            analyze(&r, 0, &wrong, &healthy()),
            Decision::Rollback(m) if m.starts_with("accuracy 0.500 vs 0.900")
        ));
        // Too few labels: accuracy is not judged yet.
        let few = VersionStats {
            accuracy: Some(0.5),
            labeled: MIN_LABELS - 1,
            ..healthy()
        };
        assert_eq!(analyze(&r, 0, &few, &healthy()), Decision::Advance(50));
    }
}
