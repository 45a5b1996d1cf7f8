//! What the node agent hands a sandbox process ([`SandboxSpec`]) and what the
//! sandbox leaves behind when it exits ([`TerminationRecord`]).
//!
//! Both are JSON files with camelCase field names. The agent writes the spec
//! before it spawns the sandbox; the sandbox writes the record (temp file +
//! rename) just before it exits.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Errors reading or writing spec and record files.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read sandbox spec {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid sandbox spec {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid sandbox spec {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read termination record {path}: {source}")]
    ReadRecord {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid termination record {path}: {source}")]
    ParseRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Whether a Wasm binary is a core module (run with WASI preview 1, entry
/// point `_start`) or a component (WASI preview 2, `wasi:cli/run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModuleKind {
    /// A core WebAssembly module (binary version 1).
    Module,
    /// A WebAssembly component (component-model binary layer).
    Component,
}

impl ModuleKind {
    /// Lower-case name used in file names and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Module => "module",
            ModuleKind::Component => "component",
        }
    }
}

/// One environment variable, in the order the container spec gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// A host directory made visible to the module (a volume mount).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preopen {
    /// Directory on the node; must exist when the sandbox starts.
    pub host_path: PathBuf,
    /// Path the module sees (a volume's `mountPath`), e.g. `/config`.
    pub guest_path: String,
    /// Like `volumeMounts[].readOnly`: the module may read but never create,
    /// write, rename or delete anything under it.
    #[serde(default)]
    pub read_only: bool,
}

/// Size-based rotation of the container log file (`containerLogMaxSize` and
/// `containerLogMaxFiles` in kubelet terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRotation {
    /// The current file is rotated before it would exceed this many bytes.
    pub max_bytes: u64,
    /// Files kept in all, the current one included (`log`, `log.1`, ...,
    /// `log.{max_files-1}`); at least 1.
    pub max_files: u32,
}

