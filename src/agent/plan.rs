//! What a pod needs next (pure): the kubelet's `computePodActions` for
//! wasmk. [`plan`] looks at the pod object and the [`PodRuntime`] (the
//! state machines of its containers) and returns [`Action`]s; the pod worker
//! applies each action's state change and performs its side effect, then
//! plans again. Planning is level-triggered and idempotent: the same inputs
//! always give the same actions, and an action's state change makes it
//! disappear from the next plan.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::lifecycle::{
    BACKOFF_INITIAL, BACKOFF_MAX, Blocker, ContainerRuntime, ContainerState, StopReason,
};
use super::status;
use crate::api::core::{Container, Pod};

/// Message of a pod failed by `activeDeadlineSeconds` (the kubelet's).
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Progress of a one-off cleanup step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Step {
    #[default]
    Pending,
    InFlight,
    Done,
}

/// A pod that failed for good, whatever its containers do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `status.reason`, e.g. `DeadlineExceeded`.
    pub reason: String,
    pub message: String,
}

/// Everything the agent knows about one pod beyond its API object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRuntime {
    /// Init and app containers by name (names are unique across both).
    pub containers: BTreeMap<String, ContainerRuntime>,
    /// When the agent accepted the pod (`status.startTime`).
    pub start_time: Option<DateTime<Utc>>,
    /// Set when the pod failed as a whole (deadline, admission).
    pub outcome: Option<Outcome>,
    /// The pod's cgroup and volumes exist (`PodReadyToStartContainers`).
    pub sandbox_ready: bool,
    /// Releasing the cgroups of a finished pod.
    pub release: Step,
    /// Removing everything local and (if asked) the API object.
    pub finalize: Step,
}

impl PodRuntime {
    /// Runtime state for `pod`'s containers, all `New`.
    pub fn for_pod(pod: &Pod) -> PodRuntime {
        let mut rt = PodRuntime::default();
        for c in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
            rt.containers
                .insert(c.name.clone(), ContainerRuntime::new(&c.name));
        }
        rt
    }

    /// The container's runtime, created `New` if the spec gained it.
    pub fn container_mut(&mut self, name: &str) -> &mut ContainerRuntime {
        self.containers
            .entry(name.to_string())
            .or_insert_with(|| ContainerRuntime::new(name))
    }

    /// Whether any sandbox may exist.
    pub fn any_active(&self) -> bool {
        self.containers.values().any(|c| c.state.is_active())
    }
}

/// A step the worker takes. Each one comes with the state change the
/// worker applies before doing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create and start run `attempt` (state: `CreateStarted`).
    Start { container: String, attempt: u32 },
    /// Ask the container to stop (state: `StopRequested`).
    Stop {
        container: String,
        reason: StopReason,
        grace: Duration,
    },
    /// Send SIGTERM to its sandbox (state: `Signalled`).
    Signal { container: String, attempt: u32 },
    /// Kill everything in its cgroup (state: `Killed`).
    Kill { container: String, attempt: u32 },
    /// Fail the pod as a whole (state: [`PodRuntime::outcome`]).
    Fail { reason: String, message: String },
    /// The pod finished: remove its cgroups, keep its logs
    /// (state: [`PodRuntime::release`] in flight).
    Release,
    /// The pod is deleted: remove everything local, then the API object
    /// when `delete_object` (state: [`PodRuntime::finalize`] in flight).
    Finalize { delete_object: bool },
}

/// The actions for now, and when to plan again if nothing else happens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub wake_at: Option<DateTime<Utc>>,
    /// Nothing is left to do for this pod: the worker may exit.
    pub finished: bool,
}

impl Plan {
    fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// When a container should (re)start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStart {
    Now,
    /// Not before `at`; `delay` is the crash-loop delay (zero for a retry
    /// of a failed creation).
    At {
        at: DateTime<Utc>,
        delay: Duration,
    },
    /// Not by itself (running, or finished for good).
    Never,
}

/// Whether a finished run should be followed by another under
/// `restart_policy`; init containers restart only after failures, and
/// never under `Never`.
pub fn wants_restart(restart_policy: &str, is_init: bool, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ if is_init => exit_code != 0,
        _ => true,
    }
}

