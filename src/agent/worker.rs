//! One task per pod (the kubelet's pod worker): it owns the pod's
//! [`PodRuntime`], receives news (a new version of the pod, sandbox
//! events, module uploads), asks [`plan`] what to do, applies each action's
//! state change and performs its side effect, and hands the resulting
//! status to the status writer. Long operations (creating a container,
//! waiting for a sandbox) run in child tasks that report back by message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tokio::sync::{OnceCell, mpsc};
use tokio::task::JoinSet;

use super::Ctx;
use super::containers::{self, SpawnRequest, container_limits};
use super::env::{self, EnvSources};
use super::index::PodSummary;
use super::lifecycle::{Blocker, ContainerState, Event, Termination};
use super::plan::{self, Action, Outcome, PodRuntime, Step, retry_delay};
use super::process::{self, ContainerCheckpoint, ExitStatus, PodCheckpoint};
use super::status::{self, container_id};
use super::volumes::{self, VolumeError};
use crate::api::core::{ConfigMap, Container, Pod, PodStatus, Secret};
use crate::cgroup::Limits;
use crate::sandbox::{StartStatus, TerminationReason, TerminationRecord};

/// News for a pod worker.
pub enum Msg {
    /// The pod as the API now has it.
    Pod(Arc<Pod>),
    /// The API object is gone.
    Gone,
    /// Module objects changed: retry containers waiting for one.
    ModulesChanged,
    /// A container's creation failed before or in its sandbox.
    CreateFailed {
        container: String,
        attempt: u32,
        reason: Blocker,
        message: String,
    },
    /// A sandbox process exists.
    Spawned {
        container: String,
        attempt: u32,
        pid: u32,
        pidfd: Arc<OwnedFd>,
        at: DateTime<Utc>,
        /// The module digest it runs (`imageID`).
        image_id: String,
    },
    /// Its module started.
    Started {
        container: String,
        attempt: u32,
        at: DateTime<Utc>,
    },
    /// The sandbox is gone; how it ended.
    SandboxExited {
        container: String,
        attempt: u32,
        record: Option<TerminationRecord>,
        exit: ExitStatus,
        oom_kills: u64,
        at: DateTime<Utc>,
    },
    /// Release or finalization finished.
    StepDone { finalize: bool },
}

/// State found on disk for a pod when the agent started.
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    pub pod: Option<PodCheckpoint>,
    /// Each container's latest run, by container name.
    pub containers: Vec<(String, ContainerCheckpoint)>,
}

/// A running sandbox the worker can signal.
struct Sandbox {
    attempt: u32,
    pidfd: Arc<OwnedFd>,
}

/// The per-pod worker.
pub struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    pod: Arc<Pod>,
    gone: bool,
    rt: PodRuntime,
    rx: mpsc::UnboundedReceiver<Msg>,
    tx: mpsc::UnboundedSender<Msg>,
    tasks: JoinSet<()>,
    sandboxes: HashMap<String, Sandbox>,
    /// The pod's cgroup exists.
    pod_cgroup: bool,
    /// Container cgroups that exist, with the limits they were given.
    container_cgroups: HashMap<String, Limits>,
    /// Volumes are written once per pod; concurrent starts share the work.
    volumes: Arc<OnceCell<()>>,
    /// OOM kills seen per container cgroup, to tell new ones.
    oom_seen: HashMap<String, u64>,
    last_status: PodStatus,
    last_json: Value,
    /// The API holds a terminal phase this agent did not produce (found at
    /// start-up): it is never rewritten.
    frozen: bool,
}

fn api_termination(t: &crate::api::core::ContainerStateTerminated) -> Termination {
    Termination {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone(),
        message: t.message.clone(),
        started_at: t.started_at.map(|s| s.0),
        finished_at: t.finished_at.map(|s| s.0).unwrap_or_else(Utc::now),
        container_id: t.container_id.clone(),
    }
}

