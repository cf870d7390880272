//! The installation manifests under `deploy/`, read as YAML (no kustomize
//! needed): RBAC grants the runtime exactly what it uses, cluster-wide only
//! for namespaces and per managed namespace for the rest; the shipped
//! Service exposes the gateway alone; every overlay's allow-list
//! (`CAIRN_KUBE_NAMESPACES`) names the namespaces it grants.

use cairn_runtime_kubernetes::objects::ObjectKind;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Verbs no Cairn role has.
const NEVER: [&str; 5] = ["deletecollection", "escalate", "bind", "impersonate", "*"];

fn deploy() -> PathBuf {
    cairn_test_support::workspace_root().join("deploy")
}

/// Every document of a YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The documents of every YAML file under `dir`, with their paths.
fn all_documents(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(all_documents(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.extend(documents(&path).into_iter().map(|d| (path.clone(), d)));
        }
    }
    out
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[(PathBuf, Value)], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| serde_json::from_value(d.clone()).unwrap())
        .collect()
}

/// The verbs `rules` grant on `group`/`plural`, sorted.
fn verbs(rules: &[PolicyRule], group: &str, plural: &str) -> Vec<String> {
    let mut v: Vec<String> = rules
        .iter()
        .filter(|rule| {
            rule.api_groups.iter().flatten().any(|g| g == group)
                && rule.resources.iter().flatten().any(|r| r == plural)
        })
        .flat_map(|rule| rule.verbs.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn cluster_roles_grant_namespaces_only_and_the_tenant_role_the_rest() {
    let docs = all_documents(&deploy());
    let cluster_roles: Vec<ClusterRole> = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1, "one ClusterRole, for namespaces");
    let cluster_rules: Vec<PolicyRule> = cluster_roles
        .iter()
        .flat_map(|r| r.rules.clone().unwrap_or_default())
        .collect();
    // Namespaces are the only cluster-scoped objects Cairn writes; nothing
    // namespaced is granted cluster-wide, written or read.
    for rule in &cluster_rules {
        assert_eq!(
            rule.resources.as_deref(),
            Some(&["namespaces".to_string()][..]),
            "{rule:?}"
        );
        assert!(!rule.verbs.iter().any(|v| v == "delete" || v == "*"));
    }
    assert_eq!(
        verbs(&cluster_rules, "", "namespaces"),
        ["create", "get", "list", "patch", "watch"]
    );

    // One Role, in deploy/tenant, included once per managed namespace.
    let roles: Vec<Role> = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 1);
    let rules = roles[0].rules.clone().unwrap_or_default();
    for kind in ObjectKind::ALL.into_iter().filter(|k| k.namespaced()) {
        let ar = kind.api_resource();
        assert_eq!(
            verbs(&rules, &ar.group, &ar.plural),
            ["create", "delete", "get", "list", "patch", "watch"],
            "{}",
            kind.as_str()
        );
    }
    assert_eq!(verbs(&rules, "", "pods"), ["get", "list", "watch"]);
    assert_eq!(verbs(&rules, "", "pods/log"), ["get"]);
    for nothing in ["secrets", "nodes", "namespaces", "roles", "rolebindings"] {
        assert!(verbs(&rules, "", nothing).is_empty(), "{nothing}");
        assert!(
            verbs(&rules, "rbac.authorization.k8s.io", nothing).is_empty(),
            "{nothing}"
        );
    }
    for rule in &rules {
        assert!(!rule.verbs.iter().any(|v| NEVER.contains(&v.as_str())));
        assert!(
            !rule.resources.iter().flatten().any(|r| r == "*"),
            "{rule:?}"
        );
    }

    // Every binding names the controller's service account, and the only
    // cluster-wide one binds the namespaces role.
    let cluster_bindings: Vec<ClusterRoleBinding> = of_kind(&docs, "ClusterRoleBinding");
    assert_eq!(cluster_bindings.len(), 1);
    assert_eq!(cluster_bindings[0].role_ref.name, "cairn-namespaces");
    let bindings: Vec<RoleBinding> = of_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].role_ref.kind, "Role");
    let subjects = cluster_bindings
        .iter()
        .map(|b| b.subjects.clone())
        .chain(bindings.iter().map(|b| b.subjects.clone()));
    for subjects in subjects {
        let subjects = subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(
            (
                subjects[0].kind.as_str(),
                subjects[0].name.as_str(),
                subjects[0].namespace.as_deref()
            ),
            ("ServiceAccount", "cairn", Some("cairn-system"))
        );
    }
}

