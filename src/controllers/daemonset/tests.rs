//! DaemonSet planner tests, through the simulated cluster: nodes come, go
//! and get tainted; templates roll out pod by pod or with surge.

use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::api::core::Taint;
use crate::controllers::plan::Object;
use crate::controllers::sim::World;

fn agent(update: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"name": "agent"}},
            "updateStrategy": update,
            "template": {
                "metadata": {"labels": {"name": "agent"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "agent", "image": "agent:1"}]
                }
            }
        }
    }))
    .unwrap()
}

fn node(name: &str, os: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.metadata.uid = format!("node-{name}");
    n.metadata
        .labels
        .insert("kubernetes.io/os".into(), os.into());
    n
}

fn world(nodes: &[(&str, &str)], ds: DaemonSet) -> World {
    let mut w = World::new();
    w.nodes = nodes.iter().map(|(n, os)| node(n, os)).collect();
    w.create(ds).unwrap();
    w
}

/// Live daemon pods: (node, image, ready).
fn placed(w: &World) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = w
        .pods()
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.is_terminal())
        .map(|p| {
            (
                p.spec.node_name.clone(),
                p.spec.containers[0].image.clone(),
                pod_ready(p),
            )
        })
        .collect();
    v.sort();
    v
}

fn round(w: &mut World) {
    w.sync_daemon_set("agent");
    w.terminate_pods();
    w.start_pods();
    w.advance(1);
}

fn settle(w: &mut World) {
    for _ in 0..10 {
        round(w);
    }
    w.sync_daemon_set("agent");
}

fn set_image(w: &mut World, image: &str) {
    let image = image.to_string();
    w.edit("DaemonSet", "kube-system", "agent", |d: &mut DaemonSet| {
        d.spec.template.spec.containers[0].image = image;
    })
    .unwrap();
}

#[test]
fn one_pod_per_eligible_node() {
    let mut w = world(
        &[("a", "linux"), ("b", "linux"), ("w", "windows")],
        agent(json!({})),
    );
    let plan = w.sync_daemon_set("agent").unwrap();
    // The first revision, then the pods, then the status.
    let Some(Action::Create {
        object: Object::ControllerRevision(cr),
        ..
    }) = plan.actions.first()
    else {
        panic!("expected a revision: {:?}", plan.actions);
    };
    assert_eq!(cr.revision, 1);
    let hash = cr.metadata.labels.get(REVISION_HASH_LABEL).unwrap().clone();
    assert_eq!(cr.metadata.name, format!("agent-{hash}"));
    assert_eq!(cr.data["spec"]["template"]["$patch"], "replace");
    let pods: Vec<&Pod> = plan.created_pods().collect();
    let nodes: Vec<&str> = pods.iter().map(|p| p.spec.node_name.as_str()).collect();
    assert_eq!(nodes, ["a", "b"]);
    for p in &pods {
        assert_eq!(p.metadata.labels.get(REVISION_HASH_LABEL), Some(&hash));
        assert_eq!(target_node(p), Some(p.spec.node_name.as_str()));
        let terms = &p
            .spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(
            terms[0].match_fields[0].values,
            std::slice::from_ref(&p.spec.node_name)
        );
        assert!(
            p.spec
                .tolerations
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
        );
        assert_eq!(p.metadata.owner_references[0].kind, "DaemonSet");
    }
    settle(&mut w);
    let ds = w.daemon_set("agent").unwrap();
    let st = &ds.status;
    assert_eq!(
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready,
            st.updated_number_scheduled,
            st.number_available,
            st.number_misscheduled,
            st.number_unavailable
        ),
        (2, 2, 2, 2, 2, 0, 0)
    );
    assert_eq!(st.observed_generation, ds.metadata.generation);
}

