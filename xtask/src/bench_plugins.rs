//! `bench plugins`: the costs of the WebAssembly plugin host beside the same
//! work in native Rust — a trivial call on a reused instance, instantiation,
//! and the drift detectors over a large window.

use anyhow::{Context, Result};
use cairn_plugin_host::columns::{Column, ColumnValues};
use cairn_plugin_host::drift::DriftDetector;
use cairn_plugin_host::model::{Tensor, WasmModel, WitData};
use cairn_plugin_host::{PluginHost, PluginSource, config_of};
use cairn_spec::PluginLimits;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// What to measure.
pub struct Sizes {
    /// Trivial calls timed.
    pub calls: usize,
    /// Rows of the drift reference and window.
    pub rows: usize,
    /// Numeric features of the drift reference and window.
    pub features: usize,
    /// Runs of each drift measurement (the median is reported).
    pub runs: usize,
}

pub fn run(sizes: Sizes) -> Result<()> {
    let host = PluginHost::new(None)?;
    let limits = PluginLimits {
        memory: "1Gi".parse().map_err(anyhow::Error::msg)?,
        timeout: "60s".parse().map_err(anyhow::Error::msg)?,
        fuel: None,
    };
    let mut out = String::new();
    let profile = if cfg!(debug_assertions) {
        "dev profile (dependencies at opt-level 1, cairn and xtask at 0)"
    } else {
        "release profile"
    };
    writeln!(
        out,
        "### Plugin host\n\n{} Build: {profile}; components compiled by Cranelift (speed).\n",
        crate::bench::machine()
    )?;

    // A trivial call: the hostile test plugin's `predict` in mode `ok` on
    // one value, on a reused instance.
    let hostile = crate::root().join("plugins/dist/test/hostile-model.wasm");
    let plugin = host
        .load(
            "hostile",
            &PluginSource::File(hostile.clone()),
            None,
            &limits,
        )
        .with_context(|| format!("loading {} (run `cargo xtask plugins`)", hostile.display()))?;
    let config = config_of(&serde_json::from_str(r#"{"mode": "ok"}"#)?);
    let model = WasmModel::new(plugin, config, Vec::new(), 1)?;
    let input = vec![Tensor {
        name: "input".into(),
        shape: vec![1, 1],
        data: WitData::Float32(vec![1.0]),
    }];
    for _ in 0..1000 {
        model.predict(&input)?;
    }
    let started = Instant::now();
    for _ in 0..sizes.calls {
        black_box(model.predict(black_box(&input))?);
    }
    let wasm_call = started.elapsed() / sizes.calls as u32;
    let started = Instant::now();
    for _ in 0..sizes.calls {
        black_box(native_echo(black_box(&input)));
    }
    let native_call = started.elapsed() / sizes.calls as u32;

    // Instantiation: a fresh instance of a drift detector (what each drift
    // or business-metric call costs on top of the call).
    let psi_plugin = host.load(
        "drift-psi",
        &PluginSource::Builtin("drift-psi".into()),
        None,
        &limits,
    )?;
    let psi = DriftDetector::new(psi_plugin)?;
    for _ in 0..100 {
        psi.instantiate()?;
    }
    let n = (sizes.calls / 10).max(100);
    let started = Instant::now();
    for _ in 0..n {
        psi.instantiate()?;
    }
    let instantiate = started.elapsed() / n as u32;

    writeln!(
        out,
        "| measure | plugin | native Rust | goal |\n|---|---|---|---|"
    )?;
    writeln!(
        out,
        "| trivial call (`predict` of one value, reused instance; mean of {}) | {} | {} | < 10 µs |",
        sizes.calls,
        micros(wasm_call),
        micros(native_call)
    )?;
    writeln!(
        out,
        "| instantiation of `drift-psi` (mean of {n}) | {} | — | |",
        micros(instantiate)
    )?;

    // Drift over rows × features.
    let reference = columns(sizes.rows, sizes.features, 1, 0.0);
    let window = columns(sizes.rows, sizes.features, 2, 0.1);
    let empty = config_of(&Default::default());
    for (name, native) in [
        (
            "drift-psi",
            native_psi as fn(&[Column], &[Column]) -> Vec<f64>,
        ),
        ("drift-ks", native_ks),
    ] {
        let plugin = host.load(name, &PluginSource::Builtin(name.into()), None, &limits)?;
        let detector = DriftDetector::new(plugin)?;
        let state = detector.fit(&empty, &reference)?;
        let fit = median(sizes.runs, || detector.fit(&empty, &reference).map(|_| ()))?;
        let score = median(sizes.runs, || {
            detector.score(&empty, &state, &window, 0.2).map(|_| ())
        })?;
        let scores = detector.score(&empty, &state, &window, 0.2)?;
        let native_scores = native(&reference, &window);
        let native_time = median(sizes.runs, || {
            black_box(native(&reference, &window));
            Ok::<_, cairn_plugin_host::PluginError>(())
        })?;
        let agree = scores
            .features
            .iter()
            .zip(&native_scores)
            .all(|(f, n)| (f.score - n).abs() <= 1e-9 * n.abs().max(1.0));
        writeln!(
            out,
            "| `{name}` fit + score, {} rows × {} features (median of {}) | fit {} + score {} | {} (fit and score){} | score < 50 ms |",
            sizes.rows,
            sizes.features,
            sizes.runs,
            millis(fit),
            millis(score),
            millis(native_time),
            if agree { "" } else { ", scores differ" }
        )?;
    }
    print!("{out}");
    Ok(())
}

#[inline(never)]
fn native_echo(inputs: &[Tensor]) -> Vec<Tensor> {
    inputs.to_vec()
}

fn median<E: Into<anyhow::Error>>(
    runs: usize,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f().map_err(Into::into)?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_nanos() as f64 / 1000.0)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `features` numeric columns of `rows` values, roughly normal, shifted by
/// `shift` standard deviations (a fixed-seed generator: the same data on
/// every run).
fn columns(rows: usize, features: usize, seed: u64, shift: f64) -> Vec<Column> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut uniform = move || {
        // SplitMix64.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..features)
        .map(|f| Column {
            name: format!("f{f}"),
            values: ColumnValues::Numeric(
                (0..rows)
                    .map(|_| (0..12).map(|_| uniform()).sum::<f64>() - 6.0 + shift)
                    .collect(),
            ),
        })
        .collect()
}

fn numeric(c: &Column) -> &[f64] {
    match &c.values {
        ColumnValues::Numeric(v) => v,
        ColumnValues::Categorical(_) => &[],
    }
}

/// PSI with 10 quantile bins, as `drift-psi` computes it.
fn native_psi(reference: &[Column], window: &[Column]) -> Vec<f64> {
    reference
        .iter()
        .zip(window)
        .map(|(r, w)| drift_psi::stats::psi_numeric(numeric(r), numeric(w), 10, 1e-4))
        .collect()
}

/// The two-sample KS test (both samples sorted, the `auto` p-value), as
/// `drift-ks` computes it.
fn native_ks(reference: &[Column], window: &[Column]) -> Vec<f64> {
    let sorted = |c: &Column| {
        let mut v = numeric(c).to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    reference
        .iter()
        .zip(window)
        .map(|(r, w)| {
            drift_ks::stats::ks_2samp(&sorted(r), &sorted(w), drift_ks::stats::Method::Auto)
                .statistic
        })
        .collect()
}
