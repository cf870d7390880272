//! The dashboard's experiment pages, end to end: a sweep of six runs on
//! the real `cairn up`, its experiment listed, its runs filtered and
//! ordered with MLflow's syntax, a bad filter answered with its message, a
//! viewer of another project refused; then, in headless Chromium (when it
//! is installed), the metric-history chart drawn from real runs and the
//! sweep's parallel coordinates with one line per run.

use super::dashboard::{Browser, assert_no_errors, chromium, data_points, target_dir};
use cairn_test_support::up::Up;
use cairn_test_support::{LAB_PROJECT, TestRepo, cairn};
use serde_json::{Value, json};
use std::time::Duration;

const OTHER_PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: other
spec:
  defaultPool: local
";

/// A sweep over C whose runs write their accuracy (1 at C = 2) to
/// `metrics.json`, read as final metrics.
const TUNE: &str = r#"apiVersion: cairn/v1
kind: Job
metadata:
  name: tune
  project: lab
spec:
  command: |
    awk -v c="$CAIRN_PARAM_C" 'BEGIN { d = c - 2; if (d < 0) d = -d; printf "{\"accuracy\": %.4f}", 1 - d / 20 }' > "$CAIRN_OUTPUT_DIR/metrics.json"
  trigger: {manual: true}
  params: {C: 1}
  experiment: {metrics: metrics}
  outputs:
    - {name: metrics, path: metrics.json}
  sweep:
    grid: {C: [0.5, 1, 2, 4, 8, 16]}
    maxParallel: 2
    objective: {metric: accuracy, goal: maximize}
"#;

