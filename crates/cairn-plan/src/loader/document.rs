//! One spec file: YAML documents to typed resources, with diagnostics.

use cairn_spec::diagnostics::{Diagnostic, did_you_mean};
use cairn_spec::yaml::{self, DeError, DeErrorKind, Node, Span, Value};
use cairn_spec::{
    API_VERSION, ApplicationSpec, ComputePoolSpec, DatasetSpec, EnvironmentSpec, JobSpec, Kind,
    Metadata, ModelSpec, PluginSpec, ProjectSpec, Spec,
};

use std::collections::HashMap;
use std::sync::Arc;

/// A document that loaded.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub metadata: Metadata,
    pub spec: Spec,
    pub file: Arc<str>,
    pub node: Arc<Node>,
}

/// What one file yielded.
#[derive(Debug, Default)]
pub(crate) struct FileResult {
    pub resources: Vec<Loaded>,
    pub diagnostics: Vec<Diagnostic>,
    /// Kind and name of documents that failed to load but could be identified.
    pub broken: Vec<(Kind, String)>,
    /// A document (or the whole file) failed before its kind and name were known.
    pub unattributable: bool,
}

const TOP_LEVEL_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];

/// Parses every document of one spec file.
pub(crate) fn parse_file(path: &str, text: &str) -> FileResult {
    let mut result = FileResult::default();
    let file: Arc<str> = Arc::from(path);
    let documents = match yaml::parse_documents(text) {
        Ok(d) => d,
        Err(e) => {
            result.unattributable = true;
            result.diagnostics.push(
                Diagnostic::error(
                    "yaml-syntax",
                    path,
                    e.span,
                    format!("YAML syntax error: {}", e.message),
                )
                .with_hint(
                    "check indentation, unclosed brackets or quotes, and `key: value` spacing",
                ),
            );
            return result;
        }
    };
    for node in documents {
        let before = result.diagnostics.len();
        duplicate_keys(path, &node, &mut result.diagnostics);
        let identity = identify(&node);
        match parse_document(path, &node) {
            Ok((metadata, spec)) if result.diagnostics.len() == before => {
                result.resources.push(Loaded {
                    metadata,
                    spec,
                    file: file.clone(),
                    node: Arc::new(node),
                })
            }
            Ok(_) => result.broken.extend(identity),
            Err(mut diagnostics) => {
                // Duplicate keys are already reported, at the second key.
                if result.diagnostics.len() > before {
                    diagnostics.retain(|d| d.code != "duplicate-field");
                }
                result.diagnostics.append(&mut diagnostics);
                match identity {
                    Some(id) => result.broken.push(id),
                    None => result.unattributable = true,
                }
            }
        }
    }
    result
}

/// Kind and name of a document, read leniently, for deletion safety.
fn identify(node: &Node) -> Option<(Kind, String)> {
    let kind = Kind::parse(node.get("kind")?.as_str()?)?;
    let name = node.get("metadata")?.get("name")?.as_str()?;
    Some((kind, name.to_string()))
}

