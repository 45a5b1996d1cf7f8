//! The container lifecycle as an explicit state machine (pure).
//!
//! Each container of a pod is in one [`ContainerState`]; the agent moves it
//! only by applying an [`Event`] through [`ContainerRuntime::apply`], which
//! checks the move against [`TRANSITIONS`], the declared lifecycle graph:
//!
//! ```text
//!   New ─► Creating ─► Starting ─► Running ─► Exited ─► Creating (restart)
//!             │           │           │         ▲
//!             ├─► Blocked ◄┘           │         │
//!             │     └─► Creating       │         │
//!             └──────────► Stopping ◄──┘─────────┘
//! ```
//!
//! `Creating` covers everything before a sandbox process exists (image,
//! module, volumes, env, cgroups, spawn); `Blocked` is a failed creation
//! waiting to be retried (ModuleNotFound, CreateContainerConfigError, ...,
//! or a sandbox that refused the module before running it); `Starting` has
//! a sandbox process whose module has not signalled its start; `Stopping`
//! has been sent SIGTERM and is killed at a deadline. Every active state can
//! also reach `Exited` directly (the sandbox died).
//!
//! Restarts follow the kubelet's crash-loop [`Backoff`]: 10 s doubling to
//! 5 min, measured from the container's finish time, reset once a container
//! ran for 10 minutes.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

/// Kubelet's first crash-loop delay.
pub const BACKOFF_INITIAL: Duration = Duration::seconds(10);
/// Kubelet's longest crash-loop delay.
pub const BACKOFF_MAX: Duration = Duration::minutes(5);

/// Why a container could not be created; the `waiting.reason` Kubernetes
/// shows for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// The image names no module, tag or version in the module store.
    ModuleNotFound,
    /// The image is not a valid module reference.
    InvalidImageName,
    /// The module could not be downloaded or failed verification.
    ErrImagePull,
    /// A ConfigMap, Secret or key the container needs is missing.
    CreateContainerConfigError,
    /// Everything else: compile errors, cgroups, the sandbox refusing the
    /// module (a missing import), spawn failures.
    CreateContainerError,
}

impl Blocker {
    /// The reason as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocker::ModuleNotFound => "ModuleNotFound",
            Blocker::InvalidImageName => "InvalidImageName",
            Blocker::ErrImagePull => "ErrImagePull",
            Blocker::CreateContainerConfigError => "CreateContainerConfigError",
            Blocker::CreateContainerError => "CreateContainerError",
        }
    }
}

/// How a run of a container ended (`state.terminated`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    /// The signal that killed the sandbox, if one did (0 otherwise).
    pub signal: i32,
    /// Completed, Error, OOMKilled, DeadlineExceeded or ContainerStatusUnknown.
    pub reason: String,
    pub message: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub container_id: String,
}

impl Termination {
    /// Whether the run counts as a success for restart policies.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }
}

/// Why a container is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The pod is being deleted.
    PodDeleted,
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// The container's image changed and it is replaced.
    SpecChanged,
}

/// Where one container is in its life. See the module docs for the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Never created in this pod.
    New,
    /// Being prepared and spawned as run number `attempt`. `stop` records a
    /// stop asked for meanwhile: the sandbox is stopped as soon as it exists.
    Creating {
        attempt: u32,
        since: DateTime<Utc>,
        stop: Option<StopReason>,
    },
    /// Creation failed; retried at `retry_at`.
    Blocked {
        reason: Blocker,
        message: String,
        retry_at: DateTime<Utc>,
    },
    /// The sandbox process runs but the module has not started.
    Starting {
        attempt: u32,
        pid: u32,
        spawned_at: DateTime<Utc>,
    },
    /// The module runs.
    Running {
        attempt: u32,
        pid: u32,
        started_at: DateTime<Utc>,
    },
    /// Asked to stop. `signalled`: SIGTERM was sent; `killed`: the hard
    /// kill was issued; `kill_at`: when the grace period ends.
    Stopping {
        attempt: u32,
        pid: u32,
        started_at: Option<DateTime<Utc>>,
        reason: StopReason,
        kill_at: DateTime<Utc>,
        signalled: bool,
        killed: bool,
    },
    /// Finished (or never got past its sandbox's start).
    Exited {
        attempt: u32,
        termination: Termination,
    },
}

