//! Plugins on the embedded runtime: Plugin specs as applied (with the file
//! that declares them and the checkout of their commit), resolved by name
//! for the models, monitors and applications that use them. Every failure
//! is phrased against the plugin spec's file, so that the status of the
//! resource that uses the plugin says where to look.

use cairn_plugin_host::{Plugin, PluginHost, PluginSource};
use cairn_spec::ResourceKey;
use cairn_spec::{Kind, Name, PluginSpec};
use cairn_store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A plugin as applied.
#[derive(Clone, Debug)]
pub(crate) struct PluginDef {
    pub spec: PluginSpec,
    /// The file that declares it.
    pub file: String,
    /// The checkout of its commit (where `path` is read from).
    pub checkout: PathBuf,
}

/// A plugin resolved for a user.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub plugin: Plugin,
    pub def: PluginDef,
}

impl Resolved {
    /// `plugin `NAME` (FILE): MESSAGE`.
    pub fn problem(&self, message: impl std::fmt::Display) -> String {
        format!(
            "plugin `{}` ({}): {message}",
            self.plugin.name, self.def.file
        )
    }
}

/// Applied Plugin specs, resolved by name for their users.
pub(crate) struct Plugins {
    store: Arc<Store>,
    /// The WebAssembly plugin host.
    host: PluginHost,
    state: Mutex<State>,
    /// Plugin specs of the last commit whose files have errors, with the
    /// first error: (commit, plugin → `FILE: message`).
    broken_plugins: Mutex<(String, HashMap<ResourceKey, String>)>,
}

#[derive(Default)]
struct State {
    /// Applied plugins.
    plugins: HashMap<ResourceKey, PluginDef>,
}

impl Plugins {
    /// Plugins loaded by `host`; `store` has the statuses of specs that
    /// failed to apply.
    pub fn new(store: Arc<Store>, host: PluginHost) -> Self {
        Plugins {
            store,
            host,
            state: Mutex::new(State::default()),
            broken_plugins: Mutex::new((String::new(), HashMap::new())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The WebAssembly plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Whether a Plugin spec of this key is applied.
    pub fn declared(&self, key: &ResourceKey) -> bool {
        self.state().plugins.contains_key(key)
    }

    /// Records an applied Plugin spec.
    pub fn record_plugin(&self, key: &ResourceKey, spec: &PluginSpec, file: &str, checkout: &Path) {
        self.state().plugins.insert(
            key.clone(),
            PluginDef {
                spec: spec.clone(),
                file: file.to_string(),
                checkout: checkout.to_path_buf(),
            },
        );
    }

    /// Forgets a deleted Plugin spec.
    pub fn forget_plugin(&self, key: &ResourceKey) {
        self.state().plugins.remove(key);
    }

    /// Loads plugin `name` of `project` (compiling it on first use;
    /// blocking). The error names the plugin and its spec's file.
    pub fn resolve_plugin(&self, project: Option<&Name>, name: &Name) -> Result<Resolved, String> {
        let key = ResourceKey {
            kind: Kind::Plugin,
            project: project.cloned(),
            name: name.clone(),
        };
        let def = self.state().plugins.get(&key).cloned();
        let Some(def) = def else {
            // Not applied: its spec may have failed to load.
            if let Some(problem) = self.broken_plugins().1.get(&key) {
                return Err(format!("plugin `{name}` is not available: {problem}"));
            }
            return Err(match self.store.status(&key).ok().flatten() {
                Some(s) => format!(
                    "plugin `{name}` is not available ({}): {}",
                    s.file.as_deref().unwrap_or("its spec"),
                    s.message
                ),
                None => format!("plugin `{name}` is not declared"),
            });
        };
        let source = PluginSource::of_spec(&def.spec, &def.checkout);
        let expected = def.spec.sha256.as_ref().map(|s| s.as_str().to_string());
        match self.host.load(
            name.as_str(),
            &source,
            expected.as_deref(),
            &def.spec.limits,
        ) {
            Ok(plugin) => Ok(Resolved { plugin, def }),
            Err(e) => Err(format!("plugin `{name}` ({}): {e}", def.file)),
        }
    }
}

impl Plugins {
    fn broken_plugins(
        &self,
    ) -> std::sync::MutexGuard<'_, (String, std::collections::HashMap<ResourceKey, String>)> {
        self.broken_plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Notes, once per commit, the Plugin specs of `desired` whose files have
    /// errors (they are not applied), so that a user of one is told where
    /// the problem is.
    pub fn note_broken_plugins(&self, commit: &str, desired: &cairn_plan::loader::DesiredState) {
        let mut noted = self.broken_plugins();
        if noted.0 == commit {
            return;
        }
        noted.0 = commit.to_string();
        noted.1.clear();
        for r in desired.resources.values() {
            if r.key.kind != Kind::Plugin || !desired.guard.broken_files.contains(&*r.file) {
                continue;
            }
            let first = desired
                .report
                .diagnostics
                .iter()
                .find(|d| d.file.as_deref() == Some(&*r.file) && d.is_error())
                .map_or("the file has errors".to_string(), |d| d.message.clone());
            noted
                .1
                .insert(r.key.clone(), format!("{}: {first}", r.file));
        }
    }
}
