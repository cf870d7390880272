//! `cairn up` with applications and change detection: the `/apps/NAME/`
//! proxy (HTTP and WebSockets), rollouts, broken specs, deletions,
//! webhooks, file-system events, work-tree mode, remote repositories and
//! adoption of running replicas after a crash.
//!
//! The application is a small Python 3 standard-library server committed
//! into each test repository.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The application: HTTP/1.1 by hand on one port (so that the same
/// connection handler can also take a WebSocket upgrade), `/healthz`, `/`
/// (prints its version, commit, pid, port and the path it saw), `/echo/...`
/// (prints the path it saw) and a WebSocket echo at `/ws` (RFC 6455).
const SERVER_PY: &str = r#""""A test application: HTTP and a WebSocket echo on one port, stdlib only."""
import base64
import hashlib
import os
import socketserver
import struct
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["PORT"])
VERSION = os.environ.get("VERSION", "none")
COMMIT = os.environ.get("CAIRN_COMMIT", "none")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            parts = line.decode("latin-1").split()
            if not parts:
                continue
            target = parts[1] if len(parts) > 1 else "/"
            headers = {}
            while True:
                h = self.rfile.readline(65537).decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                name, _, value = h.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            path = target.split("?", 1)[0]
            if "websocket" in headers.get("upgrade", "").lower():
                if path == "/ws" and "sec-websocket-key" in headers:
                    self.websocket(headers["sec-websocket-key"])
                    return
                self.send(400, "not a websocket endpoint\n")
            elif path == "/healthz":
                self.send(200, "ok\n")
            elif path == "/":
                self.send(
                    200,
                    f"version={VERSION} commit={COMMIT} pid={os.getpid()} port={PORT} path={target}\n",
                )
            elif path.startswith("/echo"):
                self.send(200, f"path={target}\n")
            else:
                self.send(404, f"not found: {target}\n")
            if headers.get("connection", "").lower() == "close":
                return

    def send(self, status, text):
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode("latin-1") + body)
        self.wfile.flush()

    def websocket(self, key):
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.wfile.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            data = bytearray(self.rfile.read(length))
            for i in range(len(data)):
                data[i] ^= mask[i % 4]
            if opcode in (0x1, 0x2):
                self.frame(opcode, bytes(data))
            elif opcode == 0x8:
                self.frame(0x8, bytes(data[:2]))
                return
            elif opcode == 0x9:
                self.frame(0xA, bytes(data))

    def frame(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        self.wfile.write(head + payload)
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("127.0.0.1", PORT), Handler) as server:
        print(f"serving version {VERSION} on port {PORT}", flush=True)
        server.serve_forever()
"#;

/// An application spec serving `app/server.py` as `name`.
fn app_spec(name: &str, version: &str, replicas: u32) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Application
metadata:
  name: {name}
spec:
  framework: command
  command: [python3, server.py, \"$(PORT)\"]
  path: app
  healthPath: /healthz
  replicas: {replicas}
  env:
    VERSION: {version}
"
    )
}

/// A project, its pool, the server and application `web` at `version`.
fn write_app_repo(repo: &TestRepo, version: &str, replicas: u32) {
    repo.write("specs/project.yaml", cairn_test_support::PROJECT)
        .write("specs/web.yaml", app_spec("web", version, replicas))
        .write("app/server.py", SERVER_PY);
}

const DATASET: &str = "apiVersion: cairn/v1
kind: Dataset
metadata:
  name: events
spec:
  source: https://example.com/events.csv
  format: csv
";

/// An HTTP client that reports every status as a response and sends the
/// server's admin token (applications answer signed-in callers).
fn agent(up: &Up, timeout: Duration) -> ureq::Agent {
    Up::agent_with(up.token.as_deref(), timeout)
}

