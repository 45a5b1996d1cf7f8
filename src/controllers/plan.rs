//! What a planner returns: a [`Plan`] of [`Action`]s, each one API call.
//!
//! # How an executor carries out a plan
//!
//! 1. If [`Plan::expectations`] is set, store it for [`Plan::subject`]
//!    *before* the first call, replacing what was stored (the planner
//!    already folded the old expectations into it). Pass the stored value
//!    back to the next planning of the same subject.
//! 2. Record every [`Plan::events`] entry (observations, independent of the
//!    calls' outcome).
//! 3. Carry out [`Plan::actions`] in order, one after the other. Stop at the
//!    first call that fails (except where an action says an error counts as
//!    success), record [`crate::controllers::events::failure_event`] for it,
//!    and requeue the subject with a rate-limited backoff: the next plan
//!    starts from whatever state the calls left behind.
//! 4. After each successful call, record the action's `event` if it has one
//!    ([`Action::success_events`] gives them, one per created pod for
//!    [`Action::CreatePods`]).
//! 5. Within one plan, when an action writes an object that an earlier
//!    action of the same plan wrote (same uid), send the `resourceVersion`
//!    returned by that earlier write instead of the one in the action
//!    ("resourceVersion chaining"). Every other `resourceVersion` in an
//!    action is a precondition: a 409 Conflict means the snapshot was stale,
//!    so stop and requeue.
//! 6. When everything succeeded, requeue after [`Plan::requeue_after`] if
//!    set (time-based work such as minReadySeconds, deadlines, schedules).
//!
//! On failures the executor also tells the stored expectations what did not
//! happen: [`Expectations::creation_failed`] for each pod of a
//! [`Action::CreatePods`] that was not created (failed, or skipped because an
//! earlier batch failed) and [`Expectations::deletion_failed`] for a pod
//! delete that failed with anything but 404.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::api::apps::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use crate::api::batch::{CronJob, Job};
use crate::api::core::{Namespace, Pod, ReplicationController};
use crate::api::{ObjectMeta, OwnerReference, Resource};

use super::events::EventSpec;
use super::expectations::Expectations;
use super::pods::slow_start_batches;

/// The identity of one object, as API calls and events need it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `v1`, `apps/v1`, `batch/v1`.
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ObjectRef {
    /// The reference of a typed object.
    pub fn of<T: Resource>(obj: &T) -> Self {
        let m = obj.meta();
        ObjectRef {
            api_version: T::api_version(),
            kind: T::KIND.to_string(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
        }
    }

    /// The owner an ownerReference points at, in the dependent's namespace
    /// (owners of namespaced objects live in the same namespace).
    pub fn from_owner(r: &OwnerReference, namespace: &str) -> Self {
        ObjectRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: namespace.to_string(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }

    /// `metav1.NewControllerRef`: an ownerReference to this object with
    /// `controller` and `blockOwnerDeletion` set, as controllers put on what
    /// they create or adopt.
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// A whole object a controller creates or writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    ReplicaSet(Box<ReplicaSet>),
    ReplicationController(Box<ReplicationController>),
    Deployment(Box<Deployment>),
    DaemonSet(Box<DaemonSet>),
    ControllerRevision(Box<ControllerRevision>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    Namespace(Box<Namespace>),
}

macro_rules! object_variants {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Object {
            fn from(o: $variant) -> Self {
                Object::$variant(Box::new(o))
            }
        })*

        impl Object {
            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta(),)*
                }
            }

            /// `kind` as written in objects.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Object::$variant(_) => <$variant as Resource>::KIND,)*
                }
            }

            /// `apiVersion` as written in objects.
            pub fn api_version(&self) -> String {
                match self {
                    $(Object::$variant(_) => <$variant as Resource>::api_version(),)*
                }
            }

            /// The resource's plural for URL paths.
            pub fn plural(&self) -> &'static str {
                match self {
                    $(Object::$variant(_) => <$variant as Resource>::PLURAL,)*
                }
            }

            /// The object as the JSON body of a request, with `apiVersion`
            /// and `kind` filled in.
            pub fn to_json(&self) -> Result<Value, serde_json::Error> {
                let mut v = match self {
                    $(Object::$variant(o) => serde_json::to_value(o.as_ref())?,)*
                };
                if let Value::Object(m) = &mut v {
                    m.insert("apiVersion".into(), Value::String(self.api_version()));
                    m.insert("kind".into(), Value::String(self.kind().into()));
                }
                Ok(v)
            }
        }
    };
}

