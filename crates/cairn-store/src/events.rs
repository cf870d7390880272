//! The durable inference event log, with group commit.
//!
//! Every prediction of the gateway produces an [`InferenceEvent`]. Events go
//! to their own SQLite file (WAL, `synchronous=FULL`, so a commit is
//! durable), written by one dedicated writer thread: it takes everything
//! queued (up to [`EventLogConfig::max_batch`] events), inserts it in one
//! transaction with a prepared statement, commits — one fsync for the whole
//! batch — and then acknowledges every event of the batch. Many concurrent
//! requests thus share one fsync.
//!
//! Two durabilities:
//!
//! - [`EventLog::append_durable`] waits until the event is committed (the
//!   gateway's default: the response is sent only after that);
//! - [`EventLog::append`] only queues it; [`EventLog::flush`] waits until
//!   everything queued so far is committed, and reports events that were
//!   lost since the previous flush.
//!
//! The JSON of inputs and outputs is serialized by the caller (spreading
//! that work over the runtime's threads), bounded to
//! [`EventLogConfig::max_payload_bytes`]; the writer only binds and inserts.
//!
//! Dropping the last [`EventLog`] clone closes the queue and waits for the
//! writer to write what was queued.
//!
//! A model is its project and its name: every table of the database
//! (events, business metrics, feedback, drift verdicts) has a `project`
//! column beside `model`. Rows written before it was added have an empty
//! project; [`EventLog::adopt_unattributed`] gives them to the one project
//! that serves a model of their name, and until then they are read back
//! with no project.

use cairn_spec::{Kind, ResourceKey};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// One prediction, as logged.
#[derive(Clone, Debug, PartialEq)]
pub struct InferenceEvent {
    /// The event's id (UUID v7 by convention, so ids sort by time).
    pub uuid: uuid::Uuid,
    /// The model served (its project is empty for events logged before
    /// projects were recorded and not adopted since).
    pub model: ResourceKey,
    /// Its version.
    pub version: String,
    /// The commit the model was deployed from.
    pub commit: String,
    /// When the request arrived; stored to the millisecond.
    pub time: chrono::DateTime<chrono::Utc>,
    /// How long the prediction took.
    pub latency_us: u64,
    /// The HTTP status answered.
    pub status: u16,
    /// The request's inputs.
    pub inputs: serde_json::Value,
    /// The model's outputs.
    pub outputs: serde_json::Value,
}

/// Settings of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLogConfig {
    /// The most events written in one transaction.
    pub max_batch: usize,
    /// The most bytes of JSON stored for inputs, and for outputs. Larger
    /// values are stored as `{"truncated": true, "bytes": N, "prefix": "…"}`,
    /// `N` being the full JSON's length and `prefix` its beginning.
    pub max_payload_bytes: usize,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            max_batch: 4096,
            max_payload_bytes: 16 * 1024,
        }
    }
}

/// Counters of the writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventLogStats {
    /// Transactions committed.
    pub batches: u64,
    /// Events written.
    pub events: u64,
}

/// Event log errors.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// SQLite failed.
    #[error("event log: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A schema migration failed.
    #[error("event log migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The writer thread could not be started.
    #[error("event log: cannot start the writer: {0}")]
    Spawn(std::io::Error),
    /// The writer could not write an event (or, for a flush, events queued
    /// before it); the message says why.
    #[error("event log: write failed: {0}")]
    Write(String),
    /// The writer has stopped.
    #[error("event log: the writer has stopped")]
    Closed,
    /// A stored event could not be read back.
    #[error("event log: bad stored event: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, EventLogError>;

/// The durable event log: a handle on the writer thread and a read
/// connection. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
    reader: Mutex<Connection>,
    /// A read-write connection for monitoring data (business metrics,
    /// feedback), written apart from the event writer's batches.
    monitor: Mutex<Connection>,
    /// The database file as SQLite names it.
    db_path: String,
    counters: Arc<Counters>,
    max_payload_bytes: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what was
        // queued; waiting for it makes "dropped" mean "written".
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    events: AtomicU64,
}

