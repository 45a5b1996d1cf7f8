//! Job planner tests, through the simulated cluster.

use serde_json::json;

use super::*;
use crate::api::batch::{PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule};
use crate::api::core::ContainerStatus;
use crate::controllers::plan::Object;
use crate::controllers::sim::World;

fn job(spec: serde_json::Value) -> Job {
    let mut base = json!({
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "task:1"}]}}
    });
    if let (Some(b), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": base
    }))
    .unwrap()
}

fn started(spec: serde_json::Value) -> World {
    let mut w = World::new();
    w.create(job(spec)).unwrap();
    w
}

/// Pods of the Job that have not finished, by name.
fn running(w: &World) -> Vec<String> {
    let mut v: Vec<String> = w
        .pods()
        .iter()
        .filter(|p| !p.is_terminal() && p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name.clone())
        .collect();
    v.sort();
    v
}

fn status(w: &World) -> JobStatus {
    w.job("pi").unwrap().status
}

fn condition(w: &World, t: &str) -> Option<(String, String, String)> {
    status(w)
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Syncs, lets agents act, repeats `n` times.
fn rounds(w: &mut World, n: usize) {
    for _ in 0..n {
        w.sync_job("pi");
        w.terminate_pods();
        w.start_pods();
        w.advance(1);
    }
}

#[test]
fn one_pod_to_completion() {
    let mut w = started(json!({}));
    let plan = w.sync_job("pi").unwrap();
    let pods: Vec<&Pod> = plan.created_pods().collect();
    assert_eq!(pods.len(), 1);
    let p = pods[0];
    assert!(p.metadata.name.starts_with("pi-"));
    assert_eq!(p.metadata.finalizers, [TRACKING_FINALIZER]);
    assert_eq!(p.metadata.owner_references[0].kind, "Job");
    assert_eq!(
        p.metadata
            .labels
            .get("batch.kubernetes.io/job-name")
            .map(String::as_str),
        Some("pi")
    );
    let st = status(&w);
    assert_eq!((st.active, st.ready), (1, Some(0)));
    assert!(st.start_time.is_some());
    w.start_pods();
    let name = running(&w)[0].clone();
    w.sync_job("pi");
    assert_eq!(status(&w).ready, Some(1));
    // The pod succeeds: counted as uncounted first, finalizer removed after.
    w.finish_pod(&name, 0);
    let plan = w.sync_job("pi").unwrap();
    let kinds: Vec<&str> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::UpdateStatus { .. } => "status",
            Action::Patch { .. } => "patch",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["status", "patch"]);
    let Action::UpdateStatus {
        object: Object::Job(j),
    } = &plan.actions[0]
    else {
        panic!()
    };
    let uncounted = j.status.uncounted_terminated_pods.clone().unwrap();
    assert_eq!(uncounted.succeeded.len(), 1);
    assert_eq!(j.status.succeeded, 0);
    assert_eq!(
        condition(&w, SUCCESS_CRITERIA_MET).map(|c| c.1),
        Some(REASON_COMPLETIONS_REACHED.into())
    );
    assert!(condition(&w, COMPLETE).is_none());
    // Next sync: the finalizer is gone, the pod is counted, the Job is done.
    w.sync_job("pi");
    let st = status(&w);
    assert_eq!((st.succeeded, st.active, st.failed), (1, 0, 0));
    assert_eq!(
        condition(&w, COMPLETE),
        Some((
            "True".into(),
            REASON_COMPLETIONS_REACHED.into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    assert!(st.completion_time.is_some());
    assert!(st.uncounted_terminated_pods.unwrap().succeeded.is_empty());
    assert!(
        w.events
            .iter()
            .any(|e| e.reason == "Completed" && e.message == "Job completed")
    );
    assert!(w.events.iter().any(|e| e.reason == "SuccessfulCreate"));
    // Finished: nothing more to do.
    assert!(w.sync_job("pi").unwrap().actions.is_empty());
}

#[test]
fn parallelism_bounds_the_active_pods() {
    let mut w = started(json!({"completions": 5, "parallelism": 2}));
    for _ in 0..40 {
        w.sync_job("pi");
        assert!(running(&w).len() <= 2, "{:?}", running(&w));
        // Each running pod finishes on the next round.
        for name in running(&w) {
            if w.pods()
                .iter()
                .any(|p| p.metadata.name == name && p.status.phase == "Running")
            {
                w.finish_pod(&name, 0);
            }
        }
        w.start_pods();
        w.advance(1);
        if condition(&w, COMPLETE).is_some() {
            break;
        }
    }
    let st = status(&w);
    assert_eq!((st.succeeded, st.failed, st.active), (5, 0, 0));
    assert_eq!(w.pods().len(), 5, "no extra pods were started");
}

#[test]
fn work_queue_jobs_finish_after_the_first_success() {
    let mut w = started(json!({"parallelism": 3, "completions": null}));
    w.sync_job("pi");
    w.start_pods();
    let names = running(&w);
    assert_eq!(names.len(), 3);
    w.finish_pod(&names[0], 0);
    w.sync_job("pi");
    // No replacement after a success; the others keep running.
    assert_eq!(running(&w).len(), 2);
    assert!(condition(&w, COMPLETE).is_none());
    w.finish_pod(&names[1], 0);
    w.finish_pod(&names[2], 0);
    rounds(&mut w, 3);
    assert_eq!(status(&w).succeeded, 3);
    assert!(condition(&w, COMPLETE).is_some());
}

#[test]
fn failures_back_off_then_exceed_the_limit() {
    let mut w = started(json!({"backoffLimit": 2}));
    let mut waits = Vec::new();
    for _ in 0..3 {
        // Start the pod and let it fail.
        let mut tries = 0;
        while running(&w).is_empty() {
            let plan = w.sync_job("pi").unwrap();
            if let Some(r) = plan
                .requeue_after
                .filter(|_| plan.created_pods().count() == 0)
            {
                waits.push(r.as_secs());
                w.advance(i64::try_from(r.as_secs()).unwrap());
            }
            tries += 1;
            assert!(tries < 10);
        }
        w.start_pods();
        let name = running(&w)[0].clone();
        w.advance(1);
        w.finish_pod(&name, 1);
        w.sync_job("pi");
    }
    // 10 s after the first failure, 20 s after the second.
    assert_eq!(waits, [10, 20]);
    assert_eq!(
        condition(&w, FAILURE_TARGET),
        Some((
            "True".into(),
            REASON_BACKOFF_LIMIT_EXCEEDED.into(),
            "Job has reached the specified backoff limit".into()
        ))
    );
    rounds(&mut w, 2);
    let st = status(&w);
    assert_eq!(st.failed, 3);
    assert_eq!(
        condition(&w, FAILED).map(|c| c.1),
        Some(REASON_BACKOFF_LIMIT_EXCEEDED.into())
    );
    assert!(
        w.events
            .iter()
            .any(|e| e.reason == REASON_BACKOFF_LIMIT_EXCEEDED
                && e.type_ == crate::controllers::events::EventType::Warning)
    );
    assert!(w.pods().iter().all(|p| p.metadata.finalizers.is_empty()));
}

#[test]
fn backoff_delays_grow_and_cap() {
    let j = job(json!({}));
    let mut pods = Vec::new();
    let now = crate::controllers::sim::epoch();
    for i in 0..8 {
        let mut p = Pod::default();
        p.metadata.uid = format!("u{i}");
        p.status.phase = "Failed".into();
        p.status.container_statuses.push(ContainerStatus {
            state: crate::api::core::ContainerState {
                terminated: Some(crate::api::core::ContainerStateTerminated {
                    exit_code: 1,
                    finished_at: Some(time(now)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        });
        pods.push(p);
    }
    let refs: Vec<&Pod> = pods.iter().collect();
    let cases = [
        (1, 10),
        (2, 20),
        (3, 40),
        (5, 160),
        (6, 320),
        (7, 360),
        (8, 360),
    ];
    for (n, want) in cases {
        assert_eq!(
            backoff_remaining(&j, &refs[..n], now),
            Duration::seconds(want),
            "{n}"
        );
    }
    // Time passes; a later success resets it.
    assert_eq!(
        backoff_remaining(&j, &refs[..2], now + Duration::seconds(15)),
        Duration::seconds(5)
    );
    let mut ok = pods[0].clone();
    ok.status.phase = "Succeeded".into();
    if let Some(t) = ok.status.container_statuses[0].state.terminated.as_mut() {
        t.finished_at = Some(time(now + Duration::seconds(1)));
    }
    assert_eq!(
        backoff_remaining(&j, &[&pods[1], &ok], now),
        Duration::zero()
    );
}

#[test]
fn active_deadline() {
    let mut w = started(json!({"activeDeadlineSeconds": 30}));
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(30)));
    w.start_pods();
    w.advance(30);
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.deleted().count(), 1);
    assert_eq!(
        condition(&w, FAILURE_TARGET),
        Some((
            "True".into(),
            REASON_DEADLINE_EXCEEDED.into(),
            "Job was active longer than specified deadline".into()
        ))
    );
    // Failed only once the pod is gone and counted.
    assert!(condition(&w, FAILED).is_none());
    rounds(&mut w, 3);
    assert_eq!(
        condition(&w, FAILED).map(|c| c.1),
        Some(REASON_DEADLINE_EXCEEDED.into())
    );
    assert_eq!(status(&w).failed, 1);
    assert_eq!(status(&w).active, 0);
}

#[test]
fn indexed_jobs() {
    let mut w = started(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
    let plan = w.sync_job("pi").unwrap();
    let pods: Vec<&Pod> = plan.created_pods().collect();
    let indexes: Vec<Option<i64>> = pods.iter().map(|p| completion_index(p)).collect();
    assert_eq!(indexes, [Some(0), Some(1)]);
    for p in &pods {
        let i = completion_index(p).unwrap();
        assert_eq!(
            p.metadata.labels.get(COMPLETION_INDEX),
            Some(&i.to_string())
        );
        assert_eq!(p.spec.hostname, format!("pi-{i}"));
        assert!(p.metadata.name.starts_with(&format!("pi-{i}-")));
        let env = &p.spec.containers[0].env[0];
        assert_eq!(env.name, COMPLETION_INDEX_ENV);
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }
    w.start_pods();
    let one = pods[1].metadata.name.clone();
    w.finish_pod(&one, 0);
    // Index 1 is done; index 2 takes its place.
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(status(&w).completed_indexes, "1");
    let next: Vec<Option<i64>> = plan.created_pods().map(completion_index).collect();
    assert_eq!(next, [Some(2)]);
    for _ in 0..10 {
        w.start_pods();
        for name in running(&w) {
            w.finish_pod(&name, 0);
        }
        w.sync_job("pi");
    }
    let st = status(&w);
    assert_eq!((st.completed_indexes.as_str(), st.succeeded), ("0-2", 3));
    assert!(condition(&w, COMPLETE).is_some());
}

#[test]
fn index_formatting() {
    let set = |v: &[i64]| {
        let mut s = Indexes::default();
        for i in v {
            s.insert(*i);
        }
        s
    };
    let cases: [(&[i64], &str); 5] = [
        (&[], ""),
        (&[1], "1"),
        (&[3, 4], "3,4"),
        (&[0, 1, 2, 5, 7, 8, 9], "0-2,5,7-9"),
        (&[7, 1, 5, 3, 4], "1,3-5,7"),
    ];
    for (v, want) in cases {
        assert_eq!(set(v).to_string(), want);
        assert_eq!(Indexes::parse(want, 10), set(v));
        assert_eq!(set(v).total(), i64::try_from(v.len()).unwrap());
    }
    assert_eq!(Indexes::parse("1,3-9,x,5-2", 5), set(&[1, 3, 4]));
    // Huge ranges cost nothing.
    let big = Indexes::parse("0-2000000000", i64::from(i32::MAX));
    assert_eq!(big.total(), 2_000_000_001);
    assert!(big.contains(1_999_999_999) && !big.contains(2_000_000_001));
    assert_eq!(index_prefix(&"j".repeat(60), 12).len(), 58);
}

#[test]
fn pod_failure_policy() {
    let policy = |action: &str, codes: Vec<i32>| PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: None,
            operator: "In".into(),
            values: codes,
        }),
        on_pod_conditions: vec![],
    };
    let mut j = job(json!({"backoffLimit": 0}));
    j.spec.pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![policy("FailJob", vec![42]), policy("Ignore", vec![3])],
    });
    let mut w = World::new();
    w.create(j).unwrap();
    w.sync_job("pi");
    w.start_pods();
    // Exit 3 is ignored: not counted (with backoffLimit 0 the Job would
    // fail otherwise); the replacement still waits out the backoff, as in
    // Kubernetes.
    let first = running(&w)[0].clone();
    w.finish_pod(&first, 3);
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(10)));
    w.advance(10);
    rounds(&mut w, 2);
    assert_eq!(status(&w).failed, 0);
    assert!(condition(&w, FAILURE_TARGET).is_none());
    assert_eq!(running(&w).len(), 1);
    // Exit 42 fails the Job with the rule's message.
    let second = running(&w)[0].clone();
    w.finish_pod(&second, 42);
    w.sync_job("pi");
    let (status, reason, message) = condition(&w, FAILURE_TARGET).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", REASON_POD_FAILURE_POLICY)
    );
    assert_eq!(
        message,
        format!(
            "Container main for pod default/{second} failed with exit code 42 matching FailJob rule at index 0"
        )
    );
    rounds(&mut w, 2);
    assert_eq!(condition(&w, FAILED).map(|c| c.2), Some(message));
}

