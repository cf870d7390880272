//! A [`Snapshot`]: an immutable listing of one tree of spec files — a
//! commit, the Git index or the work tree — rooted at the spec repository's
//! directory, and the [`SpecFiles`] trait through which its contents are
//! read. The Git source (`cairn-source`) builds snapshots and implements
//! the trait; this module does no I/O of its own.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads the contents behind a snapshot's entries: Git's object database
/// for commits and the index, the file system for the work tree.
pub trait SpecFiles: Send + Sync {
    /// Reads the blob with this object id (40 hex digits), refusing it
    /// over `limit` bytes before loading it.
    fn read_blob(&self, id: &str, limit: u64) -> Result<Vec<u8>, ReadError>;
    /// Reads the file at this path, refusing it over `limit` bytes.
    fn read_path(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError>;
}

/// The commit a snapshot was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// Full commit id.
    pub id: String,
    /// Author name.
    pub author: String,
    /// Author e-mail.
    pub email: String,
    /// Committer name.
    #[serde(default)]
    pub committer: String,
    /// Committer e-mail.
    #[serde(default)]
    pub committer_email: String,
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

/// Where an entry's contents are.
#[derive(Clone, Debug)]
pub enum Handle {
    /// A Git blob (object id, hex), read through [`SpecFiles::read_blob`].
    Blob(String),
    /// A Git tree (object id, hex): its digest.
    Tree(String),
    /// A file on disk, read through [`SpecFiles::read_path`].
    Path(PathBuf),
    /// Contents in memory.
    Bytes(Arc<[u8]>),
    /// No contents (directories outside Git, symlinks, submodules).
    None,
}

/// One path of a snapshot.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What is there.
    pub kind: EntryKind,
    /// Where its contents are.
    pub handle: Handle,
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
    /// The store behind the snapshot (Git's object database) failed.
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
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
    executables: BTreeSet<String>,
    root: Option<String>,
    files: Option<Arc<dyn SpecFiles>>,
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
    /// A snapshot of these entries. `root` is the object id of the tree
    /// itself (a commit's), `files` reads the entries' contents.
    pub fn new(
        origin: Origin,
        entries: BTreeMap<String, Entry>,
        executables: BTreeSet<String>,
        root: Option<String>,
        files: Option<Arc<dyn SpecFiles>>,
    ) -> Self {
        Snapshot {
            origin,
            entries,
            executables,
            root,
            files,
        }
    }

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
            files: None,
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
            Handle::Blob(id) => self.reader()?.read_blob(id, limit),
            Handle::Path(p) => self.reader()?.read_path(p, limit),
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

    fn reader(&self) -> Result<&dyn SpecFiles, ReadError> {
        self.files.as_deref().ok_or(ReadError::NotFound)
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
            return self.root.clone();
        }
        match &self.entries.get(&target)?.handle {
            Handle::Blob(id) | Handle::Tree(id) => Some(id.clone()),
            _ => None,
        }
    }

    /// Whether the file at `path` has its executable bit set.
    pub fn is_executable(&self, path: &str) -> bool {
        self.executables.contains(path)
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

/// Adds the directories above `path` to `entries`.
pub fn add_parents(entries: &mut BTreeMap<String, Entry>, path: &str) {
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
