// tidy: long file: the cross-resource checks share one index of the desired state; half of the file is their tests.
//! Semantic checks across the whole repository: references resolve, job
//! dependencies form no cycle, quotas hold, paths stay inside the repository
//! and exist in the commit, and each kind's fields agree with each other.
//!
//! Every check is a pure function of the loaded resources and the snapshot's
//! listing; each returns diagnostics pointing at the offending field.

use crate::loader::{DesiredState, Resource};
use crate::snapshot::{Resolved, Snapshot};
use cairn_spec::diagnostics::{Diagnostic, did_you_mean};
use cairn_spec::{
    BUILTIN_FRAMEWORKS, BUILTIN_PLUGINS, Cpu, EnvironmentRef, GpuSelection, Kind, Memory,
    ModelRuntime, Name, PluginWorld, RepoPath, RolloutStrategy, Spec,
};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};

/// Runs every semantic check.
pub fn check(state: &DesiredState, snapshot: &Snapshot) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let ctx = Context { state };
    for r in state.resources.values() {
        ctx.image(r, &mut out);
        ctx.references(r, &mut out);
        ctx.consistency(r, &mut out);
        paths(r, snapshot, &mut out);
    }
    ctx.cycles(&mut out);
    ctx.quotas(&mut out);
    out
}

/// Reports a problem: code, field path, message, hint.
type ErrorSink<'a> = dyn FnMut(&'static str, &[&str], String, &str) + 'a;

/// Jobs by (project, name), with their dependencies.
type JobGraph<'a> = BTreeMap<(&'a Option<Name>, &'a Name), (&'a Resource, Vec<&'a Name>)>;

struct Context<'a> {
    state: &'a DesiredState,
}

