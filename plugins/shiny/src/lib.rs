//! `shiny`: launches a Shiny application, Python or R, on the replica's
//! port, bound to 127.0.0.1.
//!
//! - Python (an `app.py`): `python3 -m shiny run --host 127.0.0.1 --port
//!   PORT app.py`;
//! - R (an `app.R` or `server.R`, and no `app.py`):
//!   `Rscript -e "shiny::runApp('.', host = '127.0.0.1', port = PORTL,
//!   launch.browser = FALSE)"`.
//!
//! The spec's `command` replaces the generated one. Health path: `/`.
//!
//! Settings: `python` (default `python3`) and `rscript` (default
//! `Rscript`), the interpreters to run.

use cairn_plugin_sdk::apps::{App, LaunchSpec, PORT};
use cairn_plugin_sdk::{AppFramework, Config, Result};

/// The framework.
pub struct Shiny;

/// Which Shiny an application is written for.
#[derive(Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Shiny for Python, with its entry point.
    Python(&'static str),
    /// Shiny for R.
    R,
}

/// Tells R from Python Shiny by the application's files.
pub fn flavor(app: &App) -> Option<Flavor> {
    if let Some(entry) = app.find_file(&["app.py"]) {
        return Some(Flavor::Python(entry));
    }
    app.find_file(&["app.R", "server.R"]).map(|_| Flavor::R)
}

impl AppFramework for Shiny {
    fn detect(_config: &Config, app: &App) -> bool {
        match flavor(app) {
            Some(Flavor::R) => true,
            Some(Flavor::Python(entry)) => app
                .file(entry)
                .is_some_and(|f| f.text.as_deref().is_none_or(|t| t.contains("shiny"))),
            None => false,
        }
    }

    fn launch(config: &Config, app: &App) -> Result<LaunchSpec> {
        config.check_keys(&["python", "rscript"])?;
        let generated: Vec<String> = match flavor(app)
            .ok_or("no app.py, app.R or server.R for shiny")?
        {
            Flavor::Python(entry) => {
                let python = config.str_or("python", "python3")?;
                [
                    python,
                    "-m",
                    "shiny",
                    "run",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    PORT,
                    entry,
                ]
                .map(String::from)
                .to_vec()
            }
            Flavor::R => vec![
                config.str_or("rscript", "Rscript")?.to_string(),
                "-e".into(),
                format!(
                    "shiny::runApp('.', host = '127.0.0.1', port = {PORT}L, launch.browser = FALSE)"
                ),
            ],
        };
        Ok(LaunchSpec {
            command: if app.command.is_empty() {
                generated
            } else {
                app.command.clone()
            },
            env: vec![],
            port: None,
            health_path: "/".into(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_app_framework!(Shiny);

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
    fn python_shiny() {
        let a = app(&[("app.py", "from shiny import App")]);
        assert!(Shiny::detect(&Config::default(), &a));
        let l = Shiny::launch(&Config::default(), &a).unwrap();
        assert_eq!(
            l.command,
            [
                "python3",
                "-m",
                "shiny",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                "$(PORT)",
                "app.py"
            ]
        );
        assert_eq!(l.health_path, "/");
    }

    #[test]
    fn r_shiny() {
        let a = app(&[("server.R", "library(shiny)"), ("ui.R", "")]);
        assert_eq!(flavor(&a), Some(Flavor::R));
        assert!(Shiny::detect(&Config::default(), &a));
        let l = Shiny::launch(&Config::default(), &a).unwrap();
        assert_eq!(
            l.command,
            [
                "Rscript",
                "-e",
                "shiny::runApp('.', host = '127.0.0.1', port = $(PORT)L, launch.browser = FALSE)"
            ]
        );
        let e = Shiny::launch(&Config::default(), &app(&[("main.py", "")])).unwrap_err();
        assert_eq!(e.message(), "no app.py, app.R or server.R for shiny");
    }
}
