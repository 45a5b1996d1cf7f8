//! Starting sandbox processes (the node agent's side).
//!
//! The child is `EXE sandbox --spec FILE`, with:
//! - its own session and process group (`setsid`), so signals aimed at the
//!   agent's group (a terminal's Ctrl-C, a service manager's stop) do not
//!   reach pods, and the agent can signal one sandbox as a group;
//! - its cgroups joined in `pre_exec`, before `exec`, so the module never
//!   runs outside its limits (the caller passes a [`PreExecJoin`]);
//! - stdin, stdout and stderr on `/dev/null`: module output goes to the log
//!   file named in the spec;
//! - the write end of a start pipe as fd [`START_FD`]; the sandbox writes
//!   one byte when the module's entry point is about to run and the pipe
//!   closes when the sandbox exits, so the agent learns "Running" or
//!   "failed before start" without polling.
//!
//! No `PR_SET_PDEATHSIG`: sandboxes must outlive an agent restart (the new
//! agent re-adopts them by pod UID), so they are deliberately not tied to
//! the agent's lifetime.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::run::START_FD_ENV;

/// The fd number the start pipe has in the sandbox.
pub const START_FD: RawFd = 3;

/// Joins the calling process to its cgroups. Called in the child between
/// `fork` and `exec`, so implementations must be async-signal-safe: no
/// allocation, no locks, only raw syscalls such as `write(2)` of the pid
/// into already-open `cgroup.procs` files.
pub trait PreExecJoin: Sync {
    /// Moves the calling process into the cgroup(s).
    fn join_self(&self) -> io::Result<()>;
}

/// Errors starting a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the start pipe for sandbox {spec}: {source}")]
    Pipe { spec: PathBuf, source: io::Error },
    #[error("cannot start sandbox {exe} --spec {spec}: {source}")]
    Spawn {
        exe: PathBuf,
        spec: PathBuf,
        source: io::Error,
    },
    #[error("cannot read the start pipe of sandbox pid {pid}: {source}")]
    StartPipe { pid: u32, source: io::Error },
}

/// Whether the module got as far as its entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartStatus {
    /// The entry point is running (or has run).
    Started,
    /// The sandbox exited without starting the module; its termination
    /// record (if any) says why.
    ExitedBeforeStart,
}

/// The agent's end of a sandbox's start pipe.
#[derive(Debug)]
pub struct StartSignal {
    fd: OwnedFd,
}

impl StartSignal {
    /// The read end of a start pipe.
    pub(crate) fn from_fd(fd: OwnedFd) -> StartSignal {
        StartSignal { fd }
    }

