//! [`ApiClient`]: HTTPS to the API servers with the cluster CA, HTTP/1.1
//! and HTTP/2 (ALPN), pooled connections, a request timeout, and failover
//! across several server URLs. A server on the same machine may also be
//! reached through its Unix socket (`unix:/path/api.sock`, see
//! [`super::connector`]).
//!
//! Failover: requests go to the server that last answered; on a connection
//! failure (refused, TLS handshake failure, connect timeout) or a 503 the
//! next server is tried. Other failures are returned as they are: a request
//! that timed out may have been applied, so it is not sent again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use tokio::time::Instant;

use super::connector::{Connector, unix_host, unix_socket_path};
use super::error::{ApiError, ClientError, ConnectFailure};
use super::kubeconfig::{self, ClusterAccess, Kubeconfig};
use super::path::{ListParams, with_query};
use super::watch::{EventDecoder, WatchEvent};
use crate::auth::{Identity, tls};

/// Bytes of a streamed response body (`logs -f`).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;
/// Events of a watch, until the server ends it.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, ClientError>> + Send>>;

const JSON: &str = "application/json";

/// The patch formats the API accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch (what `kubectl apply` sends).
    StrategicMerge,
    /// RFC 6902 JSON patch.
    Json,
}

impl PatchType {
    /// The request content type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// How to reach and authenticate to the API servers.
#[derive(Clone)]
pub struct ApiClientConfig {
    /// Base URLs (`https://10.0.0.1:6443`); the first is tried first.
    pub servers: Vec<String>,
    /// CA bundle (PEM) the servers' certificates must chain to.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// Verify the server certificate for this name instead of the URL host.
    pub tls_server_name: Option<String>,
    pub token: Option<String>,
    /// Client certificate to present.
    pub identity: Option<Identity>,
    /// Limit on a whole request, from sending to the last byte of the body.
    pub request_timeout: Duration,
    /// Limit on establishing a TCP connection to one server.
    pub connect_timeout: Duration,
    /// Limit on [`ApiClient::upload`] requests, which carry large bodies.
    pub upload_timeout: Duration,
}

impl ApiClientConfig {
    /// Servers trusted through `ca_pem`, authenticated with `token`.
    pub fn new(servers: Vec<String>, ca_pem: Vec<u8>, token: Option<String>) -> Self {
        ApiClientConfig {
            servers,
            ca_pem: Some(ca_pem),
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            token,
            identity: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            upload_timeout: Duration::from_secs(600),
        }
    }

    /// The settings of a kubeconfig context.
    pub fn from_access(access: &ClusterAccess) -> Self {
        ApiClientConfig {
            ca_pem: access.ca_pem.clone(),
            insecure_skip_tls_verify: access.insecure_skip_tls_verify,
            tls_server_name: access.tls_server_name.clone(),
            identity: access.identity.clone(),
            ..ApiClientConfig::new(
                vec![access.server.clone()],
                Vec::new(),
                access.token.clone(),
            )
        }
    }
}

impl std::fmt::Debug for ApiClientConfig {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientConfig")
            .field("servers", &self.servers)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("has_token", &self.token.is_some())
            .field("identity", &self.identity)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

struct Server {
    /// As configured, for messages.
    url: String,
    /// Scheme, authority and path prefix, without a trailing slash.
    base: String,
}

struct Inner {
    servers: Vec<Server>,
    /// Index of the server that answered last.
    preferred: AtomicUsize,
    http: Client<Connector, Full<Bytes>>,
    authorization: Option<HeaderValue>,
    request_timeout: Duration,
    upload_timeout: Duration,
}

/// A client of the Kubernetes-compatible API. Cheap to clone; clones share
/// connections.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("servers", &self.servers())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for explicit servers, trusting `ca_pem`, sending `token`.
    pub fn new(
        servers: Vec<String>,
        ca_pem: &[u8],
        token: Option<String>,
    ) -> Result<ApiClient, ClientError> {
        ApiClient::from_config(ApiClientConfig::new(servers, ca_pem.to_vec(), token))
    }