object_variants!(
    Pod,
    ReplicaSet,
    ReplicationController,
    Deployment,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    Namespace
);

impl Object {
    /// The object's identity.
    pub fn object_ref(&self) -> ObjectRef {
        let m = self.meta();
        ObjectRef {
            api_version: self.api_version(),
            kind: self.kind().to_string(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
        }
    }
}

/// Preconditions of a DELETE (`DeleteOptions.preconditions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The uid the planner saw: a newer object of the same name is never
    /// deleted by mistake.
    pub uid: String,
    /// Set where the decision depends on the object's exact content (the
    /// garbage collector); empty otherwise.
    pub resource_version: String,
}

/// `DeleteOptions.propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// The value sent in `propagationPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// A change to an object's metadata, sent as a JSON merge patch.
///
/// The patch carries `metadata.uid` and `metadata.resourceVersion` from the
/// snapshot: the API server refuses it (409) when the object changed in the
/// meantime or was replaced, so lists that the patch replaces wholesale
/// (ownerReferences, finalizers) never lose a concurrent change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataPatch {
    pub uid: String,
    pub resource_version: String,
    /// The complete new list, when it changes.
    pub owner_references: Option<Vec<OwnerReference>>,
    /// The complete new list, when it changes.
    pub finalizers: Option<Vec<String>>,
    /// Annotations to set (`Some`) or remove (`None`).
    pub annotations: BTreeMap<String, Option<String>>,
    /// Labels to set (`Some`) or remove (`None`).
    pub labels: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    /// An empty patch guarded by `meta`'s uid and resourceVersion.
    pub fn guarded(meta: &ObjectMeta) -> Self {
        MetadataPatch {
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        }
    }

    /// The body of `PATCH` with `Content-Type: application/merge-patch+json`.
    pub fn to_merge_patch(&self) -> Value {
        let mut meta = Map::new();
        if !self.uid.is_empty() {
            meta.insert("uid".into(), Value::String(self.uid.clone()));
        }
        if !self.resource_version.is_empty() {
            meta.insert(
                "resourceVersion".into(),
                Value::String(self.resource_version.clone()),
            );
        }
        if let Some(refs) = &self.owner_references {
            let list = refs
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            meta.insert("ownerReferences".into(), Value::Array(list));
        }
        if let Some(f) = &self.finalizers {
            let list = f.iter().cloned().map(Value::String).collect();
            meta.insert("finalizers".into(), Value::Array(list));
        }
        for (field, map) in [("annotations", &self.annotations), ("labels", &self.labels)] {
            if map.is_empty() {
                continue;
            }
            let m: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect();
            meta.insert(field.into(), Value::Object(m));
        }
        let mut root = Map::new();
        root.insert("metadata".into(), Value::Object(meta));
        Value::Object(root)
    }

    /// Applies the patch to `meta` as the API server would (used by tests
    /// and simulations).
    pub fn apply_to(&self, meta: &mut ObjectMeta) {
        if let Some(refs) = &self.owner_references {
            meta.owner_references = refs.clone();
        }
        if let Some(f) = &self.finalizers {
            meta.finalizers = f.clone();
        }
        for (map, target) in [
            (&self.annotations, &mut meta.annotations),
            (&self.labels, &mut meta.labels),
        ] {
            for (k, v) in map {
                match v {
                    Some(v) => {
                        target.insert(k.clone(), v.clone());
                    }
                    None => {
                        target.remove(k);
                    }
                }
            }
        }
    }
}

