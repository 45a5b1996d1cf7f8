//! The scheduler: Kubernetes' scheduling framework and default plugins,
//! as pure functions over a [`Cache`] of nodes and pod placements.
//!
//! Layout:
//! - `framework`: [`PodInfo`], [`NodeInfo`], the extension-point traits
//!   ([`PreFilterPlugin`], [`FilterPlugin`], [`ScorePlugin`]) and reasons.
//! - `cache`: [`Cache`], updated incrementally by the binding loop.
//! - `schedule`: [`Profile`], [`schedule_one`], [`schedule_batch`], [`FitError`].
//! - `node_selector`: node selector terms compiled once per pod.
//! - `lifecycle`: [`needs_scheduling`] and the PodScheduled condition.
//! - `plugins`: one file per plugin.
//!
//! # Driving it from a binding loop
//!
//! The loop owns one `Cache` (behind a lock if shared) and feeds it events:
//!
//! 1. Nodes: `add_node` / `update_node` on every node event, `remove_node`
//!    on delete. Readiness and cordoning are read from the node each time.
//! 2. Bound pods (`spec.nodeName` set): `add_pod` / `update_pod` on add and
//!    update (terminal pods release their resources), `remove_pod` on delete.
//! 3. Unbound pods with [`needs_scheduling`] true go to a queue. For each:
//!    `let info = PodInfo::from_pod(&pod)`, then `schedule_one(&info, &cache)`.
//!    - `Ok(node)`: `cache.assume_pod(&info, &node)`, then POST the Binding.
//!      On success the watch soon delivers the bound pod and `add_pod`
//!      confirms the assumption; on failure call `cache.forget_pod(&info)`
//!      and requeue.
//!    - `Err(fit)`: write [`unschedulable_condition`] with
//!      [`update_pod_condition`] (skip the write when it returns false), emit
//!      a `FailedScheduling` event with `fit.to_string()`, and park the pod
//!      until a node is added or updated or a pod is removed; `fit.rejected_by`
//!      names the plugins whose concerns such an event must touch.
//!
//! [`schedule_batch`] does step 3 for many pods at once, assuming each
//! placement before the next, for when a controller creates many pods.

mod cache;
mod framework;
mod lifecycle;
pub mod node_selector;
pub mod plugins;
mod schedule;

#[cfg(test)]
mod tests;

pub use cache::{Cache, CacheError};
pub use framework::{
    Allocatable, Code, CycleState, DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, FilterPlugin,
    MAX_NODE_SCORE, NodeInfo, NodeTaint, OwnerId, PodInfo, PreFilterPlugin, PreFilterResult,
    Reason, Resources, ScorePlugin, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
    TaintEffect, Unfit, Usage, default_normalize, effective_taints, non_zero_requests,
};
pub use lifecycle::{
    DEFAULT_SCHEDULER_NAME, POD_SCHEDULED, needs_scheduling, scheduled_condition,
    unschedulable_condition, update_pod_condition,
};
pub use schedule::{FitError, NO_NODES_AVAILABLE, Profile, schedule_batch, schedule_one};
