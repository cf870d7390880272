//! Cairn: GitOps for machine learning.
//!
//! A Git repository of YAML specs is the source of truth. This library holds
//! every part of the `cairn` binary, so that each is testable on its own:
//!
//! - [`yaml`]: a span-preserving YAML tree and serde deserializer;
//! - [`spec`]: the spec API types (`apiVersion: cairn/v1`);
//! - [`source`]: reading a repository at a commit (git2), the index or the work tree;
//! - [`loader`]: turning a repository snapshot into a validated desired state, with diagnostics;
//! - [`validate`]: semantic checks across the whole repository;
//! - [`plan`]: the pure planner and its renderers;
//! - [`diagnostics`]: errors with file, line, column and hints, for people and tools;
//! - [`dashboard`]: the web dashboard of `cairn up`;
//! - [`cli`]: the command line.

pub mod cli;
pub mod controller;
pub mod dashboard;
pub mod diagnostics;
pub mod gateway;
pub mod loader;
pub mod plan;
pub mod plugins;
pub mod runtime;
pub mod server;
pub mod source;
pub mod spec;
pub mod store;
pub mod validate;
pub mod yaml;
