//! In-process ONNX inference with tract.
//!
//! A model is loaded, optimized and planned once ([`OnnxModel::load`]); the
//! plan is shared (`Arc`) and immutable, so one [`OnnxModel`] serves requests
//! from any number of threads at once, each call running in its own state.
//! The first axis of the input is a symbolic batch dimension, so the same
//! plan takes one row or many.
//!
//! tract covers the ONNX operators and part of `ai.onnx.ml`; Cairn adds
//! `Scaler` (what scikit-learn's `StandardScaler` exports to), so that
//! skl2onnx pipelines load as they are.

use crate::tensor::{DataType, InputError, NamedTensor, TensorData};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TDim, TVec,
    Tensor, TypedRunnableModel, tract_ndarray, tvec,
};
use tract_onnx::tract_hir::infer::Factoid;

/// Why a model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file is not a model tract can load, optimize and plan.
    #[error("cannot load the ONNX model: {0}")]
    Load(String),
    /// The request does not fit the model's input (a 400).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The model failed while running (a 500).
    #[error("the ONNX model failed: {0}")]
    Run(String),
}

/// One input or output of a model.
#[derive(Clone, Debug)]
struct Port {
    name: String,
    datatype: DataType,
    /// tract's element type (for outputs, before conversion to `datatype`).
    datum: DatumType,
    /// `None` for a symbolic dimension (the batch).
    shape: Vec<Option<usize>>,
}

/// A loaded, optimized ONNX model, ready to run from many threads.
#[derive(Clone)]
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    input: Port,
    outputs: Vec<Port>,
    sha256: String,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("input", &self.input)
            .field("outputs", &self.outputs)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

fn load_error(e: impl fmt::Display) -> OnnxError {
    OnnxError::Load(e.to_string())
}

impl OnnxModel {
    /// Parses, optimizes and plans a model from the bytes of a `.onnx` file.
    /// The model must have exactly one input; its first axis, if the file
    /// leaves it open, becomes the symbolic batch size `N`.
    pub fn load(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        let sha256 = hex::encode(Sha256::digest(bytes));

        let mut onnx = tract_onnx::onnx();
        onnx.op_register.insert("Scaler", scaler::build);
        let mut model = onnx
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| OnnxError::Load(format!("{e:#}")))?;

        let input_outlets = model.input_outlets().map_err(load_error)?.to_vec();
        if input_outlets.len() != 1 {
            return Err(OnnxError::Load(format!(
                "the model has {} inputs; Cairn serves models with exactly one",
                input_outlets.len()
            )));
        }
        let input_name = model.node(input_outlets[0].node).name.clone();
        let fact = model.input_fact(0).map_err(load_error)?.clone();
        let datum = fact.datum_type.concretize().unwrap_or(DatumType::F32);
        let datatype = input_datatype(datum).ok_or_else(|| {
            OnnxError::Load(format!(
                "input `{input_name}` is {datum:?}; Cairn feeds FP32, FP64, INT64, INT32, \
                 BOOL or BYTES inputs"
            ))
        })?;

        // The declared dimensions, the open ones made symbolic: the first is
        // the batch `N`.
        let mut shape = Vec::new();
        let mut dims: TVec<TDim> = tvec![];
        if fact.shape.is_open() && fact.shape.dims().next().is_none() {
            return Err(OnnxError::Load(format!(
                "input `{input_name}` has no declared shape; Cairn needs at least its rank"
            )));
        }
        for (i, d) in fact.shape.dims().enumerate() {
            let dim = match d.concretize() {
                Some(d) => d,
                None if i == 0 => model.symbols.sym("N").into(),
                None => model.symbols.sym(&format!("d{i}")).into(),
            };
            shape.push(dim.as_i64().and_then(|v| usize::try_from(v).ok()));
            dims.push(dim);
        }
        model
            .set_input_fact(0, InferenceFact::dt_shape(datum, dims))
            .map_err(load_error)?;

