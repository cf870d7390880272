//! A small, real OpenID provider for tests: an axum server on a free port
//! of 127.0.0.1, on its own thread and tokio runtime, stopped on drop.
//!
//! It knows one client (id, secret, redirect URI) and "logs in" whichever
//! user the test chose ([`OidcProvider::login_as`]), without a login page:
//!
//! - `GET /.well-known/openid-configuration`: its metadata;
//! - `GET /jwks`: its RSA public key;
//! - `GET /authorize`: checks `client_id` and `redirect_uri` (400 when
//!   either is not the client's), then requires `response_type=code`, the
//!   `openid` scope and PKCE (`code_challenge` with
//!   `code_challenge_method=S256`), and answers 302 to
//!   `redirect_uri?code=...&state=...` (or `?error=...` as OAuth says);
//! - `POST /token`: checks the client's authentication
//!   (`client_secret_basic` or `client_secret_post`), the code (known,
//!   unexpired, used once: a second use is refused), the `redirect_uri`,
//!   and the PKCE `code_verifier` against the challenge; answers an
//!   access token and an `id_token` signed RS256 (`iss`, `aud`, `sub`,
//!   `iat`, `exp`, `nonce`, `email`, `name`, `groups`, `at_hash`).
//!
//! [`OidcProvider::fault_next_token`] spoils the next ID token (another
//! key, another audience, expired, ...) for the negative cases.

mod signing;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use signing::Keys;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an authorization code may wait before it is exchanged.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// How long an ID token is valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The user the provider logs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    /// `sub`.
    pub subject: String,
    /// `email`, if any.
    pub email: Option<String>,
    /// `name`, if any.
    pub name: Option<String>,
    /// `groups` (always present in the token, maybe empty).
    pub groups: Vec<String>,
}

impl TestUser {
    /// A user with a subject, an email address, a name and groups.
    pub fn new(subject: &str, email: &str, name: &str, groups: &[&str]) -> TestUser {
        TestUser {
            subject: subject.to_string(),
            email: Some(email.to_string()),
            name: Some(name.to_string()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// How to spoil the next ID token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFault {
    /// Signed with a key the provider does not publish (same `kid`).
    WrongKey,
    /// `aud` names another client.
    WrongAudience,
    /// `iss` names another issuer.
    WrongIssuer,
    /// `nonce` is not the one the login sent.
    WrongNonce,
    /// `exp` is ten minutes past.
    Expired,
}

/// How a client authenticated at `/token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post,
}

/// The registered client.
struct Client {
    id: String,
    secret: String,
    redirect_uri: String,
}

/// What an authorization code stands for.
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: TestUser,
    issued: Instant,
}

/// The provider's mutable state.
struct Inner {
    issuer: String,
    client: Client,
    keys: Keys,
    user: Option<TestUser>,
    codes: HashMap<String, Grant>,
    used_codes: HashSet<String>,
    fault: Option<TokenFault>,
    token_auths: Vec<ClientAuth>,
    counter: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running provider; stopped (its thread joined) on drop.
pub struct OidcProvider {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OidcProvider {
    /// Starts a provider on a free port of 127.0.0.1 that knows one client.
    pub fn start(client_id: &str, client_secret: &str, redirect_uri: &str) -> OidcProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let shared: Shared = Arc::new(Mutex::new(Inner {
            issuer: format!("http://{addr}"),
            client: Client {
                id: client_id.to_string(),
                secret: client_secret.to_string(),
                redirect_uri: redirect_uri.to_string(),
            },
            keys: Keys::load(),
            user: None,
            codes: HashMap::new(),
            used_codes: HashSet::new(),
            fault: None,
            token_auths: Vec::new(),
            counter: 0,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(configuration))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("oidc-provider".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        served = axum::serve(listener, app) => served.expect("serve"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("provider thread");
        OidcProvider {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint, for tests that post to it themselves.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// The user that `/authorize` logs in from now on.
    pub fn login_as(&self, user: TestUser) {
        lock(&self.shared).user = Some(user);
    }

    /// Spoils the next ID token `/token` issues; later ones are sound.
    pub fn fault_next_token(&self, fault: TokenFault) {
        lock(&self.shared).fault = Some(fault);
    }

    /// How the client authenticated, for each token request that passed
    /// client authentication, in order.
    pub fn token_auths(&self) -> Vec<ClientAuth> {
        lock(&self.shared).token_auths.clone()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `GET /.well-known/openid-configuration`.
async fn configuration(State(shared): State<Shared>) -> Json<Value> {
    let issuer = lock(&shared).issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "nonce", "email", "name", "groups"],
    }))
}

/// `GET /jwks`.
async fn jwks(State(shared): State<Shared>) -> Json<Value> {
    Json(lock(&shared).keys.jwks())
}

/// `GET /authorize`.
async fn authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str);
    let mut inner = lock(&shared);
    // An unknown client or redirect URI gets an error page, never a redirect.
    if param("client_id") != Some(inner.client.id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let redirect_uri = inner.client.redirect_uri.clone();
    if param("redirect_uri") != Some(redirect_uri.as_str()) {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not registered").into_response();
    }
    let state = param("state");
    let refuse = |error: &str, description: &str| {
        redirect(&redirect_uri, &error_params(error, description, state))
    };
    if param("response_type") != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code");
    }
    if !param("scope").is_some_and(|scope| scope.split(' ').any(|s| s == "openid")) {
        return refuse("invalid_scope", "the openid scope is required");
    }
    let challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (Some(challenge), Some("S256")) if !challenge.is_empty() => challenge.to_string(),
        _ => {
            return refuse(
                "invalid_request",
                "PKCE is required: code_challenge with S256",
            );
        }
    };
    let Some(user) = inner.user.clone() else {
        return refuse("login_required", "no user is logged in");
    };
    inner.counter += 1;
    let code = signing::s256(&format!(
        "code {} {:?} {}",
        inner.counter,
        SystemTime::now(),
        inner.issuer
    ));
    inner.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            challenge,
            nonce: param("nonce").map(str::to_string),
            user,
            issued: Instant::now(),
        },
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect(&redirect_uri, &params)
}

/// The parameters of an error redirect.
fn error_params<'a>(
    error: &'a str,
    description: &'a str,
    state: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params
}

/// 302 to `uri` with `params` added to its query.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{uri}{separator}{query}"))],
    )
        .into_response()
}

