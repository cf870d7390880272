//! Credentials for cloning and fetching: from the environment, a
//! git-credentials file, the SSH agent or Git's credential helpers. Secrets
//! are never logged; URLs are shown with their user info removed.

use git2::{Cred, CredentialType};
use std::path::PathBuf;

/// Where credentials for a remote repository come from.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User name for HTTPS (`CAIRN_GIT_USERNAME`; default `git` with a token).
    pub username: Option<String>,
    /// Password or token for HTTPS (`CAIRN_GIT_PASSWORD` or `CAIRN_GIT_TOKEN`).
    pub password: Option<String>,
    /// Private key for SSH (`CAIRN_GIT_SSH_KEY`); the SSH agent is tried otherwise.
    pub ssh_key: Option<PathBuf>,
    /// Passphrase of the SSH key (`CAIRN_GIT_SSH_PASSPHRASE`).
    pub ssh_passphrase: Option<String>,
    /// A file of `https://user:token@host` lines, as written by
    /// `git credential-store` (`CAIRN_GIT_CREDENTIALS_FILE`).
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .field(
                "ssh_passphrase",
                &self.ssh_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("file", &self.file)
            .finish()
    }
}

impl Credentials {
    /// Reads the `CAIRN_GIT_*` environment variables.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Credentials {
            username: var("CAIRN_GIT_USERNAME"),
            password: var("CAIRN_GIT_PASSWORD").or_else(|| var("CAIRN_GIT_TOKEN")),
            ssh_key: var("CAIRN_GIT_SSH_KEY").map(PathBuf::from),
            ssh_passphrase: var("CAIRN_GIT_SSH_PASSPHRASE"),
            file: var("CAIRN_GIT_CREDENTIALS_FILE").map(PathBuf::from),
        }
    }

    /// Looks up `url`'s host in the credentials file.
    pub fn from_file(&self, url: &str) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.file.as_ref()?).ok()?;
        let (scheme, host) = scheme_host(url)?;
        text.lines().find_map(|line| {
            let line = line.trim();
            let (line_scheme, rest) = line.split_once("://")?;
            let (userinfo, host_part) = rest.split_once('@')?;
            let line_host = host_part.split('/').next()?;
            if line_scheme != scheme || line_host != host {
                return None;
            }
            let (user, pass) = userinfo.split_once(':')?;
            Some((percent_decode(user), percent_decode(pass)))
        })
    }

    /// The git2 credential callback.
    pub fn git2_credentials(
        &self,
        url: &str,
        username_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let user = self
            .username
            .as_deref()
            .or(username_from_url)
            .unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) {
            return match &self.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, self.ssh_passphrase.as_deref()),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(password) = &self.password {
                return Cred::userpass_plaintext(user, password);
            }
            if let Some((u, p)) = self.from_file(url) {
                return Cred::userpass_plaintext(&u, &p);
            }
            if let Ok(config) = git2::Config::open_default()
                && let Ok(cred) = Cred::credential_helper(&config, url, username_from_url)
            {
                return Ok(cred);
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        Cred::default()
    }
}

fn scheme_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some((scheme, host))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with any password or token removed, safe to print.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let slash = if rest.contains('/') { "/" } else { "" };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***@")
            } else {
                // A lone user info may itself be a token (`https://TOKEN@host`).
                "***@".to_string()
            };
            format!("{scheme}://{shown}{host}{slash}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact_url("https://bob:s3cret@example.com/a/b.git"),
            "https://bob:***@example.com/a/b.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@example.com/a.git"),
            "https://***@example.com/a.git"
        );
        assert_eq!(
            redact_url("https://example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            redact_url("git@example.com:a/b.git"),
            "git@example.com:a/b.git"
        );
    }

    #[test]
    fn reads_credentials_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(
            &file,
            "https://alice:tok%40en@git.example.com\nhttps://carol:x@other.example.com\n",
        )
        .unwrap();
        let creds = Credentials {
            file: Some(file),
            ..Default::default()
        };
        assert_eq!(
            creds.from_file("https://git.example.com/team/specs.git"),
            Some(("alice".into(), "tok@en".into()))
        );
        assert_eq!(creds.from_file("https://nowhere.example.com/x.git"), None);
        assert!(!format!("{creds:?}").contains("tok"));
    }
}