type Ack = oneshot::Sender<Result<()>>;

/// What the writer receives.
enum Msg {
    /// An event, with its waiter for durable appends.
    Event(Row, Option<Ack>),
    /// A flush: acknowledged once everything before it is written.
    Flush(Ack),
    /// An event already answered (rejected by a constraint).
    Done,
}

/// An event as stored, prepared by the caller.
struct Row {
    uuid: [u8; 16],
    project: String,
    model: String,
    version: String,
    commit: String,
    time_ms: i64,
    latency_us: i64,
    status: i64,
    inputs: String,
    outputs: String,
}

const INSERT: &str = "INSERT INTO inference_events \
     (uuid, project, model, version, commit_id, time_ms, latency_us, status, inputs, outputs) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const SELECT: &str = "SELECT uuid, project, model, version, commit_id, time_ms, latency_us, \
     status, inputs, outputs FROM inference_events";

/// How a model's project is stored: empty for none.
pub(crate) fn project_column(model: &ResourceKey) -> &str {
    model.project.as_ref().map_or("", |p| p.as_str())
}

/// The model of a stored row.
pub(crate) fn model_key(project: &str, name: &str) -> Option<ResourceKey> {
    Some(ResourceKey {
        kind: Kind::Model,
        project: match project {
            "" => None,
            p => Some(p.parse().ok()?),
        },
        name: name.parse().ok()?,
    })
}

/// The tables that name a model, each with an index whose first column is
/// `project` (so that unattributed rows are found without a scan).
const MODEL_TABLES: [&str; 4] = [
    "inference_events",
    "business_metrics",
    "feedback",
    "drift_evaluations",
];

/// The schema, oldest migration first. Never edit a released migration.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE inference_events (
            uuid BLOB PRIMARY KEY NOT NULL,
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            commit_id TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            latency_us INTEGER NOT NULL,
            status INTEGER NOT NULL,
            inputs TEXT NOT NULL,
            outputs TEXT NOT NULL
        );
        CREATE INDEX inference_events_model_time ON inference_events (model, time_ms);",
        ),
        // Monitoring: business metrics and delayed ground truth (see
        // `cairn_monitor::monitoring`).
        M::up(
            "CREATE TABLE business_metrics (
            uuid BLOB NULL,
            model TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            name TEXT NOT NULL,
            num REAL NULL,
            text TEXT NULL
        );
        CREATE INDEX business_metrics_model_time ON business_metrics (model, time_ms);
        CREATE INDEX business_metrics_uuid ON business_metrics (uuid);
        CREATE TABLE feedback (
            uuid BLOB PRIMARY KEY NOT NULL,
            model TEXT NOT NULL,
            label TEXT NOT NULL,
            received_ms INTEGER NOT NULL
        );",
        ),
        // Drift verdicts, a time series per feature (see `cairn_monitor::drift`).
        M::up(crate::drift::SCHEMA),
        // A model is its project and its name. Rows from before have an
        // empty project (see `EventLog::adopt_unattributed`).
        M::up(
            "ALTER TABLE inference_events ADD COLUMN project TEXT NOT NULL DEFAULT '';
        DROP INDEX inference_events_model_time;
        CREATE INDEX inference_events_project_model_time
            ON inference_events (project, model, time_ms);
        ALTER TABLE business_metrics ADD COLUMN project TEXT NOT NULL DEFAULT '';
        DROP INDEX business_metrics_model_time;
        CREATE INDEX business_metrics_project_model_time
            ON business_metrics (project, model, time_ms);
        ALTER TABLE feedback ADD COLUMN project TEXT NOT NULL DEFAULT '';
        CREATE INDEX feedback_project_model ON feedback (project, model);
        ALTER TABLE drift_evaluations ADD COLUMN project TEXT NOT NULL DEFAULT '';
        DROP INDEX drift_evaluations_model_time;
        CREATE INDEX drift_evaluations_project_model_time
            ON drift_evaluations (project, model, time_ms);",
        ),
    ])
}

