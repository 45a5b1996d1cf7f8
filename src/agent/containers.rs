//! Containers as sandbox processes: where their files live on the node,
//! creating their cgroups and spawning the sandbox (joined to its cgroup
//! before exec), and turning how a sandbox ended into a Kubernetes
//! termination.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::journal::Journal;
use super::lifecycle::{StopReason, Termination};
use super::process::{self, ContainerCheckpoint, ExitStatus, ProcessIdentity};
use crate::api::core::Container;
use crate::cgroup::{CgroupError, CgroupManager, CgroupPath, Limits};
use crate::sandbox::{
    EnvVar, Launchers, LogRotation, Preopen, SandboxSpec, SpecError, StartSignal,
    TerminationReason, TerminationRecord, spawn_sandbox,
};

/// Where a pod's files live under the agent's data directory:
///
/// ```text
/// pods.journal                          PodCheckpoints and ContainerCheckpoints
/// pods/<uid>.<name>.<n>.spec.json       SandboxSpec of run n (exec'd sandboxes)
/// pods/<uid>.<name>.<n>.record.json     TerminationRecord of run n
/// pods/<uid>.<name>.<n>.log             CRI log of run n (+ .1, .2 rotated)
/// pods/<uid>/volumes/<volume>/          emptyDir, configMap, secret (pods
///                                       with volumes only)
/// ```
///
/// Flat on purpose: every directory and file a start creates is an inode
/// the file system must allocate, and on ext4 with pods coming and going
/// that allocation (which, without a journal, skips every inode freed in
/// the last minute) was the largest cost of a start, a directory costing
/// more than a file. A start now creates only its log; checkpoints are
/// appended to [`super::journal`]. Pod uids hold no dot and container
/// names are DNS labels (no dot either), so `<uid>.` prefixes exactly one
/// pod's files.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path) -> Layout {
        Layout {
            root: data_dir.join("pods"),
        }
    }

    pub fn pods_dir(&self) -> &Path {
        &self.root
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join(uid)
    }

    /// The node's checkpoints (see [`super::journal`]), beside `pods/`.
    pub fn journal_path(&self) -> PathBuf {
        self.root.with_file_name("pods.journal")
    }

    fn run_file(&self, uid: &str, name: &str, attempt: u32, suffix: &str) -> PathBuf {
        self.root.join(format!("{uid}.{name}.{attempt}.{suffix}"))
    }

    /// The pod whose file or directory `file_name` (an entry of
    /// [`Layout::pods_dir`]) is.
    pub fn pod_of_entry(file_name: &str) -> &str {
        file_name.split('.').next().unwrap_or(file_name)
    }

    /// Removes everything of pod `uid` under [`Layout::pods_dir`]: its run
    /// files and its directory. Missing files are not an error.
    pub fn remove_pod(&self, uid: &str) -> std::io::Result<()> {
        let mut first_error = None;
        match std::fs::remove_dir_all(self.pod_dir(uid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => first_error = Some(e),
            _ => {}
        }
        if !uid.is_empty() {
            let prefix = format!("{uid}.");
            for entry in std::fs::read_dir(&self.root)?.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(&prefix)
                    && let Err(e) = std::fs::remove_file(entry.path())
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn spec_path(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.run_file(uid, name, attempt, "spec.json")
    }

    pub fn record_path(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.run_file(uid, name, attempt, "record.json")
    }

    pub fn log_path(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.run_file(uid, name, attempt, "log")
    }

    pub fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes")
    }
}

/// Why a sandbox could not be spawned (`CreateContainerError`).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cgroups are not available on this node: {0}")]
    NoCgroups(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SpawnError),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Checkpoint(#[from] process::CheckpointError),
}

impl crate::sandbox::PreExecJoin for crate::cgroup::CgroupJoin {
    fn join_self(&self) -> std::io::Result<()> {
        // Only getpid and write(2) on open fds: safe between fork and exec.
        crate::cgroup::CgroupJoin::join_self(self)
    }
}

/// Joins cgroup v1 hierarchies by writing `0` (the calling thread) to each
/// `tasks` file. In a freshly forked child, which has one thread, that
/// moves the whole process; unlike writing its pid to `cgroup.procs`, it
/// does not take the kernel's global threadgroup lock for writing, whose
/// RCU grace period costs several milliseconds per start.
pub struct ThreadJoin {
    /// One open `tasks` file per hierarchy, with its path for errors.
    files: Vec<(PathBuf, std::fs::File)>,
}

impl ThreadJoin {
    /// Opens the `tasks` file in each of `dirs` (close-on-exec).
    pub fn open(dirs: &[PathBuf]) -> Result<ThreadJoin, SpawnError> {
        let files = dirs
            .iter()
            .map(|d| {
                let path = d.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(|f| (path.clone(), f))
                    .map_err(|source| SpawnError::Io {
                        op: "open for joining",
                        path,
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ThreadJoin { files })
    }
}

impl ThreadJoin {
    /// The open `tasks` files.
    fn fds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.files.iter().map(|(_, f)| f.as_fd())
    }
}

impl crate::sandbox::PreExecJoin for ThreadJoin {
    fn join_self(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        for (_, f) in &self.files {
            // SAFETY: write(2) of a static byte to an fd open for as long
            // as `self`; async-signal-safe, no allocation.
            let n = unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// How a new sandbox joins its cgroup on this host.
enum Join {
    Threads(ThreadJoin),
    Procs(crate::cgroup::CgroupJoin),
}

impl Join {
    fn open(mgr: &CgroupManager, cg: &CgroupPath) -> Result<Join, SpawnError> {
        Ok(match mgr.version() {
            crate::cgroup::CgroupVersion::V1 => Join::Threads(ThreadJoin::open(&mgr.dirs(cg))?),
            // v2 domain cgroups take processes only through cgroup.procs.
            crate::cgroup::CgroupVersion::V2 => Join::Procs(mgr.join(cg)?),
        })
    }

    /// The open join files: writing `0` to each moves the writer in.
    fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        match self {
            Join::Threads(j) => j.fds().collect(),
            Join::Procs(j) => j.fds().collect(),
        }
    }

    fn as_dyn(&self) -> &dyn crate::sandbox::PreExecJoin {
        match self {
            Join::Threads(j) => j,
            Join::Procs(j) => j,
        }
    }
}

/// What the node's cgroups look like to the agent.
#[derive(Clone, Debug)]
pub struct Cgroups {
    /// `None` with the reason when the node has no usable hierarchy.
    pub manager: Result<CgroupManager, String>,
    /// The cgroup all pods live under (`wasmk` by default).
    pub root: CgroupPath,
    /// `pids.max` of every container.
    pub pids_limit: u64,
}

impl Cgroups {
    pub fn manager(&self) -> Result<&CgroupManager, SpawnError> {
        self.manager
            .as_ref()
            .map_err(|e| SpawnError::NoCgroups(e.clone()))
    }

    pub fn pod(&self, uid: &str) -> Result<CgroupPath, CgroupError> {
        CgroupPath::pod(&self.root, uid)
    }

    pub fn container(&self, uid: &str, name: &str) -> Result<CgroupPath, CgroupError> {
        CgroupPath::container(&self.root, uid, name)
    }
}

/// The cgroup limits of a container: CPU quota from `limits.cpu`, shares
/// from `requests.cpu`, `memory.max` from `limits.memory`, and the node's
/// per-container pids limit.
pub fn container_limits(c: &Container, pids: u64) -> Limits {
    let milli = |list: &crate::api::quantity::ResourceList, k: &str| {
        list.get(k)
            .map(|q| u64::try_from(q.milli_value()).unwrap_or(0))
    };
    let memory = c
        .resources
        .limits
        .get("memory")
        .map(|q| u64::try_from(q.value()).unwrap_or(0));
    Limits::from_resources(
        milli(&c.resources.requests, "cpu"),
        milli(&c.resources.limits, "cpu"),
        memory,
        Some(pids),
    )
}

/// Everything one start of a container needs.
pub struct SpawnRequest<'a> {
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub uid: &'a str,
    pub container: &'a Container,
    pub attempt: u32,
    pub restart_count: u32,
    pub image_id: &'a str,
    pub module_path: &'a Path,
    pub artifact: &'a crate::sandbox::CachedArtifact,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub limits: Limits,
    /// Create or update the pod's cgroup first.
    pub create_pod_cgroup: bool,
    /// Create or update the container's cgroup (skipped when it exists
    /// with these limits from an earlier run).
    pub create_container_cgroup: bool,
    pub log_rotation: LogRotation,
    /// Written before the pod's first sandbox, so a restarted agent finds
    /// the pod's state (and cleans it up if the pod is gone).
    pub pod_checkpoint: Option<process::PodCheckpoint>,
}

/// A sandbox that was spawned.
pub struct Spawned {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub start: StartSignal,
    pub at: DateTime<Utc>,
    pub checkpoint: ContainerCheckpoint,
}

/// How the agent starts sandbox processes: through the launcher when it
/// has one (see [`crate::sandbox::launcher`]), else, and whenever the
/// launcher is unavailable, by exec'ing `EXE sandbox --spec FILE`.
pub struct Sandboxes {
    pub exe: PathBuf,
    pub launcher: Option<Launchers>,
}

impl Sandboxes {
    /// Starts the sandbox for `spec`; an exec'd one reads it from
    /// `spec_path`, written only then.
    fn start(
        &self,
        spec: &SandboxSpec,
        spec_path: &Path,
        join: &Join,
    ) -> Result<(u32, StartSignal), SpawnError> {
        if let Some(launcher) = &self.launcher {
            match launcher.launch(spec, &join.fds()) {
                Ok(l) => return Ok((l.pid, l.start)),
                Err(e) => {
                    tracing::warn!(error = %e, pod = %spec.pod_name, container = %spec.container_name, "starting the sandbox with exec instead")
                }
            }
        }
        spec.write(spec_path)?;
        let child = spawn_sandbox(&self.exe, spec_path, Some(join.as_dyn()))?;
        Ok((child.child.id(), child.start))
    }
}

/// Creates the cgroups, writes the spec and spawns the sandbox, joined to
/// its cgroup before exec. Blocking: run it off the async threads.
pub fn spawn(
    layout: &Layout,
    journal: &Journal,
    cgroups: &Cgroups,
    sandboxes: &Sandboxes,
    boot_id: &str,
    req: SpawnRequest<'_>,
) -> Result<Spawned, SpawnError> {
    let mgr = cgroups.manager()?;
    let name = &req.container.name;
    let uid = req.uid;
    let t0 = std::time::Instant::now();
    if let Some(cp) = &req.pod_checkpoint {
        journal.put_pod(uid, cp)?;
    }
    let pod_cg = cgroups.pod(uid)?;
    let cg = cgroups.container(uid, name)?;
    if req.create_pod_cgroup {
        mgr.create(&pod_cg, &Limits::default())?;
    }
    if req.create_container_cgroup {
        let fresh = mgr.create(&cg, &req.limits)?;
        // A sandbox nobody tracks (left by a lost data dir) must not run
        // beside the new one.
        if !fresh && !mgr.pids(&cg).unwrap_or_default().is_empty() {
            mgr.kill_all(&cg)?;
        }
    }
    let join = Join::open(mgr, &cg)?;
    let t_cgroup = t0.elapsed();
    let record_path = layout.record_path(uid, name, req.attempt);
    // A record left by an earlier try of this run number is stale.
    let _ = std::fs::remove_file(&record_path);
    let spec = SandboxSpec {
        pod_namespace: req.namespace.to_string(),
        pod_name: req.pod_name.to_string(),
        pod_uid: uid.to_string(),
        container_name: name.clone(),
        module_path: req.module_path.to_path_buf(),
        module_digest: req.image_id.to_string(),
        artifact_path: req.artifact.path.clone(),
        kind: req.artifact.kind,
        args: req.args,
        env: req
            .env
            .into_iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect(),
        preopens: req.preopens,
        working_dir: (!req.container.working_dir.is_empty())
            .then(|| req.container.working_dir.clone()),
        memory_limit_bytes: req.limits.memory_bytes,
        max_wasm_stack_bytes: None,
        log_path: layout.log_path(uid, name, req.attempt),
        log_rotation: req.log_rotation,
        termination_record_path: record_path.clone(),
    };
    let spec_path = layout.spec_path(uid, name, req.attempt);
    let t_spec = t0.elapsed();
    let (pid, start) = sandboxes.start(&spec, &spec_path, &join)?;
    let at = Utc::now();
    // Our child cannot be reaped behind our back, so the pid is stable here.
    let pidfd = process::pidfd_open(pid).map_err(|source| SpawnError::Io {
        op: "open a pidfd for",
        path: PathBuf::from(format!("/proc/{pid}")),
        source,
    })?;
    let t_spawn = t0.elapsed();
    let identity = ProcessIdentity::of(pid, boot_id).unwrap_or(ProcessIdentity {
        pid,
        start_ticks: 0,
        boot_id: boot_id.to_string(),
    });
    let checkpoint = ContainerCheckpoint {
        attempt: req.attempt,
        restart_count: req.restart_count,
        image: req.container.image.clone(),
        image_id: req.image_id.to_string(),
        process: identity,
        spawned_at: at,
        started_at: None,
        record_path,
    };
    journal.put_container(uid, name, &checkpoint)?;
    tracing::debug!(
        pod = %format!("{}/{}", req.namespace, req.pod_name),
        container = %name,
        cgroup_us = t_cgroup.as_micros() as u64,
        spec_us = (t_spec - t_cgroup).as_micros() as u64,
        spawn_us = (t_spawn - t_spec).as_micros() as u64,
        checkpoint_us = (t0.elapsed() - t_spawn).as_micros() as u64,
        "sandbox spawned"
    );
    Ok(Spawned {
        pid,
        pidfd,
        start,
        at,
        checkpoint,
    })
}

/// How a sandbox that ran its module ended, as Kubernetes reports it.
/// `oom_killed`: the cgroup's OOM kill count grew during the run;
/// `stopped`: why the agent stopped it, if it did.
pub fn termination(
    record: Option<&TerminationRecord>,
    exit: ExitStatus,
    oom_killed: bool,
    stopped: Option<StopReason>,
    started_at: Option<DateTime<Utc>>,
    container_id: String,
    now: DateTime<Utc>,
) -> Termination {
    let (mut exit_code, mut signal, mut reason, mut message, started, finished) = match record {
        Some(r) => (
            r.exit_code,
            0,
            match r.reason {
                TerminationReason::Completed => "Completed",
                TerminationReason::OomKilled => "OOMKilled",
                _ => "Error",
            }
            .to_string(),
            r.message.clone(),
            r.started_at.or(started_at),
            r.finished_at,
        ),
        None => {
            let (code, signal, reason, message) = match exit {
                ExitStatus::Code(c) => (
                    c,
                    0,
                    if c == 0 { "Completed" } else { "Error" },
                    format!("the sandbox exited with status {c} without a termination record"),
                ),
                ExitStatus::Signal(s) => (
                    128 + s,
                    s,
                    "Error",
                    format!("the sandbox was killed by signal {s} ({})", signal_name(s)),
                ),
                ExitStatus::Unknown => (
                    137,
                    0,
                    "ContainerStatusUnknown",
                    "the sandbox ended while the agent was not watching and left no termination record"
                        .to_string(),
                ),
            };
            (code, signal, reason.to_string(), message, started_at, now)
        }
    };
    if oom_killed && reason != "Completed" {
        reason = "OOMKilled".into();
        exit_code = 137;
        signal = 0;
        if message.is_empty() || record.is_none() {
            message = "the container's memory limit was reached and the kernel killed it".into();
        }
    }
    if stopped == Some(StopReason::DeadlineExceeded) && reason != "Completed" {
        reason = "DeadlineExceeded".into();
        message = super::plan::DEADLINE_MESSAGE.into();
    }
    Termination {
        exit_code,
        signal,
        reason,
        message,
        started_at: started,
        finished_at: finished,
        container_id,
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let layout = Layout::new(Path::new("/data"));
        assert_eq!(
            layout.log_path("u", "app", 3),
            Path::new("/data/pods/u.app.3.log")
        );
        assert_eq!(
            layout.record_path("u", "app", 12),
            Path::new("/data/pods/u.app.12.record.json")
        );
        assert_eq!(layout.journal_path(), Path::new("/data/pods.journal"));
        assert_eq!(layout.volumes_dir("u"), Path::new("/data/pods/u/volumes"));
        for path in [
            layout.log_path("u", "app", 3),
            layout.spec_path("u", "app", 0),
            layout.volumes_dir("u").parent().unwrap().to_path_buf(),
        ] {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(Layout::pod_of_entry(&name), "u");
        }
    }

    #[test]
    fn removing_a_pod_leaves_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.volumes_dir("a").join("v")).unwrap();
        for (uid, n) in [("a", 0), ("a", 1), ("ab", 0), ("b", 0)] {
            std::fs::write(layout.log_path(uid, "app", n), "x").unwrap();
            std::fs::write(layout.record_path(uid, "app", n), "{}").unwrap();
        }
        let rotated = PathBuf::from(format!("{}.1", layout.log_path("a", "app", 1).display()));
        std::fs::write(&rotated, "x").unwrap();
        layout.remove_pod("a").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(layout.pods_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "ab.app.0.log",
                "ab.app.0.record.json",
                "b.app.0.log",
                "b.app.0.record.json"
            ]
        );
        // Nothing left to remove is not an error.
        layout.remove_pod("a").unwrap();
    }
    use crate::api::quantity::Quantity;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn record(code: i32, reason: TerminationReason, message: &str) -> TerminationRecord {
        TerminationRecord {
            exit_code: code,
            reason,
            message: message.into(),
            module_started: true,
            started_at: Some(t(1)),
            finished_at: t(2),
        }
    }

    #[test]
    fn terminations_table() {
        use ExitStatus::*;
        type Want = (i32, i32, &'static str, &'static str);
        type Case = (
            &'static str,
            Option<TerminationRecord>,
            ExitStatus,
            bool,
            Option<StopReason>,
            Want,
        );
        let cases: Vec<Case> = vec![
            (
                "completed",
                Some(record(0, TerminationReason::Completed, "")),
                Code(0),
                false,
                None,
                (0, 0, "Completed", ""),
            ),
            (
                "exit 3",
                Some(record(
                    3,
                    TerminationReason::Error,
                    "the module exited with status 3",
                )),
                Code(3),
                false,
                None,
                (3, 0, "Error", "status 3"),
            ),
            (
                "trap",
                Some(record(
                    134,
                    TerminationReason::Error,
                    "wasm trap: unreachable",
                )),
                Code(134),
                false,
                None,
                (134, 0, "Error", "unreachable"),
            ),
            (
                "limiter",
                Some(record(137, TerminationReason::OomKilled, "memory limit")),
                Code(137),
                false,
                None,
                (137, 0, "OOMKilled", "memory limit"),
            ),
            (
                "kernel oom kill",
                None,
                Signal(9),
                true,
                None,
                (137, 0, "OOMKilled", "memory limit was reached"),
            ),
            (
                "killed from outside",
                None,
                Signal(9),
                false,
                None,
                (137, 9, "Error", "SIGKILL"),
            ),
            (
                "graceful stop",
                Some(record(
                    143,
                    TerminationReason::Terminated,
                    "stopped by signal",
                )),
                Code(143),
                false,
                Some(StopReason::PodDeleted),
                (143, 0, "Error", "stopped"),
            ),
            (
                "deadline",
                Some(record(
                    143,
                    TerminationReason::Terminated,
                    "stopped by signal",
                )),
                Code(143),
                false,
                Some(StopReason::DeadlineExceeded),
                (143, 0, "DeadlineExceeded", "deadline"),
            ),
            (
                "vanished",
                None,
                Unknown,
                false,
                None,
                (137, 0, "ContainerStatusUnknown", "not watching"),
            ),
        ];
        for (name, rec, exit, oom, stopped, (code, signal, reason, message)) in cases {
            let got = termination(
                rec.as_ref(),
                exit,
                oom,
                stopped,
                Some(t(1)),
                "wasmk://u/c/0".into(),
                t(5),
            );
            assert_eq!(
                (got.exit_code, got.signal, got.reason.as_str()),
                (code, signal, reason),
                "{name}"
            );
            assert!(got.message.contains(message), "{name}: {:?}", got.message);
            assert_eq!(got.container_id, "wasmk://u/c/0");
            assert_eq!(got.started_at, Some(t(1)), "{name}");
        }
    }

    #[test]
    fn limits_come_from_resources() {
        let mut c = Container::default();
        c.resources
            .limits
            .insert("cpu".into(), Quantity::parse("500m").unwrap());
        c.resources
            .limits
            .insert("memory".into(), Quantity::parse("64Mi").unwrap());
        c.resources
            .requests
            .insert("cpu".into(), Quantity::parse("100m").unwrap());
        let l = container_limits(&c, 64);
        assert_eq!(l.cpu_millis, Some(500));
        assert_eq!(l.cpu_quota_us(), Some(50_000));
        assert_eq!(l.cpu_shares, Some(102));
        assert_eq!(l.memory_bytes, Some(64 << 20));
        assert_eq!(l.pids_max, Some(64));
        let best_effort = container_limits(&Container::default(), 32);
        assert_eq!(best_effort.memory_bytes, None);
        assert_eq!(best_effort.cpu_shares, Some(2));
    }

    /// A real child joined through `tasks` lands in every hierarchy.
    #[test]
    fn thread_join_moves_a_forked_child_into_the_cgroup() {
        use std::os::unix::process::CommandExt;
        let Ok(mgr) = CgroupManager::detect() else {
            eprintln!("no cgroups here; skipped");
            return;
        };
        if mgr.version() != crate::cgroup::CgroupVersion::V1 {
            eprintln!("not cgroup v1; ThreadJoin is not used; skipped");
            return;
        }
        let root = CgroupPath::new(&format!("wasmk-unit-{}", std::process::id())).unwrap();
        let cg = root.child("c").unwrap();
        mgr.create(&cg, &Limits::from_resources(None, None, None, Some(16)))
            .unwrap();
        let join = ThreadJoin::open(&mgr.dirs(&cg)).unwrap();
        let join_ptr: &'static ThreadJoin = Box::leak(Box::new(join));
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: join_self only writes to open fds.
        unsafe {
            cmd.pre_exec(move || crate::sandbox::PreExecJoin::join_self(join_ptr));
        }
        let mut child = cmd.spawn().unwrap();
        let pids = mgr.pids(&cg).unwrap();
        let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        mgr.remove(&root).unwrap();
        assert_eq!(pids, vec![child.id()]);
        for controller in ["cpu", "memory", "pids"] {
            assert!(
                membership
                    .lines()
                    .any(|l| l.contains(controller) && l.ends_with(&format!("/{cg}"))),
                "{controller} in {membership}"
            );
        }
    }

    #[test]
    fn a_hierarchy_without_a_controller_refuses_the_limit_by_name() {
        // A v2 hierarchy in a temp dir offering cpu and pids but no memory.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
        let mgr = CgroupManager::from_layout(crate::cgroup::Layout::V2 {
            mount: tmp.path().to_path_buf(),
        })
        .unwrap();
        let cgroups = Cgroups {
            manager: Ok(mgr),
            root: CgroupPath::new("wasmk").unwrap(),
            pids_limit: 64,
        };
        let mut c = Container {
            name: "app".into(),
            ..Default::default()
        };
        c.resources
            .limits
            .insert("memory".into(), Quantity::parse("64Mi").unwrap());
        let layout = Layout::new(tmp.path());
        let (journal, _) = Journal::open(&layout.journal_path()).unwrap();
        let artifact = crate::sandbox::CachedArtifact {
            path: "/nonexistent".into(),
            kind: crate::sandbox::ModuleKind::Module,
            compiled: false,
        };
        let req = SpawnRequest {
            namespace: "default",
            pod_name: "p",
            uid: "u1",
            container: &c,
            attempt: 0,
            restart_count: 0,
            image_id: "",
            module_path: Path::new("/m.wasm"),
            artifact: &artifact,
            args: vec![],
            env: vec![],
            preopens: vec![],
            limits: container_limits(&c, 64),
            create_pod_cgroup: false,
            create_container_cgroup: true,
            log_rotation: LogRotation::default(),
            pod_checkpoint: None,
        };
        let sandboxes = Sandboxes {
            exe: PathBuf::from("/bin/false"),
            launcher: None,
        };
        let err = match spawn(&layout, &journal, &cgroups, &sandboxes, "b", req) {
            Err(e) => e,
            Ok(_) => panic!("spawned without a memory controller"),
        };
        let text = err.to_string();
        assert!(
            text.contains("controller memory is not available"),
            "{text}"
        );
        assert!(text.contains("memory limit"), "{text}");
        let none = Cgroups {
            manager: Err("no cgroup2 or v1 hierarchy is mounted".into()),
            ..cgroups
        };
        assert!(matches!(none.manager(), Err(SpawnError::NoCgroups(_))));
    }
}
