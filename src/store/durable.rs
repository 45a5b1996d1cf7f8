//! What the Raft driver persists, behind a small trait: the write-ahead log
//! plus snapshot files on disk, or an in-memory log for simulations.
//!
//! Contract: after `sync` returns Ok, everything appended before it survives
//! a crash (process kill or power loss for the disk implementation).

use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

use super::StoreError;

/// What survived the last run.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// Latest snapshot, if any: metadata (index, term, conf state) and data.
    pub snapshot: Option<(SnapshotMetadata, Vec<u8>)>,
    pub hard_state: HardState,
    /// Log entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// Durable Raft state.
pub trait Durable: Send {
    /// Reads back what survived (called once, before any append).
    fn recover(&mut self) -> Result<Recovered, StoreError>;
    /// Buffers entries; an entry whose index is <= the last one truncates
    /// the log from that index first (Raft overwrites conflicting suffixes).
    fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StoreError>;
    /// Buffers a new hard state.
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError>;
    /// Makes everything buffered durable.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Saves a snapshot durably, then lets the log drop entries it covers.
    fn save_snapshot(&mut self, meta: &SnapshotMetadata, data: &[u8]) -> Result<(), StoreError>;
}

/// An in-memory [`Durable`] that models crashes: only synced state survives
/// [`MemDurable::crash`]. Used by simulations and tests.
#[derive(Debug, Default, Clone)]
pub struct MemDurable {
    synced: Recovered,
    pending_entries: Vec<Entry>,
    pending_hs: Option<HardState>,
    /// Number of `sync` calls, so tests can check batching.
    pub syncs: u64,
}

impl MemDurable {
    pub fn new() -> MemDurable {
        MemDurable::default()
    }

    /// What a restart after a crash would find: unsynced writes are lost.
    pub fn crash(&self) -> MemDurable {
        MemDurable {
            synced: self.synced.clone(),
            ..Default::default()
        }
    }
}

fn merge_entries(log: &mut Vec<Entry>, new: &[Entry]) {
    let Some(first) = new.first() else { return };
    if let Some(pos) = log.iter().position(|e| e.index >= first.index) {
        log.truncate(pos);
    }
    log.extend_from_slice(new);
}

impl Durable for MemDurable {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        Ok(self.synced.clone())
    }
    fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        merge_entries(&mut self.pending_entries, entries);
        Ok(())
    }
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        self.pending_hs = Some(hs.clone());
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.pending_entries);
        merge_entries(&mut self.synced.entries, &pending);
        if let Some(hs) = self.pending_hs.take() {
            self.synced.hard_state = hs;
        }
        self.syncs += 1;
        Ok(())
    }
    fn save_snapshot(&mut self, meta: &SnapshotMetadata, data: &[u8]) -> Result<(), StoreError> {
        self.sync()?;
        let at_our_snapshot = self
            .synced
            .snapshot
            .as_ref()
            .is_some_and(|(m, _)| m.index == meta.index && m.term == meta.term);
        let covers_our_log = at_our_snapshot
            || self
                .synced
                .entries
                .iter()
                .any(|e| e.index == meta.index && e.term == meta.term);
        if covers_our_log {
            self.synced.entries.retain(|e| e.index > meta.index);
        } else {
            // A snapshot from the leader that our log does not match: what
            // follows it in our log is from another history (as DiskDurable
            // and raft-rs' MemStorage do, drop it all).
            self.synced.entries.clear();
        }
        self.synced.snapshot = Some((meta.clone(), data.to_vec()));
        Ok(())
    }
}

/// The on-disk [`Durable`]: the write-ahead log under `DIR/wal` plus
/// snapshot files under `DIR/snap`.
pub struct DiskDurable {
    dir: std::path::PathBuf,
    wal: super::wal::Wal,
    recovered: Option<super::wal::Recovered>,
}

impl DiskDurable {
    /// Opens (or creates) the log in `dir`, cutting a torn tail left by a
    /// crash. Fails if another process holds it or it is corrupt.
    pub fn open(dir: &std::path::Path) -> Result<DiskDurable, StoreError> {
        let (wal, recovered) =
            super::wal::Wal::open(dir, super::wal::WalOptions::default()).map_err(wal_err)?;
        Ok(DiskDurable {
            dir: dir.to_path_buf(),
            wal,
            recovered: Some(recovered),
        })
    }
}

