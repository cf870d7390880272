//! The monitoring routes: business metrics and feedback by inference UUID,
//! and the aggregate report.

// Handlers return ready-made error responses by value, as axum does.
#![allow(clippy::result_large_err)]

use crate::contract::ToApi;
use crate::gateway::{GatewayState, find};
use crate::names::NamePath;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_api::ErrorBody;
use cairn_api::drift::{DriftQuery, DriftSeries};
use cairn_api::monitoring::{
    AggregateQuery, AggregateReport, FeedbackMatched, FeedbackRequest, MetricsRecorded,
    MetricsRequest,
};
use cairn_monitor::aggregate::parse_window;
use cairn_monitor::ingest::{parse_feedback, parse_metrics};
use cairn_monitor::summary::report;
use cairn_spec::ResourceKey;
use cairn_store::monitoring::{Recorded, record_feedback, record_metrics};
use serde_json::Value;

/// The largest body the monitoring endpoints read (feedback comes by the
/// thousands).
const MAX_BODY: usize = 32 << 20;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(message))).into_response()
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
fn recorded_status(r: &Recorded) -> StatusCode {
    if r.recorded == 0 && !r.unknown.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}

/// The UUIDs of no prediction of the model.
fn unknown_uuids(r: &Recorded) -> Vec<String> {
    r.unknown.iter().map(ToString::to_string).collect()
}

/// Attaches business metrics to predictions by their inference id, or to
/// the model as a whole.
#[utoipa::path(post, path = "/models/{name}/metrics", tag = "gateway",
    params(("name" = String, Path, description = "The model")),
    request_body = MetricsRequest,
    responses(
        (status = 200, description = "Recorded", body = MetricsRecorded),
        (status = 400, description = "The body is not metrics", body = ErrorBody),
        (status = 401, description = "The model requires an access key", body = ErrorBody),
        (status = 404, description = "No such model, or every UUID is unknown (then a MetricsRecorded)", body = MetricsRecorded),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
    ))]
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
        Ok(Ok(r)) => (
            recorded_status(&r),
            axum::Json(MetricsRecorded {
                recorded: r.recorded as u64,
                unknown_uuids: unknown_uuids(&r),
            }),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Ground truth for predictions by their inference id: JSON, JSON lines
/// (`application/x-ndjson`) or CSV (`text/csv` with `uuid` and `label`
/// columns). Re-sending a UUID replaces its label.
#[utoipa::path(post, path = "/models/{name}/feedback", tag = "gateway",
    params(("name" = String, Path, description = "The model")),
    request_body(content(
        (FeedbackRequest = "application/json"),
        (String = "application/x-ndjson"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "Matched", body = FeedbackMatched),
        (status = 400, description = "The body is not feedback", body = ErrorBody),
        (status = 401, description = "The model requires an access key", body = ErrorBody),
        (status = 404, description = "No such model, or every UUID is unknown (then a FeedbackMatched)", body = FeedbackMatched),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
    ))]
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
        Ok(Ok(r)) => (
            recorded_status(&r),
            axum::Json(FeedbackMatched {
                matched: r.recorded as u64,
                unknown_uuids: unknown_uuids(&r),
                replaced: r.replaced as u64,
            }),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The RFC 3339 time of query parameter `key`, as ms since the epoch.
pub(crate) fn parse_time(value: Option<&String>, key: &str) -> Result<Option<i64>, String> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("`{key}`: `{v}` is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

/// A model's predictions, labels and business metrics aggregated per
/// version and window: `to` defaults to now, `from` to a day before `to`,
/// `window` to an hour.
#[utoipa::path(get, path = "/api/v1/models/{name}/metrics/aggregate", tag = "models",
    params(("name" = String, Path, description = "The model"), AggregateQuery),
    responses(
        (status = 200, description = "The report", body = AggregateReport),
        (status = 400, description = "A bad time or window", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub async fn get_aggregate(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    Query(q): Query<AggregateQuery>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let parsed = (|| {
        let to = parse_time(q.to.as_ref(), "to")?
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = parse_time(q.from.as_ref(), "from")?.unwrap_or(to - 86_400_000);
        if from >= to {
            return Err("`from` must be before `to`".to_string());
        }
        let window = parse_window(q.window.as_deref().unwrap_or("hour"))?;
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

/// A model's drift verdicts, oldest first: `to` defaults to now, `from` to
/// a day before `to`.
#[utoipa::path(get, path = "/api/v1/models/{name}/drift", tag = "models",
    params(("name" = String, Path, description = "The model"), DriftQuery),
    responses(
        (status = 200, description = "The verdicts", body = DriftSeries),
        (status = 400, description = "A bad time", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Several projects serve a model of that name", body = ErrorBody),
    ))]
pub async fn get_drift(
    State(s): State<GatewayState>,
    Path(path): Path<NamePath>,
    Query(q): Query<DriftQuery>,
) -> Response {
    let endpoint = match find(&s, &path.scoped()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let parsed = (|| {
        let to = parse_time(q.to.as_ref(), "to")?
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = parse_time(q.from.as_ref(), "from")?.unwrap_or(to - 86_400_000);
        if from >= to {
            return Err("`from` must be before `to`".to_string());
        }
        Ok((from, to))
    })();
    let (from, to) = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
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
        Ok(Ok(verdicts)) => axum::Json(DriftSeries {
            project: endpoint.key.project.as_ref().map(|p| p.to_string()),
            name: endpoint.key.name.to_string(),
            monitored: drift.is_some(),
            plugin: drift.as_ref().map(|d| d.plugin.to_string()),
            threshold: drift.as_ref().map(|d| d.threshold),
            from,
            to,
            verdicts: verdicts.to_api(),
        })
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
