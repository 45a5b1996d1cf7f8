//! cgroup v2: one unified tree; a controller reaches a cgroup only when
//! every ancestor lists it in `cgroup.subtree_control`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::fsio::{
    io_err, mkdir_all, read_optional, read_string, read_u64, write_file, write_limit,
    write_limit_if_present, write_raw,
};
use super::limits::{CFS_PERIOD_US, DEFAULT_WEIGHT, Limits, shares_to_weight};
use super::stats::{Stats, keyed_value, parse_max};
use super::{CgroupError, CgroupPath, Controller};

/// Controllers we enable and use on v2. CPU accounting (`cpu.stat`) and the
/// freezer are part of the core and need no controller.
const MANAGED: &[Controller] = &[Controller::Cpu, Controller::Memory, Controller::Pids];

/// The v2 manager.
#[derive(Clone, Debug)]
pub(super) struct V2 {
    mount: PathBuf,
    /// Managed controllers offered at the mount's root (`cgroup.controllers`).
    controllers: Vec<Controller>,
}

impl V2 {
    /// Reads which controllers the hierarchy offers.
    pub(super) fn new(mount: PathBuf) -> Result<V2, CgroupError> {
        let offered = read_string(&mount.join("cgroup.controllers"))?;
        let controllers = MANAGED
            .iter()
            .copied()
            .filter(|c| offered.split_whitespace().any(|o| o == c.name()))
            .collect();
        Ok(V2 { mount, controllers })
    }

    pub(super) fn controllers(&self) -> Vec<Controller> {
        self.controllers.clone()
    }

    pub(super) fn dir(&self, path: &CgroupPath) -> PathBuf {
        self.mount.join(path.as_str())
    }

    pub(super) fn create(&self, path: &CgroupPath, limits: &Limits) -> Result<bool, CgroupError> {
        let dir = self.dir(path);
        let fresh = mkdir_all(&self.mount, &dir)?;
        // Every ancestor from the hierarchy root down to the parent must
        // delegate the controllers; the leaf itself keeps none, so it may
        // hold processes ("no internal processes" rule).
        let mut ancestor = self.mount.clone();
        self.enable_in_subtree(&ancestor)?;
        let components: Vec<&str> = path.as_str().split('/').collect();
        for component in &components[..components.len() - 1] {
            ancestor.push(component);
            self.enable_in_subtree(&ancestor)?;
        }
        for controller in &self.controllers {
            match controller {
                Controller::Cpu => apply_cpu(&dir, limits, fresh)?,
                Controller::Memory => apply_memory(&dir, limits, fresh)?,
                Controller::Pids => apply_pids(&dir, limits, fresh)?,
                Controller::Cpuacct | Controller::Freezer => {}
            }
        }
        Ok(fresh)
    }

    fn enable_in_subtree(&self, dir: &Path) -> Result<(), CgroupError> {
        let control = dir.join("cgroup.subtree_control");
        let enabled = read_string(&control)?;
        if self
            .controllers
            .iter()
            .all(|c| enabled.split_whitespace().any(|e| e == c.name()))
        {
            return Ok(());
        }
        let available = read_string(&dir.join("cgroup.controllers"))?;
        if let Some(additions) = subtree_additions(&self.controllers, &enabled, &available) {
            write_file(&control, &additions, "enable controllers in")?;
        }
        Ok(())
    }

    pub(super) fn stats(&self, path: &CgroupPath) -> Result<Stats, CgroupError> {
        let dir = self.dir(path);
        let mut stats = Stats::default();
        let cpu_stat = dir.join("cpu.stat");
        if let Some(text) = read_optional(&cpu_stat)? {
            stats.cpu_usage_nanos =
                keyed_value(&cpu_stat, &text, "usage_usec")?.map(|us| us.saturating_mul(1000));
        }
        if self.controllers.contains(&Controller::Memory) {
            let current = read_u64(&dir.join("memory.current"))?;
            let stat_path = dir.join("memory.stat");
            let stat = read_string(&stat_path)?;
            let inactive = keyed_value(&stat_path, &stat, "inactive_file")?.unwrap_or(0);
            stats.memory_bytes = Some(current.saturating_sub(inactive));
            let max_path = dir.join("memory.max");
            stats.memory_limit = parse_max(&max_path, &read_string(&max_path)?)?;
            let events = dir.join("memory.events");
            stats.oom_kills =
                keyed_value(&events, &read_string(&events)?, "oom_kill")?.unwrap_or(0);
        }
        if self.controllers.contains(&Controller::Pids) {
            stats.pids_current = Some(read_u64(&dir.join("pids.current"))?);
        }
        Ok(stats)
    }

