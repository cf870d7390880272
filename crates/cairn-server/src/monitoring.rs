//! The monitoring routes: business metrics and feedback by inference UUID,
//! and the aggregate report.

// Handlers return ready-made error responses by value, as axum does.
#![allow(clippy::result_large_err)]

use crate::gateway::{GatewayState, find};
use crate::names::NamePath;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_monitor::aggregate::parse_window;
use cairn_monitor::ingest::{parse_feedback, parse_metrics};
use cairn_monitor::summary::report;
use cairn_spec::ResourceKey;
use cairn_store::monitoring::{Recorded, record_feedback, record_metrics};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The largest body the monitoring endpoints read (feedback comes by the
/// thousands).
const MAX_BODY: usize = 32 << 20;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Finds the model, checks the caller's key, reads the body and its
/// content type.
async fn authorized_body(
    s: &GatewayState,
    path: &NamePath,
    req: Request,
) -> Result<(ResourceKey, Option<String>, Vec<u8>), Response> {
    let endpoint = find(s, &path.scoped())?;
    let (parts, body) = req.into_parts();
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.gateway.authorize(&endpoint, auth).map_err(|r| {
        (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED),
            axum::Json(r.body),
        )
            .into_response()
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    })?;
    Ok((endpoint.key.clone(), content_type, bytes.to_vec()))
}

/// 200 when something was recorded, 404 when everything was unknown.
fn recorded_answer(r: Recorded, count_key: &str) -> Response {
    let status = if r.recorded == 0 && !r.unknown.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let unknown: Vec<String> = r.unknown.iter().map(ToString::to_string).collect();
    let mut body = json!({count_key: r.recorded, "unknownUuids": unknown});
    if count_key == "matched" {
        body["replaced"] = json!(r.replaced);
    }
    (status, axum::Json(body)).into_response()
}

/// `POST /[projects/PROJECT/]models/NAME/metrics`.
pub async fn post_metrics(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    req: Request,
) -> Response {
    let (model, _, bytes) = match authorized_body(&s, &path, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|v| parse_metrics(&v))
    {
        Ok(items) => items,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || {
        record_metrics(&mut events.monitor(), &model, &items, now)
    })
    .await
    {
        Ok(Ok(r)) => recorded_answer(r, "recorded"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /[projects/PROJECT/]models/NAME/feedback`.
pub async fn post_feedback(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    req: Request,
) -> Response {
    let (model, content_type, bytes) = match authorized_body(&s, &path, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match parse_feedback(content_type.as_deref(), &bytes) {
        Ok(items) => items,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let now = chrono::Utc::now().timestamp_millis();
    match tokio::task::spawn_blocking(move || {
        record_feedback(&mut events.monitor(), &model, &items, now)
    })
    .await
    {
        Ok(Ok(r)) => recorded_answer(r, "matched"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The RFC 3339 time in query parameter `key`, as ms since the epoch.
pub(crate) fn parse_time(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    q.get(key)
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{key}`: `{v}` is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

/// `GET /api/v1/[projects/PROJECT/]models/NAME/metrics/aggregate?from=&to=&window=`:
/// `to` defaults to now, `from` to a day before `to`, `window` to an hour.
pub async fn get_aggregate(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let parsed = (|| {
        let to = parse_time(&q, "to")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = parse_time(&q, "from")?.unwrap_or(to - 86_400_000);
        if from >= to {
            return Err("`from` must be before `to`".to_string());
        }
        let window = parse_window(q.get("window").map_or("hour", String::as_str))?;
        Ok((from, to, window))
    })();
    let (from, to, window) = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let events = s.gateway.events.clone();
    let task = endpoint.spec.task;
    let model = endpoint.key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        report(&events.monitor(), &model, task, from, to, window)
    })
    .await;
    match answer {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/v1/[projects/PROJECT/]models/NAME/drift?from=&to=`: the
/// model's verdicts, oldest first; `to` defaults to now, `from` to a day
/// before `to`.
pub async fn get_drift(
    axum::extract::State(s): axum::extract::State<crate::gateway::GatewayState>,
    axum::extract::Path(path): axum::extract::Path<NamePath>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let fail = |status: StatusCode, message: String| {
        (status, axum::Json(serde_json::json!({"error": message}))).into_response()
    };
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let parsed = (|| {
        let to = parse_time(&q, "to")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = parse_time(&q, "from")?.unwrap_or(to - 86_400_000);
        if from >= to {
            return Err("`from` must be before `to`".to_string());
        }
        Ok((from, to))
    })();
    let (from, to) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let drift = endpoint
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.drift.clone());
    let events = s.gateway.events.clone();
    let model = endpoint.key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        cairn_store::drift::series(&events.monitor(), &model, from, to, 10_000)
    })
    .await;
    match answer {
        Ok(Ok(verdicts)) => axum::Json(serde_json::json!({
            "project": endpoint.key.project.as_ref().map(|p| p.as_str()),
            "name": endpoint.key.name.as_str(),
            "monitored": drift.is_some(),
            "plugin": drift.as_ref().map(|d| d.plugin.to_string()),
            "threshold": drift.as_ref().map(|d| d.threshold),
            "from": from,
            "to": to,
            "verdicts": verdicts,
        }))
        .into_response(),
        Ok(Err(e)) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
