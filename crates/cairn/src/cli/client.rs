//! Commands that talk to a running `cairn up`: `status`, `run`, `runs`, `logs`,
//! `predict`, `keys`, `metrics`.
//!
//! Jobs and models are named `NAME` (a name one project uses) or
//! `PROJECT/NAME`; the server names the projects of an ambiguous bare name.

use super::OutputFormat;
use anyhow::{Context, Result, bail};
use cairn_api::ErrorBody;
use cairn_api::gateway::{PredictRequest, Prediction};
use cairn_api::keys::{KeyList, NewKey};
use cairn_api::monitoring::{AggregateReport, BusinessMetric, Task};
use cairn_api::registry::{Promotion, Registry, RollbackAnswer, RollbackRequest};
use cairn_api::runs::{Run, RunList, StartRun, StartedRun};
use cairn_api::status::Status;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Server {
    /// URL of `cairn up`.
    #[arg(
        long,
        env = "CAIRN_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Keep trying to reach the server this long (for scripts that start
    /// `cairn up` just before).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, global = true)]
    wait: std::time::Duration,
    /// An API token (default: `$CAIRN_TOKEN`, else the admin token of a
    /// `cairn up` on this machine at `--server`).
    #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

impl Server {
    /// The token to send: `--token`, or the local server's admin token.
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| super::credentials::local_token(&self.server))
    }

    /// An agent that sends the token (unless a request carries its own
    /// `Authorization`, as a prediction with a model's key does).
    pub(super) fn agent(&self) -> ureq::Agent {
        let bearer = self.token().map(|t| format!("Bearer {}", t.trim()));
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(None)
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

    /// Waits until the server answers, up to `--wait`.
    pub(super) fn await_server(&self) {
        let deadline = std::time::Instant::now() + self.wait;
        while std::time::Instant::now() < deadline {
            if self.agent().get(&self.url("/healthz")).call().is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    pub(super) fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach cairn at {} ({e}); is `cairn up` running? (--server sets the URL)",
            self.server
        )
    }

    /// GETs JSON; 4xx/5xx become errors with the server's message.
    pub(super) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.await_server();
        let mut response = self
            .agent()
            .get(&self.url(path))
            .call()
            .map_err(|e| self.unreachable(e))?;
        json_or_error(&mut response)
    }

    pub(super) fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.await_server();
        let mut response = self
            .agent()
            .post(&self.url(path))
            .send_json(body)
            .map_err(|e| self.unreachable(e))?;
        json_or_error(&mut response)
    }
}

/// The answer's body as `T`; 4xx/5xx become errors with the server's
/// message.
pub(super) fn json_or_error<T: DeserializeOwned>(
    response: &mut ureq::http::Response<ureq::Body>,
) -> Result<T> {
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .context("reading the response")?;
    if !status.is_success() {
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => e.error,
            Err(_) => text.trim().to_string(),
        };
        if status.as_u16() == 401 {
            bail!(
                "{message} (HTTP 401; give a token with --token or CAIRN_TOKEN: `cairn tokens create` makes one, and on the server's machine the operator's is found by itself)"
            );
        }
        bail!("{message} (HTTP {})", status.as_u16());
    }
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the server's answer is not what this cairn expects (is it another version?): {}",
            text.chars().take(200).collect::<String>()
        )
    })
}

/// The route of a job or model (`kind`: `jobs`, `models`) named `NAME` or
/// `PROJECT/NAME` (`project`, from `--project`, when the name gives none):
/// `{prefix}/projects/PROJECT/{kind}/NAME{rest}` or `{prefix}/{kind}/NAME{rest}`.
fn route(prefix: &str, kind: &str, named: &str, project: Option<&str>, rest: &str) -> String {
    let wanted = cairn_spec::ScopedName::parse(named);
    match wanted.project.as_deref().or(project) {
        Some(p) => format!(
            "{prefix}/projects/{}/{kind}/{}{rest}",
            query_value(p),
            query_value(&wanted.name)
        ),
        None => format!("{prefix}/{kind}/{}{rest}", query_value(&wanted.name)),
    }
}

/// The API route of a model named `NAME` or `PROJECT/NAME`.
fn model_route(named: &str, rest: &str) -> String {
    route("/api/v1", "models", named, None, rest)
}

