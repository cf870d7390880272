// tidy: long file: one type per kind of the spec API; their doc comments are the JSON Schemas' descriptions.
//! The `spec` types of each kind.

use crate::values::{Cpu, CronExpr, Duration, Memory, Name, RepoPath, Sha256, TimeZone};
use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

fn one() -> u32 {
    1
}

// ---------------------------------------------------------------- Project --

/// A team's namespace: owners, a default pool, quotas and shared settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectSpec {
    /// What the project is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// People or teams responsible (e-mail addresses or handles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// The pool used by workloads that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pool: Option<Name>,
    /// Upper bounds on what the project's workloads may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Resources>,
    /// Environment variables given to every workload of the project.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Secrets given to every workload as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    /// Who may do what in the project: roles granted to users and groups
    /// of the identity provider (Cairn's operators are `admin` everywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessGrant>,
}

/// A role granted in a project, weakest first: each includes the ones
/// before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    /// Reads status, runs, logs, models, metrics and the audit log.
    Viewer,
    /// Also starts runs, rolls models back, evaluates drift, manages model
    /// access keys and reads inference inputs and outputs.
    Editor,
    /// Also manages the project's API tokens.
    Owner,
}

impl ProjectRole {
    /// The role's name, as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Editor => "editor",
            ProjectRole::Owner => "owner",
        }
    }
}

impl std::fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role given to users and groups in a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessGrant {
    /// The role.
    pub role: ProjectRole,
    /// Users, as the identity provider names them: the e-mail address or
    /// the subject (`sub`) of their OpenID Connect identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups of the identity provider (its groups claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The start of the names of the controller's variables that hold
/// secrets for workloads ([`SecretRef::from_env`]); no other variable of
/// the controller (its Git token, its webhook secret) can be given away.
pub const SECRET_ENV_PREFIX: &str = "CAIRN_SECRET_";

/// A secret made available to workloads as an environment variable. The
/// value never lives in Git: the operator sets it where Cairn runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// The environment variable the workload sees.
    pub name: String,
    /// The controller's environment variable that holds the value; its name
    /// starts with `CAIRN_SECRET_` (on Kubernetes, the key of the same name
    /// in the namespace's `cairn-secrets` Secret is used instead).
    pub from_env: String,
}

/// CPU, memory and GPUs: asked for by workloads, bounded by project quotas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// CPU cores (`2`, `0.5`) or millicores (`500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Memory (`512Mi`, `4Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

// ------------------------------------------------------------ ComputePool --

/// Where work runs: devices of this machine, a Kubernetes node pool, or both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComputePoolSpec {
    /// What the pool is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Run on this machine (the embedded runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalPool>,
    /// Run on a Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesPool>,
}

/// The part of this machine a pool may use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalPool {
    /// GPUs by index (`[0, 1]`) or `all` discovered through NVML.
    #[serde(default, skip_serializing_if = "GpuSelection::is_none")]
    pub gpus: GpuSelection,
    /// CPU the pool may hand out (default: all cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Memory the pool may hand out (default: all memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Which local GPUs a pool owns.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum GpuSelection {
    /// None.
    #[default]
    None,
    /// Every GPU the driver reports.
    All,
    /// These device indices.
    Devices(Vec<u32>),
}

impl GpuSelection {
    fn is_none(&self) -> bool {
        matches!(self, GpuSelection::None)
    }
}

impl Serialize for GpuSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GpuSelection::None => s.collect_seq(std::iter::empty::<u32>()),
            GpuSelection::All => s.serialize_str("all"),
            GpuSelection::Devices(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for GpuSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GpuSelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all` or a list of GPU indices such as [0, 1]")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<GpuSelection, E> {
                match s {
                    "all" => Ok(GpuSelection::All),
                    "none" => Ok(GpuSelection::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GpuSelection, A::Error> {
                let mut devices = Vec::new();
                while let Some(i) = seq.next_element::<u32>()? {
                    devices.push(i);
                }
                Ok(GpuSelection::Devices(devices))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for GpuSelection {
    fn schema_name() -> Cow<'static, str> {
        "GpuSelection".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "'all' GPUs discovered through NVML, or a list of device indices.",
            "anyOf": [
                {"type": "string", "enum": ["all", "none"]},
                {"type": "array", "items": {"type": "integer", "minimum": 0}}
            ]
        })
    }
}

/// Whether `namespace` is one of Kubernetes' own (`kube-system`,
/// `kube-public`, `kube-node-lease`, any `kube-*`), which Cairn never writes to.
pub fn is_reserved_namespace(namespace: &str) -> bool {
    namespace.starts_with("kube-")
}

/// A Kubernetes node pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesPool {
    /// Namespace for workloads (default: the project's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Node labels that pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pool's pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// The extended resource that counts GPUs.
    #[serde(default = "default_gpu_resource")]
    pub gpu_resource: String,
    /// A GPU model label value, e.g. `nvidia-h100-80gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// PriorityClass of the pool's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".into()
}

