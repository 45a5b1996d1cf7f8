//! The agent's HTTPS endpoint (the kubelet's port): container logs for the
//! API server's `pods/log`, usage for `metrics.k8s.io`, and a health check.
//!
//! TLS uses a self-signed certificate generated at every start for the
//! node's address and host name; the API server does not verify it (as the
//! Kubernetes API server does not verify kubelets by default). Callers
//! authenticate with a bearer token that the agent checks through a
//! TokenReview ([`super::review`]); only members of `system:masters` (the
//! API server's `system:apiserver` identity among them) are served.
//!
//! Routes:
//! - `GET /healthz` (no authentication)
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&previous=&timestamps=&sinceSeconds=&sinceTime=&limitBytes=`
//! - `GET /stats/summary`

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::Ctx;
use super::review::{ReviewError, TokenReviewer};
use super::stats::Collector;
use crate::api::core::PodStatus;
use crate::apiserver::http::{Body, parse_query};
use crate::auth::Identity;
use crate::auth::token::{MASTERS_GROUP, bearer_token};
use crate::sandbox::{LogFollower, LogOptions, read_logs};

/// Errors setting up the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the agent's serving certificate: {0}")]
    Certificate(String),
    #[error(transparent)]
    Tls(#[from] crate::auth::AuthError),
}

/// A self-signed serving certificate for `names` (IPs and DNS names).
pub fn self_signed(names: &[String]) -> Result<Identity, ServerError> {
    let cert_err = |e: rcgen::Error| ServerError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(cert_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wasmk-agent");
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What the endpoint needs.
pub struct AgentServer {
    pub ctx: Arc<Ctx>,
    pub reviewer: TokenReviewer,
    pub stats: Arc<Collector>,
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A Kubernetes `Status` error, which the API server passes on as it is.
fn status_error(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bad_request(message: &str) -> Response<Body> {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Serves until `shutdown`.
pub async fn serve(
    server: Arc<AgentServer>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "agent accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = super::stopped(&mut shutdown) => break,
        };
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let acceptor = acceptor.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        tracing::debug!(%peer, "agent TLS handshake failed");
                        return;
                    }
                };
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(route(&server, req).await) }
            });
            let conn =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .into_owned();
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "agent connection ended with an error");
                },
                _ = super::stopped(&mut stop) => {}
            }
        });
    }
    conns.shutdown().await;
}

async fn route(server: &AgentServer, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let user = match bearer_token(req.headers()) {
        Ok(token) => server.reviewer.review(token).await,
        Err(e) => Err(ReviewError::Denied(e.to_string())),
    };
    let user = match user {
        Ok(u) => u,
        Err(ReviewError::Denied(m)) => {
            return status_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                &format!("Unauthorized: {m}"),
            );
        }
        Err(e) => {
            return status_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &e.to_string(),
            );
        }
    };
    if !user.in_group(MASTERS_GROUP) {
        return status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("user {:?} may not use the node agent's API", user.name),
        );
    }
    if req.method() != Method::GET {
        return status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET is served",
        );
    }
    let query = parse_query(req.uri().query().unwrap_or(""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["containerLogs", ns, pod, container] => {
            container_logs(server, ns, pod, container, &query).await
        }
        ["stats", "summary"] => {
            let stats = server.stats.clone();
            match tokio::task::spawn_blocking(move || stats.summary()).await {
                Ok(v) => {
                    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
                Err(e) => status_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &e.to_string(),
                ),
            }
        }
        _ => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route {path}"),
        ),
    }
}

/// The run whose log a request means, from the container's status as the
/// kubelet decides it (`validateContainerLogStatus`): the previous run's
/// for `previous`, else the running one, else the last one that ran.
/// Returns the run number and whether it is still running.
pub fn log_run(
    status: &PodStatus,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<(u32, bool), String> {
    let Some(s) = status
        .container_statuses
        .iter()
        .chain(&status.init_container_statuses)
        .find(|s| s.name == container)
    else {
        return Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start - no logs yet"
        ));
    };
    let run_of = |id: &str| id.rsplit('/').next().and_then(|n| n.parse::<u32>().ok());
    let last = s
        .last_state
        .terminated
        .as_ref()
        .filter(|t| !t.container_id.is_empty());
    if previous {
        return last
            .and_then(|t| run_of(&t.container_id))
            .map(|n| (n, false))
            .ok_or_else(|| {
                format!("previous terminated container {container:?} in pod {pod:?} not found")
            });
    }
    if s.state.running.is_some() {
        return run_of(&s.container_id)
            .map(|n| (n, true))
            .ok_or_else(|| format!("container {container:?} in pod {pod:?} has no container ID"));
    }
    if let Some(t) = &s.state.terminated {
        let id = if t.container_id.is_empty() {
            last.map(|l| l.container_id.as_str()).unwrap_or("")
        } else {
            &t.container_id
        };
        return run_of(id)
            .map(|n| (n, false))
            .ok_or_else(|| format!("container {container:?} in pod {pod:?} is terminated"));
    }
    if let Some(t) = last {
        return run_of(&t.container_id)
            .map(|n| (n, false))
            .ok_or_else(|| format!("container {container:?} in pod {pod:?} is terminated"));
    }
    match &s.state.waiting {
        Some(w) if w.reason == "ErrImagePull" => Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start: image can't be pulled"
        )),
        Some(w) => Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start: {}",
            w.reason
        )),
        None => Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start - no logs yet"
        )),
    }
}

/// `PodLogOptions` from the query string.
pub fn log_options(
    q: &std::collections::HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<LogOptions, String> {
    let num = |k: &str| -> Result<Option<u64>, String> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| Some(n as u64))
                .ok_or_else(|| format!("{k} must be a non-negative integer, not {v:?}")),
        }
    };
    let since = match (
        num("sinceSeconds")?,
        q.get("sinceTime").filter(|v| !v.is_empty()),
    ) {
        (Some(s), _) => {
            Some(now - chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000)))
        }
        (None, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("sinceTime {t:?} is not RFC 3339: {e}"))?
                .with_timezone(&Utc),
        ),
        (None, None) => None,
    };
    Ok(LogOptions {
        tail_lines: num("tailLines")?,
        since,
        timestamps: flag(q, "timestamps"),
        limit_bytes: num("limitBytes")?,
    })
}

fn flag(q: &std::collections::HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

async fn container_logs(
    server: &AgentServer,
    ns: &str,
    pod: &str,
    container: &str,
    q: &std::collections::HashMap<String, String>,
) -> Response<Body> {
    let ctx = &server.ctx;
    let Some(summary) = ctx.index.find(ns, pod) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pod {ns}/{pod} is not on node {}", ctx.cfg.node_name),
        );
    };
    if !summary.containers.iter().any(|c| c == container) {
        return bad_request(&format!("container {container} is not valid for pod {pod}"));
    }
    let opts = match log_options(q, Utc::now()) {
        Ok(o) => o,
        Err(m) => return bad_request(&m),
    };
    let (run, running) = match log_run(&summary.status, pod, container, flag(q, "previous")) {
        Ok(r) => r,
        Err(m) => return bad_request(&m),
    };
    let path = ctx.layout.log_path(&summary.uid, container, run);
    if flag(q, "follow") && running {
        return follow(
            server.ctx.clone(),
            summary.uid.clone(),
            container.to_string(),
            run,
            path,
            opts,
        );
    }
    match tokio::task::spawn_blocking(move || read_logs(&path, &opts)).await {
        Ok(Ok(bytes)) => text(StatusCode::OK, bytes),
        Ok(Err(e)) => status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
        Err(e) => status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
    }
}

/// Streams a running container's log until it stops (or the client goes).
fn follow(
    ctx: Arc<Ctx>,
    uid: String,
    container: String,
    run: u32,
    path: PathBuf,
    opts: LogOptions,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut follower = match LogFollower::new(&path, opts) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Bytes::from(format!("{e}\n"))).await;
                return;
            }
        };
        let notify = path.parent().and_then(|d| Inotify::watch(d).ok());
        loop {
            let (f, chunk) = match tokio::task::spawn_blocking(move || {
                let mut f = follower;
                let chunk = f.poll();
                (f, chunk)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
            follower = f;
            match chunk {
                Ok(bytes) if !bytes.is_empty() => {
                    if tx.send(Bytes::from(bytes)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "log follow failed");
                    return;
                }
            }
            if !still_running(&ctx, &uid, &container, run) {
                // One last read for what was written before the exit.
                if let Ok(bytes) = follower.poll()
                    && !bytes.is_empty()
                {
                    let _ = tx.send(Bytes::from(bytes)).await;
                }
                return;
            }
            // New output wakes us at once; the timeout notices the exit of
            // a container that stopped writing.
            let wait = async {
                match &notify {
                    Some(n) => n.changed().await,
                    None => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn still_running(ctx: &Ctx, uid: &str, container: &str, run: u32) -> bool {
    let Some(p) = ctx.index.get(uid) else {
        return false;
    };
    matches!(log_run(&p.status, &p.name, container, false), Ok((n, true)) if n == run)
}

/// Notices writes and new files in a directory (inotify), so log followers
/// wake when there is output instead of polling.
struct Inotify {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
}

impl Inotify {
    fn watch(dir: &Path) -> io::Result<Inotify> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: inotify_init1 returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        // SAFETY: a valid inotify fd and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns `fd`, which stays open and unchanged
        // until the AsyncFd is dropped.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)?
        };
        Ok(Inotify { fd })
    }

    /// Resolves after at least one event, having drained them all.
    async fn changed(&self) {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let mut buf = [0u8; 4096];
            // SAFETY: read into a stack buffer from our non-blocking fd.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n > 0 {
                // Drain the rest so the next wait needs new events.
                loop {
                    // SAFETY: as above.
                    let more = unsafe {
                        libc::read(
                            self.fd.get_ref().as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                        )
                    };
                    if more <= 0 {
                        break;
                    }
                }
                guard.clear_ready();
                return;
            }
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Time;
    use crate::api::core::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus,
    };

    fn status(state: ContainerState, last: ContainerState, id: &str) -> PodStatus {
        PodStatus {
            container_statuses: vec![ContainerStatus {
                name: "app".into(),
                state,
                last_state: last,
                container_id: id.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn running() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Time::from_unix(1),
            }),
            ..Default::default()
        }
    }

    fn terminated(id: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                container_id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: reason.into(),
                message: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn which_run_a_log_request_means() {
        let none = ContainerState::default();
        type Case = (
            &'static str,
            PodStatus,
            bool,
            Result<(u32, bool), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "running",
                status(running(), none.clone(), "wasmk://u/app/2"),
                false,
                Ok((2, true)),
            ),
            (
                "previous of running",
                status(running(), terminated("wasmk://u/app/1"), "wasmk://u/app/2"),
                true,
                Ok((1, false)),
            ),
            (
                "no previous",
                status(running(), none.clone(), "wasmk://u/app/0"),
                true,
                Err("previous terminated container \"app\" in pod \"p\" not found"),
            ),
            (
                "crash loop shows the last run",
                status(
                    waiting("CrashLoopBackOff"),
                    terminated("wasmk://u/app/4"),
                    "",
                ),
                false,
                Ok((4, false)),
            ),
            (
                "terminated",
                status(
                    terminated("wasmk://u/app/0"),
                    none.clone(),
                    "wasmk://u/app/0",
                ),
                false,
                Ok((0, false)),
            ),
            (
                "waiting",
                status(waiting("ContainerCreating"), none.clone(), ""),
                false,
                Err("container \"app\" in pod \"p\" is waiting to start: ContainerCreating"),
            ),
            (
                "module not found",
                status(waiting("ModuleNotFound"), none, ""),
                false,
                Err("is waiting to start: ModuleNotFound"),
            ),
        ];
        for (name, st, previous, want) in cases {
            match (log_run(&st, "p", "app", previous), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn log_query_options() {
        let now = Utc::now();
        let q = |s: &str| parse_query(s);
        let o = log_options(&q("tailLines=5&timestamps=true&limitBytes=100"), now).unwrap();
        assert_eq!(o.tail_lines, Some(5));
        assert!(o.timestamps);
        assert_eq!(o.limit_bytes, Some(100));
        let o = log_options(&q("sinceSeconds=60"), now).unwrap();
        assert_eq!(o.since, Some(now - chrono::Duration::seconds(60)));
        let o = log_options(&q("sinceTime=2024-05-01T10:20:30Z"), now).unwrap();
        assert_eq!(o.since.unwrap().to_rfc3339(), "2024-05-01T10:20:30+00:00");
        assert!(log_options(&q("tailLines=-1"), now).is_err());
        assert!(log_options(&q("tailLines=x"), now).is_err());
        assert!(log_options(&q("sinceTime=yesterday"), now).is_err());
    }

    #[tokio::test]
    async fn inotify_wakes_on_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let n = Inotify::watch(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("0.log"), b"x").unwrap();
        tokio::time::timeout(Duration::from_secs(10), n.changed())
            .await
            .expect("an event for the write");
    }

    #[test]
    fn certificates_name_the_node() {
        let id = self_signed(&["127.0.0.1".into(), "node-1".into()]).unwrap();
        id.check_key_matches().unwrap();
        assert!(id.cert_pem.contains("BEGIN CERTIFICATE"));
    }
}
