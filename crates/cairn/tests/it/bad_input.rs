//! Hostile or broken input that cannot be committed as a text fixture: each
//! case builds a real Git repository in a temporary directory (committed with
//! git2, symlinks included), runs the `cairn` binary on it and checks that it
//! fails cleanly, with exit status 1, no panic, and a diagnostic that names
//! the problem; or, for harmless oddities, that it passes.

use assert_cmd::Command;
use git2::{IndexAddOption, Repository, Signature};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use tempfile::TempDir;

/// A valid project, so that the case under test is the only problem.
const PROJECT: &str = "\
apiVersion: cairn/v1
kind: Project
metadata:
  name: demo
spec: {}
";

/// A new Git repository holding `files` (path, contents), not yet committed.
fn repo_with(files: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    Repository::init(dir.path()).expect("git init");
    for (path, contents) in files {
        write(dir.path(), path, contents);
    }
    dir
}

fn write(root: &Path, path: &str, contents: &[u8]) {
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).expect("create directories");
    }
    std::fs::write(full, contents).expect("write file");
}

#[cfg(unix)]
fn symlink(root: &Path, link: &str, target: &str) {
    std::os::unix::fs::symlink(target, root.join(link)).expect("create symlink");
}

/// Commits everything in the work tree (symlinks as symlinks) on HEAD.
fn commit_all(root: &Path) {
    let repo = Repository::open(root).expect("open repository");
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], IndexAddOption::DEFAULT, None)
        .expect("git add");
    index.write().expect("write index");
    let tree_id = index.write_tree().expect("write tree");
    let tree = repo.find_tree(tree_id).expect("tree");
    let signature = Signature::now("Cairn Tests", "tests@example.com").expect("signature");
    repo.commit(Some("HEAD"), &signature, &signature, "specs", &tree, &[])
        .expect("commit");
}

