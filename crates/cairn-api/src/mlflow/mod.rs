//! MLflow's REST protocol (`/api/2.0/mlflow/...`, `/api/2.0/mlflow-artifacts/...`),
//! as MLflow 3.x clients speak it: proto3 JSON with the protos' snake_case
//! field names.
//!
//! Requests are read as leniently as MLflow's server reads them: a run is
//! named by `run_id` or its older spelling `run_uuid` (clients send both),
//! 64-bit integers arrive as JSON numbers or as strings, a metric's value
//! may be a number or one of the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, and an experiment id is a string (a number is taken
//! too). Unknown fields are ignored. Answers leave out what is unset or
//! empty, as MLflow's do. These types are MLflow's contract, not Cairn's:
//! they carry no OpenAPI schema.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An MLflow failure: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlflowError {
    /// MLflow's error code (`INVALID_PARAMETER_VALUE`, `RESOURCE_DOES_NOT_EXIST`, ...).
    pub error_code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl MlflowError {
    /// An error with its code and message.
    pub fn new(error_code: impl Into<String>, message: impl Into<String>) -> MlflowError {
        MlflowError {
            error_code: error_code.into(),
            message: message.into(),
        }
    }
}

/// The empty answer `{}` of the calls that return nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A key and its value: a tag of an experiment, a run, a dataset input or
/// a logged model, or a parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The name.
    #[serde(default)]
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

impl KeyValue {
    /// `key` = `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One point of a metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's name.
    #[serde(default)]
    pub key: String,
    /// Its value; not-a-number and the infinities travel as `"NaN"`,
    /// `"Infinity"` and `"-Infinity"`.
    #[serde(
        default,
        deserialize_with = "lenient::metric_value",
        serialize_with = "lenient::write_metric_value"
    )]
    pub value: f64,
    /// When it was measured, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub timestamp: i64,
    /// The training step.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub step: i64,
    /// The dataset it was measured on, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// The dataset it was measured on, by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// The logged model it was measured for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The run that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// An experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its id: a decimal integer, as a string.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// Where its runs' artifacts go (`mlflow-artifacts:/ID`).
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// When it last changed, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<i64>,
    /// When it was created, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// What describes a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id (the older spelling, still sent).
    pub run_uuid: String,
    /// The run's id: 32 hexadecimal digits.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_name: String,
    /// Who started it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    /// `RUNNING`, `SCHEDULED`, `FINISHED`, `FAILED` or `KILLED`.
    pub status: String,
    /// When it started, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// When it ended, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Where its artifacts go (`mlflow-artifacts:/EXP/RUN/artifacts`).
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
}

/// What a run logged: the latest value of each metric, parameters, tags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The latest point of each metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// A dataset, as a run's input names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// A digest of its contents.
    #[serde(default)]
    pub digest: String,
    /// The kind of its source (`local`, `http`, `code`, ...).
    #[serde(default)]
    pub source_type: String,
    /// Its source, as JSON text.
    #[serde(default)]
    pub source: String,
    /// Its schema, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its profile, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A dataset a run read, with the input's tags (`mlflow.data.context`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// The input's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    /// The dataset.
    #[serde(default)]
    pub dataset: Dataset,
}

/// A logged model a run read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    /// The model's id.
    #[serde(default)]
    pub model_id: String,
}

/// A logged model a run produced, at a step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The model's id.
    #[serde(default)]
    pub model_id: String,
    /// The step it was produced at.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub step: i64,
}

/// What a run read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    /// Datasets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInput>,
    /// Logged models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutputs {
    /// Logged models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

impl RunOutputs {
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.model_outputs.is_empty()
    }
}

/// A run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// What describes it.
    pub info: RunInfo,
    /// What it logged.
    #[serde(default)]
    pub data: RunData,
    /// What it read.
    #[serde(default)]
    pub inputs: RunInputs,
    /// What it produced (left out when nothing).
    #[serde(default, skip_serializing_if = "RunOutputs::is_empty")]
    pub outputs: RunOutputs,
}

/// What describes a logged model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelInfo {
    /// Its id: `m-` and 32 hexadecimal digits.
    pub model_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// When it was created, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub creation_timestamp_ms: i64,
    /// When it last changed, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub last_updated_timestamp_ms: i64,
    /// Where its files go (`mlflow-artifacts:/EXP/models/ID/artifacts`).
    pub artifact_uri: String,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    /// Its type, free text (MLflow sends it even when empty).
    #[serde(default)]
    pub model_type: String,
    /// The run that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    /// Why it has its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// What a logged model carries: parameters and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelData {
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    /// Metrics logged for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// A logged model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    /// What describes it.
    pub info: LoggedModelInfo,
    /// What it carries.
    #[serde(default)]
    pub data: LoggedModelData,
}

