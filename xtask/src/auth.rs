//! Benchmark: what the authentication layer adds to a request, on the
//! predict path (a gateway route: the rule is looked up and the request
//! passes) and on the API (a route needing `viewer` in the model's
//! project: the rule, the token checked against the store's memory, the
//! project resolved and the role found), each beside the same route
//! without the layer, in one run.

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use cairn_server::auth::Role;
use cairn_server::auth::access::Access;
use cairn_server::auth::layer::{Auth, AuthMode, Resolve, authenticate};
use cairn_server::auth::rules::{Listener, Named, Routes, Rule, RuleIndex};
use cairn_server::auth::session::Sessions;
use cairn_spec::{AccessGrant, Lookup, ProjectRole, ProjectSpec, ScopedName};
use cairn_store::Store;
use cairn_store::tokens::{NewToken, TokenKind};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tower::ServiceExt;

/// Every named resource is in `lab`.
struct Lab;

impl Resolve for Lab {
    fn project_of(&self, _: Named, _: &ScopedName) -> Lookup<String> {
        Lookup::Found("lab".into())
    }
}

/// The two routes, with their rules.
fn routes() -> Routes<()> {
    Routes::new()
        .route(
            Method::POST,
            "/models/{name}/predict",
            Rule::Gateway,
            || async { "ok" },
        )
        .route(
            Method::GET,
            "/api/v1/models/{name}/versions",
            Rule::Project(Named::Model, Role::Viewer),
            || async { "ok" },
        )
}

/// Per-request nanoseconds (median, p99) of `request` through `router`.
fn time(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    n: usize,
    request: impl Fn() -> Request<Body>,
) -> (f64, f64) {
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            let req = request();
            let router = router.clone();
            let t = Instant::now();
            let response = rt.block_on(router.oneshot(req)).expect("infallible");
            let ns = t.elapsed().as_nanos() as u64;
            assert!(response.status().is_success(), "{}", response.status());
            ns
        })
        .collect();
    v.sort_unstable();
    (v[n / 2] as f64, v[n * 99 / 100] as f64)
}

/// Runs the benchmark and prints Markdown.
pub fn run(requests: usize) -> Result<()> {
    let store = Arc::new(Store::open_in_memory()?);
    let (token, _) = store.create_token(&NewToken {
        name: "bench".into(),
        kind: TokenKind::Api,
        project: Some("lab".into()),
        role: "viewer".into(),
        created_by: "bench".into(),
        expires_at: None,
    })?;
    let lab = ProjectSpec {
        access: vec![AccessGrant {
            role: ProjectRole::Viewer,
            users: vec!["someone@example.com".into()],
            groups: vec!["analysts".into()],
        }],
        ..ProjectSpec::default()
    };
    let check = {
        let now = chrono::Utc::now().timestamp_millis();
        crate::rollout::per_call(requests, || {
            std::hint::black_box(store.check_token(std::hint::black_box(&token), now)).ok();
        })
    };
    let table = routes().rules();
    let auth = Arc::new(Auth {
        mode: AuthMode::Required,
        store,
        access: RwLock::new(Arc::new(Access::new([("lab", &lab)]))),
        sessions: Sessions::default(),
        rules: RuleIndex::new(&table),
        table,
        resolver: Arc::new(Lab),
        secure_cookies: false,
        oidc: None,
    });
    let bare = routes().finish((), Listener::Full).router;
    let guarded = routes()
        .finish((), Listener::Full)
        .router
        .route_layer(axum::middleware::from_fn_with_state(auth, authenticate));
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let predict = || {
        Request::post("/models/clf/predict")
            .body(Body::from("{}"))
            .unwrap()
    };
    let api = || {
        Request::get("/api/v1/models/clf/versions")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Warm up, then alternate so that both see the same machine.
    time(&rt, &guarded, requests / 10, api);
    let predict_bare = time(&rt, &bare, requests, predict);
    let predict_auth = time(&rt, &guarded, requests, predict);
    let api_bare = time(&rt, &bare, requests, api);
    let api_auth = time(&rt, &guarded, requests, api);

    println!("## The authorization check\n");
    println!("{}", crate::bench::machine());
    println!(
        "`cargo xtask bench auth` ({} build): {requests} requests per row through an in-process axum router (`oneshot`), with and without the authentication layer; p50 and p99 per request.\n",
        if cfg!(debug_assertions) {
            "dev-profile"
        } else {
            "release"
        }
    );
    println!("| route | without | with | added p50 | goal |");
    println!("|---|---|---|---|---|");
    for (name, without, with) in [
        (
            "`POST /models/clf/predict` (gateway rule)",
            predict_bare,
            predict_auth,
        ),
        (
            "`GET /api/v1/models/clf/versions` (token, `viewer` in the project)",
            api_bare,
            api_auth,
        ),
    ] {
        let added = with.0 - without.0;
        println!(
            "| {name} | {:.2} µs · {:.2} µs | {:.2} µs · {:.2} µs | {:.2} µs | < 2 µs {} |",
            without.0 / 1000.0,
            without.1 / 1000.0,
            with.0 / 1000.0,
            with.1 / 1000.0,
            added / 1000.0,
            if added < 2000.0 { "✓" } else { "✗" }
        );
    }
    println!(
        "\nOf which the token check alone (SHA-256 of the secret, a lookup in memory, a constant-time comparison): p50 {:.2} µs · p99 {:.2} µs.",
        check.0 / 1000.0,
        check.1 / 1000.0
    );
    Ok(())
}