/// Pods to create in Kubernetes' slow-start batches.
///
/// The executor creates the pods of one batch concurrently and moves to the
/// next batch only when every pod of the batch was created: a template that
/// cannot work (quota, bad module) then costs one failed call, not hundreds.
/// A 409 AlreadyExists counts as a failure (the name was taken after the
/// snapshot); the next plan picks a new name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodBatch {
    /// In creation order; names are preset (`metadata.generateName` is also
    /// set, for clients that look at it).
    pub pods: Vec<Pod>,
}

impl PodBatch {
    /// The batches, 1, 2, 4, ... pods long.
    pub fn batches(&self) -> Vec<&[Pod]> {
        let mut out = Vec::new();
        let mut start = 0;
        for size in slow_start_batches(self.pods.len()) {
            out.push(&self.pods[start..start + size]);
            start += size;
        }
        out
    }
}

/// One API call.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `POST /{prefix}/namespaces/{ns}/{plural}` with the object as body.
    /// The name is preset; a 409 AlreadyExists is handled as the planner of
    /// the object's kind documents (ReplicaSets of a Deployment, Jobs of a
    /// CronJob and ControllerRevisions of a DaemonSet have deterministic
    /// names: the next plan sees the existing object and adapts).
    Create {
        object: Object,
        /// Recorded when the call succeeds.
        event: Option<EventSpec>,
    },
    /// `POST .../pods` for each pod, in slow-start batches (see [`PodBatch`]).
    /// Each created pod records `SuccessfulCreate` (`Created pod: NAME`); the
    /// first failure records `FailedCreate` (`Error creating: ERROR`).
    CreatePods(PodBatch),
    /// `PUT /{prefix}/namespaces/{ns}/{plural}/{name}` with the object,
    /// whose `metadata.resourceVersion` is the precondition.
    Update {
        object: Object,
        event: Option<EventSpec>,
    },
    /// `PUT .../{plural}/{name}/status` with the object, whose
    /// `metadata.resourceVersion` is the precondition.
    UpdateStatus { object: Object },
    /// `PATCH` of `target` with [`MetadataPatch::to_merge_patch`]
    /// (`application/merge-patch+json`). 404 means the object is gone:
    /// treat as success.
    Patch {
        target: ObjectRef,
        patch: MetadataPatch,
        event: Option<EventSpec>,
    },
    /// `DELETE` of `target` with `preconditions` and, when set,
    /// `propagationPolicy`. 404 counts as success (already gone); a 409
    /// precondition failure means a different object now has the name.
    Delete {
        target: ObjectRef,
        preconditions: Preconditions,
        propagation: Option<Propagation>,
        /// Why, for logs (`scale down`, `failed pod`, `revision history`).
        reason: &'static str,
        event: Option<EventSpec>,
    },
    /// `PUT /api/v1/namespaces/{name}/finalize` with the namespace, whose
    /// `spec.finalizers` no longer holds `kubernetes`.
    FinalizeNamespace(Box<Namespace>),
}

impl Action {
    /// A delete of `target` guarded by its uid.
    pub fn delete(target: ObjectRef, reason: &'static str) -> Self {
        let preconditions = Preconditions {
            uid: target.uid.clone(),
            resource_version: String::new(),
        };
        Action::Delete {
            target,
            preconditions,
            propagation: None,
            reason,
            event: None,
        }
    }

    /// The same action recording `e` when it succeeds (for the variants
    /// that record events).
    pub fn with_event(mut self, e: EventSpec) -> Self {
        match &mut self {
            Action::Create { event, .. }
            | Action::Update { event, .. }
            | Action::Patch { event, .. }
            | Action::Delete { event, .. } => *event = Some(e),
            Action::CreatePods(_) | Action::UpdateStatus { .. } | Action::FinalizeNamespace(_) => {}
        }
        self
    }

