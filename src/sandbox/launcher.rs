//! The sandbox launcher: a small, single-threaded process that forks
//! sandboxes instead of having the agent `exec` a fresh `wasmk sandbox`
//! for every container (a zygote, as Android starts its apps).
//!
//! Why: a fresh sandbox pays for a `fork` of the agent (whose page tables
//! grow with the API server and the pods it tracks), an `exec` of the
//! binary, its dynamic relocations, a new wasmtime engine and the
//! deserialisation of the module: a few milliseconds of CPU each, and its
//! own private copy of every relocated page. The launcher pays those once.
//! It builds the sandbox engine and keeps each module it has been asked for
//! mapped and deserialised, then for each start:
//!
//! 1. receives a request over a Unix socket: the spec (JSON; no file is
//!    written), the write end of the sandbox's start pipe and the opened
//!    cgroup join files (as `SCM_RIGHTS`);
//! 2. forks the sandbox with `clone(CLONE_PARENT)`, so that it is the
//!    agent's child, as an exec'd one would be (`waitpid`, pidfds and exit
//!    statuses work unchanged); the agent also marks itself a child
//!    subreaper, so anything a sandbox leaves behind comes to it;
//! 3. the sandbox starts a new session, points stdio at `/dev/null`, joins
//!    its cgroups by writing `0` (the caller) to each join file, and only
//!    then reports its pid; the module runs inside its limits or not at
//!    all. It then runs the spec with the launcher's engine and the module
//!    as the launcher loaded and linked it (imports resolved once per
//!    module, not per sandbox), exactly as `wasmk sandbox --spec FILE` would, and shows
//!    `wasmk sandbox --pod NS/NAME --container C --uid UID` as its command
//!    line;
//! 4. the launcher answers with the pid, or with the error.
//!
//! The launcher must stay single-threaded, as `fork` copies only the
//! calling thread: it checks this before serving. It exits when the agent
//! closes its end of the socket (including when the agent dies). Sandboxes
//! share the launcher's address-space layout (as Android apps share the
//! zygote's); their memory stays isolated by the process boundary, and
//! wasm code cannot read host memory in any case.
//!
//! When the launcher cannot be used (it fails to start, dies, or answers
//! with an error) the agent falls back to [`super::spawn_sandbox`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmtime::Engine;

use super::engine::{EngineRole, new_engine};
use super::run::Prepared;
use super::spawn::{StartSignal, inherit_as, pipe, stat_field, unblock_signals};
use super::spec::{EXIT_START_ERROR, SandboxSpec};

/// The hidden subcommand that runs the launcher.
pub const LAUNCHER_SUBCOMMAND: &str = "sandbox-launcher";
/// The fd the launcher finds its socket on.
const SOCKET_FD: RawFd = 3;
/// Largest request: a spec, as JSON. Larger specs (huge environments) are
/// left to exec'd sandboxes, which read theirs from a file.
const MAX_REQUEST: usize = 128 * 1024;
/// Most descriptors in one request: the start pipe and one join file per
/// cgroup v1 hierarchy.
const MAX_FDS: usize = 16;
/// Modules kept deserialised in the launcher; the map is emptied when full.
const MAX_CACHED_MODULES: usize = 256;
/// How long the agent waits for an answer before giving up on the launcher.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// A launcher that died is not restarted sooner than this.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// Why a launch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the sandbox launcher is unavailable: {0}")]
    Unavailable(String),
    #[error("the sandbox launcher could not start the sandbox: {0}")]
    Failed(io::Error),
}

/// A sandbox the launcher started: the agent's child.
#[derive(Debug)]
pub struct Launched {
    pub pid: u32,
    pub start: StartSignal,
}

/// A spec encoded for the launcher, with the join files to pass.
struct Request<'a> {
    bytes: Vec<u8>,
    join: &'a [BorrowedFd<'a>],
}

