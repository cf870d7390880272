//! The HTTP contract of Cairn: the request and response bodies of the
//! `/api/v1` API, the gateway and the dashboard, as serde types.
