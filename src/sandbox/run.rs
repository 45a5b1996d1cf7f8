//! The sandbox process: loads one precompiled artifact and runs it under
//! WASI with exactly what the spec grants, then writes the termination
//! record.
//!
//! Threads and runtime: wasmtime-wasi implements WASI on tokio. Its
//! "synchronous" bindings still start a multi-threaded tokio runtime (one
//! worker per core) on first use, so the sandbox instead runs the async
//! bindings on a current-thread runtime: one OS thread for an idle pod, and
//! a module sleeping in a WASI clock wait parks the process in
//! `epoll_wait`. File operations of core modules borrow a blocking-pool
//! thread that exits a second after its last use.
//!
//! Stopping: SIGTERM and SIGINT run a handler that only stores a flag, bumps
//! the engine epoch and writes a byte to a non-blocking pipe (all
//! async-signal-safe). Wasm that is computing reaches an epoch check and the
//! deadline callback traps it; wasm waiting in a host call is abandoned when
//! the pipe becomes readable. Either way the record says `Terminated`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::engine::{EngineRole, new_engine};
use super::logs::{CriLogWriter, LogStream};
use super::spec::{
    EXIT_OOM, EXIT_START_ERROR, EXIT_TERMINATED, EXIT_TRAP, ModuleKind, SandboxSpec,
    TerminationReason, TerminationRecord,
};

/// Environment variable naming the inherited fd on which the sandbox writes
/// one byte when the module's entry point is about to run (set by
/// [`crate::sandbox::spawn`]). The module never sees the sandbox's own
/// environment.
pub const START_FD_ENV: &str = "WASMK_SANDBOX_START_FD";

static ENGINE: OnceLock<Engine> = OnceLock::new();
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
static STOP_PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the
    // interrupted code's view intact.
    let saved = unsafe { *libc::__errno_location() };
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    if let Some(engine) = ENGINE.get() {
        // An atomic add: async-signal-safe.
        engine.increment_epoch();
    }
    let fd = STOP_PIPE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking,
        // so a full pipe (already signalled) just drops the byte.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The read end of the self-pipe the signal handler writes to.
struct StopPipe(OwnedFd);

impl StopPipe {
    /// Creates the pipe and installs the SIGTERM/SIGINT handler.
    fn install() -> io::Result<StopPipe> {
        let mut fds = [-1 as RawFd; 2];
        // SAFETY: fds has room for the two descriptors pipe2 returns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 just returned these fds and nothing else owns them.
        let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        // The write end lives until exit: the handler may run at any time.
        STOP_PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction is valid; the handler only does
            // async-signal-safe work.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(StopPipe(read))
    }

    /// Resolves once a stop signal has arrived. Should the pipe fail, it
    /// never resolves: epoch interruption still stops running wasm.
    async fn wait(&self) {
        if self.watch().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn watch(&self) -> io::Result<()> {
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(self.0.try_clone()?)?;
        let mut buf = [0u8; 16];
        loop {
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                return Ok(());
            }
            rx.readable().await?;
            match rx.try_read(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Tells the parent that the module is starting: one byte on the inherited
/// start fd, which is then closed.
fn notify_started(fd: Option<OwnedFd>) {
    if let Some(fd) = fd {
        // SAFETY: writes one byte to a pipe we own.
        unsafe { libc::write(fd.as_raw_fd(), b"S".as_ptr().cast(), 1) };
    }
}

/// Takes the start fd from the environment if it names an open pipe.
fn take_start_fd() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(START_FD_ENV).ok()?.parse().ok()?;
    if fd < 3 {
        return None;
    }
    // SAFETY: fstat only inspects the descriptor; a zeroed stat is valid.
    let is_pipe = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
    };
    if !is_pipe {
        return None;
    }
    // The module must not inherit it, should it ever spawn anything.
    // SAFETY: fcntl on an fd we were handed and now own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the parent passed us this fd to own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Trap raised by the epoch callback after a stop signal.
#[derive(Debug, thiserror::Error)]
#[error("stopped by signal")]
struct StopRequested;

/// Store-level memory fence: linear memories and tables together may not
/// exceed the limit; records the first refusal so a later failure can be
/// reported as `OOMKilled`.
struct MemoryLimiter {
    limit: Option<u64>,
    used: u64,
    /// Size that was refused (bytes), if any.
    refused: Option<u64>,
}

/// Tables hold pointer-sized references; counting them keeps a table bomb
/// inside the same budget.
const TABLE_ELEMENT_BYTES: u64 = 8;

impl MemoryLimiter {
    fn grow(&mut self, current: u64, desired: u64) -> bool {
        let after = self.used.saturating_sub(current).saturating_add(desired);
        if self.limit.is_some_and(|limit| after > limit) {
            self.refused.get_or_insert(desired);
            return false;
        }
        self.used = after;
        true
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current as u64, desired as u64))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            (current as u64).saturating_mul(TABLE_ELEMENT_BYTES),
            (desired as u64).saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }
}

/// The container log shared by the module's stdout and stderr.
#[derive(Clone)]
struct LogSink(Arc<Mutex<SinkState>>);

struct SinkState {
    writer: CriLogWriter,
    /// First failure to write the log (disk full, ...). Output is then
    /// dropped rather than failing the module, as container runtimes do.
    error: Option<String>,
}

impl LogSink {
    fn write(&self, stream: LogStream, bytes: &[u8]) {
        let mut state = match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = state.writer.write(stream, bytes) {
            state.error.get_or_insert_with(|| e.to_string());
        }
    }

