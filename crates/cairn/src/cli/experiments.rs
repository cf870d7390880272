//! `cairn experiments`: list experiments and their runs, compare runs,
//! and promote a run's artifact to a model through Git.

use super::OutputFormat;
use super::client::{Server, print_table, query_value};
use anyhow::Result;
use cairn_api::experiments::{
    Comparison, ExperimentList, PromoteAnswer, PromoteRequest, TrackedRun, TrackedRunList,
};
use cairn_api::registry::Promotion;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct ExperimentsArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the experiments you may see.
    List {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// List an experiment's runs (by name, `PROJECT/NAME`, or id).
    Runs {
        /// The experiment.
        experiment: String,
        /// MLflow's filter syntax: `metrics.accuracy > 0.9 and params.C = '1'`.
        #[arg(long)]
        filter: Option<String>,
        /// Order: `metrics.accuracy DESC` (repeat for more keys).
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Compare runs: their parameters and metrics side by side.
    Compare {
        /// Run ids (2 to 20).
        #[arg(num_args = 2..=20, required = true)]
        runs: Vec<String>,
        /// Only the rows where the runs differ.
        #[arg(long)]
        diff: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Promote a run: pin a model to the artifact the run produced, by a
    /// commit on the followed branch (or a branch for review).
    Promote {
        /// The run's id.
        run: String,
        /// The model (`NAME` or `PROJECT/NAME`).
        #[arg(long)]
        model: String,
        /// Write the pin on a branch for review instead of the followed branch.
        #[arg(long)]
        review: bool,
    },
}

/// `cairn experiments`.
pub(super) fn experiments(args: ExperimentsArgs) -> Result<ExitCode> {
    let server = &args.server;
    match args.action {
        Action::List { output } => {
            let v: ExperimentList = server.get("/api/v1/experiments")?;
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<[String; 4]> = v
                .experiments
                .iter()
                .map(|e| {
                    [
                        e.id.clone(),
                        e.name.clone(),
                        e.job.clone().unwrap_or_else(|| "-".into()),
                        e.created_at.clone(),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "JOB", "CREATED"], &rows);
        }
        Action::Runs {
            experiment,
            filter,
            order_by,
            limit,
            output,
        } => {
            let id = experiment_id(server, &experiment)?;
            let mut path = format!("/api/v1/experiments/{id}/runs?maxResults={limit}");
            if let Some(f) = &filter {
                path.push_str(&format!("&filter={}", query_value(f)));
            }
            if !order_by.is_empty() {
                path.push_str(&format!("&orderBy={}", query_value(&order_by.join(","))));
            }
            let v: TrackedRunList = server.get(&path)?;
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_runs(&v.runs);
        }
        Action::Compare { runs, diff, output } => {
            let v: Comparison = server.get(&format!(
                "/api/v1/experiments/compare?runs={}",
                query_value(&runs.join(","))
            ))?;
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_comparison(&v, diff);
        }
        Action::Promote { run, model, review } => {
            let v: PromoteAnswer = server.post(
                &format!("/api/v1/experiments/runs/{}/promote", query_value(&run)),
                &PromoteRequest {
                    model: model.clone(),
                    promote: review.then_some(Promotion::PullRequest),
                },
            )?;
            println!("{}", v.pinned.commit);
            if v.pinned.on_followed_branch {
                eprintln!(
                    "promoted run {} to model {model}: {} pins sha256 {} in {} on `{}`",
                    v.run,
                    &v.pinned.commit[..12],
                    &v.sha256[..12],
                    v.pinned.file,
                    v.pinned.branch
                );
            } else {
                eprintln!(
                    "the pin of run {} is on branch `{}` for review ({}); merge it to serve the run's artifact",
                    v.run, v.pinned.branch, v.pinned.file
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An experiment's id from its id or name.
fn experiment_id(server: &Server, wanted: &str) -> Result<String> {
    if wanted.chars().all(|c| c.is_ascii_digit()) {
        return Ok(wanted.to_string());
    }
    let v: ExperimentList = server.get("/api/v1/experiments")?;
    let found: Vec<_> = v
        .experiments
        .iter()
        .filter(|e| e.name == wanted || e.name.rsplit('/').next() == Some(wanted))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => anyhow::bail!("no experiment `{wanted}` (see `cairn experiments list`)"),
        many => anyhow::bail!(
            "`{wanted}` names {} experiments: {}; name one as PROJECT/NAME",
            many.len(),
            many.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn short(v: f64) -> String {
    format!("{v:.4}")
}

fn print_runs(runs: &[TrackedRun]) {
    let metric_keys: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let metric_keys: Vec<&String> = metric_keys.into_iter().take(4).collect();
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.name.clone(),
                r.status.clone(),
                r.params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                metric_keys
                    .iter()
                    .filter_map(|k| {
                        r.metrics
                            .get(*k)
                            .map(|v| format!("{k}={}", v.map_or("NaN".into(), short)))
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                match &r.job_run {
                    Some(j) if j.best => format!("#{} (best)", j.number),
                    Some(j) => format!("#{}", j.number),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    print_table(
        &["RUN", "NAME", "STATUS", "PARAMS", "METRICS", "JOB RUN"],
        &rows,
    );
}

fn print_comparison(c: &Comparison, diff: bool) {
    let width = c.runs.len();
    let mut header = vec!["".to_string()];
    header.extend(c.runs.iter().map(|r| r.name.clone()));
    let mut lines = vec![header];
    lines.push(
        std::iter::once("run".to_string())
            .chain(
                c.runs
                    .iter()
                    .map(|r| r.id[..r.id.len().min(12)].to_string()),
            )
            .collect(),
    );
    for p in c.params.iter().filter(|p| p.differs || !diff) {
        let mut line = vec![format!(
            "params.{}{}",
            p.key,
            if p.differs { " *" } else { "" }
        )];
        line.extend(
            p.values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "-".into())),
        );
        lines.push(line);
    }
    for m in c.metrics.iter().filter(|m| m.differs || !diff) {
        let mut line = vec![format!(
            "metrics.{}{}",
            m.key,
            if m.differs { " *" } else { "" }
        )];
        line.extend(m.values.iter().map(|v| v.map_or("-".into(), short)));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..=width)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let text: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    }
    println!("(* the runs differ)");
}
