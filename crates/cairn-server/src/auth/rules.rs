//! The route table: what every (route, verb) needs, declared where the
//! route is registered. [`Routes`] registers a handler only together with
//! its [`Rule`], so no route exists without one; the table it builds is
//! what [`super::layer`] enforces and what the tests walk.

use super::Role;
use crate::names::scoped_paths;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, any, on};
use std::collections::HashMap;

/// The kinds of resource a route can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Named {
    /// `jobs/{name}`.
    Job,
    /// `models/{name}`.
    Model,
    /// `apps/{name}`.
    App,
}

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Anyone: health, the OpenAPI document, sign-in, static assets.
    Public,
    /// The gateway: a model's own access keys, when its spec requires one
    /// (predictions, feedback and metrics by inference id).
    Gateway,
    /// A push webhook, verified by its shared secret.
    Webhook,
    /// Any authenticated caller; the answer holds only what it may see.
    Signed,
    /// An operator.
    Admin,
    /// At least this role in the project of the named resource (from the
    /// route's `{project}`, `?project=`, or the one project using the name).
    Project(Named, Role),
    /// At least this role in the project of what the handler finds (an
    /// inference by id, a token): authenticated here, judged there.
    Found(Role),
}

/// The verbs a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Every method (an application behind the proxy).
    Any,
    /// One method.
    Only(Method),
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// The route, as registered (`/api/v1/jobs/{name}/runs`).
    pub path: String,
    /// Its verb.
    pub verb: Verb,
    /// What it needs.
    pub rule: Rule,
}

/// Routes and their rules, built together.
pub struct Routes<S> {
    rows: Vec<(RouteRule, MethodRouter<S>)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes { rows: Vec::new() }
    }
}

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Every route.
    Full,
    /// What the public may reach (`--gateway-listen`): predictions, the
    /// Open Inference Protocol, feedback and metrics by inference id,
    /// applications, health, and signing in to applications.
    Gateway,
}

