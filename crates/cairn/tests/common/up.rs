//! A running `cairn up` for integration tests: the real binary on a free
//! port of 127.0.0.1, talked to over HTTP.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `cairn up` process, killed (SIGTERM, then SIGKILL) on drop.
pub struct Up {
    pub child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
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
    /// Starts `cairn up REPO` with extra arguments and environment, and
    /// waits until it answers `/healthz`.
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
        let log = data_dir.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cairn"));
        cmd.arg("up")
            .arg(repo)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start cairn up");
        let up = Up {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        up.wait_for(Duration::from_secs(30), "healthz", || {
            up.get_text("/healthz").ok().filter(|t| t == "ok")
        });
        up
    }

    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    /// GET → (status, body text).
    pub fn get_raw(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut r = Self::agent().get(&self.url(path)).call()?;
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
        let mut r = Self::agent().post(&self.url(path)).send_json(body).unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST raw bytes with headers → status.
    pub fn post_bytes(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut req = Self::agent().post(&self.url(path));
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
