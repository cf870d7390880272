//! Drift repair: watchers on the objects Cairn applied. When a live object
//! is changed or deleted behind Git's back (`kubectl edit`, `kubectl scale`,
//! `kubectl delete`), the desired object is applied again; an apply that
//! changes the object's `resourceVersion` was a real drift and is logged
//! and audited. Watch errors are retried with exponential backoff.

use crate::apply::Applier;
use crate::objects::{KubeObject, LABEL_MANAGED_BY, ObjectKind};
use cairn_store::Store;
use futures_util::StreamExt;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::sync::Arc;

/// Finds the desired object for a live one: kind, namespace, name.
pub type DesiredLookup =
    Arc<dyn Fn(ObjectKind, Option<&str>, &str) -> Option<KubeObject> + Send + Sync>;

/// The kinds watched for drift (run `Job`s are left to run as they are).
pub const WATCHED: [ObjectKind; 4] = [
    ObjectKind::Deployment,
    ObjectKind::Service,
    ObjectKind::CronJob,
    ObjectKind::ResourceQuota,
];

/// Watches every kind in [`WATCHED`] until the task is dropped: in each
/// namespace the applier lists, or in all at once.
pub async fn revert_drift(applier: Applier, desired: DesiredLookup, store: Arc<Store>) {
    let namespaces: Vec<Option<String>> = match applier.namespaces() {
        [] => vec![None],
        list => list.iter().cloned().map(Some).collect(),
    };
    let mut tasks = Vec::new();
    for kind in WATCHED {
        for namespace in &namespaces {
            tasks.push(tokio::spawn(watch_kind(
                applier.clone(),
                kind,
                namespace.clone(),
                desired.clone(),
                store.clone(),
            )));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn watch_kind(
    applier: Applier,
    kind: ObjectKind,
    namespace: Option<String>,
    desired: DesiredLookup,
    store: Arc<Store>,
) {
    let (client, ar) = (applier.client().clone(), kind.api_resource());
    let api: Api<DynamicObject> = match namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let config = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}=cairn"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    // The generation each object was last checked at: a change of status
    // alone (replicas becoming ready) leaves it as it is and needs no apply.
    let mut checked: HashMap<(Option<String>, String), i64> = HashMap::new();
    while let Some(event) = events.next().await {
        let (object, deleted) = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => (o, false),
            Ok(Event::Delete(o)) => (o, true),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("watching {}s: {e}; retrying", kind.as_str());
                continue;
            }
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        let namespace = object.metadata.namespace.clone();
        let place = (namespace.clone(), name.clone());
        if deleted {
            checked.remove(&place);
        } else if object.metadata.resource_version.is_some()
            && applier.applied_version(&(kind, namespace.clone(), name.clone()))
                == object.metadata.resource_version
        {
            // Cairn's own write.
            if let Some(generation) = object.metadata.generation {
                checked.insert(place, generation);
            }
            continue;
        } else if let Some(generation) = object.metadata.generation {
            if checked.get(&place) == Some(&generation) {
                continue;
            }
            checked.insert(place, generation);
        }
        let Some(want) = desired(kind, namespace.as_deref(), &name) else {
            continue;
        };
        if let Some(message) = repair(&applier, &want, &object, deleted).await {
            tracing::info!("{message}");
            if let Some(owner) = crate::apply::owner_of(&object) {
                let _ = store.audit(None, Some(&owner), "drift", &message);
            }
        }
    }
}

/// Applies the desired object again; says what was reverted, if anything.
pub async fn repair(
    applier: &Applier,
    want: &KubeObject,
    live: &DynamicObject,
    deleted: bool,
) -> Option<String> {
    match applier.apply(want).await {
        Ok(_) if deleted => Some(format!(
            "{} was deleted outside Git; re-created",
            want.describe()
        )),
        Ok(stored) if stored.metadata.resource_version != live.metadata.resource_version => {
            Some(format!("{} drifted from Git; reverted", want.describe()))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("reverting drift of {}: {e}", want.describe());
            None
        }
    }
}
