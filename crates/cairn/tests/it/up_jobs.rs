//! Jobs on `cairn up`'s embedded runtime, end to end: the real binary on a
//! real Git repository, talked to over HTTP (and through the CLI).

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};
use sha2::Digest;
use std::path::Path;
use std::time::{Duration, Instant};

/// A project (`lab`) whose default pool is this machine.
const PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
";

/// A Job spec: `script` becomes a `sh -c` command (a YAML block scalar);
/// `extra` holds more `spec` fields, one per line, unindented.
fn job(name: &str, script: &str, extra: &str) -> String {
    let mut out = format!("apiVersion: cairn/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n");
    if !script.is_empty() {
        out.push_str("  command: |\n");
        for line in script.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    for line in extra.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// A repository with the project and `files`, committed; a running `cairn
/// up` on it that has synced the commit. Fields drop in order: the server
/// stops before its directories go.
struct Env {
    up: Up,
    commit: String,
    data: tempfile::TempDir,
    repo: TestRepo,
}

impl Env {
    fn start(files: &[(&str, String)], env: &[(&str, &str)]) -> Env {
        let repo = TestRepo::new();
        repo.write("specs/project.yaml", PROJECT);
        for (path, text) in files {
            repo.write(path, text);
        }
        let commit = repo.commit("specs");
        let data = tempfile::tempdir().unwrap();
        let up = Up::start(repo.path(), &data.path().join("state"), &[], env);
        up.wait_synced(&commit);
        Env {
            up,
            commit,
            data,
            repo,
        }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.data.path().join("state")
    }

    /// Starts `cairn up` again on the same repository and data directory.
    fn restart(&mut self, env: &[(&str, &str)]) {
        self.up = Up::start(self.repo.path(), &self.state_dir(), &[], env);
    }
}

/// The runs of a job, newest first.
fn runs(up: &Up, job: &str) -> Vec<Value> {
    up.get(&format!("/api/v1/jobs/{job}/runs"))["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A run's log.
fn log(up: &Up, job: &str, number: i64) -> String {
    up.get_text(&format!("/api/v1/jobs/{job}/runs/{number}/logs"))
        .unwrap_or_else(|e| panic!("log of {job} #{number}: {e}\n{}", up.logs()))
}

/// Starts a run with POST; returns the response (202 expected).
fn start_run(up: &Up, job: &str, body: Value) -> Value {
    let (status, v) = up.post(&format!("/api/v1/jobs/{job}/runs"), &body);
    assert_eq!(status, 202, "POST run of {job}: {v}\n{}", up.logs());
    v
}

/// Waits until `job`'s run `number` satisfies `probe`.
fn wait_run_where(
    up: &Up,
    job: &str,
    number: i64,
    what: &str,
    probe: impl Fn(&Value) -> bool,
) -> Value {
    up.wait_for(
        Duration::from_secs(20),
        &format!("{job} #{number}: {what}"),
        || {
            let (status, text) = up
                .get_raw(&format!("/api/v1/jobs/{job}/runs/{number}"))
                .ok()?;
            if status != 200 {
                return None;
            }
            let v: Value = serde_json::from_str(&text).ok()?;
            probe(&v).then_some(v)
        },
    )
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time, not {v}")))
        .unwrap()
}

/// A shell line appending `JOB start|end NANOS` to `$STAMPS`, around `body`.
fn stamped(body: &str) -> String {
    format!(
        "echo \"$CAIRN_JOB start $(date +%s%N)\" >> \"$STAMPS\"\n{body}\necho \"$CAIRN_JOB end $(date +%s%N)\" >> \"$STAMPS\""
    )
}

/// The `[start, end]` intervals written by [`stamped`] jobs, by job.
fn intervals(stamps: &Path) -> Vec<(String, u128, u128)> {
    let text = std::fs::read_to_string(stamps).unwrap();
    let mut starts = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [job, what, t] = parts[..] else {
            panic!("bad stamp line {line:?}");
        };
        let t: u128 = t.parse().unwrap();
        match what {
            "start" => {
                starts.insert(job.to_string(), t);
            }
            _ => out.push((job.to_string(), starts[job], t)),
        }
    }
    out
}

fn assert_no_overlap(stamps: &Path, expected_jobs: usize) {
    let mut iv = intervals(stamps);
    assert_eq!(iv.len(), expected_jobs, "{iv:?}");
    iv.sort_by_key(|i| i.1);
    for pair in iv.windows(2) {
        assert!(
            pair[0].2 <= pair[1].1,
            "{} ran {}..{} and {} ran {}..{}: they overlap",
            pair[0].0,
            pair[0].1,
            pair[0].2,
            pair[1].0,
            pair[1].1,
            pair[1].2
        );
    }
}

// ------------------------------------------------------------------ 1 --

#[test]
fn a_job_runs_on_sync_with_readable_logs_and_recorded_outputs() {
    let env = Env::start(
        &[(
            "specs/train.yaml",
            job(
                "train",
                "echo to-stdout\necho to-stderr >&2\nprintf 'weights-%s' 42 > \"$CAIRN_OUTPUT_DIR/model.bin\"",
                "outputs:\n  - {name: model, path: model.bin}",
            ),
        )],
        &[],
    );
    let up = &env.up;
    let done = up.wait_run("train", 1);
    assert_eq!(done["state"], "succeeded", "{done}\n{}", up.logs());
    assert_eq!(done["trigger"], "sync");
    assert_eq!(done["attempt"], 1);
    assert_eq!(done["exitCode"], 0);
    assert_eq!(done["commit"], env.commit);
    assert!(done["startedAt"].is_string() && done["finishedAt"].is_string());

    let text = log(up, "train", 1);
    assert!(text.contains("to-stdout\n"), "{text}");
    assert!(text.contains("to-stderr\n"), "{text}");
    // Following a finished run's log returns it whole, and ends.
    let followed = up
        .get_text("/api/v1/jobs/train/runs/1/logs?follow=true")
        .unwrap();
    assert_eq!(followed, text);

    let content = b"weights-42";
    let artifacts = done["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), 1, "{done}");
    let a = &artifacts[0];
    assert_eq!(a["output"], "model");
    assert_eq!(a["size"], content.len());
    assert_eq!(a["sha256"], hex::encode(sha2::Sha256::digest(content)));
    let path = a["path"].as_str().unwrap();
    assert!(path.ends_with("model.bin"), "{path}");
    assert_eq!(std::fs::read(path).unwrap(), content);

    let status = up.resource("Job", "train").expect("job status");
    assert_eq!(status["phase"], "Succeeded", "{status}");
    // Only one run: nothing else triggered it.
    assert_eq!(runs(up, "train").len(), 1);
}

// ------------------------------------------------------------------ 2 --

#[test]
fn a_pipeline_runs_upstream_first_and_skips_after_a_failure() {
    let manual = "trigger: {manual: true}";
    let env = Env::start(
        &[
            (
                "specs/a.yaml",
                job(
                    "a",
                    "echo from-a > \"$CAIRN_OUTPUT_DIR/data.txt\"\nsleep 0.2",
                    &format!("{manual}\noutputs:\n  - {{name: data, path: data.txt}}"),
                ),
            ),
            (
                "specs/b.yaml",
                job(
                    "b",
                    "echo \"b got $(cat \"$CAIRN_INPUT_DIR/data.txt\")\"\necho from-b > \"$CAIRN_OUTPUT_DIR/data.txt\"\nsleep 0.2",
                    &format!("{manual}\ndependsOn: [a]"),
                ),
            ),
            (
                "specs/c.yaml",
                job(
                    "c",
                    "echo \"c got $(cat \"$CAIRN_INPUT_DIR/data.txt\")\"",
                    &format!("{manual}\ndependsOn: [b]"),
                ),
            ),
            ("specs/x.yaml", job("x", "echo x-fails\nexit 1", manual)),
            (
                "specs/y.yaml",
                job(
                    "y",
                    "echo y-must-not-run",
                    &format!("{manual}\ndependsOn: [x]"),
                ),
            ),
            (
                "specs/z.yaml",
                job(
                    "z",
                    "echo z-must-not-run",
                    &format!("{manual}\ndependsOn: [y]"),
                ),
            ),
        ],
        &[],
    );
    let up = &env.up;
    // Manual jobs do not run on sync.
    for j in ["a", "b", "c", "x", "y", "z"] {
        assert!(runs(up, j).is_empty(), "{j} ran on sync");
        assert_eq!(up.resource("Job", j).unwrap()["phase"], "Idle");
    }

    let started = start_run(up, "c", json!({}));
    let pipeline = started["pipeline"].as_array().unwrap();
    let names: Vec<&str> = pipeline
        .iter()
        .map(|r| r["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let triggers: Vec<&str> = pipeline
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["pipeline", "pipeline", "manual"]);
    assert_eq!(started["run"]["jobName"], "c");
    let id = pipeline[0]["pipeline"].as_str().unwrap();
    assert!(pipeline.iter().all(|r| r["pipeline"] == id));

    let a = up.wait_run("a", 1);
    let b = up.wait_run("b", 1);
    let c = up.wait_run("c", 1);
    for r in [&a, &b, &c] {
        assert_eq!(r["state"], "succeeded", "{r}\n{}", up.logs());
    }
    assert!(time(&b["startedAt"]) >= time(&a["finishedAt"]), "{a}\n{b}");
    assert!(time(&c["startedAt"]) >= time(&b["finishedAt"]), "{b}\n{c}");
    let b_log = log(up, "b", 1);
    assert!(b_log.contains("b got from-a"), "{b_log}");
    // b declares no outputs, but its output directory still reaches c.
    let c_log = log(up, "c", 1);
    assert!(c_log.contains("c got from-b"), "{c_log}");

    // A failure upstream skips everything downstream.
    let started = start_run(up, "z", json!({}));
    let names: Vec<&str> = started["pipeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["x", "y", "z"]);
    let x = up.wait_run("x", 1);
    assert_eq!(x["state"], "failed", "{x}");
    assert_eq!(x["exitCode"], 1);
    let y = up.wait_run("y", 1);
    assert_eq!(y["state"], "skipped", "{y}");
    assert!(y["message"].as_str().unwrap().contains("`x`"), "{y}");
    assert!(y["startedAt"].is_null(), "{y}");
    let z = up.wait_run("z", 1);
    assert_eq!(z["state"], "skipped", "{z}");
    assert!(z["message"].as_str().unwrap().contains("`y`"), "{z}");
    assert!(!log_or_empty(up, "y", 1).contains("must-not-run"));
}

/// A run's log, or nothing when it has none (a skipped run never started).
fn log_or_empty(up: &Up, job: &str, number: i64) -> String {
    up.get_text(&format!("/api/v1/jobs/{job}/runs/{number}/logs"))
        .unwrap_or_default()
}

// ------------------------------------------------------------------ 3 --

#[test]
fn a_schedule_fires_every_second() {
    let env = Env::start(
        &[(
            "specs/tick.yaml",
            job("tick", "echo tick", "schedule: \"*/1 * * * * *\""),
        )],
        &[],
    );
    let up = &env.up;
    let fired = up.wait_for(Duration::from_secs(10), "two scheduled runs", || {
        let r = runs(up, "tick");
        (r.len() >= 2).then_some(r)
    });
    // Newest first.
    let (second, first) = (&fired[fired.len() - 2], &fired[fired.len() - 1]);
    for r in [first, second] {
        assert_eq!(r["trigger"], "schedule", "{r}");
    }
    assert_eq!(first["number"], 1);
    assert_eq!(second["number"], 2);
    let gap = time(&second["createdAt"]) - time(&first["createdAt"]);
    assert!(
        gap >= chrono::Duration::milliseconds(500),
        "fired {gap} apart"
    );
    let done = up.wait_run("tick", 1);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(log(up, "tick", 1).contains("tick"));
}

// ------------------------------------------------------------------ 4 --

#[test]
fn a_failing_job_is_retried_then_marked_failed() {
    let env = Env::start(
        &[(
            "specs/flaky.yaml",
            job("flaky", "echo \"try $CAIRN_ATTEMPT\"\nexit 3", "retries: 2"),
        )],
        &[],
    );
    let up = &env.up;
    let done = up.wait_run("flaky", 1);
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["attempt"], 3, "{done}");
    assert_eq!(done["exitCode"], 3, "{done}");
    let message = done["message"].as_str().unwrap();
    assert!(message.contains("3 attempts"), "{message}");
    assert!(message.contains("exit code 3"), "{message}");

    let text = log(up, "flaky", 1);
    assert_eq!(text.matches("=== run #1 attempt").count(), 3, "{text}");
    for n in 1..=3 {
        assert!(text.contains(&format!("attempt {n}/3")), "{text}");
        assert!(text.contains(&format!("try {n}\n")), "{text}");
    }
    assert_eq!(runs(up, "flaky").len(), 1, "retries stay in one run");
    let status = up.resource("Job", "flaky").unwrap();
    assert_eq!(status["phase"], "Failed", "{status}");
}

// ------------------------------------------------------------------ 5 --

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            matches!(state, "Z" | "X" | "x")
        }
    }
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let env = Env::start(
        &[(
            "specs/hang.yaml",
            job(
                "hang",
                "sleep 300 &\necho $! > \"$CAIRN_OUTPUT_DIR/child.pid\"\necho \"child=$!\"\nsleep 300",
                "timeout: 1s",
            ),
        )],
        &[],
    );
    let up = &env.up;
    let begun = Instant::now();
    let done = up.wait_run("hang", 1);
    assert!(
        begun.elapsed() < Duration::from_secs(8),
        "took {:?}",
        begun.elapsed()
    );
    assert_eq!(done["state"], "failed", "{done}");
    let message = done["message"].as_str().unwrap();
    assert!(message.contains("timed out"), "{message}");

    let text = log(up, "hang", 1);
    let pid: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("child="))
        .unwrap_or_else(|| panic!("no child pid in the log:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(text.contains("timed out"), "{text}");
    up.wait_for(
        Duration::from_secs(5),
        &format!("grandchild {pid} to die"),
        || process_gone(pid).then_some(()),
    );
}

// ------------------------------------------------------------------ 6 --

#[test]
fn params_reach_the_job_as_environment_and_arguments() {
    let spec = "apiVersion: cairn/v1
kind: Job
metadata:
  name: tune
spec:
  command:
    - sh
    - -c
    - 'echo \"env C=$CAIRN_PARAM_C NAME=$CAIRN_PARAM_NAME\"; echo \"args $0 $1\"'
    - $(CAIRN_PARAM_C)
    - $(CAIRN_PARAM_NAME)
  trigger: {manual: true}
  params:
    C: 0.1
    name: default
";
    let env = Env::start(&[("specs/tune.yaml", spec.to_string())], &[]);
    let up = &env.up;
    let started = start_run(up, "tune", json!({"params": {"C": 0.5, "name": "x"}}));
    assert_eq!(started["run"]["number"], 1);
    assert_eq!(started["run"]["trigger"], "manual");
    let done = up.wait_run("tune", 1);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["params"], json!({"C": 0.5, "name": "x"}));
    let text = log(up, "tune", 1);
    assert!(text.contains("env C=0.5 NAME=x\n"), "{text}");
    assert!(text.contains("args 0.5 x\n"), "{text}");

    // Without overrides, the spec's values.
    start_run(up, "tune", json!({}));
    let done = up.wait_run("tune", 2);
    assert_eq!(done["state"], "succeeded", "{done}");
    let text = log(up, "tune", 2);
    assert!(text.contains("env C=0.1 NAME=default\n"), "{text}");
    assert!(text.contains("args 0.1 default\n"), "{text}");
}

/// A job starts from an allow-list of the controller's environment: its
/// Git token, webhook secret and other variables stay with the controller.
#[test]
fn a_job_gets_none_of_the_controllers_credentials() {
    let spec = job(
        "show",
        "env | sort",
        "trigger: {manual: true}\nenv: {OWN: mine}",
    );
    let env = Env::start(
        &[("specs/show.yaml", spec)],
        &[
            ("CAIRN_GIT_TOKEN", "ghp_never_in_a_workload"),
            ("CAIRN_GIT_USERNAME", "robot"),
            ("CAIRN_WEBHOOK_SECRET", "hook_never_in_a_workload"),
            ("DATABASE_URL", "postgres://u:never@db/x"),
            ("CAIRN_WORKLOAD_ENV", "PIP_INDEX_URL,CAIRN_GIT_TOKEN"),
            ("PIP_INDEX_URL", "https://mirror.example/simple"),
        ],
    );
    let up = &env.up;
    start_run(up, "show", json!({}));
    let done = up.wait_run("show", 1);
    assert_eq!(done["state"], "succeeded", "{done}");
    let text = log(up, "show", 1);
    for leaked in [
        "never",
        "CAIRN_GIT_",
        "CAIRN_WEBHOOK_SECRET",
        "DATABASE_URL",
    ] {
        assert!(
            !text.contains(leaked),
            "`{leaked}` reached the job:\n{text}"
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    for line in ["OWN=mine", "PIP_INDEX_URL=https://mirror.example/simple"] {
        assert!(lines.contains(&line), "no `{line}`:\n{text}");
    }
    for name in ["PATH=", "CAIRN_SERVER="] {
        assert!(
            lines.iter().any(|l| l.starts_with(name)),
            "no {name}\n{text}"
        );
    }
}

/// A project's secret reaches its workloads, from the operator's
/// `CAIRN_SECRET_*` variable, and appears in no log, status or audit entry.
#[test]
fn a_project_secret_reaches_its_job_and_nothing_else() {
    const VALUE: &str = "s3cr3t-warehouse-password";
    const FROM_FILE: &str = "t0ken-from-a-mounted-file";
    let project = PROJECT.replace(
        "  defaultPool: local\n",
        "  defaultPool: local\n  secrets:\n    - {name: WAREHOUSE_PASSWORD, fromEnv: CAIRN_SECRET_WAREHOUSE}\n    - {name: API_TOKEN, fromEnv: CAIRN_SECRET_API}\n",
    );
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", &project).write(
        "specs/load.yaml",
        job(
            "load",
            "printf '%s %s' \"$WAREHOUSE_PASSWORD\" \"$API_TOKEN\" > \"$CAIRN_OUTPUT_DIR/seen.txt\"\necho loaded",
            "outputs:\n  - {name: seen, path: seen.txt}",
        ),
    );
    let commit = repo.commit("a job with a secret");
    let data = tempfile::tempdir().unwrap();
    // One secret from a variable, one from the operator's directory.
    let secrets = data.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("CAIRN_SECRET_API"), format!("{FROM_FILE}\n")).unwrap();
    let up = Up::start(
        repo.path(),
        &data.path().join("state"),
        &[],
        &[
            ("CAIRN_SECRET_WAREHOUSE", VALUE),
            ("CAIRN_SECRETS_DIR", secrets.to_str().unwrap()),
        ],
    );
    up.wait_synced(&commit);
    let done = up.wait_run("load", 1);
    assert_eq!(done["state"], "succeeded", "{done}\n{}", up.logs());
    let seen = done["artifacts"][0]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(seen).unwrap(),
        format!("{VALUE} {FROM_FILE}")
    );
    for (what, text) in [
        ("the server's log", up.logs()),
        ("the job's log", log(&up, "load", 1)),
        ("the status", up.get("/api/v1/status").to_string()),
        ("the audit log", up.get("/api/v1/audit").to_string()),
        ("the run", done.to_string()),
    ] {
        assert!(
            !text.contains(VALUE) && !text.contains(FROM_FILE),
            "a secret is in {what}:\n{text}"
        );
    }
}

// ------------------------------------------------------------------ 7 --

#[test]
fn a_restart_does_not_rerun_finished_jobs() {
    let mut env = Env::start(&[("specs/once.yaml", job("once", "echo once", ""))], &[]);
    let done = env.up.wait_run("once", 1);
    assert_eq!(done["state"], "succeeded", "{done}");
    let before = env.up.resource("Job", "once").unwrap();
    assert_eq!(before["phase"], "Succeeded", "{before}");

    env.up.stop();
    env.restart(&[]);
    env.up.wait_synced(&env.commit);
    std::thread::sleep(Duration::from_secs(2));
    let all = runs(&env.up, "once");
    assert_eq!(all.len(), 1, "rerun after a restart: {all:?}");
    assert_eq!(all[0]["state"], "succeeded");
    let after = env.up.resource("Job", "once").unwrap();
    assert_eq!(after["phase"], "Succeeded", "{after}\nbefore: {before}");
    assert_eq!(after["message"], before["message"]);
    let text = log(&env.up, "once", 1);
    assert_eq!(text.lines().filter(|l| *l == "once").count(), 1, "{text}");
}

#[test]
fn a_crash_while_a_job_runs_adopts_it_after_the_restart() {
    let mut env = Env::start(
        &[(
            "specs/slow.yaml",
            job("slow", "echo started\nsleep 3\necho done", ""),
        )],
        &[],
    );
    let running = wait_run_where(&env.up, "slow", 1, "running", |r| {
        r["state"] == "running" && r["pid"].is_i64()
    });
    let pid = running["pid"].as_i64().unwrap() as u32;
    env.up.crash();
    assert!(!process_gone(pid), "the job died with the controller");

    env.restart(&[]);
    let done = env.up.wait_run("slow", 1);
    assert_eq!(done["state"], "succeeded", "{done}\n{}", env.up.logs());
    assert_eq!(done["exitCode"], 0, "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    let text = log(&env.up, "slow", 1);
    // The command line in the log's header says `started` too: count lines.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| **l == "started").count(),
        1,
        "{text}"
    );
    assert_eq!(lines.iter().filter(|l| **l == "done").count(), 1, "{text}");
    assert_eq!(runs(&env.up, "slow").len(), 1);
    let status = env.up.resource("Job", "slow").unwrap();
    assert_eq!(status["phase"], "Succeeded", "{status}");
}

// ------------------------------------------------------------------ 8 --

#[test]
fn gpu_runs_wait_for_free_devices() {
    let stamps_dir = tempfile::tempdir().unwrap();
    let stamps = stamps_dir.path().join("stamps");
    let gpu_job = |name: &str, gpus: u32, pool: &str| {
        job(
            name,
            &stamped("echo \"cvd=$CUDA_VISIBLE_DEVICES\"\nsleep 1"),
            &format!(
                "trigger: {{manual: true}}\npool: {pool}\nresources: {{gpus: {gpus}}}\nenv: {{STAMPS: \"{}\"}}",
                stamps.display()
            ),
        )
    };
    let pools = "apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: gpu
spec:
  local: {gpus: all}
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: pair
spec:
  local: {gpus: [0, 1]}
";
    let env = Env::start(
        &[
            ("specs/pools.yaml", pools.to_string()),
            ("specs/g1.yaml", gpu_job("g1", 2, "gpu")),
            ("specs/g2.yaml", gpu_job("g2", 2, "gpu")),
            ("specs/g3.yaml", gpu_job("g3", 3, "gpu")),
            // A fixed list of two devices: asking three is a spec error.
            ("specs/g4.yaml", gpu_job("g4", 3, "pair")),
        ],
        &[("CAIRN_FAKE_GPUS", "2")],
    );
    let up = &env.up;
    let status = up.get("/api/v1/status");
    assert_eq!(status["gpus"].as_array().map(Vec::len), Some(2), "{status}");
    let diags = status["diagnostics"].as_array().unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "insufficient-gpus")
        .unwrap_or_else(|| panic!("no insufficient-gpus diagnostic: {diags:?}"));
    assert_eq!(d["file"], "specs/g4.yaml", "{d}");
    assert!(status["errors"].as_u64().unwrap() >= 1);
    assert_eq!(up.resource("Job", "g4").unwrap()["phase"], "Invalid");
    let (code, _) = up.get_raw("/api/v1/jobs/g4/runs").unwrap();
    assert_eq!(code, 404, "an invalid job is not applied");

    start_run(up, "g1", json!({}));
    wait_run_where(up, "g1", 1, "running", |r| r["state"] == "running");
    start_run(up, "g2", json!({}));
    let waiting = wait_run_where(up, "g2", 1, "waiting for GPUs", |r| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting for 2 free GPU(s)"))
    });
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert!(waiting["startedAt"].is_null(), "{waiting}");

    for name in ["g1", "g2"] {
        let done = up.wait_run(name, 1);
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["gpus"], "0,1", "{done}");
        let text = log(up, name, 1);
        assert!(text.contains("cvd=0,1\n"), "{text}");
    }
    assert_no_overlap(&stamps, 2);

    // More GPUs than the pool will ever have: the run fails at once.
    start_run(up, "g3", json!({}));
    let g3 = up.wait_run("g3", 1);
    assert_eq!(g3["state"], "failed", "{g3}");
    let message = g3["message"].as_str().unwrap();
    assert!(message.contains("asks for 3 GPU(s)"), "{message}");
    assert!(message.contains("has 2"), "{message}");
}

