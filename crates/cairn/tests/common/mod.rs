//! Shared helpers for integration tests: real Git repositories in temporary
//! directories, committed to with git2.

#![allow(dead_code)]

pub mod kube_api;
pub mod up;

use std::path::{Path, PathBuf};

/// A Git repository in a temporary directory.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
}

impl TestRepo {
    /// An empty repository with `main` as its initial branch.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir.path(), &opts).expect("git init");
        TestRepo { dir, repo }
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The work tree as a string argument.
    pub fn arg(&self) -> String {
        self.path().to_str().expect("utf-8 path").to_string()
    }

    /// Writes a file in the work tree (creating directories).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> &Self {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, contents).expect("write");
        self
    }

    /// Removes a file from the work tree.
    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.path().join(path)).expect("remove");
        self
    }

    /// Creates a symlink in the work tree.
    pub fn symlink(&self, link: &str, target: &str) -> &Self {
        let full = self.path().join(link);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, full).expect("symlink");
        self
    }

    /// Stages everything (additions, changes and removals).
    pub fn stage(&self) -> git2::Oid {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        index.write_tree().expect("write tree")
    }

    /// Stages everything and commits on the current branch; returns the id.
    pub fn commit(&self, message: &str) -> String {
        let tree_id = self.stage();
        let tree = self.repo.find_tree(tree_id).expect("tree");
        let sig = git2::Signature::now("Ada Lovelace", "ada@example.com").expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    /// Creates a branch at HEAD.
    pub fn branch(&self, name: &str) {
        let head = self.repo.head().unwrap().peel_to_commit().unwrap();
        self.repo.branch(name, &head, true).expect("branch");
    }
}

/// The `cairn` binary under test.
pub fn cairn() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("cairn").expect("binary built");
    cmd.env("NO_COLOR", "1").env_remove("CAIRN_CACHE_DIR");
    cmd
}

/// A small valid spec repository: a project, a pool, a two-job pipeline and a model.
pub const PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: churn
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
";

pub const JOBS: &str = "apiVersion: cairn/v1
kind: Job
metadata:
  name: prep
spec:
  command: [python3, prep.py]
  workdir: jobs
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: [python3, train.py]
  workdir: jobs
  dependsOn: [prep]
  outputs:
    - {name: model, path: model.onnx}
";

pub const MODEL: &str = "apiVersion: cairn/v1
kind: Model
metadata:
  name: scorer
spec:
  runtime: onnx
  from: {job: train, output: model}
  replicas: 2
";

/// Writes the small valid repository into `repo`.
pub fn write_valid(repo: &TestRepo) {
    repo.write("specs/project.yaml", PROJECT)
        .write("specs/jobs.yaml", JOBS)
        .write("specs/model.yaml", MODEL)
        .write("jobs/prep.py", "print('prep')\n")
        .write("jobs/train.py", "print('train')\n");
}

/// A path inside the repository's `.git` directory.
pub fn git_dir(repo: &TestRepo) -> PathBuf {
    repo.repo.path().to_path_buf()
}

/// The quickstart's classifier and sample requests, from this crate's directory.
pub const CLASSIFIER: &str = "../../examples/quickstart/models/classifier.onnx";
pub const SAMPLE_REQUEST: &str = "../../examples/quickstart/data/sample-request.json";
pub const SAMPLE_BATCH: &str = "../../examples/quickstart/data/sample-batch.json";

/// A project (`lab`) whose default pool is this machine.
pub const LAB_PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
";

/// The quickstart classifier served as `clf`, with its signature.
pub const CLF_MODEL: &str = "apiVersion: cairn/v1
kind: Model
metadata:
  name: clf
spec:
  runtime: onnx
  artifact: models/classifier.onnx
  task: classification
  signature:
    inputs:
      - {name: mean_radius, type: float}
      - {name: mean_texture, type: float}
      - {name: mean_smoothness, type: float}
      - {name: worst_concavity, type: float}
    outputs:
      - {name: label, type: int}
      - {name: probabilities, type: float, shape: [2]}
";