    /// Flushes unterminated lines; returns the first write error, if any.
    fn finish(&self) -> Option<String> {
        let mut state = match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = state.writer.flush_pending() {
            state.error.get_or_insert_with(|| e.to_string());
        }
        state.error.clone()
    }
}

/// One of the module's output streams, writing straight into the log.
#[derive(Clone)]
struct LogOutput {
    sink: LogSink,
    stream: LogStream,
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.sink.write(self.stream, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Store data for a core module (WASI preview 1).
pub(crate) struct P1State {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Store data for a component (WASI preview 2).
pub(crate) struct P2State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A module or component linked against WASI and ready to instantiate
/// (its imports resolved): what the [`super::launcher`] prepares once per
/// artifact before it forks, and a sandbox on its own prepares for itself.
#[derive(Clone)]
pub(crate) enum Prepared {
    Module(InstancePre<P1State>),
    Component(CommandPre<P2State>),
}

impl Prepared {
    /// Loads the compiled artifact of `spec` and links it. The error is the
    /// sandbox's start failure message.
    pub(crate) fn load(engine: &Engine, spec: &SandboxSpec) -> Result<Prepared, String> {
        let artifact = spec.artifact_path.display();
        let module_name = spec.module_path.display();
        match spec.kind {
            ModuleKind::Module => {
                // SAFETY: the artifact was written by the node's compile
                // cache with this engine configuration; wasmtime still
                // checks its header and compatibility before mapping it.
                let module = unsafe { Module::deserialize_file(engine, &spec.artifact_path) }
                    .map_err(|e| format!("cannot load compiled module {artifact}: {e:#}"))?;
                let mut linker: Linker<P1State> = Linker::new(engine);
                wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)
                    .map_err(|e| format!("cannot set up WASI preview 1: {e:#}"))?;
                linker
                    .instantiate_pre(&module)
                    .map(Prepared::Module)
                    .map_err(|e| format!("cannot instantiate module {module_name}: {e:#}"))
            }
            ModuleKind::Component => {
                // SAFETY: as for core modules above.
                let component = unsafe { Component::deserialize_file(engine, &spec.artifact_path) }
                    .map_err(|e| format!("cannot load compiled component {artifact}: {e:#}"))?;
                let mut linker: wasmtime::component::Linker<P2State> =
                    wasmtime::component::Linker::new(engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                    .map_err(|e| format!("cannot set up WASI preview 2: {e:#}"))?;
                linker
                    .instantiate_pre(&component)
                    .and_then(CommandPre::new)
                    .map(Prepared::Component)
                    .map_err(|e| {
                        format!(
                            "cannot instantiate component {module_name} as a wasi:cli command: {e:#}"
                        )
                    })
            }
        }
    }

    fn kind(&self) -> ModuleKind {
        match self {
            Prepared::Module(_) => ModuleKind::Module,
            Prepared::Component(_) => ModuleKind::Component,
        }
    }
}

/// How a run ended, before it is turned into a record.
enum Outcome {
    /// Failed before the entry point was called.
    StartFailed(String),
    /// Stop signal before the entry point was called.
    StoppedBeforeStart,
    /// The entry point was called and finished or failed.
    Ran {
        started_at: DateTime<Utc>,
        result: RunResult,
        /// Bytes refused by the memory limiter, if it refused anything.
        refused: Option<u64>,
    },
}

enum RunResult {
    /// Returned normally or exited with this status.
    Exit(i32),
    /// `wasi:cli/run` returned `err`.
    RunError,
    /// A trap or host error.
    Failed(wasmtime::Error),
    /// The stop signal arrived.
    Stopped,
}

/// Runs the container described by `spec` and returns the record to write.
/// Never panics on bad input: every failure becomes a record.
pub fn run(spec: &SandboxSpec) -> TerminationRecord {
    run_with(spec, take_start_fd(), None, None)
}

/// [`run`] with the start pipe given, and optionally an engine and the
/// module already loaded and linked (by the [`super::launcher`], with that
/// engine). The engine is used only for the default stack size; the
/// prepared module only with the engine and if it is of the spec's kind.
pub(crate) fn run_with(
    spec: &SandboxSpec,
    start_fd: Option<OwnedFd>,
    engine: Option<Engine>,
    prepared: Option<Prepared>,
) -> TerminationRecord {
    let stop = match StopPipe::install() {
        Ok(s) => s,
        Err(e) => return start_error(format!("cannot install signal handlers: {e}")),
    };
    let (engine, prepared) = match engine.filter(|_| spec.max_wasm_stack_bytes.is_none()) {
        Some(e) => (e, prepared.filter(|p| p.kind() == spec.kind)),
        None => match new_engine(EngineRole::Sandbox, spec.max_wasm_stack_bytes) {
            Ok(e) => (e, None),
            Err(e) => return start_error(e.to_string()),
        },
    };
    let _ = ENGINE.set(engine.clone());
    let writer = match CriLogWriter::open(&spec.log_path, spec.log_rotation) {
        Ok(w) => w,
        Err(e) => return start_error(e.to_string()),
    };
    let sink = LogSink(Arc::new(Mutex::new(SinkState {
        writer,
        error: None,
    })));
    let runtime = match sandbox_runtime() {
        Ok(rt) => rt,
        Err(e) => return start_error(format!("cannot start the WASI runtime: {e}")),
    };
    let outcome = runtime.block_on(run_module(
        &engine,
        spec,
        sink.clone(),
        &stop,
        start_fd,
        prepared,
    ));
    let log_error = sink.finish();
    let mut record = to_record(outcome, spec);
    if let Some(e) = log_error {
        append_message(&mut record.message, &format!("some output was lost: {e}"));
    }
    record
}

/// The sandbox's WASI runtime: one thread, IO and timers.
fn sandbox_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // A sandbox polls a handful of descriptors: the default room for
        // 1,024 events per poll is a 12 KiB buffer each sandbox would fault in.
        .max_io_events_per_tick(64)
        // Core modules' file operations use the blocking pool: keep it
        // small and let idle threads go soon, so an idle pod is one thread.
        .max_blocking_threads(2)
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .thread_stack_size(256 * 1024)
        .build()
}

/// Run once by the launcher before it forks sandboxes: builds and drops a
/// sandbox runtime, so tokio's process-wide state (its signal registry and
/// the socket pair behind it, created on first use, untouched unless a
/// tokio signal stream is opened, which neither the launcher nor a sandbox
/// does) is created once and inherited instead of created by every
/// sandbox. Spawns no thread.
pub(crate) fn warm_runtime_globals() {
    if let Err(e) = sandbox_runtime() {
        tracing::debug!(error = %e, "sandbox runtime not pre-built");
    }
}

fn start_error(message: String) -> TerminationRecord {
    TerminationRecord {
        exit_code: EXIT_START_ERROR,
        reason: TerminationReason::StartError,
        message,
        module_started: false,
        started_at: None,
        finished_at: Utc::now(),
    }
}

fn append_message(message: &mut String, more: &str) {
    if !message.is_empty() {
        message.push_str("; ");
    }
    message.push_str(more);
}

fn wasi_builder(spec: &SandboxSpec, sink: &LogSink) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.args)
        .stdout(LogOutput {
            sink: sink.clone(),
            stream: LogStream::Stdout,
        })
        .stderr(LogOutput {
            sink: sink.clone(),
            stream: LogStream::Stderr,
        })
        // Components: file operations run inline instead of on tokio's
        // blocking pool (no extra thread). Core modules: off, because with
        // it wasmtime-wasi's preview 1 `poll_oneoff` sleeps in
        // `std::thread::sleep`, which a stop signal cannot cut short; without
        // it the sleep is a tokio timer the stop pipe can race.
        .allow_blocking_current_thread(spec.kind == ModuleKind::Component)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for e in &spec.env {
        b.env(&e.name, &e.value);
    }
    for p in &spec.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host_path, &p.guest_path, perms)
            .map_err(|e| {
                format!(
                    "cannot preopen {} as {}: {e:#}",
                    p.host_path.display(),
                    p.guest_path
                )
            })?;
    }
    if let Some(cwd) = &spec.working_dir {
        b.initial_cwd(cwd);
    }
    Ok(b)
}

