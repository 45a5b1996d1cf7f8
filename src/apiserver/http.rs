//! The HTTP(S) front of the API: TLS, authentication, routing, content
//! negotiation (JSON, YAML, Table), body limits, and streaming watches.
//! Everything about what a verb means lives in [`super::rest`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use super::discovery;
use super::error::{ApiError, ApiResult};
use super::patch::PatchType;
use super::rest::{Api, DeleteOptions, Deleted, ListOptions, WriteOptions};
use super::table::{self, IncludeObject};
use crate::api::registry::{DynResource, FieldValidation, UpdateScope};
use crate::auth::{Authenticator, UserInfo};

pub type Body = BoxBody<Bytes, Infallible>;

/// Request bodies above this are refused with 413 (Kubernetes' limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Extra routes served next to the Kubernetes API (module uploads, pod
/// logs, metrics), provided by other parts of wasmk.
pub trait Extension: Send + Sync {
    /// Handles the request if the route is this extension's; `None` passes it on.
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        req: &'a mut Option<Request<Incoming>>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>>;
}

/// What handlers know about a request.
pub struct RequestContext {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub user: Option<UserInfo>,
    pub headers: http::HeaderMap,
}

/// The API server: the REST core plus what HTTP needs.
pub struct ApiServer {
    pub api: Api,
    /// None disables authentication (tests of the HTTP layer only).
    pub auth: Option<Arc<Authenticator>>,
    /// `host:port` clients use, for discovery's serverAddressByClientCIDRs.
    pub server_address: String,
    pub extensions: Vec<Arc<dyn Extension>>,
    openapi: super::openapi::Cache,
}

impl ApiServer {
    pub fn new(api: Api, auth: Option<Arc<Authenticator>>, server_address: String) -> ApiServer {
        ApiServer {
            api,
            auth,
            server_address,
            extensions: Vec::new(),
            openapi: super::openapi::Cache::default(),
        }
    }
}

/// Where the API server accepts connections: TCP (with TLS, unless it is
/// off for tests), or a Unix socket for clients on the same machine
/// (plain: the socket file's permissions keep others out, and requests
/// still carry their tokens).
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Listener {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Listener {
        Listener::Unix(l)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Listener {
    /// The next connection and a name of its peer for logs.
    async fn accept(&self) -> std::io::Result<(Box<dyn Io>, String)> {
        match self {
            Listener::Tcp(l) => {
                let (tcp, peer) = l.accept().await?;
                let _ = tcp.set_nodelay(true);
                Ok((Box::new(tcp), peer.to_string()))
            }
            Listener::Unix(l) => {
                let (unix, _) = l.accept().await?;
                Ok((Box::new(unix), "unix socket".to_string()))
            }
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets open
/// requests finish (watches end). `tls` applies to TCP listeners only.
pub async fn serve(
    server: Arc<ApiServer>,
    listener: impl Into<Listener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = listener.into();
    let acceptor = match listener {
        Listener::Tcp(_) => tls.map(tokio_rustls::TlsAcceptor::from),
        Listener::Unix(_) => None,
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (conn, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let server = server.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let mut stop_rx = stop_tx.subscribe();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(server, req).await) }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let io: Box<dyn Io> = match acceptor {
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(conn)).await {
                        Ok(Ok(tls)) => Box::new(tls),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => conn,
            };
            let served = builder
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                .into_owned();
            let served = watcher.watch(served);
            let result = tokio::select! { r = served => r, _ = stop_rx.recv() => Ok(()) };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Watches never finish on their own: give requests a moment, then cut.
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    bytes_response(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

fn bytes_response(code: StatusCode, content_type: &str, b: Bytes) -> Response<Body> {
    let mut r = Response::new(full(b));
    *r.status_mut() = code;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

/// The `Status` response for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
    json_response(code, &body)
}

/// Percent-decodes a query component (`+` is a space).
fn decode_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into its last value per key.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(p), String::new()),
        })
        .collect()
}

/// How the client wants the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Json,
    Yaml,
    Table,
}

fn negotiate(accept: Option<&str>) -> ApiResult<Output> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: HashMap<String, String> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        let json_like = matches!(mime.as_str(), "application/json" | "*/*" | "application/*");
        if let Some(as_) = params.get("as") {
            if as_ == "Table"
                && params.get("g").map(String::as_str) == Some("meta.k8s.io")
                && json_like
            {
                return Ok(Output::Table);
            }
            // PartialObjectMetadata and other conversions are not served;
            // try the next media range.
            continue;
        }
        if json_like {
            return Ok(Output::Json);
        }
        if mime == "application/yaml" {
            return Ok(Output::Yaml);
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml (asked for {accept})"
    )))
}

