//! The objects the Kubernetes runtime applies, for every kind, GPU pools and
//! quotas, compared with golden files under `tests/golden/kubernetes/`,
//! for the repository of the `vision` fixture. Regenerate them with
//! `CAIRN_BLESS=1 cargo test -p cairn-runtime-kubernetes --test it kube_objects`.

use cairn_plan::loader::{DesiredState, ResourceKey};
use cairn_runtime_kubernetes::launch;
use cairn_runtime_kubernetes::objects::{
    self, KubeObject, KubeSettings, LABEL_MANAGED_BY, ObjectError,
};
use cairn_source::GitSource;
use cairn_test_support::{TestRepo, write_vision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn settings() -> KubeSettings {
    KubeSettings {
        image: "ghcr.io/cairn-ml/cairn:test".into(),
        git_image: "alpine/git:2.47.2".into(),
        repo_url: Some("https://git.example.com/ml/vision.git".into()),
        server_url: Some("http://cairn.cairn-system.svc:8080".into()),
        namespaces: Vec::new(),
        reserved: vec!["cairn-system".into()],
    }
}

fn load(repo: &TestRepo) -> DesiredState {
    let source = GitSource::open_local(repo.path()).unwrap();
    let snapshot = source.snapshot("HEAD").unwrap();
    cairn_plan::loader::load(&snapshot)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kubernetes")
}

fn check_golden(name: &str, actual: &str) {
    cairn_test_support::check_golden(&golden_dir(), name, actual);
}

fn file_name(key: &ResourceKey) -> String {
    format!("{}-{}.yaml", objects::kind_label(key.kind), key.name)
}

#[test]
fn every_kind_matches_its_golden_file() {
    let repo = TestRepo::new();
    write_vision(&repo);
    repo.commit("specs");
    let state = load(&repo);
    assert_eq!(state.report.errors(), 0, "{:?}", state.report);

    let (by_resource, errors) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &settings(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<String> = by_resource.keys().map(file_name).collect();
    assert_eq!(
        names,
        [
            "project-vision.yaml",
            "job-evaluate.yaml",
            "job-prepare.yaml",
            "job-train.yaml",
            "model-classifier.yaml",
            "model-embedder.yaml",
            "application-explorer.yaml",
            "application-status-page.yaml",
        ]
    );
    for (key, list) in &by_resource {
        check_golden(&file_name(key), &objects::to_yaml(list));
        for o in list {
            let labels = o.meta().labels.clone().unwrap();
            assert_eq!(labels[LABEL_MANAGED_BY], "cairn", "{}", o.describe());
            assert_eq!(labels["cairn.dev/commit"], COMMIT);
            assert_eq!(labels["cairn.dev/name"], key.name.as_str());
        }
    }

    // The same state always gives the same objects.
    let (again, _) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &settings(),
    );
    assert_eq!(again, by_resource);

    // A run of `train` in a pipeline after `prepare`, with a parameter overridden.
    let train = by_resource
        .iter()
        .find(|(k, _)| k.name.as_str() == "train")
        .unwrap()
        .1;
    let KubeObject::CronJob(template) = &train[0] else {
        panic!("train is a CronJob: {train:?}");
    };
    let run = objects::run_from_template(
        template,
        7,
        "0193a5b0c1d2e3f4",
        &["prepare".to_string()],
        &BTreeMap::from([("epochs".to_string(), "20".to_string())]),
    );
    check_golden(
        "run-train-7.yaml",
        &objects::to_yaml(&[KubeObject::Job(Box::new(run))]),
    );
}

#[test]
fn gpu_pools_and_quotas_use_the_pool_gpu_resource() {
    let repo = TestRepo::new();
    write_vision(&repo);
    repo.commit("specs");
    let state = load(&repo);
    let (by_resource, _) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &settings(),
    );
    let get = |name: &str| -> serde_json::Value {
        let list = by_resource
            .iter()
            .find(|(k, _)| k.name.as_str() == name)
            .unwrap()
            .1;
        serde_json::Value::Array(list.iter().map(KubeObject::to_value).collect())
    };
    let evaluate = get("evaluate");
    let pod = &evaluate[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["amd.com/gpu"],
        "1"
    );
    assert_eq!(pod["nodeSelector"]["accelerator"], "mi300");
    // The project's namespace, as the pool names none.
    assert_eq!(evaluate[0]["metadata"]["namespace"], "vision");

    let embedder = get("embedder");
    let deployment = &embedder[1];
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], "ml-gpu");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(
        pod["nodeSelector"]["nvidia.com/gpu.product"],
        "NVIDIA-A100-SXM4-80GB"
    );
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    assert_eq!(pod["priorityClassName"], "ml-high");

    let project = get("vision");
    let hard = &project[1]["spec"]["hard"];
    assert_eq!(hard["requests.cpu"], "32");
    assert_eq!(hard["requests.memory"], "128Gi");
    assert_eq!(hard["requests.nvidia.com/gpu"], "8");
    assert_eq!(hard["requests.amd.com/gpu"], "8");
}

