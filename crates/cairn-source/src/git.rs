//! The Git source: open a local repository or clone/fetch a remote one, and
//! take snapshots of commits, the index or the work tree.

use super::{CommitInfo, Entry, EntryKind, Handle, Origin, Snapshot, add_parents};
use crate::credentials::{Credentials, redact_url};
use crate::files::{FsFiles, GitFiles};
use git2::{
    FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the Git source, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The path is not inside a Git repository.
    #[error(
        "{path} is not inside a Git repository (run `git init` there, or point cairn at a repository)"
    )]
    NotARepository {
        /// The path given.
        path: String,
    },
    /// The revision does not name a commit.
    #[error("revision `{rev}` not found in {repo}{hint}")]
    RevisionNotFound {
        /// The revision given.
        rev: String,
        /// The repository.
        repo: String,
        /// A suggestion.
        hint: String,
    },
    /// The repository has no commit yet.
    #[error(
        "{repo} has no commits yet: commit your specs first (or use --worktree to read files on disk)"
    )]
    NoCommits {
        /// The repository.
        repo: String,
    },
    /// The spec directory does not exist in the commit.
    #[error("directory `{dir}` does not exist in commit {commit}")]
    DirectoryNotInCommit {
        /// The directory.
        dir: String,
        /// The commit.
        commit: String,
    },
    /// Cloning or fetching failed.
    #[error("could not {action} {url}: {message}")]
    Remote {
        /// `clone` or `fetch`.
        action: &'static str,
        /// The URL, with any credentials removed.
        url: String,
        /// Git's explanation.
        message: String,
    },
    /// Any other Git failure.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A file system failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a spec repository is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoLocation {
    /// A directory on this machine (possibly a subdirectory of a repository).
    Local(PathBuf),
    /// A URL to clone: `https://`, `ssh://`, `git@host:path` or `file://`.
    Remote(String),
}

impl RepoLocation {
    /// Reads a command-line argument as a path or a URL.
    pub fn parse(s: &str) -> Self {
        let scp_like = !s.contains("://")
            && s.split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        if s.contains("://") || scp_like {
            RepoLocation::Remote(s.to_string())
        } else {
            RepoLocation::Local(PathBuf::from(s))
        }
    }
}

/// Progress of a clone or fetch.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Objects received so far.
    pub received: usize,
    /// Objects in all.
    pub total: usize,
    /// Bytes received.
    pub bytes: usize,
}