#[test]
fn suspend_and_resume() {
    let mut w = started(json!({"suspend": true, "activeDeadlineSeconds": 100}));
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.created_pods().count(), 0);
    assert!(status(&w).start_time.is_none());
    assert_eq!(
        condition(&w, SUSPENDED),
        Some(("True".into(), "JobSuspended".into(), "Job suspended".into()))
    );
    assert!(plan.events.iter().any(|e| e.reason == "Suspended"));
    w.advance(500);
    w.edit("Job", "default", "pi", |j: &mut Job| {
        j.spec.suspend = Some(false)
    })
    .unwrap();
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.created_pods().count(), 1);
    assert_eq!(
        condition(&w, SUSPENDED).map(|c| (c.0, c.1)),
        Some(("False".into(), "JobResumed".into()))
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "Resumed" && e.message == "Job resumed")
    );
    // The deadline counts from the resumption, not from creation.
    assert_eq!(status(&w).start_time, Some(time(w.now)));
    w.start_pods();
    // Suspending a running Job removes its pods without counting failures.
    w.edit("Job", "default", "pi", |j: &mut Job| {
        j.spec.suspend = Some(true)
    })
    .unwrap();
    let plan = w.sync_job("pi").unwrap();
    let at = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::Delete { .. }))
        .unwrap();
    assert!(
        matches!(&plan.actions[at - 1], Action::Patch { patch, .. } if patch.finalizers == Some(vec![]))
    );
    rounds(&mut w, 3);
    assert_eq!(status(&w).failed, 0);
    assert!(running(&w).is_empty());
    assert_eq!(condition(&w, SUSPENDED).map(|c| c.0), Some("True".into()));
}

