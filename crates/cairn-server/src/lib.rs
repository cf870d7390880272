//! The HTTP server: API, gateway, webhooks, the application proxy and the
//! dashboard, answering with the types of [`cairn_api`]; [`openapi`]
//! describes the routes.

pub mod api;
pub mod app;
pub mod auth;
pub mod contract;
pub mod dashboard;
pub mod experiments;
pub mod gateway;
pub mod guard;
pub mod hooks;
pub mod mlflow;
pub mod monitoring;
pub mod names;
pub mod oidc;
pub mod openapi;
pub mod proxy;
pub mod runtime;