/// GET `http://127.0.0.1:PORT/PATH` → (status, body).
fn get(agent: &ureq::Agent, port: u16, path: &str) -> Result<(u16, String), String> {
    let mut r = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// `key=value` out of the application's answer.
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Waits until `/apps/NAME/` answers 200 with `version=VERSION`; returns the body.
fn wait_app(up: &Up, name: &str, version: &str) -> String {
    let agent = agent(up, Duration::from_secs(10));
    up.wait_for(
        Duration::from_secs(30),
        &format!("{name} serving {version}"),
        || {
            get(&agent, up.port, &format!("/apps/{name}/"))
                .ok()
                .filter(|(s, b)| *s == 200 && field(b, "version") == Some(version))
                .map(|(_, b)| b)
        },
    )
}

/// Waits until resource `kind`/`name` is in `phase`; returns its status.
fn wait_phase(up: &Up, kind: &str, name: &str, phase: &str) -> Value {
    up.wait_for(
        Duration::from_secs(30),
        &format!("{kind} {name} {phase}"),
        || up.resource(kind, name).filter(|r| r["phase"] == phase),
    )
}

/// Whether process `pid` is alive (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name in parentheses.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Kills a replica left behind by a failed test (SIGKILL to its group).
struct ReplicaGuard(u32);

impl Drop for ReplicaGuard {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if alive(self.0) && String::from_utf8_lossy(&cmdline).contains("server.py") {
            unsafe {
                libc::killpg(self.0 as i32, libc::SIGKILL);
            }
        }
    }
}

/// A bare clone of `source` and its `file://` URL.
fn bare_clone(source: &TestRepo, dir: &Path) -> String {
    let path = dir.join("origin.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(source.path().to_str().unwrap(), &path)
        .expect("bare clone");
    format!("file://{}", path.display())
}

/// Pushes `main` of `source` to `url`.
fn push(source: &TestRepo, url: &str) {
    let mut remote = source.repo.remote_anonymous(url).expect("remote");
    remote
        .push(&["+refs/heads/main:refs/heads/main"], None)
        .expect("push");
}

/// Commits only `paths` (leaving other changes of the work tree alone).
fn commit_paths(repo: &TestRepo, paths: &[&str], message: &str) -> String {
    let mut index = repo.repo.index().unwrap();
    for p in paths {
        index.add_path(Path::new(p)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Ada Lovelace", "ada@example.com").unwrap();
    let parent = repo.repo.head().unwrap().peel_to_commit().unwrap();
    repo.repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .unwrap()
        .to_string()
}

fn state_dir(data: &tempfile::TempDir) -> PathBuf {
    data.path().join("state")
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ------------------------------------------------------------------ tests --

#[test]
fn an_application_is_served_under_its_prefix_with_websockets() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let repo = TestRepo::new();
    write_app_repo(&repo, "v1", 1);
    let commit = repo.commit("an application");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
    up.wait_synced(&commit);

    let body = wait_app(&up, "web", "v1");
    assert_eq!(field(&body, "commit"), Some(commit.as_str()), "{body}");
    assert_eq!(field(&body, "path"), Some("/"), "{body}");
    let status = wait_phase(&up, "Application", "web", "Ready");
    assert!(
        status["message"].as_str().unwrap().contains("/apps/web/"),
        "{status}"
    );

    // The prefix is stripped; the query string goes along.
    let agent = agent(&up, Duration::from_secs(10));
    let (code, body) = get(&agent, up.port, "/apps/web/echo/a/b?x=1&y=2").unwrap();
    assert_eq!(code, 200);
    assert_eq!(body.trim(), "path=/echo/a/b?x=1&y=2");
    let (code, body) = get(&agent, up.port, "/apps/web").unwrap();
    assert_eq!(code, 200);
    assert_eq!(field(&body, "path"), Some("/"), "{body}");
    let (code, _) = get(&agent, up.port, "/apps/web/missing").unwrap();
    assert_eq!(code, 404, "the application's own 404 is relayed");
    let (code, body) = get(&agent, up.port, "/apps/nope/").unwrap();
    assert_eq!(code, 503, "{body}");

    // A WebSocket echo through the proxy.
    let url = format!("ws://127.0.0.1:{}/apps/web/ws", up.port);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", up.token.as_deref().unwrap_or_default())
            .parse()
            .unwrap(),
    );
    tokio_runtime().block_on(async {
        let limit = Duration::from_secs(10);
        let (mut socket, response) =
            tokio::time::timeout(limit, tokio_tungstenite::connect_async(request))
                .await
                .expect("websocket handshake in time")
                .expect("websocket handshake");
        assert_eq!(response.status().as_u16(), 101);

        for text in ["hello", "", "ünïcödé ✓"] {
            socket.send(Message::text(text)).await.unwrap();
            let echo = tokio::time::timeout(limit, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(echo, Message::text(text));
        }
        // Binary, with a 16-bit and a 64-bit length.
        for size in [300usize, 70_000] {
            let blob: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            socket.send(Message::binary(blob.clone())).await.unwrap();
            let echo = tokio::time::timeout(limit, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(echo, Message::binary(blob));
        }

        socket
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            })))
            .await
            .unwrap();
        let closed = tokio::time::timeout(limit, async {
            let mut code = None;
            while let Some(msg) = socket.next().await {
                match msg {
                    Ok(Message::Close(frame)) => code = frame.map(|f| f.code),
                    Ok(other) => panic!("unexpected message {other:?}"),
                    Err(_) => break,
                }
            }
            code
        })
        .await
        .expect("the close handshake finishes");
        assert_eq!(closed, Some(CloseCode::Normal));
    });
}

