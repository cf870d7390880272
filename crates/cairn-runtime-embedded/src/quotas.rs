//! Projects, compute pools and what running workloads hold: job runs and
//! application replicas are admitted against their project's quotas and
//! their pool's GPUs, and give back what they were granted when they end.

use crate::gpu::{GpuAllocator, GpuInventory};
use cairn_spec::{ComputePoolSpec, Cpu, GpuSelection, Memory, Name, ProjectSpec, Resources};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Projects, pools and the resources held by running workloads.
pub(crate) struct Quotas {
    gpus: GpuInventory,
    state: Mutex<State>,
    /// Woken whenever resources are released.
    pub released: Notify,
}

#[derive(Default)]
struct State {
    projects: HashMap<Name, ProjectSpec>,
    pools: HashMap<Name, ComputePoolSpec>,
    allocator: GpuAllocator,
    /// Resources held by running workloads, for quotas.
    usage: HashMap<String, Usage>,
}

#[derive(Clone, Debug)]
struct Usage {
    project: Option<Name>,
    cpu: u64,
    memory: u64,
    gpus: u32,
}

/// The outcome of asking for resources.
pub(crate) enum Admission {
    /// Granted, with these GPUs.
    Granted(Vec<u32>),
    /// Not now; why.
    Wait(String),
    /// Never here; why.
    Never(String),
}

