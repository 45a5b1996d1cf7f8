//! The simulation: N masters ([`NodeCore`]s on crashable in-memory disks)
//! on a simulated network, clients issuing creates, compare-and-swap
//! updates, deletes and linearizable reads against random masters, and a
//! nemesis injecting faults, all driven by one event queue and one seeded
//! generator. Nothing reads a clock or iterates an unordered map, so a seed
//! fixes the whole run.
//!
//! A run has two phases. During the workload (`duration` ms) clients issue
//! operations and the nemesis strikes. Then the network heals, crashed
//! masters restart, clients stop, and the cluster must converge: one leader,
//! every master holding and having applied the same log. Invariants are
//! checked as the run goes; the history is checked for linearizability at
//! the end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::Message;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use wasmk::store::node::{Completion, Input, Outcome, Ticket};
use wasmk::store::state::StateMachine;
use wasmk::store::{ApplyError, HistoryLimits, NodeCore, Op, RaftOptions, StoreError, Txn};

use crate::invariants::{self, Broken, Invariants, Log};
use crate::linearizability::{self, Call, Operation, Ret, ValueId, Verdict};
use crate::network::{NetConfig, Network, Outbox, SimDisk};

/// Milliseconds per Raft tick.
pub const TICK_MS: u64 = 10;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// A reliable network and no faults.
    Calm,
    /// Message loss, duplication, delay and reordering.
    Lossy,
    /// Symmetric and one-way partitions, isolated leaders, leader transfers.
    Partitions,
    /// Crashes (also inside fsync), restarts, pauses, forced snapshots.
    Crashes,
    /// All of the above.
    Chaos,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Calm,
        Profile::Lossy,
        Profile::Partitions,
        Profile::Crashes,
        Profile::Chaos,
    ];
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Profile::Calm => "calm",
            Profile::Lossy => "lossy",
            Profile::Partitions => "partitions",
            Profile::Crashes => "crashes",
            Profile::Chaos => "chaos",
        };
        f.write_str(s)
    }
}

/// Everything that shapes a run; [`SimConfig::from_seed`] derives it all
/// from the seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub profile: Profile,
    /// Masters (ids 1..=nodes).
    pub nodes: u64,
    pub clients: usize,
    /// Keys the clients contend on.
    pub keys: usize,
    /// Milliseconds of workload and faults.
    pub duration: u64,
    /// The network during the workload.
    pub net: NetConfig,
    pub snapshot_every: u64,
    pub keep_entries: u64,
    /// Milliseconds the healed cluster gets to converge.
    pub settle_limit: u64,
    /// Linearizability search steps per key.
    pub check_budget: u64,
    /// Print the run's events to stderr.
    pub trace: bool,
}

impl SimConfig {
    /// The run for `seed`; the profile cycles with the seed so that any
    /// range of seeds mixes all fault schedules.
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c0f1_9000_0001);
        let profile = Profile::ALL[(seed % Profile::ALL.len() as u64) as usize];
        let net = match profile {
            Profile::Calm | Profile::Partitions | Profile::Crashes => NetConfig {
                drop: 0.0,
                duplicate: 0.0,
                min_delay: 1,
                max_delay: rng.random_range(2..=8),
            },
            Profile::Lossy | Profile::Chaos => NetConfig {
                drop: rng.random_range(0.0..0.25),
                duplicate: rng.random_range(0.0..0.2),
                min_delay: 1,
                max_delay: rng.random_range(5..=60),
            },
        };
        SimConfig {
            seed,
            profile,
            nodes: if rng.random_bool(0.5) { 3 } else { 5 },
            clients: rng.random_range(2..=8),
            keys: rng.random_range(1..=3),
            duration: rng.random_range(2000..=5000),
            net,
            snapshot_every: *[4u64, 10, 30, 1000].choose(&mut rng).unwrap_or(&1000),
            keep_entries: rng.random_range(0..=5),
            settle_limit: 30_000,
            check_budget: 2_000_000,
            trace: false,
        }
    }
}

/// A run that broke something: enough to understand and to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub profile: Profile,
    /// Simulated milliseconds at which it was found.
    pub at: u64,
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed={} profile={} at {} ms: {}",
            self.seed, self.profile, self.at, self.what
        )?;
        write!(
            f,
            "replay: RAFT_SIM_SEED={} cargo test -p raft-tests -- replay --nocapture   (add RAFT_SIM_TRACE=1 for the event trace)",
            self.seed
        )
    }
}

impl std::error::Error for Failure {}

