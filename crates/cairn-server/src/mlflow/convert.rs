//! The store's tracking records as MLflow's wire types, and back.

use cairn_api::mlflow as wire;
use cairn_store::tracking as store;

/// Store pairs → wire pairs.
pub(crate) fn pairs(kv: &[store::KeyValue]) -> Vec<wire::KeyValue> {
    kv.iter()
        .map(|p| wire::KeyValue::new(&p.key, &p.value))
        .collect()
}

/// Wire pairs → store pairs.
pub(crate) fn to_pairs(kv: &[wire::KeyValue]) -> Vec<store::KeyValue> {
    kv.iter()
        .map(|p| store::KeyValue::new(&p.key, &p.value))
        .collect()
}

/// A metric point.
pub(crate) fn metric(m: &store::Metric) -> wire::Metric {
    wire::Metric {
        key: m.key.clone(),
        value: m.value,
        timestamp: m.timestamp_ms,
        step: m.step,
        ..wire::Metric::default()
    }
}

/// A wire metric point for the store (its dataset and model are not kept).
pub(crate) fn to_metric(m: &wire::Metric) -> store::Metric {
    store::Metric {
        key: m.key.clone(),
        value: m.value,
        timestamp_ms: m.timestamp,
        step: m.step,
    }
}

/// An experiment.
pub(crate) fn experiment(e: &store::Experiment) -> wire::Experiment {
    wire::Experiment {
        experiment_id: e.id.to_string(),
        name: e.name.clone(),
        artifact_location: e.artifact_location.clone(),
        lifecycle_stage: e.lifecycle.as_str().into(),
        last_update_time: Some(e.updated_ms),
        creation_time: Some(e.created_ms),
        tags: pairs(&e.tags),
    }
}

/// A run's description.
pub(crate) fn run_info(i: &store::RunInfo) -> wire::RunInfo {
    wire::RunInfo {
        run_uuid: i.id.clone(),
        run_id: i.id.clone(),
        experiment_id: i.experiment_id.to_string(),
        run_name: i.name.clone(),
        user_id: i.user.clone(),
        status: i.status.as_str().into(),
        start_time: i.start_ms,
        end_time: i.end_ms,
        artifact_uri: i.artifact_uri.clone(),
        lifecycle_stage: i.lifecycle.as_str().into(),
    }
}

/// A dataset input.
fn dataset_input(d: &store::DatasetInput) -> wire::DatasetInput {
    wire::DatasetInput {
        tags: pairs(&d.tags),
        dataset: wire::Dataset {
            name: d.dataset.name.clone(),
            digest: d.dataset.digest.clone(),
            source_type: d.dataset.source_type.clone(),
            source: d.dataset.source.clone(),
            schema: d.dataset.schema.clone(),
            profile: d.dataset.profile.clone(),
        },
    }
}

/// A wire dataset input for the store.
pub(crate) fn to_dataset_input(d: &wire::DatasetInput) -> store::DatasetInput {
    store::DatasetInput {
        tags: to_pairs(&d.tags),
        dataset: store::Dataset {
            name: d.dataset.name.clone(),
            digest: d.dataset.digest.clone(),
            source_type: d.dataset.source_type.clone(),
            source: d.dataset.source.clone(),
            schema: d.dataset.schema.clone(),
            profile: d.dataset.profile.clone(),
        },
    }
}

/// A run.
pub(crate) fn run(r: &store::Run) -> wire::Run {
    wire::Run {
        info: run_info(&r.info),
        data: wire::RunData {
            metrics: r.metrics.iter().map(metric).collect(),
            params: pairs(&r.params),
            tags: pairs(&r.tags),
        },
        inputs: wire::RunInputs {
            dataset_inputs: r.inputs.iter().map(dataset_input).collect(),
            model_inputs: Vec::new(),
        },
        outputs: wire::RunOutputs {
            model_outputs: r
                .outputs
                .iter()
                .map(|o| wire::ModelOutput {
                    model_id: o.model_id.clone(),
                    step: o.step,
                })
                .collect(),
        },
    }
}

/// A logged model.
pub(crate) fn logged_model(m: &store::LoggedModel) -> wire::LoggedModel {
    wire::LoggedModel {
        info: wire::LoggedModelInfo {
            model_id: m.id.clone(),
            experiment_id: m.experiment_id.to_string(),
            name: m.name.clone(),
            creation_timestamp_ms: m.created_ms,
            last_updated_timestamp_ms: m.updated_ms,
            artifact_uri: m.artifact_uri.clone(),
            status: m.status.clone(),
            model_type: m.model_type.clone(),
            source_run_id: m.source_run_id.clone(),
            status_message: None,
            tags: pairs(&m.tags),
        },
        data: wire::LoggedModelData {
            params: pairs(&m.params),
            metrics: Vec::new(),
        },
    }
}
