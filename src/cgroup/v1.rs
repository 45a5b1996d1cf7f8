//! cgroup v1: one directory tree per hierarchy, each carrying one or more
//! controllers.

use std::path::{Path, PathBuf};

use super::detect::V1Hierarchy;
use super::fsio::{
    io_err, mkdir_all, read_optional, read_string, read_u64, write_limit, write_raw,
};
use super::limits::{CFS_PERIOD_US, DEFAULT_SHARES, Limits};
use super::stats::{Stats, keyed_value, v1_memory_limit};
use super::{CgroupError, CgroupPath, Controller};

/// A hierarchy we place processes in: it carries at least one controller we
/// manage.
#[derive(Clone, Debug)]
struct Hierarchy {
    mount: PathBuf,
    /// The managed controllers on it (`cpu` and `cpuacct` when co-mounted).
    controllers: Vec<Controller>,
}

/// The v1 manager.
#[derive(Clone, Debug)]
pub(super) struct V1 {
    hierarchies: Vec<Hierarchy>,
    /// Whether swap accounting is on (`memory.memsw.*` exist), so the memory
    /// limit must be mirrored there to keep containers out of swap.
    memsw: bool,
}

impl V1 {
    /// Keeps the hierarchies that carry a controller we manage; hierarchies
    /// such as `cpuset` or `devices` are left alone (joining a fresh `cpuset`
    /// cgroup would even fail until its cpus and mems are set).
    pub(super) fn new(hierarchies: Vec<V1Hierarchy>) -> Result<V1, CgroupError> {
        let hierarchies: Vec<Hierarchy> = hierarchies
            .into_iter()
            .filter_map(|h| {
                let controllers: Vec<Controller> = h
                    .controllers
                    .iter()
                    .filter_map(|c| Controller::from_v1_name(c))
                    .collect();
                (!controllers.is_empty()).then_some(Hierarchy {
                    mount: h.mount,
                    controllers,
                })
            })
            .collect();
        let memsw = hierarchies
            .iter()
            .find(|h| h.controllers.contains(&Controller::Memory))
            .is_some_and(|h| h.mount.join("memory.memsw.limit_in_bytes").exists());
        if hierarchies.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(V1 { hierarchies, memsw })
    }

