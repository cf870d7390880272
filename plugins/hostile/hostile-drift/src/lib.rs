//! `hostile-drift`: a drift detector that misbehaves as its config's `mode`
//! says (see the `hostile` crate). `phase` is `fit` (the default), `score`
//! or `all`. In `ok` mode `fit` returns an empty state and `score` reports
//! every window column with score 0; in `huge-output` mode `fit` returns
//! 100 MB of state and `score` a report whose feature names total 100 MB.

use cairn_plugin_sdk::drift::{Column, DriftReport, FeatureScore};
use cairn_plugin_sdk::{Config, DriftDetector, Result};
use hostile::{HUGE_BYTES, Mode};

const PHASES: [&str; 3] = ["fit", "score", "all"];

/// The detector.
pub struct HostileDrift;

impl DriftDetector for HostileDrift {
    fn fit(config: &Config, _reference: Vec<Column>) -> Result<Vec<u8>> {
        let mode = Mode::for_phase(config, &PHASES, "fit")?;
        mode.misbehave()?;
        Ok(if mode == Mode::HugeOutput {
            vec![7u8; HUGE_BYTES]
        } else {
            Vec::new()
        })
    }

    fn score(
        config: &Config,
        _state: &[u8],
        window: Vec<Column>,
        _threshold: f64,
    ) -> Result<DriftReport> {
        let mode = Mode::for_phase(config, &PHASES, "score")?;
        mode.misbehave()?;
        let features = if mode == Mode::HugeOutput {
            (0..100)
                .map(|i| FeatureScore {
                    feature: format!("{i:0>width$}", width = HUGE_BYTES / 100),
                    score: 0.0,
                    p_value: None,
                    drifted: false,
                })
                .collect()
        } else {
            window
                .into_iter()
                .map(|c| FeatureScore {
                    feature: c.name,
                    score: 0.0,
                    p_value: None,
                    drifted: false,
                })
                .collect()
        };
        Ok(DriftReport {
            features,
            score: 0.0,
            drifted: false,
        })
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_drift_detector!(HostileDrift);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;

    fn config(mode: &str, phase: &str) -> Config {
        Config::new([
            ("mode", ConfigValue::Text(mode.into())),
            ("phase", ConfigValue::Text(phase.into())),
        ])
    }

    #[test]
    fn ok_and_huge_output() {
        let window = vec![Column::numeric("x", vec![1.0])];
        let r = HostileDrift::score(&config("ok", "all"), &[], window.clone(), 0.1).unwrap();
        assert_eq!(r.features[0].feature, "x");
        let s = HostileDrift::fit(&config("huge-output", "fit"), vec![]).unwrap();
        assert_eq!(s.len(), HUGE_BYTES);
        // Only the chosen phase misbehaves.
        let r = HostileDrift::score(&config("huge-output", "fit"), &[], window, 0.1).unwrap();
        assert_eq!(r.features.len(), 1);
        let e = HostileDrift::fit(&config("sleep", "fit"), vec![]).unwrap_err();
        assert!(e.message().contains("config `mode`"), "{e}");
    }

    #[test]
    #[should_panic(expected = "trap requested")]
    fn trap_panics() {
        let _ = HostileDrift::fit(&config("trap", "fit"), vec![]);
    }
}
