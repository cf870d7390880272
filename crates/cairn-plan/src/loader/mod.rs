//! The spec loader: a repository [`Snapshot`] in, a [`DesiredState`] out.
//!
//! It finds the spec files (everything `.yaml`/`.yml` under the spec root
//! that `cairn.yaml` does not ignore), parses them in parallel into typed
//! resources, reports every problem it finds (not just the first) with file,
//! line and column, and then runs the semantic checks of [`crate::validate`].
//!
//! It also records which resources it could *not* read, so that the planner
//! never deletes something only because its file is broken.

mod config;
mod document;

pub use config::{CONFIG_FILE, RepoConfig};

use crate::snapshot::{ReadError, Resolved, Snapshot};
pub use cairn_spec::ResourceKey;
use cairn_spec::diagnostics::{Diagnostic, Report};
use cairn_spec::yaml::{Node, Span};
use cairn_spec::{Kind, Metadata, Name, Spec};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One loaded, typed resource.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Kind, project and name.
    pub key: ResourceKey,
    /// `metadata`, with the project filled in.
    pub metadata: Metadata,
    /// The typed `spec`.
    pub spec: Spec,
    /// The file that holds it, relative to the repository root.
    pub file: Arc<str>,
    /// The document, for pointing diagnostics at its fields.
    pub node: Arc<Node>,
    /// Digests of the repository files the resource runs (`workdir`,
    /// `path`, `artifact`, requirements), by field: a change of code is a
    /// change of the resource.
    pub sources: BTreeMap<String, String>,
}

impl Resource {
    /// The span of the field at `path` (e.g. `["spec", "pool"]`).
    pub fn span_of(&self, path: &[&str]) -> Span {
        self.node.lookup(path).span
    }
}

/// Why deletions are held back in a state that did not load cleanly.
#[derive(Clone, Debug, Default)]
pub struct DeletionGuard {
    /// Hold every deletion, with the reason (a file could not be attributed).
    pub all: Option<String>,
    /// Files with errors: what they held must not be deleted.
    pub broken_files: BTreeSet<String>,
    /// Resources identified in documents that failed to load (kind and name).
    pub broken_resources: BTreeSet<(Kind, String)>,
}

impl DeletionGuard {
    /// Why a resource removed from this state must be kept, if it must.
    pub fn hold_reason(&self, key: &ResourceKey, old_file: &str) -> Option<String> {
        if let Some(reason) = &self.all {
            return Some(reason.clone());
        }
        if self.broken_files.contains(old_file) {
            return Some(format!(
                "{old_file} has errors; fix it before this can be deleted"
            ));
        }
        if self
            .broken_resources
            .contains(&(key.kind, key.name.to_string()))
        {
            return Some("its spec failed to load; fix it before this can be deleted".into());
        }
        None
    }
}

/// Everything read from one snapshot of a repository.
#[derive(Debug)]
pub struct DesiredState {
    /// The repository configuration (`cairn.yaml`).
    pub config: RepoConfig,
    /// Resources that loaded, by key.
    pub resources: BTreeMap<ResourceKey, Resource>,
    /// Problems found, with the texts they point into.
    pub report: Report,
    /// What must not be deleted because it could not be read.
    pub guard: DeletionGuard,
    /// Spec files read.
    pub files: Vec<String>,
}

impl DesiredState {
    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.report.errors() > 0
    }

    /// Resources of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources.values().filter(move |r| r.key.kind == kind)
    }

    /// The resource with this kind, project and name.
    pub fn get(&self, kind: Kind, project: Option<&Name>, name: &str) -> Option<&Resource> {
        let key = ResourceKey {
            kind,
            project: if kind.is_global() {
                None
            } else {
                project.cloned()
            },
            name: name.parse().ok()?,
        };
        self.resources.get(&key)
    }
}

/// Default limit on the size of one spec file.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 << 20;

