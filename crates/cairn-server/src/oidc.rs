//! OpenID Connect login against one provider: the authorization code flow
//! with PKCE (S256), a random `state` and `nonce` per login.
//!
//! [`Oidc::discover`] reads the provider's metadata and signing keys
//! (`/.well-known/openid-configuration`, then `jwks_uri`). [`Oidc::begin`]
//! answers the URL to send the browser to and a [`PendingLogin`] that the
//! server keeps, keyed by its state, until the provider sends the browser
//! back. [`Oidc::finish`] checks the returned state, exchanges the code
//! (with the PKCE verifier) for tokens, verifies the ID token (signature
//! against the provider's keys, issuer, audience, expiry, nonce) and
//! answers who logged in, with the groups the provider names.
//!
//! Requests to the provider go over `https://` (plain `http://` on a
//! loopback address only) and never follow redirects. Errors and logs
//! never carry the client secret or a token.

mod http;

use self::http::HttpClient;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthType, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The claim that lists a user's groups unless configured otherwise.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// The scopes always asked for beside `openid`, which the flow adds.
const DEFAULT_SCOPES: [&str; 2] = ["email", "profile"];

/// How long a login may stay pending before [`Oidc::finish`] refuses it.
pub const PENDING_LOGIN_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Where the provider is and who this server is to it.
#[derive(Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (`https://login.example.com/realms/ml`);
    /// `http://` only on a loopback address.
    pub issuer_url: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// The client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back:
    /// `http://127.0.0.1:8080/auth/oidc/callback`.
    pub redirect_url: String,
    /// The ID token claim that lists the user's groups
    /// ([`DEFAULT_GROUPS_CLAIM`] by default).
    pub groups_claim: String,
    /// Scopes asked for beside `openid`, `email` and `profile`.
    pub scopes: Vec<String>,
}

impl OidcConfig {
    /// A configuration with the default groups claim and no extra scopes.
    pub fn new(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<String>,
        redirect_url: impl Into<String>,
    ) -> OidcConfig {
        OidcConfig {
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_url: redirect_url.into(),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_string(),
            scopes: Vec::new(),
        }
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("groups_claim", &self.groups_claim)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why a login could not be set up or completed. No message carries the
/// client secret, a code, or a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A URL in the configuration is not valid.
    #[error("OpenID Connect configuration: {field} {url:?} is not a valid URL: {reason}")]
    InvalidUrl {
        /// The field (`issuer_url`, `redirect_url`).
        field: &'static str,
        /// Its value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The issuer, or an endpoint of its metadata, is plain `http://` on a
    /// host that is not loopback.
    #[error(
        "OpenID Connect: {url} must use https:// (plain http:// is allowed on loopback addresses only)"
    )]
    Insecure {
        /// The URL.
        url: String,
    },
    /// The HTTP client could not be built (no TLS root certificates).
    #[error("OpenID Connect HTTP client: {0}")]
    Client(String),
    /// The provider's metadata or keys could not be read.
    #[error("OpenID Connect discovery at {issuer}: {reason}")]
    Discovery {
        /// The issuer URL.
        issuer: String,
        /// Why.
        reason: String,
    },
    /// The `state` the browser came back with is not this login's.
    #[error("OpenID Connect login: the returned state does not match the login's")]
    StateMismatch,
    /// The login waited longer than [`PENDING_LOGIN_MAX_AGE`].
    #[error("OpenID Connect login: the login expired; start again")]
    Expired,
    /// The code could not be exchanged for tokens.
    #[error("OpenID Connect token request: {0}")]
    Token(String),
    /// The token answer has no ID token.
    #[error("OpenID Connect token request: the provider answered no ID token")]
    NoIdToken,
    /// The ID token failed verification.
    #[error("OpenID Connect ID token: {0}")]
    IdToken(String),
    /// The ID token's groups claim is not a list of strings.
    #[error("OpenID Connect ID token: claim `{claim}` is not a list of strings")]
    Groups {
        /// The claim's name.
        claim: String,
    },
}

/// Who logged in, as the provider's verified ID token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's stable identifier for the user (`sub`).
    pub subject: String,
    /// The user's email address, if the provider shares it.
    pub email: Option<String>,
    /// The user's display name, if the provider shares it.
    pub name: Option<String>,
    /// The groups in the configured claim; empty when the claim is absent.
    pub groups: Vec<String>,
}

/// A login between [`Oidc::begin`] and [`Oidc::finish`], kept by the
/// server (never sent to the browser), keyed by [`PendingLogin::state`].
pub struct PendingLogin {
    state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: String,
    created_at: Instant,
}

impl PendingLogin {
    /// The `state` sent to the provider, which the browser brings back.
    pub fn state(&self) -> &str {
        self.state.secret()
    }