/// When `c` should start next, from its state, the restart policy and its
/// backoff.
pub fn next_start(
    c: &ContainerRuntime,
    restart_policy: &str,
    is_init: bool,
    now: DateTime<Utc>,
) -> NextStart {
    match &c.state {
        ContainerState::New => NextStart::Now,
        ContainerState::Blocked { retry_at, .. } if *retry_at <= now => NextStart::Now,
        ContainerState::Blocked { retry_at, .. } => NextStart::At {
            at: *retry_at,
            delay: Duration::zero(),
        },
        ContainerState::Exited { termination, .. } => {
            if !wants_restart(restart_policy, is_init, termination.exit_code) {
                return NextStart::Never;
            }
            match c.backoff.restart_at(termination.finished_at) {
                Some((at, delay)) if at > now => NextStart::At { at, delay },
                _ => NextStart::Now,
            }
        }
        _ => NextStart::Never,
    }
}

/// How long to wait before retrying a failed creation for the `failures`-th
/// time in a row. Problems a user fixes by creating something (a module, a
/// ConfigMap) are retried within seconds (module uploads also trigger a
/// retry at once); the others back off like crashes.
pub fn retry_delay(reason: Blocker, failures: u32) -> Duration {
    let n = failures.saturating_sub(1).min(16);
    match reason {
        Blocker::ModuleNotFound | Blocker::CreateContainerConfigError => {
            (Duration::seconds(1) * (1 << n)).min(Duration::seconds(10))
        }
        Blocker::InvalidImageName | Blocker::ErrImagePull | Blocker::CreateContainerError => {
            (BACKOFF_INITIAL * (1 << n)).min(BACKOFF_MAX)
        }
    }
}

/// The grace period a deleted pod's containers get.
fn deletion_grace(pod: &Pod, gone: bool) -> Duration {
    if gone {
        // The object is already gone (a forced delete): stop at once.
        return Duration::zero();
    }
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::seconds(secs.max(0))
}

fn spec_grace(pod: &Pod) -> Duration {
    Duration::seconds(
        pod.spec
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0),
    )
}

/// Stops every active container for `reason`, signalling and killing as
/// their deadlines come.
fn stop_all(
    rt: &PodRuntime,
    reason: StopReason,
    grace: Duration,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    for c in rt.containers.values() {
        match &c.state {
            ContainerState::Creating { stop: None, .. }
            | ContainerState::Starting { .. }
            | ContainerState::Running { .. } => plan.actions.push(Action::Stop {
                container: c.name.clone(),
                reason,
                grace,
            }),
            ContainerState::Stopping {
                attempt,
                kill_at,
                signalled,
                killed,
                ..
            } => {
                if !signalled {
                    plan.actions.push(Action::Signal {
                        container: c.name.clone(),
                        attempt: *attempt,
                    });
                }
                if *kill_at <= now {
                    if !killed {
                        plan.actions.push(Action::Kill {
                            container: c.name.clone(),
                            attempt: *attempt,
                        });
                    }
                } else {
                    plan.wake(*kill_at);
                }
            }
            _ => {}
        }
    }
}

/// Starts `c` now or schedules the next plan for when it may start.
fn start_when_due(
    c: &ContainerRuntime,
    policy: &str,
    is_init: bool,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    match next_start(c, policy, is_init, now) {
        NextStart::Now => plan.actions.push(Action::Start {
            container: c.name.clone(),
            attempt: c.next_attempt(),
        }),
        NextStart::At { at, .. } => plan.wake(at),
        NextStart::Never => {}
    }
}

