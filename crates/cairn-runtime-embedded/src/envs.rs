//! Python environments for workloads: one virtual environment per distinct
//! (interpreter, requirements), built once with `uv` when it is on `PATH`
//! (`python -m venv` and pip otherwise), reused by every workload that needs
//! it, built by one builder at a time (a lock per environment, across
//! processes too), and garbage-collected when no workload uses it.

use cairn_spec::EnvironmentSpec;
use serde::Serialize;
use sha2::Digest;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Why an environment could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvError {
    /// No interpreter satisfies the constraint.
    #[error("no Python interpreter matches `{constraint}` (found: {found})")]
    NoInterpreter {
        /// The spec's constraint.
        constraint: String,
        /// Interpreters found.
        found: String,
    },
    /// A file named by the spec is missing from the checkout.
    #[error("{0}")]
    Missing(String),
    /// The installer failed.
    #[error("building the environment failed ({installer}); last lines of {log}:\n{tail}")]
    Build {
        /// `uv` or `pip`.
        installer: &'static str,
        /// The build log.
        log: String,
        /// Its last lines.
        tail: String,
    },
    /// Something else.
    #[error("environment: {0}")]
    Io(String),
}

/// A built environment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuiltEnv {
    /// Identity: hash of (interpreter, requirements, index).
    pub hash: String,
    /// The virtual environment's directory.
    pub dir: PathBuf,
    /// Whether this call built it (false: reused).
    pub built: bool,
    /// The installer used.
    pub installer: &'static str,
    /// How long the build took, when built.
    pub seconds: f64,
}

impl BuiltEnv {
    /// Variables that activate the environment for a process.
    pub fn activate(&self) -> Vec<(String, String)> {
        let bin = self.dir.join("bin");
        let path = match std::env::var("PATH") {
            Ok(p) if !p.is_empty() => format!("{}:{p}", bin.display()),
            _ => bin.display().to_string(),
        };
        vec![
            ("VIRTUAL_ENV".into(), self.dir.display().to_string()),
            ("PATH".into(), path),
        ]
    }
}

/// Builds and caches environments under a directory.
pub struct EnvManager {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Installer override, for tests and benchmarks (`uv` or `pip`).
    installer: Option<&'static str>,
    /// Interpreters found, by constraint (finding one runs Python).
    interpreters: Mutex<HashMap<String, Interpreter>>,
}

const OK_MARKER: &str = ".cairn-env.json";

impl EnvManager {
    /// Environments live under `root` (e.g. `DATA_DIR/envs`).
    pub fn new(root: &Path) -> Self {
        let installer = match std::env::var("CAIRN_ENV_INSTALLER").as_deref() {
            Ok("pip") => Some("pip"),
            Ok("uv") => Some("uv"),
            _ => None,
        };
        Self::with_installer(root, installer)
    }

    /// Like [`EnvManager::new`] with a fixed installer (`uv` or `pip`;
    /// `None` picks uv when it is on `PATH`).
    pub fn with_installer(root: &Path, installer: Option<&'static str>) -> Self {
        EnvManager {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
            installer,
            interpreters: Mutex::new(HashMap::new()),
        }
    }

    /// An interpreter for `constraint`, remembered once found.
    async fn interpreter(&self, constraint: Option<&str>) -> Result<Interpreter, EnvError> {
        let key = constraint.unwrap_or("").to_string();
        let known = self
            .interpreters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(i) = known.filter(|i| Path::new(&i.path).exists()) {
            return Ok(i);
        }
        let found = find_interpreter(constraint).await?;
        self.interpreters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }

    /// The build log of an environment.
    pub fn log_path(&self, hash: &str) -> PathBuf {
        self.root.join(format!("{hash}.log"))
    }

    /// The environment for `spec` (files relative to `checkout`), building
    /// it if needed. `progress` receives one-line updates.
    pub async fn ensure(
        &self,
        spec: &EnvironmentSpec,
        checkout: &Path,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<BuiltEnv, EnvError> {
        let interpreter = self.interpreter(spec.python.as_deref()).await?;
        let identity = identity(spec, checkout, &interpreter)?;
        let hash = hex::encode(&sha2::Sha256::digest(identity.as_bytes())[..10]);
        let dir = self.root.join(&hash);
        let installer = self
            .installer
            .unwrap_or(if which("uv").is_some() { "uv" } else { "pip" });
        if dir.join(OK_MARKER).exists() {
            touch(&dir);
            return Ok(BuiltEnv {
                hash,
                dir,
                built: false,
                installer,
                seconds: 0.0,
            });
        }
        // One builder per environment in this process ...
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(hash.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        std::fs::create_dir_all(&self.root).map_err(|e| EnvError::Io(e.to_string()))?;
        // ... and across processes sharing the data directory.
        let lock_file = self.root.join(format!("{hash}.lock"));
        let _flock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_file))
            .await
            .map_err(|e| EnvError::Io(e.to_string()))?
            .map_err(|e| EnvError::Io(e.to_string()))?;
        if dir.join(OK_MARKER).exists() {
            touch(&dir);
            return Ok(BuiltEnv {
                hash,
                dir,
                built: false,
                installer,
                seconds: 0.0,
            });
        }
        let started = Instant::now();
        progress(&format!(
            "building environment {hash} with {installer} ({})",
            interpreter.version
        ));
        let log = self.log_path(&hash);
        let result = build(spec, checkout, &interpreter, &dir, &log, installer).await;
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let meta = serde_json::json!({
            "hash": hash,
            "python": interpreter.path,
            "version": interpreter.version,
            "installer": installer,
            "identity": identity,
            "builtAt": cairn_store::now(),
        });
        std::fs::write(dir.join(OK_MARKER), meta.to_string())
            .map_err(|e| EnvError::Io(e.to_string()))?;
        touch(&dir);
        let seconds = started.elapsed().as_secs_f64();
        progress(&format!("built environment {hash} in {seconds:.1}s"));
        Ok(BuiltEnv {
            hash,
            dir,
            built: true,
            installer,
            seconds,
        })
    }

