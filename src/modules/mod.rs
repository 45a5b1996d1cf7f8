//! The module store: Wasm binaries kept by content (sha256), replicated
//! through the Raft log in chunks of at most 1 MiB, and the `Module`
//! objects (`wasmk.io/v1`) whose tags name them.
//!
//! Routes (served next to the Kubernetes API, authenticated like it):
//! - `POST /apis/wasmk.io/v1/modules/{name}/push?tag=TAG`: body = the
//!   binary; validates it, stores its chunks, points the tag at it.
//! - `GET /apis/wasmk.io/v1/blobs/sha256:{hex}`: the binary, for nodes.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::Time;
use crate::api::wasmk::{Module, ModuleVersion, validate_digest, validate_tag};
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::http::{Body, Extension, RequestContext, error_response};
use crate::apiserver::rest::Api;
use crate::runtime::Client;
use crate::store::state::blob_dir_name;
use crate::store::{Op, Store};

/// Bytes per replicated chunk: every log entry stays about 1 MiB.
pub const CHUNK_SIZE: usize = 1 << 20;
/// The largest module accepted.
pub const MAX_MODULE_SIZE: usize = 128 << 20;

/// What a binary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (WASI p1 `_start`).
    Module,
    /// A component (WASI p2).
    Component,
}

impl WasmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WasmKind::Module => "module",
            WasmKind::Component => "component",
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `bytes` are a valid core module or component, with the
/// validator's reason (and byte offset) when they are not.
pub fn inspect(bytes: &[u8]) -> Result<WasmKind, String> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err("not a WebAssembly binary: missing the \\0asm magic header".into());
    }
    let kind = match bytes[4..8] {
        [1, 0, 0, 0] => WasmKind::Module,
        [_, _, 1, 0] => WasmKind::Component,
        _ => {
            return Err(format!(
                "unsupported WebAssembly version/layer bytes {:02x?}",
                &bytes[4..8]
            ));
        }
    };
    let mut v = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    v.validate_all(bytes)
        .map_err(|e| format!("invalid WebAssembly {}: {e}", kind.as_str()))?;
    Ok(kind)
}

fn module_rt(api: &Api) -> ApiResult<&'static dyn crate::api::registry::DynResource> {
    api.resource("wasmk.io", "v1", "modules")
}

