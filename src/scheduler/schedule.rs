//! One scheduling cycle: PreFilter, Filter over the nodes (stopping early on
//! big clusters, as Kubernetes does), Score, and the choice of a node; or a
//! [`FitError`] that renders exactly like Kubernetes' message.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use super::cache::Cache;
use super::framework::{
    Code, CycleState, FilterPlugin, PodInfo, PreFilterPlugin, PreFilterResult, Reason, ScorePlugin,
};
use super::plugins::{
    BalancedAllocation, ControllerSpread, NodeAffinity, NodeName, NodeResourcesFit,
    NodeUnschedulable, TaintToleration,
};

/// Kubernetes searches at least this many nodes before stopping early.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// The message of a cycle with no nodes at all (`ErrNoNodesAvailable`).
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";
/// What the DynamicResources PostFilter says for a pod without resource
/// claims; Kubernetes 1.35's default profile runs it before preemption.
const NO_CLAIMS_TO_DEALLOCATE: &str = "no new claims to deallocate";
/// Preemption's verdict on nodes that failed with a resolvable reason but
/// hold no lower-priority pod. wasmk does not preempt, which is what
/// Kubernetes does when every pod has the same priority.
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Preemption's verdict on nodes that failed for reasons eviction cannot fix.
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// Why a pod fits no node: what Kubernetes' `FitError` records, and its
/// message through `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Nodes in the cache when the cycle ran.
    pub num_all_nodes: usize,
    /// Set when a PreFilter plugin rejected the pod outright.
    pub pre_filter_msg: Option<String>,
    /// How many nodes gave each reason (a node may give several).
    pub reasons: Vec<(String, usize)>,
    /// Nodes whose rejection eviction could fix (code `Unschedulable`).
    pub resolvable_nodes: usize,
    /// The plugins that rejected the pod somewhere, sorted: a pod only needs
    /// another try after an event one of them cares about.
    pub rejected_by: Vec<&'static str>,
}

impl FitError {
    /// The PodScheduled condition reason: `Unschedulable`, or
    /// `SchedulerError` when there were no nodes at all (Kubernetes does not
    /// treat that as a fit error).
    pub fn condition_reason(&self) -> &'static str {
        if self.num_all_nodes == 0 {
            "SchedulerError"
        } else {
            "Unschedulable"
        }
    }

    fn histogram<'a>(counts: impl IntoIterator<Item = (&'a str, usize)>) -> String {
        let mut items: Vec<String> = counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        // Kubernetes sorts the rendered strings, counts included.
        items.sort();
        items.join(", ")
    }
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.num_all_nodes;
        if n == 0 {
            return f.write_str(NO_NODES_AVAILABLE);
        }
        write!(f, "0/{n} nodes are available:")?;
        match &self.pre_filter_msg {
            Some(msg) => write!(f, " {msg}.")?,
            None => {
                let h = Self::histogram(self.reasons.iter().map(|(r, c)| (r.as_str(), *c)));
                if !h.is_empty() {
                    write!(f, " {h}.")?;
                }
            }
        }
        let preemption = Self::histogram([
            (NO_VICTIMS, self.resolvable_nodes),
            (NOT_HELPFUL, n.saturating_sub(self.resolvable_nodes)),
        ]);
        write!(
            f,
            " {NO_CLAIMS_TO_DEALLOCATE}, preemption: 0/{n} nodes are available: {preemption}."
        )
    }
}

impl std::error::Error for FitError {}

/// Accumulates the per-node rejections of one cycle without allocating per node.
struct Diagnosis {
    reasons: Vec<(Reason, usize)>,
    resolvable: usize,
    /// Bit i: filter plugin i rejected some node.
    rejected: u64,
}

impl Diagnosis {
    fn record(&mut self, plugin: usize, code: Code, reasons: &[Reason]) {
        for r in reasons {
            match self.reasons.iter_mut().find(|(x, _)| x == r) {
                Some((_, c)) => *c += 1,
                None => self.reasons.push((*r, 1)),
            }
        }
        if code == Code::Unschedulable {
            self.resolvable += 1;
        }
        self.rejected |= 1u64 << plugin.min(63);
    }
}

/// A scheduling profile: the plugins of each extension point, in order, and
/// the score weights. [`Profile::default`] is Kubernetes' default profile
/// restricted to the plugins wasmk has.
pub struct Profile {
    pre_filters: Vec<Box<dyn PreFilterPlugin>>,
    filters: Vec<Box<dyn FilterPlugin>>,
    scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    /// Percentage of nodes to find feasible before scoring on big clusters;
    /// 0 is Kubernetes' adaptive default (50% minus 1% per 125 nodes, at
    /// least 5%, at least 100 nodes).
    percentage_of_nodes_to_score: usize,
}

