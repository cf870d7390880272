//! What the workspace's tests and benchmarks share: real Git repositories
//! in temporary directories, committed to with git2 ([`TestRepo`]); the
//! `cairn` binary ([`cairn`], [`cairn_binary`]) and a running `cairn up`
//! talked to over HTTP ([`up::Up`]); the quickstart's files and the
//! fixtures under `fixtures/<case>/`, by absolute path; golden files; and,
//! with the `kube-api` feature, an in-process fake Kubernetes API server
//! ([`kube_api::FakeApi`]); with the `oidc-provider` feature, a small
//! OpenID provider ([`oidc_provider::OidcProvider`]).

mod golden;
#[cfg(feature = "kube-api")]
pub mod kube_api;
#[cfg(feature = "oidc-provider")]
pub mod oidc_provider;
mod paths;
pub mod python;
pub mod up;

pub use golden::check_golden;
pub use paths::*;

use std::path::{Path, PathBuf};

/// A fixture's text, read at build time.
macro_rules! fixture_text {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $path))
    };
}

/// A Git repository in a temporary directory.
pub struct TestRepo {
    /// The temporary directory, removed on drop.
    pub dir: tempfile::TempDir,
    /// The repository.
    pub repo: git2::Repository,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
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

    /// Copies the files of a fixture case (see [`fixture`]) into the work tree.
    pub fn copy_fixture(&self, case: &str) -> &Self {
        copy_dir(&fixture(case), self.path());
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

/// Copies a directory tree (files and directories) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The `cairn` binary under test ([`cairn_binary`]), without colours and
/// without the caller's cache directory.
pub fn cairn() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(cairn_binary());
    cmd.env("NO_COLOR", "1").env_remove("CAIRN_CACHE_DIR");
    cmd
}

/// A small valid spec repository (fixture `valid`): a project, a pool, a
/// two-job pipeline and a model. The project `churn` and its local pool.
pub const PROJECT: &str = fixture_text!("valid/specs/project.yaml");

/// The pipeline `prep` → `train`, which outputs `model.onnx`.
pub const JOBS: &str = fixture_text!("valid/specs/jobs.yaml");

/// The model `scorer`, from `train`'s output, two replicas.
pub const MODEL: &str = fixture_text!("valid/specs/model.yaml");

/// Writes the small valid repository (fixture `valid`) into `repo`.
pub fn write_valid(repo: &TestRepo) {
    repo.copy_fixture("valid");
}

/// A path inside the repository's `.git` directory.
pub fn git_dir(repo: &TestRepo) -> PathBuf {
    repo.repo.path().to_path_buf()
}

/// The specs of the `vision` fixture, a repository for the Kubernetes
/// runtime: a project with quotas and secrets, GPU and CPU pools, a
/// pipeline of three jobs, two models and two applications.
pub const VISION_SPECS: &str = fixture_text!("vision/specs/all.yaml");

/// Writes the `vision` repository (its fixture and the quickstart
/// classifier) into `repo`.
pub fn write_vision(repo: &TestRepo) {
    repo.copy_fixture("vision").write(
        "models/classifier.onnx",
        std::fs::read(CLASSIFIER).expect("the quickstart classifier"),
    );
}

/// A project (`lab`) whose default pool is this machine (fixture `lab`).
pub const LAB_PROJECT: &str = fixture_text!("lab/specs/project.yaml");

/// The quickstart classifier served as `clf`, with its signature (fixture `lab`).
pub const CLF_MODEL: &str = fixture_text!("lab/specs/model.yaml");
