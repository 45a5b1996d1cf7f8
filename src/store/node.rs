//! The Raft driver, in two layers:
//!
//! - [`NodeCore`]: a deterministic core owning the raft-rs `RawNode`. It does
//!   no IO of its own (everything goes through [`Durable`] and
//!   [`Transport`]), reads no clock (time is the count of [`NodeCore::tick`]
//!   calls), and reports the end of every request as a [`Completion`]. The
//!   simulation in `raft-tests/` drives it directly.
//! - `Driver`: the thin threaded shell the production [`super::Store`] runs:
//!   one OS thread that drains its input channel (so one Ready cycle — and
//!   one fsync — carries every proposal that arrived meanwhile), ticks by the
//!   wall clock, and hands completions back to the waiting callers.
//!
//! The Ready cycle follows the documented order: send messages, apply the
//! snapshot, apply committed entries, persist entries and hard state with ONE
//! sync, send persisted messages, advance, apply what the light ready
//! committed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};
use prost::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
use raft::{Config, ProgressState, RawNode, SnapshotStatus, StateRole, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, oneshot, watch};

use super::command::Txn;
use super::durable::Durable;
use super::state::{Applied, Event, HistoryLimits, SnapshotData, StateMachine};
use super::storage::RaftStorage;
use super::transport::Transport;
use super::{PeerProgress, RaftStatus, RoleInfo, StoreError, WatchMsg};

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
    /// How long a proposal or read may wait (e.g. for a leader) before it
    /// fails. The core counts it in ticks (rounded up).
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

impl RaftOptions {
    /// `request_timeout` in ticks (at least one).
    pub fn request_timeout_ticks(&self) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        let ticks = self.request_timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// Names a request given to [`NodeCore::handle`]; chosen by the caller and
/// echoed in the request's [`Completion`].
pub type Ticket = u64;

/// What the core is asked to do.
#[derive(Debug)]
pub enum Input {
    /// Propose a transaction; completes when it is applied here (or fails).
    Propose { ticket: Ticket, txn: Txn },
    /// A linearizable read barrier (Raft ReadIndex); completes with the read
    /// index once this master has applied up to it.
    ReadIndex { ticket: Ticket },
    /// A Raft message from a peer.
    Step(Box<Message>),
    /// Propose a membership change; completes when it is applied.
    ConfChange { ticket: Ticket, cc: ConfChangeV2 },
    /// Ask the leader to hand leadership to `to` (no completion).
    TransferLeader { to: u64 },
    /// Take a snapshot (and compact the log) now; completes with its index.
    Snapshot { ticket: Ticket },
    /// The transport could not deliver a message to peer `id` (raft-rs then
    /// probes it instead of streaming to it).
    ReportUnreachable { id: u64 },
    /// The transport delivered (`ok`) or failed to deliver a snapshot to
    /// peer `id`.
    ReportSnapshot { id: u64, ok: bool },
}

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// A proposal: applied at `rv`, or `Err(StoreError::Apply(..))` when it
    /// reached the log but a precondition failed; any other error (timeout,
    /// stopped) leaves it undetermined: it may still be applied later.
    Txn(Result<Applied, StoreError>),
    /// A read barrier: the read index, applied here.
    ReadIndex(Result<u64, StoreError>),
    ConfChange(Result<ConfState, StoreError>),
    Snapshot(Result<u64, StoreError>),
}

/// The end of one request.
#[derive(Debug)]
pub struct Completion {
    pub ticket: Ticket,
    pub outcome: Outcome,
}

/// What the state machine consumed, in order, recorded when
/// [`NodeCore::record_applies`] is on (simulations check replicas with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyRecord {
    /// A log entry applied at `index`.
    Entry {
        index: u64,
        term: u64,
        data: Vec<u8>,
    },
    /// The state was replaced by the leader's snapshot at `index`.
    Snapshot { index: u64, term: u64 },
}

/// What the core publishes to the rest of the process.
pub(crate) struct Shared {
    pub state: RwLock<StateMachine>,
    pub events: broadcast::Sender<WatchMsg>,
    pub applied: watch::Sender<u64>,
    pub role: watch::Sender<RoleInfo>,
    /// Set when the driver stopped; every later request fails with it.
    pub failed: parking_lot::Mutex<Option<String>>,
    /// Raft's progress as of the last Ready cycle (for `cluster status`).
    pub status: parking_lot::Mutex<RaftStatus>,
}

impl Shared {
    fn new(history: HistoryLimits, blob_dir: Option<PathBuf>) -> Shared {
        Shared {
            state: RwLock::new(StateMachine::new(blob_dir, history)),
            events: broadcast::channel(4096).0,
            applied: watch::channel(0).0,
            role: watch::channel(RoleInfo::default()).0,
            failed: parking_lot::Mutex::new(None),
            status: parking_lot::Mutex::new(RaftStatus::default()),
        }
    }
}

/// A proposal made here, waiting for its entry to apply.
#[derive(Debug)]
struct PendingProposal {
    ticket: Ticket,
    created: u64,
    /// The encoded transaction, to propose again if leadership moves.
    data: Vec<u8>,
    /// The (leader, term) it was last proposed under.
    view: (u64, u64),
}

/// A batch of read barriers sharing one ReadIndex request.
#[derive(Debug)]
struct PendingRead {
    /// Tick of the last (re)issue to raft.
    issued: u64,
    created: u64,
    tickets: Vec<Ticket>,
}