#[test]
fn workloads_that_cannot_run_say_why() {
    let repo = TestRepo::new();
    repo.write(
        "specs/all.yaml",
        "apiVersion: cairn/v1
kind: Project
metadata: {name: p}
spec: {defaultPool: k8s}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: k8s}
spec: {kubernetes: {}}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: no-image}
spec: {command: [echo, hi]}
---
apiVersion: cairn/v1
kind: Model
metadata: {name: from-job}
spec:
  runtime: onnx
  from: {job: no-image, output: model}
",
    );
    repo.commit("specs");
    let state = load(&repo);
    let (_, errors) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &settings(),
    );
    let messages: Vec<String> = errors
        .iter()
        .map(|(k, e)| format!("{}: {e}", k.name))
        .collect();
    assert_eq!(
        messages,
        [
            "no-image: Job p/no-image has no container image: set `image` on its environment (or the job)",
            "from-job: models served from a job's output (`from`) are not served on Kubernetes yet; commit the artifact and use `artifact`",
        ]
    );
    assert!(matches!(
        errors.values().next(),
        Some(ObjectError::NoImage(_))
    ));
}

/// Namespaces outside the operator's allow-list, and the controller's own,
/// get no objects: the resource says why.
#[test]
fn only_allowed_namespaces_are_written() {
    let repo = TestRepo::new();
    repo.write(
        "specs/all.yaml",
        "apiVersion: cairn/v1
kind: Project
metadata: {name: team-a}
spec: {defaultPool: k8s}
---
apiVersion: cairn/v1
kind: Project
metadata: {name: team-b}
spec: {defaultPool: k8s}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: k8s}
spec: {kubernetes: {}}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: system}
spec: {kubernetes: {namespace: cairn-system}}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: ok, project: team-a}
spec: {command: [echo, hi], image: busybox}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: elsewhere, project: team-b}
spec: {command: [echo, hi], image: busybox}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: sneaky, project: team-a}
spec: {command: [echo, hi], image: busybox, pool: system}
",
    );
    repo.commit("specs");
    let state = load(&repo);
    let allowed = KubeSettings {
        namespaces: vec!["team-a".into()],
        ..settings()
    };
    let (objects, errors) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &allowed,
    );
    let written: Vec<String> = objects.keys().map(|k| k.id()).collect();
    assert_eq!(written, ["Project//team-a", "Job/team-a/ok"], "{errors:?}");
    let messages: Vec<String> = errors
        .iter()
        .map(|(k, e)| format!("{}: {e}", k.id()))
        .collect();
    assert_eq!(
        messages,
        [
            "Project//team-b: namespace `team-b` is not one the operator allows (team-a); ask for it to be added to `--namespaces`",
            "Job/team-a/sneaky: namespace `cairn-system` is the controller's own; workloads run elsewhere",
            "Job/team-b/elsewhere: namespace `team-b` is not one the operator allows (team-a); ask for it to be added to `--namespaces`",
        ]
    );
    assert!(
        errors
            .values()
            .all(|e| matches!(e, ObjectError::Namespace(_)))
    );
}
