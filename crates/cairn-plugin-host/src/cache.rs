//! Compiled components, cached in memory and on disk by the component's
//! SHA-256 and the engine's compatibility hash, so that each component is
//! compiled once per machine and wasmtime build.

use crate::host::PluginError;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache. Compiled files are named `SHA256-ENGINE.cwasm`.
pub struct ComponentCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<(String, String), Component>>,
}

impl ComponentCache {
    /// A cache keeping files in `dir` (created on first use).
    pub fn new(dir: Option<&Path>) -> ComponentCache {
        ComponentCache {
            dir: dir.map(Path::to_path_buf),
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled component for `bytes` (whose digest is `sha256`).
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Component, PluginError> {
        let key = (sha256.to_string(), engine_hash(engine));
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", key.0, key.1)));
        let cached = file.as_ref().filter(|f| f.is_file()).and_then(|f| {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the name),
            // into Cairn's own data directory, and renamed into place only
            // once complete.
            match unsafe { Component::deserialize_file(engine, f) } {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("ignoring the cached component {}: {e}", f.display());
                    None
                }
            }
        });
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(engine, bytes)
                    .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
                if let Some(file) = &file {
                    store(file, &c)?;
                }
                c
            }
        };
        self.lock().insert(key, component.clone());
        Ok(component)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Component>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn store(file: &Path, component: &Component) -> Result<(), PluginError> {
    let bytes = component
        .serialize()
        .map_err(|e| PluginError::Cache(e.to_string()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PluginError::Cache(e.to_string()))?;
    let tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| PluginError::Cache(e.to_string()))?;
    std::fs::write(tmp.path(), bytes).map_err(|e| PluginError::Cache(e.to_string()))?;
    tmp.persist(file)
        .map_err(|e| PluginError::Cache(e.to_string()))?;
    Ok(())
}

/// A short, stable name for the engine's compilation settings.
fn engine_hash(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}