#[test]
fn a_changed_application_rolls_out_without_failed_requests() {
    let repo = TestRepo::new();
    write_app_repo(&repo, "v1", 2);
    let first = repo.commit("v1");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
    up.wait_synced(&first);
    wait_app(&up, "web", "v1");
    wait_phase(&up, "Application", "web", "Ready");

    // The v1 replicas, by pid.
    let agent = agent(&up, Duration::from_secs(10));
    let mut old_pids = std::collections::BTreeSet::new();
    up.wait_for(
        Duration::from_secs(10),
        "both v1 replicas answering",
        || {
            let (_, body) = get(&agent, up.port, "/apps/web/").ok()?;
            old_pids.insert(field(&body, "pid")?.parse::<u32>().ok()?);
            (old_pids.len() == 2).then_some(())
        },
    );

    // Ask continuously while the change rolls out.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let port = up.port;
        let agent = self::agent(&up, Duration::from_secs(10));
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(get(&agent, port, "/apps/web/"));
            }
            seen
        })
    };
    repo.write("specs/web.yaml", app_spec("web", "v2", 2));
    let second = repo.commit("v2");
    up.wait_synced(&second);
    wait_app(&up, "web", "v2");
    wait_phase(&up, "Application", "web", "Ready");
    up.wait_for(Duration::from_secs(20), "the v1 replicas to exit", || {
        old_pids.iter().all(|&p| !alive(p)).then_some(())
    });
    // A little more traffic once only v2 is left.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = poller.join().unwrap();

    let failed: Vec<_> = seen.iter().filter(|r| !matches!(r, Ok((200, _)))).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rollout, e.g. {:?}\n{}",
        failed.len(),
        seen.len(),
        failed.first(),
        up.logs()
    );
    let versions: Vec<&str> = seen
        .iter()
        .filter_map(|r| field(&r.as_ref().ok()?.1, "version"))
        .collect();
    assert!(versions.contains(&"v1"), "{versions:?}");
    assert_eq!(versions.last(), Some(&"v2"));
    let new_body = wait_app(&up, "web", "v2");
    assert_eq!(field(&new_body, "commit"), Some(second.as_str()));
    let new_pid: u32 = field(&new_body, "pid").unwrap().parse().unwrap();
    assert!(!old_pids.contains(&new_pid));
}

