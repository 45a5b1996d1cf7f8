//! Writes pod statuses to the API, coalesced per pod (the kubelet's status
//! manager). Workers hand in the status they want; the writer keeps only
//! the latest per pod and sends, when it is due, one merge patch of the
//! `status` subresource from the API's copy (as last seen) to the wanted
//! status, with the pod's uid as a precondition. A pod that changes several
//! times before its write goes out gets one write.
//!
//! "Due" lets progress that is about to be superseded wait a little: a
//! status showing a container being created is held back for a while, so a
//! pod that starts quickly is written once, as Running. A pod whose start
//! is queued behind others (all spawn slots busy) is held for as long as it
//! waits ([`StatusWriter::hold`]): in a burst of starts its "being created"
//! write would only take CPU from the starts ahead of it, and it is
//! superseded by its Running write soon after its turn comes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::status::merge_patch;
use crate::client::{ApiClient, PatchType};

/// How many writes may be in flight at once.
const WRITERS: usize = 16;
/// Pause before retrying a failed write.
const RETRY: Duration = Duration::from_millis(500);

struct Entry {
    namespace: String,
    name: String,
    /// The status we want the API to hold.
    desired: Value,
    /// The API's status as last seen, and its resourceVersion.
    known: Value,
    known_rv: u64,
    /// When the next write is due; `None` when nothing is pending.
    due: Option<(Instant, u64)>,
    in_flight: bool,
    /// Holds taken by starts waiting for a spawn slot; while there are
    /// any, a deferred write waits (see [`StatusWriter::hold`]).
    holds: u32,
    /// A deferred write is waiting for the holds to end.
    held: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Pending writes by due time (and a sequence number for ties).
    queue: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

impl State {
    fn schedule(&mut self, uid: &str, at: Instant) {
        self.seq += 1;
        let key = (at, self.seq);
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if let Some(old) = e.due {
            if old.0 <= at {
                return;
            }
            self.queue.remove(&old);
        }
        e.due = Some(key);
        self.queue.insert(key, uid.to_string());
    }

    /// The first due entry that is not being written, taken off the queue.
    fn take_due(&mut self, now: Instant) -> Result<String, Option<Instant>> {
        let mut skipped = Vec::new();
        let mut result = Err(None);
        while let Some((&key, uid)) = self.queue.iter().next() {
            if key.0 > now {
                result = Err(Some(key.0));
                break;
            }
            let uid = uid.clone();
            self.queue.remove(&key);
            match self.entries.get_mut(&uid) {
                Some(e) if e.in_flight => skipped.push((key, uid)),
                Some(e) => {
                    e.due = None;
                    e.in_flight = true;
                    result = Ok(uid);
                    break;
                }
                None => {}
            }
        }
        // Entries being written are retried when their write finishes.
        for (key, uid) in skipped {
            self.queue.insert(key, uid);
        }
        result
    }
}

/// Parses a resourceVersion for ordering; opaque ones compare as 0.
fn rv_number(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A hold on a pod's deferred status writes (see [`StatusWriter::hold`]);
/// released when dropped, also when the waiting start is cancelled.
#[must_use = "the hold ends when this is dropped"]
pub struct Hold {
    writer: StatusWriter,
    uid: String,
    then: Duration,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.writer.release(&self.uid, self.then);
    }
}

/// The handle workers and the pod watch use. Cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Default for StatusWriter {
    fn default() -> Self {
        StatusWriter::new()
    }
}