impl Default for LogRotation {
    /// Kubelet's defaults: 10 MiB, 5 files.
    fn default() -> Self {
        LogRotation {
            max_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Everything one sandbox process needs to run one container. Written by the
/// node agent; the sandbox reads nothing else (no API, no ambient config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Namespace of the pod (for messages).
    pub pod_namespace: String,
    /// Name of the pod (for messages).
    pub pod_name: String,
    /// UID of the pod, so a re-adopting agent can match process and pod.
    pub pod_uid: String,
    /// Name of the container within the pod.
    pub container_name: String,
    /// The original module file, already verified against its digest. Only
    /// named in messages: the sandbox never compiles.
    pub module_path: PathBuf,
    /// Digest of the module (`sha256:HEX`), for messages.
    #[serde(default)]
    pub module_digest: String,
    /// The precompiled artifact from [`crate::sandbox::ModuleCache`], made by
    /// an engine with the same configuration as the sandbox's.
    pub artifact_path: PathBuf,
    /// Core module or component: decides WASI preview 1 or 2.
    pub kind: ModuleKind,
    /// The module's argv: `args[0]` is the container name, then `command` and
    /// `args` as Kubernetes combines them.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment, in order; duplicates are passed as given.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Directories the module may see; nothing else of the file system is
    /// visible.
    #[serde(default)]
    pub preopens: Vec<Preopen>,
    /// The module's initial working directory (`workingDir`), a guest path.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Ceiling on the module's linear memories and tables, in bytes (the
    /// container's memory limit). `None`: no limit inside wasmtime (the
    /// cgroup still applies).
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Maximum wasm call-stack size in bytes; `None` uses the engine default
    /// ([`crate::sandbox::engine::DEFAULT_MAX_WASM_STACK`]).
    #[serde(default)]
    pub max_wasm_stack_bytes: Option<usize>,
    /// Container log file (CRI format); rotated files get `.1`, `.2`, ...
    pub log_path: PathBuf,
    /// Rotation of the log file.
    #[serde(default)]
    pub log_rotation: LogRotation,
    /// Where the sandbox writes its [`TerminationRecord`] before exiting.
    pub termination_record_path: PathBuf,
}

impl SandboxSpec {
    /// Reads and checks a spec file.
    pub fn read(path: &Path) -> Result<SandboxSpec, SpecError> {
        let bytes = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let spec: SandboxSpec =
            serde_json::from_slice(&bytes).map_err(|source| SpecError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        spec.check().map_err(|reason| SpecError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(spec)
    }

    /// Writes the spec atomically (the agent's side).
    pub fn write(&self, path: &Path) -> Result<(), SpecError> {
        write_json_atomic(path, self)
    }

    /// The checks serde cannot express; returns the first problem found.
    pub fn check(&self) -> Result<(), String> {
        if self.log_rotation.max_files == 0 {
            return Err("logRotation.maxFiles must be at least 1".into());
        }
        if self.log_rotation.max_bytes == 0 {
            return Err("logRotation.maxBytes must be positive".into());
        }
        for (i, p) in self.preopens.iter().enumerate() {
            if p.guest_path.is_empty() {
                return Err(format!("preopens[{i}].guestPath must not be empty"));
            }
        }
        for (i, e) in self.env.iter().enumerate() {
            // WASI passes env as NAME=VALUE strings: '=' in a name would
            // change what the module sees.
            if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
                return Err(format!("env[{i}].name {:?} is not a valid name", e.name));
            }
        }
        if self.max_wasm_stack_bytes == Some(0) {
            return Err("maxWasmStackBytes must be positive".into());
        }
        Ok(())
    }
}

/// Why a container stopped; Kubernetes' `ContainerStateTerminated.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminationReason {
    /// The module returned from its entry point or exited with status 0.
    Completed,
    /// The module exited non-zero or trapped (the message names the trap).
    Error,
    /// The memory limiter refused growth and the module then failed.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// Stopped by SIGTERM (graceful stop) or SIGINT.
    Terminated,
    /// The module never started: bad artifact, missing import, unusable
    /// preopen or log file.
    StartError,
}

impl TerminationReason {
    /// The reason as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Completed => "Completed",
            TerminationReason::Error => "Error",
            TerminationReason::OomKilled => "OOMKilled",
            TerminationReason::Terminated => "Terminated",
            TerminationReason::StartError => "StartError",
        }
    }
}

/// Exit code for a module that trapped (`128 + SIGABRT`, as the wasmtime
/// CLI reports traps).
pub const EXIT_TRAP: i32 = 134;
/// Exit code when the memory limit stopped the module (`128 + SIGKILL`, as
/// Kubernetes reports OOM kills).
pub const EXIT_OOM: i32 = 137;
/// Exit code after a graceful stop (`128 + SIGTERM`).
pub const EXIT_TERMINATED: i32 = 143;
/// Exit code when the module could not be started (as containerd reports a
/// start failure).
pub const EXIT_START_ERROR: i32 = 128;

/// The sandbox's account of how the container ended, written to
/// [`SandboxSpec::termination_record_path`] before the process exits. The
/// agent copies it into `status.containerStatuses[].state.terminated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminationRecord {
    /// Also the sandbox process's exit status: the module's `proc_exit`
    /// code, or one of the `EXIT_*` constants.
    pub exit_code: i32,
    pub reason: TerminationReason,
    /// Human-readable detail: the trap, the missing import, the signal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Whether the module's entry point was called. False means the failure
    /// happened before the container ran (the agent reports a start error,
    /// not a crash of the workload).
    pub module_started: bool,
    /// When the entry point was called (absent if it never was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the sandbox finished.
    pub finished_at: DateTime<Utc>,
}

