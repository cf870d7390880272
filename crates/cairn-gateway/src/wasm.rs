//! Gateway tensors to and from the `model` world's WIT tensors: the plugin
//! host speaks WIT, the gateway converts.

use crate::tensor::{NamedTensor, TensorData};
use cairn_plugin_host::model::{Tensor, WitData};

/// A gateway tensor as a WIT tensor.
pub fn to_wit(t: NamedTensor) -> Tensor {
    Tensor {
        name: t.name,
        shape: t.shape.iter().map(|&d| d as u64).collect(),
        data: match t.data {
            TensorData::F32(v) => WitData::Float32(v),
            TensorData::F64(v) => WitData::Float64(v),
            TensorData::I64(v) => WitData::Int64(v),
            TensorData::I32(v) => WitData::Int64(v.into_iter().map(i64::from).collect()),
            TensorData::Bool(v) => WitData::Boolean(v),
            TensorData::Bytes(v) => WitData::Text(v),
        },
    }
}

/// A WIT tensor as a gateway tensor; errs when its shape does not hold
/// its data.
pub fn from_wit(t: Tensor) -> Result<NamedTensor, String> {
    let data = match t.data {
        WitData::Float32(v) => TensorData::F32(v),
        WitData::Float64(v) => TensorData::F64(v),
        WitData::Int64(v) => TensorData::I64(v),
        WitData::Boolean(v) => TensorData::Bool(v),
        WitData::Text(v) => TensorData::Bytes(v),
    };
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let tensor = NamedTensor::new(t.name, shape, data);
    if tensor.element_count() != tensor.data.len() {
        return Err(format!(
            "output `{}` has shape {:?} but {} values",
            tensor.name,
            tensor.shape,
            tensor.data.len()
        ));
    }
    Ok(tensor)
}
