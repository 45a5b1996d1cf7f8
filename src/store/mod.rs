//! The replicated store: every object write goes through one Raft group
//! (tikv raft-rs), is fsynced before it is acknowledged, and is applied by a
//! deterministic state machine that assigns `resourceVersion` from the log
//! index. A single-master cluster is a one-voter group running the same code.
//!
//! - `command`: the transactions in the log (prost)
//! - `state`: the state machine (objects, history for watches)
//! - `node`: the Raft driver: a deterministic core and its thread
//! - `storage`: the `raft::Storage` raft-rs reads
//! - `durable`: what is persisted, behind a trait (disk or in-memory)
//! - `wal`, `snapfile`: the write-ahead log and snapshot files on disk
//! - `transport`: how Raft messages reach other masters
//!
//! [`Store`] is the handle the API server uses: transactions, linearizable
//! read barriers, local reads, and watch subscriptions.

pub mod command;
pub mod durable;
mod log;
pub mod node;
pub mod snapfile;
pub mod state;
pub mod storage;
pub mod transport;
pub mod wal;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use raft::eraftpb::{ConfChangeV2, ConfState, Message};
use tokio::sync::{broadcast, oneshot, watch};

pub use command::{Op, Txn};
pub use durable::{Durable, MemDurable};
pub use node::{NodeCore, RaftOptions};
pub use state::{Applied, ApplyError, Event, EventType, HistoryLimits, StateMachine, Stored};
pub use transport::{NoPeers, Transport};

use node::{Command, Driver, Shared};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The transaction reached the log but a precondition failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("no Raft leader is known (last seen: {leader})")]
    NoLeader { leader: u64 },
    #[error("timed out: {what}")]
    Timeout { what: String },
    #[error("{0}")]
    Stopped(String),
    #[error("resourceVersion {requested} is too old (oldest available: {floor})")]
    TooOld { requested: u64, floor: u64 },
    #[error("raft: {0}")]
    Raft(raft::Error),
    #[error("{what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write-ahead log: {0}")]
    Wal(String),
}

/// This master's view of Raft leadership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoleInfo {
    pub id: u64,
    /// Current leader's id, 0 when unknown.
    pub leader: u64,
    pub term: u64,
    pub is_leader: bool,
}

/// What watch subscribers receive from the driver.
#[derive(Clone, Debug)]
pub enum WatchMsg {
    /// The events of one applied batch, in log order.
    Events(Arc<[Event]>),
    /// The state was replaced by a snapshot: subscribers must relist.
    Reset,
}

/// Store configuration.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    pub raft: RaftOptions,
    pub history: HistoryLimits,
    /// Where blob chunks live (None: no blobs).
    pub blob_dir: Option<std::path::PathBuf>,
}

