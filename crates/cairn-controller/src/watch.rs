//! Change detection: file-system events on a local repository's `.git`
//! (or its work tree in development mode), polling of remote repositories,
//! and a periodic resync; each sends a [`Trigger`] to the reconcile loop,
//! which coalesces bursts.

use super::Controller;
use cairn_runtime::Runtime;
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a reconciliation was asked for.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// Something changed (a ref moved, a fetch, a webhook, a file).
    Changed {
        /// When the change was noticed.
        detected_at: String,
    },
    /// Re-apply even if the commit is unchanged (periodic resync).
    Resync,
}

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The repository is remote: poll it at this interval.
    pub poll: Option<Duration>,
    /// Watch the work tree instead of commits.
    pub worktree: bool,
    /// Re-apply periodically (retries failed actions).
    pub resync: Duration,
}

/// Keeps the watchers alive; dropping it stops file-system watching.
pub struct Watchers {
    _fs: Option<notify::RecommendedWatcher>,
    /// Send triggers here (webhooks do).
    pub trigger: mpsc::Sender<Trigger>,
}

/// Starts the reconcile loop and the watchers.
pub fn spawn_watchers<R: Runtime>(
    controller: Arc<Controller<R>>,
    options: WatchOptions,
) -> notify::Result<Watchers> {
    let (tx, rx) = mpsc::channel::<Trigger>(64);
    tokio::spawn(reconcile_loop(controller.clone(), rx));

    // File-system events.
    let fs = if options.poll.is_none() {
        let (dir, worktree) = {
            let source = controller
                .source()
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if options.worktree {
                (source.workdir().map(|w| w.join(source.prefix())), true)
            } else {
                (Some(source.git_dir().to_path_buf()), false)
            }
        };
        match dir {
            Some(dir) => Some(fs_watcher(
                dir,
                worktree,
                controller.settings().data_dir.clone(),
                tx.clone(),
            )?),
            None => None,
        }
    } else {
        None
    };

    // Polling of remote repositories.
    if let Some(interval) = options.poll {
        let controller = controller.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let before = controller.head();
                match controller.fetch().await {
                    Ok(()) => {
                        if controller.head() != before {
                            let _ = tx
                                .send(Trigger::Changed {
                                    detected_at: cairn_store::now(),
                                })
                                .await;
                        }
                    }
                    Err(e) => tracing::warn!("fetch failed: {e}"),
                }
            }
        });
    }

    // Periodic resync.
    {
        let tx = tx.clone();
        let every = options.resync;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if tx.send(Trigger::Resync).await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(Watchers {
        _fs: fs,
        trigger: tx,
    })
}

fn fs_watcher(
    dir: PathBuf,
    worktree: bool,
    data_dir: PathBuf,
    tx: mpsc::Sender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            if worktree {
                !p.starts_with(&data_dir) && !p.components().any(|c| c.as_os_str() == ".git")
            } else {
                let s = p.to_string_lossy();
                s.contains("/refs/") || s.ends_with("HEAD") || s.ends_with("packed-refs")
            }
        });
        if relevant {
            let _ = tx.try_send(Trigger::Changed {
                detected_at: cairn_store::now(),
            });
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Reconciles on each trigger, coalescing bursts.
async fn reconcile_loop<R: Runtime>(
    controller: Arc<Controller<R>>,
    mut rx: mpsc::Receiver<Trigger>,
) {
    while let Some(first) = rx.recv().await {
        let mut detected_at = None;
        let mut force = false;
        let mut note = |t: Trigger| match t {
            Trigger::Changed { detected_at: at } => {
                detected_at.get_or_insert(at);
            }
            Trigger::Resync => force = true,
        };
        note(first);
        // Git writes a ref in several steps: let them settle.
        tokio::time::sleep(Duration::from_millis(15)).await;
        while let Ok(t) = rx.try_recv() {
            note(t);
        }
        let changed = detected_at.is_some();
        let at = detected_at.unwrap_or_else(cairn_store::now);
        match controller.reconcile(at, force && !changed).await {
            Ok(_) => {}
            Err(e) => tracing::warn!("reconcile failed: {e:#}"),
        }
    }
}
