//! Plugins on `cairn up`, end to end: a `runtime: wasm` model served by the
//! gateway, its business-metric plugin run off the request path, drift
//! evaluated over its logged inputs; hostile plugins stopped within their
//! limits while another model keeps answering; plugin failures shown in
//! `GET /api/v1/status` against the spec that uses the plugin, naming the
//! plugin spec's file.

use cairn_test_support::LAB_PROJECT;
use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};
use sha2::Digest;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn dist(name: &str) -> PathBuf {
    cairn_test_support::plugin_dist(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(cairn_test_support::fixture("drift").join(name)).unwrap()
}

/// A spec document of `kind`; `fields` are its `spec` lines, unindented.
fn doc(kind: &str, name: &str, fields: &str) -> String {
    let mut out = format!(
        "apiVersion: cairn/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  project: lab\nspec:\n"
    );
    for line in fields.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("---\n");
    out
}

/// The hostile test plugins (committed at `plugins/hostile-model.wasm` and
/// `plugins/hostile-drift.wasm`) as Plugin `name` of `world` in `mode` with
/// `limits`.
fn hostile(name: &str, world: &str, mode: &str, limits: &str) -> String {
    let file = hostile_file(world);
    doc(
        "Plugin",
        name,
        &format!(
            "path: plugins/{file}.wasm\nsha256: {}\nworld: {world}\nlimits: {limits}\nconfig: {{mode: {mode}}}",
            sha(file)
        ),
    )
}

fn hostile_file(world: &str) -> &'static str {
    if world == "model" {
        "hostile-model"
    } else {
        "hostile-drift"
    }
}

fn sha(file: &str) -> String {
    hex::encode(sha2::Sha256::digest(
        std::fs::read(dist(&format!("test/{file}"))).unwrap(),
    ))
}

/// A wasm model of the lab project served by `plugin`.
fn wasm_model(name: &str, plugin: &str, extra: &str) -> String {
    doc(
        "Model",
        name,
        &format!(
            "runtime: wasm\nplugin: {plugin}\nartifact: models/linear.json\nsignature:\n  inputs:\n    - {{name: age, type: float}}\n    - {{name: income, type: float}}\n  outputs:\n    - {{name: prediction, type: float}}\n{extra}"
        ),
    )
}

/// The linear model's artifact: score = 0.5·age + 0.001·income − 1.
const LINEAR: &str = r#"{"kind": "linear", "coef": [[0.5, 0.001]], "intercept": [-1.0]}"#;

struct Env {
    _repo: TestRepo,
    _data: tempfile::TempDir,
    up: Up,
}

fn start(files: &[(&str, String)]) -> Env {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("models/linear.json", LINEAR)
        .write("data/reference.csv", fixture("reference.csv"))
        .write(
            "plugins/hostile-model.wasm",
            std::fs::read(dist("test/hostile-model")).unwrap(),
        )
        .write(
            "plugins/hostile-drift.wasm",
            std::fs::read(dist("test/hostile-drift")).unwrap(),
        );
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("data"), &[], &[]);
    Env {
        _repo: repo,
        _data: data,
        up,
    }
}

