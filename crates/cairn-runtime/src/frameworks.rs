//! How applications are launched on this machine: the `command` framework
//! natively, every other framework from its app-framework plugin's answer
//! (the built-in `flask`, `shiny` and `streamlit` plugins, or the project's
//! own), expanded per replica.

use cairn_spec::{ApplicationSpec, Command};
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
                let argv = crate::expand_args(command, &vars);
                if argv.is_empty() {
                    return Err("the framework plugin returned an empty command".into());
                }
                let (keys, values): (Vec<String>, Vec<String>) = env.iter().cloned().unzip();
                let env = keys
                    .into_iter()
                    .zip(crate::expand_args(&values, &vars))
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

/// The launch of a `command` application: its `command` as is (`$PORT`
/// is given in the environment). `dir`, `prefix` and `port` are those of
/// [`LaunchPlan::launch`]; other frameworks are launched by their plugin.
pub fn launch(
    spec: &ApplicationSpec,
    _dir: &Path,
    _prefix: &str,
    _port: u16,
) -> Result<Launch, String> {
    if spec.framework != "command" {
        return Err(format!(
            "framework `{}` is launched by its app-framework plugin",
            spec.framework
        ));
    }
    let argv = match &spec.command {
        Command::Empty => None,
        Command::Args(a) if a.is_empty() => None,
        Command::Args(a) => Some(a.clone()),
        Command::Shell(s) => Some(vec!["sh".into(), "-c".into(), s.clone()]),
    }
    .ok_or("framework `command` needs `command`")?;
    Ok(Launch {
        argv,
        env: Vec::new(),
        health_path: spec.health_path.clone().unwrap_or_else(|| "/".into()),
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
    fn resolves_the_command_framework() {
        let dir = tempfile::tempdir().unwrap();
        let l = launch(
            &spec("command", Command::Shell("./serve".into())),
            dir.path(),
            "/apps/x",
            1,
        )
        .unwrap();
        assert_eq!(l.argv, ["sh", "-c", "./serve"]);
        assert_eq!(l.health_path, "/");
        assert!(launch(&spec("command", Command::Empty), dir.path(), "/apps/x", 1).is_err());
        let err = launch(&spec("flask", Command::Empty), dir.path(), "/apps/x", 1).unwrap_err();
        assert!(err.contains("plugin"), "{err}");
    }
}