impl<'a> Request<'a> {
    /// Encodes `spec`; refused (the caller execs instead) when it is too
    /// large for one message.
    fn new(spec: &SandboxSpec, join: &'a [BorrowedFd<'a>]) -> Result<Request<'a>, LaunchError> {
        let bytes = serde_json::to_vec(spec)
            .map_err(|e| LaunchError::Unavailable(format!("cannot encode the spec: {e}")))?;
        if bytes.len() > MAX_REQUEST || join.len() + 1 > MAX_FDS {
            return Err(LaunchError::Unavailable(format!(
                "request too large ({} bytes of spec, {} join files)",
                bytes.len(),
                join.len()
            )));
        }
        Ok(Request { bytes, join })
    }
}

/// The agent's handle on one launcher process. Its launches are
/// serialised; each takes a few hundred microseconds on an idle machine.
/// The agent runs a few (see [`Launchers`]).
pub struct Launcher {
    exe: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<Conn>,
    /// When the launcher last had to be (re)started.
    started: Option<Instant>,
}

impl State {
    /// The socket of a running launcher, started if need be.
    fn connect(&mut self, exe: &Path) -> Result<RawFd, LaunchError> {
        if self.conn.is_none() {
            if self
                .started
                .is_some_and(|at| at.elapsed() < RESTART_BACKOFF)
            {
                return Err(LaunchError::Unavailable(
                    "it stopped less than a second ago; not restarting yet".into(),
                ));
            }
            self.started = Some(Instant::now());
            let conn = start(exe).map_err(|e| {
                LaunchError::Unavailable(format!("cannot start {}: {e}", exe.display()))
            })?;
            self.conn = Some(conn);
        }
        match &self.conn {
            Some(c) => Ok(c.sock.as_raw_fd()),
            None => Err(LaunchError::Unavailable("not running".into())),
        }
    }
}

struct Conn {
    child: Child,
    sock: OwnedFd,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closing the socket ends the launcher; make sure and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// A launcher running `exe sandbox-launcher`, started on first use.
    /// The sandboxes it forks are this process's children; it also becomes
    /// a child subreaper, so whatever they leave behind comes to it rather
    /// than to init.
    pub fn new(exe: &Path) -> io::Result<Launcher> {
        // SAFETY: prctl with an integer argument.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Launcher {
            exe: exe.to_path_buf(),
            state: Mutex::new(State::default()),
        })
    }

    /// The launcher's pid, if it is running.
    pub fn pid(&self) -> Option<u32> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.conn.as_ref().map(|c| c.child.id())
    }

    /// Starts the sandbox for `spec` (sent over the socket, no file),
    /// joined to the cgroups whose join files (`tasks` on v1,
    /// `cgroup.procs` on v2) are given, before its module runs. Blocking.
    pub fn launch(
        &self,
        spec: &SandboxSpec,
        join: &[BorrowedFd<'_>],
    ) -> Result<Launched, LaunchError> {
        self.launch_request(&Request::new(spec, join)?)
    }

    /// Sends an encoded request, waiting for a launch in progress.
    fn launch_request(&self, request: &Request<'_>) -> Result<Launched, LaunchError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.launch_locked(&mut state, &request.bytes, request.join)
    }

    /// As [`Launcher::launch_request`], or `None` at once when another
    /// launch holds this launcher.
    fn try_launch_request(&self, request: &Request<'_>) -> Option<Result<Launched, LaunchError>> {
        let mut state = match self.state.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.launch_locked(&mut state, &request.bytes, request.join))
    }

    fn launch_locked(
        &self,
        state: &mut State,
        request: &[u8],
        join: &[BorrowedFd<'_>],
    ) -> Result<Launched, LaunchError> {
        let (read, write) = pipe().map_err(LaunchError::Failed)?;
        let mut fds = vec![write.as_raw_fd()];
        fds.extend(join.iter().map(|f| f.as_raw_fd()));
        // A launcher found dead when sending (it never saw the request) is
        // replaced once, right away.
        let mut attempts = 0;
        let sock = loop {
            attempts += 1;
            let sock = state.connect(&self.exe)?;
            match send_with_fds(sock, request, &fds) {
                Ok(()) => break sock,
                Err(e) => {
                    state.conn = None;
                    if attempts >= 2 {
                        return Err(LaunchError::Unavailable(e.to_string()));
                    }
                }
            }
        };
        let mut buf = [0u8; 8];
        let reply = recv_with_fds(sock, &mut buf, 0);
        drop(write);
        match reply {
            Ok((n, _)) if n == buf.len() => {}
            other => {
                // Out of step or gone: never reuse this connection.
                state.conn = None;
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "the launcher closed its socket".into(),
                };
                return Err(LaunchError::Unavailable(why));
            }
        }
        let (pid, errno) = decode(&buf);
        if errno != 0 {
            if pid != 0 {
                // It exits at once; it is ours to reap.
                wait_blocking(pid);
            }
            return Err(LaunchError::Failed(io::Error::from_raw_os_error(errno)));
        }
        if pid == 0 {
            return Err(LaunchError::Failed(io::Error::other(
                "no pid in the answer",
            )));
        }
        Ok(Launched {
            pid,
            start: StartSignal::from_fd(read),
        })
    }
}

