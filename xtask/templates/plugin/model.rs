//! `{{name}}`: a Cairn model (world `model`, for `runtime: wasm`).
//!
//! The artifact is a JSON number `k`; the model multiplies every number of
//! its inputs by `k` and returns them as float64 tensors of the same names
//! and shapes.

use cairn_plugin_sdk::model::{Tensor, TensorData};
use cairn_plugin_sdk::{Config, Error, Model, Result};

/// The loaded model.
pub struct Scale {
    factor: f64,
}

impl Model for Scale {
    fn load(config: &Config, artifact: Vec<u8>) -> Result<Self> {
        config.check_keys(&[])?;
        let text = String::from_utf8(artifact).map_err(|_| Error::new("the artifact is not text"))?;
        let factor = text
            .trim()
            .parse()
            .map_err(|_| Error::new(format!("the artifact `{}` is not a number", text.trim())))?;
        Ok(Scale { factor })
    }

    fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        inputs
            .into_iter()
            .map(|t| {
                let values = t
                    .data
                    .to_f64()
                    .ok_or_else(|| Error::new(format!("input `{}` is not numeric", t.name)))?;
                Ok(Tensor {
                    name: t.name,
                    shape: t.shape,
                    data: TensorData::Float64(values.into_iter().map(|x| x * self.factor).collect()),
                })
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_model!(Scale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_inputs() {
        let m = Scale::load(&Config::default(), b"2.5".to_vec()).unwrap();
        let out = m
            .predict(vec![Tensor { name: "x".into(), shape: vec![2], data: TensorData::Int64(vec![1, 2]) }])
            .unwrap();
        assert_eq!(out[0].data, TensorData::Float64(vec![2.5, 5.0]));
    }
}
