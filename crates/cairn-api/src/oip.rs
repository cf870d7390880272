//! The Open Inference Protocol v2 (KServe, Triton and MLServer clients):
//! `/v2`, `/v2/health/*`, `/v2/models/NAME[/versions/V][/ready|/infer]`.
//! Field names are the protocol's (snake_case).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `GET /v2/health/live`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerLive {
    /// Always `true` while the server answers.
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerReady {
    /// Whether the server takes predictions.
    pub ready: bool,
    /// Models served.
    pub models: usize,
}

/// `GET /v2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    /// `cairn`.
    pub name: String,
    /// Cairn's version.
    pub version: String,
    /// Protocol extensions supported (none).
    pub extensions: Vec<String>,
}

/// `GET /v2/models/NAME/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelReady {
    /// The model.
    pub name: String,
    /// Whether it takes predictions (process models: a replica is up).
    pub ready: bool,
}

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Datatype {
    /// 32-bit float.
    #[serde(rename = "FP32")]
    Fp32,
    /// 64-bit float.
    #[serde(rename = "FP64")]
    Fp64,
    /// 64-bit signed integer.
    #[serde(rename = "INT64")]
    Int64,
    /// 32-bit signed integer.
    #[serde(rename = "INT32")]
    Int32,
    /// Boolean.
    #[serde(rename = "BOOL")]
    Bool,
    /// Text.
    #[serde(rename = "BYTES")]
    Bytes,
}

/// `GET /v2/models/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    /// The model.
    pub name: String,
    /// The version served (one).
    pub versions: Vec<String>,
    /// `onnx`, `wasm` or `process`.
    pub platform: String,
    /// Its input tensors.
    pub inputs: Vec<TensorMetadata>,
    /// Its output tensors.
    pub outputs: Vec<TensorMetadata>,
    /// Where the version comes from.
    pub parameters: ModelParameters,
}

/// The name, type and shape of a model's tensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub datatype: Datatype,
    /// Its dimensions; `-1` for a variable one.
    pub shape: Vec<i64>,
}

/// Cairn's parameters of a model's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelParameters {
    /// The commit the version was deployed from.
    pub commit: String,
    /// SHA-256 of its artifact (empty for process models).
    pub sha256: String,
}

/// A tensor: `data` flat and row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tensor {
    /// Input or output name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Element type.
    pub datatype: Datatype,
    /// Elements: numbers, booleans or strings as `datatype` says (`null` for
    /// a float that is not finite).
    #[schema(value_type = Vec<Option<TensorElement>>)]
    pub data: Vec<Value>,
}

/// One element of a tensor's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TensorElement {
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(String),
}

/// `POST /v2/models/NAME/infer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InferRequest {
    /// An id to echo in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request parameters (not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors (at least one; ONNX models read the first).
    pub inputs: Vec<Tensor>,
}

/// The answer to `POST /v2/models/NAME/infer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InferResponse {
    /// The model.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request's id, else the inference id.
    pub id: String,
    /// Cairn's parameters.
    pub parameters: InferParameters,
    /// The output tensors.
    pub outputs: Vec<Tensor>,
}

/// Cairn's parameters of an inference answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferParameters {
    /// The inference id, to attach business metrics and labels to later.
    pub cairn_inference_id: String,
}
