//! The plugin host with the real components built by `cargo xtask plugins`
//! (`plugins/dist/`): every world exercised, drift statistics checked
//! against scipy, hostile plugins stopped within their limits, and a wrong
//! SHA-256 refused.

use cairn_plugin_host::apps::{App, AppFile, FrameworkPlugin};
use cairn_plugin_host::columns;
use cairn_plugin_host::drift::DriftDetector;
use cairn_plugin_host::metrics::{InferenceEvent, MetricPlugin, MetricValue};
use cairn_plugin_host::model::{Tensor, WasmModel, WitData};
use cairn_plugin_host::{PluginError, PluginHost, PluginSource, config_of};
use cairn_spec::PluginLimits;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn dist(name: &str) -> PathBuf {
    cairn_test_support::plugin_dist(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(cairn_test_support::fixture("drift").join(name)).unwrap()
}

fn host() -> PluginHost {
    PluginHost::new(None).unwrap()
}

fn limits(memory_mib: u64, timeout_ms: u64) -> PluginLimits {
    PluginLimits {
        memory: format!("{memory_mib}Mi").parse().unwrap(),
        timeout: format!("{timeout_ms}ms").parse().unwrap(),
        fuel: None,
    }
}

fn config(value: serde_json::Value) -> cairn_plugin_host::Config {
    config_of(&serde_json::from_value(value).unwrap())
}

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-9_f64.max(expected.abs() * 1e-6);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} != {expected}"
    );
}

/// Fits the builtin `name` on the reference fixture and scores the window
/// fixture over `features`.
fn drift(
    name: &str,
    cfg: serde_json::Value,
    features: &[&str],
) -> cairn_plugin_host::drift::DriftReport {
    let host = host();
    let plugin = host
        .load(
            name,
            &PluginSource::Builtin(name.into()),
            None,
            &limits(256, 5000),
        )
        .unwrap();
    let detector = DriftDetector::new(plugin).unwrap();
    let features: Vec<String> = features.iter().map(|s| s.to_string()).collect();
    let reference = columns::select(
        columns::from_csv(&fixture("reference.csv")).unwrap(),
        &features,
    )
    .unwrap();
    let window = columns::select(
        columns::from_csv(&fixture("window.csv")).unwrap(),
        &features,
    )
    .unwrap();
    let cfg = config(cfg);
    let state = detector.fit(&cfg, &reference).unwrap();
    detector.score(&cfg, &state, &window, 0.2).unwrap()
}

#[test]
fn drift_psi_matches_numpy() {
    let report = drift("drift-psi", json!({"bins": 10}), &["age", "income", "plan"]);
    // Quantile edges np.unique(np.quantile(ref, [.1, ..., .9])), counts by
    // np.searchsorted(edges, x, side="left") plus a missing-value bin,
    // shares with 1e-4 for empty bins, PSI = sum((a - e) * ln(a / e)); the
    // categorical bins are the sorted categories, "other" and missing.
    let expected = [
        ("age", 0.5894132854942142, true),
        ("income", 0.1074139690827767, false),
        ("plan", 0.260556101360075, true),
    ];
    assert_eq!(report.features.len(), 3);
    for ((name, score, drifted), got) in expected.iter().zip(&report.features) {
        assert_eq!(got.feature, *name);
        close(got.score, *score, name);
        assert_eq!(got.drifted, *drifted, "{name}");
        assert_eq!(got.p_value, None);
    }
    assert!(report.drifted);
    close(report.score, 0.5894132854942142, "overall (max)");
}

#[test]
fn drift_ks_matches_scipy() {
    let report = drift("drift-ks", json!({}), &["age", "income"]);
    // scipy.stats.ks_2samp(reference[f], window[f]) (exact p-values for
    // 300 x 300 samples).
    let expected = [
        ("age", 0.3333333333333333, 3.709652809739326e-15),
        ("income", 0.12, 0.026515154829730034),
    ];
    for ((name, d, p), got) in expected.iter().zip(&report.features) {
        assert_eq!(got.feature, *name);
        close(got.score, *d, name);
        let p_got = got.p_value.expect("KS has a p-value");
        assert!(
            (p_got - p).abs() <= p * 1e-3 + 1e-12,
            "{name} p-value: {p_got} != {p}"
        );
    }
}

#[test]
fn drift_chi2_matches_scipy() {
    let report = drift("drift-chi2", json!({}), &["plan"]);
    // Buckets basic, plus, pro and "other"; expected shares
    // (ref + 0.5) / (300 + 0.5 * 4); r = scipy.stats.chisquare(window
    // counts, shares * 300): statistic 91.61834867078728, p-value
    // 9.838403679756543e-20; the score is Cohen's w = sqrt(statistic / 300).
    let got = &report.features[0];
    assert_eq!(got.feature, "plan");
    close(got.score, 0.5526250949507188, "Cohen's w");
    let p = got.p_value.expect("chi-squared has a p-value");
    assert!(
        (p - 9.838403679756543e-20).abs() <= 9.838403679756543e-20 * 1e-6,
        "p-value {p}"
    );
    assert!(got.drifted && report.drifted);
}

