//! The scheduling framework's data and extension points, shaped like
//! Kubernetes' `pkg/scheduler/framework`: a [`PodInfo`] computed once per pod,
//! a [`NodeInfo`] per node kept up to date by the [`Cache`](super::Cache), and
//! one trait per extension point ([`PreFilterPlugin`], [`FilterPlugin`],
//! [`ScorePlugin`]).
//!
//! Everything a plugin needs per node is precomputed so that the hot loop
//! (every node for every pod) does no parsing and no allocation.

use std::sync::Arc;

use crate::api::core::{Container, Node, Pod, PodSpec, pod_requests};

use super::node_selector::{NodeSelectorMatcher, TermMatcher};
use super::plugins::taint_toleration::TolerationMatcher;

/// The highest score a plugin gives a node (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// CPU the scheduler charges for scoring a container without a CPU request
/// (`schedutil.DefaultMilliCPURequest`), so empty pods do not pile up.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory charged for scoring a container without a memory request
/// (`schedutil.DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// CPU (thousandths of a core) and memory (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    fn add(&mut self, other: Resources, sign: i64) {
        self.milli_cpu = self.milli_cpu.saturating_add(sign * other.milli_cpu);
        self.memory = self.memory.saturating_add(sign * other.memory);
    }
}

/// What a node offers to pods (`status.allocatable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub milli_cpu: i64,
    pub memory: i64,
    /// How many pods the node accepts.
    pub pods: i64,
}

/// A taint's effect; anything else is kept as `Unknown` and ignored by
/// both filtering and scoring, as in Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    Unknown,
}

impl TaintEffect {
    /// Parses the API spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => TaintEffect::Unknown,
        }
    }
}

/// A node taint as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTaint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// Taint keys the node lifecycle controller maps from node conditions
/// (Kubernetes' `TaintNodesByCondition`): condition type, the status that
/// taints, and the key.
const CONDITION_TAINTS: [(&str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// Taint added for a node whose Ready condition is False (or missing).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint added for a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint tolerated to land on a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The node's taints plus the `NoSchedule` taints the node lifecycle
/// controller would add for its conditions: a node whose Ready condition is
/// not True must not get new pods even before the controller has tainted it.
pub fn effective_taints(node: &Node) -> Vec<NodeTaint> {
    let mut taints: Vec<NodeTaint> = node
        .spec
        .taints
        .iter()
        .map(|t| NodeTaint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: TaintEffect::parse(&t.effect),
        })
        .collect();
    let mut add = |key: &str| {
        let present = taints
            .iter()
            .any(|t| t.key == key && t.effect == TaintEffect::NoSchedule);
        if !present {
            taints.push(NodeTaint {
                key: key.to_string(),
                value: String::new(),
                effect: TaintEffect::NoSchedule,
            });
        }
    };
    match node.condition("Ready").map(|c| c.status.as_str()) {
        Some("True") => {}
        // A registered node that never reported is not ready (the agent
        // registers with this taint in Kubernetes).
        Some("False") | None => add(TAINT_NOT_READY),
        Some(_) => add(TAINT_UNREACHABLE),
    }
    for (type_, status, key) in CONDITION_TAINTS {
        if node.condition(type_).is_some_and(|c| c.status == status) {
            add(key);
        }
    }
    taints
}

/// An interned controller owner uid (see [`Cache`](super::Cache)); per-node
/// owner counts use it instead of strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub(crate) u32);

/// What pods bound or assumed to a node consume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the pods' requests (what `NodeResourcesFit` checks).
    pub requested: Resources,
    /// Sum with defaults for missing requests (what scoring uses).
    pub non_zero_requested: Resources,
    pub pods: u32,
    /// Pods per controller owner, sorted by owner.
    owners: Vec<(OwnerId, u32)>,
}