/// Several launcher processes, so that starts overlap: while one waits for
/// its new sandbox to join its cgroups and report, another forks. A start
/// goes to the first idle launcher, or waits for one in turn.
pub struct Launchers {
    all: Vec<Launcher>,
    next: std::sync::atomic::AtomicUsize,
}

impl Launchers {
    /// `count` launchers (at least one) running `exe sandbox-launcher`,
    /// each started on first use.
    pub fn new(exe: &Path, count: usize) -> io::Result<Launchers> {
        let all = (0..count.max(1))
            .map(|_| Launcher::new(exe))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Launchers {
            all,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// As [`Launcher::launch`], on an idle launcher if there is one. A
    /// launcher that is unavailable (dead and not restarted yet) passes
    /// the start on; the caller hears why only when none can take it.
    pub fn launch(
        &self,
        spec: &SandboxSpec,
        join: &[BorrowedFd<'_>],
    ) -> Result<Launched, LaunchError> {
        let request = Request::new(spec, join)?;
        let mut unavailable = None;
        let mut busy = Vec::new();
        for (i, l) in self.all.iter().enumerate() {
            match l.try_launch_request(&request) {
                None => busy.push(i),
                Some(Err(e @ LaunchError::Unavailable(_))) => unavailable = Some(e),
                Some(r) => return r,
            }
        }
        if busy.is_empty() {
            return Err(
                unavailable.unwrap_or_else(|| LaunchError::Unavailable("no launcher".into()))
            );
        }
        // All working ones are busy: wait for one of them, in turn.
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.all[busy[turn % busy.len()]].launch_request(&request)
    }

    /// The pids of the launchers that are running.
    pub fn pids(&self) -> Vec<u32> {
        self.all.iter().filter_map(Launcher::pid).collect()
    }
}

/// Starts `exe sandbox-launcher` with its end of a new socket pair.
fn start(exe: &Path) -> io::Result<Conn> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two fresh descriptors.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let timeout = libc::timeval {
        tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    let sndbuf = libc::c_int::try_from(2 * MAX_REQUEST).unwrap_or(libc::c_int::MAX);
    // A refused buffer size leaves the default: larger specs then fall back
    // to exec.
    set_socket_option(&ours, libc::SO_SNDBUF, &sndbuf);
    set_socket_option(&ours, libc::SO_RCVTIMEO, &timeout);
    let child_fd = theirs.as_raw_fd();
    let mut cmd = Command::new(exe);
    // Room in the process's argument area for each sandbox to show its
    // pod there (see [`ArgArea::set_title`]).
    cmd.arg(LAUNCHER_SUBCOMMAND)
        .arg(" ".repeat(TITLE_ROOM))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: only async-signal-safe calls (sigprocmask, dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            unblock_signals();
            inherit_as(child_fd, SOCKET_FD)
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    Ok(Conn { child, sock: ours })
}

/// Bytes of padding argument the launcher is started with.
const TITLE_ROOM: usize = 1024;

/// Sets an integer-or-struct socket option; failures are ignored (each
/// option here has a working default).
fn set_socket_option<T>(sock: &OwnedFd, option: libc::c_int, value: &T) {
    // SAFETY: `value` points at a live `T` of the size passed.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

/// This process's argument area (`/proc/self/cmdline`, what `ps` shows):
/// the addresses the kernel recorded at exec. Forks share them, so the
/// launcher reads them once for all its sandboxes.
#[derive(Clone, Copy)]
struct ArgArea {
    start: usize,
    end: usize,
}

impl ArgArea {
    fn of_self() -> Option<ArgArea> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields 48 and 49: arg_start and arg_end.
        let start = stat_field(&stat, 48)?.parse().ok()?;
        let end = stat_field(&stat, 49)?.parse().ok()?;
        (end > start + 1).then_some(ArgArea { start, end })
    }

    /// Rewrites the command line in place; a longer title is cut. Forked
    /// sandboxes use it to show `wasmk sandbox --pod NS/NAME --container C
    /// --uid UID`, so operators and tools find a pod's process by its UID.
    fn set_title(self, title: &[u8]) {
        let room = self.end - self.start;
        let n = title.len().min(room - 1);
        // SAFETY: [start, end) is this process's argument area on its own
        // stack, mapped and writable for its whole life; nothing else
        // writes to it, and the strings std keeps pointers to stay
        // NUL-terminated.
        unsafe {
            let area = self.start as *mut u8;
            std::ptr::copy_nonoverlapping(title.as_ptr(), area, n);
            std::ptr::write_bytes(area.add(n), 0, room - n);
        }
    }
}

/// Waits for our child `pid` to exit (it is known to be exiting).
fn wait_blocking(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let mut status = 0;
    // SAFETY: waitpid on a specific pid with a valid status pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
}

/// Sends one datagram of `data` carrying `fds`.
fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive
    // the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer has room for one header and the fds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                payload,
            );
        }
    }
    loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one datagram into `buf`, with up to `max_fds` descriptors
/// (close-on-exec). A truncated datagram or descriptor list is an error.
fn recv_with_fds(sock: RawFd, buf: &mut [u8], max_fds: usize) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((max_fds.max(1) * size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; the buffers outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walks the control messages recvmsg filled in; each SCM_RIGHTS
    // payload holds descriptors that are now ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header) / size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated message",
        ));
    }
    Ok((n, fds))
}

