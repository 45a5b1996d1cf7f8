//! Backups: a consistent snapshot of the whole state through the API
//! (`wasmk snapshot save FILE`), and restoring one into the data
//! directories of a new cluster (`wasmk snapshot restore FILE ...`).
//!
//! A backup file is [`BACKUP_MAGIC`] followed by the snapshot stream the
//! masters send each other (see [`crate::store::peer`]): a header naming the
//! index, the state machine's objects in chunks, every module blob chunk,
//! and an end frame with counts and a CRC-32 over everything. The server
//! takes it after a linearizable read barrier, from the state machine at
//! one applied index under its read lock, so it is one consistent cut of
//! the log. Backups contain Secrets: keep them as safe as the CA key.
//!
//! Restoring writes, for one member of the new cluster, the blobs and a
//! Raft snapshot at the backup's index whose configuration is the new
//! `--initial-cluster`; member records of the old cluster are dropped (the
//! new members register themselves). Every member restores the same file
//! with the same `--initial-cluster`, so they start identical.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use http::Method;
use http_body_util::BodyExt;
use prost::Message as _;
use raft::eraftpb::{ConfState, Message, MessageType, Snapshot, SnapshotMetadata};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ClusterError, MEMBER_PREFIX, bootstrap_raft_dir, raft_dir_is_fresh, raft_id};
use crate::apiserver::http::Body;
use crate::client::ApiClient;
use crate::store::Store;
use crate::store::peer::{self, BACKUP_MAGIC, FrameWriter};
use crate::store::state::SnapshotData;

/// The API path of a backup.
pub const SNAPSHOT_PATH: &str = "/apis/wasmk.io/v1/cluster/snapshot";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The log index (resourceVersion) it was taken at.
    pub index: u64,
    pub objects: usize,
    pub blob_chunks: u64,
    pub bytes: u64,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ClusterError + 'a {
    move |source| ClusterError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Takes a consistent snapshot of `store` (after a read barrier) and
/// returns its index and a response body streaming it as a backup file.
pub async fn backup_body(
    store: &Store,
    blob_dir: Option<PathBuf>,
) -> Result<(u64, Body), ClusterError> {
    store.barrier().await?;
    let (data, index) = store.read(|sm| (sm.snapshot(), sm.applied()));
    let raft = store.raft_status();
    let data = data.encode_to_vec();
    let head = Message {
        msg_type: MessageType::MsgSnapshot as i32,
        snapshot: Some(Snapshot {
            data: Vec::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: raft.voters.clone(),
                    learners: raft.learners.clone(),
                    ..Default::default()
                }),
                index,
                term: raft.term,
            }),
        }),
        ..Default::default()
    };
    let (w, r) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let mut fw = FrameWriter::new(w);
        let result = async {
            fw.raw(BACKUP_MAGIC).await?;
            peer::write_snapshot_stream(&mut fw, &head, &data, blob_dir.as_deref()).await?;
            fw.into_inner().await?.shutdown().await
        }
        .await;
        // The client sees a stream without its end frame and says so.
        if let Err(e) = result {
            tracing::warn!(error = %e, "backup stream cut short");
        }
    });
    let stream = futures::stream::unfold(r, |mut r| async move {
        let mut buf = BytesMut::with_capacity(256 << 10);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some((
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(buf.freeze())),
                r,
            )),
        }
    });
    Ok((index, http_body_util::StreamBody::new(stream).boxed()))
}

/// Downloads a backup from the API into `file` (through a temp file,
/// verified before it is renamed into place).
pub async fn save(client: &ApiClient, file: &Path) -> Result<BackupInfo, ClusterError> {
    let client_err = |what: &str| {
        let what = what.to_string();
        move |source| ClusterError::Client { what, source }
    };
    let (status, _, mut body) = client
        .raw_stream(Method::GET, SNAPSHOT_PATH, None, None)
        .await
        .map_err(client_err("request a snapshot"))?;
    let tmp = file.with_extension("part");
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .map_err(io("create", &tmp))?;
    if !status.is_success() {
        let mut text = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            match chunk {
                Ok(c) => text.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        let _ = tokio::fs::remove_file(&tmp).await;
        let err = crate::client::ApiError::from_response(status, &text);
        return Err(ClusterError::Refused(format!(
            "the server refused the snapshot: {}",
            err.message
        )));
    }
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(client_err("download the snapshot"))?;
        out.write_all(&chunk).await.map_err(io("write", &tmp))?;
    }
    out.sync_all().await.map_err(io("sync", &tmp))?;
    drop(out);
    let info = match inspect(&tmp).await {
        Ok(i) => i,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&tmp, file)
        .await
        .map_err(io("rename", file))?;
    Ok(info)
}

