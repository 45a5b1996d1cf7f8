//! The Raft driver: one OS thread owning the raft-rs `RawNode`, driven in the
//! documented Ready order (send messages, apply snapshot, apply committed
//! entries, persist entries and hard state with ONE sync, send persisted
//! messages, advance, apply what the light ready committed).
//!
//! Inputs (proposals, linearizable read requests, peer messages) arrive on a
//! channel and are drained in batches, so one Ready cycle — and one fsync —
//! carries every proposal that arrived meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prost::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, Snapshot,
    SnapshotMetadata,
};
use raft::{Config, RawNode, StateRole, Storage};
use tokio::sync::{broadcast, oneshot, watch};

use super::command::Txn;
use super::durable::Durable;
use super::state::{Event, SnapshotData, StateMachine, TxnOutcome};
use super::storage::RaftStorage;
use super::transport::Transport;
use super::{RoleInfo, StoreError, WatchMsg};

/// Tunables of the Raft driver.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    /// This master's Raft id (non-zero).
    pub id: u64,
    /// Voters of a new cluster. Empty when joining an existing cluster
    /// (the leader sends a snapshot).
    pub voters: Vec<u64>,
    /// Duration of one Raft tick.
    pub tick: Duration,
    /// Ticks without a heartbeat before a follower campaigns (randomized in
    /// [election_tick, 2 * election_tick)).
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Applied entries between snapshots (which let the log be compacted).
    pub snapshot_every: u64,
    /// Entries kept in memory behind a snapshot for slow followers.
    pub keep_entries: u64,
    /// How long a proposal or read may wait (e.g. for a leader) before it fails.
    pub request_timeout: Duration,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            id: 1,
            voters: vec![1],
            tick: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            snapshot_every: 10_000,
            keep_entries: 5_000,
            request_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the driver is asked to do.
pub(crate) enum Input {
    Propose {
        txn: Txn,
        reply: Reply<TxnOutcome>,
    },
    ReadIndex {
        reply: Reply<u64>,
    },
    Step(Box<Message>),
    ConfChange {
        cc: ConfChangeV2,
        reply: Reply<ConfState>,
    },
    TransferLeader {
        to: u64,
    },
    Snapshot {
        reply: Reply<u64>,
    },
    Shutdown,
}

/// What the driver publishes to the rest of the process.
pub(crate) struct Shared {
    pub state: RwLock<StateMachine>,
    pub events: broadcast::Sender<WatchMsg>,
    pub applied: watch::Sender<u64>,
    pub role: watch::Sender<RoleInfo>,
    /// Set when the driver stopped; every later request fails with it.
    pub failed: parking_lot::Mutex<Option<String>>,
}

struct PendingRead {
    issued: Instant,
    created: Instant,
    replies: Vec<Reply<u64>>,
}

pub(crate) struct Driver {
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    durable: Box<dyn Durable>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    opts: RaftOptions,
    next_request: u64,
    /// Proposals made here, by request id, waiting for their entry to apply.
    proposals: HashMap<u64, (Instant, Reply<TxnOutcome>)>,
    /// Proposals that raft dropped (no leader yet), retried until timeout.
    deferred: Vec<(Instant, Txn, Reply<TxnOutcome>)>,
    conf_changes: Vec<(Instant, Reply<ConfState>)>,
    read_batch: Vec<Reply<u64>>,
    next_read: u64,
    reads_in_flight: HashMap<u64, PendingRead>,
    /// Reads whose index is known, waiting for apply to reach it.
    reads_waiting: Vec<(u64, Vec<Reply<u64>>)>,
    last_snapshot: u64,
    snapshot_waiters: Vec<Reply<u64>>,
}