impl Context<'_> {
    fn names(&self, kind: Kind, project: Option<&Name>) -> Vec<&str> {
        self.state
            .of_kind(kind)
            .filter(|r| kind.is_global() || r.key.project.as_ref() == project)
            .map(|r| r.key.name.as_str())
            .collect()
    }

    /// Checks that `name` names a resource of `kind`; returns it when it does.
    fn reference<'s>(
        &'s self,
        from: &Resource,
        kind: Kind,
        name: &Name,
        path: &[&str],
        out: &mut Vec<Diagnostic>,
    ) -> Option<&'s Resource> {
        let project = from.key.project.as_ref();
        if let Some(r) = self.state.get(kind, project, name.as_str()) {
            return Some(r);
        }
        if self
            .state
            .guard
            .broken_resources
            .contains(&(kind, name.to_string()))
        {
            return None; // its own errors are reported where it is declared
        }
        let mut candidates = self.names(kind, project);
        candidates.extend(
            self.state
                .guard
                .broken_resources
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n.as_str()),
        );
        let scope = match (kind.is_global(), project) {
            (false, Some(p)) => format!(" in project `{p}`"),
            _ => String::new(),
        };
        let hint = match did_you_mean(name.as_str(), candidates.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if candidates.is_empty() => format!("no {kind} is declared{scope}"),
            None => format!(
                "declared: {}",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push(
            Diagnostic::error(
                "dangling-reference",
                &*from.file,
                from.span_of(path),
                format!("{kind} `{name}` does not exist{scope}"),
            )
            .with_hint(hint),
        );
        None
    }

    fn plugin(
        &self,
        from: &Resource,
        name: &Name,
        world: PluginWorld,
        path: &[&str],
        out: &mut Vec<Diagnostic>,
    ) {
        if let Some(p) = self.reference(from, Kind::Plugin, name, path, out)
            && let Spec::Plugin(spec) = &p.spec
            && spec.world != world
        {
            out.push(
                Diagnostic::error(
                    "wrong-plugin-world",
                    &*from.file,
                    from.span_of(path),
                    format!(
                        "plugin `{name}` implements `{}`, not `{}`",
                        world_name(spec.world),
                        world_name(world)
                    ),
                )
                .with_related(
                    &*p.file,
                    p.span_of(&["spec", "world"]),
                    "declared here",
                ),
            );
        }
    }

    fn references(&self, r: &Resource, out: &mut Vec<Diagnostic>) {
        if let Some(project) = &r.key.project
            && self
                .state
                .get(Kind::Project, None, project.as_str())
                .is_none()
        {
            let projects = self.names(Kind::Project, None);
            out.push(
                Diagnostic::error(
                    "dangling-reference",
                    &*r.file,
                    r.span_of(&["metadata", "project"]),
                    format!("project `{project}` does not exist"),
                )
                .with_hint(
                    match did_you_mean(project.as_str(), projects.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "declare it with `kind: Project`".to_string(),
                    },
                ),
            );
        }
        let pool = |name: &Option<Name>, path: &[&str], out: &mut Vec<Diagnostic>| {
            if let Some(p) = name {
                self.reference(r, Kind::ComputePool, p, path, out);
            }
        };
        let datasets = |names: &[Name], path: &[&str], out: &mut Vec<Diagnostic>| {
            for (i, d) in names.iter().enumerate() {
                let index = i.to_string();
                let mut full = path.to_vec();
                full.push(&index);
                self.reference(r, Kind::Dataset, d, &full, out);
            }
        };
        if let Some(EnvironmentRef::Named(name)) = workload_environment(&r.spec) {
            self.reference(r, Kind::Environment, name, &["spec", "environment"], out);
        }
        match &r.spec {
            Spec::Project(p) => pool(&p.default_pool, &["spec", "defaultPool"], out),
            Spec::Job(j) => {
                pool(&j.pool, &["spec", "pool"], out);
                for (i, dep) in j.depends_on.iter().enumerate() {
                    self.reference(
                        r,
                        Kind::Job,
                        dep,
                        &["spec", "dependsOn", &i.to_string()],
                        out,
                    );
                }
                datasets(&j.lineage.reads, &["spec", "lineage", "reads"], out);
                datasets(&j.lineage.writes, &["spec", "lineage", "writes"], out);
                if let Some(t) = &j.trigger {
                    for (i, m) in t.on_drift.iter().enumerate() {
                        self.reference(
                            r,
                            Kind::Model,
                            m,
                            &["spec", "trigger", "onDrift", &i.to_string()],
                            out,
                        );
                    }
                }
            }
            Spec::Model(m) => {
                pool(&m.pool, &["spec", "pool"], out);
                if let Some(from) = &m.from
                    && let Some(job) =
                        self.reference(r, Kind::Job, &from.job, &["spec", "from", "job"], out)
                    && let Spec::Job(js) = &job.spec
                    && !js.outputs.iter().any(|o| o.name == from.output)
                {
                    let outputs: Vec<&str> = js.outputs.iter().map(|o| o.name.as_str()).collect();
                    out.push(
                        Diagnostic::error(
                            "dangling-reference",
                            &*r.file,
                            r.span_of(&["spec", "from", "output"]),
                            format!("job `{}` has no output `{}`", from.job, from.output),
                        )
                        .with_related(
                            &*job.file,
                            job.span_of(&["spec", "outputs"]),
                            "outputs declared here",
                        )
                        .with_hint(
                            match did_you_mean(from.output.as_str(), outputs.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None if outputs.is_empty() => {
                                    "declare it under the job's `outputs`".into()
                                }
                                None => format!("its outputs: {}", outputs.join(", ")),
                            },
                        ),
                    );
                }
                if let Some(p) = &m.plugin {
                    self.plugin(r, p, PluginWorld::Model, &["spec", "plugin"], out);
                }
                if let Some(mon) = &m.monitoring {
                    for (i, p) in mon.metrics.iter().enumerate() {
                        self.plugin(
                            r,
                            p,
                            PluginWorld::BusinessMetric,
                            &["spec", "monitoring", "metrics", &i.to_string()],
                            out,
                        );
                    }
                    if let Some(d) = &mon.drift {
                        self.plugin(
                            r,
                            &d.plugin,
                            PluginWorld::DriftDetector,
                            &["spec", "monitoring", "drift", "plugin"],
                            out,
                        );
                        if let Some(job) = d.on_drift.as_ref().and_then(|o| o.retrain.as_ref()) {
                            self.reference(
                                r,
                                Kind::Job,
                                job,
                                &["spec", "monitoring", "drift", "onDrift", "retrain"],
                                out,
                            );
                        }
                    }
                }
                datasets(
                    &m.lineage.trained_on,
                    &["spec", "lineage", "trainedOn"],
                    out,
                );
            }
            Spec::Application(a) => {
                pool(&a.pool, &["spec", "pool"], out);
                if !BUILTIN_FRAMEWORKS.contains(&a.framework.as_str()) {
                    match a.framework.parse::<Name>() {
                        Ok(n)
                            if self
                                .state
                                .get(Kind::Plugin, r.key.project.as_ref(), n.as_str())
                                .is_some() =>
                        {
                            self.plugin(
                                r,
                                &n,
                                PluginWorld::AppFramework,
                                &["spec", "framework"],
                                out,
                            )
                        }
                        _ => {
                            let plugins = self.names(Kind::Plugin, r.key.project.as_ref());
                            let all: Vec<&str> =
                                BUILTIN_FRAMEWORKS.iter().copied().chain(plugins).collect();
                            out.push(
                                Diagnostic::error(
                                    "unknown-value",
                                    &*r.file,
                                    r.span_of(&["spec", "framework"]),
                                    format!("unknown framework `{}`", a.framework),
                                )
                                .with_hint(
                                    match did_you_mean(&a.framework, all.iter().copied()) {
                                        Some(s) => format!("did you mean `{s}`?"),
                                        None => format!(
                                            "use one of {} or declare an app-framework Plugin",
                                            BUILTIN_FRAMEWORKS.join(", ")
                                        ),
                                    },
                                ),
                            );
                        }
                    }
                }
            }
            Spec::ComputePool(_) | Spec::Dataset(_) | Spec::Plugin(_) | Spec::Environment(_) => {}
        }
    }

    /// Rules between fields of one resource.
    fn consistency(&self, r: &Resource, out: &mut Vec<Diagnostic>) {
        let file = &*r.file;
        let mut err = |code: &'static str, path: &[&str], message: String, hint: &str| {
            let mut d = Diagnostic::error(code, file, r.span_of(path), message);
            if !hint.is_empty() {
                d = d.with_hint(hint);
            }
            out.push(d);
        };
        match &r.spec {
            Spec::ComputePool(p) => {
                if p.local.is_none() && p.kubernetes.is_none() {
                    err(
                        "invalid-value",
                        &["spec"],
                        "a compute pool needs `local`, `kubernetes`, or both".into(),
                        "for this machine write `local: {}`",
                    );
                }
                if let Some(ns) = p.kubernetes.as_ref().and_then(|k| k.namespace.as_ref())
                    && cairn_spec::is_reserved_namespace(ns)
                {
                    err(
                        "invalid-value",
                        &["spec", "kubernetes", "namespace"],
                        format!("`{ns}` is a namespace of Kubernetes itself"),
                        "name a namespace of your team's; Cairn never writes to `kube-*` namespaces",
                    );
                }
            }
            Spec::Job(j) => {
                if j.command.is_empty() {
                    err(
                        "invalid-value",
                        &["spec", "command"],
                        "the command is empty".into(),
                        "",
                    );
                }
                let mut seen = HashMap::new();
                for (i, o) in j.outputs.iter().enumerate() {
                    if seen.insert(o.name.clone(), i).is_some() {
                        err(
                            "duplicate-name",
                            &["spec", "outputs", &i.to_string(), "name"],
                            format!("output `{}` is declared twice", o.name),
                            "",
                        );
                    }
                }
                for (i, d) in j.depends_on.iter().enumerate() {
                    if *d == r.key.name {
                        err(
                            "dependency-cycle",
                            &["spec", "dependsOn", &i.to_string()],
                            format!("job `{d}` depends on itself"),
                            "remove it from `dependsOn`",
                        );
                    }
                }
                for name in j.params.keys() {
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        err(
                            "invalid-value",
                            &["spec", "params", name],
                            format!(
                                "parameter name `{name}` cannot become an environment variable"
                            ),
                            "use letters, digits, `_` and `-`: a run sees CAIRN_PARAM_<NAME>, upper-cased, `-` as `_`",
                        );
                    }
                }
                if let Some(metrics) = j.experiment.as_ref().and_then(|e| e.metrics.as_ref())
                    && !j.outputs.iter().any(|o| o.name == *metrics)
                {
                    let outputs: Vec<&str> = j.outputs.iter().map(|o| o.name.as_str()).collect();
                    err(
                        "unknown-reference",
                        &["spec", "experiment", "metrics"],
                        format!("`experiment.metrics` names output `{metrics}`, which the job does not declare"),
                        &match did_you_mean(metrics.as_str(), outputs.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "declare it under `outputs` (a JSON object of numbers, such as metrics.json)".into(),
                        },
                    );
                }
                if let Some(sweep) = &j.sweep {
                    self.sweep(sweep, &j.params, &mut err);
                }
                self.gpus(
                    r,
                    j.pool.as_ref(),
                    j.resources.as_ref().and_then(|x| x.gpus),
                    1,
                    &mut err,
                );
            }
            Spec::Model(m) => {
                match m.runtime {
                    ModelRuntime::Onnx => match (&m.artifact, &m.from) {
                        (None, None) => err(
                            "missing-field",
                            &["spec", "runtime"],
                            "an `onnx` model needs `artifact` (a file in the repository) or `from` (a job output)".into(),
                            "add `artifact: models/model.onnx`",
                        ),
                        (Some(_), Some(_)) => err(
                            "conflicting-fields",
                            &["spec", "from"],
                            "`artifact` and `from` are mutually exclusive".into(),
                            "keep one",
                        ),
                        _ => {}
                    },
                    ModelRuntime::Wasm => {
                        if m.plugin.is_none() {
                            err(
                                "missing-field",
                                &["spec", "runtime"],
                                "a `wasm` model needs `plugin` (a Plugin of world `model`)".into(),
                                "",
                            );
                        }
                    }
                    ModelRuntime::Process => {
                        if m.artifact.is_some() || m.from.is_some() {
                            err(
                                "conflicting-fields",
                                &["spec", if m.artifact.is_some() { "artifact" } else { "from" }],
                                "`process` models load their own files; `artifact` and `from` are for `onnx` models"
                                    .into(),
                                "remove it, or pass the path in `env`",
                            );
                        }
                        if m.command.is_empty() == m.function.is_none() {
                            err(
                                "missing-field",
                                &["spec", "runtime"],
                                "a `process` model needs exactly one of `command` (a server on $PORT) or `function` (`file.py:function`)".into(),
                                "",
                            );
                        }
                        if let Some(f) = &m.function
                            && !f.split_once(':').is_some_and(|(file, func)| file.ends_with(".py") && !func.is_empty())
                        {
                            err(
                                "invalid-value",
                                &["spec", "function"],
                                format!("`{f}` is not of the form `file.py:function`"),
                                "e.g. `predict.py:predict`",
                            );
                        }
                    }
                }
                if m.replicas == 0 {
                    err(
                        "invalid-value",
                        &["spec", "replicas"],
                        "replicas must be at least 1".into(),
                        "",
                    );
                }
                if let Some(ro) = &m.rollout
                    && ro.strategy == RolloutStrategy::Canary
                {
                    let ok = !ro.steps.is_empty()
                        && ro.steps.windows(2).all(|w| w[0] < w[1])
                        && ro.steps.first().is_some_and(|s| *s > 0)
                        && ro.steps.last() == Some(&100);
                    if !ok {
                        err(
                            "invalid-value",
                            &["spec", "rollout", "steps"],
                            "canary steps must be increasing percentages ending at 100".into(),
                            "e.g. `steps: [10, 50, 100]`",
                        );
                    }
                }
                if let Some(d) = m.monitoring.as_ref().and_then(|mo| mo.drift.as_ref())
                    && !(d.threshold.is_finite() && d.threshold > 0.0)
                {
                    err(
                        "invalid-value",
                        &["spec", "monitoring", "drift", "threshold"],
                        "the drift threshold must be a positive number".into(),
                        "",
                    );
                }
                self.gpus(
                    r,
                    m.pool.as_ref(),
                    m.resources.as_ref().and_then(|x| x.gpus),
                    m.replicas,
                    &mut err,
                );
            }
            Spec::Application(a) => {
                if a.framework == "command" && a.command.is_empty() {
                    err(
                        "missing-field",
                        &["spec", "framework"],
                        "framework `command` needs `command`".into(),
                        "add `command: [python, app.py]`",
                    );
                }
                if a.replicas == 0 {
                    err(
                        "invalid-value",
                        &["spec", "replicas"],
                        "replicas must be at least 1".into(),
                        "",
                    );
                }
                if let Some(h) = &a.health_path
                    && !h.starts_with('/')
                {
                    err(
                        "invalid-value",
                        &["spec", "healthPath"],
                        format!("health path `{h}` must start with `/`"),
                        "",
                    );
                }
                self.gpus(
                    r,
                    a.pool.as_ref(),
                    a.resources.as_ref().and_then(|x| x.gpus),
                    a.replicas,
                    &mut err,
                );
            }
            Spec::Project(p) => {
                for (i, g) in p.access.iter().enumerate() {
                    let blank = g.users.iter().chain(&g.groups).any(|n| n.trim().is_empty());
                    if g.users.is_empty() && g.groups.is_empty() {
                        err(
                            "missing-field",
                            &["spec", "access", &i.to_string()],
                            format!("this `{}` grant names no one", g.role),
                            "add `users` (e-mail addresses or subjects) or `groups`",
                        );
                    } else if blank {
                        err(
                            "invalid-value",
                            &["spec", "access", &i.to_string()],
                            "a user or group name is empty".into(),
                            "remove the empty entry",
                        );
                    }
                }
                if cairn_spec::is_reserved_namespace(r.key.name.as_str()) {
                    err(
                        "invalid-value",
                        &["metadata", "name"],
                        format!(
                            "`{}` is reserved: on Kubernetes a project is a namespace, and `kube-*` namespaces are Kubernetes' own",
                            r.key.name
                        ),
                        "choose a name that does not start with `kube-`",
                    );
                }
                for (i, s) in p.secrets.iter().enumerate() {
                    if !is_env_name(&s.name) {
                        err(
                            "invalid-value",
                            &["spec", "secrets", &i.to_string(), "name"],
                            format!("`{}` is not an environment variable name", s.name),
                            "use letters, digits and `_`, not starting with a digit",
                        );
                    }
                    let prefix = cairn_spec::SECRET_ENV_PREFIX;
                    let suffix = s.from_env.strip_prefix(prefix).unwrap_or_default();
                    if suffix.is_empty() || !is_env_name(&s.from_env) {
                        err(
                            "invalid-value",
                            &["spec", "secrets", &i.to_string(), "fromEnv"],
                            format!(
                                "`{}` is not one of the operator's secret variables",
                                s.from_env
                            ),
                            &format!(
                                "name a variable that starts with `{prefix}` (for example `{prefix}{}`), set where `cairn up` runs; the controller's other variables, such as its Git token, are never given to workloads",
                                s.name
                            ),
                        );
                    }
                }
            }
            Spec::Plugin(p) => match (&p.path, &p.builtin) {
                (None, None) => err(
                    "missing-field",
                    &["spec"],
                    "a plugin needs `path` (a .wasm file in the repository) or `builtin`".into(),
                    "",
                ),
                (Some(_), Some(_)) => err(
                    "conflicting-fields",
                    &["spec", "builtin"],
                    "`path` and `builtin` are mutually exclusive".into(),
                    "keep one",
                ),
                (None, Some(b)) => match BUILTIN_PLUGINS.iter().find(|(n, _)| n == b) {
                    None => {
                        let names = BUILTIN_PLUGINS.map(|(n, _)| n);
                        err(
                            "unknown-value",
                            &["spec", "builtin"],
                            format!("there is no built-in plugin `{b}`"),
                            &match did_you_mean(b, names) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("built-in plugins: {}", names.join(", ")),
                            },
                        )
                    }
                    Some((_, world)) if *world != p.world => err(
                        "wrong-plugin-world",
                        &["spec", "world"],
                        format!("built-in plugin `{b}` implements `{}`", world_name(*world)),
                        "",
                    ),
                    Some(_) => {}
                },
                (Some(_), None) => {}
            },
            Spec::Dataset(_) | Spec::Environment(_) => {}
        }
    }

    /// A workload bound for a Kubernetes pool needs a container image.
    fn image(&self, r: &Resource, out: &mut Vec<Diagnostic>) {
        let (pool, own_image) = match &r.spec {
            Spec::Job(j) => (j.pool.as_ref(), j.image.as_ref()),
            Spec::Model(m) if m.runtime == ModelRuntime::Process => (m.pool.as_ref(), None),
            Spec::Application(a) => (a.pool.as_ref(), None),
            _ => return,
        };
        let pool_name = pool.cloned().or_else(|| {
            let project = self
                .state
                .get(Kind::Project, None, r.key.project.as_ref()?.as_str())?;
            match &project.spec {
                Spec::Project(p) => p.default_pool.clone(),
                _ => None,
            }
        });
        let Some(Spec::ComputePool(p)) = pool_name
            .as_ref()
            .and_then(|n| self.state.get(Kind::ComputePool, None, n.as_str()))
            .map(|p| &p.spec)
        else {
            return;
        };
        if p.kubernetes.is_none() {
            return;
        }
        let env_image = match workload_environment(&r.spec) {
            Some(EnvironmentRef::Inline(e)) => e.image.as_ref(),
            Some(EnvironmentRef::Named(n)) => {
                match self
                    .state
                    .get(Kind::Environment, r.key.project.as_ref(), n.as_str())
                {
                    Some(Resource {
                        spec: Spec::Environment(e),
                        ..
                    }) => e.image.as_ref(),
                    _ => return, // reported as a dangling reference
                }
            }
            None => None,
        };
        if own_image.is_none() && env_image.is_none() {
            out.push(
                Diagnostic::error(
                    "missing-image",
                    &*r.file,
                    r.span_of(&["spec", if pool.is_some() { "pool" } else { "kind" }]),
                    format!(
                        "{} runs in pool `{}`, which has a Kubernetes part, but has no container image",
                        r.key,
                        pool_name.expect("checked")
                    ),
                )
                .with_hint("set `image` on its environment (or the job) so the Kubernetes runtime can run it")
                .warning(),
            );
        }
    }

    /// A workload asking for GPUs must run in a pool that has enough.
    /// A sweep sweeps something, within bounds, towards a named metric.
    fn sweep(
        &self,
        sweep: &cairn_spec::SweepSpec,
        params: &indexmap::IndexMap<String, serde_json::Value>,
        err: &mut ErrorSink<'_>,
    ) {
        if sweep.grid.is_empty() && sweep.random.is_empty() {
            err(
                "missing-field",
                &["spec", "sweep"],
                "the sweep varies no parameter".into(),
                "add `grid: {C: [0.1, 1, 10]}` or `random: {C: {min: 0.01, max: 100, log: true}}`",
            );
        }
        for (name, values) in &sweep.grid {
            if values.is_empty() {
                err(
                    "invalid-value",
                    &["spec", "sweep", "grid", name],
                    format!("`{name}` has no values to sweep"),
                    "list at least one value",
                );
            }
            if sweep.random.contains_key(name) {
                err(
                    "duplicate-name",
                    &["spec", "sweep", "random", name],
                    format!("`{name}` is both in the grid and drawn at random"),
                    "keep it in one of them",
                );
            }
        }
        for (name, p) in &sweep.random {
            match p {
                cairn_spec::RandomParam::Choice(v) if v.is_empty() => err(
                    "invalid-value",
                    &["spec", "sweep", "random", name],
                    format!("`{name}` has no values to choose from"),
                    "list at least one value, or give `{min, max}`",
                ),
                cairn_spec::RandomParam::Range(r)
                    if r.min >= r.max || r.min.is_nan() || r.max.is_nan() =>
                {
                    err(
                        "invalid-value",
                        &["spec", "sweep", "random", name],
                        format!("`{name}`: min {} is not below max {}", r.min, r.max),
                        "",
                    )
                }
                cairn_spec::RandomParam::Range(r) if r.log && r.min <= 0.0 => err(
                    "invalid-value",
                    &["spec", "sweep", "random", name, "min"],
                    format!("`{name}` is drawn on a log scale, so min must be above zero"),
                    "",
                ),
                _ => {}
            }
        }
        for name in sweep.grid.keys().chain(sweep.random.keys()) {
            if !params.contains_key(name) {
                err(
                    "unknown-reference",
                    &["spec", "sweep"],
                    format!("the sweep varies `{name}`, which is not one of the job's `params`"),
                    &format!(
                        "declare it with a default under `params` (a run sees it as CAIRN_PARAM_{})",
                        name.to_ascii_uppercase().replace('-', "_")
                    ),
                );
            }
        }
        if sweep.max_parallel == 0 {
            err(
                "invalid-value",
                &["spec", "sweep", "maxParallel"],
                "`maxParallel` must be at least 1".into(),
                "",
            );
        }
        if sweep.max_runs == Some(0) {
            err(
                "invalid-value",
                &["spec", "sweep", "maxRuns"],
                "`maxRuns` must be at least 1".into(),
                "",
            );
        }
        if sweep.objective.metric.trim().is_empty() {
            err(
                "missing-field",
                &["spec", "sweep", "objective", "metric"],
                "the objective names no metric".into(),
                "name the metric the runs log, e.g. `accuracy`",
            );
        }
    }

    fn gpus(
        &self,
        r: &Resource,
        pool: Option<&Name>,
        gpus: Option<u32>,
        replicas: u32,
        err: &mut ErrorSink<'_>,
    ) {
        let Some(per_replica) = gpus.filter(|g| *g > 0) else {
            return;
        };
        // On this machine every replica needs its own devices.
        let wanted = per_replica * replicas.max(1);
        let pool_name = pool.cloned().or_else(|| {
            let project = self
                .state
                .get(Kind::Project, None, r.key.project.as_ref()?.as_str())?;
            match &project.spec {
                Spec::Project(p) => p.default_pool.clone(),
                _ => None,
            }
        });
        let Some(pool_name) = pool_name else {
            err(
                "no-gpu-pool",
                &["spec", "resources", "gpus"],
                format!("asks for {wanted} GPU(s) but names no pool"),
                "set `pool:` to a ComputePool with GPUs (or the project's `defaultPool`)",
            );
            return;
        };
        let Some(Spec::ComputePool(p)) = self
            .state
            .get(Kind::ComputePool, None, pool_name.as_str())
            .map(|p| &p.spec)
        else {
            return; // reported as a dangling reference
        };
        let local = p.local.as_ref().map(|l| &l.gpus);
        let fits = match local {
            Some(GpuSelection::All) => true,
            Some(GpuSelection::Devices(d)) => d.len() as u32 >= wanted,
            Some(GpuSelection::None) | None => p.kubernetes.is_some(),
        };
        if !fits {
            let has = match local {
                Some(GpuSelection::Devices(d)) => d.len(),
                _ => 0,
            };
            let asked = if replicas > 1 {
                format!("{replicas} replicas × {per_replica} GPU(s)")
            } else {
                format!("{wanted} GPU(s)")
            };
            err(
                "insufficient-gpus",
                &["spec", "resources", "gpus"],
                format!("asks for {asked} but pool `{pool_name}` has {has}"),
                "give the pool more devices (`local: {gpus: all}`) or ask for fewer",
            );
        }
    }

    /// Names the cycles in job dependencies.
    fn cycles(&self, out: &mut Vec<Diagnostic>) {
        let mut graph: JobGraph<'_> = BTreeMap::new();
        for r in self.state.of_kind(Kind::Job) {
            if let Spec::Job(j) = &r.spec {
                graph.insert(
                    (&r.key.project, &r.key.name),
                    (
                        r,
                        j.depends_on.iter().filter(|d| **d != r.key.name).collect(),
                    ),
                );
            }
        }
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let mut marks: HashMap<(&Option<Name>, &Name), Mark> = HashMap::new();
        let keys: Vec<_> = graph.keys().copied().collect();
        for start in keys {
            if marks.contains_key(&start) {
                continue;
            }
            // Iterative depth-first search keeping the current path.
            let mut stack: Vec<((&Option<Name>, &Name), usize)> = vec![(start, 0)];
            marks.insert(start, Mark::Visiting);
            while let Some((node, next)) = stack.last().copied() {
                let deps = &graph[&node].1;
                if next >= deps.len() {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                    continue;
                }
                stack.last_mut().expect("non-empty").1 += 1;
                let dep = (node.0, deps[next]);
                if !graph.contains_key(&dep) {
                    continue;
                }
                match marks.get(&dep) {
                    None => {
                        marks.insert(dep, Mark::Visiting);
                        stack.push((dep, 0));
                    }
                    Some(Mark::Visiting) => {
                        let pos = stack.iter().position(|(n, _)| *n == dep).expect("on path");
                        let mut names: Vec<String> =
                            stack[pos..].iter().map(|(n, _)| n.1.to_string()).collect();
                        names.push(dep.1.to_string());
                        let (first, _) = &graph[&dep];
                        let from = graph[&stack[stack.len() - 1].0].0;
                        let index = from_index(from, dep.1);
                        let mut d = Diagnostic::error(
                            "dependency-cycle",
                            &*from.file,
                            from.span_of(&["spec", "dependsOn", &index]),
                            format!("job dependencies form a cycle: {}", names.join(" → ")),
                        )
                        .with_hint(
                            "a pipeline must be acyclic; remove one of these `dependsOn` entries",
                        );
                        if first.file != from.file || first.key != from.key {
                            d = d.with_related(
                                &*first.file,
                                first.span_of(&["metadata", "name"]),
                                "cycle starts here",
                            );
                        }
                        out.push(d);
                    }
                    Some(Mark::Done) => {}
                }
            }
        }
    }

    /// Declared workloads must fit their project's quotas.
    fn quotas(&self, out: &mut Vec<Diagnostic>) {
        for project in self.state.of_kind(Kind::Project) {
            let Spec::Project(p) = &project.spec else {
                continue;
            };
            let Some(q) = &p.quotas else { continue };
            let mut long_running = (0u64, 0u64, 0u64, Vec::new());
            for r in self.state.resources.values() {
                if r.key.project.as_ref() != Some(&project.key.name) {
                    continue;
                }
                let (res, replicas) = match &r.spec {
                    Spec::Model(m) => (m.resources.as_ref(), m.replicas),
                    Spec::Application(a) => (a.resources.as_ref(), a.replicas),
                    Spec::Job(j) => (j.resources.as_ref(), 1),
                    _ => continue,
                };
                let Some(res) = res else { continue };
                let cpu = res.cpu.map_or(0, Cpu::millis) * replicas as u64;
                let mem = res.memory.map_or(0, Memory::bytes) * replicas as u64;
                let gpus = res.gpus.unwrap_or(0) as u64 * replicas as u64;
                let exceeded = |what: &str, asked: String, limit: String| {
                    Diagnostic::error(
                        "quota-exceeded",
                        &*r.file,
                        r.span_of(&["spec", "resources", what]),
                        format!(
                            "{} asks for {asked} {what}, over project `{}`'s quota of {limit}",
                            r.key, project.key.name
                        ),
                    )
                    .with_related(
                        &*project.file,
                        project.span_of(&["spec", "quotas", what]),
                        "quota set here",
                    )
                };
                if let Some(limit) = q.cpu
                    && cpu > limit.millis()
                {
                    out.push(exceeded(
                        "cpu",
                        Cpu::from_millis(cpu).to_string(),
                        limit.to_string(),
                    ));
                    continue;
                }
                if let Some(limit) = q.memory
                    && mem > limit.bytes()
                {
                    out.push(exceeded(
                        "memory",
                        Memory::from_bytes(mem).to_string(),
                        limit.to_string(),
                    ));
                    continue;
                }
                if let Some(limit) = q.gpus
                    && gpus > limit as u64
                {
                    out.push(exceeded("gpus", gpus.to_string(), limit.to_string()));
                    continue;
                }
                if !matches!(r.spec, Spec::Job(_)) {
                    long_running.0 += cpu;
                    long_running.1 += mem;
                    long_running.2 += gpus;
                    long_running.3.push(r.key.to_string());
                }
            }
            let (cpu, mem, gpus, who) = long_running;
            let mut over = Vec::new();
            if q.cpu.is_some_and(|l| cpu > l.millis()) {
                over.push(format!(
                    "cpu {} > {}",
                    Cpu::from_millis(cpu),
                    q.cpu.expect("checked")
                ));
            }
            if q.memory.is_some_and(|l| mem > l.bytes()) {
                over.push(format!(
                    "memory {} > {}",
                    Memory::from_bytes(mem),
                    q.memory.expect("checked")
                ));
            }
            if q.gpus.is_some_and(|l| gpus > l as u64) {
                over.push(format!("gpus {gpus} > {}", q.gpus.expect("checked")));
            }
            if !over.is_empty() {
                out.push(
                    Diagnostic::error(
                        "quota-exceeded",
                        &*project.file,
                        project.span_of(&["spec", "quotas"]),
                        format!(
                            "the models and applications of project `{}` together exceed its quota: {}",
                            project.key.name,
                            over.join(", ")
                        ),
                    )
                    .with_hint(format!("always-on workloads: {}", who.join(", "))),
                );
            }
        }
    }
}