// ---- experiments ----

/// `POST experiments/create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateExperiment {
    /// The name (`PROJECT/NAME` in Cairn).
    #[serde(default)]
    pub name: String,
    /// Where its artifacts should go (Cairn keeps them itself and ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_location: Option<String>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// The answer to `experiments/create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentCreated {
    /// The new experiment's id.
    pub experiment_id: String,
}

/// `GET experiments/get?experiment_id=`; also the body of
/// `experiments/delete` and `experiments/restore`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentRef {
    /// The experiment.
    #[serde(default, deserialize_with = "lenient::id")]
    pub experiment_id: String,
}

/// `GET experiments/get-by-name?experiment_name=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentByName {
    /// The experiment's name.
    #[serde(default)]
    pub experiment_name: String,
}

/// The answer to `experiments/get` and `experiments/get-by-name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentAnswer {
    /// The experiment.
    pub experiment: Experiment,
}

/// `POST experiments/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchExperiments {
    /// The most experiments to answer.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<i64>,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// MLflow's filter syntax (`name LIKE 'lab/%'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `name ASC`, `creation_time DESC`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// `ACTIVE_ONLY` (the default), `DELETED_ONLY` or `ALL`.
    #[serde(
        default,
        deserialize_with = "lenient::view_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub view_type: Option<String>,
}

/// The answer to `experiments/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentPage {
    /// The experiments found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<Experiment>,
    /// Where the next page starts, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `POST experiments/update`: a new name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateExperiment {
    /// The experiment.
    #[serde(default, deserialize_with = "lenient::id")]
    pub experiment_id: String,
    /// Its new name.
    #[serde(default)]
    pub new_name: String,
}

/// `POST experiments/set-experiment-tag`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetExperimentTag {
    /// The experiment.
    #[serde(default, deserialize_with = "lenient::id")]
    pub experiment_id: String,
    /// The tag's name.
    #[serde(default)]
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

// ---- runs ----

/// A run named by `run_id` or `run_uuid`: `GET runs/get`, and the body of
/// `runs/delete` and `runs/restore`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
}

/// The run a request names: `run_id`, or else `run_uuid`.
fn either<'a>(run_id: &'a Option<String>, run_uuid: &'a Option<String>) -> Option<&'a str> {
    [run_id, run_uuid]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .find(|s| !s.is_empty())
}

impl RunRef {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRun {
    /// The experiment.
    #[serde(default, deserialize_with = "lenient::id")]
    pub experiment_id: String,
    /// Who the client says starts it (Cairn records the authenticated
    /// caller instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// When it started, in milliseconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<i64>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// The answer to `runs/create` and `runs/get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunAnswer {
    /// The run.
    pub run: Run,
}

/// `POST runs/update`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRun {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// Its new status.
    #[serde(
        default,
        deserialize_with = "lenient::run_status",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// When it ended, in milliseconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<i64>,
    /// Its new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
}

impl UpdateRun {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// The answer to `runs/update`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfoAnswer {
    /// The run, as updated.
    pub run_info: RunInfo,
}

/// `POST runs/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRuns {
    /// The experiments searched.
    #[serde(
        default,
        deserialize_with = "lenient::ids",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub experiment_ids: Vec<String>,
    /// MLflow's filter syntax (`metrics.loss < 2 and params.lr = '0.1'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `ACTIVE_ONLY` (the default), `DELETED_ONLY` or `ALL`.
    #[serde(
        default,
        deserialize_with = "lenient::view_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub run_view_type: Option<String>,
    /// The most runs to answer.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<i64>,
    /// `metrics.loss DESC`, `attributes.start_time ASC`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

/// The answer to `runs/search`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
    /// Where the next page starts, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `POST runs/log-metric`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogMetric {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// The metric's name.
    #[serde(default)]
    pub key: String,
    /// Its value (a number, `"NaN"`, `"Infinity"` or `"-Infinity"`).
    #[serde(
        default,
        deserialize_with = "lenient::metric_value",
        serialize_with = "lenient::write_metric_value"
    )]
    pub value: f64,
    /// When it was measured, in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub timestamp: i64,
    /// The training step.
    #[serde(default, deserialize_with = "lenient::int64")]
    pub step: i64,
    /// The logged model it was measured for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The dataset it was measured on, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// The dataset it was measured on, by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

