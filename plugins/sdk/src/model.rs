//! The `model` world: models served by the gateway from WebAssembly
//! (`runtime: wasm`).

/// Bindings generated from `plugins/wit` for the `model` world.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cairn:plugin/model",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_model_world",
        runtime_path: "::cairn_plugin_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::exports::cairn::plugin::inference::{Tensor, TensorData};

use crate::{Config, Result};

crate::config_conversion!(bindings::cairn::plugin::types);

/// A model. The host calls [`load`](Model::load) once per instance and
/// reuses the instance for many [`predict`](Model::predict) calls.
pub trait Model: Sized + 'static {
    /// Loads the spec's `artifact` file.
    fn load(config: &Config, artifact: Vec<u8>) -> Result<Self>;

    /// Predicts for a batch.
    fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>>;
}

impl TensorData {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Float32(v) => v.len(),
            TensorData::Float64(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Boolean(v) => v.len(),
            TensorData::Text(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            TensorData::Float32(_) => "float32",
            TensorData::Float64(_) => "float64",
            TensorData::Int64(_) => "int64",
            TensorData::Boolean(_) => "boolean",
            TensorData::Text(_) => "text",
        }
    }

    /// The elements as `f64` (numbers and booleans), or `None` for text.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            TensorData::Float32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Float64(v) => v.clone(),
            TensorData::Int64(v) => v.iter().map(|x| *x as f64).collect(),
            TensorData::Boolean(v) => v.iter().map(|x| f64::from(u8::from(*x))).collect(),
            TensorData::Text(_) => return None,
        })
    }
}

#[doc(hidden)]
pub fn __load<T: Model>(
    config: Vec<(String, ConfigValueWit)>,
    artifact: Vec<u8>,
) -> std::result::Result<T, String> {
    T::load(&config_from_wit(config), artifact).map_err(String::from)
}

#[doc(hidden)]
pub fn __predict<T: Model>(
    model: Option<&T>,
    inputs: Vec<Tensor>,
) -> std::result::Result<Vec<Tensor>, String> {
    match model {
        Some(m) => m.predict(inputs).map_err(String::from),
        None => Err("the model is not loaded: call `load` first".to_string()),
    }
}

/// Exports a [`Model`] as the component's `inference` interface. The loaded
/// model lives in the instance between calls.
///
/// ```ignore
/// cairn_plugin_sdk::export_model!(MyModel);
/// ```
#[macro_export]
macro_rules! export_model {
    ($model:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __CAIRN_MODEL: ::std::cell::RefCell<::std::option::Option<$model>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __CairnModelExport;
            impl $crate::model::bindings::exports::cairn::plugin::inference::Guest for __CairnModelExport {
                fn load(
                    config: $crate::model::bindings::cairn::plugin::types::Config,
                    artifact: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    let model = $crate::model::__load::<$model>(config, artifact)?;
                    __CAIRN_MODEL.with(|m| *m.borrow_mut() = ::std::option::Option::Some(model));
                    ::std::result::Result::Ok(())
                }
                fn predict(
                    inputs: ::std::vec::Vec<$crate::model::Tensor>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::model::Tensor>, ::std::string::String> {
                    __CAIRN_MODEL.with(|m| $crate::model::__predict::<$model>(m.borrow().as_ref(), inputs))
                }
            }
            $crate::model::bindings::__export_model_world!(__CairnModelExport with_types_in $crate::model::bindings);
        };
    };
}
