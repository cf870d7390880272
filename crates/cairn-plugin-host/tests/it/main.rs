//! Integration tests of the plugin host, one binary: a module per area.

mod plugins_host;
