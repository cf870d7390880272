//! Model serving: the endpoints, keyed by resource, each with its current
//! version (and an optional canary); in-process ONNX and wasm backends or
//! HTTP to a process; JSON and Open Inference Protocol tensors; a UUID per
//! prediction logged to the event log; Prometheus metrics.

pub mod metrics;
pub mod onnx;
pub mod service;
pub mod tensor;
pub mod wasm;
