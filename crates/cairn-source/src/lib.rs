//! Where specs are read from: a commit of a Git repository (the normal case),
//! the Git index (for pre-commit hooks), or the work tree (development mode).
//!
//! A [`Snapshot`] is an immutable listing of one such tree, rooted at the spec
//! repository's directory, with a way to read file contents. Commits are read
//! through Git's object database, never from the work tree.

mod credentials;
mod files;
mod git;
pub mod writeback;

pub use credentials::{Credentials, redact_url};
pub use git::{GitError, GitSource, Progress, RepoLocation};

pub use cairn_plan::snapshot::{
    CommitInfo, Entry, EntryKind, Handle, Origin, ReadError, Resolved, Snapshot, SpecFiles,
    add_parents,
};

/// Writes every file and in-tree symlink under `dest` (a checkout for
/// workloads). Symlinks that leave the snapshot are not written.
pub fn materialize(snapshot: &Snapshot, dest: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for (path, kind) in snapshot.entries() {
        let target = dest.join(path);
        match kind {
            EntryKind::Dir | EntryKind::Submodule => std::fs::create_dir_all(&target)?,
            EntryKind::File => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let bytes = snapshot
                    .read(path, u64::MAX)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                std::fs::write(&target, bytes)?;
                if snapshot.is_executable(path) {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
                }
            }
            EntryKind::Symlink(link) => {
                if matches!(snapshot.resolve(path), Resolved::File(_) | Resolved::Dir(_)) {
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