impl EventLog {
    /// Opens (creating and migrating) the events database at `path` and
    /// starts its writer thread.
    pub fn open(path: &Path, config: EventLogConfig) -> Result<EventLog> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;

        let reader = Connection::open(path)?;
        reader.busy_timeout(Duration::from_secs(5))?;
        reader.pragma_update(None, "query_only", "ON")?;

        let monitor = Connection::open(path)?;
        monitor.busy_timeout(Duration::from_secs(5))?;
        monitor.pragma_update(None, "synchronous", "FULL")?;

        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let writer = {
            let counters = counters.clone();
            let max_batch = config.max_batch.max(1);
            std::thread::Builder::new()
                .name("cairn-events".into())
                .spawn(move || Writer::new(conn, counters).run(rx, max_batch))
                .map_err(EventLogError::Spawn)?
        };
        Ok(EventLog {
            inner: Arc::new(Inner {
                tx: Some(tx),
                writer: Some(writer),
                reader: Mutex::new(reader),
                db_path: monitor.path().unwrap_or_default().to_string(),
                monitor: Mutex::new(monitor),
                counters,
                max_payload_bytes: config.max_payload_bytes,
            }),
        })
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let tx = self.inner.tx.as_ref().ok_or(EventLogError::Closed)?;
        tx.send(msg).map_err(|_| EventLogError::Closed)
    }

    /// Queues an event and waits until it is durable. Errs if the writer
    /// could not write it.
    pub async fn append_durable(&self, event: InferenceEvent) -> Result<()> {
        let row = Row::new(event, self.inner.max_payload_bytes);
        let (ack, done) = oneshot::channel();
        self.send(Msg::Event(row, Some(ack)))?;
        done.await.map_err(|_| EventLogError::Closed)?
    }

    /// Queues an event without waiting. A write failure shows at the next
    /// [`EventLog::flush`].
    pub fn append(&self, event: InferenceEvent) -> Result<()> {
        let row = Row::new(event, self.inner.max_payload_bytes);
        self.send(Msg::Event(row, None))
    }

    /// Waits until everything queued so far is written. Errs if events
    /// queued with [`EventLog::append`] were lost since the previous flush.
    pub async fn flush(&self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Flush(ack))?;
        done.await.map_err(|_| EventLogError::Closed)?
    }

    /// Like [`EventLog::flush`], for threads outside the async runtime.
    pub fn flush_blocking(&self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Flush(ack))?;
        done.blocking_recv().map_err(|_| EventLogError::Closed)?
    }

    /// The writer's counters.
    pub fn stats(&self) -> EventLogStats {
        EventLogStats {
            batches: self.inner.counters.batches.load(Ordering::Relaxed),
            events: self.inner.counters.events.load(Ordering::Relaxed),
        }
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.inner.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The read-write connection for monitoring data (blocking: call it
    /// off the async runtime's threads).
    pub fn monitor(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.inner.monitor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The database file as SQLite names it.
    pub fn db_path(&self) -> &str {
        &self.inner.db_path
    }

    /// The monitoring connection if no one else holds it.
    pub fn try_monitor(&self) -> Option<std::sync::MutexGuard<'_, Connection>> {
        match self.inner.monitor.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Reads one event back.
    pub fn get(&self, uuid: uuid::Uuid) -> Result<Option<InferenceEvent>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE uuid = ?1"))?;
        let raw = stmt
            .query_row([&uuid.as_bytes()[..]], RawEvent::from_row)
            .optional()?;
        raw.map(RawEvent::decode).transpose()
    }

    /// The events of `model` with `from_ms <= time < to_ms`, newest first,
    /// at most `limit`.
    pub fn query(
        &self,
        model: &ResourceKey,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<InferenceEvent>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE project = ?1 AND model = ?2 AND time_ms >= ?3 AND time_ms < ?4 \
             ORDER BY time_ms DESC, uuid DESC LIMIT ?5"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let raws = stmt
            .query_map(
                params![
                    project_column(model),
                    model.name.as_str(),
                    from_ms,
                    to_ms,
                    limit
                ],
                RawEvent::from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(RawEvent::decode).collect()
    }

    /// Gives the rows stored without a project (written before projects
    /// were recorded) to the models of `models` whose name no other of them
    /// has: with names unique across projects, as they had to be for such
    /// rows to be right, each name was one model. Rows of a name that
    /// several projects now use are left without a project. Returns the
    /// rows adopted. Blocking.
    pub fn adopt_unattributed(&self, models: &[ResourceKey]) -> Result<u64> {
        let mut conn = self.monitor();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut adopted = 0;
        for table in MODEL_TABLES {
            let any: bool = tx.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE project = '')"),
                [],
                |r| r.get(0),
            )?;
            if !any {
                continue;
            }
            let mut update = tx.prepare(&format!(
                "UPDATE {table} SET project = ?1 WHERE project = '' AND model = ?2"
            ))?;
            for model in unique_names(models) {
                adopted +=
                    update.execute(params![project_column(model), model.name.as_str()])? as u64;
            }
        }
        tx.commit()?;
        Ok(adopted)
    }

    /// The number of events stored.
    pub fn count(&self) -> Result<u64> {
        let conn = self.reader();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM inference_events", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}

impl Row {
    fn new(event: InferenceEvent, max_payload_bytes: usize) -> Row {
        Row {
            uuid: event.uuid.into_bytes(),
            time_ms: event.time.timestamp_millis(),
            latency_us: i64::try_from(event.latency_us).unwrap_or(i64::MAX),
            status: i64::from(event.status),
            inputs: bounded_json(&event.inputs, max_payload_bytes),
            outputs: bounded_json(&event.outputs, max_payload_bytes),
            project: project_column(&event.model).to_string(),
            model: event.model.name.to_string(),
            version: event.version,
            commit: event.commit,
        }
    }
}

/// A writer that keeps the first `cap` bytes and counts the rest, so that a
/// huge payload is never held whole.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    total: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.cap.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.total += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON text of `value`, or, when longer than `max` bytes, the
/// truncation marker (itself at most `max` bytes unless `max` is tinier
/// than the marker).
fn bounded_json(value: &serde_json::Value, max: usize) -> String {
    let mut out = Capped {
        buf: Vec::with_capacity(max.min(256)),
        cap: max,
        total: 0,
    };
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    if out.total <= max {
        // The whole JSON text: valid UTF-8.
        return String::from_utf8(out.buf).unwrap_or_default();
    }
    let text = match std::str::from_utf8(&out.buf) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&out.buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    // Escaping makes the marker longer than its prefix: shrink the prefix
    // by the overshoot until the marker fits.
    let mut end = text.len();
    loop {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let marker = serde_json::json!({
            "truncated": true,
            "bytes": out.total,
            "prefix": &text[..end],
        })
        .to_string();
        if marker.len() <= max || end == 0 {
            return marker;
        }
        end = end.saturating_sub(marker.len() - max);
    }
}

/// A stored row, before decoding.
struct RawEvent {
    uuid: Vec<u8>,
    project: String,
    model: String,
    version: String,
    commit: String,
    time_ms: i64,
    latency_us: i64,
    status: i64,
    inputs: String,
    outputs: String,
}

impl RawEvent {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            uuid: r.get(0)?,
            project: r.get(1)?,
            model: r.get(2)?,
            version: r.get(3)?,
            commit: r.get(4)?,
            time_ms: r.get(5)?,
            latency_us: r.get(6)?,
            status: r.get(7)?,
            inputs: r.get(8)?,
            outputs: r.get(9)?,
        })
    }

    fn decode(self) -> Result<InferenceEvent> {
        let bad = |what: &str| EventLogError::Corrupt(what.to_string());
        let uuid = uuid::Uuid::from_slice(&self.uuid).map_err(|_| bad("uuid"))?;
        let time =
            chrono::DateTime::from_timestamp_millis(self.time_ms).ok_or_else(|| bad("time"))?;
        Ok(InferenceEvent {
            uuid,
            model: model_key(&self.project, &self.model).ok_or_else(|| bad("model"))?,
            version: self.version,
            commit: self.commit,
            time,
            latency_us: u64::try_from(self.latency_us).map_err(|_| bad("latency"))?,
            status: u16::try_from(self.status).map_err(|_| bad("status"))?,
            inputs: serde_json::from_str(&self.inputs)
                .map_err(|e| EventLogError::Corrupt(format!("inputs: {e}")))?,
            outputs: serde_json::from_str(&self.outputs)
                .map_err(|e| EventLogError::Corrupt(format!("outputs: {e}")))?,
        })
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    counters: Arc<Counters>,
    /// Events queued with `append` that could not be written since the
    /// last flush, and the last reason.
    lost: u64,
    last_error: Option<String>,
}

