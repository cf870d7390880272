//! `linear-model`: a `runtime: wasm` model serving linear and logistic
//! regression from a JSON artifact of coefficients, e.g. scikit-learn's
//! fitted `coef_`, `intercept_` and `classes_`:
//!
//! ```json
//! {"kind": "logistic",
//!  "features": ["mean_radius", "mean_texture"],
//!  "coef": [[0.9, -1.2]], "intercept": [0.3], "classes": [0, 1]}
//! ```
//!
//! - `kind`: `logistic` (binary with one row of `coef`: the sigmoid gives
//!   the last class's probability; multiclass with one row per class:
//!   softmax) or `linear` (one row of `coef` per target);
//! - `features` (optional): the input columns' names, in `coef` order.
//!
//! Inputs: one tensor of shape `[rows, features]` (any name), one tensor
//! `[features]` for a single row, or one tensor per feature (shape `[rows]`
//! or `[rows, 1]`) named as in `features`; numbers of any type. Outputs: `label` (the classes' type, `[rows]`) and
//! `probabilities` (float32 `[rows, classes]`) for `logistic`;
//! `prediction` (float64 `[rows]`, or `[rows, targets]`) for `linear`.

use cairn_plugin_sdk::model::{Tensor, TensorData};
use cairn_plugin_sdk::{Config, Error, Model, Result};
use serde::Deserialize;

/// The artifact's JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// `logistic` or `linear`.
    pub kind: Kind,
    /// Input column names, in `coef` order.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// One row of weights per class (or target).
    pub coef: Vec<Vec<f64>>,
    /// One intercept per row of `coef`.
    pub intercept: Vec<f64>,
    /// Class labels (logistic), numbers or strings.
    #[serde(default)]
    pub classes: Option<Vec<serde_json::Value>>,
}

/// The kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Logistic regression (classification).
    Logistic,
    /// Linear regression.
    Linear,
}

/// A loaded model.
#[derive(Debug)]
pub struct LinearModel {
    artifact: Artifact,
    n_features: usize,
}

