//! The `app-framework` world: turn an application's files and spec into the
//! command that serves it.

/// Bindings generated from `plugins/wit` for the `app-framework` world.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/app-framework",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_app_framework_world",
        runtime_path: "::cairn_plugin_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::exports::cairn::plugin::apps::{App, AppFile, LaunchSpec};

use crate::{Config, Result};

crate::config_conversion!(bindings::cairn::plugin::types);

/// The placeholder the host replaces with the replica's port, anywhere in
/// an argument or environment value.
pub const PORT: &str = "$(PORT)";
/// The placeholder the host replaces with the path the application is
/// served under (e.g. `/apps/dash`).
pub const URL_PREFIX: &str = "$(URL_PREFIX)";

/// An application framework.
pub trait AppFramework {
    /// Whether this framework can launch the application (e.g. it has an
    /// `app.py`).
    fn detect(config: &Config, app: &App) -> bool;

    /// How to start one replica, or why it cannot be started.
    fn launch(config: &Config, app: &App) -> Result<LaunchSpec>;
}

impl App {
    /// The first of `names` that is a file at the top of the application's
    /// directory.
    pub fn find_file<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names
            .iter()
            .find(|n| self.files.iter().any(|f| f.path == **n))
            .copied()
    }

    /// The file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<&AppFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

#[doc(hidden)]
pub fn __detect<T: AppFramework>(config: Vec<(String, ConfigValueWit)>, app: App) -> bool {
    T::detect(&config_from_wit(config), &app)
}

#[doc(hidden)]
pub fn __launch<T: AppFramework>(
    config: Vec<(String, ConfigValueWit)>,
    app: App,
) -> std::result::Result<LaunchSpec, String> {
    T::launch(&config_from_wit(config), &app).map_err(String::from)
}

/// Exports an [`AppFramework`] as the component's `apps` interface.
///
/// ```ignore
/// cairn_plugin_sdk::export_app_framework!(MyFramework);
/// ```
#[macro_export]
macro_rules! export_app_framework {
    ($framework:ty) => {
        const _: () = {
            struct __CairnAppsExport;
            impl $crate::apps::bindings::exports::cairn::plugin::apps::Guest for __CairnAppsExport {
                fn detect(
                    config: $crate::apps::bindings::cairn::plugin::types::Config,
                    app: $crate::apps::App,
                ) -> bool {
                    $crate::apps::__detect::<$framework>(config, app)
                }
                fn launch(
                    config: $crate::apps::bindings::cairn::plugin::types::Config,
                    app: $crate::apps::App,
                ) -> ::std::result::Result<$crate::apps::LaunchSpec, ::std::string::String> {
                    $crate::apps::__launch::<$framework>(config, app)
                }
            }
            $crate::apps::bindings::__export_app_framework_world!(__CairnAppsExport with_types_in $crate::apps::bindings);
        };
    };
}
