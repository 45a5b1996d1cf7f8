//! End-to-end tests of the client against a real HTTPS server on
//! `127.0.0.1:0`, built from this crate's PKI (`server_config`) and bearer
//! [`Authenticator`]: TLS verification, HTTP/2, status decoding, watch,
//! streams and failover. When `curl` and `kubectl` are installed they are
//! pointed at the same server as independent checks of the serving
//! certificate and of the admin kubeconfig.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::auth::{AuthError, Authenticator, ClientAuth, Pki, ServingNames, TokenFile};

const TOKEN: &str = "test-token-0123456789";

/// What a test server does with every request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Answers 503 to everything, like a master that lost its quorum.
    Unavailable,
}

struct TestServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    async fn start(pki: &Pki, mode: Mode) -> TestServer {
        let tokens = TokenFile::parse(
            &format!("{TOKEN},alice,u1,\"system:masters\"\n"),
            Path::new("tokens.csv"),
        )
        .unwrap();
        let auth = Arc::new(Authenticator::new(&tokens));
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(
            pki.server_config(ClientAuth::Optional).unwrap(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let tls = tls.clone();
                let auth = auth.clone();
                conns.spawn(async move {
                    // A client that rejects our certificate aborts here.
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| handle(req, auth.clone(), mode));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            conns.abort_all();
        });
        TestServer {
            url: format!("https://{addr}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn chunked(chunks: Vec<&'static str>) -> Response<Body> {
    let frames = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))),
    );
    Response::new(BodyExt::boxed(StreamBody::new(frames)))
}

async fn handle(
    req: Request<Incoming>,
    auth: Arc<Authenticator>,
    mode: Mode,
) -> Result<Response<Body>, Infallible> {
    if mode == Mode::Unavailable {
        return Ok(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "no leader",
        ));
    }
    let user = match auth.authenticate(req.headers()) {
        Ok(u) => u,
        Err(e) => {
            let message = match e {
                AuthError::MissingAuthorization => "no credentials".to_string(),
                other => other.to_string(),
            };
            return Ok(status(StatusCode::UNAUTHORIZED, "Unauthorized", &message));
        }
    };
    let version = format!("{:?}", req.version());
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let pods = "/api/v1/namespaces/default/pods";
    Ok(match (method, path.as_str()) {
        (Method::GET, p) if p.starts_with(&format!("{pods}/missing")) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "pods \"missing\" not found",
        ),
        (Method::GET, p) if p == format!("{pods}/web") => json_response(
            StatusCode::OK,
            json!({"kind": "Pod", "apiVersion": "v1",
                   "metadata": {"name": "web", "namespace": "default",
                                "annotations": {"user": user.name, "version": version}}}),
        ),
        (Method::GET, p) if p == pods && query.contains("watch=true") => chunked(vec![
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}\n",
            "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":",
            "{\"name\":\"a\",\"resourceVersion\":\"2\"}}}\n{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"3\"}}}\n",
            "{\"type\":\"DELETED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"4\"}}}\n",
        ]),
        (Method::GET, p) if p == pods => json_response(
            StatusCode::OK,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [], "query": query}),
        ),
        (Method::GET, p) if p == format!("{pods}/web/log") => {
            chunked(vec!["line 1\n", "line 2\n", "line 3\n"])
        }
        (Method::GET, "/slow") => {
            // Never answers; the server task is aborted at shutdown.
            std::future::pending::<()>().await;
            unreachable!()
        }
        (Method::POST, "/upload") => json_response(
            StatusCode::CREATED,
            json!({"size": body.len(), "contentType": content_type}),
        ),
        (m, p) if p.starts_with(pods) => {
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            json_response(
                StatusCode::OK,
                json!({"method": m.as_str(), "contentType": content_type, "body": sent}),
            )
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    })
}

struct Cluster {
    _tmp: tempfile::TempDir,
    pki: Pki,
}

fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&tmp.path().join("pki"), &ServingNames::loopback()).unwrap();
    Cluster { _tmp: tmp, pki }
}

fn client(c: &Cluster, servers: Vec<String>, token: Option<&str>) -> ApiClient {
    ApiClient::new(
        servers,
        c.pki.ca_cert_pem().as_bytes(),
        token.map(String::from),
    )
    .unwrap()
}

/// A URL nothing listens on: a port that was just bound and released.
async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    drop(l);
    format!("https://{addr}")
}

