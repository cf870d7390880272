//! `cargo xtask plugins`: builds the WebAssembly plugins under `plugins/`
//! into components in `plugins/dist/` (test-only plugins in
//! `plugins/dist/test/`) and writes `plugins/dist/SHA256SUMS`.
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

/// Builds the named plugins (all when `names` is empty) into components.
pub fn build(names: &[String]) -> Result<()> {
    let dir = plugins_dir();
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
    compile(&dir, &selected, toolchain)?;
    let dist = dir.join("dist");
    for plugin in &selected {
        let core_path = dir
            .join("target")
            .join(TARGET)
            .join("release")
            .join(&plugin.artifact);
        let core = std::fs::read(&core_path)
            .with_context(|| format!("reading {}", core_path.display()))?;
        let component = componentize(&core)
            .with_context(|| format!("turning {} into a component", plugin.name))?;
        let out = dist.join(plugin.dist_path());
        std::fs::create_dir_all(out.parent().expect("dist path has a parent"))?;
        std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "  dist/{:<28} {:>8.1} KiB (core module {:.1} KiB)",
            plugin.dist_path().display(),
            component.len() as f64 / 1024.0,
            core.len() as f64 / 1024.0
        );
    }
    let sums = sha256sums(&dist)?;
    std::fs::write(dist.join("SHA256SUMS"), sums)?;
    println!("wrote plugins/dist/SHA256SUMS");
    Ok(())
}

/// Wraps a core module built with `wit-bindgen` into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)?
        .validate(true)
        .encode()
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

fn compile(dir: &Path, plugins: &[Plugin], toolchain: Toolchain) -> Result<()> {
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
        .arg(dir.join("target"))
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