fn wal_err(e: super::wal::WalError) -> StoreError {
    StoreError::Wal(e.to_string())
}

fn snap_err(e: super::snapfile::SnapError) -> StoreError {
    StoreError::Wal(e.to_string())
}

impl Durable for DiskDurable {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        let rec = self.recovered.take().unwrap_or_default();
        let snapshot = super::snapfile::load_latest(&self.dir).map_err(snap_err)?;
        let snap_index = snapshot.as_ref().map_or(0, |(m, _)| m.index);
        if snap_index < rec.snapshot_index {
            return Err(StoreError::Corrupt {
                what: format!("data directory {}", self.dir.display()),
                reason: format!(
                    "the log was compacted up to index {} but the newest snapshot is at {snap_index}",
                    rec.snapshot_index
                ),
            });
        }
        // A crash between saving a snapshot and compacting the log leaves
        // entries the snapshot already covers.
        let entries = rec
            .entries
            .into_iter()
            .filter(|e| e.index > snap_index)
            .collect();
        Ok(Recovered {
            snapshot,
            hard_state: rec.hard_state,
            entries,
        })
    }

    fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.wal.append_entries(entries).map_err(wal_err)
    }

    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        self.wal.set_hard_state(hs).map_err(wal_err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.wal.sync().map_err(wal_err)
    }

    fn save_snapshot(&mut self, meta: &SnapshotMetadata, data: &[u8]) -> Result<(), StoreError> {
        super::snapfile::save(&self.dir, meta, data).map_err(snap_err)?;
        if meta.index > 0 {
            if self.wal.term(meta.index) == Some(meta.term) {
                self.wal.compact(meta.index, meta.term).map_err(wal_err)?;
            } else {
                // A snapshot from the leader that our log does not reach.
                self.wal
                    .apply_snapshot(meta.index, meta.term)
                    .map_err(wal_err)?;
            }
        }
        if let Err(e) = super::snapfile::prune(&self.dir, 2) {
            tracing::warn!(error = %e, "could not prune old snapshots");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn only_synced_state_survives_a_crash() {
        let mut d = MemDurable::new();
        d.append_entries(&[ent(1, 1), ent(2, 1)]).unwrap();
        d.sync().unwrap();
        d.append_entries(&[ent(3, 1)]).unwrap();
        let mut after = d.crash();
        let r = after.recover().unwrap();
        assert_eq!(
            r.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn a_snapshot_keeps_the_log_after_it_only_if_it_matches() {
        let snap = |index, term| SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        let mut d = MemDurable::new();
        d.append_entries(&[ent(1, 1), ent(2, 1), ent(3, 1)])
            .unwrap();
        // Our own snapshot at 2 compacts the log up to it.
        d.save_snapshot(&snap(2, 1), b"").unwrap();
        let r = d.crash().recover().unwrap();
        assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [3]);
        // Saving again at the same point keeps the log after it.
        d.save_snapshot(&snap(2, 1), b"").unwrap();
        assert_eq!(d.crash().recover().unwrap().entries.len(), 1);
        // The leader's snapshot at 5 (term 2), which our log does not reach:
        // the stale entry 3 of term 1 must not survive a restart.
        d.save_snapshot(&snap(5, 2), b"").unwrap();
        let r = d.crash().recover().unwrap();
        assert!(r.entries.is_empty());
        assert_eq!(r.snapshot.map(|(m, _)| m.index), Some(5));
    }

    #[test]
    fn conflicting_suffix_is_replaced() {
        let mut d = MemDurable::new();
        d.append_entries(&[ent(1, 1), ent(2, 1), ent(3, 1)])
            .unwrap();
        d.sync().unwrap();
        d.append_entries(&[ent(2, 2)]).unwrap();
        d.sync().unwrap();
        let r = d.recover().unwrap();
        assert_eq!(
            r.entries
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
    }
}