/// A Kubernetes toleration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    /// The taint key (empty with `Exists` tolerates everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How the key and value are compared.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The taint value, for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect tolerated (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

/// How a toleration matches a taint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    /// Key and value must match.
    #[default]
    Equal,
    /// The key must exist.
    Exists,
}

/// A taint effect.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// Do not schedule.
    NoSchedule,
    /// Avoid scheduling.
    PreferNoSchedule,
    /// Evict.
    NoExecute,
}

// ---------------------------------------------------------------- Dataset --

/// A table or file set that jobs read and write and models are trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatasetSpec {
    /// Where the data lives, e.g. `warehouse.sales.customers` or `s3://bucket/prefix`.
    pub source: String,
    /// The data's format, e.g. `table`, `csv`, `parquet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Who owns the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the data is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Columns, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<Column>,
}

/// A column of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// What the column holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a column or a model feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Floating point.
    Float,
    /// Integer.
    Int,
    /// Text.
    String,
    /// True or false.
    Bool,
    /// A timestamp.
    Timestamp,
}

// ----------------------------------------------------------------- Plugin --

/// A WebAssembly component that extends Cairn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSpec {
    /// The component's `.wasm` file in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<RepoPath>,
    /// One of the plugins shipped with Cairn instead of a file (see
    /// [`BUILTIN_PLUGINS`]), e.g. `drift-psi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Expected SHA-256 of the file; checked when the plugin is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// The WIT world the component implements.
    pub world: PluginWorld,
    /// Bounds on every call into the plugin.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Settings passed to the plugin, typed by its world.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// The WIT worlds a plugin can implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    /// Scores a window of features against a reference sample.
    DriftDetector,
    /// Computes business metrics from inference events.
    BusinessMetric,
    /// Turns an application's files into a launch command.
    AppFramework,
    /// Serves predictions for `runtime: wasm` models.
    Model,
}

/// Bounds on a plugin call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginLimits {
    /// Linear memory limit.
    #[serde(default = "default_plugin_memory")]
    pub memory: Memory,
    /// Wall-clock limit per call.
    #[serde(default = "default_plugin_timeout")]
    pub timeout: Duration,
    /// Optional instruction budget per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory: default_plugin_memory(),
            timeout: default_plugin_timeout(),
            fuel: None,
        }
    }
}

fn default_plugin_memory() -> Memory {
    Memory::from_bytes(64 << 20)
}

fn default_plugin_timeout() -> Duration {
    Duration::from_secs(1)
}

// ------------------------------------------------------------ Environment --

/// Dependencies of a workload: a Python environment built once per distinct
/// (interpreter, requirements) and reused, and/or a container image for the
/// Kubernetes runtime. Declared as a named `Environment` and referenced by
/// name, or written inline in a workload's `environment`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// What the environment is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Python version constraint: `3.11`, `>=3.10`, `3.10.*` (default: any `python3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// A `requirements.txt` or `pyproject.toml` in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<RepoPath>,
    /// Packages, as pip requirement specifiers (`scikit-learn==1.5.2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Where packages come from.
    #[serde(default, skip_serializing_if = "PackageIndex::is_default")]
    pub index: PackageIndex,
    /// Environment variables given to workloads using it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Container image, for the Kubernetes runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl EnvironmentSpec {
    /// Whether it asks for a Python environment (not only an image or env vars).
    pub fn needs_python(&self) -> bool {
        self.python.is_some() || self.requirements.is_some() || !self.packages.is_empty()
    }
}

/// Package sources for an environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageIndex {
    /// Index URL replacing PyPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra index URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_urls: Vec<String>,
    /// Directories of wheels in the repository (`--find-links`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub find_links: Vec<RepoPath>,
    /// Use no index at all: only `findLinks` (offline builds).
    #[serde(default)]
    pub no_index: bool,
}

impl PackageIndex {
    fn is_default(&self) -> bool {
        *self == PackageIndex::default()
    }
}

/// A workload's environment: the name of an `Environment`, or one inline.
#[derive(Clone, Debug, PartialEq)]
pub enum EnvironmentRef {
    /// A declared `Environment` of the same project.
    Named(Name),
    /// Written in place.
    Inline(Box<EnvironmentSpec>),
}

