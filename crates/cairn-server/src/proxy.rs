//! Reverse proxy to applications.
//!
//! Applications are served under `/apps/NAME/`. [`forward`] hands one request
//! to the application's upstream address: the `/apps/NAME` prefix is stripped
//! from the path, `X-Forwarded-*` headers are added, hop-by-hop headers are
//! removed, and bodies are streamed both ways. WebSocket upgrades (Shiny,
//! Streamlit, Jupyter and friends need them) are accepted here and bridged to
//! a WebSocket connection to the upstream, message by message.
//!
//! The original `Host` header is passed through unchanged, so applications
//! that check `Origin` against `Host` (Tornado-based ones do) keep working.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri, Version, request};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, protocol::frame::coding};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one side of a bridged WebSocket may take to finish closing after
/// the other side has closed.
const WS_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The HTTP client used to reach applications. Cheap to clone: clones share
/// one connection pool.
#[derive(Clone, Debug)]
pub struct ProxyClient {
    client: Client<HttpConnector, Body>,
}

impl ProxyClient {
    /// A client with a connection pool, for plain-HTTP upstreams.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            // The original Host header is forwarded as is; set one only when
            // the incoming request had none.
            .set_host(true)
            .build(connector);
        Self { client }
    }
}

impl Default for ProxyClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Forwards one request to an application listening on `upstream`.
///
/// `prefix` is the path the application is mounted at, e.g. `/apps/demo`; it
/// is stripped from the path the upstream sees (`/apps/demo/x?y=1` becomes
/// `/x?y=1`, `/apps/demo` becomes `/`) and sent along as
/// `X-Forwarded-Prefix`. A path that does not start with `prefix` (say, the
/// router already stripped it) is forwarded unchanged.
///
/// Returns `502 Bad Gateway` when the upstream cannot be reached.
pub async fn forward(
    client: &ProxyClient,
    req: Request,
    upstream: SocketAddr,
    prefix: &str,
) -> Response {
    let prefix = normalize_prefix(prefix);
    let (mut parts, body) = req.into_parts();
    let path_and_query = upstream_path_and_query(&parts.uri, prefix);

    if is_websocket_upgrade(&parts.headers) {
        return forward_websocket(&mut parts, upstream, prefix, &path_and_query).await;
    }

    let uri = match Uri::try_from(format!("http://{upstream}{path_and_query}")) {
        Ok(uri) => uri,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("invalid request path: {e}"),
            );
        }
    };

    let mut headers = parts.headers.clone();
    remove_hop_by_hop(&mut headers);
    remove_cairn_credentials(&mut headers);
    // Our own server already answered any `Expect: 100-continue`.
    headers.remove(header::EXPECT);
    add_forwarded_headers(&mut headers, &parts, prefix);

    let mut upstream_req = axum::http::Request::new(body);
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.uri_mut() = uri;
    *upstream_req.version_mut() = Version::HTTP_11;
    *upstream_req.headers_mut() = headers;

    match client.client.request(upstream_req).await {
        Ok(resp) => {
            let (mut resp_parts, incoming) = resp.into_parts();
            remove_hop_by_hop(&mut resp_parts.headers);
            Response::from_parts(resp_parts, Body::new(incoming))
        }
        Err(e) => unreachable_response(prefix, upstream, &e),
    }
}

/// `/apps/demo/` and `/apps/demo` are the same mount point.
fn normalize_prefix(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// The path and query the upstream sees: `prefix` stripped, never empty.
fn upstream_path_and_query(uri: &Uri, prefix: &str) -> String {
    let path = uri.path();
    let stripped = match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        // Not under the prefix at a segment boundary: leave it alone.
        _ => path,
    };
    let stripped = if stripped.is_empty() { "/" } else { stripped };
    match uri.query() {
        Some(q) => format!("{stripped}?{q}"),
        None => stripped.to_owned(),
    }
}

/// The application's name, for messages: the last segment of the prefix.
fn app_name(prefix: &str) -> &str {
    prefix.rsplit('/').find(|s| !s.is_empty()).unwrap_or(prefix)
}

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn unreachable_response(prefix: &str, upstream: SocketAddr, error: &dyn StdError) -> Response {
    let name = app_name(prefix);
    let detail = error_chain(error);
    tracing::warn!(app = name, %upstream, error = %detail, "application is not reachable");
    plain(
        StatusCode::BAD_GATEWAY,
        format!("application {name} is not reachable: {detail}\n"),
    )
}

