//! Workload controllers: pure planning functions, one module per controller.
//!
//! Every controller is level-triggered and idempotent. Its core is a pure
//! function `(desired object, observed objects, now) -> Plan` that performs
//! no IO: the executor (informers, work queue, API calls) lives elsewhere
//! and only carries out the [`Plan`]'s [`Action`]s in order. Planning again
//! from a fresh snapshot after any partial execution converges to the same
//! state, which is what makes the controllers safe to restart at any point.
//!
//! Layout:
//! - [`plan`]: the [`Plan`] and [`Action`] types, with the exact API call each
//!   action stands for and the executor's rules (order, failures, chaining of
//!   resourceVersions).
//! - [`expectations`]: in-flight creations and deletions, so that a lagging
//!   snapshot does not make a controller create or delete twice.
//! - [`pods`]: what the pod-owning controllers share: active/ready/available
//!   pods, Kubernetes' deletion ranking, slow-start batches, pod names, pods
//!   from templates, adoption and release of owned objects.
//! - [`events`]: core/v1 Events with Kubernetes' reasons and messages, and a
//!   recorder that deduplicates them with a count.
//! - [`replicaset`]: ReplicaSets and ReplicationControllers (one core).
//! - [`deployment`]: Deployments (rolling update, recreate, rollback, pause,
//!   proportional scaling, revision history, progress conditions).
//! - [`daemonset`]: DaemonSets (node eligibility, taints, rolling update with
//!   surge or unavailability, ControllerRevision history).
//! - [`job`]: Jobs (completions, indexed jobs, backoff, deadlines, pod
//!   failure policy, suspend, tracking finalizers, TTL after finished).
//! - [`cronjob`]: CronJobs (schedule decisions, concurrency policy, history).
//! - [`gc`]: the garbage collector over an ownership graph (background,
//!   foreground and orphan deletion).
//! - [`namespace`]: namespace deletion (content removal, conditions,
//!   finalization).

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod plan;
pub mod pods;
pub mod replicaset;

#[cfg(test)]
mod sim;

pub use expectations::Expectations;
pub use plan::{
    Action, MetadataPatch, Object, ObjectRef, Plan, PodBatch, Preconditions, Propagation,
};