/// A cheap, cloneable handle to the running store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<mpsc::Sender<Command>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.lock().send(Command::Shutdown);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Recovers from `durable` and starts the Raft driver thread.
    pub fn open(
        opts: StoreOptions,
        durable: Box<dyn Durable>,
        transport: Arc<dyn Transport>,
    ) -> Result<Store, StoreError> {
        let core = NodeCore::new(opts.raft, opts.history, opts.blob_dir, durable, transport)?;
        let shared = core.shared();
        let driver = Driver::new(core);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || driver.run(rx))
            .map_err(|e| StoreError::Stopped(format!("cannot start the raft thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn send(&self, input: Command) -> Result<(), StoreError> {
        if let Some(reason) = self.inner.shared.failed.lock().clone() {
            return Err(StoreError::Stopped(reason));
        }
        self.inner
            .tx
            .lock()
            .send(input)
            .map_err(|_| StoreError::Stopped("store stopped".into()))
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Stopped(
                self.inner
                    .shared
                    .failed
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "store stopped".into()),
            )),
        }
    }

    /// Proposes a transaction and waits until it is committed and applied
    /// here. A failed precondition is `Err(StoreError::Apply(..))`.
    pub async fn txn(&self, ops: Vec<Op>) -> Result<Applied, StoreError> {
        self.txn_fenced(ops, 0).await
    }

    /// Like [`Store::txn`], refused unless appended in `term` (leader-only
    /// writers pass the term they were elected in).
    pub async fn txn_fenced(&self, ops: Vec<Op>, term: u64) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Propose {
            txn: Txn {
                request_id: 0,
                ops,
                fence_term: term,
            },
            reply,
        })?;
        self.wait(rx).await
    }

    /// Waits until this master has applied everything committed when the
    /// call was made (Raft ReadIndex), so a following local read is
    /// linearizable. Returns the read index.
    pub async fn barrier(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ReadIndex { reply })?;
        self.wait(rx).await
    }

    /// Waits until at least `index` is applied locally.
    pub async fn wait_applied(&self, index: u64) -> Result<(), StoreError> {
        let mut rx = self.inner.shared.applied.subscribe();
        rx.wait_for(|a| *a >= index)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Stopped("store stopped".into()))
    }

    /// Runs `f` on the local state machine (a possibly stale read unless
    /// preceded by [`Store::barrier`]).
    pub fn read<R>(&self, f: impl FnOnce(&StateMachine) -> R) -> R {
        f(&self.inner.shared.state.read())
    }

    /// The last applied index (the store's current resourceVersion).
    pub fn applied(&self) -> u64 {
        *self.inner.shared.applied.borrow()
    }

    pub fn role(&self) -> RoleInfo {
        *self.inner.shared.role.borrow()
    }

    /// A receiver that changes whenever leadership does.
    pub fn role_watch(&self) -> watch::Receiver<RoleInfo> {
        self.inner.shared.role.subscribe()
    }

    /// Delivers a Raft message from a peer.
    pub fn step(&self, msg: Message) -> Result<(), StoreError> {
        self.send(Command::Step(Box::new(msg)))
    }

    /// Proposes a membership change and waits for it to apply.
    pub async fn change_membership(&self, cc: ConfChangeV2) -> Result<ConfState, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ConfChange { cc, reply })?;
        self.wait(rx).await
    }

    pub fn transfer_leader(&self, to: u64) -> Result<(), StoreError> {
        self.send(Command::TransferLeader { to })
    }

    /// Forces a snapshot (and log compaction); returns its index.
    pub async fn snapshot_now(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Snapshot { reply })?;
        self.wait(rx).await
    }

    /// Subscribes to changes under `prefix` after resourceVersion `after`.
    /// Fails with `TooOld` when `after` precedes the retained history.
    pub fn watch(&self, prefix: &str, after: u64) -> Result<Subscription, StoreError> {
        let sm = self.inner.shared.state.read();
        let backlog = sm
            .history()
            .since(after, prefix)
            .ok_or(StoreError::TooOld {
                requested: after,
                floor: sm.history().floor(),
            })?;
        // Subscribing under the read lock: the driver sends under the write
        // lock, so nothing falls between the backlog and the live stream.
        let rx = self.inner.shared.events.subscribe();
        let last = sm.applied().max(after);
        Ok(Subscription {
            rx,
            prefix: prefix.to_string(),
            backlog: backlog.into(),
            last,
            store: self.clone(),
        })
    }

    /// Lists everything under `prefix` and subscribes to later changes, at
    /// one consistent resourceVersion (for watches without a resourceVersion
    /// or with "0", which start with ADDED events for existing objects).
    pub fn list_and_watch(&self, prefix: &str) -> (Vec<(String, Stored)>, u64, Subscription) {
        let sm = self.inner.shared.state.read();
        let (items, _) = sm.list(prefix, None, 0);
        let rv = sm.applied();
        let rx = self.inner.shared.events.subscribe();
        (
            items,
            rv,
            Subscription {
                rx,
                prefix: prefix.to_string(),
                backlog: VecDeque::new(),
                last: rv,
                store: self.clone(),
            },
        )
    }

    /// Stops the driver and waits for it.
    pub fn shutdown(&self) {
        let _ = self.inner.tx.lock().send(Command::Shutdown);
        if let Some(t) = self.inner.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// A live stream of events under a key prefix.
pub struct Subscription {
    rx: broadcast::Receiver<WatchMsg>,
    prefix: String,
    backlog: VecDeque<Event>,
    /// Highest resourceVersion delivered or skipped.
    last: u64,
    store: Store,
}

impl Subscription {
    /// The next event, in log order. `Err(TooOld)` means the subscriber fell
    /// behind the retained history (or the state was replaced) and must
    /// relist; `Err(Stopped)` means the store stopped.
    pub async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last = self.last.max(e.rv);
                return Ok(e);
            }
            match self.rx.recv().await {
                Ok(WatchMsg::Events(batch)) => {
                    let first_rv = batch.first().map_or(0, |e| e.rv);
                    if first_rv <= self.last && batch.iter().all(|e| e.rv <= self.last) {
                        continue;
                    }
                    self.backlog.extend(
                        batch
                            .iter()
                            .filter(|e| e.rv > self.last && e.key.starts_with(self.prefix.as_str()))
                            .cloned(),
                    );
                    if let Some(e) = batch.last() {
                        // Skipped events still advance the position.
                        if self.backlog.is_empty() {
                            self.last = self.last.max(e.rv);
                        }
                    }
                }
                Ok(WatchMsg::Reset) => {
                    return Err(StoreError::TooOld {
                        requested: self.last,
                        floor: self.store.applied(),
                    });
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the history, if it still reaches back.
                    let sm = self.store.inner.shared.state.read();
                    let Some(missed) = sm.history().since(self.last, &self.prefix) else {
                        return Err(StoreError::TooOld {
                            requested: self.last,
                            floor: sm.history().floor(),
                        });
                    };
                    self.rx = self.store.inner.shared.events.subscribe();
                    self.last = sm.applied().max(self.last);
                    self.backlog.extend(missed);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(StoreError::Stopped("store stopped".into()));
                }
            }
        }
    }

    /// The highest resourceVersion this subscription has seen or passed.
    pub fn position(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests;