    /// Kills the whole subtree with `cgroup.kill` (Linux 5.14+); `Ok(false)`
    /// when the kernel lacks it.
    pub(super) fn kill(&self, path: &CgroupPath) -> Result<bool, CgroupError> {
        let file = self.dir(path).join("cgroup.kill");
        match write_raw(&file, "1") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("kill", &file, e)),
        }
    }

    /// Freezes (`true`) or thaws the subtree with `cgroup.freeze` (Linux
    /// 5.2+); `Ok(false)` when the kernel lacks it.
    pub(super) fn set_frozen(&self, path: &CgroupPath, frozen: bool) -> Result<bool, CgroupError> {
        let file = self.dir(path).join("cgroup.freeze");
        match write_raw(&file, if frozen { "1" } else { "0" }) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(if frozen { "freeze" } else { "thaw" }, &file, e)),
        }
    }
}

fn apply_cpu(dir: &Path, limits: &Limits, fresh: bool) -> Result<(), CgroupError> {
    let max = dir.join("cpu.max");
    match limits.cpu_quota_us() {
        Some(quota) => write_limit(&max, &format!("{quota} {CFS_PERIOD_US}"))?,
        None if !fresh => write_limit(&max, &format!("max {CFS_PERIOD_US}"))?,
        None => {}
    }
    let weight = dir.join("cpu.weight");
    match limits.cpu_shares {
        Some(shares) => write_limit(&weight, &shares_to_weight(shares).to_string())?,
        None if !fresh => write_limit(&weight, &DEFAULT_WEIGHT.to_string())?,
        None => {}
    }
    Ok(())
}

fn apply_memory(dir: &Path, limits: &Limits, fresh: bool) -> Result<(), CgroupError> {
    let max = dir.join("memory.max");
    match limits.memory_bytes {
        Some(bytes) => write_limit(&max, &bytes.to_string())?,
        None if !fresh => write_limit(&max, "max")?,
        None => {}
    }
    // Kubernetes' default (NoSwap): containers never swap. The file is absent
    // without swap accounting.
    write_limit_if_present(&dir.join("memory.swap.max"), "0")?;
    Ok(())
}

fn apply_pids(dir: &Path, limits: &Limits, fresh: bool) -> Result<(), CgroupError> {
    match limits.pids_max {
        Some(max) => write_limit(&dir.join("pids.max"), &max.to_string()),
        None if !fresh => write_limit(&dir.join("pids.max"), "max"),
        None => Ok(()),
    }
}

/// The `cgroup.subtree_control` line enabling the wanted controllers that
/// are `available` here but not yet `enabled` (`+cpu +pids`), if any.
fn subtree_additions(wanted: &[Controller], enabled: &str, available: &str) -> Option<String> {
    let additions: Vec<String> = wanted
        .iter()
        .map(|c| c.name())
        .filter(|name| !enabled.split_whitespace().any(|e| e == *name))
        .filter(|name| available.split_whitespace().any(|a| a == *name))
        .map(|name| format!("+{name}"))
        .collect();
    (!additions.is_empty()).then(|| additions.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_additions_table() {
        let all = MANAGED;
        for (enabled, available, want) in [
            ("", "cpuset cpu io memory pids", Some("+cpu +memory +pids")),
            ("cpu memory pids\n", "cpu io memory pids", None),
            ("cpu\n", "cpu memory pids", Some("+memory +pids")),
            ("", "cpu memory", Some("+cpu +memory")),
            ("", "io", None),
            ("memory io", "cpu memory pids io", Some("+cpu +pids")),
        ] {
            assert_eq!(
                subtree_additions(all, enabled, available).as_deref(),
                want,
                "enabled {enabled:?}, available {available:?}"
            );
        }
        assert_eq!(
            subtree_additions(&[Controller::Memory], "", "cpu memory pids").as_deref(),
            Some("+memory")
        );
    }
}