#[tokio::test]
async fn verbs_over_http2_with_the_cluster_ca() {
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let api = client(&c, vec![server.url.clone()], Some(TOKEN));
    let pods = resource_path("", "v1", "pods", Some("default"), None, None);

    let pod = api.get(&format!("{pods}/web")).await.unwrap();
    assert_eq!(pod["metadata"]["annotations"]["user"], "alice");
    assert_eq!(
        pod["metadata"]["annotations"]["version"],
        format!("{:?}", Version::HTTP_2)
    );

    let list = api
        .list(
            &pods,
            &ListParams {
                label_selector: Some("app=web".into()),
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(list["query"], "labelSelector=app%3Dweb&limit=2");

    let obj = json!({"metadata": {"name": "n"}});
    let created = api.create(&pods, &obj).await.unwrap();
    assert_eq!(
        (created["method"].as_str(), created["body"].clone()),
        (Some("POST"), obj.clone())
    );
    let updated = api.update(&format!("{pods}/n"), &obj).await.unwrap();
    assert_eq!(updated["method"], "PUT");
    for (pt, ct) in [
        (PatchType::Merge, "application/merge-patch+json"),
        (
            PatchType::StrategicMerge,
            "application/strategic-merge-patch+json",
        ),
        (PatchType::Json, "application/json-patch+json"),
    ] {
        let patched = api
            .patch(&format!("{pods}/n"), pt, &json!({}))
            .await
            .unwrap();
        assert_eq!(
            (patched["method"].as_str(), patched["contentType"].as_str()),
            (Some("PATCH"), Some(ct))
        );
    }
    let deleted = api
        .delete(
            &format!("{pods}/n"),
            &json!({"propagationPolicy": "Foreground"}),
        )
        .await
        .unwrap();
    assert_eq!(deleted["body"]["propagationPolicy"], "Foreground");

    let uploaded = api
        .upload("/upload", Bytes::from(vec![7u8; 3 << 20]))
        .await
        .unwrap();
    assert_eq!(uploaded["size"], 3 << 20);
    assert_eq!(uploaded["contentType"], "application/octet-stream");

    let (code, headers, body) = api.raw(Method::GET, "/nowhere", None, None).await.unwrap();
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.starts_with(b"{"));

    server.shutdown().await;
}

#[tokio::test]
async fn status_errors_and_401_are_decoded() {
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let api = client(&c, vec![server.url.clone()], Some(TOKEN));
    let err = api
        .get("/api/v1/namespaces/default/pods/missing")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Error from server (NotFound): pods \"missing\" not found"
    );

    let wrong = client(&c, vec![server.url.clone()], Some("not-the-token"));
    let err = wrong
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(401));
    assert_eq!(
        err.to_string(),
        "You must be logged in to the server (invalid bearer token)"
    );

    let anonymous = client(&c, vec![server.url.clone()], None);
    let err = anonymous
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "You must be logged in to the server (no credentials)"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_different_ca_is_refused() {
    let c = cluster();
    let other = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let api = client(&other, vec![server.url.clone()], Some(TOKEN));
    let err = api
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClientError::Unreachable(_)), "{text}");
    assert!(
        text.contains(&server.url) && text.contains("certificate"),
        "{text}"
    );

    // Verifying for another name than the certificate's fails the same way;
    // naming a SAN the certificate has (tls-server-name) passes.
    let mut config = ApiClientConfig::new(
        vec![server.url.clone()],
        c.pki.ca_cert_pem().into(),
        Some(TOKEN.into()),
    );
    config.tls_server_name = Some("not-in-the-cert.example".into());
    let err = ApiClient::from_config(config.clone())
        .unwrap()
        .get("/api/v1/namespaces/default/pods/web")
        .await;
    assert!(matches!(err, Err(ClientError::Unreachable(_))));
    config.tls_server_name = Some("localhost".into());
    ApiClient::from_config(config)
        .unwrap()
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn watch_streams_events_until_the_server_ends() {
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let api = client(&c, vec![server.url.clone()], Some(TOKEN));
    let params = ListParams {
        resource_version: Some("0".into()),
        allow_watch_bookmarks: true,
        ..Default::default()
    };
    let events: Vec<WatchEvent> = api
        .watch("/api/v1/namespaces/default/pods", &params)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let seen: Vec<(WatchEventType, &str)> = events
        .iter()
        .map(|e| {
            (
                e.type_,
                e.object["metadata"]["resourceVersion"].as_str().unwrap(),
            )
        })
        .collect();
    use WatchEventType::*;
    assert_eq!(
        seen,
        vec![
            (Added, "1"),
            (Modified, "2"),
            (Bookmark, "3"),
            (Deleted, "4")
        ]
    );

    let log: Vec<Bytes> = api
        .get_stream("/api/v1/namespaces/default/pods/web/log?follow=true")
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(log.concat(), b"line 1\nline 2\nline 3\n");

    let err = api
        .get_stream("/api/v1/namespaces/default/pods/missing/log")
        .await
        .err()
        .unwrap();
    assert!(err.is_not_found());
    let err = api
        .watch("/api/v1/namespaces/nope/pods", &params)
        .await
        .err()
        .unwrap();
    assert!(err.is_not_found());
    server.shutdown().await;
}

