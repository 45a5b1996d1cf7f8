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
