//! `GET /api/v1/inferences/UUID`: one logged prediction.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A prediction as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceRecord {
    /// The model's project.
    pub project: Option<String>,
    /// Its inference id.
    pub uuid: String,
    /// The model.
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// The commit that version was deployed from.
    pub commit: String,
    /// When the request arrived, RFC 3339.
    pub time: String,
    /// How long the prediction took, in microseconds.
    pub latency_us: u64,
    /// The HTTP status answered.
    pub status: u16,
    /// The request's inputs.
    pub inputs: Value,
    /// The model's outputs (`null` when it failed).
    pub outputs: Value,
}