impl Worker {
    /// A worker for `pod`, resuming what `adopted` recorded.
    pub fn new(
        ctx: Arc<Ctx>,
        pod: Arc<Pod>,
        adopted: Option<Adopted>,
        admit: Result<(), String>,
    ) -> (Worker, mpsc::UnboundedSender<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let uid = pod.metadata.uid.clone();
        let mut rt = PodRuntime::for_pod(&pod);
        let frozen = pod.is_terminal();
        // Counts and last terminations carry over from what the API shows.
        for s in pod
            .status
            .init_container_statuses
            .iter()
            .chain(&pod.status.container_statuses)
        {
            let c = rt.container_mut(&s.name);
            c.restart_count = u32::try_from(s.restart_count).unwrap_or(0);
            c.last_termination = s.last_state.terminated.as_ref().map(api_termination);
            c.image_id = s.image_id.clone();
        }
        rt.start_time = pod.status.start_time.map(|t| t.0);
        let mut w = Worker {
            ctx,
            uid,
            pod,
            gone: false,
            rt,
            rx,
            tx: tx.clone(),
            tasks: JoinSet::new(),
            sandboxes: HashMap::new(),
            pod_cgroup: false,
            container_cgroups: HashMap::new(),
            volumes: Arc::new(OnceCell::new()),
            oom_seen: HashMap::new(),
            last_status: PodStatus::default(),
            last_json: Value::Null,
            frozen,
        };
        w.last_status = w.pod.status.clone();
        if let Some(a) = adopted {
            w.adopt(a);
        }
        if w.rt.start_time.is_none() && !frozen {
            w.rt.start_time = Some(Utc::now());
        }
        if let Err(message) = admit {
            w.rt.outcome = Some(Outcome {
                reason: "OutOfpods".into(),
                message,
            });
        }
        (w, tx)
    }

    /// Resumes sandboxes that outlived the previous agent.
    fn adopt(&mut self, a: Adopted) {
        if let Some(p) = &a.pod {
            self.rt.start_time = Some(p.start_time);
            self.pod_cgroup = true;
        }
        let boot = self.ctx.boot_id.clone();
        for (name, cp) in a.containers {
            if !self.rt.containers.contains_key(&name) {
                continue;
            }
            let id = container_id(&self.uid, &name, cp.attempt);
            let c = self.rt.container_mut(&name);
            c.restart_count = c.restart_count.max(cp.restart_count);
            c.image = cp.image.clone();
            c.image_id = cp.image_id.clone();
            match cp.process.reopen(&boot) {
                Some(fd) => {
                    let started_at = cp.started_at.unwrap_or(cp.spawned_at);
                    c.restore(ContainerState::Running {
                        attempt: cp.attempt,
                        pid: cp.process.pid,
                        started_at,
                    });
                    self.rt.sandbox_ready = true;
                    let fd = Arc::new(fd);
                    self.sandboxes.insert(
                        name.clone(),
                        Sandbox {
                            attempt: cp.attempt,
                            pidfd: fd.clone(),
                        },
                    );
                    tracing::info!(pod = %self.key(), container = %name, pid = cp.process.pid, "re-adopted running sandbox");
                    let waiter = Waiter {
                        ctx: self.ctx.clone(),
                        tx: self.tx.clone(),
                        uid: self.uid.clone(),
                        container: name.clone(),
                        attempt: cp.attempt,
                        pid: cp.process.pid,
                        record_path: cp.record_path.clone(),
                    };
                    self.tasks.spawn(async move { waiter.wait(fd).await });
                }
                None => {
                    let record = TerminationRecord::read(&cp.record_path).ok();
                    let t = containers::termination(
                        record.as_ref(),
                        ExitStatus::Unknown,
                        false,
                        None,
                        cp.started_at,
                        id,
                        Utc::now(),
                    );
                    c.restore(ContainerState::Exited {
                        attempt: cp.attempt,
                        termination: t,
                    });
                }
            }
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.pod.metadata.namespace, self.pod.metadata.name)
    }

