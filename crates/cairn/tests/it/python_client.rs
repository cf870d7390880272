//! The Python client (`clients/python/cairn_client.py`) against a real
//! `cairn up`: predictions, business metrics, delayed ground truth and
//! aggregates from a script (models named bare, `PROJECT/NAME` or by a
//! client of the project), `CAIRN_SERVER` in a job run using the module's
//! functions, the Prometheus gauges of model scores, and `cairn metrics`.

use cairn_test_support::{CLASSIFIER, SAMPLE_BATCH};

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

const SPECS: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: clf
spec:
  runtime: onnx
  artifact: models/classifier.onnx
  task: classification
  signature:
    inputs:
      - {name: mean_radius, type: float}
      - {name: mean_texture, type: float}
      - {name: mean_smoothness, type: float}
      - {name: worst_concavity, type: float}
    outputs:
      - {name: label, type: int}
      - {name: probabilities, type: float, shape: [2]}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: report
spec:
  command: [python3, job.py]
  trigger: {manual: true}
";

/// A job using the module-level functions, so `$CAIRN_SERVER`.
const JOB: &str = r#"import json, os
import cairn_client
print("CAIRN_SERVER=" + os.environ["CAIRN_SERVER"])
print(json.dumps(cairn_client.track_metric("clf", None, "budget", 300)))
"#;

/// The script: five predictions (predicted 0 1 0 0 0), metrics on three,
/// labels 0 0 0 on the first three (one replaced), the aggregates.
const SCRIPT: &str = r#"import datetime, json, sys, uuid
import cairn_client
from cairn_client import CairnError, Client

server, batch_path = sys.argv[1], sys.argv[2]
with open(batch_path) as f:
    rows = json.load(f)["request"]["instances"]
features = ["mean_radius", "mean_texture", "mean_smoothness", "worst_concavity"]
c = Client(url=server)
answers = [c.predict("clf", dict(zip(features, row))) for row in rows]
uuids = [a["uuid"] for a in answers]
unknown = str(uuid.uuid4())
out = {"labels": [a["response"]["label"] for a in answers]}
out["metric"] = c.track_metric("clf", uuids[0], "revenue", 10)
out["metrics"] = c.track_metrics("clf", uuid.UUID(uuids[1]), {"revenue": 20, "segment": "b"})
# Module level: $CAIRN_SERVER.
out["module_metric"] = cairn_client.track_metric("clf", uuids[2], "revenue", 15)
out["unknown_metric"] = c.track_metric("clf", unknown, "revenue", 1000)
out["feedback"] = c.track_delayed_metrics(
    "clf",
    [{"uuid": uuids[0], "label": 0}, {"uuid": uuids[1], "label": 1}, {"uuid": unknown, "label": 1}],
)
out["feedback_again"] = cairn_client.track_delayed_metrics("clf", {uuids[1]: 0, uuids[2]: 0})
try:
    c.predict("nope", {})
    out["missing_model"] = None
except CairnError as e:
    out["missing_model"] = e.status
try:
    Client(url="http://127.0.0.1:1").read_metrics("clf")
    out["unreachable"] = None
except CairnError as e:
    out["unreachable"] = e.status
now = datetime.datetime.now(datetime.timezone.utc)
out["aggregate"] = c.read_metrics(
    "clf", start=now - datetime.timedelta(hours=1), end=now + datetime.timedelta(hours=1), window="36500d"
)
out["default"] = cairn_client.read_metrics("clf")
# The model named with its project, or by a client of the project.
out["qualified_feedback"] = c.track_delayed_metrics("lab/clf", {uuids[2]: 0})
out["project_report"] = Client(url=server, project="lab").read_metrics("clf")["project"]
try:
    Client(url=server, project="nope").read_metrics("clf")
    out["missing_project"] = None
except CairnError as e:
    out["missing_project"] = e.status
print(json.dumps(out))
"#;

fn close(v: &Value, expected: f64, what: &str) {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!((x - expected).abs() < 1e-12, "{what}: {x} != {expected}");
}

