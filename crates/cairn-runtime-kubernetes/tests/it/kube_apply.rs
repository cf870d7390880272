//! Server-side apply, conflicts, invalid objects and pruning (only of
//! objects whose UIDs Cairn recorded), against the in-process fake API
//! server (`cairn_test_support::kube_api`) at the HTTP boundary.

use cairn_runtime_kubernetes::apply::{Applier, ApplyError, ConflictPolicy, FIELD_MANAGER};
use cairn_runtime_kubernetes::launch;
use cairn_runtime_kubernetes::objects::{self, KubeObject, KubeSettings};
use cairn_source::GitSource;
use cairn_spec::{Kind, ResourceKey};
use cairn_store::Store;
use cairn_test_support::TestRepo;
use cairn_test_support::kube_api::FakeApi;
use std::collections::BTreeSet;
use std::sync::Arc;

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

fn store() -> Arc<Store> {
    Arc::new(Store::open_in_memory().unwrap())
}

fn board() -> ResourceKey {
    ResourceKey {
        kind: Kind::Application,
        project: Some("shop".parse().unwrap()),
        name: "board".parse().unwrap(),
    }
}

fn project() -> ResourceKey {
    ResourceKey {
        kind: Kind::Project,
        project: None,
        name: "shop".parse().unwrap(),
    }
}

/// `path uid` of every DELETE, with the UID of its precondition.
fn deletes(api: &FakeApi) -> Vec<String> {
    api.requests_with("DELETE")
        .iter()
        .map(|r| {
            let body = r.body.clone().unwrap_or_default();
            format!(
                "{} {}",
                r.path,
                body["preconditions"]["uid"]
                    .as_str()
                    .unwrap_or("(no precondition)")
            )
        })
        .collect()
}

fn uid(object: &serde_json::Value) -> String {
    object["metadata"]["uid"].as_str().unwrap().to_string()
}

