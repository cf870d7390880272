//! `cairn up` starts, syncs a commit and serves its status.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;

#[test]
fn up_syncs_the_current_commit_and_reports_status() {
    let repo = TestRepo::new();
    cairn_test_support::write_valid(&repo);
    let commit = repo.commit("initial");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    let status = up.get("/api/v1/status");
    assert_eq!(status["revision"], "main");
    assert_eq!(status["errors"], 0);
    let model = up.resource("Model", "scorer").expect("model status");
    assert_eq!(model["syncedCommit"], commit);
    assert_eq!(up.resource("Project", "churn").unwrap()["phase"], "Ready");
}
