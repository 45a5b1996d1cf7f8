//! Sandbox processes seen from the agent: pidfds (to wait for and signal a
//! process, even one another agent instance started), process identity
//! (pid plus start time from `/proc`, plus the boot id, so a reused pid is
//! never mistaken for a sandbox), and the checkpoints that let a restarted
//! agent re-adopt running sandboxes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Opens a pidfd for `pid`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` through a pidfd: it cannot reach a process that reused
/// the pid. A process that has already exited is not an error.
pub fn pidfd_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Resolves when the process behind `fd` has exited.
pub async fn wait_exit(fd: &OwnedFd) -> io::Result<()> {
    let dup = fd.try_clone()?;
    // SAFETY: the AsyncFd owns `dup`, which stays open and unchanged
    // until the AsyncFd is dropped.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE)?
    };
    let _guard = afd.readable().await?;
    Ok(())
}

/// How a process ended, when we could learn it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// Not our child (a re-adopted sandbox): only its record can tell.
    Unknown,
}

/// Reaps our exited child `pid` (after its pidfd became readable) and
/// returns its status; other processes give `Unknown`.
pub fn reap(pid: u32) -> ExitStatus {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return ExitStatus::Unknown;
    };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid on a specific pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return ExitStatus::Unknown;
    }
    if libc::WIFEXITED(status) {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Unknown
    }
}

/// Field 22 (`starttime`, clock ticks after boot) of `/proc/PID/stat`.
/// The command name (field 2) may contain spaces and parentheses, so
/// fields are counted after its last `)`.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    // Field 22: starttime.
    crate::sandbox::spawn::stat_field(stat, 22)?.parse().ok()
}

/// The start time of process `pid` in clock ticks after boot.
pub fn start_ticks(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_ticks(&text).ok_or_else(|| io::Error::other(format!("unparsable /proc/{pid}/stat")))
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What identifies a running sandbox across agent restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_ticks: u64,
    pub boot_id: String,
}

impl ProcessIdentity {
    /// The identity of `pid` now.
    pub fn of(pid: u32, boot_id: &str) -> io::Result<ProcessIdentity> {
        Ok(ProcessIdentity {
            pid,
            start_ticks: start_ticks(pid)?,
            boot_id: boot_id.to_string(),
        })
    }

    /// A pidfd for the process if it is still the one recorded: same boot,
    /// same start time, checked again after opening to close the race with
    /// pid reuse.
    pub fn reopen(&self, boot_id: &str) -> Option<OwnedFd> {
        if self.boot_id != boot_id || start_ticks(self.pid).ok()? != self.start_ticks {
            return None;
        }
        let fd = pidfd_open(self.pid).ok()?;
        (start_ticks(self.pid).ok()? == self.start_ticks).then_some(fd)
    }
}

/// The pod a state directory belongs to (kept in [`super::journal`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCheckpoint {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// When the agent accepted the pod (`status.startTime`).
    pub start_time: DateTime<Utc>,
}

/// The latest run of a container (kept in [`super::journal`]), written
/// when its sandbox is spawned and when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpoint {
    pub attempt: u32,
    pub restart_count: u32,
    pub image: String,
    pub image_id: String,
    pub process: ProcessIdentity,
    pub spawned_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// The sandbox writes its termination record here.
    pub record_path: PathBuf,
}

/// Raises the soft open-file limit to the hard one: every sandbox costs
/// the agent a pidfd (and, while it starts, a pipe).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_are_read_after_the_command_name() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_start_ticks(stat), Some(987_654));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert_eq!(parse_start_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn own_identity_reopens_and_a_changed_one_does_not() {
        let boot = boot_id();
        let me = ProcessIdentity::of(std::process::id(), &boot).unwrap();
        assert!(me.reopen(&boot).is_some());
        let mut other = me.clone();
        other.start_ticks += 1;
        assert!(other.reopen(&boot).is_none());
        assert!(me.reopen("another-boot").is_none());
    }

    #[test]
    // The child is reaped by `reap`, which is what this test checks.
    #[allow(clippy::zombie_processes)]
    fn waits_for_signals_and_reaps_a_child() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let fd = pidfd_open(pid).unwrap();
        pidfd_signal(&fd, libc::SIGTERM).unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), wait_exit(&fd))
                .await
                .unwrap()
                .unwrap();
        });
        assert_eq!(reap(pid), ExitStatus::Signal(libc::SIGTERM));
        // Signalling a reaped process is harmless.
        pidfd_signal(&fd, libc::SIGTERM).unwrap();
        // Not a child of ours (any more): unknown.
        assert_eq!(reap(pid), ExitStatus::Unknown);
    }
}
