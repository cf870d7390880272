//! The operator's token, and how the command line on the same machine
//! finds it.
//!
//! `cairn up` makes an admin token on first start and keeps it in the data
//! directory's `admin-token` (mode 0600). It also writes a runtime file,
//! keyed by the server's URL, in a per-user directory (`$CAIRN_RUNTIME_DIR`,
//! else `$XDG_RUNTIME_DIR/cairn`, else `~/.local/share/cairn/runtime`), as
//! Jupyter does, so that `cairn status --server URL` finds the token
//! whatever `--data-dir` was; the file goes when the server stops.

use anyhow::{Context, Result};
use cairn_store::Store;
use cairn_store::tokens::{NewToken, TokenKind};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The admin token's file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// What a runtime file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeFile {
    /// The server's URL (canonical: loopback names as 127.0.0.1).
    url: String,
    /// The admin token.
    token: String,
    /// The server's process.
    pid: u32,
    /// Its data directory.
    data_dir: PathBuf,
}

/// Writes `contents` to `path`, readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The admin token of the data directory `data_dir`: the one its file holds
/// while the store knows it and it is live, else a new one (true: made
/// now).
pub fn admin_token(store: &Store, data_dir: &Path) -> Result<(String, bool)> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let now = chrono::Utc::now().timestamp_millis();
        match store.check_token(text.trim(), now) {
            Ok(_) => return Ok((text.trim().to_string(), false)),
            Err(e) => tracing::warn!(
                "the admin token in {} is no longer valid ({e}): making a new one",
                path.display()
            ),
        }
    }
    let (secret, info) = store
        .create_token(&NewToken {
            name: "the operator's token (made on first start)".into(),
            kind: TokenKind::Admin,
            project: None,
            role: "admin".into(),
            created_by: cairn_store::SYSTEM_ACTOR.into(),
            expires_at: None,
        })
        .context("making the admin token")?;
    write_private(&path, format!("{secret}\n").as_bytes())?;
    let _ = store.audit(
        None,
        None,
        "token-create",
        &format!("admin token {} in {}", info.id, path.display()),
    );
    Ok((secret, true))
}

/// A server URL as runtime files are keyed: loopback and unspecified
/// hosts as `127.0.0.1`, no trailing slash.
pub fn canonical_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return url.to_string();
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = match uri.host().unwrap_or("127.0.0.1") {
        "localhost" | "127.0.0.1" | "[::1]" | "::1" | "0.0.0.0" | "[::]" => "127.0.0.1",
        h => h,
    };
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    format!("{scheme}://{host}:{port}")
}

/// The per-user directory of runtime files.
fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_RUNTIME_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("cairn"),
        None => super::default_data_dir().join("runtime"),
    }
}

/// The runtime file of the server at `url`.
fn runtime_file(url: &str) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(canonical_url(url).as_bytes())[..8]);
    runtime_dir().join(format!("server-{digest}.json"))
}

/// Writes the runtime file of the server at `url`; returns its path.
pub fn write_runtime_file(url: &str, token: &str, data_dir: &Path) -> Result<PathBuf> {
    let dir = runtime_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = runtime_file(url);
    let file = RuntimeFile {
        url: canonical_url(url),
        token: token.to_string(),
        pid: std::process::id(),
        data_dir: data_dir.to_path_buf(),
    };
    write_private(&path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(path)
}

/// Removes the runtime file of the server at `url` if this process wrote it.
pub fn remove_runtime_file(url: &str) {
    let path = runtime_file(url);
    let ours = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<RuntimeFile>(&b).ok())
        .is_some_and(|f| f.pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// The admin token of the server at `url`, from its runtime file.
pub fn local_token(url: &str) -> Option<String> {
    let bytes = std::fs::read(runtime_file(url)).ok()?;
    let file: RuntimeFile = serde_json::from_slice(&bytes).ok()?;
    (file.url == canonical_url(url)).then_some(file.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_one() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
            "http://0.0.0.0:8080",
        ] {
            assert_eq!(canonical_url(url), "http://127.0.0.1:8080", "{url}");
        }
        assert_eq!(
            canonical_url("https://cairn.example.com"),
            "https://cairn.example.com:443"
        );
        assert_ne!(
            runtime_file("http://127.0.0.1:8080"),
            runtime_file("http://127.0.0.1:8081")
        );
    }

    #[test]
    fn the_admin_token_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cairn.db")).unwrap();
        let (first, made) = admin_token(&store, dir.path()).unwrap();
        assert!(made);
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, made) = admin_token(&store, dir.path()).unwrap();
        assert_eq!((again.as_str(), made), (first.as_str(), false));
        // Revoked: a new one replaces it.
        let id = store
            .list_tokens(None, &[TokenKind::Admin])
            .unwrap()
            .remove(0)
            .id;
        store.revoke_token(&id).unwrap();
        let (third, made) = admin_token(&store, dir.path()).unwrap();
        assert!(made && third != first);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), third);
    }
}
