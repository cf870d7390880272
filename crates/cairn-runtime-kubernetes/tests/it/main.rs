//! Integration tests of the Kubernetes runtime, one binary: the objects of
//! every kind against golden files, and server-side apply against the fake
//! API server of cairn-test-support.

mod kube_apply;
mod kube_objects;