/// What `cairn validate` did.
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("overflowed its stack"),
            "cairn crashed:\n{}",
            self.stderr
        );
    }

    /// The diagnostics with `code`, after checking that validation failed
    /// with exit status 1 and at least one of them.
    fn failed_with(&self, code: &str) -> Vec<Value> {
        self.assert_no_panic();
        assert_eq!(
            self.status,
            Some(1),
            "expected exit status 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        let json = self.json();
        assert_eq!(json["valid"], Value::Bool(false), "{json:#}");
        let found: Vec<Value> = json["diagnostics"]
            .as_array()
            .expect("diagnostics array")
            .iter()
            .filter(|d| d["code"] == code)
            .cloned()
            .collect();
        assert!(!found.is_empty(), "no `{code}` diagnostic in\n{json:#}");
        found
    }

    /// Checks that validation passed.
    fn passed(&self) -> Value {
        self.assert_no_panic();
        assert_eq!(
            self.status,
            Some(0),
            "expected exit status 0\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        let json = self.json();
        assert_eq!(json["valid"], Value::Bool(true), "{json:#}");
        assert_eq!(json["errors"], 0, "{json:#}");
        json
    }
}

fn cairn(args: &[&str]) -> Outcome {
    let output = Command::new(cairn_test_support::cairn_binary())
        .args(args)
        .arg("--color=never")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run cairn");
    Outcome {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn validate_json(root: &Path) -> Outcome {
    cairn(&[
        "validate",
        root.to_str().expect("UTF-8 path"),
        "--output",
        "json",
    ])
}

/// The only diagnostic of the run, which must have `code`.
fn only(outcome: &Outcome, code: &str) -> Value {
    let found = outcome.failed_with(code);
    let json = outcome.json();
    assert_eq!(json["errors"], 1, "expected one error only:\n{json:#}");
    found.into_iter().next().expect("one diagnostic")
}

#[test]
fn non_utf8_file_is_reported_at_its_line() {
    let mut text = b"apiVersion: cairn/v1\nkind: Dataset\nmetadata:\n  name: customers\nspec:\n  source: warehouse.customers\n  description: caf"
        .to_vec();
    text.extend_from_slice(&[0xff, 0xfe]);
    text.extend_from_slice(b" au lait\n");
    let dir = repo_with(&[("project.yaml", PROJECT.as_bytes()), ("data.yaml", &text)]);
    commit_all(dir.path());

    let d = only(&validate_json(dir.path()), "not-utf8");
    assert_eq!(d["file"], "data.yaml", "{d:#}");
    assert_eq!(d["line"], 7, "{d:#}");
    assert_eq!(d["column"], 19, "{d:#}");
    assert!(
        d["message"].as_str().unwrap_or_default().contains("0xff"),
        "{d:#}"
    );
    assert!(d["hint"].is_string(), "{d:#}");
}

#[test]
fn hundred_megabyte_file_is_refused_unread() {
    let dir = repo_with(&[("project.yaml", PROJECT.as_bytes())]);
    {
        let line = b"# xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
        let chunk: Vec<u8> = line.repeat((1 << 20) / line.len() + 1)[..1 << 20].to_vec();
        let file = std::fs::File::create(dir.path().join("big.yaml")).expect("create big.yaml");
        let mut out = std::io::BufWriter::new(file);
        for _ in 0..100 {
            out.write_all(&chunk).expect("write big.yaml");
        }
        out.flush().expect("flush big.yaml");
    }
    commit_all(dir.path());

    let d = only(&validate_json(dir.path()), "file-too-large");
    assert_eq!(d["file"], "big.yaml", "{d:#}");
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("100 MiB"),
        "{d:#}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_loop_is_reported() {
    let dir = repo_with(&[("project.yaml", PROJECT.as_bytes())]);
    symlink(dir.path(), "a.yaml", "b.yaml");
    symlink(dir.path(), "b.yaml", "a.yaml");
    commit_all(dir.path());

    let outcome = validate_json(dir.path());
    let found = outcome.failed_with("symlink-loop");
    let files: Vec<&str> = found.iter().filter_map(|d| d["file"].as_str()).collect();
    assert!(files.contains(&"a.yaml"), "{files:?}");
}

#[cfg(unix)]
#[test]
fn symlink_out_of_the_repository_is_not_followed() {
    let dir = repo_with(&[("project.yaml", PROJECT.as_bytes())]);
    symlink(dir.path(), "evil.yaml", "/etc/passwd");
    commit_all(dir.path());

    let d = only(&validate_json(dir.path()), "path-escapes");
    assert_eq!(d["file"], "evil.yaml", "{d:#}");
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/etc/passwd"),
        "{d:#}"
    );
}

#[cfg(unix)]
#[test]
fn workdir_through_a_symlink_out_of_the_repository() {
    let job = "\
apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: [python3, train.py]
  workdir: jobs/train
";
    let dir = repo_with(&[
        ("project.yaml", PROJECT.as_bytes()),
        ("job.yaml", job.as_bytes()),
    ]);
    symlink(dir.path(), "jobs", "../..");
    commit_all(dir.path());

    let d = only(&validate_json(dir.path()), "path-escapes");
    assert_eq!(d["file"], "job.yaml", "{d:#}");
    assert_eq!(d["line"], 7, "{d:#}");
    assert_eq!(d["column"], 12, "{d:#}");
}

#[test]
fn empty_and_comment_only_files_are_fine() {
    let dir = repo_with(&[
        ("project.yaml", PROJECT.as_bytes()),
        ("empty.yaml", b""),
        (
            "comments.yaml",
            b"# nothing here yet\n# TODO: add the jobs\n",
        ),
        ("separators.yaml", b"---\n# only a comment\n---\n"),
    ]);
    commit_all(dir.path());

    let json = validate_json(dir.path()).passed();
    assert_eq!(json["resources"], 1, "{json:#}");
    assert_eq!(json["files"], 4, "{json:#}");
}

/// Runs `cairn validate --output json` on a repository whose `deep.yaml`
/// holds `text`, and checks that it fails cleanly with an error in that file.
fn deep_document_fails_cleanly(text: &str) {
    let dir = repo_with(&[
        ("project.yaml", PROJECT.as_bytes()),
        ("deep.yaml", text.as_bytes()),
    ]);
    commit_all(dir.path());

    let outcome = validate_json(dir.path());
    outcome.assert_no_panic();
    assert_eq!(
        outcome.status,
        Some(1),
        "expected exit status 1 (134 is an abort, e.g. a stack overflow)\nstderr:\n{}",
        outcome.stderr
    );
    let json = outcome.json();
    assert!(
        json["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .any(|d| d["file"] == "deep.yaml" && d["severity"] == "error"),
        "no error for deep.yaml:\n{json:#}"
    );
}

const DEPTH: usize = 10_000;

#[test]
fn deeply_nested_flow_sequences_fail_cleanly() {
    deep_document_fails_cleanly(&format!("{}{}\n", "[".repeat(DEPTH), "]".repeat(DEPTH)));
}

#[test]
fn unclosed_nested_flow_sequences_fail_cleanly() {
    deep_document_fails_cleanly(&format!("{}\n", "[".repeat(DEPTH)));
}

#[test]
fn deeply_nested_flow_mappings_fail_cleanly() {
    deep_document_fails_cleanly(&format!("{}1{}\n", "{a: ".repeat(DEPTH), "}".repeat(DEPTH)));
}

/// `- - - ... x`: block sequences nest two bytes a level, and the parser's
/// recursion limit covers only flow collections.
#[test]
fn deeply_nested_block_sequences_fail_cleanly() {
    deep_document_fails_cleanly(&format!("{}x\n", "- ".repeat(DEPTH)));
}

#[test]
fn plain_scalar_document_is_not_a_spec() {
    let dir = repo_with(&[
        ("project.yaml", PROJECT.as_bytes()),
        ("notes.yaml", b"just some notes about the project\n"),
    ]);
    commit_all(dir.path());

    let d = only(&validate_json(dir.path()), "not-a-spec");
    assert_eq!(d["file"], "notes.yaml", "{d:#}");
    assert_eq!(d["line"], 1, "{d:#}");
    assert_eq!(d["column"], 1, "{d:#}");
}

#[test]
fn a_directory_that_is_not_a_repository_exits_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "project.yaml", PROJECT.as_bytes());
    let outcome = cairn(&["validate", dir.path().to_str().expect("UTF-8 path")]);
    outcome.assert_no_panic();
    assert_eq!(outcome.status, Some(2), "stderr:\n{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("not inside a Git repository"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn an_unknown_revision_exits_2() {
    let dir = repo_with(&[("project.yaml", PROJECT.as_bytes())]);
    commit_all(dir.path());
    let outcome = cairn(&[
        "validate",
        dir.path().to_str().expect("UTF-8 path"),
        "--rev",
        "nope",
    ]);
    outcome.assert_no_panic();
    assert_eq!(outcome.status, Some(2), "stderr:\n{}", outcome.stderr);
    assert!(outcome.stderr.contains("`nope`"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("revision"), "{}", outcome.stderr);
}