fn wait_phase(up: &Up, kind: &str, name: &str, phase: &str) -> Value {
    up.wait_for(
        Duration::from_secs(60),
        &format!("{kind} {name} {phase}"),
        || up.resource(kind, name).filter(|r| r["phase"] == phase),
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn predict(up: &Up, model: &str, request: Value) -> (u16, Value) {
    up.post(
        &format!("/models/{model}/predict"),
        &json!({ "request": request }),
    )
}

#[test]
fn a_wasm_model_serves_records_metrics_and_drift() {
    let plugins = [
        doc("Plugin", "linear", "builtin: linear-model\nworld: model"),
        doc(
            "Plugin",
            "psi",
            "builtin: drift-psi\nworld: drift-detector\nconfig: {bins: 10}",
        ),
        doc(
            "Plugin",
            "value",
            "builtin: prediction-value\nworld: business-metric",
        ),
    ]
    .concat();
    let model = wasm_model(
        "scorer",
        "linear",
        "replicas: 2\nmonitoring:\n  metrics: [value]\n  drift: {plugin: psi, reference: data/reference.csv, window: 1h, threshold: 0.2}",
    );
    let env = start(&[("specs/plugins.yaml", plugins), ("specs/model.yaml", model)]);
    let up = &env.up;
    let status = wait_phase(up, "Model", "scorer", "Ready");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("plugin instance"),
        "{status}"
    );

    // A prediction through the gateway.
    let (code, body) = predict(up, "scorer", json!({"age": 40.0, "income": 50000.0}));
    assert_eq!(code, 200, "{body}");
    let score = body["response"]["prediction"]
        .as_f64()
        .expect("a prediction");
    assert!((score - (20.0 + 50.0 - 1.0)).abs() < 1e-3, "{body}");
    let uuid = body["uuid"].as_str().unwrap().to_string();

    // A bad request is a 400 with a message, and the model keeps serving.
    let (code, body) = predict(up, "scorer", json!({"age": "old"}));
    assert_eq!(code, 400, "{body}");

    // The window: the fixture's current rows, as batches.
    let window = fixture("window.csv");
    let rows: Vec<Vec<f64>> = window
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(2).map(|x| x.parse().unwrap()).collect())
        .collect();
    for chunk in rows.chunks(50) {
        let (code, body) = predict(up, "scorer", json!({"instances": chunk}));
        assert_eq!(code, 200, "{body}");
    }

    // Business metrics by the plugin, off the request path: `rows` = 1 for
    // each successful prediction (the plugin counts a batch without class
    // outputs as one), under the model's version.
    let predictions = 1.0 + rows.chunks(50).count() as f64;
    let total = up.wait_for(Duration::from_secs(20), "business metrics", || {
        let agg = up.get("/api/v1/models/scorer/metrics/aggregate?window=day");
        let sum: f64 = agg["windows"]
            .as_array()?
            .iter()
            .filter_map(|w| w["businessMetrics"]["rows"]["sum"].as_f64())
            .sum();
        (sum >= predictions).then_some(sum)
    });
    assert_eq!(total, predictions);
    // The queue's counters at /metrics: every logged prediction (the 400
    // included) processed, none dropped, no plugin failure.
    let text = up.get_text("/metrics").unwrap();
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        counter("cairn_business_metric_events_processed_total"),
        predictions + 1.0
    );
    assert_eq!(counter("cairn_business_metric_events_dropped_total"), 0.0);
    assert_eq!(counter("cairn_business_metric_plugin_failures_total"), 0.0);
    // The first prediction's event, like any model's.
    let event = up.get(&format!("/api/v1/inferences/{uuid}"));
    assert_eq!(event["model"], "scorer");
    assert_eq!(event["inputs"], json!({"age": 40.0, "income": 50000.0}));

    // Drift on demand: the verdict, stored and served as a series.
    let (code, verdict) = up.post("/api/v1/models/scorer/drift/evaluate", &json!({}));
    assert_eq!(code, 200, "{verdict}");
    assert_eq!(verdict["error"], Value::Null, "{verdict}");
    assert_eq!(verdict["rows"], 1 + rows.len() as u64, "{verdict}");
    let features: Vec<&str> = verdict["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["age", "income"]);
    assert_eq!(verdict["drifted"], true, "{verdict}");
    assert_eq!(
        (&verdict["project"], &verdict["model"]),
        (&json!("lab"), &json!("scorer"))
    );
    let series = up.get("/api/v1/models/scorer/drift");
    assert_eq!(series["verdicts"].as_array().unwrap().len(), 1, "{series}");
    // The same series in the model's project.
    let scoped = up.get("/api/v1/projects/lab/models/scorer/drift");
    assert_eq!(scoped["verdicts"], series["verdicts"], "{scoped}");
    let (code, _) = up
        .get_raw("/api/v1/projects/other/models/scorer/drift")
        .unwrap();
    assert_eq!(code, 404);
    assert_eq!(series["plugin"], "psi");
    // The dashboard's model page has the drift chart.
    let page = up.get_text("/models/scorer").unwrap();
    assert!(page.contains("chart-drift"), "no drift chart");

    // Bad requests to the drift API.
    let (code, _) = up
        .get_raw("/api/v1/models/scorer/drift?from=later")
        .unwrap();
    assert_eq!(code, 400);
    let (code, body) = up.post("/api/v1/models/nope/drift/evaluate", &json!({}));
    assert_eq!(code, 404, "{body}");
}

