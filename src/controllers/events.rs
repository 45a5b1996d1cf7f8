//! core/v1 Events the controllers record, with Kubernetes' reasons and
//! messages, and a recorder that deduplicates them as client-go's event
//! correlator does: the same (object, type, reason, message) from the same
//! source updates one Event's `count` and `lastTimestamp` instead of
//! creating a new one.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::core::{Event, EventSource, ObjectReference};

use super::plan::{Action, Object, ObjectRef};
use super::pods::time;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The `type` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event to record about `involved`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub involved: ObjectRef,
    pub type_: EventType,
    /// CamelCase reason (`SuccessfulCreate`, `ScalingReplicaSet`, ...).
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    /// A `Normal` event.
    pub fn normal(involved: &ObjectRef, reason: &str, message: impl Into<String>) -> Self {
        EventSpec {
            involved: involved.clone(),
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(involved: &ObjectRef, reason: &str, message: impl Into<String>) -> Self {
        EventSpec {
            involved: involved.clone(),
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The reporting component, named after the controller of the involved
    /// object's kind as in Kubernetes.
    pub fn component(&self) -> &'static str {
        component_for(&self.involved.kind)
    }
}

/// The `source.component` Kubernetes uses for events about `kind`.
pub fn component_for(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" => "replicaset-controller",
        "ReplicationController" => "replication-controller",
        "Deployment" => "deployment-controller",
        "DaemonSet" => "daemonset-controller",
        "Job" => "job-controller",
        "CronJob" => "cronjob-controller",
        "Namespace" => "namespace-controller",
        // On the master only the scheduler reports about pods.
        "Pod" => "default-scheduler",
        "Node" => "node-controller",
        _ => "garbage-collector-controller",
    }
}

/// `SuccessfulCreate`: `Created pod: NAME`.
pub fn pod_created(subject: &ObjectRef, pod: &str) -> EventSpec {
    EventSpec::normal(subject, "SuccessfulCreate", format!("Created pod: {pod}"))
}

/// `SuccessfulDelete`: `Deleted pod: NAME`.
pub fn pod_deleted(subject: &ObjectRef, pod: &str) -> EventSpec {
    EventSpec::normal(subject, "SuccessfulDelete", format!("Deleted pod: {pod}"))
}

/// `ScalingReplicaSet`: `Scaled up replica set web-7d9f from 0 to 3`.
pub fn scaling_replica_set(deployment: &ObjectRef, rs: &str, from: i32, to: i32) -> EventSpec {
    let verb = if from < to { "up" } else { "down" };
    EventSpec::normal(
        deployment,
        "ScalingReplicaSet",
        format!("Scaled {verb} replica set {rs} from {from} to {to}"),
    )
}

/// The event for a failed call of `action` made for `subject`.
pub fn failure_event(subject: &ObjectRef, action: &Action, error: &str) -> Option<EventSpec> {
    match action {
        Action::CreatePods(_) => Some(EventSpec::warning(
            subject,
            "FailedCreate",
            format!("Error creating: {error}"),
        )),
        Action::Create {
            object: Object::Job(_),
            ..
        } => Some(EventSpec::warning(
            subject,
            "FailedCreate",
            format!("Error creating job: {error}"),
        )),
        Action::Create {
            object: Object::ReplicaSet(rs),
            ..
        } => Some(EventSpec::warning(
            subject,
            "ReplicaSetCreateError",
            format!(
                "Failed to create new replica set {:?}: {error}",
                rs.metadata.name
            ),
        )),
        Action::Delete { target, .. } if target.kind == "Pod" => Some(EventSpec::warning(
            subject,
            "FailedDelete",
            format!("Error deleting: {error}"),
        )),
        // Kubernetes' CronJob controller words it this way.
        Action::Delete { target, .. } if target.kind == "Job" && subject.kind == "CronJob" => Some(
            EventSpec::warning(subject, "FailedDelete", format!("Deleted job: {error}")),
        ),
        _ => None,
    }
}

/// How many distinct events the recorder remembers (client-go's LRU size).
pub const EVENT_CACHE_SIZE: usize = 4096;

/// One write the executor makes for a recorded event.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// `POST /api/v1/namespaces/{ns}/events`.
    Create(Box<Event>),
    /// `PATCH /api/v1/namespaces/{namespace}/events/{name}` with a JSON
    /// merge patch raising `count` and `lastTimestamp`. On 404 (the event
    /// expired), create `fallback` instead.
    Patch {
        namespace: String,
        name: String,
        patch: Value,
        fallback: Box<Event>,
    },
}

/// What the recorder remembers of an event it wrote.
#[derive(Clone, Debug)]
struct Seen {
    event: Event,
    /// Position in the least-recently-used order.
    tick: u64,
}

/// Turns [`EventSpec`]s into event writes, deduplicating repeats.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    /// `source.host` / `reportingInstance`: the master's name.
    host: String,
    seen: HashMap<String, Seen>,
    /// tick -> key, oldest first, to evict beyond [`EVENT_CACHE_SIZE`].
    lru: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
}