/// What to do next for `pod`. `gone`: the API object no longer exists.
pub fn plan(pod: &Pod, rt: &PodRuntime, gone: bool, now: DateTime<Utc>) -> Plan {
    let mut plan = Plan::default();
    // Deletion wins over everything: stop, clean up, remove the object.
    if gone || pod.metadata.deletion_timestamp.is_some() {
        stop_all(
            rt,
            StopReason::PodDeleted,
            deletion_grace(pod, gone),
            now,
            &mut plan,
        );
        if !rt.any_active() {
            match rt.finalize {
                Step::Pending => plan.actions.push(Action::Finalize {
                    delete_object: !gone,
                }),
                Step::InFlight => {}
                Step::Done => plan.finished = true,
            }
        }
        return plan;
    }
    if let Some(outcome) = &rt.outcome {
        let reason = if outcome.reason == "DeadlineExceeded" {
            StopReason::DeadlineExceeded
        } else {
            StopReason::PodDeleted
        };
        stop_all(rt, reason, spec_grace(pod), now, &mut plan);
        if !rt.any_active() && rt.release == Step::Pending {
            plan.actions.push(Action::Release);
        }
        return plan;
    }
    let phase = status::phase(pod, rt, now, false);
    if phase == "Succeeded" || phase == "Failed" {
        if !rt.any_active() && rt.release == Step::Pending {
            plan.actions.push(Action::Release);
        }
        return plan;
    }
    if let (Some(start), Some(deadline)) = (rt.start_time, pod.spec.active_deadline_seconds) {
        let at = start + Duration::seconds(deadline.max(0));
        if at <= now {
            plan.actions.push(Action::Fail {
                reason: "DeadlineExceeded".into(),
                message: DEADLINE_MESSAGE.into(),
            });
            return plan;
        }
        plan.wake(at);
    }
    let policy = pod.spec.restart_policy.as_str();
    // Image changes replace the container, as the kubelet does.
    for spec in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
        if let Some(c) = rt.containers.get(&spec.name)
            && changed_image(spec, c)
        {
            plan.actions.push(Action::Stop {
                container: c.name.clone(),
                reason: StopReason::SpecChanged,
                grace: spec_grace(pod),
            });
        }
    }
    stop_all_spec_changed(rt, now, &mut plan);
    // Init containers one at a time, in order, each to success.
    for spec in &pod.spec.init_containers {
        let Some(c) = rt.containers.get(&spec.name) else {
            continue;
        };
        match &c.state {
            ContainerState::Exited { termination, .. } if termination.succeeded() => continue,
            _ => {
                start_when_due(c, policy, true, now, &mut plan);
                return plan;
            }
        }
    }
    for spec in &pod.spec.containers {
        if let Some(c) = rt.containers.get(&spec.name) {
            start_when_due(c, policy, false, now, &mut plan);
        }
    }
    plan
}

/// A running container whose spec now names another image.
fn changed_image(spec: &Container, c: &ContainerRuntime) -> bool {
    matches!(
        c.state,
        ContainerState::Running { .. } | ContainerState::Starting { .. }
    ) && !c.image.is_empty()
        && c.image != spec.image
}

