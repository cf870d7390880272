//! Bundles the built-in plugins (`plugins/dist/NAME.wasm`) that exist at
//! build time; a missing one is reported when a spec asks for it.

use std::path::Path;

const BUILTINS: [&str; 8] = [
    "drift-psi",
    "drift-ks",
    "drift-chi2",
    "prediction-value",
    "flask",
    "shiny",
    "streamlit",
    "linear-model",
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let dist = Path::new(&manifest).join("../../plugins/dist");
    // A path that does not exist would rerun this script on every build:
    // watch the nearest existing folder instead.
    let watched = if dist.is_dir() {
        dist.clone()
    } else {
        dist.parent().expect("inside plugins/").to_path_buf()
    };
    println!("cargo:rerun-if-changed={}", watched.display());
    let mut code = String::from(
        "/// The built-in plugins bundled into this build.\npub const BUNDLED: &[(&str, Option<&[u8]>)] = &[\n",
    );
    for name in BUILTINS {
        let file = dist.join(format!("{name}.wasm"));
        if file.is_file() {
            println!("cargo:rerun-if-changed={}", file.display());
            let path = file.canonicalize().expect("readable path");
            code.push_str(&format!(
                "    ({name:?}, Some(include_bytes!({:?}))),\n",
                path.display().to_string()
            ));
        } else {
            code.push_str(&format!("    ({name:?}, None),\n"));
        }
    }
    code.push_str("];\n");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("builtin_plugins.rs");
    std::fs::write(out, code).expect("write builtin_plugins.rs");
}
