//! The login flow against the test OpenID provider, over real HTTP on
//! 127.0.0.1.

use super::*;
use cairn_test_support::oidc_provider::{ClientAuth, OidcProvider, TestUser, TokenFault};
use openidconnect::http::{Method, Request, StatusCode, header};
use openidconnect::url::Url;
use std::collections::HashMap;

const CLIENT_ID: &str = "cairn";
const CLIENT_SECRET: &str = "cairn-test-secret-5f1d";
const REDIRECT: &str = "http://127.0.0.1:8080/auth/oidc/callback";

fn ada() -> TestUser {
    TestUser::new(
        "user-ada",
        "ada@example.com",
        "Ada Lovelace",
        &["ml-admins", "vision"],
    )
}

fn provider() -> OidcProvider {
    let provider = OidcProvider::start(CLIENT_ID, CLIENT_SECRET, REDIRECT);
    provider.login_as(ada());
    provider
}

fn config(provider: &OidcProvider) -> OidcConfig {
    OidcConfig::new(
        provider.issuer(),
        CLIENT_ID,
        Some(CLIENT_SECRET.to_string()),
        REDIRECT,
    )
}

async fn discover(provider: &OidcProvider) -> Oidc {
    Oidc::discover(config(provider)).await.expect("discovery")
}

fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

/// GETs a URL without following redirects: the status and `Location`.
async fn get(oidc: &Oidc, url: &str) -> (StatusCode, Option<String>) {
    let request = Request::get(url).body(Vec::new()).unwrap();
    let response = oidc.http.send(request).await.expect("GET");
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    (response.status(), location)
}

/// The browser's round trip through `/authorize`: the callback's query.
async fn authorize(oidc: &Oidc, url: &str) -> HashMap<String, String> {
    let (status, location) = get(oidc, url).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("a Location");
    assert!(
        location.starts_with(&format!("{REDIRECT}?")),
        "redirected to {location}"
    );
    query(&location)
}

/// A login up to the callback: the pending login and the code.
async fn login(oidc: &Oidc) -> (PendingLogin, String) {
    let (url, pending) = oidc.begin();
    let callback = authorize(oidc, &url).await;
    assert_eq!(callback["state"], pending.state());
    (pending, callback["code"].clone())
}

/// A second copy of a pending login, to present its code twice.
fn duplicate(pending: &PendingLogin) -> PendingLogin {
    PendingLogin {
        state: CsrfToken::new(pending.state.secret().clone()),
        nonce: Nonce::new(pending.nonce.secret().clone()),
        pkce_verifier: pending.pkce_verifier.clone(),
        created_at: pending.created_at,
    }
}