    /// Runs until the pod is gone and cleaned up.
    pub async fn run(mut self) {
        let mut modules = self.ctx.modules.subscribe();
        modules.borrow_and_update();
        loop {
            let wake_at = self.sync();
            if self.rt.finalize == Step::Done {
                break;
            }
            let sleep = async {
                match wake_at {
                    Some(at) => {
                        let d = (at - Utc::now()).to_std().unwrap_or_default();
                        tokio::time::sleep(d).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => break,
                },
                changed = modules.changed() => {
                    if changed.is_ok() {
                        self.handle(Msg::ModulesChanged);
                    }
                }
                _ = sleep => {}
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
            // Take everything that queued up meanwhile before planning.
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
        }
        self.ctx.index.remove(&self.uid);
        self.ctx.status.forget(&self.uid);
        self.tasks.shutdown().await;
    }

    /// Plans and acts until nothing changes; publishes the status;
    /// returns when to plan again.
    fn sync(&mut self) -> Option<DateTime<Utc>> {
        let mut wake = None;
        for _ in 0..8 {
            let now = Utc::now();
            let p = plan::plan(&self.pod, &self.rt, self.gone, now);
            wake = p.wake_at;
            if p.actions.is_empty() {
                break;
            }
            for action in p.actions {
                self.act(action, now);
            }
        }
        self.publish();
        wake
    }

    fn handle(&mut self, msg: Msg) {
        let now = Utc::now();
        match msg {
            Msg::Pod(pod) => {
                if pod.metadata.uid == self.uid {
                    self.pod = pod;
                }
            }
            Msg::Gone => self.gone = true,
            Msg::ModulesChanged => {
                for c in self.rt.containers.values_mut() {
                    if let ContainerState::Blocked {
                        reason: Blocker::ModuleNotFound | Blocker::InvalidImageName,
                        retry_at,
                        ..
                    } = &mut c.state
                    {
                        *retry_at = now;
                    }
                }
            }
            Msg::CreateFailed {
                container,
                attempt,
                reason,
                message,
            } => {
                let c = self.rt.container_mut(&container);
                let retry_at = now + retry_delay(reason, c.create_failures + 1);
                tracing::debug!(pod = %self.key(), %container, reason = reason.as_str(), %message, "container not created");
                self.apply(
                    &container,
                    Event::CreateFailed {
                        attempt,
                        reason,
                        message,
                        retry_at,
                    },
                );
                self.sandboxes.remove(&container);
            }
            Msg::Spawned {
                container,
                attempt,
                pid,
                pidfd,
                at,
                image_id,
            } => {
                self.rt.container_mut(&container).image_id = image_id;
                self.sandboxes
                    .insert(container.clone(), Sandbox { attempt, pidfd });
                self.rt.sandbox_ready = true;
                self.pod_cgroup = true;
                let grace = self.grace();
                self.apply(
                    &container,
                    Event::Spawned {
                        attempt,
                        pid,
                        at,
                        grace,
                    },
                );
            }
            Msg::Started {
                container,
                attempt,
                at,
            } => self.apply(&container, Event::Started { attempt, at }),
            Msg::SandboxExited {
                container,
                attempt,
                record,
                exit,
                oom_kills,
                at,
            } => {
                let seen = self
                    .oom_seen
                    .insert(container.clone(), oom_kills)
                    .unwrap_or(0);
                if self.rt.container_mut(&container).state.attempt() != Some(attempt) {
                    return;
                }
                // A sandbox that refused the module never ran it: a
                // creation failure, retried, not a crash.
                if let Some(r) = &record
                    && !r.module_started
                    && r.reason == TerminationReason::StartError
                {
                    let message = r.message.clone();
                    self.handle(Msg::CreateFailed {
                        container,
                        attempt,
                        reason: Blocker::CreateContainerError,
                        message,
                    });
                    return;
                }
                let (stopped, started_at) = match &self.rt.container_mut(&container).state {
                    ContainerState::Stopping {
                        reason, started_at, ..
                    } => (Some(*reason), *started_at),
                    ContainerState::Running { started_at, .. } => (None, Some(*started_at)),
                    _ => (None, None),
                };
                let termination = containers::termination(
                    record.as_ref(),
                    exit,
                    oom_kills > seen,
                    stopped,
                    started_at,
                    container_id(&self.uid, &container, attempt),
                    at,
                );
                tracing::debug!(pod = %self.key(), %container, exit_code = termination.exit_code, reason = %termination.reason, "container exited");
                self.sandboxes.remove(&container);
                self.apply(
                    &container,
                    Event::Exited {
                        attempt,
                        termination,
                    },
                );
            }
            Msg::StepDone { finalize } => {
                if finalize {
                    self.rt.finalize = Step::Done;
                } else {
                    self.rt.release = Step::Done;
                }
                self.rt.sandbox_ready = false;
                self.pod_cgroup = false;
                self.container_cgroups.clear();
            }
        }
    }

    fn apply(&mut self, container: &str, event: Event) {
        if let Err(e) = self.rt.container_mut(container).apply(event) {
            tracing::debug!(pod = %self.key(), error = %e, "ignored a stale container event");
        }
    }

    /// Grace period for stops that happen while a container is created.
    fn grace(&self) -> Duration {
        let secs = if self.pod.metadata.deletion_timestamp.is_some() {
            self.pod
                .metadata
                .deletion_grace_period_seconds
                .or(self.pod.spec.termination_grace_period_seconds)
        } else {
            self.pod.spec.termination_grace_period_seconds
        };
        if self.gone {
            return Duration::zero();
        }
        Duration::seconds(secs.unwrap_or(30).max(0))
    }

    fn act(&mut self, action: Action, now: DateTime<Utc>) {
        match action {
            Action::Start { container, attempt } => {
                let Some(spec) = self.container_spec(&container).cloned() else {
                    return;
                };
                let c = self.rt.container_mut(&container);
                c.image = spec.image.clone();
                let restart_count = c.restart_count.max(attempt);
                self.apply(&container, Event::CreateStarted { attempt, at: now });
                let limits = container_limits(&spec, self.ctx.cgroups.pids_limit);
                let create_container_cgroup =
                    self.container_cgroups.get(&container) != Some(&limits);
                self.container_cgroups.insert(container.clone(), limits);
                let pod_checkpoint = (!self.pod_cgroup).then(|| PodCheckpoint {
                    namespace: self.pod.metadata.namespace.clone(),
                    name: self.pod.metadata.name.clone(),
                    uid: self.uid.clone(),
                    start_time: self.rt.start_time.unwrap_or(now),
                });
                self.pod_cgroup = true;
                let starter = Starter {
                    ctx: self.ctx.clone(),
                    tx: self.tx.clone(),
                    pod: self.pod.clone(),
                    container: spec,
                    attempt,
                    restart_count,
                    limits,
                    create_container_cgroup,
                    pod_checkpoint,
                    volumes: self.volumes.clone(),
                };
                self.tasks.spawn(starter.run());
            }
            Action::Stop {
                container,
                reason,
                grace,
            } => {
                self.apply(
                    &container,
                    Event::StopRequested {
                        reason,
                        at: now,
                        grace,
                    },
                );
            }
            Action::Signal { container, attempt } => {
                if let Some(s) = self.sandboxes.get(&container)
                    && s.attempt == attempt
                    && let Err(e) = process::pidfd_signal(&s.pidfd, libc::SIGTERM)
                {
                    tracing::warn!(pod = %self.key(), %container, error = %e, "cannot signal sandbox");
                }
                self.apply(&container, Event::Signalled { attempt });
            }
            Action::Kill { container, attempt } => {
                self.apply(&container, Event::Killed { attempt });
                let ctx = self.ctx.clone();
                let uid = self.uid.clone();
                let pidfd = self.sandboxes.get(&container).map(|s| s.pidfd.clone());
                self.tasks.spawn(async move {
                    if let Some(fd) = &pidfd {
                        let _ = process::pidfd_signal(fd, libc::SIGKILL);
                    }
                    let _ = tokio::task::spawn_blocking(move || {
                        if let (Ok(mgr), Ok(cg)) =
                            (ctx.cgroups.manager(), ctx.cgroups.container(&uid, &container))
                            && let Err(e) = mgr.kill_all(&cg)
                        {
                            tracing::warn!(%uid, %container, error = %e, "cannot kill the container's cgroup");
                        }
                    })
                    .await;
                });
            }
            Action::Fail { reason, message } => {
                tracing::info!(pod = %self.key(), %reason, "pod failed");
                self.rt.outcome = Some(Outcome { reason, message });
            }
            Action::Release => {
                self.rt.release = Step::InFlight;
                let ctx = self.ctx.clone();
                let uid = self.uid.clone();
                let tx = self.tx.clone();
                self.tasks.spawn(async move {
                    let _ = tokio::task::spawn_blocking(move || release_cgroups(&ctx, &uid)).await;
                    let _ = tx.send(Msg::StepDone { finalize: false });
                });
            }
            Action::Finalize { delete_object } => {
                self.rt.finalize = Step::InFlight;
                let ctx = self.ctx.clone();
                let uid = self.uid.clone();
                let tx = self.tx.clone();
                let (ns, name) = (
                    self.pod.metadata.namespace.clone(),
                    self.pod.metadata.name.clone(),
                );
                self.tasks.spawn(async move {
                    let c = ctx.clone();
                    let u = uid.clone();
                    let _ = tokio::task::spawn_blocking(move || discard_local(&c, &u)).await;
                    if delete_object {
                        delete_pod(&ctx, &ns, &name, &uid).await;
                    }
                    let _ = tx.send(Msg::StepDone { finalize: true });
                });
            }
        }
    }

    fn container_spec(&self, name: &str) -> Option<&Container> {
        self.pod
            .spec
            .init_containers
            .iter()
            .chain(&self.pod.spec.containers)
            .find(|c| c.name == name)
    }

    /// Hands the status to the writer (unless frozen) and the index.
    fn publish(&mut self) {
        let now = Utc::now();
        let status = if self.frozen {
            self.pod.status.clone()
        } else {
            status::pod_status(
                &self.pod,
                &self.rt,
                &self.last_status,
                &self.ctx.cfg.node_ip,
                now,
            )
        };
        if !self.frozen && !self.gone {
            match serde_json::to_value(&status) {
                Ok(v) if v != self.last_json => {
                    // Progress that a start is about to supersede may wait.
                    let starting = self.rt.containers.values().any(|c| {
                        matches!(
                            c.state,
                            ContainerState::Creating { .. } | ContainerState::Starting { .. }
                        )
                    });
                    let delay = if starting {
                        self.ctx.cfg.status_coalesce
                    } else {
                        std::time::Duration::ZERO
                    };
                    self.ctx.status.set(&self.uid, v.clone(), delay);
                    self.last_json = v;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(pod = %self.key(), error = %e, "cannot encode status"),
            }
        }
        self.ctx.index.publish(PodSummary {
            uid: self.uid.clone(),
            namespace: self.pod.metadata.namespace.clone(),
            name: self.pod.metadata.name.clone(),
            created: self.pod.metadata.creation_timestamp,
            labels: self.pod.metadata.labels.clone(),
            containers: self
                .pod
                .spec
                .init_containers
                .iter()
                .chain(&self.pod.spec.containers)
                .map(|c| c.name.clone())
                .collect(),
            status: status.clone(),
            active: self.rt.sandbox_ready,
        });
        self.last_status = status;
    }
}

/// Removes the pod's cgroups (killing what is left in them).
fn release_cgroups(ctx: &Ctx, uid: &str) {
    if let (Ok(mgr), Ok(cg)) = (ctx.cgroups.manager(), ctx.cgroups.pod(uid))
        && let Err(e) = mgr.remove(&cg)
    {
        tracing::warn!(%uid, error = %e, "cannot remove the pod's cgroup");
    }
}

/// Removes everything this node holds of a pod that is done or gone: its
/// cgroups (killing whatever still runs in them), its files and its
/// checkpoints.
pub(super) fn discard_local(ctx: &Ctx, uid: &str) {
    release_cgroups(ctx, uid);
    if let Err(e) = ctx.layout.remove_pod(uid) {
        tracing::warn!(%uid, error = %e, "cannot remove the pod's files");
    }
    if let Err(e) = ctx.journal.forget(uid) {
        tracing::warn!(%uid, error = %e, "cannot drop the pod's checkpoints");
    }
}

/// Deletes the API object now that nothing of the pod runs: grace period
/// 0 and a uid precondition, so a new pod of the same name is never hit.
async fn delete_pod(ctx: &Ctx, ns: &str, name: &str, uid: &str) {
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let opts = serde_json::json!({
        "apiVersion": "v1", "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": uid},
    });
    match ctx.client.delete(&path, &opts).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() || e.is_conflict() => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot delete pod"),
    }
}

/// Creates and starts one run of a container, then waits for it.
struct Starter {
    ctx: Arc<Ctx>,
    tx: mpsc::UnboundedSender<Msg>,
    pod: Arc<Pod>,
    container: Container,
    attempt: u32,
    restart_count: u32,
    limits: Limits,
    create_container_cgroup: bool,
    pod_checkpoint: Option<PodCheckpoint>,
    volumes: Arc<OnceCell<()>>,
}

impl Starter {
    fn fail(&self, reason: Blocker, message: String) {
        let _ = self.tx.send(Msg::CreateFailed {
            container: self.container.name.clone(),
            attempt: self.attempt,
            reason,
            message,
        });
    }

