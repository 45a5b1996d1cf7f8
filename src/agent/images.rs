//! Images to runnable artifacts: resolving a container's `image` through
//! the `wasmk.io/v1` Module objects (pure, on a watched copy), downloading
//! each blob once per digest into the agent's data directory with its
//! sha256 verified before it is kept, and compiling it once into the
//! [`ModuleCache`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::Method;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell, mpsc, watch};
use wasmtime::Engine;

use super::informer::{self, InformerEvent};
use super::lifecycle::Blocker;
use crate::api::wasmk::{ImageRef, Module};
use crate::client::ApiClient;
use crate::sandbox::{CacheError, CachedArtifact, ModuleCache};

/// Why an image cannot be run; maps onto a container's waiting reason.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{message}")]
    NotFound { message: String },
    #[error("invalid image {image:?}: {reason}")]
    InvalidName { image: String, reason: String },
    #[error("cannot download module {digest}: {message}")]
    Download { digest: String, message: String },
    #[error(
        "module {digest} as downloaded does not match its digest (content hashes to sha256:{actual}); refusing it"
    )]
    Corrupt { digest: String, actual: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {digest}: {source}")]
    Compile { digest: String, source: CacheError },
}

impl ImageError {
    /// The waiting reason Kubernetes shows for it.
    pub fn blocker(&self) -> Blocker {
        match self {
            ImageError::NotFound { .. } => Blocker::ModuleNotFound,
            ImageError::InvalidName { .. } => Blocker::InvalidImageName,
            ImageError::Download { .. } | ImageError::Corrupt { .. } => Blocker::ErrImagePull,
            ImageError::Io { .. } | ImageError::Compile { .. } => Blocker::CreateContainerError,
        }
    }
}

/// How to upload what an image names, for messages.
fn push_hint(module: &str, tag: &str) -> String {
    format!("upload it with: wasmk push FILE --name {module}:{tag}")
}

/// The digest `image` names, given the cluster's modules by name.
pub fn resolve(image: &str, modules: &HashMap<String, Module>) -> Result<String, ImageError> {
    let r = ImageRef::parse(image).map_err(|e| ImageError::InvalidName {
        image: image.to_string(),
        reason: e.to_string(),
    })?;
    let Some(name) = r.module() else {
        // A bare digest needs no Module: the blob download tells.
        return r
            .digest()
            .map(str::to_string)
            .ok_or_else(|| ImageError::NotFound {
                message: format!("image {image:?} names no module"),
            });
    };
    let Some(module) = modules.get(name) else {
        let tag = r.tag().unwrap_or(crate::api::wasmk::DEFAULT_TAG);
        return Err(ImageError::NotFound {
            message: format!(
                "module \"{name}\" not found in the module store (image \"{image}\"); {}",
                push_hint(name, tag)
            ),
        });
    };
    match &r {
        ImageRef::Tagged { tag, .. } => module.resolve(&r).ok_or_else(|| {
            let tags: Vec<&str> = module.spec.tags.keys().map(String::as_str).collect();
            ImageError::NotFound {
                message: format!(
                    "module \"{name}\" has no tag \"{tag}\" (image \"{image}\"); its tags: {}; {}",
                    if tags.is_empty() {
                        "none".into()
                    } else {
                        tags.join(", ")
                    },
                    push_hint(name, tag)
                ),
            }
        }),
        ImageRef::Pinned { digest, .. } => match module.version(digest) {
            Some(_) => Ok(digest.clone()),
            None => Err(ImageError::NotFound {
                message: format!("module \"{name}\" has no version {digest} (image \"{image}\")"),
            }),
        },
        ImageRef::Digest { digest } => Ok(digest.clone()),
    }
}

/// A module ready for sandboxes.
#[derive(Clone, Debug)]
pub struct Ready {
    pub digest: String,
    /// The verified original, for messages.
    pub wasm_path: PathBuf,
    pub artifact: CachedArtifact,
}

