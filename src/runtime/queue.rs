//! A work queue of keys: deduplicated (a key queued twice is processed
//! once), never processed by two workers at once, with delayed requeues and
//! per-key exponential backoff, like client-go's rate-limited queue.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

struct Inner<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    /// Keys re-added while being processed; queued again when done.
    dirty: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    seq: u64,
    failures: HashMap<K, u32>,
    shutdown: bool,
}

/// The queue; clone handles share it.
pub struct WorkQueue<K> {
    inner: Arc<Mutex<Inner<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: self.inner.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub fn new() -> WorkQueue<K> {
        WorkQueue {
            inner: Arc::new(Mutex::new(Inner {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BTreeMap::new(),
                seq: 0,
                failures: HashMap::new(),
                shutdown: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues a key now.
    pub fn add(&self, key: K) {
        let mut q = self.inner.lock();
        if q.shutdown {
            return;
        }
        if q.processing.contains(&key) {
            q.dirty.insert(key);
            return;
        }
        if q.queued.insert(key.clone()) {
            q.ready.push_back(key);
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Queues a key after `after`.
    pub fn add_after(&self, key: K, after: Duration) {
        if after.is_zero() {
            return self.add(key);
        }
        let mut q = self.inner.lock();
        if q.shutdown {
            return;
        }
        q.seq += 1;
        let seq = q.seq;
        q.delayed.insert((Instant::now() + after, seq), key);
        drop(q);
        self.notify.notify_one();
    }

    /// Queues a key after its backoff (5 ms doubling up to 60 s per failure).
    pub fn add_rate_limited(&self, key: K) {
        let n = {
            let mut q = self.inner.lock();
            let n = q.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay =
            Duration::from_millis(5u64.saturating_mul(1 << n.min(14))).min(Duration::from_secs(60));
        self.add_after(key, delay);
    }

    /// Clears a key's backoff after a success.
    pub fn forget(&self, key: &K) {
        self.inner.lock().failures.remove(key);
    }

    /// Marks a key's processing finished (must follow every `next`).
    pub fn done(&self, key: &K) {
        let mut q = self.inner.lock();
        q.processing.remove(key);
        if q.dirty.remove(key) && q.queued.insert(key.clone()) {
            q.ready.push_back(key.clone());
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Stops handing out keys; `next` returns None.
    pub fn shutdown(&self) {
        self.inner.lock().shutdown = true;
        self.notify.notify_waiters();
    }

    pub fn len(&self) -> usize {
        let q = self.inner.lock();
        q.ready.len() + q.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key to process, waiting for one. None after shutdown.
    pub async fn next(&self) -> Option<K> {
        loop {
            let wake_at = {
                let mut q = self.inner.lock();
                if q.shutdown {
                    return None;
                }
                let now = Instant::now();
                while let Some((&(at, seq), _)) = q.delayed.iter().next() {
                    if at > now {
                        break;
                    }
                    if let Some(k) = q.delayed.remove(&(at, seq)) {
                        if q.processing.contains(&k) {
                            q.dirty.insert(k);
                        } else if q.queued.insert(k.clone()) {
                            q.ready.push_back(k);
                        }
                    }
                }
                if let Some(k) = q.ready.pop_front() {
                    q.queued.remove(&k);
                    q.processing.insert(k.clone());
                    return Some(k);
                }
                q.delayed.keys().next().map(|(at, _)| *at)
            };
            let notified = self.notify.notified();
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_serializes_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.next().await, Some("a"));
        // Re-added while processing: handed out again only after done.
        q.add("a");
        assert_eq!(q.next().await, Some("b"));
        q.done(&"b");
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_back_later() {
        let q = WorkQueue::new();
        q.add_after("x", Duration::from_secs(10));
        q.add("y");
        assert_eq!(q.next().await, Some("y"));
        let t0 = Instant::now();
        assert_eq!(q.next().await, Some("x"));
        assert!(t0.elapsed() >= Duration::from_secs(9));
    }

    #[tokio::test]
    async fn shutdown_wakes_workers() {
        let q: WorkQueue<&str> = WorkQueue::new();
        let q2 = q.clone();
        let h = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.shutdown();
        assert_eq!(h.await.unwrap(), None);
    }
}
