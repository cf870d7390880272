//! The whole server: every route table merged, behind the browser checks
//! ([`crate::guard`]) and the authentication layer ([`crate::auth`]), for
//! the main listener and for the public gateway listener.

use crate::api::AppState;
use crate::auth::layer::{Auth, AuthMode, authenticate};
use crate::auth::rules::{Listener, Named, RouteRule, Routes, Rule, RuleIndex, Table, Verb};
use crate::auth::session::Sessions;
use crate::auth::{login, oidc_login, tokens};
use crate::gateway::GatewayState;
use crate::guard::Guard;
use axum::Router;
use axum::extract::State;
use axum::http::Method;
use cairn_api::auth::{RouteAccess, RouteTable};
use std::sync::{Arc, RwLock};

/// How callers are authenticated.
pub struct AuthSettings {
    /// Whether they must be.
    pub mode: AuthMode,
    /// Whether session cookies are marked `Secure` (served over HTTPS).
    pub secure_cookies: bool,
    /// Sign-in through an identity provider, when configured.
    pub oidc: Option<crate::auth::oidc_login::OidcLogin>,
}

/// The routers of `cairn up`.
pub struct Server {
    /// Every route (the main listener).
    pub full: Router,
    /// The public gateway's routes (`--gateway-listen`).
    pub gateway: Router,
    /// The authentication state (access rules to refresh after syncs).
    pub auth: Arc<Auth>,
}

/// The routes of signing in, tokens and the route table.
fn auth_routes() -> Routes<Arc<Auth>> {
    tokens::routes(oidc_login::routes(login::routes(Routes::new()))).route(
        Method::GET,
        "/api/v1/routes",
        Rule::Signed,
        route_table,
    )
}

fn tables(app: &AppState, gateway: &GatewayState, listener: Listener) -> Table {
    crate::api::routes(app.clone(), listener)
        .merge(crate::gateway::routes(gateway.clone(), listener))
        .merge(crate::dashboard::routes(
            app.clone(),
            gateway.clone(),
            listener,
        ))
        .merge(crate::experiments::routes(app.clone(), listener))
        .merge(crate::mlflow::routes(
            crate::mlflow::MlflowState {
                store: app.controller.store().clone(),
                artifacts: app
                    .controller
                    .settings()
                    .data_dir
                    .join("tracking")
                    .join("artifacts"),
            },
            listener,
        ))
}

/// Builds the server.
pub fn build(app: AppState, gateway: GatewayState, settings: AuthSettings, guard: Guard) -> Server {
    let full = tables(&app, &gateway, Listener::Full);
    let mut rules = full.rules.clone();
    rules.extend(auth_routes().rules());
    let auth = Arc::new(Auth {
        mode: settings.mode,
        store: gateway.store.clone(),
        access: RwLock::new(Arc::default()),
        sessions: Sessions::default(),
        rules: RuleIndex::new(&rules),
        table: rules,
        resolver: Arc::new(crate::api::Resolver {
            controller: app.controller.clone(),
        }),
        secure_cookies: settings.secure_cookies,
        oidc: settings.oidc,
    });
    if let Err(e) = auth.refresh_access() {
        tracing::warn!("reading the projects' access rules: {e}");
    }
    let full = full.merge(auth_routes().finish(auth.clone(), Listener::Full));
    let public = tables(&app, &gateway, Listener::Gateway)
        .merge(auth_routes().finish(auth.clone(), Listener::Gateway));
    let guard = Arc::new(guard);
    let wrap = |router: Router| {
        let mut router = router
            .route_layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                authenticate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                guard.clone(),
                crate::guard::layer,
            ))
            .layer(axum::middleware::from_fn(crate::mlflow::errors::refusals));
        if let Some(cors) = crate::guard::cors(&guard.origins) {
            router = router.layer(cors);
        }
        router
    };
    Server {
        full: wrap(full.router),
        gateway: wrap(public.router),
        auth: auth.clone(),
    }
}

/// A row of the table, as the API shows it.
fn access(row: &RouteRule) -> RouteAccess {
    let (rule, role, resource) = match row.rule {
        Rule::Public => ("public", None, None),
        Rule::Gateway => ("gateway", None, None),
        Rule::Webhook => ("webhook", None, None),
        Rule::Signed => ("signed", None, None),
        Rule::Admin => ("admin", None, None),
        Rule::Project(named, role) => (
            "project",
            Some(role.to_string()),
            Some(match named {
                Named::Job => "job",
                Named::Model => "model",
                Named::App => "app",
            }),
        ),
        Rule::Found(role) => ("found", Some(role.to_string()), None),
    };
    RouteAccess {
        path: row.path.clone(),
        method: match &row.verb {
            Verb::Any => "*".into(),
            Verb::Only(m) => m.to_string(),
        },
        rule: rule.into(),
        role,
        resource: resource.map(str::to_string),
    }
}

/// Every route and what it needs of its caller.
#[utoipa::path(get, path = "/api/v1/routes", tag = "access",
    responses(
        (status = 200, description = "The route table", body = RouteTable),
        (status = 401, description = "No valid token or session", body = cairn_api::ErrorBody),
    ))]
pub(crate) async fn route_table(State(auth): State<Arc<Auth>>) -> axum::Json<RouteTable> {
    axum::Json(RouteTable {
        routes: auth.table.iter().map(access).collect(),
    })
}
