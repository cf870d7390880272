//! `drift-ks`: a Cairn drift detector running the two-sample
//! Kolmogorov–Smirnov test of each numeric feature's window against its
//! reference.
//!
//! Settings (`config`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `method` | `auto` | p-value: `auto` (exact up to 10,000 values per sample, else asymptotic), `exact` or `asymp`, as `scipy.stats.ks_2samp` |
//! | `alpha` | none | when set, a feature also drifted when its p-value is below it |
//! | `aggregate` | `max` | the window's score: `max` or `mean` of the feature statistics |
//!
//! A feature's score is the statistic D (0 to 1) with its p-value; it
//! drifted when D is above the spec's `threshold` (or, with `alpha` set,
//! when p < alpha). The window drifted when any feature did. Missing values
//! (NaN) are left out of both samples. Categorical columns are refused: use
//! `drift-chi2` or `drift-psi` for them.

pub mod stats;

use cairn_plugin_sdk::drift::{Aggregate, Column, ColumnValues, DriftReport, FeatureScore};
use cairn_plugin_sdk::{Config, DriftDetector, Error, Result, state};
use serde::{Deserialize, Serialize};
use stats::Method;

const STATE_TAG: &[u8; 4] = b"ks01";
const SETTINGS: [&str; 3] = ["method", "alpha", "aggregate"];

/// The detector.
pub struct Ks;

/// The fitted reference: each feature's sorted values.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    features: Vec<(String, Vec<f64>)>,
}

fn numeric<'a>(column: &'a Column, what: &str) -> Result<&'a [f64]> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(v),
        ColumnValues::Categorical(_) => Err(Error::new(format!(
            "{what} column `{}` is categorical; the KS test needs numbers (use drift-chi2 or drift-psi)",
            column.name
        ))),
    }
}

fn sorted_present(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn method(config: &Config) -> Result<Method> {
    Ok(
        match config.choice_or("method", &["auto", "exact", "asymp"], "auto")? {
            "exact" => Method::Exact,
            "asymp" => Method::Asymp,
            _ => Method::Auto,
        },
    )
}

impl DriftDetector for Ks {
    fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>> {
        config.check_keys(&SETTINGS)?;
        method(config)?;
        if reference.is_empty() {
            return Err("the reference has no columns".into());
        }
        let mut features = Vec::with_capacity(reference.len());
        for column in &reference {
            let values = sorted_present(numeric(column, "reference")?);
            if values.is_empty() {
                return Err(Error::new(format!(
                    "reference column `{}` has no values (all missing or empty)",
                    column.name
                )));
            }
            features.push((column.name.clone(), values));
        }
        Ok(state::encode(STATE_TAG, &State { features }))
    }

    fn score(
        config: &Config,
        state: &[u8],
        window: Vec<Column>,
        threshold: f64,
    ) -> Result<DriftReport> {
        config.check_keys(&SETTINGS)?;
        let method = method(config)?;
        let alpha = match config.get("alpha") {
            None => None,
            Some(_) => Some(config.f64_in_or("alpha", 0.0, 1.0, 0.05)?),
        };
        let aggregate = Aggregate::from_config(config)?;
        let state: State = state::decode(STATE_TAG, state)?;
        if let Some(c) = window
            .iter()
            .find(|c| !state.features.iter().any(|(n, _)| *n == c.name))
        {
            return Err(Error::new(format!(
                "window column `{}` is not in the reference (fitted: {})",
                c.name,
                state
                    .features
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut scores = Vec::with_capacity(state.features.len());
        for (name, reference) in &state.features {
            let column = window
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| Error::new(format!("the window has no column `{name}`")))?;
            let values = sorted_present(numeric(column, "window")?);
            if values.is_empty() {
                return Err(Error::new(format!(
                    "window column `{name}` has no values (all missing or empty)"
                )));
            }
            let r = stats::ks_2samp(reference, &values, method);
            let drifted = r.statistic > threshold || alpha.is_some_and(|a| r.p_value < a);
            scores.push(FeatureScore {
                feature: name.clone(),
                score: r.statistic,
                p_value: Some(r.p_value),
                drifted,
            });
        }
        Ok(DriftReport::from_features(scores, aggregate))
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_drift_detector!(Ks);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;

    #[test]
    fn scores_like_scipy_and_judges_by_threshold_or_alpha() {
        // The samples of stats::tests::exact_unequal_sizes, unsorted.
        let a: Vec<f64> = (0..60u64)
            .map(|i| ((i * 7919) % 1009) as f64 / 100.0)
            .collect();
        let b: Vec<f64> = (0..45u64)
            .map(|i| ((i * 104729) % 1013) as f64 / 90.0)
            .collect();
        let config = Config::default();
        let state = Ks::fit(&config, vec![Column::numeric("x", a)]).unwrap();
        let report =
            Ks::score(&config, &state, vec![Column::numeric("x", b.clone())], 0.1).unwrap();
        let f = &report.features[0];
        assert!((f.score - 0.1111111111111111).abs() < 1e-12);
        assert!((f.p_value.unwrap() - 0.8793072802816579).abs() < 1e-12);
        assert!(f.drifted && report.drifted, "D = 0.111 > 0.1");
        let report =
            Ks::score(&config, &state, vec![Column::numeric("x", b.clone())], 0.2).unwrap();
        assert!(!report.drifted);
        let with_alpha = Config::new([("alpha", ConfigValue::Number(0.9))]);
        let report = Ks::score(&with_alpha, &state, vec![Column::numeric("x", b)], 0.2).unwrap();
        assert!(report.drifted, "p = 0.879 < alpha 0.9");
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let config = Config::default();
        let e = Ks::fit(&config, vec![Column::categorical("c", vec!["a".into()])]).unwrap_err();
        assert!(e.message().contains("use drift-chi2"), "{e}");
        let e = Ks::fit(&config, vec![Column::numeric("x", vec![f64::NAN])]).unwrap_err();
        assert!(e.message().contains("no values"), "{e}");
        let state = Ks::fit(&config, vec![Column::numeric("x", vec![1.0])]).unwrap();
        let e = Ks::score(&config, &state, vec![Column::numeric("x", vec![])], 0.1).unwrap_err();
        assert_eq!(
            e.message(),
            "window column `x` has no values (all missing or empty)"
        );
        let bad = Config::new([("method", ConfigValue::Text("fast".into()))]);
        let e = Ks::score(&bad, &state, vec![], 0.1).unwrap_err();
        assert!(e.message().contains("config `method`"), "{e}");
    }
}
