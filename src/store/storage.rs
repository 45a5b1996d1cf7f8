//! The `raft::Storage` raft-rs reads from: recent entries in memory
//! (`MemStorage`), plus the latest snapshot with its data so that it can be
//! sent to a lagging or new master.

use std::sync::{Arc, Mutex};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// raft-rs storage: entries in memory, durability handled by the driver.
#[derive(Clone)]
pub struct RaftStorage {
    pub mem: MemStorage,
    /// Latest full snapshot (metadata and data), for sending to peers.
    latest: Arc<Mutex<Option<Snapshot>>>,
    /// Set when raft asked for a snapshot newer than the one we have; the
    /// driver then builds one.
    wanted: Arc<Mutex<Option<u64>>>,
}

impl RaftStorage {
    pub fn new(mem: MemStorage) -> RaftStorage {
        RaftStorage {
            mem,
            latest: Arc::new(Mutex::new(None)),
            wanted: Arc::new(Mutex::new(None)),
        }
    }

    /// Records the snapshot to hand to peers that need one.
    pub fn set_latest_snapshot(&self, snap: Snapshot) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(snap);
        }
    }

    /// An index raft wanted a snapshot at, if the driver should build one.
    pub fn take_wanted(&self) -> Option<u64> {
        self.wanted.lock().ok().and_then(|mut w| w.take())
    }

    pub fn set_hard_state(&self, hs: HardState) {
        self.mem.wl().set_hardstate(hs);
    }

    pub fn set_conf_state(&self, cs: ConfState) {
        self.mem.wl().set_conf_state(cs);
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let latest = self.latest.lock().ok().and_then(|l| l.clone());
        match latest {
            // A master added after the snapshot was taken would refuse it
            // (raft-rs drops snapshots whose configuration lacks the
            // receiver): build a newer one.
            Some(s) if s.get_metadata().index >= request_index && names(&s, to) => Ok(s),
            _ => {
                if let Ok(mut w) = self.wanted.lock() {
                    *w = Some(request_index);
                }
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}

/// Whether the snapshot's configuration includes member `id`.
fn names(snap: &Snapshot, id: u64) -> bool {
    let cs = snap.get_metadata().get_conf_state();
    cs.voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing)
        .any(|v| *v == id)
}
