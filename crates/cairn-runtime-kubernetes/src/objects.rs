// tidy: long file: one builder per kind of object; the golden tests cover them together.
//! The objects a desired state becomes on Kubernetes: a pure, deterministic
//! function of the specs, the commit, the runtime's settings and the
//! applications' launch plans (resolved beforehand by [`crate::launch`]).
//! Nothing here reads files or runs plugins.
//!
//! - a `Project` becomes its `Namespace` and, with quotas, a `ResourceQuota`;
//! - a `Job` becomes a `CronJob` when it has a schedule (a suspended one when
//!   it only runs on demand); each run is a `batch/v1` `Job` ([`run_job`]);
//! - a `Model` or an `Application` becomes a `Deployment` and a `Service`;
//! - a `ComputePool` becomes the pods' node selector, tolerations, priority
//!   class and GPU limits.
//!
//! Every object carries Cairn's labels ([`LABEL_MANAGED_BY`], project, kind,
//! name and commit): they are what pruning and the watcher select on.

use cairn_plan::loader::{DesiredState, Resource, ResourceKey};
use cairn_runtime::frameworks::LaunchPlan;
use cairn_spec::{
    ApplicationSpec, Command, ComputePoolSpec, EnvironmentRef, JobSpec, Kind, KubernetesPool,
    ModelRuntime, ModelSpec, Name, ProjectSpec, Resources, Spec,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec as KubeJobSpec, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    PodSpec, PodTemplateSpec, Probe, ResourceQuota, ResourceQuotaSpec, ResourceRequirements,
    SecretKeySelector, Service, ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ApiResource;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The label every object Cairn applies carries, with value `cairn`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The owning project.
pub const LABEL_PROJECT: &str = "cairn.dev/project";
/// The spec kind, lower case (`model`, `job`, ...).
pub const LABEL_KIND: &str = "cairn.dev/kind";
/// The spec name.
pub const LABEL_NAME: &str = "cairn.dev/name";
/// The commit that produced the object.
pub const LABEL_COMMIT: &str = "cairn.dev/commit";
/// A job run's number, on the `Job` objects of runs.
pub const LABEL_RUN: &str = "cairn.dev/run";
/// The pipeline a run belongs to, on the `Job` objects of runs.
pub const LABEL_PIPELINE: &str = "cairn.dev/pipeline";
/// The spec file, as an annotation.
pub const ANNOTATION_FILE: &str = "cairn.dev/file";
/// A run's upstream jobs (comma separated), as an annotation on a suspended `Job`.
pub const ANNOTATION_DEPENDS_ON: &str = "cairn.dev/depends-on";
/// The port model and application containers listen on.
pub const SERVING_PORT: i32 = 8080;
/// Where the commit's files are checked out inside pods.
pub const WORKSPACE: &str = "/workspace";
/// Why a pipeline step never ran, as an annotation on its suspended `Job`.
pub const ANNOTATION_SKIPPED: &str = "cairn.dev/skipped";
/// The Secret holding the values of a project's `secrets`.
pub const SECRETS_NAME: &str = "cairn-secrets";
/// The name of a project's `ResourceQuota`.
pub const QUOTA_NAME: &str = "cairn-quota";

/// How the runtime builds objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    /// The `cairn` image, run by pods of `onnx` models (`cairn model-server`).
    pub image: String,
    /// An image with `git`, run as the init container that checks the
    /// commit's files out into [`WORKSPACE`].
    pub git_image: String,
    /// The repository URL pods clone; without it, pods get no files.
    pub repo_url: Option<String>,
    /// The URL of Cairn's server inside the cluster, given as `CAIRN_SERVER`.
    pub server_url: Option<String>,
    /// The namespaces Cairn may write to (`--namespaces`); empty: any but
    /// the reserved ones.
    pub namespaces: Vec<String>,
    /// Namespaces never written to beside `kube-*`: the controller's own.
    pub reserved: Vec<String>,
}

impl KubeSettings {
    /// Why Cairn may not write to `namespace`, if it may not.
    pub fn refuses(&self, namespace: &str) -> Option<String> {
        if cairn_spec::is_reserved_namespace(namespace) {
            Some(format!("namespace `{namespace}` is Kubernetes' own"))
        } else if self.reserved.iter().any(|r| r == namespace) {
            Some(format!(
                "namespace `{namespace}` is the controller's own; workloads run elsewhere"
            ))
        } else if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == namespace) {
            Some(format!(
                "namespace `{namespace}` is not one the operator allows ({}); ask for it to be added to `--namespaces`",
                self.namespaces.join(", ")
            ))
        } else {
            None
        }
    }
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            image: format!("ghcr.io/cairn-ml/cairn:{}", env!("CARGO_PKG_VERSION")),
            git_image: "alpine/git:2.47.2".into(),
            repo_url: None,
            server_url: None,
            namespaces: Vec::new(),
            reserved: Vec::new(),
        }
    }
}

