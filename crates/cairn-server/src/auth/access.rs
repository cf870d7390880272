//! The access rules of every project, from `Project.spec.access` as
//! applied: who holds which role where. Pure: built from the applied specs,
//! asked about a [`Principal`].

use super::{Principal, Role};
use cairn_spec::{AccessGrant, ProjectSpec};
use std::collections::HashMap;

/// Every project's grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    projects: HashMap<String, Vec<AccessGrant>>,
}

impl Access {
    /// The rules of `projects` (name, spec).
    pub fn new<'a>(projects: impl IntoIterator<Item = (&'a str, &'a ProjectSpec)>) -> Access {
        Access {
            projects: projects
                .into_iter()
                .map(|(name, spec)| (name.to_string(), spec.access.clone()))
                .collect(),
        }
    }

    /// The rules of the applied resources `applied` (key, canonical JSON
    /// with `spec`): a project whose stored spec cannot be read grants
    /// nothing.
    pub fn from_applied<'a>(
        applied: impl IntoIterator<Item = (&'a cairn_spec::ResourceKey, &'a serde_json::Value)>,
    ) -> Access {
        let specs: Vec<(String, ProjectSpec)> = applied
            .into_iter()
            .filter(|(k, _)| k.kind == cairn_spec::Kind::Project)
            .filter_map(|(k, v)| {
                let spec = v.get("spec")?;
                match serde_json::from_value::<ProjectSpec>(spec.clone()) {
                    Ok(spec) => Some((k.name.to_string(), spec)),
                    Err(e) => {
                        tracing::warn!("project {}: stored access rules unreadable: {e}", k.name);
                        None
                    }
                }
            })
            .collect();
        Access::new(specs.iter().map(|(n, s)| (n.as_str(), s)))
    }

    /// The projects known.
    pub fn projects(&self) -> impl Iterator<Item = &str> {
        self.projects.keys().map(String::as_str)
    }

    /// `principal`'s role in `project`, if any.
    pub fn role_of(&self, principal: &Principal, project: &str) -> Option<Role> {
        match principal {
            Principal::Anonymous => Some(Role::Admin),
            Principal::Token { role, .. } if *role == Role::Admin => Some(Role::Admin),
            Principal::Token {
                project: Some(p),
                role,
                ..
            } => (p == project).then_some(*role),
            Principal::Token { project: None, .. } => None,
            Principal::User { admin: true, .. } => Some(Role::Admin),
            Principal::User { names, groups, .. } => self
                .projects
                .get(project)?
                .iter()
                .filter(|g| {
                    g.users
                        .iter()
                        .any(|u| names.iter().any(|n| n.eq_ignore_ascii_case(u)))
                        || g.groups.iter().any(|x| groups.contains(x))
                })
                .map(|g| Role::from(g.role))
                .max(),
        }
    }

    /// Every project where `principal` holds a role, with it.
    pub fn roles_of(&self, principal: &Principal) -> Vec<(String, Role)> {
        let mut out: Vec<(String, Role)> = self
            .projects
            .keys()
            .filter_map(|p| Some((p.clone(), self.role_of(principal, p)?)))
            .collect();
        if let Principal::Token {
            project: Some(p),
            role,
            ..
        } = principal
            && !self.projects.contains_key(p)
        {
            out.push((p.clone(), *role));
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_spec::ProjectRole;

    fn grant(role: ProjectRole, users: &[&str], groups: &[&str]) -> AccessGrant {
        AccessGrant {
            role,
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal::User {
            name: name.into(),
            names: vec![name.into(), format!("sub-{name}")],
            groups: groups.iter().map(|s| s.to_string()).collect(),
            admin: false,
        }
    }

    fn access() -> Access {
        let lab = ProjectSpec {
            access: vec![
                grant(ProjectRole::Viewer, &[], &["analysts"]),
                grant(ProjectRole::Editor, &["Alice@example.com"], &["ml"]),
                grant(ProjectRole::Owner, &["sub-bob@example.com"], &[]),
            ],
            ..ProjectSpec::default()
        };
        let other = ProjectSpec::default();
        Access::new([("lab", &lab), ("other", &other)])
    }

    #[test]
    fn users_get_the_strongest_role_granted_to_them_or_their_groups() {
        let a = access();
        assert_eq!(
            a.role_of(&user("alice@example.com", &["analysts"]), "lab"),
            Some(Role::Editor)
        );
        assert_eq!(
            a.role_of(&user("carol@example.com", &["analysts"]), "lab"),
            Some(Role::Viewer)
        );
        assert_eq!(
            a.role_of(&user("bob@example.com", &[]), "lab"),
            Some(Role::Owner)
        );
        assert_eq!(
            a.role_of(&user("alice@example.com", &["ml"]), "other"),
            None
        );
        assert_eq!(a.role_of(&user("dave@example.com", &["ml2"]), "lab"), None);
        assert_eq!(a.role_of(&user("alice@example.com", &[]), "nowhere"), None);
    }

    #[test]
    fn tokens_act_in_their_project_only_and_operators_everywhere() {
        let a = access();
        let token = Principal::Token {
            id: "tok_1".into(),
            name: "ci".into(),
            project: Some("lab".into()),
            role: Role::Editor,
            workload: false,
        };
        assert_eq!(a.role_of(&token, "lab"), Some(Role::Editor));
        assert_eq!(a.role_of(&token, "other"), None);
        let admin = Principal::Token {
            id: "tok_2".into(),
            name: "ops".into(),
            project: None,
            role: Role::Admin,
            workload: false,
        };
        assert_eq!(a.role_of(&admin, "other"), Some(Role::Admin));
        assert_eq!(a.role_of(&Principal::Anonymous, "lab"), Some(Role::Admin));
        let root = Principal::User {
            name: "root".into(),
            names: vec!["root".into()],
            groups: vec![],
            admin: true,
        };
        assert_eq!(a.roles_of(&root).len(), 2);
        assert_eq!(a.roles_of(&token), vec![("lab".to_string(), Role::Editor)]);
    }

    #[test]
    fn an_unreadable_stored_spec_grants_nothing() {
        let key = cairn_spec::ResourceKey::from_id("Project//lab").unwrap();
        let good = serde_json::json!({"spec": {"access": [{"role": "viewer", "groups": ["g"]}]}});
        let bad = serde_json::json!({"spec": {"access": [{"role": "superuser", "groups": ["g"]}]}});
        let viewer = user("x", &["g"]);
        assert_eq!(
            Access::from_applied([(&key, &good)]).role_of(&viewer, "lab"),
            Some(Role::Viewer)
        );
        assert_eq!(
            Access::from_applied([(&key, &bad)]).role_of(&viewer, "lab"),
            None
        );
    }
}
