//! The `drift-detector` world: fit a reference sample once, score windows.

use super::Config;
use crate::bindings::drift as wit;
use crate::columns::Column;
use crate::host::{HostState, Plugin, PluginError, check_output};
use wasmtime::Store;

pub use wit::exports::cairn::plugin::drift::{DriftReport, FeatureScore};

/// A drift-detector plugin. Each call runs in a fresh instance.
#[derive(Clone)]
pub struct DriftDetector {
    plugin: Plugin,
    pre: wit::DriftDetectorPre<HostState>,
}

impl DriftDetector {
    /// Checks that `plugin` implements the world.
    pub fn new(plugin: Plugin) -> Result<DriftDetector, PluginError> {
        let pre = plugin
            .linker
            .instantiate_pre(&plugin.component)
            .and_then(wit::DriftDetectorPre::new)
            .map_err(|e| PluginError::WrongWorld {
                world: "drift-detector",
                message: format!("{e:#}"),
            })?;
        Ok(DriftDetector { plugin, pre })
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn instance(&self) -> Result<(Store<HostState>, wit::DriftDetector), PluginError> {
        let mut store = self.plugin.store();
        let instance = self.plugin.call(&mut store, |s| self.pre.instantiate(s))?;
        Ok((store, instance))
    }

    /// Creates and drops one instance: what each call pays to start (for
    /// measurements and load checks).
    pub fn instantiate(&self) -> Result<(), PluginError> {
        self.instance().map(drop)
    }

    /// Learns the reference sample; returns the detector's opaque state.
    pub fn fit(&self, config: &Config, reference: &[Column]) -> Result<Vec<u8>, PluginError> {
        let (mut store, instance) = self.instance()?;
        let state = self
            .plugin
            .call(&mut store, |s| {
                instance.cairn_plugin_drift().call_fit(s, config, reference)
            })?
            .map_err(PluginError::Failed)?;
        check_output(state.len())?;
        Ok(state)
    }

    /// Scores a window against a fitted state.
    pub fn score(
        &self,
        config: &Config,
        state: &[u8],
        window: &[Column],
        threshold: f64,
    ) -> Result<DriftReport, PluginError> {
        let (mut store, instance) = self.instance()?;
        let report = self
            .plugin
            .call(&mut store, |s| {
                instance
                    .cairn_plugin_drift()
                    .call_score(s, config, state, window, threshold)
            })?
            .map_err(PluginError::Failed)?;
        let size: usize = report.features.iter().map(|f| f.feature.len() + 32).sum();
        check_output(size)?;
        Ok(report)
    }
}
