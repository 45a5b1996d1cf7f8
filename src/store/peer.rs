//! The transport between masters: Raft messages, prost-encoded and
//! length-framed, over TLS with client certificates from the cluster CA
//! (both ends verify).
//!
//! Connections. For every peer, one outbound connection carries this
//! master's messages to it, fed by a bounded queue that the Raft driver
//! fills without ever blocking ([`Transport::send`] only queues). A task per
//! peer dials, sends, and redials with backoff; while a peer cannot be
//! reached its messages are dropped and reported unreachable, and Raft
//! retransmits. Inbound connections only receive. Snapshots travel on a
//! connection of their own (they may be tens of MiB, and heartbeats must not
//! wait behind them), streamed in chunks together with the module blob
//! chunks the state machine keeps in files; the receiver acknowledges once
//! the snapshot is handed to its Raft node, and the outcome is reported to
//! Raft (`report_snapshot`).
//!
//! Authentication. Both ends present certificates issued by the cluster CA.
//! The dialer verifies the listener's certificate for the peer's member name
//! (not its address, so peers may be reached through any route); the
//! listener accepts a connection only if the certificate's common name is
//! the name whose Raft id ([`raft_id`]) the dialer claims, and only messages
//! from that id to its own.
//!
//! Wire format, after the TLS handshake:
//!
//! ```text
//! hello   [8] magic "WKRAFT01", u64 BE from, u64 BE to, u8 kind (1 messages, 2 snapshot)
//! frame   u32 BE length N of the payload, u8 tag, [N] payload
//! tags    1 MSG        eraftpb::Message
//!         2 SNAP_HEAD  eraftpb::Message of type MsgSnapshot, snapshot data left out
//!         3 SNAP_DATA  a chunk of the snapshot data
//!         4 SNAP_BLOB  state::SnapshotBlob (a module blob chunk)
//!         5 SNAP_END   u64 BE data length, u64 BE blob chunks, u32 BE CRC-32 of every
//!                      payload since SNAP_HEAD (included)
//! ack     one byte 1 from the receiver of a snapshot, once its node has it
//! ```
//!
//! The snapshot stream (`SNAP_HEAD` .. `SNAP_END`) is also the format of
//! backup files (`wasmk snapshot save`), behind [`BACKUP_MAGIC`].

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message as _;
use raft::eraftpb::{Message, MessageType};
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::Store;
use super::state::{SnapshotBlob, blob_dir_name};
use super::transport::Transport;
use crate::auth::{ClientAuth, Identity, tls};

const HELLO_MAGIC: &[u8; 8] = b"WKRAFT01";
const HELLO_LEN: usize = 8 + 8 + 8 + 1;
const KIND_MESSAGES: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const TAG_MSG: u8 = 1;
const TAG_SNAP_HEAD: u8 = 2;
const TAG_SNAP_DATA: u8 = 3;
const TAG_SNAP_BLOB: u8 = 4;
const TAG_SNAP_END: u8 = 5;
/// The largest frame accepted: a Raft message carries at most ~1 MiB of
/// entries plus one entry of at most a few MiB.
pub const MAX_FRAME: usize = 64 << 20;
/// Snapshot data travels in chunks of this size.
const CHUNK: usize = 1 << 20;
/// Messages waiting for one peer; more are dropped (Raft retransmits).
const QUEUE: usize = 4096;
/// ALPN protocol of the peer port, so an HTTP client is refused early.
const ALPN: &[u8] = b"wasmk-raft/1";
/// Magic at the start of a backup file, before the snapshot stream.
pub const BACKUP_MAGIC: &[u8; 8] = b"WKBACK01";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A write that takes longer means the peer (or the path to it) is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a snapshot may take to reach a peer and be acknowledged.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Errors of the peer transport and the snapshot stream.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{what} {peer}: {source}")]
    Io {
        what: &'static str,
        peer: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} {peer}: timed out")]
    Timeout { what: &'static str, peer: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] crate::auth::AuthError),
    #[error("peer {peer}: {reason}")]
    Refused { peer: String, reason: String },
    #[error("malformed stream from {peer}: {reason}")]
    Malformed { peer: String, reason: String },
    #[error("invalid peer URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("blob {digest} chunk {chunk}: {reason}")]
    Blob {
        digest: String,
        chunk: u32,
        reason: String,
    },
}

