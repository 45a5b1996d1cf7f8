//! Node lifecycle: a node whose agent stopped renewing its Lease becomes
//! Unknown, gets the `unreachable` taints, and its pods are evicted so their
//! controllers replace them elsewhere; when the agent is back the taints go.
//! Pods bound to a node object that no longer exists are force-deleted (the
//! pod garbage collector's job in Kubernetes).
//!
//! The decisions are a pure function ([`plan_node`]) over the node, its
//! lease, its pods and the time; the loop around it runs once a second.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::executor::Executor;
use crate::api::Time;
use crate::api::coordination::Lease;
use crate::api::core::{Node, NodeCondition, Pod, Taint};
use crate::api::registry::UpdateScope;
use crate::apiserver::patch::PatchType;
use crate::apiserver::rest::{DeleteOptions, WriteOptions};
use crate::controllers::events::EventSpec;
use crate::controllers::plan::ObjectRef;
use crate::runtime::reflector::{Informer, Reflector};

pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// When the agent last showed life: the later of its Lease renewal and its
/// Ready condition heartbeat.
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<DateTime<Utc>> {
    let from_lease = lease.and_then(|l| l.spec.renew_time.map(|t| t.0));
    let from_cond = node
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.map(|t| t.0));
    from_lease.max(from_cond)
}

/// What to do about one node.
#[derive(Debug, Default, PartialEq)]
pub struct NodePlan {
    /// Mark every condition Unknown (the agent is silent).
    pub mark_unknown: bool,
    /// Add the `unreachable` NoSchedule and NoExecute taints.
    pub add_taints: bool,
    /// Remove them (the agent is back and Ready).
    pub remove_taints: bool,
    /// Pods to evict (`namespace`, `name`, `uid`).
    pub evict: Vec<(String, String, String)>,
}

fn has_unreachable_taint(node: &Node) -> bool {
    node.spec.taints.iter().any(|t| t.key == TAINT_UNREACHABLE)
}

/// Whether `pod` tolerates `unreachable:NoExecute` for ever, or until when.
fn tolerates_until(pod: &Pod, since: DateTime<Utc>) -> Option<Option<DateTime<Utc>>> {
    pod.spec
        .tolerations
        .iter()
        .find(|t| {
            let key_ok = t.key.is_empty() && t.operator == "Exists" || t.key == TAINT_UNREACHABLE;
            let effect_ok = t.effect.is_empty() || t.effect == "NoExecute";
            key_ok && effect_ok
        })
        .map(|t| {
            t.toleration_seconds
                .map(|s| since + chrono::Duration::seconds(s))
        })
}

/// The pure decision for one node at `now`.
pub fn plan_node(
    node: &Node,
    lease: Option<&Lease>,
    pods: &[&Pod],
    grace: Duration,
    now: DateTime<Utc>,
) -> NodePlan {
    let mut plan = NodePlan::default();
    let fresh = last_heartbeat(node, lease).is_some_and(|hb| {
        now - hb <= chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::seconds(40))
    });
    let ready_cond = node.status.conditions.iter().find(|c| c.type_ == "Ready");
    let unknown = ready_cond.is_some_and(|c| c.status == "Unknown");
    let created = node.metadata.creation_timestamp.map(|t| t.0).unwrap_or(now);
    // A node that never reported gets the grace period from its creation.
    let silent = !fresh && now - created > chrono::Duration::from_std(grace).unwrap_or_default();
    if silent {
        if !unknown {
            plan.mark_unknown = true;
        }
        if !has_unreachable_taint(node) {
            plan.add_taints = true;
        }
        let since = node
            .spec
            .taints
            .iter()
            .find(|t| t.key == TAINT_UNREACHABLE)
            .and_then(|t| t.time_added.map(|x| x.0))
            .unwrap_or(now);
        for p in pods {
            if p.metadata.deletion_timestamp.is_some() || p.is_terminal() {
                continue;
            }
            // DaemonSet pods belong to the node.
            if p.metadata
                .controller_ref()
                .is_some_and(|r| r.kind == "DaemonSet")
            {
                continue;
            }
            match tolerates_until(p, since) {
                Some(None) => continue,
                Some(Some(until)) if until > now => continue,
                _ => plan.evict.push((
                    p.metadata.namespace.clone(),
                    p.metadata.name.clone(),
                    p.metadata.uid.clone(),
                )),
            }
        }
    } else if fresh && has_unreachable_taint(node) && ready_cond.is_some_and(|c| c.status == "True")
    {
        plan.remove_taints = true;
    }
    plan
}