/// The `prune-skipped` audit entries, oldest first.
fn skipped(store: &Store) -> Vec<String> {
    let mut entries: Vec<String> = store
        .audit_log(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "prune-skipped")
        .map(|e| format!("{}: {}", e.resource.unwrap_or_default(), e.detail))
        .collect();
    entries.reverse();
    entries
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
    let applier = Applier::new(client(&api), ConflictPolicy::Force, store());
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
    let forcing = Applier::new(client(&api), ConflictPolicy::Force, store());
    forcing.apply_all(&objects).await.unwrap();
    // Someone scales the Deployment by hand: they own spec.replicas now.
    api.edit(
        DEPLOYMENTS,
        Some("shop"),
        "app-board",
        "kubectl-edit",
        |d| d["spec"]["replicas"] = serde_json::json!(5),
    );

    let careful = Applier::new(client(&api), ConflictPolicy::Fail, store());
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
    let applier = Applier::new(client(&api), ConflictPolicy::Force, store());
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
    let applier = Applier::new(client(&api), ConflictPolicy::Force, store());
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
    let (board, project) = (board(), project());

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
        ["Deployment shop/app-board", "Service shop/app-board"]
    );
    let paths: Vec<String> = api
        .requests_with("DELETE")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/namespaces/shop/deployments/app-board",
            "/api/v1/namespaces/shop/services/app-board"
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

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_deleted_with_their_recorded_uid_as_a_precondition() {
    let api = FakeApi::start(50);
    let store = store();
    let applier = Applier::new(client(&api), ConflictPolicy::Fail, store.clone());
    let objects = objects_of(&repo());
    applier.apply_all(&objects).await.unwrap();
    let recorded: Vec<String> = store
        .kube_objects(None)
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}/{} {}",
                r.resource.id(),
                r.api_version,
                r.namespace.as_deref().unwrap_or(""),
                r.name,
                r.kind
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            "Application/shop/board apps/v1 shop/app-board Deployment",
            "Application/shop/board v1 shop/app-board Service",
            "Project//shop v1 /shop Namespace",
            "Project//shop v1 shop/cairn-quota ResourceQuota",
        ]
    );
    let deployment = uid(&api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap());
    let service = uid(&api.get(SERVICES, Some("shop"), "app-board").unwrap());
    assert_ne!(deployment, service);

    let deleted = applier.prune_resource(&board(), &[], true).await.unwrap();
    assert_eq!(
        deleted,
        ["Deployment shop/app-board", "Service shop/app-board"]
    );
    assert_eq!(
        deletes(&api),
        [
            format!("/apis/apps/v1/namespaces/shop/deployments/app-board {deployment}"),
            format!("/api/v1/namespaces/shop/services/app-board {service}"),
        ]
    );
    // Deleted objects are forgotten; the project's are kept.
    assert!(store.kube_objects(Some(&board())).unwrap().is_empty());
    assert_eq!(store.kube_objects(Some(&project())).unwrap().len(), 2);
    assert!(skipped(&store).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_objects_cairn_did_not_create_are_left_alone_and_reported() {
    let api = FakeApi::start(60);
    let store = store();
    let applier = Applier::new(client(&api), ConflictPolicy::Fail, store.clone());
    applier.apply_all(&objects_of(&repo())).await.unwrap();
    // Someone copies the application's labels onto an object of their own.
    let labels =
        api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap()["metadata"]["labels"].clone();
    let intruder = api.put(
        DEPLOYMENTS,
        Some("shop"),
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "lookalike", "namespace": "shop", "labels": labels}}),
    );

    // The resource's own prune (its spec deleted) leaves it alone.
    let deleted = applier.prune_resource(&board(), &[], true).await.unwrap();
    assert_eq!(
        deleted,
        ["Deployment shop/app-board", "Service shop/app-board"]
    );
    assert!(api.get(DEPLOYMENTS, Some("shop"), "lookalike").is_some());
    assert!(
        deletes(&api).iter().all(|d| !d.contains("lookalike")),
        "{:?}",
        deletes(&api)
    );
    let expected = format!(
        "Application/shop/board: Deployment shop/lookalike not pruned: it carries Cairn's labels but Cairn did not create it (UID {intruder} not recorded); left alone"
    );
    assert_eq!(skipped(&store), std::slice::from_ref(&expected));

    // So does the sweep for orphans, and the object is reported once.
    let deleted = applier
        .prune_orphans(&BTreeSet::from([project()]), true)
        .await
        .unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    assert!(api.get(DEPLOYMENTS, Some("shop"), "lookalike").is_some());
    assert_eq!(skipped(&store), [expected]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_same_named_object_re_created_by_someone_else_survives_the_prune() {
    let api = FakeApi::start(70);
    let store = store();
    let applier = Applier::new(client(&api), ConflictPolicy::Fail, store.clone());
    applier.apply_all(&objects_of(&repo())).await.unwrap();
    let ours = api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap();
    // Deleted behind Cairn's back and created again, labels and all, by
    // someone else: same name, new UID.
    api.delete(DEPLOYMENTS, Some("shop"), "app-board");
    let mut theirs = ours.clone();
    theirs["metadata"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "name" || k == "namespace" || k == "labels");
    let theirs = api.put(DEPLOYMENTS, Some("shop"), theirs);
    assert_ne!(theirs, uid(&ours));

    let deleted = applier
        .prune_orphans(&BTreeSet::from([project()]), true)
        .await
        .unwrap();
    assert_eq!(deleted, ["Service shop/app-board"]);
    // The delete was tried with the old UID and refused (409): the new
    // object is still there, and reported.
    assert_eq!(
        deletes(&api)[0],
        format!(
            "/apis/apps/v1/namespaces/shop/deployments/app-board {}",
            uid(&ours)
        )
    );
    let survivor = api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap();
    assert_eq!(uid(&survivor), theirs);
    assert!(store.kube_objects(Some(&board())).unwrap().is_empty());
    assert_eq!(
        skipped(&store),
        [format!(
            "Application/shop/board: Deployment shop/app-board not pruned: it carries Cairn's labels but Cairn did not create it (UID {theirs} not recorded); left alone"
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fake_api_server_refuses_a_delete_whose_uid_precondition_fails() {
    let api = FakeApi::start(80);
    let applier = Applier::new(client(&api), ConflictPolicy::Fail, store());
    applier.apply_all(&objects_of(&repo())).await.unwrap();
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client(&api), "shop");
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-its-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = deployments.delete("app-board", &params).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let actual = uid(&api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap());
    assert_eq!(
        status.message,
        format!(
            "Operation cannot be fulfilled on deployments.apps \"app-board\": Precondition failed: UID in precondition: not-its-uid, UID in object meta: {actual}"
        )
    );
    assert!(api.get(DEPLOYMENTS, Some("shop"), "app-board").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_a_restart_and_objects_applied_before_them_are_adopted() {
    let api = FakeApi::start(90);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let objects = objects_of(&repo());
    let shop = ["shop".to_string()];
    {
        let store = Arc::new(Store::open(&path).unwrap());
        let applier = Applier::new(client(&api), ConflictPolicy::Fail, store).within(&shop);
        applier.apply_all(&objects).await.unwrap();
    }
    let deployment = uid(&api.get(DEPLOYMENTS, Some("shop"), "app-board").unwrap());

    // A new process, the same store: the records are still there.
    let store = Arc::new(Store::open(&path).unwrap());
    let applier = Applier::new(client(&api), ConflictPolicy::Fail, store.clone()).within(&shop);
    let deleted = applier
        .prune_orphans(&BTreeSet::from([project()]), true)
        .await
        .unwrap();
    assert_eq!(
        deleted,
        ["Deployment shop/app-board", "Service shop/app-board"]
    );
    assert!(
        deletes(&api)[0].ends_with(&deployment),
        "{:?}",
        deletes(&api)
    );
    // Confined to its namespaces, the applier lists namespaced kinds in them only.
    for r in api.requests_with("GET") {
        assert!(
            r.path.starts_with("/api/v1/namespaces/shop/")
                || r.path.starts_with("/apis/apps/v1/namespaces/shop/")
                || r.path.starts_with("/apis/batch/v1/namespaces/shop/")
                || r.path == "/api/v1/namespaces",
            "{} {}",
            r.path,
            r.query
        );
    }

    // Objects applied before UIDs were recorded (a store without records):
    // never pruned, only reported, until Cairn applies them again.
    applier.apply_all(&objects).await.unwrap();
    let fresh = Arc::new(Store::open_in_memory().unwrap());
    let upgraded = Applier::new(client(&api), ConflictPolicy::Fail, fresh.clone());
    let before = api.requests_with("DELETE").len();
    let deleted = upgraded
        .prune_orphans(&BTreeSet::from([project()]), true)
        .await
        .unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    assert_eq!(api.requests_with("DELETE").len(), before);
    assert_eq!(skipped(&fresh).len(), 2, "{:?}", skipped(&fresh));
    let board_objects: Vec<_> = objects
        .iter()
        .filter(|o| o.name() == "app-board")
        .cloned()
        .collect();
    let adopted = upgraded.adopt(&board(), &board_objects).await.unwrap();
    assert_eq!(
        adopted,
        ["Service shop/app-board", "Deployment shop/app-board"]
    );
    assert!(
        upgraded
            .adopt(&board(), &board_objects)
            .await
            .unwrap()
            .is_empty()
    );
    let deleted = upgraded
        .prune_orphans(&BTreeSet::from([project()]), true)
        .await
        .unwrap();
    assert_eq!(
        deleted,
        ["Deployment shop/app-board", "Service shop/app-board"]
    );
}