/// GET `path` with `token` and `accept`: (status, body).
fn get_as(up: &Up, token: &str, path: &str, accept: &str) -> (u16, String) {
    let agent = Up::agent_with(Some(token), Duration::from_secs(30));
    let mut r = agent
        .get(&up.url(path))
        .header("accept", accept)
        .call()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// The value of attribute `attr` on the element with id `id`.
fn attribute(dom: &str, id: &str, attr: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    Some(
        tag.split(&format!("{attr}=\""))
            .nth(1)?
            .split('"')
            .next()?
            .to_string(),
    )
}

/// The run ids of the runs table's rows, in order.
fn row_ids(page: &str) -> Vec<String> {
    page.split("<tr id=\"run-")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The `<polyline`s of the sweeps' views.
fn sweep_lines(page: &str) -> usize {
    page.split("<svg class=\"pcoords\"")
        .skip(1)
        .map(|svg| {
            svg[..svg.find("</svg>").unwrap_or(svg.len())]
                .matches("<polyline")
                .count()
        })
        .sum()
}

#[test]
fn experiment_pages() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("specs/other.yaml", OTHER_PROJECT)
        .write("specs/tune.yaml", TUNE);
    let commit = repo.commit("a sweep");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    let admin = up.token.clone().expect("an admin token");

    let (status, body) = up.post("/api/v1/jobs/tune/runs", &json!({}));
    assert_eq!(status, 202, "{body}");
    let experiments = up.wait_for(Duration::from_secs(60), "the experiment", || {
        let list = up.get("/api/v1/experiments");
        list["experiments"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == "lab/tune")
            .cloned()
    });
    let id = experiments["id"].as_str().unwrap().to_string();
    // Six finished runs under a finished parent naming the best.
    let runs: Vec<Value> = up.wait_for(Duration::from_secs(120), "the sweep", || {
        let all = up.get(&format!("/api/v1/experiments/{id}/runs"));
        let all = all["runs"].as_array()?.clone();
        let parent = all.iter().find(|r| r["jobRun"].is_null())?;
        (all.len() == 7
            && all.iter().all(|r| r["status"] == "FINISHED")
            && parent["tags"]["cairn.sweep.best"].is_string())
        .then_some(all)
    });
    let children: Vec<&Value> = runs.iter().filter(|r| !r["jobRun"].is_null()).collect();
    let best = children
        .iter()
        .find(|r| r["jobRun"]["best"] == true)
        .unwrap();
    assert_eq!(best["params"]["C"], "2");
    let best_id = best["id"].as_str().unwrap().to_string();
    let other_id = children.iter().find(|r| r["params"]["C"] == "8").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A history for two runs (the sweep logs final metrics only).
    for (run, base) in [(&best_id, 1.0), (&other_id, 2.0)] {
        let metrics: Vec<Value> = (0..5)
            .map(|s| json!({"key": "loss", "value": base / (s as f64 + 1.0), "timestamp": 1000 + s, "step": s}))
            .collect();
        let (status, body) = up.post(
            "/api/2.0/mlflow/runs/log-batch",
            &json!({"run_id": run, "metrics": metrics}),
        );
        assert_eq!(status, 200, "{body}");
    }

    // Over HTTP: the list, linked, counting the sweep's runs.
    let list = up.get_text("/experiments").unwrap();
    assert!(
        list.contains(r#"<a href="/experiments" aria-current="page""#),
        "in the navigation: {list}"
    );
    let row = list
        .split(&format!("<tr data-experiment=\"{id}\">"))
        .nth(1)
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains(&format!(
            r#"<a href="/experiments/{id}"><strong>lab/tune</strong></a>"#
        )),
        "{row}"
    );
    assert!(row.contains(r#"<td class="num">6</td>"#), "{row}");

    // Every run, a line per run in the sweep's view, the best marked.
    let page = up.get_text(&format!("/experiments/{id}")).unwrap();
    assert_eq!(row_ids(&page).len(), 6, "{page}");
    assert_eq!(sweep_lines(&page), 6, "{page}");
    assert!(page.contains(">best</span>"), "{page}");
    assert!(page.contains("<a href=\"/jobs/tune/runs/"), "{page}");
    // Filtered and ordered: C = 0.5, 1, 2, 4 have accuracy ≥ 0.8; the best first.
    let filtered_path = format!(
        "/experiments/{id}?filter=metrics.accuracy%20%3E%3D%200.8&orderBy=metrics.%60accuracy%60%20DESC"
    );
    let filtered = up.get_text(&filtered_path).unwrap();
    let ids = row_ids(&filtered);
    assert_eq!(ids.len(), 4, "{filtered}");
    assert_eq!(ids[0], best_id, "{filtered}");
    assert!(
        filtered.contains("accuracy ▼"),
        "the order shown: {filtered}"
    );
    // A bad filter: its message on a page, not a server error.
    let (status, bad) = up
        .get_raw(&format!(
            "/experiments/{id}?filter=metrics.accuracy%20%3E%200.5%20OR%20params.C%20%3D%20'1'"
        ))
        .unwrap();
    assert_eq!(status, 400, "{bad}");
    assert!(bad.starts_with("<!doctype html>"), "{bad}");
    assert!(bad.contains("id=\"filter-error\""), "{bad}");
    assert!(bad.contains("is not supported in a filter"), "{bad}");
    let (status, _) = up.get_raw("/experiments/999999").unwrap();
    assert_eq!(status, 404);
    let (status, _) = up.get_raw("/experiments/nope").unwrap();
    assert_eq!(status, 400);

    // A viewer of another project: not its experiment, nor in its list.
    let outsider = cairn()
        .args(["tokens", "create", "--project", "other", "--role", "viewer"])
        .args(["--server", &up.url("")])
        .env("CAIRN_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(outsider.status.success());
    let outsider = String::from_utf8_lossy(&outsider.stdout).trim().to_string();
    let (status, body) = get_as(&up, &outsider, &format!("/experiments/{id}"), "*/*");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("viewer"), "{body}");
    let (status, body) = get_as(&up, &outsider, &format!("/experiments/{id}"), "text/html");
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("<!doctype html>"), "{body}");
    let (status, body) = get_as(&up, &outsider, "/experiments", "text/html");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("lab/tune"), "{body}");

    // The job run links to its tracked run.
    let number = best["jobRun"]["number"].as_i64().unwrap();
    let run_page = up.get_text(&format!("/jobs/tune/runs/{number}")).unwrap();
    assert!(
        run_page.contains(&format!(
            "href=\"/experiments/{id}?runs={best_id}#run-{best_id}\""
        )),
        "{run_page}"
    );

    // In a browser.
    let Some(chromium) = chromium() else {
        eprintln!("note: `chromium` is not on PATH; skipping the browser checks");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser {
        binary: chromium,
        profile: profile.path().to_path_buf(),
    };
    let dom = browser.dump_dom(&up.url(&format!("/login?token={admin}&next=/experiments")));
    assert_no_errors(&dom);
    assert!(dom.contains("lab/tune"), "not signed in: {dom}");

    // Two runs selected, their loss charted: 5 steps, 2 lines.
    let selected = format!("/experiments/{id}?runs={best_id},{other_id}&metric=loss");
    let dom = browser.dump_dom(&up.url(&selected));
    assert_no_errors(&dom);
    assert_eq!(row_ids(&dom).len(), 6, "{dom}");
    assert_eq!(data_points(&dom, "chart-history"), 5, "{dom}");
    assert_eq!(
        attribute(&dom, "chart-history", "data-series").as_deref(),
        Some("2"),
        "{dom}"
    );
    assert!(dom.contains("class=\"uplot"), "{dom}");
    assert_eq!(sweep_lines(&dom), 6, "{dom}");
    assert_eq!(dom.matches(" selected\" data-run=").count(), 2, "{dom}");

    // Filtered and ordered; the default selection (the first rows) charts
    // the sweep's objective.
    let dom = browser.dump_dom(&up.url(&filtered_path));
    assert_no_errors(&dom);
    assert_eq!(row_ids(&dom).len(), 4, "{dom}");
    assert!(data_points(&dom, "chart-history") > 0, "{dom}");
    assert_eq!(
        attribute(&dom, "chart-history", "data-series").as_deref(),
        Some("4"),
        "{dom}"
    );
    assert_eq!(sweep_lines(&dom), 4, "{dom}");

    for (name, path) in [
        ("experiments", "/experiments".to_string()),
        ("experiment", selected),
    ] {
        let file = target_dir().join(format!("dashboard-{name}.png"));
        browser.screenshot(&up.url(&path), &file);
        assert!(
            std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > 1000,
            "no screenshot at {}",
            file.display()
        );
    }
}