impl Driver {
    /// Rebuilds raft state from what `durable` recovered and creates the node.
    pub(crate) fn new(
        opts: RaftOptions,
        mut durable: Box<dyn Durable>,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
    ) -> Result<Driver, StoreError> {
        let recovered = durable.recover()?;
        let mem = raft::storage::MemStorage::new();
        let storage = RaftStorage::new(mem.clone());
        let mut applied = 0;
        match recovered.snapshot {
            Some((meta, data)) if meta.index > 0 => {
                let snap_data =
                    SnapshotData::decode(data.as_slice()).map_err(|e| StoreError::Corrupt {
                        what: format!("snapshot at index {}", meta.index),
                        reason: e.to_string(),
                    })?;
                shared
                    .state
                    .write()
                    .restore(snap_data, meta.index)
                    .map_err(StoreError::Apply)?;
                let snap = Snapshot {
                    data: data.clone(),
                    metadata: Some(meta.clone()),
                };
                mem.wl()
                    .apply_snapshot(Snapshot {
                        data: Vec::new(),
                        metadata: Some(meta.clone()),
                    })
                    .map_err(StoreError::Raft)?;
                storage.set_latest_snapshot(snap);
                applied = meta.index;
            }
            Some((meta, _)) => {
                // The bootstrap record of a new cluster: conf state only.
                mem.wl().set_conf_state(meta.get_conf_state().clone());
            }
            None if !opts.voters.is_empty() => {
                let cs = ConfState {
                    voters: opts.voters.clone(),
                    ..Default::default()
                };
                let meta = SnapshotMetadata {
                    conf_state: Some(cs.clone()),
                    index: 0,
                    term: 0,
                };
                let empty = SnapshotData::default().encode_to_vec();
                durable.save_snapshot(&meta, &empty)?;
                mem.wl().set_conf_state(cs);
            }
            None => {}
        }
        let entries: Vec<Entry> = recovered
            .entries
            .into_iter()
            .filter(|e| e.index > applied)
            .collect();
        if !entries.is_empty() {
            mem.wl().append(&entries).map_err(StoreError::Raft)?;
        }
        if recovered.hard_state != HardState::default() {
            let mut hs = recovered.hard_state;
            // The commit index is persisted lazily (with the next hard state
            // change); a snapshot proves everything up to it was committed.
            hs.commit = hs.commit.max(applied);
            mem.wl().set_hardstate(hs);
        }
        let cfg = Config {
            id: opts.id,
            election_tick: opts.election_tick,
            heartbeat_tick: opts.heartbeat_tick,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            max_committed_size_per_ready: 64 << 20,
            ..Default::default()
        };
        cfg.validate().map_err(StoreError::Raft)?;
        let logger = slog::Logger::root(super::log::TracingDrain, slog::o!("raft_id" => opts.id));
        let mut raw = RawNode::new(&cfg, storage.clone(), &logger).map_err(StoreError::Raft)?;
        let single = raw
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .collect::<Vec<_>>()
            == vec![opts.id];
        if single {
            // A one-voter group need not wait an election timeout.
            raw.campaign().map_err(StoreError::Raft)?;
        }
        let _ = shared.applied.send(applied);
        Ok(Driver {
            raw,
            storage,
            durable,
            transport,
            shared,
            next_request: 1,
            proposals: HashMap::new(),
            deferred: Vec::new(),
            conf_changes: Vec::new(),
            read_batch: Vec::new(),
            next_read: 1,
            reads_in_flight: HashMap::new(),
            reads_waiting: Vec::new(),
            last_snapshot: applied,
            snapshot_waiters: Vec::new(),
            opts,
        })
    }

