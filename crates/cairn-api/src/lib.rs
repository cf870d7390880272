//! The HTTP contract of Cairn: the request and response bodies of the
//! `/api/v1` API, the gateway (Cairn's prediction API and the Open Inference
//! Protocol v2), monitoring, webhooks and the dashboard, as serde types.
//!
//! The server builds every JSON answer from these types and the CLI and the
//! dashboard read them back through them; their `utoipa` schemas make the
//! components of the OpenAPI document (`specs/openapi.json`). Field names
//! are those on the wire: camelCase, except where a protocol says otherwise
//! (the Open Inference Protocol's snake_case, a GPU's `memory_total_bytes`).
//! [`mlflow`] holds MLflow's REST protocol, which Cairn also serves.

pub mod audit;
pub mod auth;
pub mod drift;
pub mod error;
pub mod experiments;
pub mod gateway;
pub mod hooks;
pub mod inference;
pub mod keys;
pub mod metrics;
pub mod mlflow;
pub mod monitoring;
pub mod oip;
pub mod registry;
pub mod runs;
pub mod status;

pub use error::ErrorBody;

/// Deserializes a field that is there, `null` or not, as `Some`: with
/// `#[serde(default)]`, an absent field stays `None`, so that
/// `Option<Option<T>>` tells "absent" from "`null`".
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_is_its_message() {
        assert_eq!(
            serde_json::to_value(ErrorBody::new("no model `x` is served")).unwrap(),
            json!({"error": "no model `x` is served"})
        );
    }

    #[test]
    fn answers_read_back_as_written() {
        use hooks::{HookAccepted, HookAnswer, HookIgnored};
        for answer in [
            HookAnswer::Accepted(HookAccepted {
                accepted: true,
                provider: "github".into(),
                after: None,
            }),
            HookAnswer::Ignored(HookIgnored {
                accepted: false,
                reason: "not a branch push".into(),
            }),
        ] {
            let text = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<HookAnswer>(&text).unwrap(), answer);
        }
        let origin = json!({"type": "commit", "id": "abc", "author": "Ada",
            "email": "ada@example.com", "time": "2026-01-01T00:00:00Z", "summary": "specs"});
        let read: status::Origin = serde_json::from_value(origin.clone()).unwrap();
        assert_eq!(serde_json::to_value(read).unwrap(), origin);
        let worktree: status::Origin = serde_json::from_value(json!({"type": "worktree"})).unwrap();
        assert_eq!(worktree, status::Origin::Worktree);
    }

    #[test]
    fn a_window_tells_absent_scores_from_null_ones() {
        let w: monitoring::Window = serde_json::from_value(json!({
            "start": null, "end": null, "version": "1", "requests": 1, "errors": 0,
            "labeled": 0, "coverage": 0.0, "scored": 0, "unscorable": 0,
            "accuracy": null, "businessMetrics": {}
        }))
        .unwrap();
        assert_eq!((w.accuracy, w.mae), (Some(None), None));
        let back = serde_json::to_value(&w).unwrap();
        assert!(back.get("accuracy").is_some_and(|a| a.is_null()));
        assert!(back.get("mae").is_none());
    }
}
