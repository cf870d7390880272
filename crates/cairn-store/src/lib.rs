// tidy: long file: the control database's tables share one connection and transaction helpers; a fifth is tests.
//! The embedded store: one SQLite file in WAL mode holding what the
//! controller has applied, per-resource status, job runs and their
//! artifacts, supervised processes (for adoption after a restart), sync
//! records, the audit log and the UIDs of the Kubernetes objects applied
//! ([`kube_objects`]). Schema changes are migrations.

pub mod drift;
pub mod events;

/// A connection to one of the databases, as the store hands it out (the
/// monitoring connection of the event log, for instance).
pub use rusqlite::Connection;
/// What a query answers: its rows or the database's error.
pub type SqlResult<T> = rusqlite::Result<T>;
/// An error of the database.
pub use rusqlite::Error as SqlError;
pub mod keys;
pub mod kube_objects;
mod migrations;
pub mod monitoring;
pub mod tokens;
pub mod tracking;
pub use tokens::random_hex;

use cairn_spec::ResourceKey;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A migration failed.
    #[error("store migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// Stored JSON could not be read.
    #[error("store: bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No randomness could be read.
    #[error("store: cannot read /dev/urandom: {0}")]
    Random(std::io::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

/// The actor of the controller's own decisions in the audit log.
pub const SYSTEM_ACTOR: &str = "cairn";

/// The current time, RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A resource as last applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The resource.
    pub key: ResourceKey,
    /// Its canonical JSON (the planner's `StateView`).
    pub value: Value,
    /// The file it came from.
    pub file: String,
    /// The commit it was applied from.
    pub commit: String,
}

/// The phase of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Being applied or started.
    Progressing,
    /// Applied and, for long-running workloads, ready.
    Ready,
    /// Applied; a job waits for its schedule or a trigger.
    Idle,
    /// A job run is in progress.
    Running,
    /// The last job run succeeded.
    Succeeded,
    /// Something failed; see the message.
    Failed,
    /// The spec failed to load; the running counterpart is left untouched.
    Invalid,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Idle => "Idle",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "Ready" => Phase::Ready,
            "Idle" => Phase::Idle,
            "Running" => Phase::Running,
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            "Invalid" => Phase::Invalid,
            _ => Phase::Progressing,
        }
    }
}

/// Status of one resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The resource.
    #[serde(flatten)]
    pub key: ResourceKey,
    /// Its phase.
    pub phase: Phase,
    /// A human explanation.
    pub message: String,
    /// The commit the resource was last synced from.
    pub synced_commit: Option<String>,
    /// The file that declares it.
    pub file: Option<String>,
    /// When the phase last changed.
    pub last_transition: String,
}

/// The state of a job run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for upstream jobs, resources or a free GPU.
    Pending,
    /// Its process runs.
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Not run because an upstream job failed, or cancelled.
    Skipped,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "skipped" => RunState::Skipped,
            _ => RunState::Pending,
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Skipped
        )
    }
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Store-wide id.
    pub id: i64,
    /// The job.
    #[serde(skip)]
    pub job: ResourceKey,
    /// Job name (for JSON).
    pub job_name: String,
    /// Project (for JSON).
    pub project: Option<String>,
    /// Number of this run among the job's runs, from 1.
    pub number: i64,
    /// What started it: `manual`, `schedule`, `sync`, `pipeline`, ...
    pub trigger: String,
    /// Runs started together as one pipeline share this id.
    pub pipeline: String,
    /// Its state.
    pub state: RunState,
    /// The current or last attempt, from 1.
    pub attempt: i64,
    /// The commit the job's spec came from.
    pub commit: String,
    /// Parameters of this run.
    pub params: Value,
    /// When it was created.
    pub created_at: String,
    /// When its process first started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Process exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Why it is in its state.
    pub message: String,
    /// Its process, while running.
    pub pid: Option<i64>,
    /// The pid's start time, to recognise it after a restart.
    #[serde(skip)]
    pub start_ticks: Option<i64>,
    /// Its log file.
    #[serde(skip)]
    pub log_path: String,
    /// GPUs it holds (`CUDA_VISIBLE_DEVICES`).
    pub gpus: Option<String>,
    /// Duration in seconds, once finished.
    pub duration_seconds: Option<f64>,
    /// The sweep it is a run of (its pipeline's id), if any.
    pub sweep: Option<String>,
    /// Chosen as its sweep's best: only a sweep's best run feeds models
    /// and downstream jobs.
    pub best: bool,
}