/// The name of a state, for the transition table and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    New,
    Creating,
    Blocked,
    Starting,
    Running,
    Stopping,
    Exited,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Every allowed move of the lifecycle graph; anything else is refused.
pub const TRANSITIONS: &[(StateKind, StateKind)] = {
    use StateKind::*;
    &[
        (New, Creating),
        (Blocked, Creating),
        (Exited, Creating),
        (Creating, Creating),
        (Creating, Blocked),
        (Creating, Starting),
        (Creating, Stopping),
        (Creating, Exited),
        (Starting, Running),
        (Starting, Blocked),
        (Starting, Stopping),
        (Starting, Exited),
        (Running, Stopping),
        (Running, Exited),
        (Stopping, Stopping),
        (Stopping, Exited),
    ]
};

impl ContainerState {
    pub fn kind(&self) -> StateKind {
        match self {
            ContainerState::New => StateKind::New,
            ContainerState::Creating { .. } => StateKind::Creating,
            ContainerState::Blocked { .. } => StateKind::Blocked,
            ContainerState::Starting { .. } => StateKind::Starting,
            ContainerState::Running { .. } => StateKind::Running,
            ContainerState::Stopping { .. } => StateKind::Stopping,
            ContainerState::Exited { .. } => StateKind::Exited,
        }
    }

    /// Whether a sandbox process may exist (or is about to).
    pub fn is_active(&self) -> bool {
        matches!(
            self.kind(),
            StateKind::Creating | StateKind::Starting | StateKind::Running | StateKind::Stopping
        )
    }

    /// The run number of the current or last sandbox, if any.
    pub fn attempt(&self) -> Option<u32> {
        match self {
            ContainerState::Creating { attempt, .. }
            | ContainerState::Starting { attempt, .. }
            | ContainerState::Running { attempt, .. }
            | ContainerState::Stopping { attempt, .. }
            | ContainerState::Exited { attempt, .. } => Some(*attempt),
            ContainerState::New | ContainerState::Blocked { .. } => None,
        }
    }

    /// The sandbox's pid while one exists.
    pub fn pid(&self) -> Option<u32> {
        match self {
            ContainerState::Starting { pid, .. }
            | ContainerState::Running { pid, .. }
            | ContainerState::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// What happened to a container; the inputs of the state machine. Events
/// about a sandbox carry its `attempt`, so late news of an earlier run is
/// refused instead of corrupting the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The agent begins creating run `attempt`.
    CreateStarted { attempt: u32, at: DateTime<Utc> },
    /// Creation failed; retry at `retry_at`.
    CreateFailed {
        attempt: u32,
        reason: Blocker,
        message: String,
        retry_at: DateTime<Utc>,
    },
    /// The sandbox process exists.
    Spawned {
        attempt: u32,
        pid: u32,
        at: DateTime<Utc>,
        /// Grace period to apply if a stop was asked for meanwhile.
        grace: Duration,
    },
    /// The module's entry point is running.
    Started { attempt: u32, at: DateTime<Utc> },
    /// Stop the container: SIGTERM now, hard kill after `grace`.
    StopRequested {
        reason: StopReason,
        at: DateTime<Utc>,
        grace: Duration,
    },
    /// SIGTERM was delivered.
    Signalled { attempt: u32 },
    /// The hard kill was issued.
    Killed { attempt: u32 },
    /// The sandbox is gone.
    Exited {
        attempt: u32,
        termination: Termination,
    },
}

/// An event that does not fit the container's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("container {container}: event {event} is not allowed in state {from}{detail}")]
pub struct IllegalTransition {
    pub container: String,
    pub event: &'static str,
    pub from: StateKind,
    /// `" (attempt N)"` when the event was about another run.
    pub detail: String,
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::CreateStarted { .. } => "CreateStarted",
            Event::CreateFailed { .. } => "CreateFailed",
            Event::Spawned { .. } => "Spawned",
            Event::Started { .. } => "Started",
            Event::StopRequested { .. } => "StopRequested",
            Event::Signalled { .. } => "Signalled",
            Event::Killed { .. } => "Killed",
            Event::Exited { .. } => "Exited",
        }
    }

    fn attempt(&self) -> Option<u32> {
        match self {
            Event::CreateStarted { attempt, .. }
            | Event::CreateFailed { attempt, .. }
            | Event::Spawned { attempt, .. }
            | Event::Started { attempt, .. }
            | Event::Signalled { attempt }
            | Event::Killed { attempt }
            | Event::Exited { attempt, .. } => Some(*attempt),
            Event::StopRequested { .. } => None,
        }
    }
}