fn from_index(r: &Resource, dep: &Name) -> String {
    match &r.spec {
        Spec::Job(j) => j
            .depends_on
            .iter()
            .position(|d| d == dep)
            .unwrap_or(0)
            .to_string(),
        _ => "0".into(),
    }
}

/// The `environment` of a workload.
fn workload_environment(spec: &Spec) -> Option<&EnvironmentRef> {
    match spec {
        Spec::Job(j) => j.environment.as_ref(),
        Spec::Model(m) => m.environment.as_ref(),
        Spec::Application(a) => a.environment.as_ref(),
        _ => None,
    }
}

fn world_name(w: PluginWorld) -> &'static str {
    match w {
        PluginWorld::DriftDetector => "drift-detector",
        PluginWorld::BusinessMetric => "business-metric",
        PluginWorld::AppFramework => "app-framework",
        PluginWorld::Model => "model",
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Clone, Copy, PartialEq)]
enum Want {
    File,
    Dir,
}

/// Paths must exist in the commit, be of the right type, and not leave the
/// repository through symlinks.
fn paths(r: &Resource, snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    let mut check = |path: &RepoPath, field: &[&str], want: Want| -> Option<String> {
        let span = r.span_of(field);
        let d = match snapshot.resolve(path.as_str()) {
            Resolved::File(f) if want == Want::File => return Some(f),
            Resolved::Dir(d) if want == Want::Dir => return Some(d),
            Resolved::File(_) => Diagnostic::error(
                "path-wrong-type",
                &*r.file,
                span,
                format!("`{path}` is a file, not a directory"),
            ),
            Resolved::Dir(_) => Diagnostic::error(
                "path-wrong-type",
                &*r.file,
                span,
                format!("`{path}` is a directory, not a file"),
            ),
            Resolved::Missing => {
                let (parent, leaf) = path
                    .as_str()
                    .rsplit_once('/')
                    .unwrap_or(("", path.as_str()));
                let siblings: Vec<&str> = snapshot
                    .entries()
                    .filter_map(|(p, _)| {
                        let (pp, l) = p.rsplit_once('/').unwrap_or(("", p));
                        (pp == parent).then_some(l)
                    })
                    .collect();
                Diagnostic::error(
                    "path-missing",
                    &*r.file,
                    span,
                    format!("`{path}` does not exist in {}", origin_name(snapshot)),
                )
                .with_hint(match did_you_mean(leaf, siblings.iter().copied()) {
                    Some(s) if parent.is_empty() => format!("did you mean `{s}`?"),
                    Some(s) => format!("did you mean `{parent}/{s}`?"),
                    None => {
                        "paths are relative to the repository root; is the file committed?".into()
                    }
                })
            }
            Resolved::Escapes { link, target } => Diagnostic::error(
                "path-escapes",
                &*r.file,
                span,
                format!("`{path}` leaves the repository through symlink `{link}` → `{target}`"),
            )
            .with_hint("workloads only see files of the repository; copy what they need into it"),
            Resolved::Loop(link) => Diagnostic::error(
                "symlink-loop",
                &*r.file,
                span,
                format!("`{path}` runs into a symlink loop at `{link}`"),
            ),
        };
        out.push(d);
        None
    };
    if let Some(EnvironmentRef::Inline(e)) = workload_environment(&r.spec) {
        if let Some(req) = &e.requirements {
            check(req, &["spec", "environment", "requirements"], Want::File);
        }
        for (i, l) in e.index.find_links.iter().enumerate() {
            check(
                l,
                &["spec", "environment", "index", "findLinks", &i.to_string()],
                Want::Dir,
            );
        }
    }
    match &r.spec {
        Spec::Job(j) => {
            if let Some(w) = &j.workdir {
                check(w, &["spec", "workdir"], Want::Dir);
            }
        }
        Spec::Model(m) => {
            if let Some(a) = &m.artifact {
                check(a, &["spec", "artifact"], Want::File);
            }
            if let Some(w) = &m.workdir {
                check(w, &["spec", "workdir"], Want::Dir);
            }
            if let Some(d) = m.monitoring.as_ref().and_then(|mo| mo.drift.as_ref()) {
                check(
                    &d.reference,
                    &["spec", "monitoring", "drift", "reference"],
                    Want::File,
                );
            }
        }
        Spec::Application(a) => {
            check(&a.path, &["spec", "path"], Want::Dir);
        }
        Spec::Plugin(p) => {
            if let Some(path) = &p.path
                && let Some(file) = check(path, &["spec", "path"], Want::File)
                && let Some(expected) = &p.sha256
                && let Ok(bytes) = snapshot.read(&file, u64::MAX)
            {
                let actual = hex::encode(sha2::Sha256::digest(&bytes));
                if actual != expected.as_str() {
                    out.push(
                        Diagnostic::error(
                            "checksum-mismatch",
                            &*r.file,
                            r.span_of(&["spec", "sha256"]),
                            format!("`{path}` does not match its sha256"),
                        )
                        .with_hint(format!("the file's sha256 is {actual}; update `sha256` if the new file is intended")),
                    );
                }
            }
        }
        Spec::Environment(e) => {
            if let Some(r) = &e.requirements {
                check(r, &["spec", "requirements"], Want::File);
            }
            for (i, l) in e.index.find_links.iter().enumerate() {
                check(
                    l,
                    &["spec", "index", "findLinks", &i.to_string()],
                    Want::Dir,
                );
            }
        }
        Spec::Project(_) | Spec::ComputePool(_) | Spec::Dataset(_) => {}
    }
}

fn origin_name(snapshot: &Snapshot) -> String {
    match snapshot.commit() {
        Some(c) => format!("commit {}", c.short_id()),
        None => "the repository".into(),
    }
}