    /// Removes environments not in `keep` that were last used longer than
    /// `grace` ago; returns the removed hashes.
    pub fn collect_garbage(&self, keep: &BTreeSet<String>, grace: Duration) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return removed;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.is_dir() || keep.contains(&name) {
                continue;
            }
            let last_used = std::fs::metadata(path.join(".last-used"))
                .or_else(|_| std::fs::metadata(&path))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if last_used < grace {
                continue;
            }
            if std::fs::remove_dir_all(&path).is_ok() {
                let _ = std::fs::remove_file(self.log_path(&name));
                let _ = std::fs::remove_file(self.root.join(format!("{name}.lock")));
                removed.push(name);
            }
        }
        removed
    }
}

/// A Python interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreter {
    /// Its path.
    pub path: String,
    /// Its version, `3.11.7`.
    pub version: String,
}

/// Finds an interpreter satisfying `constraint` (`3.11`, `3.11.*`, `>=3.10`,
/// `>=3.10,<3.13`, `==3.11.7`) among `python3` and `python3.N` on `PATH`.
pub async fn find_interpreter(constraint: Option<&str>) -> Result<Interpreter, EnvError> {
    let mut candidates = vec!["python3".to_string()];
    candidates.extend((6..=20).rev().map(|minor| format!("python3.{minor}")));
    let mut found = Vec::new();
    for name in candidates {
        let Some(path) = which(&name) else { continue };
        let output = Command::new(&path)
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
            .output()
            .await;
        let Ok(output) = output else { continue };
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if version.is_empty() {
            continue;
        }
        let ok = constraint.is_none_or(|c| version_matches(&version, c));
        found.push(version.clone());
        if ok {
            return Ok(Interpreter {
                path: path.display().to_string(),
                version,
            });
        }
    }
    found.dedup();
    Err(EnvError::NoInterpreter {
        constraint: constraint.unwrap_or("any").to_string(),
        found: if found.is_empty() {
            "none on PATH".into()
        } else {
            found.join(", ")
        },
    })
}

fn parse_version(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}

/// Whether `version` (`3.11.7`) satisfies a constraint such as `3.11`,
/// `3.11.*`, `>=3.10,<3.13` or `==3.11.7`.
pub fn version_matches(version: &str, constraint: &str) -> bool {
    let have = parse_version(version);
    constraint
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .all(|c| {
            let (op, rest) = ["==", ">=", "<=", "!=", "~=", ">", "<"]
                .iter()
                .find_map(|op| c.strip_prefix(op).map(|r| (*op, r.trim())))
                .unwrap_or(("==", c));
            let prefix = rest.trim_end_matches(".*");
            let want = parse_version(prefix);
            let cmp = |n: usize| have.iter().take(n).cmp(want.iter().take(n));
            let n = want.len();
            match op {
                "==" => cmp(n).is_eq(),
                "!=" => !cmp(n).is_eq(),
                ">=" => cmp(n.max(have.len())).is_ge() || cmp(n).is_eq(),
                "<=" => cmp(n).is_le(),
                ">" => cmp(n).is_gt(),
                "<" => cmp(n).is_lt(),
                "~=" => cmp(n).is_ge() && have.iter().take(n - 1).eq(want.iter().take(n - 1)),
                _ => false,
            }
        })
}

/// What identifies an environment: interpreter, requirements and sources.
fn identity(
    spec: &EnvironmentSpec,
    checkout: &Path,
    interpreter: &Interpreter,
) -> Result<String, EnvError> {
    let requirements =
        match &spec.requirements {
            Some(path) => {
                let full = checkout.join(path.as_str());
                Some(std::fs::read_to_string(&full).map_err(|_| {
                    EnvError::Missing(format!("requirements file `{path}` is missing"))
                })?)
            }
            None => None,
        };
    let mut links = Vec::new();
    for dir in &spec.index.find_links {
        let full = checkout.join(dir.as_str());
        let mut files: Vec<String> = std::fs::read_dir(&full)
            .map_err(|_| EnvError::Missing(format!("findLinks directory `{dir}` is missing")))?
            .flatten()
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                format!("{}:{size}", e.file_name().to_string_lossy())
            })
            .collect();
        files.sort();
        links.push((dir.to_string(), files));
    }
    Ok(serde_json::json!({
        "python": [interpreter.path, interpreter.version],
        "requirements": requirements,
        "requirementsPath": spec.requirements,
        "packages": spec.packages,
        "index": spec.index,
        "findLinks": links,
    })
    .to_string())
}

