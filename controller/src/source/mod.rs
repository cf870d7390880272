//! Where specs are read from: a commit of a Git repository (the normal case),
//! the Git index (for pre-commit hooks), or the work tree (development mode).
//!
//! A [`Snapshot`] is an immutable listing of one such tree, rooted at the spec
//! repository's directory, with a way to read file contents. Commits are read
//! through Git's object database, never from the work tree.

mod credentials;
mod git;
pub mod writeback;

pub use credentials::{Credentials, redact_url};
pub use git::{GitError, GitSource, Progress, RepoLocation};

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The commit a snapshot was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// Full commit id.
    pub id: String,
    /// Author name.
    pub author: String,
    /// Author e-mail.
    pub email: String,
    /// Commit time, RFC 3339.
    pub time: String,
    /// First line of the message.
    pub summary: String,
}

impl CommitInfo {
    /// The first 12 hex digits of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// What a snapshot was taken of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Origin {
    /// A commit.
    Commit(CommitInfo),
    /// The staged contents of the index.
    Index,
    /// Files on disk.
    Worktree,
}

/// The type of a tree entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target as written.
    Symlink(String),
    /// A submodule (its contents are not part of the snapshot).
    Submodule,
}

#[derive(Clone, Debug)]
enum Handle {
    Blob(::git2::Oid),
    Tree(::git2::Oid),
    Path(PathBuf),
    Bytes(Arc<[u8]>),
    None,
}

#[derive(Clone, Debug)]
struct Entry {
    kind: EntryKind,
    handle: Handle,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is larger than the limit.
    #[error("file is {size} bytes, over the {limit}-byte limit for spec files")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No such file.
    #[error("no such file")]
    NotFound,
    /// Git could not read the blob.
    #[error(transparent)]
    Git(#[from] ::git2::Error),
    /// The file system could not read the file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a path inside the snapshot leads once symlinks are followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A regular file at this (symlink-free) path.
    File(String),
    /// A directory at this path.
    Dir(String),
    /// Nothing there.
    Missing,
    /// A symlink on the way points outside the snapshot.
    Escapes {
        /// The symlink.
        link: String,
        /// Its target.
        target: String,
    },
    /// Symlinks point at each other.
    Loop(String),
}

/// An immutable listing of a tree of files and a way to read them.
pub struct Snapshot {
    origin: Origin,
    entries: BTreeMap<String, Entry>,
    executables: std::collections::BTreeSet<String>,
    root: Option<::git2::Oid>,
    repo: Option<std::sync::Mutex<::git2::Repository>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("origin", &self.origin)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Snapshot {
    /// A snapshot of in-memory files, for tests and tools.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut entries = BTreeMap::new();
        for (path, text) in files {
            add_parents(&mut entries, path);
            entries.insert(
                path.to_string(),
                Entry {
                    kind: EntryKind::File,
                    handle: Handle::Bytes(Arc::from(text.as_bytes())),
                },
            );
        }
        Snapshot {
            origin: Origin::Worktree,
            entries,
            executables: Default::default(),
            root: None,
            repo: None,
        }
    }

    /// What the snapshot was taken of.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The commit, when the snapshot is of one.
    pub fn commit(&self) -> Option<&CommitInfo> {
        match &self.origin {
            Origin::Commit(c) => Some(c),
            _ => None,
        }
    }

    /// Every path with its kind, in sorted order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &EntryKind)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), &e.kind))
    }

    /// The kind of the entry at `path` (symlinks not followed).
    pub fn kind(&self, path: &str) -> Option<&EntryKind> {
        self.entries.get(path).map(|e| &e.kind)
    }

