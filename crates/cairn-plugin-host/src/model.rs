//! The `model` world: `runtime: wasm` models. Instances are reused: each is
//! `load`ed once with the artifact and kept in a pool of `replicas`; one that
//! traps (timeout, memory, panic) is dropped and a fresh one replaces it on
//! the next prediction.

use super::Config;
use crate::bindings::model as wit;
use crate::host::{HostState, Plugin, PluginError, check_output};
use std::sync::{Arc, Mutex};
use wasmtime::Store;

pub use wit::exports::cairn::plugin::inference::{Tensor, TensorData as WitData};

struct Instance {
    store: Store<HostState>,
    bindings: wit::Model,
}

/// A model served by a plugin.
pub struct WasmModel {
    plugin: Plugin,
    pre: wit::ModelPre<HostState>,
    config: Config,
    artifact: Arc<[u8]>,
    idle: Mutex<Vec<Instance>>,
    capacity: usize,
}

impl WasmModel {
    /// Checks that `plugin` implements the world and loads a first
    /// instance with `artifact`, so that a model that cannot load fails
    /// now rather than on its first request.
    pub fn new(
        plugin: Plugin,
        config: Config,
        artifact: Vec<u8>,
        replicas: usize,
    ) -> Result<WasmModel, PluginError> {
        let pre = plugin
            .linker
            .instantiate_pre(&plugin.component)
            .and_then(wit::ModelPre::new)
            .map_err(|e| PluginError::WrongWorld {
                world: "model",
                message: format!("{e:#}"),
            })?;
        let model = WasmModel {
            plugin,
            pre,
            config,
            artifact: artifact.into(),
            idle: Mutex::new(Vec::new()),
            capacity: replicas.max(1),
        };
        let first = model.instantiate()?;
        model.put_back(first);
        Ok(model)
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn instantiate(&self) -> Result<Instance, PluginError> {
        let mut store = self.plugin.store();
        let bindings = self.plugin.call(&mut store, |s| self.pre.instantiate(s))?;
        self.plugin
            .call(&mut store, |s| {
                bindings
                    .cairn_plugin_inference()
                    .call_load(s, &self.config, &self.artifact)
            })?
            .map_err(|e| PluginError::Failed(format!("load: {e}")))?;
        Ok(Instance { store, bindings })
    }

    fn take(&self) -> Result<Instance, PluginError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(i) => Ok(i),
            None => self.instantiate(),
        }
    }

    fn put_back(&self, instance: Instance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.capacity {
            idle.push(instance);
        }
    }

    /// Predicts for a batch (blocking: call it off the async threads).
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, PluginError> {
        let mut instance = self.take()?;
        let Instance { store, bindings } = &mut instance;
        let result = self.plugin.call(store, |s| {
            bindings.cairn_plugin_inference().call_predict(s, inputs)
        });
        match result {
            Ok(Ok(outputs)) => {
                self.put_back(instance);
                check_output(outputs.iter().map(tensor_bytes).sum())?;
                Ok(outputs)
            }
            Ok(Err(message)) => {
                self.put_back(instance);
                Err(PluginError::Failed(message))
            }
            // A trapped instance is dropped; the next call makes a new one.
            Err(e) => Err(e),
        }
    }
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.name.len()
        + match &t.data {
            WitData::Float32(v) => v.len() * 4,
            WitData::Float64(v) => v.len() * 8,
            WitData::Int64(v) => v.len() * 8,
            WitData::Boolean(v) => v.len(),
            WitData::Text(v) => v.iter().map(String::len).sum(),
        }
}
