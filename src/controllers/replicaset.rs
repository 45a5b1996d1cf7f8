//! The ReplicaSet controller, which also runs ReplicationControllers (the
//! same controller with a map selector), as Kubernetes' `replicaset` package
//! does.
//!
//! One planning ([`plan`]):
//! 1. claims the namespace's active pods: adopts orphans matching the
//!    selector, releases owned pods that no longer match (not while the
//!    owner is being deleted);
//! 2. if the expectations are satisfied and the owner is not being deleted,
//!    creates `replicas - active` pods (at most [`BURST_REPLICAS`], in
//!    slow-start batches) or deletes `active - replicas` pods in Kubernetes'
//!    deletion order, and records what it expects to see;
//! 3. deletes owned pods that finished (Failed or Succeeded) so they get
//!    replaced (Kubernetes leaves them to the pod garbage collector, which
//!    wasmk does not have);
//! 4. writes the status (`calculateStatus`) when it changed, with a
//!    `ReplicaFailure` condition while creations or deletions fail;
//! 5. asks to be planned again when a ready pod will become available
//!    (minReadySeconds) or when unmet expectations expire.
//!
//! The executor passes the error of the previous plan's failed pod calls as
//! [`Observed::last_error`] and clears it after a plan whose calls all
//! succeeded, which is how the condition appears and goes away.

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::api::ObjectMeta;
use crate::api::apps::{ReplicaSet, ReplicaSetStatus, WorkloadCondition};
use crate::api::core::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus, pod_ready,
};
use crate::api::selector::LabelSelectorExpr;

use super::events::pod_deleted;
use super::expectations::Expectations;
use super::plan::{Action, Object, ObjectRef, Plan, PodBatch};
use super::pods::{
    BURST_REPLICAS, Claim, adopt_patch, available_in, claim, deletion_order, generate_name,
    is_active, is_available, is_terminating, name_prefix, pod_from_template, release_patch, time,
};

/// The condition type set while pod creations or deletions fail.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// A ReplicaSet or a ReplicationController.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    ReplicaSet(&'a ReplicaSet),
    ReplicationController(&'a ReplicationController),
}

impl Target<'_> {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Target::ReplicaSet(rs) => &rs.metadata,
            Target::ReplicationController(rc) => &rc.metadata,
        }
    }

    /// The owner reference target.
    pub fn subject(&self) -> ObjectRef {
        match self {
            Target::ReplicaSet(rs) => ObjectRef::of(*rs),
            Target::ReplicationController(rc) => ObjectRef::of(*rc),
        }
    }

    /// `spec.replicas`, 1 when unset.
    pub fn replicas(&self) -> i32 {
        match self {
            Target::ReplicaSet(rs) => rs.replicas(),
            Target::ReplicationController(rc) => rc.spec.replicas.unwrap_or(1),
        }
    }

    fn min_ready_seconds(&self) -> i32 {
        match self {
            Target::ReplicaSet(rs) => rs.spec.min_ready_seconds,
            Target::ReplicationController(rc) => rc.spec.min_ready_seconds,
        }
    }

    /// The selector; `None` when it is missing, invalid or empty, in which
    /// case the controller does nothing (an empty selector would claim
    /// every pod of the namespace).
    fn selector(&self) -> Option<LabelSelectorExpr> {
        let expr = match self {
            Target::ReplicaSet(rs) => {
                LabelSelectorExpr::from_label_selector(rs.spec.selector.as_ref()?).ok()?
            }
            Target::ReplicationController(rc) => LabelSelectorExpr::from_map(&rc.spec.selector),
        };
        (!expr.is_empty()).then_some(expr)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Target::ReplicaSet(rs) => Some(&rs.spec.template),
            Target::ReplicationController(rc) => rc.spec.template.as_ref(),
        }
    }

    /// The status in the ReplicaSet shape.
    pub fn status(&self) -> ReplicaSetStatus {
        match self {
            Target::ReplicaSet(rs) => rs.status.clone(),
            Target::ReplicationController(rc) => {
                let s = &rc.status;
                ReplicaSetStatus {
                    replicas: s.replicas,
                    fully_labeled_replicas: s.fully_labeled_replicas,
                    ready_replicas: s.ready_replicas,
                    available_replicas: s.available_replicas,
                    terminating_replicas: None,
                    observed_generation: s.observed_generation,
                    conditions: s
                        .conditions
                        .iter()
                        .map(|c| WorkloadCondition {
                            type_: c.type_.clone(),
                            status: c.status.clone(),
                            last_transition_time: c.last_transition_time,
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                        })
                        .collect(),
                }
            }
        }
    }

    /// The object with `status` in place, for the status update.
    fn with_status(&self, status: ReplicaSetStatus) -> Object {
        match self {
            Target::ReplicaSet(rs) => {
                let mut rs = (*rs).clone();
                rs.status = status;
                rs.into()
            }
            Target::ReplicationController(rc) => {
                let mut rc = (*rc).clone();
                rc.status = ReplicationControllerStatus {
                    replicas: status.replicas,
                    fully_labeled_replicas: status.fully_labeled_replicas,
                    ready_replicas: status.ready_replicas,
                    available_replicas: status.available_replicas,
                    observed_generation: status.observed_generation,
                    conditions: status
                        .conditions
                        .into_iter()
                        .map(|c| ReplicationControllerCondition {
                            type_: c.type_,
                            status: c.status,
                            last_transition_time: c.last_transition_time,
                            reason: c.reason,
                            message: c.message,
                        })
                        .collect(),
                };
                rc.into()
            }
        }
    }
}

