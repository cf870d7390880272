//! MLflow's artifact service (`/api/2.0/mlflow-artifacts/artifacts`): the
//! files of runs (`EXP/RUN/artifacts/...`) and logged models
//! (`EXP/models/MODEL/artifacts/...`), kept under the data directory as
//! their artifact URIs lay them out.
//!
//! Paths are checked before any file is touched (no `..`, `.`, empty or
//! absolute segments, backslashes or NUL), so nothing outside the artifact
//! directory is reached. An upload is written to a temporary file and
//! renamed into place once whole, so a failed or oversized upload leaves
//! nothing behind. Reads need `viewer` in the experiment's project,
//! uploads `editor`, and an upload's run or logged model must exist in
//! that experiment.

use super::errors::{MlError, MlResult};
use super::{MlflowState, Params, empty, experiment_id};
use crate::auth::{Caller, Role};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cairn_api::mlflow::{ArtifactList, ArtifactListQuery, FileInfo};
use futures_util::StreamExt;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest artifact accepted (413 beyond).
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// The segments of an artifact path, each checked (a trailing `/` is
/// allowed, for directories).
pub(crate) fn segments(path: &str) -> MlResult<Vec<&str>> {
    let bad = |why: &str| MlError::invalid(format!("invalid artifact path `{path}`: {why}"));
    if path.contains('\\') || path.contains('\0') {
        return Err(bad("backslashes and NUL are not allowed"));
    }
    if path.starts_with('/') {
        return Err(bad("it must be relative"));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return Err(bad("`..`, `.` and empty segments are not allowed"));
    }
    Ok(parts)
}

/// What a writable artifact path belongs to, checked against the store:
/// the experiment's id and the length of the owner's prefix
/// (`EXP/RUN/artifacts`, `EXP/models/MODEL/artifacts`).
fn owner(s: &MlflowState, caller: &Caller, parts: &[&str]) -> MlResult<usize> {
    let experiment = experiment_id(parts[0])?;
    let prefix = match parts.get(1..) {
        Some(["models", model, "artifacts", ..]) => {
            let model = s.logged_model(caller, model, Role::Editor)?;
            if model.experiment_id != experiment {
                return Err(MlError::not_found(format!(
                    "no logged model {} in experiment {experiment}",
                    model.id
                )));
            }
            4
        }
        Some([run, "artifacts", ..]) => {
            let run = s.run(caller, Some(run), Role::Editor)?;
            if run.info.experiment_id != experiment {
                return Err(MlError::not_found(format!(
                    "no run {} in experiment {experiment}",
                    run.info.id
                )));
            }
            3
        }
        _ => {
            return Err(MlError::invalid(format!(
                "artifacts go under EXPERIMENT/RUN/artifacts/ or EXPERIMENT/models/MODEL/artifacts/, not `{}`",
                parts.join("/")
            )));
        }
    };
    if parts.len() <= prefix {
        return Err(MlError::invalid(format!(
            "name a file under `{}/`",
            parts.join("/")
        )));
    }
    Ok(prefix)
}

impl MlflowState {
    /// Where the checked `parts` are on disk.
    fn file(&self, parts: &[&str]) -> PathBuf {
        let mut path = self.artifacts.clone();
        path.extend(parts);
        path
    }
}

/// The caller may read the experiment `parts` starts with.
fn may_read(s: &MlflowState, caller: &Caller, parts: &[&str]) -> MlResult<()> {
    s.experiment(caller, experiment_id(parts[0])?, Role::Viewer)
        .map(drop)
}

