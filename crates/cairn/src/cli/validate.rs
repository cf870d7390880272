//! `cairn validate`.

use super::{ColorChoice, OutputFormat, RepoArgs, term_color};
use anyhow::Result;
use cairn_plan::loader;
use cairn_source::{GitSource, Origin, Snapshot};
use cairn_spec::diagnostics;
use codespan_reporting::term::termcolor::StandardStream;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The revision to validate: a branch, tag, commit or expression such as `HEAD~1`.
    #[arg(long, default_value = "HEAD", conflicts_with_all = ["staged", "worktree"])]
    rev: String,
    /// Validate the staged changes (what `git commit` would record): for pre-commit hooks.
    #[arg(long, conflicts_with = "worktree")]
    staged: bool,
    /// Validate the files on disk, committed or not.
    #[arg(long)]
    worktree: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Human)]
    output: OutputFormat,
}

/// Takes the snapshot the flags ask for.
pub(super) fn snapshot(
    source: &GitSource,
    rev: &str,
    staged: bool,
    worktree: bool,
) -> Result<Snapshot> {
    Ok(if staged {
        source.index_snapshot()?
    } else if worktree {
        source.worktree_snapshot()?
    } else {
        source.snapshot(rev)?
    })
}

/// A short description of a snapshot's origin.
pub(super) fn describe(snapshot: &Snapshot, rev: &str) -> String {
    match snapshot.origin() {
        Origin::Commit(c) if c.id.starts_with(rev) => format!("commit {}", c.short_id()),
        Origin::Commit(c) => format!("{rev} ({})", c.short_id()),
        Origin::Index => "the staged changes".into(),
        Origin::Worktree => "the work tree".into(),
    }
}

pub(super) fn run(args: Args, color: ColorChoice) -> Result<ExitCode> {
    let source = args.repo.open()?;
    let snapshot = snapshot(&source, &args.rev, args.staged, args.worktree)?;
    let state = loader::load(&snapshot);
    let report = &state.report;
    let errors = report.errors();
    match args.output {
        OutputFormat::Json => {
            let mut value = diagnostics::to_json(report);
            value["valid"] = serde_json::json!(errors == 0);
            value["origin"] = serde_json::to_value(snapshot.origin())?;
            value["resources"] = serde_json::json!(state.resources.len());
            value["files"] = serde_json::json!(state.files.len());
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Human => {
            let mut stderr = StandardStream::stderr(term_color(color));
            diagnostics::render_human(report, &mut stderr)?;
            let what = describe(&snapshot, &args.rev);
            let counts = format!(
                "{} spec{} in {} file{}",
                state.resources.len(),
                if state.resources.len() == 1 { "" } else { "s" },
                state.files.len(),
                if state.files.len() == 1 { "" } else { "s" }
            );
            if errors == 0 {
                let warnings = match report.warnings() {
                    0 => String::new(),
                    1 => ", 1 warning".into(),
                    n => format!(", {n} warnings"),
                };
                eprintln!("ok: {counts} valid at {what}{warnings}");
            } else {
                eprintln!(
                    "error: {errors} error{} and {} warning{} at {what} ({counts} loaded)",
                    if errors == 1 { "" } else { "s" },
                    report.warnings(),
                    if report.warnings() == 1 { "" } else { "s" },
                );
            }
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