/// `error: source: source's source ...`, skipping repeats.
fn error_chain(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// True when the comma-separated header `name` contains `token`
/// (ASCII case-insensitive), in any of its occurrences.
fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, &header::CONNECTION, "upgrade")
        && header_has_token(headers, &header::UPGRADE, "websocket")
}

/// Removes what signed the caller in to Cairn — a Cairn API token in
/// `Authorization`, the session cookie — so that an application never
/// holds the credentials of the people who use it. Its own cookies and
/// other `Authorization` schemes go along.
pub(crate) fn remove_cairn_credentials(headers: &mut HeaderMap) {
    let is_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(7..)
                .is_some_and(|t| t.starts_with(cairn_store::tokens::TOKEN_PREFIX))
        });
    if is_token {
        headers.remove(header::AUTHORIZATION);
    }
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(name, _)| name);
            !c.is_empty() && name.trim() != crate::auth::session::COOKIE
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Removes hop-by-hop headers, including any named in `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::try_from(t.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Adds `X-Forwarded-{Prefix,For,Proto,Host}`.
fn add_forwarded_headers(headers: &mut HeaderMap, parts: &request::Parts, prefix: &str) {
    const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

    let prefix_value = if prefix.is_empty() { "/" } else { prefix };
    if let Ok(v) = HeaderValue::from_str(prefix_value) {
        headers.insert(X_FORWARDED_PREFIX, v);
    }

    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        let ip = peer.ip().to_string();
        let existing: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if existing.is_empty() {
            ip
        } else {
            format!("{}, {ip}", existing.join(", "))
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }

    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));

    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// Accepts a WebSocket upgrade and bridges it to `ws://upstream/path`.
///
/// The upstream connection is made first, so that an unreachable upstream
/// gives a 502 and an upstream refusal (403, 404, ...) is relayed as is.
async fn forward_websocket(
    parts: &mut request::Parts,
    upstream: SocketAddr,
    prefix: &str,
    path_and_query: &str,
) -> Response {
    let mut upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };

    let mut upstream_req = match format!("ws://{upstream}{path_and_query}").into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("invalid request path: {e}"),
            );
        }
    };
    {
        // End-to-end headers (cookies, Origin, auth, Sec-WebSocket-Protocol)
        // go along; tungstenite makes its own key, version and Connection.
        let mut headers = parts.headers.clone();
        remove_hop_by_hop(&mut headers);
        remove_cairn_credentials(&mut headers);
        for name in [
            header::SEC_WEBSOCKET_KEY,
            header::SEC_WEBSOCKET_VERSION,
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::SEC_WEBSOCKET_ACCEPT,
            header::CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        add_forwarded_headers(&mut headers, parts, prefix);
        let target = upstream_req.headers_mut();
        let mut last = None;
        for (name, value) in headers {
            // `HeaderMap`'s owning iterator yields a name only for the first
            // of repeated values.
            if let Some(name) = name {
                last = Some(name);
            }
            let Some(name) = last.clone() else { continue };
            // tungstenite writes header values as text; one it cannot
            // write would fail the whole handshake, so leave it out.
            if value.to_str().is_err() {
                continue;
            }
            if name == header::HOST {
                target.insert(name, value);
            } else {
                target.append(name, value);
            }
        }
    }

    let (socket, response) =
        match tokio_tungstenite::connect_async_with_config(upstream_req, None, true).await {
            Ok(ok) => ok,
            Err(tungstenite::Error::Http(resp)) => {
                // The upstream answered, but not with a 101: relay its answer.
                let (mut resp_parts, body) = (*resp).into_parts();
                remove_hop_by_hop(&mut resp_parts.headers);
                resp_parts.headers.remove(header::CONTENT_LENGTH);
                let body = body.map(Body::from).unwrap_or_else(Body::empty);
                return Response::from_parts(resp_parts, body);
            }
            Err(e) => return unreachable_response(prefix, upstream, &e),
        };

    if let Some(protocol) = response.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        upgrade.set_selected_protocol(protocol.clone());
    }

    let name = app_name(prefix).to_owned();
    upgrade
        .on_failed_upgrade(move |e| {
            tracing::debug!(app = name, error = %e, "websocket upgrade failed");
        })
        .on_upgrade(move |client| bridge(client, socket))
}