/// An opened repository and the directory inside it that holds the specs.
pub struct GitSource {
    repo: Repository,
    prefix: String,
    display: String,
    url: Option<String>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("repo", &self.display)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl GitSource {
    /// Opens the repository containing `path`; specs are read from `path`'s
    /// directory within it.
    pub fn open_local(path: &Path) -> Result<Self, GitError> {
        let not_a_repo = || GitError::NotARepository {
            path: path.display().to_string(),
        };
        let canonical = path.canonicalize().map_err(|_| not_a_repo())?;
        let repo = Repository::discover(&canonical).map_err(|_| not_a_repo())?;
        let prefix = match repo.workdir() {
            Some(workdir) => {
                let workdir = workdir.canonicalize()?;
                canonical
                    .strip_prefix(&workdir)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default()
            }
            None => String::new(),
        };
        Ok(GitSource {
            repo,
            prefix,
            display: path.display().to_string(),
            url: None,
        })
    }

    /// Clones `url` into `cache_dir` (a bare mirror of branches and tags), or
    /// fetches into it when it is already there.
    pub fn open_remote(
        url: &str,
        cache_dir: &Path,
        credentials: &Credentials,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, GitError> {
        let repo = if cache_dir.join("HEAD").exists() {
            Repository::open_bare(cache_dir)?
        } else {
            std::fs::create_dir_all(cache_dir)?;
            let repo = Repository::init_bare(cache_dir)?;
            repo.remote_with_fetch("origin", url, "+refs/heads/*:refs/heads/*")?;
            repo.remote_add_fetch("origin", "+refs/tags/*:refs/tags/*")?;
            repo
        };
        let source = GitSource {
            repo,
            prefix: String::new(),
            display: redact_url(url),
            url: Some(url.to_string()),
        };
        source.fetch(credentials, progress)?;
        Ok(source)
    }

    /// Fetches branches and tags from the remote (no-op for local repositories).
    pub fn fetch(
        &self,
        credentials: &Credentials,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), GitError> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let mut callbacks = RemoteCallbacks::new();
        let mut attempts = 0;
        callbacks.credentials(|url, user, allowed| {
            attempts += 1;
            if attempts > 3 {
                return Err(git2::Error::from_str(
                    "authentication failed (credentials were refused)",
                ));
            }
            credentials.git2_credentials(url, user, allowed)
        });
        callbacks.transfer_progress(|p| {
            progress(Progress {
                received: p.received_objects(),
                total: p.total_objects(),
                bytes: p.received_bytes(),
            });
            true
        });
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(git2::AutotagOption::All);
        let mut remote = self.repo.find_remote("origin")?;
        let refspecs: [&str; 0] = [];
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(|e| GitError::Remote {
                action: "fetch",
                url: redact_url(url),
                message: e.message().to_string(),
            })?;
        // Point HEAD at the remote's default branch.
        if let Ok(default) = remote.default_branch()
            && let Some(name) = default.as_str()
        {
            let _ = self.repo.set_head(name);
        }
        Ok(())
    }

    /// The repository's path, or the redacted URL for remote repositories.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The directory holding the specs, relative to the repository root
    /// (empty for the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The work tree, for local non-bare repositories.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// The `.git` directory.
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// Resolves a branch, tag, commit id or expression (`HEAD~1`) to a commit.
    pub fn resolve(&self, rev: &str) -> Result<CommitInfo, GitError> {
        let commit = self.find_commit(rev)?;
        Ok(commit_info(&commit))
    }

    fn find_commit(&self, rev: &str) -> Result<git2::Commit<'_>, GitError> {
        if rev == "HEAD" && self.repo.head().is_err() {
            return Err(GitError::NoCommits {
                repo: self.display.clone(),
            });
        }
        let candidates = [rev.to_string(), format!("refs/remotes/origin/{rev}")];
        for candidate in &candidates {
            if let Ok(obj) = self.repo.revparse_single(candidate)
                && let Ok(commit) = obj.peel_to_commit()
            {
                return Ok(commit);
            }
        }
        let branches: Vec<String> = self
            .repo
            .branches(None)
            .map(|it| {
                it.filter_map(|b| b.ok()?.0.name().ok().flatten().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let hint =
            match cairn_spec::diagnostics::did_you_mean(rev, branches.iter().map(String::as_str)) {
                Some(b) => format!("; did you mean `{b}`?"),
                None if !branches.is_empty() => format!(" (branches: {})", branches.join(", ")),
                None => String::new(),
            };
        Err(GitError::RevisionNotFound {
            rev: rev.to_string(),
            repo: self.display.clone(),
            hint,
        })
    }

    /// A snapshot of the spec directory at `rev`, read from the object database.
    pub fn snapshot(&self, rev: &str) -> Result<Snapshot, GitError> {
        let commit = self.find_commit(rev)?;
        let info = commit_info(&commit);
        let mut tree = commit.tree()?;
        if !self.prefix.is_empty() {
            let entry = tree.get_path(Path::new(&self.prefix)).map_err(|_| {
                GitError::DirectoryNotInCommit {
                    dir: self.prefix.clone(),
                    commit: info.short_id().to_string(),
                }
            })?;
            tree = entry.to_object(&self.repo)?.peel_to_tree().map_err(|_| {
                GitError::DirectoryNotInCommit {
                    dir: self.prefix.clone(),
                    commit: info.short_id().to_string(),
                }
            })?;
        }
        let mut entries = BTreeMap::new();
        let mut executables = std::collections::BTreeSet::new();
        let mut symlinks = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |root, entry| {
            let name = String::from_utf8_lossy(entry.name_bytes());
            let path = format!("{root}{name}");
            let (kind, handle) = match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) => {
                    (EntryKind::Dir, Handle::Tree(entry.id().to_string()))
                }
                (Some(ObjectType::Commit), _) => (EntryKind::Submodule, Handle::None),
                (_, 0o120000) => {
                    symlinks.push((path.clone(), entry.id()));
                    (EntryKind::Symlink(String::new()), Handle::None)
                }
                (_, mode) => {
                    if mode == 0o100755 {
                        executables.insert(path.clone());
                    }
                    (EntryKind::File, Handle::Blob(entry.id().to_string()))
                }
            };
            entries.insert(path, Entry { kind, handle });
            TreeWalkResult::Ok
        })?;
        for (path, oid) in symlinks {
            let target = String::from_utf8_lossy(self.repo.find_blob(oid)?.content()).into_owned();
            if let Some(e) = entries.get_mut(&path) {
                e.kind = EntryKind::Symlink(target);
            }
        }
        Ok(Snapshot::new(
            Origin::Commit(info),
            entries,
            executables,
            Some(tree.id().to_string()),
            Some(Arc::new(GitFiles::new(Repository::open(self.repo.path())?))),
        ))
    }

