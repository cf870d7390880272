//! `cairn plugin test`: a plugin tried locally on files, through the same
//! bounded host as `cairn up`.

use cairn_test_support::cairn;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

fn dist(name: &str) -> String {
    cairn_test_support::plugin_dist(name).display().to_string()
}

fn fixture(name: &str) -> String {
    cairn_test_support::fixture("drift")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn drift_detector_scores_a_window() {
    let out = cairn()
        .args([
            "plugin",
            "test",
            &dist("drift-psi"),
            "--world",
            "drift-detector",
        ])
        .args([
            "--reference",
            &fixture("reference.csv"),
            "--window",
            &fixture("window.csv"),
        ])
        .args(["--config", "bins=10", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["drifted"], true, "{report}");
    assert_eq!(report["rows"]["window"], 300);
    let age = &report["features"][0];
    assert_eq!(age["feature"], "age");
    // The same PSI as through the host in `plugins_host.rs` (numpy).
    assert!(
        (age["score"].as_f64().unwrap() - 0.5894132854942142).abs() < 1e-9,
        "{age}"
    );

    // The human form: a table and the verdict.
    cairn()
        .args([
            "plugin",
            "test",
            "builtin:drift-ks",
            "--world",
            "drift-detector",
        ])
        .args([
            "--reference",
            &fixture("reference.csv"),
            "--window",
            &fixture("window.csv"),
        ])
        .args(["--features", "age,income", "--threshold", "0.2"])
        .assert()
        .success()
        .stdout(
            contains("age")
                .and(contains("income"))
                .and(contains("drifted")),
        );
}

#[test]
fn limits_and_bad_input_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"request": {"instances": [[1.0]]}}"#).unwrap();
    // A plugin that loops is stopped at the timeout: exit 1 and the reason.
    cairn()
        .args([
            "plugin",
            "test",
            &dist("test/hostile-model"),
            "--world",
            "model",
        ])
        .args([
            "--input",
            input.to_str().unwrap(),
            "--config",
            "mode=loop",
            "--timeout",
            "100ms",
        ])
        .assert()
        .code(1)
        .stderr(contains("timed out"));
    // The same plugin in `ok` mode answers.
    cairn()
        .args([
            "plugin",
            "test",
            &dist("test/hostile-model"),
            "--world",
            "model",
        ])
        .args(["--input", input.to_str().unwrap(), "--config", "mode=ok"])
        .assert()
        .success();
    // A missing argument, a missing file, a file that is not a component.
    cairn()
        .args([
            "plugin",
            "test",
            &dist("drift-psi"),
            "--world",
            "drift-detector",
        ])
        .assert()
        .code(2)
        .stderr(contains("--reference"));
    cairn()
        .args(["plugin", "test", "/nonexistent.wasm", "--world", "model"])
        .assert()
        .code(2)
        .stderr(contains("/nonexistent.wasm"));
    cairn()
        .args([
            "plugin",
            "test",
            input.to_str().unwrap(),
            "--world",
            "model",
        ])
        .args(["--input", input.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("not a valid WebAssembly component"));
}
