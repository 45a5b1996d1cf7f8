//! Namespace and Node behaviour.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{s, validate_cidr, validate_enum, validate_meta, validate_resource_list};
use super::{Namespace, NamespaceStatus, Node, NodeCondition, Taint};
use crate::api::validation::{
    FieldErrors, dns1123_label, dns1123_subdomain, label_value, qualified_name,
};
use crate::api::{ApiObject, TableColumn, age};

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

impl ApiObject for Namespace {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        if self.status.phase.is_empty() {
            self.status.phase = "Active".into();
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_label, &mut errs);
        for (i, f) in self.spec.finalizers.iter().enumerate() {
            if let Err(e) = qualified_name(f) {
                errs.invalid(format!("spec.finalizers[{i}]"), f, e);
            }
        }
        validate_enum(
            &self.status.phase,
            &["Active", "Terminating"],
            "status.phase",
            &mut errs,
        );
        errs
    }

    /// A new namespace starts Active, as in Kubernetes.
    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = match old {
            Some(o) => o.status.clone(),
            None => NamespaceStatus {
                phase: "Active".into(),
                ..Default::default()
            },
        };
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Status", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        vec![
            s(&self.metadata.name),
            s(&self.status.phase),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "status.phase" => Some(self.status.phase.clone()),
            _ => None,
        }
    }
}

