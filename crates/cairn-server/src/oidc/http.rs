//! The HTTP client the OpenID Connect flow talks to the provider with:
//! hyper over rustls (ring, the system's roots), no redirects followed (a
//! 3xx comes back as it is, so a provider cannot point the server at
//! another address), `https://` only except on loopback, a time limit per
//! request and a size limit on answers.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::http::{Request, Response, Uri};
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use rustls::ClientConfig;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long one request to the provider may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read from the provider (metadata, keys, tokens).
const MAX_ANSWER: usize = 1024 * 1024;

/// Why a request to the provider failed. Messages name the URL and the
/// cause, never a request's headers or body (which carry credentials).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is plain `http://` on a host that is not loopback.
    #[error("refusing {url}: only https:// is allowed, or http:// on a loopback address")]
    Insecure {
        /// The URL.
        url: String,
    },
    /// The request could not be sent or its answer read.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause, with its sources.
        reason: String,
    },
    /// No complete answer within [`REQUEST_TIMEOUT`].
    #[error("{url}: no answer within {:?}", REQUEST_TIMEOUT)]
    Timeout {
        /// The URL.
        url: String,
    },
}

/// Whether a URL may be fetched: `https://`, or `http://` on a loopback
/// host (`localhost`, 127.0.0.0/8, `::1`).
pub fn allowed(uri: &Uri) -> bool {
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => uri.host().is_some_and(is_loopback),
        _ => false,
    }
}

/// Whether a host names this machine.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// A client trusting the system's root certificates. Without any,
    /// `require_roots` decides: an error, or a client that can reach
    /// plain-HTTP loopback addresses only (every TLS handshake fails).
    pub fn new(require_roots: bool) -> Result<HttpClient, String> {
        let builder = || {
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS configuration: {e}"))
        };
        let tls = match builder()?.with_native_roots() {
            Ok(roots) => roots.with_no_client_auth(),
            Err(e) if require_roots => return Err(format!("TLS root certificates: {e}")),
            Err(_) => builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends one request and reads its whole answer; a redirect is
    /// answered as it is, not followed.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = request.uri().to_string();
        if !allowed(request.uri()) {
            return Err(HttpError::Insecure { url });
        }
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| transport(&url, &e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| transport(&url, e.as_ref()))?
                .to_bytes();
            Ok(Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout { url: url.clone() })?
    }
}

/// A transport error with its chain of sources.
fn transport(url: &str, error: &(dyn std::error::Error + 'static)) -> HttpError {
    HttpError::Transport {
        url: url.to_string(),
        reason: super::chain(error),
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        for url in [
            "https://login.example.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.0.0.2/token",
            "http://localhost:9000/",
            "http://[::1]:9000/",
        ] {
            assert!(allowed(&url.parse().unwrap()), "{url}");
        }
        for url in [
            "http://login.example.com/token",
            "http://10.0.0.1/token",
            "http://localhost.example.com/",
            "ftp://127.0.0.1/",
        ] {
            assert!(!allowed(&url.parse().unwrap()), "{url}");
        }
    }
}
