//! Which nodes a DaemonSet's pods belong on: node selector, required node
//! affinity, taints and tolerations, with the tolerations Kubernetes adds
//! to every daemon pod.
//!
//! These are local copies of the scheduler's Filter semantics
//! (`NodeAffinity`, `TaintToleration`), kept here so the DaemonSet planner
//! does not depend on the scheduler module.

use std::collections::BTreeMap;

use crate::api::core::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};

/// The field key of a node's name in node affinity `matchFields`.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Tolerations Kubernetes adds to daemon pods (`AddOrUpdateDaemonPodTolerations`):
/// daemons keep running on nodes that are not ready, unreachable, under
/// pressure or cordoned.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: key.into(),
        operator: "Exists".into(),
        effect: effect.into(),
        ..Default::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// Adds the daemon tolerations a spec does not have yet.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    for t in daemon_tolerations(spec.host_network) {
        if !spec
            .tolerations
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect && x.operator == t.operator)
        {
            spec.tolerations.push(t);
        }
    }
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if !t.effect.is_empty() && t.effect != taint.effect {
        return false;
    }
    if !t.key.is_empty() && t.key != taint.key {
        return false;
    }
    match t.operator.as_str() {
        "" | "Equal" => t.value == taint.value,
        "Exists" => true,
        _ => false,
    }
}

/// Whether some taint with an effect accepted by `effects` is tolerated by
/// none of `tolerations` (`FindMatchingUntoleratedTaint`).
pub fn has_untolerated(taints: &[Taint], tolerations: &[Toleration], effects: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                r.values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// One node selector term: every expression on labels and every field
/// requirement holds; an empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && term.match_fields.iter().all(|r| {
            let value = (r.key == NODE_NAME_FIELD).then_some(name);
            requirement_matches(r, value)
        })
}

/// Whether `node` satisfies the pod spec's node selector and required node
/// affinity (`nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`).
pub fn affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = &node.metadata.labels;
    if !spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, &node.metadata.name)),
    }
}

/// `NodeShouldRunDaemonPod` for a daemon pod spec (tolerations added):
/// whether a pod should be started on `node`, and whether a pod already
/// there may keep running (untolerated NoSchedule taints stop new pods but
/// not running ones).
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if !spec.node_name.is_empty() && spec.node_name != node.metadata.name {
        return (false, false);
    }
    if !affinity_matches(spec, node) {
        return (false, false);
    }
    let taints = &node.spec.taints;
    if has_untolerated(taints, &spec.tolerations, &["NoSchedule", "NoExecute"]) {
        return (
            false,
            !has_untolerated(taints, &spec.tolerations, &["NoExecute"]),
        );
    }
    (true, true)
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity
/// becomes "the node named `node`".
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_expressions: Vec::new(),
        match_fields: vec![NodeSelectorRequirement {
            key: NODE_NAME_FIELD.into(),
            operator: "In".into(),
            values: vec![node.into()],
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// `GetTargetNodeName`: the node a daemon pod is bound or pinned to.
pub fn target_node(pod: &Pod) -> Option<&str> {
    if !pod.spec.node_name.is_empty() {
        return Some(&pod.spec.node_name);
    }
    let terms = &pod
        .spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    match terms.as_slice() {
        [term] => term
            .match_fields
            .iter()
            .find(|r| r.key == NODE_NAME_FIELD && r.operator == "In" && r.values.len() == 1)
            .map(|r| r.values[0].as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = name.into();
        n.metadata.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        n.spec.taints = taints
            .iter()
            .map(|(k, e)| Taint {
                key: k.to_string(),
                effect: e.to_string(),
                ..Default::default()
            })
            .collect();
        n
    }

    fn daemon_spec() -> PodSpec {
        let mut s = PodSpec::default();
        add_daemon_tolerations(&mut s);
        s
    }

    #[test]
    fn taints_and_tolerations() {
        let cases = [
            (vec![], (true, true)),
            (
                vec![("node.kubernetes.io/not-ready", "NoExecute")],
                (true, true),
            ),
            (
                vec![("node.kubernetes.io/unschedulable", "NoSchedule")],
                (true, true),
            ),
            (vec![("dedicated", "NoSchedule")], (false, true)),
            (vec![("dedicated", "NoExecute")], (false, false)),
            (vec![("dedicated", "PreferNoSchedule")], (true, true)),
        ];
        for (taints, want) in cases {
            let n = node("n", &[], &taints);
            assert_eq!(should_run(&daemon_spec(), &n), want, "{taints:?}");
        }
        let mut tolerant = daemon_spec();
        tolerant.tolerations.push(Toleration {
            key: "dedicated".into(),
            operator: "Equal".into(),
            value: String::new(),
            effect: String::new(),
            toleration_seconds: None,
        });
        assert_eq!(
            should_run(&tolerant, &node("n", &[], &[("dedicated", "NoExecute")])),
            (true, true)
        );
        // Adding the defaults twice adds nothing.
        let mut twice = daemon_spec();
        add_daemon_tolerations(&mut twice);
        assert_eq!(twice.tolerations.len(), 6);
        let mut host = PodSpec {
            host_network: true,
            ..Default::default()
        };
        add_daemon_tolerations(&mut host);
        assert_eq!(host.tolerations.len(), 7);
    }

    #[test]
    fn selectors_and_affinity() {
        let linux = node("a", &[("kubernetes.io/os", "linux"), ("cores", "8")], &[]);
        let other = node("b", &[("kubernetes.io/os", "windows"), ("cores", "2")], &[]);
        let mut s = daemon_spec();
        s.node_selector
            .insert("kubernetes.io/os".into(), "linux".into());
        assert_eq!(
            (should_run(&s, &linux).0, should_run(&s, &other).0),
            (true, false)
        );
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let cases = [
            (req("cores", "Gt", &["4"]), true, false),
            (req("cores", "Lt", &["4"]), false, true),
            (req("cores", "In", &["2", "3"]), false, true),
            (req("cores", "NotIn", &["2"]), true, false),
            (req("gpu", "DoesNotExist", &[]), true, true),
            (req("gpu", "Exists", &[]), false, false),
        ];
        for (r, want_a, want_b) in cases {
            let mut s = daemon_spec();
            s.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: vec![r.clone()],
                            match_fields: vec![],
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            assert_eq!(
                (affinity_matches(&s, &linux), affinity_matches(&s, &other)),
                (want_a, want_b),
                "{r:?}"
            );
        }
        // Pinned to a node by name.
        let mut pod = Pod::default();
        pod.spec.affinity = Some(pin_to_node(None, "b"));
        assert_eq!(target_node(&pod), Some("b"));
        assert!(!affinity_matches(&pod.spec, &linux));
        assert!(affinity_matches(&pod.spec, &other));
        pod.spec.node_name = "c".into();
        assert_eq!(target_node(&pod), Some("c"));
        assert_eq!(target_node(&Pod::default()), None);
    }
}