/// The launcher process's `main`. Returns the exit status.
pub fn launcher_main() -> i32 {
    // SAFETY: fstat only inspects the descriptor.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(SOCKET_FD, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    };
    if !is_socket {
        eprintln!(
            "wasmk {LAUNCHER_SUBCOMMAND}: fd {SOCKET_FD} is not a socket; this command is run by the node agent"
        );
        return 2;
    }
    // SAFETY: fd 3 was handed to us to own.
    let sock = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    // SAFETY: fcntl on our own fd: the sandboxes must not inherit it past
    // an exec (they close it anyway).
    unsafe { libc::fcntl(SOCKET_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    let devnull = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => OwnedFd::from(f),
        Err(e) => {
            eprintln!("wasmk {LAUNCHER_SUBCOMMAND}: cannot open /dev/null: {e}");
            return 1;
        }
    };
    // Sandboxes that ask for a non-default stack build their own engine.
    let engine = new_engine(EngineRole::Sandbox, None).ok();
    super::run::warm_runtime_globals();
    match thread_count() {
        Some(1) => {}
        other => {
            eprintln!(
                "wasmk {LAUNCHER_SUBCOMMAND}: must be single-threaded to fork, has {other:?} threads"
            );
            return 1;
        }
    }
    let exe = std::env::args_os().next().unwrap_or_default();
    let area = ArgArea::of_self();
    if let Some(a) = area {
        a.set_title(&title(&exe, &[LAUNCHER_SUBCOMMAND.as_ref()]));
    }
    let mut modules: HashMap<PathBuf, Prepared> = HashMap::new();
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let (n, fds) = match recv_with_fds(sock.as_raw_fd(), &mut buf, MAX_FDS) {
            Ok((0, _)) => return 0,
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = reply(&sock, 0, libc::EINVAL);
                continue;
            }
            Err(_) => return 0,
        };
        let mut fds = fds.into_iter();
        let Some(start) = fds.next() else {
            let _ = reply(&sock, 0, libc::EINVAL);
            continue;
        };
        let joins: Vec<OwnedFd> = fds.collect();
        let spec = match serde_json::from_slice::<SandboxSpec>(&buf[..n]) {
            Ok(s) if s.check().is_ok() => s,
            // The agent falls back to exec, which reports the spec's fault.
            _ => {
                let _ = reply(&sock, 0, libc::EINVAL);
                continue;
            }
        };
        let prepared = match &engine {
            Some(e) if spec.max_wasm_stack_bytes.is_none() => preload(&mut modules, e, &spec),
            _ => None,
        };
        let pod = format!("{}/{}", spec.pod_namespace, spec.pod_name);
        let launch = Launch {
            title: title(
                &exe,
                &[
                    "sandbox".as_ref(),
                    "--pod".as_ref(),
                    pod.as_ref(),
                    "--container".as_ref(),
                    spec.container_name.as_ref(),
                    "--uid".as_ref(),
                    spec.pod_uid.as_ref(),
                ],
            ),
            area,
            sock: &sock,
            devnull: &devnull,
            start,
            joins,
            spec,
            engine: engine.clone(),
            prepared,
        };
        let (pid, errno) = launch.fork();
        if reply(&sock, pid, errno).is_err() {
            return 0;
        }
    }
}