#[test]
fn nodes_added_removed_and_tainted() {
    let mut w = world(&[("a", "linux"), ("b", "linux")], agent(json!({})));
    settle(&mut w);
    assert_eq!(placed(&w).len(), 2);
    // A new node gets a pod.
    w.nodes.push(node("c", "linux"));
    settle(&mut w);
    assert_eq!(
        placed(&w).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    // A removed node's pod goes.
    w.nodes.retain(|n| n.metadata.name != "b");
    settle(&mut w);
    assert_eq!(
        placed(&w).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
    // NoSchedule: the running pod stays but counts as misscheduled.
    let taint = |effect: &str| Taint {
        key: "dedicated".into(),
        effect: effect.into(),
        ..Default::default()
    };
    w.nodes[0].spec.taints.push(taint("NoSchedule"));
    settle(&mut w);
    assert_eq!(placed(&w).len(), 2);
    let st = w.daemon_set("agent").unwrap().status;
    assert_eq!(
        (st.desired_number_scheduled, st.number_misscheduled),
        (1, 1)
    );
    // NoExecute: the pod is evicted.
    w.nodes[0].spec.taints = vec![taint("NoExecute")];
    settle(&mut w);
    assert_eq!(
        placed(&w).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["c"]
    );
    // Taints the daemon tolerates change nothing.
    w.nodes[1].spec.taints.push(Taint {
        key: "node.kubernetes.io/not-ready".into(),
        effect: "NoExecute".into(),
        ..Default::default()
    });
    w.nodes.push(node("d", "linux"));
    w.nodes[2].spec.unschedulable = true;
    settle(&mut w);
    assert_eq!(
        placed(&w).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["c", "d"]
    );
    // A changed selector removes pods from nodes that no longer match.
    w.nodes[1]
        .metadata
        .labels
        .insert("kubernetes.io/os".into(), "plan9".into());
    settle(&mut w);
    assert_eq!(
        placed(&w).iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["d"]
    );
}

#[test]
fn failed_pods_are_replaced_with_backoff() {
    let mut w = world(&[("a", "linux")], agent(json!({})));
    settle(&mut w);
    let first = w.pods()[0].metadata.name.clone();
    w.finish_pod(&first, 1);
    let plan = w.sync_daemon_set("agent").unwrap();
    assert_eq!(
        plan.deleted().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        [first.as_str()]
    );
    let warning = plan
        .events
        .iter()
        .find(|e| e.reason == "FailedDaemonPod")
        .unwrap();
    assert_eq!(
        warning.message,
        format!("Found failed daemon pod kube-system/{first} on node a, will try to kill it")
    );
    w.terminate_pods();
    w.sync_daemon_set("agent");
    w.start_pods();
    let second = placed(&w);
    assert_eq!(second.len(), 1);
    // It fails again at once: now in backoff (2 s), no delete.
    let name = w
        .pods()
        .iter()
        .find(|p| !p.is_terminal())
        .unwrap()
        .metadata
        .name
        .clone();
    w.finish_pod(&name, 1);
    let plan = w.sync_daemon_set("agent").unwrap();
    assert_eq!(plan.deleted().count(), 0);
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(1)));
    w.advance(2);
    let plan = w.sync_daemon_set("agent").unwrap();
    assert_eq!(plan.deleted().count(), 1);
    // Succeeded pods are replaced without backoff.
    let mut b = FailedPodBackoff::default();
    let t0 = crate::controllers::sim::epoch();
    b.next("n", t0);
    b.next("n", t0);
    assert_eq!(b.remaining("n", t0), Some(Duration::seconds(2)));
    b.next("n", t0 + Duration::hours(1));
    assert_eq!(
        b.remaining("n", t0 + Duration::hours(1)),
        Some(Duration::seconds(1))
    );
}

#[test]
fn rolling_update_with_max_unavailable() {
    let nodes = [
        ("a", "linux"),
        ("b", "linux"),
        ("c", "linux"),
        ("d", "linux"),
    ];
    let mut w = world(
        &nodes,
        agent(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})),
    );
    settle(&mut w);
    set_image(&mut w, "agent:2");
    let mut done = false;
    for _ in 0..20 {
        w.sync_daemon_set("agent");
        // At most two nodes without an available pod.
        let up = placed(&w).iter().filter(|p| p.2).count();
        assert!(up >= 2, "{:?}", placed(&w));
        w.terminate_pods();
        w.start_pods();
        w.advance(1);
        if placed(&w).iter().all(|p| p.1 == "agent:2") && placed(&w).len() == 4 {
            done = true;
            break;
        }
    }
    assert!(done, "{:?}", placed(&w));
    settle(&mut w);
    let ds = w.daemon_set("agent").unwrap();
    assert_eq!(ds.status.updated_number_scheduled, 4);
    let mut revs: Vec<i64> = w
        .controller_revisions()
        .iter()
        .map(|r| r.revision)
        .collect();
    revs.sort();
    assert_eq!(revs, [1, 2]);
}