fn encode(output: Output, v: &Value) -> (String, Bytes) {
    match output {
        Output::Yaml => (
            "application/yaml".into(),
            Bytes::from(serde_yaml_ng::to_string(v).unwrap_or_default()),
        ),
        _ => (
            "application/json".into(),
            Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        ),
    }
}

fn object_response(
    code: StatusCode,
    output: Output,
    rt: &dyn DynResource,
    obj: &Value,
    warnings: &[String],
) -> Response<Body> {
    let mut r = if output == Output::Table {
        let bytes = serde_json::to_vec(obj).unwrap_or_default();
        json_response(
            code,
            &table::single(rt, &bytes, IncludeObject::Metadata, true),
        )
    } else {
        let (ct, b) = encode(output, obj);
        bytes_response(code, &ct, b)
    };
    add_warnings(&mut r, warnings);
    r
}

fn add_warnings(r: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
}

/// A parsed resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
    /// `/api/v1/watch/...` legacy form.
    watch: bool,
}

fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let mut p = ResourcePath {
        group,
        version,
        namespace: None,
        resource: String::new(),
        name: None,
        sub: None,
        watch,
    };
    match rest {
        ["namespaces", ns, res, more @ ..]
            if !matches!(*res, "status" | "finalize") || !more.is_empty() =>
        {
            p.namespace = Some(ns.to_string());
            p.resource = res.to_string();
            match more {
                [] => {}
                [name] => p.name = Some(name.to_string()),
                [name, sub] => {
                    p.name = Some(name.to_string());
                    p.sub = Some(sub.to_string());
                }
                _ => return None,
            }
        }
        [res] => p.resource = res.to_string(),
        [res, name] => {
            p.resource = res.to_string();
            p.name = Some(name.to_string());
        }
        [res, name, sub] => {
            p.resource = res.to_string();
            p.name = Some(name.to_string());
            p.sub = Some(sub.to_string());
        }
        _ => return None,
    }
    if p.resource.is_empty() || p.name.as_deref() == Some("") {
        return None;
    }
    Some(p)
}

/// Reads and discards a small request body before an early error answer.
/// Over HTTP/2, answering while the client still sends makes the server
/// reset the stream, and some clients (curl) then report a framing error
/// instead of the answer. Bounded in size and time: a large or slow body
/// is cut off as before.
async fn drain_body(req: Request<Incoming>) {
    const MAX: usize = 1 << 20;
    let drain = async {
        let mut body = req.into_body();
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

async fn read_body(req: Request<Incoming>, limit: usize) -> ApiResult<Bytes> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(limit))
            } else {
                Err(ApiError::bad_request(format!(
                    "reading the request body failed: {e}"
                )))
            }
        }
    }
}

/// Decodes a JSON, YAML or Kubernetes protobuf body into one object.
fn decode_body(content_type: Option<&str>, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let v: Value = match ct.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
            })?,
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body)?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "unsupported content type {other:?}: wasmk accepts application/json and application/yaml"
            )));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn write_options(q: &HashMap<String, String>) -> ApiResult<WriteOptions> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
            )));
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be \"All\", not {other:?}"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_validation,
    })
}

fn list_options(q: &HashMap<String, String>) -> ApiResult<ListOptions> {
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit must be an integer, not {s:?}")))?
            .max(0) as usize,
    };
    let nonempty = |k: &str| q.get(k).filter(|s| !s.is_empty()).cloned();
    Ok(ListOptions {
        label_selector: nonempty("labelSelector"),
        field_selector: nonempty("fieldSelector"),
        limit,
        continue_token: nonempty("continue"),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: nonempty("resourceVersionMatch"),
    })
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> ApiResult<DeleteOptions> {
    let mut o: DeleteOptions = if body.iter().all(|b| b.is_ascii_whitespace()) {
        DeleteOptions::default()
    } else if body.starts_with(super::protobuf::MAGIC) {
        // kubectl drain --disable-eviction sends DeleteOptions as protobuf.
        serde_json::from_value(super::protobuf::decode(body)?)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = q.get("gracePeriodSeconds").filter(|s| !s.is_empty()) {
        o.grace_period_seconds = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds must be an integer, not {g:?}"))
        })?);
    }
    if let Some(p) = q.get("propagationPolicy").filter(|s| !s.is_empty()) {
        o.propagation_policy = Some(p.clone());
    }
    if let Some(d) = q.get("dryRun").filter(|s| !s.is_empty()) {
        o.dry_run = vec![d.clone()];
    }
    Ok(o)
}