/// What the controller sees besides the object itself.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every pod of the object's namespace (adoption needs the orphans),
    /// borrowed from the cache: a sync must not copy thousands of pods.
    pub pods: &'a [&'a Pod],
    /// What the previous plan expected, as stored by the executor.
    pub expectations: Option<&'a Expectations>,
    /// The error of the previous plan's pod creations or deletions, if any
    /// failed.
    pub last_error: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Plans one sync of a ReplicaSet or ReplicationController. `rng` picks the
/// pod name suffixes.
pub fn plan(target: Target, observed: &Observed, rng: &mut impl Rng) -> Plan {
    let subject = target.subject();
    let meta = target.meta();
    let now = observed.now;
    let mut plan = Plan::new(subject.clone());
    let Some(selector) = target.selector() else {
        return plan;
    };
    let deleting = meta.deletion_timestamp.is_some();
    let in_namespace: Vec<&Pod> = observed
        .pods
        .iter()
        .copied()
        .filter(|p| p.metadata.namespace == meta.namespace)
        .collect();

    // 1. Claim the active pods.
    let mut active: Vec<&Pod> = Vec::new();
    for pod in in_namespace.iter().copied().filter(|p| is_active(p)) {
        let matches = selector.matches(&pod.metadata.labels);
        match claim(&subject, deleting, matches, &pod.metadata) {
            Claim::Owned => active.push(pod),
            Claim::Adopt => {
                plan.actions.push(Action::Patch {
                    target: ObjectRef::of(pod),
                    patch: adopt_patch(&subject, &pod.metadata, None),
                    event: None,
                });
                active.push(pod);
            }
            Claim::Release => plan.actions.push(Action::Patch {
                target: ObjectRef::of(pod),
                patch: release_patch(&subject.uid, &pod.metadata),
                event: None,
            }),
            Claim::Ignore => {}
        }
    }
    let owned_by_us = |p: &&&Pod| {
        p.metadata
            .controller_ref()
            .is_some_and(|r| r.uid == subject.uid)
    };

    // 2. Create or delete, unless waiting for earlier calls to show up.
    let mut expectations = observed.expectations.cloned().unwrap_or_default();
    expectations.observe(in_namespace.iter().copied());
    let replicas = usize::try_from(target.replicas()).unwrap_or(0);
    if expectations.satisfied(now) && !deleting {
        if active.len() < replicas {
            if let Some(template) = target.template() {
                let count = (replicas - active.len()).min(BURST_REPLICAS);
                let prefix = name_prefix(&meta.name);
                let mut names: Vec<String> = Vec::with_capacity(count);
                let mut pods = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = generate_name(&prefix, rng, |n| {
                        in_namespace.iter().any(|p| p.metadata.name == n)
                            || names.iter().any(|x| x == n)
                    });
                    names.push(name.clone());
                    pods.push(pod_from_template(template, &subject, name, prefix.clone()));
                }
                expectations = Expectations::new(names, [], now);
                plan.actions.push(Action::CreatePods(PodBatch { pods }));
            }
        } else if active.len() > replicas {
            let count = (active.len() - replicas).min(BURST_REPLICAS);
            let victims: Vec<&Pod> = deletion_order(&active, &active, now)
                .into_iter()
                .take(count)
                .collect();
            expectations =
                Expectations::new([], victims.iter().map(|p| p.metadata.uid.clone()), now);
            for pod in victims {
                plan.actions.push(delete_pod(&subject, pod, "scale down"));
            }
        }
    }
    if let Some(left) = expectations.expires_in(now) {
        plan.requeue(left.to_std().unwrap_or_default());
    }
    plan.expectations = Some(expectations);

    // 3. Replace pods that finished.
    if !deleting {
        for pod in in_namespace.iter().filter(owned_by_us) {
            if pod.is_terminal() && pod.metadata.deletion_timestamp.is_none() {
                plan.actions.push(delete_pod(&subject, pod, "finished pod"));
            }
        }
    }

    // 4. Status.
    let terminating = in_namespace
        .iter()
        .filter(owned_by_us)
        .filter(|p| is_terminating(p))
        .count();
    let status = calculate_status(&target, &active, terminating, observed.last_error, now);
    let current = target.status();
    if status != current || current.observed_generation != meta.generation {
        let mut status = status;
        status.observed_generation = meta.generation;
        plan.actions.push(Action::UpdateStatus {
            object: target.with_status(status),
        });
    }

    // 5. Look again when a ready pod becomes available.
    let mrs = target.min_ready_seconds();
    if let Some(wait) = active
        .iter()
        .filter_map(|p| available_in(p, mrs, now))
        .min()
    {
        plan.requeue(wait.to_std().unwrap_or_default());
    }
    plan
}