/// Stores `bytes` as a version of module `name` and points `tag` at it.
pub async fn push(api: &Api, name: &str, tag: &str, bytes: &[u8]) -> ApiResult<(String, Module)> {
    let rt = module_rt(api)?;
    if let Err(e) = crate::api::validation::dns1123_subdomain(name) {
        return Err(ApiError::bad_request(format!(
            "invalid module name {name:?}: {e}"
        )));
    }
    validate_tag(tag).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let kind = inspect(bytes).map_err(|reason| {
        let mut errs = crate::api::validation::FieldErrors::default();
        errs.invalid("body", format!("{} bytes", bytes.len()), reason);
        ApiError::invalid(rt.info(), name, &errs)
    })?;
    let digest = digest_of(bytes);
    let chunks = bytes.chunks(CHUNK_SIZE).len().max(1);
    let client = Client::new(api.clone());
    let existing: Option<Module> = client.get("", name).await?;
    let known = existing
        .as_ref()
        .is_some_and(|m| m.status.versions.iter().any(|v| v.digest == digest))
        || blob_complete(&api.store, &digest, chunks);
    if !known {
        // One chunk per log entry; a few in flight at once.
        let mut inflight = futures::stream::FuturesOrdered::new();
        for (i, c) in bytes.chunks(CHUNK_SIZE).enumerate() {
            let store = api.store.clone();
            let op = Op::blob_chunk(digest.clone(), i as u32, c.to_vec());
            inflight.push_back(async move { store.txn(vec![op]).await });
            if inflight.len() >= 4 {
                use futures::StreamExt;
                if let Some(r) = inflight.next().await {
                    r?;
                }
            }
        }
        use futures::StreamExt;
        while let Some(r) = inflight.next().await {
            r?;
        }
    }
    // Point the tag at the digest and record the version.
    for _ in 0..16 {
        let current: Option<Module> = client.get("", name).await?;
        let mut m = match current {
            Some(m) => m,
            None => {
                let mut m = Module::default();
                m.metadata.name = name.to_string();
                m.spec.tags.insert(tag.to_string(), digest.clone());
                match client.create(&m).await {
                    Ok(m) => m,
                    Err(e) if e.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        if m.spec.tags.get(tag) != Some(&digest) {
            m.spec.tags.insert(tag.to_string(), digest.clone());
            m = match client.update(&m).await {
                Ok(m) => m,
                Err(e) if e.code == 409 => continue,
                Err(e) => return Err(e),
            };
        }
        if !m.status.versions.iter().any(|v| v.digest == digest) {
            m.status.versions.push(ModuleVersion {
                digest: digest.clone(),
                size: bytes.len() as i64,
                type_: kind.as_str().to_string(),
                uploaded_time: Some(Time::now()),
                chunks: chunks as i32,
            });
            m = match client.update_status(&m).await {
                Ok(m) => m,
                Err(e) if e.code == 409 => continue,
                Err(e) => return Err(e),
            };
        }
        return Ok((digest, m));
    }
    Err(ApiError::conflict(
        module_rt(api)?.info(),
        name,
        "too many concurrent pushes; try again",
    ))
}

/// Whether every chunk of a blob is on this master's disk.
fn blob_complete(store: &Store, digest: &str, chunks: usize) -> bool {
    let Some(dir) = store.read(|sm| sm.blob_path(digest)) else {
        return false;
    };
    (0..chunks).all(|i| dir.join(format!("{i:06}")).is_file())
}

/// Reads a blob from this master's disk and checks its digest.
pub fn read_blob(store: &Store, digest: &str) -> Result<Vec<u8>, String> {
    validate_digest(digest).map_err(|e| e.to_string())?;
    let dir = store
        .read(|sm| sm.blob_path(digest))
        .ok_or_else(|| format!("this master keeps no blobs (asked for {digest})"))?;
    let mut out = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("{i:06}"));
        match std::fs::read(&p) {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(format!("read {}: {e}", p.display())),
        }
    }
    if out.is_empty() {
        return Err(format!("blob {digest} not found"));
    }
    let got = digest_of(&out);
    if got != digest {
        return Err(format!(
            "blob {digest} is corrupt or incomplete on this master (content hashes to {got})"
        ));
    }
    Ok(out)
}

/// The module routes as an API server extension.
pub struct ModuleRoutes {
    pub api: Api,
}

fn bytes_response(code: StatusCode, ct: &str, b: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(b).boxed());
    *r.status_mut() = code;
    if let Ok(v) = http::HeaderValue::from_str(ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

impl ModuleRoutes {
    async fn handle_push(
        &self,
        ctx: &RequestContext,
        name: &str,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Body>> {
        let tag = ctx
            .query
            .get("tag")
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| "latest".into());
        let body = match Limited::new(req.into_body(), MAX_MODULE_SIZE)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(ApiError::too_large(MAX_MODULE_SIZE));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "reading the module failed: {e}"
                )));
            }
        };
        let (digest, module) = push(&self.api, name, &tag, &body).await?;
        let v = json!({"digest": digest, "module": serde_json::to_value(&module).unwrap_or(Value::Null)});
        Ok(bytes_response(
            StatusCode::CREATED,
            "application/json",
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        ))
    }

    fn handle_blob(&self, digest: &str) -> ApiResult<Response<Body>> {
        match read_blob(&self.api.store, digest) {
            Ok(b) => Ok(bytes_response(
                StatusCode::OK,
                "application/wasm",
                Bytes::from(b),
            )),
            Err(e) if e.contains("not found") => Err(ApiError::new(404, "NotFound", e)),
            Err(e) if e.starts_with("invalid digest") => Err(ApiError::bad_request(e)),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

impl Extension for ModuleRoutes {
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        req: &'a mut Option<Request<Incoming>>,
    ) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>> {
        Box::pin(async move {
            let segs: Vec<&str> = ctx.path.trim_matches('/').split('/').collect();
            let result = match (segs.as_slice(), &ctx.method) {
                (["apis", "wasmk.io", "v1", "modules", name, "push"], &Method::POST) => {
                    let r = req.take()?;
                    self.handle_push(ctx, name, r).await
                }
                (["apis", "wasmk.io", "v1", "blobs", digest], &Method::GET) => {
                    self.handle_blob(digest)
                }
                _ => return None,
            };
            Some(match result {
                Ok(r) => r,
                Err(e) => error_response(&e),
            })
        })
    }
}

/// A path component that names a blob directory (for agents' caches).
pub fn blob_dir(digest: &str) -> Option<String> {
    blob_dir_name(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_tells_modules_from_components_and_refuses_garbage() {
        let m = wat_module("(module (func (export \"_start\")))");
        assert_eq!(inspect(&m).unwrap(), WasmKind::Module);
        assert!(inspect(b"hello world").unwrap_err().contains("magic"));
        let mut truncated = m.clone();
        truncated.truncate(m.len() - 3);
        let err = inspect(&truncated).unwrap_err();
        assert!(err.contains("invalid WebAssembly module"), "{err}");
        let comp = b"\0asm\x0d\x00\x01\x00".to_vec();
        assert_eq!(inspect(&comp).unwrap(), WasmKind::Component);
    }

    fn wat_module(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
