//! The tracking records and how they are read from and written to rows.

use super::Result;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A key and a value: a parameter or a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// `key` = `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Whether an experiment or run is deleted (MLflow deletes softly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// In use.
    Active,
    /// Deleted, restorable.
    Deleted,
}

impl Lifecycle {
    /// `active` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Lifecycle {
        if s == "deleted" {
            Lifecycle::Deleted
        } else {
            Lifecycle::Active
        }
    }
}

/// Which lifecycles a search returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViewType {
    /// Active only (the default).
    #[default]
    ActiveOnly,
    /// Deleted only.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// `ACTIVE_ONLY`, `DELETED_ONLY` or `ALL`.
    pub fn parse(s: &str) -> Option<ViewType> {
        Some(match s {
            "ACTIVE_ONLY" => ViewType::ActiveOnly,
            "DELETED_ONLY" => ViewType::DeletedOnly,
            "ALL" => ViewType::All,
            _ => return None,
        })
    }

    /// The SQL condition on a `lifecycle` column.
    pub(crate) fn condition(self, column: &str) -> String {
        match self {
            ViewType::ActiveOnly => format!("{column} = 'active'"),
            ViewType::DeletedOnly => format!("{column} = 'deleted'"),
            ViewType::All => "1".into(),
        }
    }
}

/// A run's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Running.
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Ended well.
    Finished,
    /// Ended badly.
    Failed,
    /// Stopped.
    Killed,
}

impl RunStatus {
    /// MLflow's name: `RUNNING`, `SCHEDULED`, `FINISHED`, `FAILED`, `KILLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "RUNNING" => RunStatus::Running,
            "SCHEDULED" => RunStatus::Scheduled,
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            "KILLED" => RunStatus::Killed,
            _ => return None,
        })
    }

    /// Whether the run has ended.
    pub fn is_terminated(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }
}

/// An experiment: a named group of runs in a project.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// Its id (MLflow's `experiment_id`, a decimal string on the wire).
    pub id: i64,
    /// Its name, unique.
    pub name: String,
    /// The project it belongs to; none: operators only.
    pub project: Option<String>,
    /// The job it was made for, if any.
    pub job: Option<String>,
    /// `mlflow-artifacts:/<id>`.
    pub artifact_location: String,
    /// Deleted or not.
    pub lifecycle: Lifecycle,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
    /// Its tags.
    pub tags: Vec<KeyValue>,
}

/// One point of a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// The metric's name.
    pub key: String,
    /// Its value (NaN and infinities allowed).
    pub value: f64,
    /// When, ms since the epoch.
    pub timestamp_ms: i64,
    /// The training step.
    pub step: i64,
}

/// What a run is, without its data.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// 32 hexadecimal digits.
    pub id: String,
    /// Its experiment.
    pub experiment_id: i64,
    /// Its name (also the `mlflow.runName` tag).
    pub name: String,
    /// Who started it, as authenticated.
    pub user: String,
    /// Its status.
    pub status: RunStatus,
    /// Started, ms since the epoch.
    pub start_ms: Option<i64>,
    /// Ended, ms since the epoch.
    pub end_ms: Option<i64>,
    /// Deleted or not.
    pub lifecycle: Lifecycle,
    /// `mlflow-artifacts:/<experiment>/<run>/artifacts`.
    pub artifact_uri: String,
    /// The job run it records, when a job started it.
    pub job_run: Option<i64>,
}

/// A dataset a run read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Its name.
    pub name: String,
    /// Its digest.
    pub digest: String,
    /// Where it came from, as a kind (`code`, `local`, `http`, `s3`…).
    pub source_type: String,
    /// Where it came from (JSON, as the client wrote it).
    pub source: String,
    /// Its schema (JSON).
    pub schema: Option<String>,
    /// Its profile (JSON).
    pub profile: Option<String>,
}

/// A dataset and how the run used it (`mlflow.data.context` tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInput {
    /// The dataset.
    pub dataset: Dataset,
    /// Tags of the use.
    pub tags: Vec<KeyValue>,
}

/// A logged model a run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOutput {
    /// `m-…`.
    pub model_id: String,
    /// The step at which it was logged.
    pub step: i64,
}

/// A run and everything logged to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// What it is.
    pub info: RunInfo,
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    /// Its parameters.
    pub params: Vec<KeyValue>,
    /// Its tags.
    pub tags: Vec<KeyValue>,
    /// The datasets it read.
    pub inputs: Vec<DatasetInput>,
    /// The models it logged.
    pub outputs: Vec<ModelOutput>,
}

impl Run {
    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// A metric's latest value.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
}

/// A model logged through MLflow 3's logged-model API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedModel {
    /// `m-` and 32 hexadecimal digits.
    pub id: String,
    /// Its experiment.
    pub experiment_id: i64,
    /// Its name.
    pub name: String,
    /// `mlflow-artifacts:/<experiment>/models/<id>/artifacts`.
    pub artifact_uri: String,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    /// A free-form type.
    pub model_type: String,
    /// The run that logged it.
    pub source_run_id: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
    /// Its parameters.
    pub params: Vec<KeyValue>,
    /// Its tags.
    pub tags: Vec<KeyValue>,
}

