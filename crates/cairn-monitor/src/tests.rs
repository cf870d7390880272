//! Tests of ingestion and aggregation.

use crate::aggregate::*;
use crate::ingest::*;
use crate::summary::current_scores;
use cairn_spec::ModelTask;
use cairn_store::events::{EventLog, InferenceEvent};
use cairn_store::monitoring::*;
use serde_json::{Value, json};

fn pred(version: &str, time_ms: i64, outputs: Value, label: Option<Value>) -> PredictionRow {
    PredictionRow {
        version: version.into(),
        time_ms,
        status: 200,
        outputs,
        label,
        count: 1,
    }
}

fn num(version: Option<&str>, time_ms: i64, name: &str, n: f64) -> MetricRow {
    MetricRow {
        version: version.map(str::to_string),
        time_ms,
        name: name.into(),
        value: MetricValue::Num(n),
    }
}

/// The windows as the API writes them.
fn as_json(windows: Vec<cairn_api::monitoring::Window>) -> Vec<Value> {
    windows
        .into_iter()
        .map(|w| serde_json::to_value(w).unwrap())
        .collect()
}

fn close(v: &Value, expected: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((x - expected).abs() < 1e-12, "{x} != {expected}");
}

#[test]
fn binary_classification_by_hand() {
    // predicted: 1 1 0 0 1 (argmax) ; actual: 1 0 0 1 1 ; one unlabeled;
    // one failed.
    let rows = vec![
        pred("1", 0, json!({"label": 1}), Some(json!(1))),
        pred("1", 10, json!({"label": 1}), Some(json!("1"))),
        pred("1", 20, json!({"label": 0}), Some(json!(0))),
        pred("1", 30, json!({"label": 0}), Some(json!(1))),
        pred(
            "1",
            40,
            json!({"probabilities": [0.2, 0.8]}),
            Some(json!(true)),
        ),
        pred("1", 50, json!({"label": 0}), None),
        PredictionRow {
            status: 500,
            ..pred("1", 60, Value::Null, None)
        },
    ];
    // Rows 0,4: tp; row 1: fp... careful: actual of row 1 is "1" → tp.
    // So pairs (p, a): (1,1) (1,1) (0,0) (0,1) (1,1): tp 3, fp 0, fn 1.
    let out = as_json(aggregate(ModelTask::Classification, &rows, &[], 3_600_000));
    assert_eq!(out.len(), 1);
    let w = &out[0];
    assert_eq!(w["requests"], 7);
    assert_eq!(w["errors"], 1);
    assert_eq!(w["labeled"], 5);
    close(&w["coverage"], 5.0 / 6.0);
    assert_eq!(w["scored"], 5);
    close(&w["accuracy"], 4.0 / 5.0);
    close(&w["precision"], 1.0);
    close(&w["recall"], 3.0 / 4.0);
    close(&w["f1"], 2.0 * 0.75 / 1.75);
    assert_eq!(w["averaging"], "binary");
    assert_eq!(w["start"], "1970-01-01T00:00:00.000Z");
    assert_eq!(w["version"], "1");
}

#[test]
fn batches_pair_row_by_row_and_multiclass_is_macro() {
    // Batch predicted [0, 1, 2], actual [0, 2, 2]; single predicted 1,
    // actual 1; a batch with a wrong-length label is unscorable.
    let rows = vec![
        pred("2", 0, json!({"label": [0, 1, 2]}), Some(json!([0, 2, 2]))),
        pred("2", 1, json!({"label": 1}), Some(json!(1))),
        pred("2", 2, json!({"label": [0, 1]}), Some(json!([0]))),
    ];
    let out = as_json(aggregate(ModelTask::Classification, &rows, &[], 60_000));
    let w = &out[0];
    assert_eq!(w["scored"], 4);
    assert_eq!(w["unscorable"], 1);
    close(&w["accuracy"], 3.0 / 4.0);
    // class 0: p 1, r 1; class 1: tp 1 fp 1 → p 1/2, r 1; class 2: tp 1,
    // fn 1 → p 1, r 1/2.
    close(&w["precision"], (1.0 + 0.5 + 1.0) / 3.0);
    close(&w["recall"], (1.0 + 1.0 + 0.5) / 3.0);
    let f1_half = 2.0 * 0.5 / 1.5;
    close(&w["f1"], (1.0 + f1_half + f1_half) / 3.0);
    assert_eq!(w["averaging"], "macro");
}

