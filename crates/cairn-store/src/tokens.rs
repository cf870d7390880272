//! API tokens: who may call the API, as what.
//!
//! A token's secret is `cairn_tok_`, its id's 8 hex digits, `_`, and 64 hex
//! digits (32 bytes from `/dev/urandom`), shown once at creation. Only the
//! SHA-256 of the secret is stored, in the control database, with its kind
//! (the operator's `admin` token, an `api` token made by someone, or a
//! `workload` token given to a job run or a replica), the project and role
//! it carries, when it expires and when it was last used. Every token is
//! also held in memory: [`Store::check_token`], on every request, runs no
//! SQL and compares hashes in constant time. Last-used times are kept in
//! memory and written by [`Store::flush_token_use`].

use crate::{Result, Store};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use subtle::ConstantTimeEq;

/// What every token's secret starts with.
pub const TOKEN_PREFIX: &str = "cairn_tok_";

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// The operator's token, made on first start.
    Admin,
    /// A token someone made (`cairn tokens create`).
    Api,
    /// A workload's own token, revoked when the workload ends.
    Workload,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Api => "api",
            TokenKind::Workload => "workload",
        }
    }

    fn parse(s: &str) -> TokenKind {
        match s {
            "admin" => TokenKind::Admin,
            "workload" => TokenKind::Workload,
            _ => TokenKind::Api,
        }
    }
}

/// What a new token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// What it is for, for people.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// The project it acts in (none: every project, for `admin`).
    pub project: Option<String>,
    /// The role: `viewer`, `editor`, `owner` or `admin`.
    pub role: String,
    /// Who made it.
    pub created_by: String,
    /// When it stops working (Unix seconds), if ever.
    pub expires_at: Option<i64>,
}

/// A token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// `tok_` and 8 hex digits.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// The project it acts in (none: every project).
    pub project: Option<String>,
    /// The role it carries.
    pub role: String,
    /// The secret's beginning, for people.
    pub prefix: String,
    /// Who made it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// When it was revoked (RFC 3339), if it was.
    pub revoked_at: Option<String>,
    /// When it was last presented (RFC 3339), if ever.
    pub last_used_at: Option<String>,
}

/// A presented token that is live: whom it speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token's id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// The project it acts in (none: every project).
    pub project: Option<String>,
    /// The role it carries.
    pub role: String,
}

/// Why a presented token does not open anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Not shaped like a token.
    #[error("the token is malformed (Cairn tokens start with `cairn_tok_`)")]
    Malformed,
    /// No such token, or the secret does not match.
    #[error("the token is not valid")]
    Unknown,
    /// Revoked.
    #[error("the token was revoked")]
    Revoked,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// One token in memory.
#[derive(Debug)]
struct Held {
    hash: [u8; 32],
    grant: TokenGrant,
    expires_at: Option<i64>,
    revoked: bool,
    /// Unix milliseconds of the last use not yet written (0: none).
    used: AtomicI64,
}

/// The tokens in memory, by the hex digits of their id (`tok_` left out,
/// so that a presented secret is looked up without allocating).
#[derive(Debug, Default)]
pub(crate) struct TokenCache(RwLock<HashMap<String, Held>>);

impl TokenCache {
    /// Loads every token of the database.
    pub(crate) fn load(conn: &rusqlite::Connection) -> Result<TokenCache> {
        let mut stmt = conn.prepare(
            "SELECT id, name, kind, project, role, hash, expires_at, revoked_at IS NOT NULL
             FROM api_tokens",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, bool>(7)?,
            ))
        })?;
        let mut map = HashMap::new();
        for row in rows {
            let (id, name, kind, project, role, hash, expires, revoked) = row?;
            let mut bytes = [0u8; 32];
            if hex::decode_to_slice(&hash, &mut bytes).is_err() {
                tracing::warn!("tokens: ignoring token {id}: its stored hash is malformed");
                continue;
            }
            let grant = TokenGrant {
                id: id.clone(),
                name,
                kind: TokenKind::parse(&kind),
                project,
                role,
            };
            let held = Held {
                hash: bytes,
                grant,
                expires_at: expires.as_deref().and_then(unix_seconds),
                revoked,
                used: AtomicI64::new(0),
            };
            map.insert(cache_key(&id).to_string(), held);
        }
        Ok(TokenCache(RwLock::new(map)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Held>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Held>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The columns of a [`TokenInfo`], as [`token_info`] reads them.
const TOKEN_COLUMNS: &str = "SELECT id, name, kind, project, role, prefix, created_by, created_at,
        expires_at, revoked_at, last_used_at FROM api_tokens";

/// A row of [`TOKEN_COLUMNS`].
fn token_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: TokenKind::parse(&r.get::<_, String>(2)?),
        project: r.get(3)?,
        role: r.get(4)?,
        prefix: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
        last_used_at: r.get(10)?,
    })
}

