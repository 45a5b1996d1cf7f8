//! `ControllerSpread`: spreads the pods of one controller (the owner with
//! `controller: true`, e.g. a ReplicaSet) over nodes by preferring nodes that
//! run fewer of them. It plays the part of Kubernetes' default
//! `PodTopologySpread` constraint on `kubernetes.io/hostname`, counting
//! pods by owner uid instead of by the owner's label selector.

use crate::scheduler::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, PodInfo, ScorePlugin};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "ControllerSpread";

/// Fewer pods of the same controller on a node scores higher.
#[derive(Clone, Copy, Debug, Default)]
pub struct ControllerSpread;

impl ScorePlugin for ControllerSpread {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Nothing to spread for a pod without a controller, or when no pod of
    /// its controller is placed yet.
    fn skip(&self, _pod: &PodInfo, cycle: &CycleState) -> bool {
        cycle.owner.is_none()
    }

    /// Pods of the same controller already on the node.
    fn score(&self, _pod: &PodInfo, node: &NodeInfo, cycle: &CycleState) -> i64 {
        cycle
            .owner
            .map(|o| i64::from(node.owner_count(o)))
            .unwrap_or(0)
    }

    /// PodTopologySpread's normalization: the least-loaded node scores 100,
    /// the others in proportion (`100 * (max + min - count) / max`).
    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_prefers_the_emptiest_node() {
        let cases: [(Vec<i64>, Vec<i64>); 4] = [
            (vec![0, 0, 0], vec![100, 100, 100]),
            (vec![0, 1, 1], vec![100, 0, 0]),
            (vec![1, 2, 2], vec![100, 50, 50]),
            (vec![2, 3, 5], vec![100, 80, 40]),
        ];
        for (raw, want) in cases {
            let mut s = raw.clone();
            ControllerSpread.normalize(&mut s);
            assert_eq!(s, want, "{raw:?}");
        }
    }
}
