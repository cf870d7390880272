//! A running `cairn up` for tests and benchmarks: the real binary on a free
//! port of 127.0.0.1, talked to over HTTP.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long `cairn up` may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `cairn up` process, killed (SIGTERM, then SIGKILL) on drop.
pub struct Up {
    /// The process, until stopped.
    pub child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its `--data-dir`.
    pub data_dir: PathBuf,
    /// Its standard output and error: the data directory with `.log`.
    pub log: PathBuf,
    /// The admin token it made (none with `--auth none`), sent with every
    /// request of [`Up`]'s own methods.
    pub token: Option<String>,
}

/// Why `cairn up` did not come up.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The log file could not be opened.
    #[error("opening {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The binary could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The process ended before it answered.
    #[error("cairn up exited with {status}\n--- cairn up log ---\n{log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log.
        log: String,
    },
    /// It did not answer `/healthz` in time.
    #[error("timed out after {timeout:?} waiting for healthz\n--- cairn up log ---\n{log}")]
    Timeout {
        /// How long it was given.
        timeout: Duration,
        /// Its log.
        log: String,
    },
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Up {
    /// Starts `cairn up REPO` ([`crate::cairn_binary`]) with extra arguments
    /// and environment, and waits until it answers `/healthz`.
    pub fn start(repo: &Path, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Up {
        let port = free_port();
        Self::start_on(repo, data_dir, port, args, env)
    }

    /// Like [`Up::start`] on a given port.
    pub fn start_on(
        repo: &Path,
        data_dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Up {
        Self::launch(&crate::cairn_binary(), repo, data_dir, port, args, env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `binary up REPO` on `port` with extra arguments and environment
    /// (`CAIRN_LOG` is `info` unless `env` says otherwise), and waits until
    /// it answers `/healthz`. `repo` is a path or a URL.
    pub fn launch(
        binary: &Path,
        repo: &Path,
        data_dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Up, UpError> {
        let log = data_dir.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|source| UpError::Log {
                path: log.clone(),
                source,
            })?;
        let mut cmd = Command::new(binary);
        cmd.arg("up")
            .arg(repo)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::from(out.0))
            .stderr(Stdio::from(out.1));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| UpError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
        let mut up = Up {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            log,
            token: None,
        };
        let start = Instant::now();
        loop {
            if up.get_text("/healthz").is_ok_and(|t| t == "ok") {
                up.token = std::fs::read_to_string(data_dir.join("admin-token"))
                    .ok()
                    .map(|t| t.trim().to_string());
                return Ok(up);
            }
            if let Some(status) = up.exited() {
                return Err(UpError::Exited {
                    status,
                    log: up.logs(),
                });
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(UpError::Timeout {
                    timeout: START_TIMEOUT,
                    log: up.logs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, once the process has ended on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// An agent sending `token` (unless a request carries its own
    /// `Authorization`).
    pub fn agent_with(token: Option<&str>, timeout: Duration) -> ureq::Agent {
        let bearer = token.map(|t| format!("Bearer {t}"));
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .middleware(
                move |mut req: ureq::http::Request<ureq::SendBody>,
                      next: ureq::middleware::MiddlewareNext| {
                    if let Some(b) = &bearer
                        && !req.headers().contains_key("authorization")
                        && let Ok(v) = b.parse()
                    {
                        req.headers_mut().insert("authorization", v);
                    }
                    next.handle(req)
                },
            )
            .build()
            .into()
    }

    /// An agent sending the admin token.
    pub fn agent(&self) -> ureq::Agent {
        Self::agent_with(self.token.as_deref(), Duration::from_secs(30))
    }

    /// GET → (status, body text).
    pub fn get_raw(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut r = self.agent().get(&self.url(path)).call()?;
        let status = r.status().as_u16();
        Ok((status, r.body_mut().read_to_string()?))
    }

    /// GET a 2xx text body.
    pub fn get_text(&self, path: &str) -> Result<String, String> {
        match self.get_raw(path) {
            Ok((s, t)) if (200..300).contains(&s) => Ok(t),
            Ok((s, t)) => Err(format!("HTTP {s}: {t}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// GET JSON (panics on errors).
    pub fn get(&self, path: &str) -> Value {
        let text = self
            .get_text(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.logs()));
        serde_json::from_str(&text).unwrap()
    }

    /// POST JSON → (status, JSON).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self.agent().post(&self.url(path)).send_json(body).unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST raw bytes with headers → status.
    pub fn post_bytes(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut req = self.agent().post(&self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.send(body).unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// The status of one resource (`kind`, `name`), if reported.
    pub fn resource(&self, kind: &str, name: &str) -> Option<Value> {
        let s = self.get("/api/v1/status");
        s["resources"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .cloned()
    }

    /// Polls `probe` until it returns Some, or panics with the server log.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- cairn up log ---\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the watched branch's commit `commit` is synced.
    pub fn wait_synced(&self, commit: &str) {
        self.wait_for(
            Duration::from_secs(20),
            &format!("sync of {commit}"),
            || {
                let s = self.get("/api/v1/status");
                (s["lastSync"]["commit"] == commit).then_some(())
            },
        );
    }

    /// Waits for a job run to end; returns it.
    pub fn wait_run(&self, job: &str, number: i64) -> Value {
        self.wait_for(
            Duration::from_secs(60),
            &format!("{job} run #{number}"),
            || {
                let (status, text) = self
                    .get_raw(&format!("/api/v1/jobs/{job}/runs/{number}"))
                    .ok()?;
                if status != 200 {
                    return None;
                }
                let v: Value = serde_json::from_str(&text).ok()?;
                matches!(
                    v["state"].as_str(),
                    Some("succeeded" | "failed" | "skipped")
                )
                .then_some(v)
            },
        )
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL (a crash), leaving its workloads.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}