fn epoch_callback<T>(_: wasmtime::StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> {
    if STOP_REQUESTED.load(Ordering::SeqCst) {
        Err(wasmtime::Error::new(StopRequested))
    } else {
        // Woken by an epoch bump that was not a stop (none today): go on.
        Ok(UpdateDeadline::Continue(1))
    }
}

async fn run_module(
    engine: &Engine,
    spec: &SandboxSpec,
    sink: LogSink,
    stop: &StopPipe,
    start_fd: Option<OwnedFd>,
    prepared: Option<Prepared>,
) -> Outcome {
    let mut builder = match wasi_builder(spec, &sink) {
        Ok(b) => b,
        Err(e) => return Outcome::StartFailed(e),
    };
    let limiter = MemoryLimiter {
        limit: spec.memory_limit_bytes,
        used: 0,
        refused: None,
    };
    let prepared = match prepared {
        Some(p) => p,
        None => match Prepared::load(engine, spec) {
            Ok(p) => p,
            Err(e) => return Outcome::StartFailed(e),
        },
    };
    let module_name = spec.module_path.display();
    match prepared {
        Prepared::Module(pre) => {
            let mut store = Store::new(
                engine,
                P1State {
                    wasi: builder.build_p1(),
                    limiter,
                },
            );
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(epoch_callback);
            let instance = match pre.instantiate_async(&mut store).await {
                Ok(i) => i,
                Err(e) => {
                    return Outcome::StartFailed(format!(
                        "cannot instantiate module {module_name}: {e:#}"
                    ));
                }
            };
            let entry = match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Ok(f) => f,
                Err(e) => {
                    return Outcome::StartFailed(format!(
                        "module {module_name} has no usable `_start` export: {e:#}"
                    ));
                }
            };
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                return Outcome::StoppedBeforeStart;
            }
            let started_at = Utc::now();
            notify_started(start_fd);
            let result = {
                let call = entry.call_async(&mut store, ());
                tokio::select! {
                    r = call => match r {
                        Ok(()) => RunResult::Exit(0),
                        Err(e) => RunResult::Failed(e),
                    },
                    _ = stop.wait() => RunResult::Stopped,
                }
            };
            Outcome::Ran {
                started_at,
                result,
                refused: store.data().limiter.refused,
            }
        }
        Prepared::Component(pre) => {
            let mut store = Store::new(
                engine,
                P2State {
                    wasi: builder.build(),
                    table: ResourceTable::new(),
                    limiter,
                },
            );
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(epoch_callback);
            let command = match pre.instantiate_async(&mut store).await {
                Ok(c) => c,
                Err(e) => {
                    return Outcome::StartFailed(format!(
                        "cannot instantiate component {module_name} as a wasi:cli command: {e:#}"
                    ));
                }
            };
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                return Outcome::StoppedBeforeStart;
            }
            let started_at = Utc::now();
            notify_started(start_fd);
            let result = {
                let call = command.wasi_cli_run().call_run(&mut store);
                tokio::select! {
                    r = call => match r {
                        Ok(Ok(())) => RunResult::Exit(0),
                        Ok(Err(())) => RunResult::RunError,
                        Err(e) => RunResult::Failed(e),
                    },
                    _ = stop.wait() => RunResult::Stopped,
                }
            };
            Outcome::Ran {
                started_at,
                result,
                refused: store.data().limiter.refused,
            }
        }
    }
}

