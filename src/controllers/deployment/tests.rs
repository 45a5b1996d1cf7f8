//! Deployment planner tests: single plans checked field by field, and whole
//! rollouts driven through the simulated cluster (plan, apply, run the
//! ReplicaSets, start pods, repeat) with the rolling-update invariants
//! checked at every step and `kubectl rollout status` read at the end.

use serde_json::json;

use super::util::*;
use super::*;
use crate::api::LabelSelector;
use crate::api::apps::WorkloadCondition;
use crate::api::core::Pod;
use crate::controllers::plan::Object;
use crate::controllers::sim::{World, rollout_status};

fn web(replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "hello", "image": "hello:v1"}]}
            }
        }
    }))
    .unwrap()
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn set_image(w: &mut World, image: &str) {
    let image = image.to_string();
    w.edit("Deployment", "default", "web", |d: &mut Deployment| {
        d.spec.template.spec.containers[0].image = image;
    })
    .unwrap();
}

fn edit(w: &mut World, f: impl FnOnce(&mut Deployment)) {
    w.edit("Deployment", "default", "web", f).unwrap();
}

fn live_pods(w: &World) -> Vec<Pod> {
    w.pods()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.is_terminal())
        .collect()
}

fn ready_pods(w: &World) -> usize {
    live_pods(w)
        .iter()
        .filter(|p| crate::api::core::pod_ready(p))
        .count()
}

/// The ReplicaSets of `web`, oldest first: (name, spec replicas, image).
fn sets(w: &World) -> Vec<(String, i32, String)> {
    let mut v = w.replica_sets();
    v.sort_by(by_creation);
    v.iter()
        .map(|r| {
            (
                r.metadata.name.clone(),
                r.replicas(),
                r.spec.template.spec.containers[0].image.clone(),
            )
        })
        .collect()
}

/// Limits a rollout must respect at every step.
#[derive(Clone, Copy)]
struct Limits {
    max_pods: usize,
    min_ready: usize,
}

/// One round of the control loop; `start` makes new pods ready.
fn round(w: &mut World, start: bool, limits: Option<Limits>) {
    w.sync_deployment("web");
    w.sync_replica_sets();
    if let Some(l) = limits {
        let live = live_pods(w).len();
        assert!(
            live <= l.max_pods,
            "{live} pods > {} at {:?}",
            l.max_pods,
            sets(w)
        );
        let ready = ready_pods(w);
        assert!(
            ready >= l.min_ready,
            "{ready} ready < {} at {:?}",
            l.min_ready,
            sets(w)
        );
    }
    w.terminate_pods();
    w.collect_orphans();
    if start {
        w.start_pods();
    }
    w.sync_replica_sets();
    w.advance(1);
}

/// Runs rounds until `kubectl rollout status` says done; the lines it
/// printed on the way, without repeats.
fn converge(w: &mut World, limits: Option<Limits>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..100 {
        round(w, true, limits);
        let d = w.deployment("web").unwrap();
        let (line, done) = rollout_status(&d).unwrap();
        if lines.last() != Some(&line) {
            lines.push(line);
        }
        if done {
            return lines;
        }
    }
    panic!("no convergence: {:?} {:?}", sets(w), lines);
}

fn started(d: Deployment) -> World {
    let mut w = World::new();
    w.create(d).unwrap();
    converge(&mut w, None);
    w
}