fn parse_document(path: &str, node: &Node) -> Result<(Metadata, Spec), Vec<Diagnostic>> {
    let Some(entries) = node.as_map() else {
        return Err(vec![
            Diagnostic::error(
                "not-a-spec",
                path,
                node.span,
                "a spec document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`",
            )
            .with_hint("start the document with `apiVersion: cairn/v1`"),
        ]);
    };
    let mut errors = Vec::new();
    for (key, _) in entries {
        let name = key.as_str().unwrap_or("");
        if !TOP_LEVEL_FIELDS.contains(&name) {
            errors.push(
                Diagnostic::error(
                    "unknown-field",
                    path,
                    key.span,
                    format!("unknown field `{name}`"),
                )
                .with_hint(match did_you_mean(name, TOP_LEVEL_FIELDS) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("a document has only {}", list(&TOP_LEVEL_FIELDS)),
                }),
            );
        }
    }

    match node.get("apiVersion") {
        None => errors.push(
            Diagnostic::error("missing-field", path, first_line(node), "missing field `apiVersion`")
                .with_hint(format!("add `apiVersion: {API_VERSION}`")),
        ),
        Some(v) if v.as_str() != Some(API_VERSION) => errors.push(
            Diagnostic::error(
                "unsupported-api-version",
                path,
                v.span,
                format!("unsupported apiVersion `{}`", v.as_str().unwrap_or("?")),
            )
            .with_hint(format!(
                "this version of cairn reads `{API_VERSION}`; if this file is not a Cairn spec, add it to `ignore` in cairn.yaml"
            )),
        ),
        Some(_) => {}
    }

    let kind = match node.get("kind") {
        None => {
            errors.push(
                Diagnostic::error(
                    "missing-field",
                    path,
                    first_line(node),
                    "missing field `kind`",
                )
                .with_hint(format!("one of {}", list(&Kind::ALL.map(Kind::as_str)))),
            );
            None
        }
        Some(k) if k.as_str().is_none() => {
            errors.push(
                Diagnostic::error(
                    "invalid-type",
                    path,
                    k.span,
                    "`kind` must be a name such as `Job`",
                )
                .with_hint(format!("one of {}", list(&Kind::ALL.map(Kind::as_str)))),
            );
            None
        }
        Some(k) => {
            let text = k.as_str().unwrap_or("");
            let kind = Kind::parse(text);
            if kind.is_none() {
                let names = Kind::ALL.map(Kind::as_str);
                errors.push(
                    Diagnostic::error(
                        "unknown-kind",
                        path,
                        k.span,
                        format!("unknown kind `{text}`"),
                    )
                    .with_hint(match did_you_mean(text, names) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("kinds are {}", list(&names)),
                    }),
                );
            }
            kind
        }
    };

    let metadata = match node.get("metadata") {
        None => {
            errors.push(
                Diagnostic::error(
                    "missing-field",
                    path,
                    first_line(node),
                    "missing field `metadata`",
                )
                .with_hint("add `metadata: {name: ...}`"),
            );
            None
        }
        Some(m) => match deserialize_all::<Metadata>(path, m, "metadata") {
            Ok(m) => Some(m),
            Err(mut ds) => {
                errors.append(&mut ds);
                None
            }
        },
    };

    let null_spec;
    let spec_node = match node.get("spec") {
        Some(s) => s,
        None => {
            null_spec = Node {
                value: Value::Scalar(yaml::Scalar {
                    text: String::new(),
                    plain: true,
                }),
                span: first_line(node),
            };
            &null_spec
        }
    };
    let spec = kind.and_then(|kind| match parse_spec(path, kind, spec_node) {
        Ok(spec) => Some(spec),
        Err(mut ds) => {
            if node.get("spec").is_none() {
                for d in &mut ds {
                    if d.code == "missing-field" {
                        d.message = format!("missing field `spec` ({})", d.message);
                    }
                }
            }
            errors.append(&mut ds);
            None
        }
    });

    match (errors.is_empty(), metadata, spec) {
        (true, Some(m), Some(s)) => Ok((m, s)),
        _ => Err(errors),
    }
}

fn parse_spec(path: &str, kind: Kind, node: &Node) -> Result<Spec, Vec<Diagnostic>> {
    Ok(match kind {
        Kind::Project => Spec::Project(deserialize_all::<ProjectSpec>(path, node, "spec")?),
        Kind::ComputePool => {
            Spec::ComputePool(deserialize_all::<ComputePoolSpec>(path, node, "spec")?)
        }
        Kind::Dataset => Spec::Dataset(deserialize_all::<DatasetSpec>(path, node, "spec")?),
        Kind::Plugin => Spec::Plugin(deserialize_all::<PluginSpec>(path, node, "spec")?),
        Kind::Environment => {
            Spec::Environment(deserialize_all::<EnvironmentSpec>(path, node, "spec")?)
        }
        Kind::Job => Spec::Job(deserialize_all::<JobSpec>(path, node, "spec")?),
        Kind::Model => Spec::Model(Box::new(deserialize_all::<ModelSpec>(path, node, "spec")?)),
        Kind::Application => {
            Spec::Application(deserialize_all::<ApplicationSpec>(path, node, "spec")?)
        }
    })
}

/// Most errors a document has, not just the first.
const MAX_ERRORS_PER_DOCUMENT: usize = 20;

/// Deserializes `node`; on failure, reports every error it can find: serde
/// stops at the first, so the offending entry is removed from a copy of the
/// tree and deserialization is tried again.
fn deserialize_all<T: serde::de::DeserializeOwned>(
    path: &str,
    node: &Node,
    section: &str,
) -> Result<T, Vec<Diagnostic>> {
    let first = match yaml::from_node::<T>(node) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut tree = node.clone();
    let mut removed: Vec<String> = Vec::new();
    let mut diagnostics = Vec::new();
    let mut error = first;
    loop {
        let suppressed =
            matches!(&error.kind, DeErrorKind::MissingField(f) if removed.iter().any(|r| r == f));
        let span = error.span;
        if !suppressed {
            diagnostics.push(de_diagnostic(path, error, node.span, section));
        }
        if diagnostics.len() >= MAX_ERRORS_PER_DOCUMENT {
            break;
        }
        match span.and_then(|s| remove_entry(&mut tree, s)) {
            Some(key) => removed.push(key),
            None => break,
        }
        match yaml::from_node::<T>(&tree) {
            Ok(_) => break,
            Err(e) => error = e,
        }
    }
    Err(diagnostics)
}

