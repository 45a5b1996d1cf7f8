//! The replicated state machine: objects by key, resourceVersions from the
//! log index, and the event history that watches resume from.
//!
//! Pure and deterministic: every replica applying the same entries in the
//! same order ends with the same objects and history. No IO except blob
//! chunks, which are written to content-addressed files (idempotent).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::command::{Op, OpKind, Precondition, Txn};

/// A stored object: its JSON (with `metadata.resourceVersion` filled in) and
/// the resourceVersion of its last write.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub rv: u64,
    pub value: Bytes,
}

/// Watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The Kubernetes watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: Arc<str>,
    /// The object after the change; for deletes, the last state with the
    /// delete's resourceVersion.
    pub object: Bytes,
    /// The object before the change (None for Added); lets selector-filtered
    /// watches turn a change that leaves the selection into DELETED.
    pub prev: Option<Bytes>,
}

/// Why a transaction was not applied. Deterministic: every replica reaches
/// the same verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{key} not found")]
    NotFound { key: String },
    #[error("{key} already exists")]
    AlreadyExists { key: String },
    #[error("{key} was modified (resourceVersion {current} != {expected})")]
    Conflict {
        key: String,
        expected: u64,
        current: u64,
    },
    #[error("write fenced: proposed in term {fence_term} but appended in term {entry_term}")]
    Fenced { fence_term: u64, entry_term: u64 },
    #[error("{key}: stored object is not a JSON object with metadata: {reason}")]
    InvalidObject { key: String, reason: String },
    #[error("log entry {index} does not decode as a transaction: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error("blob {digest} chunk {chunk}: {reason}")]
    Blob {
        digest: String,
        chunk: u32,
        reason: String,
    },
}

/// The result of one applied transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The log index, which is the resourceVersion of everything written.
    pub rv: u64,
    /// Per operation: the object written (Put), the object deleted (Delete),
    /// the current object (Check), or None (blob chunks).
    pub objects: Vec<Option<Bytes>>,
}

pub type TxnOutcome = Result<Applied, ApplyError>;

/// Bounds of the watch history.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_events: 50_000,
            max_bytes: 64 << 20,
        }
    }
}

/// A window of recent events, in log order.
#[derive(Debug)]
pub struct History {
    events: VecDeque<Event>,
    bytes: usize,
    /// Every event with rv > floor is retained: a watch may resume from any
    /// rv >= floor.
    floor: u64,
    limits: HistoryLimits,
}

impl History {
    fn new(floor: u64, limits: HistoryLimits) -> History {
        History {
            events: VecDeque::new(),
            bytes: 0,
            floor,
            limits,
        }
    }

    fn push(&mut self, e: Event) {
        self.bytes += e.object.len() + e.prev.as_ref().map_or(0, |p| p.len()) + e.key.len();
        self.events.push_back(e);
        while self.events.len() > self.limits.max_events || self.bytes > self.limits.max_bytes {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -=
                old.object.len() + old.prev.as_ref().map_or(0, |p| p.len()) + old.key.len();
            // Events of one transaction share an rv: evicting one of them
            // makes that rv unresumable, so the floor is that rv.
            self.floor = self.floor.max(old.rv);
        }
    }

    /// The lowest resourceVersion a watch can resume from.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Events with rv > `after` whose key starts with `prefix`, or None when
    /// `after` is older than the window.
    pub fn since(&self, after: u64, prefix: &str) -> Option<Vec<Event>> {
        if after < self.floor {
            return None;
        }
        let start = self.events.partition_point(|e| e.rv <= after);
        Some(
            self.events
                .range(start..)
                .filter(|e| e.key.starts_with(prefix))
                .cloned()
                .collect(),
        )
    }
}

/// The objects and history of one replica.
#[derive(Debug)]
pub struct StateMachine {
    objects: BTreeMap<String, Stored>,
    applied: u64,
    history: History,
    blob_dir: Option<PathBuf>,
    /// Request ids applied recently, so a proposal the network delivered
    /// twice (and the leader appended twice) applies once.
    requests: RequestWindow,
}

/// How many log indexes a request id is remembered for: a duplicate
/// proposal arrives within moments of the original, not 16Ki entries
/// later. (Each id remembered costs ~14 bytes in every snapshot.)
pub const REQUEST_WINDOW: u64 = 1 << 14;

