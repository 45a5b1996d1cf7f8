//! Pod status as the kubelet writes it (pure): container statuses, the
//! phase (`getPhase`), the conditions, and the JSON merge patch that takes
//! the API's copy of a status to ours.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::lifecycle::{ContainerRuntime, ContainerState, Termination, go_duration};
use super::plan::{NextStart, PodRuntime, next_start};
use crate::api::Time;
use crate::api::core::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIp, Pod, PodCondition, PodIp, PodStatus, qos_class,
};

/// The `containerID` of run `attempt` of a container.
pub fn container_id(pod_uid: &str, container: &str, attempt: u32) -> String {
    format!("wasmk://{pod_uid}/{container}/{attempt}")
}

fn time(t: DateTime<Utc>) -> Time {
    Time(DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t))
}

fn terminated(t: &Termination) -> ApiState {
    ApiState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone(),
            message: t.message.clone(),
            started_at: t.started_at.map(time),
            finished_at: Some(time(t.finished_at)),
            container_id: t.container_id.clone(),
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: String) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.to_string(),
            message,
        }),
        ..Default::default()
    }
}

/// Whether the pod is past the point where containers restart.
fn winding_down(pod: &Pod, rt: &PodRuntime) -> bool {
    pod.metadata.deletion_timestamp.is_some() || rt.outcome.is_some()
}

/// The status of one container.
#[allow(clippy::too_many_arguments)]
fn container_status(
    pod: &Pod,
    rt: &PodRuntime,
    spec: &Container,
    c: &ContainerRuntime,
    is_init: bool,
    waiting_for_init: bool,
    now: DateTime<Utc>,
) -> ContainerStatus {
    let uid = &pod.metadata.uid;
    let mut last_state = c
        .last_termination
        .as_ref()
        .map(terminated)
        .unwrap_or_default();
    let mut container_id = c
        .state
        .attempt()
        .map(|a| container_id(uid, &c.name, a))
        .unwrap_or_default();
    let mut ready = false;
    let mut started = false;
    let state = match &c.state {
        ContainerState::New => {
            container_id.clear();
            let reason = if is_init || waiting_for_init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            waiting(reason, String::new())
        }
        ContainerState::Creating { .. } | ContainerState::Starting { .. } => {
            waiting("ContainerCreating", String::new())
        }
        ContainerState::Blocked {
            reason, message, ..
        } => {
            container_id.clear();
            waiting(reason.as_str(), message.clone())
        }
        ContainerState::Running { started_at, .. } => {
            ready = !winding_down(pod, rt);
            started = true;
            ApiState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(*started_at)),
                }),
                ..Default::default()
            }
        }
        ContainerState::Stopping {
            started_at: Some(s),
            ..
        } => {
            started = true;
            ApiState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(*s)),
                }),
                ..Default::default()
            }
        }
        ContainerState::Stopping { .. } => waiting("ContainerCreating", String::new()),
        ContainerState::Exited { termination, .. } => {
            let next = if winding_down(pod, rt) {
                NextStart::Never
            } else {
                next_start(c, &pod.spec.restart_policy, is_init, now)
            };
            match next {
                NextStart::Never => terminated(termination),
                NextStart::At { delay, .. } => {
                    last_state = terminated(termination);
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}_{}({uid})",
                        go_duration(delay),
                        c.name,
                        pod.metadata.name,
                        pod.metadata.namespace
                    );
                    waiting("CrashLoopBackOff", message)
                }
                NextStart::Now => {
                    last_state = terminated(termination);
                    waiting("ContainerCreating", String::new())
                }
            }
        }
    };
    ContainerStatus {
        name: c.name.clone(),
        state,
        last_state,
        ready,
        restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
        image: spec.image.clone(),
        image_id: c.image_id.clone(),
        container_id,
        started: Some(started),
    }
}

fn runtime_of<'a>(
    rt: &'a PodRuntime,
    name: &str,
    fallback: &'a ContainerRuntime,
) -> &'a ContainerRuntime {
    rt.containers.get(name).unwrap_or(fallback)
}

