//! Technical metrics of the gateway: requests, errors, latency histogram and
//! in-flight requests per model (project and name) and version (Prometheus
//! text at `/metrics`),
//! process CPU and memory of the gateway and of process-model replicas, GPU
//! use, and a short in-memory time series per model for the JSON API.

use cairn_spec::ResourceKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// The `project` label of a model.
fn project_label(model: &ResourceKey) -> String {
    model
        .project
        .as_ref()
        .map_or_else(String::new, |p| p.to_string())
}

/// Labels of per-request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The model's project.
    pub project: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// HTTP status class: `2xx`, `4xx`, `5xx`.
    pub status: String,
}

/// Labels of per-model metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model's project.
    pub project: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
}

impl ModelLabels {
    fn of(model: &ResourceKey, version: &str) -> ModelLabels {
        ModelLabels {
            project: project_label(model),
            model: model.name.to_string(),
            version: version.into(),
        }
    }
}

/// Labels of per-process metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    /// The model's project (empty for the gateway).
    pub project: String,
    /// `gateway`, or the model's name.
    pub process: String,
    /// Replica index (`0` for the gateway).
    pub replica: String,
}

/// Labels of GPU metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GpuLabels {
    /// Device index.
    pub gpu: String,
}

/// Scores of one model version over the current window, for
/// [`Metrics::set_model_scores`]; `None` leaves a gauge out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelScores {
    /// The model's project.
    pub project: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Accuracy (classifiers).
    pub accuracy: Option<f64>,
    /// Labeled ÷ successful predictions.
    pub coverage: Option<f64>,
    /// Mean absolute error (regressors).
    pub mae: Option<f64>,
}

/// One point of a model's time series, as the API answers it.
pub use cairn_api::metrics::Point;

#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    errors: u64,
}

/// Counters of the business-metric plugins' queue.
#[derive(Clone, Debug, Default)]
pub struct PluginEventCounters {
    /// Events the plugins ran on.
    pub processed: Counter,
    /// Events dropped because the queue was full.
    pub dropped: Counter,
    /// Plugin calls that failed.
    pub failed: Counter,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// The business-metric plugins' queue.
    pub plugin_events: PluginEventCounters,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ModelLabels, Histogram>,
    in_flight: Family<ModelLabels, Gauge>,
    cpu: Family<ProcessLabels, Gauge<f64, AtomicU64>>,
    memory: Family<ProcessLabels, Gauge>,
    gpu_util: Family<GpuLabels, Gauge>,
    gpu_memory: Family<GpuLabels, Gauge>,
    accuracy: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    coverage: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    mae: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    /// The series of the three score families set by the last refresh.
    scored: Mutex<Vec<ModelLabels>>,
    windows: Mutex<HashMap<ResourceKey, Window>>,
    series: Mutex<HashMap<ResourceKey, VecDeque<Point>>>,
    /// CPU (cores) and resident memory of each model's processes, as last
    /// set by [`Metrics::set_model_resources`].
    resources: Mutex<HashMap<ResourceKey, (f64, u64)>>,
    /// Utilization (percent) and memory of the GPUs each model's replicas
    /// hold, as last set by [`Metrics::set_model_gpu`].
    model_gpus: Mutex<HashMap<ResourceKey, (f64, u64)>>,
}

