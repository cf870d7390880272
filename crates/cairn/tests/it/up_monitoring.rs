//! Model monitoring on `cairn up`, end to end: predictions on the
//! quickstart classifier, business metrics and delayed ground truth (JSON,
//! JSON lines, CSV) attached by inference UUID, and the aggregates computed
//! from them, checked against values computed by hand.

use cairn_test_support::{CLASSIFIER, CLF_MODEL as MODEL, LAB_PROJECT as PROJECT, SAMPLE_BATCH};

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};

const FEATURES: [&str; 4] = [
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "worst_concavity",
];

fn post_json(up: &Up, path: &str, body: &Value) -> (u16, Value) {
    post_typed(up, path, "application/json", &body.to_string())
}

fn post_typed(up: &Up, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let (status, text) = up.post_bytes(path, &[("content-type", content_type)], body.as_bytes());
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): HTTP {status} {text}"));
    (status, value)
}

fn close(v: &Value, expected: f64, what: &str) {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!((x - expected).abs() < 1e-12, "{what}: {x} != {expected}");
}

#[test]
fn metrics_feedback_and_aggregates() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", PROJECT)
        .write("specs/model.yaml", MODEL)
        .write(
            "models/classifier.onnx",
            std::fs::read(CLASSIFIER).expect("the quickstart model"),
        );
    let commit = repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    up.wait_for(std::time::Duration::from_secs(60), "model clf", || {
        let (status, text) = up.get_raw("/v2/models/clf/ready").ok()?;
        (status == 200 && text.contains("true")).then_some(())
    });
    let start = chrono::Utc::now();

    // Five single predictions (the sample batch's rows, predicted 0 1 0 0 0)
    // and the batch itself.
    let batch: Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE_BATCH).unwrap()).unwrap();
    let rows = batch["request"]["instances"].as_array().unwrap().clone();
    let mut singles = Vec::new();
    for (row, expected) in rows.iter().zip([0, 1, 0, 0, 0]) {
        let request: serde_json::Map<String, Value> = FEATURES
            .iter()
            .zip(row.as_array().unwrap())
            .map(|(f, v)| (f.to_string(), v.clone()))
            .collect();
        let (status, body) = post_json(&up, "/models/clf/predict", &json!({"request": request}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"]["label"], json!(expected), "{body}");
        singles.push(body["uuid"].as_str().unwrap().to_string());
    }
    let (status, body) = post_json(&up, "/models/clf/predict", &batch);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["label"], json!([0, 1, 0, 0, 0]));
    let batch_id = body["uuid"].as_str().unwrap().to_string();
    let unknown = uuid::Uuid::now_v7().to_string();

    // Business metrics: one per uuid, a batch (with an unknown uuid), one
    // for the model.
    let (status, body) = post_json(
        &up,
        "/models/clf/metrics",
        &json!({"uuid": singles[0], "metrics": {"revenue": 10, "segment": "a"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"recorded": 1, "unknownUuids": []}));
    let (status, body) = post_json(
        &up,
        "/models/clf/metrics",
        &json!([
            {"uuid": singles[1], "metrics": {"revenue": 20.5, "segment": "b"}},
            {"uuid": singles[2], "metrics": {"revenue": 4.5}},
            {"uuid": unknown, "metrics": {"revenue": 1000}},
        ]),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"recorded": 2, "unknownUuids": [unknown]}));
    let (status, body) = post_json(
        &up,
        "/models/clf/metrics",
        &json!({"metrics": {"budget": 300}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recorded"], 1);
    // Only unknown: 404; malformed: 400 naming the problem.
    let (status, body) = post_json(
        &up,
        "/models/clf/metrics",
        &json!({"uuid": unknown, "metrics": {"revenue": 1}}),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["unknownUuids"], json!([unknown]));
    let (status, body) = post_json(
        &up,
        "/models/clf/metrics",
        &json!([{"uuid": singles[0], "metrics": {"revenue": [1]}}]),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "item 0: `metrics.revenue`: expected a number or a string"
    );
    let (status, _) = post_json(&up, "/models/nope/metrics", &json!({"metrics": {"x": 1}}));
    assert_eq!(status, 404);

    // Feedback. JSON: singles 0 (actual 0) and 1 (actual 0, replaced below).
    let (status, body) = post_json(
        &up,
        "/models/clf/feedback",
        &json!([{"uuid": singles[0], "label": 0}, {"uuid": singles[1], "label": 0}]),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"matched": 2, "replaced": 0, "unknownUuids": []})
    );
    // JSON lines: single 2 (actual 1) and single 1 again (actual 1).
    let ndjson = format!(
        "{{\"uuid\": \"{}\", \"label\": 1}}\n{{\"uuid\": \"{}\", \"label\": 1}}\n",
        singles[2], singles[1]
    );
    let (status, body) = post_typed(&up, "/models/clf/feedback", "application/x-ndjson", &ndjson);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"matched": 2, "replaced": 1, "unknownUuids": []})
    );
    // CSV: single 3 (actual 0) and an unknown uuid.
    let csv = format!("uuid,label\n{},0\n{unknown},1\n", singles[3]);
    let (status, body) = post_typed(&up, "/models/clf/feedback", "text/csv", &csv);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"matched": 1, "replaced": 0, "unknownUuids": [unknown]})
    );
    // The batch: one label per row.
    let (status, body) = post_json(
        &up,
        "/models/clf/feedback",
        &json!({"uuid": batch_id, "label": [0, 0, 1, 0, 1]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], 1);
    // Only unknown: 404; malformed CSV: 400.
    let (status, body) = post_typed(
        &up,
        "/models/clf/feedback",
        "text/csv",
        &format!("uuid,label\n{unknown},1\n"),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = post_typed(&up, "/models/clf/feedback", "text/csv", "id,y\n1,2\n");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`uuid` and `label`"),
        "{body}"
    );

    // Aggregates over one window holding everything.
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let from =
        (start - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let agg = up.get(&format!(
        "/api/v1/models/clf/metrics/aggregate?from={from}&to={to}&window=36500d"
    ));
    assert_eq!(agg["task"], "classification", "{agg}");
    let windows = agg["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{agg}");
    let v1 = windows
        .iter()
        .find(|w| w["version"] == "1")
        .expect("version 1");
    let model_level = windows
        .iter()
        .find(|w| w["version"].is_null())
        .expect("model-level metrics");

    // Six inferences, five with feedback (single 4 has none).
    assert_eq!(v1["requests"], 6, "{v1}");
    assert_eq!(v1["errors"], 0);
    assert_eq!(v1["labeled"], 5);
    close(&v1["coverage"], 5.0 / 6.0, "coverage");
    // (predicted, actual): singles (0,0) (1,1) (0,1) (0,0); batch (0,0)
    // (1,0) (0,1) (0,0) (0,1). tp 1, fp 1, fn 3, tn 4.
    assert_eq!(v1["scored"], 9);
    assert_eq!(v1["unscorable"], 0);
    assert_eq!(v1["averaging"], "binary");
    close(&v1["accuracy"], 5.0 / 9.0, "accuracy");
    close(&v1["precision"], 1.0 / 2.0, "precision");
    close(&v1["recall"], 1.0 / 4.0, "recall");
    close(&v1["f1"], 2.0 * 0.5 * 0.25 / 0.75, "f1");
    // Business metrics: revenue 10, 20.5, 4.5 (not the unknown's 1000).
    let revenue = &v1["businessMetrics"]["revenue"];
    assert_eq!(revenue["count"], 3, "{v1}");
    close(&revenue["sum"], 35.0, "revenue sum");
    close(&revenue["mean"], 35.0 / 3.0, "revenue mean");
    close(&revenue["p50"], 10.0, "revenue p50");
    close(&revenue["p95"], 20.5, "revenue p95");
    assert_eq!(
        v1["businessMetrics"]["segment"],
        json!({"count": 2, "values": {"a": 1, "b": 1}})
    );
    assert_eq!(model_level["requests"], 0);
    let budget = &model_level["businessMetrics"]["budget"];
    assert_eq!(budget["count"], 1);
    close(&budget["sum"], 300.0, "budget sum");

    // Minute windows split the same data without changing totals.
    let agg = up.get(&format!(
        "/api/v1/models/clf/metrics/aggregate?from={from}&to={to}&window=minute"
    ));
    let requests: u64 = agg["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 6, "{agg}");
    assert_eq!(agg["windowSeconds"], 60);

    // Bad parameters.
    let (status, text) = up
        .get_raw("/api/v1/models/clf/metrics/aggregate?window=soon")
        .unwrap();
    assert_eq!(status, 400, "{text}");
    let (status, text) = up
        .get_raw("/api/v1/models/clf/metrics/aggregate?from=yesterday")
        .unwrap();
    assert_eq!(status, 400, "{text}");
    let (status, _) = up.get_raw("/api/v1/models/nope/metrics/aggregate").unwrap();
    assert_eq!(status, 404);
}