fn parse_bool(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

async fn handle(server: Arc<ApiServer>, req: Request<Incoming>) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    tracing::trace!(%method, %path, %accept, content_type = %ctype, "request headers");
    let resp = match route(&server, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

async fn route(server: &Arc<ApiServer>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    // Health and version are open, as in Kubernetes.
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => {
            let ok = server.api.store.role().leader != 0;
            return Ok(if ok || path == "/livez" {
                bytes_response(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"ok"),
                )
            } else {
                bytes_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"no raft leader"),
                )
            });
        }
        "/version" => return Ok(json_response(StatusCode::OK, &discovery::version())),
        _ => {}
    }
    let user = match &server.auth {
        Some(auth) => match auth.authenticate(req.headers()) {
            Ok(u) => Some(u),
            Err(e) => {
                drain_body(req).await;
                return Err(ApiError::unauthorized(format!("Unauthorized: {e}")));
            }
        },
        None => None,
    };
    let ctx = RequestContext {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        user,
        headers: req.headers().clone(),
    };
    let mut slot = Some(req);
    for ext in &server.extensions {
        if let Some(r) = ext.handle(&ctx, &mut slot).await {
            return Ok(r);
        }
    }
    let Some(req) = slot else {
        return Err(ApiError::internal(
            "request consumed by an extension without a response",
        ));
    };
    let output = negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )?;
    let reg = server.api.registry;
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method == Method::GET {
        match segs.as_slice() {
            ["api"] => {
                return Ok(json_response(
                    StatusCode::OK,
                    &discovery::api_versions(&server.server_address),
                ));
            }
            ["apis"] => {
                return Ok(json_response(
                    StatusCode::OK,
                    &discovery::api_group_list(reg),
                ));
            }
            ["api", v] => {
                return discovery::resource_list(reg, "", v)
                    .map(|d| json_response(StatusCode::OK, &d))
                    .ok_or_else(|| ApiError::no_route(&path));
            }
            ["apis", g] => {
                return discovery::api_group(reg, g)
                    .map(|d| json_response(StatusCode::OK, &d))
                    .ok_or_else(|| ApiError::no_route(&path));
            }
            ["apis", g, v] => {
                return discovery::resource_list(reg, g, v)
                    .map(|d| json_response(StatusCode::OK, &d))
                    .ok_or_else(|| ApiError::no_route(&path));
            }
            ["openapi", "v2"] => return server.openapi.v2(reg, req.headers()),
            ["openapi", "v3"] => return server.openapi.v3_root(reg),
            ["openapi", "v3", rest @ ..] => return server.openapi.v3_group(reg, &rest.join("/")),
            _ => {}
        }
    }
    let Some(rp) = parse_resource_path(&path) else {
        return Err(ApiError::no_route(&path));
    };
    let rt = reg
        .find(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(|| ApiError::no_route(&path))?;
    let info = rt.info();
    if rp.namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(&path));
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    if info.namespaced && rp.name.is_some() && ns.is_empty() {
        return Err(ApiError::no_route(&path));
    }
    if let Some(sub) = &rp.sub
        && !info.subresources.contains(&sub.as_str())
    {
        return Err(ApiError::no_route(&path));
    }
    let api = &server.api;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_watch = rp.watch || parse_bool(&query, "watch");
    match (&method, rp.name.as_deref(), rp.sub.as_deref()) {
        (&Method::GET, None, None) if is_watch => {
            let opts = list_options(&query)?;
            let ns_opt = rp.namespace.as_deref();
            watch_response(server.clone(), rt, ns_opt, opts, &query, output).await
        }
        (&Method::GET, None, None) => {
            let opts = list_options(&query)?;
            let page = api.list(rt, rp.namespace.as_deref(), &opts).await?;
            Ok(list_response(rt, page, output, &query))
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            let obj = api
                .get(
                    info,
                    &ns,
                    name,
                    query.get("resourceVersion").map(String::as_str),
                )
                .await?;
            Ok(match output {
                Output::Table => json_response(
                    StatusCode::OK,
                    &table::single(rt, &obj, include_object(&query)?, true),
                ),
                Output::Json => bytes_response(StatusCode::OK, "application/json", obj),
                Output::Yaml => {
                    let v: Value = serde_json::from_slice(&obj).unwrap_or(Value::Null);
                    let (ct, b) = encode(Output::Yaml, &v);
                    bytes_response(StatusCode::OK, &ct, b)
                }
            })
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let obj = api.get(info, &ns, name, None).await?;
            let v: Value =
                serde_json::from_slice(&obj).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(json_response(StatusCode::OK, &scale_object(rt, &v)?))
        }
        (&Method::POST, None, None) => {
            let opts = write_options(&query)?;
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            let (obj, warnings) = api.create(rt, &ns, v, &opts).await?;
            Ok(object_response(
                StatusCode::CREATED,
                output,
                rt,
                &obj,
                &warnings,
            ))
        }
        (&Method::POST, Some(name), Some("binding")) => {
            let opts = write_options(&query)?;
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            api.bind(&ns, name, &v, &opts).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (&Method::POST, Some(name), Some("eviction")) => {
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            let opts: DeleteOptions = v
                .get("deleteOptions")
                .map(|d| serde_json::from_value(d.clone()))
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("invalid deleteOptions: {e}")))?
                .unwrap_or_default();
            api.delete(rt, &ns, name, &opts).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (&Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let opts = write_options(&query)?;
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            let scope = if sub.is_some() {
                UpdateScope::Status
            } else {
                UpdateScope::Main
            };
            let (obj, warnings) = api.update(rt, &ns, name, v, scope, &opts).await?;
            Ok(object_response(StatusCode::OK, output, rt, &obj, &warnings))
        }
        (&Method::PUT, Some(name), Some("finalize")) => {
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            let obj = api.finalize_namespace(name, &v).await?;
            Ok(object_response(StatusCode::OK, output, rt, &obj, &[]))
        }
        (&Method::PUT, Some(name), Some("scale")) => {
            let opts = write_options(&query)?;
            let body = read_body(req, MAX_BODY).await?;
            let v = decode_body(content_type.as_deref(), &body)?;
            let replicas = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas is required"))?;
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let obj = set_replicas(api, rt, &ns, name, replicas, &rv, &opts).await?;
            Ok(json_response(StatusCode::OK, &scale_object(rt, &obj)?))
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status") | Some("scale"))) => {
            let opts = write_options(&query)?;
            let body = read_body(req, MAX_BODY).await?;
            let ct = content_type.as_deref().unwrap_or("");
            let ptype = match PatchType::from_content_type(ct) {
                Some(p) => p,
                None if ct.starts_with("application/apply-patch") => {
                    return Err(ApiError::unsupported_media_type(
                        "server-side apply (application/apply-patch+yaml) is not supported by wasmk; use client-side `kubectl apply`",
                    ));
                }
                None => {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"
                    )));
                }
            };
            let patch: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            if sub == Some("scale") {
                let current = api.get(info, &ns, name, None).await?;
                let cur: Value = serde_json::from_slice(&current)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let scale = scale_object(rt, &cur)?;
                let patched = super::patch::apply_patch(ptype, "Scale", &scale, &patch)
                    .map_err(|e| ApiError::new(e.http_status(), "BadRequest", e.to_string()))?;
                let replicas = patched
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas is required"))?;
                let obj = set_replicas(api, rt, &ns, name, replicas, "", &opts).await?;
                return Ok(json_response(StatusCode::OK, &scale_object(rt, &obj)?));
            }
            let scope = if sub == Some("status") {
                UpdateScope::Status
            } else {
                UpdateScope::Main
            };
            let (obj, warnings) = api
                .patch(rt, &ns, name, ptype, &patch, scope, &opts)
                .await?;
            Ok(object_response(StatusCode::OK, output, rt, &obj, &warnings))
        }
        (&Method::DELETE, Some(name), None) => {
            let body = read_body(req, MAX_BODY).await?;
            let opts = delete_options(&query, &body)?;
            match api.delete(rt, &ns, name, &opts).await? {
                Deleted::Gone(obj) => {
                    Ok(object_response(StatusCode::OK, Output::Json, rt, &obj, &[]))
                }
                Deleted::Pending(obj) => Ok(object_response(
                    StatusCode::ACCEPTED,
                    Output::Json,
                    rt,
                    &obj,
                    &[],
                )),
            }
        }
        (&Method::DELETE, None, None) => {
            let body = read_body(req, MAX_BODY).await?;
            let opts = delete_options(&query, &body)?;
            let list = list_options(&query)?;
            let items = api
                .delete_collection(rt, rp.namespace.as_deref(), &list, &opts)
                .await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": {}, "items": items}),
            ))
        }
        (m, _, sub) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m} {}{})",
            info.qualified(),
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

