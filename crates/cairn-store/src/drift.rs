//! Drift verdicts in the events database: one row per evaluation and one
//! per feature (a time series per feature).

use crate::events::project_column;
use cairn_spec::ResourceKey;
use rusqlite::{Connection, params};
use serde::Serialize;

/// One evaluation of a model's drift monitor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftVerdict {
    /// The model's project (none for verdicts stored before projects were
    /// recorded and not adopted since).
    pub project: Option<String>,
    /// The model.
    pub model: String,
    /// The drift-detector plugin.
    pub plugin: String,
    /// When the evaluation ran (ms since the epoch).
    pub time_ms: i64,
    /// The window scored: `from_ms <= time < to_ms`.
    pub from_ms: i64,
    /// End of the window.
    pub to_ms: i64,
    /// Rows (predicted instances) in the window.
    pub rows: u64,
    /// The overall score, when scored.
    pub score: Option<f64>,
    /// Whether the window drifted, when scored.
    pub drifted: Option<bool>,
    /// The spec's threshold.
    pub threshold: f64,
    /// Per-feature results.
    pub features: Vec<FeatureVerdict>,
    /// Why the window was not scored (no rows, a plugin error).
    pub error: Option<String>,
}

/// One feature's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureVerdict {
    /// The feature.
    pub feature: String,
    /// The detector's statistic.
    pub score: f64,
    /// Its p-value, if the test has one.
    pub p_value: Option<f64>,
    /// Whether the feature drifted.
    pub drifted: bool,
}

/// Schema of the drift tables (a migration of the events database; a later
/// one adds `drift_evaluations.project`).
pub const SCHEMA: &str = "CREATE TABLE drift_evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    plugin TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    score REAL NULL,
    drifted INTEGER NULL,
    threshold REAL NOT NULL,
    error TEXT NULL
);
CREATE INDEX drift_evaluations_model_time ON drift_evaluations (model, time_ms);
CREATE TABLE drift_features (
    evaluation INTEGER NOT NULL REFERENCES drift_evaluations (id),
    feature TEXT NOT NULL,
    score REAL NOT NULL,
    p_value REAL NULL,
    drifted INTEGER NOT NULL
);
CREATE INDEX drift_features_evaluation ON drift_features (evaluation);";

/// Stores a verdict.
pub fn record(conn: &mut Connection, v: &DriftVerdict) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO drift_evaluations (project, model, plugin, time_ms, from_ms, to_ms, rows, score, drifted, threshold, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            v.project.as_deref().unwrap_or(""),
            v.model,
            v.plugin,
            v.time_ms,
            v.from_ms,
            v.to_ms,
            v.rows as i64,
            v.score,
            v.drifted,
            v.threshold,
            v.error
        ],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO drift_features (evaluation, feature, score, p_value, drifted) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for f in &v.features {
            insert.execute(params![id, f.feature, f.score, f.p_value, f.drifted])?;
        }
    }
    tx.commit()
}

/// The verdicts of `model` with `from_ms <= time < to_ms`, oldest first, at
/// most `limit` (the newest ones).
pub fn series(
    conn: &Connection,
    model: &ResourceKey,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<DriftVerdict>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, plugin, time_ms, from_ms, to_ms, rows, score, drifted, threshold, error \
         FROM drift_evaluations \
         WHERE project = ?1 AND model = ?2 AND time_ms >= ?3 AND time_ms < ?4 \
         ORDER BY time_ms DESC, id DESC LIMIT ?5",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let project = model.project.as_ref().map(|p| p.to_string());
    let params = params![
        project_column(model),
        model.name.as_str(),
        from_ms,
        to_ms,
        limit
    ];
    let mut rows: Vec<(i64, DriftVerdict)> = stmt
        .query_map(params, |r| {
            Ok((
                r.get(0)?,
                DriftVerdict {
                    project: project.clone(),
                    model: model.name.to_string(),
                    plugin: r.get(1)?,
                    time_ms: r.get(2)?,
                    from_ms: r.get(3)?,
                    to_ms: r.get(4)?,
                    rows: r.get::<_, i64>(5)?.max(0) as u64,
                    score: r.get(6)?,
                    drifted: r.get(7)?,
                    threshold: r.get(8)?,
                    features: Vec::new(),
                    error: r.get(9)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut features = conn.prepare_cached(
        "SELECT feature, score, p_value, drifted FROM drift_features WHERE evaluation = ?1 ORDER BY rowid",
    )?;
    for (id, v) in &mut rows {
        v.features = features
            .query_map([*id], |r| {
                Ok(FeatureVerdict {
                    feature: r.get(0)?,
                    score: r.get(1)?,
                    p_value: r.get(2)?,
                    drifted: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
    }
    rows.reverse();
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_oldest_first() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::events::migrations().to_latest(&mut conn).unwrap();
        let key = |project: &str| crate::events::model_key(project, "m").unwrap();
        let verdict = |t: i64, drifted: bool| DriftVerdict {
            project: Some("lab".into()),
            model: "m".into(),
            plugin: "drift-psi".into(),
            time_ms: t,
            from_ms: t - 10,
            to_ms: t,
            rows: 5,
            score: Some(0.3),
            drifted: Some(drifted),
            threshold: 0.2,
            features: vec![FeatureVerdict {
                feature: "x".into(),
                score: 0.3,
                p_value: None,
                drifted,
            }],
            error: None,
        };
        record(&mut conn, &verdict(100, true)).unwrap();
        record(&mut conn, &verdict(200, false)).unwrap();
        let got = series(&conn, &key("lab"), 0, 1000, 10).unwrap();
        assert_eq!(got, vec![verdict(100, true), verdict(200, false)]);
        assert_eq!(
            series(&conn, &key("lab"), 0, 1000, 1).unwrap(),
            vec![verdict(200, false)]
        );
        assert!(
            series(&conn, &key("other"), 0, 1000, 10)
                .unwrap()
                .is_empty()
        );
    }
}
