//! The `business-metric` world: metrics computed from inference events.

use super::Config;
use crate::bindings::metrics as wit;
use crate::host::{HostState, Plugin, PluginError, check_output};
use wasmtime::Store;

pub use wit::exports::cairn::plugin::metrics::{InferenceEvent, Metric, MetricValue};

/// A business-metric plugin. Each call runs in a fresh instance.
#[derive(Clone)]
pub struct MetricPlugin {
    plugin: Plugin,
    pre: wit::BusinessMetricPre<HostState>,
}

impl MetricPlugin {
    /// Checks that `plugin` implements the world.
    pub fn new(plugin: Plugin) -> Result<MetricPlugin, PluginError> {
        let pre = plugin
            .linker
            .instantiate_pre(&plugin.component)
            .and_then(wit::BusinessMetricPre::new)
            .map_err(|e| PluginError::WrongWorld {
                world: "business-metric",
                message: format!("{e:#}"),
            })?;
        Ok(MetricPlugin { plugin, pre })
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn instance(&self) -> Result<(Store<HostState>, wit::BusinessMetric), PluginError> {
        let mut store = self.plugin.store();
        let instance = self.plugin.call(&mut store, |s| self.pre.instantiate(s))?;
        Ok((store, instance))
    }

    /// The metrics of one event.
    pub fn compute(
        &self,
        config: &Config,
        event: &InferenceEvent,
    ) -> Result<Vec<Metric>, PluginError> {
        let (mut store, instance) = self.instance()?;
        let metrics = self
            .plugin
            .call(&mut store, |s| {
                instance
                    .cairn_plugin_metrics()
                    .call_compute(s, config, event)
            })?
            .map_err(PluginError::Failed)?;
        check_output(metrics_size(&metrics))?;
        Ok(metrics)
    }

    /// Summaries of one metric's values.
    pub fn aggregate(
        &self,
        config: &Config,
        name: &str,
        values: &[f64],
    ) -> Result<Vec<Metric>, PluginError> {
        let (mut store, instance) = self.instance()?;
        let metrics = self
            .plugin
            .call(&mut store, |s| {
                instance
                    .cairn_plugin_metrics()
                    .call_aggregate(s, config, name, values)
            })?
            .map_err(PluginError::Failed)?;
        check_output(metrics_size(&metrics))?;
        Ok(metrics)
    }
}

fn metrics_size(metrics: &[Metric]) -> usize {
    metrics
        .iter()
        .map(|m| {
            m.name.len()
                + match &m.value {
                    MetricValue::Number(_) => 8,
                    MetricValue::Text(t) => t.len(),
                }
        })
        .sum()
}