/// What a successful run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub profile: Profile,
    pub nodes: u64,
    /// Operations with an answer, and without one (timeouts, crashes).
    pub answered: usize,
    pub unanswered: usize,
    /// Writes that applied (rv returned) and reads that saw an object.
    pub writes_applied: usize,
    pub reads_seen: usize,
    pub crashes: usize,
    pub terms: u64,
    /// Log index every master converged on.
    pub final_index: u64,
    /// Simulated milliseconds until convergence.
    pub end: u64,
    /// Most linearizability search steps one key needed.
    pub check_steps: u64,
    /// Hash of every event and result: equal seeds give equal fingerprints.
    pub fingerprint: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} profile={} nodes={} ops={}+{}? writes={} reads={} crashes={} terms={} index={} end={}ms check={}",
            self.seed,
            self.profile,
            self.nodes,
            self.answered,
            self.unanswered,
            self.writes_applied,
            self.reads_seen,
            self.crashes,
            self.terms,
            self.final_index,
            self.end,
            self.check_steps
        )
    }
}

/// Runs the simulation for `cfg`. A panic inside a master (raft-rs
/// asserts its invariants) is a failure of the run, not of the caller.
pub fn run(cfg: SimConfig) -> Result<Report, Failure> {
    run_with_history(cfg).0
}

/// Like [`run`], also returning the client history (for inspecting a
/// failure or tuning the checker).
pub fn run_with_history(cfg: SimConfig) -> (Result<Report, Failure>, Vec<Operation>) {
    let (seed, profile) = (cfg.seed, cfg.profile);
    let mut sim = Simulation::new(cfg);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let at = sim.now;
    let fail = |what| Failure {
        seed,
        profile,
        at,
        what,
    };
    let result = match result {
        Ok(r) => r.map_err(fail),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Err(fail(format!("panicked: {msg}")))
        }
    };
    (result, sim.history)
}

#[derive(Debug)]
enum Event {
    Tick {
        node: u64,
        incarnation: u64,
    },
    Ready {
        node: u64,
        incarnation: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        msg: Box<Message>,
    },
    /// A client's request reaching a master.
    Request {
        node: u64,
        ticket: Ticket,
    },
    ClientNext {
        client: usize,
    },
    Nemesis,
    Restart {
        node: u64,
    },
    EndWorkload,
    CheckConverged,
}

/// An event at a time; `seq` breaks ties in scheduling order.
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct SimNode {
    id: u64,
    /// None while crashed.
    core: Option<NodeCore>,
    disk: SimDisk,
    outbox: Outbox,
    /// Bumped by every crash, so events of a dead incarnation are ignored.
    incarnation: u64,
    ready_scheduled: bool,
    /// A paused master (a long GC or VM stall) does nothing until then.
    paused_until: u64,
    /// Applied index whose state digest was last reported.
    digest_at: u64,
    /// Milliseconds between this master's ticks: clocks run at different
    /// rates.
    tick_every: u64,
}

/// A client operation waiting at a master.
struct Pending {
    client: usize,
    /// Index in the history.
    op: usize,
    node: u64,
    /// What to hand the master (taken when it arrives).
    input: Option<Input>,
}

struct Client {
    busy: bool,
    /// resourceVersions this client saw per key, newest last.
    seen: BTreeMap<String, Vec<u64>>,
}

struct Simulation {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    net: Network,
    nodes: Vec<SimNode>,
    clients: Vec<Client>,
    history: Vec<Operation>,
    pending: BTreeMap<Ticket, Pending>,
    next_ticket: Ticket,
    next_value: ValueId,
    /// Logical clock of calls and returns (distinct, increasing).
    stamp: u64,
    inv: Invariants,
    /// Log indexes acknowledged to clients as applied writes.
    acked: BTreeMap<u64, usize>,
    workload_over: bool,
    converged: bool,
    crashes: usize,
    fingerprint: Sha256,
}

fn raft_options(cfg: &SimConfig, id: u64) -> RaftOptions {
    RaftOptions {
        id,
        voters: (1..=cfg.nodes).collect(),
        tick: Duration::from_millis(TICK_MS),
        election_tick: 10,
        heartbeat_tick: 2,
        snapshot_every: cfg.snapshot_every,
        keep_entries: cfg.keep_entries,
        request_timeout: Duration::from_millis(1000),
    }
}

fn history_limits() -> HistoryLimits {
    HistoryLimits {
        max_events: 1000,
        max_bytes: 1 << 20,
    }
}