fn delete_pod(subject: &ObjectRef, pod: &Pod, reason: &'static str) -> Action {
    Action::delete(ObjectRef::of(pod), reason).with_event(pod_deleted(subject, &pod.metadata.name))
}

/// `calculateStatus`: counts over the owned active pods, and the
/// `ReplicaFailure` condition from the last manage error. The observed
/// generation is left as it was.
pub fn calculate_status(
    target: &Target,
    active: &[&Pod],
    terminating: usize,
    manage_error: Option<&str>,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let mut status = target.status();
    let template_labels = target
        .template()
        .map(|t| LabelSelectorExpr::from_map(&t.metadata.labels))
        .unwrap_or_default();
    let mrs = target.min_ready_seconds();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let failure = status
        .conditions
        .iter()
        .position(|c| c.type_ == REPLICA_FAILURE);
    match (manage_error, failure) {
        (Some(err), None) => {
            let diff =
                i64::try_from(active.len()).unwrap_or(i64::MAX) - i64::from(target.replicas());
            let reason = match diff {
                d if d < 0 => "FailedCreate",
                d if d > 0 => "FailedDelete",
                _ => "",
            };
            status.conditions.push(WorkloadCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                last_transition_time: Some(time(now)),
                reason: reason.into(),
                message: err.into(),
            });
        }
        (None, Some(i)) => {
            status.conditions.remove(i);
        }
        _ => {}
    }
    status.replicas = count(&|_| true);
    status.fully_labeled_replicas = count(&|p| template_labels.matches(&p.metadata.labels));
    status.ready_replicas = count(&pod_ready);
    status.available_replicas = count(&|p| is_available(p, mrs, now));
    if matches!(target, Target::ReplicaSet(_)) {
        status.terminating_replicas = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OwnerReference;
    use crate::api::Time;
    use crate::controllers::pods::tests::{at, pod};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    fn rs(replicas: i32) -> ReplicaSet {
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 2, "resourceVersion": "7"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "hello:v1"}]}
                }
            }
        }))
        .unwrap();
        rs.status.observed_generation = 2;
        rs
    }

    /// A pod of `rs` (labels and controller reference).
    fn owned(name: &str, node: &str, phase: &str, ready: Option<i64>, created: i64) -> Pod {
        let mut p = pod(name, node, phase, ready, created);
        p.metadata.namespace = "default".into();
        p.metadata.labels = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]
        .into();
        p.metadata.owner_references = vec![ObjectRef::of(&rs(1)).controller_ref()];
        p
    }

    fn run(
        rs: &ReplicaSet,
        pods: &[Pod],
        exp: Option<&Expectations>,
        err: Option<&str>,
        now: i64,
    ) -> Plan {
        let pods: Vec<&Pod> = pods.iter().collect();
        let observed = Observed {
            pods: &pods,
            expectations: exp,
            last_error: err,
            now: at(now),
        };
        plan(
            Target::ReplicaSet(rs),
            &observed,
            &mut StdRng::seed_from_u64(3),
        )
    }

    fn status_of(plan: &Plan) -> Option<ReplicaSetStatus> {
        plan.actions.iter().find_map(|a| match a {
            Action::UpdateStatus {
                object: Object::ReplicaSet(rs),
            } => Some(rs.status.clone()),
            _ => None,
        })
    }

    fn deleted_names(plan: &Plan) -> Vec<&str> {
        plan.deleted().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn scale_up_creates_pods_from_the_template() {
        let plan = run(
            &rs(3),
            &[owned("web-a", "n1", "Running", Some(0), 0)],
            None,
            None,
            10,
        );
        let pods: Vec<&Pod> = plan.created_pods().collect();
        assert_eq!(pods.len(), 2);
        for p in &pods {
            assert!(p.metadata.name.starts_with("web-") && p.metadata.name.len() == 9);
            assert_eq!(p.metadata.generate_name, "web-");
            assert_eq!(p.metadata.namespace, "default");
            assert_eq!(
                p.metadata.labels.get("tier").map(String::as_str),
                Some("front")
            );
            assert_eq!(
                p.metadata.annotations.get("a").map(String::as_str),
                Some("b")
            );
            let r = &p.metadata.owner_references[0];
            assert_eq!(
                (
                    r.kind.as_str(),
                    r.uid.as_str(),
                    r.controller,
                    r.block_owner_deletion
                ),
                ("ReplicaSet", "rs-uid", Some(true), Some(true))
            );
            assert_eq!(p.spec.containers[0].image, "hello:v1");
        }
        assert_ne!(pods[0].metadata.name, pods[1].metadata.name);
        let exp = plan.expectations.as_ref().unwrap();
        assert_eq!(exp.pending_creates().count(), 2);
        // Status counts what exists now.
        let st = status_of(&plan).unwrap();
        assert_eq!(
            (
                st.replicas,
                st.ready_replicas,
                st.available_replicas,
                st.fully_labeled_replicas
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn expectations_hold_back_until_observed() {
        let rs = rs(3);
        let first = run(&rs, &[], None, None, 0);
        let exp = first.expectations.clone().unwrap();
        let names: Vec<String> = first
            .created_pods()
            .map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names.len(), 3);
        // The snapshot does not show the pods yet: no second round of creates.
        let again = run(&rs, &[], Some(&exp), None, 1);
        assert_eq!(again.created_pods().count(), 0);
        assert_eq!(
            again.requeue_after,
            Some(std::time::Duration::from_secs(299))
        );
        // Two of them show up and the third failed: still nothing to do.
        let mut e2 = exp.clone();
        e2.creation_failed(&names[2]);
        let seen: Vec<Pod> = names[..2]
            .iter()
            .map(|n| owned(n, "", "Pending", None, 1))
            .collect();
        let after = run(&rs, &seen, Some(&e2), Some("quota"), 2);
        assert_eq!(after.created_pods().count(), 1, "the failed one is retried");
        // The failure shows up as a condition.
        let st = status_of(&after).unwrap();
        let c = st
            .conditions
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("True", "FailedCreate", "quota")
        );
        // After the timeout the controller acts even with unmet expectations.
        let late = run(&rs, &[], Some(&exp), None, 301);
        assert_eq!(late.created_pods().count(), 3);
    }

    #[test]
    fn scale_down_follows_the_ranking() {
        let pods = [
            owned("ready-old", "n1", "Running", Some(0), 0),
            owned("pending", "n2", "Pending", None, 5),
            owned("unscheduled", "", "Pending", None, 5),
            owned("unready", "n3", "Running", None, 5),
            owned("ready-new", "n4", "Running", Some(90), 90),
        ];
        let cases = [
            (4, vec!["unscheduled"]),
            (2, vec!["unscheduled", "pending", "unready"]),
            (
                0,
                vec![
                    "unscheduled",
                    "pending",
                    "unready",
                    "ready-new",
                    "ready-old",
                ],
            ),
        ];
        for (replicas, want) in cases {
            let plan = run(&rs(replicas), &pods, None, None, 100);
            assert_eq!(deleted_names(&plan), want, "replicas {replicas}");
            assert_eq!(
                plan.expectations.unwrap().pending_deletes().count(),
                want.len()
            );
        }
        // Deletes carry the uid precondition and the event.
        let plan = run(&rs(4), &pods, None, None, 100);
        let Some(Action::Delete {
            preconditions,
            event,
            ..
        }) = plan.actions.first()
        else {
            panic!("first action deletes");
        };
        assert_eq!(preconditions.uid, "uid-unscheduled");
        assert_eq!(event.as_ref().unwrap().message, "Deleted pod: unscheduled");
    }

    #[test]
    fn adopts_orphans_and_releases_strays() {
        let mut orphan = owned("orphan", "n1", "Running", Some(0), 0);
        orphan.metadata.owner_references.clear();
        orphan.metadata.resource_version = "11".into();
        let mut stray = owned("stray", "n1", "Running", Some(0), 0);
        stray.metadata.labels.insert("app".into(), "other".into());
        let mut foreign = owned("foreign", "n1", "Running", Some(0), 0);
        foreign.metadata.owner_references = vec![OwnerReference {
            uid: "someone".into(),
            controller: Some(true),
            ..Default::default()
        }];
        let mut elsewhere = orphan.clone();
        elsewhere.metadata.name = "elsewhere".into();
        elsewhere.metadata.namespace = "other".into();
        let pods = [orphan, stray, foreign, elsewhere];
        let plan = run(&rs(1), &pods, None, None, 10);
        let patches: Vec<(&str, usize)> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Patch { target, patch, .. } => Some((
                    target.name.as_str(),
                    patch.owner_references.as_ref().map_or(99, |r| r.len()),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(patches, [("orphan", 1), ("stray", 0)]);
        let Some(Action::Patch { patch, .. }) = plan.actions.first() else {
            panic!()
        };
        assert_eq!(
            (patch.uid.as_str(), patch.resource_version.as_str()),
            ("uid-orphan", "11")
        );
        // The adopted pod counts: nothing to create.
        assert_eq!(plan.created_pods().count(), 0);
        assert_eq!(status_of(&plan).unwrap().replicas, 1);
        // While the ReplicaSet is being deleted it neither adopts nor manages.
        let mut dying = rs(3);
        dying.metadata.deletion_timestamp = Time::from_unix(1);
        let plan = run(&dying, &pods, None, None, 10);
        assert!(
            plan.actions
                .iter()
                .all(|a| matches!(a, Action::UpdateStatus { .. }))
        );
    }

    #[test]
    fn finished_pods_are_replaced() {
        let pods = [
            owned("ok", "n1", "Running", Some(0), 0),
            owned("failed", "n1", "Failed", None, 0),
            owned("done", "n1", "Succeeded", None, 0),
        ];
        let plan = run(&rs(2), &pods, None, None, 10);
        assert_eq!(deleted_names(&plan), ["failed", "done"]);
        assert_eq!(plan.created_pods().count(), 1);
        // Finished pods are not counted.
        assert_eq!(status_of(&plan).unwrap().replicas, 1);
    }

    #[test]
    fn burst_and_slow_start() {
        let plan = run(&rs(1000), &[], None, None, 0);
        let Some(Action::CreatePods(batch)) = plan.actions.first() else {
            panic!("creates");
        };
        assert_eq!(batch.pods.len(), 500);
        let sizes: Vec<usize> = batch.batches().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32, 64, 128, 245]);
        let names: std::collections::BTreeSet<&str> = batch
            .pods
            .iter()
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(names.len(), 500, "names are unique");
    }

    #[test]
    fn status_with_min_ready_seconds() {
        let mut rs = rs(3);
        rs.spec.min_ready_seconds = 30;
        let mut terminating = owned("going", "n1", "Running", Some(0), 0);
        terminating.metadata.deletion_timestamp = Time::from_unix(at(0).timestamp());
        let mut mislabeled = owned("partial", "n2", "Running", None, 0);
        mislabeled.metadata.labels.remove("tier");
        let pods = [
            owned("long-ready", "n1", "Running", Some(0), 0),
            owned("just-ready", "n2", "Running", Some(95), 0),
            mislabeled,
            terminating,
        ];
        let plan = run(&rs, &pods, None, None, 100);
        let st = status_of(&plan).unwrap();
        assert_eq!(
            (
                st.replicas,
                st.fully_labeled_replicas,
                st.ready_replicas,
                st.available_replicas,
                st.terminating_replicas
            ),
            (3, 2, 2, 1, Some(1))
        );
        assert_eq!(st.observed_generation, 2);
        // just-ready becomes available 31 s after 95.
        assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(26)));
        // A steady state writes nothing.
        let mut steady = rs.clone();
        steady.status = st;
        let plan = run(&steady, &pods, None, None, 100);
        assert!(status_of(&plan).is_none());
        // A new generation is always acknowledged.
        steady.metadata.generation = 3;
        assert_eq!(
            status_of(&run(&steady, &pods, None, None, 100))
                .unwrap()
                .observed_generation,
            3
        );
    }

    #[test]
    fn failure_condition_goes_away() {
        let mut rs = rs(1);
        rs.status.conditions.push(WorkloadCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: "FailedCreate".into(),
            ..Default::default()
        });
        let plan = run(
            &rs,
            &[owned("a", "n", "Running", Some(0), 0)],
            None,
            None,
            10,
        );
        assert!(status_of(&plan).unwrap().conditions.is_empty());
    }

    #[test]
    fn replication_controllers_share_the_core() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "legacy", "namespace": "default", "uid": "rc-uid", "generation": 1},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}
        }))
        .unwrap();
        let mut orphan = pod("o", "n1", "Running", Some(0), 0);
        orphan.metadata.namespace = "default".into();
        orphan.metadata.labels = [("app".to_string(), "web".to_string())].into();
        let observed = Observed {
            pods: &[&orphan],
            expectations: None,
            last_error: None,
            now: at(10),
        };
        let plan = plan(
            Target::ReplicationController(&rc),
            &observed,
            &mut StdRng::seed_from_u64(1),
        );
        let created: Vec<&Pod> = plan.created_pods().collect();
        assert_eq!(created.len(), 1);
        let r = &created[0].metadata.owner_references[0];
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str()),
            ("v1", "ReplicationController")
        );
        let status = plan.actions.iter().find_map(|a| match a {
            Action::UpdateStatus {
                object: Object::ReplicationController(rc),
            } => Some(rc.status.clone()),
            _ => None,
        });
        assert_eq!(
            status.map(|s| (s.replicas, s.observed_generation)),
            Some((1, 1))
        );
    }
}
