//! Server-side apply, conflicts, invalid objects and pruning, against the
//! in-process fake API server (`cairn_test_support::kube_api`) at the HTTP
//! boundary.

use cairn_runtime_kubernetes::apply::{Applier, ApplyError, ConflictPolicy, FIELD_MANAGER};
use cairn_runtime_kubernetes::launch;
use cairn_runtime_kubernetes::objects::{self, KubeObject, KubeSettings};
use cairn_source::GitSource;
use cairn_test_support::TestRepo;
use cairn_test_support::kube_api::FakeApi;
use std::collections::BTreeSet;

const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
const SERVICES: &str = "/api/v1/services";
const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

const SPECS: &str = "apiVersion: cairn/v1
kind: Project
metadata: {name: shop}
spec: {defaultPool: k8s, quotas: {cpu: '8'}}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: k8s}
spec: {kubernetes: {}}
---
apiVersion: cairn/v1
kind: Application
metadata: {name: board}
spec:
  framework: command
  command: [python3, -m, http.server, '8080']
  path: board
  environment: {image: 'python:3.12-slim'}
";

fn client(api: &FakeApi) -> kube::Client {
    let config = kube::Config::new(api.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn objects_of(repo: &TestRepo) -> Vec<KubeObject> {
    let source = GitSource::open_local(repo.path()).unwrap();
    let state = cairn_plan::loader::load(&source.snapshot("HEAD").unwrap());
    let (by_resource, errors) = objects::desired_objects(
        &state,
        COMMIT,
        &launch::launches(&state, repo.path()),
        &KubeSettings::default(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    by_resource.into_values().flatten().collect()
}

fn repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("specs/all.yaml", SPECS)
        .write("board/index.html", "hi\n");
    repo.commit("specs");
    repo
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_with_field_manager_cairn_and_is_idempotent() {
    let api = FakeApi::start(10);
    let applier = Applier::new(client(&api), ConflictPolicy::Force);
    let objects = objects_of(&repo());
    assert_eq!(
        objects.iter().map(KubeObject::describe).collect::<Vec<_>>(),
        [
            "Namespace shop",
            "ResourceQuota shop/cairn-quota",
            "Service shop/app-board",
            "Deployment shop/app-board"
        ]
    );
    let stored = applier.apply_all(&objects).await.unwrap();
    assert_eq!(stored.len(), 4);
    let patches = api.requests_with("PATCH");
    assert_eq!(patches.len(), 4);
    for p in &patches {
        assert!(
            p.query.contains(&format!("fieldManager={FIELD_MANAGER}"))
                && p.query.contains("force=true"),
            "{p:?}"
        );
    }
    assert_eq!(
        patches[3].path,
        "/apis/apps/v1/namespaces/shop/deployments/app-board"
    );
    let deployment = api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap();
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "cairn"
    );
    let rv = deployment["metadata"]["resourceVersion"].clone();

    // Applying the same objects again changes nothing.
    applier.apply_all(&objects).await.unwrap();
    let again = api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap();
    assert_eq!(again["metadata"]["resourceVersion"], rv);
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_are_taken_over_or_reported_by_policy() {
    let api = FakeApi::start(20);
    let objects = objects_of(&repo());
    let forcing = Applier::new(client(&api), ConflictPolicy::Force);
    forcing.apply_all(&objects).await.unwrap();
    // Someone scales the Deployment by hand: they own spec.replicas now.
    api.edit(
        DEPLOYMENTS,
        Some("shop"),
        "app-board",
        "kubectl-edit",
        |d| d["spec"]["replicas"] = serde_json::json!(5),
    );

    let careful = Applier::new(client(&api), ConflictPolicy::Fail);
    let deployment = objects
        .iter()
        .find(|o| o.name() == "app-board" && o.kind().as_str() == "Deployment")
        .unwrap();
    let err = careful.apply(deployment).await.unwrap_err();
    assert!(matches!(err, ApplyError::Conflict { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Deployment shop/app-board: fields are owned by another manager: Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.replicas (apply with conflicts forced to take them over)"
    );
    assert_eq!(
        api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap()["spec"]["replicas"],
        5
    );

    // The default policy: Git wins.
    forcing.apply(deployment).await.unwrap();
    assert_eq!(
        api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap()["spec"]["replicas"],
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_objects_and_refusals_are_reported_with_the_server_message() {
    let api = FakeApi::start(30);
    let applier = Applier::new(client(&api), ConflictPolicy::Force);
    let objects = objects_of(&repo());
    api.fail(
        "PATCH",
        "app-board",
        422,
        "Invalid",
        "Service \"app-board\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    let err = applier.apply_all(&objects).await.unwrap_err();
    assert!(matches!(err, ApplyError::Invalid { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Service shop/app-board was rejected as invalid: Service \"app-board\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
    );
    api.heal("PATCH", "app-board");
    api.fail("PATCH", "cairn-quota", 403, "Forbidden", "resourcequotas \"cairn-quota\" is forbidden: User \"system:serviceaccount:cairn-system:cairn\" cannot patch resource \"resourcequotas\"");
    let err = applier.apply_all(&objects).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "ResourceQuota shop/cairn-quota: resourcequotas \"cairn-quota\" is forbidden: User \"system:serviceaccount:cairn-system:cairn\" cannot patch resource \"resourcequotas\" (403, Forbidden)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_deletes_only_labelled_objects_of_removed_specs() {
    let api = FakeApi::start(40);
    let applier = Applier::new(client(&api), ConflictPolicy::Force);
    let objects = objects_of(&repo());
    applier.apply_all(&objects).await.unwrap();
    // An object of someone else in the same namespace, and one that merely
    // claims to be Cairn's but names no resource.
    api.put(
        DEPLOYMENTS,
        Some("shop"),
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "postgres", "namespace": "shop", "labels": {"app": "postgres"}}}),
    );
    api.put(
        SERVICES,
        Some("shop"),
        serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "half", "namespace": "shop",
                         "labels": {"app.kubernetes.io/managed-by": "cairn"}}}),
    );
    let board = cairn_spec::ResourceKey {
        kind: cairn_spec::Kind::Application,
        project: Some("shop".parse().unwrap()),
        name: "board".parse().unwrap(),
    };
    let project = cairn_spec::ResourceKey {
        kind: cairn_spec::Kind::Project,
        project: None,
        name: "shop".parse().unwrap(),
    };

    // A repository that failed to load prunes nothing, whatever is missing.
    let nothing = BTreeSet::new();
    assert!(
        applier
            .prune_orphans(&nothing, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(api.requests_with("DELETE").is_empty());

    // Still desired: kept.
    let desired = BTreeSet::from([board.clone(), project.clone()]);
    assert!(
        applier
            .prune_orphans(&desired, true)
            .await
            .unwrap()
            .is_empty()
    );

    // The application's spec was removed from a clean repository.
    let desired = BTreeSet::from([project.clone()]);
    let deleted = applier.prune_orphans(&desired, true).await.unwrap();
    assert_eq!(
        deleted,
        ["Service shop/app-board", "Deployment shop/app-board"]
    );
    let deletes: Vec<String> = api
        .requests_with("DELETE")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deletes,
        [
            "/api/v1/namespaces/shop/services/app-board",
            "/apis/apps/v1/namespaces/shop/deployments/app-board"
        ]
    );
    assert!(api.get(DEPLOYMENTS, Some("shop"), "postgres").is_some());
    assert!(api.get(SERVICES, Some("shop"), "half").is_some());

    // Even with nothing desired, the namespace itself is never pruned.
    applier.prune_orphans(&BTreeSet::new(), true).await.unwrap();
    assert!(api.get("/api/v1/namespaces", None, "shop").is_some());
    assert!(
        api.get("/api/v1/resourcequotas", Some("shop"), "cairn-quota")
            .is_none()
    );
}
