//! Thin cgroupfs file operations; every error carries the path and the
//! operation.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::CgroupError;

/// Wraps an IO error with the operation and path it failed on.
pub(super) fn io_err(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` to an existing cgroupfs file in one `write(2)`, as the
/// kernel parses each write as a whole value. Never creates the file: a
/// missing interface file means a missing controller, not something to make.
pub(super) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    let written = file.write(value.as_bytes())?;
    if written != value.len() {
        return Err(io::Error::new(
            ErrorKind::WriteZero,
            format!("short write: {written} of {} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Writes a non-limit value (`cgroup.procs`, `freezer.state`, ...).
pub(super) fn write_file(path: &Path, value: &str, op: &'static str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|e| io_err(op, path, e))
}

/// Whether the kernel refused a value (as opposed to the file being
/// unreachable): `EINVAL` for out-of-range values, `EBUSY` when memory cannot
/// be reclaimed below a new limit, `ERANGE`/`EOVERFLOW` for too-large numbers.
pub(super) fn is_rejection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EBUSY | libc::ERANGE | libc::EOVERFLOW)
    )
}

/// Writes a limit, telling a kernel rejection apart from an IO failure.
pub(super) fn write_limit(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| {
        if is_rejection(&source) {
            CgroupError::LimitRejected {
                path: path.to_path_buf(),
                value: value.to_string(),
                source,
            }
        } else {
            io_err("write limit", path, source)
        }
    })
}

/// Writes a file that only some kernels or configurations have
/// (`memory.swap.max`, `memory.memsw.*`); `Ok(false)` when it is absent.
pub(super) fn write_limit_if_present(path: &Path, value: &str) -> Result<bool, CgroupError> {
    match write_limit(path, value) {
        Ok(()) => Ok(true),
        Err(CgroupError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn read_string(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| io_err("read", path, e))
}

/// Reads a file that may legitimately be absent.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path, e)),
    }
}

/// Reads a file holding one unsigned number.
pub(super) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_string(path)?;
    parse_u64(path, &text)
}

pub(super) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: text.trim().to_string(),
    })
}

/// Creates the cgroup directory `dir` and any missing parents below
/// `mount`; returns whether the leaf was newly created (a fresh cgroup
/// already holds the kernel defaults). Never creates `mount` itself or
/// anything outside it: a missing mount is an error, not a directory to make.
pub(super) fn mkdir_all(mount: &Path, dir: &Path) -> Result<bool, CgroupError> {
    // The parent usually exists (pods before containers), so try the leaf first.
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => match dir.parent() {
            Some(parent) if parent != mount && parent.starts_with(mount) => {
                mkdir_all(mount, parent)?;
                match fs::create_dir(dir) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(io_err("create cgroup", dir, e)),
                }
            }
            _ => Err(io_err("create cgroup", dir, e)),
        },
        Err(e) => Err(io_err("create cgroup", dir, e)),
    }
}

/// The pids listed in a `cgroup.procs` file; none if the cgroup is gone.
pub(super) fn read_pids(procs: &Path) -> Result<Vec<u32>, CgroupError> {
    let Some(text) = read_optional(procs)? else {
        return Ok(Vec::new());
    };
    text.split_whitespace()
        .map(|p| {
            p.parse().map_err(|_| CgroupError::Parse {
                path: procs.to_path_buf(),
                content: p.to_string(),
            })
        })
        .collect()
}

/// `dir` and every cgroup below it, children before parents (the order
/// `rmdir` needs). Empty if `dir` does not exist.
pub(super) fn subtree_post_order(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    collect_post_order(dir, &mut out)?;
    Ok(out)
}

fn collect_post_order(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list cgroup", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list cgroup", dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| io_err("stat", &entry.path(), e))?
            .is_dir();
        if is_dir {
            collect_post_order(&entry.path(), out)?;
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

/// Removes one (empty) cgroup directory, retrying while the kernel reports it
/// busy: a killed process leaves `cgroup.procs` before it has fully exited.
/// A missing directory is fine.
pub(super) fn rmdir_with_retry(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut backoff = Backoff::new();
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                backoff.sleep();
            }
            Err(e) => return Err(io_err("remove cgroup", dir, e)),
        }
    }
}

/// Exponential sleep between polls of the kernel: short first (processes
/// usually die within a millisecond), capped so a long wait stays cheap.
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff(Duration::from_micros(500))
    }
    pub(super) fn sleep(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_errnos() {
        for (errno, rejected) in [
            (libc::EINVAL, true),
            (libc::EBUSY, true),
            (libc::ERANGE, true),
            (libc::EOVERFLOW, true),
            (libc::ENOENT, false),
            (libc::EACCES, false),
            (libc::EPERM, false),
            (libc::ENOSPC, false),
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(is_rejection(&e), rejected, "errno {errno}");
        }
    }

    #[test]
    fn write_never_creates_and_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cpu.max");
        match write_limit(&path, "max") {
            Err(CgroupError::Io {
                op,
                path: p,
                source,
            }) => {
                assert_eq!(op, "write limit");
                assert_eq!(p, path);
                assert_eq!(source.kind(), ErrorKind::NotFound);
            }
            other => panic!("got {other:?}"),
        }
        assert!(!path.exists());
        assert!(!write_limit_if_present(&path, "0").unwrap());
        fs::write(&path, "max 100000\n").unwrap();
        assert!(write_limit_if_present(&path, "5000 100000").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "5000 100000");
    }

    #[test]
    fn mkdir_all_reports_whether_the_leaf_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path();
        let leaf = mount.join("a/b/c");
        assert!(mkdir_all(mount, &leaf).unwrap());
        assert!(!mkdir_all(mount, &leaf).unwrap());
        assert!(mkdir_all(mount, &mount.join("a/b/d")).unwrap());
    }

    #[test]
    fn mkdir_all_never_creates_the_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path().join("memory");
        match mkdir_all(&mount, &mount.join("wasmk/pod1")) {
            Err(CgroupError::Io { op, path, source }) => {
                assert_eq!(op, "create cgroup");
                assert_eq!(path, mount.join("wasmk"));
                assert_eq!(source.kind(), ErrorKind::NotFound);
            }
            other => panic!("got {other:?}"),
        }
        assert!(!mount.exists());
    }

    #[test]
    fn pids_and_subtree_of_missing_cgroups_are_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        assert!(read_pids(&gone.join("cgroup.procs")).unwrap().is_empty());
        assert!(subtree_post_order(&gone).unwrap().is_empty());
        rmdir_with_retry(&gone, Instant::now()).unwrap();
    }

    #[test]
    fn bad_pid_lists_are_parse_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let procs = tmp.path().join("cgroup.procs");
        fs::write(&procs, "12\n34\n").unwrap();
        assert_eq!(read_pids(&procs).unwrap(), vec![12, 34]);
        fs::write(&procs, "12\nx\n").unwrap();
        match read_pids(&procs) {
            Err(CgroupError::Parse { path, content }) => {
                assert_eq!(path, procs);
                assert_eq!(content, "x");
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn subtree_lists_children_before_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        fs::create_dir_all(root.join("pod1/c1")).unwrap();
        fs::create_dir_all(root.join("pod1/c2")).unwrap();
        fs::write(root.join("pod1/cgroup.procs"), "").unwrap();
        let order = subtree_post_order(&root).unwrap();
        assert_eq!(order.len(), 4);
        let pos = |p: &str| order.iter().position(|o| *o == root.join(p)).unwrap();
        assert!(pos("pod1/c1") < pos("pod1"));
        assert!(pos("pod1/c2") < pos("pod1"));
        assert!(pos("pod1") < pos(""));
    }
}
