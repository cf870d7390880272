//! `cargo xtask plugins`: builds the WebAssembly plugins under `plugins/`
//! into components in `plugins/dist/` (test-only plugins in
//! `plugins/dist/test/`) and writes `plugins/dist/SHA256SUMS`.
//!
//! `cargo xtask plugin new NAME --world WORLD` scaffolds a plugin crate,
//! inside `plugins/` (a member of its workspace) or anywhere else (a
//! standalone crate that depends on this checkout's SDK).
//!
//! The plugins compile for `wasm32-unknown-unknown` with rustup's target
//! when it is installed, and otherwise with Debian's `rustc-web` toolchain
//! (`-Zbuild-std` over `rust-web-src`, linked by `wasm-ld-16`). The core
//! module is then wrapped into a component by `wit-component`, from the
//! component-type sections that `wit-bindgen` embedded in it.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
/// Debian's wasm linker (package `lld-16`).
const DEBIAN_LINKER: &str = "wasm-ld-16";
/// Debian's Rust compiler for WebAssembly (package `rustc-web`).
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// What the host offers a plugin to import.
const HOST_INTERFACES: [&str; 2] = ["cairn:plugin/types@0.1.0", "cairn:plugin/log@0.1.0"];
const DEBIAN_PACKAGES: &str = "rustc-web cargo-web rust-web-src lld-16 wasi-libc";

/// One plugin crate of the `plugins/` workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The package name, e.g. `drift-psi`.
    pub name: String,
    /// The name of the core module cargo writes (`drift_psi.wasm`).
    pub artifact: String,
    /// Whether it is a test plugin (built into `dist/test/`).
    pub test_only: bool,
}

impl Plugin {
    /// Where its component goes, relative to `plugins/dist/`.
    pub fn dist_path(&self) -> PathBuf {
        let file = format!("{}.wasm", self.name);
        if self.test_only {
            Path::new("test").join(file)
        } else {
            PathBuf::from(file)
        }
    }
}

/// How the plugins are compiled to WebAssembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's toolchain with the `wasm32-unknown-unknown` target.
    Rustup,
    /// Debian's `rustc-web`, building the standard library from source.
    Debian,
}

/// The `plugins/` workspace.
pub fn plugins_dir() -> PathBuf {
    crate::root().join("plugins")
}

/// Builds the named plugins (all when `names` is empty) of the workspace or
/// crate at `manifest` (default `plugins/Cargo.toml`) into components in
/// its `dist/` folder.
pub fn build(manifest: Option<&Path>, names: &[String]) -> Result<()> {
    build_into(manifest, names, None)
}