/// A command line: the words NUL-separated.
fn title(exe: &OsStr, args: &[&OsStr]) -> Vec<u8> {
    let mut t = exe.as_bytes().to_vec();
    for a in args {
        t.push(0);
        t.extend_from_slice(a.as_bytes());
    }
    t
}

/// The module of `spec` loaded and linked, from the cache or prepared now.
/// A failure is left to the sandbox, which reports it in its termination
/// record.
fn preload(
    modules: &mut HashMap<PathBuf, Prepared>,
    engine: &Engine,
    spec: &SandboxSpec,
) -> Option<Prepared> {
    if let Some(p) = modules.get(&spec.artifact_path) {
        return Some(p.clone());
    }
    let prepared = Prepared::load(engine, spec).ok()?;
    if modules.len() >= MAX_CACHED_MODULES {
        modules.clear();
    }
    modules.insert(spec.artifact_path.clone(), prepared.clone());
    Some(prepared)
}

/// An answer (to the agent) or a report (sandbox to launcher): the
/// sandbox's pid and 0, or an errno.
fn encode(pid: u32, errno: i32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&pid.to_le_bytes());
    out[4..].copy_from_slice(&errno.to_le_bytes());
    out
}

fn decode(msg: &[u8; 8]) -> (u32, i32) {
    (
        u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]),
        i32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]),
    )
}

fn reply(sock: &OwnedFd, pid: u32, errno: i32) -> io::Result<()> {
    send_with_fds(sock.as_raw_fd(), &encode(pid, errno), &[])
}

/// Threads of this process (field 20 of `/proc/self/stat`).
fn thread_count() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_field(&stat, 20)?.parse().ok()
}

/// One start, in the launcher.
struct Launch<'a> {
    /// The sandbox's command line, as an exec'd one would have.
    title: Vec<u8>,
    area: Option<ArgArea>,
    sock: &'a OwnedFd,
    devnull: &'a OwnedFd,
    start: OwnedFd,
    joins: Vec<OwnedFd>,
    spec: SandboxSpec,
    engine: Option<Engine>,
    prepared: Option<Prepared>,
}