impl Default for Profile {
    /// Filters in Kubernetes' order (the first rejection wins, which decides
    /// the reason a node is counted under); scores with Kubernetes' weights.
    fn default() -> Self {
        Profile::empty()
            .with_pre_filter(NodeAffinity)
            .with_filter(NodeUnschedulable)
            .with_filter(NodeName)
            .with_filter(TaintToleration)
            .with_filter(NodeAffinity)
            .with_filter(NodeResourcesFit)
            .with_score(TaintToleration, 3)
            .with_score(NodeAffinity, 2)
            .with_score(ControllerSpread, 2)
            .with_score(NodeResourcesFit, 1)
            .with_score(BalancedAllocation, 1)
    }
}

impl Profile {
    /// A profile without plugins.
    pub fn empty() -> Self {
        Profile {
            pre_filters: Vec::new(),
            filters: Vec::new(),
            scores: Vec::new(),
            percentage_of_nodes_to_score: 0,
        }
    }

    /// Appends a PreFilter plugin.
    pub fn with_pre_filter(mut self, p: impl PreFilterPlugin + 'static) -> Self {
        self.pre_filters.push(Box::new(p));
        self
    }

    /// Appends a Filter plugin (at most 64 are told apart in `rejected_by`).
    pub fn with_filter(mut self, p: impl FilterPlugin + 'static) -> Self {
        self.filters.push(Box::new(p));
        self
    }

    /// Appends a Score plugin with its weight.
    pub fn with_score(mut self, p: impl ScorePlugin + 'static, weight: i64) -> Self {
        self.scores.push((Box::new(p), weight));
        self
    }

    /// Sets `percentageOfNodesToScore` (0 = adaptive, 100 = every node).
    pub fn with_percentage_of_nodes_to_score(mut self, pct: usize) -> Self {
        self.percentage_of_nodes_to_score = pct;
        self
    }

    /// The Filter plugins, in the order they run.
    pub fn filters(&self) -> &[Box<dyn FilterPlugin>] {
        &self.filters
    }