/// POSTs a form to the provider's token endpoint with
/// `client_secret_post`: the status and the JSON answer.
async fn post_token(
    oidc: &Oidc,
    provider: &OidcProvider,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let body = openidconnect::url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .extend_pairs([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(provider.token_url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .unwrap();
    let response = oidc.http.send(request).await.expect("POST /token");
    let answer = serde_json::from_slice(response.body()).expect("a JSON answer");
    (response.status(), answer)
}

#[tokio::test]
async fn the_whole_flow_answers_the_identity_with_its_groups() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (url, pending) = oidc.begin();

    assert!(url.starts_with(&format!("{}/authorize?", provider.issuer())));
    let asked = query(&url);
    assert_eq!(asked["response_type"], "code");
    assert_eq!(asked["client_id"], CLIENT_ID);
    assert_eq!(asked["redirect_uri"], REDIRECT);
    assert_eq!(asked["scope"], "openid email profile");
    assert_eq!(asked["state"], pending.state());
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["code_challenge"].len(), 43);
    assert!(asked["nonce"].len() >= 22);
    assert!(pending.state().len() >= 22);
    assert!(!pending.is_expired(PENDING_LOGIN_MAX_AGE));

    let callback = authorize(&oidc, &url).await;
    assert_eq!(callback["state"], pending.state());
    let identity = oidc
        .finish(pending, &callback["code"], &callback["state"])
        .await
        .expect("login");
    assert_eq!(
        identity,
        OidcIdentity {
            subject: "user-ada".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada Lovelace".into()),
            groups: vec!["ml-admins".into(), "vision".into()],
        }
    );
    assert_eq!(provider.token_auths(), vec![ClientAuth::Basic]);
}

#[tokio::test]
async fn extra_scopes_are_asked_for_and_an_absent_groups_claim_is_no_groups() {
    let provider = provider();
    provider.login_as(TestUser {
        subject: "user-bob".into(),
        email: None,
        name: None,
        groups: vec!["data".into()],
    });
    let mut config = config(&provider);
    config.scopes = vec!["groups".into(), "email".into(), "openid".into()];
    config.groups_claim = "roles".into();
    let oidc = Oidc::discover(config).await.expect("discovery");
    let (url, pending) = oidc.begin();
    assert_eq!(query(&url)["scope"], "openid email profile groups");
    let callback = authorize(&oidc, &url).await;
    let identity = oidc
        .finish(pending, &callback["code"], &callback["state"])
        .await
        .expect("login");
    assert_eq!(
        identity,
        OidcIdentity {
            subject: "user-bob".into(),
            email: None,
            name: None,
            groups: Vec::new(),
        }
    );
}

#[tokio::test]
async fn the_provider_refuses_a_wrong_code_verifier() {
    let provider = provider();
    let oidc = discover(&provider).await;

    let (pending, code) = login(&oidc).await;
    let state = pending.state().to_string();
    let wrong = "a".repeat(43);
    assert_ne!(wrong, pending.pkce_verifier);
    let (status, answer) = post_token(
        &oidc,
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_grant");
    assert_eq!(
        answer["error_description"],
        "code_verifier does not match the code_challenge"
    );
    // That attempt used the code up.
    let error = oidc.finish(pending, &code, &state).await.unwrap_err();
    assert!(error.to_string().contains("already used"), "{error}");

    // The right verifier, through client_secret_post, gets tokens.
    let (pending, code) = login(&oidc).await;
    let (status, answer) = post_token(
        &oidc,
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pending.pkce_verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["id_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(
        provider.token_auths(),
        vec![ClientAuth::Post, ClientAuth::Basic, ClientAuth::Post]
    );
}

/// The state of another login.
fn another_state(oidc: &Oidc) -> String {
    oidc.begin().1.state().to_string()
}

#[tokio::test]
async fn the_provider_requires_pkce_and_the_registered_redirect() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (url, pending) = oidc.begin();
    let mut parsed = Url::parse(&url).unwrap();

    let without_pkce: Vec<(String, String)> = parsed
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(&without_pkce);
    let callback = authorize(&oidc, parsed.as_str()).await;
    assert_eq!(callback["error"], "invalid_request");
    assert_eq!(callback["state"], pending.state());
    assert!(!callback.contains_key("code"));

    let elsewhere: Vec<(String, String)> = Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            let v = if k == "redirect_uri" {
                "http://127.0.0.1:9/steal".to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(&elsewhere);
    let (status, location) = get(&oidc, parsed.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(location, None);
}

#[tokio::test]
async fn finish_refuses_a_wrong_state_before_any_token_request() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (pending, code) = login(&oidc).await;
    let other = another_state(&oidc);
    let error = oidc.finish(pending, &code, &other).await.unwrap_err();
    assert!(matches!(error, OidcError::StateMismatch), "{error}");
    let (pending, code) = login(&oidc).await;
    let error = oidc.finish(pending, &code, "").await.unwrap_err();
    assert!(matches!(error, OidcError::StateMismatch), "{error}");
    assert_eq!(provider.token_auths(), Vec::new());
}

#[tokio::test]
async fn finish_refuses_a_spoilt_id_token() {
    let provider = provider();
    let oidc = discover(&provider).await;
    for (fault, expected) in [
        (TokenFault::WrongKey, "Signature verification failed"),
        (TokenFault::WrongAudience, "Invalid audiences"),
        (TokenFault::Expired, "Expired"),
        (TokenFault::WrongIssuer, "Invalid issuer"),
        (TokenFault::WrongNonce, "Invalid nonce"),
    ] {
        let (pending, code) = login(&oidc).await;
        let state = pending.state().to_string();
        provider.fault_next_token(fault);
        let error = oidc.finish(pending, &code, &state).await.unwrap_err();
        let OidcError::IdToken(reason) = &error else {
            panic!("{fault:?}: {error:?}");
        };
        assert!(reason.contains(expected), "{fault:?}: {reason}");
    }
    // The fault spoils one token only.
    let (pending, code) = login(&oidc).await;
    let state = pending.state().to_string();
    let identity = oidc.finish(pending, &code, &state).await.expect("login");
    assert_eq!(identity.subject, "user-ada");
}

#[tokio::test]
async fn finish_refuses_a_replayed_code() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (pending, code) = login(&oidc).await;
    let state = pending.state().to_string();
    let copy = duplicate(&pending);
    let identity = oidc.finish(pending, &code, &state).await.expect("login");
    assert_eq!(identity.email.as_deref(), Some("ada@example.com"));

    let error = oidc.finish(copy, &code, &state).await.unwrap_err();
    let OidcError::Token(reason) = &error else {
        panic!("{error:?}");
    };
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(reason.contains("already used"), "{reason}");
}

#[tokio::test]
async fn errors_never_carry_the_client_secret() {
    let provider = provider();
    let mut config = config(&provider);
    let secret = "not-the-secret-9c2e".to_string();
    config.client_secret = Some(secret.clone());
    assert!(!format!("{config:?}").contains(&secret));
    let oidc = Oidc::discover(config).await.expect("discovery");
    assert!(!format!("{oidc:?}").contains(&secret));
    let (pending, code) = login(&oidc).await;
    assert!(!format!("{pending:?}").contains(pending.state()));
    let state = pending.state().to_string();
    let error = oidc.finish(pending, &code, &state).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains(&secret), "{message}");
    assert!(!format!("{error:?}").contains(&secret));
}

#[tokio::test]
async fn finish_refuses_a_login_pending_too_long() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (mut pending, code) = login(&oidc).await;
    let state = pending.state().to_string();
    pending.created_at = Instant::now()
        .checked_sub(PENDING_LOGIN_MAX_AGE + Duration::from_secs(1))
        .expect("a monotonic clock that far back");
    assert!(pending.is_expired(PENDING_LOGIN_MAX_AGE));
    let error = oidc.finish(pending, &code, &state).await.unwrap_err();
    assert!(matches!(error, OidcError::Expired), "{error}");
}

