//! Per-model access keys of the gateway.
//!
//! A key is a secret `cairn_` followed by 64 hex digits (32 bytes from
//! `/dev/urandom`), shown once at creation. Only its SHA-256 is stored, with
//! an id (`key_` + 8 hex digits) and a short prefix so that people can tell
//! their keys apart. Every stored hash is also cached in memory, so that
//! [`KeyStore::check`], on every request, runs no SQL.
//!
//! The table is created with `CREATE TABLE IF NOT EXISTS` rather than a
//! versioned migration, so that the store may live in a file of its own or
//! share one (such as the events database) whose `user_version` another
//! schema owns; a table from before keys named their model's project gets
//! its `project` column added on opening, its keys without a project until
//! [`KeyStore::adopt_unattributed`] gives them one (they open no model
//! meanwhile).

use crate::events::{project_column, unique_names};
use cairn_spec::ResourceKey;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// What the secret of every key starts with.
pub const SECRET_PREFIX: &str = "cairn_";

/// How many characters of a secret, after [`SECRET_PREFIX`], its
/// [`KeyInfo::prefix`] shows.
const SHOWN: usize = 8;

/// Key store errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// SQLite failed.
    #[error("keys: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No randomness could be read.
    #[error("keys: cannot read /dev/urandom: {0}")]
    Random(std::io::Error),
}

type Result<T> = std::result::Result<T, KeyError>;

/// A key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// `key_` and 8 hex digits.
    pub id: String,
    /// The project of the model the key opens (none for a key made before
    /// keys named projects, and not adopted since).
    pub project: Option<String>,
    /// The model the key opens.
    pub model: String,
    /// The secret's beginning (`cairn_` and 8 hex digits), for people.
    pub prefix: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked (RFC 3339), if it was.
    pub revoked_at: Option<String>,
}

/// The verdict on a presented secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// A live key of this model.
    Valid,
    /// A key that was revoked (401).
    Revoked,
    /// A live key of another model (403).
    WrongModel,
    /// Not a key (401).
    Unknown,
}

type Hash = [u8; 32];

/// Whose a key is: the stored project (empty for none) and model name.
type Owner = (String, String);

fn owner(model: &ResourceKey) -> Owner {
    (project_column(model).to_string(), model.name.to_string())
}