fn condition_of<'a>(d: &'a Deployment, t: &str) -> Option<(&'a str, &'a str, &'a str)> {
    get_condition(&d.status, t).map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

#[test]
fn first_sync_creates_the_new_replica_set() {
    let mut w = World::new();
    w.create(web(3, rolling(json!("25%"), json!("25%"))))
        .unwrap();
    let plan = w.sync_deployment("web").unwrap();
    let Some(Action::Create {
        object: Object::ReplicaSet(rs),
        event,
    }) = plan.actions.first()
    else {
        panic!("expected a ReplicaSet create: {:?}", plan.actions);
    };
    let hash = rs.metadata.labels.get(POD_TEMPLATE_HASH_LABEL).unwrap();
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    assert_eq!(rs.replicas(), 3);
    assert_eq!(
        rs.spec
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .get(POD_TEMPLATE_HASH_LABEL),
        Some(hash)
    );
    assert_eq!(
        rs.spec
            .template
            .metadata
            .labels
            .get("app")
            .map(String::as_str),
        Some("web")
    );
    let a = &rs.metadata.annotations;
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("1"));
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );
    let r = &rs.metadata.owner_references[0];
    assert_eq!(
        (r.kind.as_str(), r.controller, r.block_owner_deletion),
        ("Deployment", Some(true), Some(true))
    );
    assert_eq!(
        event.as_ref().unwrap().message,
        format!("Scaled up replica set web-{hash} from 0 to 3")
    );
    // The revision annotation goes with the status.
    assert!(matches!(&plan.actions[1], Action::UpdateStatus { object }
        if object.meta().annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some("1")));
    let d = w.deployment("web").unwrap();
    assert_eq!(
        d.metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        condition_of(&d, PROGRESSING),
        Some((
            "True",
            NEW_REPLICA_SET_CREATED,
            format!("Created new replica set \"web-{hash}\"").as_str()
        ))
    );
    assert_eq!(
        condition_of(&d, AVAILABLE),
        Some((
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability."
        ))
    );
}

#[test]
fn initial_rollout_reports_like_kubectl_expects() {
    let mut w = World::new();
    w.create(web(3, rolling(json!(1), json!(0)))).unwrap();
    let lines = converge(&mut w, None);
    assert_eq!(
        lines.last().unwrap(),
        "deployment \"web\" successfully rolled out"
    );
    let d = w.deployment("web").unwrap();
    let st = &d.status;
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas,
            st.unavailable_replicas
        ),
        (3, 3, 3, 3, 0)
    );
    assert_eq!(st.observed_generation, d.metadata.generation);
    let rs = &w.replica_sets()[0];
    assert_eq!(
        condition_of(&d, PROGRESSING),
        Some((
            "True",
            NEW_REPLICA_SET_AVAILABLE,
            format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                rs.metadata.name
            )
            .as_str()
        ))
    );
    assert_eq!(
        condition_of(&d, AVAILABLE),
        Some((
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability."
        ))
    );
    assert!(w.events.iter().any(|e| e.reason == "ScalingReplicaSet"));
    assert_eq!(
        w.events
            .iter()
            .filter(|e| e.reason == "SuccessfulCreate")
            .count(),
        3
    );
}

#[test]
fn rolling_updates_respect_surge_and_unavailability() {
    // (replicas, maxSurge, maxUnavailable, resolved surge, resolved unavailable)
    let cases = [
        (4, json!("25%"), json!("25%"), 1, 1),
        (10, json!("25%"), json!("25%"), 3, 2),
        (5, json!(0), json!(1), 0, 1),
        (5, json!(2), json!(0), 2, 0),
        (6, json!("50%"), json!("0%"), 3, 0),
        (1, json!("25%"), json!("25%"), 1, 0),
        (1, json!(0), json!(1), 0, 1),
        (3, json!("100%"), json!("100%"), 3, 3),
        (4, json!("0%"), json!("0%"), 0, 1),
    ];
    for (replicas, surge, unavailable, want_surge, want_unavailable) in cases {
        let label = format!("{replicas} {surge} {unavailable}");
        let mut w = started(web(replicas, rolling(surge, unavailable)));
        let d = w.deployment("web").unwrap();
        assert_eq!(
            (max_surge(&d), max_unavailable(&d)),
            (want_surge, want_unavailable),
            "{label}"
        );
        let n = usize::try_from(replicas).unwrap();
        let limits = Limits {
            max_pods: n + usize::try_from(want_surge).unwrap(),
            min_ready: n - usize::try_from(want_unavailable).unwrap(),
        };
        set_image(&mut w, "hello:v2");
        let lines = converge(&mut w, Some(limits));
        assert_eq!(
            lines.last().unwrap(),
            "deployment \"web\" successfully rolled out",
            "{label}"
        );
        let s = sets(&w);
        assert_eq!(s.len(), 2, "{label}");
        assert_eq!(
            (s[0].1, s[1].1, s[1].2.as_str()),
            (0, replicas, "hello:v2"),
            "{label}"
        );
        assert!(
            live_pods(&w)
                .iter()
                .all(|p| p.spec.containers[0].image == "hello:v2"),
            "{label}"
        );
        let d = w.deployment("web").unwrap();
        assert_eq!(
            d.metadata
                .annotations
                .get(REVISION_ANNOTATION)
                .map(String::as_str),
            Some("2"),
            "{label}"
        );
        let new = w
            .replica_sets()
            .into_iter()
            .find(|r| r.spec.template.spec.containers[0].image == "hello:v2")
            .unwrap();
        assert_eq!(
            new.metadata
                .annotations
                .get(REVISION_ANNOTATION)
                .map(String::as_str),
            Some("2"),
            "{label}"
        );
    }
}

