//! `drift-psi`: a Cairn drift detector scoring each feature by its
//! population stability index (PSI) against the reference.
//!
//! Settings (`config`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `bins` | `10` | quantile bins learned from the reference (2..=1000) |
//! | `epsilon` | `0.0001` | share used in place of an empty bin's zero |
//! | `aggregate` | `max` | the window's score: `max` or `mean` of the feature scores |
//!
//! A feature drifted when its PSI is above the spec's `threshold` (0.1 is a
//! common "moderate shift", 0.25 a "major shift"); the window drifted when
//! any feature did. PSI has no p-value. Numeric and categorical columns are
//! both supported; see [`stats`] for the bins.

pub mod stats;

use cairn_plugin_sdk::drift::{Aggregate, Column, ColumnValues, DriftReport, FeatureScore};
use cairn_plugin_sdk::{Config, DriftDetector, Error, Result, state};
use serde::{Deserialize, Serialize};

const STATE_TAG: &[u8; 4] = b"psi1";
const SETTINGS: [&str; 3] = ["bins", "epsilon", "aggregate"];

/// The detector.
pub struct Psi;

/// What `fit` learned of one feature.
#[derive(Debug, Serialize, Deserialize)]
enum Bins {
    /// Interior edges of the numeric bins.
    Numeric { edges: Vec<f64> },
    /// The reference's categories, sorted.
    Categorical { categories: Vec<String> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Feature {
    name: String,
    bins: Bins,
    /// The reference's shares per bin (missing-value bin last).
    expected: Vec<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    features: Vec<Feature>,
}

fn counts(bins: &Bins, values: &ColumnValues, name: &str) -> Result<Vec<u64>> {
    match (bins, values) {
        (Bins::Numeric { edges }, ColumnValues::Numeric(v)) => Ok(stats::numeric_counts(edges, v)),
        (Bins::Categorical { categories }, ColumnValues::Categorical(v)) => {
            Ok(stats::categorical_counts(categories, v))
        }
        (Bins::Numeric { .. }, _) => Err(Error::new(format!(
            "feature `{name}` is numeric in the reference but categorical in the window"
        ))),
        (Bins::Categorical { .. }, _) => Err(Error::new(format!(
            "feature `{name}` is categorical in the reference but numeric in the window"
        ))),
    }
}

impl DriftDetector for Psi {
    fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>> {
        config.check_keys(&SETTINGS)?;
        let bins = config.int_in_or("bins", 2, 1000, 10)? as usize;
        let epsilon = config.f64_in_or("epsilon", 1e-12, 0.1, 1e-4)?;
        if reference.is_empty() {
            return Err("the reference has no columns".into());
        }
        let mut features = Vec::with_capacity(reference.len());
        for column in reference {
            if column.is_empty() {
                return Err(Error::new(format!(
                    "reference column `{}` is empty",
                    column.name
                )));
            }
            let learned = match &column.values {
                ColumnValues::Numeric(v) => Bins::Numeric {
                    edges: stats::quantile_edges(v, bins),
                },
                ColumnValues::Categorical(v) => {
                    let mut categories: Vec<String> =
                        v.iter().filter(|s| !s.is_empty()).cloned().collect();
                    categories.sort_unstable();
                    categories.dedup();
                    Bins::Categorical { categories }
                }
            };
            let expected =
                stats::proportions(&counts(&learned, &column.values, &column.name)?, epsilon);
            features.push(Feature {
                name: column.name,
                bins: learned,
                expected,
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
        let epsilon = config.f64_in_or("epsilon", 1e-12, 0.1, 1e-4)?;
        let aggregate = Aggregate::from_config(config)?;
        let state: State = state::decode(STATE_TAG, state)?;
        if let Some(c) = window
            .iter()
            .find(|c| !state.features.iter().any(|f| f.name == c.name))
        {
            return Err(Error::new(format!(
                "window column `{}` is not in the reference (fitted: {})",
                c.name,
                names(&state)
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
            if column.is_empty() {
                return Err(Error::new(format!(
                    "window column `{}` is empty",
                    feature.name
                )));
            }
            let actual = stats::proportions(
                &counts(&feature.bins, &column.values, &feature.name)?,
                epsilon,
            );
            let score = stats::psi(&feature.expected, &actual);
            scores.push(FeatureScore {
                feature: feature.name.clone(),
                score,
                p_value: None,
                drifted: score > threshold,
            });
        }
        Ok(DriftReport::from_features(scores, aggregate))
    }
}

fn names(state: &State) -> String {
    state
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_drift_detector!(Psi);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;

    #[test]
    fn fits_and_scores_numeric_and_categorical_features() {
        let reference = vec![
            Column::numeric("x", (1..=10).map(f64::from).collect()),
            Column::categorical("c", ["a", "a", "b", "b"].map(String::from).to_vec()),
        ];
        let config = Config::new([("bins", ConfigValue::Integer(2))]);
        let state = Psi::fit(&config, reference).unwrap();
        let window = vec![
            Column::numeric("x", vec![1.0, 2.0, 3.0, 9.0]),
            Column::categorical("c", ["a", "b", "b", "b"].map(String::from).to_vec()),
        ];
        let report = Psi::score(&config, &state, window, 0.2).unwrap();
        // x: hand-computed in stats::tests::hand_computed_psi.
        assert!((report.features[0].score - 0.274_653_072_167_027_45).abs() < 1e-15);
        // c: (0.25−0.5)·ln(0.5) + (0.75−0.5)·ln(1.5) — the same shares swapped.
        assert!((report.features[1].score - 0.274_653_072_167_027_45).abs() < 1e-15);
        assert!(
            report
                .features
                .iter()
                .all(|f| f.drifted && f.p_value.is_none())
        );
        assert_eq!(
            report.score,
            report.features[0].score.max(report.features[1].score)
        );
        assert!(report.drifted);
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let config = Config::default();
        let state = Psi::fit(&config, vec![Column::numeric("x", vec![1.0, 2.0])]).unwrap();
        let e =
            Psi::score(&config, &state, vec![Column::numeric("y", vec![1.0])], 0.1).unwrap_err();
        assert_eq!(
            e.message(),
            "window column `y` is not in the reference (fitted: x)"
        );
        let e = Psi::score(&config, &state, vec![], 0.1).unwrap_err();
        assert_eq!(e.message(), "the window has no column `x`");
        let e = Psi::score(
            &config,
            &state,
            vec![Column::categorical("x", vec!["a".into()])],
            0.1,
        )
        .unwrap_err();
        assert!(e.message().contains("numeric in the reference"), "{e}");
        let e = Psi::score(&config, b"ks01....", vec![], 0.1).unwrap_err();
        assert!(e.message().contains("not fitted by this plugin"), "{e}");
        let bad = Config::new([("bins", ConfigValue::Integer(1))]);
        let e = Psi::fit(&bad, vec![Column::numeric("x", vec![1.0])]).unwrap_err();
        assert_eq!(e.message(), "config `bins`: 1 is out of range 2..=1000");
        let bad = Config::new([("bin", ConfigValue::Integer(5))]);
        let e = Psi::fit(&bad, vec![Column::numeric("x", vec![1.0])]).unwrap_err();
        assert!(e.message().contains("did you mean `bins`"), "{e}");
    }

    #[test]
    fn mean_aggregate() {
        let reference = vec![
            Column::numeric("x", (1..=10).map(f64::from).collect()),
            Column::numeric("y", (1..=10).map(f64::from).collect()),
        ];
        let config = Config::new([
            ("bins", ConfigValue::Integer(2)),
            ("aggregate", ConfigValue::Text("mean".into())),
        ]);
        let state = Psi::fit(&config, reference.clone()).unwrap();
        let window = vec![
            reference[0].clone(),
            Column::numeric("y", vec![1.0, 2.0, 3.0, 9.0]),
        ];
        let report = Psi::score(&config, &state, window, 0.2).unwrap();
        assert!((report.score - 0.274_653_072_167_027_45 / 2.0).abs() < 1e-15);
        assert!(!report.features[0].drifted && report.features[1].drifted);
    }
}