fn io_err<'a>(what: &'static str, peer: &'a str) -> impl FnOnce(io::Error) -> PeerError + 'a {
    move |source| PeerError::Io {
        what,
        peer: peer.to_string(),
        source,
    }
}

fn malformed(peer: &str, reason: impl Into<String>) -> PeerError {
    PeerError::Malformed {
        peer: peer.to_string(),
        reason: reason.into(),
    }
}

/// The Raft id of the master named `name`: 1 + (the first 8 bytes of
/// SHA-256(name), big-endian) mod 65535. Stable across restarts and
/// machines, non-zero, and below 2^16 because request ids carry the
/// proposer's id in their top 16 bits. Two names of one cluster that map to
/// the same id are refused when the member is added.
pub fn raft_id(name: &str) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    1 + u64::from_be_bytes(b) % 65535
}

/// The `host:port` a peer URL (`https://HOST:PORT`) dials.
pub fn dial_address(url: &str) -> Result<String, PeerError> {
    let bad = |reason: &str| PeerError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("peer URLs start with https://"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(bad("expected https://HOST:PORT"));
    }
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| bad("the port is missing"))?;
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return Err(bad("expected https://HOST:PORT (IPv6 in brackets)"));
    }
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number"))?;
    Ok(authority.to_string())
}

// ---------------------------------------------------------------------------
// Frames and the snapshot stream.

/// Writes frames, keeping the CRC-32 of every payload written since the
/// last [`FrameWriter::reset_crc`].
pub struct FrameWriter<W> {
    w: BufWriter<W>,
    crc: crc32fast::Hasher,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(w: W) -> Self {
        FrameWriter {
            w: BufWriter::with_capacity(256 << 10, w),
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Writes raw bytes (a hello or a file magic), outside any frame.
    pub async fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b).await
    }

    pub fn reset_crc(&mut self) {
        self.crc = crc32fast::Hasher::new();
    }

    pub async fn frame(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l as usize <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        self.crc.update(payload);
        self.w.write_all(&len.to_be_bytes()).await?;
        self.w.write_all(&[tag]).await?;
        self.w.write_all(payload).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.w.flush().await
    }

    fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }

    /// The writer, flushed.
    pub async fn into_inner(mut self) -> io::Result<W> {
        self.w.flush().await?;
        Ok(self.w.into_inner())
    }
}

/// Reads one frame: `Ok(None)` at a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    peer: &str,
) -> Result<Option<(u8, Vec<u8>)>, PeerError> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        let n = r
            .read(&mut head[got..])
            .await
            .map_err(io_err("read from", peer))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(malformed(peer, "stream ends inside a frame header"));
        }
        got += n;
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(malformed(
            peer,
            format!("frame of {len} bytes exceeds the limit of {MAX_FRAME}"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            malformed(peer, format!("stream ends inside a frame of {len} bytes"))
        } else {
            PeerError::Io {
                what: "read from",
                peer: peer.to_string(),
                source: e,
            }
        }
    })?;
    Ok(Some((head[4], payload)))
}

/// The blob chunks under `blob_dir`: (digest, chunk index, file), sorted.
pub fn list_blob_chunks(blob_dir: &Path) -> Vec<(String, u32, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(blob_dir) else {
        return out;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(hex) = name.strip_prefix("sha256-") else {
            continue;
        };
        let digest = format!("sha256:{hex}");
        if blob_dir_name(&digest).is_none() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            // Chunk files are six digits; temp files start with a dot.
            if fname.len() != 6 || !fname.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(chunk) = fname.parse::<u32>() {
                out.push((digest.clone(), chunk, f.path()));
            }
        }
    }
    out.sort();
    out
}