/// Why a resource has no objects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The workload has no container image.
    #[error("{0} has no container image: set `image` on its environment (or the job)")]
    NoImage(String),
    /// The workload cannot run on Kubernetes yet.
    #[error("{0}")]
    Unsupported(String),
    /// The spec refers to something that cannot be resolved.
    #[error("{0}")]
    Invalid(String),
    /// The resource's namespace is not one Cairn may write to.
    #[error("{0}")]
    Namespace(String),
}

/// The launch plan of each application resource, or why it has none
/// (see [`crate::launch`]).
pub type Launches = BTreeMap<ResourceKey, Result<LaunchPlan, String>>;

/// One object Cairn applies.
#[derive(Clone, Debug, PartialEq)]
pub enum KubeObject {
    /// A project's namespace.
    Namespace(Box<Namespace>),
    /// A project's quotas.
    ResourceQuota(Box<ResourceQuota>),
    /// A job run.
    Job(Box<Job>),
    /// A scheduled (or on-demand) job.
    CronJob(Box<CronJob>),
    /// A model's or application's replicas.
    Deployment(Box<Deployment>),
    /// A model's or application's stable address.
    Service(Box<Service>),
}

/// The kinds of objects Cairn manages, for listing and pruning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// `v1/Namespace` (cluster scoped; never pruned).
    Namespace,
    /// `v1/ResourceQuota`.
    ResourceQuota,
    /// `batch/v1/Job`.
    Job,
    /// `batch/v1/CronJob`.
    CronJob,
    /// `apps/v1/Deployment`.
    Deployment,
    /// `v1/Service`.
    Service,
}

impl ObjectKind {
    /// Every managed kind, in apply order.
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Namespace,
        ObjectKind::ResourceQuota,
        ObjectKind::Service,
        ObjectKind::Deployment,
        ObjectKind::CronJob,
        ObjectKind::Job,
    ];

    /// The API resource (group, version, plural) of the kind.
    pub fn api_resource(self) -> ApiResource {
        match self {
            ObjectKind::Namespace => ApiResource::erase::<Namespace>(&()),
            ObjectKind::ResourceQuota => ApiResource::erase::<ResourceQuota>(&()),
            ObjectKind::Job => ApiResource::erase::<Job>(&()),
            ObjectKind::CronJob => ApiResource::erase::<CronJob>(&()),
            ObjectKind::Deployment => ApiResource::erase::<Deployment>(&()),
            ObjectKind::Service => ApiResource::erase::<Service>(&()),
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != ObjectKind::Namespace
    }

    /// The kind's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "Namespace",
            ObjectKind::ResourceQuota => "ResourceQuota",
            ObjectKind::Job => "Job",
            ObjectKind::CronJob => "CronJob",
            ObjectKind::Deployment => "Deployment",
            ObjectKind::Service => "Service",
        }
    }

    /// The managed kind with this `apiVersion` and `kind`, if any.
    pub fn from_kind(api_version: &str, kind: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| {
            let ar = k.api_resource();
            ar.api_version == api_version && ar.kind == kind
        })
    }
}

impl KubeObject {
    /// The object's kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            KubeObject::Namespace(_) => ObjectKind::Namespace,
            KubeObject::ResourceQuota(_) => ObjectKind::ResourceQuota,
            KubeObject::Job(_) => ObjectKind::Job,
            KubeObject::CronJob(_) => ObjectKind::CronJob,
            KubeObject::Deployment(_) => ObjectKind::Deployment,
            KubeObject::Service(_) => ObjectKind::Service,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            KubeObject::Namespace(o) => &o.metadata,
            KubeObject::ResourceQuota(o) => &o.metadata,
            KubeObject::Job(o) => &o.metadata,
            KubeObject::CronJob(o) => &o.metadata,
            KubeObject::Deployment(o) => &o.metadata,
            KubeObject::Service(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (none for namespaces).
    pub fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind().as_str(), self.name()),
            None => format!("{} {}", self.kind().as_str(), self.name()),
        }
    }

    /// The object as JSON, `apiVersion` and `kind` included: the body of a
    /// server-side apply.
    pub fn to_value(&self) -> Value {
        let v = match self {
            KubeObject::Namespace(o) => serde_json::to_value(o),
            KubeObject::ResourceQuota(o) => serde_json::to_value(o),
            KubeObject::Job(o) => serde_json::to_value(o),
            KubeObject::CronJob(o) => serde_json::to_value(o),
            KubeObject::Deployment(o) => serde_json::to_value(o),
            KubeObject::Service(o) => serde_json::to_value(o),
        };
        v.expect("Kubernetes objects serialize")
    }
}