impl Quotas {
    /// Admission over this machine's GPUs.
    pub fn new(gpus: GpuInventory) -> Self {
        Quotas {
            gpus,
            state: Mutex::new(State::default()),
            released: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The GPUs this machine has.
    pub fn gpus(&self) -> &GpuInventory {
        &self.gpus
    }

    /// Records an applied project.
    pub fn set_project(&self, name: &Name, spec: &ProjectSpec) {
        self.state().projects.insert(name.clone(), spec.clone());
    }

    /// Forgets a deleted project.
    pub fn forget_project(&self, name: &Name) {
        self.state().projects.remove(name);
    }

    /// Records an applied pool and the GPUs it hands out.
    pub fn register_pool(&self, name: &Name, pool: &ComputePoolSpec) {
        let mut state = self.state();
        state.pools.insert(name.clone(), pool.clone());
        let devices = self.pool_devices(&state, name);
        state.allocator.set_pool(name.as_str(), devices);
    }

    /// Forgets a deleted pool.
    pub fn forget_pool(&self, name: &Name) {
        let mut state = self.state();
        state.pools.remove(name);
        state.allocator.set_pool(name.as_str(), Vec::new());
    }

    /// The GPUs held, by holder.
    pub fn assignments(&self) -> Vec<(String, Vec<u32>)> {
        self.state().allocator.assignments()
    }

    /// Environment from a project: its `env` and its secrets.
    pub fn project_env(&self, project: Option<&Name>) -> Result<Vec<(String, String)>, String> {
        let state = self.state();
        let Some(p) = project.and_then(|p| state.projects.get(p)) else {
            return Ok(Vec::new());
        };
        let mut env: Vec<(String, String)> =
            p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for s in &p.secrets {
            // Validation refuses any other name; checked again here, as the
            // only place that reads the controller's variables for a workload.
            if !s.from_env.starts_with(cairn_spec::SECRET_ENV_PREFIX) {
                return Err(format!(
                    "secret `{}` names `{}`, which is not one of the operator's secret variables (`{}*`)",
                    s.name,
                    s.from_env,
                    cairn_spec::SECRET_ENV_PREFIX
                ));
            }
            match secret_value(&s.from_env) {
                Some(v) => env.push((s.name.clone(), v)),
                None => {
                    return Err(format!(
                        "secret `{}` needs the variable `{}`, which is not set where `cairn up` runs (nor is a file of that name in `${SECRETS_DIR_VAR}`)",
                        s.name, s.from_env
                    ));
                }
            }
        }
        Ok(env)
    }

    fn pool_of(&self, project: Option<&Name>, pool: Option<&Name>) -> Option<Name> {
        pool.cloned().or_else(|| {
            let state = self.state();
            state.projects.get(project?)?.default_pool.clone()
        })
    }

    /// Asks for resources for `holder`.
    pub fn admit(
        &self,
        holder: &str,
        project: Option<&Name>,
        pool: Option<&Name>,
        res: Option<&Resources>,
    ) -> Admission {
        let cpu = res.and_then(|r| r.cpu).map_or(0, Cpu::millis);
        let memory = res.and_then(|r| r.memory).map_or(0, Memory::bytes);
        let gpus = res.and_then(|r| r.gpus).unwrap_or(0);
        let pool_name = self.pool_of(project, pool);
        let mut state = self.state();
        if let Some(pool_name) = &pool_name {
            match state.pools.get(pool_name) {
                None => return Admission::Never(format!("pool `{pool_name}` is not declared")),
                Some(p) if p.local.is_none() => {
                    return Admission::Never(format!(
                        "pool `{pool_name}` has no `local` part; it runs on Kubernetes only"
                    ));
                }
                Some(_) => {}
            }
        } else if gpus > 0 {
            return Admission::Never("asks for GPUs but names no pool".into());
        }
        if let Some(q) = project
            .and_then(|p| state.projects.get(p))
            .and_then(|p| p.quotas.clone())
        {
            let used = state
                .usage
                .values()
                .filter(|u| u.project.as_ref() == project)
                .fold((0u64, 0u64, 0u32), |a, u| {
                    (a.0 + u.cpu, a.1 + u.memory, a.2 + u.gpus)
                });
            let over = |what: &str, used: u64, want: u64, limit: u64| {
                (used + want > limit).then(|| format!("waiting for project quota: {what} in use {used}, asking {want}, quota {limit}"))
            };
            let checks = [
                q.cpu
                    .and_then(|l| over("cpu (millicores)", used.0, cpu, l.millis())),
                q.memory
                    .and_then(|l| over("memory (bytes)", used.1, memory, l.bytes())),
                q.gpus
                    .and_then(|l| over("GPUs", used.2 as u64, gpus as u64, l as u64)),
            ];
            if let Some(reason) = checks.into_iter().flatten().next() {
                return Admission::Wait(reason);
            }
        }
        let devices = if gpus > 0 {
            let pool_name = pool_name.expect("checked above");
            let total = state.allocator.free(pool_name.as_str()).len() as u32
                + state
                    .allocator
                    .assignments()
                    .iter()
                    .filter(|(_, d)| {
                        d.iter()
                            .any(|i| self.pool_devices(&state, &pool_name).contains(i))
                    })
                    .map(|(_, d)| d.len() as u32)
                    .sum::<u32>();
            if gpus > total {
                return Admission::Never(format!(
                    "asks for {gpus} GPU(s) but pool `{pool_name}` has {total}"
                ));
            }
            match state
                .allocator
                .try_allocate(pool_name.as_str(), holder, gpus)
            {
                Some(d) => d,
                None => {
                    return Admission::Wait(format!(
                        "waiting for {gpus} free GPU(s) in pool `{pool_name}` (free: {:?})",
                        state.allocator.free(pool_name.as_str())
                    ));
                }
            }
        } else {
            Vec::new()
        };
        state.usage.insert(
            holder.to_string(),
            Usage {
                project: project.cloned(),
                cpu,
                memory,
                gpus,
            },
        );
        Admission::Granted(devices)
    }

    fn pool_devices(&self, state: &State, pool: &Name) -> Vec<u32> {
        match state
            .pools
            .get(pool)
            .and_then(|p| p.local.as_ref())
            .map(|l| &l.gpus)
        {
            Some(GpuSelection::All) => self.gpus.indices(),
            Some(GpuSelection::Devices(d)) => d.clone(),
            _ => Vec::new(),
        }
    }

    /// Gives back what `holder` was granted.
    pub fn release(&self, holder: &str) {
        let mut state = self.state();
        state.usage.remove(holder);
        state.allocator.release(holder);
        drop(state);
        self.released.notify_waiters();
    }
}

/// The operator's directory of secrets: a file per secret, named like the
/// variable (`CAIRN_SECRET_WAREHOUSE`), holding its value (a final newline
/// is dropped). Mounted Kubernetes Secrets and Docker secrets look so.
pub const SECRETS_DIR_VAR: &str = "CAIRN_SECRETS_DIR";

/// The value of the operator's secret `name`: its variable, else its file
/// in [`SECRETS_DIR_VAR`].
fn secret_value(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        return Some(v);
    }
    let dir = std::env::var_os(SECRETS_DIR_VAR)?;
    let text = std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()?;
    Some(
        text.strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuDevice, GpuSource};
    use serde_json::json;

    fn quotas(gpus: u32) -> Quotas {
        Quotas::new(GpuInventory {
            devices: (0..gpus)
                .map(|index| GpuDevice {
                    index,
                    uuid: format!("GPU-test-{index}"),
                    name: format!("Test GPU {index}"),
                    memory_total_bytes: 1 << 30,
                })
                .collect(),
            source: GpuSource::Fake,
            note: None,
        })
    }

    fn spec<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn name(n: &str) -> Name {
        n.parse().unwrap()
    }

    fn granted(a: Admission) -> Vec<u32> {
        match a {
            Admission::Granted(g) => g,
            Admission::Wait(r) => panic!("waits: {r}"),
            Admission::Never(r) => panic!("never: {r}"),
        }
    }

    fn wait(a: Admission) -> String {
        match a {
            Admission::Wait(r) => r,
            _ => panic!("does not wait"),
        }
    }

    fn never(a: Admission) -> String {
        match a {
            Admission::Never(r) => r,
            _ => panic!("is not refused"),
        }
    }

    #[test]
    fn a_project_quota_holds_workloads_until_resources_are_released() {
        let q = quotas(0);
        let p = name("vision");
        q.set_project(&p, &spec(json!({"quotas": {"cpu": "1"}})));
        let cpu: Resources = spec(json!({"cpu": "600m"}));
        assert!(granted(q.admit("run:1", Some(&p), None, Some(&cpu))).is_empty());
        assert_eq!(
            wait(q.admit("run:2", Some(&p), None, Some(&cpu))),
            "waiting for project quota: cpu (millicores) in use 600, asking 600, quota 1000"
        );
        // Workloads of other projects are not held.
        granted(q.admit("run:3", None, None, Some(&cpu)));
        q.release("run:1");
        granted(q.admit("run:2", Some(&p), None, Some(&cpu)));
        q.forget_project(&p);
        granted(q.admit("run:4", Some(&p), None, Some(&cpu)));
    }

    #[test]
    fn gpus_are_handed_out_by_local_pools() {
        let q = quotas(2);
        let (gpu, cluster, p) = (name("gpu"), name("cluster"), name("vision"));
        q.register_pool(&gpu, &spec(json!({"local": {"gpus": "all"}})));
        q.register_pool(&cluster, &spec(json!({"kubernetes": {}})));
        let two: Resources = spec(json!({"gpus": 2}));
        let one: Resources = spec(json!({"gpus": 1}));
        assert_eq!(
            never(q.admit("a", None, None, Some(&two))),
            "asks for GPUs but names no pool"
        );
        assert_eq!(
            never(q.admit("a", None, Some(&name("none")), Some(&two))),
            "pool `none` is not declared"
        );
        assert_eq!(
            never(q.admit("a", None, Some(&cluster), Some(&two))),
            "pool `cluster` has no `local` part; it runs on Kubernetes only"
        );
        let three: Resources = spec(json!({"gpus": 3}));
        assert_eq!(
            never(q.admit("a", None, Some(&gpu), Some(&three))),
            "asks for 3 GPU(s) but pool `gpu` has 2"
        );
        assert_eq!(granted(q.admit("a", None, Some(&gpu), Some(&two))), [0, 1]);
        assert_eq!(q.assignments(), [("a".to_string(), vec![0, 1])]);
        assert_eq!(
            wait(q.admit("b", None, Some(&gpu), Some(&one))),
            "waiting for 1 free GPU(s) in pool `gpu` (free: [])"
        );
        q.release("a");
        assert_eq!(granted(q.admit("b", None, Some(&gpu), Some(&one))), [0]);
        // A project's default pool serves workloads that name none.
        q.set_project(&p, &spec(json!({"defaultPool": "gpu"})));
        assert_eq!(granted(q.admit("c", Some(&p), None, Some(&one))), [1]);
        q.forget_pool(&gpu);
        assert_eq!(
            never(q.admit("d", Some(&p), None, Some(&one))),
            "pool `gpu` is not declared"
        );
    }
}