#[test]
fn a_window_like_the_reference_does_not_drift() {
    let host = host();
    let plugin = host
        .load(
            "psi",
            &PluginSource::File(dist("drift-psi")),
            None,
            &limits(64, 1000),
        )
        .unwrap();
    let detector = DriftDetector::new(plugin).unwrap();
    let reference = columns::from_csv(&fixture("reference.csv")).unwrap();
    let cfg = config(json!({}));
    let state = detector.fit(&cfg, &reference).unwrap();
    let report = detector.score(&cfg, &state, &reference, 0.1).unwrap();
    assert!(!report.drifted);
    assert!(report.score.abs() < 1e-12, "{}", report.score);
    // The plugin's own errors come back as errors, and the host goes on.
    let bad = detector
        .score(&cfg, b"not a state", &reference, 0.1)
        .unwrap_err();
    assert!(matches!(bad, PluginError::Failed(_)), "{bad:?}");
    assert!(detector.fit(&cfg, &reference).is_ok());
}

#[test]
fn business_metric_plugin_computes_from_the_event() {
    let host = host();
    let plugin = host
        .load(
            "prediction-value",
            &PluginSource::Builtin("prediction-value".into()),
            None,
            &limits(64, 1000),
        )
        .unwrap();
    let metrics = MetricPlugin::new(plugin).unwrap();
    let event = InferenceEvent {
        id: "0190b5a4-0000-7000-8000-000000000000".into(),
        model: "churn".into(),
        version: "3".into(),
        timestamp_ms: 1_700_000_000_000,
        latency_us: 420,
        status: 200,
        inputs: json!({"x": 1.0}).to_string(),
        outputs: json!({"label": 1, "probabilities": [0.25, 0.75]}).to_string(),
    };
    let cfg = config(json!({"values": {"0": 0, "1": 100}}));
    let out = metrics.compute(&cfg, &event).unwrap();
    let get = |name: &str| {
        out.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no `{name}`"))
            .value
            .clone()
    };
    assert!(matches!(get("confidence"), MetricValue::Number(n) if n == 0.75));
    assert!(matches!(get("expected_value"), MetricValue::Number(n) if n == 75.0));
    assert!(matches!(get("predicted_class"), MetricValue::Text(t) if t == "1"));
    // The aggregation hook: the plugin adds its own summaries.
    let agg = metrics
        .aggregate(&cfg, "expected_value", &[75.0, 25.0])
        .unwrap();
    assert!(
        agg.iter().any(|m| m.name == "expected_value_total"
            && matches!(m.value, MetricValue::Number(n) if n == 100.0)),
        "{:?}",
        agg.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
}

#[test]
fn app_framework_plugin_launches_flask() {
    let host = host();
    let plugin = host
        .load(
            "flask",
            &PluginSource::Builtin("flask".into()),
            None,
            &limits(64, 1000),
        )
        .unwrap();
    let framework = FrameworkPlugin::new(plugin).unwrap();
    let app = App {
        name: "dash".into(),
        path: "app".into(),
        files: vec![AppFile {
            path: "app.py".into(),
            size: 60,
            text: Some("from flask import Flask\napp = Flask(__name__)\n".into()),
        }],
        url_prefix: "/apps/dash".into(),
        command: vec![],
        env: vec![],
    };
    let cfg = config(json!({}));
    assert!(framework.detect(&cfg, &app).unwrap());
    let launch = framework.launch(&cfg, &app).unwrap();
    let joined = launch.command.join(" ");
    assert!(joined.contains("flask"), "{joined}");
    assert!(joined.contains("$(PORT)"), "{joined}");
    assert!(!launch.health_path.is_empty());
    // No application file: not detected, and launch says why.
    let empty = App {
        files: vec![],
        ..app
    };
    assert!(!framework.detect(&cfg, &empty).unwrap());
    assert!(matches!(
        framework.launch(&cfg, &empty),
        Err(PluginError::Failed(_))
    ));
}

fn linear_model(replicas: usize) -> WasmModel {
    let host = host();
    let plugin = host
        .load(
            "linear",
            &PluginSource::Builtin("linear-model".into()),
            None,
            &limits(64, 1000),
        )
        .unwrap();
    let artifact = json!({"kind": "linear", "coef": [[2.0, -1.0]], "intercept": [0.5]})
        .to_string()
        .into_bytes();
    WasmModel::new(plugin, config(json!({})), artifact, replicas).unwrap()
}

#[test]
fn model_plugin_loads_once_and_predicts() {
    let model = linear_model(2);
    let inputs = [Tensor {
        name: "input".into(),
        shape: vec![2, 2],
        data: WitData::Float32(vec![1.0, 2.0, 3.0, 0.5]),
    }];
    let out = model.predict(&inputs).unwrap();
    assert_eq!(out[0].name, "prediction");
    let values: Vec<f64> = match &out[0].data {
        WitData::Float32(v) => v.iter().map(|&x| x as f64).collect(),
        WitData::Float64(v) => v.clone(),
        other => panic!("unexpected output {other:?}"),
    };
    // 2*1 - 1*2 + 0.5 and 2*3 - 1*0.5 + 0.5.
    assert_eq!(values, [0.5, 6.0]);
}

/// The hostile test plugin as a model, in `mode`.
fn hostile_model(mode: &str, limits: PluginLimits) -> Result<WasmModel, PluginError> {
    let plugin = host()
        .load(
            "hostile",
            &PluginSource::File(dist("test/hostile-model")),
            None,
            &limits,
        )
        .unwrap();
    WasmModel::new(plugin, config(json!({"mode": mode})), Vec::new(), 1)
}

fn one_row() -> Vec<Tensor> {
    vec![Tensor {
        name: "input".into(),
        shape: vec![1, 1],
        data: WitData::Float32(vec![1.0]),
    }]
}

#[test]
fn an_infinite_loop_is_stopped_at_the_timeout() {
    let model = hostile_model("loop", limits(64, 200)).unwrap();
    let started = Instant::now();
    let err = model.predict(&one_row()).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, PluginError::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("200ms"), "{err}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1000),
        "{took:?}"
    );
    // The trapped instance was replaced: the next call runs (and is
    // stopped) again rather than failing to re-enter.
    let again = model.predict(&one_row()).unwrap_err();
    assert!(matches!(again, PluginError::Timeout(_)), "{again:?}");
}

