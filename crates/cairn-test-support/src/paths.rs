//! Where things are: the workspace, the quickstart's files, fixtures, plugin
//! components and the `cairn` binary, as absolute paths.

use std::path::{Path, PathBuf};

/// A path in the workspace, absolute, as a `&'static str`.
macro_rules! workspace_path {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path)
    };
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("this crate lies in crates/ of the workspace")
        .to_path_buf()
}

/// The files of one case under this crate's `fixtures/` (`drift`, `models`,
/// `valid`, `lab`, `vision`, ...).
pub fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

/// A plugin component built by `cargo xtask plugins` (`plugins/dist/NAME.wasm`).
pub fn plugin_dist(name: &str) -> PathBuf {
    workspace_root().join(format!("plugins/dist/{name}.wasm"))
}

/// The `cairn` binary under test: `CARGO_BIN_EXE_cairn` where cargo sets it
/// at run time, else `cairn` beside the running test executable's `deps/`
/// (`target/debug/`), else the workspace's `target/debug/cairn`.
pub fn cairn_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_cairn") {
        return path.into();
    }
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?;
        let dir = if dir.ends_with("deps") {
            dir.parent()?
        } else {
            dir
        };
        Some(dir.join(format!("cairn{}", std::env::consts::EXE_SUFFIX)))
    });
    match beside {
        Some(path) if path.is_file() => path,
        _ => workspace_root().join("target/debug/cairn"),
    }
}

/// The quickstart example (`examples/quickstart`), absolute.
pub const QUICKSTART: &str = workspace_path!("examples/quickstart");
/// The quickstart's classifier (ONNX), absolute.
pub const CLASSIFIER: &str = workspace_path!("examples/quickstart/models/classifier.onnx");
/// The quickstart's sample request (one row), absolute.
pub const SAMPLE_REQUEST: &str = workspace_path!("examples/quickstart/data/sample-request.json");
/// The quickstart's sample batch, absolute.
pub const SAMPLE_BATCH: &str = workspace_path!("examples/quickstart/data/sample-batch.json");
/// The quickstart's reference data for drift, absolute.
pub const REFERENCE_CSV: &str = workspace_path!("examples/quickstart/data/reference.csv");

/// The quickstart classifier with its coefficients scaled by 1.01 (fixture
/// `models`): the same answers on the sample rows, another digest.
pub const RETRAINED_CLASSIFIER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/models/classifier-retrained.onnx"
);
/// The quickstart classifier with every label flipped (fixture `models`).
pub const INVERTED_CLASSIFIER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/models/classifier-inverted.onnx"
);