    async fn run(self) {
        let t0 = std::time::Instant::now();
        let ctx = self.ctx.clone();
        ctx.modules.wait_synced().await;
        let digest = match ctx.modules.resolve(&self.container.image) {
            Ok(d) => d,
            Err(e) => return self.fail(e.blocker(), e.to_string()),
        };
        let ready = match ctx.modules.ensure(&digest).await {
            Ok(r) => r,
            Err(e) => return self.fail(e.blocker(), e.to_string()),
        };
        let t_module = t0.elapsed();
        let sources = match self.sources().await {
            Ok(s) => s,
            Err(message) => return self.fail(Blocker::CreateContainerError, message),
        };
        let env = match env::container_env(&self.pod, &self.container, &sources) {
            Ok(e) => e,
            Err(e) => return self.fail(Blocker::CreateContainerConfigError, e.message),
        };
        let uid = self.pod.metadata.uid.clone();
        let vol_dir = ctx.layout.volumes_dir(&uid);
        if !self.pod.spec.volumes.is_empty() {
            let pod = self.pod.clone();
            let dir = vol_dir.clone();
            let prepared = self
                .volumes
                .get_or_try_init(|| async move {
                    tokio::task::spawn_blocking(move || volumes::prepare(&pod, &dir, &sources))
                        .await
                        .map_err(|e| VolumeError::Unsupported(e.to_string()))?
                })
                .await;
            if let Err(e) = prepared {
                let reason = match e {
                    VolumeError::Missing(_) => Blocker::CreateContainerConfigError,
                    _ => Blocker::CreateContainerError,
                };
                return self.fail(reason, e.to_string());
            }
        }
        let preopens = match volumes::preopens(&self.pod, &self.container, &vol_dir) {
            Ok(p) => p,
            Err(e) => return self.fail(Blocker::CreateContainerError, e.to_string()),
        };
        let args = env::container_argv(&self.container, &env);
        let permit = match ctx.spawn_slots.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                // Queued behind other starts: its "being created" status
                // waits with it (see status_writer).
                let _hold = ctx.status.hold(&uid, ctx.cfg.status_coalesce);
                ctx.spawn_slots.acquire().await
            }
        };
        let t_wait = t0.elapsed();
        let spawned = {
            let ctx = ctx.clone();
            let pod = self.pod.clone();
            let container = self.container.clone();
            let (attempt, restart_count, limits) = (self.attempt, self.restart_count, self.limits);
            let create_container_cgroup = self.create_container_cgroup;
            let pod_checkpoint = self.pod_checkpoint.clone();
            let ready = ready.clone();
            tokio::task::spawn_blocking(move || {
                containers::spawn(
                    &ctx.layout,
                    &ctx.journal,
                    &ctx.cgroups,
                    &ctx.sandboxes,
                    &ctx.boot_id,
                    SpawnRequest {
                        namespace: &pod.metadata.namespace,
                        pod_name: &pod.metadata.name,
                        uid: &pod.metadata.uid,
                        container: &container,
                        attempt,
                        restart_count,
                        image_id: &ready.digest,
                        module_path: &ready.wasm_path,
                        artifact: &ready.artifact,
                        args,
                        env: env.into_vec(),
                        preopens,
                        limits,
                        create_pod_cgroup: pod_checkpoint.is_some(),
                        create_container_cgroup,
                        log_rotation: ctx.cfg.log_rotation,
                        pod_checkpoint,
                    },
                )
            })
            .await
        };
        drop(permit);
        let spawned = match spawned {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.fail(Blocker::CreateContainerError, e.to_string()),
            Err(e) => return self.fail(Blocker::CreateContainerError, e.to_string()),
        };
        let t_spawn = t0.elapsed();
        let name = self.container.name.clone();
        let pidfd = Arc::new(spawned.pidfd);
        let _ = self.tx.send(Msg::Spawned {
            container: name.clone(),
            attempt: self.attempt,
            pid: spawned.pid,
            pidfd: pidfd.clone(),
            at: spawned.at,
            image_id: ready.digest.clone(),
        });
        let waiter = Waiter {
            ctx: ctx.clone(),
            tx: self.tx.clone(),
            uid: uid.clone(),
            container: name.clone(),
            attempt: self.attempt,
            pid: spawned.pid,
            record_path: spawned.checkpoint.record_path.clone(),
        };
        match spawned.start.wait().await {
            Ok(StartStatus::Started) => {
                let at = Utc::now();
                let _ = self.tx.send(Msg::Started {
                    container: name.clone(),
                    attempt: self.attempt,
                    at,
                });
                tracing::debug!(
                    pod = %format!("{}/{}", self.pod.metadata.namespace, self.pod.metadata.name),
                    container = %name,
                    module_us = t_module.as_micros() as u64,
                    prepare_us = (t_wait - t_module).as_micros() as u64,
                    spawn_us = (t_spawn - t_wait).as_micros() as u64,
                    start_us = (t0.elapsed() - t_spawn).as_micros() as u64,
                    "container started"
                );
                let mut cp = spawned.checkpoint;
                cp.started_at = Some(at);
                // One append to a file in the page cache: not worth a
                // blocking-pool round trip.
                if let Err(e) = ctx.journal.put_container(&uid, &name, &cp) {
                    tracing::warn!(error = %e, "cannot update container checkpoint");
                }
            }
            Ok(StartStatus::ExitedBeforeStart) => {}
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "cannot read the sandbox's start pipe")
            }
        }
        waiter.wait(pidfd).await;
    }

    /// The ConfigMaps and Secrets the container and the pod's volumes name.
    async fn sources(&self) -> Result<EnvSources, String> {
        let (mut cms, mut secrets) = env::env_references(&self.container);
        let (vcms, vsecrets) = volumes::volume_references(&self.pod);
        cms.extend(vcms);
        secrets.extend(vsecrets);
        let mut src = EnvSources {
            node_ip: self.ctx.cfg.node_ip.clone(),
            allocatable: self.ctx.allocatable,
            ..Default::default()
        };
        let ns = &self.pod.metadata.namespace;
        src.config_maps = fetch::<ConfigMap>(&self.ctx, ns, "configmaps", &cms).await?;
        src.secrets = fetch::<Secret>(&self.ctx, ns, "secrets", &secrets).await?;
        Ok(src)
    }
}

