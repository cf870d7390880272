//! The HTTP server: API, webhooks and the application proxy.

pub mod api;
pub mod hooks;
pub mod proxy;
