//! `{{name}}`: a Cairn application framework (world `app-framework`).
//!
//! Serves an application that has a `serve.sh` at the top of its
//! directory: `sh serve.sh`, with the replica's port in `$PORT` and the
//! gateway's prefix in `URL_PREFIX`. Health path: `/`.

use cairn_plugin_sdk::apps::{App, LaunchSpec, URL_PREFIX};
use cairn_plugin_sdk::{AppFramework, Config, Result};

/// The framework.
pub struct Example;

impl AppFramework for Example {
    fn detect(_config: &Config, app: &App) -> bool {
        app.file("serve.sh").is_some()
    }

    fn launch(config: &Config, app: &App) -> Result<LaunchSpec> {
        config.check_keys(&[])?;
        if app.file("serve.sh").is_none() {
            return Err("no serve.sh in the application's directory".into());
        }
        Ok(LaunchSpec {
            command: vec!["sh".into(), "serve.sh".into()],
            env: vec![("URL_PREFIX".into(), URL_PREFIX.into())],
            port: None,
            health_path: "/".into(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_app_framework!(Example);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::apps::AppFile;

    #[test]
    fn launches_serve_sh() {
        let app = App {
            name: "demo".into(),
            path: "apps/demo".into(),
            files: vec![AppFile { path: "serve.sh".into(), size: 10, text: None }],
            url_prefix: "/apps/demo".into(),
            command: vec![],
            env: vec![],
        };
        assert!(Example::detect(&Config::default(), &app));
        let launch = Example::launch(&Config::default(), &app).unwrap();
        assert_eq!(launch.command, ["sh", "serve.sh"]);
    }
}
