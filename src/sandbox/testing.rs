//! Test helper: paths of the sample modules in `wasm-modules/`, built on
//! demand.
//!
//! [`sample`] runs `wasm-modules/build.sh` at most once per process, and only
//! when an output is missing or older than the sources. A file lock keeps
//! test binaries that run in parallel from building at the same time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::spec::ModuleKind;

/// Errors locating or building a sample.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {script}: {source}")]
    Run {
        script: PathBuf,
        source: std::io::Error,
    },
    #[error("{script} failed ({status}):\n{stderr}")]
    Build {
        script: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("sample {path} is missing after the build (is it a workspace member?)")]
    Missing { path: PathBuf },
}

/// The `wasm-modules/` directory of this source tree.
pub fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wasm-modules")
}

/// Where the build puts `name` of `kind`.
pub fn sample_path(name: &str, kind: ModuleKind) -> PathBuf {
    let file = match kind {
        ModuleKind::Module => format!("{name}.wasm"),
        ModuleKind::Component => format!("{name}.component.wasm"),
    };
    modules_dir().join("out").join(file)
}

/// The built sample `name` (`hello`, `worker`, ...) as a core module or a
/// component, building the samples first if needed.
///
/// # Panics
///
/// When the build fails or the sample does not exist; use [`try_sample`] to
/// handle that.
pub fn sample(name: &str, kind: ModuleKind) -> PathBuf {
    match try_sample(name, kind) {
        Ok(p) => p,
        Err(e) => panic!("sample {name} ({}): {e}", kind.as_str()),
    }
}

/// Like [`sample`], returning errors.
pub fn try_sample(name: &str, kind: ModuleKind) -> Result<PathBuf, SampleError> {
    // Serialises builds within the process; the file lock does it across.
    static BUILT: Mutex<bool> = Mutex::new(false);
    let path = sample_path(name, kind);
    let mut built = match BUILT.lock() {
        Ok(b) => b,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !*built {
        build_if_stale()?;
        *built = true;
    }
    if path.exists() {
        Ok(path)
    } else {
        Err(SampleError::Missing { path })
    }
}

fn build_if_stale() -> Result<(), SampleError> {
    let dir = modules_dir();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(|source| SampleError::Lock {
        path: out.clone(),
        source,
    })?;
    let lock_path = out.join(".build.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|source| SampleError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    // Checked under the lock: another process may have just built.
    if !is_stale(&dir) {
        return Ok(());
    }
    let script = dir.join("build.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .current_dir(&dir)
        // The outer cargo's settings are for the host build, not this one.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|source| SampleError::Run {
            script: script.clone(),
            source,
        })?;
    drop(lock);
    if !output.status.success() {
        return Err(SampleError::Build {
            script,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

/// True when any expected output is missing or older than any source.
fn is_stale(dir: &Path) -> bool {
    let newest_source = newest_mtime(dir);
    let p1_only = p1_only(dir);
    let outputs = members(dir).into_iter().flat_map(|m| {
        let module = dir.join("out").join(format!("{m}.wasm"));
        let component = dir.join("out").join(format!("{m}.component.wasm"));
        if p1_only.contains(&m) {
            vec![module]
        } else {
            vec![module, component]
        }
    });
    for out in outputs {
        match std::fs::metadata(&out).and_then(|m| m.modified()) {
            Ok(t) if newest_source.is_none_or(|s| t >= s) => {}
            _ => return true,
        }
    }
    false
}

/// Workspace members listed in `wasm-modules/Cargo.toml`.
fn members(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return Vec::new();
    };
    let Some(start) = text.find("members = [") else {
        return Vec::new();
    };
    let rest = &text[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Modules `build.sh` builds as core modules only (its `p1_only=(...)`).
fn p1_only(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("build.sh")) else {
        return Vec::new();
    };
    text.lines()
        .find_map(|l| l.trim().strip_prefix("p1_only=("))
        .and_then(|rest| rest.split(')').next())
        .map(|list| list.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Newest modification time among the sources (skipping build outputs).
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == "out" {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(t) = meta.modified() {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_from_the_manifest() {
        let m = members(&modules_dir());
        for name in ["hello", "worker", "fail", "trap", "missing-import"] {
            assert!(m.iter().any(|x| x == name), "{name} in {m:?}");
        }
        assert_eq!(p1_only(&modules_dir()), ["missing-import"]);
    }
}
