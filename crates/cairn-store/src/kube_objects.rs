//! The Kubernetes objects Cairn applied, by UID (control database, table
//! `kube_objects`). A label is something anyone can set; a UID is given by
//! the API server to one object only. Pruning deletes only recorded
//! objects, with the recorded UID as a precondition, so an object someone
//! else created — even under the same name, with Cairn's labels — is never
//! deleted.

use crate::{Result, Store, now};
use cairn_spec::ResourceKey;
use rusqlite::{OptionalExtension, params};

/// An object Cairn applied, as the API server answered the apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeObjectRecord {
    /// The resource the object belongs to.
    pub resource: ResourceKey,
    /// `apps/v1`, `v1`, ...
    pub api_version: String,
    /// `Deployment`, `Service`, ...
    pub kind: String,
    /// Its namespace (none for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The UID the API server gave it.
    pub uid: String,
}

const COLUMNS: &str = "resource, api_version, kind, namespace, name, uid";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<KubeObjectRecord>> {
    let resource: String = r.get(0)?;
    let namespace: String = r.get(3)?;
    let Some(resource) = ResourceKey::from_id(&resource) else {
        return Ok(None);
    };
    Ok(Some(KubeObjectRecord {
        resource,
        api_version: r.get(1)?,
        kind: r.get(2)?,
        namespace: (!namespace.is_empty()).then_some(namespace),
        name: r.get(4)?,
        uid: r.get(5)?,
    }))
}

impl Store {
    /// Records an applied object; an object at the same place (re-created
    /// by Cairn with a new UID) replaces the earlier record.
    pub fn record_kube_object(&self, o: &KubeObjectRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO kube_objects (resource, api_version, kind, namespace, name, uid, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (api_version, kind, namespace, name) DO UPDATE SET
               resource = excluded.resource, uid = excluded.uid, recorded_at = excluded.recorded_at",
            params![
                o.resource.id(),
                o.api_version,
                o.kind,
                o.namespace.as_deref().unwrap_or_default(),
                o.name,
                o.uid,
                now()
            ],
        )?;
        Ok(())
    }

    /// The recorded objects of one resource, or of every resource.
    pub fn kube_objects(&self, resource: Option<&ResourceKey>) -> Result<Vec<KubeObjectRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM kube_objects WHERE ?1 IS NULL OR resource = ?1
             ORDER BY resource, api_version, kind, namespace, name"
        ))?;
        let rows = stmt.query_map([resource.map(ResourceKey::id)], record)?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(row?);
        }
        Ok(out)
    }

    /// The record of the object with this UID, if Cairn applied it.
    pub fn kube_object_by_uid(&self, uid: &str) -> Result<Option<KubeObjectRecord>> {
        let found = self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM kube_objects WHERE uid = ?1"),
                [uid],
                record,
            )
            .optional()?;
        Ok(found.flatten())
    }

    /// Forgets a deleted object: the record with this UID only, so a newer
    /// object at the same place stays recorded.
    pub fn forget_kube_object(&self, uid: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM kube_objects WHERE uid = ?1", [uid])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ResourceKey {
        ResourceKey::from_id(&format!("Model/shop/{name}")).unwrap()
    }

    fn deployment(resource: &str, name: &str, uid: &str) -> KubeObjectRecord {
        KubeObjectRecord {
            resource: key(resource),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn records_by_resource_and_uid_and_a_new_uid_replaces_the_old() {
        let store = Store::open_in_memory().unwrap();
        let namespace = KubeObjectRecord {
            resource: ResourceKey::from_id("Project//shop").unwrap(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "shop".into(),
            uid: "u-ns".into(),
        };
        store.record_kube_object(&namespace).unwrap();
        store
            .record_kube_object(&deployment("a", "model-a", "u-1"))
            .unwrap();
        store
            .record_kube_object(&deployment("b", "model-b", "u-2"))
            .unwrap();
        assert_eq!(store.kube_objects(None).unwrap().len(), 3);
        assert_eq!(
            store.kube_objects(Some(&key("a"))).unwrap(),
            [deployment("a", "model-a", "u-1")]
        );
        assert_eq!(
            store.kube_object_by_uid("u-ns").unwrap(),
            Some(namespace.clone())
        );

        // Re-created by Cairn: the place keeps one record, with the new UID.
        store
            .record_kube_object(&deployment("a", "model-a", "u-3"))
            .unwrap();
        assert_eq!(
            store.kube_objects(Some(&key("a"))).unwrap(),
            [deployment("a", "model-a", "u-3")]
        );
        assert_eq!(store.kube_object_by_uid("u-1").unwrap(), None);
        // Forgetting the old UID leaves the newer object recorded.
        store.forget_kube_object("u-1").unwrap();
        assert_eq!(store.kube_objects(Some(&key("a"))).unwrap().len(), 1);
        store.forget_kube_object("u-3").unwrap();
        assert!(store.kube_objects(Some(&key("a"))).unwrap().is_empty());
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .record_kube_object(&deployment("a", "model-a", "u-1"))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.kube_objects(None).unwrap(),
            [deployment("a", "model-a", "u-1")]
        );
    }
}