#[test]
fn ttl_after_finished() {
    let mut w = started(json!({"ttlSecondsAfterFinished": 60}));
    w.sync_job("pi");
    w.start_pods();
    let name = running(&w)[0].clone();
    w.finish_pod(&name, 0);
    w.sync_job("pi");
    let plan = w.sync_job("pi").unwrap();
    assert!(condition(&w, COMPLETE).is_some());
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(60)));
    w.advance(20);
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(40)));
    assert!(plan.actions.is_empty());
    w.advance(40);
    let plan = w.sync_job("pi").unwrap();
    let Some(Action::Delete {
        target,
        propagation,
        preconditions,
        ..
    }) = plan.actions.first()
    else {
        panic!("expected the Job's deletion: {:?}", plan.actions);
    };
    assert_eq!(
        (target.kind.as_str(), *propagation),
        ("Job", Some(Propagation::Foreground))
    );
    assert!(!preconditions.resource_version.is_empty());
}

#[test]
fn on_failure_restarts_count_against_the_limit() {
    let mut w = started(
        json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "main", "image": "task:1"}]}}}),
    );
    w.sync_job("pi");
    w.start_pods();
    w.sync_job("pi");
    assert!(condition(&w, FAILURE_TARGET).is_none());
    for o in &mut w.objects {
        if let Object::Pod(p) = o {
            p.status.container_statuses = vec![ContainerStatus {
                name: "main".into(),
                restart_count: 2,
                ..Default::default()
            }];
        }
    }
    w.sync_job("pi");
    assert_eq!(
        condition(&w, FAILURE_TARGET).map(|c| c.1),
        Some(REASON_BACKOFF_LIMIT_EXCEEDED.into())
    );
}