    /// A snapshot of the staged contents (what the next commit will hold).
    pub fn index_snapshot(&self) -> Result<Snapshot, GitError> {
        let index = self.repo.index()?;
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut entries = BTreeMap::new();
        let mut executables = std::collections::BTreeSet::new();
        for e in index.iter() {
            let full = String::from_utf8_lossy(&e.path).into_owned();
            let Some(path) = full.strip_prefix(&prefix) else {
                continue;
            };
            let kind = match e.mode {
                0o120000 => EntryKind::Symlink(
                    String::from_utf8_lossy(self.repo.find_blob(e.id)?.content()).into_owned(),
                ),
                0o160000 => EntryKind::Submodule,
                _ => EntryKind::File,
            };
            add_parents(&mut entries, path);
            if e.mode == 0o100755 {
                executables.insert(path.to_string());
            }
            entries.insert(
                path.to_string(),
                Entry {
                    handle: if kind == EntryKind::File {
                        Handle::Blob(e.id.to_string())
                    } else {
                        Handle::None
                    },
                    kind,
                },
            );
        }
        Ok(Snapshot::new(
            Origin::Index,
            entries,
            executables,
            None,
            Some(Arc::new(GitFiles::new(Repository::open(self.repo.path())?))),
        ))
    }

    /// A snapshot of the files on disk (development mode), honouring
    /// `.gitignore`.
    pub fn worktree_snapshot(&self) -> Result<Snapshot, GitError> {
        let workdir = self
            .repo
            .workdir()
            .ok_or_else(|| GitError::NotARepository {
                path: self.display.clone(),
            })?;
        let root = workdir.join(&self.prefix);
        let mut entries = BTreeMap::new();
        let mut executables = std::collections::BTreeSet::new();
        let walker = ignore::WalkBuilder::new(&root)
            .hidden(false)
            .git_ignore(true)
            .require_git(false)
            .follow_links(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for item in walker {
            let item = item.map_err(|e| std::io::Error::other(e.to_string()))?;
            let Ok(rel) = item.path().strip_prefix(&root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel.is_empty() {
                continue;
            }
            let file_type = item.file_type();
            let kind = match file_type {
                Some(t) if t.is_dir() => EntryKind::Dir,
                Some(t) if t.is_symlink() => EntryKind::Symlink(
                    std::fs::read_link(item.path())?
                        .to_string_lossy()
                        .into_owned(),
                ),
                _ => EntryKind::File,
            };
            if kind == EntryKind::File {
                use std::os::unix::fs::PermissionsExt;
                if item
                    .metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
                {
                    executables.insert(rel.clone());
                }
            }
            let handle = if kind == EntryKind::File {
                Handle::Path(item.path().to_path_buf())
            } else {
                Handle::None
            };
            entries.insert(rel, Entry { kind, handle });
        }
        Ok(Snapshot::new(
            Origin::Worktree,
            entries,
            executables,
            None,
            Some(Arc::new(FsFiles)),
        ))
    }

    /// The checked-out branch of a local repository (or the default branch
    /// of a clone), if HEAD is on one.
    pub fn current_branch(&self) -> Option<String> {
        let head = self.repo.find_reference("HEAD").ok()?;
        let target = head.symbolic_target()?;
        target.strip_prefix("refs/heads/").map(str::to_string)
    }

    /// The commit id a branch or other revision points at now, if any.
    pub fn peek(&self, rev: &str) -> Option<Oid> {
        self.find_commit(rev).ok().map(|c| c.id())
    }
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let author = commit.author();
    let time = commit.time();
    let when = chrono::DateTime::from_timestamp(time.seconds(), 0)
        .map(|t| {
            t.with_timezone(
                &chrono::FixedOffset::east_opt(time.offset_minutes() * 60)
                    .unwrap_or(chrono::FixedOffset::east_opt(0).expect("zero offset")),
            )
            .to_rfc3339()
        })
        .unwrap_or_default();
    CommitInfo {
        id: commit.id().to_string(),
        author: author.name().unwrap_or("").to_string(),
        email: author.email().unwrap_or("").to_string(),
        committer: commit.committer().name().unwrap_or("").to_string(),
        committer_email: commit.committer().email().unwrap_or("").to_string(),
        time: when,
        summary: commit.summary().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(RepoLocation::parse("."), RepoLocation::Local(".".into()));
        assert_eq!(
            RepoLocation::parse("examples/quickstart"),
            RepoLocation::Local("examples/quickstart".into())
        );
        assert!(matches!(
            RepoLocation::parse("https://github.com/a/b.git"),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("git@github.com:a/b.git"),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("file:///tmp/x"),
            RepoLocation::Remote(_)
        ));
    }
}
