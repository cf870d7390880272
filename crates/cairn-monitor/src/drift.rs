//! Drift verdicts: stored per evaluation and per feature in the events
//! database (a time series per feature), served by the API, and published
//! on a broadcast channel that other parts subscribe to
//! ([`DriftVerdicts::subscribe`]).

pub use cairn_store::drift::{DriftVerdict, FeatureVerdict};

/// The broadcast of every drift verdict (each model's scheduled and
/// on-demand evaluations): the hook for actions on drift (retraining,
/// alerts).
#[derive(Clone)]
pub struct DriftVerdicts(tokio::sync::broadcast::Sender<DriftVerdict>);

impl Default for DriftVerdicts {
    fn default() -> Self {
        DriftVerdicts(tokio::sync::broadcast::channel(256).0)
    }
}

impl DriftVerdicts {
    /// Every verdict from now on. A receiver that falls more than 256
    /// verdicts behind loses the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<DriftVerdict> {
        self.0.subscribe()
    }

    /// Publishes a verdict to the subscribers.
    pub fn publish(&self, verdict: DriftVerdict) {
        // No subscriber is not an error.
        let _ = self.0.send(verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verdicts_are_published_to_every_subscriber() {
        let verdicts = DriftVerdicts::default();
        let (mut a, mut b) = (verdicts.subscribe(), verdicts.subscribe());
        let verdict = DriftVerdict {
            project: Some("lab".into()),
            model: "m".into(),
            plugin: "drift-psi".into(),
            time_ms: 1,
            from_ms: 0,
            to_ms: 1,
            rows: 3,
            score: Some(0.4),
            drifted: Some(true),
            threshold: 0.2,
            features: Vec::new(),
            error: None,
        };
        verdicts.publish(verdict.clone());
        assert_eq!(a.recv().await.unwrap(), verdict);
        assert_eq!(b.recv().await.unwrap(), verdict);
    }
}