/// [`build`] with the cargo target folder `target` (default: the
/// workspace's own `target/`).
pub fn build_into(manifest: Option<&Path>, names: &[String], target: Option<&Path>) -> Result<()> {
    let dir = match manifest {
        None => plugins_dir(),
        Some(m) => {
            let m = m
                .canonicalize()
                .with_context(|| format!("no manifest at {}", m.display()))?;
            m.parent().expect("a file has a parent").to_path_buf()
        }
    };
    let all = discover(&dir)?;
    let selected: Vec<Plugin> = if names.is_empty() {
        all.clone()
    } else {
        names
            .iter()
            .map(|n| {
                all.iter().find(|p| &p.name == n).cloned().with_context(|| {
                    format!(
                        "no plugin `{n}` in plugins/ (plugins: {})",
                        all.iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    if selected.is_empty() {
        bail!("no plugin crates (cdylib) in {}", dir.display());
    }
    let toolchain = detect_toolchain()?;
    println!(
        "building {} plugin(s) with {}",
        selected.len(),
        match toolchain {
            Toolchain::Rustup => "rustup's wasm32-unknown-unknown target",
            Toolchain::Debian => "Debian's rustc-web (-Zbuild-std)",
        }
    );
    let target = target.map_or_else(|| dir.join("target"), Path::to_path_buf);
    compile(&dir, &target, &selected, toolchain)?;
    let dist = dir.join("dist");
    for plugin in &selected {
        let core_path = target.join(TARGET).join("release").join(&plugin.artifact);
        let core = std::fs::read(&core_path)
            .with_context(|| format!("reading {}", core_path.display()))?;
        let component = componentize(&core)
            .with_context(|| format!("turning {} into a component", plugin.name))?;
        if let Some(foreign) = imports(&component)?
            .into_iter()
            .find(|i| !HOST_INTERFACES.contains(&i.as_str()))
        {
            bail!(
                "{} imports `{foreign}`, which the host does not offer (only {})",
                plugin.name,
                HOST_INTERFACES.join(", ")
            );
        }
        let out = dist.join(plugin.dist_path());
        std::fs::create_dir_all(out.parent().expect("dist path has a parent"))?;
        std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "  dist/{:<28} {:>8.1} KiB (core module {:.1} KiB)  exports {}",
            plugin.dist_path().display(),
            component.len() as f64 / 1024.0,
            core.len() as f64 / 1024.0,
            exports(&component)?.join(", ")
        );
    }
    let sums = sha256sums(&dist)?;
    std::fs::write(dist.join("SHA256SUMS"), sums)?;
    println!("wrote {}", dist.join("SHA256SUMS").display());
    Ok(())
}

/// Wraps a core module built with `wit-bindgen` into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)?
        .validate(true)
        .encode()
}

/// The interfaces a component exports, e.g. `cairn:plugin/drift@0.1.0`.
pub fn exports(component: &[u8]) -> Result<Vec<String>> {
    let wit_component::DecodedWasm::Component(resolve, world) = wit_component::decode(component)?
    else {
        bail!("not a component");
    };
    Ok(resolve.worlds[world]
        .exports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect())
}

/// The interfaces a component imports.
pub fn imports(component: &[u8]) -> Result<Vec<String>> {
    let wit_component::DecodedWasm::Component(resolve, world) = wit_component::decode(component)?
    else {
        bail!("not a component");
    };
    Ok(resolve.worlds[world]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect())
}

/// The plugin crates of a workspace: its members with a `cdylib` target.
/// A package with `[package.metadata.cairn] test-only = true` is a test
/// plugin.
pub fn discover(dir: &Path) -> Result<Vec<Plugin>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed for {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut plugins = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let is_cdylib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == "cdylib"))
            });
        if !is_cdylib {
            continue;
        }
        let name = package["name"].as_str().context("package without a name")?;
        plugins.push(Plugin {
            name: name.to_string(),
            artifact: format!("{}.wasm", name.replace('-', "_")),
            test_only: package["metadata"]["cairn"]["test-only"].as_bool() == Some(true),
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

/// rustup's target when installed, else Debian's toolchain, else an error
/// that says what to install. `CAIRN_WASM_TOOLCHAIN=rustup|debian` forces
/// one.
pub fn detect_toolchain() -> Result<Toolchain> {
    match std::env::var("CAIRN_WASM_TOOLCHAIN").as_deref() {
        Ok("rustup") => return Ok(Toolchain::Rustup),
        Ok("debian") => return Ok(Toolchain::Debian),
        Ok(other) => bail!("CAIRN_WASM_TOOLCHAIN must be `rustup` or `debian`, not `{other}`"),
        Err(_) => {}
    }
    let rustup_has_target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(plugins_dir())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == TARGET)
        });
    if rustup_has_target {
        return Ok(Toolchain::Rustup);
    }
    let debian_ready = Path::new(DEBIAN_RUSTC).is_file()
        && Path::new(DEBIAN_CARGO).is_file()
        && debian_library_source().is_some_and(|p| p.is_dir())
        && Command::new(DEBIAN_LINKER)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if debian_ready {
        return Ok(Toolchain::Debian);
    }
    bail!(
        "no Rust toolchain for {TARGET}: run `rustup target add {TARGET}`, \
         or on Debian/Ubuntu `apt-get install {DEBIAN_PACKAGES}`"
    )
}

/// The standard library's source that `-Zbuild-std` compiles (package
/// `rust-web-src`).
fn debian_library_source() -> Option<PathBuf> {
    let out = Command::new(DEBIAN_RUSTC)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    Some(Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library"))
}

fn compile(dir: &Path, target: &Path, plugins: &[Plugin], toolchain: Toolchain) -> Result<()> {
    let mut cmd = match toolchain {
        Toolchain::Rustup => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["build", "--release", "--target", TARGET]);
            c
        }
        Toolchain::Debian => {
            let mut c = Command::new(DEBIAN_CARGO);
            c.args([
                "build",
                "--release",
                "--target",
                TARGET,
                "-Zbuild-std=std,panic_abort",
            ]);
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("/usr/bin:{path}"))
                .env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", DEBIAN_LINKER)
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("RUSTDOC")
                .env_remove("LD_LIBRARY_PATH");
            c
        }
    };
    cmd.current_dir(dir)
        .arg("--target-dir")
        .arg(target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER");
    for p in plugins {
        cmd.args(["-p", &p.name]);
    }
    let status = cmd
        .status()
        .context("running cargo build for the plugins")?;
    if !status.success() {
        bail!("building the plugins failed ({status})");
    }
    Ok(())
}

/// `sha256sum`-style lines (`HEX  PATH`) for every component under `dist`,
/// sorted by path.
pub fn sha256sums(dist: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_wasm(dist, dist, &mut files)?;
    files.sort();
    let mut out = String::new();
    for rel in files {
        let bytes = std::fs::read(dist.join(&rel))?;
        out.push_str(&format!("{}  {rel}\n", hex::encode(Sha256::digest(&bytes))));
    }
    Ok(out)
}

