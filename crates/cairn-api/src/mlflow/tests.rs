use super::*;
use serde_json::{Value, json};

fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(body: Value) -> T {
    let read: T = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&read).unwrap(), body);
    read
}

#[test]
fn an_experiment_reads_back_as_mlflow_wrote_it() {
    let body = json!({"experiment": {"experiment_id": "1", "name": "lab/probe",
        "artifact_location": "mlflow-artifacts:/1", "lifecycle_stage": "active",
        "last_update_time": 1796521295337_i64, "creation_time": 1796521295337_i64,
        "tags": [{"key": "mlflow.note.content", "value": "x"}]}});
    let answer: ExperimentAnswer = round_trip(body);
    assert_eq!(answer.experiment.name, "lab/probe");
    let created: CreateExperiment = serde_json::from_value(json!({"name": "lab/probe"})).unwrap();
    assert_eq!(
        serde_json::to_value(created).unwrap(),
        json!({"name": "lab/probe"})
    );
    round_trip::<ExperimentCreated>(json!({"experiment_id": "1"}));
    let error: MlflowError = round_trip(
        json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no experiment `x`"}),
    );
    assert_eq!(error.error_code, "RESOURCE_DOES_NOT_EXIST");
}

#[test]
fn a_run_reads_back_as_mlflow_wrote_it() {
    let run = json!({"run": {"info": {"run_uuid": "a1", "run_id": "a1", "experiment_id": "1",
        "run_name": "bold-fox", "user_id": "root", "status": "RUNNING",
        "start_time": 1796521325079_i64, "artifact_uri": "mlflow-artifacts:/1/a1/artifacts",
        "lifecycle_stage": "active"},
        "data": {"metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 2}],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "mlflow.user", "value": "root"}]},
        "inputs": {"dataset_inputs": [{"tags": [{"key": "mlflow.data.context", "value": "train"}],
            "dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{}",
                "schema": "{}", "profile": "{}"}}]},
        "outputs": {"model_outputs": [{"model_id": "m-1", "step": 0}]}}});
    let read: RunAnswer = round_trip(run);
    assert_eq!(read.run.data.metrics[0].value, 0.5);
    // A fresh run: empty inputs are written, empty outputs are not.
    let fresh = json!({"run": {"info": {"run_uuid": "a1", "run_id": "a1", "experiment_id": "1",
        "status": "RUNNING", "artifact_uri": "u", "lifecycle_stage": "active"},
        "data": {}, "inputs": {}}});
    round_trip::<RunAnswer>(fresh);
    let create: CreateRun = serde_json::from_value(json!({"experiment_id": "1",
        "user_id": "root", "start_time": "1796521325079",
        "tags": [{"key": "mlflow.user", "value": "root"}]}))
    .unwrap();
    assert_eq!(create.start_time, Some(1796521325079));
    let update: UpdateRun = serde_json::from_value(json!({"run_id": "a1", "run_uuid": "a1",
        "status": "FINISHED", "end_time": 1796521325999_i64}))
    .unwrap();
    assert_eq!(
        (update.run(), update.status.as_deref()),
        (Some("a1"), Some("FINISHED"))
    );
    let numbered: UpdateRun = serde_json::from_value(json!({"run_id": "a1", "status": 3})).unwrap();
    assert_eq!(numbered.status.as_deref(), Some("FINISHED"));
}

#[test]
fn a_run_is_named_by_either_spelling() {
    let old: RunKeyValue =
        serde_json::from_value(json!({"run_uuid": "r", "key": "k", "value": "v"})).unwrap();
    assert_eq!(old.run(), Some("r"));
    let both: RunKeyValue =
        serde_json::from_value(json!({"run_id": "r", "run_uuid": "r", "key": "k", "value": "v"}))
            .unwrap();
    assert_eq!(both.run(), Some("r"));
    let empty_new: RunRef = serde_json::from_value(json!({"run_id": "", "run_uuid": "r"})).unwrap();
    assert_eq!(empty_new.run(), Some("r"));
    let none: RunRef = serde_json::from_value(json!({})).unwrap();
    assert_eq!(none.run(), None);
}

#[test]
fn metric_values_may_be_strings_of_non_finite_numbers() {
    let read = |value: Value| {
        serde_json::from_value::<LogMetric>(json!({"run_id": "r", "key": "loss",
            "value": value, "timestamp": "5", "step": 1}))
    };
    assert!(read(json!("NaN")).unwrap().value.is_nan());
    assert_eq!(read(json!("Infinity")).unwrap().value, f64::INFINITY);
    assert_eq!(read(json!("-Infinity")).unwrap().value, f64::NEG_INFINITY);
    assert_eq!(read(json!(1)).unwrap().value, 1.0);
    let metric = read(json!(1.5)).unwrap();
    assert_eq!((metric.value, metric.timestamp, metric.step), (1.5, 5, 1));
    let error = read(json!("lots")).unwrap_err().to_string();
    assert!(
        error.contains("`value`") && error.contains("lots"),
        "{error}"
    );
    assert!(read(json!({"x": 1})).is_err());
    // Written back as proto3 JSON writes them.
    let point = |value| Metric {
        key: "loss".into(),
        value,
        ..Metric::default()
    };
    assert_eq!(
        serde_json::to_value(point(f64::NAN)).unwrap()["value"],
        "NaN"
    );
    assert_eq!(
        serde_json::to_value(point(f64::NEG_INFINITY)).unwrap()["value"],
        "-Infinity"
    );
    assert_eq!(serde_json::to_value(point(2.0)).unwrap()["value"], 2.0);
    // A bad integer is refused.
    assert!(
        serde_json::from_value::<LogMetric>(json!({"key": "k", "value": 1, "step": "x"})).is_err()
    );
}

