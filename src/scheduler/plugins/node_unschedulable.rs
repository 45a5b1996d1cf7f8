//! `NodeUnschedulable`: cordoned nodes (`spec.unschedulable`) take no new
//! pods, unless the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`.

use crate::scheduler::framework::{FilterPlugin, NodeInfo, PodInfo, Reason, Unfit};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "NodeUnschedulable";

/// Rejects cordoned nodes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        if node.unschedulable() && !pod.tolerates_unschedulable {
            Err(Unfit::unresolvable(Reason::NodeUnschedulable))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{node, pod};

    #[test]
    fn cordoned_nodes_need_the_toleration() {
        let key = "node.kubernetes.io/unschedulable";
        let cases = [
            (node("n").build(), pod("p").build(), true),
            (node("n").cordoned().build(), pod("p").build(), false),
            (
                node("n").cordoned().build(),
                pod("p").toleration(key, "Exists", "", "NoSchedule").build(),
                true,
            ),
            (
                node("n").cordoned().build(),
                pod("p").toleration("", "Exists", "", "").build(),
                true,
            ),
            (
                node("n").cordoned().build(),
                pod("p").toleration(key, "Exists", "", "NoExecute").build(),
                false,
            ),
        ];
        for (n, p, fits) in cases {
            let got = NodeUnschedulable.filter(&p, &n);
            assert_eq!(got.is_ok(), fits, "{:?}", p.tolerations);
            if let Err(u) = got {
                assert_eq!(u.reasons()[0].as_str(), "node(s) were unschedulable");
            }
        }
    }
}