/// Writes a blob chunk into `blob_dir` (temp file and rename: a reader sees
/// the whole chunk or none).
pub fn write_blob_chunk(
    blob_dir: &Path,
    digest: &str,
    chunk: u32,
    data: &[u8],
) -> Result<(), PeerError> {
    let err = |reason: String| PeerError::Blob {
        digest: digest.to_string(),
        chunk,
        reason,
    };
    let name = blob_dir_name(digest).ok_or_else(|| err("not a sha256 digest".into()))?;
    let dir = blob_dir.join(name);
    let path = dir.join(format!("{chunk:06}"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == data.len() as u64)
        && std::fs::read(&path).is_ok_and(|b| b == data)
    {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{chunk:06}.recv"));
    std::fs::write(&tmp, data).map_err(|e| err(format!("write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(|e| err(format!("rename to {}: {e}", path.display())))
}

/// Writes a snapshot stream: `head` (a MsgSnapshot whose snapshot data is
/// `data`, which is sent separately), the data in chunks, then every blob
/// chunk under `blob_dir`. Returns the number of blob chunks sent.
pub async fn write_snapshot_stream<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    head: &Message,
    data: &[u8],
    blob_dir: Option<&Path>,
) -> io::Result<u64> {
    let mut head = head.clone();
    if let Some(s) = head.snapshot.as_mut() {
        s.data = Vec::new();
    }
    w.reset_crc();
    w.frame(TAG_SNAP_HEAD, &head.encode_to_vec()).await?;
    for chunk in data.chunks(CHUNK) {
        w.frame(TAG_SNAP_DATA, chunk).await?;
    }
    let mut blobs = 0u64;
    if let Some(dir) = blob_dir {
        let dir = dir.to_path_buf();
        let chunks = tokio::task::spawn_blocking(move || list_blob_chunks(&dir))
            .await
            .unwrap_or_default();
        for (digest, chunk, path) in chunks {
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                // Unreadable chunks are left out; the receiver's digest
                // check on use will say so.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "blob chunk left out of a snapshot");
                    continue;
                }
            };
            let blob = SnapshotBlob {
                digest,
                chunk,
                data: bytes,
            };
            w.frame(TAG_SNAP_BLOB, &blob.encode_to_vec()).await?;
            blobs += 1;
        }
    }
    let mut end = Vec::with_capacity(20);
    end.extend_from_slice(&(data.len() as u64).to_be_bytes());
    end.extend_from_slice(&blobs.to_be_bytes());
    let crc = w.crc();
    end.extend_from_slice(&crc.to_be_bytes());
    // The CRC covers what came before the end frame only.
    w.frame(TAG_SNAP_END, &end).await?;
    w.flush().await?;
    Ok(blobs)
}

/// A snapshot read from a stream.
#[derive(Debug)]
pub struct ReceivedSnapshot {
    /// The MsgSnapshot, with its snapshot data filled in.
    pub message: Message,
    /// Blob chunks written to the blob directory.
    pub blobs: u64,
}

/// Reads a snapshot stream whose first frame is next, writing blob chunks
/// under `blob_dir` (when None they are read and dropped).
pub async fn read_snapshot_stream<R: AsyncRead + Unpin>(
    r: &mut R,
    peer: &str,
    blob_dir: Option<&Path>,
) -> Result<ReceivedSnapshot, PeerError> {
    let mut crc = crc32fast::Hasher::new();
    let (tag, head) = read_frame(r, peer)
        .await?
        .ok_or_else(|| malformed(peer, "empty snapshot stream"))?;
    if tag != TAG_SNAP_HEAD {
        return Err(malformed(
            peer,
            format!("expected a snapshot header, got frame tag {tag}"),
        ));
    }
    crc.update(&head);
    let mut message = Message::decode(head.as_slice())
        .map_err(|e| malformed(peer, format!("snapshot header: {e}")))?;
    if message.get_msg_type() != MessageType::MsgSnapshot {
        return Err(malformed(peer, "the snapshot header is not a MsgSnapshot"));
    }
    let mut data = Vec::new();
    let mut blobs = 0u64;
    loop {
        let (tag, payload) = read_frame(r, peer)
            .await?
            .ok_or_else(|| malformed(peer, "snapshot stream ends before its end frame"))?;
        match tag {
            TAG_SNAP_DATA => {
                crc.update(&payload);
                data.extend_from_slice(&payload);
            }
            TAG_SNAP_BLOB => {
                crc.update(&payload);
                let blob = SnapshotBlob::decode(payload.as_slice())
                    .map_err(|e| malformed(peer, format!("blob chunk: {e}")))?;
                if let Some(dir) = blob_dir {
                    let dir = dir.to_path_buf();
                    tokio::task::spawn_blocking(move || {
                        write_blob_chunk(&dir, &blob.digest, blob.chunk, &blob.data)
                    })
                    .await
                    .map_err(|e| malformed(peer, format!("blob writer: {e}")))??;
                }
                blobs += 1;
            }
            TAG_SNAP_END => {
                if payload.len() != 20 {
                    return Err(malformed(peer, "snapshot end frame of the wrong size"));
                }
                let num = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&payload[i..i + 8]);
                    u64::from_be_bytes(b)
                };
                let (len, count) = (num(0), num(8));
                let want = u32::from_be_bytes([payload[16], payload[17], payload[18], payload[19]]);
                if len != data.len() as u64 || count != blobs {
                    return Err(malformed(
                        peer,
                        format!(
                            "snapshot stream announced {len} data bytes and {count} blob chunks, carried {} and {blobs}",
                            data.len()
                        ),
                    ));
                }
                if crc.finalize() != want {
                    return Err(malformed(peer, "snapshot stream checksum mismatch"));
                }
                break;
            }
            other => {
                return Err(malformed(
                    peer,
                    format!("unexpected frame tag {other} in a snapshot stream"),
                ));
            }
        }
    }
    match message.snapshot.as_mut() {
        Some(s) => s.data = data,
        None => return Err(malformed(peer, "the snapshot header carries no snapshot")),
    }
    Ok(ReceivedSnapshot { message, blobs })
}

