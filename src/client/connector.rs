//! How [`super::ApiClient`] reaches a server: TCP (HTTPS, or plain HTTP) or
//! a Unix socket (`unix:/path/api.sock`, plain HTTP/1.1).
//!
//! The socket is for a client on the server's own machine: `wasmk up`'s
//! node agent talks to its master through it, which spares every status
//! write and watch event the TLS records and TCP loopback segments. The
//! server still authenticates each request by its token; the socket file
//! is the server's and only its owner may open it.
//!
//! A request names its Unix server by a made-up host, `unix-N` (N its
//! index among the client's servers), so hyper's pool keeps the
//! connections of different sockets apart; the connector maps it back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The URL scheme of a Unix-socket server.
pub const UNIX_SCHEME: &str = "unix:";

/// The socket path of a `unix:` server URL (`unix:/p` or `unix:///p`);
/// `None` for other URLs.
pub fn unix_socket_path(url: &str) -> Option<Result<PathBuf, &'static str>> {
    let rest = url.trim().strip_prefix(UNIX_SCHEME)?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    Some(if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err("a unix: server URL needs an absolute socket path (unix:/path/to/api.sock)")
    })
}

/// The made-up host requests to the `index`th server use when it is a
/// Unix socket.
pub fn unix_host(index: usize) -> String {
    format!("unix-{index}")
}

/// TCP through rustls, or a Unix socket.
#[derive(Clone)]
pub struct Connector {
    net: HttpsConnector<HttpConnector>,
    /// Socket paths by server index (`None` for network servers).
    unix: Arc<Vec<Option<PathBuf>>>,
}

impl Connector {
    pub fn new(net: HttpsConnector<HttpConnector>, unix: Vec<Option<PathBuf>>) -> Connector {
        Connector {
            net,
            unix: Arc::new(unix),
        }
    }

    fn socket_for(&self, uri: &Uri) -> Option<&Path> {
        let index: usize = uri.host()?.strip_prefix("unix-")?.parse().ok()?;
        self.unix.get(index)?.as_deref()
    }
}

/// A connection to a server.
pub enum Stream {
    /// Boxed: a TLS connection's state is a kilobyte.
    Net(Box<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>),
    Unix(TokioIo<tokio::net::UnixStream>),
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.net.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some(path) = self.socket_for(&uri) {
            let path = path.to_path_buf();
            return Box::pin(async move {
                let s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|e| -> BoxError {
                        format!("cannot connect to {}: {e}", path.display()).into()
                    })?;
                Ok(Stream::Unix(TokioIo::new(s)))
            });
        }
        let connecting = self.net.call(uri);
        Box::pin(async move { connecting.await.map(|s| Stream::Net(Box::new(s))) })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Net(s) => s.connected(),
            Stream::Unix(_) => Connected::new(),
        }
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(&mut **s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Net(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_urls_name_absolute_socket_paths() {
        assert_eq!(
            unix_socket_path("unix:/var/lib/wasmk/api.sock"),
            Some(Ok(PathBuf::from("/var/lib/wasmk/api.sock")))
        );
        assert_eq!(
            unix_socket_path("unix:///run/api.sock"),
            Some(Ok(PathBuf::from("/run/api.sock")))
        );
        assert!(matches!(unix_socket_path("unix:api.sock"), Some(Err(_))));
        assert!(matches!(unix_socket_path("unix:"), Some(Err(_))));
        assert_eq!(unix_socket_path("https://127.0.0.1:6443"), None);
    }
}