/// Loads and validates every spec in `snapshot`.
pub fn load(snapshot: &Snapshot) -> DesiredState {
    let mut report = Report::default();
    let mut guard = DeletionGuard::default();

    let config = config::read(snapshot, &mut report);
    if report.errors() > 0 {
        guard.all = Some(format!(
            "{CONFIG_FILE} has errors; deletions are held until it is fixed"
        ));
    }
    let files = config.spec_files(snapshot);

    // Read sequentially (the object database is not shared between
    // threads), then parse in parallel.
    let limit = config.max_file_size();
    let mut texts = Vec::with_capacity(files.len());
    let mut all_texts: BTreeMap<String, Arc<str>> = BTreeMap::new();
    for path in &files {
        match read_text(snapshot, path, limit) {
            Ok(text) => texts.push((path.clone(), text)),
            Err((diagnostic, lossy)) => {
                guard.all = Some(format!(
                    "{path} could not be read; deletions are held until it is fixed"
                ));
                if let Some(text) = lossy {
                    all_texts.insert(path.clone(), text);
                }
                report.diagnostics.push(*diagnostic);
            }
        }
    }

    let parsed: Vec<document::FileResult> = texts
        .par_iter()
        .map(|(path, text)| document::parse_file(path, text))
        .collect();

    let mut loaded = Vec::new();
    for (result, (path, text)) in parsed.into_iter().zip(texts) {
        all_texts.insert(path.clone(), text.clone());
        if !result.diagnostics.is_empty() {
            guard.broken_files.insert(path.clone());
        }
        if result.unattributable {
            guard.all = Some(format!(
                "{path} has a document that could not be identified; deletions are held until it is fixed"
            ));
        }
        guard.broken_resources.extend(result.broken);
        report.diagnostics.extend(result.diagnostics);
        loaded.extend(result.resources);
    }

    let resources = assign_projects(&config, loaded, &mut report, &mut guard);
    let mut state = DesiredState {
        config,
        resources,
        report,
        guard,
        files,
    };
    for r in state.resources.values_mut() {
        r.sources = sources(&r.spec, snapshot);
    }
    let semantic = crate::validate::check(&state, snapshot);
    for d in semantic {
        if let Some(file) = &d.file {
            state.guard.broken_files.insert(file.clone());
        }
        state.report.diagnostics.push(d);
    }
    // Diagnostics need the text of every file they point into.
    let needed: BTreeSet<String> = state
        .report
        .diagnostics
        .iter()
        .flat_map(|d| d.file.iter().chain(d.related.iter().map(|r| &r.file)))
        .cloned()
        .collect();
    for file in needed {
        if let Some(text) = all_texts.get(&file) {
            state.report.sources.insert(file, text.clone());
        }
    }
    state.report.sort();
    state
}

/// Reads a spec file as UTF-8, following symlinks inside the snapshot.
type ReadFailure = (Box<Diagnostic>, Option<Arc<str>>);

fn read_text(snapshot: &Snapshot, path: &str, limit: u64) -> Result<Arc<str>, ReadFailure> {
    let target = match snapshot.resolve(path) {
        Resolved::File(t) => t,
        Resolved::Loop(link) => {
            return Err((Box::new(
                Diagnostic::error_in("symlink-loop", Some(path.into()), format!("symlink loop at `{link}`"))
                    .with_hint("make the symlink point at a real file, or add the path to `ignore` in cairn.yaml"),
            ), None));
        }
        Resolved::Escapes { link, target } => {
            return Err((
                Box::new(
                    Diagnostic::error_in(
                        "path-escapes",
                        Some(path.into()),
                        format!("symlink `{link}` points outside the repository (to `{target}`)"),
                    )
                    .with_hint("specs are read from the repository only; copy the file in instead"),
                ),
                None,
            ));
        }
        Resolved::Dir(_) | Resolved::Missing => {
            return Err((
                Box::new(Diagnostic::error_in(
                    "unreadable-file",
                    Some(path.into()),
                    "symlink does not lead to a file",
                )),
                None,
            ));
        }
    };
    let bytes = snapshot.read(&target, limit).map_err(|e| {
        (Box::new(match e {
            ReadError::TooLarge { size, limit } => Diagnostic::error_in(
                "file-too-large",
                Some(path.into()),
                format!("file is {} MiB, over the {} MiB limit for spec files", size >> 20, limit >> 20),
            )
            .with_hint("large data does not belong in specs; move it out of the spec root or add it to `ignore` in cairn.yaml (`maxFileSize` raises the limit)"),
            other => Diagnostic::error_in("unreadable-file", Some(path.into()), format!("cannot read file: {other}")),
        }), None)
    })?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Arc::from(s)),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let d = Diagnostic::error(
                "not-utf8",
                path,
                Span::new(offset, offset + 1),
                format!(
                    "file is not valid UTF-8 (invalid byte 0x{:02x})",
                    e.as_bytes()[offset]
                ),
            )
            .with_hint("save the file as UTF-8");
            let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(e.as_bytes()).as_ref());
            Err((Box::new(d), Some(lossy)))
        }
    }
}