impl Serialize for EnvironmentRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvironmentRef::Named(n) => n.serialize(s),
            EnvironmentRef::Inline(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for EnvironmentRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvironmentRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the name of an Environment, or an inline environment")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<EnvironmentRef, E> {
                s.parse().map(EnvironmentRef::Named).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvironmentRef, A::Error> {
                EnvironmentSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|e| EnvironmentRef::Inline(Box::new(e)))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for EnvironmentRef {
    fn schema_name() -> Cow<'static, str> {
        "EnvironmentRef".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let inline = generator.subschema_for::<EnvironmentSpec>();
        json_schema!({
            "description": "The name of an Environment of the same project, or an inline environment.",
            "anyOf": [
                {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                inline
            ]
        })
    }
}

// -------------------------------------------------------------------- Job --

/// Batch work: a command run to completion, on demand, on a schedule or as a
/// step of a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    /// What the job does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The command: a list of arguments, or one string run by `sh -c`.
    pub command: Command,
    /// Working directory in the repository (default: the repository root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<RepoPath>,
    /// Container image, for the Kubernetes runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Dependencies: an `Environment`'s name, or one inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRef>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// What one run needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The pool to run in (default: the project's default pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Name>,
    /// When to run on its own: a cron expression, or `{cron, timezone}`.
    #[serde(
        default,
        deserialize_with = "schedule_from",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<ScheduleShorthand>")]
    pub schedule: Option<Schedule>,
    /// Jobs that must succeed first: together they form a pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Name>,
    /// How many times a failed run is retried.
    #[serde(default)]
    pub retries: u32,
    /// A run taking longer is killed (with its whole process group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Parameters, given to the run as `CAIRN_PARAM_<NAME>`; a manual run may override them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: IndexMap<String, serde_json::Value>,
    /// Files the run produces, kept as versioned artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<JobOutput>,
    /// Datasets read and written, for lineage.
    #[serde(default, skip_serializing_if = "Lineage::is_empty")]
    pub lineage: Lineage,
    /// Events that start the job besides schedules and manual runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// How its runs are tracked: every run is an MLflow run in the job's
    /// experiment (`PROJECT/JOB` unless named here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentSpec>,
    /// A hyper-parameter sweep: a manual or scheduled run becomes one run
    /// per combination of `params`, in parallel up to `maxParallel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSpec>,
}

/// Where a job's runs are tracked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The experiment's name (default `JOB`), always in the job's project:
    /// its MLflow name is `PROJECT/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// An output holding a JSON object whose numbers are logged as the
    /// run's final metrics (a `metrics.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Name>,
}

/// A hyper-parameter sweep over a job's `params`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SweepSpec {
    /// Every combination of these values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>")]
    pub grid: IndexMap<String, Vec<serde_json::Value>>,
    /// Values drawn at random: a list to choose from, or a range.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "BTreeMap<String, RandomParam>")]
    pub random: IndexMap<String, RandomParam>,
    /// The seed of the random draws (the same seed, the same runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// At most this many runs (a grid is cut; random draws this many; default 10 for random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u32>,
    /// At most this many runs at once (default 1), within the pool's quotas.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub max_parallel: u32,
    /// What makes a run the best.
    pub objective: Objective,
    /// Stop starting runs once this many in a row finished without
    /// improving the objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A randomly drawn parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RandomParam {
    /// One of these values.
    Choice(Vec<serde_json::Value>),
    /// A number in `[min, max)`.
    Range(RandomRange),
}

/// A range to draw a number from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RandomRange {
    /// The smallest value.
    pub min: f64,
    /// The bound above.
    pub max: f64,
    /// Drawn uniformly on a log scale (both bounds above zero).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    /// Drawn as a whole number.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integer: bool,
}

/// The metric a sweep optimizes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Objective {
    /// The metric's name, as the runs log it.
    pub metric: String,
    /// `maximize` or `minimize`.
    pub goal: Goal,
}

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Larger is better.
    #[default]
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Goal {
    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }
}

/// A command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Command {
    /// Arguments, run directly.
    #[default]
    Empty,
    /// Arguments, run directly.
    Args(Vec<String>),
    /// A shell line, run by `sh -c`.
    Shell(String),
}

impl Command {
    /// Whether no command was given.
    pub fn is_empty(&self) -> bool {
        match self {
            Command::Empty => true,
            Command::Args(a) => a.is_empty(),
            Command::Shell(s) => s.trim().is_empty(),
        }
    }
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Empty => s.collect_seq(std::iter::empty::<String>()),
            Command::Args(a) => a.serialize(s),
            Command::Shell(line) => s.serialize_str(line),
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command: a list of arguments or one shell line")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Command, E> {
                Ok(Command::Shell(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut args = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    args.push(a);
                }
                Ok(Command::Args(args))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Command {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A list of arguments run directly, or one string run by 'sh -c'.",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1}
            ]
        })
    }
}

