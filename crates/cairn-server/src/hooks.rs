//! Git push webhooks.
//!
//! `POST /hooks/git` receives push notifications from GitHub, GitLab, Gitea
//! (and its forks Forgejo and Gogs) or anything else that speaks the GitHub
//! dialect. [`verify_and_parse`] checks the request's signature against the
//! configured secret and pulls out what a sync needs: the ref, the new commit
//! and the repository's URLs. The server does the HTTP side.
//!
//! Signatures:
//!
//! - GitHub and generic senders: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`;
//! - Gitea: `X-Gitea-Signature: <hex HMAC-SHA256>` (Forgejo: `X-Forgejo-Signature`,
//!   Gogs: `X-Gogs-Signature`), or `X-Hub-Signature-256` when that is what came;
//! - GitLab: `X-Gitlab-Token`, the secret itself.
//!
//! All comparisons are constant-time.

use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How webhooks are checked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The shared secret. `None` accepts every webhook unverified.
    pub secret: Option<String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Who sent a webhook, as told by its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// `X-GitHub-Event`.
    GitHub,
    /// `X-Gitlab-Event`.
    GitLab,
    /// `X-Gitea-Event` (also Forgejo's `X-Forgejo-Event` and Gogs' `X-Gogs-Event`).
    Gitea,
    /// None of the above: GitHub-style signature and payload are assumed.
    Generic,
}

impl Provider {
    /// Lower-case name, for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verified webhook says.
///
/// `git_ref` is `None` for events that are not pushes (a GitHub `ping`, an
/// issue comment, ...): there is nothing to sync. `after` is `None` when the
/// payload has no new commit, including branch deletions (all-zero SHA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The full ref pushed to, e.g. `refs/heads/main`.
    pub git_ref: Option<String>,
    /// The commit the ref now points at.
    pub after: Option<String>,
    /// The repository's URLs as the payload gives them (clone, SSH, web),
    /// without duplicates, in a fixed order.
    pub repository_urls: Vec<String>,
}

impl PushEvent {
    /// The branch pushed to: `refs/heads/main` → `main`. A bare name (as a
    /// hand-written generic hook might send) is taken as a branch; other refs
    /// (`refs/tags/...`) give `None`.
    pub fn branch(&self) -> Option<&str> {
        let r = self.git_ref.as_deref()?;
        match r.strip_prefix("refs/heads/") {
            Some(branch) => Some(branch),
            None if r.starts_with("refs/") => None,
            None => Some(r),
        }
    }

    /// The tag pushed: `refs/tags/v1` → `v1`.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.as_deref()?.strip_prefix("refs/tags/")
    }
}

/// Why a webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// A secret is configured but the request carries no signature or token.
    #[error("webhook signature missing: a secret is configured, so the request must be signed")]
    MissingSignature,
    /// The signature or token does not match the secret.
    #[error("webhook signature does not match the configured secret")]
    BadSignature,
    /// The body is not a payload we understand.
    #[error("bad webhook payload: {0}")]
    BadPayload(String),
}