    /// A client for the current context of the kubeconfig [`kubeconfig::resolve`]
    /// finds from `explicit`, and that context's namespace.
    pub fn from_kubeconfig(
        explicit: Option<&std::path::Path>,
    ) -> Result<(ApiClient, String), ClientError> {
        let path = kubeconfig::resolve(explicit)?;
        let access = Kubeconfig::load(&path)?.current()?;
        let client = ApiClient::from_config(ApiClientConfig::from_access(&access))?;
        Ok((client, access.namespace))
    }

    /// A client with every setting given; fails on bad URLs, a missing CA
    /// for an `https` server, or unusable certificates.
    pub fn from_config(config: ApiClientConfig) -> Result<ApiClient, ClientError> {
        if config.servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let mut servers = Vec::new();
        let mut sockets = Vec::new();
        for (index, url) in config.servers.iter().enumerate() {
            let (server, socket) = parse_server(url, index)?;
            servers.push(server);
            sockets.push(socket);
        }
        let tls_config = match (&config.ca_pem, config.insecure_skip_tls_verify) {
            (_, true) => tls::insecure_client_config(config.identity.as_ref())?,
            (Some(ca), false) if !ca.is_empty() => {
                tls::client_config(ca, config.identity.as_ref())?
            }
            _ => {
                if let Some(s) = servers.iter().find(|s| s.base.starts_with("https:")) {
                    return Err(ClientError::NoCa {
                        server: s.url.clone(),
                    });
                }
                // Only plain-HTTP servers: the TLS settings are never used.
                tls::insecure_client_config(None)?
            }
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http();
        let builder = match &config.tls_server_name {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                    ClientError::InvalidServerName {
                        name: name.clone(),
                        reason: e.to_string(),
                    }
                })?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = Connector::new(builder.enable_all_versions().wrap_connector(tcp), sockets);
        let http = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let authorization = match &config.token {
            Some(t) if !t.is_empty() => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| ClientError::InvalidToken)?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        Ok(ApiClient {
            inner: Arc::new(Inner {
                servers,
                preferred: AtomicUsize::new(0),
                http,
                authorization,
                request_timeout: config.request_timeout,
                upload_timeout: config.upload_timeout,
            }),
        })
    }

    /// The configured server URLs.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.iter().map(|s| s.url.clone()).collect()
    }

    /// The server requests go to first (the one that answered last).
    pub fn current_server(&self) -> &str {
        let i = self.inner.preferred.load(Ordering::Relaxed) % self.inner.servers.len();
        &self.inner.servers[i].url
    }