    /// Runs until shutdown or a fatal storage error.
    pub(crate) fn run(mut self, rx: Receiver<Input>) {
        let mut next_tick = Instant::now() + self.opts.tick;
        let result = (|| -> Result<(), StoreError> {
            loop {
                let wait = next_tick.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(input) => {
                        if !self.handle(input) {
                            return Ok(());
                        }
                        // Drain what else is queued into the same cycle.
                        for _ in 0..4096 {
                            match rx.try_recv() {
                                Ok(input) => {
                                    if !self.handle(input) {
                                        return Ok(());
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
                let now = Instant::now();
                if now >= next_tick {
                    self.raw.tick();
                    next_tick = now + self.opts.tick;
                    self.on_tick(now);
                }
                self.flush_reads();
                self.on_ready()?;
            }
        })();
        let reason = match result {
            Ok(()) => "store stopped".to_string(),
            Err(e) => {
                tracing::error!(error = %e, "raft driver stopped on a fatal error");
                format!("store failed: {e}")
            }
        };
        *self.shared.failed.lock() = Some(reason.clone());
        self.fail_all(&reason);
    }

    fn fail_all(&mut self, reason: &str) {
        let err = || StoreError::Stopped(reason.to_string());
        for (_, (_, r)) in self.proposals.drain() {
            let _ = r.send(Err(err()));
        }
        for (_, _, r) in self.deferred.drain(..) {
            let _ = r.send(Err(err()));
        }
        for (_, r) in self.conf_changes.drain(..) {
            let _ = r.send(Err(err()));
        }
        for r in self.read_batch.drain(..) {
            let _ = r.send(Err(err()));
        }
        for (_, p) in self.reads_in_flight.drain() {
            for r in p.replies {
                let _ = r.send(Err(err()));
            }
        }
        for (_, rs) in self.reads_waiting.drain(..) {
            for r in rs {
                let _ = r.send(Err(err()));
            }
        }
        for r in self.snapshot_waiters.drain(..) {
            let _ = r.send(Err(err()));
        }
    }

    /// Handles one input; false means shut down.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { mut txn, reply } => {
                txn.request_id = (self.opts.id << 48) | (self.next_request & ((1 << 48) - 1));
                self.next_request += 1;
                self.propose(Instant::now(), txn, reply);
            }
            Input::ReadIndex { reply } => self.read_batch.push(reply),
            Input::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(error = %e, "dropped raft message");
                }
            }
            Input::ConfChange { cc, reply } => match self.raw.propose_conf_change(Vec::new(), cc) {
                Ok(()) => self.conf_changes.push((Instant::now(), reply)),
                Err(e) => {
                    let _ = reply.send(Err(self.not_leader_or(e)));
                }
            },
            Input::TransferLeader { to } => self.raw.transfer_leader(to),
            Input::Snapshot { reply } => {
                self.snapshot_waiters.push(reply);
            }
            Input::Shutdown => return false,
        }
        true
    }

    fn not_leader_or(&self, e: raft::Error) -> StoreError {
        match e {
            raft::Error::ProposalDropped => StoreError::NoLeader {
                leader: self.raw.raft.leader_id,
            },
            other => StoreError::Raft(other),
        }
    }