impl Usage {
    /// Adds (`sign = 1`) or removes (`sign = -1`) one pod.
    pub(crate) fn apply(&mut self, pod: &PodUsage, sign: i64) {
        self.requested.add(pod.requests, sign);
        self.non_zero_requested.add(pod.non_zero_requests, sign);
        if sign > 0 {
            self.pods = self.pods.saturating_add(1);
        } else {
            self.pods = self.pods.saturating_sub(1);
        }
        if let Some(owner) = pod.owner {
            match self.owners.binary_search_by_key(&owner, |(o, _)| *o) {
                Ok(i) if sign > 0 => self.owners[i].1 += 1,
                Ok(i) => {
                    self.owners[i].1 = self.owners[i].1.saturating_sub(1);
                    if self.owners[i].1 == 0 {
                        self.owners.remove(i);
                    }
                }
                Err(i) if sign > 0 => self.owners.insert(i, (owner, 1)),
                Err(_) => {}
            }
        }
    }

    /// Pods of `owner` counted here.
    pub fn owner_count(&self, owner: OwnerId) -> u32 {
        self.owners
            .binary_search_by_key(&owner, |(o, _)| *o)
            .map(|i| self.owners[i].1)
            .unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn owners(&self) -> impl Iterator<Item = OwnerId> + '_ {
        self.owners.iter().map(|(o, _)| *o)
    }
}

/// What one pod charges to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PodUsage {
    pub requests: Resources,
    pub non_zero_requests: Resources,
    pub owner: Option<OwnerId>,
}

/// One node as the scheduler sees it: the node object, what it offers, its
/// effective taints, and what its pods use.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    node: Arc<Node>,
    allocatable: Allocatable,
    taints: Vec<NodeTaint>,
    pub(crate) usage: Usage,
}

impl NodeInfo {
    /// A node with no pods. Allocatable falls back to capacity when the node
    /// reports none, as API defaulting does.
    pub fn from_node(node: &Node) -> Self {
        let list = if node.status.allocatable.is_empty() {
            &node.status.capacity
        } else {
            &node.status.allocatable
        };
        let allocatable = Allocatable {
            milli_cpu: list.get("cpu").map(|q| q.milli_value()).unwrap_or(0),
            memory: list.get("memory").map(|q| q.value()).unwrap_or(0),
            pods: list.get("pods").map(|q| q.value()).unwrap_or(0),
        };
        NodeInfo {
            node: Arc::new(node.clone()),
            allocatable,
            taints: effective_taints(node),
            usage: Usage::default(),
        }
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.node.metadata.name
    }

    /// The node object as last seen.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn unschedulable(&self) -> bool {
        self.node.spec.unschedulable
    }

    /// Effective taints (see [`effective_taints`]).
    pub fn taints(&self) -> &[NodeTaint] {
        &self.taints
    }

    pub fn allocatable(&self) -> Allocatable {
        self.allocatable
    }

    /// Sum of the requests of the pods on this node.
    pub fn requested(&self) -> Resources {
        self.usage.requested
    }

    /// Requests with scoring defaults for missing ones.
    pub fn non_zero_requested(&self) -> Resources {
        self.usage.non_zero_requested
    }

    /// Pods bound or assumed to this node.
    pub fn pod_count(&self) -> u32 {
        self.usage.pods
    }

    /// Pods of `owner` on this node.
    pub fn owner_count(&self, owner: OwnerId) -> u32 {
        self.usage.owner_count(owner)
    }

    pub(crate) fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }
}

/// Everything the plugins need to know about a pod, computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Effective requests (`core::pod_requests`), checked against allocatable.
    pub requests: Resources,
    /// Requests with defaults for missing ones, used by scoring.
    pub non_zero_requests: Resources,
    /// `spec.nodeName` as set by the user.
    pub node_name: String,
    /// `spec.nodeSelector`.
    pub node_selector: Vec<(String, String)>,
    /// Required node affinity.
    pub required_affinity: Option<NodeSelectorMatcher>,
    /// Preferred node affinity terms with their weights (zero weights dropped).
    pub preferred_affinity: Vec<(i64, TermMatcher)>,
    pub tolerations: Vec<TolerationMatcher>,
    /// Whether the pod may land on cordoned nodes.
    pub tolerates_unschedulable: bool,
    /// The uid of the controller owner (ownerReference with `controller: true`).
    pub owner_uid: Option<String>,
}