impl LinearModel {
    /// Parses and checks an artifact.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let artifact: Artifact = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(format!("the artifact is not a linear-model JSON file: {e}"))
        })?;
        let n_features = artifact.coef.first().map_or(0, Vec::len);
        if n_features == 0 {
            return Err("the artifact's `coef` is empty".into());
        }
        if artifact.coef.iter().any(|r| r.len() != n_features) {
            return Err("the artifact's `coef` rows differ in length".into());
        }
        if artifact.intercept.len() != artifact.coef.len() {
            return Err(Error::new(format!(
                "the artifact has {} intercepts for {} rows of `coef`",
                artifact.intercept.len(),
                artifact.coef.len()
            )));
        }
        if let Some(f) = &artifact.features
            && f.len() != n_features
        {
            return Err(Error::new(format!(
                "the artifact names {} features but `coef` has {n_features} columns",
                f.len()
            )));
        }
        if artifact.kind == Kind::Logistic {
            let n_classes = if artifact.coef.len() == 1 {
                2
            } else {
                artifact.coef.len()
            };
            if let Some(c) = &artifact.classes
                && c.len() != n_classes
            {
                return Err(Error::new(format!(
                    "the artifact lists {} classes but its coefficients describe {n_classes}",
                    c.len()
                )));
            }
        }
        Ok(LinearModel {
            artifact,
            n_features,
        })
    }

    /// The input rows, `rows × features`, from the request's tensors.
    fn rows(&self, inputs: &[Tensor]) -> Result<Vec<Vec<f64>>> {
        let k = self.n_features;
        let numbers = |t: &Tensor| {
            t.data.to_f64().ok_or_else(|| {
                Error::new(format!(
                    "input `{}` is {}, not numbers",
                    t.name,
                    t.data.kind()
                ))
            })
        };
        if let [t] = inputs
            && t.shape.len() == 1
            && t.shape[0] as usize == k
            && self
                .artifact
                .features
                .as_ref()
                .is_none_or(|f| !f.contains(&t.name))
        {
            return Ok(vec![numbers(t)?]);
        }
        if let [t] = inputs
            && t.shape.len() == 2
        {
            if t.shape[1] as usize != k {
                return Err(Error::new(format!(
                    "input `{}` has {} columns; the model takes {k}",
                    t.name, t.shape[1]
                )));
            }
            let flat = numbers(t)?;
            return Ok(flat.chunks(k).map(<[f64]>::to_vec).collect());
        }
        let names = self.artifact.features.as_ref().ok_or_else(|| {
            Error::new(format!(
                "send one tensor of shape [rows, {k}]: the artifact names no features"
            ))
        })?;
        let mut columns = Vec::with_capacity(k);
        for name in names {
            let t = inputs
                .iter()
                .find(|t| t.name == *name)
                .ok_or_else(|| Error::new(format!("missing input `{name}`")))?;
            columns.push(numbers(t)?);
        }
        let n = columns[0].len();
        if let Some((name, c)) = names.iter().zip(&columns).find(|(_, c)| c.len() != n) {
            return Err(Error::new(format!(
                "input `{name}` has {} values, `{}` has {n}",
                c.len(),
                names[0]
            )));
        }
        Ok((0..n)
            .map(|r| columns.iter().map(|c| c[r]).collect())
            .collect())
    }

    /// The linear scores `coef · x + intercept` of one row.
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        self.artifact
            .coef
            .iter()
            .zip(&self.artifact.intercept)
            .map(|(w, b)| w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b)
            .collect()
    }

    /// Class probabilities of one row (logistic).
    pub fn probabilities(&self, x: &[f64]) -> Vec<f64> {
        let s = self.scores(x);
        if let [z] = s[..] {
            let p = 1.0 / (1.0 + (-z).exp());
            return vec![1.0 - p, p];
        }
        let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|z| (z - top).exp()).collect();
        let total: f64 = e.iter().sum();
        e.into_iter().map(|v| v / total).collect()
    }

    fn labels(&self, winners: Vec<usize>) -> Result<TensorData> {
        let Some(classes) = &self.artifact.classes else {
            return Ok(TensorData::Int64(
                winners.into_iter().map(|i| i as i64).collect(),
            ));
        };
        if let Some(ints) = classes
            .iter()
            .map(serde_json::Value::as_i64)
            .collect::<Option<Vec<_>>>()
        {
            return Ok(TensorData::Int64(
                winners.into_iter().map(|i| ints[i]).collect(),
            ));
        }
        Ok(TensorData::Text(
            winners
                .into_iter()
                .map(|i| match &classes[i] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ))
    }
}

impl Model for LinearModel {
    fn load(config: &Config, artifact: Vec<u8>) -> Result<Self> {
        config.check_keys(&[])?;
        Self::from_json(&artifact)
    }

    fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let rows = self.rows(&inputs)?;
        let n = rows.len() as u64;
        if rows.iter().any(|r| r.iter().any(|x| !x.is_finite())) {
            return Err("inputs must be finite numbers".into());
        }
        match self.artifact.kind {
            Kind::Linear => {
                let targets = self.artifact.coef.len();
                let data: Vec<f64> = rows.iter().flat_map(|r| self.scores(r)).collect();
                let shape = if targets == 1 {
                    vec![n]
                } else {
                    vec![n, targets as u64]
                };
                Ok(vec![Tensor {
                    name: "prediction".into(),
                    shape,
                    data: TensorData::Float64(data),
                }])
            }
            Kind::Logistic => {
                let probs: Vec<Vec<f64>> = rows.iter().map(|r| self.probabilities(r)).collect();
                let n_classes = probs.first().map_or(2, Vec::len) as u64;
                let winners = probs
                    .iter()
                    .map(|p| {
                        p.iter()
                            .enumerate()
                            .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                                if v > best.1 { (i, v) } else { best }
                            })
                            .0
                    })
                    .collect();
                Ok(vec![
                    Tensor {
                        name: "label".into(),
                        shape: vec![n],
                        data: self.labels(winners)?,
                    },
                    Tensor {
                        name: "probabilities".into(),
                        shape: vec![n, n_classes],
                        data: TensorData::Float32(
                            probs.into_iter().flatten().map(|p| p as f32).collect(),
                        ),
                    },
                ])
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
cairn_plugin_sdk::export_model!(LinearModel);

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<LinearModel> {
        LinearModel::load(&Config::default(), json.as_bytes().to_vec())
    }