/// Init and app container statuses, in spec order.
pub fn container_statuses(
    pod: &Pod,
    rt: &PodRuntime,
    now: DateTime<Utc>,
) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
    let mut init_done = true;
    let mut inits = Vec::new();
    for spec in &pod.spec.init_containers {
        let fallback = ContainerRuntime::new(&spec.name);
        let c = runtime_of(rt, &spec.name, &fallback);
        inits.push(container_status(pod, rt, spec, c, true, false, now));
        let succeeded = matches!(&c.state, ContainerState::Exited { termination, .. } if termination.succeeded());
        init_done &= succeeded;
    }
    let apps = pod
        .spec
        .containers
        .iter()
        .map(|spec| {
            let fallback = ContainerRuntime::new(&spec.name);
            let c = runtime_of(rt, &spec.name, &fallback);
            container_status(pod, rt, spec, c, false, !init_done, now)
        })
        .collect();
    (inits, apps)
}

/// The kubelet's `getPhase` over container statuses. `terminal`: the pod
/// is done for good (deleted and stopped), so restarting containers count
/// as stopped.
pub fn phase_of(
    pod: &Pod,
    inits: &[ContainerStatus],
    apps: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let never = pod.spec.restart_policy == "Never";
    let (mut pending_init, mut failed_init) = (0, 0);
    for s in inits {
        if s.state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &s.state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if let Some(last) = &s.last_state.terminated {
            if last.exit_code != 0 {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in apps {
        if s.state.running.is_some() {
            running += 1;
        } else if let Some(t) = &s.state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.terminated.is_some() {
            // Restarting: it ran and will run again.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if failed_init > 0 && never {
        return "Failed";
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    if terminal {
        return if stopped == succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    match pod.spec.restart_policy.as_str() {
        "Never" if stopped == succeeded => "Succeeded",
        "Never" => "Failed",
        "OnFailure" if stopped == succeeded => "Succeeded",
        _ => "Running",
    }
}

/// The pod's phase now.
pub fn phase(pod: &Pod, rt: &PodRuntime, now: DateTime<Utc>, terminal: bool) -> &'static str {
    if rt.outcome.is_some() {
        return "Failed";
    }
    let (inits, apps) = container_statuses(pod, rt, now);
    phase_of(pod, &inits, &apps, terminal)
}

/// A condition, keeping `lastTransitionTime` from `previous` while its
/// status stays the same.
fn condition(
    previous: &PodStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time)
        .unwrap_or_else(|| time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_probe_time: None,
        last_transition_time: Some(since),
        reason: reason.to_string(),
        message,
    }
}

fn names(list: &[&str]) -> String {
    format!("[{}]", list.join(" "))
}

/// The whole status the agent reports for `pod`. `previous` is the status
/// last reported (its condition transition times are kept); `node_ip` is
/// the node's address, which is also the pod's (pods share the node's
/// network).
pub fn pod_status(
    pod: &Pod,
    rt: &PodRuntime,
    previous: &PodStatus,
    node_ip: &str,
    now: DateTime<Utc>,
) -> PodStatus {
    let (inits, apps) = container_statuses(pod, rt, now);
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let terminal = deleting && !rt.any_active();
    let phase = match &rt.outcome {
        Some(_) => "Failed",
        None => phase_of(pod, &inits, &apps, terminal),
    };
    let completed = phase == "Succeeded";
    let incomplete: Vec<&str> = inits
        .iter()
        .filter(|s| s.state.terminated.as_ref().is_none_or(|t| t.exit_code != 0))
        .map(|s| s.name.as_str())
        .collect();
    let unready: Vec<&str> = apps
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let mut conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            rt.sandbox_ready && !matches!(phase, "Succeeded" | "Failed"),
            "",
            String::new(),
            now,
        ),
        if incomplete.is_empty() || completed {
            condition(
                previous,
                "Initialized",
                true,
                if completed && !pod.spec.init_containers.is_empty() {
                    "PodCompleted"
                } else {
                    ""
                },
                String::new(),
                now,
            )
        } else {
            condition(
                previous,
                "Initialized",
                false,
                "ContainersNotInitialized",
                format!("containers with incomplete status: {}", names(&incomplete)),
                now,
            )
        },
    ];
    let ready = |type_: &str| {
        if unready.is_empty() {
            condition(previous, type_, true, "", String::new(), now)
        } else if completed {
            condition(previous, type_, false, "PodCompleted", String::new(), now)
        } else {
            condition(
                previous,
                type_,
                false,
                "ContainersNotReady",
                format!("containers with unready status: {}", names(&unready)),
                now,
            )
        }
    };
    conditions.push(ready("Ready"));
    conditions.push(ready("ContainersReady"));
    // The scheduler owns PodScheduled; a pod created bound to the node gets
    // one from us, as from the kubelet.
    match pod.condition("PodScheduled") {
        Some(c) => conditions.push(c.clone()),
        None => conditions.push(condition(
            previous,
            "PodScheduled",
            true,
            "",
            String::new(),
            now,
        )),
    }
    // Conditions owned by others (DisruptionTarget, readiness gates) stay.
    for c in &pod.status.conditions {
        if !conditions.iter().any(|k| k.type_ == c.type_) {
            conditions.push(c.clone());
        }
    }
    let started = rt.start_time.is_some();
    let ip = if started {
        node_ip.to_string()
    } else {
        String::new()
    };
    let (reason, message) = match &rt.outcome {
        Some(o) => (o.reason.clone(), o.message.clone()),
        None => (String::new(), String::new()),
    };
    PodStatus {
        phase: phase.to_string(),
        conditions,
        message,
        reason,
        nominated_node_name: pod.status.nominated_node_name.clone(),
        host_ip: node_ip.to_string(),
        host_ips: if node_ip.is_empty() {
            Vec::new()
        } else {
            vec![HostIp {
                ip: node_ip.to_string(),
            }]
        },
        pod_ips: if ip.is_empty() {
            Vec::new()
        } else {
            vec![PodIp { ip: ip.clone() }]
        },
        pod_ip: ip,
        start_time: rt.start_time.map(time),
        init_container_statuses: inits,
        container_statuses: apps,
        qos_class: if pod.status.qos_class.is_empty() {
            qos_class(&pod.spec).to_string()
        } else {
            pod.status.qos_class.clone()
        },
    }
}

/// The RFC 7386 merge patch that turns `old` into `new`: changed members
/// replaced, removed members set to `null`, arrays replaced whole. `None`
/// when they are equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::lifecycle::{Blocker, Event, StopReason};
    use crate::agent::plan::Outcome;
    use chrono::Duration;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn pod(policy: &str, apps: &[&str]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "web".into();
        p.metadata.namespace = "default".into();
        p.metadata.uid = "u1".into();
        p.spec.restart_policy = policy.into();
        p.spec.containers = apps
            .iter()
            .map(|n| Container {
                name: n.to_string(),
                image: "hello:v1".into(),
                ..Default::default()
            })
            .collect();
        p
    }

    fn term(code: i32, reason: &str, finished: i64) -> Termination {
        Termination {
            exit_code: code,
            signal: 0,
            reason: reason.into(),
            message: String::new(),
            started_at: Some(t(finished - 1)),
            finished_at: t(finished),
            container_id: "wasmk://u1/a/0".into(),
        }
    }

    fn run_to(c: &mut ContainerRuntime, at: i64) {
        let attempt = c.next_attempt();
        c.apply(Event::CreateStarted { attempt, at: t(at) })
            .unwrap();
        c.apply(Event::Spawned {
            attempt,
            pid: 1,
            at: t(at),
            grace: Duration::zero(),
        })
        .unwrap();
        c.apply(Event::Started { attempt, at: t(at) }).unwrap();
    }

    fn exit(c: &mut ContainerRuntime, code: i32, reason: &str, at: i64) {
        let attempt = c.state.attempt().unwrap();
        c.apply(Event::Exited {
            attempt,
            termination: term(code, reason, at),
        })
        .unwrap();
    }

    #[test]
    fn container_states_as_kubelet_reports_them() {
        type Setup = fn(&mut ContainerRuntime);
        // (setup, policy, want state JSON, want lastState JSON, restartCount)
        let cases: Vec<(&str, Setup, &str, Value, Value, i32)> = vec![
            (
                "new",
                |_| {},
                "Always",
                json!({"waiting": {"reason": "ContainerCreating"}}),
                json!({}),
                0,
            ),
            (
                "blocked",
                |c| {
                    c.apply(Event::CreateStarted {
                        attempt: 0,
                        at: t(0),
                    })
                    .unwrap();
                    c.apply(Event::CreateFailed {
                        attempt: 0,
                        reason: Blocker::ModuleNotFound,
                        message: "module \"nope\" not found".into(),
                        retry_at: t(5),
                    })
                    .unwrap();
                },
                "Always",
                json!({"waiting": {"reason": "ModuleNotFound", "message": "module \"nope\" not found"}}),
                json!({}),
                0,
            ),
            (
                "running",
                |c| run_to(c, 3),
                "Always",
                json!({"running": {"startedAt": "2023-11-14T22:13:23Z"}}),
                json!({}),
                0,
            ),
            (
                "completed under Never",
                |c| {
                    run_to(c, 3);
                    exit(c, 0, "Completed", 4);
                },
                "Never",
                json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": "2023-11-14T22:13:23Z", "finishedAt": "2023-11-14T22:13:24Z",
                    "containerID": "wasmk://u1/a/0"}}),
                json!({}),
                0,
            ),
            (
                "crash loop",
                |c| {
                    run_to(c, 1);
                    exit(c, 3, "Error", 2);
                    run_to(c, 2);
                    exit(c, 3, "Error", 3);
                },
                "Always",
                json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 10s restarting failed container=a pod=web_default(u1)"}}),
                json!({"terminated": {"exitCode": 3, "reason": "Error",
                    "startedAt": "2023-11-14T22:13:22Z", "finishedAt": "2023-11-14T22:13:23Z",
                    "containerID": "wasmk://u1/a/0"}}),
                1,
            ),
            (
                "restarted and running",
                |c| {
                    run_to(c, 1);
                    exit(c, 137, "OOMKilled", 2);
                    run_to(c, 2);
                },
                "Always",
                json!({"running": {"startedAt": "2023-11-14T22:13:22Z"}}),
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "startedAt": "2023-11-14T22:13:21Z", "finishedAt": "2023-11-14T22:13:22Z",
                    "containerID": "wasmk://u1/a/0"}}),
                1,
            ),
        ];
        for (name, setup, policy, want_state, want_last, restarts) in cases {
            let p = pod(policy, &["a"]);
            let mut rt = PodRuntime::for_pod(&p);
            setup(rt.container_mut("a"));
            let (_, apps) = container_statuses(&p, &rt, t(4));
            let s = &apps[0];
            assert_eq!(
                serde_json::to_value(&s.state).unwrap(),
                want_state,
                "{name}"
            );
            assert_eq!(
                serde_json::to_value(&s.last_state).unwrap(),
                want_last,
                "{name}"
            );
            assert_eq!(s.restart_count, restarts, "{name}");
            assert_eq!(s.image, "hello:v1");
        }
    }

    fn status_of(p: &Pod, rt: &PodRuntime) -> PodStatus {
        pod_status(p, rt, &PodStatus::default(), "10.0.0.5", t(10))
    }

    #[test]
    fn phases() {
        type Setup = fn(&mut PodRuntime);
        let cases: Vec<(&str, &str, Setup, &str)> = vec![
            ("nothing started", "Always", |_| {}, "Pending"),
            (
                "one running one creating",
                "Always",
                |rt| run_to(rt.container_mut("a"), 1),
                "Pending",
            ),
            (
                "all running",
                "Always",
                |rt| {
                    run_to(rt.container_mut("a"), 1);
                    run_to(rt.container_mut("b"), 1);
                },
                "Running",
            ),
            (
                "Never: one failed one completed",
                "Never",
                |rt| {
                    run_to(rt.container_mut("a"), 1);
                    exit(rt.container_mut("a"), 3, "Error", 2);
                    run_to(rt.container_mut("b"), 1);
                    exit(rt.container_mut("b"), 0, "Completed", 2);
                },
                "Failed",
            ),
            (
                "Never: all completed",
                "Never",
                |rt| {
                    for n in ["a", "b"] {
                        run_to(rt.container_mut(n), 1);
                        exit(rt.container_mut(n), 0, "Completed", 2);
                    }
                },
                "Succeeded",
            ),
            (
                "OnFailure: all completed",
                "OnFailure",
                |rt| {
                    for n in ["a", "b"] {
                        run_to(rt.container_mut(n), 1);
                        exit(rt.container_mut(n), 0, "Completed", 2);
                    }
                },
                "Succeeded",
            ),
            (
                "Always: crash looping",
                "Always",
                |rt| {
                    for n in ["a", "b"] {
                        run_to(rt.container_mut(n), 1);
                        exit(rt.container_mut(n), 1, "Error", 2);
                    }
                },
                "Running",
            ),
        ];
        for (name, policy, setup, want) in cases {
            let p = pod(policy, &["a", "b"]);
            let mut rt = PodRuntime::for_pod(&p);
            setup(&mut rt);
            assert_eq!(status_of(&p, &rt).phase, want, "{name}");
        }
    }

    #[test]
    fn conditions_of_a_running_pod() {
        let p = pod("Always", &["a", "b"]);
        let mut rt = PodRuntime::for_pod(&p);
        rt.start_time = Some(t(0));
        rt.sandbox_ready = true;
        run_to(rt.container_mut("a"), 1);
        let s = status_of(&p, &rt);
        let got: Vec<(&str, &str, &str, &str)> = s
            .conditions
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_str(),
                    c.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("PodReadyToStartContainers", "True", "", ""),
                ("Initialized", "True", "", ""),
                (
                    "Ready",
                    "False",
                    "ContainersNotReady",
                    "containers with unready status: [b]"
                ),
                (
                    "ContainersReady",
                    "False",
                    "ContainersNotReady",
                    "containers with unready status: [b]"
                ),
                ("PodScheduled", "True", "", ""),
            ]
        );
        assert_eq!(s.pod_ip, "10.0.0.5");
        assert_eq!(s.host_ips[0].ip, "10.0.0.5");
        assert_eq!(s.qos_class, "BestEffort");
        assert!(s.start_time.is_some());
        // Transition times survive while the status holds.
        let mut previous = s.clone();
        previous.conditions[0].last_transition_time = Some(Time(t(-100)));
        let again = pod_status(&p, &rt, &previous, "10.0.0.5", t(20));
        assert_eq!(
            again.conditions[0].last_transition_time,
            Some(Time(t(-100)))
        );
        assert_eq!(again.conditions[2].last_transition_time, Some(Time(t(10))));
        // A condition that flips gets the current time.
        run_to(rt.container_mut("b"), 15);
        let flipped = pod_status(&p, &rt, &again, "10.0.0.5", t(20));
        assert_eq!(flipped.conditions[2].status, "True");
        assert_eq!(
            flipped.conditions[2].last_transition_time,
            Some(Time(t(20)))
        );
    }

    #[test]
    fn deadline_failure_and_completion() {
        let p = pod("Always", &["a"]);
        let mut rt = PodRuntime::for_pod(&p);
        rt.outcome = Some(Outcome {
            reason: "DeadlineExceeded".into(),
            message: "too long".into(),
        });
        run_to(rt.container_mut("a"), 1);
        rt.container_mut("a")
            .apply(Event::StopRequested {
                reason: StopReason::DeadlineExceeded,
                at: t(2),
                grace: Duration::seconds(30),
            })
            .unwrap();
        let s = status_of(&p, &rt);
        assert_eq!(
            (s.phase.as_str(), s.reason.as_str(), s.message.as_str()),
            ("Failed", "DeadlineExceeded", "too long")
        );
        assert!(!s.container_statuses[0].ready);

        let p = pod("Never", &["a"]);
        let mut rt = PodRuntime::for_pod(&p);
        run_to(rt.container_mut("a"), 1);
        exit(rt.container_mut("a"), 0, "Completed", 2);
        let s = status_of(&p, &rt);
        assert_eq!(s.phase, "Succeeded");
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "PodCompleted")
        );
    }

    #[test]
    fn init_containers_hold_the_pod() {
        let mut p = pod("Always", &["a"]);
        p.spec.init_containers = vec![Container {
            name: "init".into(),
            image: "x".into(),
            ..Default::default()
        }];
        let mut rt = PodRuntime::for_pod(&p);
        run_to(rt.container_mut("init"), 1);
        let s = status_of(&p, &rt);
        assert_eq!(s.phase, "Pending");
        assert_eq!(
            s.container_statuses[0]
                .state
                .waiting
                .as_ref()
                .unwrap()
                .reason,
            "PodInitializing"
        );
        let init = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(init.message, "containers with incomplete status: [init]");
    }

    #[test]
    fn merge_patches() {
        let cases = [
            (json!({"a": 1}), json!({"a": 1}), None),
            (json!({"a": 1}), json!({"a": 2}), Some(json!({"a": 2}))),
            (
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
                Some(json!({"b": null})),
            ),
            (
                json!({"s": {"x": 1, "y": [1, 2]}}),
                json!({"s": {"x": 1, "y": [1]}}),
                Some(json!({"s": {"y": [1]}})),
            ),
            (
                json!({}),
                json!({"n": {"k": "v"}}),
                Some(json!({"n": {"k": "v"}})),
            ),
            (
                json!({"o": {"k": 1}}),
                json!({"o": "text"}),
                Some(json!({"o": "text"})),
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(merge_patch(&old, &new), want, "{old} -> {new}");
        }
    }
}
