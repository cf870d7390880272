//! Experiment tracking, in MLflow's model: experiments (one per job by
//! default, or named), runs with parameters, metric histories (step,
//! timestamp, value) and the latest value of each metric, tags, dataset
//! inputs, model outputs and logged models. A run started by a job run
//! carries its id (`job_run`), so a job run and its MLflow run are one.
//!
//! MLflow's rules are kept: a parameter, once logged, may not change; a
//! batch is stored whole or not at all; names, values and batches are
//! bounded as MLflow bounds them. Searches take MLflow's filter and
//! order-by syntax ([`search`]).

mod records;
pub mod search;

use crate::{Store, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

pub use records::{
    Dataset, DatasetInput, Experiment, KeyValue, Lifecycle, LoggedModel, Metric, ModelOutput,
    NewRun, Page, Run, RunInfo, RunQuery, RunStatus, ViewType,
};

/// What tracking refuses, in MLflow's terms.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// No such experiment, run or model (`RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken (`RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A bad value, name, filter or batch (`INVALID_PARAMETER_VALUE`).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TrackingError {
    fn from(e: rusqlite::Error) -> Self {
        TrackingError::Store(StoreError::Sqlite(e))
    }
}

impl From<serde_json::Error> for TrackingError {
    fn from(e: serde_json::Error) -> Self {
        TrackingError::Store(StoreError::Json(e))
    }
}

/// A tracking result.
pub type Result<T> = std::result::Result<T, TrackingError>;

/// MLflow's bounds.
pub mod limits {
    /// Metrics in one batch.
    pub const METRICS_PER_BATCH: usize = 1000;
    /// Parameters in one batch.
    pub const PARAMS_PER_BATCH: usize = 100;
    /// Tags in one batch.
    pub const TAGS_PER_BATCH: usize = 100;
    /// Everything in one batch.
    pub const ENTITIES_PER_BATCH: usize = 1000;
    /// A metric, parameter or tag name.
    pub const KEY_LENGTH: usize = 250;
    /// A parameter's value.
    pub const PARAM_VALUE_LENGTH: usize = 6000;
    /// A tag's value.
    pub const TAG_VALUE_LENGTH: usize = 8000;
    /// An experiment's or a run's name.
    pub const NAME_LENGTH: usize = 500;
    /// Results of one search page.
    pub const SEARCH_PAGE: usize = 50_000;
    /// Points of one metric-history page.
    pub const HISTORY_PAGE: usize = 25_000;
}

/// The tag holding a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// The store's tracking tables.
pub struct Tracking<'a> {
    store: &'a Store,
}

impl Store {
    /// Experiment tracking.
    pub fn tracking(&self) -> Tracking<'_> {
        Tracking { store: self }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tracking<'_> {
    // -------------------------------------------------------- experiments --

    /// Creates an experiment (artifacts under `mlflow-artifacts:/<id>`).
    pub fn create_experiment(
        &self,
        name: &str,
        project: Option<&str>,
        job: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<Experiment> {
        check_name("experiment name", name)?;
        for t in tags {
            check_tag(t)?;
        }
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        let taken: Option<i64> = tx
            .query_row("SELECT id FROM experiments WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            return Err(TrackingError::AlreadyExists(format!(
                "Experiment '{name}' already exists."
            )));
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO experiments (name, project, job, artifact_location, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, '', ?4, ?4)",
            params![name, project, job, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE experiments SET artifact_location = ?2 WHERE id = ?1",
            params![id, format!("mlflow-artifacts:/{id}")],
        )?;
        for t in tags {
            tx.execute(
                "INSERT OR REPLACE INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)",
                params![id, t.key, t.value],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.experiment(id)
    }

    /// The experiment `id`.
    pub fn experiment(&self, id: i64) -> Result<Experiment> {
        let conn = self.store.conn();
        records::experiment_where(&conn, "id = ?1", [id])?
            .ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={id} exists")))
    }

    /// The experiment named `name`.
    pub fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let conn = self.store.conn();
        records::experiment_where(&conn, "name = ?1", [name])?.ok_or_else(|| {
            TrackingError::NotFound(format!("Could not find experiment with name '{name}'"))
        })
    }