/// The deterministic Raft driver core (see the module docs).
pub struct NodeCore {
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    durable: Box<dyn Durable>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    opts: RaftOptions,
    /// Ticks since the core started: the only clock it reads.
    now: u64,
    timeout_ticks: u64,
    /// Counters behind request ids and ReadIndex contexts. They start at a
    /// random point so that a restarted master never reuses an id of its
    /// previous run that may still be in the log or in flight: a reused id
    /// would hand an old entry's result (or read index) to a new request.
    next_request: u64,
    /// Proposals made here, by request id (ordered: expiry is deterministic).
    proposals: BTreeMap<u64, PendingProposal>,
    /// The (leader, term) the pending proposals were last checked against.
    proposal_view: (u64, u64),
    /// Proposals that raft dropped (no leader yet), retried until timeout.
    deferred: Vec<(u64, Ticket, Txn)>,
    /// The tick since which no leader is known, if none is: a request that
    /// arrives after a long leaderless spell fails at once.
    leaderless_since: Option<u64>,
    /// Membership changes proposed here: (request id carried in the
    /// entry's context, tick proposed, ticket).
    conf_changes: Vec<(u64, u64, Ticket)>,
    /// Read barriers that arrived since the last Ready cycle.
    read_batch: Vec<Ticket>,
    next_read: u64,
    reads_in_flight: BTreeMap<u64, PendingRead>,
    /// Reads whose index is known, waiting for apply to reach it:
    /// (index, created, tickets).
    reads_waiting: Vec<(u64, u64, Vec<Ticket>)>,
    last_snapshot: u64,
    snapshot_waiters: Vec<Ticket>,
    /// When this leader last sent a snapshot to each follower. raft-rs
    /// stops replicating to a follower until its snapshot is reported, and
    /// the transport cannot tell us it was lost; see [`NodeCore::tick`].
    snapshots_sent: BTreeMap<u64, u64>,
    completions: Vec<Completion>,
    /// Replaces raft-rs' thread-local randomness for election timeouts when
    /// a run must be reproducible.
    election_rng: Option<StdRng>,
    apply_log: Option<Vec<ApplyRecord>>,
}

impl NodeCore {
    /// Rebuilds raft state from what `durable` recovered and creates the
    /// node, with an empty state machine keeping `history` and blob chunks
    /// under `blob_dir`.
    pub fn new(
        opts: RaftOptions,
        history: HistoryLimits,
        blob_dir: Option<PathBuf>,
        durable: Box<dyn Durable>,
        transport: Arc<dyn Transport>,
    ) -> Result<NodeCore, StoreError> {
        NodeCore::with_shared(
            opts,
            durable,
            transport,
            Arc::new(Shared::new(history, blob_dir)),
        )
    }

    fn with_shared(
        opts: RaftOptions,
        mut durable: Box<dyn Durable>,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
    ) -> Result<NodeCore, StoreError> {
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
        let raw = RawNode::new(&cfg, storage.clone(), &logger).map_err(StoreError::Raft)?;
        shared.applied.send_replace(applied);
        let mut core = NodeCore {
            raw,
            storage,
            durable,
            transport,
            shared,
            timeout_ticks: opts.request_timeout_ticks(),
            now: 0,
            next_request: rand::random(),
            proposals: BTreeMap::new(),
            proposal_view: (0, 0),
            deferred: Vec::new(),
            leaderless_since: None,
            conf_changes: Vec::new(),
            read_batch: Vec::new(),
            next_read: rand::random(),
            reads_in_flight: BTreeMap::new(),
            reads_waiting: Vec::new(),
            last_snapshot: applied,
            snapshot_waiters: Vec::new(),
            snapshots_sent: BTreeMap::new(),
            completions: Vec::new(),
            election_rng: None,
            apply_log: None,
            opts,
        };
        let single = core
            .raw
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .collect::<Vec<_>>()
            == vec![core.opts.id];
        if single {
            // A one-voter group need not wait an election timeout.
            core.raw.campaign().map_err(StoreError::Raft)?;
        }
        core.publish_status();
        Ok(core)
    }

    /// Makes the core reproducible: election timeouts come from a generator
    /// seeded with `seed` instead of raft-rs' thread-local randomness.
    pub fn seed(&mut self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        self.next_request = rng.random();
        self.next_read = rng.random();
        self.election_rng = Some(rng);
        self.rerandomize_election_timeout(true);
    }

    /// `(raft id << 48) | counter`: unique across masters, and across runs
    /// of one master while the counter's random start keeps them apart.
    fn unique_id(&self, counter: u64) -> u64 {
        (self.opts.id << 48) | (counter & ((1 << 48) - 1))
    }

    /// Starts recording what the state machine consumes (see
    /// [`NodeCore::take_apply_records`]).
    pub fn record_applies(&mut self) {
        self.apply_log.get_or_insert_with(Vec::new);
    }