impl HookError {
    /// The HTTP status to answer with: 401 for signature problems, 400 for
    /// payload problems.
    pub fn status(&self) -> StatusCode {
        match self {
            HookError::MissingSignature | HookError::BadSignature => StatusCode::UNAUTHORIZED,
            HookError::BadPayload(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks a webhook's signature and parses its payload.
pub fn verify_and_parse(
    config: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<PushEvent, HookError> {
    let (provider, event) = detect(headers);
    if let Some(secret) = &config.secret {
        verify(provider, secret.as_bytes(), headers, body)?;
    }
    let payload = payload_json(headers, body)?;
    Ok(parse(provider, event.as_deref(), &payload))
}

/// The provider and its event name (`push`, `ping`, `Push Hook`, ...).
fn detect(headers: &HeaderMap) -> (Provider, Option<String>) {
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
    };
    // Gitea and its forks also send X-GitHub-Event: look at theirs first.
    for name in ["x-gitea-event", "x-forgejo-event", "x-gogs-event"] {
        if let Some(event) = get(name) {
            return (Provider::Gitea, Some(event));
        }
    }
    if let Some(event) = get("x-gitlab-event") {
        return (Provider::GitLab, Some(event));
    }
    if let Some(event) = get("x-github-event") {
        return (Provider::GitHub, Some(event));
    }
    (Provider::Generic, None)
}

fn verify(
    provider: Provider,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), HookError> {
    match provider {
        Provider::GitLab => {
            let token = headers
                .get("x-gitlab-token")
                .ok_or(HookError::MissingSignature)?;
            if constant_time_eq(token.as_bytes(), secret) {
                Ok(())
            } else {
                Err(HookError::BadSignature)
            }
        }
        Provider::Gitea => {
            let signature = [
                "x-gitea-signature",
                "x-forgejo-signature",
                "x-gogs-signature",
            ]
            .into_iter()
            .find_map(|name| headers.get(name))
            .map(|v| (v, false))
            .or_else(|| headers.get("x-hub-signature-256").map(|v| (v, true)));
            let (value, prefixed) = signature.ok_or(HookError::MissingSignature)?;
            let hex_digest = signature_hex(value.as_bytes(), prefixed)?;
            verify_hmac(secret, body, hex_digest)
        }
        Provider::GitHub | Provider::Generic => {
            let value = headers
                .get("x-hub-signature-256")
                .ok_or(HookError::MissingSignature)?;
            let hex_digest = signature_hex(value.as_bytes(), true)?;
            verify_hmac(secret, body, hex_digest)
        }
    }
}

/// The hex digest in a signature header: `sha256=<hex>` when `prefixed`,
/// bare `<hex>` (or `sha256=<hex>`) otherwise.
fn signature_hex(value: &[u8], prefixed: bool) -> Result<&[u8], HookError> {
    let value = value.trim_ascii();
    const PREFIX: &[u8] = b"sha256=";
    let has_prefix =
        value.len() >= PREFIX.len() && value[..PREFIX.len()].eq_ignore_ascii_case(PREFIX);
    match (has_prefix, prefixed) {
        (true, _) => Ok(&value[PREFIX.len()..]),
        (false, false) => Ok(value),
        (false, true) => Err(HookError::BadSignature),
    }
}

fn verify_hmac(secret: &[u8], body: &[u8], hex_digest: &[u8]) -> Result<(), HookError> {
    let expected = hex::decode(hex_digest).map_err(|_| HookError::BadSignature)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| HookError::BadSignature)
}

/// Constant-time equality of two byte strings of any lengths: compares their
/// HMACs (keyed with `b`) with `verify_slice`.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let digest = |data: &[u8]| {
        let mut mac = HmacSha256::new_from_slice(b).expect("HMAC takes keys of any length");
        mac.update(data);
        mac
    };
    let expected = digest(b).finalize().into_bytes();
    digest(a).verify_slice(&expected).is_ok()
}

/// The payload as JSON: the body itself, or the `payload` field of a
/// form-encoded body (GitHub's `application/x-www-form-urlencoded` option).
fn payload_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, HookError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let value: Value = if form {
        let payload = body
            .split(|&b| b == b'&')
            .find_map(|pair| pair.strip_prefix(b"payload="))
            .ok_or_else(|| HookError::BadPayload("form body without a `payload` field".into()))?;
        serde_json::from_slice(&form_decode(payload))
    } else {
        serde_json::from_slice(body)
    }
    .map_err(|e| HookError::BadPayload(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(HookError::BadPayload("expected a JSON object".into()));
    }
    Ok(value)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a
/// byte; a malformed escape is kept as is.
fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => match hex::decode(&input[i + 1..i + 3]) {
                Ok(byte) => {
                    out.push(byte[0]);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn parse(provider: Provider, event: Option<&str>, payload: &Value) -> PushEvent {
    let is_push = match provider {
        Provider::GitLab => {
            let kind = |field: &str| payload.get(field).and_then(Value::as_str);
            matches!(event, Some("Push Hook" | "Tag Push Hook"))
                || matches!(kind("object_kind"), Some("push" | "tag_push"))
                || matches!(kind("event_name"), Some("push" | "tag_push"))
        }
        Provider::GitHub | Provider::Gitea => event.is_none_or(|e| e.eq_ignore_ascii_case("push")),
        Provider::Generic => true,
    };

    let string = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };

    let (git_ref, after) = if is_push {
        let git_ref = string(payload.get("ref"));
        let mut after = string(payload.get("after"));
        if provider == Provider::GitLab && after.as_deref().is_none_or(is_null_sha) {
            after = string(payload.get("checkout_sha")).or(after);
        }
        (git_ref, after.filter(|a| !is_null_sha(a)))
    } else {
        (None, None)
    };

    let mut repository_urls: Vec<String> = Vec::new();
    for (object, field) in [
        ("repository", "clone_url"),
        ("repository", "ssh_url"),
        ("repository", "html_url"),
        ("repository", "git_http_url"),
        ("repository", "git_ssh_url"),
        ("project", "git_http_url"),
        ("project", "git_ssh_url"),
    ] {
        if let Some(url) = string(payload.get(object).and_then(|o| o.get(field)))
            && !repository_urls.contains(&url)
        {
            repository_urls.push(url);
        }
    }

    PushEvent {
        provider,
        git_ref,
        after,
        repository_urls,
    }
}

/// `0000000000000000000000000000000000000000`: the ref was deleted (or created).
fn is_null_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "It's a Secret to Everybody";

    const GITHUB_PUSH: &str = r#"{
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {
            "full_name": "acme/models",
            "html_url": "https://github.com/acme/models",
            "clone_url": "https://github.com/acme/models.git",
            "ssh_url": "git@github.com:acme/models.git"
        }
    }"#;

    fn config(secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            secret: secret.map(str::to_owned),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn hmac_hex(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn known_hmac_vector() {
        // From GitHub's documentation on validating webhook deliveries.
        assert_eq!(
            hmac_hex(SECRET, b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn github_good_signature() {
        let body = GITHUB_PUSH.as_bytes();
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.provider, Provider::GitHub);
        assert_eq!(event.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(event.branch(), Some("main"));
        assert_eq!(event.tag(), None);
        assert_eq!(
            event.after.as_deref(),
            Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
        );
        assert_eq!(
            event.repository_urls,
            [
                "https://github.com/acme/models.git",
                "git@github.com:acme/models.git",
                "https://github.com/acme/models",
            ]
        );
    }

    #[test]
    fn github_bad_signature() {
        let body = GITHUB_PUSH.as_bytes();
        let wrong = format!("sha256={}", hmac_hex("another secret", body));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &wrong)]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
        assert_eq!(err, HookError::BadSignature);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);

        // Right HMAC, tampered body.
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
        let tampered = GITHUB_PUSH.replace("main", "evil");
        let err = verify_and_parse(&config(Some(SECRET)), &h, tampered.as_bytes()).unwrap_err();
        assert_eq!(err, HookError::BadSignature);

        // Not hex, no prefix, truncated.
        let good = hmac_hex(SECRET, body);
        for bad in [
            "sha256=zz".to_owned(),
            good.clone(),
            format!("sha256={}", &good[..40]),
            format!("sha1={good}"),
        ] {
            let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &bad)]);
            let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
            assert_eq!(err, HookError::BadSignature, "{bad}");
        }
    }