/// A backup file read back: its header, state data and blob count.
struct ReadBackup {
    index: u64,
    data: SnapshotData,
    blob_chunks: u64,
    bytes: u64,
}

/// Reads and verifies a backup, writing its blob chunks under `blob_dir`.
async fn read(file: &Path, blob_dir: Option<&Path>) -> Result<ReadBackup, ClusterError> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(io("open", file))?;
    let bytes = f.metadata().await.map_err(io("inspect", file))?.len();
    let mut r = tokio::io::BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).await.map_err(io("read", file))?;
    let corrupt = |reason: String| ClusterError::Corrupt {
        what: format!("backup {}", file.display()),
        reason,
    };
    if &magic != BACKUP_MAGIC {
        return Err(corrupt("not a wasmk backup (bad magic)".into()));
    }
    let name = file.display().to_string();
    let snap = peer::read_snapshot_stream(&mut r, &name, blob_dir)
        .await
        .map_err(|e| corrupt(e.to_string()))?;
    let (meta, raw) = match snap.message.snapshot {
        Some(s) => (s.metadata.unwrap_or_default(), s.data),
        None => return Err(corrupt("no snapshot in the header".into())),
    };
    let data = SnapshotData::decode(raw.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    Ok(ReadBackup {
        index: meta.index,
        data,
        blob_chunks: snap.blobs,
        bytes,
    })
}

/// Verifies a backup file and says what it holds.
pub async fn inspect(file: &Path) -> Result<BackupInfo, ClusterError> {
    let b = read(file, None).await?;
    Ok(BackupInfo {
        index: b.index,
        objects: b.data.objects.len(),
        blob_chunks: b.blob_chunks,
        bytes: b.bytes,
    })
}

/// Restores a backup into `data_dir` for member `name` of a new cluster
/// whose members are `initial_cluster` (names and peer URLs). Refuses a
/// data directory that already holds Raft state.
pub async fn restore(
    file: &Path,
    data_dir: &Path,
    name: &str,
    initial_cluster: &[(String, String)],
) -> Result<BackupInfo, ClusterError> {
    if !initial_cluster.iter().any(|(n, _)| n == name) {
        return Err(ClusterError::Refused(format!(
            "--initial-cluster does not list this master ({name})"
        )));
    }
    let raft_dir = data_dir.join("raft");
    if !raft_dir_is_fresh(&raft_dir) {
        return Err(ClusterError::Refused(format!(
            "{} already holds Raft state; restore into an empty data directory",
            raft_dir.display()
        )));
    }
    let blob_dir = data_dir.join("blobs");
    tokio::fs::create_dir_all(&blob_dir)
        .await
        .map_err(io("create", &blob_dir))?;
    let mut b = read(file, Some(&blob_dir)).await?;
    // The old cluster's members are not this one's.
    b.data.objects.retain(|o| !o.key.starts_with(MEMBER_PREFIX));
    b.data.applied = b.index.max(1);
    let objects = b.data.objects.len();
    let voters: Vec<u64> = initial_cluster.iter().map(|(n, _)| raft_id(n)).collect();
    let data = b.data.encode_to_vec();
    let index = b.index.max(1);
    let dir = raft_dir.clone();
    tokio::task::spawn_blocking(move || bootstrap_raft_dir(&dir, &voters, index, &data))
        .await
        .map_err(|e| ClusterError::Refused(format!("restore task: {e}")))??;
    Ok(BackupInfo {
        index,
        objects,
        blob_chunks: b.blob_chunks,
        bytes: b.bytes,
    })
}