/// The kubelet's per-container crash-loop backoff (client-go
/// `flowcontrol.Backoff` as the kubelet uses it). Times are the container's
/// finish times, so the delay counts from when it exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Current delay and when it was last advanced; `None` before the
    /// first restart.
    entry: Option<(Duration, DateTime<Utc>)>,
}

impl Backoff {
    /// An entry that "expired": the container ran long enough (twice the
    /// maximum delay) since the last restart for its history to be forgotten.
    fn expired(event: DateTime<Utc>, last_update: DateTime<Utc>) -> bool {
        event - last_update > BACKOFF_MAX * 2
    }

    /// When a container that finished at `finished_at` may restart: `None`
    /// means now; `Some((t, delay))` means not before `t`.
    pub fn restart_at(&self, finished_at: DateTime<Utc>) -> Option<(DateTime<Utc>, Duration)> {
        let (delay, last_update) = self.entry?;
        if Backoff::expired(finished_at, last_update) {
            return None;
        }
        Some((finished_at + delay, delay))
    }

    /// Records a restart of a container that finished at `finished_at`:
    /// the first delay is [`BACKOFF_INITIAL`], then it doubles up to
    /// [`BACKOFF_MAX`]; an expired entry starts over.
    pub fn next(&mut self, finished_at: DateTime<Utc>) {
        let delay = match self.entry {
            Some((d, last)) if !Backoff::expired(finished_at, last) => (d * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        };
        self.entry = Some((delay, finished_at));
    }

    /// The delay the next crash will wait (for messages).
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|(d, _)| d)
    }
}

/// One container's state plus what outlives a single run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub state: ContainerState,
    /// Completed restarts (Kubernetes' `restartCount`).
    pub restart_count: u32,
    /// How the previous run ended (`lastState.terminated`).
    pub last_termination: Option<Termination>,
    pub backoff: Backoff,
    /// The `image` the current or last run was created from.
    pub image: String,
    /// The module digest the current or last run used (`imageID`).
    pub image_id: String,
    /// Failed creations in a row, for the retry delay of [`Blocker`]s.
    pub create_failures: u32,
}

impl ContainerRuntime {
    pub fn new(name: &str) -> ContainerRuntime {
        ContainerRuntime {
            name: name.to_string(),
            state: ContainerState::New,
            restart_count: 0,
            last_termination: None,
            backoff: Backoff::default(),
            image: String::new(),
            image_id: String::new(),
            create_failures: 0,
        }
    }

    /// The run number the next start uses: 0 for the first, then one per
    /// restart. A start that failed before running reuses its number.
    pub fn next_attempt(&self) -> u32 {
        match &self.state {
            ContainerState::Exited {
                attempt,
                termination,
            } if termination.started_at.is_some() => attempt + 1,
            ContainerState::Exited { attempt, .. } => *attempt,
            _ => self.restart_count,
        }
    }

    /// Puts back a state recorded by an earlier agent (re-adoption after a
    /// restart). Not a transition: nothing happened to the container, the
    /// agent only learns where it is.
    pub fn restore(&mut self, state: ContainerState) {
        self.state = state;
    }