/// Starts the node lifecycle controller with the given grace period.
pub fn start(
    exec: Arc<Executor>,
    nodes: &Informer<Node>,
    pods: &Informer<Pod>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (nodes, pods) = (nodes.store(), pods.store());
    let (leases, h2) = Reflector {
        namespace: Some("kube-node-lease".into()),
        ..Default::default()
    }
    .spawn::<Lease, _>(exec.api.clone(), |_| {}, stop.clone());
    let h4 = tokio::spawn(async move {
        nodes.wait_synced().await;
        leases.wait_synced().await;
        pods.wait_synced().await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Utc::now();
            let all_pods = pods.list();
            for node in nodes.list() {
                let name = node.metadata.name.clone();
                let on_node: Vec<&Pod> = all_pods
                    .iter()
                    .filter(|p| p.spec.node_name == name)
                    .map(|p| p.as_ref())
                    .collect();
                let lease = leases.get_ns("kube-node-lease", &name);
                let plan = plan_node(&node, lease.as_deref(), &on_node, grace, now);
                if let Err(e) = carry_out(&exec, &node, &plan).await {
                    tracing::debug!(node = %name, error = %e, "node lifecycle");
                }
            }
            // Pods bound to nodes that no longer exist.
            for p in &all_pods {
                if !p.spec.node_name.is_empty() && nodes.get(&p.spec.node_name).is_none() {
                    force_delete(&exec, p).await;
                }
            }
        }
    });
    vec![h2, h4]
}

