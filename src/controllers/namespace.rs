//! Namespace deletion (Kubernetes' `namespace/deletion`).
//!
//! When a namespace has a deletionTimestamp, one planning ([`plan`]):
//! 1. marks it `Terminating`;
//! 2. while `spec.finalizers` still holds `kubernetes`, deletes every
//!    object left in it, records the five deletion conditions as
//!    Kubernetes does (`NamespaceDeletionDiscoveryFailure`,
//!    `NamespaceDeletionGroupVersionParsingFailure`,
//!    `NamespaceDeletionContentFailure`, `NamespaceContentRemaining`,
//!    `NamespaceFinalizersRemaining`, each `False` with its "ok" reason
//!    unless there is something to report), and asks to look again in
//!    `estimate / 2 + 1` seconds, the estimate being the longest pod grace
//!    period still running (or 15 s while finalizers hold objects);
//! 3. once the namespace is empty, removes `kubernetes` from
//!    `spec.finalizers` (`PUT .../finalize`);
//! 4. once no finalizer is left at all, deletes the namespace object.
//!
//! Discovery cannot fail here (the executor lists the kinds it serves), so
//! the discovery and group-version conditions are always the "ok" ones;
//! the executor reports failed deletes of a previous plan through
//! [`Observed::delete_errors`], which become `NamespaceDeletionContentFailure`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::Time;
use crate::api::core::{Namespace, NamespaceCondition};

use super::plan::{Action, ObjectRef, Plan, Propagation};
use super::pods::time;

/// The finalizer the namespace controller owns in `spec.finalizers`.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";
/// How long to wait for objects held by finalizers (`finalizerEstimateSeconds`).
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// One object still in the namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Content {
    pub object: ObjectRef,
    /// The resource's plural (`pods`), for the conditions' messages.
    pub plural: String,
    pub finalizers: Vec<String>,
    pub deletion_timestamp: Option<Time>,
    /// For pods that have not finished: their termination grace period.
    pub grace_period_seconds: Option<i64>,
}

/// What the controller sees besides the namespace.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every object in the namespace, of every kind the API serves.
    pub content: &'a [Content],
    /// Errors of the previous plan's deletes, one per failed resource type.
    pub delete_errors: &'a [String],
    pub now: DateTime<Utc>,
}

/// The condition types, in the order Kubernetes keeps them, with their
/// reason and message when all is well.
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// `updateConditions`: sets each condition type to its failure, or to the
/// ok variant; the transition time moves only when the status does.
fn update_conditions(
    conditions: &mut Vec<NamespaceCondition>,
    failures: &BTreeMap<&str, (&str, String)>,
    now: DateTime<Utc>,
) {
    for (type_, ok_reason, ok_message) in CONDITIONS {
        let (status, reason, message) = match failures.get(type_) {
            Some((reason, message)) => ("True", *reason, message.clone()),
            None => ("False", ok_reason, ok_message.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NamespaceCondition {
                type_: type_.into(),
                status: status.into(),
                last_transition_time: Some(time(now)),
                reason: reason.into(),
                message,
            }),
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Some(time(now));
                }
                c.status = status.into();
                c.reason = reason.into();
                c.message = message;
            }
        }
    }
}