/// The JSON object a write stores: the value id in `data.v`.
fn object(key: &str, value: ValueId) -> Vec<u8> {
    format!(r#"{{"metadata":{{"name":"{key}"}},"data":{{"v":"{value}"}}}}"#).into_bytes()
}

/// The value id of a stored object.
fn value_of(json: &[u8]) -> Result<ValueId, String> {
    let v: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| format!("stored object is not JSON ({e}): {json:?}"))?;
    v["data"]["v"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("stored object has no value: {v}"))
}

/// Digest of a state machine's objects (key, rv, value), in key order.
fn state_digest(sm: &StateMachine) -> [u8; 32] {
    let mut h = Sha256::new();
    for (k, s) in sm.list("", None, 0).0 {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(s.rv.to_le_bytes());
        h.update((s.value.len() as u64).to_le_bytes());
        h.update(&s.value);
    }
    h.finalize().into()
}

fn broken(b: Broken) -> String {
    b.to_string()
}

impl Simulation {
    fn new(cfg: SimConfig) -> Simulation {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let net = Network::new(cfg.net.clone());
        let clients = (0..cfg.clients)
            .map(|_| Client {
                busy: false,
                seen: BTreeMap::new(),
            })
            .collect();
        let nodes = (1..=cfg.nodes)
            .map(|id| SimNode {
                id,
                core: None,
                disk: SimDisk::default(),
                outbox: Outbox::default(),
                incarnation: 0,
                ready_scheduled: false,
                paused_until: 0,
                digest_at: u64::MAX,
                tick_every: rng.random_range(TICK_MS - 2..=TICK_MS + 2),
            })
            .collect();
        Simulation {
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            net,
            nodes,
            clients,
            history: Vec::new(),
            pending: BTreeMap::new(),
            next_ticket: 1,
            next_value: 1,
            stamp: 0,
            inv: Invariants::new(),
            acked: BTreeMap::new(),
            workload_over: false,
            converged: false,
            crashes: 0,
            fingerprint: Sha256::new(),
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            eprintln!("{:>7} {}", self.now, what());
        }
    }