    /// Blocks until the sandbox reports the start or exits.
    pub fn wait_blocking(self) -> io::Result<StartStatus> {
        let mut file = std::fs::File::from(self.fd);
        let mut byte = [0u8; 1];
        loop {
            match file.read(&mut byte) {
                Ok(0) => return Ok(StartStatus::ExitedBeforeStart),
                Ok(_) => return Ok(StartStatus::Started),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits without blocking the tokio runtime.
    pub async fn wait(self) -> io::Result<StartStatus> {
        use tokio::io::AsyncReadExt;
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(self.fd)?;
        let mut byte = [0u8; 1];
        match rx.read(&mut byte).await? {
            0 => Ok(StartStatus::ExitedBeforeStart),
            _ => Ok(StartStatus::Started),
        }
    }

    /// The raw descriptor, e.g. to register with another event loop.
    pub fn into_owned_fd(self) -> OwnedFd {
        self.fd
    }
}

/// A sandbox started with [`spawn_sandbox`].
#[derive(Debug)]
pub struct SandboxChild {
    pub child: std::process::Child,
    pub start: StartSignal,
}

/// A sandbox started with [`spawn_sandbox_tokio`].
#[derive(Debug)]
pub struct TokioSandboxChild {
    pub child: tokio::process::Child,
    pub start: StartSignal,
}

/// Starts `exe sandbox --spec spec_path` as described in the module docs,
/// joining `join`'s cgroups before exec when given.
pub fn spawn_sandbox(
    exe: &Path,
    spec_path: &Path,
    join: Option<&dyn PreExecJoin>,
) -> Result<SandboxChild, SpawnError> {
    spawn_with(exe, spec_path, join, |cmd| cmd.spawn())
        .map(|(child, start)| SandboxChild { child, start })
}

/// Like [`spawn_sandbox`] but returns a `tokio::process::Child` to await.
/// Must be called within a tokio runtime.
pub fn spawn_sandbox_tokio(
    exe: &Path,
    spec_path: &Path,
    join: Option<&dyn PreExecJoin>,
) -> Result<TokioSandboxChild, SpawnError> {
    spawn_with(exe, spec_path, join, |cmd| {
        tokio::process::Command::from(std::mem::replace(cmd, Command::new("/")))
            .kill_on_drop(false)
            .spawn()
    })
    .map(|(child, start)| TokioSandboxChild { child, start })
}

/// A pointer the `pre_exec` closure can carry. The closure runs only inside
/// `spawn` (in the forked child), and the `Command` holding it is dropped
/// before [`spawn_with`] returns, so the borrow it stands for is live
/// whenever it is used.
#[derive(Clone, Copy)]
struct JoinPtr(*const (dyn PreExecJoin + 'static));
// SAFETY: only dereferenced in the forked child, which has one thread.
unsafe impl Send for JoinPtr {}
// SAFETY: as above.
unsafe impl Sync for JoinPtr {}

fn spawn_with<C>(
    exe: &Path,
    spec_path: &Path,
    join: Option<&dyn PreExecJoin>,
    spawn: impl FnOnce(&mut Command) -> io::Result<C>,
) -> Result<(C, StartSignal), SpawnError> {
    let (read, write) = pipe().map_err(|source| SpawnError::Pipe {
        spec: spec_path.to_path_buf(),
        source,
    })?;
    let write_fd = write.as_raw_fd();
    let join = join.map(|j| {
        // SAFETY: erases the borrow's lifetime; see `JoinPtr` for why the
        // pointer never outlives it.
        JoinPtr(unsafe {
            std::mem::transmute::<*const dyn PreExecJoin, *const (dyn PreExecJoin + 'static)>(
                j as *const dyn PreExecJoin,
            )
        })
    });
    let mut cmd = Command::new(exe);
    cmd.arg("sandbox")
        .arg("--spec")
        .arg(spec_path)
        .env(START_FD_ENV, START_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only makes async-signal-safe calls (setsid,
    // sigprocmask, dup2, fcntl and the join, which promises the same).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Threads of the agent may block signals; the sandbox must see
            // SIGTERM.
            unblock_signals();
            if let Some(JoinPtr(join)) = join {
                (*join).join_self()?;
            }
            inherit_as(write_fd, START_FD)
        });
    }
    let result = spawn(&mut cmd);
    // Drops the closure (and with it the join pointer) before returning.
    drop(cmd);
    // Only the child may hold the write end, so EOF means it exited.
    drop(write);
    let child = result.map_err(|source| SpawnError::Spawn {
        exe: exe.to_path_buf(),
        spec: spec_path.to_path_buf(),
        source,
    })?;
    Ok((child, StartSignal { fd: read }))
}

/// Field `field` (numbered from 1, as in proc(5)) of a `/proc/PID/stat`
/// text. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from after its last `)`.
pub fn stat_field(stat: &str, field: usize) -> Option<&str> {
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .nth(field.checked_sub(3)?)
}

/// Empties the calling thread's signal mask. Async-signal-safe.
pub(crate) fn unblock_signals() {
    // SAFETY: sigemptyset and sigprocmask on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Makes `fd` available as `target` across `exec` (for `pre_exec`; only
/// async-signal-safe calls).
pub(crate) fn inherit_as(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors the caller owns.
    let r = unsafe {
        if fd == target {
            // dup2 onto itself would keep close-on-exec set.
            libc::fcntl(target, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A pipe whose ends are close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: fds has room for two descriptors. Close-on-exec keeps other
    // children spawned concurrently from inheriting (and holding open) the
    // write end.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the pid into an open file, like a cgroup.procs join.
    struct FileJoin(std::fs::File);

    impl PreExecJoin for FileJoin {
        fn join_self(&self) -> io::Result<()> {
            let mut buf = [0u8; 12];
            // SAFETY: getpid is async-signal-safe.
            let mut pid = unsafe { libc::getpid() } as u32;
            let mut i = buf.len();
            loop {
                i -= 1;
                buf[i] = b'0' + (pid % 10) as u8;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            // SAFETY: write(2) of a stack buffer.
            let n =
                unsafe { libc::write(self.0.as_raw_fd(), buf[i..].as_ptr().cast(), buf.len() - i) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    }

    struct FailingJoin;

    impl PreExecJoin for FailingJoin {
        fn join_self(&self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EACCES))
        }
    }

    /// A stand-in "sandbox": a shell script that checks the contract.
    fn fake_exe(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-sandbox");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn child_gets_session_join_and_start_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Reports its args, session leadership and the env var, then
        // signals start on fd 3.
        let exe = fake_exe(
            dir.path(),
            &format!(
                "echo \"$@\" > {out}; cut -d' ' -f6 /proc/$$/stat >> {out}; echo $$ >> {out}; \
                 echo ${START_FD_ENV} >> {out}; printf S >&3",
                out = out.display()
            ),
        );
        let procs = dir.path().join("cgroup.procs");
        let join = FileJoin(std::fs::File::create(&procs).unwrap());
        let mut sandbox = spawn_sandbox(&exe, Path::new("/spec.json"), Some(&join)).unwrap();
        assert_eq!(sandbox.start.wait_blocking().unwrap(), StartStatus::Started);
        assert!(sandbox.child.wait().unwrap().success());
        let pid = sandbox.child.id();
        let report = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = report.lines().map(str::trim).collect();
        assert_eq!(lines[0], "sandbox --spec /spec.json");
        assert_eq!(lines[1], lines[2], "the sandbox leads its own session");
        assert_eq!(lines[2], pid.to_string());
        assert_eq!(lines[3], START_FD.to_string());
        assert_eq!(std::fs::read_to_string(&procs).unwrap(), pid.to_string());
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 4), Some("1"));
        assert_eq!(stat_field(stat, 20), Some("3"));
        assert_eq!(stat_field(stat, 22), Some("987654"));
        assert_eq!(stat_field(stat, 23), None);
        assert_eq!(stat_field(stat, 2), None);
        assert_eq!(stat_field("garbage", 3), None);
    }

    #[test]
    fn exit_without_start_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let exe = fake_exe(dir.path(), "exit 7");
        let mut sandbox = spawn_sandbox(&exe, Path::new("/spec.json"), None).unwrap();
        assert_eq!(
            sandbox.start.wait_blocking().unwrap(),
            StartStatus::ExitedBeforeStart
        );
        assert_eq!(sandbox.child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn failed_join_fails_the_spawn() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let exe = fake_exe(dir.path(), &format!("touch {}", ran.display()));
        let err = spawn_sandbox(&exe, Path::new("/spec.json"), Some(&FailingJoin)).unwrap_err();
        assert!(matches!(err, SpawnError::Spawn { .. }), "{err}");
        assert!(!ran.exists(), "the program must not run outside its cgroup");
    }

    #[test]
    fn tokio_variant_reports_start() {
        let dir = tempfile::tempdir().unwrap();
        let exe = fake_exe(dir.path(), "printf S >&3; sleep 0.1");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut sandbox = spawn_sandbox_tokio(&exe, Path::new("/s"), None).unwrap();
            assert_eq!(sandbox.start.wait().await.unwrap(), StartStatus::Started);
            assert!(sandbox.child.wait().await.unwrap().success());
        });
    }
}
