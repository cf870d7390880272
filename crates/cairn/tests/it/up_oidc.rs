//! People sign in through an OpenID Connect provider (a real one, started
//! by the test: discovery, JWKS, authorization with PKCE, tokens signed
//! RS256): the provider's groups meet `Project.spec.access` in Git; the
//! session cookie is HttpOnly and SameSite, and what it changes needs its
//! CSRF token; access rules follow Git, and a broken `access` block keeps
//! the rules last applied.

use cairn_test_support::TestRepo;
use cairn_test_support::oidc_provider::{OidcProvider, TestUser};
use cairn_test_support::up::{Up, free_port};
use serde_json::Value;
use std::time::Duration;

fn specs(lab_access: &str) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
  access:
{lab_access}
---
apiVersion: cairn/v1
kind: Project
metadata:
  name: other
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {{}}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: train
  project: lab
spec:
  command: [sh, -c, 'echo trained']
  trigger: {{manual: true}}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: report
  project: other
spec:
  command: [sh, -c, 'echo reported']
  trigger: {{manual: true}}
"
    )
}

const EDITORS: &str =
    "    - {role: editor, groups: [ml]}\n    - {role: viewer, users: [bob@example.com]}";

/// An agent that follows no redirect and sends no token.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

struct Answer {
    status: u16,
    location: String,
    set_cookie: String,
    text: String,
}

fn send(url: &str, method: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let agent = agent();
    let mut r = match method {
        "GET" => headers
            .iter()
            .fold(agent.get(url), |r, (k, v)| r.header(*k, *v))
            .call(),
        _ => headers
            .iter()
            .fold(agent.post(url), |r, (k, v)| r.header(*k, *v))
            .send(body.unwrap_or_default()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    Answer {
        status: r.status().as_u16(),
        location,
        set_cookie,
        text: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Signs in through the provider; returns the `Cookie` header value.
fn sign_in(up: &Up) -> String {
    let start = send(&up.url("/auth/oidc/login?next=/jobs"), "GET", &[], None);
    assert_eq!(start.status, 303, "{}", start.text);
    assert!(
        start.location.contains("code_challenge_method=S256"),
        "{}",
        start.location
    );
    let authorize = send(&start.location, "GET", &[], None);
    assert_eq!(authorize.status, 302, "{}", authorize.text);
    assert!(
        authorize
            .location
            .starts_with(&up.url("/auth/oidc/callback?")),
        "{}",
        authorize.location
    );
    let back = send(&authorize.location, "GET", &[], None);
    assert_eq!(
        (back.status, back.location.as_str()),
        (303, "/jobs"),
        "{}",
        back.text
    );
    for part in ["cairn_session=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(back.set_cookie.contains(part), "{}", back.set_cookie);
    }
    back.set_cookie.split(';').next().unwrap().to_string()
}

fn whoami(up: &Up, cookie: &str) -> Value {
    let a = send(
        &up.url("/api/v1/whoami"),
        "GET",
        &[("cookie", cookie)],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    serde_json::from_str(&a.text).unwrap()
}

#[test]
fn people_sign_in_through_the_identity_provider() {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let idp = OidcProvider::start("cairn", "client-secret", &callback);
    idp.login_as(TestUser::new("user-ada", "ada@example.com", "Ada", &["ml"]));

    let repo = TestRepo::new();
    repo.write("specs/all.yaml", specs(EDITORS));
    let first = repo.commit("projects with access");
    let data = tempfile::tempdir().unwrap();
    let issuer = idp.issuer();
    let up = Up::start_on(
        repo.path(),
        &data.path().join("state"),
        port,
        &[
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            "cairn",
            "--oidc-admin-group",
            "ops",
        ],
        &[("CAIRN_OIDC_CLIENT_SECRET", "client-secret")],
    );
    up.wait_synced(&first);

    // The sign-in page offers the provider.
    let page = send(&up.url("/login"), "GET", &[], None);
    assert!(page.text.contains("/auth/oidc/login"), "{}", page.text);

    // Ada is in `ml`: an editor of lab, nothing in other.
    let cookie = sign_in(&up);
    let me = whoami(&up, &cookie);
    assert_eq!(me["subject"], "user:ada@example.com", "{me}");
    assert_eq!(me["admin"], false);
    assert_eq!(me["groups"], serde_json::json!(["ml"]));
    assert_eq!(
        me["projects"],
        serde_json::json!([{"project": "lab", "role": "editor"}])
    );
    let csrf = me["csrfToken"].as_str().expect("a CSRF token").to_string();

    // What the cookie changes needs the CSRF token.
    let runs = up.url("/api/v1/projects/lab/jobs/train/runs");
    let json = ("content-type", "application/json");
    let forged = send(&runs, "POST", &[("cookie", &cookie), json], Some("{}"));
    assert_eq!(forged.status, 403, "{}", forged.text);
    assert!(forged.text.contains("CSRF"), "{}", forged.text);
    let wrong = send(
        &runs,
        "POST",
        &[("cookie", &cookie), json, ("x-csrf-token", "0000")],
        Some("{}"),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    let started = send(
        &runs,
        "POST",
        &[("cookie", &cookie), json, ("x-csrf-token", &csrf)],
        Some("{}"),
    );
    assert_eq!(started.status, 202, "{}", started.text);
    let elsewhere = send(
        &up.url("/api/v1/projects/other/jobs/report/runs"),
        "POST",
        &[("cookie", &cookie), json, ("x-csrf-token", &csrf)],
        Some("{}"),
    );
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text);
    up.wait_run("train", 1);
    let audit = up.get("/api/v1/audit");
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "run" && e["actor"] == "user:ada@example.com"),
        "{audit}"
    );

    // A broken access block keeps the rules last applied: never opens up,
    // never locks out.
    repo.write(
        "specs/all.yaml",
        specs("    - {role: superuser, groups: [ml]}"),
    );
    let broken = repo.commit("a role that does not exist");
    up.wait_synced(&broken);
    assert_eq!(
        whoami(&up, &cookie)["projects"],
        serde_json::json!([{"project": "lab", "role": "editor"}])
    );
    // A valid change applies: ml is now only a viewer.
    repo.write(
        "specs/all.yaml",
        specs("    - {role: viewer, groups: [ml]}"),
    );
    let narrowed = repo.commit("ml views lab");
    up.wait_synced(&narrowed);
    up.wait_for(Duration::from_secs(10), "the new access rules", || {
        (whoami(&up, &cookie)["projects"][0]["role"] == "viewer").then_some(())
    });
    let refused = send(
        &runs,
        "POST",
        &[("cookie", &cookie), json, ("x-csrf-token", &csrf)],
        Some("{}"),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);

    // Signing out ends the session.
    let out = send(
        &up.url("/logout"),
        "POST",
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(out.status, 303, "{}", out.text);
    let gone = send(
        &up.url("/api/v1/whoami"),
        "GET",
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(gone.status, 401, "{}", gone.text);

    // Members of the operators' group are operators.
    idp.login_as(TestUser::new(
        "user-oli",
        "oli@example.com",
        "Oli",
        &["ops"],
    ));
    let operator = sign_in(&up);
    let me = whoami(&up, &operator);
    assert_eq!(
        (
            me["admin"].as_bool(),
            me["projects"].as_array().unwrap().len()
        ),
        (Some(true), 2),
        "{me}"
    );
    // The client secret is nowhere in the server's log.
    assert!(!up.logs().contains("client-secret"));
}