/// A file produced by a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Store id.
    pub id: i64,
    /// The producing run.
    pub run_id: i64,
    /// The output name.
    pub output: String,
    /// Where the file is kept.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was collected.
    pub created_at: String,
}

/// A supervised long-running process (an application or model replica).
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRecord {
    /// The resource.
    pub key: ResourceKey,
    /// Replica index.
    pub replica: i64,
    /// Process id.
    pub pid: i64,
    /// The pid's start time.
    pub start_ticks: i64,
    /// Port it listens on.
    pub port: i64,
    /// The commit it runs.
    pub commit: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// When.
    pub at: String,
    /// The commit that caused it.
    pub commit: Option<String>,
    /// The resource (`Kind/project/name`).
    pub resource: Option<String>,
    /// What happened: `create`, `update`, `delete`, `hold`, `run`, ...
    pub action: String,
    /// Details.
    pub detail: String,
    /// Who did it: the commit's author and committer for what Git asked,
    /// the caller for what the API was asked, `cairn` for the controller's
    /// own decisions.
    pub actor: String,
}

/// A finished reconciliation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The commit synced.
    pub commit: String,
    /// When the change was noticed.
    pub detected_at: String,
    /// When the sync finished.
    pub finished_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Plan summary.
    pub summary: Value,
    /// Errors in the specs at that commit.
    pub errors: i64,
}