/// `PUT /api/2.0/mlflow-artifacts/artifacts/{path}`: stores the body (any
/// content type) as the file, replacing one already there.
pub async fn upload(
    State(s): State<MlflowState>,
    caller: Caller,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> MlResult<Response> {
    let parts = segments(&path)?;
    if path.ends_with('/') {
        return Err(MlError::invalid(format!(
            "invalid artifact path `{path}`: name a file"
        )));
    }
    owner(&s, &caller, &parts)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ARTIFACT_BYTES) {
        return Err(MlError::too_large("the artifact", MAX_ARTIFACT_BYTES));
    }
    let target = s.file(&parts);
    let parent = target.parent().unwrap_or(&s.artifacts).to_path_buf();
    tokio::fs::create_dir_all(&parent).await.map_err(|e| {
        MlError::invalid(format!(
            "cannot store `{path}`: a file is in the way of its directory ({e})"
        ))
    })?;
    if tokio::fs::symlink_metadata(&target)
        .await
        .is_ok_and(|m| !m.is_file())
    {
        return Err(MlError::invalid(format!(
            "cannot store `{path}`: a directory of that name exists"
        )));
    }
    let temporary = s.artifacts.join(".tmp");
    tokio::fs::create_dir_all(&temporary)
        .await
        .map_err(|e| MlError::internal("creating the artifacts' temporary directory", e))?;
    let temporary = temporary.join(uuid::Uuid::now_v7().simple().to_string());
    let written = write(&temporary, body).await;
    let result = match written {
        Ok(()) => tokio::fs::rename(&temporary, &target)
            .await
            .map_err(|e| MlError::internal("storing an artifact", e)),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    result.map(|()| empty())
}

/// Writes `body` to `to`, at most [`MAX_ARTIFACT_BYTES`] of it.
async fn write(to: &std::path::Path, body: Body) -> MlResult<()> {
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| MlError::internal("creating an artifact", e))?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| MlError::invalid(format!("reading the upload: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_ARTIFACT_BYTES {
            return Err(MlError::too_large("the artifact", MAX_ARTIFACT_BYTES));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| MlError::internal("writing an artifact", e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| MlError::internal("writing an artifact", e))
}

/// `GET /api/2.0/mlflow-artifacts/artifacts/{path}`: the file's bytes.
pub async fn download(
    State(s): State<MlflowState>,
    caller: Caller,
    Path(path): Path<String>,
) -> MlResult<Response> {
    let parts = segments(&path)?;
    may_read(&s, &caller, &parts)?;
    let file = s.file(&parts);
    let missing = || MlError::not_found(format!("no artifact `{path}`"));
    let meta = tokio::fs::symlink_metadata(&file)
        .await
        .map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let handle = tokio::fs::File::open(&file).await.map_err(|_| missing())?;
    let stream = futures_util::stream::unfold(Some(handle), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    Ok(response)
}

/// `GET /api/2.0/mlflow-artifacts/artifacts?path=DIR`: what the directory
/// holds, by name (`{}` for a file or nothing).
pub async fn list(
    State(s): State<MlflowState>,
    caller: Caller,
    Params(q): Params<ArtifactListQuery>,
) -> MlResult<Json<ArtifactList>> {
    let path = q.path.unwrap_or_default();
    let parts = segments(&path)?;
    may_read(&s, &caller, &parts)?;
    let dir = s.file(&parts);
    let mut files = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(meta) = tokio::fs::symlink_metadata(entry.path()).await else {
                continue;
            };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if meta.is_dir() {
                files.push(FileInfo {
                    path: name,
                    is_dir: true,
                    file_size: None,
                });
            } else if meta.is_file() {
                files.push(FileInfo {
                    path: name,
                    is_dir: false,
                    file_size: i64::try_from(meta.len()).ok(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Json(ArtifactList { files }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_stay_inside() {
        assert_eq!(
            segments("1/abc/artifacts/dir/x.txt").unwrap(),
            ["1", "abc", "artifacts", "dir", "x.txt"]
        );
        assert_eq!(
            segments("1/abc/artifacts/").unwrap(),
            ["1", "abc", "artifacts"]
        );
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "1/../2",
            "1/abc/artifacts/..",
            "1/./x",
            "1//x",
            "1\\x",
            "1/x\0y",
            "..",
        ] {
            let e = segments(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(
                e.body.error_code,
                super::super::errors::INVALID_PARAMETER_VALUE
            );
        }
    }
}
