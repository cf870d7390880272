//! Changes the controller writes to its own repository: a model pinned to
//! an artifact digest, for promotions of retrained versions and for
//! rollbacks. Git stays the source of truth: the runtime serves the new
//! version only once the commit is reconciled like any other.

use super::Controller;
use cairn_runtime::Runtime;
use cairn_source::writeback::{WritebackError, commit_file, pin_artifact};
use cairn_spec::Promotion;
use cairn_spec::ResourceKey;

/// Where a pin was written.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pinned {
    /// The new commit.
    pub commit: String,
    /// The branch it is on: the followed branch, or a branch for review.
    pub branch: String,
    /// The spec file changed, relative to the repository root.
    pub file: String,
    /// Whether the followed branch moved (so the change will be served).
    pub on_followed_branch: bool,
}

/// Why a pin could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The model is not applied.
    #[error("model `{0}` is not applied")]
    Unknown(String),
    /// The repository cannot be written here.
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing Git failed.
    #[error(transparent)]
    Writeback(#[from] WritebackError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
}

impl<R: Runtime> Controller<R> {
    /// Pins `model` to the artifact `sha256` by a commit with `message`:
    /// on the followed branch (`Commit`, `Auto`) or on a new branch
    /// `cairn/pin/MODEL-SHORT` for review (`PullRequest`).
    pub fn pin_model(
        &self,
        model: &ResourceKey,
        sha256: &str,
        message: &str,
        promotion: Promotion,
    ) -> Result<Pinned, PinError> {
        let applied = self
            .store
            .applied()?
            .into_iter()
            .find(|a| a.key == *model)
            .ok_or_else(|| PinError::Unknown(model.name.to_string()))?;
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if source.workdir().is_none() {
            return Err(PinError::Unsupported(
                "writing back to a remote repository is not supported yet: commit the pin (`spec.from.sha256`) yourself".into(),
            ));
        }
        let repo = git2::Repository::open(source.git_dir()).map_err(WritebackError::Git)?;
        let branch = self.settings.rev.clone();
        let refname = format!("refs/heads/{branch}");
        let tip = repo.refname_to_id(&refname).map_err(|_| {
            PinError::Unsupported(format!(
                "`{branch}` is not a branch: promotions need `cairn up --rev BRANCH`"
            ))
        })?;
        let path = match source.prefix() {
            "" => applied.file.clone(),
            prefix => format!("{}/{}", prefix.trim_end_matches('/'), applied.file),
        };
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(WritebackError::Git)?;
        let blob = tree
            .get_path(std::path::Path::new(&path))
            .and_then(|e| repo.find_blob(e.id()))
            .map_err(WritebackError::Git)?;
        let text = String::from_utf8_lossy(blob.content()).into_owned();
        let pinned = pin_artifact(&text, &path, model.name.as_str(), sha256)?;
        let (target, on_followed) = match promotion {
            Promotion::PullRequest => (
                format!(
                    "cairn/pin/{}-{}",
                    model.name,
                    &sha256[..sha256.len().min(12)]
                ),
                false,
            ),
            Promotion::Commit | Promotion::Auto => (branch.clone(), true),
        };
        let commit = if on_followed {
            commit_file(&repo, &target, tip, &path, pinned.as_bytes(), message)?
        } else {
            // A review branch starts at the followed branch's tip.
            let _ = repo
                .find_reference(&format!("refs/heads/{target}"))
                .map(|mut r| r.delete());
            commit_file(&repo, &target, tip, &path, pinned.as_bytes(), message)?
        };
        let _ = self.store.audit(
            Some(&commit.to_string()),
            Some(model),
            "pin",
            &format!("{message} (branch {target})"),
        );
        Ok(Pinned {
            commit: commit.to_string(),
            branch: target,
            file: path,
            on_followed_branch: on_followed,
        })
    }
}
