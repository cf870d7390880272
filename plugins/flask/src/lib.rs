//! `flask`: launches a Flask application with `python3 -m flask run` on the
//! replica's port, bound to 127.0.0.1.
//!
//! The application is the first of `app.py`, `wsgi.py`, `main.py`; the
//! gateway's prefix (`/apps/NAME`) is passed as `SCRIPT_NAME` so that
//! `url_for` builds links under it. The spec's `command` replaces the
//! generated one. Health path: `/`.
//!
//! Settings: `python` (default `python3`), the interpreter to run.

use cairn_plugin_sdk::apps::{App, LaunchSpec, PORT};
use cairn_plugin_sdk::{AppFramework, Config, Result};

const ENTRY_POINTS: [&str; 3] = ["app.py", "wsgi.py", "main.py"];

/// The framework.
pub struct Flask;

impl AppFramework for Flask {
    fn detect(_config: &Config, app: &App) -> bool {
        app.find_file(&ENTRY_POINTS)
            .and_then(|f| app.file(f))
            .is_some_and(|f| {
                f.text
                    .as_deref()
                    .is_none_or(|t| t.contains("flask") || t.contains("Flask"))
            })
    }

    fn launch(config: &Config, app: &App) -> Result<LaunchSpec> {
        config.check_keys(&["python"])?;
        let python = config.str_or("python", "python3")?;
        let entry = app
            .find_file(&ENTRY_POINTS)
            .ok_or("no app.py, wsgi.py or main.py for flask")?;
        let generated = [
            python,
            "-m",
            "flask",
            "--app",
            entry,
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            PORT,
        ];
        Ok(LaunchSpec {
            command: if app.command.is_empty() {
                generated.map(String::from).to_vec()
            } else {
                app.command.clone()
            },
            env: vec![("SCRIPT_NAME".into(), app.url_prefix.clone())],
            port: None,
            health_path: "/".into(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_app_framework!(Flask);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::apps::AppFile;

    fn app(files: &[(&str, &str)], command: &[&str]) -> App {
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
            command: command.iter().map(|s| s.to_string()).collect(),
            env: vec![],
        }
    }

    #[test]
    fn launches_like_the_builtin_framework() {
        let a = app(
            &[("wsgi.py", "from flask import Flask"), ("README.md", "")],
            &[],
        );
        assert!(Flask::detect(&Config::default(), &a));
        let l = Flask::launch(&Config::default(), &a).unwrap();
        assert_eq!(
            l.command,
            [
                "python3",
                "-m",
                "flask",
                "--app",
                "wsgi.py",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                "$(PORT)"
            ]
        );
        assert_eq!(
            l.env,
            [("SCRIPT_NAME".to_string(), "/apps/demo".to_string())]
        );
        assert_eq!((l.port, l.health_path.as_str()), (None, "/"));
        let explicit = Flask::launch(
            &Config::default(),
            &app(&[("app.py", "")], &["gunicorn", "app:app"]),
        )
        .unwrap();
        assert_eq!(explicit.command, ["gunicorn", "app:app"]);
    }

    #[test]
    fn says_what_is_missing() {
        let a = app(&[("server.R", "")], &[]);
        assert!(!Flask::detect(&Config::default(), &a));
        let e = Flask::launch(&Config::default(), &a).unwrap_err();
        assert_eq!(e.message(), "no app.py, wsgi.py or main.py for flask");
        assert!(!Flask::detect(
            &Config::default(),
            &app(&[("app.py", "import streamlit")], &[])
        ));
    }
}