impl Writer {
    fn new(conn: Connection, counters: Arc<Counters>) -> Writer {
        Writer {
            conn,
            counters,
            lost: 0,
            last_error: None,
        }
    }

    /// Writes batches until every sender is gone and the queue is empty.
    fn run(mut self, rx: mpsc::Receiver<Msg>, max_batch: usize) {
        let mut batch: Vec<Msg> = Vec::with_capacity(max_batch.min(4096));
        while let Ok(first) = rx.recv() {
            let mut events = usize::from(matches!(first, Msg::Event(..)));
            batch.push(first);
            while events < max_batch {
                match rx.try_recv() {
                    Ok(msg) => {
                        events += usize::from(matches!(msg, Msg::Event(..)));
                        batch.push(msg);
                    }
                    Err(_) => break,
                }
            }
            let written = if events == 0 {
                Ok(0)
            } else {
                self.write(&mut batch)
            };
            self.acknowledge(&mut batch, written);
        }
    }

    /// Inserts the batch's events in one transaction. An event refused by a
    /// constraint (a duplicate uuid) is answered at once and the others go
    /// on; any other failure fails the whole batch.
    fn write(&mut self, batch: &mut [Msg]) -> rusqlite::Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut written = 0;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for msg in batch.iter_mut() {
                let Msg::Event(row, ack) = msg else { continue };
                let result = stmt.execute(params![
                    &row.uuid[..],
                    row.project,
                    row.model,
                    row.version,
                    row.commit,
                    row.time_ms,
                    row.latency_us,
                    row.status,
                    row.inputs,
                    row.outputs,
                ]);
                match result {
                    Ok(_) => written += 1,
                    Err(e) if is_constraint(&e) => {
                        let reason = format!("event {}: {e}", uuid::Uuid::from_bytes(row.uuid));
                        match ack.take() {
                            Some(ack) => {
                                let _ = ack.send(Err(EventLogError::Write(reason)));
                            }
                            None => {
                                tracing::error!("event log: a queued event was lost: {reason}");
                                self.lost += 1;
                                self.last_error = Some(reason);
                            }
                        }
                        *msg = Msg::Done;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tx.commit()?;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.events.fetch_add(written, Ordering::Relaxed);
        Ok(written)
    }

    /// Answers every waiter of the batch, in order, and empties it.
    fn acknowledge(&mut self, batch: &mut Vec<Msg>, written: rusqlite::Result<u64>) {
        let failure = written.err().map(|e| e.to_string());
        for msg in batch.drain(..) {
            match msg {
                Msg::Event(_, Some(ack)) => {
                    let answer = match &failure {
                        None => Ok(()),
                        Some(e) => Err(EventLogError::Write(e.clone())),
                    };
                    let _ = ack.send(answer);
                }
                Msg::Event(_, None) => {
                    if let Some(e) = &failure {
                        self.lost += 1;
                        self.last_error = Some(e.clone());
                    }
                }
                Msg::Flush(ack) => {
                    let answer = if self.lost == 0 {
                        Ok(())
                    } else {
                        Err(EventLogError::Write(format!(
                            "{} queued event(s) lost, the last because: {}",
                            self.lost,
                            self.last_error.as_deref().unwrap_or("unknown")
                        )))
                    };
                    self.lost = 0;
                    self.last_error = None;
                    let _ = ack.send(answer);
                }
                Msg::Done => {}
            }
        }
        if let Some(e) = failure {
            tracing::error!("event log: a batch failed: {e}");
        }
    }
}

/// The models of `models` whose name no other of them has.
pub(crate) fn unique_names(models: &[ResourceKey]) -> impl Iterator<Item = &ResourceKey> {
    models.iter().filter(|m| {
        m.project.is_some()
            && models
                .iter()
                .filter(|o| o.name == m.name && o.kind == m.kind)
                .count()
                == 1
    })
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(project: &str, name: &str) -> ResourceKey {
        model_key(project, name).unwrap()
    }

    fn event(model: &str, time_ms: i64) -> InferenceEvent {
        InferenceEvent {
            uuid: uuid::Uuid::now_v7(),
            model: key("lab", model),
            version: "3".to_string(),
            commit: "0123abcd".to_string(),
            time: chrono::DateTime::from_timestamp_millis(time_ms).unwrap(),
            latency_us: 1234,
            status: 200,
            inputs: json!({"x": [1.5, 2.0, "é"]}),
            outputs: json!([0.25, 0.75]),
        }
    }

    fn open(dir: &tempfile::TempDir) -> EventLog {
        EventLog::open(&dir.path().join("events.db"), EventLogConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn durable_append_reads_back_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        let e = event("iris", 1_700_000_000_123);
        log.append_durable(e.clone()).await.unwrap();
        assert_eq!(log.get(e.uuid).unwrap(), Some(e));
        assert_eq!(log.get(uuid::Uuid::now_v7()).unwrap(), None);
        assert_eq!(
            log.stats(),
            EventLogStats {
                batches: 1,
                events: 1
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_durable_appends_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append_durable(event("iris", 1_000 + i)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(log.count().unwrap(), 1000);
        let stats = log.stats();
        assert_eq!(stats.events, 1000);
        assert!(
            stats.batches < stats.events / 5,
            "{} batches for {} events",
            stats.batches,
            stats.events
        );
    }

    #[tokio::test]
    async fn large_payloads_are_truncated_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(
            &dir.path().join("events.db"),
            EventLogConfig {
                max_batch: 16,
                max_payload_bytes: 1024,
            },
        )
        .unwrap();
        let mut e = event("iris", 5);
        let big: Vec<String> = (0..1000).map(|i| format!("\"é{i}\"")).collect();
        e.inputs = json!({ "rows": big });
        let full = e.inputs.to_string();
        log.append_durable(e.clone()).await.unwrap();
        let back = log.get(e.uuid).unwrap().unwrap();
        assert_eq!(back.inputs["truncated"], json!(true));
        assert_eq!(back.inputs["bytes"], json!(full.len()));
        let prefix = back.inputs["prefix"].as_str().unwrap();
        assert!(!prefix.is_empty());
        assert!(full.starts_with(prefix));
        assert!(back.inputs.to_string().len() <= 1024);
        // Small outputs are kept whole.
        assert_eq!(back.outputs, e.outputs);
    }

    #[test]
    fn bounded_json_keeps_small_values_and_char_boundaries() {
        let v = json!({"a": 1});
        assert_eq!(bounded_json(&v, 100), v.to_string());
        let v = json!("ééééééééééééééééééééééééééééééééééééééééééééééééééééééé");
        let marker: serde_json::Value = serde_json::from_str(&bounded_json(&v, 60)).unwrap();
        assert_eq!(marker["truncated"], json!(true));
        assert!(
            v.to_string()
                .starts_with(marker["prefix"].as_str().unwrap())
        );
    }

    #[tokio::test]
    async fn flush_makes_queued_appends_visible() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        for i in 0..5000 {
            log.append(event(if i % 2 == 0 { "a" } else { "b" }, i))
                .unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(log.count().unwrap(), 5000);
        let newest = log.query(&key("lab", "a"), 0, 1000, 3).unwrap();
        let times: Vec<i64> = newest.iter().map(|e| e.time.timestamp_millis()).collect();
        assert_eq!(times, vec![998, 996, 994]);
        assert!(newest.iter().all(|e| e.model == key("lab", "a")));
        assert_eq!(log.query(&key("lab", "b"), 10, 20, 100).unwrap().len(), 5);
        assert!(
            log.query(&key("other", "b"), 10, 20, 100)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_duplicate_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        let e = event("iris", 1);
        log.append_durable(e.clone()).await.unwrap();
        let err = log.append_durable(e.clone()).await.unwrap_err();
        assert!(matches!(err, EventLogError::Write(_)), "{err}");
        log.append(e.clone()).unwrap();
        log.append(event("iris", 2)).unwrap();
        assert!(log.flush().await.is_err());
        log.flush().await.unwrap();
        assert_eq!(log.count().unwrap(), 2);
    }

    #[tokio::test]
    async fn reopening_finds_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let e = event("iris", 42);
        {
            let log = open(&dir);
            log.append_durable(e.clone()).await.unwrap();
            for i in 0..100 {
                log.append(event("iris", 100 + i)).unwrap();
            }
            // Dropping writes what was queued.
        }
        let log = open(&dir);
        assert_eq!(log.count().unwrap(), 101);
        assert_eq!(log.get(e.uuid).unwrap(), Some(e));
    }

    #[tokio::test]
    async fn models_of_the_same_name_in_two_projects_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir);
        let (a, b) = (key("alpha", "clf"), key("beta", "clf"));
        for (model, t) in [(&a, 1), (&b, 2), (&b, 3)] {
            let mut e = event("clf", t);
            e.model = model.clone();
            log.append_durable(e.clone()).await.unwrap();
            assert_eq!(log.get(e.uuid).unwrap().unwrap().model, *model);
        }
        assert_eq!(log.query(&a, 0, 10, 10).unwrap().len(), 1);
        assert_eq!(log.query(&b, 0, 10, 10).unwrap().len(), 2);
    }

    /// A database of the last release without projects: its rows read back
    /// without one, and are adopted by the one project serving their name.
    #[tokio::test]
    async fn rows_from_before_projects_are_read_and_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let old = uuid::Uuid::now_v7();
        {
            let mut conn = Connection::open(&path).unwrap();
            migrations().to_version(&mut conn, 3).unwrap();
            for (uuid, model) in [(old, "clf"), (uuid::Uuid::now_v7(), "shared")] {
                conn.execute(
                    "INSERT INTO inference_events (uuid, model, version, commit_id, time_ms, \
                     latency_us, status, inputs, outputs) \
                     VALUES (?1, ?2, '1', 'c0ffee', 5, 10, 200, '{}', '[1]')",
                    params![&uuid.as_bytes()[..], model],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO feedback (uuid, model, label, received_ms) VALUES (?1, 'clf', '1', 6)",
                [&old.as_bytes()[..]],
            )
            .unwrap();
        }
        let log = open(&dir);
        let read = log.get(old).unwrap().unwrap();
        assert_eq!(read.model.project, None);
        assert_eq!(read.model.name.as_str(), "clf");
        assert_eq!(read.outputs, serde_json::json!([1]));

        let served = [
            key("alpha", "clf"),
            key("alpha", "shared"),
            key("beta", "shared"),
        ];
        // Three rows: the event and feedback of `clf`; `shared` is
        // ambiguous now and stays without a project.
        assert_eq!(log.adopt_unattributed(&served).unwrap(), 2);
        assert_eq!(log.get(old).unwrap().unwrap().model, key("alpha", "clf"));
        assert_eq!(log.query(&served[0], 0, 10, 10).unwrap().len(), 1);
        assert!(log.query(&served[1], 0, 10, 10).unwrap().is_empty());
        let project: String = log
            .monitor()
            .query_row("SELECT project FROM feedback", [], |r| r.get(0))
            .unwrap();
        assert_eq!(project, "alpha");
        // Adopting again changes nothing.
        assert_eq!(log.adopt_unattributed(&served).unwrap(), 0);
    }
}