    /// Applies `event`, refusing moves outside [`TRANSITIONS`] and events
    /// about another run. On refusal the state is unchanged.
    pub fn apply(&mut self, event: Event) -> Result<(), IllegalTransition> {
        let from = self.state.kind();
        let refuse = |detail: String| IllegalTransition {
            container: self.name.clone(),
            event: event.name(),
            from,
            detail,
        };
        if let (Some(want), Some(have)) = (event.attempt(), self.state.attempt())
            && want != have
            && !matches!(event, Event::CreateStarted { .. })
        {
            return Err(refuse(format!(" (attempt {want}, current {have})")));
        }
        let next = match (&self.state, &event) {
            (
                ContainerState::New
                | ContainerState::Blocked { .. }
                | ContainerState::Exited { .. },
                Event::CreateStarted { attempt, at },
            ) => ContainerState::Creating {
                attempt: *attempt,
                since: *at,
                stop: None,
            },
            (
                ContainerState::Creating { .. } | ContainerState::Starting { .. },
                Event::CreateFailed {
                    reason,
                    message,
                    retry_at,
                    ..
                },
            ) => ContainerState::Blocked {
                reason: *reason,
                message: message.clone(),
                retry_at: *retry_at,
            },
            (
                ContainerState::Creating { attempt, stop, .. },
                Event::Spawned { pid, at, grace, .. },
            ) => match stop {
                Some(reason) => ContainerState::Stopping {
                    attempt: *attempt,
                    pid: *pid,
                    started_at: None,
                    reason: *reason,
                    kill_at: *at + *grace,
                    signalled: false,
                    killed: false,
                },
                None => ContainerState::Starting {
                    attempt: *attempt,
                    pid: *pid,
                    spawned_at: *at,
                },
            },
            (
                ContainerState::Creating { attempt, since, .. },
                Event::StopRequested { reason, .. },
            ) => ContainerState::Creating {
                attempt: *attempt,
                since: *since,
                stop: Some(*reason),
            },
            (ContainerState::Starting { attempt, pid, .. }, Event::Started { at, .. }) => {
                ContainerState::Running {
                    attempt: *attempt,
                    pid: *pid,
                    started_at: *at,
                }
            }
            (
                ContainerState::Starting { attempt, pid, .. },
                Event::StopRequested { reason, at, grace },
            ) => ContainerState::Stopping {
                attempt: *attempt,
                pid: *pid,
                started_at: None,
                reason: *reason,
                kill_at: *at + *grace,
                signalled: false,
                killed: false,
            },
            (
                ContainerState::Running {
                    attempt,
                    pid,
                    started_at,
                },
                Event::StopRequested { reason, at, grace },
            ) => ContainerState::Stopping {
                attempt: *attempt,
                pid: *pid,
                started_at: Some(*started_at),
                reason: *reason,
                kill_at: *at + *grace,
                signalled: false,
                killed: false,
            },
            (ContainerState::Stopping { .. }, Event::StopRequested { at, grace, .. }) => {
                // A second stop may shorten the grace period, never extend it.
                let mut s = self.state.clone();
                if let ContainerState::Stopping { kill_at, .. } = &mut s {
                    *kill_at = (*kill_at).min(*at + *grace);
                }
                s
            }
            (ContainerState::Stopping { .. }, Event::Signalled { .. }) => {
                let mut s = self.state.clone();
                if let ContainerState::Stopping { signalled, .. } = &mut s {
                    *signalled = true;
                }
                s
            }
            (ContainerState::Stopping { .. }, Event::Killed { .. }) => {
                let mut s = self.state.clone();
                if let ContainerState::Stopping { killed, .. } = &mut s {
                    *killed = true;
                }
                s
            }
            (
                ContainerState::Creating { attempt, .. }
                | ContainerState::Starting { attempt, .. }
                | ContainerState::Running { attempt, .. }
                | ContainerState::Stopping { attempt, .. },
                Event::Exited { termination, .. },
            ) => ContainerState::Exited {
                attempt: *attempt,
                termination: termination.clone(),
            },
            _ => return Err(refuse(String::new())),
        };
        let to = next.kind();
        if !TRANSITIONS.contains(&(from, to)) {
            return Err(refuse(format!(" (would move to {to})")));
        }
        // Bookkeeping that spans runs.
        match &event {
            Event::CreateStarted { attempt, .. } => {
                if let ContainerState::Exited { termination, .. } = &self.state {
                    self.backoff.next(termination.finished_at);
                    self.last_termination = Some(termination.clone());
                }
                self.restart_count = self.restart_count.max(*attempt);
            }
            Event::CreateFailed { .. } => self.create_failures += 1,
            Event::Started { .. } => self.create_failures = 0,
            _ => {}
        }
        self.state = next;
        Ok(())
    }
}

