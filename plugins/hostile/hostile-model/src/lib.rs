//! `hostile-model`: a `runtime: wasm` model that misbehaves as its config's
//! `mode` says (see the `hostile` crate). `phase` is `predict` (the
//! default), `load` or `all`. In `ok` mode `predict` returns its inputs
//! unchanged; in `huge-output` mode a float32 tensor `huge` of 100 MB.

use cairn_plugin_sdk::model::{Tensor, TensorData};
use cairn_plugin_sdk::{Config, Model, Result};
use hostile::{HUGE_BYTES, Mode};

const PHASES: [&str; 3] = ["predict", "load", "all"];

/// The model: what `predict` should do.
pub struct HostileModel {
    mode: Mode,
}

impl Model for HostileModel {
    fn load(config: &Config, _artifact: Vec<u8>) -> Result<Self> {
        Mode::for_phase(config, &PHASES, "load")?.misbehave()?;
        Ok(HostileModel {
            mode: Mode::for_phase(config, &PHASES, "predict")?,
        })
    }

    fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.mode.misbehave()?;
        if self.mode == Mode::HugeOutput {
            let n = HUGE_BYTES / 4;
            return Ok(vec![Tensor {
                name: "huge".into(),
                shape: vec![n as u64],
                data: TensorData::Float32(vec![1.0; n]),
            }]);
        }
        Ok(inputs)
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_model!(HostileModel);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::ConfigValue;

    #[test]
    fn echoes_in_ok_mode_and_errs_when_memory_runs_out() {
        let m = HostileModel::load(&Config::default(), vec![]).unwrap();
        let t = Tensor {
            name: "x".into(),
            shape: vec![2],
            data: TensorData::Float64(vec![1.0, 2.0]),
        };
        assert_eq!(m.predict(vec![t.clone()]).unwrap(), vec![t]);
        let huge = HostileModel::load(
            &Config::new([("mode", ConfigValue::Text("huge-output".into()))]),
            vec![],
        )
        .unwrap();
        assert_eq!(huge.predict(vec![]).unwrap()[0].data.len(), HUGE_BYTES / 4);
    }
}