/// The store.
pub struct Store {
    conn: Mutex<Connection>,
    tokens: tokens::TokenCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn key_parts(key: &ResourceKey) -> (String, String, Option<String>, String) {
    (
        key.id(),
        key.kind.to_string(),
        key.project.as_ref().map(|p| p.to_string()),
        key.name.to_string(),
    )
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrations().to_latest(&mut conn)?;
        Ok(Store {
            tokens: tokens::TokenCache::load(&conn)?,
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        migrations::migrations().to_latest(&mut conn)?;
        Ok(Store {
            tokens: tokens::TokenCache::load(&conn)?,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ------------------------------------------------------------ applied --

    /// Records what was applied for a resource.
    pub fn set_applied(&self, applied: &Applied) -> Result<()> {
        let (id, kind, project, name) = key_parts(&applied.key);
        self.conn().execute(
            "INSERT INTO applied (key, kind, project, name, value, file, commit_id, applied_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, file = excluded.file,
               commit_id = excluded.commit_id, applied_at = excluded.applied_at",
            params![
                id,
                kind,
                project,
                name,
                applied.value.to_string(),
                applied.file,
                applied.commit,
                now()
            ],
        )?;
        Ok(())
    }

    /// Forgets a deleted resource.
    pub fn remove_applied(&self, key: &ResourceKey) -> Result<()> {
        self.conn()
            .execute("DELETE FROM applied WHERE key = ?1", [key.id()])?;
        Ok(())
    }

    /// The keys of the applied resources of `kind`, without their values
    /// (for resolving a name on every request).
    pub fn applied_keys(&self, kind: cairn_spec::Kind) -> Result<Vec<ResourceKey>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT key FROM applied WHERE kind = ?1 ORDER BY key")?;
        let rows = stmt.query_map([kind.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in rows {
            out.extend(ResourceKey::from_id(&id?));
        }
        Ok(out)
    }

    /// Everything applied.
    pub fn applied(&self) -> Result<Vec<Applied>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT key, value, file, commit_id FROM applied ORDER BY key")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, value, file, commit) = row?;
            if let Some(key) = ResourceKey::from_id(&id) {
                out.push(Applied {
                    key,
                    value: serde_json::from_str(&value)?,
                    file,
                    commit,
                });
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------- status --

    /// Sets a resource's status; the transition time changes only with the phase.
    pub fn set_status(
        &self,
        key: &ResourceKey,
        phase: Phase,
        message: &str,
        commit: Option<&str>,
        file: Option<&str>,
    ) -> Result<()> {
        let (id, kind, project, name) = key_parts(key);
        let t = now();
        self.conn().execute(
            "INSERT INTO status (key, kind, project, name, phase, message, synced_commit, file, last_transition, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
             ON CONFLICT(key) DO UPDATE SET
               last_transition = CASE WHEN status.phase = excluded.phase THEN status.last_transition ELSE excluded.last_transition END,
               phase = excluded.phase, message = excluded.message,
               synced_commit = COALESCE(excluded.synced_commit, status.synced_commit),
               file = COALESCE(excluded.file, status.file), updated_at = excluded.updated_at",
            params![id, kind, project, name, phase.as_str(), message, commit, file, t],
        )?;
        Ok(())
    }

    /// Removes a deleted resource's status.
    pub fn remove_status(&self, key: &ResourceKey) -> Result<()> {
        self.conn()
            .execute("DELETE FROM status WHERE key = ?1", [key.id()])?;
        Ok(())
    }

    /// Every resource's status, ordered by key.
    pub fn statuses(&self) -> Result<Vec<Status>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key, phase, message, synced_commit, file, last_transition FROM status ORDER BY kind, project, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, phase, message, synced_commit, file, last_transition) = row?;
            if let Some(key) = ResourceKey::from_id(&id) {
                out.push(Status {
                    key,
                    phase: Phase::parse(&phase),
                    message,
                    synced_commit,
                    file,
                    last_transition,
                });
            }
        }
        Ok(out)
    }

    /// One resource's status.
    pub fn status(&self, key: &ResourceKey) -> Result<Option<Status>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT phase, message, synced_commit, file, last_transition FROM status WHERE key = ?1",
                [key.id()],
                |r| {
                    Ok(Status {
                        key: key.clone(),
                        phase: Phase::parse(&r.get::<_, String>(0)?),
                        message: r.get(1)?,
                        synced_commit: r.get(2)?,
                        file: r.get(3)?,
                        last_transition: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Marks resources that a sync left unchanged as synced at `commit`, in
    /// one transaction; those that were `Invalid` become `Ready` again.
    pub fn mark_synced(&self, keys: &[(ResourceKey, String)], commit: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "UPDATE status SET synced_commit = ?2, file = ?3,
                   phase = CASE WHEN phase = 'Invalid' THEN 'Ready' ELSE phase END,
                   last_transition = CASE WHEN phase = 'Invalid' THEN ?4 ELSE last_transition END,
                   message = CASE WHEN phase = 'Invalid' THEN 'synced' ELSE message END
                 WHERE key = ?1 AND (synced_commit IS NOT ?2 OR phase = 'Invalid')",
            )?;
            let t = now();
            for (key, file) in keys {
                stmt.execute(params![key.id(), commit, file, t])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // --------------------------------------------------------------- runs --

    /// Creates a pending run; numbers count per job from 1.
    pub fn create_run(
        &self,
        job: &ResourceKey,
        trigger: &str,
        pipeline: &str,
        commit: &str,
        params: &Value,
        log_dir: &Path,
    ) -> Result<Run> {
        let conn = self.conn();
        let number: i64 = conn.query_row(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE job = ?1",
            [job.id()],
            |r| r.get(0),
        )?;
        let log_path = log_dir
            .join(format!("{number}.log"))
            .to_string_lossy()
            .into_owned();
        conn.execute(
            "INSERT INTO runs (job, number, trigger, pipeline, state, attempt, commit_id, params, created_at, message, log_path)
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?7, 'waiting to start', ?8)",
            params![job.id(), number, trigger, pipeline, commit, params.to_string(), now(), log_path],
        )?;
        let id = conn.last_insert_rowid();
        drop(conn);
        Ok(self.run_by_id(id)?.expect("just inserted"))
    }

    /// Marks a run's attempt as started by process `pid`.
    pub fn run_started(
        &self,
        id: i64,
        attempt: i64,
        pid: i64,
        start_ticks: i64,
        gpus: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET state = 'running', attempt = ?2, pid = ?3, start_ticks = ?4, gpus = ?5,
               started_at = COALESCE(started_at, ?6), message = ?7 WHERE id = ?1",
            params![id, attempt, pid, start_ticks, gpus, now(), format!("attempt {attempt} running")],
        )?;
        Ok(())
    }

    /// Updates a run's state and message.
    pub fn run_state(&self, id: i64, state: RunState, message: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET state = ?2, message = ?3 WHERE id = ?1",
            params![id, state.as_str(), message],
        )?;
        Ok(())
    }

    /// Marks a run as over.
    pub fn finish_run(
        &self,
        id: i64,
        state: RunState,
        exit_code: Option<i64>,
        message: &str,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET state = ?2, exit_code = ?3, message = ?4, finished_at = ?5, pid = NULL WHERE id = ?1",
            params![id, state.as_str(), exit_code, message, now()],
        )?;
        Ok(())
    }

    fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Run>> {
        let job_id: String = r.get("job")?;
        let Some(job) = ResourceKey::from_id(&job_id) else {
            return Ok(None);
        };
        let started_at: Option<String> = r.get("started_at")?;
        let finished_at: Option<String> = r.get("finished_at")?;
        let duration_seconds = match (&started_at, &finished_at) {
            (Some(s), Some(f)) => match (
                chrono::DateTime::parse_from_rfc3339(s),
                chrono::DateTime::parse_from_rfc3339(f),
            ) {
                (Ok(s), Ok(f)) => Some((f - s).num_milliseconds() as f64 / 1000.0),
                _ => None,
            },
            _ => None,
        };
        let params: String = r.get("params")?;
        Ok(Some(Run {
            id: r.get("id")?,
            job_name: job.name.to_string(),
            project: job.project.as_ref().map(|p| p.to_string()),
            job,
            number: r.get("number")?,
            trigger: r.get("trigger")?,
            pipeline: r.get("pipeline")?,
            state: RunState::parse(&r.get::<_, String>("state")?),
            attempt: r.get("attempt")?,
            commit: r.get("commit_id")?,
            params: serde_json::from_str(&params).unwrap_or(Value::Null),
            created_at: r.get("created_at")?,
            started_at,
            finished_at,
            exit_code: r.get("exit_code")?,
            message: r.get("message")?,
            pid: r.get("pid")?,
            start_ticks: r.get("start_ticks")?,
            log_path: r.get("log_path")?,
            gpus: r.get("gpus")?,
            duration_seconds,
            sweep: r.get("sweep")?,
            best: r.get::<_, i64>("best")? != 0,
        }))
    }

    fn query_runs(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Run>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(params, Self::run_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            if let Some(run) = row? {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Marks a run as one of sweep `sweep`'s: it feeds nothing until
    /// chosen as the best.
    pub fn set_run_sweep(&self, id: i64, sweep: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET sweep = ?2 WHERE id = ?1",
            params![id, sweep],
        )?;
        Ok(())
    }

    /// Chooses a sweep's best run.
    pub fn set_sweep_best(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET best = (id = ?1) WHERE sweep = (SELECT sweep FROM runs WHERE id = ?1)",
            [id],
        )?;
        Ok(())
    }

    /// The runs of a sweep, in order of creation.
    pub fn sweep_runs(&self, sweep: &str) -> Result<Vec<Run>> {
        self.query_runs("SELECT * FROM runs WHERE sweep = ?1 ORDER BY id", [sweep])
    }

    /// A run by id.
    pub fn run_by_id(&self, id: i64) -> Result<Option<Run>> {
        Ok(self
            .query_runs("SELECT * FROM runs WHERE id = ?1", [id])?
            .pop())
    }

    /// A job's run by number.
    pub fn run(&self, job: &ResourceKey, number: i64) -> Result<Option<Run>> {
        Ok(self
            .query_runs(
                "SELECT * FROM runs WHERE job = ?1 AND number = ?2",
                params![job.id(), number],
            )?
            .pop())
    }

    /// A job's latest runs, newest first.
    pub fn runs(&self, job: &ResourceKey, limit: i64) -> Result<Vec<Run>> {
        self.query_runs(
            "SELECT * FROM runs WHERE job = ?1 ORDER BY number DESC LIMIT ?2",
            params![job.id(), limit],
        )
    }

    /// The latest runs of all jobs, newest first.
    pub fn recent_runs(&self, limit: i64) -> Result<Vec<Run>> {
        self.query_runs("SELECT * FROM runs ORDER BY id DESC LIMIT ?1", [limit])
    }

    /// Runs that were pending or running (after a restart: to adopt or settle).
    pub fn unfinished_runs(&self) -> Result<Vec<Run>> {
        self.query_runs(
            "SELECT * FROM runs WHERE state IN ('pending', 'running') ORDER BY id",
            [],
        )
    }

    /// The latest successful run of a job.
    pub fn last_success(&self, job: &ResourceKey) -> Result<Option<Run>> {
        Ok(self
            .query_runs(
                "SELECT * FROM runs WHERE job = ?1 AND state = 'succeeded' AND (sweep IS NULL OR best = 1)
                 ORDER BY number DESC LIMIT 1",
                [job.id()],
            )?
            .pop())
    }

    // ---------------------------------------------------------- artifacts --

    /// Records an output collected from a run.
    pub fn add_artifact(
        &self,
        run: &Run,
        output: &str,
        path: &str,
        sha256: &str,
        size: i64,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO artifacts (run_id, job, output, path, sha256, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run.id, run.job.id(), output, path, sha256, size, now()],
        )?;
        Ok(())
    }

    /// Outputs of one run.
    pub fn artifacts(&self, run_id: i64) -> Result<Vec<Artifact>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, run_id, output, path, sha256, size, created_at FROM artifacts WHERE run_id = ?1 ORDER BY output",
        )?;
        let rows = stmt.query_map([run_id], artifact_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest artifact of a job's output, from a successful run.
    pub fn latest_artifact(&self, job: &ResourceKey, output: &str) -> Result<Option<Artifact>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT a.id, a.run_id, a.output, a.path, a.sha256, a.size, a.created_at FROM artifacts a
                 JOIN runs r ON r.id = a.run_id
                 WHERE a.job = ?1 AND a.output = ?2 AND r.state = 'succeeded' AND (r.sweep IS NULL OR r.best = 1)
                 ORDER BY a.id DESC LIMIT 1",
                params![job.id(), output],
                artifact_from_row,
            )
            .optional()?)
    }

    // ---------------------------------------------------------- processes --

    /// Records a supervised process.
    pub fn set_process(&self, p: &ProcessRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO processes (key, replica, pid, start_ticks, port, commit_id, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(key, replica) DO UPDATE SET pid = excluded.pid, start_ticks = excluded.start_ticks,
               port = excluded.port, commit_id = excluded.commit_id, started_at = excluded.started_at",
            params![p.key.id(), p.replica, p.pid, p.start_ticks, p.port, p.commit, now()],
        )?;
        Ok(())
    }

    /// Forgets a resource's processes (or one replica).
    pub fn remove_processes(&self, key: &ResourceKey, replica: Option<i64>) -> Result<()> {
        match replica {
            Some(r) => self.conn().execute(
                "DELETE FROM processes WHERE key = ?1 AND replica = ?2",
                params![key.id(), r],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM processes WHERE key = ?1", [key.id()])?,
        };
        Ok(())
    }

    /// Every recorded process.
    pub fn processes(&self) -> Result<Vec<ProcessRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT key, replica, pid, start_ticks, port, commit_id FROM processes")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, replica, pid, start_ticks, port, commit) = row?;
            if let Some(key) = ResourceKey::from_id(&id) {
                out.push(ProcessRecord {
                    key,
                    replica,
                    pid,
                    start_ticks,
                    port,
                    commit,
                });
            }
        }
        Ok(out)
    }