    #[test]
    fn github_missing_signature() {
        let h = headers(&[("x-github-event", "push")]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, GITHUB_PUSH.as_bytes()).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn generic_uses_hub_signature() {
        let body = br#"{"ref": "refs/heads/dev", "after": "abc123"}"#;
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let h = headers(&[("x-hub-signature-256", &sig)]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.provider, Provider::Generic);
        assert_eq!(event.branch(), Some("dev"));
        assert_eq!(event.after.as_deref(), Some("abc123"));
        assert!(event.repository_urls.is_empty());

        let err = verify_and_parse(&config(Some(SECRET)), &HeaderMap::new(), body).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);
    }

    #[test]
    fn gitlab_token() {
        let body = br#"{
            "object_kind": "push",
            "ref": "refs/heads/main",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "project": {
                "git_http_url": "https://gitlab.example.com/ml/models.git",
                "git_ssh_url": "git@gitlab.example.com:ml/models.git"
            },
            "repository": {
                "git_http_url": "https://gitlab.example.com/ml/models.git",
                "git_ssh_url": "git@gitlab.example.com:ml/models.git"
            }
        }"#;
        let good = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", SECRET)]);
        let event = verify_and_parse(&config(Some(SECRET)), &good, body).unwrap();
        assert_eq!(event.provider, Provider::GitLab);
        assert_eq!(event.branch(), Some("main"));
        assert_eq!(
            event.after.as_deref(),
            Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
        );
        assert_eq!(
            event.repository_urls,
            [
                "https://gitlab.example.com/ml/models.git",
                "git@gitlab.example.com:ml/models.git",
            ]
        );

        for wrong in [
            "nope",
            "It's a Secret to Everybody!",
            "It's a Secret to Everybod",
            "",
        ] {
            let bad = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", wrong)]);
            let err = verify_and_parse(&config(Some(SECRET)), &bad, body).unwrap_err();
            assert_eq!(err, HookError::BadSignature, "{wrong:?}");
        }