    /// Reads a regular file, refusing files over `limit` bytes before
    /// loading them.
    pub fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        let entry = self.entries.get(path).ok_or(ReadError::NotFound)?;
        match &entry.handle {
            Handle::Blob(oid) => {
                let repo = self
                    .repo
                    .as_ref()
                    .expect("git snapshot has a repository")
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let odb = repo.odb()?;
                let (size, _) = odb.read_header(*oid)?;
                if size as u64 > limit {
                    return Err(ReadError::TooLarge {
                        size: size as u64,
                        limit,
                    });
                }
                Ok(repo.find_blob(*oid)?.content().to_vec())
            }
            Handle::Path(p) => {
                let size = std::fs::metadata(p)?.len();
                if size > limit {
                    return Err(ReadError::TooLarge { size, limit });
                }
                Ok(std::fs::read(p)?)
            }
            Handle::Bytes(b) => {
                if b.len() as u64 > limit {
                    return Err(ReadError::TooLarge {
                        size: b.len() as u64,
                        limit,
                    });
                }
                Ok(b.to_vec())
            }
            Handle::None | Handle::Tree(_) => Err(ReadError::NotFound),
        }
    }

    /// A content digest of the file or directory at `path` (symlinks
    /// followed): its Git object id, so that a workload's code changing is a
    /// change of the workload. `None` outside commits and the index.
    pub fn digest(&self, path: &str) -> Option<String> {
        let target = match self.resolve(path) {
            Resolved::File(p) | Resolved::Dir(p) => p,
            _ => return None,
        };
        if target.is_empty() {
            return self.root.map(|o| o.to_string());
        }
        match self.entries.get(&target)?.handle {
            Handle::Blob(oid) | Handle::Tree(oid) => Some(oid.to_string()),
            _ => None,
        }
    }

    /// Whether the file at `path` has its executable bit set.
    pub fn is_executable(&self, path: &str) -> bool {
        self.executables.contains(path)
    }

    /// Writes every file and in-tree symlink under `dest` (a checkout for
    /// workloads). Symlinks that leave the snapshot are not written.
    pub fn materialize(&self, dest: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dest)?;
        for (path, entry) in &self.entries {
            let target = dest.join(path);
            match &entry.kind {
                EntryKind::Dir | EntryKind::Submodule => std::fs::create_dir_all(&target)?,
                EntryKind::File => {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let bytes = self
                        .read(path, u64::MAX)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    std::fs::write(&target, bytes)?;
                    if self.is_executable(path) {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
                    }
                }
                EntryKind::Symlink(link) => {
                    if matches!(self.resolve(path), Resolved::File(_) | Resolved::Dir(_)) {
                        if let Some(parent) = target.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        let _ = std::fs::remove_file(&target);
                        std::os::unix::fs::symlink(link, &target)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows `path` through symlinks inside the snapshot.
    pub fn resolve(&self, path: &str) -> Resolved {
        let mut pending: Vec<String> = split(path);
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while !pending.is_empty() {
            let part = pending.remove(0);
            match part.as_str() {
                "." => continue,
                ".." => {
                    if done.pop().is_none() {
                        return Resolved::Escapes {
                            link: path.to_string(),
                            target: path.to_string(),
                        };
                    }
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let current = done.join("/");
            match self.entries.get(&current).map(|e| &e.kind) {
                None => return Resolved::Missing,
                Some(EntryKind::Symlink(target)) => {
                    hops += 1;
                    if hops > 40 {
                        return Resolved::Loop(current);
                    }
                    if target.starts_with('/') {
                        return Resolved::Escapes {
                            link: current,
                            target: target.clone(),
                        };
                    }
                    done.pop();
                    let mut depth = done.len() as isize;
                    for p in split(target) {
                        match p.as_str() {
                            ".." => depth -= 1,
                            "." => {}
                            _ => depth += 1,
                        }
                        if depth < 0 {
                            return Resolved::Escapes {
                                link: current,
                                target: target.clone(),
                            };
                        }
                    }
                    let mut next = split(target);
                    next.extend(pending);
                    pending = next;
                }
                Some(_) => {}
            }
        }
        let current = done.join("/");
        if current.is_empty() {
            return Resolved::Dir(String::new());
        }
        match self.entries.get(&current).map(|e| &e.kind) {
            Some(EntryKind::File) => Resolved::File(current),
            Some(EntryKind::Dir) | Some(EntryKind::Submodule) => Resolved::Dir(current),
            _ => Resolved::Missing,
        }
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn add_parents(entries: &mut BTreeMap<String, Entry>, path: &str) {
    let mut end = 0;
    while let Some(i) = path[end..].find('/') {
        end += i;
        entries.entry(path[..end].to_string()).or_insert(Entry {
            kind: EntryKind::Dir,
            handle: Handle::None,
        });
        end += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_links(links: &[(&str, &str)]) -> Snapshot {
        let mut s = Snapshot::from_files([("a/b/file.txt", "x"), ("top.txt", "y")]);
        for (link, target) in links {
            s.entries.insert(
                link.to_string(),
                Entry {
                    kind: EntryKind::Symlink(target.to_string()),
                    handle: Handle::None,
                },
            );
        }
        s
    }

    #[test]
    fn resolves_paths_through_symlinks() {
        let s = with_links(&[
            ("l1", "a/b"),
            ("l2", "../outside"),
            ("x", "y"),
            ("y", "x"),
            ("abs", "/etc"),
        ]);
        assert_eq!(
            s.resolve("a/b/file.txt"),
            Resolved::File("a/b/file.txt".into())
        );
        assert_eq!(
            s.resolve("l1/file.txt"),
            Resolved::File("a/b/file.txt".into())
        );
        assert_eq!(s.resolve("a"), Resolved::Dir("a".into()));
        assert_eq!(s.resolve("nope"), Resolved::Missing);
        assert!(matches!(s.resolve("l2"), Resolved::Escapes { .. }));
        assert!(matches!(s.resolve("abs/passwd"), Resolved::Escapes { .. }));
        assert!(matches!(s.resolve("x"), Resolved::Loop(_)));
    }
}
