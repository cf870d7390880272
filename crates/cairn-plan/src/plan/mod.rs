//! The planner: a pure function from a desired state and an observed state
//! to the ordered actions that turn one into the other.
//!
//! Both states are [`StateView`]s — each resource as canonical JSON — so the
//! same planner serves `cairn plan` (two commits) and the controller (a
//! commit against what is running). Deletions are held back, with a reason,
//! for resources whose files failed to load ([`DeletionGuard`]).

mod render;

pub use render::{render_markdown, render_text, to_json};

use crate::loader::{DeletionGuard, DesiredState, ResourceKey};
use cairn_spec::{Kind, Spec};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One resource as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceView {
    /// `metadata` and `spec` as canonical JSON.
    pub value: Value,
    /// The file it came from.
    pub file: String,
    /// Jobs it depends on (for ordering pipelines).
    pub depends_on: Vec<String>,
}

/// A state as canonical JSON per resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateView {
    /// Resources by key.
    pub resources: BTreeMap<ResourceKey, ResourceView>,
}

impl StateView {
    /// The view of a loaded desired state, including the digests of the
    /// files each resource runs (see [`crate::loader::Resource::sources`]).
    pub fn of(state: &DesiredState) -> Self {
        Self::with_sources(state, true)
    }

    /// The view of a loaded desired state; `sources` includes file digests
    /// (leave them out when comparing with a state that has none, such as the
    /// work tree).
    pub fn with_sources(state: &DesiredState, sources: bool) -> Self {
        let resources = state
            .resources
            .iter()
            .map(|(key, r)| {
                let mut metadata = serde_json::to_value(&r.metadata).expect("metadata serializes");
                if let Value::Object(m) = &mut metadata {
                    m.remove("name");
                    m.remove("project");
                }
                let spec = serde_json::to_value(&r.spec).expect("spec serializes");
                let depends_on = match &r.spec {
                    Spec::Job(j) => j.depends_on.iter().map(ToString::to_string).collect(),
                    _ => Vec::new(),
                };
                let mut value = serde_json::Map::new();
                if metadata.as_object().is_some_and(|m| !m.is_empty()) {
                    value.insert("metadata".into(), metadata);
                }
                value.insert("spec".into(), spec);
                if sources && !r.sources.is_empty() {
                    value.insert(
                        "sources".into(),
                        serde_json::to_value(&r.sources).expect("digests serialize"),
                    );
                }
                (
                    key.clone(),
                    ResourceView {
                        value: Value::Object(value),
                        file: r.file.to_string(),
                        depends_on,
                    },
                )
            })
            .collect();
        StateView { resources }
    }
}

/// One changed field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Dotted path, e.g. `spec.resources.cpu` or `spec.dependsOn[1]`.
    pub path: String,
    /// The value before (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// What happens to one resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// It is new.
    Create,
    /// These fields change.
    Update {
        /// The changed fields.
        fields: Vec<FieldChange>,
    },
    /// It was removed from a repository that loaded cleanly where it was.
    Delete,
    /// It was removed, but its file failed to load: it is kept.
    Hold {
        /// Why it is kept.
        reason: String,
    },
    /// Nothing changes.
    Unchanged,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Action {
    /// The resource.
    #[serde(flatten)]
    pub key: ResourceKey,
    /// What happens to it.
    #[serde(flatten)]
    pub change: Change,
    /// The file that declares (or declared) it.
    pub file: String,
}

/// The ordered actions between two states.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Creates and updates in dependency order, then deletions in reverse order.
    pub actions: Vec<Action>,
}

/// Counts of a plan's actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update.
    pub update: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Deletions held back.
    pub hold: usize,
    /// Resources left as they are.
    pub unchanged: usize,
}

impl Plan {
    /// Counts actions by type.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in &self.actions {
            match a.change {
                Change::Create => s.create += 1,
                Change::Update { .. } => s.update += 1,
                Change::Delete => s.delete += 1,
                Change::Hold { .. } => s.hold += 1,
                Change::Unchanged => s.unchanged += 1,
            }
        }
        s
    }

    /// Whether anything would change.
    pub fn has_changes(&self) -> bool {
        let s = self.summary();
        s.create + s.update + s.delete > 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to delete",
            self.create, self.update, self.delete
        )?;
        if self.hold > 0 {
            write!(
                f,
                ", {} deletion{} held",
                self.hold,
                if self.hold == 1 { "" } else { "s" }
            )?;
        }
        write!(f, " ({} unchanged)", self.unchanged)
    }
}

/// Computes the actions that take `observed` to `desired`.
pub fn plan(desired: &StateView, guard: &DeletionGuard, observed: &StateView) -> Plan {
    let depth = pipeline_depths(desired);
    let mut forward = Vec::new();
    for (key, want) in &desired.resources {
        let change = match observed.resources.get(key) {
            None => Change::Create,
            Some(have) => {
                let mut fields = Vec::new();
                diff(
                    &mut String::new(),
                    Some(&have.value),
                    Some(&want.value),
                    &mut fields,
                );
                if fields.is_empty() {
                    Change::Unchanged
                } else {
                    Change::Update { fields }
                }
            }
        };
        forward.push(Action {
            key: key.clone(),
            change,
            file: want.file.clone(),
        });
    }
    forward.sort_by(|a, b| order(&a.key, &depth).cmp(&order(&b.key, &depth)));

    let mut backward: Vec<Action> = observed
        .resources
        .iter()
        .filter(|(key, _)| !desired.resources.contains_key(*key))
        .map(|(key, have)| Action {
            key: key.clone(),
            change: match guard.hold_reason(key, &have.file) {
                Some(reason) => Change::Hold { reason },
                None => Change::Delete,
            },
            file: have.file.clone(),
        })
        .collect();
    let old_depth = pipeline_depths(observed);
    backward.sort_by(|a, b| order(&b.key, &old_depth).cmp(&order(&a.key, &old_depth)));

    forward.extend(backward);
    Plan { actions: forward }
}

