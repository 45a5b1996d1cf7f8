//! The resource quota loop: recomputes each ResourceQuota's `status.used`
//! from the objects of its namespace, so that what deletions and finished
//! pods free becomes available again, and keeps `status.hard` equal to
//! `spec.hard`.
//!
//! Admission charges a quota in the same transaction as the object it
//! admits (see [`crate::apiserver::admission`]); this loop reads the quotas
//! and the objects they count in one consistent snapshot of the local
//! state and writes with the quota's resourceVersion as precondition, so a
//! charge made after the snapshot is never overwritten by a stale count.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::executor::Executor;
use super::metacache::{Change, MetaCache};
use super::spawn_workers;
use crate::api::core::{Pod, ResourceQuota};
use crate::api::quantity::ResourceList;
use crate::api::registry::UpdateScope;
use crate::apiserver::admission::{POD_RESOURCES, quota_covers_pod, usage_of_pod, used_quantity};
use crate::apiserver::rest::{WriteOptions, list_decoded};
use crate::runtime::WorkQueue;
use crate::store::StateMachine;

/// Starts the quota controller; its queue holds namespaces.
pub fn start(
    exec: Arc<Executor>,
    content: &MetaCache,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let q = queue.clone();
    content.add_handler(move |change| {
        let ns = match change {
            Change::Upsert { namespace, .. } | Change::Removed { namespace, .. } => namespace,
        };
        if !ns.is_empty() {
            q.add(ns.clone());
        }
    });
    spawn_workers(queue, 1, stop, move |ns: String| {
        let exec = exec.clone();
        async move { sync(&exec, &ns).await }
    })
}

/// The quotas of `ns` whose status must change: (quota as stored, new status).
fn plan(sm: &StateMachine, ns: &str) -> Vec<(Value, Value)> {
    let quotas: Vec<(u64, Value, ResourceQuota)> =
        list_decoded(sm, &format!("resourcequotas/{ns}/"));
    if quotas.is_empty() {
        return Vec::new();
    }
    let pods: Vec<Pod> = sm
        .list(&format!("pods/{ns}/"), None, 0)
        .0
        .into_iter()
        .filter_map(|(_, s)| serde_json::from_slice::<Pod>(&s.value).ok())
        // Finished pods hold nothing.
        .filter(|p| !p.is_terminal())
        .collect();
    let mut out = Vec::new();
    for (rv, mut stored, quota) in quotas {
        // The precondition of the status write.
        stored["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let used = compute_used(sm, ns, &quota, &pods);
        let mut status = serde_json::Map::new();
        if let Ok(h) = serde_json::to_value(&quota.spec.hard) {
            status.insert("hard".into(), h);
        }
        if let Ok(u) = serde_json::to_value(&used) {
            status.insert("used".into(), u);
        }
        let status = Value::Object(status);
        let current = stored.get("status").cloned().unwrap_or(Value::Null);
        if !same_status(&current, &status) {
            out.push((stored, status));
        }
    }
    out
}

/// Equal up to empty maps (an absent `used` equals `{}`).
fn same_status(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, x)| x.as_object().is_none_or(|o| !o.is_empty()))
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    norm(a) == norm(b)
}

/// `status.used` of `quota` from the pods and objects of `ns`.
fn compute_used(sm: &StateMachine, ns: &str, quota: &ResourceQuota, pods: &[Pod]) -> ResourceList {
    let covered: Vec<&Pod> = pods.iter().filter(|p| quota_covers_pod(quota, p)).collect();
    let scoped = !quota.spec.scopes.is_empty() || quota.spec.scope_selector.is_some();
    let mut pod_usage: BTreeMap<String, i64> = BTreeMap::new();
    for p in &covered {
        for (k, v) in usage_of_pod(p) {
            let e = pod_usage.entry(k).or_insert(0);
            *e = e.saturating_add(v);
        }
    }
    let mut used = ResourceList::new();
    for name in quota.spec.hard.keys() {
        let v = if let Some(v) = pod_usage.get(name) {
            *v
        } else if POD_RESOURCES.contains(&name.as_str()) {
            0
        } else if scoped {
            // Scoped quotas count pods only.
            continue;
        } else if let Some(qualified) = counted_type(name) {
            count(sm, &qualified, ns, name)
        } else {
            continue;
        };
        used.insert(name.clone(), used_quantity(name, v));
    }
    used
}

/// The resource a count quota name counts (`services`, `deployments.apps`).
fn counted_type(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("count/") {
        return Some(rest.to_string());
    }
    match name {
        "services"
        | "configmaps"
        | "secrets"
        | "replicationcontrollers"
        | "resourcequotas"
        | "persistentvolumeclaims"
        | "services.nodeports"
        | "services.loadbalancers" => Some(name.split('.').next().unwrap_or(name).to_string()),
        _ => None,
    }
}

fn count(sm: &StateMachine, qualified: &str, ns: &str, name: &str) -> i64 {
    let items = sm.list(&format!("{qualified}/{ns}/"), None, 0).0;
    let n = match name {
        "services.nodeports" | "services.loadbalancers" => {
            let want = if name == "services.nodeports" {
                "NodePort"
            } else {
                "LoadBalancer"
            };
            items
                .iter()
                .filter(|(_, s)| {
                    serde_json::from_slice::<Value>(&s.value)
                        .ok()
                        .and_then(|v| {
                            v["spec"]["type"]
                                .as_str()
                                .map(|t| t == want || (want == "NodePort" && t == "LoadBalancer"))
                        })
                        .unwrap_or(false)
                })
                .count()
        }
        _ => items.len(),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn sync(exec: &Executor, ns: &str) -> Result<Option<std::time::Duration>, String> {
    let api = &exec.api;
    let changes = api.store.read(|sm| plan(sm, ns));
    let Some(rt) = api.registry.by_kind("", "ResourceQuota") else {
        return Err("no ResourceQuota resource registered".into());
    };
    for (mut stored, status) in changes {
        let name = stored["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        stored["status"] = status;
        api.update(
            rt,
            ns,
            &name,
            stored,
            UpdateScope::Status,
            &WriteOptions::default(),
        )
        .await
        .map_err(|e| format!("resourcequota {ns}/{name}: {}", e.message))?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_names_map_to_stored_types() {
        assert_eq!(
            counted_type("count/deployments.apps").as_deref(),
            Some("deployments.apps")
        );
        assert_eq!(
            counted_type("services.nodeports").as_deref(),
            Some("services")
        );
        assert_eq!(counted_type("configmaps").as_deref(), Some("configmaps"));
        assert_eq!(counted_type("requests.storage"), None);
    }

    #[test]
    fn empty_used_equals_absent() {
        let a = serde_json::json!({"hard": {"pods": "2"}});
        let b = serde_json::json!({"hard": {"pods": "2"}, "used": {}});
        assert!(same_status(&a, &b));
        let c = serde_json::json!({"hard": {"pods": "2"}, "used": {"pods": "1"}});
        assert!(!same_status(&a, &c));
    }
}
