//! `cairn plan --runtime kubernetes`: the exact objects a change applies,
//! as a YAML stream, with comments for what it prunes and holds.

use crate::launch;
use crate::objects::{self, KubeSettings, selector_string};
use cairn_plan::loader::DesiredState;
use cairn_plan::plan::{Change, Plan};

/// A rendered Kubernetes plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The objects to apply, with comments for prunes and holds.
    pub yaml: String,
    /// Resources of the new state that cannot run on Kubernetes, and why.
    pub problems: Vec<String>,
}

/// Renders the objects each action of `plan` applies or prunes.
pub fn render(
    plan: &Plan,
    new: &DesiredState,
    commit: &str,
    checkout: &std::path::Path,
    settings: &KubeSettings,
) -> Rendered {
    let mut out = Rendered::default();
    let mut docs: Vec<String> = Vec::new();
    for action in &plan.actions {
        let key = &action.key;
        match &action.change {
            Change::Create | Change::Update { .. } => {
                let verb = if action.change == Change::Create {
                    "create"
                } else {
                    "update"
                };
                let Some(r) = new.resources.get(key) else {
                    continue;
                };
                let launches = launch::launches_for(r, checkout);
                match objects::objects_for(r, new, commit, &launches, settings) {
                    Ok(list) if list.is_empty() => {}
                    Ok(list) => {
                        for (i, o) in list.iter().enumerate() {
                            let mut doc = String::new();
                            if i == 0 {
                                doc.push_str(&format!("# {verb} {key} ({})\n", action.file));
                            }
                            doc.push_str(&objects::to_yaml(std::slice::from_ref(o)));
                            docs.push(doc);
                        }
                    }
                    Err(e) => out.problems.push(format!("{key}: {e}")),
                }
            }
            Change::Delete => docs.push(format!(
                "# delete {key} ({}): prunes every object labelled {}\n",
                action.file,
                selector_string(key)
            )),
            Change::Hold { reason } => {
                docs.push(format!("# hold {key} ({}): {reason}\n", action.file));
            }
            Change::Unchanged => {}
        }
    }
    out.yaml = docs.join("---\n");
    out
}
