//! `drift-chi2`: a Cairn drift detector for categorical features: Pearson's
//! chi-squared test of each window's category counts against the
//! reference's frequencies.
//!
//! Settings (`config`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `smoothing` | `0.5` | added to every bucket's reference count (so unseen categories expect a little) |
//! | `alpha` | none | when set, a feature also drifted when its p-value is below it |
//! | `aggregate` | `max` | the window's score: `max` or `mean` of the feature scores |
//!
//! A feature's score is the effect size Cohen's `w = √(χ²/n)` (0.1 small,
//! 0.3 medium, 0.5 large), reported with the test's p-value; it drifted
//! when `w` is above the spec's `threshold` (or, with `alpha` set, when
//! p < alpha). The window drifted when any feature did. Empty strings
//! (missing values) are a category of their own. Numeric columns are
//! refused: use `drift-ks` or `drift-psi` for them.

pub mod stats;

use cairn_plugin_sdk::drift::{Aggregate, Column, ColumnValues, DriftReport, FeatureScore};
use cairn_plugin_sdk::{Config, DriftDetector, Error, Result, state};
use serde::{Deserialize, Serialize};

const STATE_TAG: &[u8; 4] = b"chi1";
const SETTINGS: [&str; 3] = ["smoothing", "alpha", "aggregate"];

/// The detector.
pub struct ChiSquared;

#[derive(Debug, Serialize, Deserialize)]
struct Feature {
    name: String,
    /// Sorted reference categories.
    categories: Vec<String>,
    /// Smoothed expected shares, the unseen bucket last.
    shares: Vec<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    features: Vec<Feature>,
}

fn categorical<'a>(column: &'a Column, what: &str) -> Result<&'a [String]> {
    match &column.values {
        ColumnValues::Categorical(v) => Ok(v),
        ColumnValues::Numeric(_) => Err(Error::new(format!(
            "{what} column `{}` is numeric; the chi-squared test needs categories (use drift-ks or drift-psi)",
            column.name
        ))),
    }
}

impl DriftDetector for ChiSquared {
    fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>> {
        config.check_keys(&SETTINGS)?;
        let smoothing = config.f64_in_or("smoothing", 1e-9, 1e6, 0.5)?;
        if reference.is_empty() {
            return Err("the reference has no columns".into());
        }
        let mut features = Vec::with_capacity(reference.len());
        for column in &reference {
            let values = categorical(column, "reference")?;
            if values.is_empty() {
                return Err(Error::new(format!(
                    "reference column `{}` is empty",
                    column.name
                )));
            }
            let mut categories = values.to_vec();
            categories.sort_unstable();
            categories.dedup();
            let shares =
                stats::smoothed_shares(&stats::bucket_counts(&categories, values), smoothing);
            features.push(Feature {
                name: column.name.clone(),
                categories,
                shares,
            });
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
        let alpha = match config.get("alpha") {
            None => None,
            Some(_) => Some(config.f64_in_or("alpha", 0.0, 1.0, 0.05)?),
        };
        let aggregate = Aggregate::from_config(config)?;
        let state: State = state::decode(STATE_TAG, state)?;
        if let Some(c) = window
            .iter()
            .find(|c| !state.features.iter().any(|f| f.name == c.name))
        {
            return Err(Error::new(format!(
                "window column `{}` is not in the reference (fitted: {})",
                c.name,
                state
                    .features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut scores = Vec::with_capacity(state.features.len());
        for feature in &state.features {
            let column = window
                .iter()
                .find(|c| c.name == feature.name)
                .ok_or_else(|| {
                    Error::new(format!("the window has no column `{}`", feature.name))
                })?;
            let values = categorical(column, "window")?;
            if values.is_empty() {
                return Err(Error::new(format!(
                    "window column `{}` is empty",
                    feature.name
                )));
            }
            let r = stats::chi_squared(
                &stats::bucket_counts(&feature.categories, values),
                &feature.shares,
            );
            scores.push(FeatureScore {
                feature: feature.name.clone(),
                score: r.effect_size,
                p_value: Some(r.p_value),
                drifted: r.effect_size > threshold || alpha.is_some_and(|a| r.p_value < a),
            });
        }
        Ok(DriftReport::from_features(scores, aggregate))
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_drift_detector!(ChiSquared);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;

    fn values(spec: &[(&str, usize)]) -> Vec<String> {
        spec.iter()
            .flat_map(|(c, n)| std::iter::repeat_n(c.to_string(), *n))
            .collect()
    }

    #[test]
    fn scores_like_scipy() {
        let config = Config::default();
        let reference = values(&[("b", 30), ("a", 50), ("c", 20)]);
        let state = ChiSquared::fit(&config, vec![Column::categorical("plan", reference)]).unwrap();
        let window = values(&[("a", 30), ("d", 5), ("b", 30), ("c", 25)]);
        let report = ChiSquared::score(
            &config,
            &state,
            vec![Column::categorical("plan", window)],
            0.3,
        )
        .unwrap();
        let f = &report.features[0];
        // stats::tests::matches_scipy_chisquare
        assert!((f.score - 0.7807414919159422).abs() < 1e-12);
        assert!((f.p_value.unwrap() - 7.35440901991431e-12).abs() < 1e-17);
        assert!(f.drifted && report.drifted);
        let same = values(&[("a", 25), ("b", 15), ("c", 10)]);
        let alpha = Config::new([("alpha", ConfigValue::Number(0.05))]);
        let report =
            ChiSquared::score(&alpha, &state, vec![Column::categorical("plan", same)], 0.3)
                .unwrap();
        assert!(!report.drifted, "{report:?}");
    }

    #[test]
    fn numeric_columns_are_refused() {
        let e =
            ChiSquared::fit(&Config::default(), vec![Column::numeric("x", vec![1.0])]).unwrap_err();
        assert!(e.message().contains("use drift-ks"), "{e}");
    }
}
