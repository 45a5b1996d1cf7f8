//! `NodeAffinity`: `spec.nodeSelector` and required node affinity restrict
//! the nodes a pod may use (PreFilter, Filter); preferred node affinity adds
//! the weights of matching terms (Score, normalized to 0..=100).

use crate::scheduler::framework::{
    Code, CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterPlugin, PreFilterResult, Reason,
    ScorePlugin, Unfit, default_normalize,
};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "NodeAffinity";

/// PreFilter rejection when the name-pinned terms exclude every node.
pub const REASON_CONFLICT: &str = "pod affinity terms conflict";

/// Filter and score by node selector and node affinity.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeAffinity;

impl PreFilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Pods pinned to nodes by `matchFields metadata.name` (DaemonSet pods)
    /// only look at those nodes, as Kubernetes' PreFilter arranges.
    fn pre_filter(&self, pod: &PodInfo) -> PreFilterResult {
        match pod
            .required_affinity
            .as_ref()
            .and_then(|r| r.pinned_node_names())
        {
            None => PreFilterResult::AllNodes,
            Some(names) if names.is_empty() => {
                PreFilterResult::Reject(Code::UnschedulableAndUnresolvable, REASON_CONFLICT)
            }
            Some(names) => PreFilterResult::Nodes(names),
        }
    }
}

/// Whether the node satisfies the pod's node selector and required affinity.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    let labels = &node.node().metadata.labels;
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|got| got == v));
    selector_ok
        && pod
            .required_affinity
            .as_ref()
            .is_none_or(|r| r.matches(node.node()))
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        if !pod.has_node_constraints() || required_matches(pod, node) {
            Ok(())
        } else {
            Err(Unfit::unresolvable(Reason::NodeAffinityMismatch))
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn skip(&self, pod: &PodInfo, _cycle: &CycleState) -> bool {
        pod.preferred_affinity.is_empty()
    }

    /// The sum of the weights of the preferred terms the node matches.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _cycle: &CycleState) -> i64 {
        pod.preferred_affinity
            .iter()
            .filter(|(_, term)| term.matches(node.node()))
            .map(|(w, _)| *w)
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{expr, node, pinned_to, pod};

    #[test]
    fn filter_table() {
        let ssd = node("a").label("disk", "ssd").label("cores", "16").build();
        let hdd = node("b").label("disk", "hdd").build();
        let cases = [
            (pod("p").build(), &hdd, true),
            (pod("p").selector("disk", "ssd").build(), &ssd, true),
            (pod("p").selector("disk", "ssd").build(), &hdd, false),
            (pod("p").selector("zone", "a").build(), &ssd, false),
            (
                pod("p")
                    .required(vec![expr("disk", "In", &["ssd", "nvme"])])
                    .build(),
                &ssd,
                true,
            ),
            (
                pod("p")
                    .required(vec![expr("disk", "NotIn", &["hdd"])])
                    .build(),
                &hdd,
                false,
            ),
            (
                pod("p")
                    .required(vec![expr("gpu", "DoesNotExist", &[])])
                    .build(),
                &hdd,
                true,
            ),
            (
                pod("p").required(vec![expr("disk", "Exists", &[])]).build(),
                &hdd,
                true,
            ),
            (
                pod("p").required(vec![expr("cores", "Gt", &["8"])]).build(),
                &ssd,
                true,
            ),
            (
                pod("p").required(vec![expr("cores", "Lt", &["8"])]).build(),
                &ssd,
                false,
            ),
            (pod("p").required(vec![pinned_to("a")]).build(), &ssd, true),
            (pod("p").required(vec![pinned_to("a")]).build(), &hdd, false),
            // Selector and affinity must both hold.
            (
                pod("p")
                    .selector("disk", "ssd")
                    .required(vec![expr("disk", "In", &["hdd"])])
                    .build(),
                &ssd,
                false,
            ),
            // Terms are ORed.
            (
                pod("p")
                    .required(vec![
                        expr("disk", "In", &["nvme"]),
                        expr("disk", "In", &["hdd"]),
                    ])
                    .build(),
                &hdd,
                true,
            ),
        ];
        for (p, n, fits) in cases {
            let got = NodeAffinity.filter(&p, n);
            assert_eq!(
                got.is_ok(),
                fits,
                "{:?} {:?} on {}",
                p.node_selector,
                p.required_affinity,
                n.name()
            );
            if let Err(u) = got {
                assert_eq!(
                    u.reasons()[0].as_str(),
                    "node(s) didn't match Pod's node affinity/selector"
                );
            }
        }
    }

    #[test]
    fn pre_filter_pins_daemonset_pods() {
        assert_eq!(
            NodeAffinity.pre_filter(&pod("p").build()),
            PreFilterResult::AllNodes
        );
        assert_eq!(
            NodeAffinity.pre_filter(&pod("p").required(vec![pinned_to("a")]).build()),
            PreFilterResult::Nodes(vec!["a".into()])
        );
        assert_eq!(
            NodeAffinity.pre_filter(
                &pod("p")
                    .required(vec![pinned_to("a"), expr("disk", "Exists", &[])])
                    .build()
            ),
            PreFilterResult::AllNodes
        );
        let mut conflicting = pinned_to("a");
        conflicting.match_fields.extend(pinned_to("b").match_fields);
        assert_eq!(
            NodeAffinity.pre_filter(&pod("p").required(vec![conflicting]).build()),
            PreFilterResult::Reject(Code::UnschedulableAndUnresolvable, REASON_CONFLICT)
        );
    }

    #[test]
    fn preferred_terms_add_weights_then_normalize() {
        let p = pod("p")
            .preferred(10, expr("disk", "In", &["ssd"]))
            .preferred(30, expr("zone", "In", &["a"]))
            .preferred(0, expr("zone", "Exists", &[]))
            .build();
        let nodes = [
            node("a").label("disk", "ssd").label("zone", "a").build(),
            node("b").label("zone", "a").build(),
            node("c").label("disk", "ssd").build(),
            node("d").build(),
        ];
        let cycle = CycleState::default();
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|n| NodeAffinity.score(&p, n, &cycle))
            .collect();
        assert_eq!(s, vec![40, 30, 10, 0]);
        NodeAffinity.normalize(&mut s);
        assert_eq!(s, vec![100, 75, 25, 0]);
        assert!(NodeAffinity.skip(&pod("p").build(), &cycle));
        assert!(!NodeAffinity.skip(&p, &cycle));
    }
}
