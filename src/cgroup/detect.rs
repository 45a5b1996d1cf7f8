//! Finding the cgroup hierarchies from `/proc/self/mountinfo` (pure parsing).
//!
//! A host is in one of three shapes:
//! - unified (v2 only): one `cgroup2` mount, usually `/sys/fs/cgroup`;
//! - legacy (v1 only): one `cgroup` mount per hierarchy, each carrying one or
//!   more controllers (`cpu,cpuacct` are often co-mounted);
//! - hybrid: v1 hierarchies plus a `cgroup2` mount (often
//!   `/sys/fs/cgroup/unified`) that holds no controller we use.
//!
//! We use v1 whenever a v1 hierarchy carries a resource controller we manage,
//! and v2 otherwise; an unused unified mount in a hybrid host is ignored.

use std::path::PathBuf;

use super::CgroupError;

/// Kernel names of cgroup v1 controllers; anything else in a v1 mount's
/// super options (`rw`, `name=systemd`, `clone_children`, ...) is not one.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Controllers whose presence on a v1 hierarchy makes us choose v1.
const V1_RESOURCE_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

/// One mounted cgroup v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mount: PathBuf,
    /// Controllers attached to this hierarchy, in mount-option order.
    pub controllers: Vec<String>,
}

impl V1Hierarchy {
    /// Whether `controller` is attached to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Every cgroup mount found in a mountinfo text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// v1 hierarchies that carry at least one controller (named-only
    /// hierarchies such as `name=systemd` are left out).
    pub v1: Vec<V1Hierarchy>,
    /// The `cgroup2` mount, if any.
    pub unified: Option<PathBuf>,
}

/// The hierarchy layout a manager works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1 (legacy or hybrid): one directory tree per hierarchy.
    V1 { hierarchies: Vec<V1Hierarchy> },
    /// cgroup v2: one tree.
    V2 { mount: PathBuf },
}

impl CgroupMounts {
    /// Picks the layout to manage: v1 when a v1 hierarchy carries a resource
    /// controller, else the unified mount.
    pub fn layout(self) -> Result<Layout, CgroupError> {
        let v1_resources = self
            .v1
            .iter()
            .any(|h| V1_RESOURCE_CONTROLLERS.iter().any(|c| h.has(c)));
        if v1_resources {
            return Ok(Layout::V1 {
                hierarchies: self.v1,
            });
        }
        match self.unified {
            Some(mount) => Ok(Layout::V2 { mount }),
            None => Err(CgroupError::NoHierarchy),
        }
    }
}

/// Parses a `/proc/<pid>/mountinfo` text into its cgroup mounts.
///
/// When a hierarchy is mounted more than once (bind mounts into containers),
/// the mount of its root (`/`) wins, else the first one seen.
pub fn parse_mountinfo(text: &str) -> Result<CgroupMounts, CgroupError> {
    let mut v1: Vec<(V1Hierarchy, bool)> = Vec::new();
    let mut unified: Option<(PathBuf, bool)> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry = parse_line(line)?;
        let is_root = entry.root == "/";
        match entry.fstype {
            "cgroup2" => {
                let better = match &unified {
                    None => true,
                    Some((_, prev_root)) => is_root && !prev_root,
                };
                if better {
                    unified = Some((entry.mount_point, is_root));
                }
            }
            "cgroup" => {
                let controllers: Vec<String> = entry
                    .super_options
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                if controllers.is_empty() {
                    continue;
                }
                let hierarchy = V1Hierarchy {
                    mount: entry.mount_point,
                    controllers,
                };
                match v1
                    .iter_mut()
                    .find(|(h, _)| h.controllers == hierarchy.controllers)
                {
                    Some(existing) => {
                        if is_root && !existing.1 {
                            *existing = (hierarchy, is_root);
                        }
                    }
                    None => v1.push((hierarchy, is_root)),
                }
            }
            _ => {}
        }
    }
    Ok(CgroupMounts {
        v1: v1.into_iter().map(|(h, _)| h).collect(),
        unified: unified.map(|(m, _)| m),
    })
}

/// The fields of one mountinfo line that matter here.
struct MountEntry<'a> {
    root: &'a str,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// fields 4 and 5 are root and mount point; after the `-` separator come the