/// Request ids of the transactions applied in the last [`REQUEST_WINDOW`]
/// indexes. Part of the replicated state (and of snapshots), so every
/// replica makes the same choice.
#[derive(Debug, Default)]
struct RequestWindow {
    by_id: std::collections::HashMap<u64, u64>,
    /// (index, request id), oldest first, for eviction.
    order: VecDeque<(u64, u64)>,
}

impl RequestWindow {
    fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    fn insert(&mut self, id: u64, index: u64) {
        if self.by_id.insert(id, index).is_none() {
            self.order.push_back((index, id));
        }
        while let Some(&(old, old_id)) = self.order.front() {
            if old + REQUEST_WINDOW > index {
                break;
            }
            self.order.pop_front();
            self.by_id.remove(&old_id);
        }
    }
}

/// Serialized state machine contents (the data of a Raft snapshot).
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotData {
    #[prost(uint64, tag = "1")]
    pub applied: u64,
    #[prost(message, repeated, tag = "2")]
    pub objects: Vec<SnapshotObject>,
    /// Blob chunks, included only in snapshots sent to other masters (local
    /// snapshot files leave them in the blob directory).
    #[prost(message, repeated, tag = "3")]
    pub blobs: Vec<SnapshotBlob>,
    /// The recently applied request ids (see [`REQUEST_WINDOW`]).
    #[prost(message, repeated, tag = "4")]
    pub requests: Vec<SnapshotRequest>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SnapshotObject {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(uint64, tag = "2")]
    pub rv: u64,
    #[prost(bytes = "bytes", tag = "3")]
    pub value: Bytes,
}

/// A request id applied at `index` (for spotting duplicate proposals).
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotRequest {
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct SnapshotBlob {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(uint32, tag = "2")]
    pub chunk: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}

impl StateMachine {
    /// An empty state machine. `blob_dir` holds blob chunks (None keeps the
    /// state machine free of IO, for tests that write no blobs).
    pub fn new(blob_dir: Option<PathBuf>, limits: HistoryLimits) -> StateMachine {
        StateMachine {
            objects: BTreeMap::new(),
            applied: 0,
            history: History::new(0, limits),
            blob_dir,
            requests: RequestWindow::default(),
        }
    }