/// Objects as a multi-document YAML stream.
pub fn to_yaml(objects: &[KubeObject]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(&o.to_value()).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The labels of every object of a resource.
pub fn labels(key: &ResourceKey, commit: &str) -> BTreeMap<String, String> {
    let mut labels = selector(key);
    labels.insert(LABEL_MANAGED_BY.into(), "cairn".into());
    labels.insert("app.kubernetes.io/name".into(), key.name.to_string());
    // A label value holds at most 63 characters (a SHA-1 commit has 40).
    labels.insert(
        LABEL_COMMIT.into(),
        commit.chars().take(63).collect::<String>(),
    );
    labels
}

/// The labels that identify a resource's objects (and its pods).
pub fn selector(key: &ResourceKey) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(p) = &key.project {
        labels.insert(LABEL_PROJECT.into(), p.to_string());
    }
    labels.insert(LABEL_KIND.into(), kind_label(key.kind).into());
    labels.insert(LABEL_NAME.into(), key.name.to_string());
    labels
}

/// A label selector (`a=b,c=d`) for a resource's objects.
pub fn selector_string(key: &ResourceKey) -> String {
    let mut parts = vec![format!("{LABEL_MANAGED_BY}=cairn")];
    parts.extend(selector(key).into_iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

/// The kind as a label value.
pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Project => "project",
        Kind::ComputePool => "computepool",
        Kind::Dataset => "dataset",
        Kind::Plugin => "plugin",
        Kind::Environment => "environment",
        Kind::Job => "job",
        Kind::Model => "model",
        Kind::Application => "application",
    }
}

/// Parses [`kind_label`].
pub fn kind_from_label(label: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| kind_label(*k) == label)
}

/// The name of an object: `prefix-name`, shortened with a digest when it
/// would exceed the 63 characters of a DNS label.
pub fn object_name(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}-{name}");
    if full.len() <= 63 {
        return full;
    }
    let digest = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    format!("{}-{digest}", full[..54].trim_end_matches('-'))
}

/// The namespace a project's objects live in.
pub fn project_namespace(project: Option<&Name>) -> String {
    project.map_or_else(|| "default".to_string(), ToString::to_string)
}

/// Every object of a desired state, by resource; resources that cannot run
/// on Kubernetes are returned with the reason.
pub fn desired_objects(
    state: &DesiredState,
    commit: &str,
    launches: &Launches,
    settings: &KubeSettings,
) -> (
    BTreeMap<ResourceKey, Vec<KubeObject>>,
    BTreeMap<ResourceKey, ObjectError>,
) {
    let mut objects = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for r in state.resources.values() {
        match objects_for(r, state, commit, launches, settings) {
            Ok(o) if o.is_empty() => {}
            Ok(o) => {
                objects.insert(r.key.clone(), o);
            }
            Err(e) => {
                errors.insert(r.key.clone(), e);
            }
        }
    }
    (objects, errors)
}

/// The objects of one resource (none for kinds that only configure others:
/// pools, datasets, plugins, environments). An application's launch is
/// taken from `launches`.
pub fn objects_for(
    r: &Resource,
    state: &DesiredState,
    commit: &str,
    launches: &Launches,
    settings: &KubeSettings,
) -> Result<Vec<KubeObject>, ObjectError> {
    let b = Builder {
        r,
        state,
        commit,
        launches,
        settings,
    };
    if matches!(
        r.spec,
        Spec::Project(_) | Spec::Job(_) | Spec::Model(_) | Spec::Application(_)
    ) {
        let namespace = match &r.spec {
            Spec::Project(_) => r.key.name.to_string(),
            _ => b.namespace(),
        };
        if let Some(why) = settings.refuses(&namespace) {
            return Err(ObjectError::Namespace(why));
        }
    }
    match &r.spec {
        Spec::Project(p) => Ok(b.project(p)),
        Spec::Job(j) => b.job(j).map(|o| vec![o]),
        Spec::Model(m) => b.model(m),
        Spec::Application(a) => b.application(a),
        Spec::ComputePool(_) | Spec::Dataset(_) | Spec::Plugin(_) | Spec::Environment(_) => {
            Ok(Vec::new())
        }
    }
}

