//! The per-node compile cache: each module digest is compiled once per engine
//! fingerprint and kept as a precompiled artifact that sandboxes map with
//! `deserialize_file`.
//!
//! File names are `<hex digest>-<engine fingerprint>.<kind>.cwasm`. Writes go
//! to a unique temp file that is synced and renamed into place, so a reader
//! sees a whole artifact or none, concurrent compilers of the same digest
//! both succeed (the last rename wins, and either result is valid), and the
//! cache survives restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Precompiled};

use super::engine::engine_fingerprint;
use super::spec::{ModuleKind, temp_sibling};

/// Errors of the compile cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid module digest {digest:?}: expected sha256:<64 hex digits>")]
    InvalidDigest { digest: String },
    #[error("cannot create cache directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read module {path}: {source}")]
    ReadModule {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {path} is not WebAssembly: {reason}")]
    NotWasm { path: PathBuf, reason: String },
    #[error("module {path} has digest sha256:{actual}, expected {expected}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("module {path} ({kind}) failed to compile: {message}")]
    Compile {
        path: PathBuf,
        kind: &'static str,
        message: String,
    },
    #[error("cannot write compiled artifact {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A compiled artifact ready for a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedArtifact {
    /// The precompiled file (`SandboxSpec::artifact_path`).
    pub path: PathBuf,
    /// Core module or component (`SandboxSpec::kind`).
    pub kind: ModuleKind,
    /// Whether this call compiled it (false: an earlier artifact was reused).
    pub compiled: bool,
}

/// Reads the Wasm binary header: `\0asm` then version 1 (core module) or the
/// component-model version/layer (`0d 00 01 00`).
pub fn detect_kind(bytes: &[u8]) -> Result<ModuleKind, String> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 {
        return Err(format!(
            "{} bytes is too short for a WebAssembly header",
            bytes.len()
        ));
    }
    if &bytes[..4] != MAGIC {
        return Err(format!(
            "bad magic {:02x?}, expected \\0asm (is it a text .wat file or an artifact?)",
            &bytes[..4]
        ));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Ok(ModuleKind::Module),
        [_, _, 1, 0] => Ok(ModuleKind::Component),
        ref other => Err(format!("unsupported binary version/layer {other:02x?}")),
    }
}

/// The compile cache in one directory.
#[derive(Clone, Debug)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// Opens (creating if needed) the cache directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<ModuleCache, CacheError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| CacheError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(ModuleCache { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact for `digest` and `kind` lives for this engine.
    pub fn artifact_path(
        &self,
        engine: &Engine,
        digest: &str,
        kind: ModuleKind,
    ) -> Result<PathBuf, CacheError> {
        let hex = digest_hex(digest)?;
        Ok(self.dir.join(format!(
            "{hex}-{}.{}.cwasm",
            engine_fingerprint(engine),
            kind.as_str()
        )))
    }

    /// Returns the compiled artifact for the module at `wasm_path` (whose
    /// digest the caller verified and passes as `digest`), compiling it if
    /// this node has not yet done so with this engine configuration.
    ///
    /// Compiling is CPU-bound and may take seconds for a large module: async
    /// callers should run this on a blocking thread.
    pub fn ensure_compiled(
        &self,
        engine: &Engine,
        digest: &str,
        wasm_path: &Path,
    ) -> Result<CachedArtifact, CacheError> {
        digest_hex(digest)?;
        // Reuse needs no read of the module: probe both kinds.
        for kind in [ModuleKind::Module, ModuleKind::Component] {
            let path = self.artifact_path(engine, digest, kind)?;
            if artifact_is_usable(&path, kind) {
                return Ok(CachedArtifact {
                    path,
                    kind,
                    compiled: false,
                });
            }
        }
        let bytes = std::fs::read(wasm_path).map_err(|source| CacheError::ReadModule {
            path: wasm_path.to_path_buf(),
            source,
        })?;
        self.compile_bytes(engine, digest, wasm_path, &bytes)
    }

    fn compile_bytes(
        &self,
        engine: &Engine,
        digest: &str,
        wasm_path: &Path,
        bytes: &[u8],
    ) -> Result<CachedArtifact, CacheError> {
        let kind = detect_kind(bytes).map_err(|reason| CacheError::NotWasm {
            path: wasm_path.to_path_buf(),
            reason,
        })?;
        let expected = digest_hex(digest)?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != expected {
            return Err(CacheError::DigestMismatch {
                path: wasm_path.to_path_buf(),
                expected: digest.to_string(),
                actual,
            });
        }
        let compiled = match kind {
            ModuleKind::Module => engine.precompile_module(bytes),
            ModuleKind::Component => engine.precompile_component(bytes),
        }
        .map_err(|e| CacheError::Compile {
            path: wasm_path.to_path_buf(),
            kind: kind.as_str(),
            message: format!("{e:#}"),
        })?;
        let path = self.artifact_path(engine, digest, kind)?;
        write_synced(&path, &compiled)?;
        Ok(CachedArtifact {
            path,
            kind,
            compiled: true,
        })
    }
}

/// `sha256:HEX` or bare `HEX` to the lower-case hex part; anything else is
/// refused (it becomes part of a file name).
fn digest_hex(digest: &str) -> Result<String, CacheError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(CacheError::InvalidDigest {
            digest: digest.to_string(),
        })
    }
}

