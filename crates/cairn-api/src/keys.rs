//! Access keys of a model: `/api/v1/models/NAME/keys[/ID]`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// `key_` and 8 hex digits.
    pub id: String,
    /// The project of the model the key opens.
    pub project: Option<String>,
    /// The model the key opens.
    pub model: String,
    /// The secret's beginning (`cairn_` and 8 hex digits), for people.
    pub prefix: String,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// When it was revoked, RFC 3339, if it was.
    pub revoked_at: Option<String>,
}

/// `GET /api/v1/models/NAME/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The model's keys, revoked ones included.
    pub keys: Vec<KeyInfo>,
}

/// The answer to `POST /api/v1/models/NAME/keys` (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// The secret, to send as `Authorization: Bearer KEY`; shown only once.
    pub key: String,
    /// The key.
    pub info: KeyInfo,
    /// A reminder that the secret is not kept.
    pub note: String,
}

/// The answer to `DELETE /api/v1/models/NAME/keys/ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedKey {
    /// The id of the key revoked.
    pub revoked: String,
}