/// The value of a sample of the Prometheus text, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn python_available() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn python_client_end_to_end() {
    if !python_available() {
        eprintln!("note: python3 is not available; skipping the Python client test");
        return;
    }
    let client_dir = cairn_test_support::workspace_root()
        .join("clients/python")
        .canonicalize()
        .expect("clients/python");
    let repo = TestRepo::new();
    repo.write("specs/all.yaml", SPECS)
        .write("job.py", JOB)
        .write(
            "cairn_client.py",
            std::fs::read(client_dir.join("cairn_client.py")).unwrap(),
        )
        .write(
            "models/classifier.onnx",
            std::fs::read(CLASSIFIER).expect("the quickstart model"),
        );
    let commit = repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(
        repo.path(),
        &data.path().join("state"),
        &[],
        &[("CAIRN_MONITORING_INTERVAL", "1s")],
    );
    up.wait_synced(&commit);
    up.wait_for(Duration::from_secs(60), "model clf", || {
        let (status, text) = up.get_raw("/v2/models/clf/ready").ok()?;
        (status == 200 && text.contains("true")).then_some(())
    });
    let server = up.url("");

    // The script, with the module from clients/python.
    let mut script = tempfile::NamedTempFile::with_suffix(".py").unwrap();
    script.write_all(SCRIPT.as_bytes()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(script.path())
        .arg(&server)
        .arg(SAMPLE_BATCH)
        .env("PYTHONPATH", &client_dir)
        .env("CAIRN_SERVER", &server)
        .env("CAIRN_TOKEN", up.token.as_deref().unwrap_or_default())
        .env_remove("CAIRN_KEY")
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the script failed:\n{stdout}{}\n--- cairn up log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        up.logs()
    );
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the script's output is not JSON ({e}): {stdout}"));

    assert_eq!(v["labels"], json!([0, 1, 0, 0, 0]), "{v}");
    assert_eq!(v["metric"], json!({"recorded": 1, "unknownUuids": []}));
    assert_eq!(v["metrics"], json!({"recorded": 1, "unknownUuids": []}));
    assert_eq!(
        v["module_metric"],
        json!({"recorded": 1, "unknownUuids": []})
    );
    assert_eq!(v["unknown_metric"]["recorded"], 0, "{v}");
    assert_eq!(
        v["unknown_metric"]["unknownUuids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(v["feedback"]["matched"], 2, "{v}");
    assert_eq!(v["feedback"]["replaced"], 0);
    assert_eq!(
        v["feedback"]["unknownUuids"],
        v["unknown_metric"]["unknownUuids"]
    );
    assert_eq!(
        v["feedback_again"],
        json!({"matched": 2, "replaced": 1, "unknownUuids": []})
    );
    assert_eq!(v["missing_model"], 404);
    assert_eq!(
        v["qualified_feedback"],
        json!({"matched": 1, "replaced": 1, "unknownUuids": []})
    );
    assert_eq!(v["project_report"], "lab", "{v}");
    assert_eq!(v["missing_project"], 404, "{v}");
    assert_eq!(v["unreachable"], 0);

    // Five predictions, three labeled: (predicted, actual) (0,0) (1,0) (0,0).
    let agg = &v["aggregate"];
    assert_eq!(agg["task"], "classification", "{agg}");
    let windows = agg["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{agg}");
    let w = &windows[0];
    assert_eq!(w["version"], "1");
    assert_eq!(w["requests"], 5);
    assert_eq!(w["labeled"], 3);
    close(&w["coverage"], 3.0 / 5.0, "coverage");
    assert_eq!(w["scored"], 3);
    close(&w["accuracy"], 2.0 / 3.0, "accuracy");
    close(&w["f1"], 0.0, "f1");
    let revenue = &w["businessMetrics"]["revenue"];
    assert_eq!(revenue["count"], 3, "{w}");
    close(&revenue["mean"], 15.0, "revenue mean");
    assert_eq!(
        w["businessMetrics"]["segment"],
        json!({"count": 1, "values": {"b": 1}})
    );
    let requests: u64 = v["default"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 5, "{}", v["default"]);

    // A job run gets CAIRN_SERVER and the module's functions use it.
    let (status, body) = up.post("/api/v1/jobs/report/runs", &json!({}));
    assert_eq!(status, 202, "{body}");
    let run = up.wait_run("report", 1);
    let log = up
        .get_text("/api/v1/jobs/report/runs/1/logs")
        .unwrap_or_default();
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    assert!(log.contains(&format!("CAIRN_SERVER={server}\n")), "{log}");
    assert!(
        log.contains(r#"{"recorded": 1, "unknownUuids": []}"#),
        "{log}"
    );
    let agg = up.get("/api/v1/models/clf/metrics/aggregate");
    let model_level = agg["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["version"].is_null())
        .unwrap_or_else(|| panic!("the job's model-level metric: {agg}"));
    close(
        &model_level["businessMetrics"]["budget"]["sum"],
        300.0,
        "budget",
    );

    // The Prometheus gauges of the last hour (refreshed every second here).
    let text = up.wait_for(Duration::from_secs(20), "model score gauges", || {
        let text = up.get_text("/metrics").ok()?;
        let accuracy = sample(
            &text,
            r#"cairn_model_accuracy{project="lab",model="clf",version="1"}"#,
        )?;
        ((accuracy - 2.0 / 3.0).abs() < 1e-9).then_some(text)
    });
    let coverage = sample(
        &text,
        r#"cairn_model_label_coverage{project="lab",model="clf",version="1"}"#,
    )
    .unwrap_or_else(|| panic!("no coverage gauge:\n{text}"));
    assert!((coverage - 0.6).abs() < 1e-9, "{text}");
    assert!(text.contains("# TYPE cairn_model_mae gauge\n"), "{text}");
    assert!(!text.contains("cairn_model_mae{"), "{text}");
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Err(e) => eprintln!("note: promtool is not available ({e}); skipping its check"),
        Ok(mut child) => {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics rejected /metrics:\n{}{}\n--- metrics ---\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // `cairn metrics`: the table and the JSON.
    let cairn = |args: &[&str]| {
        let out = std::process::Command::new(cairn_test_support::cairn_binary())
            .args(args)
            .args(["--server", &server])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cairn {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(1))
        .with_timezone(&chrono::FixedOffset::east_opt(7200).unwrap())
        .to_rfc3339();
    let to = (now + chrono::Duration::hours(1)).to_rfc3339();
    let table = cairn(&[
        "metrics", "clf", "--from", &from, "--to", &to, "--window", "36500d",
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("clf (classification), "), "{table}");
    let header = lines
        .iter()
        .position(|l| l.starts_with("WINDOW"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(lines[header].contains("COVERAGE  ACCURACY  F1"), "{table}");
    let v1 = lines
        .iter()
        .find(|l| l.split_whitespace().nth(1) == Some("1"))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = v1.split_whitespace().collect();
    assert_eq!(&cells[2..6], ["5", "60.0%", "0.667", "0.000"], "{table}");
    assert!(v1.contains("revenue=15.0000, segment: b×1"), "{table}");
    let model_level = lines
        .iter()
        .find(|l| l.split_whitespace().nth(1) == Some("-"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(model_level.contains("budget=300.0000"), "{table}");
    let json: Value = serde_json::from_str(&cairn(&[
        "metrics", "clf", "--window", "36500d", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(json["task"], "classification");
    assert_eq!(json["windows"].as_array().unwrap().len(), 2, "{json}");
}