/// Plans one sync of a namespace.
pub fn plan(ns: &Namespace, observed: &Observed) -> Plan {
    let subject = ObjectRef::of(ns);
    let now = observed.now;
    let mut plan = Plan::new(subject.clone());
    let Some(deleted_at) = ns.metadata.deletion_timestamp else {
        return plan;
    };
    let mut status = ns.status.clone();
    status.phase = "Terminating".into();
    let ours = ns.spec.finalizers.iter().any(|f| f == KUBERNETES_FINALIZER);
    if !ours {
        if status != ns.status {
            let mut copy = ns.clone();
            copy.status = status;
            plan.actions.push(Action::UpdateStatus {
                object: copy.into(),
            });
        }
        if ns.spec.finalizers.is_empty() && ns.metadata.finalizers.is_empty() {
            plan.actions
                .push(Action::delete(subject, "namespace finalized"));
        }
        return plan;
    }

    let content: Vec<&Content> = observed
        .content
        .iter()
        .filter(|c| c.object.namespace == ns.metadata.name)
        .collect();
    for c in content.iter().filter(|c| c.deletion_timestamp.is_none()) {
        let mut a = Action::delete(c.object.clone(), "namespace deleted");
        if let Action::Delete { propagation, .. } = &mut a {
            *propagation = Some(Propagation::Background);
        }
        plan.actions.push(a);
    }

    // What will still be there after these deletes: objects held by
    // finalizers and pods shutting down.
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_finalizer: BTreeMap<&str, usize> = BTreeMap::new();
    let mut estimate = 0i64;
    for c in &content {
        let lingers = !c.finalizers.is_empty() || c.grace_period_seconds.is_some();
        if !lingers {
            continue;
        }
        let group = c.object.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        *remaining
            .entry(format!("{}.{group}", c.plural))
            .or_default() += 1;
        for f in &c.finalizers {
            *by_finalizer.entry(f.as_str()).or_default() += 1;
        }
        if let Some(grace) = c.grace_period_seconds {
            estimate = estimate.max(grace);
        }
    }
    // Grace periods count from the namespace's deletion.
    if (now - deleted_at.0).num_seconds() >= estimate {
        estimate = 0;
    }
    if !by_finalizer.is_empty() {
        estimate = estimate.max(FINALIZER_ESTIMATE_SECONDS);
    }

    let mut failures: BTreeMap<&str, (&str, String)> = BTreeMap::new();
    if !observed.delete_errors.is_empty() {
        let mut errs = observed.delete_errors.to_vec();
        errs.sort();
        failures.insert(
            "NamespaceDeletionContentFailure",
            (
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    errs.len(),
                    errs.join(", ")
                ),
            ),
        );
    }
    if !remaining.is_empty() {
        let list: Vec<String> = remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        failures.insert(
            "NamespaceContentRemaining",
            (
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", list.join(", ")),
            ),
        );
    }
    if !by_finalizer.is_empty() {
        let list: Vec<String> = by_finalizer
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        failures.insert(
            "NamespaceFinalizersRemaining",
            (
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list.join(", ")
                ),
            ),
        );
    }
    update_conditions(&mut status.conditions, &failures, now);
    let mut updated = ns.clone();
    if status != ns.status {
        updated.status = status;
        plan.actions.push(Action::UpdateStatus {
            object: updated.clone().into(),
        });
    }
    if content.is_empty() {
        updated
            .spec
            .finalizers
            .retain(|f| f != KUBERNETES_FINALIZER);
        plan.actions
            .push(Action::FinalizeNamespace(Box::new(updated)));
    } else {
        let secs = u64::try_from(estimate / 2 + 1).unwrap_or(1);
        plan.requeue(Duration::from_secs(secs));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::sim::{World, epoch};

    fn item(kind: &str, api_version: &str, plural: &str, name: &str) -> Content {
        Content {
            object: ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: "team".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            plural: plural.into(),
            ..Default::default()
        }
    }

    fn terminating() -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = "team".into();
        ns.metadata.uid = "ns-uid".into();
        ns.metadata.deletion_timestamp = Some(time(epoch()));
        ns.spec.finalizers = vec![KUBERNETES_FINALIZER.into()];
        ns
    }

    fn conditions(plan: &Plan) -> Vec<(String, String, String, String)> {
        plan.actions
            .iter()
            .find_map(|a| match a {
                Action::UpdateStatus {
                    object: crate::controllers::plan::Object::Namespace(n),
                } => Some(n.status.conditions.clone()),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status, c.reason, c.message))
            .collect()
    }

    #[test]
    fn deletes_content_and_reports_what_remains() {
        let ns = terminating();
        let mut pod = item("Pod", "v1", "pods", "web-1");
        pod.grace_period_seconds = Some(30);
        let cm = item("ConfigMap", "v1", "configmaps", "settings");
        let mut held = item("Deployment", "apps/v1", "deployments", "web");
        held.finalizers = vec!["example.com/hold".into()];
        let content = [pod, cm, held];
        let observed = Observed {
            content: &content,
            delete_errors: &[],
            now: epoch() + chrono::Duration::seconds(5),
        };
        let plan = plan(&ns, &observed);
        assert_eq!(plan.deleted().count(), 3);
        let c = conditions(&plan);
        assert_eq!(c.len(), 5);
        assert_eq!(
            c[0],
            (
                "NamespaceDeletionDiscoveryFailure".into(),
                "False".into(),
                "ResourcesDiscovered".into(),
                "All resources successfully discovered".into()
            )
        );
        assert_eq!(c[2].1, "False");
        assert_eq!(
            c[3],
            (
                "NamespaceContentRemaining".into(),
                "True".into(),
                "SomeResourcesRemain".into(),
                "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 1 resource instances".into()
            )
        );
        assert_eq!(
            c[4].3,
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        );
        // The pod's 30 s grace period dominates: look again in 16 s.
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(16)));
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::FinalizeNamespace(_)))
        );
    }

    #[test]
    fn finalizes_when_empty_then_goes() {
        let mut w = World::new();
        let mut ns = terminating();
        ns.metadata.deletion_timestamp = None;
        w.create(ns).unwrap();
        w.edit("Namespace", "", "team", |n: &mut Namespace| {
            n.metadata.deletion_timestamp = Some(time(epoch()));
        })
        .unwrap();
        let ns = w.namespace("team").unwrap();
        let plan = plan(
            &ns,
            &Observed {
                content: &[],
                delete_errors: &[],
                now: epoch(),
            },
        );
        let status = conditions(&plan);
        assert!(status.iter().all(|c| c.1 == "False"));
        assert!(
            matches!(plan.actions.last(), Some(Action::FinalizeNamespace(n)) if n.spec.finalizers.is_empty())
        );
        w.apply(&plan).unwrap();
        let ns = w.namespace("team").unwrap();
        assert_eq!(ns.status.phase, "Terminating");
        assert!(ns.spec.finalizers.is_empty());
        // Finalized: the namespace object itself goes.
        let plan = super::plan(
            &ns,
            &Observed {
                content: &[],
                delete_errors: &[],
                now: epoch(),
            },
        );
        assert_eq!(
            plan.deleted().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["team"]
        );
        w.apply(&plan).unwrap();
        assert!(w.namespace("team").is_none());
    }

    #[test]
    fn delete_failures_are_reported_and_live_namespaces_ignored() {
        let ns = terminating();
        let errors = [
            "pods is forbidden".to_string(),
            "configmaps: timeout".to_string(),
        ];
        let content = [item("Pod", "v1", "pods", "p")];
        let plan = plan(
            &ns,
            &Observed {
                content: &content,
                delete_errors: &errors,
                now: epoch(),
            },
        );
        let c = conditions(&plan);
        assert_eq!(
            (c[2].1.as_str(), c[2].2.as_str(), c[2].3.as_str()),
            (
                "True",
                "ContentDeletionFailed",
                "Failed to delete all resource types, 2 remaining: configmaps: timeout, pods is forbidden"
            )
        );
        // Objects already being deleted are not deleted again.
        let mut going = item("Pod", "v1", "pods", "q");
        going.deletion_timestamp = Some(time(epoch()));
        let plan = super::plan(
            &ns,
            &Observed {
                content: &[going],
                delete_errors: &[],
                now: epoch(),
            },
        );
        assert_eq!(plan.deleted().count(), 0);
        let mut live = terminating();
        live.metadata.deletion_timestamp = None;
        assert!(
            super::plan(
                &live,
                &Observed {
                    content: &content,
                    delete_errors: &[],
                    now: epoch()
                }
            )
            .actions
            .is_empty()
        );
    }
}