        let output_names = model
            .output_outlets()
            .map_err(load_error)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_string)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect::<Vec<_>>();

        let typed = model
            .into_optimized()
            .map_err(|e| OnnxError::Load(format!("{e:#}")))?;
        let mut outputs = Vec::with_capacity(output_names.len());
        for (ix, name) in output_names.into_iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(load_error)?;
            let datum = fact.datum_type;
            let datatype = output_datatype(datum).ok_or_else(|| {
                OnnxError::Load(format!(
                    "output `{name}` is {datum:?}, which Cairn cannot return"
                ))
            })?;
            let shape = fact
                .shape
                .iter()
                .map(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))
                .collect();
            outputs.push(Port {
                name,
                datatype,
                datum,
                shape,
            });
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| OnnxError::Load(format!("{e:#}")))?;

        Ok(OnnxModel {
            plan,
            input: Port {
                name: input_name,
                datatype,
                datum,
                shape,
            },
            outputs,
            sha256,
        })
    }

    /// Hex SHA-256 digest of the model file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The input: name, data type and shape (`None`: any size, the batch).
    pub fn input(&self) -> (&str, DataType, Vec<Option<usize>>) {
        (
            &self.input.name,
            self.input.datatype,
            self.input.shape.clone(),
        )
    }

    /// The outputs, in the model's order: name, data type and shape.
    pub fn outputs(&self) -> Vec<(String, DataType, Vec<Option<usize>>)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.datatype, o.shape.clone()))
            .collect()
    }

    /// Runs one input tensor through the model (any batch size) and returns
    /// every output. A tensor whose name, shape or type does not fit the
    /// model's input is an [`OnnxError::Input`] naming the input.
    pub fn run(&self, input: &NamedTensor) -> Result<Vec<NamedTensor>, OnnxError> {
        let tensor = self.input_tensor(input)?;
        let results = self
            .plan
            .run(tvec![tensor.into_tvalue()])
            .map_err(|e| OnnxError::Run(format!("{e:#}")))?;
        if results.len() != self.outputs.len() {
            return Err(OnnxError::Run(format!(
                "the model returned {} outputs, expected {}",
                results.len(),
                self.outputs.len()
            )));
        }
        results
            .iter()
            .zip(&self.outputs)
            .map(|(t, port)| output_tensor(t, port).map_err(|e| OnnxError::Run(format!("{e:#}"))))
            .collect()
    }

    /// Checks a request tensor against the input and converts it for tract.
    fn input_tensor(&self, input: &NamedTensor) -> Result<Tensor, InputError> {
        let port = &self.input;
        if input.name != port.name {
            return Err(InputError::new(
                &input.name,
                format!(
                    "the model has no input `{}`; its input is `{}`",
                    input.name, port.name
                ),
            ));
        }
        let fits = input.shape.len() == port.shape.len()
            && input
                .shape
                .iter()
                .zip(&port.shape)
                .all(|(&got, want)| want.is_none_or(|w| w == got));
        if !fits {
            return Err(InputError::new(
                &input.name,
                format!(
                    "expected shape {}, got {:?}",
                    describe_shape(&port.shape),
                    input.shape
                ),
            ));
        }
        if input.data.len() != input.element_count() {
            return Err(InputError::new(
                &input.name,
                format!(
                    "shape {:?} holds {} elements, but data has {}",
                    input.shape,
                    input.element_count(),
                    input.data.len()
                ),
            ));
        }
        let text_in = input.data.datatype() == DataType::Bytes;
        if text_in != (port.datatype == DataType::Bytes) {
            return Err(InputError::new(
                &input.name,
                format!(
                    "the model takes {} data, got {}",
                    port.datatype,
                    input.data.datatype()
                ),
            ));
        }
        let shape = input.shape.as_slice();
        let array = |e: tract_ndarray::ShapeError| InputError::new(&input.name, e.to_string());
        let tensor: Tensor = match &input.data {
            TensorData::F32(v) => array_tensor(shape, v.clone()).map_err(array)?,
            TensorData::F64(v) => array_tensor(shape, v.clone()).map_err(array)?,
            TensorData::I64(v) => array_tensor(shape, v.clone()).map_err(array)?,
            TensorData::I32(v) => array_tensor(shape, v.clone()).map_err(array)?,
            TensorData::Bool(v) => array_tensor(shape, v.clone()).map_err(array)?,
            TensorData::Bytes(v) => array_tensor(shape, v.clone()).map_err(array)?,
        };
        if tensor.datum_type() == port.datum {
            return Ok(tensor);
        }
        tensor
            .cast_to_dt(port.datum)
            .map(|t| t.into_owned())
            .map_err(|e| {
                InputError::new(
                    &input.name,
                    format!(
                        "cannot convert {} data to the model's {}: {e}",
                        input.data.datatype(),
                        port.datatype
                    ),
                )
            })
    }
}

