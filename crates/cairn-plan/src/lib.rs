//! From spec files to a plan, with no I/O: the files are read through the
//! [`snapshot::SpecFiles`] trait (Git's object database, the work tree or
//! memory implement it), loaded into typed resources with diagnostics
//! ([`loader`]), checked across the repository ([`validate`]), and compared
//! with what runs by the pure planner ([`plan`]).

pub mod loader;
pub mod plan;
pub mod snapshot;
pub mod validate;

/// Every JSON Schema under `specs/`: the spec API's kinds
/// ([`cairn_spec::schema::generate`]) and `cairn.yaml`.
pub fn schemas() -> Vec<(String, serde_json::Value)> {
    let mut files = cairn_spec::schema::generate();
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut config = serde_json::to_value(generator.into_root_schema_for::<loader::RepoConfig>())
        .expect("schema serializes");
    config["title"] = serde_json::json!("cairn.yaml");
    files.push(("cairn-config.schema.json".into(), config));
    files
}
