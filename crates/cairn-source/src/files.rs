//! The [`SpecFiles`] implementations: Git's object database and the file
//! system.

use cairn_plan::snapshot::{ReadError, SpecFiles};
use git2::{Oid, Repository};
use std::path::Path;
use std::sync::Mutex;

/// Reads blobs from a repository's object database (a commit's or the
/// index's snapshot). git2 handles are not `Sync`: one lock serializes
/// reads.
pub(crate) struct GitFiles(Mutex<Repository>);

impl GitFiles {
    pub(crate) fn new(repo: Repository) -> Self {
        GitFiles(Mutex::new(repo))
    }
}

fn store(e: git2::Error) -> ReadError {
    ReadError::Store(Box::new(e))
}

impl SpecFiles for GitFiles {
    fn read_blob(&self, id: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        let oid = Oid::from_str(id).map_err(store)?;
        let repo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let odb = repo.odb().map_err(store)?;
        let (size, _) = odb.read_header(oid).map_err(store)?;
        if size as u64 > limit {
            return Err(ReadError::TooLarge {
                size: size as u64,
                limit,
            });
        }
        Ok(repo.find_blob(oid).map_err(store)?.content().to_vec())
    }

    fn read_path(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
        FsFiles.read_path(path, limit)
    }
}

/// Reads files from disk (a work tree's snapshot).
pub(crate) struct FsFiles;

impl SpecFiles for FsFiles {
    fn read_blob(&self, _id: &str, _limit: u64) -> Result<Vec<u8>, ReadError> {
        Err(ReadError::NotFound)
    }

    fn read_path(&self, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
        let size = std::fs::metadata(path)?.len();
        if size > limit {
            return Err(ReadError::TooLarge { size, limit });
        }
        Ok(std::fs::read(path)?)
    }
}
