//! Command-line settings of the Kubernetes runtime, shared by `cairn up`
//! and `cairn plan`.

use anyhow::{Context, Result};
use cairn_runtime_kubernetes::apply::ConflictPolicy;
use cairn_runtime_kubernetes::objects::KubeSettings;
use clap::ValueEnum;
use std::path::PathBuf;

/// Where workloads run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// On this machine: supervised processes and in-process models.
    #[default]
    Embedded,
    /// On a Kubernetes cluster (kubeconfig or in-cluster configuration).
    Kubernetes,
}

/// What to do when another field manager owns fields Cairn applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Conflicts {
    /// Take the fields over: Git wins.
    Force,
    /// Report the conflict and change nothing (the default: Cairn takes
    /// over no field another manager set unless told to).
    #[default]
    Fail,
}

/// Settings of the Kubernetes runtime: the cluster and the objects.
#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// The kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, or
    /// the in-cluster service account).
    #[arg(long, env = "CAIRN_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, env = "CAIRN_KUBE_CONTEXT")]
    pub kube_context: Option<String>,
    /// When another field manager owns fields Cairn sets.
    #[arg(long, value_enum, default_value_t = Conflicts::Fail)]
    pub conflicts: Conflicts,
    #[command(flatten)]
    pub objects: ObjectArgs,
}

/// How the Kubernetes runtime builds objects.
#[derive(Debug, clap::Args)]
pub struct ObjectArgs {
    /// The `cairn` image model pods run (`cairn model-server`).
    #[arg(long, env = "CAIRN_IMAGE")]
    pub image: Option<String>,
    /// An image with `git`, used to check the commit's files out in pods.
    #[arg(long, env = "CAIRN_GIT_IMAGE")]
    pub git_image: Option<String>,
    /// The repository URL pods clone (default: the URL `cairn up` follows).
    #[arg(long, env = "CAIRN_REPO_URL")]
    pub repo_url: Option<String>,
    /// Cairn's server as pods reach it (given to them as `CAIRN_SERVER`).
    #[arg(long, env = "CAIRN_SERVER_URL")]
    pub server_url: Option<String>,
    /// The namespaces Cairn may create and write to (comma-separated;
    /// default: any but `kube-*` and the controller's own).
    #[arg(long, env = "CAIRN_KUBE_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
}

/// The namespace the controller itself runs in, when it runs in a pod:
/// `POD_NAMESPACE` (the downward API), else its service account's.
fn own_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
}

impl ObjectArgs {
    /// The object settings; `followed` is the repository URL `cairn up`
    /// follows, if remote.
    pub fn settings(&self, followed: Option<&str>) -> KubeSettings {
        let mut s = KubeSettings::default();
        if let Some(i) = &self.image {
            s.image = i.clone();
        }
        if let Some(i) = &self.git_image {
            s.git_image = i.clone();
        }
        s.repo_url = self
            .repo_url
            .clone()
            .or_else(|| followed.map(str::to_string));
        s.server_url = self.server_url.clone();
        s.namespaces = self
            .namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        s.reserved = own_namespace().into_iter().collect();
        s
    }
}

impl KubeArgs {
    /// The conflict policy.
    pub fn policy(&self) -> ConflictPolicy {
        match self.conflicts {
            Conflicts::Force => ConflictPolicy::Force,
            Conflicts::Fail => ConflictPolicy::Fail,
        }
    }

    /// A client for the cluster.
    pub async fn client(&self) -> Result<kube::Client> {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let options = KubeConfigOptions {
            context: self.kube_context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .with_context(|| format!("loading {}", path.display()))?
            }
            None if self.kube_context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .context("loading the kubeconfig")?,
            None => kube::Config::infer()
                .await
                .context("no kubeconfig or in-cluster configuration found")?,
        };
        kube::Client::try_from(config).context("creating the Kubernetes client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kube: KubeArgs,
    }

    #[test]
    fn conflicts_fail_and_namespaces_are_any_by_default() {
        let cli = Cli::parse_from(["cairn"]);
        assert_eq!(cli.kube.policy(), ConflictPolicy::Fail);
        assert!(cli.kube.objects.settings(None).namespaces.is_empty());
        let cli = Cli::parse_from(["cairn", "--conflicts", "force", "--namespaces", "a, b"]);
        assert_eq!(cli.kube.policy(), ConflictPolicy::Force);
        assert_eq!(cli.kube.objects.settings(None).namespaces, ["a", "b"]);
    }
}
