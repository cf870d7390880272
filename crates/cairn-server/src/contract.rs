//! The records of the store, the controller and the specs as the types of
//! the HTTP contract ([`cairn_api`]).

use cairn_api::{audit, auth, drift, keys, registry, runs, status};

/// A value as its contract type.
pub trait ToApi {
    /// The contract type.
    type Api;
    /// The value as its contract type.
    fn to_api(&self) -> Self::Api;
}

impl ToApi for cairn_spec::Kind {
    type Api = status::Kind;
    fn to_api(&self) -> status::Kind {
        use cairn_spec::Kind as K;
        match self {
            K::Project => status::Kind::Project,
            K::ComputePool => status::Kind::ComputePool,
            K::Dataset => status::Kind::Dataset,
            K::Plugin => status::Kind::Plugin,
            K::Environment => status::Kind::Environment,
            K::Job => status::Kind::Job,
            K::Model => status::Kind::Model,
            K::Application => status::Kind::Application,
        }
    }
}

impl ToApi for cairn_store::Phase {
    type Api = status::Phase;
    fn to_api(&self) -> status::Phase {
        use cairn_store::Phase as P;
        match self {
            P::Progressing => status::Phase::Progressing,
            P::Ready => status::Phase::Ready,
            P::Idle => status::Phase::Idle,
            P::Running => status::Phase::Running,
            P::Succeeded => status::Phase::Succeeded,
            P::Failed => status::Phase::Failed,
            P::Invalid => status::Phase::Invalid,
        }
    }
}

impl ToApi for cairn_store::Status {
    type Api = status::ResourceStatus;
    fn to_api(&self) -> status::ResourceStatus {
        status::ResourceStatus {
            kind: self.key.kind.to_api(),
            project: self.key.project.as_ref().map(|p| p.to_string()),
            name: self.key.name.to_string(),
            phase: self.phase.to_api(),
            message: self.message.clone(),
            synced_commit: self.synced_commit.clone(),
            file: self.file.clone(),
            last_transition: self.last_transition.clone(),
        }
    }
}

impl ToApi for cairn_store::SyncRecord {
    type Api = status::SyncRecord;
    fn to_api(&self) -> status::SyncRecord {
        status::SyncRecord {
            commit: self.commit.clone(),
            detected_at: self.detected_at.clone(),
            finished_at: self.finished_at.clone(),
            duration_ms: self.duration_ms,
            summary: serde_json::from_value(self.summary.clone()).unwrap_or_default(),
            errors: self.errors,
        }
    }
}

impl ToApi for cairn_plan::snapshot::Origin {
    type Api = status::Origin;
    fn to_api(&self) -> status::Origin {
        use cairn_plan::snapshot::Origin as O;
        match self {
            O::Commit(c) => status::Origin::Commit {
                id: c.id.clone(),
                author: c.author.clone(),
                email: c.email.clone(),
                time: c.time.clone(),
                summary: c.summary.clone(),
            },
            O::Index => status::Origin::Index,
            O::Worktree => status::Origin::Worktree,
        }
    }
}

impl ToApi for cairn_spec::diagnostics::Report {
    type Api = Vec<status::Diagnostic>;
    /// The diagnostics as `cairn validate -o json` writes them (lines and
    /// columns located in the sources).
    fn to_api(&self) -> Vec<status::Diagnostic> {
        let mut json = cairn_spec::diagnostics::to_json(self);
        serde_json::from_value(json["diagnostics"].take()).unwrap_or_default()
    }
}

impl ToApi for cairn_runtime_embedded::gpu::GpuDevice {
    type Api = status::GpuDevice;
    fn to_api(&self) -> status::GpuDevice {
        status::GpuDevice {
            index: self.index,
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            memory_total_bytes: self.memory_total_bytes,
        }
    }
}

impl ToApi for cairn_store::RunState {
    type Api = runs::RunState;
    fn to_api(&self) -> runs::RunState {
        use cairn_store::RunState as S;
        match self {
            S::Pending => runs::RunState::Pending,
            S::Running => runs::RunState::Running,
            S::Succeeded => runs::RunState::Succeeded,
            S::Failed => runs::RunState::Failed,
            S::Skipped => runs::RunState::Skipped,
        }
    }
}

impl ToApi for cairn_store::Run {
    type Api = runs::Run;
    fn to_api(&self) -> runs::Run {
        runs::Run {
            id: self.id,
            job_name: self.job_name.clone(),
            project: self.project.clone(),
            number: self.number,
            trigger: self.trigger.clone(),
            pipeline: self.pipeline.clone(),
            state: self.state.to_api(),
            attempt: self.attempt,
            commit: self.commit.clone(),
            params: match &self.params {
                serde_json::Value::Object(m) => m.clone(),
                _ => serde_json::Map::new(),
            },
            created_at: self.created_at.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            exit_code: self.exit_code,
            message: self.message.clone(),
            pid: self.pid,
            gpus: self.gpus.clone(),
            duration_seconds: self.duration_seconds,
            sweep: self.sweep.clone(),
            best: self.best,
            artifacts: None,
        }
    }
}

impl ToApi for cairn_store::Artifact {
    type Api = runs::Artifact;
    fn to_api(&self) -> runs::Artifact {
        runs::Artifact {
            id: self.id,
            run_id: self.run_id,
            output: self.output.clone(),
            path: self.path.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
            created_at: self.created_at.clone(),
        }
    }
}

