//! The report of a model's windows, and the dashboard's summaries of it,
//! kept between visits.

use crate::aggregate::{aggregate, infer_task, rfc3339};
use cairn_api::monitoring::{AggregateReport, Task};
use cairn_spec::{ModelTask, ResourceKey};
use cairn_store::Connection;
use cairn_store::events::EventLog;
use cairn_store::monitoring::{db_path, fetch_grouped, fingerprint};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The scores of each version of `model` over `from_ms <= time < to_ms`
/// taken as one window (the Prometheus gauges of the current hour):
/// versions with predictions only; accuracy for classifiers, MAE for
/// regressors, each `None` without scored labels.
pub fn current_scores(
    conn: &Connection,
    model: &ResourceKey,
    task: Option<ModelTask>,
    from_ms: i64,
    to_ms: i64,
) -> cairn_store::SqlResult<Vec<cairn_gateway::metrics::ModelScores>> {
    let (predictions, _) = fetch_grouped(conn, model, task, from_ms, to_ms, to_ms.max(1))?;
    let task = infer_task(task, &predictions);
    // One window: every time in [from, to) lies in [0, to) (times are after
    // the epoch), so a window of `to` aligned on the epoch holds them all.
    let windows = aggregate(task, &predictions, &[], to_ms.max(1));
    Ok(windows
        .iter()
        .filter_map(|w| {
            Some(cairn_gateway::metrics::ModelScores {
                project: model
                    .project
                    .as_ref()
                    .map_or_else(String::new, |p| p.to_string()),
                model: model.name.to_string(),
                version: w.version.clone()?,
                accuracy: w.accuracy.flatten(),
                coverage: w.coverage,
                mae: w.mae.flatten(),
            })
        })
        .collect())
}

/// The body of `GET /api/v1/models/NAME/metrics/aggregate`: the windows of
/// `model` over `from_ms <= time < to_ms`.
pub fn report(
    conn: &Connection,
    model: &ResourceKey,
    task: Option<ModelTask>,
    from: i64,
    to: i64,
    window: i64,
) -> cairn_store::SqlResult<AggregateReport> {
    let (predictions, metrics) = fetch_grouped(conn, model, task, from, to, window)?;
    let task = infer_task(task, &predictions);
    let windows = aggregate(task, &predictions, &metrics, window);
    Ok(AggregateReport {
        project: model.project.as_ref().map(|p| p.to_string()),
        model: model.name.to_string(),
        task: match task {
            ModelTask::Classification => Task::Classification,
            ModelTask::Regression => Task::Regression,
        },
        from: rfc3339(from),
        to: rfc3339(to),
        window_seconds: window / 1000,
        windows,
    })
}

/// A summary kept by [`summary`].
struct Summary {
    fingerprint: (i64, u64),
    computed: std::time::Instant,
    took: std::time::Duration,
    value: AggregateReport,
}

/// The dashboard's summaries, kept between visits: one owner per server
/// (see [`Summaries::page_summary`]).
#[derive(Default)]
pub struct Summaries {
    /// Summaries by database, model and span.
    kept: Mutex<HashMap<String, Summary>>,
    /// Summaries being recomputed in the background.
    refreshing: Mutex<BTreeSet<String>>,
}

/// The span of the dashboard's model page summary, in days.
pub const PAGE_DAYS: i64 = 30;

/// A summary taking longer than this is recomputed off the page's request.
const COSTLY: std::time::Duration = std::time::Duration::from_millis(50);

/// With more inference events than this in the store, a summary never
/// computed before is computed off the page's request.
const LARGE_STORE: i64 = 100_000;

fn summary_key(conn: &Connection, model: &ResourceKey, days: i64) -> String {
    kept_key(&db_path(conn), model, days)
}

fn kept_key(db_path: &str, model: &ResourceKey, days: i64) -> String {
    format!("{db_path}\0{}\0{days}", model.qualified_name())
}

impl Summaries {
    /// What the cache holds for `key`: the value, whether it is still current,
    /// and how long it took to compute. A summary is current while no
    /// monitoring data was written (for up to 5 minutes), and while younger
    /// than 10 seconds when it was costly, so that a large store under traffic
    /// is aggregated at most every 10 s per model.
    fn cached(
        &self,
        key: &str,
        fingerprint: (i64, u64),
    ) -> Option<(AggregateReport, bool, std::time::Duration)> {
        let summaries = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let s = summaries.get(key)?;
        let age = s.computed.elapsed();
        let unchanged = s.fingerprint == fingerprint && age < std::time::Duration::from_secs(300);
        let costly = s.took > COSTLY && age < std::time::Duration::from_secs(10);
        Some((s.value.clone(), unchanged || costly, s.took))
    }