/// file system type, the source and the super options.
fn parse_line(line: &str) -> Result<MountEntry<'_>, CgroupError> {
    let malformed = |reason: &'static str| CgroupError::Mountinfo {
        line: line.to_string(),
        reason,
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or_else(|| malformed("no ' - ' separator"))?;
    if sep < 6 {
        return Err(malformed("fewer than 6 fields before the separator"));
    }
    let fstype = fields
        .get(sep + 1)
        .ok_or_else(|| malformed("no file system type"))?;
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    Ok(MountEntry {
        root: fields[3],
        mount_point: PathBuf::from(unescape(fields[4])),
        fstype,
        super_options,
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash
/// (`\040`, `\011`, `\012`, `\134`) in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build machine: v1 controllers plus an unused unified mount.
    const HYBRID: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A typical systemd v1 host: co-mounted cpu,cpuacct and extra options.
    const LEGACY_COMOUNTED: &str = "\
25 19 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
";

    const UNIFIED: &str = "\
22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn hierarchy(mount: &str, controllers: &[&str]) -> V1Hierarchy {
        V1Hierarchy {
            mount: PathBuf::from(mount),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn layouts_from_sample_hosts() {
        let cases: Vec<(&str, &str, Result<Layout, ()>)> = vec![
            (
                "hybrid uses v1 and ignores the unified mount",
                HYBRID,
                Ok(Layout::V1 {
                    hierarchies: vec![
                        hierarchy("/sys/fs/cgroup/cpu", &["cpu"]),
                        hierarchy("/sys/fs/cgroup/cpuacct", &["cpuacct"]),
                        hierarchy("/sys/fs/cgroup/cpuset", &["cpuset"]),
                        hierarchy("/sys/fs/cgroup/memory", &["memory"]),
                        hierarchy("/sys/fs/cgroup/freezer", &["freezer"]),
                        hierarchy("/sys/fs/cgroup/pids", &["pids"]),
                    ],
                }),
            ),
            (
                "legacy with co-mounted cpu,cpuacct; name=systemd is no controller",
                LEGACY_COMOUNTED,
                Ok(Layout::V1 {
                    hierarchies: vec![
                        hierarchy("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]),
                        hierarchy("/sys/fs/cgroup/memory", &["memory"]),
                        hierarchy("/sys/fs/cgroup/pids", &["pids"]),
                    ],
                }),
            ),
            (
                "unified",
                UNIFIED,
                Ok(Layout::V2 {
                    mount: PathBuf::from("/sys/fs/cgroup"),
                }),
            ),
            (
                "no cgroup mount at all",
                "22 1 0:20 / /proc rw - proc proc rw\n",
                Err(()),
            ),
            (
                "only named and unused v1 hierarchies, no unified",
                "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                 41 31 0:38 / /sys/fs/cgroup/net_cls rw - cgroup cgroup rw,net_cls\n",
                Err(()),
            ),
        ];
        for (name, text, want) in cases {
            let got = parse_mountinfo(text).and_then(CgroupMounts::layout);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(CgroupError::NoHierarchy), Err(())) => {}
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn hybrid_records_the_unified_mount() {
        let mounts = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(
            mounts.unified,
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn missing_controllers_are_simply_absent() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(
            mounts.v1,
            vec![hierarchy("/sys/fs/cgroup/memory", &["memory"])]
        );
    }

    #[test]
    fn root_mount_wins_over_bind_mount_of_a_subtree() {
        let text = "\
50 40 0:32 /docker/abc /mnt/memory rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
60 40 0:32 /other /mnt/memory2 rw - cgroup cgroup rw,memory
";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(
            mounts.v1,
            vec![hierarchy("/sys/fs/cgroup/memory", &["memory"])]
        );
    }

    #[test]
    fn optional_fields_and_escaped_mount_points() {
        let text =
            "26 24 0:23 / /sys/fs/my\\040cgroup rw,relatime shared:4 master:2 - cgroup2 none rw\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts.unified, Some(PathBuf::from("/sys/fs/my cgroup")));
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for line in ["garbage", "1 2 3 4 - cgroup2 x rw", "1 2 0:1 / /x rw -"] {
            match parse_mountinfo(line) {
                Err(CgroupError::Mountinfo { line: got, .. }) => assert_eq!(got, line),
                other => panic!("{line:?}: got {other:?}"),
            }
        }
    }

    #[test]
    fn unescape_table() {
        for (input, want) in [
            ("plain", "plain"),
            ("a\\040b", "a b"),
            ("tab\\011x", "tab\tx"),
            ("back\\134slash", "back\\slash"),
            ("trailing\\04", "trailing\\04"),
            ("notoctal\\089", "notoctal\\089"),
            ("\\", "\\"),
        ] {
            assert_eq!(unescape(input), want, "{input}");
        }
    }
}
