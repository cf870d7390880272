//! Writing back to Git: promotions and rollbacks pin a model to an artifact
//! digest by a commit, so that the repository stays the source of truth
//! and every change of what is served can be reviewed.
//!
//! The edit itself is pure ([`pin_artifact`]: YAML text in, YAML text out,
//! touching only the digest so that comments and layout survive); the
//! commit ([`commit_file`]) writes a blob, a tree and a commit on a branch
//! with git2, and keeps a checked-out work tree in step when the file there
//! was not modified by hand.

use cairn_spec::yaml::{self, Node, Value};
use git2::{Oid, Repository, Signature};
use std::path::Path;

/// Why a write-back failed.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    /// The file is not valid YAML.
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The model is not declared in the file, or not in a form that can be
    /// pinned.
    #[error("{0}")]
    NotPinnable(String),
    /// Git refused.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The branch moved while the commit was written.
    #[error("branch `{0}` moved while the change was being committed; retry")]
    Moved(String),
}

/// Pins the model `model` declared in `src` (a spec file's text) to the
/// artifact `sha256`: sets `spec.from.sha256`, replacing an existing value
/// or adding the key in the mapping's own style (block or flow).
pub fn pin_artifact(
    src: &str,
    file: &str,
    model: &str,
    sha256: &str,
) -> Result<String, WritebackError> {
    let docs = yaml::parse_documents(src).map_err(|e| WritebackError::Yaml {
        file: file.to_string(),
        message: e.message,
    })?;
    let doc = docs
        .iter()
        .find(|d| {
            d.get("kind").and_then(Node::as_str) == Some("Model")
                && d.lookup(&["metadata", "name"]).as_str() == Some(model)
        })
        .ok_or_else(|| {
            WritebackError::NotPinnable(format!("{file} declares no model `{model}`"))
        })?;
    let spec = doc
        .get("spec")
        .ok_or_else(|| WritebackError::NotPinnable(format!("model `{model}` has no spec")))?;
    let from = spec.get("from").ok_or_else(|| {
        WritebackError::NotPinnable(format!(
            "model `{model}` in {file} serves a file in the repository (`artifact`), not a job's output (`from`): commit the new file instead"
        ))
    })?;
    if let Some(existing) = from.get("sha256") {
        let r = existing.span.range();
        return Ok(format!("{}{sha256}{}", &src[..r.start], &src[r.end..]));
    }
    let Value::Map(entries) = &from.value else {
        return Err(WritebackError::NotPinnable(format!(
            "`spec.from` of model `{model}` is not a mapping"
        )));
    };
    let r = from.span.range();
    let text = &src[r.clone()];
    if text.trim_start().starts_with('{') {
        let close = r.start
            + text
                .rfind('}')
                .ok_or_else(|| WritebackError::NotPinnable("unterminated flow mapping".into()))?;
        let before = src[..close].trim_end();
        let sep = if before.ends_with('{') { " " } else { ", " };
        return Ok(format!(
            "{before}{sep}sha256: {sha256}{}{}",
            if before.ends_with('{') { " " } else { "" },
            &src[close..]
        ));
    }
    // Block mapping: a new line after the last entry, at the first key's
    // indentation.
    let (first_key, _) = entries
        .first()
        .ok_or_else(|| WritebackError::NotPinnable("`spec.from` is empty".into()))?;
    let key_start = first_key.span.start as usize;
    let line_start = src[..key_start].rfind('\n').map_or(0, |i| i + 1);
    let indent = " ".repeat(key_start - line_start);
    let (_, last_value) = entries.last().expect("non-empty");
    let end = last_value.span.end as usize;
    let line_end = src[end..].find('\n').map_or(src.len(), |i| end + i);
    Ok(format!(
        "{}\n{indent}sha256: {sha256}{}",
        &src[..line_end],
        &src[line_end..]
    ))
}

/// Commits `content` as `path` (relative to the repository root) on
/// `branch`, whose tip must still be `parent` (the commit the change was
/// computed from). When `branch` is checked out in a work tree whose copy
/// of the file is unmodified, the work tree and index are updated too.
/// Returns the new commit.
pub fn commit_file(
    repo: &Repository,
    branch: &str,
    parent: Oid,
    path: &str,
    content: &[u8],
    message: &str,
) -> Result<Oid, WritebackError> {
    let refname = format!("refs/heads/{branch}");
    let parent_commit = repo.find_commit(parent)?;
    let base_tree = parent_commit.tree()?;
    let old_blob = base_tree.get_path(Path::new(path)).ok().map(|e| e.id());
    let blob = repo.blob(content)?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(path, blob, git2::FileMode::Blob);
    let tree = repo.find_tree(update.create_updated(repo, &base_tree)?)?;
    let sig = signature(repo)?;
    let tip = repo.refname_to_id(&refname).ok();
    if tip.is_some_and(|t| t != parent) {
        return Err(WritebackError::Moved(branch.to_string()));
    }
    let commit = repo.commit(None, &sig, &sig, message, &tree, &[&parent_commit])?;
    // Moves the branch only if it is still where we started.
    match tip {
        Some(_) => {
            repo.reference_matching(&refname, commit, true, parent, message)?;
        }
        None => {
            repo.reference(&refname, commit, false, message)?;
        }
    }
    sync_worktree(repo, &refname, path, old_blob, content);
    Ok(commit)
}