/// The access keys of every model.
pub struct KeyStore {
    conn: Mutex<Connection>,
    /// Every key's hash → (owner, revoked).
    cache: RwLock<HashMap<Hash, (Owner, bool)>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS gateway_keys (
        id TEXT PRIMARY KEY NOT NULL,
        model TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        project TEXT NOT NULL DEFAULT ''
    );";

/// Indexes, once the `project` column is there.
const INDEXES: &str = "DROP INDEX IF EXISTS gateway_keys_model;
    CREATE INDEX IF NOT EXISTS gateway_keys_project_model ON gateway_keys (project, model);";

impl KeyStore {
    /// Opens (creating) the key store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<KeyStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let has_project: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('gateway_keys') WHERE name = 'project')",
            [],
            |r| r.get(0),
        )?;
        if !has_project {
            conn.execute_batch(
                "ALTER TABLE gateway_keys ADD COLUMN project TEXT NOT NULL DEFAULT ''",
            )?;
        }
        conn.execute_batch(INDEXES)?;
        let mut cache = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT hash, project, model, revoked_at IS NOT NULL FROM gateway_keys")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    r.get::<_, bool>(3)?,
                ))
            })?;
            for row in rows {
                let (hash, owner, revoked) = row?;
                let mut bytes = [0u8; 32];
                if hex::decode_to_slice(&hash, &mut bytes).is_ok() {
                    cache.insert(bytes, (owner, revoked));
                } else {
                    tracing::warn!("keys: ignoring a stored key with a malformed hash");
                }
            }
        }
        Ok(KeyStore {
            conn: Mutex::new(conn),
            cache: RwLock::new(cache),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a key for `model`. Returns its secret — the only time it is
    /// available — and its info.
    pub fn create(&self, model: &ResourceKey) -> Result<(String, KeyInfo)> {
        let mut random = [0u8; 32];
        read_urandom(&mut random)?;
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(random));
        let hash = hash(&secret);
        let info_prefix = secret[..SECRET_PREFIX.len() + SHOWN].to_string();
        let created_at = crate::now();
        let conn = self.conn();
        // Ids are short: on the rare collision, draw another.
        let mut attempts = 0;
        let id = loop {
            let mut bytes = [0u8; 4];
            read_urandom(&mut bytes)?;
            let id = format!("key_{}", hex::encode(bytes));
            let inserted = conn.execute(
                "INSERT INTO gateway_keys (id, project, model, hash, prefix, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    project_column(model),
                    model.name.as_str(),
                    hex::encode(hash),
                    info_prefix,
                    created_at
                ],
            );
            match inserted {
                Ok(_) => break id,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == ErrorCode::ConstraintViolation && attempts < 8 =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, (owner(model), false));
        let info = KeyInfo {
            id,
            project: model.project.as_ref().map(|p| p.to_string()),
            model: model.name.to_string(),
            prefix: info_prefix,
            created_at,
            revoked_at: None,
        };
        Ok((secret, info))
    }

    /// The keys of `model`, oldest first, revoked ones included.
    pub fn list(&self, model: &ResourceKey) -> Result<Vec<KeyInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, project, model, prefix, created_at, revoked_at FROM gateway_keys
             WHERE project = ?1 AND model = ?2 ORDER BY created_at, id",
        )?;
        let keys = stmt
            .query_map([project_column(model), model.name.as_str()], |r| {
                Ok(KeyInfo {
                    id: r.get(0)?,
                    project: Some(r.get::<_, String>(1)?).filter(|p| !p.is_empty()),
                    model: r.get(2)?,
                    prefix: r.get(3)?,
                    created_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }

    /// Revokes the key `id` of `model`. True if that key exists (revoked now
    /// or before: a second revocation keeps the first time), false if not.
    pub fn revoke(&self, model: &ResourceKey, id: &str) -> Result<bool> {
        let conn = self.conn();
        let hash: Option<String> = conn
            .query_row(
                "SELECT hash FROM gateway_keys WHERE id = ?1 AND project = ?2 AND model = ?3",
                [id, project_column(model), model.name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(hash) = hash else { return Ok(false) };
        conn.execute(
            "UPDATE gateway_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![crate::now(), id],
        )?;
        let mut bytes = [0u8; 32];
        if hex::decode_to_slice(&hash, &mut bytes).is_ok() {
            self.cache
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(bytes, (owner(model), true));
        }
        Ok(true)
    }

    /// Checks a presented secret for `model`, from memory.
    pub fn check(&self, model: &ResourceKey, secret: &str) -> Result<KeyCheck> {
        let hash = hash(secret);
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        Ok(match cache.get(&hash) {
            None => KeyCheck::Unknown,
            Some((_, true)) => KeyCheck::Revoked,
            Some(((project, name), false))
                if project == project_column(model) && name == model.name.as_str() =>
            {
                KeyCheck::Valid
            }
            Some(_) => KeyCheck::WrongModel,
        })
    }

    /// Gives the keys made before keys named a project to the models of
    /// `models` whose name no other of them has (see
    /// [`crate::events::EventLog::adopt_unattributed`]); a name several
    /// projects use keeps its old keys unattributed, opening nothing.
    /// Returns the keys adopted.
    pub fn adopt_unattributed(&self, models: &[ResourceKey]) -> Result<u64> {
        let conn = self.conn();
        let mut adopted = 0;
        for model in unique_names(models) {
            adopted += conn.execute(
                "UPDATE gateway_keys SET project = ?1 WHERE project = '' AND model = ?2",
                [project_column(model), model.name.as_str()],
            )? as u64;
        }
        if adopted > 0 {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            for (owner, _) in cache.values_mut() {
                if let Some(m) =
                    unique_names(models).find(|m| owner.0.is_empty() && owner.1 == m.name.as_str())
                {
                    owner.0 = project_column(m).to_string();
                }
            }
        }
        Ok(adopted)
    }
}

fn hash(secret: &str) -> Hash {
    Sha256::digest(secret.as_bytes()).into()
}

fn read_urandom(buf: &mut [u8]) -> Result<()> {
    crate::tokens::read_urandom(buf).map_err(KeyError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(project: &str, name: &str) -> ResourceKey {
        crate::events::model_key(project, name).unwrap()
    }

    fn open(dir: &tempfile::TempDir) -> KeyStore {
        KeyStore::open(&dir.path().join("keys.db")).unwrap()
    }

    #[test]
    fn checks_follow_the_life_of_a_key() {
        let (iris, mnist) = (model("lab", "iris"), model("lab", "mnist"));
        let dir = tempfile::tempdir().unwrap();
        let keys = open(&dir);
        let (secret, info) = keys.create(&iris).unwrap();
        assert!(secret.starts_with("cairn_"));
        assert_eq!(secret.len(), 6 + 64);
        assert!(info.id.starts_with("key_") && info.id.len() == 12);
        assert_eq!(keys.check(&iris, &secret).unwrap(), KeyCheck::Valid);
        assert_eq!(keys.check(&mnist, &secret).unwrap(), KeyCheck::WrongModel);
        assert_eq!(
            keys.check(&iris, "cairn_garbage").unwrap(),
            KeyCheck::Unknown
        );
        assert_eq!(keys.check(&iris, "").unwrap(), KeyCheck::Unknown);

        assert!(!keys.revoke(&mnist, &info.id).unwrap());
        assert!(!keys.revoke(&iris, "key_00000000").unwrap());
        assert!(keys.revoke(&iris, &info.id).unwrap());
        assert_eq!(keys.check(&iris, &secret).unwrap(), KeyCheck::Revoked);
        let revoked_at = keys.list(&iris).unwrap()[0].revoked_at.clone();
        assert!(revoked_at.is_some());
        assert!(keys.revoke(&iris, &info.id).unwrap());
        assert_eq!(keys.list(&iris).unwrap()[0].revoked_at, revoked_at);
    }

    #[test]
    fn the_secret_is_never_stored() {
        let (iris, mnist) = (model("lab", "iris"), model("lab", "mnist"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let (secret, info) = {
            let keys = KeyStore::open(&path).unwrap();
            let created = keys.create(&iris).unwrap();
            let listed = keys.list(&iris).unwrap();
            assert_eq!(listed, vec![created.1.clone()]);
            assert!(secret_free(
                &serde_json::to_string(&listed).unwrap(),
                &created.0
            ));
            assert!(created.0.starts_with(&listed[0].prefix));
            assert_eq!(listed[0].prefix.len(), 14);
            created
        };
        // The WAL is folded into the database when the last connection closes;
        // search every file of the directory all the same.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(secret_free(&text, &secret));
        }
        // Reopening loads the hashes back.
        let keys = KeyStore::open(&path).unwrap();
        assert_eq!(keys.check(&iris, &secret).unwrap(), KeyCheck::Valid);
        assert_eq!(keys.list(&iris).unwrap(), vec![info]);
        assert!(keys.list(&mnist).unwrap().is_empty());
    }

    /// The part of the secret that is never shown appears nowhere in `text`.
    /// (A check on "prefix plus one character" would be flaky: the stored
    /// prefix may be followed by any byte.)
    fn secret_free(text: &str, secret: &str) -> bool {
        !text.contains(&secret[SECRET_PREFIX.len() + SHOWN..])
            && !text.contains(&secret[SECRET_PREFIX.len()..])
    }

    #[tokio::test]
    async fn shares_a_file_with_the_event_log() {
        let iris = model("lab", "iris");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let keys = KeyStore::open(&path).unwrap();
        let log = crate::events::EventLog::open(&path, Default::default()).unwrap();
        let (secret, _) = keys.create(&iris).unwrap();
        assert_eq!(log.count().unwrap(), 0);
        drop((keys, log));
        let log = crate::events::EventLog::open(&path, Default::default()).unwrap();
        let keys = KeyStore::open(&path).unwrap();
        assert_eq!(keys.check(&iris, &secret).unwrap(), KeyCheck::Valid);
        assert_eq!(log.count().unwrap(), 0);
    }

    #[test]
    fn a_key_opens_its_own_project_only() {
        let dir = tempfile::tempdir().unwrap();
        let keys = open(&dir);
        let (alpha, beta) = (model("alpha", "clf"), model("beta", "clf"));
        let (secret, info) = keys.create(&alpha).unwrap();
        assert_eq!(info.project.as_deref(), Some("alpha"));
        assert_eq!(keys.check(&alpha, &secret).unwrap(), KeyCheck::Valid);
        assert_eq!(keys.check(&beta, &secret).unwrap(), KeyCheck::WrongModel);
        assert!(keys.list(&beta).unwrap().is_empty());
        assert!(!keys.revoke(&beta, &info.id).unwrap());
        assert_eq!(keys.list(&alpha).unwrap(), vec![info]);
    }

    /// A key table from before keys named projects: its keys open nothing
    /// until adopted by the one project serving their model's name.
    #[test]
    fn keys_from_before_projects_are_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let secret = format!("{SECRET_PREFIX}{}", "ab".repeat(32));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE gateway_keys (
                    id TEXT PRIMARY KEY NOT NULL,
                    model TEXT NOT NULL,
                    hash TEXT NOT NULL UNIQUE,
                    prefix TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    revoked_at TEXT
                );
                CREATE INDEX gateway_keys_model ON gateway_keys (model);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO gateway_keys (id, model, hash, prefix, created_at)
                 VALUES ('key_00000001', 'clf', ?1, 'cairn_abababab', '2025-01-01T00:00:00Z')",
                [hex::encode(hash(&secret))],
            )
            .unwrap();
        }
        let keys = KeyStore::open(&path).unwrap();
        let (alpha, beta) = (model("alpha", "clf"), model("beta", "clf"));
        assert_eq!(keys.check(&alpha, &secret).unwrap(), KeyCheck::WrongModel);
        // Two projects serve `clf`: the key stays unattributed.
        assert_eq!(
            keys.adopt_unattributed(&[alpha.clone(), beta.clone()])
                .unwrap(),
            0
        );
        assert_eq!(keys.check(&alpha, &secret).unwrap(), KeyCheck::WrongModel);
        assert_eq!(
            keys.adopt_unattributed(std::slice::from_ref(&alpha))
                .unwrap(),
            1
        );
        assert_eq!(keys.check(&alpha, &secret).unwrap(), KeyCheck::Valid);
        assert_eq!(keys.check(&beta, &secret).unwrap(), KeyCheck::WrongModel);
        assert_eq!(
            keys.list(&alpha).unwrap()[0].project.as_deref(),
            Some("alpha")
        );
        drop(keys);
        let keys = KeyStore::open(&path).unwrap();
        assert_eq!(keys.check(&alpha, &secret).unwrap(), KeyCheck::Valid);
    }
}