impl PodInfo {
    /// Precomputes everything the plugins use.
    pub fn from_pod(pod: &Pod) -> Self {
        let spec = &pod.spec;
        let (milli_cpu, memory) = pod_requests(spec);
        let node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required_affinity = node_affinity
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelectorMatcher::compile);
        let preferred_affinity = node_affinity
            .map(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .filter(|t| t.weight != 0)
                    .map(|t| (i64::from(t.weight), TermMatcher::compile(&t.preference)))
                    .collect()
            })
            .unwrap_or_default();
        let tolerations: Vec<TolerationMatcher> = spec
            .tolerations
            .iter()
            .map(TolerationMatcher::compile)
            .collect();
        let unschedulable_taint = NodeTaint {
            key: TAINT_UNSCHEDULABLE.to_string(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        };
        let tolerates_unschedulable = tolerations
            .iter()
            .any(|t| t.tolerates(&unschedulable_taint));
        PodInfo {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            requests: Resources { milli_cpu, memory },
            non_zero_requests: non_zero_requests(spec),
            node_name: spec.node_name.clone(),
            node_selector: spec
                .node_selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            required_affinity,
            preferred_affinity,
            tolerations,
            tolerates_unschedulable,
            owner_uid: pod.metadata.controller_ref().map(|r| r.uid.clone()),
        }
    }

    /// `namespace/name`, for messages and batch results.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The identity the cache tracks the pod by: its uid, or
    /// `namespace/name` for a pod that has none yet.
    pub fn cache_key(&self) -> String {
        if self.uid.is_empty() {
            self.key()
        } else {
            self.uid.clone()
        }
    }

    /// Whether the pod restricts nodes by selector or required affinity.
    pub fn has_node_constraints(&self) -> bool {
        !self.node_selector.is_empty() || self.required_affinity.is_some()
    }
}

/// The pod's requests with Kubernetes' scoring defaults (100m CPU, 200 MiB)
/// for containers that request nothing (nor set a limit, which defaulting
/// would copy into the request), combined like `core::pod_requests`.
pub fn non_zero_requests(spec: &PodSpec) -> Resources {
    let get = |c: &Container, resource: &str, default: i64, milli: bool| -> i64 {
        let q = c
            .resources
            .requests
            .get(resource)
            .or_else(|| c.resources.limits.get(resource));
        match q {
            Some(q) if milli => q.milli_value(),
            Some(q) => q.value(),
            None => default,
        }
    };
    let effective = |resource: &str, default: i64, milli: bool| -> i64 {
        let mut sidecars: i64 = 0;
        let mut init_peak: i64 = 0;
        for c in &spec.init_containers {
            let v = get(c, resource, default, milli);
            let step = if c.restart_policy.as_deref() == Some("Always") {
                sidecars = sidecars.saturating_add(v);
                sidecars
            } else {
                sidecars.saturating_add(v)
            };
            init_peak = init_peak.max(step);
        }
        let main = spec.containers.iter().fold(sidecars, |acc, c| {
            acc.saturating_add(get(c, resource, default, milli))
        });
        main.max(init_peak)
    };
    Resources {
        milli_cpu: effective("cpu", DEFAULT_MILLI_CPU_REQUEST, true),
        memory: effective("memory", DEFAULT_MEMORY_REQUEST, false),
    }
}

/// Why a filter rejected a node, worded exactly as Kubernetes 1.35 words it
/// (these strings appear in `FailedScheduling` events and in the
/// PodScheduled condition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NodeUnschedulable,
    NodeNameMismatch,
    UntoleratedTaint,
    NodeAffinityMismatch,
    InsufficientCpu,
    InsufficientMemory,
    TooManyPods,
    /// A reason from a plugin outside this module.
    Other(&'static str),
}