    // ----------------------------------------------------- model versions --

    /// The version number of a model serving the artifact with digest
    /// `sha256` under a spec with digest `spec_digest` (which leaves out the
    /// artifact pin; process models, without an artifact, are keyed by
    /// `commit`): the existing one — an artifact served again under the
    /// same spec, as by a rollback, keeps its number — or the next.
    pub fn model_version(
        &self,
        model: &ResourceKey,
        commit: &str,
        sha256: &str,
        spec_digest: &str,
        run_id: Option<i64>,
    ) -> Result<ModelVersion> {
        let conn = self.conn();
        let existing = conn
            .query_row(
                "SELECT version, commit_id, artifact_sha256, run_id, created_at, state FROM model_versions
                 WHERE model = ?1 AND artifact_sha256 = ?3 AND spec_digest = ?4
                   AND (?3 != '' OR commit_id = ?2)
                 ORDER BY version DESC LIMIT 1",
                params![model.id(), commit, sha256, spec_digest],
                version_from_row,
            )
            .optional()?;
        if let Some(v) = existing {
            return Ok(v);
        }
        let next: i64 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = ?1",
            [model.id()],
            |r| r.get(0),
        )?;
        let created = now();
        conn.execute(
            "INSERT INTO model_versions (model, version, commit_id, artifact_sha256, run_id, created_at, spec_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![model.id(), next, commit, sha256, run_id, created, spec_digest],
        )?;
        Ok(ModelVersion {
            version: next,
            commit: commit.to_string(),
            sha256: sha256.to_string(),
            run_id,
            created_at: created,
            state: "retired".into(),
        })
    }

    /// Every version of a model, newest first.
    pub fn model_versions(&self, model: &ResourceKey) -> Result<Vec<ModelVersion>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version, commit_id, artifact_sha256, run_id, created_at, state FROM model_versions WHERE model = ?1 ORDER BY version DESC",
        )?;
        let rows = stmt.query_map([model.id()], version_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The model versions served from artifacts of job run `run_id`:
    /// (model, version, state).
    pub fn versions_of_run(&self, run_id: i64) -> Result<Vec<(ResourceKey, i64, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT model, version, state FROM model_versions WHERE run_id = ?1 ORDER BY model, version",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (model, version, state) = row?;
            if let Some(key) = ResourceKey::from_id(&model) {
                out.push((key, version, state));
            }
        }
        Ok(out)
    }

    /// Marks a version `serving`, `canary`, `retired` or `rolled-back`;
    /// a version marked `serving` retires the one serving before it.
    pub fn set_version_state(&self, model: &ResourceKey, version: i64, state: &str) -> Result<()> {
        let conn = self.conn();
        if state == "serving" {
            conn.execute(
                "UPDATE model_versions SET state = 'retired' WHERE model = ?1 AND state = 'serving' AND version != ?2",
                params![model.id(), version],
            )?;
        }
        conn.execute(
            "UPDATE model_versions SET state = ?3 WHERE model = ?1 AND version = ?2",
            params![model.id(), version, state],
        )?;
        Ok(())
    }

    /// Whether a rollout of this artifact was rolled back.
    pub fn rolled_back(&self, model: &ResourceKey, sha256: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT version FROM model_versions WHERE model = ?1 AND artifact_sha256 = ?2 AND state = 'rolled-back' ORDER BY version DESC LIMIT 1",
                params![model.id(), sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a step or decision of a canary rollout.
    pub fn record_rollout_step(
        &self,
        model: &ResourceKey,
        version: i64,
        weight: u8,
        decision: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO rollout_steps (model, version, at, weight, decision, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![model.id(), version, now(), weight, decision, detail],
        )?;
        Ok(())
    }

    /// The rollout history of a model, oldest first.
    pub fn rollout_steps(&self, model: &ResourceKey) -> Result<Vec<RolloutStep>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version, at, weight, decision, detail FROM rollout_steps WHERE model = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([model.id()], |r| {
            Ok(RolloutStep {
                version: r.get(0)?,
                at: r.get(1)?,
                weight: r.get(2)?,
                decision: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The successful run's artifact of a job output with this digest.
    pub fn artifact_by_sha256(
        &self,
        job: &ResourceKey,
        output: &str,
        sha256: &str,
    ) -> Result<Option<Artifact>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT a.id, a.run_id, a.output, a.path, a.sha256, a.size, a.created_at FROM artifacts a
                 JOIN runs r ON r.id = a.run_id
                 WHERE a.job = ?1 AND a.output = ?2 AND a.sha256 = ?3 AND r.state = 'succeeded' ORDER BY a.id DESC LIMIT 1",
                params![job.id(), output, sha256],
                artifact_from_row,
            )
            .optional()?)
    }

    // -------------------------------------------------------- audit, sync --

    /// Appends to the audit log, as the controller ([`SYSTEM_ACTOR`]).
    pub fn audit(
        &self,
        commit: Option<&str>,
        resource: Option<&ResourceKey>,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        self.audit_as(SYSTEM_ACTOR, commit, resource, action, detail)
    }

    /// Records an audit entry of `actor` (see [`AuditEntry::actor`]).
    pub fn audit_as(
        &self,
        actor: &str,
        commit: Option<&str>,
        resource: Option<&ResourceKey>,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (at, commit_id, resource, action, detail, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now(),
                commit,
                resource.map(ResourceKey::id),
                action,
                detail,
                actor
            ],
        )?;
        Ok(())
    }

    /// The newest audit entries, newest first.
    pub fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, commit_id, resource, action, detail, actor FROM audit
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                commit: r.get(1)?,
                resource: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
                actor: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a finished sync.
    pub fn record_sync(&self, s: &SyncRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO syncs (commit_id, detected_at, finished_at, duration_ms, summary, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![s.commit, s.detected_at, s.finished_at, s.duration_ms, s.summary.to_string(), s.errors],
        )?;
        Ok(())
    }

    /// The latest sync.
    pub fn last_sync(&self) -> Result<Option<SyncRecord>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT commit_id, detected_at, finished_at, duration_ms, summary, errors FROM syncs ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(SyncRecord {
                        commit: r.get(0)?,
                        detected_at: r.get(1)?,
                        finished_at: r.get(2)?,
                        duration_ms: r.get(3)?,
                        summary: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                        errors: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Reads a setting.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT v FROM kv WHERE k = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Writes a setting.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            params![key, value],
        )?;
        Ok(())
    }
}

/// A version of a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    /// Number, from 1.
    pub version: i64,
    /// The commit of the model's spec.
    pub commit: String,
    /// SHA-256 of the served artifact (empty for process models).
    pub sha256: String,
    /// The job run that produced the artifact, if any.
    pub run_id: Option<i64>,
    /// When the version was first served.
    pub created_at: String,
    /// `serving`, `canary`, `retired` or `rolled-back`.
    pub state: String,
}