#[test]
fn broken_specs_leave_running_applications_alone() {
    let repo = TestRepo::new();
    write_app_repo(&repo, "v1", 1);
    repo.write("specs/api.yaml", app_spec("api", "v1", 1));
    let first = repo.commit("two applications");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
    up.wait_synced(&first);
    let web_before = wait_app(&up, "web", "v1");
    let api_before = wait_app(&up, "api", "v1");
    wait_phase(&up, "Application", "web", "Ready");
    wait_phase(&up, "Application", "api", "Ready");

    // A syntax error in the other application's file, a type error (and a
    // new version) in web's own.
    repo.write(
        "specs/api.yaml",
        app_spec("api", "v2", 1).replace("  path: app\n", "  path: [app\n"),
    );
    let web_broken = app_spec("web", "v2", 1).replace("replicas: 1", "replicas: many");
    let type_line = web_broken
        .lines()
        .position(|l| l.contains("replicas: many"))
        .unwrap()
        + 1;
    repo.write("specs/web.yaml", &web_broken);
    let broken = repo.commit("break both");
    up.wait_synced(&broken);

    let status = up.get("/api/v1/status");
    assert!(status["errors"].as_u64().unwrap() >= 2, "{status:#}");
    let diagnostics = status["diagnostics"].as_array().unwrap();
    for file in ["specs/web.yaml", "specs/api.yaml"] {
        let d = diagnostics
            .iter()
            .find(|d| d["file"] == file && d["severity"] == "error")
            .unwrap_or_else(|| panic!("no diagnostic for {file}: {status:#}"));
        assert!(d["line"].as_u64().is_some(), "{d}");
        assert!(!d["message"].as_str().unwrap().is_empty());
    }
    let web_diag = diagnostics
        .iter()
        .find(|d| d["file"] == "specs/web.yaml")
        .unwrap();
    assert_eq!(web_diag["line"], type_line as u64, "{web_diag}");

    for name in ["web", "api"] {
        let s = wait_phase(&up, "Application", name, "Invalid");
        let file = format!("specs/{name}.yaml:");
        assert!(
            s["message"].as_str().unwrap().contains(&file),
            "the message points into the file: {s}"
        );
    }
    let web = up.resource("Application", "web").unwrap();
    assert!(
        web["message"]
            .as_str()
            .unwrap()
            .contains(&format!("specs/web.yaml:{type_line}")),
        "{web}"
    );

    // Both keep serving their old version, from the same processes.
    let agent = agent(&up, Duration::from_secs(10));
    for (name, before) in [("web", &web_before), ("api", &api_before)] {
        let (code, body) = get(&agent, up.port, &format!("/apps/{name}/")).unwrap();
        assert_eq!(code, 200, "{body}");
        assert_eq!(field(&body, "version"), Some("v1"), "{body}");
        assert_eq!(field(&body, "pid"), field(before, "pid"), "{body}");
        assert_eq!(field(&body, "commit"), Some(first.as_str()));
    }

    // Fixing the files brings them back.
    repo.write("specs/web.yaml", app_spec("web", "v2", 1));
    repo.write("specs/api.yaml", app_spec("api", "v1", 1));
    let fixed = repo.commit("fix both");
    up.wait_synced(&fixed);
    let web_after = wait_app(&up, "web", "v2");
    assert_eq!(field(&web_after, "commit"), Some(fixed.as_str()));
    wait_phase(&up, "Application", "web", "Ready");
    wait_phase(&up, "Application", "api", "Ready");
    let (_, api_after) = get(&agent, up.port, "/apps/api/").unwrap();
    assert_eq!(
        field(&api_after, "pid"),
        field(&api_before, "pid"),
        "api was not restarted"
    );
    assert_eq!(up.get("/api/v1/status")["errors"], 0);
}

#[test]
fn removing_a_spec_stops_its_workload() {
    let repo = TestRepo::new();
    write_app_repo(&repo, "v1", 1);
    let first = repo.commit("an application");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
    up.wait_synced(&first);
    let body = wait_app(&up, "web", "v1");
    let pid: u32 = field(&body, "pid").unwrap().parse().unwrap();
    let port: u16 = field(&body, "port").unwrap().parse().unwrap();
    let _guard = ReplicaGuard(pid);
    assert!(alive(pid));

    repo.remove("specs/web.yaml");
    let removed = repo.commit("remove the application");
    up.wait_synced(&removed);

    let agent = agent(&up, Duration::from_secs(5));
    up.wait_for(Duration::from_secs(20), "/apps/web/ to answer 503", || {
        matches!(get(&agent, up.port, "/apps/web/"), Ok((503, _))).then_some(())
    });
    up.wait_for(
        Duration::from_secs(20),
        "the replica process to exit",
        || (!alive(pid)).then_some(()),
    );
    up.wait_for(Duration::from_secs(20), "the replica port to close", || {
        get(&agent, port, "/healthz").is_err().then_some(())
    });
    let left = up.resource("Application", "web");
    assert!(left.is_none(), "the status is gone: {left:?}");
    let audit = up.get("/api/v1/audit");
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "delete" && e["resource"].as_str().unwrap().contains("web")),
        "{audit:#}"
    );
}

