//! The HTTP server: API, webhooks and the application proxy.

pub mod api;
pub mod dashboard;
pub mod gateway;
pub mod hooks;
pub mod monitoring;
pub mod names;
pub mod proxy;
pub mod runtime;
