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