#[test]
fn webhooks_are_verified_and_trigger_a_sync() {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    let sign = |secret: &str, body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };

    // A remote repository that is (practically) never polled: only webhooks
    // make the controller fetch.
    let source = TestRepo::new();
    source.write("specs/project.yaml", cairn_test_support::PROJECT);
    let first = source.commit("initial");
    let dirs = tempfile::tempdir().unwrap();
    let url = bare_clone(&source, dirs.path());
    let cache = dirs.path().join("cache");
    let up = Up::start(
        Path::new(&url),
        &dirs.path().join("state"),
        &[
            "--webhook-secret",
            "s3cret",
            "--poll-interval",
            "1h",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    up.wait_synced(&first);

    source.write("specs/data.yaml", DATASET);
    let second = source.commit("a dataset");
    push(&source, &url);

    let push_body = |branch: &str| {
        serde_json::to_vec(&serde_json::json!({
            "ref": format!("refs/heads/{branch}"),
            "after": second,
            "repository": {"clone_url": url},
        }))
        .unwrap()
    };
    let body = push_body("main");

    // A wrong signature, a signature over another body, none at all: 401.
    let wrong = sign("not the secret", &body);
    let other = sign("s3cret", &push_body("dev"));
    for headers in [
        vec![
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", wrong.as_str()),
        ],
        vec![
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", other.as_str()),
        ],
        vec![("X-GitHub-Event", "push")],
    ] {
        let mut headers = headers;
        headers.push(("Content-Type", "application/json"));
        let (code, text) = up.post_bytes("/hooks/git", &headers, &body);
        assert_eq!(code, 401, "{headers:?}: {text}");
    }

    // A push to another branch is accepted but ignored.
    let dev = push_body("dev");
    let dev_sig = sign("s3cret", &dev);
    let (code, text) = up.post_bytes(
        "/hooks/git",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &dev_sig),
            ("Content-Type", "application/json"),
        ],
        &dev,
    );
    assert_eq!(code, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["accepted"], false, "{answer}");

    // Nothing was fetched or synced meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let status = up.get("/api/v1/status");
    assert_eq!(status["lastSync"]["commit"], first, "{status:#}");
    assert!(up.resource("Dataset", "events").is_none());

    // A good one fetches and syncs.
    let good = sign("s3cret", &body);
    let (code, text) = up.post_bytes(
        "/hooks/git",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &good),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(code, 202, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["accepted"], true, "{answer}");
    assert_eq!(answer["provider"], "github");
    up.wait_synced(&second);
    assert!(up.resource("Dataset", "events").is_some());
}

#[test]
fn commits_are_noticed_through_file_system_events() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", cairn_test_support::PROJECT);
    let first = repo.commit("initial");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
    up.wait_synced(&first);

    for round in 0..3 {
        repo.write(
            "specs/data.yaml",
            DATASET.replace("events", &format!("events-{round}")),
        );
        let commit = repo.commit(&format!("round {round}"));
        let started = Instant::now();
        up.wait_for(Duration::from_secs(5), &format!("sync of {commit}"), || {
            let s = up.get("/api/v1/status");
            (s["lastSync"]["commit"] == commit.as_str()).then_some(s)
        });
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(up.resource("Dataset", &format!("events-{round}")).is_some());
    }
}