impl StatusWriter {
    pub fn new() -> StatusWriter {
        StatusWriter {
            state: Arc::new(Mutex::new(State::default())),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Records the API's copy of a pod (from the watch or a write).
    pub fn observe(&self, uid: &str, pod: &Value) {
        let rv = rv_number(pod);
        let status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut st = self.state.lock();
        match st.entries.get_mut(uid) {
            Some(e) => {
                if rv >= e.known_rv {
                    e.known = status;
                    e.known_rv = rv;
                }
            }
            None => {
                let meta = |k: &str| {
                    pod.pointer(&format!("/metadata/{k}"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                st.entries.insert(
                    uid.to_string(),
                    Entry {
                        namespace: meta("namespace"),
                        name: meta("name"),
                        desired: status.clone(),
                        known: status,
                        known_rv: rv,
                        due: None,
                        in_flight: false,
                        holds: 0,
                        held: false,
                    },
                );
            }
        }
    }

    /// Asks for `status` to be written within `delay`. Entries must have
    /// been observed first.
    pub fn set(&self, uid: &str, status: Value, delay: Duration) {
        let mut st = self.state.lock();
        let Some(e) = st.entries.get_mut(uid) else {
            return;
        };
        if e.desired == status && e.due.is_some() {
            return;
        }
        e.desired = status;
        if merge_patch(&e.known, &e.desired).is_none() && !e.in_flight {
            return;
        }
        if e.holds > 0 && !delay.is_zero() {
            // Deferrable, and its start is still queued: written when the
            // hold ends (unless something urgent comes first).
            e.held = true;
            return;
        }
        // This write carries whatever was held.
        e.held = false;
        st.schedule(uid, Instant::now() + delay);
        drop(st);
        self.wake.notify_one();
    }

    /// Holds back `uid`'s deferred writes while one of its starts waits
    /// for a spawn slot; dropping the guard ends the hold, and a held write
    /// is then due within `then` (the time the start itself may take
    /// before its progress is shown). Writes asked for without delay are
    /// not held.
    pub fn hold(&self, uid: &str, then: Duration) -> Hold {
        let mut st = self.state.lock();
        let now = Instant::now();
        if let Some(e) = st.entries.get_mut(uid) {
            e.holds += 1;
            if let Some(key) = e.due
                && key.0 > now
                && !e.in_flight
            {
                e.due = None;
                e.held = true;
                st.queue.remove(&key);
            }
        }
        Hold {
            writer: self.clone(),
            uid: uid.to_string(),
            then,
        }
    }

    fn release(&self, uid: &str, then: Duration) {
        let mut st = self.state.lock();
        let Some(e) = st.entries.get_mut(uid) else {
            return;
        };
        e.holds = e.holds.saturating_sub(1);
        if e.holds > 0 || !std::mem::take(&mut e.held) {
            return;
        }
        st.schedule(uid, Instant::now() + then);
        drop(st);
        self.wake.notify_one();
    }

    /// Stops writing for a pod that is gone.
    pub fn forget(&self, uid: &str) {
        let mut st = self.state.lock();
        if let Some(e) = st.entries.remove(uid)
            && let Some(key) = e.due
        {
            st.queue.remove(&key);
        }
    }

    /// Whether a write for `uid` is pending or in flight (for tests and
    /// benchmarks that wait for quiescence).
    pub fn pending(&self, uid: &str) -> bool {
        self.state
            .lock()
            .entries
            .get(uid)
            .is_some_and(|e| e.due.is_some() || e.in_flight || e.held)
    }

    /// Runs the writers until `shutdown`.
    pub async fn run(self, client: ApiClient, shutdown: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let me = self.clone();
            let client = client.clone();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(
                async move { me.writer(client, shutdown).await },
            ));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn writer(self, client: ApiClient, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.state.lock().take_due(Instant::now());
            let uid = match next {
                Ok(uid) => uid,
                Err(wait) => {
                    let sleep = async {
                        match wait {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = sleep => {}
                        _ = super::stopped(&mut shutdown) => return,
                    }
                    continue;
                }
            };
            self.write_one(&client, &uid).await;
            // Another writer may be waiting for this entry.
            self.wake.notify_one();
        }
    }

    async fn write_one(&self, client: &ApiClient, uid: &str) {
        let (path, patch, desired) = {
            let mut st = self.state.lock();
            let Some(e) = st.entries.get_mut(uid) else {
                return;
            };
            match merge_patch(&e.known, &e.desired) {
                Some(p) => (
                    format!("/api/v1/namespaces/{}/pods/{}/status", e.namespace, e.name),
                    p,
                    e.desired.clone(),
                ),
                None => {
                    e.in_flight = false;
                    return;
                }
            }
        };
        let body = json!({"metadata": {"uid": uid}, "status": patch});
        let started = std::time::Instant::now();
        let result = client.patch(&path, PatchType::Merge, &body).await;
        tracing::debug!(%uid, elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok(), "status write");
        let mut st = self.state.lock();
        match result {
            Ok(pod) => {
                let rv = rv_number(&pod);
                if let Some(e) = st.entries.get_mut(uid) {
                    e.in_flight = false;
                    if rv >= e.known_rv {
                        e.known = pod.get("status").cloned().unwrap_or(desired);
                        e.known_rv = rv;
                    }
                    if merge_patch(&e.known, &e.desired).is_some() {
                        st.schedule(uid, Instant::now());
                    }
                }
            }
            Err(e) if e.is_not_found() || e.is_conflict() => {
                // The pod is gone, or a new pod took its name.
                tracing::debug!(%uid, error = %e, "status not written");
                if let Some(key) = st.entries.remove(uid).and_then(|e| e.due) {
                    st.queue.remove(&key);
                }
            }
            Err(err) => {
                tracing::warn!(%uid, error = %err, "status write failed; retrying");
                if let Some(e) = st.entries.get_mut(uid) {
                    e.in_flight = false;
                }
                st.schedule(uid, Instant::now() + RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rv: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": rv},
               "status": {"phase": phase}})
    }

    #[test]
    fn changes_coalesce_into_one_pending_write() {
        let w = StatusWriter::new();
        w.observe("u", &pod("5", "Pending"));
        assert!(!w.pending("u"));
        // Equal to the API's copy: nothing to write.
        w.set("u", json!({"phase": "Pending"}), Duration::ZERO);
        assert!(!w.pending("u"));
        w.set(
            "u",
            json!({"phase": "Pending", "x": 1}),
            Duration::from_secs(60),
        );
        w.set("u", json!({"phase": "Running"}), Duration::ZERO);
        let mut st = w.state.lock();
        assert_eq!(st.queue.len(), 1, "one write per pod");
        // The earlier deadline wins and the latest status is what goes out.
        let uid = st
            .take_due(Instant::now() + Duration::from_millis(1))
            .unwrap();
        assert_eq!(uid, "u");
        assert_eq!(st.entries["u"].desired, json!({"phase": "Running"}));
        assert!(st.take_due(Instant::now()).is_err());
    }

    #[test]
    fn older_observations_do_not_replace_newer_ones() {
        let w = StatusWriter::new();
        w.observe("u", &pod("7", "Running"));
        w.observe("u", &pod("6", "Pending"));
        assert_eq!(
            w.state.lock().entries["u"].known,
            json!({"phase": "Running"})
        );
        w.forget("u");
        assert!(w.state.lock().entries.is_empty());
    }

    #[test]
    fn a_held_pod_writes_its_deferred_status_only_after_the_hold() {
        let w = StatusWriter::new();
        w.observe("u", &pod("1", "Pending"));
        let creating = json!({"phase": "Pending", "reason": "creating"});
        // Set before the hold: taken off the queue by it.
        w.set("u", creating.clone(), Duration::from_millis(1));
        let hold = w.hold("u", Duration::from_secs(60));
        // A second hold (another container of the pod) and a deferred
        // change while held: still nothing due, but the write is pending.
        let hold2 = w.hold("u", Duration::from_secs(60));
        w.set(
            "u",
            json!({"phase": "Pending", "reason": "still"}),
            Duration::from_millis(1),
        );
        let later = Instant::now() + Duration::from_secs(5);
        assert!(matches!(w.state.lock().take_due(later), Err(None)));
        assert!(w.pending("u"));
        drop(hold);
        assert!(matches!(w.state.lock().take_due(later), Err(None)));
        // The last hold ends: due `then` from now, not at once.
        drop(hold2);
        match w.state.lock().take_due(later) {
            Err(Some(at)) => assert!(at > later),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.state.lock().entries["u"].desired,
            json!({"phase": "Pending", "reason": "still"})
        );
    }

    #[test]
    fn urgent_writes_go_out_during_a_hold() {
        let w = StatusWriter::new();
        w.observe("u", &pod("1", "Pending"));
        let _hold = w.hold("u", Duration::from_secs(60));
        w.set(
            "u",
            json!({"phase": "Pending", "x": 1}),
            Duration::from_secs(1),
        );
        w.set("u", json!({"phase": "Failed"}), Duration::ZERO);
        let mut st = w.state.lock();
        assert_eq!(st.take_due(Instant::now()).unwrap(), "u");
        assert!(
            !st.entries["u"].held,
            "the urgent write carries the held one"
        );
    }

    #[test]
    fn a_hold_on_an_unknown_pod_is_harmless() {
        let w = StatusWriter::new();
        drop(w.hold("nobody", Duration::ZERO));
        w.observe("u", &pod("1", "Pending"));
        w.set("u", json!({"phase": "Running"}), Duration::ZERO);
        assert_eq!(w.state.lock().take_due(Instant::now()).unwrap(), "u");
    }

    #[test]
    fn deferred_writes_wait_for_their_time() {
        let w = StatusWriter::new();
        w.observe("u", &pod("1", "Pending"));
        w.set("u", json!({"phase": "Running"}), Duration::from_secs(60));
        let mut st = w.state.lock();
        match st.take_due(Instant::now()) {
            Err(Some(at)) => assert!(at > Instant::now()),
            other => panic!("{other:?}"),
        }
    }
}
