//! The runtime `cairn up` runs with: embedded or Kubernetes, chosen on the
//! command line, behind one type for the server and the dashboard.

use cairn_gateway::service::Gateway;
use cairn_plan::loader::Resource;
use cairn_plan::plan::{Action, StateView};
use cairn_runtime::{ApplyContext, LogSource, LogTarget, Runtime, RuntimeError};
use cairn_runtime_embedded::gpu::GpuInventory;
use cairn_runtime_embedded::{EmbeddedRuntime, RunRequest};
use cairn_runtime_kubernetes::KubernetesRuntime;
use cairn_spec::ResourceKey;
use cairn_store::{Applied, Run};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

/// One of the runtimes.
#[derive(Clone)]
pub enum AnyRuntime {
    /// Everything on this machine.
    Embedded(EmbeddedRuntime),
    /// Workloads on a Kubernetes cluster.
    Kubernetes(KubernetesRuntime),
}

static NO_GPUS: LazyLock<GpuInventory> = LazyLock::new(|| GpuInventory {
    devices: Vec::new(),
    source: cairn_runtime_embedded::gpu::GpuSource::None,
    note: Some("workloads run on the Kubernetes cluster's GPU pools".into()),
});

impl AnyRuntime {
    /// The GPUs of this machine (none are used by the Kubernetes runtime).
    pub fn gpus(&self) -> &GpuInventory {
        match self {
            AnyRuntime::Embedded(r) => r.gpus(),
            AnyRuntime::Kubernetes(_) => &NO_GPUS,
        }
    }

    /// Starts jobs now (a pipeline with their upstream jobs).
    pub fn run_job(&self, request: RunRequest) -> Result<Vec<Run>, RuntimeError> {
        match self {
            AnyRuntime::Embedded(r) => r.run_job(request),
            AnyRuntime::Kubernetes(r) => r.run_job(request),
        }
    }

    /// The applications called `name`, whatever their project.
    pub fn apps_named(&self, name: &str) -> Vec<ResourceKey> {
        match self {
            AnyRuntime::Embedded(r) => r.apps_named(name),
            AnyRuntime::Kubernetes(r) => r.apps_named(name),
        }
    }

    /// Where a ready replica of an application listens.
    pub fn app_upstream(&self, app: &ResourceKey) -> Option<SocketAddr> {
        match self {
            AnyRuntime::Embedded(r) => r.app_upstream(app),
            AnyRuntime::Kubernetes(r) => r.app_upstream(app),
        }
    }

    /// The model gateway.
    pub fn gateway(&self) -> Arc<Gateway> {
        match self {
            AnyRuntime::Embedded(r) => r.gateway(),
            AnyRuntime::Kubernetes(r) => r.gateway(),
        }
    }

    /// The dashboard's kept monitoring summaries (the embedded runtime
    /// warms them as models start serving).
    pub fn summaries(&self) -> Arc<cairn_monitor::summary::Summaries> {
        match self {
            AnyRuntime::Embedded(r) => r.summaries(),
            AnyRuntime::Kubernetes(_) => Arc::default(),
        }
    }

    /// The stream of artifacts to promote through Git (see
    /// [`EmbeddedRuntime::take_promotions`]); the Kubernetes runtime does
    /// not produce job artifacts.
    pub fn take_promotions(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<cairn_runtime_embedded::PromotionRequest>>
    {
        match self {
            AnyRuntime::Embedded(r) => r.take_promotions(),
            AnyRuntime::Kubernetes(_) => None,
        }
    }

    /// Evaluates the drift of a model now (embedded runtime only).
    pub async fn evaluate_drift(
        &self,
        model: &ResourceKey,
    ) -> Result<cairn_monitor::drift::DriftVerdict, cairn_runtime_embedded::DriftError> {
        match self {
            AnyRuntime::Embedded(r) => r.evaluate_drift(model).await,
            AnyRuntime::Kubernetes(_) => {
                Err(cairn_runtime_embedded::DriftError::Unsupported(format!(
                    "drift of `{}` is not evaluated on the Kubernetes runtime yet",
                    model.qualified_name()
                )))
            }
        }
    }

    /// Stops (or, with `keep_running`, leaves) what runs, and flushes events.
    pub async fn shutdown(&self, keep_running: bool) {
        match self {
            AnyRuntime::Embedded(r) => r.shutdown(keep_running).await,
            // The cluster keeps running what Git describes.
            AnyRuntime::Kubernetes(r) => r.shutdown().await,
        }
    }
}

impl Runtime for AnyRuntime {
    fn observe(&self) -> Result<StateView, RuntimeError> {
        match self {
            AnyRuntime::Embedded(r) => r.observe(),
            AnyRuntime::Kubernetes(r) => r.observe(),
        }
    }

    fn apply(
        &self,
        action: &Action,
        resource: Option<&Resource>,
        ctx: &ApplyContext<'_>,
    ) -> Result<String, RuntimeError> {
        match self {
            AnyRuntime::Embedded(r) => r.apply(action, resource, ctx),
            AnyRuntime::Kubernetes(r) => r.apply(action, resource, ctx),
        }
    }

    fn finish_sync(&self, ctx: &ApplyContext<'_>) {
        match self {
            AnyRuntime::Embedded(r) => r.finish_sync(ctx),
            AnyRuntime::Kubernetes(r) => r.finish_sync(ctx),
        }
    }

    fn restore(&self, applied: &[Applied], checkout: &dyn Fn(&str) -> Option<PathBuf>) {
        match self {
            AnyRuntime::Embedded(r) => r.restore(applied, checkout),
            AnyRuntime::Kubernetes(r) => r.restore(applied, checkout),
        }
    }

    fn logs(&self, target: &LogTarget) -> Result<LogSource, RuntimeError> {
        match self {
            AnyRuntime::Embedded(r) => r.logs(target),
            AnyRuntime::Kubernetes(r) => r.logs(target),
        }
    }
}