#[test]
fn rolling_update_step_by_step() {
    // 3 replicas, one extra pod at a time, never below 3 ready.
    let mut w = started(web(3, rolling(json!(1), json!(0))));
    set_image(&mut w, "hello:v2");
    let mut history = Vec::new();
    for _ in 0..20 {
        round(
            &mut w,
            true,
            Some(Limits {
                max_pods: 4,
                min_ready: 3,
            }),
        );
        let s = sets(&w);
        history.push((s[0].1, s.get(1).map_or(0, |x| x.1)));
        if rollout_status(&w.deployment("web").unwrap()).unwrap().1 {
            break;
        }
    }
    // New up by one, old down by one, alternating.
    let mut steps: Vec<(i32, i32)> = Vec::new();
    for h in history {
        if steps.last() != Some(&h) {
            steps.push(h);
        }
    }
    assert_eq!(steps, [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]);
    let scaling: Vec<&str> = w
        .events
        .iter()
        .filter(|e| e.reason == "ScalingReplicaSet")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(scaling.len(), 7, "{scaling:?}");
    assert!(
        scaling[1].starts_with("Scaled up replica set web-") && scaling[1].ends_with("from 0 to 1")
    );
    assert!(scaling[2].ends_with("from 3 to 2"), "{scaling:?}");
}

#[test]
fn rollout_status_lines() {
    let mut w = started(web(2, rolling(json!(0), json!(1))));
    set_image(&mut w, "hello:v2");
    let lines = converge(&mut w, None);
    assert_eq!(
        lines,
        [
            // The new ReplicaSet was sized, its status not yet written.
            "Waiting for deployment \"web\" rollout to finish: 0 out of 2 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...",
            "deployment \"web\" successfully rolled out",
        ]
    );
}

#[test]
fn recreate_never_runs_old_and_new_together() {
    let mut w = started(web(3, json!({"type": "Recreate"})));
    set_image(&mut w, "hello:v2");
    for _ in 0..30 {
        w.sync_deployment("web");
        w.sync_replica_sets();
        let images: std::collections::BTreeSet<String> = w
            .pods()
            .iter()
            .filter(|p| !p.is_terminal())
            .map(|p| p.spec.containers[0].image.clone())
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        w.terminate_pods();
        w.start_pods();
        w.sync_replica_sets();
        w.advance(1);
        if rollout_status(&w.deployment("web").unwrap()).unwrap().1 {
            break;
        }
    }
    let s = sets(&w);
    assert_eq!((s[0].1, s[1].1, s[1].2.as_str()), (0, 3, "hello:v2"));
    assert!(rollout_status(&w.deployment("web").unwrap()).unwrap().1);
    // All the way down, then all the way up.
    let scaling: Vec<String> = w
        .events
        .iter()
        .filter(|e| e.reason == "ScalingReplicaSet")
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(scaling.len(), 3, "{scaling:?}");
    assert_eq!(
        scaling[1],
        format!("Scaled down replica set {} from 3 to 0", s[0].0)
    );
    assert_eq!(
        scaling[2],
        format!("Scaled up replica set {} from 0 to 3", s[1].0)
    );
}