/// An OAuth error answer from `/token`.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /token` (form-encoded).
async fn token(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| form.get(name).map(String::as_str);
    let mut inner = lock(&shared);

    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| signing::basic_credentials(value).unwrap_or_default());
    let (auth, id, secret) = match (basic, param("client_secret")) {
        (Some(_), Some(_)) => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one client authentication method",
            );
        }
        (Some((id, secret)), None) => (ClientAuth::Basic, id, secret),
        (None, Some(secret)) => (
            ClientAuth::Post,
            param("client_id").unwrap_or_default().to_string(),
            secret.to_string(),
        ),
        (None, None) => {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required",
            );
        }
    };
    if id != inner.client.id || secret != inner.client.secret {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    inner.token_auths.push(auth);

    if param("grant_type") != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let code = param("code").unwrap_or_default();
    if inner.used_codes.contains(code) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code was already used",
        );
    }
    // A code is used up by its first presentation, whatever follows.
    let Some(grant) = inner.codes.remove(code) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
    };
    inner.used_codes.insert(code.to_string());
    if grant.issued.elapsed() > CODE_LIFETIME {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "the code expired");
    }
    if param("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        );
    }
    let Some(verifier) = param("code_verifier") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier is required",
        );
    };
    if signing::s256(verifier) != grant.challenge {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        );
    }

    inner.counter += 1;
    let access_token = signing::s256(&format!("access {} {code}", inner.counter));
    let fault = inner.fault.take();
    let id_token = id_token(&inner, &grant, &access_token, fault);
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// The signed ID token for a grant, spoilt by `fault` if any.
fn id_token(inner: &Inner, grant: &Grant, access_token: &str, fault: Option<TokenFault>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let (iat, exp) = if fault == Some(TokenFault::Expired) {
        (now - 900, now - 600)
    } else {
        (now, now + TOKEN_LIFETIME.as_secs())
    };
    let mut claims = json!({
        "iss": if fault == Some(TokenFault::WrongIssuer) { "http://127.0.0.1:1" } else { inner.issuer.as_str() },
        "sub": grant.user.subject,
        "aud": if fault == Some(TokenFault::WrongAudience) { "another-client" } else { inner.client.id.as_str() },
        "iat": iat,
        "exp": exp,
        "groups": grant.user.groups,
        "at_hash": signing::at_hash(access_token),
    });
    let nonce = if fault == Some(TokenFault::WrongNonce) {
        Some("not-the-login-nonce")
    } else {
        grant.nonce.as_deref()
    };
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Some(email) = &grant.user.email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    if let Some(name) = &grant.user.name {
        claims["name"] = json!(name);
    }
    inner
        .keys
        .sign(&claims, fault == Some(TokenFault::WrongKey))
}