    /// Computes the summary and keeps it.
    fn compute_summary(
        &self,
        conn: &Connection,
        model: &ResourceKey,
        task: Option<ModelTask>,
        days: i64,
    ) -> cairn_store::SqlResult<AggregateReport> {
        let fingerprint = fingerprint(conn)?;
        let start = std::time::Instant::now();
        let to = chrono::Utc::now().timestamp_millis() + 1;
        let value = report(
            conn,
            model,
            task,
            to - days * 86_400_000,
            to,
            36_500 * 86_400_000,
        )?;
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).insert(
            summary_key(conn, model, days),
            Summary {
                fingerprint,
                computed: start,
                took: start.elapsed(),
                value: value.clone(),
            },
        );
        Ok(value)
    }

    /// The dashboard's summary of `model` over the last `days` days, one
    /// window per version ([`report`]), kept between calls on the event log's
    /// monitoring connection (`conn`) and reused while current (see
    /// [`cached`]). Blocks while it is computed.
    pub fn summary(
        &self,
        conn: &Connection,
        model: &ResourceKey,
        task: Option<ModelTask>,
        days: i64,
    ) -> cairn_store::SqlResult<AggregateReport> {
        let key = summary_key(conn, model, days);
        if let Some((value, true, _)) = self.cached(&key, fingerprint(conn)?) {
            return Ok(value);
        }
        self.compute_summary(conn, model, task, days)
    }

    /// The summary as the dashboard's model page shows it, without ever making
    /// the page wait on a large store: a cheap summary is brought up to date
    /// at once; a costly one (or a first one over a large store) is recomputed
    /// on a background thread while the page shows the last one kept, or
    /// `None` when there is none yet. Blocking: call it off the async threads.
    pub fn page_summary(
        self: &Arc<Self>,
        events: &EventLog,
        model: &ResourceKey,
        task: Option<ModelTask>,
        days: i64,
    ) -> cairn_store::SqlResult<Option<AggregateReport>> {
        // Busy for more than a moment (a summary being computed over a large
        // store): show what is kept rather than wait.
        let waited = std::time::Instant::now();
        let conn = loop {
            if let Some(conn) = events.try_monitor() {
                break conn;
            }
            if waited.elapsed() > std::time::Duration::from_millis(20) {
                return Ok(self.kept_summary(events, model, days));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let fingerprint = fingerprint(&conn)?;
        let key = summary_key(&conn, model, days);
        let (kept, costly) = match self.cached(&key, fingerprint) {
            Some((value, true, _)) => return Ok(Some(value)),
            Some((value, false, took)) => (Some(value), took > COSTLY),
            None => (None, fingerprint.0 > LARGE_STORE),
        };
        if !costly {
            return self.compute_summary(&conn, model, task, days).map(Some);
        }
        drop(conn);
        self.refresh_in_background(events, model, task, days, key);
        Ok(kept)
    }

    /// The summary kept for `model`, however old.
    fn kept_summary(
        &self,
        events: &EventLog,
        model: &ResourceKey,
        days: i64,
    ) -> Option<AggregateReport> {
        let key = kept_key(events.db_path(), model, days);
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|s| s.value.clone())
    }

    /// Computes `model`'s page summary on a background thread when none is
    /// kept and the store is large, so that the first visit to its page finds
    /// it ready. Called when a model starts being served; returns at once.
    pub fn warm_page_summary(
        self: &Arc<Self>,
        events: &EventLog,
        model: &ResourceKey,
        task: Option<ModelTask>,
    ) {
        let events = events.clone();
        let model = model.clone();
        let this = self.clone();
        let _ = std::thread::Builder::new()
            .name("cairn-summary".into())
            .spawn(move || {
                let conn = events.monitor();
                let key = summary_key(&conn, &model, PAGE_DAYS);
                let large = fingerprint(&conn).is_ok_and(|f| f.0 > LARGE_STORE);
                let kept = this
                    .kept
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&key);
                drop(conn);
                if large && !kept {
                    this.refresh_in_background(&events, &model, task, PAGE_DAYS, key);
                }
            });
    }

    fn refresh_in_background(
        self: &Arc<Self>,
        events: &EventLog,
        model: &ResourceKey,
        task: Option<ModelTask>,
        days: i64,
        key: String,
    ) {
        if !self
            .refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let events = events.clone();
        let model = model.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn-summary".into())
            .spawn({
                let key = key.clone();
                let this = self.clone();
                move || {
                    if let Err(e) = this.compute_summary(&events.monitor(), &model, task, days) {
                        tracing::warn!("summarizing `{model}` for the dashboard failed: {e}");
                    }
                    this.refreshing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
            });
        if spawned.is_err() {
            self.refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}
