//! `NodeResourcesFit`: a pod fits a node only if the node has room for one
//! more pod and for its CPU and memory requests (Filter); among fitting
//! nodes, the `LeastAllocated` strategy prefers the emptiest (Score, CPU and
//! memory weighted 1:1).

use crate::scheduler::framework::{
    Code, CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, PodInfo, Reason, ScorePlugin, Unfit,
};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "NodeResourcesFit";

/// Filter by allocatable; score with LeastAllocated.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeResourcesFit;

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Kubernetes' `fitsRequest` for pods, CPU and memory: every shortfall
    /// is reported; a request larger than the whole node is unresolvable
    /// (no eviction can make room), anything else is not.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        let alloc = node.allocatable();
        let used = node.requested();
        let mut reasons = [Reason::TooManyPods; 3];
        let mut n = 0;
        let mut unresolvable = false;
        if i64::from(node.pod_count()) + 1 > alloc.pods {
            reasons[n] = Reason::TooManyPods;
            n += 1;
        }
        let req = pod.requests;
        if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu.saturating_sub(used.milli_cpu) {
            reasons[n] = Reason::InsufficientCpu;
            n += 1;
            unresolvable |= req.milli_cpu > alloc.milli_cpu;
        }
        if req.memory > 0 && req.memory > alloc.memory.saturating_sub(used.memory) {
            reasons[n] = Reason::InsufficientMemory;
            n += 1;
            unresolvable |= req.memory > alloc.memory;
        }
        if n == 0 {
            return Ok(());
        }
        let code = if unresolvable {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Err(Unfit::new(code, &reasons[..n]))
    }
}

/// `(capacity - requested) * 100 / capacity`, 0 when over capacity.
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The weighted mean of the CPU and memory scores, counting the pod
    /// itself and using the scoring defaults for missing requests;
    /// resources the node does not offer are left out.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _cycle: &CycleState) -> i64 {
        let alloc = node.allocatable();
        let used = node.non_zero_requested();
        let mut total = 0;
        let mut weights = 0;
        for (capacity, requested) in [
            (
                alloc.milli_cpu,
                used.milli_cpu
                    .saturating_add(pod.non_zero_requests.milli_cpu),
            ),
            (
                alloc.memory,
                used.memory.saturating_add(pod.non_zero_requests.memory),
            ),
        ] {
            if capacity == 0 {
                continue;
            }
            total += least_requested(requested, capacity);
            weights += 1;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::framework::{PodUsage, Resources};
    use crate::scheduler::plugins::test_util::{node, pod};

    fn with_pods(mut n: NodeInfo, count: u32, cpu: i64, mem: i64) -> NodeInfo {
        let u = PodUsage {
            requests: Resources {
                milli_cpu: cpu,
                memory: mem,
            },
            non_zero_requests: Resources {
                milli_cpu: cpu,
                memory: mem,
            },
            owner: None,
        };
        for _ in 0..count {
            n.usage.apply(&u, 1);
        }
        n
    }

    const GI: i64 = 1 << 30;

    #[test]
    fn filter_table() {
        // 4 CPUs, 8Gi, 110 pods.
        let empty = node("n").build();
        let half = with_pods(node("n").build(), 2, 1000, 2 * GI);
        let full_pods = with_pods(node("n").capacity("4", "8Gi", "2").build(), 2, 0, 0);
        use Code::*;
        use Reason::*;
        type Want = Option<(Code, Vec<Reason>)>;
        let cases: Vec<(PodInfo, &NodeInfo, Want)> = vec![
            (pod("p").build(), &empty, None),
            (pod("p").request("4", "8Gi").build(), &empty, None),
            (pod("p").request("2", "4Gi").build(), &half, None),
            (
                pod("p").request("2500m", "").build(),
                &half,
                Some((Unschedulable, vec![InsufficientCpu])),
            ),
            (
                pod("p").request("", "5Gi").build(),
                &half,
                Some((Unschedulable, vec![InsufficientMemory])),
            ),
            (
                pod("p").request("3", "5Gi").build(),
                &half,
                Some((Unschedulable, vec![InsufficientCpu, InsufficientMemory])),
            ),
            // Bigger than the whole node: no eviction would help.
            (
                pod("p").request("5", "1Gi").build(),
                &half,
                Some((UnschedulableAndUnresolvable, vec![InsufficientCpu])),
            ),
            (
                pod("p").request("1", "9Gi").build(),
                &empty,
                Some((UnschedulableAndUnresolvable, vec![InsufficientMemory])),
            ),
            (
                pod("p").build(),
                &full_pods,
                Some((Unschedulable, vec![TooManyPods])),
            ),
            (
                pod("p").request("5", "9Gi").build(),
                &full_pods,
                Some((
                    UnschedulableAndUnresolvable,
                    vec![TooManyPods, InsufficientCpu, InsufficientMemory],
                )),
            ),
        ];
        for (p, n, want) in cases {
            let got = NodeResourcesFit
                .filter(&p, n)
                .err()
                .map(|u| (u.code, u.reasons().to_vec()));
            assert_eq!(got, want, "{:?}", p.requests);
        }
        assert_eq!(InsufficientCpu.as_str(), "Insufficient cpu");
        assert_eq!(InsufficientMemory.as_str(), "Insufficient memory");
        assert_eq!(TooManyPods.as_str(), "Too many pods");
    }

    #[test]
    fn least_allocated_scores() {
        let cycle = CycleState::default();
        // Empty 4 CPU / 8Gi node, pod asks 1 CPU / 2Gi: 75 and 75.
        let p = pod("p").request("1", "2Gi").build();
        assert_eq!(NodeResourcesFit.score(&p, &node("n").build(), &cycle), 75);
        // Half-used node: cpu (4000-3000)/4000 = 25, mem (8-6)/8 = 25.
        let half = with_pods(node("n").build(), 2, 1000, 2 * GI);
        assert_eq!(NodeResourcesFit.score(&p, &half, &cycle), 25);
        // Missing requests count as 100m and 200Mi: cpu 97, mem 97 (integer).
        let empty_pod = pod("p").build();
        assert_eq!(
            NodeResourcesFit.score(&empty_pod, &node("n").build(), &cycle),
            97
        );
        // cpu 100 - (1000/4000*100)=75, mem (8Gi-7Gi)/8Gi = 12: mean 43.
        let q = pod("q").request("1", "7Gi").build();
        assert_eq!(NodeResourcesFit.score(&q, &node("n").build(), &cycle), 43);
        // Over capacity scores 0 for that resource.
        let big = pod("b").request("8", "2Gi").build();
        assert_eq!(NodeResourcesFit.score(&big, &node("n").build(), &cycle), 37);
        // A node offering no memory is scored on CPU alone.
        let cpu_only = node("c").capacity("4", "0", "110").build();
        assert_eq!(NodeResourcesFit.score(&p, &cpu_only, &cycle), 75);
    }
}