/// Resolves once the transport stops (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn hello(from: u64, to: u64, kind: u8) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..8].copy_from_slice(HELLO_MAGIC);
    h[8..16].copy_from_slice(&from.to_be_bytes());
    h[16..24].copy_from_slice(&to.to_be_bytes());
    h[24] = kind;
    h
}

/// `(from, to, kind)` of a hello.
fn parse_hello(h: &[u8; HELLO_LEN]) -> Option<(u64, u64, u8)> {
    if &h[..8] != HELLO_MAGIC {
        return None;
    }
    let num = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_be_bytes(b)
    };
    Some((num(8), num(16), h[24]))
}

/// Whether a connection from a certificate named `cn` may speak for Raft id
/// `from` to this master `me`.
fn authorize(cn: &str, from: u64, to: u64, me: u64) -> Result<(), String> {
    if to != me {
        return Err(format!(
            "the dialer expected master {to} at this address, but this is master {me}"
        ));
    }
    if from == me {
        return Err("a master does not dial itself".into());
    }
    let id = raft_id(cn);
    if id != from {
        return Err(format!(
            "certificate for {cn:?} (raft id {id}) cannot speak for raft id {from}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The transport.

/// This master's identity on the peer network.
#[derive(Clone)]
pub struct PeerConfig {
    /// This master's Raft id.
    pub id: u64,
    /// Certificate (CN = member name, issued by the cluster CA) and key.
    pub identity: Identity,
    /// The cluster CA (PEM) both ends trust.
    pub ca_pem: String,
    /// Where the state machine keeps blob chunks (sent with snapshots, and
    /// written on receipt).
    pub blob_dir: Option<PathBuf>,
}

/// How to reach one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The member name its certificate is verified for.
    pub name: String,
    /// `https://HOST:PORT` of its peer port.
    pub url: String,
}

/// What the transport learned that Raft must hear of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Unreachable(u64),
    Snapshot { id: u64, ok: bool },
}

struct Link {
    addr: PeerAddr,
    tx: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// The TLS peer transport (see the module docs).
pub struct PeerTransport {
    id: u64,
    rt: tokio::runtime::Handle,
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    blob_dir: Option<PathBuf>,
    links: Mutex<HashMap<u64, Link>>,
    reports: mpsc::UnboundedSender<Report>,
    /// Taken by [`PeerTransport::start`].
    reports_rx: Mutex<Option<mpsc::UnboundedReceiver<Report>>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("id", &self.id)
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

impl PeerTransport {
    /// A transport with no peers yet. Must be called inside a tokio
    /// runtime, whose tasks then carry the traffic.
    pub fn new(cfg: PeerConfig) -> Result<Arc<PeerTransport>, PeerError> {
        let mut server =
            tls::server_config(&cfg.identity, cfg.ca_pem.as_bytes(), ClientAuth::Required)?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = tls::client_config(cfg.ca_pem.as_bytes(), Some(&cfg.identity))?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        let (reports, reports_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(PeerTransport {
            id: cfg.id,
            rt: tokio::runtime::Handle::current(),
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            blob_dir: cfg.blob_dir,
            links: Mutex::new(HashMap::new()),
            reports,
            reports_rx: Mutex::new(Some(reports_rx)),
            stop: watch::channel(false).0,
        }))
    }

    /// This master's Raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peers messages can go to, by Raft id.
    pub fn peers(&self) -> HashMap<u64, PeerAddr> {
        self.links
            .lock()
            .iter()
            .map(|(id, l)| (*id, l.addr.clone()))
            .collect()
    }

    /// Adds or updates the address of peer `id` (a changed address drops
    /// the old connection).
    pub fn set_peer(&self, id: u64, addr: PeerAddr) -> Result<(), PeerError> {
        if id == self.id {
            return Ok(());
        }
        let dial = dial_address(&addr.url)?;
        let server_name = ServerName::try_from(addr.name.clone()).map_err(|e| PeerError::Url {
            url: addr.url.clone(),
            reason: format!("member name {:?} is not a DNS name: {e}", addr.name),
        })?;
        let mut links = self.links.lock();
        if links.get(&id).is_some_and(|l| l.addr == addr) {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Outbound {
            me: self.id,
            to: id,
            dial,
            server_name,
            connector: self.connector.clone(),
            reports: self.reports.clone(),
            stop: self.stop.subscribe(),
        };
        let task = self.rt.spawn(conn.run(rx));
        if let Some(old) = links.insert(id, Link { addr, tx, task }) {
            old.task.abort();
        }
        Ok(())
    }

    /// Forgets peer `id` (removed from the cluster).
    pub fn remove_peer(&self, id: u64) {
        if let Some(old) = self.links.lock().remove(&id) {
            old.task.abort();
        }
    }

    /// Starts serving the peer port on `listener`, stepping what arrives
    /// into `store`, and forwarding the transport's reports to it. Runs
    /// until [`PeerTransport::shutdown`].
    pub fn start(
        self: &Arc<Self>,
        listener: TcpListener,
        store: Store,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(mut rx) = self.reports_rx.lock().take() {
            let store = store.clone();
            let mut stop = self.stop.subscribe();
            tasks.push(self.rt.spawn(async move {
                loop {
                    let r = tokio::select! {
                        r = rx.recv() => r,
                        _ = stopped(&mut stop) => None,
                    };
                    let Some(r) = r else { return };
                    let sent = match r {
                        Report::Unreachable(id) => store.report_unreachable(id),
                        Report::Snapshot { id, ok } => store.report_snapshot(id, ok),
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            }));
        }
        let inbound = Inbound {
            me: self.id,
            acceptor: self.acceptor.clone(),
            store,
            blob_dir: self.blob_dir.clone(),
        };
        tasks.push(
            self.rt
                .spawn(inbound.serve(listener, self.stop.subscribe())),
        );
        tasks
    }

    /// Stops every connection and the listener.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        for (_, l) in self.links.lock().drain() {
            l.task.abort();
        }
    }

    fn report(&self, r: Report) {
        let _ = self.reports.send(r);
    }

    fn send_snapshot(&self, m: Message) {
        let to = m.to;
        let Some((dial, server_name)) = self.links.lock().get(&to).and_then(|l| {
            let dial = dial_address(&l.addr.url).ok()?;
            let name = ServerName::try_from(l.addr.name.clone()).ok()?;
            Some((dial, name))
        }) else {
            self.report(Report::Snapshot { id: to, ok: false });
            return;
        };
        let me = self.id;
        let connector = self.connector.clone();
        let blob_dir = self.blob_dir.clone();
        let reports = self.reports.clone();
        let mut stop = self.stop.subscribe();
        self.rt.spawn(async move {
            let index = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map_or(0, |m| m.index);
            let send = send_snapshot(me, to, &dial, server_name, connector, m, blob_dir);
            let result = tokio::select! {
                r = tokio::time::timeout(SNAPSHOT_TIMEOUT, send) => r.unwrap_or_else(|_| Err(PeerError::Timeout { what: "send a snapshot to", peer: dial.clone() })),
                _ = stopped(&mut stop) => return,
            };
            let ok = match result {
                Ok(blobs) => {
                    tracing::info!(peer = to, index, blobs, "snapshot delivered");
                    true
                }
                Err(e) => {
                    tracing::warn!(peer = to, index, error = %e, "snapshot not delivered");
                    false
                }
            };
            let _ = reports.send(Report::Snapshot { id: to, ok });
        });
    }
}

impl Transport for PeerTransport {
    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(m);
                continue;
            }
            let to = m.to;
            let queued = match self.links.lock().get(&to) {
                Some(l) => l.tx.try_send(m).is_ok(),
                None => false,
            };
            if !queued {
                self.report(Report::Unreachable(to));
            }
        }
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for (_, l) in self.links.get_mut().drain() {
            l.task.abort();
        }
    }
}

async fn connect(
    me: u64,
    to: u64,
    kind: u8,
    dial: &str,
    server_name: ServerName<'static>,
    connector: &TlsConnector,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, PeerError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dial))
        .await
        .map_err(|_| PeerError::Timeout {
            what: "connect to",
            peer: dial.to_string(),
        })?
        .map_err(io_err("connect to", dial))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| PeerError::Timeout {
            what: "TLS handshake with",
            peer: dial.to_string(),
        })?
        .map_err(io_err("TLS handshake with", dial))?;
    tls.write_all(&hello(me, to, kind))
        .await
        .map_err(io_err("write to", dial))?;
    Ok(tls)
}