    /// Whether the login was begun more than `max_age` ago.
    pub fn is_expired(&self, max_age: Duration) -> bool {
        self.created_at.elapsed() > max_age
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Every claim of the ID token beyond the standard ones, by name: the
/// groups claim's name is configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

/// The token answer, with [`OtherClaims`] in its ID token.
type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// The client, with its authorization and (once set) token endpoints.
type ProviderClient<HasTokenUrl = EndpointSet> = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointMaybeSet,
>;

/// Login with one OpenID provider, its metadata and keys read once by
/// [`Oidc::discover`]. Cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    issuer: String,
    client: ProviderClient,
    http: HttpClient,
    scopes: Vec<Scope>,
    groups_claim: String,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client.client_id().as_str())
            .field("groups_claim", &self.groups_claim)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Reads the provider's metadata and signing keys and sets up the
    /// client. The client authenticates with HTTP Basic
    /// (`client_secret_basic`) unless the provider supports only
    /// `client_secret_post`.
    pub async fn discover(config: OidcConfig) -> Result<Oidc, OidcError> {
        let issuer =
            IssuerUrl::new(config.issuer_url.clone()).map_err(|e| OidcError::InvalidUrl {
                field: "issuer_url",
                url: config.issuer_url.clone(),
                reason: e.to_string(),
            })?;
        let redirect =
            RedirectUrl::new(config.redirect_url.clone()).map_err(|e| OidcError::InvalidUrl {
                field: "redirect_url",
                url: config.redirect_url.clone(),
                reason: e.to_string(),
            })?;
        secure(issuer.url())?;
        let http = HttpClient::new(issuer.url().scheme() == "https").map_err(OidcError::Client)?;
        let discovery = |reason: String| OidcError::Discovery {
            issuer: config.issuer_url.clone(),
            reason,
        };
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| discovery(chain(&e)))?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| discovery("the metadata names no token_endpoint".into()))?;
        secure(metadata.authorization_endpoint().url())?;
        secure(token_url.url())?;
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let client = ProviderClient::<EndpointMaybeSet>::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id),
            config.client_secret.map(ClientSecret::new),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type);
        let mut scopes: Vec<String> = DEFAULT_SCOPES.map(String::from).to_vec();
        for scope in config.scopes {
            if scope != "openid" && !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Oidc {
            issuer: config.issuer_url,
            client,
            http,
            scopes: scopes.into_iter().map(Scope::new).collect(),
            groups_claim: config.groups_claim,
        })
    }

    /// Starts a login: the provider's authorization URL to send the
    /// browser to, and the login to keep until it comes back.
    pub fn begin(&self) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state,
            nonce,
            pkce_verifier: verifier.into_secret(),
            created_at: Instant::now(),
        };
        (url.to_string(), pending)
    }

    /// Completes a login with the `code` and `state` the browser brought
    /// back: checks the state, exchanges the code with the PKCE verifier,
    /// verifies the ID token and answers the identity in it.
    pub async fn finish(
        &self,
        pending: PendingLogin,
        code: &str,
        returned_state: &str,
    ) -> Result<OidcIdentity, OidcError> {
        let expected = pending.state.secret().as_bytes();
        if !bool::from(expected.ct_eq(returned_state.as_bytes())) {
            return Err(OidcError::StateMismatch);
        }
        if pending.is_expired(PENDING_LOGIN_MAX_AGE) {
            return Err(OidcError::Expired);
        }
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = tokens.id_token().ok_or(OidcError::NoIdToken)?;
        let verifier = self.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &pending.nonce)
            .map_err(|e| OidcError::IdToken(chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::IdToken(chain(&e)))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::IdToken(chain(&e)))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|e| OidcError::IdToken(chain(&e)))?;
            if actual != *expected {
                return Err(OidcError::IdToken(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        let groups = groups(&claims.additional_claims().claims, &self.groups_claim)?;
        Ok(OidcIdentity {
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|email| email.as_str().to_string()),
            name: claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_string()),
            groups,
        })
    }
}

/// Refuses a plain-HTTP URL outside loopback.
fn secure(url: &openidconnect::url::Url) -> Result<(), OidcError> {
    let allowed = match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(http::is_loopback),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(OidcError::Insecure {
            url: url.to_string(),
        })
    }
}

/// The groups claim: a list of strings; absent or null is no groups.
fn groups(
    claims: &serde_json::Map<String, serde_json::Value>,
    claim: &str,
) -> Result<Vec<String>, OidcError> {
    let refused = || OidcError::Groups {
        claim: claim.to_string(),
    };
    match claims.get(claim) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(refused))
            .collect(),
        Some(_) => Err(refused()),
    }
}

/// A token request's failure, told without the answer's body (which may
/// hold tokens).
fn token_error<E: std::error::Error + 'static>(
    error: RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    OidcError::Token(match &error {
        RequestTokenError::ServerResponse(answer) => {
            format!("the provider refused: {answer}")
        }
        RequestTokenError::Request(e) => chain(e),
        RequestTokenError::Parse(e, _body) => {
            format!("unreadable answer (at `{}`)", e.path())
        }
        RequestTokenError::Other(reason) => reason.clone(),
    })
}

/// An error and its sources, joined by `: `.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
