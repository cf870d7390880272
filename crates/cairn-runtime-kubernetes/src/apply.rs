//! Server-side apply and pruning against the API server.
//!
//! Objects are applied with field manager [`FIELD_MANAGER`]. By default
//! ([`ConflictPolicy::Fail`]) a field another manager (`kubectl edit`, a
//! script, another controller) owns is not taken: the conflict is reported
//! against the resource and nothing is overwritten. With
//! [`ConflictPolicy::Force`] Git wins and Cairn takes the fields over.
//!
//! Pruning deletes only objects that carry Cairn's labels, and only in two
//! cases: the objects of a resource that the planner deletes (it holds back
//! deletions of specs whose files failed to load), and — after a sync of a
//! repository that loaded cleanly — labelled objects whose spec is gone
//! ([`orphans`]). Namespaces are never deleted.

use crate::objects::{
    ANNOTATION_SKIPPED, KubeObject, LABEL_KIND, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PROJECT,
    ObjectKind, kind_from_label, selector_string,
};
use cairn_spec::ResourceKey;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "cairn";

/// What to do when another field manager owns a field Cairn sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Take the fields over: the spec in Git wins.
    Force,
    /// Report the conflict and change nothing (the default).
    #[default]
    Fail,
}

/// An apply, list or delete that the API server refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another field manager owns fields of the object (409).
    #[error(
        "{object}: fields are owned by another manager: {message} (apply with conflicts forced to take them over)"
    )]
    Conflict {
        /// The object.
        object: String,
        /// The API server's message, naming the fields and their manager.
        message: String,
    },
    /// The object is invalid (422).
    #[error("{object} was rejected as invalid: {message}")]
    Invalid {
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },
    /// Any other refusal or a transport failure.
    #[error("{object}: {message}")]
    Api {
        /// The object or collection.
        object: String,
        /// What went wrong.
        message: String,
    },
}

impl ApplyError {
    fn from_kube(object: String, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 409 => ApplyError::Conflict {
                object,
                message: s.message,
            },
            kube::Error::Api(s) if s.code == 422 => ApplyError::Invalid {
                object,
                message: s.message,
            },
            kube::Error::Api(s) => ApplyError::Api {
                object,
                message: format!("{} ({}, {})", s.message, s.code, s.reason),
            },
            other => ApplyError::Api {
                object,
                message: other.to_string(),
            },
        }
    }
}

/// A live object of a managed kind.
#[derive(Clone, Debug)]
pub struct LiveObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// The object.
    pub object: DynamicObject,
}

impl LiveObject {
    /// `Kind namespace/name`.
    pub fn describe(&self) -> String {
        match &self.object.metadata.namespace {
            Some(ns) => format!(
                "{} {ns}/{}",
                self.kind.as_str(),
                self.object.metadata.name.as_deref().unwrap_or_default()
            ),
            None => format!(
                "{} {}",
                self.kind.as_str(),
                self.object.metadata.name.as_deref().unwrap_or_default()
            ),
        }
    }

    /// The resource whose labels it carries, if it carries Cairn's.
    pub fn owner(&self) -> Option<ResourceKey> {
        owner_of(&self.object)
    }
}

/// The resource a labelled object belongs to.
pub fn owner_of(object: &DynamicObject) -> Option<ResourceKey> {
    let labels = object.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some("cairn") {
        return None;
    }
    let kind = kind_from_label(labels.get(LABEL_KIND)?)?;
    let name = labels.get(LABEL_NAME)?.parse().ok()?;
    let project = match labels.get(LABEL_PROJECT) {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some(ResourceKey {
        kind,
        project,
        name,
    })
}

/// The labelled objects whose resource is not desired — none at all unless
/// the repository loaded cleanly (`clean`). Namespaces are never listed.
pub fn orphans<'a>(
    live: &'a [LiveObject],
    desired: &BTreeSet<ResourceKey>,
    clean: bool,
) -> Vec<&'a LiveObject> {
    if !clean {
        return Vec::new();
    }
    live.iter()
        .filter(|o| o.kind != ObjectKind::Namespace)
        .filter(|o| o.owner().is_some_and(|k| !desired.contains(&k)))
        .collect()
}