async fn send_snapshot(
    me: u64,
    to: u64,
    dial: &str,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    m: Message,
    blob_dir: Option<PathBuf>,
) -> Result<u64, PeerError> {
    let tls = connect(me, to, KIND_SNAPSHOT, dial, server_name, &connector).await?;
    let data = m
        .snapshot
        .as_ref()
        .map(|s| s.data.clone())
        .unwrap_or_default();
    let mut w = FrameWriter::new(tls);
    let blobs = write_snapshot_stream(&mut w, &m, &data, blob_dir.as_deref())
        .await
        .map_err(io_err("stream a snapshot to", dial))?;
    let mut tls = w.into_inner().await.map_err(io_err("write to", dial))?;
    let mut ack = [0u8; 1];
    tls.read_exact(&mut ack)
        .await
        .map_err(io_err("wait for the snapshot acknowledgement of", dial))?;
    if ack[0] != 1 {
        return Err(PeerError::Refused {
            peer: dial.to_string(),
            reason: "the snapshot was not accepted".into(),
        });
    }
    Ok(blobs)
}

/// One outbound connection and its queue.
struct Outbound {
    me: u64,
    to: u64,
    dial: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    reports: mpsc::UnboundedSender<Report>,
    stop: watch::Receiver<bool>,
}

impl Outbound {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut backoff = BACKOFF_MIN;
        let mut logged = false;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let conn = tokio::select! {
                c = connect(self.me, self.to, KIND_MESSAGES, &self.dial, self.server_name.clone(), &self.connector) => c,
                _ = stopped(&mut self.stop) => return,
            };
            match conn {
                Ok(tls) => {
                    if logged {
                        tracing::info!(peer = self.to, addr = %self.dial, "peer connection restored");
                    }
                    logged = false;
                    backoff = BACKOFF_MIN;
                    match self.pump(tls, &mut rx).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::debug!(peer = self.to, error = %e, "peer connection lost");
                            let _ = self.reports.send(Report::Unreachable(self.to));
                        }
                    }
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!(peer = self.to, error = %e, "cannot reach peer; retrying");
                        logged = true;
                    }
                    // What queued meanwhile is stale: Raft resends.
                    let mut dropped = false;
                    while rx.try_recv().is_ok() {
                        dropped = true;
                    }
                    if dropped {
                        let _ = self.reports.send(Report::Unreachable(self.to));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut self.stop) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sends queued messages until the connection fails (Err) or the
    /// transport stops (Ok).
    async fn pump(
        &mut self,
        tls: tokio_rustls::client::TlsStream<TcpStream>,
        rx: &mut mpsc::Receiver<Message>,
    ) -> Result<(), PeerError> {
        let (mut rd, wr) = tokio::io::split(tls);
        let mut w = FrameWriter::new(wr);
        let mut probe = [0u8; 1];
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return Ok(()),
                },
                // The listener never writes: a readable end means it closed.
                r = rd.read(&mut probe) => {
                    return Err(match r {
                        Ok(_) => malformed(&self.dial, "the peer closed the connection"),
                        Err(e) => PeerError::Io { what: "read from", peer: self.dial.clone(), source: e },
                    });
                }
                _ = stopped(&mut self.stop) => return Ok(()),
            };
            let dial = self.dial.clone();
            let write = async {
                w.frame(TAG_MSG, &first.encode_to_vec()).await?;
                // Everything else already queued goes in the same flush.
                for _ in 0..QUEUE {
                    match rx.try_recv() {
                        Ok(m) => w.frame(TAG_MSG, &m.encode_to_vec()).await?,
                        Err(_) => break,
                    }
                }
                w.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(io_err("write to", &dial)(e)),
                Err(_) => {
                    return Err(PeerError::Timeout {
                        what: "write to",
                        peer: dial,
                    });
                }
            }
        }
    }
}