    /// GET an object or any JSON document.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.json(Method::GET, path, None, None).await
    }

    /// GET a collection.
    /// GET asking for a `meta.k8s.io/v1` Table (what `kubectl get` prints).
    pub async fn get_table(&self, path: &str) -> Result<Value, ClientError> {
        const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let (server, resp) = self
            .send_accept(
                &Method::GET,
                path,
                Bytes::new(),
                None,
                TABLE,
                deadline,
                timeout,
            )
            .await?;
        decode_json(&server, path, resp, deadline, timeout).await
    }

    pub async fn list(&self, path: &str, params: &ListParams) -> Result<Value, ClientError> {
        let path = with_query(path, &params.query_pairs());
        self.json(Method::GET, &path, None, None).await
    }

    /// POST a new object to its collection.
    pub async fn create(&self, path: &str, object: &Value) -> Result<Value, ClientError> {
        self.json(Method::POST, path, Some(object), Some(JSON))
            .await
    }

    /// PUT an object (optimistic concurrency through its resourceVersion).
    pub async fn update(&self, path: &str, object: &Value) -> Result<Value, ClientError> {
        self.json(Method::PUT, path, Some(object), Some(JSON)).await
    }

    /// PATCH an object.
    pub async fn patch(
        &self,
        path: &str,
        patch_type: PatchType,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        self.json(
            Method::PATCH,
            path,
            Some(patch),
            Some(patch_type.content_type()),
        )
        .await
    }

    /// DELETE an object or collection; `options` is a `DeleteOptions`
    /// object, or `null` for none. Returns the object or a `Status`.
    pub async fn delete(&self, path: &str, options: &Value) -> Result<Value, ClientError> {
        let body = (!options.is_null()).then_some(options);
        self.json(Method::DELETE, path, body, body.map(|_| JSON))
            .await
    }

    /// POST a large opaque body (`application/octet-stream`), with the
    /// upload timeout instead of the request timeout.
    pub async fn upload(&self, path: &str, data: Bytes) -> Result<Value, ClientError> {
        let deadline = Instant::now() + self.inner.upload_timeout;
        let (server, resp) = self
            .send(
                &Method::POST,
                path,
                data,
                Some("application/octet-stream"),
                deadline,
                self.inner.upload_timeout,
            )
            .await?;
        decode_json(&server, path, resp, deadline, self.inner.upload_timeout).await
    }

    /// Watches a collection: `watch=true` plus `params`. The stream ends
    /// when the server closes the watch (after `timeoutSeconds`).
    pub async fn watch(&self, path: &str, params: &ListParams) -> Result<WatchStream, ClientError> {
        let mut pairs = vec![("watch", "true".to_string())];
        pairs.extend(params.query_pairs());
        let path = with_query(path, &pairs);
        let (server, body) = self.open_stream(&path).await?;
        let state = WatchState {
            body: body.into_data_stream(),
            decoder: EventDecoder::default(),
            queue: VecDeque::new(),
            done: false,
            server,
            path,
        };
        Ok(Box::pin(futures::stream::unfold(state, WatchState::next)))
    }

    /// GET a streamed body (`logs?follow=true`); error statuses are
    /// decoded as usual.
    pub async fn get_stream(&self, path: &str) -> Result<ByteStream, ClientError> {
        let (server, body) = self.open_stream(path).await?;
        Ok(body_stream(server, body))
    }

    /// Any request; the response is returned whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let (server, resp) = self
            .send(
                &method,
                path,
                body.unwrap_or_default(),
                content_type,
                deadline,
                timeout,
            )
            .await?;
        let (parts, body) = resp.into_parts();
        let bytes = collect(&server, body, deadline, timeout).await?;
        Ok((parts.status, parts.headers, bytes))
    }

    /// Any request with a streamed response body, whatever its status. Only
    /// the response headers are subject to the request timeout.
    pub async fn raw_stream(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, ByteStream), ClientError> {
        let timeout = self.inner.request_timeout;
        let (server, resp) = self
            .send(
                &method,
                path,
                body.unwrap_or_default(),
                content_type,
                Instant::now() + timeout,
                timeout,
            )
            .await?;
        let (parts, body) = resp.into_parts();
        Ok((parts.status, parts.headers, body_stream(server, body)))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&str>,
    ) -> Result<Value, ClientError> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(ClientError::Encode)?),
            None => Bytes::new(),
        };
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let (server, resp) = self
            .send(&method, path, bytes, content_type, deadline, timeout)
            .await?;
        decode_json(&server, path, resp, deadline, timeout).await
    }

    /// Sends a GET whose body is read as a stream, mapping error statuses.
    async fn open_stream(&self, path: &str) -> Result<(String, Incoming), ClientError> {
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let (server, resp) = self
            .send(&Method::GET, path, Bytes::new(), None, deadline, timeout)
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = collect(&server, resp.into_body(), deadline, timeout).await?;
            return Err(ApiError::from_response(status, &body).into());
        }
        Ok((server, resp.into_body()))
    }

    /// Sends one request with failover; returns the server that answered.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(String, Response<Incoming>), ClientError> {
        self.send_accept(method, path, body, content_type, JSON, deadline, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_accept(
        &self,
        method: &Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        accept: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(String, Response<Incoming>), ClientError> {
        let inner = &self.inner;
        let n = inner.servers.len();
        let start = inner.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for attempt in 0..n {
            let index = (start + attempt) % n;
            let server = &inner.servers[index];
            let req = self.request(server, method, path, body.clone(), content_type, accept)?;
            match tokio::time::timeout_at(deadline, inner.http.request(req)).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        server: server.url.clone(),
                        after: timeout,
                    });
                }
                Ok(Err(e)) if e.is_connect() => failures.push(ConnectFailure {
                    server: server.url.clone(),
                    reason: connect_reason(&e),
                }),
                Ok(Err(e)) => {
                    return Err(ClientError::Request {
                        server: server.url.clone(),
                        reason: error_chain(&e),
                    });
                }
                Ok(Ok(resp))
                    if resp.status() == StatusCode::SERVICE_UNAVAILABLE && attempt + 1 < n =>
                {
                    failures.push(ConnectFailure {
                        server: server.url.clone(),
                        reason: "503 Service Unavailable".into(),
                    });
                }
                Ok(Ok(resp)) => {
                    if resp.status() != StatusCode::SERVICE_UNAVAILABLE {
                        inner.preferred.store(index, Ordering::Relaxed);
                    }
                    return Ok((server.url.clone(), resp));
                }
            }
        }
        Err(ClientError::Unreachable(failures))
    }

    fn request(
        &self,
        server: &Server,
        method: &Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        accept: &str,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let url = format!("{}{}", server.base, path);
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("wasmk/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        if let Some(auth) = &self.inner.authorization {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ClientError::InvalidUrl {
                url,
                reason: e.to_string(),
            })
    }
}

