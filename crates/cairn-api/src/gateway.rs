//! Cairn's prediction API: `POST /models/NAME/predict`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /models/NAME/predict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictRequest {
    /// Named features (`{"mean_radius": 19.5, ...}`), a batch
    /// (`{"instances": [...]}`) or, for process models, whatever the model
    /// reads.
    pub request: Value,
}

/// A prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prediction {
    /// The model's answer (ONNX classifiers: `label` and `probabilities`).
    pub response: Value,
    /// The inference id, to attach business metrics and labels to later
    /// (also in the `cairn-inference-id` header).
    pub uuid: String,
    /// The version that answered.
    pub model: PredictedBy,
}

/// The model version that answered a prediction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PredictedBy {
    /// The model's project.
    pub project: Option<String>,
    /// The model.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The commit that version was deployed from.
    pub commit: String,
}
