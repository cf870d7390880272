//! `cairn validate` and `cairn plan` against real Git repositories.

use cairn_test_support::{TestRepo, cairn, write_valid};
use predicates::prelude::*;
use serde_json::Value;

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).expect("valid JSON on stdout")
}

#[test]
fn validate_accepts_a_clean_repository_and_names_the_commit() {
    let repo = TestRepo::new();
    write_valid(&repo);
    let id = repo.commit("initial specs");
    cairn()
        .args(["validate", &repo.arg()])
        .assert()
        .success()
        .stderr(predicate::str::contains("ok: 5 specs in 3 files valid"))
        .stderr(predicate::str::contains(&id[..12]));

    let out = cairn()
        .args(["validate", &repo.arg(), "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = json(&out.stdout);
    assert_eq!(v["valid"], true);
    assert_eq!(v["resources"], 5);
    assert_eq!(v["origin"]["type"], "commit");
    assert_eq!(v["origin"]["id"], id);
    assert_eq!(v["origin"]["author"], "Ada Lovelace");
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 0);
}

#[test]
fn validate_reports_every_error_with_file_line_and_column() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.write(
        "specs/broken.yaml",
        "apiVersion: cairn/v1
kind: Job
metadata:
  name: eval
spec:
  command: [python3, eval.py]
  dependOn: [train]
  timeout: 10
  retries: many
---
apiVersion: cairn/v1
kind: Modle
metadata:
  name: other
spec: {}
",
    );
    repo.commit("broken");
    let out = cairn()
        .args(["validate", &repo.arg(), "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out.stdout);
    let diags = v["diagnostics"].as_array().unwrap();
    let found: Vec<(String, u64, u64)> = diags
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("unknown-field".to_string(), 7, 3),
            ("invalid-value".to_string(), 8, 12),
            ("invalid-type".to_string(), 9, 12),
            ("unknown-kind".to_string(), 12, 7),
        ]
    );
    assert_eq!(diags[0]["hint"], "did you mean `dependsOn`?");
    assert_eq!(diags[3]["hint"], "did you mean `Model`?");
    assert!(diags.iter().all(|d| d["file"] == "specs/broken.yaml"));

    // Human output shows the offending line under its location.
    cairn()
        .args(["validate", &repo.arg()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("specs/broken.yaml:7:3"))
        .stderr(predicate::str::contains("  dependOn: [train]"))
        .stderr(predicate::str::contains("hint: did you mean `dependsOn`?"))
        .stderr(predicate::str::contains("error: 4 errors"));
}

#[test]
fn validate_reads_the_commit_not_the_work_tree() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("valid");
    repo.write("specs/model.yaml", "kind: [unclosed\n");
    cairn().args(["validate", &repo.arg()]).assert().success();
    cairn()
        .args(["validate", &repo.arg(), "--worktree"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("yaml-syntax"));
    // Staged, as a pre-commit hook sees it.
    repo.stage();
    cairn()
        .args(["validate", &repo.arg(), "--staged"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the staged changes"));
}

#[test]
fn validate_takes_a_revision() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("valid");
    repo.branch("stable");
    repo.write("specs/model.yaml", "apiVersion: cairn/v1\nkind: Model\n");
    repo.commit("break the model");
    cairn().args(["validate", &repo.arg()]).assert().code(1);
    cairn()
        .args(["validate", &repo.arg(), "--rev", "stable"])
        .assert()
        .success();
    cairn()
        .args(["validate", &repo.arg(), "--rev", "HEAD~1"])
        .assert()
        .success();
    cairn()
        .args(["validate", &repo.arg(), "--rev", "stabel"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("revision `stabel` not found"))
        .stderr(predicate::str::contains("did you mean `stable`?"));
}

#[test]
fn validate_finds_the_repository_above_a_spec_directory() {
    let repo = TestRepo::new();
    repo.write("README.md", "# a monorepo\n");
    repo.write("ml/specs.yaml", cairn_test_support::PROJECT);
    repo.write("ml/.github/workflow.yaml", "on: push\n");
    repo.write("other/not-a-spec.yaml", "services: {}\n");
    repo.commit("monorepo");
    cairn()
        .args(["validate", &format!("{}/ml", repo.arg())])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 specs in 1 file"));
}

#[test]
fn cairn_yaml_sets_the_spec_root_and_ignores() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.write(
        "deploy/docker-compose.yaml",
        "services: {web: {image: x}}\n",
    );
    repo.write("specs/generated/skip.yaml", "not: [a spec\n");
    repo.write(
        "cairn.yaml",
        "ignore: ['specs/generated/**']\nspecRoot: .\n",
    );
    repo.commit("with config");
    // docker-compose.yaml is under the spec root and not ignored: reported.
    cairn()
        .args(["validate", &repo.arg()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("deploy/docker-compose.yaml"));
    repo.write(
        "cairn.yaml",
        "specRoot: specs\nignore: ['specs/generated/**']\n",
    );
    repo.commit("spec root");
    cairn().args(["validate", &repo.arg()]).assert().success();
    repo.write("cairn.yaml", "specRoot: specs\nignores: []\n");
    repo.commit("typo");
    cairn()
        .args(["validate", &repo.arg()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cairn.yaml:2:1"))
        .stderr(predicate::str::contains("did you mean `ignore`?"));
}

#[test]
fn validate_clones_a_remote_repository_and_fetches_updates() {
    let upstream = TestRepo::new();
    write_valid(&upstream);
    upstream.commit("initial");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", upstream.arg());
    let out = cairn()
        .args([
            "validate",
            &url,
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = json(&out.stdout)["origin"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    upstream.write(
        "specs/model.yaml",
        "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: scorer}\nspec: {runtime: onnx}\n",
    );
    let second = upstream.commit("break");
    let out = cairn()
        .args([
            "validate",
            &url,
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out.stdout);
    assert_eq!(v["origin"]["id"], second);
    assert_ne!(first, second);
    assert_eq!(v["diagnostics"][0]["code"], "missing-field");
    // The clone is a cache entry, not a work tree.
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("repos"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn plan_lists_ordered_actions_with_field_diffs() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.write("specs/old.yaml", "apiVersion: cairn/v1\nkind: Dataset\nmetadata: {name: legacy}\nspec: {source: warehouse.legacy}\n");
    repo.commit("v1");
    repo.write(
        "specs/model.yaml",
        cairn_test_support::MODEL.replace("replicas: 2", "replicas: 3"),
    );
    repo.remove("specs/old.yaml");
    repo.write(
        "specs/eval.yaml",
        "apiVersion: cairn/v1\nkind: Job\nmetadata: {name: eval}\nspec: {command: [python3, eval.py], dependsOn: [train]}\n",
    );
    repo.commit("v2");

    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("+ Job churn/eval  (specs/eval.yaml)"),
        "{text}"
    );
    assert!(text.contains("~ Model churn/scorer"), "{text}");
    assert!(text.contains("spec.replicas: 2 → 3"), "{text}");
    assert!(
        text.contains("- Dataset churn/legacy  (was in specs/old.yaml)"),
        "{text}"
    );
    assert!(
        text.contains("1 to create, 1 to update, 1 to delete (4 unchanged)."),
        "{text}"
    );
    // Creates before updates of later kinds, deletions last.
    let create = text.find("+ Job").unwrap();
    let update = text.find("~ Model").unwrap();
    let delete = text.find("- Dataset").unwrap();
    assert!(create < update && update < delete);

    let out = cairn()
        .args([
            "plan",
            &repo.arg(),
            "--from",
            "HEAD~1",
            "--to",
            "HEAD",
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("### Cairn plan: `HEAD~1"), "{md}");
    assert!(
        md.contains("**1 to create, 1 to update, 1 to delete (4 unchanged)**"),
        "{md}"
    );
    assert!(
        md.contains("| ➕ | Job | `churn/eval` | `specs/eval.yaml` | create |"),
        "{md}"
    );
    assert!(
        md.contains(
            "```diff\n@@ Model churn/scorer @@\n- spec.replicas: 2\n+ spec.replicas: 3\n```"
        ),
        "{md}"
    );

    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~1", "--format", "json"])
        .output()
        .unwrap();
    let v = json(&out.stdout);
    assert_eq!(v["summary"]["create"], 1);
    assert_eq!(v["summary"]["delete"], 1);
    let ops: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "unchanged").count(), 4);
}

#[test]
fn a_broken_file_never_plans_the_deletion_of_what_it_described() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("v1");
    // The model's file gets a syntax error in the same change that edits a job.
    repo.write(
        "specs/model.yaml",
        "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: scorer\n",
    );
    repo.write(
        "specs/jobs.yaml",
        cairn_test_support::JOBS.replace("prep.py]", "prep.py, --fast]"),
    );
    repo.commit("oops");
    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors in the new state fail the plan"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("! Model churn/scorer  kept:"), "{text}");
    assert!(text.contains("0 to delete, 1 deletion held"), "{text}");
    assert!(text.contains("~ Job churn/prep"), "{text}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("specs/model.yaml:3:"), "{stderr}");

    // A type error in the model's own document also holds it, by name.
    repo.write(
        "specs/model.yaml",
        cairn_test_support::MODEL.replace("replicas: 2", "replicas: two"),
    );
    repo.commit("type error");
    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~2", "--format", "json"])
        .output()
        .unwrap();
    let v = json(&out.stdout);
    assert_eq!(v["summary"]["delete"], 0);
    assert_eq!(v["summary"]["hold"], 1);

    // Really removing the file deletes the model.
    repo.remove("specs/model.yaml");
    repo.commit("remove model");
    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~3", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = json(&out.stdout);
    assert_eq!(v["summary"]["delete"], 1);
}

#[test]
fn plan_of_the_staged_change() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("v1");
    repo.write(
        "specs/model.yaml",
        cairn_test_support::MODEL.replace("replicas: 2", "replicas: 4"),
    );
    repo.stage();
    cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD", "--staged"])
        .assert()
        .success()
        .stdout(predicate::str::contains("spec.replicas: 2 → 4"));
}

#[test]
fn validate_warns_when_a_kubernetes_workload_has_no_image() {
    let repo = TestRepo::new();
    repo.write(
        "specs.yaml",
        "apiVersion: cairn/v1
kind: Project
metadata: {name: ml}
spec: {defaultPool: gpu-cluster}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: gpu-cluster}
spec: {kubernetes: {namespace: ml}}
---
apiVersion: cairn/v1
kind: Environment
metadata: {name: torch}
spec: {packages: [torch], image: ghcr.io/example/torch:2}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: no-image}
spec: {command: [python, train.py]}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: env-image}
spec: {command: [python, train.py], environment: torch}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: own-image}
spec: {command: [python, train.py], image: python:3.11}
",
    );
    repo.commit("k8s");
    let out = cairn()
        .args(["validate", &repo.arg(), "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "a warning does not fail validation");
    let v = json(&out.stdout);
    let diags = v["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["severity"], "warning");
    assert_eq!(diags[0]["code"], "missing-image");
    assert!(
        diags[0]["message"]
            .as_str()
            .unwrap()
            .contains("Job ml/no-image")
    );
    cairn()
        .args(["validate", &repo.arg()])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning[missing-image]"))
        .stderr(predicate::str::contains("1 warning"));
}

#[test]
fn a_change_of_code_is_a_change_of_the_workloads_that_run_it() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("v1");
    repo.write("jobs/prep.py", "print('prep, faster')\n");
    repo.commit("new code, same specs");
    let out = cairn()
        .args(["plan", &repo.arg(), "--from", "HEAD~1", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = json(&out.stdout);
    let updated: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["op"] == "update")
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(updated, ["prep", "train"], "both jobs run code from jobs/");
    let fields = &v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "prep")
        .unwrap()["fields"];
    assert_eq!(fields[0]["path"], "sources.workdir");
    // The model runs no code of the repository: unchanged.
    assert_eq!(v["summary"]["update"], 2);
}

#[test]
fn a_change_of_access_shows_in_the_plan() {
    let repo = TestRepo::new();
    write_valid(&repo);
    repo.commit("v1");
    repo.write(
        "specs/project.yaml",
        cairn_test_support::PROJECT.replace(
            "  defaultPool: local\n",
            "  defaultPool: local\n  access:\n    - {role: editor, groups: [ml]}\n",
        ),
    );
    repo.commit("ml may edit churn");
    let out = cairn()
        .args([
            "plan",
            &repo.arg(),
            "--from",
            "HEAD~1",
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{md}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(md.contains("@@ Project churn @@"), "{md}");
    assert!(md.contains("spec.access"), "{md}");
    assert!(md.contains("editor") && md.contains("ml"), "{md}");

    // A grant that names no one, or a role that does not exist, is an error
    // at its line.
    repo.write(
        "specs/project.yaml",
        cairn_test_support::PROJECT.replace(
            "  defaultPool: local\n",
            "  defaultPool: local\n  access:\n    - {role: editor}\n    - {role: superuser, users: [a@example.com]}\n",
        ),
    );
    let out = cairn()
        .args(["validate", &repo.arg(), "--worktree"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("specs/project.yaml:"), "{text}");
    assert!(text.contains("superuser"), "{text}");
}