    /// The index of the last applied entry: the current resourceVersion.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn get(&self, key: &str) -> Option<&Stored> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Objects whose key starts with `prefix`, in key order, starting after
    /// `after_key` (exclusive) when given, at most `limit` (0 = all). Returns
    /// the page and whether more remain.
    pub fn list(
        &self,
        prefix: &str,
        after_key: Option<&str>,
        limit: usize,
    ) -> (Vec<(String, Stored)>, bool) {
        use std::ops::Bound;
        let start = match after_key {
            Some(k) if k >= prefix => Bound::Excluded(k.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        let mut more = false;
        for (k, v) in self.objects.range((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if limit > 0 && out.len() == limit {
                more = true;
                break;
            }
            out.push((k.clone(), v.clone()));
        }
        (out, more)
    }

    /// Number of objects under `prefix` (for `remainingItemCount`).
    pub fn count(&self, prefix: &str) -> usize {
        self.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .count()
    }

    /// Marks an entry without a transaction (leader no-op, configuration
    /// change) as applied.
    pub fn apply_empty(&mut self, index: u64) {
        self.applied = self.applied.max(index);
    }

    /// Applies the transaction in entry `index` (appended in `term`),
    /// returning its outcome and pushing its events into the history and
    /// `events`.
    pub fn apply(
        &mut self,
        index: u64,
        term: u64,
        data: &[u8],
        events: &mut Vec<Event>,
    ) -> TxnOutcome {
        self.apply_empty(index);
        let txn = Txn::decode_bytes(data).map_err(|e| ApplyError::BadEntry {
            index,
            reason: e.to_string(),
        })?;
        self.apply_txn(index, term, &txn, events)
    }

    /// Like [`StateMachine::apply_txn`], but a transaction whose request id
    /// was applied within the last [`REQUEST_WINDOW`] indexes (a proposal
    /// delivered twice) is skipped: None.
    pub fn apply_txn_once(
        &mut self,
        index: u64,
        term: u64,
        txn: &Txn,
        events: &mut Vec<Event>,
    ) -> Option<TxnOutcome> {
        if txn.request_id != 0 && self.requests.contains(txn.request_id) {
            self.apply_empty(index);
            return None;
        }
        Some(self.apply_txn(index, term, txn, events))
    }

    /// Applies a decoded transaction from entry `index`.
    pub fn apply_txn(
        &mut self,
        index: u64,
        term: u64,
        txn: &Txn,
        events: &mut Vec<Event>,
    ) -> TxnOutcome {
        self.apply_empty(index);
        if txn.request_id != 0 {
            self.requests.insert(txn.request_id, index);
        }
        if txn.fence_term != 0 && txn.fence_term != term {
            return Err(ApplyError::Fenced {
                fence_term: txn.fence_term,
                entry_term: term,
            });
        }
        // Check every precondition before writing anything.
        for op in &txn.ops {
            self.check(op)?;
        }
        // Prepare new values (resourceVersion injected) before mutating, so
        // a bad object fails the whole transaction.
        let mut prepared: Vec<Option<Bytes>> = Vec::with_capacity(txn.ops.len());
        for op in &txn.ops {
            prepared.push(match op.op_kind() {
                OpKind::Put => Some(with_resource_version(&op.value, index).map_err(|reason| {
                    ApplyError::InvalidObject {
                        key: op.key.clone(),
                        reason,
                    }
                })?),
                _ => None,
            });
        }
        let mut objects = Vec::with_capacity(txn.ops.len());
        for (op, value) in txn.ops.iter().zip(prepared) {
            match op.op_kind() {
                OpKind::Put => {
                    let value = value.unwrap_or_default();
                    let key: Arc<str> = Arc::from(op.key.as_str());
                    let prev = self.objects.insert(
                        op.key.clone(),
                        Stored {
                            rv: index,
                            value: value.clone(),
                        },
                    );
                    let ev = Event {
                        rv: index,
                        kind: if prev.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        },
                        key,
                        object: value.clone(),
                        prev: prev.map(|p| p.value),
                    };
                    self.history.push(ev.clone());
                    events.push(ev);
                    objects.push(Some(value));
                }
                OpKind::Delete => {
                    let Some(prev) = self.objects.remove(&op.key) else {
                        objects.push(None);
                        continue;
                    };
                    let last =
                        with_resource_version(&prev.value, index).unwrap_or(prev.value.clone());
                    let ev = Event {
                        rv: index,
                        kind: EventType::Deleted,
                        key: Arc::from(op.key.as_str()),
                        object: last.clone(),
                        prev: Some(prev.value),
                    };
                    self.history.push(ev.clone());
                    events.push(ev);
                    objects.push(Some(last));
                }
                OpKind::Check => objects.push(self.objects.get(&op.key).map(|s| s.value.clone())),
                OpKind::PutBlobChunk => {
                    self.write_blob_chunk(op)?;
                    objects.push(None);
                }
            }
        }
        Ok(Applied { rv: index, objects })
    }

    fn check(&self, op: &Op) -> Result<(), ApplyError> {
        let current = self.objects.get(&op.key);
        match op.op_precondition() {
            Precondition::None => Ok(()),
            Precondition::NotExists => match current {
                Some(_) => Err(ApplyError::AlreadyExists {
                    key: op.key.clone(),
                }),
                None => Ok(()),
            },
            Precondition::Exists => match current {
                Some(_) => Ok(()),
                None => Err(ApplyError::NotFound {
                    key: op.key.clone(),
                }),
            },
            Precondition::RvEquals => match current {
                None => Err(ApplyError::NotFound {
                    key: op.key.clone(),
                }),
                Some(s) if s.rv != op.expect_rv => Err(ApplyError::Conflict {
                    key: op.key.clone(),
                    expected: op.expect_rv,
                    current: s.rv,
                }),
                Some(_) => Ok(()),
            },
        }
    }

    fn write_blob_chunk(&self, op: &Op) -> Result<(), ApplyError> {
        let err = |reason: String| ApplyError::Blob {
            digest: op.key.clone(),
            chunk: op.chunk,
            reason,
        };
        let Some(dir) = &self.blob_dir else {
            return Err(err("this store keeps no blobs".into()));
        };
        let name = blob_dir_name(&op.key).ok_or_else(|| err("not a sha256 digest".into()))?;
        let dir = dir.join(name);
        let path = dir.join(format!("{:06}", op.chunk));
        if let Ok(existing) = std::fs::read(&path)
            && existing == op.value
        {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("create {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".{:06}.tmp", op.chunk));
        std::fs::write(&tmp, &op.value)
            .map_err(|e| err(format!("write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| err(format!("rename to {}: {e}", path.display())))?;
        Ok(())
    }

    /// Where blob `digest`'s chunks live, if this store keeps blobs.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        Some(self.blob_dir.as_ref()?.join(blob_dir_name(digest)?))
    }

    pub fn blob_dir(&self) -> Option<&PathBuf> {
        self.blob_dir.as_ref()
    }

    /// Serializes the objects (not the history, not blobs).
    pub fn snapshot(&self) -> SnapshotData {
        SnapshotData {
            applied: self.applied,
            objects: self
                .objects
                .iter()
                .map(|(k, v)| SnapshotObject {
                    key: k.clone(),
                    rv: v.rv,
                    value: v.value.clone(),
                })
                .collect(),
            blobs: Vec::new(),
            requests: self
                .requests
                .order
                .iter()
                .map(|&(index, request_id)| SnapshotRequest { request_id, index })
                .collect(),
        }
    }

    /// Replaces the contents with a snapshot taken at `index`. The history
    /// restarts empty: watches older than `index` get "too old" and relist.
    pub fn restore(&mut self, data: SnapshotData, index: u64) -> Result<(), ApplyError> {
        if let Some(dir) = &self.blob_dir {
            for b in &data.blobs {
                let name = blob_dir_name(&b.digest).ok_or_else(|| ApplyError::Blob {
                    digest: b.digest.clone(),
                    chunk: b.chunk,
                    reason: "not a sha256 digest".into(),
                })?;
                let d = dir.join(name);
                let werr = |e: std::io::Error| ApplyError::Blob {
                    digest: b.digest.clone(),
                    chunk: b.chunk,
                    reason: e.to_string(),
                };
                std::fs::create_dir_all(&d).map_err(werr)?;
                std::fs::write(d.join(format!("{:06}", b.chunk)), &b.data).map_err(werr)?;
            }
        }
        self.objects = data
            .objects
            .into_iter()
            .map(|o| {
                (
                    o.key,
                    Stored {
                        rv: o.rv,
                        value: o.value,
                    },
                )
            })
            .collect();
        self.applied = index;
        self.history = History::new(index, self.history.limits);
        self.requests = RequestWindow::default();
        for r in data.requests {
            self.requests.insert(r.request_id, r.index);
        }
        Ok(())
    }
}

/// `sha256:<64 hex>` -> `sha256-<hex>` (a safe directory name), else None.
pub fn blob_dir_name(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    Some(format!("sha256-{hex}"))
}

/// Returns `json` with `metadata.resourceVersion` set to `rv`.
pub fn with_resource_version(json: &[u8], rv: u64) -> Result<Bytes, String> {
    let mut v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let meta = v
        .as_object_mut()
        .ok_or("not a JSON object")?
        .entry("metadata")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let meta = meta.as_object_mut().ok_or("metadata is not an object")?;
    meta.insert(
        "resourceVersion".into(),
        serde_json::Value::String(rv.to_string()),
    );
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> Vec<u8> {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"a":"b"}}}}"#).into_bytes()
    }

    fn apply(sm: &mut StateMachine, index: u64, ops: Vec<Op>) -> (TxnOutcome, Vec<Event>) {
        let mut ev = Vec::new();
        let data = Txn {
            request_id: 0,
            ops,
            fence_term: 0,
        }
        .encode();
        (sm.apply(index, 1, &data, &mut ev), ev)
    }

    fn rv_of(b: &Bytes) -> String {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn create_update_delete_assign_rv_from_index() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        let (r, ev) = apply(&mut sm, 3, vec![Op::create("cm/a", obj("a"))]);
        let a = r.unwrap();
        assert_eq!(a.rv, 3);
        assert_eq!(rv_of(a.objects[0].as_ref().unwrap()), "3");
        assert_eq!(ev[0].kind, EventType::Added);

        // Stale update is a conflict and changes nothing.
        let (r, ev) = apply(&mut sm, 4, vec![Op::update("cm/a", obj("a"), 2)]);
        assert_eq!(
            r.unwrap_err(),
            ApplyError::Conflict {
                key: "cm/a".into(),
                expected: 2,
                current: 3
            }
        );
        assert!(ev.is_empty());
        assert_eq!(sm.get("cm/a").unwrap().rv, 3);
        assert_eq!(sm.applied(), 4);

        let (r, ev) = apply(&mut sm, 5, vec![Op::update("cm/a", obj("a"), 3)]);
        assert_eq!(r.unwrap().rv, 5);
        assert_eq!(ev[0].kind, EventType::Modified);
        assert_eq!(rv_of(ev[0].prev.as_ref().unwrap()), "3");

        let (r, ev) = apply(&mut sm, 6, vec![Op::delete("cm/a", Some(5))]);
        assert_eq!(rv_of(r.unwrap().objects[0].as_ref().unwrap()), "6");
        assert_eq!(ev[0].kind, EventType::Deleted);
        assert!(sm.get("cm/a").is_none());
        let (r, _) = apply(&mut sm, 7, vec![Op::delete("cm/a", None)]);
        assert_eq!(r.unwrap_err(), ApplyError::NotFound { key: "cm/a".into() });
    }

    #[test]
    fn transactions_are_atomic() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        apply(&mut sm, 1, vec![Op::create("cm/a", obj("a"))])
            .0
            .unwrap();
        let (r, ev) = apply(
            &mut sm,
            2,
            vec![Op::create("cm/b", obj("b")), Op::create("cm/a", obj("a"))],
        );
        assert_eq!(
            r.unwrap_err(),
            ApplyError::AlreadyExists { key: "cm/a".into() }
        );
        assert!(ev.is_empty());
        assert!(sm.get("cm/b").is_none());
        // A bad object also fails the whole transaction.
        let (r, _) = apply(
            &mut sm,
            3,
            vec![
                Op::create("cm/c", obj("c")),
                Op::create("cm/d", b"[1]".to_vec()),
            ],
        );
        assert!(matches!(r, Err(ApplyError::InvalidObject { .. })));
        assert!(sm.get("cm/c").is_none());
        // A check on a changed key blocks the write.
        let (r, _) = apply(
            &mut sm,
            4,
            vec![Op::check_rv("cm/a", 9), Op::create("cm/e", obj("e"))],
        );
        assert!(matches!(r, Err(ApplyError::Conflict { .. })));
        assert!(sm.get("cm/e").is_none());
    }

    #[test]
    fn fencing_refuses_writes_from_another_term() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        let data = Txn {
            request_id: 0,
            ops: vec![Op::create("cm/a", obj("a"))],
            fence_term: 3,
        }
        .encode();
        let mut ev = Vec::new();
        assert!(matches!(
            sm.apply(1, 4, &data, &mut ev),
            Err(ApplyError::Fenced { .. })
        ));
        assert!(sm.apply(2, 3, &data, &mut ev).is_ok());
    }

