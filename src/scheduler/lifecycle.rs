//! Pure helpers for the binding loop: which pods to schedule, and the
//! PodScheduled condition to write when one cannot be placed.

use crate::api::Time;
use crate::api::core::{Pod, PodCondition, PodStatus};

use super::schedule::FitError;

/// The scheduler name this scheduler answers to.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// The condition type the scheduler owns.
pub const POD_SCHEDULED: &str = "PodScheduled";

/// Whether the scheduler should place `pod`: not bound yet, not finished,
/// not being deleted, and meant for the default scheduler (or for no
/// scheduler in particular).
pub fn needs_scheduling(pod: &Pod) -> bool {
    pod.spec.node_name.is_empty()
        && !pod.is_terminal()
        && pod.metadata.deletion_timestamp.is_none()
        && (pod.spec.scheduler_name.is_empty() || pod.spec.scheduler_name == DEFAULT_SCHEDULER_NAME)
}

/// `PodScheduled=False` with the FitError's reason and message, as
/// Kubernetes writes it after a failed cycle.
pub fn unschedulable_condition(err: &FitError, now: Time) -> PodCondition {
    PodCondition {
        type_: POD_SCHEDULED.into(),
        status: "False".into(),
        last_probe_time: None,
        last_transition_time: Some(now),
        reason: err.condition_reason().into(),
        message: err.to_string(),
    }
}

/// `PodScheduled=True`, as the API server sets it on binding.
pub fn scheduled_condition(now: Time) -> PodCondition {
    PodCondition {
        type_: POD_SCHEDULED.into(),
        status: "True".into(),
        last_probe_time: None,
        last_transition_time: Some(now),
        reason: String::new(),
        message: String::new(),
    }
}

/// Sets `cond` in `status` the way Kubernetes' `UpdatePodCondition` does:
/// the transition time only moves when the status changes. Returns whether
/// anything changed, so the caller can skip a write that changes nothing.
pub fn update_pod_condition(status: &mut PodStatus, mut cond: PodCondition) -> bool {
    match status.conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        None => {
            status.conditions.push(cond);
            true
        }
        Some(old) => {
            if old.status == cond.status {
                cond.last_transition_time = old.last_transition_time;
            }
            let changed = *old != cond;
            *old = cond;
            changed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::pod;

    #[test]
    fn which_pods_need_scheduling() {
        let base = pod("p").obj();
        let mut bound = base.clone();
        bound.spec.node_name = "n1".into();
        let mut done = base.clone();
        done.status.phase = "Succeeded".into();
        let mut failed = base.clone();
        failed.status.phase = "Failed".into();
        let mut deleting = base.clone();
        deleting.metadata.deletion_timestamp = Time::from_unix(1);
        let mut other = base.clone();
        other.spec.scheduler_name = "my-scheduler".into();
        let mut explicit = base.clone();
        explicit.spec.scheduler_name = DEFAULT_SCHEDULER_NAME.into();
        let mut running = base.clone();
        running.status.phase = "Pending".into();
        let cases = [
            (&base, true),
            (&explicit, true),
            (&running, true),
            (&bound, false),
            (&done, false),
            (&failed, false),
            (&deleting, false),
            (&other, false),
        ];
        for (p, want) in cases {
            assert_eq!(
                needs_scheduling(p),
                want,
                "{:?} {:?}",
                p.spec,
                p.status.phase
            );
        }
    }

    fn fit_error(nodes: usize) -> FitError {
        FitError {
            pod: "default/p".into(),
            num_all_nodes: nodes,
            pre_filter_msg: None,
            reasons: vec![("Insufficient cpu".into(), nodes)],
            resolvable_nodes: nodes,
            rejected_by: vec!["NodeResourcesFit"],
        }
    }

    #[test]
    fn unschedulable_condition_carries_the_message() {
        let t0 = Time::from_unix(100).unwrap();
        let c = unschedulable_condition(&fit_error(2), t0);
        assert_eq!(c.type_, "PodScheduled");
        assert_eq!(c.status, "False");
        assert_eq!(c.reason, "Unschedulable");
        assert_eq!(
            c.message,
            "0/2 nodes are available: 2 Insufficient cpu. no new claims to deallocate, \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        let none = unschedulable_condition(&fit_error(0), t0);
        assert_eq!(none.reason, "SchedulerError");
        assert_eq!(none.message, "no nodes available to schedule pods");
    }

    #[test]
    fn condition_updates_keep_transition_time() {
        let (t0, t1) = (Time::from_unix(100).unwrap(), Time::from_unix(200).unwrap());
        let mut status = PodStatus::default();
        assert!(update_pod_condition(
            &mut status,
            unschedulable_condition(&fit_error(2), t0)
        ));
        // Same verdict later: nothing to write.
        assert!(!update_pod_condition(
            &mut status,
            unschedulable_condition(&fit_error(2), t1)
        ));
        assert_eq!(status.conditions[0].last_transition_time, Some(t0));
        // New message, same status: written, transition time kept.
        assert!(update_pod_condition(
            &mut status,
            unschedulable_condition(&fit_error(3), t1)
        ));
        assert_eq!(status.conditions[0].last_transition_time, Some(t0));
        // Status flips: transition time moves.
        assert!(update_pod_condition(&mut status, scheduled_condition(t1)));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.conditions[0].last_transition_time, Some(t1));
    }
}
