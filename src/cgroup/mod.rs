//! cgroup v1 and v2 managers over cgroupfs.
//!
//! The node agent puts every container of a pod in its own cgroup before the
//! Wasm module starts:
//!
//! ```text
//! <root>                       all of wasmk (default `wasmk`)
//! <root>/pod<pod-uid>          one per pod: pod totals and pod limits
//! <root>/pod<pod-uid>/<name>   one per container: the only cgroups with processes
//! ```
//!
//! Containers are leaves, which keeps the v2 "no internal processes" rule.
//! Paths are relative to each hierarchy's mount point (a leading `/` is
//! accepted), whichever cgroup our own process sits in.
//!
//! [`CgroupManager`] hides the version: [`CgroupManager::detect`] reads
//! `/proc/self/mountinfo`; [`CgroupManager::from_layout`] takes the mount
//! points explicitly, which is how tests run it against a temporary directory
//! imitating cgroupfs. A controller the host lacks is not fatal: the manager
//! lists what it has, and only a limit needing a missing controller fails
//! ([`CgroupError::ControllerUnavailable`]).
//!
//! Layout:
//! - `detect`: mountinfo parsing and the v1/v2 choice (pure)
//! - `limits`: [`Limits`] and the kubelet's CPU conversions (pure)
//! - `stats`: [`Stats`] and stat-file parsing (pure)
//! - `v1`, `v2`: the version-specific writes and reads
//! - `join`: [`CgroupJoin`], joining a cgroup between fork and exec
//! - `fsio`: file operations with path-carrying errors

mod detect;
mod fsio;
mod join;
mod limits;
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod fake_tests;
#[cfg(test)]
mod real_tests;

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use detect::{CgroupMounts, Layout, V1Hierarchy, parse_mountinfo};
pub use join::CgroupJoin;
pub use limits::{
    CFS_PERIOD_US, Limits, MAX_SHARES, MIN_CFS_QUOTA_US, MIN_SHARES, milli_cpu_to_quota,
    milli_cpu_to_shares, shares_to_weight,
};
pub use stats::Stats;

use fsio::{Backoff, io_err, read_pids, rmdir_with_retry, subtree_post_order, write_file};

/// How long `kill_all` waits for a cgroup's processes to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `remove` retries `rmdir` while exiting processes keep a cgroup busy.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the cgroup module.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "cgroup controller {controller} is not available on this node (needed for the {needed_for})"
    )]
    ControllerUnavailable {
        controller: Controller,
        needed_for: &'static str,
    },
    #[error("the kernel rejected {value:?} for {path}: {source}")]
    LimitRejected {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("unexpected content {content:?} in {path}")]
    Parse { path: PathBuf, content: String },
    #[error("malformed mountinfo line ({reason}): {line:?}")]
    Mountinfo { line: String, reason: &'static str },
    #[error("no usable cgroup hierarchy is mounted (neither v1 cpu/memory/pids nor cgroup2)")]
    NoHierarchy,
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("processes {pids:?} are still in cgroup {path} after {waited:?}")]
    KillTimeout {
        path: String,
        pids: Vec<u32>,
        waited: Duration,
    },
    #[error("cannot send SIGKILL to process {pid}: {source}")]
    Signal { pid: u32, source: io::Error },
    #[error("refusing to kill cgroup {path}: it holds this process ({pid})")]
    HoldsSelf { path: String, pid: u32 },
}

type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// The cgroup version a manager drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// A resource controller the manager uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// CPU quota and weight.
    Cpu,
    /// v1 CPU usage accounting (built into v2's `cpu.stat`).
    Cpuacct,
    Memory,
    Pids,
    /// v1 freezer, used to stop forks while killing (built into v2).
    Freezer,
}