async fn force_delete(exec: &Executor, p: &Pod) {
    let Ok(rt) = exec.api.resource("", "v1", "pods") else {
        return;
    };
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(crate::apiserver::rest::Preconditions {
            uid: Some(p.metadata.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let _ = exec
        .api
        .delete(rt, &p.metadata.namespace, &p.metadata.name, &opts)
        .await;
}

async fn carry_out(exec: &Executor, node: &Node, plan: &NodePlan) -> Result<(), String> {
    let nodes = exec
        .api
        .resource("", "v1", "nodes")
        .map_err(|e| e.message)?;
    let name = &node.metadata.name;
    let nref = ObjectRef::of(node);
    let opts = WriteOptions::default();
    if plan.mark_unknown {
        let now = Time::now();
        let conditions: Vec<NodeCondition> = node
            .status
            .conditions
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = "NodeStatusUnknown".into();
                    c.message = "Kubelet stopped posting node status.".into();
                    c.last_transition_time = Some(now);
                }
                c
            })
            .collect();
        exec.api
            .patch(
                nodes,
                "",
                name,
                PatchType::Merge,
                &json!({"status": {"conditions": conditions}}),
                UpdateScope::Status,
                &opts,
            )
            .await
            .map_err(|e| e.message)?;
        exec.record(&EventSpec::normal(
            &nref,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        ));
    }
    if plan.add_taints || plan.remove_taints {
        let mut taints: Vec<Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| t.key != TAINT_UNREACHABLE)
            .cloned()
            .collect();
        if plan.add_taints {
            for effect in ["NoSchedule", "NoExecute"] {
                taints.push(Taint {
                    key: TAINT_UNREACHABLE.into(),
                    effect: effect.into(),
                    time_added: Some(Time::now()),
                    ..Default::default()
                });
            }
        }
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
        exec.api
            .patch(
                nodes,
                "",
                name,
                PatchType::Merge,
                &patch,
                UpdateScope::Main,
                &opts,
            )
            .await
            .map_err(|e| e.message)?;
    }
    if !plan.evict.is_empty() {
        let pods = exec.api.resource("", "v1", "pods").map_err(|e| e.message)?;
        for (ns, pod, uid) in &plan.evict {
            let opts = DeleteOptions {
                preconditions: Some(crate::apiserver::rest::Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match exec.api.delete(pods, ns, pod, &opts).await {
                Ok(_) => exec.record(&EventSpec::normal(
                    &nref,
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{pod}"),
                )),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e.message),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MicroTime;
    use crate::api::core::Toleration;

    fn node(ready: &str, heartbeat_secs_ago: i64, now: DateTime<Utc>) -> Node {
        let mut n = Node::default();
        n.metadata.name = "n1".into();
        n.metadata.creation_timestamp = Time::from_unix(now.timestamp() - 3600);
        n.status.conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: ready.into(),
            last_heartbeat_time: Time::from_unix(now.timestamp() - heartbeat_secs_ago),
            ..Default::default()
        });
        n
    }

    fn lease(renewed_secs_ago: i64, now: DateTime<Utc>) -> Lease {
        let mut l = Lease::default();
        l.spec.renew_time = Some(MicroTime(now - chrono::Duration::seconds(renewed_secs_ago)));
        l
    }

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.namespace = "default".into();
        p.metadata.uid = format!("uid-{name}");
        p.spec.node_name = "n1".into();
        if let Some(kind) = owner {
            p.metadata
                .owner_references
                .push(crate::api::OwnerReference {
                    kind: kind.into(),
                    name: "o".into(),
                    uid: "o".into(),
                    api_version: "apps/v1".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                });
        }
        p
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_fresh_lease_keeps_the_node() {
        let now = Utc::now();
        let n = node("True", 300, now);
        let p = pod("a", Some("ReplicaSet"));
        let plan = plan_node(&n, Some(&lease(2, now)), &[&p], GRACE, now);
        assert_eq!(plan, NodePlan::default());
    }

    #[test]
    fn a_silent_node_is_marked_tainted_and_emptied() {
        let now = Utc::now();
        let n = node("True", 60, now);
        let rs_pod = pod("a", Some("ReplicaSet"));
        let ds_pod = pod("b", Some("DaemonSet"));
        let mut tolerant = pod("c", Some("ReplicaSet"));
        tolerant.spec.tolerations.push(Toleration {
            key: TAINT_UNREACHABLE.into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        let mut briefly = pod("d", Some("ReplicaSet"));
        briefly.spec.tolerations.push(Toleration {
            key: TAINT_UNREACHABLE.into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            toleration_seconds: Some(300),
            ..Default::default()
        });
        let plan = plan_node(
            &n,
            Some(&lease(30, now)),
            &[&rs_pod, &ds_pod, &tolerant, &briefly],
            GRACE,
            now,
        );
        assert!(plan.mark_unknown && plan.add_taints);
        assert_eq!(
            plan.evict.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn taints_go_when_the_agent_is_back() {
        let now = Utc::now();
        let mut n = node("True", 1, now);
        n.spec.taints.push(Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        let plan = plan_node(&n, Some(&lease(1, now)), &[], GRACE, now);
        assert!(plan.remove_taints);
        assert!(!plan.mark_unknown);
    }

    #[test]
    fn an_unknown_node_is_not_marked_twice() {
        let now = Utc::now();
        let mut n = node("Unknown", 60, now);
        n.spec.taints.push(Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        let plan = plan_node(&n, None, &[], GRACE, now);
        assert!(!plan.mark_unknown && !plan.add_taints);
    }
}
