//! The plugins shipped with Cairn (`builtin:` in a Plugin spec), bundled
//! into the binary from `plugins/dist/` at build time.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The component of built-in plugin `name`, if this build bundles it.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, b)| *b)
}