/// Pumps messages both ways until either side closes; then gives the other
/// side [`WS_CLOSE_GRACE`] to finish its closing handshake.
async fn bridge(client: WebSocket, upstream: WebSocketStream<MaybeTlsStream<TcpStream>>) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();

    let client_to_upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            let closing = matches!(msg, ws::Message::Close(_));
            if upstream_tx.send(to_upstream(msg)).await.is_err() || closing {
                break;
            }
        }
        let _ = upstream_tx.close().await;
    };
    let upstream_to_client = async {
        while let Some(Ok(msg)) = upstream_rx.next().await {
            let Some(msg) = to_client(msg) else { continue };
            let closing = matches!(msg, ws::Message::Close(_));
            if client_tx.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::pin!(client_to_upstream, upstream_to_client);

    tokio::select! {
        () = &mut client_to_upstream => {
            let _ = tokio::time::timeout(WS_CLOSE_GRACE, &mut upstream_to_client).await;
        }
        () = &mut upstream_to_client => {
            let _ = tokio::time::timeout(WS_CLOSE_GRACE, &mut client_to_upstream).await;
        }
    }
}

fn to_upstream(msg: ws::Message) -> tungstenite::Message {
    use tungstenite::Message as T;
    match msg {
        ws::Message::Text(text) => match tungstenite::Utf8Bytes::try_from(Bytes::from(text)) {
            Ok(text) => T::Text(text),
            // Cannot happen: axum checked the text was UTF-8.
            Err(_) => T::Close(None),
        },
        ws::Message::Binary(data) => T::Binary(data),
        ws::Message::Ping(data) => T::Ping(data),
        ws::Message::Pong(data) => T::Pong(data),
        ws::Message::Close(frame) => T::Close(frame.and_then(|f| {
            Some(tungstenite::protocol::CloseFrame {
                code: coding::CloseCode::from(f.code),
                reason: tungstenite::Utf8Bytes::try_from(Bytes::from(f.reason)).ok()?,
            })
        })),
    }
}

fn to_client(msg: tungstenite::Message) -> Option<ws::Message> {
    use tungstenite::Message as T;
    Some(match msg {
        T::Text(text) => match ws::Utf8Bytes::try_from(Bytes::from(text)) {
            Ok(text) => ws::Message::Text(text),
            // Cannot happen: tungstenite checked the text was UTF-8.
            Err(_) => ws::Message::Close(None),
        },
        T::Binary(data) => ws::Message::Binary(data),
        T::Ping(data) => ws::Message::Ping(data),
        T::Pong(data) => ws::Message::Pong(data),
        T::Close(frame) => ws::Message::Close(frame.and_then(|f| {
            Some(ws::CloseFrame {
                code: u16::from(f.code),
                reason: ws::Utf8Bytes::try_from(Bytes::from(f.reason)).ok()?,
            })
        })),
        // Raw frames are never produced when reading.
        T::Frame(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_never_see_cairn_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cairn_tok_0123abcd_ffff"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; cairn_session=abc; app_sid=42"),
        );
        remove_cairn_credentials(&mut headers);
        assert!(headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(headers[header::COOKIE], "theme=dark; app_sid=42");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("cairn_session=abc"),
        );
        remove_cairn_credentials(&mut headers);
        assert_eq!(headers[header::AUTHORIZATION], "Basic dTpw");
        assert!(headers.get(header::COOKIE).is_none());
    }

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::routing::{any, get, post};
    use http_body_util::{BodyExt, Full};
    use tokio::net::TcpListener;
    use tungstenite::Message as T;

    /// An application: `/hello` echoes what it saw, `/ws` echoes messages,
    /// `POST /echo` echoes the body.
    async fn start_upstream() -> SocketAddr {
        async fn hello(
            req: Request,
        ) -> axum::Json<std::collections::BTreeMap<&'static str, Option<String>>> {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            axum::Json(
                [
                    ("path", Some(req.uri().path().to_string())),
                    ("query", req.uri().query().map(str::to_string)),
                    ("prefix", header("x-forwarded-prefix")),
                    ("for", header("x-forwarded-for")),
                    ("proto", header("x-forwarded-proto")),
                    ("fwd_host", header("x-forwarded-host")),
                    ("host", header("host")),
                    ("x_drop", header("x-drop")),
                    ("keep", header("x-keep")),
                ]
                .into_iter()
                .collect(),
            )
        }
        async fn echo(body: Bytes) -> Bytes {
            body
        }
        async fn ws_echo(ws: WebSocketUpgrade) -> Response {
            ws.protocols(["proto-a"])
                .on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if let ws::Message::Text(t) = &msg
                            && t.as_str() == "close-me"
                        {
                            let _ = socket
                                .send(ws::Message::Close(Some(ws::CloseFrame {
                                    code: 4000,
                                    reason: "bye from upstream".into(),
                                })))
                                .await;
                            continue;
                        }
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
        }
        async fn slow() -> Body {
            // "first" now, "second" much later: only a streaming proxy lets
            // the client see "first" before the wait is over.
            let chunks = futures_util::stream::unfold(0, |n| async move {
                match n {
                    0 => Some((Ok::<_, std::io::Error>(Bytes::from("first")), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Some((Ok(Bytes::from("second")), 2))
                    }
                    _ => None,
                }
            });
            Body::from_stream(chunks)
        }
        async fn first_chunk(body: Body) -> Bytes {
            // Answers with the first chunk, without waiting for the rest.
            let mut data = body.into_data_stream();
            data.next().await.and_then(Result::ok).unwrap_or_default()
        }
        let app = Router::new()
            .route("/hello", get(hello))
            .route("/slow", get(slow))
            .route("/first-chunk", post(first_chunk))
            .route("/", get(|| async { "root" }))
            .route("/echo", post(echo))
            .route("/ws", get(ws_echo))
            .route(
                "/forbidden-ws",
                get(|| async { (StatusCode::FORBIDDEN, "no") }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// The front server: `/apps/demo/...` goes to `upstream`.
    async fn start_front(upstream: SocketAddr) -> SocketAddr {
        #[derive(Clone)]
        struct St {
            client: ProxyClient,
            upstream: SocketAddr,
        }
        async fn handler(State(st): State<St>, req: Request) -> Response {
            forward(&st.client, req, st.upstream, "/apps/demo").await
        }
        async fn handler_rest(
            State(st): State<St>,
            Path(_rest): Path<String>,
            req: Request,
        ) -> Response {
            forward(&st.client, req, st.upstream, "/apps/demo").await
        }
        let app = Router::new()
            .route("/apps/demo", any(handler))
            .route("/apps/demo/", any(handler))
            .route("/apps/demo/{*rest}", any(handler_rest))
            .with_state(St {
                client: ProxyClient::new(),
                upstream,
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        addr
    }

    fn http_client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build(HttpConnector::new())
    }

    async fn get_json(front: SocketAddr, path: &str) -> serde_json::Value {
        let req = axum::http::Request::get(format!("http://{front}{path}"))
            .header("connection", "keep-alive, x-drop")
            .header("x-drop", "1")
            .header("x-keep", "2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = http_client().request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn strips_prefix() {
        let p = |uri: &str, prefix: &str| {
            upstream_path_and_query(&uri.parse().unwrap(), normalize_prefix(prefix))
        };
        assert_eq!(p("/apps/demo/x?y=1", "/apps/demo"), "/x?y=1");
        assert_eq!(p("/apps/demo", "/apps/demo"), "/");
        assert_eq!(p("/apps/demo/", "/apps/demo/"), "/");
        assert_eq!(p("/apps/demo?a=b", "/apps/demo"), "/?a=b");
        assert_eq!(p("/apps/demox/y", "/apps/demo"), "/apps/demox/y");
        assert_eq!(p("/x", "/apps/demo"), "/x");
        assert_eq!(app_name("/apps/demo/"), "demo");
    }

    #[tokio::test]
    async fn forwards_path_query_and_headers() {
        let front = start_front(start_upstream().await).await;
        let v = get_json(front, "/apps/demo/hello?y=1&z=%20").await;
        assert_eq!(v["path"], "/hello");
        assert_eq!(v["query"], "y=1&z=%20");
        assert_eq!(v["prefix"], "/apps/demo");
        assert_eq!(v["for"], "127.0.0.1");
        assert_eq!(v["proto"], "http");
        assert_eq!(v["fwd_host"], front.to_string());
        assert_eq!(v["host"], front.to_string());
        assert_eq!(v["x_drop"], serde_json::Value::Null);
        assert_eq!(v["keep"], "2");
    }

    #[tokio::test]
    async fn bare_prefix_maps_to_root() {
        let front = start_front(start_upstream().await).await;
        for path in ["/apps/demo", "/apps/demo/"] {
            let req = axum::http::Request::get(format!("http://{front}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = http_client().request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"root", "{path}");
        }
    }

    #[tokio::test]
    async fn body_round_trip() {
        let front = start_front(start_upstream().await).await;
        let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let req = axum::http::Request::post(format!("http://{front}/apps/demo/echo"))
            .body(Full::new(Bytes::from(data.clone())))
            .unwrap();
        let resp = http_client().request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), data.len());
        assert!(body[..] == data[..]);
    }

    #[tokio::test]
    async fn response_body_is_streamed() {
        let front = start_front(start_upstream().await).await;
        let req = axum::http::Request::get(format!("http://{front}/apps/demo/slow"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), http_client().request(req))
            .await
            .expect("response headers came late")
            .unwrap();
        let mut body = resp.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first chunk was held back")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), "first");
    }

    #[tokio::test]
    async fn request_body_is_streamed() {
        let front = start_front(start_upstream().await).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let req = axum::http::Request::post(format!("http://{front}/apps/demo/first-chunk"))
            .body(Body::from_stream(chunks))
            .unwrap();
        tx.send(Bytes::from("chunk one")).await.unwrap();
        // The body is still open (`tx` is alive) when the answer comes back.
        let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
            .await
            .expect("the request body was held back")
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), "chunk one");
        drop(tx);
    }

    #[tokio::test]
    async fn websocket_echo_and_close() {
        let front = start_front(start_upstream().await).await;
        let mut req = format!("ws://{front}/apps/demo/ws?x=1")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("proto-a"),
        );
        let (mut socket, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "proto-a"
        );

        socket.send(T::text("hello")).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), T::text("hello"));

        let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        socket.send(T::binary(blob.clone())).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), T::binary(blob));

        socket
            .send(T::Close(Some(tungstenite::protocol::CloseFrame {
                code: coding::CloseCode::Normal,
                reason: "done".into(),
            })))
            .await
            .unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            let mut saw_close = false;
            while let Some(msg) = socket.next().await {
                match msg {
                    Ok(T::Close(frame)) => {
                        assert_eq!(frame.unwrap().code, coding::CloseCode::Normal);
                        saw_close = true;
                    }
                    Ok(other) => panic!("unexpected message {other:?}"),
                    Err(_) => break,
                }
            }
            saw_close
        })
        .await
        .unwrap();
        assert!(closed);
    }

    #[tokio::test]
    async fn websocket_close_from_upstream() {
        let front = start_front(start_upstream().await).await;
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{front}/apps/demo/ws"))
                .await
                .unwrap();
        socket.send(T::text("close-me")).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            T::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4000);
                assert_eq!(frame.reason.as_str(), "bye from upstream");
            }
            other => panic!("expected close, got {other:?}"),
        }
        // The closing handshake completes and the stream ends.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
        assert!(end.is_ok());
    }

    #[tokio::test]
    async fn websocket_refusal_is_relayed() {
        let front = start_front(start_upstream().await).await;
        let err = tokio_tungstenite::connect_async(format!("ws://{front}/apps/demo/forbidden-ws"))
            .await
            .unwrap_err();
        match err {
            tungstenite::Error::Http(resp) => assert_eq!(resp.status(), StatusCode::FORBIDDEN),
            other => panic!("expected an HTTP error, got {other}"),
        }
    }

    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr
    }

    #[tokio::test]
    async fn unreachable_upstream_is_502() {
        let front = start_front(closed_port().await).await;
        let req = axum::http::Request::get(format!("http://{front}/apps/demo/hello"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = http_client().request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.starts_with("application demo is not reachable: "),
            "{text}"
        );

        let err = tokio_tungstenite::connect_async(format!("ws://{front}/apps/demo/ws"))
            .await
            .unwrap_err();
        match err {
            tungstenite::Error::Http(resp) => assert_eq!(resp.status(), StatusCode::BAD_GATEWAY),
            other => panic!("expected an HTTP error, got {other}"),
        }
    }
}