    /// The experiment of `job` in `project`, created on first use with
    /// `name` (default `PROJECT/JOB`).
    pub fn job_experiment(
        &self,
        project: Option<&str>,
        job: &str,
        name: Option<&str>,
    ) -> Result<Experiment> {
        let name = name.map(str::to_string).unwrap_or_else(|| match project {
            Some(p) => format!("{p}/{job}"),
            None => job.to_string(),
        });
        match self.experiment_by_name(&name) {
            Ok(e) => Ok(e),
            Err(TrackingError::NotFound(_)) => {
                let tags = [KeyValue::new("cairn.job", job)];
                match self.create_experiment(&name, project, Some(job), &tags) {
                    Err(TrackingError::AlreadyExists(_)) => self.experiment_by_name(&name),
                    other => other,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Experiments matching MLflow's filter syntax (`name LIKE 'lab/%'`,
    /// `tags.team = 'a'`), ordered by `name`, `creation_time`,
    /// `last_update_time` or `experiment_id`.
    pub fn search_experiments(
        &self,
        filter: &str,
        view: ViewType,
        max_results: usize,
        order_by: &[String],
        page_token: Option<&str>,
    ) -> Result<Page<Experiment>> {
        let query = search::experiment_query(filter, view, order_by)?;
        let offset = search::decode_page_token(page_token)?;
        let max = max_results.clamp(1, limits::SEARCH_PAGE);
        let conn = self.store.conn();
        let ids: Vec<i64> = {
            let sql = format!("{} LIMIT {} OFFSET {}", query.sql, max + 1, offset);
            let mut stmt = conn.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(query.params.iter()), |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let more = ids.len() > max;
        let mut items = Vec::with_capacity(ids.len().min(max));
        for id in ids.into_iter().take(max) {
            if let Some(e) = records::experiment_where(&conn, "id = ?1", [id])? {
                items.push(e);
            }
        }
        Ok(Page {
            next_page_token: more.then(|| search::encode_page_token(offset + max)),
            items,
        })
    }

    /// Deletes (softly, as MLflow does) or restores an experiment.
    pub fn set_experiment_lifecycle(&self, id: i64, lifecycle: Lifecycle) -> Result<()> {
        self.experiment(id)?;
        self.store.conn().execute(
            "UPDATE experiments SET lifecycle = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, lifecycle.as_str(), now_ms()],
        )?;
        Ok(())
    }

    /// Renames an experiment.
    pub fn rename_experiment(&self, id: i64, name: &str) -> Result<()> {
        check_name("experiment name", name)?;
        let e = self.experiment(id)?;
        if e.name == name {
            return Ok(());
        }
        if self.experiment_by_name(name).is_ok() {
            return Err(TrackingError::AlreadyExists(format!(
                "Experiment '{name}' already exists."
            )));
        }
        self.store.conn().execute(
            "UPDATE experiments SET name = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, name, now_ms()],
        )?;
        Ok(())
    }

    /// Sets a tag on an experiment.
    pub fn set_experiment_tag(&self, id: i64, key: &str, value: &str) -> Result<()> {
        let tag = KeyValue::new(key, value);
        check_tag(&tag)?;
        self.experiment(id)?;
        self.store.conn().execute(
            "INSERT OR REPLACE INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)",
            params![id, key, value],
        )?;
        Ok(())
    }

    // --------------------------------------------------------------- runs --

    /// Starts a run (status `RUNNING`) in an active experiment.
    pub fn create_run(&self, new: &NewRun) -> Result<Run> {
        let experiment = self.experiment(new.experiment_id)?;
        if experiment.lifecycle != Lifecycle::Active {
            return Err(TrackingError::Invalid(format!(
                "The experiment {} must be in the 'active' state to create runs in it",
                experiment.id
            )));
        }
        for t in &new.tags {
            check_tag(t)?;
        }
        let id = crate::random_hex(16)?;
        let name = new
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                new.tags
                    .iter()
                    .find(|t| t.key == RUN_NAME_TAG)
                    .map(|t| t.value.clone())
            })
            .unwrap_or_else(|| records::generated_name(&id));
        check_name("run name", &name)?;
        let artifact_uri = format!("{}/{id}/artifacts", experiment.artifact_location);
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO tracked_runs (id, experiment_id, name, user, status, start_ms, artifact_uri, job_run)
             VALUES (?1, ?2, ?3, ?4, 'RUNNING', ?5, ?6, ?7)",
            params![
                id,
                new.experiment_id,
                name,
                new.user,
                new.start_ms.unwrap_or_else(now_ms),
                artifact_uri,
                new.job_run
            ],
        )?;
        for t in &new.tags {
            records::put_tag(&tx, &id, &t.key, &t.value)?;
        }
        records::put_tag(&tx, &id, RUN_NAME_TAG, &name)?;
        tx.commit()?;
        drop(conn);
        self.run(&id)
    }

    /// The run `id`, with its latest metrics, params, tags, inputs and outputs.
    pub fn run(&self, id: &str) -> Result<Run> {
        let conn = self.store.conn();
        records::load_run(&conn, id)?
            .ok_or_else(|| TrackingError::NotFound(format!("Run '{id}' not found")))
    }

    /// The run of job run `job_run`, if one was started for it.
    pub fn run_of_job_run(&self, job_run: i64) -> Result<Option<Run>> {
        let conn = self.store.conn();
        let id: Option<String> = conn
            .query_row(
                "SELECT id FROM tracked_runs WHERE job_run = ?1",
                [job_run],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Ok(records::load_run(&conn, &id)?),
            None => Ok(None),
        }
    }

    /// The latest value of metric `key` in the run of job run `job_run`.
    pub fn job_run_metric(&self, job_run: i64, key: &str) -> Result<Option<f64>> {
        let conn = self.store.conn();
        let value: Option<Option<f64>> = conn
            .query_row(
                "SELECT m.value FROM latest_metrics m JOIN tracked_runs r ON r.id = m.run_id
                 WHERE r.job_run = ?1 AND m.key = ?2 AND m.is_nan = 0",
                params![job_run, key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value.flatten())
    }

    /// Per experiment id: how many active runs it has, sweep parents (runs
    /// tagged `cairn.sweep`) aside, and when the latest of them started
    /// (ms since the epoch).
    pub fn run_counts(&self) -> Result<std::collections::HashMap<i64, (i64, Option<i64>)>> {
        let conn = self.store.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT r.experiment_id, COUNT(*), MAX(r.start_ms) FROM tracked_runs r
             WHERE r.lifecycle = 'active' AND NOT EXISTS
               (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.key = 'cairn.sweep')
             GROUP BY r.experiment_id",
        )?;
        let counts = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(counts)
    }

    /// Updates a run's status, end time or name.
    pub fn update_run(
        &self,
        id: &str,
        status: Option<RunStatus>,
        end_ms: Option<i64>,
        name: Option<&str>,
    ) -> Result<RunInfo> {
        let run = self.run(id)?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            check_name("run name", n)?;
        }
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        if let Some(s) = status {
            tx.execute(
                "UPDATE tracked_runs SET status = ?2 WHERE id = ?1",
                params![id, s.as_str()],
            )?;
        }
        if let Some(end) = end_ms {
            tx.execute(
                "UPDATE tracked_runs SET end_ms = ?2 WHERE id = ?1",
                params![id, end],
            )?;
        } else if status.is_some_and(RunStatus::is_terminated) && run.info.end_ms.is_none() {
            tx.execute(
                "UPDATE tracked_runs SET end_ms = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )?;
        }
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            tx.execute(
                "UPDATE tracked_runs SET name = ?2 WHERE id = ?1",
                params![id, n],
            )?;
            records::put_tag(&tx, id, RUN_NAME_TAG, n)?;
        }
        tx.commit()?;
        drop(conn);
        Ok(self.run(id)?.info)
    }

    /// Deletes (softly) or restores a run.
    pub fn set_run_lifecycle(&self, id: &str, lifecycle: Lifecycle) -> Result<()> {
        self.run(id)?;
        self.store.conn().execute(
            "UPDATE tracked_runs SET lifecycle = ?2 WHERE id = ?1",
            params![id, lifecycle.as_str()],
        )?;
        Ok(())
    }

    /// Logs metrics, parameters and tags to an active run, all or nothing.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<()> {
        check_batch(metrics, params, tags)?;
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        active_run(&tx, run_id)?;
        let mut seen: std::collections::HashMap<&str, &str> = Default::default();
        for p in params {
            if let Some(earlier) = seen.insert(&p.key, &p.value)
                && earlier != p.value
            {
                return Err(TrackingError::Invalid(format!(
                    "Duplicate parameter keys have been submitted: '{}' with values '{earlier}' and '{}'",
                    p.key, p.value
                )));
            }
            let logged: Option<String> = tx
                .query_row(
                    "SELECT value FROM run_params WHERE run_id = ?1 AND key = ?2",
                    params![run_id, p.key],
                    |r| r.get(0),
                )
                .optional()?;
            match logged {
                Some(v) if v != p.value => {
                    return Err(TrackingError::Invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{v}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                        p.key, p.value
                    )));
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO run_params (run_id, key, value) VALUES (?1, ?2, ?3)",
                        params![run_id, p.key, p.value],
                    )?;
                }
            }
        }
        for m in metrics {
            records::put_metric(&tx, run_id, m)?;
        }
        for t in tags {
            records::put_tag(&tx, run_id, &t.key, &t.value)?;
            if t.key == RUN_NAME_TAG {
                tx.execute(
                    "UPDATE tracked_runs SET name = ?2 WHERE id = ?1",
                    params![run_id, t.value],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes a tag from a run.
    pub fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let conn = self.store.conn();
        active_run(&conn, run_id)?;
        let n = conn.execute(
            "DELETE FROM run_tags WHERE run_id = ?1 AND key = ?2",
            params![run_id, key],
        )?;
        if n == 0 {
            return Err(TrackingError::NotFound(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    /// Records the datasets a run read (a dataset logged again is kept once).
    pub fn log_inputs(&self, run_id: &str, datasets: &[DatasetInput]) -> Result<()> {
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        active_run(&tx, run_id)?;
        let start: i64 = tx.query_row(
            "SELECT COUNT(*) FROM run_inputs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )?;
        for (i, d) in datasets.iter().enumerate() {
            if d.dataset.name.is_empty() || d.dataset.digest.is_empty() {
                return Err(TrackingError::Invalid(
                    "a dataset input needs a name and a digest".into(),
                ));
            }
            tx.execute(
                "INSERT OR IGNORE INTO run_inputs
                 (run_id, position, name, digest, source_type, source, schema, profile, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    run_id,
                    start + i as i64,
                    d.dataset.name,
                    d.dataset.digest,
                    d.dataset.source_type,
                    d.dataset.source,
                    d.dataset.schema,
                    d.dataset.profile,
                    serde_json::to_string(&records::pairs(&d.tags))?
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the logged models a run produced.
    pub fn log_outputs(&self, run_id: &str, models: &[ModelOutput]) -> Result<()> {
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        active_run(&tx, run_id)?;
        for m in models {
            tx.execute(
                "INSERT OR REPLACE INTO run_outputs (run_id, model_id, step) VALUES (?1, ?2, ?3)",
                params![run_id, m.model_id, m.step],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every point of metric `key` in a run, oldest first.
    pub fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: usize,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.run(run_id)?;
        let offset = search::decode_page_token(page_token)?;
        let max = max_results.clamp(1, limits::HISTORY_PAGE);
        let conn = self.store.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, value, is_nan, timestamp_ms, step FROM run_metrics
             WHERE run_id = ?1 AND key = ?2 ORDER BY timestamp_ms, step, rowid
             LIMIT ?3 OFFSET ?4",
        )?;
        let mut items: Vec<Metric> = stmt
            .query_map(
                params![run_id, key, (max + 1) as i64, offset as i64],
                records::metric_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        let more = items.len() > max;
        items.truncate(max);
        Ok(Page {
            items,
            next_page_token: more.then(|| search::encode_page_token(offset + max)),
        })
    }

    /// Runs of the given experiments matching MLflow's filter syntax, in
    /// the order asked (default: newest first).
    pub fn search_runs(&self, query: &RunQuery) -> Result<Page<Run>> {
        let compiled = search::run_query(
            &query.experiment_ids,
            &query.filter,
            query.view,
            &query.order_by,
        )?;
        let offset = search::decode_page_token(query.page_token.as_deref())?;
        let max = query.max_results.clamp(1, limits::SEARCH_PAGE);
        let conn = self.store.conn();
        let ids: Vec<String> = {
            let sql = format!("{} LIMIT {} OFFSET {}", compiled.sql, max + 1, offset);
            let mut stmt = conn.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(compiled.params.iter()), |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let more = ids.len() > max;
        let items = records::load_runs(&conn, &ids[..ids.len().min(max)])?;
        Ok(Page {
            items,
            next_page_token: more.then(|| search::encode_page_token(offset + max)),
        })
    }

    // ------------------------------------------------------ logged models --

    /// Creates a logged model (status `LOGGED_MODEL_PENDING`).
    pub fn create_logged_model(
        &self,
        experiment_id: i64,
        name: &str,
        model_type: &str,
        source_run_id: Option<&str>,
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<LoggedModel> {
        let experiment = self.experiment(experiment_id)?;
        if let Some(run) = source_run_id {
            self.run(run)?;
        }
        let name = if name.is_empty() { "model" } else { name };
        check_name("model name", name)?;
        let id = format!("m-{}", crate::random_hex(16)?);
        let now = now_ms();
        self.store.conn().execute(
            "INSERT INTO logged_models (id, experiment_id, name, artifact_uri, status, model_type,
             source_run_id, created_ms, updated_ms, params, tags)
             VALUES (?1, ?2, ?3, ?4, 'LOGGED_MODEL_PENDING', ?5, ?6, ?7, ?7, ?8, ?9)",
            params![
                id,
                experiment_id,
                name,
                format!("{}/models/{id}/artifacts", experiment.artifact_location),
                model_type,
                source_run_id,
                now,
                serde_json::to_string(&records::pairs(params))?,
                serde_json::to_string(&records::pairs(tags))?
            ],
        )?;
        self.logged_model(&id)
    }

    /// The logged model `id`.
    pub fn logged_model(&self, id: &str) -> Result<LoggedModel> {
        let conn = self.store.conn();
        records::logged_models_where(&conn, "id = ?1", &[&id as &dyn rusqlite::ToSql], 1, 0)?
            .pop()
            .ok_or_else(|| {
                TrackingError::NotFound(format!("Logged model with ID '{id}' not found"))
            })
    }

    /// Sets a logged model's status (`LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`).
    pub fn finalize_logged_model(&self, id: &str, status: &str) -> Result<LoggedModel> {
        if !matches!(
            status,
            "LOGGED_MODEL_READY" | "LOGGED_MODEL_UPLOAD_FAILED" | "LOGGED_MODEL_PENDING"
        ) {
            return Err(TrackingError::Invalid(format!(
                "Invalid logged model status '{status}'"
            )));
        }
        self.logged_model(id)?;
        self.store.conn().execute(
            "UPDATE logged_models SET status = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, status, now_ms()],
        )?;
        self.logged_model(id)
    }

    /// Logged models of the given experiments; the filter may compare
    /// `name` (`name = 'model'`, `name LIKE 'm%'`) and nothing else.
    pub fn search_logged_models(
        &self,
        experiment_ids: &[i64],
        filter: &str,
        max_results: usize,
        page_token: Option<&str>,
    ) -> Result<Page<LoggedModel>> {
        let offset = search::decode_page_token(page_token)?;
        let max = max_results.clamp(1, limits::SEARCH_PAGE);
        let (sql, values) = search::logged_model_query(experiment_ids, filter)?;
        let conn = self.store.conn();
        let refs: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        let mut items = records::logged_models_where(&conn, &sql, &refs, max + 1, offset)?;
        let more = items.len() > max;
        items.truncate(max);
        Ok(Page {
            items,
            next_page_token: more.then(|| search::encode_page_token(offset + max)),
        })
    }
}

/// The run's lifecycle must be active to log to it.
fn active_run(conn: &Connection, run_id: &str) -> Result<()> {
    let lifecycle: Option<String> = conn
        .query_row(
            "SELECT lifecycle FROM tracked_runs WHERE id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .optional()?;
    match lifecycle.as_deref() {
        None => Err(TrackingError::NotFound(format!("Run '{run_id}' not found"))),
        Some("active") => Ok(()),
        Some(other) => Err(TrackingError::Invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {other}."
        ))),
    }
}

/// MLflow's rule for metric, parameter and tag names: letters, digits,
/// `_ - . / :` and spaces, no `..` segment, not absolute.
fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(TrackingError::Invalid(format!(
            "{what} name must not be empty"
        )));
    }
    if key.len() > limits::KEY_LENGTH {
        return Err(TrackingError::Invalid(format!(
            "{what} name '{}…' is {} characters long; the limit is {}",
            &key[..key.floor_char_boundary(40)],
            key.len(),
            limits::KEY_LENGTH
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | ':');
    if !key.chars().all(allowed) || key.starts_with('/') || key.split('/').any(|s| s == "..") {
        return Err(TrackingError::Invalid(format!(
            "Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/), and may not be absolute or contain '..'"
        )));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(TrackingError::Invalid(format!("{what} must not be empty")));
    }
    if name.len() > limits::NAME_LENGTH {
        return Err(TrackingError::Invalid(format!(
            "{what} is {} characters long; the limit is {}",
            name.len(),
            limits::NAME_LENGTH
        )));
    }
    Ok(())
}

fn check_tag(tag: &KeyValue) -> Result<()> {
    check_key("Tag", &tag.key)?;
    if tag.value.len() > limits::TAG_VALUE_LENGTH {
        return Err(TrackingError::Invalid(format!(
            "Tag '{}' has a value of {} characters; the limit is {}",
            tag.key,
            tag.value.len(),
            limits::TAG_VALUE_LENGTH
        )));
    }
    Ok(())
}

fn check_batch(metrics: &[Metric], params: &[KeyValue], tags: &[KeyValue]) -> Result<()> {
    let over = |what: &str, n: usize, limit: usize| {
        TrackingError::Invalid(format!(
            "A batch may log at most {limit} {what}; this one has {n}"
        ))
    };
    if metrics.len() > limits::METRICS_PER_BATCH {
        return Err(over("metrics", metrics.len(), limits::METRICS_PER_BATCH));
    }
    if params.len() > limits::PARAMS_PER_BATCH {
        return Err(over("params", params.len(), limits::PARAMS_PER_BATCH));
    }
    if tags.len() > limits::TAGS_PER_BATCH {
        return Err(over("tags", tags.len(), limits::TAGS_PER_BATCH));
    }
    let total = metrics.len() + params.len() + tags.len();
    if total > limits::ENTITIES_PER_BATCH {
        return Err(over(
            "metrics, params and tags together",
            total,
            limits::ENTITIES_PER_BATCH,
        ));
    }
    for m in metrics {
        check_key("Metric", &m.key)?;
    }
    for p in params {
        check_key("Param", &p.key)?;
        if p.value.len() > limits::PARAM_VALUE_LENGTH {
            return Err(TrackingError::Invalid(format!(
                "Param '{}' has a value of {} characters; the limit is {}",
                p.key,
                p.value.len(),
                limits::PARAM_VALUE_LENGTH
            )));
        }
    }
    for t in tags {
        check_tag(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