#[tokio::test]
async fn discovery_refuses_plain_http_off_loopback_and_bad_urls() {
    let mut config = OidcConfig::new("http://login.example.com", CLIENT_ID, None, REDIRECT);
    let error = Oidc::discover(config.clone()).await.unwrap_err();
    assert!(matches!(error, OidcError::Insecure { .. }), "{error}");
    assert!(error.to_string().contains("http://login.example.com/"));

    config.issuer_url = "not a url".into();
    let error = Oidc::discover(config.clone()).await.unwrap_err();
    assert!(
        matches!(
            error,
            OidcError::InvalidUrl {
                field: "issuer_url",
                ..
            }
        ),
        "{error}"
    );

    // Nothing listens there: a clear discovery error, naming the issuer.
    let port = cairn_test_support::up::free_port();
    config.issuer_url = format!("http://127.0.0.1:{port}");
    let error = Oidc::discover(config).await.unwrap_err();
    let OidcError::Discovery { issuer, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(issuer, &format!("http://127.0.0.1:{port}"));
}

#[tokio::test]
async fn the_flow_can_run_in_a_spawned_task() {
    let provider = provider();
    let oidc = discover(&provider).await;
    let (pending, code) = login(&oidc).await;
    let state = pending.state().to_string();
    // Route handlers run on tokio's worker threads: the futures are Send.
    let identity = tokio::spawn(async move { oidc.finish(pending, &code, &state).await })
        .await
        .expect("the task")
        .expect("login");
    assert_eq!(identity.groups, ["ml-admins", "vision"]);
    let config = config(&provider);
    tokio::spawn(Oidc::discover(config))
        .await
        .expect("the task")
        .expect("discovery");
}