/// Removes the mapping entry (or sequence item) whose key or value is at
/// `span`, searching the innermost first; returns the removed key.
fn remove_entry(node: &mut Node, span: Span) -> Option<String> {
    match &mut node.value {
        Value::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                if contains(v.span, span)
                    && v.span != span
                    && let Some(key) = remove_entry(v, span)
                {
                    return Some(key);
                }
            }
            let index = entries
                .iter()
                .position(|(k, v)| k.span == span || v.span == span)?;
            let (k, _) = entries.remove(index);
            Some(k.as_str().unwrap_or("").to_string())
        }
        Value::Seq(items) => {
            for item in items.iter_mut() {
                if contains(item.span, span)
                    && item.span != span
                    && let Some(key) = remove_entry(item, span)
                {
                    return Some(key);
                }
            }
            let index = items.iter().position(|i| i.span == span)?;
            items.remove(index);
            Some(String::new())
        }
        Value::Scalar(_) => None,
    }
}

fn contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Turns a deserialization error into a diagnostic with a hint.
pub(crate) fn de_diagnostic(path: &str, e: DeError, fallback: Span, section: &str) -> Diagnostic {
    let mut span = e.span.unwrap_or(fallback);
    if matches!(e.kind, DeErrorKind::MissingField(_)) {
        // Point at where the mapping starts, not at all of it.
        span = Span::new(span.start as usize, span.start as usize + 1);
    }
    let (code, hint) = match &e.kind {
        DeErrorKind::UnknownField { field, expected } => (
            "unknown-field",
            Some(match did_you_mean(field, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("fields allowed here: {}", list(expected)),
            }),
        ),
        DeErrorKind::UnknownVariant { variant, expected } => (
            "unknown-value",
            Some(match did_you_mean(variant, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? (allowed: {})", list(expected)),
                None => format!("allowed values: {}", list(expected)),
            }),
        ),
        DeErrorKind::MissingField(f) => {
            ("missing-field", Some(format!("add `{f}:` to `{section}`")))
        }
        DeErrorKind::InvalidType => ("invalid-type", None),
        DeErrorKind::InvalidValue => ("invalid-value", None),
        DeErrorKind::DuplicateField(_) => ("duplicate-field", Some("remove one of the two".into())),
    };
    let message = match e.kind {
        DeErrorKind::InvalidType => humanize(&e.message),
        _ => e.message,
    };
    Diagnostic::error(code, path, span, message).with_hint_opt(hint)
}

/// Rewrites serde's Rust-flavoured type names for people writing YAML.
fn humanize(message: &str) -> String {
    let mut m = message.to_string();
    for (from, to) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected `true` or `false`"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("invalid type: map", "invalid type: mapping"),
        ("invalid type: sequence", "invalid type: list"),
        ("invalid type: unit value", "invalid type: empty value"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a mapping");
    }
    if let Some(i) = m.find("expected enum ") {
        m.truncate(i);
        m.push_str("expected one of the allowed values");
    }
    m
}

fn first_line(node: &Node) -> Span {
    Span::new(node.span.start as usize, node.span.start as usize + 1)
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// YAML mappings must not repeat a key; serde would keep only the last.
fn duplicate_keys(path: &str, node: &Node, out: &mut Vec<Diagnostic>) {
    match &node.value {
        Value::Map(entries) => {
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for (k, v) in entries {
                if let Some(text) = k.as_str() {
                    if let Some(first) = seen.get(text) {
                        out.push(
                            Diagnostic::error(
                                "duplicate-key",
                                path,
                                k.span,
                                format!("key `{text}` is given twice"),
                            )
                            .with_related(path, *first, "first given here")
                            .with_hint("remove one of the two"),
                        );
                    } else {
                        seen.insert(text, k.span);
                    }
                }
                duplicate_keys(path, v, out);
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| duplicate_keys(path, i, out)),
        Value::Scalar(_) => {}
    }
}