impl TerminationRecord {
    /// Writes the record atomically, so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<(), SpecError> {
        write_json_atomic(path, self)
    }

    /// Reads a record written by a sandbox.
    pub fn read(path: &Path) -> Result<TerminationRecord, SpecError> {
        let bytes = std::fs::read(path).map_err(|source| SpecError::ReadRecord {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| SpecError::ParseRecord {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), SpecError> {
    let err = |source| SpecError::Write {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = temp_sibling(path);
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// A temp file name next to `path`, unique per process and call.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{seq}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            pod_namespace: "default".into(),
            pod_name: "web-1".into(),
            pod_uid: "u-1".into(),
            container_name: "app".into(),
            module_path: "/m.wasm".into(),
            module_digest: String::new(),
            artifact_path: "/m.cwasm".into(),
            kind: ModuleKind::Module,
            args: vec!["app".into()],
            env: vec![],
            preopens: vec![],
            working_dir: None,
            memory_limit_bytes: None,
            max_wasm_stack_bytes: None,
            log_path: "/log".into(),
            log_rotation: LogRotation::default(),
            termination_record_path: "/rec".into(),
        }
    }

    #[test]
    fn spec_checks() {
        type Edit = fn(&mut SandboxSpec);
        let cases: &[(&str, Edit, Option<&str>)] = &[
            ("valid", |_| {}, None),
            (
                "zero files",
                |s| s.log_rotation.max_files = 0,
                Some("maxFiles"),
            ),
            (
                "zero bytes",
                |s| s.log_rotation.max_bytes = 0,
                Some("maxBytes"),
            ),
            (
                "env name with =",
                |s| {
                    s.env.push(EnvVar {
                        name: "A=B".into(),
                        value: "x".into(),
                    })
                },
                Some("env[0]"),
            ),
            (
                "empty guest path",
                |s| {
                    s.preopens.push(Preopen {
                        host_path: "/tmp".into(),
                        guest_path: String::new(),
                        read_only: true,
                    })
                },
                Some("preopens[0]"),
            ),
            (
                "zero stack",
                |s| s.max_wasm_stack_bytes = Some(0),
                Some("maxWasmStackBytes"),
            ),
        ];
        for (name, edit, want) in cases {
            let mut s = spec();
            edit(&mut s);
            match (s.check(), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn spec_json_uses_camel_case_and_defaults() {
        let json = r#"{"podNamespace":"ns","podName":"p","podUid":"u","containerName":"c",
            "modulePath":"/m","artifactPath":"/a","kind":"component","logPath":"/l",
            "terminationRecordPath":"/t","preopens":[{"hostPath":"/h","guestPath":"/g"}]}"#;
        let s: SandboxSpec = serde_json::from_str(json).unwrap();
        assert_eq!(s.kind, ModuleKind::Component);
        assert_eq!(s.log_rotation, LogRotation::default());
        assert!(!s.preopens[0].read_only);
        let back = serde_json::to_value(&s).unwrap();
        assert!(back.get("terminationRecordPath").is_some());
        assert!(back.get("maxWasmStackBytes").is_some());
    }

    #[test]
    fn record_reason_spelling() {
        let r = TerminationRecord {
            exit_code: EXIT_OOM,
            reason: TerminationReason::OomKilled,
            message: String::new(),
            module_started: true,
            started_at: None,
            finished_at: Utc::now(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["reason"], "OOMKilled");
        assert_eq!(v["exitCode"], 137);
        assert!(v.get("message").is_none());
        for reason in [
            TerminationReason::Completed,
            TerminationReason::Error,
            TerminationReason::OomKilled,
            TerminationReason::Terminated,
            TerminationReason::StartError,
        ] {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::Value::String(reason.as_str().into())
            );
        }
    }

    #[test]
    fn record_round_trips_through_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        let r = TerminationRecord {
            exit_code: 3,
            reason: TerminationReason::Error,
            message: "exited with status 3".into(),
            module_started: true,
            started_at: Some(Utc::now()),
            finished_at: Utc::now(),
        };
        r.write(&path).unwrap();
        assert_eq!(TerminationRecord::read(&path).unwrap(), r);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
