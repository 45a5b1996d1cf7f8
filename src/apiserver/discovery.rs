//! Discovery documents: `/version`, `/api`, `/apis`, and each group
//! version's resource list, as kubectl reads them.

use serde_json::{Value, json};

use crate::api::registry::{DynResource, Registry};

/// The Kubernetes version wasmk's API corresponds to.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "35";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+wasmk-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("WASMK_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{group}/{}", versions[0]), "version": versions[0]},
    })
}

fn groups(reg: &Registry) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (g, v) in reg.group_versions() {
        match out.iter_mut().find(|(n, _)| *n == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    // metrics.k8s.io is served by the metrics endpoint (kubectl top).
    out.push(("metrics.k8s.io", vec!["v1beta1"]));
    out
}

/// `GET /apis`.
pub fn api_group_list(reg: &Registry) -> Value {
    let gs: Vec<Value> = groups(reg).iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `GET /apis/{group}`.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = groups(reg).into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_doc(g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn resource_entry(t: &dyn DynResource) -> Vec<Value> {
    let i = t.info();
    let mut out = vec![json!({
        "name": i.plural,
        "singularName": i.singular,
        "namespaced": i.namespaced,
        "kind": i.kind,
        "verbs": i.verbs(),
        "shortNames": i.short_names,
        "categories": i.categories,
    })];
    if let Some(o) = out[0].as_object_mut() {
        if i.short_names.is_empty() {
            o.remove("shortNames");
        }
        if i.categories.is_empty() {
            o.remove("categories");
        }
    }
    for sub in i.subresources {
        let (kind, verbs, group, version): (&str, Vec<&str>, Option<&str>, Option<&str>) =
            match *sub {
                "status" => (i.kind, vec!["get", "patch", "update"], None, None),
                "scale" => (
                    "Scale",
                    vec!["get", "patch", "update"],
                    Some("autoscaling"),
                    Some("v1"),
                ),
                "log" => ("Pod", vec!["get"], None, None),
                "binding" => ("Binding", vec!["create"], None, None),
                "eviction" => ("Eviction", vec!["create"], Some("policy"), Some("v1")),
                "finalize" => ("Namespace", vec!["update"], None, None),
                _ => continue,
            };
        let mut e = json!({
            "name": format!("{}/{}", i.plural, sub),
            "singularName": "",
            "namespaced": i.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if let (Some(g), Some(v)) = (group, version) {
            e["group"] = json!(g);
            e["version"] = json!(v);
        }
        out.push(e);
    }
    out
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    if group == "metrics.k8s.io" && version == "v1beta1" {
        return Some(json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
            ]
        }));
    }
    let resources: Vec<Value> = reg
        .all()
        .filter(|t| t.info().group == group && t.info().version == version)
        .flat_map(resource_entry)
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_pods_and_subresources() {
        let doc = resource_list(Registry::get(), "", "v1").unwrap();
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/log",
            "pods/binding",
            "namespaces/finalize",
            "configmaps",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(resource_list(Registry::get(), "apps", "v9").is_none());
    }

    #[test]
    fn groups_are_listed_with_preferred_versions() {
        let doc = api_group_list(Registry::get());
        let names: Vec<&str> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for g in [
            "apps",
            "batch",
            "autoscaling",
            "coordination.k8s.io",
            "wasmk.io",
            "metrics.k8s.io",
        ] {
            assert!(names.contains(&g), "{g}");
        }
        let apps = api_group(Registry::get(), "apps").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    }
}