    fn propose(&mut self, created: Instant, txn: Txn, reply: Reply<TxnOutcome>) {
        let data = txn.encode();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                self.proposals.insert(txn.request_id, (created, reply));
            }
            Err(raft::Error::ProposalDropped) => self.deferred.push((created, txn, reply)),
            Err(e) => {
                let _ = reply.send(Err(StoreError::Raft(e)));
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let timeout = self.opts.request_timeout;
        // Retry proposals dropped for lack of a leader.
        for (created, txn, reply) in std::mem::take(&mut self.deferred) {
            if now.duration_since(created) >= timeout {
                let _ = reply.send(Err(StoreError::Timeout {
                    what: "write waiting for a Raft leader".into(),
                }));
            } else if self.raw.raft.leader_id != raft::INVALID_ID {
                self.propose(created, txn, reply);
            } else {
                self.deferred.push((created, txn, reply));
            }
        }
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, (c, _))| now.duration_since(*c) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, r)) = self.proposals.remove(&id) {
                let _ = r.send(Err(StoreError::Timeout {
                    what: "write waiting to be committed".into(),
                }));
            }
        }
        self.conf_changes
            .retain(|(c, _)| now.duration_since(*c) < timeout);
        // Re-issue reads raft dropped (e.g. a new leader that has not yet
        // committed in its term); fail those past the deadline.
        let mut reissue = Vec::new();
        let mut dead = Vec::new();
        for (id, p) in self.reads_in_flight.iter_mut() {
            if now.duration_since(p.created) >= timeout {
                dead.push(*id);
            } else if now.duration_since(p.issued) >= self.opts.tick * 2 {
                p.issued = now;
                reissue.push(*id);
            }
        }
        for id in dead {
            if let Some(p) = self.reads_in_flight.remove(&id) {
                for r in p.replies {
                    let _ = r.send(Err(StoreError::Timeout {
                        what: "linearizable read waiting for the Raft leader".into(),
                    }));
                }
            }
        }
        for id in reissue {
            self.raw.read_index(id.to_le_bytes().to_vec());
        }
    }

    fn flush_reads(&mut self) {
        if self.read_batch.is_empty() {
            return;
        }
        let id = self.next_read;
        self.next_read += 1;
        let now = Instant::now();
        self.reads_in_flight.insert(
            id,
            PendingRead {
                issued: now,
                created: now,
                replies: std::mem::take(&mut self.read_batch),
            },
        );
        self.raw.read_index(id.to_le_bytes().to_vec());
    }

    fn publish_role(&self) {
        let ss = &self.raw.raft;
        let info = RoleInfo {
            id: self.opts.id,
            leader: ss.leader_id,
            term: ss.term,
            is_leader: ss.state == StateRole::Leader,
        };
        self.shared.role.send_if_modified(|cur| {
            if *cur != info {
                *cur = info;
                true
            } else {
                false
            }
        });
    }

    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.raw.has_ready() {
            self.maybe_snapshot()?;
            return Ok(());
        }
        let mut rd = self.raw.ready();
        if rd.ss().is_some() || rd.hs().is_some() {
            self.publish_role();
        }
        if !rd.messages().is_empty() {
            self.transport.send(rd.take_messages());
        }
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        self.apply_committed(rd.take_committed_entries())?;
        let mut dirty = false;
        if !rd.entries().is_empty() {
            self.storage
                .mem
                .wl()
                .append(rd.entries())
                .map_err(StoreError::Raft)?;
            self.durable.append_entries(rd.entries())?;
            dirty = true;
        }
        if let Some(hs) = rd.hs() {
            self.storage.set_hard_state(hs.clone());
            self.durable.set_hard_state(hs)?;
            dirty = true;
        }
        if dirty || rd.must_sync() {
            self.durable.sync()?;
        }
        if !rd.persisted_messages().is_empty() {
            self.transport.send(rd.take_persisted_messages());
        }
        for rs in rd.take_read_states() {
            let mut id = [0u8; 8];
            if rs.request_ctx.len() == 8 {
                id.copy_from_slice(&rs.request_ctx);
            }
            if let Some(p) = self.reads_in_flight.remove(&u64::from_le_bytes(id)) {
                self.reads_waiting.push((rs.index, p.replies));
            }
        }
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.storage.mem.wl().mut_hard_state().set_commit(commit);
        }
        if !light.messages().is_empty() {
            self.transport.send(light.take_messages());
        }
        self.apply_committed(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.publish_role();
        self.resolve_reads();
        self.maybe_snapshot()
    }

    fn resolve_reads(&mut self) {
        let applied = self.shared.state.read().applied();
        let mut still = Vec::new();
        for (index, replies) in self.reads_waiting.drain(..) {
            if index <= applied {
                for r in replies {
                    let _ = r.send(Ok(index));
                }
            } else {
                still.push((index, replies));
            }
        }
        self.reads_waiting = still;
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut events: Vec<Event> = Vec::new();
        let mut replies: Vec<(Reply<TxnOutcome>, TxnOutcome)> = Vec::new();
        let mut last = 0;
        {
            let mut sm = self.shared.state.write();
            for e in entries {
                last = e.index;
                match e.get_entry_type() {
                    EntryType::EntryNormal if e.data.is_empty() => sm.apply_empty(e.index),
                    EntryType::EntryNormal => match Txn::decode_bytes(&e.data) {
                        Ok(txn) => {
                            let outcome = sm.apply_txn(e.index, e.term, &txn, &mut events);
                            if let Some((_, reply)) = self.proposals.remove(&txn.request_id) {
                                replies.push((reply, outcome));
                            }
                        }
                        Err(err) => {
                            tracing::error!(index = e.index, error = %err, "skipping a log entry that is not a transaction");
                            sm.apply_empty(e.index);
                        }
                    },
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        sm.apply_empty(e.index);
                        let cc = if e.get_entry_type() == EntryType::EntryConfChange {
                            ConfChange::decode(e.data.as_slice())
                                .map(raft_proto::ConfChangeI::into_v2)
                        } else {
                            ConfChangeV2::decode(e.data.as_slice())
                        };
                        match cc {
                            Ok(cc) => match self.raw.apply_conf_change(&cc) {
                                Ok(cs) => {
                                    self.storage.set_conf_state(cs.clone());
                                    if let Some((_, r)) = self.conf_changes.pop() {
                                        let _ = r.send(Ok(cs));
                                    }
                                }
                                Err(err) => {
                                    tracing::warn!(index = e.index, error = %err, "configuration change refused");
                                    if let Some((_, r)) = self.conf_changes.pop() {
                                        let _ = r.send(Err(StoreError::Raft(err)));
                                    }
                                }
                            },
                            Err(err) => {
                                tracing::error!(index = e.index, error = %err, "undecodable configuration change")
                            }
                        }
                    }
                }
            }
            if !events.is_empty() {
                // Sent under the write lock so a watch registering under the
                // read lock sees each event exactly once: in history or here.
                let _ = self.shared.events.send(WatchMsg::Events(Arc::from(events)));
            }
        }
        let _ = self.shared.applied.send(last);
        for (reply, outcome) in replies {
            let _ = reply.send(Ok(outcome));
        }
        Ok(())
    }

    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), StoreError> {
        let meta = snap.get_metadata().clone();
        let data = SnapshotData::decode(snap.data.as_slice()).map_err(|e| StoreError::Corrupt {
            what: format!("snapshot from the leader at index {}", meta.index),
            reason: e.to_string(),
        })?;
        {
            let mut sm = self.shared.state.write();
            sm.restore(data, meta.index).map_err(StoreError::Apply)?;
            let _ = self.shared.events.send(WatchMsg::Reset);
        }
        self.storage
            .mem
            .wl()
            .apply_snapshot(Snapshot {
                data: Vec::new(),
                metadata: Some(meta.clone()),
            })
            .map_err(StoreError::Raft)?;
        self.durable.save_snapshot(&meta, &snap.data)?;
        self.storage.set_latest_snapshot(snap);
        self.last_snapshot = meta.index;
        let _ = self.shared.applied.send(meta.index);
        Ok(())
    }

    fn maybe_snapshot(&mut self) -> Result<(), StoreError> {
        let applied = self.raw.raft.raft_log.applied;
        let wanted = self.storage.take_wanted().is_some();
        let due = applied >= self.last_snapshot + self.opts.snapshot_every;
        if !(due || wanted || !self.snapshot_waiters.is_empty()) || applied == 0 {
            return Ok(());
        }
        let term = self.storage.term(applied).map_err(StoreError::Raft)?;
        let data = self.shared.state.read().snapshot().encode_to_vec();
        let meta = SnapshotMetadata {
            conf_state: Some(self.raw.raft.prs().conf().to_conf_state()),
            index: applied,
            term,
        };
        self.durable.save_snapshot(&meta, &data)?;
        self.storage.set_latest_snapshot(Snapshot {
            data,
            metadata: Some(meta),
        });
        let compact_to = applied.saturating_sub(self.opts.keep_entries);
        if compact_to > self.storage.mem.first_index().unwrap_or(0) {
            self.storage
                .mem
                .wl()
                .compact(compact_to)
                .map_err(StoreError::Raft)?;
        }
        self.last_snapshot = applied;
        tracing::debug!(index = applied, term, "saved snapshot");
        for r in self.snapshot_waiters.drain(..) {
            let _ = r.send(Ok(applied));
        }
        Ok(())
    }
}
