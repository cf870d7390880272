//! Status from the objects' own conditions: a Deployment's availability, a
//! Job's completion or failure, and why pods are stuck (a scheduling
//! failure such as too few GPUs, an image that cannot be pulled, a crash
//! loop), mapped to the controller's phases and messages.

use cairn_store::Phase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

/// A phase and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The phase.
    pub phase: Phase,
    /// What is happening, with the cluster's reason when something is stuck.
    pub message: String,
}

impl Observed {
    fn new(phase: Phase, message: impl Into<String>) -> Self {
        Observed {
            phase,
            message: message.into(),
        }
    }
}

/// Why a pod does not run, if it is stuck: unschedulable (with the
/// scheduler's message, e.g. `0/3 nodes are available: 3 Insufficient
/// nvidia.com/gpu.`), or a container waiting on a pull or a crash loop.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.status == "False" {
            let reason = c.reason.as_deref().unwrap_or("Unschedulable");
            return Some(match &c.message {
                Some(m) => format!("{reason}: {m}"),
                None => reason.to_string(),
            });
        }
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "InvalidImageName"
                    | "CrashLoopBackOff"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                return Some(match &waiting.message {
                    Some(m) => format!("container {}: {reason}: {m}", c.name),
                    None => format!("container {}: {reason}", c.name),
                });
            }
        }
    }
    None
}

/// The first problem among a workload's pods.
pub fn pods_problem(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(pod_problem)
}

/// The status of a model's or application's Deployment.
pub fn deployment_status(d: &Deployment, pods: &[Pod]) -> Observed {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let generation_seen = match (d.metadata.generation, status.observed_generation) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    };
    let conditions = status.conditions.unwrap_or_default();
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "Progressing" && c.status == "False")
    {
        let mut message = format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("not progressing"),
            c.message.as_deref().unwrap_or_default()
        );
        if let Some(p) = pods_problem(pods) {
            message.push_str(&format!(" ({p})"));
        }
        return Observed::new(Phase::Failed, message);
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        return Observed::new(
            Phase::Failed,
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or("replica failure"),
                c.message.as_deref().unwrap_or_default()
            ),
        );
    }
    let is_available = conditions
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True");
    if generation_seen && is_available && updated >= wanted && available >= wanted {
        return Observed::new(
            Phase::Ready,
            format!("{available}/{wanted} replicas available"),
        );
    }
    let mut message = format!("{available}/{wanted} replicas available");
    if let Some(p) = pods_problem(pods) {
        message = format!("{message}; pods are stuck: {p}");
    }
    Observed::new(Phase::Progressing, message)
}

/// Why a pipeline step was skipped, if it was.
pub fn skipped(job: &Job) -> Option<&str> {
    job.metadata
        .annotations
        .as_ref()?
        .get(crate::objects::ANNOTATION_SKIPPED)
        .map(String::as_str)
}

/// The status of one job run's Job.
pub fn job_status(job: &Job, pods: &[Pod]) -> Observed {
    if let Some(reason) = skipped(job) {
        return Observed::new(Phase::Failed, format!("skipped: {reason}"));
    }
    let status = job.status.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => {
                return Observed::new(Phase::Succeeded, "the run succeeded");
            }
            "Failed" | "FailureTarget" => {
                return Observed::new(
                    Phase::Failed,
                    format!(
                        "the run failed: {}{}",
                        c.reason.as_deref().unwrap_or("failed"),
                        c.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                );
            }
            _ => {}
        }
    }
    if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
        let upstream = job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::objects::ANNOTATION_DEPENDS_ON))
            .cloned()
            .unwrap_or_default();
        return Observed::new(
            Phase::Idle,
            if upstream.is_empty() {
                "suspended".to_string()
            } else {
                format!("waiting for {upstream}")
            },
        );
    }
    if let Some(p) = pods_problem(pods) {
        return Observed::new(Phase::Progressing, format!("pending: {p}"));
    }
    if status.active.unwrap_or(0) > 0 {
        return Observed::new(Phase::Running, "running");
    }
    Observed::new(Phase::Progressing, "starting")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn unschedulable_pods_report_the_scheduler_reason() {
        let p = pod(json!({
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
            }]
        }));
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "model-m", "generation": 1},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 2, "availableReplicas": 0,
                       "conditions": [{"type": "Available", "status": "False"}]}
        }))
        .unwrap();
        let s = deployment_status(&d, &[p]);
        assert_eq!(s.phase, Phase::Progressing);
        assert_eq!(
            s.message,
            "0/2 replicas available; pods are stuck: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        );
    }

    #[test]
    fn available_deployments_are_ready_and_stalled_ones_failed() {
        let ready: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "updatedReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(
            deployment_status(&ready, &[]),
            Observed::new(Phase::Ready, "2/2 replicas available")
        );
        let stale: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "updatedReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(deployment_status(&stale, &[]).phase, Phase::Progressing);
        let stalled: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"d-1\" has timed out progressing."}]}
        }))
        .unwrap();
        let pulling = pod(json!({"containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}
        }]}));
        let s = deployment_status(&stalled, &[pulling]);
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(
            s.message,
            "ProgressDeadlineExceeded: ReplicaSet \"d-1\" has timed out progressing. (container main: ImagePullBackOff: Back-off pulling image \"nope\")"
        );
    }

    #[test]
    fn jobs_report_success_failure_waiting_and_running() {
        let job = |v: serde_json::Value| -> Job { serde_json::from_value(v).unwrap() };
        let done = job(json!({"metadata": {"name": "j"}, "status": {"conditions": [
            {"type": "Complete", "status": "True"}]}}));
        assert_eq!(job_status(&done, &[]).phase, Phase::Succeeded);
        let failed = job(json!({"metadata": {"name": "j"}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}}));
        assert_eq!(
            job_status(&failed, &[]),
            Observed::new(
                Phase::Failed,
                "the run failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
            )
        );
        let waiting = job(json!({"metadata": {"name": "j",
            "annotations": {"cairn.dev/depends-on": "prepare"}},
            "spec": {"suspend": true, "template": {}}}));
        assert_eq!(
            job_status(&waiting, &[]),
            Observed::new(Phase::Idle, "waiting for prepare")
        );
        let running = job(json!({"metadata": {"name": "j"}, "status": {"active": 1}}));
        assert_eq!(job_status(&running, &[]).phase, Phase::Running);
        let pending = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}),
        );
        assert_eq!(
            job_status(&job(json!({"metadata": {"name": "j"}})), &[pending]).message,
            "pending: Unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        );
    }
}