/// One page of results and the token of the next.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The results.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next_page_token: Option<String>,
}

/// A run to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRun {
    /// Its experiment.
    pub experiment_id: i64,
    /// Its name (else the `mlflow.runName` tag, else one is made up).
    pub name: Option<String>,
    /// Who starts it, as authenticated.
    pub user: String,
    /// When, ms since the epoch (default: now).
    pub start_ms: Option<i64>,
    /// Its first tags.
    pub tags: Vec<KeyValue>,
    /// The job run it records.
    pub job_run: Option<i64>,
}

/// A search of runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// In these experiments.
    pub experiment_ids: Vec<i64>,
    /// MLflow's filter syntax (`metrics.acc > 0.9 and params.C = '1'`).
    pub filter: String,
    /// Active, deleted or both.
    pub view: ViewType,
    /// At most this many.
    pub max_results: usize,
    /// `metrics.acc DESC`, `params.C`, `attributes.start_time`…
    pub order_by: Vec<String>,
    /// Where to start.
    pub page_token: Option<String>,
}

// ------------------------------------------------------------------ rows --

pub(crate) fn pairs(kv: &[KeyValue]) -> Vec<(&str, &str)> {
    kv.iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect()
}

fn unpairs(json: &str) -> Result<Vec<KeyValue>> {
    let v: Vec<(String, String)> = serde_json::from_str(json)?;
    Ok(v.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

pub(crate) fn put_tag(conn: &Connection, run_id: &str, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![run_id, key, value])?;
    Ok(())
}

/// Appends a point (the same point again is kept once, as MLflow keeps
/// it) and keeps the latest value per key as MLflow orders them: by step,
/// then timestamp, then value.
pub(crate) fn put_metric(conn: &Connection, run_id: &str, m: &Metric) -> Result<()> {
    let (value, nan) = if m.value.is_nan() {
        (None, 1)
    } else {
        (Some(m.value), 0)
    };
    conn.prepare_cached(
        "INSERT OR IGNORE INTO run_metrics (run_id, key, step, timestamp_ms, value, is_nan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![run_id, m.key, m.step, m.timestamp_ms, value, nan])?;
    conn.prepare_cached(
        "INSERT INTO latest_metrics (run_id, key, step, timestamp_ms, value, is_nan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (run_id, key) DO UPDATE SET
           step = excluded.step, timestamp_ms = excluded.timestamp_ms,
           value = excluded.value, is_nan = excluded.is_nan
         WHERE (excluded.step, excluded.timestamp_ms, coalesce(excluded.value, -1e308))
             >= (latest_metrics.step, latest_metrics.timestamp_ms, coalesce(latest_metrics.value, -1e308))",
    )?
    .execute(params![run_id, m.key, m.step, m.timestamp_ms, value, nan])?;
    Ok(())
}

pub(crate) fn metric_row(r: &Row<'_>) -> rusqlite::Result<Metric> {
    let value: Option<f64> = r.get(1)?;
    let nan: i64 = r.get(2)?;
    Ok(Metric {
        key: r.get(0)?,
        value: if nan != 0 {
            f64::NAN
        } else {
            value.unwrap_or(f64::NAN)
        },
        timestamp_ms: r.get(3)?,
        step: r.get(4)?,
    })
}

pub(crate) fn experiment_where<P: rusqlite::Params>(
    conn: &Connection,
    condition: &str,
    p: P,
) -> Result<Option<super::Experiment>> {
    let sql = format!(
        "SELECT id, name, project, job, artifact_location, lifecycle, created_ms, updated_ms
         FROM experiments WHERE {condition}"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row(p, |r| {
            Ok(Experiment {
                id: r.get(0)?,
                name: r.get(1)?,
                project: r.get(2)?,
                job: r.get(3)?,
                artifact_location: r.get(4)?,
                lifecycle: Lifecycle::parse(&r.get::<_, String>(5)?),
                created_ms: r.get(6)?,
                updated_ms: r.get(7)?,
                tags: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut e) = found else {
        return Ok(None);
    };
    e.tags = conn
        .prepare_cached(
            "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key",
        )?
        .query_map([e.id], |r| {
            Ok(KeyValue::new(
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(e))
}

fn info_row(r: &Row<'_>) -> rusqlite::Result<RunInfo> {
    let status: String = r.get(4)?;
    Ok(RunInfo {
        id: r.get(0)?,
        experiment_id: r.get(1)?,
        name: r.get(2)?,
        user: r.get(3)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
        lifecycle: Lifecycle::parse(&r.get::<_, String>(7)?),
        artifact_uri: r.get(8)?,
        job_run: r.get(9)?,
    })
}

const INFO_COLUMNS: &str =
    "id, experiment_id, name, user, status, start_ms, end_ms, lifecycle, artifact_uri, job_run";

/// One run with its data.
pub(crate) fn load_run(conn: &Connection, id: &str) -> Result<Option<Run>> {
    Ok(load_runs(conn, &[id.to_string()])?.pop())
}

/// Runs with their data, in the order of `ids` (missing ones left out).
pub(crate) fn load_runs(conn: &Connection, ids: &[String]) -> Result<Vec<Run>> {
    let mut runs = Vec::with_capacity(ids.len());
    let mut info = conn.prepare_cached(&format!(
        "SELECT {INFO_COLUMNS} FROM tracked_runs WHERE id = ?1"
    ))?;
    let mut metrics = conn.prepare_cached(
        "SELECT key, value, is_nan, timestamp_ms, step FROM latest_metrics WHERE run_id = ?1 ORDER BY key",
    )?;
    let mut params_q =
        conn.prepare_cached("SELECT key, value FROM run_params WHERE run_id = ?1 ORDER BY key")?;
    let mut tags_q =
        conn.prepare_cached("SELECT key, value FROM run_tags WHERE run_id = ?1 ORDER BY key")?;
    let mut inputs_q = conn.prepare_cached(
        "SELECT name, digest, source_type, source, schema, profile, tags FROM run_inputs
         WHERE run_id = ?1 ORDER BY position",
    )?;
    let mut outputs_q = conn.prepare_cached(
        "SELECT model_id, step FROM run_outputs WHERE run_id = ?1 ORDER BY step, model_id",
    )?;
    let kv = |r: &Row<'_>| {
        Ok(KeyValue::new(
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
        ))
    };
    for id in ids {
        let Some(info) = info.query_row([id], info_row).optional()? else {
            continue;
        };
        let inputs = inputs_q
            .query_map([id], |r| {
                Ok((
                    Dataset {
                        name: r.get(0)?,
                        digest: r.get(1)?,
                        source_type: r.get(2)?,
                        source: r.get(3)?,
                        schema: r.get(4)?,
                        profile: r.get(5)?,
                    },
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(dataset, tags)| {
                Ok(DatasetInput {
                    dataset,
                    tags: unpairs(&tags)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        runs.push(Run {
            metrics: metrics
                .query_map([id], metric_row)?
                .collect::<rusqlite::Result<_>>()?,
            params: params_q
                .query_map([id], kv)?
                .collect::<rusqlite::Result<_>>()?,
            tags: tags_q
                .query_map([id], kv)?
                .collect::<rusqlite::Result<_>>()?,
            inputs,
            outputs: outputs_q
                .query_map([id], |r| {
                    Ok(ModelOutput {
                        model_id: r.get(0)?,
                        step: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?,
            info,
        });
    }
    Ok(runs)
}

pub(crate) fn logged_models_where(
    conn: &Connection,
    condition: &str,
    values: &[&dyn rusqlite::ToSql],
    limit: usize,
    offset: usize,
) -> Result<Vec<LoggedModel>> {
    let sql = format!(
        "SELECT id, experiment_id, name, artifact_uri, status, model_type, source_run_id,
                created_ms, updated_ms, params, tags
         FROM logged_models WHERE {condition}
         ORDER BY created_ms DESC, id LIMIT {limit} OFFSET {offset}"
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(values, |r| {
            Ok((
                LoggedModel {
                    id: r.get(0)?,
                    experiment_id: r.get(1)?,
                    name: r.get(2)?,
                    artifact_uri: r.get(3)?,
                    status: r.get(4)?,
                    model_type: r.get(5)?,
                    source_run_id: r.get(6)?,
                    created_ms: r.get(7)?,
                    updated_ms: r.get(8)?,
                    params: Vec::new(),
                    tags: Vec::new(),
                },
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(mut m, p, t)| {
            m.params = unpairs(&p)?;
            m.tags = unpairs(&t)?;
            Ok(m)
        })
        .collect()
}

/// A readable name for a run that was given none, from its id:
/// `bright-otter-417`.
pub(crate) fn generated_name(id: &str) -> String {
    const ADJECTIVES: [&str; 16] = [
        "bright", "calm", "clever", "brave", "gentle", "keen", "lively", "merry", "nimble",
        "quiet", "rapid", "steady", "sunny", "swift", "tidy", "wise",
    ];
    const NOUNS: [&str; 16] = [
        "otter", "heron", "lynx", "finch", "badger", "falcon", "marten", "newt", "owl", "puffin",
        "raven", "seal", "stoat", "swan", "wren", "yak",
    ];
    let n = u64::from_str_radix(&id[..id.len().min(12)], 16).unwrap_or(0);
    format!(
        "{}-{}-{}",
        ADJECTIVES[(n % 16) as usize],
        NOUNS[((n >> 4) % 16) as usize],
        (n >> 8) % 1000
    )
}