/// A cron schedule, written as the expression alone or with a time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Schedule {
    /// The cron expression.
    pub cron: CronExpr,
    /// The time zone the expression is read in (default `UTC`).
    #[serde(default)]
    pub timezone: TimeZone,
    /// Skip a run when the previous one is still going (default true).
    #[serde(default = "yes")]
    pub forbid_concurrent: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for ScheduleShorthand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScheduleShorthand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cron expression, or {cron, timezone}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ScheduleShorthand, E> {
                Ok(ScheduleShorthand(Schedule {
                    cron: s.parse().map_err(E::custom)?,
                    timezone: TimeZone::default(),
                    forbid_concurrent: true,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScheduleShorthand, A::Error> {
                Schedule::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ScheduleShorthand)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads `schedule: "0 3 * * *"` as well as `schedule: {cron: ..., timezone: ...}`.
pub(crate) struct ScheduleShorthand(pub Schedule);

impl JsonSchema for ScheduleShorthand {
    fn schema_name() -> Cow<'static, str> {
        "ScheduleOrCron".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<Schedule>();
        json_schema!({
            "anyOf": [
                {"type": "string", "description": "A cron expression, read in UTC."},
                full
            ]
        })
    }
}

/// Deserializes an optional schedule in either of its forms.
pub(crate) fn schedule_from<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    Option::<ScheduleShorthand>::deserialize(d).map(|o| o.map(|s| s.0))
}

/// A file a job run produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobOutput {
    /// The output's name, referenced by models as `from: {job, output}`.
    pub name: Name,
    /// The file, relative to the run's output directory (`$CAIRN_OUTPUT_DIR`).
    pub path: RepoPath,
    /// What the file is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Datasets a job reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lineage {
    /// Datasets read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<Name>,
    /// Datasets written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<Name>,
}

impl Lineage {
    fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty()
    }
}

/// Events that start a job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Trigger {
    /// Run only when asked (`cairn run`, a pipeline, a schedule or another
    /// trigger), not when the job is created or changed by a commit.
    #[serde(default)]
    pub manual: bool,
    /// Run when a commit changes files matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_commit: Vec<String>,
    /// Run when drift is detected on these models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_drift: Vec<Name>,
}

// ------------------------------------------------------------------ Model --

/// A model served as a REST endpoint behind the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSpec {
    /// What the model predicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How the model is executed.
    pub runtime: ModelRuntime,
    /// The model file in the repository (`onnx`, `wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<RepoPath>,
    /// The model file produced by a job's latest successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<JobArtifactRef>,
    /// For `process`: the server command; it listens on `$PORT`.
    #[serde(default, skip_serializing_if = "Command::is_empty")]
    pub command: Command,
    /// For `process`: a Python function served by the bundled runner, `file.py:function`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Working directory in the repository for `process` models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<RepoPath>,
    /// For `wasm`: the plugin (world `model`) that serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Name>,
    /// Environment variables for `process` models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Dependencies: an `Environment`'s name, or one inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRef>,

    /// Workers (in-process) or processes serving the model.
    #[serde(default = "one")]
    pub replicas: u32,
    /// What one replica needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The pool to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Name>,
    /// What the model is, for monitoring: classification or regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<ModelTask>,
    /// Input and output features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Access keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Request limits at the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ServingLimits>,
    /// `sync` (default): a response is sent once its event is durable.
    #[serde(default)]
    pub durability: Durability,
    /// How new versions replace old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Business metrics and drift detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    /// Datasets the model was trained on.
    #[serde(default, skip_serializing_if = "ModelLineage::is_empty")]
    pub lineage: ModelLineage,
}

/// How a model is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelRuntime {
    /// In-process ONNX inference.
    Onnx,
    /// A WebAssembly plugin of world `model`.
    Wasm,
    /// The user's own server process, or a Python function.
    Process,
}

/// A job output to serve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobArtifactRef {
    /// The producing job.
    pub job: Name,
    /// The job's output name.
    pub output: Name,
    /// Pins the model to the artifact with this digest (written by
    /// promotions and `cairn models rollback`); without it the latest
    /// successful run's artifact is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
}

/// What kind of prediction a model makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelTask {
    /// Labels: accuracy, precision, recall, F1.
    Classification,
    /// Numbers: MAE, RMSE.
    Regression,
}