/// The API route of a job named `NAME` or `PROJECT/NAME`.
fn job_route(named: &str, project: &Option<String>, rest: &str) -> String {
    route("/api/v1", "jobs", named, project.as_deref(), rest)
}

#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    server: Server,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
}

/// `cairn status`.
pub(super) fn status(args: StatusArgs) -> Result<ExitCode> {
    let v: Status = args.server.get("/api/v1/status")?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let commit = v.last_sync.as_ref().map_or("-", |s| s.commit.as_str());
    println!(
        "{} @ {}  synced {}  ({} ms after the change was noticed)",
        v.repository,
        v.revision,
        &commit[..commit.len().min(12)],
        v.last_sync.as_ref().map_or(0, |s| s.duration_ms)
    );
    if !v.diagnostics.is_empty() {
        println!("\n{} problem(s) in the specs:", v.diagnostics.len());
        for d in &v.diagnostics {
            println!(
                "  {}:{}:{}: {} [{}]",
                d.file.as_deref().unwrap_or("?"),
                d.line.unwrap_or(0),
                d.column.unwrap_or(0),
                d.message,
                d.code
            );
        }
    }
    println!();
    let rows: Vec<[String; 5]> = v
        .resources
        .iter()
        .map(|r| {
            let name = match &r.project {
                Some(p) => format!("{p}/{}", r.name),
                None => r.name.clone(),
            };
            let commit = r.synced_commit.as_deref().unwrap_or("-");
            [
                r.kind.as_str().to_string(),
                name,
                r.phase.as_str().to_string(),
                commit[..commit.len().min(8)].to_string(),
                r.message.clone(),
            ]
        })
        .collect();
    print_table(&["KIND", "NAME", "PHASE", "COMMIT", "MESSAGE"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(N - 1) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// The job to run (its upstream jobs run first): `NAME`, or
    /// `PROJECT/NAME` when several projects have a job of that name.
    job: String,
    /// The job's project, when several projects have a job of that name.
    #[arg(long)]
    project: Option<String>,
    /// Override a parameter: `--param C=0.5` (repeatable; values are JSON when they parse as JSON).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Run only this job, using its upstream jobs' latest outputs.
    #[arg(long)]
    no_upstream: bool,
    /// Follow the run's log and exit with its outcome.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    server: Server,
}

/// `cairn run`.
pub(super) fn run(args: RunArgs) -> Result<ExitCode> {
    let mut params = serde_json::Map::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("`{p}` is not NAME=VALUE"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        params.insert(k.to_string(), value);
    }
    let body = StartRun {
        params: (!params.is_empty()).then_some(params),
        project: args.project.clone(),
        upstream: Some(!args.no_upstream),
    };
    let v: StartedRun = args
        .server
        .post(&job_route(&args.job, &args.project, "/runs"), &body)?;
    for r in &v.pipeline {
        eprintln!(
            "started {} run #{}{}",
            r.job_name,
            r.number,
            if r.trigger == "pipeline" {
                " (upstream)"
            } else {
                ""
            }
        );
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = ExitCode::SUCCESS;
    for r in &v.pipeline {
        let (job, number) = (r.job_name.as_str(), r.number);
        follow_logs(&args.server, job, number, &r.project)?;
        let done = wait_final(&args.server, job, number, &r.project)?;
        eprintln!(
            "{job} run #{number}: {} — {}",
            done.state.as_str(),
            done.message
        );
        if done.state != cairn_api::runs::RunState::Succeeded {
            last = ExitCode::from(1);
        }
    }
    Ok(last)
}

fn wait_final(server: &Server, job: &str, number: i64, project: &Option<String>) -> Result<Run> {
    loop {
        let r: Run = server.get(&job_route(job, project, &format!("/runs/{number}")))?;
        if r.state.is_final() {
            return Ok(r);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn follow_logs(server: &Server, job: &str, number: i64, project: &Option<String>) -> Result<()> {
    let url = server.url(&job_route(
        job,
        project,
        &format!("/runs/{number}/logs?follow=true"),
    ));
    let mut response = server
        .agent()
        .get(&url)
        .call()
        .map_err(|e| server.unreachable(e))?;
    if !response.status().is_success() {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        bail!("{text}");
    }
    let mut reader = response.body_mut().as_reader();
    let mut buf = [0u8; 8192];
    let mut out = std::io::stdout();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(super) struct LogsArgs {
    /// The job: `NAME` or `PROJECT/NAME`.
    job: String,
    /// The run number (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// Keep printing until the run ends.
    #[arg(long, short)]
    follow: bool,
    /// The job's project.
    #[arg(long)]
    project: Option<String>,
    #[command(flatten)]
    server: Server,
}

/// `cairn logs`.
pub(super) fn logs(args: LogsArgs) -> Result<ExitCode> {
    let number = match args.run {
        Some(n) => n,
        None => {
            let v: RunList = args
                .server
                .get(&job_route(&args.job, &args.project, "/runs"))?;
            v.runs
                .first()
                .map(|r| r.number)
                .with_context(|| format!("job `{}` has no runs yet", args.job))?
        }
    };
    if args.follow {
        follow_logs(&args.server, &args.job, number, &args.project)?;
    } else {
        let url = args.server.url(&job_route(
            &args.job,
            &args.project,
            &format!("/runs/{number}/logs"),
        ));
        let mut response = args
            .server
            .agent()
            .get(&url)
            .call()
            .map_err(|e| args.server.unreachable(e))?;
        let ok = response.status().is_success();
        let text = response.body_mut().read_to_string()?;
        if !ok {
            bail!("{text}");
        }
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct RunsArgs {
    /// The job, `NAME` or `PROJECT/NAME` (default: recent runs of every job).
    job: Option<String>,
    /// The job's project.
    #[arg(long)]
    project: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
    #[command(flatten)]
    server: Server,
}

/// `cairn runs`.
pub(super) fn runs(args: RunsArgs) -> Result<ExitCode> {
    let v: RunList = match &args.job {
        Some(job) => args.server.get(&job_route(job, &args.project, "/runs"))?,
        None => args.server.get("/api/v1/runs")?,
    };
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 6]> = v
        .runs
        .iter()
        .map(|r| {
            [
                r.job_name.clone(),
                format!("#{}", r.number),
                r.state.as_str().to_string(),
                r.trigger.clone(),
                r.duration_seconds
                    .map_or("-".into(), |d| format!("{d:.1}s")),
                r.message.clone(),
            ]
        })
        .collect();
    print_table(
        &["JOB", "RUN", "STATE", "TRIGGER", "DURATION", "MESSAGE"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct PredictArgs {
    /// The model: `NAME`, or `PROJECT/NAME` when several projects serve a
    /// model of that name.
    model: String,
    /// The request: JSON (`{"feature": 1.0}`), or `@FILE` holding either the
    /// request or a whole `{"request": ...}` body.
    #[arg(long, short)]
    data: String,
    /// Access key, for models with `auth.required`.
    #[arg(long, env = "CAIRN_KEY", hide_env_values = true)]
    key: Option<String>,
    #[command(flatten)]
    server: Server,
}

/// `cairn predict`.
pub(super) fn predict(args: PredictArgs) -> Result<ExitCode> {
    let text = match args.data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => args.data.clone(),
    };
    let value: Value = serde_json::from_str(&text).context("--data is not JSON")?;
    let body = match value.get("request") {
        Some(request) => PredictRequest {
            request: request.clone(),
        },
        None => PredictRequest { request: value },
    };
    args.server.await_server();
    let mut req = args.server.agent().post(&args.server.url(&route(
        "",
        "models",
        &args.model,
        None,
        "/predict",
    )));
    if let Some(key) = &args.key {
        req = req.header("Authorization", &format!("Bearer {key}"));
    }
    let mut response = req
        .send_json(&body)
        .map_err(|e| args.server.unreachable(e))?;
    let result: Prediction = json_or_error(&mut response)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct ModelsArgs {
    #[command(subcommand)]
    action: ModelsAction,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsAction {
    /// Every version of a model: commit, artifact digest, producing run,
    /// state, traffic share and rollout steps.
    History {
        /// The model: `NAME` or `PROJECT/NAME`.
        model: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Serve an earlier version again, through Git: commits a pin of the
    /// model to that version's artifact digest, then syncs.
    Rollback {
        /// The model: `NAME` or `PROJECT/NAME`.
        model: String,
        /// The version to serve again.
        #[arg(long)]
        to: i64,
        /// Put the commit on a new branch for review instead of the
        /// followed branch.
        #[arg(long)]
        review: bool,
    },
}

/// `cairn models`.
pub(super) fn models(args: ModelsArgs) -> Result<ExitCode> {
    match args.action {
        ModelsAction::History { model, output } => {
            let v: Registry = args.server.get(&model_route(&model, "/versions"))?;
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<[String; 7]> = v
                .versions
                .iter()
                .map(|v| {
                    [
                        format!("v{}", v.version),
                        v.state.clone(),
                        format!("{}%", v.traffic),
                        v.commit.chars().take(10).collect(),
                        v.sha256.chars().take(12).collect(),
                        v.run_id.map_or("-".into(), |r| format!("run {r}")),
                        v.created_at.clone(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "VERSION",
                    "STATE",
                    "TRAFFIC",
                    "COMMIT",
                    "SHA-256",
                    "PRODUCED BY",
                    "CREATED",
                ],
                &rows,
            );
            let mut steps: Vec<&cairn_api::registry::RolloutStep> =
                v.versions.iter().flat_map(|v| &v.rollout).collect();
            if !steps.is_empty() {
                println!("\nRollouts:");
                steps.sort_by(|a, b| a.at.cmp(&b.at));
                for s in steps {
                    println!(
                        "  {}  v{} {:>3}%  {:<10} {}",
                        s.at, s.version, s.weight, s.decision, s.detail
                    );
                }
            }
        }
        ModelsAction::Rollback { model, to, review } => {
            let v: RollbackAnswer = args.server.post(
                &model_route(&model, "/rollback"),
                &RollbackRequest {
                    version: to,
                    promote: Some(if review {
                        Promotion::PullRequest
                    } else {
                        Promotion::Commit
                    }),
                },
            )?;
            let pinned = &v.pinned;
            println!(
                "pinned `{model}` to version {to}: commit {} on {}{}",
                pinned.commit,
                pinned.branch,
                if pinned.on_followed_branch {
                    " (syncing now)"
                } else {
                    " (open a pull request from it to roll back)"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Create an access key for a model (shown once).
    Create {
        /// The model: `NAME` or `PROJECT/NAME`.
        model: String,
    },
    /// List a model's keys (not their secrets).
    List {
        /// The model: `NAME` or `PROJECT/NAME`.
        model: String,
    },
    /// Revoke a key.
    Revoke {
        /// The model: `NAME` or `PROJECT/NAME`.
        model: String,
        /// The key's id (`key_...`).
        id: String,
    },
}

/// `cairn keys`.
pub(super) fn keys(args: KeysArgs) -> Result<ExitCode> {
    match args.action {
        KeysAction::Create { model } => {
            let v: NewKey = args
                .server
                .post(&model_route(&model, "/keys"), &serde_json::Map::new())?;
            println!("{}", v.key);
            eprintln!(
                "created {} for model `{model}`; the key is shown only this once (send it as `Authorization: Bearer KEY`)",
                v.info.id
            );
        }
        KeysAction::List { model } => {
            let v: KeyList = args.server.get(&model_route(&model, "/keys"))?;
            let rows: Vec<[String; 4]> = v
                .keys
                .iter()
                .map(|k| {
                    [
                        k.id.clone(),
                        format!("{}…", k.prefix),
                        k.created_at.clone(),
                        k.revoked_at
                            .as_ref()
                            .map_or("active".to_string(), |r| format!("revoked {r}")),
                    ]
                })
                .collect();
            print_table(&["ID", "KEY", "CREATED", "STATE"], &rows);
        }
        KeysAction::Revoke { model, id } => {
            args.server.await_server();
            let mut response = args
                .server
                .agent()
                .delete(
                    &args
                        .server
                        .url(&model_route(&model, &format!("/keys/{}", query_value(&id)))),
                )
                .call()
                .map_err(|e| args.server.unreachable(e))?;
            let _: cairn_api::keys::RevokedKey = json_or_error(&mut response)?;
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(super) struct MetricsArgs {
    /// The model: `NAME` or `PROJECT/NAME`.
    model: String,
    /// Start of the period, RFC 3339 (default: a day before `--to`).
    #[arg(long)]
    from: Option<String>,
    /// End of the period, RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Window: `minute`, `hour`, `day` or a duration such as `15m`.
    #[arg(long, default_value = "hour")]
    window: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
    #[command(flatten)]
    server: Server,
}

/// Percent-encodes a query-string value (RFC 3986 unreserved kept).
pub(super) fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A score for a table cell: `-` when absent.
fn score(v: Option<Option<f64>>) -> String {
    v.flatten().map_or("-".into(), |x| format!("{x:.3}"))
}

/// Business metrics of a window, briefly: means of numbers, counts per
/// value of strings.
fn business_summary(metrics: &BTreeMap<String, BusinessMetric>) -> String {
    metrics
        .iter()
        .map(|(name, m)| match (m.mean, &m.values) {
            (Some(mean), _) => format!("{name}={mean:.4}"),
            (None, Some(values)) => format!(
                "{name}: {}",
                values
                    .iter()
                    .map(|(v, n)| format!("{v}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            (None, None) => format!("{name} ({})", m.count),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cairn metrics`.
pub(super) fn metrics(args: MetricsArgs) -> Result<ExitCode> {
    for (flag, value) in [("--from", &args.from), ("--to", &args.to)] {
        if let Some(v) = value {
            chrono::DateTime::parse_from_rfc3339(v).with_context(|| {
                format!("{flag}: `{v}` is not an RFC 3339 time (e.g. 2025-01-01T00:00:00Z)")
            })?;
        }
    }
    let mut params = vec![format!("window={}", query_value(&args.window))];
    for (key, value) in [("from", &args.from), ("to", &args.to)] {
        if let Some(v) = value {
            params.push(format!("{key}={}", query_value(v)));
        }
    }
    let v: AggregateReport = args.server.get(&model_route(
        &args.model,
        &format!("/metrics/aggregate?{}", params.join("&")),
    ))?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let regression = v.task == Task::Regression;
    println!(
        "{} ({}), {} to {}, windows of {}",
        args.model,
        if regression {
            "regression"
        } else {
            "classification"
        },
        v.from.as_deref().unwrap_or("?"),
        v.to.as_deref().unwrap_or("?"),
        humantime::format_duration(std::time::Duration::from_secs(
            v.window_seconds.max(0) as u64
        ))
    );
    if v.windows.is_empty() {
        println!("no predictions or metrics in this period");
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    let rows: Vec<[String; 7]> = v
        .windows
        .iter()
        .map(|w| {
            let (a, b) = if regression {
                (score(w.mae), score(w.rmse))
            } else {
                (score(w.accuracy), score(w.f1))
            };
            [
                w.start.clone().unwrap_or_default(),
                w.version.clone().unwrap_or_else(|| "-".into()),
                w.requests.to_string(),
                w.coverage
                    .map_or("-".into(), |c| format!("{:.1}%", c * 100.0)),
                a,
                b,
                business_summary(&w.business_metrics),
            ]
        })
        .collect();
    let header = if regression {
        [
            "WINDOW",
            "VERSION",
            "REQUESTS",
            "COVERAGE",
            "MAE",
            "RMSE",
            "BUSINESS METRICS",
        ]
    } else {
        [
            "WINDOW",
            "VERSION",
            "REQUESTS",
            "COVERAGE",
            "ACCURACY",
            "F1",
            "BUSINESS METRICS",
        ]
    };
    print_table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_value("2025-01-01T00:00:00+02:00"),
            "2025-01-01T00%3A00%3A00%2B02%3A00"
        );
        assert_eq!(query_value("15m"), "15m");
    }

    #[test]
    fn routes_take_a_project() {
        assert_eq!(
            route("", "models", "alpha/clf", None, "/predict"),
            "/projects/alpha/models/clf/predict"
        );
        assert_eq!(model_route("clf", "/keys"), "/api/v1/models/clf/keys");
        assert_eq!(
            job_route("train", &Some("beta".into()), "/runs"),
            "/api/v1/projects/beta/jobs/train/runs"
        );
        assert_eq!(
            job_route("alpha/train", &None, "/runs/2/logs?follow=true"),
            "/api/v1/projects/alpha/jobs/train/runs/2/logs?follow=true"
        );
    }

    #[test]
    fn business_metrics_are_summarized() {
        let m: BTreeMap<String, BusinessMetric> = serde_json::from_value(json!({
            "revenue": {"count": 3, "sum": 35.0, "mean": 11.666666, "p50": 10.0, "p95": 20.5},
            "segment": {"count": 2, "values": {"a": 1, "b": 1}},
        }))
        .unwrap();
        assert_eq!(business_summary(&m), "revenue=11.6667, segment: a×1 b×1");
    }
}
