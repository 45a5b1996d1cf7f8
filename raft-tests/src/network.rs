//! The simulated network between masters, and the two adapters a
//! [`NodeCore`](wasmk::store::NodeCore) needs: a [`Transport`] that queues
//! outgoing messages for the simulation to route, and a [`Durable`] disk
//! that can be crashed (losing what was not synced) or made to fail its
//! next fsync.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use raft::eraftpb::{Entry, HardState, Message, SnapshotMetadata};
use rand::Rng;
use wasmk::store::durable::Recovered;
use wasmk::store::{Durable, MemDurable, StoreError, Transport};

/// How the network treats each message.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a delivered message is delivered twice.
    pub duplicate: f64,
    /// Delivery delay in milliseconds, uniform in `min_delay..=max_delay`;
    /// different delays reorder messages.
    pub min_delay: u64,
    pub max_delay: u64,
}

impl NetConfig {
    /// A reliable, fast, in-order-enough network.
    pub fn reliable() -> NetConfig {
        NetConfig {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: 1,
            max_delay: 3,
        }
    }
}

/// Link state and delivery rules. Pure: the simulation owns the clock and
/// the queue of messages in flight.
#[derive(Clone, Debug)]
pub struct Network {
    pub config: NetConfig,
    /// Directed links that lose every message, as (from, to).
    blocked: BTreeSet<(u64, u64)>,
}

impl Network {
    pub fn new(config: NetConfig) -> Network {
        Network {
            config,
            blocked: BTreeSet::new(),
        }
    }

    /// Delays after which copies of a message from `from` to `to` arrive:
    /// none if it is lost, two if it is duplicated.
    pub fn route(&self, rng: &mut impl Rng, from: u64, to: u64) -> Vec<u64> {
        if self.is_blocked(from, to) || rng.random_bool(self.config.drop) {
            return Vec::new();
        }
        let range = self.config.min_delay..=self.config.max_delay;
        let mut out = vec![rng.random_range(range.clone())];
        if rng.random_bool(self.config.duplicate) {
            out.push(rng.random_range(range));
        }
        out
    }

    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts every link between different groups, both ways.
    pub fn partition(&mut self, groups: &[Vec<u64>]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a {
                        for &y in b {
                            self.blocked.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the link from `from` to `to` only (an asymmetric partition).
    pub fn cut(&mut self, from: u64, to: u64) {
        self.blocked.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The cut links, as (from, to).
    pub fn cuts(&self) -> impl Iterator<Item = &(u64, u64)> {
        self.blocked.iter()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere already fails the run; keep going to report it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`Transport`] that queues messages for the simulation to route.
#[derive(Clone, Debug, Default)]
pub struct Outbox(Arc<Mutex<Vec<Message>>>);

impl Outbox {
    /// Takes the queued messages, in the order they were sent.
    pub fn drain(&self) -> Vec<Message> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl Transport for Outbox {
    fn send(&self, messages: Vec<Message>) {
        lock(&self.0).extend(messages);
    }
}

#[derive(Debug, Default)]
struct DiskState {
    mem: MemDurable,
    /// The next sync fails, as if the process died inside fsync.
    fail_next_sync: bool,
    /// A sync failed that way: the node is dead.
    tripped: bool,
}

/// A crashable in-memory disk shared between a node's incarnations.
#[derive(Clone, Debug, Default)]
pub struct SimDisk(Arc<Mutex<DiskState>>);

impl SimDisk {
    /// Loses everything not synced, as a power cut would.
    pub fn crash(&self) {
        let mut d = lock(&self.0);
        d.mem = d.mem.crash();
        d.fail_next_sync = false;
        d.tripped = false;
    }

    /// Whether a sync failed on purpose since the last crash.
    pub fn tripped(&self) -> bool {
        lock(&self.0).tripped
    }

    /// Cancels a pending [`SimDisk::fail_next_sync`].
    pub fn clear_faults(&self) {
        lock(&self.0).fail_next_sync = false;
    }

    /// Makes the next sync fail (the node dies inside fsync).
    pub fn fail_next_sync(&self) {
        lock(&self.0).fail_next_sync = true;
    }

    /// What a restart would recover now.
    pub fn synced(&self) -> Recovered {
        lock(&self.0).mem.crash().recover().unwrap_or_default()
    }
}

fn sync_failed() -> StoreError {
    StoreError::Wal("simulated crash inside fsync".into())
}

impl Durable for SimDisk {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        lock(&self.0).mem.recover()
    }
    fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        lock(&self.0).mem.append_entries(entries)
    }
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        lock(&self.0).mem.set_hard_state(hs)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        let mut d = lock(&self.0);
        if d.fail_next_sync {
            d.tripped = true;
            return Err(sync_failed());
        }
        d.mem.sync()
    }
    fn save_snapshot(&mut self, meta: &SnapshotMetadata, data: &[u8]) -> Result<(), StoreError> {
        let mut d = lock(&self.0);
        if d.fail_next_sync {
            d.tripped = true;
            return Err(sync_failed());
        }
        d.mem.save_snapshot(meta, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn partitions_block_exactly_the_cross_links() {
        let mut net = Network::new(NetConfig::reliable());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        net.partition(&[vec![1, 2], vec![3]]);
        assert!(net.route(&mut rng, 1, 3).is_empty());
        assert!(net.route(&mut rng, 3, 2).is_empty());
        assert_eq!(net.route(&mut rng, 1, 2).len(), 1);
        net.heal();
        net.cut(1, 2);
        assert!(net.route(&mut rng, 1, 2).is_empty());
        assert_eq!(net.route(&mut rng, 2, 1).len(), 1);
    }

    #[test]
    fn loss_and_duplication_follow_the_config() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut lossy = NetConfig::reliable();
        lossy.drop = 1.0;
        assert!(Network::new(lossy).route(&mut rng, 1, 2).is_empty());
        let mut dup = NetConfig::reliable();
        dup.duplicate = 1.0;
        dup.min_delay = 5;
        dup.max_delay = 9;
        let copies = Network::new(dup).route(&mut rng, 1, 2);
        assert_eq!(copies.len(), 2);
        assert!(copies.iter().all(|d| (5..=9).contains(d)));
    }

    #[test]
    fn a_crash_keeps_only_synced_state_and_a_failed_sync_persists_nothing() {
        let e = |index| Entry {
            index,
            term: 1,
            ..Default::default()
        };
        let mut disk = SimDisk::default();
        disk.append_entries(&[e(1)]).unwrap();
        disk.sync().unwrap();
        disk.append_entries(&[e(2)]).unwrap();
        disk.fail_next_sync();
        assert!(disk.sync().is_err());
        assert!(disk.tripped());
        disk.crash();
        assert!(!disk.tripped());
        let r = disk.synced();
        assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [1]);
        // The failure was one-shot: the restarted node syncs again.
        disk.append_entries(&[e(2)]).unwrap();
        disk.sync().unwrap();
        assert_eq!(disk.synced().entries.len(), 2);
    }
}
