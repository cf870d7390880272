//! Business-metric plugins, off the request path: the gateway offers each
//! logged inference to a bounded queue (never waiting; overflow is counted),
//! and a consumer thread runs the model's `business-metric` plugins on it and
//! stores their metrics against the inference's UUID.

use cairn_gateway::service::EventTap;
use cairn_plugin_host::Config;
use cairn_plugin_host::metrics::{self as wit, MetricPlugin};
use cairn_spec::ResourceKey;
use cairn_store::events::{EventLog, InferenceEvent};
use cairn_store::monitoring::{MetricItem, MetricValue, record_metrics};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, RwLock};

/// Events waiting for the consumer; more are dropped and counted.
pub const QUEUE: usize = 4096;

/// Told of a plugin's failure (the message names the plugin and its file).
pub type ProblemHook = Arc<dyn Fn(String) + Send + Sync>;

/// A business-metric plugin of a model.
#[derive(Clone)]
pub struct MetricBinding {
    /// The plugin.
    pub plugin: MetricPlugin,
    /// Its spec's `config`.
    pub config: Config,
    /// Where its failures go.
    pub on_error: ProblemHook,
}

/// Counters of the consumer (exported at `/metrics`).
pub type BusinessCounters = cairn_gateway::metrics::PluginEventCounters;

type Bindings = Arc<RwLock<HashMap<ResourceKey, Arc<[MetricBinding]>>>>;

/// The queue and the models' plugins.
pub struct BusinessMetrics {
    tx: SyncSender<InferenceEvent>,
    bindings: Bindings,
    /// Counters.
    pub counters: Arc<BusinessCounters>,
}

impl BusinessMetrics {
    /// Starts the consumer, writing to `events`' database and counting in
    /// `counters`.
    pub fn start(events: EventLog, counters: BusinessCounters) -> BusinessMetrics {
        let (tx, rx) = sync_channel(QUEUE);
        let bindings: Bindings = Default::default();
        let counters = Arc::new(counters);
        let (b, c) = (bindings.clone(), counters.clone());
        if let Err(e) = std::thread::Builder::new()
            .name("cairn-business-metrics".into())
            .spawn(move || consume(rx, events, b, c))
        {
            tracing::error!("business-metric plugins will not run: {e}");
        }
        BusinessMetrics {
            tx,
            bindings,
            counters,
        }
    }

    /// Sets the plugins of `model` (none removes them).
    pub fn set(&self, model: &ResourceKey, plugins: Vec<MetricBinding>) {
        let mut map = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        if plugins.is_empty() {
            map.remove(model);
        } else {
            map.insert(model.clone(), plugins.into());
        }
    }
}

impl EventTap for BusinessMetrics {
    fn wants(&self, model: &ResourceKey) -> bool {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(model)
    }

    fn offer(&self, event: InferenceEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.inc();
            }
        }
    }
}

fn consume(
    rx: Receiver<InferenceEvent>,
    events: EventLog,
    bindings: Bindings,
    counters: Arc<BusinessCounters>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(1023));
        // Events of `async` models may still be queued for writing.
        if let Err(e) = events.flush_blocking() {
            tracing::warn!("business metrics: {e}");
        }
        let mut items: HashMap<ResourceKey, Vec<MetricItem>> = HashMap::new();
        for event in &batch {
            let Some(plugins) = bindings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&event.model)
                .cloned()
            else {
                continue;
            };
            let wit_event = to_wit(event);
            let mut metrics = Vec::new();
            for b in plugins.iter() {
                match b.plugin.compute(&b.config, &wit_event) {
                    Ok(m) => metrics.extend(m.into_iter().map(|m| {
                        let value = match m.value {
                            wit::MetricValue::Number(n) => MetricValue::Num(n),
                            wit::MetricValue::Text(t) => MetricValue::Text(t),
                        };
                        (m.name, value)
                    })),
                    Err(e) => {
                        counters.failed.inc();
                        (b.on_error)(format!("business metric of inference {}: {e}", event.uuid));
                    }
                }
            }
            counters.processed.inc();
            if !metrics.is_empty() {
                items
                    .entry(event.model.clone())
                    .or_default()
                    .push(MetricItem {
                        uuid: Some(event.uuid),
                        metrics,
                    });
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        for (model, items) in items {
            if let Err(e) = record_metrics(&mut events.monitor(), &model, &items, now) {
                tracing::warn!("business metrics of {model} not stored: {e}");
            }
        }
    }
}

fn to_wit(e: &InferenceEvent) -> wit::InferenceEvent {
    wit::InferenceEvent {
        id: e.uuid.to_string(),
        model: e.model.name.to_string(),
        version: e.version.clone(),
        timestamp_ms: e.time.timestamp_millis(),
        latency_us: e.latency_us,
        status: e.status,
        inputs: e.inputs.to_string(),
        outputs: e.outputs.to_string(),
    }
}
