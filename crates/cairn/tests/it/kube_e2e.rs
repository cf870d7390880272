//! Opt-in: the quickstart on a real cluster. Runs only when
//! `CAIRN_E2E_KUBECONFIG` names a kubeconfig (kind or k3d; see
//! docs/operations.md), and is skipped otherwise.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Service};
use kube::api::{Api, DeleteParams};
use std::path::Path;
use std::time::{Duration, Instant};

/// The project's namespace on the cluster; unique per run.
fn namespace() -> String {
    format!("cairn-e2e-{}", std::process::id())
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn client(kubeconfig: &str) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_runs_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("CAIRN_E2E_KUBECONFIG") else {
        eprintln!("skipped: set CAIRN_E2E_KUBECONFIG to run against a cluster");
        return;
    };
    let ns = namespace();
    let repo = TestRepo::new();
    copy_dir(Path::new(cairn_test_support::QUICKSTART), repo.path());
    // The quickstart's project, named for this run, on a Kubernetes pool.
    let project = std::fs::read_to_string(repo.path().join("specs/project.yaml"))
        .unwrap()
        .replace("name: quickstart", &format!("name: {ns}"))
        .replace("  local: {}", "  kubernetes: {}");
    repo.write("specs/project.yaml", project);
    repo.write(
        "specs/app.yaml",
        std::fs::read_to_string(repo.path().join("specs/app.yaml"))
            .unwrap()
            .replace(
                "  path: app\n",
                "  path: app\n  environment: {image: \"python:3.12-slim\"}\n",
            ),
    );
    let commit = repo.commit("quickstart on Kubernetes");
    let state = tempfile::tempdir().unwrap();
    let image =
        std::env::var("CAIRN_E2E_IMAGE").unwrap_or_else(|_| "ghcr.io/cairn-ml/cairn:dev".into());
    let up = Up::start(
        repo.path(),
        &state.path().join("data"),
        &[
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--image",
            &image,
            "--repo-url",
            "https://github.com/cairn-ml/cairn-quickstart.git",
        ],
        &[],
    );
    up.wait_synced(&commit);
    let client = client(&kubeconfig).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces.get(&ns).await.unwrap();
    assert_eq!(
        created.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "cairn"
    );
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("cairn-quota")
        .await
        .unwrap();
    assert_eq!(quota.spec.unwrap().hard.unwrap()["requests.cpu"].0, "4");
    let cronjobs = Api::<CronJob>::namespaced(client.clone(), &ns);
    let train = cronjobs.get("job-train").await.unwrap();
    assert_eq!(
        train.spec.as_ref().unwrap().time_zone.as_deref(),
        Some("Europe/Paris")
    );
    assert!(
        train
            .metadata
            .managed_fields
            .unwrap()
            .iter()
            .any(|f| f.manager.as_deref() == Some("cairn")
                && f.operation.as_deref() == Some("Apply"))
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let model = deployments.get("model-classifier").await.unwrap();
    assert_eq!(model.spec.unwrap().replicas, Some(2));
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    services.get("app-demo").await.unwrap();

    // Status comes back from the cluster.
    up.wait_for(
        Duration::from_secs(60),
        "the model's status from the cluster",
        || {
            let r = up.resource("Model", "classifier")?;
            r["message"]
                .as_str()?
                .contains("replicas available")
                .then_some(())
        },
    );

    // Removing the application's spec prunes its objects.
    repo.remove("specs/app.yaml");
    let removed = repo.commit("retire the demo app");
    up.wait_synced(&removed);
    eventually("the app's Deployment to go", async || {
        deployments
            .get_opt("app-demo")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        deployments
            .get_opt("model-classifier")
            .await
            .unwrap()
            .is_some()
    );

    drop(up);
    namespaces
        .delete(&ns, &DeleteParams::background())
        .await
        .unwrap();
}