    #[test]
    fn binary_logistic_on_a_matrix() {
        let m =
            load(r#"{"kind":"logistic","coef":[[1.0,-2.0]],"intercept":[0.5],"classes":[0,1]}"#)
                .unwrap();
        let out = m
            .predict(vec![Tensor {
                name: "input".into(),
                shape: vec![2, 2],
                data: TensorData::Float32(vec![1.0, 0.0, 0.0, 1.0]),
            }])
            .unwrap();
        // z = 1.5 → p1 = 1/(1+e^-1.5) = 0.8175744761936437; z = −1.5 → 0.18242552380635635
        assert_eq!(out[0].data, TensorData::Int64(vec![1, 0]));
        assert_eq!(out[1].shape, [2, 2]);
        let TensorData::Float32(p) = &out[1].data else {
            panic!()
        };
        assert!((p[1] - 0.817_574_5).abs() < 1e-6 && (p[3] - 0.182_425_5).abs() < 1e-6);
    }

    #[test]
    fn multiclass_and_linear_with_named_features() {
        let m = load(
            r#"{"kind":"logistic","features":["a","b"],"coef":[[1,0],[0,1],[0,0]],"intercept":[0,0,0],"classes":["x","y","z"]}"#,
        )
        .unwrap();
        let col = |name: &str, v: Vec<f64>| Tensor {
            name: name.into(),
            shape: vec![v.len() as u64],
            data: TensorData::Float64(v),
        };
        let out = m
            .predict(vec![col("b", vec![3.0]), col("a", vec![1.0])])
            .unwrap();
        assert_eq!(out[0].data, TensorData::Text(vec!["y".into()]));
        let lin = load(r#"{"kind":"linear","features":["a","b"],"coef":[[2,3]],"intercept":[1]}"#)
            .unwrap();
        let out = lin
            .predict(vec![col("a", vec![1.0, 2.0]), col("b", vec![1.0, 0.0])])
            .unwrap();
        assert_eq!(out[0].data, TensorData::Float64(vec![6.0, 5.0]));
        let e = lin.predict(vec![col("a", vec![1.0])]).unwrap_err();
        assert_eq!(e.message(), "missing input `b`");
    }

    #[test]
    fn bad_artifacts_are_refused() {
        let e = load("{}").unwrap_err();
        assert!(
            e.message()
                .starts_with("the artifact is not a linear-model JSON file"),
            "{e}"
        );
        let e = load(r#"{"kind":"linear","coef":[[1,2]],"intercept":[1,2]}"#).unwrap_err();
        assert_eq!(
            e.message(),
            "the artifact has 2 intercepts for 1 rows of `coef`"
        );
        let e = load(r#"{"kind":"logistic","coef":[[1]],"intercept":[0],"classes":[1,2,3]}"#)
            .unwrap_err();
        assert!(e.message().contains("lists 3 classes"), "{e}");
    }

    #[test]
    fn quickstart_artifact_predicts_the_sample_request() {
        let bytes = include_bytes!("../../../examples/quickstart/models/linear-model.json");
        let m = LinearModel::load(&Config::default(), bytes.to_vec()).unwrap();
        // examples/quickstart/data/sample-request.json: a malignant-looking tumour.
        let out = m
            .predict(vec![Tensor {
                name: "input".into(),
                shape: vec![1, 4],
                data: TensorData::Float32(vec![19.55, 28.77, 0.0926, 0.4251]),
            }])
            .unwrap();
        assert_eq!(out[0].data, TensorData::Int64(vec![0]));
        // The same row as a 1-D tensor; sklearn's predict_proba gives
        // [[9.99820669e-01 1.79330919e-04]].
        let out = m
            .predict(vec![Tensor {
                name: "input".into(),
                shape: vec![4],
                data: TensorData::Float64(vec![19.55, 28.77, 0.0926, 0.4251]),
            }])
            .unwrap();
        let TensorData::Float32(p) = &out[1].data else {
            panic!()
        };
        assert!((f64::from(p[1]) - 1.793_309_19e-4).abs() < 1e-9, "{p:?}");
    }
}