/// The `index`th server, and its socket when it is a `unix:` one.
fn parse_server(
    url: &str,
    index: usize,
) -> Result<(Server, Option<std::path::PathBuf>), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = unix_socket_path(url) {
        let path = path.map_err(invalid)?;
        let server = Server {
            url: url.trim().to_string(),
            base: format!("http://{}", unix_host(index)),
        };
        return Ok((server, Some(path)));
    }
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(invalid("scheme must be https, http or unix")),
    }
    if uri.authority().is_none() {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("a server URL cannot have a query"));
    }
    let text = uri.to_string();
    let server = Server {
        url: url.trim().to_string(),
        base: text.trim_end_matches('/').to_string(),
    };
    Ok((server, None))
}

async fn decode_json(
    server: &str,
    path: &str,
    resp: Response<Incoming>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let status = resp.status();
    let body = collect(server, resp.into_body(), deadline, timeout).await?;
    if !status.is_success() {
        return Err(ApiError::from_response(status, &body).into());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        server: server.to_string(),
        path: path.to_string(),
        source,
    })
}

async fn collect(
    server: &str,
    body: Incoming,
    deadline: Instant,
    timeout: Duration,
) -> Result<Bytes, ClientError> {
    match tokio::time::timeout_at(deadline, body.collect()).await {
        Err(_) => Err(ClientError::Timeout {
            server: server.to_string(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(ClientError::Request {
            server: server.to_string(),
            reason: error_chain(&e),
        }),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn body_stream(server: String, body: Incoming) -> ByteStream {
    Box::pin(body.into_data_stream().map(move |r| {
        r.map_err(|e| ClientError::Request {
            server: server.clone(),
            reason: error_chain(&e),
        })
    }))
}

struct WatchState {
    body: http_body_util::BodyDataStream<Incoming>,
    decoder: EventDecoder,
    queue: VecDeque<WatchEvent>,
    /// Set once the body ended or failed; queued events are still yielded.
    done: bool,
    server: String,
    path: String,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent, ClientError>, WatchState)> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some((Ok(ev), self));
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => match self.decoder.push(&chunk) {
                    Ok(events) => self.queue.extend(events),
                    Err(source) => {
                        self.done = true;
                        let err = ClientError::Decode {
                            server: self.server.clone(),
                            path: self.path.clone(),
                            source,
                        };
                        return Some((Err(err), self));
                    }
                },
                Some(Err(e)) => {
                    self.done = true;
                    let err = ClientError::Request {
                        server: self.server.clone(),
                        reason: error_chain(&e),
                    };
                    return Some((Err(err), self));
                }
                None => {
                    self.done = true;
                    if self.decoder.has_partial() {
                        let err = ClientError::Request {
                            server: self.server.clone(),
                            reason: "the watch ended in the middle of an event".into(),
                        };
                        return Some((Err(err), self));
                    }
                }
            }
        }
    }
}

/// The causes of a connection failure, without hyper's generic top line.
fn connect_reason(e: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => error_chain(source),
        None => e.to_string(),
    }
}

/// An error and its sources, each once: `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