#[test]
fn recreate_waits_for_old_pods_to_terminate() {
    let mut w = started(web(2, json!({"type": "Recreate"})));
    set_image(&mut w, "hello:v2");
    w.sync_deployment("web");
    assert_eq!(sets(&w)[0].1, 0);
    w.sync_replica_sets();
    // The old pods are terminating, not gone: no new ReplicaSet yet, even
    // after the old one's status says zero.
    w.sync_replica_sets();
    for _ in 0..3 {
        w.sync_deployment("web");
        assert_eq!(w.replica_sets().len(), 1);
    }
    w.terminate_pods();
    w.sync_replica_sets();
    w.sync_deployment("web");
    assert_eq!(sets(&w).len(), 2);
    assert_eq!(sets(&w)[1].1, 2);
}

#[test]
fn pause_and_resume() {
    let mut w = started(web(4, rolling(json!(1), json!(0))));
    edit(&mut w, |d| d.spec.paused = true);
    w.sync_deployment("web");
    let d = w.deployment("web").unwrap();
    assert_eq!(
        condition_of(&d, PROGRESSING),
        Some(("Unknown", DEPLOYMENT_PAUSED, "Deployment is paused"))
    );
    // A new template while paused starts no rollout.
    set_image(&mut w, "hello:v2");
    for _ in 0..3 {
        round(&mut w, true, None);
    }
    assert_eq!(sets(&w).len(), 1);
    // Scaling while paused still works.
    edit(&mut w, |d| d.spec.replicas = Some(6));
    for _ in 0..3 {
        round(&mut w, true, None);
    }
    assert_eq!(sets(&w)[0].1, 6);
    assert_eq!(live_pods(&w).len(), 6);
    let d = w.deployment("web").unwrap();
    assert_eq!(
        rollout_status(&d).unwrap().0,
        "Waiting for deployment \"web\" rollout to finish: 0 out of 6 new replicas have been updated..."
    );
    // Resume: the rollout runs and completes.
    edit(&mut w, |d| d.spec.paused = false);
    w.sync_deployment("web");
    let d = w.deployment("web").unwrap();
    let progressing = get_condition(&d.status, PROGRESSING).unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("True", NEW_REPLICA_SET_CREATED)
    );
    assert_eq!(sets(&w).len(), 2);
    converge(
        &mut w,
        Some(Limits {
            max_pods: 7,
            min_ready: 6,
        }),
    );
    assert_eq!(sets(&w)[1].2, "hello:v2");
}

