//! The monitoring tables of the events database: business metrics and
//! feedback (delayed ground truth) by inference UUID, and the rows that
//! the aggregation reads.

use crate::events::project_column;
use cairn_spec::{ModelTask, ResourceKey};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Value, json};
use std::collections::HashMap;

/// A business metric's value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A number.
    Num(f64),
    /// A string (counted per value).
    Text(String),
}

/// Business metrics for one inference (or, without `uuid`, the model).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricItem {
    /// The inference, if any.
    pub uuid: Option<uuid::Uuid>,
    /// The metrics, by name.
    pub metrics: Vec<(String, MetricValue)>,
}

/// A ground-truth label for one inference.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackItem {
    /// The inference.
    pub uuid: uuid::Uuid,
    /// The true label (a number, a string, a boolean, or an array for a
    /// batch prediction).
    pub label: Value,
}

/// What a write recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Items recorded.
    pub recorded: usize,
    /// Of those, feedback that replaced an earlier label.
    pub replaced: usize,
    /// UUIDs that are not inferences of the model.
    pub unknown: Vec<uuid::Uuid>,
}

/// The time of inference `uuid` of `model`, if it is one.
fn inference_time(
    tx: &rusqlite::Transaction<'_>,
    model: &ResourceKey,
    uuid: &uuid::Uuid,
) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(
        "SELECT time_ms FROM inference_events WHERE uuid = ?1 AND project = ?2 AND model = ?3",
    )?
    .query_row(
        params![
            &uuid.as_bytes()[..],
            project_column(model),
            model.name.as_str()
        ],
        |r| r.get(0),
    )
    .optional()
}

/// Stores business metrics; those of unknown inferences are not stored.
pub fn record_metrics(
    conn: &mut Connection,
    model: &ResourceKey,
    items: &[MetricItem],
    now_ms: i64,
) -> rusqlite::Result<Recorded> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Recorded::default();
    for item in items {
        let time_ms = match &item.uuid {
            None => now_ms,
            Some(u) => match inference_time(&tx, model, u)? {
                Some(t) => t,
                None => {
                    out.unknown.push(*u);
                    continue;
                }
            },
        };
        let mut insert = tx.prepare_cached(
            "INSERT INTO business_metrics (uuid, project, model, time_ms, name, num, text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (name, value) in &item.metrics {
            let (num, text) = match value {
                MetricValue::Num(n) => (Some(*n), None),
                MetricValue::Text(t) => (None, Some(t.as_str())),
            };
            insert.execute(params![
                item.uuid.as_ref().map(|u| u.as_bytes().to_vec()),
                project_column(model),
                model.name.as_str(),
                time_ms,
                name,
                num,
                text
            ])?;
        }
        out.recorded += 1;
    }
    tx.commit()?;
    Ok(out)
}

/// Stores feedback, replacing earlier labels of the same inferences.
pub fn record_feedback(
    conn: &mut Connection,
    model: &ResourceKey,
    items: &[FeedbackItem],
    now_ms: i64,
) -> rusqlite::Result<Recorded> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Recorded::default();
    for item in items {
        if inference_time(&tx, model, &item.uuid)?.is_none() {
            out.unknown.push(item.uuid);
            continue;
        }
        let key = &item.uuid.as_bytes()[..];
        let existed = tx
            .prepare_cached("SELECT 1 FROM feedback WHERE uuid = ?1")?
            .exists([key])?;
        tx.prepare_cached(
            "INSERT INTO feedback (uuid, project, model, label, received_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (uuid) DO UPDATE SET label = excluded.label, \
             received_ms = excluded.received_ms",
        )?
        .execute(params![
            key,
            project_column(model),
            model.name.as_str(),
            item.label.to_string(),
            now_ms
        ])?;
        out.recorded += 1;
        out.replaced += usize::from(existed);
    }
    tx.commit()?;
    Ok(out)
}