impl Controller {
    /// The kernel's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
        }
    }

    fn from_v1_name(name: &str) -> Option<Controller> {
        match name {
            "cpu" => Some(Controller::Cpu),
            "cpuacct" => Some(Controller::Cpuacct),
            "memory" => Some(Controller::Memory),
            "pids" => Some(Controller::Pids),
            "freezer" => Some(Controller::Freezer),
            _ => None,
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cgroup's path below the hierarchy root, e.g. `wasmk/pod<uid>/app`:
/// non-empty, `/`-separated, without `.`, `..` or empty components, so it
/// can never name the hierarchy root or escape it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// Parses a configured path; a leading or trailing `/` is ignored.
    pub fn new(path: &str) -> Result<CgroupPath> {
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Err(invalid_path(path, "names the hierarchy root"));
        }
        for component in trimmed.split('/') {
            check_component(path, component)?;
        }
        Ok(CgroupPath(trimmed.to_string()))
    }

    /// The child cgroup `name` (a single path component).
    pub fn child(&self, name: &str) -> Result<CgroupPath> {
        check_component(name, name)?;
        Ok(CgroupPath(format!("{}/{name}", self.0)))
    }

    /// `<root>/pod<uid>`, the cgroup of a pod.
    pub fn pod(root: &CgroupPath, pod_uid: &str) -> Result<CgroupPath> {
        root.child(&format!("pod{pod_uid}"))
    }

    /// `<root>/pod<uid>/<container>`, the cgroup of a container.
    pub fn container(root: &CgroupPath, pod_uid: &str, container: &str) -> Result<CgroupPath> {
        CgroupPath::pod(root, pod_uid)?.child(container)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid_path(path: &str, reason: &'static str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    }
}

fn check_component(path: &str, component: &str) -> Result<()> {
    match component {
        "" => Err(invalid_path(path, "has an empty component")),
        "." | ".." => Err(invalid_path(path, "has a '.' or '..' component")),
        c if c.contains('/') => Err(invalid_path(path, "component contains '/'")),
        c if c.contains('\0') => Err(invalid_path(path, "contains a NUL byte")),
        c if c.len() > 255 => Err(invalid_path(path, "component longer than 255 bytes")),
        _ => Ok(()),
    }
}

/// Creates, fills, measures and removes cgroups on one host.
#[derive(Clone, Debug)]
pub struct CgroupManager {
    imp: Imp,
}

#[derive(Clone, Debug)]
enum Imp {
    V1(v1::V1),
    V2(v2::V2),
}

impl CgroupManager {
    /// The manager for this host's cgroups, from `/proc/self/mountinfo`.
    pub fn detect() -> Result<CgroupManager> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
        CgroupManager::from_layout(parse_mountinfo(&text)?.layout()?)
    }

    /// A manager over explicitly given mount points (a v2 manager reads the
    /// root's `cgroup.controllers`). A v1 layout without any hierarchy
    /// carrying cpu, cpuacct, memory, pids or freezer is refused.
    pub fn from_layout(layout: Layout) -> Result<CgroupManager> {
        let imp = match layout {
            Layout::V1 { hierarchies } => Imp::V1(v1::V1::new(hierarchies)?),
            Layout::V2 { mount } => Imp::V2(v2::V2::new(mount)?),
        };
        Ok(CgroupManager { imp })
    }

    pub fn version(&self) -> CgroupVersion {
        match &self.imp {
            Imp::V1(_) => CgroupVersion::V1,
            Imp::V2(_) => CgroupVersion::V2,
        }
    }

    /// The controllers available, sorted. On v2 only `cpu`, `memory` and
    /// `pids` are listed: CPU accounting and freezing are always there.
    pub fn controllers(&self) -> Vec<Controller> {
        match &self.imp {
            Imp::V1(m) => m.controllers(),
            Imp::V2(m) => m.controllers(),
        }
    }

    /// The cgroup's directory in every hierarchy the manager uses.
    pub fn dirs(&self, path: &CgroupPath) -> Vec<PathBuf> {
        match &self.imp {
            Imp::V1(m) => m.dirs(path),
            Imp::V2(m) => vec![m.dir(path)],
        }
    }

    /// Creates the cgroup (and missing parents) and writes `limits`; on v2
    /// first delegates `cpu`, `memory` and `pids` through every ancestor's
    /// `cgroup.subtree_control`. On an existing cgroup it updates the limits,
    /// resetting those that are `None` to the kernel default. Nothing is
    /// created when a limit needs a controller the host lacks. Returns true
    /// when the cgroup did not exist before (in any hierarchy), so it holds
    /// no process.
    pub fn create(&self, path: &CgroupPath, limits: &Limits) -> Result<bool> {
        let available = self.controllers();
        for (controller, needed_for, needed) in [
            (
                Controller::Cpu,
                "cpu limit",
                limits.cpu_quota_us().is_some(),
            ),
            (Controller::Cpu, "cpu shares", limits.cpu_shares.is_some()),
            (
                Controller::Memory,
                "memory limit",
                limits.memory_bytes.is_some(),
            ),
            (Controller::Pids, "pids limit", limits.pids_max.is_some()),
        ] {
            if needed && !available.contains(&controller) {
                return Err(CgroupError::ControllerUnavailable {
                    controller,
                    needed_for,
                });
            }
        }
        match &self.imp {
            Imp::V1(m) => m.create(path, limits, false),
            Imp::V2(m) => m.create(path, limits),
        }
    }

    /// Creates (or updates) the cgroup a tree of pods lives under, with no
    /// limits. Call it before creating anything below: settings a new
    /// cgroup inherits from its parent (v1 `memory.swappiness`, 0 here)
    /// are written only on this root and on cgroups that existed already.
    pub fn create_root(&self, path: &CgroupPath) -> Result<bool> {
        match &self.imp {
            Imp::V1(m) => m.create(path, &Limits::default(), true),
            Imp::V2(m) => m.create(path, &Limits::default()),
        }
    }

    /// The `cgroup.procs` files a new process must be written into: one per
    /// v1 hierarchy, one on v2.
    pub fn procs_files(&self, path: &CgroupPath) -> Vec<PathBuf> {
        self.dirs(path)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Opens the cgroup's `cgroup.procs` files so a child can join it between
    /// fork and exec (see [`CgroupJoin::join_self`]).
    pub fn join(&self, path: &CgroupPath) -> Result<CgroupJoin> {
        CgroupJoin::open(&self.procs_files(path))
    }

    /// Moves a running process (all its threads) into the cgroup.
    pub fn add_pid(&self, path: &CgroupPath, pid: u32) -> Result<()> {
        for procs in self.procs_files(path) {
            write_file(&procs, &pid.to_string(), "move a process into")?;
        }
        Ok(())
    }

    /// The processes directly in the cgroup (not below it), sorted.
    pub fn pids(&self, path: &CgroupPath) -> Result<Vec<u32>> {
        let mut pids = BTreeSet::new();
        for procs in self.procs_files(path) {
            pids.extend(read_pids(&procs)?);
        }
        Ok(pids.into_iter().collect())
    }

    /// Whether the cgroup exists in any hierarchy.
    pub fn exists(&self, path: &CgroupPath) -> bool {
        self.dirs(path).iter().any(|d| d.is_dir())
    }

    /// Usage figures; see [`Stats`].
    pub fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        match &self.imp {
            Imp::V1(m) => m.stats(path),
            Imp::V2(m) => m.stats(path),
        }
    }

    /// Kills every process in the cgroup and below it, and waits (bounded)
    /// until they have left. Uses v2 `cgroup.kill` when the kernel has it;
    /// otherwise freezes the subtree (so nothing forks meanwhile), sends
    /// SIGKILL to every listed pid and thaws, until the cgroup is empty.
    /// A missing cgroup is already empty.
    pub fn kill_all(&self, path: &CgroupPath) -> Result<()> {
        let started = Instant::now();
        let mut pids = self.subtree_pids(path)?;
        if pids.is_empty() {
            return Ok(());
        }
        self.refuse_self(path, &pids)?;
        if let Imp::V2(m) = &self.imp
            && m.kill(path)?
        {
            let mut backoff = Backoff::new();
            loop {
                pids = self.subtree_pids(path)?;
                if pids.is_empty() {
                    return Ok(());
                }
                if started.elapsed() >= KILL_TIMEOUT {
                    return Err(kill_timeout(path, pids, started));
                }
                backoff.sleep();
            }
        }
        self.kill_by_signal(path, started)
    }

    /// The freeze + SIGKILL + thaw loop, for kernels without `cgroup.kill`;
    /// gives up `KILL_TIMEOUT` after `started`.
    fn kill_by_signal(&self, path: &CgroupPath, started: Instant) -> Result<()> {
        let mut backoff = Backoff::new();
        loop {
            let frozen = self.set_frozen(path, true)?;
            let signalled = self.signal_subtree(path);
            // Thaw even when signalling failed: a frozen cgroup would
            // otherwise stay stuck.
            if frozen {
                let thawed = self.set_frozen(path, false);
                signalled?;
                thawed?;
            } else {
                signalled?;
            }
            let pids = self.subtree_pids(path)?;
            if pids.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= KILL_TIMEOUT {
                return Err(kill_timeout(path, pids, started));
            }
            backoff.sleep();
        }
    }

    /// SIGKILLs every process listed in the subtree; called frozen, so
    /// whatever is listed cannot fork meanwhile.
    fn signal_subtree(&self, path: &CgroupPath) -> Result<()> {
        let pids = self.subtree_pids(path)?;
        self.refuse_self(path, &pids)?;
        pids.into_iter().try_for_each(send_sigkill)
    }

    fn set_frozen(&self, path: &CgroupPath, frozen: bool) -> Result<bool> {
        match &self.imp {
            Imp::V1(m) => m.set_frozen(path, frozen),
            Imp::V2(m) => m.set_frozen(path, frozen),
        }
    }

    /// Every pid in the cgroup's subtree, over all hierarchies.
    fn subtree_pids(&self, path: &CgroupPath) -> Result<Vec<u32>> {
        let mut pids = BTreeSet::new();
        for dir in self.dirs(path) {
            for cgroup in subtree_post_order(&dir)? {
                pids.extend(read_pids(&cgroup.join("cgroup.procs"))?);
            }
        }
        Ok(pids.into_iter().collect())
    }

    fn refuse_self(&self, path: &CgroupPath, pids: &[u32]) -> Result<()> {
        let own = std::process::id();
        if pids.contains(&own) {
            return Err(CgroupError::HoldsSelf {
                path: path.to_string(),
                pid: own,
            });
        }
        Ok(())
    }

    /// Kills what is left in the cgroup, then removes it and everything below
    /// it, children first, retrying (bounded) while exiting processes keep
    /// it busy. Removing a missing cgroup is Ok.
    pub fn remove(&self, path: &CgroupPath) -> Result<()> {
        if !self.exists(path) {
            return Ok(());
        }
        self.kill_all(path)?;
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        for dir in self.dirs(path) {
            for cgroup in subtree_post_order(&dir)? {
                rmdir_with_retry(&cgroup, deadline)?;
            }
        }
        Ok(())
    }

    /// The uids of the pods that have a cgroup (`pod<uid>`) under `root` in
    /// any hierarchy, sorted; used to clean up after an agent restart.
    pub fn list_pods(&self, root: &CgroupPath) -> Result<Vec<String>> {
        let mut uids = BTreeSet::new();
        for dir in self.dirs(root) {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list cgroup", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err("list cgroup", &dir, e))?;
                let is_dir = entry
                    .file_type()
                    .map_err(|e| io_err("stat", &entry.path(), e))?
                    .is_dir();
                let name = entry.file_name();
                let uid = name.to_str().and_then(|n| n.strip_prefix("pod"));
                if let Some(uid) = uid.filter(|u| is_dir && !u.is_empty()) {
                    uids.insert(uid.to_string());
                }
            }
        }
        Ok(uids.into_iter().collect())
    }
}

fn kill_timeout(path: &CgroupPath, pids: Vec<u32>, started: Instant) -> CgroupError {
    CgroupError::KillTimeout {
        path: path.to_string(),
        pids,
        waited: started.elapsed(),
    }
}

fn send_sigkill(pid: u32) -> Result<()> {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    // SAFETY: kill has no memory-safety preconditions; pids come from
    // cgroup.procs and are never 0 or negative (which would mean groups).
    if raw > 0 && unsafe { libc::kill(raw, libc::SIGKILL) } != 0 {
        let e = io::Error::last_os_error();
        // The process exited between listing and signalling.
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(CgroupError::Signal { pid, source: e });
        }
    }
    Ok(())
}
