//! The spec API, `apiVersion: cairn/v1`: one Rust type per kind, with serde
//! for YAML and schemars for the JSON Schemas under `specs/`.
//!
//! Every document has `apiVersion`, `kind`, `metadata` and `spec`. Kinds are
//! dispatched by hand (see [`cairn_plan::loader`]) rather than with a serde tag, so
//! that errors keep their exact position.

pub mod diagnostics;
mod key;
mod kinds;
pub mod values;
pub mod yaml;

pub use key::{Lookup, ResourceKey, ScopedName};
pub use kinds::*;
pub use values::{Cpu, CronExpr, Duration, Memory, Name, RepoPath, Sha256, TimeZone};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The only API version this release reads.
pub const API_VERSION: &str = "cairn/v1";

/// The kinds of the spec API, in the order their resources are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A team's namespace, owners and quotas.
    Project,
    /// Where work runs: local devices or a Kubernetes node pool.
    ComputePool,
    /// A table or file set, for lineage.
    Dataset,
    /// A WebAssembly component.
    Plugin,
    /// A Python environment (or image) shared by workloads.
    Environment,
    /// Batch work, pipelines and schedules.
    Job,
    /// A REST endpoint serving a model.
    Model,
    /// An interactive web application.
    Application,
}

impl Kind {
    /// Every kind, in creation order.
    pub const ALL: [Kind; 8] = [
        Kind::Project,
        Kind::ComputePool,
        Kind::Dataset,
        Kind::Plugin,
        Kind::Environment,
        Kind::Job,
        Kind::Model,
        Kind::Application,
    ];

    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::ComputePool => "ComputePool",
            Kind::Dataset => "Dataset",
            Kind::Plugin => "Plugin",
            Kind::Environment => "Environment",
            Kind::Job => "Job",
            Kind::Model => "Model",
            Kind::Application => "Application",
        }
    }

    /// Parses a `kind:` value.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether resources of this kind live outside any project (projects
    /// themselves, and pools, which are shared infrastructure).
    pub fn is_global(self) -> bool {
        matches!(self, Kind::Project | Kind::ComputePool)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata` of every document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The resource's name, unique per kind and project.
    pub name: Name,
    /// The project the resource belongs to. May be left out when the
    /// repository declares exactly one project, or sets `project` in
    /// `cairn.yaml`. Projects and compute pools have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Name>,
    /// Labels, copied to everything that runs for this resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes for people and tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The `spec` of a document, by kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // built once per document; boxing would only add noise
pub enum Spec {
    /// A `Project`.
    Project(ProjectSpec),
    /// A `ComputePool`.
    ComputePool(ComputePoolSpec),
    /// A `Dataset`.
    Dataset(DatasetSpec),
    /// A `Plugin`.
    Plugin(PluginSpec),
    /// An `Environment`.
    Environment(EnvironmentSpec),
    /// A `Job`.
    Job(JobSpec),
    /// A `Model`.
    Model(Box<ModelSpec>),
    /// An `Application`.
    Application(ApplicationSpec),
}

impl Spec {
    /// The kind of this spec.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Project(_) => Kind::Project,
            Spec::ComputePool(_) => Kind::ComputePool,
            Spec::Dataset(_) => Kind::Dataset,
            Spec::Plugin(_) => Kind::Plugin,
            Spec::Environment(_) => Kind::Environment,
            Spec::Job(_) => Kind::Job,
            Spec::Model(_) => Kind::Model,
            Spec::Application(_) => Kind::Application,
        }
    }
}

/// JSON Schemas of the spec API, generated from the types above.
pub mod schema {
    use super::*;
    use schemars::generate::SchemaSettings;
    use serde_json::{Value, json};

    /// A whole document of one kind.
    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Document<S: JsonSchema> {
        /// Always `cairn/v1`.
        api_version: String,
        /// The kind of resource.
        kind: String,
        /// Name, project, labels and annotations.
        metadata: Metadata,
        /// The kind's specification.
        spec: S,
    }

    fn document<S: JsonSchema>(kind: Kind) -> Value {
        let generator = SchemaSettings::draft07().into_generator();
        let mut schema = serde_json::to_value(generator.into_root_schema_for::<Document<S>>())
            .expect("schema serializes");
        schema["title"] = json!(format!("Cairn {kind}"));
        schema["description"] = json!(format!(
            "A `{kind}` document of the Cairn spec API ({API_VERSION})."
        ));
        schema["properties"]["apiVersion"] =
            json!({"const": API_VERSION, "description": "Always `cairn/v1`."});
        schema["properties"]["kind"] = json!({"const": kind.as_str()});
        // `spec` may be left out when all of its fields are optional.
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|r| r != "spec");
        }
        schema
    }

    /// File name of the schema of one kind.
    pub fn file_name(kind: Kind) -> String {
        format!("{}.schema.json", kind.as_str().to_ascii_lowercase())
    }

    /// Every schema file: one per kind, `cairn.schema.json` for a document
    /// of any kind (dispatching on `kind`), and `cairn-config.schema.json`
    /// for `cairn.yaml`.
    pub fn generate() -> Vec<(String, Value)> {
        let mut files: Vec<(String, Value)> = Kind::ALL
            .iter()
            .map(|&kind| {
                let schema = match kind {
                    Kind::Project => document::<ProjectSpec>(kind),
                    Kind::ComputePool => document::<ComputePoolSpec>(kind),
                    Kind::Dataset => document::<DatasetSpec>(kind),
                    Kind::Plugin => document::<PluginSpec>(kind),
                    Kind::Environment => document::<EnvironmentSpec>(kind),
                    Kind::Job => document::<JobSpec>(kind),
                    Kind::Model => document::<ModelSpec>(kind),
                    Kind::Application => document::<ApplicationSpec>(kind),
                };
                (file_name(kind), schema)
            })
            .collect();
        let dispatch: Vec<Value> = Kind::ALL
            .iter()
            .map(|&kind| {
                json!({
                    "if": {"properties": {"kind": {"const": kind.as_str()}}, "required": ["kind"]},
                    "then": {"$ref": file_name(kind)}
                })
            })
            .collect();
        files.push((
            "cairn.schema.json".into(),
            json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "title": "Cairn spec",
                "description": format!("Any document of the Cairn spec API ({API_VERSION})."),
                "type": "object",
                "required": ["apiVersion", "kind", "metadata"],
                "properties": {
                    "apiVersion": {"const": API_VERSION},
                    "kind": {"enum": Kind::ALL.map(Kind::as_str)}
                },
                "allOf": dispatch
            }),
        ));
        files
    }
}
