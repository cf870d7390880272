//! Integration tests of the `cairn` binary, one test executable: each
//! module is an area (formerly a test binary of its own). Every test runs
//! the real binary (`cairn_test_support::cairn`, `Up`) on 127.0.0.1
//! against real Git repositories in temporary directories.
//!
//! The tests share this process: none sets environment variables or
//! changes the current directory (a child gets its own with
//! `Command::env` / `current_dir`), ports are free ones picked per test,
//! and paths are absolute (`cairn_test_support`'s constants and
//! `CARGO_MANIFEST_DIR`).

mod bad_input;
mod browser_safety;
mod cli_validate_plan;
mod dashboard;
mod dashboard_experiments;
mod experiments;
mod kube_e2e;
mod kube_plan;
mod kube_up;
mod openapi;
mod plugins_apps;
mod plugins_cli;
mod plugins_up;
mod python_client;
mod up_access;
mod up_apps;
mod up_envs;
mod up_identity;
mod up_jobs;
mod up_models;
mod up_monitoring;
mod up_oidc;
mod up_rollouts;
mod up_smoke;
