//! What every owner of the embedded runtime shares: the store, the data
//! directory, the tokio handle, the server's URL, and the statuses of
//! resources (with the last plugin failure of each, shown until the
//! resource is deployed again).

use cairn_spec::{Name, ResourceKey};
use cairn_store::{Phase, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::runtime::Handle;

/// The handles every owner shares.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub data_dir: PathBuf,
    pub handle: Handle,
    /// The URL of `cairn up`'s HTTP server, given to jobs and applications
    /// as `CAIRN_SERVER` once known.
    pub server_url: OnceLock<String>,
    /// The last plugin failure of each resource that uses plugins (its own
    /// lock, the innermost: statuses are set with owners' state locked).
    plugin_problems: Mutex<HashMap<ResourceKey, String>>,
    /// Whether workloads get a token of their own (authentication is on).
    pub workload_tokens: AtomicBool,
    /// The live workload tokens of each workload (a run, a replica), to
    /// revoke when it ends.
    tokens: Mutex<HashMap<String, Vec<String>>>,
}

impl Shared {
    /// Handles for a runtime keeping its files under `data_dir`.
    pub fn new(store: Arc<Store>, data_dir: PathBuf, handle: Handle) -> Self {
        Shared {
            store,
            data_dir,
            handle,
            server_url: OnceLock::new(),
            plugin_problems: Mutex::new(HashMap::new()),
            workload_tokens: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn plugin_problems(&self) -> MutexGuard<'_, HashMap<ResourceKey, String>> {
        self.plugin_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records a resource's status (with its last plugin failure, if any).
    pub fn set_status(&self, key: &ResourceKey, phase: Phase, message: &str) {
        // A plugin failure stays visible until the resource is deployed again.
        let problem = self.plugin_problems().get(key).cloned();
        let message = match problem {
            Some(p) if !message.contains(&p) => with_problem(message, &p),
            _ => message.to_string(),
        };
        if let Err(e) = self.store.set_status(key, phase, &message, None, None) {
            tracing::warn!("could not record status of {key}: {e}");
        }
    }

    /// Shows a plugin failure in the status of the resource that uses the
    /// plugin, keeping its phase and its own message, until the resource is
    /// deployed again.
    pub fn report_plugin_problem(&self, key: &ResourceKey, problem: &str) {
        tracing::warn!("{key}: {problem}");
        self.plugin_problems()
            .insert(key.clone(), problem.to_string());
        let current = self.store.status(key).ok().flatten();
        let (phase, base) = current.map_or((Phase::Ready, String::new()), |s| (s.phase, s.message));
        self.set_status(key, phase, &base);
    }

    /// Forgets a resource's plugin failures (it is being deployed again).
    pub fn clear_plugin_problem(&self, key: &ResourceKey) {
        self.plugin_problems().remove(key);
    }

    /// Directory for a resource's files under the data directory.
    pub fn resource_dir(&self, area: &str, key: &ResourceKey) -> PathBuf {
        self.data_dir
            .join(area)
            .join(key.project.as_ref().map_or("_", Name::as_str))
            .join(key.name.as_str())
    }

    /// `CAIRN_TOKEN` for the workload `owner` (`run:42`, a replica) of
    /// `key`: a token of its own, with the `editor` role in its project only,
    /// that stops working after `ttl` and is revoked when the workload ends
    /// ([`Shared::end_workload`]). None when authentication is off or the
    /// resource has no project.
    pub fn workload_token(
        &self,
        key: &ResourceKey,
        owner: &str,
        ttl: Duration,
    ) -> Option<(String, String)> {
        if !self.workload_tokens.load(Ordering::Relaxed) {
            return None;
        }
        let project = key.project.as_ref()?.to_string();
        let new = cairn_store::tokens::NewToken {
            name: format!("{owner} of {}", key.qualified_name()),
            kind: cairn_store::tokens::TokenKind::Workload,
            project: Some(project),
            role: "editor".into(),
            created_by: cairn_store::SYSTEM_ACTOR.into(),
            expires_at: Some(chrono::Utc::now().timestamp() + ttl.as_secs() as i64),
        };
        match self.store.create_token(&new) {
            Ok((secret, info)) => {
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(owner.to_string())
                    .or_default()
                    .push(info.id);
                Some(("CAIRN_TOKEN".into(), secret))
            }
            Err(e) => {
                tracing::warn!("{key}: no token for {owner}: {e}");
                None
            }
        }
    }

    /// Revokes the tokens of the workload `owner`: it has ended.
    pub fn end_workload(&self, owner: &str) {
        let ids = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(owner)
            .unwrap_or_default();
        for id in ids {
            if let Err(e) = self.store.revoke_token(&id) {
                tracing::warn!("revoking {owner}'s token {id}: {e}");
            }
        }
    }

    /// `CAIRN_SERVER` for a workload's environment, when the URL is known.
    pub fn server_env(&self) -> Option<(String, String)> {
        self.server_url
            .get()
            .map(|url| ("CAIRN_SERVER".to_string(), url.clone()))
    }
}

/// Separates a resource's own status message from its last plugin error.
const PROBLEM_SEP: &str = " — last plugin error: ";

/// `message` with `problem` as its last plugin error (replacing an earlier
/// one).
fn with_problem(message: &str, problem: &str) -> String {
    let base = message.split(PROBLEM_SEP).next().unwrap_or_default();
    if base.is_empty() {
        problem.to_string()
    } else {
        format!("{base}{PROBLEM_SEP}{problem}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_spec::Kind;

    #[tokio::test]
    async fn a_plugin_failure_stays_in_the_status_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("cairn.db")).unwrap());
        let shared = Shared::new(store.clone(), dir.path().to_path_buf(), Handle::current());
        let key = ResourceKey {
            kind: Kind::Model,
            project: Some("vision".parse().unwrap()),
            name: "classifier".parse().unwrap(),
        };
        let status = || {
            let s = store.status(&key).unwrap().unwrap();
            (s.phase, s.message)
        };
        shared.set_status(&key, Phase::Ready, "serving version 1");
        shared.report_plugin_problem(&key, "plugin `acc` (metrics.yaml): trap");
        let with_problem =
            "serving version 1 — last plugin error: plugin `acc` (metrics.yaml): trap";
        assert_eq!(status(), (Phase::Ready, with_problem.to_string()));
        // New messages keep the failure; a newer failure replaces it.
        shared.set_status(&key, Phase::Progressing, "loading");
        assert_eq!(
            status().1,
            "loading — last plugin error: plugin `acc` (metrics.yaml): trap"
        );
        shared.report_plugin_problem(&key, "plugin `acc` (metrics.yaml): out of fuel");
        assert_eq!(
            status(),
            (
                Phase::Progressing,
                "loading — last plugin error: plugin `acc` (metrics.yaml): out of fuel".into()
            )
        );
        shared.clear_plugin_problem(&key);
        shared.set_status(&key, Phase::Ready, "serving version 2");
        assert_eq!(status().1, "serving version 2");
        assert_eq!(
            shared.resource_dir("logs", &key),
            dir.path().join("logs/vision/classifier")
        );
        assert_eq!(shared.server_env(), None);
        shared
            .server_url
            .set("http://127.0.0.1:8080".into())
            .unwrap();
        assert_eq!(
            shared.server_env(),
            Some(("CAIRN_SERVER".into(), "http://127.0.0.1:8080".into()))
        );
    }
}