impl Listener {
    /// Whether this listener serves `row`.
    pub fn serves(self, row: &RouteRule) -> bool {
        match self {
            Listener::Full => true,
            Listener::Gateway => {
                matches!(row.rule, Rule::Gateway)
                    || matches!(row.rule, Rule::Project(Named::App, _))
                    || matches!(
                        row.path.as_str(),
                        "/healthz"
                            | "/v2"
                            | "/v2/health/live"
                            | "/v2/health/ready"
                            | "/login"
                            | "/auth/oidc/login"
                            | "/auth/oidc/callback"
                    )
                    || row.path.starts_with("/assets/")
            }
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `method path` → `handler`, needing `rule`.
    pub fn route<H, T>(mut self, method: Method, path: &str, rule: Rule, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
        self.rows.push((
            RouteRule {
                path: path.to_string(),
                verb: Verb::Only(method),
                rule,
            },
            on(filter, handler),
        ));
        self
    }

    /// Every method of `path` → `handler`, needing `rule`.
    pub fn any<H, T>(mut self, path: &str, rule: Rule, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.rows.push((
            RouteRule {
                path: path.to_string(),
                verb: Verb::Any,
                rule,
            },
            any(handler),
        ));
        self
    }

    /// `method {prefix}/{kind}/{name}{rest}` and its form in a project,
    /// `{prefix}/projects/{project}/{kind}/{name}{rest}`.
    pub fn scoped<H, T>(
        self,
        method: Method,
        (prefix, kind, rest): (&str, &str, &str),
        rule: Rule,
        handler: H,
    ) -> Self
    where
        H: Handler<T, S> + Clone,
        T: 'static,
    {
        let [bare, scoped] = scoped_paths(prefix, kind, rest);
        self.route(method.clone(), &bare, rule, handler.clone())
            .route(method, &scoped, rule, handler)
    }

    /// Like [`Routes::scoped`] for every method.
    pub fn scoped_any<H, T>(
        self,
        (prefix, kind, rest): (&str, &str, &str),
        rule: Rule,
        handler: H,
    ) -> Self
    where
        H: Handler<T, S> + Clone,
        T: 'static,
    {
        let [bare, scoped] = scoped_paths(prefix, kind, rest);
        self.any(&bare, rule, handler.clone())
            .any(&scoped, rule, handler)
    }

    /// The rules so far.
    pub fn rules(&self) -> Vec<RouteRule> {
        self.rows.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The routes `listener` serves, given their state, and their rules.
    pub fn finish(self, state: S, listener: Listener) -> Table {
        let mut router = Router::new();
        let mut rules = Vec::new();
        for (rule, handler) in self.rows {
            if listener.serves(&rule) {
                router = router.route(&rule.path, handler);
                rules.push(rule);
            }
        }
        Table {
            router: router.with_state(state),
            rules,
        }
    }
}

/// A router and the rules of its routes.
pub struct Table {
    /// The routes.
    pub router: Router,
    /// Their rules.
    pub rules: Vec<RouteRule>,
}

impl Table {
    /// Both tables' routes together.
    pub fn merge(mut self, other: Table) -> Table {
        self.router = self.router.merge(other.router);
        self.rules.extend(other.rules);
        self
    }
}

/// The rules, looked up by the route a request matched.
#[derive(Clone, Debug, Default)]
pub struct RuleIndex {
    /// By route: each verb's rule (`None`: every method).
    routes: HashMap<String, Vec<(Option<Method>, Rule)>>,
}

impl RuleIndex {
    /// An index of `rules`.
    pub fn new(rules: &[RouteRule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for r in rules {
            let verb = match &r.verb {
                Verb::Any => None,
                Verb::Only(m) => Some(m.clone()),
            };
            index
                .routes
                .entry(r.path.clone())
                .or_default()
                .push((verb, r.rule));
        }
        index
    }

    /// The rule of `method` on the matched route `path` (`HEAD` is `GET`'s).
    pub fn rule(&self, path: &str, method: &Method) -> Option<Rule> {
        let method = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let verbs = self.routes.get(path)?;
        verbs
            .iter()
            .find(|(m, _)| m.as_ref() == Some(method))
            .or_else(|| verbs.iter().find(|(m, _)| m.is_none()))
            .map(|(_, rule)| *rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_found_by_route_and_verb() {
        let rows = Routes::<()>::new()
            .route(Method::GET, "/a", Rule::Signed, || async { "" })
            .route(Method::POST, "/a", Rule::Admin, || async { "" })
            .any("/b", Rule::Public, || async { "" })
            .rules();
        let index = RuleIndex::new(&rows);
        assert_eq!(index.rule("/a", &Method::GET), Some(Rule::Signed));
        assert_eq!(index.rule("/a", &Method::HEAD), Some(Rule::Signed));
        assert_eq!(index.rule("/a", &Method::POST), Some(Rule::Admin));
        assert_eq!(index.rule("/a", &Method::DELETE), None);
        assert_eq!(index.rule("/b", &Method::PATCH), Some(Rule::Public));
        assert_eq!(index.rule("/c", &Method::GET), None);
    }

    #[test]
    fn the_gateway_listener_serves_the_gateway_only() {
        let row = |path: &str, rule| RouteRule {
            path: path.into(),
            verb: Verb::Only(Method::GET),
            rule,
        };
        let gateway = Listener::Gateway;
        assert!(gateway.serves(&row("/models/{name}/predict", Rule::Gateway)));
        assert!(gateway.serves(&row(
            "/apps/{name}/",
            Rule::Project(Named::App, Role::Viewer)
        )));
        assert!(gateway.serves(&row("/healthz", Rule::Public)));
        assert!(!gateway.serves(&row("/api/v1/status", Rule::Signed)));
        assert!(!gateway.serves(&row("/api/v1/openapi.json", Rule::Public)));
        assert!(!gateway.serves(&row("/hooks/git", Rule::Webhook)));
        assert!(!gateway.serves(&row("/metrics", Rule::Admin)));
        assert!(Listener::Full.serves(&row("/metrics", Rule::Admin)));
    }
}
