//! Plans for people (terminal text), pull requests (Markdown) and tools (JSON).

use super::{Change, FieldChange, Plan};
use owo_colors::{OwoColorize, Stream};
use serde_json::Value;
use std::fmt::Write;

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

fn field_line(f: &FieldChange) -> String {
    match (&f.old, &f.new) {
        (None, new) => format!("{}: + {}", f.path, show(new)),
        (old, None) => format!("{}: - {}", f.path, show(old)),
        (old, new) => format!("{}: {} → {}", f.path, show(old), show(new)),
    }
}

/// The plan as terminal text (colored when stdout is a color terminal).
/// Unchanged resources are listed only when `verbose`.
pub fn render_text(plan: &Plan, from: &str, to: &str, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan: {from} → {to}\n");
    for a in &plan.actions {
        let what = format!("{} {}", a.key.kind, a.key.qualified_name());
        match &a.change {
            Change::Create => {
                let line = format!("  + {what}");
                let _ = writeln!(
                    out,
                    "{}  ({})",
                    line.if_supports_color(Stream::Stdout, |t| t.green()),
                    a.file
                );
            }
            Change::Update { fields } => {
                let line = format!("  ~ {what}");
                let _ = writeln!(
                    out,
                    "{}  ({})",
                    line.if_supports_color(Stream::Stdout, |t| t.yellow()),
                    a.file
                );
                for f in fields {
                    let _ = writeln!(out, "      {}", field_line(f));
                }
            }
            Change::Delete => {
                let line = format!("  - {what}");
                let _ = writeln!(
                    out,
                    "{}  (was in {})",
                    line.if_supports_color(Stream::Stdout, |t| t.red()),
                    a.file
                );
            }
            Change::Hold { reason } => {
                let line = format!("  ! {what}");
                let _ = writeln!(
                    out,
                    "{}  kept: {reason}",
                    line.if_supports_color(Stream::Stdout, |t| t.magenta())
                );
            }
            Change::Unchanged if verbose => {
                let _ = writeln!(out, "    {what}");
            }
            Change::Unchanged => {}
        }
    }
    if !plan.has_changes() && plan.summary().hold == 0 {
        let _ = writeln!(out, "  No changes.");
    }
    let _ = writeln!(out, "\n{}.", plan.summary());
    out
}

/// The plan as Markdown for a pull-request comment.
pub fn render_markdown(plan: &Plan, from: &str, to: &str) -> String {
    let s = plan.summary();
    let mut out = String::new();
    let _ = writeln!(out, "### Cairn plan: `{from}` → `{to}`\n");
    let _ = writeln!(out, "**{s}**\n");
    let changed: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| !matches!(a.change, Change::Unchanged))
        .collect();
    if changed.is_empty() {
        let _ = writeln!(out, "No changes.");
        return out;
    }
    let _ = writeln!(out, "| | Kind | Name | File | Change |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for a in &changed {
        let (sign, change) = match &a.change {
            Change::Create => ("➕", "create".to_string()),
            Change::Update { fields } => (
                "✏️",
                format!(
                    "update {} field{}",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" }
                ),
            ),
            Change::Delete => ("🗑️", "delete".to_string()),
            Change::Hold { reason } => ("⚠️", format!("kept: {}", reason.replace('|', "\\|"))),
            Change::Unchanged => continue,
        };
        let _ = writeln!(
            out,
            "| {sign} | {} | `{}` | `{}` | {change} |",
            a.key.kind,
            a.key.qualified_name(),
            a.file
        );
    }
    let updates: Vec<_> = changed
        .iter()
        .filter_map(|a| match &a.change {
            Change::Update { fields } => Some((a, fields)),
            _ => None,
        })
        .collect();
    if !updates.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>Field changes</summary>\n\n```diff"
        );
        for (a, fields) in updates {
            let _ = writeln!(out, "@@ {} {} @@", a.key.kind, a.key.qualified_name());
            for f in fields {
                if f.old.is_some() {
                    let _ = writeln!(out, "- {}: {}", f.path, show(&f.old));
                }
                if f.new.is_some() {
                    let _ = writeln!(out, "+ {}: {}", f.path, show(&f.new));
                }
            }
        }
        let _ = writeln!(out, "```\n\n</details>");
    }
    out
}

/// The plan as JSON.
pub fn to_json(plan: &Plan, from: &str, to: &str) -> Value {
    serde_json::json!({
        "from": from,
        "to": to,
        "summary": plan.summary(),
        "actions": plan.actions,
    })
}