#[test]
fn orphans_are_adopted_with_the_tracking_finalizer() {
    let mut w = started(json!({"parallelism": 1}));
    let stored = w.job("pi").unwrap();
    let mut orphan = Pod::default();
    orphan.metadata.name = "stray".into();
    orphan.metadata.namespace = "default".into();
    orphan.metadata.labels = stored.spec.template.metadata.labels.clone();
    orphan.spec = stored.spec.template.spec.clone();
    w.create(orphan).unwrap();
    let plan = w.sync_job("pi").unwrap();
    let Some(Action::Patch { patch, .. }) = plan.actions.first() else {
        panic!("{:?}", plan.actions);
    };
    assert_eq!(patch.finalizers, Some(vec![TRACKING_FINALIZER.to_string()]));
    assert_eq!(
        patch.owner_references.as_ref().unwrap()[0].uid,
        stored.metadata.uid
    );
    // The adopted pod is the one active pod: nothing is created.
    assert_eq!(plan.created_pods().count(), 0);
    assert_eq!(status(&w).active, 1);
}

#[test]
fn extreme_values_do_not_panic() {
    let mut w = started(
        json!({"activeDeadlineSeconds": i64::MAX, "completions": i32::MAX, "parallelism": 3, "completionMode": "Indexed"}),
    );
    let plan = w.sync_job("pi").unwrap();
    assert_eq!(plan.created_pods().count(), 3);
    w.edit("Job", "default", "pi", |j: &mut Job| {
        j.status.completed_indexes = format!("0-{}", i32::MAX);
        j.status.succeeded = i32::MAX;
    })
    .unwrap();
    w.sync_job("pi");
}