/// Input and output features of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Signature {
    /// Input features, in the order the model takes them.
    #[serde(default)]
    pub inputs: Vec<Feature>,
    /// Outputs.
    #[serde(default)]
    pub outputs: Vec<Feature>,
}

/// One feature of a signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Feature {
    /// Feature name.
    pub name: String,
    /// Feature type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// Shape for tensors, e.g. `[2]` (default: a scalar).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<u32>,
}

/// Access control for a model endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Auth {
    /// Whether requests must carry an access key (`cairn keys create`).
    #[serde(default)]
    pub required: bool,
}

/// Request limits at the gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServingLimits {
    /// Largest accepted request body (413 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<Memory>,
    /// Per-request timeout (504 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Requests served at once; more wait in a queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Requests allowed to wait; more get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
}

/// When an inference event is written relative to its response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The response waits until the event is durable (group commit).
    #[default]
    Sync,
    /// The event is written shortly after the response.
    Async,
}

/// How a new version replaces the old one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rollout {
    /// The strategy.
    pub strategy: RolloutStrategy,
    /// Canary traffic percentages, ending at 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<u8>,
    /// Time spent at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Rollback thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
}

/// Rollout strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutStrategy {
    /// New replicas ready before old ones drain, all at once.
    Rolling,
    /// Traffic moves in steps, with automatic rollback.
    Canary,
}

/// When a canary is rolled back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Highest acceptable error rate (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Highest acceptable p99 latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p99: Option<Duration>,
    /// Largest acceptable accuracy drop against the stable version (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_accuracy_drop: Option<f64>,
}

/// Monitoring of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Monitoring {
    /// Business-metric plugins run on every inference event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Name>,
    /// Drift detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// Drift detection on a model's inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Drift {
    /// The drift-detector plugin.
    pub plugin: Name,
    /// Reference sample (CSV with a header) in the repository.
    pub reference: RepoPath,
    /// Feature columns compared (default: all inputs of the signature).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The window of recent inferences scored.
    pub window: Duration,
    /// Score above which the window has drifted.
    pub threshold: f64,
    /// What to do on drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_drift: Option<OnDrift>,
}

/// Actions taken when drift is detected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OnDrift {
    /// The retraining job (its pipeline upstream included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain: Option<Name>,
    /// Deploy the retrained model as a new version.
    #[serde(default)]
    pub redeploy: bool,
    /// How a new version is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promotion>,
    /// Minimum time between two retrains (default 1 hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Duration>,
    /// Drifted evaluations in a row needed to retrain (default 2), so that
    /// one noisy window does not start a retrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

/// How a retrained version reaches production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Promotion {
    /// A commit on the watched branch.
    Commit,
    /// A branch ready for a pull request.
    PullRequest,
    /// Deploy at once and record the commit.
    Auto,
}

/// Datasets a model was trained on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelLineage {
    /// Training datasets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trained_on: Vec<Name>,
}

impl ModelLineage {
    fn is_empty(&self) -> bool {
        self.trained_on.is_empty()
    }
}

// ------------------------------------------------------------ Application --

/// An interactive web application served at `/apps/NAME/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// What the application does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `flask`, `shiny`, `streamlit`, `command`, or the name of an app-framework plugin.
    pub framework: String,
    /// The application's directory in the repository.
    pub path: RepoPath,
    /// The command (required for `command`; overrides the framework's).
    #[serde(default, skip_serializing_if = "Command::is_empty")]
    pub command: Command,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Dependencies: an `Environment`'s name, or one inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRef>,

    /// Processes serving the application.
    #[serde(default = "one")]
    pub replicas: u32,
    /// What one replica needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The pool to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Name>,
    /// The path answering 200 when the application is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// When a stopped application is started again.
    #[serde(default)]
    pub restart: RestartPolicy,
}

/// When a stopped process is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Always.
    #[default]
    Always,
    /// Only after a failure.
    OnFailure,
    /// Never.
    Never,
}

/// Plugins shipped with Cairn, usable with `builtin:`.
pub const BUILTIN_PLUGINS: [(&str, PluginWorld); 8] = [
    ("drift-psi", PluginWorld::DriftDetector),
    ("drift-ks", PluginWorld::DriftDetector),
    ("drift-chi2", PluginWorld::DriftDetector),
    ("prediction-value", PluginWorld::BusinessMetric),
    ("flask", PluginWorld::AppFramework),
    ("shiny", PluginWorld::AppFramework),
    ("streamlit", PluginWorld::AppFramework),
    ("linear-model", PluginWorld::Model),
];

/// Application frameworks built into Cairn (provided by its bundled plugins).
pub const BUILTIN_FRAMEWORKS: [&str; 4] = ["flask", "shiny", "streamlit", "command"];