    fn schedule(&mut self, after: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        }));
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    fn run(&mut self) -> Result<Report, String> {
        for id in 1..=self.cfg.nodes {
            self.start(id)?;
        }
        for c in 0..self.cfg.clients {
            let d = self.rng.random_range(0..50);
            self.schedule(d, Event::ClientNext { client: c });
        }
        if self.cfg.profile != Profile::Calm {
            let d = self.rng.random_range(100..400);
            self.schedule(d, Event::Nemesis);
        }
        self.schedule(self.cfg.duration, Event::EndWorkload);
        let deadline = self.cfg.duration + self.cfg.settle_limit;
        while !self.converged {
            let Some(Reverse(next)) = self.queue.pop() else {
                return Err("the event queue ran dry".into());
            };
            if next.at > deadline {
                return Err(format!(
                    "the healed cluster did not converge within {} ms: {}",
                    self.cfg.settle_limit,
                    self.describe_cluster()
                ));
            }
            self.now = next.at;
            self.fingerprint.update(next.at.to_le_bytes());
            self.fingerprint.update(summary(&next.event).as_bytes());
            self.handle(next.event)?;
        }
        self.final_checks()
    }

    fn describe_cluster(&self) -> String {
        let mut out = Vec::new();
        for n in &self.nodes {
            match &n.core {
                None => out.push(format!("{}: down", n.id)),
                Some(c) => {
                    let r = &c.raw_node().raft;
                    let role = c.role();
                    let progress = if role.is_leader {
                        let mut p: Vec<String> = r
                            .prs()
                            .iter()
                            .map(|(id, pr)| {
                                format!("{id}:{:?} m{} n{}", pr.state, pr.matched, pr.next_idx)
                            })
                            .collect();
                        p.sort();
                        format!(" progress [{}]", p.join(", "))
                    } else {
                        String::new()
                    };
                    out.push(format!(
                        "{}: term {} {:?} leader {} last {} commit {} applied {}{}",
                        n.id,
                        r.term,
                        r.state,
                        r.leader_id,
                        r.raft_log.last_index(),
                        r.raft_log.committed,
                        c.state().applied(),
                        progress
                    ))
                }
            }
        }
        out.push(format!("{} client operations pending", self.pending.len()));
        out.join("; ")
    }

    /// Starts (or restarts) master `id` from its disk.
    fn start(&mut self, id: u64) -> Result<(), String> {
        let opts = raft_options(&self.cfg, id);
        let seed = self.rng.next_u64();
        let phase = self.rng.random_range(0..TICK_MS);
        let n = self.node(id);
        let mut core = NodeCore::new(
            opts,
            history_limits(),
            None,
            Box::new(n.disk.clone()),
            Arc::new(n.outbox.clone()),
        )
        .map_err(|e| format!("master {id} failed to start from its disk: {e}"))?;
        core.seed(seed);
        core.record_applies();
        n.core = Some(core);
        n.incarnation += 1;
        n.ready_scheduled = false;
        n.digest_at = u64::MAX;
        let incarnation = n.incarnation;
        self.trace(|| format!("master {id} starts (incarnation {incarnation})"));
        self.schedule(
            phase + 1,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.after_core(id, false)
    }

    /// Kills master `id`: unsynced writes are lost; requests waiting there
    /// get no answer.
    fn crash(&mut self, id: u64) {
        let n = self.node(id);
        if n.core.take().is_none() {
            return;
        }
        n.disk.crash();
        n.incarnation += 1;
        n.ready_scheduled = false;
        n.paused_until = 0;
        // Whatever it queued but did not hand to the network dies with it.
        n.outbox.drain();
        self.crashes += 1;
        self.trace(|| format!("master {id} crashes"));
        let lost: Vec<Ticket> = self
            .pending
            .iter()
            .filter(|(_, p)| p.node == id)
            .map(|(t, _)| *t)
            .collect();
        for t in lost {
            self.finish(t, Ret::Unknown);
        }
    }

    fn alive(&self, id: u64) -> bool {
        self.nodes[(id - 1) as usize].core.is_some()
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .filter(|c| c.role().is_leader)
            .max_by_key(|c| c.role().term)
            .map(|c| c.id())
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick { node, incarnation } => {
                if self.node(node).incarnation != incarnation {
                    return Ok(());
                }
                let every = self.node(node).tick_every;
                self.schedule(every, Event::Tick { node, incarnation });
                // A paused process misses its ticks.
                if self.now < self.node(node).paused_until {
                    return Ok(());
                }
                if let Some(core) = self.node(node).core.as_mut() {
                    core.tick();
                }
                self.after_core(node, false)
            }
            Event::Ready { node, incarnation } => {
                let now = self.now;
                let n = self.node(node);
                if n.incarnation != incarnation {
                    return Ok(());
                }
                if now < n.paused_until {
                    let wait = n.paused_until - now;
                    self.schedule(wait, Event::Ready { node, incarnation });
                    return Ok(());
                }
                n.ready_scheduled = false;
                let Some(core) = n.core.as_mut() else {
                    return Ok(());
                };
                match core.process_ready() {
                    Ok(()) => self.after_core(node, true),
                    Err(_) if n.disk.tripped() => {
                        // Died inside fsync: what it sent and answered
                        // before the sync still went out (as the threaded
                        // shell dispatches before stopping).
                        self.flush(node)?;
                        self.crash(node);
                        Ok(())
                    }
                    Err(e) => Err(format!("master {node} stopped on a fatal error: {e}")),
                }
            }
            Event::Deliver { from, to, msg } => {
                if self.net.is_blocked(from, to) || !self.alive(to) {
                    return Ok(());
                }
                let paused_until = self.node(to).paused_until;
                if self.now < paused_until {
                    self.schedule(paused_until - self.now, Event::Deliver { from, to, msg });
                    return Ok(());
                }
                if let Some(core) = self.node(to).core.as_mut() {
                    core.handle(Input::Step(msg));
                }
                self.after_core(to, false)
            }
            Event::Request { node, ticket } => {
                let paused_until = self.node(node).paused_until;
                if self.now < paused_until && self.alive(node) {
                    self.schedule(paused_until - self.now, Event::Request { node, ticket });
                    return Ok(());
                }
                if !self.alive(node) {
                    // The connection broke: the client cannot know.
                    self.finish(ticket, Ret::Unknown);
                    return Ok(());
                }
                let Some(input) = self.pending.get_mut(&ticket).and_then(|p| p.input.take()) else {
                    return Ok(());
                };
                if let Some(core) = self.node(node).core.as_mut() {
                    core.handle(input);
                }
                self.after_core(node, false)
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::Nemesis => {
                if !self.workload_over {
                    self.nemesis()?;
                    let d = self.rng.random_range(50..400);
                    self.schedule(d, Event::Nemesis);
                }
                Ok(())
            }
            Event::Restart { node } => {
                if !self.alive(node) && !self.workload_over {
                    self.start(node)?;
                }
                Ok(())
            }
            Event::EndWorkload => {
                self.workload_over = true;
                self.net.heal();
                self.net.config = NetConfig::reliable();
                self.trace(|| "workload over: network healed, all masters restart".into());
                for id in 1..=self.cfg.nodes {
                    self.node(id).paused_until = 0;
                    self.node(id).disk.clear_faults();
                    if !self.alive(id) {
                        self.start(id)?;
                    }
                }
                self.check_logs()?;
                self.schedule(50, Event::CheckConverged);
                Ok(())
            }
            Event::CheckConverged => {
                self.converged = self.is_converged();
                if !self.converged {
                    self.schedule(50, Event::CheckConverged);
                }
                Ok(())
            }
        }
    }

    /// Routes what master `id` sent and records what it did.
    fn flush(&mut self, id: u64) -> Result<(), String> {
        let msgs = self.node(id).outbox.drain();
        for m in msgs {
            let to = m.to;
            for delay in self.net.route(&mut self.rng, id, to) {
                self.schedule(
                    delay,
                    Event::Deliver {
                        from: id,
                        to,
                        msg: Box::new(m.clone()),
                    },
                );
            }
        }
        let Some(core) = self.node(id).core.as_mut() else {
            return Ok(());
        };
        let records = core.take_apply_records();
        let completions = core.take_completions();
        for r in &records {
            self.inv.observe_apply(id, r).map_err(broken)?;
        }
        for c in completions {
            self.complete(id, c)?;
        }
        Ok(())
    }

    /// Bookkeeping after any call into master `id`'s core.
    fn after_core(&mut self, id: u64, after_ready: bool) -> Result<(), String> {
        self.flush(id)?;
        let Some(core) = self.nodes[(id - 1) as usize].core.as_ref() else {
            return Ok(());
        };
        let role = core.role();
        let applied = core.state().applied();
        let wants_ready = !after_ready || core.raw_node().has_ready();
        if role.is_leader && self.inv.observe_leader(id, role.term).map_err(broken)? {
            self.trace(|| format!("master {id} leads term {}", role.term));
            let log = Log::read(id, &core.raw_node().raft.raft_log).map_err(broken)?;
            self.inv
                .check_leader_log(id, role.term, &log)
                .map_err(broken)?;
        }
        if self.nodes[(id - 1) as usize].digest_at != applied {
            let digest = state_digest(&core.state());
            self.inv
                .observe_state(id, applied, digest)
                .map_err(broken)?;
            self.node(id).digest_at = applied;
        }
        let n = self.node(id);
        if wants_ready && !n.ready_scheduled {
            n.ready_scheduled = true;
            let incarnation = n.incarnation;
            // Inputs arriving meanwhile share the cycle, as in the shell.
            let d = self.rng.random_range(0..=2);
            self.schedule(
                d,
                Event::Ready {
                    node: id,
                    incarnation,
                },
            );
        }
        Ok(())
    }

    /// A request ended at master `id`.
    fn complete(&mut self, id: u64, c: Completion) -> Result<(), String> {
        let Some(op_index) = self.pending.get(&c.ticket).map(|p| p.op) else {
            // Nemesis requests (snapshots) have no client.
            return Ok(());
        };
        let (key, call) = {
            let op = &self.history[op_index];
            (op.key.clone(), op.call.clone())
        };
        let ret = match c.outcome {
            Outcome::Txn(Ok(applied)) => {
                // The entry at that index must be this very request.
                self.check_ack(applied.rv, &key, &call)?;
                self.acked.insert(applied.rv, op_index);
                match call {
                    Call::Delete { .. } => {
                        let deleted = applied
                            .objects
                            .first()
                            .and_then(|o| o.as_ref())
                            .ok_or_else(|| {
                                format!("delete of {key} at {} returned no object", applied.rv)
                            })?;
                        Ret::Deleted {
                            rv: applied.rv,
                            value: value_of(deleted)?,
                        }
                    }
                    _ => Ret::Written { rv: applied.rv },
                }
            }
            Outcome::Txn(Err(StoreError::Apply(e))) => match e {
                ApplyError::AlreadyExists { .. } => Ret::AlreadyExists,
                ApplyError::NotFound { .. } => Ret::NotFound,
                ApplyError::Conflict { current, .. } => Ret::Conflict { current },
                other => return Err(format!("{key}: unexpected apply error: {other}")),
            },
            Outcome::Txn(Err(_)) | Outcome::ReadIndex(Err(_)) => Ret::Unknown,
            Outcome::ReadIndex(Ok(index)) => {
                let core = self.nodes[(id - 1) as usize]
                    .core
                    .as_ref()
                    .ok_or("a read completed on a dead master")?;
                let sm = core.state();
                if sm.applied() < index {
                    return Err(format!(
                        "master {id} answered a read at index {index} having applied only {}",
                        sm.applied()
                    ));
                }
                let seen = match sm.get(&key) {
                    Some(s) => Some((s.rv, value_of(&s.value)?)),
                    None => None,
                };
                Ret::Read(seen)
            }
            Outcome::ConfChange(_) | Outcome::Snapshot(_) => {
                return Err(format!(
                    "ticket {} of a client operation ended as another kind of request",
                    c.ticket
                ));
            }
        };
        self.finish(c.ticket, ret);
        Ok(())
    }

    /// The entry applied at `rv` must be the transaction this client sent.
    fn check_ack(&self, rv: u64, key: &str, call: &Call) -> Result<(), String> {
        let data = self.inv.applied_entry(rv).ok_or_else(|| {
            format!("a write on {key} was acknowledged at {rv}, which nobody applied")
        })?;
        let txn = Txn::decode_bytes(data)
            .map_err(|e| format!("entry {rv} acknowledged for {key} is not a transaction: {e}"))?;
        let matches = match (txn.ops.as_slice(), call) {
            ([op], Call::Create { value } | Call::Update { value, .. }) => {
                op.key == key && value_of(&op.value).ok() == Some(*value)
            }
            ([op], Call::Delete { expect }) => {
                op.key == key && op.value.is_empty() && expect.is_none_or(|e| op.expect_rv == e)
            }
            _ => false,
        };
        if !matches {
            return Err(format!(
                "a client was told its {call:?} on {key} applied at {rv}, but entry {rv} is another request: {:?}",
                txn.ops
                    .iter()
                    .map(|o| (
                        o.key.clone(),
                        String::from_utf8_lossy(&o.value).into_owned(),
                        o.expect_rv
                    ))
                    .collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    /// Records the end of a client operation and frees the client.
    fn finish(&mut self, ticket: Ticket, ret: Ret) {
        let Some(p) = self.pending.remove(&ticket) else {
            return;
        };
        let stamp = self.next_stamp();
        let op = &mut self.history[p.op];
        if let Ret::Written { rv } | Ret::Read(Some((rv, _))) = ret {
            self.clients[p.client]
                .seen
                .entry(op.key.clone())
                .or_default()
                .push(rv);
        }
        op.ret = ret;
        op.returned = stamp;
        self.fingerprint.update(format!("{op}").as_bytes());
        if self.cfg.trace {
            eprintln!("{:>7} done {op} at master {}", self.now, p.node);
        }
        self.clients[p.client].busy = false;
        let think = self.rng.random_range(0..20);
        self.schedule(think, Event::ClientNext { client: p.client });
    }

    fn client_next(&mut self, client: usize) -> Result<(), String> {
        if self.workload_over || self.clients[client].busy {
            return Ok(());
        }
        let node = self.rng.random_range(1..=self.cfg.nodes);
        if !self.alive(node) {
            // Connection refused: nothing was sent; try again soon.
            let d = self.rng.random_range(5..30);
            self.schedule(d, Event::ClientNext { client });
            return Ok(());
        }
        let key = format!("cm/k{}", self.rng.random_range(0..self.cfg.keys));
        let seen = self.clients[client]
            .seen
            .get(&key)
            .cloned()
            .unwrap_or_default();
        // A resourceVersion to expect: usually the newest this client saw,
        // sometimes an older one (a conflict), rarely a made-up one.
        let expect = |rng: &mut ChaCha8Rng| -> u64 {
            match seen.last() {
                Some(&last) if rng.random_bool(0.8) => last,
                Some(_) => *seen.choose(rng).unwrap_or(&1),
                None => rng.random_range(1..=20),
            }
        };
        let roll = self.rng.random_range(0..100);
        let (call, ops) = if roll < 35 {
            (Call::Read, Vec::new())
        } else {
            let value = self.next_value;
            self.next_value += 1;
            if roll < 50 {
                (
                    Call::Create { value },
                    vec![Op::create(&key, object(&key, value))],
                )
            } else if roll < 80 {
                let e = expect(&mut self.rng);
                (
                    Call::Update { expect: e, value },
                    vec![Op::update(&key, object(&key, value), e)],
                )
            } else {
                let e = if self.rng.random_bool(0.5) {
                    Some(expect(&mut self.rng))
                } else {
                    None
                };
                (Call::Delete { expect: e }, vec![Op::delete(&key, e)])
            }
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let input = if call == Call::Read {
            Input::ReadIndex { ticket }
        } else {
            Input::Propose {
                ticket,
                txn: Txn {
                    request_id: 0,
                    ops,
                    fence_term: 0,
                },
            }
        };
        let invoked = self.next_stamp();
        self.history.push(Operation {
            client,
            key,
            call,
            ret: Ret::Unknown,
            invoked,
            returned: 0,
        });
        self.pending.insert(
            ticket,
            Pending {
                client,
                op: self.history.len() - 1,
                node,
                input: Some(input),
            },
        );
        self.clients[client].busy = true;
        let d = self.rng.random_range(0..=1);
        self.schedule(d, Event::Request { node, ticket });
        Ok(())
    }

    fn nemesis(&mut self) -> Result<(), String> {
        #[derive(Clone, Copy, Debug)]
        enum Act {
            Crash,
            CrashInSync,
            Pause,
            Snapshot,
            Partition,
            IsolateLeader,
            OneWay,
            Heal,
            Transfer,
            Network,
        }
        let acts: &[(Act, u32)] = match self.cfg.profile {
            Profile::Calm => &[],
            Profile::Lossy => &[(Act::Network, 1), (Act::Snapshot, 1)],
            Profile::Partitions => &[
                (Act::Partition, 3),
                (Act::IsolateLeader, 2),
                (Act::OneWay, 2),
                (Act::Heal, 3),
                (Act::Transfer, 1),
            ],
            Profile::Crashes => &[
                (Act::Crash, 4),
                (Act::CrashInSync, 2),
                (Act::Pause, 2),
                (Act::Snapshot, 1),
                (Act::Transfer, 1),
            ],
            Profile::Chaos => &[
                (Act::Crash, 3),
                (Act::CrashInSync, 1),
                (Act::Pause, 1),
                (Act::Snapshot, 1),
                (Act::Partition, 2),
                (Act::IsolateLeader, 2),
                (Act::OneWay, 1),
                (Act::Heal, 3),
                (Act::Transfer, 1),
                (Act::Network, 1),
            ],
        };
        let total: u32 = acts.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Ok(());
        }
        let mut roll = self.rng.random_range(0..total);
        let mut act = acts[0].0;
        for (a, w) in acts {
            if roll < *w {
                act = *a;
                break;
            }
            roll -= w;
        }
        let ids: Vec<u64> = (1..=self.cfg.nodes).collect();
        let up: Vec<u64> = ids.iter().copied().filter(|&i| self.alive(i)).collect();
        match act {
            Act::Crash | Act::CrashInSync => {
                let Some(&victim) = up.choose(&mut self.rng) else {
                    return Ok(());
                };
                let back = self.rng.random_range(20..1000);
                if matches!(act, Act::Crash) {
                    self.crash(victim);
                } else {
                    self.trace(|| format!("master {victim} will die inside its next fsync"));
                    self.node(victim).disk.fail_next_sync();
                }
                self.schedule(back, Event::Restart { node: victim });
            }
            Act::Pause => {
                if let Some(&victim) = up.choose(&mut self.rng) {
                    let d = self.rng.random_range(50..600);
                    self.trace(|| format!("master {victim} pauses for {d} ms"));
                    self.node(victim).paused_until = self.now + d;
                }
            }
            Act::Snapshot => {
                if let Some(&n) = up.choose(&mut self.rng) {
                    let ticket = self.next_ticket;
                    self.next_ticket += 1;
                    if let Some(core) = self.node(n).core.as_mut() {
                        core.handle(Input::Snapshot { ticket });
                    }
                    self.after_core(n, false)?;
                }
            }
            Act::Partition => {
                let mut shuffled = ids.clone();
                rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut self.rng);
                let cut = self.rng.random_range(1..ids.len());
                let (a, b) = shuffled.split_at(cut);
                self.net.heal();
                self.net.partition(&[a.to_vec(), b.to_vec()]);
                self.trace(|| format!("partition {a:?} | {b:?}"));
            }
            Act::IsolateLeader => {
                if let Some(l) = self.leader() {
                    let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
                    self.net.heal();
                    self.net.partition(&[vec![l], rest]);
                    self.trace(|| format!("leader {l} isolated"));
                }
            }
            Act::OneWay => {
                let n = self.rng.random_range(1..=3);
                for _ in 0..n {
                    let from = *ids.choose(&mut self.rng).unwrap_or(&1);
                    let to = *ids.choose(&mut self.rng).unwrap_or(&1);
                    if from != to {
                        self.net.cut(from, to);
                        self.trace(|| format!("link {from} -> {to} cut"));
                    }
                }
            }
            Act::Heal => {
                self.net.heal();
                self.trace(|| "network healed".into());
            }
            Act::Transfer => {
                if let Some(l) = self.leader() {
                    let to = *ids.choose(&mut self.rng).unwrap_or(&1);
                    self.trace(|| format!("leader {l} asked to transfer to {to}"));
                    if let Some(core) = self.node(l).core.as_mut() {
                        core.handle(Input::TransferLeader { to });
                    }
                    self.after_core(l, false)?;
                }
            }
            Act::Network => {
                self.net.config = NetConfig {
                    drop: self.rng.random_range(0.0..0.3),
                    duplicate: self.rng.random_range(0.0..0.2),
                    min_delay: 1,
                    max_delay: self.rng.random_range(2..=80),
                };
                let c = self.net.config.clone();
                self.trace(|| format!("network now {c:?}"));
            }
        }
        self.check_logs()
    }

    fn logs(&self) -> Result<Vec<Log>, String> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref().map(|c| (n.id, c)))
            .map(|(id, c)| Log::read(id, &c.raw_node().raft.raft_log).map_err(broken))
            .collect()
    }

    fn check_logs(&self) -> Result<(), String> {
        invariants::check_log_matching(&self.logs()?).map_err(broken)
    }

    fn is_converged(&self) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let Some(leader) = self.leader() else {
            return false;
        };
        let Some(lc) = self.nodes[(leader - 1) as usize].core.as_ref() else {
            return false;
        };
        let target = lc.raw_node().raft.raft_log.last_index();
        self.nodes.iter().all(|n| {
            n.core.as_ref().is_some_and(|c| {
                let log = &c.raw_node().raft.raft_log;
                log.last_index() == target
                    && log.committed == target
                    && c.state().applied() == target
                    && c.raw_node().raft.leader_id == leader
            })
        })
    }

    fn final_checks(&mut self) -> Result<Report, String> {
        self.check_logs()?;
        let mut digests = Vec::new();
        let mut final_index = 0;
        for n in &self.nodes {
            let c = n.core.as_ref().ok_or("a master is down after healing")?;
            let sm = c.state();
            final_index = sm.applied();
            digests.push((n.id, sm.applied(), state_digest(&sm)));
        }
        if let Some(((a, ia, da), rest)) = digests.split_first() {
            for (b, ib, db) in rest {
                if (ia, da) != (ib, db) {
                    return Err(format!(
                        "after convergence master {a} (applied {ia}) and master {b} (applied {ib}) hold different states"
                    ));
                }
            }
        }
        if let Some((&rv, _)) = self.acked.range(final_index + 1..).next() {
            return Err(format!(
                "a write acknowledged at index {rv} is beyond the converged log ({final_index})"
            ));
        }
        if self.inv.max_applied() > final_index {
            return Err(format!(
                "index {} was applied somewhere but the converged log ends at {final_index}",
                self.inv.max_applied()
            ));
        }
        let (verdict, check_steps) =
            linearizability::check_counting(&self.history, self.cfg.check_budget);
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Violation(v) => return Err(format!("linearizability: {v}")),
            Verdict::GaveUp { key, steps } => {
                return Err(format!(
                    "linearizability check of {key} gave up after {steps} steps (history too concurrent for the budget)"
                ));
            }
        }
        let answered = self
            .history
            .iter()
            .filter(|o| o.ret != Ret::Unknown)
            .count();
        let terms = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .map(|c| c.role().term)
            .max()
            .unwrap_or(0);
        Ok(Report {
            seed: self.cfg.seed,
            profile: self.cfg.profile,
            nodes: self.cfg.nodes,
            answered,
            unanswered: self.history.len() - answered,
            writes_applied: self
                .history
                .iter()
                .filter(|o| matches!(o.ret, Ret::Written { .. } | Ret::Deleted { .. }))
                .count(),
            reads_seen: self
                .history
                .iter()
                .filter(|o| matches!(o.ret, Ret::Read(Some(_))))
                .count(),
            crashes: self.crashes,
            terms,
            final_index,
            end: self.now,
            check_steps,
            fingerprint: hex(&self.fingerprint.clone().finalize()),
        })
    }
}

/// A compact, deterministic description of an event for the fingerprint.
fn summary(e: &Event) -> String {
    match e {
        Event::Deliver { from, to, msg } => format!(
            "deliver {from}->{to} {:?} t{} i{} lt{} c{} n{}",
            msg.msg_type,
            msg.term,
            msg.index,
            msg.log_term,
            msg.commit,
            msg.entries.len()
        ),
        other => format!("{other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