impl LogMetric {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/log-parameter` and `runs/set-tag`: a key and its value for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKeyValue {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// The name.
    #[serde(default)]
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

impl RunKeyValue {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/delete-tag`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTag {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// The tag's name.
    #[serde(default)]
    pub key: String,
}

impl DeleteTag {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/log-batch`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// Metric points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

impl LogBatch {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/log-inputs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInputs {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// Datasets it read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetInput>,
    /// Logged models it read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelInput>,
}

impl LogInputs {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `POST runs/outputs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOutputs {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// Logged models it produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelOutput>,
}

impl LogOutputs {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// `GET metrics/get-history?run_id=&metric_key=&max_results=&page_token=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricHistoryQuery {
    /// The run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run (the older spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_uuid: Option<String>,
    /// The metric.
    #[serde(default)]
    pub metric_key: String,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// The most points to answer.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<i64>,
}

impl MetricHistoryQuery {
    /// The run named, if any.
    pub fn run(&self) -> Option<&str> {
        either(&self.run_id, &self.run_uuid)
    }
}

/// The answer to `metrics/get-history`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricHistory {
    /// The points, oldest step first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Where the next page starts, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

// ---- logged models ----

/// `POST logged-models`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateLoggedModel {
    /// The experiment.
    #[serde(default, deserialize_with = "lenient::id")]
    pub experiment_id: String,
    /// Its name (MLflow's client picks one when the caller does not).
    #[serde(default)]
    pub name: String,
    /// Its type, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The run that logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

/// `PATCH logged-models/{model_id}`: the upload is over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeLoggedModel {
    /// The model (also in the path, which wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    #[serde(default, deserialize_with = "lenient::model_status")]
    pub status: String,
}

/// The answer to creating, reading and finalizing a logged model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelAnswer {
    /// The model.
    pub model: LoggedModel,
}

/// An ordering of `logged-models/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelOrder {
    /// `creation_timestamp`, `name`, `metrics.KEY`, ...
    #[serde(default)]
    pub field_name: String,
    /// Smallest first (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ascending: Option<bool>,
    /// For a metric: measured on this dataset, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// For a metric: measured on this dataset, by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

impl LoggedModelOrder {
    /// As an order-by clause of MLflow's syntax (`name DESC`).
    pub fn clause(&self) -> String {
        let direction = if self.ascending.unwrap_or(true) {
            "ASC"
        } else {
            "DESC"
        };
        format!("{} {direction}", self.field_name)
    }
}

/// `POST logged-models/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchLoggedModels {
    /// The experiments searched.
    #[serde(
        default,
        deserialize_with = "lenient::ids",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub experiment_ids: Vec<String>,
    /// MLflow's filter syntax (`name = 'clf'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Datasets metrics are compared on (read, not used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<serde_json::Value>,
    /// The most models to answer.
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_results: Option<i64>,
    /// Orderings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<LoggedModelOrder>,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

/// The answer to `logged-models/search`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelPage {
    /// The models found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<LoggedModel>,
    /// Where the next page starts, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

// ---- artifacts and the server ----

/// `GET /api/2.0/mlflow-artifacts/artifacts?path=EXP/RUN/artifacts/DIR`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactListQuery {
    /// The directory listed, from the artifact root; none: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A file or directory in a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Its path, relative to the directory listed.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Its size in bytes (files only).
    #[serde(
        default,
        deserialize_with = "lenient::opt_int64",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_size: Option<i64>,
}

/// The answer to an artifact listing (`{}` for a file or nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactList {
    /// What the directory holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
}

/// Features the server offers: `GET /api/3.0/mlflow/server-info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The kind of tracking store (`SqlStore`: a database).
    pub store_type: Option<String>,
    /// Whether MLflow workspaces are on.
    pub workspaces_enabled: bool,
    /// Whether traces may be archived.
    pub trace_archival_enabled: bool,
    /// Whether large artifacts go up in parts through presigned URLs.
    pub multipart_uploads_enabled: bool,
    /// Whether large artifacts come down in parts through presigned URLs.
    pub multipart_downloads_enabled: bool,
    /// Whether the server stores artifacts itself (`mlflow-artifacts:/`).
    pub artifact_serving_enabled: bool,
    /// Whether uploads may be presigned for a run.
    pub presigned_upload_run_id_supported: bool,
    /// Whether uploads may be presigned for a logged model.
    pub presigned_upload_model_id_supported: bool,
    /// Whether a logged model's files may be downloaded through presigned URLs.
    pub model_artifact_presigned_downloads_supported: bool,
    /// Whether artifacts move only through presigned URLs.
    pub artifacts_presigned_only: bool,
}

mod lenient;
#[cfg(test)]
mod tests;
