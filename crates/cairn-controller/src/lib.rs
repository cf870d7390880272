//! The controller: watches the Git source, and on every change loads the
//! desired state, plans it against what the runtime observes, and applies
//! the actions in order, recording status, sync and audit in the store.
//!
//! Specs that fail to load never touch their running counterparts: their
//! previous version stays applied (and is reported `Invalid`), and nothing
//! they described is deleted.

mod watch;
mod writeback;

pub use writeback::{PinError, Pinned};

pub use watch::{Trigger, WatchOptions, Watchers, spawn_watchers};

use cairn_plan::loader::{self, DesiredState, ResourceKey};
use cairn_plan::plan::{self, Change, StateView};
use cairn_runtime::{ApplyContext, Runtime};
use cairn_source::{Credentials, GitSource, Origin, Snapshot};
use cairn_spec::diagnostics::Report;
use cairn_store::{Applied, Phase, Store, SyncRecord};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// What the controller reads and where.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The branch (or other revision) to follow.
    pub rev: String,
    /// Read the work tree instead of commits (development mode).
    pub worktree: bool,
    /// Where checkouts, logs and the store live.
    pub data_dir: PathBuf,
}

/// The latest loaded state, for the API and the dashboard.
#[derive(Debug, Default)]
pub struct Latest {
    /// The commit (or `worktree`).
    pub commit: Option<String>,
    /// Commit details.
    pub origin: Option<Origin>,
    /// Diagnostics of that state.
    pub report: Report,
    /// Number of resources loaded.
    pub resources: usize,
}

/// The controller.
pub struct Controller<R: Runtime> {
    runtime: Arc<R>,
    store: Arc<Store>,
    source: Arc<Mutex<GitSource>>,
    credentials: Credentials,
    settings: Settings,
    latest: RwLock<Latest>,
    /// Serializes reconciliations.
    busy: tokio::sync::Mutex<()>,
    /// Counts finished syncs, for those who follow what is applied.
    synced: tokio::sync::watch::Sender<u64>,
}

/// The result of one reconciliation.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The commit synced.
    pub commit: String,
    /// The plan's summary.
    pub summary: plan::Summary,
    /// Errors in the specs.
    pub errors: usize,
    /// Actions that failed to apply.
    pub failed: usize,
    /// Whether anything was done (false when the commit was already synced).
    pub changed: bool,
}

