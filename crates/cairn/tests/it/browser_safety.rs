//! What a web page the operator visits cannot make `cairn up` do: a
//! cross-site "simple" POST, a write from another origin, or reading the
//! API through a DNS-rebound name. Raw HTTP/1.1 over TCP, so that `Host`,
//! `Origin` and `Content-Type` are exactly what a browser would send.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use std::io::{Read, Write};
use std::net::TcpStream;

/// A job that may be run by hand.
const JOB: &str = "apiVersion: cairn/v1
kind: Job
metadata:
  name: hello
spec:
  command: echo hello
  trigger: {manual: true}
";

/// Sends one request; returns the status and the body.
fn send(up: &Up, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", up.port)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    // Signed in as the operator: what is refused here is refused for what
    // the request looks like, not for who sent it.
    if let Some(token) = &up.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn pages_of_other_sites_cannot_write_or_read() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", cairn_test_support::PROJECT);
    repo.write("specs/hello.yaml", JOB);
    let commit = repo.commit("a job");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(
        repo.path(),
        &data.path().join("state"),
        &["--cors-origin", "https://ui.example.com"],
        &[],
    );
    up.wait_synced(&commit);
    let here = format!("127.0.0.1:{}", up.port);
    let runs = "/api/v1/projects/churn/jobs/hello/runs";

    // A form or `fetch(..., {mode: "no-cors"})` from another site: a
    // "simple" text/plain POST with that site's Origin.
    let (status, body) = send(
        &up,
        "POST",
        runs,
        &[
            ("Host", &here),
            ("Origin", "https://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        "{}",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-origin"), "{body}");
    // The same without an Origin (an old browser, a proxy that strips it):
    // still not JSON, so not read.
    let (status, body) = send(
        &up,
        "POST",
        runs,
        &[("Host", &here), ("Content-Type", "text/plain")],
        "{}",
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/json"), "{body}");
    // JSON from another origin needs a preflight, which CORS refuses; sent
    // anyway, the write is refused.
    let (status, _) = send(
        &up,
        "POST",
        runs,
        &[
            ("Host", &here),
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert_eq!(status, 403);
    let (status, headers) = send(
        &up,
        "OPTIONS",
        runs,
        &[
            ("Host", &here),
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert!(!headers.contains("evil.example"), "{status} {headers}");
    // Nothing ran.
    assert_eq!(up.get(runs)["runs"].as_array().unwrap().len(), 0);

    // The operator's named origin, and the dashboard's own, may.
    let (status, body) = send(
        &up,
        "POST",
        runs,
        &[
            ("Host", &here),
            ("Origin", "https://ui.example.com"),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert_eq!(status, 202, "{body}");
    let (status, body) = send(
        &up,
        "POST",
        runs,
        &[
            ("Host", &here),
            ("Origin", &format!("http://{here}")),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert_eq!(status, 202, "{body}");

    // DNS rebinding: a page on another name that resolves to 127.0.0.1
    // reads nothing.
    let (status, body) = send(
        &up,
        "GET",
        "/api/v1/status",
        &[("Host", &format!("rebind.attacker.example:{}", up.port))],
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allowed-host"), "{body}");
    assert!(!body.contains("churn"), "{body}");
    let (status, _) = send(
        &up,
        "GET",
        "/api/v1/status",
        &[("Host", &format!("localhost:{}", up.port))],
        "",
    );
    assert_eq!(status, 200);
}