fn include_object(q: &HashMap<String, String>) -> ApiResult<IncludeObject> {
    let s = q.get("includeObject").map(String::as_str).unwrap_or("");
    IncludeObject::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "includeObject must be None, Metadata or Object, not {s:?}"
        ))
    })
}

fn scale_object(rt: &dyn DynResource, obj: &Value) -> ApiResult<Value> {
    let view = rt
        .scale(obj)
        .ok_or_else(|| ApiError::no_route(&format!("{}/scale", rt.info().qualified())))?;
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": obj.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null),
        },
        "spec": {"replicas": view.spec_replicas},
        "status": {"replicas": view.status_replicas, "selector": view.selector},
    }))
}

async fn set_replicas(
    api: &Api,
    rt: &'static dyn DynResource,
    ns: &str,
    name: &str,
    replicas: i64,
    rv: &str,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let replicas =
        i32::try_from(replicas).map_err(|_| ApiError::bad_request("replicas out of range"))?;
    let current = api.get(rt.info(), ns, name, Some("0")).await?;
    let cur: Value =
        serde_json::from_slice(&current).map_err(|e| ApiError::internal(e.to_string()))?;
    if !rv.is_empty()
        && Some(rv)
            != cur
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::stale(rt.info(), name));
    }
    let patch = json!({"spec": {"replicas": replicas}});
    let (obj, _) = api
        .patch(
            rt,
            ns,
            name,
            PatchType::Merge,
            &patch,
            UpdateScope::Main,
            opts,
        )
        .await?;
    Ok(obj)
}