fn array_tensor<T: tract_onnx::prelude::Datum>(
    shape: &[usize],
    data: Vec<T>,
) -> Result<Tensor, tract_ndarray::ShapeError> {
    tract_ndarray::ArrayD::from_shape_vec(shape, data).map(Tensor::from)
}

fn describe_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(d) => d.to_string(),
            None if i == 0 => "N".to_string(),
            None => "?".to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The request type that feeds a tract input type.
fn input_datatype(datum: DatumType) -> Option<DataType> {
    Some(match datum {
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        DatumType::I64 => DataType::Int64,
        DatumType::I32 => DataType::Int32,
        DatumType::Bool => DataType::Bool,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

/// The response type of a tract output type (narrow types widen).
fn output_datatype(datum: DatumType) -> Option<DataType> {
    Some(match datum {
        DatumType::F64 => DataType::Fp64,
        DatumType::F32 | DatumType::F16 => DataType::Fp32,
        DatumType::I32 => DataType::Int32,
        DatumType::I64
        | DatumType::I8
        | DatumType::I16
        | DatumType::U8
        | DatumType::U16
        | DatumType::U32
        | DatumType::U64
        | DatumType::TDim => DataType::Int64,
        DatumType::Bool => DataType::Bool,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

/// A tract output as a [`NamedTensor`] of the port's data type.
fn output_tensor(t: &Tensor, port: &Port) -> tract_onnx::prelude::TractResult<NamedTensor> {
    fn read<T: tract_onnx::prelude::Datum + Clone>(
        t: &Tensor,
    ) -> tract_onnx::prelude::TractResult<Vec<T>> {
        Ok(t.try_as_plain_ram()?.as_slice::<T>()?.to_vec())
    }
    let target = match port.datatype {
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Int64 => DatumType::I64,
        DataType::Int32 => DatumType::I32,
        DataType::Bool => DatumType::Bool,
        DataType::Bytes => DatumType::String,
    };
    let t = t.cast_to_dt(target)?;
    let data = match port.datatype {
        DataType::Fp32 => TensorData::F32(read(&t)?),
        DataType::Fp64 => TensorData::F64(read(&t)?),
        DataType::Int64 => TensorData::I64(read(&t)?),
        DataType::Int32 => TensorData::I32(read(&t)?),
        DataType::Bool => TensorData::Bool(read(&t)?),
        DataType::Bytes => TensorData::Bytes(read(&t)?),
    };
    Ok(NamedTensor::new(
        port.name.clone(),
        t.shape().to_vec(),
        data,
    ))
}

/// `ai.onnx.ml` `Scaler`: `Y = (X - offset) * scale` as `FP32`, `offset`
/// and `scale` each one value or one per feature (the last axis).
mod scaler {
    use tract_onnx::model::ParsingContext;
    use tract_onnx::pb::NodeProto;
    use tract_onnx::tract_hir::internal::*;
    use tract_onnx::tract_hir::tract_core::ops::{cast::cast, math};

    #[derive(Debug, Clone, PartialEq)]
    struct Scaler {
        offset: Vec<f32>,
        scale: Vec<f32>,
    }

    pub(super) fn build(
        _ctx: &ParsingContext,
        node: &NodeProto,
    ) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
        let offset = node
            .get_attr_opt_vec::<f32>("offset")?
            .unwrap_or_else(|| vec![0.0]);
        let scale = node
            .get_attr_opt_vec::<f32>("scale")?
            .unwrap_or_else(|| vec![1.0]);
        ensure!(
            !offset.is_empty() && !scale.is_empty(),
            "Scaler: `offset` and `scale` must not be empty"
        );
        Ok((expand(Scaler { offset, scale }), vec![]))
    }

    impl Expansion for Scaler {
        fn name(&self) -> StaticName {
            "Scaler".into()
        }

        fn rules<'r, 'p: 'r, 's: 'r>(
            &'s self,
            s: &mut Solver<'r>,
            inputs: &'p [TensorProxy],
            outputs: &'p [TensorProxy],
        ) -> InferenceResult {
            check_input_arity(inputs, 1)?;
            check_output_arity(outputs, 1)?;
            s.equals(&outputs[0].datum_type, DatumType::F32)?;
            s.equals(&inputs[0].shape, &outputs[0].shape)?;
            Ok(())
        }

        fn wire(
            &self,
            prefix: &str,
            model: &mut TypedModel,
            inputs: &[OutletId],
        ) -> TractResult<TVec<OutletId>> {
            let mut x = inputs[0];
            let fact = model.outlet_fact(x)?.clone();
            let rank = fact.rank();
            ensure!(rank >= 1, "Scaler expects an input of rank 1 or more");
            if let Some(width) = fact.shape.last().and_then(|d| d.as_i64()) {
                for (name, values) in [("offset", &self.offset), ("scale", &self.scale)] {
                    ensure!(
                        values.len() == 1 || values.len() as i64 == width,
                        "Scaler: `{name}` has {} values for {width} features",
                        values.len()
                    );
                }
            }
            if fact.datum_type != f32::datum_type() {
                x = model.wire_node(format!("{prefix}.to_f32"), cast(f32::datum_type()), &[x])?[0];
            }
            let offset = tensor1(&self.offset).broadcast_into_rank(rank)?;
            let offset = model.add_const(format!("{prefix}.offset"), offset)?;
            let scale = tensor1(&self.scale).broadcast_into_rank(rank)?;
            let scale = model.add_const(format!("{prefix}.scale"), scale)?;
            let centered = model.wire_node(format!("{prefix}.sub"), math::sub(), &[x, offset])?;
            model.wire_node(format!("{prefix}.mul"), math::mul(), &[centered[0], scale])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{request_to_tensor, tensors_to_response};
    use cairn_spec::{Feature, ValueType};
    use serde_json::{Value, json};
    use std::sync::OnceLock;

    const QUICKSTART: &str = "../../examples/quickstart";

    fn model() -> &'static OnnxModel {
        static MODEL: OnceLock<OnnxModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            let bytes = std::fs::read(format!("{QUICKSTART}/models/classifier.onnx")).unwrap();
            OnnxModel::load(&bytes).unwrap()
        })
    }

    fn signature() -> Vec<Feature> {
        [
            "mean_radius",
            "mean_texture",
            "mean_smoothness",
            "worst_concavity",
        ]
        .into_iter()
        .map(|name| Feature {
            name: name.to_string(),
            ty: ValueType::Float,
            shape: vec![],
        })
        .collect()
    }

    fn sample(file: &str) -> Value {
        let text = std::fs::read_to_string(format!("{QUICKSTART}/data/{file}")).unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        body["request"].clone()
    }

    fn predict(m: &OnnxModel, request: &Value) -> Value {
        let (name, datatype, _) = m.input();
        let (tensor, _, single) = request_to_tensor(request, &signature(), name, datatype).unwrap();
        tensors_to_response(&m.run(&tensor).unwrap(), single)
    }

    fn labels(outputs: &[NamedTensor]) -> Vec<i64> {
        match &outputs[0].data {
            TensorData::I64(v) => v.clone(),
            other => panic!("labels are {other:?}"),
        }
    }

    #[test]
    fn describes_the_quickstart_model() {
        let m = model();
        assert_eq!(m.input(), ("input", DataType::Fp32, vec![None, Some(4)]));
        let outputs = m.outputs();
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[0].0, "label");
        assert_eq!(outputs[0].1, DataType::Int64);
        assert_eq!(outputs[0].2, vec![None]);
        assert_eq!(outputs[1].0, "probabilities");
        assert_eq!(outputs[1].1, DataType::Fp32);
        assert_eq!(outputs[1].2, vec![None, Some(2)]);
        let bytes = std::fs::read(format!("{QUICKSTART}/models/classifier.onnx")).unwrap();
        assert_eq!(m.sha256(), hex::encode(Sha256::digest(&bytes)));
        assert_eq!(m.sha256().len(), 64);
    }

    #[test]
    fn the_sample_request_is_class_0() {
        let response = predict(model(), &sample("sample-request.json"));
        assert_eq!(response["label"], json!(0), "{response}");
        let p = response["probabilities"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        let p0 = p[0].as_f64().unwrap();
        let p1 = p[1].as_f64().unwrap();
        assert!(p0 > 0.99, "{response}");
        assert!((p0 + p1 - 1.0).abs() < 1e-5, "{response}");
    }

    #[test]
    fn the_sample_batch_gives_its_labels() {
        let response = predict(model(), &sample("sample-batch.json"));
        assert_eq!(response["label"], json!([0, 1, 0, 0, 0]), "{response}");
        assert_eq!(response["probabilities"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn runs_a_tensor_directly() {
        let input = NamedTensor::new(
            "input",
            vec![2, 4],
            TensorData::F32(vec![
                19.55, 28.77, 0.0926, 0.4251, 11.13, 16.62, 0.08151, 0.0458,
            ]),
        );
        let outputs = model().run(&input).unwrap();
        assert_eq!(outputs[0].name, "label");
        assert_eq!(outputs[0].shape, vec![2]);
        assert_eq!(labels(&outputs), vec![0, 1]);
        assert_eq!(outputs[1].name, "probabilities");
        assert_eq!(outputs[1].shape, vec![2, 2]);
        assert_eq!(outputs[1].datatype, DataType::Fp32);

        // FP64 data is converted to the model's FP32.
        let input = NamedTensor::new(
            "input",
            vec![1, 4],
            TensorData::F64(vec![11.13, 16.62, 0.08151, 0.0458]),
        );
        assert_eq!(labels(&model().run(&input).unwrap()), vec![1]);
    }

    #[test]
    fn input_that_does_not_fit_is_an_input_error() {
        let m = model();
        let bad = |t: NamedTensor| match m.run(&t) {
            Err(OnnxError::Input(e)) => e,
            other => panic!("expected an input error, got {other:?}"),
        };
        let e = bad(NamedTensor::new(
            "input",
            vec![1, 3],
            TensorData::F32(vec![1.0; 3]),
        ));
        assert_eq!(e.field, "input");
        assert!(e.message.contains("[N, 4]"), "{e}");
        let e = bad(NamedTensor::new(
            "x",
            vec![1, 4],
            TensorData::F32(vec![1.0; 4]),
        ));
        assert_eq!(e.field, "x");
        let e = bad(NamedTensor::new(
            "input",
            vec![2, 4],
            TensorData::F32(vec![1.0; 4]),
        ));
        assert!(e.message.contains("8 elements"), "{e}");
        let e = bad(NamedTensor::new(
            "input",
            vec![1, 4],
            TensorData::Bytes(vec!["a".into(); 4]),
        ));
        assert!(e.message.contains("FP32"), "{e}");
    }

    #[test]
    fn is_shared_by_threads() {
        fn shareable<T: Send + Sync>(_: &T) {}
        let m = model().clone();
        shareable(&m);
        let single = sample("sample-request.json");
        let batch = sample("sample-batch.json");
        let expected = (predict(&m, &single), predict(&m, &batch));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for i in 0..200 {
                        if i % 2 == 0 {
                            assert_eq!(predict(&m, &single), expected.0);
                        } else {
                            assert_eq!(predict(&m, &batch), expected.1);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn garbage_is_a_load_error() {
        for bytes in [&b"not an onnx model at all"[..], &[0xff; 64][..], &[][..]] {
            match OnnxModel::load(bytes) {
                Err(OnnxError::Load(message)) => assert!(!message.is_empty()),
                other => panic!("expected a load error, got {other:?}"),
            }
        }
    }
}