    /// The events to record once this call succeeded.
    pub fn success_events(&self, subject: &ObjectRef) -> Vec<EventSpec> {
        match self {
            Action::CreatePods(batch) => batch
                .pods
                .iter()
                .map(|p| super::events::pod_created(subject, &p.metadata.name))
                .collect(),
            Action::Create { event, .. }
            | Action::Update { event, .. }
            | Action::Patch { event, .. }
            | Action::Delete { event, .. } => event.iter().cloned().collect(),
            Action::UpdateStatus { .. } | Action::FinalizeNamespace(_) => Vec::new(),
        }
    }
}

/// The result of one planning: what to call, what to record, when to look
/// again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The object being reconciled (events are about it).
    pub subject: ObjectRef,
    /// API calls, to be made in order.
    pub actions: Vec<Action>,
    /// Events to record whatever the calls' outcome.
    pub events: Vec<EventSpec>,
    /// Plan this subject again after this long even without a change.
    pub requeue_after: Option<Duration>,
    /// Expectations to store before the calls (see the module docs).
    pub expectations: Option<Expectations>,
}

impl Plan {
    /// An empty plan for `subject`.
    pub fn new(subject: ObjectRef) -> Self {
        Plan {
            subject,
            ..Default::default()
        }
    }

    /// Asks to be planned again after `after`, keeping the earliest request.
    pub fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(match self.requeue_after {
            Some(d) => d.min(after),
            None => after,
        });
    }

    /// Whether the plan makes no call.
    pub fn is_noop(&self) -> bool {
        self.actions.is_empty()
    }

    /// The pods this plan creates, over all its [`Action::CreatePods`].
    pub fn created_pods(&self) -> impl Iterator<Item = &Pod> {
        self.actions.iter().flat_map(|a| match a {
            Action::CreatePods(b) => b.pods.iter(),
            _ => [].iter(),
        })
    }

    /// The targets of this plan's deletes, in order.
    pub fn deleted(&self) -> impl Iterator<Item = &ObjectRef> {
        self.actions.iter().filter_map(|a| match a {
            Action::Delete { target, .. } => Some(target),
            _ => None,
        })
    }
}

/// Converts a whole number of seconds into a requeue delay; negative
/// values become zero.
pub(crate) fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_carries_guards_and_changes() {
        let mut p = MetadataPatch {
            uid: "u1".into(),
            resource_version: "42".into(),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-1".into(),
                uid: "rs".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            finalizers: Some(vec![]),
            ..Default::default()
        };
        p.annotations.insert("a".into(), Some("1".into()));
        p.annotations.insert("b".into(), None);
        assert_eq!(
            p.to_merge_patch(),
            json!({"metadata": {
                "uid": "u1",
                "resourceVersion": "42",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true, "blockOwnerDeletion": true}],
                "finalizers": [],
                "annotations": {"a": "1", "b": null}
            }})
        );
        let mut meta = ObjectMeta::default();
        meta.annotations.insert("b".into(), "x".into());
        meta.finalizers.push("f".into());
        p.apply_to(&mut meta);
        assert_eq!(meta.annotations.get("a").map(String::as_str), Some("1"));
        assert!(!meta.annotations.contains_key("b"));
        assert!(meta.finalizers.is_empty());
        assert_eq!(meta.owner_references.len(), 1);
    }

    #[test]
    fn objects_serialize_with_type_meta() {
        let mut pod = Pod::default();
        pod.metadata.name = "p".into();
        let o = Object::from(pod);
        let v = o.to_json().unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(o.plural(), "pods");
        let rs = Object::from(ReplicaSet::default());
        assert_eq!(rs.to_json().unwrap()["apiVersion"], "apps/v1");
    }

    #[test]
    fn pod_batches_follow_slow_start() {
        let batch = PodBatch {
            pods: vec![Pod::default(); 10],
        };
        let sizes: Vec<usize> = batch.batches().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 2, 4, 3]);
    }

    #[test]
    fn requeue_keeps_the_earliest() {
        let mut p = Plan::default();
        p.requeue(Duration::from_secs(10));
        p.requeue(Duration::from_secs(3));
        p.requeue(Duration::from_secs(7));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(3)));
        assert_eq!(secs(-5), Duration::ZERO);
    }
}
