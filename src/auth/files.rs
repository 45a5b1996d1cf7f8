//! Atomic file writes with explicit permissions.
//!
//! Keys, tokens and kubeconfigs must never be seen half-written or with loose
//! permissions, even for a moment: the data goes to a fresh temporary file
//! created with the final mode, is synced, then renamed over the target, and
//! the directory is synced so the rename survives a crash.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl FileError {
    fn new(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        FileError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Mode for private keys, tokens and kubeconfigs.
pub const PRIVATE: u32 = 0o600;
/// Mode for certificates, which are public.
pub const PUBLIC: u32 = 0o644;

/// Creates `dir` and its missing parents; directories created here get mode
/// `0700` because they hold secrets.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| FileError::new("create directory", dir, e))
}

/// Replaces `path` with `data` atomically; the file has exactly `mode`.
/// Missing parent directories are created with mode `0700`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&parent)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            FileError::new(
                "write",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
            )
        })?;
    let tmp = parent.join(format!(
        ".{file_name}.tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_then_rename(&tmp, path, data, mode);
    if result.is_err() {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Persist the rename itself.
    fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::new("sync directory", &parent, e))
}

fn write_then_rename(tmp: &Path, path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| FileError::new("create", tmp, e))?;
    // The umask may have removed bits we asked for; set the mode exactly.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| FileError::new("set permissions of", tmp, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| FileError::new("write", tmp, e))?;
    fs::rename(tmp, path).map_err(|e| FileError::new("rename into", path, e))
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(|e| FileError::new("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_with_exact_mode_and_creates_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/secret");
        write_atomic(&path, b"one", PRIVATE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&tmp.path().join("a/b")), 0o700);
        write_atomic(&path, b"two", PUBLIC).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o644);
    }

    #[test]
    fn replaces_without_leaving_temporary_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new", PRIVATE).unwrap();
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn failure_names_the_path_and_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory in the way of the rename.
        let path = tmp.path().join("d");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inner"), b"x").unwrap();
        let err = write_atomic(&path, b"data", PRIVATE).unwrap_err();
        assert_eq!(err.path, path);
        assert!(path.join("inner").exists());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