impl Launch<'_> {
    /// Forks the sandbox as a child of the launcher's parent (the agent);
    /// returns its pid and 0, or an errno (with the pid of a sandbox that
    /// failed to join, which the agent reaps).
    fn fork(self) -> (u32, i32) {
        let (read, write) = match pipe() {
            Ok(p) => p,
            Err(e) => return (0, e.raw_os_error().unwrap_or(libc::EIO)),
        };
        match clone_sibling() {
            Err(e) => (0, e.raw_os_error().unwrap_or(libc::EIO)),
            Ok(0) => {
                drop(read);
                self.sandbox(write)
            }
            Ok(pid) => {
                drop(write);
                let mut out = [0u8; 8];
                // The sandbox reports once it has joined its cgroups; if it
                // died first, the pipe closes with nothing in it (and the
                // agent reaps it by the pid given).
                if read_full(&read, &mut out) != out.len() {
                    return (pid, libc::ECHILD);
                }
                decode(&out)
            }
        }
    }

    /// The sandbox process: never returns.
    fn sandbox(self, report_fd: OwnedFd) -> ! {
        // SAFETY: plain syscalls on descriptors this process owns; the
        // socket belongs to the launcher and is closed here.
        unsafe {
            libc::close(self.sock.as_raw_fd());
            libc::setsid();
            for fd in 0..3 {
                libc::dup2(self.devnull.as_raw_fd(), fd);
            }
            libc::close(self.devnull.as_raw_fd());
        }
        unblock_signals();
        let mut errno = 0;
        for j in &self.joins {
            // "0" moves the writer: the thread (v1 `tasks`, and this
            // process has one) or the process (`cgroup.procs`).
            // SAFETY: write(2) of a static byte.
            if unsafe { libc::write(j.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
                errno = io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                break;
            }
        }
        drop(self.joins);
        if let Some(a) = self.area {
            a.set_title(&self.title);
        }
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        report(&report_fd, pid, errno);
        drop(report_fd);
        if errno != 0 {
            // SAFETY: leaves without running anything of the module.
            unsafe { libc::_exit(EXIT_START_ERROR) }
        }
        let spec = &self.spec;
        let record = super::run::run_with(spec, Some(self.start), self.engine, self.prepared);
        let code = super::run::finish(spec, record);
        // SAFETY: the record and logs are written; skip the launcher's exit
        // handlers.
        unsafe { libc::_exit(code) }
    }
}

/// `fork`, except that the child's parent is this process's parent:
/// `clone(CLONE_PARENT)`, which glibc has no wrapper for. Returns 0 in
/// the child and its pid in the caller.
///
/// The launcher is single-threaded and holds no lock when it calls this,
/// so the child is a complete copy, as after `fork`. What glibc's `fork`
/// would also do is refresh the thread id cached in the child's thread
/// descriptor; the child keeps the launcher's. glibc reads the real one
/// where it matters to a single process (`raise` and `abort` ask the
/// kernel, as after `vfork`), and the cached one only serves to tell
/// threads of one process apart, which a dead launcher's id still does.
fn clone_sibling() -> io::Result<u32> {
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and with a null stack has fork's
    // semantics (the child runs on a copy of this stack); every other
    // argument is unused with these flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        pid => Ok(u32::try_from(pid).unwrap_or(0)),
    }
}

fn report(fd: &OwnedFd, pid: u32, errno: i32) {
    let out = encode(pid, errno);
    // SAFETY: write(2) of a stack buffer to a pipe we own; 8 bytes are
    // below PIPE_BUF, so the write is atomic.
    unsafe { libc::write(fd.as_raw_fd(), out.as_ptr().cast(), out.len()) };
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: read(2) into the unfilled part of buf.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    got
}
