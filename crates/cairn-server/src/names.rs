//! Resources named in routes. A project-scoped resource is its project and
//! its name: `/projects/PROJECT/KIND/NAME/...` always designates one, and
//! the bare `/KIND/NAME/...` does too while one project uses the name; when
//! several do, the bare form answers 409 naming them. Each kind has one
//! resolver (models in [`crate::gateway`], jobs and applications in
//! [`crate::api`]); they share the answers here.

use axum::http::StatusCode;
use cairn_spec::{Lookup, ScopedName};
use serde::Deserialize;

/// A resource as a route names it: `{name}`, with `{project}` in the
/// `/projects/{project}/...` form.
#[derive(Clone, Debug, Deserialize)]
pub struct NamePath {
    /// The project, when the route names one.
    pub project: Option<String>,
    /// The name.
    pub name: String,
}

impl NamePath {
    /// The name, with its project when given.
    pub fn scoped(&self) -> ScopedName {
        ScopedName {
            project: self.project.clone(),
            name: self.name.clone(),
        }
    }
}

/// What a route names, or the answer when it names nothing or, bare, a
/// name that several projects use. `noun` is the kind in words (`model`),
/// `state` what the resource must be (`served`), and `route` the route of
/// the resource in a project, for the hint of a 409.
pub fn resolved<T>(
    noun: &str,
    state: &str,
    wanted: &ScopedName,
    lookup: Lookup<T>,
    route: impl Fn(&str) -> String,
) -> Result<T, (StatusCode, String)> {
    match lookup {
        Lookup::Found(t) => Ok(t),
        Lookup::NotFound => Err((
            StatusCode::NOT_FOUND,
            match &wanted.project {
                Some(p) => format!("no {noun} `{}` of project `{p}` is {state}", wanted.name),
                None => format!("no {noun} `{}` is {state}", wanted.name),
            },
        )),
        Lookup::Ambiguous(projects) => Err((
            StatusCode::CONFLICT,
            format!(
                "`{}` is a {noun} of several projects ({}): name the project, as in {}",
                wanted.name,
                projects.join(", "),
                route(&projects[0]),
            ),
        )),
    }
}

/// The routes of `{prefix}/{kind}/{name}{rest}` and of the same in a
/// project, `{prefix}/projects/{project}/{kind}/{name}{rest}`.
pub fn scoped_paths(prefix: &str, kind: &str, rest: &str) -> [String; 2] {
    [
        format!("{prefix}/{kind}/{{name}}{rest}"),
        format!("{prefix}/projects/{{project}}/{kind}/{{name}}{rest}"),
    ]
}
