//! Python environments on the embedded runtime: built from a wheel made by
//! the test (no network), reused, built once when raced, failures reported
//! on the spec, unused ones collected.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Writes a pure-Python wheel `cairnhello-0.1.0` into `dir` with the
/// standard library's zipfile (no build tools, no network).
fn build_wheel(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
name, version = "cairnhello", "0.1.0"
info = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": "def greet():\n    return 'hello from cairnhello'\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: cairn-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
lines = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    lines.append(f"{path},sha256={digest},{len(data)}")
lines.append(f"{info}/RECORD,,")
files[f"{info}/RECORD"] = "\n".join(lines) + "\n"
with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

const PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata: {name: envs}
spec: {}
";

fn env_spec(name: &str, package: &str) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Environment
metadata: {{name: {name}}}
spec:
  packages: [\"{package}\"]
  index: {{findLinks: [wheels], noIndex: true}}
  env: {{GREETING_SOURCE: environment}}
"
    )
}

fn job_spec(name: &str, env: &str) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Job
metadata: {{name: {name}}}
spec:
  environment: {env}
  trigger: {{manual: true}}
  command: [python, -c, \"import os, sys, cairnhello; print(cairnhello.greet(), os.environ['GREETING_SOURCE'], sys.prefix)\"]
"
    )
}

fn repo_with(files: &[(&str, String)]) -> TestRepo {
    let repo = TestRepo::new();
    build_wheel(&repo.path().join("wheels"));
    repo.write("specs/project.yaml", PROJECT);
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("specs");
    repo
}

fn run(up: &Up, job: &str) -> i64 {
    let (status, v) = up.post(&format!("/api/v1/jobs/{job}/runs"), &json!({}));
    assert_eq!(status, 202, "{v}");
    v["run"]["number"].as_i64().unwrap()
}

fn log_of(up: &Up, job: &str, number: i64) -> String {
    up.get_text(&format!("/api/v1/jobs/{job}/runs/{number}/logs"))
        .unwrap()
}

fn env_dirs(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("envs"))
        .map(|it| {
            it.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_job_runs_in_its_environment_which_is_built_once_and_reused() {
    let repo = repo_with(&[
        ("specs/env.yaml", env_spec("hello", "cairnhello==0.1.0")),
        ("specs/job.yaml", job_spec("greet", "hello")),
    ]);
    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("state");
    let up = Up::start(repo.path(), &state, &[], &[("CAIRN_ENV_INSTALLER", "pip")]);

    let first = run(&up, "greet");
    let done = up.wait_run("greet", first);
    assert_eq!(
        done["state"],
        "succeeded",
        "{done}\n{}",
        log_of(&up, "greet", first)
    );
    let log = log_of(&up, "greet", first);
    assert!(log.contains("hello from cairnhello environment"), "{log}");
    let envs = env_dirs(&state);
    assert_eq!(envs.len(), 1, "{envs:?}");
    assert!(
        log.contains(&format!("envs/{}", envs[0])),
        "runs with the venv's python: {log}"
    );
    let marker =
        std::fs::read_to_string(state.join("envs").join(&envs[0]).join(".cairn-env.json")).unwrap();
    assert!(
        up.logs().contains("building environment"),
        "progress is shown"
    );
    assert!(
        std::fs::read_to_string(state.join("envs").join(format!("{}.log", envs[0])))
            .unwrap()
            .contains("cairnhello")
    );

    // Reused: a second run does not rebuild.
    let second = run(&up, "greet");
    assert_eq!(up.wait_run("greet", second)["state"], "succeeded");
    assert_eq!(env_dirs(&state), envs);
    assert_eq!(
        std::fs::read_to_string(state.join("envs").join(&envs[0]).join(".cairn-env.json")).unwrap(),
        marker
    );
    assert_eq!(
        up.logs().matches("building environment").count(),
        1,
        "{}",
        up.logs()
    );
}

#[test]
fn two_jobs_racing_for_one_environment_build_it_once() {
    let repo = repo_with(&[
        ("specs/env.yaml", env_spec("shared", "cairnhello")),
        ("specs/a.yaml", job_spec("first", "shared")),
        ("specs/b.yaml", job_spec("second", "shared")),
    ]);
    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("state");
    let up = Up::start(repo.path(), &state, &[], &[("CAIRN_ENV_INSTALLER", "pip")]);
    let a = run(&up, "first");
    let b = run(&up, "second");
    assert_eq!(up.wait_run("first", a)["state"], "succeeded");
    assert_eq!(up.wait_run("second", b)["state"], "succeeded");
    assert_eq!(env_dirs(&state).len(), 1);
    let logs = up.logs();
    assert_eq!(logs.matches("building environment").count(), 1, "{logs}");
    assert_eq!(logs.matches("built environment").count(), 1, "{logs}");
}

#[test]
fn a_failing_requirement_is_reported_on_the_spec_and_leaves_the_rest_running() {
    let repo = repo_with(&[
        ("specs/env.yaml", env_spec("good", "cairnhello")),
        ("specs/bad-env.yaml", env_spec("bad", "no-such-package==9.9")),
        ("specs/good.yaml", job_spec("works", "good")),
        ("specs/bad.yaml", job_spec("breaks", "bad")),
        (
            "specs/app.yaml",
            "apiVersion: cairn/v1\nkind: Application\nmetadata: {name: web}\nspec: {framework: command, command: [python3, -m, http.server, \"$(PORT)\"], path: specs}\n".to_string(),
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(
        repo.path(),
        &data.path().join("state"),
        &[],
        &[("CAIRN_ENV_INSTALLER", "pip")],
    );
    up.wait_for(Duration::from_secs(30), "app ready", || {
        (up.resource("Application", "web")?["phase"] == "Ready").then_some(())
    });
    let n = run(&up, "breaks");
    let done = up.wait_run("breaks", n);
    assert_eq!(done["state"], "failed");
    let message = done["message"].as_str().unwrap();
    assert!(
        message.starts_with("environment: building the environment failed (pip)"),
        "{message}"
    );
    assert!(
        message.contains("no-such-package"),
        "the installer's output tail is shown: {message}"
    );
    let status = up.resource("Job", "breaks").unwrap();
    assert_eq!(status["phase"], "Failed");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("no-such-package")
    );
    // The rest is untouched.
    assert_eq!(up.resource("Application", "web").unwrap()["phase"], "Ready");
    let ok = run(&up, "works");
    assert_eq!(up.wait_run("works", ok)["state"], "succeeded");
}

#[test]
fn unused_environments_are_garbage_collected() {
    let repo = repo_with(&[
        ("specs/env.yaml", env_spec("temp", "cairnhello")),
        ("specs/job.yaml", job_spec("once", "temp")),
    ]);
    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("state");
    let up = Up::start(
        repo.path(),
        &state,
        &[],
        &[("CAIRN_ENV_INSTALLER", "pip"), ("CAIRN_ENV_GC_GRACE", "0s")],
    );
    let n = run(&up, "once");
    assert_eq!(up.wait_run("once", n)["state"], "succeeded");
    assert_eq!(env_dirs(&state).len(), 1);
    repo.remove("specs/job.yaml");
    let commit = repo.commit("drop the job");
    up.wait_synced(&commit);
    up.wait_for(Duration::from_secs(10), "environment removed", || {
        env_dirs(&state).is_empty().then_some(())
    });
}
