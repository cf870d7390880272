//! The identity of a resource.

use crate::{Kind, Name};
use serde::Serialize;
use std::fmt;

/// Identifies a resource: kind, project (none for global kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// The kind.
    pub kind: Kind,
    /// The owning project, for project-scoped kinds.
    pub project: Option<Name>,
    /// The name.
    pub name: Name,
}

impl ResourceKey {
    /// `project/name`, or `name` for global kinds.
    pub fn qualified_name(&self) -> String {
        match &self.project {
            Some(p) => format!("{p}/{}", self.name),
            None => self.name.to_string(),
        }
    }
}

impl ResourceKey {
    /// A stable text form for storage and URLs: `Kind/project/name`
    /// (`Kind//name` for global kinds).
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.project.as_ref().map_or("", Name::as_str),
            self.name
        )
    }

    /// Parses [`ResourceKey::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        let mut parts = id.splitn(3, '/');
        let kind = Kind::parse(parts.next()?)?;
        let project = match parts.next()? {
            "" => None,
            p => Some(p.parse().ok()?),
        };
        let name = parts.next()?.parse().ok()?;
        Some(ResourceKey {
            kind,
            project,
            name,
        })
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.qualified_name())
    }
}

impl Serialize for ResourceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ResourceKey", 3)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("project", &self.project.as_ref().map(Name::as_str))?;
        st.serialize_field("name", self.name.as_str())?;
        st.end()
    }
}

/// A project-scoped resource named by a person or a URL: its name, and its
/// project when given (`PROJECT/NAME` on the command line,
/// `/projects/PROJECT/...` in routes, `PROJECT.NAME` in the Open Inference
/// Protocol's model names).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopedName {
    /// The project, when given.
    pub project: Option<String>,
    /// The name.
    pub name: String,
}

impl ScopedName {
    /// `PROJECT/NAME` or `NAME`.
    pub fn parse(text: &str) -> ScopedName {
        Self::split(text, '/')
    }

    /// `PROJECT.NAME` or `NAME`, as the Open Inference Protocol names models
    /// (names are DNS labels, so the first `.` ends the project).
    pub fn parse_dotted(text: &str) -> ScopedName {
        Self::split(text, '.')
    }

    fn split(text: &str, separator: char) -> ScopedName {
        match text.split_once(separator) {
            Some((project, name)) => ScopedName {
                project: Some(project.to_string()),
                name: name.to_string(),
            },
            None => ScopedName {
                project: None,
                name: text.to_string(),
            },
        }
    }

    /// Whether `key` is this resource: the same name, and the same project
    /// when one is given.
    pub fn matches(&self, key: &ResourceKey) -> bool {
        key.name.as_str() == self.name
            && self
                .project
                .as_deref()
                .is_none_or(|p| key.project.as_ref().map(Name::as_str) == Some(p))
    }
}

impl fmt::Display for ScopedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.project {
            Some(p) => write!(f, "{p}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What a [`ScopedName`] designates: nothing, one resource, or — a bare
/// name that several projects use — the projects to choose from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// No resource of that name (in that project).
    NotFound,
    /// The one resource.
    Found(T),
    /// A bare name that these projects (sorted) use.
    Ambiguous(Vec<String>),
}

impl<T> Lookup<T> {
    /// The outcome of a lookup of `wanted` among `candidates` (keys with
    /// what they lead to): those that [`ScopedName::matches`].
    pub fn among<'a>(
        wanted: &ScopedName,
        candidates: impl IntoIterator<Item = (&'a ResourceKey, T)>,
    ) -> Lookup<T> {
        let mut found: Vec<(&ResourceKey, T)> = candidates
            .into_iter()
            .filter(|(k, _)| wanted.matches(k))
            .collect();
        match found.len() {
            0 => Lookup::NotFound,
            1 => Lookup::Found(found.pop().expect("one").1),
            _ => {
                let mut projects: Vec<String> = found
                    .iter()
                    .map(|(k, _)| k.project.as_ref().map_or("-", Name::as_str).to_string())
                    .collect();
                projects.sort();
                projects.dedup();
                Lookup::Ambiguous(projects)
            }
        }
    }

    /// The resource, if one was found.
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(project: &str, name: &str) -> ResourceKey {
        ResourceKey {
            kind: Kind::Model,
            project: Some(project.parse().unwrap()),
            name: name.parse().unwrap(),
        }
    }

    #[test]
    fn scoped_names_parse_both_forms() {
        let qualified = ScopedName::parse("alpha/clf");
        assert_eq!(qualified.project.as_deref(), Some("alpha"));
        assert_eq!(qualified.name, "clf");
        assert_eq!(qualified.to_string(), "alpha/clf");
        assert_eq!(ScopedName::parse("clf").project, None);
        assert_eq!(
            ScopedName::parse_dotted("beta.clf"),
            ScopedName::parse("beta/clf")
        );
        assert!(qualified.matches(&key("alpha", "clf")));
        assert!(!qualified.matches(&key("beta", "clf")));
        assert!(ScopedName::parse("clf").matches(&key("beta", "clf")));
    }

    #[test]
    fn lookups_name_the_projects_of_an_ambiguous_name() {
        let (a, b, c) = (
            key("alpha", "clf"),
            key("beta", "clf"),
            key("alpha", "solo"),
        );
        let all = || [(&a, 1), (&b, 2), (&c, 3)];
        assert_eq!(
            Lookup::among(&ScopedName::parse("solo"), all()),
            Lookup::Found(3)
        );
        assert_eq!(
            Lookup::among(&ScopedName::parse("beta/clf"), all()),
            Lookup::Found(2)
        );
        assert_eq!(
            Lookup::among(&ScopedName::parse("clf"), all()),
            Lookup::Ambiguous(vec!["alpha".into(), "beta".into()])
        );
        assert_eq!(
            Lookup::among(&ScopedName::parse("gamma/clf"), all()),
            Lookup::NotFound
        );
    }
}