impl EventRecorder {
    /// A recorder reporting from `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self::with_capacity(host, EVENT_CACHE_SIZE)
    }

    /// A recorder remembering at most `capacity` distinct events.
    pub fn with_capacity(host: impl Into<String>, capacity: usize) -> Self {
        EventRecorder {
            host: host.into(),
            seen: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    fn key(&self, spec: &EventSpec) -> String {
        let i = &spec.involved;
        [
            spec.component(),
            self.host.as_str(),
            i.kind.as_str(),
            i.namespace.as_str(),
            i.name.as_str(),
            i.uid.as_str(),
            i.api_version.as_str(),
            spec.type_.as_str(),
            spec.reason.as_str(),
            spec.message.as_str(),
        ]
        .join("\u{0}")
    }

    /// The write recording `spec` at `now`.
    pub fn record(&mut self, spec: &EventSpec, now: DateTime<Utc>) -> EventWrite {
        let key = self.key(spec);
        self.tick += 1;
        let stamp = time(now);
        if let Some(seen) = self.seen.get_mut(&key) {
            self.lru.remove(&seen.tick);
            seen.tick = self.tick;
            self.lru.insert(self.tick, key);
            seen.event.count = seen.event.count.saturating_add(1);
            seen.event.last_timestamp = Some(stamp);
            let patch = json!({
                "count": seen.event.count,
                "lastTimestamp": stamp,
                "message": seen.event.message,
            });
            return EventWrite::Patch {
                namespace: seen.event.metadata.namespace.clone(),
                name: seen.event.metadata.name.clone(),
                patch,
                fallback: Box::new(seen.event.clone()),
            };
        }
        let i = &spec.involved;
        // Events about cluster-scoped objects live in `default`.
        let namespace = if i.namespace.is_empty() {
            "default".to_string()
        } else {
            i.namespace.clone()
        };
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let mut event = Event::default();
        event.metadata.name = format!("{}.{:x}", i.name, nanos);
        event.metadata.namespace = namespace;
        event.involved_object = ObjectReference {
            kind: i.kind.clone(),
            namespace: i.namespace.clone(),
            name: i.name.clone(),
            uid: i.uid.clone(),
            api_version: i.api_version.clone(),
            ..Default::default()
        };
        event.reason = spec.reason.clone();
        event.message = spec.message.clone();
        event.source = EventSource {
            component: spec.component().into(),
            host: self.host.clone(),
        };
        event.first_timestamp = Some(stamp);
        event.last_timestamp = Some(stamp);
        event.count = 1;
        event.type_ = spec.type_.as_str().into();
        event.reporting_component = spec.component().into();
        event.reporting_instance = self.host.clone();
        self.seen.insert(
            key.clone(),
            Seen {
                event: event.clone(),
                tick: self.tick,
            },
        );
        self.lru.insert(self.tick, key);
        while self.seen.len() > self.capacity {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
        }
        EventWrite::Create(Box::new(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            namespace: "default".into(),
            name: "web-7d9f".into(),
            uid: "u".into(),
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn messages_follow_kubernetes() {
        let d = ObjectRef {
            kind: "Deployment".into(),
            name: "web".into(),
            ..rs()
        };
        let cases = [
            (
                pod_created(&rs(), "web-7d9f-abcde"),
                "SuccessfulCreate",
                "Created pod: web-7d9f-abcde",
            ),
            (
                pod_deleted(&rs(), "p"),
                "SuccessfulDelete",
                "Deleted pod: p",
            ),
            (
                scaling_replica_set(&d, "web-7d9f", 0, 3),
                "ScalingReplicaSet",
                "Scaled up replica set web-7d9f from 0 to 3",
            ),
            (
                scaling_replica_set(&d, "web-6c5b", 3, 1),
                "ScalingReplicaSet",
                "Scaled down replica set web-6c5b from 3 to 1",
            ),
        ];
        for (spec, reason, message) in cases {
            assert_eq!(spec.reason, reason);
            assert_eq!(spec.message, message);
            assert_eq!(spec.type_, EventType::Normal);
        }
        let failed = failure_event(
            &rs(),
            &Action::CreatePods(Default::default()),
            "quota exceeded",
        );
        assert_eq!(
            failed.map(|e| (e.reason, e.message, e.type_)),
            Some((
                "FailedCreate".into(),
                "Error creating: quota exceeded".into(),
                EventType::Warning
            ))
        );
        assert_eq!(component_for("DaemonSet"), "daemonset-controller");
    }

    #[test]
    fn repeats_raise_the_count_of_one_event() {
        let mut r = EventRecorder::new("master-0");
        let spec = pod_created(&rs(), "p1");
        let EventWrite::Create(first) = r.record(&spec, at(0)) else {
            panic!("first record creates");
        };
        assert_eq!(first.count, 1);
        assert_eq!(first.source.component, "replicaset-controller");
        assert_eq!(first.involved_object.name, "web-7d9f");
        assert!(first.metadata.name.starts_with("web-7d9f."));
        match r.record(&spec, at(5)) {
            EventWrite::Patch {
                name,
                patch,
                fallback,
                ..
            } => {
                assert_eq!(name, first.metadata.name);
                assert_eq!(patch["count"], 2);
                assert_eq!(patch["lastTimestamp"], "2023-11-14T22:13:25Z");
                assert_eq!(fallback.count, 2);
            }
            other => panic!("expected a patch, got {other:?}"),
        }
        // A different message is a different event.
        assert!(matches!(
            r.record(&pod_created(&rs(), "p2"), at(6)),
            EventWrite::Create(_)
        ));
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut r = EventRecorder::with_capacity("m", 2);
        let a = pod_created(&rs(), "a");
        r.record(&a, at(0));
        r.record(&pod_created(&rs(), "b"), at(1));
        r.record(&pod_created(&rs(), "c"), at(2));
        // `a` was evicted, so it is created again.
        assert!(matches!(r.record(&a, at(3)), EventWrite::Create(_)));
        let ns = ObjectRef {
            kind: "Namespace".into(),
            namespace: String::new(),
            ..rs()
        };
        let EventWrite::Create(e) = r.record(&EventSpec::normal(&ns, "X", "y"), at(4)) else {
            panic!("create");
        };
        assert_eq!(e.metadata.namespace, "default");
    }
}
