//! The HTTP contract of Cairn: the request and response bodies of the
//! `/api/v1` API, the gateway (Cairn's prediction API and the Open Inference
//! Protocol v2), monitoring, webhooks and the dashboard, as serde types.
//!
//! The server builds every JSON answer from these types and the CLI and the
//! dashboard read them back through them; their `utoipa` schemas make the
//! components of the OpenAPI document (`specs/openapi.json`). Field names
//! are those on the wire: camelCase, except where a protocol says otherwise
//! (the Open Inference Protocol's snake_case, a GPU's `memory_total_bytes`).

pub mod audit;
pub mod drift;
pub mod error;
pub mod gateway;
pub mod hooks;
pub mod inference;
pub mod keys;
pub mod metrics;
pub mod monitoring;
pub mod oip;
pub mod registry;
pub mod runs;
pub mod status;

pub use error::ErrorBody;

/// Deserializes a field that is there, `null` or not, as `Some`: with
/// `#[serde(default)]`, an absent field stays `None`, so that
/// `Option<Option<T>>` tells "absent" from "`null`".
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
