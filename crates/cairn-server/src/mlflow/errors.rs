//! MLflow's failures: `{"error_code": "...", "message": "..."}` with the
//! HTTP status MLflow's server answers, from the store's refusals, the
//! handlers' own checks and (through [`refusals`]) the answers of the
//! guard and the authentication layer on MLflow's paths.

use crate::auth::Denied;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorBody;
use cairn_api::mlflow::MlflowError;
use cairn_store::tracking::TrackingError;

/// `INVALID_PARAMETER_VALUE`.
pub const INVALID_PARAMETER_VALUE: &str = "INVALID_PARAMETER_VALUE";
/// `RESOURCE_DOES_NOT_EXIST`.
pub const RESOURCE_DOES_NOT_EXIST: &str = "RESOURCE_DOES_NOT_EXIST";
/// `RESOURCE_ALREADY_EXISTS`.
pub const RESOURCE_ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";
/// `ENDPOINT_NOT_FOUND`: the client tries another endpoint on this one.
pub const ENDPOINT_NOT_FOUND: &str = "ENDPOINT_NOT_FOUND";
/// `MALFORMED_REQUEST`: a body that is not JSON.
pub const MALFORMED_REQUEST: &str = "MALFORMED_REQUEST";
/// `PERMISSION_DENIED`.
pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
/// `UNAUTHENTICATED`.
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
/// `INTERNAL_ERROR`.
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";

/// A failure, answered as MLflow answers it.
#[derive(Debug, PartialEq, Eq)]
pub struct MlError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: MlflowError,
}

impl MlError {
    /// `status` with MLflow's `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> MlError {
        MlError {
            status,
            body: MlflowError::new(code, message),
        }
    }

    /// 400 `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::BAD_REQUEST, INVALID_PARAMETER_VALUE, message)
    }

    /// 404 `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::NOT_FOUND, RESOURCE_DOES_NOT_EXIST, message)
    }

    /// 403 `PERMISSION_DENIED`.
    pub fn forbidden(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::FORBIDDEN, PERMISSION_DENIED, message)
    }

    /// 413 `INVALID_PARAMETER_VALUE`: a body over `limit` bytes.
    pub fn too_large(what: &str, limit: u64) -> MlError {
        MlError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_PARAMETER_VALUE,
            format!("{what} is larger than the limit of {limit} bytes"),
        )
    }

    /// 500 `INTERNAL_ERROR`, logged; the caller is told little.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> MlError {
        tracing::error!("{context}: {error}");
        MlError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL_ERROR,
            format!("{context} failed; the server's log says why"),
        )
    }
}

impl From<TrackingError> for MlError {
    fn from(e: TrackingError) -> MlError {
        match e {
            TrackingError::NotFound(m) => MlError::not_found(m),
            TrackingError::AlreadyExists(m) => {
                MlError::new(StatusCode::BAD_REQUEST, RESOURCE_ALREADY_EXISTS, m)
            }
            TrackingError::Invalid(m) => MlError::invalid(m),
            TrackingError::Store(e) => MlError::internal("the tracking store", e),
        }
    }
}

impl From<Denied> for MlError {
    fn from(d: Denied) -> MlError {
        let code = if d.status == StatusCode::UNAUTHORIZED {
            UNAUTHENTICATED
        } else {
            PERMISSION_DENIED
        };
        MlError::new(d.status, code, d.message)
    }
}

impl IntoResponse for MlError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A handler's result.
pub type MlResult<T> = Result<T, MlError>;

/// Whether `path` is one of MLflow's (the tracking API, the artifact
/// service, the ones the web UI's code paths use).
pub fn is_mlflow_path(path: &str) -> bool {
    ["/api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// MLflow's code for a status Cairn's layers answered with.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => UNAUTHENTICATED,
        StatusCode::FORBIDDEN => PERMISSION_DENIED,
        StatusCode::NOT_FOUND => RESOURCE_DOES_NOT_EXIST,
        s if s.is_client_error() => INVALID_PARAMETER_VALUE,
        _ => INTERNAL_ERROR,
    }
}

/// The middleware (outside the guard and the authentication layer): on
/// MLflow's paths, a Cairn error body (`{"error": ...}`: a refused host,
/// origin or content type, a missing or rejected token) becomes MLflow's,
/// so that the client shows its message with the right error code.
pub async fn refusals(request: Request, next: Next) -> Response {
    if !is_mlflow_path(request.uri().path()) {
        return next.run(request).await;
    }
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if let Some(refused) = agent.and_then(unsupported_client) {
        return refused.into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 16).await else {
        return MlError::new(status, code_of(status), "the request was refused").into_response();
    };
    let Ok(cairn) = serde_json::from_slice::<ErrorBody>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let mut answer = MlError::new(status, code_of(status), cairn.error).into_response();
    if let Some(v) = parts.headers.get(header::WWW_AUTHENTICATE) {
        answer
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, v.clone());
    }
    answer
}

/// The oldest MLflow client whose REST protocol Cairn speaks.
pub const OLDEST_CLIENT: u32 = 2;

/// A refusal of an MLflow Python client older than [`OLDEST_CLIENT`]
/// (`User-Agent: mlflow-python-client/X.Y.Z`), naming its version.
pub fn unsupported_client(user_agent: &str) -> Option<MlError> {
    let version = user_agent
        .split_whitespace()
        .find_map(|p| p.strip_prefix("mlflow-python-client/"))?;
    let major: u32 = version.split('.').next()?.parse().ok()?;
    (major < OLDEST_CLIENT).then(|| {
        MlError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            format!(
                "MLflow client {version} is not supported: Cairn speaks the REST protocol of MLflow {OLDEST_CLIENT}.x and 3.x (tested with 3.18); upgrade with `pip install 'mlflow-skinny>={OLDEST_CLIENT}'`"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_are_refused_naming_their_version() {
        let e = unsupported_client("mlflow-python-client/1.30.1").unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.body.message.contains("1.30.1"), "{}", e.body.message);
        assert!(unsupported_client("mlflow-python-client/3.18.0").is_none());
        assert!(unsupported_client("mlflow-python-client/2.9.2").is_none());
        assert!(unsupported_client("curl/8.0").is_none());
    }

    #[test]
    fn store_refusals_map_to_mlflow_codes() {
        let e = MlError::from(TrackingError::NotFound("no run `x`".into()));
        assert_eq!(
            (e.status, e.body.error_code.as_str()),
            (StatusCode::NOT_FOUND, RESOURCE_DOES_NOT_EXIST)
        );
        let e = MlError::from(TrackingError::AlreadyExists("taken".into()));
        assert_eq!(
            (e.status, e.body.error_code.as_str()),
            (StatusCode::BAD_REQUEST, RESOURCE_ALREADY_EXISTS)
        );
        let e = MlError::from(TrackingError::Invalid("bad".into()));
        assert_eq!(e.body.error_code, INVALID_PARAMETER_VALUE);
        let e = MlError::from(Denied::unauthenticated("who?"));
        assert_eq!(
            (e.status, e.body.error_code.as_str()),
            (StatusCode::UNAUTHORIZED, UNAUTHENTICATED)
        );
        assert!(is_mlflow_path("/api/2.0/mlflow/runs/get"));
        assert!(is_mlflow_path("/api/2.0/mlflow-artifacts/artifacts/1/x"));
        assert!(is_mlflow_path("/ajax-api/2.0/mlflow/runs/get"));
        assert!(!is_mlflow_path("/api/v1/status"));
    }
}
