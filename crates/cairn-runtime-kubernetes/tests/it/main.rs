//! Integration tests of the Kubernetes runtime, one binary: the objects of
//! every kind against golden files, server-side apply and pruning against
//! the fake API server of cairn-test-support, and the installation
//! manifests under `deploy/`.

mod deploy_manifests;
mod kube_apply;
mod kube_objects;
