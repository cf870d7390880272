//! Messages to the controller's log, tagged with the plugin's name. Outside
//! WebAssembly (in a plugin's native unit tests) they go to standard error.

use std::fmt;

/// How important a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail for whoever debugs the plugin.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong but the call goes on.
    Warn,
    /// The call fails.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Logs one message. The host truncates long messages.
pub fn log(level: Level, message: &str) {
    sink(level, message);
}

/// Logs a debug message.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Logs an informational message.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// Logs a warning.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// Logs an error.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}

#[cfg(target_arch = "wasm32")]
fn sink(level: Level, message: &str) {
    // Every world imports the same `cairn:plugin/log` interface.
    crate::drift::host_log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
fn sink(level: Level, message: &str) {
    eprintln!("[{level}] {message}");
}
