//! `streamlit`: launches a Streamlit application with
//! `python3 -m streamlit run` on the replica's port, bound to 127.0.0.1,
//! headless, without usage statistics.
//!
//! The application is the first of `app.py`, `streamlit_app.py`,
//! `main.py`; the gateway's prefix (`/apps/NAME`) is Streamlit's
//! `server.baseUrlPath`. The spec's `command` replaces the generated one.
//! Health path: `/healthz`.
//!
//! Settings: `python` (default `python3`), the interpreter to run.

use cairn_plugin_sdk::apps::{App, LaunchSpec, PORT};
use cairn_plugin_sdk::{AppFramework, Config, Result};

const ENTRY_POINTS: [&str; 3] = ["app.py", "streamlit_app.py", "main.py"];

/// The framework.
pub struct Streamlit;

impl AppFramework for Streamlit {
    fn detect(_config: &Config, app: &App) -> bool {
        app.find_file(&ENTRY_POINTS)
            .and_then(|f| app.file(f))
            .is_some_and(|f| f.text.as_deref().is_none_or(|t| t.contains("streamlit")))
    }

    fn launch(config: &Config, app: &App) -> Result<LaunchSpec> {
        config.check_keys(&["python"])?;
        let python = config.str_or("python", "python3")?;
        let entry = app
            .find_file(&ENTRY_POINTS)
            .ok_or("no app.py or streamlit_app.py for streamlit")?;
        let base = app.url_prefix.trim_start_matches('/');
        let generated = [
            python,
            "-m",
            "streamlit",
            "run",
            entry,
            "--server.port",
            PORT,
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.baseUrlPath",
            base,
            "--browser.gatherUsageStats",
            "false",
        ];
        Ok(LaunchSpec {
            command: if app.command.is_empty() {
                generated.map(String::from).to_vec()
            } else {
                app.command.clone()
            },
            env: vec![],
            port: None,
            health_path: "/healthz".into(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_app_framework!(Streamlit);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::apps::AppFile;

    fn app(files: &[(&str, &str)]) -> App {
        App {
            name: "demo".into(),
            path: "apps/demo".into(),
            files: files
                .iter()
                .map(|(p, t)| AppFile {
                    path: p.to_string(),
                    size: t.len() as u64,
                    text: Some(t.to_string()),
                })
                .collect(),
            url_prefix: "/apps/demo".into(),
            command: vec![],
            env: vec![],
        }
    }

    #[test]
    fn launches_like_the_builtin_framework() {
        let a = app(&[("streamlit_app.py", "import streamlit as st")]);
        assert!(Streamlit::detect(&Config::default(), &a));
        let l = Streamlit::launch(&Config::default(), &a).unwrap();
        assert_eq!(
            &l.command[..5],
            ["python3", "-m", "streamlit", "run", "streamlit_app.py"]
        );
        assert!(
            l.command
                .windows(2)
                .any(|w| w == ["--server.port", "$(PORT)"])
        );
        assert!(
            l.command
                .windows(2)
                .any(|w| w == ["--server.baseUrlPath", "apps/demo"])
        );
        assert_eq!(l.health_path, "/healthz");
        let e = Streamlit::launch(&Config::default(), &app(&[("app.R", "")])).unwrap_err();
        assert_eq!(e.message(), "no app.py or streamlit_app.py for streamlit");
    }
}