fn collect_wasm(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_wasm(base, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "wasm") {
            let rel = path.strip_prefix(base).expect("under base");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The worlds of `cairn:plugin@0.1.0` a plugin can implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum World {
    /// Fit a reference, score windows of model inputs.
    DriftDetector,
    /// Metrics from inference events.
    BusinessMetric,
    /// Launch commands for applications.
    AppFramework,
    /// `runtime: wasm` models.
    Model,
}

impl World {
    /// The world's WIT name.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::DriftDetector => "drift-detector",
            World::BusinessMetric => "business-metric",
            World::AppFramework => "app-framework",
            World::Model => "model",
        }
    }

    /// The interface a component of this world exports.
    pub fn export(self) -> &'static str {
        match self {
            World::DriftDetector => "cairn:plugin/drift@0.1.0",
            World::BusinessMetric => "cairn:plugin/metrics@0.1.0",
            World::AppFramework => "cairn:plugin/apps@0.1.0",
            World::Model => "cairn:plugin/inference@0.1.0",
        }
    }

    fn template(self) -> &'static str {
        match self {
            World::DriftDetector => include_str!("../templates/plugin/drift-detector.rs"),
            World::BusinessMetric => include_str!("../templates/plugin/business-metric.rs"),
            World::AppFramework => include_str!("../templates/plugin/app-framework.rs"),
            World::Model => include_str!("../templates/plugin/model.rs"),
        }
    }
}

/// Scaffolds plugin `name` of `world` in `dir` (default `plugins/NAME`, added
/// to the plugins workspace) and returns the crate's directory.
pub fn new_plugin(name: &str, world: World, dir: Option<&Path>) -> Result<PathBuf> {
    check_name(name)?;
    let plugins = plugins_dir();
    let dest = dir.map_or_else(|| plugins.join(name), Path::to_path_buf);
    if dest.exists() && std::fs::read_dir(&dest)?.next().is_some() {
        bail!("{} already exists and is not empty", dest.display());
    }
    std::fs::create_dir_all(dest.join("src"))?;
    let dest = dest.canonicalize()?;
    let inside = dest.parent() == Some(plugins.canonicalize()?.as_path());
    let snake = name.replace('-', "_");
    let manifest = if inside {
        format!("plugins/{name}/Cargo.toml")
    } else {
        dest.join("Cargo.toml").display().to_string()
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{snake}}", &snake)
            .replace("{{world}}", world.wit_name())
            .replace("{{manifest}}", &manifest)
    };
    let sdk = plugins.join("sdk").canonicalize()?;
    std::fs::write(
        dest.join("Cargo.toml"),
        cargo_toml(name, world, inside, &sdk),
    )?;
    std::fs::write(dest.join("src/lib.rs"), fill(world.template()))?;
    std::fs::write(
        dest.join("README.md"),
        fill(include_str!("../templates/plugin/README.md")),
    )?;
    if inside {
        let path = plugins.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, with_member(&text, name)?)?;
    } else {
        std::fs::write(dest.join(".gitignore"), "target/\n")?;
    }
    println!(
        "created {} (world {}, exports {})",
        dest.display(),
        world.wit_name(),
        world.export()
    );
    println!("  test:  cargo test --manifest-path {manifest}");
    if inside {
        println!("  build: cargo xtask plugins {name}");
    } else {
        println!("  build: cargo xtask plugins --manifest-path {manifest}");
    }
    Ok(dest)
}

/// A plugin's name: a DNS-1123 label, like every Cairn name.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "`{name}` is not a valid plugin name: use lowercase letters, digits and `-`, \
             starting with a letter (at most 63 characters)"
        );
    }
    Ok(())
}

fn cargo_toml(name: &str, world: World, inside: bool, sdk: &Path) -> String {
    let serde = if world == World::DriftDetector {
        if inside {
            "serde.workspace = true\n".to_string()
        } else {
            "serde = { version = \"1\", features = [\"derive\"] }\n".to_string()
        }
    } else {
        String::new()
    };
    let description = format!("Cairn plugin ({} world)", world.wit_name());
    if inside {
        return format!(
            r#"[package]
name = "{name}"
description = "{description}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
repository.workspace = true
publish.workspace = true

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
cairn-plugin-sdk.workspace = true
{serde}"#
        );
    }
    format!(
        r#"[package]
name = "{name}"
description = "{description}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The SDK of the Cairn checkout that created this crate; a git dependency
# works as well: {{ git = "https://github.com/cairn-ml/cairn" }}.
cairn-plugin-sdk = {{ path = "{sdk}" }}
{serde}
# A crate of its own, not a member of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
        sdk = sdk.display()
    )
}