/// Turns an outcome into the record (pure apart from the finish time).
fn to_record(outcome: Outcome, spec: &SandboxSpec) -> TerminationRecord {
    let finished_at = Utc::now();
    let (started_at, result, refused) = match outcome {
        Outcome::StartFailed(message) => return start_error(message),
        Outcome::StoppedBeforeStart => {
            return TerminationRecord {
                exit_code: EXIT_TERMINATED,
                reason: TerminationReason::Terminated,
                message: "stopped by signal before the module started".into(),
                module_started: false,
                started_at: None,
                finished_at,
            };
        }
        Outcome::Ran {
            started_at,
            result,
            refused,
        } => (started_at, result, refused),
    };
    let (exit_code, reason, message) = classify(result, refused, spec);
    TerminationRecord {
        exit_code,
        reason,
        message,
        module_started: true,
        started_at: Some(started_at),
        finished_at,
    }
}

/// Exit code, reason and message for a module that ran.
fn classify(
    result: RunResult,
    refused: Option<u64>,
    spec: &SandboxSpec,
) -> (i32, TerminationReason, String) {
    // (exit code, what happened, whether it was a trap rather than an exit)
    let (code, what, trapped) = match result {
        RunResult::Exit(0) => return (0, TerminationReason::Completed, String::new()),
        RunResult::Stopped => {
            return (
                EXIT_TERMINATED,
                TerminationReason::Terminated,
                "stopped by signal".into(),
            );
        }
        RunResult::Exit(code) => (code, format!("the module exited with status {code}"), false),
        RunResult::RunError => (1, "wasi:cli/run returned an error".into(), false),
        RunResult::Failed(e) => {
            if e.downcast_ref::<StopRequested>().is_some() {
                return (
                    EXIT_TERMINATED,
                    TerminationReason::Terminated,
                    "stopped by signal (interrupted running wasm)".into(),
                );
            }
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return classify(RunResult::Exit(exit.0), refused, spec);
            }
            let what = match e.downcast_ref::<Trap>() {
                Some(Trap::StackOverflow) => format!(
                    "stack overflow: the wasm call stack exceeded {} bytes (wasm trap: {})",
                    spec.max_wasm_stack_bytes
                        .unwrap_or(super::engine::DEFAULT_MAX_WASM_STACK),
                    Trap::StackOverflow
                ),
                Some(trap) => format!("wasm trap: {trap}"),
                None => format!("module failed: {e:#}"),
            };
            (EXIT_TRAP, what, true)
        }
    };
    if let Some(asked) = refused {
        let limit = spec.memory_limit_bytes.unwrap_or_default();
        return (
            if trapped { EXIT_OOM } else { code },
            TerminationReason::OomKilled,
            format!(
                "memory limit of {limit} bytes reached (growth to {asked} bytes refused), then {what}"
            ),
        );
    }
    (code, TerminationReason::Error, what)
}

