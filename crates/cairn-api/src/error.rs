//! The error body every route answers a failure with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A failure: `{"error": "..."}`, and the inference id when a prediction
/// failed after it was logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The failed prediction's inference id (its event is logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

impl ErrorBody {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: message.into(),
            uuid: None,
        }
    }
}
