//! The web dashboard of `cairn up`, end to end: the real binary serving the
//! quickstart classifier and a job, with predictions and feedback so that
//! the charts have data; the pages fetched over HTTP, then rendered by
//! headless Chromium (when it is installed) with the DOM checked: charts
//! drawn with real points and no script errors. Screenshots go to the
//! workspace's `target/dashboard-PAGE.png`.

use cairn_test_support::{CLASSIFIER, CLF_MODEL as MODEL, LAB_PROJECT as PROJECT, SAMPLE_BATCH};

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const JOB: &str = "apiVersion: cairn/v1
kind: Job
metadata:
  name: hello
spec:
  command: [python3, hello.py]
  workdir: jobs
";

const FEATURES: [&str; 4] = [
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "worst_concavity",
];

fn post_json(up: &Up, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = up.post_bytes(
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A started `cairn up` with traffic, feedback, business metrics and a
/// finished job run.
fn start() -> (TestRepo, tempfile::TempDir, Up) {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", PROJECT)
        .write("specs/model.yaml", MODEL)
        .write("specs/job.yaml", JOB)
        .write(
            "jobs/hello.py",
            "print('hello from the job <b>not bold</b>')\n",
        )
        .write(
            "models/classifier.onnx",
            std::fs::read(CLASSIFIER).expect("the quickstart model"),
        );
    let commit = repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    up.wait_for(Duration::from_secs(60), "model clf", || {
        let (status, text) = up.get_raw("/v2/models/clf/ready").ok()?;
        (status == 200 && text.contains("true")).then_some(())
    });

    // Predictions, one per sample row, a feedback label for most of them
    // and a business metric for some.
    let batch: Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE_BATCH).unwrap()).unwrap();
    let rows = batch["request"]["instances"].as_array().unwrap().clone();
    let mut uuids = Vec::new();
    for _ in 0..3 {
        for row in &rows {
            let request: serde_json::Map<String, Value> = FEATURES
                .iter()
                .zip(row.as_array().unwrap())
                .map(|(f, v)| (f.to_string(), v.clone()))
                .collect();
            let (status, body) =
                post_json(&up, "/models/clf/predict", &json!({"request": request}));
            assert_eq!(status, 200, "{body}");
            uuids.push(body["uuid"].as_str().unwrap().to_string());
        }
    }
    // One failed prediction, for the errors chart.
    let (status, _) = post_json(&up, "/models/clf/predict", &json!({"request": {"x": 1}}));
    assert!(status >= 400);
    let feedback: Vec<Value> = uuids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 3)
        .map(|(i, u)| json!({"uuid": u, "label": i % 2}))
        .collect();
    let (status, body) = post_json(&up, "/models/clf/feedback", &json!(feedback));
    assert_eq!(status, 200, "{body}");
    let metrics: Vec<Value> = uuids
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, u)| json!({"uuid": u, "metrics": {"revenue": 10 * (i + 1), "segment": "a"}}))
        .collect();
    let (status, body) = post_json(&up, "/models/clf/metrics", &json!(metrics));
    assert_eq!(status, 200, "{body}");

    // A job run, for the jobs pages.
    let (status, body) = post_json(&up, "/api/v1/jobs/hello/runs", &json!({}));
    assert_eq!(status, 202, "{body}");
    let run = up.wait_run("hello", 1);
    assert_eq!(run["state"], "succeeded", "{run}\n{}", up.logs());

    // The 10-second series has a point with the traffic.
    up.wait_for(Duration::from_secs(30), "a metrics sample", || {
        let m = up.get("/api/v1/models/clf/metrics");
        m["series"]
            .as_array()?
            .iter()
            .any(|p| p["requests"].as_u64() > Some(0))
            .then_some(())
    });
    (repo, data, up)
}

