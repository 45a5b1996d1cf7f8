//! Facts about the host the agent reports: CPUs, memory, disk and PID
//! usage, CPU time, and identity (kernel, OS, machine and boot ids).
//! Parsers are pure; the readers are thin.

use std::path::Path;

/// A snapshot of the host's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_total: u64,
    pub memory_available: u64,
    /// Size and free space of the file system holding the data dir.
    pub disk_capacity: u64,
    pub disk_available: u64,
    /// Tasks (processes and threads) in use, and the kernel's maximum.
    pub tasks: u64,
    pub pid_max: u64,
}

/// Who the host is (`status.nodeInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub hostname: String,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    /// Go's name for the architecture (`amd64`, `arm64`), as Kubernetes uses.
    pub architecture: String,
}

/// `key: value kB` lines of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        Some(match parts.next() {
            Some("kB") => n * 1024,
            _ => n,
        })
    })
}

/// Tasks in use from `/proc/loadavg` (`0.00 0.01 0.05 1/234 5678`).
pub fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// Busy and total CPU time in clock ticks from the `cpu` line of
/// `/proc/stat`; idle and iowait are not busy.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    if values.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `PRETTY_NAME` of an os-release file.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Logical CPUs online.
pub fn cpu_count() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// Clock ticks per second (`USER_HZ`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(100)
}

/// Size and free bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs with a NUL-terminated path and a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize;
    Some((st.f_blocks * frsize, st.f_bavail * frsize))
}

/// The host's resources now.
pub fn host_facts(data_dir: &Path) -> HostFacts {
    let meminfo = read("/proc/meminfo");
    let (disk_capacity, disk_available) = disk_space(data_dir).unwrap_or((0, 0));
    HostFacts {
        cpus: cpu_count(),
        memory_total: parse_meminfo(&meminfo, "MemTotal").unwrap_or(0),
        memory_available: parse_meminfo(&meminfo, "MemAvailable").unwrap_or(0),
        disk_capacity,
        disk_available,
        tasks: parse_loadavg_tasks(&read("/proc/loadavg")).unwrap_or(0),
        pid_max: read("/proc/sys/kernel/pid_max")
            .trim()
            .parse()
            .unwrap_or(32768),
    }
}

/// The node's CPU time: (busy, total) in nanoseconds.
pub fn cpu_time() -> Option<(u64, u64)> {
    let (busy, total) = parse_proc_stat(&read("/proc/stat"))?;
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    Some((busy * ns_per_tick, total * ns_per_tick))
}

/// The host's identity.
pub fn host_identity() -> HostIdentity {
    let os = parse_os_release(&read("/etc/os-release"))
        .or_else(|| parse_os_release(&read("/usr/lib/os-release")))
        .unwrap_or_else(|| "Linux".into());
    HostIdentity {
        hostname: crate::auth::pki::host_name().unwrap_or_else(|| "localhost".into()),
        kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os_image: os,
        machine_id: read("/etc/machine-id").trim().to_string(),
        system_uuid: read("/sys/class/dmi/id/product_uuid").trim().to_string(),
        boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_string(),
        architecture: match std::env::consts::ARCH {
            "x86_64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            "powerpc64" => "ppc64le".into(),
            other => other.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let meminfo = "MemTotal:       24684544 kB\nMemFree:  1 kB\nMemAvailable:   20311168 kB\nHugePages_Total: 0\n";
        assert_eq!(parse_meminfo(meminfo, "MemTotal"), Some(24_684_544 * 1024));
        assert_eq!(
            parse_meminfo(meminfo, "MemAvailable"),
            Some(20_311_168 * 1024)
        );
        assert_eq!(parse_meminfo(meminfo, "HugePages_Total"), Some(0));
        assert_eq!(parse_meminfo(meminfo, "Mem"), None);
        assert_eq!(parse_loadavg_tasks("0.00 0.01 0.05 1/234 5678"), Some(234));
        assert_eq!(parse_loadavg_tasks("garbage"), None);
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_proc_stat(stat), Some((161, 1181)));
        assert_eq!(parse_proc_stat("intr 1 2"), None);
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
    }

    #[test]
    fn live_host_has_sane_facts() {
        let f = host_facts(Path::new("/"));
        assert!(f.cpus >= 1);
        assert!(f.memory_total >= f.memory_available && f.memory_total > 0);
        assert!(f.disk_capacity >= f.disk_available && f.disk_capacity > 0);
        assert!(f.pid_max > 0);
        let (busy, total) = cpu_time().unwrap();
        assert!(total >= busy && total > 0);
    }
}