async fn build(
    spec: &EnvironmentSpec,
    checkout: &Path,
    interpreter: &Interpreter,
    dir: &Path,
    log: &Path,
    installer: &'static str,
) -> Result<(), EnvError> {
    let _ = std::fs::remove_dir_all(dir);
    let log_file = std::fs::File::create(log).map_err(|e| EnvError::Io(e.to_string()))?;
    let fail = || EnvError::Build {
        installer,
        log: log.display().to_string(),
        tail: tail(log, 20),
    };
    let run = |program: String, args: Vec<String>| {
        let log_file = log_file.try_clone();
        async move {
            let log_file = log_file.map_err(|e| EnvError::Io(e.to_string()))?;
            let err = log_file
                .try_clone()
                .map_err(|e| EnvError::Io(e.to_string()))?;
            use std::io::Write;
            let mut header = log_file
                .try_clone()
                .map_err(|e| EnvError::Io(e.to_string()))?;
            let _ = writeln!(header, "$ {program} {}", args.join(" "));
            let status = Command::new(&program)
                .args(&args)
                .current_dir(checkout)
                .stdout(log_file)
                .stderr(err)
                .stdin(std::process::Stdio::null())
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
                .env("PIP_NO_INPUT", "1")
                .status()
                .await
                .map_err(|e| EnvError::Io(format!("cannot run {program}: {e}")))?;
            Ok::<bool, EnvError>(status.success())
        }
    };
    let dir_s = dir.display().to_string();
    let python_in_env = dir.join("bin/python").display().to_string();
    let created = if installer == "uv" {
        run(
            "uv".into(),
            vec![
                "venv".into(),
                "--python".into(),
                interpreter.path.clone(),
                dir_s.clone(),
            ],
        )
        .await?
    } else {
        run(
            interpreter.path.clone(),
            vec!["-m".into(), "venv".into(), dir_s.clone()],
        )
        .await?
    };
    if !created {
        return Err(fail());
    }
    let mut install: Vec<String> = Vec::new();
    if let Some(req) = &spec.requirements {
        let full = checkout.join(req.as_str());
        if req.as_str().ends_with("pyproject.toml") {
            install.push(full.parent().unwrap_or(checkout).display().to_string());
        } else {
            install.push("-r".into());
            install.push(full.display().to_string());
        }
    }
    install.extend(spec.packages.iter().cloned());
    if install.is_empty() {
        return Ok(());
    }
    if let Some(url) = &spec.index.url {
        install.push("--index-url".into());
        install.push(url.clone());
    }
    for url in &spec.index.extra_urls {
        install.push("--extra-index-url".into());
        install.push(url.clone());
    }
    for l in &spec.index.find_links {
        install.push("--find-links".into());
        install.push(checkout.join(l.as_str()).display().to_string());
    }
    if spec.index.no_index {
        install.push("--no-index".into());
    }
    let ok = if installer == "uv" {
        let mut args = vec![
            "pip".into(),
            "install".into(),
            "--python".into(),
            python_in_env,
        ];
        args.extend(install);
        run("uv".into(), args).await?
    } else {
        let mut args = vec!["-m".into(), "pip".into(), "install".into()];
        args.extend(install);
        run(python_in_env, args).await?
    };
    if ok { Ok(()) } else { Err(fail()) }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn touch(dir: &Path) {
    let _ = std::fs::write(dir.join(".last-used"), cairn_store::now());
}

/// The first `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// An exclusive `flock` held until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking our own descriptor.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constraints() {
        assert!(version_matches("3.11.7", "3.11"));
        assert!(version_matches("3.11.7", "3.11.*"));
        assert!(!version_matches("3.12.1", "3.11"));
        assert!(version_matches("3.11.7", ">=3.10"));
        assert!(version_matches("3.10.0", ">=3.10"));
        assert!(!version_matches("3.9.18", ">=3.10"));
        assert!(version_matches("3.11.7", ">=3.10,<3.13"));
        assert!(!version_matches("3.13.0", ">=3.10,<3.13"));
        assert!(version_matches("3.11.7", "==3.11.7"));
        assert!(!version_matches("3.11.6", "==3.11.7"));
        assert!(version_matches("3.11.7", "~=3.11"));
    }

    #[tokio::test]
    async fn finds_the_machines_python() {
        let any = find_interpreter(None).await.expect("python3 on PATH");
        assert!(any.version.starts_with('3'));
        let exact = find_interpreter(Some(&any.version)).await.unwrap();
        assert_eq!(exact.version, any.version);
        let err = find_interpreter(Some("==2.7")).await.unwrap_err();
        assert!(err.to_string().contains("no Python interpreter matches"));
    }
}
