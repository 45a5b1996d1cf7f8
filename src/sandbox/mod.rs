//! The per-container sandbox: one process that runs one Wasm module with
//! wasmtime under WASI, inside the pod's cgroup.
//!
//! Layout:
//! - [`spec`]: the [`SandboxSpec`] the agent writes and the
//!   [`TerminationRecord`] the sandbox leaves behind.
//! - [`engine`]: the one wasmtime `Config` shared by compiler and loader.
//! - [`cache`]: the per-node compile cache ([`ModuleCache`]).
//! - [`run`]: the sandbox process itself ([`sandbox_main`]).
//! - [`logs`]: CRI-format container logs, rotation and the log readers.
//! - [`spawn`]: starting sandbox processes from the agent.
//! - [`launcher`]: a pre-initialised process that forks sandboxes (the
//!   agent's fast path; [`spawn`] is the fallback).
//! - [`testing`]: building and locating the sample modules for tests.
//!
//! Flow on a node: the agent verifies a module's digest, calls
//! [`ModuleCache::ensure_compiled`], writes a spec, and calls
//! [`spawn_sandbox_tokio`] with the pod's cgroup join; the child runs
//! `wasmk sandbox --spec FILE`, which maps the artifact (no compilation),
//! signals "started" on the start pipe, runs the module, and writes the
//! termination record before it exits.

pub mod cache;
pub mod engine;
pub mod launcher;
pub mod logs;
pub mod run;
pub mod spawn;
pub mod spec;
pub mod testing;

pub use cache::{CacheError, CachedArtifact, ModuleCache, detect_kind};
pub use engine::{EngineRole, engine_config, engine_fingerprint, new_engine};
pub use launcher::{
    LAUNCHER_SUBCOMMAND, LaunchError, Launched, Launcher, Launchers, launcher_main,
};
pub use logs::{CriLogWriter, LogError, LogFollower, LogOptions, read_logs};
pub use run::sandbox_main;
pub use spawn::{
    PreExecJoin, SandboxChild, SpawnError, StartSignal, StartStatus, TokioSandboxChild,
    spawn_sandbox, spawn_sandbox_tokio,
};
pub use spec::{
    EnvVar, LogRotation, ModuleKind, Preopen, SandboxSpec, SpecError, TerminationReason,
    TerminationRecord,
};