    #[test]
    fn a_request_applies_once_within_the_window_and_across_snapshots() {
        let txn = |request_id, key: &str| Txn {
            request_id,
            ops: vec![Op::delete(key, None)],
            fence_term: 0,
        };
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        let mut ev = Vec::new();
        apply(&mut sm, 1, vec![Op::create("cm/a", obj("a"))])
            .0
            .unwrap();
        assert!(sm.apply_txn_once(2, 1, &txn(7, "cm/a"), &mut ev).is_some());
        apply(&mut sm, 3, vec![Op::create("cm/a", obj("a"))])
            .0
            .unwrap();
        // The duplicate is skipped, but still counts as applied.
        assert!(sm.apply_txn_once(4, 1, &txn(7, "cm/a"), &mut ev).is_none());
        assert_eq!(sm.applied(), 4);
        assert!(sm.get("cm/a").is_some());
        // Request id 0 (internal writes) is never deduplicated.
        apply(&mut sm, 5, vec![Op::create("cm/b", obj("b"))])
            .0
            .unwrap();
        assert!(sm.apply_txn_once(6, 1, &txn(0, "cm/b"), &mut ev).is_some());
        // A replica restored from a snapshot makes the same choice.
        let snap = SnapshotData::decode(sm.snapshot().encode_to_vec().as_slice()).unwrap();
        let mut other = StateMachine::new(None, HistoryLimits::default());
        other.restore(snap, 6).unwrap();
        assert!(
            other
                .apply_txn_once(7, 1, &txn(7, "cm/a"), &mut ev)
                .is_none()
        );
        assert!(other.get("cm/a").is_some());
        // Past the window the id is forgotten.
        let far = 2 + REQUEST_WINDOW;
        assert!(
            other
                .apply_txn_once(far, 1, &txn(8, "cm/x"), &mut ev)
                .is_some()
        );
        assert!(
            other
                .apply_txn_once(far + 1, 1, &txn(7, "cm/a"), &mut ev)
                .is_some()
        );
        assert!(other.get("cm/a").is_none());
    }

