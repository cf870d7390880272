//! How applications are launched in their pods, resolved before their
//! objects are built: `command` natively, the built-in frameworks (`flask`,
//! `shiny`, `streamlit`) by asking their app-framework plugins, as on the
//! embedded runtime. This is where reading the application's files and
//! running the plugin happen; [`crate::objects`] is given the answers as
//! [`Launches`] and stays pure. The plugins are deterministic: the same
//! files and spec give the same plans.

use crate::objects::Launches;
use cairn_plan::loader::{DesiredState, Resource, ResourceKey};
use cairn_plugin_host::apps::{App, FrameworkPlugin, app_files};
use cairn_plugin_host::{PluginHost, PluginSource};
use cairn_runtime::frameworks::LaunchPlan;
use cairn_spec::{ApplicationSpec, Command, Spec};
use std::path::Path;

/// The launch plans of every application of `state`, from the files of
/// its commit's `checkout`.
pub fn launches(state: &DesiredState, checkout: &Path) -> Launches {
    state
        .resources
        .values()
        .flat_map(|r| launches_for(r, checkout))
        .collect()
}

/// The launch plan of one resource: one entry for an application, none for
/// other kinds.
pub fn launches_for(r: &Resource, checkout: &Path) -> Launches {
    match &r.spec {
        Spec::Application(spec) => {
            Launches::from([(r.key.clone(), launch_plan(&r.key, spec, checkout))])
        }
        _ => Launches::new(),
    }
}

/// How the replicas of application `key` are launched: natively for
/// `command`, else from the answer of its built-in framework plugin, asked
/// with the files under the application's `path` in `checkout`.
pub fn launch_plan(
    key: &ResourceKey,
    spec: &ApplicationSpec,
    checkout: &Path,
) -> Result<LaunchPlan, String> {
    if spec.framework == "command" {
        return Ok(LaunchPlan::Native);
    }
    if !cairn_spec::BUILTIN_FRAMEWORKS.contains(&spec.framework.as_str()) {
        return Err(format!(
            "framework `{}`: a project's own app-framework plugins are not supported on the Kubernetes runtime yet",
            spec.framework
        ));
    }
    static HOST: std::sync::LazyLock<Result<PluginHost, String>> =
        std::sync::LazyLock::new(|| PluginHost::new(None).map_err(|e| e.to_string()));
    let host = HOST.as_ref().map_err(Clone::clone)?;
    let plugin = host
        .load(
            &spec.framework,
            &PluginSource::Builtin(spec.framework.clone()),
            None,
            &Default::default(),
        )
        .map_err(|e| format!("built-in plugin `{}`: {e}", spec.framework))?;
    let framework = FrameworkPlugin::new(plugin).map_err(|e| e.to_string())?;
    let app = App {
        name: key.name.to_string(),
        path: spec.path.to_string(),
        files: app_files(&checkout.join(spec.path.as_str())).unwrap_or_default(),
        url_prefix: crate::objects::app_prefix(key),
        command: match &spec.command {
            Command::Empty => Vec::new(),
            Command::Args(a) => a.clone(),
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        },
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let answer = framework
        .launch(&Vec::new(), &app)
        .map_err(|e| format!("built-in plugin `{}`: {e}", spec.framework))?;
    Ok(LaunchPlan::Plugin {
        command: answer.command,
        env: answer.env,
        health_path: answer.health_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &str = r#"apiVersion: cairn/v1
kind: Project
metadata:
  name: vision
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: status
  project: vision
spec:
  framework: command
  command: [python3, server.py]
  path: apps/status
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: own
  project: vision
spec:
  framework: dash
  path: apps/own
---
apiVersion: cairn/v1
kind: Plugin
metadata:
  name: dash
  project: vision
spec:
  path: plugins/dash.wasm
  world: app-framework
"#;

    #[test]
    fn applications_get_plans_without_reading_files() {
        let state = cairn_plan::loader::load(&cairn_plan::snapshot::Snapshot::from_files([
            ("specs.yaml", SPECS),
            ("apps/status/server.py", ""),
            ("apps/own/app.py", ""),
            ("plugins/dash.wasm", ""),
        ]));
        assert_eq!(state.report.errors(), 0, "{:?}", state.report);
        // The checkout is not even there: neither plan reads it.
        let checkout = Path::new("/nonexistent");
        let plans: Vec<(String, Result<LaunchPlan, String>)> = launches(&state, checkout)
            .into_iter()
            .map(|(k, p)| (k.name.to_string(), p))
            .collect();
        assert_eq!(
            plans,
            [
                ("own".to_string(), Err("framework `dash`: a project's own app-framework plugins are not supported on the Kubernetes runtime yet".to_string())),
                ("status".to_string(), Ok(LaunchPlan::Native)),
            ]
        );
    }
}