/// Cheap check of an existing artifact: wasmtime reads the ELF header and
/// tells module from component. Damaged files are recompiled.
fn artifact_is_usable(path: &Path, kind: ModuleKind) -> bool {
    matches!(
        (Engine::detect_precompiled_file(path), kind),
        (Ok(Some(Precompiled::Module)), ModuleKind::Module)
            | (Ok(Some(Precompiled::Component)), ModuleKind::Component)
    )
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let err = |source| CacheError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::engine::{EngineRole, new_engine};

    #[test]
    fn header_detection() {
        let cases: &[(&[u8], Result<ModuleKind, &str>)] = &[
            (b"\0asm\x01\0\0\0", Ok(ModuleKind::Module)),
            (b"\0asm\x01\0\0\0\x01\x04", Ok(ModuleKind::Module)),
            (b"\0asm\x0d\0\x01\0", Ok(ModuleKind::Component)),
            (b"\0asm\x0e\0\x01\0", Ok(ModuleKind::Component)),
            (b"\0asm\x02\0\0\0", Err("unsupported")),
            (b"\0asm\x01\0", Err("too short")),
            (b"", Err("too short")),
            (b"(module)", Err("bad magic")),
            (b"\x7fELF\x02\x01\x01\0", Err("bad magic")),
        ];
        for (bytes, want) in cases {
            match (detect_kind(bytes), want) {
                (Ok(k), Ok(w)) => assert_eq!(k, *w, "{bytes:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{bytes:?}: {e}"),
                (got, want) => panic!("{bytes:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn digests() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_hex(&format!("sha256:{hex}")).unwrap(), hex);
        assert_eq!(digest_hex(&hex.to_uppercase()).unwrap(), hex);
        for bad in [
            "",
            "sha256:",
            "sha256:../../etc",
            &"g".repeat(64),
            &"a".repeat(63),
        ] {
            assert!(
                matches!(digest_hex(bad), Err(CacheError::InvalidDigest { .. })),
                "{bad}"
            );
        }
    }

    fn digest_of(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    // A minimal core module: magic, version, a type section and a function.
    const TINY: &[u8] = &[
        0, b'a', b's', b'm', 1, 0, 0, 0, // header
        1, 4, 1, 0x60, 0, 0, // type section: () -> ()
        3, 2, 1, 0, // function section
        10, 4, 1, 2, 0, 0x0b, // code section: empty body
    ];

    #[test]
    fn compiles_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("tiny.wasm");
        std::fs::write(&wasm, TINY).unwrap();
        let engine = new_engine(EngineRole::Compiler, None).unwrap();
        let cache = ModuleCache::new(dir.path().join("cache")).unwrap();
        let digest = digest_of(TINY);

        let first = cache.ensure_compiled(&engine, &digest, &wasm).unwrap();
        assert!(first.compiled);
        assert_eq!(first.kind, ModuleKind::Module);
        // A new cache object (as after a restart) reuses the file even when
        // the source is gone.
        std::fs::remove_file(&wasm).unwrap();
        let again = ModuleCache::new(dir.path().join("cache")).unwrap();
        let second = again.ensure_compiled(&engine, &digest, &wasm).unwrap();
        assert!(!second.compiled);
        assert_eq!(second.path, first.path);
        // Only the artifact is in the directory: no temp files.
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
    }

    #[test]
    fn damaged_artifact_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("tiny.wasm");
        std::fs::write(&wasm, TINY).unwrap();
        let engine = new_engine(EngineRole::Compiler, None).unwrap();
        let cache = ModuleCache::new(dir.path().join("cache")).unwrap();
        let digest = digest_of(TINY);
        let first = cache.ensure_compiled(&engine, &digest, &wasm).unwrap();
        std::fs::write(&first.path, b"garbage").unwrap();
        let second = cache.ensure_compiled(&engine, &digest, &wasm).unwrap();
        assert!(second.compiled);
    }

    #[test]
    fn rejects_bad_input_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let engine = new_engine(EngineRole::Compiler, None).unwrap();
        let cache = ModuleCache::new(dir.path().join("cache")).unwrap();

        let truncated = &TINY[..TINY.len() - 3];
        let path = dir.path().join("truncated.wasm");
        std::fs::write(&path, truncated).unwrap();
        let err = cache
            .ensure_compiled(&engine, &digest_of(truncated), &path)
            .unwrap_err();
        assert!(matches!(err, CacheError::Compile { .. }), "{err}");
        assert!(err.to_string().contains("truncated.wasm"), "{err}");

        let path = dir.path().join("text.wat");
        std::fs::write(&path, b"(module)").unwrap();
        let err = cache
            .ensure_compiled(&engine, &digest_of(b"(module)"), &path)
            .unwrap_err();
        assert!(matches!(err, CacheError::NotWasm { .. }), "{err}");

        let path = dir.path().join("tiny.wasm");
        std::fs::write(&path, TINY).unwrap();
        let err = cache
            .ensure_compiled(&engine, &digest_of(b"other"), &path)
            .unwrap_err();
        assert!(matches!(err, CacheError::DigestMismatch { .. }), "{err}");

        let err = cache
            .ensure_compiled(&engine, &digest_of(TINY), &dir.path().join("absent.wasm"))
            .unwrap_err();
        assert!(matches!(err, CacheError::ReadModule { .. }), "{err}");
        // Nothing was cached by any failure.
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 0);
    }

    #[test]
    fn racing_compilers_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("tiny.wasm");
        std::fs::write(&wasm, TINY).unwrap();
        let engine = new_engine(EngineRole::Compiler, None).unwrap();
        let cache = ModuleCache::new(dir.path().join("cache")).unwrap();
        let digest = digest_of(TINY);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| cache.ensure_compiled(&engine, &digest, &wasm)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            let artifact = r.as_ref().unwrap();
            assert!(artifact_is_usable(&artifact.path, ModuleKind::Module));
        }
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
    }
}
