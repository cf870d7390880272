//! Applications launched through app-framework plugins on `cairn up`: the
//! built-in `flask` plugin, and a project's own Plugin chosen by name.

use cairn_test_support::LAB_PROJECT;
use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use std::time::Duration;

/// A Flask application answering at its root.
const APP_PY: &str = r#"from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"
"#;

fn app(name: &str, framework: &str) -> String {
    format!(
        "apiVersion: cairn/v1\nkind: Application\nmetadata:\n  name: {name}\n  project: lab\nspec:\n  framework: {framework}\n  path: app\n---\n"
    )
}

#[test]
fn applications_are_launched_through_framework_plugins() {
    let flask = std::fs::read(cairn_test_support::plugin_dist("flask")).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&flask))
    };
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("app/app.py", APP_PY)
        .write("plugins/web.wasm", &flask)
        .write(
            "specs/apps.yaml",
            [
                app("builtin", "flask"),
                app("custom", "web"),
                format!(
                    "apiVersion: cairn/v1\nkind: Plugin\nmetadata:\n  name: web\n  project: lab\nspec:\n  path: plugins/web.wasm\n  sha256: {sha}\n  world: app-framework\n  config: {{python: python3}}\n---\n"
                ),
            ]
            .concat(),
        )
        .write("specs/broken.yaml", app("broken", "nothing-here"));
    repo.commit("apps");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("data"), &[], &[]);
    for name in ["builtin", "custom"] {
        up.wait_for(Duration::from_secs(60), &format!("{name} ready"), || {
            up.resource("Application", name)
                .filter(|r| r["phase"] == "Ready")
        });
        let body = up.get_text(&format!("/apps/{name}/")).unwrap();
        assert_eq!(body, "hello from flask");
    }
    // A change of the framework Plugin launches its applications again.
    let plugin = std::fs::read_to_string(repo.path().join("specs/apps.yaml"))
        .unwrap()
        .replace(
            "  config: {python: python3}",
            "  config: {python: python3}\n  limits: {timeout: 2s}",
        );
    repo.write("specs/apps.yaml", plugin);
    let commit = repo.commit("a framework limit");
    up.wait_synced(&commit);
    up.wait_for(Duration::from_secs(60), "custom launched again", || {
        up.logs()
            .contains("lab/custom: framework plugin Plugin lab/web changed; launching again")
            .then_some(())
    });
    up.wait_for(Duration::from_secs(60), "custom ready again", || {
        up.get_text("/apps/custom/")
            .ok()
            .filter(|b| b == "hello from flask")
    });

    // An unknown framework is refused with the choices, and nothing runs.
    let broken = up.resource("Application", "broken").expect("reported");
    assert_eq!(broken["phase"], "Invalid", "{broken}");
    assert!(
        broken["message"].as_str().unwrap().contains("nothing-here"),
        "{broken}"
    );
}
