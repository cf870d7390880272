//! The objects the Kubernetes runtime applies, for every kind, GPU pools and
//! quotas, compared with golden files under `tests/golden/kubernetes/`.
//! Regenerate them with `CAIRN_BLESS=1 cargo test -p cairn --test kube_objects`.

mod common;

use cairn_plan::loader::{DesiredState, ResourceKey};
use cairn_runtime_kubernetes::launch;
use cairn_runtime_kubernetes::objects::{
    self, KubeObject, KubeSettings, LABEL_MANAGED_BY, ObjectError,
};
use cairn_source::GitSource;
use common::{TestRepo, cairn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub const SPECS: &str = r#"apiVersion: cairn/v1
kind: Project
metadata:
  name: vision
spec:
  description: Image models on the GPU cluster.
  defaultPool: a100
  quotas: {cpu: "32", memory: 128Gi, gpus: 8}
  env: {LOG_LEVEL: info}
  secrets:
    - {name: WANDB_API_KEY, fromEnv: WANDB_KEY}
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: a100
spec:
  description: A100 nodes, tainted for GPU work.
  kubernetes:
    namespace: ml-gpu
    nodeSelector: {cloud.example.com/pool: a100}
    tolerations:
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    gpuType: NVIDIA-A100-SXM4-80GB
    priorityClass: ml-high
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: mi300
spec:
  kubernetes:
    nodeSelector: {accelerator: mi300}
    gpuResource: amd.com/gpu
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: cpu
spec:
  kubernetes: {}
---
apiVersion: cairn/v1
kind: Environment
metadata:
  name: torch
spec:
  image: pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
  env: {PYTHONUNBUFFERED: "1"}
---
apiVersion: cairn/v1
kind: Dataset
metadata:
  name: images
spec:
  source: s3://vision/images
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: prepare
spec:
  command: [python, prepare.py]
  workdir: jobs
  environment: torch
  pool: cpu
  resources: {cpu: 500m, memory: 1Gi}
  trigger: {manual: true}
  lineage: {reads: [images]}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: [python, train.py, --epochs, "$(CAIRN_PARAM_EPOCHS)"]
  workdir: jobs
  environment: torch
  dependsOn: [prepare]
  resources: {cpu: "8", memory: 64Gi, gpus: 2}
  retries: 2
  timeout: 2h
  params: {epochs: 10, lr: "0.001"}
  schedule: {cron: "0 3 * * 1", timezone: Europe/Paris}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: evaluate
spec:
  command: python evaluate.py --all && echo done
  image: rocm/pytorch:latest
  pool: mi300
  resources: {gpus: 1}
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: classifier
spec:
  runtime: onnx
  artifact: models/classifier.onnx
  replicas: 2
  pool: cpu
  resources: {cpu: 500m, memory: 256Mi}
  signature:
    inputs:
      - {name: mean_radius, type: float}
      - {name: mean_texture, type: float}
      - {name: mean_smoothness, type: float}
      - {name: worst_concavity, type: float}
    outputs:
      - {name: label, type: int}
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: embedder
spec:
  runtime: process
  command: [python, serve.py]
  workdir: serving
  environment: torch
  replicas: 3
  resources: {cpu: "2", memory: 8Gi, gpus: 1}
  env: {BATCH: "16"}
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: explorer
spec:
  framework: streamlit
  path: apps/explorer
  pool: cpu
  environment: {image: "python:3.12-slim"}
  resources: {cpu: 250m, memory: 512Mi}
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: status-page
spec:
  framework: command
  command: [python3, server.py]
  path: apps/status
  pool: cpu
  replicas: 2
  healthPath: /healthz
  environment: {image: "python:3.12-slim"}
"#;

/// Writes the repository of [`SPECS`] and its files.
pub fn write_repo(repo: &TestRepo) {
    repo.write("cairn.yaml", "specRoot: specs\n")
        .write("specs/all.yaml", SPECS)
        .write("jobs/prepare.py", "print('prepare')\n")
        .write("jobs/train.py", "print('train')\n")
        .write("jobs/evaluate.py", "print('evaluate')\n")
        .write("serving/serve.py", "print('serve')\n")
        .write("apps/explorer/app.py", "import streamlit\n")
        .write("apps/status/server.py", "print('status')\n")
        .write(
            "models/classifier.onnx",
            std::fs::read(common::CLASSIFIER).unwrap(),
        );
}

fn settings() -> KubeSettings {
    KubeSettings {
        image: "ghcr.io/cairn-ml/cairn:test".into(),
        git_image: "alpine/git:2.47.2".into(),
        repo_url: Some("https://git.example.com/ml/vision.git".into()),
        server_url: Some("http://cairn.cairn-system.svc:8080".into()),
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

/// Compares `actual` with a golden file, or writes it with `CAIRN_BLESS=1`.
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with CAIRN_BLESS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        expected, actual,
        "{name} differs from its golden file; if the change is intended, rerun with CAIRN_BLESS=1"
    );
}

fn file_name(key: &ResourceKey) -> String {
    format!("{}-{}.yaml", objects::kind_label(key.kind), key.name)
}

#[test]
fn every_kind_matches_its_golden_file() {
    let repo = TestRepo::new();
    write_repo(&repo);
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
    write_repo(&repo);
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

#[test]
fn plan_prints_the_exact_objects_of_a_change() {
    let repo = TestRepo::new();
    write_repo(&repo);
    let first = repo.commit("specs");
    // Scale the classifier, drop the status page, add a quota-less project.
    let changed = SPECS
        .replace(
            "  replicas: 2\n  pool: cpu\n  resources: {cpu: 500m",
            "  replicas: 4\n  pool: cpu\n  resources: {cpu: 500m",
        )
        .split("---\napiVersion: cairn/v1\nkind: Application\nmetadata:\n  name: status-page")
        .next()
        .unwrap()
        .to_string();
    repo.write("specs/all.yaml", changed);
    let second = repo.commit("scale the classifier, remove the status page");
    let out = cairn()
        .args(["plan", &repo.arg(), "--from", &first, "--to", &second])
        .args([
            "--runtime",
            "kubernetes",
            "--image",
            "ghcr.io/cairn-ml/cairn:test",
        ])
        .args(["--repo-url", "https://git.example.com/ml/vision.git"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_golden("plan-change.yaml", &stdout.replace(&second, "<COMMIT>"));
    assert!(stdout.contains("replicas: 4"), "{stdout}");
    assert!(
        stdout.contains("# delete Application vision/status-page (specs/all.yaml): prunes every object labelled app.kubernetes.io/managed-by=cairn,cairn.dev/kind=application,cairn.dev/name=status-page,cairn.dev/project=vision"),
        "{stdout}"
    );
}

/// The installation manifests parse as the objects they claim to be, and
/// RBAC grants exactly what the runtime uses on each kind it manages.
#[test]
fn install_manifests_grant_least_privilege_for_every_managed_kind() {
    use cairn_runtime_kubernetes::objects::ObjectKind;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base");
    let mut kinds = Vec::new();
    let mut roles: Vec<ClusterRole> = Vec::new();
    for file in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "rbac.yaml",
        "pvc.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        let text = std::fs::read_to_string(base.join(file)).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "ClusterRole" => roles.push(serde_json::from_value(value).unwrap()),
                "Deployment" => {
                    let d: k8s_openapi::api::apps::v1::Deployment =
                        serde_json::from_value(value).unwrap();
                    let pod = d.spec.unwrap().template.spec.unwrap();
                    assert_eq!(pod.service_account_name.as_deref(), Some("cairn"));
                    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
                }
                _ => {}
            }
            kinds.push(kind);
        }
    }
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "PersistentVolumeClaim",
            "Deployment",
            "Service"
        ]
    );
    let verbs = |group: &str, plural: &str| -> Vec<String> {
        let mut v: Vec<String> = roles
            .iter()
            .flat_map(|r| r.rules.iter().flatten())
            .filter(|rule| {
                rule.api_groups.iter().flatten().any(|g| g == group)
                    && rule.resources.iter().flatten().any(|r| r == plural)
            })
            .flat_map(|rule| rule.verbs.clone())
            .collect();
        v.sort();
        v
    };
    for kind in ObjectKind::ALL {
        let ar = kind.api_resource();
        let mut want = vec!["create", "get", "list", "patch", "watch"];
        if kind != ObjectKind::Namespace {
            want.push("delete");
        }
        want.sort();
        assert_eq!(verbs(&ar.group, &ar.plural), want, "{}", kind.as_str());
    }
    assert_eq!(verbs("", "pods"), ["get", "list", "watch"]);
    assert!(verbs("", "secrets").is_empty());
    assert!(verbs("", "nodes").is_empty());
}