/// The plugins workspace manifest with `member` added to its members.
pub fn with_member(manifest: &str, member: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = manifest.parse()?;
    let members = doc["workspace"]["members"]
        .as_array_mut()
        .context("plugins/Cargo.toml has no workspace.members list")?;
    if !members.iter().any(|m| m.as_str() == Some(member)) {
        members.push(member);
        let mut sorted: Vec<String> = members
            .iter()
            .filter_map(|m| m.as_str().map(String::from))
            .collect();
        sorted.sort();
        members.clear();
        for m in sorted {
            members.push_formatted(toml_edit::Value::from(m).decorated("\n    ", ""));
        }
        members.set_trailing("\n");
        members.set_trailing_comma(true);
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_components_implement_their_worlds() {
        let dist = plugins_dir().join("dist");
        let expected = [
            ("drift-psi.wasm", World::DriftDetector),
            ("drift-ks.wasm", World::DriftDetector),
            ("drift-chi2.wasm", World::DriftDetector),
            ("prediction-value.wasm", World::BusinessMetric),
            ("flask.wasm", World::AppFramework),
            ("shiny.wasm", World::AppFramework),
            ("streamlit.wasm", World::AppFramework),
            ("linear-model.wasm", World::Model),
            ("test/hostile-drift.wasm", World::DriftDetector),
            ("test/hostile-model.wasm", World::Model),
        ];
        let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
        for (file, world) in expected {
            let bytes = std::fs::read(dist.join(file)).unwrap();
            assert_eq!(exports(&bytes).unwrap(), [world.export()], "{file}");
            // No ambient authority: nothing but Cairn's own interfaces.
            for import in imports(&bytes).unwrap() {
                assert!(
                    ["cairn:plugin/types@0.1.0", "cairn:plugin/log@0.1.0"]
                        .contains(&import.as_str()),
                    "{file} imports {import}"
                );
            }
            let line = format!("{}  {file}", hex::encode(Sha256::digest(&bytes)));
            assert!(sums.lines().any(|l| l == line), "SHA256SUMS lacks `{line}`");
        }
        assert_eq!(sums, sha256sums(&dist).unwrap(), "SHA256SUMS is stale");
    }

    #[test]
    fn members_are_added_once_and_sorted() {
        let text =
            "[workspace]\nresolver = \"3\"\nmembers = [\n    \"sdk\",\n    \"drift-psi\",\n]\n";
        let out = with_member(text, "my-plugin").unwrap();
        assert_eq!(
            out,
            "[workspace]\nresolver = \"3\"\nmembers = [\n    \"drift-psi\",\n    \"my-plugin\",\n    \"sdk\",\n]\n"
        );
        assert_eq!(with_member(&out, "my-plugin").unwrap(), out);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("drift-mine2").is_ok());
        for bad in ["", "Drift", "2drift", "drift-", "drift_mine"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("not a valid plugin name"), "{e}");
        }
    }

    fn cargo(args: &[&str], target: &Path) -> std::process::Output {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .env("CARGO_TARGET_DIR", target)
            .output()
            .unwrap()
    }

    /// Every world's scaffold is a crate whose own tests pass natively, and
    /// one of them builds into a component exporting its world.
    #[test]
    fn scaffolds_build_and_pass_their_tests() {
        let tmp = tempfile::tempdir().unwrap();
        // The plugins workspace's target folder: the SDK's dependencies (and
        // the standard library built for wasm32) are usually there already.
        let target = plugins_dir().join("target");
        let worlds = [
            World::DriftDetector,
            World::BusinessMetric,
            World::AppFramework,
            World::Model,
        ];
        for world in worlds {
            let name = format!("my-{}", world.wit_name());
            let dir = new_plugin(&name, world, Some(&tmp.path().join(&name))).unwrap();
            let manifest = dir.join("Cargo.toml");
            let out = cargo(
                &[
                    "test",
                    "--quiet",
                    "--manifest-path",
                    manifest.to_str().unwrap(),
                ],
                &target,
            );
            assert!(
                out.status.success(),
                "{name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let e =
            new_plugin("my-model", World::Model, Some(&tmp.path().join("my-model"))).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        if let Err(e) = detect_toolchain() {
            eprintln!("not building a component: {e}");
            return;
        }
        let manifest = tmp.path().join("my-drift-detector/Cargo.toml");
        build_into(Some(&manifest), &[], Some(&target)).unwrap();
        let component = std::fs::read(
            tmp.path()
                .join("my-drift-detector/dist/my-drift-detector.wasm"),
        )
        .unwrap();
        assert_eq!(
            exports(&component).unwrap(),
            [World::DriftDetector.export()]
        );
    }
}
