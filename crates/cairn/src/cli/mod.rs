//! The `cairn` command line.

mod client;
mod credentials;
mod experiments;
mod kube;
mod model_server;
mod plan;
mod plugin;
mod tokens;
mod up;
mod validate;

use anyhow::{Context, Result};
use cairn_source::{Credentials, GitSource, RepoLocation};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// GitOps for machine learning: a Git repository of specs, reconciled onto a running world.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// When to color output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

/// When to color output.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ColorChoice {
    /// When writing to a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every spec of a repository: syntax, types and cross-references.
    ///
    /// Exits 0 when the specs are valid (warnings allowed), 1 when there are
    /// errors, 2 when the repository cannot be read.
    Validate(validate::Args),
    /// Show what a change will do: the actions between two revisions.
    Plan(plan::Args),
    /// Run the controller, the embedded runtime and the HTTP server.
    Up(Box<up::Args>),
    /// Show the sync status of every resource.
    Status(client::StatusArgs),
    /// Start a job now (its upstream jobs first).
    Run(client::RunArgs),
    /// List job runs.
    Runs(client::RunsArgs),
    /// Print a job run's log.
    Logs(client::LogsArgs),
    /// Send a prediction to a served model.
    Predict(client::PredictArgs),
    /// Manage a model's access keys.
    Keys(client::KeysArgs),
    /// Manage API tokens: who may call the server, as what.
    Tokens(tokens::TokensArgs),
    /// Show who the server takes you for, and your roles.
    Whoami(tokens::WhoAmIArgs),
    /// Tracked runs: list experiments and runs, compare, promote a run to a model.
    Experiments(experiments::ExperimentsArgs),
    /// The model registry: a model's versions, and rollbacks through Git.
    Models(client::ModelsArgs),
    /// Show a model's monitoring aggregates: requests, label coverage,
    /// scores and business metrics per time window and version.
    Metrics(client::MetricsArgs),
    /// Serve one ONNX model over HTTP: the program of a model's pods on
    /// Kubernetes, behind Cairn's gateway.
    ModelServer(model_server::Args),
    /// Work with WebAssembly plugins: `cairn plugin test PLUGIN.wasm --world ...`.
    Plugin(plugin::Args),
}

/// Where to read specs from, shared by commands that read a repository.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    /// The spec repository: a directory (possibly inside a larger Git
    /// repository) or a URL to clone.
    #[arg(default_value = ".")]
    pub repo: String,
    /// Where remote repositories are cloned (default: the user cache directory).
    #[arg(long, env = "CAIRN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl RepoArgs {
    /// Opens the repository, cloning or fetching a remote one.
    pub fn open(&self) -> Result<GitSource> {
        match RepoLocation::parse(&self.repo) {
            RepoLocation::Local(path) => Ok(GitSource::open_local(&path)?),
            RepoLocation::Remote(url) => {
                let cache = self.cache_dir.clone().unwrap_or_else(default_cache_dir);
                let dir = cache.join("repos").join(url_dir_name(&url));
                let credentials = Credentials::from_env();
                let shown = cairn_source::redact_url(&url);
                let mut last = 0;
                let source = GitSource::open_remote(&url, &dir, &credentials, &mut |p| {
                    if p.total > 0 && p.received * 10 / p.total > last {
                        last = p.received * 10 / p.total;
                        eprint!("\rfetching {shown}: {}/{} objects", p.received, p.total);
                    }
                })
                .with_context(|| format!("opening {shown}"))?;
                if last > 0 {
                    eprintln!();
                }
                Ok(source)
            }
        }
    }
}

/// The user data directory for state of remote repositories.
fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cairn")
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cairn")
}

/// A directory name for a URL: readable, unique, and free of credentials.
fn url_dir_name(url: &str) -> String {
    use sha2::Digest;
    let redacted = cairn_source::redact_url(url);
    let tail: String = redacted
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let digest = hex::encode(&sha2::Sha256::digest(url.as_bytes())[..6]);
    format!("{tail}-{digest}")
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.color {
        ColorChoice::Always => owo_colors::set_override(true),
        ColorChoice::Never => owo_colors::set_override(false),
        ColorChoice::Auto => {}
    }
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, cli.color),
        Command::Plan(args) => plan::run(args, cli.color),
        Command::Up(args) => up::run(*args),
        Command::Status(args) => client::status(args),
        Command::Run(args) => client::run(args),
        Command::Runs(args) => client::runs(args),
        Command::Logs(args) => client::logs(args),
        Command::Predict(args) => client::predict(args),
        Command::Keys(args) => client::keys(args),
        Command::Tokens(args) => tokens::tokens(args),
        Command::Whoami(args) => tokens::whoami(args),
        Command::Experiments(args) => experiments::experiments(args),
        Command::Models(args) => client::models(args),
        Command::Metrics(args) => client::metrics(args),
        Command::ModelServer(args) => model_server::run(args),
        Command::Plugin(args) => plugin::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A codespan color choice for stderr.
fn term_color(choice: ColorChoice) -> codespan_reporting::term::termcolor::ColorChoice {
    use codespan_reporting::term::termcolor::ColorChoice as C;
    use std::io::IsTerminal;
    match choice {
        ColorChoice::Always => C::Always,
        ColorChoice::Never => C::Never,
        ColorChoice::Auto if std::io::stderr().is_terminal() => C::Auto,
        ColorChoice::Auto => C::Never,
    }
}

/// Output format of machine-readable commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Human,
    /// For tools.
    Json,
}