/// Where an object lives: kind, namespace, name.
pub type Place = (ObjectKind, Option<String>, String);

/// Applies and prunes objects through one API client. Clones share the
/// record of what they applied.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    policy: ConflictPolicy,
    /// The `resourceVersion` each object had after Cairn last applied it.
    applied: Arc<Mutex<HashMap<Place, String>>>,
}

impl Applier {
    /// An applier using `client`.
    pub fn new(client: Client, policy: ConflictPolicy) -> Self {
        Applier {
            client,
            policy,
            applied: Arc::default(),
        }
    }

    /// The `resourceVersion` an object had after Cairn last applied it: an
    /// event carrying it reports Cairn's own write.
    pub fn applied_version(&self, place: &Place) -> Option<String> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(place)
            .cloned()
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api(&self, kind: ObjectKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = kind.api_resource();
        match namespace {
            Some(ns) if kind.namespaced() => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    fn params(&self) -> PatchParams {
        let p = PatchParams::apply(FIELD_MANAGER);
        match self.policy {
            ConflictPolicy::Force => p.force(),
            ConflictPolicy::Fail => p,
        }
    }

    /// Server-side applies one object; returns the object as stored.
    pub async fn apply(&self, object: &KubeObject) -> Result<DynamicObject, ApplyError> {
        let api = self.api(object.kind(), object.namespace());
        api.patch(
            object.name(),
            &self.params(),
            &Patch::Apply(object.to_value()),
        )
        .await
        .map_err(|e| ApplyError::from_kube(object.describe(), e))
    }

    /// Applies objects in order, stopping at the first refusal.
    pub async fn apply_all(
        &self,
        objects: &[KubeObject],
    ) -> Result<Vec<DynamicObject>, ApplyError> {
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            out.push(self.apply(o).await?);
        }
        Ok(out)
    }

    /// Lets a suspended `Job` start: a merge patch of `spec.suspend` alone,
    /// so that the fields the API server filled in (its selector, its
    /// pods' labels) are left as they are.
    pub async fn resume_job(&self, namespace: &str, name: &str) -> Result<(), ApplyError> {
        let api = self.api(ObjectKind::Job, Some(namespace));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        api.patch(
            name,
            &params,
            &Patch::Merge(serde_json::json!({"spec": {"suspend": false}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| ApplyError::from_kube(format!("Job {namespace}/{name}"), e))
    }

    /// Marks a suspended pipeline step that will never run (its upstream
    /// failed) with the annotation [`ANNOTATION_SKIPPED`].
    pub async fn skip_job(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> Result<(), ApplyError> {
        let api = self.api(ObjectKind::Job, Some(namespace));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_SKIPPED: reason}}});
        api.patch(name, &params, &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| ApplyError::from_kube(format!("Job {namespace}/{name}"), e))
    }

    /// Objects of one kind in every namespace matching a label selector.
    pub async fn list(
        &self,
        kind: ObjectKind,
        selector: &str,
    ) -> Result<Vec<LiveObject>, ApplyError> {
        let list = self
            .api(kind, None)
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| ApplyError::from_kube(format!("listing {}s", kind.as_str()), e))?;
        Ok(list
            .items
            .into_iter()
            .map(|object| LiveObject { kind, object })
            .collect())
    }

    /// Every object Cairn labelled, of every managed kind.
    pub async fn list_managed(&self) -> Result<Vec<LiveObject>, ApplyError> {
        let mut all = Vec::new();
        for kind in ObjectKind::ALL {
            all.extend(
                self.list(kind, &format!("{LABEL_MANAGED_BY}=cairn"))
                    .await?,
            );
        }
        Ok(all)
    }

