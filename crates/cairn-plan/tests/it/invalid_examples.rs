//! Every fixture under `examples/invalid/` is a one-file spec repository
//! with exactly one class of mistake. Each must produce exactly the
//! diagnostic codes its `# expect:` line lists, every diagnostic must point
//! at a place in the file, and the human rendering (offending line, caret,
//! hint) is pinned with an insta snapshot named after the fixture.
//!
//! The quickstart example, on the other hand, must load without a single
//! diagnostic.

use cairn_source::{GitSource, Snapshot};
use cairn_spec::diagnostics::{Report, render_human, to_json};
use codespan_reporting::term::termcolor::NoColor;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The name every fixture takes in its one-file repository.
const FILE: &str = "specs.yaml";

/// The fixtures, sorted by name.
fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(cairn_test_support::workspace_root().join("examples/invalid"))
            .expect("examples/invalid exists")
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
    files.sort();
    files
}

/// The codes listed on the fixture's first line, `# expect: a, b`.
fn expected_codes(name: &str, text: &str) -> BTreeSet<String> {
    let first = text.lines().next().unwrap_or_default();
    let list = first
        .strip_prefix("# expect:")
        .unwrap_or_else(|| panic!("{name}: the first line must be `# expect: CODE[, CODE...]`"));
    let codes: BTreeSet<String> = list
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(!codes.is_empty(), "{name}: `# expect:` lists no code");
    codes
}

fn render(report: &Report) -> String {
    let mut buffer = NoColor::new(Vec::new());
    render_human(report, &mut buffer).expect("rendering to memory cannot fail");
    String::from_utf8(buffer.into_inner()).expect("the rendering is UTF-8")
}

#[test]
fn each_invalid_example_reports_exactly_its_mistake() {
    let files = fixtures();
    assert!(
        files.len() >= 20,
        "expected the invalid examples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut rendered = Vec::new();
    for path in &files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name")
            .to_string();
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let expected = expected_codes(&name, &text);

        let snapshot = Snapshot::from_files([(FILE, text.as_str())]);
        let state = cairn_plan::loader::load(&snapshot);
        let report = &state.report;
        let json = serde_json::to_string_pretty(&to_json(report)).expect("JSON");

        let actual: BTreeSet<String> = report
            .diagnostics
            .iter()
            .map(|d| d.code.to_string())
            .collect();
        if actual != expected {
            failures.push(format!(
                "{name}: expected codes {expected:?}, got {actual:?}\n{json}"
            ));
        }
        if report.errors() == 0 {
            failures.push(format!("{name}: no error reported"));
        }
        for d in &report.diagnostics {
            if d.file.as_deref() != Some(FILE) || d.span.is_none() {
                failures.push(format!(
                    "{name}: diagnostic `{}` ({}) has no file and span",
                    d.code, d.message
                ));
            }
            if let (Some(file), Some(span)) = (&d.file, d.span)
                && report.sources.locate(file, span).is_none()
            {
                failures.push(format!(
                    "{name}: diagnostic `{}` points into a file whose text is not in the report",
                    d.code
                ));
            }
        }
        let description: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        rendered.push((name, description.join("\n"), render(report)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    for (name, description, text) in rendered {
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_snapshot_path("../snapshots/invalid_examples");
        settings.set_description(description);
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
}

#[test]
fn quickstart_loads_without_diagnostics() -> Result<(), Box<dyn std::error::Error>> {
    let source = GitSource::open_local(Path::new(cairn_test_support::QUICKSTART))?;
    let snapshot = source.worktree_snapshot()?;
    let state = cairn_plan::loader::load(&snapshot);
    assert!(
        state.report.diagnostics.is_empty(),
        "the quickstart has diagnostics:\n{}",
        render(&state.report)
    );
    assert!(
        state.resources.len() >= 5,
        "the quickstart loaded only {} resources",
        state.resources.len()
    );
    Ok(())
}
