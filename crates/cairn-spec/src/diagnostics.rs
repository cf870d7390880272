//! Diagnostics a reviewer can act on: every problem names its file, line and
//! column, shows the offending line and, where possible, says how to fix it.
//!
//! Diagnostics are plain data; [`render_human`] and [`render_json`] turn a
//! [`Report`] into text for people (codespan-reporting) or JSON for tools.

use crate::yaml::{LineIndex, Span};
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor::WriteColor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails validation.
    Error,
    /// Worth a look; does not fail validation.
    Warning,
}

/// A secondary location, such as "first defined here".
#[derive(Clone, Debug, PartialEq)]
pub struct Related {
    /// File path relative to the repository root.
    pub file: String,
    /// The span in that file.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// One problem found in a repository.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable identifier of the class of problem, e.g. `unknown-field`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// The file, relative to the repository root (none for repository-wide problems).
    pub file: Option<String>,
    /// Where in the file.
    pub span: Option<Span>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Other places involved.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// An error about `file` at `span`.
    pub fn error(
        code: &'static str,
        file: impl Into<String>,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: Some(file.into()),
            span: Some(span),
            hint: None,
            related: Vec::new(),
        }
    }

    /// An error about a whole file, or the repository when `file` is `None`.
    pub fn error_in(code: &'static str, file: Option<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file,
            span: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// Turns the diagnostic into a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint if there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Adds a related location.
    pub fn with_related(
        mut self,
        file: impl Into<String>,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        self.related.push(Related {
            file: file.into(),
            span,
            message: message.into(),
        });
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The text of the files diagnostics point into.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: BTreeMap<String, Arc<str>>,
}

impl SourceMap {
    /// Remembers the text of `file`.
    pub fn insert(&mut self, file: impl Into<String>, text: Arc<str>) {
        self.files.insert(file.into(), text);
    }

    /// The text of `file`, if known.
    pub fn get(&self, file: &str) -> Option<&Arc<str>> {
        self.files.get(file)
    }

    /// The 1-based line and column of `span`'s start and end in `file`.
    pub fn locate(&self, file: &str, span: Span) -> Option<((usize, usize), (usize, usize))> {
        let text = self.files.get(file)?;
        let index = LineIndex::new(text);
        Some((
            index.line_col(text, span.start),
            index.line_col(text, span.end),
        ))
    }
}

/// Diagnostics and the sources they point into.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The diagnostics, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Texts of the files involved.
    pub sources: SourceMap,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// Sorts diagnostics by file and position, errors first within a place.
    pub fn sort(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (&a.file, a.span.map(|s| s.start), a.severity).cmp(&(
                &b.file,
                b.span.map(|s| s.start),
                b.severity,
            ))
        });
    }
}

/// Writes `report` for people: the offending line, a caret, and the hint.
pub fn render_human(report: &Report, out: &mut dyn WriteColor) -> std::io::Result<()> {
    let mut files = SimpleFiles::new();
    let mut ids = BTreeMap::new();
    let mut id_of = |name: &str| -> Option<usize> {
        let text = report.sources.get(name)?;
        Some(
            *ids.entry(name.to_string())
                .or_insert_with(|| files.add(name.to_string(), text.clone())),
        )
    };
    let mut prepared = Vec::new();
    for d in &report.diagnostics {
        let mut cs = match d.severity {
            Severity::Error => CsDiagnostic::error(),
            Severity::Warning => CsDiagnostic::warning(),
        }
        .with_code(d.code)
        .with_message(&d.message);
        let mut labels = Vec::new();
        let mut notes = Vec::new();
        match (&d.file, d.span) {
            (Some(file), Some(span)) => match id_of(file) {
                Some(id) => labels.push(Label::primary(id, span.range())),
                None => notes.push(format!("in {file}")),
            },
            (Some(file), None) => notes.push(format!("in {file}")),
            _ => {}
        }
        for r in &d.related {
            match id_of(&r.file) {
                Some(id) => {
                    labels.push(Label::secondary(id, r.span.range()).with_message(&r.message))
                }
                None => notes.push(format!("{}: {}", r.file, r.message)),
            }
        }
        if let Some(h) = &d.hint {
            notes.push(format!("hint: {h}"));
        }
        cs = cs.with_labels(labels).with_notes(notes);
        prepared.push(cs);
    }
    let config = term::Config::default();
    for cs in &prepared {
        term::emit(out, &config, &files, cs).map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    message: &'a str,
}

/// The diagnostics as JSON values, with 1-based lines and columns.
pub fn to_json(report: &Report) -> serde_json::Value {
    let items: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| {
            let pos = match (&d.file, d.span) {
                (Some(f), Some(s)) => report.sources.locate(f, s),
                _ => None,
            };
            JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                file: d.file.as_deref(),
                line: pos.map(|p| p.0.0),
                column: pos.map(|p| p.0.1),
                end_line: pos.map(|p| p.1.0),
                end_column: pos.map(|p| p.1.1),
                hint: d.hint.as_deref(),
                related: d
                    .related
                    .iter()
                    .map(|r| {
                        let pos = report.sources.locate(&r.file, r.span);
                        JsonRelated {
                            file: &r.file,
                            line: pos.map(|p| p.0.0),
                            column: pos.map(|p| p.0.1),
                            message: &r.message,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    serde_json::json!({
        "diagnostics": items,
        "errors": report.errors(),
        "warnings": report.warnings(),
    })
}

/// Suggests the closest of `candidates` to `input`, if one is close enough
/// to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("dependOn", ["dependsOn", "command"]),
            Some("dependsOn")
        );
        assert_eq!(did_you_mean("Modle", ["Model", "Job"]), Some("Model"));
        assert_eq!(did_you_mean("zzz", ["Model", "Job"]), None);
    }
}