#[test]
fn regression_windows_versions_and_business_metrics() {
    let rows = vec![
        pred("1", 1_000, json!({"price": 10.0}), Some(json!(12))),
        pred(
            "1",
            2_000,
            json!({"price": [[3.0], [5.0]]}),
            Some(json!([4, 1])),
        ),
        pred("2", 2_000, json!(7.5), Some(json!(7.5))),
        pred("1", 61_000, json!({"price": 1.0}), None),
    ];
    let metrics = vec![
        num(Some("1"), 1_000, "revenue", 4.0),
        num(Some("1"), 2_000, "revenue", 1.0),
        num(Some("1"), 2_000, "revenue", 10.0),
        num(Some("1"), 2_000, "revenue", 2.0),
        MetricRow {
            version: Some("1".into()),
            time_ms: 3_000,
            name: "segment".into(),
            value: MetricValue::Text("b".into()),
        },
        MetricRow {
            version: Some("1".into()),
            time_ms: 3_000,
            name: "segment".into(),
            value: MetricValue::Text("a".into()),
        },
        MetricRow {
            version: Some("1".into()),
            time_ms: 3_000,
            name: "segment".into(),
            value: MetricValue::Text("b".into()),
        },
        num(None, 5_000, "budget", 100.0),
    ];
    let out = as_json(aggregate(ModelTask::Regression, &rows, &metrics, 60_000));
    let keys: Vec<(Value, Value)> = out
        .iter()
        .map(|w| (w["start"].clone(), w["version"].clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (json!("1970-01-01T00:00:00.000Z"), Value::Null),
            (json!("1970-01-01T00:00:00.000Z"), json!("1")),
            (json!("1970-01-01T00:00:00.000Z"), json!("2")),
            (json!("1970-01-01T00:01:00.000Z"), json!("1")),
        ]
    );
    let model_level = &out[0];
    assert_eq!(model_level["requests"], 0);
    assert_eq!(model_level["coverage"], Value::Null);
    close(&model_level["businessMetrics"]["budget"]["sum"], 100.0);
    let v1 = &out[1];
    // errors: |10-12| = 2, |3-4| = 1, |5-1| = 4.
    assert_eq!(v1["scored"], 3);
    close(&v1["mae"], 7.0 / 3.0);
    close(&v1["rmse"], (21.0f64 / 3.0).sqrt());
    let revenue = &v1["businessMetrics"]["revenue"];
    assert_eq!(revenue["count"], 4);
    close(&revenue["sum"], 17.0);
    close(&revenue["mean"], 4.25);
    // sorted 1 2 4 10: p50 rank 2 → 2, p95 rank 4 → 10.
    close(&revenue["p50"], 2.0);
    close(&revenue["p95"], 10.0);
    assert_eq!(
        v1["businessMetrics"]["segment"],
        json!({"count": 3, "values": {"a": 1, "b": 2}})
    );
    close(&out[2]["mae"], 0.0);
    assert_eq!(out[3]["labeled"], 0);
    assert_eq!(out[3]["mae"], Value::Null);
}

#[test]
fn tasks_are_inferred() {
    assert_eq!(
        infer_task(None, &[pred("1", 0, json!({"label": 1}), None)]),
        ModelTask::Classification
    );
    assert_eq!(
        infer_task(None, &[pred("1", 0, json!({"y": 1.5}), None)]),
        ModelTask::Regression
    );
    assert_eq!(
        infer_task(
            Some(ModelTask::Regression),
            &[pred("1", 0, json!({"label": 1}), None)]
        ),
        ModelTask::Regression
    );
}

#[test]
fn parses_metrics() {
    let u = uuid::Uuid::now_v7();
    let items =
        parse_metrics(&json!({"uuid": u.to_string(), "metrics": {"r": 1.5, "s": "b"}})).unwrap();
    assert_eq!(
        items,
        vec![MetricItem {
            uuid: Some(u),
            metrics: vec![
                ("r".into(), MetricValue::Num(1.5)),
                ("s".into(), MetricValue::Text("b".into()))
            ]
        }]
    );
    assert_eq!(
        parse_metrics(&json!([{"metrics": {"x": 1}}])).unwrap()[0].uuid,
        None
    );
    let e = parse_metrics(&json!([{"metrics": {"x": 1}}, {"uuid": "nope", "metrics": {"x": 1}}]))
        .unwrap_err();
    assert_eq!(e, "item 1: `uuid`: `nope` is not a UUID");
    let e = parse_metrics(&json!({"metrics": {"x": [1]}})).unwrap_err();
    assert_eq!(e, "`metrics.x`: expected a number or a string");
    assert!(parse_metrics(&json!({"uuid": u.to_string()})).is_err());
    assert!(parse_metrics(&json!({"metrics": {}})).is_err());
    assert!(parse_metrics(&json!([])).is_err());
}