/// Formats a duration as Go's `time.Duration.String` does for whole
/// seconds (`10s`, `1m20s`, `5m0s`), as kubelet messages show them.
pub fn go_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn term(exit_code: i32, started: Option<i64>, finished: i64) -> Termination {
        Termination {
            exit_code,
            signal: 0,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: started.map(t),
            finished_at: t(finished),
            container_id: String::new(),
        }
    }

    fn state(kind: StateKind) -> ContainerState {
        match kind {
            StateKind::New => ContainerState::New,
            StateKind::Creating => ContainerState::Creating {
                attempt: 0,
                since: t(0),
                stop: None,
            },
            StateKind::Blocked => ContainerState::Blocked {
                reason: Blocker::ModuleNotFound,
                message: "m".into(),
                retry_at: t(10),
            },
            StateKind::Starting => ContainerState::Starting {
                attempt: 0,
                pid: 7,
                spawned_at: t(0),
            },
            StateKind::Running => ContainerState::Running {
                attempt: 0,
                pid: 7,
                started_at: t(1),
            },
            StateKind::Stopping => ContainerState::Stopping {
                attempt: 0,
                pid: 7,
                started_at: Some(t(1)),
                reason: StopReason::PodDeleted,
                kill_at: t(31),
                signalled: false,
                killed: false,
            },
            StateKind::Exited => ContainerState::Exited {
                attempt: 0,
                termination: term(1, Some(1), 2),
            },
        }
    }

    const KINDS: [StateKind; 7] = [
        StateKind::New,
        StateKind::Creating,
        StateKind::Blocked,
        StateKind::Starting,
        StateKind::Running,
        StateKind::Stopping,
        StateKind::Exited,
    ];

    fn events() -> Vec<Event> {
        vec![
            Event::CreateStarted {
                attempt: 0,
                at: t(5),
            },
            Event::CreateFailed {
                attempt: 0,
                reason: Blocker::CreateContainerConfigError,
                message: "configmap \"x\" not found".into(),
                retry_at: t(15),
            },
            Event::Spawned {
                attempt: 0,
                pid: 9,
                at: t(5),
                grace: Duration::seconds(30),
            },
            Event::Started {
                attempt: 0,
                at: t(6),
            },
            Event::StopRequested {
                reason: StopReason::PodDeleted,
                at: t(7),
                grace: Duration::seconds(30),
            },
            Event::Signalled { attempt: 0 },
            Event::Killed { attempt: 0 },
            Event::Exited {
                attempt: 0,
                termination: term(0, Some(6), 8),
            },
        ]
    }

    /// Every (state, event) pair either moves along a declared edge or is
    /// refused leaving the state untouched.
    #[test]
    fn every_move_is_declared() {
        let mut moves = 0;
        for kind in KINDS {
            for event in events() {
                let mut c = ContainerRuntime::new("app");
                c.state = state(kind);
                let before = c.clone();
                match c.apply(event.clone()) {
                    Ok(()) => {
                        moves += 1;
                        assert!(
                            TRANSITIONS.contains(&(kind, c.state.kind())),
                            "{kind} --{event:?}--> {}",
                            c.state.kind()
                        );
                    }
                    Err(e) => {
                        assert_eq!(c, before, "refused {event:?} changed the state");
                        assert_eq!(e.from, kind);
                    }
                }
            }
        }
        assert!(moves >= TRANSITIONS.len() - 1, "{moves}");
    }

    #[test]
    fn transitions_table() {
        use StateKind as K;
        let grace = Duration::seconds(30);
        // (from, event, expected state after)
        let cases: Vec<(K, Event, Result<ContainerState, ()>)> = vec![
            (
                K::New,
                Event::CreateStarted {
                    attempt: 0,
                    at: t(1),
                },
                Ok(ContainerState::Creating {
                    attempt: 0,
                    since: t(1),
                    stop: None,
                }),
            ),
            (
                K::Creating,
                Event::Spawned {
                    attempt: 0,
                    pid: 42,
                    at: t(2),
                    grace,
                },
                Ok(ContainerState::Starting {
                    attempt: 0,
                    pid: 42,
                    spawned_at: t(2),
                }),
            ),
            (
                K::Starting,
                Event::Started {
                    attempt: 0,
                    at: t(3),
                },
                Ok(ContainerState::Running {
                    attempt: 0,
                    pid: 7,
                    started_at: t(3),
                }),
            ),
            (
                K::Running,
                Event::StopRequested {
                    reason: StopReason::DeadlineExceeded,
                    at: t(10),
                    grace,
                },
                Ok(ContainerState::Stopping {
                    attempt: 0,
                    pid: 7,
                    started_at: Some(t(1)),
                    reason: StopReason::DeadlineExceeded,
                    kill_at: t(40),
                    signalled: false,
                    killed: false,
                }),
            ),
            (
                K::Stopping,
                Event::StopRequested {
                    reason: StopReason::PodDeleted,
                    at: t(2),
                    grace: Duration::zero(),
                },
                Ok(ContainerState::Stopping {
                    attempt: 0,
                    pid: 7,
                    started_at: Some(t(1)),
                    reason: StopReason::PodDeleted,
                    kill_at: t(2),
                    signalled: false,
                    killed: false,
                }),
            ),
            // Stale news of another run is refused.
            (
                K::Running,
                Event::Exited {
                    attempt: 3,
                    termination: term(0, None, 1),
                },
                Err(()),
            ),
            (
                K::New,
                Event::Started {
                    attempt: 0,
                    at: t(1),
                },
                Err(()),
            ),
            (
                K::Exited,
                Event::StopRequested {
                    reason: StopReason::PodDeleted,
                    at: t(1),
                    grace,
                },
                Err(()),
            ),
        ];
        for (from, event, want) in cases {
            let mut c = ContainerRuntime::new("app");
            c.state = state(from);
            let got = c.apply(event.clone()).map(|()| c.state.clone());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{from} {event:?}"),
                (Err(_), Err(())) => {}
                (g, w) => panic!("{from} {event:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn stop_during_creation_applies_on_spawn() {
        let mut c = ContainerRuntime::new("app");
        c.apply(Event::CreateStarted {
            attempt: 0,
            at: t(0),
        })
        .unwrap();
        c.apply(Event::StopRequested {
            reason: StopReason::PodDeleted,
            at: t(1),
            grace: Duration::seconds(5),
        })
        .unwrap();
        c.apply(Event::Spawned {
            attempt: 0,
            pid: 5,
            at: t(2),
            grace: Duration::seconds(5),
        })
        .unwrap();
        assert!(matches!(
            c.state,
            ContainerState::Stopping {
                pid: 5,
                kill_at,
                signalled: false,
                ..
            } if kill_at == t(7)
        ));
    }

    #[test]
    fn restarts_count_and_keep_the_last_termination() {
        let mut c = ContainerRuntime::new("app");
        let run = |c: &mut ContainerRuntime, attempt: u32, start: i64, end: i64, code: i32| {
            c.apply(Event::CreateStarted {
                attempt,
                at: t(start),
            })
            .unwrap();
            c.apply(Event::Spawned {
                attempt,
                pid: 1,
                at: t(start),
                grace: Duration::zero(),
            })
            .unwrap();
            c.apply(Event::Started {
                attempt,
                at: t(start),
            })
            .unwrap();
            c.apply(Event::Exited {
                attempt,
                termination: term(code, Some(start), end),
            })
            .unwrap();
        };
        run(&mut c, 0, 0, 1, 3);
        assert_eq!(c.restart_count, 0);
        assert_eq!(c.next_attempt(), 1);
        run(&mut c, 1, 1, 2, 3);
        assert_eq!(c.restart_count, 1);
        assert_eq!(c.last_termination.as_ref().unwrap().finished_at, t(1));
        assert_eq!(c.next_attempt(), 2);
        // A run that failed before its module started reuses its number.
        c.apply(Event::CreateStarted {
            attempt: 2,
            at: t(3),
        })
        .unwrap();
        c.apply(Event::Exited {
            attempt: 2,
            termination: term(128, None, 3),
        })
        .unwrap();
        assert_eq!(c.next_attempt(), 2);
        assert_eq!(c.restart_count, 2);
    }

    #[test]
    fn backoff_follows_the_kubelet() {
        let mut b = Backoff::default();
        // First crash: restart at once.
        assert_eq!(b.restart_at(t(0)), None);
        b.next(t(0));
        // Then 10 s, 20 s, 40 s, ... from each finish time, capped at 5 min.
        let mut finished = 1;
        for want in [10, 20, 40, 80, 160, 300, 300] {
            let (at, delay) = b.restart_at(t(finished)).unwrap();
            assert_eq!(delay, Duration::seconds(want));
            assert_eq!(at, t(finished + want));
            b.next(t(finished + want));
            finished += want + 1;
        }
        // A run of more than 10 minutes forgets the history.
        let last = finished;
        assert_eq!(b.restart_at(t(last + 11 * 60)), None);
        b.next(t(last + 11 * 60));
        assert_eq!(b.current(), Some(BACKOFF_INITIAL));
    }

    #[test]
    fn go_durations() {
        for (secs, want) in [
            (0, "0s"),
            (10, "10s"),
            (80, "1m20s"),
            (300, "5m0s"),
            (3725, "1h2m5s"),
        ] {
            assert_eq!(go_duration(Duration::seconds(secs)), want);
        }
    }
}