#[test]
fn watch_worktree_applies_uncommitted_edits() {
    // With the flag: an edit that is only saved is applied.
    {
        let repo = TestRepo::new();
        write_app_repo(&repo, "v1", 1);
        repo.commit("v1");
        let data = tempfile::tempdir().unwrap();
        let up = Up::start(repo.path(), &state_dir(&data), &["--watch-worktree"], &[]);
        wait_app(&up, "web", "v1");
        repo.write("specs/web.yaml", app_spec("web", "v2", 1));
        repo.write("specs/data.yaml", DATASET);
        let body = wait_app(&up, "web", "v2");
        assert_eq!(field(&body, "commit"), Some("worktree"), "{body}");
        up.wait_for(Duration::from_secs(10), "the dataset", || {
            up.resource("Dataset", "events")
        });
        assert_eq!(up.get("/api/v1/status")["lastSync"]["commit"], "worktree");
    }
    // Without it: only commits count, even when a commit comes after the edit.
    {
        let repo = TestRepo::new();
        write_app_repo(&repo, "v1", 1);
        let first = repo.commit("v1");
        let data = tempfile::tempdir().unwrap();
        let up = Up::start(repo.path(), &state_dir(&data), &[], &[]);
        up.wait_synced(&first);
        wait_app(&up, "web", "v1");
        repo.write("specs/web.yaml", app_spec("web", "v2", 1));
        repo.write("specs/data.yaml", DATASET);
        let second = commit_paths(&repo, &["specs/data.yaml"], "only the dataset");
        up.wait_synced(&second);
        up.wait_for(Duration::from_secs(10), "the dataset", || {
            up.resource("Dataset", "events")
        });
        let agent = agent(&up, Duration::from_secs(10));
        let (code, body) = get(&agent, up.port, "/apps/web/").unwrap();
        assert_eq!(code, 200);
        assert_eq!(field(&body, "version"), Some("v1"), "{body}");
        assert_eq!(field(&body, "commit"), Some(first.as_str()), "{body}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", cairn_test_support::PROJECT);
    repo.commit("initial");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let out = cairn_test_support::cairn()
        .arg("up")
        .arg(repo.path())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path())
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    drop(taken);
}

#[test]
fn a_remote_repository_is_cloned_and_followed() {
    let source = TestRepo::new();
    source.write("specs/project.yaml", cairn_test_support::PROJECT);
    let first = source.commit("initial");
    let dirs = tempfile::tempdir().unwrap();
    let url = bare_clone(&source, dirs.path());
    let cache = dirs.path().join("cache");
    let up = Up::start(
        Path::new(&url),
        &dirs.path().join("state"),
        &[
            "--poll-interval",
            "1s",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    up.wait_synced(&first);
    let status = up.get("/api/v1/status");
    assert_eq!(status["repository"], url.as_str(), "{status:#}");
    assert_eq!(status["revision"], "main");
    assert!(
        cache.join("repos").is_dir(),
        "cloned under the cache directory"
    );

    source.write("specs/data.yaml", DATASET);
    let second = source.commit("a dataset");
    push(&source, &url);
    up.wait_synced(&second);
    assert!(up.resource("Dataset", "events").is_some());

    source.remove("specs/data.yaml");
    let third = source.commit("no dataset");
    push(&source, &url);
    up.wait_synced(&third);
    assert!(up.resource("Dataset", "events").is_none());
}

#[test]
fn a_restarted_controller_adopts_running_applications() {
    let repo = TestRepo::new();
    write_app_repo(&repo, "v1", 1);
    let commit = repo.commit("an application");
    let data = tempfile::tempdir().unwrap();
    let state = state_dir(&data);
    let mut up = Up::start(repo.path(), &state, &[], &[]);
    up.wait_synced(&commit);
    let body = wait_app(&up, "web", "v1");
    let pid: u32 = field(&body, "pid").unwrap().parse().unwrap();
    let port: u16 = field(&body, "port").unwrap().parse().unwrap();
    let _guard = ReplicaGuard(pid);

    // Ask the replica directly, all the time, across the crash and restart.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let agent = Up::agent_with(None, Duration::from_secs(5));
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(get(&agent, port, "/"));
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        })
    };

    up.crash();
    assert!(alive(pid), "the replica outlives the controller");
    let log_before = up.logs().len();
    let up = Up::start(repo.path(), &state, &[], &[]);
    let body = wait_app(&up, "web", "v1");
    assert_eq!(
        field(&body, "pid"),
        Some(pid.to_string().as_str()),
        "{body}"
    );
    wait_phase(&up, "Application", "web", "Ready");
    stop.store(true, Ordering::Relaxed);
    let seen = poller.join().unwrap();

    let log = up.logs();
    assert!(
        log[log_before..].contains(&format!("adopted process {pid} on port {port}")),
        "{log}"
    );
    let failed: Vec<_> = seen
        .iter()
        .filter(|r| !matches!(r, Ok((200, b)) if field(b, "pid") == Some(pid.to_string().as_str())))
        .collect();
    assert!(
        failed.is_empty() && !seen.is_empty(),
        "{} of {} direct requests failed: {:?}",
        failed.len(),
        seen.len(),
        failed.first()
    );
    let status = up.get("/api/v1/status");
    assert_eq!(status["lastSync"]["commit"], commit.as_str());
}