/// Signals and kills containers being replaced after a spec change.
fn stop_all_spec_changed(rt: &PodRuntime, now: DateTime<Utc>, plan: &mut Plan) {
    let mut replacing = PodRuntime::default();
    for (name, c) in &rt.containers {
        if matches!(
            c.state,
            ContainerState::Stopping {
                reason: StopReason::SpecChanged,
                ..
            }
        ) {
            replacing.containers.insert(name.clone(), c.clone());
        }
    }
    stop_all(
        &replacing,
        StopReason::SpecChanged,
        Duration::zero(),
        now,
        plan,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::lifecycle::{Event, Termination};
    use crate::api::Time;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "p".into();
        p.metadata.namespace = "default".into();
        p.metadata.uid = "u1".into();
        p.spec.restart_policy = policy.into();
        p.spec.termination_grace_period_seconds = Some(30);
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: "hello:v1".into(),
            ..Default::default()
        };
        p.spec.init_containers = inits.iter().map(c).collect();
        p.spec.containers = apps.iter().map(c).collect();
        p
    }

    fn term(code: i32, finished: i64) -> Termination {
        Termination {
            exit_code: code,
            signal: 0,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: Some(t(finished - 1)),
            finished_at: t(finished),
            container_id: String::new(),
        }
    }

    fn exited(rt: &mut PodRuntime, name: &str, code: i32, finished: i64) {
        let c = rt.container_mut(name);
        let attempt = c.next_attempt();
        c.apply(Event::CreateStarted {
            attempt,
            at: t(finished - 1),
        })
        .unwrap();
        c.apply(Event::Exited {
            attempt,
            termination: term(code, finished),
        })
        .unwrap();
    }

    fn running(rt: &mut PodRuntime, name: &str) {
        let c = rt.container_mut(name);
        let attempt = c.next_attempt();
        c.image = "hello:v1".into();
        c.apply(Event::CreateStarted { attempt, at: t(0) }).unwrap();
        c.apply(Event::Spawned {
            attempt,
            pid: 100,
            at: t(0),
            grace: Duration::zero(),
        })
        .unwrap();
        c.apply(Event::Started { attempt, at: t(0) }).unwrap();
    }

    fn start(name: &str, attempt: u32) -> Action {
        Action::Start {
            container: name.into(),
            attempt,
        }
    }

    #[test]
    fn plans_table() {
        type Setup = fn(&mut Pod, &mut PodRuntime);
        type Case = (
            &'static str,
            &'static str,
            Setup,
            i64,
            Vec<Action>,
            Option<i64>,
        );
        let cases: Vec<Case> = vec![
            (
                "new pod starts its containers",
                "Always",
                |_, _| {},
                0,
                vec![start("a", 0), start("b", 0)],
                None,
            ),
            (
                "init containers run first, one at a time",
                "Always",
                |p, _| {
                    p.spec.init_containers = vec![Container {
                        name: "init".into(),
                        image: "x".into(),
                        ..Default::default()
                    }];
                },
                0,
                vec![start("init", 0)],
                None,
            ),
            (
                "app containers start after init succeeded",
                "Always",
                |p, rt| {
                    p.spec.init_containers = vec![Container {
                        name: "init".into(),
                        image: "x".into(),
                        ..Default::default()
                    }];
                    exited(rt, "init", 0, 5);
                },
                6,
                vec![start("a", 0), start("b", 0)],
                None,
            ),
            (
                "first crash restarts at once",
                "Always",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 1, 5);
                },
                5,
                vec![start("a", 1)],
                None,
            ),
            (
                "second crash waits 10s",
                "Always",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 1, 5);
                    exited(rt, "a", 1, 6);
                },
                7,
                vec![],
                Some(16),
            ),
            (
                "completed container restarts under Always",
                "Always",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 0, 5);
                },
                5,
                vec![start("a", 1)],
                None,
            ),
            (
                "completed container stays under OnFailure",
                "OnFailure",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 0, 5);
                },
                5,
                vec![],
                None,
            ),
            (
                "failed container restarts under OnFailure",
                "OnFailure",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 2, 5);
                },
                5,
                vec![start("a", 1)],
                None,
            ),
            (
                "Never leaves failures alone",
                "Never",
                |_, rt| {
                    running(rt, "b");
                    exited(rt, "a", 2, 5);
                },
                5,
                vec![],
                None,
            ),
            (
                "finished pod releases its cgroups",
                "Never",
                |_, rt| {
                    exited(rt, "a", 0, 5);
                    exited(rt, "b", 3, 5);
                },
                6,
                vec![Action::Release],
                None,
            ),
            (
                "blocked container retries when due",
                "Always",
                |_, rt| {
                    running(rt, "b");
                    let c = rt.container_mut("a");
                    c.apply(Event::CreateStarted {
                        attempt: 0,
                        at: t(0),
                    })
                    .unwrap();
                    c.apply(Event::CreateFailed {
                        attempt: 0,
                        reason: Blocker::ModuleNotFound,
                        message: "m".into(),
                        retry_at: t(4),
                    })
                    .unwrap();
                },
                2,
                vec![],
                Some(4),
            ),
            (
                "deadline fails the pod",
                "Always",
                |p, rt| {
                    p.spec.active_deadline_seconds = Some(10);
                    running(rt, "a");
                    running(rt, "b");
                },
                11,
                vec![Action::Fail {
                    reason: "DeadlineExceeded".into(),
                    message: DEADLINE_MESSAGE.into(),
                }],
                None,
            ),
            (
                "deadline not reached schedules a wake-up",
                "Always",
                |p, rt| {
                    p.spec.active_deadline_seconds = Some(10);
                    running(rt, "a");
                    running(rt, "b");
                },
                3,
                vec![],
                Some(10),
            ),
            (
                "failed pod stops its containers",
                "Always",
                |_, rt| {
                    running(rt, "a");
                    running(rt, "b");
                    rt.outcome = Some(Outcome {
                        reason: "DeadlineExceeded".into(),
                        message: String::new(),
                    });
                },
                3,
                vec![
                    Action::Stop {
                        container: "a".into(),
                        reason: StopReason::DeadlineExceeded,
                        grace: Duration::seconds(30),
                    },
                    Action::Stop {
                        container: "b".into(),
                        reason: StopReason::DeadlineExceeded,
                        grace: Duration::seconds(30),
                    },
                ],
                None,
            ),
            (
                "deleted pod signals, then kills at the deadline",
                "Always",
                |p, rt| {
                    p.metadata.deletion_timestamp = Some(Time(t(30)));
                    p.metadata.deletion_grace_period_seconds = Some(30);
                    running(rt, "a");
                    exited(rt, "b", 0, 1);
                    rt.container_mut("a")
                        .apply(Event::StopRequested {
                            reason: StopReason::PodDeleted,
                            at: t(0),
                            grace: Duration::seconds(30),
                        })
                        .unwrap();
                },
                31,
                vec![
                    Action::Signal {
                        container: "a".into(),
                        attempt: 0,
                    },
                    Action::Kill {
                        container: "a".into(),
                        attempt: 0,
                    },
                ],
                None,
            ),
            (
                "deleted pod with nothing running is finalized",
                "Always",
                |p, rt| {
                    p.metadata.deletion_timestamp = Some(Time(t(30)));
                    exited(rt, "a", 0, 1);
                },
                2,
                vec![Action::Finalize {
                    delete_object: true,
                }],
                None,
            ),
            (
                "image change replaces the container",
                "Always",
                |p, rt| {
                    running(rt, "a");
                    running(rt, "b");
                    p.spec.containers[0].image = "hello:v2".into();
                },
                3,
                vec![Action::Stop {
                    container: "a".into(),
                    reason: StopReason::SpecChanged,
                    grace: Duration::seconds(30),
                }],
                None,
            ),
        ];
        for (name, policy, setup, now, want, wake) in cases {
            let mut p = pod(policy, &[], &["a", "b"]);
            let mut rt = PodRuntime::for_pod(&p);
            rt.start_time = Some(t(0));
            setup(&mut p, &mut rt);
            for c in p.spec.init_containers.iter().chain(&p.spec.containers) {
                rt.container_mut(&c.name);
            }
            let got = plan(&p, &rt, false, t(now));
            assert_eq!(got.actions, want, "{name}");
            assert_eq!(got.wake_at, wake.map(t), "{name}");
        }
    }

    #[test]
    fn init_failure_under_never_fails_the_pod_without_starting_apps() {
        let p = pod("Never", &["init"], &["a"]);
        let mut rt = PodRuntime::for_pod(&p);
        exited(&mut rt, "init", 1, 3);
        let got = plan(&p, &rt, false, t(4));
        assert_eq!(got.actions, vec![Action::Release]);
        assert_eq!(status::phase(&p, &rt, t(4), false), "Failed");
    }

    #[test]
    fn gone_pod_is_finalized_without_deleting_the_object() {
        let p = pod("Always", &[], &["a"]);
        let mut rt = PodRuntime::for_pod(&p);
        running(&mut rt, "a");
        let got = plan(&p, &rt, true, t(1));
        assert_eq!(
            got.actions,
            vec![Action::Stop {
                container: "a".into(),
                reason: StopReason::PodDeleted,
                grace: Duration::zero(),
            }]
        );
        rt.container_mut("a")
            .apply(Event::Exited {
                attempt: 0,
                termination: term(137, 2),
            })
            .unwrap();
        let got = plan(&p, &rt, true, t(2));
        assert_eq!(
            got.actions,
            vec![Action::Finalize {
                delete_object: false
            }]
        );
        rt.finalize = Step::Done;
        assert!(plan(&p, &rt, true, t(3)).finished);
    }

    #[test]
    fn retry_delays() {
        assert_eq!(
            retry_delay(Blocker::ModuleNotFound, 1),
            Duration::seconds(1)
        );
        assert_eq!(
            retry_delay(Blocker::ModuleNotFound, 3),
            Duration::seconds(4)
        );
        assert_eq!(
            retry_delay(Blocker::ModuleNotFound, 30),
            Duration::seconds(10)
        );
        assert_eq!(
            retry_delay(Blocker::CreateContainerError, 1),
            Duration::seconds(10)
        );
        assert_eq!(retry_delay(Blocker::ErrImagePull, 40), BACKOFF_MAX);
    }
}