        let missing = headers(&[("x-gitlab-event", "Push Hook")]);
        let err = verify_and_parse(&config(Some(SECRET)), &missing, body).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);

        // GitLab signs nothing: an HMAC header is no substitute for the token.
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let hub = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-hub-signature-256", &sig),
        ]);
        let err = verify_and_parse(&config(Some(SECRET)), &hub, body).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);
    }

    #[test]
    fn gitlab_checkout_sha_fallback() {
        let body = br#"{"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "abc"}"#;
        let h = headers(&[("x-gitlab-event", "Push Hook")]);
        let event = verify_and_parse(&config(None), &h, body).unwrap();
        assert_eq!(event.after.as_deref(), Some("abc"));
    }

    #[test]
    fn gitea_signature() {
        let body = br#"{
            "ref": "refs/heads/main",
            "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
            "repository": {
                "html_url": "https://gitea.example.com/ml/models",
                "clone_url": "https://gitea.example.com/ml/models.git",
                "ssh_url": "git@gitea.example.com:ml/models.git"
            }
        }"#;
        let sig = hmac_hex(SECRET, body);
        // Gitea sends GitHub-compatible headers too; Gitea wins.
        let h = headers(&[
            ("x-gitea-event", "push"),
            ("x-github-event", "push"),
            ("x-gitea-signature", &sig),
        ]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.provider, Provider::Gitea);
        assert_eq!(event.branch(), Some("main"));
        assert_eq!(
            event.after.as_deref(),
            Some("bffeb74224043ba2feb48d137756c8a9331c449a")
        );
        assert_eq!(event.repository_urls.len(), 3);

        // X-Hub-Signature-256 is accepted when that is what came.
        let hub = format!("sha256={sig}");
        let h = headers(&[("x-gitea-event", "push"), ("x-hub-signature-256", &hub)]);
        assert!(verify_and_parse(&config(Some(SECRET)), &h, body).is_ok());

        let wrong = hmac_hex("other", body);
        let h = headers(&[("x-gitea-event", "push"), ("x-gitea-signature", &wrong)]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
        assert_eq!(err, HookError::BadSignature);

        let h = headers(&[("x-gitea-event", "push")]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);

        // Forgejo.
        let h = headers(&[("x-forgejo-event", "push"), ("x-forgejo-signature", &sig)]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.provider, Provider::Gitea);
    }

    #[test]
    fn no_secret_accepts_unsigned() {
        let h = headers(&[("x-github-event", "push")]);
        let event = verify_and_parse(&config(None), &h, GITHUB_PUSH.as_bytes()).unwrap();
        assert_eq!(event.branch(), Some("main"));

        // Even with a signature that would not match.
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=00"),
        ]);
        assert!(verify_and_parse(&config(None), &h, GITHUB_PUSH.as_bytes()).is_ok());
    }

    #[test]
    fn ping_has_no_ref() {
        let body = br#"{
            "zen": "Keep it logically awesome.",
            "hook_id": 1,
            "repository": {"clone_url": "https://github.com/acme/models.git"}
        }"#;
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let h = headers(&[("x-github-event", "ping"), ("x-hub-signature-256", &sig)]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.provider, Provider::GitHub);
        assert_eq!(event.git_ref, None);
        assert_eq!(event.after, None);
        assert_eq!(event.branch(), None);
        assert_eq!(
            event.repository_urls,
            ["https://github.com/acme/models.git"]
        );

        // A ping is still verified.
        let h = headers(&[("x-github-event", "ping")]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
        assert_eq!(err, HookError::MissingSignature);
    }

    #[test]
    fn other_events_have_no_ref() {
        let h = headers(&[("x-github-event", "create")]);
        let event = verify_and_parse(&config(None), &h, br#"{"ref": "main"}"#).unwrap();
        assert_eq!(event.git_ref, None);
    }

    #[test]
    fn malformed_body() {
        for body in [&b"not json"[..], b"", b"[1, 2]", b"{\"ref\": "] {
            let sig = format!("sha256={}", hmac_hex(SECRET, body));
            let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &sig)]);
            let err = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap_err();
            assert!(matches!(err, HookError::BadPayload(_)), "{err:?}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn signature_is_checked_before_payload() {
        let h = headers(&[("x-github-event", "push")]);
        let err = verify_and_parse(&config(Some(SECRET)), &h, b"not json").unwrap_err();
        assert_eq!(err, HookError::MissingSignature);
    }

    #[test]
    fn deleted_branch_has_no_after() {
        let body = br#"{"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000", "deleted": true}"#;
        let h = headers(&[("x-github-event", "push")]);
        let event = verify_and_parse(&config(None), &h, body).unwrap();
        assert_eq!(event.branch(), Some("old"));
        assert_eq!(event.after, None);
    }

    #[test]
    fn form_encoded_payload() {
        let body = b"payload=%7B%22ref%22%3A+%22refs%2Ftags%2Fv1.0%22%2C%22after%22%3A%22abc%22%7D";
        let sig = format!("sha256={}", hmac_hex(SECRET, body));
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sig),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        let event = verify_and_parse(&config(Some(SECRET)), &h, body).unwrap();
        assert_eq!(event.git_ref.as_deref(), Some("refs/tags/v1.0"));
        assert_eq!(event.tag(), Some("v1.0"));
        assert_eq!(event.branch(), None);
        assert_eq!(form_decode(b"a%2"), b"a%2");
        assert_eq!(form_decode(b"%zz%41"), b"%zzA");
    }

    #[test]
    fn debug_redacts_secret() {
        let text = format!("{:?}", config(Some(SECRET)));
        assert!(!text.contains("Secret"), "{text}");
    }
}