fn version_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelVersion> {
    Ok(ModelVersion {
        version: r.get(0)?,
        commit: r.get(1)?,
        sha256: r.get(2)?,
        run_id: r.get(3)?,
        created_at: r.get(4)?,
        state: r.get(5)?,
    })
}

/// One step or decision of a canary rollout.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// The canary version.
    pub version: i64,
    /// When.
    pub at: String,
    /// The canary's share of traffic, in percent, after the decision.
    pub weight: i64,
    /// `start`, `advance`, `promote` or `rollback`.
    pub decision: String,
    /// What the analysis found.
    pub detail: String,
}

fn artifact_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Artifact> {
    Ok(Artifact {
        id: r.get(0)?,
        run_id: r.get(1)?,
        output: r.get(2)?,
        path: r.get(3)?,
        sha256: r.get(4)?,
        size: r.get(5)?,
        created_at: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_spec::Kind;

    fn key(kind: Kind, name: &str) -> ResourceKey {
        ResourceKey {
            kind,
            project: Some("p".parse().unwrap()),
            name: name.parse().unwrap(),
        }
    }

    #[test]
    fn migrates_a_file_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .set_applied(&Applied {
                    key: key(Kind::Job, "train"),
                    value: serde_json::json!({"spec": {"command": ["x"]}}),
                    file: "jobs.yaml".into(),
                    commit: "abc".into(),
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let applied = store.applied().unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].key, key(Kind::Job, "train"));
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn status_transitions_keep_their_time() {
        let store = Store::open_in_memory().unwrap();
        let k = key(Kind::Model, "m");
        store
            .set_status(
                &k,
                Phase::Progressing,
                "starting",
                Some("c1"),
                Some("m.yaml"),
            )
            .unwrap();
        let t1 = store.status(&k).unwrap().unwrap().last_transition;
        std::thread::sleep(std::time::Duration::from_millis(5));
        store
            .set_status(&k, Phase::Progressing, "still starting", None, None)
            .unwrap();
        let s = store.status(&k).unwrap().unwrap();
        assert_eq!(s.last_transition, t1);
        assert_eq!(s.synced_commit.as_deref(), Some("c1"));
        store
            .set_status(&k, Phase::Ready, "ready", Some("c2"), None)
            .unwrap();
        let s = store.status(&k).unwrap().unwrap();
        assert_ne!(s.last_transition, t1);
        assert_eq!(s.phase, Phase::Ready);
    }

    #[test]
    fn runs_are_numbered_per_job_and_keep_artifacts() {
        let store = Store::open_in_memory().unwrap();
        let a = key(Kind::Job, "a");
        let b = key(Kind::Job, "b");
        let dir = Path::new("/tmp/logs");
        let r1 = store
            .create_run(&a, "manual", "p1", "c", &Value::Null, dir)
            .unwrap();
        let r2 = store
            .create_run(&a, "manual", "p2", "c", &Value::Null, dir)
            .unwrap();
        let r3 = store
            .create_run(&b, "manual", "p2", "c", &Value::Null, dir)
            .unwrap();
        assert_eq!((r1.number, r2.number, r3.number), (1, 2, 1));
        store.run_started(r1.id, 1, 42, 7, Some("0")).unwrap();
        store
            .add_artifact(&r1, "model", "/x/model.onnx", "ff", 3)
            .unwrap();
        assert!(
            store.latest_artifact(&a, "model").unwrap().is_none(),
            "run not succeeded yet"
        );
        store
            .finish_run(r1.id, RunState::Succeeded, Some(0), "ok")
            .unwrap();
        assert_eq!(
            store.latest_artifact(&a, "model").unwrap().unwrap().sha256,
            "ff"
        );
        assert_eq!(store.unfinished_runs().unwrap().len(), 2);
        assert_eq!(store.last_success(&a).unwrap().unwrap().number, 1);
        let r = store.run(&a, 1).unwrap().unwrap();
        assert!(r.duration_seconds.is_some());
        assert_eq!(r.log_path, "/tmp/logs/1.log");
    }
}
