//! How the built-in application frameworks are launched on this machine:
//! the command, extra environment and health path for `flask`, `streamlit`,
//! `shiny` (Python or R) and `command`.

use crate::spec::{ApplicationSpec, Command};
use std::path::Path;

/// How to start one replica of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Program and arguments; `$PORT` is given in the environment.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Path answering 200 when ready.
    pub health_path: String,
}

/// How an application's replicas are launched: natively (`command`), or as
/// a framework plugin answered (`flask`, `shiny`, `streamlit` are the
/// built-in plugins of those names; any other name is an app-framework
/// Plugin of the project).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchPlan {
    /// Cairn's own launch rules ([`launch`]).
    Native,
    /// A plugin's answer; `$(PORT)` and `$(URL_PREFIX)` are expanded per
    /// replica.
    Plugin {
        /// Program and arguments.
        command: Vec<String>,
        /// Extra environment.
        env: Vec<(String, String)>,
        /// Path answering 200 when ready.
        health_path: String,
    },
}

impl LaunchPlan {
    /// The launch of one replica listening on `port`.
    pub fn launch(
        &self,
        spec: &ApplicationSpec,
        dir: &Path,
        prefix: &str,
        port: u16,
    ) -> Result<Launch, String> {
        match self {
            LaunchPlan::Native => launch(spec, dir, prefix, port),
            LaunchPlan::Plugin {
                command,
                env,
                health_path,
            } => {
                let vars = [
                    ("PORT".to_string(), port.to_string()),
                    ("URL_PREFIX".to_string(), prefix.to_string()),
                ];
                let argv = super::expand_args(command, &vars);
                if argv.is_empty() {
                    return Err("the framework plugin returned an empty command".into());
                }
                let (keys, values): (Vec<String>, Vec<String>) = env.iter().cloned().unzip();
                let env = keys
                    .into_iter()
                    .zip(super::expand_args(&values, &vars))
                    .collect();
                Ok(Launch {
                    argv,
                    env,
                    health_path: spec
                        .health_path
                        .clone()
                        .unwrap_or_else(|| health_path.clone()),
                })
            }
        }
    }
}