impl Reason {
    /// The Kubernetes text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::NodeUnschedulable => "node(s) were unschedulable",
            Reason::NodeNameMismatch => "node(s) didn't match the requested node name",
            // Since 1.35 (backported to 1.34) the message no longer names the
            // taint: keys and values may be sensitive.
            Reason::UntoleratedTaint => "node(s) had untolerated taint(s)",
            Reason::NodeAffinityMismatch => "node(s) didn't match Pod's node affinity/selector",
            Reason::InsufficientCpu => "Insufficient cpu",
            Reason::InsufficientMemory => "Insufficient memory",
            Reason::TooManyPods => "Too many pods",
            Reason::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How final a rejection is, which decides whether Kubernetes would try
/// preemption on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Removing pods from the node could make it fit (`Unschedulable`).
    Unschedulable,
    /// No eviction can help (`UnschedulableAndUnresolvable`).
    UnschedulableAndUnresolvable,
}

/// A filter's rejection: a code and one to three reasons, without
/// allocating (filters run for every node of every pod).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unfit {
    pub code: Code,
    reasons: [Reason; 3],
    len: u8,
}

impl Unfit {
    /// A rejection no eviction can fix.
    pub fn unresolvable(reason: Reason) -> Self {
        Unfit {
            code: Code::UnschedulableAndUnresolvable,
            reasons: [reason; 3],
            len: 1,
        }
    }

    /// A rejection with up to three reasons; extra reasons are dropped, and
    /// an empty list becomes Kubernetes' generic `Unschedulable` text.
    pub fn new(code: Code, reasons: &[Reason]) -> Self {
        let Some(first) = reasons.first() else {
            return Unfit {
                code,
                reasons: [Reason::Other("Unschedulable"); 3],
                len: 1,
            };
        };
        let mut all = [*first; 3];
        let len = reasons.len().min(3);
        all[..len].copy_from_slice(&reasons[..len]);
        Unfit {
            code,
            reasons: all,
            len: len as u8,
        }
    }

    /// The reasons, in the order the plugin found them.
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons[..usize::from(self.len)]
    }
}

/// Per-pod values resolved against the cache once per scheduling cycle.
#[derive(Clone, Copy, Debug, Default)]
pub struct CycleState {
    /// The pod's controller owner, if the cache has pods of it.
    pub owner: Option<OwnerId>,
}

/// What a PreFilter plugin concludes before any node is looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreFilterResult {
    /// Every node is a candidate.
    AllNodes,
    /// Only these nodes can fit; the others are rejected with
    /// `node(s) didn't satisfy plugin(s) [<plugin>]`.
    Nodes(Vec<String>),
    /// The pod fits nowhere; the message becomes the whole FitError body.
    Reject(Code, &'static str),
}

/// The PreFilter extension point: a verdict from the pod alone.
pub trait PreFilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn pre_filter(&self, pod: &PodInfo) -> PreFilterResult;
}

/// The Filter extension point: whether the pod can run on one node.
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit>;
}

/// The Score extension point: a raw score per feasible node, then an
/// optional normalization over all of them to `0..=MAX_NODE_SCORE`. The
/// profile multiplies the result by the plugin's weight.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// True when the plugin has nothing to say about this pod (Kubernetes'
    /// PreScore `Skip`); it then adds nothing for any node.
    fn skip(&self, _pod: &PodInfo, _cycle: &CycleState) -> bool {
        false
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, cycle: &CycleState) -> i64;

    /// Maps raw scores in place onto `0..=MAX_NODE_SCORE`; the default
    /// leaves them as they are (for plugins that already score 0..=100).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Kubernetes' `DefaultNormalizeScore`: scale so the highest raw score
