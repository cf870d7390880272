//! `GET /api/v1/models/NAME/metrics`: a model's live traffic, latency and
//! resources over the last hour, in 10-second intervals.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/models/NAME/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveMetrics {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub name: String,
    /// Its time series, oldest first.
    pub series: Vec<Point>,
}

/// One point of a model's time series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// End of the interval, RFC 3339.
    pub time: String,
    /// Requests in the interval.
    pub requests: u64,
    /// Of which failed (status ≥ 400).
    pub errors: u64,
    /// Requests per second.
    pub throughput: f64,
    /// Latency, 50th percentile, in milliseconds.
    pub p50_ms: f64,
    /// Latency, 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// Latency, 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// CPU used by the model's processes (for in-process models, the
    /// gateway's), in cores, at the last sample.
    pub cpu_cores: Option<f64>,
    /// Their resident memory, in bytes.
    pub memory_bytes: Option<u64>,
    /// Mean utilization (percent) of the GPUs its replicas hold, if any.
    pub gpu_utilization: Option<f64>,
    /// Memory in use on those GPUs (by any process), in bytes.
    pub gpu_memory_bytes: Option<u64>,
}