#[test]
fn rollback_reuses_the_old_replica_set() {
    let mut w = started(web(2, rolling(json!(1), json!(0))));
    let first = sets(&w)[0].0.clone();
    set_image(&mut w, "hello:v2");
    converge(&mut w, None);
    // `kubectl rollout undo` copies revision 1's template back.
    set_image(&mut w, "hello:v1");
    converge(&mut w, None);
    let rss = w.replica_sets();
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let back = rss.iter().find(|r| r.metadata.name == first).unwrap();
    assert_eq!(back.replicas(), 2);
    let a = &back.metadata.annotations;
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    let d = w.deployment("web").unwrap();
    assert_eq!(
        d.metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    assert!(
        live_pods(&w)
            .iter()
            .all(|p| p.spec.containers[0].image == "hello:v1")
    );
}

#[test]
fn progress_deadline() {
    let mut d = web(2, rolling(json!(1), json!(0)));
    d.spec.progress_deadline_seconds = Some(30);
    let mut w = started(d);
    set_image(&mut w, "broken:v2");
    // The new pods never become ready.
    let mut requeue = None;
    for _ in 0..10 {
        round(&mut w, false, None);
        requeue = w.sync_deployment("web").unwrap().requeue_after;
    }
    // The new ReplicaSet got its one surge pod: that was progress.
    let d = w.deployment("web").unwrap();
    assert_eq!(
        condition_of(&d, PROGRESSING).map(|c| c.1),
        Some(REPLICA_SET_UPDATED)
    );
    let left = requeue.unwrap().as_secs();
    assert!((10..=31).contains(&left), "{left}");
    w.advance(31);
    round(&mut w, false, None);
    let d = w.deployment("web").unwrap();
    let (status, reason, message) = condition_of(&d, PROGRESSING).unwrap();
    assert_eq!((status, reason), ("False", PROGRESS_DEADLINE_EXCEEDED));
    assert!(
        message.starts_with("ReplicaSet \"web-")
            && message.ends_with("\" has timed out progressing.")
    );
    assert_eq!(
        rollout_status(&d),
        Err("deployment \"web\" exceeded its progress deadline".into())
    );
    // Old pods keep serving.
    assert_eq!(ready_pods(&w), 2);
    // The condition sticks and no requeue is asked for it.
    let plan = w.sync_deployment("web").unwrap();
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn revision_history_limit_cleans_old_replica_sets() {
    let mut d = web(1, rolling(json!(1), json!(0)));
    d.spec.revision_history_limit = Some(1);
    let mut w = started(d);
    for v in 2..=5 {
        set_image(&mut w, &format!("hello:v{v}"));
        converge(&mut w, None);
        // Deletions happen once the rollout is complete.
        round(&mut w, true, None);
    }
    let s = sets(&w);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].2.as_str(), s[0].1), ("hello:v4", 0));
    assert_eq!((s[1].2.as_str(), s[1].1), ("hello:v5", 1));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut w = started(web(10, rolling(json!(3), json!(2))));
    set_image(&mut w, "hello:v2");
    // One round: the new ReplicaSet gets 3 (surge 3, nothing unavailable
    // yet), then old ones go down as far as availability allows.
    w.sync_deployment("web");
    w.sync_replica_sets();
    w.sync_deployment("web");
    let s = sets(&w);
    assert_eq!((s[0].1, s[1].1), (8, 5));
    // Scale to 20 in the middle: 13 + 7 more, split by size.
    edit(&mut w, |d| d.spec.replicas = Some(20));
    let plan = w.sync_deployment("web").unwrap();
    let s = sets(&w);
    // old: 8 * 23 / 13 = 14.15 -> 14; new takes the rest: 5 + 4 = 9.
    assert_eq!((s[0].1, s[1].1), (14, 9), "{:?}", plan.actions);
    let rss = w.replica_sets();
    assert!(rss.iter().all(|r| {
        r.metadata
            .annotations
            .get(DESIRED_REPLICAS_ANNOTATION)
            .map(String::as_str)
            == Some("20")
    }));
    assert!(rss.iter().all(|r| {
        r.metadata
            .annotations
            .get(MAX_REPLICAS_ANNOTATION)
            .map(String::as_str)
            == Some("23")
    }));
    converge(
        &mut w,
        Some(Limits {
            max_pods: 23,
            min_ready: 8,
        }),
    );
    assert_eq!(sets(&w)[1].1, 20);
}

#[test]
fn scaling_down_to_zero_and_back() {
    let mut w = started(web(3, rolling(json!(1), json!(0))));
    edit(&mut w, |d| d.spec.replicas = Some(0));
    converge(&mut w, None);
    assert!(live_pods(&w).is_empty());
    assert_eq!(sets(&w)[0].1, 0);
    edit(&mut w, |d| d.spec.replicas = Some(2));
    converge(&mut w, None);
    assert_eq!(live_pods(&w).len(), 2);
}

#[test]
fn hash_collisions_bump_the_collision_count() {
    let mut w = World::new();
    w.create(web(1, rolling(json!(1), json!(0)))).unwrap();
    // Hash what was stored: defaulting changed the template.
    let stored = w.deployment("web").unwrap();
    let hash = compute_hash(&stored.spec.template, None);
    // Someone else's ReplicaSet already has the name.
    let squatter: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": format!("web-{hash}"), "namespace": "default", "labels": {"other": "x"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"other": "x"}},
            "template": {"metadata": {"labels": {"other": "x"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
    }))
    .unwrap();
    w.create(squatter).unwrap();
    let plan = w.sync_deployment("web").unwrap();
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, Action::UpdateStatus { .. })),
        "{:?}",
        plan.actions
    );
    assert_eq!(w.deployment("web").unwrap().status.collision_count, Some(1));
    converge(&mut w, None);
    let ours: Vec<_> = w
        .replica_sets()
        .into_iter()
        .filter(|r| r.metadata.name != format!("web-{hash}"))
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0].metadata.name,
        format!("web-{}", compute_hash(&stored.spec.template, Some(1)))
    );
}

