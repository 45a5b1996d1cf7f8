//! Usage figures of a cgroup and the parsing of the kernel's stat files
//! (pure).

use std::path::Path;

use super::CgroupError;

/// What a cgroup has used; fields whose controller is not available are
/// `None` (see [`super::CgroupManager::controllers`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Total CPU time consumed, in nanoseconds.
    pub cpu_usage_nanos: Option<u64>,
    /// Working set as the kubelet reports it: usage minus inactive file
    /// cache (the part the kernel could drop without pressure).
    pub memory_bytes: Option<u64>,
    /// The memory limit; `None` when unlimited or without a memory controller.
    pub memory_limit: Option<u64>,
    /// Tasks (processes and threads) in the cgroup.
    pub pids_current: Option<u64>,
    /// Processes the OOM killer killed in this cgroup: what makes a
    /// container's termination reason `OOMKilled`. On v1 kernels older than
    /// 4.13 this falls back to `memory.failcnt` (times the limit was hit).
    pub oom_kills: u64,
}

/// The value of `key` in a flat keyed file (`memory.stat`, `memory.events`,
/// `cpu.stat`, v1 `memory.oom_control`): lines of `key value`.
pub fn keyed_value(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(key) {
            let value = parts.next().unwrap_or("");
            return value.parse().map(Some).map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                content: line.to_string(),
            });
        }
    }
    Ok(None)
}

/// A v2 limit file (`memory.max`, `pids.max`): a number or `max`.
pub fn parse_max(path: &Path, text: &str) -> Result<Option<u64>, CgroupError> {
    match text.trim() {
        "max" => Ok(None),
        value => value.parse().map(Some).map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            content: value.to_string(),
        }),
    }
}

/// v1 reports "no memory limit" as the largest page-aligned `i64`
/// (`9223372036854771712` with 4 KiB pages); anything this large is no limit.
pub fn v1_memory_limit(bytes: u64) -> Option<u64> {
    (bytes < 1 << 62).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY_STAT_V2: &str =
        "anon 1048576\nfile 8192\nkernel 4096\ninactive_file 4096\nactive_file 4096\n";

    #[test]
    fn keyed_values() {
        let p = Path::new("memory.stat");
        let cases: Vec<(&str, &str, Option<u64>)> = vec![
            (MEMORY_STAT_V2, "anon", Some(1_048_576)),
            (MEMORY_STAT_V2, "inactive_file", Some(4096)),
            (MEMORY_STAT_V2, "file", Some(8192)),
            (MEMORY_STAT_V2, "shmem", None),
            (
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
                "oom_kill",
                Some(3),
            ),
            (
                "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
                "oom",
                Some(2),
            ),
            (
                "usage_usec 1234\nuser_usec 1000\n",
                "usage_usec",
                Some(1234),
            ),
            ("", "anon", None),
        ];
        for (text, key, want) in cases {
            assert_eq!(
                keyed_value(p, text, key).unwrap(),
                want,
                "{key} in {text:?}"
            );
        }
    }

    #[test]
    fn keyed_value_with_garbage_names_file_and_line() {
        let p = Path::new("/cg/memory.events");
        match keyed_value(p, "oom_kill many\n", "oom_kill") {
            Err(CgroupError::Parse { path, content }) => {
                assert_eq!(path, p);
                assert_eq!(content, "oom_kill many");
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn max_values() {
        let p = Path::new("memory.max");
        assert_eq!(parse_max(p, "max\n").unwrap(), None);
        assert_eq!(parse_max(p, "67108864\n").unwrap(), Some(64 << 20));
        assert!(matches!(parse_max(p, "-1"), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn v1_unlimited_memory() {
        assert_eq!(v1_memory_limit(9_223_372_036_854_771_712), None);
        assert_eq!(v1_memory_limit(9_223_372_036_854_710_272), None);
        assert_eq!(v1_memory_limit(64 << 20), Some(64 << 20));
    }
}