#[test]
fn the_shipped_service_exposes_the_gateway_only() {
    let base = deploy().join("base");
    let docs = all_documents(&base);
    let kinds: Vec<&str> = docs
        .iter()
        .map(|(_, d)| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Kustomization",
            "Namespace",
            "PersistentVolumeClaim",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment: Deployment = of_kind(&docs, "Deployment").remove(0);
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("cairn"));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let ports: Vec<(String, i32)> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [("api".to_string(), 8080), ("gateway".to_string(), 8081)]
    );
    let env = |name: &str| {
        container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(env("CAIRN_GATEWAY_LISTEN").as_deref(), Some("0.0.0.0:8081"));
    assert!(
        container
            .args
            .iter()
            .flatten()
            .any(|a| a == "--listen=0.0.0.0:8080")
    );

    let services: Vec<Service> = of_kind(&docs, "Service");
    assert_eq!(services.len(), 1);
    let targets: Vec<String> = services[0]
        .spec
        .clone()
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| format!("{:?}", p.target_port))
        .collect();
    assert_eq!(targets, [r#"Some(String("gateway"))"#]);
    // Pods are pointed at the gateway's Service port.
    let kustomization = &documents(&base.join("kustomization.yaml"))[0];
    let literals = literals(kustomization);
    assert!(
        literals.contains(&"CAIRN_SERVER_URL=http://cairn.cairn-system.svc:8081".to_string()),
        "{literals:?}"
    );

    // The API only in the opt-in overlay, as a Service of its own.
    let admin = all_documents(&deploy().join("overlays/admin-api"));
    let services: Vec<Service> = of_kind(&admin, "Service");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].metadata.name.as_deref(), Some("cairn-api"));
    let port = &services[0].spec.clone().unwrap().ports.unwrap()[0];
    assert_eq!(format!("{:?}", port.target_port), r#"Some(String("api"))"#);
}

/// The `configMapGenerator` literals of a kustomization.
fn literals(kustomization: &Value) -> Vec<String> {
    kustomization["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["literals"].as_array().cloned().unwrap_or_default())
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_overlay_grants_exactly_the_namespaces_it_allows() {
    for overlay in ["kind", "teams"] {
        let dir = deploy().join("overlays").join(overlay);
        let kustomization = &documents(&dir.join("kustomization.yaml"))[0];
        let allowed: BTreeSet<String> = literals(kustomization)
            .iter()
            .find_map(|l| l.strip_prefix("CAIRN_KUBE_NAMESPACES="))
            .unwrap_or_else(|| panic!("{overlay}: no CAIRN_KUBE_NAMESPACES"))
            .split(',')
            .map(str::to_string)
            .collect();
        // Each directory the overlay includes (but the base) is a tenant:
        // a kustomization setting `namespace:` over deploy/tenant.
        let mut granted = BTreeSet::new();
        for resource in kustomization["resources"].as_array().unwrap() {
            let resource = resource.as_str().unwrap();
            if resource == "../../base" {
                continue;
            }
            let tenant = &documents(&dir.join(resource).join("kustomization.yaml"))[0];
            assert_eq!(
                tenant["resources"],
                serde_json::json!(["../../../tenant"]),
                "{overlay}/{resource}"
            );
            granted.insert(tenant["namespace"].as_str().unwrap().to_string());
        }
        assert_eq!(granted, allowed, "{overlay}");
    }
}