#[test]
fn fuel_bounds_instructions() {
    let mut l = limits(64, 10_000);
    l.fuel = Some(1_000_000);
    let err = hostile_model("loop", l)
        .unwrap()
        .predict(&one_row())
        .unwrap_err();
    assert!(matches!(err, PluginError::Fuel(1_000_000)), "{err:?}");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let model = hostile_model("memory", limits(32, 5000)).unwrap();
    let err = model.predict(&one_row()).unwrap_err();
    assert!(
        matches!(err, PluginError::Memory { limit, .. } if limit == 32 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory limit"), "{err}");
}

#[test]
fn a_trap_is_reported_not_propagated() {
    let model = hostile_model("trap", limits(64, 1000)).unwrap();
    let err = model.predict(&one_row()).unwrap_err();
    assert!(matches!(err, PluginError::Trap(_)), "{err:?}");
}

#[test]
fn a_huge_output_is_refused() {
    let model = hostile_model("huge-output", limits(64, 5000)).unwrap();
    let err = model.predict(&one_row()).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Memory { .. } | PluginError::OutputTooLarge { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn a_well_behaved_hostile_plugin_answers() {
    let model = hostile_model("ok", limits(64, 1000)).unwrap();
    assert!(model.predict(&one_row()).is_ok());
}

#[test]
fn a_wrong_sha256_is_refused() {
    let bytes = std::fs::read(dist("drift-psi")).unwrap();
    let wrong = "0".repeat(64);
    let err = host()
        .load(
            "psi",
            &PluginSource::Bytes(bytes.clone()),
            Some(&wrong),
            &limits(64, 1000),
        )
        .err()
        .expect("refused");
    match &err {
        PluginError::Checksum { expected, actual } => {
            assert_eq!(expected, &wrong);
            use sha2::Digest;
            assert_eq!(actual, &hex::encode(sha2::Sha256::digest(&bytes)));
        }
        other => panic!("{other:?}"),
    }
    // Not a component at all.
    let err = host()
        .load(
            "junk",
            &PluginSource::Bytes(b"\0asm junk".to_vec()),
            None,
            &limits(64, 1000),
        )
        .err()
        .expect("refused");
    assert!(matches!(err, PluginError::Compile(_)), "{err:?}");
    // A component of another world.
    let plugin = host()
        .load("psi", &PluginSource::Bytes(bytes), None, &limits(64, 1000))
        .unwrap();
    let err = MetricPlugin::new(plugin).err().expect("wrong world");
    assert!(err.to_string().contains("business-metric"), "{err}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let load = || {
        let host = PluginHost::new(Some(dir.path())).unwrap();
        let started = Instant::now();
        host.load(
            "psi",
            &PluginSource::File(dist("drift-psi")),
            None,
            &limits(64, 1000),
        )
        .unwrap();
        started.elapsed()
    };
    let _cold = load();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "one compiled file");
    let name = files[0]
        .as_ref()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    assert!(name.ends_with(".cwasm"), "{name}");
    // A second host loads the compiled file instead of compiling.
    let _warm = load();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
