//! Python virtual environments for tests and benchmarks that drive real
//! Python clients (the `mlflow` client): made once per directory and
//! package list, reused by every test and run after.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The MLflow client the tracking tests speak through, with what
/// `mlflow.sklearn.autolog()` needs.
pub const MLFLOW_CLIENT: &[&str] = &[
    "mlflow-skinny==3.18.0",
    "scikit-learn==1.9.1",
    "pandas==3.1.1",
];

/// The Python of a virtual environment under `root` holding `packages`
/// (pinned), made on first use. Panics with pip's output when it cannot
/// be made.
pub fn venv(root: &Path, packages: &[&str]) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let id = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        packages.hash(&mut h);
        format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
    };
    let dir = root.join(format!("venv-{id}"));
    let python = dir.join("bin").join("python");
    let ready = dir.join(".ready");
    if ready.exists() {
        return python;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run python3");
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(root).expect("the venv root");
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    std::fs::write(&ready, packages.join("\n")).expect("mark the venv ready");
    python
}