/// The cache's key of the token `id`.
fn cache_key(id: &str) -> &str {
    id.strip_prefix("tok_").unwrap_or(id)
}

fn unix_seconds(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rfc3339_millis(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// `bytes` random bytes from `/dev/urandom`, as hex.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    read_urandom(&mut buf).map_err(crate::StoreError::Random)?;
    Ok(hex::encode(buf))
}

/// Fills `buf` from `/dev/urandom` (access keys and tokens).
pub(crate) fn read_urandom(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf))
}

/// The id a secret names, if it is shaped like a token.
fn id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(TOKEN_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    (id.len() == 8
        && random.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && random.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some(id)
}

impl Store {
    /// Creates a token. Returns its secret — the only time it is available —
    /// and its info.
    pub fn create_token(&self, new: &NewToken) -> Result<(String, TokenInfo)> {
        let conn = self.conn();
        let created_at = crate::now();
        let expires_at = new.expires_at.map(rfc3339);
        let (id, secret) = loop {
            let short = random_hex(4)?;
            let id = format!("tok_{short}");
            let taken: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = ?1)",
                [&id],
                |r| r.get(0),
            )?;
            if !taken {
                break (id, format!("{TOKEN_PREFIX}{short}_{}", random_hex(32)?));
            }
        };
        let digest = hash(&secret);
        let prefix = secret[..TOKEN_PREFIX.len() + 8].to_string();
        conn.execute(
            "INSERT INTO api_tokens
             (id, name, kind, project, role, hash, prefix, created_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                new.name,
                new.kind.as_str(),
                new.project,
                new.role,
                hex::encode(digest),
                prefix,
                new.created_by,
                created_at,
                expires_at
            ],
        )?;
        let grant = TokenGrant {
            id: id.clone(),
            name: new.name.clone(),
            kind: new.kind,
            project: new.project.clone(),
            role: new.role.clone(),
        };
        self.tokens.write().insert(
            cache_key(&id).to_string(),
            Held {
                hash: digest,
                grant,
                expires_at: new.expires_at,
                revoked: false,
                used: AtomicI64::new(0),
            },
        );
        let info = TokenInfo {
            id,
            name: new.name.clone(),
            kind: new.kind,
            project: new.project.clone(),
            role: new.role.clone(),
            prefix,
            created_by: new.created_by.clone(),
            created_at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((secret, info))
    }

    /// Checks a presented secret at `now` (Unix milliseconds), from memory,
    /// and notes its use.
    pub fn check_token(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> std::result::Result<TokenGrant, TokenRefusal> {
        let id = id_of(secret).ok_or(TokenRefusal::Malformed)?;
        let tokens = self.tokens.read();
        let held = tokens.get(id).ok_or(TokenRefusal::Unknown)?;
        if !bool::from(held.hash.ct_eq(&hash(secret))) {
            return Err(TokenRefusal::Unknown);
        }
        if held.revoked {
            return Err(TokenRefusal::Revoked);
        }
        if held.expires_at.is_some_and(|e| e * 1000 <= now_ms) {
            return Err(TokenRefusal::Expired);
        }
        held.used.store(now_ms, Ordering::Relaxed);
        Ok(held.grant.clone())
    }

    /// Whether the token `id` exists and is neither revoked nor expired.
    pub fn token_is_live(&self, id: &str) -> bool {
        let now = chrono::Utc::now().timestamp();
        self.tokens
            .read()
            .get(cache_key(id))
            .is_some_and(|h| !h.revoked && h.expires_at.is_none_or(|e| e > now))
    }

    /// Tokens, oldest first, revoked ones included: of `project` only when
    /// given, and of `kinds` only.
    pub fn list_tokens(
        &self,
        project: Option<&str>,
        kinds: &[TokenKind],
    ) -> Result<Vec<TokenInfo>> {
        self.flush_token_use()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{TOKEN_COLUMNS} WHERE (?1 IS NULL OR project = ?1) ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([project], token_info)?;
        let mut out = Vec::new();
        for row in rows {
            let info = row?;
            if kinds.contains(&info.kind) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// One token's info.
    pub fn token(&self, id: &str) -> Result<Option<TokenInfo>> {
        self.flush_token_use()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{TOKEN_COLUMNS} WHERE id = ?1"))?;
        Ok(stmt.query_row([id], token_info).optional()?)
    }

    /// Revokes the token `id`. True if it exists (revoked now or before: a
    /// second revocation keeps the first time).
    pub fn revoke_token(&self, id: &str) -> Result<bool> {
        let found = self
            .conn()
            .query_row("SELECT 1 FROM api_tokens WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some();
        if !found {
            return Ok(false);
        }
        self.conn().execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![crate::now(), id],
        )?;
        if let Some(held) = self.tokens.write().get_mut(cache_key(id)) {
            held.revoked = true;
        }
        Ok(true)
    }

    /// Writes the last-used times noted in memory since the last flush.
    pub fn flush_token_use(&self) -> Result<()> {
        let used: Vec<(String, i64)> = self
            .tokens
            .read()
            .values()
            .filter_map(|h| {
                let t = h.used.swap(0, Ordering::Relaxed);
                (t > 0).then(|| (h.grant.id.clone(), t))
            })
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        let conn = self.conn();
        for (id, t) in used {
            conn.execute(
                "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2",
                params![rfc3339_millis(t), id],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(kind: TokenKind, project: Option<&str>, role: &str, expires: Option<i64>) -> NewToken {
        NewToken {
            name: "ci".into(),
            kind,
            project: project.map(str::to_string),
            role: role.into(),
            created_by: "admin".into(),
            expires_at: expires,
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    #[test]
    fn a_token_is_checked_from_memory_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        let store = Store::open(&path).unwrap();
        let (secret, info) = store
            .create_token(&token(TokenKind::Api, Some("lab"), "editor", None))
            .unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == TOKEN_PREFIX.len() + 73);
        assert!(secret.starts_with(&info.prefix));
        let grant = store.check_token(&secret, now_ms()).unwrap();
        assert_eq!(
            (grant.project.as_deref(), grant.role.as_str(), grant.kind),
            (Some("lab"), "editor", TokenKind::Api)
        );
        // The secret itself is nowhere in the database.
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret[TOKEN_PREFIX.len() + 9..]));
        let store = Store::open(&path).unwrap();
        assert_eq!(store.check_token(&secret, now_ms()).unwrap().id, info.id);
    }

    #[test]
    fn wrong_revoked_expired_and_malformed_tokens_are_refused() {
        let store = Store::open_in_memory().unwrap();
        let (secret, info) = store
            .create_token(&token(TokenKind::Api, Some("lab"), "viewer", None))
            .unwrap();
        // Same id, another secret.
        let mut forged = secret.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            store.check_token(&forged, now_ms()),
            Err(TokenRefusal::Unknown)
        );
        assert_eq!(
            store.check_token("Bearer x", now_ms()),
            Err(TokenRefusal::Malformed)
        );
        assert_eq!(
            store.check_token(
                &format!("{TOKEN_PREFIX}0000000g_{}", "0".repeat(64)),
                now_ms()
            ),
            Err(TokenRefusal::Malformed)
        );
        assert!(store.revoke_token(&info.id).unwrap());
        assert!(!store.revoke_token("tok_00000000").unwrap());
        assert_eq!(
            store.check_token(&secret, now_ms()),
            Err(TokenRefusal::Revoked)
        );

        let soon = chrono::Utc::now().timestamp() + 60;
        let (secret, _) = store
            .create_token(&token(
                TokenKind::Workload,
                Some("lab"),
                "editor",
                Some(soon),
            ))
            .unwrap();
        assert!(store.check_token(&secret, now_ms()).is_ok());
        assert_eq!(
            store.check_token(&secret, (soon + 1) * 1000),
            Err(TokenRefusal::Expired)
        );
    }

    #[test]
    fn listing_shows_last_use_and_filters() {
        let store = Store::open_in_memory().unwrap();
        let (secret, _) = store
            .create_token(&token(TokenKind::Api, Some("lab"), "viewer", None))
            .unwrap();
        store
            .create_token(&token(TokenKind::Api, Some("other"), "viewer", None))
            .unwrap();
        store
            .create_token(&token(TokenKind::Admin, None, "admin", None))
            .unwrap();
        store.check_token(&secret, 1_800_000_000_000).unwrap();
        let lab = store.list_tokens(Some("lab"), &[TokenKind::Api]).unwrap();
        assert_eq!(lab.len(), 1);
        assert_eq!(
            lab[0].last_used_at.as_deref(),
            Some("2027-01-15T08:00:00.000Z")
        );
        let all = store
            .list_tokens(None, &[TokenKind::Api, TokenKind::Admin])
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(
            store.list_tokens(None, &[TokenKind::Workload]).unwrap(),
            vec![]
        );
    }
}
