//! Environments on the embedded runtime: declared Environment specs, built
//! (by [`EnvManager`]) when a workload first needs one, and collected when
//! no applied workload uses them any more.

use crate::envs::EnvManager;
use crate::shared::Shared;
use cairn_spec::{EnvironmentRef, EnvironmentSpec, Kind, ResourceKey};
use cairn_store::Phase;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Declared environments and the workloads that use built ones.
pub(crate) struct Environments {
    shared: Arc<Shared>,
    envs: EnvManager,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Declared environments.
    environments: HashMap<ResourceKey, EnvironmentSpec>,
    /// The environment each workload last used (by hash), for garbage collection.
    env_users: HashMap<ResourceKey, String>,
}

impl Environments {
    /// Environments built under `root`.
    pub fn new(shared: Arc<Shared>, root: &Path) -> Self {
        Environments {
            shared,
            envs: EnvManager::new(root),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an applied Environment spec.
    pub fn record(&self, key: &ResourceKey, spec: &EnvironmentSpec) {
        self.state().environments.insert(key.clone(), spec.clone());
    }

    /// Forgets a deleted Environment spec.
    pub fn forget(&self, key: &ResourceKey) {
        self.state().environments.remove(key);
    }

    /// The variables that give a workload its environment, building the
    /// environment first if needed.
    pub async fn prepare_environment(
        &self,
        key: &ResourceKey,
        environment: Option<&EnvironmentRef>,
        checkout: &Path,
    ) -> Result<Vec<(String, String)>, String> {
        let spec = match environment {
            None => return Ok(Vec::new()),
            Some(EnvironmentRef::Inline(e)) => (**e).clone(),
            Some(EnvironmentRef::Named(name)) => {
                let env_key = ResourceKey {
                    kind: Kind::Environment,
                    project: key.project.clone(),
                    name: name.clone(),
                };
                self.state()
                    .environments
                    .get(&env_key)
                    .cloned()
                    .ok_or_else(|| format!("environment `{name}` is not applied"))?
            }
        };
        let mut vars = Vec::new();
        if spec.needs_python() {
            let progress = |line: &str| {
                tracing::info!("{key}: {line}");
                self.shared.set_status(key, Phase::Progressing, line);
            };
            let built = self
                .envs
                .ensure(&spec, checkout, &progress)
                .await
                .map_err(|e| e.to_string())?;
            self.state()
                .env_users
                .insert(key.clone(), built.hash.clone());
            vars.extend(built.activate());
        }
        vars.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(vars)
    }

    /// The hash of the Python environment `key` last ran in, if any.
    pub fn digest_of(&self, key: &ResourceKey) -> Option<String> {
        self.state().env_users.get(key).cloned()
    }

    /// Removes environments that no applied workload (`live`) uses any more.
    pub fn collect_environments(&self, live: &BTreeSet<ResourceKey>) {
        let keep: BTreeSet<String> = {
            let mut state = self.state();
            state.env_users.retain(|k, _| live.contains(k));
            state.env_users.values().cloned().collect()
        };
        let grace = std::env::var("CAIRN_ENV_GC_GRACE")
            .ok()
            .and_then(|g| humantime::parse_duration(&g).ok())
            .unwrap_or(std::time::Duration::from_secs(3600));
        for hash in self.envs.collect_garbage(&keep, grace) {
            tracing::info!("removed unused environment {hash}");
        }
    }
}
