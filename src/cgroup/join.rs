//! Joining a cgroup from a freshly forked child, before `exec`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::CgroupError;
use super::fsio::io_err;

/// The `cgroup.procs` files of one cgroup, opened ahead of a fork so the
/// child can move itself in with nothing but `write(2)`.
///
/// Use: open it in the parent ([`super::CgroupManager::join`]), then call
/// [`CgroupJoin::join_self`] from `std::os::unix::process::CommandExt::pre_exec`.
/// The files are opened close-on-exec, so the child's program never sees
/// them; the parent closes them when the `CgroupJoin` is dropped.
#[derive(Debug)]
pub struct CgroupJoin {
    /// One open file per hierarchy (one on v2), with its path for errors.
    files: Vec<(PathBuf, File)>,
}

impl CgroupJoin {
    /// Opens each `cgroup.procs` file for writing.
    pub fn open(procs_files: &[PathBuf]) -> Result<CgroupJoin, CgroupError> {
        let files = procs_files
            .iter()
            .map(|path| {
                // std opens every file with O_CLOEXEC.
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map(|f| (path.clone(), f))
                    .map_err(|e| io_err("open for joining", path, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CgroupJoin { files })
    }

    /// The open files, for a process that joins by writing `0` itself.
    pub fn fds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.files.iter().map(|(_, f)| f.as_fd())
    }

    /// The `cgroup.procs` files this handle writes to.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Moves the calling process into the cgroup.
    ///
    /// Safe to call between `fork` and `exec` (in `pre_exec`): it only calls
    /// `getpid(2)` and `write(2)` on the already-open descriptors, formats
    /// the pid into a stack buffer, and builds its error from `errno`
    /// without allocating. It takes no locks and touches no heap.
    pub fn join_self(&self) -> io::Result<()> {
        // SAFETY: getpid has no preconditions and is async-signal-safe.
        let pid = unsafe { libc::getpid() };
        let mut buf = [0u8; 12];
        let digits = format_pid(pid.unsigned_abs(), &mut buf);
        for (_, file) in &self.files {
            // SAFETY: the fd is open for as long as `self` lives and `digits`
            // points into `buf`, valid for `digits.len()` bytes.
            let n = unsafe {
                libc::write(
                    file.as_raw_fd(),
                    digits.as_ptr().cast::<libc::c_void>(),
                    digits.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n as usize != digits.len() {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
        }
        Ok(())
    }
}

/// Decimal digits of `pid` at the end of `buf`, without allocating.
fn format_pid(mut pid: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_formatting() {
        for pid in [0u32, 1, 9, 10, 42, 4_194_304, u32::MAX] {
            let mut buf = [0u8; 12];
            assert_eq!(format_pid(pid, &mut buf), pid.to_string().as_bytes());
        }
    }

    #[test]
    fn join_self_writes_own_pid_to_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = ["cpu", "memory"]
            .iter()
            .map(|h| {
                let p = tmp.path().join(h).join("cgroup.procs");
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, "").unwrap();
                p
            })
            .collect();
        let join = CgroupJoin::open(&files).unwrap();
        assert_eq!(join.paths().collect::<Vec<_>>(), files);
        join.join_self().unwrap();
        for f in &files {
            assert_eq!(
                std::fs::read_to_string(f).unwrap(),
                std::process::id().to_string()
            );
        }
    }

    #[test]
    fn open_fails_naming_the_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("gone/cgroup.procs");
        match CgroupJoin::open(std::slice::from_ref(&missing)) {
            Err(CgroupError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("got {other:?}"),
        }
    }
}