/// Fills in default projects, checks project membership and uniqueness.
fn assign_projects(
    config: &RepoConfig,
    loaded: Vec<document::Loaded>,
    report: &mut Report,
    guard: &mut DeletionGuard,
) -> BTreeMap<ResourceKey, Resource> {
    let projects: Vec<&Name> = loaded
        .iter()
        .filter(|l| l.spec.kind() == Kind::Project)
        .map(|l| &l.metadata.name)
        .collect();
    let default_project = config
        .project
        .clone()
        .or_else(|| match projects.as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        });
    let project_count = projects.len();

    let mut resources: BTreeMap<ResourceKey, Resource> = BTreeMap::new();
    for l in loaded {
        let kind = l.spec.kind();
        let mut metadata = l.metadata;
        let mut error = None;
        if kind.is_global() {
            if metadata.project.is_some() {
                error = Some(
                    Diagnostic::error(
                        "unexpected-project",
                        &*l.file,
                        l.node.lookup_key(&["metadata", "project"]),
                        format!("a {kind} does not belong to a project"),
                    )
                    .with_hint("remove `metadata.project`"),
                );
            }
        } else if metadata.project.is_none() {
            match &default_project {
                Some(p) => metadata.project = Some(p.clone()),
                None => {
                    error = Some(
                        Diagnostic::error(
                            "missing-project",
                            &*l.file,
                            l.node.lookup(&["metadata"]).span,
                            format!("`metadata.project` is required: the repository declares {project_count} projects"),
                        )
                        .with_hint("name the project, or set `project:` in cairn.yaml"),
                    );
                }
            }
        }
        if let Some(d) = error {
            guard.broken_files.insert(l.file.to_string());
            guard
                .broken_resources
                .insert((kind, metadata.name.to_string()));
            report.diagnostics.push(d);
            continue;
        }
        let key = ResourceKey {
            kind,
            project: metadata.project.clone(),
            name: metadata.name.clone(),
        };
        if let Some(first) = resources.get(&key) {
            let d = Diagnostic::error(
                "duplicate-name",
                &*l.file,
                l.node.lookup(&["metadata", "name"]).span,
                format!("{key} is defined twice"),
            )
            .with_related(
                &*first.file,
                first.span_of(&["metadata", "name"]),
                "first defined here",
            )
            .with_hint(format!(
                "names are unique per kind{}",
                if kind.is_global() { "" } else { " and project" }
            ));
            guard.broken_files.insert(l.file.to_string());
            report.diagnostics.push(d);
            continue;
        }
        resources.insert(
            key.clone(),
            Resource {
                key,
                metadata,
                spec: l.spec,
                file: l.file,
                node: l.node,
                sources: BTreeMap::new(),
            },
        );
    }
    resources
}

/// Digests of the files a resource runs.
fn sources(spec: &Spec, snapshot: &Snapshot) -> BTreeMap<String, String> {
    use cairn_spec::EnvironmentRef;
    let mut paths: Vec<(&str, &cairn_spec::RepoPath)> = Vec::new();
    fn environment(e: &Option<EnvironmentRef>) -> Option<&cairn_spec::RepoPath> {
        match e {
            Some(EnvironmentRef::Inline(e)) => e.requirements.as_ref(),
            _ => None,
        }
    }
    match spec {
        Spec::Job(j) => {
            paths.extend(j.workdir.as_ref().map(|p| ("workdir", p)));
            paths.extend(environment(&j.environment).map(|p| ("requirements", p)));
        }
        Spec::Application(a) => {
            paths.push(("path", &a.path));
            paths.extend(environment(&a.environment).map(|p| ("requirements", p)));
        }
        Spec::Model(m) => {
            paths.extend(m.artifact.as_ref().map(|p| ("artifact", p)));
            paths.extend(m.workdir.as_ref().map(|p| ("workdir", p)));
            paths.extend(environment(&m.environment).map(|p| ("requirements", p)));
        }
        Spec::Environment(e) => {
            paths.extend(e.requirements.as_ref().map(|p| ("requirements", p)));
        }
        Spec::Plugin(p) => paths.extend(p.path.as_ref().map(|p| ("path", p))),
        Spec::Project(_) | Spec::ComputePool(_) | Spec::Dataset(_) => {}
    }
    paths
        .into_iter()
        .filter_map(|(field, path)| {
            snapshot
                .digest(path.as_str())
                .map(|d| (field.to_string(), d))
        })
        .collect()
}