fn list_response(
    rt: &dyn DynResource,
    page: super::rest::ListPage,
    output: Output,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let info = rt.info();
    if output == Output::Table {
        let include = include_object(q).unwrap_or_default();
        return json_response(
            StatusCode::OK,
            &table::table(
                rt,
                &page.items,
                page.resource_version,
                &page.continue_token,
                page.remaining,
                include,
            ),
        );
    }
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if !page.continue_token.is_empty() {
        meta["continue"] = json!(page.continue_token);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    if output == Output::Yaml {
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
            .collect();
        let v = json!({"apiVersion": info.api_version(), "kind": info.list_kind(), "metadata": meta, "items": items});
        let (ct, b) = encode(Output::Yaml, &v);
        return bytes_response(StatusCode::OK, &ct, b);
    }
    // Stored objects are already JSON: splice them in without re-encoding.
    let head = format!(
        "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{},\"items\":[",
        Value::String(info.api_version()),
        Value::String(info.list_kind()),
        meta
    );
    let total: usize = head.len() + page.items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(head.as_bytes());
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    bytes_response(StatusCode::OK, "application/json", Bytes::from(out))
}

async fn watch_response(
    server: Arc<ApiServer>,
    rt: &'static dyn DynResource,
    ns: Option<&str>,
    opts: ListOptions,
    q: &HashMap<String, String>,
    output: Output,
) -> ApiResult<Response<Body>> {
    let send_initial = parse_bool(q, "sendInitialEvents");
    let bookmarks = parse_bool(q, "allowWatchBookmarks");
    let include = include_object(q)?;
    let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("timeoutSeconds must be an integer, not {s:?}"))
        })?),
        // Kubernetes picks a random duration between 30 and 60 minutes.
        None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let mut stream = server.api.watch(rt, ns, &opts, send_initial).await?;
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        let mut first_table = true;
        loop {
            let item = tokio::select! {
                i = stream.next() => match i { Some(i) => i, None => break },
                _ = tick.tick(), if bookmarks => match stream.bookmark() { Some(b) => b, None => continue },
                _ = &mut deadline => break,
                _ = tx.closed() => break,
            };
            let is_error = item.type_ == "ERROR";
            let mut line = if output == Output::Table
                && matches!(item.type_, "ADDED" | "MODIFIED" | "DELETED")
            {
                let t = table::single(rt, &item.object, include, first_table);
                first_table = false;
                serde_json::to_vec(&json!({"type": item.type_, "object": t})).unwrap_or_default()
            } else {
                watch_line(item.type_, &item.object)
            };
            line.push(b'\n');
            if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() || is_error {
                break;
            }
        }
    });
    let body = StreamBody::new(tokio_stream_wrapper(rx));
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