impl Node {
    /// The status condition of `type_` (`Ready`, `MemoryPressure`, ...).
    pub fn condition(&self, type_: &str) -> Option<&NodeCondition> {
        self.status.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the node's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

/// Validates one taint under `p`.
pub(crate) fn validate_taint(t: &Taint, p: &str, errs: &mut FieldErrors) {
    if t.key.is_empty() {
        errs.required(format!("{p}.key"), "");
    } else if let Err(e) = qualified_name(&t.key) {
        errs.invalid(format!("{p}.key"), &t.key, e);
    }
    if let Err(e) = label_value(&t.value) {
        errs.invalid(format!("{p}.value"), &t.value, e);
    }
    if t.effect.is_empty() {
        errs.required(format!("{p}.effect"), "");
    } else {
        validate_enum(&t.effect, &TAINT_EFFECTS, &format!("{p}.effect"), errs);
    }
}

/// kubectl's node Status cell: Ready/NotReady/Unknown, plus SchedulingDisabled.
fn node_status(node: &Node) -> String {
    let mut parts = vec![match node.condition("Ready") {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.unschedulable {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_roles(node: &Node) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in &node.metadata.labels {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn address(node: &Node, type_: &str) -> String {
    node.status
        .addresses
        .iter()
        .find(|a| a.type_ == type_)
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "<none>".into())
}

fn or_unknown(v: &str) -> Value {
    if v.is_empty() { s("<unknown>") } else { s(v) }
}

impl ApiObject for Node {
    const HAS_STATUS: bool = true;

    /// Allocatable defaults to capacity, as in Kubernetes.
    fn set_defaults(&mut self) {
        if self.status.allocatable.is_empty() && !self.status.capacity.is_empty() {
            self.status.allocatable = self.status.capacity.clone();
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        if !self.spec.pod_cidr.is_empty() {
            validate_cidr(&self.spec.pod_cidr, "spec.podCIDR", &mut errs);
        }
        for (i, c) in self.spec.pod_cidrs.iter().enumerate() {
            validate_cidr(c, &format!("spec.podCIDRs[{i}]"), &mut errs);
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.spec.taints.iter().enumerate() {
            let p = format!("spec.taints[{i}]");
            validate_taint(t, &p, &mut errs);
            if !seen.insert((t.key.as_str(), t.effect.as_str())) {
                errs.duplicate(p, format!("{}:{}", t.key, t.effect));
            }
        }
        validate_resource_list(&self.status.capacity, "status.capacity", &mut errs);
        validate_resource_list(&self.status.allocatable, "status.allocatable", &mut errs);
        errs
    }

    /// podCIDR(s) and providerID may be set once, never changed.
    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let (n, o) = (&self.spec, &old.spec);
        if !o.pod_cidr.is_empty() && n.pod_cidr != o.pod_cidr {
            errs.forbidden(
                "spec.podCIDR",
                "node updates may not change podCIDR except from \"\" to valid",
            );
        }
        if !o.pod_cidrs.is_empty() && n.pod_cidrs != o.pod_cidrs {
            errs.forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDRs except from \"\" to valid",
            );
        }
        if !o.provider_id.is_empty() && n.provider_id != o.provider_id {
            errs.forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            );
        }
        errs
    }

    /// Unlike most types a node keeps the status it is created with: the
    /// agent registers its capacity and conditions in one request.
    fn keep_status(&mut self, old: Option<&Self>) {
        if let Some(o) = old {
            self.status = o.status.clone();
        }
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Status", "string", 0),
            TableColumn::new("Roles", "string", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("Version", "string", 0),
            TableColumn::new("Internal-IP", "string", 1),
            TableColumn::new("External-IP", "string", 1),
            TableColumn::new("OS-Image", "string", 1),
            TableColumn::new("Kernel-Version", "string", 1),
            TableColumn::new("Container-Runtime", "string", 1),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        let info = &self.status.node_info;
        vec![
            s(&self.metadata.name),
            s(node_status(self)),
            s(node_roles(self)),
            age(self.metadata.creation_timestamp.as_ref(), now),
            s(&info.kubelet_version),
            s(address(self, "InternalIP")),
            s(address(self, "ExternalIP")),
            or_unknown(&info.os_image),
            or_unknown(&info.kernel_version),
            or_unknown(&info.container_runtime_version),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "spec.unschedulable" => Some(self.spec.unschedulable.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn fields(errs: FieldErrors) -> Vec<String> {
        errs.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn namespace_behaviour() {
        let mut ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": "team-a", "creationTimestamp": "2024-04-28T12:00:00Z"}}))
        .unwrap();
        ns.set_defaults();
        assert_eq!(ns.status.phase, "Active");
        assert!(ns.validate().is_empty());
        assert_eq!(
            ns.table_row(now()),
            [json!("team-a"), json!("Active"), json!("3d")]
        );
        assert_eq!(ns.field_value("status.phase").as_deref(), Some("Active"));
        assert_eq!(ns.field_value("spec.finalizers"), None);

        let mut created = ns.clone();
        created.status = NamespaceStatus::default();
        created.keep_status(None);
        assert_eq!(created.status.phase, "Active");
        let mut terminating = ns.clone();
        terminating.status.phase = "Terminating".into();
        let mut upd = ns.clone();
        upd.keep_status(Some(&terminating));
        assert_eq!(upd.status.phase, "Terminating");

        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"metadata": {"name": "a.b"}}), vec!["metadata.name"]),
            (json!({"metadata": {"name": "Team"}}), vec!["metadata.name"]),
            (
                json!({"metadata": {"name": "ok"}, "spec": {"finalizers": ["kubernetes", "bad/"]}}),
                vec!["spec.finalizers[1]"],
            ),
            (
                json!({"metadata": {"name": "ok"}, "status": {"phase": "Gone"}}),
                vec!["status.phase"],
            ),
        ];
        for (v, want) in cases {
            let ns: Namespace = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(fields(ns.validate()), want, "{v}");
        }
        let mut with_fin = ns.clone();
        with_fin.spec.finalizers = vec!["kubernetes".into()];
        assert!(with_fin.spec_changed(&ns));
    }

    #[test]
    fn node_status_cells() {
        let cond = |status: &str| json!([{"type": "Ready", "status": status}]);
        let cases = vec![
            (cond("True"), false, "Ready"),
            (cond("False"), false, "NotReady"),
            (cond("Unknown"), false, "NotReady"),
            (json!([]), false, "Unknown"),
            (cond("True"), true, "Ready,SchedulingDisabled"),
            (
                json!([{"type": "MemoryPressure", "status": "True"}]),
                true,
                "Unknown,SchedulingDisabled",
            ),
        ];
        for (conditions, unschedulable, want) in cases {
            let n = node(
                json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": unschedulable},
                "status": {"conditions": conditions}}),
            );
            assert_eq!(n.table_row(now())[1], want, "{want}");
        }
    }

    #[test]
    fn node_table_and_helpers() {
        let n = node(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-05-01T11:50:00Z", "labels": {
                "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
                "kubernetes.io/role": "worker", "kubernetes.io/hostname": "n1"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.1.0.4"}],
                "nodeInfo": {"kubeletVersion": "v1.35.0-wasmk", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": ""}
            }
        }));
        assert_eq!(
            n.table_row(now()),
            [
                json!("n1"),
                json!("Ready"),
                json!("control-plane,worker"),
                json!("10m"),
                json!("v1.35.0-wasmk"),
                json!("10.1.0.4"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("<unknown>"),
            ]
        );
        assert!(n.is_ready());
        assert_eq!(
            n.condition("Ready").map(|c| c.status.as_str()),
            Some("True")
        );
        assert!(n.condition("DiskPressure").is_none());
        let bare = node(json!({"metadata": {"name": "n2"}}));
        assert!(!bare.is_ready());
        assert_eq!(bare.table_row(now())[2], "<none>");
        assert_eq!(
            bare.field_value("spec.unschedulable").as_deref(),
            Some("false")
        );
        assert_eq!(Node::table_columns().len(), 10);
    }

    #[test]
    fn node_defaults_validation_and_updates() {
        let mut n = node(
            json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        );
        n.set_defaults();
        assert_eq!(n.status.allocatable, n.status.capacity);
        assert!(n.validate().is_empty());

        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"podCIDR": "10.244.0.0/24"}), vec![]),
            (json!({"podCIDR": "10.244.0.0"}), vec!["spec.podCIDR"]),
            (
                json!({"podCIDRs": ["10.244.0.0/24", "fd00::/129"]}),
                vec!["spec.podCIDRs[1]"],
            ),
            (
                json!({"taints": [{"key": "dedicated", "value": "wasm", "effect": "NoSchedule"}]}),
                vec![],
            ),
            (
                json!({"taints": [{"key": "", "effect": "NoSchedule"}]}),
                vec!["spec.taints[0].key"],
            ),
            (
                json!({"taints": [{"key": "k", "effect": ""}]}),
                vec!["spec.taints[0].effect"],
            ),
            (
                json!({"taints": [{"key": "k", "effect": "NoRun"}]}),
                vec!["spec.taints[0].effect"],
            ),
            (
                json!({"taints": [{"key": "k", "value": "a b", "effect": "NoExecute"}]}),
                vec!["spec.taints[0].value"],
            ),
            (
                json!({"taints": [{"key": "k", "effect": "NoExecute"}, {"key": "k", "value": "2", "effect": "NoExecute"}]}),
                vec!["spec.taints[1]"],
            ),
        ];
        for (spec, want) in cases {
            let n = node(json!({"metadata": {"name": "n1"}, "spec": spec}));
            assert_eq!(fields(n.validate()), want, "{spec}");
        }
        let bad_capacity =
            node(json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "four"}}}));
        assert_eq!(fields(bad_capacity.validate()), ["status.capacity[cpu]"]);

        let old = node(
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24", "providerID": "wasmk://n1"}}),
        );
        let mut unchanged = old.clone();
        unchanged.spec.unschedulable = true;
        assert!(unchanged.validate_update(&old).is_empty());
        assert!(unchanged.spec_changed(&old));
        let mut moved = old.clone();
        moved.spec.pod_cidr = "10.244.2.0/24".into();
        moved.spec.provider_id = "other".into();
        assert_eq!(
            fields(moved.validate_update(&old)),
            ["spec.podCIDR", "spec.providerID"]
        );
        let unset = node(json!({"metadata": {"name": "n1"}}));
        assert!(
            old.validate_update(&unset).is_empty(),
            "setting podCIDR once is allowed"
        );
    }

    #[test]
    fn node_keeps_its_registered_status() {
        let mut n = node(
            json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}),
        );
        let registered = n.status.clone();
        n.keep_status(None);
        assert_eq!(n.status, registered);
        let mut upd = node(json!({"metadata": {"name": "n1"}}));
        upd.keep_status(Some(&n));
        assert_eq!(upd.status.daemon_endpoints.kubelet_endpoint.port, 10250);
    }
}