/// The sandbox process's `main`: reads the spec, runs the module, writes the
/// termination record and returns the exit status.
pub fn sandbox_main(spec_path: &Path) -> i32 {
    let spec = match SandboxSpec::read(spec_path) {
        Ok(s) => s,
        Err(e) => {
            // No record path without a spec: the parent sees the exit code
            // and a missing record.
            eprintln!("wasmk sandbox: {e}");
            return EXIT_START_ERROR;
        }
    };
    finish(&spec, run(&spec))
}

/// Writes the termination record; returns the process's exit status.
pub(crate) fn finish(spec: &SandboxSpec, record: TerminationRecord) -> i32 {
    if let Err(e) = record.write(&spec.termination_record_path) {
        eprintln!("wasmk sandbox: {e}");
    }
    if (0..=255).contains(&record.exit_code) {
        record.exit_code
    } else {
        EXIT_TRAP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories_and_tables() {
        let mut l = MemoryLimiter {
            limit: Some(100),
            used: 0,
            refused: None,
        };
        assert!(l.grow(0, 60));
        assert!(l.grow(0, 40));
        assert!(!l.grow(40, 41));
        assert_eq!(l.refused, Some(41));
        assert!(l.grow(60, 60));
        assert!(!l.grow(0, 1));
        assert_eq!(l.refused, Some(41), "first refusal is kept");
        let mut unlimited = MemoryLimiter {
            limit: None,
            used: 0,
            refused: None,
        };
        assert!(unlimited.grow(0, u64::MAX));
        assert!(unlimited.grow(u64::MAX, u64::MAX));
    }
}
