//! `cairn plan --runtime kubernetes` on a real change of the `vision`
//! fixture prints the exact objects, compared with the golden file
//! `tests/golden/kubernetes/plan-change.yaml`. Regenerate it with
//! `CAIRN_BLESS=1 cargo test -p cairn --test it kube_plan`.

use cairn_test_support::{TestRepo, VISION_SPECS, cairn, write_vision};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kubernetes")
}

fn check_golden(name: &str, actual: &str) {
    cairn_test_support::check_golden(&golden_dir(), name, actual);
}

#[test]
fn plan_prints_the_exact_objects_of_a_change() {
    let repo = TestRepo::new();
    write_vision(&repo);
    let first = repo.commit("specs");
    // Scale the classifier, drop the status page, add a quota-less project.
    let changed = VISION_SPECS
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