// ------------------------------------------------------------------ 9 --

#[test]
fn project_cpu_quota_keeps_runs_apart() {
    let stamps_dir = tempfile::tempdir().unwrap();
    let stamps = stamps_dir.path().join("stamps");
    let project = "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
  quotas: {cpu: \"1\"}
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
";
    let quota_job = |name: &str| {
        job(
            name,
            &stamped("sleep 1"),
            &format!(
                "trigger: {{manual: true}}\nresources: {{cpu: \"1\"}}\nenv: {{STAMPS: \"{}\"}}",
                stamps.display()
            ),
        )
    };
    let env = Env::start(
        &[
            ("specs/project.yaml", project.to_string()),
            ("specs/q1.yaml", quota_job("q1")),
            ("specs/q2.yaml", quota_job("q2")),
        ],
        &[],
    );
    let up = &env.up;
    start_run(up, "q1", json!({}));
    wait_run_where(up, "q1", 1, "running", |r| r["state"] == "running");
    start_run(up, "q2", json!({}));
    let waiting = wait_run_where(up, "q2", 1, "waiting for the quota", |r| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting for project quota"))
    });
    assert_eq!(waiting["state"], "pending", "{waiting}");
    for name in ["q1", "q2"] {
        let done = up.wait_run(name, 1);
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    assert_no_overlap(&stamps, 2);
}

// ----------------------------------------------------------------- 10 --

#[test]
fn the_cli_runs_follows_lists_and_prints_logs() {
    let manual = "trigger: {manual: true}";
    let env = Env::start(
        &[
            (
                "specs/hello.yaml",
                job(
                    "hello",
                    "echo hello-from-cli\nsleep 0.3\necho bye-from-cli",
                    manual,
                ),
            ),
            (
                "specs/broken.yaml",
                job("broken", "echo about-to-fail\nexit 4", manual),
            ),
        ],
        &[],
    );
    let up = &env.up;
    let server = up.url("");

    let out = cairn_test_support::cairn()
        .args(["run", "hello", "--follow", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("hello-from-cli\n"), "{stdout}");
    assert!(stdout.contains("bye-from-cli\n"), "{stdout}");
    assert!(stderr.contains("succeeded"), "{stderr}");

    let out = cairn_test_support::cairn()
        .args(["run", "broken", "--follow", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("about-to-fail\n"), "{stdout}");
    assert!(stderr.contains("failed"), "{stderr}");

    // Without --follow: started, exit 0 at once.
    let out = cairn_test_support::cairn()
        .args(["run", "hello", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("started hello run #2"));
    let second = up.wait_run("hello", 2);
    assert_eq!(second["state"], "succeeded");

    let out = cairn_test_support::cairn()
        .args(["runs", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hello") && l.contains("#1") && l.contains("succeeded")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("broken") && l.contains("#1") && l.contains("failed")),
        "{stdout}"
    );

    let out = cairn_test_support::cairn()
        .args(["runs", "hello", "--server", &server, "--output", "json"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let numbers: Vec<i64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    let out = cairn_test_support::cairn()
        .args(["logs", "hello", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("=== run #2 attempt 1/1"),
        "the latest run: {stdout}"
    );
    assert!(stdout.contains("hello-from-cli\n"), "{stdout}");

    let out = cairn_test_support::cairn()
        .args(["logs", "broken", "--server", &server])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("about-to-fail\n"), "{stdout}");
}