/// A watch event as one JSON object. The stored object is compact JSON
/// already, so it is spliced in rather than parsed and encoded again for
/// every watcher; anything else (never written by this server) goes the
/// long way, which turns it into valid JSON.
fn watch_line(type_: &str, object: &[u8]) -> Vec<u8> {
    let spliceable = object.first() == Some(&b'{') && !object.contains(&b'\n');
    if !spliceable {
        let object: Value = serde_json::from_slice(object).unwrap_or(Value::Null);
        return serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    }
    let mut line = Vec::with_capacity(object.len() + type_.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(type_.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.push(b'}');
    line
}

/// Adapts an mpsc receiver into a `Stream`.
fn tokio_stream_wrapper<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_splice_stored_objects() {
        let stored = br#"{"kind":"Pod","metadata":{"name":"a b","labels":{"x":"1"}},"n":[1,2.5]}"#;
        let line = watch_line("MODIFIED", stored);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "MODIFIED");
        assert_eq!(
            v["object"],
            serde_json::from_slice::<Value>(stored).unwrap()
        );
        // The same bytes as encoding the parsed event.
        assert_eq!(
            line,
            serde_json::to_vec(&json!({"type": "MODIFIED", "object": v["object"]})).unwrap()
        );
        // Not a compact object: re-encoded, still one valid line.
        let pretty = b"{\n  \"a\": 1\n}";
        let line = watch_line("ADDED", pretty);
        assert!(!line.contains(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["object"]["a"], 1);
        let v: Value = serde_json::from_slice(&watch_line("ERROR", b"")).unwrap();
        assert_eq!(v["object"], Value::Null);
    }

    #[test]
    fn paths_parse_like_kubernetes() {
        let p = parse_resource_path("/api/v1/namespaces/default/pods/web/log").unwrap();
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.resource.as_str(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            (Some("default"), "pods", Some("web"), Some("log"))
        );
        let p = parse_resource_path("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let p = parse_resource_path("/api/v1/namespaces/gone/finalize").unwrap();
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref(), p.sub.as_deref()),
            ("namespaces", Some("gone"), Some("finalize"))
        );
        let p = parse_resource_path("/apis/apps/v1/deployments").unwrap();
        assert_eq!((p.group.as_str(), p.namespace.as_deref()), ("apps", None));
        let p = parse_resource_path("/api/v1/watch/namespaces/a/pods").unwrap();
        assert!(p.watch);
        assert!(parse_resource_path("/api/v1/namespaces/a/pods/b/c/d").is_none());
        assert!(parse_resource_path("/foo").is_none());
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None).unwrap(), Output::Json);
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)).unwrap(), Output::Table);
        assert_eq!(negotiate(Some("application/yaml")).unwrap(), Output::Yaml);
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Output::Json
        );
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=500&watch");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["watch"], "");
        let q = parse_query("x=%zz&y=%4");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "%4");
    }

    #[test]
    fn bodies_decode_json_and_yaml_and_refuse_others() {
        assert!(decode_body(Some("application/json"), b"{\"a\":1}").is_ok());
        assert!(decode_body(Some("application/yaml"), b"a: 1\n").is_ok());
        assert_eq!(
            decode_body(Some("application/json"), b"{")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            decode_body(Some("application/json"), b"[1]")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            decode_body(Some("text/plain"), b"{}").unwrap_err().code,
            415
        );
        assert_eq!(
            decode_body(Some("application/vnd.kubernetes.protobuf"), b"k8s")
                .unwrap_err()
                .code,
            400
        );
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn body_decoding_never_panics(body in prop::collection::vec(any::<u8>(), 0..512),
                                      ct in prop_oneof![Just("application/json"), Just("application/yaml"), Just("text/plain"), Just("")]) {
            let _ = decode_body(Some(ct), &body);
        }

        #[test]
        fn query_and_paths_never_panic(q in ".{0,80}", p in "[a-z/%{}.-]{0,60}") {
            let _ = parse_query(&q);
            let _ = parse_resource_path(&p);
            let _ = negotiate(Some(&q));
        }
    }
}