#[test]
fn hostile_plugins_are_stopped_while_another_model_serves() {
    let plugins = [
        doc("Plugin", "linear", "builtin: linear-model\nworld: model"),
        hostile("spin", "model", "loop", "{timeout: 200ms}"),
        hostile("bomb", "model", "memory", "{memory: 32Mi, timeout: 5s}"),
        hostile("crash", "model", "trap", "{}"),
        hostile(
            "flood",
            "model",
            "huge-output",
            "{memory: 64Mi, timeout: 5s}",
        ),
    ]
    .concat();
    let models = [
        wasm_model("good", "linear", "replicas: 2"),
        wasm_model("spin", "spin", ""),
        wasm_model("bomb", "bomb", ""),
        wasm_model("crash", "crash", ""),
        wasm_model("flood", "flood", ""),
    ]
    .concat();
    let env = start(&[
        ("specs/plugins.yaml", plugins),
        ("specs/models.yaml", models),
    ]);
    let up = &env.up;
    for m in ["good", "spin", "bomb", "crash", "flood"] {
        wait_phase(up, "Model", m, "Ready");
    }

    // A client predicting from `good` all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = up.url("/models/good/predict");
        std::thread::spawn(move || {
            let agent = agent();
            while !stop.load(Ordering::Relaxed) {
                let r = agent
                    .post(&url)
                    .send_json(json!({"request": {"age": 30.0, "income": 1000.0}}));
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    let cases = [
        ("spin", "timed out", Duration::from_millis(1500)),
        ("bomb", "memory limit", Duration::from_secs(5)),
        ("crash", "trapped", Duration::from_secs(2)),
        ("flood", "", Duration::from_secs(5)),
    ];
    for round in 0..2 {
        for (model, needle, bound) in cases {
            let started = Instant::now();
            let (code, body) = predict(up, model, json!({"age": 1.0, "income": 2.0}));
            let took = started.elapsed();
            assert_eq!(code, 500, "{model} round {round}: {body}");
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(needle), "{model}: {message}");
            assert!(took < bound, "{model} took {took:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 10, "only {ok} predictions answered");
    assert_eq!(failed, 0, "{failed} predictions of the good model failed");

    // Each failure is in the model's status, naming the plugin's file.
    let status = up.get("/api/v1/status");
    for (model, needle, _) in cases {
        let r = status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "Model" && r["name"] == model)
            .unwrap();
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("plugin `{model}` (specs/plugins.yaml)"))
                && message.contains(needle),
            "{model}: {message}"
        );
        assert_eq!(r["phase"], "Ready", "{r}");
    }
    // The controller and the gateway are still up.
    assert_eq!(up.get_text("/healthz").unwrap(), "ok");
}

#[test]
fn plugin_errors_show_in_status_with_the_spec_file() {
    let plugins = [
        doc("Plugin", "linear", "builtin: linear-model\nworld: model"),
        hostile("broken-drift", "drift-detector", "trap", "{}"),
    ]
    .concat();
    let wrong = doc(
        "Plugin",
        "tampered",
        &format!(
            "path: plugins/hostile-model.wasm\nsha256: {}\nworld: model",
            "ab".repeat(32)
        ),
    );
    let models = [
        wasm_model(
            "watched",
            "linear",
            "monitoring:\n  drift: {plugin: broken-drift, reference: data/reference.csv, window: 1h, threshold: 0.2}",
        ),
        wasm_model("untrusted", "tampered", ""),
    ]
    .concat();
    let env = start(&[
        ("specs/plugins.yaml", plugins),
        ("specs/tampered.yaml", wrong),
        ("specs/models.yaml", models),
    ]);
    let up = &env.up;

    // The wrong SHA-256: the plugin is refused, and the model using it says
    // why and where.
    let plugin = wait_phase(up, "Plugin", "tampered", "Invalid");
    assert!(
        plugin["message"].as_str().unwrap().contains("sha256"),
        "{plugin}"
    );
    let model = wait_phase(up, "Model", "untrusted", "Failed");
    let message = model["message"].as_str().unwrap();
    assert!(
        message.contains("plugin `tampered`") && message.contains("specs/tampered.yaml"),
        "{message}"
    );

    // A drift plugin that traps: the verdict carries the error, and the
    // model's status names the plugin's file; the model still serves.
    wait_phase(up, "Model", "watched", "Ready");
    let (code, body) = predict(up, "watched", json!({"age": 1.0, "income": 2.0}));
    assert_eq!(code, 200, "{body}");
    let (code, verdict) = up.post("/api/v1/models/watched/drift/evaluate", &json!({}));
    assert_eq!(code, 200, "{verdict}");
    let error = verdict["error"].as_str().expect("an error");
    assert!(
        error.contains("plugin `broken-drift` (specs/plugins.yaml)"),
        "{error}"
    );
    assert!(error.contains("trapped"), "{error}");
    let status = up.resource("Model", "watched").unwrap();
    assert_eq!(status["phase"], "Ready", "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("plugin `broken-drift` (specs/plugins.yaml)"),
        "{message}"
    );
    let (code, _) = predict(up, "watched", json!({"age": 1.0, "income": 2.0}));
    assert_eq!(code, 200);
}

#[test]
fn drift_is_evaluated_every_window() {
    let plugins = [
        doc("Plugin", "linear", "builtin: linear-model\nworld: model"),
        doc("Plugin", "ks", "builtin: drift-ks\nworld: drift-detector"),
    ]
    .concat();
    let model = wasm_model(
        "scheduled",
        "linear",
        "monitoring:\n  drift: {plugin: ks, reference: data/reference.csv, features: [age], window: 1s, threshold: 0.2}",
    );
    let env = start(&[("specs/plugins.yaml", plugins), ("specs/model.yaml", model)]);
    let up = &env.up;
    wait_phase(up, "Model", "scheduled", "Ready");
    let window = fixture("window.csv");
    let rows: Vec<Vec<f64>> = window
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(2).map(|x| x.parse().unwrap()).collect())
        .collect();
    // Keep predicting while the monitor runs, so that its windows have rows.
    let verdicts = up.wait_for(Duration::from_secs(30), "two scored windows", || {
        let (code, _) = predict(up, "scheduled", json!({"instances": rows}));
        assert_eq!(code, 200);
        let series = up.get("/api/v1/models/scheduled/drift");
        let scored: Vec<Value> = series["verdicts"]
            .as_array()?
            .iter()
            .filter(|v| v["score"].is_number())
            .cloned()
            .collect();
        (scored.len() >= 2).then_some(scored)
    });
    for v in &verdicts {
        assert_eq!(v["plugin"], "ks");
        assert_eq!(v["features"][0]["feature"], "age");
        // The KS statistic of the fixture's window against its reference.
        let d = v["features"][0]["score"].as_f64().unwrap();
        assert!((d - 0.3333333333333333).abs() < 1e-9, "{v}");
        assert!(v["features"][0]["pValue"].as_f64().unwrap() < 1e-6, "{v}");
        assert_eq!(v["drifted"], true);
    }
}