    /// Deletes one live object (in the background for its dependents); an
    /// object already gone is fine.
    pub async fn delete(&self, object: &LiveObject) -> Result<(), ApplyError> {
        let name = object.object.metadata.name.clone().unwrap_or_default();
        let api = self.api(object.kind, object.object.metadata.namespace.as_deref());
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ApplyError::from_kube(object.describe(), e)),
        }
    }

    /// Deletes the objects labelled with `key` that are not in `keep`;
    /// with `runs`, also its `Job`s (runs, kept as history otherwise).
    /// Returns what was deleted.
    pub async fn prune_resource(
        &self,
        key: &ResourceKey,
        keep: &[KubeObject],
        runs: bool,
    ) -> Result<Vec<String>, ApplyError> {
        let selector = selector_string(key);
        let mut deleted = Vec::new();
        for kind in ObjectKind::ALL {
            if kind == ObjectKind::Namespace {
                continue;
            }
            for live in self.list(kind, &selector).await? {
                let wanted = keep.iter().any(|k| {
                    k.kind() == kind
                        && Some(k.name()) == live.object.metadata.name.as_deref()
                        && k.namespace() == live.object.metadata.namespace.as_deref()
                });
                if wanted || (live.kind == ObjectKind::Job && !runs) {
                    continue;
                }
                self.delete(&live).await?;
                deleted.push(live.describe());
            }
        }
        Ok(deleted)
    }

    /// Deletes labelled objects whose spec is gone, if the repository
    /// loaded cleanly. Returns what was deleted.
    pub async fn prune_orphans(
        &self,
        desired: &BTreeSet<ResourceKey>,
        clean: bool,
    ) -> Result<Vec<String>, ApplyError> {
        if !clean {
            return Ok(Vec::new());
        }
        let live = self.list_managed().await?;
        let mut deleted = Vec::new();
        for o in orphans(&live, desired, clean) {
            self.delete(o).await?;
            deleted.push(o.describe());
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(kind: ObjectKind, labels: serde_json::Value) -> LiveObject {
        LiveObject {
            kind,
            object: serde_json::from_value(json!({
                "apiVersion": "v1", "kind": kind.as_str(),
                "metadata": {"name": "x", "namespace": "ns", "labels": labels}
            }))
            .unwrap(),
        }
    }

    fn key(kind: cairn_spec::Kind, project: Option<&str>, name: &str) -> ResourceKey {
        ResourceKey {
            kind,
            project: project.map(|p| p.parse().unwrap()),
            name: name.parse().unwrap(),
        }
    }

    #[test]
    fn only_labelled_objects_of_undesired_resources_are_orphans() {
        use cairn_spec::Kind;
        let cairn = |kind: &str, name: &str| {
            json!({"app.kubernetes.io/managed-by": "cairn", "cairn.dev/project": "p",
                   "cairn.dev/kind": kind, "cairn.dev/name": name})
        };
        let objects = [
            live(ObjectKind::Deployment, cairn("model", "kept")),
            live(ObjectKind::Service, cairn("model", "gone")),
            live(
                ObjectKind::Namespace,
                json!({"app.kubernetes.io/managed-by": "cairn",
                "cairn.dev/kind": "project", "cairn.dev/name": "p"}),
            ),
            live(ObjectKind::Deployment, json!({"app": "postgres"})),
            live(
                ObjectKind::Service,
                json!({"app.kubernetes.io/managed-by": "helm",
                "cairn.dev/kind": "model", "cairn.dev/name": "gone", "cairn.dev/project": "p"}),
            ),
            live(ObjectKind::Service, cairn("no-such-kind", "gone")),
        ];
        let desired = BTreeSet::from([key(Kind::Model, Some("p"), "kept")]);
        let found = orphans(&objects, &desired, true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, ObjectKind::Service);
        assert_eq!(found[0].owner(), Some(key(Kind::Model, Some("p"), "gone")));
        assert!(orphans(&objects, &BTreeSet::new(), false).is_empty());
    }
}