/// Points kept per model (at one per 10 s: an hour).
const SERIES_POINTS: usize = 360;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "model_requests",
            "Prediction requests by model, version and status class",
            requests.clone(),
        );
        let latency = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "model_request_duration_seconds",
            "Prediction latency at the gateway",
            latency.clone(),
        );
        let in_flight = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_in_flight_requests",
            "Predictions in progress",
            in_flight.clone(),
        );
        let cpu = Family::<ProcessLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "process_cpu_usage_ratio",
            "CPU use of the gateway and model replicas (1 = one core)",
            cpu.clone(),
        );
        let memory = Family::<ProcessLabels, Gauge>::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the gateway and model replicas",
            memory.clone(),
        );
        let gpu_util = Family::<GpuLabels, Gauge>::default();
        registry.register(
            "gpu_utilization_percent",
            "GPU utilization (NVML)",
            gpu_util.clone(),
        );
        let gpu_memory = Family::<GpuLabels, Gauge>::default();
        registry.register(
            "gpu_memory_used_bytes",
            "GPU memory in use (NVML)",
            gpu_memory.clone(),
        );
        let accuracy = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "model_accuracy",
            "Accuracy of a classifier over the last hour's predictions with ground truth",
            accuracy.clone(),
        );
        let coverage = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "model_label_coverage",
            "Share of the last hour's successful predictions with ground truth",
            coverage.clone(),
        );
        let mae = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "model_mae",
            "Mean absolute error of a regressor over the last hour's predictions with ground truth",
            mae.clone(),
        );
        let plugin_events = PluginEventCounters::default();
        registry.register(
            "business_metric_events_processed",
            "Logged predictions the business-metric plugins ran on",
            plugin_events.processed.clone(),
        );
        registry.register(
            "business_metric_events_dropped",
            "Logged predictions skipped because the business-metric queue was full",
            plugin_events.dropped.clone(),
        );
        registry.register(
            "business_metric_plugin_failures",
            "Business-metric plugin calls that failed (error, trap or limit)",
            plugin_events.failed.clone(),
        );
        Metrics {
            registry,
            plugin_events,
            requests,
            latency,
            in_flight,
            cpu,
            memory,
            gpu_util,
            gpu_memory,
            accuracy,
            coverage,
            mae,
            scored: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
            series: Mutex::new(HashMap::new()),
            resources: Mutex::new(HashMap::new()),
            model_gpus: Mutex::new(HashMap::new()),
        }
    }

    /// A request started.
    pub fn started(&self, model: &ResourceKey, version: &str) {
        self.in_flight
            .get_or_create(&ModelLabels::of(model, version))
            .inc();
    }

    /// A request ended with `status` after `latency_us`.
    pub fn finished(&self, model: &ResourceKey, version: &str, status: u16, latency_us: u64) {
        let labels = ModelLabels::of(model, version);
        self.in_flight.get_or_create(&labels).dec();
        self.latency
            .get_or_create(&labels)
            .observe(latency_us as f64 / 1e6);
        self.requests
            .get_or_create(&RequestLabels {
                project: labels.project,
                model: labels.model,
                version: labels.version,
                status: format!("{}xx", status / 100),
            })
            .inc();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(model.clone()).or_default();
        if w.latencies_us.len() < 1_000_000 {
            w.latencies_us.push(latency_us);
        }
        if status >= 400 {
            w.errors += 1;
        }
    }

    /// A request refused before it started (queue full).
    pub fn rejected(&self, model: &ResourceKey, version: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                project: project_label(model),
                model: model.name.to_string(),
                version: version.into(),
                status: format!("{}xx", status / 100),
            })
            .inc();
    }

    /// Records the CPU (cores) and resident memory of a replica of `model`,
    /// or with none, of the gateway.
    pub fn set_process(&self, model: Option<&ResourceKey>, replica: usize, cpu: f64, memory: u64) {
        let labels = ProcessLabels {
            project: model.map(project_label).unwrap_or_default(),
            process: model.map_or_else(|| "gateway".to_string(), |m| m.name.to_string()),
            replica: replica.to_string(),
        };
        self.cpu.get_or_create(&labels).set(cpu);
        self.memory.get_or_create(&labels).set(memory as i64);
    }

    /// Sets the CPU (cores) and resident memory of a model's processes,
    /// put in its next points.
    pub fn set_model_resources(&self, model: &ResourceKey, cpu: f64, memory: u64) {
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.clone(), (cpu, memory));
    }

    /// Sets the utilization and memory of the GPUs a model's replicas hold,
    /// put in its next points.
    pub fn set_model_gpu(&self, model: &ResourceKey, utilization: f64, memory: u64) {
        self.model_gpus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.clone(), (utilization, memory));
    }

    /// Records a GPU's utilization and memory.
    pub fn set_gpu(&self, index: u32, utilization: u32, memory_used: u64) {
        let labels = GpuLabels {
            gpu: index.to_string(),
        };
        self.gpu_util.get_or_create(&labels).set(utilization as i64);
        self.gpu_memory
            .get_or_create(&labels)
            .set(memory_used as i64);
    }

    /// Replaces the model scores (accuracy, label coverage, MAE) of every
    /// model and version: series not in `scores` are removed.
    pub fn set_model_scores(&self, scores: &[ModelScores]) {
        let mut scored = self.scored.lock().unwrap_or_else(|e| e.into_inner());
        for labels in scored.drain(..) {
            self.accuracy.remove(&labels);
            self.coverage.remove(&labels);
            self.mae.remove(&labels);
        }
        for s in scores {
            let labels = ModelLabels {
                project: s.project.clone(),
                model: s.model.clone(),
                version: s.version.clone(),
            };
            let families = [
                (&self.accuracy, s.accuracy),
                (&self.coverage, s.coverage),
                (&self.mae, s.mae),
            ];
            for (family, value) in families {
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    family.get_or_create(&labels).set(v);
                }
            }
            scored.push(labels);
        }
    }

    /// Closes the current interval of every model's time series.
    pub fn sample(&self, interval_s: f64) {
        let windows = std::mem::take(&mut *self.windows.lock().unwrap_or_else(|e| e.into_inner()));
        let time = cairn_store::now();
        let resources =
            std::mem::take(&mut *self.resources.lock().unwrap_or_else(|e| e.into_inner()));
        let model_gpus =
            std::mem::take(&mut *self.model_gpus.lock().unwrap_or_else(|e| e.into_inner()));
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (model, mut w) in windows {
            let used = resources.get(&model);
            let gpu = model_gpus.get(&model);
            w.latencies_us.sort_unstable();
            let pct = |p: f64| {
                if w.latencies_us.is_empty() {
                    0.0
                } else {
                    let i = ((w.latencies_us.len() - 1) as f64 * p).round() as usize;
                    w.latencies_us[i] as f64 / 1000.0
                }
            };
            let point = Point {
                time: time.clone(),
                requests: w.latencies_us.len() as u64,
                errors: w.errors,
                throughput: w.latencies_us.len() as f64 / interval_s.max(1e-9),
                p50_ms: pct(0.5),
                p95_ms: pct(0.95),
                p99_ms: pct(0.99),
                cpu_cores: used.map(|u| u.0),
                memory_bytes: used.map(|u| u.1),
                gpu_utilization: gpu.map(|g| g.0),
                gpu_memory_bytes: gpu.map(|g| g.1),
            };
            let s = series.entry(model).or_default();
            if s.len() == SERIES_POINTS {
                s.pop_front();
            }
            s.push_back(point);
        }
    }

    /// The time series of a model, oldest first.
    pub fn series(&self, model: &ResourceKey) -> Vec<Point> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_and_series() {
        let m = Metrics::new();
        let clf = ResourceKey {
            kind: cairn_spec::Kind::Model,
            project: Some("lab".parse().unwrap()),
            name: "clf".parse().unwrap(),
        };
        m.started(&clf, "1");
        m.finished(&clf, "1", 200, 1500);
        m.started(&clf, "1");
        m.finished(&clf, "1", 400, 500);
        m.set_process(None, 0, 0.25, 1 << 20);
        m.set_process(Some(&clf), 1, 0.5, 1 << 20);
        let text = m.render();
        assert!(
            text.contains(r#"cairn_model_requests_total{project="lab",model="clf",version="1",status="2xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("cairn_model_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("# EOF"));
        assert!(
            text.contains(
                r#"cairn_process_resident_memory_bytes{project="",process="gateway",replica="0"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"cairn_process_resident_memory_bytes{project="lab",process="clf",replica="1"}"#
            ),
            "{text}"
        );
        m.set_model_scores(&[ModelScores {
            project: "lab".into(),
            model: "clf".into(),
            version: "1".into(),
            accuracy: Some(0.75),
            coverage: Some(0.5),
            mae: None,
        }]);
        let text = m.render();
        assert!(
            text.contains(r#"cairn_model_accuracy{project="lab",model="clf",version="1"} 0.75"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"cairn_model_label_coverage{project="lab",model="clf",version="1"} 0.5"#
            ),
            "{text}"
        );
        assert!(!text.contains("cairn_model_mae{"), "{text}");
        m.set_model_scores(&[]);
        assert!(!m.render().contains("cairn_model_accuracy{"));
        m.set_model_resources(&clf, 0.5, 64 << 20);
        m.set_model_gpu(&clf, 40.0, 1 << 30);
        m.sample(10.0);
        let s = m.series(&clf);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].requests, 2);
        assert_eq!(s[0].errors, 1);
        assert_eq!(s[0].p99_ms, 1.5);
        assert_eq!(
            (s[0].cpu_cores, s[0].memory_bytes),
            (Some(0.5), Some(64 << 20))
        );
        assert_eq!(
            (s[0].gpu_utilization, s[0].gpu_memory_bytes),
            (Some(40.0), Some(1 << 30))
        );
        let point = serde_json::to_value(&s[0]).unwrap();
        assert_eq!(point["cpuCores"], 0.5);
        assert_eq!(point["gpuMemoryBytes"], 1u64 << 30);
    }
}
