//! Model serving.

pub mod business;
pub mod drift;
pub mod events;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod monitoring;
pub mod onnx;
pub mod rollout;
pub mod service;
pub mod tensor;
