//! The `app-framework` world: an application's files → a launch command.

use super::Config;
use crate::bindings::apps as wit;
use crate::host::{HostState, Plugin, PluginError, check_output};
use std::path::Path;
use wasmtime::Store;

pub use wit::exports::cairn::plugin::apps::{App, AppFile, LaunchSpec};

/// Files larger than this are passed without their text.
const MAX_TEXT_BYTES: u64 = 64 << 10;
/// At most this many files of the application's directory are passed.
const MAX_FILES: usize = 1000;

/// An app-framework plugin. Each call runs in a fresh instance.
#[derive(Clone)]
pub struct FrameworkPlugin {
    plugin: Plugin,
    pre: wit::AppFrameworkPre<HostState>,
}

impl FrameworkPlugin {
    /// Checks that `plugin` implements the world.
    pub fn new(plugin: Plugin) -> Result<FrameworkPlugin, PluginError> {
        let pre = plugin
            .linker
            .instantiate_pre(&plugin.component)
            .and_then(wit::AppFrameworkPre::new)
            .map_err(|e| PluginError::WrongWorld {
                world: "app-framework",
                message: format!("{e:#}"),
            })?;
        Ok(FrameworkPlugin { plugin, pre })
    }

    fn instance(&self) -> Result<(Store<HostState>, wit::AppFramework), PluginError> {
        let mut store = self.plugin.store();
        let instance = self.plugin.call(&mut store, |s| self.pre.instantiate(s))?;
        Ok((store, instance))
    }

    /// Whether the framework can launch the application.
    pub fn detect(&self, config: &Config, app: &App) -> Result<bool, PluginError> {
        let (mut store, instance) = self.instance()?;
        self.plugin.call(&mut store, |s| {
            instance.cairn_plugin_apps().call_detect(s, config, app)
        })
    }

    /// The launch command of the application.
    pub fn launch(&self, config: &Config, app: &App) -> Result<LaunchSpec, PluginError> {
        let (mut store, instance) = self.instance()?;
        let launch = self
            .plugin
            .call(&mut store, |s| {
                instance.cairn_plugin_apps().call_launch(s, config, app)
            })?
            .map_err(PluginError::Failed)?;
        let size = launch.command.iter().map(String::len).sum::<usize>()
            + launch
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + launch.health_path.len();
        check_output(size)?;
        Ok(launch)
    }
}

/// The files at the top of `dir` (sorted by name), with the text of small
/// UTF-8 files.
pub fn app_files(dir: &Path) -> std::io::Result<Vec<AppFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let path = entry.file_name().to_string_lossy().into_owned();
        let text = if meta.len() <= MAX_TEXT_BYTES {
            std::fs::read(entry.path())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        } else {
            None
        };
        files.push(AppFile {
            path,
            size: meta.len(),
            text,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.truncate(MAX_FILES);
    Ok(files)
}