/// Resolves an application's launch command. `dir` is the application's
/// directory in the checkout; `prefix` the path it is served under
/// (`/apps/NAME`); `port` the port it must listen on.
pub fn launch(
    spec: &ApplicationSpec,
    dir: &Path,
    prefix: &str,
    port: u16,
) -> Result<Launch, String> {
    let health = spec.health_path.clone();
    let port_s = port.to_string();
    let explicit = match &spec.command {
        Command::Empty => None,
        Command::Args(a) if a.is_empty() => None,
        Command::Args(a) => Some(a.clone()),
        Command::Shell(s) => Some(vec!["sh".into(), "-c".into(), s.clone()]),
    };
    let find = |names: &[&str]| {
        names
            .iter()
            .find(|n| dir.join(n).is_file())
            .map(|n| n.to_string())
    };
    let (argv, env, default_health) = match spec.framework.as_str() {
        "command" => (
            explicit
                .clone()
                .ok_or("framework `command` needs `command`")?,
            vec![],
            "/".to_string(),
        ),
        "flask" => {
            let app = find(&["app.py", "wsgi.py", "main.py"])
                .ok_or("no app.py, wsgi.py or main.py for flask")?;
            (
                vec![
                    "python3".into(),
                    "-m".into(),
                    "flask".into(),
                    "--app".into(),
                    app,
                    "run".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port_s.clone(),
                ],
                vec![("SCRIPT_NAME".into(), prefix.to_string())],
                "/".to_string(),
            )
        }
        "streamlit" => {
            let app = find(&["app.py", "streamlit_app.py", "main.py"])
                .ok_or("no app.py or streamlit_app.py for streamlit")?;
            (
                vec![
                    "python3".into(),
                    "-m".into(),
                    "streamlit".into(),
                    "run".into(),
                    app,
                    "--server.port".into(),
                    port_s.clone(),
                    "--server.address".into(),
                    "127.0.0.1".into(),
                    "--server.headless".into(),
                    "true".into(),
                    "--server.baseUrlPath".into(),
                    prefix.trim_start_matches('/').to_string(),
                    "--browser.gatherUsageStats".into(),
                    "false".into(),
                ],
                vec![],
                "/healthz".to_string(),
            )
        }
        "shiny" => {
            if let Some(app) = find(&["app.py"]) {
                (
                    vec![
                        "python3".into(),
                        "-m".into(),
                        "shiny".into(),
                        "run".into(),
                        "--host".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port_s.clone(),
                        app,
                    ],
                    vec![],
                    "/".to_string(),
                )
            } else if find(&["app.R", "server.R"]).is_some() {
                (
                    vec![
                        "Rscript".into(),
                        "-e".into(),
                        format!(
                            "shiny::runApp('.', host = '127.0.0.1', port = {port}L, launch.browser = FALSE)"
                        ),
                    ],
                    vec![],
                    "/".to_string(),
                )
            } else {
                return Err("no app.py, app.R or server.R for shiny".into());
            }
        }
        other => {
            return Err(format!(
                "framework `{other}` is an app-framework plugin; plugins are not supported by this runtime yet"
            ));
        }
    };
    let argv = explicit
        .filter(|_| spec.framework != "command")
        .unwrap_or(argv);
    Ok(Launch {
        argv,
        env,
        health_path: health.unwrap_or(default_health),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(framework: &str, command: Command) -> ApplicationSpec {
        ApplicationSpec {
            description: None,
            framework: framework.into(),
            path: "app".parse().unwrap(),
            command,
            env: Default::default(),
            environment: None,
            replicas: 1,
            resources: None,
            pool: None,
            health_path: None,
            restart: Default::default(),
        }
    }

    #[test]
    fn plugin_plans_expand_port_and_prefix() {
        let plan = LaunchPlan::Plugin {
            command: vec![
                "serve".into(),
                "--port=$(PORT)".into(),
                "$(URL_PREFIX)".into(),
            ],
            env: vec![("BASE".into(), "$(URL_PREFIX)/".into())],
            health_path: "/health".into(),
        };
        let l = plan
            .launch(
                &spec("x", Command::Empty),
                Path::new("."),
                "/apps/demo",
                8123,
            )
            .unwrap();
        assert_eq!(l.argv, ["serve", "--port=8123", "/apps/demo"]);
        assert_eq!(l.env, [("BASE".to_string(), "/apps/demo/".to_string())]);
        assert_eq!(l.health_path, "/health");
        let mut with_health = spec("x", Command::Empty);
        with_health.health_path = Some("/ok".into());
        assert_eq!(
            plan.launch(&with_health, Path::new("."), "/a", 1)
                .unwrap()
                .health_path,
            "/ok"
        );
    }

    #[test]
    fn resolves_frameworks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        let l = launch(
            &spec("streamlit", Command::Empty),
            dir.path(),
            "/apps/demo",
            8123,
        )
        .unwrap();
        assert!(l.argv.contains(&"8123".to_string()));
        assert!(l.argv.contains(&"apps/demo".to_string()));
        assert_eq!(l.health_path, "/healthz");
        let l = launch(&spec("flask", Command::Empty), dir.path(), "/apps/demo", 1).unwrap();
        assert_eq!(&l.argv[..3], ["python3", "-m", "flask"]);
        let l = launch(
            &spec("command", Command::Shell("./serve".into())),
            dir.path(),
            "/apps/x",
            1,
        )
        .unwrap();
        assert_eq!(l.argv, ["sh", "-c", "./serve"]);
        assert!(launch(&spec("command", Command::Empty), dir.path(), "/apps/x", 1).is_err());
        assert!(
            launch(
                &spec("flask", Command::Empty),
                Path::new("/nonexistent"),
                "/apps/x",
                1
            )
            .is_err()
        );
    }
}