#[tokio::test]
async fn fails_over_to_a_live_server_and_remembers_it() {
    let c = cluster();
    let live = TestServer::start(&c.pki, Mode::Normal).await;
    let busy = TestServer::start(&c.pki, Mode::Unavailable).await;
    let dead = dead_url().await;

    let api = client(
        &c,
        vec![dead.clone(), busy.url.clone(), live.url.clone()],
        Some(TOKEN),
    );
    let pod = api
        .get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap();
    assert_eq!(pod["metadata"]["name"], "web");
    assert_eq!(api.current_server(), live.url);
    api.get("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap();
    assert_eq!(api.current_server(), live.url);

    let only_dead = client(&c, vec![dead.clone()], Some(TOKEN));
    let err = only_dead.get("/version").await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)));
    assert!(err.to_string().contains(&dead), "{err}");

    // Every server failing: the last answer (a 503 Status) is what the caller sees.
    let none_live = client(&c, vec![dead, busy.url.clone()], Some(TOKEN));
    let err = none_live.get("/version").await.unwrap_err();
    assert_eq!(err.code(), Some(503));
    assert_eq!(
        err.to_string(),
        "Error from server (ServiceUnavailable): no leader"
    );
    live.shutdown().await;
    busy.shutdown().await;
}

#[tokio::test]
async fn requests_time_out() {
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let mut config = ApiClientConfig::new(
        vec![server.url.clone()],
        c.pki.ca_cert_pem().into(),
        Some(TOKEN.into()),
    );
    config.request_timeout = Duration::from_millis(300);
    let api = ApiClient::from_config(config).unwrap();
    let err = api.get("/slow").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    server.shutdown().await;
}

#[test]
fn bad_configurations_are_refused() {
    let c = cluster();
    let ca = c.pki.ca_cert_pem().as_bytes();
    for bad in ["ftp://x", "https://", "127.0.0.1:6443", "https://h:1/?q=1"] {
        let r = ApiClient::new(vec![bad.into()], ca, None);
        assert!(matches!(r, Err(ClientError::InvalidUrl { .. })), "{bad}");
    }
    assert!(matches!(
        ApiClient::new(vec![], ca, None),
        Err(ClientError::NoServers)
    ));
    let mut config = ApiClientConfig::new(vec!["https://h:1".into()], Vec::new(), None);
    assert!(matches!(
        ApiClient::from_config(config.clone()),
        Err(ClientError::NoCa { .. })
    ));
    config.insecure_skip_tls_verify = true;
    assert!(ApiClient::from_config(config.clone()).is_ok());
    let mut bad_token = config.clone();
    bad_token.token = Some("a\nb".into());
    assert!(matches!(
        ApiClient::from_config(bad_token),
        Err(ClientError::InvalidToken)
    ));
    config.tls_server_name = Some("bad name!".into());
    assert!(matches!(
        ApiClient::from_config(config),
        Err(ClientError::InvalidServerName { .. })
    ));
}

fn tool(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("{name} not found; skipping the cross-check");
    }
    found
}

#[tokio::test]
async fn curl_accepts_the_serving_certificate() {
    if !tool("curl") {
        return;
    }
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(c.pki.ca_cert_path())
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!(
            "{}/api/v1/namespaces/default/pods/web",
            server.url.replace("127.0.0.1", "localhost")
        ))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pod["metadata"]["annotations"]["user"], "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn kubectl_uses_the_admin_kubeconfig() {
    if !tool("kubectl") {
        return;
    }
    let c = cluster();
    let server = TestServer::start(&c.pki, Mode::Normal).await;
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join(".wasmk/kubeconfig");
    write_admin_kubeconfig(
        &kubeconfig,
        &server.url,
        c.pki.ca_cert_pem().as_bytes(),
        TOKEN,
    )
    .unwrap();
    let kubectl = |path: &str| {
        tokio::process::Command::new("kubectl")
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--request-timeout", "20s", "get", "--raw", path])
            .output()
    };
    let out = kubectl("/api/v1/namespaces/default/pods/web")
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pod["metadata"]["annotations"]["user"], "alice");
    assert_eq!(
        pod["metadata"]["annotations"]["version"],
        format!("{:?}", Version::HTTP_2)
    );

    // kubectl's own rendering of a Status error matches ours.
    let out = kubectl("/api/v1/namespaces/default/pods/missing")
        .await
        .unwrap();
    assert!(!out.status.success());
    let ours = client(&c, vec![server.url.clone()], Some(TOKEN))
        .get("/api/v1/namespaces/default/pods/missing")
        .await
        .unwrap_err()
        .to_string();
    let theirs = String::from_utf8_lossy(&out.stderr);
    assert!(
        theirs.contains(&ours),
        "kubectl said {theirs:?}, we say {ours:?}"
    );
    server.shutdown().await;
}