/// The listening side of the peer port.
struct Inbound {
    me: u64,
    acceptor: TlsAcceptor,
    store: Store,
    blob_dir: Option<PathBuf>,
}

impl Inbound {
    async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (tcp, addr) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "peer accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped(&mut stop) => break,
            };
            let _ = tcp.set_nodelay(true);
            let this = this.clone();
            let mut stop = stop.clone();
            conns.spawn(async move {
                let peer = addr.to_string();
                tokio::select! {
                    r = this.connection(tcp, &peer) => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "inbound peer connection ended");
                        }
                    }
                    _ = stopped(&mut stop) => {}
                }
            });
            // Reap finished connections.
            while conns.try_join_next().is_some() {}
        }
        conns.shutdown().await;
    }

    async fn connection(&self, tcp: TcpStream, peer: &str) -> Result<(), PeerError> {
        let mut tls = tokio::time::timeout(CONNECT_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| PeerError::Timeout {
                what: "TLS handshake with",
                peer: peer.to_string(),
            })?
            .map_err(io_err("TLS handshake with", peer))?;
        let cn = {
            let (_, conn) = tls.get_ref();
            let cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| PeerError::Refused {
                    peer: peer.to_string(),
                    reason: "no client certificate".into(),
                })?;
            crate::auth::subject::subject_common_name(cert.as_ref()).map_err(|e| {
                PeerError::Refused {
                    peer: peer.to_string(),
                    reason: e.to_string(),
                }
            })?
        };
        let mut h = [0u8; HELLO_LEN];
        tokio::time::timeout(CONNECT_TIMEOUT, tls.read_exact(&mut h))
            .await
            .map_err(|_| PeerError::Timeout {
                what: "hello from",
                peer: peer.to_string(),
            })?
            .map_err(io_err("read from", peer))?;
        let (from, to, kind) = parse_hello(&h).ok_or_else(|| malformed(peer, "bad hello"))?;
        authorize(&cn, from, to, self.me).map_err(|reason| PeerError::Refused {
            peer: format!("{cn} ({peer})"),
            reason,
        })?;
        let peer = format!("{cn} ({peer})");
        match kind {
            KIND_MESSAGES => {
                while let Some((tag, payload)) = read_frame(&mut tls, &peer).await? {
                    if tag != TAG_MSG {
                        return Err(malformed(&peer, format!("unexpected frame tag {tag}")));
                    }
                    let m = Message::decode(payload.as_slice())
                        .map_err(|e| malformed(&peer, format!("raft message: {e}")))?;
                    if m.from != from || m.to != self.me {
                        return Err(malformed(
                            &peer,
                            format!(
                                "message from {} to {} on a connection from {from}",
                                m.from, m.to
                            ),
                        ));
                    }
                    if self.store.step(m).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            }
            KIND_SNAPSHOT => {
                let snap = read_snapshot_stream(&mut tls, &peer, self.blob_dir.as_deref()).await?;
                let m = snap.message;
                if m.from != from || m.to != self.me {
                    return Err(malformed(&peer, "snapshot addressed to another master"));
                }
                let index = m
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.metadata.as_ref())
                    .map_or(0, |m| m.index);
                tracing::info!(%peer, index, blobs = snap.blobs, "snapshot received");
                let ok = self.store.step(m).is_ok();
                tls.write_all(&[u8::from(ok)])
                    .await
                    .map_err(io_err("write to", &peer))?;
                tls.flush().await.map_err(io_err("write to", &peer))?;
                let _ = tls.shutdown().await;
                Ok(())
            }
            other => Err(malformed(&peer, format!("unknown connection kind {other}"))),
        }
    }
}

#[cfg(test)]
mod tests;
