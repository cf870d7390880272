//! Server-side apply and pruning against the API server.
//!
//! Objects are applied with field manager [`FIELD_MANAGER`]. By default
//! ([`ConflictPolicy::Fail`]) a field another manager (`kubectl edit`, a
//! script, another controller) owns is not taken: the conflict is reported
//! against the resource and nothing is overwritten. With
//! [`ConflictPolicy::Force`] Git wins and Cairn takes the fields over.
//!
//! Every object applied is recorded in the store by its UID
//! ([`cairn_store::kube_objects`]). Pruning deletes only recorded objects,
//! with their UID as a delete precondition, and only in two cases: the
//! objects of a resource that the planner deletes (it holds back deletions
//! of specs whose files failed to load) or no longer needs, and — after a
//! sync of a repository that loaded cleanly — recorded objects whose spec
//! is gone. An object that carries Cairn's labels but that Cairn never
//! applied (its UID is not recorded) is left alone, logged and audited
//! (`prune-skipped`), once per object and process. Namespaces are never
//! deleted.

use crate::objects::{
    ANNOTATION_SKIPPED, KubeObject, LABEL_KIND, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PROJECT,
    ObjectKind, kind_from_label, selector_string,
};
use cairn_spec::ResourceKey;
use cairn_store::Store;
use cairn_store::kube_objects::KubeObjectRecord;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::DynamicObject;
use std::collections::{BTreeSet, HashMap, HashSet};
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
    /// The store could not record (or forget) an object's UID.
    #[error("{object}: recording its UID failed: {message}")]
    Record {
        /// The object.
        object: String,
        /// The store's error.
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
        describe(
            self.kind,
            self.object.metadata.namespace.as_deref(),
            self.object.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The resource whose labels it carries, if it carries Cairn's.
    pub fn owner(&self) -> Option<ResourceKey> {
        owner_of(&self.object)
    }
}

/// The resource a labelled object belongs to.
pub fn owner_of(object: &DynamicObject) -> Option<ResourceKey> {
    owner_in(&object.metadata)
}

/// The resource whose labels an object's metadata carries.
fn owner_in(meta: &ObjectMeta) -> Option<ResourceKey> {
    let labels = meta.labels.as_ref()?;
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

/// What became of a recorded object Cairn set out to delete.
enum Removal {
    /// Deleted now.
    Deleted,
    /// Already gone.
    Gone,
    /// Its name now belongs to another object (the UID precondition
    /// failed): the API server's message.
    Replaced(String),
}

/// Applies and prunes objects through one API client, recording the UID
/// of every object applied in the store. Clones share what they applied.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    policy: ConflictPolicy,
    store: Arc<Store>,
    /// The namespaces listed and watched (the operator's allow-list);
    /// empty: every namespace.
    namespaces: Arc<[String]>,
    /// The `resourceVersion` each object had after Cairn last applied it.
    applied: Arc<Mutex<HashMap<Place, String>>>,
    /// The UIDs of objects already reported as not Cairn's.
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Applier {
    /// An applier using `client`, recording applied objects in `store`.
    pub fn new(client: Client, policy: ConflictPolicy, store: Arc<Store>) -> Self {
        Applier {
            client,
            policy,
            store,
            namespaces: Arc::new([]),
            applied: Arc::default(),
            reported: Arc::default(),
        }
    }

    /// Lists, watches and prunes only in `namespaces` (the operator's
    /// allow-list, so that Roles in those namespaces suffice); empty: in
    /// every namespace.
    #[must_use]
    pub fn within(mut self, namespaces: &[String]) -> Self {
        self.namespaces = namespaces.into();
        self
    }

    /// The namespaces listed and watched; empty: every namespace.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The namespaces to list a kind in: each allowed one, or all at once.
    fn scopes(&self, kind: ObjectKind) -> Vec<Option<&str>> {
        if kind.namespaced() && !self.namespaces.is_empty() {
            self.namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        }
    }

    /// Whether Cairn may delete in a namespace (none: cluster scoped).
    fn may_write(&self, namespace: Option<&str>) -> bool {
        match namespace {
            Some(ns) => self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns),
            None => true,
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

    /// Server-side applies one object and records its UID; returns the
    /// object as stored.
    pub async fn apply(&self, object: &KubeObject) -> Result<DynamicObject, ApplyError> {
        let api = self.api(object.kind(), object.namespace());
        let stored = api
            .patch(
                object.name(),
                &self.params(),
                &Patch::Apply(object.to_value()),
            )
            .await
            .map_err(|e| ApplyError::from_kube(object.describe(), e))?;
        self.record(object, &stored)?;
        Ok(stored)
    }

    /// Records the UID the API server gave an applied object.
    fn record(&self, object: &KubeObject, stored: &DynamicObject) -> Result<(), ApplyError> {
        let (Some(resource), Some(uid)) = (owner_in(object.meta()), stored.metadata.uid.clone())
        else {
            return Ok(());
        };
        let ar = object.kind().api_resource();
        self.store
            .record_kube_object(&KubeObjectRecord {
                resource,
                api_version: ar.api_version,
                kind: ar.kind,
                namespace: object.namespace().map(str::to_string),
                name: object.name().to_string(),
                uid,
            })
            .map_err(|e| ApplyError::Record {
                object: object.describe(),
                message: e.to_string(),
            })
    }

    /// Whether Cairn applied this live object (its UID is recorded).
    fn recorded(&self, object: &LiveObject) -> Result<bool, ApplyError> {
        let Some(uid) = object.object.metadata.uid.as_deref() else {
            return Ok(false);
        };
        self.store
            .kube_object_by_uid(uid)
            .map(|r| r.is_some())
            .map_err(|e| ApplyError::Record {
                object: object.describe(),
                message: e.to_string(),
            })
    }

    /// The objects Cairn recorded for one resource, or for every resource.
    fn records(&self, resource: Option<&ResourceKey>) -> Result<Vec<KubeObjectRecord>, ApplyError> {
        self.store
            .kube_objects(resource)
            .map_err(|e| ApplyError::Record {
                object: resource.map_or("every resource".into(), ToString::to_string),
                message: e.to_string(),
            })
    }

    /// Applies again those of `key`'s objects whose UIDs are not recorded
    /// (objects applied before UIDs were recorded, or by a controller that
    /// lost its store), so that they can be pruned later: an unchanged
    /// object is a no-op for the API server, which answers its UID.
    /// Returns what was adopted.
    pub async fn adopt(
        &self,
        key: &ResourceKey,
        objects: &[KubeObject],
    ) -> Result<Vec<String>, ApplyError> {
        let records = self.records(Some(key))?;
        let mut adopted = Vec::new();
        for o in objects {
            let ar = o.kind().api_resource();
            let known = records.iter().any(|r| {
                r.api_version == ar.api_version
                    && r.kind == ar.kind
                    && r.namespace.as_deref() == o.namespace()
                    && r.name == o.name()
            });
            if !known {
                self.apply(o).await?;
                adopted.push(o.describe());
            }
        }
        Ok(adopted)
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

    /// Objects of one kind matching a label selector, in every namespace
    /// listed (see [`Applier::within`]).
    pub async fn list(
        &self,
        kind: ObjectKind,
        selector: &str,
    ) -> Result<Vec<LiveObject>, ApplyError> {
        let mut out = Vec::new();
        for namespace in self.scopes(kind) {
            let list = self
                .api(kind, namespace)
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| ApplyError::from_kube(format!("listing {}s", kind.as_str()), e))?;
            out.extend(
                list.items
                    .into_iter()
                    .map(|object| LiveObject { kind, object }),
            );
        }
        Ok(out)
    }

    /// Every object Cairn labelled, of every kind it prunes (namespaces,
    /// never pruned, are not listed).
    pub async fn list_managed(&self) -> Result<Vec<LiveObject>, ApplyError> {
        let mut all = Vec::new();
        for kind in ObjectKind::ALL.into_iter().filter(|k| k.namespaced()) {
            all.extend(
                self.list(kind, &format!("{LABEL_MANAGED_BY}=cairn"))
                    .await?,
            );
        }
        Ok(all)
    }

    /// Deletes a recorded object (in the background for its dependents)
    /// if it is still the object Cairn applied: the recorded UID is a
    /// precondition of the delete. The record is forgotten in every case
    /// but an error.
    async fn delete_recorded(
        &self,
        kind: ObjectKind,
        record: &KubeObjectRecord,
    ) -> Result<Removal, ApplyError> {
        let what = describe(kind, record.namespace.as_deref(), &record.name);
        let api = self.api(kind, record.namespace.as_deref());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(record.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let removal = match api.delete(&record.name, &params).await {
            Ok(_) => Removal::Deleted,
            Err(kube::Error::Api(s)) if s.code == 404 => Removal::Gone,
            Err(kube::Error::Api(s)) if s.code == 409 => Removal::Replaced(s.message),
            Err(e) => return Err(ApplyError::from_kube(what, e)),
        };
        self.store
            .forget_kube_object(&record.uid)
            .map_err(|e| ApplyError::Record {
                object: what,
                message: e.to_string(),
            })?;
        Ok(removal)
    }

    /// Deletes the recorded objects that `pick` selects — never a
    /// namespace, never outside the allowed namespaces; returns what was
    /// deleted and the UIDs of the records handled.
    async fn prune_records(
        &self,
        records: Vec<KubeObjectRecord>,
        pick: impl Fn(ObjectKind, &KubeObjectRecord) -> bool,
    ) -> Result<(Vec<String>, HashSet<String>), ApplyError> {
        let mut deleted = Vec::new();
        let mut handled = HashSet::new();
        for record in records {
            let Some(kind) = ObjectKind::from_kind(&record.api_version, &record.kind) else {
                continue;
            };
            if kind == ObjectKind::Namespace
                || !self.may_write(record.namespace.as_deref())
                || !pick(kind, &record)
            {
                continue;
            }
            let what = describe(kind, record.namespace.as_deref(), &record.name);
            match self.delete_recorded(kind, &record).await? {
                Removal::Deleted => deleted.push(what),
                Removal::Gone => {}
                // The object found under that name is judged by its own
                // UID with the other live objects.
                Removal::Replaced(message) => {
                    tracing::info!("{what} is no longer the object Cairn applied: {message}");
                }
            }
            handled.insert(record.uid);
        }
        Ok((deleted, handled))
    }

    /// Reports an object that carries Cairn's labels but that Cairn did not
    /// apply, once per object: a warning and an audit entry.
    fn leave_alone(&self, owner: Option<&ResourceKey>, uid: &str, what: &str) {
        if !self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string())
        {
            return;
        }
        let detail = format!(
            "{what} not pruned: it carries Cairn's labels but Cairn did not create it (UID {uid} not recorded); left alone"
        );
        tracing::warn!("{detail}");
        if let Err(e) = self.store.audit(None, owner, "prune-skipped", &detail) {
            tracing::warn!("could not audit {what}: {e}");
        }
    }

    /// Reports the labelled live objects Cairn never applied, except those
    /// just handled.
    fn report_unrecorded<'a>(
        &self,
        live: impl IntoIterator<Item = &'a LiveObject>,
        handled: &HashSet<String>,
    ) -> Result<(), ApplyError> {
        for o in live {
            let uid = o.object.metadata.uid.as_deref().unwrap_or_default();
            if handled.contains(uid) || self.recorded(o)? {
                continue;
            }
            self.leave_alone(o.owner().as_ref(), uid, &o.describe());
        }
        Ok(())
    }

    /// Deletes the recorded objects of `key` that are not in `keep`; with
    /// `runs`, also its `Job`s (runs, kept as history otherwise). Objects
    /// labelled as `key`'s that Cairn never applied are reported and left
    /// alone. Returns what was deleted.
    pub async fn prune_resource(
        &self,
        key: &ResourceKey,
        keep: &[KubeObject],
        runs: bool,
    ) -> Result<Vec<String>, ApplyError> {
        let kept = |kind: ObjectKind, namespace: Option<&str>, name: Option<&str>| {
            keep.iter()
                .any(|k| k.kind() == kind && Some(k.name()) == name && k.namespace() == namespace)
        };
        let (deleted, handled) = self
            .prune_records(self.records(Some(key))?, |kind, r| {
                (runs || kind != ObjectKind::Job)
                    && !kept(kind, r.namespace.as_deref(), Some(&r.name))
            })
            .await?;
        let selector = selector_string(key);
        let mut live = Vec::new();
        for kind in ObjectKind::ALL {
            if kind == ObjectKind::Namespace || (kind == ObjectKind::Job && !runs) {
                continue;
            }
            live.extend(self.list(kind, &selector).await?.into_iter().filter(|o| {
                !kept(
                    kind,
                    o.object.metadata.namespace.as_deref(),
                    o.object.metadata.name.as_deref(),
                )
            }));
        }
        self.report_unrecorded(&live, &handled)?;
        Ok(deleted)
    }

    /// Deletes the recorded objects whose spec is gone, if the repository
    /// loaded cleanly; labelled objects of removed specs that Cairn never
    /// applied are reported and left alone. Returns what was deleted.
    pub async fn prune_orphans(
        &self,
        desired: &BTreeSet<ResourceKey>,
        clean: bool,
    ) -> Result<Vec<String>, ApplyError> {
        if !clean {
            return Ok(Vec::new());
        }
        let (deleted, handled) = self
            .prune_records(self.records(None)?, |_, r| !desired.contains(&r.resource))
            .await?;
        let live = self.list_managed().await?;
        self.report_unrecorded(orphans(&live, desired, clean), &handled)?;
        Ok(deleted)
    }
}

/// `Kind namespace/name`, or `Kind name` when cluster scoped.
fn describe(kind: ObjectKind, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{} {ns}/{name}", kind.as_str()),
        None => format!("{} {name}", kind.as_str()),
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