#[test]
fn rolling_update_with_surge_keeps_every_node_covered() {
    let nodes = [("a", "linux"), ("b", "linux"), ("c", "linux")];
    let update =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    let mut d = agent(update);
    d.spec.min_ready_seconds = 2;
    let mut w = world(&nodes, d);
    settle(&mut w);
    set_image(&mut w, "agent:2");
    let mut max_pods = 0;
    for _ in 0..40 {
        w.sync_daemon_set("agent");
        let p = placed(&w);
        max_pods = max_pods.max(p.len());
        // Every node keeps a ready pod throughout.
        for n in ["a", "b", "c"] {
            assert!(p.iter().any(|x| x.0 == n && x.2), "{n} uncovered: {p:?}");
        }
        w.terminate_pods();
        w.start_pods();
        w.advance(1);
    }
    assert_eq!(max_pods, 4, "one extra pod at a time");
    assert!(placed(&w).iter().all(|p| p.1 == "agent:2"));
    assert_eq!(placed(&w).len(), 3);
}

#[test]
fn on_delete_waits_for_deletions() {
    let mut w = world(
        &[("a", "linux"), ("b", "linux")],
        agent(json!({"type": "OnDelete"})),
    );
    settle(&mut w);
    set_image(&mut w, "agent:2");
    settle(&mut w);
    assert!(placed(&w).iter().all(|p| p.1 == "agent:1"));
    assert_eq!(
        w.daemon_set("agent")
            .unwrap()
            .status
            .updated_number_scheduled,
        0
    );
    // Someone deletes the pod on `a`: its replacement is new.
    let victim = w
        .pods()
        .into_iter()
        .find(|p| p.spec.node_name == "a")
        .unwrap();
    w.apply(&Plan {
        actions: vec![Action::delete(ObjectRef::of(&victim), "user")],
        ..Default::default()
    })
    .unwrap();
    settle(&mut w);
    let p = placed(&w);
    assert_eq!(p[0], ("a".into(), "agent:2".into(), true));
    assert_eq!(p[1].1, "agent:1");
    assert_eq!(
        w.daemon_set("agent")
            .unwrap()
            .status
            .updated_number_scheduled,
        1
    );
}

#[test]
fn rollback_reuses_the_revision_and_history_is_trimmed() {
    let mut d = agent(json!({}));
    d.spec.revision_history_limit = Some(1);
    let mut w = world(&[("a", "linux")], d);
    settle(&mut w);
    let first = w.controller_revisions()[0].metadata.name.clone();
    set_image(&mut w, "agent:2");
    settle(&mut w);
    set_image(&mut w, "agent:3");
    settle(&mut w);
    // Revisions 1 and 2 are old; the limit keeps one.
    let names: Vec<(String, i64)> = w
        .controller_revisions()
        .iter()
        .map(|r| (r.metadata.name.clone(), r.revision))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.iter().any(|(n, _)| *n == first));
    // Back to agent:2: its revision becomes 4, no new one is made.
    set_image(&mut w, "agent:2");
    settle(&mut w);
    let mut revs: Vec<i64> = w
        .controller_revisions()
        .iter()
        .map(|r| r.revision)
        .collect();
    revs.sort();
    assert_eq!(revs, [3, 4]);
    assert!(placed(&w).iter().all(|p| p.1 == "agent:2"));
}

#[test]
fn expectations_and_selector_checks() {
    let mut w = world(&[("a", "linux")], agent(json!({})));
    let first = w.sync_daemon_set("agent").unwrap();
    assert_eq!(first.created_pods().count(), 1);
    // The snapshot without the new pod: no second pod, status only.
    let ds = w.daemon_set("agent").unwrap();
    let exp = first.expectations.clone().unwrap();
    let observed = Observed {
        nodes: &w.nodes,
        pods: &[],
        revisions: &w.controller_revisions(),
        expectations: Some(&exp),
        backoff: &FailedPodBackoff::default(),
        now: w.now,
    };
    let again = plan(&ds, &observed, &mut rand::rngs::StdRng::seed_from_u64(1));
    assert_eq!(again.plan.created_pods().count(), 0);
    // An empty selector is refused.
    let mut bad = ds.clone();
    bad.spec.selector = Some(Default::default());
    let out = plan(&bad, &observed, &mut rand::rngs::StdRng::seed_from_u64(1));
    assert_eq!(out.plan.events[0].reason, "SelectingAll");
    assert!(out.plan.actions.is_empty());
}
