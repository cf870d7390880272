//! Runtimes: where resources run.
//!
//! The controller talks to a runtime through the small [`Runtime`]
//! interface: *observe* what it runs, *apply* one planned action, *restore*
//! after a restart, and read *logs*. The embedded runtime
//! ([`embedded::EmbeddedRuntime`]) runs everything on this machine as
//! supervised processes; the Kubernetes runtime ([`kubernetes::KubernetesRuntime`])
//! implements the same interface on a cluster.

pub mod frameworks;
pub mod sweep;
pub mod workload_env;

use cairn_plan::loader::{DesiredState, Resource, ResourceKey};
use cairn_plan::plan::{Action, StateView};
use cairn_store::Applied;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Runtime errors; each is reported against the resource it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The resource cannot run here.
    #[error("{0}")]
    Unsupported(String),
    /// Something named by the spec is missing.
    #[error("{0}")]
    NotFound(String),
    /// A process could not be started.
    #[error("could not start: {0}")]
    Start(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// The file system failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The cluster refused or could not be reached.
    #[error("{0}")]
    Cluster(String),
}

/// What an action is applied with.
pub struct ApplyContext<'a> {
    /// The commit being applied.
    pub commit: &'a str,
    /// The commit's files, checked out under the data directory.
    pub checkout: &'a Path,
    /// The whole desired state (for projects, pools, upstream jobs).
    pub state: &'a DesiredState,
    /// Who made the commit, for the audit log ([`git_actor`]).
    pub actor: &'a str,
}

/// How the audit log names the people behind a commit: its author, and its
/// committer when another.
pub fn git_actor(
    author: &str,
    author_email: &str,
    committer: &str,
    committer_email: &str,
) -> String {
    let author = format!("{author} <{author_email}>");
    let committer = format!("{committer} <{committer_email}>");
    if author == committer {
        format!("git:{author}")
    } else {
        format!("git:{author}, committed by {committer}")
    }
}

/// Where to read a log from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// A job run, by job and run number.
    Run(ResourceKey, i64),
    /// A replica of an application.
    Replica(ResourceKey, i64),
}

/// A log to read.
#[derive(Clone, Debug)]
pub struct LogSource {
    /// The file the process writes to.
    pub path: PathBuf,
    /// Whether the process may still write to it.
    pub live: bool,
}

/// The interface between the controller and a runtime.
pub trait Runtime: Send + Sync + 'static {
    /// What the runtime has applied (the observed state for the planner).
    fn observe(&self) -> Result<StateView, RuntimeError>;

    /// Applies one planned action; `resource` is the desired resource for
    /// creates and updates. Returns a short description of what was done.
    fn apply(
        &self,
        action: &Action,
        resource: Option<&Resource>,
        ctx: &ApplyContext<'_>,
    ) -> Result<String, RuntimeError>;

    /// Called once all actions of a sync are applied (starts the jobs that
    /// run on sync, as one pipeline).
    fn finish_sync(&self, ctx: &ApplyContext<'_>);

    /// Rebuilds in-memory state after a restart from what was applied,
    /// adopting processes that still run. `checkout` gives the files of a commit.
    fn restore(&self, applied: &[Applied], checkout: &dyn Fn(&str) -> Option<PathBuf>);

    /// The log of a run or replica.
    fn logs(&self, target: &LogTarget) -> Result<LogSource, RuntimeError>;
}

/// Expands `$(NAME)` references to variables of `env` in a command's
/// arguments, as Kubernetes does; `$$(NAME)` stays literal `$(NAME)`, and
/// unknown names are left as written.
pub fn expand_args(args: &[String], env: &[(String, String)]) -> Vec<String> {
    args.iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(i) = rest.find("$(") {
                if rest[..i].ends_with('$') {
                    out.push_str(&rest[..i - 1]);
                    out.push_str("$(");
                    rest = &rest[i + 2..];
                    continue;
                }
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                match after.find(')') {
                    Some(end) => {
                        let name = &after[..end];
                        match env.iter().rev().find(|(k, _)| k == name) {
                            Some((_, v)) => out.push_str(v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[i..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The canonical JSON of a resource, as stored in the applied state.
pub fn spec_of<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.get("spec")?.clone()).ok()
}

/// What a runtime has applied, as the planner sees it: the store's applied
/// records, with each job's `dependsOn` for ordering. Both runtimes observe
/// this way: what runs follows from what was applied.
pub fn observe_applied(
    store: &cairn_store::Store,
) -> Result<cairn_plan::plan::StateView, RuntimeError> {
    let resources = store
        .applied()?
        .into_iter()
        .map(|a| {
            let depends_on = spec_of::<cairn_spec::JobSpec>(&a.value)
                .filter(|_| a.key.kind == cairn_spec::Kind::Job)
                .map(|j| j.depends_on.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            (
                a.key,
                cairn_plan::plan::ResourceView {
                    value: a.value,
                    file: a.file,
                    depends_on,
                },
            )
        })
        .collect();
    Ok(cairn_plan::plan::StateView { resources })
}

/// A request to run jobs.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The jobs to run.
    pub targets: Vec<ResourceKey>,
    /// Why: `manual`, `schedule`, `sync`, ...
    pub trigger: String,
    /// Parameters overriding the spec's (for the targets only).
    pub params: Option<serde_json::Map<String, Value>>,
    /// Run every upstream job first (a pipeline run), or only those that
    /// have never succeeded.
    pub with_upstream: bool,
    /// Who asked, for the audit log (`cairn` for the controller itself).
    pub actor: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_like_kubernetes() {
        let env = vec![("PORT".to_string(), "8123".to_string())];
        let args: Vec<String> = [
            "--port=$(PORT)",
            "$(MISSING)",
            "$$(PORT)",
            "a$(PORT)b$(PORT)",
            "$(open",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            expand_args(&args, &env),
            [
                "--port=8123",
                "$(MISSING)",
                "$(PORT)",
                "a8123b8123",
                "$(open"
            ]
        );
    }
}