impl ToApi for cairn_store::AuditEntry {
    type Api = audit::AuditEntry;
    fn to_api(&self) -> audit::AuditEntry {
        audit::AuditEntry {
            at: self.at.clone(),
            commit: self.commit.clone(),
            resource: self.resource.clone(),
            action: self.action.clone(),
            detail: self.detail.clone(),
            actor: self.actor.clone(),
        }
    }
}

impl ToApi for cairn_store::tokens::TokenInfo {
    type Api = auth::TokenInfo;
    fn to_api(&self) -> auth::TokenInfo {
        use cairn_store::tokens::TokenKind;
        auth::TokenInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: match self.kind {
                TokenKind::Admin => auth::TokenKind::Admin,
                TokenKind::Api => auth::TokenKind::Api,
                TokenKind::Workload => auth::TokenKind::Workload,
            },
            project: self.project.clone(),
            role: self.role.clone(),
            prefix: self.prefix.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
            revoked_at: self.revoked_at.clone(),
            last_used_at: self.last_used_at.clone(),
        }
    }
}

impl ToApi for cairn_controller::Pinned {
    type Api = registry::Pinned;
    fn to_api(&self) -> registry::Pinned {
        registry::Pinned {
            commit: self.commit.clone(),
            branch: self.branch.clone(),
            file: self.file.clone(),
            on_followed_branch: self.on_followed_branch,
        }
    }
}

impl ToApi for cairn_store::RolloutStep {
    type Api = registry::RolloutStep;
    fn to_api(&self) -> registry::RolloutStep {
        registry::RolloutStep {
            version: self.version,
            at: self.at.clone(),
            weight: self.weight,
            decision: self.decision.clone(),
            detail: self.detail.clone(),
        }
    }
}

impl ToApi for cairn_spec::ModelRuntime {
    type Api = registry::ModelRuntime;
    fn to_api(&self) -> registry::ModelRuntime {
        match self {
            cairn_spec::ModelRuntime::Onnx => registry::ModelRuntime::Onnx,
            cairn_spec::ModelRuntime::Wasm => registry::ModelRuntime::Wasm,
            cairn_spec::ModelRuntime::Process => registry::ModelRuntime::Process,
        }
    }
}

impl ToApi for cairn_store::keys::KeyInfo {
    type Api = keys::KeyInfo;
    fn to_api(&self) -> keys::KeyInfo {
        keys::KeyInfo {
            id: self.id.clone(),
            project: self.project.clone(),
            model: self.model.clone(),
            prefix: self.prefix.clone(),
            created_at: self.created_at.clone(),
            revoked_at: self.revoked_at.clone(),
        }
    }
}

impl ToApi for cairn_store::drift::DriftVerdict {
    type Api = drift::DriftVerdict;
    fn to_api(&self) -> drift::DriftVerdict {
        drift::DriftVerdict {
            project: self.project.clone(),
            model: self.model.clone(),
            plugin: self.plugin.clone(),
            time_ms: self.time_ms,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            rows: self.rows,
            score: self.score,
            drifted: self.drifted,
            threshold: self.threshold,
            features: self
                .features
                .iter()
                .map(|f| drift::FeatureVerdict {
                    feature: f.feature.clone(),
                    score: f.score,
                    p_value: f.p_value,
                    drifted: f.drifted,
                })
                .collect(),
            error: self.error.clone(),
        }
    }
}

impl ToApi for cairn_store::events::InferenceEvent {
    type Api = cairn_api::inference::InferenceRecord;
    fn to_api(&self) -> cairn_api::inference::InferenceRecord {
        cairn_api::inference::InferenceRecord {
            uuid: self.uuid.to_string(),
            project: self.model.project.as_ref().map(|p| p.to_string()),
            model: self.model.name.to_string(),
            version: self.version.clone(),
            commit: self.commit.clone(),
            time: self.time.to_rfc3339(),
            latency_us: self.latency_us,
            status: self.status,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

impl ToApi for cairn_gateway::service::Endpoint {
    type Api = registry::ServedModel;
    fn to_api(&self) -> registry::ServedModel {
        let v = self.current();
        registry::ServedModel {
            name: self.key.name.to_string(),
            project: self.key.project.as_ref().map(|p| p.to_string()),
            runtime: self.spec.runtime.to_api(),
            version: v.number,
            commit: v.commit.clone(),
            sha256: v.sha256.clone(),
            replicas: self.spec.replicas,
            auth_required: self.spec.auth.as_ref().is_some_and(|a| a.required),
        }
    }
}

impl<T: ToApi> ToApi for [T] {
    type Api = Vec<T::Api>;
    fn to_api(&self) -> Vec<T::Api> {
        self.iter().map(ToApi::to_api).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's enums say on the wire what the store's and the
    /// spec's do.
    #[test]
    fn enums_serialize_alike() {
        fn same<A: serde::Serialize, B: serde::Serialize>(a: A, b: B) {
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::to_value(b).unwrap()
            );
        }
        for k in cairn_spec::Kind::ALL {
            same(k, k.to_api());
        }
        use cairn_store::Phase as P;
        for p in [
            P::Progressing,
            P::Ready,
            P::Idle,
            P::Running,
            P::Succeeded,
            P::Failed,
            P::Invalid,
        ] {
            same(p, p.to_api());
        }
        use cairn_store::RunState as S;
        for s in [S::Pending, S::Running, S::Succeeded, S::Failed, S::Skipped] {
            same(s, s.to_api());
        }
        use cairn_spec::ModelRuntime as R;
        for r in [R::Onnx, R::Wasm, R::Process] {
            same(r, r.to_api());
        }
    }
}