/// The committer: `user.name`/`user.email` from the repository's Git
/// configuration, else Cairn.
fn signature(repo: &Repository) -> Result<Signature<'static>, git2::Error> {
    match repo.signature() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Signature::now("Cairn", "cairn@localhost"),
    }
}

/// Brings a checked-out `refname` in step with a commit made behind its
/// back, for the one file changed — only when that file was unmodified.
fn sync_worktree(repo: &Repository, refname: &str, path: &str, old: Option<Oid>, content: &[u8]) {
    let Some(workdir) = repo.workdir() else {
        return;
    };
    let on_branch = repo
        .head()
        .ok()
        .and_then(|h| h.name().map(str::to_string))
        .is_some_and(|h| h == refname);
    if !on_branch {
        return;
    }
    let file = workdir.join(path);
    let unmodified = match (std::fs::read(&file), old) {
        (Ok(bytes), Some(old)) => {
            Oid::hash_object(git2::ObjectType::Blob, &bytes).ok() == Some(old)
        }
        (Err(_), None) => true,
        _ => false,
    };
    if !unmodified {
        tracing::warn!(
            "{path} has local changes; the committed change is not written to the work tree"
        );
        return;
    }
    if std::fs::write(&file, content).is_err() {
        return;
    }
    if let Ok(mut index) = repo.index() {
        let _ = index.add_path(Path::new(path));
        let _ = index.write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn pins_a_block_mapping_keeping_comments() {
        let src = "# the classifier\napiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: clf\nspec:\n  runtime: onnx\n  from:\n    job: train   # nightly\n    output: model\n  replicas: 2\n";
        let out = pin_artifact(src, "m.yaml", "clf", SHA).unwrap();
        assert_eq!(
            out,
            format!(
                "# the classifier\napiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: clf\nspec:\n  runtime: onnx\n  from:\n    job: train   # nightly\n    output: model\n    sha256: {SHA}\n  replicas: 2\n"
            )
        );
        // Pinning again replaces the digest.
        let other = "cd".repeat(32);
        let again = pin_artifact(&out, "m.yaml", "clf", &other).unwrap();
        assert_eq!(again, out.replace(SHA, &other));
    }

    #[test]
    fn pins_a_flow_mapping_in_the_right_document() {
        let src = "kind: Model\nmetadata: {name: a}\nspec: {runtime: onnx, from: {job: t, output: m}}\n---\nkind: Model\nmetadata: {name: b}\nspec:\n  runtime: onnx\n  from: {job: t, output: m}\n";
        let out = pin_artifact(src, "m.yaml", "b", SHA).unwrap();
        assert!(out.starts_with(
            "kind: Model\nmetadata: {name: a}\nspec: {runtime: onnx, from: {job: t, output: m}}\n"
        ));
        assert!(
            out.ends_with(&format!("  from: {{job: t, output: m, sha256: {SHA}}}\n")),
            "{out}"
        );
    }

    #[test]
    fn refuses_what_cannot_be_pinned() {
        let src = "kind: Model\nmetadata: {name: a}\nspec: {runtime: onnx, artifact: m.onnx}\n";
        assert!(matches!(
            pin_artifact(src, "m.yaml", "a", SHA),
            Err(WritebackError::NotPinnable(m)) if m.contains("commit the new file")
        ));
        assert!(matches!(
            pin_artifact(src, "m.yaml", "zz", SHA),
            Err(WritebackError::NotPinnable(m)) if m.contains("no model `zz`")
        ));
    }

    #[test]
    fn commits_on_a_branch_and_updates_a_clean_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("specs")).unwrap();
        std::fs::write(dir.path().join("specs/m.yaml"), "a: 1\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("specs/m.yaml")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let first = repo
            .commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
            .unwrap();
        let branch = repo.head().unwrap().shorthand().unwrap().to_string();
        let c = commit_file(&repo, &branch, first, "specs/m.yaml", b"a: 2\n", "pin").unwrap();
        assert_eq!(
            repo.refname_to_id(&format!("refs/heads/{branch}")).unwrap(),
            c
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("specs/m.yaml")).unwrap(),
            "a: 2\n"
        );
        let statuses = repo.statuses(None).unwrap();
        assert!(
            statuses.iter().all(|s| s.status().is_empty()),
            "work tree clean"
        );
        // A stale parent is refused.
        assert!(matches!(
            commit_file(&repo, &branch, first, "specs/m.yaml", b"a: 3\n", "pin"),
            Err(WritebackError::Moved(_))
        ));
        // A new branch for review leaves the checkout alone.
        commit_file(
            &repo,
            "cairn/promote",
            c,
            "specs/m.yaml",
            b"a: 4\n",
            "review",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("specs/m.yaml")).unwrap(),
            "a: 2\n"
        );
    }
}
