//! Benchmark: model monitoring at scale, through the cairn library.
//!
//! 1,000,000 inference events of one classifier spread over the last 24 h
//! are written with [`EventLog`] (`append`, then `flush`); 1,000,000 delayed
//! labels for them go through the feedback endpoint's storage function
//! ([`record_feedback`]) in batches of 10,000. Then, timed:
//!
//! - (a) the feedback ingestion;
//! - (b) the join and the accuracy aggregate of
//!   `GET /api/v1/models/NAME/metrics/aggregate?window=hour` over 24 h
//!   ([`report`], the handler's body without HTTP);
//! - (c) the data of the dashboard's model page (`/models/NAME`): its 30-day
//!   summary per version ([`summary`], [`report`] with one window, kept
//!   between renders);
//! - (d) the page itself, `GET /models/NAME` from the release `cairn up`
//!   serving that store: the first visit, and visits once the page's
//!   summary (computed in the background when the model starts being
//!   served, as on any store this large) is ready.

use crate::bench::machine;
use anyhow::Result;
use cairn_monitor::summary::{Summaries, report};
use cairn_spec::ModelTask;
use cairn_store::events::{EventLog, EventLogConfig, InferenceEvent};
use cairn_store::monitoring::{FeedbackItem, record_feedback};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

const MODEL: &str = "classifier";