/// The `Job` of one run, made from the job's `CronJob` (its template):
/// named after the run, labelled with its number and pipeline, suspended
/// while `waiting_for` (upstream jobs of the same pipeline) have not
/// succeeded, with `params` overriding the spec's parameters.
pub fn run_from_template(
    template: &CronJob,
    number: i64,
    pipeline: &str,
    waiting_for: &[String],
    params: &BTreeMap<String, String>,
) -> Job {
    let spec = template.spec.clone().unwrap_or_default();
    let cron_meta = &template.metadata;
    let job_name = cron_meta.name.clone().unwrap_or_default();
    let base = job_name.strip_prefix("job-").unwrap_or(&job_name);
    let mut meta = spec.job_template.metadata.clone().unwrap_or_default();
    meta.name = Some(object_name(&format!("job-{base}"), &number.to_string()));
    meta.namespace = cron_meta.namespace.clone();
    let labels = meta.labels.get_or_insert_default();
    labels.insert(LABEL_RUN.into(), number.to_string());
    labels.insert(LABEL_PIPELINE.into(), pipeline.to_string());
    if !waiting_for.is_empty() {
        meta.annotations
            .get_or_insert_default()
            .insert(ANNOTATION_DEPENDS_ON.into(), waiting_for.join(","));
    }
    let mut job_spec = spec.job_template.spec.unwrap_or_default();
    if !waiting_for.is_empty() {
        job_spec.suspend = Some(true);
    }
    if !params.is_empty()
        && let Some(pod) = job_spec.template.spec.as_mut()
    {
        for c in &mut pod.containers {
            let env = c.env.get_or_insert_default();
            for (k, v) in params {
                let name = format!("CAIRN_PARAM_{}", k.to_uppercase());
                env.retain(|e| e.name != name);
                env.push(EnvVar {
                    name,
                    value: Some(v.clone()),
                    value_from: None,
                });
            }
        }
    }
    Job {
        metadata: meta,
        spec: Some(job_spec),
        status: None,
    }
}

/// The URL prefix an application is served under.
pub fn app_prefix(key: &ResourceKey) -> String {
    format!("/apps/{}", key.name)
}

struct Builder<'a> {
    r: &'a Resource,
    state: &'a DesiredState,
    commit: &'a str,
    launches: &'a Launches,
    settings: &'a KubeSettings,
}