    pub(super) fn controllers(&self) -> Vec<Controller> {
        let mut all: Vec<Controller> = self
            .hierarchies
            .iter()
            .flat_map(|h| h.controllers.iter().copied())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The cgroup's directory in every managed hierarchy.
    pub(super) fn dirs(&self, path: &CgroupPath) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| h.mount.join(path.as_str()))
            .collect()
    }

    /// The cgroup's directory in the hierarchy carrying `controller`.
    fn dir_of(&self, controller: Controller, path: &CgroupPath) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.contains(&controller))
            .map(|h| h.mount.join(path.as_str()))
    }

    /// `root`: the top of a tree, which cannot inherit our settings.
    pub(super) fn create(
        &self,
        path: &CgroupPath,
        limits: &Limits,
        root: bool,
    ) -> Result<bool, CgroupError> {
        let mut all_fresh = true;
        for h in &self.hierarchies {
            let dir = h.mount.join(path.as_str());
            let fresh = mkdir_all(&h.mount, &dir)?;
            all_fresh &= fresh;
            for controller in &h.controllers {
                match controller {
                    Controller::Cpu => apply_cpu(&dir, limits, fresh)?,
                    Controller::Memory => self.apply_memory(&dir, limits, fresh, root)?,
                    Controller::Pids => apply_pids(&dir, limits, fresh)?,
                    Controller::Cpuacct | Controller::Freezer => {}
                }
            }
        }
        Ok(all_fresh)
    }

    fn apply_memory(
        &self,
        dir: &Path,
        limits: &Limits,
        fresh: bool,
        root: bool,
    ) -> Result<(), CgroupError> {
        if limits.memory_bytes.is_some() || !fresh {
            let value = limits
                .memory_bytes
                .map_or_else(|| "-1".to_string(), |b| b.to_string());
            let limit_file = dir.join("memory.limit_in_bytes");
            if self.memsw {
                // The kernel keeps limit <= memsw at every step, so raise
                // memsw first and lower it last.
                let memsw_file = dir.join("memory.memsw.limit_in_bytes");
                // A new cgroup starts unlimited.
                let current = if fresh {
                    u64::MAX
                } else {
                    read_u64(&limit_file)?
                };
                let target = limits.memory_bytes.unwrap_or(u64::MAX);
                if memsw_first(current, target) {
                    write_limit(&memsw_file, &value)?;
                    write_limit(&limit_file, &value)?;
                } else {
                    write_limit(&limit_file, &value)?;
                    write_limit(&memsw_file, &value)?;
                }
            } else {
                write_limit(&limit_file, &value)?;
            }
        }
        // A new cgroup inherits its parent's swappiness, and the tree's
        // root gets it first, so other new cgroups need no write. Best
        // effort: older kernels refuse swappiness below a hierarchical
        // parent, and with memsw equal to the limit swap is off anyway.
        if root || !fresh {
            let swappiness = dir.join("memory.swappiness");
            if let Err(e) = write_limit(&swappiness, "0") {
                tracing::debug!(error = %e, "cgroup v1 swappiness not set");
            }
        }
        Ok(())
    }

    pub(super) fn stats(&self, path: &CgroupPath) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        if let Some(dir) = self.dir_of(Controller::Cpuacct, path) {
            stats.cpu_usage_nanos = Some(read_u64(&dir.join("cpuacct.usage"))?);
        }
        if let Some(dir) = self.dir_of(Controller::Memory, path) {
            let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
            let stat_path = dir.join("memory.stat");
            let stat = read_string(&stat_path)?;
            // total_* covers the subtree, which is what the usage counts.
            let inactive = match keyed_value(&stat_path, &stat, "total_inactive_file")? {
                Some(v) => v,
                None => keyed_value(&stat_path, &stat, "inactive_file")?.unwrap_or(0),
            };
            stats.memory_bytes = Some(usage.saturating_sub(inactive));
            stats.memory_limit = v1_memory_limit(read_u64(&dir.join("memory.limit_in_bytes"))?);
            let oom_path = dir.join("memory.oom_control");
            let oom_kill = match read_optional(&oom_path)? {
                Some(text) => keyed_value(&oom_path, &text, "oom_kill")?,
                None => None,
            };
            stats.oom_kills = match oom_kill {
                Some(n) => n,
                // Kernels before 4.13 do not count kills; hitting the limit
                // is the closest signal they give.
                None => read_u64(&dir.join("memory.failcnt"))?,
            };
        }
        if let Some(dir) = self.dir_of(Controller::Pids, path) {
            stats.pids_current = Some(read_u64(&dir.join("pids.current"))?);
        }
        Ok(stats)
    }

    /// Freezes (`true`) or thaws the cgroup and its subtree; `Ok(false)` when
    /// there is no freezer hierarchy or the cgroup is not in it.
    pub(super) fn set_frozen(&self, path: &CgroupPath, frozen: bool) -> Result<bool, CgroupError> {
        let Some(dir) = self.dir_of(Controller::Freezer, path) else {
            return Ok(false);
        };
        let state = dir.join("freezer.state");
        let value = if frozen { "FROZEN" } else { "THAWED" };
        match write_raw(&state, value) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(if frozen { "freeze" } else { "thaw" }, &state, e)),
        }
    }
}

fn apply_cpu(dir: &Path, limits: &Limits, fresh: bool) -> Result<(), CgroupError> {
    match limits.cpu_quota_us() {
        Some(quota) => {
            // A new cgroup has the kernel's default period, which is ours.
            if !fresh {
                write_limit(&dir.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
            }
            write_limit(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        None if !fresh => write_limit(&dir.join("cpu.cfs_quota_us"), "-1")?,
        None => {}
    }
    match limits.cpu_shares {
        Some(shares) => write_limit(&dir.join("cpu.shares"), &shares.to_string())?,
        None if !fresh => write_limit(&dir.join("cpu.shares"), &DEFAULT_SHARES.to_string())?,
        None => {}
    }
    Ok(())
}

fn apply_pids(dir: &Path, limits: &Limits, fresh: bool) -> Result<(), CgroupError> {
    match limits.pids_max {
        Some(max) => write_limit(&dir.join("pids.max"), &max.to_string()),
        None if !fresh => write_limit(&dir.join("pids.max"), "max"),
        None => Ok(()),
    }
}

/// Whether `memory.memsw.limit_in_bytes` must be written before
/// `memory.limit_in_bytes`: when the limit grows (or stays), since the
/// kernel rejects a limit above memsw and a memsw below the limit.
fn memsw_first(current_limit: u64, new_limit: u64) -> bool {
    new_limit >= current_limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memsw_ordering() {
        const UNLIMITED: u64 = 9_223_372_036_854_771_712;
        for (current, new, want) in [
            (UNLIMITED, 64 << 20, false),
            (64 << 20, 128 << 20, true),
            (128 << 20, 64 << 20, false),
            (64 << 20, 64 << 20, true),
            (64 << 20, u64::MAX, true),
        ] {
            assert_eq!(memsw_first(current, new), want, "{current} -> {new}");
        }
    }
}