#[test]
fn adopts_matching_orphans_and_reports_replica_failures() {
    let mut w = World::new();
    let d = web(2, rolling(json!(1), json!(0)));
    w.create(d).unwrap();
    let stored = w.deployment("web").unwrap();
    let hash = compute_hash(&stored.spec.template, None);
    let mut orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: format!("web-{hash}"),
            namespace: "default".into(),
            labels: with_hash(&stored.spec.template.metadata.labels, &hash),
            ..Default::default()
        },
        ..Default::default()
    };
    orphan.spec.replicas = Some(2);
    orphan.spec.template = new_rs_template(&stored, &hash);
    orphan.spec.selector = Some(LabelSelector {
        match_labels: with_hash(&stored.spec.selector.clone().unwrap().match_labels, &hash),
        ..Default::default()
    });
    w.create(orphan).unwrap();
    let plan = w.sync_deployment("web").unwrap();
    assert!(
        matches!(&plan.actions[0], Action::Patch { target, .. } if target.kind == "ReplicaSet")
    );
    let rs = &w.replica_sets()[0];
    assert_eq!(
        rs.metadata.controller_ref().map(|r| r.name.as_str()),
        Some("web")
    );
    assert_eq!(
        w.replica_sets().len(),
        1,
        "the orphan is the new ReplicaSet"
    );
    // A failing ReplicaSet shows through.
    w.edit(
        "ReplicaSet",
        "default",
        &format!("web-{hash}"),
        |r: &mut ReplicaSet| {
            r.status.conditions.push(WorkloadCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: "FailedCreate".into(),
                message: "quota exceeded".into(),
                ..Default::default()
            });
        },
    )
    .unwrap();
    w.sync_deployment("web");
    let d = w.deployment("web").unwrap();
    assert_eq!(
        condition_of(&d, REPLICA_FAILURE),
        Some(("True", "FailedCreate", "quota exceeded"))
    );
}

#[test]
fn empty_selectors_are_refused_with_an_event() {
    let mut d = web(1, rolling(json!(1), json!(0)));
    d.spec.selector = Some(LabelSelector::default());
    d.metadata.generation = 2;
    let observed = Observed {
        replica_sets: &[],
        pods: &[],
        now: crate::controllers::sim::epoch(),
    };
    let plan = plan(&d, &observed);
    assert_eq!(plan.events[0].reason, "SelectingAll");
    assert!(
        matches!(&plan.actions[..], [Action::UpdateStatus { object: Object::Deployment(x) }] if x.status.observed_generation == 2)
    );
}

#[test]
fn min_ready_seconds_holds_old_pods_until_new_ones_are_available() {
    let mut d = web(3, rolling(json!(1), json!(0)));
    d.spec.min_ready_seconds = 5;
    let mut w = started(d);
    // The ReplicaSets carry the Deployment's minReadySeconds.
    assert!(
        w.replica_sets()
            .iter()
            .all(|r| r.spec.min_ready_seconds == 5)
    );
    set_image(&mut w, "hello:v2");
    let mut rounds_needed = 0;
    for _ in 0..100 {
        round(&mut w, true, None);
        rounds_needed += 1;
        // Pods ready for more than 5 s never drop below 3.
        let available = live_pods(&w)
            .iter()
            .filter(|p| crate::controllers::pods::is_available(p, 5, w.now))
            .count();
        assert!(available >= 3, "{available} available at {:?}", sets(&w));
        if rollout_status(&w.deployment("web").unwrap()).unwrap().1 {
            break;
        }
    }
    assert!(rollout_status(&w.deployment("web").unwrap()).unwrap().1);
    // Each of the three replacements waits out minReadySeconds.
    assert!(rounds_needed >= 18, "{rounds_needed}");
}

#[test]
fn a_deployment_being_deleted_only_refreshes_its_status() {
    let mut w = started(web(2, rolling(json!(1), json!(0))));
    set_image(&mut w, "hello:v2");
    edit(&mut w, |d| {
        d.metadata.deletion_timestamp = Some(crate::controllers::pods::time(
            crate::controllers::sim::epoch(),
        ))
    });
    let plan = w.sync_deployment("web").unwrap();
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, Action::UpdateStatus { .. })),
        "{:?}",
        plan.actions
    );
    assert_eq!(w.replica_sets().len(), 1);
}
