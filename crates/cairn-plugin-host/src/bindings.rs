//! Host bindings generated from the WIT package, one module per world; the
//! shared `types` and `log` interfaces are generated once (in `drift`).

#![allow(missing_docs, clippy::all)]

pub mod drift {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "drift-detector",
    });
}

pub mod metrics {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "business-metric",
        with: {
            "cairn:plugin/types": super::drift::cairn::plugin::types,
            "cairn:plugin/log": super::drift::cairn::plugin::log,
        },
    });
}

pub mod apps {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "app-framework",
        with: {
            "cairn:plugin/types": super::drift::cairn::plugin::types,
            "cairn:plugin/log": super::drift::cairn::plugin::log,
        },
    });
}

pub mod model {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "model",
        with: {
            "cairn:plugin/types": super::drift::cairn::plugin::types,
            "cairn:plugin/log": super::drift::cairn::plugin::log,
        },
    });
}