/// Gets the named objects of a namespace; missing ones are left out.
async fn fetch<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    ns: &str,
    plural: &str,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, T>, String> {
    let mut out = BTreeMap::new();
    for name in names {
        let path = format!("/api/v1/namespaces/{ns}/{plural}/{name}");
        match ctx.client.get(&path).await {
            Ok(v) => {
                let obj = serde_json::from_value(v)
                    .map_err(|e| format!("cannot decode {plural} {ns}/{name}: {e}"))?;
                out.insert(name.clone(), obj);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(format!("cannot read {plural} {ns}/{name}: {e}")),
        }
    }
    Ok(out)
}

/// Waits for one sandbox to end and reports how.
struct Waiter {
    ctx: Arc<Ctx>,
    tx: mpsc::UnboundedSender<Msg>,
    uid: String,
    container: String,
    attempt: u32,
    pid: u32,
    record_path: std::path::PathBuf,
}

impl Waiter {
    async fn wait(self, pidfd: Arc<OwnedFd>) {
        if let Err(e) = process::wait_exit(&pidfd).await {
            tracing::warn!(container = %self.container, error = %e, "cannot wait for sandbox");
        }
        let at = Utc::now();
        let ctx = self.ctx.clone();
        let (uid, container, pid, record_path) = (
            self.uid.clone(),
            self.container.clone(),
            self.pid,
            self.record_path.clone(),
        );
        let (exit, record, oom_kills) = tokio::task::spawn_blocking(move || {
            let exit = process::reap(pid);
            let record = TerminationRecord::read(&record_path).ok();
            let oom = match (
                ctx.cgroups.manager(),
                ctx.cgroups.container(&uid, &container),
            ) {
                (Ok(mgr), Ok(cg)) => mgr.stats(&cg).map(|s| s.oom_kills).unwrap_or(0),
                _ => 0,
            };
            (exit, record, oom)
        })
        .await
        .unwrap_or((ExitStatus::Unknown, None, 0));
        let _ = self.tx.send(Msg::SandboxExited {
            container: self.container,
            attempt: self.attempt,
            record,
            exit,
            oom_kills,
            at,
        });
    }
}