    /// What was applied since the last call (empty unless recording).
    pub fn take_apply_records(&mut self) -> Vec<ApplyRecord> {
        self.apply_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Requests that ended since the last call, in the order they ended.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// Ticks since the core started.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// This master's Raft id.
    pub fn id(&self) -> u64 {
        self.opts.id
    }

    /// This master's view of leadership.
    pub fn role(&self) -> RoleInfo {
        let ss = &self.raw.raft;
        RoleInfo {
            id: self.opts.id,
            leader: ss.leader_id,
            term: ss.term,
            is_leader: ss.state == StateRole::Leader,
        }
    }

    /// The raft-rs node, for inspection (log, progress, commit index).
    pub fn raw_node(&self) -> &RawNode<RaftStorage> {
        &self.raw
    }

    /// The state machine.
    pub fn state(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.shared.state.read()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// raft-rs redraws the randomized election timeout from `thread_rng`
    /// whenever it resets the election clock; with a seed we overwrite it.
    /// Every such reset leaves `election_elapsed` at zero, so redrawing
    /// whenever it is zero is deterministic.
    fn rerandomize_election_timeout(&mut self, force: bool) {
        let Some(rng) = self.election_rng.as_mut() else {
            return;
        };
        if force || self.raw.raft.election_elapsed == 0 {
            let lo = self.opts.election_tick;
            let t = rng.random_range(lo..2 * lo);
            self.raw.raft.set_randomized_election_timeout(t);
        }
    }

    /// Ends every pending request with `Stopped(reason)`.
    pub fn fail_all(&mut self, reason: &str) {
        let err = || StoreError::Stopped(reason.to_string());
        let mut done = Vec::new();
        for (_, p) in std::mem::take(&mut self.proposals) {
            done.push((p.ticket, Outcome::Txn(Err(err()))));
        }
        for (_, ticket, _) in self.deferred.drain(..) {
            done.push((ticket, Outcome::Txn(Err(err()))));
        }
        for (_, _, ticket) in self.conf_changes.drain(..) {
            done.push((ticket, Outcome::ConfChange(Err(err()))));
        }
        for ticket in self.read_batch.drain(..) {
            done.push((ticket, Outcome::ReadIndex(Err(err()))));
        }
        for (_, p) in std::mem::take(&mut self.reads_in_flight) {
            for ticket in p.tickets {
                done.push((ticket, Outcome::ReadIndex(Err(err()))));
            }
        }
        for (_, _, tickets) in self.reads_waiting.drain(..) {
            for ticket in tickets {
                done.push((ticket, Outcome::ReadIndex(Err(err()))));
            }
        }
        for ticket in self.snapshot_waiters.drain(..) {
            done.push((ticket, Outcome::Snapshot(Err(err()))));
        }
        for (ticket, outcome) in done {
            self.complete(ticket, outcome);
        }
    }

    fn complete(&mut self, ticket: Ticket, outcome: Outcome) {
        self.completions.push(Completion { ticket, outcome });
    }

    /// Handles one input. Nothing is sent or persisted until
    /// [`NodeCore::process_ready`].
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Propose { ticket, mut txn } => {
                txn.request_id = self.unique_id(self.next_request);
                self.next_request = self.next_request.wrapping_add(1);
                self.propose(self.now, ticket, txn);
            }
            Input::ReadIndex { ticket } => self.read_batch.push(ticket),
            Input::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(error = %e, "dropped raft message");
                }
            }
            Input::ConfChange { ticket, cc } => {
                // The entry's context names the request, so that only its
                // own proposer completes when it applies.
                let id = self.unique_id(self.next_request);
                self.next_request = self.next_request.wrapping_add(1);
                match self.raw.propose_conf_change(id.to_le_bytes().to_vec(), cc) {
                    Ok(()) => self.conf_changes.push((id, self.now, ticket)),
                    Err(e) => {
                        let e = self.not_leader_or(e);
                        self.complete(ticket, Outcome::ConfChange(Err(e)));
                    }
                }
            }
            Input::TransferLeader { to } => self.raw.transfer_leader(to),
            Input::Snapshot { ticket } => self.snapshot_waiters.push(ticket),
            Input::ReportUnreachable { id } => self.raw.report_unreachable(id),
            Input::ReportSnapshot { id, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                if !ok {
                    self.snapshots_sent.remove(&id);
                }
                self.raw.report_snapshot(id, status);
            }
        }
        self.rerandomize_election_timeout(false);
    }

    /// How long a request may wait for a leader to be known before it
    /// fails with [`StoreError::NoLeader`]: two election timeouts, time
    /// enough for a normal election, short enough that a master cut off
    /// from the majority refuses promptly.
    fn no_leader_ticks(&self) -> u64 {
        2 * self.opts.election_tick as u64
    }

    fn leader_known(&self) -> bool {
        self.raw.raft.leader_id != raft::INVALID_ID
    }

    /// Whether no leader has been known for [`NodeCore::no_leader_ticks`]:
    /// this master is likely cut off from the majority, and waiting again
    /// would only delay the caller's 503.
    fn long_leaderless(&self) -> bool {
        !self.leader_known()
            && self
                .leaderless_since
                .is_some_and(|t| self.now.saturating_sub(t) >= self.no_leader_ticks())
    }

    fn not_leader_or(&self, e: raft::Error) -> StoreError {
        match e {
            raft::Error::ProposalDropped => StoreError::NoLeader {
                leader: self.raw.raft.leader_id,
            },
            other => StoreError::Raft(other),
        }
    }

    fn propose(&mut self, created: u64, ticket: Ticket, txn: Txn) {
        let data = txn.encode();
        match self.raw.propose(Vec::new(), data.clone()) {
            Ok(()) => {
                let view = (self.raw.raft.leader_id, self.raw.raft.term);
                self.proposals.insert(
                    txn.request_id,
                    PendingProposal {
                        ticket,
                        created,
                        data,
                        view,
                    },
                );
            }
            Err(raft::Error::ProposalDropped) if self.long_leaderless() => {
                let leader = self.raw.raft.leader_id;
                self.complete(ticket, Outcome::Txn(Err(StoreError::NoLeader { leader })));
            }
            Err(raft::Error::ProposalDropped) => self.deferred.push((created, ticket, txn)),
            Err(e) => self.complete(ticket, Outcome::Txn(Err(StoreError::Raft(e)))),
        }
    }

    /// When leadership moves, proposals still pending here may have been
    /// lost with the old leader (forwarded to a master that died, or
    /// appended to a log that will be truncated): propose them again to the
    /// new leader rather than let their callers wait out the timeout. This
    /// is safe because the state machine applies a request id once; a copy
    /// that did commit makes the second one a no-op.
    fn repropose_on_leader_change(&mut self) {
        let view = (self.raw.raft.leader_id, self.raw.raft.term);
        if view == self.proposal_view || view.0 == raft::INVALID_ID {
            return;
        }
        self.proposal_view = view;
        let raw = &mut self.raw;
        for p in self.proposals.values_mut() {
            if p.view != view && raw.propose(Vec::new(), p.data.clone()).is_ok() {
                p.view = view;
            }
        }
    }

    fn expired(&self, created: u64) -> bool {
        self.now.saturating_sub(created) >= self.timeout_ticks
    }

    /// One Raft tick (the caller decides when), plus the request timeouts
    /// counted in ticks.
    pub fn tick(&mut self) {
        self.now += 1;
        self.raw.tick();
        self.rerandomize_election_timeout(false);
        if self.leader_known() {
            self.leaderless_since = None;
        } else if self.leaderless_since.is_none() {
            self.leaderless_since = Some(self.now);
        }
        // Retry proposals dropped for lack of a leader. Never handed to
        // raft, they certainly did not apply: NoLeader says so (503).
        for (created, ticket, txn) in std::mem::take(&mut self.deferred) {
            let waited = self.now.saturating_sub(created);
            if self.expired(created) || (!self.leader_known() && waited >= self.no_leader_ticks()) {
                let leader = self.raw.raft.leader_id;
                self.complete(ticket, Outcome::Txn(Err(StoreError::NoLeader { leader })));
            } else if self.leader_known() {
                self.propose(created, ticket, txn);
            } else {
                self.deferred.push((created, ticket, txn));
            }
        }
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| self.expired(p.created))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.proposals.remove(&id) {
                self.complete(
                    p.ticket,
                    Outcome::Txn(Err(StoreError::Timeout {
                        what: "write waiting to be committed".into(),
                    })),
                );
            }
        }
        let (conf_expired, conf_live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.conf_changes)
            .into_iter()
            .partition(|(_, c, _)| self.expired(*c));
        self.conf_changes = conf_live;
        for (_, _, ticket) in conf_expired {
            self.complete(
                ticket,
                Outcome::ConfChange(Err(StoreError::Timeout {
                    what: "membership change waiting to be committed".into(),
                })),
            );
        }
        // Re-issue reads raft dropped (e.g. a new leader that has not yet
        // committed in its term); fail those past the deadline.
        let mut reissue = Vec::new();
        let mut dead = Vec::new();
        let leaderless = !self.leader_known();
        let no_leader_ticks = self.no_leader_ticks();
        // About a heartbeat (at least two ticks) between re-issues.
        let reissue_ticks = (self.opts.heartbeat_tick as u64).max(2);
        for (id, p) in self.reads_in_flight.iter_mut() {
            let waited = self.now.saturating_sub(p.created);
            if waited >= self.timeout_ticks || (leaderless && waited >= no_leader_ticks) {
                dead.push(*id);
            } else if self.now.saturating_sub(p.issued) >= reissue_ticks {
                p.issued = self.now;
                reissue.push(*id);
            }
        }
        for id in dead {
            if let Some(p) = self.reads_in_flight.remove(&id) {
                for ticket in p.tickets {
                    // A read has no effect: failing it is always safe.
                    let err = if leaderless {
                        StoreError::NoLeader { leader: 0 }
                    } else {
                        StoreError::Timeout {
                            what: "linearizable read waiting for the Raft leader".into(),
                        }
                    };
                    self.complete(ticket, Outcome::ReadIndex(Err(err)));
                }
            }
        }
        for id in reissue {
            self.raw.read_index(id.to_le_bytes().to_vec());
        }
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting)
            .into_iter()
            .partition(|(_, created, _)| self.expired(*created));
        self.reads_waiting = waiting;
        for (index, _, tickets) in late {
            for ticket in tickets {
                self.complete(
                    ticket,
                    Outcome::ReadIndex(Err(StoreError::Timeout {
                        what: format!("linearizable read waiting to apply index {index}"),
                    })),
                );
            }
        }
        self.retry_lost_snapshots();
    }

    /// A follower in raft-rs' Snapshot state gets nothing more until the
    /// snapshot is reported; if the message was lost, it would wait forever.
    /// So a snapshot not taken within the request timeout is reported as
    /// failed, which makes the leader probe the follower and send again.
    fn retry_lost_snapshots(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            self.snapshots_sent.clear();
            return;
        }
        let mut failed = Vec::new();
        let prs = self.raw.raft.prs();
        self.snapshots_sent.retain(|&to, &mut sent| {
            let pending = prs
                .get(to)
                .is_some_and(|pr| pr.state == ProgressState::Snapshot);
            if pending && self.now.saturating_sub(sent) >= self.timeout_ticks {
                failed.push(to);
                return false;
            }
            pending
        });
        for to in failed {
            tracing::info!(
                follower = to,
                "snapshot not taken in time, sending it again"
            );
            self.raw.report_snapshot(to, SnapshotStatus::Failure);
        }
    }

    /// Hands messages to the transport, noting snapshots sent.
    fn send(&mut self, msgs: Vec<Message>) {
        for m in &msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.insert(m.to, self.now);
            }
        }
        self.transport.send(msgs);
    }

    fn flush_reads(&mut self) {
        if self.read_batch.is_empty() {
            return;
        }
        if self.long_leaderless() {
            for ticket in std::mem::take(&mut self.read_batch) {
                self.complete(
                    ticket,
                    Outcome::ReadIndex(Err(StoreError::NoLeader { leader: 0 })),
                );
            }
            return;
        }
        let id = self.unique_id(self.next_read);
        self.next_read = self.next_read.wrapping_add(1);
        self.reads_in_flight.insert(
            id,
            PendingRead {
                issued: self.now,
                created: self.now,
                tickets: std::mem::take(&mut self.read_batch),
            },
        );
        self.raw.read_index(id.to_le_bytes().to_vec());
    }

    /// Raft's progress, as `cluster status` shows it.
    pub fn status(&self) -> RaftStatus {
        let r = &self.raw.raft;
        let conf = r.prs().conf();
        let mut voters: Vec<u64> = conf.voters().ids().iter().collect();
        voters.sort_unstable();
        let mut learners: Vec<u64> = conf.learners().iter().copied().collect();
        learners.sort_unstable();
        let progress = if r.state == StateRole::Leader {
            let mut p: Vec<PeerProgress> = r
                .prs()
                .iter()
                .map(|(id, pr)| PeerProgress {
                    id: *id,
                    matched: pr.matched,
                    state: match pr.state {
                        ProgressState::Probe => "Probe",
                        ProgressState::Replicate => "Replicate",
                        ProgressState::Snapshot => "Snapshot",
                    },
                    recent_active: pr.recent_active,
                })
                .collect();
            p.sort_by_key(|p| p.id);
            p
        } else {
            Vec::new()
        };
        RaftStatus {
            id: self.opts.id,
            leader: r.leader_id,
            term: r.term,
            role: match r.state {
                StateRole::Leader => "Leader",
                StateRole::Follower => "Follower",
                StateRole::Candidate => "Candidate",
                StateRole::PreCandidate => "PreCandidate",
            },
            commit: r.raft_log.committed,
            applied: r.raft_log.applied,
            first_index: self.storage.mem.first_index().unwrap_or(0),
            last_index: r.raft_log.last_index(),
            snapshot_index: self.last_snapshot,
            voters,
            learners,
            progress,
        }
    }

    fn publish_status(&self) {
        let status = self.status();
        let mut cur = self.shared.status.lock();
        if *cur != status {
            *cur = status;
        }
    }

    fn publish_role(&self) {
        let info = self.role();
        self.shared.role.send_if_modified(|cur| {
            if *cur != info {
                *cur = info;
                true
            } else {
                false
            }
        });
    }

    /// One Ready cycle: issues the batched read barriers, sends, applies and
    /// persists (with one sync), then takes a snapshot if one is due. An
    /// error is fatal: the core must not be used afterwards.
    pub fn process_ready(&mut self) -> Result<(), StoreError> {
        self.flush_reads();
        if !self.raw.has_ready() {
            self.maybe_snapshot()?;
            self.publish_status();
            return Ok(());
        }
        let mut rd = self.raw.ready();
        if rd.ss().is_some() || rd.hs().is_some() {
            self.publish_role();
        }
        if !rd.messages().is_empty() {
            self.send(rd.take_messages());
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
            self.send(rd.take_persisted_messages());
        }
        for rs in rd.take_read_states() {
            let mut id = [0u8; 8];
            if rs.request_ctx.len() == 8 {
                id.copy_from_slice(&rs.request_ctx);
            }
            if let Some(p) = self.reads_in_flight.remove(&u64::from_le_bytes(id)) {
                self.reads_waiting.push((rs.index, p.created, p.tickets));
            }
        }
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.storage.mem.wl().mut_hard_state().set_commit(commit);
        }
        if !light.messages().is_empty() {
            self.send(light.take_messages());
        }
        self.apply_committed(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.publish_role();
        self.resolve_reads();
        self.repropose_on_leader_change();
        self.maybe_snapshot()?;
        self.publish_status();
        Ok(())
    }

    fn resolve_reads(&mut self) {
        let applied = self.shared.state.read().applied();
        let mut still = Vec::new();
        for (index, created, tickets) in std::mem::take(&mut self.reads_waiting) {
            if index <= applied {
                for ticket in tickets {
                    self.complete(ticket, Outcome::ReadIndex(Ok(index)));
                }
            } else {
                still.push((index, created, tickets));
            }
        }
        self.reads_waiting = still;
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut events: Vec<Event> = Vec::new();
        let mut done: Vec<(Ticket, Outcome)> = Vec::new();
        let mut last = 0;
        {
            let mut sm = self.shared.state.write();
            for e in entries {
                last = e.index;
                if let Some(log) = self.apply_log.as_mut() {
                    log.push(ApplyRecord::Entry {
                        index: e.index,
                        term: e.term,
                        data: e.data.clone(),
                    });
                }
                match e.get_entry_type() {
                    EntryType::EntryNormal if e.data.is_empty() => sm.apply_empty(e.index),
                    EntryType::EntryNormal => match Txn::decode_bytes(&e.data) {
                        Ok(txn) => {
                            // A duplicate (the proposal was delivered twice)
                            // is skipped; whoever waits got the first copy's
                            // answer, or times out if a snapshot covered it.
                            if let Some(outcome) =
                                sm.apply_txn_once(e.index, e.term, &txn, &mut events)
                                && let Some(p) = self.proposals.remove(&txn.request_id)
                            {
                                done.push((
                                    p.ticket,
                                    Outcome::Txn(outcome.map_err(StoreError::Apply)),
                                ));
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
                                    if let Some(ticket) =
                                        take_conf_change(&mut self.conf_changes, &e.context)
                                    {
                                        done.push((ticket, Outcome::ConfChange(Ok(cs))));
                                    }
                                }
                                Err(err) => {
                                    tracing::warn!(index = e.index, error = %err, "configuration change refused");
                                    if let Some(ticket) =
                                        take_conf_change(&mut self.conf_changes, &e.context)
                                    {
                                        done.push((
                                            ticket,
                                            Outcome::ConfChange(Err(StoreError::Raft(err))),
                                        ));
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
        self.shared.applied.send_replace(last);
        for (ticket, outcome) in done {
            self.complete(ticket, outcome);
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
        if let Some(log) = self.apply_log.as_mut() {
            log.push(ApplyRecord::Snapshot {
                index: meta.index,
                term: meta.term,
            });
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
        self.shared.applied.send_replace(meta.index);
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
        for ticket in std::mem::take(&mut self.snapshot_waiters) {
            self.complete(ticket, Outcome::Snapshot(Ok(applied)));
        }
        Ok(())
    }
}

/// The waiting membership change whose entry carried `context`.
fn take_conf_change(waiting: &mut Vec<(u64, u64, Ticket)>, context: &[u8]) -> Option<Ticket> {
    let id = u64::from_le_bytes(context.try_into().ok()?);
    let pos = waiting.iter().position(|(i, _, _)| *i == id)?;
    Some(waiting.remove(pos).2)
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the threaded shell is asked to do (the [`Input`]s, with the channel
/// to answer on).
pub(crate) enum Command {
    Propose {
        txn: Txn,
        reply: Reply<Applied>,
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
    ReportUnreachable {
        id: u64,
    },
    ReportSnapshot {
        id: u64,
        ok: bool,
    },
    Shutdown,
}

/// A caller waiting for a request's completion.
enum Waiter {
    Txn(Reply<Applied>),
    Read(Reply<u64>),
    ConfChange(Reply<ConfState>),
    Snapshot(Reply<u64>),
}

/// The threaded shell around [`NodeCore`]: one OS thread, the wall clock,
/// and oneshot channels to the callers.
pub(crate) struct Driver {
    core: NodeCore,
    waiters: HashMap<Ticket, Waiter>,
    next_ticket: Ticket,
}

impl Driver {
    pub(crate) fn new(core: NodeCore) -> Driver {
        Driver {
            core,
            waiters: HashMap::new(),
            next_ticket: 1,
        }
    }

    /// Runs until shutdown or a fatal storage error.
    pub(crate) fn run(mut self, rx: Receiver<Command>) {
        let shared = self.core.shared();
        let tick = self.core.opts.tick;
        let mut next_tick = Instant::now() + tick;
        let result = (|| -> Result<(), StoreError> {
            loop {
                let wait = next_tick.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            return Ok(());
                        }
                        // Drain what else is queued into the same cycle.
                        for _ in 0..4096 {
                            match rx.try_recv() {
                                Ok(cmd) => {
                                    if !self.handle(cmd) {
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
                    self.core.tick();
                    next_tick = now + tick;
                }
                let r = self.core.process_ready();
                self.dispatch();
                r?;
            }
        })();
        let reason = match result {
            Ok(()) => "store stopped".to_string(),
            Err(e) => {
                tracing::error!(error = %e, "raft driver stopped on a fatal error");
                format!("store failed: {e}")
            }
        };
        *shared.failed.lock() = Some(reason.clone());
        self.core.fail_all(&reason);
        self.dispatch();
        // Callers whose request the core never saw learn it from the drop.
        self.waiters.clear();
    }

    /// Handles one command; false means shut down.
    fn handle(&mut self, cmd: Command) -> bool {
        let ticket = self.next_ticket;
        let input = match cmd {
            Command::Propose { txn, reply } => {
                self.waiters.insert(ticket, Waiter::Txn(reply));
                Input::Propose { ticket, txn }
            }
            Command::ReadIndex { reply } => {
                self.waiters.insert(ticket, Waiter::Read(reply));
                Input::ReadIndex { ticket }
            }
            Command::ConfChange { cc, reply } => {
                self.waiters.insert(ticket, Waiter::ConfChange(reply));
                Input::ConfChange { ticket, cc }
            }
            Command::Snapshot { reply } => {
                self.waiters.insert(ticket, Waiter::Snapshot(reply));
                Input::Snapshot { ticket }
            }
            Command::Step(m) => Input::Step(m),
            Command::TransferLeader { to } => Input::TransferLeader { to },
            Command::ReportUnreachable { id } => Input::ReportUnreachable { id },
            Command::ReportSnapshot { id, ok } => Input::ReportSnapshot { id, ok },
            Command::Shutdown => return false,
        };
        self.next_ticket += 1;
        self.core.handle(input);
        true
    }

    /// Hands completions to their callers. A caller that went away is fine.
    fn dispatch(&mut self) {
        for c in self.core.take_completions() {
            let Some(w) = self.waiters.remove(&c.ticket) else {
                continue;
            };
            let _ = match (w, c.outcome) {
                (Waiter::Txn(r), Outcome::Txn(o)) => r.send(o).is_ok(),
                (Waiter::Read(r), Outcome::ReadIndex(o)) => r.send(o).is_ok(),
                (Waiter::ConfChange(r), Outcome::ConfChange(o)) => r.send(o).is_ok(),
                (Waiter::Snapshot(r), Outcome::Snapshot(o)) => r.send(o).is_ok(),
                // Cannot happen (the ticket's kind is fixed); dropping the
                // sender tells the caller the store gave no answer.
                _ => false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ApplyError;
    use crate::store::command::Op;
    use crate::store::durable::{MemDurable, Recovered};

    /// A transport the test routes by hand.
    #[derive(Clone, Default)]
    struct Queue(Arc<parking_lot::Mutex<Vec<Message>>>);

    impl Transport for Queue {
        fn send(&self, messages: Vec<Message>) {
            self.0.lock().extend(messages);
        }
    }

    /// A MemDurable the test keeps a handle to, to crash it.
    #[derive(Clone, Default)]
    struct Disk(Arc<parking_lot::Mutex<MemDurable>>);

    impl Durable for Disk {
        fn recover(&mut self) -> Result<Recovered, StoreError> {
            self.0.lock().recover()
        }
        fn append_entries(&mut self, e: &[Entry]) -> Result<(), StoreError> {
            self.0.lock().append_entries(e)
        }
        fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
            self.0.lock().set_hard_state(hs)
        }
        fn sync(&mut self) -> Result<(), StoreError> {
            self.0.lock().sync()
        }
        fn save_snapshot(&mut self, m: &SnapshotMetadata, d: &[u8]) -> Result<(), StoreError> {
            self.0.lock().save_snapshot(m, d)
        }
    }

    struct Cluster {
        n: u64,
        /// Log entries between snapshots.
        snapshot_every: u64,
        cores: Vec<NodeCore>,
        queues: Vec<Queue>,
        disks: Vec<Disk>,
        completions: Vec<Vec<Completion>>,
    }

    fn cluster(n: u64, snapshot_every: u64) -> Cluster {
        let mut c = Cluster {
            n,
            snapshot_every,
            cores: Vec::new(),
            queues: (0..n).map(|_| Queue::default()).collect(),
            disks: (0..n).map(|_| Disk::default()).collect(),
            completions: (0..n).map(|_| Vec::new()).collect(),
        };
        for id in 1..=n {
            let core = c.boot(id);
            c.cores.push(core);
        }
        c
    }

    impl Cluster {
        fn boot(&self, id: u64) -> NodeCore {
            let i = (id - 1) as usize;
            let opts = RaftOptions {
                id,
                voters: (1..=self.n).collect(),
                tick: Duration::from_millis(10),
                election_tick: 10,
                heartbeat_tick: 2,
                snapshot_every: self.snapshot_every,
                keep_entries: 0,
                request_timeout: Duration::from_millis(500),
            };
            let mut core = NodeCore::new(
                opts,
                HistoryLimits::default(),
                None,
                Box::new(self.disks[i].clone()),
                Arc::new(self.queues[i].clone()),
            )
            .unwrap();
            core.seed(id);
            core
        }

        /// Crashes master `id` (losing unsynced writes) and starts it again
        /// without a seed, as production does.
        fn restart_unseeded(&mut self, id: u64) {
            let i = (id - 1) as usize;
            let crashed = self.disks[i].0.lock().crash();
            *self.disks[i].0.lock() = crashed;
            self.queues[i].0.lock().clear();
            self.cores[i] = NodeCore::new(
                self.cores[i].opts.clone(),
                HistoryLimits::default(),
                None,
                Box::new(self.disks[i].clone()),
                Arc::new(self.queues[i].clone()),
            )
            .unwrap();
        }

        fn core(&mut self, id: u64) -> &mut NodeCore {
            &mut self.cores[(id - 1) as usize]
        }

        fn propose(&mut self, id: u64, ticket: Ticket, op: Op) {
            self.core(id).handle(Input::Propose {
                ticket,
                txn: Txn {
                    request_id: 0,
                    ops: vec![op],
                    fence_term: 0,
                },
            });
        }

        fn process(&mut self) {
            for (c, done) in self.cores.iter_mut().zip(&mut self.completions) {
                c.process_ready().unwrap();
                done.extend(c.take_completions());
            }
        }

        /// Ticks everyone once, then delivers messages until quiet, except
        /// those `lose` says are lost.
        fn round(&mut self, lose: &mut dyn FnMut(&Message) -> bool) {
            for c in &mut self.cores {
                c.tick();
            }
            self.process();
            for _ in 0..20 {
                let msgs: Vec<Message> = self
                    .queues
                    .iter()
                    .flat_map(|q| q.0.lock().drain(..).collect::<Vec<_>>())
                    .collect();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    if !lose(&m) {
                        self.cores[(m.to - 1) as usize].handle(Input::Step(Box::new(m)));
                    }
                }
                self.process();
            }
        }

        fn leader(&self) -> Option<u64> {
            self.cores
                .iter()
                .find(|c| c.role().is_leader)
                .map(|c| c.id())
        }

        fn applied(&self, id: u64) -> u64 {
            self.cores[(id - 1) as usize].state().applied()
        }
    }

    fn elect(c: &mut Cluster) -> u64 {
        for _ in 0..100 {
            c.round(&mut |_| false);
            if let Some(l) = c.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    #[test]
    fn a_lost_snapshot_is_sent_again() {
        let mut c = cluster(3, 5);
        let leader = elect(&mut c);
        let lagging = if leader == 3 { 2 } else { 3 };
        // Cut the follower off while the leader writes and compacts its log
        // past what the follower has: it can only catch up by snapshot.
        for i in 0..20 {
            c.propose(leader, i, Op::create(format!("cm/{i}"), b"{}".to_vec()));
            c.round(&mut |m| m.to == lagging || m.from == lagging);
        }
        assert!(c.applied(leader) >= 20);
        assert!(c.applied(lagging) < 5);
        // Reconnect, but lose the first snapshot sent.
        let mut lost = 0;
        for _ in 0..300 {
            c.round(&mut |m| {
                let drop = m.get_msg_type() == MessageType::MsgSnapshot && lost == 0;
                lost += u32::from(drop);
                drop
            });
            if c.applied(lagging) == c.applied(leader) {
                break;
            }
        }
        assert_eq!(lost, 1, "the scenario must lose a snapshot");
        assert_eq!(
            c.applied(lagging),
            c.applied(leader),
            "the follower never caught up after its snapshot was lost"
        );
        assert_eq!(c.cores[(lagging - 1) as usize].state().count("cm/"), 20);
    }

    fn name_of(applied: &Applied) -> String {
        let obj = applied.objects[0].as_ref().unwrap();
        let v: serde_json::Value = serde_json::from_slice(obj).unwrap();
        v["metadata"]["name"].as_str().unwrap().to_string()
    }

    /// A master restarted after proposing must not take the old proposal's
    /// entry for a new request (request ids used to restart from 1).
    #[test]
    fn a_restarted_master_does_not_reuse_request_ids() {
        let mut c = cluster(3, 1000);
        let leader = elect(&mut c);
        let f = if leader == 1 { 2 } else { 1 };
        // Both runs of the follower take ids as production does (unseeded).
        c.restart_unseeded(f);
        for _ in 0..50 {
            if c.core(f).role().leader == leader {
                break;
            }
            c.round(&mut |_| false);
        }
        assert_eq!(c.core(f).role().leader, leader);
        // The old proposal reaches the leader and commits, but the follower
        // hears nothing of it before it crashes.
        c.propose(
            f,
            1,
            Op::create("cm/old", br#"{"metadata":{"name":"old"}}"#.to_vec()),
        );
        c.round(&mut |m| m.to == f);
        c.restart_unseeded(f);
        c.propose(
            f,
            2,
            Op::create("cm/new", br#"{"metadata":{"name":"new"}}"#.to_vec()),
        );
        for _ in 0..50 {
            c.round(&mut |_| false);
        }
        let done = &c.completions[(f - 1) as usize];
        let new = done
            .iter()
            .find(|d| d.ticket == 2)
            .expect("the new request completed");
        match &new.outcome {
            Outcome::Txn(Ok(applied)) => assert_eq!(name_of(applied), "new"),
            other => panic!("the new request failed: {other:?}"),
        }
        assert!(c.core(f).state().get("cm/old").is_some());
    }

    /// A proposal the network delivers twice (so the leader appends it
    /// twice) applies once: here an unconditional delete must not remove
    /// an object created after the first copy applied.
    #[test]
    fn a_proposal_delivered_twice_applies_once() {
        let mut c = cluster(3, 1000);
        let leader = elect(&mut c);
        let f = if leader == 1 { 2 } else { 1 };
        let obj =
            |v: &str| format!(r#"{{"metadata":{{"name":"k"}},"data":{{"v":"{v}"}}}}"#).into_bytes();
        c.propose(leader, 1, Op::create("cm/k", obj("1")));
        c.round(&mut |_| false);
        c.propose(f, 2, Op::delete("cm/k", None));
        let mut copy = None;
        c.round(&mut |m| {
            if m.get_msg_type() == MessageType::MsgPropose {
                copy = Some(m.clone());
            }
            false
        });
        let copy = copy.expect("the follower forwarded its proposal");
        for _ in 0..5 {
            c.round(&mut |_| false);
        }
        assert!(c.core(leader).state().get("cm/k").is_none());
        c.propose(leader, 3, Op::create("cm/k", obj("2")));
        c.round(&mut |_| false);
        // The late duplicate.
        c.core(leader).handle(Input::Step(Box::new(copy)));
        for _ in 0..5 {
            c.round(&mut |_| false);
        }
        for id in 1..=3 {
            let sm = c.core(id).state();
            assert!(
                sm.get("cm/k").is_some(),
                "master {id} applied the delete twice"
            );
        }
    }

    /// Leader-only writers fence their writes to the term they were elected
    /// in: once leadership has moved, a write from the deposed leader is
    /// refused even though it reaches the new leader's log.
    #[test]
    fn a_deposed_leaders_fenced_write_is_refused() {
        let mut c = cluster(3, 1000);
        let old = elect(&mut c);
        let old_term = c.core(old).role().term;
        // Cut the leader off until the others elect a new one.
        let mut new = None;
        for _ in 0..200 {
            c.round(&mut |m| m.from == old || m.to == old);
            new = c
                .cores
                .iter()
                .find(|k| k.role().is_leader && k.id() != old)
                .map(|k| k.id());
            if new.is_some() {
                break;
            }
        }
        let new = new.expect("the majority elected a new leader");
        for _ in 0..100 {
            if c.core(old).role().leader == new {
                break;
            }
            c.round(&mut |_| false);
        }
        assert_eq!(c.core(old).role().leader, new, "the old leader follows");
        assert!(c.core(new).role().term > old_term);
        // The old leader's control loops still write with their old term.
        c.core(old).handle(Input::Propose {
            ticket: 77,
            txn: Txn {
                request_id: 0,
                ops: vec![Op::create("cm/late", b"{}".to_vec())],
                fence_term: old_term,
            },
        });
        for _ in 0..10 {
            c.round(&mut |_| false);
        }
        let done = &c.completions[(old - 1) as usize];
        let outcome = &done
            .iter()
            .find(|d| d.ticket == 77)
            .expect("answered")
            .outcome;
        assert!(
            matches!(
                outcome,
                Outcome::Txn(Err(StoreError::Apply(ApplyError::Fenced { .. })))
            ),
            "{outcome:?}"
        );
        for id in 1..=3 {
            assert!(c.core(id).state().get("cm/late").is_none());
        }
    }

    /// A master cut off from the others refuses a write with NoLeader once
    /// it knows no leader, well before the request timeout.
    #[test]
    fn a_write_without_leader_fails_fast() {
        let mut c = cluster(3, 1000);
        let leader = elect(&mut c);
        let f = if leader == 1 { 2 } else { 1 };
        let mut rounds = 0;
        while c.core(f).role().leader != 0 {
            c.round(&mut |m| m.from == f || m.to == f);
            rounds += 1;
            assert!(rounds < 200, "the isolated follower kept its leader");
        }
        c.propose(f, 5, Op::create("cm/x", b"{}".to_vec()));
        let timeout = c.core(f).timeout_ticks;
        let mut waited = 0;
        let outcome = loop {
            c.round(&mut |m| m.from == f || m.to == f);
            waited += 1;
            let done = &mut c.completions[(f - 1) as usize];
            if let Some(pos) = done.iter().position(|d| d.ticket == 5) {
                break done.remove(pos).outcome;
            }
            assert!(waited < timeout, "no answer before the request timeout");
        };
        assert!(
            matches!(outcome, Outcome::Txn(Err(StoreError::NoLeader { .. }))),
            "{outcome:?}"
        );
        assert!(waited <= 2 * c.core(f).opts.election_tick as u64 + 1);
        // Still cut off: later writes and reads fail without waiting again.
        c.propose(f, 6, Op::create("cm/y", b"{}".to_vec()));
        c.core(f).handle(Input::ReadIndex { ticket: 7 });
        c.process();
        let done = &c.completions[(f - 1) as usize];
        for ticket in [6, 7] {
            let d = done.iter().find(|d| d.ticket == ticket);
            assert!(
                matches!(
                    d.map(|d| &d.outcome),
                    Some(Outcome::Txn(Err(StoreError::NoLeader { .. })))
                        | Some(Outcome::ReadIndex(Err(StoreError::NoLeader { .. })))
                ),
                "ticket {ticket}: {:?}",
                d.map(|d| &d.outcome)
            );
        }
    }

    /// A master added to a cluster whose log was compacted catches up by a
    /// snapshot naming it (the one taken before it was added would not).
    #[test]
    fn an_added_learner_catches_up_by_snapshot() {
        use raft::eraftpb::{ConfChangeSingle, ConfChangeType};
        let mut c = cluster(3, 5);
        let leader = elect(&mut c);
        for i in 0..12 {
            c.propose(leader, i, Op::create(format!("cm/{i}"), b"{}".to_vec()));
            c.round(&mut |_| false);
        }
        assert!(c.core(leader).raw_node().raft.raft_log.first_index() > 1);
        // The new master starts empty and waits for the leader.
        c.queues.push(Queue::default());
        c.disks.push(Disk::default());
        c.completions.push(Vec::new());
        let opts = RaftOptions {
            id: 4,
            voters: Vec::new(),
            ..c.cores[0].opts.clone()
        };
        let mut joiner = NodeCore::new(
            opts,
            HistoryLimits::default(),
            None,
            Box::new(c.disks[3].clone()),
            Arc::new(c.queues[3].clone()),
        )
        .unwrap();
        joiner.seed(4);
        c.cores.push(joiner);
        let cc = ConfChangeV2 {
            changes: vec![ConfChangeSingle {
                change_type: ConfChangeType::AddLearnerNode as i32,
                node_id: 4,
            }],
            ..Default::default()
        };
        c.core(leader).handle(Input::ConfChange { ticket: 100, cc });
        for _ in 0..200 {
            c.round(&mut |_| false);
            if c.applied(4) == c.applied(leader) {
                break;
            }
        }
        let done = &c.completions[(leader - 1) as usize];
        match &done
            .iter()
            .find(|d| d.ticket == 100)
            .expect("answered")
            .outcome
        {
            Outcome::ConfChange(Ok(cs)) => assert_eq!(cs.learners, vec![4]),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.applied(4), c.applied(leader));
        assert_eq!(c.core(4).state().count("cm/"), 12);
        // Only the proposer of a membership change hears of it.
        for id in (1..=4).filter(|i| *i != leader) {
            assert!(
                c.completions[(id - 1) as usize]
                    .iter()
                    .all(|d| !matches!(d.outcome, Outcome::ConfChange(_)))
            );
        }
        let status = c.core(leader).status();
        assert_eq!(status.learners, vec![4]);
        assert_eq!(status.voters, vec![1, 2, 3]);
        assert_eq!(status.progress.len(), 4);
    }

    /// A write forwarded to a leader that then dies is proposed again to
    /// the next leader: its caller gets an answer soon after the election,
    /// not at the request timeout, and the write applies once.
    #[test]
    fn a_write_lost_with_its_leader_is_proposed_again() {
        let mut c = cluster(3, 1000);
        let dead = elect(&mut c);
        let f = if dead == 1 { 2 } else { 1 };
        c.propose(
            f,
            7,
            Op::create("cm/k", br#"{"metadata":{"name":"k"}}"#.to_vec()),
        );
        let timeout = c.core(f).timeout_ticks;
        let mut rounds = 0;
        let outcome = loop {
            // The leader is gone: nothing reaches it, nothing leaves it.
            c.round(&mut |m| m.to == dead || m.from == dead);
            rounds += 1;
            let done = &mut c.completions[(f - 1) as usize];
            if let Some(pos) = done.iter().position(|d| d.ticket == 7) {
                break done.remove(pos).outcome;
            }
            assert!(rounds < timeout, "no answer before the request timeout");
        };
        assert!(matches!(outcome, Outcome::Txn(Ok(_))), "{outcome:?}");
        let new = c
            .cores
            .iter()
            .find(|k| k.role().is_leader && k.id() != dead)
            .map(|k| k.id())
            .expect("a new leader");
        for _ in 0..5 {
            c.round(&mut |m| m.to == dead || m.from == dead);
        }
        assert_eq!(c.core(new).state().count("cm/"), 1);
    }

    #[test]
    fn request_timeouts_count_ticks() {
        let opts = RaftOptions {
            tick: Duration::from_millis(100),
            request_timeout: Duration::from_millis(1050),
            ..Default::default()
        };
        assert_eq!(opts.request_timeout_ticks(), 11);
        let zero = RaftOptions {
            request_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(zero.request_timeout_ticks(), 1);
    }
}