impl Builder<'_> {
    fn key(&self) -> &ResourceKey {
        &self.r.key
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace()),
            labels: Some(labels(self.key(), self.commit)),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_FILE.to_string(),
                self.r.file.to_string(),
            )])),
            ..Default::default()
        }
    }

    fn project_spec(&self) -> Option<&ProjectSpec> {
        let project = self.key().project.as_ref()?;
        match &self.state.get(Kind::Project, None, project.as_str())?.spec {
            Spec::Project(p) => Some(p),
            _ => None,
        }
    }

    fn pool(&self, pool: Option<&Name>) -> Option<&KubernetesPool> {
        let name = pool
            .cloned()
            .or_else(|| self.project_spec()?.default_pool.clone())?;
        match &self.state.get(Kind::ComputePool, None, name.as_str())?.spec {
            Spec::ComputePool(ComputePoolSpec { kubernetes, .. }) => kubernetes.as_ref(),
            _ => None,
        }
    }

    /// The namespace of the resource's workloads: its pool's, or its project's.
    fn namespace(&self) -> String {
        let pool = match &self.r.spec {
            Spec::Job(j) => j.pool.as_ref(),
            Spec::Model(m) => m.pool.as_ref(),
            Spec::Application(a) => a.pool.as_ref(),
            _ => None,
        };
        let workload = matches!(
            self.r.spec,
            Spec::Job(_) | Spec::Model(_) | Spec::Application(_)
        );
        workload
            .then(|| self.pool(pool).and_then(|p| p.namespace.clone()))
            .flatten()
            .unwrap_or_else(|| project_namespace(self.key().project.as_ref()))
    }

    fn project(&self, p: &ProjectSpec) -> Vec<KubeObject> {
        let name = self.key().name.to_string();
        let mut ns_meta = self.meta(&name);
        ns_meta.namespace = None;
        let mut objects = vec![KubeObject::Namespace(Box::new(Namespace {
            metadata: ns_meta,
            ..Default::default()
        }))];
        if let Some(q) = &p.quotas {
            let mut hard = BTreeMap::new();
            if let Some(cpu) = q.cpu {
                hard.insert("requests.cpu".to_string(), Quantity(cpu.to_string()));
            }
            if let Some(memory) = q.memory {
                hard.insert("requests.memory".to_string(), Quantity(memory.to_string()));
            }
            if let Some(gpus) = q.gpus {
                for resource in self.gpu_resources() {
                    hard.insert(format!("requests.{resource}"), Quantity(gpus.to_string()));
                }
            }
            let mut meta = self.meta(QUOTA_NAME);
            meta.namespace = Some(name);
            objects.push(KubeObject::ResourceQuota(Box::new(ResourceQuota {
                metadata: meta,
                spec: Some(ResourceQuotaSpec {
                    hard: Some(hard),
                    ..Default::default()
                }),
                status: None,
            })));
        }
        objects
    }

    /// The GPU resources of the state's Kubernetes pools (quotas count each).
    fn gpu_resources(&self) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = self
            .state
            .of_kind(Kind::ComputePool)
            .filter_map(|r| match &r.spec {
                Spec::ComputePool(ComputePoolSpec {
                    kubernetes: Some(k),
                    ..
                }) => Some(k.gpu_resource.clone()),
                _ => None,
            })
            .collect();
        if set.is_empty() {
            set.insert("nvidia.com/gpu".into());
        }
        set
    }

    /// The container image of a workload: its own, or its environment's.
    fn image(&self, own: Option<&String>, env: Option<&EnvironmentRef>) -> Option<String> {
        own.cloned().or_else(|| match env? {
            EnvironmentRef::Inline(e) => e.image.clone(),
            EnvironmentRef::Named(n) => {
                match &self
                    .state
                    .get(Kind::Environment, self.key().project.as_ref(), n.as_str())?
                    .spec
                {
                    Spec::Environment(e) => e.image.clone(),
                    _ => None,
                }
            }
        })
    }

    /// Environment variables, later ones overriding earlier ones: the
    /// project's, the environment's, Cairn's, then the workload's own.
    fn env(
        &self,
        environment: Option<&EnvironmentRef>,
        own: &BTreeMap<String, String>,
        extra: Vec<(String, String)>,
    ) -> Vec<EnvVar> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let project = self.project_spec();
        if let Some(p) = project {
            vars.extend(p.env.clone());
        }
        let env_spec = match environment {
            Some(EnvironmentRef::Inline(e)) => Some(e.env.clone()),
            Some(EnvironmentRef::Named(n)) => self
                .state
                .get(Kind::Environment, self.key().project.as_ref(), n.as_str())
                .and_then(|r| match &r.spec {
                    Spec::Environment(e) => Some(e.env.clone()),
                    _ => None,
                }),
            None => None,
        };
        vars.extend(env_spec.unwrap_or_default());
        if let Some(p) = &self.key().project {
            vars.insert("CAIRN_PROJECT".into(), p.to_string());
        }
        vars.insert("CAIRN_COMMIT".into(), self.commit.to_string());
        if let Some(server) = &self.settings.server_url {
            vars.insert("CAIRN_SERVER".into(), server.clone());
        }
        vars.extend(extra);
        vars.extend(own.clone());
        let mut out: Vec<EnvVar> = vars
            .into_iter()
            .map(|(name, value)| EnvVar {
                name,
                value: Some(value),
                value_from: None,
            })
            .collect();
        for secret in project.map(|p| p.secrets.as_slice()).unwrap_or_default() {
            out.retain(|v| v.name != secret.name);
            out.push(EnvVar {
                name: secret.name.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: SECRETS_NAME.into(),
                        key: secret.name.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            });
        }
        out
    }

    fn resources(
        &self,
        res: Option<&Resources>,
        pool: Option<&KubernetesPool>,
    ) -> Option<ResourceRequirements> {
        let res = res?;
        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        if let Some(cpu) = res.cpu {
            requests.insert("cpu".to_string(), Quantity(cpu.to_string()));
        }
        if let Some(memory) = res.memory {
            requests.insert("memory".to_string(), Quantity(memory.to_string()));
            limits.insert("memory".to_string(), Quantity(memory.to_string()));
        }
        if let Some(gpus) = res.gpus.filter(|g| *g > 0) {
            let resource = pool.map_or("nvidia.com/gpu", |p| p.gpu_resource.as_str());
            limits.insert(resource.to_string(), Quantity(gpus.to_string()));
        }
        if requests.is_empty() && limits.is_empty() {
            return None;
        }
        Some(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..Default::default()
        })
    }

    /// A pod template: the main container, the checkout of the commit's
    /// files, and the pool's placement.
    fn pod(
        &self,
        mut main: Container,
        pool: Option<&KubernetesPool>,
        restart: &str,
    ) -> PodTemplateSpec {
        let mut volumes = Vec::new();
        let mut init_containers = Vec::new();
        if let Some(url) = &self.settings.repo_url {
            volumes.push(Volume {
                name: "workspace".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            let mount = VolumeMount {
                name: "workspace".into(),
                mount_path: WORKSPACE.into(),
                ..Default::default()
            };
            init_containers.push(Container {
                name: "checkout".into(),
                image: Some(self.settings.git_image.clone()),
                command: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "git clone --quiet \"$CAIRN_REPO_URL\" {WORKSPACE} && git -C {WORKSPACE} checkout --quiet --detach \"$CAIRN_COMMIT\""
                    ),
                ]),
                env: Some(vec![
                    EnvVar {
                        name: "CAIRN_REPO_URL".into(),
                        value: Some(url.clone()),
                        value_from: None,
                    },
                    EnvVar {
                        name: "CAIRN_COMMIT".into(),
                        value: Some(self.commit.to_string()),
                        value_from: None,
                    },
                ]),
                volume_mounts: Some(vec![mount.clone()]),
                ..Default::default()
            });
            main.volume_mounts.get_or_insert_default().push(mount);
        }
        let mut node_selector = pool.map(|p| p.node_selector.clone()).unwrap_or_default();
        if let Some(gpu_type) = pool.and_then(|p| p.gpu_type.as_ref()) {
            node_selector.insert("nvidia.com/gpu.product".into(), gpu_type.clone());
        }
        let tolerations: Vec<Toleration> = pool
            .map(|p| {
                p.tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: Some(format!("{:?}", t.operator)),
                        value: t.value.clone(),
                        effect: t.effect.map(|e| format!("{e:?}")),
                        toleration_seconds: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(selector(self.key())),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![main],
                init_containers: (!init_containers.is_empty()).then_some(init_containers),
                volumes: (!volumes.is_empty()).then_some(volumes),
                node_selector: (!node_selector.is_empty()).then_some(node_selector),
                tolerations: (!tolerations.is_empty()).then_some(tolerations),
                priority_class_name: pool.and_then(|p| p.priority_class.clone()),
                restart_policy: Some(restart.into()),
                ..Default::default()
            }),
        }
    }

    fn working_dir(&self, dir: Option<&str>) -> Option<String> {
        self.settings.repo_url.as_ref()?;
        Some(match dir {
            Some(d) if !d.is_empty() && d != "." => format!("{WORKSPACE}/{d}"),
            _ => WORKSPACE.to_string(),
        })
    }

    fn job_spec(&self, spec: &JobSpec) -> Result<KubeJobSpec, ObjectError> {
        let image = self
            .image(spec.image.as_ref(), spec.environment.as_ref())
            .ok_or_else(|| ObjectError::NoImage(self.key().to_string()))?;
        let pool = self.pool(spec.pool.as_ref());
        let params = spec
            .params
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (format!("CAIRN_PARAM_{}", k.to_uppercase()), value)
            })
            .collect();
        let main = Container {
            name: "main".into(),
            image: Some(image),
            command: Some(argv(&spec.command)),
            working_dir: self.working_dir(spec.workdir.as_ref().map(|w| w.as_str())),
            env: Some(self.env(spec.environment.as_ref(), &spec.env, params)),
            resources: self.resources(spec.resources.as_ref(), pool),
            ..Default::default()
        };
        Ok(KubeJobSpec {
            backoff_limit: Some(spec.retries as i32),
            active_deadline_seconds: spec.timeout.map(|t| t.get().as_secs().max(1) as i64),
            ttl_seconds_after_finished: Some(7 * 24 * 3600),
            template: self.pod(main, pool, "Never"),
            ..Default::default()
        })
    }

    /// A job with a schedule is a `CronJob`; a job without one is a
    /// suspended `CronJob`, the template its runs are made from.
    fn job(&self, spec: &JobSpec) -> Result<KubeObject, ObjectError> {
        let job_spec = self.job_spec(spec)?;
        let (schedule, time_zone, suspend, concurrency) = match &spec.schedule {
            Some(s) => (
                s.cron.to_string(),
                Some(s.timezone.to_string()),
                false,
                if s.forbid_concurrent {
                    "Forbid"
                } else {
                    "Allow"
                },
            ),
            // Never due: runs are made from it on demand.
            None => ("0 0 1 1 *".to_string(), None, true, "Forbid"),
        };
        let mut template_meta = ObjectMeta {
            labels: Some(labels(self.key(), self.commit)),
            ..Default::default()
        };
        template_meta.annotations = Some(BTreeMap::from([(
            ANNOTATION_FILE.to_string(),
            self.r.file.to_string(),
        )]));
        Ok(KubeObject::CronJob(Box::new(CronJob {
            metadata: self.meta(&object_name("job", self.key().name.as_str())),
            spec: Some(CronJobSpec {
                schedule,
                time_zone,
                suspend: Some(suspend),
                concurrency_policy: Some(concurrency.into()),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(template_meta),
                    spec: Some(job_spec),
                },
                ..Default::default()
            }),
            status: None,
        })))
    }

    fn serving(
        &self,
        prefix: &str,
        main: Container,
        replicas: u32,
        pool: Option<&KubernetesPool>,
    ) -> Vec<KubeObject> {
        let name = object_name(prefix, self.key().name.as_str());
        let deployment = Deployment {
            metadata: self.meta(&name),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas as i32),
                selector: LabelSelector {
                    match_labels: Some(selector(self.key())),
                    ..Default::default()
                },
                // New replicas are ready before old ones go.
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String("25%".into())),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                }),
                template: self.pod(main, pool, "Always"),
                ..Default::default()
            }),
            status: None,
        };
        let service = Service {
            metadata: self.meta(&name),
            spec: Some(ServiceSpec {
                selector: Some(selector(self.key())),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                type_: Some("ClusterIP".into()),
                ..Default::default()
            }),
            status: None,
        };
        vec![
            KubeObject::Service(Box::new(service)),
            KubeObject::Deployment(Box::new(deployment)),
        ]
    }

    fn model(&self, spec: &ModelSpec) -> Result<Vec<KubeObject>, ObjectError> {
        let pool = self.pool(spec.pool.as_ref());
        let (image, command, workdir, extra) = match spec.runtime {
            ModelRuntime::Onnx => {
                let Some(artifact) = &spec.artifact else {
                    return Err(ObjectError::Unsupported(
                        "models served from a job's output (`from`) are not served on Kubernetes yet; commit the artifact and use `artifact`".into(),
                    ));
                };
                if self.settings.repo_url.is_none() {
                    return Err(ObjectError::Invalid(
                        "an `onnx` model on Kubernetes needs the repository URL pods check its artifact out from (`--repo-url`)".into(),
                    ));
                }
                let mut extra = vec![
                    ("CAIRN_MODEL".to_string(), self.key().name.to_string()),
                    (
                        "CAIRN_MODEL_ARTIFACT".to_string(),
                        format!("{WORKSPACE}/{artifact}"),
                    ),
                ];
                if let Some(sig) = &spec.signature {
                    extra.push((
                        "CAIRN_MODEL_SIGNATURE".to_string(),
                        serde_json::to_string(sig).expect("signatures serialize"),
                    ));
                }
                (
                    self.settings.image.clone(),
                    vec![
                        "cairn".to_string(),
                        "model-server".to_string(),
                        "--listen".to_string(),
                        format!("0.0.0.0:{SERVING_PORT}"),
                    ],
                    None,
                    extra,
                )
            }
            ModelRuntime::Process => {
                if spec.function.is_some() {
                    return Err(ObjectError::Unsupported(
                        "`function` models are not served on Kubernetes yet; give the model a `command` and an image".into(),
                    ));
                }
                let image = self
                    .image(None, spec.environment.as_ref())
                    .ok_or_else(|| ObjectError::NoImage(self.key().to_string()))?;
                (
                    image,
                    argv(&spec.command),
                    spec.workdir.as_ref().map(|w| w.to_string()),
                    Vec::new(),
                )
            }
            ModelRuntime::Wasm => {
                return Err(ObjectError::Unsupported(
                    "`wasm` models are served by plugins, which this build does not run yet".into(),
                ));
            }
        };
        let mut extra = extra;
        extra.push(("PORT".into(), SERVING_PORT.to_string()));
        let env = self.env(spec.environment.as_ref(), &spec.env, extra);
        let main = Container {
            name: "main".into(),
            image: Some(image),
            command: Some(command),
            working_dir: self.working_dir(workdir.as_deref()),
            env: Some(env),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: SERVING_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(http_probe(if spec.runtime == ModelRuntime::Onnx {
                "/healthz"
            } else {
                "/"
            })),
            resources: self.resources(spec.resources.as_ref(), pool),
            ..Default::default()
        };
        Ok(self.serving("model", main, spec.replicas, pool))
    }

    fn application(&self, spec: &ApplicationSpec) -> Result<Vec<KubeObject>, ObjectError> {
        let pool = self.pool(spec.pool.as_ref());
        let image = self
            .image(None, spec.environment.as_ref())
            .ok_or_else(|| ObjectError::NoImage(self.key().to_string()))?;
        let prefix = app_prefix(self.key());
        let plan = match self.launches.get(self.key()) {
            Some(Ok(plan)) => plan,
            Some(Err(e)) => return Err(ObjectError::Invalid(e.clone())),
            None => {
                return Err(ObjectError::Invalid(format!(
                    "{}: its launch was not resolved",
                    self.key()
                )));
            }
        };
        // Launch plans do not read the application's directory.
        let launch = plan
            .launch(
                spec,
                Path::new(spec.path.as_str()),
                &prefix,
                SERVING_PORT as u16,
            )
            .map_err(ObjectError::Invalid)?;
        // In a pod the server must listen on every interface.
        let argv: Vec<String> = launch
            .argv
            .iter()
            .map(|a| a.replace("127.0.0.1", "0.0.0.0"))
            .collect();
        let mut extra = launch.env.clone();
        extra.push(("PORT".into(), SERVING_PORT.to_string()));
        let main = Container {
            name: "main".into(),
            image: Some(image),
            command: Some(argv),
            working_dir: self.working_dir(Some(spec.path.as_str())),
            env: Some(self.env(spec.environment.as_ref(), &spec.env, extra)),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: SERVING_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(http_probe(&launch.health_path)),
            resources: self.resources(spec.resources.as_ref(), pool),
            ..Default::default()
        };
        Ok(self.serving("app", main, spec.replicas, pool))
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// A spec command as a container command.
fn argv(command: &Command) -> Vec<String> {
    match command {
        Command::Empty => Vec::new(),
        Command::Args(a) => a.clone(),
        Command::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_with_a_digest() {
        let name = "a".repeat(63);
        let short = object_name("model", &name);
        assert!(short.len() <= 63, "{short}");
        assert!(short.starts_with("model-aaaa"));
        assert_ne!(short, object_name("model", &"a".repeat(62)));
        assert_eq!(object_name("app", "demo"), "app-demo");
    }

    #[test]
    fn kind_labels_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind_from_label(kind_label(kind)), Some(kind));
        }
    }

    const APP: &str = r#"apiVersion: cairn/v1