#[test]
fn batches_inputs_and_outputs_read_as_the_client_sends_them() {
    let batch: LogBatch = serde_json::from_value(json!({"run_id": "r",
        "metrics": [{"key": "a", "value": "NaN", "timestamp": 1, "step": 0},
            {"key": "b", "value": 2, "timestamp": "2"}],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "t", "value": "v"}]}))
    .unwrap();
    assert_eq!((batch.metrics.len(), batch.metrics[1].timestamp), (2, 2));
    let inputs: LogInputs = serde_json::from_value(json!({"run_id": "r",
        "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "eval"}],
            "dataset": {"name": "d", "digest": "x", "source_type": "local", "source": "{}"}}],
        "models": [{"model_id": "m-1"}]}))
    .unwrap();
    assert_eq!(inputs.datasets[0].dataset.schema, None);
    let outputs: LogOutputs = serde_json::from_value(
        json!({"run_id": "r", "models": [{"model_id": "m-1", "step": "3"}]}),
    )
    .unwrap();
    assert_eq!(outputs.models[0].step, 3);
    let search: SearchRuns = serde_json::from_value(json!({"experiment_ids": ["1", 2],
        "run_view_type": "ACTIVE_ONLY", "filter": "metrics.loss < 2",
        "max_results": 10000, "order_by": ["metrics.loss DESC"]}))
    .unwrap();
    assert_eq!(search.experiment_ids, ["1", "2"]);
    assert_eq!(search.max_results, Some(10000));
    let page = RunPage::default();
    assert_eq!(serde_json::to_value(page).unwrap(), json!({}));
}

#[test]
fn queries_read_from_strings() {
    // Query strings carry every value as text.
    let q: MetricHistoryQuery = serde_json::from_value(json!({"run_id": "r",
        "run_uuid": "r", "metric_key": "loss", "max_results": "25000"}))
    .unwrap();
    assert_eq!((q.run(), q.max_results), (Some("r"), Some(25000)));
    let e: ExperimentRef = serde_json::from_value(json!({"experiment_id": 7})).unwrap();
    assert_eq!(e.experiment_id, "7");
    let s: SearchExperiments = serde_json::from_value(json!({"view_type": 3})).unwrap();
    assert_eq!(s.view_type.as_deref(), Some("ALL"));
    assert!(serde_json::from_value::<SearchExperiments>(json!({"view_type": 9})).is_err());
}

#[test]
fn a_logged_model_reads_back_as_mlflow_wrote_it() {
    let body = json!({"model": {"info": {"model_id": "m-0123", "experiment_id": "1",
        "name": "model", "creation_timestamp_ms": 1796521325079_i64,
        "last_updated_timestamp_ms": 1796521325079_i64,
        "artifact_uri": "mlflow-artifacts:/1/models/m-0123/artifacts",
        "status": "LOGGED_MODEL_PENDING", "model_type": "", "source_run_id": "a1",
        "tags": [{"key": "mlflow.user", "value": "root"}]},
        "data": {"params": [{"key": "alpha", "value": "0.5"}]}}});
    round_trip::<LoggedModelAnswer>(body);
    let finalize: FinalizeLoggedModel =
        serde_json::from_value(json!({"model_id": "m-0123", "status": "LOGGED_MODEL_READY"}))
            .unwrap();
    assert_eq!(finalize.status, "LOGGED_MODEL_READY");
    let numbered: FinalizeLoggedModel = serde_json::from_value(json!({"status": 2})).unwrap();
    assert_eq!(numbered.status, "LOGGED_MODEL_READY");
    let search: SearchLoggedModels = serde_json::from_value(json!({"experiment_ids": ["1"],
        "filter": "name = 'dir'",
        "order_by": [{"field_name": "creation_timestamp", "ascending": false}]}))
    .unwrap();
    assert_eq!(search.order_by[0].clause(), "creation_timestamp DESC");
    assert_eq!(
        serde_json::to_value(LoggedModelPage::default()).unwrap(),
        json!({})
    );
}

#[test]
fn artifact_listings_leave_out_what_is_empty() {
    round_trip::<ArtifactList>(
        json!({"files": [{"path": "art.txt", "is_dir": false, "file_size": 2},
            {"path": "dir", "is_dir": true}]}),
    );
    assert_eq!(
        serde_json::to_value(ArtifactList::default()).unwrap(),
        json!({})
    );
    assert_eq!(serde_json::to_value(Empty {}).unwrap(), json!({}));
}