/// Streams `body` into `dest` through a temp file, keeping it only if its
/// sha256 is `digest`.
pub async fn save_verified<S, E>(mut body: S, digest: &str, dest: &Path) -> Result<(), ImageError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let tmp = dest.with_extension(format!("part.{}", std::process::id()));
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Io { op, path, source }
    };
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(io("create", &tmp))?;
    let mut hasher = Sha256::new();
    let result = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ImageError::Download {
                digest: digest.to_string(),
                message: e.to_string(),
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io("write", &tmp))?;
        }
        file.flush().await.map_err(io("write", &tmp))?;
        let actual = hex::encode(hasher.finalize());
        if format!("sha256:{actual}") != digest {
            return Err(ImageError::Corrupt {
                digest: digest.to_string(),
                actual,
            });
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(io("rename", &tmp))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// The agent's view of the module store.
pub struct ModuleStore {
    client: ApiClient,
    /// Verified module files, `<hex>.wasm`.
    dir: PathBuf,
    cache: ModuleCache,
    engine: Engine,
    modules: RwLock<HashMap<String, Module>>,
    /// Bumped whenever a Module changes, so blocked pods retry at once.
    changed: watch::Sender<u64>,
    /// One preparation per digest at a time; finished ones stay.
    ready: Mutex<HashMap<String, Arc<OnceCell<Ready>>>>,
}

impl ModuleStore {
    pub fn new(client: ApiClient, dir: PathBuf, cache: ModuleCache, engine: Engine) -> ModuleStore {
        ModuleStore {
            client,
            dir,
            cache,
            engine,
            modules: RwLock::new(HashMap::new()),
            changed: watch::channel(0).0,
            ready: Mutex::new(HashMap::new()),
        }
    }

    /// Notified after every change of a Module.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The digest `image` names now.
    pub fn resolve(&self, image: &str) -> Result<String, ImageError> {
        resolve(image, &self.modules.read())
    }

    /// The compiled artifact of `digest`, downloading and compiling it the
    /// first time. Concurrent callers for one digest share the work.
    pub async fn ensure(&self, digest: &str) -> Result<Ready, ImageError> {
        let cell = {
            let mut ready = self.ready.lock().await;
            ready.entry(digest.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| self.prepare(digest)).await.cloned()
    }

    async fn prepare(&self, digest: &str) -> Result<Ready, ImageError> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageError::InvalidName {
                image: digest.to_string(),
                reason: "not a sha256 digest".into(),
            });
        }
        let wasm_path = self.dir.join(format!("{hex}.wasm"));
        if !wasm_path.exists() {
            let started = std::time::Instant::now();
            self.download(digest, &wasm_path).await?;
            tracing::debug!(%digest, elapsed_ms = started.elapsed().as_millis() as u64, "module downloaded");
        }
        let started = std::time::Instant::now();
        let (cache, engine, d, p) = (
            self.cache.clone(),
            self.engine.clone(),
            digest.to_string(),
            wasm_path.clone(),
        );
        let artifact = tokio::task::spawn_blocking(move || cache.ensure_compiled(&engine, &d, &p))
            .await
            .map_err(|e| ImageError::Io {
                op: "compile",
                path: wasm_path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(|source| {
                if matches!(source, CacheError::DigestMismatch { .. }) {
                    // Damaged on disk since it was verified: fetch again next time.
                    let _ = std::fs::remove_file(&wasm_path);
                }
                ImageError::Compile {
                    digest: digest.to_string(),
                    source,
                }
            })?;
        tracing::debug!(%digest, compiled = artifact.compiled, elapsed_ms = started.elapsed().as_millis() as u64, "module ready");
        Ok(Ready {
            digest: digest.to_string(),
            wasm_path,
            artifact,
        })
    }

    async fn download(&self, digest: &str, dest: &Path) -> Result<(), ImageError> {
        let path = format!("/apis/wasmk.io/v1/blobs/{digest}");
        let failed = |message: String| ImageError::Download {
            digest: digest.to_string(),
            message,
        };
        let (status, _, body) = self
            .client
            .raw_stream(Method::GET, &path, None, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if status.as_u16() == 404 {
            return Err(ImageError::NotFound {
                message: format!("no module with digest {digest} in the module store"),
            });
        }
        if !status.is_success() {
            let mut text = Vec::new();
            let mut body = body;
            while let Some(Ok(chunk)) = body.next().await {
                text.extend_from_slice(&chunk);
                if text.len() > 4096 {
                    break;
                }
            }
            let err = crate::client::ApiError::from_response(status, &text);
            return Err(failed(format!("{} ({})", err.message, status.as_u16())));
        }
        save_verified(body, digest, dest).await
    }

    /// Keeps the Module copy current until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let informer = tokio::spawn(informer::run(
            self.client.clone(),
            "/apis/wasmk.io/v1/modules".into(),
            None,
            tx,
            shutdown,
        ));
        while let Some(event) = rx.recv().await {
            {
                let mut modules = self.modules.write();
                match event {
                    InformerEvent::Listed(items) => {
                        modules.clear();
                        for v in items {
                            if let Ok(m) = serde_json::from_value::<Module>(v) {
                                modules.insert(m.metadata.name.clone(), m);
                            }
                        }
                    }
                    InformerEvent::Applied(v) => {
                        if let Ok(m) = serde_json::from_value::<Module>(v) {
                            modules.insert(m.metadata.name.clone(), m);
                        }
                    }
                    InformerEvent::Deleted(v) => {
                        if let Ok(m) = serde_json::from_value::<Module>(v) {
                            modules.remove(&m.metadata.name);
                        }
                    }
                }
            }
            self.changed.send_modify(|n| *n += 1);
        }
        let _ = informer.await;
    }

    /// Whether the Module list has been loaded once.
    pub fn synced(&self) -> bool {
        *self.changed.borrow() > 0
    }

    /// Waits (at most a few seconds) for the first Module list, so pods
    /// seen before it are not reported as ModuleNotFound.
    pub async fn wait_synced(&self) {
        if self.synced() {
            return;
        }
        let mut rx = self.changed.subscribe();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.wait_for(|n| *n > 0)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wasmk::ModuleVersion;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn modules() -> HashMap<String, Module> {
        let mut m = Module::default();
        m.metadata.name = "hello".into();
        m.spec.tags.insert("latest".into(), d('a'));
        m.spec.tags.insert("v1".into(), d('b'));
        m.status.versions = vec![
            ModuleVersion {
                digest: d('a'),
                ..Default::default()
            },
            ModuleVersion {
                digest: d('b'),
                ..Default::default()
            },
        ];
        [("hello".to_string(), m)].into()
    }

    #[test]
    fn resolution_table() {
        let cases: Vec<(String, Result<String, &str>)> = vec![
            ("hello".into(), Ok(d('a'))),
            ("hello:v1".into(), Ok(d('b'))),
            (format!("hello@{}", d('b')), Ok(d('b'))),
            (d('c'), Ok(d('c'))),
            (
                "nope:v1".into(),
                Err(
                    "module \"nope\" not found in the module store (image \"nope:v1\"); upload it with: wasmk push FILE --name nope:v1",
                ),
            ),
            (
                "hello:v9".into(),
                Err("has no tag \"v9\" (image \"hello:v9\"); its tags: latest, v1"),
            ),
            (format!("hello@{}", d('c')), Err("has no version")),
            ("Bad Name".into(), Err("invalid image")),
        ];
        for (image, want) in cases {
            match (resolve(&image, &modules()), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{image}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{image}: {e}"),
                (got, want) => panic!("{image}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            resolve("nope", &modules()).unwrap_err().blocker(),
            Blocker::ModuleNotFound
        );
        assert_eq!(
            resolve("Bad Name", &modules()).unwrap_err().blocker(),
            Blocker::InvalidImageName
        );
    }

    fn stream(parts: Vec<&'static [u8]>) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p))))
    }

    #[tokio::test]
    async fn downloads_are_kept_only_when_the_digest_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("m.wasm");
        let digest = crate::modules::digest_of(b"hello world");
        save_verified(stream(vec![b"hello ", b"world"]), &digest, &dest)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");

        let bad = tmp.path().join("bad.wasm");
        let err = save_verified(stream(vec![b"hello ", b"w0rld"]), &digest, &bad)
            .await
            .unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
        assert_eq!(err.blocker(), Blocker::ErrImagePull);
        assert!(!bad.exists());
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hel")),
            Err("connection reset".to_string()),
        ]);
        let err = save_verified(failing, &digest, &bad).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