#[test]
fn dashboard_pages() {
    let (_repo, _data, up) = start();

    // Server-rendered pages, without a browser.
    let overview = up.get_text("/").unwrap();
    assert!(overview.contains("<h1>Overview</h1>"), "{overview}");
    assert!(
        overview.contains(r#"data-kind="Model" data-name="clf""#),
        "{overview}"
    );
    assert!(overview.contains(r#"<a href="/models/clf">"#), "{overview}");
    assert!(overview.contains(r#"<span class="badge ok">Ready</span>"#));
    let models = up.get_text("/models").unwrap();
    assert!(models.contains(r#"<tr data-model="clf">"#), "{models}");
    assert!(models.contains(">v1<"), "{models}");
    let model = up.get_text("/models/clf").unwrap();
    for id in [
        "chart-throughput",
        "chart-latency",
        "chart-errors",
        "chart-accuracy",
        "chart-resources",
    ] {
        assert!(model.contains(&format!("id=\"{id}\"")), "{id}: {model}");
    }
    assert!(model.contains("<strong>revenue</strong>"), "{model}");
    let jobs = up.get_text("/jobs").unwrap();
    assert!(
        jobs.contains(r#"<a href="/jobs/hello/runs/1?project=lab">hello #1</a>"#),
        "{jobs}"
    );
    let run = up.get_text("/jobs/hello/runs/1").unwrap();
    assert!(
        run.contains("hello from the job &lt;b&gt;not bold&lt;/b&gt;"),
        "the log is escaped: {run}"
    );
    let (status, page) = up.get_raw("/models/nope").unwrap();
    assert_eq!(status, 404);
    assert!(page.contains("no model `nope` is served"), "{page}");
    let (status, _) = up.get_raw("/jobs/hello/runs/9").unwrap();
    assert_eq!(status, 404);
    assert!(up.get_text("/apps").unwrap().contains("No applications"));

    // Assets: bundled, cached for long.
    let mut r = ureq::get(&up.url("/assets/uPlot.iife.min.js"))
        .call()
        .unwrap();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(r.body_mut().read_to_string().unwrap().contains("uPlot"));
    let (status, _) = up.get_raw("/assets/nope.js").unwrap();
    assert_eq!(status, 404);
    // The API is still the API.
    assert!(up.get("/api/v1/status")["resources"].is_array());

    // In a browser.
    let Some(chromium) = chromium() else {
        eprintln!("note: `chromium` is not on PATH; skipping the browser checks");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser {
        binary: chromium,
        profile: profile.path().to_path_buf(),
    };

    // Signed out, a page sends the browser to sign in; the link `cairn up`
    // prints signs it in (a session cookie, kept in the profile).
    let dom = browser.dump_dom(&up.url("/models"));
    assert!(
        dom.contains("<h1>Sign in</h1>") && dom.contains("name=\"next\" value=\"/models\""),
        "{dom}"
    );
    let token = up.token.clone().expect("an admin token");
    let dom = browser.dump_dom(&up.url(&format!("/login?token={token}&next=/jobs")));
    assert!(dom.contains("hello"), "not signed in: {dom}");

    let dom = browser.dump_dom(&up.url("/"));
    assert_no_errors(&dom);
    assert!(
        dom.contains(r#"data-kind="Model" data-name="clf""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<span class="badge ok">Ready</span>"#),
        "{dom}"
    );

    let dom = browser.dump_dom(&up.url("/models/clf"));
    assert_no_errors(&dom);
    for id in [
        "chart-throughput",
        "chart-latency",
        "chart-errors",
        "chart-accuracy",
        "chart-resources",
    ] {
        let points = data_points(&dom, id);
        assert!(points > 0, "{id} has no points drawn: {dom}");
    }
    assert!(dom.matches("<canvas").count() >= 5, "uPlot canvases: {dom}");
    assert!(dom.contains("class=\"uplot"), "{dom}");

    let dom = browser.dump_dom(&up.url("/jobs/hello/runs/1"));
    assert_no_errors(&dom);
    assert!(dom.contains("hello from the job"), "{dom}");

    for (page, path) in [
        ("overview", "/"),
        ("models", "/models"),
        ("model", "/models/clf"),
        ("jobs", "/jobs"),
        ("run", "/jobs/hello/runs/1"),
    ] {
        let file = target_dir().join(format!("dashboard-{page}.png"));
        browser.screenshot(&up.url(path), &file);
        assert!(
            std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > 1000,
            "no screenshot at {}",
            file.display()
        );
    }
}

pub(super) fn assert_no_errors(dom: &str) {
    let start = dom
        .find("<div id=\"errors\" class=\"errors\">")
        .unwrap_or_else(|| panic!("no errors box: {dom}"));
    let rest = &dom[start..];
    assert!(
        rest.starts_with("<div id=\"errors\" class=\"errors\"></div>"),
        "script errors: {}",
        &rest[..rest.len().min(2000)]
    );
}

/// The `data-points` of the element with id `id`.
pub(super) fn data_points(dom: &str, id: &str) -> u64 {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_end = start + dom[start..].find('>').unwrap();
    let tag = &dom[start..tag_end];
    tag.split("data-points=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The workspace's `target/` directory.
pub(super) fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cairn_test_support::workspace_root().join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

pub(super) struct Browser {
    pub(super) binary: PathBuf,
    pub(super) profile: PathBuf,
}

impl Browser {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", self.profile.display()))
        .stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd`, killing it after a minute; returns stdout.
    fn run(mut cmd: Command) -> String {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(out.reopen().unwrap())
            .stderr(err.reopen().unwrap());
        let mut child = cmd.spawn().expect("start chromium");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
                assert!(
                    status.success(),
                    "chromium failed ({status}):\n{}",
                    std::fs::read_to_string(err.path()).unwrap_or_default()
                );
                return stdout;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chromium timed out:\n{}",
                    std::fs::read_to_string(err.path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn dump_dom(&self, url: &str) -> String {
        let mut cmd = self.command();
        cmd.args(["--dump-dom", url]);
        Self::run(cmd)
    }

    pub(super) fn screenshot(&self, url: &str, file: &std::path::Path) {
        let mut cmd = self.command();
        cmd.arg(format!("--screenshot={}", file.display()))
            .arg("--window-size=1280,900")
            .arg(url);
        Self::run(cmd);
    }
}