kind: Project
metadata:
  name: vision
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: explorer
  project: vision
spec:
  framework: streamlit
  path: apps/explorer
  environment: {image: "python:3.12-slim"}
"#;

    /// The main container of the objects built for [`APP`] with `launches`.
    fn main_container(launches: &Launches) -> Result<Container, ObjectError> {
        let state = cairn_plan::loader::load(&cairn_plan::snapshot::Snapshot::from_files([
            ("specs.yaml", APP),
            ("apps/explorer/app.py", ""),
        ]));
        assert_eq!(state.report.errors(), 0, "{:?}", state.report);
        let r = state.resources.get(&explorer()).expect("the application");
        let objects = objects_for(r, &state, "c0ffee", launches, &KubeSettings::default())?;
        let deployment = objects
            .into_iter()
            .find_map(|o| match o {
                KubeObject::Deployment(d) => Some(d),
                _ => None,
            })
            .expect("a Deployment");
        Ok(deployment.spec.unwrap().template.spec.unwrap().containers[0].clone())
    }

    fn explorer() -> ResourceKey {
        ResourceKey {
            kind: Kind::Application,
            project: Some("vision".parse().unwrap()),
            name: "explorer".parse().unwrap(),
        }
    }

    #[test]
    fn applications_are_built_from_the_given_launch_plan() {
        // No plugin host and no files: the plan is all there is.
        let plan = LaunchPlan::Plugin {
            command: vec![
                "serve".into(),
                "--address=127.0.0.1".into(),
                "--port=$(PORT)".into(),
                "--base=$(URL_PREFIX)".into(),
            ],
            env: vec![("BASE".into(), "$(URL_PREFIX)/".into())],
            health_path: "/ready".into(),
        };
        let main = main_container(&Launches::from([(explorer(), Ok(plan))])).unwrap();
        assert_eq!(
            main.command.unwrap(),
            [
                "serve",
                "--address=0.0.0.0",
                "--port=8080",
                "--base=/apps/explorer"
            ]
        );
        let env: Vec<(String, Option<String>)> = main
            .env
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert!(
            env.contains(&("BASE".into(), Some("/apps/explorer/".into()))),
            "{env:?}"
        );
        assert!(
            env.contains(&("PORT".into(), Some("8080".into()))),
            "{env:?}"
        );
        let probe = main.readiness_probe.unwrap().http_get.unwrap();
        assert_eq!(probe.path.as_deref(), Some("/ready"));
    }

    #[test]
    fn an_application_without_a_launch_plan_has_no_objects() {
        let err = main_container(&Launches::new()).unwrap_err();
        assert_eq!(
            err,
            ObjectError::Invalid("Application vision/explorer: its launch was not resolved".into())
        );
        let failed = Launches::from([(explorer(), Err("built-in plugin `streamlit`: no".into()))]);
        assert_eq!(
            main_container(&failed).unwrap_err(),
            ObjectError::Invalid("built-in plugin `streamlit`: no".into())
        );
    }
}