/// becomes `MAX_NODE_SCORE`; with `reverse`, the lowest does.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectMeta;
    use crate::api::core::{NodeCondition, ResourceRequirements, Taint};
    use crate::api::quantity::Quantity;

    fn container(cpu: Option<&str>, mem: Option<&str>) -> Container {
        let mut requests = std::collections::BTreeMap::new();
        if let Some(c) = cpu {
            requests.insert("cpu".to_string(), Quantity(c.to_string()));
        }
        if let Some(m) = mem {
            requests.insert("memory".to_string(), Quantity(m.to_string()));
        }
        Container {
            name: "c".into(),
            resources: ResourceRequirements {
                requests,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn non_zero_requests_default_missing_requests_only() {
        let cases = [
            (vec![container(None, None)], (100, DEFAULT_MEMORY_REQUEST)),
            (
                vec![container(Some("250m"), None)],
                (250, DEFAULT_MEMORY_REQUEST),
            ),
            (vec![container(Some("0"), Some("0"))], (0, 0)),
            (
                vec![container(Some("1"), Some("1Gi")), container(None, None)],
                (1100, (1 << 30) + DEFAULT_MEMORY_REQUEST),
            ),
        ];
        for (containers, (cpu, mem)) in cases {
            let spec = PodSpec {
                containers,
                ..Default::default()
            };
            assert_eq!(
                non_zero_requests(&spec),
                Resources {
                    milli_cpu: cpu,
                    memory: mem
                }
            );
        }
    }

    fn node_with(conditions: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        let mut n = Node {
            metadata: ObjectMeta {
                name: "n".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        n.status.conditions = conditions
            .iter()
            .map(|(t, s)| NodeCondition {
                type_: t.to_string(),
                status: s.to_string(),
                ..Default::default()
            })
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

    #[test]
    fn readiness_and_pressure_become_no_schedule_taints() {
        let keys = |n: &Node| -> Vec<(String, TaintEffect)> {
            effective_taints(n)
                .into_iter()
                .map(|t| (t.key, t.effect))
                .collect()
        };
        let ns = TaintEffect::NoSchedule;
        assert_eq!(keys(&node_with(&[("Ready", "True")], &[])), vec![]);
        assert_eq!(
            keys(&node_with(&[("Ready", "False")], &[])),
            vec![(TAINT_NOT_READY.to_string(), ns)]
        );
        assert_eq!(
            keys(&node_with(&[("Ready", "Unknown")], &[])),
            vec![(TAINT_UNREACHABLE.to_string(), ns)]
        );
        assert_eq!(
            keys(&node_with(&[], &[])),
            vec![(TAINT_NOT_READY.to_string(), ns)]
        );
        // The controller's taint is not duplicated; its NoExecute twin stays.
        assert_eq!(
            keys(&node_with(
                &[("Ready", "Unknown")],
                &[
                    (TAINT_UNREACHABLE, "NoSchedule"),
                    (TAINT_UNREACHABLE, "NoExecute")
                ]
            )),
            vec![
                (TAINT_UNREACHABLE.to_string(), ns),
                (TAINT_UNREACHABLE.to_string(), TaintEffect::NoExecute)
            ]
        );
        assert_eq!(
            keys(&node_with(
                &[("Ready", "True"), ("DiskPressure", "True")],
                &[]
            )),
            vec![("node.kubernetes.io/disk-pressure".to_string(), ns)]
        );
    }

    #[test]
    fn normalization_matches_kubernetes() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 1, 3];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 67, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 0]);
    }

    #[test]
    fn unfit_keeps_up_to_three_reasons() {
        let u = Unfit::new(
            Code::Unschedulable,
            &[Reason::TooManyPods, Reason::InsufficientCpu],
        );
        assert_eq!(u.reasons(), &[Reason::TooManyPods, Reason::InsufficientCpu]);
        assert_eq!(
            Unfit::unresolvable(Reason::NodeUnschedulable)
                .reasons()
                .len(),
            1
        );
    }

    #[test]
    fn usage_counts_owners() {
        let mut u = Usage::default();
        let p = PodUsage {
            requests: Resources {
                milli_cpu: 100,
                memory: 10,
            },
            non_zero_requests: Resources {
                milli_cpu: 100,
                memory: 10,
            },
            owner: Some(OwnerId(7)),
        };
        u.apply(&p, 1);
        u.apply(&p, 1);
        assert_eq!(u.owner_count(OwnerId(7)), 2);
        assert_eq!(u.requested.milli_cpu, 200);
        u.apply(&p, -1);
        u.apply(&p, -1);
        assert_eq!(u, Usage::default());
    }
}