/// The model measured: `classifier` of project `bench`.
fn model_key() -> cairn_spec::ResourceKey {
    cairn_spec::ResourceKey {
        kind: cairn_spec::Kind::Model,
        project: Some("bench".parse().expect("a name")),
        name: MODEL.parse().expect("a name"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(cairn: &Path, events: usize, batch: usize, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let path = data.join("events.db");
    let log = EventLog::open(&path, EventLogConfig::default())?;
    let now = chrono::Utc::now();
    let day_ms = 86_400_000i64;
    // A small deterministic generator (xorshift).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut uuids = Vec::with_capacity(events);
    let mut truth = Vec::with_capacity(events);
    let start = Instant::now();
    for i in 0..events {
        let offset = (i as i64 * day_ms) / events as i64;
        let time = now - chrono::Duration::milliseconds(day_ms - offset);
        let p = (next() % 1000) as f64 / 1000.0;
        let label = i64::from(p < 0.5);
        // The model is right about 90% of the time.
        let actual = if next() % 10 == 0 { 1 - label } else { label };
        let uuid = uuid::Uuid::now_v7();
        uuids.push(uuid);
        truth.push(actual);
        log.append(InferenceEvent {
            uuid,
            model: model_key(),
            version: "1".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            time,
            latency_us: 250,
            status: 200,
            inputs: json!({"mean_radius": 14.1, "mean_texture": 19.3, "mean_smoothness": 0.096, "worst_concavity": 0.27}),
            outputs: json!({"label": label, "probabilities": [p, 1.0 - p]}),
        })?;
    }
    tokio::runtime::Runtime::new()?.block_on(log.flush())?;
    let written = start.elapsed();
    eprintln!("wrote {events} events in {written:?}");

    // (a) Feedback, as the endpoint stores it.
    let start = Instant::now();
    let mut matched = 0;
    for (chunk, labels) in uuids.chunks(batch).zip(truth.chunks(batch)) {
        let items: Vec<FeedbackItem> = chunk
            .iter()
            .zip(labels)
            .map(|(uuid, label)| FeedbackItem {
                uuid: *uuid,
                label: json!(label),
            })
            .collect();
        let r = record_feedback(
            &mut log.monitor(),
            &model_key(),
            &items,
            chrono::Utc::now().timestamp_millis(),
        )?;
        matched += r.recorded;
    }
    let feedback = start.elapsed();
    eprintln!("recorded {matched} labels in {feedback:?}");

    // (b) The hourly aggregate over 24 h.
    let to = chrono::Utc::now().timestamp_millis() + 1;
    let mut hourly = Vec::new();
    let mut windows = 0;
    let mut accuracy = 0.0;
    for _ in 0..runs {
        let start = Instant::now();
        let r = report(
            &log.monitor(),
            &model_key(),
            Some(ModelTask::Classification),
            to - day_ms - 1,
            to,
            3_600_000,
        )?;
        hourly.push(start.elapsed());
        windows = r.windows.len();
        let scored: f64 = r.windows.iter().map(|w| w.scored as f64).sum();
        let correct: f64 = r
            .windows
            .iter()
            .filter_map(|w| Some(w.accuracy.flatten()? * w.scored as f64))
            .sum();
        accuracy = correct / scored.max(1.0);
    }
    // (c) The model page's 30-day summary (one window), as the page gets
    // it: computed on the first render, then kept (see
    // `Summaries::summary`).
    let start = Instant::now();
    let summaries = Summaries::default();
    summaries.summary(
        &log.monitor(),
        &model_key(),
        Some(ModelTask::Classification),
        30,
    )?;
    let page_cold = start.elapsed();
    let mut page_data = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        summaries.summary(
            &log.monitor(),
            &model_key(),
            Some(ModelTask::Classification),
            30,
        )?;
        page_data.push(start.elapsed());
    }
    let db_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
    drop(log);

    // (d) The page over HTTP from `cairn up` on the same store.
    let page = page_over_http(cairn, dir.path(), &data, runs.max(20))?;

    let mut out = String::new();
    writeln!(out, "## Model monitoring\n")?;
    writeln!(out, "{}", machine())?;
    writeln!(out, "`cargo xtask bench monitoring` (release build).\n")?;
    writeln!(
        out,
        "{events} inference events of one classifier over the last 24 h \
         (written with `EventLog::append` + `flush` in {:.1} s; events.db \
         {db_mib:.0} MiB with the labels), then {matched} delayed labels \
         through the feedback endpoint's storage function, {batch} per call. \
         Medians of {runs} runs for the reads.\n",
        written.as_secs_f64()
    )?;
    writeln!(out, "| Step | Time | Goal |")?;
    writeln!(out, "|---|---:|---:|")?;
    writeln!(
        out,
        "| (a) feedback ingestion, {matched} labels | {:.2} s ({:.0} labels/s) | — |",
        feedback.as_secs_f64(),
        matched as f64 / feedback.as_secs_f64()
    )?;
    let hourly = median(hourly);
    let page_data = median(page_data);
    writeln!(
        out,
        "| (b) join + accuracy aggregate, window=hour over 24 h ({windows} windows) | {} | < 1 s {} |",
        ms(hourly),
        if hourly < Duration::from_secs(1) {
            "✓"
        } else {
            "✗"
        }
    )?;
    writeln!(
        out,
        "| (c) model page data: 30-day summary per version (computed once: {}; then kept) | {} | — |",
        ms(page_cold),
        ms(page_data),
    )?;
    writeln!(
        out,
        "| (d) `GET /models/{MODEL}` from `cairn up`, first visit {} after start ({}); summary ready {} after start | median {} · p95 {} over {} visits | < 100 ms {} |",
        ms(page.first_at),
        if page.first_complete {
            "complete"
        } else {
            "quality tables pending"
        },
        ms(page.ready_at),
        ms(page.median),
        ms(page.p95),
        page.visits,
        if page.median < Duration::from_millis(100) && page.first < Duration::from_millis(100) {
            "✓"
        } else {
            "✗"
        }
    )?;
    writeln!(out, "\nThe first visit itself took {}.", ms(page.first))?;
    writeln!(
        out,
        "\nOverall accuracy found: {accuracy:.4} (≈ 0.9 by construction)."
    )?;
    print!("{out}");
    Ok(())
}

/// Timings of the model page served by `cairn up`.
struct PageTimings {
    /// The first visit: its duration, when it came after the server
    /// answered, and whether its quality tables were already filled in.
    first: Duration,
    first_at: Duration,
    first_complete: bool,
    /// When the page's summary was ready, from the server's start.
    ready_at: Duration,
    median: Duration,
    p95: Duration,
    visits: usize,
}

/// Starts the release `cairn up` on a repository serving the quickstart
/// classifier over `data` (which holds the events), and times
/// `GET /models/classifier`, each visit a fresh connection as a browser's
/// first request would be.
fn page_over_http(cairn: &Path, tmp: &Path, data: &Path, visits: usize) -> Result<PageTimings> {
    let repo_dir = tmp.join("repo");
    let repo = git2::Repository::init(&repo_dir)?;
    std::fs::create_dir_all(repo_dir.join("models"))?;
    std::fs::create_dir_all(repo_dir.join("specs"))?;
    std::fs::copy(
        cairn_test_support::CLASSIFIER,
        repo_dir.join("models/classifier.onnx"),
    )?;
    std::fs::write(
        repo_dir.join("specs/model.yaml"),
        crate::gateway::MODEL_SPECS,
    )?;
    crate::bench::commit(&repo, "quickstart model")?;
    let started = Instant::now();
    let server = crate::gateway::start_cairn(cairn, &repo_dir, data)?;
    let url = format!("http://127.0.0.1:{}/models/{MODEL}", server.port);
    let visit = || -> Result<(Duration, bool)> {
        let start = Instant::now();
        let mut r = ureq::get(&url).call()?;
        let html = r.body_mut().read_to_string()?;
        let took = start.elapsed();
        anyhow::ensure!(html.contains("id=\"model-page\""), "not the model page");
        Ok((took, !html.contains("data-pending")))
    };
    let first_at = started.elapsed();
    let (first, first_complete) = visit()?;
    let ready_at = loop {
        let (_, complete) = visit()?;
        if complete {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the page's summary was not ready after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut times = Vec::with_capacity(visits);
    for _ in 0..visits {
        let (took, complete) = visit()?;
        anyhow::ensure!(complete, "the page lost its summary");
        times.push(took);
    }
    times.sort();
    drop(server);
    Ok(PageTimings {
        first,
        first_at,
        first_complete,
        ready_at,
        median: times[times.len() / 2],
        p95: times[(times.len() * 95 / 100).min(times.len() - 1)],
        visits,
    })
}