/// A prediction, with its feedback if any.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRow {
    /// The model version.
    pub version: String,
    /// The inference time.
    pub time_ms: i64,
    /// The HTTP status answered.
    pub status: u16,
    /// The model's outputs.
    pub outputs: Value,
    /// The ground truth, if received.
    pub label: Option<Value>,
    /// How many inferences the row stands for (1, or more for rows
    /// grouped by [`fetch_grouped`]).
    pub count: u64,
}

/// A business metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// The version of its inference; `None` for model-level metrics.
    pub version: Option<String>,
    /// Its time.
    pub time_ms: i64,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: MetricValue,
}

/// The rows of `model` with `from_ms <= time < to_ms`.
pub fn fetch(
    conn: &Connection,
    model: &ResourceKey,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<(Vec<PredictionRow>, Vec<MetricRow>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, e.time_ms, e.status, e.outputs, f.label \
         FROM inference_events e LEFT JOIN feedback f ON f.uuid = e.uuid \
         WHERE e.project = ?1 AND e.model = ?2 AND e.time_ms >= ?3 AND e.time_ms < ?4",
    )?;
    let predictions = stmt
        .query_map(
            params![project_column(model), model.name.as_str(), from_ms, to_ms],
            |r| {
                let outputs: String = r.get(3)?;
                let label: Option<String> = r.get(4)?;
                Ok(PredictionRow {
                    version: r.get(0)?,
                    time_ms: r.get(1)?,
                    status: u16::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    outputs: serde_json::from_str(&outputs).unwrap_or(Value::Null),
                    label: label.and_then(|l| serde_json::from_str(&l).ok()),
                    count: 1,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((predictions, fetch_metrics(conn, model, from_ms, to_ms)?))
}

/// The rows of `model` with `from_ms <= time < to_ms`, as [`fetch`], but
/// grouped while read for [`aggregate`] with windows of `window_ms`: each
/// prediction row stands for the inferences of one window, version, status,
/// outputs and label (its time the window's start, its `count` theirs).
/// Unless the model is a regressor, outputs that are an object with a
/// `label` are reduced to `{"label": ...}` first (all that a classifier's
/// scores read), so a classifier's rows group to a few per window.
pub fn fetch_grouped(
    conn: &Connection,
    model: &ResourceKey,
    task: Option<ModelTask>,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
) -> rusqlite::Result<(Vec<PredictionRow>, Vec<MetricRow>)> {
    /// A classifier's outputs as far as its scores go.
    #[derive(serde::Deserialize)]
    struct Labeled<'a> {
        #[serde(borrow)]
        label: Option<&'a serde_json::value::RawValue>,
    }
    /// Texts by number, so that rows are counted without copying them.
    #[derive(Default)]
    struct Interned(HashMap<String, usize>);
    impl Interned {
        fn get(&mut self, text: &str) -> usize {
            if let Some(i) = self.0.get(text) {
                return *i;
            }
            let i = self.0.len();
            self.0.insert(text.to_string(), i);
            i
        }
        fn texts(self) -> Vec<String> {
            let mut texts = vec![String::new(); self.0.len()];
            for (text, i) in self.0 {
                texts[i] = text;
            }
            texts
        }
    }
    let window_ms = window_ms.max(1);
    let reduce = task != Some(ModelTask::Regression);
    // (version, window start, status, outputs: (reduced to their label?,
    // text), label).
    type Key = (usize, i64, i64, (bool, usize), Option<usize>);
    let mut groups: HashMap<Key, u64> = HashMap::new();
    let (mut versions, mut texts) = (Interned::default(), Interned::default());
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, e.time_ms, e.status, e.outputs, f.label \
         FROM inference_events e LEFT JOIN feedback f ON f.uuid = e.uuid \
         WHERE e.project = ?1 AND e.model = ?2 AND e.time_ms >= ?3 AND e.time_ms < ?4",
    )?;
    let mut rows = stmt.query(params![
        project_column(model),
        model.name.as_str(),
        from_ms,
        to_ms
    ])?;
    while let Some(r) = rows.next()? {
        let version = versions.get(r.get_ref(0)?.as_str().unwrap_or_default());
        let start = r.get::<_, i64>(1)?.div_euclid(window_ms) * window_ms;
        let status: i64 = r.get(2)?;
        let outputs = r.get_ref(3)?.as_str().unwrap_or_default();
        let outputs = match reduce
            .then(|| serde_json::from_str::<Labeled<'_>>(outputs).ok())
            .flatten()
            .and_then(|o| o.label)
            .filter(|l| l.get() != "null")
        {
            Some(label) => (true, texts.get(label.get())),
            None => (false, texts.get(outputs)),
        };
        let label = r.get_ref(4)?.as_str_or_null()?.map(|l| texts.get(l));
        *groups
            .entry((version, start, status, outputs, label))
            .or_default() += 1;
    }
    let (versions, texts) = (versions.texts(), texts.texts());
    let parse = |i: usize| serde_json::from_str(&texts[i]).unwrap_or(Value::Null);
    let predictions = groups
        .into_iter()
        .map(
            |((version, time_ms, status, (reduced, outputs), label), count)| PredictionRow {
                version: versions[version].clone(),
                time_ms,
                status: u16::try_from(status).unwrap_or(0),
                outputs: if reduced {
                    json!({ "label": parse(outputs) })
                } else {
                    parse(outputs)
                },
                label: label.and_then(|l| serde_json::from_str(&texts[l]).ok()),
                count,
            },
        )
        .collect();
    let metrics = fetch_metrics(conn, model, from_ms, to_ms)?;
    Ok((predictions, metrics))
}

/// The business metrics of a model in `[from_ms, to_ms)`.
fn fetch_metrics(
    conn: &Connection,
    model: &ResourceKey,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<MetricRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.version, b.time_ms, b.name, b.num, b.text \
         FROM business_metrics b LEFT JOIN inference_events e ON e.uuid = b.uuid \
         WHERE b.project = ?1 AND b.model = ?2 AND b.time_ms >= ?3 AND b.time_ms < ?4",
    )?;
    let metrics = stmt
        .query_map(
            params![project_column(model), model.name.as_str(), from_ms, to_ms],
            |r| {
                let num: Option<f64> = r.get(3)?;
                let text: Option<String> = r.get(4)?;
                Ok(MetricRow {
                    version: r.get(0)?,
                    time_ms: r.get(1)?,
                    name: r.get(2)?,
                    value: match num {
                        Some(n) => MetricValue::Num(n),
                        None => MetricValue::Text(text.unwrap_or_default()),
                    },
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(metrics)
}

/// What changes when monitoring data is written: the last inference
/// event (written by the event log's writer) and the changes made through
/// `conn`, the monitoring connection that writes feedback and business
/// metrics (cheap: an index end and a counter).
pub fn fingerprint(conn: &Connection) -> rusqlite::Result<(i64, u64)> {
    let last_event = conn.query_row(
        "SELECT IFNULL(MAX(rowid), 0) FROM inference_events",
        [],
        |r| r.get(0),
    )?;
    Ok((last_event, conn.total_changes()))
}

/// The database file behind `conn` (empty in memory).
pub fn db_path(conn: &Connection) -> String {
    conn.path().unwrap_or_default().to_string()
}

/// The status and latency (µs) of each request `version` of `model`
/// answered in `[from_ms, to_ms)`.
pub fn request_outcomes(
    conn: &Connection,
    model: &ResourceKey,
    version: &str,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<(i64, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, latency_us FROM inference_events
         WHERE project = ?1 AND model = ?2 AND time_ms >= ?3 AND time_ms < ?4 AND version = ?5",
    )?;
    let params = params![
        project_column(model),
        model.name.as_str(),
        from_ms,
        to_ms,
        version
    ];
    let rows = stmt.query_map(params, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    rows.collect()
}
