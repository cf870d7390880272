//! `{{name}}`: a Cairn drift detector (world `drift-detector`).
//!
//! Scores each numeric feature by how far the window's mean moved from the
//! reference's, in reference standard deviations:
//! `|mean(window) − mean(reference)| / sd(reference)`. A feature drifted
//! when that is above the spec's `threshold`; the window's score is the
//! largest (or, with `aggregate: mean`, the mean) feature score.

use cairn_plugin_sdk::drift::{Aggregate, Column, ColumnValues, DriftReport, FeatureScore};
use cairn_plugin_sdk::{Config, DriftDetector, Error, Result, state};
use serde::{Deserialize, Serialize};

/// Marks state bytes as this plugin's (change it when the layout changes).
const STATE_TAG: &[u8; 4] = b"mns1";

/// What `fit` keeps of each feature: its mean and standard deviation.
#[derive(Serialize, Deserialize)]
struct Reference {
    features: Vec<(String, f64, f64)>,
}

/// The detector.
pub struct MeanShift;

fn numbers<'a>(column: &'a Column) -> Result<&'a [f64]> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(v),
        ColumnValues::Categorical(_) => Err(Error::new(format!(
            "column `{}` is categorical; this detector needs numbers",
            column.name
        ))),
    }
}

/// Mean and standard deviation of the values that are not NaN.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    let present: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if present.is_empty() {
        return None;
    }
    let n = present.len() as f64;
    let mean = present.iter().sum::<f64>() / n;
    let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

impl DriftDetector for MeanShift {
    fn fit(config: &Config, reference: Vec<Column>) -> Result<Vec<u8>> {
        config.check_keys(&["aggregate"])?;
        let mut features = Vec::new();
        for column in &reference {
            let (mean, sd) = mean_sd(numbers(column)?)
                .ok_or_else(|| Error::new(format!("reference column `{}` has no values", column.name)))?;
            features.push((column.name.clone(), mean, sd));
        }
        Ok(state::encode(STATE_TAG, &Reference { features }))
    }

    fn score(
        config: &Config,
        state: &[u8],
        window: Vec<Column>,
        threshold: f64,
    ) -> Result<DriftReport> {
        config.check_keys(&["aggregate"])?;
        let aggregate = Aggregate::from_config(config)?;
        let reference: Reference = state::decode(STATE_TAG, state)?;
        let mut scores = Vec::new();
        for (name, mean, sd) in reference.features {
            let column = window
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| Error::new(format!("the window has no column `{name}`")))?;
            let (window_mean, _) = mean_sd(numbers(column)?)
                .ok_or_else(|| Error::new(format!("window column `{name}` has no values")))?;
            let score = (window_mean - mean).abs() / sd.max(f64::EPSILON);
            scores.push(FeatureScore {
                feature: name,
                score,
                p_value: None,
                drifted: score > threshold,
            });
        }
        Ok(DriftReport::from_features(scores, aggregate))
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_drift_detector!(MeanShift);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_window_drifts() {
        let config = Config::default();
        let state = MeanShift::fit(&config, vec![Column::numeric("x", vec![1.0, 2.0, 3.0])]).unwrap();
        // mean 2, sd √(2/3) = 0.8165; window mean 3 → score 1.2247
        let report = MeanShift::score(&config, &state, vec![Column::numeric("x", vec![3.0])], 1.0).unwrap();
        assert!((report.score - 1.224_744_871_391_589).abs() < 1e-12);
        assert!(report.drifted);
        let report = MeanShift::score(&config, &state, vec![Column::numeric("x", vec![2.0])], 1.0).unwrap();
        assert!(!report.drifted);
    }
}