impl<R: Runtime> Controller<R> {
    /// A controller over `source`, applying through `runtime`.
    pub fn new(
        runtime: Arc<R>,
        store: Arc<Store>,
        source: GitSource,
        credentials: Credentials,
        settings: Settings,
    ) -> Self {
        Controller {
            runtime,
            store,
            source: Arc::new(Mutex::new(source)),
            credentials,
            settings,
            latest: RwLock::new(Latest::default()),
            busy: tokio::sync::Mutex::new(()),
            synced: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes after every sync that applied something (the server re-reads
    /// the projects' access rules then).
    pub fn subscribe_synced(&self) -> tokio::sync::watch::Receiver<u64> {
        self.synced.subscribe()
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<R> {
        &self.runtime
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Reads the latest loaded state.
    pub fn with_latest<T>(&self, f: impl FnOnce(&Latest) -> T) -> T {
        f(&self.latest.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The Git source (for watchers).
    pub fn source(&self) -> &Arc<Mutex<GitSource>> {
        &self.source
    }

    /// Fetches a remote repository (no-op for local ones).
    pub async fn fetch(&self) -> Result<(), cairn_source::GitError> {
        let source = self.source.clone();
        let credentials = self.credentials.clone();
        tokio::task::spawn_blocking(move || {
            let source = source.lock().unwrap_or_else(|e| e.into_inner());
            source.fetch(&credentials, &mut |_| {})
        })
        .await
        .expect("fetch task")
    }

    /// The commit the watched revision points at now.
    pub fn head(&self) -> Option<String> {
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        source.peek(&self.settings.rev).map(|o| o.to_string())
    }

    fn checkout_dir(&self, commit: &str) -> PathBuf {
        self.settings.data_dir.join("checkouts").join(commit)
    }

    /// The files of `commit`, checked out under the data directory (or the
    /// work tree itself in development mode).
    pub fn ensure_checkout(&self, commit: &str) -> Option<PathBuf> {
        if commit == "worktree" {
            let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
            return source.workdir().map(|w| w.join(source.prefix()));
        }
        let dir = self.checkout_dir(commit);
        if dir.join(".cairn-complete").exists() {
            return Some(dir);
        }
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = source.snapshot(commit).ok()?;
        drop(source);
        write_checkout(&snapshot, &dir).ok()?;
        Some(dir)
    }

    /// After a restart: rebuilds the runtime from what was applied.
    pub fn restore(&self) -> Result<(), cairn_store::StoreError> {
        let applied = self.store.applied()?;
        self.runtime
            .restore(&applied, &|commit| self.ensure_checkout(commit));
        Ok(())
    }

    /// One reconciliation: load the watched revision, plan, apply.
    /// `force` re-applies even when the commit was already synced.
    pub async fn reconcile(
        self: &Arc<Self>,
        detected_at: String,
        force: bool,
    ) -> anyhow::Result<SyncOutcome> {
        let _guard = self.busy.lock().await;
        let started = std::time::Instant::now();
        let this = self.clone();
        let (snapshot, commit) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<(Snapshot, String)> {
                let source = this.source.lock().unwrap_or_else(|e| e.into_inner());
                let snapshot = if this.settings.worktree {
                    source.worktree_snapshot()?
                } else {
                    source.snapshot(&this.settings.rev)?
                };
                let commit = snapshot
                    .commit()
                    .map_or_else(|| "worktree".to_string(), |c| c.id.clone());
                Ok((snapshot, commit))
            })
            .await??;
        let last = self.store.get("last_synced_commit")?;
        if !force && !self.settings.worktree && last.as_deref() == Some(commit.as_str()) {
            return Ok(SyncOutcome {
                commit,
                summary: plan::Summary::default(),
                errors: 0,
                failed: 0,
                changed: false,
            });
        }
        let (desired, snapshot) =
            tokio::task::spawn_blocking(move || (loader::load(&snapshot), snapshot)).await?;
        let origin = snapshot.origin().clone();
        let checkout = if self.settings.worktree {
            self.ensure_checkout("worktree").unwrap_or_default()
        } else {
            let dir = self.checkout_dir(&commit);
            if !dir.join(".cairn-complete").exists() {
                let dir2 = dir.clone();
                tokio::task::spawn_blocking(move || write_checkout(&snapshot, &dir2)).await??;
            }
            dir
        };

        let observed = self.runtime.observe()?;
        let view = reconcilable_view(&desired, &observed);
        let plan = plan::plan(&view, &desired.guard, &observed);
        let actor = match &origin {
            cairn_source::Origin::Commit(c) => {
                cairn_runtime::git_actor(&c.author, &c.email, &c.committer, &c.committer_email)
            }
            _ => "git:work tree".to_string(),
        };
        let ctx = ApplyContext {
            commit: &commit,
            checkout: &checkout,
            state: &desired,
            actor: &actor,
        };
        let mut failed = 0;
        let mut unchanged = Vec::new();
        for action in &plan.actions {
            let key = &action.key;
            let resource = desired.resources.get(key);
            match &action.change {
                Change::Unchanged => {
                    if desired.guard.broken_files.contains(&action.file) {
                        // A resource whose file is broken keeps its previous version.
                        self.report_invalid(
                            key,
                            &desired,
                            &action.file,
                            "kept at its previous version",
                        );
                    } else {
                        unchanged.push((key.clone(), action.file.clone()));
                    }
                }
                Change::Hold { reason } => {
                    if desired.guard.broken_files.contains(&action.file) {
                        // Its own file is broken: point at the error there.
                        self.report_invalid(key, &desired, &action.file, "kept running");
                    } else {
                        self.store.set_status(
                            key,
                            Phase::Invalid,
                            &format!("kept running: {reason}"),
                            None,
                            None,
                        )?;
                    }
                    self.store
                        .audit_as(&actor, Some(&commit), Some(key), "hold", reason)?;
                }
                Change::Create | Change::Update { .. } | Change::Delete => {
                    let verb = match action.change {
                        Change::Create => "create",
                        Change::Update { .. } => "update",
                        _ => "delete",
                    };
                    if !matches!(action.change, Change::Delete) {
                        self.store.set_status(
                            key,
                            Phase::Progressing,
                            "applying",
                            Some(&commit),
                            Some(&action.file),
                        )?;
                    }
                    match self.runtime.apply(action, resource, &ctx) {
                        Ok(note) => {
                            if matches!(action.change, Change::Delete) {
                                self.store.remove_applied(key)?;
                                self.store.remove_status(key)?;
                            } else {
                                let value = view.resources[key].value.clone();
                                self.store.set_applied(&Applied {
                                    key: key.clone(),
                                    value,
                                    file: action.file.clone(),
                                    commit: commit.clone(),
                                })?;
                                // Runtimes set precise phases; what they leave is Ready.
                                if let Some(s) = self.store.status(key)?
                                    && s.phase == Phase::Progressing
                                    && s.message == "applying"
                                {
                                    self.store
                                        .set_status(key, Phase::Ready, &note, None, None)?;
                                }
                            }
                            tracing::info!("{verb} {key}: {note}");
                            self.store
                                .audit_as(&actor, Some(&commit), Some(key), verb, &note)?;
                        }
                        Err(e) => {
                            failed += 1;
                            tracing::warn!("{verb} {key} failed: {e}");
                            self.store.set_status(
                                key,
                                Phase::Failed,
                                &e.to_string(),
                                Some(&commit),
                                Some(&action.file),
                            )?;
                            self.store.audit_as(
                                &actor,
                                Some(&commit),
                                Some(key),
                                verb,
                                &format!("failed: {e}"),
                            )?;
                        }
                    }
                }
            }
        }
        self.store.mark_synced(&unchanged, &commit)?;
        // New resources whose files have errors are reported, not created.
        for (key, r) in &desired.resources {
            if !view.resources.contains_key(key) {
                self.report_invalid(key, &desired, &r.file, "not created");
            }
        }
        self.runtime.finish_sync(&ctx);

        let summary = plan.summary();
        let errors = desired.report.errors();
        let finished = cairn_store::now();
        self.store.record_sync(&SyncRecord {
            commit: commit.clone(),
            detected_at,
            finished_at: finished,
            duration_ms: started.elapsed().as_millis() as i64,
            summary: serde_json::to_value(summary)?,
            errors: errors as i64,
        })?;
        if failed == 0 {
            self.store.set("last_synced_commit", &commit)?;
        }
        {
            let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
            latest.commit = Some(commit.clone());
            latest.origin = Some(origin);
            latest.report = desired.report.clone();
            latest.resources = desired.resources.len();
        }
        self.synced.send_modify(|n| *n += 1);
        let short = &commit[..commit.len().min(12)];
        if errors > 0 {
            tracing::warn!(
                "synced {short} with {errors} spec error(s) ({summary}); their resources are left as they were"
            );
        } else {
            tracing::info!(
                "synced {short} in {} ms: {summary}",
                started.elapsed().as_millis()
            );
        }
        Ok(SyncOutcome {
            commit,
            summary,
            errors,
            failed,
            changed: true,
        })
    }

    fn report_invalid(&self, key: &ResourceKey, desired: &DesiredState, file: &str, what: &str) {
        let first = desired
            .report
            .diagnostics
            .iter()
            .find(|d| d.file.as_deref() == Some(file) && d.is_error());
        let message = match first {
            Some(d) => {
                let pos = d
                    .span
                    .and_then(|s| desired.report.sources.locate(file, s))
                    .map(|((l, c), _)| format!(":{l}:{c}"))
                    .unwrap_or_default();
                format!("{what}: {file}{pos}: {}", d.message)
            }
            None => format!("{what}: {file} has errors"),
        };
        let _ = self
            .store
            .set_status(key, Phase::Invalid, &message, None, None);
    }
}

/// The desired view to reconcile: resources from files with errors keep
/// their applied version (or are not created), so a broken spec never
/// changes what runs.
fn reconcilable_view(desired: &DesiredState, observed: &StateView) -> StateView {
    let mut view = StateView::of(desired);
    let broken: BTreeSet<&String> = desired.guard.broken_files.iter().collect();
    view.resources
        .retain(|key, r| !broken.contains(&r.file) || observed.resources.contains_key(key));
    for (key, r) in view.resources.iter_mut() {
        if broken.contains(&r.file)
            && let Some(old) = observed.resources.get(key)
        {
            *r = old.clone();
            r.file = desired.resources[key].file.to_string();
        }
    }
    view
}

/// Writes a snapshot to `dir` and marks it complete.
fn write_checkout(snapshot: &Snapshot, dir: &Path) -> std::io::Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    cairn_source::materialize(snapshot, &tmp)?;
    std::fs::write(tmp.join(".cairn-complete"), b"")?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)
}
