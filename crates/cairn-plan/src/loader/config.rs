//! `cairn.yaml`: optional repository settings at the root.

use super::DEFAULT_MAX_FILE_SIZE;
use crate::loader::document::de_diagnostic;
use crate::snapshot::{EntryKind, Snapshot};
use cairn_spec::diagnostics::{Diagnostic, Report};
use cairn_spec::yaml;
use cairn_spec::{Memory, Name, RepoPath};
use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The name of the settings file at the repository root.
pub const CONFIG_FILE: &str = "cairn.yaml";

/// Paths never read as specs: hidden files and directories (`.git`,
/// `.github`, `.cairn`, ...).
const DEFAULT_IGNORES: [&str; 2] = ["**/.*", "**/.*/**"];

/// Repository settings (`cairn.yaml` at the root; every field optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoConfig {
    /// The directory holding the specs (default: the repository root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_root: Option<RepoPath>,
    /// Globs of paths (relative to the repository root) that are not specs,
    /// e.g. `ci/**` or `**/docker-compose.yaml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// The project of resources that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Name>,
    /// Largest spec file read (default `4Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<Memory>,
    #[serde(skip)]
    ignore_set: Option<GlobSet>,
}

impl RepoConfig {
    /// The size limit for one spec file, in bytes.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
            .map_or(DEFAULT_MAX_FILE_SIZE, Memory::bytes)
    }

    /// The spec files of `snapshot`, sorted.
    pub fn spec_files(&self, snapshot: &Snapshot) -> Vec<String> {
        let root = match &self.spec_root {
            Some(r) if r.as_str() != "." => format!("{}/", r.as_str()),
            _ => String::new(),
        };
        snapshot
            .entries()
            .filter(|(path, kind)| {
                matches!(kind, EntryKind::File | EntryKind::Symlink(_)) && path.starts_with(&root)
            })
            .map(|(path, _)| path)
            .filter(|path| {
                (path.ends_with(".yaml") || path.ends_with(".yml")) && *path != CONFIG_FILE
            })
            .filter(|path| {
                !self
                    .ignore_set
                    .as_ref()
                    .is_some_and(|set| set.is_match(path))
            })
            .map(str::to_string)
            .collect()
    }
}

/// Reads `cairn.yaml` if present; problems go into `report`.
pub(super) fn read(snapshot: &Snapshot, report: &mut Report) -> RepoConfig {
    let mut config = RepoConfig::default();
    if let Some(EntryKind::File) = snapshot.kind(CONFIG_FILE) {
        match snapshot.read(CONFIG_FILE, DEFAULT_MAX_FILE_SIZE) {
            Ok(bytes) => {
                let text: Arc<str> = Arc::from(String::from_utf8_lossy(&bytes).as_ref());
                match yaml::parse_documents(&text) {
                    Ok(docs) => {
                        if let Some(doc) = docs.first() {
                            match yaml::from_node::<RepoConfig>(doc) {
                                Ok(c) => config = c,
                                Err(e) => report.diagnostics.push(de_diagnostic(
                                    CONFIG_FILE,
                                    e,
                                    doc.span,
                                    "cairn.yaml",
                                )),
                            }
                        }
                    }
                    Err(e) => report.diagnostics.push(Diagnostic::error(
                        "yaml-syntax",
                        CONFIG_FILE,
                        e.span,
                        format!("YAML syntax error: {}", e.message),
                    )),
                }
                if !report.diagnostics.is_empty() {
                    report.sources.insert(CONFIG_FILE, text);
                }
            }
            Err(e) => report.diagnostics.push(Diagnostic::error_in(
                "unreadable-file",
                Some(CONFIG_FILE.into()),
                format!("cannot read {CONFIG_FILE}: {e}"),
            )),
        }
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in DEFAULT_IGNORES {
        builder.add(Glob::new(pattern).expect("valid default glob"));
    }
    for pattern in &config.ignore {
        match Glob::new(pattern) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => report.diagnostics.push(
                Diagnostic::error_in(
                    "invalid-value",
                    Some(CONFIG_FILE.into()),
                    format!("invalid ignore glob `{pattern}`: {e}"),
                )
                .with_hint("globs look like `ci/**` or `**/*.k8s.yaml`"),
            ),
        }
    }
    config.ignore_set = builder.build().ok();
    if let Some(root) = &config.spec_root
        && root.as_str() != "."
        && !matches!(
            snapshot.resolve(root.as_str()),
            crate::snapshot::Resolved::Dir(_)
        )
    {
        report.diagnostics.push(
            Diagnostic::error_in(
                "path-missing",
                Some(CONFIG_FILE.into()),
                format!("specRoot `{root}` is not a directory of the repository"),
            )
            .with_hint("specRoot is relative to the repository root"),
        );
    }
    config
}