#[test]
fn parses_feedback_in_three_formats() {
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let expected = vec![
        FeedbackItem {
            uuid: a,
            label: json!(1),
        },
        FeedbackItem {
            uuid: b,
            label: json!("cat, dog"),
        },
    ];
    let body =
        json!([{"uuid": a.to_string(), "label": 1}, {"uuid": b.to_string(), "label": "cat, dog"}]);
    assert_eq!(
        parse_feedback(Some("application/json"), body.to_string().as_bytes()).unwrap(),
        expected
    );
    let ndjson = format!(
        "{{\"uuid\": \"{a}\", \"label\": 1}}\n\n{{\"uuid\": \"{b}\", \"label\": \"cat, dog\"}}\n"
    );
    assert_eq!(
        parse_feedback(Some("application/x-ndjson"), ndjson.as_bytes()).unwrap(),
        expected
    );
    let csv = format!("label,uuid\r\n1,{a}\r\n\"cat, dog\",{b}\r\n");
    assert_eq!(
        parse_feedback(Some("text/csv; charset=utf-8"), csv.as_bytes()).unwrap(),
        expected
    );
    assert_eq!(
        parse_feedback(
            Some("text/csv"),
            format!("uuid,label\n{a},0.5\n").as_bytes()
        )
        .unwrap()[0]
            .label,
        json!(0.5)
    );
    let e = parse_feedback(Some("text/csv"), b"id,label\nx,1\n").unwrap_err();
    assert!(e.contains("must name `uuid` and `label`"), "{e}");
    let e = parse_feedback(Some("text/csv"), format!("uuid,label\n{a},\n").as_bytes()).unwrap_err();
    assert_eq!(e, "CSV line 2: `label` is missing");
    let e = parse_feedback(
        Some("application/x-ndjson"),
        b"{\"uuid\": \"x\", \"label\": 1}",
    )
    .unwrap_err();
    assert_eq!(e, "line 1: `uuid`: `x` is not a UUID");
    let e = parse_feedback(None, format!("{{\"uuid\": \"{a}\"}}").as_bytes()).unwrap_err();
    assert_eq!(e, "`label` is missing");
}

#[test]
fn windows_parse() {
    assert_eq!(parse_window("hour").unwrap(), 3_600_000);
    assert_eq!(parse_window("15m").unwrap(), 900_000);
    assert_eq!(parse_window("day").unwrap(), 86_400_000);
    assert!(parse_window("soon").is_err());
    assert!(parse_window("10ms").is_err());
}

