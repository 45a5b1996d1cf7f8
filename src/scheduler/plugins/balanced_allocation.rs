//! `NodeResourcesBalancedAllocation`: prefers nodes whose CPU and memory
//! would be used in similar proportions after placing the pod, so neither
//! runs out while the other sits idle (part of Kubernetes' default profile).

use crate::scheduler::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, PodInfo, ScorePlugin};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// Scores `(1 - |cpu fraction - memory fraction| / 2) * 100`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Best-effort pods change no fraction, so they are not scored.
    fn skip(&self, pod: &PodInfo, _cycle: &CycleState) -> bool {
        pod.requests.milli_cpu == 0 && pod.requests.memory == 0
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, _cycle: &CycleState) -> i64 {
        let alloc = node.allocatable();
        let used = node.requested();
        let mut fractions = [0.0f64; 2];
        let mut n = 0;
        for (capacity, requested) in [
            (
                alloc.milli_cpu,
                used.milli_cpu.saturating_add(pod.requests.milli_cpu),
            ),
            (
                alloc.memory,
                used.memory.saturating_add(pod.requests.memory),
            ),
        ] {
            if capacity <= 0 {
                continue;
            }
            fractions[n] = (requested as f64 / capacity as f64).min(1.0);
            n += 1;
        }
        let std = if n == 2 {
            ((fractions[0] - fractions[1]) / 2.0).abs()
        } else {
            0.0
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{node, pod};

    #[test]
    fn balanced_scores() {
        let cycle = CycleState::default();
        let n = node("n").build(); // 4 CPU, 8Gi
        let cases = [
            // Same share of both: perfectly balanced.
            (pod("p").request("2", "4Gi").build(), 100),
            // cpu 0.5, memory 0.125: std 0.1875.
            (pod("p").request("2", "1Gi").build(), 81),
            // cpu 1.0, memory 0: std 0.5.
            (pod("p").request("4", "").build(), 50),
            // Over capacity is capped at 1.
            (pod("p").request("8", "").build(), 50),
        ];
        for (p, want) in cases {
            assert_eq!(
                BalancedAllocation.score(&p, &n, &cycle),
                want,
                "{:?}",
                p.requests
            );
        }
        assert!(BalancedAllocation.skip(&pod("p").build(), &cycle));
        assert!(!BalancedAllocation.skip(&pod("p").request("1", "").build(), &cycle));
    }
}
