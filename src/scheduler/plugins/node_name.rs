//! `NodeName`: a pod whose `spec.nodeName` the user set fits only that node.

use crate::scheduler::framework::{FilterPlugin, NodeInfo, PodInfo, Reason, Unfit};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "NodeName";

/// Rejects every node but the one named in `spec.nodeName`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        if pod.node_name.is_empty() || pod.node_name == node.name() {
            Ok(())
        } else {
            Err(Unfit::unresolvable(Reason::NodeNameMismatch))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{node, pod};

    #[test]
    fn only_the_named_node_fits() {
        let cases = [("", "a", true), ("a", "a", true), ("a", "b", false)];
        for (wanted, name, fits) in cases {
            let got = NodeName.filter(&pod("p").node_name(wanted).build(), &node(name).build());
            assert_eq!(got.is_ok(), fits, "{wanted} on {name}");
            if let Err(u) = got {
                assert_eq!(
                    u.reasons()[0].as_str(),
                    "node(s) didn't match the requested node name"
                );
            }
        }
    }
}