#[tokio::test]
async fn storage_records_replaces_and_reports_unknowns() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(&dir.path().join("events.db"), Default::default()).unwrap();
    // `m` of project `lab`, and a model of the same name in another project.
    let key = |project: &str| cairn_spec::ResourceKey {
        kind: cairn_spec::Kind::Model,
        project: Some(project.parse().unwrap()),
        name: "m".parse().unwrap(),
    };
    let m = &key("lab");
    let event = |model: &cairn_spec::ResourceKey, t: i64, label: i64| InferenceEvent {
        uuid: uuid::Uuid::now_v7(),
        model: model.clone(),
        version: "3".into(),
        commit: "c".into(),
        time: chrono::DateTime::from_timestamp_millis(t).unwrap(),
        latency_us: 1,
        status: 200,
        inputs: json!({}),
        outputs: json!({"label": label}),
    };
    let (e1, e2, other) = (
        event(m, 1_000, 1),
        event(m, 2_000, 0),
        event(&key("other"), 1_500, 1),
    );
    for e in [&e1, &e2, &other] {
        log.append_durable(e.clone()).await.unwrap();
    }
    let mut conn = log.monitor();
    let fb = |uuid: uuid::Uuid, label: Value| FeedbackItem { uuid, label };
    let r = record_feedback(
        &mut conn,
        m,
        &[fb(e1.uuid, json!(0)), fb(other.uuid, json!(1))],
        9,
    )
    .unwrap();
    assert_eq!(
        (r.recorded, r.replaced, r.unknown.clone()),
        (1, 0, vec![other.uuid])
    );
    let r = record_feedback(&mut conn, m, &[fb(e1.uuid, json!(1))], 10).unwrap();
    assert_eq!((r.recorded, r.replaced), (1, 1));
    let r = record_metrics(
        &mut conn,
        m,
        &[
            MetricItem {
                uuid: Some(e2.uuid),
                metrics: vec![("revenue".into(), MetricValue::Num(3.0))],
            },
            MetricItem {
                uuid: None,
                metrics: vec![("seg".into(), MetricValue::Text("a".into()))],
            },
            MetricItem {
                uuid: Some(other.uuid),
                metrics: vec![("revenue".into(), MetricValue::Num(5.0))],
            },
        ],
        5_000,
    )
    .unwrap();
    assert_eq!((r.recorded, r.unknown), (2, vec![other.uuid]));
    let (preds, metrics) = fetch(&conn, m, 0, 10_000).unwrap();
    assert_eq!(preds.len(), 2);
    let p1 = preds.iter().find(|p| p.time_ms == 1_000).unwrap();
    assert_eq!(p1.label, Some(json!(1)));
    assert_eq!(
        preds.iter().find(|p| p.time_ms == 2_000).unwrap().label,
        None
    );
    let mut metrics = metrics;
    metrics.sort_by_key(|m| m.time_ms);
    assert_eq!(
        metrics,
        vec![
            num(Some("3"), 2_000, "revenue", 3.0),
            MetricRow {
                version: None,
                time_ms: 5_000,
                name: "seg".into(),
                value: MetricValue::Text("a".into())
            }
        ]
    );
    assert_eq!(fetch(&conn, m, 0, 1_500).unwrap().0.len(), 1);
    // Grouped while read, the rows aggregate as they do one by one.
    for window in [1_000, 3_600_000] {
        let (preds, metrics) = fetch(&conn, m, 0, 10_000).unwrap();
        let (grouped, grouped_metrics) = fetch_grouped(&conn, m, None, 0, 10_000, window).unwrap();
        for task in [ModelTask::Classification, ModelTask::Regression] {
            assert_eq!(
                aggregate(task, &grouped, &grouped_metrics, window),
                aggregate(task, &preds, &metrics, window)
            );
        }
    }
    // The gauges' scores: e1 predicted 1, labeled 1; e2 unlabeled.
    let scores = current_scores(&conn, m, None, 0, 10_000).unwrap();
    assert_eq!(
        scores,
        vec![cairn_gateway::metrics::ModelScores {
            project: "lab".into(),
            model: "m".into(),
            version: "3".into(),
            accuracy: Some(1.0),
            coverage: Some(0.5),
            mae: None,
        }]
    );
    let scores = current_scores(&conn, m, None, 1_500, 10_000).unwrap();
    assert_eq!((scores[0].accuracy, scores[0].coverage), (None, Some(0.0)));
}

#[test]
fn windows_name_the_scores_of_their_task_null_until_scored() {
    let rows = vec![pred("1", 0, json!({"label": 1}), None)];
    let c = &as_json(aggregate(ModelTask::Classification, &rows, &[], 60_000))[0];
    let keys = c.as_object().unwrap();
    for k in ["accuracy", "precision", "recall", "f1"] {
        assert_eq!(keys.get(k), Some(&Value::Null), "{k}: {c}");
    }
    assert!(
        !keys.contains_key("averaging") && !keys.contains_key("mae"),
        "{c}"
    );
    let r = &as_json(aggregate(ModelTask::Regression, &rows, &[], 60_000))[0];
    let keys = r.as_object().unwrap();
    assert_eq!(keys.get("mae"), Some(&Value::Null), "{r}");
    assert!(!keys.contains_key("accuracy"), "{r}");
    // Read back, an absent score and a `null` one stay apart.
    let back: cairn_api::monitoring::Window = serde_json::from_value(c.clone()).unwrap();
    assert_eq!((back.accuracy, back.mae), (Some(None), None));
    assert_eq!(serde_json::to_value(&back).unwrap(), *c);
}