    /// Kubernetes' `numFeasibleNodesToFind`.
    fn nodes_to_find(&self, num_nodes: usize) -> usize {
        if num_nodes < MIN_FEASIBLE_NODES_TO_FIND || self.percentage_of_nodes_to_score >= 100 {
            return num_nodes;
        }
        let pct = match self.percentage_of_nodes_to_score {
            0 => 50usize
                .saturating_sub(num_nodes / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE),
            p => p,
        };
        (num_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Picks a node for `pod` without changing the cache (except where the
    /// next node search starts). Deterministic for a given cache and pod.
    pub fn schedule_one(&self, pod: &PodInfo, cache: &Cache) -> Result<String, FitError> {
        let nodes = cache.nodes();
        let num_all = nodes.len();
        // Built only on failure: the success path must not allocate for it.
        let fit_error = || FitError {
            pod: pod.key(),
            num_all_nodes: num_all,
            pre_filter_msg: None,
            reasons: Vec::new(),
            resolvable_nodes: 0,
            rejected_by: Vec::new(),
        };
        if num_all == 0 {
            return Err(fit_error());
        }

        // PreFilter: an outright rejection, or a restriction to named nodes.
        let mut restricted: Option<Vec<usize>> = None;
        let mut restricting: Vec<&'static str> = Vec::new();
        for pf in &self.pre_filters {
            match pf.pre_filter(pod) {
                PreFilterResult::AllNodes => {}
                PreFilterResult::Reject(code, msg) => {
                    return Err(FitError {
                        pre_filter_msg: Some(msg.to_string()),
                        resolvable_nodes: if code == Code::Unschedulable {
                            num_all
                        } else {
                            0
                        },
                        rejected_by: vec![pf.name()],
                        ..fit_error()
                    });
                }
                PreFilterResult::Nodes(names) => {
                    restricting.push(pf.name());
                    let mut idx: Vec<usize> =
                        names.iter().filter_map(|n| cache.node_index(n)).collect();
                    idx.sort_unstable();
                    idx.dedup();
                    restricted = Some(match restricted {
                        None => idx,
                        Some(prev) => prev.into_iter().filter(|i| idx.contains(i)).collect(),
                    });
                }
            }
        }

        // Filter.
        let mut diag = Diagnosis {
            reasons: Vec::new(),
            resolvable: 0,
            rejected: 0,
        };
        let mut feasible: Vec<usize> = Vec::new();
        let candidates = restricted.as_ref().map_or(num_all, Vec::len);
        let start = if restricted.is_some() {
            0
        } else {
            cache.next_start.load(Ordering::Relaxed) % num_all
        };
        let to_find = self.nodes_to_find(candidates);
        let mut processed = 0;
        for k in 0..candidates {
            let i = match &restricted {
                Some(list) => list[k],
                None => (start + k) % num_all,
            };
            processed += 1;
            let node = &nodes[i];
            let verdict = self
                .filters
                .iter()
                .enumerate()
                .find_map(|(pi, f)| f.filter(pod, node).err().map(|u| (pi, u)));
            match verdict {
                Some((pi, unfit)) => diag.record(pi, unfit.code, unfit.reasons()),
                None => {
                    feasible.push(i);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
            }
        }
        if restricted.is_none() {
            cache
                .next_start
                .store((start + processed) % num_all, Ordering::Relaxed);
        }

        if feasible.is_empty() {
            let mut rejected_by: Vec<&'static str> = self
                .filters
                .iter()
                .enumerate()
                .filter(|(i, _)| diag.rejected & (1u64 << (*i).min(63)) != 0)
                .map(|(_, f)| f.name())
                .chain(restricting.iter().copied())
                .collect();
            rejected_by.sort_unstable();
            rejected_by.dedup();
            let mut reasons: Vec<(String, usize)> = diag
                .reasons
                .iter()
                .map(|(r, c)| (r.as_str().to_string(), *c))
                .collect();
            let absent = num_all - candidates;
            if absent > 0 {
                let mut names = restricting.clone();
                names.sort_unstable();
                names.dedup();
                reasons.push((
                    format!("node(s) didn't satisfy plugin(s) [{}]", names.join(" ")),
                    absent,
                ));
            }
            return Err(FitError {
                reasons,
                resolvable_nodes: diag.resolvable,
                rejected_by,
                ..fit_error()
            });
        }
        if feasible.len() == 1 {
            return Ok(nodes[feasible[0]].name().to_string());
        }

        // Score.
        let cycle = CycleState {
            owner: pod.owner_uid.as_deref().and_then(|u| cache.owner_id(u)),
        };
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scores {
            if plugin.skip(pod, &cycle) {
                continue;
            }
            for (s, &i) in scores.iter_mut().zip(&feasible) {
                *s = plugin.score(pod, &nodes[i], &cycle);
            }
            plugin.normalize(&mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }

        // The best node; ties go to a choice seeded by the pod's identity so
        // equal nodes share the load yet the result is reproducible.
        let best = totals.iter().copied().max().unwrap_or(0);
        let ties = totals.iter().filter(|t| **t == best).count();
        let pick = (tie_seed(pod) % ties as u64) as usize;
        let chosen = totals
            .iter()
            .zip(&feasible)
            .filter(|(t, _)| **t == best)
            .nth(pick)
            .map(|(_, &i)| i)
            .unwrap_or(feasible[0]);
        Ok(nodes[chosen].name().to_string())
    }

    /// Schedules `pods` in order, assuming each placement in the cache
    /// before the next pod is considered. A pod already in the cache is
    /// reported on its node without being scheduled again. Results are
    /// keyed by `namespace/name`.
    pub fn schedule_batch(
        &self,
        pods: &[PodInfo],
        cache: &mut Cache,
    ) -> Vec<(String, Result<String, FitError>)> {
        pods.iter()
            .map(|p| {
                if let Some(node) = cache.pod_node(&p.cache_key()) {
                    return (p.key(), Ok(node.to_string()));
                }
                let result = self.schedule_one(p, cache);
                if let Ok(node) = &result
                    && let Err(e) = cache.assume_pod(p, node)
                {
                    // Unreachable: the node came from the cache and the pod was not in it.
                    tracing::error!(pod = %p.key(), error = %e, "assuming a scheduled pod failed");
                }
                (p.key(), result)
            })
            .collect()
    }
}

/// 64-bit FNV-1a: a stable hash for tie-breaking (std's hasher is seeded
/// per process).
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Hash of the pod's cache identity (uid, else `namespace/name`).
fn tie_seed(pod: &PodInfo) -> u64 {
    let h = 0xcbf2_9ce4_8422_2325u64;
    if pod.uid.is_empty() {
        let h = fnv1a(h, pod.namespace.as_bytes());
        fnv1a(fnv1a(h, b"/"), pod.name.as_bytes())
    } else {
        fnv1a(h, pod.uid.as_bytes())
    }
}

fn default_profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(Profile::default)
}

/// Schedules one pod with the default profile; see [`Profile::schedule_one`].
pub fn schedule_one(pod: &PodInfo, cache: &Cache) -> Result<String, FitError> {
    default_profile().schedule_one(pod, cache)
}

/// Schedules pods with the default profile; see [`Profile::schedule_batch`].
pub fn schedule_batch(
    pods: &[PodInfo],
    cache: &mut Cache,
) -> Vec<(String, Result<String, FitError>)> {
    default_profile().schedule_batch(pods, cache)
}
