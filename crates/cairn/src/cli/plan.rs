//! `cairn plan`.

use super::{ColorChoice, RepoArgs, term_color};
use crate::cli::kube::{ObjectArgs, RuntimeKind};
use crate::cli::validate::{describe, snapshot};
use anyhow::Result;
use cairn_plan::loader;
use cairn_plan::plan::{self, StateView};
use cairn_spec::diagnostics;
use clap::ValueEnum;
use codespan_reporting::term::termcolor::StandardStream;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The revision the change starts from (e.g. `main` or `origin/main`).
    #[arg(long)]
    from: String,
    /// The revision with the change.
    #[arg(long, default_value = "HEAD", conflicts_with_all = ["staged", "worktree"])]
    to: String,
    /// Plan the staged changes instead of `--to`.
    #[arg(long, conflicts_with = "worktree")]
    staged: bool,
    /// Plan the files on disk instead of `--to`.
    #[arg(long)]
    worktree: bool,
    /// Output format: `markdown` is ready to paste into a pull-request comment.
    #[arg(long, short, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Also list unchanged resources.
    #[arg(long, short)]
    verbose: bool,
    /// With `kubernetes`, print the exact objects the change applies (YAML)
    /// and those it prunes, instead of the resource-level plan.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Embedded)]
    runtime: RuntimeKind,
    #[command(flatten)]
    kube: ObjectArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

pub(super) fn run(args: Args, color: ColorChoice) -> Result<ExitCode> {
    let source = args.repo.open()?;
    let old_snapshot = source.snapshot(&args.from)?;
    let new_snapshot = snapshot(&source, &args.to, args.staged, args.worktree)?;
    let (old, new) = rayon::join(
        || loader::load(&old_snapshot),
        || loader::load(&new_snapshot),
    );
    // Digests of code exist only in commits: compare them only between commits.
    let sources = !args.staged && !args.worktree;
    let plan = plan::plan(
        &StateView::with_sources(&new, sources),
        &new.guard,
        &StateView::with_sources(&old, sources),
    );
    let from = describe(&old_snapshot, &args.from);
    let to = describe(&new_snapshot, &args.to);
    if args.runtime == RuntimeKind::Kubernetes {
        let commit = new_snapshot.commit().map_or_else(
            || if args.staged { "staged" } else { "worktree" }.to_string(),
            |c| c.id.clone(),
        );
        let checkout = tempfile_dir()?;
        let materialized = cairn_source::materialize(&new_snapshot, &checkout);
        let rendered = materialized.map(|()| {
            cairn_runtime_kubernetes::plan::render(
                &plan,
                &new,
                &commit,
                &checkout,
                &args.kube.settings(None),
            )
        });
        let _ = std::fs::remove_dir_all(&checkout);
        let rendered = rendered?;
        print!("{}", rendered.yaml);
        for problem in &rendered.problems {
            eprintln!("error: {problem}");
        }
        if new.has_errors() {
            let mut stderr = StandardStream::stderr(term_color(color));
            diagnostics::render_human(&new.report, &mut stderr)?;
        }
        return Ok(if rendered.problems.is_empty() && !new.has_errors() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    match args.format {
        PlanFormat::Text => print!("{}", plan::render_text(&plan, &from, &to, args.verbose)),
        PlanFormat::Markdown => {
            let mut md = plan::render_markdown(&plan, &from, &to);
            if new.has_errors() {
                md.push_str(&format!(
                    "\n> **{} error{} in the specs at `{to}`**: run `cairn validate {}` for details.\n",
                    new.report.errors(),
                    if new.report.errors() == 1 { "" } else { "s" },
                    if args.staged {
                        "--staged".to_string()
                    } else if args.worktree {
                        "--worktree".to_string()
                    } else {
                        format!("--rev {}", args.to)
                    }
                ));
            }
            print!("{md}");
        }
        PlanFormat::Json => {
            let mut value = plan::to_json(&plan, &from, &to);
            value["diagnostics"] = diagnostics::to_json(&new.report)["diagnostics"].clone();
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    if new.has_errors() {
        if args.format != PlanFormat::Json {
            let mut stderr = StandardStream::stderr(term_color(color));
            diagnostics::render_human(&new.report, &mut stderr)?;
            eprintln!(
                "error: the specs at {to} have {} error{}; deletions of what they describe are held",
                new.report.errors(),
                if new.report.errors() == 1 { "" } else { "s" }
            );
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh directory for the files of the planned revision.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "cairn-plan-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