fn order<'a>(
    key: &'a ResourceKey,
    depth: &HashMap<&ResourceKey, usize>,
) -> (Kind, usize, &'a ResourceKey) {
    (key.kind, depth.get(key).copied().unwrap_or(0), key)
}

/// For jobs: the length of the longest `dependsOn` chain below each, so that
/// upstream jobs come first.
fn pipeline_depths(state: &StateView) -> HashMap<&ResourceKey, usize> {
    let by_name: HashMap<(&Option<cairn_spec::Name>, &str), &ResourceKey> = state
        .resources
        .keys()
        .filter(|k| k.kind == Kind::Job)
        .map(|k| ((&k.project, k.name.as_str()), k))
        .collect();
    let mut depth: HashMap<&ResourceKey, usize> = HashMap::new();
    fn visit<'a>(
        key: &'a ResourceKey,
        state: &'a StateView,
        by_name: &HashMap<(&Option<cairn_spec::Name>, &str), &'a ResourceKey>,
        depth: &mut HashMap<&'a ResourceKey, usize>,
        guard: usize,
    ) -> usize {
        if let Some(d) = depth.get(key) {
            return *d;
        }
        if guard > by_name.len() {
            return 0; // a cycle: validation reports it
        }
        let deps = &state.resources[key].depends_on;
        let d = deps
            .iter()
            .filter_map(|n| by_name.get(&(&key.project, n.as_str())))
            .map(|k| visit(k, state, by_name, depth, guard + 1) + 1)
            .max()
            .unwrap_or(0);
        depth.insert(key, d);
        d
    }
    for key in by_name.values() {
        visit(key, state, &by_name, &mut depth, 0);
    }
    depth
}

/// Field-level difference between two JSON values.
fn diff(path: &mut String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a
                .keys()
                .chain(b.keys().filter(|k| !a.contains_key(*k)))
                .collect();
            keys.sort();
            for k in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                diff(path, a.get(k), b.get(k), out);
                path.truncate(len);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff(path, Some(x), Some(y), out);
                path.truncate(len);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path: path.clone(),
            old: a.cloned(),
            new: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: Kind, name: &str) -> ResourceKey {
        ResourceKey {
            kind,
            project: if kind.is_global() {
                None
            } else {
                Some("p".parse().unwrap())
            },
            name: name.parse().unwrap(),
        }
    }

    fn view(items: &[(Kind, &str, Value, &[&str])]) -> StateView {
        StateView {
            resources: items
                .iter()
                .map(|(k, n, v, deps)| {
                    (
                        key(*k, n),
                        ResourceView {
                            value: v.clone(),
                            file: format!("{n}.yaml"),
                            depends_on: deps.iter().map(|s| s.to_string()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn orders_creates_by_kind_and_pipeline() {
        let desired = view(&[
            (Kind::Model, "m", json!({}), &[]),
            (Kind::Job, "train", json!({}), &["prep"]),
            (Kind::Job, "prep", json!({}), &[]),
            (Kind::Job, "a-report", json!({}), &["train"]),
            (Kind::Project, "p", json!({}), &[]),
        ]);
        let p = plan(&desired, &DeletionGuard::default(), &StateView::default());
        let names: Vec<_> = p.actions.iter().map(|a| a.key.name.to_string()).collect();
        assert_eq!(names, ["p", "prep", "train", "a-report", "m"]);
        assert_eq!(p.summary().create, 5);
    }

    #[test]
    fn diffs_fields() {
        let old = view(&[(
            Kind::Job,
            "j",
            json!({"spec": {"retries": 1, "env": {"A": "1"}, "dependsOn": ["x", "y"]}}),
            &[],
        )]);
        let new = view(&[(
            Kind::Job,
            "j",
            json!({"spec": {"retries": 2, "env": {"B": "2"}, "dependsOn": ["x", "z"]}}),
            &[],
        )]);
        let p = plan(&new, &DeletionGuard::default(), &old);
        let Change::Update { fields } = &p.actions[0].change else {
            panic!("{p:?}")
        };
        let paths: Vec<_> = fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.dependsOn[1]",
                "spec.env.A",
                "spec.env.B",
                "spec.retries"
            ]
        );
        assert_eq!(fields[1].new, None);
        assert_eq!(fields[2].old, None);
    }

    #[test]
    fn deletes_in_reverse_and_holds_broken() {
        let old = view(&[
            (Kind::Project, "p", json!({}), &[]),
            (Kind::Job, "j", json!({}), &[]),
            (Kind::Model, "m", json!({}), &[]),
        ]);
        let new = view(&[]);
        let p = plan(&new, &DeletionGuard::default(), &old);
        let names: Vec<_> = p.actions.iter().map(|a| a.key.name.to_string()).collect();
        assert_eq!(names, ["m", "j", "p"]);
        assert!(p.actions.iter().all(|a| a.change == Change::Delete));

        let mut guard = DeletionGuard::default();
        guard.broken_files.insert("m.yaml".into());
        let p = plan(&new, &guard, &old);
        assert!(matches!(p.actions[0].change, Change::Hold { .. }));
        assert_eq!(p.summary().delete, 2);
        assert_eq!(p.summary().hold, 1);
    }

    #[test]
    fn unchanged_is_unchanged() {
        let s = view(&[(Kind::Job, "j", json!({"spec": {"command": ["x"]}}), &[])]);
        let p = plan(&s, &DeletionGuard::default(), &s);
        assert_eq!(p.actions[0].change, Change::Unchanged);
        assert!(!p.has_changes());
    }
}