    #[test]
    fn garbage_entry_is_an_error_not_a_panic() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        let mut ev = Vec::new();
        assert!(matches!(
            sm.apply(1, 1, &[0xff, 0xff], &mut ev),
            Err(ApplyError::BadEntry { .. })
        ));
        assert_eq!(sm.applied(), 1);
    }

    #[test]
    fn list_pages_by_prefix() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        for (i, k) in ["pods/a/x", "pods/b/y", "pods/b/z", "pods2/q", "podsx"]
            .iter()
            .enumerate()
        {
            apply(&mut sm, i as u64 + 1, vec![Op::create(*k, obj("o"))])
                .0
                .unwrap();
        }
        let (page, more) = sm.list("pods/", None, 2);
        assert_eq!(
            page.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["pods/a/x", "pods/b/y"]
        );
        assert!(more);
        let (page, more) = sm.list("pods/", Some("pods/b/y"), 2);
        assert_eq!(
            page.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["pods/b/z"]
        );
        assert!(!more);
        assert_eq!(sm.list("pods/b/", None, 0).0.len(), 2);
        assert_eq!(sm.count("pods/"), 3);
    }

    #[test]
    fn history_window_and_floor() {
        let mut sm = StateMachine::new(
            None,
            HistoryLimits {
                max_events: 3,
                max_bytes: usize::MAX,
            },
        );
        for i in 1..=5u64 {
            apply(&mut sm, i, vec![Op::create(format!("cm/{i}"), obj("o"))])
                .0
                .unwrap();
        }
        assert_eq!(sm.history().floor(), 2);
        assert!(sm.history().since(1, "cm/").is_none());
        let ev = sm.history().since(2, "cm/").unwrap();
        assert_eq!(ev.iter().map(|e| e.rv).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(sm.history().since(4, "cm/").unwrap().len(), 1);
        assert_eq!(sm.history().since(4, "other/").unwrap().len(), 0);
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let mut sm = StateMachine::new(None, HistoryLimits::default());
        apply(&mut sm, 1, vec![Op::create("cm/a", obj("a"))])
            .0
            .unwrap();
        apply(&mut sm, 2, vec![Op::create("cm/b", obj("b"))])
            .0
            .unwrap();
        let snap = SnapshotData::decode(sm.snapshot().encode_to_vec().as_slice()).unwrap();
        let mut other = StateMachine::new(None, HistoryLimits::default());
        other.restore(snap, 2).unwrap();
        assert_eq!(other.get("cm/a"), sm.get("cm/a"));
        assert_eq!(other.applied(), 2);
        assert!(other.history().since(1, "").is_none());
        assert_eq!(other.history().since(2, "").unwrap().len(), 0);
    }

    #[test]
    fn blob_chunks_are_content_addressed_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::new(Some(dir.path().to_path_buf()), HistoryLimits::default());
        let digest = format!("sha256:{}", "ab".repeat(32));
        let (r, _) = apply(
            &mut sm,
            1,
            vec![Op::blob_chunk(digest.clone(), 0, b"hello".to_vec())],
        );
        r.unwrap();
        // Re-applying (replay after restart) is harmless.
        apply(
            &mut sm,
            2,
            vec![Op::blob_chunk(digest.clone(), 0, b"hello".to_vec())],
        )
        .0
        .unwrap();
        let p = sm.blob_path(&digest).unwrap().join("000000");
        assert_eq!(std::fs::read(p).unwrap(), b"hello");
        let (r, _) = apply(
            &mut sm,
            3,
            vec![Op::blob_chunk("sha256:../../etc", 0, vec![])],
        );
        assert!(matches!(r, Err(ApplyError::Blob { .. })));
    }
}
